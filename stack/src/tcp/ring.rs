//! [`ByteRing`]: the growable byte ring under both socket buffers (`send_buffer.rs`,
//! `recv_buffer.rs`), and [`BufferMemory`], the account of their storage across a TCP layer.
//!
//! # Storage
//!
//! A ring has a *capacity* (SO_SNDBUF / SO_RCVBUF: the most bytes it may hold, what the receive
//! window is based on) and *storage*, the memory actually allocated, which is smaller as long
//! as the bytes held stay few. The storage is allocated on first use, [`INITIAL_STORAGE`]
//! bytes (or the capacity if smaller), and doubles whenever a write needs room beyond it, up
//! to the capacity: growing always succeeds, so every byte the window promised fits. A
//! connection exchanging small messages thus keeps a few KiB however large its capacity, and
//! a bulk transfer reaches full size after a handful of doublings (one copy of what is held
//! each time, `log2(capacity / INITIAL_STORAGE)` times per connection).
//!
//! Bytes `head..head+len` (modulo the storage size) are held; positions are given as offsets
//! from `head` and every copy handles the wrap at the end of the storage. The receive buffer
//! also stores out-of-order bytes *beyond* the held ones (at their offset past RCV.NXT), so the
//! ring tracks how far from `head` bytes are stored ([`stored`](ByteRing::stored)): growing
//! carries all of them over (relinearised at the start of the new storage), and storage is only
//! released when nothing at all is stored.
//!
//! # Release
//!
//! [`release_if_empty`](ByteRing::release_if_empty) gives the storage back when nothing is
//! stored; the next write allocates [`INITIAL_STORAGE`] again. When to do it is the TCP layer's
//! policy (`Tcb::settle_buffers`): always once a direction is finished, and for every buffer
//! that drains while the layer's [`BufferMemory`] is above its pressure threshold (Linux's
//! `tcp_mem` pressure). Below the threshold, drained storage is kept: a request/response
//! connection reuses its few KiB without allocating, a bulk receiver that keeps draining its
//! buffer does not shrink and regrow it.

use crate::counters::{Counter, Counters};

/// Storage allocated on first use (bytes; less if the capacity is smaller): one page, enough
/// for a typical request or response.
pub const INITIAL_STORAGE: usize = 4096;

/// A ring of at most `cap` bytes whose storage grows on demand.
///
/// Sizes and positions are kept as `u32` (a capacity is clamped to 4 GiB - 1; TCP windows stop
/// at 1 GiB): the ring sits twice in every TCB.
#[derive(Clone, Debug, Default)]
pub struct ByteRing {
    /// The storage: `size` bytes reserved, of which the first `buf.len()` are initialized.
    /// Storage is never zeroed ahead of use: bytes are initialized by the writes that reach
    /// them (or zeroed when a write skips over them), so allocating and growing cost one copy of
    /// what is stored and nothing more.
    buf: Vec<u8>,
    /// Storage size (0: not allocated).
    size: u32,
    cap: u32,
    head: u32,
    len: u32,
    /// Bytes from `head` that hold data: the held ones and any stored beyond them.
    /// `len <= stored <= size`; every held byte is initialized, and every byte stored beyond
    /// them (holes between them may not be).
    stored: u32,
    /// Storage size of the first allocation (at most `cap`).
    initial: u32,
    /// Storage size last counted by a [`BufferMemory`].
    accounted: u32,
    /// Allocations and growths since last counted.
    grown: u32,
}

