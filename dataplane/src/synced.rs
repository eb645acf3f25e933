//! The standby side of state sync: flows and SIP calls learned from the
//! active node written into this node's tables, and removed again, with
//! the active-connection counts of their real servers kept.
//!
//! Records name the service by key and the real server by address (ids
//! and slots differ between nodes); one this node does not have is
//! refused, not guessed. What to sync and when is the control plane's.

use tandem_common::*;

use crate::{Dataplane, Error, error::map_err, monotonic_coarse_ns};

impl Dataplane {
    /// Writes a flow learned from the active node into this node's
    /// connection table (standby side of state sync), counting it as an
    /// active connection of its real server. `service` and `real` name the
    /// service and real server by key and address (ids and slots differ
    /// between nodes). Returns false if this node has no such service or
    /// real server (the flow is then not kept).
    pub fn upsert_synced_flow(
        &mut self,
        key: &FlowKey,
        service: &ServiceKey,
        real: (std::net::IpAddr, u16),
        created_ns: u64,
        flags: u32,
    ) -> Result<bool, Error> {
        let Some(img) = self.services.get(service) else {
            return Ok(false);
        };
        let Some(slot) = img.slot_of(real.0, real.1) else {
            return Ok(false);
        };
        let id = img.service.id;
        let now = monotonic_coarse_ns();
        let old = self.maps.conns.flows.get(key, 0).ok();
        if let Some(o) = old
            && o.service_id == id
            && o.real_idx == slot
            && o.flags & (FLOW_COUNTED | FLOW_CLOSING) == flags & (FLOW_COUNTED | FLOW_CLOSING)
        {
            // Already held as synced (a snapshot after a role change
            // repeats what this node has): one lookup, no writes.
            return Ok(true);
        }
        let value = FlowValue {
            last_seen_ns: now,
            created_ns,
            service_id: id,
            real_idx: slot,
            flags: flags & (FLOW_COUNTED | FLOW_CLOSING),
            _pad: 0,
        };
        self.maps.conns.flows.insert(*key, value, 0).map_err(map_err(maps::FLOWS))?;
        if img.forward() == Some(Forward::Nat) {
            // The real server's replies come back through this node now:
            // their reverse entry, as the XDP program writes it.
            let real = &img.reals[slot as usize];
            let port = if real.port != 0 { real.port } else { key.dport };
            let rkey = FlowKey::new(real.addr, key.src, port, key.sport, key.proto);
            self.maps.conns.nat
                .insert(rkey, NatReverse { service_id: id, real_idx: slot }, 0)
                .map_err(map_err(maps::NAT_REVERSE))?;
        }
        let was_counted = old.is_some_and(|o| o.flags & FLOW_COUNTED != 0 && o.service_id == id && o.real_idx == slot);
        if value.flags & FLOW_COUNTED != 0 && !was_counted {
            self.count_active(id, slot, true)?;
        }
        Ok(true)
    }

    /// Writes a SIP call learned from the active node into this node's call
    /// table (standby side of state sync; `hash` is
    /// `tandem_common::sip::callid_hash` of the Call-ID), counting it as an
    /// active connection of its real server (once: a repeated upsert to the
    /// same real server does not count it again; a move counts it over).
    /// `service` and `real` name the service and real server by key and
    /// address. Returns false if this node has no such service or real server.
    pub fn upsert_synced_call(
        &mut self,
        service: &ServiceKey,
        hash: u64,
        real: (std::net::IpAddr, u16),
        created_ns: u64,
        counted: bool,
    ) -> Result<bool, Error> {
        let Some(img) = self.services.get(service) else {
            return Ok(false);
        };
        let Some(slot) = img.slot_of(real.0, real.1) else {
            return Ok(false);
        };
        let id = img.service.id;
        let key = CallKey::new(id, hash);
        let old = self.maps.conns.calls.get(&key, 0).ok();
        let value = CallValue {
            last_seen_ns: monotonic_coarse_ns(),
            created_ns,
            real_idx: slot,
            flags: if counted { CALL_COUNTED } else { 0 },
        };
        self.maps.conns.calls.insert(key, value, 0).map_err(map_err(maps::CALLS))?;
        // The active counts move with the entry: off the old slot if it
        // counted there, onto the new one if it counts now.
        let was = old.filter(|o| o.flags & CALL_COUNTED != 0).map(|o| o.real_idx);
        let now = counted.then_some(slot);
        if was != now {
            if let Some(s) = was {
                self.count_active(id, s, false)?;
            }
            if let Some(s) = now {
                self.count_active(id, s, true)?;
            }
        }
        Ok(true)
    }

    /// Removes a SIP call (state sync: the active replaced it).
    pub fn remove_synced_call(&mut self, service: &ServiceKey, hash: u64) -> Result<(), Error> {
        let Some(img) = self.services.get(service) else {
            return Ok(());
        };
        let key = CallKey::new(img.service.id, hash);
        if let Ok(old) = self.maps.conns.calls.get(&key, 0) {
            let _ = self.maps.conns.calls.remove(&key);
            if old.flags & CALL_COUNTED != 0 {
                self.count_active(key.service_id, old.real_idx, false)?;
            }
        }
        Ok(())
    }

    /// Removes a SIP call that has ended (its BYE seen: no longer counted),
    /// and only then: a call counted again since is left alone. Returns
    /// whether an entry went.
    pub fn remove_ended_call(&mut self, service: &ServiceKey, hash: u64) -> Result<bool, Error> {
        let Some(img) = self.services.get(service) else {
            return Ok(false);
        };
        let key = CallKey::new(img.service.id, hash);
        match self.maps.conns.calls.get(&key, 0) {
            Ok(old) if old.flags & CALL_COUNTED == 0 => Ok(self.maps.conns.calls.remove(&key).is_ok()),
            _ => Ok(false),
        }
    }

    /// Removes a flow (state sync: the active expired it).
    pub fn remove_synced_flow(&mut self, key: &FlowKey) -> Result<(), Error> {
        if let Ok(old) = self.maps.conns.flows.get(key, 0) {
            let _ = self.maps.conns.flows.remove(key);
            if let Some(svc) = self.services.values().find(|i| i.service.id == old.service_id)
                && svc.forward() == Some(Forward::Nat)
                && let Some(real) = svc.reals.get(old.real_idx as usize)
            {
                let port = if real.port != 0 { real.port } else { key.dport };
                let _ = self.maps.conns.nat.remove(&FlowKey::new(real.addr, key.src, port, key.sport, key.proto));
            }
            if old.flags & FLOW_COUNTED != 0 {
                self.count_active(old.service_id, old.real_idx, false)?;
            }
        }
        Ok(())
    }
}
