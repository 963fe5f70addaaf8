//! The SACK scoreboard of the sender (RFC 6675 §3, §4): which bytes above SND.UNA the receiver
//! reported holding, and derived quantities (holes, `IsLost`). Which segments are lost, and
//! `pipe`, come from the per-segment records in `rack.rs` (RACK, RFC 8985), which consult it.

use super::options::SackBlock;
use super::reassembly::RangeSet;
use super::seq::SeqNum;

/// RFC 6675 §2: DupThresh.
pub const DUP_THRESH: u32 = 3;

/// SACKed ranges above SND.UNA.
#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    sacked: RangeSet,
}

impl Scoreboard {
    /// RFC 6675 §5 (update): records the valid blocks of an arriving ACK; returns the number of
    /// newly SACKed bytes. Blocks outside `(snd_una, snd_max]` (D-SACK, stale or bogus) are
    /// ignored.
    pub fn update(&mut self, blocks: &[SackBlock], snd_una: SeqNum, snd_max: SeqNum) -> u32 {
        let before = self.sacked.bytes();
        for b in blocks {
            if b.left >= b.right || b.left < snd_una || b.right > snd_max {
                continue;
            }
            let _ = self.sacked.insert(b.left, b.right);
        }
        self.sacked.bytes().saturating_sub(before)
    }

    /// Forgets everything below the cumulative ACK.
    pub fn on_cumulative_ack(&mut self, snd_una: SeqNum) {
        self.sacked.remove_below(snd_una);
    }

    /// Drops all SACK information (RFC 6675 §5.1: after an RTO the receiver may have reneged).
    pub fn clear(&mut self) {
        self.sacked.clear();
    }

    /// Whether nothing is SACKed.
    pub fn is_empty(&self) -> bool {
        self.sacked.is_empty()
    }

