//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! Samples come from timestamps (RFC 7323 §4) when negotiated, otherwise from timing one segment
//! per round trip and discarding samples of retransmitted segments (Karn's algorithm, RFC 6298
//! §3). The caller applies Karn; this type only does the arithmetic and the backoff.

use crate::time::Duration;

/// Clock granularity G of RFC 6298 §2 (our timestamps tick in milliseconds).
const G_MICROS: u64 = 1000;

/// SRTT, RTTVAR and RTO with exponential backoff. All values in microseconds.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<u64>,
    rttvar: u64,
    base_rto: u64,
    backoff: u32,
    min_rto: u64,
    max_rto: u64,
    /// The most recent sample.
    latest: u64,
}

impl RttEstimator {
    /// RFC 6298 §2.1: before any sample, RTO = `initial` (1 s).
    pub fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: 0,
            base_rto: initial.total_micros(),
            backoff: 0,
            min_rto: min_rto.total_micros(),
            max_rto: max_rto.total_micros().max(min_rto.total_micros()),
            latest: 0,
        }
    }

    /// RFC 6298 §2.2/§2.3: folds in one measurement.
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.total_micros();
        self.latest = r;
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'
                self.rttvar = (3 * self.rttvar + srtt.abs_diff(r)) / 4;
                self.srtt = Some((7 * srtt + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.base_rto = srtt + G_MICROS.max(4 * self.rttvar);
        // RFC 6298 §5.7: a new sample after backoff collapses the backoff.
        self.backoff = 0;
    }

    /// The current RTO including backoff, clamped to `[min_rto, max_rto]` (RFC 6298 §2.4, §2.5).
    pub fn rto(&self) -> Duration {
        let base = self.base_rto.max(self.min_rto);
        let backed = base.saturating_mul(1u64 << self.backoff.min(20));
        Duration::from_micros(backed.min(self.max_rto))
    }

    /// RFC 6298 §5.5: doubles the RTO after a timeout.
    pub fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Forgets the backoff (new data acknowledged).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// Number of consecutive backoffs.
    pub fn backoff(&self) -> u32 {
        self.backoff
    }

    /// Smoothed RTT, if measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt.map(Duration::from_micros)
    }

    /// RTT variation.
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar)
    }

    /// The most recent sample.
    pub fn latest(&self) -> Duration {
        Duration::from_micros(self.latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(120),
        )
    }

    #[test]
    fn initial_rto_is_one_second_and_backs_off() {
        let mut e = est();
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.back_off();
        assert_eq!(e.rto(), Duration::from_secs(2));
        for _ in 0..30 {
            e.back_off();
        }
        assert_eq!(e.rto(), Duration::from_secs(120));
    }

    #[test]
    fn first_and_later_samples_follow_rfc6298() {
        let mut e = est();
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rttvar(), Duration::from_millis(50));
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.sample(Duration::from_millis(200));
        // rttvar = (3*50 + 100)/4 = 62.5ms; srtt = (700 + 200)/8 = 112.5ms
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 250_000));
    }

    #[test]
    fn min_rto_applies() {
        let mut e = est();
        e.sample(Duration::from_micros(10));
        assert_eq!(e.rto(), Duration::from_millis(200));
        e.back_off();
        assert_eq!(e.rto(), Duration::from_millis(400));
        e.sample(Duration::from_micros(10));
        assert_eq!(e.backoff(), 0);
    }
}
