//! Property tests of the ingress path: nothing a wire can send makes the stack panic, and no
//! sequence of frames grows its state (reassembly memory, transmit queue, ARP cache) beyond the
//! configured bounds.

mod common;

use core::net::Ipv4Addr;

use common::*;
use proptest::prelude::*;
use ringstack_stack::{Config, DropReason, Instant, Stack};

/// A stack with something listening on every path: a known peer, UDP sockets (one connected),
/// a ping socket.
fn busy_stack(cfg: Config) -> Stack {
    let mut s = stack_with(cfg);
    learn_peer(&mut s, t(0));
    let _ = s.udp_bind(sock(OUR_IP, 7)).unwrap();
    let _ = s.udp_bind(sock(Ipv4Addr::UNSPECIFIED, 53)).unwrap();
    let c = s.udp_bind(sock(OUR_IP, 5000)).unwrap();
    s.udp_connect(c, sock(PEER_IP, 7)).unwrap();
    let _ = s.ping_open(1).unwrap();
    s
}

/// Valid frames of every kind, to be mutated.
fn seeds() -> Vec<Vec<u8>> {
    let sent_by_us =
        Ip::new(OUR_IP, PEER_IP, PROTO_UDP).build(&udp(OUR_IP, PEER_IP, 5000, 7, b"hi"));
    let mut frag = Ip::new(PEER_IP, OUR_IP, PROTO_UDP);
    frag.more_frags = true;
    let mut frag2 = frag.clone();
    frag2.more_frags = false;
    frag2.frag_offset = 8;
    let mut opts = Ip::new(PEER_IP, OUR_IP, PROTO_UDP);
    opts.options = vec![1, 1, 1, 0];
    vec![
        arp_request_frame(PEER_MAC, PEER_IP, OUR_IP),
        eth(
            OUR_MAC,
            PEER_MAC,
            ETH_ARP,
            &arp(2, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP),
        ),
        icmp_frame(&icmp_echo(8, 1, 1, b"echo me")),
        icmp_frame(&icmp_echo(0, 1, 1, b"reply")),
        icmp_frame(&icmp(3, 3, [0; 4], &sent_by_us)),
        icmp_frame(&icmp(3, 4, [0, 0, 2, 0], &sent_by_us)),
        icmp_frame(&icmp(11, 0, [0; 4], &sent_by_us)),
        udp_frame(1, 7, b"to port 7"),
        udp_frame(7, 5000, b"to the connected socket"),
        udp_frame(1, 9999, b"closed port"),
        from_peer(&frag.build(&pattern(8, 1))),
        from_peer(&frag2.build(&pattern(8, 2))),
        from_peer(&opts.build(&udp(PEER_IP, OUR_IP, 1, 53, b"opts"))),
        from_peer(&Ip::new(PEER_IP, OUR_IP, 6).build(&[0u8; 20])), // TCP (may be dropped)
        from_peer(&Ip::new(PEER_IP, OUR_IP, 99).build(b"unknown")),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Set { at: usize, value: u8 },
    Truncate(usize),
    Extend(Vec<u8>),
    FixIpChecksum,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        any::<usize>().prop_map(Mutation::Truncate),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
        Just(Mutation::FixIpChecksum),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip { at, mask } if !frame.is_empty() => {
            let n = frame.len();
            frame[at % n] ^= mask
        }
        Mutation::Set { at, value } if !frame.is_empty() => {
            let n = frame.len();
            frame[at % n] = *value
        }
        Mutation::Truncate(at) => frame.truncate(at % (frame.len() + 1)),
        Mutation::Extend(bytes) => frame.extend_from_slice(bytes),
        // So that header mutations get past the checksum and reach deeper code.
        Mutation::FixIpChecksum if frame.len() >= 34 && frame[12..14] == [0x08, 0x00] => {
            fix_ip_checksum(&mut frame[14..])
        }
        _ => {}
    }
}

fn feed(s: &mut Stack, now: Instant, frame: &[u8]) {
    s.handle_frame(now, frame);
    if s.poll_at().is_some_and(|at| at <= now) {
        s.handle_timeout(now);
    }
    let _ = drain(s, now);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(frame in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut s = busy_stack(config());
        feed(&mut s, t(1), &frame);
    }

    #[test]
    fn arbitrary_payload_behind_a_valid_ethernet_header_never_panics(
        ethertype in prop_oneof![Just(ETH_IPV4), Just(ETH_ARP), any::<u16>()],
        payload in prop::collection::vec(any::<u8>(), 0..1500),
    ) {
        let mut s = busy_stack(config());
        feed(&mut s, t(1), &eth(OUR_MAC, PEER_MAC, ethertype, &payload));
    }

    #[test]
    fn arbitrary_payload_behind_a_valid_ip_header_never_panics(
        protocol in prop_oneof![Just(1u8), Just(17u8), Just(6u8), any::<u8>()],
        more_frags in any::<bool>(),
        offset in prop_oneof![Just(0usize), (0..8192usize).prop_map(|o| o * 8)],
        broadcast in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..1480),
    ) {
        let mut s = busy_stack(config());
        let dst = if broadcast { SUBNET_BROADCAST } else { OUR_IP };
        let mut ip = Ip::new(PEER_IP, dst, protocol);
        ip.more_frags = more_frags;
        ip.frag_offset = offset;
        let mac = if broadcast { BROADCAST_MAC } else { OUR_MAC };
        feed(&mut s, t(1), &eth(mac, PEER_MAC, ETH_IPV4, &ip.build(&payload)));
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds();
        let mut frame = seeds[which.index(seeds.len())].clone();
        for m in &mutations {
            apply(&mut frame, m);
        }
        let mut s = busy_stack(config());
        feed(&mut s, t(1), &frame);
        // And the stack still works afterwards.
        s.handle_frame(t(2), &icmp_frame(&icmp_echo(8, 9, 9, b"alive?")));
        prop_assert!(drain(&mut s, t(2)).iter().any(|f| f.len() > 34 && f[34] == 0), "no echo reply after the mutated frame");
    }
}

