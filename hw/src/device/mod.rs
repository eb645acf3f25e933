//! The card driver: safe, typed wrappers over DAHDI ioctls on real file
//! descriptors, in the style of rust-vmm's kvm-ioctls.
//!
//! This module owns the device files: [`Control`] owns the `ctl` node and
//! [`Channel`] owns one channel file (`chan/<span>/<chan>`, or `channel`
//! bound with `DAHDI_SPECIFY`); [`Span`] is a view through the control node.
//! Each ioctl is one method; `unsafe` is confined to the single line that
//! makes the call. Errors name the device path, the ioctl and the errno.
//!
//! It must not decide anything: which spans to start, and when, is the
//! control plane's business. It does not require the nodes to be character
//! devices, so the same code drives the simulator's regular files. It does not
//! block except in [`Channel::wait_event`], which is bounded by its timeout;
//! event-driven callers poll the channel's fd for `POLLPRI` themselves (for
//! example through io_uring) and then call [`Channel::event`].
//!
//! ## Layout
//! - `ioctls.rs`: every ioctl bound once to its request code (the only
//!   `unsafe` functions; nothing outside this module calls them).
//! - `control.rs`: [`Control`] (the `ctl` fd, span-wide ioctls) and [`Span`].
//! - `channel.rs`: [`Channel`] (a channel fd: parameters, hook, events).
//! - `values.rs`: the typed values those ioctls take and return
//!   ([`Alarms`], [`Hook`], [`MaintCommand`], [`Event`], [`SpanStatus`],
//!   [`LineConfig`], [`ChannelConfig`], [`Version`], [`WatchdogStatus`]).
//! - `error.rs`: [`Error`] and [`Result`].
//! - `timing.rs`: [`measure_get_params`] and its [`RoundTrip`].
//!
//! Everything public is re-exported here, so `tandem_hw::device::X` is the
//! path to use.

use std::fs::{File, OpenOptions};
use std::path::Path;

mod channel;
mod control;
mod error;
mod ioctls;
mod timing;
mod values;

pub use channel::Channel;
pub use control::{Control, Span};
pub use error::{Error, Result};
pub use timing::{RoundTrip, measure_get_params};
pub use values::{
    Alarms, ChannelConfig, Event, Hook, LineConfig, MaintCommand, SpanStatus, Version,
    WatchdogStatus,
};

/// Where the DAHDI nodes live on a real system.
pub const DEFAULT_DEVICE_ROOT: &str = "/dev/dahdi";

/// Open a device node for reading and writing, as DAHDI's tools do.
fn open_node(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests;
