//! The TAP backend: [`TapNic`].
//!
//! A TAP device (`/dev/net/tun`, TAP mode, no packet-information header) whose file
//! descriptor is non-blocking. Each frame costs one `read`/`write` and one copy through an
//! internal buffer: [`Nic::receive`] reads a frame into a buffer and lends it to the sink;
//! [`Nic::transmit`] lends a buffer of `max_frame` bytes and writes what `fill` put in.
//!
//! The other end of a TAP is the kernel: a frame ringstack transmits is *received* by the
//! kernel on the TAP interface, and frames the kernel sends out of the TAP interface are what
//! ringstack receives.
//!
//! # Offloads: virtio-net headers ([`TapNic::with_vnet_hdr`])
//!
//! With `IFF_VNET_HDR` a `virtio_net_hdr` precedes every frame both ways, and `TUNSETOFFLOAD`
//! (`TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN`) tells the kernel that this device takes partial
//! checksums and TCP/IPv4 super-frames: the kernel's TCP then sends through the TAP without
//! segmenting or checksumming (TSO on the TAP interface), up to 64 KiB per frame. Received
//! frames are prepared exactly as on the ring ([`crate::vnet`]: partial checksums completed in
//! place, TCP super-frames handed over whole, [`NicInfo::max_rx_frame`] 65,549 bytes, UDP_L4
//! GSO refused and counted); transmitted frames get an all-zero header (no GSO, checksums
//! complete). [`TapNic::vnet_stats`] counts what the headers asked for.
//!
//! # MAC address
//!
//! The TAP interface has a MAC of its own, but that one belongs to the kernel side
//! ([`TapNic::kernel_mac`]). ringstack is a separate host behind it, so
//! [`NicInfo::mac`] is `None`: the caller chooses ringstack's MAC.
//!
//! # Privileges and the lab
//!
//! Creating a TAP needs CAP_NET_ADMIN. A device created here is not persistent: it disappears
//! when the `TapNic` is dropped (one made persistent by `ip tuntap add`, as the lab's `rstap0`,
//! is attached to and stays). It is created in the calling thread's network namespace; the lab
//! creates it inside a private namespace only (see `unshare_thread_network_namespace`).
//! The MTU is read once at creation (1500 for a new TAP); frames up to 64 KiB are still read
//! whole, and those longer than `max_rx_frame` are dropped and counted in `rx_dropped`.

use std::fmt;
use std::io;
use std::os::fd::RawFd;

use smoltcp::time::Instant;

use crate::sys::socket::interface_facts;
use crate::sys::tap::TapFd;
use crate::vnet::{self, RxVerdict, VnetHdr, VNET_HDR_LEN};
use crate::{Nic, NicError, NicInfo, NicStats, ETHERNET_HEADER_LEN};

/// Size of the receive buffer: any frame the kernel can hand a TAP (a 64 KiB IP packet and its
/// Ethernet header), after the virtio header if there is one.
const RX_BUFFER: usize = VNET_HDR_LEN + u16::MAX as usize + ETHERNET_HEADER_LEN;

/// What the virtio headers of received frames asked for ([`TapNic::with_vnet_hdr`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetStats {
    /// GSO super-frames handed over whole.
    pub gso_frames: u64,
    /// Partial checksums completed in place.
    pub csum_completed: u64,
    /// Frames refused (UDP_L4 GSO, a checksum area outside the frame, no header), also in
    /// `rx_dropped`.
    pub refused: u64,
}

/// A TAP device. See the [module docs](self).
pub struct TapNic {
    tap: TapFd,
    info: NicInfo,
    /// Whether a virtio header precedes every frame.
    vnet: bool,
    rx_buf: Vec<u8>,
    /// The virtio header (all zeros) then the frame, when `vnet`; the frame alone otherwise.
    tx_buf: Vec<u8>,
    stats: NicStats,
    vnet_stats: VnetStats,
}

impl TapNic {
    /// Creates a TAP device named `name` (`%d` is replaced by a free number; the kernel may
    /// pick another name: see [`TapNic::name`]) in the calling thread's network namespace.
    ///
    /// The interface is created down and unconfigured; bring it up (and give the kernel side
    /// an address) with `ip`.
    pub fn create(name: &str) -> Result<Self, NicError> {
        TapNic::open(name, false)
    }

