//! IPv4 (RFC 791, RFC 1122 §3.2) fixtures: header validation in order, local delivery, options,
//! padding, protocol unreachable, and fragment reassembly.

mod common;

use core::net::Ipv4Addr;

use common::*;
use ringstack_stack::{Counter, DropReason, Stack};

/// A UDP socket on our port 7000 and the datagram "payload!" from the peer to it.
fn bound() -> (Stack, ringstack_stack::UdpHandle) {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 7000)).unwrap();
    (s, h)
}

fn dgram() -> Vec<u8> {
    udp(PEER_IP, OUR_IP, 1234, 7000, b"payload!")
}

fn good_packet() -> Vec<u8> {
    Ip::new(PEER_IP, OUR_IP, PROTO_UDP).build(&dgram())
}

fn recv(
    s: &mut Stack,
    h: ringstack_stack::UdpHandle,
) -> Option<(Vec<u8>, core::net::SocketAddrV4)> {
    let mut buf = vec![0u8; 70_000];
    match s.udp_recv_from(h, &mut buf) {
        Ok((n, from)) => Some((buf[..n].to_vec(), from)),
        Err(_) => None,
    }
}

/// Feeds `packet` (edited by the test) and checks it is dropped for exactly `reason`, silently.
#[track_caller]
fn expect_drop(packet: &[u8], reason: DropReason) {
    let (mut s, h) = bound();
    s.handle_frame(t(1), &from_peer(packet));
    assert_only_drop(&s, reason);
    assert!(recv(&mut s, h).is_none(), "must not be delivered");
    assert_silent(&mut s, t(1));
}

#[test]
fn valid_packet_is_delivered() {
    let (mut s, h) = bound();
    s.handle_frame(t(1), &from_peer(&good_packet()));
    assert_no_drops(&s);
    assert_eq!(
        recv(&mut s, h),
        Some((b"payload!".to_vec(), sock(PEER_IP, 1234)))
    );
    assert_eq!(s.counters().get(Counter::IpInReceives), 1);
    assert_eq!(s.counters().get(Counter::IpInDelivers), 1);
    assert_silent(&mut s, t(1));
}

#[test]
fn truncated_header_is_dropped() {
    let p = good_packet();
    for len in [0usize, 1, 19] {
        expect_drop(&p[..len], DropReason::Ipv4Truncated);
    }
}

#[test]
fn bad_version_is_dropped() {
    for v in [0u8, 6, 15] {
        let mut p = good_packet();
        p[0] = (v << 4) | 5;
        fix_ip_checksum(&mut p);
        expect_drop(&p, DropReason::Ipv4BadVersion);
    }
}

#[test]
fn ihl_below_five_is_dropped() {
    for ihl in [0u8, 4] {
        let mut p = good_packet();
        p[0] = 0x40 | ihl;
        expect_drop(&p, DropReason::Ipv4BadHeaderLength);
    }
}

#[test]
fn ihl_beyond_packet_is_dropped() {
    // IHL 15 = 60 bytes, but the packet is 36 bytes long.
    let mut p = good_packet();
    assert!(p.len() < 60);
    p[0] = 0x4f;
    expect_drop(&p, DropReason::Ipv4BadHeaderLength);
}

#[test]
fn total_length_beyond_frame_is_dropped() {
    let mut p = good_packet();
    let total = p.len() as u16 + 1;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    fix_ip_checksum(&mut p);
    expect_drop(&p, DropReason::Ipv4BadTotalLength);
}

#[test]
fn total_length_below_header_is_dropped() {
    for total in [0u16, 19] {
        let mut p = good_packet();
        p[2..4].copy_from_slice(&total.to_be_bytes());
        fix_ip_checksum(&mut p);
        expect_drop(&p, DropReason::Ipv4BadTotalLength);
    }
    // With options: total 22 < IHL 24.
    let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_UDP);
    ip.options = vec![1, 1, 1, 1];
    let mut p = ip.build(&dgram());
    p[2..4].copy_from_slice(&22u16.to_be_bytes());
    fix_ip_checksum(&mut p);
    expect_drop(&p, DropReason::Ipv4BadTotalLength);
}

