//! The `virtio_net_hdr` that `PACKET_VNET_HDR` (AF_PACKET) and `IFF_VNET_HDR` (TAP) put in front
//! of every frame, and what a backend does with it on receive.
//!
//! With the header, the kernel peer may hand over frames as its own stack built them, before
//! segmentation: a TCP "GSO super-frame" of up to 64 KiB (one TCP header, one IPv4 header whose
//! total length covers all of it) instead of 45 MTU-sized frames, with a *partial* checksum
//! (`VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum field holds only the pseudo-header sum and the
//! device is expected to finish it). This is what made gVisor's netstack go from about 2 to
//! about 10 Gbit/s on veth.
//!
//! The layout (`include/uapi/linux/virtio_net.h`, 10 bytes, little-endian on the hosts AF_PACKET
//! serves: `vio_le()` is true for packet sockets):
//!
//! ```text
//!  0  u8   flags        NEEDS_CSUM (1), DATA_VALID (2)
//!  1  u8   gso_type     NONE (0), TCPV4 (1), UDP (3, fragmentation), TCPV6 (4), UDP_L4 (5), | ECN (0x80)
//!  2  u16  hdr_len      bytes of headers (Ethernet + IP + TCP) of a GSO frame
//!  4  u16  gso_size     the MSS each segment would carry
//!  6  u16  csum_start   where the checksummed area starts (from the Ethernet header)
//!  8  u16  csum_offset  where, from csum_start, the checksum field is
//! ```
//!
//! # What ringstack does with a received frame ([`VnetHdr::prepare_rx`])
//!
//! - `NEEDS_CSUM`: the checksum is completed *in place* (one pass over `csum_start..`), exactly
//!   as the kernel's `skb_checksum_help` would before handing the frame to a device without
//!   checksum offload. The frame is then an ordinary, valid frame and the stack verifies it as
//!   it verifies every other one: there is no "trusted" path through the stack.
//! - `gso_type` TCPV4 (with or without ECN): handed over whole. A TCP super-segment is one valid
//!   TCP segment (one sequence range, one header); the stack accepts segments larger than its
//!   MSS. UDP (3, UFO) is one datagram that the kernel would have fragmented: also whole.
//! - `gso_type` UDP_L4 (5): several datagrams that only the split would separate. Not supported:
//!   refused ([`RxVerdict::Unsupported`]), counted by the backend. (The kernel only builds such
//!   frames for sockets that ask for `UDP_SEGMENT`.) TCPV6 is handed over (the stack drops IPv6).
//! - A header whose checksum area does not fit the frame is refused ([`RxVerdict::Malformed`]).

/// Size of `struct virtio_net_hdr` (without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` is partial.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already verified.
pub const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_UDP` (UFO: one datagram, fragmented by the device).
pub const GSO_UDP: u8 = 3;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4` (several datagrams of `gso_size`).
pub const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN`, or'ed into `gso_type`.
pub const GSO_ECN: u8 = 0x80;

/// A parsed `virtio_net_hdr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `NEEDS_CSUM`, `DATA_VALID`.
    pub flags: u8,
    /// `GSO_*`, possibly with [`GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers of a GSO frame.
    pub hdr_len: u16,
    /// Segment size of a GSO frame (the MSS).
    pub gso_size: u16,
    /// Start of the checksummed area, from the start of the Ethernet frame.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

/// What to do with a received frame after [`VnetHdr::prepare_rx`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxVerdict {
    /// Hand it to the stack (its checksum completed if it was partial).
    Deliver,
    /// A GSO type ringstack does not take (UDP_L4): drop and count.
    Unsupported,
    /// The checksum area lies outside the frame: drop and count.
    Malformed,
}

impl VnetHdr {
    /// Parses the 10 header bytes.
    pub fn parse(b: &[u8; VNET_HDR_LEN]) -> VnetHdr {
        let u16le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16le(2),
            gso_size: u16le(4),
            csum_start: u16le(6),
            csum_offset: u16le(8),
        }
    }

    /// Writes the header into `b`.
    pub fn emit(&self, b: &mut [u8; VNET_HDR_LEN]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }

    /// Whether the frame is a GSO super-frame.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }

    /// Makes `frame` (the Ethernet frame that followed this header) an ordinary frame the stack
    /// can verify, per the [module docs](self): completes a partial checksum in place.
    pub fn prepare_rx(&self, frame: &mut [u8]) -> RxVerdict {
        if self.gso_type & !GSO_ECN == GSO_UDP_L4 {
            return RxVerdict::Unsupported;
        }
        if self.flags & F_NEEDS_CSUM != 0 {
            let start = self.csum_start as usize;
            let field = start + self.csum_offset as usize;
            if start > frame.len() || field + 2 > frame.len() {
                return RxVerdict::Malformed;
            }
            // The field holds the (uncomplemented) pseudo-header sum: summing the area with it
            // and complementing gives the final checksum (`skb_checksum_help`).
            let c = checksum(&frame[start..]);
            frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
        }
        RxVerdict::Deliver
    }
}

