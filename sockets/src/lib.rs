//! # ringstack-sockets: what applications hold
//!
//! A [`Host`] binds a sans-IO [`Stack`](ringstack_stack::Stack) to a [`Nic`](ringstack_nic::Nic)
//! and drives it: frames in, timers, frames out. [`sim`] steps several hosts on one virtual
//! clock, which is how the demo and the deterministic tests run.
//!
//! The std-like socket types and the five I/O models (blocking, non-blocking, select/poll/epoll,
//! readiness callbacks, completions) are built on top of this driver.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod clock;
pub mod host;
pub mod sim;

pub use clock::{Clock, SystemClock};
pub use host::Host;
