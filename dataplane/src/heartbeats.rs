//! What the failover pair drives in the program: heartbeat detection (the
//! port, the senders it takes heartbeats from — each bound to its node
//! id, source address, interface and key — and what the kernel last took
//! from each), the IPv4 VIPs it answers ARP for, and the VIPs it guards
//! (every VIP the pair may own: dropped while not owned).
//!
//! The pair's decisions (who is active, when to take over) are the
//! control plane's; the heartbeat ring buffer is handed out by `events`,
//! and the records are decoded by `records`. Key bytes go into the map
//! and nowhere else: no error or record here carries them.

use std::net::IpAddr;

use tandem_common::{
    heartbeat::{Key, Kind},
    *,
};

use crate::{Dataplane, Error, HeartbeatRecord, config::addr16, error::map_err};

/// A heartbeat sender the kernel takes heartbeats from (one `HB_SENDERS`
/// entry): heartbeats claiming `node_id` are taken only from `addr`, on
/// `ifindex` (0: any interface), of `kind`, authenticated with `key` or,
/// during a key rotation, with `next_key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatSender {
    pub node_id: u32,
    pub addr: IpAddr,
    pub kind: Kind,
    pub ifindex: u32,
    /// Its own key (`Key`'s `Debug` prints none of it).
    pub key: Key,
    /// The key it moves to during a rotation: its heartbeats are taken
    /// under either (those under this one counted as `Reason::HbNextKey`).
    pub next_key: Option<Key>,
    /// How long its current boot must be silent before a new boot may
    /// replace it (`heartbeat::window::admit`; saturates at u32::MAX µs).
    pub restart_gap: std::time::Duration,
}

impl Dataplane {
    /// Enables heartbeat detection on `port` (port 0 disables it:
    /// datagrams to it are then ordinary traffic). Heartbeats are taken
    /// only from the senders added with [`Dataplane::add_heartbeat_sender`].
    pub fn set_heartbeat_port(&mut self, port: u16) -> Result<(), Error> {
        let cfg = HbConfig { port, _pad: [0; 3] };
        self.maps.heartbeat.config.set(0, cfg, 0).map_err(map_err(maps::HB_CONFIG))
    }

    /// Declares a heartbeat sender; adding the same (node id, address)
    /// again replaces its kind, interface and keys and forgets what the
    /// kernel took from it.
    pub fn add_heartbeat_sender(&mut self, s: &HeartbeatSender) -> Result<(), Error> {
        let (key, value) = sender_entry(s);
        self.maps.heartbeat.senders.insert(key, value, 0).map_err(map_err(maps::HB_SENDERS))?;
        let _ = self.maps.heartbeat.peers.remove(&key);
        Ok(())
    }

    /// Writes a declared sender's entry again (new keys, a key rotation)
    /// and keeps what the kernel took from it: its last heartbeat, boot
    /// and sequence stay, so the sender is heard throughout. One map
    /// update: a heartbeat is checked under the old entry or the new one,
    /// never a mix.
    pub fn rekey_heartbeat_sender(&mut self, s: &HeartbeatSender) -> Result<(), Error> {
        let (key, value) = sender_entry(s);
        self.maps.heartbeat.senders.insert(key, value, 0).map_err(map_err(maps::HB_SENDERS))
    }

    /// Forgets every sender entry of `node_id` and what the kernel took
    /// from them.
    pub fn remove_heartbeat_node(&mut self, node_id: u32) -> Result<(), Error> {
        let senders: Vec<HbSenderKey> =
            self.maps.heartbeat.senders.keys().filter_map(Result::ok).filter(|k| k.node_id == node_id).collect();
        for k in senders {
            let _ = self.maps.heartbeat.senders.remove(&k);
        }
        let peers: Vec<HbSenderKey> =
            self.maps.heartbeat.peers.keys().filter_map(Result::ok).filter(|k| k.node_id == node_id).collect();
        for k in peers {
            let _ = self.maps.heartbeat.peers.remove(&k);
        }
        Ok(())
    }

