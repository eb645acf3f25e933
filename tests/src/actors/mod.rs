//! The real peers that act in a lab: IVR stand-ins that answer UDP and TCP
//! ([`responder`]), time-bounded client requests ([`client`]), SIPp as IVR
//! servers and as the caller ([`sipp`]), an IVR's heartbeats to the
//! directors ([`ivr_heartbeat`]) and all of them composed around a pair of
//! directors ([`calls`]).
//!
//! Every actor runs inside a namespace it is given, sends only to the
//! addresses it is given, and stops (thread or process, by its handle or
//! PID) when dropped and after a bounded lifetime. Actors do not build
//! labs or start `tandemd` (that is [`crate::lab`]).

pub mod calls;
pub mod client;
pub mod ivr_heartbeat;
pub mod responder;
pub mod sipp;
