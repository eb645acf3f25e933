//! The reference model: what `tandem_xdp` should do with a frame, computed
//! on the host. Parsing and rewriting are written independently over byte
//! slices; scheduling, flow keeping and checksum arithmetic are the very
//! same code as the kernel's (`tandem_common`). The differential tests run
//! both on the same frames and compare verdicts, output frames and counters.
//!
//! Differences the model does not capture (documented, not hidden): per-CPU
//! races, LRU eviction, and devmap redirects actually delivering a frame.
//!
//! SIP Call-ID persistence: the kernel runs the shared byte scanner
//! (`tandem_common::sip::Scanner`); the model reads the same rules line by
//! line in its own [`call_id`], so the differential test checks one
//! against the other. The hash (`callid_hash`) is shared.

use std::{
    cell::Cell,
    collections::{HashMap, HashSet},
};

use tandem_common::{
    csum,
    sched::{self, FlowAddrs, FlowCheck, SchedView},
    *,
};

use crate::image::ServiceImage;

/// Model state: the map contents the kernel would hold.
#[derive(Clone, Debug)]
pub struct Model {
    pub settings: Settings,
    pub services: HashMap<ServiceKey, u32>,
    pub conf: Vec<Service>,
    pub reals: Vec<RealServer>,
    pub active: Vec<u64>,
    pub real_load: Vec<RealLoad>,
    pub sched: Vec<SchedState>,
    pub wrr: Vec<Vec<u32>>,
    pub shdh: Vec<Vec<u32>>,
    pub mh: Vec<Vec<u32>>,
    pub flows: HashMap<FlowKey, FlowValue>,
    pub calls: HashMap<CallKey, CallValue>,
    pub nat_reverse: HashMap<FlowKey, NatReverse>,
    pub ifaces: HashMap<u32, Iface>,
    pub tx_ports: HashSet<u32>,
    pub reasons: [u64; REASON_COUNT as usize],
    pub service_stats: Vec<Counters>,
    pub real_stats: Vec<Counters>,
    /// Derived from the services (`rederive`): port pre-filter, NAT count.
    port_flags: HashMap<u32, u32>,
    nat_services: u32,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            settings: Settings::default(),
            services: HashMap::new(),
            conf: vec![
                Service {
                    id: u32::MAX,
                    ..Default::default()
                };
                MAX_SERVICES as usize
            ],
            reals: vec![RealServer::default(); MAX_REAL_SLOTS as usize],
            active: vec![0; MAX_REAL_SLOTS as usize],
            real_load: vec![RealLoad::default(); MAX_REAL_SLOTS as usize],
            sched: vec![SchedState::default(); MAX_SERVICES as usize],
            wrr: vec![Vec::new(); MAX_SERVICES as usize],
            shdh: vec![Vec::new(); MAX_SERVICES as usize],
            mh: vec![Vec::new(); MH_SLOTS as usize],
            flows: HashMap::new(),
            calls: HashMap::new(),
            nat_reverse: HashMap::new(),
            ifaces: HashMap::new(),
            tx_ports: HashSet::new(),
            reasons: [0; REASON_COUNT as usize],
            service_stats: vec![Counters::default(); MAX_SERVICES as usize],
            real_stats: vec![Counters::default(); MAX_REAL_SLOTS as usize],
            port_flags: HashMap::new(),
            nat_services: 0,
        }
    }
}

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

struct View<'a> {
    m: &'a Model,
    id: u32,
    mh_slot: u32,
    cursor: Cell<u32>,
    least: std::cell::UnsafeCell<sched::LeastScratch>,
}

