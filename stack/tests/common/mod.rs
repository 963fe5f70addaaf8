//! Shared fixtures for the integration tests of `ringstack-stack`: hand-written byte builders
//! (Ethernet, ARP, IPv4, ICMP, UDP) with their own RFC 1071 checksum, independent of the stack's
//! code, and small helpers to drive a [`Stack`].
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use core::net::{Ipv4Addr, SocketAddrV4};

use ringstack_stack::{Config, DropReason, Instant, Stack};

/// Our (the stack under test's) MAC and address, 198.18.0.2/24 as in the lab.
pub const OUR_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
pub const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The peer that sends us frames, 198.18.0.1.
pub const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// A third host on the subnet.
pub const OTHER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x03];
pub const OTHER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
pub const SUBNET_BROADCAST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 255);

pub const ETH_ARP: u16 = 0x0806;
pub const ETH_IPV4: u16 = 0x0800;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_UDP: u8 = 17;

/// Room for any frame the stack emits (MTU 1500 + Ethernet header).
pub const FRAME_BUF: usize = 1514;

pub fn t(ms: u64) -> Instant {
    Instant::from_millis(ms as i64)
}

// ---------------------------------------------------------------------------------------------
// Checksums (RFC 1071), written here so that the fixtures do not trust the stack's own code.

/// One's-complement sum of 16-bit big-endian words, folded, complemented.
pub fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    // Concatenate logically: an odd part boundary shifts the byte position.
    let mut hi = true;
    for part in parts {
        for &b in *part {
            sum += if hi { (b as u32) << 8 } else { b as u32 };
            hi = !hi;
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The UDP checksum over the pseudo-header and `segment` (whose checksum field must be zero),
/// with RFC 768's rule that a computed zero is transmitted as 0xffff.
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    let len = (segment.len() as u16).to_be_bytes();
    let pseudo = [0, PROTO_UDP, len[0], len[1]];
    match inet_checksum(&[&src.octets(), &dst.octets(), &pseudo, segment]) {
        0 => 0xffff,
        c => c,
    }
}

// ---------------------------------------------------------------------------------------------
// Byte builders.

/// An Ethernet II frame.
pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A 28-byte Ethernet/IPv4 ARP packet.
pub fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0x00, 0x01, 0x08, 0x00, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa.octets());
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa.octets());
    p
}

/// An ARP request from the peer asking for `tpa`, as a broadcast frame.
pub fn arp_request_frame(sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    eth(BROADCAST_MAC, sha, ETH_ARP, &arp(1, sha, spa, [0; 6], tpa))
}

/// An IPv4 header's fields; `build` writes them with a correct checksum.
#[derive(Clone, Debug)]
pub struct Ip {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// Fragment offset in bytes (must be a multiple of 8 to be representable).
    pub frag_offset: usize,
    /// Options (padded by the caller to a multiple of 4).
    pub options: Vec<u8>,
}

impl Ip {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> Ip {
        Ip {
            src,
            dst,
            protocol,
            ttl: 64,
            ident: 0x1234,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            options: Vec::new(),
        }
    }

    /// Header + payload, total length and checksum filled in.
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        assert_eq!(self.options.len() % 4, 0);
        let ihl = 20 + self.options.len();
        let total = ihl + payload.len();
        let mut h = vec![0u8; ihl];
        h[0] = 0x40 | (ihl / 4) as u8;
        h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        let flags = ((self.dont_frag as u16) << 14)
            | ((self.more_frags as u16) << 13)
            | (self.frag_offset / 8) as u16;
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        h[20..].copy_from_slice(&self.options);
        let c = inet_checksum(&[&h]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

/// Recomputes the IPv4 header checksum of `packet` in place (after a test edits the header).
pub fn fix_ip_checksum(packet: &mut [u8]) {
    let ihl = ((packet[0] & 0x0f) as usize * 4).min(packet.len());
    packet[10] = 0;
    packet[11] = 0;
    let c = inet_checksum(&[&packet[..ihl]]);
    packet[10..12].copy_from_slice(&c.to_be_bytes());
}

/// An ICMP message: type, code, the 4 "rest of header" bytes, body; checksum filled in.
pub fn icmp(ty: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let c = inet_checksum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An ICMP echo request (type 8) or reply (type 0).
pub fn icmp_echo(ty: u8, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let i = ident.to_be_bytes();
    let s = seq.to_be_bytes();
    icmp(ty, 0, [i[0], i[1], s[0], s[1]], data)
}

/// A UDP datagram with a correct checksum.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = udp_no_checksum(sport, dport, payload);
    let c = udp_checksum(src, dst, &d);
    d[6..8].copy_from_slice(&c.to_be_bytes());
    d
}

/// A UDP datagram with checksum field zero ("no checksum", RFC 768).
pub fn udp_no_checksum(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + payload.len());
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    d
}

/// A frame from the peer to us carrying `ip_packet`.
pub fn from_peer(ip_packet: &[u8]) -> Vec<u8> {
    eth(OUR_MAC, PEER_MAC, ETH_IPV4, ip_packet)
}

/// A complete peer → us UDP frame.
pub fn udp_frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let d = udp(PEER_IP, OUR_IP, sport, dport, payload);
    from_peer(&Ip::new(PEER_IP, OUR_IP, PROTO_UDP).build(&d))
}

