//! Node-wide values: timeouts (`SETTINGS`), what the host derives from
//! the set of services (`GLOBALS`), and the interfaces frames leave by
//! (`IFACES`).

/// Derived node state the host maintains (value 0 of `GLOBALS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Globals {
    /// Number of NAT services: without any, replies are not looked up.
    pub nat_services: u32,
    /// Non-zero: new and expired flows are pushed to `FLOW_EVENTS` (state
    /// sync to the standby is on).
    pub flow_events: u32,
}

/// Words of the VIP filter ([`VipFilter`]): 1,024 bits.
pub const VIP_FILTER_WORDS: usize = 16;

/// A one-hash Bloom filter over every address a packet may be dispatched
/// or guarded for — each service's address and each VIP the pair may own,
/// IPv4 and IPv6 (value 0 of `VIP_FILTER`). A destination whose bit is
/// clear is none of them: the program passes it (or takes it to the NAT
/// reverse path) without a hash lookup, which is most of a director's
/// own traffic. A set bit only sends the packet on to the lookups that
/// decide. The host rebuilds it whenever the set changes, setting a new
/// address's bit before the address is written anywhere else.
///
/// `all_owned` (1: this node owns every guarded VIP, vacuously when none is
/// guarded) lets the VIP guard pass a packet with no hash lookup while the
/// dead-man switch is not tripped — an active's every packet. The host
/// clears it before a guarded VIP stops being owned (or a new one is
/// guarded) and sets it only after the owned set covers the guarded one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipFilter {
    pub words: [u64; VIP_FILTER_WORDS],
    pub all_owned: u32,
    pub _pad: u32,
}

/// The filter bit of `addr` (16 bytes in network order, IPv4 mapped):
/// the four 32-bit words folded by XOR, then a multiplicative hash to 10
/// bits. Kernel and host compute it alike on the same machine.
#[inline(always)]
pub fn vip_filter_bit(addr: &[u8; 16]) -> u32 {
    let w = |i: usize| u32::from_ne_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    let x = w(0) ^ w(4) ^ w(8) ^ w(12);
    x.wrapping_mul(0x9e37_79b1) >> 22
}

impl VipFilter {
    /// Sets `addr`'s bit.
    pub fn insert(&mut self, addr: &[u8; 16]) {
        let b = vip_filter_bit(addr);
        self.words[(b >> 6) as usize % VIP_FILTER_WORDS] |= 1u64 << (b & 63);
    }

    /// False: `addr` is certainly not in the set.
    #[inline(always)]
    pub fn may_contain(&self, addr: &[u8; 16]) -> bool {
        let b = vip_filter_bit(addr);
        let i = (b >> 6) as usize;
        if i >= VIP_FILTER_WORDS {
            return true;
        }
        self.words[i] & (1u64 << (b & 63)) != 0
    }
}

/// Node-wide settings (value 0 of `SETTINGS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Idle timeout of UDP flows (IPVS default 300 s).
    pub udp_timeout_ns: u64,
    /// Idle timeout of established TCP flows (IPVS default 900 s).
    pub tcp_timeout_ns: u64,
    /// Idle timeout of TCP flows after FIN/RST (IPVS fin_wait 120 s).
    pub tcp_fin_timeout_ns: u64,
    /// Idle timeout of SIP calls (`CALLS`): the time between two SIP
    /// messages of one dialog can be as long as the call (RTP does not go
    /// through it), so this is much longer than the UDP timeout: an hour
    /// by default (RFC 4028 session timers refresh every 30 min).
    pub call_timeout_ns: u64,
}

pub const SEC_NS: u64 = 1_000_000_000;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            udp_timeout_ns: 300 * SEC_NS,
            tcp_timeout_ns: 900 * SEC_NS,
            tcp_fin_timeout_ns: 120 * SEC_NS,
            call_timeout_ns: 3600 * SEC_NS,
        }
    }
}

/// An interface the program forwards out of (value of `IFACES`, key ifindex).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Iface {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> [u8; 16] {
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]
    }

    #[test]
    fn the_vip_filter_never_misses_a_member_and_rules_out_most_other_addresses() {
        let mut f = VipFilter::default();
        let members: [[u8; 16]; 4] = [v4(198, 18, 0, 100), v4(198, 18, 0, 101), v4(10, 0, 0, 1), [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]];
        for m in &members {
            f.insert(m);
        }
        for m in &members {
            assert!(f.may_contain(m), "{m:?} inserted but ruled out");
        }
        // A /16 of other addresses: with 4 of 1,024 bits set, about 0.4 %
        // may pass; the bound is loose, a broken hash passes them all.
        let mut passed = 0u32;
        for c in 0..=255u8 {
            for d in 0..=255u8 {
                let a = v4(198, 19, c, d);
                if f.may_contain(&a) {
                    passed += 1;
                }
            }
        }
        assert!(passed < 65_536 / 50, "{passed} of 65,536 other addresses pass the filter");
        assert!(!VipFilter::default().may_contain(&v4(198, 18, 0, 100)), "an empty filter rules out everything");
        assert!(vip_filter_bit(&v4(255, 255, 255, 255)) < (VIP_FILTER_WORDS * 64) as u32);
    }
}
