//! The shared mapping of a packet socket's RX and TX rings.
//!
//! `mmap` of a socket with both rings set maps the RX ring first (its blocks back to back),
//! then the TX ring. Ownership of each RX *block* and each TX *frame* is carried by a status
//! word that the kernel and this process hand back and forth:
//!
//! - RX block (`tpacket_block_desc.hdr.bh1.block_status`, offset 8): `TP_STATUS_KERNEL` (0)
//!   while the kernel fills it; `TP_STATUS_USER` once retired (full or timed out). Only then
//!   may user space read it; writing `TP_STATUS_KERNEL` back returns it.
//! - RX frame, TPACKET_V2 only (`tpacket2_hdr.tp_status`, offset 0): the RX ring is an array
//!   of fixed-size frames, each handed over on its own (`TP_STATUS_USER`) as soon as the kernel
//!   has written it — no block retirement, no timer; writing `TP_STATUS_KERNEL` returns it.
//! - TX frame (`tpacket3_hdr.tp_status`, offset 20; `tpacket2_hdr.tp_status`, offset 0 under
//!   TPACKET_V2): `TP_STATUS_AVAILABLE` (0) when free;
//!   user space writes the frame, then `TP_STATUS_SEND_REQUEST`; the kernel sets
//!   `TP_STATUS_SENDING` and back to `AVAILABLE` once the skb is freed
//!   (`TP_STATUS_WRONG_FORMAT` if it refused the frame).
//!
//! The status words are read with `Acquire` loads and written with `Release` stores, so the
//! block/frame contents written before a hand-over are visible after it. Slices into the
//! mapping are only created for memory that the status word says this process owns, and they
//! borrow the [`RingMap`] so that the hand-back (`&mut self`) cannot happen while one lives.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::{MmapOptions, MmapRaw};

/// Offset of `block_status` in `tpacket_block_desc` (`version`, `offset_to_priv`, then the
/// 8-aligned `tpacket_hdr_v1`).
pub(crate) const BLOCK_STATUS_OFFSET: usize = 8;
/// Offset of `tp_next_offset` in `tpacket3_hdr`.
pub(crate) const TP_NEXT_OFFSET_OFFSET: usize = 0;
/// Offset of `tp_snaplen` in `tpacket3_hdr`.
pub(crate) const TP_SNAPLEN_OFFSET: usize = 12;
/// Offset of `tp_len` in `tpacket3_hdr`.
pub(crate) const TP_LEN_OFFSET: usize = 16;
/// Offset of `tp_status` in `tpacket3_hdr`.
pub(crate) const TP_STATUS_OFFSET: usize = 20;
/// Where a TX frame's data starts in its slot: `TPACKET3_HDRLEN - sizeof(sockaddr_ll)`
/// = `TPACKET_ALIGN(sizeof(tpacket3_hdr))` = 48 (no `PACKET_TX_HAS_OFF`).
pub(crate) const TX_DATA_OFFSET: usize = 48;

/// Offset of `tp_status` in `tpacket2_hdr`.
pub(crate) const TP2_STATUS_OFFSET: usize = 0;
/// Offset of `tp_len` in `tpacket2_hdr`.
pub(crate) const TP2_LEN_OFFSET: usize = 4;
/// Offset of `tp_snaplen` in `tpacket2_hdr`.
pub(crate) const TP2_SNAPLEN_OFFSET: usize = 8;
/// Where a TPACKET_V2 TX frame's data starts in its slot: `TPACKET2_HDRLEN -
/// sizeof(sockaddr_ll)` = `TPACKET_ALIGN(sizeof(tpacket2_hdr))` = 32.
pub(crate) const TX2_DATA_OFFSET: usize = 32;

/// The `PACKET_VERSION` of a socket, which fixes the layout of both of its rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tpacket {
    /// RX: variable-size frames packed into blocks handed over whole. TX: `tpacket3_hdr`.
    V3,
    /// RX and TX: fixed-size frames with a `tpacket2_hdr`, each handed over on its own.
    V2,
}

impl Tpacket {
    /// Where a TX frame's data starts in its slot.
    pub const fn tx_data_offset(self) -> usize {
        match self {
            Tpacket::V3 => TX_DATA_OFFSET,
            Tpacket::V2 => TX2_DATA_OFFSET,
        }
    }

    fn tx_status_offset(self) -> usize {
        match self {
            Tpacket::V3 => TP_STATUS_OFFSET,
            Tpacket::V2 => TP2_STATUS_OFFSET,
        }
    }
}

/// Layout of the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingLayout {
    pub version: Tpacket,
    /// V2 only: bytes per RX frame slot (a divisor of `rx_block_size`).
    pub rx_frame_size: usize,
    pub rx_block_size: usize,
    pub rx_block_count: usize,
    pub tx_frame_size: usize,
    pub tx_frame_count: usize,
}

impl RingLayout {
    fn rx_len(&self) -> usize {
        self.rx_block_size * self.rx_block_count
    }
    fn len(&self) -> usize {
        self.rx_len() + self.tx_frame_size * self.tx_frame_count
    }
}

