use super::*;

fn t(us: i64) -> Instant {
    Instant::from_micros(us)
}

/// A recognizable frame: `index` as 4 big-endian bytes, then filler up to `len`.
fn frame(index: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0xa5; len.max(4)];
    f[..4].copy_from_slice(&index.to_be_bytes());
    f
}

fn index_of(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[..4].try_into().unwrap())
}

fn recv_all(nic: &mut MemoryNic, now: Instant) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    nic.receive(now, usize::MAX, &mut |f| got.push(f.to_vec()))
        .unwrap();
    got
}

/// A delivered frame: when it became receivable and its bytes.
type Delivery = (i64, Vec<u8>);

/// Sends `count` frames of `len` bytes from a to b, one every `interval_us`, and receives them on
/// b at the exact instants `poll_at` announces. Returns the deliveries and both ends' stats.
fn simulate(
    config: LinkConfig,
    count: u32,
    len: usize,
    interval_us: i64,
) -> (Vec<Delivery>, NicStats, NicStats) {
    let (mut a, mut b) = MemoryLink::pair(config);
    let mut out = Vec::new();
    let drain_until = |b: &mut MemoryNic, until: Option<Instant>, out: &mut Vec<Delivery>| {
        while let Some(at) = b.poll_at() {
            if until.is_some_and(|u| at > u) {
                break;
            }
            let n = b
                .receive(at, usize::MAX, &mut |f| {
                    out.push((at.total_micros(), f.to_vec()))
                })
                .unwrap();
            assert!(n > 0, "poll_at promised a frame at {at}");
        }
    };
    for i in 0..count {
        let now = t(i64::from(i) * interval_us);
        drain_until(&mut b, Some(now), &mut out);
        a.send(now, &frame(i, len)).unwrap();
    }
    drain_until(&mut b, None, &mut out);
    (out, a.stats(), b.stats())
}

fn lossy(spec: &str, seed: u64) -> LinkConfig {
    LinkConfig {
        seed,
        ..LinkConfig::impaired(spec.parse().unwrap())
    }
}

#[test]
fn info_defaults_macs_and_mtu() {
    let (a, b) = MemoryLink::pair(LinkConfig::default());
    let (ia, ib) = (a.info(), b.info());
    assert_eq!(ia.mac, Some([2, 0, 0, 0, 0, 1]));
    assert_eq!(ib.mac, Some([2, 0, 0, 0, 0, 2]));
    assert_eq!((ia.mtu, ia.max_frame), (1500, 1514));
    assert_eq!(
        (ia.name.as_str(), ib.name.as_str()),
        ("memory-a", "memory-b")
    );
    assert_eq!(a.wait_fd(), None);
    let (a, _) = MemoryLink::pair(LinkConfig {
        mtu: 9000,
        mac_a: [2, 1, 2, 3, 4, 5],
        ..LinkConfig::default()
    });
    assert_eq!(a.info().max_frame, 9014);
    assert_eq!(a.info().mac, Some([2, 1, 2, 3, 4, 5]));
}

#[test]
fn unimpaired_link_is_a_fifo_receivable_immediately() {
    let (mut a, mut b) = MemoryLink::pair(LinkConfig::default());
    let sent: Vec<Vec<u8>> = (0..100).map(|i| frame(i, 60 + i as usize)).collect();
    for f in &sent {
        assert_eq!(a.send(t(5), f).unwrap(), f.len());
    }
    assert_eq!(b.poll_at(), Some(t(5)));
    let mut got = Vec::new();
    // Budget is respected: batches of at most 7.
    loop {
        let n = b.receive(t(5), 7, &mut |f| got.push(f.to_vec())).unwrap();
        assert!(n <= 7);
        if n == 0 {
            break;
        }
    }
    assert_eq!(got, sent);
    assert_eq!(b.poll_at(), None);
    assert_eq!(b.receive(t(5), 0, &mut |_| panic!("budget 0")).unwrap(), 0);
    let bytes: u64 = sent.iter().map(|f| f.len() as u64).sum();
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.tx_frames, sa.tx_bytes), (100, bytes));
    assert_eq!((sb.rx_frames, sb.rx_bytes), (100, bytes));
    assert_eq!(sa.delayed, 0);
    // Nothing came back the other way.
    assert!(recv_all(&mut a, t(5)).is_empty());
}

