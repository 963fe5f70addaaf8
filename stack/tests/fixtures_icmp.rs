//! ICMPv4 (RFC 792, RFC 1122 §3.2.2) fixtures: echo, ping sockets, arriving errors, the error
//! rate limit, and every drop reason.

mod common;

use common::*;
use ringstack_stack::{
    Counter, DropReason, EchoReply, IcmpError, PingError, PingEvent, Readiness, SocketHandle,
    UdpError,
};

#[test]
fn echo_request_is_answered_exact_bytes() {
    // Odd payload length: the checksum's trailing-byte rule matters.
    for data in [&b""[..], b"a", b"abcdefghijklmnopqrstuvwxyz0123456789!"] {
        let mut s = stack_with_peer();
        let req = icmp_echo(8, 0x1234, 0x0042, data);
        s.handle_frame(t(1), &icmp_frame(&req));
        assert_no_drops(&s);
        let out = drain(&mut s, t(1));
        assert_eq!(out.len(), 1);
        let expected = expected_ip_frame(
            PEER_MAC,
            PEER_IP,
            PROTO_ICMP,
            ident_of(&out[0]),
            &icmp_echo(0, 0x1234, 0x0042, data),
        );
        assert_eq!(out[0], expected, "payload {data:?}");
        assert_eq!(s.counters().get(Counter::IcmpInEchos), 1);
        assert_eq!(s.counters().get(Counter::IcmpOutEchoReps), 1);
    }
}

#[test]
fn echo_reply_carries_a_fresh_ip_ident_each_time() {
    let mut s = stack_with_peer();
    s.handle_frame(t(1), &icmp_frame(&icmp_echo(8, 1, 1, b"x")));
    s.handle_frame(t(1), &icmp_frame(&icmp_echo(8, 1, 2, b"x")));
    let out = drain(&mut s, t(1));
    assert_eq!(out.len(), 2);
    assert_ne!(ident_of(&out[0]), ident_of(&out[1]));
}

#[test]
fn truncated_message_is_dropped() {
    for len in [0usize, 1, 7] {
        let mut s = stack_with_peer();
        let req = icmp_echo(8, 1, 1, b"");
        s.handle_frame(t(1), &icmp_frame(&req[..len]));
        assert_only_drop(&s, DropReason::IcmpTruncated);
        assert_silent(&mut s, t(1));
    }
}

#[test]
fn bad_checksum_is_dropped() {
    let mut s = stack_with_peer();
    let mut req = icmp_echo(8, 1, 1, b"data");
    req[9] ^= 0xff;
    s.handle_frame(t(1), &icmp_frame(&req));
    assert_only_drop(&s, DropReason::IcmpBadChecksum);
    assert_eq!(s.counters().get(Counter::IcmpInErrors), 1);
    assert_silent(&mut s, t(1));
}

#[test]
fn unsupported_types_are_dropped() {
    // 13 timestamp, 17 address mask, 42 extended echo, 5 redirect (a host ignores it here).
    for ty in [13u8, 17, 42, 5] {
        let mut s = stack_with_peer();
        s.handle_frame(t(1), &icmp_frame(&icmp(ty, 0, [0; 4], &[0; 12])));
        assert_only_drop(&s, DropReason::IcmpUnsupportedType);
        assert_silent(&mut s, t(1));
    }
}

#[test]
fn echo_request_to_broadcast_is_ignored() {
    let mut s = stack_with_peer();
    let req = icmp_echo(8, 1, 1, b"smurf");
    let p = Ip::new(PEER_IP, SUBNET_BROADCAST, PROTO_ICMP).build(&req);
    s.handle_frame(t(1), &eth(BROADCAST_MAC, PEER_MAC, ETH_IPV4, &p));
    assert_only_drop(&s, DropReason::IcmpEchoBroadcast);
    assert_silent(&mut s, t(1));

    // Our unicast address inside a link-layer broadcast frame is not unicast either.
    let mut s = stack_with_peer();
    let p = Ip::new(PEER_IP, OUR_IP, PROTO_ICMP).build(&req);
    s.handle_frame(t(1), &eth(BROADCAST_MAC, PEER_MAC, ETH_IPV4, &p));
    assert_only_drop(&s, DropReason::IcmpEchoBroadcast);
    assert_silent(&mut s, t(1));
}

#[test]
fn echo_reply_without_socket_is_dropped() {
    let mut s = stack_with_peer();
    s.handle_frame(t(1), &icmp_frame(&icmp_echo(0, 99, 1, b"late")));
    assert_only_drop(&s, DropReason::IcmpNoSocket);
    assert_silent(&mut s, t(1));
}

