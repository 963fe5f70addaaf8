//! NewReno window arithmetic: slow start and congestion avoidance (RFC 5681 §3.1), and the
//! ssthresh reduction on loss (RFC 5681 §3.2 step 2, RFC 6582). The fast recovery procedure
//! itself lives in the TCP core.

use super::CongestionControl;
use crate::time::{Duration, Instant};

/// NewReno state.
#[derive(Clone, Debug)]
pub struct NewReno {
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged since cwnd last grew in congestion avoidance (byte counting, RFC 3465).
    bytes_acked: u32,
}

impl NewReno {
    /// Initial window `iw` bytes; ssthresh starts "arbitrarily high" (RFC 5681 §3.1).
    pub fn new(iw: u32) -> NewReno {
        NewReno {
            cwnd: iw,
            ssthresh: u32::MAX,
            bytes_acked: 0,
        }
    }
}

/// RFC 5681 §3.1 slow start with byte counting (RFC 3465); returns the bytes left over once
/// cwnd reaches ssthresh.
///
/// RFC 3465's limit of L = 2*SMSS per ACK assumes an ACK every other segment; with ACKs
/// coalesced by batched receive (GRO, packet rings) the window would then grow linearly. Like
/// Linux, we count every acknowledged byte, but never more than the current cwnd per ACK, so
/// one huge cumulative ACK (after an RTO) can at most double the window.
pub(super) fn slow_start(cwnd: &mut u32, ssthresh: u32, acked: u32, mss: u32) -> u32 {
    let inc = acked.min((*cwnd).max(2 * mss));
    let room = ssthresh.saturating_sub(*cwnd);
    if inc <= room {
        *cwnd = cwnd.saturating_add(inc);
        0
    } else {
        *cwnd = cwnd.saturating_add(room);
        acked.saturating_sub(room)
    }
}

impl CongestionControl for NewReno {
    fn cwnd(&self) -> u32 {
        self.cwnd
    }
    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
    fn set_cwnd(&mut self, cwnd: u32) {
        self.cwnd = cwnd;
    }
    fn set_ssthresh(&mut self, ssthresh: u32) {
        self.ssthresh = ssthresh;
    }
    fn on_ack(&mut self, acked: u32, mss: u32, _now: Instant, _rtt: Option<Duration>) {
        let mut acked = acked;
        if self.cwnd < self.ssthresh {
            acked = slow_start(&mut self.cwnd, self.ssthresh, acked, mss);
            if acked == 0 {
                return;
            }
        }
        // RFC 5681 §3.1: cwnd += SMSS once per cwnd of acknowledged bytes.
        self.bytes_acked = self.bytes_acked.saturating_add(acked);
        if self.bytes_acked >= self.cwnd {
            self.bytes_acked -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(mss);
        }
    }
    fn on_congestion_event(&mut self, flight: u32, mss: u32, _now: Instant) {
        // RFC 5681 equation (4): ssthresh = max(FlightSize / 2, 2*SMSS)
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = self.ssthresh;
        self.bytes_acked = 0;
    }
    fn on_rto(&mut self, flight: u32, mss: u32) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = mss;
        self.bytes_acked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_avoidance_then_loss() {
        let mss = 1000;
        let now = Instant::ZERO;
        let mut r = NewReno::new(10 * mss);
        r.on_ack(2 * mss, mss, now, None);
        assert_eq!(r.cwnd(), 12 * mss);
        r.on_congestion_event(12 * mss, mss, now);
        assert_eq!(r.ssthresh(), 6 * mss);
        assert_eq!(r.cwnd(), 6 * mss);
        for _ in 0..6 {
            r.on_ack(mss, mss, now, None);
        }
        assert_eq!(
            r.cwnd(),
            7 * mss,
            "one MSS per window in congestion avoidance"
        );
        r.on_rto(7 * mss, mss);
        assert_eq!(r.cwnd(), mss);
        assert_eq!(r.ssthresh(), 3500);
        r.on_rto(mss, mss);
        assert_eq!(r.ssthresh(), 2 * mss);
    }
}
