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
//!
//! Layout, following the kernel's stages: `parse` (the frame), `sip` (the
//! Call-ID reader and the SIP stage), `view` (what the schedulers read),
//! `forward` (counting, rewriting, sending). This module holds the state
//! and the connection-table path (established flows, new flows), and the
//! mirrors of the loader's writes (`apply`, `remove`, ...).

mod forward;
mod parse;
mod sip;
mod view;

use std::{
    cell::Cell,
    collections::{HashMap, HashSet},
};

use tandem_common::{
    sched::{self, FlowAddrs, FlowCheck},
    *,
};

pub use self::{
    parse::{Parsed, parse},
    sip::call_id,
};
use self::view::View;
use crate::image::ServiceImage;

/// Model state: the map contents the kernel would hold.
#[derive(Clone, Debug)]
pub struct Model {
    pub settings: Settings,
    pub services: HashMap<ServiceKey, u32>,
    pub conf: Vec<Service>,
    pub reals: Vec<RealServer>,
    /// The program's half of the active-connection counts (`REAL_ACTIVE`).
    pub active: Vec<u64>,
    /// The host's half (`REAL_ACTIVE_ADJ`); see [`Model::active_conns`].
    pub active_adj: Vec<i64>,
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
            active_adj: vec![0; MAX_REAL_SLOTS as usize],
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
                    // The host's decrement, as `Dataplane::count_active`.
                    let i = (id * MAX_REALS + v.real_idx) as usize;
                    if active_count(self.active[i], self.active_adj[i]) > 0 {
                        self.active_adj[i] -= 1;
                    }
                }
            }
        }
        self.rederive();
    }

    /// Mirrors `Dataplane::active_conns`: both halves summed.
    pub fn active_conns(&self, id: u32, slot: u32) -> u64 {
        let i = (id * MAX_REALS + slot) as usize;
        active_count(self.active[i], self.active_adj[i])
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

    /// The connection-table path (`conn::connections`).
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
            let a = &mut self.active[(id * MAX_REALS + idx) as usize];
            *a = a.wrapping_add(1);
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
            let a = &mut self.active[(id * MAX_REALS + idx) as usize];
            *a = a.wrapping_add(1);
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
}
