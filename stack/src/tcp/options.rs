//! TCP options: MSS (RFC 9293 §3.2), window scale and timestamps (RFC 7323), SACK-permitted and
//! SACK blocks (RFC 2018), NOP and EOL. Parsing never panics and never allocates.

use super::seq::SeqNum;

/// Option kinds (IANA "TCP Option Kind Numbers").
mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WSCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// At most four SACK blocks fit in 40 option bytes (three with timestamps). RFC 2018 §3.
pub const MAX_SACK_BLOCKS: usize = 4;

/// Why the options area could not be parsed (all map to `DropReason::TcpBadOptions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionsError {
    /// An option's length byte is missing.
    MissingLength,
    /// An option's length is below 2 (would loop forever) or runs past the options area.
    BadLength,
    /// A known option has the wrong length for its kind.
    WrongLengthForKind,
}

/// A SACK block: `[left, right)` of received bytes. RFC 2018 §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SackBlock {
    /// First sequence number of the block.
    pub left: SeqNum,
    /// Sequence number just after the block.
    pub right: SeqNum,
}

/// The options of one segment, parsed. Unknown options are skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// Maximum segment size (only meaningful on SYN). RFC 9293 §3.7.1.
    pub mss: Option<u16>,
    /// Window scale shift (only meaningful on SYN). RFC 7323 §2.
    pub wscale: Option<u8>,
    /// SACK-permitted (only meaningful on SYN). RFC 2018 §2.
    pub sack_permitted: bool,
    /// Timestamps `(TSval, TSecr)`. RFC 7323 §3.
    pub timestamps: Option<(u32, u32)>,
    /// Number of valid entries in `sack_blocks`.
    pub sack_count: u8,
    /// SACK blocks (the first `sack_count` are valid). RFC 2018 §3.
    pub sack_blocks: [SackBlock; MAX_SACK_BLOCKS],
}

impl TcpOptions {
    /// Parses an options area (the bytes between the fixed header and the data).
    pub fn parse(mut data: &[u8]) -> Result<TcpOptions, OptionsError> {
        let mut o = TcpOptions::default();
        while let Some(&k) = data.first() {
            match k {
                kind::EOL => break,
                kind::NOP => {
                    data = &data[1..];
                    continue;
                }
                _ => {}
            }
            let len = *data.get(1).ok_or(OptionsError::MissingLength)? as usize;
            if len < 2 || len > data.len() {
                return Err(OptionsError::BadLength);
            }
            let body = &data[2..len];
            match k {
                kind::MSS => {
                    if len != 4 {
                        return Err(OptionsError::WrongLengthForKind);
                    }
                    o.mss = Some(u16::from_be_bytes([body[0], body[1]]));
                }
                kind::WSCALE => {
                    if len != 3 {
                        return Err(OptionsError::WrongLengthForKind);
                    }
                    o.wscale = Some(body[0]);
                }
                kind::SACK_PERMITTED => {
                    if len != 2 {
                        return Err(OptionsError::WrongLengthForKind);
                    }
                    o.sack_permitted = true;
                }
                kind::SACK => {
                    if (len - 2) & 7 != 0 || len == 2 {
                        return Err(OptionsError::WrongLengthForKind);
                    }
                    for chunk in body.chunks_exact(8) {
                        if (o.sack_count as usize) < MAX_SACK_BLOCKS {
                            o.sack_blocks[o.sack_count as usize] = SackBlock {
                                left: SeqNum(u32::from_be_bytes([
                                    chunk[0], chunk[1], chunk[2], chunk[3],
                                ])),
                                right: SeqNum(u32::from_be_bytes([
                                    chunk[4], chunk[5], chunk[6], chunk[7],
                                ])),
                            };
                            o.sack_count += 1;
                        }
                    }
                }
                kind::TIMESTAMPS => {
                    if len != 10 {
                        return Err(OptionsError::WrongLengthForKind);
                    }
                    let val = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    let ecr = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                    o.timestamps = Some((val, ecr));
                }
                _ => {}
            }
            data = &data[len..];
        }
        Ok(o)
    }

    /// The valid SACK blocks.
    pub fn sacks(&self) -> &[SackBlock] {
        &self.sack_blocks[..self.sack_count as usize]
    }

