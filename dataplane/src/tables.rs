//! The lookup tables the kernel's schedulers read, built on the host: the
//! IPVS weighted round-robin cycle, the IPVS source/destination hashing
//! buckets, and the Maglev table. Pure functions of the real servers'
//! slots and weights; the same output goes into the kernel's maps and into
//! the reference model.

use tandem_common::{SHDH_BUCKETS, hash};

/// Marks a table entry that names no real server.
pub const NO_REAL: u32 = u32::MAX;

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The IPVS wrr cycle over slots with these weights (0: never picked):
/// current weight `cw` steps down from the largest weight by the weights'
/// greatest common divisor, and each pass picks, in slot order, every slot
/// whose weight is at least `cw`.
pub fn wrr_sequence(weights: &[u32]) -> Vec<u32> {
    let di = weights.iter().copied().filter(|w| *w > 0).fold(0, gcd);
    let mw = weights.iter().copied().max().unwrap_or(0);
    let mut seq = Vec::new();
    if di == 0 {
        return seq;
    }
    let mut cw = mw;
    while cw > 0 {
        for (i, w) in weights.iter().enumerate() {
            if *w >= cw {
                seq.push(i as u32);
            }
        }
        cw = cw.saturating_sub(di);
    }
    seq
}

/// The IPVS sh/dh buckets: walking the present slots in order, each slot
/// takes `weight` consecutive buckets (at least one), cycling until all 256
/// are assigned. `slots[i]` is the weight of slot `i`, `None` for an empty
/// slot.
pub fn shdh_table(slots: &[Option<u32>]) -> Vec<u32> {
    let present: Vec<(u32, u32)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, w)| w.map(|w| (i as u32, w)))
        .collect();
    let mut table = vec![NO_REAL; SHDH_BUCKETS as usize];
    if present.is_empty() {
        return table;
    }
    let mut p = 0usize;
    let mut count = 0u32;
    for bucket in table.iter_mut() {
        let (slot, weight) = present[p];
        *bucket = slot;
        count += 1;
        if count >= weight {
            p = (p + 1) % present.len();
            count = 0;
        }
    }
    table
}

/// One real server as the Maglev builder sees it.
#[derive(Clone, Copy, Debug)]
pub struct MaglevReal {
    pub slot: u32,
    pub addr: [u8; 16],
    pub port: u16,
    pub weight: u32,
}

/// The Maglev lookup table of size `m` (a prime): each real server with a
/// non-zero weight walks its own permutation (offset and skip from hashes of
/// its address and port, so that a real server's preferences do not depend
/// on the others) and claims `weight / gcd` free entries per round.
/// Removing one of N real servers moves about 1/N of the entries.
pub fn maglev_table(reals: &[MaglevReal], m: u32) -> Vec<u32> {
    let mut table = vec![NO_REAL; m as usize];
    let live: Vec<&MaglevReal> = reals.iter().filter(|r| r.weight > 0).collect();
    if live.is_empty() || m < 2 {
        return table;
    }
    let g = live.iter().map(|r| r.weight).fold(0, gcd);
    // Bound the turns per round so that a huge weight ratio cannot make a
    // round longer than the table (IPVS mh shifts weights the same way).
    let max_turns = live.iter().map(|r| r.weight / g).max().unwrap_or(1);
    let shift = if max_turns > 256 {
        (max_turns / 256).max(1)
    } else {
        1
    };
    let perms: Vec<(u64, u64)> = live
        .iter()
        .map(|r| {
            let offset =
                hash::hash_addr_port(&r.addr, r.port, hash::MAGLEV_OFFSET_SEED) as u64 % m as u64;
            let skip = hash::hash_addr_port(&r.addr, r.port, hash::MAGLEV_SKIP_SEED) as u64
                % (m as u64 - 1)
                + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; live.len()];
    let mut filled = 0u32;
    'rounds: loop {
        for (i, r) in live.iter().enumerate() {
            let turns = ((r.weight / g) / shift).max(1);
            for _ in 0..turns {
                let (offset, skip) = perms[i];
                loop {
                    let c = ((offset + next[i] * skip) % m as u64) as usize;
                    next[i] += 1;
                    if table[c] == NO_REAL {
                        table[c] = r.slot;
                        filled += 1;
                        break;
                    }
                }
                if filled == m {
                    break 'rounds;
                }
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrr_matches_ipvs_example() {
        // IPVS documentation example: weights a=4, b=3, c=2 give
        // a a b a b c a b c (cw = 4, 3, 2, 1).
        assert_eq!(wrr_sequence(&[4, 3, 2]), vec![0, 0, 1, 0, 1, 2, 0, 1, 2]);
        assert_eq!(wrr_sequence(&[2, 4]), vec![1, 0, 1]);
        assert_eq!(wrr_sequence(&[0, 0]), Vec::<u32>::new());
        assert_eq!(wrr_sequence(&[1, 0, 1]), vec![0, 2]);
    }

    #[test]
    fn shdh_weights_buckets() {
        let t = shdh_table(&[Some(1), None, Some(3)]);
        assert_eq!(&t[..8], &[0, 2, 2, 2, 0, 2, 2, 2]);
        assert_eq!(t.iter().filter(|s| **s == 2).count(), 192);
        assert!(shdh_table(&[None]).iter().all(|s| *s == NO_REAL));
    }

    fn real(i: u32, w: u32) -> MaglevReal {
        let mut addr = [0u8; 16];
        addr[10] = 0xff;
        addr[11] = 0xff;
        addr[12] = 198;
        addr[13] = 18;
        addr[15] = i as u8 + 1;
        MaglevReal {
            slot: i,
            addr,
            port: 0,
            weight: w,
        }
    }

    #[test]
    fn maglev_fills_evenly_and_by_weight() {
        let reals: Vec<_> = (0..4).map(|i| real(i, 1)).collect();
        let t = maglev_table(&reals, 65537);
        assert!(t.iter().all(|s| *s < 4));
        for i in 0..4 {
            let n = t.iter().filter(|s| **s == i).count();
            assert!((16_000..=16_800).contains(&n), "slot {i} has {n}");
        }
        let weighted = maglev_table(&[real(0, 1), real(1, 3)], 65537);
        let n1 = weighted.iter().filter(|s| **s == 1).count() as f64 / 65537.0;
        assert!((n1 - 0.75).abs() < 0.01, "{n1}");
    }
}
