//! State synchronization: the serving director sends every connection-table
//! entry, call record and IVR channel state to the standing-by directors
//! over TCP (port 8848), so that a takeover loses no flow and no call.
//!
//! [`wire`] owns the frame and record layout, [`store`] the synced tables,
//! [`session`] the sans-IO [`Publisher`] and [`Subscriber`] state machines,
//! [`bench`] an in-memory throughput measurement. Nothing here does I/O or
//! reads a clock (except the benchmark): the daemon drives it from its
//! io_uring loop and applies what the subscriber yields to the kernel's
//! tables.

pub mod bench;
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
    VirtualService,
};
