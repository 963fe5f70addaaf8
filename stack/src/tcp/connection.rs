//! The transmission control block (RFC 9293 §3.3.1) and segment arrival processing
//! (RFC 9293 §3.10.7.3 for SYN-SENT, §3.10.7.4 for the other states), with the ACK-side of loss
//! recovery (RFC 5681, RFC 6582, RFC 6675), PAWS (RFC 7323 §5) and the RFC 5961 mitigations.
//!
//! Segment generation is in `output.rs`; timers and the application calls in `user.rs`.

use core::net::SocketAddrV4;

use super::congestion::{Congestion, CongestionControl};
use super::options::{SackBlock, TcpOptions};
use super::rack::{Delivery, Rack, SentQueue, Tlp, TlpOutcome};
use super::reassembly::{Reassembly, Received};
use super::recv_buffer::RecvBuffer;
use super::reset::{ChallengeLimiter, RstQueue, RstSpec};
use super::rtt::RttEstimator;
use super::sack::{Scoreboard, DUP_THRESH};
use super::segment::{Flags, Segment};
use super::send_buffer::SendBuffer;
use super::seq::SeqNum;
use super::state::State;
use super::timers::Timers;
use super::{TcpConfig, TcpError};
use crate::counters::{Counter, DropReason};
use crate::cx::Cx;
use crate::socket::TcpHandle;
use crate::time::{Duration, Instant};
use crate::trace::{Direction, Layer, Verdict};

/// What a connection needs from its surroundings while processing an event.
pub(crate) struct Env<'a, 'c> {
    /// Time, counters, trace, readiness.
    pub cx: &'a mut Cx<'c>,
    /// Layer configuration.
    pub cfg: &'a TcpConfig,
    /// Where RSTs go.
    pub rsts: &'a mut RstQueue,
    /// RFC 5961 §7 limiter.
    pub challenge: &'a mut ChallengeLimiter,
}

impl Env<'_, '_> {
    pub fn now(&self) -> Instant {
        self.cx.now
    }
}

/// What processing one segment changed that the layer must act on.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Outcome {
    /// The connection just reached ESTABLISHED from SYN-RECEIVED (queue it for accept).
    pub established: bool,
}

/// Per-connection statistics (for `ss -ti`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    pub segs_in: u64,
    pub segs_out: u64,
    pub data_segs_in: u64,
    pub data_segs_out: u64,
    pub retrans_segs: u64,
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub fast_retrans: u64,
    pub timeouts: u64,
    /// Tail loss probes sent (RFC 8985 §7).
    pub loss_probes: u64,
    /// Segments RACK marked lost (RFC 8985 §6).
    pub rack_lost: u64,
    /// Retransmissions found lost (by RACK).
    pub lost_retrans: u64,
    /// Timeouts found spurious (RFC 3522) and undone.
    pub spurious_rtos: u64,
    pub dup_acks_in: u64,
    pub ofo_segs: u64,
}

/// The state before a retransmission timeout, kept to undo it (RFC 4015 §2).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RtoUndo {
    pub cwnd: u32,
    pub ssthresh: u32,
    /// TSval of the first retransmission after the timeout.
    pub tsval: u32,
}

/// PAWS: TS.Recent is invalid after 24 days idle (RFC 7323 §5.5).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// The TCB of one connection.
#[derive(Debug)]
pub(crate) struct Tcb {
    pub handle: TcpHandle,
    pub state: State,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// The listener, while this connection is not yet accepted.
    pub parent: Option<TcpHandle>,
    /// Sitting in the parent's accept queue.
    pub in_accept_queue: bool,
    /// The application closed its handle: the TCB goes away once the connection is closed.
    pub app_closed: bool,
    /// Opened by a listener.
    pub passive: bool,
    /// Pending error (reported by recv/send and readiness).
    pub error: Option<TcpError>,

    // --- send sequence space (RFC 9293 §3.3.1)
    pub iss: SeqNum,
    pub snd_una: SeqNum,
    pub snd_nxt: SeqNum,
    /// Highest sequence number sent (SND.NXT before a go-back-N retransmission).
    pub snd_max: SeqNum,
    pub snd_wnd: u32,
    pub snd_wl1: SeqNum,
    pub snd_wl2: SeqNum,
    pub max_snd_wnd: u32,
    /// Shift applied to the peer's window field.
    pub snd_wscale: u8,
    /// The application shut down the sending side.
    pub fin_queued: bool,
    /// Sequence number of our FIN once sent.
    pub fin_seq: Option<SeqNum>,
    /// End of the last sub-MSS segment sent (Minshall's Nagle variant).
    pub snd_sml: SeqNum,

    // --- receive sequence space
    pub irs: SeqNum,
    pub rcv_nxt: SeqNum,
    /// Right edge of the window we last advertised (never moves left, RFC 9293 §3.8.6.2.2).
    pub rcv_adv: SeqNum,
    /// Shift we apply to our window field.
    pub rcv_wscale: u8,
    /// The peer's FIN has been received (in order).
    pub fin_received: bool,
    /// A FIN that arrived beyond RCV.NXT.
    pub ofo_fin: Option<SeqNum>,
    /// RCV.NXT in the last ACK we sent (RFC 7323 §4.3).
    pub last_ack_sent: SeqNum,
    /// In-order bytes received since our last ACK.
    pub rcv_unacked: u32,
    /// Largest segment payload seen from the peer (for "ACK every second full segment").
    pub rcv_mss: u32,
    /// An ACK must go out at the next opportunity.
    pub ack_now: bool,
    /// Immediate duplicate ACKs still owed for out-of-order segments received in one batch
    /// (RFC 5681 §4.2: one per segment, so that the sender can count them).
    pub dup_acks_owed: u8,
    /// A duplicate segment to report as a D-SACK in the next ACK (RFC 2883).
    pub dsack: Option<SackBlock>,
    /// When this connection last sent a challenge ACK (RFC 5961 §7 per-connection limit,
    /// [`ChallengeLimiter::per_connection`]); one interval before creation at first.
    pub last_challenge_ack: Instant,

    // --- options
    pub ts_enabled: bool,
    pub ts_recent: u32,
    pub ts_recent_age: Instant,
    pub ts_offset: u32,
    pub sack_enabled: bool,
    pub ws_enabled: bool,
    /// The MSS the peer announced (536 if none, RFC 9293 §3.7.1).
    pub peer_mss: u16,
    /// Our MSS from the path MTU (`mtu - 40`), lowered by ICMP "fragmentation needed".
    pub pmtu_mss: u16,

    pub snd_buf: SendBuffer,
    pub rcv_buf: RecvBuffer,
    pub reasm: Reassembly,
    pub scoreboard: Scoreboard,
    /// Per-segment transmit records (RFC 8985 §5.2): `pipe`, loss marks, RTT samples.
    pub sent: SentQueue,
    /// RACK state (RFC 8985 §5.3).
    pub rack: Rack,
    /// Tail loss probe state (RFC 8985 §7).
    pub tlp: Tlp,

