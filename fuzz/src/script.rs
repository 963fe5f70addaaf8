//! Target `script`: arbitrary sequences of TCP segments and socket calls against one stack.
//!
//! The stack under test (198.18.0.2) listens on port 80 and faces an imaginary peer
//! (198.18.0.1) that the input drives, packetdrill-style but generated: segments are built from
//! the input's fields relative to the connection (sequence number as an offset from the peer's
//! next sequence number, acknowledgment as an offset from the highest sequence number the stack
//! sent), with correct checksums unless asked otherwise, so they reach the TCP engine.
//!
//! Input: a flags byte (bit 0: garble payloads, which turns the stream oracle off; bit 1:
//! timestamps on the auto-segments; bit 2: nodelay), then operations, one op byte each plus
//! their fields (see [`Op`]). Up to three peer connections (ports 5000, 5001 to port 80, and one
//! the stack opens to the peer's port 9000) are modelled.
//!
//! Checked after every step: [`invariants::check`]; every segment the stack sends has correct
//! checksums and headers; **stream oracle**: the data the stack sends on a connection is exactly
//! the bytes its application wrote at that position (never bytes not yet written), and what the
//! application reads is exactly the peer's stream from the first byte, in order.

use core::net::SocketAddrV4;

use ringstack_stack::tcp::options::TcpOptions;
use ringstack_stack::time::Duration;
use ringstack_stack::{Config, Instant, Stack, TcpHandle};

use crate::input::Input;
use crate::invariants;
use crate::wire::{self, flags, Sent, Tcp, OUR_IP, OUR_MAC, PEER_IP, PEER_MAC};

const PEER_SALT: u8 = 0x50;
const LOCAL_SALT: u8 = 0x1a;
/// Peer ports of the modelled connections; the last one is the stack's active open.
const PEER_PORTS: [u16; 3] = [5000, 5001, 9000];

/// Operation kinds (the op byte's low 4 bits).
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// 0–3: a segment: `[flags][seq off: i16][ack off: i16][window: u16][opt len: u8][options]
    /// [payload len: u16]`. Opt len 255 = automatic options (timestamps), else `% 41` raw bytes.
    Segment,
    /// 4: time passes `[dt: u16]` ms (op bit 4: × 100).
    Advance,
    /// 5: the application writes `[n: u16]` bytes.
    Send,
    /// 6: the application reads up to `[n: u16]` bytes.
    Recv,
    /// 7: shutdown; 8: close; 9: abort.
    Shutdown,
    /// See [`Op::Shutdown`].
    Close,
    /// See [`Op::Shutdown`].
    Abort,
    /// 10: accept.
    Accept,
    /// 11: the stack connects to the peer's port 9000 (connection 2).
    Connect,
    /// 12: the peer acknowledges everything the stack sent (pure ACK, full window).
    AutoAck,
    /// 13: switch the current connection `[index: u8 % 3]`.
    Switch,
    /// 14: a SYN from the peer with Linux's options (MSS, SACK-permitted, TS, WS) or, on the
    /// active-open connection, a SYN-ACK.
    Syn,
    /// 15: the peer sends `[n: u16]` in-order bytes with an ACK of everything.
    Data,
}

/// The imaginary peer's view of one connection.
#[derive(Debug, Default)]
struct Conn {
    peer_port: u16,
    local_port: u16,
    peer_isn: u32,
    /// Next sequence number of the peer, relative to `peer_isn`.
    peer_nxt: u32,
    /// The stack's ISN, once its SYN was seen.
    a_isn: Option<u32>,
    /// Highest sequence number the stack sent, relative to `a_isn`.
    a_max: u32,
    /// Position in the peer's stream of the first byte the stack's application reads.
    rx_base: Option<u32>,
    /// The stack's latest TSval.
    ts_recent: u32,
    handle: Option<TcpHandle>,
    rx_read: u64,
    tx_written: u64,
    /// The oracle is valid (no second incarnation, no garbling).
    clean: bool,
}

struct Harness {
    a: Stack,
    config: Config,
    now: Instant,
    listener: TcpHandle,
    conns: [Conn; 3],
    cur: usize,
    buf: Vec<u8>,
    garble: bool,
    timestamps: bool,
    /// `SCRIPT_FUZZ_TRACE=1`: print every step and segment (to read a crash).
    trace: bool,
}