    /// Total SACKed bytes.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked.bytes()
    }

    /// Number of SACKed ranges.
    pub fn ranges(&self) -> usize {
        self.sacked.len()
    }

    /// The highest SACKed sequence number (exclusive end).
    pub fn high(&self) -> Option<SeqNum> {
        self.sacked.last().map(|(_, e)| e)
    }

    /// If `seq` is SACKed, the end of its range.
    pub fn sacked_end(&self, seq: SeqNum) -> Option<SeqNum> {
        self.sacked.containing(seq).map(|(_, e)| e)
    }

    /// Whether `[from, to)` is SACKed entirely.
    pub fn covers(&self, from: SeqNum, to: SeqNum) -> bool {
        self.sacked.containing(from).is_some_and(|(_, e)| to <= e)
    }

    /// SACKed bytes within `[from, to)`.
    pub fn sacked_between(&self, from: SeqNum, to: SeqNum) -> u32 {
        self.sacked
            .iter()
            .map(|(s, e)| {
                let s = s.max_seq(from);
                let e = e.min_seq(to);
                e.since(s)
            })
            .sum()
    }

    /// RFC 6675 §4 `IsLost` as a boundary: a sequence number is lost when `DupThresh`
    /// discontiguous SACKed ranges lie above it, or more than `(DupThresh - 1) * SMSS` bytes
    /// above it are SACKed. Both quantities only grow as the sequence number goes down, so every
    /// unSACKed byte below the returned sequence number is lost, and none above it.
    pub fn lost_boundary(&self, mss: u32) -> Option<SeqNum> {
        let bytes_limit = (DUP_THRESH - 1).saturating_mul(mss);
        let mut above = 0u32;
        for (ranges, (s, e)) in (1u32..).zip(self.sacked_rev()) {
            above = above.saturating_add(e.since(s));
            if ranges >= DUP_THRESH || above > bytes_limit {
                return Some(s);
            }
        }
        None
    }

    /// RFC 6675 §4 `IsLost(seq)` for an unSACKed `seq`.
    pub fn is_lost(&self, seq: SeqNum, mss: u32) -> bool {
        self.lost_boundary(mss).is_some_and(|b| seq < b)
    }

    fn sacked_rev(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        self.sacked.iter_rev()
    }

    /// The first unSACKed range at or after `from` and below `limit` — whether or not SACKed
    /// data follows it — at most `max_len` long. RFC 2018 §5 / RFC 6675 §5: a retransmission
    /// never resends SACKed bytes.
    pub fn first_unsacked(
        &self,
        from: SeqNum,
        limit: SeqNum,
        max_len: u32,
    ) -> Option<(SeqNum, u32)> {
        let mut cursor = from;
        for (s, e) in self.sacked.iter() {
            if e <= cursor {
                continue;
            }
            if cursor < s {
                break;
            }
            cursor = e;
        }
        if cursor >= limit {
            return None;
        }
        let end = self
            .sacked
            .iter()
            .map(|(s, _)| s)
            .find(|&s| s > cursor)
            .map_or(limit, |s| s.min_seq(limit));
        Some((cursor, end.since(cursor).min(max_len))).filter(|&(_, n)| n > 0)
    }

    /// The first unSACKed range at or after `from` and below `limit`, at most `max_len` long.
    pub fn next_hole(&self, from: SeqNum, limit: SeqNum, max_len: u32) -> Option<(SeqNum, u32)> {
        let mut cursor = from;
        for (s, e) in self.sacked.iter() {
            if e <= cursor {
                continue;
            }
            if cursor < s {
                let end = s.min_seq(limit);
                if cursor < end {
                    return Some((cursor, end.since(cursor).min(max_len)));
                }
                return None;
            }
            cursor = e;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blk(l: u32, r: u32) -> SackBlock {
        SackBlock {
            left: SeqNum(l),
            right: SeqNum(r),
        }
    }

    #[test]
    fn scoreboard_tracks_holes_and_loss() {
        let mut sb = Scoreboard::default();
        let una = SeqNum(1000);
        let max = SeqNum(10_000);
        assert_eq!(sb.update(&[blk(2000, 3000)], una, max), 1000);
        assert_eq!(
            sb.update(&[blk(2000, 3000), blk(4000, 6000)], una, max),
            2000
        );
        assert_eq!(
            sb.update(&[blk(500, 900), blk(9000, 11_000)], una, max),
            0,
            "invalid blocks ignored"
        );
        assert_eq!(sb.high(), Some(SeqNum(6000)));
        assert_eq!(sb.sacked_between(SeqNum(2500), SeqNum(5000)), 1500);
        assert_eq!(
            sb.next_hole(una, SeqNum(6000), 500),
            Some((SeqNum(1000), 500))
        );
        assert_eq!(
            sb.next_hole(SeqNum(2000), SeqNum(6000), 5000),
            Some((SeqNum(3000), 1000))
        );
        assert_eq!(sb.next_hole(SeqNum(5000), SeqNum(6000), 5000), None);
        // 2000 bytes sacked above 4000, 3000 above 2000: with mss 1000 more than 2 * SMSS
        // lie above 2000 (not above 4000); with mss 1500 or 2000 nothing is lost (2 ranges).
        assert_eq!(sb.lost_boundary(1000), Some(SeqNum(2000)));
        assert_eq!(sb.lost_boundary(1400), Some(SeqNum(2000)));
        assert_eq!(sb.lost_boundary(1500), None, "exactly 2 * SMSS is not more");
        assert_eq!(sb.lost_boundary(2000), None);
        assert!(sb.is_lost(SeqNum(1000), 1000));
        assert!(!sb.is_lost(SeqNum(3000), 1000));
        assert_eq!(
            sb.first_unsacked(SeqNum(2000), SeqNum(10_000), 5000),
            Some((SeqNum(3000), 1000))
        );
        assert_eq!(
            sb.first_unsacked(SeqNum(4500), SeqNum(10_000), 5000),
            Some((SeqNum(6000), 4000))
        );
        assert_eq!(
            sb.first_unsacked(SeqNum(1000), SeqNum(10_000), 300),
            Some((SeqNum(1000), 300))
        );
        assert_eq!(sb.first_unsacked(SeqNum(4500), SeqNum(6000), 5000), None);
        sb.on_cumulative_ack(SeqNum(4500));
        assert_eq!(sb.lost_boundary(1000), None);
        assert_eq!(sb.sacked_bytes(), 1500);
        assert_eq!(sb.sacked_end(SeqNum(5000)), Some(SeqNum(6000)));
    }
}

#[cfg(test)]
mod islost_tests {
    use super::*;

    #[test]
    fn three_discontiguous_ranges_make_a_loss() {
        let mut sb = Scoreboard::default();
        let (una, max) = (SeqNum(1), SeqNum(901));
        let blk = |l, r| SackBlock {
            left: SeqNum(l),
            right: SeqNum(r),
        };
        sb.update(&[blk(101, 201), blk(301, 401)], una, max);
        assert!(!sb.is_lost(una, 1460), "two ranges, 200 bytes: not lost");
        sb.update(&[blk(501, 601)], una, max);
        assert_eq!(sb.lost_boundary(1460), Some(SeqNum(101)));
        assert!(sb.is_lost(una, 1460));
        assert!(!sb.is_lost(SeqNum(201), 1460));
    }
}
