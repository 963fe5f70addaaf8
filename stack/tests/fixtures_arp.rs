//! ARP (RFC 826) fixtures: exact bytes of what we send, learning rules, and every drop reason.

mod common;

use core::net::Ipv4Addr;

use common::*;
use ringstack_stack::arp::ArpEntry;
use ringstack_stack::{Counter, DropReason, Stack};

const NEW_PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x11];

fn arp_frame(eth_src: [u8; 6], packet: &[u8]) -> Vec<u8> {
    eth(BROADCAST_MAC, eth_src, ETH_ARP, packet)
}

fn entry(ip: Ipv4Addr, mac: Option<[u8; 6]>, pending: usize) -> ArpEntry {
    ArpEntry { ip, mac, pending }
}

#[test]
fn gratuitous_arp_on_start_exact_bytes() {
    let mut s = Stack::new(config(), t(0));
    let out = drain(&mut s, t(0));
    let expected = eth(
        BROADCAST_MAC,
        OUR_MAC,
        ETH_ARP,
        &arp(1, OUR_MAC, OUR_IP, [0; 6], OUR_IP),
    );
    assert_eq!(out, vec![expected]);
    assert_eq!(s.counters().get(Counter::ArpOutRequests), 1);
    assert_eq!(s.counters().get(Counter::EthOutFrames), 1);
    assert_eq!(s.counters().get(Counter::EthOutOctets), 42);
    assert_no_drops(&s);
}

#[test]
fn no_gratuitous_arp_when_disabled() {
    let mut cfg = config();
    cfg.arp.gratuitous = false;
    let mut s = Stack::new(cfg, t(0));
    assert_silent(&mut s, t(0));
}

#[test]
fn request_for_us_is_answered_exact_bytes_and_sender_learned() {
    let mut s = stack();
    s.handle_frame(t(5), &arp_request_frame(PEER_MAC, PEER_IP, OUR_IP));
    let out = drain(&mut s, t(5));
    let expected = eth(
        PEER_MAC,
        OUR_MAC,
        ETH_ARP,
        &arp(2, OUR_MAC, OUR_IP, PEER_MAC, PEER_IP),
    );
    assert_eq!(out, vec![expected]);
    assert_no_drops(&s);
    assert_eq!(s.arp_entries(), vec![entry(PEER_IP, Some(PEER_MAC), 0)]);
    assert_eq!(s.counters().get(Counter::ArpInRequests), 1);
    assert_eq!(s.counters().get(Counter::ArpOutReplies), 1);
}

#[test]
fn padded_request_is_answered() {
    // Minimum-size Ethernet frames carry 18 bytes of padding after the 28-byte ARP packet.
    let mut s = stack();
    let mut f = arp_request_frame(PEER_MAC, PEER_IP, OUR_IP);
    f.resize(60, 0);
    s.handle_frame(t(1), &f);
    let out = drain(&mut s, t(1));
    assert_eq!(out.len(), 1);
    assert_eq!(
        &out[0][14..],
        &arp(2, OUR_MAC, OUR_IP, PEER_MAC, PEER_IP)[..]
    );
    assert_no_drops(&s);
}

#[test]
fn probe_for_our_address_is_defended_but_teaches_nothing() {
    // RFC 5227 probe: sender IP 0.0.0.0, target = our address.
    let mut s = stack();
    s.handle_frame(
        t(1),
        &arp_request_frame(PEER_MAC, Ipv4Addr::UNSPECIFIED, OUR_IP),
    );
    let out = drain(&mut s, t(1));
    assert_eq!(
        out,
        vec![eth(
            PEER_MAC,
            OUR_MAC,
            ETH_ARP,
            &arp(2, OUR_MAC, OUR_IP, PEER_MAC, Ipv4Addr::UNSPECIFIED)
        )]
    );
    assert!(s.arp_entries().is_empty());
    assert_no_drops(&s);
}

#[test]
fn truncated_packets_are_dropped() {
    let full = arp(1, PEER_MAC, PEER_IP, [0; 6], OUR_IP);
    // Shorter than the fixed part, and a valid fixed part with truncated addresses.
    for len in [0usize, 7, 8, 27] {
        let mut s = stack();
        s.handle_frame(t(1), &arp_frame(PEER_MAC, &full[..len]));
        assert_only_drop(&s, DropReason::ArpTruncated);
        assert!(s.arp_entries().is_empty());
        assert_silent(&mut s, t(1));
    }
}

#[test]
fn unsupported_hardware_or_protocol_is_dropped() {
    let full = arp(1, PEER_MAC, PEER_IP, [0; 6], OUR_IP);
    let edits: [(usize, u8); 4] = [
        (1, 6),    // htype 6 (IEEE 802)
        (2, 0x86), // ptype 0x86dd
        (4, 8),    // hlen 8
        (5, 16),   // plen 16
    ];
    for (at, value) in edits {
        let mut p = full.clone();
        p[at] = value;
        if at == 2 {
            p[3] = 0xdd;
        }
        let mut s = stack();
        s.handle_frame(t(1), &arp_frame(PEER_MAC, &p));
        assert_only_drop(&s, DropReason::ArpUnsupported);
        assert!(s.arp_entries().is_empty(), "edit at {at}");
        assert_silent(&mut s, t(1));
    }
}

