//! The daemon's side of the echo (BFD echo, RFC 5880 §6.4; the program's
//! `echo` stage): which node id this node's echoes carry and whose
//! address they must come back from ([`Dataplane::set_echo_identity`]),
//! and which came back, per path ([`Dataplane::echo_returns`]). The
//! program reflects the peer's echoes on its own; sending echoes and what
//! their return means for the pair are the control plane's business.

use tandem_common::{EchoConfig, EchoRecord, MAX_ECHO_PATHS, maps};

use crate::{Dataplane, Error, error::map_err};

/// The newest of this node's echoes that came back on one path, as the
/// program recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoReturn {
    /// The path number the echo carried.
    pub path: u8,
    /// Its sequence (the newest taken back on the path).
    pub seq: u64,
    /// When it arrived (CLOCK_MONOTONIC ns, `bpf_ktime_get_ns`).
    pub at_ns: u64,
    /// Echoes taken back on the path in all.
    pub count: u64,
}

impl Dataplane {
    /// Sets this node's echo identity: echoes carrying `node_id` that come
    /// back from the heartbeat port of `peer_id`'s configured address
    /// (its `HB_SENDERS` entries, whose key verifies them) are recorded.
    /// `node_id` 0 turns taking echoes back off.
    pub fn set_echo_identity(&mut self, node_id: u32, peer_id: u32) -> Result<(), Error> {
        self.maps.heartbeat.echo_config.set(0, EchoConfig { node_id, peer_id }, 0).map_err(map_err(maps::ECHO_CONFIG))
    }

    /// The echoes that came back, one per path that had any, by path.
    pub fn echo_returns(&self) -> Result<Vec<EchoReturn>, Error> {
        let mut out = Vec::new();
        for path in 0..MAX_ECHO_PATHS {
            let r: EchoRecord = self.maps.heartbeat.echo_returns.get(&path, 0).map_err(map_err(maps::ECHO_RETURNS))?;
            if r.count != 0 {
                out.push(EchoReturn { path: path as u8, seq: r.seq, at_ns: r.at_ns, count: r.count });
            }
        }
        Ok(out)
    }
}
