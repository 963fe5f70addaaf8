//! The send buffer: bytes the application wrote that are not yet acknowledged
//! (RFC 9293 §3.3.1, from SND.UNA up). A ring of fixed capacity, allocated on first write so that
//! idle and listening sockets cost nothing.

use super::ring::ByteRing;

/// Unacknowledged and unsent bytes. Offset 0 is the byte at SND.UNA.
#[derive(Clone, Debug, Default)]
pub struct SendBuffer {
    ring: ByteRing,
}

impl SendBuffer {
    /// A buffer that will hold at most `cap` bytes (allocated lazily).
    pub fn new(cap: usize) -> SendBuffer {
        SendBuffer {
            ring: ByteRing::new(cap),
        }
    }

    /// Bytes held (sent-unacknowledged plus unsent).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Room for more bytes.
    pub fn free(&self) -> usize {
        self.ring.free()
    }

    /// Changes the capacity; only possible while empty.
    pub fn set_capacity(&mut self, cap: usize) -> bool {
        self.ring.set_capacity(cap)
    }

    /// Appends as much of `data` as fits; returns the count.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = self.ring.copy_in_at(0, data);
        self.ring.grow(n);
        n
    }

    /// The contiguous free space after the queued bytes, for the application to write into in
    /// place (allocating the ring on first use); [`commit`](Self::commit) what was written.
    /// Shorter than [`free`](Self::free) when the free space wraps around the end of the ring.
    /// Bytes in it are stale until written.
    pub fn writable(&mut self) -> &mut [u8] {
        self.ring.back_mut()
    }

    /// Appends `n` bytes written in place into [`writable`](Self::writable) (clamped to its
    /// length); returns the count.
    pub fn commit(&mut self, n: usize) -> usize {
        if !self.ring.is_allocated() {
            return 0;
        }
        let n = n.min(self.ring.contiguous_free());
        self.ring.grow(n);
        n
    }

    /// Copies bytes starting `offset` bytes after SND.UNA into `out`; returns the count.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> usize {
        self.ring.copy_out_at(offset, out)
    }

    /// Drops `n` acknowledged bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.ring.consume(n);
    }

    /// Releases the memory (connection finished).
    pub fn release(&mut self) {
        self.ring.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn lazily_allocated() {
        let b = SendBuffer::new(1 << 20);
        assert!(!b.ring.is_allocated());
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
}
