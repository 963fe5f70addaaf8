//! The send buffer: bytes the application handed over that are not yet acknowledged
//! (RFC 9293 §3.3.1, from SND.UNA up), as a scatter-gather queue.
//!
//! Bytes come in two kinds, kept in stream order:
//! - **ring bytes**, copied in by SEND (or written in place), held in a [`ByteRing`] whose
//!   storage is allocated on first write and grows with the bytes held, up to the capacity (see
//!   `ring.rs`), so that idle and listening sockets cost nothing and small messages little;
//! - **external chunks**: ranges of shared, immutable memory the application lent by reference
//!   ([`SendBuffer::write_external`]: a file mapping for `send_file`, a shared buffer). They are
//!   never copied into the buffer; segmentation copies them straight into the frame (the one
//!   CPU copy of a zero-copy `sendfile`, the analogue of the notes' SG-DMA descriptors), and a
//!   retransmission reads the same bytes again. A chunk is released (its [`Arc`] dropped) as
//!   soon as its last byte is acknowledged ([`SendBuffer::consume`]).
//!
//! The queue is a deque of external chunks, each remembering how many ring bytes precede it
//! in the stream; ring bytes after the last chunk are the ring's "tail". With no external chunk
//! the deque is empty and every call is the plain ring's.
//!
//! # Memory accounting (the bound)
//!
//! - **Bytes:** ring bytes and external bytes together never exceed the capacity (SO_SNDBUF):
//!   an external byte uses up send space exactly like a copied one, so [`free`](SendBuffer::free),
//!   writability and the "send as space frees" loop of a large `send_file` work unchanged.
//!   The ring is never overfilled since it has the full capacity to itself.
//! - **Descriptors:** at most [`max_chunks`](SendBuffer::max_chunks) external chunks are held:
//!   one per [`CAPACITY_PER_CHUNK`] bytes of capacity, at least [`MIN_CHUNKS`] (512 for the
//!   default 256 KiB buffer; each descriptor is 40 bytes, so at most ~8% of the capacity in
//!   bookkeeping). A chunk that continues the last one (same memory, next range, no ring bytes
//!   in between) extends it instead of taking a descriptor, so a `send_file` fed in pieces as
//!   space frees uses one. Past the limit, [`write_external`](SendBuffer::write_external)
//!   *copies* the bytes into the ring (reported as [`Queued::Copied`], counted as a copy), so a
//!   caller that spreads tiny chunks over many buffers still progresses whenever the buffer has
//!   room — what readiness promises — and memory stays bounded.
//!
//! # Contract for external memory
//!
//! The slice a chunk's owner returns from `as_ref()` must not change (length or content) while
//! the chunk is queued: a retransmission must send the same bytes. A file mapping meets this as
//! long as the file is not written or truncated meanwhile (Linux's `sendfile` shares the
//! caveat: it sends what the page cache holds at transmit time).

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use super::ring::{BufferMemory, ByteRing};
use crate::counters::Counters;

/// Shared, immutable memory the send buffer can reference instead of copying (a file
/// mapping, a `Vec<u8>`, a `Box<[u8]>`...).
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// One external chunk descriptor is allowed per this many bytes of capacity.
pub const CAPACITY_PER_CHUNK: usize = 512;

/// External chunk descriptors allowed whatever the capacity.
pub const MIN_CHUNKS: usize = 8;

/// How [`SendBuffer::write_external`] queued the bytes it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// Queued by reference: no copy.
    Referenced(usize),
    /// Copied into the ring: the descriptor limit was reached.
    Copied(usize),
}

impl Queued {
    /// Bytes queued either way.
    pub fn len(self) -> usize {
        match self {
            Queued::Referenced(n) | Queued::Copied(n) => n,
        }
    }

    /// Whether nothing was queued (the buffer is full).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// A range of external memory, preceded in the stream by `ring_before` ring bytes.
#[derive(Clone)]
struct Chunk {
    ring_before: usize,
    bytes: SharedBytes,
    start: usize,
    len: usize,
}

impl Chunk {
    /// Bytes `skip..skip + n` of the chunk (shorter only if the owner broke the contract).
    fn slice(&self, skip: usize, n: usize) -> &[u8] {
        let all: &[u8] = (*self.bytes).as_ref();
        let from = (self.start + skip).min(all.len());
        let to = (self.start + skip + n).min(all.len());
        &all[from..to]
    }
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("ring_before", &self.ring_before)
            .field("range", &(self.start..self.start + self.len))
            .finish()
    }
}

