//! Out-of-order reassembly (RFC 9293 §3.10.7.4 "seventh, process the segment text") and the SACK
//! blocks we report (RFC 2018 §4).
//!
//! Out-of-order bytes are written straight into the receive buffer at their offset; this queue
//! only remembers which sequence ranges beyond RCV.NXT are present. It is bounded twice: in
//! bytes by the receive window (nothing beyond it is accepted) and in entries by
//! [`MAX_RANGES`] (a segment that would need more holes is dropped, `TcpOfoQueueFull`).

use super::options::SackBlock;
use super::recv_buffer::RecvBuffer;
use super::seq::SeqNum;

/// Most disjoint ranges tracked at once.
pub const MAX_RANGES: usize = 32;

/// A set of disjoint, non-adjacent sequence ranges `[start, end)`, sorted.
#[derive(Clone, Debug, Default)]
pub struct RangeSet {
    ranges: Vec<(SeqNum, SeqNum)>,
}

/// The set is full: the range would need a new entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl RangeSet {
    /// Adds `[start, end)`, merging with overlapping or adjacent ranges. Returns the merged range
    /// that now contains it.
    pub fn insert(&mut self, start: SeqNum, end: SeqNum) -> Result<(SeqNum, SeqNum), Full> {
        if end <= start {
            return Ok((start, start));
        }
        // First range whose end reaches start (could merge), by linear scan (bounded small).
        let i = self
            .ranges
            .iter()
            .position(|&(_, e)| e >= start)
            .unwrap_or(self.ranges.len());
        let mut j = i;
        let (mut s, mut e) = (start, end);
        while j < self.ranges.len() && self.ranges[j].0 <= e {
            s = s.min_seq(self.ranges[j].0);
            e = e.max_seq(self.ranges[j].1);
            j += 1;
        }
        if i == j {
            if self.ranges.len() >= MAX_RANGES {
                return Err(Full);
            }
            if self.ranges.capacity() == 0 {
                self.ranges.reserve_exact(MAX_RANGES);
            }
            self.ranges.insert(i, (s, e));
        } else {
            self.ranges[i] = (s, e);
            self.ranges.drain(i + 1..j);
        }
        Ok((s, e))
    }

    /// Removes everything before `seq` (trimming a range that straddles it).
    pub fn remove_below(&mut self, seq: SeqNum) {
        let k = self.ranges.iter().take_while(|&&(_, e)| e <= seq).count();
        self.ranges.drain(..k);
        if let Some(first) = self.ranges.first_mut() {
            if first.0 < seq {
                first.0 = seq;
            }
        }
    }

    /// The ranges, in sequence order.
    pub fn iter(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        self.ranges.iter().copied()
    }

    /// The ranges, highest first.
    pub fn iter_rev(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        self.ranges.iter().rev().copied()
    }

    /// The first range.
    pub fn first(&self) -> Option<(SeqNum, SeqNum)> {
        self.ranges.first().copied()
    }

    /// The last range.
    pub fn last(&self) -> Option<(SeqNum, SeqNum)> {
        self.ranges.last().copied()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Total bytes covered.
    pub fn bytes(&self) -> u32 {
        self.ranges.iter().map(|&(s, e)| e.since(s)).sum()
    }

    /// The range containing `seq`, if any.
    pub fn containing(&self, seq: SeqNum) -> Option<(SeqNum, SeqNum)> {
        self.ranges
            .iter()
            .copied()
            .find(|&(s, e)| seq.in_range(s, e))
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}

/// The out-of-order queue of a connection.
#[derive(Clone, Debug, Default)]
pub struct Reassembly {
    ranges: RangeSet,
    /// The range most recently extended (reported first in SACK, RFC 2018 §4).
    recent: Option<(SeqNum, SeqNum)>,
}

/// What [`Reassembly::receive`] did with a segment's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// In order: RCV.NXT advanced by this many bytes (including any queued bytes it joined).
    InOrder(u32),
    /// Stored out of order (a hole precedes it).
    OutOfOrder,
    /// Dropped: too many holes.
    QueueFull,
}

impl Reassembly {
    /// Whether out-of-order data is held.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Bytes held out of order.
    pub fn bytes(&self) -> u32 {
        self.ranges.bytes()
    }

    /// Accepts `data` starting at `seq`, already trimmed to `[rcv_nxt, rcv_nxt + window)` by
    /// the caller: stores it in `buf` and advances `rcv_nxt` over whatever became contiguous.
    /// Unless the result is `QueueFull` (nothing copied), every byte of `data` that fits in
    /// `buf` is copied into it once, even where it overlaps bytes already held.
    pub fn receive(
        &mut self,
        buf: &mut RecvBuffer,
        rcv_nxt: &mut SeqNum,
        seq: SeqNum,
        data: &[u8],
    ) -> Received {
        if data.is_empty() || seq < *rcv_nxt {
            return Received::InOrder(0);
        }
        let offset = seq.since(*rcv_nxt) as usize;
        let n = data.len().min(buf.free().saturating_sub(offset));
        if n == 0 {
            return Received::InOrder(0);
        }
        let end = seq + n as u32;
        if seq != *rcv_nxt {
            // The range first: a segment that would need one hole too many is dropped before
            // it is copied.
            return match self.ranges.insert(seq, end) {
                Ok(r) => {
                    buf.write_at(offset, &data[..n]);
                    self.recent = Some(r);
                    Received::OutOfOrder
                }
                Err(Full) => Received::QueueFull,
            };
        }
        buf.write_at(offset, &data[..n]);
        let mut new_nxt = end;
        while let Some((s, e)) = self.ranges.first() {
            if s > new_nxt {
                break;
            }
            new_nxt = new_nxt.max_seq(e);
            self.ranges.remove_below(new_nxt);
        }
        self.ranges.remove_below(new_nxt);
        if let Some((_, e)) = self.recent {
            if e <= new_nxt {
                self.recent = None;
            }
        }
        let advanced = new_nxt.since(*rcv_nxt);
        buf.commit(advanced as usize);
        *rcv_nxt = new_nxt;
        Received::InOrder(advanced)
    }

