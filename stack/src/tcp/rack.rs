//! RACK-TLP loss detection (RFC 8985) and the per-segment transmit records it needs.
//!
//! - [`SentQueue`]: one record per transmitted segment above SND.UNA — where it starts and ends,
//!   when it was last (re)transmitted, and whether it is SACKed, marked lost, or has a
//!   retransmission in flight. It gives RFC 6675's `pipe` in O(1) (running totals), the next
//!   segment to retransmit (NextSeg rule 1), and Karn-clean RTT samples (RFC 6298 §3: a segment
//!   that was retransmitted never yields a sample).
//! - [`Rack`]: RFC 8985 §6 — a segment is lost when a segment sent *after* it has been delivered
//!   and more than `RACK.rtt + RACK.reo_wnd` has passed since it was sent. Time-based, so it
//!   finds losses with any number of duplicate ACKs (small windows), lost retransmissions, and
//!   losses at the tail of a flight once anything later is delivered.
//! - [`Tlp`]: RFC 8985 §7 — when a flight goes quiet for a probe timeout (PTO, about two RTTs),
//!   send one segment (new data, or the last segment again) so that the ACK it elicits lets RACK
//!   find the losses, instead of waiting for the retransmission timeout.
//!
//! Time is an input (`now`), as everywhere in the stack. The sender logic that drives these
//! types lives in `connection.rs` (ACK processing), `output.rs` (what to send) and `timers.rs`.

use std::collections::VecDeque;

use super::sack::{Scoreboard, DUP_THRESH};
use super::seq::SeqNum;
use crate::time::{Duration, Instant};

/// RFC 8985 §7.2: the worst-case delayed-ACK time added to the PTO when only one segment is
/// in flight (the receiver may hold its ACK that long). 200 ms, as the RFC and Linux.
pub const WC_DEL_ACK: Duration = Duration::from_millis(200);

/// Lower bound of the probe timeout. RFC 8985 gives none; without one, a sub-millisecond RTT
/// (a veth pair) would fire probes faster than a receiver's scheduling jitter and every flight
/// would carry a spurious probe. Linux uses two jiffies; the TLP draft used 10 ms.
pub const MIN_PTO: Duration = Duration::from_millis(10);

/// RFC 8985 §6.2 step 4: DSACK-free recoveries before the reordering window multiplier is
/// reset.
const REO_WND_PERSIST: u32 = 16;

/// One transmitted segment (RFC 8985 §5.2 "per-segment variables").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentSegment {
    /// First sequence number.
    pub start: SeqNum,
    /// One past the last sequence number (a FIN counts as one).
    pub end: SeqNum,
    /// `Segment.xmit_ts`: when it was last (re)transmitted.
    pub xmit_ts: Instant,
    /// When it was sent before a loss probe resent it (see [`SentQueue::on_transmit`]).
    pub orig_ts: Option<Instant>,
    /// `Segment.retransmitted`: sent more than once (its RTT is ambiguous).
    pub retransmitted: bool,
    /// `Segment.lost`: deemed lost (by RACK, the RTO, or DupThresh) and not delivered since.
    pub lost: bool,
    /// A retransmission of it, sent after it was deemed lost, is in flight.
    pub rexmit_in_flight: bool,
    /// Covered by SACK blocks.
    pub sacked: bool,
}

impl SentSegment {
    /// Bytes of sequence space.
    pub fn len(&self) -> u32 {
        self.end.since(self.start)
    }

    /// Whether it covers no sequence space (never stored).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it waits for a retransmission (NextSeg rule 1).
    pub fn needs_rexmit(&self) -> bool {
        self.lost && !self.rexmit_in_flight && !self.sacked
    }

    /// Its share of `pipe` (RFC 6675 §4 SetPipe): once unless lost, once more if a
    /// retransmission is in flight; nothing once SACKed.
    fn in_flight(&self) -> u32 {
        if self.sacked {
            0
        } else {
            self.len() * (u32::from(!self.lost) + u32::from(self.rexmit_in_flight))
        }
    }
}

/// RFC 8985 `RACK_sent_after(t1, seq1, t2, seq2)`: whether (t1, seq1) was sent after (t2, seq2);
/// equal times are ordered by sequence number.
pub fn sent_after(t1: Instant, seq1: SeqNum, t2: Instant, seq2: SeqNum) -> bool {
    t1 > t2 || (t1 == t2 && seq1 > seq2)
}

/// The records of every segment sent and not yet cumulatively acknowledged, in sequence order,
/// with running totals. Records never overlap; a retransmission smaller than the record it
/// resends splits it, so the records only get finer.
#[derive(Clone, Debug, Default)]
pub struct SentQueue {
    segs: VecDeque<SentSegment>,
    /// Σ len of SACKed records.
    sacked: u32,
    /// Σ in_flight of all records (`pipe`).
    pipe: u32,
    /// Records waiting for a retransmission.
    pending: u32,
    /// Records marked lost (with or without a retransmission in flight) and not SACKed.
    lost_segs: u32,
    /// SACKed records.
    sacked_segs: u32,
}