fn config() -> Config {
    let mut c = Config::new(OUR_MAC, OUR_IP, 24);
    c.seed = 0x5c;
    c.arp.gratuitous = false;
    c.tcp.rcv_buf = 16 * 1024;
    c.tcp.snd_buf = 16 * 1024;
    c.tcp.max_sockets = 16;
    c.tcp.syn_backlog = 4;
    c.tcp.time_wait = Duration::from_secs(5);
    c.tcp.max_retries = 5;
    c.tcp.syn_retries = 3;
    c.tcp.synack_retries = 3;
    c
}

/// Linux's SYN options: MSS 1460, SACK-permitted, TS val/ecr, NOP, WS 7.
fn syn_options(tsval: u32, tsecr: u32) -> [u8; 20] {
    let v = tsval.to_be_bytes();
    let e = tsecr.to_be_bytes();
    [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3], 1, 3, 3, 7,
    ]
}

impl Harness {
    fn new(garble: bool, timestamps: bool, nodelay: bool) -> Harness {
        let mut config = config();
        config.tcp.nodelay = nodelay;
        let now = Instant::from_millis(0);
        let mut a = Stack::new(config.clone(), now);
        // Teach it the peer's MAC (the peer ARPs for us).
        let req = wire::eth(
            [0xff; 6],
            PEER_MAC,
            wire::ETH_ARP,
            &wire::arp(1, PEER_MAC, PEER_IP, [0; 6], OUR_IP),
        );
        a.handle_frame(now, &req);
        let listener = a.tcp_listen(80, 4).expect("listen");
        let conns = core::array::from_fn(|i| Conn {
            peer_port: PEER_PORTS[i],
            local_port: 80,
            peer_isn: 1_000_000 * (i as u32 + 1),
            clean: !garble,
            ..Conn::default()
        });
        let mut h = Harness {
            a,
            config,
            now,
            listener,
            conns,
            cur: 0,
            buf: vec![0; 1514],
            garble,
            timestamps,
            trace: std::env::var_os("SCRIPT_FUZZ_TRACE").is_some(),
        };
        h.drain();
        h
    }

    fn ts_now(&self) -> u32 {
        (self.now.total_millis() as u32).wrapping_add(7)
    }

    /// Sends one segment from the peer on the current connection.
    #[allow(clippy::too_many_arguments)]
    fn inject(
        &mut self,
        fl: u8,
        seq_off: i32,
        ack_off: i32,
        window: u16,
        options: &[u8],
        len: usize,
        bad: bool,
    ) {
        let c = &self.conns[self.cur];
        let seq_rel = c.peer_nxt.wrapping_add(seq_off as u32);
        let seq = c.peer_isn.wrapping_add(seq_rel);
        let ack = c
            .a_isn
            .unwrap_or(0)
            .wrapping_add(c.a_max)
            .wrapping_add(ack_off as u32);
        let syn = u32::from(fl & flags::SYN != 0);
        let pos = seq_rel.wrapping_add(syn).wrapping_sub(1);
        let mut payload = wire::stream(PEER_SALT, u64::from(pos), len);
        if self.garble {
            payload.iter_mut().for_each(|b| *b ^= 0x5a);
        }
        let seg = Tcp {
            sport: c.peer_port,
            dport: c.local_port,
            seq,
            ack,
            flags: fl,
            window,
            options,
            payload: &payload,
        }
        .build(PEER_IP, OUR_IP, bad);
        let end = seq_rel
            .wrapping_add(syn)
            .wrapping_add(len as u32)
            .wrapping_add(u32::from(fl & flags::FIN != 0));
        let c = &mut self.conns[self.cur];
        if fl & flags::RST == 0 && !bad && (end.wrapping_sub(c.peer_nxt) as i32) > 0 {
            c.peer_nxt = end;
        }
        if self.trace {
            eprintln!(
                "  < seq {seq} (rel {seq_rel}) ack {ack} flags {fl:02x} win {window} len {len} bad {bad}"
            );
        }
        let frame = wire::eth(
            OUR_MAC,
            PEER_MAC,
            wire::ETH_IPV4,
            &wire::ipv4(PEER_IP, OUR_IP, wire::PROTO_TCP, 1, 0x4000, &seg),
        );
        self.a.handle_frame(self.now, &frame);
    }