    /// Up to `max` SACK blocks: the most recently changed range first, then the others from
    /// the highest down (RFC 2018 §4). Returns the count written.
    pub fn sack_blocks(&self, out: &mut [SackBlock], max: usize) -> usize {
        let max = max.min(out.len());
        let mut n = 0;
        let recent = self.recent.and_then(|(s, _)| self.ranges.containing(s));
        if let Some((s, e)) = recent {
            if n < max {
                out[n] = SackBlock { left: s, right: e };
                n += 1;
            }
        }
        for (s, e) in self.ranges.ranges.iter().rev() {
            if n >= max {
                break;
            }
            if Some((*s, *e)) == recent {
                continue;
            }
            out[n] = SackBlock {
                left: *s,
                right: *e,
            };
            n += 1;
        }
        n
    }

    /// Forgets everything (connection reset).
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.recent = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn range_set_merges() {
        let mut r = RangeSet::default();
        r.insert(SeqNum(10), SeqNum(20)).unwrap();
        r.insert(SeqNum(30), SeqNum(40)).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r.insert(SeqNum(20), SeqNum(30)).unwrap(),
            (SeqNum(10), SeqNum(40))
        );
        assert_eq!(r.len(), 1);
        r.insert(SeqNum(5), SeqNum(8)).unwrap();
        r.insert(SeqNum(50), SeqNum(60)).unwrap();
        assert_eq!(
            r.insert(SeqNum(0), SeqNum(100)).unwrap(),
            (SeqNum(0), SeqNum(100))
        );
        assert_eq!(r.len(), 1);
        r.remove_below(SeqNum(50));
        assert_eq!(r.first(), Some((SeqNum(50), SeqNum(100))));
        assert_eq!(r.bytes(), 50);
    }

    #[test]
    fn range_set_bounded_and_wraps() {
        let mut r = RangeSet::default();
        let base = SeqNum(u32::MAX - 100);
        for i in 0..MAX_RANGES as u32 {
            r.insert(base + i * 10, base + i * 10 + 5).unwrap();
        }
        assert_eq!(r.insert(base + 1000, base + 1001), Err(Full));
        // Merging into an existing range still works when full.
        assert!(r.insert(base + 5, base + 10).is_ok());
    }

    #[test]
    fn sack_blocks_most_recent_first() {
        let mut q = Reassembly::default();
        let mut b = RecvBuffer::new(1000);
        let mut nxt = SeqNum(0);
        assert_eq!(
            q.receive(&mut b, &mut nxt, SeqNum(100), &[1; 10]),
            Received::OutOfOrder
        );
        assert_eq!(
            q.receive(&mut b, &mut nxt, SeqNum(300), &[1; 10]),
            Received::OutOfOrder
        );
        assert_eq!(
            q.receive(&mut b, &mut nxt, SeqNum(200), &[1; 10]),
            Received::OutOfOrder
        );
        let mut out = [SackBlock::default(); 4];
        assert_eq!(q.sack_blocks(&mut out, 3), 3);
        assert_eq!(
            out[0],
            SackBlock {
                left: SeqNum(200),
                right: SeqNum(210)
            }
        );
        assert_eq!(
            out[1],
            SackBlock {
                left: SeqNum(300),
                right: SeqNum(310)
            }
        );
        assert_eq!(
            out[2],
            SackBlock {
                left: SeqNum(100),
                right: SeqNum(110)
            }
        );
        assert_eq!(
            q.receive(&mut b, &mut nxt, SeqNum(0), &[1; 100]),
            Received::InOrder(110)
        );
        assert_eq!(nxt, SeqNum(110));
        assert_eq!(q.sack_blocks(&mut out, 3), 2);
    }

    proptest! {
        /// Any arrival order (with duplicates and overlaps) reassembles exactly the stream.
        #[test]
        fn reassembles_any_order(
            len in 1usize..3000,
            cuts in proptest::collection::vec((0usize..3000, 1usize..400), 1..60),
            order_seed in any::<u64>(),
            isn in any::<u32>(),
        ) {
            let stream: Vec<u8> = (0..len).map(|i| (i * 131 + 7) as u8).collect();
            // Segments: random pieces plus a full cover so that the stream always completes.
            let mut segs: Vec<(usize, usize)> = cuts.iter().map(|&(s, l)| (s % len, (s % len + l).min(len))).collect();
            let mut s = 0;
            while s < len { let e = (s + 97).min(len); segs.push((s, e)); s = e; }
            let mut x = order_seed | 1;
            for i in (1..segs.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                segs.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut q = Reassembly::default();
            let mut buf = RecvBuffer::new(4096);
            let base = SeqNum(isn);
            let mut nxt = base;
            for (s, e) in segs {
                // Trim to the window like the connection does.
                let seq = base + s as u32;
                let skip = nxt.since(seq) as usize;
                if s + skip >= e { continue; }
                let _ = q.receive(&mut buf, &mut nxt, seq + skip as u32, &stream[s + skip..e]);
            }
            prop_assert_eq!(nxt.since(base) as usize, len);
            let mut out = vec![0u8; 4096];
            let n = buf.read(&mut out);
            prop_assert_eq!(&out[..n], &stream[..]);
            prop_assert!(q.is_empty());
        }
    }
}
