//! Deterministic simulation: two stacks back to back over an in-memory link with seeded loss and
//! reordering (per-frame random latency), on a virtual clock that jumps to the next event.
//!
//! The link here is deliberately tiny and self-contained (the `nic` crate's impaired link will
//! replace it): every frame the link drops is kept, so tests can account for every packet.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use core::net::Ipv4Addr;
use ringstack_stack::{Config, Counter, Duration, Instant, PingEvent, Stack, UdpError};

const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

struct InFlight {
    at: Instant,
    seq: u64,
    to_b: bool,
    frame: Vec<u8>,
}

/// Link impairment: loss in per-mille, latency = `base_us` + uniform `0..=jitter_us` per frame
/// (a jitter larger than the gap between frames reorders them).
#[derive(Clone, Copy)]
struct Link {
    loss_per_mille: u64,
    base_us: u64,
    jitter_us: u64,
}

const PERFECT: Link = Link {
    loss_per_mille: 0,
    base_us: 100,
    jitter_us: 0,
};

struct Sim {
    a: Stack,
    b: Stack,
    now: Instant,
    rng: XorShift,
    link: Link,
    inflight: Vec<InFlight>,
    seq: u64,
    /// Frames the link dropped: (was going to B, bytes).
    lost: Vec<(bool, Vec<u8>)>,
    delivered: u64,
}

fn sim_config(mac: [u8; 6], ip: Ipv4Addr, seed: u64) -> Config {
    let mut c = Config::new(mac, ip, 24);
    c.seed = seed;
    c
}

impl Sim {
    fn new(seed: u64, link: Link) -> Sim {
        let now = Instant::from_millis(0);
        Sim {
            a: Stack::new(sim_config(A_MAC, A_IP, seed ^ 0xa), now),
            b: Stack::new(sim_config(B_MAC, B_IP, seed ^ 0xb), now),
            now,
            rng: XorShift::new(seed),
            link,
            inflight: Vec::new(),
            seq: 0,
            lost: Vec::new(),
            delivered: 0,
        }
    }

    /// Moves every frame both stacks want to send onto the wire (or into `lost`).
    fn pump(&mut self) {
        let mut buf = vec![0u8; 1514];
        for to_b in [true, false] {
            loop {
                let stack = if to_b { &mut self.a } else { &mut self.b };
                let Some(n) = stack.poll_transmit(self.now, &mut buf) else {
                    break;
                };
                let frame = buf[..n].to_vec();
                if self.rng.chance(self.link.loss_per_mille) {
                    self.lost.push((to_b, frame));
                    continue;
                }
                let delay = self.link.base_us + self.rng.below(self.link.jitter_us + 1);
                self.seq += 1;
                self.inflight.push(InFlight {
                    at: self.now + Duration::from_micros(delay),
                    seq: self.seq,
                    to_b,
                    frame,
                });
            }
        }
    }

    /// Runs the link and both stacks' timers until `deadline` (virtual time).
    fn run_until(&mut self, deadline: Instant) {
        let mut steps_at_this_instant = 0u32;
        loop {
            self.pump();
            // Deliver the earliest due frame (ties in send order).
            let due = self
                .inflight
                .iter()
                .enumerate()
                .filter(|(_, f)| f.at <= self.now)
                .min_by_key(|(_, f)| (f.at, f.seq))
                .map(|(i, _)| i);
            if let Some(i) = due {
                let f = self.inflight.swap_remove(i);
                let to = if f.to_b { &mut self.b } else { &mut self.a };
                to.handle_frame(self.now, &f.frame);
                self.delivered += 1;
                continue;
            }
            let mut fired = false;
            for s in [&mut self.a, &mut self.b] {
                if s.poll_at().is_some_and(|at| at <= self.now) {
                    s.handle_timeout(self.now);
                    fired = true;
                }
            }
            if fired {
                steps_at_this_instant += 1;
                assert!(
                    steps_at_this_instant < 10_000,
                    "poll_at() stays <= now after handle_timeout: busy loop"
                );
                continue;
            }
            let next = self
                .inflight
                .iter()
                .map(|f| f.at)
                .chain(self.a.poll_at())
                .chain(self.b.poll_at())
                .min();
            match next {
                Some(n) if n <= deadline => {
                    assert!(n > self.now, "time must move forward");
                    self.now = n;
                    steps_at_this_instant = 0;
                }
                _ => {
                    self.now = self.now.max(deadline);
                    return;
                }
            }
        }
    }

