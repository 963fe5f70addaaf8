//! # ringstack-fuzz: fuzz harnesses for ringstack's ingress path
//!
//! Each module holds one harness, `run(data: &[u8])`, that a `cargo fuzz` target in
//! `fuzz_targets/` calls and that `tests/corpus.rs` replays over the seed corpus as a plain test
//! (so the harnesses also run, on the committed seeds, without cargo-fuzz):
//!
//! - [`frame`]: any bytes as Ethernet frames into a stack with a TCP listener, two established
//!   TCP connections, a UDP socket and a ping socket;
//! - [`tcp_options`]: the TCP options parser, with an emit/re-parse round trip;
//! - [`reassembly`]: arbitrary fragment sequences into the IPv4 reassembler, with memory bounds
//!   and a content oracle;
//! - [`script`]: arbitrary sequences of well-formed (or deliberately broken) TCP segments and
//!   socket calls against one connection, with a byte-stream oracle in both directions.
//!
//! smoltcp's checksum verification always passes under `cfg(fuzzing)`; ringstack verifies its own
//! checksums, so the harnesses compute correct ones (with [`wire::inet_checksum`], independent of
//! the stack's code) wherever an input is meant to reach the deeper layers.
#![deny(unsafe_code)]

pub mod frame;
pub mod input;
pub mod invariants;
pub mod reassembly;
pub mod script;
pub mod seeds;
pub mod tcp_options;
pub mod wire;
