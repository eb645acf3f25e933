//! The one rtnetlink layer of tandem: a `NETLINK_ROUTE` socket
//! ([`RouteSocket`]: requests that wait for their acknowledgement, dumps,
//! and non-blocking reads of notifications) and the few messages the
//! control plane sends and reads, in [`addr`] (IPv4 addresses of an
//! interface) and [`link`] (link up/down, the link dump, link state).
//!
//! The bytes are `netlink-packet-route`'s and `netlink-packet-core`'s, the
//! socket `netlink-sys`'s: nothing here encodes a header by hand. This
//! module holds no state beyond the socket and its sequence numbers, and
//! decides nothing: errors are the kernel's errnos, to be named by the
//! caller (`crate::vip`, `crate::link`, the failover bench).

pub mod addr;
pub mod link;
pub mod neigh;
pub mod resync;
mod socket;

pub use socket::{Message, RouteSocket, encode, messages};
