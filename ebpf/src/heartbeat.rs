//! Heartbeats, detected and verified in the kernel: a UDP datagram to the
//! heartbeat port must be exactly one message, carry the right magic, a
//! valid SipHash-2-4 MAC, a configured sender and a sequence number above
//! the last one seen from that sender on that interface. Then its time of
//! arrival, sequence, state, epoch, priority and load are recorded in
//! `HB_PEERS`, a change of state is pushed to `HB_EVENTS`, and the packet
//! is consumed. Every refusal is counted and changes nothing.
//!
//! Also here: answering ARP requests for the VIPs this node owns.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::XdpContext};
use tandem_common::{
    heartbeat::{self, Key},
    *,
};

use crate::{
    maps::{self, count},
    parse::{Pkt, ptr_at},
};

/// Is this packet for the heartbeat port? (Returns the config if so.)
#[inline(always)]
pub fn is_heartbeat(pkt: &Pkt) -> Option<&'static HbConfig> {
    if pkt.proto != PROTO_UDP {
        return None;
    }
    let cfg = maps::HB_CONFIG.get(0)?;
    if cfg.port != 0 && cfg.port == pkt.dport { Some(cfg) } else { None }
}

#[inline(always)]
fn word(w: &[u16; 28], i: usize) -> u64 {
    // Little-endian u64 from four native (little-endian) halfwords.
    (w[i * 4] as u64) | (w[i * 4 + 1] as u64) << 16 | (w[i * 4 + 2] as u64) << 32 | (w[i * 4 + 3] as u64) << 48
}

#[inline(always)]
fn be32(w: &[u16; 28], half: usize) -> u32 {
    ((u16::from_be(w[half]) as u32) << 16) | u16::from_be(w[half + 1]) as u32
}

#[inline(always)]
fn be64(w: &[u16; 28], half: usize) -> u64 {
    ((be32(w, half) as u64) << 32) | be32(w, half + 2) as u64
}

/// Verifies and records a heartbeat; always consumes the packet.
#[inline(never)]
pub fn process(raw: *mut aya_ebpf::bindings::xdp_md, pkt: &Pkt, cfg: &HbConfig) -> u32 {
    let ctx = &XdpContext::new(raw);
    let l4 = pkt.l4 & 0xff;
    let ulen = match ptr_at::<u16>(ctx, l4 + 4) {
        // SAFETY: bounds checked by ptr_at.
        Some(p) => u16::from_be(unsafe { *p }) as usize,
        None => 0,
    };
    if ulen != 8 + heartbeat::LEN {
        count(Reason::HbBadLength);
        return XDP_DROP;
    }
    let Some(p) = ptr_at::<[u16; 28]>(ctx, l4 + 8) else {
        count(Reason::HbBadLength);
        return XDP_DROP;
    };
    // SAFETY: bounds checked by ptr_at; payload at an even offset.
    let w = unsafe { *p };
    // Magic "TNDM", version 1.
    if w[0] != u16::from_ne_bytes([b'T', b'N']) || w[1] != u16::from_ne_bytes([b'D', b'M']) || (w[2] & 0xff) as u8 != heartbeat::VERSION {
        count(Reason::HbBadMagic);
        return XDP_DROP;
    }
    let key = Key { k0: cfg.k0, k1: cfg.k1 };
    let m = [word(&w, 0), word(&w, 1), word(&w, 2), word(&w, 3), word(&w, 4), word(&w, 5)];
    if heartbeat::mac_words(&key, &m) != word(&w, 6) {
        count(Reason::HbBadMac);
        return XDP_DROP;
    }
    let kind = (w[2] >> 8) as u8;
    let state = (w[3] & 0xff) as u8;
    let priority = (w[3] >> 8) as u8;
    if heartbeat::Kind::from_u8(kind).is_none() || node::NodeState::from_u8(state).is_none() {
        count(Reason::HbBadField);
        return XDP_DROP;
    }
    let node_id = be32(&w, 4);
    // SAFETY: the value is copied out at once.
    match unsafe { maps::HB_NODES.get(&node_id) } {
        Some(k) if *k == kind as u32 => {}
        _ => {
            count(Reason::HbUnknownSender);
            return XDP_DROP;
        }
    }
    let path = (w[6] & 0xff) as u8;
    let epoch = be64(&w, 8);
    let seq = be64(&w, 12);
    let sent_ns = be64(&w, 16);
    let active_channels = be32(&w, 20);
    let capacity = be32(&w, 22);
    let ifindex = ctx.ingress_ifindex() as u32;
    let key = HbPeerKey { node_id, ifindex };
    // SAFETY: bpf_ktime_get_ns takes no arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let rec = HbPeer {
        last_seen_ns: now,
        seq,
        epoch,
        sent_ns,
        node_id,
        ifindex,
        active_channels,
        capacity,
        state,
        priority,
        kind,
        path,
        _pad: 0,
    };
    let changed = match maps::HB_PEERS.get_ptr_mut(&key) {
        Some(old) => {
            // SAFETY: old points to the map value.
            let o = unsafe { *old };
            if seq <= o.seq {
                count(Reason::HbReplay);
                return XDP_DROP;
            }
            // SAFETY: as above.
            unsafe { *old = rec };
            o.state != state || o.epoch != epoch || o.priority != priority
        }
        None => {
            if maps::HB_PEERS.insert(&key, &rec, 0).is_err() {
                count(Reason::HbUnknownSender);
                return XDP_DROP;
            }
            true
        }
    };
    if changed {
        let _ = maps::HB_EVENTS.output::<HbPeer>(&rec, 0);
    }
    count(Reason::HbAccepted);
    XDP_DROP
}

/// Answers an ARP request for an owned VIP in place (XDP_TX), or passes.
#[inline(never)]
pub fn arp(raw: *mut aya_ebpf::bindings::xdp_md) -> u32 {
    let ctx = &XdpContext::new(raw);
    let Some(et) = ptr_at::<u16>(ctx, 12) else {
        return XDP_PASS;
    };
    // SAFETY: bounds checked by ptr_at.
    let a = if u16::from_be(unsafe { *et }) == 0x0806 { 14 } else { 18 };
    // htype, ptype, hlen/plen, oper, sha(3), spa(2), tha(3), tpa(2): 14 words.
    let Some(p) = ptr_at::<[u16; 14]>(ctx, a) else {
        count(Reason::Arp);
        return XDP_PASS;
    };
    // SAFETY: bounds checked by ptr_at.
    let w = unsafe { *p };
    if u16::from_be(w[0]) != 1 || u16::from_be(w[1]) != 0x0800 || u16::from_be(w[2]) != 0x0604 || u16::from_be(w[3]) != 1 {
        count(Reason::Arp);
        return XDP_PASS;
    }
    // SAFETY: [u16; 2] and u32 have the same size.
    let tpa: u32 = unsafe { core::mem::transmute::<[u16; 2], u32>([w[12], w[13]]) };
    // SAFETY: the value is copied out at once.
    let Some(own) = (unsafe { maps::OWNED_VIPS.get(&tpa) }).copied() else {
        count(Reason::Arp);
        return XDP_PASS;
    };
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
    XDP_TX
}
