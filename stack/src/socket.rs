//! Socket handles and readiness: the seam between the protocols and the I/O models.
//!
//! Each protocol owns its own table of sockets (a generational slot map, so a stale handle never
//! reaches a reused slot) and hands out its own key type. [`SocketHandle`] names any of them.
//!
//! Readiness is pushed, not polled: whenever something happens that may change what a socket is
//! ready for (data arrived, buffer space freed, peer closed, error), the protocol calls
//! [`ReadinessQueue::notify`]. The `sockets` crate drains the queue and updates its epoll-like
//! ready lists — exactly the "callback puts the socket on the ready list" design of Linux epoll,
//! so that `wait` never has to scan idle sockets.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};
use std::collections::VecDeque;

use foldhash::HashSet;

slotmap::new_key_type! {
    /// A TCP socket (listener or connection).
    pub struct TcpHandle;
    /// A UDP socket.
    pub struct UdpHandle;
    /// An ICMP echo ("ping") socket.
    pub struct IcmpHandle;
}

/// Any socket of the stack.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum SocketHandle {
    /// A TCP socket.
    Tcp(TcpHandle),
    /// A UDP socket.
    Udp(UdpHandle),
    /// An ICMP echo socket.
    Icmp(IcmpHandle),
}

impl From<TcpHandle> for SocketHandle {
    fn from(h: TcpHandle) -> Self {
        SocketHandle::Tcp(h)
    }
}
impl From<UdpHandle> for SocketHandle {
    fn from(h: UdpHandle) -> Self {
        SocketHandle::Udp(h)
    }
}
impl From<IcmpHandle> for SocketHandle {
    fn from(h: IcmpHandle) -> Self {
        SocketHandle::Icmp(h)
    }
}

/// What a socket is ready for, as epoll's `EPOLLIN`/`EPOLLOUT`/... bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Readiness(u8);

impl Readiness {
    /// No readiness.
    pub const NONE: Readiness = Readiness(0);
    /// Data (or a connection to accept, or end of stream) can be read without blocking.
    pub const READABLE: Readiness = Readiness(1);
    /// Data can be written without blocking (send buffer has room / connect finished).
    pub const WRITABLE: Readiness = Readiness(2);
    /// The peer has shut down its sending side (`EPOLLRDHUP`).
    pub const READ_CLOSED: Readiness = Readiness(4);
    /// Both directions are closed (`EPOLLHUP`).
    pub const HANGUP: Readiness = Readiness(8);
    /// An error is pending (`EPOLLERR`): connection refused/reset, ICMP error.
    pub const ERROR: Readiness = Readiness(16);

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Readiness) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether any bit of `other` is set in `self`.
    pub const fn intersects(self, other: Readiness) -> bool {
        self.0 & other.0 != 0
    }
    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
}

impl BitOr for Readiness {
    type Output = Readiness;
    fn bitor(self, rhs: Readiness) -> Readiness {
        Readiness(self.0 | rhs.0)
    }
}
impl BitOrAssign for Readiness {
    fn bitor_assign(&mut self, rhs: Readiness) {
        self.0 |= rhs.0
    }
}
impl BitAnd for Readiness {
    type Output = Readiness;
    fn bitand(self, rhs: Readiness) -> Readiness {
        Readiness(self.0 & rhs.0)
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::READABLE, "IN"),
            (Self::WRITABLE, "OUT"),
            (Self::READ_CLOSED, "RDHUP"),
            (Self::HANGUP, "HUP"),
            (Self::ERROR, "ERR"),
        ];
        fmt_flag_names(f, names.map(|(bit, name)| (self.contains(bit), name)))
    }
}

/// Writes the names of the flags that are set, joined by `|`, or `-` when none is: the `Debug`
/// form of [`Readiness`] and of the `sockets` crate's poll/epoll `Events`.
pub fn fmt_flag_names<'a>(
    f: &mut fmt::Formatter<'_>,
    flags: impl IntoIterator<Item = (bool, &'a str)>,
) -> fmt::Result {
    let mut first = true;
    for (set, name) in flags {
        if set {
            if !first {
                f.write_str("|")?;
            }
            f.write_str(name)?;
            first = false;
        }
    }
    if first {
        f.write_str("-")?;
    }
    Ok(())
}

/// The queue of sockets whose readiness may have changed since the last drain.
///
/// A socket appears at most once until drained, so the queue is bounded by the number of sockets.
#[derive(Default, Debug)]
pub struct ReadinessQueue {
    order: VecDeque<SocketHandle>,
    queued: HashSet<SocketHandle>,
}

impl ReadinessQueue {
    /// Records that `handle`'s readiness may have changed.
    pub fn notify(&mut self, handle: impl Into<SocketHandle>) {
        let h = handle.into();
        if self.queued.insert(h) {
            self.order.push_back(h);
        }
    }

    /// Takes the next socket to re-examine, oldest first.
    pub fn pop(&mut self) -> Option<SocketHandle> {
        let h = self.order.pop_front()?;
        self.queued.remove(&h);
        Some(h)
    }

    /// Number of sockets waiting to be re-examined.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slotmap::SlotMap;

    #[test]
    fn readiness_queue_deduplicates_until_drained() {
        let mut map: SlotMap<UdpHandle, ()> = SlotMap::with_key();
        let a = map.insert(());
        let b = map.insert(());
        let mut q = ReadinessQueue::default();
        q.notify(a);
        q.notify(b);
        q.notify(a);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(SocketHandle::Udp(a)));
        q.notify(a);
        assert_eq!(q.pop(), Some(SocketHandle::Udp(b)));
        assert_eq!(q.pop(), Some(SocketHandle::Udp(a)));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn readiness_bits_format_like_epoll() {
        let r = Readiness::READABLE | Readiness::READ_CLOSED;
        assert!(r.contains(Readiness::READABLE));
        assert!(!r.contains(Readiness::WRITABLE));
        assert_eq!(format!("{r:?}"), "IN|RDHUP");
        assert_eq!(format!("{:?}", Readiness::NONE), "-");
    }
}