#[test]
fn directions_are_independent() {
    let (mut a, mut b) = MemoryLink::pair(LinkConfig::default());
    a.send(t(0), b"from a").unwrap();
    b.send(t(0), b"from b").unwrap();
    assert_eq!(recv_all(&mut b, t(0)), vec![b"from a".to_vec()]);
    assert_eq!(recv_all(&mut a, t(0)), vec![b"from b".to_vec()]);
}

#[test]
fn transmit_fill_of_zero_sends_nothing() {
    let (mut a, mut b) = MemoryLink::pair(LinkConfig::default());
    let mut offered = 0;
    let n = a
        .transmit(t(0), &mut |slot| {
            offered = slot.len();
            0
        })
        .unwrap();
    assert_eq!((n, offered), (0, 1514));
    assert_eq!(a.stats(), NicStats::default());
    assert!(recv_all(&mut b, t(0)).is_empty());
}

#[test]
fn mtu_is_enforced() {
    let (mut a, mut b) = MemoryLink::pair(LinkConfig {
        mtu: 100,
        ..LinkConfig::default()
    });
    let err = a.transmit(t(0), &mut |_| 115).unwrap_err();
    assert!(
        matches!(err, NicError::TooLarge { len: 115, max: 114 }),
        "{err}"
    );
    assert!(err.to_string().contains("MTU"));
    assert_eq!(a.stats().tx_dropped, 1);
    assert_eq!(a.send(t(0), &[7; 114]).unwrap(), 114);
    assert_eq!(recv_all(&mut b, t(0)), vec![vec![7; 114]]);
}

#[test]
fn same_seed_same_deliveries_other_seed_different() {
    let spec = "loss=5%,dup=5%,reorder=10%,corrupt=5%,delay=1ms,jitter=300us,rate=10mbit";
    let run = |seed| simulate(lossy(spec, seed), 2000, 200, 50);
    let (first, sa1, sb1) = run(42);
    let (second, sa2, sb2) = run(42);
    assert_eq!(first, second);
    assert_eq!((sa1, sb1), (sa2, sb2));
    let (third, sa3, _) = run(43);
    assert_ne!(first, third);
    assert_ne!(sa1, sa3);
    // Every impairment happened.
    for (name, count) in [
        ("lost", sa1.lost),
        ("duplicated", sa1.duplicated),
        ("reordered", sa1.reordered),
        ("corrupted", sa1.corrupted),
        ("delayed", sa1.delayed),
    ] {
        assert!(count > 0, "{name} = 0");
    }
}

#[test]
fn impairment_seed_overrides_link_seed() {
    let run = |spec: &str, seed| simulate(lossy(spec, seed), 500, 64, 10).0;
    assert_eq!(run("loss=20%,seed=9", 1), run("loss=20%,seed=9", 2));
    assert_ne!(run("loss=20%", 1), run("loss=20%", 2));
}

#[test]
fn loss_rate_roughly_matches() {
    let (got, sa, sb) = simulate(lossy("loss=10%", 7), 10_000, 64, 1);
    assert!((800..=1200).contains(&sa.lost), "lost {}", sa.lost);
    assert_eq!(got.len() as u64, 10_000 - sa.lost);
    assert_eq!(sb.rx_frames, 10_000 - sa.lost);
    assert_eq!(sa.tx_frames, 10_000);
    // Survivors keep their order and content.
    assert!(got
        .windows(2)
        .all(|w| index_of(&w[0].1) < index_of(&w[1].1)));
    assert!(got.iter().all(|(_, f)| f[4..].iter().all(|&b| b == 0xa5)));
}

