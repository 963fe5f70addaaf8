//! TCP (RFC 9293), sans-IO.
//!
//! [`TcpLayer`] owns every TCP socket of a stack: listeners and connections in a generational
//! slot map addressed by [`TcpHandle`], an exact four-tuple table and a listener table (both
//! seeded `foldhash` maps), a timer set ordered by deadline, and a queue of sockets that may have
//! something to send.
//!
//! # Call order (quinn-proto style)
//! - ingress: [`TcpLayer::handle_segment`] for every TCP segment addressed to us (the IPv4
//!   header is already validated and stripped; `segment` is TCP header + payload);
//!   [`TcpLayer::handle_icmp_error`] for ICMP errors quoting one of our segments;
//! - timers: [`TcpLayer::handle_timeout`] whenever `now >= poll_at()`;
//! - egress: [`TcpLayer::poll_transmit`] repeatedly until it returns `None` (after any of the
//!   other calls, including the application calls);
//! - the application API (`listen`/`listen_with`, `connect`/`connect_with`, `accept`, `send`,
//!   `recv`, their in-place forms `send_with`/`recv_with` (zero-copy: the closure borrows the
//!   socket's ring), `shutdown`, `close`, `abort`, setters and `info`) at any time; readiness
//!   changes are pushed to the `Cx`'s [`crate::socket::ReadinessQueue`]. Every API call may queue
//!   segments, so the driver polls `poll_transmit` (and re-reads `poll_at`) after it.
//!
//! A handle stays valid until the application calls [`TcpLayer::close`] (or [`TcpLayer::abort`])
//! *and* the connection is gone (after FIN exchange / TIME-WAIT); a connection that dies on its
//! own (RST, timeout) keeps its handle, reporting the error, until closed.
//!
//! # Files
//! `seq` (sequence arithmetic), `segment`/`options` (wire format), `state`, `connection` (TCB
//! and arrival processing), `output` (what to send), `user` (application calls), `timers`,
//! `listener` (passive open, SYN cookies in `syn_cookie`), `send_buffer`/`recv_buffer`/
//! `reassembly` (data), `sack` (scoreboard), `rack` (RACK-TLP loss detection and the
//! per-segment transmit records), `rtt`, `congestion/*`, `isn`, `ports`, `reset`, `info`.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::{BTreeSet, HashMap, VecDeque};

use foldhash::fast::FixedState;
use slotmap::SlotMap;

use crate::counters::{Counter, DropReason};
use crate::cx::Cx;
use crate::socket::{Readiness, TcpHandle};
use crate::time::{Duration, Instant};
use crate::trace::{Direction, Layer, Verdict};

pub mod congestion;
mod connection;
pub mod info;
pub mod isn;
mod listener;
pub mod options;
mod output;
pub mod ports;
pub mod rack;
pub mod reassembly;
pub mod recv_buffer;
pub mod reset;
pub mod ring;
pub mod rtt;
pub mod sack;
pub mod segment;
pub mod send_buffer;
pub mod seq;
pub mod state;
pub mod syn_cookie;
pub mod timers;
mod user;

#[cfg(test)]
mod tests;

pub use congestion::Algorithm;
pub use info::TcpInfo;
pub use seq::SeqNum;
pub use state::State;

use connection::{Env, Tcb};
use isn::Secret;
use listener::{CookieSynAck, Listener};
use ports::PortAllocator;
use reset::{ChallengeLimiter, RstQueue, RstSpec};
use segment::{fill_checksum, Flags, Segment, SegmentHeader};

