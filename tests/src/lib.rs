//! tandem's test lab and the tools end-to-end tests and benchmarks share.
//!
//! Owns: network namespaces that stand in for hosts (client, director(s), IVR
//! servers) joined by veths to bridges, all addressed from 198.18.0.0/15
//! ([`lab`]); running code inside a namespace ([`netns`]); IVR stand-ins that
//! answer UDP and TCP requests ([`responder`]); time-bounded client requests
//! ([`client`]); and the rule for tests that need root ([`privileged`]).
//! Real SIP: SIPp as IVRs and as the caller ([`sipp`]), IVR heartbeats
//! ([`ivr_heartbeat`]), two `tandemd` in a pair lab ([`tandemd`]) and the
//! three together ([`calls`]).
//!
//! It must not send traffic anywhere but into namespaces it created, and it
//! never stops a process it did not start. It does not touch BPF: attaching
//! tandem's XDP program to the lab is `tandem-dataplane`'s job.

pub mod bench_calls;
pub mod bench_dispatch;
pub mod bench_failover;
pub mod bench_live;
pub mod bench_spans;
pub mod bench_sync;
pub mod calls;
pub mod client;
pub mod cmd;
pub mod director;
pub mod error;
pub mod ivr_heartbeat;
pub mod lab;
pub mod netns;
pub mod pairbench;
pub mod privileged;
pub mod responder;
pub mod sipp;
pub mod tandemd;

pub use client::{tcp_request, udp_flows, udp_request};
pub use error::LabError;
pub use lab::{Host, Iface, Lab, LabOptions, Topology};
pub use netns::{cleanup_stale, in_netns, try_in_netns};
pub use privileged::require_privileged;
pub use responder::{Responder, spawn_tcp_responder, spawn_udp_responder};