    fn run_for(&mut self, ms: u64) {
        let deadline = self.now + Duration::from_millis(ms);
        self.run_until(deadline);
    }

    /// A lossless exchange so that both stacks know each other before impairments start.
    fn warm_up(&mut self) {
        let link = self.link;
        self.link = PERFECT;
        let h = self.a.ping_open(0xffff).unwrap();
        self.a.ping_send(self.now, h, B_IP, 0, b"warm-up").unwrap();
        self.run_for(100);
        assert!(matches!(self.a.ping_recv(h), Some(PingEvent::Reply(_))));
        self.a.ping_close(h).unwrap();
        self.link = link;
    }
}

fn icmp_in(frame: &[u8]) -> Option<(u8, u16)> {
    // Ethernet IPv4, IHL 5, ICMP, not a fragment: (type, seq).
    if frame.len() >= 42 && frame[12..14] == [0x08, 0x00] && frame[23] == PROTO_ICMP {
        Some((frame[34], u16::from_be_bytes([frame[40], frame[41]])))
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn arp_resolves_expires_and_re_resolves() {
    let mut sim = Sim::new(1, PERFECT);
    let ha = sim.a.udp_bind(sock(A_IP, 1000)).unwrap();
    let hb = sim.b.udp_bind(sock(B_IP, 2000)).unwrap();
    sim.a
        .udp_send_to(sim.now, ha, b"first", sock(B_IP, 2000))
        .unwrap();
    sim.run_for(10);
    let mut buf = [0u8; 64];
    assert_eq!(sim.b.udp_recv_from(hb, &mut buf), Ok((5, sock(A_IP, 1000))));
    let entries = sim.a.arp_entries();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].ip, entries[0].mac), (B_IP, Some(B_MAC)));
    let requests = sim.a.counters().get(Counter::ArpOutRequests);
    assert_eq!(requests, 2, "gratuitous + one resolution");

    // Nothing is sent for longer than cache_ttl: the entry expires (and B's entry for A too).
    let ttl = sim.a.config().arp.cache_ttl;
    sim.run_until(Instant::from_millis(0) + ttl + Duration::from_millis(100));
    assert!(sim.a.arp_entries().is_empty(), "{:?}", sim.a.arp_entries());
    assert!(sim.b.arp_entries().is_empty());
    assert_eq!(sim.a.counters().get(Counter::ArpCacheExpired), 1);

    // The next send resolves again.
    sim.a
        .udp_send_to(sim.now, ha, b"second", sock(B_IP, 2000))
        .unwrap();
    sim.run_for(10);
    assert_eq!(sim.a.counters().get(Counter::ArpOutRequests), requests + 1);
    assert_eq!(sim.b.udp_recv_from(hb, &mut buf), Ok((6, sock(A_IP, 1000))));
    assert_eq!(&buf[..6], b"second");
    assert_eq!(
        sim.a.counters().total_drops() + sim.b.counters().total_drops(),
        0
    );
}

/// Sends `n` pings, 10 ms apart, over a lossy, reordering link; returns (replies, lost requests,
/// lost replies) by sequence number.
fn pings(sim: &mut Sim, n: u16) -> (BTreeSet<u16>, BTreeSet<u16>, BTreeSet<u16>) {
    let h = sim.a.ping_open(0x77).unwrap();
    for seq in 0..n {
        sim.a
            .ping_send(sim.now, h, B_IP, seq, &pattern(56, seq as u8))
            .unwrap();
        sim.run_for(10);
    }
    sim.run_for(5_000);
    let mut replies = BTreeSet::new();
    while let Some(ev) = sim.a.ping_recv(h) {
        let PingEvent::Reply(r) = ev else {
            panic!("unexpected {ev:?}")
        };
        assert_eq!(r.from, B_IP);
        assert_eq!(r.data, pattern(56, r.seq as u8), "seq {} payload", r.seq);
        assert!(replies.insert(r.seq), "seq {} answered twice", r.seq);
    }
    let (mut lost_req, mut lost_rep) = (BTreeSet::new(), BTreeSet::new());
    for (to_b, f) in &sim.lost {
        match (to_b, icmp_in(f)) {
            (true, Some((8, seq))) => assert!(lost_req.insert(seq)),
            (false, Some((0, seq))) => assert!(lost_rep.insert(seq)),
            (_, other) => panic!("unexpected lost frame {other:?}: {f:02x?}"),
        }
    }
    (replies, lost_req, lost_rep)
}