    /// Like [`TapNic::create`], with `IFF_VNET_HDR` and the kernel's offloads towards this
    /// device on (see the [module docs](self#offloads-virtio-net-headers-tapnicwith_vnet_hdr)):
    /// the kernel may send TCP super-frames of up to 64 KiB with partial checksums.
    pub fn with_vnet_hdr(name: &str) -> Result<Self, NicError> {
        TapNic::open(name, true)
    }

    fn open(name: &str, vnet: bool) -> Result<Self, NicError> {
        let tap = TapFd::open(name, vnet).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => NicError::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "creating a TAP device needs CAP_NET_ADMIN: run as root or grant the \
                 capability (setcap cap_net_raw,cap_net_admin+ep)",
            )),
            _ => NicError::Io(io::Error::new(
                e.kind(),
                format!("creating TAP device {name:?} via /dev/net/tun failed: {e}"),
            )),
        })?;
        // Without headers, no offloads: also undoes what an earlier user of a persistent
        // device (the lab's `rstap0`) turned on, or the kernel would send super-frames.
        let offloads = if vnet {
            libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO_ECN
        } else {
            0
        };
        tap.set_offload(offloads).map_err(|e| {
            NicError::Io(io::Error::new(
                e.kind(),
                format!("TUNSETOFFLOAD on TAP device {:?} failed: {e}", tap.name()),
            ))
        })?;
        let facts = interface_facts(tap.name())?;
        let max_frame = facts.mtu + ETHERNET_HEADER_LEN;
        let hdr = if vnet { VNET_HDR_LEN } else { 0 };
        Ok(TapNic {
            info: NicInfo {
                name: tap.name().to_string(),
                mtu: facts.mtu,
                mac: None,
                max_frame,
                max_rx_frame: if vnet {
                    (RX_BUFFER - VNET_HDR_LEN).max(max_frame)
                } else {
                    max_frame
                },
            },
            tap,
            vnet,
            rx_buf: vec![0; RX_BUFFER.max(hdr + max_frame)],
            tx_buf: vec![0; hdr + max_frame],
            stats: NicStats::default(),
            vnet_stats: VnetStats::default(),
        })
    }

    /// The interface name the kernel gave the TAP.
    pub fn name(&self) -> &str {
        self.tap.name()
    }

    /// The MAC of the kernel side of the TAP (what the kernel uses as its source address).
    pub fn kernel_mac(&self) -> Result<Option<[u8; 6]>, NicError> {
        Ok(interface_facts(self.tap.name())?.mac)
    }

    /// Whether frames carry virtio headers ([`TapNic::with_vnet_hdr`]).
    pub fn vnet_hdr(&self) -> bool {
        self.vnet
    }

    /// What the virtio headers of received frames asked for (all zero without them).
    pub fn vnet_stats(&self) -> VnetStats {
        self.vnet_stats
    }
}

/// Prepares a frame read with its virtio header (`buf`: header then frame) as
/// [`VnetHdr::prepare_rx`] does, counting in `stats`. Returns the frame's range in `buf`, or
/// `None` if it is refused.
fn prepare_vnet_rx(buf: &mut [u8], stats: &mut VnetStats) -> Option<std::ops::Range<usize>> {
    let Some((hdr, frame)) = buf.split_first_chunk_mut::<VNET_HDR_LEN>() else {
        stats.refused += 1;
        return None;
    };
    let h = VnetHdr::parse(hdr);
    if h.prepare_rx(frame) != RxVerdict::Deliver {
        stats.refused += 1;
        return None;
    }
    stats.gso_frames += h.is_gso() as u64;
    stats.csum_completed += (h.flags & vnet::F_NEEDS_CSUM != 0) as u64;
    Some(VNET_HDR_LEN..buf.len())
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted
}

impl Nic for TapNic {
    fn info(&self) -> NicInfo {
        self.info.clone()
    }

    fn receive(
        &mut self,
        _now: Instant,
        budget: usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, NicError> {
        let mut handed = 0;
        while handed < budget {
            self.stats.syscalls += 1;
            let len = match self.tap.read(&mut self.rx_buf) {
                Ok(len) => len,
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e.into()),
            };
            let range = if self.vnet {
                match prepare_vnet_rx(&mut self.rx_buf[..len], &mut self.vnet_stats) {
                    Some(r) => r,
                    None => {
                        self.stats.rx_dropped += 1;
                        continue;
                    }
                }
            } else {
                0..len
            };
            let frame = &self.rx_buf[range];
            if frame.len() > self.info.max_rx_frame {
                self.stats.rx_dropped += 1;
                continue;
            }
            sink(frame);
            handed += 1;
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += frame.len() as u64;
        }
        Ok(handed)
    }