    fn auto_options(&self) -> Vec<u8> {
        if !self.timestamps {
            return Vec::new();
        }
        let v = self.ts_now().to_be_bytes();
        let e = self.conns[self.cur].ts_recent.to_be_bytes();
        vec![1, 1, 8, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3]]
    }

    /// Drains the stack, checking every segment against the model.
    fn drain(&mut self) {
        while let Some(n) = self.a.poll_transmit(self.now, &mut self.buf) {
            let Sent::Tcp(s) = wire::parse_sent(&self.buf[..n]) else {
                continue;
            };
            if self.trace {
                eprintln!(
                    "  > {}->{} seq {} ack {} flags {:02x} win {} len {}",
                    s.sport,
                    s.dport,
                    s.seq,
                    s.ack,
                    s.flags,
                    s.window,
                    s.payload.len()
                );
            }
            let Some(c) = self
                .conns
                .iter_mut()
                .find(|c| c.peer_port == s.dport && c.local_port == s.sport)
            else {
                continue;
            };
            if s.flags & flags::SYN != 0 {
                if c.a_isn.is_some_and(|isn| isn != s.seq) {
                    c.clean = false; // a second incarnation (or SYN cookies): oracle off
                }
                c.a_isn = Some(s.seq);
                // A SYN-ACK tells where the peer's stream starts for this incarnation; a
                // different start than known means a second incarnation (even with the same
                // ISN), whose bytes an old handle must not be checked against.
                let base = (s.flags & flags::ACK != 0)
                    .then(|| s.ack.wrapping_sub(c.peer_isn).wrapping_sub(1));
                if c.rx_base.is_some() && base != c.rx_base {
                    c.clean = false;
                }
                c.rx_base = base;
            }
            let Some(isn) = c.a_isn else {
                continue;
            };
            if let Ok(o) = TcpOptions::parse(&s.options) {
                if let Some((val, _)) = o.timestamps {
                    c.ts_recent = val;
                }
            }
            if s.flags & flags::ACK != 0 && c.rx_base.is_none() {
                c.rx_base = Some(s.ack.wrapping_sub(c.peer_isn).wrapping_sub(1));
            }
            let rel = s.seq.wrapping_sub(isn);
            let syn = u32::from(s.flags & flags::SYN != 0);
            let fin = u32::from(s.flags & flags::FIN != 0);
            let end = rel
                .wrapping_add(syn)
                .wrapping_add(s.payload.len() as u32)
                .wrapping_add(fin);
            if s.flags & flags::RST == 0 && (end.wrapping_sub(c.a_max) as i32) > 0 {
                c.a_max = end;
            }
            if c.clean && !s.payload.is_empty() && s.flags & flags::RST == 0 {
                let pos = u64::from(rel.wrapping_add(syn).wrapping_sub(1));
                let salt = LOCAL_SALT ^ c.peer_port as u8;
                assert!(
                    pos + s.payload.len() as u64 <= c.tx_written,
                    "sent bytes {pos}..{} of a stream of which only {} were written",
                    pos + s.payload.len() as u64,
                    c.tx_written
                );
                assert_eq!(
                    s.payload,
                    wire::stream(salt, pos, s.payload.len()),
                    "data at stream position {pos} is not what the application wrote"
                );
            }
        }
        assert_eq!(self.a.tx_queue_len(), 0);
    }

    fn handle(&self) -> Option<TcpHandle> {
        self.conns[self.cur].handle
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.u8();
        if self.trace {
            eprintln!("op {op} (kind {}) on conn {}", op & 15, self.cur);
        }
        match op & 15 {
            0..=3 => {
                let fl = input.u8();
                let seq_off = i32::from(input.u16() as i16);
                let ack_off = i32::from(input.u16() as i16);
                let window = input.u16();
                let opt_len = input.u8();
                let options = if opt_len == 255 {
                    self.auto_options()
                } else {
                    input.bytes(usize::from(opt_len % 41)).to_vec()
                };
                let len = usize::from(input.u16()) % 1461;
                let bad = op & 0xc0 == 0xc0;
                self.inject(fl, seq_off, ack_off, window, &options, len, bad);
            }
            4 => {
                let dt = u64::from(input.u16());
                let dt = if op & 16 != 0 { dt * 100 } else { dt };
                self.now += Duration::from_millis(dt);
                if self.a.poll_at().is_some_and(|t| t <= self.now) {
                    self.a.handle_timeout(self.now);
                }
            }
            5 => {
                let n = usize::from(input.u16()) % 20_000;
                if let Some(h) = self.handle() {
                    let c = &self.conns[self.cur];
                    let data = wire::stream(LOCAL_SALT ^ c.peer_port as u8, c.tx_written, n);
                    if let Ok(k) = self.a.tcp_send(self.now, h, &data) {
                        assert!(k <= n);
                        self.conns[self.cur].tx_written += k as u64;
                    }
                }
            }
            6 => {
                let n = usize::from(input.u16()) % 20_000;
                if let Some(h) = self.handle() {
                    let mut buf = vec![0u8; n];
                    if let Ok(k) = self.a.tcp_recv(self.now, h, &mut buf) {
                        assert!(k <= n);
                        let c = &mut self.conns[self.cur];
                        // (rx_base is unknown if the stack never acknowledged the peer's
                        // SYN in a segment we saw, e.g. after a second incarnation.)
                        if let (true, true, Some(base)) = (c.clean, k > 0, c.rx_base) {
                            let pos = u64::from(base) + c.rx_read;
                            assert_eq!(
                                &buf[..k],
                                &wire::stream(PEER_SALT, pos, k)[..],
                                "the application read bytes that are not the peer's stream at {pos}"
                            );
                        }
                        c.rx_read += k as u64;
                    }
                }
            }
            7 => {
                if let Some(h) = self.handle() {
                    let _ = self.a.tcp_shutdown(self.now, h);
                }
            }
            8 => {
                if let Some(h) = self.handle() {
                    let _ = self.a.tcp_close(self.now, h);
                    self.conns[self.cur].handle = None;
                }
            }
            9 => {
                if let Some(h) = self.handle() {
                    let _ = self.a.tcp_abort(self.now, h);
                    self.conns[self.cur].handle = None;
                }
            }
            10 => {
                if let Ok(h) = self.a.tcp_accept(self.listener) {
                    let port = self.a.tcp().peer_addr(h).map(|p| p.port());
                    match self.conns.iter_mut().find(|c| Some(c.peer_port) == port) {
                        Some(c) => {
                            if c.handle.is_some() || c.rx_read > 0 || c.tx_written > 0 {
                                c.clean = false;
                            }
                            c.handle = Some(h);
                        }
                        None => {
                            let _ = self.a.tcp_abort(self.now, h);
                        }
                    }
                }
            }
            11 => {
                let c = &mut self.conns[2];
                if c.handle.is_none() && c.a_isn.is_none() {
                    let remote = SocketAddrV4::new(PEER_IP, c.peer_port);
                    if let Ok(h) = self.a.tcp_connect(self.now, remote, 0) {
                        c.handle = Some(h);
                        c.local_port = self.a.tcp().local_addr(h).map_or(0, |l| l.port());
                    }
                }
                self.cur = 2;
            }
            12 => {
                let opts = self.auto_options();
                self.inject(flags::ACK, 0, 0, 65535, &opts, 0, false);
            }
            13 => self.cur = usize::from(input.u8() % 3),
            14 => {
                let opts = syn_options(self.ts_now(), self.conns[self.cur].ts_recent);
                let c = &mut self.conns[self.cur];
                let seq_off = 0i32.wrapping_sub(c.peer_nxt as i32);
                if self.cur == 2 {
                    self.inject(flags::SYN | flags::ACK, seq_off, 0, 65535, &opts, 0, false);
                } else {
                    self.inject(flags::SYN, seq_off, 0, 65535, &opts, 0, false);
                }
            }
            _ => {
                let n = usize::from(input.u16()) % 1461;
                let opts = self.auto_options();
                self.inject(flags::ACK | flags::PSH, 0, 0, 65535, &opts, n, false);
            }
        }
        self.drain();
        self.a.poll_readiness();
        invariants::check(&self.a, &self.config);
    }
}

