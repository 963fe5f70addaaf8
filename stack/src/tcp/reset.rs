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

/// RFC 5961 §7: at most `limit` challenge ACKs per second, stack-wide.
#[derive(Debug)]
pub struct ChallengeLimiter {
    limit: u32,
    window_start: Instant,
    sent: u32,
}

impl ChallengeLimiter {
    /// A limiter allowing `limit` challenge ACKs per second.
    pub fn new(limit: u32) -> ChallengeLimiter {
        ChallengeLimiter {
            limit,
            window_start: Instant::ZERO,
            sent: 0,
        }
    }

    /// Whether one more challenge ACK may be sent now (and counts it).
    pub fn allow(&mut self, now: Instant) -> bool {
        if now >= self.window_start + Duration::from_secs(1) || now < self.window_start {
            self.window_start = now;
            self.sent = 0;
        }
        if self.sent < self.limit {
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
    fn challenge_limit_per_second() {
        let mut c = ChallengeLimiter::new(2);
        let t = Instant::from_secs(5);
        assert!(c.allow(t));
        assert!(c.allow(t));
        assert!(!c.allow(t + Duration::from_millis(500)));
        assert!(c.allow(t + Duration::from_secs(1)));
    }
}
