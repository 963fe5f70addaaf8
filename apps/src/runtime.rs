//! The drivers: a stack on a NIC, polled round after round — receive, run timers, transmit,
//! one kick — on a monotonic clock ([`Runtime`], which sleeps on the NIC's descriptor, the
//! "interrupt", until the next frame or timer) or on a virtual one (the demo).
//!
//! When tracing, a round also adds to the stack's trace what only the driver sees of each frame
//! ([`NicTrace`]): where in the NIC's ring it lay (RX block and offset, or RX/TX slot), the
//! Ethernet header of every frame going out, how long the stack took over a received frame, and
//! the first bytes of text payloads as they land in a socket or leave in a segment.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Result;
use ringstack_nic::ring::RingGeometry;
use ringstack_nic::{Nic, NicError};
use ringstack_sockets::{Clock, Host, SystemClock};
use ringstack_stack::trace::{Direction, Flow, Layer, TraceEvent, Verdict};
use ringstack_stack::{Config, Duration, Instant, Stack};

use crate::netopts::OpenedNic;
use crate::render::TraceFilter;

/// Longest sleep between two looks at the stack (bounds timer lateness without an fd).
const MAX_SLEEP: StdDuration = StdDuration::from_millis(5);
/// Frames taken from the NIC per round (one "NAPI budget", as `Host::poll`).
const RX_BUDGET: usize = 64;
/// Payload bytes quoted in a trace line.
const PREVIEW: usize = 80;
/// Frames built by the stack and not yet seen leaving, kept to match each to its TX slot.
const MAX_PENDING: usize = 1024;
/// Trace events held between two rounds of a live trace.
const LIVE_TRACE_CAPACITY: usize = 1 << 16;

/// What identifies a frame on its way out: ARP, or IPv4 with its total length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxKey {
    Arp,
    Ipv4(usize),
}

/// A packet the stack built (its IPv4 or ARP `EMIT` event) that has not yet left.
#[derive(Debug)]
struct Pending {
    /// Position of its event among all the events scanned.
    seq: u64,
    frame: u64,
    key: TxKey,
    flow: Option<Flow>,
}

/// Adds the NIC's side of every frame to a stack's trace: the driver's round
/// ([`NicTrace::round`], the same steps as `Host::poll`) with a look at each frame as it is lent
/// by the NIC.
///
/// - Receive: the `Nic` event of each frame gets where the frame lay (`ring rx block 2 +0x50`,
///   `ring rx slot 37`) and, when measuring, the time the stack took over it; the `Socket`
///   `DELIVER` event gets the payload, quoted, when it is text.
/// - Transmit: each frame gets an `Ethernet` and a `Nic` `EMIT` event (`ring tx slot 12`) under
///   the number (`#N`) of the events that built it. A TCP segment is built in the call that
///   hands it out; a packet built earlier (ARP, ICMP, UDP, a segment that waited for ARP) is
///   matched, oldest first, to the packet of the same kind, length and flow still waiting.
///
/// Every drain of the tracer must go through [`NicTrace::drain`] (it keeps a cursor into it).
#[derive(Debug)]
pub struct NicTrace {
    geometry: Option<RingGeometry>,
    measure: bool,
    /// Events of the tracer's buffer already scanned for packets built.
    scanned: usize,
    /// Events scanned in total.
    seq: u64,
    pending: VecDeque<Pending>,
}

impl NicTrace {
    /// A NIC-side tracer; `geometry` locates frames in an AF_PACKET ring, `measure` times the
    /// stack's work on each received frame (wall clock: leave it off for golden traces).
    pub fn new(geometry: Option<RingGeometry>, measure: bool) -> Self {
        NicTrace {
            geometry,
            measure,
            scanned: 0,
            seq: 0,
            pending: VecDeque::new(),
        }
    }

