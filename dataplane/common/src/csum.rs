//! Incremental Internet checksum updates (RFC 1624, eqn. 3:
//! `HC' = ~(~HC + ~m + m')`), used by NAT forwarding in the kernel and by
//! the reference model. Checksums and words are the 16-bit big-endian values
//! as read from the packet.

/// Folds a 32-bit one's-complement sum into 16 bits.
#[inline(always)]
pub fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum after one 16-bit word changed from `old` to `new`.
#[inline(always)]
pub fn replace16(hc: u16, old: u16, new: u16) -> u16 {
    !fold((!hc) as u32 + (!old) as u32 + new as u32)
}

/// The checksum after a 32-bit field (two words, big-endian) changed.
#[inline(always)]
pub fn replace32(hc: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let s = (!hc) as u32
        + (!u16::from_be_bytes([old[0], old[1]])) as u32
        + (!u16::from_be_bytes([old[2], old[3]])) as u32
        + u16::from_be_bytes([new[0], new[1]]) as u32
        + u16::from_be_bytes([new[2], new[3]]) as u32;
    !fold(s)
}

/// The checksum after a 128-bit field (an IPv6 address) changed.
#[inline(always)]
pub fn replace128(hc: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    let mut s = (!hc) as u32;
    let mut i = 0;
    while i < 16 {
        s += (!u16::from_be_bytes([old[i], old[i + 1]])) as u32;
        s += u16::from_be_bytes([new[i], new[i + 1]]) as u32;
        i += 2;
    }
    !fold(s)
}

/// A UDP checksum after an update: IPv4's "no checksum" (0) stays 0, and a
/// computed 0 is sent as 0xffff (RFC 768).
#[inline(always)]
pub fn udp_fixup(updated: u16) -> u16 {
    if updated == 0 { 0xffff } else { updated }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full checksum of a buffer of words, for checking the increments.
    fn full(words: &[u16]) -> u16 {
        let mut s: u32 = 0;
        for w in words {
            s += *w as u32;
        }
        !fold(s)
    }

    #[test]
    fn rfc1071_example_and_increment() {
        // RFC 1071's example sums 0001 f203 f4f5 f6f7 to ddf2.
        let words = [0x0001u16, 0xf203, 0xf4f5, 0xf6f7];
        assert_eq!(full(&words), !0xddf2);
        let hc = full(&words);
        let mut changed = words;
        changed[2] = 0x1234;
        assert_eq!(replace16(hc, 0xf4f5, 0x1234), full(&changed));
    }

    #[test]
    fn replace32_matches_full() {
        let words = [
            0x4500u16, 0x0073, 0x0000, 0x4000, 0x4011, 0xc0a8, 0x0001, 0xc0a8, 0x00c7,
        ];
        let hc = full(&words);
        let mut changed = words;
        changed[7] = 0xc612;
        changed[8] = 0x0005;
        assert_eq!(
            replace32(hc, [0xc0, 0xa8, 0x00, 0xc7], [0xc6, 0x12, 0x00, 0x05]),
            full(&changed)
        );
    }
}
