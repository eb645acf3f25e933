//! Rewriting and sending: DR (MAC rewrite) and NAT (destination address
//! and port with incremental checksums), the reverse NAT rewrite of replies,
//! and the choice between XDP_TX and a devmap redirect. The last step of
//! every stage that sends a frame; it chooses no real server and keeps no
//! connection state (beyond the NAT reverse entry it is told to record).

use aya_ebpf::{bindings::xdp_md, programs::XdpContext};
use tandem_common::{csum, *};

use crate::{
    maps::{self, add, count},
    parse::ptr_at,
    stage::{Next, Pkt},
};

/// Rewrites the Ethernet addresses and sends the frame out of `ifindex`
/// (0 or the ingress interface: XDP_TX).
#[inline(always)]
fn send(ctx: &XdpContext, ifindex: u32, dst_mac: [u8; 6]) -> Next {
    // The MACs as 16-bit words: frames start 2-byte aligned.
    let Some(eth) = ptr_at::<[u16; 6]>(ctx, 0) else {
        return Next::Pass;
    };
    // SAFETY: bounds checked by ptr_at.
    let old = unsafe { *eth };
    let ingress = ctx.ingress_ifindex() as u32;
    let same = ifindex == 0 || ifindex == ingress;
    let mut src = [old[0], old[1], old[2]];
    if !same {
        // SAFETY: the value is copied out at once.
        if let Some(i) = unsafe { maps::IFACES.get(&ifindex) } {
            src = mac_words(i.mac);
        }
    }
    let dst = mac_words(dst_mac);
    // SAFETY: bounds checked by ptr_at.
    unsafe { *eth = [dst[0], dst[1], dst[2], src[0], src[1], src[2]] };
    if same {
        return Next::Tx;
    }
    match maps::TX_PORTS.redirect(ifindex, 0) {
        // The helper's only success value is XDP_REDIRECT.
        Ok(_) => Next::Redirect,
        Err(_) => {
            count(Reason::RedirectFailed);
            Next::Drop
        }
    }
}

#[inline(always)]
fn mac_words(mac: [u8; 6]) -> [u16; 3] {
    // SAFETY: same size, any bits valid.
    unsafe { core::mem::transmute::<[u8; 6], [u16; 3]>(mac) }
}

// Header fields are read and written as 16-bit words (all at even offsets).
#[inline(always)]
fn read16(ctx: &XdpContext, off: usize) -> Option<u16> {
    let p = ptr_at::<u16>(ctx, off)?;
    // SAFETY: bounds checked by ptr_at.
    Some(u16::from_be(unsafe { *p }))
}

#[inline(always)]
fn write16(ctx: &XdpContext, off: usize, v: u16) {
    if let Some(p) = ptr_at::<u16>(ctx, off) {
        // SAFETY: bounds checked by ptr_at.
        unsafe { *p = v.to_be() };
    }
}

/// Rewrites one address (source or destination) and one port of the
/// packet, fixing the IPv4 header and UDP/TCP checksums incrementally.
#[inline(always)]
fn rewrite(ctx: &XdpContext, pkt: &Pkt, dest: bool, new_addr: &[u8; 16], new_port: u16) {
    let l3 = pkt.l3 & 0x1f;
    let l4 = pkt.l4 & 0xff;
    let old_addr = if dest { &pkt.dst } else { &pkt.src };
    let old_port = if dest { pkt.dport } else { pkt.sport };
    let csum_off = if pkt.proto == PROTO_UDP {
        l4 + 6
    } else {
        l4 + 16
    };
    let Some(old_l4csum) = read16(ctx, csum_off) else {
        return;
    };
    let skip_l4 = pkt.proto == PROTO_UDP && pkt.family == FAMILY_V4 && old_l4csum == 0;
    let mut l4csum = old_l4csum;
    if pkt.family == FAMILY_V4 {
        let o = [old_addr[12], old_addr[13], old_addr[14], old_addr[15]];
        let n = [new_addr[12], new_addr[13], new_addr[14], new_addr[15]];
        let aoff = if dest { l3 + 16 } else { l3 + 12 };
        let Some(ipc) = read16(ctx, l3 + 10) else {
            return;
        };
        write16(ctx, l3 + 10, csum::replace32(ipc, o, n));
        if let Some(p) = ptr_at::<[u16; 2]>(ctx, aoff) {
            // SAFETY: bounds checked by ptr_at; same size, any bits valid.
            unsafe { *p = core::mem::transmute::<[u8; 4], [u16; 2]>(n) };
        }
        if !skip_l4 {
            l4csum = csum::replace32(l4csum, o, n);
        }
    } else {
        let aoff = if dest { l3 + 24 } else { l3 + 8 };
        if let Some(p) = ptr_at::<[u16; 8]>(ctx, aoff) {
            // SAFETY: bounds checked by ptr_at; same size, any bits valid.
            unsafe { *p = core::mem::transmute::<[u8; 16], [u16; 8]>(*new_addr) };
        }
        l4csum = csum::replace128(l4csum, old_addr, new_addr);
    }
    if new_port != old_port {
        write16(ctx, if dest { l4 + 2 } else { l4 }, new_port);
        if !skip_l4 {
            l4csum = csum::replace16(l4csum, old_port, new_port);
        }
    }
    if !skip_l4 {
        if pkt.proto == PROTO_UDP {
            l4csum = csum::udp_fixup(l4csum);
        }
        write16(ctx, csum_off, l4csum);
    }
}