    /// One round, as `Host::poll`: receive a batch, run due timers, transmit everything, one
    /// kick. `clock` gives the time of each step (a constant on a virtual clock). Returns how
    /// many frames went each way.
    pub fn round<N: Nic + ?Sized>(
        &mut self,
        nic: &mut N,
        stack: &mut Stack,
        clock: &dyn Fn() -> Instant,
    ) -> Result<Round, NicError> {
        let received = nic.receive(clock(), RX_BUDGET, &mut |frame| {
            let now = clock();
            let before = stack.tracer().len();
            let t0 = self.measure.then(std::time::Instant::now);
            stack.handle_frame(now, frame);
            let took = t0.map(|t| t.elapsed());
            self.annotate_rx(stack, before, frame, took);
        })?;
        let now = clock();
        if stack.poll_at().is_some_and(|t| t <= now) {
            stack.handle_timeout(now);
        }
        let mut sent = 0;
        loop {
            let len = nic.transmit(now, &mut |slot| {
                self.scan(stack);
                let fresh_from = self.seq;
                let n = stack.poll_transmit(now, slot).unwrap_or(0);
                if let Some(frame) = slot.get(..n).filter(|f| !f.is_empty()) {
                    self.on_transmit(stack, now, fresh_from, frame);
                }
                n
            })?;
            if len == 0 {
                break;
            }
            sent += 1;
        }
        if sent > 0 {
            nic.flush(now)?;
        }
        Ok(Round { received, sent })
    }

    /// Takes the stack's trace events (with the NIC's added), oldest first.
    pub fn drain(&mut self, stack: &mut Stack) -> Vec<TraceEvent> {
        self.scan(stack);
        self.scanned = 0;
        stack.tracer().drain().collect()
    }

    /// Remembers the packets built (IPv4 and ARP `EMIT` events) among the events not yet
    /// scanned.
    fn scan(&mut self, stack: &mut Stack) {
        let tracer = stack.tracer();
        // Defensive: someone else drained the tracer.
        self.scanned = self.scanned.min(tracer.len());
        for ev in tracer.events_mut().skip(self.scanned) {
            self.seq += 1;
            self.scanned += 1;
            if ev.direction != Direction::Tx || ev.verdict != Verdict::Emit {
                continue;
            }
            let key = match ev.layer {
                Layer::Ipv4 => TxKey::Ipv4(ev.len),
                Layer::Arp => TxKey::Arp,
                _ => continue,
            };
            if self.pending.len() == MAX_PENDING {
                self.pending.pop_front();
            }
            self.pending.push_back(Pending {
                seq: self.seq - 1,
                frame: ev.frame,
                key,
                flow: ev.flow,
            });
        }
    }

    /// Annotates the events `handle_frame` just recorded for `frame` (from index `before`).
    fn annotate_rx(
        &mut self,
        stack: &mut Stack,
        before: usize,
        frame: &[u8],
        took: Option<StdDuration>,
    ) {
        let position = self.geometry.and_then(|g| g.locate(frame));
        let mut nic_frame = None;
        for ev in stack.tracer().events_mut().skip(before) {
            if nic_frame.is_none() && ev.layer == Layer::Nic && ev.direction == Direction::Rx {
                nic_frame = Some(ev.frame);
                let mut note = position.map(|p| p.to_string()).unwrap_or_default();
                if let Some(t) = took {
                    if !note.is_empty() {
                        note.push_str(", ");
                    }
                    note.push_str(&format!("stack {:.1}µs", t.as_secs_f64() * 1e6));
                }
                append(&mut ev.summary, &note);
            } else if nic_frame == Some(ev.frame)
                && ev.layer == Layer::Socket
                && ev.direction == Direction::Rx
                && ev.verdict == Verdict::Deliver
            {
                if let Some(text) = payload_preview(frame) {
                    append(&mut ev.summary, &text);
                }
            }
        }
    }