#[test]
fn bad_checksum_is_dropped() {
    let mut p = good_packet();
    p[11] ^= 0x01;
    expect_drop(&p, DropReason::Ipv4BadChecksum);
    // A flipped bit elsewhere in the header, checksum left alone.
    let mut p = good_packet();
    p[8] ^= 0x10;
    expect_drop(&p, DropReason::Ipv4BadChecksum);
}

#[test]
fn ttl_zero_is_dropped_and_ttl_one_accepted() {
    let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_UDP);
    ip.ttl = 0;
    expect_drop(&ip.build(&dgram()), DropReason::Ipv4TtlExpired);

    let (mut s, h) = bound();
    ip.ttl = 1;
    s.handle_frame(t(1), &from_peer(&ip.build(&dgram())));
    assert_no_drops(&s);
    assert!(recv(&mut s, h).is_some());
}

#[test]
fn bad_sources_are_dropped() {
    for src in [
        Ipv4Addr::BROADCAST,
        SUBNET_BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(127, 0, 0, 1),
        OUR_IP, // "land": a packet from ourselves to ourselves
    ] {
        let d = udp(src, OUR_IP, 1234, 7000, b"payload!");
        expect_drop(
            &Ip::new(src, OUR_IP, PROTO_UDP).build(&d),
            DropReason::Ipv4BadSource,
        );
    }
}

#[test]
fn packet_for_another_host_is_dropped() {
    let d = udp(PEER_IP, OTHER_IP, 1234, 7000, b"payload!");
    // We are a host, not a router: no ICMP, no forwarding.
    expect_drop(
        &Ip::new(PEER_IP, OTHER_IP, PROTO_UDP).build(&d),
        DropReason::Ipv4NotForUs,
    );
}

#[test]
fn broadcast_destinations_are_local() {
    for dst in [Ipv4Addr::BROADCAST, SUBNET_BROADCAST] {
        let mut s = stack();
        let h = s.udp_bind(sock(Ipv4Addr::UNSPECIFIED, 7000)).unwrap();
        let d = udp(PEER_IP, dst, 1234, 7000, b"bcast");
        let f = eth(
            BROADCAST_MAC,
            PEER_MAC,
            ETH_IPV4,
            &Ip::new(PEER_IP, dst, PROTO_UDP).build(&d),
        );
        s.handle_frame(t(1), &f);
        assert_no_drops(&s);
        assert_eq!(
            recv(&mut s, h),
            Some((b"bcast".to_vec(), sock(PEER_IP, 1234)))
        );
    }
}

#[test]
fn unknown_protocol_is_dropped_and_answered_with_protocol_unreachable() {
    let mut s = stack_with_peer();
    let original = Ip::new(PEER_IP, OUR_IP, 253).build(b"experimental protocol");
    s.handle_frame(t(1), &from_peer(&original));
    assert_only_drop(&s, DropReason::Ipv4UnknownProtocol);
    assert_eq!(s.counters().get(Counter::IpInUnknownProtos), 1);
    let out = drain(&mut s, t(1));
    assert_eq!(out.len(), 1);
    // RFC 792: type 3 code 2, unused word zero, the original header and (here all of) its data.
    let msg = icmp(3, 2, [0; 4], &original);
    let expected = expected_ip_frame(PEER_MAC, PEER_IP, PROTO_ICMP, ident_of(&out[0]), &msg);
    assert_eq!(out[0], expected);
    assert_eq!(s.counters().get(Counter::IcmpOutDestUnreachs), 1);
}

#[test]
fn unknown_protocol_to_broadcast_gets_no_icmp() {
    let mut s = stack_with_peer();
    let p = Ip::new(PEER_IP, SUBNET_BROADCAST, 253).build(b"x");
    s.handle_frame(t(1), &eth(BROADCAST_MAC, PEER_MAC, ETH_IPV4, &p));
    assert_only_drop(&s, DropReason::Ipv4UnknownProtocol);
    assert_silent(&mut s, t(1));
}

#[test]
fn options_are_skipped_and_packet_delivered() {
    for options in [vec![1u8, 1, 1, 1], vec![1, 1, 1, 0], vec![1; 40]] {
        let (mut s, h) = bound();
        let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_UDP);
        ip.options = options.clone();
        s.handle_frame(t(1), &from_peer(&ip.build(&dgram())));
        assert_no_drops(&s);
        assert_eq!(
            recv(&mut s, h),
            Some((b"payload!".to_vec(), sock(PEER_IP, 1234))),
            "options {options:?}"
        );
    }
}

