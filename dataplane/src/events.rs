//! The ring buffers the kernel pushes records to: heartbeat sender changes
//! ([`HeartbeatEvents`]), connection-table changes ([`FlowEvents`]) and SIP
//! call-table changes ([`CallEvents`]), each handed out once, and the
//! switch that turns the pushing of flow and call changes on (while a
//! standby is synced).
//!
//! A reader never blocks: the caller polls the fd, then drains.

use aya::{Pod, maps::MapData};
use tandem_common::*;

use crate::{Dataplane, Error};

impl Dataplane {
    /// The ring buffer of sender state changes (taken once; the caller
    /// polls its fd for readability, e.g. with io_uring, then drains it).
    pub fn take_heartbeat_events(&mut self) -> Option<HeartbeatEvents> {
        self.maps.rings.heartbeats.take().map(RingEvents::new)
    }

    /// Turns the push of new and expired flows to the flow ring buffer on
    /// or off (on while a standby is synced).
    pub fn set_flow_events(&mut self, on: bool) -> Result<(), Error> {
        self.flow_events_on = on;
        self.write_derived()
    }

    /// The ring buffer of connection-table changes (taken once).
    pub fn take_flow_events(&mut self) -> Option<FlowEvents> {
        self.maps.rings.flows.take().map(RingEvents::new)
    }

    /// The ring buffer of SIP call-table changes (taken once; pushed while
    /// flow events are on, see [`Dataplane::set_flow_events`]).
    pub fn take_call_events(&mut self) -> Option<CallEvents> {
        self.maps.rings.calls.take().map(RingEvents::new)
    }
}

/// Records of type `T` the kernel pushes to a ring buffer: poll the fd
/// for readability (e.g. with io_uring), then drain with `next`.
pub struct RingEvents<T: Pod> {
    rb: aya::maps::RingBuf<MapData>,
    _record: std::marker::PhantomData<T>,
}

impl<T: Pod> RingEvents<T> {
    fn new(rb: aya::maps::RingBuf<MapData>) -> RingEvents<T> {
        RingEvents { rb, _record: std::marker::PhantomData }
    }

    /// The next pending record, if any (non-blocking).
    pub fn next(&mut self) -> Option<T> {
        let item = self.rb.next()?;
        if item.len() < std::mem::size_of::<T>() {
            return None;
        }
        // SAFETY: the kernel wrote a whole T (checked length), a plain-data
        // type; read unaligned.
        Some(unsafe { std::ptr::read_unaligned(item.as_ptr() as *const T) })
    }
}

impl<T: Pod> std::os::fd::AsRawFd for RingEvents<T> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.rb.as_raw_fd()
    }
}

/// Heartbeat sender changes pushed by the kernel (`HB_EVENTS`).
pub type HeartbeatEvents = RingEvents<HbPeer>;
/// Connection-table changes pushed by the kernel (`FLOW_EVENTS`).
pub type FlowEvents = RingEvents<FlowEvent>;
/// SIP call-table changes pushed by the kernel (`CALL_EVENTS`).
pub type CallEvents = RingEvents<CallEvent>;
