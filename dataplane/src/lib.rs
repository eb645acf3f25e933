//! `tandem-dataplane`: the only crate that touches BPF maps.
//!
//! It loads the XDP object built from `ebpf/` (by this crate's build
//! script), attaches it to interfaces, writes virtual services, real
//! servers and scheduler tables, reads counters and the connection table,
//! and runs the program through `BPF_PROG_TEST_RUN`. It decides nothing:
//! what to configure is the control plane's business.
//!
//! [`Dataplane`] is the loaded object; its methods are split by concern:
//!
//! | module | what it owns |
//! |---|---|
//! | `loader` | load, attach, detach ([`LoadOptions`], [`AttachMode`]); settings and tx ports |
//! | `pin` | the dispatcher's XDP link pinned in bpffs, so that it outlives the process ([`LinkPin`]) |
//! | `services` | [`Dataplane::set_service`]: service images, ids and Maglev slots, the port pre-filter ([`derived`]) |
//! | `synced` | flows and SIP calls learned from the active node (state sync, standby side) |
//! | `flows` | reading, ageing and flushing the connection, call and NAT tables |
//! | `walk` | the connection and call tables read a batch at a time ([`TableWalk`]); the settings read back |
//! | `heartbeats` | heartbeat key, senders and peers; owned VIPs (ARP); guarded VIPs |
//! | `echo` | the echo identity and the echoes that came back ([`EchoReturn`]) |
//! | `events` | the kernel's ring buffers: [`HeartbeatEvents`], [`FlowEvents`], [`CallEvents`] |
//! | `counters` | reason, service and real-server counters; active connections |
//! | `records` | the typed records handed to control ([`HeartbeatRecord`], [`FlowChange`], [`CallChange`], service flags and image views) |
//! | `run` | test runs and benchmark programs ([`RunResult`], [`BenchTarget`], [`BenchRunner`]) |
//! | `handles` | the typed map handles, grouped by concern (`Maps`) |
//! | `error`, `clock` | [`Error`]; the clocks of the program's timestamps |
//!
//! Beside it: [`config`] (a service's configuration, validated),
//! [`image`] (what is written for one service), [`tables`] (the wrr, sh/dh
//! and Maglev tables), [`model`] (the host-side reference model of the
//! whole dispatch decision, built on the same scheduling code,
//! `tandem_common::sched`) and [`packet`] (test frames). [`common`] is the
//! ABI shared with the program.

pub mod config;
pub mod image;
pub mod model;
pub mod packet;
pub mod tables;

mod adopt;
mod clock;
mod counters;
mod deadman;
mod echo;
mod error;
mod events;
mod flows;
mod handles;
mod heartbeats;
mod loader;
mod pin;
mod records;
mod run;
mod services;
mod stages;
mod synced;
mod timings;
mod walk;
mod batch;

use std::collections::HashMap as StdHashMap;

use aya::{Ebpf, programs::xdp::XdpLinkId};
pub use tandem_common as common;
use tandem_common::{MH_SLOTS, ServiceKey};

pub use crate::{
    adopt::{Handoff, LAYOUT_VERSION, Tables, fence_tables, layout_hash, prune_orphans, take_handoff, write_handoff},
    clock::{monotonic_coarse_ns, monotonic_ns},
    deadman::DeadManState,
    echo::EchoReturn,
    config::{ConfigError, Protocol, RealConfig, RealState, ServiceConfig},
    error::Error,
    events::{CallEvents, FlowEvents, HeartbeatEvents, RingEvents},
    heartbeats::HeartbeatSender,
    image::ServiceImage,
    loader::{AttachMode, Attached, LoadOptions, OBJECT, ProgramSize, fmt_mac, ifindex, parse_mac},
    pin::{DEFAULT_PIN_DIR, LinkPin, pin_path, pinned_link_id, pinned_reasons},
    records::{CallChange, FlowChange, FlowFlags, HeartbeatRecord, ServiceFlag, ServiceFlags},
    run::{BenchRunner, BenchTarget, RunResult},
    services::derived,
    timings::{LoadTimings, ProgramLoad, trivial_xdp_start},
    walk::{TableWalk, WalkPosition},
};

/// The loaded dispatcher and its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    maps: handles::Maps,
    options: LoadOptions,
    /// The configured services by key, as written (`services`).
    services: StdHashMap<ServiceKey, ServiceImage>,
    /// Which service holds each Maglev table slot.
    mh_slots: [Option<ServiceKey>; MH_SLOTS as usize],
    /// What `detach_all` undoes: interface, program, link.
    links: Vec<(String, &'static str, XdpLinkId)>,
    /// Dispatcher links pinned in bpffs (`pin`): `detach_all` unpins them.
    pinned: Vec<(std::path::PathBuf, aya::programs::links::PinnedLink)>,
    /// The directory of this dataplane's pinned tables (`adopt`), removed
    /// with the pins unless kept for a successor ([`Dataplane::keep_pins`]).
    tables: Option<std::path::PathBuf>,
    /// Those tables were a predecessor's (`adopt`).
    tables_adopted: bool,
    /// The benchmark wrapper's running counter (`run`).
    bench_seq: u32,
    /// Flow and call changes are pushed to their ring buffers (`events`).
    flow_events_on: bool,
    /// The process the dead-man switch is armed for (`deadman`), kept
    /// across stamps; 0: none.
    dead_man_tgid: u32,
    /// The exit fence (`tandem_exit_fence` on `sched_process_exit`) is
    /// attached; if not, kill -9 is caught by the stale stamp alone.
    exit_fence: bool,
    /// How long [`Dataplane::load`] took, step by step (`timings`).
    load_timings: timings::LoadTimings,
}
