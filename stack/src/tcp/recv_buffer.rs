//! The receive buffer: in-order bytes waiting for the application, plus room where out-of-order
//! bytes are stored at their offset beyond RCV.NXT (RFC 9293 §3.3.1) until the hole before them
//! fills. A ring of fixed capacity, allocated on first data.

use super::ring::ByteRing;

/// The ring's held bytes are the readable ones; bytes beyond them are out-of-order data whose
/// presence is tracked by the reassembly queue.
#[derive(Clone, Debug, Default)]
pub struct RecvBuffer {
    ring: ByteRing,
}

impl RecvBuffer {
    /// A buffer that will hold at most `cap` bytes (allocated lazily).
    pub fn new(cap: usize) -> RecvBuffer {
        RecvBuffer {
            ring: ByteRing::new(cap),
        }
    }

    /// Readable bytes.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is readable.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Room after the readable bytes (the most we can ever advertise).
    pub fn free(&self) -> usize {
        self.ring.free()
    }

    /// Changes the capacity; only possible while empty and before any out-of-order data.
    pub fn set_capacity(&mut self, cap: usize) -> bool {
        self.ring.set_capacity(cap)
    }

    /// Stores `data` at `offset` bytes past the readable bytes (not yet readable); returns how
    /// many bytes fit.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        self.ring.copy_in_at(offset, data)
    }

    /// Makes `n` more stored bytes readable.
    pub fn commit(&mut self, n: usize) {
        self.ring.grow(n);
    }

    /// Copies readable bytes out; returns the count.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = self.ring.copy_out_at(0, out);
        self.ring.consume(n)
    }

    /// The first contiguous run of readable bytes: all of them unless they wrap around the end
    /// of the ring, in which case the rest follows once these are [consumed](Self::consume).
    pub fn readable(&self) -> &[u8] {
        self.ring.front()
    }

    /// Drops `n` readable bytes from the front (the application used them in place); returns
    /// how many were dropped.
    pub fn consume(&mut self, n: usize) -> usize {
        self.ring.consume(n)
    }

    /// Releases the memory.
    pub fn release(&mut self) {
        self.ring.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_write_then_commit() {
        let mut b = RecvBuffer::new(8);
        assert_eq!(b.write_at(3, b"def"), 3);
        assert_eq!(b.len(), 0);
        assert_eq!(b.write_at(0, b"abc"), 3);
        b.commit(6);
        let mut out = [0u8; 4];
        assert_eq!(b.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        // Wraps: 2 readable, 6 free.
        assert_eq!(b.write_at(0, b"ghijklmn"), 6);
        b.commit(6);
        let mut out = [0u8; 16];
        assert_eq!(b.read(&mut out), 8);
        assert_eq!(&out[..8], b"efghijkl");
        assert_eq!(b.write_at(9, b"x"), 0);
    }

    #[test]
    fn readable_lends_the_first_contiguous_part() {
        let mut b = RecvBuffer::new(8);
        assert!(b.readable().is_empty(), "nothing allocated yet");
        assert_eq!(b.write_at(0, b"abcdef"), 6);
        b.commit(6);
        assert_eq!(b.readable(), b"abcdef");
        assert_eq!(b.consume(4), 4);
        // Wraps: "ef" at the end of the ring, "ghij" at its start.
        assert_eq!(b.write_at(0, b"ghij"), 4);
        b.commit(4);
        assert_eq!(b.len(), 6);
        assert_eq!(b.readable(), b"efgh");
        assert_eq!(b.consume(1), 1);
        assert_eq!(b.readable(), b"fgh");
        assert_eq!(b.consume(3), 3);
        assert_eq!(b.readable(), b"ij");
        assert_eq!(b.consume(100), 2, "clamped to what is readable");
        assert!(b.readable().is_empty());
        assert_eq!(b.consume(1), 0);
    }
}
