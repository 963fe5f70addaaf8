//! `poll(2)`: an array of `(fd, events, revents)`, scanned linearly, with no fixed limit.
//!
//! Compared with [`select`](crate::select): the array can be as long as the caller likes (no
//! 1024 ceiling), the interest (`events`) and the answer (`revents`) are separate fields so the
//! array need not be rebuilt — but the whole array is still **copied in and out** on every call
//! (8 bytes per entry each way, [`Work::set_bytes_copied`](crate::Work::set_bytes_copied)) and
//! **every entry is examined** on every pass ([`Work::poll_examined`](crate::Work::poll_examined)),
//! so the cost grows with the number of watched descriptors, ready or not.
//!
//! As in `poll(2)`: a negative `fd` is ignored (`revents = 0`); a descriptor that is not open
//! reports `NVAL`; `ERR` and `HUP` are reported even if not asked for.

use std::io;

use crate::epoll::timeout_from_ms;
use crate::events::Events;
use crate::fd::Fd;
use crate::net::Net;

/// `struct pollfd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor (negative: ignored).
    pub fd: Fd,
    /// What to wait for (`IN`, `OUT`, `RDHUP`).
    pub events: Events,
    /// What happened (written by `poll`).
    pub revents: Events,
}

impl PollFd {
    /// An entry waiting for `events` on `fd`.
    pub fn new(fd: Fd, events: Events) -> PollFd {
        PollFd {
            fd,
            events,
            revents: Events::NONE,
        }
    }
}

/// `poll(fds, nfds, timeout)`: fills every entry's `revents` and returns how many entries have
/// a non-empty one. `timeout_ms`: `0` returns at once, `-1` waits forever, `ms` at most that
/// long; `Ok(0)` on timeout.
pub fn poll(net: &Net, fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    // Copy in: the kernel's own copy of the array.
    let mut k: Vec<PollFd> = fds.to_vec();
    let bytes = 8 * fds.len() as u64;
    net.with_raw(|c, p| c.procs[p].work.set_bytes_copied += bytes);
    let r = net.block(timeout_from_ms(timeout_ms), |core, p| {
        let mut count = 0;
        let mut examined = 0;
        for e in k.iter_mut() {
            e.revents = Events::NONE;
            if e.fd < 0 {
                continue;
            }
            examined += 1;
            e.revents = match core.readiness(p, e.fd) {
                None => Events::NVAL,
                Some(r) => r & ((e.events & Events::IO) | Events::ERR | Events::HUP),
            };
            if !e.revents.is_empty() {
                count += 1;
            }
        }
        let w = &mut core.procs[p].work;
        w.poll_scans += 1;
        w.poll_examined += examined;
        (count > 0).then_some(Ok(count))
    });
    let n = match r {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    // Copy out.
    net.with_raw(|c, p| c.procs[p].work.set_bytes_copied += bytes);
    fds.copy_from_slice(&k);
    Ok(n)
}