    /// Bytes [`TcpOptions::emit`] writes (a multiple of 4, at most 40).
    pub fn len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.wscale.is_some() {
            n += 4; // NOP + WS(3)
        }
        if self.timestamps.is_some() {
            n += 12; // NOP NOP TS(10), or SACKOK(2) TS(10)
        } else if self.sack_permitted {
            n += 4; // NOP NOP SACKOK
        }
        if self.sack_count > 0 {
            n += 4 + 8 * self.sack_count as usize; // NOP NOP SACK(2 + 8n)
        }
        n
    }

    /// Whether there are no options to emit.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the options in Linux's layout (aligned with NOPs); `buf` must hold [`Self::len`]
    /// bytes. Returns the bytes written. The caller keeps the total within 40 bytes (at most
    /// three SACK blocks alongside timestamps).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let mut i = 0;
        let mut put = |bytes: &[u8]| {
            buf[i..i + bytes.len()].copy_from_slice(bytes);
            i += bytes.len();
        };
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            put(&[kind::MSS, 4, m[0], m[1]]);
        }
        if let Some((val, ecr)) = self.timestamps {
            if self.sack_permitted {
                put(&[kind::SACK_PERMITTED, 2]);
            } else {
                put(&[kind::NOP, kind::NOP]);
            }
            put(&[kind::TIMESTAMPS, 10]);
            put(&val.to_be_bytes());
            put(&ecr.to_be_bytes());
        } else if self.sack_permitted {
            put(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
        }
        if let Some(ws) = self.wscale {
            put(&[kind::NOP, kind::WSCALE, 3, ws]);
        }
        if self.sack_count > 0 {
            put(&[kind::NOP, kind::NOP, kind::SACK, 2 + 8 * self.sack_count]);
            for b in self.sacks() {
                put(&b.left.0.to_be_bytes());
                put(&b.right.0.to_be_bytes());
            }
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A Linux SYN's options: MSS 1460, SACK-permitted, TS, NOP, WS 7.
    const LINUX_SYN: [u8; 20] = [
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn parses_linux_syn_options() {
        let o = TcpOptions::parse(&LINUX_SYN).unwrap();
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_permitted);
        assert_eq!(o.timestamps, Some((0x0001_0203, 0)));
        assert_eq!(o.wscale, Some(7));
        assert_eq!(o.sack_count, 0);
    }

    #[test]
    fn emit_then_parse_round_trips() {
        let mut o = TcpOptions {
            mss: Some(1460),
            wscale: Some(7),
            sack_permitted: true,
            timestamps: Some((1, 2)),
            ..Default::default()
        };
        let mut buf = [0u8; 40];
        let n = o.emit(&mut buf);
        assert_eq!(n, o.len());
        assert_eq!(n, 20);
        assert_eq!(TcpOptions::parse(&buf[..n]).unwrap(), o);

        o = TcpOptions {
            timestamps: Some((7, 9)),
            sack_count: 3,
            ..Default::default()
        };
        for (i, b) in o.sack_blocks.iter_mut().take(3).enumerate() {
            *b = SackBlock {
                left: SeqNum(100 * i as u32),
                right: SeqNum(100 * i as u32 + 50),
            };
        }
        let n = o.emit(&mut buf);
        assert_eq!(n, 40);
        assert_eq!(TcpOptions::parse(&buf[..n]).unwrap(), o);
    }

    #[test]
    fn parses_sack_blocks_bytes() {
        let bytes = [1, 1, 5, 10, 0, 0, 0, 10, 0, 0, 0, 20];
        let o = TcpOptions::parse(&bytes).unwrap();
        assert_eq!(
            o.sacks(),
            &[SackBlock {
                left: SeqNum(10),
                right: SeqNum(20)
            }]
        );
    }

    #[test]
    fn eol_stops_and_unknown_is_skipped() {
        let o = TcpOptions::parse(&[30, 3, 0, 2, 4, 1, 0, 0, 0xff]).unwrap();
        assert_eq!(o.mss, Some(256));
        let o = TcpOptions::parse(&[0, 2, 1]).unwrap();
        assert_eq!(o.mss, None);
    }

    #[test]
    fn rejects_each_malformation() {
        assert_eq!(TcpOptions::parse(&[2]), Err(OptionsError::MissingLength));
        assert_eq!(TcpOptions::parse(&[2, 0]), Err(OptionsError::BadLength));
        assert_eq!(TcpOptions::parse(&[2, 1]), Err(OptionsError::BadLength));
        assert_eq!(TcpOptions::parse(&[2, 4, 5]), Err(OptionsError::BadLength));
        assert_eq!(
            TcpOptions::parse(&[2, 3, 5]),
            Err(OptionsError::WrongLengthForKind)
        );
        assert_eq!(
            TcpOptions::parse(&[3, 4, 5, 0]),
            Err(OptionsError::WrongLengthForKind)
        );
        assert_eq!(
            TcpOptions::parse(&[4, 3, 0]),
            Err(OptionsError::WrongLengthForKind)
        );
        assert_eq!(
            TcpOptions::parse(&[5, 2]),
            Err(OptionsError::WrongLengthForKind)
        );
        assert_eq!(
            TcpOptions::parse(&[5, 6, 0, 0, 0, 0]),
            Err(OptionsError::WrongLengthForKind)
        );
        assert_eq!(
            TcpOptions::parse(&[8, 8, 0, 0, 0, 0, 0, 0]),
            Err(OptionsError::WrongLengthForKind)
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            let _ = TcpOptions::parse(&bytes);
        }
    }
}
