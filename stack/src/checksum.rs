//! The Internet checksum (RFC 1071) and the IPv4 pseudo-header (RFC 9293 §3.1, RFC 768).
//!
//! The sum is accumulated 32 bits at a time in a `u64` and folded once at the end, which is both
//! simple and fast (RFC 1071 §2(B): "deferred carries").

use core::net::Ipv4Addr;

/// Adds `data` to a running one's-complement sum (not yet folded). An odd trailing byte is padded
/// with a zero byte, as RFC 1071 requires. Only the last chunk of a message may have odd length.
pub fn accumulate(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let (s, carry) = sum.overflowing_add(w);
        sum = s + carry as u64;
    }
    // Fold to at most 33 bits so the additions below cannot overflow (the value is unchanged
    // modulo 0xffff, which is all a one's-complement sum cares about).
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        sum += u16::from_be_bytes([rest[i], rest[i + 1]]) as u64;
        i += 2;
    }
    if i < rest.len() {
        sum += (rest[i] as u64) << 8;
    }
    sum
}

/// Folds a running sum to 16 bits and complements it: the value that goes into a header.
pub fn finish(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The checksum of one contiguous buffer.
pub fn checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// The running sum of the IPv4 pseudo-header: source, destination, zero, protocol, length.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u64 {
    let mut sum = accumulate(0, &src.octets());
    sum = accumulate(sum, &dst.octets());
    sum + protocol as u64 + length as u64
}

/// Checksum of a transport segment (TCP or UDP) including its pseudo-header. When computed over
/// a segment whose checksum field is already filled in, a correct segment yields 0.
pub fn transport(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    finish(accumulate(
        pseudo_header(src, dst, protocol, segment.len() as u16),
        segment,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn ipv4_header_checksum_verifies_to_zero() {
        // A real IPv4 header (from a ping) with checksum 0xb861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0);
        let mut zeroed = hdr;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(checksum(&zeroed), 0xb861);
    }

    #[test]
    fn a_sum_at_u64_max_does_not_overflow() {
        // Found by fuzzing: eight 0xff bytes leave the running sum at u64::MAX.
        let data = [0xffu8; 10];
        assert_eq!(checksum(&data), 0);
        assert_eq!(finish(accumulate(u64::MAX, &[0xff, 0xff])), 0);
    }

    #[test]
    fn odd_lengths_and_chunking_agree_with_naive_sum() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 1000, 1001] {
            let d = &data[..len];
            let mut naive: u32 = 0;
            for pair in d.chunks(2) {
                let w = if pair.len() == 2 {
                    u16::from_be_bytes([pair[0], pair[1]])
                } else {
                    u16::from_be_bytes([pair[0], 0])
                };
                naive += w as u32;
            }
            while naive >> 16 != 0 {
                naive = (naive & 0xffff) + (naive >> 16);
            }
            assert_eq!(checksum(d), !(naive as u16), "len {len}");
        }
    }
}