impl SchedView for View<'_> {
    fn real(&self, idx: u32) -> Option<&RealServer> {
        if idx >= MAX_REALS {
            return None;
        }
        self.m.reals.get((self.id * MAX_REALS + idx) as usize)
    }
    fn active(&self, idx: u32) -> u32 {
        if idx >= MAX_REALS {
            return 0;
        }
        let a = self.m.active[(self.id * MAX_REALS + idx) as usize];
        a.min(u32::MAX as u64) as u32
    }
    fn reported(&self, idx: u32) -> RealLoad {
        if idx >= MAX_REALS {
            return RealLoad::default();
        }
        self.m.real_load[(self.id * MAX_REALS + idx) as usize]
    }
    fn wrr_entry(&self, pos: u32) -> Option<u32> {
        if pos >= WRR_SEQ_MAX {
            return None;
        }
        Some(
            self.m.wrr[self.id as usize]
                .get(pos as usize)
                .copied()
                .unwrap_or(0),
        )
    }
    fn shdh_entry(&self, pos: u32) -> Option<u32> {
        if pos >= SHDH_BUCKETS {
            return None;
        }
        Some(
            self.m.shdh[self.id as usize]
                .get(pos as usize)
                .copied()
                .unwrap_or(0),
        )
    }
    fn mh_entry(&self, pos: u32) -> Option<u32> {
        if pos >= MH_MAX_SIZE || self.mh_slot >= MH_SLOTS {
            return None;
        }
        Some(
            self.m.mh[self.mh_slot as usize]
                .get(pos as usize)
                .copied()
                .unwrap_or(0),
        )
    }
    fn cursor(&self) -> u32 {
        self.cursor.get()
    }
    fn set_cursor(&self, v: u32) {
        self.cursor.set(v)
    }
    fn least_scratch(&self) -> *mut sched::LeastScratch {
        self.least.get()
    }
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// Applies a service image exactly as `Dataplane::set_service` writes it.
    pub fn apply(&mut self, img: &ServiceImage) {
        let id = img.service.id as usize;
        match Scheduler::from_u8(img.service.scheduler) {
            Some(Scheduler::Wrr) => {
                let w = &mut self.wrr[id];
                w.resize(WRR_SEQ_MAX as usize, 0);
                w[..img.service.table_len as usize]
                    .copy_from_slice(&img.wrr[..img.service.table_len as usize]);
            }
            Some(Scheduler::Sh | Scheduler::Dh) => self.shdh[id] = img.shdh.clone(),
            Some(Scheduler::Mh) => {
                let t = &mut self.mh[img.service.mh_slot as usize];
                t.resize(MH_MAX_SIZE as usize, 0);
                t[..img.mh.len()].copy_from_slice(&img.mh);
            }
            _ => {}
        }
        for (i, r) in img.reals.iter().enumerate() {
            self.reals[id * MAX_REALS as usize + i] = *r;
        }
        if img.reset_sched {
            self.sched[id] = img.sched;
        }
        if img.fresh {
            for slot in 0..MAX_REALS as usize {
                self.real_load[id * MAX_REALS as usize + slot] = RealLoad::default();
            }
        }
        self.conf[id] = img.service;
        self.services.insert(img.key, img.service.id);
        self.rederive();
    }

    /// Recomputes the port pre-filter and the NAT count from the services,
    /// as the loader writes them after every change.
    fn rederive(&mut self) {
        let (ports, globals) = crate::derived(self.services.values().map(|id| &self.conf[*id as usize]));
        self.port_flags = ports.into_iter().collect();
        self.nat_services = globals.nat_services;
    }

    /// Mirrors `Dataplane::remove_service`.
    pub fn remove(&mut self, key: &ServiceKey) {
        if let Some(id) = self.services.remove(key) {
            self.conf[id as usize] = Service {
                id: u32::MAX,
                ..Default::default()
            };
            let gone: Vec<(CallKey, CallValue)> =
                self.calls.iter().filter(|(k, _)| k.service_id == id).map(|(k, v)| (*k, *v)).collect();
            for (k, v) in gone {
                self.calls.remove(&k);
                if v.flags & CALL_COUNTED != 0 {
                    let a = &mut self.active[(id * MAX_REALS + v.real_idx) as usize];
                    *a = a.saturating_sub(1);
                }
            }
        }
        self.rederive();
    }

    /// Mirrors `Dataplane::set_real_load`.
    pub fn set_real_load(&mut self, id: u32, slot: u32, load: RealLoad) {
        self.real_load[(id * MAX_REALS + slot) as usize] = load;
    }

    /// Mirrors `Dataplane::add_tx_port`.
    pub fn add_tx_port(&mut self, ifindex: u32, mac: [u8; 6]) {
        self.ifaces.insert(ifindex, Iface { mac, _pad: [0; 2] });
        self.tx_ports.insert(ifindex);
    }

    fn count(&mut self, r: Reason) {
        self.reasons[r as usize] += 1;
    }

    pub fn reason(&self, r: Reason) -> u64 {
        self.reasons[r as usize]
    }

    /// What the program does with `frame` arriving on `ingress` at `now_ns`:
    /// the verdict and the frame as it leaves.
    pub fn process(&mut self, frame: &[u8], ingress: u32, now_ns: u64) -> (u32, Vec<u8>) {
        let mut out = frame.to_vec();
        let p = match parse(frame) {
            Ok(p) => p,
            Err(r) => {
                self.count(r);
                return (XDP_PASS, out);
            }
        };
        let port_flags = self.port_flags.get(&port_index(p.proto, p.dport)).copied().unwrap_or(0);
        let nat_services = self.nat_services;
        if port_flags == 0 {
            let v = self.reverse_nat(&mut out, &p, ingress, nat_services);
            return (v, out);
        }
        if port_flags & PORT_SIP != 0
            && p.proto == PROTO_UDP
            && let Some(v) = self.sip(&mut out, frame, &p, ingress, now_ns)
        {
            return (v, out);
        }
        self.connections(out, &p, port_flags, frame, ingress, now_ns)
    }

    /// The SIP stage for a UDP datagram: `None` when the connection-table
    /// path takes it.
    fn sip(&mut self, out: &mut [u8], frame: &[u8], p: &Parsed, ingress: u32, now: u64) -> Option<u32> {
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
                self.calls.get_mut(&ckey).expect("call present").last_seen_ns = now;
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
    fn learn(&mut self, frame: &[u8], p: &Parsed, svc: &Service, real_idx: u32, now: u64) {
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
        self.active[(tid * MAX_REALS + slot) as usize] += 1;
    }

    /// The connection-table path (`dispatch::connections`).
    fn connections(
        &mut self,
        mut out: Vec<u8>,
        p: &Parsed,
        port_flags: u32,
        frame: &[u8],
        ingress: u32,
        now_ns: u64,
    ) -> (u32, Vec<u8>) {
        let p = p.clone();
        let nat_services = self.nat_services;
        let fkey = FlowKey::new(p.src, p.dst, p.sport, p.dport, p.proto);
        let flow = if port_flags & PORT_CONN != 0 {
            self.flows.get(&fkey).copied()
        } else {
            None
        };
        if let Some(f) = flow
            && let Some(svc) = self.flow_service(f.service_id, &p)
        {
            let v = self.established(&mut out, frame, &p, svc, f, &fkey, ingress, now_ns);
            return (v, out);
        }
        let key = ServiceKey::new(p.dst, p.dport, p.proto, p.family);
        let Some(id) = self.services.get(&key).copied() else {
            let v = self.reverse_nat(&mut out, &p, ingress, nat_services);
            return (v, out);
        };
        let Some(svc) = self.service(id) else {
            self.count(Reason::BadServiceConfig);
            return (XDP_PASS, out);
        };
        if let Some(old) = flow
            && svc.flags & FLAG_ONE_PACKET == 0
        {
            self.count(Reason::NodestExpired);
            if old.flags & FLOW_COUNTED != 0
                && old.service_id < MAX_SERVICES
                && old.real_idx < MAX_REALS
            {
                let a = &mut self.active[(old.service_id * MAX_REALS + old.real_idx) as usize];
                *a = a.wrapping_sub(1);
            }
            self.flows.remove(&fkey);
        }
        let v = self.new_flow(&mut out, &p, id, &fkey, ingress, now_ns, None);
        (v, out)
    }

    fn service(&self, id: u32) -> Option<Service> {
        if id >= MAX_SERVICES {
            return None;
        }
        let s = self.conf[id as usize];
        if s.id == id && s.n_reals <= MAX_REALS {
            Some(s)
        } else {
            None
        }
    }

    fn flow_service(&self, sid: u32, p: &Parsed) -> Option<Service> {
        let s = self.service(sid)?;
        if s.key.addr == p.dst
            && s.key.port == p.dport
            && s.key.proto == p.proto
            && s.key.family == p.family
            && s.flags & FLAG_ONE_PACKET == 0
        {
            Some(s)
        } else {
            None
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn established(
        &mut self,
        out: &mut [u8],
        frame: &[u8],
        p: &Parsed,
        svc: Service,
        flow: FlowValue,
        fkey: &FlowKey,
        ingress: u32,
        now: u64,
    ) -> u32 {
        let id = svc.id;
        let base = id * MAX_REALS;
        let real = if flow.real_idx < MAX_REALS {
            Some(self.reals[(base + flow.real_idx) as usize])
        } else {
            None
        };
        match sched::check_flow(&flow, real.as_ref(), &svc, p.proto, now, &self.settings) {
            FlowCheck::Keep => {
                let mut flags = flow.flags;
                if p.proto == PROTO_TCP && sched::tcp_closes_flow(p.tcp_flags) {
                    if flags & FLOW_COUNTED != 0 {
                        let a = &mut self.active[(base + flow.real_idx) as usize];
                        *a = a.wrapping_sub(1);
                    }
                    flags = (flags | FLOW_CLOSING) & !FLOW_COUNTED;
                }
                let f = self.flows.get_mut(fkey).expect("flow present");
                f.last_seen_ns = now;
                f.flags = flags;
                if p.proto == PROTO_TCP && svc.flags & FLAG_SIP_PERSIST != 0 && p.payload_len > 0 {
                    self.learn(frame, p, &svc, flow.real_idx, now);
                }
                self.forward(out, p, &svc, flow.real_idx, false, false, ingress)
            }
            check => {
                self.count(if check == FlowCheck::Expired {
                    Reason::FlowExpired
                } else {
                    Reason::NodestExpired
                });
                if flow.flags & FLOW_COUNTED != 0 && flow.real_idx < MAX_REALS {
                    let a = &mut self.active[(base + flow.real_idx) as usize];
                    *a = a.wrapping_sub(1);
                }
                self.flows.remove(fkey);
                self.new_flow(out, p, id, fkey, ingress, now, None)
            }
        }
    }

    /// The new-flow stage; `call`: a SIP call's hash, to schedule and
    /// record instead of a flow.
    #[allow(clippy::too_many_arguments)]
    fn new_flow(
        &mut self,
        out: &mut [u8],
        p: &Parsed,
        id: u32,
        fkey: &FlowKey,
        ingress: u32,
        now: u64,
        call: Option<u64>,
    ) -> u32 {
        if p.proto == PROTO_TCP && !sched::tcp_opens_flow(p.tcp_flags) {
            self.count(Reason::TcpNoFlow);
            return XDP_PASS;
        }
        // The kernel's new-flow stage looks the service up again.
        let Some(svc) = self.service(id) else {
            self.count(Reason::BadServiceConfig);
            return XDP_PASS;
        };
        let view = View {
            m: self,
            id,
            mh_slot: svc.mh_slot,
            cursor: Cell::new(self.sched[id as usize].cursor),
            least: Default::default(),
        };
        let pick = sched::schedule(
            &view,
            &svc,
            FlowAddrs {
                src: &p.src,
                dst: &p.dst,
                sport: p.sport,
                call: call.map(tandem_common::sip::callid_sched_hash),
            },
        );
        let cursor = view.cursor.get();
        self.sched[id as usize].cursor = cursor;
        let idx = match pick {
            Some(i) if i < MAX_REALS => i,
            _ => {
                self.count(Reason::NoReal);
                return XDP_DROP;
            }
        };
        if let Some(hash) = call {
            self.count(Reason::SipCallIdNew);
            self.calls.insert(
                CallKey::new(id, hash),
                CallValue {
                    last_seen_ns: now,
                    created_ns: now,
                    real_idx: idx,
                    flags: CALL_COUNTED,
                },
            );
            self.active[(id * MAX_REALS + idx) as usize] += 1;
            return self.forward(out, p, &svc, idx, true, false, ingress);
        }
        if svc.flags & FLAG_ONE_PACKET == 0 {
            self.flows.insert(
                *fkey,
                FlowValue {
                    last_seen_ns: now,
                    created_ns: now,
                    service_id: id,
                    real_idx: idx,
                    flags: FLOW_COUNTED,
                    _pad: 0,
                },
            );
            self.active[(id * MAX_REALS + idx) as usize] += 1;
        }
        self.forward(out, p, &svc, idx, true, false, ingress)
    }

    /// Mirrors `Dataplane::age_flows`.
    pub fn age_flows(&mut self, by_ns: u64) {
        for f in self.flows.values_mut() {
            f.last_seen_ns = f.last_seen_ns.saturating_sub(by_ns);
        }
        for c in self.calls.values_mut() {
            c.last_seen_ns = c.last_seen_ns.saturating_sub(by_ns);
        }
    }

    /// `reverse`: record the NAT reverse entry even for a packet that is
    /// not a new flow (a SIP call's message from a new 5-tuple).
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        out: &mut [u8],
        p: &Parsed,
        svc: &Service,
        real_idx: u32,
        new_flow: bool,
        reverse: bool,
        ingress: u32,
    ) -> u32 {
        let slot = (svc.id * MAX_REALS + real_idx) as usize;
        let real = self.reals[slot];
        let bytes = out.len() as u64;
        for c in [
            &mut self.service_stats[svc.id as usize],
            &mut self.real_stats[slot],
        ] {
            c.packets += 1;
            c.bytes += bytes;
            if new_flow {
                c.new_flows += 1;
            }
        }
        if svc.forward == Forward::Nat as u8 {
            let port = if real.port != 0 { real.port } else { p.dport };
            rewrite(out, p, true, &real.addr, port);
            if new_flow || reverse {
                let rkey = FlowKey::new(real.addr, p.src, port, p.sport, p.proto);
                self.nat_reverse.insert(
                    rkey,
                    NatReverse {
                        service_id: svc.id,
                        real_idx,
                    },
                );
            }
            self.count(Reason::ForwardNat);
        } else {
            self.count(Reason::ForwardDr);
        }
        self.send(out, real.ifindex, real.mac, ingress)
    }

    fn reverse_nat(&mut self, out: &mut [u8], p: &Parsed, ingress: u32, nat_services: u32) -> u32 {
        if nat_services == 0 {
            self.count(Reason::NotService);
            return XDP_PASS;
        }
        let rkey = FlowKey::new(p.src, p.dst, p.sport, p.dport, p.proto);
        let Some(rev) = self.nat_reverse.get(&rkey).copied() else {
            self.count(Reason::NotService);
            return XDP_PASS;
        };
        let svc = match self.conf.get(rev.service_id as usize) {
            Some(s)
                if s.id == rev.service_id
                    && s.key.family == p.family
                    && s.forward == Forward::Nat as u8 =>
            {
                *s
            }
            _ => {
                self.count(Reason::BadServiceConfig);
                return XDP_PASS;
            }
        };
        rewrite(out, p, false, &svc.key.addr, svc.key.port);
        self.count(Reason::ReverseNat);
        self.send(out, svc.client_ifindex, svc.gateway_mac, ingress)
    }

    fn send(&mut self, out: &mut [u8], ifindex: u32, dst_mac: [u8; 6], ingress: u32) -> u32 {
        let same = ifindex == 0 || ifindex == ingress;
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(&out[0..6]);
        if !same && let Some(i) = self.ifaces.get(&ifindex) {
            src_mac = i.mac;
        }
        out[0..6].copy_from_slice(&dst_mac);
        out[6..12].copy_from_slice(&src_mac);
        if same {
            return XDP_TX;
        }
        if self.tx_ports.contains(&ifindex) {
            XDP_REDIRECT
        } else {
            self.count(Reason::RedirectFailed);
            XDP_DROP
        }
    }
}

fn get16(f: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([f[off], f[off + 1]])
}

fn put16(f: &mut [u8], off: usize, v: u16) {
    f[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Rewrites the destination (or source) address and port with incremental
/// checksum updates, as the kernel's `forward::rewrite`.
fn rewrite(f: &mut [u8], p: &Parsed, dest: bool, new_addr: &[u8; 16], new_port: u16) {
    let old_addr = if dest { p.dst } else { p.src };
    let old_port = if dest { p.dport } else { p.sport };
    let csum_off = if p.proto == PROTO_UDP {
        p.l4 + 6
    } else {
        p.l4 + 16
    };
    let old_l4 = get16(f, csum_off);
    let skip_l4 = p.proto == PROTO_UDP && p.family == FAMILY_V4 && old_l4 == 0;
    let mut l4c = old_l4;
    if p.family == FAMILY_V4 {
        let o: [u8; 4] = old_addr[12..16].try_into().expect("4 bytes");
        let n: [u8; 4] = new_addr[12..16].try_into().expect("4 bytes");
        let aoff = if dest { p.l3 + 16 } else { p.l3 + 12 };
        let ipc = get16(f, p.l3 + 10);
        put16(f, p.l3 + 10, csum::replace32(ipc, o, n));
        f[aoff..aoff + 4].copy_from_slice(&n);
        if !skip_l4 {
            l4c = csum::replace32(l4c, o, n);
        }
    } else {
        let aoff = if dest { p.l3 + 24 } else { p.l3 + 8 };
        f[aoff..aoff + 16].copy_from_slice(new_addr);
        l4c = csum::replace128(l4c, &old_addr, new_addr);
    }
    if new_port != old_port {
        put16(f, if dest { p.l4 + 2 } else { p.l4 }, new_port);
        if !skip_l4 {
            l4c = csum::replace16(l4c, old_port, new_port);
        }
    }
    if !skip_l4 {
        if p.proto == PROTO_UDP {
            l4c = csum::udp_fixup(l4c);
        }
        put16(f, csum_off, l4c);
    }
}
