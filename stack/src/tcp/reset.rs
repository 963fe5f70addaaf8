//! Resets that outlive (or never had) a connection: replies to segments for no socket
//! (RFC 9293 §3.10.7.1), aborts, and the RSTs a connection sends while dying. Also the
//! challenge-ACK rate limit of RFC 5961 §7.

use core::net::SocketAddrV4;
use std::collections::VecDeque;

use super::segment::{Flags, Segment};
use super::seq::SeqNum;
use crate::time::{Duration, Instant};

/// Most RSTs waiting to be sent; more are dropped (a RST is never retransmitted anyway).
pub const MAX_PENDING_RSTS: usize = 256;

/// A RST to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RstSpec {
    /// Our address (source of the RST).
    pub local: SocketAddrV4,
    /// The peer.
    pub remote: SocketAddrV4,
    /// SEG.SEQ.
    pub seq: SeqNum,
    /// SEG.ACK when the ACK bit is set.
    pub ack: Option<SeqNum>,
}

impl RstSpec {
    /// RFC 9293 §3.10.7.1: the reply to `seg` (which must not be a RST) arriving for no
    /// connection. "If the ACK bit is off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+
    /// SEG.LEN><CTL=RST,ACK>; if the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>".
    pub fn reply_to(local: SocketAddrV4, remote: SocketAddrV4, seg: &Segment<'_>) -> RstSpec {
        if seg.hdr.flags.has(Flags::ACK) {
            RstSpec {
                local,
                remote,
                seq: seg.hdr.ack,
                ack: None,
            }
        } else {
            RstSpec {
                local,
                remote,
                seq: SeqNum(0),
                ack: Some(seg.hdr.seq + seg.seg_len()),
            }
        }
    }

    /// The control bits of this RST.
    pub fn flags(&self) -> Flags {
        if self.ack.is_some() {
            Flags::RST | Flags::ACK
        } else {
            Flags::RST
        }
    }
}

/// Bounded FIFO of pending RSTs.
#[derive(Debug, Default)]
pub struct RstQueue {
    queue: VecDeque<RstSpec>,
}

impl RstQueue {
    /// Queues a RST; returns false when full (the RST is dropped).
    pub fn push(&mut self, rst: RstSpec) -> bool {
        if self.queue.len() >= MAX_PENDING_RSTS {
            return false;
        }
        self.queue.push_back(rst);
        true
    }

