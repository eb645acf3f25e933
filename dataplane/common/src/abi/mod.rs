//! Map layouts shared by the kernel program and the host.
//!
//! Every struct here is `#[repr(C)]` with explicit padding so that the
//! kernel and the host see the same bytes; the sizes are asserted at the
//! bottom of this file. Ports are stored in host byte order, addresses as
//! 16 bytes in network order (IPv4 as the IPv4-mapped IPv6 address
//! `::ffff:a.b.c.d`).
//!
//! One file per concern, all re-exported here (and from the crate root):
//! `service` (services, real servers, scheduler state, port pre-filter),
//! `flow` (connection and NAT reverse tables), `call` (SIP calls),
//! `heartbeat`, `settings` (timeouts, globals, interfaces), `counters`
//! (per-service counters, [`Reason`]), `names` (the map and program names
//! of the object file, [`maps`] and [`progs`]) and `bench`. This module
//! holds the table sizes, the XDP verdicts, and the `Pod` impls and size
//! asserts of every type. Nothing here may do I/O or depend on `std`.

/// Virtual services the program can hold at once (index space of the
/// per-service arrays).
pub const MAX_SERVICES: u32 = 64;
/// Real servers per virtual service.
pub const MAX_REALS: u32 = 32;
/// Slots in the per-real arrays (`MAX_SERVICES * MAX_REALS`).
pub const MAX_REAL_SLOTS: u32 = MAX_SERVICES * MAX_REALS;
/// Buckets of the source/destination hashing tables (IPVS uses 256).
pub const SHDH_BUCKETS: u32 = 256;
/// Longest weighted round-robin cycle a service may have.
pub const WRR_SEQ_MAX: u32 = 4096;
/// Services that can use the Maglev scheduler at once.
pub const MH_SLOTS: u32 = 8;
/// Largest Maglev table (a prime) per slot.
pub const MH_MAX_SIZE: u32 = 131_071;
/// Default Maglev table size (a prime, as in IPVS's mh).
pub const MH_DEFAULT_SIZE: u32 = 65_537;
/// How many further table entries mh/sh/dh look at when the chosen real
/// server is unavailable and the service has `FLAG_SCHED_FALLBACK`.
pub const FALLBACK_PROBES: u32 = 8;
/// Default size of the connection table.
pub const DEFAULT_FLOW_ENTRIES: u32 = 1 << 20;
/// Default size of the SIP call table (`CALLS`).
pub const DEFAULT_CALL_ENTRIES: u32 = 1 << 16;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

mod bench;
mod call;
mod counters;
mod flow;
mod heartbeat;
mod names;
mod service;
mod settings;

pub use self::{
    bench::*, call::*, counters::*, flow::*, heartbeat::*, names::*, service::*, settings::*,
};

/// XDP verdicts (from the kernel's `enum xdp_action`).
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are #[repr(C)], plain old data with explicit padding.
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for Service {}
    unsafe impl aya::Pod for RealServer {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowValue {}
    unsafe impl aya::Pod for NatReverse {}
    unsafe impl aya::Pod for SchedState {}
    unsafe impl aya::Pod for Settings {}
    unsafe impl aya::Pod for Iface {}
    unsafe impl aya::Pod for Counters {}
    unsafe impl aya::Pod for BenchFrame {}
    unsafe impl aya::Pod for Globals {}
    unsafe impl aya::Pod for RealLoad {}
    unsafe impl aya::Pod for FlowEvent {}
    unsafe impl aya::Pod for HbConfig {}
    unsafe impl aya::Pod for DeadMan {}
    unsafe impl aya::Pod for HbBadMac {}
    unsafe impl aya::Pod for HbSenderKey {}
    unsafe impl aya::Pod for HbSender {}
    unsafe impl aya::Pod for HbPeer {}
    unsafe impl aya::Pod for EchoConfig {}
    unsafe impl aya::Pod for EchoRecord {}
    unsafe impl aya::Pod for VipFilter {}
    unsafe impl aya::Pod for CallKey {}
    unsafe impl aya::Pod for CallValue {}
    unsafe impl aya::Pod for CallEvent {}
}

const _: () = {
    assert!(core::mem::size_of::<ServiceKey>() == 24);
    assert!(core::mem::size_of::<Service>() == 56);
    assert!(core::mem::size_of::<RealServer>() == 40);
    assert!(core::mem::size_of::<FlowKey>() == 40);
    assert!(core::mem::size_of::<FlowValue>() == 32);
    assert!(core::mem::size_of::<NatReverse>() == 8);
    assert!(core::mem::size_of::<SchedState>() == 8);
    assert!(core::mem::size_of::<Settings>() == 32);
    assert!(core::mem::size_of::<DeadMan>() == 32);
    assert!(core::mem::size_of::<CallKey>() == 16);
    assert!(core::mem::size_of::<CallValue>() == 24);
    assert!(core::mem::size_of::<CallEvent>() == 160);
    assert!(core::mem::align_of::<CallEvent>() == 8);
    assert!(core::mem::size_of::<Iface>() == 8);
    assert!(core::mem::size_of::<VipFilter>() == 136);
    assert!(core::mem::size_of::<Counters>() == 32);
    assert!(core::mem::size_of::<HbConfig>() == 8);
    assert!(core::mem::size_of::<HbSenderKey>() == 20);
    assert!(core::mem::size_of::<HbSender>() == 48);
    assert!(core::mem::size_of::<HbPeer>() == 88);
    assert!(core::mem::size_of::<EchoConfig>() == 8);
    assert!(core::mem::size_of::<EchoRecord>() == 24);
    assert!(core::mem::size_of::<FlowEvent>() == 80);
    assert!(core::mem::size_of::<BenchFrame>() == 272);
};