/// The harness.
pub fn run(data: &[u8]) {
    stats(data);
}

/// What an input reached, to check that the seeds exercise the deep paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections that reached ESTABLISHED (seen after some step).
    pub established: usize,
    /// Bytes the application read, over all connections.
    pub read: u64,
    /// Bytes the application wrote, over all connections.
    pub written: u64,
}

/// Runs the harness and tells what the input reached.
pub fn stats(data: &[u8]) -> Stats {
    let mut seen = [false; 3];
    let mut input = Input::new(data);
    let setup = input.u8();
    let mut h = Harness::new(setup & 1 != 0, setup & 2 != 0, setup & 4 != 0);
    let mut steps = 0;
    while !input.is_empty() && steps < 512 {
        h.step(&mut input);
        steps += 1;
        for (i, c) in h.conns.iter().enumerate() {
            if let Some(state) = c.handle.and_then(|x| h.a.tcp().state(x)) {
                seen[i] |= state == ringstack_stack::tcp::State::Established;
            }
        }
    }
    let stats = Stats {
        established: seen.iter().filter(|&&s| s).count(),
        read: h.conns.iter().map(|c| c.rx_read).sum(),
        written: h.conns.iter().map(|c| c.tx_written).sum(),
    };
    // Let every timer run out.
    for _ in 0..8 {
        h.now += Duration::from_secs(60);
        h.a.handle_timeout(h.now);
        h.drain();
        invariants::check(&h.a, &h.config);
    }
    stats
}