    /// Takes the oldest RST.
    pub fn pop(&mut self) -> Option<RstSpec> {
        self.queue.pop_front()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Linux's `tcp_invalid_ratelimit`: at most one challenge ACK per connection per this
/// interval (RFC 5961 §7; see [`ChallengeLimiter::per_connection`]).
pub const CHALLENGE_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// The global limit that means "no global limit" (Linux ≥ 6.0's default,
/// `tcp_challenge_ack_limit = INT_MAX`).
pub const NO_GLOBAL_CHALLENGE_LIMIT: u32 = u32::MAX;

/// RFC 5961 §7 rate limit of challenge ACKs, as Linux does it since 4.7 (the fix of
/// CVE-2016-5696): first per connection, at most one per [`CHALLENGE_ACK_INTERVAL`]
/// ([`ChallengeLimiter::per_connection`], state kept in the connection); then, only if
/// configured, a stack-wide budget per second that is *randomized* each second to
/// `limit/2 + rand(limit)` (mean `limit`). A fixed stack-wide count is a side channel: an
/// off-path attacker who spends it with RSTs of its own connection learns, by counting the
/// challenge ACKs it gets back, whether a spoofed segment drew one on another connection
/// (RFC 5961 §10). The global limit is off by default (Linux ≥ 6.0).
#[derive(Debug)]
pub struct ChallengeLimiter {
    limit: u32,
    window_start: Option<Instant>,
    budget: u32,
    sent: u32,
    /// splitmix64 state for the randomized budget (seeded: deterministic under a seed).
    rng: u64,
}

impl ChallengeLimiter {
    /// A limiter with a global budget of `limit` challenge ACKs per second on average
    /// ([`NO_GLOBAL_CHALLENGE_LIMIT`]: none), randomized with `seed`.
    pub fn new(limit: u32, seed: u64) -> ChallengeLimiter {
        ChallengeLimiter {
            limit,
            window_start: None,
            budget: 0,
            sent: 0,
            rng: seed ^ 0x6368_616c_6c65_6e67,
        }
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The per-connection limit: whether a connection whose last challenge ACK went out at
    /// `last` may send another now (Linux's `tcp_oow_rate_limited`).
    pub fn per_connection(last: Instant, now: Instant) -> bool {
        now < last || now - last >= CHALLENGE_ACK_INTERVAL
    }

    /// Whether the global budget allows one more challenge ACK now (and counts it).
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.limit == NO_GLOBAL_CHALLENGE_LIMIT {
            return true;
        }
        let expired = match self.window_start {
            Some(start) => now >= start + Duration::from_secs(1) || now < start,
            None => true,
        };
        if expired {
            self.window_start = Some(now);
            self.sent = 0;
            // Linux 4.7 `tcp_send_challenge_ack`: half + prandom_u32_max(limit).
            self.budget = if self.limit == 0 {
                0
            } else {
                let r = (self.next_random() % u64::from(self.limit)) as u32;
                self.limit.div_ceil(2).saturating_add(r)
            };
        }
        if self.sent < self.budget {
            self.sent += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::segment::SegmentHeader;
    use core::net::Ipv4Addr;

    #[test]
    fn reply_follows_rfc9293_3_10_7_1() {
        let l = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
        let r = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 4000);
        let syn = Segment {
            hdr: SegmentHeader {
                seq: SeqNum(100),
                flags: Flags::SYN,
                ..Default::default()
            },
            payload: b"",
        };
        let rst = RstSpec::reply_to(l, r, &syn);
        assert_eq!(rst.seq, SeqNum(0));
        assert_eq!(rst.ack, Some(SeqNum(101)));
        assert_eq!(rst.flags(), Flags::RST | Flags::ACK);
        let ack = Segment {
            hdr: SegmentHeader {
                seq: SeqNum(100),
                ack: SeqNum(555),
                flags: Flags::ACK,
                ..Default::default()
            },
            payload: b"abc",
        };
        let rst = RstSpec::reply_to(l, r, &ack);
        assert_eq!(
            (rst.seq, rst.ack, rst.flags()),
            (SeqNum(555), None, Flags::RST)
        );
    }

    #[test]
    fn global_challenge_budget_is_randomized_around_the_limit() {
        let t0 = Instant::from_secs(5);
        let mut budgets = Vec::new();
        for seed in 0..64 {
            let mut c = ChallengeLimiter::new(10, seed);
            let mut n = 0;
            while c.allow(t0 + Duration::from_millis(n)) {
                n += 1;
                assert!(n < 100);
            }
            // Back a second later.
            assert!(c.allow(t0 + Duration::from_secs(1)));
            budgets.push(n);
        }
        // half + rand(limit): 5..=14, and not one fixed number.
        assert!(budgets.iter().all(|&b| (5..15).contains(&b)), "{budgets:?}");
        assert!(budgets.iter().any(|&b| b != budgets[0]), "{budgets:?}");
    }

    #[test]
    fn no_global_limit_by_default_value() {
        let mut c = ChallengeLimiter::new(NO_GLOBAL_CHALLENGE_LIMIT, 1);
        let t = Instant::from_secs(5);
        assert!((0..100_000).all(|_| c.allow(t)));
        let mut z = ChallengeLimiter::new(0, 1);
        assert!(!z.allow(t));
    }

    #[test]
    fn one_challenge_ack_per_connection_per_interval() {
        let t = Instant::from_secs(5);
        assert!(ChallengeLimiter::per_connection(
            t - CHALLENGE_ACK_INTERVAL,
            t
        ));
        assert!(!ChallengeLimiter::per_connection(t, t));
        assert!(!ChallengeLimiter::per_connection(
            t,
            t + Duration::from_millis(499)
        ));
        assert!(ChallengeLimiter::per_connection(
            t,
            t + CHALLENGE_ACK_INTERVAL
        ));
    }
}
