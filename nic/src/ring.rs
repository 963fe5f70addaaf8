//! The AF_PACKET mmap-ring backend (TPACKET_V3 by default, TPACKET_V2 on request): [`RingNic`].
//!
//! One `AF_PACKET`/`SOCK_RAW` socket bound to an interface, with an RX ring of
//! [`RingConfig::block_count`] blocks of [`RingConfig::block_size`] bytes and a TX ring of
//! fixed [`RingConfig::frame_size`]-byte frames, both mapped into this process (the "DMA
//! ring" of the design). All unsafe code (socket options, the mapping, the status words) lives
//! in `crate::sys`; this file is safe code over it.
//!
//! # Receive (zero copy)
//!
//! The kernel fills an RX block with variable-size frames and hands the whole block over
//! (`TP_STATUS_USER`) when it is full or after [`RingConfig::retire_timeout`].
//! [`Nic::receive`] walks the user-owned blocks in ring order and lends each frame to the sink
//! as a slice *of the mapping*. A block goes back to the kernel only once all of its frames
//! were handed out; a cursor keeps the position inside a block across calls, so `budget` is
//! honoured exactly. Frames are therefore seen up to `retire_timeout` late on a quiet link.
//!
//! With [`RingVersion::V2`] (`RingConfig::version`) the RX ring is instead an array of
//! fixed-size [`RingConfig::frame_size`]-byte frame slots (`tpacket2_hdr`, `sockaddr_ll`,
//! data), each handed over (`TP_STATUS_USER`) as soon as the kernel has written it: no block
//! retirement and so no `retire_timeout` latency, at the price of a status word per frame and
//! a fixed slot per frame (frames longer than `frame_size - 66` bytes are truncated).
//! [`Nic::receive`] walks the user-owned frames in ring order, lends each one, and hands each
//! slot back right after. `PACKET_VERSION` applies to both rings, so the TX ring then uses
//! `tpacket2_hdr` frames too (data at offset 32 instead of 48). A V2 ring does not strip or
//! report VLAN tags any differently from V3 for the untagged frames the lab uses; tagged
//! frames arrive without their tag (`tp_vlan_tci` is not read).
//!
//! Frames this host transmits on the interface are not received: the socket sets
//! `PACKET_IGNORE_OUTGOING` (Linux ≥ 4.20), and as a second guard any frame whose
//! `sockaddr_ll.sll_pkttype` (stored after each `tpacket3_hdr`) is `PACKET_OUTGOING` is
//! skipped. Frames truncated by the ring (`tp_snaplen < tp_len`: larger than a block can hold)
//! are skipped and counted in [`RingStats::truncated`] and `rx_dropped`.
//!
//! # Transmit (one kick per batch)
//!
//! [`Nic::transmit`] lends the data area of the next free TX frame; the frame is marked
//! `TP_STATUS_SEND_REQUEST` and [`Nic::flush`] makes one `send(fd, NULL, 0, MSG_DONTWAIT)`
//! "kick" for all frames queued since the last one (non-blocking: a driver loop never sleeps
//! in the kernel). When the next frame is still owned by the kernel, `transmit` kicks once and
//! looks again; if it is still busy the frame is refused with an `io::ErrorKind::WouldBlock`
//! error and counted in `tx_dropped` (retry after a `flush`).
//!
//! # Offloads: virtio-net headers (`RingConfig::vnet_hdr`)
//!
//! On a veth pair the kernel side may hand AF_PACKET GSO super-frames (bigger than the MTU)
//! with partial checksums. Two ways to deal with it:
//!
//! - Without `vnet_hdr` (the default): the lab turns the offloads off on the kernel-side veth
//!   (`ethtool -K veth0 tso off gso off gro off tx off`, see [`disable_offloads`]), so only
//!   MTU-sized frames with complete checksums arrive.
//! - With `vnet_hdr`: the socket sets `PACKET_VNET_HDR`, the kernel puts a `virtio_net_hdr`
//!   before every frame, and the offloads can stay on. Received frames are prepared as
//!   [`crate::vnet`] describes (partial checksums completed in place, TCP super-frames of up
//!   to 64 KiB handed over whole: [`NicInfo::max_rx_frame`]); transmitted frames get an
//!   all-zero header (no GSO, checksums complete). Under TPACKET_V2 every RX slot must hold a
//!   64 KiB frame: use [`RingConfig::with_vnet_hdr`].
//!
//! Frames longer than the ring can hold are counted as truncated, never handed out half.
//!
//! # Statistics
//!
//! The kernel's `PACKET_STATISTICS` (read-and-reset) are accumulated on every
//! [`Nic::stats`]/[`RingNic::ring_stats`] call: `tp_drops` (frames lost because the RX ring was
//! full) feed [`NicStats::rx_dropped`].
//!
//! # Privileges
//!
//! Opening needs CAP_NET_RAW (the error says so); the interface is looked up in the calling
//! thread's network namespace.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::process::Command;
use std::time::Duration;

use smoltcp::time::Instant;

use crate::sys::ring::{
    RingLayout, RingMap, Tpacket, BLOCK_STATUS_OFFSET, TP2_LEN_OFFSET, TP2_SNAPLEN_OFFSET,
};
use crate::sys::socket::{interface_facts, poll_fd, PacketSocket, RingRequest};
use crate::vnet::{self, RxVerdict, VnetHdr, VNET_HDR_LEN};
use crate::{Nic, NicError, NicInfo, NicStats, ETHERNET_HEADER_LEN};

/// The `PACKET_VERSION` of a [`RingNic`] (it fixes the layout of both rings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RingVersion {
    /// TPACKET_V2: one status word per fixed-size frame; each received frame is visible at
    /// once (low latency on a quiet link), one slot per frame.
    V2,
    /// TPACKET_V3 (default): RX frames packed into blocks handed over when full or after
    /// [`RingConfig::retire_timeout`] (dense, few hand-overs, up to 1 ms late when quiet).
    #[default]
    V3,
}

/// Configuration of a [`RingNic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingConfig {
    /// TPACKET_V3 (default) or TPACKET_V2, see [`RingVersion`].
    pub version: RingVersion,
    /// Bytes per RX block (default 1 MiB). A multiple of the page size and of `frame_size`.
    pub block_size: usize,
    /// RX blocks (default 8).
    pub block_count: usize,
    /// Bytes per TX frame slot, header included (default 2048; the frame data may use
    /// `frame_size - 48` bytes, V2: `frame_size - 32`). A multiple of 16. Also the nominal RX
    /// frame size the kernel checks the request against (V3 packs RX frames by their real size;
    /// V2 gives every RX frame such a slot, its data at offset 66 for the default MTU path).
    pub frame_size: usize,
    /// TX blocks of `block_size` bytes (default 1: 512 frames of 2048 bytes).
    pub tx_block_count: usize,
    /// How long the kernel waits before handing over a partly filled RX block (default 1 ms;
    /// whole milliseconds, at least 1). Ignored by V2.
    pub retire_timeout: Duration,
    /// Set `PACKET_QDISC_BYPASS`: transmit straight to the driver, skipping the qdisc (and so
    /// its queueing, shaping and `tc` visibility). Default false.
    pub qdisc_bypass: bool,
    /// Receive frames not addressed to the interface's MAC (`PACKET_MR_PROMISC`). Default false.
    pub promiscuous: bool,
    /// Set `PACKET_VNET_HDR` (see the [module docs](self#offloads-virtio-net-headers-ringconfigvnet_hdr)):
    /// take GSO super-frames and partial checksums from the kernel. Default false.
    pub vnet_hdr: bool,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            version: RingVersion::V3,
            block_size: 1 << 20,
            block_count: 8,
            frame_size: 2048,
            tx_block_count: 1,
            retire_timeout: Duration::from_millis(1),
            qdisc_bypass: false,
            promiscuous: false,
            vnet_hdr: false,
        }
    }
}