/// The mapped rings of one packet socket.
#[derive(Debug)]
pub(crate) struct RingMap {
    map: MmapRaw,
    layout: RingLayout,
}

// The mapping is only reached through `&self`/`&mut self` of the one RingMap that owns it.
// SAFETY: `MmapRaw` is a raw pointer plus length; moving it to another thread is sound because
// all accesses go through the owner and the status-word protocol with the kernel.
unsafe impl Send for RingMap {}

impl RingMap {
    /// Maps both rings of `fd` (which must already have `PACKET_RX_RING`/`PACKET_TX_RING` set
    /// with this `layout`), populating the pages up front.
    pub fn new(fd: RawFd, layout: RingLayout) -> io::Result<Self> {
        assert!(
            layout.tx_frame_size >= TX_DATA_OFFSET && layout.tx_frame_size.is_multiple_of(16),
            "TX frame size must be a multiple of 16 of at least {TX_DATA_OFFSET} bytes"
        );
        assert!(layout.rx_block_size.is_multiple_of(8) && layout.rx_block_size >= 64);
        if layout.version == Tpacket::V2 {
            assert!(
                layout.rx_frame_size >= 64
                    && layout.rx_frame_size.is_multiple_of(16)
                    && layout.rx_block_size.is_multiple_of(layout.rx_frame_size),
                "V2 RX frame size must be a multiple of 16 dividing the block size"
            );
        }
        let map = MmapOptions::new()
            .len(layout.len())
            .populate()
            .map_raw(fd)?;
        Ok(RingMap { map, layout })
    }

    /// The address the rings are mapped at, and their layout: lets safe code tell which RX
    /// block or slot, or which TX slot, a lent frame lies in by comparing addresses (tracing).
    pub fn geometry(&self) -> (usize, RingLayout) {
        (self.map.as_ptr() as usize, self.layout)
    }