/// TCP tunables. Defaults follow Linux where it has one.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// IP MTU of the link; the advertised MSS is `mtu - 40`.
    pub mtu: usize,
    /// Seed for the ISN secret (RFC 6528) and ephemeral port choice (RFC 6056).
    pub seed: u64,
    /// Receive buffer size per connection, bytes.
    pub rcv_buf: usize,
    /// Send buffer size per connection, bytes.
    pub snd_buf: usize,
    /// Buffer memory pressure threshold, bytes (Linux's `tcp_mem[1]`): while the send/receive
    /// buffer storage of all connections together exceeds it, every buffer that drains gives
    /// its storage back (counted in `TcpBufReleases`); below it drained buffers keep theirs for
    /// reuse. Storage grows with the bytes held (`ring.rs`), so this bounds what idle
    /// connections hold, never what a window promised. `TcpBufMemory` is the total in use.
    pub buffer_pressure: usize,
    /// Lower bound on the retransmission timeout (RFC 6298 says 1 s; Linux uses 200 ms).
    pub min_rto: Duration,
    /// TIME-WAIT duration (2*MSL).
    pub time_wait: Duration,
    /// Upper bound on the retransmission timeout (Linux: 120 s).
    pub max_rto: Duration,
    /// RTO before any RTT sample (RFC 6298 §2.1: 1 s).
    pub initial_rto: Duration,
    /// Delayed ACK timeout (RFC 9293 §3.8.6.3: under 0.5 s; Linux's minimum is 40 ms).
    pub delayed_ack: Duration,
    /// SYN retransmissions before `connect` fails with `TimedOut` (Linux `tcp_syn_retries`).
    pub syn_retries: u32,
    /// SYN-ACK retransmissions before a half-open connection is dropped.
    pub synack_retries: u32,
    /// Data retransmissions before the connection is aborted (Linux `tcp_retries2`).
    pub max_retries: u32,
    /// How long an orphaned (closed by the application) connection may sit in FIN-WAIT-2.
    pub fin_timeout: Duration,
    /// Offer window scaling (RFC 7323 §2).
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323 §3).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Answer SYNs with SYN cookies when a listener's SYN backlog is full (RFC 4987 §3.6).
    pub syn_cookies: bool,
    /// Half-open connections per listener before SYN cookies (or drops) take over.
    pub syn_backlog: usize,
    /// Initial congestion window, segments (RFC 6928: 10).
    pub initial_window: u32,
    /// Congestion control algorithm of new connections.
    pub congestion: Algorithm,
    /// Disable Nagle's algorithm on new connections (`TCP_NODELAY`).
    pub nodelay: bool,
    /// Idle time before the first keepalive probe (RFC 1122 §4.2.3.6: at least 2 hours).
    pub keepalive_idle: Duration,
    /// Interval between keepalive probes.
    pub keepalive_interval: Duration,
    /// Unanswered keepalive probes before the connection is aborted.
    pub keepalive_probes: u32,
    /// Most sockets (listeners + connections) at once.
    pub max_sockets: usize,
    /// Stack-wide challenge ACKs per second on average (RFC 5961 §7), on top of the fixed
    /// per-connection limit of one per 500 ms (Linux's `tcp_invalid_ratelimit`). The budget
    /// is randomized each second to `limit/2 + rand(limit)` as Linux 4.7+ does, since a fixed
    /// one is the CVE-2016-5696 side channel. Default [`u32::MAX`]: no stack-wide limit (Linux
    /// ≥ 6.0's default).
    pub challenge_ack_limit: u32,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mtu: 1500,
            seed: 0,
            rcv_buf: 256 * 1024,
            snd_buf: 256 * 1024,
            buffer_pressure: 64 * 1024 * 1024,
            min_rto: Duration::from_millis(200),
            time_wait: Duration::from_secs(60),
            max_rto: Duration::from_secs(120),
            initial_rto: Duration::from_secs(1),
            delayed_ack: Duration::from_millis(40),
            syn_retries: 6,
            synack_retries: 5,
            max_retries: 15,
            fin_timeout: Duration::from_secs(60),
            window_scaling: true,
            timestamps: true,
            sack: true,
            syn_cookies: true,
            syn_backlog: 256,
            initial_window: 10,
            congestion: Algorithm::Cubic,
            nodelay: false,
            keepalive_idle: Duration::from_secs(7200),
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            max_sockets: 65536,
            challenge_ack_limit: reset::NO_GLOBAL_CHALLENGE_LIMIT,
        }
    }
}

/// Per-socket options applied when a connection is created (`SO_RCVBUF`, `SO_SNDBUF`,
/// `TCP_NODELAY`, `SO_KEEPALIVE`, `TCP_USER_TIMEOUT`, `TCP_CONGESTION`). `None` keeps the
/// [`TcpConfig`] default. Given to [`TcpLayer::connect_with`] or [`TcpLayer::listen_with`] (then
/// every accepted connection inherits them), because buffer sizes fix the window scale offered
/// in the SYN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// Receive buffer, bytes.
    pub rcv_buf: Option<usize>,
    /// Send buffer, bytes.
    pub snd_buf: Option<usize>,
    /// Disable Nagle's algorithm.
    pub nodelay: Option<bool>,
    /// Enable keepalive probes.
    pub keepalive: Option<bool>,
    /// Abort when data stays unacknowledged this long (RFC 5482).
    pub user_timeout: Option<Duration>,
    /// Congestion control algorithm.
    pub congestion: Option<Algorithm>,
}

/// Errors of the TCP application API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    /// The operation would block (EAGAIN).
    #[error("operation would block")]
    WouldBlock,
    /// No such socket (closed, or a stale handle).
    #[error("no such TCP socket")]
    InvalidHandle,
    /// The local address is already in use.
    #[error("address already in use")]
    AddrInUse,
    /// The operation is not valid in the socket's state.
    #[error("socket is not in a state that allows this operation")]
    InvalidState,
    /// Not connected.
    #[error("socket is not connected")]
    NotConnected,
    /// The peer refused the connection (RST in reply to SYN).
    #[error("connection refused")]
    ConnectionRefused,
    /// The connection was reset.
    #[error("connection reset by peer")]
    ConnectionReset,
    /// The connection timed out.
    #[error("connection timed out")]
    TimedOut,
    /// Writing after shutdown of the write side.
    #[error("broken pipe: the sending side is shut down")]
    BrokenPipe,
    /// No ephemeral port available.
    #[error("no ephemeral port available")]
    NoPorts,
}