    /// What the kernel last took from every sender, as the program wrote
    /// it (tests of the ABI; the control plane reads
    /// [`Dataplane::heartbeat_records`]).
    pub fn heartbeat_peers(&self) -> Vec<HbPeer> {
        self.maps.heartbeat.peers.iter().filter_map(Result::ok).map(|(_, v)| v).collect()
    }

    /// Bad-MAC heartbeats per configured sender: (node id, count, time of
    /// the last one in ns, interface) — a sender that is alive but holds
    /// another key.
    pub fn bad_mac_senders(&self) -> Vec<(u32, u64, u64, u32)> {
        self.maps.heartbeat.bad_mac.iter().filter_map(Result::ok).map(|(k, v)| (k.node_id, v.count, v.last_ns, v.ifindex)).collect()
    }

    /// What the kernel last took from every sender, decoded; a record of
    /// a sender kind this version does not know (the program records only
    /// declared senders) is left out.
    pub fn heartbeat_records(&self) -> Vec<HeartbeatRecord> {
        self.heartbeat_peers().iter().filter_map(HeartbeatRecord::from_raw).collect()
    }

    /// Marks an IPv4 VIP as owned (the program answers ARP for it with
    /// `mac`) or not.
    pub fn set_vip_owned(&mut self, vip: std::net::Ipv4Addr, mac: [u8; 6], owned: bool) -> Result<(), Error> {
        let key = u32::from_ne_bytes(vip.octets());
        if owned {
            self.write_vip_filter(Some(vip.to_ipv6_mapped().octets()), false)?;
            self.maps.heartbeat.owned_vips.insert(key, Iface { mac, _pad: [0; 2] }, 0).map_err(map_err(maps::OWNED_VIPS))?;
        } else {
            // The guard's fast path goes off before the VIP stops being owned.
            self.write_vip_filter(None, true)?;
            let _ = self.maps.heartbeat.owned_vips.remove(&key);
        }
        self.write_vip_filter(None, false)
    }

    /// Declares an IPv4 VIP the pair may own, or forgets it (the VIP
    /// guard): while a declared VIP is not owned ([`Dataplane::set_vip_owned`])
    /// the program drops traffic to it (`Reason::VipNotOwned`) instead of
    /// passing it to the stack or dispatching it. VIPs never declared are
    /// not guarded.
    pub fn set_vip_guarded(&mut self, vip: std::net::Ipv4Addr, guarded: bool) -> Result<(), Error> {
        let key = u32::from_ne_bytes(vip.octets());
        if guarded {
            // In the filter, and the guard's fast path off, before the
            // VIP is guarded (it may not be owned).
            self.write_vip_filter(Some(vip.to_ipv6_mapped().octets()), true)?;
            self.maps.heartbeat.vips.insert(key, 1, 0).map_err(map_err(maps::VIPS))?;
        } else {
            let _ = self.maps.heartbeat.vips.remove(&key);
        }
        self.write_vip_filter(None, false)
    }

    /// The guarded VIPs ([`Dataplane::set_vip_guarded`]).
    pub fn guarded_vips(&self) -> Vec<std::net::Ipv4Addr> {
        self.maps.heartbeat.vips.keys().filter_map(Result::ok).map(|k| std::net::Ipv4Addr::from(k.to_ne_bytes())).collect()
    }
}

/// The `HB_SENDERS` entry of `s`: its key and value.
fn sender_entry(s: &HeartbeatSender) -> (HbSenderKey, HbSender) {
    let key = HbSenderKey { node_id: s.node_id, addr: addr16(s.addr) };
    let restart_gap_us = u32::try_from(s.restart_gap.as_micros()).unwrap_or(u32::MAX);
    let (n0, n1) = s.next_key.map_or((0, 0), |k| (k.k0, k.k1));
    let value = HbSender {
        k0: s.key.k0,
        k1: s.key.k1,
        n0,
        n1,
        ifindex: s.ifindex,
        restart_gap_us,
        kind: s.kind as u8,
        _pad: [0; 7],
    };
    (key, value)
}