impl SentQueue {
    /// Forgets everything (connection closed).
    pub fn clear(&mut self) {
        *self = SentQueue {
            segs: core::mem::take(&mut self.segs),
            ..SentQueue::default()
        };
        self.segs.clear();
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.segs.len()
    }

    /// Whether nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// RFC 6675 `pipe`: bytes believed to be in the network.
    pub fn pipe(&self) -> u32 {
        self.pipe
    }

    /// SACKed bytes.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// Records waiting for a retransmission.
    pub fn pending_rexmits(&self) -> u32 {
        self.pending
    }

    /// SACKed records (RFC 8985 `RACK.segs_sacked`).
    pub fn sacked_segs(&self) -> u32 {
        self.sacked_segs
    }

    /// Records deemed lost and not SACKed (`tcpi_lost`).
    pub fn lost_segs(&self) -> u32 {
        self.lost_segs
    }

    /// The record with the highest sequence numbers.
    pub fn last(&self) -> Option<&SentSegment> {
        self.segs.back()
    }

    /// The records, in sequence order.
    pub fn iter(&self) -> std::collections::vec_deque::Iter<'_, SentSegment> {
        self.segs.iter()
    }

    /// The first record waiting for a retransmission (RFC 6675 NextSeg rule 1: the lowest lost
    /// sequence number).
    pub fn first_pending(&self) -> Option<SentSegment> {
        if self.pending == 0 {
            return None;
        }
        self.segs.iter().find(|s| s.needs_rexmit()).copied()
    }

    /// Changes record `i` through `f`, keeping the totals right.
    fn update(&mut self, i: usize, f: impl FnOnce(&mut SentSegment)) {
        let s = &mut self.segs[i];
        let before = *s;
        f(s);
        let after = *s;
        self.account(&before, false);
        self.account(&after, true);
    }

    fn account(&mut self, s: &SentSegment, add: bool) {
        let sacked = if s.sacked { s.len() } else { 0 };
        let sacked_segs = u32::from(s.sacked);
        let pending = u32::from(s.needs_rexmit());
        let lost = u32::from(s.lost && !s.sacked);
        let flight = s.in_flight();
        if add {
            self.sacked += sacked;
            self.sacked_segs += sacked_segs;
            self.pending += pending;
            self.lost_segs += lost;
            self.pipe += flight;
        } else {
            self.sacked -= sacked;
            self.sacked_segs -= sacked_segs;
            self.pending -= pending;
            self.lost_segs -= lost;
            self.pipe -= flight;
        }
    }

    /// Index of the first record ending after `seq`.
    fn index_after(&self, seq: SeqNum) -> usize {
        self.segs.partition_point(|s| s.end <= seq)
    }

    /// Splits the record containing `seq` strictly inside it into two with the same state.
    fn split_at(&mut self, seq: SeqNum) {
        let i = self.index_after(seq);
        let Some(&s) = self.segs.get(i) else {
            return;
        };
        if s.start < seq && seq < s.end {
            // Totals are per byte or per record: account the halves afresh.
            self.account(&s, false);
            let left = SentSegment { end: seq, ..s };
            let right = SentSegment { start: seq, ..s };
            self.segs[i] = left;
            self.segs.insert(i + 1, right);
            self.account(&left, true);
            self.account(&right, true);
        }
    }

    /// Records that `[start, end)` was transmitted at `now`: new records for what was never
    /// sent, and for what was (a retransmission) a new transmit time, `retransmitted`, and — if
    /// it was deemed lost — a retransmission in flight.
    ///
    /// A probe (`probe`, RFC 8985 §7.3) of a segment not deemed lost is an extra copy of a
    /// segment that may well have arrived: it adds nothing to `pipe` (the probe is the one
    /// segment §7.3 allows beyond cwnd), and the original's transmit time is kept (`orig_ts`).
    /// When the probe's ACK D-SACKs it, the original is what was delivered, and RACK learns
    /// from its time; from the probe's it would learn nothing (the delivery would look too
    /// recent for RACK's ambiguity check, §6.2 step 2), and a lost retransmission sent before
    /// the original would wait for the RTO.
    pub fn on_transmit(&mut self, start: SeqNum, end: SeqNum, now: Instant, probe: bool) {
        if end <= start {
            return;
        }
        let last_end = self.segs.back().map_or(start, |s| s.end);
        if start < last_end {
            let stop = end.min_seq(last_end);
            self.split_at(start);
            self.split_at(stop);
            let mut i = self.index_after(start);
            while i < self.segs.len() && self.segs[i].start < stop {
                self.update(i, |s| {
                    s.orig_ts = if probe && !s.lost {
                        s.orig_ts.or(Some(s.xmit_ts))
                    } else {
                        None
                    };
                    s.xmit_ts = now;
                    s.retransmitted = true;
                    if s.lost && !s.sacked {
                        s.rexmit_in_flight = true;
                    }
                });
                i += 1;
            }
        }
        let from = start.max_seq(last_end);
        if from < end {
            let s = SentSegment {
                start: from,
                end,
                xmit_ts: now,
                orig_ts: None,
                retransmitted: false,
                lost: false,
                rexmit_in_flight: false,
                sacked: false,
            };
            self.account(&s, true);
            self.segs.push_back(s);
        }
    }

    /// Removes what `ack` cumulatively acknowledges (trimming a record it splits); `delivered`
    /// sees each removed record that was not SACKed before, in sequence order.
    pub fn on_cumulative_ack(&mut self, ack: SeqNum, mut delivered: impl FnMut(&SentSegment)) {
        while let Some(&s) = self.segs.front() {
            if s.end <= ack {
                self.account(&s, false);
                self.segs.pop_front();
                if !s.sacked {
                    delivered(&s);
                }
            } else {
                if s.start < ack {
                    self.update(0, |s| s.start = ack);
                }
                break;
            }
        }
    }

    /// Marks the records that the scoreboard now covers entirely as SACKed, looking only at
    /// the ranges `[left, right)` of the blocks just received; `delivered` sees each newly
    /// SACKed record, in sequence order.
    pub fn on_sack(
        &mut self,
        scoreboard: &Scoreboard,
        blocks: impl Iterator<Item = (SeqNum, SeqNum)>,
        mut delivered: impl FnMut(&SentSegment),
    ) {
        // Blocks arrive in any order; sort the (at most four) into sequence order.
        let mut ranges = [(SeqNum(0), SeqNum(0)); 4];
        let mut n = 0;
        for b in blocks.take(4) {
            ranges[n] = b;
            n += 1;
        }
        ranges[..n].sort_by(|a, b| {
            if a.0 < b.0 {
                core::cmp::Ordering::Less
            } else if b.0 < a.0 {
                core::cmp::Ordering::Greater
            } else {
                core::cmp::Ordering::Equal
            }
        });
        for &(left, right) in &ranges[..n] {
            let mut i = self.index_after(left);
            while i < self.segs.len() && self.segs[i].start < right {
                let s = self.segs[i];
                if !s.sacked && scoreboard.covers(s.start, s.end) {
                    self.update(i, |s| {
                        s.sacked = true;
                        s.rexmit_in_flight = false;
                    });
                    delivered(&self.segs[i]);
                }
                i += 1;
            }
        }
    }

    /// Forgets every SACK mark (the receiver reneged, RFC 2018 §8).
    pub fn clear_sacked(&mut self) {
        for i in 0..self.segs.len() {
            if self.segs[i].sacked {
                self.update(i, |s| s.sacked = false);
            }
        }
    }

    /// Marks record `i` lost; a retransmission that was in flight is lost with it. Returns
    /// whether that was a lost retransmission.
    fn mark_lost(&mut self, i: usize) -> bool {
        let was_rexmit = self.segs[i].rexmit_in_flight;
        self.update(i, |s| {
            s.lost = true;
            s.rexmit_in_flight = false;
        });
        was_rexmit
    }

    /// Marks the first unSACKed record lost (RFC 6675 §5 (4.2): after DupThresh duplicate
    /// ACKs the segment at SND.UNA is presumed dropped). Returns whether it was not already.
    pub fn mark_head_lost(&mut self) -> bool {
        match self.segs.iter().position(|s| !s.sacked) {
            Some(i) if !self.segs[i].lost => {
                self.mark_lost(i);
                true
            }
            _ => false,
        }
    }

    /// RFC 8985 §6.3 `RACK_mark_losses_on_RTO`: the first unacknowledged segment, and every
    /// one sent at least `rtt + reo_wnd` ago, is lost (their retransmissions too).
    pub fn mark_lost_on_rto(&mut self, now: Instant, rtt_reo: Duration) {
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.sacked {
                continue;
            }
            if i == 0 || s.xmit_ts + rtt_reo <= now {
                self.mark_lost(i);
            }
        }
    }

    /// Forgets every loss mark (a spurious timeout: nothing was lost).
    pub fn unmark_lost(&mut self) {
        for i in 0..self.segs.len() {
            if self.segs[i].lost || self.segs[i].rexmit_in_flight {
                self.update(i, |s| {
                    s.lost = false;
                    s.rexmit_in_flight = false;
                });
            }
        }
    }

    /// Marks every unSACKed record lost (a path MTU drop: everything is resent, smaller).
    pub fn mark_all_lost(&mut self) {
        for i in 0..self.segs.len() {
            if !self.segs[i].sacked {
                self.mark_lost(i);
            }
        }
    }
}

