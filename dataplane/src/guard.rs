//! The VIP set the program guards (`VIPS`) and the echo identity and
//! returns (`ECHO_ID`, `ECHO_RETURNS`), plus the bad-MAC record per
//! heartbeat sender (`HB_BAD_MAC`): what the failover pair reads and
//! writes beside heartbeats. `VIPS` is derived here, never written by
//! callers: every service VIP (`VIP_SERVICE`) and every VIP whose
//! ownership was declared with [`Dataplane::set_vip_owned`]
//! (`VIP_DECLARED`, `VIP_OWNED`); `GLOBALS.vip_guard` is on while the
//! dead-man switch is armed or some VIP is declared. What to own, and
//! what an echo return means, is the control plane's decision.

use std::collections::HashMap as StdHashMap;

use tandem_common::*;

use crate::{Dataplane, Error, error::map_err};

/// What came back of this node's echo requests on one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoReturn {
    pub path: u8,
    /// The highest sequence returned.
    pub seq: u64,
    /// When it came back (`bpf_ktime_get_ns`, CLOCK_MONOTONIC).
    pub arrived_ns: u64,
    /// Returns taken on this path.
    pub count: u64,
}

/// Bad-MAC heartbeats from one configured sender: alive, other key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMac {
    pub node_id: u32,
    /// The sender's source address (16 bytes, IPv4-mapped, as in
    /// `HbSenderKey`).
    pub addr: [u8; 16],
    pub count: u64,
    /// The last one's arrival (`bpf_ktime_get_ns`).
    pub last_ns: u64,
    /// The interface it came in on.
    pub ifindex: u32,
}

impl Dataplane {
    /// Rewrites `VIPS` from the services and the declared VIPs (entries
    /// added or changed first, stale ones removed last).
    pub(crate) fn write_vips(&mut self) -> Result<(), Error> {
        let mut want: StdHashMap<[u8; 16], u32> = StdHashMap::new();
        for img in self.services.values() {
            *want.entry(img.service.key.addr).or_default() |= VIP_SERVICE;
        }
        for (addr, owned) in &self.declared_vips {
            let f = want.entry(*addr).or_default();
            *f |= VIP_DECLARED;
            if *owned {
                *f |= VIP_OWNED;
            }
        }
        for (addr, flags) in &want {
            if self.vips_written.get(addr) != Some(flags) {
                self.maps.heartbeat.vips.insert(*addr, *flags, 0).map_err(map_err(maps::VIPS))?;
            }
        }
        for addr in self.vips_written.keys() {
            if !want.contains_key(addr) {
                let _ = self.maps.heartbeat.vips.remove(addr);
            }
        }
        self.vips_written = want;
        Ok(())
    }

    /// Is the VIP guard on (the program looks destinations up in `VIPS`)?
    pub(crate) fn vip_guard_on(&self) -> bool {
        self.dead_man_armed || !self.declared_vips.is_empty()
    }

    /// The VIP set as the program sees it: address to `VIP_*` flags.
    pub fn vips(&self) -> Vec<([u8; 16], u32)> {
        self.maps.heartbeat.vips.iter().filter_map(Result::ok).collect()
    }

    /// Sets this node's echo identity: the node id reflected echoes carry,
    /// and the boot id of this node's own echo requests (returns of
    /// another boot are stale). Until it is set, no echo is reflected.
    pub fn set_echo_identity(&mut self, node_id: u32, boot_id: u64) -> Result<(), Error> {
        let id = EchoId { node_id, _pad: 0, boot_id };
        self.maps.heartbeat.echo_id.set(0, id, 0).map_err(map_err(maps::ECHO_ID))
    }

    /// The returns of this node's echo requests, one per path seen.
    pub fn echo_returns(&self) -> Result<Vec<EchoReturn>, Error> {
        let mut out = Vec::new();
        for path in 0..ECHO_PATHS {
            let s = self.maps.heartbeat.echo_returns.get(&path, 0).map_err(map_err(maps::ECHO_RETURNS))?;
            if s.count > 0 {
                out.push(EchoReturn { path: path as u8, seq: s.seq, arrived_ns: s.arrived_ns, count: s.count });
            }
        }
        Ok(out)
    }

    /// Bad-MAC heartbeats per configured sender (a sender that is alive
    /// but holds another key).
    pub fn bad_mac_senders(&self) -> Result<Vec<BadMac>, Error> {
        let mut out = Vec::new();
        for e in self.maps.heartbeat.bad_mac.iter() {
            let (k, v) = e.map_err(map_err(maps::HB_BAD_MAC))?;
            out.push(BadMac { node_id: k.node_id, addr: k.addr, count: v.count, last_ns: v.last_ns, ifindex: v.ifindex });
        }
        Ok(out)
    }
}
