//! `select(2)`: three fixed 1024-bit descriptor sets, copied in and out, scanned linearly.
//!
//! As the notes list its costs:
//!
//! 1. the sets are **copied** from the caller into the "kernel" on every call and back out on
//!    return (`3 × 128` bytes each way, counted in
//!    [`Work::set_bytes_copied`](crate::Work::set_bytes_copied));
//! 2. the kernel **scans linearly** every descriptor below `nfds`, checking each one that is in
//!    a set ([`Work::select_examined`](crate::Work::select_examined)) — on every call, and again
//!    after every wakeup while blocking;
//! 3. it returns **only the count**: the caller must scan the sets again to find which ones
//!    are ready ("模糊通知", vague notification) — the sets are overwritten with the answer,
//!    so they must be rebuilt before the next call;
//! 4. a set holds descriptors `0..FD_SETSIZE` (1024) only: [`FdSet::insert`] refuses larger
//!    descriptors with an error (in C, `FD_SET(1500, &set)` silently corrupts memory).
//!
//! Which readiness counts (as Linux's `POLLIN_SET`/`POLLOUT_SET`/`POLLEX_SET`): readable =
//! `IN | HUP | ERR`, writable = `OUT | ERR`, exceptional = urgent data, which ringstack never
//! has (the except set always comes back empty).

use std::io;
use std::time::Duration;

use crate::core::Core;
use crate::events::Events;
use crate::fd::Fd;
use crate::net::Net;

/// The size of an `fd_set`, in descriptors.
pub const FD_SETSIZE: usize = 1024;
const WORDS: usize = FD_SETSIZE / 64;

/// `fd_set`: 1024 bits, one per descriptor number.
#[derive(Clone, PartialEq, Eq)]
pub struct FdSet {
    bits: [u64; WORDS],
}

impl Default for FdSet {
    fn default() -> Self {
        FdSet { bits: [0; WORDS] }
    }
}

impl std::fmt::Debug for FdSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

fn out_of_range(fd: Fd) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "descriptor {fd} does not fit in an fd_set (select handles 0..{FD_SETSIZE} only): \
             use poll or epoll"
        ),
    )
}

impl FdSet {
    /// `FD_ZERO`: an empty set.
    pub fn new() -> FdSet {
        FdSet::default()
    }

    fn index(fd: Fd) -> io::Result<(usize, u64)> {
        match usize::try_from(fd) {
            Ok(i) if i < FD_SETSIZE => Ok((i / 64, 1 << (i % 64))),
            _ => Err(out_of_range(fd)),
        }
    }

    /// `FD_SET`: adds `fd`; an error if `fd >= FD_SETSIZE` (or negative).
    pub fn insert(&mut self, fd: Fd) -> io::Result<()> {
        let (w, b) = Self::index(fd)?;
        self.bits[w] |= b;
        Ok(())
    }

    /// `FD_CLR`.
    pub fn remove(&mut self, fd: Fd) {
        if let Ok((w, b)) = Self::index(fd) {
            self.bits[w] &= !b;
        }
    }

    /// `FD_ISSET`.
    pub fn contains(&self, fd: Fd) -> bool {
        Self::index(fd).is_ok_and(|(w, b)| self.bits[w] & b != 0)
    }

    /// `FD_ZERO`.
    pub fn clear(&mut self) {
        self.bits = [0; WORDS];
    }

    /// The descriptors in the set, ascending (the caller's own linear scan).
    pub fn iter(&self) -> impl Iterator<Item = Fd> + '_ {
        (0..FD_SETSIZE as Fd).filter(|&fd| self.contains(fd))
    }

    /// Number of descriptors in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }
}

/// One pass of the kernel's `do_select` over copies of the sets.
fn scan(
    core: &mut Core,
    p: usize,
    nfds: usize,
    sets: [&FdSet; 3],
    out: &mut [FdSet; 3],
) -> io::Result<usize> {
    let mut count = 0;
    let mut examined = 0;
    for o in out.iter_mut() {
        o.clear();
    }
    for fd in 0..nfds as Fd {
        let wanted = [
            sets[0].contains(fd),
            sets[1].contains(fd),
            sets[2].contains(fd),
        ];
        if !wanted.iter().any(|&w| w) {
            continue;
        }
        examined += 1;
        let Some(r) = core.readiness(p, fd) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("select: descriptor {fd} is not open (EBADF)"),
            ));
        };
        let got = [
            r.intersects(Events::IN | Events::HUP | Events::ERR),
            r.intersects(Events::OUT | Events::ERR),
            false,
        ];
        for i in 0..3 {
            if wanted[i] && got[i] {
                let _ = out[i].insert(fd);
                count += 1;
            }
        }
    }
    let w = &mut core.procs[p].work;
    w.select_scans += 1;
    w.select_examined += examined;
    Ok(count)
}

/// `select(nfds, readfds, writefds, exceptfds, timeout)`: waits until a descriptor below
/// `nfds` in one of the sets is ready, or `timeout` passes (`None` = forever, zero = poll
/// once). Overwrites each given set with its ready subset and returns the total count (`0`
/// on timeout). `nfds > FD_SETSIZE` is an error.
pub fn select(
    net: &Net,
    nfds: usize,
    readfds: Option<&mut FdSet>,
    writefds: Option<&mut FdSet>,
    exceptfds: Option<&mut FdSet>,
    timeout: Option<Duration>,
) -> io::Result<usize> {
    if nfds > FD_SETSIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("select: nfds {nfds} exceeds FD_SETSIZE ({FD_SETSIZE})"),
        ));
    }
    // Copy in: the kernel works on its own copies (get_fd_set).
    let empty = FdSet::new();
    let copy_in = |s: &Option<&mut FdSet>| s.as_deref().cloned().unwrap_or_else(|| empty.clone());
    let ins = [copy_in(&readfds), copy_in(&writefds), copy_in(&exceptfds)];
    let present = [readfds.is_some(), writefds.is_some(), exceptfds.is_some()];
    let set_bytes = (FD_SETSIZE / 8) as u64 * present.iter().filter(|&&x| x).count() as u64;
    let mut out = [FdSet::new(), FdSet::new(), FdSet::new()];
    net.with_raw(|c, p| c.procs[p].work.set_bytes_copied += set_bytes);
    let r = net.block(timeout, |core, p| {
        match scan(core, p, nfds, [&ins[0], &ins[1], &ins[2]], &mut out) {
            Ok(0) => None,
            r => Some(r),
        }
    });
    let n = match r {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    // Copy out (set_fd_set): the caller's sets now hold only the ready descriptors.
    net.with_raw(|c, p| c.procs[p].work.set_bytes_copied += set_bytes);
    for (dst, src) in [readfds, writefds, exceptfds].into_iter().zip(out) {
        if let Some(d) = dst {
            *d = src;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_set_holds_0_to_1023_only() {
        let mut s = FdSet::new();
        s.insert(0).unwrap();
        s.insert(1023).unwrap();
        let e = s.insert(1024).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("use poll or epoll"));
        assert!(s.insert(-1).is_err());
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 1023]);
        assert_eq!(s.len(), 2);
        s.remove(0);
        assert!(!s.contains(0));
    }
}
