//! tandem-hw: telephony cards over DAHDI's user ABI.
//!
//! - [`abi`]: the ioctl numbers, structs and constants of `include/dahdi/user.h`.
//! - [`device`]: the driver — safe wrappers for the `ctl` node, spans and channels.
//! - [`sim`]: the card simulator that serves the same ABI from FUSE mounts
//!   (binary `tandem-cardsim`).
//!
//! This crate is the only one in tandem that issues card ioctls. It decides
//! nothing: the control plane tells it which spans to start and stop.

pub mod abi;
pub mod device;
pub mod sim;

pub use device::{
    Alarms, Channel, ChannelConfig, Control, Error, Event, Hook, LineConfig, MaintCommand,
    RoundTrip, Span, SpanStatus, Version, measure_get_params,
};
