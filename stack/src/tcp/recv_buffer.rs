//! The receive buffer: in-order bytes waiting for the application, plus room where out-of-order
//! bytes are stored at their offset beyond RCV.NXT (RFC 9293 §3.3.1) until the hole before them
//! fills. A [`ByteRing`]: its capacity (SO_RCVBUF) bounds the window we advertise, its storage
//! starts small on first data and grows as bytes accumulate, carrying the out-of-order bytes
//! along (see `ring.rs`).

use super::ring::{BufferMemory, ByteRing};
use crate::counters::Counters;

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

    /// A buffer of capacity `cap` whose storage starts at `initial` bytes.
    pub fn with_initial(cap: usize, initial: usize) -> RecvBuffer {
        RecvBuffer {
            ring: ByteRing::with_initial(cap, initial),
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

    /// Room after the readable bytes (the most we can ever advertise): against the capacity,
    /// whatever storage is allocated now.
    pub fn free(&self) -> usize {
        self.ring.free()
    }

    /// Bytes of storage allocated.
    pub fn storage(&self) -> usize {
        self.ring.storage()
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

    /// Releases the storage if nothing is readable and no out-of-order byte is stored; returns
    /// whether there was storage to release.
    pub fn release_if_empty(&mut self) -> bool {
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
    use super::super::reassembly::Reassembly;
    use super::super::seq::SeqNum;
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn out_of_order_bytes_survive_growth_and_block_release() {
        // Storage of 8 bytes, capacity 64: readable bytes wrap, out-of-order bytes beyond
        // them, then a segment past the storage forces growth.
        let mut b = RecvBuffer::with_initial(64, 8);
        assert_eq!(b.write_at(0, b"012345"), 6);
        b.commit(6);
        let mut out = [0u8; 5];
        assert_eq!(b.read(&mut out), 5);
        assert_eq!(b.write_at(0, b"67"), 2);
        b.commit(2);
        assert_eq!(b.readable(), b"567", "at the end of the storage");
        assert_eq!(
            b.write_at(2, b"ab"),
            2,
            "a hole of 2 bytes, then ab at its start"
        );
        assert_eq!(b.storage(), 8);
        assert_eq!(b.write_at(20, b"yz"), 2, "far beyond the storage");
        assert_eq!(b.storage(), 32);
        assert_eq!(b.free(), 61, "the window is the capacity's");
        let mut three = [0u8; 8];
        assert_eq!(b.read(&mut three), 3);
        assert_eq!(&three[..3], b"567");
        assert!(b.is_empty());
        assert!(!b.release_if_empty(), "out-of-order bytes are stored");
        // The holes fill: everything comes out in order.
        assert_eq!(b.write_at(0, b"89"), 2);
        assert_eq!(b.write_at(4, b"cdefghijklmnop"), 14);
        assert_eq!(b.write_at(18, b"qr"), 2);
        b.commit(22);
        let mut all = [0u8; 32];
        assert_eq!(b.read(&mut all), 22);
        assert_eq!(&all[..22], b"89abcdefghijklmnopqryz");
        assert!(b.release_if_empty());
        assert_eq!((b.storage(), b.free()), (0, 64));
    }

    proptest! {
        /// Segments in any order (duplicates, overlaps), the application reading as it goes
        /// and drained storage released at random, into storage that starts at 16 bytes of a
        /// 2 KiB capacity: the stream comes out exact, the window never shrinks below what
        /// the capacity allows, and storage is given back only with nothing stored.
        #[test]
        fn growth_and_release_never_lose_a_byte(
            len in 1usize..6000,
            cuts in proptest::collection::vec((0usize..6000, 1usize..700), 1..80),
            order_seed in any::<u64>(),
            isn in any::<u32>(),
            reads in proptest::collection::vec((0usize..900, any::<bool>()), 80),
        ) {
            const CAP: usize = 2048;
            let stream: Vec<u8> = (0..len).map(|i| (i * 131 + 7) as u8).collect();
            let mut segs: Vec<(usize, usize)> = cuts
                .iter()
                .map(|&(s, l)| (s % len, (s % len + l).min(len)))
                .collect();
            let mut x = order_seed | 1;
            for i in (1..segs.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                segs.swap(i, (x % (i as u64 + 1)) as usize);
            }
            // Then a full cover in order, so the stream always completes.
            let mut s = 0;
            while s < len {
                let e = (s + 97).min(len);
                segs.push((s, e));
                s = e;
            }
            let mut q = Reassembly::default();
            let mut buf = RecvBuffer::with_initial(CAP, 16);
            let base = SeqNum(isn);
            let mut nxt = base;
            let mut out = Vec::new();
            for (k, (s, e)) in segs.into_iter().enumerate() {
                // Trim to the window like the connection does.
                let seq = base + s as u32;
                let skip = nxt.since(seq) as usize;
                if s + skip < e {
                    // Beyond the window nothing is stored; a segment that would need one hole
                    // too many is dropped (QueueFull): the cover brings both again.
                    let _ = q.receive(&mut buf, &mut nxt, seq + skip as u32, &stream[s + skip..e]);
                }
                prop_assert!(buf.storage() <= CAP);
                prop_assert_eq!(buf.free(), CAP - buf.len());
                let (want, release) = reads[k % reads.len()];
                let mut chunk = vec![0u8; want];
                let n = buf.read(&mut chunk);
                out.extend_from_slice(&chunk[..n]);
                if release {
                    let had = buf.storage();
                    let released = buf.release_if_empty();
                    prop_assert_eq!(released, had > 0 && buf.is_empty() && q.is_empty());
                }
            }
            let mut rest = vec![0u8; CAP];
            let n = buf.read(&mut rest);
            out.extend_from_slice(&rest[..n]);
            prop_assert_eq!(nxt.since(base) as usize, len);
            prop_assert_eq!(&out[..], &stream[..]);
            prop_assert!(buf.release_if_empty() || buf.storage() == 0);
        }
    }
}
