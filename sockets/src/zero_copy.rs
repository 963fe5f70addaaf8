//! Zero-copy calls and copy accounting: [`TcpStream::recv_with`], [`TcpStream::send_with`],
//! [`TcpStream::send_shared`], [`TcpStream::send_file`], and [`Copies`], the stack's per-boundary
//! byte counters.
//!
//! # Where the bytes are copied (the notes' "零拷贝" section, counted)
//!
//! The notes count a traditional file transfer (`read` + `write`) as four context switches and
//! four copies — disk → page cache (DMA), page cache → user buffer (CPU), user buffer → socket
//! buffer (CPU), socket buffer → NIC (DMA) — and show `mmap`+`write` and `sendfile` removing
//! the CPU copies one by one, down to none with SG-DMA. In a userspace stack the socket buffers
//! live in the application's own process, so the CPU copies to count are these, each a
//! [`Counter`] of the stack (bytes, first transmissions only; retransmitted bytes are counted
//! separately in `CopySndBufToFrameRetrans`):
//!
//! | path | copies per byte | counters |
//! |---|---|---|
//! | `read(file)` + `write` | 3 | file → app buffer (the application's own `read`, not a stack counter: count it yourself), `CopyAppToSndBuf`, `CopySndBufToFrame` |
//! | [`TcpStream::send_file`] | 1 | `CopySndBufToFrame` only: the send buffer *references* the file mapping (`CopyAppToSndBufByRef`, no copy) and segmentation copies from it straight into the frame |
//! | [`TcpStream::send_shared`] | 1 | the same, for any shared immutable memory (`Arc<Vec<u8>>`, …) |
//! | [`TcpStream::send_with`] from a buffer | 2 | `CopyAppToSndBufInPlace` (the closure's `memcpy`), `CopySndBufToFrame` |
//! | [`TcpStream::send_with`] producing in place | 1 | `CopySndBufToFrame` only (`CopyAppToSndBufInPlace` counts bytes *written* in place, not copied) |
//! | `read` | 2 | `CopyFrameToRcvBuf`, `CopyRcvBufToApp` |
//! | [`TcpStream::recv_with`] | 1 | `CopyFrameToRcvBuf`; the closure reads the bytes where they lie (`CopyRcvBufToAppInPlace`) |
//!
//! Not counted by these counters: the NIC layer's own moves (frame ↔ ring slot or link), and
//! the kernel's disk → page-cache transfer behind the mapping (DMA, as in the notes).
//!
//! **How `send_file` gets to one copy.** The stack's send buffer is a scatter-gather queue: in
//! stream order it holds bytes copied into its ring *and* external chunks — (shared memory,
//! range) descriptors, the analogue of the notes' SG-DMA descriptor passing. `send_file` maps
//! the file and queues ranges of the mapping by reference; the only CPU copy left is the one
//! into the outgoing frame (a real NIC with scatter-gather DMA would not even need that one).
//! A retransmission copies from the mapping again; the mapping is released once its last byte
//! is acknowledged. External bytes use send-buffer space like copied ones, so a large file is
//! queued in pieces as acknowledgements free space. The stack bounds the descriptors a
//! connection may hold (see `ringstack_stack::tcp::send_buffer`): past that bound it copies
//! the bytes instead and counts them under `CopyAppToSndBuf`; consecutive ranges of one mapping
//! extend one descriptor, so `send_file` never reaches it.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use memmap2::Mmap;
use ringstack_stack::{Counter, Counters, SharedBytes};

use crate::tcp::{timeout_for, TcpStream};