    /// The status word at `offset` of the mapping.
    fn status(&self, offset: usize) -> &AtomicU32 {
        assert!(offset.is_multiple_of(4) && offset + 4 <= self.layout.len());
        // SAFETY: the offset is in bounds and 4-aligned (the mapping is page-aligned), the
        // mapping lives as long as `self`, and the word is shared with the kernel only through
        // atomic accesses on our side (the kernel uses its own barriers on this protocol).
        unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(offset).cast::<u32>()) }
    }

    fn rx_block_offset(&self, block: usize) -> usize {
        assert!(
            self.layout.version == Tpacket::V3,
            "RX blocks are a TPACKET_V3 ring"
        );
        assert!(block < self.layout.rx_block_count, "RX block out of range");
        block * self.layout.rx_block_size
    }

    /// Number of RX frame slots (TPACKET_V2 layout).
    pub fn rx_frame_count(&self) -> usize {
        self.layout.rx_len() / self.layout.rx_frame_size.max(1)
    }

    fn rx_frame_offset(&self, frame: usize) -> usize {
        assert!(
            self.layout.version == Tpacket::V2,
            "RX frames are a TPACKET_V2 ring"
        );
        assert!(frame < self.rx_frame_count(), "RX frame out of range");
        // Frames never straddle blocks and the block size is a multiple of the frame size, so
        // frame `i` of the ring starts at `i * frame_size`.
        frame * self.layout.rx_frame_size
    }

    /// Whether the status word at `offset` says the kernel has handed its frame or block to
    /// user space (`TP_STATUS_USER`, Acquire: everything the kernel wrote before is visible).
    fn user_owned(&self, offset: usize) -> bool {
        self.status(offset).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// `len` bytes of the mapping from `offset`. Callers pass a user-owned RX slot or block.
    fn region(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset + len <= self.layout.len());
        // SAFETY: the range lies inside the mapping (asserted); callers only pass RX slots or
        // blocks whose status word they saw as TP_STATUS_USER (Acquire), which the kernel has
        // finished writing and leaves alone until they are released — and releasing takes
        // `&mut self`, so it cannot happen while this borrow of `self` lives.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(offset), len) }
    }

    /// Like [`RingMap::region`], writable.
    fn region_mut(&mut self, offset: usize, len: usize) -> &mut [u8] {
        assert!(offset + len <= self.layout.len());
        // SAFETY: as in `region`; in addition `&mut self` makes this the only borrow of the
        // mapping, and the kernel does not touch a user-owned slot or block.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(offset), len) }
    }

    /// The whole slot of RX frame `frame` (`tpacket2_hdr`, `sockaddr_ll`, data) if the kernel
    /// has handed it to user space (`TP_STATUS_USER`, Acquire), else None. TPACKET_V2 only.
    pub fn rx_frame(&self, frame: usize) -> Option<&[u8]> {
        let offset = self.rx_frame_offset(frame);
        self.user_owned(offset + TP2_STATUS_OFFSET)
            .then(|| self.region(offset, self.layout.rx_frame_size))
    }

    /// Like [`RingMap::rx_frame`], writable: a backend may finish a frame in place (complete a
    /// partial checksum) before lending it. TPACKET_V2 only.
    pub fn rx_frame_mut(&mut self, frame: usize) -> Option<&mut [u8]> {
        let offset = self.rx_frame_offset(frame);
        let len = self.layout.rx_frame_size;
        if !self.user_owned(offset + TP2_STATUS_OFFSET) {
            return None;
        }
        Some(self.region_mut(offset, len))
    }

    /// Hands RX frame `frame` back to the kernel (`TP_STATUS_KERNEL`, Release). TPACKET_V2
    /// only.
    pub fn release_rx_frame(&mut self, frame: usize) {
        let offset = self.rx_frame_offset(frame);
        self.status(offset + TP2_STATUS_OFFSET)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }

    fn tx_frame_offset(&self, frame: usize) -> usize {
        assert!(frame < self.layout.tx_frame_count, "TX frame out of range");
        self.layout.rx_len() + frame * self.layout.tx_frame_size
    }

    /// The whole RX block `block` if the kernel has handed it to user space
    /// (`TP_STATUS_USER`, Acquire), else None.
    pub fn rx_block(&self, block: usize) -> Option<&[u8]> {
        let offset = self.rx_block_offset(block);
        self.user_owned(offset + BLOCK_STATUS_OFFSET)
            .then(|| self.region(offset, self.layout.rx_block_size))
    }

    /// Like [`RingMap::rx_block`], writable: a backend may finish frames in place (complete
    /// partial checksums) before lending them.
    pub fn rx_block_mut(&mut self, block: usize) -> Option<&mut [u8]> {
        let offset = self.rx_block_offset(block);
        let len = self.layout.rx_block_size;
        if !self.user_owned(offset + BLOCK_STATUS_OFFSET) {
            return None;
        }
        Some(self.region_mut(offset, len))
    }

    /// Hands RX block `block` back to the kernel (`TP_STATUS_KERNEL`, Release).
    pub fn release_rx_block(&mut self, block: usize) {
        let offset = self.rx_block_offset(block);
        self.status(offset + BLOCK_STATUS_OFFSET)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }

    /// The raw status of TX frame `frame` (Acquire).
    pub fn tx_status(&self, frame: usize) -> u32 {
        let offset = self.tx_frame_offset(frame);
        self.status(offset + self.layout.version.tx_status_offset())
            .load(Ordering::Acquire)
    }

    /// The data area of TX frame `frame` (`tx_frame_size - 48` bytes, V2: `- 32`) if the frame is free
    /// (`TP_STATUS_AVAILABLE`, or `TP_STATUS_WRONG_FORMAT`: refused earlier, ours again).
    pub fn tx_slot(&mut self, frame: usize) -> Option<&mut [u8]> {
        let status = self.tx_status(frame);
        if status != libc::TP_STATUS_AVAILABLE && status & libc::TP_STATUS_WRONG_FORMAT == 0 {
            return None;
        }
        let data = self.layout.version.tx_data_offset();
        let offset = self.tx_frame_offset(frame) + data;
        // SAFETY: the data area lies inside the mapping; the status says the kernel does not
        // own the frame, and only `tx_submit` (which takes `&mut self`, so not while this
        // borrow lives) hands it over.
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                self.map.as_mut_ptr().add(offset),
                self.layout.tx_frame_size - data,
            )
        })
    }

    /// Queues TX frame `frame` holding `len` data bytes: writes `tp_len`, `tp_snaplen` (and,
    /// under V3, `tp_next_offset = 0`), then `TP_STATUS_SEND_REQUEST` (Release).
    ///
    /// The caller must have obtained the frame from [`RingMap::tx_slot`] (it is user-owned).
    pub fn tx_submit(&mut self, frame: usize, len: usize) {
        let version = self.layout.version;
        assert!(len <= self.layout.tx_frame_size - version.tx_data_offset());
        let offset = self.tx_frame_offset(frame);
        let len = len as u32;
        // SAFETY: the header words lie inside the mapping at 4-aligned offsets (the slot is
        // 16-aligned and at least 32 bytes long); the frame is user-owned (status
        // AVAILABLE/WRONG_FORMAT, checked by `tx_slot`) so the kernel does not access them
        // until the Release store of SEND_REQUEST below publishes them.
        unsafe {
            let base = self.map.as_mut_ptr().add(offset);
            match version {
                Tpacket::V3 => {
                    base.add(TP_NEXT_OFFSET_OFFSET).cast::<u32>().write(0);
                    base.add(TP_SNAPLEN_OFFSET).cast::<u32>().write(len);
                    base.add(TP_LEN_OFFSET).cast::<u32>().write(len);
                }
                Tpacket::V2 => {
                    base.add(TP2_SNAPLEN_OFFSET).cast::<u32>().write(len);
                    base.add(TP2_LEN_OFFSET).cast::<u32>().write(len);
                }
            }
        }
        self.status(offset + version.tx_status_offset())
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
    }
}
