//! tandem-hw: telephony cards over DAHDI's user ABI.
//!
//! - [`abi`]: the ioctl numbers, structs and constants of `include/dahdi/user.h`.
//! - [`device`]: the driver — one struct per device fd, one safe method per
//!   ioctl: `device/control.rs` ([`Control`], the `ctl` node, and [`Span`]),
//!   `device/channel.rs` ([`Channel`]), with the bindings in `device/ioctls.rs`,
//!   the typed values in `device/values.rs`, [`Error`] in `device/error.rs` and
//!   [`measure_get_params`] in `device/timing.rs`.
//! - [`sim`]: the card simulator that serves the same ABI from FUSE mounts
//!   (binary `tandem-cardsim`): the model in `sim/model/` (`mod.rs` holds the
//!   state; `span`, `channel`, `events`, `alarm`, `trunk`, `card` and `watchdog` hold its
//!   operations), the FUSE filesystem (`sim/fs.rs`), mounting (`sim/mount.rs`)
//!   and the control protocol (`sim/control.rs`).
//!
//! This crate is the only one in tandem that issues card ioctls. It decides
//! nothing: the control plane tells it which spans to start and stop.

pub mod abi;
pub mod device;
pub mod sim;

pub use device::{
    Alarms, Channel, ChannelConfig, Control, Error, Event, Hook, LineConfig, MaintCommand,
    RoundTrip, Span, SpanStatus, Version, WatchdogStatus, measure_get_params,
};
