//! An in-memory Ethernet link with seeded impairment, for deterministic simulation.
//!
//! [`MemoryLink::pair`] returns two ends, `a` and `b`. A frame transmitted by one end is
//! received by the other after crossing that direction's [`Impairment`]
//! ([`LinkConfig::a_to_b`] or [`LinkConfig::b_to_a`]).
//!
//! ```
//! use ringstack_nic::{Impairment, LinkConfig, MemoryLink, Nic};
//! use smoltcp::time::Instant;
//!
//! let impairment: Impairment = "delay=10ms,loss=1%".parse().unwrap();
//! let (mut a, mut b) = MemoryLink::pair(LinkConfig { seed: 7, ..LinkConfig::impaired(impairment) });
//! a.send(Instant::ZERO, &[0xff; 60]).unwrap();
//! if let Some(at) = b.poll_at() {
//!     assert_eq!(at, Instant::from_millis(10));
//!     let n = b.receive(at, 64, &mut |frame| assert_eq!(frame.len(), 60)).unwrap();
//!     assert_eq!(n, 1);
//! }
//! ```
//!
//! # Timing model
//!
//! A frame of `len` bytes transmitted at `now` (and not lost) departs at
//!
//! - `now` when the direction has no bandwidth cap;
//! - otherwise when its serialization ends: it starts when the previous frame has finished
//!   (`max(now, busy_until)`) and takes `len * 8 / rate_bps` seconds (kept in nanoseconds, so
//!   rounding never accumulates). At most [`LinkConfig::queue_limit_frames`] frames may be
//!   waiting or serializing; a frame beyond that is tail-dropped and counted in
//!   [`NicStats::queue_drops`].
//!
//! Each copy (two with duplication) then becomes receivable at
//! `departure + delay + jitter (+ reorder_delay if chosen for reordering)`, rounded up to the
//! microsecond. [`Nic::receive`] yields only the frames receivable at its `now`, ordered by that
//! time, ties by send order; [`Nic::poll_at`] reports the earliest pending one. With no
//! impairment the link is a plain FIFO whose frames are receivable immediately.
//!
//! At most [`LinkConfig::rx_ring_frames`] frames may be pending (in flight or unread) towards
//! one end; beyond that new frames are dropped and counted in that end's
//! [`NicStats::rx_dropped`], like a full RX ring.
//!
//! # Determinism
//!
//! Each direction draws from its own ChaCha8 PRNG, seeded with [`Impairment::seed`] or else
//! [`LinkConfig::seed`] (stream 0 for a→b, 1 for b→a, so the directions differ even with one
//! seed). Every frame consumes the same number of draws whatever happens to it, so the same
//! seed, configuration and sequence of calls reproduce exactly the same impairments and timings,
//! and changing one probability does not reshuffle the others' decisions.
//!
//! # Threads
//!
//! The ends are `Send`: the two stacks of a simulation may run on two threads. They share one
//! mutex, taken once per `transmit` and at most twice per `receive` batch; the receive sink and
//! the transmit fill run outside of it. The link has no file descriptor
//! ([`Nic::wait_fd`] is `None`): a threaded driver waits with [`Nic::poll_at`] and a timeout.
//!
//! # Closing
//!
//! Dropping an end closes the link: the other end's `transmit` returns [`NicError::Closed`]
//! (counted in `tx_dropped`); its `receive` still yields the frames already sent and then
//! returns [`NicError::Closed`].

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smoltcp::time::{Duration, Instant};

use crate::{Nic, NicError, NicInfo, NicStats, ETHERNET_HEADER_LEN};

mod impairment;

pub use impairment::{Impairment, ParseImpairmentError};

/// How many spare frame buffers each direction keeps for reuse.
const POOL_LIMIT: usize = 256;

