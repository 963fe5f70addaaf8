//! Target `frame`: any bytes as Ethernet frames into a busy stack.
//!
//! The stack under test ("A", 198.18.0.2) has a TCP listener on port 80, two established TCP
//! connections with a second ringstack ("B", 198.18.0.1) — one accepted on port 80, one opened
//! by A to B's port 8080, both having exchanged a little data —, a UDP socket on port 7 and a
//! ping socket. Setting up is a real handshake between the two stacks.
//!
//! Input: a mode byte, then either one frame (the rest of the input) or, with bit 0, records of
//! `[time delta: u8][length: u16][frame bytes]`. Bit 1 fixes up the IPv4 and transport
//! checksums of each frame ([`wire::fix_checksums`]), so that mutations reach the protocols
//! behind the checks; bit 2 lets B answer what A sends (so injected frames can start real
//! exchanges); bit 3 scales the time deltas to seconds (timers fire: retransmissions, reassembly
//! and ARP expiry, TIME-WAIT).
//!
//! After each frame A runs its due timers, its transmit queue is drained (every emitted frame is
//! parsed and checked), the application side reads every socket, and [`invariants::check`] runs.
//! At the end time jumps past every timeout and reassembly memory must be back to zero.

use core::net::SocketAddrV4;

use ringstack_stack::time::Duration;
use ringstack_stack::{Config, IcmpHandle, Instant, Stack, TcpHandle, UdpHandle};

use crate::input::Input;
use crate::invariants;
use crate::wire::{self, OUR_IP, OUR_MAC, PEER_IP, PEER_MAC};

/// Room for any frame (MTU 1500 + Ethernet header).
pub const FRAME_BUF: usize = 1514;

/// The configuration of the stack under test: small bounds so that inputs can reach them.
pub fn config_a() -> Config {
    let mut c = Config::new(OUR_MAC, OUR_IP, 24);
    c.seed = 0xa;
    c.reassembly.max_memory = 64 * 1024;
    c.reassembly.max_datagrams = 8;
    c.reassembly.timeout = Duration::from_secs(5);
    c.arp.max_entries = 16;
    c.udp_rcv_buf = 16 * 1024;
    c.tcp.rcv_buf = 16 * 1024;
    c.tcp.snd_buf = 16 * 1024;
    c.tcp.max_sockets = 64;
    c.tcp.syn_backlog = 8;
    c.tcp.time_wait = Duration::from_secs(10);
    c
}

/// Two stacks and A's sockets.
#[derive(Debug)]
pub struct World {
    /// The stack under test.
    pub a: Stack,
    /// Its configuration.
    pub config: Config,
    /// A second ringstack, the peer of A's connections.
    pub b: Stack,
    /// Virtual time.
    pub now: Instant,
    /// A's listener (port 80).
    pub listener: TcpHandle,
    /// A's connections (accepted on 80, opened to 8080).
    pub conns: Vec<TcpHandle>,
    /// A's UDP socket (port 7).
    pub udp: UdpHandle,
    /// A's ping socket (ident 1).
    pub ping: IcmpHandle,
    buf: Vec<u8>,
}

