//! The TCP header (RFC 9293 §3.1): validation on ingress and construction on egress.
//!
//! [`Segment::parse`] checks, in order: length, data offset, checksum over the IPv4
//! pseudo-header, options, flag combinations. Each failure is one [`ParseError`], which maps onto
//! one drop reason. [`SegmentHeader::emit`] writes a header (and [`fill_checksum`] the checksum).

use core::fmt;
use core::net::Ipv4Addr;

use super::options::{OptionsError, TcpOptions};
use super::seq::SeqNum;
use crate::checksum;
use crate::counters::DropReason;

/// Length of the fixed TCP header.
pub const HEADER_LEN: usize = 20;
/// IP protocol number of TCP.
pub const PROTOCOL: u8 = 6;

/// The control bits. RFC 9293 §3.1.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Push function.
    pub const PSH: Flags = Flags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: Flags = Flags(0x20);
    /// ECN-Echo (RFC 3168).
    pub const ECE: Flags = Flags(0x40);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: Flags = Flags(0x80);

    /// Whether all bits of `f` are set.
    #[inline]
    pub const fn has(self, f: Flags) -> bool {
        self.0 & f.0 == f.0
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Flags {
    /// tcpdump style: `S.` for SYN+ACK, `F.` for FIN+ACK, `.` for a bare ACK.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [
            (Flags::SYN, "S"),
            (Flags::FIN, "F"),
            (Flags::RST, "R"),
            (Flags::PSH, "P"),
            (Flags::URG, "U"),
            (Flags::ECE, "E"),
            (Flags::CWR, "W"),
            (Flags::ACK, "."),
        ] {
            if self.has(bit) {
                f.write_str(c)?;
            }
        }
        if self.0 == 0 {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Why an arriving segment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the fixed header.
    Truncated,
    /// Data offset below 5 or beyond the segment.
    BadHeaderLength,
    /// Checksum mismatch.
    BadChecksum,
    /// Options malformed.
    BadOptions(OptionsError),
    /// Invalid flag combination (SYN+FIN, SYN+RST, none at all).
    BadFlags,
}

impl ParseError {
    /// The drop reason counted for this error.
    pub fn drop_reason(self) -> DropReason {
        match self {
            ParseError::Truncated => DropReason::TcpTruncated,
            ParseError::BadHeaderLength => DropReason::TcpBadHeaderLength,
            ParseError::BadChecksum => DropReason::TcpBadChecksum,
            ParseError::BadOptions(_) => DropReason::TcpBadOptions,
            ParseError::BadFlags => DropReason::TcpBadFlags,
        }
    }
}

/// The header fields of a segment (everything but the payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SegmentHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number (SEG.SEQ).
    pub seq: SeqNum,
    /// Acknowledgment number (SEG.ACK), meaningful with ACK.
    pub ack: SeqNum,
    /// Control bits.
    pub flags: Flags,
    /// Window (SEG.WND), unscaled as on the wire.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Options.
    pub options: TcpOptions,
}

/// A validated segment: its header and a view of its payload.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// Header fields.
    pub hdr: SegmentHeader,
    /// The data.
    pub payload: &'a [u8],
}

