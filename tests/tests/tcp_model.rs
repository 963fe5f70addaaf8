//! Model-based property test of the TCP engine: two `Stack`s back to back over a wire the test
//! controls frame by frame, driven by random sequences of application calls (send N bytes,
//! receive, shutdown) and network events (deliver, drop, duplicate, reorder, delay, advance
//! time), checked against a model of each byte stream.
//!
//! The model of a direction is just "the writer has written bytes `0..written` of a known
//! pattern; the reader has read `0..read`". After every step:
//! - what a reader read is exactly the next bytes of the writer's pattern (no byte delivered
//!   twice, out of order or altered), and never beyond what was written;
//! - end of stream is seen only after the writer shut down and only once every byte was read;
//! - `TcpInfo`: in flight ≤ send queue + SYN + FIN (`snd_una <= snd_nxt`), send and receive
//!   queues and out-of-order bytes within the buffer sizes, acked ≤ sent (buffers bounded);
//! - every data segment stays within the window its receiver last advertised.
//!
//! Then the network heals (every queued frame delivered in order, no more loss) and time
//! advances: every byte written must be delivered, and end of stream must follow each shutdown
//! (liveness).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};

use proptest::prelude::*;
use ringstack_stack::tcp::options::TcpOptions;
use ringstack_stack::tcp::State;
use ringstack_stack::{Config, Duration, Instant, Stack, TcpError, TcpHandle};

const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const BUF: usize = 8 * 1024;

/// Byte `pos` of the stream written by side `side`.
fn stream_byte(side: usize, pos: u64) -> u8 {
    let x = pos.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((side as u64 + 1) << 60);
    (x >> 56) as u8 ^ (pos as u8)
}

fn stream(side: usize, pos: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| stream_byte(side, pos + i))
        .collect()
}

fn config(mac: u8, addr: Ipv4Addr, seed: u64) -> Config {
    let mut c = Config::new([2, 0, 0, 0, 0, mac], addr, 24);
    c.seed = seed;
    c.tcp.rcv_buf = BUF;
    c.tcp.snd_buf = BUF;
    c.tcp.max_rto = Duration::from_secs(4);
    c.tcp.max_retries = 1000;
    c.tcp.syn_retries = 1000;
    c
}

#[derive(Clone, Debug)]
enum Step {
    Send(usize, usize),
    Recv(usize, usize),
    Shutdown(usize),
    /// Deliver the frame at this index of the queue towards this side.
    Deliver(usize, usize),
    Drop(usize, usize),
    Duplicate(usize, usize),
    /// Move the frame at this index to the back of the queue (it arrives after the others).
    Delay(usize, usize),
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let side = 0..2usize;
    prop_oneof![
        3 => (side.clone(), 1..6000usize).prop_map(|(s, n)| Step::Send(s, n)),
        3 => (side.clone(), 1..6000usize).prop_map(|(s, n)| Step::Recv(s, n)),
        1 => side.clone().prop_map(Step::Shutdown),
        8 => (side.clone(), any::<usize>()).prop_map(|(s, i)| Step::Deliver(s, i)),
        2 => (side.clone(), any::<usize>()).prop_map(|(s, i)| Step::Drop(s, i)),
        1 => (side.clone(), any::<usize>()).prop_map(|(s, i)| Step::Duplicate(s, i)),
        2 => (side, any::<usize>()).prop_map(|(s, i)| Step::Delay(s, i)),
        3 => (1..3000u64).prop_map(Step::Advance),
    ]
}

/// One end: its stack, its connection, and the model of both streams at this end.
struct End {
    stack: Stack,
    conn: TcpHandle,
    written: u64,
    read: u64,
    shut: bool,
    eof: bool,
    /// The right edge of the window this end last advertised (ack + window << scale), and the
    /// shift its peer must apply to its window field.
    adv_right: Option<u32>,
    wscale: u8,
}