#[test]
fn thousand_pings_with_ten_percent_loss_are_all_accounted_for() {
    let mut sim = Sim::new(
        42,
        Link {
            loss_per_mille: 100,
            base_us: 500,
            jitter_us: 20_000,
        },
    );
    sim.warm_up();
    let (replies, lost_req, lost_rep) = pings(&mut sim, 1000);
    println!(
        "replies {} lost requests {} lost replies {}",
        replies.len(),
        lost_req.len(),
        lost_rep.len()
    );
    assert_eq!(replies.len() + lost_req.len() + lost_rep.len(), 1000);
    // Each ping met exactly one fate.
    assert!(
        replies.is_disjoint(&lost_req)
            && replies.is_disjoint(&lost_rep)
            && lost_req.is_disjoint(&lost_rep)
    );
    let all: BTreeSet<u16> = replies
        .iter()
        .chain(&lost_req)
        .chain(&lost_rep)
        .copied()
        .collect();
    assert_eq!(all, (0..1000).collect());
    // 10% loss each way: about 19% of pings lost; far from 0 and far from all.
    let lost = lost_req.len() + lost_rep.len();
    assert!((100..300).contains(&lost), "{lost} lost");
    assert_eq!(sim.a.counters().total_drops(), 0, "{}", sim.a.counters());
    assert_eq!(sim.b.counters().total_drops(), 0, "{}", sim.b.counters());
    assert_eq!(
        sim.b.counters().get(Counter::IcmpInEchos),
        1 + 1000 - lost_req.len() as u64
    );
}

const SIZES: [usize; 7] = [1, 100, 1472, 1473, 3000, 20_000, 65_507];

/// A sends `copies` datagrams of each size to B's echo service; B echoes everything it gets;
/// returns how many of each size came back. Each datagram carries a distinct pattern so that a
/// mixed-up reassembly cannot go unnoticed; every reply must equal a datagram that was sent.
fn udp_echo(sim: &mut Sim, sizes: &[usize], copies: u8) -> HashMap<usize, usize> {
    let ha = sim.a.udp_bind(sock(A_IP, 4000)).unwrap();
    let hb = sim.b.udp_bind(sock(B_IP, 7)).unwrap();
    let mut sent: HashMap<Vec<u8>, usize> = HashMap::new();
    for &size in sizes {
        for copy in 0..copies {
            let mut data = pattern(size, copy.wrapping_mul(37).wrapping_add(size as u8));
            data[0] = copy;
            // Make every datagram unique even at size 1.
            let data = if sent.contains_key(&data) {
                pattern(size, copy ^ 0x55)
            } else {
                data
            };
            assert!(sent.insert(data.clone(), size).is_none());
            sim.a
                .udp_send_to(sim.now, ha, &data, sock(B_IP, 7))
                .unwrap();
            sim.run_for(5);
        }
    }
    let mut buf = vec![0u8; 70_000];
    let mut echoed = 0;
    for _ in 0..20 {
        sim.run_for(100);
        loop {
            match sim.b.udp_recv_from(hb, &mut buf) {
                Ok((n, from)) => {
                    assert_eq!(from, sock(A_IP, 4000));
                    assert!(
                        sent.contains_key(&buf[..n]),
                        "B got a datagram ({n} bytes) that A never sent"
                    );
                    sim.b.udp_send_to(sim.now, hb, &buf[..n], from).unwrap();
                    echoed += 1;
                    sim.run_for(5);
                }
                Err(UdpError::WouldBlock) => break,
                Err(e) => panic!("B: {e}"),
            }
        }
    }
    sim.run_for(1000);
    let mut back: HashMap<usize, usize> = HashMap::new();
    let mut seen = BTreeSet::new();
    loop {
        match sim.a.udp_recv_from(ha, &mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, sock(B_IP, 7));
                let size = *sent
                    .get(&buf[..n])
                    .unwrap_or_else(|| panic!("A got a datagram ({n} bytes) that it never sent"));
                assert!(
                    seen.insert(buf[..n].to_vec()),
                    "duplicate echo of a {size}-byte datagram"
                );
                *back.entry(size).or_default() += 1;
            }
            Err(UdpError::WouldBlock) => break,
            Err(e) => panic!("A: {e}"),
        }
    }
    assert!(back.values().sum::<usize>() <= echoed);
    back
}

