//! Every configurable resource limit, hit on purpose and seen counted: TCP sockets, the SYN
//! backlog (with and without SYN cookies), the accept queue (and its `max_accept_backlog` cap),
//! the per-connection receive buffer, IPv4 reassembly memory, the ARP pending queue, and the UDP
//! receive queue. Sans-IO: frames built by hand, virtual time.

mod common;

use common::*;
use ringstack_stack::{Config, Counter, DropReason, Stack};

const PROTO_TCP: u8 = 6;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// A TCP segment from `src` to `dst` with a correct checksum (no options but `mss`).
#[allow(clippy::too_many_arguments)]
fn tcp(
    src: core::net::Ipv4Addr,
    dst: core::net::Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload: &[u8],
) -> Vec<u8> {
    let opts: &[u8] = if flags & SYN != 0 {
        &[2, 4, 0x05, 0xb4]
    } else {
        &[]
    };
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&ack.to_be_bytes());
    s.push((((20 + opts.len()) / 4) as u8) << 4);
    s.push(flags);
    s.extend_from_slice(&window.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]);
    s.extend_from_slice(opts);
    s.extend_from_slice(payload);
    let len = (s.len() as u16).to_be_bytes();
    let c = inet_checksum(&[
        &src.octets(),
        &dst.octets(),
        &[0, PROTO_TCP, len[0], len[1]],
        &s,
    ]);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

/// A peer → us TCP frame.
fn tcp_frame(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let seg = tcp(
        PEER_IP, OUR_IP, sport, dport, seq, ack, flags, 65535, payload,
    );
    from_peer(&Ip::new(PEER_IP, OUR_IP, PROTO_TCP).build(&seg))
}

/// (seq, ack, flags, window) of the TCP segments among `frames` sent to peer port `port`.
fn segments_to(frames: &[Vec<u8>], port: u16) -> Vec<(u32, u32, u8, u16)> {
    frames
        .iter()
        .filter(|f| f.len() >= 54 && f[12..14] == [8, 0] && f[23] == PROTO_TCP)
        .map(|f| &f[14 + (f[14] as usize & 0xf) * 4..])
        .filter(|t| u16::from_be_bytes([t[2], t[3]]) == port)
        .map(|t| {
            (
                u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
                u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
                t[13],
                u16::from_be_bytes([t[14], t[15]]),
            )
        })
        .collect()
}

fn peer_stack(config: Config) -> Stack {
    let mut s = stack_with(config);
    learn_peer(&mut s, t(0));
    s
}

/// A full handshake from peer port `sport` to our `dport`; returns (our ISS + 1, peer SND.NXT)
/// or `None` if no SYN-ACK came back.
fn handshake(s: &mut Stack, sport: u16, dport: u16, now: u64) -> Option<(u32, u32)> {
    let iss = 1000 * sport as u32;
    s.handle_frame(t(now), &tcp_frame(sport, dport, iss, 0, SYN, &[]));
    let out = drain(s, t(now));
    let (seq, _, _, _) = *segments_to(&out, sport)
        .iter()
        .find(|(_, ack, f, _)| f & (SYN | ACK) == SYN | ACK && *ack == iss + 1)?;
    s.handle_frame(t(now), &tcp_frame(sport, dport, iss + 1, seq + 1, ACK, &[]));
    let _ = drain(s, t(now));
    Some((seq + 1, iss + 1))
}

#[test]
fn accept_queue_is_capped_by_max_accept_backlog_and_counted() {
    let mut c = config();
    c.max_accept_backlog = 2;
    let mut s = peer_stack(c);
    let l = s.tcp_listen(80, 1024).unwrap();
    assert_eq!(
        s.tcp().info(l).unwrap().send_queue,
        2,
        "backlog capped at 2"
    );
    assert!(handshake(&mut s, 40001, 80, 1).is_some());
    assert!(handshake(&mut s, 40002, 80, 2).is_some());
    assert_eq!(s.counters().drops(DropReason::TcpAcceptQueueFull), 0);
    // The third connection's SYN is refused while the queue is full.
    let _ = handshake(&mut s, 40003, 80, 3);
    assert!(s.counters().drops(DropReason::TcpAcceptQueueFull) >= 1);
    assert!(s.counters().get(Counter::TcpExtListenOverflows) >= 1);
    // Accepting makes room again.
    s.tcp_accept(l).unwrap();
    assert!(handshake(&mut s, 40004, 80, 4).is_some());
}

#[test]
fn socket_limit_is_counted() {
    let mut c = config();
    c.tcp.max_sockets = 2; // the listener and one connection
    c.tcp.syn_cookies = false;
    let mut s = peer_stack(c);
    s.tcp_listen(80, 16).unwrap();
    s.handle_frame(t(1), &tcp_frame(40001, 80, 1, 0, SYN, &[]));
    s.handle_frame(t(1), &tcp_frame(40002, 80, 1, 0, SYN, &[]));
    let out = drain(&mut s, t(1));
    assert_eq!(segments_to(&out, 40001).len(), 1, "first SYN answered");
    assert!(segments_to(&out, 40002).is_empty(), "second SYN refused");
    assert_eq!(s.counters().drops(DropReason::TcpSocketLimit), 1);
    assert_eq!(s.tcp().socket_count(), 2);
}

