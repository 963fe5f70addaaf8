//! The Internet checksum (RFC 1071) and the IPv4 pseudo-header (RFC 9293 §3.1, RFC 768).
//!
//! # How the fast sum works
//!
//! RFC 1071 §2 lists the properties that make the sum cheap, and this module uses three:
//!
//! - **(B) Byte-order independence:** summing the data as *native-endian* words gives the
//!   byte-swapped sum on a little-endian machine; swapping the folded 16-bit result once gives
//!   the big-endian sum. So no per-word byte swap.
//! - **(C) Parallel summation:** 16-bit words can be added as 64-bit words (four at a time) as
//!   long as every carry out of bit 63 is added back in ("end-around carry"), then the 64-bit
//!   sum is folded to 16 bits once.
//! - **(B) Deferred carries:** the end-around carries ride the CPU's carry flag
//!   ([`u64::carrying_add`] compiles to an `adc` chain: one instruction per 8 bytes).
//!
//! [`accumulate_reference`] is the plain byte-pair loop of RFC 1071 §4.1, kept as the oracle of
//! the tests (and for anyone reading this to check the fast version against).
//!
//! [`copy_and_accumulate`] copies and sums in one pass (Linux's `csum_partial_copy`): the data is
//! read once, for a copy that happens anyway (e.g. payload into a receive buffer).

use core::net::Ipv4Addr;

/// Reads 8 bytes in native order (the slice is exactly 8 long: the compiler drops the check).
#[inline(always)]
fn ne64(b: &[u8]) -> u64 {
    u64::from_ne_bytes(b.try_into().expect("8 bytes"))
}

/// Adds with end-around carry: the one's-complement addition of two 64-bit words.
#[inline(always)]
fn add_eac(a: u64, b: u64) -> u64 {
    let (s, c) = a.overflowing_add(b);
    // s + 1 cannot overflow when c is set: s <= b - 1 < u64::MAX.
    s + c as u64
}

/// Folds a 64-bit one's-complement sum to 16 bits (with end-around carries), unchanged modulo
/// 0xffff except that a nonzero sum never folds to 0 (0xffff, "negative zero", stays 0xffff).
#[inline(always)]
fn fold16(sum: u64) -> u16 {
    let s = (sum & 0xffff_ffff) + (sum >> 32); // <= 0x1_ffff_fffe
    let s = (s & 0xffff_ffff) + (s >> 32); // <= 0xffff_ffff
    let s = (s & 0xffff) + (s >> 16); // <= 0x1_fffe
    let s = (s & 0xffff) + (s >> 16); // <= 0xffff
    s as u16
}

/// Native-endian sum of a tail shorter than 8 bytes, as 32/16-bit words: the same value modulo
/// 0xffff as the zero-padded 64-bit word (2^64 - 1 is a multiple of 2^16 - 1), without a copy.
#[inline(always)]
fn tail_native(mut r: &[u8]) -> u64 {
    let mut t = 0u64;
    if let Some((w, rest)) = r.split_first_chunk::<4>() {
        t += u64::from(u32::from_ne_bytes(*w));
        r = rest;
    }
    if let Some((w, rest)) = r.split_first_chunk::<2>() {
        t += u64::from(u16::from_ne_bytes(*w));
        r = rest;
    }
    if let [b] = r {
        // RFC 1071: an odd last byte is padded with a zero byte after it.
        t += u64::from(u16::from_ne_bytes([*b, 0]));
    }
    t
}

/// Native-endian one's-complement sum of `data` as 64-bit words (not folded). A tail shorter
/// than 8 bytes is zero-padded at its end, which is RFC 1071's padding of an odd last byte.
#[inline]
fn sum_native(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    // Carries out of bit 63, added back once at the end (at most len / 8: no overflow).
    let mut carries: u64 = 0;
    let mut big = data.chunks_exact(128);
    for c in &mut big {
        // One `adc` chain of sixteen words, closed by one `adc carries, 0`.
        let (mut a, mut k) = acc.overflowing_add(ne64(&c[0..8]));
        for i in 1..16 {
            (a, k) = a.carrying_add(ne64(&c[i * 8..i * 8 + 8]), k);
        }
        acc = a;
        carries += k as u64;
    }
    let mut words = big.remainder().chunks_exact(8);
    for c in &mut words {
        // At most 15 words: one at a time.
        let (a, k) = acc.overflowing_add(ne64(c));
        acc = a;
        carries += k as u64;
    }
    add_eac(acc, carries + tail_native(words.remainder()))
}