#[test]
fn ping_socket_sends_exact_request_and_receives_the_reply() {
    let mut s = stack_with_peer();
    let h = s.ping_open(0x4242).unwrap();
    assert_eq!(s.ping_open(0x4242), Err(PingError::IdentInUse));
    s.ping_send(t(1), h, PEER_IP, 7, b"ping!").unwrap();
    let out = drain(&mut s, t(1));
    assert_eq!(out.len(), 1);
    let expected = expected_ip_frame(
        PEER_MAC,
        PEER_IP,
        PROTO_ICMP,
        ident_of(&out[0]),
        &icmp_echo(8, 0x4242, 7, b"ping!"),
    );
    assert_eq!(out[0], expected);
    assert_eq!(s.counters().get(Counter::IcmpOutEchos), 1);

    assert!(!s
        .readiness(SocketHandle::Icmp(h))
        .contains(Readiness::READABLE));
    let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_ICMP);
    ip.ttl = 63;
    s.handle_frame(
        t(5),
        &from_peer(&ip.build(&icmp_echo(0, 0x4242, 7, b"ping!"))),
    );
    assert_no_drops(&s);
    assert_eq!(s.poll_readiness(), Some(SocketHandle::Icmp(h)));
    assert!(s
        .readiness(SocketHandle::Icmp(h))
        .contains(Readiness::READABLE));
    assert_eq!(
        s.ping_recv(h),
        Some(PingEvent::Reply(EchoReply {
            from: PEER_IP,
            seq: 7,
            ttl: 63,
            data: b"ping!".to_vec(),
            at: t(5),
        }))
    );
    assert_eq!(s.ping_recv(h), None);
    s.ping_close(h).unwrap();
    assert_eq!(
        s.ping_send(t(6), h, PEER_IP, 8, b""),
        Err(PingError::InvalidHandle)
    );
}

/// The IPv4 packet inside the only frame the stack emits.
fn sent_packet(s: &mut ringstack_stack::Stack, now: ringstack_stack::Instant) -> Vec<u8> {
    let out = drain(s, now);
    assert_eq!(out.len(), 1);
    out[0][14..].to_vec()
}

#[test]
fn port_unreachable_for_a_connected_udp_socket_is_connection_refused() {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 5000)).unwrap();
    s.udp_connect(h, sock(PEER_IP, 7)).unwrap();
    s.udp_send(t(1), h, b"anyone there?").unwrap();
    let sent = sent_packet(&mut s, t(1));
    // RFC 792: IP header + at least 8 bytes of the datagram.
    let err = icmp(3, 3, [0; 4], &sent[..28]);
    s.handle_frame(t(2), &icmp_frame(&err));
    assert_no_drops(&s);
    assert_eq!(s.counters().get(Counter::IcmpInDestUnreachs), 1);
    assert_eq!(s.poll_readiness(), Some(SocketHandle::Udp(h)));
    assert!(s.readiness(SocketHandle::Udp(h)).contains(Readiness::ERROR));
    let mut buf = [0u8; 64];
    assert_eq!(
        s.udp_recv_from(h, &mut buf),
        Err(UdpError::ConnectionRefused)
    );
    // Reported once.
    assert_eq!(s.udp_recv_from(h, &mut buf), Err(UdpError::WouldBlock));
    assert_silent(&mut s, t(2));
}

#[test]
fn port_unreachable_for_an_unconnected_socket_is_not_reported() {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 5000)).unwrap();
    s.udp_send_to(t(1), h, b"x", sock(PEER_IP, 7)).unwrap();
    let sent = sent_packet(&mut s, t(1));
    s.handle_frame(t(2), &icmp_frame(&icmp(3, 3, [0; 4], &sent)));
    assert_no_drops(&s);
    let mut buf = [0u8; 64];
    assert_eq!(s.udp_recv_from(h, &mut buf), Err(UdpError::WouldBlock));
}

#[test]
fn other_unreachable_codes_reach_the_udp_socket_as_icmp_errors() {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 5000)).unwrap();
    s.udp_connect(h, sock(PEER_IP, 7)).unwrap();
    s.udp_send(t(1), h, b"x").unwrap();
    let sent = sent_packet(&mut s, t(1));
    s.handle_frame(t(2), &icmp_frame(&icmp(3, 1, [0; 4], &sent)));
    assert_no_drops(&s);
    let mut buf = [0u8; 64];
    assert_eq!(
        s.udp_recv_from(h, &mut buf),
        Err(UdpError::Icmp(IcmpError::HostUnreachable))
    );
}

#[test]
fn error_about_our_echo_request_reaches_the_ping_socket() {
    let mut s = stack_with_peer();
    let h = s.ping_open(77).unwrap();
    s.ping_send(t(1), h, PEER_IP, 3, b"hop").unwrap();
    let sent = sent_packet(&mut s, t(1));
    // A router (the peer) reports TTL exceeded in transit.
    s.handle_frame(t(2), &icmp_frame(&icmp(11, 0, [0; 4], &sent)));
    assert_no_drops(&s);
    assert_eq!(s.counters().get(Counter::IcmpInTimeExcds), 1);
    assert_eq!(
        s.ping_recv(h),
        Some(PingEvent::Error {
            from: PEER_IP,
            error: IcmpError::TtlExceeded,
            seq: 3
        })
    );
}

