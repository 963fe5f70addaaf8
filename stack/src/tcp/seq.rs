//! Sequence numbers: 32-bit modular arithmetic (RFC 9293 §3.4).
//!
//! Comparisons are defined on the signed difference, so `a < b` means "b is less than 2^31 ahead
//! of a". This is not a total order over all of `u32` (it is over any window smaller than 2^31),
//! which is exactly the guarantee TCP relies on.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence (or acknowledgment) number. RFC 9293 §3.4.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// The signed distance from `other` to `self` (`self - other` in sequence space).
    #[inline]
    pub const fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// The distance from `other` up to `self`, clamped to 0 when `self` is before `other`.
    #[inline]
    pub fn since(self, other: SeqNum) -> u32 {
        let d = self.diff(other);
        if d < 0 {
            0
        } else {
            d as u32
        }
    }

    /// The later of two sequence numbers.
    #[inline]
    pub fn max_seq(self, other: SeqNum) -> SeqNum {
        if self.diff(other) >= 0 {
            self
        } else {
            other
        }
    }

    /// The earlier of two sequence numbers.
    #[inline]
    pub fn min_seq(self, other: SeqNum) -> SeqNum {
        if self.diff(other) <= 0 {
            self
        } else {
            other
        }
    }

    /// Whether `start <= self < end` in sequence space.
    #[inline]
    pub fn in_range(self, start: SeqNum, end: SeqNum) -> bool {
        start <= self && self < end
    }
}

impl PartialOrd for SeqNum {
    #[inline]
    fn partial_cmp(&self, other: &SeqNum) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn add(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs))
    }
}

impl AddAssign<u32> for SeqNum {
    #[inline]
    fn add_assign(&mut self, rhs: u32) {
        self.0 = self.0.wrapping_add(rhs);
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn sub(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(rhs))
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_around() {
        let a = SeqNum(u32::MAX - 10);
        let b = a + 20;
        assert_eq!(b.0, 9);
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.diff(a), 20);
        assert_eq!(a.diff(b), -20);
        assert_eq!(b.since(a), 20);
        assert_eq!(a.since(b), 0);
        assert_eq!(a.max_seq(b), b);
        assert_eq!(a.min_seq(b), a);
        assert!(SeqNum(u32::MAX).in_range(a, b));
        assert!(!b.in_range(a, b));
    }

    proptest! {
        #[test]
        fn comparisons_are_consistent_across_wrap(x in any::<u32>(), d in 1u32..(1 << 31)) {
            let a = SeqNum(x);
            let b = a + d;
            prop_assert!(a < b);
            prop_assert!(b > a);
            prop_assert!(a != b);
            prop_assert_eq!(b.since(a), d);
            prop_assert_eq!(b - d, a);
            prop_assert_eq!(a.max_seq(b), b);
            prop_assert_eq!(b.min_seq(a), a);
        }

        #[test]
        fn transitive_within_half_space(x in any::<u32>(), d1 in 0u32..(1 << 29), d2 in 0u32..(1 << 29)) {
            let a = SeqNum(x);
            let b = a + d1;
            let c = b + d2;
            prop_assert!(a <= b && b <= c && a <= c);
            prop_assert_eq!(c.since(a), d1 + d2);
        }
    }
}
