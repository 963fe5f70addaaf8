//! UDP (RFC 768, RFC 1122 §4.1) fixtures: delivery, demux, checksums, port unreachable, bounded
//! queues, and the socket API (bind conflicts, ephemeral ports, connect).

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};

use common::*;
use ringstack_stack::{Counter, DropReason, Readiness, SocketHandle, Stack, UdpError, UdpHandle};

fn recv(s: &mut Stack, h: UdpHandle) -> Result<(Vec<u8>, SocketAddrV4), UdpError> {
    let mut buf = vec![0u8; 70_000];
    s.udp_recv_from(h, &mut buf)
        .map(|(n, from)| (buf[..n].to_vec(), from))
}

/// A peer → us frame carrying the raw UDP bytes `d`.
fn raw(d: &[u8]) -> Vec<u8> {
    from_peer(&Ip::new(PEER_IP, OUR_IP, PROTO_UDP).build(d))
}

#[test]
fn datagram_is_delivered_with_payload_and_sender() {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 53)).unwrap();
    s.handle_frame(t(1), &udp_frame(33333, 53, b"query"));
    assert_no_drops(&s);
    assert_eq!(s.poll_readiness(), Some(SocketHandle::Udp(h)));
    assert!(s
        .readiness(SocketHandle::Udp(h))
        .contains(Readiness::READABLE));
    assert_eq!(
        recv(&mut s, h),
        Ok((b"query".to_vec(), sock(PEER_IP, 33333)))
    );
    assert_eq!(recv(&mut s, h), Err(UdpError::WouldBlock));
    assert!(!s
        .readiness(SocketHandle::Udp(h))
        .contains(Readiness::READABLE));
    assert_eq!(s.counters().get(Counter::UdpInDatagrams), 1);
    assert_silent(&mut s, t(1));
}

#[test]
fn empty_payload_and_short_buffer() {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 53)).unwrap();
    s.handle_frame(t(1), &udp_frame(1, 53, b""));
    s.handle_frame(t(1), &udp_frame(1, 53, b"truncate me"));
    assert_no_drops(&s);
    assert_eq!(recv(&mut s, h), Ok((vec![], sock(PEER_IP, 1))));
    // Like recvfrom without MSG_TRUNC: the rest of the datagram is discarded.
    let mut small = [0u8; 4];
    assert_eq!(s.udp_recv_from(h, &mut small), Ok((4, sock(PEER_IP, 1))));
    assert_eq!(&small, b"trun");
    assert_eq!(recv(&mut s, h), Err(UdpError::WouldBlock));
}

#[test]
fn truncated_header_is_dropped() {
    for len in [0usize, 1, 7] {
        let mut s = stack_with_peer();
        let _h = s.udp_bind(sock(OUR_IP, 53)).unwrap();
        let d = udp(PEER_IP, OUR_IP, 1, 53, b"");
        s.handle_frame(t(1), &raw(&d[..len]));
        assert_only_drop(&s, DropReason::UdpTruncated);
        assert_silent(&mut s, t(1));
    }
}

#[test]
fn length_field_below_header_is_dropped() {
    for ulen in [0u16, 7] {
        let mut s = stack_with_peer();
        let h = s.udp_bind(sock(OUR_IP, 53)).unwrap();
        let mut d = udp_no_checksum(1, 53, b"data");
        d[4..6].copy_from_slice(&ulen.to_be_bytes());
        s.handle_frame(t(1), &raw(&d));
        assert_only_drop(&s, DropReason::UdpBadLength);
        assert_eq!(recv(&mut s, h), Err(UdpError::WouldBlock));
        assert_silent(&mut s, t(1));
    }
}

#[test]
fn length_field_beyond_payload_is_dropped() {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 53)).unwrap();
    let mut d = udp_no_checksum(1, 53, b"data");
    d[4..6].copy_from_slice(&13u16.to_be_bytes());
    s.handle_frame(t(1), &raw(&d));
    assert_only_drop(&s, DropReason::UdpBadLength);
    assert_eq!(recv(&mut s, h), Err(UdpError::WouldBlock));
}

#[test]
fn length_field_shorter_than_ip_payload_trims() {
    // RFC 768: bytes beyond the UDP length are not part of the datagram.
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 53)).unwrap();
    let mut d = udp(PEER_IP, OUR_IP, 1, 53, b"data");
    d.extend_from_slice(b"trailer");
    s.handle_frame(t(1), &raw(&d));
    assert_no_drops(&s);
    assert_eq!(recv(&mut s, h), Ok((b"data".to_vec(), sock(PEER_IP, 1))));
}

