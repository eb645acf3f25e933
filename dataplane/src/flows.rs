//! Reading, ageing and flushing the tables the program keeps per
//! connection (`FLOWS`, `NAT_REVERSE`) and per SIP call (`CALLS`).
//!
//! Entries learned from the other node are written by `synced`; this
//! module writes nothing but test and operator actions (age, flush).

use std::os::fd::{AsFd, AsRawFd};

use aya::maps::IterableMap;
use tandem_common::*;

use crate::{Dataplane, Error, error::map_err};

impl Dataplane {
    /// Looks up one flow.
    pub fn flow(&self, key: &FlowKey) -> Option<FlowValue> {
        self.maps.conns.flows.get(key, 0).ok()
    }

    /// Every entry of the connection table.
    pub fn flows(&self) -> Vec<(FlowKey, FlowValue)> {
        self.maps.conns.flows.iter().filter_map(Result::ok).collect()
    }

    /// Looks up one SIP call.
    pub fn call(&self, key: &CallKey) -> Option<CallValue> {
        self.maps.conns.calls.get(key, 0).ok()
    }

    /// Every entry of the SIP call table.
    pub fn calls(&self) -> Vec<(CallKey, CallValue)> {
        self.maps.conns.calls.iter().filter_map(Result::ok).collect()
    }

    /// Every entry of the NAT reverse table.
    pub fn nat_reverse(&self) -> Vec<(FlowKey, NatReverse)> {
        self.maps.conns.nat.iter().filter_map(Result::ok).collect()
    }

    /// Kernel memory charged to the connection table (`memlock` of the
    /// map, from /proc/self/fdinfo), in bytes.
    pub fn flow_table_bytes(&self) -> Option<u64> {
        let fd = self.maps.conns.flows.map().fd().as_fd().as_raw_fd();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
        info.lines().find_map(|l| {
            l.strip_prefix("memlock:")
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Empties the connection and NAT reverse tables and zeroes the
    /// active-connection counts (tests; an operator's `flush`).
    pub fn clear_flows(&mut self) -> Result<(), Error> {
        let keys: Vec<FlowKey> = self.maps.conns.flows.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = self.maps.conns.flows.remove(&k);
        }
        let keys: Vec<FlowKey> = self.maps.conns.nat.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = self.maps.conns.nat.remove(&k);
        }
        let keys: Vec<CallKey> = self.maps.conns.calls.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = self.maps.conns.calls.remove(&k);
        }
        self.zero_active_conns()
    }

    /// Makes every flow and SIP call look `by_ns` older (tests of idle
    /// timeouts).
    pub fn age_flows(&mut self, by_ns: u64) -> Result<(), Error> {
        for (k, mut v) in self.flows() {
            v.last_seen_ns = v.last_seen_ns.saturating_sub(by_ns);
            self.maps.conns.flows.insert(k, v, 0).map_err(map_err(maps::FLOWS))?;
        }
        for (k, mut v) in self.calls() {
            v.last_seen_ns = v.last_seen_ns.saturating_sub(by_ns);
            self.maps.conns.calls.insert(k, v, 0).map_err(map_err(maps::CALLS))?;
        }
        Ok(())
    }
}
