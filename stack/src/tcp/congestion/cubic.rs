//! CUBIC (RFC 9438): the window grows as a cubic function of the time since the last
//! congestion event, with a Reno-friendly lower bound (§4.3) and fast convergence (§4.7).

use super::newreno::slow_start;
use super::CongestionControl;
use crate::time::{Duration, Instant};

/// RFC 9438 §4.1: C = 0.4.
const C: f64 = 0.4;
/// RFC 9438 §4.6: multiplicative decrease factor.
const BETA: f64 = 0.7;

/// CUBIC state. Windows are tracked in segments (f64) for the cubic function, bytes for cwnd.
#[derive(Clone, Debug)]
pub struct Cubic {
    cwnd: u32,
    ssthresh: u32,
    /// W_max in segments.
    w_max: f64,
    /// K in seconds.
    k: f64,
    /// Start of the current congestion avoidance epoch.
    epoch_start: Option<Instant>,
    /// W_est (Reno-friendly estimate) in segments.
    w_est: f64,
    /// Fractional segments of growth not yet applied.
    carry: f64,
}

impl Cubic {
    /// Initial window `iw` bytes.
    pub fn new(iw: u32) -> Cubic {
        Cubic {
            cwnd: iw,
            ssthresh: u32::MAX,
            w_max: 0.0,
            k: 0.0,
            epoch_start: None,
            w_est: 0.0,
            carry: 0.0,
        }
    }

    fn reduce(&mut self, mss: u32) {
        let cwnd_seg = self.cwnd as f64 / mss as f64;
        // §4.7 fast convergence.
        self.w_max = if cwnd_seg < self.w_max {
            cwnd_seg * (1.0 + BETA) / 2.0
        } else {
            cwnd_seg
        };
        self.ssthresh = ((self.cwnd as f64 * BETA) as u32).max(2 * mss);
        self.epoch_start = None;
        self.carry = 0.0;
    }
}

impl CongestionControl for Cubic {
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
    fn on_ack(&mut self, acked: u32, mss: u32, now: Instant, rtt: Option<Duration>) {
        let mut acked = acked;
        if self.cwnd < self.ssthresh {
            acked = slow_start(&mut self.cwnd, self.ssthresh, acked, mss);
            if acked == 0 {
                return;
            }
        }
        let mss_f = mss as f64;
        let cwnd_seg = self.cwnd as f64 / mss_f;
        let start = match self.epoch_start {
            Some(s) => s,
            None => {
                // §4.2: a new epoch; K = cbrt((W_max - cwnd) / C) when below W_max.
                self.epoch_start = Some(now);
                self.k = if self.w_max > cwnd_seg {
                    ((self.w_max - cwnd_seg) / C).cbrt()
                } else {
                    0.0
                };
                if self.w_max < cwnd_seg {
                    self.w_max = cwnd_seg;
                }
                self.w_est = cwnd_seg;
                now
            }
        };
        let rtt_s = rtt.map(|r| r.total_micros() as f64 / 1e6).unwrap_or(0.1);
        let t = (now - start).total_micros() as f64 / 1e6;
        // §4.2: target = W_cubic(t + RTT), clamped to [cwnd, 1.5 cwnd].
        let w_cubic = |t: f64| C * (t - self.k).powi(3) + self.w_max;
        let target = w_cubic(t + rtt_s).clamp(cwnd_seg, 1.5 * cwnd_seg);
        // §4.3 Reno-friendly region: W_est grows by alpha_cubic per RTT.
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        let acked_seg = acked as f64 / mss_f;
        self.w_est += alpha * acked_seg / cwnd_seg;
        let mut inc_seg = (target - cwnd_seg) * acked_seg / cwnd_seg;
        if self.w_est > w_cubic(t) && self.w_est > cwnd_seg {
            inc_seg = inc_seg.max(self.w_est - cwnd_seg);
        }
        self.carry += inc_seg * mss_f;
        if self.carry >= 1.0 {
            let add = self.carry.min(u32::MAX as f64) as u32;
            self.carry -= add as f64;
            self.cwnd = self.cwnd.saturating_add(add);
        }
    }
    fn on_congestion_event(&mut self, _flight: u32, mss: u32, _now: Instant) {
        self.reduce(mss);
        self.cwnd = self.ssthresh;
    }
    fn on_rto(&mut self, _flight: u32, mss: u32) {
        self.reduce(mss);
        self.cwnd = mss;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces_by_beta_and_regrows_towards_w_max() {
        let mss = 1000;
        let mut c = Cubic::new(100 * mss);
        let t0 = Instant::from_secs(10);
        c.on_congestion_event(100 * mss, mss, t0);
        assert_eq!(c.cwnd(), 70 * mss);
        assert_eq!(c.ssthresh(), 70 * mss);
        let rtt = Some(Duration::from_millis(100));
        let mut now = t0;
        // K = cbrt(30/0.4) ≈ 4.2 s: after ~4.2 s cwnd is back near 100 segments.
        for _ in 0..50 {
            now += Duration::from_millis(100);
            let cw = c.cwnd();
            c.on_ack(cw, mss, now, rtt);
        }
        let seg = c.cwnd() / mss;
        assert!((95..=110).contains(&seg), "cwnd {seg} segments after 5 s");
        c.on_rto(c.cwnd(), mss);
        assert_eq!(c.cwnd(), mss);
    }
}
