//! BFD-style echo (RFC 5880 §6.4) in XDP: the peer's echo request is
//! reflected back with XDP_TX while this node is not fenced, and the
//! returns of this node's own echo requests are recorded per path in
//! `ECHO_RETURNS`. Both are heartbeat-port messages (`heartbeat::Kind`
//! `Echo` / `EchoReply`, same 64-byte layout, director key) that
//! `heartbeat::process` hands over; neither touches `HB_PEERS` or the
//! sequence window. What a return means for liveness is the control
//! plane's business.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::XdpContext};
use tandem_common::{
    heartbeat::{self, Key, Kind, field},
    *,
};

use crate::{
    deadman,
    heartbeat::{Words, authentic, be32, be64, byte, le64},
    maps::{self, count},
    parse::ptr_at,
    stage::{Next, Pkt},
};

/// Reflects an authenticated echo request of `sender` (already looked up
/// by (node id, source), on its interface, MAC verified): swaps the
/// Ethernet and IP addresses and UDP ports, sets kind `EchoReply` and our
/// node id, recomputes the MAC under the same key, clears the UDP
/// checksum, and sends it back (XDP_TX). Fenced or without an echo
/// identity: dropped (`EchoFenced`). IPv4 only (a zero UDP checksum is
/// not allowed over IPv6).
#[inline(never)]
pub fn reflect(raw: *mut aya_ebpf::bindings::xdp_md, pkt: &Pkt, sender: &HbSender) -> Next {
    if sender.kind != Kind::Director as u8 {
        count(Reason::HbUnknownSender);
        return Next::Drop;
    }
    if pkt.family != FAMILY_V4 {
        count(Reason::HbBadField);
        return Next::Drop;
    }
    let Some(id) = maps::ECHO_ID.get(0) else {
        return Next::Drop;
    };
    let me = id.node_id;
    if (me == 0 && id.boot_id == 0) || deadman::fenced() {
        count(Reason::EchoFenced);
        return Next::Drop;
    }
    let ctx = &XdpContext::new(raw);
    let l3 = pkt.l3 & 0x1f;
    let l4 = pkt.l4 & 0xff;
    let (Some(eth), Some(ips), Some(udp), Some(p)) = (
        ptr_at::<[u16; 6]>(ctx, 0),
        ptr_at::<[u16; 4]>(ctx, l3 + 12),
        ptr_at::<[u16; 4]>(ctx, l4),
        ptr_at::<Words>(ctx, l4 + 8),
    ) else {
        return Next::Drop;
    };
    let key = Key { k0: sender.k0, k1: sender.k1 };
    // SAFETY: every pointer bounds checked by ptr_at; all at even offsets.
    unsafe {
        let e = *eth;
        *eth = [e[3], e[4], e[5], e[0], e[1], e[2]];
        // Swapping the addresses leaves the IPv4 header checksum as it is.
        let a = *ips;
        *ips = [a[2], a[3], a[0], a[1]];
        let u = *udp;
        *udp = [u[1], u[0], u[2], 0];
        let w = &mut *p;
        let k = field::KIND / 2;
        w[k] = (w[k] & 0x00ff) | ((Kind::EchoReply as u16) << 8);
        let n = field::NODE_ID.start / 2;
        w[n] = ((me >> 16) as u16).to_be();
        w[n + 1] = (me as u16).to_be();
        let m = [le64(w, 0), le64(w, 8), le64(w, 16), le64(w, 24), le64(w, 32), le64(w, 40), le64(w, 48)];
        let mac = heartbeat::mac_words(&key, &m);
        let i = field::MAC.start / 2;
        w[i] = mac as u16;
        w[i + 1] = (mac >> 16) as u16;
        w[i + 2] = (mac >> 32) as u16;
        w[i + 3] = (mac >> 48) as u16;
    }
    count(Reason::EchoReflected);
    Next::Tx
}

// The reflector's rewrites assume these byte positions.
const _: () = assert!(field::KIND % 2 == 1 && field::NODE_ID.start % 2 == 0 && field::MAC.start % 8 == 0);

/// Records a return of this node's echo request (an `EchoReply` whose
/// length and magic `heartbeat::process` checked): from a configured
/// director sender (the reflector's node id and source address) on its
/// interface, MAC under its key, this node's current echo boot, a path
/// below `ECHO_PATHS` and a sequence above the last recorded for that
/// path. Anything else is `EchoStale` and changes nothing. Always
/// consumed.
#[inline(never)]
pub fn returned(raw: *mut aya_ebpf::bindings::xdp_md, pkt: &Pkt) -> Next {
    if record(raw, pkt) {
        count(Reason::EchoReturned);
    } else {
        count(Reason::EchoStale);
    }
    Next::Drop
}

#[inline(always)]
fn record(raw: *mut aya_ebpf::bindings::xdp_md, pkt: &Pkt) -> bool {
    let ctx = &XdpContext::new(raw);
    let l4 = pkt.l4 & 0xff;
    let Some(p) = ptr_at::<Words>(ctx, l4 + 8) else {
        return false;
    };
    // SAFETY: bounds checked by ptr_at; read in place.
    let w = unsafe { &*p };
    let sender_key = HbSenderKey { node_id: be32(w, field::NODE_ID.start), addr: pkt.src };
    // SAFETY: the map value is only read.
    let Some(sender) = (unsafe { maps::HB_SENDERS.get(&sender_key) }) else {
        return false;
    };
    if sender.kind != Kind::Director as u8
        || (sender.ifindex != 0 && sender.ifindex != ctx.ingress_ifindex() as u32)
        || !authentic(w, sender.k0, sender.k1)
    {
        return false;
    }
    let Some(id) = maps::ECHO_ID.get(0) else {
        return false;
    };
    let boot = be64(w, field::BOOT_ID.start);
    let path = byte(w, field::PATH) as u32;
    if id.boot_id == 0 || boot != id.boot_id || path >= ECHO_PATHS {
        return false;
    }
    let seq = be64(w, field::SEQ.start);
    let Some(slot) = maps::ECHO_RETURNS.get_ptr_mut(path) else {
        return false;
    };
    // SAFETY: slot points to the map value; plain aligned accesses (two
    // CPUs recording the same path at once may lose one count).
    unsafe {
        if seq <= (*slot).seq {
            return false;
        }
        (*slot).seq = seq;
        (*slot).arrived_ns = bpf_ktime_get_ns();
        (*slot).count += 1;
    }
    true
}