// ---------------------------------------------------------------------------------------------
// Bounds under a long random stream.

/// A random frame: mostly IPv4 fragments to us (random idents, offsets, lengths), plus ARP from
/// random neighbours, echo requests from random sources (each needs ARP resolution), UDP to
/// random ports, and raw garbage.
fn random_frame(rng: &mut XorShift) -> Vec<u8> {
    let host = Ipv4Addr::new(198, 18, 0, 3 + rng.below(250) as u8);
    let mac = [
        0x02,
        0x00,
        0x00,
        0x01,
        rng.below(256) as u8,
        rng.below(256) as u8,
    ];
    match rng.below(10) {
        0..=4 => {
            let mut ip = Ip::new(
                PEER_IP,
                OUR_IP,
                [PROTO_UDP, PROTO_ICMP, 99][rng.below(3) as usize],
            );
            ip.ident = rng.below(64) as u16;
            ip.frag_offset = rng.below(8192) as usize * 8;
            ip.more_frags = rng.chance(800);
            let len = if rng.chance(500) {
                8 * rng.below(185) as usize
            } else {
                rng.below(1480) as usize
            };
            from_peer(&ip.build(&rng.bytes(len)))
        }
        5 => {
            let tpa = if rng.chance(500) { OUR_IP } else { host };
            let op = 1 + rng.below(2) as u16;
            eth(
                BROADCAST_MAC,
                mac,
                ETH_ARP,
                &arp(op, mac, host, [0; 6], tpa),
            )
        }
        6 => {
            let req = icmp_echo(8, 1, rng.below(1000) as u16, &rng.some_bytes(1400));
            eth(
                OUR_MAC,
                mac,
                ETH_IPV4,
                &Ip::new(host, OUR_IP, PROTO_ICMP).build(&req),
            )
        }
        7 => {
            let d = udp(
                host,
                OUR_IP,
                1,
                rng.below(65536) as u16,
                &rng.some_bytes(100),
            );
            eth(
                OUR_MAC,
                mac,
                ETH_IPV4,
                &Ip::new(host, OUR_IP, PROTO_UDP).build(&d),
            )
        }
        8 => {
            let mut f = seeds()[rng.below(15) as usize].clone();
            let at = rng.below(f.len() as u64) as usize;
            f[at] ^= 1 + rng.below(255) as u8;
            f
        }
        _ => rng.some_bytes(200),
    }
}

fn bounded_run(seed: u64) {
    let mut cfg = config();
    cfg.reassembly.max_memory = 64 * 1024;
    cfg.reassembly.max_datagrams = 16;
    cfg.reassembly.timeout = ringstack_stack::Duration::from_secs(2);
    cfg.arp.max_entries = 32;
    cfg.arp.cache_ttl = ringstack_stack::Duration::from_secs(5);
    cfg.icmp_error_burst = 1000; // let errors through: more transmit pressure
    cfg.icmp_errors_per_sec = 100_000;
    let (max_mem, max_arp) = (cfg.reassembly.max_memory, cfg.arp.max_entries);
    let mut s = busy_stack(cfg);
    let mut rng = XorShift::new(seed);
    let mut now_ms = 0u64;
    let mut max_tx = 0;
    let mut buf = vec![0u8; 1514];
    for i in 0..10_000 {
        now_ms += rng.below(20);
        let now = t(now_ms);
        s.handle_frame(now, &random_frame(&mut rng));
        if s.poll_at().is_some_and(|at| at <= now) {
            s.handle_timeout(now);
        }
        assert!(
            s.reassembly_memory() <= max_mem,
            "frame {i}: reassembly memory {} > {max_mem}",
            s.reassembly_memory()
        );
        assert!(
            s.arp_entries().len() <= max_arp,
            "frame {i}: {} ARP entries",
            s.arp_entries().len()
        );
        max_tx = max_tx.max(s.tx_queue_len());
        if i % 50 == 49 {
            while s.poll_transmit(now, &mut buf).is_some() {}
        }
    }
    // Between drains at most 50 frames arrive, each causing a handful of frames at most (an echo
    // reply to a reassembled datagram of up to 64 KiB is 45 fragments).
    assert!(max_tx <= 50 * 45, "transmit queue reached {max_tx}");
    assert_eq!(s.counters().drops(DropReason::TxQueueFull), 0);
    // The stream really exercised the bounded paths.
    assert!(s.counters().get(ringstack_stack::Counter::IpReasmReqds) > 1000);
    println!("seed {seed}: max tx queue {max_tx}\n{}", s.counters());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    #[test]
    fn ten_thousand_random_frames_stay_within_bounds(seed in any::<u64>()) {
        bounded_run(seed);
    }
}

#[test]
fn bounds_hold_for_a_fixed_seed() {
    bounded_run(0x5eed);
}