    pub rtt: RttEstimator,
    /// Karn: the segment being timed (its end) and when it was sent.
    pub rtt_timing: Option<(SeqNum, Instant)>,
    pub cc: Congestion,
    pub cc_alg: super::congestion::Algorithm,

    // --- loss recovery
    pub dupacks: u32,
    pub in_recovery: bool,
    /// RFC 6582 `recover`.
    pub recover: SeqNum,
    /// A retransmission at this sequence number is due (fast retransmit, NewReno partial ACK).
    pub rexmit_next: Option<SeqNum>,
    /// RFC 6675 HighRxt (NewReno, without SACK).
    pub rexmit_high: SeqNum,
    /// Recovering from a retransmission timeout with SACK (Linux's `Loss` state): the
    /// segments outstanding at the timeout are marked lost and resent as the window allows,
    /// until SND.UNA passes `recover`.
    pub rto_recovery: bool,
    /// What a timeout changed, to undo if it proves spurious (RFC 3522, RFC 4015): cwnd and
    /// ssthresh before it, and the TSval of the first retransmission.
    pub rto_undo: Option<RtoUndo>,

    // --- timers
    pub timers: Timers,
    pub retries: u32,
    pub persist_backoff: u32,
    /// Send a probe (`SEQ = SND.UNA - 1`, no data): zero-window probe or keepalive.
    pub probe_now: bool,
    /// Persist fired with a non-zero window: send what fits regardless of SWS avoidance.
    pub force_send: bool,
    pub keepalive_probes: u32,
    pub last_rx: Instant,
    /// Last time SND.UNA advanced (or data was first queued): for the user timeout.
    pub last_progress: Instant,

    // --- settings
    pub nodelay: bool,
    pub keepalive: bool,
    pub user_timeout: Option<Duration>,

    pub stats: Stats,
    /// The deadline this connection is filed under in the layer's timer set.
    pub timer_key: Option<Instant>,
    /// Sitting in the layer's transmit queue.
    pub in_tx_queue: bool,
}

impl Tcb {
    /// A TCB in CLOSED with every field initialised from the configuration.
    pub fn new(
        handle: TcpHandle,
        cfg: &TcpConfig,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        ts_offset: u32,
        now: Instant,
    ) -> Tcb {
        let pmtu_mss = cfg.mtu.saturating_sub(40).clamp(64, 65535) as u16;
        let rcv_wscale = if cfg.window_scaling {
            wscale_for(cfg.rcv_buf)
        } else {
            0
        };
        Tcb {
            handle,
            state: State::Closed,
            local,
            remote,
            parent: None,
            in_accept_queue: false,
            app_closed: false,
            passive: false,
            error: None,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: iss,
            max_snd_wnd: 0,
            snd_wscale: 0,
            fin_queued: false,
            fin_seq: None,
            snd_sml: iss,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_adv: SeqNum(0),
            rcv_wscale,
            fin_received: false,
            ofo_fin: None,
            last_ack_sent: SeqNum(0),
            rcv_unacked: 0,
            rcv_mss: 536,
            ack_now: false,
            dup_acks_owed: 0,
            dsack: None,
            last_challenge_ack: now - super::reset::CHALLENGE_ACK_INTERVAL,
            ts_enabled: false,
            ts_recent: 0,
            ts_recent_age: now,
            ts_offset,
            sack_enabled: false,
            ws_enabled: false,
            peer_mss: 536,
            pmtu_mss,
            snd_buf: SendBuffer::new(cfg.snd_buf),
            rcv_buf: RecvBuffer::new(cfg.rcv_buf),
            reasm: Reassembly::default(),
            scoreboard: Scoreboard::default(),
            sent: SentQueue::default(),
            rack: Rack::new(iss),
            tlp: Tlp {
                rtt_sampled: true,
                ..Tlp::default()
            },
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            rtt_timing: None,
            cc: Congestion::new(cfg.congestion, pmtu_mss as u32, cfg.initial_window),
            cc_alg: cfg.congestion,
            dupacks: 0,
            in_recovery: false,
            recover: iss,
            rexmit_next: None,
            rexmit_high: iss,
            rto_recovery: false,
            rto_undo: None,
            timers: Timers::default(),
            retries: 0,
            persist_backoff: 0,
            probe_now: false,
            force_send: false,
            keepalive_probes: 0,
            last_rx: now,
            last_progress: now,
            nodelay: cfg.nodelay,
            keepalive: false,
            user_timeout: None,
            stats: Stats::default(),
            timer_key: None,
            in_tx_queue: false,
        }
    }

    /// Applies per-socket options; only before the SYN is exchanged (buffer sizes fix the
    /// window scale).
    pub fn apply_socket_options(
        &mut self,
        cfg: &TcpConfig,
        o: &super::SocketOptions,
        now: Instant,
    ) {
        if let Some(n) = o.rcv_buf.filter(|&n| n > 0) {
            self.rcv_buf.set_capacity(n);
            self.rcv_wscale = if cfg.window_scaling { wscale_for(n) } else { 0 };
        }
        if let Some(n) = o.snd_buf.filter(|&n| n > 0) {
            self.snd_buf.set_capacity(n);
        }
        if let Some(v) = o.nodelay {
            self.nodelay = v;
        }
        if let Some(v) = o.keepalive {
            self.keepalive = v;
            self.timers.keepalive =
                v.then(|| now + cfg.keepalive_idle.max(Duration::from_millis(1)));
        }
        if o.user_timeout.is_some() {
            self.user_timeout = o.user_timeout;
        }
        if let Some(a) = o.congestion {
            self.cc_alg = a;
            self.cc = Congestion::new(a, self.smss(), cfg.initial_window);
        }
    }

    // ------------------------------------------------------------------ derived quantities

    /// The largest payload of a segment carrying our usual options (timestamps): SMSS.
    pub fn smss(&self) -> u32 {
        let base = self.peer_mss.min(self.pmtu_mss) as u32;
        let opts = if self.ts_enabled { 12 } else { 0 };
        base.saturating_sub(opts).max(8)
    }

    /// Sequence number just after the last byte the application queued.
    pub fn data_end(&self) -> SeqNum {
        self.snd_una + self.data_offset_base() + self.snd_buf.len() as u32
    }

    /// 1 while our SYN is unacknowledged (the send buffer starts after it), else 0.
    pub fn data_offset_base(&self) -> u32 {
        matches!(
            self.state,
            State::Closed | State::SynSent | State::SynReceived
        ) as u32
    }

