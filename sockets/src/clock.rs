//! Clocks. The stack never reads one; the driver does, through this trait, so that the same
//! driver runs on real time (a NIC) or virtual time (a simulation).

use ringstack_stack::time::Instant;

/// A source of `now`.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Instant;
}

/// Monotonic wall time, counted from the clock's creation.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: std::time::Instant,
}

impl SystemClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        SystemClock {
            start: std::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as i64)
    }
}
