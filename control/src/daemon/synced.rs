//! Sync records ↔ this node's kernel tables: the kernel's connection-table
//! and Call-ID changes become records the publisher (active) streams; the
//! records a subscriber (standby) receives are written into its tables by
//! service key and real-server address, which are the same on both
//! directors (their slot ids may differ). Also the loop's side of the sync
//! runtime: its readiness, its timer and its events.
//!
//! Translation only: what to send and when is the sync runtime's.

use std::{
    net::IpAddr,
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use anyhow::Result;
use tandem_dataplane::common::{CallEvent, FlowEvent, FlowKey};

use super::{Daemon, Event, token::Token};
use crate::sync::{Applied, CallRecord, CallState, Record, VirtualService};

/// A dataplane address (16 bytes, IPv4-mapped for IPv4) as an `IpAddr`.
pub(super) fn ip_of(a: &[u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(*a);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// An address as the dataplane keeps it (IPv4-mapped for IPv4).
pub(super) fn mapped(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Milliseconds since the Unix epoch.
pub(super) fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Daemon {
    /// The connection ring: in bounded chunks, heartbeats between them (a
    /// burst of new flows must not delay them).
    pub(super) fn on_flow_ring(&mut self) -> Result<()> {
        let publishing = self.sync.as_ref().is_some_and(|s| s.is_publishing());
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(5) {
            let mut evs = Vec::with_capacity(256);
            if let Some(fe) = self.flow_events.as_mut() {
                while evs.len() < 256
                    && let Some(e) = fe.next()
                {
                    evs.push(e);
                }
            }
            if publishing {
                let now = Instant::now();
                for e in &evs {
                    if let Some(r) = self.flow_record(e)
                        && let Some(sy) = self.sync.as_mut()
                    {
                        sy.record(r, now);
                    }
                }
            }
            self.heartbeat_if_due();
            if evs.len() < 256 {
                break;
            }
        }
        if let Some(f) = &self.flow_events {
            self.ring.poll(Token::FlowRing, f.as_raw_fd(), libc::POLLIN as u32)?;
        }
        Ok(())
    }

    pub(super) fn on_call_ring(&mut self) -> Result<()> {
        let mut evs = Vec::new();
        if let Some(ce) = self.call_events.as_mut() {
            while let Some(e) = ce.next() {
                evs.push(e);
                if evs.len() >= 16_384 {
                    break;
                }
            }
        }
        if self.sync.as_ref().is_some_and(|s| s.is_publishing()) {
            let now = Instant::now();
            for e in &evs {
                if let Some(r) = self.sip_call_record(e)
                    && let Some(sy) = self.sync.as_mut()
                {
                    sy.record(r, now);
                }
            }
        }
        if let Some(c) = &self.call_events {
            self.ring.poll(Token::CallRing, c.as_raw_fd(), libc::POLLIN as u32)?;
        }
        Ok(())
    }

    pub(super) fn on_sync_readable(&mut self) {
        self.sync_polled = None;
        let applied = match self.sync.as_mut() {
            Some(sy) => sy.on_readable(Instant::now()),
            None => Vec::new(),
        };
        if !applied.is_empty() {
            self.apply_synced(applied);
        }
    }

    /// After every turn of the loop: lets sync send what is due, reports
    /// its connection changes and re-arms its poll and timer.
    pub(super) fn sync_turn(&mut self) -> Result<()> {
        let Some(sy) = self.sync.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        sy.handle_timeout(now);
        sy.flush(now);
        let events = sy.take_events();
        let want = sy.conn_poll();
        let at = sy.poll_timeout();
        for e in events {
            self.mark(match e {
                crate::sync::runtime::Event::Connected { peer, dialed } => Event::SyncConnected { peer: peer.to_string(), dialed },
                crate::sync::runtime::Event::Closed { peer, why } => Event::SyncClosed { peer: peer.to_string(), why },
                crate::sync::runtime::Event::InSync => Event::SyncInSync,
            });
        }
        let polled = want.map(|(id, _, ev)| (id, ev));
        if polled != self.sync_polled || (polled.is_some() && !self.ring.is_armed(Token::SyncConn)) {
            self.ring.cancel(Token::SyncConn)?;
            if let Some((_, fd, ev)) = want {
                self.ring.poll(Token::SyncConn, fd, ev)?;
            }
            self.sync_polled = polled;
        }
        self.ring.rearm_if_moved(Token::SyncTimer, at, &mut self.sync_timer_at)?;
        Ok(())
    }

    /// The sync record of a connection-table change from the kernel.
    fn flow_record(&mut self, ev: &FlowEvent) -> Option<Record> {
        use tandem_dataplane::common::{FLOW_EVENT_NEW, FLOW_EVENT_REMOVED};
        match ev.kind {
            FLOW_EVENT_REMOVED => Some(Record::FlowRemoved(ev.key)),
            FLOW_EVENT_NEW => {
                let (vs, (addr, port)) = self.service_real(ev.value.service_id, ev.value.real_idx as usize)?;
                let age_ms = (tandem_dataplane::monotonic_coarse_ns().saturating_sub(ev.value.created_ns) / 1_000_000).min(u32::MAX as u64) as u32;
                Some(Record::Flow(crate::sync::FlowRecord {
                    key: ev.key,
                    service: vs,
                    real_addr: mapped(addr),
                    real_port: port,
                    age_ms,
                    flags: ev.value.flags,
                }))
            }
            _ => None,
        }
    }

    /// The sync record of a SIP Call-ID table change from the kernel. The
    /// record's id is the Call-ID, `ivr` the real server's address, and
    /// `flow` names the virtual service (destination VIP, port and
    /// protocol; no source): enough for the standby to route the dialog's
    /// next message to the same IVR.
    fn sip_call_record(&mut self, ev: &CallEvent) -> Option<Record> {
        use tandem_dataplane::common::{CALL_EVENT_NEW, CALL_EVENT_REMOVED};
        let id = String::from_utf8_lossy(ev.callid()).into_owned();
        if id.is_empty() {
            return None;
        }
        match ev.kind {
            CALL_EVENT_REMOVED => Some(Record::CallRemoved(id)),
            CALL_EVENT_NEW => {
                let (vs, addr) = self.service_real(ev.service_id, ev.real_idx as usize)?;
                let ms = wall_ms();
                Some(Record::Call(CallRecord {
                    id,
                    channel: None,
                    flow: Some(FlowKey::new([0; 16], vs.addr, 0, vs.port, vs.proto)),
                    ivr: Some(mapped(addr.0)),
                    state: CallState::Ringing,
                    created_ms: ms,
                    updated_ms: ms,
                }))
            }
            _ => None,
        }
    }

    /// A service's key and one of its real servers' address, by this
    /// node's ids (cached; refreshed on a miss).
    fn service_real(&mut self, id: u32, slot: usize) -> Option<(VirtualService, (IpAddr, u16))> {
        if !self.svc_cache.get(&id).is_some_and(|(_, slots)| slots.get(slot).is_some_and(|s| s.is_some())) {
            self.svc_cache = self
                .dp
                .services()
                .map(|img| {
                    let vs = VirtualService { addr: img.key.addr, port: img.key.port, proto: img.key.proto };
                    (img.service.id, (vs, img.slot_ids.clone()))
                })
                .collect();
        }
        let (vs, slots) = self.svc_cache.get(&id)?;
        Some((*vs, (*slots.get(slot)?)?))
    }

    /// Writes what the subscriber received into the kernel's tables.
    fn apply_synced(&mut self, applied: Vec<Applied>) {
        let (mut ok, mut refused) = (0u64, 0u64);
        for (i, a) in applied.into_iter().enumerate() {
            if i % 64 == 63 {
                self.heartbeat_if_due();
            }
            match a.record {
                Record::Flow(f) => {
                    let created = tandem_dataplane::monotonic_coarse_ns().saturating_sub(u64::from(f.age_ms) * 1_000_000);
                    match self.dp.upsert_synced_flow(&f.key, &f.service.service_key(), (ip_of(&f.real_addr), f.real_port), created, f.flags) {
                        Ok(true) => ok += 1,
                        Ok(false) => refused += 1,
                        Err(e) => {
                            refused += 1;
                            tracing::error!("sync: writing a flow to {}: {e}", ip_of(&f.real_addr));
                        }
                    }
                }
                Record::FlowRemoved(k) => {
                    if let Err(e) = self.dp.remove_synced_flow(&k) {
                        tracing::error!("sync: removing a flow: {e}");
                    }
                    ok += 1;
                }
                Record::Call(c) if c.channel.is_none() => match self.apply_sip_call(&c) {
                    Ok(true) => ok += 1,
                    Ok(false) => refused += 1,
                    Err(e) => {
                        refused += 1;
                        tracing::error!("sync: writing call {}: {e}", c.id);
                    }
                },
                Record::CallRemoved(id) if super::spans::parse_card_call_id(&id).is_none() => {
                    let hash = tandem_dataplane::common::sip::callid_hash(id.as_bytes());
                    let keys: Vec<_> = self
                        .dp
                        .services()
                        .filter(|img| img.service.flags & tandem_dataplane::common::FLAG_SIP_PERSIST != 0)
                        .map(|img| img.key)
                        .collect();
                    for k in keys {
                        if let Err(e) = self.dp.remove_synced_call(&k, hash) {
                            tracing::error!("sync: removing call {id}: {e}");
                        }
                    }
                    ok += 1;
                }
                // Card calls and channels live in the subscriber's store.
                _ => ok += 1,
            }
        }
        if let Some(sy) = self.sync.as_mut() {
            sy.applied += ok;
            if refused > 0 && sy.kernel_errors == 0 {
                tracing::warn!("sync: {refused} flows name a service or real server this node does not have");
            }
            sy.kernel_errors += refused;
        }
    }

    /// A synced SIP dialog into this node's Call-ID table: the service
    /// from the record's `flow`, the real server by address.
    fn apply_sip_call(&mut self, c: &CallRecord) -> Result<bool, tandem_dataplane::Error> {
        let (Some(f), Some(ivr)) = (c.flow, c.ivr) else {
            return Ok(true); // nothing for the kernel
        };
        let vs = VirtualService { addr: f.dst, port: f.dport, proto: f.proto };
        let skey = vs.service_key();
        let ivr_ip = ip_of(&ivr);
        let Some(real) = self.dp.service(&skey).and_then(|img| img.slot_ids.iter().flatten().find(|(a, _)| *a == ivr_ip).copied()) else {
            return Ok(false);
        };
        let hash = tandem_dataplane::common::sip::callid_hash(c.id.as_bytes());
        let age_ns = wall_ms().saturating_sub(c.created_ms).saturating_mul(1_000_000);
        let created = tandem_dataplane::monotonic_coarse_ns().saturating_sub(age_ns);
        self.dp.upsert_synced_call(&skey, hash, real, created)
    }
}
