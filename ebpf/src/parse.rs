//! Header parsing: Ethernet (+ one 802.1Q tag), IPv4 (with options),
//! IPv6 (no extension headers), UDP, TCP, into the pipeline's scratch
//! [`Pkt`](crate::stage::Pkt). Every read goes through [`ptr_at`], which
//! checks the bounds the verifier wants; every malformed or unsupported
//! frame comes back as `Err(Reason)` and is passed. It decides nothing
//! beyond what the headers say.

use aya_ebpf::programs::XdpContext;
use tandem_common::{FAMILY_V4, FAMILY_V6, PROTO_TCP, PROTO_UDP, Reason};

use crate::stage::Pkt;

pub const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// A pointer to a `T` at `offset` in the frame, or `None` if the frame is
/// too short.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// A big-endian 16-bit field at an even offset (frames start 2-byte aligned).
#[inline(always)]
fn read_u16(ctx: &XdpContext, offset: usize) -> Option<u16> {
    let p = ptr_at::<u16>(ctx, offset)?;
    // SAFETY: bounds checked by ptr_at.
    Some(u16::from_be(unsafe { *p }))
}

#[inline(always)]
fn read_u8(ctx: &XdpContext, offset: usize) -> Option<u8> {
    let p = ptr_at::<u8>(ctx, offset)?;
    // SAFETY: bounds checked by ptr_at.
    Some(unsafe { *p })
}

/// Parses the frame up to the transport ports into `out`.
#[inline(always)]
pub fn parse(ctx: &XdpContext, out: &mut Pkt) -> Result<(), Reason> {
    *out = parse_frame(ctx)?;
    Ok(())
}

#[inline(always)]
fn parse_frame(ctx: &XdpContext) -> Result<Pkt, Reason> {
    let frame_len = ctx.data_end() - ctx.data();
    let mut proto = read_u16(ctx, 12).ok_or(Reason::TruncatedEth)?;
    let mut l3 = ETH_HLEN;
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        proto = read_u16(ctx, 16).ok_or(Reason::TruncatedVlan)?;
        l3 += 4;
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            return Err(Reason::DoubleVlan);
        }
    }
    match proto {
        ETH_P_IP => parse_ipv4(ctx, l3, frame_len),
        ETH_P_IPV6 => parse_ipv6(ctx, l3, frame_len),
        ETH_P_ARP => Err(Reason::Arp),
        _ => Err(Reason::NotIp),
    }
}

/// Reads `N` 16-bit words (native order) at `offset`: addresses are
/// loaded as halfwords, not byte by byte. Frames start 2-byte aligned
/// (XDP headroom), and every IP address sits at an even offset.
#[inline(always)]
fn words<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<[u16; N]> {
    let p = ptr_at::<[u16; N]>(ctx, offset)?;
    // SAFETY: bounds checked by ptr_at; alignment as documented above.
    Some(unsafe { *p })
}

