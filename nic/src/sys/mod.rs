//! The only place of this crate where `unsafe` code is allowed: the AF_PACKET socket and its
//! mmap'd rings, interface ioctls, setsockopt/getsockopt, poll and the network-namespace
//! `unshare` used by the lab.
//!
//! Every `unsafe` block carries a `// SAFETY:` comment. The modules here expose small *safe*
//! wrappers; the backends (`ring`, `tap`, `pnet`) are written against them in safe code.
//!
//! - [`socket`]: an owned `AF_PACKET` socket (open, bind, socket options, statistics, the TX
//!   "kick"), interface queries (index, MAC, MTU) and `poll`.
//! - [`ring`]: the shared RX/TX ring mapping, with the block/frame status words accessed
//!   atomically (Acquire loads, Release stores).
//! - [`netns`]: moving the calling *thread* into a fresh, empty network namespace.
//! - [`file_map`]: read-only file mappings for `send_file`.
//! - [`process`]: children that die with their parent (`PR_SET_PDEATHSIG`).
//! - [`tap`]: a TAP device from `/dev/net/tun` (`TUNSETIFF`, `IFF_VNET_HDR`, `TUNSETOFFLOAD`).
#![allow(unsafe_code)]

pub(crate) mod file_map;
pub(crate) mod netns;
pub(crate) mod process;
pub(crate) mod ring;
pub(crate) mod socket;
pub(crate) mod tap;

/// Waits up to `timeout` until `fd` is readable (or signals an error condition).
pub(crate) fn poll_readable(
    fd: std::os::fd::RawFd,
    timeout: std::time::Duration,
) -> std::io::Result<bool> {
    socket::poll_fd(fd, libc::POLLIN, timeout)
}