#[test]
fn error_quoting_a_packet_not_from_us_is_dropped() {
    let mut s = stack_with_peer();
    let foreign = Ip::new(OTHER_IP, PEER_IP, PROTO_UDP).build(&udp(OTHER_IP, PEER_IP, 1, 2, b"x"));
    s.handle_frame(t(1), &icmp_frame(&icmp(3, 3, [0; 4], &foreign)));
    assert_only_drop(&s, DropReason::IcmpBadError);
    assert_silent(&mut s, t(1));
}

#[test]
fn error_with_a_short_or_bogus_quote_is_dropped() {
    let ours = Ip::new(OUR_IP, PEER_IP, PROTO_UDP).build(&udp(OUR_IP, PEER_IP, 1, 2, b"x"));
    let mut not_v4 = ours.clone();
    not_v4[0] = 0x65;
    let mut bad_ihl = ours.clone();
    bad_ihl[0] = 0x44;
    for quote in [
        &ours[..0],
        &ours[..19],
        &ours[..27],
        &not_v4[..],
        &bad_ihl[..],
    ] {
        let mut s = stack_with_peer();
        s.handle_frame(t(1), &icmp_frame(&icmp(3, 3, [0; 4], quote)));
        assert_only_drop(&s, DropReason::IcmpBadError);
        assert_silent(&mut s, t(1));
    }
}

#[test]
fn no_icmp_error_is_sent_about_an_icmp_error() {
    // RFC 1122 §3.2.2: never an error about an error. The one way an ICMP message can make us
    // send an error is an incomplete fragmented datagram timing out: for an echo request we
    // send time exceeded; for a (fragmented) ICMP error we must stay silent.
    let first_fragment = |msg: &[u8]| {
        let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_ICMP);
        ip.more_frags = true;
        from_peer(&ip.build(&msg[..16]))
    };
    let timeout = config().reassembly.timeout;

    let mut s = stack_with_peer();
    s.handle_frame(t(0), &first_fragment(&icmp_echo(8, 1, 1, &[7; 40])));
    s.handle_timeout(t(0) + timeout);
    assert_only_drop(&s, DropReason::Ipv4FragTimeout);
    assert_eq!(
        drain(&mut s, t(0) + timeout).len(),
        1,
        "time exceeded about an echo request"
    );

    let mut s = stack_with_peer();
    s.handle_frame(t(0), &first_fragment(&icmp(3, 1, [0; 4], &[7; 40])));
    s.handle_timeout(t(0) + timeout);
    assert_only_drop(&s, DropReason::Ipv4FragTimeout);
    assert_silent(&mut s, t(0) + timeout);
    assert_eq!(s.counters().get(Counter::IcmpOutMsgs), 0);
}

#[test]
fn error_rate_limit_caps_bursts_and_refills_with_time() {
    let mut s = stack_with_peer();
    let burst = s.config().icmp_error_burst as u64;
    let rate = s.config().icmp_errors_per_sec as u64;
    assert!(burst < 200);
    for i in 0..200u16 {
        s.handle_frame(t(1000), &udp_frame(40000, 1000 + i, b"closed"));
    }
    let out = drain(&mut s, t(1000));
    assert_eq!(out.len() as u64, burst);
    for f in &out {
        let (_, m) = ip_of(f, PEER_MAC);
        assert_eq!(&m[..2], &[3, 3]);
    }
    let c = s.counters();
    assert_eq!(c.drops(DropReason::UdpNoPort), 200);
    assert_eq!(c.drops(DropReason::IcmpRateLimited), 200 - burst);
    assert_eq!(c.get(Counter::IcmpOutRateLimited), 200 - burst);
    assert_eq!(c.total_drops(), 200 + 200 - burst);

    // 100 ms later: rate * 0.1 tokens.
    let refill = rate / 10;
    for i in 0..(refill + 10) as u16 {
        s.handle_frame(t(1100), &udp_frame(40000, 2000 + i, b"closed"));
    }
    assert_eq!(drain(&mut s, t(1100)).len() as u64, refill);
    assert_eq!(
        s.counters().drops(DropReason::IcmpRateLimited),
        200 - burst + 10
    );

    // A long quiet period refills the bucket, but never beyond the burst. (The peer's ARP entry
    // has expired by then: it re-announces itself first.)
    s.handle_frame(t(100_000), &arp_request_frame(PEER_MAC, PEER_IP, OUR_IP));
    assert_eq!(drain(&mut s, t(100_000)).len(), 1);
    for i in 0..200u16 {
        s.handle_frame(t(100_000), &udp_frame(40000, 3000 + i, b"closed"));
    }
    assert_eq!(drain(&mut s, t(100_000)).len() as u64, burst);
}
