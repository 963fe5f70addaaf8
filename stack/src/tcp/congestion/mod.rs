//! Congestion control (RFC 5681 framework): the window arithmetic only.
//!
//! The TCP core owns loss detection and recovery (fast retransmit, NewReno partial ACKs, SACK
//! recovery); it reports events to a [`CongestionControl`] and reads back `cwnd`/`ssthresh`,
//! like Linux's `tcp_congestion_ops`. All quantities are bytes.

use crate::time::{Duration, Instant};

pub mod cubic;
pub mod newreno;

pub use cubic::Cubic;
pub use newreno::NewReno;

/// Which algorithm a connection uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// RFC 9438 CUBIC (Linux's default).
    #[default]
    Cubic,
    /// RFC 5681 / RFC 6582 NewReno.
    NewReno,
}

/// The events a congestion controller reacts to.
pub trait CongestionControl {
    /// Congestion window, bytes.
    fn cwnd(&self) -> u32;
    /// Slow start threshold, bytes.
    fn ssthresh(&self) -> u32;
    /// Overrides cwnd (the core's recovery procedures inflate/deflate it).
    fn set_cwnd(&mut self, cwnd: u32);
    /// Overrides ssthresh (undoing the reduction of a spurious timeout, RFC 4015).
    fn set_ssthresh(&mut self, ssthresh: u32);
    /// `acked` new bytes were cumulatively acknowledged outside loss recovery. `rtt` is the
    /// smoothed RTT when known.
    fn on_ack(&mut self, acked: u32, mss: u32, now: Instant, rtt: Option<Duration>);
    /// Loss detected by duplicate ACKs or SACK (entering fast recovery): sets ssthresh and cwnd.
    /// RFC 5681 §3.2 step 2.
    fn on_congestion_event(&mut self, flight: u32, mss: u32, now: Instant);
    /// Retransmission timeout: RFC 5681 §3.1 equation 4, cwnd = 1 segment (loss window).
    fn on_rto(&mut self, flight: u32, mss: u32);
}

/// Static dispatch over the algorithms (no allocation per connection).
#[derive(Clone, Debug)]
pub enum Congestion {
    /// CUBIC.
    Cubic(Cubic),
    /// NewReno.
    NewReno(NewReno),
}

impl Congestion {
    /// A controller with RFC 6928's initial window of `iw_segments` segments of `mss` bytes.
    pub fn new(alg: Algorithm, mss: u32, iw_segments: u32) -> Congestion {
        let iw = mss.saturating_mul(iw_segments.max(1));
        match alg {
            Algorithm::Cubic => Congestion::Cubic(Cubic::new(iw)),
            Algorithm::NewReno => Congestion::NewReno(NewReno::new(iw)),
        }
    }

    /// The algorithm's name as `ss` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            Congestion::Cubic(_) => "cubic",
            Congestion::NewReno(_) => "reno",
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            Congestion::Cubic($c) => $e,
            Congestion::NewReno($c) => $e,
        }
    };
}

impl CongestionControl for Congestion {
    fn cwnd(&self) -> u32 {
        dispatch!(self, c => c.cwnd())
    }
    fn ssthresh(&self) -> u32 {
        dispatch!(self, c => c.ssthresh())
    }
    fn set_cwnd(&mut self, cwnd: u32) {
        dispatch!(self, c => c.set_cwnd(cwnd))
    }
    fn set_ssthresh(&mut self, ssthresh: u32) {
        dispatch!(self, c => c.set_ssthresh(ssthresh))
    }
    fn on_ack(&mut self, acked: u32, mss: u32, now: Instant, rtt: Option<Duration>) {
        dispatch!(self, c => c.on_ack(acked, mss, now, rtt))
    }
    fn on_congestion_event(&mut self, flight: u32, mss: u32, now: Instant) {
        dispatch!(self, c => c.on_congestion_event(flight, mss, now))
    }
    fn on_rto(&mut self, flight: u32, mss: u32) {
        dispatch!(self, c => c.on_rto(flight, mss))
    }
}