    /// RFC 6675 `pipe`: bytes believed in flight. With SACK, from the per-segment records
    /// (SACKed bytes and segments deemed lost do not count, retransmissions in flight count
    /// once more); without, everything sent and not acknowledged.
    pub fn pipe(&self) -> u32 {
        if self.sack_enabled {
            self.sent.pipe()
        } else {
            self.snd_nxt.since(self.snd_una)
        }
    }

    /// Whether loss recovery (fast recovery or recovery after an RTO) is under way.
    pub fn recovering(&self) -> bool {
        self.in_recovery || self.rto_recovery
    }

    // ------------------------------------------------------------------ state helpers

    /// Moves to `new`, keeping the `TcpCurrEstab` gauge right.
    pub fn set_state(&mut self, cx: &mut Cx<'_>, new: State) {
        let counted = |s: State| matches!(s, State::Established | State::CloseWait);
        let before = counted(self.state);
        let after = counted(new);
        if before != after {
            let cur = cx.counters.get(Counter::TcpCurrEstab);
            let next = if after {
                cur + 1
            } else {
                cur.saturating_sub(1)
            };
            cx.counters.set(Counter::TcpCurrEstab, next);
        }
        self.state = new;
        if new == State::Closed {
            self.timers.clear();
            self.snd_buf.release();
            // Nothing is in flight on a closed connection: its send buffer is gone, so
            // SND.NXT/SND.MAX must not keep counting bytes that will never be (re)sent (an RTO
            // or RST abort used to leave `TcpInfo::unacked` reporting them).
            self.snd_nxt = self.snd_una;
            self.snd_max = self.snd_una;
            self.in_recovery = false;
            self.rto_recovery = false;
            self.rto_undo = None;
            self.reasm.clear();
            self.scoreboard.clear();
            self.sent.clear();
            self.tlp = Tlp::default();
            self.ack_now = false;
            self.dup_acks_owed = 0;
            self.probe_now = false;
            self.rexmit_next = None;
        }
        cx.notify(self.handle);
    }

    /// The connection ends with `err` (reported to the application).
    pub fn fail(&mut self, cx: &mut Cx<'_>, err: TcpError) {
        if self.error.is_none() {
            self.error = Some(err);
        }
        self.set_state(cx, State::Closed);
    }

    /// Queues a RST (with ACK) for this connection, RFC 9293 §3.10.7.4 / abort.
    pub fn send_rst(&mut self, env: &mut Env<'_, '_>) {
        let ack = if self.state == State::SynSent {
            None
        } else {
            Some(self.rcv_nxt)
        };
        self.queue_rst(env, self.snd_nxt, ack);
    }

    /// Queues a RST from this connection's four-tuple, counting it only if the queue took it.
    fn queue_rst(&self, env: &mut Env<'_, '_>, seq: SeqNum, ack: Option<SeqNum>) {
        if env.rsts.push(RstSpec {
            local: self.local,
            remote: self.remote,
            seq,
            ack,
        }) {
            env.cx.inc(Counter::TcpOutRsts);
        }
    }

    /// Sends a challenge ACK (RFC 5961 §3.2, §4.2, §5.2) unless rate-limited (RFC 5961 §7):
    /// first per connection (one per [`super::reset::CHALLENGE_ACK_INTERVAL`], Linux's
    /// `tcp_invalid_ratelimit`), then by the optional, randomized stack-wide budget. The
    /// per-connection check comes first so that a flood on one connection cannot spend the
    /// stack-wide budget and silence the others (CVE-2016-5696).
    fn challenge_ack(&mut self, env: &mut Env<'_, '_>) {
        let now = env.now();
        if !ChallengeLimiter::per_connection(self.last_challenge_ack, now) {
            env.cx.inc(Counter::TcpExtTCPACKSkippedChallenge);
            return;
        }
        if !env.challenge.allow(now) {
            env.cx.inc(Counter::TcpExtTCPChallengeACKLimited);
            return;
        }
        self.last_challenge_ack = now;
        env.cx.inc(Counter::TcpExtTCPChallengeACK);
        self.ack_now = true;
    }

    /// Applies the options of the peer's SYN (or SYN-ACK) to our side. RFC 7323 §2.2, §3.2;
    /// RFC 2018 §2; RFC 9293 §3.7.1.
    pub fn apply_syn_options(&mut self, cfg: &TcpConfig, o: &TcpOptions, now: Instant) {
        self.peer_mss = o.mss.unwrap_or(536).max(64);
        if let (true, Some(ws)) = (cfg.window_scaling, o.wscale) {
            self.ws_enabled = true;
            self.snd_wscale = ws.min(14);
        } else {
            self.ws_enabled = false;
            self.snd_wscale = 0;
            self.rcv_wscale = 0;
        }
        self.sack_enabled = cfg.sack && o.sack_permitted;
        if let (true, Some((val, _))) = (cfg.timestamps, o.timestamps) {
            self.ts_enabled = true;
            self.ts_recent = val;
            self.ts_recent_age = now;
        } else {
            self.ts_enabled = false;
        }
        let mss = self.smss();
        self.cc = Congestion::new(self.cc_alg, mss, cfg.initial_window);
    }

    /// Our timestamp clock: milliseconds plus a per-connection offset (RFC 7323 §5.4).
    pub fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    // ------------------------------------------------------------------ segment arrival

    /// Processes one segment addressed to this connection (not LISTEN: see `listener.rs`).
    pub fn on_segment(&mut self, env: &mut Env<'_, '_>, seg: &Segment<'_>) -> Outcome {
        self.stats.segs_in += 1;
        self.last_rx = env.now();
        self.keepalive_probes = 0;
        if self.keepalive {
            self.timers.keepalive =
                Some(env.now() + env.cfg.keepalive_idle.max(Duration::from_millis(1)));
        }
        match self.state {
            State::Closed | State::Listen => Outcome::default(),
            State::SynSent => {
                self.on_segment_syn_sent(env, seg);
                Outcome::default()
            }
            _ => self.on_segment_otherwise(env, seg),
        }
    }

