//! An IVR server's heartbeats to the directors: the same authenticated
//! 64-byte datagram `tandemd` sends (`tandem_common::heartbeat`, kind IVR),
//! from the IVR's address to every director's heartbeat port, from a
//! thread inside the IVR's namespace, under the IVR's own key (derived
//! from the IVR master key and its node id), with a boot id drawn when it
//! starts and a sequence from 1. A director that configures the IVR as a
//! real server with its `node_id` marks it dead when these stop.
//!
//! It stops when dropped (or [`IvrHeartbeat::stop`]) and, whatever
//! happens, after [`MAX_LIFETIME`]; it sends nowhere but the addresses it
//! is given.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tandem_dataplane::common::heartbeat::{Key, Kind, LEN, Packet, Repr};
use tandem_dataplane::common::node::NodeState;

use crate::lab::{self, tandemd};
use crate::{Lab, LabError};

/// A heartbeat sender stops by itself after this long.
pub const MAX_LIFETIME: Duration = Duration::from_secs(900);
/// The directors' heartbeat port.
pub const HEARTBEAT_PORT: u16 = 694;

/// A running IVR heartbeat sender.
pub struct IvrHeartbeat {
    stop: Arc<AtomicBool>,
    channels: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
}

impl IvrHeartbeat {
    /// Starts sending every `interval` from `ns` (bound to `local`) to
    /// each of `directors` on [`HEARTBEAT_PORT`], as IVR `node_id` with
    /// `capacity` channels, under `key` (the IVR's own).
    pub fn start(
        ns: &str,
        local: Ipv4Addr,
        directors: &[Ipv4Addr],
        node_id: u32,
        key: [u8; 16],
        interval: Duration,
        capacity: u32,
    ) -> Result<IvrHeartbeat, LabError> {
        IvrHeartbeat::start_for(ns, local, directors, node_id, key, interval, capacity, MAX_LIFETIME)
    }

    /// [`IvrHeartbeat::start`] that stops by itself after `lifetime`
    /// instead of [`MAX_LIFETIME`] (a run longer than it: the fault
    /// campaign, its soak).
    #[allow(clippy::too_many_arguments)]
    pub fn start_for(
        ns: &str,
        local: Ipv4Addr,
        directors: &[Ipv4Addr],
        node_id: u32,
        key: [u8; 16],
        interval: Duration,
        capacity: u32,
        lifetime: Duration,
    ) -> Result<IvrHeartbeat, LabError> {
        let sock = crate::try_in_netns(ns, || UdpSocket::bind((local, 0)))?
            .map_err(|e| LabError::io(format!("binding {local} for heartbeats"), ns, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let channels = Arc::new(AtomicU32::new(0));
        let peers: Vec<SocketAddr> = directors
            .iter()
            .map(|d| SocketAddr::V4(SocketAddrV4::new(*d, HEARTBEAT_PORT)))
            .collect();
        let (s, ch) = (stop.clone(), channels.clone());
        let boot_id = tandem_control::hbsend::draw_boot_id()
            .map_err(|e| LabError::io("drawing a heartbeat boot id", ns, e))?;
        let thread = std::thread::Builder::new()
            .name(format!("ivr heartbeat {node_id}"))
            .spawn(move || {
                // Like tandemd's loop (node.realtime_priority): a sender
                // that waits behind SIPp for 30 ms looks like a dead IVR.
                let param = libc::sched_param { sched_priority: 40 };
                // SAFETY: sched_setscheduler on this thread (0) with a valid
                // parameter; failing (not root) only leaves normal scheduling.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
                let key = Key::from_bytes(&key);
                let mut buf = [0u8; LEN];
                let rounds = (lifetime.as_nanos() / interval.as_nanos().max(1)) as u64;
                for round in 1..=rounds {
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    let repr = Repr {
                        kind: Kind::Ivr,
                        state: NodeState::Active,
                        priority: 0,
                        node_id,
                        path: 0,
                        epoch: 0,
                        boot_id,
                        seq: round,
                        sent_ns: tandem_dataplane::monotonic_ns(),
                        active_channels: ch.load(Ordering::Relaxed),
                        capacity,
                        restart_grace_ms: 0,
                    };
                    repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &key);
                    for p in &peers {
                        // A director that is down is no reason to stop.
                        let _ = sock.send_to(&buf, p);
                    }
                    std::thread::sleep(interval);
                }
            })
            .map_err(|e| LabError::io("spawning a heartbeat thread", ns, e))?;
        Ok(IvrHeartbeat {
            stop,
            channels,
            thread: Some(thread),
        })
    }

    /// IVR `k` of a pair lab (`lab.ivrs()[k]`) to both directors, as
    /// the node its real server has in the pair's configuration
    /// ([`tandemd::ivr_node_id`]) under its own key ([`tandemd::ivr_key_of`]).
    pub fn start_in_pair_lab(
        lab: &Lab,
        k: usize,
        interval: Duration,
        capacity: u32,
    ) -> Result<IvrHeartbeat, LabError> {
        IvrHeartbeat::start_in_pair_lab_for(lab, k, interval, capacity, MAX_LIFETIME)
    }

    /// [`IvrHeartbeat::start_in_pair_lab`] for `lifetime`.
    pub fn start_in_pair_lab_for(
        lab: &Lab,
        k: usize,
        interval: Duration,
        capacity: u32,
        lifetime: Duration,
    ) -> Result<IvrHeartbeat, LabError> {
        let host = lab.ivrs().get(k).copied().ok_or(LabError::BadOption {
            field: "IVR index",
            value: format!("{k} (the lab has {} IVRs)", lab.ivrs().len()),
        })?;
        IvrHeartbeat::start_for(
            &host.ns,
            host.addr(),
            &[lab::DIRECTOR_A_ADDR, lab::DIRECTOR_B_ADDR],
            tandemd::ivr_node_id(k),
            *tandemd::ivr_key_of(tandemd::ivr_node_id(k)),
            interval,
            capacity,
            lifetime,
        )
    }

    /// The active channels reported from now on.
    pub fn set_channels(&self, n: u32) {
        self.channels.store(n, Ordering::Relaxed);
    }

    /// Stops sending (the same as dropping it).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for IvrHeartbeat {
    fn drop(&mut self) {
        self.stop();
    }
}
