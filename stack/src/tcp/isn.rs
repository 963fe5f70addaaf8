//! Initial sequence numbers (RFC 6528) and the keyed hash used for every secret-dependent choice
//! of the TCP layer (ISNs, timestamp offsets, ephemeral ports, SYN cookies).
//!
//! The hash is SipHash-2-4 (Aumasson & Bernstein), written out here so that the result is
//! deterministic given the configured seed and independent of std's unspecified hasher.

use core::net::SocketAddrV4;

use super::seq::SeqNum;
use crate::time::Instant;

/// A 128-bit SipHash key derived from the configuration seed.
#[derive(Clone, Copy, Debug)]
pub struct Secret {
    k0: u64,
    k1: u64,
}

#[inline]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// splitmix64, used only to stretch the seed into a key.
fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Secret {
    /// Derives the key from a seed and a domain label (so different uses get independent keys).
    pub fn new(seed: u64, domain: u64) -> Secret {
        let mut s = seed ^ domain.wrapping_mul(0xa076_1d64_78bd_642f);
        Secret {
            k0: splitmix(&mut s),
            k1: splitmix(&mut s),
        }
    }

    /// SipHash-2-4 of a sequence of 64-bit words.
    pub fn hash(&self, words: &[u64]) -> u64 {
        let mut v = [
            self.k0 ^ 0x736f_6d65_7073_6575,
            self.k1 ^ 0x646f_7261_6e64_6f6d,
            self.k0 ^ 0x6c79_6765_6e65_7261,
            self.k1 ^ 0x7465_6462_7974_6573,
        ];
        for &m in words {
            v[3] ^= m;
            sip_round(&mut v);
            sip_round(&mut v);
            v[0] ^= m;
        }
        let b = ((words.len() as u64 * 8) & 0xff) << 56;
        v[3] ^= b;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= b;
        v[2] ^= 0xff;
        for _ in 0..4 {
            sip_round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }

    /// Hash of a four-tuple plus extra words.
    pub fn hash_tuple(&self, local: SocketAddrV4, remote: SocketAddrV4, extra: u64) -> u64 {
        let a = (u32::from(*local.ip()) as u64) << 32 | u32::from(*remote.ip()) as u64;
        let p = (local.port() as u64) << 16 | remote.port() as u64;
        self.hash(&[a, p, extra])
    }
}

/// RFC 6528 §3: `ISN = M + F(localip, localport, remoteip, remoteport, secretkey)`, where M is a
/// 4-microsecond timer.
pub fn initial_sequence_number(
    secret: &Secret,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    now: Instant,
) -> SeqNum {
    let m = (now.total_micros() / 4) as u32;
    SeqNum((secret.hash_tuple(local, remote, 0) as u32).wrapping_add(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn siphash_reference_vector() {
        // SipHash-2-4 paper, Appendix A: key 00..0f, message 00..0e (15 bytes) = a129ca6149be45e5.
        // Our word-oriented variant is checked on the 8-byte message 00..07 instead:
        // reference output 0x93f5f5799a932462 (from the reference implementation's vectors).
        let s = Secret {
            k0: 0x0706_0504_0302_0100,
            k1: 0x0f0e_0d0c_0b0a_0908,
        };
        assert_eq!(s.hash(&[0x0706_0504_0302_0100]), 0x93f5_f579_9a93_2462);
        assert_eq!(s.hash(&[]), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    fn isn_is_deterministic_keyed_and_advances_with_time() {
        let l = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
        let r = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 40000);
        let s1 = Secret::new(1, 0);
        let s2 = Secret::new(2, 0);
        let t = Instant::from_millis(1000);
        assert_eq!(
            initial_sequence_number(&s1, l, r, t),
            initial_sequence_number(&s1, l, r, t)
        );
        assert_ne!(
            initial_sequence_number(&s1, l, r, t),
            initial_sequence_number(&s2, l, r, t)
        );
        let later = initial_sequence_number(&s1, l, r, t + crate::time::Duration::from_micros(400));
        assert_eq!(later.diff(initial_sequence_number(&s1, l, r, t)), 100);
    }
}