/// What one ACK delivered, gathered while the [`SentQueue`] removes and SACK-marks records
/// (RFC 8985 §6.2 steps 1-3, and the RTT sample of RFC 6298).
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    now: Instant,
    /// The ACK's D-SACK block, if any.
    dsack: Option<(SeqNum, SeqNum)>,
    /// The ACK's TSecr and our timestamp offset, when timestamps are in use.
    ecr: Option<(u32, u32)>,
    min_rtt: Option<Duration>,
    /// Earliest transmit time of a newly cumulatively acknowledged, never retransmitted
    /// segment (RFC 6298 sample).
    first_acked: Option<Instant>,
    /// Some retransmitted segment was newly cumulatively acknowledged: no sample from them
    /// (Karn).
    retrans_acked: bool,
    /// Earliest transmit time of a newly SACKed, never retransmitted segment.
    first_sacked: Option<Instant>,
    /// The most recently sent delivered segment that passes RFC 8985's ambiguity checks.
    latest: Option<(Instant, SeqNum)>,
    /// RACK.fack as the delivered segments raise it (step 3).
    fack: SeqNum,
    /// A never-retransmitted segment was delivered below RACK.fack (step 3).
    reordering: bool,
}

impl Delivery {
    /// Starts gathering for an ACK arriving at `now` with TSecr `ecr` (and our `ts_offset`) and
    /// D-SACK block `dsack`.
    pub fn new(
        now: Instant,
        ecr: Option<u32>,
        ts_offset: u32,
        dsack: Option<(SeqNum, SeqNum)>,
        rack: &Rack,
    ) -> Delivery {
        Delivery {
            now,
            dsack,
            ecr: ecr.filter(|&e| e != 0).map(|e| (e, ts_offset)),
            min_rtt: rack.min_rtt,
            first_acked: None,
            retrans_acked: false,
            first_sacked: None,
            latest: None,
            fack: rack.fack,
            reordering: false,
        }
    }