#[test]
fn bad_checksum_is_dropped() {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 53)).unwrap();
    let mut d = udp(PEER_IP, OUR_IP, 1, 53, b"data");
    d[9] ^= 0x01; // payload corrupted, checksum not updated
    s.handle_frame(t(1), &raw(&d));
    assert_only_drop(&s, DropReason::UdpBadChecksum);
    assert_eq!(s.counters().get(Counter::UdpInCsumErrors), 1);
    assert_eq!(recv(&mut s, h), Err(UdpError::WouldBlock));
    assert_silent(&mut s, t(1));

    // The pseudo-header is covered too: a datagram checksummed for another destination fails.
    let mut s = stack_with_peer();
    let _h = s.udp_bind(sock(OUR_IP, 53)).unwrap();
    let d = udp(PEER_IP, OTHER_IP, 1, 53, b"data");
    s.handle_frame(t(1), &raw(&d));
    assert_only_drop(&s, DropReason::UdpBadChecksum);
}

#[test]
fn zero_checksum_means_none_and_is_accepted() {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 53)).unwrap();
    s.handle_frame(t(1), &raw(&udp_no_checksum(1, 53, b"no csum")));
    assert_no_drops(&s);
    assert_eq!(recv(&mut s, h), Ok((b"no csum".to_vec(), sock(PEER_IP, 1))));
}

#[test]
fn all_ones_checksum_is_a_computed_zero() {
    // Find a payload whose checksum computes to zero (sent as 0xffff) and check it is accepted.
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 53)).unwrap();
    let d = (0u16..=u16::MAX)
        .map(|x| udp(PEER_IP, OUR_IP, 1, 53, &x.to_be_bytes()))
        .find(|d| d[6..8] == [0xff, 0xff])
        .expect("some 2-byte payload sums to zero");
    s.handle_frame(t(1), &raw(&d));
    assert_no_drops(&s);
    assert_eq!(recv(&mut s, h).unwrap().0, d[8..].to_vec());
}

#[test]
fn no_port_is_dropped_and_answered_with_port_unreachable_quoting_it() {
    let mut s = stack_with_peer();
    let original =
        Ip::new(PEER_IP, OUR_IP, PROTO_UDP).build(&udp(PEER_IP, OUR_IP, 4444, 9, b"knock"));
    s.handle_frame(t(1), &from_peer(&original));
    assert_only_drop(&s, DropReason::UdpNoPort);
    assert_eq!(s.counters().get(Counter::UdpNoPorts), 1);
    let out = drain(&mut s, t(1));
    assert_eq!(out.len(), 1);
    let msg = icmp(3, 3, [0; 4], &original);
    assert_eq!(
        out[0],
        expected_ip_frame(PEER_MAC, PEER_IP, PROTO_ICMP, ident_of(&out[0]), &msg)
    );
}

#[test]
fn port_unreachable_quote_is_capped_at_576_bytes() {
    let mut s = stack_with_peer();
    let original = Ip::new(PEER_IP, OUR_IP, PROTO_UDP).build(&udp(
        PEER_IP,
        OUR_IP,
        4444,
        9,
        &pattern(1400, 1),
    ));
    s.handle_frame(t(1), &from_peer(&original));
    let out = drain(&mut s, t(1));
    assert_eq!(out.len(), 1);
    let (_, m) = ip_of(&out[0], PEER_MAC);
    assert_eq!(
        14 + 20 + m.len(),
        14 + 576,
        "RFC 1812 §4.3.2.3: at most 576 bytes"
    );
    assert_eq!(m, &icmp(3, 3, [0; 4], &original[..576 - 28])[..]);
}

#[test]
fn no_port_on_broadcast_is_dropped_silently() {
    let mut s = stack_with_peer();
    let d = udp(PEER_IP, SUBNET_BROADCAST, 4444, 9, b"anyone");
    let p = Ip::new(PEER_IP, SUBNET_BROADCAST, PROTO_UDP).build(&d);
    s.handle_frame(t(1), &eth(BROADCAST_MAC, PEER_MAC, ETH_IPV4, &p));
    assert_only_drop(&s, DropReason::UdpNoPort);
    assert_silent(&mut s, t(1));
}