/// The Internet checksum (RFC 1071) of `data`, complemented, in network byte order as a
/// number: 64-bit native-endian words in an add-with-carry chain, folded once (the same method
/// as `ringstack_stack::checksum`, which this crate does not depend on).
pub fn checksum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut carries: u64 = 0;
    let mut words = data.chunks_exact(8);
    for c in &mut words {
        let (a, k) = acc.overflowing_add(u64::from_ne_bytes(c.try_into().expect("8 bytes")));
        acc = a;
        carries += k as u64;
    }
    let mut tail = [0u8; 8];
    let rest = words.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    let (a, k) = acc.overflowing_add(u64::from_ne_bytes(tail));
    let (a, k2) = a.overflowing_add(carries + k as u64);
    let mut s = a + k2 as u64;
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    let folded = s as u16;
    let be = if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    };
    !be
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Address,
        Ipv4Packet, Ipv4Repr, TcpPacket,
    };

    const SRC: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
    const DST: Ipv4Address = Ipv4Address::new(198, 18, 0, 2);

    /// An Ethernet + IPv4 + TCP frame with `payload`, its TCP checksum *partial* as Linux leaves
    /// it for offload (`~csum_tcpudp_magic(...)`: the folded pseudo-header sum), and the
    /// virtio header the kernel would put in front of it.
    fn partial_frame(payload: &[u8], gso_size: u16) -> (VnetHdr, Vec<u8>) {
        let tcp_len = 20 + payload.len();
        let mut f = vec![0u8; 14 + 20 + tcp_len];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(EthernetAddress([2, 0, 0, 0, 0, 2]));
        eth.set_src_addr(EthernetAddress([2, 0, 0, 0, 0, 1]));
        eth.set_ethertype(EthernetProtocol::Ipv4);
        let ip = Ipv4Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: IpProtocol::Tcp,
            payload_len: tcp_len,
            hop_limit: 64,
        };
        ip.emit(
            &mut Ipv4Packet::new_unchecked(&mut f[14..]),
            &ChecksumCapabilities::default(),
        );
        let t = &mut f[34..];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&9u16.to_be_bytes());
        t[4..8].copy_from_slice(&1000u32.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = 0x18;
        t[14..16].copy_from_slice(&64240u16.to_be_bytes());
        t[20..].copy_from_slice(payload);
        // The pseudo-header sum, folded, not complemented.
        let mut ph = Vec::new();
        ph.extend_from_slice(&SRC.octets());
        ph.extend_from_slice(&DST.octets());
        ph.extend_from_slice(&[0, 6]);
        ph.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        let partial = !checksum(&ph);
        t[16..18].copy_from_slice(&partial.to_be_bytes());
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if gso_size > 0 { GSO_TCPV4 } else { GSO_NONE },
            hdr_len: 54,
            gso_size,
            csum_start: 34,
            csum_offset: 16,
        };
        (hdr, f)
    }

    fn tcp_checksum_ok(f: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        tcp.verify_checksum(&IpAddress::Ipv4(SRC), &IpAddress::Ipv4(DST))
    }

    #[test]
    fn header_round_trips_in_little_endian() {
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4 | GSO_ECN,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut b = [0u8; VNET_HDR_LEN];
        h.emit(&mut b);
        assert_eq!(b, [1, 0x81, 66, 0, 0xa8, 0x05, 34, 0, 16, 0]);
        assert_eq!(VnetHdr::parse(&b), h);
        assert!(h.is_gso());
        assert!(!VnetHdr::default().is_gso());
    }

    #[test]
    fn partial_checksums_are_completed_for_small_and_gso_frames() {
        for (len, gso) in [(0usize, 0u16), (1, 0), (1448, 0), (7, 0), (65_000, 1448)] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
            let (h, mut f) = partial_frame(&payload, gso);
            assert!(
                !tcp_checksum_ok(&f),
                "partial checksum must not verify (len {len})"
            );
            assert_eq!(h.prepare_rx(&mut f), RxVerdict::Deliver);
            assert!(
                tcp_checksum_ok(&f),
                "completed checksum verifies (len {len})"
            );
        }
    }

    #[test]
    fn complete_frames_are_left_alone_and_bad_headers_refused() {
        let (mut h, mut f) = partial_frame(b"hello", 0);
        h.prepare_rx(&mut f);
        let before = f.clone();
        h.flags = F_DATA_VALID;
        assert_eq!(h.prepare_rx(&mut f), RxVerdict::Deliver);
        assert_eq!(f, before);
        h.flags = F_NEEDS_CSUM;
        h.csum_offset = (f.len() - 34 - 1) as u16; // field would run past the end
        assert_eq!(h.prepare_rx(&mut f), RxVerdict::Malformed);
        h.csum_start = u16::MAX;
        assert_eq!(h.prepare_rx(&mut f), RxVerdict::Malformed);
        assert_eq!(f, before, "a refused frame is not modified");
        let udp_l4 = VnetHdr {
            gso_type: GSO_UDP_L4,
            ..VnetHdr::default()
        };
        assert_eq!(udp_l4.prepare_rx(&mut f), RxVerdict::Unsupported);
    }

    #[test]
    fn checksum_matches_smoltcp_on_odd_and_even_lengths() {
        let data: Vec<u8> = (0..3001u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 2, 7, 8, 9, 63, 64, 65, 1500, 3001] {
            let d = &data[..len];
            let oracle = !smoltcp::wire::checksum::data(d);
            assert_eq!(checksum(d), oracle, "len {len}");
        }
        assert_eq!(checksum(&[0xff; 64]), 0);
    }
}