struct Net {
    now: Instant,
    ends: [End; 2],
    /// Frames in flight towards each side.
    wire: [VecDeque<Vec<u8>>; 2],
    buf: Vec<u8>,
}

/// A TCP segment's fields the checks need.
struct Seg {
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: TcpOptions,
    len: usize,
}

fn parse(frame: &[u8]) -> Option<Seg> {
    let ip = frame.get(14..)?;
    if frame[12..14] != [8, 0] || ip[9] != 6 {
        return None;
    }
    let ihl = usize::from(ip[0] & 15) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let seg = ip.get(ihl..total)?;
    let hlen = usize::from(seg[12] >> 4) * 4;
    Some(Seg {
        seq: u32::from_be_bytes(seg[4..8].try_into().unwrap()),
        ack: u32::from_be_bytes(seg[8..12].try_into().unwrap()),
        flags: seg[13],
        window: u16::from_be_bytes([seg[14], seg[15]]),
        options: TcpOptions::parse(&seg[20..hlen]).expect("ringstack emits valid options"),
        len: seg.len() - hlen,
    })
}

impl Net {
    fn new(seed: u64) -> Net {
        let now = Instant::from_millis(0);
        let mut a = Stack::new(config(1, A_IP, seed), now);
        let mut b = Stack::new(config(2, B_IP, seed ^ 0xffff), now);
        let listener = b.tcp_listen(80, 4).unwrap();
        let ca = a.tcp_connect(now, SocketAddrV4::new(B_IP, 80), 0).unwrap();
        let end = |stack, conn| End {
            stack,
            conn,
            written: 0,
            read: 0,
            shut: false,
            eof: false,
            adv_right: None,
            wscale: 0,
        };
        let placeholder = ca; // replaced after accept
        let mut net = Net {
            now,
            ends: [end(a, ca), end(b, placeholder)],
            wire: [VecDeque::new(), VecDeque::new()],
            buf: vec![0; 1514],
        };
        for _ in 0..10 {
            net.pump();
            net.flush();
        }
        net.ends[1].conn = net.ends[1].stack.tcp_accept(listener).expect("accepted");
        assert_eq!(net.ends[0].stack.tcp().state(ca), Some(State::Established));
        net
    }

    /// Moves what each stack sends onto the wire, checking each segment.
    fn pump(&mut self) {
        for from in 0..2 {
            while let Some(n) = self.ends[from].stack.poll_transmit(self.now, &mut self.buf) {
                let frame = self.buf[..n].to_vec();
                if let Some(seg) = parse(&frame) {
                    self.observe(from, &seg);
                }
                if self.wire[1 - from].len() < 512 {
                    self.wire[1 - from].push_back(frame);
                }
            }
        }
    }

    /// Window checks on a segment sent by `from`.
    fn observe(&mut self, from: usize, seg: &Seg) {
        let syn = seg.flags & 0x02 != 0;
        if syn {
            // The shift `from` will apply to the windows it advertises.
            self.ends[from].wscale = seg.options.wscale.unwrap_or(0);
        }
        let to = 1 - from;
        if std::env::var_os("TCP_MODEL_TRACE").is_some() {
            eprintln!(
                "{from}> seq {} ack {} flags {:02x} win {} len {} {:?}",
                seg.seq, seg.ack, seg.flags, seg.window, seg.len, seg.options
            );
        }
        // RFC 9293 §3.8.6: no data beyond the largest right edge the receiver advertised — an
        // RTO retransmission of the head included (issue 8: it used to carry a full MSS from
        // snd_una, never-sent bytes past the edge among them).
        if seg.len > 0 && !syn {
            if let Some(right) = self.ends[to].adv_right {
                let end = seg.seq.wrapping_add(seg.len as u32);
                assert!(
                    end.wrapping_sub(right) as i32 <= 0,
                    "side {from} sent {}..{end} beyond the window's right edge {right}",
                    seg.seq
                );
            }
        }
        if seg.flags & 0x10 != 0 {
            // The window of a SYN-ACK is never scaled (RFC 7323 §2.2).
            let shift = if syn { 0 } else { self.ends[from].wscale };
            let wnd = u32::from(seg.window) << shift;
            let right = seg.ack.wrapping_add(wnd);
            let e = &mut self.ends[from];
            // The largest right edge advertised so far: a receiver may shrink its window
            // (RFC 9293 §3.8.6 discourages it), and data sent within the earlier, larger window
            // is then legitimate, so that is what the sender is checked against.
            if e.adv_right.is_none_or(|r| right.wrapping_sub(r) as i32 > 0) {
                e.adv_right = Some(right);
            }
        }
    }

