//! Virtual services: validating a [`ServiceConfig`], building its image
//! (`image`) and writing it to the service, real-server and scheduler-table
//! maps; the per-service slots this side allocates (service ids, Maglev
//! table slots); and what is derived from the whole set of services (the
//! port pre-filter and the NAT service count, [`derived`]).
//!
//! A configuration is checked and its tables built before any map is
//! written. Which services to configure is the control plane's decision.

use std::collections::HashMap as StdHashMap;

use tandem_common::*;

use crate::{
    Dataplane, Error, ServiceConfig, ServiceFlag, ServiceFlags, ServiceImage, batch::ArrayWrites,
    error::map_err,
};

impl Dataplane {
    /// Adds or replaces a virtual service. The configuration is validated
    /// and its tables built before any map is written.
    pub fn set_service(&mut self, cfg: &ServiceConfig) -> Result<ServiceImage, Error> {
        let key = cfg.key();
        // A copy: the maps are written from it below, entry by entry only
        // where the new image differs (a Maglev table is 65537 entries).
        let previous = self.services.get(&key).cloned();
        let previous = previous.as_ref();
        let id = match previous {
            Some(p) => p.service.id,
            None => (0..MAX_SERVICES)
                .find(|i| !self.services.values().any(|s| s.service.id == *i))
                .ok_or(Error::TooManyServices)?,
        };
        let mh_slot = if cfg.scheduler == Scheduler::Mh {
            match self.mh_slots.iter().position(|s| *s == Some(key)) {
                Some(s) => s as u32,
                None => self
                    .mh_slots
                    .iter()
                    .position(|s| s.is_none())
                    .ok_or(Error::TooManyMaglev)? as u32,
            }
        } else {
            0
        };
        let image = ServiceImage::build(cfg, id, mh_slot, previous)?;
        if cfg.scheduler != Scheduler::Mh {
            for s in self.mh_slots.iter_mut() {
                if *s == Some(key) {
                    *s = None;
                }
            }
        } else {
            self.mh_slots[mh_slot as usize] = Some(key);
        }
        // The address passes the VIP filter before the service exists.
        self.write_vip_filter(Some(key.addr), false)?;
        self.write_image(&image, previous)?;
        self.services.insert(key, image.clone());
        self.write_derived()?;
        Ok(image)
    }

    /// Rewrites what is derived from the set of services: the port
    /// pre-filter and the NAT service count.
    pub(crate) fn write_derived(&mut self) -> Result<(), Error> {
        let (ports, mut globals) = derived(self.services.values().map(|i| &i.service));
        globals.flow_events = self.flow_events_on as u32;
        for (idx, flags) in ports {
            self.maps.services.port_flags
                .set(idx, flags, 0)
                .map_err(map_err(maps::PORT_FLAGS))?;
        }
        self.maps.services.globals
            .set(0, globals, 0)
            .map_err(map_err(maps::GLOBALS))?;
        self.write_vip_filter(None, false)
    }

    /// Rebuilds the VIP filter from every service's address and every
    /// guarded or owned VIP, and `extra` (an address about to be written
    /// elsewhere: its bit is set first). A bit left set by an address that
    /// went is harmless until the next rebuild clears it. `all_owned` is
    /// set when every guarded VIP is owned, unless `hold_owned` (the
    /// caller is about to release an owned VIP or guard a new one: the
    /// fast path must be off before that).
    pub(crate) fn write_vip_filter(&mut self, extra: Option<[u8; 16]>, hold_owned: bool) -> Result<(), Error> {
        let mut f = VipFilter::default();
        for key in self.services.keys() {
            f.insert(&key.addr);
        }
        let h = &self.maps.heartbeat;
        let guarded: Vec<u32> = h.vips.keys().collect::<Result<_, _>>().map_err(map_err(maps::VIPS))?;
        let owned: Vec<u32> = h.owned_vips.keys().collect::<Result<_, _>>().map_err(map_err(maps::OWNED_VIPS))?;
        for k in guarded.iter().chain(&owned) {
            f.insert(&std::net::Ipv4Addr::from(k.to_ne_bytes()).to_ipv6_mapped().octets());
        }
        if let Some(a) = extra {
            f.insert(&a);
        }
        f.all_owned = u32::from(!hold_owned && guarded.iter().all(|g| owned.contains(g)));
        self.maps.services.vip_filter.set(0, f, 0).map_err(map_err(maps::VIP_FILTER))
    }