    /// One delivered segment (`cumulative`: by the ACK field, else by SACK), in ascending
    /// sequence order.
    pub fn record(&mut self, s: &SentSegment, cumulative: bool) {
        // A probed segment whose probe is D-SACKed: its original transmission was delivered.
        let original_delivered = self.dsack.is_some_and(|(l, r)| l <= s.start && s.end <= r);
        let xmit_ts = match s.orig_ts {
            Some(t) if original_delivered => t,
            _ => s.xmit_ts,
        };
        let s = &SentSegment { xmit_ts, ..*s };
        if s.retransmitted {
            if cumulative {
                self.retrans_acked = true;
            }
        } else if cumulative {
            self.first_acked = Some(self.first_acked.map_or(s.xmit_ts, |t| t.min(s.xmit_ts)));
        } else {
            self.first_sacked = Some(self.first_sacked.map_or(s.xmit_ts, |t| t.min(s.xmit_ts)));
        }
        // RFC 8985 §6.2 step 2: a retransmitted segment counts only if this ACK was not
        // triggered by an earlier transmission of it.
        let usable = !s.retransmitted || {
            let rtt = micros_between(s.xmit_ts, self.now);
            let echo_old = self.ecr.is_some_and(|(ecr, off)| {
                let sent = (s.xmit_ts.total_millis() as u32).wrapping_add(off);
                (ecr.wrapping_sub(sent) as i32) < 0
            });
            !echo_old && self.min_rtt.is_none_or(|m| rtt >= m.total_micros())
        };
        if usable {
            let newer = self
                .latest
                .is_none_or(|(t, e)| sent_after(s.xmit_ts, s.end, t, e));
            if newer {
                self.latest = Some((s.xmit_ts, s.end));
            }
        }
        // Step 3: a never-retransmitted segment delivered below the highest delivered one was
        // reordered.
        if s.end > self.fack {
            self.fack = s.end;
        } else if s.end < self.fack && !s.retransmitted {
            self.reordering = true;
        }
    }

    /// The RTT sample this ACK gives (RFC 6298 §3 with Karn's rule): from the oldest newly
    /// acknowledged segment unless retransmitted data was acknowledged, else from the oldest
    /// newly SACKed one.
    pub fn rtt_sample(&self) -> Option<Duration> {
        let from = if self.retrans_acked {
            None
        } else {
            self.first_acked
        }
        .or(self.first_sacked)?;
        Some(Duration::from_micros(micros_between(from, self.now)))
    }
}

