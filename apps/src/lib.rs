//! The `ringstack` library: what the `ringstack` command serves, shared with the tests.
//!
//! - [`services`]: the protocols, sans-IO where it matters — HTTP/1.1 ([`services::http`]:
//!   parsing, routing, ranges, 304, MIME, written once) and the iperf3-compatible server;
//! - [`models`]: the echo, discard and HTTP services in four I/O styles (`serve --model
//!   direct|reactor|proactor|threads`), runnable on any [`ringstack_sockets::Net`] — a real NIC
//!   or one end of the in-memory link ([`models::run`]);
//! - [`control`]: the control socket of a running serve (`ringstack stats --control PATH`) and
//!   the statistics it answers with.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod control;
pub mod models;
pub mod services;
