//! Least privilege for `ringstack serve`: opening a NIC needs root or CAP_NET_RAW (AF_PACKET)
//! or CAP_NET_ADMIN (TAP); nothing after that does. Once the NIC is open, [`drop_privileges`]
//!
//! 1. with `--user NAME`: drops the supplementary groups and switches to NAME's group and user
//!    (`setgroups`, `setgid`, `setuid`: real, effective and saved IDs, so root cannot be taken
//!    back);
//! 2. empties the capability bounding set (when allowed: it needs CAP_SETPCAP), the ambient,
//!    inheritable, permitted and effective sets;
//! 3. sets `no_new_privs`, so that not even a set-UID program could give any of it back;
//! 4. checks the result: no effective or permitted capability left, and with `--user`, neither
//!    `setuid(0)` nor `setgid(0)` succeeds.
//!
//! The open socket or TAP descriptor keeps working: the kernel checks those capabilities when
//! the descriptor is created, not when it is used. Files are another matter: with `--user` the
//! `--http-root` must be readable by that user (and `--pcap` is created before the switch).
//!
//! Capabilities and user IDs are per thread in Linux; glibc applies `setuid`/`setgid`/
//! `setgroups` to every thread, but `capset` only to the calling one. `serve` is single-threaded
//! at this point, and [`drop_privileges`] refuses to run otherwise.

use anyhow::{bail, Context, Result};
use caps::CapSet;
use clap::Args;
use nix::unistd::{Gid, Uid, User};

/// Options of `serve` about privileges.
#[derive(Args, Debug, Clone, Default)]
pub struct PrivilegeArgs {
    /// After opening the NIC, switch to this unprivileged user (and its primary group;
    /// supplementary groups are dropped). Needs to start as root.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Keep every capability the process started with (by default all are dropped once the
    /// NIC is open).
    #[arg(long)]
    pub keep_privileges: bool,
}

/// What [`drop_privileges`] left the process with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    /// The real, effective and saved user ID.
    pub uid: u32,
    /// The real, effective and saved group ID.
    pub gid: u32,
    /// Capabilities that were in the effective set before.
    pub dropped: usize,
}

/// Threads of this process (capabilities are per thread).
fn thread_count() -> Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")
        .context("reading /proc/self/task")?
        .count())
}

/// Drops every privilege `serve` no longer needs, as described in the module docs, and prints
/// one line on stderr saying what is left. Call it after the NIC is open, before any traffic.
pub fn drop_privileges(args: &PrivilegeArgs) -> Result<Option<Privileges>> {
    if args.keep_privileges {
        if args.user.is_some() {
            crate::usage!("--user and --keep-privileges exclude each other");
        }
        return Ok(None);
    }
    let target = match &args.user {
        Some(name) => match User::from_name(name).with_context(|| format!("--user {name}"))? {
            Some(u) => Some(u),
            None => crate::usage!("--user {name:?}: no such user"),
        },
        None => None,
    };
    let threads = thread_count()?;
    if threads != 1 {
        bail!("dropping privileges needs a single-threaded process ({threads} threads)");
    }
    let before = caps::read(None, CapSet::Effective)
        .map_err(|e| anyhow::anyhow!("reading capabilities: {e}"))?
        .len();
    // The bounding set limits what any later execve could gain; emptying it needs CAP_SETPCAP,
    // so it goes first (a process started with file capabilities and no CAP_SETPCAP keeps it,
    // harmlessly: no_new_privs below closes that door too).
    if caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false) {
        caps::clear(None, CapSet::Bounding)
            .map_err(|e| anyhow::anyhow!("emptying the capability bounding set: {e}"))?;
    }
    if let Some(user) = &target {
        let gid = user.gid;
        nix::unistd::setgroups(&[gid]).with_context(|| {
            format!(
                "--user {}: setgroups (needs root: start serve as root)",
                user.name
            )
        })?;
        nix::unistd::setgid(gid).with_context(|| format!("--user {}: setgid", user.name))?;
        nix::unistd::setuid(user.uid).with_context(|| format!("--user {}: setuid", user.name))?;
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set)
            .map_err(|e| anyhow::anyhow!("clearing {set:?} capabilities: {e}"))?;
    }
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;

    // Check rather than trust.
    for set in [CapSet::Effective, CapSet::Permitted] {
        let left =
            caps::read(None, set).map_err(|e| anyhow::anyhow!("reading capabilities: {e}"))?;
        if !left.is_empty() {
            bail!("capabilities left in the {set:?} set after dropping them: {left:?}");
        }
    }
    let (uid, gid) = (Uid::current(), Gid::current());
    if let Some(user) = &target {
        if uid != user.uid || Uid::effective() != user.uid || gid != user.gid {
            bail!("--user {}: still uid {uid} gid {gid}", user.name);
        }
        if nix::unistd::setuid(Uid::from_raw(0)).is_ok()
            || nix::unistd::setgid(Gid::from_raw(0)).is_ok()
        {
            bail!("--user {}: root could be taken back", user.name);
        }
    }
    let p = Privileges {
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        dropped: before,
    };
    eprintln!(
        "ringstack: privileges dropped: uid {} gid {}{}, no capabilities (was {}), no_new_privs",
        p.uid,
        p.gid,
        target
            .as_ref()
            .map_or(String::new(), |u| format!(" ({})", u.name)),
        p.dropped
    );
    Ok(Some(p))
}