    /// RFC 9293 §3.10.7.3: SEGMENT ARRIVES in SYN-SENT.
    fn on_segment_syn_sent(&mut self, env: &mut Env<'_, '_>, seg: &Segment<'_>) {
        let h = &seg.hdr;
        let len = seg.payload.len();
        // First, check the ACK bit.
        if h.flags.has(Flags::ACK) && (h.ack <= self.iss || h.ack > self.snd_max) {
            if !h.flags.has(Flags::RST) {
                self.queue_rst(env, h.ack, None);
            }
            env.cx.drop(
                Direction::Rx,
                Layer::Tcp,
                DropReason::TcpBadAck,
                len,
                || h.summary(len),
            );
            return;
        }
        // Second, check the RST bit.
        if h.flags.has(Flags::RST) {
            if h.flags.has(Flags::ACK) {
                env.cx.inc(Counter::TcpAttemptFails);
                self.fail(env.cx, TcpError::ConnectionRefused);
            }
            return;
        }
        // Fourth, check the SYN bit.
        if !h.flags.has(Flags::SYN) {
            return;
        }
        self.irs = h.seq;
        self.rcv_nxt = h.seq + 1;
        self.last_ack_sent = self.rcv_nxt;
        self.apply_syn_options(env.cfg, &h.options, env.now());
        self.snd_wnd = h.window as u32; // never scaled in a SYN (RFC 7323 §2.2)
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = h.seq;
        self.snd_wl2 = h.ack;
        self.rcv_adv = self.rcv_nxt + self.syn_window() as u32;
        self.ack_now = true;
        if h.flags.has(Flags::ACK) {
            self.sample_rtt_on_ack(env.now(), h.ack, h.options.timestamps);
            self.snd_una = h.ack;
            self.snd_sml = h.ack;
            self.rexmit_high = h.ack;
            self.recover = h.ack;
            self.timers.retransmit = None;
            self.retries = 0;
            self.rtt.reset_backoff();
            self.last_progress = env.now();
            self.set_state(env.cx, State::Established);
        } else {
            // Simultaneous open: SYN-RECEIVED, re-send our SYN with an ACK.
            self.snd_nxt = self.iss;
            self.set_state(env.cx, State::SynReceived);
        }
    }

    /// The window field of a SYN or SYN-ACK (unscaled).
    pub fn syn_window(&self) -> u16 {
        self.rcv_buf.free().min(65535) as u16
    }

    /// RFC 9293 §3.10.7.4: SEGMENT ARRIVES in the synchronized states and SYN-RECEIVED.
    fn on_segment_otherwise(&mut self, env: &mut Env<'_, '_>, seg: &Segment<'_>) -> Outcome {
        let mut out = Outcome::default();
        let h = seg.hdr;
        let now = env.now();
        let plen = seg.payload.len();
        let rst = h.flags.has(Flags::RST);

        // SYN-RECEIVED: the peer retransmitted its SYN; answer with our SYN-ACK again.
        if self.state == State::SynReceived
            && h.flags.has(Flags::SYN)
            && !h.flags.has(Flags::ACK)
            && h.seq == self.irs
        {
            self.snd_nxt = self.iss;
            return out;
        }

        // RFC 7323 §5.3 R1: PAWS.
        if self.ts_enabled && !rst {
            if let Some((val, _)) = h.options.timestamps {
                if (val.wrapping_sub(self.ts_recent) as i32) < 0
                    && now - self.ts_recent_age < PAWS_IDLE
                {
                    env.cx.inc(Counter::TcpExtPAWSEstab);
                    env.cx.drop(
                        Direction::Rx,
                        Layer::Tcp,
                        DropReason::TcpPawsRejected,
                        plen,
                        || h.summary(plen),
                    );
                    self.ack_now = true;
                    return out;
                }
            }
        }

        // First, check the sequence number.
        let wnd = self.rcv_adv.since(self.rcv_nxt);
        let seg_len = seg.seg_len();
        let acceptable = match (seg_len, wnd) {
            (0, 0) => h.seq == self.rcv_nxt,
            (0, _) => h.seq.in_range(self.rcv_nxt, self.rcv_nxt + wnd),
            (_, 0) => false,
            (_, _) => {
                h.seq.in_range(self.rcv_nxt, self.rcv_nxt + wnd)
                    || (h.seq + (seg_len - 1)).in_range(self.rcv_nxt, self.rcv_nxt + wnd)
            }
        };
        // RFC 9293 §3.10.7.4: "special allowance should be made to accept valid ACKs". A
        // segment that starts inside the window *including its right edge*
        // (RCV.NXT =< SEG.SEQ =< RCV.NXT+RCV.WND, Linux's tcp_sequence()) is processed for its
        // ACK and window fields even when the RFC test rejects it; its text is trimmed away
        // below. This covers a zero-window probe with data at RCV.NXT, and above all the pure
        // ACKs of a peer that has filled our window: Linux sends them at SND.NXT
        // (tcp_acceptable_seq), which is then exactly our right edge. With a hole before that
        // edge, or once our window has closed, the strict test dropped every ACK of our data
        // and both ends backed off their retransmission timers into a stall of tens of
        // seconds (the impaired echo of the lab). RSTs keep the strict test (RFC 5961 §3.2).
        let edge_allowance =
            !acceptable && !rst && self.rcv_nxt <= h.seq && h.seq <= self.rcv_nxt + wnd;
        if !acceptable && !edge_allowance {
            if !rst {
                self.ack_now = true;
                if plen > 0 && h.seq + plen as u32 <= self.rcv_nxt {
                    self.note_duplicate(h.seq, h.seq + plen as u32);
                }
            }
            if self.state == State::TimeWait && h.flags.has(Flags::FIN) {
                // Retransmitted FIN: re-ACK and restart the 2*MSL timer (RFC 9293 §3.10.7.4).
                self.timers.linger = Some(now + env.cfg.time_wait);
            }
            env.cx.drop(
                Direction::Rx,
                Layer::Tcp,
                DropReason::TcpOutOfWindow,
                plen,
                || h.summary(plen),
            );
            return out;
        }

        // Second, check the RST bit (RFC 5961 §3.2).
        if rst {
            if h.seq == self.rcv_nxt {
                match self.state {
                    State::SynReceived => {
                        if self.passive {
                            self.set_state(env.cx, State::Closed);
                        } else {
                            env.cx.inc(Counter::TcpAttemptFails);
                            self.fail(env.cx, TcpError::ConnectionRefused);
                        }
                    }
                    State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                        env.cx.inc(Counter::TcpEstabResets);
                        self.fail(env.cx, TcpError::ConnectionReset);
                    }
                    _ => self.set_state(env.cx, State::Closed),
                }
            } else {
                self.challenge_ack(env);
                env.cx.drop(
                    Direction::Rx,
                    Layer::Tcp,
                    DropReason::TcpRstChallenged,
                    plen,
                    || h.summary(plen),
                );
            }
            return out;
        }

        // Fourth, check the SYN bit (RFC 5961 §4): challenge ACK, drop.
        if h.flags.has(Flags::SYN) {
            self.challenge_ack(env);
            env.cx.drop(
                Direction::Rx,
                Layer::Tcp,
                DropReason::TcpSynChallenged,
                plen,
                || h.summary(plen),
            );
            return out;
        }

