//! Regressions found by the fuzz targets (`fuzz/`) and the TCP model test
//! (`tests/tests/tcp_model.rs`), each minimized to a byte fixture.
//!
//! Tests of bugs that are not fixed yet are `#[ignore]`d with the reason (the file and line to
//! fix); run them with `cargo test -p ringstack-stack --test fuzz_regressions -- --ignored`, and
//! drop the `#[ignore]` with the fix.

mod common;

use common::*;
use ringstack_stack::tcp::State;
use ringstack_stack::{Config, Duration, Stack};

/// The same frame through a stack that listens on every path.
fn busy() -> Stack {
    let mut s = stack_with_peer();
    let _ = s.udp_bind(sock(OUR_IP, 7)).unwrap();
    let _ = s.ping_open(1).unwrap();
    let _ = s.tcp_listen(80, 4).unwrap();
    s
}

/// fuzz `frame`: `checksum::accumulate` adds the trailing words to a sum that the 8-byte loop
/// can leave at `u64::MAX`: 8 bytes of 0xff then 2 more overflow (a panic with overflow checks,
/// a wrong checksum without). Any remote host triggers it with a 10-byte ICMP message of 0xff.
#[test]
fn checksum_sum_overflow() {
    assert_eq!(ringstack_stack::checksum::checksum(&[0xff; 10]), 0);
    assert_eq!(ringstack_stack::checksum::checksum(&[0xff; 9]), 0x00ff);
    let mut s = busy();
    s.handle_frame(t(1), &icmp_frame(&[0xff; 10]));
    let udp = Ip::new(PEER_IP, OUR_IP, PROTO_UDP).build(&[0xff; 11]);
    s.handle_frame(t(2), &from_peer(&udp));
    let _ = drain(&mut s, t(2));
}

/// The same through each checksum the stack verifies on input: ICMP, UDP (pseudo-header plus
/// 8 bytes of 0xff, odd tail), TCP.
#[test]
fn checksum_overflow_from_the_wire() {
    let mut s = busy();
    let mut msg = vec![0xff; 8];
    msg.extend_from_slice(&[0x12, 0x34, 0x56]);
    s.handle_frame(t(1), &icmp_frame(&msg));
    // For UDP and TCP the 8 bytes must make the pseudo-header sum wrap to exactly u64::MAX.
    let pseudo = ringstack_stack::checksum::pseudo_header(PEER_IP, OUR_IP, PROTO_UDP, 11);
    let mut dgram = (u64::MAX - pseudo).to_be_bytes().to_vec();
    dgram.extend_from_slice(&[0xab, 0xcd, 0xef]);
    s.handle_frame(
        t(2),
        &from_peer(&Ip::new(PEER_IP, OUR_IP, PROTO_UDP).build(&dgram)),
    );
    let _ = drain(&mut s, t(2));
}

/// fuzz `frame`/`script`: right after a SYN creates a SYN-RECEIVED connection, and until its
/// SYN-ACK is built, `rcv_adv` is still `SeqNum(0)`, so `TcpInfo::rcv_wnd`
/// (`rcv_adv - rcv_nxt`) reads a garbage window (65255 for ISN 0xffff0118, with a 16 KiB
/// buffer).
#[test]
fn syn_received_window_before_synack() {
    let mut cfg = config();
    cfg.tcp.rcv_buf = 16 * 1024;
    let mut s = stack_with(cfg);
    learn_peer(&mut s, t(0));
    let _ = s.tcp_listen(80, 4).unwrap();
    s.handle_frame(t(1), &tcp_syn(0xffff_0118));
    for h in s.tcp().handles().collect::<Vec<_>>() {
        let i = s.tcp().info(h).unwrap();
        if i.state == State::SynReceived {
            assert!(
                i.rcv_wnd <= 16 * 1024,
                "rcv_wnd {} before the SYN-ACK",
                i.rcv_wnd
            );
        }
    }
}

/// fuzz `script`: a connection aborted by its retransmission timeout (`TimedOut`) reports
/// `unacked` = its last in-flight bytes (1448) with an emptied send queue (0): `snd_una`,
/// `snd_max` are left as they were when the send buffer is dropped.
#[test]
fn timed_out_connection_reports_nothing_in_flight() {
    let mut cfg = Config::new(OUR_MAC, OUR_IP, 24);
    cfg.tcp.max_retries = 2;
    cfg.tcp.max_rto = Duration::from_secs(2);
    let mut a = stack_with(cfg);
    let mut b = Stack::new(Config::new(PEER_MAC, PEER_IP, 24), t(0));
    let _ = b.tcp_listen(80, 4).unwrap();
    let c = a.tcp_connect(t(0), sock(PEER_IP, 80), 0).unwrap();
    for _ in 0..8 {
        for f in drain(&mut a, t(0)) {
            b.handle_frame(t(0), &f);
        }
        for f in drain(&mut b, t(0)) {
            a.handle_frame(t(0), &f);
        }
    }
    assert_eq!(a.tcp().state(c), Some(State::Established));
    a.tcp_send(t(0), c, &[7; 3000]).unwrap();
    // The peer is gone: nothing reaches it any more.
    let mut now = 0;
    while now < 120_000 && a.tcp().info(c).unwrap().error.is_none() {
        now += 100;
        a.handle_timeout(t(now));
        let _ = drain(&mut a, t(now));
    }
    let i = a.tcp().info(c).unwrap();
    assert!(i.error.is_some(), "never timed out: {i:?}");
    assert!(
        i.unacked as usize <= i.send_queue + 2,
        "in flight {} with a send queue of {}",
        i.unacked,
        i.send_queue
    );
}

/// A SYN from the peer's port 5555 to port 80 with sequence number `seq` and no options.
fn tcp_syn(seq: u32) -> Vec<u8> {
    let mut seg = vec![0u8; 20];
    seg[0..2].copy_from_slice(&5555u16.to_be_bytes());
    seg[2..4].copy_from_slice(&80u16.to_be_bytes());
    seg[4..8].copy_from_slice(&seq.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = 0x02;
    seg[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let len = (seg.len() as u16).to_be_bytes();
    let c = inet_checksum(&[
        &PEER_IP.octets(),
        &OUR_IP.octets(),
        &[0, 6, len[0], len[1]],
        &seg,
    ]);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    from_peer(&Ip::new(PEER_IP, OUR_IP, 6).build(&seg))
}
