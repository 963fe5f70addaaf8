//! Ethernet II fixtures: the valid cases and every drop reason of the link layer.

mod common;

use common::*;
use ringstack_stack::trace::{Layer, Verdict};
use ringstack_stack::{Counter, DropReason};

#[test]
fn unicast_frame_to_us_is_accepted_and_traced_through_every_layer() {
    let mut s = stack();
    s.set_trace_capacity(64);
    let h = s.udp_bind(sock(OUR_IP, 7000)).unwrap();
    let f = udp_frame(1234, 7000, b"hello");
    s.handle_frame(t(1), &f);
    assert_no_drops(&s);
    assert_eq!(s.counters().get(Counter::EthInFrames), 1);
    assert_eq!(s.counters().get(Counter::EthInOctets), f.len() as u64);
    // Stage one: NIC to socket buffer.
    let journey: Vec<(Layer, Verdict)> = s.tracer().drain().map(|e| (e.layer, e.verdict)).collect();
    assert_eq!(
        journey,
        vec![
            (Layer::Nic, Verdict::Pass),
            (Layer::Ethernet, Verdict::Pass),
            (Layer::Ipv4, Verdict::Pass),
            (Layer::Udp, Verdict::Pass),
            (Layer::Socket, Verdict::Deliver),
        ]
    );
    // Stage two: the application's read (traced at the App layer, if at all).
    let mut buf = [0u8; 64];
    assert_eq!(s.udp_recv_from(h, &mut buf), Ok((5, sock(PEER_IP, 1234))));
    assert_eq!(&buf[..5], b"hello");
    assert!(s.tracer().drain().all(|e| e.layer == Layer::App));
}

#[test]
fn truncated_frame_is_dropped() {
    for len in [0usize, 1, 13] {
        let mut s = stack();
        let f = udp_frame(1, 2, b"x");
        s.handle_frame(t(1), &f[..len]);
        assert_only_drop(&s, DropReason::EthTruncated);
        assert_eq!(s.counters().get(Counter::EthInFrames), 1);
        assert_eq!(s.counters().get(Counter::IpInReceives), 0);
        assert_silent(&mut s, t(1));
    }
}

#[test]
fn header_only_frame_reaches_ipv4_and_is_truncated_there() {
    let mut s = stack();
    s.handle_frame(t(1), &eth(OUR_MAC, PEER_MAC, ETH_IPV4, &[]));
    assert_only_drop(&s, DropReason::Ipv4Truncated);
}

#[test]
fn frame_for_another_unicast_mac_is_dropped() {
    let mut s = stack();
    let f = eth(
        OTHER_MAC,
        PEER_MAC,
        ETH_IPV4,
        &Ip::new(PEER_IP, OUR_IP, PROTO_UDP).build(&udp(PEER_IP, OUR_IP, 1, 2, b"x")),
    );
    s.handle_frame(t(1), &f);
    assert_only_drop(&s, DropReason::EthNotForUs);
    assert_eq!(s.counters().get(Counter::IpInReceives), 0);
    assert_silent(&mut s, t(1));
}

#[test]
fn frame_claiming_our_own_source_mac_is_dropped() {
    let mut s = stack();
    // Even an ARP request for us: a looped-back copy of our own frame must not be answered.
    s.handle_frame(t(1), &arp_request_frame(OUR_MAC, PEER_IP, OUR_IP));
    assert_only_drop(&s, DropReason::EthOwnSource);
    assert!(s.arp_entries().is_empty());
    assert_silent(&mut s, t(1));
}

#[test]
fn unknown_ethertype_is_dropped() {
    let mut s = stack();
    // 0x88cc: LLDP.
    s.handle_frame(t(1), &eth(OUR_MAC, PEER_MAC, 0x88cc, &[0u8; 46]));
    assert_only_drop(&s, DropReason::EthUnknownType);
    assert_silent(&mut s, t(1));
}

#[test]
fn ipv6_is_dropped_with_its_own_reason() {
    let mut s = stack();
    let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
    v6.extend_from_slice(&[0u8; 32]);
    s.handle_frame(t(1), &eth(OUR_MAC, PEER_MAC, 0x86dd, &v6));
    assert_only_drop(&s, DropReason::EthIpv6Unsupported);
    assert_silent(&mut s, t(1));
}

#[test]
fn broadcast_frame_is_accepted() {
    let mut s = stack();
    let h = s
        .udp_bind(sock(core::net::Ipv4Addr::UNSPECIFIED, 6000))
        .unwrap();
    let d = udp(PEER_IP, SUBNET_BROADCAST, 99, 6000, b"to all");
    let f = eth(
        BROADCAST_MAC,
        PEER_MAC,
        ETH_IPV4,
        &Ip::new(PEER_IP, SUBNET_BROADCAST, PROTO_UDP).build(&d),
    );
    s.handle_frame(t(1), &f);
    assert_no_drops(&s);
    let mut buf = [0u8; 64];
    assert_eq!(s.udp_recv_from(h, &mut buf), Ok((6, sock(PEER_IP, 99))));
    assert_eq!(&buf[..6], b"to all");
}

#[test]
fn joined_multicast_group_is_accepted_and_others_are_not() {
    let group = core::net::Ipv4Addr::new(224, 0, 0, 251);
    let group_mac = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    let mut cfg = config();
    cfg.multicast = vec![group];
    let mut s = stack_with(cfg);
    let h = s
        .udp_bind(sock(core::net::Ipv4Addr::UNSPECIFIED, 5353))
        .unwrap();
    let d = udp(PEER_IP, group, 5353, 5353, b"mdns");
    let f = eth(
        group_mac,
        PEER_MAC,
        ETH_IPV4,
        &Ip::new(PEER_IP, group, PROTO_UDP).build(&d),
    );
    s.handle_frame(t(1), &f);
    assert_no_drops(&s);
    let mut buf = [0u8; 64];
    assert_eq!(s.udp_recv_from(h, &mut buf), Ok((4, sock(PEER_IP, 5353))));
    // No ICMP error is ever sent about a multicast datagram.
    assert_silent(&mut s, t(1));

    // A group we did not join: refused at the link layer.
    let other = core::net::Ipv4Addr::new(224, 0, 0, 252);
    let d = udp(PEER_IP, other, 5353, 5353, b"mdns");
    let f = eth(
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfc],
        PEER_MAC,
        ETH_IPV4,
        &Ip::new(PEER_IP, other, PROTO_UDP).build(&d),
    );
    s.handle_frame(t(2), &f);
    assert_only_drop(&s, DropReason::EthNotForUs);
}

#[test]
fn multicast_mac_collision_is_refused_at_ipv4() {
    // 239.128.0.251 maps to the same MAC as 224.0.0.251 (only 23 bits are mapped, RFC 1112 §6.4):
    // the link layer accepts the frame; IPv4 must refuse the group we did not join.
    let mut cfg = config();
    cfg.multicast = vec![core::net::Ipv4Addr::new(224, 0, 0, 251)];
    let mut s = stack_with(cfg);
    let _h = s
        .udp_bind(sock(core::net::Ipv4Addr::UNSPECIFIED, 5353))
        .unwrap();
    let alias = core::net::Ipv4Addr::new(239, 128, 0, 251);
    let d = udp(PEER_IP, alias, 5353, 5353, b"mdns");
    let f = eth(
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb],
        PEER_MAC,
        ETH_IPV4,
        &Ip::new(PEER_IP, alias, PROTO_UDP).build(&d),
    );
    s.handle_frame(t(1), &f);
    assert_only_drop(&s, DropReason::Ipv4NotForUs);
}
