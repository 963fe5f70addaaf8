//! Clocks a driver can wait on: [`DriverClock`], and the [`VirtualClock`] of deterministic runs.
//!
//! A blocking call that cannot complete yet must let time pass until the next thing that could
//! change the answer: a stack timer (`poll_at`), a frame the NIC will deliver, or the call's own
//! timeout. On the [`SystemClock`] that means sleeping in `poll(2)`/epoll on
//! the NICs' descriptors. On the [`VirtualClock`] nobody else can act while the (single) thread
//! waits — "everyone waits" — so time simply *jumps* to that next deadline: a simulated minute of
//! retransmission timers takes microseconds, and the same seed gives the same run.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use ringstack_stack::time::Instant;

use crate::clock::{Clock, SystemClock};

/// A [`Clock`] that a [`crate::Net`] drives: either real (it sleeps) or virtual (it jumps).
pub trait DriverClock: Clock + Send + Sync + 'static {
    /// Whether this clock is simulated: waiting advances it instead of sleeping.
    fn is_virtual(&self) -> bool {
        false
    }

    /// Moves a virtual clock forward to `t` (never backwards). Real clocks ignore it.
    fn advance_to(&self, t: Instant) {
        let _ = t;
    }
}

impl DriverClock for SystemClock {}

/// Simulated time, shared by every clone. It only moves when a waiting driver moves it (to the
/// earliest deadline of any host, or to the waiting call's own timeout).
#[derive(Clone, Debug, Default)]
pub struct VirtualClock {
    micros: Arc<AtomicI64>,
}

impl VirtualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

impl DriverClock for VirtualClock {
    fn is_virtual(&self) -> bool {
        true
    }

    fn advance_to(&self, t: Instant) {
        self.micros.fetch_max(t.total_micros(), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_only_moves_forward() {
        let c = VirtualClock::new();
        let c2 = c.clone();
        c.advance_to(Instant::from_millis(5));
        c.advance_to(Instant::from_millis(3));
        assert_eq!(c2.now(), Instant::from_millis(5));
        assert!(c.is_virtual());
        assert!(!SystemClock::new().is_virtual());
    }
}