/// A TCP segment ready to be wrapped in IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpTransmit {
    /// IPv4 source address.
    pub src: Ipv4Addr,
    /// IPv4 destination address.
    pub dst: Ipv4Addr,
    /// Bytes of TCP header + payload written into the buffer (checksum filled in).
    pub len: usize,
}

/// A listener or a connection. Both boxed, so that a socket slot is a pointer, not the size
/// of a listener, times every connection.
#[derive(Debug)]
enum Socket {
    Listener(Box<Listener>),
    Conn(Box<Tcb>),
}

type Tuple = (SocketAddrV4, SocketAddrV4);

/// The TCP layer: every TCP socket of a stack, its demux tables and timers. See the
/// [module documentation](self) for the call order.
#[derive(Debug)]
pub struct TcpLayer {
    config: TcpConfig,
    sockets: SlotMap<TcpHandle, Socket>,
    /// Exact four-tuple (local, remote) → connection.
    conns: HashMap<Tuple, TcpHandle, FixedState>,
    /// Local address (possibly 0.0.0.0) → listener.
    listeners: HashMap<SocketAddrV4, TcpHandle, FixedState>,
    /// Deadlines, earliest first.
    timers: BTreeSet<(Instant, TcpHandle)>,
    /// Connections that may have something to send.
    tx_queue: VecDeque<TcpHandle>,
    rsts: RstQueue,
    cookies: VecDeque<CookieSynAck>,
    challenge: ChallengeLimiter,
    isn_secret: Secret,
    ts_secret: Secret,
    cookie_secret: Secret,
    ports: PortAllocator,
    /// Storage of every connection's buffers.
    buffers: ring::BufferMemory,
}

