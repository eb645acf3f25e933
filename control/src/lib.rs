//! `tandem-control`: the control plane, `tandemd` and `tandemctl`.
//!
//! The deciders are sans-IO state machines, each tested with a simulated
//! clock: [`pair`] (the two-node hot standby: roles, epochs, faults, the
//! witness), [`pool`] (IVR health from their heartbeats, and the merge of
//! health into the services), [`sipprobe`] (SIP OPTIONS health), the
//! sync sessions in [`sync`] (handshake, snapshot, stream, acks) and the
//! card fault hold-down in [`cards`].
//!
//! Around them, the shell: [`daemon`] (`tandemd`'s io_uring loop, a router
//! from completions to the deciders and their actions to the host),
//! [`uring`] (the reactor it waits on), [`clock`] (kernel stamps ↔ `Instant`), [`events`] (the typed events the
//! daemon records and serves), [`config`] (the `tandem.toml` model and its
//! checks), [`admin`] (the admin socket protocol, its non-blocking server
//! framers, the client and `tandemctl`'s tables), [`metrics`] (the
//! Prometheus exposition), [`cards`] (telephony spans and channels over
//! `tandem-hw`), [`vip`] (the VIP address and gratuitous ARPs),
//! [`addrworker`] (address changes off the loop, RTNL can be slow),
//! [`link`] (link state over rtnetlink), [`net`] (the one rtnetlink
//! layer), [`hbsend`] (heartbeat senders)
//! and [`witness`] (the ICMP witness probe). [`clidoc`] writes the
//! binaries' man pages and completions from their clap definitions (packaging).

pub mod addrworker;
pub mod cfgworker;
pub mod admin;
pub mod cards;
pub mod clidoc;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod events;
pub mod hbsend;
pub mod keys;
pub mod link;
pub mod metrics;
pub mod neigh;
pub mod net;
pub mod pair;
pub mod pool;
pub mod reload;
pub mod repeats;
pub mod sipprobe;
pub mod startup;
pub mod sync;
pub mod systemd;
pub mod uring;
pub mod vip;
pub mod witness;