/// Every frame `s` has to send now.
pub fn drain(s: &mut Stack, now: Instant, buf: &mut [u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(n) = s.poll_transmit(now, buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

impl World {
    /// Builds the world (deterministic: the same for every input).
    pub fn new() -> World {
        let now = Instant::from_millis(0);
        let config = config_a();
        let mut a = Stack::new(config.clone(), now);
        let mut cb = Config::new(PEER_MAC, PEER_IP, 24);
        cb.seed = 0xb;
        let mut b = Stack::new(cb, now);
        let listener = a.tcp_listen(80, 4).expect("listen 80");
        let b_listener = b.tcp_listen(8080, 4).expect("listen 8080");
        let udp = a.udp_bind(SocketAddrV4::new(OUR_IP, 7)).expect("udp bind");
        let ping = a.ping_open(1).expect("ping open");
        let mut w = World {
            a,
            config,
            b,
            now,
            listener,
            conns: Vec::new(),
            udp,
            ping,
            buf: vec![0; FRAME_BUF],
        };
        let from_b =
            w.b.tcp_connect(now, SocketAddrV4::new(OUR_IP, 80), 40000)
                .expect("connect");
        let to_b =
            w.a.tcp_connect(now, SocketAddrV4::new(PEER_IP, 8080), 40001)
                .expect("connect");
        w.exchange(16);
        let accepted = w.a.tcp_accept(listener).expect("A accepted B's connection");
        let b_accepted =
            w.b.tcp_accept(b_listener)
                .expect("B accepted A's connection");
        w.conns = vec![accepted, to_b];
        // A little data each way, read on both sides, so that the connections have history.
        let now = w.now;
        w.b.tcp_send(now, from_b, b"hello from B").expect("send");
        w.b.tcp_send(now, b_accepted, b"more from B").expect("send");
        w.a.tcp_send(now, accepted, b"hello from A").expect("send");
        w.a.tcp_send(now, to_b, b"more from A").expect("send");
        w.exchange(16);
        w.now += Duration::from_millis(100);
        w.a.handle_timeout(w.now);
        w.b.handle_timeout(w.now);
        w.exchange(16);
        let mut sink = [0u8; 64];
        for c in w.conns.clone() {
            assert!(w.a.tcp_recv(w.now, c, &mut sink).expect("recv") > 0);
        }
        for c in [from_b, b_accepted] {
            assert!(w.b.tcp_recv(w.now, c, &mut sink).expect("recv") > 0);
        }
        w.exchange(16);
        w
    }

    /// Moves frames between A and B until both are quiet (at most `rounds` rounds), checking
    /// every frame A sends.
    pub fn exchange(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let from_a = drain(&mut self.a, self.now, &mut self.buf);
            from_a.iter().for_each(|f| {
                wire::parse_sent(f);
            });
            for f in &from_a {
                self.b.handle_frame(self.now, f);
            }
            let from_b = drain(&mut self.b, self.now, &mut self.buf);
            for f in &from_b {
                self.a.handle_frame(self.now, f);
            }
            if from_a.is_empty() && from_b.is_empty() {
                return;
            }
        }
    }

    /// Drains A without delivering anything to B, checking every frame.
    pub fn drain_a(&mut self) {
        while let Some(n) = self.a.poll_transmit(self.now, &mut self.buf) {
            wire::parse_sent(&self.buf[..n]);
        }
        assert_eq!(self.a.tx_queue_len(), 0, "poll_transmit left frames queued");
    }

    /// Runs A's (and B's) timers if due.
    pub fn timers(&mut self) {
        if self.a.poll_at().is_some_and(|t| t <= self.now) {
            self.a.handle_timeout(self.now);
        }
        if self.b.poll_at().is_some_and(|t| t <= self.now) {
            self.b.handle_timeout(self.now);
        }
    }

    /// The application side: accept, read every socket.
    pub fn app(&mut self) {
        while let Ok(c) = self.a.tcp_accept(self.listener) {
            if self.conns.len() < 8 {
                self.conns.push(c);
            } else {
                let _ = self.a.tcp_abort(self.now, c);
            }
        }
        let mut sink = [0u8; 2048];
        for &c in &self.conns {
            while let Ok(n) = self.a.tcp_recv(self.now, c, &mut sink) {
                if n == 0 {
                    break;
                }
            }
        }
        while self.a.udp_recv_from(self.udp, &mut sink).is_ok() {}
        while self.a.ping_recv(self.ping).is_some() {}
        while self.a.poll_readiness().is_some() {}
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

/// The harness.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let (multi, fix, answer, seconds) =
        (mode & 1 != 0, mode & 2 != 0, mode & 4 != 0, mode & 8 != 0);
    let mut w = World::new();
    let mut frames = 0;
    while !input.is_empty() && frames < 256 {
        frames += 1;
        let mut frame = if multi {
            let dt = u64::from(input.u8());
            w.now += if seconds {
                Duration::from_millis(dt * 250)
            } else {
                Duration::from_millis(dt)
            };
            let len = usize::from(input.u16()) % 2048;
            input.bytes(len).to_vec()
        } else {
            input.rest().to_vec()
        };
        if fix {
            wire::fix_checksums(&mut frame);
        }
        w.a.handle_frame(w.now, &frame);
        invariants::check(&w.a, &w.config);
        w.timers();
        if answer {
            w.exchange(4);
        }
        w.drain_a();
        w.app();
        w.drain_a();
        invariants::check(&w.a, &w.config);
    }
    // Let every timer run out: reassembly must give its memory back.
    for _ in 0..4 {
        w.now += Duration::from_secs(30);
        w.a.handle_timeout(w.now);
        w.drain_a();
        invariants::check(&w.a, &w.config);
    }
    assert_eq!(
        w.a.reassembly_memory(),
        0,
        "reassembly memory held after every timeout"
    );
}