    /// Writes `img` to the maps; where `previous` (the image the maps
    /// hold now for the same service id) already has an entry's value,
    /// that entry is not written again. Each table's entries go in one
    /// batch call ([`crate::batch`]): a Maglev table is 65,537 entries.
    fn write_image(&mut self, img: &ServiceImage, previous: Option<&ServiceImage>) -> Result<(), Error> {
        let id = img.service.id;
        let m = &self.maps.services;
        match img.scheduler() {
            Some(Scheduler::Wrr) => {
                let mut w = ArrayWrites::new();
                for (i, v) in img.wrr.iter().enumerate().take(img.service.table_len as usize) {
                    w.push(id * WRR_SEQ_MAX + i as u32, *v);
                }
                w.write(&m.wrr, maps::WRR_SEQ)?;
            }
            Some(Scheduler::Sh | Scheduler::Dh) => {
                let mut w = ArrayWrites::new();
                for (i, v) in img.shdh.iter().enumerate() {
                    w.push(id * SHDH_BUCKETS + i as u32, *v);
                }
                w.write(&m.shdh, maps::SHDH_TABLE)?;
            }
            Some(Scheduler::Mh) => {
                let base = img.service.mh_slot * MH_MAX_SIZE;
                let held = previous
                    .filter(|p| p.scheduler() == Some(Scheduler::Mh) && p.service.mh_slot == img.service.mh_slot)
                    .map(|p| p.mh.as_slice());
                let mut w = ArrayWrites::new();
                for (i, v) in img.mh.iter().enumerate() {
                    if held.and_then(|h| h.get(i)) != Some(v) {
                        w.push(base + i as u32, *v);
                    }
                }
                w.write(&m.mh, maps::MH_TABLE)?;
            }
            _ => {}
        }
        let mut w = ArrayWrites::new();
        for (i, r) in img.reals.iter().enumerate() {
            if !previous.is_some_and(|p| p.service.id == id && p.reals.get(i) == Some(r)) {
                w.push(id * MAX_REALS + i as u32, *r);
            }
        }
        w.write(&m.reals, maps::REALS)?;
        if img.reset_sched {
            self.maps.services.sched
                .set(id, img.sched, 0)
                .map_err(map_err(maps::SCHED_STATE))?;
        }
        if img.fresh {
            let mut w = ArrayWrites::new();
            for slot in 0..MAX_REALS {
                w.push(id * MAX_REALS + slot, RealLoad::default());
            }
            w.write(&self.maps.services.real_load, maps::REAL_LOAD)?;
        }
        self.maps.services.conf
            .set(id, img.service, 0)
            .map_err(map_err(maps::SERVICE_CONF))?;
        self.maps.services.ids
            .insert(img.key, id, 0)
            .map_err(map_err(maps::SERVICES))
    }

    /// Removes a virtual service; its flows expire (their packets pass).
    pub fn remove_service(&mut self, key: &ServiceKey) -> Result<(), Error> {
        let img = self
            .services
            .remove(key)
            .ok_or_else(|| Error::NoSuchService(format!("{key:?}")))?;
        self.maps.services.ids
            .remove(key)
            .map_err(map_err(maps::SERVICES))?;
        let unused = Service {
            id: u32::MAX,
            ..Default::default()
        };
        self.maps.services.conf
            .set(img.service.id, unused, 0)
            .map_err(map_err(maps::SERVICE_CONF))?;
        for s in self.mh_slots.iter_mut() {
            if *s == Some(*key) {
                *s = None;
            }
        }
        // Its SIP calls go (their ids would name slots of the next service
        // given this id), and with them their active-connection counts.
        let id = img.service.id;
        let calls: Vec<(CallKey, CallValue)> = self
            .maps.conns.calls
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, _)| k.service_id == id)
            .collect();
        for (k, v) in calls {
            let _ = self.maps.conns.calls.remove(&k);
            if v.flags & CALL_COUNTED != 0 {
                self.count_active(id, v.real_idx, false)?;
            }
        }
        // The removed service's port loses its flags unless another uses it.
        let idx = port_index(key.proto, key.port);
        self.maps.services.port_flags
            .set(idx, 0, 0)
            .map_err(map_err(maps::PORT_FLAGS))?;
        self.write_derived()
    }

    /// The VIP filter as the program reads it ([`VipFilter`]).
    pub fn vip_filter(&self) -> Result<VipFilter, Error> {
        self.maps.services.vip_filter.get(&0, 0).map_err(map_err(maps::VIP_FILTER))
    }

    /// The images of the configured services.
    pub fn services(&self) -> impl Iterator<Item = &ServiceImage> {
        self.services.values()
    }

    pub fn service(&self, key: &ServiceKey) -> Option<&ServiceImage> {
        self.services.get(key)
    }

    /// Sets the load real server `slot` of service `id` reports (used by
    /// services with [`ServiceFlag::ReportedLoad`]).
    pub fn set_real_load(&mut self, id: u32, slot: u32, load: RealLoad) -> Result<(), Error> {
        self.maps.services.real_load.set(id * MAX_REALS + slot, load, 0).map_err(map_err(maps::REAL_LOAD))
    }

    /// Removes every service (tests).
    pub fn remove_all_services(&mut self) -> Result<(), Error> {
        let keys: Vec<ServiceKey> = self.services.keys().copied().collect();
        for k in keys {
            self.remove_service(&k)?;
        }
        Ok(())
    }
}

/// The port pre-filter entries and globals implied by a set of services
/// (only ports in use are listed; all others are 0).
pub fn derived<'a>(services: impl Iterator<Item = &'a Service>) -> (Vec<(u32, u32)>, Globals) {
    let mut ports: StdHashMap<u32, u32> = StdHashMap::new();
    let mut globals = Globals::default();
    for s in services {
        let flags = ServiceFlags::from(s);
        let mut bit = if flags.contains(ServiceFlag::OnePacket) {
            PORT_ONE_PACKET
        } else {
            PORT_CONN
        };
        if flags.contains(ServiceFlag::SipPersist) && s.key.proto == PROTO_UDP {
            bit |= PORT_SIP;
        }
        *ports
            .entry(port_index(s.key.proto, s.key.port))
            .or_default() |= bit;
        if s.forward == Forward::Nat as u8 {
            globals.nat_services += 1;
        }
    }
    let mut ports: Vec<(u32, u32)> = ports.into_iter().collect();
    ports.sort();
    (ports, globals)
}

