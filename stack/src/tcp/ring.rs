//! [`ByteRing`]: the fixed-capacity byte ring under both socket buffers (`send_buffer.rs`,
//! `recv_buffer.rs`). Allocated on first use, so idle and listening sockets cost nothing.
//!
//! Bytes `head..head+len` (modulo the capacity) are held; positions are given as offsets from
//! `head` and every copy handles the wrap at the end of the storage.

/// A ring of at most `cap` bytes.
#[derive(Clone, Debug, Default)]
pub struct ByteRing {
    buf: Vec<u8>,
    cap: usize,
    head: usize,
    len: usize,
}

impl ByteRing {
    /// An empty ring that will hold at most `cap` bytes (allocated lazily).
    pub fn new(cap: usize) -> ByteRing {
        ByteRing {
            buf: Vec::new(),
            cap,
            head: 0,
            len: 0,
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Room after the held bytes.
    pub fn free(&self) -> usize {
        self.cap - self.len
    }

    /// Whether the storage has been allocated (tests and memory accounting).
    pub fn is_allocated(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Changes the capacity; only possible while empty.
    pub fn set_capacity(&mut self, cap: usize) -> bool {
        if self.len != 0 {
            return false;
        }
        self.cap = cap;
        self.buf = Vec::new();
        self.head = 0;
        true
    }

    fn allocate(&mut self) {
        if self.buf.is_empty() {
            self.buf = vec![0; self.cap];
        }
    }

    /// Copies as much of `data` as fits into the free space starting `offset` bytes after the
    /// held bytes (they do not become held: see [`grow`](Self::grow)); returns the count.
    pub fn copy_in_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let n = data.len().min(self.free().saturating_sub(offset));
        if n == 0 {
            return 0;
        }
        self.allocate();
        let start = (self.head + self.len + offset) % self.cap;
        let first = n.min(self.cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        n
    }

    /// Makes `n` more bytes (already written after the held ones) held, up to the capacity.
    pub fn grow(&mut self, n: usize) {
        self.len = (self.len + n).min(self.cap);
    }

    /// Copies held bytes starting `offset` bytes after the head into `out`; returns the count.
    pub fn copy_out_at(&self, offset: usize, out: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let n = out.len().min(self.len - offset);
        let start = (self.head + offset) % self.cap;
        let first = n.min(self.cap - start);
        out[..first].copy_from_slice(&self.buf[start..start + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        n
    }

    /// Drops up to `n` bytes from the front; returns how many.
    pub fn consume(&mut self, n: usize) -> usize {
        let n = n.min(self.len);
        if n > 0 {
            // `head` never jumps back to 0 when the ring empties: the receive buffer keeps
            // out-of-order bytes at positions relative to it.
            self.head = (self.head + n) % self.cap;
            self.len -= n;
        }
        n
    }

    /// The first contiguous run of held bytes (all of them unless they wrap).
    pub fn front(&self) -> &[u8] {
        let first = self.len.min(self.cap - self.head);
        self.buf
            .get(self.head..self.head + first)
            .unwrap_or_default()
    }

    /// Length of the first contiguous run of free space after the held bytes.
    pub fn contiguous_free(&self) -> usize {
        if self.cap == 0 {
            return 0;
        }
        let tail = (self.head + self.len) % self.cap;
        self.free().min(self.cap - tail)
    }

    /// The first contiguous run of free space after the held bytes, allocating the storage on
    /// first use. Its bytes are stale until written; [`grow`](Self::grow) by what was written.
    pub fn back_mut(&mut self) -> &mut [u8] {
        let n = self.contiguous_free();
        if n == 0 {
            return &mut [];
        }
        self.allocate();
        let tail = (self.head + self.len) % self.cap;
        self.buf.get_mut(tail..tail + n).unwrap_or_default()
    }

    /// Releases the memory (and every held byte).
    pub fn release(&mut self) {
        self.buf = Vec::new();
        self.head = 0;
        self.len = 0;
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
        assert_eq!(r.copy_in_at(0, b"c"), 1);
        r.grow(2);
        let mut out = [0u8; 2];
        assert_eq!(r.copy_out_at(0, &mut out), 2);
        assert_eq!(&out, b"cd");
    }
}