#[test]
fn duplication_delivers_identical_copies() {
    let (got, sa, _) = simulate(lossy("dup=100%", 1), 100, 64, 10);
    assert_eq!(sa.duplicated, 100);
    assert_eq!(got.len(), 200);
    for (i, pair) in got.chunks(2).enumerate() {
        assert_eq!(pair[0], pair[1]);
        assert_eq!(pair[0].1, frame(i as u32, 64));
    }
    let (got, sa, _) = simulate(lossy("dup=30%", 1), 10_000, 64, 1);
    assert!((2600..=3400).contains(&sa.duplicated), "{}", sa.duplicated);
    assert_eq!(got.len() as u64, 10_000 + sa.duplicated);
}

#[test]
fn corruption_flips_exactly_one_bit() {
    let (got, sa, _) = simulate(lossy("corrupt=100%", 3), 1000, 100, 10);
    assert_eq!((sa.corrupted, got.len()), (1000, 1000));
    let mut positions = std::collections::HashSet::new();
    for (i, (_, f)) in got.iter().enumerate() {
        let sent = frame(i as u32, 100);
        let flipped: Vec<(usize, u32)> = sent
            .iter()
            .zip(f)
            .enumerate()
            .map(|(at, (x, y))| (at, (x ^ y).count_ones()))
            .filter(|&(_, bits)| bits > 0)
            .collect();
        assert_eq!(flipped.len(), 1, "frame {i}: {flipped:?}");
        assert_eq!(flipped[0].1, 1, "frame {i}");
        positions.insert(flipped[0].0);
    }
    // The flipped byte is random, not always the same.
    assert!(positions.len() > 50);
}

#[test]
fn reorder_lets_later_frames_overtake() {
    let (got, sa, _) = simulate(lossy("reorder=30%,reorder_delay=1ms", 5), 1000, 64, 10);
    assert!((200..=400).contains(&sa.reordered), "{}", sa.reordered);
    let order: Vec<u32> = got.iter().map(|(_, f)| index_of(f)).collect();
    assert!(order.windows(2).any(|w| w[0] > w[1]), "nothing reordered");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "every frame once");
    // Deliveries come out in time order.
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
    // Held-back frames arrive exactly reorder_delay late.
    for (at, f) in &got {
        let sent = i64::from(index_of(f)) * 10;
        assert!(*at == sent || *at == sent + 1000, "{at} vs {sent}");
    }
    // Everything held back: delayed, but no longer reordered.
    let (got, _, _) = simulate(lossy("reorder=100%", 5), 100, 64, 10);
    assert!(got
        .windows(2)
        .all(|w| index_of(&w[0].1) < index_of(&w[1].1)));
}

#[test]
fn delay_and_poll_at() {
    let (mut a, mut b) = MemoryLink::pair(lossy("delay=10ms", 0));
    assert_eq!(b.poll_at(), None);
    a.send(t(1_000), b"x").unwrap();
    a.send(t(2_000), b"y").unwrap();
    assert_eq!(a.stats().delayed, 2);
    assert_eq!(b.poll_at(), Some(t(11_000)));
    assert!(recv_all(&mut b, t(10_999)).is_empty());
    assert_eq!(recv_all(&mut b, t(11_000)), vec![b"x".to_vec()]);
    assert_eq!(b.poll_at(), Some(t(12_000)));
    assert_eq!(b.pending(), 1);
    assert_eq!(recv_all(&mut b, t(50_000)), vec![b"y".to_vec()]);
    assert_eq!(b.poll_at(), None);
}

#[test]
fn jitter_stays_within_bounds() {
    let (got, _, _) = simulate(lossy("delay=5ms,jitter=2ms", 11), 1000, 64, 100);
    let mut extra = std::collections::HashSet::new();
    for (at, f) in &got {
        let late = at - i64::from(index_of(f)) * 100;
        assert!((5_000..=7_000).contains(&late), "{late}");
        extra.insert(late);
    }
    assert!(extra.len() > 100, "jitter looks constant");
}