/// `n` as a ring size (clamped to `u32::MAX`).
fn clamp(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

impl ByteRing {
    /// An empty ring that will hold at most `cap` bytes (storage allocated lazily, starting at
    /// [`INITIAL_STORAGE`]).
    pub fn new(cap: usize) -> ByteRing {
        ByteRing::with_initial(cap, INITIAL_STORAGE)
    }

    /// An empty ring of capacity `cap` whose first allocation is `initial` bytes (at least 1,
    /// at most `cap`).
    pub fn with_initial(cap: usize, initial: usize) -> ByteRing {
        ByteRing {
            cap: clamp(cap),
            initial: clamp(initial.max(1)),
            ..ByteRing::default()
        }
    }

    /// Bytes held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Room after the held bytes (against the capacity, not the storage).
    #[inline]
    pub fn free(&self) -> usize {
        (self.cap - self.len) as usize
    }

    /// Whether the storage has been allocated (tests and memory accounting).
    pub fn is_allocated(&self) -> bool {
        self.size != 0
    }

    /// Bytes of storage allocated.
    #[inline]
    pub fn storage(&self) -> usize {
        self.size as usize
    }

    /// Bytes from the head that hold data: the held ones plus any stored beyond them.
    pub fn stored(&self) -> usize {
        self.stored as usize
    }

    /// Changes the capacity; only possible while nothing is stored. Releases the storage.
    pub fn set_capacity(&mut self, cap: usize) -> bool {
        if self.stored != 0 {
            return false;
        }
        self.cap = clamp(cap);
        self.release();
        true
    }

    /// Index into the storage `off` bytes after the head (`off <= size`).
    #[inline]
    fn wrap(&self, off: usize) -> usize {
        let i = self.head as usize + off;
        let size = self.size as usize;
        if i >= size {
            i - size
        } else {
            i
        }
    }

    /// Makes the storage at least `need` bytes (`need <= cap`): allocates it, or doubles it
    /// (to the capacity at most) and moves every stored byte to the start of the new storage.
    #[cold]
    #[inline(never)]
    fn reserve(&mut self, need: usize) {
        debug_assert!(need <= self.capacity());
        let mut size = if self.size == 0 {
            self.initial.min(self.cap) as usize
        } else {
            self.size as usize
        };
        while size < need {
            size = size.saturating_mul(2);
        }
        let size = size.min(self.capacity());
        let mut grown = Vec::with_capacity(size);
        let (head, stored) = (self.head as usize, self.stored as usize);
        let first = stored.min(self.size as usize - head);
        for (from, to) in [(head, head + first), (0, stored - first)] {
            // Holes between stored bytes may never have been written: zeros stand for them.
            let written = to.min(self.buf.len()).max(from);
            grown.extend_from_slice(&self.buf[from..written]);
            grown.resize(grown.len() + (to - written), 0);
        }
        self.buf = grown;
        self.size = size as u32;
        self.head = 0;
        self.grown += 1;
    }

    /// Writes `data` at storage index `at` (`at + data.len() <= size`), initializing the
    /// storage up to there.
    #[inline]
    fn put(&mut self, at: usize, data: &[u8]) {
        let end = at + data.len();
        let init = self.buf.len();
        if end <= init {
            self.buf[at..end].copy_from_slice(data);
        } else if at <= init {
            let (old, new) = data.split_at(init - at);
            self.buf[at..init].copy_from_slice(old);
            self.buf.extend_from_slice(new);
        } else {
            self.buf.resize(at, 0);
            self.buf.extend_from_slice(data);
        }
    }

    /// Copies as much of `data` as fits into the free space starting `offset` bytes after the
    /// held bytes (they do not become held: see [`grow`](Self::grow)), growing the storage as
    /// needed; returns the count.
    pub fn copy_in_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let n = data.len().min(self.free().saturating_sub(offset));
        if n == 0 {
            return 0;
        }
        let end = self.len() + offset + n;
        if end > self.size as usize {
            self.reserve(end);
        }
        let start = self.wrap(self.len() + offset);
        let first = n.min(self.size as usize - start);
        self.put(start, &data[..first]);
        if first < n {
            self.put(0, &data[first..n]);
        }
        self.stored = self.stored.max(end as u32);
        n
    }

    /// Makes `n` more bytes (already written after the held ones) held.
    pub fn grow(&mut self, n: usize) {
        debug_assert!(
            self.len() + n <= self.size as usize,
            "bytes made held were never written"
        );
        self.len = (self.len() + n).min(self.size as usize) as u32;
        self.stored = self.stored.max(self.len);
    }

    /// Copies held bytes starting `offset` bytes after the head into `out`; returns the count.
    pub fn copy_out_at(&self, offset: usize, out: &mut [u8]) -> usize {
        if offset >= self.len() {
            return 0;
        }
        let n = out.len().min(self.len() - offset);
        let start = self.wrap(offset);
        let first = n.min(self.size as usize - start);
        out[..first].copy_from_slice(&self.buf[start..start + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        n
    }

    /// Drops up to `n` bytes from the front; returns how many. Bytes stored beyond the held
    /// ones keep their place (their offsets shrink by `n`).
    pub fn consume(&mut self, n: usize) -> usize {
        let n = n.min(self.len());
        if n > 0 {
            self.head = self.wrap(n) as u32;
            self.len -= n as u32;
            self.stored -= n as u32;
        }
        n
    }

    /// The first contiguous run of held bytes (all of them unless they wrap).
    pub fn front(&self) -> &[u8] {
        let head = self.head as usize;
        let first = self.len().min(self.size as usize - head);
        &self.buf[head..head + first]
    }

    /// Length of the first contiguous run of free storage after the held bytes (what
    /// [`back_mut`](Self::back_mut) lends, once the storage exists).
    pub fn contiguous_free(&self) -> usize {
        let size = self.size as usize;
        if size == 0 {
            return 0;
        }
        let tail = self.wrap(self.len());
        (size - self.len()).min(size - tail)
    }

    /// The first contiguous run of free storage after the held bytes, allocating the storage
    /// on first use and growing it when it is full (but the capacity is not). Its bytes are
    /// stale (zero the first time) until written; [`grow`](Self::grow) by what was written.
    /// For rings with nothing stored beyond the held bytes (the send buffer): those would be
    /// overwritten.
    pub fn back_mut(&mut self) -> &mut [u8] {
        debug_assert_eq!(self.stored, self.len, "lending space over stored bytes");
        if self.len == self.cap {
            return &mut [];
        }
        if self.len == self.size {
            self.reserve(self.len() + 1);
        }
        let n = self.contiguous_free();
        let tail = self.wrap(self.len());
        if self.buf.len() < tail + n {
            self.buf.resize(tail + n, 0);
        }
        &mut self.buf[tail..tail + n]
    }

    /// Whether the storage is what a [`BufferMemory`] last counted.
    #[inline]
    pub fn accounted(&self) -> bool {
        self.size == self.accounted
    }

    /// Releases the storage (and every held or stored byte).
    pub fn release(&mut self) {
        self.buf = Vec::new();
        self.size = 0;
        self.head = 0;
        self.len = 0;
        self.stored = 0;
    }

    /// Releases the storage if nothing is stored (no byte held, none out of order); returns
    /// whether there was storage to release.
    #[inline]
    pub fn release_if_empty(&mut self) -> bool {
        if self.stored != 0 || self.size == 0 {
            return false;
        }
        self.release();
        true
    }
}

/// The storage of every socket buffer of a TCP layer, counted (Linux's `tcp_memory_allocated`
/// against `tcp_mem`): kept up to date by the layer after every event on a connection, and
/// telling it whether memory is under pressure, i.e. whether drained buffers should give their
/// storage back (see the [module docs](self)).
///
/// Counters: the `TcpBufMemory` gauge (bytes), `TcpBufGrows` (storage allocated or doubled),
/// `TcpExtTCPMemoryPressures` (times the total went over the threshold).
#[derive(Clone, Debug, Default)]
pub struct BufferMemory {
    in_use: usize,
    pressure: usize,
}

impl BufferMemory {
    /// Nothing counted yet; under pressure above `pressure` bytes.
    pub fn new(pressure: usize) -> BufferMemory {
        BufferMemory {
            in_use: 0,
            pressure,
        }
    }

    /// Bytes of storage counted.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Whether the storage counted exceeds the pressure threshold.
    #[inline]
    pub fn under_pressure(&self) -> bool {
        self.in_use > self.pressure
    }

    /// Brings the count up to date with `ring`'s storage.
    #[inline]
    pub fn account(&mut self, ring: &mut ByteRing, counters: &mut Counters) {
        let now = ring.storage();
        if now != ring.accounted as usize {
            self.changed(ring, now, counters);
        }
    }

    #[cold]
    fn changed(&mut self, ring: &mut ByteRing, now: usize, counters: &mut Counters) {
        let before = self.under_pressure();
        self.in_use = self.in_use - ring.accounted as usize + now;
        ring.accounted = now as u32;
        counters.add(Counter::TcpBufGrows, u64::from(ring.grown));
        ring.grown = 0;
        counters.set(Counter::TcpBufMemory, self.in_use as u64);
        if !before && self.under_pressure() {
            counters.inc(Counter::TcpExtTCPMemoryPressures);
        }
    }

    /// Stops counting `ring` (its connection is being dropped).
    pub fn forget(&mut self, ring: &ByteRing, counters: &mut Counters) {
        self.in_use -= ring.accounted as usize;
        counters.add(Counter::TcpBufGrows, u64::from(ring.grown));
        counters.set(Counter::TcpBufMemory, self.in_use as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_wrap_around_the_end() {
        let mut r = ByteRing::new(8);
        assert!(!r.is_allocated());
        assert_eq!(r.copy_in_at(0, b"abcdef"), 6);
        r.grow(6);
        assert_eq!(r.consume(4), 4);
        assert_eq!(r.copy_in_at(0, b"ghijklmn"), 6, "only the free space");
        r.grow(6);
        let mut out = [0u8; 8];
        assert_eq!(r.copy_out_at(0, &mut out), 8);
        assert_eq!(&out, b"efghijkl");
        assert_eq!(r.front(), b"efgh");
        assert_eq!(r.copy_out_at(8, &mut out), 0);
        assert_eq!(r.consume(100), 8);
        assert!(r.is_empty());
        assert_eq!(r.storage(), 8, "the capacity, below INITIAL_STORAGE");
    }

    #[test]
    fn bytes_stored_beyond_the_held_ones_survive_emptying() {
        // The receive buffer stores out-of-order bytes past the held ones; draining what is
        // held must not move them.
        let mut r = ByteRing::new(8);
        assert_eq!(r.copy_in_at(0, b"ab"), 2);
        r.grow(2);
        assert_eq!(r.copy_in_at(1, b"d"), 1, "one byte of hole, then d");
        assert_eq!(r.consume(2), 2);
        assert!(!r.release_if_empty(), "d is still stored");
        assert_eq!(r.copy_in_at(0, b"c"), 1);
        r.grow(2);
        let mut out = [0u8; 2];
        assert_eq!(r.copy_out_at(0, &mut out), 2);
        assert_eq!(&out, b"cd");
    }

    fn held(r: &ByteRing) -> Vec<u8> {
        let mut out = vec![0u8; r.len()];
        assert_eq!(r.copy_out_at(0, &mut out), r.len());
        out
    }

    #[test]
    fn storage_starts_small_and_doubles_up_to_the_capacity() {
        let mut r = ByteRing::with_initial(100, 8);
        assert_eq!(r.storage(), 0);
        assert_eq!(r.copy_in_at(0, b"abc"), 3);
        assert_eq!(r.storage(), 8);
        r.grow(3);
        assert_eq!(r.copy_in_at(0, &[b'x'; 20]), 20);
        assert_eq!(r.storage(), 32, "doubled until the 23 bytes fit");
        r.grow(20);
        assert_eq!(
            r.copy_in_at(0, &[b'y'; 200]),
            77,
            "the capacity still bounds"
        );
        r.grow(77);
        assert_eq!(r.storage(), 100, "the last doubling stops at the capacity");
        assert_eq!(r.free(), 0);
        assert_eq!(&held(&r)[..5], b"abcxx");
        assert_eq!(r.grown, 3);
        assert_eq!(ByteRing::new(1 << 20).copy_in_at(0, b"z"), 1);
        let mut big = ByteRing::new(1 << 20);
        big.copy_in_at(0, b"z");
        assert_eq!(big.storage(), INITIAL_STORAGE);
    }

    #[test]
    fn growing_a_wrapped_ring_keeps_the_order() {
        let mut r = ByteRing::with_initial(64, 8);
        assert_eq!(r.copy_in_at(0, b"012345"), 6);
        r.grow(6);
        assert_eq!(r.consume(4), 4);
        assert_eq!(r.copy_in_at(0, b"6789ab"), 6);
        r.grow(6);
        assert_eq!(r.storage(), 8);
        assert_eq!(
            r.front(),
            b"4567",
            "wrapped: 45 67 at the end, 89ab at the start"
        );
        assert_eq!(r.copy_in_at(0, b"cdefgh"), 6);
        r.grow(6);
        assert_eq!(r.storage(), 16);
        assert_eq!(held(&r), b"456789abcdefgh");
        assert_eq!(r.front(), b"456789abcdefgh", "relinearised");
    }

    #[test]
    fn growing_carries_the_bytes_stored_beyond_the_held_ones() {
        // The receive buffer's case: in-order bytes held, out-of-order bytes stored past a
        // hole, the whole wrapped, then a segment beyond the storage forces growth.
        let mut r = ByteRing::with_initial(64, 8);
        r.copy_in_at(0, b"abcdef");
        r.grow(6);
        r.consume(5); // head at 5, "f" held
        assert_eq!(
            r.copy_in_at(2, b"ijk"),
            3,
            "hole gh, then ijk, wrapping to the start"
        );
        assert_eq!(r.stored(), 6);
        assert_eq!(r.storage(), 8);
        assert_eq!(
            r.copy_in_at(9, b"pq"),
            2,
            "offsets 9..11 are beyond the storage"
        );
        assert_eq!(r.storage(), 16);
        assert_eq!(r.stored(), 12);
        // Fill the holes and make it all held: every byte where it was.
        assert_eq!(r.copy_in_at(0, b"gh"), 2);
        assert_eq!(r.copy_in_at(5, b"lmno"), 4);
        r.grow(11);
        assert_eq!(held(&r), b"fghijklmnopq");
        assert_eq!(r.consume(12), 12);
        assert_eq!(r.stored(), 0);
        assert!(r.release_if_empty());
        assert!(!r.is_allocated());
        assert!(!r.release_if_empty(), "nothing left to release");
    }

    #[test]
    fn growing_over_a_hole_that_was_never_written() {
        // Storage is initialized only as writes reach it: a hole between the head and an
        // out-of-order byte may span storage nobody wrote, and wrap.
        let mut r = ByteRing::with_initial(64, 8);
        r.copy_in_at(0, b"abcdef");
        r.grow(6);
        r.consume(6); // head at 6: storage 6..8 never written
        assert_eq!(
            r.copy_in_at(4, b"Z"),
            1,
            "at index 2, after a hole of 6, 7, 0, 1"
        );
        assert_eq!(r.copy_in_at(20, b"W"), 1, "beyond the storage: growth");
        assert_eq!(r.storage(), 32);
        assert_eq!(r.copy_in_at(0, b"1234"), 4);
        assert_eq!(r.copy_in_at(5, &[b'.'; 15]), 15);
        r.grow(21);
        assert_eq!(held(&r), b"1234Z...............W");
    }

    #[test]
    fn back_mut_allocates_then_grows_when_full() {
        let mut r = ByteRing::with_initial(20, 8);
        assert_eq!(r.contiguous_free(), 0);
        let w = r.back_mut();
        assert_eq!(w.len(), 8);
        w.copy_from_slice(b"01234567");
        r.grow(8);
        let w = r.back_mut();
        assert_eq!(w.len(), 8, "full storage doubled");
        w[..4].copy_from_slice(b"89ab");
        r.grow(4);
        assert_eq!(r.consume(2), 2);
        assert_eq!(r.back_mut().len(), 4, "up to the end of the storage");
        r.grow(4);
        assert_eq!(r.back_mut().len(), 2, "then the start");
        r.grow(2);
        assert_eq!(held(&r)[..10], *b"23456789ab");
        let w = r.back_mut();
        assert_eq!(w.len(), 4, "grown to the capacity, 20");
        r.grow(4);
        assert!(r.back_mut().is_empty(), "full");
        assert_eq!(r.storage(), 20);
    }

    #[test]
    fn accounting_follows_growth_and_release() {
        let mut c = Counters::default();
        let mut m = BufferMemory::new(10);
        let mut a = ByteRing::with_initial(64, 8);
        let mut b = ByteRing::with_initial(64, 8);
        a.copy_in_at(0, b"x");
        a.grow(1);
        m.account(&mut a, &mut c);
        m.account(&mut b, &mut c);
        assert_eq!((m.in_use(), m.under_pressure()), (8, false));
        b.copy_in_at(0, &[0; 9]);
        m.account(&mut b, &mut c);
        assert_eq!((m.in_use(), m.under_pressure()), (24, true));
        assert_eq!(c.get(Counter::TcpBufMemory), 24);
        assert_eq!(c.get(Counter::TcpBufGrows), 2);
        assert_eq!(c.get(Counter::TcpExtTCPMemoryPressures), 1);
        a.consume(1);
        assert!(a.release_if_empty());
        m.account(&mut a, &mut c);
        assert_eq!(m.in_use(), 16);
        m.forget(&b, &mut c);
        assert_eq!((m.in_use(), c.get(Counter::TcpBufMemory)), (0, 0));
    }
}
