//! What a reload changes in a running daemon, sans-IO: the daemon holds
//! state by the index of a service and of a real server in its
//! configuration (the IVR slots, the SIP verdicts, the probes), and a new
//! configuration may add, remove or reorder them. This module maps the
//! old places to the new ones by identity ([`Places`], the same identity
//! as [`crate::config::diff`]: a service by protocol, VIP and port, a real
//! server by address and port), so that the health of what did not change
//! is kept, and says what the dataplane must be told: which services to
//! write or remove ([`service_writes`]) and which IVR heartbeat senders to
//! forget or declare ([`sender_changes`]).
//!
//! Nothing here reads a file or touches the kernel; the daemon
//! (`daemon::reload`) carries the results out.

use std::collections::{HashMap, HashSet};

use tandem_dataplane::{HeartbeatSender, ServiceConfig, common::ServiceKey};

use crate::config::{
    Config,
    diff::{RealId, ServiceId},
};

/// A real server's place: (service index, real index) in a configuration.
pub type Place = (usize, usize);

/// Old places → new places of the real servers present in both
/// configurations (by identity).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Places {
    old_to_new: HashMap<Place, Place>,
}

impl Places {
    pub fn between(old: &Config, new: &Config) -> Places {
        let mut by_id: HashMap<(ServiceId, RealId), Place> = HashMap::new();
        for (si, s) in new.services.iter().enumerate() {
            for (ri, r) in s.reals.iter().enumerate() {
                by_id.insert((ServiceId::of(s), RealId::of(r)), (si, ri));
            }
        }
        let mut old_to_new = HashMap::new();
        for (si, s) in old.services.iter().enumerate() {
            for (ri, r) in s.reals.iter().enumerate() {
                if let Some(p) = by_id.get(&(ServiceId::of(s), RealId::of(r))) {
                    old_to_new.insert((si, ri), *p);
                }
            }
        }
        Places { old_to_new }
    }

    /// Where the real server at `old` is now (None: it was removed).
    pub fn get(&self, old: Place) -> Option<Place> {
        self.old_to_new.get(&old).copied()
    }

    /// A set of old places as new places; removed ones are dropped.
    pub fn remap(&self, set: &HashSet<Place>) -> HashSet<Place> {
        set.iter().filter_map(|p| self.get(*p)).collect()
    }
}

/// The IVR servers of a configuration: heartbeat node id → the places
/// it serves at (one IVR may be a real server of several services).
pub fn ivr_slots(cfg: &Config) -> HashMap<u32, Vec<Place>> {
    let mut slots: HashMap<u32, Vec<Place>> = HashMap::new();
    for (si, s) in cfg.services.iter().enumerate() {
        for (ri, r) in s.reals.iter().enumerate() {
            if let Some(n) = r.node_id {
                slots.entry(n).or_default().push((si, ri));
            }
        }
    }
    slots
}

/// What to write to the dataplane to go from the services `old` to
/// `new` (both with health applied): the keys of services to remove, then
/// the indices in `new` of the services to write (new or different).
/// Services equal in both are not touched: their scheduler state, tables
/// and counters stay as they are.
pub fn service_writes(old: &[ServiceConfig], new: &[ServiceConfig]) -> (Vec<ServiceKey>, Vec<usize>) {
    let old_by_key: HashMap<ServiceKey, &ServiceConfig> = old.iter().map(|s| (s.key(), s)).collect();
    let new_keys: HashSet<ServiceKey> = new.iter().map(ServiceConfig::key).collect();
    let removed = old
        .iter()
        .map(ServiceConfig::key)
        .filter(|k| !new_keys.contains(k))
        .collect();
    let written = new
        .iter()
        .enumerate()
        .filter(|(_, s)| old_by_key.get(&s.key()).is_none_or(|o| *o != *s))
        .map(|(i, _)| i)
        .collect();
    (removed, written)
}

