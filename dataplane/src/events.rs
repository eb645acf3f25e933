//! The ring buffers the kernel pushes records to: heartbeat sender changes
//! ([`HeartbeatEvents`]), connection-table changes ([`FlowEvents`]) and SIP
//! call-table changes ([`CallEvents`]), each handed out once, and the
//! switch that turns the pushing of flow and call changes on (while a
//! standby is synced).
//!
//! A reader never blocks: the caller polls the fd, then drains. It hands
//! out the program's records as they are (`next`, for tests of the ABI)
//! or decoded (`next_record`, `next_change`: the control plane's view,
//! [`crate::records`]), skipping and counting any it cannot decode.

use aya::{Pod, maps::MapData};
use tandem_common::*;

use crate::{CallChange, Dataplane, Error, FlowChange, HeartbeatRecord};

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
    /// Records read but not decoded (a kind this version does not know).
    skipped: u64,
    _record: std::marker::PhantomData<T>,
}

impl<T: Pod> RingEvents<T> {
    fn new(rb: aya::maps::RingBuf<MapData>) -> RingEvents<T> {
        RingEvents { rb, skipped: 0, _record: std::marker::PhantomData }
    }

    /// Records the typed readers skipped so far: ones carrying a kind this
    /// version does not know (the program never writes one).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The next pending record that `decode` accepts, counting the ones it
    /// refuses.
    fn next_decoded<R>(&mut self, decode: impl Fn(&T) -> Option<R>) -> Option<R> {
        loop {
            let raw = self.next()?;
            match decode(&raw) {
                Some(r) => return Some(r),
                None => self.skipped += 1,
            }
        }
    }

    /// The next pending record as the program wrote it, if any
    /// (non-blocking).
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

impl HeartbeatEvents {
    /// The next pending sender change, decoded (non-blocking).
    pub fn next_record(&mut self) -> Option<HeartbeatRecord> {
        self.next_decoded(HeartbeatRecord::from_raw)
    }
}

impl FlowEvents {
    /// The next pending connection-table change, decoded (non-blocking).
    pub fn next_change(&mut self) -> Option<FlowChange> {
        self.next_decoded(FlowChange::from_raw)
    }
}

impl CallEvents {
    /// The next pending SIP call-table change, decoded (non-blocking).
    pub fn next_change(&mut self) -> Option<CallChange> {
        self.next_decoded(CallChange::from_raw)
    }
}