    fn transmit(
        &mut self,
        _now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, NicError> {
        let max = self.info.max_frame;
        // With vnet headers the frame follows an all-zero `virtio_net_hdr` (no GSO, checksums
        // complete: what the stack emits); `fill` cannot touch it.
        let hdr = if self.vnet { VNET_HDR_LEN } else { 0 };
        let len = fill(&mut self.tx_buf[hdr..hdr + max]);
        if len == 0 {
            return Ok(0);
        }
        if len > max {
            self.stats.tx_dropped += 1;
            return Err(NicError::TooLarge { len, max });
        }
        self.stats.syscalls += 1;
        match self.tap.write(&self.tx_buf[..hdr + len]) {
            Ok(_) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
                Ok(len)
            }
            Err(e) => {
                self.stats.tx_dropped += 1;
                Err(e.into())
            }
        }
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.tap.raw())
    }

    fn stats(&self) -> NicStats {
        self.stats
    }
}

impl fmt::Debug for TapNic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapNic")
            .field("info", &self.info)
            .field("vnet", &self.vnet)
            .field("stats", &self.stats)
            .field("vnet_stats", &self.vnet_stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A virtio header then a 64-byte "frame" whose checksummed area starts at byte 14 with
    /// the field 2 bytes in (a partial sum of 0x1234 in it).
    fn with_header(h: VnetHdr) -> Vec<u8> {
        let mut b = vec![0u8; VNET_HDR_LEN + 64];
        h.emit((&mut b[..VNET_HDR_LEN]).try_into().unwrap());
        for (i, x) in b[VNET_HDR_LEN..].iter_mut().enumerate() {
            *x = (i * 7 + 1) as u8;
        }
        b[VNET_HDR_LEN + 16..VNET_HDR_LEN + 18].copy_from_slice(&[0x12, 0x34]);
        b
    }

    const PARTIAL: VnetHdr = VnetHdr {
        flags: vnet::F_NEEDS_CSUM,
        gso_type: vnet::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 14,
        csum_offset: 2,
    };

    #[test]
    fn a_partial_checksum_is_completed_and_the_header_stripped() {
        let mut b = with_header(PARTIAL);
        let mut stats = VnetStats::default();
        let r = prepare_vnet_rx(&mut b, &mut stats).expect("delivered");
        assert_eq!(r, VNET_HDR_LEN..VNET_HDR_LEN + 64);
        let frame = &b[r];
        assert_ne!(&frame[16..18], &[0x12, 0x34], "the field was rewritten");
        // The area plus the pseudo-header sum that was in the field now folds to zero: a
        // receiver's verification (which adds the pseudo-header) passes.
        let mut area = frame[14..].to_vec();
        assert_eq!(area.len() % 2, 0);
        area.extend_from_slice(&[0x12, 0x34]);
        assert_eq!(vnet::checksum(&area), 0);
        assert_eq!(
            stats,
            VnetStats {
                gso_frames: 1,
                csum_completed: 1,
                refused: 0
            }
        );
    }

    #[test]
    fn a_plain_header_leaves_the_frame_alone() {
        let mut b = with_header(VnetHdr::default());
        let before = b.clone();
        let mut stats = VnetStats::default();
        assert_eq!(
            prepare_vnet_rx(&mut b, &mut stats),
            Some(VNET_HDR_LEN..before.len())
        );
        assert_eq!(b, before);
        assert_eq!(stats, VnetStats::default());
    }

    #[test]
    fn bad_or_unsupported_headers_are_refused_and_counted() {
        let mut stats = VnetStats::default();
        let mut udp_l4 = with_header(VnetHdr {
            gso_type: vnet::GSO_UDP_L4,
            ..VnetHdr::default()
        });
        assert_eq!(prepare_vnet_rx(&mut udp_l4, &mut stats), None);
        let mut outside = with_header(VnetHdr {
            csum_start: 63,
            ..PARTIAL
        });
        assert_eq!(prepare_vnet_rx(&mut outside, &mut stats), None);
        let mut short = vec![0u8; VNET_HDR_LEN - 1];
        assert_eq!(prepare_vnet_rx(&mut short, &mut stats), None);
        assert_eq!(stats.refused, 3);
        assert_eq!(stats.gso_frames + stats.csum_completed, 0);
    }
}