/// The IPv4-mapped IPv6 form of an IPv4 address given as two words.
#[inline(always)]
fn mapped(w: [u16; 2]) -> [u8; 16] {
    // SAFETY: [u16; 8] and [u8; 16] have the same size; any bits are valid.
    unsafe { core::mem::transmute::<[u16; 8], [u8; 16]>([0, 0, 0, 0, 0, 0xffff, w[0], w[1]]) }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, l3: usize, frame_len: usize) -> Result<Pkt, Reason> {
    // Version/IHL, TOS, total length, id, flags/fragment offset, TTL, protocol.
    let hdr = words::<10>(ctx, l3).ok_or(Reason::TruncatedIpv4)?;
    let vihl = (u16::from_be(hdr[0]) >> 8) as u8;
    if vihl >> 4 != 4 {
        return Err(Reason::BadIpv4Header);
    }
    let ihl = ((vihl & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(Reason::BadIpv4Header);
    }
    let total = u16::from_be(hdr[1]) as usize;
    if total < ihl || l3 + total > frame_len {
        return Err(Reason::BadIpv4Length);
    }
    if u16::from_be(hdr[3]) & 0x3fff != 0 {
        return Err(Reason::Ipv4Fragment);
    }
    let proto = (u16::from_be(hdr[4]) & 0xff) as u8;
    if proto != PROTO_UDP && proto != PROTO_TCP {
        return Err(Reason::NotUdpTcp);
    }
    let src = mapped([hdr[6], hdr[7]]);
    let dst = mapped([hdr[8], hdr[9]]);
    let l4 = l3 + ihl;
    parse_l4(ctx, l3, l4, total - ihl, FAMILY_V4, proto, src, dst)
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, l3: usize, frame_len: usize) -> Result<Pkt, Reason> {
    let hdr = words::<4>(ctx, l3).ok_or(Reason::TruncatedIpv6)?;
    let addrs = words::<16>(ctx, l3 + 8).ok_or(Reason::TruncatedIpv6)?;
    if (u16::from_be(hdr[0]) >> 12) != 6 {
        return Err(Reason::BadIpv6Header);
    }
    let payload = u16::from_be(hdr[2]) as usize;
    if l3 + 40 + payload > frame_len {
        return Err(Reason::BadIpv6Length);
    }
    let next = (u16::from_be(hdr[3]) >> 8) as u8;
    match next {
        PROTO_UDP | PROTO_TCP => {}
        44 => return Err(Reason::Ipv6Fragment),
        0 | 43 | 50 | 51 | 60 | 135 | 139 | 140 => return Err(Reason::Ipv6ExtHeader),
        _ => return Err(Reason::NotUdpTcp),
    }
    // SAFETY: [u16; 16] and [[u8; 16]; 2] have the same size; any bits are valid.
    let [src, dst] = unsafe { core::mem::transmute::<[u16; 16], [[u8; 16]; 2]>(addrs) };
    parse_l4(ctx, l3, l3 + 40, payload, FAMILY_V6, next, src, dst)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn parse_l4(
    ctx: &XdpContext,
    l3: usize,
    l4: usize,
    l4_len: usize,
    family: u8,
    proto: u8,
    src: [u8; 16],
    dst: [u8; 16],
) -> Result<Pkt, Reason> {
    // Keep the offset provably small for the verifier (l3 <= 18, IHL <= 60).
    let l4 = l4 & 0xff;
    let sport = read_u16(ctx, l4).ok_or(Reason::TruncatedL4)?;
    let dport = read_u16(ctx, l4 + 2).ok_or(Reason::TruncatedL4)?;
    let mut tcp_flags = 0;
    let payload_off;
    let payload_len;
    if proto == PROTO_UDP {
        let ulen = read_u16(ctx, l4 + 4).ok_or(Reason::TruncatedL4)? as usize;
        read_u16(ctx, l4 + 6).ok_or(Reason::TruncatedL4)?;
        if l4_len < 8 {
            return Err(Reason::TruncatedL4);
        }
        if ulen < 8 || ulen > l4_len {
            return Err(Reason::BadUdpLength);
        }
        payload_off = l4 + 8;
        payload_len = ulen - 8;
    } else {
        let off = read_u8(ctx, l4 + 12).ok_or(Reason::TruncatedL4)?;
        tcp_flags = read_u8(ctx, l4 + 13).ok_or(Reason::TruncatedL4)?;
        read_u16(ctx, l4 + 18).ok_or(Reason::TruncatedL4)?;
        if l4_len < 20 {
            return Err(Reason::TruncatedL4);
        }
        let doff = ((off >> 4) as usize) * 4;
        if doff < 20 || doff > l4_len {
            return Err(Reason::BadTcpHeader);
        }
        payload_off = l4 + doff;
        payload_len = l4_len - doff;
    }
    Ok(Pkt {
        l3,
        l4,
        family,
        proto,
        src,
        dst,
        sport,
        dport,
        tcp_flags,
        service_id: 0,
        now: 0,
        payload_off,
        payload_len,
        port_flags: 0,
        sip_mode: 0,
        real_idx: 0,
        _pad: 0,
        call_hash: 0,
    })
}