#[test]
fn bandwidth_cap_spaces_deliveries() {
    // 1000 bytes at 8 Mbit/s: 1 ms each, queued behind each other, then 5 ms of delay.
    let (mut a, mut b) = MemoryLink::pair(lossy("rate=8mbit,delay=5ms", 0));
    for i in 0..5 {
        a.send(t(0), &frame(i, 1000)).unwrap();
    }
    let mut times = Vec::new();
    while let Some(at) = b.poll_at() {
        b.receive(at, usize::MAX, &mut |f| {
            times.push((at.total_micros(), index_of(f)))
        })
        .unwrap();
    }
    assert_eq!(
        times,
        vec![(6_000, 0), (7_000, 1), (8_000, 2), (9_000, 3), (10_000, 4)]
    );
    // An idle wire starts serializing at once.
    a.send(t(100_000), &frame(5, 1000)).unwrap();
    assert_eq!(b.poll_at(), Some(t(106_000)));

    // Fractional serialization times (1514 B at 100 Mbit/s = 121.12 us) do not accumulate
    // rounding errors.
    let (got, _, _) = simulate(lossy("rate=100mbit", 0), 100, 1514, 0);
    assert_eq!(got.first().unwrap().0, 122);
    assert_eq!(got.last().unwrap().0, 12_112);
}

#[test]
fn queue_limit_tail_drops() {
    let (mut a, mut b) = MemoryLink::pair(LinkConfig {
        queue_limit_frames: 10,
        ..lossy("rate=1mbit", 0)
    });
    // 1000 bytes at 1 Mbit/s = 8 ms each.
    for i in 0..20 {
        a.send(t(0), &frame(i, 1000)).unwrap();
    }
    assert_eq!(a.stats().queue_drops, 10);
    assert_eq!(a.stats().tx_frames, 20);
    // After two frames have been serialized, two slots are free again.
    for i in 20..23 {
        a.send(t(16_000), &frame(i, 1000)).unwrap();
    }
    assert_eq!(a.stats().queue_drops, 11);
    let got: Vec<u32> = recv_all(&mut b, t(1_000_000))
        .iter()
        .map(|f| index_of(f))
        .collect();
    assert_eq!(got, (0..10).chain(20..22).collect::<Vec<_>>());
}

#[test]
fn full_rx_ring_drops_and_counts_at_the_receiver() {
    let (mut a, mut b) = MemoryLink::pair(LinkConfig {
        rx_ring_frames: 5,
        ..LinkConfig::default()
    });
    for i in 0..8 {
        a.send(t(0), &frame(i, 64)).unwrap();
    }
    assert_eq!(recv_all(&mut b, t(0)).len(), 5);
    assert_eq!(b.stats().rx_dropped, 3);
    assert_eq!(a.stats().tx_frames, 8);
    a.send(t(1), &frame(9, 64)).unwrap();
    assert_eq!(recv_all(&mut b, t(1)).len(), 1);
}

#[test]
fn dropping_an_end_closes_the_link() {
    let (mut a, mut b) = MemoryLink::pair(lossy("delay=1ms", 0));
    b.send(t(0), b"last words").unwrap();
    drop(b);
    assert!(matches!(a.send(t(0), b"hello?"), Err(NicError::Closed)));
    assert_eq!(a.stats().tx_dropped, 1);
    assert_eq!(a.receive(t(0), 8, &mut |_| {}).unwrap(), 0);
    assert_eq!(recv_all(&mut a, t(1_000)), vec![b"last words".to_vec()]);
    assert!(matches!(
        a.receive(t(2_000), 8, &mut |_| {}),
        Err(NicError::Closed)
    ));
}

#[test]
fn sink_may_transmit_without_deadlock() {
    let (mut a, mut b) = MemoryLink::pair(LinkConfig::default());
    a.send(t(0), b"ping").unwrap();
    b.receive(t(0), 1, &mut |f| {
        assert_eq!(f, b"ping");
        a.send(t(0), b"again").unwrap();
    })
    .unwrap();
    assert_eq!(a.stats().tx_frames, 2);
    assert_eq!(recv_all(&mut b, t(0)), vec![b"again".to_vec()]);
}

