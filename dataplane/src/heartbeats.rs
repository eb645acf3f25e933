//! What the failover pair drives in the program: heartbeat detection (the
//! SipHash key and port, the configured senders, what the kernel last
//! heard from each on each path) and the IPv4 VIPs it answers ARP for.
//!
//! The pair's decisions (who is active, when to take over) are the
//! control plane's; the heartbeat ring buffer is handed out by `events`,
//! and the records are decoded by `records`.

use tandem_common::*;

use crate::{Dataplane, Error, HeartbeatRecord, error::map_err};

impl Dataplane {
    /// Enables heartbeat detection on `port` with the SipHash `key` (port 0
    /// disables it: datagrams to it are then ordinary traffic).
    pub fn set_heartbeat(&mut self, key: &tandem_common::heartbeat::Key, port: u16) -> Result<(), Error> {
        let cfg = HbConfig { k0: key.k0, k1: key.k1, port, _pad: [0; 3] };
        self.maps.heartbeat.config.set(0, cfg, 0).map_err(map_err(maps::HB_CONFIG))
    }

    /// Declares a heartbeat sender: heartbeats from other node ids, or of
    /// another kind, are refused.
    pub fn add_heartbeat_node(&mut self, node_id: u32, kind: tandem_common::heartbeat::Kind) -> Result<(), Error> {
        self.maps.heartbeat.nodes.insert(node_id, kind as u32, 0).map_err(map_err(maps::HB_NODES))
    }

    pub fn remove_heartbeat_node(&mut self, node_id: u32) -> Result<(), Error> {
        let _ = self.maps.heartbeat.nodes.remove(&node_id);
        let keys: Vec<HbPeerKey> = self.maps.heartbeat.peers.keys().filter_map(Result::ok).filter(|k| k.node_id == node_id).collect();
        for k in keys {
            let _ = self.maps.heartbeat.peers.remove(&k);
        }
        Ok(())
    }

    /// What the kernel last heard from every sender on every path, as the
    /// program wrote it (tests of the ABI; the control plane reads
    /// [`Dataplane::heartbeat_records`]).
    pub fn heartbeat_peers(&self) -> Vec<HbPeer> {
        self.maps.heartbeat.peers.iter().filter_map(Result::ok).map(|(_, v)| v).collect()
    }

    /// What the kernel last heard from every sender on every path,
    /// decoded; a record of a sender kind this version does not know (the
    /// program records only declared senders) is left out.
    pub fn heartbeat_records(&self) -> Vec<HeartbeatRecord> {
        self.heartbeat_peers().iter().filter_map(HeartbeatRecord::from_raw).collect()
    }

    /// Marks an IPv4 VIP as owned (the program answers ARP for it with
    /// `mac`) or not.
    pub fn set_vip_owned(&mut self, vip: std::net::Ipv4Addr, mac: [u8; 6], owned: bool) -> Result<(), Error> {
        let key = u32::from_ne_bytes(vip.octets());
        if owned {
            self.maps.heartbeat.owned_vips.insert(key, Iface { mac, _pad: [0; 2] }, 0).map_err(map_err(maps::OWNED_VIPS))
        } else {
            let _ = self.maps.heartbeat.owned_vips.remove(&key);
            Ok(())
        }
    }
}
