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

use slotmap::Key;

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
/// [`ReadinessQueue::notify`] and [`ReadinessQueue::pop`] are O(1) without hashing: each
/// protocol's handles are slot-map keys (a slot index and a version), and the queue keeps, per
/// protocol and slot index, the version of the handle it holds from that slot (0: none), in a
/// vector that grows to the largest slot index seen (4 bytes per socket slot).
///
/// A handle whose socket was freed while it sat in the queue stays there (the consumer finds it
/// stale); if its slot is reused meanwhile, the new socket's handle is queued beside it.
#[derive(Default, Debug)]
pub struct ReadinessQueue {
    order: VecDeque<SocketHandle>,
    /// Per protocol (TCP, UDP, ICMP), indexed by slot: the version of the queued handle.
    queued: [Vec<u32>; 3],
}

/// The protocol, slot index and version of a handle (its slot-map key).
fn slot_of(h: SocketHandle) -> (usize, usize, u32) {
    let (protocol, key) = match h {
        SocketHandle::Tcp(k) => (0, k.data()),
        SocketHandle::Udp(k) => (1, k.data()),
        SocketHandle::Icmp(k) => (2, k.data()),
    };
    // `as_ffi` is `version << 32 | index`; a live key's version is odd, never 0.
    let ffi = key.as_ffi();
    (protocol, (ffi & 0xffff_ffff) as usize, (ffi >> 32) as u32)
}

impl ReadinessQueue {
    /// Records that `handle`'s readiness may have changed.
    #[inline]
    pub fn notify(&mut self, handle: impl Into<SocketHandle>) {
        let h = handle.into();
        let (protocol, index, version) = slot_of(h);
        let marks = &mut self.queued[protocol];
        if index >= marks.len() {
            marks.resize(index + 1, 0);
        }
        if marks[index] != version {
            marks[index] = version;
            self.order.push_back(h);
        }
    }

    /// Takes the next socket to re-examine, oldest first.
    #[inline]
    pub fn pop(&mut self) -> Option<SocketHandle> {
        let h = self.order.pop_front()?;
        let (protocol, index, version) = slot_of(h);
        if let Some(mark) = self.queued[protocol].get_mut(index) {
            // Another handle of a reused slot may hold the mark now: leave it.
            if *mark == version {
                *mark = 0;
            }
        }
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
    fn protocols_do_not_share_marks() {
        // Keys of different slot maps may have the same index and version.
        let mut tcp: SlotMap<TcpHandle, ()> = SlotMap::with_key();
        let mut udp: SlotMap<UdpHandle, ()> = SlotMap::with_key();
        let mut icmp: SlotMap<IcmpHandle, ()> = SlotMap::with_key();
        let (t, u, i) = (tcp.insert(()), udp.insert(()), icmp.insert(()));
        assert_eq!(t.data().as_ffi(), u.data().as_ffi());
        let mut q = ReadinessQueue::default();
        q.notify(t);
        q.notify(u);
        q.notify(i);
        q.notify(u);
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(), Some(SocketHandle::Tcp(t)));
        assert_eq!(q.pop(), Some(SocketHandle::Udp(u)));
        assert_eq!(q.pop(), Some(SocketHandle::Icmp(i)));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_reused_slot_queues_the_new_socket_beside_the_stale_handle() {
        let mut map: SlotMap<TcpHandle, ()> = SlotMap::with_key();
        let old = map.insert(());
        let mut q = ReadinessQueue::default();
        q.notify(old);
        map.remove(old);
        let new = map.insert(());
        assert_ne!(old, new);
        assert_eq!(
            old.data().as_ffi() as u32,
            new.data().as_ffi() as u32,
            "same slot"
        );
        q.notify(new);
        q.notify(new);
        assert_eq!(q.len(), 2);
        // Popping the stale handle leaves the new one's mark: no duplicate.
        assert_eq!(q.pop(), Some(SocketHandle::Tcp(old)));
        q.notify(new);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop(), Some(SocketHandle::Tcp(new)));
        assert_eq!(q.pop(), None);
        // Drained: the slot is free again.
        q.notify(new);
        assert_eq!(q.pop(), Some(SocketHandle::Tcp(new)));
    }

    proptest::proptest! {
        /// Against the plain model (a FIFO with a set of queued handles): the same order, no
        /// handle twice, whatever the interleaving of notifications, drains, closes and slot
        /// reuse (a closed socket is never notified again, as in the stack).
        #[test]
        fn matches_a_fifo_with_a_set(ops in proptest::collection::vec((0u8..4, 0usize..6), 0..200)) {
            let mut map: SlotMap<UdpHandle, ()> = SlotMap::with_key();
            let mut live: Vec<UdpHandle> = (0..6).map(|_| map.insert(())).collect();
            let mut q = ReadinessQueue::default();
            let mut model: VecDeque<SocketHandle> = VecDeque::new();
            for (op, n) in ops {
                match op {
                    0 | 1 => {
                        let h = SocketHandle::Udp(live[n]);
                        q.notify(h);
                        if !model.contains(&h) {
                            model.push_back(h);
                        }
                    }
                    2 => proptest::prop_assert_eq!(q.pop(), model.pop_front()),
                    _ => {
                        // Close socket n (it may still sit in the queue) and open another,
                        // which may take its slot.
                        map.remove(live[n]);
                        live[n] = map.insert(());
                    }
                }
                proptest::prop_assert_eq!(q.len(), model.len());
            }
            while let Some(h) = model.pop_front() {
                proptest::prop_assert_eq!(q.pop(), Some(h));
            }
            proptest::prop_assert_eq!(q.pop(), None);
        }
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