/// What a reload changes of the heartbeat senders ([`sender_changes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SenderChanges {
    /// Node ids whose entries are forgotten, with what the kernel took
    /// from them.
    pub forget: Vec<u32>,
    /// Senders declared afresh (after `forget`).
    pub declare: Vec<HeartbeatSender>,
    /// Senders that differ in their keys only (a key rotation): their
    /// entries are written in place, and what the kernel took from them
    /// (boot, sequence, last heartbeat) stays, so the peer is heard
    /// throughout.
    pub rekey: Vec<HeartbeatSender>,
}

/// The heartbeat senders to change: the node ids to forget (in `old`,
/// not in `new`, or declared differently in `new` other than in their
/// keys), the senders to declare (in `new` and not declared the same in
/// `old`), and those whose keys alone changed. A sender declared the same
/// keeps what the kernel took from it (its boot and sequence window), so
/// an unchanged IVR does not flap; so does a re-keyed one.
pub fn sender_changes(old: &[HeartbeatSender], new: &[HeartbeatSender]) -> SenderChanges {
    let same = |a: &HeartbeatSender, list: &[HeartbeatSender]| list.iter().any(|b| b == a);
    let keyless = |s: &HeartbeatSender| HeartbeatSender {
        key: Default::default(),
        next_key: None,
        ..*s
    };
    let rekeyed = |a: &HeartbeatSender, list: &[HeartbeatSender]| list.iter().any(|b| keyless(b) == keyless(a));
    let mut forget: Vec<u32> = old
        .iter()
        .filter(|o| !rekeyed(o, new))
        .map(|o| o.node_id)
        .collect();
    forget.sort_unstable();
    forget.dedup();
    // Forgetting a node id forgets all its entries: those that stay are
    // declared again.
    let declare = new
        .iter()
        .filter(|n| !rekeyed(n, old) || forget.contains(&n.node_id))
        .copied()
        .collect();
    let rekey = new
        .iter()
        .filter(|n| rekeyed(n, old) && !same(n, old) && !forget.contains(&n.node_id))
        .copied()
        .collect();
    SenderChanges {
        forget,
        declare,
        rekey,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tandem_common::heartbeat::{Key, Kind};

    const BASE: &str = r#"
[node]
id = 1
name = "a"
peer_id = 2
[heartbeat]
key = "000102030405060708090a0b0c0d0e0f"
ivr_key = "0f0e0d0c0b0a09080706050403020100"
[[heartbeat.paths]]
name = "link"
interface = "lo"
local = "198.18.1.1"
peer = "198.18.1.2"
[[vip]]
address = "198.18.0.100"
interface = "lo"
"#;

    fn cfg(services: &str) -> Config {
        Config::parse(&format!("{BASE}{services}")).expect("config")
    }

    fn svc(port: u16, reals: &[(u8, u32)]) -> String {
        let mut s = format!(
            "[[service]]\nvip = \"198.18.0.100\"\nport = {port}\nprotocol = \"udp\"\nscheduler = \"wrr\"\n"
        );
        for (k, w) in reals {
            s += &format!(
                "[[service.real]]\naddress = \"198.18.0.{k}\"\nmac = \"02:00:00:00:00:{k:02x}\"\nweight = {w}\nnode_id = {}\n",
                100 + u32::from(*k)
            );
        }
        s
    }

    #[test]
    fn places_follow_identity_through_reorder_add_and_remove() {
        let old = cfg(&(svc(5060, &[(21, 1), (22, 1), (23, 1)]) + &svc(5080, &[(21, 1)])));
        // 5080 first now, 22 removed, 24 added, 21 and 23 swapped.
        let new = cfg(&(svc(5080, &[(21, 3)]) + &svc(5060, &[(23, 1), (24, 1), (21, 1)])));
        let p = Places::between(&old, &new);
        assert_eq!(p.get((0, 0)), Some((1, 2)), "21 in 5060");
        assert_eq!(p.get((0, 1)), None, "22 was removed");
        assert_eq!(p.get((0, 2)), Some((1, 0)), "23 in 5060");
        assert_eq!(p.get((1, 0)), Some((0, 0)), "21 in 5080, weight edited: same place");
        let down: HashSet<Place> = [(0, 1), (0, 2)].into();
        assert_eq!(p.remap(&down), [(1, 0)].into(), "the verdict on 23 is kept, 22's goes");
        let slots = ivr_slots(&new);
        assert_eq!(slots[&121], vec![(0, 0), (1, 2)]);
        assert_eq!(slots[&124], vec![(1, 1)]);
        assert!(!slots.contains_key(&122));
    }

    #[test]
    fn only_changed_services_are_written() {
        let idx = |_: &str| Some(1);
        let old = cfg(&(svc(5060, &[(21, 1), (22, 1)]) + &svc(5080, &[(21, 1)]) + &svc(5090, &[(23, 1)])));
        let new = cfg(&(svc(5080, &[(21, 1)]) + &svc(5060, &[(21, 1), (22, 5)]) + &svc(6000, &[(23, 1)])));
        let (o, n) = (old.dataplane_services(idx).unwrap(), new.dataplane_services(idx).unwrap());
        let (removed, written) = service_writes(&o, &n);
        assert_eq!(removed, vec![o[2].key()], "5090 goes");
        assert_eq!(written, vec![1, 2], "5060 (weight) and 6000 (new); 5080 is untouched");
        assert_eq!(service_writes(&o, &o), (vec![], vec![]));
    }

    #[test]
    fn unchanged_senders_keep_their_kernel_state() {
        let s = |node_id: u32, last: u8, key: u64| HeartbeatSender {
            node_id,
            addr: format!("198.18.0.{last}").parse().unwrap(),
            kind: Kind::Ivr,
            ifindex: 0,
            key: Key { k0: key, k1: key },
            next_key: None,
            restart_gap: Duration::from_millis(20),
        };
        let old = [s(121, 21, 1), s(122, 22, 1), s(123, 23, 1)];
        let new = [s(121, 21, 1), s(123, 23, 2), s(124, 24, 1)];
        let c = sender_changes(&old, &new);
        assert_eq!(c.forget, vec![122], "removed");
        assert_eq!(c.declare, vec![s(124, 24, 1)], "121 is left alone");
        assert_eq!(c.rekey, vec![s(123, 23, 2)], "re-keyed in place");
        // Moved to another interface: forgotten and declared again.
        let moved = [HeartbeatSender { ifindex: 7, ..s(121, 21, 1) }];
        let c = sender_changes(&old[..1], &moved);
        assert_eq!((c.forget, c.declare, c.rekey), (vec![121], moved.to_vec(), vec![]));
    }

    /// The three steps of a key rotation on the peer director's entries
    /// (one per heartbeat path): every step is a rewrite in place, none
    /// forgets what the kernel took from the peer.
    #[test]
    fn a_key_rotation_rewrites_the_peers_entries_in_place() {
        let (old_key, new_key) = (Key { k0: 1, k1: 2 }, Key { k0: 3, k1: 4 });
        let peer = |last: u8, key: Key, next_key: Option<Key>| HeartbeatSender {
            node_id: 2,
            addr: format!("198.18.1.{last}").parse().unwrap(),
            kind: Kind::Director,
            ifindex: u32::from(last),
            key,
            next_key,
            restart_gap: Duration::from_millis(20),
        };
        let both = |key: Key, next: Option<Key>| [peer(2, key, next), peer(12, key, next)];
        let steps = [
            (both(old_key, None), both(old_key, Some(new_key))),
            (both(old_key, Some(new_key)), both(new_key, Some(old_key))),
            (both(new_key, Some(old_key)), both(new_key, None)),
        ];
        for (from, to) in steps {
            let c = sender_changes(&from, &to);
            assert!(c.forget.is_empty() && c.declare.is_empty(), "{c:?}");
            assert_eq!(c.rekey, to.to_vec());
        }
        assert_eq!(sender_changes(&both(old_key, None), &both(old_key, None)), SenderChanges::default());
    }
}