/// Converts a folded native-endian sum to the big-endian (network order) sum.
#[inline(always)]
fn native_to_be(folded: u16) -> u16 {
    if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    }
}

/// Adds `data` to a running one's-complement sum (not yet folded). An odd trailing byte is padded
/// with a zero byte, as RFC 1071 requires. Only the last chunk of a message may have odd length.
///
/// Any `sum` is accepted (even `u64::MAX`): the addition carries around.
pub fn accumulate(sum: u64, data: &[u8]) -> u64 {
    add_eac(sum, native_to_be(fold16(sum_native(data))) as u64)
}

/// Copies `src` into `dst` (same length) and adds the copied bytes to a running sum, reading
/// them once: the result equals `accumulate(sum, src)`. Same odd-length rule as [`accumulate`].
///
/// # Panics
///
/// If `dst.len() != src.len()`.
pub fn copy_and_accumulate(sum: u64, dst: &mut [u8], src: &[u8]) -> u64 {
    assert_eq!(dst.len(), src.len(), "copy_and_accumulate: lengths differ");
    let mut acc: u64 = 0;
    let mut carries: u64 = 0;
    let mut d = dst.chunks_exact_mut(32);
    let mut s = src.chunks_exact(32);
    for (dc, sc) in (&mut d).zip(&mut s) {
        let w = [
            ne64(&sc[0..8]),
            ne64(&sc[8..16]),
            ne64(&sc[16..24]),
            ne64(&sc[24..32]),
        ];
        dc[0..8].copy_from_slice(&w[0].to_ne_bytes());
        dc[8..16].copy_from_slice(&w[1].to_ne_bytes());
        dc[16..24].copy_from_slice(&w[2].to_ne_bytes());
        dc[24..32].copy_from_slice(&w[3].to_ne_bytes());
        let (mut a, mut k) = acc.overflowing_add(w[0]);
        (a, k) = a.carrying_add(w[1], k);
        (a, k) = a.carrying_add(w[2], k);
        (a, k) = a.carrying_add(w[3], k);
        acc = a;
        carries += k as u64;
    }
    let (dr, sr) = (d.into_remainder(), s.remainder());
    dr.copy_from_slice(sr);
    let acc = add_eac(add_eac(acc, carries), sum_native(sr));
    add_eac(sum, native_to_be(fold16(acc)) as u64)
}

/// The plain RFC 1071 §4.1 loop: big-endian 16-bit words added into a wide accumulator. Slow and
/// obviously right: the oracle the fast [`accumulate`] is tested against.
pub fn accumulate_reference(mut sum: u64, data: &[u8]) -> u64 {
    sum = u64::from(fold16(sum));
    for pair in data.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        let lo = pair.get(1).copied().map_or(0, u64::from);
        sum += hi | lo;
    }
    sum
}

/// Folds a running sum to 16 bits and complements it: the value that goes into a header.
pub fn finish(sum: u64) -> u16 {
    !fold16(sum)
}

/// The checksum of one contiguous buffer.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    if let Ok(h) = <&[u8; 20]>::try_from(data) {
        // An IPv4 header without options (every header we emit, nearly every one we receive):
        // two words and a half, no loop.
        let (a, k) = ne64(&h[0..8]).overflowing_add(ne64(&h[8..16]));
        let sum = add_eac(
            a,
            k as u64 + u64::from(u32::from_ne_bytes([h[16], h[17], h[18], h[19]])),
        );
        return !native_to_be(fold16(sum));
    }
    finish(accumulate(0, data))
}