    /// Adds the `Ethernet` and `Nic` events of `frame`, which the stack just wrote into a TX
    /// slot; events from `fresh_from` on were recorded while it was written.
    fn on_transmit(&mut self, stack: &mut Stack, now: Instant, fresh_from: u64, frame: &[u8]) {
        self.scan(stack);
        let Some((key, flow)) = tx_key(frame) else {
            return;
        };
        let fits =
            |p: &Pending| p.key == key && (flow.is_none() || p.flow.is_none() || p.flow == flow);
        let found = self
            .pending
            .iter()
            .rposition(|p| p.seq >= fresh_from && fits(p))
            .or_else(|| self.pending.iter().position(fits));
        // Not found: its events did not fit in the trace buffer.
        let Some(p) = found.and_then(|i| self.pending.remove(i)) else {
            return;
        };
        if p.seq >= fresh_from {
            if let Some(text) = payload_preview(frame) {
                if let Some(ev) = stack.tracer().events_mut().rev().find(|e| {
                    e.frame == p.frame && e.layer == Layer::Tcp && e.direction == Direction::Tx
                }) {
                    append(&mut ev.summary, &text);
                }
            }
        }
        let position = self.geometry.and_then(|g| g.locate(frame));
        let event = |layer, summary| TraceEvent {
            at: now,
            frame: p.frame,
            direction: Direction::Tx,
            layer,
            verdict: Verdict::Emit,
            len: frame.len(),
            copied: 0,
            summary,
            flow: p.flow.or(flow),
        };
        let tracer = stack.tracer();
        tracer.push(event(Layer::Ethernet, ethernet_summary(frame)));
        tracer.push(event(
            Layer::Nic,
            position.map(|p| p.to_string()).unwrap_or_default(),
        ));
        self.scan(stack);
    }
}

fn append(summary: &mut String, note: &str) {
    if note.is_empty() {
        return;
    }
    if !summary.is_empty() {
        summary.push_str("  ");
    }
    summary.push_str(note);
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `src > dst type 0x0800`, as the stack prints a received Ethernet header.
fn ethernet_summary(frame: &[u8]) -> String {
    if frame.len() < 14 {
        return String::new();
    }
    format!(
        "{} > {} type {:#06x}",
        mac(&frame[6..12]),
        mac(&frame[..6]),
        u16::from_be_bytes([frame[12], frame[13]])
    )
}

/// The IPv4 packet inside an Ethernet frame (padding trimmed), if it is one.
fn ipv4_packet(frame: &[u8]) -> Option<&[u8]> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    ip.get(..total).filter(|ip| ip.len() >= 20)
}

/// The flow of an IPv4 packet whose transport header it carries (first fragment only).
fn ipv4_flow(ip: &[u8]) -> Option<(Flow, &[u8])> {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let first = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
    let protocol = ip[9];
    let l4 = ip
        .get(ihl..)
        .filter(|_| first && matches!(protocol, 6 | 17))?;
    if l4.len() < 8 {
        return None;
    }
    let addr = |a: &[u8], p: &[u8]| {
        SocketAddrV4::new(
            Ipv4Addr::new(a[0], a[1], a[2], a[3]),
            u16::from_be_bytes([p[0], p[1]]),
        )
    };
    let flow = Flow {
        protocol,
        src: addr(&ip[12..16], &l4[0..2]),
        dst: addr(&ip[16..20], &l4[2..4]),
    };
    let payload = if protocol == 6 {
        let off = usize::from(l4.get(12)? >> 4) * 4;
        l4.get(off..)?
    } else {
        &l4[8..]
    };
    Some((flow, payload))
}

fn tx_key(frame: &[u8]) -> Option<(TxKey, Option<Flow>)> {
    if frame.len() >= 14 && frame[12..14] == [0x08, 0x06] {
        return Some((TxKey::Arp, None));
    }
    let ip = ipv4_packet(frame)?;
    Some((TxKey::Ipv4(ip.len()), ipv4_flow(ip).map(|(f, _)| f)))
}