/// Bytes a TPACKET_V2 RX slot needs for a 64 KiB GSO frame: the largest IPv4 packet, its
/// Ethernet header, the virtio header and the slot's own headers (66 bytes), page-rounded.
const V2_GSO_FRAME_SIZE: usize = 69_632;

impl RingConfig {
    /// A ring with `PACKET_VNET_HDR` (GSO super-frames in, offloads left on) of `version`,
    /// sized for 64 KiB frames: V3 keeps 1 MiB blocks (frames are packed by their real size);
    /// V2 gets 64 RX and 64 TX slots of 68 KiB (4.25 MiB each way).
    pub fn with_vnet_hdr(version: RingVersion) -> RingConfig {
        let base = RingConfig {
            version,
            vnet_hdr: true,
            ..RingConfig::default()
        };
        match version {
            RingVersion::V3 => base,
            RingVersion::V2 => RingConfig {
                block_size: V2_GSO_FRAME_SIZE,
                frame_size: V2_GSO_FRAME_SIZE,
                block_count: 64,
                tx_block_count: 64,
                ..base
            },
        }
    }
}

impl RingConfig {
    fn validate(&self) -> Result<(), NicError> {
        let invalid = |msg: String| {
            Err(NicError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                msg,
            )))
        };
        let page = 4096;
        if self.block_size == 0
            || !self.block_size.is_multiple_of(page)
            || self.block_size > u32::MAX as usize
        {
            return invalid(format!(
                "ring block_size {} must be a non-zero multiple of the page size ({page})",
                self.block_size
            ));
        }
        if self.frame_size < 128
            || !self.frame_size.is_multiple_of(16)
            || !self.block_size.is_multiple_of(self.frame_size)
        {
            return invalid(format!(
                "ring frame_size {} must be a multiple of 16, at least 128, dividing block_size {}",
                self.frame_size, self.block_size
            ));
        }
        if self.block_count == 0 || self.tx_block_count == 0 {
            return invalid("ring block_count and tx_block_count must be at least 1".into());
        }
        let total = self
            .block_size
            .checked_mul(self.block_count + self.tx_block_count);
        if total.is_none_or(|t| t > (1 << 31)) {
            return invalid(
                "ring too large: keep (block_count + tx_block_count) * block_size at most 2 GiB"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Counters of the ring itself. All of them only ever increase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RingStats {
    /// Frames the kernel saw for this socket (`tp_packets`, received + dropped).
    pub kernel_packets: u64,
    /// Frames the kernel dropped because no RX block was free (`tp_drops`).
    pub kernel_drops: u64,
    /// Times the RX queue froze because every block was user-owned (`tp_freeze_q_cnt`).
    pub freeze_count: u64,
    /// RX blocks handed back to the kernel (V3).
    pub blocks_released: u64,
    /// RX frames handed back to the kernel (V2).
    pub frames_released: u64,
    /// Frames skipped because the ring truncated them (`tp_snaplen < tp_len`).
    pub truncated: u64,
    /// Frames skipped because they were this host's own outgoing frames.
    pub outgoing_skipped: u64,
    /// RX blocks (V3) or frames (V2) whose layout did not parse (abandoned and returned to the
    /// kernel).
    pub malformed_blocks: u64,
    /// TX kicks (`send` calls) made.
    pub tx_kicks: u64,
    /// Received GSO super-frames (`vnet_hdr`: `gso_type` not NONE), handed over whole.
    pub gso_frames: u64,
    /// Received frames whose partial checksum (`NEEDS_CSUM`) was completed in place.
    pub csum_completed: u64,
    /// Received frames refused for their virtio header (UDP_L4 GSO, checksum area outside the
    /// frame); also counted in `rx_dropped`.
    pub vnet_refused: u64,
    /// `poll` calls made while waiting for frames.
    pub polls: u64,
}

/// Where a frame lent by a [`RingNic`] lies in its rings (see [`RingGeometry::locate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RingPosition {
    /// A received frame of a TPACKET_V3 ring: RX block `block`, its data `offset` bytes in.
    RxBlock {
        /// Index of the RX block.
        block: usize,
        /// Offset of the frame's data inside the block.
        offset: usize,
    },
    /// A received frame of a TPACKET_V2 ring: RX frame slot `slot`.
    RxSlot {
        /// Index of the RX frame slot.
        slot: usize,
    },
    /// A TX frame slot.
    TxSlot {
        /// Index of the TX frame slot.
        slot: usize,
    },
}

impl fmt::Display for RingPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingPosition::RxBlock { block, offset } => {
                write!(f, "ring rx block {block} +{offset:#x}")
            }
            RingPosition::RxSlot { slot } => write!(f, "ring rx slot {slot}"),
            RingPosition::TxSlot { slot } => write!(f, "ring tx slot {slot}"),
        }
    }
}

/// The address ranges of a [`RingNic`]'s mapped rings ([`RingNic::geometry`]): plain numbers,
/// so a driver can keep a copy while the NIC is lent out and tell, from a frame's address
/// alone, which block or slot it lies in. Nothing is dereferenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingGeometry {
    base: usize,
    version: RingVersion,
    rx_len: usize,
    rx_block_size: usize,
    rx_frame_size: usize,
    tx_frame_size: usize,
    tx_len: usize,
}

impl RingGeometry {
    /// Which RX block (V3) or slot (V2), or which TX slot, `frame` lies in; `None` when it is
    /// not inside the rings (a frame copied by a wrapper such as `ImpairNic`, say).
    pub fn locate(&self, frame: &[u8]) -> Option<RingPosition> {
        let at = (frame.as_ptr() as usize).checked_sub(self.base)?;
        if at < self.rx_len {
            return Some(match self.version {
                RingVersion::V3 => RingPosition::RxBlock {
                    block: at / self.rx_block_size,
                    offset: at % self.rx_block_size,
                },
                RingVersion::V2 => RingPosition::RxSlot {
                    slot: at / self.rx_frame_size.max(1),
                },
            });
        }
        let tx = at - self.rx_len;
        (tx < self.tx_len).then(|| RingPosition::TxSlot {
            slot: tx / self.tx_frame_size.max(1),
        })
    }
}

/// The AF_PACKET ring backend (TPACKET_V3 or V2). See the [module docs](self).
pub struct RingNic {
    // Field order = drop order: unmap the rings before closing the socket.
    map: RingMap,
    socket: PacketSocket,
    info: NicInfo,
    version: RingVersion,
    /// V2: RX frame slots in the ring, and the one the next frame comes from.
    rx_frames: usize,
    rx_frame: usize,
    rx_blocks: usize,
    /// The RX block the next frame comes from.
    rx_block: usize,
    /// `PACKET_VNET_HDR` is on: a `virtio_net_hdr` precedes every frame of both rings.
    vnet: bool,
    /// Position inside `rx_block` once its walk has started.
    rx_cursor: Option<BlockCursor>,
    tx_frames: usize,
    /// The TX frame the next `transmit` uses.
    tx_head: usize,
    /// Frames queued since the last kick.
    tx_pending: usize,
    stats: NicStats,
    ring_stats: Cell<RingStats>,
}

