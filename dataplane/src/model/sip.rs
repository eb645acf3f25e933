//! The model's SIP stage: its own line-by-line Call-ID reader
//! ([`call_id`]), the `CALLS` lookup for a datagram, and the learning of
//! Call-IDs from TCP data segments, mirroring the kernel's `sip` stage.

use tandem_common::{
    sched::{self, FlowCheck},
    *,
};

use super::{Model, Parsed};

/// The Call-ID of a SIP payload, by the rules documented in
/// `tandem_common::sip`, read line by line (independently of the kernel's
/// byte scanner): the trimmed value, whole (the caller keeps its first
/// `MAX_CALLID_LEN` bytes).
pub fn call_id(payload: &[u8]) -> Option<&[u8]> {
    use tandem_common::sip::{SIP_MAX_TOKEN, SIP_SCAN_LEN};
    let w = &payload[..payload.len().min(SIP_SCAN_LEN)];
    // The start line: a token, a space, the rest of the line.
    let sp = w.iter().position(|&b| b == b' ')?;
    let tok = &w[..sp];
    let tok_ok = !tok.is_empty()
        && tok.len() <= SIP_MAX_TOKEN as usize
        && tok[0].is_ascii_uppercase()
        && tok
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'/' || *b == b'.');
    if !tok_ok {
        return None;
    }
    let mut rest = &w[sp + 1..];
    let lf = rest.iter().position(|&b| b == b'\n')?;
    rest = &rest[lf + 1..];
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    loop {
        let (line, terminated) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        if line.is_empty() || line == b"\r" {
            // The empty line ending the headers (or the window's end).
            return None;
        }
        let after = if line.len() >= 7 && line[..7].eq_ignore_ascii_case(b"call-id") {
            Some(&line[7..])
        } else if line[0].eq_ignore_ascii_case(&b'i') {
            Some(&line[1..])
        } else {
            None
        };
        if let Some(after) = after {
            let start = after.iter().position(|b| !blank(b)).unwrap_or(after.len());
            let after = &after[start..];
            if after.first() == Some(&b':') {
                let v = &after[1..];
                let start = v.iter().position(|b| !blank(b)).unwrap_or(v.len());
                let v = &v[start..];
                let value = match v.iter().position(|&b| b == b'\r') {
                    Some(i) => &v[..i],
                    None if terminated => v,
                    // Cut off by the window: unknown length.
                    None => return None,
                };
                let end = value.iter().rposition(|b| !blank(b)).map_or(0, |i| i + 1);
                return if end == 0 { None } else { Some(&value[..end]) };
            }
        }
        if !terminated {
            return None;
        }
        rest = &rest[line.len() + 1..];
    }
}

impl Model {
    /// The SIP stage for a UDP datagram: `None` when the connection-table
    /// path takes it.
    pub(super) fn sip(&mut self, out: &mut [u8], frame: &[u8], p: &Parsed, ingress: u32, now: u64) -> Option<u32> {
        let key = ServiceKey::new(p.dst, p.dport, p.proto, p.family);
        let id = self.services.get(&key).copied()?;
        let svc = self.service(id)?;
        if svc.flags & FLAG_SIP_PERSIST == 0 || p.proto != PROTO_UDP {
            return None;
        }
        let payload = &frame[p.payload_off..p.payload_off + p.payload_len];
        let Some(text) = call_id(payload) else {
            self.count(Reason::SipNoCallId);
            return None;
        };
        let hash = tandem_common::sip::callid_hash(text);
        let ckey = CallKey::new(id, hash);
        if let Some(call) = self.calls.get(&ckey).copied() {
            let base = id * MAX_REALS;
            let real = if call.real_idx < MAX_REALS {
                Some(self.reals[(base + call.real_idx) as usize])
            } else {
                None
            };
            if sched::check_call(&call, real.as_ref(), &svc, now, &self.settings) == FlowCheck::Keep {
                let mut head = [0u8; 8];
                for (h, b) in head.iter_mut().zip(payload) {
                    *h = *b;
                }
                let entry = self.calls.get_mut(&ckey).expect("call present");
                entry.last_seen_ns = now;
                let ends = tandem_common::sip::ends_dialog(&head) || tandem_common::sip::answers_bye(payload);
                if ends && call.flags & CALL_COUNTED != 0 {
                    entry.flags &= !CALL_COUNTED;
                    if call.real_idx < MAX_REALS {
                        let a = &mut self.active[(base + call.real_idx) as usize];
                        *a = a.wrapping_sub(1);
                    }
                }
                self.count(Reason::SipCallIdHit);
                return Some(self.forward(out, p, &svc, call.real_idx, false, true, ingress));
            }
            self.count(Reason::SipCallIdExpired);
            if call.flags & CALL_COUNTED != 0 && call.real_idx < MAX_REALS {
                let a = &mut self.active[(base + call.real_idx) as usize];
                *a = a.wrapping_sub(1);
            }
            self.calls.remove(&ckey);
        }
        let fkey = FlowKey::new(p.src, p.dst, p.sport, p.dport, p.proto);
        Some(self.new_flow(out, p, id, &fkey, ingress, now, Some(hash)))
    }

    /// A Call-ID in a data segment of an established TCP connection of
    /// `svc` on real server `real_idx`: recorded for the UDP service on the
    /// same VIP and port.
    pub(super) fn learn(&mut self, frame: &[u8], p: &Parsed, svc: &Service, real_idx: u32, now: u64) {
        let payload = &frame[p.payload_off..p.payload_off + p.payload_len];
        let Some(text) = call_id(payload) else {
            self.count(Reason::SipNoCallId);
            return;
        };
        let hash = tandem_common::sip::callid_hash(text);
        let ukey = ServiceKey::new(p.dst, p.dport, PROTO_UDP, p.family);
        let target = self
            .services
            .get(&ukey)
            .and_then(|id| self.service(*id))
            .filter(|t| t.flags & FLAG_SIP_PERSIST != 0);
        let Some(target) = target else {
            self.count(Reason::SipLearnNoTarget);
            return;
        };
        if real_idx >= MAX_REALS {
            self.count(Reason::SipLearnNoTarget);
            return;
        }
        let own = self.reals[(svc.id * MAX_REALS + real_idx) as usize].addr;
        let tid = target.id;
        let slot = (0..target.n_reals.min(MAX_REALS))
            .find(|j| self.reals[(tid * MAX_REALS + j) as usize].addr == own);
        let Some(slot) = slot else {
            self.count(Reason::SipLearnNoTarget);
            return;
        };
        self.count(Reason::SipCallIdLearned);
        let ckey = CallKey::new(tid, hash);
        let old = self.calls.get(&ckey).copied();
        if let Some(o) = old
            && o.real_idx == slot
        {
            self.calls.get_mut(&ckey).expect("call present").last_seen_ns = now;
            return;
        }
        self.calls.insert(
            ckey,
            CallValue {
                last_seen_ns: now,
                created_ns: now,
                real_idx: slot,
                flags: CALL_COUNTED | CALL_LEARNED,
            },
        );
        if let Some(o) = old
            && o.flags & CALL_COUNTED != 0
            && o.real_idx < MAX_REALS
        {
            let a = &mut self.active[(tid * MAX_REALS + o.real_idx) as usize];
            *a = a.wrapping_sub(1);
        }
        let a = &mut self.active[(tid * MAX_REALS + slot) as usize];
        *a = a.wrapping_add(1);
    }
}