#[test]
fn ends_work_on_two_threads() {
    let (mut a, mut b) = MemoryLink::pair(LinkConfig::default());
    let echo = std::thread::spawn(move || {
        let mut echoed = 0;
        while echoed < 1000 {
            let mut frames = Vec::new();
            match b.receive(t(0), 64, &mut |f| frames.push(f.to_vec())) {
                Ok(0) => std::thread::yield_now(),
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
            for f in frames {
                b.send(t(0), &f).unwrap();
                echoed += 1;
            }
        }
        b.stats()
    });
    let mut back = Vec::new();
    for i in 0..1000 {
        a.send(t(0), &frame(i, 64)).unwrap();
        while a
            .receive(t(0), 64, &mut |f| back.push(index_of(f)))
            .unwrap()
            == 0
        {
            std::thread::yield_now();
        }
    }
    let stats = echo.join().unwrap();
    assert_eq!(stats.rx_frames, 1000);
    assert_eq!(back, (0..1000).collect::<Vec<_>>());
}

#[test]
fn set_impairment_changes_later_frames() {
    let (mut a, mut b) = MemoryLink::pair(LinkConfig::default());
    a.set_impairment("loss=100%".parse().unwrap());
    assert_eq!(a.impairment().loss, 1.0);
    a.send(t(0), b"gone").unwrap();
    a.set_impairment(Impairment::none());
    a.send(t(0), b"here").unwrap();
    assert_eq!(recv_all(&mut b, t(0)), vec![b"here".to_vec()]);
    assert_eq!(a.stats().lost, 1);
}

#[test]
fn clean_frames_skip_their_draws_but_not_their_place_in_the_stream() {
    // Link x is clean for 50 frames (no draws), link y has a negligible loss (every frame
    // draws); both then switch to 50% loss with duplication and reordering. The later frames
    // must meet the same fate on both: skipping advanced the PRNG exactly as drawing did.
    let run = |first: Impairment| {
        let (mut a, mut b) = MemoryLink::pair(LinkConfig {
            seed: 11,
            ..LinkConfig::default()
        });
        a.set_impairment(first);
        for i in 0..50 {
            a.send(t(0), &frame(i, 64)).unwrap();
        }
        let early: Vec<u32> = recv_all(&mut b, t(0)).iter().map(|f| index_of(f)).collect();
        a.set_impairment("loss=50%,dup=30%,reorder=30%".parse().unwrap());
        for i in 50..250 {
            a.send(t(0), &frame(i, 64)).unwrap();
        }
        let late: Vec<u32> = recv_all(&mut b, t(10_000_000))
            .iter()
            .map(|f| index_of(f))
            .collect();
        (early, late)
    };
    let tiny = Impairment {
        loss: 1e-12,
        ..Impairment::none()
    };
    assert!(!tiny.is_none());
    let (early_x, late_x) = run(Impairment::none());
    let (early_y, late_y) = run(tiny);
    assert_eq!(early_x, (0..50).collect::<Vec<_>>());
    assert_eq!(early_y, early_x);
    assert!(late_x.len() > 60 && late_x.len() < 200, "{}", late_x.len());
    assert_eq!(late_x, late_y);
}

#[test]
fn in_flight_queue_pops_in_delivery_order_across_fifo_and_heap() {
    let mut q = InFlightQueue::default();
    let f = |at: i64, seq: u64| InFlight {
        at: t(at),
        seq,
        len: 0,
        buf: Vec::new(),
    };
    // In order, then one that must overtake (heap), then in order again.
    for (at, seq) in [(10, 1), (20, 2), (15, 3), (30, 4), (30, 5), (5, 6)] {
        q.push(f(at, seq));
    }
    assert_eq!(q.len(), 6);
    let mut order = Vec::new();
    while let Some(x) = q.pop() {
        order.push(x.seq);
    }
    assert_eq!(order, [6, 1, 3, 2, 4, 5]);
    assert!(q.is_empty());
}