fn open_error(what: &str, ifname: &str, e: io::Error) -> NicError {
    if e.kind() == io::ErrorKind::PermissionDenied || e.kind() == io::ErrorKind::NotFound {
        return NicError::Io(e);
    }
    NicError::Io(io::Error::new(
        e.kind(),
        format!("AF_PACKET ring on {ifname:?}: {what} failed: {e}"),
    ))
}

impl RingNic {
    /// Opens a ring on interface `ifname` (of the calling thread's network namespace) with the
    /// default [`RingConfig`].
    pub fn open(ifname: &str) -> Result<Self, NicError> {
        RingNic::with_config(ifname, RingConfig::default())
    }

    /// Opens a ring on interface `ifname` with `config`.
    ///
    /// The socket is created with protocol 0 (receiving nothing), the rings are set up and
    /// mapped, and only then is it bound to the interface with `ETH_P_ALL`: no frame of another
    /// interface ever enters the ring.
    pub fn with_config(ifname: &str, config: RingConfig) -> Result<Self, NicError> {
        config.validate()?;
        let facts = interface_facts(ifname)?;
        let max_frame = facts.mtu + ETHERNET_HEADER_LEN;
        let tpacket = match config.version {
            RingVersion::V2 => Tpacket::V2,
            RingVersion::V3 => Tpacket::V3,
        };
        // With vnet headers the header takes the first bytes of every TX frame's data area and
        // sits in front of every RX frame.
        let vnet_len = if config.vnet_hdr { VNET_HDR_LEN } else { 0 };
        let data_offset = tpacket.tx_data_offset() + vnet_len;
        // V2 RX slots hold `tp_mac` (66 for an Ethernet SOCK_RAW frame) + the frame.
        let rx_room = match config.version {
            RingVersion::V2 => config.frame_size - V2_RX_MAC_OFFSET - vnet_len,
            RingVersion::V3 => usize::MAX,
        };
        // Frames the kernel may hand over: 64 KiB super-frames with vnet headers (V3 packs them
        // into blocks; a block holds its header, one frame header and the frame).
        let max_rx_frame = if config.vnet_hdr {
            (usize::from(u16::MAX) + ETHERNET_HEADER_LEN)
                .min(rx_room)
                .min(config.block_size.saturating_sub(256))
                .max(max_frame)
        } else {
            max_frame
        };
        if max_frame > config.frame_size - data_offset || max_frame > rx_room {
            return Err(NicError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{ifname} has MTU {} (frames up to {max_frame} bytes) but TX frames of {} bytes \
                     hold at most {}: raise RingConfig::frame_size",
                    facts.mtu,
                    config.frame_size,
                    (config.frame_size - data_offset).min(rx_room)
                ),
            )));
        }
        let socket = PacketSocket::open()?;
        match config.version {
            RingVersion::V3 => socket
                .set_tpacket_v3()
                .map_err(|e| open_error("PACKET_VERSION=TPACKET_V3", ifname, e))?,
            RingVersion::V2 => socket
                .set_tpacket_v2()
                .map_err(|e| open_error("PACKET_VERSION=TPACKET_V2", ifname, e))?,
        }
        let set_ring = |rx: bool, req: &RingRequest| match config.version {
            RingVersion::V3 => socket.set_ring(rx, req),
            RingVersion::V2 => socket.set_ring_v2(rx, req),
        };
        socket
            .set_ignore_outgoing()
            .map_err(|e| open_error("PACKET_IGNORE_OUTGOING", ifname, e))?;
        if config.vnet_hdr {
            // Before the rings: the kernel refuses it once they exist (EBUSY).
            socket
                .set_vnet_hdr()
                .map_err(|e| open_error("PACKET_VNET_HDR", ifname, e))?;
        }
        if config.qdisc_bypass {
            socket
                .set_qdisc_bypass()
                .map_err(|e| open_error("PACKET_QDISC_BYPASS", ifname, e))?;
        }
        let frames_per_block = config.block_size / config.frame_size;
        let retire_ms = config.retire_timeout.as_millis().clamp(1, u32::MAX as u128) as u32;
        let rx = RingRequest {
            block_size: config.block_size as u32,
            block_nr: config.block_count as u32,
            frame_size: config.frame_size as u32,
            frame_nr: (frames_per_block * config.block_count) as u32,
            retire_blk_tov_ms: retire_ms,
        };
        set_ring(true, &rx).map_err(|e| open_error("PACKET_RX_RING", ifname, e))?;
        let tx_frames = frames_per_block * config.tx_block_count;
        let tx = RingRequest {
            block_size: config.block_size as u32,
            block_nr: config.tx_block_count as u32,
            frame_size: config.frame_size as u32,
            frame_nr: tx_frames as u32,
            retire_blk_tov_ms: 0,
        };
        set_ring(false, &tx).map_err(|e| open_error("PACKET_TX_RING", ifname, e))?;
        let map = RingMap::new(
            socket.raw(),
            RingLayout {
                version: tpacket,
                rx_frame_size: config.frame_size,
                rx_block_size: config.block_size,
                rx_block_count: config.block_count,
                tx_frame_size: config.frame_size,
                tx_frame_count: tx_frames,
            },
        )
        .map_err(|e| open_error("mmap of the rings", ifname, e))?;
        if config.promiscuous {
            socket
                .set_promiscuous(facts.index)
                .map_err(|e| open_error("PACKET_MR_PROMISC", ifname, e))?;
        }
        socket
            .bind(facts.index)
            .map_err(|e| open_error("bind", ifname, e))?;
        Ok(RingNic {
            socket,
            map,
            info: NicInfo {
                name: ifname.to_string(),
                mtu: facts.mtu,
                mac: facts.mac,
                max_frame,
                max_rx_frame,
            },
            version: config.version,
            vnet: config.vnet_hdr,
            rx_frames: frames_per_block * config.block_count,
            rx_frame: 0,
            rx_blocks: config.block_count,
            rx_block: 0,
            rx_cursor: None,
            tx_frames,
            tx_head: 0,
            tx_pending: 0,
            stats: NicStats::default(),
            ring_stats: Cell::new(RingStats::default()),
        })
    }

    /// Waits up to `timeout` until a frame may be receivable (the next RX block is user-owned
    /// or the socket polls readable). Returns whether it is; `false` after the timeout.
    pub fn wait(&self, timeout: Duration) -> Result<bool, NicError> {
        if self.ready() {
            return Ok(true);
        }
        self.update_ring_stats(|s| s.polls += 1);
        Ok(poll_fd(self.socket.raw(), libc::POLLIN, timeout)?)
    }

    /// Whether the next RX block (V3) or frame slot (V2) is user-owned: one status word read.
    fn ready(&self) -> bool {
        match self.version {
            RingVersion::V3 => self.map.rx_block(self.rx_block).is_some(),
            RingVersion::V2 => self.map.rx_frame(self.rx_frame).is_some(),
        }
    }

    /// Ring counters (reads and accumulates the kernel's `PACKET_STATISTICS`).
    pub fn ring_stats(&self) -> RingStats {
        self.refresh_kernel_stats();
        self.ring_stats.get()
    }

    /// The `PACKET_VERSION` in use.
    pub fn version(&self) -> RingVersion {
        self.version
    }

    /// Where the rings are mapped, to locate the frames `receive` and `transmit` lend
    /// ([`RingGeometry::locate`]); plain data, valid as long as this `RingNic` lives.
    pub fn geometry(&self) -> RingGeometry {
        let (base, layout) = self.map.geometry();
        let rx_len = layout.rx_block_size * layout.rx_block_count;
        RingGeometry {
            base,
            version: self.version,
            rx_len,
            rx_block_size: layout.rx_block_size,
            rx_frame_size: layout.rx_frame_size,
            tx_frame_size: layout.tx_frame_size,
            tx_len: layout.tx_frame_size * layout.tx_frame_count,
        }
    }

    /// Frames queued by `transmit` and not yet kicked by `flush`.
    pub fn tx_pending(&self) -> usize {
        self.tx_pending
    }

    fn refresh_kernel_stats(&self) {
        // A failing getsockopt on a live socket is not worth failing `stats` for: keep the
        // counters as they were.
        if let Ok(k) = self.socket.statistics() {
            let mut s = self.ring_stats.get();
            s.kernel_packets += u64::from(k.packets);
            s.kernel_drops += u64::from(k.drops);
            s.freeze_count += u64::from(k.freeze_q_cnt);
            self.ring_stats.set(s);
        }
    }

    fn update_ring_stats(&self, f: impl FnOnce(&mut RingStats)) {
        let mut s = self.ring_stats.get();
        f(&mut s);
        self.ring_stats.set(s);
    }

    fn kick(&mut self) -> Result<bool, NicError> {
        self.update_ring_stats(|s| s.tx_kicks += 1);
        Ok(self.socket.kick()?)
    }

    /// Returns the current RX block to the kernel and moves to the next one.
    fn release_current_block(&mut self) {
        self.map.release_rx_block(self.rx_block);
        self.rx_block = (self.rx_block + 1) % self.rx_blocks;
        self.rx_cursor = None;
        self.update_ring_stats(|s| s.blocks_released += 1);
    }

    /// TPACKET_V3: lends frames of the user-owned blocks in ring order.
    fn receive_v3(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut handed = 0;
        let vnet = self.vnet;
        while handed < budget {
            let block_done = {
                let Some(block) = self.map.rx_block_mut(self.rx_block) else {
                    break;
                };
                let cursor = match &mut self.rx_cursor {
                    Some(cursor) => cursor,
                    None => match BlockCursor::new(block) {
                        Ok(cursor) => self.rx_cursor.insert(cursor),
                        Err(_) => {
                            bump(&self.ring_stats, |s| s.malformed_blocks += 1);
                            self.rx_cursor.insert(BlockCursor::empty())
                        }
                    },
                };
                while handed < budget {
                    match cursor.next_frame_at(block) {
                        None => break,
                        Some(Err(_)) => bump(&self.ring_stats, |s| s.malformed_blocks += 1),
                        Some(Ok(at)) => {
                            if deliver(block, at, vnet, &mut self.stats, &self.ring_stats, sink) {
                                handed += 1;
                            }
                        }
                    }
                }
                cursor.is_done()
            };
            if block_done {
                self.release_current_block();
            }
        }
        handed
    }

    /// TPACKET_V2: lends the user-owned frames in ring order, returning each slot to the
    /// kernel right after its frame was handed out (or skipped).
    fn receive_v2(&mut self, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut handed = 0;
        let vnet = self.vnet;
        while handed < budget {
            {
                let Some(slot) = self.map.rx_frame_mut(self.rx_frame) else {
                    break;
                };
                match parse_v2_frame_at(slot) {
                    Err(_) => bump(&self.ring_stats, |s| s.malformed_blocks += 1),
                    Ok(at) => {
                        if deliver(slot, at, vnet, &mut self.stats, &self.ring_stats, sink) {
                            handed += 1;
                        }
                    }
                }
            }
            self.map.release_rx_frame(self.rx_frame);
            self.rx_frame = next_v2_frame(self.rx_frame, self.rx_frames);
            bump(&self.ring_stats, |s| s.frames_released += 1);
        }
        handed
    }
}

