//! SIPp in the lab: real SIP calls, with RTP, from a caller in the client
//! namespace through the VIP to IVR servers in their own namespaces.
//!
//! Owns the two scenarios (written by code to files, one IVR scenario per
//! IVR so that each stamps its name on its answers), starting and stopping
//! the SIPp processes by PID, and reading what SIPp itself reports: its
//! statistics file (`-trace_stat`: successful and failed calls, failures
//! by cause, retransmissions), its exit code, and one line per call event
//! from the caller's `<log>` actions (`-trace_logs`), which tells for every
//! call when it was placed, when it was established and on which IVR, and
//! whether it ended with a 200 to its BYE. It also counts RTP in each IVR's
//! namespace ([`RtpCounter`]).
//!
//! - **IVR** ([`SippIvr`]): a SIPp UAS bound to the VIP on port 5060 (the
//!   VIP is on the IVR's `lo`, ARP for it suppressed: direct routing). It
//!   answers an INVITE with 100, 180 and a 200 whose SDP `c=` line is the
//!   IVR's own address, so RTP goes from the caller straight to the IVR and
//!   never crosses a director; `-rtp_echo` sends it back. It waits for the
//!   ACK (optional: a BYE may overtake a lost ACK) and for the caller's BYE,
//!   answers 200 and keeps the call a moment for retransmitted BYEs. Every
//!   answer carries `X-IVR: <name>`.
//! - **Caller** ([`SippCaller`]): a SIPp UAC on client:5060 toward VIP:5060
//!   (`-r`, `-m`, `-d`), so that every call leaves from one socket and only
//!   Call-ID persistence spreads them over the IVRs. After the ACK it plays
//!   SIPp's G.711 A-law recording (`play_pcap_audio`) to the address in the
//!   IVR's SDP for the length of the call, then hangs up.
//!
//! Every SIPp this module starts stops by itself (`-timeout`, receive
//! timeouts, a bounded number of retransmissions), is killed when the
//! thread that started it dies (`PR_SET_PDEATHSIG`), and is stopped by its
//! PID on drop. It never stops a process it did not start.

mod caller;
mod ivr;
mod process;
mod report;
mod rtp;
mod scenario;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use caller::{CallerOptions, SippCaller};
pub use ivr::{IvrOptions, SippIvr};
pub use report::{CallRecord, CallerReport, SippStats, parse_call_log};
pub use rtp::{RtpCount, RtpCounter};
pub use scenario::{caller_scenario, ivr_scenario};

/// How SIPp carries SIP: one UDP socket (`-t u1`) or one TCP connection
/// (`-t t1`) for all its calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

impl Transport {
    /// SIPp's `-t` value.
    pub fn sipp_flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// SIP's port, on the VIP and on the client.
pub const SIP_PORT: u16 = 5060;
/// The port an IVR's SIPp echoes RTP on (`-mp`), on the IVR's own address.
pub const IVR_RTP_PORT: u16 = 6000;
/// The caller's media port (`-mp`): the source port of the RTP it plays.
pub const CALLER_RTP_PORT: u16 = 16000;
/// SIPp's own G.711 A-law recording (Debian `sip-tester`): 236 RTP packets,
/// 20 ms of audio… every 30 ms, about 7 s in all.
pub const PCAP_G711A: &str = "/usr/share/sip-tester/g711a.pcap";
/// Milliseconds between two RTP packets of [`PCAP_G711A`].
pub const PCAP_PACKET_MS: u64 = 30;
/// The longest any SIPp of this module may live.
pub const MAX_LIFETIME: Duration = Duration::from_secs(900);

/// What went wrong with SIPp; each names the file or command involved.
#[derive(Debug, thiserror::Error)]
pub enum SippError {
    #[error(
        "cannot run `{cmd}`: {source} (is SIPp installed? `cargo xtask setup` installs sip-tester)"
    )]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("SIPp statistics {path}: {what}")]
    Stats { path: PathBuf, what: String },
    #[error("{what}")]
    Other { what: String },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SippError + 'a {
    move |source| SippError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// `sipp -v`'s version line (`SIPp v3.6.1-SCTP-PCAP-RTPSTREAM`), or why it cannot run.
pub fn version() -> Result<String, SippError> {
    let out = Command::new("sipp")
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SippError::Spawn {
            cmd: "sipp -v".into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("SIPp v"))
        .map(|l| l.trim_end_matches('.').to_string())
        .ok_or_else(|| SippError::Other {
            what: format!("sipp -v printed no version: {}", text.trim()),
        })
}

/// Seconds since the epoch, on the clock SIPp's `[timestamp]` uses.
pub fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