impl TcpLayer {
    /// A TCP layer with no sockets.
    pub fn new(config: TcpConfig) -> Self {
        let seed = config.seed;
        TcpLayer {
            sockets: SlotMap::with_key(),
            conns: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x7463_7034)),
            listeners: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x6c69_7374)),
            timers: BTreeSet::new(),
            tx_queue: VecDeque::new(),
            rsts: RstQueue::default(),
            cookies: VecDeque::new(),
            challenge: ChallengeLimiter::new(config.challenge_ack_limit, seed),
            isn_secret: Secret::new(seed, 1),
            ts_secret: Secret::new(seed, 2),
            cookie_secret: Secret::new(seed, 3),
            ports: PortAllocator::new(seed),
            buffers: ring::BufferMemory::new(config.buffer_pressure),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    // ------------------------------------------------------------------ ingress

    /// RFC 9293 §3.10.7: processes one arriving segment (`segment` = TCP header + data).
    pub fn handle_segment(
        &mut self,
        cx: &mut Cx<'_>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        segment: &[u8],
    ) {
        cx.inc(Counter::TcpInSegs);
        let len = segment.len();
        let seg = match Segment::parse(src, dst, segment) {
            Ok(s) => s,
            Err(e) => {
                if e == segment::ParseError::BadChecksum {
                    cx.inc(Counter::TcpInCsumErrors);
                }
                cx.inc(Counter::TcpInErrs);
                cx.drop(Direction::Rx, Layer::Tcp, e.drop_reason(), len, || {
                    format!("{src} > {dst} {e:?}")
                });
                return;
            }
        };
        let local = SocketAddrV4::new(dst, seg.hdr.dst_port);
        let remote = SocketAddrV4::new(src, seg.hdr.src_port);
        let plen = seg.payload.len();

        if let Some(&h) = self.conns.get(&(local, remote)) {
            if self.time_wait_reuse(cx, h, &seg) {
                // Fall through to the listener: a new incarnation (RFC 9293 §3.10.7.4 note,
                // RFC 6191).
            } else {
                self.conn_segment(cx, h, &seg);
                return;
            }
        }
        let lh = self
            .listeners
            .get(&local)
            .or_else(|| {
                self.listeners
                    .get(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local.port()))
            })
            .copied();
        if let Some(lh) = lh {
            self.listener_segment(cx, lh, local, remote, &seg);
            return;
        }
        // RFC 9293 §3.10.7.1: CLOSED. Never answer a RST.
        if seg.hdr.flags.has(Flags::RST) {
            cx.drop(
                Direction::Rx,
                Layer::Tcp,
                DropReason::TcpNoSocket,
                len,
                || seg.hdr.summary(plen),
            );
            return;
        }
        cx.drop(
            Direction::Rx,
            Layer::Tcp,
            DropReason::TcpNoSocket,
            len,
            || seg.hdr.summary(plen),
        );
        if self.rsts.push(RstSpec::reply_to(local, remote, &seg)) {
            cx.inc(Counter::TcpOutRsts);
        }
    }

    /// A SYN for a connection in TIME-WAIT with a higher sequence number (or newer timestamp)
    /// ends the TIME-WAIT so that a new connection can start. Returns true if it did.
    fn time_wait_reuse(&mut self, cx: &mut Cx<'_>, h: TcpHandle, seg: &Segment<'_>) -> bool {
        let Some(Socket::Conn(tcb)) = self.sockets.get_mut(h) else {
            return false;
        };
        if tcb.state != State::TimeWait
            || !seg.hdr.flags.has(Flags::SYN)
            || seg.hdr.flags.has(Flags::ACK)
        {
            return false;
        }
        let newer_ts = match (tcb.ts_enabled, seg.hdr.options.timestamps) {
            (true, Some((val, _))) => (val.wrapping_sub(tcb.ts_recent) as i32) > 0,
            _ => false,
        };
        if !(seg.hdr.seq > tcb.rcv_nxt || newer_ts) {
            return false;
        }
        cx.inc(Counter::TcpExtTW);
        tcb.set_state(cx, State::Closed);
        self.settle(cx, h);
        true
    }

    fn conn_segment(&mut self, cx: &mut Cx<'_>, h: TcpHandle, seg: &Segment<'_>) {
        let plen = seg.payload.len();
        let Some(Socket::Conn(tcb)) = self.sockets.get_mut(h) else {
            return;
        };
        // A completing handshake needs room in the listener's accept queue; otherwise drop the
        // ACK and let the SYN-ACK be retransmitted (Linux's behaviour).
        if tcb.state == State::SynReceived
            && seg.hdr.flags.has(Flags::ACK)
            && !seg.hdr.flags.has(Flags::RST)
        {
            if let Some(Socket::Listener(l)) = tcb.parent.and_then(|p| self.sockets.get(p)) {
                if l.accept_queue.len() >= l.backlog {
                    cx.inc(Counter::TcpExtListenOverflows);
                    cx.drop(
                        Direction::Rx,
                        Layer::Tcp,
                        DropReason::TcpAcceptQueueFull,
                        plen,
                        || seg.hdr.summary(plen),
                    );
                    return;
                }
            }
        }
        let Some(Socket::Conn(tcb)) = self.sockets.get_mut(h) else {
            return;
        };
        cx.trace(Direction::Rx, Layer::Tcp, Verdict::Pass, plen, 0, || {
            format!("{} {}", seg.hdr.summary(plen), tcb.state.ss_name())
        });
        let mut env = Env {
            cx,
            cfg: &self.config,
            rsts: &mut self.rsts,
            challenge: &mut self.challenge,
        };
        let out = tcb.on_segment(&mut env, seg);
        if out.established {
            self.child_established(cx, h);
        }
        self.settle(cx, h);
    }

    /// An ICMP error (RFC 1122 §4.2.3.9) quoting a segment we sent from `local` to `remote` with
    /// sequence number `seq`. `hard` errors (port/protocol unreachable) abort a connection in
    /// SYN-SENT; `mtu` is set for "fragmentation needed" (RFC 1191) and lowers the MSS.
    pub fn handle_icmp_error(
        &mut self,
        cx: &mut Cx<'_>,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seq: u32,
        hard: bool,
        mtu: Option<u16>,
    ) {
        let Some(&h) = self.conns.get(&(local, remote)) else {
            cx.drop(
                Direction::Rx,
                Layer::Tcp,
                DropReason::TcpNoSocket,
                0,
                || format!("ICMP error for {local} > {remote}"),
            );
            return;
        };
        let Some(Socket::Conn(tcb)) = self.sockets.get_mut(h) else {
            return;
        };
        // RFC 5927 §4.1: the quoted sequence number must be in flight.
        let seq = SeqNum(seq);
        if !(tcb.snd_una <= seq && seq <= tcb.snd_max) {
            cx.drop(Direction::Rx, Layer::Tcp, DropReason::TcpBadAck, 0, || {
                format!("ICMP error quoting seq {seq} out of window")
            });
            return;
        }
        if let Some(mtu) = mtu {
            let mss = (mtu as usize).saturating_sub(40).clamp(88, 65535) as u16;
            if mss < tcb.pmtu_mss {
                tcb.pmtu_mss = mss;
                // Retransmit what is in flight in smaller segments (no congestion response):
                // with SACK by marking it lost (the records split as it is resent), without by
                // going back to SND.UNA.
                if tcb.state.is_synchronized() {
                    if tcb.sack_enabled {
                        tcb.sent.mark_all_lost();
                        // Not a congestion signal: no recovery (and no cwnd reduction) for
                        // what was in flight.
                        tcb.recover = tcb.snd_max;
                    } else {
                        tcb.snd_nxt = tcb.snd_una;
                    }
                }
            }
        } else if hard && tcb.state == State::SynSent {
            cx.inc(Counter::TcpAttemptFails);
            tcb.fail(cx, TcpError::ConnectionRefused);
        }
        self.settle(cx, h);
    }

    // ------------------------------------------------------------------ timers

    /// Runs expired timers.
    pub fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        while let Some(&(t, h)) = self.timers.first() {
            if t > cx.now {
                break;
            }
            self.timers.pop_first();
            let Some(Socket::Conn(tcb)) = self.sockets.get_mut(h) else {
                continue;
            };
            tcb.timer_key = None;
            let mut env = Env {
                cx,
                cfg: &self.config,
                rsts: &mut self.rsts,
                challenge: &mut self.challenge,
            };
            tcb.on_timers(&mut env);
            self.settle(cx, h);
        }
    }

    /// The earliest time a timer needs [`TcpLayer::handle_timeout`].
    pub fn poll_at(&self) -> Option<Instant> {
        self.timers.first().map(|&(t, _)| t)
    }

    // ------------------------------------------------------------------ egress

    /// Writes the next segment to send into `buf` (at most `buf.len()` bytes; pass the room left
    /// after the IPv4 header, e.g. MTU - 20). Call until it returns `None`.
    pub fn poll_transmit(&mut self, cx: &mut Cx<'_>, buf: &mut [u8]) -> Option<TcpTransmit> {
        if buf.len() < segment::HEADER_LEN + 44 {
            return None;
        }
        if let Some(rst) = self.rsts.pop() {
            return Some(emit_rst(cx, &rst, buf));
        }
        if let Some(c) = self.cookies.pop_front() {
            return Some(listener::emit_cookie_syn_ack(cx, &c, buf));
        }
        while let Some(h) = self.tx_queue.pop_front() {
            let Some(Socket::Conn(tcb)) = self.sockets.get_mut(h) else {
                continue;
            };
            tcb.in_tx_queue = false;
            let mut env = Env {
                cx,
                cfg: &self.config,
                rsts: &mut self.rsts,
                challenge: &mut self.challenge,
            };
            let sent = tcb.poll_segment(&mut env, buf);
            let (src, dst) = (*tcb.local.ip(), *tcb.remote.ip());
            if sent.is_some() {
                tcb.in_tx_queue = true;
                self.tx_queue.push_back(h);
            }
            self.reschedule(h);
            if let Some(len) = sent {
                return Some(TcpTransmit { src, dst, len });
            }
        }
        None
    }

    // ------------------------------------------------------------------ bookkeeping

    /// After anything happened to connection `h`: refile its timer, queue it for transmission,
    /// and drop it from the tables once it is closed (and no one holds the handle).
    fn settle(&mut self, cx: &mut Cx<'_>, h: TcpHandle) {
        self.reschedule(h);
        let Some(Socket::Conn(tcb)) = self.sockets.get_mut(h) else {
            return;
        };
        tcb.settle_buffers(&mut self.buffers, cx);
        if tcb.state != State::Closed {
            if !tcb.in_tx_queue {
                tcb.in_tx_queue = true;
                self.tx_queue.push_back(h);
            }
            return;
        }
        let key = (tcb.local, tcb.remote);
        if self.conns.get(&key) == Some(&h) {
            self.conns.remove(&key);
        }
        let half_open_child = tcb.parent.is_some() && !tcb.in_accept_queue;
        if tcb.app_closed || half_open_child {
            let (parent, timer_key) = (tcb.parent, tcb.timer_key);
            if half_open_child {
                if let Some(Socket::Listener(l)) = parent.and_then(|p| self.sockets.get_mut(p)) {
                    l.syn_queue_len = l.syn_queue_len.saturating_sub(1);
                }
            }
            if let Some(t) = timer_key {
                self.timers.remove(&(t, h));
            }
            if let Some(Socket::Conn(t)) = self.sockets.remove(h) {
                t.forget_buffers(&mut self.buffers, cx);
            }
            cx.notify(h);
        }
    }

    /// Files connection `h` under its earliest deadline.
    fn reschedule(&mut self, h: TcpHandle) {
        let Some(Socket::Conn(tcb)) = self.sockets.get_mut(h) else {
            return;
        };
        let next = if tcb.state == State::Closed {
            None
        } else {
            tcb.timers.next()
        };
        if timers::needs_refile(next, tcb.timer_key) {
            if let Some(old) = tcb.timer_key {
                self.timers.remove(&(old, h));
            }
            if let Some(n) = next {
                self.timers.insert((n, h));
            }
            tcb.timer_key = next;
        }
    }

    fn env_tcb<'a, 'c>(
        &'a mut self,
        cx: &'a mut Cx<'c>,
        h: TcpHandle,
    ) -> Result<(Env<'a, 'c>, &'a mut Tcb), TcpError> {
        match self.sockets.get_mut(h) {
            Some(Socket::Conn(tcb)) => Ok((
                Env {
                    cx,
                    cfg: &self.config,
                    rsts: &mut self.rsts,
                    challenge: &mut self.challenge,
                },
                tcb,
            )),
            Some(Socket::Listener(_)) => Err(TcpError::InvalidState),
            None => Err(TcpError::InvalidHandle),
        }
    }

    fn tcb(&self, h: TcpHandle) -> Option<&Tcb> {
        match self.sockets.get(h) {
            Some(Socket::Conn(t)) => Some(t),
            _ => None,
        }
    }

    fn tcb_mut(&mut self, h: TcpHandle) -> Result<&mut Tcb, TcpError> {
        match self.sockets.get_mut(h) {
            Some(Socket::Conn(t)) => Ok(t),
            Some(Socket::Listener(_)) => Err(TcpError::InvalidState),
            None => Err(TcpError::InvalidHandle),
        }
    }

    // ------------------------------------------------------------------ application API

    /// Opens a listener on `local` (port must be non-zero; address 0.0.0.0 accepts on every
    /// address) with an accept queue of `backlog` connections.
    pub fn listen(&mut self, local: SocketAddrV4, backlog: usize) -> Result<TcpHandle, TcpError> {
        self.listen_with(local, backlog, SocketOptions::default())
    }

    /// [`TcpLayer::listen`] with options inherited by every accepted connection.
    pub fn listen_with(
        &mut self,
        local: SocketAddrV4,
        backlog: usize,
        options: SocketOptions,
    ) -> Result<TcpHandle, TcpError> {
        if local.port() == 0 {
            return Err(TcpError::InvalidState);
        }
        if self.listeners.contains_key(&local) {
            return Err(TcpError::AddrInUse);
        }
        if self.sockets.len() >= self.config.max_sockets {
            return Err(TcpError::NoPorts);
        }
        let h = self.sockets.insert(Socket::Listener(Box::new(Listener::new(
            local,
            backlog.max(1),
            self.config.syn_backlog,
            options,
        ))));
        self.listeners.insert(local, h);
        Ok(h)
    }

    /// Starts an active open from `local` (port 0 picks an ephemeral port, RFC 6056) to
    /// `remote`. The socket becomes writable once ESTABLISHED; failure shows as ERROR readiness
    /// and `recv`/`send` return the error (`ConnectionRefused`, `TimedOut`).
    pub fn connect(
        &mut self,
        cx: &mut Cx<'_>,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> Result<TcpHandle, TcpError> {
        self.connect_with(cx, local, remote, SocketOptions::default())
    }

    /// [`TcpLayer::connect`] with per-socket options.
    pub fn connect_with(
        &mut self,
        cx: &mut Cx<'_>,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        options: SocketOptions,
    ) -> Result<TcpHandle, TcpError> {
        if remote.port() == 0 || remote.ip().is_unspecified() || local.ip().is_unspecified() {
            return Err(TcpError::InvalidState);
        }
        if self.sockets.len() >= self.config.max_sockets {
            return Err(TcpError::NoPorts);
        }
        let local = if local.port() == 0 {
            let conns = &self.conns;
            let listeners = &self.listeners;
            let port = self
                .ports
                .pick(local, remote, |p| {
                    let l = SocketAddrV4::new(*local.ip(), p);
                    conns.contains_key(&(l, remote))
                        || listeners.contains_key(&l)
                        || listeners.contains_key(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, p))
                })
                .ok_or(TcpError::NoPorts)?;
            SocketAddrV4::new(*local.ip(), port)
        } else {
            if self.conns.contains_key(&(local, remote)) {
                return Err(TcpError::AddrInUse);
            }
            local
        };
        let iss = isn::initial_sequence_number(&self.isn_secret, local, remote, cx.now);
        let ts_offset = self.ts_secret.hash_tuple(local, remote, 0) as u32;
        let cfg = &self.config;
        let now = cx.now;
        let h = self.sockets.insert_with_key(|h| {
            let mut t = Tcb::new(h, cfg, local, remote, iss, ts_offset, now);
            t.apply_socket_options(cfg, &options, now);
            t.state = State::SynSent;
            Socket::Conn(Box::new(t))
        });
        self.conns.insert((local, remote), h);
        cx.inc(Counter::TcpActiveOpens);
        self.settle(cx, h);
        Ok(h)
    }

    /// Takes an established connection from a listener's accept queue (`WouldBlock` if empty).
    pub fn accept(&mut self, listener: TcpHandle) -> Result<TcpHandle, TcpError> {
        let h = match self.sockets.get_mut(listener) {
            Some(Socket::Listener(l)) => l.accept_queue.pop_front().ok_or(TcpError::WouldBlock)?,
            Some(Socket::Conn(_)) => return Err(TcpError::InvalidState),
            None => return Err(TcpError::InvalidHandle),
        };
        if let Some(Socket::Conn(t)) = self.sockets.get_mut(h) {
            t.parent = None;
            t.in_accept_queue = false;
        }
        Ok(h)
    }

    /// Copies as much of `data` as fits into the send buffer; returns how much (`WouldBlock`
    /// when full). Data written during the handshake is sent once ESTABLISHED.
    pub fn send(&mut self, cx: &mut Cx<'_>, h: TcpHandle, data: &[u8]) -> Result<usize, TcpError> {
        let (mut env, tcb) = self.env_tcb(cx, h)?;
        let r = tcb.send(&mut env, data);
        self.settle(cx, h);
        r
    }

    /// Reads received bytes; `Ok(0)` means the peer closed (end of stream); `WouldBlock` when
    /// nothing is buffered yet; the connection's error once it failed.
    pub fn recv(
        &mut self,
        cx: &mut Cx<'_>,
        h: TcpHandle,
        buf: &mut [u8],
    ) -> Result<usize, TcpError> {
        let (mut env, tcb) = self.env_tcb(cx, h)?;
        let r = tcb.recv(&mut env, buf);
        self.settle(cx, h);
        r
    }

    /// Zero-copy [`TcpLayer::send`]: lends `f` the contiguous free space of the send buffer —
    /// only the first part of it when the free space wraps around the end of the ring, and only
    /// the ring's storage (4 KiB at first, doubled each time a call finds it full, up to the
    /// capacity), so one call may offer less than [`TcpLayer::send_space`] — and queues the first `f(..)` bytes
    /// of it (`f` returns how many it wrote; more than it was lent counts as all of it). The
    /// lent bytes are stale until written. Errors as `send`; `WouldBlock` (without calling `f`)
    /// when the buffer is full. Output is triggered as by `send`.
    pub fn send_with(
        &mut self,
        cx: &mut Cx<'_>,
        h: TcpHandle,
        f: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, TcpError> {
        let (mut env, tcb) = self.env_tcb(cx, h)?;
        let r = tcb.send_with(&mut env, f);
        self.settle(cx, h);
        r
    }

    /// Zero-copy [`TcpLayer::recv`]: lends `f` the contiguous readable bytes of the receive
    /// buffer — only the first part when they wrap around the end of the ring, so one call may
    /// offer less than [`TcpLayer::recv_queue`]: call again for the rest — and consumes the
    /// first `f(..)` of them (`f` returns how many it used; more than it was lent counts as
    /// all of it), then sends a window update exactly as `recv` does. `f` is called only when
    /// bytes are readable (then `Ok(n)` is what it consumed, possibly 0); otherwise the result is
    /// `recv`'s: `Ok(0)` at end of stream, `WouldBlock`, or the connection's error.
    pub fn recv_with(
        &mut self,
        cx: &mut Cx<'_>,
        h: TcpHandle,
        f: impl FnOnce(&[u8]) -> usize,
    ) -> Result<usize, TcpError> {
        let (mut env, tcb) = self.env_tcb(cx, h)?;
        let r = tcb.recv_with(&mut env, f);
        self.settle(cx, h);
        r
    }

    /// Shuts down the sending side (FIN after queued data).
    pub fn shutdown(&mut self, cx: &mut Cx<'_>, h: TcpHandle) -> Result<(), TcpError> {
        let (mut env, tcb) = self.env_tcb(cx, h)?;
        let r = tcb.shutdown(&mut env);
        self.settle(cx, h);
        r
    }

    /// Closes the socket: FIN (or RST if unread data remains); the handle becomes invalid once the
    /// connection is gone. Closing a listener resets its unaccepted connections.
    pub fn close(&mut self, cx: &mut Cx<'_>, h: TcpHandle) -> Result<(), TcpError> {
        if let Some(Socket::Listener(_)) = self.sockets.get(h) {
            self.close_listener(cx, h);
            return Ok(());
        }
        let (mut env, tcb) = self.env_tcb(cx, h)?;
        tcb.close(&mut env);
        self.settle(cx, h);
        Ok(())
    }

    /// Aborts with RST (RFC 9293 §3.10.5); the handle becomes invalid.
    pub fn abort(&mut self, cx: &mut Cx<'_>, h: TcpHandle) -> Result<(), TcpError> {
        if let Some(Socket::Listener(_)) = self.sockets.get(h) {
            self.close_listener(cx, h);
            return Ok(());
        }
        let (mut env, tcb) = self.env_tcb(cx, h)?;
        tcb.app_closed = true;
        tcb.abort(&mut env);
        self.settle(cx, h);
        Ok(())
    }

    /// What the socket is ready for (epoll semantics: a listener is READABLE when its accept
    /// queue is non-empty; a connection is WRITABLE once ESTABLISHED with send-buffer room,
    /// READABLE with data or at end of stream, ERROR after RST/timeout).
    pub fn readiness(&self, h: TcpHandle) -> Readiness {
        match self.sockets.get(h) {
            Some(Socket::Listener(l)) if !l.accept_queue.is_empty() => Readiness::READABLE,
            Some(Socket::Listener(_)) => Readiness::NONE,
            Some(Socket::Conn(t)) => t.readiness(),
            None => Readiness::NONE,
        }
    }

    /// The socket's state (`None` for a stale handle).
    pub fn state(&self, h: TcpHandle) -> Option<State> {
        match self.sockets.get(h)? {
            Socket::Listener(_) => Some(State::Listen),
            Socket::Conn(t) => Some(t.state),
        }
    }

    /// A snapshot like `ss -ti`.
    pub fn info(&self, h: TcpHandle) -> Option<TcpInfo> {
        match self.sockets.get(h)? {
            Socket::Listener(l) => {
                Some(TcpInfo::listener(l.local, l.accept_queue.len(), l.backlog))
            }
            Socket::Conn(t) => Some(TcpInfo::from_tcb(t)),
        }
    }

    /// Every socket handle (listeners and connections), for `ss`-like listings.
    pub fn handles(&self) -> impl Iterator<Item = TcpHandle> + '_ {
        self.sockets.keys()
    }

    /// Bytes of send/receive buffer storage held by all connections (the `TcpBufMemory` gauge).
    pub fn buffer_memory(&self) -> usize {
        self.buffers.in_use()
    }

    /// Number of sockets (listeners + connections, including TIME-WAIT and half-open ones).
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    /// Our address of the socket.
    pub fn local_addr(&self, h: TcpHandle) -> Option<SocketAddrV4> {
        match self.sockets.get(h)? {
            Socket::Listener(l) => Some(l.local),
            Socket::Conn(t) => Some(t.local),
        }
    }

    /// The peer's address (`None` for a listener).
    pub fn peer_addr(&self, h: TcpHandle) -> Option<SocketAddrV4> {
        self.tcb(h).map(|t| t.remote)
    }

    /// Takes the pending error (`SO_ERROR`); the socket keeps reporting closed afterwards.
    pub fn take_error(&mut self, h: TcpHandle) -> Option<TcpError> {
        self.tcb_mut(h).ok()?.error.take()
    }

    /// Bytes readable right now.
    pub fn recv_queue(&self, h: TcpHandle) -> usize {
        self.tcb(h).map_or(0, |t| t.rcv_buf.len())
    }

    /// Free space in the send buffer.
    pub fn send_space(&self, h: TcpHandle) -> usize {
        self.tcb(h).map_or(0, |t| t.snd_buf.free())
    }

    /// `TCP_NODELAY`: disables Nagle's algorithm.
    pub fn set_nodelay(&mut self, h: TcpHandle, nodelay: bool) -> Result<(), TcpError> {
        self.tcb_mut(h)?.nodelay = nodelay;
        self.wake(h);
        Ok(())
    }

    /// `SO_KEEPALIVE` (RFC 1122 §4.2.3.6) with the configured idle/interval/probes.
    pub fn set_keepalive(
        &mut self,
        cx: &mut Cx<'_>,
        h: TcpHandle,
        on: bool,
    ) -> Result<(), TcpError> {
        let idle = self.config.keepalive_idle;
        let t = self.tcb_mut(h)?;
        t.keepalive = on;
        t.keepalive_probes = 0;
        t.timers.keepalive = on.then(|| cx.now + idle);
        self.settle(cx, h);
        Ok(())
    }

    /// `TCP_USER_TIMEOUT` (RFC 9293 §3.8.4, RFC 5482): abort when sent data stays
    /// unacknowledged this long.
    pub fn set_user_timeout(
        &mut self,
        h: TcpHandle,
        timeout: Option<Duration>,
    ) -> Result<(), TcpError> {
        self.tcb_mut(h)?.user_timeout = timeout;
        Ok(())
    }

    /// `SO_RCVBUF`: only before the SYN is sent (the window scale is chosen from it), i.e. right
    /// after `connect` and before the next `poll_transmit`; prefer [`TcpLayer::connect_with`].
    pub fn set_recv_buffer(&mut self, h: TcpHandle, bytes: usize) -> Result<(), TcpError> {
        let ws = self.config.window_scaling;
        let t = self.tcb_mut(h)?;
        if t.state != State::SynSent || t.snd_max != t.iss || bytes == 0 {
            return Err(TcpError::InvalidState);
        }
        t.rcv_buf.set_capacity(bytes);
        t.rcv_wscale = if ws { connection::wscale_for(bytes) } else { 0 };
        Ok(())
    }

    /// `SO_SNDBUF`: possible while the send buffer is empty.
    pub fn set_send_buffer(&mut self, h: TcpHandle, bytes: usize) -> Result<(), TcpError> {
        let t = self.tcb_mut(h)?;
        if bytes == 0 || !t.snd_buf.set_capacity(bytes) {
            return Err(TcpError::InvalidState);
        }
        Ok(())
    }

    fn wake(&mut self, h: TcpHandle) {
        if let Some(Socket::Conn(t)) = self.sockets.get_mut(h) {
            if !t.in_tx_queue && t.state != State::Closed {
                t.in_tx_queue = true;
                self.tx_queue.push_back(h);
            }
        }
    }
}

/// Writes a RST segment.
fn emit_rst(cx: &mut Cx<'_>, rst: &RstSpec, buf: &mut [u8]) -> TcpTransmit {
    let hdr = SegmentHeader {
        src_port: rst.local.port(),
        dst_port: rst.remote.port(),
        seq: rst.seq,
        ack: rst.ack.unwrap_or(SeqNum(0)),
        flags: rst.flags(),
        window: 0,
        ..Default::default()
    };
    let len = hdr.emit(buf);
    fill_checksum(*rst.local.ip(), *rst.remote.ip(), &mut buf[..len]);
    cx.inc(Counter::TcpOutSegs);
    cx.trace(Direction::Tx, Layer::Tcp, Verdict::Reply, len, 0, || {
        hdr.summary(0)
    });
    TcpTransmit {
        src: *rst.local.ip(),
        dst: *rst.remote.ip(),
        len,
    }
}