#[test]
fn receive_queue_full_is_dropped() {
    let mut cfg = config();
    cfg.udp_rcv_buf = 100;
    let mut s = stack_with(cfg);
    learn_peer(&mut s, t(0));
    let h = s.udp_bind(sock(OUR_IP, 53)).unwrap();
    s.handle_frame(t(1), &udp_frame(1, 53, &[1; 60]));
    s.handle_frame(t(1), &udp_frame(1, 53, &[2; 40])); // exactly 100: fits
    assert_no_drops(&s);
    s.handle_frame(t(1), &udp_frame(1, 53, &[3; 1]));
    assert_only_drop(&s, DropReason::UdpRcvBufFull);
    assert_eq!(s.counters().get(Counter::UdpRcvbufErrors), 1);
    assert_silent(&mut s, t(1));
    // Reading frees room.
    assert_eq!(recv(&mut s, h).unwrap().0, vec![1; 60]);
    s.handle_frame(t(2), &udp_frame(1, 53, &[4; 60]));
    assert_eq!(s.counters().total_drops(), 1);
    assert_eq!(recv(&mut s, h).unwrap().0, vec![2; 40]);
    assert_eq!(recv(&mut s, h).unwrap().0, vec![4; 60]);
}

#[test]
fn exact_and_wildcard_binds_demux() {
    let mut s = stack_with_peer();
    let exact = s.udp_bind(sock(OUR_IP, 1000)).unwrap();
    let wild = s.udp_bind(sock(Ipv4Addr::UNSPECIFIED, 2000)).unwrap();
    let bcast = |dport: u16| {
        let d = udp(PEER_IP, SUBNET_BROADCAST, 7, dport, b"b");
        eth(
            BROADCAST_MAC,
            PEER_MAC,
            ETH_IPV4,
            &Ip::new(PEER_IP, SUBNET_BROADCAST, PROTO_UDP).build(&d),
        )
    };
    s.handle_frame(t(1), &udp_frame(7, 1000, b"u1000"));
    s.handle_frame(t(1), &udp_frame(7, 2000, b"u2000"));
    s.handle_frame(t(1), &bcast(2000));
    assert_no_drops(&s);
    assert_eq!(recv(&mut s, exact).unwrap().0, b"u1000");
    assert_eq!(recv(&mut s, exact), Err(UdpError::WouldBlock));
    assert_eq!(recv(&mut s, wild).unwrap().0, b"u2000");
    assert_eq!(recv(&mut s, wild).unwrap().0, b"b");
    // A socket bound to our unicast address does not see broadcasts.
    s.handle_frame(t(1), &bcast(1000));
    assert_only_drop(&s, DropReason::UdpNoPort);
    assert_eq!(recv(&mut s, exact), Err(UdpError::WouldBlock));
    assert_silent(&mut s, t(1));
}

#[test]
fn connected_socket_filters_other_senders() {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 5000)).unwrap();
    s.udp_connect(h, sock(PEER_IP, 7)).unwrap();
    assert_eq!(s.udp_peer_addr(h), Ok(Some(sock(PEER_IP, 7))));
    s.handle_frame(t(1), &udp_frame(7, 5000, b"from peer:7"));
    assert_no_drops(&s);
    // Same host, other port: not for this socket; as on Linux it is "no port".
    s.handle_frame(t(1), &udp_frame(8, 5000, b"from peer:8"));
    assert_only_drop(&s, DropReason::UdpNoPort);
    assert_eq!(drain(&mut s, t(1)).len(), 1, "port unreachable");
    // Other host, same port.
    let d = udp(OTHER_IP, OUR_IP, 7, 5000, b"from other");
    s.handle_frame(
        t(1),
        &eth(
            OUR_MAC,
            OTHER_MAC,
            ETH_IPV4,
            &Ip::new(OTHER_IP, OUR_IP, PROTO_UDP).build(&d),
        ),
    );
    assert_eq!(s.counters().drops(DropReason::UdpNoPort), 2);
    assert_eq!(
        recv(&mut s, h),
        Ok((b"from peer:7".to_vec(), sock(PEER_IP, 7)))
    );
    assert_eq!(recv(&mut s, h), Err(UdpError::WouldBlock));
}