fn micros_between(earlier: Instant, later: Instant) -> u64 {
    (later.total_micros() - earlier.total_micros()).max(0) as u64
}

/// RFC 8985 §5.3 per-connection RACK state.
#[derive(Clone, Debug)]
pub struct Rack {
    /// `RACK.xmit_ts` / `RACK.end_seq`: the most recently sent segment known delivered.
    xmit: Option<(Instant, SeqNum)>,
    /// `RACK.rtt`: the RTT of that segment.
    rtt: Duration,
    /// `RACK.min_RTT`.
    min_rtt: Option<Duration>,
    /// `RACK.fack`: the highest end sequence delivered.
    fack: SeqNum,
    /// `RACK.reordering_seen`.
    pub reordering_seen: bool,
    /// `RACK.dsack_round`.
    dsack_round: Option<SeqNum>,
    /// `RACK.reo_wnd_mult`.
    reo_wnd_mult: u32,
    /// `RACK.reo_wnd_persist`.
    reo_wnd_persist: u32,
}

impl Rack {
    /// Initial state for a connection whose first data byte is `isn_una`.
    pub fn new(una: SeqNum) -> Rack {
        Rack {
            xmit: None,
            rtt: Duration::ZERO,
            min_rtt: None,
            fack: una,
            reordering_seen: false,
            dsack_round: None,
            reo_wnd_mult: 1,
            reo_wnd_persist: REO_WND_PERSIST,
        }
    }

    /// `RACK.min_RTT`.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// `RACK.rtt`.
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// Step 1: an RTT sample (the same unambiguous samples as RFC 6298).
    pub fn sample_min_rtt(&mut self, rtt: Duration) {
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }

    /// Steps 2-3: folds in what an ACK delivered.
    pub fn on_delivery(&mut self, d: &Delivery) {
        if let Some((ts, end)) = d.latest {
            self.rtt = Duration::from_micros(micros_between(ts, d.now));
            let newer = self.xmit.is_none_or(|(t, e)| sent_after(ts, end, t, e));
            if newer {
                self.xmit = Some((ts, end));
            }
        }
        if d.fack > self.fack {
            self.fack = d.fack;
        }
        if d.reordering {
            self.reordering_seen = true;
        }
    }

    /// Step 4 (DSACK part): an ACK carried a DSACK (`dsack`) while SND.UNA is `una` and
    /// SND.NXT `nxt`; `recovery_exited` when loss recovery just ended.
    pub fn on_ack_dsack(&mut self, dsack: bool, una: SeqNum, nxt: SeqNum, recovery_exited: bool) {
        if self.dsack_round.is_some_and(|r| una >= r) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() && dsack {
            self.dsack_round = Some(nxt);
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1);
            self.reo_wnd_persist = REO_WND_PERSIST;
        } else if recovery_exited {
            self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
    }

    /// Step 4: `RACK.reo_wnd`. Zero while no reordering was seen and either loss recovery is
    /// under way or DupThresh segments are SACKed (then RACK acts like the DupThresh rule);
    /// otherwise `min_RTT / 4` per multiplier step, at most SRTT.
    pub fn reo_wnd(&self, in_recovery: bool, segs_sacked: u32, srtt: Option<Duration>) -> Duration {
        if !self.reordering_seen && (in_recovery || segs_sacked >= DUP_THRESH) {
            return Duration::ZERO;
        }
        let base = self.min_rtt.map_or(0, |m| m.total_micros() / 4);
        let w = base.saturating_mul(u64::from(self.reo_wnd_mult));
        let cap = srtt.map_or(u64::MAX, |s| s.total_micros());
        Duration::from_micros(w.min(cap))
    }

    /// Step 5 (`RACK_detect_loss`): marks lost every unSACKed segment sent before the most
    /// recently delivered one by more than `RACK.rtt + reo_wnd`. Returns how many were marked,
    /// how many of them were lost retransmissions, and when to look again for the ones not yet
    /// old enough (the RACK reordering timer).
    pub fn detect_loss(
        &self,
        q: &mut SentQueue,
        now: Instant,
        reo_wnd: Duration,
    ) -> (u32, u32, Option<Instant>) {
        let Some((rts, rend)) = self.xmit else {
            return (0, 0, None);
        };
        let mut marked = 0;
        let mut lost_rexmits = 0;
        let mut timeout: Option<Instant> = None;
        let wait = self.rtt + reo_wnd;
        for i in 0..q.segs.len() {
            let s = q.segs[i];
            let before = sent_after(rts, rend, s.xmit_ts, s.end);
            if !before && !s.retransmitted {
                // Records are sent in sequence order unless retransmitted: everything beyond
                // this one was sent after it, hence after RACK.xmit_ts as well.
                break;
            }
            if s.sacked || s.needs_rexmit() || !before {
                continue;
            }
            let deadline = s.xmit_ts + wait;
            if deadline <= now {
                if q.mark_lost(i) {
                    lost_rexmits += 1;
                }
                marked += 1;
            } else {
                timeout = Some(timeout.map_or(deadline, |t| t.max(deadline)));
            }
        }
        (marked, lost_rexmits, timeout)
    }
}