/// A complete peer → us ICMP frame.
pub fn icmp_frame(msg: &[u8]) -> Vec<u8> {
    from_peer(&Ip::new(PEER_IP, OUR_IP, PROTO_ICMP).build(msg))
}

/// Deterministic pseudo-random bytes (a payload that is not all zeros).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(seed as u32 * 7 + (i as u32 >> 8)) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Driving a stack.

pub fn config() -> Config {
    Config::new(OUR_MAC, OUR_IP, 24)
}

/// Every frame the stack has to send at `now`.
pub fn drain(stack: &mut Stack, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Some(n) = stack.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// A stack built from `config` at t=0, with its start-up gratuitous ARP drained.
pub fn stack_with(config: Config) -> Stack {
    let mut s = Stack::new(config, t(0));
    let _ = drain(&mut s, t(0));
    s
}

/// A default stack (198.18.0.2/24), gratuitous ARP drained.
pub fn stack() -> Stack {
    stack_with(config())
}

/// Teaches `stack` the peer's MAC (the peer ARPs for us; our reply is drained).
pub fn learn_peer(stack: &mut Stack, now: Instant) {
    stack.handle_frame(now, &arp_request_frame(PEER_MAC, PEER_IP, OUR_IP));
    let out = drain(stack, now);
    assert_eq!(out.len(), 1, "expected exactly one ARP reply");
    assert_no_drops(stack);
}

/// A default stack that already knows the peer's MAC.
pub fn stack_with_peer() -> Stack {
    let mut s = stack();
    learn_peer(&mut s, t(0));
    s
}

/// Asserts that exactly one drop happened, for `reason`.
#[track_caller]
pub fn assert_only_drop(stack: &Stack, reason: DropReason) {
    let c = stack.counters();
    let all: Vec<_> = c.iter_drops().collect();
    assert_eq!(
        c.drops(reason),
        1,
        "expected one {reason} drop; drops were {all:?}"
    );
    assert_eq!(
        c.total_drops(),
        1,
        "expected only one {reason} drop; drops were {all:?}"
    );
}

/// Asserts that nothing was dropped.
#[track_caller]
pub fn assert_no_drops(stack: &Stack) {
    let all: Vec<_> = stack.counters().iter_drops().collect();
    assert_eq!(
        stack.counters().total_drops(),
        0,
        "unexpected drops: {all:?}"
    );
}

/// Asserts the stack has nothing to send.
#[track_caller]
pub fn assert_silent(stack: &mut Stack, now: Instant) {
    let out = drain(stack, now);
    assert!(
        out.is_empty(),
        "expected no frame, got {} frame(s): {:02x?}",
        out.len(),
        out
    );
}

/// Splits an emitted IPv4 frame into (IP header, IP payload), checking the Ethernet header
/// addresses it to `dst_mac` from us.
#[track_caller]
pub fn ip_of(frame: &[u8], dst_mac: [u8; 6]) -> (&[u8], &[u8]) {
    assert_eq!(&frame[0..6], &dst_mac, "destination MAC");
    assert_eq!(&frame[6..12], &OUR_MAC, "source MAC");
    assert_eq!(&frame[12..14], &ETH_IPV4.to_be_bytes(), "EtherType");
    let ip = &frame[14..];
    let ihl = (ip[0] & 0x0f) as usize * 4;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    assert_eq!(total, ip.len(), "IPv4 total length vs frame length");
    (&ip[..ihl], &ip[ihl..total])
}

/// The IP identification of an emitted frame.
pub fn ident_of(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[18], frame[19]])
}

/// The exact frame we expect the stack to emit to the peer for `payload` with `protocol`,
/// given the IP identification it chose (the one field left to the implementation, RFC 6864).
pub fn expected_ip_frame(
    dst_mac: [u8; 6],
    dst: Ipv4Addr,
    protocol: u8,
    ident: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut ip = Ip::new(OUR_IP, dst, protocol);
    ip.ident = ident;
    ip.ttl = 64;
    eth(dst_mac, OUR_MAC, ETH_IPV4, &ip.build(payload))
}

pub fn sock(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// A tiny seeded xorshift64* generator (tests own their randomness).
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
    /// Up to `max - 1` random bytes.
    pub fn some_bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max) as usize;
        self.bytes(n)
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}