#[test]
fn echo_request_with_options_is_answered_without_them() {
    let mut s = stack_with_peer();
    let req = icmp_echo(8, 7, 1, b"opts");
    let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_ICMP);
    ip.options = vec![1, 1, 1, 1];
    s.handle_frame(t(1), &from_peer(&ip.build(&req)));
    assert_no_drops(&s);
    let out = drain(&mut s, t(1));
    assert_eq!(out.len(), 1);
    let expected = expected_ip_frame(
        PEER_MAC,
        PEER_IP,
        PROTO_ICMP,
        ident_of(&out[0]),
        &icmp_echo(0, 7, 1, b"opts"),
    );
    assert_eq!(out[0], expected);
}

#[test]
fn ethernet_padding_is_trimmed() {
    // A 1-byte UDP payload makes a 43-byte frame; the NIC pads it to 60.
    let (mut s, h) = bound();
    let d = udp(PEER_IP, OUR_IP, 1234, 7000, b"x");
    let mut f = from_peer(&Ip::new(PEER_IP, OUR_IP, PROTO_UDP).build(&d));
    assert_eq!(f.len(), 43);
    f.resize(60, 0xee);
    s.handle_frame(t(1), &f);
    assert_no_drops(&s);
    assert_eq!(recv(&mut s, h), Some((b"x".to_vec(), sock(PEER_IP, 1234))));

    // Echo: the reply must not echo the padding (the ICMP checksum would not cover it either).
    let req = icmp_echo(8, 1, 2, b"ab");
    let mut f = icmp_frame(&req);
    f.resize(60, 0xee);
    s.handle_frame(t(2), &f);
    assert_no_drops(&s);
    let out = drain(&mut s, t(2));
    assert_eq!(out.len(), 1);
    let expected = expected_ip_frame(
        PEER_MAC,
        PEER_IP,
        PROTO_ICMP,
        ident_of(&out[0]),
        &icmp_echo(0, 1, 2, b"ab"),
    );
    assert_eq!(out[0], expected);
}

// ----- fragments (RFC 791 §3.2) -----

/// Splits `payload` into fragments of at most `chunk` bytes (a multiple of 8) with ident `id`.
fn fragments(protocol: u8, id: u16, payload: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + chunk).min(payload.len());
        let mut ip = Ip::new(PEER_IP, OUR_IP, protocol);
        ip.ident = id;
        ip.frag_offset = off;
        ip.more_frags = end < payload.len();
        out.push(from_peer(&ip.build(&payload[off..end])));
        off = end;
    }
    out
}

#[test]
fn fragments_in_order_are_reassembled_and_delivered_once() {
    let (mut s, h) = bound();
    let data = pattern(3000, 1);
    let d = udp(PEER_IP, OUR_IP, 1234, 7000, &data);
    let frags = fragments(PROTO_UDP, 77, &d, 1480);
    assert_eq!(frags.len(), 3);
    for f in &frags {
        s.handle_frame(t(1), f);
    }
    assert_no_drops(&s);
    assert_eq!(recv(&mut s, h), Some((data, sock(PEER_IP, 1234))));
    assert!(recv(&mut s, h).is_none());
    assert_eq!(s.counters().get(Counter::IpReasmReqds), 3);
    assert_eq!(s.counters().get(Counter::IpReasmOKs), 1);
    s.handle_timeout(t(2));
    assert_eq!(s.reassembly_memory(), 0);
    assert_eq!(
        s.poll_at(),
        Some(t(60_000)),
        "only the ARP entry is left to time out"
    );
}

#[test]
fn fragments_in_reverse_order_with_duplicates_are_reassembled() {
    let (mut s, h) = bound();
    let data = pattern(5000, 2);
    let d = udp(PEER_IP, OUR_IP, 1234, 7000, &data);
    let frags = fragments(PROTO_UDP, 78, &d, 1024);
    s.handle_frame(t(1), &frags[1]); // an exact duplicate is harmless
    for f in frags.iter().rev() {
        s.handle_frame(t(1), f);
    }
    assert_no_drops(&s);
    assert_eq!(recv(&mut s, h), Some((data, sock(PEER_IP, 1234))));
}