    fn timers(&mut self) {
        for e in &mut self.ends {
            if e.stack.poll_at().is_some_and(|t| t <= self.now) {
                e.stack.handle_timeout(self.now);
            }
        }
    }

    /// Delivers every queued frame in order.
    fn flush(&mut self) {
        for to in 0..2 {
            while let Some(f) = self.wire[to].pop_front() {
                self.ends[to].stack.handle_frame(self.now, &f);
            }
        }
    }

    fn recv(&mut self, side: usize, n: usize) {
        let e = &mut self.ends[side];
        let mut buf = vec![0u8; n];
        match e.stack.tcp_recv(self.now, e.conn, &mut buf) {
            Ok(0) => {
                let (peer_written, peer_shut) =
                    (self.ends[1 - side].written, self.ends[1 - side].shut);
                let e = &mut self.ends[side];
                assert!(peer_shut, "EOF on side {side} without a shutdown");
                assert_eq!(e.read, peer_written, "EOF on side {side} before every byte");
                e.eof = true;
            }
            Ok(k) => {
                let pos = e.read;
                assert!(!e.eof, "data after EOF on side {side}");
                assert_eq!(
                    buf[..k],
                    stream(1 - side, pos, k)[..],
                    "side {side} read bytes {pos}..{} that are not the peer's stream",
                    pos + k as u64
                );
                e.read += k as u64;
                assert!(
                    e.read <= self.ends[1 - side].written,
                    "side {side} read more than was written"
                );
            }
            Err(_) => {}
        }
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Send(s, n) => {
                let e = &mut self.ends[s];
                if !e.shut {
                    let data = stream(s, e.written, n);
                    let k = match e.stack.tcp_send(self.now, e.conn, &data) {
                        Ok(k) => k,
                        Err(TcpError::WouldBlock) => 0,
                        Err(err) => panic!("send on side {s}: {err}"),
                    };
                    assert!(k <= n);
                    e.written += k as u64;
                }
            }
            Step::Recv(s, n) => self.recv(s, n),
            Step::Shutdown(s) => {
                let e = &mut self.ends[s];
                if !e.shut {
                    e.stack.tcp_shutdown(self.now, e.conn).expect("shutdown");
                    e.shut = true;
                }
            }
            Step::Deliver(to, i) => {
                if !self.wire[to].is_empty() {
                    let i = i % self.wire[to].len();
                    let f = self.wire[to].remove(i).unwrap();
                    self.ends[to].stack.handle_frame(self.now, &f);
                }
            }
            Step::Drop(to, i) => {
                if !self.wire[to].is_empty() {
                    let i = i % self.wire[to].len();
                    self.wire[to].remove(i);
                }
            }
            Step::Duplicate(to, i) => {
                if !self.wire[to].is_empty() && self.wire[to].len() < 512 {
                    let i = i % self.wire[to].len();
                    let f = self.wire[to][i].clone();
                    self.wire[to].push_back(f);
                }
            }
            Step::Delay(to, i) => {
                if !self.wire[to].is_empty() {
                    let i = i % self.wire[to].len();
                    let f = self.wire[to].remove(i).unwrap();
                    self.wire[to].push_back(f);
                }
            }
            Step::Advance(ms) => {
                self.now += Duration::from_millis(ms);
                self.timers();
            }
        }
        self.pump();
        self.check();
    }

    fn check(&self) {
        for (side, e) in self.ends.iter().enumerate() {
            let i = e.stack.tcp().info(e.conn).expect("the connection lives");
            assert!(i.error.is_none(), "side {side} failed: {i:?}");
            assert!(
                i.unacked as usize <= i.send_queue + 2,
                "side {side}: in flight beyond the send queue (snd_una > snd_nxt?): {i:?}"
            );
            assert!(i.send_queue <= BUF, "side {side}: send queue {i:?}");
            assert!(i.recv_queue <= BUF, "side {side}: receive queue {i:?}");
            assert!(
                i.ofo_bytes as usize <= BUF,
                "side {side}: out of order {i:?}"
            );
            assert!(i.bytes_acked <= i.bytes_sent, "side {side}: {i:?}");
            assert!(
                i.bytes_acked <= e.written,
                "side {side}: acked more than written"
            );
            assert!(
                e.stack.tx_queue_len() == 0,
                "side {side}: frames left queued"
            );
        }
    }

    /// Heals the network and runs until every written byte was read and every shutdown seen,
    /// or `limit` of virtual time passes.
    fn heal(&mut self, limit: Duration) {
        let deadline = self.now + limit;
        loop {
            self.flush();
            self.pump();
            for s in 0..2 {
                while self.ends[s].read < self.ends[1 - s].written
                    || (self.ends[1 - s].shut && !self.ends[s].eof)
                {
                    let before = (self.ends[s].read, self.ends[s].eof);
                    self.recv(s, 4096);
                    if (self.ends[s].read, self.ends[s].eof) == before {
                        break;
                    }
                }
            }
            self.pump();
            self.check();
            let done = (0..2).all(|s| {
                self.ends[s].read == self.ends[1 - s].written
                    && (!self.ends[1 - s].shut || self.ends[s].eof)
            });
            if done {
                return;
            }
            assert!(
                self.now < deadline,
                "not delivered after healing: A wrote {} (B read {}), B wrote {} (A read {}); \
                 A {:?}; B {:?}",
                self.ends[0].written,
                self.ends[1].read,
                self.ends[1].written,
                self.ends[0].read,
                self.ends[0].stack.tcp().info(self.ends[0].conn),
                self.ends[1].stack.tcp().info(self.ends[1].conn),
            );
            if self.wire.iter().all(|w| w.is_empty()) {
                let next = (0..2)
                    .filter_map(|s| self.ends[s].stack.poll_at())
                    .min()
                    .unwrap_or(self.now + Duration::from_millis(100));
                self.now = next.max(self.now + Duration::from_millis(1));
                self.timers();
                self.pump();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn byte_streams_survive_any_network(
        seed in any::<u64>(),
        steps in prop::collection::vec(step(), 1..200),
    ) {
        let mut net = Net::new(seed);
        for s in &steps {
            net.apply(s);
        }
        net.heal(Duration::from_secs(600));
    }
}

/// A fixed sequence with every kind of event, so a regression shows without proptest's search.
#[test]
fn lossy_bidirectional_transfer_with_shutdowns() {
    let mut net = Net::new(7);
    let mut steps = Vec::new();
    for i in 0..40usize {
        steps.push(Step::Send(i % 2, 1000 + 97 * i));
        steps.push(Step::Drop(i % 2, i));
        steps.push(Step::Duplicate(1 - i % 2, i * 3));
        steps.push(Step::Delay(i % 2, i * 7));
        steps.push(Step::Deliver(0, i));
        steps.push(Step::Deliver(1, i * 5));
        steps.push(Step::Recv(1 - i % 2, 3000));
        steps.push(Step::Advance(50 + 13 * i as u64));
    }
    steps.push(Step::Shutdown(0));
    steps.push(Step::Shutdown(1));
    for s in &steps {
        net.apply(s);
    }
    net.heal(Duration::from_secs(600));
    assert!(net.ends.iter().all(|e| e.written > 10_000));
}