/// `forward` option: count a new flow (and, NAT, record the reverse entry).
pub const FWD_NEW: u32 = 1;
/// `forward` option (NAT): record the reverse entry of this 5-tuple (a SIP
/// call's message from a new source port or address).
pub const FWD_REVERSE: u32 = 2;

/// Forwards a packet of a flow of `svc` to its real server `real_idx`.
/// A separate BPF function (as is `reverse_nat`) to keep the stack small.
#[inline(never)]
pub fn forward(raw: *mut xdp_md, pkt: &Pkt, svc: &Service, real_idx: u32, how: u32) -> Next {
    let new_flow = how & FWD_NEW != 0;
    let ctx = &XdpContext::new(raw);
    let slot = svc.id * MAX_REALS + real_idx;
    let real: &RealServer = match maps::REALS.get(slot) {
        Some(r) => r,
        None => {
            count(Reason::BadServiceConfig);
            return Next::Pass;
        }
    };
    let bytes = (ctx.data_end() - ctx.data()) as u64;
    add(&maps::SERVICE_STATS, svc.id, bytes, new_flow);
    add(&maps::REAL_STATS, slot, bytes, new_flow);
    if svc.forward == Forward::Nat as u8 {
        let port = if real.port != 0 { real.port } else { pkt.dport };
        rewrite(ctx, pkt, true, &real.addr, port);
        if how & (FWD_NEW | FWD_REVERSE) != 0 {
            let rkey = FlowKey::new(real.addr, pkt.src, port, pkt.sport, pkt.proto);
            let rev = NatReverse {
                service_id: svc.id,
                real_idx,
            };
            let _ = maps::NAT_REVERSE.insert(&rkey, &rev, 0);
        }
        count(Reason::ForwardNat);
    } else {
        count(Reason::ForwardDr);
    }
    send(ctx, real.ifindex, real.mac)
}

/// A packet that matched no service: if it is a reply of a NAT flow, give
/// it the VIP back as its source and send it toward the client.
#[inline(never)]
pub fn reverse_nat(raw: *mut xdp_md, pkt: &Pkt) -> Next {
    let ctx = &XdpContext::new(raw);
    match maps::GLOBALS.get(0) {
        Some(g) if g.nat_services > 0 => {}
        _ => {
            count(Reason::NotService);
            return Next::Pass;
        }
    }
    let rkey = FlowKey::new(pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.proto);
    // SAFETY: the value is copied out at once.
    let rev = match unsafe { maps::NAT_REVERSE.get(&rkey) } {
        Some(r) => *r,
        None => {
            count(Reason::NotService);
            return Next::Pass;
        }
    };
    let svc: &Service = match maps::SERVICE_CONF.get(rev.service_id) {
        Some(s)
            if s.id == rev.service_id
                && s.key.family == pkt.family
                && s.forward == Forward::Nat as u8 =>
        {
            s
        }
        _ => {
            count(Reason::BadServiceConfig);
            return Next::Pass;
        }
    };
    rewrite(ctx, pkt, false, &svc.key.addr, svc.key.port);
    count(Reason::ReverseNat);
    send(ctx, svc.client_ifindex, svc.gateway_mac)
}
