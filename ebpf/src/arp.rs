//! Answering ARP requests for the VIPs this node owns (`OWNED_VIPS`), in
//! place, so that a takeover needs no address on the interface; anything
//! else ARP is passed to the stack. It owns no other protocol.

use aya_ebpf::programs::XdpContext;
use tandem_common::*;

use crate::{
    maps::{self, count},
    parse::ptr_at,
    stage::Next,
};

/// Answers an ARP request for an owned VIP in place (XDP_TX), or passes.
#[inline(never)]
pub fn arp(raw: *mut aya_ebpf::bindings::xdp_md) -> Next {
    let ctx = &XdpContext::new(raw);
    let Some(et) = ptr_at::<u16>(ctx, 12) else {
        return Next::Pass;
    };
    // SAFETY: bounds checked by ptr_at.
    let a = if u16::from_be(unsafe { *et }) == 0x0806 { 14 } else { 18 };
    // htype, ptype, hlen/plen, oper, sha(3), spa(2), tha(3), tpa(2): 14 words.
    let Some(p) = ptr_at::<[u16; 14]>(ctx, a) else {
        count(Reason::Arp);
        return Next::Pass;
    };
    // SAFETY: bounds checked by ptr_at.
    let w = unsafe { *p };
    if u16::from_be(w[0]) != 1 || u16::from_be(w[1]) != 0x0800 || u16::from_be(w[2]) != 0x0604 || u16::from_be(w[3]) != 1 {
        count(Reason::Arp);
        return Next::Pass;
    }
    // SAFETY: [u16; 2] and u32 have the same size.
    let tpa: u32 = unsafe { core::mem::transmute::<[u16; 2], u32>([w[12], w[13]]) };
    // SAFETY: the value is copied out at once.
    let Some(own) = (unsafe { maps::OWNED_VIPS.get(&tpa) }).copied() else {
        count(Reason::Arp);
        return Next::Pass;
    };
    if crate::deadman::fenced() {
        // A hung daemon's node must not keep the VIP: no answer at all.
        count(Reason::DeadManArp);
        return Next::Drop;
    }
    // SAFETY: same size, any bits valid.
    let mac: [u16; 3] = unsafe { core::mem::transmute::<[u8; 6], [u16; 3]>(own.mac) };
    let reply: [u16; 14] = [
        w[0], w[1], w[2], 2u16.to_be(),
        mac[0], mac[1], mac[2], w[12], w[13], // sha = our MAC, spa = the VIP
        w[4], w[5], w[6], w[7], w[8], // tha = requester's MAC, tpa = its address
    ];
    // SAFETY: bounds checked by ptr_at above.
    unsafe { *p = reply };
    if let Some(eth) = ptr_at::<[u16; 6]>(ctx, 0) {
        // SAFETY: bounds checked by ptr_at.
        unsafe { *eth = [w[4], w[5], w[6], mac[0], mac[1], mac[2]] };
    }
    count(Reason::ArpReply);
    Next::Tx
}
