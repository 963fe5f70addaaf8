//! IPv4 fragment reassembly and fragmentation (RFC 791 §3.2, RFC 815, RFC 1122 §3.3.2).
//!
//! # Reassembly
//!
//! The IPv4 layer validates the header, sees a fragment (MF set or a non-zero offset) and calls
//! [`Reassembler::insert`] with the fragment's payload. The reassembler answers
//! [`ReassemblyOutcome::Pending`] (kept, more to come), [`ReassemblyOutcome::Complete`] (here is
//! the whole IP payload) or [`ReassemblyOutcome::Dropped`] (one [`DropReason`] to count).
//!
//! Call order (sans-IO, time injected):
//! 1. `insert(now, ..)` for every fragment received;
//! 2. when `poll_at() <= now`: `expire(now, ..)` (count each expired datagram as
//!    `Ipv4FragTimeout`, and send ICMP time exceeded code 1 if its first fragment arrived);
//! 3. after each `insert`, `take_evicted()` tells how many datagrams were pushed out to respect
//!    the memory bounds (count each as `Ipv4FragMemoryFull`).
//!
//! ## Storage
//!
//! Each datagram owns one buffer holding its payload at its final place (`buf[offset..]`),
//! grown as fragments arrive (doubling while the total length is unknown, then exactly to it)
//! and never beyond [`MAX_PAYLOAD`], plus a sorted list of the byte ranges received so far,
//! coalesced so that touching ranges merge (in-order or reverse-order arrival keeps exactly one
//! range). This is the complement of RFC 815's hole descriptor list; a range list makes the
//! overlap comparison below a simple walk. The datagram is complete when the final fragment
//! (MF = 0) has fixed the total data length (RFC 791's TDL) and the list is the single range
//! `[0, TDL)`. Apart from the amortized growth of those two vectors nothing is allocated per
//! fragment.
//!
//! ## Validation
//!
//! A fragment that is malformed on its own (offset not a multiple of 8, end beyond
//! [`MAX_PAYLOAD`], a non-final fragment that is empty or not a multiple of 8 long) is dropped as
//! `Ipv4FragMalformed` and does not touch the datagram it claims to belong to. A fragment that
//! contradicts its datagram (data beyond the known end, a second final fragment with another
//! end, a final fragment ending before data already received) also drops the whole datagram
//! (`Ipv4FragMalformed`), as Linux does: its length is now ambiguous.
//!
//! ## Overlaps
//!
//! RFC 5722's "drop on any overlap" is for IPv6. For IPv4 an exact retransmission is normal, so
//! overlapping bytes that are identical are accepted silently; overlapping bytes that differ drop
//! the whole datagram as `Ipv4FragConflict`. There is thus never a choice between "first" and
//! "last" data, which is what overlap attacks (Teardrop, IDS evasion) rely on.
//!
//! ## Memory bounds
//!
//! [`ReassemblyConfig::max_memory`] bounds the heap bytes held by all datagrams (buffer and
//! range-list capacity, see [`Reassembler::memory_used`]), and
//! [`ReassemblyConfig::max_datagrams`] the number of datagrams. Both are checked *before* any
//! allocation. When a fragment needs more than is left, the oldest other datagrams (by arrival of
//! their first fragment) are evicted until it fits: an attacker flooding fragments that never
//! complete can slow legitimate reassembly but never block it, and never grow memory. A fragment
//! is refused with `Ipv4FragMemoryFull` only when its datagram could not fit even alone (its
//! datagram is dropped too: it can never complete), or when `max_datagrams` is 0.
//!
//! ## Timeout
//!
//! RFC 791 §3.2 / RFC 1122 §3.3.2: each datagram gets `config.timeout` from the arrival of its
//! first fragment; later fragments do not extend it. [`Reassembler::insert`] never expires
//! anything itself: a fragment arriving after the deadline but before `expire` runs is still
//! accepted.
//!
//! # Fragmentation
//!
//! [`fragments`] plans the fragments of an outgoing datagram (RFC 791 §3.2, "An Example
//! Fragmentation Procedure"); the IPv4 layer writes the headers.

use core::net::Ipv4Addr;

use crate::config::ReassemblyConfig;
use crate::counters::DropReason;
use crate::time::Instant;

/// Largest payload an IPv4 datagram can carry: total length 65535 minus the minimal 20-byte
/// header (RFC 791 §3.1). A fragment ending beyond it is malformed. (With options the true limit
/// is smaller; the IPv4 layer may check the reassembled length against its header if it cares.)
pub const MAX_PAYLOAD: usize = 65535 - 20;

/// Range-list capacity allocated with a datagram's first range.
const MIN_RANGES: usize = 4;

/// Identifies a datagram being reassembled (RFC 791 §3.2: source, destination, protocol,
/// identification — the "BUFID").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FragmentKey {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol field (e.g. 6 for TCP, 17 for UDP).
    pub protocol: u8,
    /// Identification field.
    pub ident: u16,
}