/// Unacknowledged and unsent bytes. Offset 0 is the byte at SND.UNA.
#[derive(Clone, Debug, Default)]
pub struct SendBuffer {
    ring: ByteRing,
    /// External chunks in stream order (empty: every byte is in the ring).
    chunks: VecDeque<Chunk>,
    /// Bytes held in `chunks` (at most the capacity, which is a `u32`: see `ring.rs`).
    external_len: u32,
    /// The last write offered more bytes than there was room for: the application is blocked
    /// on buffer space and will add more as acknowledgments free it.
    writer_blocked: bool,
}

impl SendBuffer {
    /// A buffer that will hold at most `cap` bytes (allocated lazily).
    pub fn new(cap: usize) -> SendBuffer {
        SendBuffer {
            ring: ByteRing::new(cap),
            chunks: VecDeque::new(),
            external_len: 0,
            writer_blocked: false,
        }
    }

    /// A buffer of capacity `cap` whose ring storage starts at `initial` bytes.
    pub fn with_initial(cap: usize, initial: usize) -> SendBuffer {
        SendBuffer {
            ring: ByteRing::with_initial(cap, initial),
            ..SendBuffer::default()
        }
    }

    /// Bytes held (sent-unacknowledged plus unsent), ring and external.
    pub fn len(&self) -> usize {
        self.ring.len() + self.external_len as usize
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Room for more bytes (ring or external: both count).
    pub fn free(&self) -> usize {
        self.capacity().saturating_sub(self.len())
    }

    /// Whether the last [`write`](Self::write) or [`write_external`](Self::write_external)
    /// was cut short by the capacity: the application has more to queue once room is freed.
    pub fn writer_blocked(&self) -> bool {
        self.writer_blocked
    }

    /// Bytes of ring storage allocated (external chunks are the application's memory).
    pub fn storage(&self) -> usize {
        self.ring.storage()
    }

    /// External bytes held (by reference).
    pub fn external_len(&self) -> usize {
        self.external_len as usize
    }

    /// External chunk descriptors held.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// The most external chunk descriptors held at once (see the module docs).
    pub fn max_chunks(&self) -> usize {
        (self.capacity() / CAPACITY_PER_CHUNK).max(MIN_CHUNKS)
    }

    /// Changes the capacity; only possible while empty.
    pub fn set_capacity(&mut self, cap: usize) -> bool {
        if !self.is_empty() {
            return false;
        }
        self.chunks.clear();
        self.ring.set_capacity(cap)
    }

    /// Appends as much of `data` as fits by copying it into the ring; returns the count.
    pub fn write(&mut self, data: &[u8]) -> usize {
        self.writer_blocked = data.len() > self.free();
        let n = data.len().min(self.free());
        let n = self.ring.copy_in_at(0, &data[..n]);
        self.ring.grow(n);
        n
    }

    /// Appends as much of `bytes[range]` as fits, by reference when a descriptor is available
    /// (or the range continues the last chunk), by copying into the ring otherwise.
    ///
    /// # Panics
    /// If `range` is not within `bytes` (as slicing would).
    pub fn write_external(&mut self, bytes: &SharedBytes, range: Range<usize>) -> Queued {
        let all: &[u8] = (**bytes).as_ref();
        assert!(
            range.start <= range.end && range.end <= all.len(),
            "external range {range:?} out of bounds of {} bytes",
            all.len()
        );
        let n = range.len().min(self.free());
        self.writer_blocked = n < range.len();
        if n == 0 {
            return Queued::Referenced(0);
        }
        let ring_tail = self.ring.len() - self.chunks.iter().map(|c| c.ring_before).sum::<usize>();
        if let Some(last) = self.chunks.back_mut() {
            if ring_tail == 0
                && Arc::ptr_eq(&last.bytes, bytes)
                && last.start + last.len == range.start
            {
                last.len += n;
                self.external_len += n as u32;
                return Queued::Referenced(n);
            }
        }
        if self.chunks.len() >= self.max_chunks() {
            return Queued::Copied(self.write(&all[range.start..range.start + n]));
        }
        self.chunks.push_back(Chunk {
            ring_before: ring_tail,
            bytes: Arc::clone(bytes),
            start: range.start,
            len: n,
        });
        self.external_len += n as u32;
        Queued::Referenced(n)
    }

    /// The contiguous free space after the queued bytes, for the application to write into in
    /// place (allocating the ring on first use); [`commit`](Self::commit) what was written.
    /// Shorter than [`free`](Self::free) when the free space wraps around the end of the ring.
    /// Bytes in it are stale until written.
    pub fn writable(&mut self) -> &mut [u8] {
        let free = self.free();
        if free == 0 {
            return &mut [];
        }
        let room = self.ring.back_mut();
        let n = room.len().min(free);
        &mut room[..n]
    }

    /// Appends `n` bytes written in place into [`writable`](Self::writable) (clamped to its
    /// length); returns the count.
    pub fn commit(&mut self, n: usize) -> usize {
        if !self.ring.is_allocated() {
            return 0;
        }
        let n = n.min(self.ring.contiguous_free()).min(self.free());
        self.ring.grow(n);
        n
    }

    /// Copies bytes starting `offset` bytes after SND.UNA into `out`, gathering them from the
    /// ring and the external chunks they lie in; returns the count.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> usize {
        if self.chunks.is_empty() {
            return self.ring.copy_out_at(offset, out);
        }
        let mut skip = offset; // bytes still to skip before `offset`
        let mut done = 0; // bytes written to `out`
        let mut ring_off = 0; // ring offset of the current ring run
        for c in &self.chunks {
            for (is_ring, len) in [(true, c.ring_before), (false, c.len)] {
                if done == out.len() {
                    return done;
                }
                if skip >= len {
                    skip -= len;
                    if is_ring {
                        ring_off += len;
                    }
                    continue;
                }
                let n = (len - skip).min(out.len() - done);
                let got = if is_ring {
                    let got = self
                        .ring
                        .copy_out_at(ring_off + skip, &mut out[done..done + n]);
                    ring_off += len;
                    got
                } else {
                    let src = c.slice(skip, n);
                    out[done..done + src.len()].copy_from_slice(src);
                    src.len()
                };
                done += got;
                skip = 0;
                if got < n {
                    return done;
                }
            }
        }
        if done < out.len() {
            let tail = self.ring.len() - ring_off;
            if skip < tail {
                let n = (tail - skip).min(out.len() - done);
                done += self
                    .ring
                    .copy_out_at(ring_off + skip, &mut out[done..done + n]);
            }
        }
        done
    }