#[test]
fn bind_conflicts_are_addr_in_use() {
    let mut s = stack();
    let a = s.udp_bind(sock(OUR_IP, 100)).unwrap();
    assert_eq!(s.udp_bind(sock(OUR_IP, 100)), Err(UdpError::AddrInUse));
    assert_eq!(
        s.udp_bind(sock(Ipv4Addr::UNSPECIFIED, 100)),
        Err(UdpError::AddrInUse)
    );
    let w = s.udp_bind(sock(Ipv4Addr::UNSPECIFIED, 200)).unwrap();
    assert_eq!(s.udp_bind(sock(OUR_IP, 200)), Err(UdpError::AddrInUse));
    assert_eq!(
        s.udp_bind(sock(Ipv4Addr::UNSPECIFIED, 200)),
        Err(UdpError::AddrInUse)
    );
    // Closing frees the port; the stale handle is refused.
    s.udp_close(a).unwrap();
    let a2 = s.udp_bind(sock(OUR_IP, 100)).unwrap();
    assert_ne!(a, a2);
    assert_eq!(s.udp_close(a), Err(UdpError::InvalidHandle));
    assert_eq!(s.udp_local_addr(a), Err(UdpError::InvalidHandle));
    let mut buf = [0u8; 4];
    assert_eq!(s.udp_recv_from(a, &mut buf), Err(UdpError::InvalidHandle));
    s.udp_close(w).unwrap();
    assert!(s.udp_bind(sock(OUR_IP, 200)).is_ok());
}

#[test]
fn ephemeral_ports_are_in_range_distinct_and_skip_bound_ports() {
    let next = |p: u16| if p == u16::MAX { 49152 } else { p + 1 };
    let mut s = stack();
    let h = s.udp_bind(sock(OUR_IP, 0)).unwrap();
    let p = s.udp_local_addr(h).unwrap().port();
    assert!(p >= 49152, "port {p} outside the dynamic range");
    s.udp_close(h).unwrap();
    // Occupy the next two ports explicitly: the allocator must skip them.
    let (p1, p2) = (next(p), next(next(p)));
    s.udp_bind(sock(OUR_IP, p1)).unwrap();
    s.udp_bind(sock(Ipv4Addr::UNSPECIFIED, p2)).unwrap();
    let h = s.udp_bind(sock(OUR_IP, 0)).unwrap();
    assert_eq!(s.udp_local_addr(h).unwrap().port(), next(p2));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let h = s.udp_bind(sock(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let port = s.udp_local_addr(h).unwrap().port();
        assert!(port >= 49152);
        assert!(seen.insert(port), "port {port} handed out twice");
    }
}

#[test]
fn ephemeral_ports_run_out() {
    let mut s = stack();
    for _ in 49152..=u16::MAX {
        s.udp_bind(sock(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    }
    assert_eq!(
        s.udp_bind(sock(Ipv4Addr::UNSPECIFIED, 0)),
        Err(UdpError::NoPorts)
    );
}

#[test]
fn send_errors() {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 0)).unwrap();
    assert_eq!(s.udp_send(t(1), h, b"x"), Err(UdpError::NotConnected));
    assert_eq!(
        s.udp_send_to(t(1), h, &vec![0; 65_508], sock(PEER_IP, 9)),
        Err(UdpError::TooLarge)
    );
    assert_eq!(
        s.udp_send_to(t(1), h, b"x", sock(Ipv4Addr::new(8, 8, 8, 8), 53)),
        Err(UdpError::NotSent(DropReason::Ipv4NoRoute))
    );
    assert_only_drop(&s, DropReason::Ipv4NoRoute);
    assert_silent(&mut s, t(1));
}

#[test]
fn sent_datagram_exact_bytes() {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(Ipv4Addr::UNSPECIFIED, 5353)).unwrap();
    s.udp_send_to(t(1), h, b"hello, peer", sock(PEER_IP, 7))
        .unwrap();
    let out = drain(&mut s, t(1));
    assert_eq!(out.len(), 1);
    // A wildcard-bound socket sends from our address.
    let d = udp(OUR_IP, PEER_IP, 5353, 7, b"hello, peer");
    assert_eq!(
        out[0],
        expected_ip_frame(PEER_MAC, PEER_IP, PROTO_UDP, ident_of(&out[0]), &d)
    );
    assert_eq!(s.counters().get(Counter::UdpOutDatagrams), 1);
}