        // Fifth, check the ACK field.
        if !h.flags.has(Flags::ACK) {
            env.cx.drop(
                Direction::Rx,
                Layer::Tcp,
                DropReason::TcpBadFlags,
                plen,
                || h.summary(plen),
            );
            return out;
        }
        if self.state == State::SynReceived {
            if self.snd_una < h.ack && h.ack <= self.snd_max {
                self.sample_rtt_on_ack(now, h.ack, h.options.timestamps);
                self.snd_una = self.iss + 1;
                self.snd_sml = self.snd_una;
                self.rexmit_high = self.snd_una;
                self.recover = self.snd_una;
                self.snd_wnd = (h.window as u32) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = h.seq;
                self.snd_wl2 = h.ack;
                self.timers.retransmit = None;
                self.retries = 0;
                self.rtt.reset_backoff();
                self.last_progress = now;
                let next = if self.fin_queued {
                    State::FinWait1
                } else {
                    State::Established
                };
                self.set_state(env.cx, next);
                out.established = true;
            } else {
                self.queue_rst(env, h.ack, None);
                env.cx.drop(
                    Direction::Rx,
                    Layer::Tcp,
                    DropReason::TcpBadAck,
                    plen,
                    || h.summary(plen),
                );
                return out;
            }
        }
        if h.ack > self.snd_max {
            self.ack_now = true;
            env.cx.drop(
                Direction::Rx,
                Layer::Tcp,
                DropReason::TcpBadAck,
                plen,
                || h.summary(plen),
            );
            return out;
        }
        // RFC 5961 §5.2: an ACK too far in the past is a blind injection attempt.
        let max_back = self.max_snd_wnd.max(65535);
        if h.ack < self.snd_una - max_back {
            self.challenge_ack(env);
            env.cx.drop(
                Direction::Rx,
                Layer::Tcp,
                DropReason::TcpBadAck,
                plen,
                || h.summary(plen),
            );
            return out;
        }
        // RFC 7323 §4.3: record TS.Recent when the segment covers Last.ACK.sent. Only now,
        // once the segment has passed the sequence check *and* the SYN and ACK checks (RFC
        // 9293 §3.10.7.4 order; Linux's `tcp_ack(.., FLAG_UPDATE_TS_RECENT)`): a blind segment
        // that merely covers RCV.NXT, without an ACK bit or acknowledging data never sent,
        // must not move TS.Recent, or one such segment with a TSval far ahead makes every
        // later segment of the real peer fail PAWS.
        if self.ts_enabled {
            if let Some((val, _)) = h.options.timestamps {
                if h.seq <= self.last_ack_sent && (val.wrapping_sub(self.ts_recent) as i32) >= 0 {
                    self.ts_recent = val;
                    self.ts_recent_age = now;
                }
            }
        }
        self.process_ack(env, seg);
        if self.state == State::Closed {
            return out;
        }
        let fin_acked = matches!(self.fin_seq, Some(f) if self.snd_una == f + 1);
        match self.state {
            State::FinWait1 if fin_acked => {
                self.set_state(env.cx, State::FinWait2);
                if self.app_closed {
                    self.timers.linger = Some(now + env.cfg.fin_timeout);
                }
            }
            State::Closing if fin_acked => self.enter_time_wait(env),
            State::LastAck if fin_acked => {
                self.set_state(env.cx, State::Closed);
                return out;
            }
            _ => {}
        }

        // Sixth: URG is ignored (RFC 9293 §3.8.5 allows it; RFC 6093 discourages its use).

        // Seventh, process the segment text.
        let mut data = seg.payload;
        let mut dseq = h.seq;
        let mut fin = h.flags.has(Flags::FIN);
        let skip = self.rcv_nxt.since(dseq) as usize;
        if skip > 0 && !data.is_empty() {
            let dup_end = dseq + (skip.min(data.len()) as u32);
            self.note_duplicate(dseq, dup_end);
        }
        if skip > 0 {
            if skip >= data.len() {
                if skip > data.len() {
                    fin = false; // the FIN itself is old
                }
                data = &[];
            } else {
                data = &data[skip..];
            }
            dseq = self.rcv_nxt;
        }
        if edge_allowance && !(plen == 0 && h.seq == self.rcv_nxt) {
            // Nothing of it is inside the window: keep only a bare FIN at RCV.NXT, which takes
            // no buffer space (Linux accepts it in a zero window too).
            fin = false;
        }
        let room = (self.rcv_nxt + wnd).since(dseq).min(
            self.rcv_buf
                .free()
                .saturating_sub(dseq.since(self.rcv_nxt) as usize) as u32,
        ) as usize;
        if data.len() > room {
            data = &data[..room];
            fin = false;
        }
        if !data.is_empty() {
            if self.state.can_receive() {
                if self.app_closed {
                    // RFC 9293 §3.10.7.4 / RFC 2525: data after close is answered with RST.
                    self.send_rst(env);
                    self.fail(env.cx, TcpError::ConnectionReset);
                    return out;
                }
                self.rcv_mss = self.rcv_mss.max(data.len() as u32).min(65535);
                self.stats.data_segs_in += 1;
                let before = self.rcv_nxt;
                match self
                    .reasm
                    .receive(&mut self.rcv_buf, &mut self.rcv_nxt, dseq, data)
                {
                    Received::InOrder(n) => {
                        self.stats.bytes_received += n as u64;
                        // The caller trimmed `data` to the room in the buffer: all of it was
                        // copied.
                        let copied = data.len();
                        env.cx
                            .counters
                            .add(Counter::CopyFrameToRcvBuf, copied as u64);
                        env.cx.trace(
                            Direction::Rx,
                            Layer::Socket,
                            Verdict::Deliver,
                            copied,
                            copied,
                            || {
                                format!(
                                    "{} > {} rcv_nxt {} -> {}",
                                    self.remote.port(),
                                    self.local.port(),
                                    before,
                                    self.rcv_nxt
                                )
                            },
                        );
                        if n as usize > data.len() || !self.reasm.is_empty() {
                            self.ack_now = true; // filled a hole: ACK at once (RFC 5681 §4.2)
                        } else {
                            self.rcv_unacked += n;
                            if self.rcv_unacked >= 2 * self.rcv_mss {
                                self.ack_now = true;
                            } else if self.timers.delayed_ack.is_none() {
                                self.timers.delayed_ack = Some(now + env.cfg.delayed_ack);
                            }
                        }
                        if n > 0 {
                            env.cx.notify(self.handle);
                        }
                    }
                    Received::OutOfOrder => {
                        self.stats.ofo_segs += 1;
                        env.cx
                            .counters
                            .add(Counter::CopyFrameToRcvBuf, data.len() as u64);
                        env.cx.inc(Counter::TcpExtTCPOFOQueue);
                        self.dup_acks_owed = self.dup_acks_owed.saturating_add(1).min(16);
                        env.cx.trace(
                            Direction::Rx,
                            Layer::Socket,
                            Verdict::Queued,
                            data.len(),
                            data.len(),
                            || format!("out of order seq {} (rcv_nxt {})", dseq, self.rcv_nxt),
                        );
                        self.ack_now = true;
                    }
                    Received::QueueFull => {
                        env.cx.inc(Counter::TcpExtTCPOFODrop);
                        env.cx.drop(
                            Direction::Rx,
                            Layer::Tcp,
                            DropReason::TcpOfoQueueFull,
                            plen,
                            || h.summary(plen),
                        );
                        self.ack_now = true;
                        fin = false;
                    }
                }
            } else {
                self.ack_now = true;
            }
        } else if plen > 0 || (edge_allowance && seg_len > 0) {
            // Duplicate data, or data beyond the window: tell the peer where we are.
            self.ack_now = true;
            if edge_allowance && plen > 0 {
                env.cx.drop(
                    Direction::Rx,
                    Layer::Tcp,
                    DropReason::TcpRcvBufFull,
                    plen,
                    || h.summary(plen),
                );
            }
        }