/// The copy counters of one machine (bytes), or the difference between two snapshots.
/// Each field is the stack [`Counter`] of the same name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copies {
    /// `CopyFrameToRcvBuf`: received payload copied from frames into socket receive buffers.
    pub frame_to_rcvbuf: u64,
    /// `CopyRcvBufToApp`: copied from receive buffers into application buffers (`read`).
    pub rcvbuf_to_app: u64,
    /// `CopyRcvBufToAppInPlace`: consumed in place by the application (`recv_with`): no copy.
    pub rcvbuf_to_app_in_place: u64,
    /// `CopyAppToSndBuf`: copied from application buffers into send buffers (`write`).
    pub app_to_sndbuf: u64,
    /// `CopyAppToSndBufInPlace`: written in place into send buffers by the application
    /// (`send_with`, `send_file`). The stack did not copy them; whether the *writer* did
    /// (a `memcpy` from a mapping or buffer) or produced them there depends on the writer.
    pub app_to_sndbuf_in_place: u64,
    /// `CopyAppToSndBufByRef`: queued in send buffers by reference to shared memory
    /// (`send_shared`, `send_file`): no copy.
    pub app_to_sndbuf_by_ref: u64,
    /// `CopySndBufToFrame`: copied from send buffers into frames, first transmissions.
    pub sndbuf_to_frame: u64,
    /// `CopySndBufToFrameRetrans`: copied from send buffers into frames, retransmissions.
    pub sndbuf_to_frame_retrans: u64,
    /// `CopyAppToFrame`: copied from the application straight into frames (UDP, ICMP echo).
    pub app_to_frame: u64,
}

impl Copies {
    /// Reads the copy counters out of a stack's counters.
    pub fn from_counters(c: &Counters) -> Copies {
        Copies {
            frame_to_rcvbuf: c.get(Counter::CopyFrameToRcvBuf),
            rcvbuf_to_app: c.get(Counter::CopyRcvBufToApp),
            rcvbuf_to_app_in_place: c.get(Counter::CopyRcvBufToAppInPlace),
            app_to_sndbuf: c.get(Counter::CopyAppToSndBuf),
            app_to_sndbuf_in_place: c.get(Counter::CopyAppToSndBufInPlace),
            app_to_sndbuf_by_ref: c.get(Counter::CopyAppToSndBufByRef),
            sndbuf_to_frame: c.get(Counter::CopySndBufToFrame),
            sndbuf_to_frame_retrans: c.get(Counter::CopySndBufToFrameRetrans),
            app_to_frame: c.get(Counter::CopyAppToFrame),
        }
    }

    /// What was counted since `earlier` (a snapshot of the same machine).
    pub fn since(&self, earlier: &Copies) -> Copies {
        Copies {
            frame_to_rcvbuf: self.frame_to_rcvbuf - earlier.frame_to_rcvbuf,
            rcvbuf_to_app: self.rcvbuf_to_app - earlier.rcvbuf_to_app,
            rcvbuf_to_app_in_place: self.rcvbuf_to_app_in_place - earlier.rcvbuf_to_app_in_place,
            app_to_sndbuf: self.app_to_sndbuf - earlier.app_to_sndbuf,
            app_to_sndbuf_in_place: self.app_to_sndbuf_in_place - earlier.app_to_sndbuf_in_place,
            app_to_sndbuf_by_ref: self.app_to_sndbuf_by_ref - earlier.app_to_sndbuf_by_ref,
            sndbuf_to_frame: self.sndbuf_to_frame - earlier.sndbuf_to_frame,
            sndbuf_to_frame_retrans: self.sndbuf_to_frame_retrans - earlier.sndbuf_to_frame_retrans,
            app_to_frame: self.app_to_frame - earlier.app_to_frame,
        }
    }

    /// CPU copies made on the receive path: frame → receive buffer, receive buffer → app.
    /// (In-place consumption is not a copy.)
    pub fn recv_copied(&self) -> u64 {
        self.frame_to_rcvbuf + self.rcvbuf_to_app
    }

    /// CPU copies made on the send path by the stack and by an application that fills lent
    /// send-buffer space by copying (`send_with` from a buffer): app → send buffer (copied by
    /// the stack or in place) + send buffer → frame (first transmissions). Bytes queued by
    /// reference (`send_file`, `send_shared`) are not copies. Copies the application made
    /// before handing bytes over (file → its buffer) are not included.
    pub fn send_copied(&self) -> u64 {
        self.app_to_sndbuf + self.app_to_sndbuf_in_place + self.sndbuf_to_frame
    }
}