/// What [`Reassembler::insert`] did with a fragment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use]
pub enum ReassemblyOutcome<'a> {
    /// The datagram is whole: the reassembled IP payload (without header). The slice borrows the
    /// reassembler's storage, which is freed at the start of the next `insert` or `expire`.
    Complete(&'a [u8]),
    /// The fragment was kept (or was an exact duplicate); more are needed.
    Pending,
    /// The fragment was refused; count it under this reason.
    Dropped(DropReason),
}

/// A received byte range `[start, end)` of a datagram's payload; `end <= MAX_PAYLOAD` fits u16.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Span {
    start: u16,
    end: u16,
}

impl Span {
    fn new(start: usize, end: usize) -> Self {
        debug_assert!(start < end && end <= MAX_PAYLOAD);
        Span {
            start: start as u16,
            end: end as u16,
        }
    }

    fn start(self) -> usize {
        usize::from(self.start)
    }

    fn end(self) -> usize {
        usize::from(self.end)
    }
}

/// Capacities a datagram's vectors should grow to before taking a fragment.
#[derive(Clone, Copy, Debug)]
struct Plan {
    buf_cap: usize,
    ranges_cap: usize,
}

impl Plan {
    /// Heap bytes the datagram will hold once grown to this plan.
    fn bytes(self) -> usize {
        self.buf_cap + self.ranges_cap * size_of::<Span>()
    }
}

/// One datagram under reassembly.
#[derive(Debug)]
struct Datagram {
    key: FragmentKey,
    /// Arrival of the first fragment plus the reassembly timeout.
    deadline: Instant,
    /// The payload at its final offsets; `len()` is the largest fragment end received so far.
    /// Bytes outside `ranges` are zero and meaningless.
    buf: Vec<u8>,
    /// Received ranges: sorted, disjoint and never touching (touching ranges are merged).
    ranges: Vec<Span>,
    /// Total data length (RFC 791 "TDL"), known once the final fragment (MF = 0) arrived.
    tdl: Option<usize>,
}

impl Datagram {
    fn new(key: FragmentKey, deadline: Instant) -> Self {
        Datagram {
            key,
            deadline,
            buf: Vec::new(),
            ranges: Vec::new(),
            tdl: None,
        }
    }

    /// Heap bytes held (capacities, not lengths: that is what the allocator gave us).
    fn footprint(&self) -> usize {
        self.buf.capacity() + self.ranges.capacity() * size_of::<Span>()
    }

    /// The bytes received contiguously from offset 0, if the first fragment arrived.
    fn first_bytes(&self) -> Option<&[u8]> {
        self.ranges
            .first()
            .filter(|r| r.start == 0)
            .map(|r| &self.buf[..r.end()])
    }

    fn is_complete(&self) -> bool {
        match self.tdl {
            Some(0) => true,
            Some(tdl) => self.ranges.len() == 1 && self.ranges[0] == Span::new(0, tdl),
            None => false,
        }
    }

    /// Whether a fragment `[offset, offset + len)` with the MF flag `more` contradicts what is
    /// known of the datagram's length.
    fn contradicts(&self, offset: usize, len: usize, more: bool) -> bool {
        let end = offset + len;
        match self.tdl {
            Some(tdl) => end > tdl || (!more && end != tdl),
            None => !more && end < self.buf.len(),
        }
    }

    /// Whether `data` at `offset` differs from bytes already received.
    fn conflicts(&self, offset: usize, data: &[u8]) -> bool {
        let end = offset + data.len();
        let first = self.ranges.partition_point(|r| r.end() <= offset);
        self.ranges[first..]
            .iter()
            .take_while(|r| r.start() < end)
            .any(|r| {
                let lo = r.start().max(offset);
                let hi = r.end().min(end);
                self.buf[lo..hi] != data[lo - offset..hi - offset]
            })
    }

    /// Indices `i..j` of the ranges that overlap or touch `[start, end)`.
    fn touching(&self, start: usize, end: usize) -> (usize, usize) {
        let i = self.ranges.partition_point(|r| r.end() < start);
        let j = self.ranges.partition_point(|r| r.start() <= end);
        (i, j)
    }

    /// The preferred and the minimal growth for taking `data` at `offset` (`tdl` as it will be
    /// after this fragment).
    fn plan(&self, offset: usize, data: &[u8], tdl: Option<usize>) -> (Plan, Plan) {
        if data.is_empty() {
            let now = Plan {
                buf_cap: self.buf.capacity(),
                ranges_cap: self.ranges.capacity(),
            };
            return (now, now);
        }
        let end = offset + data.len();
        let cap = self.buf.capacity();
        let (buf_pref, buf_min) = if end <= cap {
            (cap, cap)
        } else {
            // Doubling keeps in-order arrival to O(log n) reallocations; once the total is known
            // we allocate it exactly.
            let pref = tdl.unwrap_or_else(|| cap.saturating_mul(2).min(MAX_PAYLOAD));
            (pref.max(end), end)
        };
        let (i, j) = self.touching(offset, end);
        let need = self.ranges.len() + usize::from(i == j);
        let rcap = self.ranges.capacity();
        let (ranges_pref, ranges_min) = if need <= rcap {
            (rcap, rcap)
        } else {
            (need.max(rcap * 2).max(MIN_RANGES), need)
        };
        (
            Plan {
                buf_cap: buf_pref,
                ranges_cap: ranges_pref,
            },
            Plan {
                buf_cap: buf_min,
                ranges_cap: ranges_min,
            },
        )
    }

