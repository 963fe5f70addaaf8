//! # ringstack-stack: the protocols, sans-IO
//!
//! A frame goes up: [`Stack::handle_frame`] → Ethernet → ARP | IPv4 → ICMP | UDP | TCP → a socket
//! buffer. Data goes down: socket → TCP/UDP → IPv4 (fragmenting) → ARP next hop → Ethernet →
//! [`Stack::poll_transmit`]. No syscalls, no clock reads, no threads: the driver passes `now` in.
//!
//! Driver loop (call order):
//! 1. for each received frame: `handle_frame(now, frame)`;
//! 2. if `poll_at() <= now`: `handle_timeout(now)`;
//! 3. while `poll_transmit(now, buf)` returns `Some(len)`: send `buf[..len]`;
//! 4. sleep until the next frame or `poll_at()`.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod checksum;
pub mod config;
pub mod counters;
pub mod cx;
pub mod socket;
pub mod tcp;
pub mod time;
pub mod trace;