/// RFC 8985 §7 tail loss probe state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tlp {
    /// `TLP.end_seq`: SND.NXT when the outstanding probe was sent.
    pub end_seq: Option<SeqNum>,
    /// `TLP.is_retrans`: the outstanding probe was a retransmission.
    pub is_retrans: bool,
    /// An RTT sample was taken since the last probe (§7.3 condition 2).
    pub rtt_sampled: bool,
    /// The probe timer fired: send a probe at the next opportunity.
    pub pending: bool,
}

/// What an ACK tells about the outstanding loss probe (RFC 8985 §7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlpOutcome {
    /// No probe outstanding, or not yet answered.
    None,
    /// The probe was new data, or its retransmission was redundant: no loss.
    NoLoss,
    /// The probe repaired a loss by itself: reduce the congestion window once.
    Recovered,
}

impl Tlp {
    /// §7.4.2 `TLP_process_ack`: `ack` is the cumulative ACK, `dsack` whether it carries a
    /// DSACK (the probe was a duplicate), `dup` whether it is a pure duplicate ACK without new
    /// information (the original and the probe both arrived), `advances` whether it moved
    /// SND.UNA. A retransmitted probe whose ACK moves SND.UNA up to or past it, without a DSACK,
    /// repaired a loss by itself. (Linux's `tcp_process_tlp_ack` waits for an ACK beyond the
    /// probe to conclude the same; a receiver that sends no DSACKs makes the two equivalent.)
    pub fn on_ack(&mut self, ack: SeqNum, dsack: bool, dup: bool, advances: bool) -> TlpOutcome {
        let Some(end) = self.end_seq else {
            return TlpOutcome::None;
        };
        if ack < end {
            return TlpOutcome::None;
        }
        if !self.is_retrans || dsack || dup {
            self.end_seq = None;
            TlpOutcome::NoLoss
        } else if ack > end || advances {
            self.end_seq = None;
            TlpOutcome::Recovered
        } else {
            TlpOutcome::None
        }
    }
}

