//! Ephemeral port selection: RFC 6056 §3.3.3 ("Algorithm 3: Simple Hash-Based Port Selection").
//!
//! `port = min + (F(local_ip, remote_ip, remote_port, secret) + next_ephemeral) % range`, trying
//! successive candidates until one is free. Deterministic given the seed; different destinations
//! get unrelated sequences, so an off-path attacker cannot predict our ports from its own.

use core::net::SocketAddrV4;

use super::isn::Secret;

/// Linux's default `ip_local_port_range`.
pub const EPHEMERAL_MIN: u16 = 32768;
/// Upper end (inclusive) of the range.
pub const EPHEMERAL_MAX: u16 = 60999;

/// The ephemeral port allocator.
#[derive(Clone, Debug)]
pub struct PortAllocator {
    secret: Secret,
    next_ephemeral: u32,
}

impl PortAllocator {
    /// An allocator keyed by `seed`.
    pub fn new(seed: u64) -> PortAllocator {
        PortAllocator {
            secret: Secret::new(seed, 0x706f_7274),
            next_ephemeral: 0,
        }
    }

    /// Picks a port for a connection from `local_ip` to `remote`; `in_use(port)` says whether a
    /// candidate is taken. Returns `None` when the whole range is in use.
    pub fn pick(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        mut in_use: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let range = (EPHEMERAL_MAX - EPHEMERAL_MIN) as u32 + 1;
        let offset = self
            .secret
            .hash_tuple(SocketAddrV4::new(*local.ip(), 0), remote, 0) as u32
            % range;
        for _ in 0..range {
            let port = EPHEMERAL_MIN + ((offset.wrapping_add(self.next_ephemeral)) % range) as u16;
            self.next_ephemeral = self.next_ephemeral.wrapping_add(1);
            if !in_use(port) {
                return Some(port);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn deterministic_in_range_and_skips_used() {
        let l = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 0);
        let r = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
        let mut a = PortAllocator::new(7);
        let mut b = PortAllocator::new(7);
        let p1 = a.pick(l, r, |_| false).unwrap();
        assert_eq!(p1, b.pick(l, r, |_| false).unwrap());
        assert!((EPHEMERAL_MIN..=EPHEMERAL_MAX).contains(&p1));
        let p2 = a.pick(l, r, |p| p == p1 + 1).unwrap();
        assert_ne!(p2, p1);
        assert_ne!(p2, p1 + 1);
        assert_eq!(a.pick(l, r, |_| true), None);
    }
}