#[test]
fn bad_operation_is_dropped() {
    for op in [0u16, 3, 4, 0x0101] {
        let mut s = stack();
        s.handle_frame(
            t(1),
            &arp_frame(PEER_MAC, &arp(op, PEER_MAC, PEER_IP, [0; 6], OUR_IP)),
        );
        assert_only_drop(&s, DropReason::ArpBadOperation);
        assert!(s.arp_entries().is_empty());
        assert_silent(&mut s, t(1));
    }
}

#[test]
fn request_not_for_us_is_dropped_and_creates_no_entry() {
    let mut s = stack();
    s.handle_frame(t(1), &arp_request_frame(PEER_MAC, PEER_IP, OTHER_IP));
    assert_only_drop(&s, DropReason::ArpNotForUs);
    assert!(s.arp_entries().is_empty());
    assert_silent(&mut s, t(1));
}

#[test]
fn request_not_for_us_refreshes_an_existing_entry() {
    let mut s = stack();
    learn_peer(&mut s, t(0)); // expires at 60 s
                              // At 50 s the peer (now with a new NIC) asks for someone else: RFC 826's merge step updates
                              // the entry we already have — new MAC, new expiry.
    s.handle_frame(
        t(50_000),
        &arp_request_frame(NEW_PEER_MAC, PEER_IP, OTHER_IP),
    );
    assert_only_drop(&s, DropReason::ArpNotForUs);
    assert_eq!(s.arp_entries(), vec![entry(PEER_IP, Some(NEW_PEER_MAC), 0)]);
    assert_eq!(s.counters().get(Counter::ArpCacheUpdates), 2);
    s.handle_timeout(t(61_000));
    assert_eq!(
        s.arp_entries(),
        vec![entry(PEER_IP, Some(NEW_PEER_MAC), 0)],
        "refreshed entry must outlive the original 60 s"
    );
    s.handle_timeout(t(110_000));
    assert!(s.arp_entries().is_empty());
    assert_eq!(s.counters().get(Counter::ArpCacheExpired), 1);
}

#[test]
fn bad_senders_are_dropped() {
    let cases: [([u8; 6], [u8; 6], Ipv4Addr, &str); 6] = [
        (PEER_MAC, BROADCAST_MAC, PEER_IP, "sender MAC broadcast"),
        (
            PEER_MAC,
            [0x01, 0x00, 0x5e, 0, 0, 1],
            PEER_IP,
            "sender MAC multicast",
        ),
        (PEER_MAC, OUR_MAC, PEER_IP, "sender MAC ours"),
        (PEER_MAC, PEER_MAC, OUR_IP, "sender IP ours (conflict)"),
        (
            PEER_MAC,
            PEER_MAC,
            Ipv4Addr::BROADCAST,
            "sender IP broadcast",
        ),
        (
            PEER_MAC,
            PEER_MAC,
            Ipv4Addr::new(224, 0, 0, 1),
            "sender IP multicast",
        ),
    ];
    for (eth_src, sha, spa, what) in cases {
        let mut s = stack();
        s.handle_frame(t(1), &arp_frame(eth_src, &arp(1, sha, spa, [0; 6], OUR_IP)));
        let drops: Vec<_> = s.counters().iter_drops().collect();
        assert_eq!(
            drops,
            vec![(DropReason::ArpBadSender, 1)],
            "{what}: drops were {drops:?}"
        );
        assert!(s.arp_entries().is_empty(), "{what}");
        assert_silent(&mut s, t(1));
    }
}

#[test]
fn subnet_broadcast_sender_is_dropped() {
    let mut s = stack();
    s.handle_frame(t(1), &arp_request_frame(PEER_MAC, SUBNET_BROADCAST, OUR_IP));
    assert_only_drop(&s, DropReason::ArpBadSender);
    assert!(s.arp_entries().is_empty());
    assert_silent(&mut s, t(1));
}