fn bump(stats: &Cell<RingStats>, f: impl FnOnce(&mut RingStats)) {
    let mut s = stats.get();
    f(&mut s);
    stats.set(s);
}

/// Hands the frame at `at` of `area` (an RX block or slot) to `sink` unless it is our own
/// outgoing frame or truncated (counted). With `vnet`, the `virtio_net_hdr` before the frame is
/// applied first ([`VnetHdr::prepare_rx`]: a partial checksum completed in place) and a frame it
/// refuses is counted. Returns whether it was handed out.
fn deliver(
    area: &mut [u8],
    at: FrameAt,
    vnet: bool,
    stats: &mut NicStats,
    ring_stats: &Cell<RingStats>,
    sink: &mut dyn FnMut(&[u8]),
) -> bool {
    if at.pkttype == libc::PACKET_OUTGOING {
        bump(ring_stats, |s| s.outgoing_skipped += 1);
        return false;
    }
    if at.len < at.wire_len {
        bump(ring_stats, |s| s.truncated += 1);
        stats.rx_dropped += 1;
        return false;
    }
    if vnet {
        // The parsers checked `start..start + len`; the header lies just before it.
        let hdr = at
            .start
            .checked_sub(VNET_HDR_LEN)
            .and_then(|h| area.get(h..at.start))
            .map(|b| VnetHdr::parse(b.try_into().expect("10 bytes")));
        let frame = &mut area[at.start..at.start + at.len];
        let verdict = match hdr {
            Some(h) => {
                let v = h.prepare_rx(frame);
                if v == RxVerdict::Deliver {
                    bump(ring_stats, |s| {
                        s.gso_frames += h.is_gso() as u64;
                        s.csum_completed += (h.flags & vnet::F_NEEDS_CSUM != 0) as u64;
                    });
                }
                v
            }
            None => RxVerdict::Malformed,
        };
        if verdict != RxVerdict::Deliver {
            bump(ring_stats, |s| s.vnet_refused += 1);
            stats.rx_dropped += 1;
            return false;
        }
    }
    let frame = &area[at.start..at.start + at.len];
    sink(frame);
    stats.rx_frames += 1;
    stats.rx_bytes += frame.len() as u64;
    true
}

impl Nic for RingNic {
    fn info(&self) -> NicInfo {
        self.info.clone()
    }

    fn receive(
        &mut self,
        _now: Instant,
        budget: usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, NicError> {
        match self.version {
            RingVersion::V3 => Ok(self.receive_v3(budget, sink)),
            RingVersion::V2 => Ok(self.receive_v2(budget, sink)),
        }
    }

    fn transmit(
        &mut self,
        _now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, NicError> {
        let max = self.info.max_frame;
        let frame = self.tx_head;
        if self.map.tx_slot(frame).is_none() {
            // The ring is full of frames the kernel has not sent yet: push them and look again.
            self.kick()?;
            if self.map.tx_slot(frame).is_none() {
                self.stats.tx_dropped += 1;
                return Err(NicError::Io(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "TX ring full: flush, wait for the kernel to send, and retry",
                )));
            }
        }
        if self.map.tx_status(frame) & libc::TP_STATUS_WRONG_FORMAT != 0 {
            // The kernel refused the frame that used this slot last time.
            self.stats.tx_dropped += 1;
        }
        let slot = self.map.tx_slot(frame).expect("checked free above");
        // With vnet headers the frame follows an all-zero `virtio_net_hdr` (no GSO, checksums
        // complete: what the stack emits).
        let hdr_len = if self.vnet { VNET_HDR_LEN } else { 0 };
        let (hdr, data) = slot.split_at_mut(hdr_len);
        hdr.fill(0);
        let len = fill(&mut data[..max]);
        if len == 0 {
            return Ok(0);
        }
        if len > max {
            self.stats.tx_dropped += 1;
            return Err(NicError::TooLarge { len, max });
        }
        self.map.tx_submit(frame, hdr_len + len);
        self.tx_head = (frame + 1) % self.tx_frames;
        self.tx_pending += 1;
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        Ok(len)
    }

    fn flush(&mut self, _now: Instant) -> Result<(), NicError> {
        if self.tx_pending == 0 {
            return Ok(());
        }
        if self.kick()? {
            self.tx_pending = 0;
        }
        Ok(())
    }

    fn wait_readable(&self, timeout: Duration) -> Result<bool, NicError> {
        self.wait(timeout)
    }
    fn rx_ready(&self) -> Option<bool> {
        Some(self.ready())
    }
    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.socket.raw())
    }

    fn stats(&self) -> NicStats {
        self.refresh_kernel_stats();
        NicStats {
            rx_dropped: self.stats.rx_dropped + self.ring_stats.get().kernel_drops,
            syscalls: self.ring_stats.get().tx_kicks + self.ring_stats.get().polls,
            ..self.stats
        }
    }
}