/// The running sum of the IPv4 pseudo-header: source, destination, zero, protocol, length.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u64 {
    let (s, d) = (u32::from(src), u32::from(dst));
    // Four 16-bit words, each < 2^16: no overflow.
    u64::from(s >> 16)
        + u64::from(s & 0xffff)
        + u64::from(d >> 16)
        + u64::from(d & 0xffff)
        + u64::from(protocol)
        + u64::from(length)
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
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        assert_eq!(finish(accumulate_reference(0, &data)), !0xddf2);
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
    fn tcp_segment_fixture() {
        // A SYN without options, 198.18.0.1:40000 -> 198.18.0.2:80, seq 0x01020304, win 64240.
        // 0x8833 was computed independently (Python, RFC 1071 over the pseudo-header bytes
        // c6 12 00 01 c6 12 00 02 00 06 00 14 followed by the segment).
        let src = Ipv4Addr::new(198, 18, 0, 1);
        let dst = Ipv4Addr::new(198, 18, 0, 2);
        let mut seg = [
            0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02,
            0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00,
        ];
        let pseudo = [198, 18, 0, 1, 198, 18, 0, 2, 0, 6, 0, 20];
        let expect = 0x8833;
        assert_eq!(
            finish(accumulate_reference(accumulate_reference(0, &pseudo), &seg)),
            expect
        );
        assert_eq!(transport(src, dst, 6, &seg), expect);
        seg[16..18].copy_from_slice(&expect.to_be_bytes());
        assert_eq!(transport(src, dst, 6, &seg), 0);
        assert_eq!(
            transport(dst, src, 6, &seg),
            0,
            "the pseudo-header is symmetric"
        );
        assert_ne!(transport(src, dst, 17, &seg), 0, "the protocol is covered");
    }

    #[test]
    fn a_sum_at_u64_max_does_not_overflow() {
        // Found by fuzzing: eight 0xff bytes leave the running sum at u64::MAX.
        let data = [0xffu8; 10];
        assert_eq!(checksum(&data), 0);
        assert_eq!(finish(accumulate(u64::MAX, &[0xff, 0xff])), 0);
        assert_eq!(checksum(&[0xffu8; 4096]), 0);
        // Every 64-bit word all ones: the carry chain wraps on every add.
        let mut buf = [0u8; 8192];
        let mut sink = [0u8; 8192];
        buf.fill(0xff);
        assert_eq!(finish(copy_and_accumulate(u64::MAX, &mut sink, &buf)), 0);
        assert_eq!(sink, buf);
    }

    #[test]
    fn negative_zero_is_kept_distinct_from_zero() {
        // A nonzero sum of 0xffff must checksum to 0x0000, and an all-zero message to 0xffff.
        assert_eq!(checksum(&[0xff, 0xff]), 0x0000);
        assert_eq!(checksum(&[0, 0, 0, 0]), 0xffff);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn odd_lengths_and_chunking_agree_with_naive_sum() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 1000, 1001] {
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

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn fast_sum_equals_reference(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            start in any::<u64>(),
            split in any::<prop::sample::Index>(),
        ) {
            let expect = finish(accumulate_reference(start, &data));
            prop_assert_eq!(finish(accumulate(start, &data)), expect);
            // Chained over an even split point (only the last chunk may be odd).
            let k = split.index(data.len() + 1) & !1;
            let chained = accumulate(accumulate(start, &data[..k]), &data[k..]);
            prop_assert_eq!(finish(chained), expect);
        }

        #[test]
        fn copy_and_sum_equals_copy_then_sum(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            start in any::<u64>(),
        ) {
            let mut dst = vec![0xa5u8; data.len()];
            let s = copy_and_accumulate(start, &mut dst, &data);
            prop_assert_eq!(&dst, &data);
            prop_assert_eq!(finish(s), finish(accumulate_reference(start, &data)));
        }

        #[test]
        fn unaligned_slices_sum_alike(
            data in proptest::collection::vec(any::<u8>(), 1..600),
            offset in 0usize..8,
        ) {
            // The same bytes at every alignment of the underlying buffer.
            let mut buf = vec![0u8; offset];
            buf.extend_from_slice(&data);
            prop_assert_eq!(checksum(&buf[offset..]), checksum(&data));
            prop_assert_eq!(checksum(&data), finish(accumulate_reference(0, &data)));
        }
    }
}