impl<'a> Segment<'a> {
    /// Validates `bytes` (TCP header + payload) received from `src` to `dst`.
    pub fn parse(src: Ipv4Addr, dst: Ipv4Addr, bytes: &'a [u8]) -> Result<Segment<'a>, ParseError> {
        if bytes.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let off = (bytes[12] >> 4) as usize * 4;
        if off < HEADER_LEN || off > bytes.len() {
            return Err(ParseError::BadHeaderLength);
        }
        if bytes.len() > u16::MAX as usize || checksum::transport(src, dst, PROTOCOL, bytes) != 0 {
            return Err(ParseError::BadChecksum);
        }
        let options = match &bytes[HEADER_LEN..off] {
            // RFC 7323 Appendix A's layout, NOP NOP TS (every segment after a handshake that
            // agreed on timestamps, Linux's and ours): what the general parser returns, directly.
            [1, 1, 8, 10, ts @ ..] if ts.len() == 8 => TcpOptions {
                timestamps: Some((
                    u32::from_be_bytes([ts[0], ts[1], ts[2], ts[3]]),
                    u32::from_be_bytes([ts[4], ts[5], ts[6], ts[7]]),
                )),
                ..TcpOptions::default()
            },
            area => TcpOptions::parse(area).map_err(ParseError::BadOptions)?,
        };
        let flags = Flags(bytes[13]);
        if flags.0 & 0x3f == 0
            || flags.has(Flags::SYN | Flags::FIN)
            || flags.has(Flags::SYN | Flags::RST)
        {
            return Err(ParseError::BadFlags);
        }
        let be16 = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        let be32 =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Ok(Segment {
            hdr: SegmentHeader {
                src_port: be16(0),
                dst_port: be16(2),
                seq: SeqNum(be32(4)),
                ack: SeqNum(be32(8)),
                flags,
                window: be16(14),
                urgent: be16(18),
                options,
            },
            payload: &bytes[off..],
        })
    }

    /// SEG.LEN: payload plus one for SYN and one for FIN. RFC 9293 §3.4.
    pub fn seg_len(&self) -> u32 {
        self.payload.len() as u32
            + self.hdr.flags.has(Flags::SYN) as u32
            + self.hdr.flags.has(Flags::FIN) as u32
    }
}

impl SegmentHeader {
    /// Header length including options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Writes the header (checksum zero) into `buf`; returns its length. `buf` must hold
    /// [`Self::header_len`] bytes.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let hlen = self.header_len();
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..8].copy_from_slice(&self.seq.0.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ack.0.to_be_bytes());
        buf[12] = ((hlen / 4) as u8) << 4;
        buf[13] = self.flags.0;
        buf[14..16].copy_from_slice(&self.window.to_be_bytes());
        buf[16..18].copy_from_slice(&[0, 0]);
        buf[18..20].copy_from_slice(&self.urgent.to_be_bytes());
        let n = self.options.emit(&mut buf[HEADER_LEN..hlen]);
        debug_assert_eq!(n, hlen - HEADER_LEN);
        hlen
    }

    /// A tcpdump-like one-line summary.
    pub fn summary(&self, payload_len: usize) -> String {
        let mut s = format!(
            "{} > {} [{:?}] seq {}",
            self.src_port, self.dst_port, self.flags, self.seq
        );
        if self.flags.has(Flags::ACK) {
            s.push_str(&format!(" ack {}", self.ack));
        }
        s.push_str(&format!(" win {}", self.window));
        if let Some(m) = self.options.mss {
            s.push_str(&format!(" mss {m}"));
        }
        if let Some(w) = self.options.wscale {
            s.push_str(&format!(" wscale {w}"));
        }
        if self.options.sack_permitted {
            s.push_str(" sackOK");
        }
        if let Some((v, e)) = self.options.timestamps {
            s.push_str(&format!(" TS val {v} ecr {e}"));
        }
        for b in self.options.sacks() {
            s.push_str(&format!(" sack {}:{}", b.left, b.right));
        }
        s.push_str(&format!(" length {payload_len}"));
        s
    }
}

