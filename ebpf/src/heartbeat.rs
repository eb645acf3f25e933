//! Heartbeats, detected and verified in the kernel: a UDP datagram to the
//! heartbeat port must be exactly one message with the right magic and
//! version, from a configured sender — its (node id, source address) in
//! `HB_SENDERS` — on that sender's interface, authenticated with that
//! sender's own key — its current one or, during a key rotation, its next
//! one (so an IVR's key cannot speak as a director or as another IVR), of
//! the sender's kind, and admitted by the sequence window
//! (`tandem_common::heartbeat::window::admit`: same boot and a sequence
//! just above the last, or a restarted boot). Then its time of arrival,
//! boot, sequence, state, epoch, priority and load are recorded in
//! `HB_PEERS`, a change is pushed to `HB_EVENTS`, and the packet is
//! consumed. Every refusal is counted by reason and changes nothing.
//!
//! The message's layout is `tandem_common::heartbeat`'s: every index here
//! is derived from its byte offsets (`heartbeat::field`), never written
//! out. What a heartbeat means for the pair is the control plane's
//! business, not this module's.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::XdpContext};
use tandem_common::{
    heartbeat::{self, Key, Reject, Window, field},
    *,
};

use crate::{
    maps::{self, count},
    parse::ptr_at,
    stage::{Next, Pkt},
};

/// Is this UDP packet to or from the heartbeat port? (Returns the config
/// if so: to the port, a heartbeat or an echo request; from it, maybe a
/// returning echo.)
#[inline(always)]
pub fn heartbeat_port(pkt: &Pkt) -> Option<&'static HbConfig> {
    if pkt.proto != PROTO_UDP {
        return None;
    }
    let cfg = maps::HB_CONFIG.get(0)?;
    if cfg.port != 0 && (cfg.port == pkt.dport || cfg.port == pkt.sport) { Some(cfg) } else { None }
}

/// The message as native (little-endian) 16-bit words: it sits at an
/// even offset of the frame, so it is loaded as halfwords. The accessors
/// below take the byte offsets of `heartbeat::field` and fold to constant
/// indices.
pub type Words = [u16; heartbeat::LEN / 2];

/// The byte at offset `off`.
#[inline(always)]
pub fn byte(w: &Words, off: usize) -> u8 {
    if off % 2 == 0 { (w[off / 2] & 0xff) as u8 } else { (w[off / 2] >> 8) as u8 }
}

/// The little-endian u64 at `off` (a multiple of 8: the MAC's words).
#[inline(always)]
fn le64(w: &Words, off: usize) -> u64 {
    let i = off / 2;
    (w[i] as u64) | (w[i + 1] as u64) << 16 | (w[i + 2] as u64) << 32 | (w[i + 3] as u64) << 48
}

/// The big-endian u32 at `off`.
#[inline(always)]
pub fn be32(w: &Words, off: usize) -> u32 {
    let i = off / 2;
    ((u16::from_be(w[i]) as u32) << 16) | u16::from_be(w[i + 1]) as u32
}

/// The big-endian u64 at `off`.
#[inline(always)]
pub fn be64(w: &Words, off: usize) -> u64 {
    ((be32(w, off) as u64) << 32) | be32(w, off + 4) as u64
}

// The MAC covers seven words, listed one by one below (no loop).
const _: () = assert!(heartbeat::MAC_WORDS == 7);

/// Does the message's MAC match under the sender's key (its two halves)?
#[inline(always)]
pub fn authentic(w: &Words, k0: u64, k1: u64) -> bool {
    let key = Key { k0, k1 };
    let m = [le64(w, 0), le64(w, 8), le64(w, 16), le64(w, 24), le64(w, 32), le64(w, 40), le64(w, 48)];
    heartbeat::mac_words(&key, &m) == le64(w, field::MAC.start)
}

/// Does the message's MAC match under one of the sender's keys: its
/// current one or, failing that, its next one during a key rotation
/// (counted as `HbNextKey`: the peer already sends under the new key)?
#[inline(always)]
pub fn authentic_for(w: &Words, sender: &HbSender) -> bool {
    if authentic(w, sender.k0, sender.k1) {
        return true;
    }
    if sender.n0 | sender.n1 != 0 && authentic(w, sender.n0, sender.n1) {
        count(Reason::HbNextKey);
        return true;
    }
    false
}