impl fmt::Debug for RingNic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingNic")
            .field("info", &self.info)
            .field("rx_block", &self.rx_block)
            .field("tx_head", &self.tx_head)
            .field("tx_pending", &self.tx_pending)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Turns off the offloads (TSO, GSO, GRO, TX checksum) of interface `ifname` with `ethtool`,
/// run as a child process (so in the calling thread's network namespace).
///
/// The lab calls this on the *kernel-side* veth so that ringstack only ever receives
/// MTU-sized frames with complete checksums (see the [module docs](self)).
pub fn disable_offloads(ifname: &str) -> Result<(), NicError> {
    let output = Command::new("ethtool")
        .args([
            "-K", ifname, "tso", "off", "gso", "off", "gro", "off", "tx", "off",
        ])
        .output()
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                NicError::Io(io::Error::new(
                    io::ErrorKind::NotFound,
                    "ethtool is not installed: install the `ethtool` Debian package \
                     (apt-get install ethtool) to turn off offloads on the kernel-side veth",
                ))
            } else {
                NicError::Io(e)
            }
        })?;
    if !output.status.success() {
        return Err(NicError::Io(io::Error::other(format!(
            "ethtool -K {ifname} tso off gso off gro off tx off failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The block walker: pure parsing of a TPACKET_V3 RX block, testable on synthetic bytes.

/// Offset of `num_pkts` in `tpacket_block_desc`.
const NUM_PKTS_OFFSET: usize = BLOCK_STATUS_OFFSET + 4;
/// Offset of `offset_to_first_pkt` in `tpacket_block_desc`.
const OFFSET_TO_FIRST_PKT_OFFSET: usize = BLOCK_STATUS_OFFSET + 8;
/// Size of `tpacket3_hdr`.
const TPACKET3_HDR_LEN: usize = 48;
/// Offset of `tp_mac` in `tpacket3_hdr`.
const TP_MAC_OFFSET: usize = 24;
/// Offset of `sll_pkttype` in the `sockaddr_ll` that follows the (16-aligned) `tpacket3_hdr`.
const SLL_PKTTYPE_OFFSET: usize = TPACKET3_HDR_LEN + 10;

/// Why a block or frame header does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockError {
    /// A header or frame lies (partly) outside the block.
    OutOfBounds,
    /// `tp_next_offset` is 0 (or not aligned) before the last frame.
    BadNextOffset,
}

/// One frame found in a block (the tests' view of a [`FrameAt`]).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RxFrame<'a> {
    /// The captured bytes (`tp_snaplen` from `tp_mac`).
    pub data: &'a [u8],
    /// The frame's length on the wire (`tp_len`).
    pub wire_len: usize,
    /// `sll_pkttype` (`PACKET_HOST`, `PACKET_BROADCAST`, ..., `PACKET_OUTGOING`).
    pub pkttype: u8,
}

#[cfg(test)]
impl RxFrame<'_> {
    /// Whether the ring kept fewer bytes than the frame had.
    pub fn truncated(&self) -> bool {
        self.data.len() < self.wire_len
    }
}

/// Where one frame lies in a block or slot (as plain offsets, so that the frame can then be
/// borrowed mutably: `area[start..start + len]`, checked to be inside by the parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameAt {
    /// Offset of the frame's first byte (`tp_mac` from its header).
    pub start: usize,
    /// Captured bytes (`tp_snaplen`).
    pub len: usize,
    /// The frame's length on the wire (`tp_len`).
    pub wire_len: usize,
    /// `sll_pkttype`.
    pub pkttype: u8,
}

impl FrameAt {
    #[cfg(test)]
    fn frame<'a>(&self, area: &'a [u8]) -> RxFrame<'a> {
        RxFrame {
            data: &area[self.start..self.start + self.len],
            wire_len: self.wire_len,
            pkttype: self.pkttype,
        }
    }
}

fn read_u32(block: &[u8], at: usize) -> Result<u32, BlockError> {
    let bytes = block.get(at..at + 4).ok_or(BlockError::OutOfBounds)?;
    Ok(u32::from_ne_bytes(bytes.try_into().expect("4 bytes")))
}

fn read_u16(block: &[u8], at: usize) -> Result<u16, BlockError> {
    let bytes = block.get(at..at + 2).ok_or(BlockError::OutOfBounds)?;
    Ok(u16::from_ne_bytes(bytes.try_into().expect("2 bytes")))
}

/// A walk through the frames of one user-owned RX block (`tpacket_block_desc` followed by
/// `num_pkts` frames chained by `tp_next_offset`). Never panics on malformed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockCursor {
    /// Offset of the next frame's `tpacket3_hdr`.
    offset: usize,
    /// Frames not walked yet.
    remaining: u32,
}

impl BlockCursor {
    /// Starts a walk at the block's first frame.
    pub fn new(block: &[u8]) -> Result<Self, BlockError> {
        let remaining = read_u32(block, NUM_PKTS_OFFSET)?;
        let offset = read_u32(block, OFFSET_TO_FIRST_PKT_OFFSET)? as usize;
        if remaining > 0 && offset < OFFSET_TO_FIRST_PKT_OFFSET + 4 {
            return Err(BlockError::OutOfBounds);
        }
        Ok(BlockCursor { offset, remaining })
    }

    /// A finished walk (for a block that did not parse).
    pub fn empty() -> Self {
        BlockCursor {
            offset: 0,
            remaining: 0,
        }
    }