#[test]
fn interleaved_datagrams_with_different_idents_are_kept_apart() {
    let (mut s, h) = bound();
    let (a, b) = (pattern(2000, 3), pattern(2000, 4));
    let fa = fragments(PROTO_UDP, 1, &udp(PEER_IP, OUR_IP, 1, 7000, &a), 1024);
    let fb = fragments(PROTO_UDP, 2, &udp(PEER_IP, OUR_IP, 2, 7000, &b), 1024);
    for (x, y) in fa.iter().zip(&fb) {
        s.handle_frame(t(1), x);
        s.handle_frame(t(1), y);
    }
    assert_no_drops(&s);
    assert_eq!(recv(&mut s, h), Some((a, sock(PEER_IP, 1))));
    assert_eq!(recv(&mut s, h), Some((b, sock(PEER_IP, 2))));
}

#[test]
fn reassembled_echo_request_is_answered_with_fragmented_reply() {
    let mut s = stack_with_peer();
    let data = pattern(4000, 5);
    let req = icmp_echo(8, 9, 9, &data);
    for f in fragments(PROTO_ICMP, 300, &req, 1480) {
        s.handle_frame(t(1), &f);
    }
    assert_no_drops(&s);
    let out = drain(&mut s, t(1));
    assert_eq!(
        out.len(),
        3,
        "4008 bytes of ICMP need 3 fragments at MTU 1500"
    );
    let mut whole = Vec::new();
    for (i, f) in out.iter().enumerate() {
        let (h, p) = ip_of(f, PEER_MAC);
        let flags = u16::from_be_bytes([h[6], h[7]]);
        assert_eq!(
            (flags & 0x1fff) as usize * 8,
            whole.len(),
            "fragment {i} offset"
        );
        assert_eq!(flags & 0x2000 != 0, i < 2, "MF of fragment {i}");
        assert_eq!(inet_checksum(&[h]), 0);
        whole.extend_from_slice(p);
    }
    assert_eq!(whole, icmp_echo(0, 9, 9, &data));
}

#[test]
fn misaligned_non_final_fragment_is_malformed() {
    let (mut s, h) = bound();
    let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_UDP);
    ip.more_frags = true;
    s.handle_frame(t(1), &from_peer(&ip.build(&pattern(13, 0))));
    assert_only_drop(&s, DropReason::Ipv4FragMalformed);
    assert!(recv(&mut s, h).is_none());
}

#[test]
fn fragment_beyond_65535_is_malformed() {
    let (mut s, _h) = bound();
    let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_UDP);
    ip.frag_offset = 65528;
    s.handle_frame(t(1), &from_peer(&ip.build(&[0u8; 16])));
    assert_only_drop(&s, DropReason::Ipv4FragMalformed);
    assert_eq!(s.reassembly_memory(), 0);
}

#[test]
fn overlapping_fragment_with_different_bytes_is_a_conflict() {
    let (mut s, h) = bound();
    let d = udp(PEER_IP, OUR_IP, 1234, 7000, &pattern(2000, 6));
    let frags = fragments(PROTO_UDP, 79, &d, 1024);
    s.handle_frame(t(1), &frags[0]);
    let mut evil = Ip::new(PEER_IP, OUR_IP, PROTO_UDP);
    evil.ident = 79;
    evil.frag_offset = 512;
    evil.more_frags = true;
    s.handle_frame(t(1), &from_peer(&evil.build(&[0xaa; 1024])));
    assert_only_drop(&s, DropReason::Ipv4FragConflict);
    s.handle_frame(t(1), &frags[1]);
    assert!(
        recv(&mut s, h).is_none(),
        "a conflicting datagram must never be delivered"
    );
}

