//! The model's parser: a frame read as byte slices, independently of the
//! kernel's `parse`, with the same reasons for what it refuses.

use tandem_common::*;

/// A parsed packet, as the kernel's `parse::Pkt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub l3: usize,
    pub l4: usize,
    pub family: u8,
    pub proto: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    /// The UDP/TCP payload's offset in the frame and length.
    pub payload_off: usize,
    pub payload_len: usize,
}

fn be16(f: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]))
}

/// Parses a frame the way the kernel program does, with the same reasons.
pub fn parse(f: &[u8]) -> Result<Parsed, Reason> {
    let mut ethertype = be16(f, 12).ok_or(Reason::TruncatedEth)?;
    let mut l3 = 14;
    if ethertype == 0x8100 || ethertype == 0x88a8 {
        ethertype = be16(f, 16).ok_or(Reason::TruncatedVlan)?;
        l3 += 4;
        if ethertype == 0x8100 || ethertype == 0x88a8 {
            return Err(Reason::DoubleVlan);
        }
    }
    let (family, proto, src, dst, l4, l4_len) = match ethertype {
        0x0800 => {
            if f.len() < l3 + 20 {
                return Err(Reason::TruncatedIpv4);
            }
            let h = &f[l3..l3 + 20];
            if h[0] >> 4 != 4 {
                return Err(Reason::BadIpv4Header);
            }
            let ihl = (h[0] & 0x0f) as usize * 4;
            if ihl < 20 {
                return Err(Reason::BadIpv4Header);
            }
            let total = u16::from_be_bytes([h[2], h[3]]) as usize;
            if total < ihl || l3 + total > f.len() {
                return Err(Reason::BadIpv4Length);
            }
            if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
                return Err(Reason::Ipv4Fragment);
            }
            let proto = h[9];
            if proto != PROTO_UDP && proto != PROTO_TCP {
                return Err(Reason::NotUdpTcp);
            }
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src[10..12].copy_from_slice(&[0xff, 0xff]);
            dst[10..12].copy_from_slice(&[0xff, 0xff]);
            src[12..].copy_from_slice(&h[12..16]);
            dst[12..].copy_from_slice(&h[16..20]);
            (FAMILY_V4, proto, src, dst, l3 + ihl, total - ihl)
        }
        0x86dd => {
            if f.len() < l3 + 40 {
                return Err(Reason::TruncatedIpv6);
            }
            let h = &f[l3..l3 + 40];
            if h[0] >> 4 != 6 {
                return Err(Reason::BadIpv6Header);
            }
            let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
            if l3 + 40 + payload > f.len() {
                return Err(Reason::BadIpv6Length);
            }
            let next = h[6];
            match next {
                PROTO_UDP | PROTO_TCP => {}
                44 => return Err(Reason::Ipv6Fragment),
                0 | 43 | 50 | 51 | 60 | 135 | 139 | 140 => return Err(Reason::Ipv6ExtHeader),
                _ => return Err(Reason::NotUdpTcp),
            }
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&h[8..24]);
            dst.copy_from_slice(&h[24..40]);
            (FAMILY_V6, next, src, dst, l3 + 40, payload)
        }
        0x0806 => return Err(Reason::Arp),
        _ => return Err(Reason::NotIp),
    };
    let sport = be16(f, l4).ok_or(Reason::TruncatedL4)?;
    let dport = be16(f, l4 + 2).ok_or(Reason::TruncatedL4)?;
    let mut tcp_flags = 0;
    let (payload_off, payload_len);
    if proto == PROTO_UDP {
        let ulen = be16(f, l4 + 4).ok_or(Reason::TruncatedL4)? as usize;
        be16(f, l4 + 6).ok_or(Reason::TruncatedL4)?;
        if l4_len < 8 {
            return Err(Reason::TruncatedL4);
        }
        if ulen < 8 || ulen > l4_len {
            return Err(Reason::BadUdpLength);
        }
        (payload_off, payload_len) = (l4 + 8, ulen - 8);
    } else {
        let off = *f.get(l4 + 12).ok_or(Reason::TruncatedL4)?;
        tcp_flags = *f.get(l4 + 13).ok_or(Reason::TruncatedL4)?;
        be16(f, l4 + 18).ok_or(Reason::TruncatedL4)?;
        if l4_len < 20 {
            return Err(Reason::TruncatedL4);
        }
        let doff = (off >> 4) as usize * 4;
        if doff < 20 || doff > l4_len {
            return Err(Reason::BadTcpHeader);
        }
        (payload_off, payload_len) = (l4 + doff, l4_len - doff);
    }
    Ok(Parsed {
        l3,
        l4,
        family,
        proto,
        src,
        dst,
        sport,
        dport,
        tcp_flags,
        payload_off,
        payload_len,
    })
}
