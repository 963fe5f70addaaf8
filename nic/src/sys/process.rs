//! Tying a child process's life to its parent's: `prctl(PR_SET_PDEATHSIG)` in the child
//! between `fork` and `exec`.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the kernel send `SIGKILL` to the child started by `cmd` when the *thread* that
/// spawns it exits (so also when the parent process is killed, even by SIGKILL, which no
/// cleanup handler can catch). The setting survives `exec` of non-set-user-ID programs,
/// such as `ip netns exec`.
///
/// Spawn from a thread that lives as long as the child should: the main thread, typically.
pub(crate) fn kill_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls `prctl`
    // and `getppid`, both async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would signal us.
            if libc::getppid() == 1 {
                return Err(std::io::Error::other(
                    "parent exited before the child started",
                ));
            }
            Ok(())
        });
    }
}