#[test]
fn resolving_sends_exact_request_then_reply_releases_the_queued_datagram() {
    let mut s = stack();
    let h = s.udp_bind(sock(OUR_IP, 4000)).unwrap();
    s.udp_send_to(t(1), h, b"queued", sock(PEER_IP, 9)).unwrap();
    let out = drain(&mut s, t(1));
    let request = eth(
        BROADCAST_MAC,
        OUR_MAC,
        ETH_ARP,
        &arp(1, OUR_MAC, OUR_IP, [0; 6], PEER_IP),
    );
    assert_eq!(out, vec![request]);
    assert_eq!(s.arp_entries(), vec![entry(PEER_IP, None, 1)]);
    assert_eq!(s.poll_at(), Some(t(1001)));

    // The reply (unicast to us) resolves the neighbour and releases the datagram.
    let reply = eth(
        OUR_MAC,
        PEER_MAC,
        ETH_ARP,
        &arp(2, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP),
    );
    s.handle_frame(t(2), &reply);
    let out = drain(&mut s, t(2));
    assert_eq!(out.len(), 1);
    let expected = expected_ip_frame(
        PEER_MAC,
        PEER_IP,
        PROTO_UDP,
        ident_of(&out[0]),
        &udp(OUR_IP, PEER_IP, 4000, 9, b"queued"),
    );
    assert_eq!(out[0], expected);
    assert_eq!(s.arp_entries(), vec![entry(PEER_IP, Some(PEER_MAC), 0)]);
    assert_eq!(s.counters().get(Counter::ArpInReplies), 1);
    assert_no_drops(&s);

    // Resolved: the next datagram goes straight out.
    s.udp_send_to(t(3), h, b"direct", sock(PEER_IP, 9)).unwrap();
    let out = drain(&mut s, t(3));
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][..6], &PEER_MAC);
}

#[test]
fn unanswered_requests_are_retried_then_pending_packets_dropped() {
    let mut s = stack();
    let h = s.udp_bind(sock(OUR_IP, 4000)).unwrap();
    s.udp_send_to(t(0), h, b"lost", sock(OTHER_IP, 9)).unwrap();
    assert_eq!(drain(&mut s, t(0)).len(), 1);
    let mut requests = 1;
    let mut now = t(0);
    while let Some(at) = s.poll_at() {
        assert!(at > now, "poll_at must move forward");
        now = at;
        s.handle_timeout(now);
        requests += drain(&mut s, now).len();
        assert!(now < t(10_000), "ARP never gave up");
    }
    assert_eq!(requests, 3, "max_requests = 3");
    assert_eq!(now, t(3000));
    assert_only_drop(&s, DropReason::ArpUnresolved);
    assert!(s.arp_entries().is_empty());
    assert_eq!(s.counters().get(Counter::ArpOutRequests), 1 + 3);
}

#[test]
fn pending_queue_is_bounded() {
    let mut s = stack();
    let h = s.udp_bind(sock(OUR_IP, 4000)).unwrap();
    let per = s.config().arp.pending_per_neighbor;
    for i in 0..per {
        s.udp_send_to(t(0), h, &[i as u8], sock(OTHER_IP, 9))
            .unwrap();
    }
    assert_no_drops(&s);
    s.udp_send_to(t(0), h, b"one too many", sock(OTHER_IP, 9))
        .unwrap();
    assert_only_drop(&s, DropReason::ArpPendingFull);
    assert_eq!(s.arp_entries(), vec![entry(OTHER_IP, None, per)]);
    // One request, not one per datagram.
    assert_eq!(drain(&mut s, t(0)).len(), 1);
}

#[test]
fn cache_is_bounded_by_max_entries() {
    let mut cfg = config();
    cfg.arp.max_entries = 4;
    let mut s = stack_with(cfg);
    for i in 10..20u8 {
        let mac = [0x02, 0, 0, 0, 1, i];
        s.handle_frame(
            t(i as u64),
            &arp_request_frame(mac, Ipv4Addr::new(198, 18, 0, i), OUR_IP),
        );
        assert!(s.arp_entries().len() <= 4);
    }
    let e = s.arp_entries();
    assert_eq!(e.len(), 4);
    // The most recent sender is kept (the oldest are evicted).
    assert!(e.contains(&entry(
        Ipv4Addr::new(198, 18, 0, 19),
        Some([0x02, 0, 0, 0, 1, 19]),
        0
    )));
    assert_eq!(drain(&mut s, t(100)).len(), 10, "every request answered");
    assert_no_drops(&s);
}

#[test]
fn entry_expires_after_cache_ttl() {
    let mut s = stack_with_peer();
    assert_eq!(s.poll_at(), Some(t(60_000)));
    s.handle_timeout(t(59_999));
    assert_eq!(s.arp_entries().len(), 1);
    s.handle_timeout(t(60_000));
    assert!(s.arp_entries().is_empty());
    assert_eq!(s.counters().get(Counter::ArpCacheExpired), 1);
    assert_eq!(s.poll_at(), None);
}

#[test]
fn gratuitous_arp_from_a_neighbour_updates_without_a_drop() {
    // RFC 5227 §2.3 announcement: sender IP = target IP = the announcer's address.
    let mut s = stack_with_peer();
    s.handle_frame(t(1), &arp_request_frame(NEW_PEER_MAC, PEER_IP, PEER_IP));
    assert_no_drops(&s);
    assert_eq!(s.arp_entries(), vec![entry(PEER_IP, Some(NEW_PEER_MAC), 0)]);
    assert_silent(&mut s, t(1));
    // From a host we have never talked to: nothing learned (RFC 826 only creates entries for
    // packets addressed to us), nothing dropped.
    s.handle_frame(t(2), &arp_request_frame(OTHER_MAC, OTHER_IP, OTHER_IP));
    assert_no_drops(&s);
    assert_eq!(s.arp_entries().len(), 1);
    assert_silent(&mut s, t(2));
}
