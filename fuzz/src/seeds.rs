//! The seed corpus, generated from byte fixtures like those of `stack/tests/` (see
//! `examples/make_corpus.rs`, which writes them to `corpus/<target>/`).

use crate::frame::{drain, World};
use crate::wire::{self, flags, Tcp, OUR_IP, OUR_MAC, PEER_IP, PEER_MAC};

/// `(name, bytes)` seeds of one target.
pub type Seeds = Vec<(String, Vec<u8>)>;

fn ip_frame(protocol: u8, ident: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
    wire::eth(
        OUR_MAC,
        PEER_MAC,
        wire::ETH_IPV4,
        &wire::ipv4(PEER_IP, OUR_IP, protocol, ident, frag, payload),
    )
}

/// Single frames: every protocol the stack speaks, plus frames B really sends on the
/// established connections (data, FIN, window update).
pub fn frames() -> Seeds {
    let mut v: Seeds = Vec::new();
    let mut add = |name: &str, f: Vec<u8>| v.push((name.to_string(), f));
    add(
        "arp_request",
        wire::eth(
            [0xff; 6],
            PEER_MAC,
            wire::ETH_ARP,
            &wire::arp(1, PEER_MAC, PEER_IP, [0; 6], OUR_IP),
        ),
    );
    add(
        "arp_reply",
        wire::eth(
            OUR_MAC,
            PEER_MAC,
            wire::ETH_ARP,
            &wire::arp(2, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP),
        ),
    );
    add(
        "icmp_echo",
        ip_frame(1, 1, 0, &wire::icmp(8, 0, [0, 9, 0, 1], b"echo me")),
    );
    add(
        "icmp_reply",
        ip_frame(1, 2, 0, &wire::icmp(0, 0, [0, 1, 0, 1], b"reply")),
    );
    let quoted = wire::ipv4(
        OUR_IP,
        PEER_IP,
        6,
        7,
        0,
        &Tcp {
            sport: 40001,
            dport: 8080,
            seq: 1,
            flags: flags::ACK,
            window: 100,
            ..Tcp::default()
        }
        .build(OUR_IP, PEER_IP, false),
    );
    add(
        "icmp_unreach_tcp",
        ip_frame(1, 3, 0, &wire::icmp(3, 4, [0, 0, 2, 0], &quoted)),
    );
    add(
        "icmp_unreach_port",
        ip_frame(1, 4, 0, &wire::icmp(3, 3, [0; 4], &quoted)),
    );
    add(
        "udp_port7",
        ip_frame(17, 5, 0, &wire::udp(PEER_IP, OUR_IP, 1234, 7, b"to port 7")),
    );
    add(
        "udp_closed",
        ip_frame(17, 6, 0, &wire::udp(PEER_IP, OUR_IP, 1234, 9, b"closed")),
    );
    let big = wire::udp(PEER_IP, OUR_IP, 1234, 7, &wire::stream(1, 0, 40));
    add("frag_first", ip_frame(17, 7, 0x2000, &big[..24]));
    add("frag_last", ip_frame(17, 7, 3, &big[24..]));
    let syn_opts = [
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    let syn = Tcp {
        sport: 5555,
        dport: 80,
        seq: 100,
        flags: flags::SYN,
        window: 65535,
        options: &syn_opts,
        ..Tcp::default()
    };
    add(
        "tcp_syn",
        ip_frame(6, 8, 0x4000, &syn.build(PEER_IP, OUR_IP, false)),
    );
    let rst = Tcp {
        sport: 5555,
        dport: 81,
        seq: 100,
        flags: flags::RST,
        ..Tcp::default()
    };
    add(
        "tcp_rst_closed",
        ip_frame(6, 9, 0x4000, &rst.build(PEER_IP, OUR_IP, false)),
    );

    // What B sends on the real connections.
    let mut w = World::new();
    let mut buf = vec![0u8; 1514];
    let b_conns: Vec<_> =
        w.b.tcp()
            .handles()
            .filter(|&h| w.b.tcp().peer_addr(h).is_some())
            .collect();
    for (i, &c) in b_conns.iter().enumerate() {
        let _ = w.b.tcp_send(w.now, c, &wire::stream(9, 0, 300));
        for (j, f) in drain(&mut w.b, w.now, &mut buf).into_iter().enumerate() {
            add(&format!("tcp_data_{i}_{j}"), f);
        }
        let _ = w.b.tcp_shutdown(w.now, c);
        for (j, f) in drain(&mut w.b, w.now, &mut buf).into_iter().enumerate() {
            add(&format!("tcp_fin_{i}_{j}"), f);
        }
    }
    v
}

/// Seeds of the `frame` target: each single frame with checksum fix-up (mode 2) and raw
/// (mode 0), plus sequences (mode 1/3/7/15) of all of them.
pub fn frame() -> Seeds {
    let frames = frames();
    let mut v: Seeds = Vec::new();
    for (name, f) in &frames {
        let mut s = vec![2u8];
        s.extend_from_slice(f);
        v.push((format!("fix_{name}"), s));
    }
    for (mode, name) in [
        (1u8, "seq_raw"),
        (3, "seq_fix"),
        (7, "seq_fix_answer"),
        (15, "seq_fix_answer_seconds"),
    ] {
        let mut s = vec![mode];
        for (_, f) in &frames {
            s.push(10);
            s.extend_from_slice(&(f.len() as u16).to_be_bytes());
            s.extend_from_slice(f);
        }
        v.push((name.to_string(), s));
    }
    v
}

/// Seeds of `tcp_options`.
pub fn tcp_options() -> Seeds {
    let v: Vec<(&str, Vec<u8>)> = vec![
        (
            "linux_syn",
            vec![
                2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 1, 2, 3, 0, 0, 0, 0, 1, 3, 3, 7,
            ],
        ),
        ("ts", vec![1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]),
        ("sack3_ts", {
            let mut o = vec![1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7, 1, 1, 5, 26];
            for i in 0..6u32 {
                o.extend_from_slice(&(i * 1000).to_be_bytes());
            }
            o
        }),
        ("sack4", {
            let mut o = vec![1, 1, 5, 34];
            for i in 0..8u32 {
                o.extend_from_slice(&(i * 77).to_be_bytes());
            }
            o
        }),
        ("mss_ws_eol", vec![2, 4, 0, 1, 1, 3, 3, 14, 0, 0]),
        ("unknown_kind", vec![30, 4, 1, 2, 2, 4, 5, 0xb4]),
        ("bad_len0", vec![2, 0]),
        ("bad_len1", vec![8, 1, 0]),
        ("overrun", vec![8, 10, 0, 0]),
        ("nops", vec![1; 40]),
    ];
    v.into_iter().map(|(n, b)| (n.to_string(), b)).collect()
}

/// An op of the `reassembly` target.
fn frag_op(op: u8, key: u8, offset: u16, len: u16, dt: u8) -> [u8; 7] {
    let o = offset.to_be_bytes();
    let l = len.to_be_bytes();
    [op, key, o[0], o[1], l[0], l[1], dt]
}

/// Seeds of `reassembly`.
pub fn reassembly() -> Seeds {
    let header = |mem: u16, n: u8, t: u8| vec![(mem >> 8) as u8, mem as u8, n, t];
    let mut v: Seeds = Vec::new();
    let mut in_order = header(4096, 4, 30);
    in_order.extend(frag_op(4, 0, 0, 64, 0));
    in_order.extend(frag_op(4, 0, 8, 64, 1));
    in_order.extend(frag_op(0, 0, 16, 20, 1));
    v.push(("in_order".into(), in_order));
    let mut reverse = header(4096, 4, 30);
    reverse.extend(frag_op(0, 1, 2, 40, 0));
    reverse.extend(frag_op(4, 1, 1, 8, 0));
    reverse.extend(frag_op(4, 1, 0, 8, 0));
    v.push(("reverse".into(), reverse));
    let mut overlap = header(4096, 4, 30);
    overlap.extend(frag_op(4, 2, 0, 32, 0));
    overlap.extend(frag_op(4 | 16, 2, 2, 32, 0));
    overlap.extend(frag_op(0, 2, 4, 8, 0));
    v.push(("conflict".into(), overlap));
    let mut flood = header(64, 2, 5);
    for k in 0..4 {
        flood.extend(frag_op(4, k, k as u16, 256, 3));
    }
    flood.extend(frag_op(3, 0, 0, 0, 60));
    v.push(("flood_expire".into(), flood));
    let mut bad = header(4096, 4, 30);
    bad.extend(frag_op(4 | 8 | 32, 0, 3, 5, 0));
    bad.extend(frag_op(4, 0, 0xffff, 64, 0));
    bad.extend(frag_op(0, 0, 0, 0, 0));
    v.push(("malformed".into(), bad));
    v
}

/// Seeds of `script`: handshakes, transfers, closes, on the passive and the active side.
pub fn script() -> Seeds {
    const SEGMENT: u8 = 0;
    const ADVANCE: u8 = 4;
    const SEND: u8 = 5;
    const RECV: u8 = 6;
    const SHUTDOWN: u8 = 7;
    const CLOSE: u8 = 8;
    const ACCEPT: u8 = 10;
    const CONNECT: u8 = 11;
    const AUTO_ACK: u8 = 12;
    const SWITCH: u8 = 13;
    const SYN: u8 = 14;
    const DATA: u8 = 15;
    let handshake = [SYN, AUTO_ACK, ACCEPT];
    let mut v: Seeds = Vec::new();
    for setup in [0u8, 2, 6] {
        let mut s = vec![setup];
        s.extend(handshake);
        s.extend([
            DATA, 0x01, 0x00, RECV, 0x10, 0x00, SEND, 0x08, 0x00, AUTO_ACK,
        ]);
        s.extend([
            ADVANCE, 0, 50, SEND, 0x40, 0x00, ADVANCE, 0x01, 0x00, AUTO_ACK, ADVANCE, 0, 200,
        ]);
        s.extend([CLOSE, AUTO_ACK]);
        // FIN from the peer: flags, seq off 0, ack off 0, window, auto options, no data.
        s.extend([
            SEGMENT,
            flags::FIN | flags::ACK,
            0,
            0,
            0,
            0,
            0xff,
            0xff,
            0xff,
            0,
            0,
        ]);
        s.extend([ADVANCE | 16, 0x02, 0x00]);
        v.push((format!("passive_transfer_{setup}"), s));
    }
    let mut lossy = vec![2u8];
    lossy.extend(handshake);
    lossy.extend([SEND, 0x30, 0x00, ADVANCE, 0, 10]);
    // A SACK-style ack of a later part, duplicate ACKs, then a timeout.
    for _ in 0..3 {
        lossy.extend([
            SEGMENT,
            flags::ACK,
            0,
            0,
            0xf0,
            0x00,
            0xff,
            0xff,
            0xff,
            0,
            0,
        ]);
    }
    lossy.extend([ADVANCE | 16, 0, 30, AUTO_ACK, ADVANCE | 16, 0, 30, AUTO_ACK]);
    // Out-of-order data from the peer: 100 bytes ahead, then the hole.
    lossy.extend([SEGMENT, flags::ACK, 0, 100, 0, 0, 0xff, 0xff, 0xff, 0, 100]);
    lossy.extend([DATA, 0, 100, RECV, 0x01, 0x00]);
    v.push(("passive_loss".into(), lossy));
    let mut active = vec![2u8];
    active.extend([
        CONNECT, SYN, SEND, 0x02, 0x00, AUTO_ACK, DATA, 0, 200, RECV, 0, 200,
    ]);
    active.extend([
        SHUTDOWN,
        AUTO_ACK,
        SEGMENT,
        flags::FIN | flags::ACK,
        0,
        0,
        0,
        0,
        0xff,
        0xff,
        0xff,
        0,
        0,
    ]);
    active.extend([ADVANCE | 16, 0x01, 0x00]);
    v.push(("active_transfer".into(), active));
    let mut two = vec![0u8];
    two.extend(handshake);
    two.extend([SWITCH, 1]);
    two.extend(handshake);
    two.extend([
        DATA, 0, 10, SWITCH, 0, DATA, 0, 20, RECV, 0, 30, SWITCH, 1, RECV, 0, 30,
    ]);
    // An RST in the window, then a SYN in the established state.
    two.extend([SEGMENT, flags::RST, 0, 5, 0, 0, 0, 0, 0, 0, 0, SYN]);
    v.push(("two_conns_rst".into(), two));
    v
}

/// Every target's seeds.
pub fn all() -> Vec<(&'static str, Seeds)> {
    vec![
        ("frame", frame()),
        ("tcp_options", tcp_options()),
        ("reassembly", reassembly()),
        ("script", script()),
    ]
}
