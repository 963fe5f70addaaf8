//! ringstack NIC backends: move batches of Ethernet frames, knowing nothing of IP.
//!
//! Every backend implements [`Nic`], a small batch-oriented device interface:
//!
//! - [`Nic::receive`] lends up to `budget` received frames to a sink, each as a borrowed
//!   `&[u8]` (no copy where the backend allows: the AF_PACKET ring will hand out slices of its
//!   mmap'd blocks);
//! - [`Nic::transmit`] lends one TX slot of [`NicInfo::max_frame`] bytes to a fill closure which
//!   writes a frame in place and returns its length;
//! - [`Nic::flush`] pushes the queued TX frames out, one "kick" per batch;
//! - [`Nic::poll_at`] and [`Nic::wait_fd`] tell a driver when and on what to wait.
//!
//! Time is always an input (`now`, a [`smoltcp::time::Instant`]): no backend reads a clock, so a
//! simulation on virtual time is deterministic.
//!
//! # Call order
//!
//! A driver loop typically does, per iteration: `receive` (feed the stack), then `transmit`
//! repeatedly while the stack has frames, then one `flush`, then waits until `poll_at` (or the
//! stack's own deadline, or `wait_fd` readiness), whichever is first.
//!
//! # Backends
//!
//! - [`memory`]: an in-memory link ([`MemoryLink::pair`]) with seeded, per-direction
//!   [`Impairment`] (loss, duplication, reordering, corruption, delay, jitter, bandwidth cap and
//!   queue limit), for deterministic simulation of two stacks.
//! - [`pcap`]: [`PcapNic`], middleware that wraps any `Nic` and writes every frame to a classic
//!   libpcap file; [`PcapWriter`] is also usable standalone.
//! - To come: `ring` (AF_PACKET TPACKET_V3 mmap rings), `tap` (TAP device) and `pnet` (plain
//!   packet socket, one syscall per frame, the copy path the ring is measured against). All of
//!   their `unsafe` code (mmap, ioctls, setsockopt) will live in `nic/src/sys/`; everything else
//!   in this crate stays `#![deny(unsafe_code)]`.
#![warn(missing_docs)]
#![deny(unsafe_code)]

use std::os::fd::RawFd;

use smoltcp::time::Instant;

mod error;
pub mod impair;
pub mod lab;
pub mod memory;
pub mod pcap;
pub mod pnet;
pub mod ring;
pub mod smoltcp_device;
mod sys;
pub mod tap;
pub mod vnet;

pub use error::NicError;
pub use impair::ImpairNic;
pub use memory::{Impairment, LinkConfig, MemoryLink, MemoryNic, ParseImpairmentError};
pub use pcap::{PcapNic, PcapWriter};
pub use pnet::{PnetConfig, PnetNic};
pub use ring::{disable_offloads, RingConfig, RingNic, RingStats, RingVersion};
pub use smoltcp_device::SmoltcpDevice;
pub use sys::file_map::map_file_readonly;
pub use sys::netns::unshare_thread_network_namespace;
pub use tap::TapNic;

/// Length of an Ethernet II header (destination MAC, source MAC, ethertype), without FCS.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Static facts about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicInfo {
    /// Human-readable name, e.g. `"veth1"` or `"memory-a"`.
    pub name: String,
    /// IP MTU: the largest IP packet the device carries, e.g. 1500.
    pub mtu: usize,
    /// The device's MAC address, if it has one.
    pub mac: Option<[u8; 6]>,
    /// The largest frame [`Nic::transmit`] accepts and [`Nic::receive`] yields, in bytes
    /// (for Ethernet, `mtu + 14`: the FCS is not part of a frame here).
    pub max_frame: usize,
    /// The largest frame [`Nic::receive`] may yield: `max_frame`, except on a backend that
    /// takes GSO super-frames from the kernel (a ring with `RingConfig::vnet_hdr`), where a
    /// TCP segment of up to 64 KiB arrives in one frame (65,549 bytes with its headers).
    pub max_rx_frame: usize,
}

