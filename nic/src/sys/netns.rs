//! Moving the calling thread into a fresh network namespace (for the lab).

use std::io;

/// Moves the *calling thread* (not the process) into a new, empty network namespace
/// (`unshare(CLONE_NEWNET)`): it then sees only a down `lo`.
///
/// Sockets it creates, interfaces it creates (`ip link add` run as a child process of this
/// thread inherits the namespace) and everything configured there stay inside. The namespace
/// disappears, with its veth pairs, TAPs and addresses, once the thread has exited and no
/// socket or process refers to it any more. There is no way back for the thread: run the lab
/// on a dedicated thread and let it end.
///
/// Fails with `PermissionDenied` (EPERM) without CAP_SYS_ADMIN.
pub fn unshare_thread_network_namespace() -> io::Result<()> {
    // SAFETY: unshare(2) with CLONE_NEWNET only changes the calling thread's namespace set;
    // it touches no memory of this process.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
