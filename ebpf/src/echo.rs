//! BFD-style echo (RFC 5880 §6.4) in the kernel, both halves:
//!
//! - **Reflecting** the peer's echo requests: a datagram to the heartbeat
//!   port that is exactly one heartbeat message of kind `Echo`, from a
//!   configured director sender (its node id and source address in
//!   `HB_SENDERS`, on its path's interface), is sent back out (XDP_TX)
//!   with the Ethernet, IPv4 and UDP source and destination swapped and
//!   the payload untouched — while this node's dead-man switch is not
//!   tripped. A fenced node drops it: a hung daemon stops proving its
//!   node alive within the dead-man budget. The MAC is not checked here
//!   (cheap); only frames of exact length from the configured peer are
//!   reflected, never anything else, and the reply is no larger than the
//!   request (no amplifier).
//! - **Taking back** this node's own echoes: a datagram from the heartbeat
//!   port carrying this node's id (`ECHO_CONFIG`), from the peer's
//!   configured address, authentic under the peer entry's key (its
//!   current or, during a rotation, its next one), on a path below
//!   `MAX_ECHO_PATHS`, is recorded in `ECHO_RETURNS` if its sequence is
//!   newer than the path's last, and consumed.
//!
//! Swapping addresses and ports keeps the IPv4 header checksum and the UDP
//! checksum valid (both are one's-complement sums, independent of the
//! order of their 16-bit words), and the TTL is left as it came, so no
//! checksum is recomputed. Every refusal is counted and changes no map.
//! What a returned echo means for the pair is the control plane's
//! business.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::XdpContext};
use tandem_common::{
    heartbeat::{self, Kind, field},
    *,
};

use crate::{
    heartbeat::{Words, authentic_for, be32, be64, byte},
    maps::{self, count},
    parse::ptr_at,
    stage::{Next, Pkt},
};

/// Handles an echo to or from the heartbeat port `port`: the verdict, or
/// None if the datagram is not an echo (the caller goes on with it: a
/// heartbeat, or ordinary traffic).
#[inline(never)]
pub fn process(raw: *mut aya_ebpf::bindings::xdp_md, pkt: &Pkt, port: u16) -> Option<Next> {
    let ctx = &XdpContext::new(raw);
    let l4 = pkt.l4 & 0xff;
    let ulen = match ptr_at::<u16>(ctx, l4 + 4) {
        // SAFETY: bounds checked by ptr_at.
        Some(p) => u16::from_be(unsafe { *p }) as usize,
        None => return None,
    };
    if ulen != 8 + heartbeat::LEN {
        return None;
    }
    let p = ptr_at::<Words>(ctx, l4 + 8)?;
    // SAFETY: bounds checked by ptr_at; payload at an even offset.
    let w = unsafe { &*p };
    let magic = field::MAGIC.start / 2;
    if w[magic] != u16::from_ne_bytes([heartbeat::MAGIC[0], heartbeat::MAGIC[1]])
        || w[magic + 1] != u16::from_ne_bytes([heartbeat::MAGIC[2], heartbeat::MAGIC[3]])
        || byte(w, field::VERSION) != heartbeat::VERSION
        || byte(w, field::KIND) != Kind::Echo as u8
    {
        return None;
    }
    let node_id = be32(w, field::NODE_ID.start);
    let me = match maps::ECHO_CONFIG.get(0) {
        Some(c) => *c,
        None => EchoConfig::default(),
    };
    if pkt.family != FAMILY_V4 {
        count(Reason::EchoBadReply);
        return Some(Next::Drop);
    }
    if pkt.sport == port && me.node_id != 0 && node_id == me.node_id {
        return Some(returned(pkt, w, me.peer_id));
    }
    if pkt.dport == port {
        return Some(reflect(ctx, pkt, node_id));
    }
    count(Reason::EchoBadReply);
    Some(Next::Drop)
}

/// Reflects the peer's echo request in place, unless it is not the
/// configured peer's or this node is fenced.
#[inline(always)]
fn reflect(ctx: &XdpContext, pkt: &Pkt, node_id: u32) -> Next {
    let key = HbSenderKey { node_id, addr: pkt.src };
    // SAFETY: the map value is only read, field by field.
    let Some(sender) = (unsafe { maps::HB_SENDERS.get(&key) }) else {
        count(Reason::EchoNotPeer);
        return Next::Drop;
    };
    let ifindex = ctx.ingress_ifindex() as u32;
    if sender.kind != Kind::Director as u8 || (sender.ifindex != 0 && sender.ifindex != ifindex) {
        count(Reason::EchoNotPeer);
        return Next::Drop;
    }
    if crate::deadman::fenced() {
        count(Reason::EchoFenced);
        return Next::Drop;
    }
    let l3 = pkt.l3 & 0x1f;
    let l4 = pkt.l4 & 0xff;
    let (Some(eth), Some(ip), Some(udp)) = (ptr_at::<[u16; 6]>(ctx, 0), ptr_at::<[u16; 4]>(ctx, l3 + 12), ptr_at::<[u16; 2]>(ctx, l4))
    else {
        count(Reason::EchoBadReply);
        return Next::Drop;
    };
    // SAFETY: bounds checked by ptr_at; halfword accesses at even offsets.
    unsafe {
        let e = *eth;
        *eth = [e[3], e[4], e[5], e[0], e[1], e[2]];
        let a = *ip;
        *ip = [a[2], a[3], a[0], a[1]];
        let u = *udp;
        *udp = [u[1], u[0]];
    }
    count(Reason::EchoReflected);
    Next::Tx
}

/// Takes back one of this node's echoes: verified, recorded if newer,
/// always consumed.
#[inline(always)]
fn returned(pkt: &Pkt, w: &Words, peer_id: u32) -> Next {
    let key = HbSenderKey { node_id: peer_id, addr: pkt.src };
    // SAFETY: the map value is only read, field by field.
    let Some(sender) = (unsafe { maps::HB_SENDERS.get(&key) }) else {
        count(Reason::EchoBadReply);
        return Next::Drop;
    };
    if !authentic_for(w, sender) {
        count(Reason::EchoBadMac);
        return Next::Drop;
    }
    let path = byte(w, field::PATH) as u32;
    if path >= MAX_ECHO_PATHS {
        count(Reason::EchoBadReply);
        return Next::Drop;
    }
    let seq = be64(w, field::SEQ.start);
    let Some(r) = maps::ECHO_RETURNS.get_ptr_mut(path) else {
        count(Reason::EchoBadReply);
        return Next::Drop;
    };
    // SAFETY: r points to the path's map value; plain 64-bit accesses.
    unsafe {
        if seq <= (*r).seq {
            count(Reason::EchoStale);
            return Next::Drop;
        }
        (*r).seq = seq;
        (*r).at_ns = bpf_ktime_get_ns();
        (*r).count += 1;
    }
    count(Reason::EchoReturned);
    Next::Drop
}
