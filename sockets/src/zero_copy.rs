//! Zero-copy calls and copy accounting: [`TcpStream::recv_with`], [`TcpStream::send_with`],
//! [`TcpStream::send_file`], and [`Copies`], the stack's per-boundary byte counters.
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
//! | [`TcpStream::send_file`] | 2 | `CopyAppToSndBufInPlace` (a `memcpy` from the file mapping into the lent send-buffer space), `CopySndBufToFrame` |
//! | [`TcpStream::send_with`] from a buffer | 2 | `CopyAppToSndBufInPlace` (the closure's `memcpy`), `CopySndBufToFrame` |
//! | [`TcpStream::send_with`] producing in place | 1 | `CopySndBufToFrame` only (`CopyAppToSndBufInPlace` counts bytes *written* in place, not copied) |
//! | `read` | 2 | `CopyFrameToRcvBuf`, `CopyRcvBufToApp` |
//! | [`TcpStream::recv_with`] | 1 | `CopyFrameToRcvBuf`; the closure reads the bytes where they lie (`CopyRcvBufToAppInPlace`) |
//!
//! Not counted by these counters: the NIC layer's own moves (frame ↔ ring slot or link), and
//! the kernel's disk → page-cache transfer behind the mapping (DMA, as in the notes).
//!
//! **Honest limit of `send_file`.** A true one-CPU-copy `sendfile` (file pages → frame) needs
//! the send buffer to *reference* the mapping — a scatter-gather send queue of
//! (mapping, offset, length) entries that segmentation reads from, the analogue of the notes'
//! SG-DMA descriptor passing. The stack's send buffer is a byte ring that owns its bytes, so
//! `send_file` still copies each byte once into it: the mapping saves the application's
//! `read` copy (and its buffer), not the send buffer's. The counters show exactly this
//! (`CopyAppToSndBufInPlace` = file length).

use std::fs::File;
use std::io;

use memmap2::Mmap;
use ringstack_stack::{Counter, Counters};

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
    /// send-buffer space by copying (as [`TcpStream::send_file`] does): app → send buffer
    /// (copied by the stack or in place) + send buffer → frame (first transmissions). Copies
    /// the application made before handing bytes over (file → its buffer) are not included.
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

    /// `sendfile(2)`: sends `len` bytes of `file` from `offset` (fewer if the file ends first;
    /// `Ok(0)` at or beyond its end), without the application ever copying them: the range is
    /// mapped (`mmap`, [`memmap2`]) and each piece of free send-buffer space is filled straight
    /// from the mapping with [`TcpStream::send_with`]. Returns the bytes queued.
    ///
    /// A blocking stream returns once all of them are queued (like a blocking `write`), or with
    /// what it queued when the write timeout expires or the connection fails after some bytes
    /// were queued. A non-blocking stream queues what fits now and returns that count, or fails
    /// with `WouldBlock` if nothing fits; call again with `offset + n`.
    ///
    /// Copies per byte: file pages → send buffer (`CopyAppToSndBufInPlace`), send buffer →
    /// frame (`CopySndBufToFrame`): two, against three for `read` + `write`. Not one: see the
    /// [module docs](self) for what a true one-copy `sendfile` would need.
    ///
    /// The file must not be truncated while the call runs: touching a mapped page beyond the
    /// end of a file raises `SIGBUS` (a property of every `mmap`-based transfer).
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
        let map = map_file(file, offset, len)?;
        // Blocking: each `send_with` waits for room. Non-blocking: queue pieces until
        // `WouldBlock` (the free space may wrap around the ring: more than one piece fits).
        let mut sent = 0usize;
        while sent < len {
            let src = &map[sent..];
            let r = self.send_with(|room| {
                let n = room.len().min(src.len());
                room[..n].copy_from_slice(&src[..n]);
                n
            });
            match r {
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
