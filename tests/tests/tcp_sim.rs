//! TCP over the impaired in-memory link, full stack on both sides (Ethernet, ARP, IPv4, TCP):
//! checked transfers (SHA-256 of every byte) in both directions at once, across many seeds, and
//! connection churn that must leave no state behind.

use std::net::SocketAddrV4;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ringstack_nic::{Impairment, Nic};
use ringstack_stack::{Counter, Duration, Instant, Readiness, TcpError, TcpHandle};
use ringstack_tests::{Pair, B};
use sha2::{Digest, Sha256};

/// The impairment the TCP issue asks for.
const HARSH: &str = "loss=5%,dup=1%,reorder=5%,corrupt=0.5%,delay=1ms,jitter=200us";

/// One side of a bidirectional transfer.
struct Side {
    data: Vec<u8>,
    sent: usize,
    shut: bool,
    received: Sha256,
    received_len: usize,
    eof: bool,
    last_progress: Instant,
    longest_stall: Duration,
}

impl Side {
    fn new(seed: u64, len: usize) -> Side {
        let mut data = vec![0u8; len];
        ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
        Side {
            data,
            sent: 0,
            shut: false,
            received: Sha256::new(),
            received_len: 0,
            eof: false,
            last_progress: Instant::from_millis(0),
            longest_stall: Duration::ZERO,
        }
    }