    /// Reserves the capacities of `plan` (no-op where already there).
    fn grow(&mut self, plan: Plan) {
        self.buf.reserve_exact(plan.buf_cap - self.buf.len());
        self.ranges
            .reserve_exact(plan.ranges_cap - self.ranges.len());
    }

    /// Stores a validated, non-conflicting fragment (after [`Datagram::grow`]).
    fn fill(&mut self, offset: usize, more: bool, data: &[u8]) {
        let end = offset + data.len();
        if !more {
            self.tdl = Some(end);
        }
        if data.is_empty() {
            return;
        }
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        // Overlapping bytes were checked identical, so overwriting them is harmless.
        self.buf[offset..end].copy_from_slice(data);
        let (i, j) = self.touching(offset, end);
        if i == j {
            self.ranges.insert(i, Span::new(offset, end));
        } else {
            let start = offset.min(self.ranges[i].start());
            let end = end.max(self.ranges[j - 1].end());
            self.ranges[i] = Span::new(start, end);
            self.ranges.drain(i + 1..j);
        }
    }
}

/// Reassembles fragmented IPv4 datagrams within a global memory bound (see the module docs for
/// storage, validation, overlap and eviction rules).
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
    /// Datagrams being reassembled, oldest first (by arrival of their first fragment).
    datagrams: Vec<Datagram>,
    /// The datagram last returned as `Complete`, kept alive for the borrow; freed on next call.
    done: Option<Datagram>,
    /// Sum of the footprints of `datagrams` and `done`.
    used: usize,
    /// Datagrams evicted since the last `take_evicted`.
    evicted: usize,
}

impl Reassembler {
    /// An empty reassembler with the given bounds and timeout.
    pub fn new(config: ReassemblyConfig) -> Self {
        Reassembler {
            config,
            datagrams: Vec::new(),
            done: None,
            used: 0,
            evicted: 0,
        }
    }

    /// Adds one fragment (RFC 791 §3.2 reassembly): `offset` in bytes (fragment offset field
    /// × 8), `more` = the MF flag, `data` = the fragment's payload.
    ///
    /// Returns `Complete` with the whole payload when this fragment fills the last gap (an
    /// unfragmented datagram, offset 0 with MF clear, completes at once). The slice borrows
    /// internal storage, which is released at the start of the next `insert` or `expire`.
    /// See the module docs for every `Dropped` reason; afterwards, check
    /// [`Reassembler::take_evicted`].
    pub fn insert(
        &mut self,
        now: Instant,
        key: FragmentKey,
        offset: usize,
        more: bool,
        data: &[u8],
    ) -> ReassemblyOutcome<'_> {
        self.release_done();
        let end = offset.saturating_add(data.len());
        if offset & 7 != 0
            || end > MAX_PAYLOAD
            || (more && (data.is_empty() || data.len() & 7 != 0))
        {
            return ReassemblyOutcome::Dropped(DropReason::Ipv4FragMalformed);
        }

        let idx = match self.datagrams.iter().position(|d| d.key == key) {
            Some(idx) => {
                let d = &self.datagrams[idx];
                if d.contradicts(offset, data.len(), more) {
                    self.remove(idx);
                    return ReassemblyOutcome::Dropped(DropReason::Ipv4FragMalformed);
                }
                if d.conflicts(offset, data) {
                    self.remove(idx);
                    return ReassemblyOutcome::Dropped(DropReason::Ipv4FragConflict);
                }
                idx
            }
            None => {
                let alone = Datagram::new(key, now).plan(offset, data, None).1.bytes();
                if self.config.max_datagrams == 0 || alone > self.config.max_memory {
                    return ReassemblyOutcome::Dropped(DropReason::Ipv4FragMemoryFull);
                }
                while self.datagrams.len() >= self.config.max_datagrams {
                    self.evict(0);
                }
                let deadline = now + self.config.timeout;
                self.datagrams.push(Datagram::new(key, deadline));
                self.datagrams.len() - 1
            }
        };

        let d = &self.datagrams[idx];
        let tdl = if more { d.tdl } else { Some(end) };
        let (preferred, minimal) = d.plan(offset, data, tdl);
        let Some((idx, plan)) = self.admit(idx, preferred, minimal) else {
            self.remove(idx);
            return ReassemblyOutcome::Dropped(DropReason::Ipv4FragMemoryFull);
        };

