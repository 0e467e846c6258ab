//! Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4): comparisons are
//! made on the signed difference, valid while the two numbers are less than
//! 2^31 apart, which windows (≤ 2^30, RFC 7323 §2.3) guarantee.

#[inline]
pub fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
#[inline]
pub fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}
#[inline]
pub fn gt(a: u32, b: u32) -> bool {
    lt(b, a)
}
#[inline]
pub fn ge(a: u32, b: u32) -> bool {
    le(b, a)
}
/// The later of two sequence numbers.
#[inline]
pub fn max(a: u32, b: u32) -> u32 {
    if lt(a, b) {
        b
    } else {
        a
    }
}
/// `lo <= x < hi` in sequence space.
#[inline]
pub fn in_range(x: u32, lo: u32, hi: u32) -> bool {
    le(lo, x) && lt(x, hi)
}
/// `b - a` as a distance (caller ensures `a <= b`).
#[inline]
pub fn dist(a: u32, b: u32) -> usize {
    b.wrapping_sub(a) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_across_the_wrap() {
        assert!(lt(0xffff_fff0, 0x10));
        assert!(gt(0x10, 0xffff_fff0));
        assert!(le(5, 5) && ge(5, 5) && !lt(5, 5));
        assert!(in_range(0, 0xffff_ffff, 1));
        assert!(!in_range(1, 0xffff_ffff, 1));
        assert_eq!(dist(0xffff_fffe, 2), 4);
        assert_eq!(max(0xffff_fffe, 2), 2);
    }
}