/// The TCP or UDP payload of `frame`, quoted and escaped (at most [`PREVIEW`] bytes), when it is
/// text: `"GET / HTTP/1.1\r\nHost: …"`.
pub fn payload_preview(frame: &[u8]) -> Option<String> {
    let (_, payload) = ipv4_flow(ipv4_packet(frame)?)?;
    if payload.is_empty() {
        return None;
    }
    let texty = payload
        .iter()
        .filter(|&&b| (0x20..0x7f).contains(&b) || matches!(b, b'\r' | b'\n' | b'\t'))
        .count();
    if texty * 10 < payload.len() * 9 {
        return None;
    }
    let mut s = String::from("\"");
    for &b in payload.iter().take(PREVIEW) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..0x7f => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    if payload.len() > PREVIEW {
        s.push('…');
    }
    Some(s)
}

/// What one round of a driver moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Frames taken from the NIC and handed to the stack (at most [`RX_BUDGET`]).
    pub received: usize,
    /// Frames the stack handed to the NIC.
    pub sent: usize,
}

impl Round {
    /// Whether any frame moved.
    pub fn moved(self) -> bool {
        self.received > 0 || self.sent > 0
    }
}

/// One untraced round, as `Host::poll`: receive a batch, run due timers, transmit everything,
/// one kick.
fn plain_round<N: Nic + ?Sized>(
    nic: &mut N,
    stack: &mut Stack,
    now: Instant,
) -> Result<Round, NicError> {
    let received = nic.receive(now, RX_BUDGET, &mut |frame| stack.handle_frame(now, frame))?;
    if stack.poll_at().is_some_and(|t| t <= now) {
        stack.handle_timeout(now);
    }
    let mut sent = 0;
    while nic.transmit(now, &mut |slot| stack.poll_transmit(now, slot).unwrap_or(0))? > 0 {
        sent += 1;
    }
    if sent > 0 {
        nic.flush(now)?;
    }
    Ok(Round { received, sent })
}

/// A stack on a NIC — `Host` — that, when tracing, runs its rounds through a [`NicTrace`].
pub struct Driver {
    host: Host<Box<dyn Nic>>,
    trace: Option<NicTrace>,
}

impl Driver {
    /// A driver for a stack with `config` on `nic`, started at `now`.
    pub fn new(nic: Box<dyn Nic>, config: Config, now: Instant) -> Self {
        Driver {
            host: Host::new(nic, config, now),
            trace: None,
        }
    }

    /// Records up to `capacity` trace events between two drains, with the NIC's side added
    /// by `nic`.
    pub fn trace(&mut self, capacity: usize, nic: NicTrace) {
        self.host.stack().set_trace_capacity(capacity);
        self.trace = Some(nic);
    }

    /// One round (see [`NicTrace::round`]). Returns whether any frame moved.
    pub fn poll(&mut self, now: Instant) -> Result<bool, NicError> {
        self.poll_with(&|| now)
    }

    /// One round, taking the time of each step from `clock`.
    pub fn poll_with(&mut self, clock: &dyn Fn() -> Instant) -> Result<bool, NicError> {
        Ok(self.round_with(clock)?.moved())
    }

    /// One round, taking the time of each step from `clock`; tells how many frames moved
    /// each way.
    pub fn round_with(&mut self, clock: &dyn Fn() -> Instant) -> Result<Round, NicError> {
        let (nic, stack) = self.host.parts_mut();
        match &mut self.trace {
            Some(t) => t.round(&mut **nic, stack, clock),
            None => plain_round(&mut **nic, stack, clock()),
        }
    }

    /// The trace events recorded since the last drain, oldest first.
    pub fn drain_trace(&mut self) -> Vec<TraceEvent> {
        match &mut self.trace {
            Some(t) => t.drain(self.host.stack()),
            None => self.host.stack().tracer().drain().collect(),
        }
    }

    /// The earliest time this driver has something to do without new input.
    pub fn poll_at(&self) -> Option<Instant> {
        self.host.poll_at()
    }

    /// The stack.
    pub fn stack(&mut self) -> &mut Stack {
        self.host.stack()
    }

    /// The stack, read-only.
    pub fn stack_ref(&self) -> &Stack {
        self.host.stack_ref()
    }

    /// The NIC.
    pub fn nic(&self) -> &dyn Nic {
        &**self.host.nic()
    }
}