    /// Whether every frame was walked.
    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// The next frame; None once all were walked. After an error the walk is finished.
    #[cfg(test)]
    pub fn next_frame<'a>(&mut self, block: &'a [u8]) -> Option<Result<RxFrame<'a>, BlockError>> {
        Some(self.next_frame_at(block)?.map(|at| at.frame(block)))
    }

    /// Like [`BlockCursor::next_frame`], returning where the frame lies.
    pub fn next_frame_at(&mut self, block: &[u8]) -> Option<Result<FrameAt, BlockError>> {
        if self.remaining == 0 {
            return None;
        }
        if self.offset == usize::MAX {
            self.remaining = 0;
            return Some(Err(BlockError::BadNextOffset));
        }
        let result = self.parse_frame(block);
        match result {
            Ok((frame, next)) => {
                self.remaining -= 1;
                if self.remaining > 0 {
                    if next == 0 || !next.is_multiple_of(4) {
                        // This frame is fine; the walk breaks at the next one.
                        self.offset = usize::MAX;
                    } else {
                        self.offset += next;
                    }
                }
                Some(Ok(frame))
            }
            Err(e) => {
                self.remaining = 0;
                Some(Err(e))
            }
        }
    }

    fn parse_frame(&self, block: &[u8]) -> Result<(FrameAt, usize), BlockError> {
        let at = self.offset;
        if at
            .checked_add(SLL_PKTTYPE_OFFSET + 1)
            .is_none_or(|end| end > block.len())
        {
            return Err(BlockError::OutOfBounds);
        }
        let next = read_u32(block, at)? as usize;
        let snaplen = read_u32(block, at + 12)? as usize;
        let wire_len = read_u32(block, at + 16)? as usize;
        let mac = read_u16(block, at + TP_MAC_OFFSET)? as usize;
        let pkttype = block[at + SLL_PKTTYPE_OFFSET];
        let start = at + mac;
        block
            .get(start..start + snaplen)
            .ok_or(BlockError::OutOfBounds)?;
        Ok((
            FrameAt {
                start,
                len: snaplen,
                wire_len,
                pkttype,
            },
            next,
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The frame walker: pure parsing of a TPACKET_V2 RX frame slot, testable on synthetic bytes.
// (The slot's status word, offset 0, is read atomically by `RingMap::rx_frame`; this only
// parses a slot the kernel already handed over.)

/// Size of `tpacket2_hdr`.
const TPACKET2_HDR_LEN: usize = 32;
/// Offset of `tp_mac` in `tpacket2_hdr`.
const TP2_MAC_OFFSET: usize = 12;
/// Offset of `sll_pkttype` in the `sockaddr_ll` that follows the (16-aligned) `tpacket2_hdr`.
const SLL2_PKTTYPE_OFFSET: usize = TPACKET2_HDR_LEN + 10;
/// Where the kernel puts an Ethernet frame in a V2 RX slot of a `SOCK_RAW` socket:
/// `TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - ETH_HLEN` = `TPACKET_ALIGN(52 + 16) - 14` = 66.
const V2_RX_MAC_OFFSET: usize = 66;

/// Parses the user-owned TPACKET_V2 RX slot `slot` (`tpacket2_hdr`, `sockaddr_ll`, data at
/// `tp_mac`). Never panics on malformed input.
#[cfg(test)]
pub(crate) fn parse_v2_frame(slot: &[u8]) -> Result<RxFrame<'_>, BlockError> {
    parse_v2_frame_at(slot).map(|at| at.frame(slot))
}

/// Like [`parse_v2_frame`], returning where the frame lies in the slot.
pub(crate) fn parse_v2_frame_at(slot: &[u8]) -> Result<FrameAt, BlockError> {
    if slot.len() <= SLL2_PKTTYPE_OFFSET {
        return Err(BlockError::OutOfBounds);
    }
    let wire_len = read_u32(slot, TP2_LEN_OFFSET)? as usize;
    let snaplen = read_u32(slot, TP2_SNAPLEN_OFFSET)? as usize;
    let mac = read_u16(slot, TP2_MAC_OFFSET)? as usize;
    if mac < SLL2_PKTTYPE_OFFSET {
        // The data would overlap the headers.
        return Err(BlockError::OutOfBounds);
    }
    mac.checked_add(snaplen)
        .and_then(|end| slot.get(mac..end))
        .ok_or(BlockError::OutOfBounds)?;
    Ok(FrameAt {
        start: mac,
        len: snaplen,
        wire_len,
        pkttype: slot[SLL2_PKTTYPE_OFFSET],
    })
}

/// The frame slot after `frame` in a V2 ring of `frames` slots (the kernel fills them in this
/// order, wrapping around).
pub(crate) fn next_v2_frame(frame: usize, frames: usize) -> usize {
    if frame + 1 >= frames {
        0
    } else {
        frame + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_locates_frames_by_address() {
        let mem = vec![0u8; 4 * 4096 + 4 * 2048];
        let g = |version| RingGeometry {
            base: mem.as_ptr() as usize,
            version,
            rx_len: 4 * 4096,
            rx_block_size: 4096,
            rx_frame_size: 2048,
            tx_frame_size: 2048,
            tx_len: 4 * 2048,
        };
        let v3 = g(RingVersion::V3);
        assert_eq!(
            v3.locate(&mem[2 * 4096 + 0x50..][..60]),
            Some(RingPosition::RxBlock {
                block: 2,
                offset: 0x50
            })
        );
        assert_eq!(
            g(RingVersion::V2).locate(&mem[3 * 2048 + 66..][..60]),
            Some(RingPosition::RxSlot { slot: 3 })
        );
        assert_eq!(
            v3.locate(&mem[4 * 4096 + 2048 + 48..][..60]),
            Some(RingPosition::TxSlot { slot: 1 })
        );
        assert_eq!(v3.locate(&[0u8; 60]), None, "a frame outside the rings");
        assert_eq!(
            RingPosition::RxBlock {
                block: 2,
                offset: 0x50
            }
            .to_string(),
            "ring rx block 2 +0x50"
        );
    }

    /// Builds a block like the kernel does: `tpacket_block_desc` (48 bytes), then frames of
    /// `tpacket3_hdr` + `sockaddr_ll`, the data at `tp_mac` = `TPACKET_ALIGN(TPACKET3_HDRLEN)`
    /// = `TPACKET_ALIGN(48 + 20)` = 80 (as for SOCK_RAW), each frame 8-aligned.
    fn block(frames: &[(&[u8], u32, u8)], size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        let put32 =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        put32(&mut b, 0, 3); // version
        put32(&mut b, BLOCK_STATUS_OFFSET, libc::TP_STATUS_USER);
        put32(&mut b, NUM_PKTS_OFFSET, frames.len() as u32);
        let first = 48;
        put32(&mut b, OFFSET_TO_FIRST_PKT_OFFSET, first as u32);
        let mut at = first;
        for (i, (data, wire_len, pkttype)) in frames.iter().enumerate() {
            let mac = 80usize;
            let total = (mac + data.len()).next_multiple_of(8);
            let next = if i + 1 == frames.len() {
                0
            } else {
                total as u32
            };
            put32(&mut b, at, next);
            put32(&mut b, at + 12, data.len() as u32);
            put32(&mut b, at + 16, *wire_len);
            put32(&mut b, at + 20, libc::TP_STATUS_USER);
            b[at + 24..at + 26].copy_from_slice(&(mac as u16).to_ne_bytes());
            b[at + SLL_PKTTYPE_OFFSET] = *pkttype;
            b[at + mac..at + mac + data.len()].copy_from_slice(data);
            at += total;
        }
        b
    }

    type Walked = Vec<Result<(Vec<u8>, usize, u8), BlockError>>;

    fn walk(b: &[u8]) -> Walked {
        let mut c = match BlockCursor::new(b) {
            Ok(c) => c,
            Err(e) => return vec![Err(e)],
        };
        let mut out = Vec::new();
        while let Some(f) = c.next_frame(b) {
            out.push(f.map(|f| (f.data.to_vec(), f.wire_len, f.pkttype)));
        }
        assert!(c.is_done());
        out
    }

    #[test]
    fn vnet_frames_get_their_partial_checksum_completed_or_are_refused() {
        // Three 60-byte frames (the "TCP" area from byte 14, its checksum field at 14 + 16),
        // each after a virtio_net_hdr: NEEDS_CSUM, UDP_L4 GSO (refused), checksum field out of
        // the frame (refused).
        let data: Vec<u8> = (0..60u8).map(|i| i.wrapping_mul(37)).collect();
        let mut b = block(&[(&data, 60, 0), (&data, 60, 0), (&data, 60, 0)], 4096);
        let hdrs = [
            VnetHdr {
                flags: vnet::F_NEEDS_CSUM,
                csum_start: 14,
                csum_offset: 16,
                ..VnetHdr::default()
            },
            VnetHdr {
                gso_type: vnet::GSO_UDP_L4,
                ..VnetHdr::default()
            },
            VnetHdr {
                flags: vnet::F_NEEDS_CSUM,
                csum_start: 14,
                csum_offset: 45,
                ..VnetHdr::default()
            },
        ];
        let mut cursor = BlockCursor::new(&b).unwrap();
        let mut ats = Vec::new();
        while let Some(at) = cursor.next_frame_at(&b) {
            ats.push(at.unwrap());
        }
        assert_eq!(ats.len(), 3);
        for (at, h) in ats.iter().zip(&hdrs) {
            h.emit(
                (&mut b[at.start - VNET_HDR_LEN..at.start])
                    .try_into()
                    .unwrap(),
            );
        }
        let (mut stats, ring_stats) = (NicStats::default(), Cell::new(RingStats::default()));
        let mut got: Vec<Vec<u8>> = Vec::new();
        for at in &ats {
            deliver(&mut b, *at, true, &mut stats, &ring_stats, &mut |f| {
                got.push(f.to_vec())
            });
        }
        assert_eq!(got.len(), 1);
        assert_ne!(
            got[0][30..32],
            data[30..32],
            "the checksum field was rewritten"
        );
        // The field held the pseudo-header sum: with it, the completed area verifies.
        let pseudo_and_area = [&data[30..32], &got[0][14..]].concat();
        assert_eq!(
            vnet::checksum(&pseudo_and_area),
            0,
            "the completed area verifies"
        );
        assert_eq!(got[0][..30], data[..30]);
        assert_eq!(got[0][32..], data[32..]);
        let rs = ring_stats.get();
        assert_eq!(
            (rs.csum_completed, rs.vnet_refused, rs.gso_frames),
            (1, 2, 0)
        );
        assert_eq!((stats.rx_frames, stats.rx_dropped), (1, 2));
        // Without vnet the same bytes pass untouched.
        let mut plain = block(&[(&data, 60, 0)], 4096);
        let at = BlockCursor::new(&plain)
            .unwrap()
            .next_frame_at(&plain)
            .unwrap()
            .unwrap();
        let mut seen = Vec::new();
        deliver(&mut plain, at, false, &mut stats, &ring_stats, &mut |f| {
            seen = f.to_vec()
        });
        assert_eq!(seen, data);
    }

    #[test]
    fn vnet_config_sizes_v2_slots_for_64k_frames() {
        let c = RingConfig::with_vnet_hdr(RingVersion::V2);
        assert!(c.vnet_hdr);
        c.validate().unwrap();
        assert!(c.frame_size - V2_RX_MAC_OFFSET - VNET_HDR_LEN >= 65_535 + 14);
        assert_eq!(c.block_size % c.frame_size, 0);
        let c3 = RingConfig::with_vnet_hdr(RingVersion::V3);
        c3.validate().unwrap();
        assert!(c3.block_size >= 65_535 + 14 + 256);
    }

    #[test]
    fn walks_every_frame_of_a_block_in_order() {
        let f1 = [0xffu8; 60];
        let f2: Vec<u8> = (0..=255).collect();
        let f3 = [7u8; 1514];
        let b = block(
            &[
                (&f1, 60, libc::PACKET_BROADCAST),
                (&f2, 256, libc::PACKET_HOST),
                (&f3, 1514, libc::PACKET_OUTGOING),
            ],
            4096,
        );
        let got = walk(&b);
        assert_eq!(
            got,
            vec![
                Ok((f1.to_vec(), 60, libc::PACKET_BROADCAST)),
                Ok((f2.clone(), 256, libc::PACKET_HOST)),
                Ok((f3.to_vec(), 1514, libc::PACKET_OUTGOING)),
            ]
        );
    }

    #[test]
    fn a_cursor_resumes_mid_block() {
        let frames: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 64 + i as usize]).collect();
        let spec: Vec<(&[u8], u32, u8)> = frames
            .iter()
            .map(|f| (f.as_slice(), f.len() as u32, libc::PACKET_HOST))
            .collect();
        let b = block(&spec, 4096);
        let mut c = BlockCursor::new(&b).unwrap();
        let first: Vec<Vec<u8>> = (0..2)
            .map(|_| c.next_frame(&b).unwrap().unwrap().data.to_vec())
            .collect();
        assert!(!c.is_done());
        // The cursor is plain data: keep it (as RingNic does across receive calls) and resume.
        let mut resumed = c;
        let mut rest = Vec::new();
        while let Some(f) = resumed.next_frame(&b) {
            rest.push(f.unwrap().data.to_vec());
        }
        assert_eq!([first, rest].concat(), frames);
    }

    #[test]
    fn truncated_frames_are_flagged() {
        let f = [1u8; 100];
        let b = block(&[(&f, 9000, libc::PACKET_HOST)], 4096);
        let mut c = BlockCursor::new(&b).unwrap();
        let frame = c.next_frame(&b).unwrap().unwrap();
        assert!(frame.truncated());
        assert_eq!(frame.wire_len, 9000);
    }

    #[test]
    fn an_empty_block_is_done_at_once() {
        let b = block(&[], 4096);
        let mut c = BlockCursor::new(&b).unwrap();
        assert!(c.is_done());
        assert!(c.next_frame(&b).is_none());
    }

    #[test]
    fn malformed_blocks_end_the_walk_without_panicking() {
        let f = [2u8; 64];
        // A frame whose data runs past the end of the block.
        let mut b = block(&[(&f, 64, 0)], 4096);
        b[48 + 12..48 + 16].copy_from_slice(&5000u32.to_ne_bytes());
        assert_eq!(walk(&b), vec![Err(BlockError::OutOfBounds)]);

        // A zero tp_next_offset before the last frame.
        let mut b = block(&[(&f, 64, 0), (&f, 64, 0)], 4096);
        b[48..52].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(
            walk(&b),
            vec![Ok((f.to_vec(), 64, 0)), Err(BlockError::BadNextOffset)]
        );

        // More frames claimed than fit: the walk runs off the block.
        let mut b = block(&[(&f, 64, 0)], 4096);
        b[NUM_PKTS_OFFSET..NUM_PKTS_OFFSET + 4].copy_from_slice(&3u32.to_ne_bytes());
        b[48..52].copy_from_slice(&4000u32.to_ne_bytes());
        assert_eq!(
            walk(&b),
            vec![Ok((f.to_vec(), 64, 0)), Err(BlockError::OutOfBounds)]
        );

        // A header cut short, and an offset_to_first_pkt pointing into the descriptor.
        assert_eq!(walk(&b[..10]), vec![Err(BlockError::OutOfBounds)]);
        let mut b = block(&[(&f, 64, 0)], 4096);
        b[OFFSET_TO_FIRST_PKT_OFFSET..OFFSET_TO_FIRST_PKT_OFFSET + 4]
            .copy_from_slice(&4u32.to_ne_bytes());
        assert_eq!(walk(&b), vec![Err(BlockError::OutOfBounds)]);
        // Arbitrary bytes never panic.
        let junk: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let _ = walk(&junk);
    }

    /// Builds a V2 RX ring of `slots` slots of `frame_size` bytes like the kernel does: per
    /// frame `tpacket2_hdr` (status, len, snaplen, mac, ...), `sockaddr_ll` at 32, the data at
    /// `tp_mac` = 66; `None` leaves a slot kernel-owned (status 0).
    fn v2_ring(frames: &[Option<(&[u8], u32, u8)>], frame_size: usize) -> Vec<u8> {
        let mut r = vec![0u8; frames.len() * frame_size];
        let put32 =
            |r: &mut Vec<u8>, at: usize, v: u32| r[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        for (i, f) in frames.iter().enumerate() {
            let Some((data, wire_len, pkttype)) = f else {
                continue;
            };
            let at = i * frame_size;
            let snap = data.len().min(frame_size - V2_RX_MAC_OFFSET);
            put32(&mut r, at, libc::TP_STATUS_USER);
            put32(&mut r, at + TP2_LEN_OFFSET, *wire_len);
            put32(&mut r, at + TP2_SNAPLEN_OFFSET, snap as u32);
            r[at + TP2_MAC_OFFSET..at + TP2_MAC_OFFSET + 2]
                .copy_from_slice(&(V2_RX_MAC_OFFSET as u16).to_ne_bytes());
            r[at + SLL2_PKTTYPE_OFFSET] = *pkttype;
            let mac = at + V2_RX_MAC_OFFSET;
            r[mac..mac + snap].copy_from_slice(&data[..snap]);
        }
        r
    }

    /// Walks a synthetic V2 ring from `start` the way `RingNic::receive_v2` does: stop at the
    /// first kernel-owned slot, hand the slot back (status 0) after parsing it.
    fn v2_walk(ring: &mut [u8], frame_size: usize, start: &mut usize, budget: usize) -> Walked {
        let frames = ring.len() / frame_size;
        let mut out = Vec::new();
        while out.len() < budget {
            let at = *start * frame_size;
            let slot = &mut ring[at..at + frame_size];
            let status = u32::from_ne_bytes(slot[..4].try_into().unwrap());
            if status & libc::TP_STATUS_USER == 0 {
                break;
            }
            out.push(parse_v2_frame(slot).map(|f| (f.data.to_vec(), f.wire_len, f.pkttype)));
            slot[..4].copy_from_slice(&libc::TP_STATUS_KERNEL.to_ne_bytes());
            *start = next_v2_frame(*start, frames);
        }
        out
    }

    #[test]
    fn v2_walks_user_frames_in_ring_order_and_stops_at_a_kernel_slot() {
        let f1 = [0xffu8; 60];
        let f2: Vec<u8> = (0..=255).collect();
        let f3 = [7u8; 1514];
        let mut r = v2_ring(
            &[
                Some((&f1, 60, libc::PACKET_BROADCAST)),
                Some((&f2, 256, libc::PACKET_HOST)),
                Some((&f3, 1514, libc::PACKET_OUTGOING)),
                None,
            ],
            2048,
        );
        let mut at = 0;
        assert_eq!(
            v2_walk(&mut r, 2048, &mut at, 2),
            vec![
                Ok((f1.to_vec(), 60, libc::PACKET_BROADCAST)),
                Ok((f2.clone(), 256, libc::PACKET_HOST)),
            ]
        );
        assert_eq!(
            at, 2,
            "the budget stops the walk, which resumes at the next slot"
        );
        assert_eq!(
            v2_walk(&mut r, 2048, &mut at, 10),
            vec![Ok((f3.to_vec(), 1514, libc::PACKET_OUTGOING))]
        );
        assert_eq!(at, 3, "slot 3 is still the kernel's");
        // Every walked slot went back to the kernel.
        for i in 0..4 {
            assert_eq!(r[i * 2048..i * 2048 + 4], [0; 4]);
        }
    }

    #[test]
    fn v2_walk_wraps_around_the_ring() {
        let frames: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 64 + i as usize]).collect();
        let spec: Vec<Option<(&[u8], u32, u8)>> = frames
            .iter()
            .map(|f| Some((f.as_slice(), f.len() as u32, libc::PACKET_HOST)))
            .collect();
        let mut r = v2_ring(&spec, 256);
        // Pretend the walk already consumed slot 0 once and the kernel refilled it.
        let mut at = 1;
        let got: Vec<Vec<u8>> = v2_walk(&mut r, 256, &mut at, 10)
            .into_iter()
            .map(|f| f.unwrap().0)
            .collect();
        assert_eq!(
            got,
            vec![frames[1].clone(), frames[2].clone(), frames[0].clone()]
        );
        assert_eq!(at, 1);
        assert_eq!(next_v2_frame(0, 1), 0);
    }

    #[test]
    fn v2_truncated_frames_are_flagged() {
        let f = [1u8; 3000];
        let r = v2_ring(&[Some((&f, 3000, libc::PACKET_HOST))], 2048);
        let frame = parse_v2_frame(&r).unwrap();
        assert!(frame.truncated());
        assert_eq!(frame.data.len(), 2048 - V2_RX_MAC_OFFSET);
        assert_eq!(frame.wire_len, 3000);
    }

    #[test]
    fn v2_malformed_slots_do_not_parse_and_never_panic() {
        let f = [2u8; 64];
        let good = v2_ring(&[Some((&f, 64, 0))], 256);
        assert_eq!(parse_v2_frame(&good).unwrap().data, &f[..]);
        // Data running past the slot.
        let mut r = good.clone();
        r[TP2_SNAPLEN_OFFSET..TP2_SNAPLEN_OFFSET + 4].copy_from_slice(&500u32.to_ne_bytes());
        assert_eq!(parse_v2_frame(&r), Err(BlockError::OutOfBounds));
        // tp_mac pointing into the headers, or past the slot.
        for mac in [0u16, 20, 4000, u16::MAX] {
            let mut r = good.clone();
            r[TP2_MAC_OFFSET..TP2_MAC_OFFSET + 2].copy_from_slice(&mac.to_ne_bytes());
            assert_eq!(
                parse_v2_frame(&r),
                Err(BlockError::OutOfBounds),
                "mac {mac}"
            );
        }
        // A slot too short for the headers.
        assert_eq!(parse_v2_frame(&good[..40]), Err(BlockError::OutOfBounds));
        assert_eq!(parse_v2_frame(&[]), Err(BlockError::OutOfBounds));
        // Arbitrary bytes never panic.
        for k in 0..64u32 {
            let junk: Vec<u8> = (0..256u32)
                .map(|i| ((i + k * 977).wrapping_mul(2654435761) >> 13) as u8)
                .collect();
            let _ = parse_v2_frame(&junk);
        }
    }

    #[test]
    fn backends_can_move_to_a_driver_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<RingNic>();
        assert_send::<crate::TapNic>();
        assert_send::<crate::PnetNic>();
        assert_send::<crate::SmoltcpDevice<RingNic>>();
    }

    #[test]
    fn config_is_validated() {
        let bad = RingConfig {
            block_size: 5000,
            ..RingConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("page size"));
        let bad = RingConfig {
            frame_size: 3000,
            ..RingConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("frame_size"));
        RingConfig::default().validate().unwrap();
        assert_eq!(
            RingConfig::default().version,
            RingVersion::V3,
            "V3 stays the default"
        );
    }

    #[test]
    fn opening_without_cap_net_raw_says_what_to_do() {
        // Unbound, protocol 0: receives nothing even when it opens (as root).
        match crate::sys::socket::PacketSocket::open() {
            Ok(_) => {
                println!("have CAP_NET_RAW: the refusal path is checked when run unprivileged")
            }
            Err(e) => {
                let msg = NicError::from(e).to_string();
                assert!(
                    msg.contains(
                        "opening AF_PACKET needs CAP_NET_RAW: run as root or grant the \
                         capability (setcap cap_net_raw,cap_net_admin+ep)"
                    ),
                    "{msg}"
                );
            }
        }
    }

    #[test]
    fn opening_a_missing_interface_says_so() {
        let err = RingNic::open("rs-no-such-if0").unwrap_err();
        assert!(
            err.to_string().contains("no network interface named"),
            "{err}"
        );
    }
}