/// Counters of a device. All of them only ever increase.
///
/// The impairment counters (`lost` … `queue_drops`) are those of an impairing link (the
/// in-memory link) and stay zero on real devices. On the in-memory link they are counted by the
/// *sending* end: they describe what happened to the frames this end transmitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NicStats {
    /// Frames handed to a receive sink.
    pub rx_frames: u64,
    /// Bytes of the frames handed to a receive sink.
    pub rx_bytes: u64,
    /// Frames accepted by `transmit` (before any impairment of the link).
    pub tx_frames: u64,
    /// Bytes of the frames accepted by `transmit`.
    pub tx_bytes: u64,
    /// Frames that arrived but were dropped before being received (e.g. RX ring full).
    pub rx_dropped: u64,
    /// Frames refused by `transmit` (too large, link closed, TX ring full).
    pub tx_dropped: u64,
    /// Frames lost on the link (impairment `loss`).
    pub lost: u64,
    /// Extra copies delivered (impairment `dup`).
    pub duplicated: u64,
    /// Frames held back so that later frames overtake them (impairment `reorder`).
    pub reordered: u64,
    /// Frames with one bit flipped (impairment `corrupt`).
    pub corrupted: u64,
    /// Frames (copies) delivered later than the instant they were sent
    /// (delay, jitter, serialization time, queueing or reordering).
    pub delayed: u64,
    /// Frames tail-dropped because the bandwidth-capped queue was full.
    pub queue_drops: u64,
    /// System calls the backend made to move frames (receive, send, TX kicks, `poll` waits):
    /// the ring's whole point is to make this much smaller than the frame count.
    pub syscalls: u64,
}

/// A device that moves batches of Ethernet frames.
///
/// See the [crate docs](crate) for the call order a driver follows.
pub trait Nic {
    /// Static facts: name, MTU (IP MTU, e.g. 1500), MAC if the device has one, max frame len.
    fn info(&self) -> NicInfo;