    /// Writes what fits, half-closes when done, reads what arrived.
    fn pump(&mut self, now: Instant, stack: &mut ringstack_stack::Stack, h: TcpHandle) {
        let mut buf = [0u8; 64 * 1024];
        if self.sent < self.data.len() {
            match stack.tcp_send(now, h, &self.data[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(TcpError::WouldBlock) => {}
                Err(e) => panic!("send: {e}"),
            }
        } else if !self.shut && stack.readiness(h.into()).contains(Readiness::WRITABLE) {
            stack.tcp_shutdown(now, h).expect("shutdown");
            self.shut = true;
        }
        loop {
            match stack.tcp_recv(now, h, &mut buf) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.received.update(&buf[..n]);
                    self.received_len += n;
                    self.longest_stall = self.longest_stall.max(now - self.last_progress);
                    self.last_progress = now;
                }
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
}

struct Outcome {
    elapsed: Duration,
    retransmits: u64,
    longest_stall: Duration,
}

/// Transfers `len` bytes each way at once between A (client) and B (server) and checks both
/// byte streams by SHA-256.
fn bidirectional(seed: u64, spec: &str, len: usize) -> Outcome {
    let imp: Impairment = spec.parse().unwrap();
    let mut p = Pair::new(imp, seed, |c| c.tcp.time_wait = Duration::from_secs(1));
    let listener = p.b.stack().tcp_listen(5001, 8).unwrap();
    let now = p.sim.now;
    let client =
        p.a.stack()
            .tcp_connect(now, SocketAddrV4::new(B, 5001), 0)
            .unwrap();
    let mut a = Side::new(seed * 2, len);
    let mut b = Side::new(seed * 2 + 1, len);
    let mut server = None;
    let done = p.run_until(Duration::from_secs(3600), |now, ha, hb| {
        a.pump(now, ha.stack(), client);
        if server.is_none() {
            server = hb.stack().tcp_accept(listener).ok();
        }
        if let Some(s) = server {
            b.pump(now, hb.stack(), s);
        }
        a.eof && b.eof && a.shut && b.shut
    });
    assert!(
        done,
        "seed {seed}: transfer stalled: A got {} B got {} of {len}",
        a.received_len, b.received_len
    );
    assert_eq!(a.received_len, len, "seed {seed}");
    assert_eq!(b.received_len, len, "seed {seed}");
    assert_eq!(
        a.received.finalize()[..],
        Sha256::digest(&b.data)[..],
        "seed {seed}: B→A bytes differ"
    );
    assert_eq!(
        b.received.finalize()[..],
        Sha256::digest(&a.data)[..],
        "seed {seed}: A→B bytes differ"
    );
    let elapsed = p.sim.now - Instant::from_millis(0);
    // Closing: both sockets go away (TIME-WAIT is 1 s here).
    let now = p.sim.now;
    p.a.stack().tcp_close(now, client).unwrap();
    p.b.stack().tcp_close(now, server.unwrap()).unwrap();
    p.advance(Duration::from_secs(120));
    assert_eq!(
        p.a.stack_ref().tcp().socket_count(),
        0,
        "seed {seed}: A leaked a socket"
    );
    assert_eq!(
        p.b.stack_ref().tcp().socket_count(),
        1,
        "seed {seed}: only B's listener remains"
    );
    let retransmits = p.a.stack_ref().counters().get(Counter::TcpRetransSegs)
        + p.b.stack_ref().counters().get(Counter::TcpRetransSegs);
    let corrupted = p.a.nic().stats().corrupted + p.b.nic().stats().corrupted;
    if spec.contains("corrupt") && len > 1_000_000 {
        assert!(
            corrupted > 0,
            "the link corrupted frames, and every one was caught"
        );
    }
    Outcome {
        elapsed,
        retransmits,
        longest_stall: a.longest_stall.max(b.longest_stall),
    }
}

#[test]
fn clean_link_ten_megabytes_each_way() {
    let o = bidirectional(1, "delay=1ms", 10 << 20);
    println!(
        "clean: {:?} virtual, {} retransmits",
        o.elapsed, o.retransmits
    );
    assert_eq!(o.retransmits, 0, "no loss, no retransmission");
}

/// The acceptance test of the TCP issue: 10 MB each way under 5% loss, 1% duplication, 5%
/// reordering and 0.5% corruption, byte-exact, across 50 seeds.
#[test]
fn harsh_link_ten_megabytes_each_way_fifty_seeds() {
    let seeds: u64 = std::env::var("TCP_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let mut worst_stall = Duration::ZERO;
    for seed in 1..=seeds {
        let o = bidirectional(seed, HARSH, 10 << 20);
        println!(
            "seed {seed:>3}: {:>8.1} s virtual, {:>6} retransmits, longest stall {:?}",
            o.elapsed.total_millis() as f64 / 1000.0,
            o.retransmits,
            o.longest_stall
        );
        worst_stall = worst_stall.max(o.longest_stall);
    }
    assert!(
        worst_stall < Duration::from_secs(30),
        "a transfer stalled for {worst_stall:?}"
    );
}

/// Thousands of open/transfer/close cycles leave no state behind on either side.
#[test]
fn connection_churn_leaves_no_state() {
    let mut p = Pair::new("loss=1%,delay=200us".parse().unwrap(), 5, |c| {
        c.tcp.time_wait = Duration::from_millis(500)
    });
    let listener = p.b.stack().tcp_listen(80, 64).unwrap();
    let request = b"GET / HTTP/1.0\r\n\r\n";
    for i in 0..2000u32 {
        let now = p.sim.now;
        let c =
            p.a.stack()
                .tcp_connect(now, SocketAddrV4::new(B, 80), 0)
                .unwrap();
        let mut server = None;
        let mut got_request = 0;
        let mut got_reply = Vec::new();
        let mut sent_req = false;
        let mut buf = [0u8; 256];
        let ok = p.run_until(Duration::from_secs(60), |now, a, b| {
            if !sent_req && a.stack().readiness(c.into()).contains(Readiness::WRITABLE) {
                assert_eq!(a.stack().tcp_send(now, c, request).unwrap(), request.len());
                sent_req = true;
            }
            if server.is_none() {
                server = b.stack().tcp_accept(listener).ok();
            }
            if let Some(s) = server {
                while let Ok(n) = b.stack().tcp_recv(now, s, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    got_request += n;
                    if got_request == request.len() {
                        let reply = format!("reply {i}");
                        b.stack().tcp_send(now, s, reply.as_bytes()).unwrap();
                        b.stack().tcp_close(now, s).unwrap();
                    }
                }
            }
            loop {
                match a.stack().tcp_recv(now, c, &mut buf) {
                    Ok(0) => return true,
                    Ok(n) => got_reply.extend_from_slice(&buf[..n]),
                    Err(_) => return false,
                }
            }
        });
        assert!(ok, "cycle {i} did not complete");
        assert_eq!(got_reply, format!("reply {i}").as_bytes());
        let now = p.sim.now;
        p.a.stack().tcp_close(now, c).unwrap();
    }
    p.advance(Duration::from_secs(300));
    assert_eq!(
        p.a.stack_ref().tcp().socket_count(),
        0,
        "client side leaked"
    );
    assert_eq!(
        p.b.stack_ref().tcp().socket_count(),
        1,
        "server side: only the listener"
    );
    let a = p.a.stack_ref().counters();
    assert_eq!(a.get(Counter::TcpActiveOpens), 2000);
    assert_eq!(
        p.b.stack_ref().counters().get(Counter::TcpPassiveOpens),
        2000
    );
}

/// Bytes an echo server holds before it stops reading (as `ringstack serve`'s echo service).
const ECHO_HIGH_WATER: usize = 256 * 1024;

/// The echo service's loop: send what is pending, read more only while under the high-water
/// mark (backpressure: the receive window closes while our own send buffer is full).
struct EchoServer {
    pending: Vec<u8>,
    eof: bool,
    shut: bool,
}

impl EchoServer {
    fn pump(&mut self, now: Instant, stack: &mut ringstack_stack::Stack, h: TcpHandle) {
        let mut buf = [0u8; 64 * 1024];
        loop {
            if !self.pending.is_empty() {
                match stack.tcp_send(now, h, &self.pending) {
                    Ok(n) => {
                        self.pending.drain(..n);
                    }
                    Err(TcpError::WouldBlock) => {}
                    Err(e) => panic!("echo send: {e}"),
                }
            }
            if self.eof || self.pending.len() >= ECHO_HIGH_WATER {
                break;
            }
            match stack.tcp_recv(now, h, &mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    continue;
                }
                Err(TcpError::WouldBlock) => {}
                Err(e) => panic!("echo recv: {e}"),
            }
            break;
        }
        if self.eof && self.pending.is_empty() && !self.shut {
            stack.tcp_shutdown(now, h).expect("echo shutdown");
            self.shut = true;
        }
    }
}

/// A 5 MB echo through a backpressuring echo server (the lab's `echo` over
/// `serve --impair`), byte-exact. The server's receive window closes again and again while its
/// own send buffer is full. Note: with ringstack on both ends this did not reproduce the lab's
/// stall (ringstack's sender avoids small segments, so it never fills a window to the byte the
/// way Linux does); the exact mechanisms are pinned by `tests/scripts/ack_at_window_edge.pkt`
/// and `tests/scripts/window_scale_never_overcommits.pkt`. This keeps the whole shape covered.
fn echo_backpressure(seed: u64, spec: &str, len: usize) -> Outcome {
    let imp: Impairment = spec.parse().unwrap();
    let mut p = Pair::new(imp, seed, |c| c.tcp.time_wait = Duration::from_secs(1));
    let listener = p.b.stack().tcp_listen(7, 8).unwrap();
    let now = p.sim.now;
    let client =
        p.a.stack()
            .tcp_connect(now, SocketAddrV4::new(B, 7), 0)
            .unwrap();
    let mut a = Side::new(seed * 2, len);
    let mut echo = EchoServer {
        pending: Vec::new(),
        eof: false,
        shut: false,
    };
    let mut server = None;
    let done = p.run_until(Duration::from_secs(600), |now, ha, hb| {
        a.pump(now, ha.stack(), client);
        if server.is_none() {
            server = hb.stack().tcp_accept(listener).ok();
        }
        if let Some(s) = server {
            echo.pump(now, hb.stack(), s);
        }
        a.eof && a.shut
    });
    let longest_stall = a.longest_stall.max(p.sim.now - a.last_progress);
    assert!(
        done,
        "seed {seed}: echo stalled: {} of {len} bytes back, longest stall {longest_stall:?}",
        a.received_len
    );
    assert_eq!(a.received_len, len, "seed {seed}");
    assert_eq!(
        a.received.finalize()[..],
        Sha256::digest(&a.data)[..],
        "seed {seed}: echoed bytes differ"
    );
    let retransmits = p.a.stack_ref().counters().get(Counter::TcpRetransSegs)
        + p.b.stack_ref().counters().get(Counter::TcpRetransSegs);
    Outcome {
        elapsed: p.sim.now - Instant::from_millis(0),
        retransmits,
        longest_stall,
    }
}

/// The lab's impaired echo, deterministically: 5 MB through a backpressuring echo server under
/// 5% loss, 2% reordering, 1% duplication and 0.5% corruption, across seeds, with no long
/// stall.
#[test]
fn harsh_link_echo_with_backpressure() {
    let seeds: u64 = std::env::var("TCP_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let spec = "loss=5%,reorder=2%,dup=1%,corrupt=0.5%,delay=1ms";
    let mut worst_stall = Duration::ZERO;
    for seed in 1..=seeds {
        let o = echo_backpressure(seed, spec, 5 << 20);
        println!(
            "echo seed {seed:>3}: {:>8.1} s virtual, {:>6} retransmits, longest stall {:?}",
            o.elapsed.total_millis() as f64 / 1000.0,
            o.retransmits,
            o.longest_stall
        );
        worst_stall = worst_stall.max(o.longest_stall);
    }
    assert!(
        worst_stall < Duration::from_secs(5),
        "an echo stalled for {worst_stall:?}"
    );
}

/// What a one-way bulk transfer cost the sender.
#[derive(Debug)]
struct OneWay {
    /// Virtual time from `connect` to the receiver's end of stream.
    elapsed: Duration,
    /// Longest time the receiver got no new in-order byte.
    longest_stall: Duration,
    timeouts: u64,
    fast_retrans: u64,
    retrans_segs: u64,
    loss_probes: u64,
    data_segs_out: u64,
}

/// `len` bytes from B (the server, like ringstack's HTTP server) to A, half-closed at the end, over
/// a link impaired by `spec` both ways; byte-exact. Reports the sender's loss-recovery counters.
fn one_way(seed: u64, spec: &str, len: usize) -> OneWay {
    let imp: Impairment = spec.parse().unwrap();
    let mut p = Pair::new(imp, seed, |c| c.tcp.time_wait = Duration::from_secs(1));
    let listener = p.b.stack().tcp_listen(80, 8).unwrap();
    let start = p.sim.now;
    let client =
        p.a.stack()
            .tcp_connect(start, SocketAddrV4::new(B, 80), 0)
            .unwrap();
    let mut tx = Side::new(seed * 2 + 1, len);
    let mut rx = Side::new(0, 0);
    rx.last_progress = start;
    let mut server = None;
    let done = p.run_until(Duration::from_secs(3600), |now, ha, hb| {
        rx.pump(now, ha.stack(), client);
        if server.is_none() {
            server = hb.stack().tcp_accept(listener).ok();
        }
        if let Some(s) = server {
            tx.pump(now, hb.stack(), s);
        }
        rx.eof
    });
    assert!(
        done,
        "seed {seed}: one-way transfer stalled at {} of {len}",
        rx.received_len
    );
    assert_eq!(rx.received_len, len, "seed {seed}");
    assert_eq!(
        rx.received.finalize()[..],
        Sha256::digest(&tx.data)[..],
        "seed {seed}: bytes differ"
    );
    let elapsed = p.sim.now - start;
    let s = server.unwrap();
    let info = p.b.stack_ref().tcp().info(s).expect("server socket");
    let c = p.b.stack_ref().counters();
    OneWay {
        elapsed,
        longest_stall: rx.longest_stall,
        timeouts: c.get(Counter::TcpExtTCPTimeouts),
        fast_retrans: c.get(Counter::TcpExtTCPFastRetrans),
        retrans_segs: c.get(Counter::TcpRetransSegs),
        loss_probes: c.get(Counter::TcpExtTCPLossProbes),
        data_segs_out: info.data_segs_out,
    }
}

/// The lab's slow case, deterministically: 10 MB from ringstack under 5% loss both ways (data
/// and ACKs) on a short path (100 µs each way, like a veth pair), across seeds. Reports what
/// loss recovery cost (simulated time, RTOs vs fast retransmits, loss probes).
///
/// With RFC 6675 recovery alone this took 20-68 s of simulated time per seed (mean 31.6 s over
/// seeds 1-10): with windows of a few segments most losses never drew three duplicate ACKs,
/// and every one became a retransmission timeout — 80-140 of them, at least 200 ms each
/// against a 0.2 ms RTT, with backoff. RACK-TLP (RFC 8985) finds them by time and by probing:
/// 2-5 s (mean 3.1 s), a handful of timeouts.
#[test]
fn lossy_link_ten_megabytes_one_way() {
    let seeds: u64 = std::env::var("TCP_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let spec = "loss=5%,delay=100us";
    let mut total = Duration::ZERO;
    let mut worst = Duration::ZERO;
    for seed in 1..=seeds {
        let o = one_way(seed, spec, 10 << 20);
        println!(
            "one-way seed {seed:>3}: {:>7.2} s virtual, RTOs {:>4}, fast retransmits {:>4}, \
             loss probes {:>4}, retransmitted {:>5} of {:>5} segments, longest stall {:?}",
            o.elapsed.total_millis() as f64 / 1000.0,
            o.timeouts,
            o.fast_retrans,
            o.loss_probes,
            o.retrans_segs,
            o.data_segs_out,
            o.longest_stall
        );
        total += o.elapsed;
        worst = worst.max(o.elapsed);
    }
    println!(
        "one-way 10 MB under {spec}: mean {:.2} s, worst {:.2} s virtual",
        total.total_millis() as f64 / 1000.0 / seeds as f64,
        worst.total_millis() as f64 / 1000.0
    );
    // Simulated time, not wall clock: deterministic for these seeds.
    assert!(
        worst < Duration::from_secs(8),
        "10 MB under {spec} took {worst:?} of simulated time"
    );
}