impl TcpStream {
    /// Zero-copy `recv`: lends `f` the bytes waiting in the receive buffer, in place, and
    /// consumes the first `f(..)` of them (the return value of `f`; more than it was lent counts
    /// as all of it), then updates the window as `read` does. `f` sees only the first,
    /// contiguous part when the data wraps around the buffer's ring: call again for the rest.
    ///
    /// Blocking and errors as `read`: a blocking stream waits until data arrives (or the read
    /// timeout: `WouldBlock`), a non-blocking one fails with `WouldBlock` at once. `f` is called
    /// at most once, and only when bytes are readable; `Ok(0)` *without* `f` having been called
    /// is end of stream (the peer closed, or `shutdown(Read)`).
    ///
    /// Counted as `CopyRcvBufToAppInPlace`, not `CopyRcvBufToApp`: the only copy a received
    /// byte then undergoes is the stack's frame → receive buffer.
    pub fn recv_with<F: FnOnce(&[u8]) -> usize>(&self, f: F) -> io::Result<usize> {
        let fd = self.fd();
        let net = self.net();
        let (nb, t) =
            net.with_raw(|c, p| c.file(p, fd).map(|f| (f.nonblocking, f.read_timeout)))?;
        let mut f = Some(f);
        net.block(timeout_for(nb, t), |core, p| {
            match core.tcp_recv_with(p, fd, &mut f) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                r => Some(r),
            }
        })
    }

    /// Zero-copy `send`: lends `f` the free space of the send buffer (its first contiguous part
    /// when the free space wraps around the ring; the bytes are stale until written) and queues
    /// the first `f(..)` bytes of it — the return value of `f` (more than it was lent counts as
    /// all of it). Returns how many bytes were queued.
    ///
    /// Blocking as `write` for the wait: a blocking stream waits until there is room (or the
    /// write timeout: `WouldBlock`); a non-blocking one fails with `WouldBlock` at once. Unlike
    /// a blocking `write`, it lends space once and returns: call it in a loop to send more.
    /// `f` is called at most once, and only when there is room. After `shutdown(Write)`:
    /// `BrokenPipe`.
    ///
    /// Counted as `CopyAppToSndBufInPlace`, not `CopyAppToSndBuf`. If `f` produces its bytes
    /// right there (a generator, a serializer), the only CPU copy left is send buffer → frame;
    /// if it `memcpy`s them from elsewhere, that is a copy too — just made by the application.
    pub fn send_with<F: FnOnce(&mut [u8]) -> usize>(&self, f: F) -> io::Result<usize> {
        let fd = self.fd();
        let net = self.net();
        let (nb, t) =
            net.with_raw(|c, p| c.file(p, fd).map(|f| (f.nonblocking, f.write_timeout)))?;
        let mut f = Some(f);
        net.block(timeout_for(nb, t), |core, p| {
            match core.tcp_send_with(p, fd, &mut f) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                r => Some(r),
            }
        })
    }

    /// Zero-copy `send` of shared, immutable memory: queues as much of `bytes[range]` as the
    /// send buffer has room for *by reference* — the stack keeps a clone of the [`Arc`] until
    /// those bytes are acknowledged and copies them straight into frames (one CPU copy per
    /// byte; a retransmission copies them again from the same memory). Returns how many bytes
    /// from `range.start` were queued; call again with the rest. Consecutive ranges of the same
    /// memory share one descriptor in the send buffer.
    ///
    /// Blocking as [`TcpStream::send_with`]: a blocking stream waits until there is room (or
    /// the write timeout: `WouldBlock`) and queues once; a non-blocking one fails with
    /// `WouldBlock` at once when the buffer is full. `Ok(0)` for an empty range. After
    /// `shutdown(Write)`: `BrokenPipe`. A range outside `bytes`: `InvalidInput`.
    ///
    /// The memory must not change while queued (it is `AsRef<[u8]>` behind an `Arc`; for a
    /// file mapping, the file must not be written or truncated meanwhile). Counted as
    /// `CopyAppToSndBufByRef`; should the connection hold its maximum of external chunks (only
    /// many small, unrelated ranges get there), the stack copies instead: `CopyAppToSndBuf`.
    pub fn send_shared(&self, bytes: &SharedBytes, range: Range<usize>) -> io::Result<usize> {
        let size = (**bytes).as_ref().len();
        if range.start > range.end || range.end > size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("send_shared: range {range:?} is outside the {size} bytes given"),
            ));
        }
        if range.is_empty() {
            return Ok(0);
        }
        let fd = self.fd();
        let net = self.net();
        let (nb, t) =
            net.with_raw(|c, p| c.file(p, fd).map(|f| (f.nonblocking, f.write_timeout)))?;
        net.block(timeout_for(nb, t), |core, p| {
            match core.tcp_send_shared(p, fd, bytes, range.clone()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                r => Some(r),
            }
        })
    }

    /// `sendfile(2)`: sends `len` bytes of `file` from `offset` (fewer if the file ends first;
    /// `Ok(0)` at or beyond its end) with one CPU copy per byte: the range is mapped (`mmap`,
    /// [`memmap2`]) and queued in pieces, as send-buffer space frees, *by reference* to the
    /// mapping ([`TcpStream::send_shared`]); segmentation copies from the mapping straight into
    /// frames. The mapping lives until its last byte is acknowledged, even after this returns.
    /// Returns the bytes queued.
    ///
    /// A blocking stream returns once all of them are queued (like a blocking `write`), or with
    /// what it queued when the write timeout expires or the connection fails after some bytes
    /// were queued. A non-blocking stream queues what fits now and returns that count, or fails
    /// with `WouldBlock` if nothing fits; call again with `offset + n`.
    ///
    /// Copies per byte: one, mapping → frame (`CopySndBufToFrame`; `CopyAppToSndBufByRef`
    /// counts the bytes queued by reference), against three for `read` + `write`.
    ///
    /// The file must not be written or truncated until the bytes are acknowledged: a
    /// retransmission reads the mapping again, and touching a mapped page beyond the end of a
    /// truncated file raises `SIGBUS` (a property of every `mmap`-based transfer, and Linux's
    /// `sendfile` likewise sends what the page cache holds at transmit time).
    pub fn send_file(&self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        let size = file.metadata()?.len();
        let len = len.min(size.saturating_sub(offset));
        if len == 0 {
            return Ok(0);
        }
        let len = usize::try_from(len).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "send_file: range too large to map",
            )
        })?;
        // Non-blocking: one call queues at most the free send space, so map no more than that
        // (a loop of calls then holds small mappings, not one per call of the whole rest).
        // With no space, map it all anyway: `send_shared` reports the right error.
        let fd = self.fd();
        let (nonblocking, space) = self.net().with_raw(|c, p| {
            let nb = c.file(p, fd)?.nonblocking;
            let h = c.tcp_handle(p, fd)?;
            io::Result::Ok((nb, c.stack(p).tcp().send_space(h)))
        })?;
        let len = if nonblocking && space > 0 {
            len.min(space)
        } else {
            len
        };
        let map: SharedBytes = Arc::new(map_file(file, offset, len)?);
        // Blocking: each `send_shared` waits for room. Non-blocking: queue until `WouldBlock`.
        // Each piece continues the last one, so they all share one descriptor.
        let mut sent = 0usize;
        while sent < len {
            match self.send_shared(&map, sent..len) {
                Ok(n) => sent += n,
                Err(_) if sent > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(sent as u64)
    }
}

/// Maps `len` bytes of `file` from `offset`, read-only (the `unsafe` mapping lives in
/// `nic/src/sys/file_map.rs`, with the crate's other unsafe code).
fn map_file(file: &File, offset: u64, len: usize) -> io::Result<Mmap> {
    ringstack_nic::map_file_readonly(file, offset, len)
}
