//! Byte builders and a minimal parser for the frames the harnesses exchange, with their own
//! RFC 1071 checksum (the stack's code is under test, so it is not used as the oracle).

use core::net::Ipv4Addr;

/// The stack under test.
pub const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// The stack under test's address.
pub const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The peer.
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The peer's address.
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// EtherType of IPv4.
pub const ETH_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_ARP: u16 = 0x0806;
/// IP protocol numbers.
pub const PROTO_ICMP: u8 = 1;
/// TCP.
pub const PROTO_TCP: u8 = 6;
/// UDP.
pub const PROTO_UDP: u8 = 17;

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// The Internet checksum of the concatenation of `parts` (RFC 1071).
pub fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut hi = true;
    for part in parts {
        for &b in *part {
            sum += if hi { u64::from(b) << 8 } else { u64::from(b) };
            hi = !hi;
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0..4].copy_from_slice(&src.octets());
    p[4..8].copy_from_slice(&dst.octets());
    p[9] = protocol;
    p[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    p
}

/// An Ethernet II frame.
pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet (no options) with a correct header checksum. `frag` is the flags/fragment
/// offset word (bit 14 DF, bit 13 MF, offset in 8-byte units).
pub fn ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ident: u16,
    frag: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = protocol;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = inet_checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// The fields of a TCP segment to build.
#[derive(Clone, Debug, Default)]
pub struct Tcp<'a> {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flag bits ([`flags`]).
    pub flags: u8,
    /// Window field.
    pub window: u16,
    /// Options area (padded with EOL to a multiple of 4, truncated to 40 bytes).
    pub options: &'a [u8],
    /// Data.
    pub payload: &'a [u8],
}

impl Tcp<'_> {
    /// The segment with a correct checksum for `src` → `dst` (or a wrong one if `bad_checksum`).
    pub fn build(&self, src: Ipv4Addr, dst: Ipv4Addr, bad_checksum: bool) -> Vec<u8> {
        let opt_len = self.options.len().min(40).div_ceil(4) * 4;
        let hlen = 20 + opt_len;
        let mut s = vec![0u8; hlen];
        s[0..2].copy_from_slice(&self.sport.to_be_bytes());
        s[2..4].copy_from_slice(&self.dport.to_be_bytes());
        s[4..8].copy_from_slice(&self.seq.to_be_bytes());
        s[8..12].copy_from_slice(&self.ack.to_be_bytes());
        s[12] = ((hlen / 4) as u8) << 4;
        s[13] = self.flags;
        s[14..16].copy_from_slice(&self.window.to_be_bytes());
        let n = self.options.len().min(40);
        s[20..20 + n].copy_from_slice(&self.options[..n]);
        s.extend_from_slice(self.payload);
        let mut c = inet_checksum(&[&pseudo(src, dst, PROTO_TCP, s.len()), &s]);
        if bad_checksum {
            c = !c;
            if c == 0 {
                c = 1;
            }
        }
        s[16..18].copy_from_slice(&c.to_be_bytes());
        s
    }
}

/// A UDP datagram with a correct checksum.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + payload.len());
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    let c = match inet_checksum(&[&pseudo(src, dst, PROTO_UDP, d.len()), &d]) {
        0 => 0xffff,
        c => c,
    };
    d[6..8].copy_from_slice(&c.to_be_bytes());
    d
}

