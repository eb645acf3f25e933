//! The benchmarks `cargo xtask bench <which>` runs through `tandem-bench`:
//! the dispatcher's cost per packet ([`dispatch`], with its end-to-end half
//! [`live`]), director failover against keepalived ([`failover`], with
//! span takeover on simulated cards [`spans`]), state sync ([`sync`]),
//! real SIP calls through a pair ([`calls`]), the fault campaign under
//! SIP load ([`faults`]) and live reloads and edits
//! on a pair under SIP load ([`reload`]), and `tandemd`'s start-up to
//! ready against keepalived's and a trivial XDP program's ([`startup`]);
//! and, from those reports and stated assumptions, the availability of a
//! single director and of the pairs ([`availability`]: no lab, no root).
//!
//! Each writes its JSON and Markdown report into the directory it is
//! given and returns the Markdown. They build on [`crate::lab`] and
//! [`crate::actors`]; they hold no lab or process code of their own beyond
//! what their measurement needs (the failover bench's stamped daemon
//! output, link setter and probe stream).

pub mod availability;
pub mod calls;
pub mod dispatch;
pub mod failover;
pub mod faults;
pub mod live;
pub mod observe;
pub mod reload;
pub mod spans;
pub mod startup;
mod startup_report;
pub mod sync;
pub mod sync_codec;

use std::time::Duration;

/// How often the sync and spans benchmarks ask `tandemctl` while they wait
/// for a state (a takeover, a caught-up standby): the resolution of the
/// times they report from such waits.
pub const TANDEMCTL_POLL: Duration = Duration::from_millis(5);