/// Configuration of an in-memory link.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// What happens to frames sent by end `a`.
    pub a_to_b: Impairment,
    /// What happens to frames sent by end `b`.
    pub b_to_a: Impairment,
    /// Seed of the impairment PRNGs (unless an [`Impairment::seed`] overrides it).
    pub seed: u64,
    /// IP MTU of both ends (default 1500); the maximum frame is `mtu + 14`.
    pub mtu: usize,
    /// Frames that may wait for or be in serialization on a bandwidth-capped direction before
    /// tail drop (default 1000, like Linux's `txqueuelen`). Unused without `rate_bps`.
    pub queue_limit_frames: usize,
    /// Frames that may be pending towards one end (in flight or unread) before it drops new
    /// ones as `rx_dropped` (default 4096).
    pub rx_ring_frames: usize,
    /// MAC of end `a` (default `02:00:00:00:00:01`).
    pub mac_a: [u8; 6],
    /// MAC of end `b` (default `02:00:00:00:00:02`).
    pub mac_b: [u8; 6],
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            a_to_b: Impairment::none(),
            b_to_a: Impairment::none(),
            seed: 0,
            mtu: 1500,
            queue_limit_frames: 1000,
            rx_ring_frames: 4096,
            mac_a: [0x02, 0, 0, 0, 0, 0x01],
            mac_b: [0x02, 0, 0, 0, 0, 0x02],
        }
    }
}

impl LinkConfig {
    /// The default link with the same impairment in both directions (each direction still has
    /// its own PRNG stream).
    pub fn impaired(impairment: Impairment) -> Self {
        LinkConfig {
            a_to_b: impairment.clone(),
            b_to_a: impairment,
            ..LinkConfig::default()
        }
    }
}

/// Constructor of in-memory links (see the [module docs](self)).
#[derive(Debug, Clone, Copy)]
pub struct MemoryLink;

impl MemoryLink {
    /// Creates a link and returns its two ends, `(a, b)`.
    pub fn pair(config: LinkConfig) -> (MemoryNic, MemoryNic) {
        let shared = Arc::new(Mutex::new(Shared {
            wires: [Wire::default(), Wire::default()],
            alive: [true, true],
        }));
        let a = MemoryNic::new(End::A, &config, &shared);
        let b = MemoryNic::new(End::B, &config, &shared);
        (a, b)
    }
}

/// One end of an in-memory link. See the [module docs](self).
pub struct MemoryNic {
    info: NicInfo,
    end: End,
    shared: Arc<Mutex<Shared>>,
    rx_ring_frames: usize,
    shaper: Shaper,
    /// Local counters; `rx_dropped` lives in the shared wire (the sender counts it).
    stats: NicStats,
    /// The TX slot lent to `fill`, always `max_frame` long.
    slot: Vec<u8>,
    /// Frames taken off the wire for the current `receive`, reused between calls.
    rx_batch: Vec<(Vec<u8>, usize)>,
}

/// The transmit-side fields of a [`MemoryNic`], borrowed apart from its `shared` state.
struct Tx<'a> {
    shaper: &'a mut Shaper,
    stats: &'a mut NicStats,
    slot: &'a mut Vec<u8>,
    end: End,
    rx_ring_frames: usize,
    max_frame: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    A,
    B,
}

impl End {
    /// Index of the wire this end transmits on (wire 0 carries a→b, wire 1 b→a).
    fn tx_wire(self) -> usize {
        match self {
            End::A => 0,
            End::B => 1,
        }
    }
    fn rx_wire(self) -> usize {
        1 - self.tx_wire()
    }
    fn peer(self) -> usize {
        self.rx_wire()
    }
}

struct Shared {
    wires: [Wire; 2],
    /// Indexed like the wires a given end transmits on: `alive[end.tx_wire()]`.
    alive: [bool; 2],
}

#[derive(Default)]
struct Wire {
    in_flight: InFlightQueue,
    /// Spare buffers of `max_frame` bytes: the receiver returns them, the sender takes them.
    pool: Vec<Vec<u8>>,
    /// Frames dropped because the receiving end had `rx_ring_frames` pending.
    rx_dropped: u64,
}

/// The frames on their way, ordered by delivery time, ties by send order.
///
/// Frames that arrive in order (the only case on a link without delay variation) go to a FIFO,
/// O(1) each; only a frame that must overtake an earlier one (reordering, jitter) goes to the
/// heap. Popping takes the earlier of the two fronts, so the order is exactly that of one heap.
#[derive(Default)]
struct InFlightQueue {
    /// Sorted by `(at, seq)`: a frame is appended only if it sorts after the back.
    fifo: VecDeque<InFlight>,
    heap: BinaryHeap<InFlight>,
}