#[test]
fn udp_echo_without_fragmentation_under_loss_and_reordering() {
    let mut sim = Sim::new(
        7,
        Link {
            loss_per_mille: 50,
            base_us: 200,
            jitter_us: 3_000,
        },
    );
    sim.warm_up();
    let back = udp_echo(&mut sim, &SIZES[..3], 10);
    for size in &SIZES[..3] {
        assert!(
            back.get(size).copied().unwrap_or(0) >= 5,
            "{size}: {back:?}"
        );
    }
}

#[test]
fn udp_echo_of_every_size_through_fragmentation_and_reordering_without_loss() {
    let mut sim = Sim::new(
        8,
        Link {
            loss_per_mille: 0,
            base_us: 200,
            jitter_us: 3_000,
        },
    );
    sim.warm_up();
    let back = udp_echo(&mut sim, &SIZES, 2);
    for size in SIZES {
        assert_eq!(back.get(&size), Some(&2), "size {size}: {back:?}");
    }
    assert_eq!(sim.a.counters().total_drops(), 0, "{}", sim.a.counters());
    assert_eq!(sim.b.counters().total_drops(), 0, "{}", sim.b.counters());
    // 4 sizes above 1472 bytes, 2 copies each, reassembled once at each end.
    assert_eq!(sim.b.counters().get(Counter::IpReasmOKs), 8);
    assert_eq!(sim.a.counters().get(Counter::IpReasmOKs), 8);
}

#[test]
fn udp_echo_of_every_size_under_loss_arrives_intact_or_not_at_all() {
    // 2% loss: a 65507-byte datagram (45 fragments each way) survives a round trip ~16% of the
    // time; incomplete datagrams must vanish, never arrive damaged or mixed with another.
    let mut sim = Sim::new(
        9,
        Link {
            loss_per_mille: 20,
            base_us: 200,
            jitter_us: 3_000,
        },
    );
    sim.warm_up();
    let back = udp_echo(&mut sim, &SIZES, 6);
    println!("{back:?}");
    for size in &SIZES[..5] {
        assert!(
            back.get(size).copied().unwrap_or(0) >= 3,
            "{size}: {back:?}"
        );
    }
    // Lost fragments leave partial datagrams that must time out and free their memory.
    sim.run_for(60_000);
    assert_eq!(sim.a.reassembly_memory() + sim.b.reassembly_memory(), 0);
    let timeouts = sim
        .a
        .counters()
        .drops(ringstack_stack::DropReason::Ipv4FragTimeout)
        + sim
            .b
            .counters()
            .drops(ringstack_stack::DropReason::Ipv4FragTimeout);
    assert!(
        timeouts > 0,
        "with fragment loss some reassembly must time out"
    );
}

/// One full scenario; returns everything observable.
fn scenario(seed: u64) -> (String, String, usize, u64, Vec<u16>) {
    let mut sim = Sim::new(
        seed,
        Link {
            loss_per_mille: 100,
            base_us: 300,
            jitter_us: 5_000,
        },
    );
    sim.warm_up();
    let (replies, _, _) = pings(&mut sim, 200);
    sim.lost.clear();
    let _ = udp_echo(&mut sim, &SIZES[..5], 3);
    (
        sim.a.counters().to_string(),
        sim.b.counters().to_string(),
        sim.lost.len(),
        sim.delivered,
        replies.into_iter().collect(),
    )
}

#[test]
fn same_seed_same_run() {
    let first = scenario(1234);
    let second = scenario(1234);
    assert_eq!(first, second);
    let other = scenario(4321);
    assert_ne!(
        first.4, other.4,
        "a different seed should lose different pings"
    );
}
