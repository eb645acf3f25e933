//! Building and running the lab: the topology of namespaces, veths and
//! bridges ([`topology`], whose items are re-exported here so that
//! `lab::Lab`, `lab::CLIENT`, `lab::DIRECTOR_A`, … read as before), the
//! commands it runs ([`cmd`]), entering namespaces ([`netns`]), the rule
//! for tests that need root ([`privileged`]), tandem's dispatcher on a
//! lab director ([`director`]), two `tandemd` in a pair lab
//! ([`tandemd`]), simulated cards on a shared trunk ([`cards`]), the real
//! dahdi-tools run against a simulated card ([`dahdi_tools`]), bounded
//! polling ([`wait`]), simulated hypervisor steal time on the lab's
//! CPUs ([`steal`]) and a noisy neighbour beside a pair ([`noise`]).
//!
//! Nothing here plays a peer (SIP, heartbeats, requests: see
//! [`crate::actors`]) or measures anything (see [`crate::bench`]).

pub mod bpffs;
pub mod cards;
pub mod dahdi_tools;
pub mod cmd;
pub mod director;
pub mod netns;
pub mod noise;
pub mod packet;
pub mod privileged;
pub mod steal;
pub mod tandemd;
pub mod topology;
pub mod wait;

pub use topology::*;