impl InFlightQueue {
    fn push(&mut self, f: InFlight) {
        if self
            .fifo
            .back()
            .is_none_or(|b| (b.at, b.seq) <= (f.at, f.seq))
        {
            self.fifo.push_back(f);
        } else {
            self.heap.push(f);
        }
    }

    /// Whether the next frame comes from the FIFO (`Some(true)`) or the heap.
    fn next_is_fifo(&self) -> Option<bool> {
        match (self.fifo.front(), self.heap.peek()) {
            (None, None) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(f), Some(h)) => Some((f.at, f.seq) <= (h.at, h.seq)),
        }
    }

    fn peek(&self) -> Option<&InFlight> {
        match self.next_is_fifo()? {
            true => self.fifo.front(),
            false => self.heap.peek(),
        }
    }

    fn pop(&mut self) -> Option<InFlight> {
        match self.next_is_fifo()? {
            true => self.fifo.pop_front(),
            false => self.heap.pop(),
        }
    }

    fn len(&self) -> usize {
        self.fifo.len() + self.heap.len()
    }

    fn is_empty(&self) -> bool {
        self.fifo.is_empty() && self.heap.is_empty()
    }

    fn clear(&mut self) {
        self.fifo.clear();
        self.heap.clear();
    }
}

/// A frame on its way; `buf` is `max_frame` long, the frame is `buf[..len]`.
struct InFlight {
    at: Instant,
    seq: u64,
    len: usize,
    buf: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    /// Reversed, so that the max-heap pops the earliest delivery first, ties by send order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The sending side of one direction: impairment decisions and the bandwidth queue.
struct Shaper {
    impairment: Impairment,
    /// `impairment.is_none()`, cached: such frames draw nothing from the PRNG (whatever they
    /// would draw decides nothing) and only count in `skipped`.
    clean: bool,
    /// Frames that skipped their draws; the stream is moved past their
    /// [`WORDS_PER_FRAME`] words before the next real draw, so every frame still gets the
    /// values it would have drawn (the stream does not depend on how long the link was clean).
    skipped: u64,
    rng: ChaCha8Rng,
    queue_limit_frames: usize,
    /// Serialization end times (ns) of the frames still queued or serializing.
    backlog: VecDeque<i128>,
    /// When the wire is free again (ns).
    busy_until_ns: i128,
    /// Send order, to break ties between equal delivery times.
    seq: u64,
}

/// Random values drawn for one copy of a frame.
struct CopyDraws {
    corrupt: f64,
    position: u64,
    jitter: u64,
    reorder: f64,
}

/// Random values drawn for one frame: always the same number, whatever they decide.
struct FrameDraws {
    loss: f64,
    duplicate: f64,
    copies: [CopyDraws; 2],
}

/// 32-bit PRNG words one frame's [`FrameDraws`] consume: ten 64-bit draws (an `f64` takes one
/// `u64`).
const WORDS_PER_FRAME: u128 = 20;

impl Shaper {
    fn set_impairment(&mut self, impairment: Impairment) {
        self.clean = impairment.is_none();
        self.impairment = impairment;
    }

    fn draw(&mut self) -> FrameDraws {
        if self.skipped > 0 {
            let pos = self.rng.get_word_pos();
            self.rng
                .set_word_pos(pos + u128::from(self.skipped) * WORDS_PER_FRAME);
            self.skipped = 0;
        }
        let mut copy = || CopyDraws {
            corrupt: self.rng.random(),
            position: self.rng.next_u64(),
            jitter: self.rng.next_u64(),
            reorder: self.rng.random(),
        };
        let copies = [copy(), copy()];
        FrameDraws {
            loss: self.rng.random(),
            duplicate: self.rng.random(),
            copies,
        }
    }