    /// Drops `n` acknowledged bytes from the front, releasing each external chunk whose last
    /// byte they include.
    pub fn consume(&mut self, n: usize) {
        let mut n = n.min(self.len());
        while n > 0 {
            let Some(c) = self.chunks.front_mut() else {
                self.ring.consume(n);
                return;
            };
            let r = n.min(c.ring_before);
            self.ring.consume(r);
            c.ring_before -= r;
            n -= r;
            let e = n.min(c.len);
            c.start += e;
            c.len -= e;
            self.external_len -= e as u32;
            n -= e;
            if c.len == 0 {
                self.chunks.pop_front();
            }
        }
    }

    /// Releases the memory and every external chunk (connection finished).
    pub fn release(&mut self) {
        self.ring.release();
        self.chunks = VecDeque::new();
        self.external_len = 0;
        self.writer_blocked = false;
    }

    /// Releases the ring storage if no ring byte is held (external chunks stay queued), and
    /// the chunk queue's memory if no chunk is; returns whether there was ring storage to
    /// release.
    pub fn release_if_empty(&mut self) -> bool {
        if self.chunks.is_empty() && self.chunks.capacity() != 0 {
            self.chunks = VecDeque::new();
        }
        self.ring.release_if_empty()
    }

    /// Whether `mem`'s count of buffer storage is up to date with this buffer.
    #[inline]
    pub fn accounted(&self) -> bool {
        self.ring.accounted()
    }

    /// Brings `mem`'s count of buffer storage up to date with this buffer.
    #[inline]
    pub fn account(&mut self, mem: &mut BufferMemory, counters: &mut Counters) {
        mem.account(&mut self.ring, counters);
    }