/// Verifies and records a heartbeat; always consumes the packet. (`_cfg`
/// chose the port in [`heartbeat_port`]; it holds no key: keys are per
/// sender, in `HB_SENDERS`.)
#[inline(never)]
pub fn process(raw: *mut aya_ebpf::bindings::xdp_md, pkt: &Pkt, _cfg: &HbConfig) -> Next {
    let ctx = &XdpContext::new(raw);
    let l4 = pkt.l4 & 0xff;
    let ulen = match ptr_at::<u16>(ctx, l4 + 4) {
        // SAFETY: bounds checked by ptr_at.
        Some(p) => u16::from_be(unsafe { *p }) as usize,
        None => 0,
    };
    if ulen != 8 + heartbeat::LEN {
        count(Reason::HbBadLength);
        return Next::Drop;
    }
    let Some(p) = ptr_at::<Words>(ctx, l4 + 8) else {
        count(Reason::HbBadLength);
        return Next::Drop;
    };
    // SAFETY: bounds checked by ptr_at; payload at an even offset. Read
    // in place (a copy would cost the stack 64 bytes).
    let w = unsafe { &*p };
    let magic = field::MAGIC.start / 2;
    if w[magic] != u16::from_ne_bytes([heartbeat::MAGIC[0], heartbeat::MAGIC[1]])
        || w[magic + 1] != u16::from_ne_bytes([heartbeat::MAGIC[2], heartbeat::MAGIC[3]])
        || byte(w, field::VERSION) != heartbeat::VERSION
    {
        count(Reason::HbBadMagic);
        return Next::Drop;
    }
    let node_id = be32(w, field::NODE_ID.start);
    let sender_key = HbSenderKey { node_id, addr: pkt.src };
    // SAFETY: the map value is only read, field by field.
    let Some(sender) = (unsafe { maps::HB_SENDERS.get(&sender_key) }) else {
        count(Reason::HbUnknownSender);
        return Next::Drop;
    };
    let ifindex = ctx.ingress_ifindex() as u32;
    if sender.ifindex != 0 && sender.ifindex != ifindex {
        count(Reason::HbWrongPath);
        return Next::Drop;
    }
    if !authentic_for(w, sender) {
        count(Reason::HbBadMac);
        note_bad_mac(&sender_key, ifindex);
        return Next::Drop;
    }
    let kind = byte(w, field::KIND);
    let state = byte(w, field::STATE);
    let priority = byte(w, field::PRIORITY);
    if heartbeat::Kind::from_u8(kind).is_none() || node::NodeState::from_u8(state).is_none() {
        count(Reason::HbBadField);
        return Next::Drop;
    }
    if kind != sender.kind {
        count(Reason::HbUnknownSender);
        return Next::Drop;
    }
    let path = byte(w, field::PATH);
    let epoch = be64(w, field::EPOCH.start);
    let boot_id = be64(w, field::BOOT_ID.start);
    let seq = be64(w, field::SEQ.start);
    let sent_ns = be64(w, field::SENT_NS.start);
    let active_channels = be32(w, field::ACTIVE.start);
    let capacity = be32(w, field::CAPACITY.start);
    let grace = if byte(w, field::FLAGS) & heartbeat::FLAG_RESTARTING != 0 {
        let g = ((byte(w, field::RESTART_GRACE.start) as u16) << 8) | byte(w, field::RESTART_GRACE.start + 1) as u16;
        if g == 0 { 1 } else { g }
    } else {
        0
    };
    // SAFETY: bpf_ktime_get_ns takes no arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let old = maps::HB_PEERS.get_ptr_mut(&sender_key);
    // SAFETY: old points to the map value; only the window is copied out.
    let window = old.map(|o| unsafe { Window { boot: (*o).boot_id, prev_boot: (*o).prev_boot_id, seq: (*o).seq, seen_ns: (*o).last_seen_ns } });
    let gap = sender.restart_gap_us as u64 * 1000;
    let taken = match heartbeat::admit(window.as_ref(), boot_id, seq, now, gap) {
        Ok(t) => t,
        Err(r) => {
            count(match r {
                Reject::Replay => Reason::HbReplay,
                Reject::SeqJump => Reason::HbSeqJump,
                Reject::StaleBoot => Reason::HbStaleBoot,
            });
            return Next::Drop;
        }
    };
    let Some(rec) = maps::HB_SCRATCH.get_ptr_mut(0) else {
        return Next::Drop;
    };
    // SAFETY: rec points to this CPU's slot; nothing else writes it now.
    unsafe {
        (*rec).last_seen_ns = taken.seen_ns;
        (*rec).boot_id = taken.boot;
        (*rec).prev_boot_id = taken.prev_boot;
        (*rec).seq = taken.seq;
        (*rec).epoch = epoch;
        (*rec).sent_ns = sent_ns;
        (*rec).addr = pkt.src;
        (*rec).node_id = node_id;
        (*rec).ifindex = ifindex;
        (*rec).active_channels = active_channels;
        (*rec).capacity = capacity;
        (*rec).state = state;
        (*rec).priority = priority;
        (*rec).kind = kind;
        (*rec).path = path;
        (*rec).restart_grace_ms = grace;
        (*rec)._pad = 0;
    }
    let changed = match old {
        Some(old) => {
            // SAFETY: old points to the map value, rec to the scratch slot.
            unsafe {
                let changed =
                    (*old).boot_id != boot_id || (*old).state != state || (*old).epoch != epoch || (*old).priority != priority
                    || (*old).restart_grace_ms != grace;
                *old = *rec;
                changed
            }
        }
        None => {
            // SAFETY: rec points to the scratch slot.
            if maps::HB_PEERS.insert(&sender_key, unsafe { &*rec }, 0).is_err() {
                count(Reason::HbUnknownSender);
                return Next::Drop;
            }
            true
        }
    };
    if changed {
        // SAFETY: as above.
        let _ = maps::HB_EVENTS.output::<HbPeer>(unsafe { &*rec }, 0);
    }
    count(Reason::HbAccepted);
    Next::Drop
}

/// Records a bad-MAC heartbeat of a configured sender (alive, wrong key).
#[inline(always)]
fn note_bad_mac(key: &HbSenderKey, ifindex: u32) {
    // SAFETY: bpf_ktime_get_ns takes no arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    match maps::HB_BAD_MAC.get_ptr_mut(key) {
        // SAFETY: p points to the map value; plain stores.
        Some(p) => unsafe {
            (*p).count += 1;
            (*p).last_ns = now;
            (*p).ifindex = ifindex;
        },
        None => {
            let _ = maps::HB_BAD_MAC.insert(key, &HbBadMac { count: 1, last_ns: now, ifindex, _pad: 0 }, 0);
        }
    }
}