#[test]
fn syn_backlog_is_counted_with_and_without_cookies() {
    for cookies in [false, true] {
        let mut c = config();
        c.tcp.syn_backlog = 2;
        c.tcp.syn_cookies = cookies;
        let mut s = peer_stack(c);
        s.tcp_listen(80, 16).unwrap();
        for port in 40001..40006 {
            s.handle_frame(t(1), &tcp_frame(port, 80, 7, 0, SYN, &[]));
        }
        let out = drain(&mut s, t(1));
        let answered = (40001..40006)
            .filter(|&p| !segments_to(&out, p).is_empty())
            .count();
        if cookies {
            assert_eq!(answered, 5, "cookies answer every SYN");
            assert_eq!(s.counters().get(Counter::TcpExtSyncookiesSent), 3);
            assert_eq!(s.counters().drops(DropReason::TcpSynBacklogFull), 0);
        } else {
            assert_eq!(answered, 2);
            assert_eq!(s.counters().drops(DropReason::TcpSynBacklogFull), 3);
        }
        assert_eq!(s.tcp().socket_count(), 3, "listener + 2 half-open");
    }
}

#[test]
fn receive_buffer_bounds_the_window_and_overruns_are_counted() {
    let mut c = config();
    c.tcp.rcv_buf = 4096;
    c.tcp.window_scaling = false;
    let mut s = peer_stack(c);
    s.tcp_listen(80, 16).unwrap();
    let port = 40001;
    let iss = 1000 * port as u32;
    s.handle_frame(t(1), &tcp_frame(port, 80, iss, 0, SYN, &[]));
    let out = drain(&mut s, t(1));
    let (seq, _, _, window) = segments_to(&out, port)[0];
    assert!(
        window <= 4096,
        "SYN-ACK offers {window} > the 4096-byte buffer"
    );
    s.handle_frame(t(1), &tcp_frame(port, 80, iss + 1, seq + 1, ACK, &[]));
    // Nobody reads: 4 KiB fill the buffer, the next KiB is beyond the window.
    let data = pattern(1024, 3);
    for k in 0..5u32 {
        s.handle_frame(
            t(2),
            &tcp_frame(port, 80, iss + 1 + k * 1024, seq + 1, ACK | PSH, &data),
        );
    }
    let _ = drain(&mut s, t(2));
    let refused = s.counters().drops(DropReason::TcpOutOfWindow)
        + s.counters().drops(DropReason::TcpRcvBufFull);
    assert_eq!(refused, 1, "the fifth KiB is refused and counted");
    assert_eq!(s.counters().get(Counter::CopyFrameToRcvBuf), 4096);
}

#[test]
fn reassembly_memory_stays_bounded_and_evictions_are_counted() {
    let mut c = config();
    c.reassembly.max_memory = 8192;
    let mut s = peer_stack(c);
    let body = pattern(1480, 1);
    for ident in 0..20u16 {
        let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_UDP);
        ip.ident = ident;
        ip.more_frags = true;
        s.handle_frame(t(1), &from_peer(&ip.build(&body)));
        assert!(
            s.reassembly_memory() <= 8192,
            "{} bytes held",
            s.reassembly_memory()
        );
    }
    assert!(s.counters().drops(DropReason::Ipv4FragMemoryFull) >= 10);
    // A datagram that fits still completes afterwards.
    let d = udp(PEER_IP, OUR_IP, 5000, 7000, &pattern(2000, 2));
    let u = s.udp_bind("0.0.0.0:7000".parse().unwrap()).unwrap();
    for (off, chunk, mf) in [(0, &d[..1480], true), (1480, &d[1480..], false)] {
        let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_UDP);
        ip.ident = 999;
        ip.frag_offset = off;
        ip.more_frags = mf;
        s.handle_frame(t(2), &from_peer(&ip.build(chunk)));
    }
    let mut buf = [0u8; 4096];
    assert_eq!(s.udp_recv_from(u, &mut buf).unwrap().0, 2000);
}

#[test]
fn arp_pending_queue_is_bounded_and_counted() {
    let mut c = config();
    c.arp.pending_per_neighbor = 2;
    let mut s = stack_with(c);
    let u = s.udp_bind("0.0.0.0:7000".parse().unwrap()).unwrap();
    let dst = sock(OTHER_IP, 9);
    for _ in 0..5 {
        let _ = s.udp_send_to(t(1), u, b"waiting for ARP", dst);
    }
    assert_eq!(s.counters().drops(DropReason::ArpPendingFull), 3);
    // Once resolved, exactly the two queued datagrams go out.
    let _ = drain(&mut s, t(1));
    s.handle_frame(
        t(2),
        &eth(
            OUR_MAC,
            OTHER_MAC,
            ETH_ARP,
            &arp(2, OTHER_MAC, OTHER_IP, OUR_MAC, OUR_IP),
        ),
    );
    let out = drain(&mut s, t(2));
    assert_eq!(out.iter().filter(|f| f[0..6] == OTHER_MAC).count(), 2);
}

#[test]
fn udp_receive_queue_is_bounded_and_counted() {
    let mut c = config();
    c.udp_rcv_buf = 100;
    let mut s = peer_stack(c);
    s.udp_bind("0.0.0.0:7000".parse().unwrap()).unwrap();
    for _ in 0..3 {
        s.handle_frame(t(1), &udp_frame(5000, 7000, &pattern(60, 1)));
    }
    assert_eq!(s.counters().drops(DropReason::UdpRcvBufFull), 2);
}