    /// Removes this buffer from `mem`'s count (its connection is being dropped).
    pub fn forget(&self, mem: &mut BufferMemory, counters: &mut Counters) {
        mem.forget(&self.ring, counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shared(data: &[u8]) -> SharedBytes {
        Arc::new(data.to_vec())
    }

    fn all(b: &SendBuffer) -> Vec<u8> {
        let mut out = vec![0u8; b.len()];
        assert_eq!(b.read_at(0, &mut out), b.len());
        out
    }

    #[test]
    fn a_write_cut_short_marks_the_writer_blocked() {
        let mut b = SendBuffer::new(10);
        assert!(!b.writer_blocked());
        assert_eq!(b.write(&[1; 6]), 6);
        assert!(!b.writer_blocked());
        assert_eq!(b.write(&[2; 6]), 4);
        assert!(b.writer_blocked());
        b.consume(3);
        assert!(
            b.writer_blocked(),
            "freeing room does not unblock: only a write does"
        );
        assert_eq!(b.write(&[3; 3]), 3);
        assert!(!b.writer_blocked());
        let ext = shared(&[4; 8]);
        assert_eq!(b.write_external(&ext, 0..8), Queued::Referenced(0));
        assert!(b.writer_blocked());
        b.consume(10);
        assert_eq!(b.write_external(&ext, 0..8), Queued::Referenced(8));
        assert!(!b.writer_blocked());
        assert_eq!(b.write(&[5; 3]), 2);
        b.release();
        assert!(!b.writer_blocked());
    }

    #[test]
    fn wraps_and_reads_at_offsets() {
        let mut b = SendBuffer::new(8);
        assert_eq!(b.write(b"abcdef"), 6);
        b.consume(4);
        assert_eq!(b.write(b"ghijklmn"), 6);
        assert_eq!(b.len(), 8);
        let mut out = [0u8; 8];
        assert_eq!(b.read_at(0, &mut out), 8);
        assert_eq!(&out, b"efghijkl");
        assert_eq!(b.read_at(5, &mut out[..2]), 2);
        assert_eq!(&out[..2], b"jk");
        assert_eq!(b.read_at(8, &mut out), 0);
        b.consume(100);
        assert!(b.is_empty());
        assert_eq!(b.write(b""), 0);
    }

    #[test]
    fn lazily_allocated_and_grown_with_the_bytes_held() {
        let mut b = SendBuffer::new(1 << 20);
        assert!(!b.ring.is_allocated());
        assert_eq!(b.write(b"x"), 1);
        assert_eq!(b.storage(), super::super::ring::INITIAL_STORAGE);
        assert_eq!(b.write(&[7u8; 100_000]), 100_000);
        assert_eq!(b.storage(), 128 * 1024, "doubled until it fits");
        assert_eq!(b.free(), (1 << 20) - 100_001, "space is the capacity's");
        assert!(!b.release_if_empty(), "bytes held");
        b.consume(100_001);
        assert!(b.release_if_empty());
        assert_eq!((b.storage(), b.free()), (0, 1 << 20));
    }

    #[test]
    fn growth_keeps_ring_bytes_around_external_chunks_in_order() {
        let mut b = SendBuffer::with_initial(64, 4);
        let x = shared(b"0123456789");
        assert_eq!(b.write(b"abc"), 3);
        b.consume(2); // the ring's head moves: the next ring bytes wrap
        assert_eq!(b.write_external(&x, 0..4), Queued::Referenced(4));
        assert_eq!(b.write(b"de"), 2);
        assert_eq!(b.storage(), 4, "c d e wrap within 4 bytes");
        assert_eq!(b.write_external(&x, 6..8), Queued::Referenced(2));
        assert_eq!(b.write(b"fghij"), 5);
        assert_eq!(b.storage(), 8);
        assert_eq!(all(&b), b"c0123de67fghij");
        let w = b.writable();
        assert_eq!(w.len(), 8, "the storage was full: grown to 16");
        w[..2].copy_from_slice(b"kl");
        assert_eq!(b.commit(2), 2);
        assert_eq!(all(&b), b"c0123de67fghijkl");
        b.consume(5); // c 0 1 2 3
        assert_eq!(
            Arc::strong_count(&x),
            2,
            "the first chunk released, the second queued"
        );
        b.consume(4); // d e 6 7
        assert_eq!(Arc::strong_count(&x), 1);
        assert_eq!(all(&b), b"fghijkl");
    }

    #[test]
    fn writable_lends_contiguous_free_space() {
        let mut b = SendBuffer::new(8);
        assert_eq!(b.commit(3), 0, "nothing lent yet");
        let w = b.writable();
        assert_eq!(w.len(), 8);
        w[..6].copy_from_slice(b"abcdef");
        assert_eq!(b.commit(6), 6);
        b.consume(4);
        // Free: 2 at the end of the ring, 4 at its start; only the first part is lent.
        let w = b.writable();
        assert_eq!(w.len(), 2);
        w.copy_from_slice(b"gh");
        assert_eq!(b.commit(5), 2, "clamped to the lent part");
        let w = b.writable();
        assert_eq!(w.len(), 4);
        w[..3].copy_from_slice(b"ijk");
        assert_eq!(b.commit(3), 3);
        let mut out = [0u8; 7];
        assert_eq!(b.read_at(0, &mut out), 7);
        assert_eq!(&out, b"efghijk");
        assert_eq!(b.writable().len(), 1);
        assert_eq!(b.commit(1), 1);
        assert!(b.writable().is_empty(), "full");
        assert_eq!(b.commit(1), 0);
        assert_eq!(SendBuffer::new(0).writable().len(), 0);
    }

    #[test]
    fn ring_and_external_bytes_keep_stream_order() {
        let mut b = SendBuffer::new(32);
        let x = shared(b"0123456789");
        assert_eq!(b.write(b"ab"), 2);
        assert_eq!(b.write_external(&x, 2..5), Queued::Referenced(3));
        assert_eq!(b.write(b"cd"), 2);
        assert_eq!(b.write_external(&x, 7..10), Queued::Referenced(3));
        assert_eq!(
            b.write_external(&shared(b"XY"), 0..2),
            Queued::Referenced(2)
        );
        assert_eq!(b.write(b"e"), 1);
        assert_eq!(all(&b), b"ab234cd789XYe");
        assert_eq!((b.len(), b.external_len(), b.chunks()), (13, 8, 3));
        assert_eq!(b.free(), 32 - 13, "external bytes use up send space");
        assert_eq!(b.ring.len(), 5, "only the written bytes are in the ring");
    }

    #[test]
    fn only_external_bytes_never_allocate_the_ring() {
        let mut b = SendBuffer::new(1 << 20);
        let x: SharedBytes = Arc::new(vec![7u8; 4096]);
        assert_eq!(b.write_external(&x, 0..4096), Queued::Referenced(4096));
        assert_eq!(all(&b), vec![7u8; 4096]);
        assert!(!b.ring.is_allocated());
    }

    #[test]
    fn read_at_gathers_across_chunk_boundaries() {
        let mut b = SendBuffer::new(32);
        let x = shared(b"ABCDEFGH");
        b.write(b"abc");
        b.write_external(&x, 0..4);
        b.write(b"def");
        b.write_external(&x, 5..8);
        b.write(b"gh");
        let whole = all(&b);
        assert_eq!(whole, b"abcABCDdefFGHgh");
        // Every (offset, length) window, as segmentation and retransmission ask for them.
        for off in 0..=whole.len() + 1 {
            for len in 0..=whole.len() + 1 {
                let mut out = vec![0u8; len];
                let n = b.read_at(off, &mut out);
                let want = &whole[off.min(whole.len())..(off + len).min(whole.len())];
                assert_eq!(&out[..n], want, "offset {off} len {len}");
            }
        }
    }

    #[test]
    fn consume_across_boundaries_releases_acknowledged_chunks() {
        let mut b = SendBuffer::new(64);
        let x = shared(b"0123456789");
        let y = shared(b"wxyz");
        b.write(b"ab");
        b.write_external(&x, 0..10);
        b.write(b"cd");
        b.write_external(&y, 1..4);
        b.write(b"e");
        assert_eq!((Arc::strong_count(&x), Arc::strong_count(&y)), (2, 2));
        b.consume(1);
        assert_eq!(all(&b), b"b0123456789cdxyze");
        b.consume(5); // the ring byte and the first 4 bytes of x
        assert_eq!(all(&b), b"456789cdxyze");
        assert_eq!(Arc::strong_count(&x), 2, "x is still partly unacknowledged");
        b.consume(6); // exactly the rest of x
        assert_eq!(
            Arc::strong_count(&x),
            1,
            "released as soon as its last byte is acked"
        );
        assert_eq!(all(&b), b"cdxyze");
        b.consume(4); // c d x y
        assert_eq!(all(&b), b"ze");
        assert_eq!(Arc::strong_count(&y), 2);
        b.consume(1);
        assert_eq!(Arc::strong_count(&y), 1);
        assert_eq!(
            (b.chunks(), b.external_len(), all(&b)),
            (0, 0, b"e".to_vec())
        );
        b.consume(100);
        assert!(b.is_empty());
        // The ring went on from where it was: plain ring behaviour again.
        assert_eq!(b.write(b"fgh"), 3);
        assert_eq!(all(&b), b"fgh");
    }

    #[test]
    fn release_drops_every_chunk() {
        let mut b = SendBuffer::new(64);
        let x = shared(b"0123456789");
        b.write(b"ab");
        b.write_external(&x, 0..10);
        assert_eq!(Arc::strong_count(&x), 2);
        b.release();
        assert_eq!(Arc::strong_count(&x), 1);
        assert!(b.is_empty());
        assert_eq!(b.free(), 64);
    }

    #[test]
    fn space_is_shared_and_chunks_are_taken_in_part() {
        let mut b = SendBuffer::new(8);
        let x = shared(b"0123456789");
        assert_eq!(b.write(b"abc"), 3);
        assert_eq!(
            b.write_external(&x, 0..10),
            Queued::Referenced(5),
            "what fits"
        );
        assert_eq!(b.free(), 0);
        assert_eq!(b.write_external(&x, 5..10), Queued::Referenced(0), "full");
        assert_eq!(
            b.write(b"z"),
            0,
            "external bytes count against the ring too"
        );
        assert!(b.writable().is_empty());
        b.consume(4); // a b c 0
        assert_eq!(b.free(), 4);
        assert_eq!(
            b.writable().len(),
            4,
            "lent space clamped to the shared free space"
        );
        assert_eq!(b.commit(8), 4);
        assert_eq!(b.len(), 8);
        assert!(!b.set_capacity(16), "not while holding bytes");
    }

    #[test]
    fn continuing_ranges_extend_the_last_chunk() {
        let mut b = SendBuffer::new(64);
        let x = shared(&[1u8; 100]);
        let same_content = shared(&[1u8; 100]);
        assert_eq!(b.write_external(&x, 0..10), Queued::Referenced(10));
        assert_eq!(b.write_external(&x, 10..20), Queued::Referenced(10));
        assert_eq!(b.chunks(), 1, "same memory, next range: extended");
        assert_eq!(b.write_external(&x, 30..40), Queued::Referenced(10));
        assert_eq!(b.chunks(), 2, "a gap: a new chunk");
        assert_eq!(
            b.write_external(&same_content, 40..50),
            Queued::Referenced(10)
        );
        assert_eq!(b.chunks(), 3, "other memory: a new chunk");
        b.write(b"r");
        assert_eq!(
            b.write_external(&same_content, 50..52),
            Queued::Referenced(2)
        );
        assert_eq!(b.chunks(), 4, "ring bytes in between: a new chunk");
        assert_eq!(b.len(), 43);
    }

    #[test]
    fn past_the_descriptor_limit_bytes_are_copied() {
        let mut b = SendBuffer::new(1024);
        assert_eq!(b.max_chunks(), MIN_CHUNKS);
        assert_eq!(SendBuffer::new(256 * 1024).max_chunks(), 512);
        let pieces: Vec<SharedBytes> = (0..MIN_CHUNKS as u8 + 2).map(|i| shared(&[i; 3])).collect();
        for p in &pieces[..MIN_CHUNKS] {
            assert_eq!(b.write_external(p, 0..3), Queued::Referenced(3));
        }
        assert_eq!(
            b.write_external(&pieces[MIN_CHUNKS], 0..2),
            Queued::Copied(2)
        );
        assert_eq!(Arc::strong_count(&pieces[MIN_CHUNKS]), 1, "not referenced");
        assert_eq!(b.chunks(), MIN_CHUNKS);
        let mut want = Vec::new();
        for i in 0..MIN_CHUNKS as u8 {
            want.extend_from_slice(&[i; 3]);
        }
        want.extend_from_slice(&[MIN_CHUNKS as u8; 2]);
        assert_eq!(all(&b), want);
        // Acknowledging a chunk frees its descriptor.
        b.consume(3);
        assert_eq!(
            b.write_external(&pieces[MIN_CHUNKS + 1], 1..3),
            Queued::Referenced(2)
        );
        want.drain(..3);
        want.extend_from_slice(&[MIN_CHUNKS as u8 + 1; 2]);
        assert_eq!(all(&b), want);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn an_external_range_beyond_the_memory_panics() {
        SendBuffer::new(64).write_external(&shared(b"abc"), 1..4);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Write(Vec<u8>),
        External(usize, usize, usize),
        Commit(usize, u8),
        Consume(usize),
        Release,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(Op::Write),
            // Short ranges, often continuing each other, so the descriptor limit is reached.
            3 => (0..3usize, 0..34usize, 0..7usize).prop_map(|(i, a, n)| Op::External(i, a, a + n)),
            1 => (0..20usize, any::<u8>()).prop_map(|(n, v)| Op::Commit(n, v)),
            1 => (0..30usize).prop_map(Op::Consume),
            1 => Just(Op::Release),
        ]
    }

    proptest! {
        /// Against a model (a plain byte vector): any mix of copied, in-place and external
        /// writes, acknowledgements and releases of drained storage, with the ring's storage
        /// growing from 4 bytes, reads back the same stream at every offset, stays
        /// within the capacity and the descriptor limit, and holds a reference to exactly the
        /// external memory still unacknowledged.
        #[test]
        fn behaves_like_a_byte_queue(ops in proptest::collection::vec(op(), 1..60)) {
            let mems: Vec<SharedBytes> = (0..3u8)
                .map(|i| Arc::new((0..40u8).map(|j| i * 64 + j).collect::<Vec<u8>>()) as SharedBytes)
                .collect();
            // Storage of 4 bytes at first: every write may grow the ring, wrapped or not.
            let mut b = SendBuffer::with_initial(48, 4);
            let mut model: Vec<u8> = Vec::new();
            for op in ops {
                match op {
                    Op::Write(d) => {
                        let n = b.write(&d);
                        prop_assert_eq!(n, d.len().min(48 - model.len()));
                        model.extend_from_slice(&d[..n]);
                    }
                    Op::External(i, start, end) => {
                        let r = start..end;
                        let q = b.write_external(&mems[i], r.clone());
                        prop_assert_eq!(q.len(), r.len().min(48 - model.len()));
                        let all: &[u8] = (*mems[i]).as_ref();
                        model.extend_from_slice(&all[r.start..r.start + q.len()]);
                    }
                    Op::Commit(n, v) => {
                        let room = b.writable();
                        let k = n.min(room.len());
                        room[..k].fill(v);
                        prop_assert_eq!(b.commit(k), k);
                        model.extend(std::iter::repeat_n(v, k));
                    }
                    Op::Consume(n) => {
                        b.consume(n);
                        model.drain(..n.min(model.len()));
                    }
                    Op::Release => {
                        let ring_bytes = b.len() - b.external_len();
                        let had = b.storage();
                        prop_assert_eq!(b.release_if_empty(), ring_bytes == 0 && had > 0);
                        prop_assert_eq!(b.storage() == 0, ring_bytes == 0 || had == 0);
                    }
                }
                prop_assert!(b.storage() <= 48);
                prop_assert_eq!(b.len(), model.len());
                prop_assert_eq!(b.free(), 48 - model.len());
                prop_assert!(b.chunks() <= b.max_chunks());
                prop_assert_eq!(all(&b), model.clone());
                for off in [0, 1, model.len() / 2, model.len().saturating_sub(1)] {
                    let mut out = [0u8; 7];
                    let n = b.read_at(off, &mut out);
                    let end = (off + 7).min(model.len());
                    prop_assert_eq!(&out[..n], &model[off.min(end)..end]);
                }
                let refs: usize = mems.iter().map(|m| Arc::strong_count(m) - 1).sum();
                prop_assert_eq!(refs, b.chunks(), "one reference per chunk held, none leaked");
            }
        }
    }
}
