//! # ringstack-stack: the protocols, sans-IO
//!
//! A frame goes up: [`Stack::handle_frame`] → [`ethernet`] → [`arp`] | [`ipv4`] → [`icmp`] |
//! [`udp`] | [`tcp`] → a socket buffer. Data goes down: socket → TCP/UDP → IPv4 (fragmenting) →
//! ARP next hop → Ethernet → [`Stack::poll_transmit`]. No syscalls, no clock reads, no threads:
//! the driver passes `now` in.
//!
//! Driver loop (call order):
//! 1. for each received frame: `handle_frame(now, frame)`;
//! 2. if `poll_at() <= now`: `handle_timeout(now)`;
//! 3. while `poll_transmit(now, buf)` returns `Some(len)`: send `buf[..len]`;
//! 4. drain `poll_readiness()` to learn which sockets changed;
//! 5. sleep until the next frame or `poll_at()`.
//!
//! Every refused frame is counted under one [`DropReason`] and every layer boundary can be
//! traced ([`trace`]): that is how the journey of a frame is shown.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod arp;
pub mod checksum;
pub mod config;
pub mod counters;
pub mod cx;
pub mod ethernet;
pub mod icmp;
mod interface;
pub mod ipv4;
pub mod socket;
mod stack;
pub mod tcp;
pub mod time;
pub mod trace;
pub mod udp;

pub use config::Config;
pub use counters::{Counter, Counters, DropReason};
pub use icmp::{EchoReply, IcmpError, PingEvent};
pub use socket::{IcmpHandle, Readiness, SocketHandle, TcpHandle, UdpHandle};
pub use stack::{PingError, Stack};
pub use tcp::send_buffer::SharedBytes;
pub use tcp::{TcpConfig, TcpError};
pub use time::{Duration, Instant};
pub use udp::UdpError;
