//! The maps of the dispatcher's object, one file per concern, each map one
//! table of `tandem_common::abi::maps` (the names the host looks up):
//! `services` (virtual services, real servers, scheduler tables, the port
//! pre-filter), `conns` (connection and NAT reverse tables, flow events),
//! `calls` (SIP calls, call events), `heartbeat` (heartbeat senders and
//! peers, owned VIPs), `counters` (reasons, per-service and per-real
//! counters, active connections) and `node` (settings, interfaces, the
//! redirect devmap). The stages' scratch maps and program array are the
//! pipeline's (`crate::stage`).
//!
//! The host (`tandem_dataplane`) is the only writer of configuration maps
//! and of `REAL_ACTIVE_ADJ`; this program writes flows, calls, counters
//! (`REAL_ACTIVE` among them) and scheduler state. Only small accessors
//! that every stage shares live here, never a decision.

mod calls;
mod conns;
mod counters;
mod heartbeat;
mod node;
mod services;

pub use self::{calls::*, conns::*, counters::*, heartbeat::*, node::*, services::*};