/// An ICMP message with a correct checksum.
pub fn icmp(ty: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let c = inet_checksum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
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

/// Rewrites, in place, the IPv4 header checksum and (for an unfragmented packet whose header and
/// total length make sense) the TCP, UDP or ICMP checksum of an Ethernet frame, so that mutated
/// frames get past the checksum checks. Anything it cannot make sense of is left alone.
pub fn fix_checksums(frame: &mut [u8]) {
    if frame.len() < 14 + 20 || frame[12..14] != ETH_IPV4.to_be_bytes() {
        return;
    }
    let ip = &mut frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ihl < 20 || ihl > ip.len() {
        return;
    }
    ip[10] = 0;
    ip[11] = 0;
    let c = inet_checksum(&[&ip[..ihl]]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if total < ihl || total > ip.len() || frag & 0x3fff != 0 {
        return;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let protocol = ip[9];
    let seg = &mut ip[ihl..total];
    let at = match protocol {
        PROTO_TCP if seg.len() >= 20 => 16,
        PROTO_UDP if seg.len() >= 8 => 6,
        PROTO_ICMP if seg.len() >= 4 => 2,
        _ => return,
    };
    seg[at] = 0;
    seg[at + 1] = 0;
    let c = if protocol == PROTO_ICMP {
        inet_checksum(&[seg])
    } else {
        inet_checksum(&[&pseudo(src, dst, protocol, seg.len()), seg])
    };
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// A TCP segment the stack sent, parsed (and checked: every check failing is a bug in the stack).
#[derive(Clone, Debug)]
pub struct SentTcp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flag bits.
    pub flags: u8,
    /// Window field.
    pub window: u16,
    /// Options area.
    pub options: Vec<u8>,
    /// Data.
    pub payload: Vec<u8>,
}

/// What the stack sent, as far as the harness cares.
#[derive(Clone, Debug)]
pub enum Sent {
    /// A TCP segment.
    Tcp(SentTcp),
    /// Anything else (ARP, ICMP, UDP).
    Other,
}

/// Parses a frame the stack emitted, asserting that its headers and checksums are right.
pub fn parse_sent(frame: &[u8]) -> Sent {
    assert!(frame.len() >= 14, "runt frame emitted: {frame:02x?}");
    assert_eq!(&frame[6..12], &OUR_MAC, "source MAC of an emitted frame");
    if frame[12..14] != ETH_IPV4.to_be_bytes() {
        return Sent::Other;
    }
    let ip = &frame[14..];
    assert!(ip.len() >= 20, "short IPv4 packet emitted");
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    assert!(
        ip[0] >> 4 == 4 && ihl >= 20 && ihl <= ip.len(),
        "bad IPv4 header emitted"
    );
    assert_eq!(
        inet_checksum(&[&ip[..ihl]]),
        0,
        "IPv4 header checksum of an emitted packet"
    );
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert!(
        total >= ihl && total <= ip.len(),
        "IPv4 total length of an emitted packet"
    );
    assert!(total <= 1500, "emitted packet larger than the MTU: {total}");
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if ip[9] != PROTO_TCP || frag & 0x3fff != 0 {
        return Sent::Other;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let seg = &ip[ihl..total];
    assert!(seg.len() >= 20, "short TCP segment emitted");
    assert_eq!(
        inet_checksum(&[&pseudo(src, dst, PROTO_TCP, seg.len()), seg]),
        0,
        "TCP checksum of an emitted segment"
    );
    let hlen = usize::from(seg[12] >> 4) * 4;
    assert!(
        hlen >= 20 && hlen <= seg.len(),
        "TCP data offset of an emitted segment"
    );
    Sent::Tcp(SentTcp {
        sport: u16::from_be_bytes([seg[0], seg[1]]),
        dport: u16::from_be_bytes([seg[2], seg[3]]),
        seq: u32::from_be_bytes([seg[4], seg[5], seg[6], seg[7]]),
        ack: u32::from_be_bytes([seg[8], seg[9], seg[10], seg[11]]),
        flags: seg[13],
        window: u16::from_be_bytes([seg[14], seg[15]]),
        options: seg[20..hlen].to_vec(),
        payload: seg[hlen..].to_vec(),
    })
}

/// Byte `pos` of a test stream (`salt` tells the streams apart): not constant, so that
/// misplaced, duplicated or reordered bytes show.
pub fn stream_byte(salt: u8, pos: u64) -> u8 {
    let x = pos.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (u64::from(salt) << 56);
    (x >> 56) as u8 ^ (pos as u8)
}

/// `len` bytes of stream `salt` from position `pos`. Positions wrap at 2^32, like the sequence
/// numbers they are derived from (a segment starting before the stream's first byte carries
/// the stream's last bytes, then its first).
pub fn stream(salt: u8, pos: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| stream_byte(salt, (pos + i) & 0xffff_ffff))
        .collect()
}