    /// Hands up to `budget` received frames to `sink`, each borrowed (no copy where the backend
    /// allows), returns how many.
    ///
    /// Only frames receivable at `now` are handed out; `Ok(0)` means none is.
    fn receive(
        &mut self,
        now: Instant,
        budget: usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, NicError>;

    /// Offers a TX slot of `info().max_frame` bytes to `fill`, which writes a frame and returns
    /// its length (0 = nothing to send; the slot is released). Returns the length queued.
    ///
    /// A length larger than the slot is refused with [`NicError::TooLarge`] and counted in
    /// [`NicStats::tx_dropped`]. The slot's initial contents are unspecified (it may hold an
    /// earlier frame): `fill` must write every byte it reports.
    fn transmit(
        &mut self,
        now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, NicError>;

    /// Pushes queued TX frames out (one "kick" per batch). Default no-op.
    fn flush(&mut self, now: Instant) -> Result<(), NicError> {
        let _ = now;
        Ok(())
    }

    /// Earliest time something will become receivable without outside action (e.g. a delayed
    /// frame on the in-memory link); None if unknown/never.
    ///
    /// The instant may be in the past: a frame is receivable right now.
    fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// A file descriptor that becomes readable when frames arrive (for poll()), if any.
    fn wait_fd(&self) -> Option<RawFd> {
        None
    }

    /// Whether a received frame is waiting, if the device can tell without a system call (an
    /// mmap'd ring reads a status word; a socket or a TAP cannot tell: `None`, the default).
    ///
    /// A driver spins on a device only where this is `Some`: there a look that finds nothing
    /// costs no system call.
    fn rx_ready(&self) -> Option<bool> {
        None
    }

    /// Counters of the device.
    fn stats(&self) -> NicStats;

    /// Waits up to `timeout` until a frame may be receivable — the "interrupt": `poll()` on
    /// [`Nic::wait_fd`]. Returns whether one may be. A device without a descriptor returns
    /// `Ok(false)` at once (drive it by [`Nic::poll_at`] instead).
    fn wait_readable(&self, timeout: std::time::Duration) -> Result<bool, NicError> {
        match self.wait_fd() {
            Some(fd) => Ok(sys::poll_readable(fd, timeout)?),
            None => Ok(false),
        }
    }

    /// Copies `frame` into a TX slot and queues it: a convenience over [`Nic::transmit`] for
    /// callers that already hold the frame in a buffer. Returns the length queued.
    ///
    /// A frame longer than `info().max_frame` is refused with [`NicError::TooLarge`] (and
    /// counted by the device in `tx_dropped`).
    fn send(&mut self, now: Instant, frame: &[u8]) -> Result<usize, NicError> {
        self.transmit(now, &mut |slot: &mut [u8]| {
            if let Some(dst) = slot.get_mut(..frame.len()) {
                dst.copy_from_slice(frame);
            }
            // Longer than the slot: reporting the true length makes the device refuse it.
            frame.len()
        })
    }
}

/// Forwards every `Nic` method through a pointer type (`&mut N`, `Box<N>`).
macro_rules! forward_nic {
    ($($ptr:ty),*) => {$(
        impl<N: Nic + ?Sized> Nic for $ptr {
            fn info(&self) -> NicInfo {
                (**self).info()
            }
            fn receive(
                &mut self,
                now: Instant,
                budget: usize,
                sink: &mut dyn FnMut(&[u8]),
            ) -> Result<usize, NicError> {
                (**self).receive(now, budget, sink)
            }
            fn transmit(
                &mut self,
                now: Instant,
                fill: &mut dyn FnMut(&mut [u8]) -> usize,
            ) -> Result<usize, NicError> {
                (**self).transmit(now, fill)
            }
            fn flush(&mut self, now: Instant) -> Result<(), NicError> {
                (**self).flush(now)
            }
            fn poll_at(&self) -> Option<Instant> {
                (**self).poll_at()
            }
            fn wait_fd(&self) -> Option<RawFd> {
                (**self).wait_fd()
            }
            fn rx_ready(&self) -> Option<bool> {
                (**self).rx_ready()
            }
            fn wait_readable(&self, timeout: std::time::Duration) -> Result<bool, NicError> {
                (**self).wait_readable(timeout)
            }
            fn stats(&self) -> NicStats {
                (**self).stats()
            }
            fn send(&mut self, now: Instant, frame: &[u8]) -> Result<usize, NicError> {
                (**self).send(now, frame)
            }
        }
    )*};
}

forward_nic!(&mut N, Box<N>);

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn forwarding_impls_work_through_box_and_mut_ref() {
        let (a, mut b) = MemoryLink::pair(LinkConfig::default());
        let mut boxed: Box<dyn Nic + Send> = Box::new(a);
        assert_eq!(boxed.info().name, "memory-a");
        {
            let mut by_ref: &mut dyn Nic = &mut *boxed;
            let by_ref = &mut by_ref;
            assert_eq!(by_ref.send(Instant::ZERO, &[1, 2, 3]).unwrap(), 3);
        }
        let mut got = Vec::new();
        let n = b
            .receive(Instant::ZERO, 8, &mut |f| got.push(f.to_vec()))
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(got, vec![vec![1, 2, 3]]);
        assert_eq!(boxed.stats().tx_frames, 1);
        assert_send::<MemoryNic>();
    }

    #[test]
    fn send_refuses_frames_longer_than_max_frame() {
        let (mut a, _b) = MemoryLink::pair(LinkConfig::default());
        let max = a.info().max_frame;
        assert_eq!(max, 1514);
        let err = a.send(Instant::ZERO, &vec![0; max + 1]).unwrap_err();
        assert!(matches!(err, NicError::TooLarge { len, max: m } if len == max + 1 && m == max));
        assert_eq!(a.stats().tx_dropped, 1);
        assert_eq!(a.stats().tx_frames, 0);
        assert_eq!(a.send(Instant::ZERO, &vec![0; max]).unwrap(), max);
    }
}