        let d = &mut self.datagrams[idx];
        let before = d.footprint();
        d.grow(plan);
        d.fill(offset, more, data);
        self.used = self.used - before + d.footprint();
        debug_assert!(self.used <= self.config.max_memory);

        if self.datagrams[idx].is_complete() {
            let done = self.done.insert(self.datagrams.remove(idx));
            return ReassemblyOutcome::Complete(&done.buf);
        }
        ReassemblyOutcome::Pending
    }

    /// Drops every datagram whose timer ran out (deadline `<= now`, RFC 791 §3.2 / RFC 1122
    /// §3.3.2) and returns how many.
    ///
    /// `on_expired(key, first)` is called for each: `first` is `Some(bytes)` — the payload
    /// received contiguously from offset 0 — if the first fragment arrived, else `None`. The
    /// caller counts `Ipv4FragTimeout` per datagram and sends ICMP time exceeded, code 1
    /// ("fragment reassembly time exceeded", RFC 792), only when `first` is `Some`, quoting the
    /// header it rebuilds from `key` plus the leading bytes of `first` (RFC 1122 §3.3.2).
    pub fn expire(
        &mut self,
        now: Instant,
        mut on_expired: impl FnMut(FragmentKey, Option<&[u8]>),
    ) -> usize {
        self.release_done();
        let mut expired = 0;
        let used = &mut self.used;
        self.datagrams.retain(|d| {
            if d.deadline > now {
                return true;
            }
            on_expired(d.key, d.first_bytes());
            *used -= d.footprint();
            expired += 1;
            false
        });
        expired
    }

    /// The earliest deadline among datagrams being reassembled: when to call `expire`.
    pub fn poll_at(&self) -> Option<Instant> {
        self.datagrams.iter().map(|d| d.deadline).min()
    }

    /// Heap bytes held: buffer and range-list capacities of every datagram, including the one
    /// last returned as `Complete` until the next call. Never above `config.max_memory`.
    pub fn memory_used(&self) -> usize {
        self.used
    }

    /// Number of datagrams being reassembled (not counting one just returned as `Complete`).
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// Whether no datagram is being reassembled.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Datagrams evicted to respect `max_memory` / `max_datagrams` since the last call (their
    /// fragments were accepted earlier, then discarded). The caller counts each under
    /// `Ipv4FragMemoryFull`.
    pub fn take_evicted(&mut self) -> usize {
        core::mem::take(&mut self.evicted)
    }

    /// Chooses `preferred` if it fits, else `minimal`, evicting the oldest other datagrams until
    /// it fits. `None` (nothing evicted) if `minimal` exceeds `max_memory` on its own. Returns
    /// the datagram's index after evictions.
    fn admit(&mut self, mut idx: usize, preferred: Plan, minimal: Plan) -> Option<(usize, Plan)> {
        let max = self.config.max_memory;
        let others = |r: &Self, idx: usize| r.used - r.datagrams[idx].footprint();
        if others(self, idx) + preferred.bytes() <= max {
            return Some((idx, preferred));
        }
        if minimal.bytes() > max {
            return None;
        }
        while others(self, idx) + minimal.bytes() > max {
            // `others > 0` here, so there is another datagram to evict.
            let victim = usize::from(idx == 0);
            self.evict(victim);
            if victim < idx {
                idx -= 1;
            }
        }
        Some((idx, minimal))
    }

    fn evict(&mut self, idx: usize) {
        self.remove(idx);
        self.evicted += 1;
    }

    fn remove(&mut self, idx: usize) {
        let d = self.datagrams.remove(idx);
        self.used -= d.footprint();
    }

    fn release_done(&mut self) {
        if let Some(d) = self.done.take() {
            self.used -= d.footprint();
        }
    }
}

/// Plans the fragments of an outgoing datagram (RFC 791 §3.2, "An Example Fragmentation
/// Procedure"): for an IP payload of `payload_len` bytes, a header of `header_len` bytes and an
/// IP MTU of `mtu` bytes, yields `(offset, len, more)` per fragment, in order.
///
/// Guarantees: the fragments cover `[0, payload_len)` exactly, in order; each non-final
/// fragment's `len` is a non-zero multiple of 8; `header_len + len <= mtu` whenever there is more
/// than one fragment; the last has `more == false`. A payload that fits yields one fragment
/// `(0, payload_len, false)` (also for `payload_len == 0`).
///
/// Every fragment is planned with the same `header_len`: pass the first fragment's header length.
/// (Options without the copied flag are omitted from later fragments, whose headers are then
/// shorter; this stays correct, only slightly conservative.)
///
/// If the payload does not fit and `mtu < header_len + 8` the datagram cannot be fragmented and
/// the iterator is empty. The caller handles Don't Fragment (`Ipv4FragNeededDf`) before calling.
pub fn fragments(
    payload_len: usize,
    header_len: usize,
    mtu: usize,
) -> impl ExactSizeIterator<Item = (usize, usize, bool)> {
    let room = mtu.saturating_sub(header_len);
    let step = if payload_len <= room {
        payload_len
    } else {
        room & !7
    };
    Fragments {
        next: 0,
        len: payload_len,
        step,
        done: payload_len > room && step == 0,
    }
}