        // Eighth, check the FIN bit.
        if fin && self.state != State::Closed {
            let fin_at = dseq + data.len() as u32;
            if fin_at == self.rcv_nxt {
                self.receive_fin(env);
            } else if fin_at > self.rcv_nxt {
                self.ofo_fin = Some(fin_at);
                self.ack_now = true;
            }
        }
        if let Some(f) = self.ofo_fin {
            if f == self.rcv_nxt && !self.fin_received {
                self.receive_fin(env);
            }
        }
        out
    }

    /// RFC 2883 §4: data the peer sent again that we already had (below RCV.NXT) is reported in
    /// the first SACK block of our next ACK (D-SACK), so that the sender can tell a needless
    /// retransmission (a spurious one, or a loss probe) from a repair.
    fn note_duplicate(&mut self, left: SeqNum, right: SeqNum) {
        if self.sack_enabled && left < right {
            self.dsack = Some(SackBlock { left, right });
        }
    }

    /// RFC 9293 §3.10.7.4 eighth step: the peer's FIN is in order.
    fn receive_fin(&mut self, env: &mut Env<'_, '_>) {
        if self.fin_received {
            self.ack_now = true;
            return;
        }
        self.ofo_fin = None;
        self.fin_received = true;
        self.rcv_nxt += 1;
        self.ack_now = true;
        env.cx.notify(self.handle);
        let fin_acked = matches!(self.fin_seq, Some(f) if self.snd_una == f + 1);
        match self.state {
            State::SynReceived | State::Established => self.set_state(env.cx, State::CloseWait),
            State::FinWait1 => {
                if fin_acked {
                    self.enter_time_wait(env);
                } else {
                    self.set_state(env.cx, State::Closing);
                }
            }
            State::FinWait2 => self.enter_time_wait(env),
            _ => {}
        }
    }

    pub fn enter_time_wait(&mut self, env: &mut Env<'_, '_>) {
        self.set_state(env.cx, State::TimeWait);
        self.timers.retransmit = None;
        self.timers.persist = None;
        self.timers.keepalive = None;
        self.timers.loss_probe = None;
        self.timers.reorder = None;
        self.timers.linger = Some(env.now() + env.cfg.time_wait);
        self.snd_buf.release();
    }

    /// RTT sample from an ACK of `ack`: timestamps (RFC 7323 §4.1) or the timed segment
    /// (RFC 6298 §3, Karn).
    fn sample_rtt_on_ack(&mut self, now: Instant, ack: SeqNum, ts: Option<(u32, u32)>) {
        if self.ts_enabled {
            if let Some((_, ecr)) = ts {
                if ecr != 0 {
                    let ms = self.ts_now(now).wrapping_sub(ecr);
                    if ms < 60_000 {
                        self.rtt.sample(Duration::from_millis(ms as u64));
                    }
                }
            }
            self.rtt_timing = None;
            return;
        }
        if let Some((end, sent)) = self.rtt_timing {
            if ack >= end {
                self.rtt.sample(now - sent);
                self.rtt_timing = None;
            }
        }
    }

    /// RFC 9293 §3.10.7.4 fifth step for ESTABLISHED and later, with congestion control and
    /// loss recovery (RFC 5681 §3.2, RFC 6582 §3.2, RFC 6675 §5, RFC 8985 §6-7).
    fn process_ack(&mut self, env: &mut Env<'_, '_>, seg: &Segment<'_>) {
        let h = &seg.hdr;
        let now = env.now();
        let mss = self.smss();
        let prior_flight = self.pipe();
        let sack = self.sack_enabled;
        let blocks = h.options.sacks();
        let dsack = sack && is_dsack(blocks, h.ack);
        if dsack {
            env.cx.inc(Counter::TcpExtTCPDSACKRecv);
        }
        let mut newly_sacked = 0;
        if sack && h.options.sack_count > 0 {
            newly_sacked = self.scoreboard.update(blocks, self.snd_una, self.snd_max);
        }
        let new_wnd = (h.window as u32) << self.snd_wscale;
        let window_changed = new_wnd != self.snd_wnd;
        let advances = h.ack > self.snd_una;

        // RFC 8985 §6.2 steps 1-3 and the RTT sample: what this ACK delivered.
        let ecr = if self.ts_enabled {
            h.options.timestamps.map(|(_, e)| e)
        } else {
            None
        };
        let dsack_block = dsack.then(|| (blocks[0].left, blocks[0].right));
        let mut delivery = Delivery::new(now, ecr, self.ts_offset, dsack_block, &self.rack);
        if advances {
            self.sent
                .on_cumulative_ack(h.ack, |s| delivery.record(s, true));
        }
        if newly_sacked > 0 {
            let valid = blocks
                .iter()
                .filter(|b| b.left < b.right && b.left >= self.snd_una)
                .map(|b| (b.left, b.right));
            self.sent
                .on_sack(&self.scoreboard, valid, |s| delivery.record(s, false));
        }
        let sample = delivery.rtt_sample().or_else(|| {
            // RFC 7323 §4.1: the echoed timestamp, when the records give no clean sample (all
            // newly acknowledged data was retransmitted).
            let ecr = ecr.filter(|&e| e != 0 && advances)?;
            let ms = self.ts_now(now).wrapping_sub(ecr);
            (ms < 60_000).then(|| Duration::from_millis(ms as u64))
        });
        if let Some(rtt) = sample {
            self.rtt.sample(rtt);
            self.rack.sample_min_rtt(rtt);
            self.tlp.rtt_sampled = true;
        }
        self.rack.on_delivery(&delivery);
        let was_recovering = self.recovering();
        if advances {
            if let Some(undo) = self.rto_undo.take() {
                self.detect_spurious_rto(env, undo, ecr);
            }
        }

        if advances {
            let acked = h.ack.since(self.snd_una);
            let data_acked = acked.min(self.snd_buf.len() as u32);
            self.snd_buf.consume(data_acked as usize);
            self.snd_una = h.ack;
            self.stats.bytes_acked += data_acked as u64;
            if self.snd_nxt < self.snd_una {
                self.snd_nxt = self.snd_una;
            }
            if self.rexmit_high < self.snd_una {
                self.rexmit_high = self.snd_una;
            }
            if let Some(r) = self.rexmit_next {
                if r < self.snd_una {
                    self.rexmit_next = None;
                }
            }
            self.scoreboard.on_cumulative_ack(self.snd_una);
            self.retries = 0;
            self.persist_backoff = 0;
            self.rtt.reset_backoff();
            self.last_progress = now;
            if self.rto_recovery && h.ack >= self.recover {
                // The data outstanding at the timeout is all acknowledged: slow start goes on.
                self.rto_recovery = false;
                self.dupacks = 0;
            }
            if self.in_recovery {
                if h.ack >= self.recover {
                    // RFC 6582 §3.2 step 3 / RFC 6675 §5: full acknowledgment ends recovery.
                    self.in_recovery = false;
                    self.dupacks = 0;
                    let ss = self.cc.ssthresh();
                    if sack {
                        // RFC 6675 keeps cwnd at ssthresh (as Linux does): deflating to the
                        // data in flight would throw away the window the recovery kept.
                        self.cc.set_cwnd(ss);
                    } else {
                        // RFC 6582 §3.2 step 3 option (1):
                        // min(ssthresh, max(FlightSize, SMSS) + SMSS).
                        self.cc.set_cwnd(ss.min(self.pipe().max(mss) + mss));
                    }
                } else if !sack {
                    // RFC 6582 §3.2 step 4 (partial acknowledgment): retransmit the next hole,
                    // deflate by the amount acknowledged, add back one SMSS.
                    self.rexmit_next = Some(self.snd_una);
                    let cw = self.cc.cwnd();
                    self.cc
                        .set_cwnd(cw.saturating_sub(data_acked).saturating_add(mss).max(mss));
                } else {
                    // RFC 6675 §5 step (C): the records drive the next retransmissions.
                    self.dupacks = 0;
                }
            } else {
                self.dupacks = 0;
                if prior_flight.saturating_mul(2) >= self.cc.cwnd()
                    || prior_flight + 2 * mss >= self.cc.cwnd()
                {
                    self.cc.on_ack(data_acked, mss, now, self.rtt.srtt());
                }
            }
            env.cx.notify(self.handle);
            // RFC 6298 §5.2/§5.3: stop the timer when everything is acknowledged, else restart.
            if self.snd_una == self.snd_max {
                self.timers.retransmit = None;
            } else {
                self.timers.retransmit = Some(self.rto_deadline(now));
            }
            if sack && self.scoreboard.sacked_end(self.snd_una).is_some() {
                self.sack_reneged(env);
            }
        } else if h.ack == self.snd_una
            && self.snd_max > self.snd_una
            && ((seg.payload.is_empty() && !h.flags.has(Flags::FIN) && !window_changed)
                || newly_sacked > 0)
        {
            // RFC 5681 §2 "duplicate acknowledgment" (RFC 6675 §2: or carrying new SACK info).
            self.dupacks += 1;
            self.stats.dup_acks_in += 1;
            if !self.recovering() {
                if !sack {
                    if self.dupacks >= DUP_THRESH && self.snd_una >= self.recover {
                        self.enter_recovery(env, mss);
                    }
                } else if self.dupacks >= DUP_THRESH {
                    // RFC 6675 §5 (4.2): DupThresh duplicate ACKs presume the segment at
                    // SND.UNA dropped, whatever RACK's timing says.
                    self.sent.mark_head_lost();
                }
            } else if !sack && self.in_recovery {
                // RFC 6582 §3.2 step 3 (inflation).
                let cw = self.cc.cwnd();
                self.cc.set_cwnd(cw.saturating_add(mss));
            }
        }

        if sack && self.state.is_synchronized() {
            self.rack.on_ack_dsack(
                dsack,
                self.snd_una,
                self.snd_max,
                was_recovering && !self.recovering(),
            );
            let pure_dup = !advances
                && newly_sacked == 0
                && !dsack
                && seg.payload.is_empty()
                && !window_changed;
            match self.tlp.on_ack(h.ack, dsack, pure_dup, advances) {
                TlpOutcome::Recovered => {
                    // RFC 8985 §7.4.2: the probe repaired a single loss: reduce the window as a
                    // recovery would have, once.
                    env.cx.inc(Counter::TcpExtTCPLossProbeRecovery);
                    if !self.recovering() {
                        let flight = self.snd_max.since(self.snd_una);
                        self.cc.on_congestion_event(flight, mss, now);
                    }
                }
                TlpOutcome::NoLoss | TlpOutcome::None => {}
            }
            self.rack_detect_loss(env);
            if !self.recovering() && self.sent.pending_rexmits() > 0 && self.snd_una >= self.recover
            {
                self.enter_recovery(env, mss);
            }
            self.schedule_loss_probe(now, advances || newly_sacked > 0);
        }

        // Window update (RFC 9293 §3.10.7.4: SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and
        // SND.WL2 =< SEG.ACK)) — and, as in Linux (tcp_may_update_window), whenever the ACK
        // advances SND.UNA. A segment acknowledging new data was sent after every segment that
        // moved SND.UNA so far, so its window is the freshest; and the usable window is
        // SND.UNA + SND.WND (RFC 9293 §3.8.6), so advancing SND.UNA while keeping a window
        // advertised relative to an older ACK would slide the right edge past anything the
        // peer offered. That happens when the advancing ACK carries an older SEG.SEQ than
        // SND.WL1: a retransmitted FIN, or a segment reordered behind a later pure ACK.
        if h.ack >= self.snd_una
            && (advances
                || self.snd_wl1 < h.seq
                || (self.snd_wl1 == h.seq && self.snd_wl2 <= h.ack))
        {
            let opened = new_wnd > self.snd_wnd;
            self.snd_wnd = new_wnd;
            self.snd_wl1 = h.seq;
            self.snd_wl2 = h.ack;
            self.max_snd_wnd = self.max_snd_wnd.max(new_wnd);
            if opened {
                self.timers.persist = None;
                self.persist_backoff = 0;
                env.cx.notify(self.handle);
            }
        }
    }

    /// RFC 3522 (Eifel detection) and RFC 4015 (its response), for the first ACK of new data
    /// after a timeout: when it echoes a timestamp older than the first retransmission, it was
    /// sent for the original transmission — the data was not lost, only late (or its ACKs
    /// were). Undo the timeout: cwnd and ssthresh as they were (Linux's `tcp_try_undo_loss`
    /// does the same), no segment is lost after all, and recovery ends.
    fn detect_spurious_rto(&mut self, env: &mut Env<'_, '_>, undo: RtoUndo, ecr: Option<u32>) {
        let Some(ecr) = ecr.filter(|&e| e != 0) else {
            return;
        };
        if (ecr.wrapping_sub(undo.tsval) as i32) >= 0 {
            return; // the ACK answers the retransmission: the timeout was real
        }
        env.cx.inc(Counter::TcpExtTCPSpuriousRTOs);
        self.stats.spurious_rtos += 1;
        self.cc.set_ssthresh(undo.ssthresh.max(self.cc.ssthresh()));
        self.cc.set_cwnd(undo.cwnd.max(self.cc.cwnd()));
        self.sent.unmark_lost();
        self.rto_recovery = false;
        self.rtt.reset_backoff();
    }

    /// RFC 8985 §6.2 step 5 (`RACK_detect_loss_and_arm_timer`): marks the segments RACK deems
    /// lost and arms the reordering timer for those that may still be merely reordered.
    pub(crate) fn rack_detect_loss(&mut self, env: &mut Env<'_, '_>) {
        let reo_wnd =
            self.rack
                .reo_wnd(self.recovering(), self.sent.sacked_segs(), self.rtt.srtt());
        let (marked, lost_rexmits, timer) =
            self.rack.detect_loss(&mut self.sent, env.now(), reo_wnd);
        if marked > 0 {
            self.stats.rack_lost += u64::from(marked);
            env.cx
                .counters
                .add(Counter::TcpExtTCPRackLost, u64::from(marked));
        }
        if lost_rexmits > 0 {
            self.stats.lost_retrans += u64::from(lost_rexmits);
            env.cx
                .counters
                .add(Counter::TcpExtTCPLostRetransmit, u64::from(lost_rexmits));
        }
        self.timers.reorder = timer;
    }

    /// RFC 8985 §7.2: (re)arms the probe timeout when a tail loss probe may be needed — SACK in
    /// use, data in flight, no probe outstanding, and either not recovering with nothing SACKed
    /// (the RFC's conditions) or recovering with no retransmission waiting — and cancels it
    /// otherwise. `restart`: the flight moved (data sent, acknowledged or SACKed); otherwise a
    /// pending PTO is kept as it is.
    ///
    /// Probing during recovery goes beyond RFC 8985, which leaves recovery to RACK and the
    /// ACK clock. That clock stops when the ACK of the last segments in flight is lost (a
    /// receiver that ACKs once per batch of segments, as GRO and packet rings do, sends one
    /// ACK for the whole flight): nothing is left to send, nothing later can be delivered for
    /// RACK to compare with, and only the RTO — at least 200 ms, a thousand RTTs on a LAN —
    /// would move on. One probe two RTTs later elicits the ACK instead. After an RTO the same
    /// holds while the window allows nothing more: the RTO resends the first segment, which a
    /// receiver that already has it may answer only after a long while (Linux rate-limits its
    /// ACKs to segments below its window edge to two a second, `tcp_invalid_ratelimit`); the
    /// probe resends the last, which every receiver answers at once.
    pub(crate) fn schedule_loss_probe(&mut self, now: Instant, restart: bool) {
        let quiet = if self.recovering() {
            self.sent.pending_rexmits() == 0 || self.pipe() >= self.cc.cwnd()
        } else {
            self.scoreboard.is_empty()
        };
        let may = self.sack_enabled
            && matches!(
                self.state,
                State::Established
                    | State::CloseWait
                    | State::FinWait1
                    | State::Closing
                    | State::LastAck
            )
            && quiet
            && self.snd_max > self.snd_una
            && self.tlp.end_seq.is_none();
        if !may {
            self.timers.loss_probe = None;
            return;
        }
        if !restart && self.timers.loss_probe.is_some() {
            return;
        }
        let one_segment = self.snd_max.since(self.snd_una) <= self.smss();
        let pto = super::rack::probe_timeout(self.rtt.srtt(), one_segment);
        let mut at = now + pto;
        if let Some(rto) = self.timers.retransmit {
            at = at.min(rto);
        }
        self.timers.loss_probe = Some(at);
    }

    /// RFC 2018 §8 / RFC 6675 §5.1: the cumulative ACK stopped at (or inside) data the receiver
    /// had SACKed: it reneged, and the SACK information is void. Forget it, so that the data
    /// is resent: by RACK if it was sent before something now delivered (the retransmission
    /// that filled the hole below it, usually), else by the retransmission timer — which would
    /// otherwise have skipped it as SACKed and found nothing to resend.
    fn sack_reneged(&mut self, env: &mut Env<'_, '_>) {
        env.cx.inc(Counter::TcpExtTCPSACKReneging);
        self.scoreboard.clear();
        self.sent.clear_sacked();
    }

    /// RFC 5681 §3.2 steps 2-3 / RFC 6675 §5 steps 4.1-4.3: fast retransmit and recovery.
    pub(crate) fn enter_recovery(&mut self, env: &mut Env<'_, '_>, mss: u32) {
        let flight = self.snd_max.since(self.snd_una);
        self.cc.on_congestion_event(flight, mss, env.now());
        self.in_recovery = true;
        self.recover = self.snd_max;
        self.rexmit_next = Some(self.snd_una);
        self.rexmit_high = self.snd_una;
        self.stats.fast_retrans += 1;
        self.tlp.end_seq = None;
        self.rto_undo = None;
        env.cx.inc(Counter::TcpExtTCPFastRetrans);
        if self.sack_enabled {
            env.cx.inc(Counter::TcpExtTCPSackRecovery);
        } else {
            // RFC 6582 §3.2 step 2: cwnd = ssthresh + 3*SMSS.
            let cw = self.cc.cwnd();
            self.cc.set_cwnd(cw.saturating_add(3 * mss));
        }
    }
}

/// RFC 2883 §4: the first SACK block reports a duplicate segment (D-SACK) when it lies below
/// the cumulative ACK, or inside the second block.
fn is_dsack(blocks: &[SackBlock], ack: SeqNum) -> bool {
    let Some(first) = blocks.first() else {
        return false;
    };
    if first.left >= first.right {
        return false;
    }
    first.right <= ack
        || blocks
            .get(1)
            .is_some_and(|b| b.left <= first.left && first.right <= b.right)
}

/// RFC 7323 §2.3: the smallest shift that lets the 16-bit window cover `buf` bytes (max 14).
pub fn wscale_for(buf: usize) -> u8 {
    let mut s = 0u8;
    while s < 14 && (buf >> s) > 65535 {
        s += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_scale_choice() {
        assert_eq!(wscale_for(65535), 0);
        assert_eq!(wscale_for(65536), 1);
        assert_eq!(wscale_for(256 * 1024), 3);
        assert_eq!(wscale_for(usize::MAX), 14);
    }
}