#[test]
fn incomplete_datagram_times_out_with_time_exceeded() {
    let (mut s, _h) = bound();
    let d = udp(PEER_IP, OUR_IP, 1234, 7000, &pattern(3000, 7));
    let frags = fragments(PROTO_UDP, 80, &d, 1480);
    s.handle_frame(t(1000), &frags[0]);
    s.handle_frame(t(1000), &frags[2]);
    assert_no_drops(&s);
    assert!(s.reassembly_memory() > 0);
    let timeout = s.config().reassembly.timeout;
    assert_eq!(s.poll_at(), Some(t(1000) + timeout));
    s.handle_timeout(t(1000) + timeout);
    assert_only_drop(&s, DropReason::Ipv4FragTimeout);
    assert_eq!(s.reassembly_memory(), 0);
    let out = drain(&mut s, t(1000) + timeout);
    assert_eq!(out.len(), 1);
    let (_, icmp_msg) = ip_of(&out[0], PEER_MAC);
    assert_eq!(&icmp_msg[..2], &[11, 1], "time exceeded, reassembly");
    assert_eq!(inet_checksum(&[icmp_msg]), 0);
    let quote = &icmp_msg[8..];
    assert_eq!(&quote[12..16], &PEER_IP.octets());
    assert_eq!(&quote[16..20], &OUR_IP.octets());
    assert_eq!(quote[9], PROTO_UDP);
    assert_eq!(&quote[4..6], &80u16.to_be_bytes());
    assert_eq!(
        &quote[20..28],
        &d[..8],
        "first 8 bytes of the original data"
    );
}

#[test]
fn timeout_without_first_fragment_sends_nothing() {
    let (mut s, _h) = bound();
    let d = udp(PEER_IP, OUR_IP, 1234, 7000, &pattern(3000, 8));
    let frags = fragments(PROTO_UDP, 81, &d, 1480);
    s.handle_frame(t(0), &frags[1]);
    let timeout = s.config().reassembly.timeout;
    s.handle_timeout(t(0) + timeout);
    assert_only_drop(&s, DropReason::Ipv4FragTimeout);
    assert_silent(&mut s, t(0) + timeout);
}

#[test]
fn reassembly_memory_is_bounded() {
    let mut cfg = config();
    cfg.reassembly.max_memory = 8 * 1024;
    let mut s = stack_with(cfg);
    let _h = s.udp_bind(sock(OUR_IP, 7000)).unwrap();
    for id in 0..100u16 {
        let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_UDP);
        ip.ident = id;
        ip.more_frags = true;
        s.handle_frame(t(1), &from_peer(&ip.build(&[id as u8; 1024])));
        assert!(
            s.reassembly_memory() <= 8 * 1024,
            "after {id}: {}",
            s.reassembly_memory()
        );
    }
    assert!(s.counters().drops(DropReason::Ipv4FragMemoryFull) > 0);
    // Legitimate reassembly still works under the flood.
    let data = pattern(2000, 9);
    for f in fragments(PROTO_UDP, 5000, &udp(PEER_IP, OUR_IP, 1, 7000, &data), 1024) {
        s.handle_frame(t(2), &f);
    }
    let mut buf = vec![0u8; 4096];
    assert_eq!(
        s.udp_recv_from(_h, &mut buf)
            .map(|(n, _)| buf[..n].to_vec()),
        Ok(data)
    );
}

#[test]
fn port_unreachable_about_a_reassembled_datagram_quotes_the_first_fragment_header() {
    // RFC 792: the quote is the original datagram's header + its first 64 bits of data; for a
    // reassembled datagram that is a header with offset 0 (not the last fragment's).
    let mut s = stack_with_peer();
    let d = udp(PEER_IP, OUR_IP, 1234, 9999, &pattern(2000, 10));
    let frags = fragments(PROTO_UDP, 82, &d, 1024);
    for f in &frags {
        s.handle_frame(t(1), f);
    }
    assert_only_drop(&s, DropReason::UdpNoPort);
    let out = drain(&mut s, t(1));
    assert_eq!(out.len(), 1);
    let (_, icmp_msg) = ip_of(&out[0], PEER_MAC);
    assert_eq!(&icmp_msg[..2], &[3, 3]);
    let quote = &icmp_msg[8..];
    assert_eq!(&quote[20..28], &d[..8]);
    let flags = u16::from_be_bytes([quote[6], quote[7]]);
    assert_eq!(
        flags & 0x1fff,
        0,
        "quoted header must have fragment offset 0"
    );
}
