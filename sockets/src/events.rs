//! [`Events`]: the readiness bits of `poll(2)` and `epoll(7)`, with Linux's values.
//!
//! The same type serves [`crate::poll`] (`POLLIN`, `POLLOUT`...), [`crate::epoll`] (`EPOLLIN`,
//! `EPOLLET`...) and the readiness callbacks of [`crate::signal`]. The stack reports readiness
//! as [`Readiness`]; [`Events::from_readiness`] translates.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

use ringstack_stack::socket::fmt_flag_names;
use ringstack_stack::Readiness;

/// A set of readiness and control bits (`struct epoll_event.events`, `struct pollfd.events`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Events(u32);

impl Events {
    /// No bits.
    pub const NONE: Events = Events(0);
    /// `EPOLLIN`/`POLLIN`: data (or a connection to accept, or end of stream) can be read.
    pub const IN: Events = Events(0x001);
    /// `EPOLLOUT`/`POLLOUT`: a write would not block.
    pub const OUT: Events = Events(0x004);
    /// `EPOLLERR`/`POLLERR`: an error is pending. Always reported, whether asked for or not.
    pub const ERR: Events = Events(0x008);
    /// `EPOLLHUP`/`POLLHUP`: both directions are closed. Always reported.
    pub const HUP: Events = Events(0x010);
    /// `POLLNVAL`: the descriptor is not open (poll only).
    pub const NVAL: Events = Events(0x020);
    /// `EPOLLRDHUP`: the peer shut down its sending side (a read will return 0 once drained).
    pub const RDHUP: Events = Events(0x2000);
    /// `EPOLLEXCLUSIVE`: when several epoll instances watch one descriptor, wake only one of
    /// them (avoids the thundering herd). `ADD` only.
    pub const EXCLUSIVE: Events = Events(1 << 28);
    /// `EPOLLONESHOT`: report once, then disarm until `MOD` re-arms.
    pub const ONESHOT: Events = Events(1 << 30);
    /// `EPOLLET`: edge-triggered — report only new transitions to ready.
    pub const ET: Events = Events(1 << 31);

    /// The readiness bits (what can be reported), as opposed to the control flags.
    pub const IO: Events = Events(0x001 | 0x004 | 0x008 | 0x010 | 0x020 | 0x2000);

    /// Builds a set from raw bits (as C code would pass them).
    pub const fn from_bits(bits: u32) -> Events {
        Events(bits)
    }
    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether any bit of `other` is set.
    pub const fn intersects(self, other: Events) -> bool {
        self.0 & other.0 != 0
    }
    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The stack's readiness as poll/epoll bits.
    pub fn from_readiness(r: Readiness) -> Events {
        let mut e = Events::NONE;
        for (bit, ev) in [
            (Readiness::READABLE, Events::IN),
            (Readiness::WRITABLE, Events::OUT),
            (Readiness::READ_CLOSED, Events::RDHUP),
            (Readiness::HANGUP, Events::HUP),
            (Readiness::ERROR, Events::ERR),
        ] {
            if r.contains(bit) {
                e |= ev;
            }
        }
        e
    }
}

impl From<Readiness> for Events {
    fn from(r: Readiness) -> Events {
        Events::from_readiness(r)
    }
}

impl BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}
impl BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0
    }
}
impl BitAnd for Events {
    type Output = Events;
    fn bitand(self, rhs: Events) -> Events {
        Events(self.0 & rhs.0)
    }
}
impl Not for Events {
    type Output = Events;
    fn not(self) -> Events {
        Events(!self.0)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Events::IN, "IN"),
            (Events::OUT, "OUT"),
            (Events::ERR, "ERR"),
            (Events::HUP, "HUP"),
            (Events::NVAL, "NVAL"),
            (Events::RDHUP, "RDHUP"),
            (Events::EXCLUSIVE, "EXCLUSIVE"),
            (Events::ONESHOT, "ONESHOT"),
            (Events::ET, "ET"),
        ];
        fmt_flag_names(f, names.map(|(bit, name)| (self.contains(bit), name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_maps_to_epoll_bits() {
        let e = Events::from_readiness(Readiness::READABLE | Readiness::READ_CLOSED);
        assert_eq!(e, Events::IN | Events::RDHUP);
        assert_eq!(format!("{e:?}"), "IN|RDHUP");
        assert_eq!(format!("{:?}", Events::IN | Events::ET), "IN|ET");
        assert_eq!(format!("{:?}", Events::NONE), "-");
        assert_eq!(Events::IN.bits(), 1);
        assert_eq!(Events::ET.bits(), 0x8000_0000);
    }
}