/// Fills the checksum of a complete segment (`seg` = header + payload) sent from `src` to `dst`.
pub fn fill_checksum(src: Ipv4Addr, dst: Ipv4Addr, seg: &mut [u8]) {
    seg[16] = 0;
    seg[17] = 0;
    let c = checksum::transport(src, dst, PROTOCOL, seg);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    /// A SYN from 198.18.0.1:40000 to 198.18.0.2:80, seq 0x01020304, win 64240, with MSS 1460,
    /// SACK-permitted, timestamps (val 1, ecr 0) and window scale 7 — Linux's layout.
    fn syn_fixture() -> Vec<u8> {
        let mut b = vec![
            0x9c, 0x40, 0x00, 0x50, // ports
            0x01, 0x02, 0x03, 0x04, // seq
            0x00, 0x00, 0x00, 0x00, // ack
            0xa0, 0x02, 0xfa, 0xf0, // doff 10, SYN, win 64240
            0x00, 0x00, 0x00, 0x00, // checksum, urgent
            0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
            0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
        ];
        fill_checksum(SRC, DST, &mut b);
        b
    }

    #[test]
    fn parses_syn() {
        let b = syn_fixture();
        let s = Segment::parse(SRC, DST, &b).unwrap();
        assert_eq!(s.hdr.src_port, 40000);
        assert_eq!(s.hdr.dst_port, 80);
        assert_eq!(s.hdr.seq, SeqNum(0x0102_0304));
        assert_eq!(s.hdr.flags, Flags::SYN);
        assert_eq!(s.hdr.window, 64240);
        assert_eq!(s.hdr.options.mss, Some(1460));
        assert_eq!(s.hdr.options.wscale, Some(7));
        assert!(s.hdr.options.sack_permitted);
        assert_eq!(s.hdr.options.timestamps, Some((1, 0)));
        assert_eq!(s.payload.len(), 0);
        assert_eq!(s.seg_len(), 1);
        assert_eq!(s.hdr.summary(0), "40000 > 80 [S] seq 16909060 win 64240 mss 1460 wscale 7 sackOK TS val 1 ecr 0 length 0");
    }

    #[test]
    fn emit_reproduces_fixture() {
        let b = syn_fixture();
        let s = Segment::parse(SRC, DST, &b).unwrap();
        let mut out = vec![0u8; s.hdr.header_len()];
        let n = s.hdr.emit(&mut out);
        fill_checksum(SRC, DST, &mut out[..n]);
        // Our option layout differs from Linux's (SACKOK and TS are packed together), so compare
        // by re-parsing, and check the checksum verifies.
        let again = Segment::parse(SRC, DST, &out).unwrap();
        assert_eq!(again.hdr, s.hdr);
        assert_eq!(crate::checksum::transport(SRC, DST, PROTOCOL, &out), 0);
    }

    #[test]
    fn data_segment_round_trip_with_payload() {
        let hdr = SegmentHeader {
            src_port: 1,
            dst_port: 2,
            seq: SeqNum(10),
            ack: SeqNum(20),
            flags: Flags::ACK | Flags::PSH,
            window: 100,
            ..Default::default()
        };
        let mut b = vec![0u8; 25];
        let n = hdr.emit(&mut b);
        assert_eq!(n, 20);
        b[20..].copy_from_slice(b"hello");
        fill_checksum(SRC, DST, &mut b);
        let s = Segment::parse(SRC, DST, &b).unwrap();
        assert_eq!(s.payload, b"hello");
        assert_eq!(s.hdr, hdr);
        assert_eq!(s.seg_len(), 5);
    }

    #[test]
    fn rejects_each_invalid_case() {
        let b = syn_fixture();
        assert_eq!(
            Segment::parse(SRC, DST, &b[..19]).unwrap_err(),
            ParseError::Truncated
        );
        let mut t = b.clone();
        t[12] = 0x40; // doff 4
        fill_checksum(SRC, DST, &mut t);
        assert_eq!(
            Segment::parse(SRC, DST, &t).unwrap_err(),
            ParseError::BadHeaderLength
        );
        let mut t = b.clone();
        t[12] = 0xf0; // doff 15 > 40 bytes
        assert_eq!(
            Segment::parse(SRC, DST, &t).unwrap_err(),
            ParseError::BadHeaderLength
        );
        let mut t = b.clone();
        t[30] ^= 1;
        assert_eq!(
            Segment::parse(SRC, DST, &t).unwrap_err(),
            ParseError::BadChecksum
        );
        assert_eq!(
            Segment::parse(DST, SRC, &b).map(|_| ()),
            Ok(()),
            "pseudo-header is symmetric"
        );
        assert_eq!(
            Segment::parse(Ipv4Addr::new(1, 2, 3, 4), DST, &b).unwrap_err(),
            ParseError::BadChecksum
        );
        let mut t = b.clone();
        t[21] = 3; // MSS with length 3
        fill_checksum(SRC, DST, &mut t);
        assert_eq!(
            Segment::parse(SRC, DST, &t).unwrap_err(),
            ParseError::BadOptions(OptionsError::WrongLengthForKind)
        );
        for flags in [0x03u8, 0x06, 0x00] {
            let mut t = b.clone();
            t[13] = flags;
            fill_checksum(SRC, DST, &mut t);
            assert_eq!(
                Segment::parse(SRC, DST, &t).unwrap_err(),
                ParseError::BadFlags
            );
        }
    }

    #[test]
    fn timestamp_only_options_take_the_fast_path_with_the_same_result() {
        // NOP NOP TS(val 0x01020304, ecr 0xa0b0c0d0): the fast path; with a SACK block after
        // it (doff 11 + 2) and with the TS first then NOPs: the general parser.
        let ts = [1u8, 1, 8, 10, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0];
        let sack = [1u8, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9];
        let ts_last = [8u8, 10, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0, 1, 1];
        for area in [&ts[..], &[&ts[..], &sack[..]].concat(), &ts_last[..]] {
            let mut b = vec![0u8; HEADER_LEN + area.len() + 3];
            let hdr = SegmentHeader {
                src_port: 1,
                dst_port: 2,
                flags: Flags::ACK,
                ..Default::default()
            };
            hdr.emit(&mut b);
            b[12] = (((HEADER_LEN + area.len()) / 4) as u8) << 4;
            b[HEADER_LEN..HEADER_LEN + area.len()].copy_from_slice(area);
            fill_checksum(SRC, DST, &mut b);
            let s = Segment::parse(SRC, DST, &b).unwrap();
            assert_eq!(s.hdr.options, TcpOptions::parse(area).unwrap());
            assert_eq!(s.hdr.options.timestamps, Some((0x0102_0304, 0xa0b0_c0d0)));
            assert_eq!(s.payload.len(), 3);
        }
    }

    #[test]
    fn flags_render_like_tcpdump() {
        assert_eq!(format!("{:?}", Flags::SYN | Flags::ACK), "S.");
        assert_eq!(format!("{:?}", Flags::FIN | Flags::ACK | Flags::PSH), "FP.");
        assert_eq!(format!("{:?}", Flags::RST), "R");
    }
}
