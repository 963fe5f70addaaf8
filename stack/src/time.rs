//! Time as an input. The protocol code never reads a clock: every entry point takes `now`.
//!
//! We use smoltcp's microsecond [`Instant`] and [`Duration`] so that ringstack and smoltcp can
//! share one virtual clock in simulations and benchmarks.

pub use smoltcp::time::{Duration, Instant};