/// RFC 8985 §7.2 `TLP_calc_PTO`: two smoothed RTTs (plus the worst-case delayed ACK when only
/// one segment is in flight), at least [`MIN_PTO`]; one second before any RTT sample.
pub fn probe_timeout(srtt: Option<Duration>, one_segment_in_flight: bool) -> Duration {
    match srtt {
        Some(s) => {
            let mut pto = s + s;
            if one_segment_in_flight {
                pto += WC_DEL_ACK;
            }
            pto.max(MIN_PTO)
        }
        None => Duration::from_secs(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::options::SackBlock;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms as i64)
    }

    /// Ten 100-byte segments 1..1001 sent at 0, 1, .. 9 ms.
    fn queue() -> SentQueue {
        let mut q = SentQueue::default();
        for k in 0..10u32 {
            q.on_transmit(
                SeqNum(1 + 100 * k),
                SeqNum(101 + 100 * k),
                t(k as u64),
                false,
            );
        }
        q
    }

    fn sack(sb: &mut Scoreboard, q: &mut SentQueue, l: u32, r: u32, d: &mut Delivery) {
        let b = SackBlock {
            left: SeqNum(l),
            right: SeqNum(r),
        };
        sb.update(&[b], SeqNum(1), SeqNum(1001));
        q.on_sack(sb, [(b.left, b.right)].into_iter(), |s| d.record(s, false));
    }

    #[test]
    fn records_split_on_partial_retransmission_and_keep_totals() {
        let mut q = queue();
        assert_eq!(q.pipe(), 1000);
        q.mark_all_lost();
        assert_eq!((q.pipe(), q.pending_rexmits(), q.lost_segs()), (0, 10, 10));
        // A smaller retransmission of the first record splits it.
        q.on_transmit(SeqNum(1), SeqNum(41), t(20), false);
        assert_eq!(q.len(), 11);
        assert_eq!(q.pipe(), 40);
        let first = q.first_pending().unwrap();
        assert_eq!((first.start, first.end), (SeqNum(41), SeqNum(101)));
        let mut acked = Vec::new();
        q.on_cumulative_ack(SeqNum(61), |s| acked.push((s.start, s.end)));
        assert_eq!(acked, vec![(SeqNum(1), SeqNum(41))]);
        assert_eq!(q.iter().next().unwrap().start, SeqNum(61), "trimmed");
        assert_eq!(q.pipe(), 0);
        assert_eq!(q.pending_rexmits(), 10);
        // New data beyond the records appends; a retransmission running into new data splits.
        q.on_transmit(SeqNum(901), SeqNum(1101), t(21), false);
        assert_eq!(q.last().unwrap().start, SeqNum(1001));
        assert_eq!(q.pipe(), 200);
        assert_eq!(q.pending_rexmits(), 9);
    }

    #[test]
    fn rack_marks_segments_sent_before_a_delivered_one_after_rtt_plus_reo_wnd() {
        let mut q = queue();
        let mut sb = Scoreboard::default();
        let mut rack = Rack::new(SeqNum(1));
        rack.sample_min_rtt(Duration::from_millis(8));
        // Segment 4 (301..401, sent at 3 ms) is SACKed at 11 ms: RACK.rtt = 8 ms.
        let mut d = Delivery::new(t(11), None, 0, None, &rack);
        sack(&mut sb, &mut q, 301, 401, &mut d);
        rack.on_delivery(&d);
        assert_eq!(rack.rtt(), Duration::from_millis(8));
        assert!(!rack.reordering_seen);
        // reo_wnd = min_rtt / 4 = 2 ms: segment 1 (sent at 0) is lost at 10 ms; segments 2 and
        // 3 (1 and 2 ms) at 11 and 12 ms: one now, the other on the timer.
        let w = rack.reo_wnd(false, 1, Some(Duration::from_millis(8)));
        assert_eq!(w, Duration::from_millis(2));
        let (n, lr, timer) = rack.detect_loss(&mut q, t(11), w);
        assert_eq!((n, lr), (2, 0));
        assert_eq!(timer, Some(t(12)));
        assert_eq!(q.pending_rexmits(), 2);
        let (n, _, timer) = rack.detect_loss(&mut q, t(12), w);
        assert_eq!((n, timer), (1, None));
        // Segments sent after the delivered one are never marked.
        assert!(q.iter().skip(4).all(|s| !s.lost));
        assert_eq!(q.pipe(), 600);
    }

    #[test]
    fn rack_detects_a_lost_retransmission() {
        let mut q = queue();
        let mut sb = Scoreboard::default();
        let mut rack = Rack::new(SeqNum(1));
        rack.sample_min_rtt(Duration::from_millis(8));
        q.mark_head_lost();
        q.on_transmit(SeqNum(1), SeqNum(101), t(12), false); // retransmission, lost again
        assert_eq!(q.pipe(), 1000);
        q.on_transmit(SeqNum(1001), SeqNum(1101), t(13), false);
        // The new segment is SACKed at 21 ms: the retransmission (12 ms) was sent before it.
        let mut d = Delivery::new(t(21), None, 0, None, &rack);
        let b = SackBlock {
            left: SeqNum(101),
            right: SeqNum(1101),
        };
        sb.update(&[b], SeqNum(1), SeqNum(1101));
        q.on_sack(&sb, [(b.left, b.right)].into_iter(), |s| d.record(s, false));
        rack.on_delivery(&d);
        let (n, lost_rexmits, _) = rack.detect_loss(&mut q, t(21), Duration::ZERO);
        assert_eq!((n, lost_rexmits), (1, 1));
        assert_eq!(q.first_pending().unwrap().start, SeqNum(1));
        assert_eq!(q.pipe(), 0);
    }

    #[test]
    fn a_probe_keeps_the_originals_transmit_time() {
        let mut q = queue();
        let mut sb = Scoreboard::default();
        let mut rack = Rack::new(SeqNum(1));
        rack.sample_min_rtt(Duration::from_millis(8));
        // Segment 1 is resent at 20 ms together with new segment 11 — and lost again. The
        // probe resends segment 11 at 30 ms; at 31 ms the SACK of 2-11 arrives with a D-SACK
        // for the probe: segment 11's original had arrived.
        q.mark_head_lost();
        q.on_transmit(SeqNum(1), SeqNum(101), t(20), false);
        q.on_transmit(SeqNum(1001), SeqNum(1101), t(20), false);
        q.on_transmit(SeqNum(1001), SeqNum(1101), t(30), true);
        let last = *q.last().unwrap();
        assert_eq!((last.xmit_ts, last.orig_ts), (t(30), Some(t(20))));
        assert!(last.retransmitted && !last.rexmit_in_flight);
        assert_eq!(q.pipe(), 1100, "a probe is not counted twice");
        let dsack = Some((SeqNum(1001), SeqNum(1101)));
        let mut d = Delivery::new(t(31), None, 0, dsack, &rack);
        let b = SackBlock {
            left: SeqNum(101),
            right: SeqNum(1101),
        };
        sb.update(&[b], SeqNum(1), SeqNum(1101));
        q.on_sack(&sb, [(b.left, b.right)].into_iter(), |s| d.record(s, false));
        rack.on_delivery(&d);
        assert_eq!(rack.rtt(), Duration::from_millis(11));
        // Segment 11 went out after the retransmission of segment 1, in the same instant: that
        // retransmission is lost, now, not at the RTO.
        let (n, lost_rexmits, _) = rack.detect_loss(&mut q, t(31), Duration::ZERO);
        assert_eq!((n, lost_rexmits), (1, 1));
        assert_eq!(q.first_pending().unwrap().start, SeqNum(1));
    }

    #[test]
    fn reordering_is_seen_and_widens_nothing_until_seen() {
        let mut q = queue();
        let mut sb = Scoreboard::default();
        let mut rack = Rack::new(SeqNum(1));
        rack.sample_min_rtt(Duration::from_millis(8));
        assert_eq!(rack.reo_wnd(true, 0, None), Duration::ZERO, "recovery");
        assert_eq!(
            rack.reo_wnd(false, 3, None),
            Duration::ZERO,
            "DupThresh SACKed"
        );
        let mut d = Delivery::new(t(12), None, 0, None, &rack);
        sack(&mut sb, &mut q, 401, 501, &mut d);
        rack.on_delivery(&d);
        // Segment 2 arrives late, never retransmitted: reordering.
        let mut d = Delivery::new(t(13), None, 0, None, &rack);
        sack(&mut sb, &mut q, 101, 201, &mut d);
        rack.on_delivery(&d);
        assert!(rack.reordering_seen);
        assert_eq!(rack.reo_wnd(true, 3, None), Duration::from_millis(2));
        rack.on_ack_dsack(true, SeqNum(1), SeqNum(1001), false);
        assert_eq!(rack.reo_wnd(true, 3, None), Duration::from_millis(4));
        assert_eq!(
            rack.reo_wnd(true, 3, Some(Duration::from_millis(3))),
            Duration::from_millis(3),
            "at most SRTT"
        );
    }

    #[test]
    fn rtt_samples_follow_karn() {
        let mut q = queue();
        let rack = Rack::new(SeqNum(1));
        q.mark_head_lost();
        q.on_transmit(SeqNum(1), SeqNum(101), t(30), false);
        let mut d = Delivery::new(t(40), None, 0, None, &rack);
        q.on_cumulative_ack(SeqNum(201), |s| d.record(s, true));
        assert_eq!(d.rtt_sample(), None, "retransmitted data acknowledged");
        let mut d = Delivery::new(t(41), None, 0, None, &rack);
        q.on_cumulative_ack(SeqNum(401), |s| d.record(s, true));
        assert_eq!(
            d.rtt_sample(),
            Some(Duration::from_millis(39)),
            "oldest: sent at 2 ms"
        );
    }

    #[test]
    fn probe_outcomes() {
        let mut p = Tlp {
            end_seq: Some(SeqNum(1001)),
            is_retrans: true,
            ..Tlp::default()
        };
        assert_eq!(p.on_ack(SeqNum(901), false, false, true), TlpOutcome::None);
        assert_eq!(
            p.on_ack(SeqNum(1001), false, false, false),
            TlpOutcome::None
        );
        assert_eq!(
            p.on_ack(SeqNum(1001), false, true, false),
            TlpOutcome::NoLoss
        );
        p.end_seq = Some(SeqNum(1001));
        assert_eq!(
            p.on_ack(SeqNum(1001), true, false, true),
            TlpOutcome::NoLoss,
            "DSACK: the probe was redundant"
        );
        p.end_seq = Some(SeqNum(1001));
        assert_eq!(
            p.on_ack(SeqNum(1001), false, false, true),
            TlpOutcome::Recovered
        );
        p.end_seq = Some(SeqNum(1001));
        assert_eq!(
            p.on_ack(SeqNum(1201), false, false, false),
            TlpOutcome::Recovered
        );
        assert_eq!(p.end_seq, None);
        p.end_seq = Some(SeqNum(1001));
        p.is_retrans = false;
        assert_eq!(
            p.on_ack(SeqNum(1001), false, false, true),
            TlpOutcome::NoLoss
        );
        assert_eq!(
            probe_timeout(Some(Duration::from_millis(30)), false),
            Duration::from_millis(60)
        );
        assert_eq!(
            probe_timeout(Some(Duration::from_millis(30)), true),
            Duration::from_millis(260)
        );
        assert_eq!(
            probe_timeout(Some(Duration::from_micros(100)), false),
            MIN_PTO
        );
        assert_eq!(probe_timeout(None, false), Duration::from_secs(1));
    }
}
