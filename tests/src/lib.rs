//! tandem's test lab and the tools end-to-end tests and benchmarks share,
//! in three groups:
//!
//! - [`lab`]: building and running the lab. Network namespaces that stand
//!   in for hosts (client, director(s), witness, IVR servers) joined by
//!   veths to bridges, all addressed from 198.18.0.0/15 ([`lab::Lab`]);
//!   running code inside a namespace ([`lab::netns`]) and the lab's
//!   commands ([`lab::cmd`]); the rule for tests that need root
//!   ([`lab::privileged`]); tandem's dispatcher on a lab director
//!   ([`lab::director`]); two `tandemd` in a pair lab ([`lab::tandemd`]);
//!   bounded waits ([`lab::wait`]).
//! - [`actors`]: the real peers that act in a lab. IVR stand-ins that
//!   answer UDP and TCP requests ([`actors::responder`]), time-bounded
//!   client requests ([`actors::client`]), SIPp as IVRs and as the caller
//!   ([`actors::sipp`]), IVR heartbeats ([`actors::ivr_heartbeat`]) and all
//!   of them around a pair ([`actors::calls`]).
//! - [`bench`]: the benchmarks `cargo xtask bench` runs (dispatch,
//!   failover, sync, calls), built on the two groups above.
//!
//! The modules' old flat paths (`tandem_tests::tandemd`, `::sipp`,
//! `::bench_failover`, …) are re-exported below, so callers need not know
//! the groups.
//!
//! It must not send traffic anywhere but into namespaces it created, and it
//! never stops a process it did not start. It does not touch BPF beyond
//! attaching tandem's own programs through `tandem-dataplane`.

pub mod actors;
pub mod bench;
pub mod error;
pub mod lab;

pub use actors::{calls, client, ivr_heartbeat, responder, sipp};
pub use bench::{
    calls as bench_calls, dispatch as bench_dispatch, failover as bench_failover,
    live as bench_live, spans as bench_spans, sync as bench_sync,
};
pub use lab::{cmd, director, netns, privileged, tandemd};

pub use actors::client::{tcp_request, udp_flows, udp_request};
pub use actors::responder::{Responder, spawn_tcp_responder, spawn_udp_responder};
pub use error::LabError;
pub use lab::netns::{cleanup_stale, in_netns, try_in_netns};
pub use lab::privileged::require_privileged;
pub use lab::{Host, Iface, Lab, LabOptions, Topology};

/// Writes `text` to `path` readable and writable by its owner only (mode
/// 0600, also when the file existed with another mode): a `tandem.toml`
/// holding a key inline, or a key file, as tandemd accepts them.
pub fn write_private(path: impl AsRef<std::path::Path>, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt, os::unix::fs::PermissionsExt};
    let path = path.as_ref();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_ref())
}
