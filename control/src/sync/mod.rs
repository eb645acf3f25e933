//! State synchronization: the serving director sends every connection-table
//! entry, call record and IVR channel state to the standing-by directors
//! over TCP (port 8848), so that a takeover loses no flow and no call.
//!
//! [`wire`] owns the frame and record layout, [`store`] the synced tables,
//! [`session`] the sans-IO [`Publisher`] and [`Subscriber`] state machines.
//! None of them does I/O or reads a clock. [`apply`] translates records
//! to and from this node's kernel tables. [`runtime`] is the I/O shell
//! around them: the sync sockets, and which role the node plays; the
//! daemon drives it from its io_uring loop and applies what the subscriber
//! yields to the kernel's tables. Decisions of the protocol belong in the
//! sessions, not in the shell. (The in-memory throughput benchmark lives
//! in `tandem-tests`, `bench::sync_codec`.)
//!
//! # Driving it
//! - **Active**: keep a [`Store`]; for every change (a new flow from the
//!   ring buffer, an expiry, a call or channel event) apply it to the store,
//!   then [`Publisher::record`] it into each peer's publisher. On a TCP
//!   connection to a standby: `connected(now, random nonce)` (or run a
//!   [`session::Handshake`] of its own and [`Publisher::adopt`] what it
//!   established: the standby proves the sync key before any state
//!   leaves, and every frame after the handshake is sealed), then write
//!   what `poll_transmit(now, &store)` returns, feed frames cut by a
//!   [`Deframer`] to `handle_frame`, call `handle_timeout` at
//!   `poll_timeout`; on any error close and later reconnect.
//! - **Standby**: a [`Subscriber`]; write each [`Applied`] it returns into
//!   the kernel's connection table (service key → service id, real address →
//!   slot, age → created time) and the call store; acks come out of its
//!   `poll_transmit`. On takeover, [`Subscriber::into_store`] seeds the new
//!   active's store; a node that steps down can start its subscriber
//!   [`Subscriber::with_store`] so the snapshot it gets changes only what
//!   differs.

pub mod apply;
pub mod runtime;
pub mod session;
pub mod store;
pub mod wire;

pub use session::{
    Applied, Publisher, PublisherConfig, PublisherState, PublisherStats, SessionError, Subscriber,
    SubscriberConfig, SubscriberState, SubscriberStats,
};
pub use store::{SnapshotCursor, SnapshotSource, Store};
pub use wire::{
    CallRecord, CallState, ChannelRef, ChannelState, DEFAULT_PORT, Deframer, FlowRecord, Record,
    ServicesPart, VirtualService,
};
