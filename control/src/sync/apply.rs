//! Sync records ↔ a node's kernel tables. The publisher's side turns the
//! kernel's connection-table and Call-ID changes into [`Record`]s; the
//! subscriber's side writes received records into its own tables. Both
//! directors name a flow's service by its key (VIP, port, protocol) and
//! its real server by address, never by their slot ids, which may differ
//! between them; this module does that translation through the
//! [`Dataplane`]'s service images (cached, refreshed on a miss).
//!
//! It decides nothing about what to send or when (the sessions do) and
//! owns no socket; it touches the kernel only through [`Dataplane`].

use std::{collections::HashMap, net::IpAddr};

use tandem_dataplane::{CallChange, Dataplane, FlowChange, ServiceFlag, common::FlowKey};

use super::{Applied, CallRecord, CallState, FlowRecord, Record, VirtualService};

/// A dataplane address (16 bytes, IPv4-mapped for IPv4) as an `IpAddr`.
pub fn ip_of(a: &[u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(*a);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// An address as the dataplane keeps it (IPv4-mapped for IPv4).
pub fn mapped(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Milliseconds since the Unix epoch (call records carry wall times: the
/// directors' monotonic clocks differ).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The sync id of a card channel's call: `dahdi/<card>/<span>/<channel>`,
/// the card by its position in the configuration (the same on both
/// directors; their device roots differ).
pub fn card_call_id(card: usize, span: u32, channel: u32) -> String {
    format!("dahdi/{card}/{span}/{channel}")
}

/// (card, span, channel) of a card call's sync id; `None` for any other
/// id (a SIP Call-ID).
pub fn parse_card_call_id(id: &str) -> Option<(usize, u32, u32)> {
    let mut it = id.strip_prefix("dahdi/")?.split('/');
    let card = it.next()?.parse().ok()?;
    let span = it.next()?.parse().ok()?;
    let channel = it.next()?.parse().ok()?;
    it.next().is_none().then_some((card, span, channel))
}

/// Card calls are not the kernel's.
fn is_card_call(id: &str) -> bool {
    parse_card_call_id(id).is_some()
}

/// What one batch of received records did to the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyCount {
    /// Written (or nothing for the kernel to do).
    pub ok: u64,
    /// Naming a service or real server this node does not have, or
    /// refused by the kernel.
    pub refused: u64,
}

/// A service as the cache holds it: its key and its real servers by slot.
type ServiceSlots = (VirtualService, Vec<Option<(IpAddr, u16)>>);

/// The translation, with its cache of service ids → [`ServiceSlots`].
#[derive(Default)]
pub struct Translator {
    services: HashMap<u32, ServiceSlots>,
}

impl Translator {
    /// Forgets the cached service images (after the services changed).
    pub fn invalidate(&mut self) {
        self.services.clear();
    }

    /// A service's key and one of its real servers' address, by this
    /// node's ids.
    fn service_real(
        &mut self,
        dp: &Dataplane,
        id: u32,
        slot: usize,
    ) -> Option<(VirtualService, (IpAddr, u16))> {
        if !self
            .services
            .get(&id)
            .is_some_and(|(_, slots)| slots.get(slot).is_some_and(|s| s.is_some()))
        {
            self.services = dp
                .services()
                .map(|img| {
                    let vs = VirtualService {
                        addr: img.key.addr,
                        port: img.key.port,
                        proto: img.key.proto,
                    };
                    (img.service.id, (vs, img.slot_ids.clone()))
                })
                .collect();
        }
        let (vs, slots) = self.services.get(&id)?;
        Some((*vs, (*slots.get(slot)?)?))
    }

    /// The record of a connection-table change from the kernel.
    pub fn flow_record(&mut self, dp: &Dataplane, change: &FlowChange) -> Option<Record> {
        match *change {
            FlowChange::Removed { key } => Some(Record::FlowRemoved(key)),
            FlowChange::New {
                key,
                service_id,
                real_slot,
                created_ns,
                flags,
            } => {
                let (vs, (addr, port)) = self.service_real(dp, service_id, real_slot as usize)?;
                let age_ms = (tandem_dataplane::monotonic_coarse_ns().saturating_sub(created_ns)
                    / 1_000_000)
                    .min(u32::MAX as u64) as u32;
                Some(Record::Flow(FlowRecord {
                    key,
                    service: vs,
                    real_addr: mapped(addr),
                    real_port: port,
                    age_ms,
                    flags: flags.bits(),
                }))
            }
        }
    }

    /// The record of a SIP Call-ID table change from the kernel: its id is
    /// the Call-ID, `ivr` the real server's address, and `flow` names the
    /// virtual service (destination VIP, port and protocol; no source):
    /// enough for the standby to route the dialog's next message to the
    /// same IVR.
    pub fn sip_call_record(&mut self, dp: &Dataplane, change: CallChange) -> Option<Record> {
        match change {
            CallChange::Removed { call_id, .. } => {
                Some(Record::CallRemoved(call_id_text(call_id)?))
            }
            CallChange::New {
                call_id,
                service_id,
                real_slot,
                ..
            } => self.call_record(dp, call_id, service_id, real_slot, CallState::Ringing, 0),
            // Ended: the same call, hung up (the standby stops counting it).
            CallChange::Ended {
                call_id,
                service_id,
                real_slot,
                created_ns,
            } => {
                let age_ms = tandem_dataplane::monotonic_coarse_ns().saturating_sub(created_ns) / 1_000_000;
                self.call_record(dp, call_id, service_id, real_slot, CallState::HungUp, age_ms)
            }
        }
    }

    /// A SIP call's record: its Call-ID, its service, its IVR, `age_ms`
    /// since it was scheduled.
    fn call_record(
        &mut self,
        dp: &Dataplane,
        call_id: Vec<u8>,
        service_id: u32,
        real_slot: u32,
        state: CallState,
        age_ms: u64,
    ) -> Option<Record> {
        let id = call_id_text(call_id)?;
        let (vs, addr) = self.service_real(dp, service_id, real_slot as usize)?;
        let ms = wall_ms();
        Some(Record::Call(CallRecord {
            id,
            channel: None,
            flow: Some(FlowKey::new([0; 16], vs.addr, 0, vs.port, vs.proto)),
            ivr: Some(mapped(addr.0)),
            state,
            created_ms: ms.saturating_sub(age_ms),
            updated_ms: ms,
        }))
    }

    /// Writes one received record into the kernel's tables (card calls
    /// and channels live in the subscriber's store only).
    pub fn apply(&mut self, dp: &mut Dataplane, a: &Applied, count: &mut ApplyCount) {
        match &a.record {
            Record::Flow(f) => {
                let created = tandem_dataplane::monotonic_coarse_ns()
                    .saturating_sub(u64::from(f.age_ms) * 1_000_000);
                match dp.upsert_synced_flow(
                    &f.key,
                    &f.service.service_key(),
                    (ip_of(&f.real_addr), f.real_port),
                    created,
                    f.flags,
                ) {
                    Ok(true) => count.ok += 1,
                    Ok(false) => count.refused += 1,
                    Err(e) => {
                        count.refused += 1;
                        tracing::error!("sync: writing a flow to {}: {e}", ip_of(&f.real_addr));
                    }
                }
            }
            Record::FlowRemoved(k) => {
                if let Err(e) = dp.remove_synced_flow(k) {
                    tracing::error!("sync: removing a flow: {e}");
                }
                count.ok += 1;
            }
            Record::Call(c) if c.channel.is_none() => match apply_sip_call(dp, c) {
                Ok(true) => count.ok += 1,
                Ok(false) => count.refused += 1,
                Err(e) => {
                    count.refused += 1;
                    tracing::error!("sync: writing call {}: {e}", c.id);
                }
            },
            Record::CallRemoved(id) if !is_card_call(id) => {
                let hash = tandem_dataplane::common::sip::callid_hash(id.as_bytes());
                for k in sip_services(dp) {
                    if let Err(e) = dp.remove_synced_call(&k, hash) {
                        tracing::error!("sync: removing call {id}: {e}");
                    }
                }
                count.ok += 1;
            }
            _ => count.ok += 1,
        }
    }
}

/// The services that keep SIP calls by Call-ID.
fn sip_services(dp: &Dataplane) -> Vec<tandem_dataplane::common::ServiceKey> {
    dp.services()
        .filter(|img| img.has_flag(ServiceFlag::SipPersist))
        .map(|img| img.key)
        .collect()
}

/// Removes an ended SIP call (its linger over) from this node's kernel
/// table, in every service keeping Call-IDs, unless it counts again.
/// Returns how many entries went.
pub fn remove_ended_sip_call(dp: &mut Dataplane, id: &str) -> usize {
    let hash = tandem_dataplane::common::sip::callid_hash(id.as_bytes());
    let mut n = 0;
    for k in sip_services(dp) {
        match dp.remove_ended_call(&k, hash) {
            Ok(gone) => n += usize::from(gone),
            Err(e) => tracing::error!(
                "removing ended call {id} from service {}:{}: {e}",
                ip_of(&k.addr),
                k.port
            ),
        }
    }
    n
}

/// The kernel's copy of a Call-ID as a sync id (bytes that are not UTF-8
/// replaced); `None` for an empty one.
fn call_id_text(bytes: Vec<u8>) -> Option<String> {
    let id = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (!id.is_empty()).then_some(id)
}

/// A synced SIP dialog into this node's Call-ID table: the service from
/// the record's `flow`, the real server by address.
fn apply_sip_call(dp: &mut Dataplane, c: &CallRecord) -> Result<bool, tandem_dataplane::Error> {
    let (Some(f), Some(ivr)) = (c.flow, c.ivr) else {
        return Ok(true); // nothing for the kernel
    };
    let vs = VirtualService {
        addr: f.dst,
        port: f.dport,
        proto: f.proto,
    };
    let skey = vs.service_key();
    let ivr_ip = ip_of(&ivr);
    let Some(real) = dp.service(&skey).and_then(|img| {
        img.slot_ids
            .iter()
            .flatten()
            .find(|(a, _)| *a == ivr_ip)
            .copied()
    }) else {
        return Ok(false);
    };
    let hash = tandem_dataplane::common::sip::callid_hash(c.id.as_bytes());
    let age_ns = wall_ms()
        .saturating_sub(c.created_ms)
        .saturating_mul(1_000_000);
    let created = tandem_dataplane::monotonic_coarse_ns().saturating_sub(age_ns);
    // A hung-up call keeps routing its last messages, uncounted.
    dp.upsert_synced_call(&skey, hash, real, created, c.state != CallState::HungUp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_both_ways() {
        for a in ["198.18.0.21", "2001:db8::5"] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(ip_of(&mapped(ip)), ip);
        }
        assert!(is_card_call("dahdi/0/1/2") && !is_card_call("a84b4c76e66710@pc33.example.com"));
    }

    #[test]
    fn card_call_ids_round_trip_and_reject_others() {
        assert_eq!(card_call_id(1, 2, 31), "dahdi/1/2/31");
        assert_eq!(parse_card_call_id("dahdi/1/2/31"), Some((1, 2, 31)));
        for bad in [
            "dahdi/1/2",
            "dahdi/1/2/3/4",
            "a84b4c76e66710@pc33.example.com",
            "dahdi/x/1/1",
            "",
        ] {
            assert_eq!(parse_card_call_id(bad), None, "{bad}");
        }
    }
}