/// Prints the journey of frames as they happen (`--trace`).
struct LiveTrace {
    filter: TraceFilter,
    name: String,
    lost: u64,
}

/// A stack on a NIC, driven on wall-clock time until SIGINT/SIGTERM.
pub struct Runtime {
    driver: Driver,
    clock: SystemClock,
    stop: Arc<AtomicBool>,
    busy_poll: bool,
    live: Option<LiveTrace>,
    /// When a round last moved a frame.
    last_moved: Instant,
    /// How long to spin after a round that moved frames before sleeping (`--spin-us`; zero:
    /// sleep as soon as a round finds nothing), on a NIC whose `rx_ready` can tell (the ring).
    /// Between looks that find nothing the driver yields the CPU (`sched_yield`), so a request
    /// that follows a response within the window is taken without a wake-up (see
    /// BENCHMARKS.md, request/response).
    spin: Duration,
}

impl Runtime {
    /// Builds the stack on `nic` and installs the SIGINT/SIGTERM handlers; traces live (on
    /// standard error) if the NIC was opened with `--trace`.
    pub fn new(nic: OpenedNic, config: Config) -> Result<Runtime> {
        let clock = SystemClock::new();
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))?;
        }
        let name = nic.nic.info().name;
        let spin = Duration::from_micros(nic.spin.as_micros().min(u64::MAX as u128) as u64);
        let mut driver = Driver::new(nic.nic, config, clock.now());
        let live = nic.trace.map(|t| {
            driver.trace(LIVE_TRACE_CAPACITY, NicTrace::new(t.geometry, true));
            LiveTrace {
                filter: t.filter,
                name,
                lost: 0,
            }
        });
        Ok(Runtime {
            driver,
            clock,
            stop,
            busy_poll: false,
            live,
            last_moved: Instant::ZERO,
            spin,
        })
    }

    /// Spin instead of sleeping on the NIC's descriptor between rounds, always (`--busy-poll`):
    /// the lowest latency, a whole CPU. Between looks that find nothing the driver yields the
    /// CPU (`sched_yield`), so that a peer sharing it still runs.
    pub fn set_busy_poll(&mut self, on: bool) {
        self.busy_poll = on;
    }

    /// The stack.
    pub fn stack(&mut self) -> &mut Stack {
        self.driver.stack()
    }

    /// The NIC.
    pub fn nic(&self) -> &dyn Nic {
        self.driver.nic()
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    fn round(&mut self, now: Instant) -> Result<Round> {
        Ok(if self.live.is_some() {
            // Each step at its own time: the trace shows when each frame was handled.
            let clock = &self.clock;
            self.driver.round_with(&|| clock.now())?
        } else {
            self.driver.round_with(&|| now)?
        })
    }

    /// Prints the trace events recorded since the last call (`--trace`).
    fn print_trace(&mut self) {
        let Some(live) = &mut self.live else {
            return;
        };
        let events = self.driver.drain_trace();
        let lost = self.driver.stack().tracer().lost();
        let mut out = std::io::stderr().lock();
        for e in events.iter().filter(|e| live.filter.matches(e)) {
            let _ = writeln!(out, "{}", live.filter.render(&live.name, e));
        }
        if lost > live.lost && !live.filter.json {
            let _ = writeln!(
                out,
                "ringstack: trace: {} events not recorded (more than {LIVE_TRACE_CAPACITY} in one round)",
                lost - live.lost
            );
        }
        live.lost = lost;
    }

    /// Runs until a signal arrives or `app` returns `false`. `app(now, stack)` is called every
    /// round and returns whether it wants to go on.
    ///
    /// Each turn is a round (frames in, timers, frames out), `app`, and a second round that
    /// sends what `app` queued (and takes frames that arrived meanwhile). The driver turns
    /// again at once only when there may be input `app` has not seen: the first round used its
    /// whole receive budget, or the second one received frames. Otherwise it waits on the NIC
    /// (which, for the ring, first looks at the ring itself: no system call when a frame is
    /// already there) until a frame or the stack's next deadline.
    pub fn run(&mut self, mut app: impl FnMut(Instant, &mut Stack) -> Result<bool>) -> Result<()> {
        let result = self.run_inner(&mut app);
        self.print_trace();
        result
    }

    fn run_inner(
        &mut self,
        app: &mut impl FnMut(Instant, &mut Stack) -> Result<bool>,
    ) -> Result<()> {
        while !self.stop.load(Ordering::Relaxed) {
            let now = self.clock.now();
            let first = self.round(now)?;
            let app_now = if self.live.is_some() {
                self.clock.now()
            } else {
                now
            };
            if !app(app_now, self.driver.stack())? {
                // One last round so that what the app just queued goes out.
                let now = self.clock.now();
                self.round(now)?;
                break;
            }
            let second = self.round(now)?;
            self.print_trace();
            let moved = first.moved() || second.moved();
            if moved {
                self.last_moved = now;
            }
            if first.received >= RX_BUDGET || second.received > 0 {
                continue;
            }
            let now = self.clock.now();
            let sleep = match self.driver.poll_at() {
                Some(t) if t <= now => continue,
                Some(t) => StdDuration::from_micros((t - now).total_micros()).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            // Spin (within the window, only on a NIC that is looked at without a system call:
            // the ring) or always with --busy-poll: look again at once, but let a peer on
            // this CPU (the client of a ping-pong, say) run first if nothing moved.
            let spin = now - self.last_moved < self.spin && self.driver.nic().rx_ready().is_some();
            if self.busy_poll || spin {
                if !moved {
                    std::thread::yield_now();
                }
                continue;
            }
            if self.driver.nic().wait_fd().is_some() {
                self.driver.nic().wait_readable(sleep)?;
            } else {
                std::thread::sleep(sleep);
            }
        }
        Ok(())
    }

    /// Whether a stop signal arrived.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP frame carrying `payload`, padded to 60 bytes like a short
    /// frame on the wire.
    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[8, 0]);
        let total = (40 + payload.len()) as u16;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[23] = 6;
        f[26..30].copy_from_slice(&[198, 18, 0, 1]);
        f[30..34].copy_from_slice(&[198, 18, 0, 2]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f[46] = 5 << 4;
        f.extend_from_slice(payload);
        f.resize(f.len().max(60), 0);
        f
    }

    #[test]
    fn text_payloads_are_quoted_and_escaped() {
        let f = tcp_frame(b"GET / HTTP/1.1\r\nHost: \"x\"\r\n\r\n");
        assert_eq!(
            payload_preview(&f).as_deref(),
            Some(r#""GET / HTTP/1.1\r\nHost: \"x\"\r\n\r\n""#)
        );
        let long = tcp_frame(&[b'a'; 100]);
        let p = payload_preview(&long).unwrap();
        assert!(p.ends_with("\"…") && p.len() == PREVIEW + 2 + '…'.len_utf8());
    }

    #[test]
    fn binary_and_empty_payloads_are_not_quoted() {
        // The padding of a short frame is not payload.
        assert_eq!(payload_preview(&tcp_frame(b"")), None);
        assert_eq!(payload_preview(&tcp_frame(&[0, 1, 2, 200, 7, 9])), None);
    }

    #[test]
    fn outgoing_frames_are_keyed_by_kind_length_and_flow() {
        let (key, flow) = tx_key(&tcp_frame(b"hi")).unwrap();
        assert_eq!(key, TxKey::Ipv4(42));
        let flow = flow.unwrap();
        assert_eq!(flow.src, "198.18.0.1:40000".parse().unwrap());
        assert_eq!(flow.dst, "198.18.0.2:80".parse().unwrap());
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[8, 6]);
        assert_eq!(tx_key(&arp), Some((TxKey::Arp, None)));
        assert_eq!(
            ethernet_summary(&arp[..14]),
            "00:00:00:00:00:00 > 00:00:00:00:00:00 type 0x0806"
        );
    }
}
