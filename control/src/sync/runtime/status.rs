//! What `tandemctl sync` shows of the runtime: its role and the state of
//! its session machine, the session's counters, the tables it holds, the
//! handshakes of the connections it accepted and the recent sync lag.
//! Reads only; changes nothing.

use super::{Role, SyncRuntime};
use crate::{
    admin::SyncReply,
    sync::{PublisherState, SubscriberState},
};

impl SyncRuntime {
    /// The state for `tandemctl sync`.
    pub fn status(&self) -> SyncReply {
        let mut s = SyncReply {
            enabled: true,
            peer: self.conn.as_ref().map(|c| c.peer.to_string()),
            applied: self.applied,
            kernel_errors: self.kernel_errors,
            ..SyncReply::default()
        };
        let store = match &self.role {
            Role::Idle(store) => {
                s.role = "none".into();
                s.state = "idle".into();
                store
            }
            Role::Publishing { store, publisher } => {
                s.role = "publisher".into();
                s.state = match publisher.state() {
                    PublisherState::Disconnected => "disconnected",
                    PublisherState::Handshake => "handshake",
                    PublisherState::AwaitingHello => "awaiting hello",
                    PublisherState::Snapshot => "sending snapshot",
                    PublisherState::Streaming => "streaming",
                }
                .into();
                let st = publisher.stats();
                s.last_seq = publisher.last_seq();
                s.acked = publisher.acked();
                s.queue = publisher.queue_len() as u64;
                s.out_of_date = publisher.out_of_date();
                s.records = st.records;
                s.snapshots = st.snapshots;
                s.resumes = st.resumes;
                s.overflows = st.overflows;
                s.bad_frames = st.bad_frames;
                s.connections = st.connections;
                s.bytes_sent = st.bytes_sent;
                s.bytes_received = st.bytes_received;
                store
            }
            Role::Subscribing(sub) => {
                s.role = "subscriber".into();
                s.state = match sub.state() {
                    SubscriberState::Disconnected => "disconnected",
                    SubscriberState::Handshake => "handshake",
                    SubscriberState::AwaitingHello => "awaiting hello",
                    SubscriberState::CatchingUp => "catching up",
                    SubscriberState::InSync => "in sync",
                }
                .into();
                let st = sub.stats();
                s.last_seq = sub.last_applied();
                s.records = st.records_applied + st.snapshot_records;
                s.snapshots = st.snapshots;
                s.bad_frames = st.bad_frames;
                s.connections = st.connections;
                s.bytes_sent = st.bytes_sent;
                s.bytes_received = st.bytes_received;
                sub.store()
            }
        };
        let a = &self.auth;
        s.accepted = a.accepted;
        s.refused = a.refused;
        s.pending = self.pending.iter().flatten().count() as u64;
        s.pending_dropped = a.pending_dropped;
        s.handshakes = a.handshakes;
        s.handshake_timeouts = a.timeouts;
        s.handshake_bad_proof = a.bad_proof;
        s.handshake_bad_frames = a.bad_frames;
        s.handshake_over_budget = a.over_budget;
        s.handshake_closed = a.closed;
        s.flows = store.flows_len() as u64;
        s.calls = store.calls_len() as u64;
        s.channels = store.channels_len() as u64;
        let mut lag: Vec<u32> = self.lag_us.iter().copied().collect();
        lag.sort_unstable();
        s.lag_samples = lag.len() as u64;
        if !lag.is_empty() {
            let pct = |p: f64| {
                lag[((lag.len() as f64 * p).ceil() as usize).clamp(1, lag.len()) - 1] as u64
            };
            s.lag_p50_us = pct(0.50);
            s.lag_p99_us = pct(0.99);
            s.lag_max_us = *lag.last().unwrap_or(&0) as u64;
        }
        s
    }
}