/// Iterator returned by [`fragments`].
#[derive(Clone, Debug)]
struct Fragments {
    next: usize,
    len: usize,
    step: usize,
    done: bool,
}

impl Iterator for Fragments {
    type Item = (usize, usize, bool);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let offset = self.next;
        let len = self.step.min(self.len - offset);
        let more = offset + len < self.len;
        self.next = offset + len;
        self.done = !more;
        Some((offset, len, more))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.done {
            0
        } else {
            (self.len - self.next).div_ceil(self.step.max(1)).max(1)
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Fragments {}

impl core::iter::FusedIterator for Fragments {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;
    use proptest::prelude::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    fn config(max_memory: usize, max_datagrams: usize) -> ReassemblyConfig {
        ReassemblyConfig {
            timeout: TIMEOUT,
            max_memory,
            max_datagrams,
        }
    }

    fn reassembler() -> Reassembler {
        Reassembler::new(config(1 << 20, 16))
    }

    fn key(ident: u16) -> FragmentKey {
        FragmentKey {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            protocol: 17,
            ident,
        }
    }

    fn at(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    /// splitmix64: a seeded generator for payloads and arrival orders.
    fn rng(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn payload(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..len).map(|_| rng(&mut s) as u8).collect()
    }

    /// Internal invariants: accounting matches, ranges sorted/disjoint/non-touching, bounds held.
    fn check(r: &Reassembler) {
        let held: usize = r.datagrams.iter().map(Datagram::footprint).sum::<usize>()
            + r.done.as_ref().map_or(0, Datagram::footprint);
        assert_eq!(r.used, held);
        assert!(r.used <= r.config.max_memory);
        assert!(r.len() <= r.config.max_datagrams);
        for d in &r.datagrams {
            for w in d.ranges.windows(2) {
                assert!(w[0].end < w[1].start, "{:?}", d.ranges);
            }
            assert!(d.ranges.iter().all(|s| s.start < s.end));
            assert_eq!(d.ranges.last().map_or(0, |s| s.end()), d.buf.len());
        }
    }

    /// Feeds `(offset, more)` fragments cut from `data` with lengths `len`; returns the payload
    /// of every `Complete` and panics on `Dropped`.
    fn feed(
        r: &mut Reassembler,
        k: FragmentKey,
        data: &[u8],
        frags: &[(usize, usize, bool)],
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &(off, len, more) in frags {
            match r.insert(at(0), k, off, more, &data[off..off + len]) {
                ReassemblyOutcome::Complete(p) => out.push(p.to_vec()),
                ReassemblyOutcome::Pending => {}
                ReassemblyOutcome::Dropped(why) => panic!("dropped {off}+{len}: {why:?}"),
            }
            check(r);
        }
        out
    }

    // --- fragments() fixtures ---

    #[test]
    fn fragments_3000_over_1500() {
        let f: Vec<_> = fragments(3000, 20, 1500).collect();
        assert_eq!(f, [(0, 1480, true), (1480, 1480, true), (2960, 40, false)]);
        assert_eq!(fragments(3000, 20, 1500).len(), 3);
    }

    #[test]
    fn fragments_minimum_mtu_68() {
        // RFC 791: every module must forward a 68-octet datagram without further fragmentation.
        let f: Vec<_> = fragments(100, 20, 68).collect();
        assert_eq!(f, [(0, 48, true), (48, 48, true), (96, 4, false)]);
    }

    #[test]
    fn fragments_fitting_payload_is_one_fragment() {
        assert_eq!(
            fragments(1480, 20, 1500).collect::<Vec<_>>(),
            [(0, 1480, false)]
        );
        assert_eq!(fragments(0, 20, 1500).collect::<Vec<_>>(), [(0, 0, false)]);
        assert_eq!(fragments(0, 60, 20).len(), 1);
    }

    #[test]
    fn fragments_exact_multiple_has_no_empty_tail() {
        let f: Vec<_> = fragments(2960, 20, 1500).collect();
        assert_eq!(f, [(0, 1480, true), (1480, 1480, false)]);
    }

    #[test]
    fn fragments_rounds_down_to_8_with_options() {
        // 24-byte header: 1476 bytes of room, rounded down to 1472.
        let f: Vec<_> = fragments(2000, 24, 1500).collect();
        assert_eq!(f, [(0, 1472, true), (1472, 528, false)]);
    }

    #[test]
    fn fragments_impossible_when_mtu_below_header_plus_8() {
        assert_eq!(fragments(100, 60, 67).len(), 0);
        assert_eq!(fragments(100, 60, 67).next(), None);
    }

    // --- reassembly ---

    const THREE: [(usize, usize, bool); 3] =
        [(0, 1480, true), (1480, 1480, true), (2960, 40, false)];

    #[test]
    fn in_order() {
        let data = payload(3000, 1);
        let mut r = reassembler();
        assert_eq!(feed(&mut r, key(1), &data, &THREE), [data]);
        assert!(r.is_empty());
        assert!(
            r.memory_used() > 0,
            "completed buffer held until the next call"
        );
        assert_eq!(r.expire(at(0), |_, _| panic!()), 0);
        assert_eq!(r.memory_used(), 0);
        assert_eq!(r.poll_at(), None);
    }

    #[test]
    fn reverse_order() {
        let data = payload(3000, 2);
        let mut r = reassembler();
        let frags: Vec<_> = THREE.iter().rev().copied().collect();
        assert_eq!(feed(&mut r, key(1), &data, &frags), [data]);
    }

    #[test]
    fn shuffled_order_with_interleaved_datagrams() {
        let a = payload(3000, 3);
        let b = payload(3000, 4);
        let mut r = reassembler();
        assert!(feed(&mut r, key(1), &a, &[THREE[1]]).is_empty());
        assert!(feed(&mut r, key(2), &b, &[THREE[2]]).is_empty());
        assert!(feed(&mut r, key(1), &a, &[THREE[2]]).is_empty());
        assert!(feed(&mut r, key(2), &b, &[THREE[0]]).is_empty());
        assert_eq!(r.len(), 2);
        assert_eq!(feed(&mut r, key(1), &a, &[THREE[0]]), [a]);
        assert_eq!(feed(&mut r, key(2), &b, &[THREE[1]]), [b]);
    }

    #[test]
    fn duplicates_ignored() {
        let data = payload(3000, 5);
        let mut r = reassembler();
        let frags = [THREE[1], THREE[1], THREE[0], THREE[1], THREE[0], THREE[2]];
        assert_eq!(feed(&mut r, key(1), &data, &frags), [data]);
    }

    #[test]
    fn identical_unaligned_overlap_accepted() {
        let data = payload(40, 6);
        let mut r = reassembler();
        let frags = [(0, 16, true), (8, 24, true), (24, 16, false)];
        assert_eq!(feed(&mut r, key(1), &data, &frags), [data]);
    }

    #[test]
    fn final_fragment_fully_covered_completes() {
        // Non-final [0, 16), then a final [8, 16) repeating its bytes: TDL 16, complete.
        let data = payload(16, 7);
        let mut r = reassembler();
        assert_eq!(
            feed(&mut r, key(1), &data, &[(0, 16, true), (8, 8, false)]),
            [data]
        );
    }

    #[test]
    fn unfragmented_completes_immediately() {
        let mut r = reassembler();
        let out = r.insert(at(0), key(1), 0, false, b"hello");
        assert_eq!(out, ReassemblyOutcome::Complete(b"hello"));
        let out = r.insert(at(0), key(2), 0, false, b"");
        assert_eq!(out, ReassemblyOutcome::Complete(b""));
        assert!(r.is_empty());
    }

    #[test]
    fn empty_final_fragment_sets_the_end() {
        let data = payload(16, 8);
        let mut r = reassembler();
        assert!(feed(&mut r, key(1), &data, &[(16, 0, false)]).is_empty());
        assert_eq!(feed(&mut r, key(1), &data, &[(0, 16, true)]), [data]);
    }

    #[test]
    fn same_ident_other_tuple_is_another_datagram() {
        let mut r = reassembler();
        let mut other = key(1);
        other.protocol = 6;
        let _ = r.insert(at(0), key(1), 0, true, &[1; 8]);
        let _ = r.insert(at(0), other, 0, true, &[2; 8]);
        assert_eq!(r.len(), 2);
    }

    // --- malformed fragments: each with its reason ---

    fn dropped(r: &mut Reassembler, off: usize, more: bool, data: &[u8]) -> Option<DropReason> {
        match r.insert(at(0), key(1), off, more, data) {
            ReassemblyOutcome::Dropped(why) => Some(why),
            _ => None,
        }
    }

    const MALFORMED: Option<DropReason> = Some(DropReason::Ipv4FragMalformed);

    #[test]
    fn malformed_non_final_not_multiple_of_8() {
        let mut r = reassembler();
        assert_eq!(dropped(&mut r, 0, true, &[0; 12]), MALFORMED);
        assert!(r.is_empty());
    }

    #[test]
    fn malformed_non_final_empty() {
        let mut r = reassembler();
        assert_eq!(dropped(&mut r, 8, true, &[]), MALFORMED);
    }

    #[test]
    fn malformed_offset_not_multiple_of_8() {
        let mut r = reassembler();
        assert_eq!(dropped(&mut r, 4, false, &[0; 8]), MALFORMED);
    }

    #[test]
    fn malformed_end_beyond_max_payload() {
        let mut r = reassembler();
        // Largest offset field (8191 * 8 = 65528) plus 8 bytes: beyond 65515.
        assert_eq!(dropped(&mut r, 65528, false, &[0; 8]), MALFORMED);
        assert_eq!(dropped(&mut r, 65512, false, &[0; 4]), MALFORMED);
        assert_eq!(dropped(&mut r, usize::MAX & !7, false, &[0; 8]), MALFORMED);
        // Exactly at the limit is fine.
        assert_eq!(dropped(&mut r, 65512, false, &[0; 3]), None);
    }

    #[test]
    fn standalone_malformed_leaves_datagram_alone() {
        let mut r = reassembler();
        assert_eq!(dropped(&mut r, 0, true, &[0; 8]), None);
        assert_eq!(dropped(&mut r, 8, true, &[0; 5]), MALFORMED);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn malformed_fragment_beyond_known_end_drops_datagram() {
        let mut r = reassembler();
        assert_eq!(dropped(&mut r, 8, false, &[0; 8]), None);
        assert_eq!(dropped(&mut r, 16, true, &[0; 8]), MALFORMED);
        assert!(r.is_empty());
        assert_eq!(r.memory_used(), 0);
    }

    #[test]
    fn malformed_second_final_with_other_end_drops_datagram() {
        let mut r = reassembler();
        assert_eq!(dropped(&mut r, 8, false, &[0; 8]), None);
        assert_eq!(
            dropped(&mut r, 8, false, &[0; 8]),
            None,
            "same end is a duplicate"
        );
        assert_eq!(dropped(&mut r, 8, false, &[0; 4]), MALFORMED);
        assert!(r.is_empty());
    }

    #[test]
    fn malformed_final_before_received_data_drops_datagram() {
        let mut r = reassembler();
        assert_eq!(dropped(&mut r, 16, true, &[0; 8]), None);
        assert_eq!(dropped(&mut r, 0, false, &[0; 8]), MALFORMED);
        assert!(r.is_empty());
    }

    #[test]
    fn conflicting_overlap_drops_datagram() {
        let mut r = reassembler();
        assert_eq!(dropped(&mut r, 0, true, &[1; 16]), None);
        assert_eq!(dropped(&mut r, 24, false, &[3; 4]), None);
        // [8, 24): bytes 8..16 overlap the first fragment, byte 15 differs.
        let mut evil = [1; 16];
        evil[7] = 2;
        assert_eq!(
            dropped(&mut r, 8, true, &evil),
            Some(DropReason::Ipv4FragConflict)
        );
        assert!(r.is_empty());
        assert_eq!(r.memory_used(), 0);
        // Later fragments start a fresh datagram.
        assert_eq!(dropped(&mut r, 24, false, &[3; 4]), None);
        assert_eq!(r.len(), 1);
    }

    // --- timeout ---

    #[test]
    fn timeout_reports_keys_and_first_fragment() {
        let mut r = reassembler();
        let _ = r.insert(at(1_000), key(1), 0, true, &[7; 16]);
        let _ = r.insert(at(2_000), key(2), 8, true, &[9; 8]);
        // A later fragment does not extend the timer.
        let _ = r.insert(at(20_000), key(1), 24, true, &[7; 8]);
        assert_eq!(r.poll_at(), Some(at(1_000) + TIMEOUT));

        let mut seen = Vec::new();
        let mut collect =
            |k: FragmentKey, first: Option<&[u8]>| seen.push((k, first.map(<[u8]>::to_vec)));
        assert_eq!(r.expire(at(30_999), &mut collect), 0);
        assert_eq!(r.expire(at(31_000), &mut collect), 1);
        assert_eq!(r.poll_at(), Some(at(2_000) + TIMEOUT));
        assert_eq!(r.expire(at(40_000), &mut collect), 1);
        assert_eq!(seen, [(key(1), Some(vec![7; 16])), (key(2), None)]);
        assert!(r.is_empty());
        assert_eq!(r.memory_used(), 0);
        assert_eq!(r.poll_at(), None);
    }

    // --- memory bounds ---

    #[test]
    fn flood_never_exceeds_bounds() {
        let mut r = Reassembler::new(config(20_000, 8));
        let mut s = 42;
        let mut evicted = 0;
        for ident in 0..2_000u16 {
            // Every fragment fits alone (end <= 12 * 1480 < 20_000), so none is refused.
            let off = (rng(&mut s) % 12) as usize * 1480;
            let out = r.insert(at(i64::from(ident)), key(ident), off, true, &[0xaa; 1480]);
            assert_eq!(out, ReassemblyOutcome::Pending);
            evicted += r.take_evicted();
            check(&r);
            assert!(r.memory_used() <= 20_000);
            assert!(r.len() <= 8);
        }
        assert!(evicted > 1_900);
        // A legitimate datagram still gets through the flood.
        let data = payload(3000, 9);
        assert_eq!(feed(&mut r, key(9999), &data, &THREE), [data]);
    }

    #[test]
    fn max_datagrams_evicts_oldest() {
        let mut r = Reassembler::new(config(1 << 20, 2));
        let _ = r.insert(at(0), key(1), 0, true, &[1; 8]);
        let _ = r.insert(at(1), key(2), 0, true, &[2; 8]);
        assert_eq!(r.take_evicted(), 0);
        let _ = r.insert(at(2), key(3), 0, true, &[3; 8]);
        assert_eq!(r.take_evicted(), 1);
        assert_eq!(r.take_evicted(), 0);
        let mut keys = Vec::new();
        r.expire(at(100_000), |k, _| keys.push(k.ident));
        assert_eq!(keys, [2, 3]);
    }

    #[test]
    fn memory_full_evicts_oldest_other_datagram() {
        // Room for one 1480-byte fragment (plus its range list) at a time.
        let mut r = Reassembler::new(config(2_000, 16));
        let _ = r.insert(at(0), key(1), 0, true, &[1; 1480]);
        assert_eq!(
            r.insert(at(1), key(2), 0, true, &[2; 1480]),
            ReassemblyOutcome::Pending
        );
        assert_eq!(r.take_evicted(), 1);
        assert_eq!(r.len(), 1);
        check(&r);
    }

    #[test]
    fn datagram_larger_than_memory_is_refused_without_evicting() {
        let mut r = Reassembler::new(config(4_000, 16));
        let _ = r.insert(at(0), key(1), 0, true, &[1; 1480]);
        // Needs a 4440-byte buffer on its own: hopeless.
        assert_eq!(
            r.insert(at(1), key(2), 2960, true, &[2; 1480]),
            ReassemblyOutcome::Dropped(DropReason::Ipv4FragMemoryFull)
        );
        assert_eq!(r.take_evicted(), 0);
        assert_eq!(r.len(), 1);
        // A growing datagram that outgrows the bound is dropped with its fragment.
        let _ = r.insert(at(2), key(3), 0, true, &[3; 1480]);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r.insert(at(3), key(3), 2960, true, &[3; 1480]),
            ReassemblyOutcome::Dropped(DropReason::Ipv4FragMemoryFull)
        );
        assert_eq!(r.take_evicted(), 0);
        assert_eq!(r.len(), 1);
        check(&r);
    }

    #[test]
    fn zero_datagrams_refuses_everything() {
        let mut r = Reassembler::new(config(1 << 20, 0));
        assert_eq!(
            r.insert(at(0), key(1), 0, false, b"x"),
            ReassemblyOutcome::Dropped(DropReason::Ipv4FragMemoryFull)
        );
    }

    // --- properties ---

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// `fragments` plans valid fragments; any arrival order, with duplicates, reassembles to
        /// exactly the original payload, exactly once.
        #[test]
        fn fragment_then_reassemble(len in 1usize..=65000, mtu in 68usize..=9000, seed: u64) {
            let frags: Vec<_> = fragments(len, 20, mtu).collect();
            prop_assert_eq!(frags.len(), fragments(len, 20, mtu).len());
            let mut covered = 0;
            for (i, &(off, n, more)) in frags.iter().enumerate() {
                prop_assert_eq!(off, covered);
                prop_assert_eq!(more, i + 1 < frags.len());
                prop_assert!(20 + n <= mtu);
                if more {
                    prop_assert!(n > 0 && n % 8 == 0);
                }
                covered += n;
            }
            prop_assert_eq!(covered, len);

            let mut s = seed;
            let mut order = frags.clone();
            for _ in 0..rng(&mut s) % 8 {
                let dup = order[(rng(&mut s) % frags.len() as u64) as usize];
                order.push(dup);
            }
            for i in (1..order.len()).rev() {
                order.swap(i, (rng(&mut s) % (i as u64 + 1)) as usize);
            }
            // Duplicates arriving after completion would start a new datagram: stop there.
            let data = payload(len, seed);
            let mut r = reassembler();
            let mut done = Vec::new();
            for &(off, n, more) in &order {
                match r.insert(at(0), key(7), off, more, &data[off..off + n]) {
                    ReassemblyOutcome::Complete(p) => { done.push(p.to_vec()); break; }
                    ReassemblyOutcome::Pending => {}
                    ReassemblyOutcome::Dropped(why) => prop_assert!(false, "dropped: {:?}", why),
                }
                check(&r);
            }
            prop_assert_eq!(done.len(), 1);
            prop_assert!(done[0] == data);
            prop_assert!(r.is_empty());
        }

        /// Arbitrary fragment soup never panics and never breaks the bounds.
        #[test]
        fn arbitrary_fragments_respect_bounds(
            ops in proptest::collection::vec((0u16..4, 0usize..200, any::<bool>(), 0usize..64, any::<u8>()), 1..200)
        ) {
            let mut r = Reassembler::new(config(3_000, 3));
            for (ident, off, more, n, byte) in ops {
                let _ = r.insert(at(0), key(ident), off * 8, more, &vec![byte; n]);
                check(&r);
            }
        }
    }
}