    /// Serialization of a `len`-byte frame sent at `now`: its departure, or `None` if the queue
    /// is full.
    fn depart(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let Some(rate) = self.impairment.rate_bps else {
            return Some(now);
        };
        let now_ns = i128::from(now.total_micros()) * 1000;
        while self.backlog.front().is_some_and(|&end| end <= now_ns) {
            self.backlog.pop_front();
        }
        if self.backlog.len() >= self.queue_limit_frames {
            return None;
        }
        let bits = len as i128 * 8;
        let serialization_ns = (bits * 1_000_000_000 + i128::from(rate) - 1) / i128::from(rate);
        let end = now_ns.max(self.busy_until_ns) + serialization_ns;
        self.busy_until_ns = end;
        self.backlog.push_back(end);
        // Round up to the microsecond: a frame is never receivable before it has arrived.
        Some(Instant::from_micros(((end + 999) / 1000) as i64))
    }
}

impl MemoryNic {
    fn new(end: End, config: &LinkConfig, shared: &Arc<Mutex<Shared>>) -> Self {
        let (impairment, name, mac) = match end {
            End::A => (&config.a_to_b, "memory-a", config.mac_a),
            End::B => (&config.b_to_a, "memory-b", config.mac_b),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(impairment.seed.unwrap_or(config.seed));
        rng.set_stream(end.tx_wire() as u64);
        let max_frame = config.mtu + ETHERNET_HEADER_LEN;
        MemoryNic {
            info: NicInfo {
                name: name.into(),
                mtu: config.mtu,
                mac: Some(mac),
                max_frame,
                max_rx_frame: max_frame,
            },
            end,
            shared: Arc::clone(shared),
            rx_ring_frames: config.rx_ring_frames,
            shaper: Shaper {
                impairment: impairment.clone(),
                clean: impairment.is_none(),
                skipped: 0,
                rng,
                queue_limit_frames: config.queue_limit_frames,
                backlog: VecDeque::new(),
                busy_until_ns: i128::MIN,
                seq: 0,
            },
            stats: NicStats::default(),
            slot: vec![0; max_frame],
            rx_batch: Vec::new(),
        }
    }

    /// The impairment applied to the frames this end transmits.
    pub fn impairment(&self) -> &Impairment {
        &self.shaper.impairment
    }

    /// Replaces the impairment applied to the frames this end transmits from now on (frames
    /// already in flight keep their delivery time). The PRNG stream continues.
    pub fn set_impairment(&mut self, impairment: Impairment) {
        self.shaper.set_impairment(impairment);
    }

    /// Number of frames pending towards this end (in flight or ready to be received).
    pub fn pending(&self) -> usize {
        self.lock().wires[self.end.rx_wire()].in_flight.len()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere cannot leave the queues half-updated: recover the state.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Impairs the frame in `self.slot[..len]` and puts its copies on the wire.
    fn enqueue(tx: Tx<'_>, shared: &mut Shared, now: Instant, len: usize) {
        let Tx {
            shaper,
            stats,
            slot,
            end,
            rx_ring_frames,
            max_frame,
        } = tx;
        if shaper.clean {
            // A perfect wire: one copy, receivable now (what the general path computes for
            // this impairment, without drawing).
            shaper.skipped += 1;
            let wire = &mut shared.wires[end.tx_wire()];
            if wire.in_flight.len() >= rx_ring_frames {
                wire.rx_dropped += 1;
                return;
            }
            let mut buf = wire.pool.pop().unwrap_or_default();
            buf.resize(max_frame, 0);
            std::mem::swap(&mut buf, slot);
            shaper.seq += 1;
            wire.in_flight.push(InFlight {
                at: now,
                seq: shaper.seq,
                len,
                buf,
            });
            return;
        }
        let draws = shaper.draw();
        let imp = &shaper.impairment;
        if draws.loss < imp.loss {
            stats.lost += 1;
            return;
        }
        let Some(departure) = shaper.depart(now, len) else {
            stats.queue_drops += 1;
            return;
        };
        let imp = &shaper.impairment;
        let copies = if draws.duplicate < imp.duplicate {
            stats.duplicated += 1;
            2
        } else {
            1
        };
        let wire = &mut shared.wires[end.tx_wire()];
        for (i, d) in draws.copies.iter().enumerate().take(copies) {
            let mut buf = wire.pool.pop().unwrap_or_default();
            buf.resize(max_frame, 0);
            if i + 1 == copies {
                // The last copy takes the slot itself; the fresh buffer becomes the next slot.
                std::mem::swap(&mut buf, slot);
            } else {
                buf[..len].copy_from_slice(&slot[..len]);
            }
            if d.corrupt < imp.corrupt && len > 0 {
                let byte = (d.position % len as u64) as usize;
                buf[byte] ^= 1 << ((d.position >> 32) % 8);
                stats.corrupted += 1;
            }
            let jitter_us = imp.jitter.total_micros();
            let mut at = departure
                + imp.delay
                + Duration::from_micros(d.jitter % jitter_us.saturating_add(1));
            if d.reorder < imp.reorder {
                at += imp.reorder_delay;
                stats.reordered += 1;
            }
            if at > now {
                stats.delayed += 1;
            }
            if wire.in_flight.len() >= rx_ring_frames {
                wire.rx_dropped += 1;
                wire.pool.push(buf);
                continue;
            }
            shaper.seq += 1;
            wire.in_flight.push(InFlight {
                at,
                seq: shaper.seq,
                len,
                buf,
            });
        }
    }
}

impl Nic for MemoryNic {
    fn info(&self) -> NicInfo {
        self.info.clone()
    }

    fn receive(
        &mut self,
        now: Instant,
        budget: usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, NicError> {
        if budget == 0 {
            return Ok(0);
        }
        let rx_wire = self.end.rx_wire();
        let mut batch = std::mem::take(&mut self.rx_batch);
        let closed = {
            let mut shared = self.lock();
            let wire = &mut shared.wires[rx_wire];
            while batch.len() < budget && wire.in_flight.peek().is_some_and(|f| f.at <= now) {
                let frame = wire.in_flight.pop().expect("peeked");
                batch.push((frame.buf, frame.len));
            }
            wire.in_flight.is_empty() && !shared.alive[self.end.peer()]
        };
        let n = batch.len();
        if n == 0 {
            self.rx_batch = batch;
            return if closed { Err(NicError::Closed) } else { Ok(0) };
        }
        // The sink runs outside the lock: it may transmit on either end.
        for (buf, len) in &batch {
            sink(&buf[..*len]);
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += *len as u64;
        }
        let mut shared = self.lock();
        let pool = &mut shared.wires[rx_wire].pool;
        for (buf, _) in batch.drain(..) {
            if pool.len() < POOL_LIMIT {
                pool.push(buf);
            }
        }
        drop(shared);
        self.rx_batch = batch;
        Ok(n)
    }

    fn transmit(
        &mut self,
        now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, NicError> {
        let max = self.info.max_frame;
        let len = fill(&mut self.slot[..]);
        if len == 0 {
            return Ok(0);
        }
        if len > max {
            self.stats.tx_dropped += 1;
            return Err(NicError::TooLarge { len, max });
        }
        // Borrow the fields apart: the lock guard borrows `shared` while the rest is mutated.
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if !shared.alive[self.end.peer()] {
            self.stats.tx_dropped += 1;
            return Err(NicError::Closed);
        }
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        let tx = Tx {
            shaper: &mut self.shaper,
            stats: &mut self.stats,
            slot: &mut self.slot,
            end: self.end,
            rx_ring_frames: self.rx_ring_frames,
            max_frame: max,
        };
        MemoryNic::enqueue(tx, &mut shared, now, len);
        Ok(len)
    }

    fn poll_at(&self) -> Option<Instant> {
        self.lock().wires[self.end.rx_wire()]
            .in_flight
            .peek()
            .map(|f| f.at)
    }

    fn stats(&self) -> NicStats {
        NicStats {
            rx_dropped: self.lock().wires[self.end.rx_wire()].rx_dropped,
            ..self.stats
        }
    }
}

impl Drop for MemoryNic {
    fn drop(&mut self) {
        let mut shared = self.lock();
        shared.alive[self.end.tx_wire()] = false;
        // Nobody will receive what was sent to this end: free it now.
        shared.wires[self.end.rx_wire()].in_flight.clear();
    }
}

impl fmt::Debug for MemoryNic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryNic")
            .field("info", &self.info)
            .field("impairment", &self.shaper.impairment.to_string())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
