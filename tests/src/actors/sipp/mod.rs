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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

// ---------------------------------------------------------------------------
// Scenarios

/// The IVR's scenario (SIPp UAS), answering as `name` (lowercase letters
/// and digits: the caller reads it back with a regular expression).
pub fn ivr_scenario(name: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- tandem IVR {name}: written by tandem-tests (sipp.rs). -->
<scenario name="tandem ivr {name}">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 100 Trying
[last_Via:]
[last_From:]
[last_To:];tag=[pid]{name}[call_number]
[last_Call-ID:]
[last_CSeq:]
X-IVR: {name}
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]{name}[call_number]
[last_Call-ID:]
[last_CSeq:]
X-IVR: {name}
Contact: <sip:ivr@[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <!-- SDP: the IVR's own address (-mi), so RTP does not cross the director. -->
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]{name}[call_number]
[last_Call-ID:]
[last_CSeq:]
X-IVR: {name}
Contact: <sip:ivr@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o={name} 1 1 IN IP[media_ip_type] [media_ip]
s=tandem
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=ptime:30
]]></send>
  <recv request="ACK" optional="true" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
X-IVR: {name}
Content-Length: 0

]]></send>
  <!-- A retransmitted BYE (our 200 lost) is answered again meanwhile. -->
  <timewait milliseconds="2000"/>
</scenario>
"#
    )
}

/// The caller's scenario (SIPp UAC). Logs `S <n> <timestamp>` when call
/// `n` starts, `E <n> <ivr> <timestamp> <call-id>` once established (ACK
/// sent), `D <n> <ivr> <timestamp>` when its BYE got a 200, naming the IVR
/// that answered the BYE (which must be the one that answered the INVITE).
/// With `rtp`, plays [`PCAP_G711A`] to the IVR's SDP address after the ACK.
pub fn caller_scenario(rtp: bool) -> String {
    let play = if rtp {
        format!(r#"<exec play_pcap_audio="{PCAP_G711A}"/>"#)
    } else {
        String::new()
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- tandem caller: written by tandem-tests (sipp.rs). -->
<scenario name="tandem caller">
  <nop><action><log message="S [call_number] [timestamp]"/></action></nop>
  <send retrans="500"><![CDATA[
INVITE sip:ivr@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:ivr@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Subject: tandem lab call
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 1 1 IN IP[media_ip_type] [media_ip]
s=tandem
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=ptime:30
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true">
    <action>
      <ereg regexp="[a-z0-9]+" search_in="hdr" header="X-IVR:" assign_to="ivr"/>
    </action>
  </recv>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:ivr@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action>
    <log message="E [call_number] [$ivr] [timestamp] [call_id]"/>
    {play}
  </action></nop>
  <pause/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:ivr@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true">
    <action>
      <ereg regexp="[a-z0-9]+" search_in="hdr" header="X-IVR:" assign_to="byeivr"/>
      <log message="D [call_number] [$byeivr] [timestamp]"/>
    </action>
  </recv>
</scenario>
"#
    )
}

// ---------------------------------------------------------------------------
// What SIPp reports

/// The last row of a SIPp statistics file (`-trace_stat`): cumulative
/// counters, by SIPp's column names without the `(C)`.
#[derive(Clone, Debug, Default)]
pub struct SippStats {
    values: BTreeMap<String, String>,
}

impl SippStats {
    /// Parses a `-trace_stat` file (`;`-separated, a header line, then one
    /// row per report period and a last one at exit).
    pub fn parse(text: &str) -> Result<SippStats, String> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = lines.next().ok_or("empty file")?;
        let last = lines.next_back().ok_or("no statistics row yet")?;
        let names: Vec<&str> = header.split(';').collect();
        let cells: Vec<&str> = last.split(';').collect();
        if !names.contains(&"SuccessfulCall(C)") {
            return Err(format!("no SuccessfulCall(C) column in {header:?}"));
        }
        let mut values = BTreeMap::new();
        for (n, v) in names.iter().zip(cells) {
            let key = n.trim().trim_end_matches("(C)");
            if n.ends_with("(P)") {
                continue;
            }
            values.insert(key.to_string(), v.trim().to_string());
        }
        Ok(SippStats { values })
    }

    /// Reads and parses a statistics file.
    pub fn read(path: &Path) -> Result<SippStats, SippError> {
        let text = std::fs::read_to_string(path).map_err(io_err("reading", path))?;
        SippStats::parse(&text).map_err(|what| SippError::Stats {
            path: path.to_owned(),
            what,
        })
    }

    /// A cumulative counter (0 if absent).
    pub fn get(&self, name: &str) -> u64 {
        self.values
            .get(name)
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    pub fn created(&self) -> u64 {
        self.get("TotalCallCreated")
    }
    pub fn incoming(&self) -> u64 {
        self.get("IncomingCall")
    }
    pub fn outgoing(&self) -> u64 {
        self.get("OutgoingCall")
    }
    pub fn current(&self) -> u64 {
        self.get("CurrentCall")
    }
    pub fn successful(&self) -> u64 {
        self.get("SuccessfulCall")
    }
    pub fn failed(&self) -> u64 {
        self.get("FailedCall")
    }
    pub fn retransmissions(&self) -> u64 {
        self.get("Retransmissions")
    }
    pub fn out_of_call(&self) -> u64 {
        self.get("OutOfCallMsgs")
    }
    pub fn dead_call(&self) -> u64 {
        self.get("DeadCallMsgs")
    }

    /// Failed calls by SIPp's cause (`MaxUDPRetrans`, `UnexpectedMessage`,
    /// `TimeoutOnRecv`, …), non-zero ones only.
    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.values
            .keys()
            .filter(|k| k.starts_with("Failed") && k.as_str() != "FailedCall")
            .map(|k| (k.trim_start_matches("Failed").to_string(), self.get(k)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// `created 200, successful 200, failed 0, retransmissions 3`, and the causes.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "created {}, successful {}, failed {}, retransmissions {}",
            self.created(),
            self.successful(),
            self.failed(),
            self.retransmissions()
        );
        if self.current() > 0 {
            let _ = write!(s, ", in progress {}", self.current());
        }
        if self.out_of_call() > 0 {
            let _ = write!(s, ", out-of-call messages {}", self.out_of_call());
        }
        let f = self.failures();
        if !f.is_empty() {
            let causes: Vec<String> = f.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = write!(s, " (failed: {})", causes.join(", "));
        }
        s
    }
}

/// One call of the caller, from its `<log>` lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallRecord {
    /// SIPp's call number, from 1.
    pub number: u64,
    /// When the INVITE was first sent (wall clock, s since the epoch).
    pub started: Option<f64>,
    /// When the ACK was sent.
    pub established: Option<f64>,
    /// The IVR that answered (its `X-IVR`).
    pub ivr: Option<String>,
    pub call_id: Option<String>,
    /// When the BYE got its 200.
    pub done: Option<f64>,
    /// The IVR that answered the BYE.
    pub bye_ivr: Option<String>,
}

impl CallRecord {
    /// The BYE got its 200 from the IVR that answered the INVITE: the
    /// dialog stayed on one IVR from end to end.
    pub fn succeeded(&self) -> bool {
        self.done.is_some() && self.bye_ivr.is_some() && self.bye_ivr == self.ivr
    }
    /// Established at or before `t` (wall clock).
    pub fn established_before(&self, t: f64) -> bool {
        self.established.is_some_and(|e| e <= t)
    }
    /// Placed (first INVITE) at or after `t`.
    pub fn started_after(&self, t: f64) -> bool {
        self.started.is_some_and(|s| s >= t)
    }
}

/// The epoch seconds of a SIPp `[timestamp]` (`date<TAB>time<TAB>epoch.usec`):
/// the first token that is a number with a fraction above 10^9.
fn epoch_of(tokens: &[&str]) -> Option<f64> {
    tokens
        .iter()
        .filter(|t| t.contains('.') && !t.contains(':') && !t.contains('-'))
        .filter_map(|t| t.parse::<f64>().ok())
        .find(|v| *v > 1e9)
}

/// Parses the caller's log lines into one record per call, by call number.
pub fn parse_call_log(text: &str) -> Vec<CallRecord> {
    let mut calls: BTreeMap<u64, CallRecord> = BTreeMap::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let (Some(kind), Some(n)) = (t.first(), t.get(1).and_then(|n| n.parse::<u64>().ok()))
        else {
            continue;
        };
        let at = epoch_of(&t);
        let c = calls.entry(n).or_insert_with(|| CallRecord {
            number: n,
            ..CallRecord::default()
        });
        match *kind {
            "S" => c.started = at,
            "E" => {
                c.established = at;
                c.ivr = t.get(2).map(|s| s.to_string());
                c.call_id = t.last().filter(|s| s.contains('@')).map(|s| s.to_string());
            }
            "D" => {
                c.done = at;
                c.bye_ivr = t.get(2).map(|s| s.to_string());
            }
            _ => {}
        }
    }
    calls.into_values().collect()
}

// ---------------------------------------------------------------------------
// Processes

/// Makes the child die with the thread that started it (a test that
/// panics or is killed leaves no SIPp behind).
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl(2) is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A SIPp process started with `ip netns exec` (which execs: the child's
/// PID is SIPp's own).
struct SippProcess {
    child: Option<Child>,
    cmdline: String,
}

impl SippProcess {
    fn spawn(
        ns: &str,
        args: &[String],
        cwd: &Path,
        output: &Path,
    ) -> Result<SippProcess, SippError> {
        let out = std::fs::File::create(output).map_err(io_err("creating", output))?;
        let err = out.try_clone().map_err(io_err("duplicating", output))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "sipp"])
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        die_with_parent(&mut cmd);
        let cmdline = format!("ip netns exec {ns} sipp {}", args.join(" "));
        let child = cmd.spawn().map_err(|source| SippError::Spawn {
            cmd: cmdline.clone(),
            source,
        })?;
        Ok(SippProcess {
            child: Some(child),
            cmdline,
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit code if it has exited (None: still running, or killed by a signal).
    fn try_exit(&mut self) -> Option<Option<i32>> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(st)) => Some(st.code()),
            _ => None,
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the PID of our own child, not yet reaped.
            unsafe { libc::kill(pid as libc::pid_t, sig) };
        }
    }

    /// Waits up to `timeout` for the process to exit; its exit code if it did.
    fn wait_for(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(code) = self.try_exit() {
                return Some(code);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `sig`, up to `grace` to exit, then SIGKILL; reaps it. The exit code
    /// if it exited by itself or on `sig`.
    fn stop(&mut self, sig: libc::c_int, grace: Duration) -> Option<i32> {
        self.child.as_ref()?;
        if let Some(code) = self.try_exit() {
            self.child = None;
            return code;
        }
        self.signal(sig);
        let code = self.wait_for(grace).flatten();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        code
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// RTP counting

/// What an [`RtpCounter`] saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtpCount {
    /// UDP datagrams received for the IVR's media address and port.
    pub received: u64,
    /// UDP datagrams sent from it (SIPp's echo).
    pub echoed: u64,
}

/// Counts RTP in a namespace: a packet socket on one interface counts the
/// UDP datagrams addressed to `addr:port` (received) and sent from it
/// (echoed). A thread in the namespace; stops when dropped and, whatever
/// happens, after [`MAX_LIFETIME`].
pub struct RtpCounter {
    received: Arc<AtomicU64>,
    echoed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpCounter {
    pub fn start(
        ns: &str,
        ifindex: u32,
        addr: Ipv4Addr,
        port: u16,
    ) -> Result<RtpCounter, SippError> {
        let received = Arc::new(AtomicU64::new(0));
        let echoed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (r, e, s, ns_t) = (
            received.clone(),
            echoed.clone(),
            stop.clone(),
            ns.to_string(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("rtp count {ns}"))
            .spawn(move || {
                let fd = match crate::lab::netns::enter_on_this_thread(&ns_t)
                    .map_err(|e| e.to_string())
                    .and_then(|()| packet_socket(ifindex))
                {
                    Ok(fd) => {
                        let _ = tx.send(Ok(()));
                        fd
                    }
                    Err(err) => {
                        let _ = tx.send(Err(err));
                        return;
                    }
                };
                count_rtp(&fd, addr, port, &r, &e, &s);
            })
            .map_err(|source| SippError::Io {
                what: "spawning the RTP counter in",
                path: PathBuf::from(ns),
                source,
            })?;
        let started = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| Err("did not start".into()));
        let counter = RtpCounter {
            received,
            echoed,
            stop,
            thread: Some(thread),
        };
        started.map(|()| counter).map_err(|what| SippError::Other {
            what: format!("RTP counter in {ns}: {what}"),
        })
    }

    pub fn count(&self) -> RtpCount {
        RtpCount {
            received: self.received.load(Ordering::Relaxed),
            echoed: self.echoed.load(Ordering::Relaxed),
        }
    }
}

impl Drop for RtpCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An AF_PACKET datagram socket (frames from the network header on) bound
/// to `ifindex`, with a 50 ms receive timeout and a large buffer. It takes
/// every protocol: the kernel shows outgoing frames only to such sockets.
fn packet_socket(ifindex: u32) -> Result<OwnedFd, String> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            proto as libc::c_int,
        )
    };
    if raw < 0 {
        return Err(format!(
            "socket(AF_PACKET): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: raw is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!(
            "bind to ifindex {ifindex}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    let buf: libc::c_int = 8 << 20;
    // SAFETY: setsockopt with pointers to live values of the stated sizes.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&buf as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(fd)
}

fn count_rtp(
    fd: &OwnedFd,
    addr: Ipv4Addr,
    port: u16,
    received: &AtomicU64,
    echoed: &AtomicU64,
    stop: &AtomicBool,
) {
    let deadline = Instant::now() + MAX_LIFETIME;
    let mut buf = [0u8; 64];
    let me = addr.octets();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        // SAFETY: zeroed sockaddr_ll is valid; recvfrom writes at most its size.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf and from are live and their sizes are passed.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            continue; // timeout (EAGAIN) or EINTR: look at the stop flag
        }
        if from.sll_protocol != (libc::ETH_P_IP as u16).to_be() {
            continue;
        }
        let n = (n as usize).min(buf.len());
        let p = &buf[..n];
        if n < 20 || p[0] >> 4 != 4 || p[9] != 17 {
            continue;
        }
        let ihl = usize::from(p[0] & 0x0f) * 4;
        if n < ihl + 4 {
            continue;
        }
        let (src, dst) = (&p[12..16], &p[16..20]);
        let sport = u16::from_be_bytes([p[ihl], p[ihl + 1]]);
        let dport = u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]);
        match from.sll_pkttype {
            libc::PACKET_HOST if dst == me && dport == port => {
                received.fetch_add(1, Ordering::Relaxed);
            }
            libc::PACKET_OUTGOING if src == me && sport == port => {
                echoed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// The IVR

/// How to run an IVR's SIPp.
#[derive(Clone, Debug)]
pub struct IvrOptions {
    /// Its name, answered in `X-IVR` (lowercase letters and digits).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its own address (SDP `c=`, RTP echo).
    pub addr: Ipv4Addr,
    /// Its service interface's ifindex (RTP is counted there).
    pub ifindex: u32,
    /// The VIP it answers SIP on (on its `lo`).
    pub vip: Ipv4Addr,
    /// Echo RTP (`-rtp_echo`) and count it.
    pub rtp: bool,
    /// It quits after this long (SIPp `-timeout`).
    pub lifetime: Duration,
}

impl IvrOptions {
    /// An IVR of a lab host, RTP on, living at most 10 minutes.
    pub fn for_host(host: &crate::Host, vip: Ipv4Addr) -> IvrOptions {
        IvrOptions {
            name: host.name.clone(),
            ns: host.ns.clone(),
            addr: host.addr(),
            ifindex: host.eth0().ifindex,
            vip,
            rtp: true,
            lifetime: Duration::from_secs(600),
        }
    }
}

/// An IVR server: SIPp UAS on VIP:5060 in the IVR's namespace.
pub struct SippIvr {
    pub name: String,
    process: SippProcess,
    stat_file: PathBuf,
    error_file: PathBuf,
    output: PathBuf,
    rtp: Option<RtpCounter>,
    last: Option<SippStats>,
}

impl SippIvr {
    /// Writes its scenario into `dir` and starts it; returns once SIPp is
    /// up (its statistics file exists) or fails naming why.
    pub fn start(dir: &Path, o: &IvrOptions) -> Result<SippIvr, SippError> {
        let scenario = dir.join(format!("{}.xml", o.name));
        std::fs::write(&scenario, ivr_scenario(&o.name)).map_err(io_err("writing", &scenario))?;
        let stat_file = dir.join(format!("{}.csv", o.name));
        let error_file = dir.join(format!("{}-errors.log", o.name));
        let output = dir.join(format!("{}.out", o.name));
        let _ = std::fs::remove_file(&stat_file);
        let rtp = if o.rtp {
            Some(RtpCounter::start(&o.ns, o.ifindex, o.addr, IVR_RTP_PORT)?)
        } else {
            None
        };
        let mut args: Vec<String> = [
            "-sf",
            &scenario.display().to_string(),
            "-t",
            "u1",
            "-i",
            &o.vip.to_string(),
            "-p",
            &SIP_PORT.to_string(),
            "-mi",
            &o.addr.to_string(),
            "-mp",
            &IVR_RTP_PORT.to_string(),
            "-nostdin",
            "-trace_stat",
            "-stf",
            &stat_file.display().to_string(),
            "-fd",
            "1",
            "-trace_err",
            "-error_file",
            &error_file.display().to_string(),
            "-timeout",
            &format!("{}s", o.lifetime.as_secs().max(1)),
            // A call whose caller vanished ends after 60 s without its BYE.
            "-recv_timeout",
            "60000",
            // No default behaviours: in particular no 200 to a BYE for a
            // call this IVR does not hold (SIPp's default), which would
            // hide a BYE dispatched to the wrong IVR.
            "-nd",
            "-max_recv_loops",
            "10000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if o.rtp {
            args.push("-rtp_echo".into());
        }
        let mut process = SippProcess::spawn(&o.ns, &args, dir, &output)?;
        // Up when the first statistics row is written (-fd 1: within ~1 s).
        let end = Instant::now() + Duration::from_secs(10);
        while !stat_file.exists() {
            if let Some(code) = process.try_exit() {
                let out = std::fs::read_to_string(&output).unwrap_or_default();
                return Err(SippError::Other {
                    what: format!(
                        "IVR {} exited at start ({code:?}): {}\n`{}`",
                        o.name,
                        out.trim(),
                        process.cmdline
                    ),
                });
            }
            if Instant::now() >= end {
                return Err(SippError::Other {
                    what: format!("IVR {}: SIPp did not start within 10 s", o.name),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(SippIvr {
            name: o.name.clone(),
            process,
            stat_file,
            error_file,
            output,
            rtp,
            last: None,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether its SIPp still runs.
    pub fn running(&mut self) -> bool {
        self.process.child.is_some() && self.process.try_exit().is_none()
    }

    /// SIGKILL, as a crashed IVR (its statistics stay as last written).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.process.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops SIPp (SIGTERM: it writes a last statistics row and quits at
    /// once; SIGKILL after 3 s) and returns its statistics.
    pub fn stop(&mut self) -> Result<SippStats, SippError> {
        self.process.stop(libc::SIGTERM, Duration::from_secs(3));
        let s = self.stats()?;
        self.last = Some(s.clone());
        Ok(s)
    }

    /// Waits up to `timeout` for it to hold no call (as its statistics,
    /// written every second, say); true if it got there.
    pub fn wait_idle(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if !self.running() || self.stats().is_ok_and(|s| s.current() == 0) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its statistics as last written (every second while it runs).
    pub fn stats(&self) -> Result<SippStats, SippError> {
        match &self.last {
            Some(s) => Ok(s.clone()),
            None => SippStats::read(&self.stat_file),
        }
    }

    /// RTP seen in its namespace so far.
    pub fn rtp(&self) -> RtpCount {
        self.rtp.as_ref().map(RtpCounter::count).unwrap_or_default()
    }

    /// The end of its error log and output (for failure messages).
    pub fn diagnostics(&self) -> String {
        tail_of(&[&self.error_file, &self.output], 2000)
    }
}

/// The last `max` bytes of each file that exists.
fn tail_of(files: &[&Path], max: usize) -> String {
    let mut s = String::new();
    for f in files {
        if let Ok(t) = std::fs::read_to_string(f) {
            let start = t.len().saturating_sub(max);
            let start = (start..t.len())
                .find(|i| t.is_char_boundary(*i))
                .unwrap_or(t.len());
            let _ = writeln!(s, "--- {}:\n{}", f.display(), &t[start..]);
        }
    }
    s
}

// ---------------------------------------------------------------------------
// The caller

/// How the caller places calls.
#[derive(Clone, Debug)]
pub struct CallerOptions {
    /// Calls per second (`-r`).
    pub rate: u32,
    /// Calls in all (`-m`).
    pub count: u64,
    /// How long each call lasts once established (`-d`, ms).
    pub duration_ms: u64,
    /// Play RTP during each call.
    pub rtp: bool,
    /// Retransmissions of a request before the call fails (`-max_retrans`;
    /// T1 is 500 ms, so 4 is 0.5 + 1 + 2 + 4 s, then the last wait).
    pub max_retrans: u32,
    /// A response not received within this long fails the call (`-recv_timeout`, ms).
    pub recv_timeout_ms: u64,
}

impl CallerOptions {
    pub fn new(rate: u32, count: u64, duration_ms: u64) -> CallerOptions {
        CallerOptions {
            rate,
            count,
            duration_ms,
            rtp: true,
            max_retrans: 4,
            recv_timeout_ms: 8000,
        }
    }

    /// Time to place every call at the rate.
    pub fn placing(&self) -> Duration {
        Duration::from_secs_f64(self.count as f64 / f64::from(self.rate.max(1)))
    }

    /// The longest the caller can take: placing, one call's length, and the
    /// longest a failing call can wait (retransmissions or receive timeout).
    pub fn bound(&self) -> Duration {
        let mut retrans = 0.0;
        let mut t = 0.5;
        for _ in 0..=self.max_retrans {
            retrans += t;
            t = (t * 2.0f64).min(4.0);
        }
        let wait = retrans.max(self.recv_timeout_ms as f64 / 1000.0);
        self.placing()
            + Duration::from_millis(self.duration_ms)
            + Duration::from_secs_f64(2.0 * wait + 5.0)
    }
}

/// What the caller's SIPp reported.
#[derive(Clone, Debug)]
pub struct CallerReport {
    /// SIPp's exit code: 0 every call succeeded, 1 some failed, 97 quit on
    /// its timeout, 99 no call processed; None if it had to be killed.
    pub exit_code: Option<i32>,
    pub stats: SippStats,
    /// One record per call, by call number.
    pub calls: Vec<CallRecord>,
    /// The end of its error log (unexpected messages, retransmission timeouts).
    pub errors: String,
}

impl CallerReport {
    /// Calls that got no 200 to their BYE (SIPp counts each as failed).
    pub fn failed_calls(&self) -> Vec<&CallRecord> {
        self.calls.iter().filter(|c| !c.succeeded()).collect()
    }

    /// Established calls, by IVR.
    pub fn per_ivr(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for c in &self.calls {
            if let Some(i) = &c.ivr {
                *m.entry(i.clone()).or_insert(0) += 1;
            }
        }
        m
    }
}

/// The caller: SIPp UAC in the client namespace.
pub struct SippCaller {
    process: SippProcess,
    stat_file: PathBuf,
    log_file: PathBuf,
    error_file: PathBuf,
    output: PathBuf,
    /// It is killed if still running this long after it started.
    bound: Duration,
    started: Instant,
    /// Wall clock at start.
    pub started_wall: f64,
}

impl SippCaller {
    /// Writes the scenario into `dir` and starts SIPp in `ns`, from
    /// `local`:5060 to `target`.
    pub fn start(
        dir: &Path,
        ns: &str,
        local: Ipv4Addr,
        target: SocketAddrV4,
        o: &CallerOptions,
    ) -> Result<SippCaller, SippError> {
        let tag = format!("caller{}", CALLER_SEQ.fetch_add(1, Ordering::Relaxed));
        let scenario = dir.join(format!("{tag}.xml"));
        std::fs::write(&scenario, caller_scenario(o.rtp)).map_err(io_err("writing", &scenario))?;
        let stat_file = dir.join(format!("{tag}.csv"));
        let log_file = dir.join(format!("{tag}-calls.log"));
        let error_file = dir.join(format!("{tag}-errors.log"));
        let output = dir.join(format!("{tag}.out"));
        for f in [&stat_file, &log_file, &error_file] {
            let _ = std::fs::remove_file(f);
        }
        let bound = o.bound();
        let args: Vec<String> = [
            target.to_string().as_str(),
            "-sf",
            &scenario.display().to_string(),
            "-t",
            "u1",
            "-i",
            &local.to_string(),
            "-p",
            &SIP_PORT.to_string(),
            "-mi",
            &local.to_string(),
            "-mp",
            &CALLER_RTP_PORT.to_string(),
            "-r",
            &o.rate.to_string(),
            "-m",
            &o.count.to_string(),
            "-d",
            &o.duration_ms.to_string(),
            "-nostdin",
            "-trace_stat",
            "-stf",
            &stat_file.display().to_string(),
            "-fd",
            "1",
            "-trace_err",
            "-error_file",
            &error_file.display().to_string(),
            "-trace_logs",
            "-log_file",
            &log_file.display().to_string(),
            "-max_retrans",
            &o.max_retrans.to_string(),
            "-recv_timeout",
            &o.recv_timeout_ms.to_string(),
            "-timeout",
            &format!("{}s", bound.as_secs() + 1),
            "-max_recv_loops",
            "10000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let process = SippProcess::spawn(ns, &args, dir, &output)?;
        Ok(SippCaller {
            process,
            stat_file,
            log_file,
            error_file,
            output,
            bound: bound + Duration::from_secs(5),
            started: Instant::now(),
            started_wall: wall_now(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether SIPp is still placing or holding calls.
    pub fn running(&mut self) -> bool {
        self.process.child.is_some() && self.process.try_exit().is_none()
    }

    /// Its statistics as last written (every second while it runs).
    pub fn stats(&self) -> Result<SippStats, SippError> {
        SippStats::read(&self.stat_file)
    }

    /// The calls so far, from its log (SIPp writes each line as it happens).
    pub fn calls_so_far(&self) -> Vec<CallRecord> {
        parse_call_log(&std::fs::read_to_string(&self.log_file).unwrap_or_default())
    }

    /// Waits (up to `timeout`) for an instant at least `gap` after the
    /// newest call establishment in its log, and at least one call
    /// established: a moment when no call was set up in the last `gap`.
    pub fn wait_quiet(&self, gap: Duration, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let newest = self
                .calls_so_far()
                .iter()
                .filter_map(|c| c.established)
                .fold(f64::NAN, f64::max);
            if !newest.is_nan() && wall_now() - newest >= gap.as_secs_f64() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// Waits until SIPp has finished by itself (bounded by its options;
    /// past that it is stopped: SIGTERM, then SIGKILL) and reads its report.
    pub fn wait(mut self) -> Result<CallerReport, SippError> {
        let left = self.bound.saturating_sub(self.started.elapsed());
        let exit_code = match self.process.wait_for(left) {
            Some(code) => {
                self.process.child = None;
                code
            }
            None => {
                eprintln!(
                    "sipp caller: still running after {:?}: stopping it",
                    self.bound
                );
                self.process.stop(libc::SIGTERM, Duration::from_secs(3));
                None
            }
        };
        let stats = SippStats::read(&self.stat_file).map_err(|e| SippError::Other {
            what: format!("{e}\n{}", tail_of(&[&self.output], 2000)),
        })?;
        let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        Ok(CallerReport {
            exit_code,
            stats,
            calls: parse_call_log(&log),
            errors: tail_of(&[&self.error_file, &self.output], 3000),
        })
    }
}

static CALLER_SEQ: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "StartTime;LastResetTime;CurrentTime;ElapsedTime(P);ElapsedTime(C);TargetRate;CallRate(P);CallRate(C);IncomingCall(P);IncomingCall(C);OutgoingCall(P);OutgoingCall(C);TotalCallCreated;CurrentCall;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);FailedMaxUDPRetrans(P);FailedMaxUDPRetrans(C);FailedUnexpectedMessage(P);FailedUnexpectedMessage(C);Retransmissions(P);Retransmissions(C);\n\
2026-11-25\t18:59:54.761258\t1795633194.761258;x;y;00:00:00;00:00:04;5;0;2.49;0;0;0;10;10;0;0;10;0;0;0;0;0;0;0;0;\n\
2026-11-25\t18:59:54.761258\t1795633194.761258;x;y;00:00:00;00:00:04;5;0;2.49;0;0;0;12;12;1;0;9;0;2;0;1;0;1;0;5;\n";

    #[test]
    fn statistics_last_row_by_column() {
        let s = SippStats::parse(CSV).unwrap();
        assert_eq!(s.created(), 12);
        assert_eq!(s.outgoing(), 12);
        assert_eq!(s.current(), 1);
        assert_eq!(s.successful(), 9);
        assert_eq!(s.failed(), 2);
        assert_eq!(s.retransmissions(), 5);
        let f = s.failures();
        assert_eq!(f.get("MaxUDPRetrans"), Some(&1));
        assert_eq!(f.get("UnexpectedMessage"), Some(&1));
        assert_eq!(f.len(), 2);
        assert!(s.summary().contains("failed 2"), "{}", s.summary());
        assert!(
            SippStats::parse("StartTime;SuccessfulCall(C)\n").is_err(),
            "no row yet"
        );
        assert!(SippStats::parse("a;b\n1;2\n").is_err(), "not SIPp's");
    }

    #[test]
    fn call_log_lines_make_records() {
        let log = "S 1 2026-11-25\t18:59:54.970061\t1795633194.970061\n\
E 1 ivr3 2026-11-25\t18:59:54.975000\t1795633194.975000 1-30009@198.18.0.10\n\
S 2 2026-11-25\t18:59:55.020000\t1795633195.020000\n\
D 1 ivr3 2026-11-25\t18:59:58.975000\t1795633198.975000\n\
S 3 2026-11-25\t18:59:55.070000\t1795633195.070000\n\
E 3 ivr1 2026-11-25\t18:59:55.075000\t1795633195.075000 3-30009@198.18.0.10\n\
D 3 ivr2 2026-11-25\t18:59:59.075000\t1795633199.075000\n\
garbage line\n";
        let c = parse_call_log(log);
        assert_eq!(c.len(), 3);
        assert!(
            !c[2].succeeded(),
            "a BYE answered by another IVR is no success"
        );
        assert_eq!(c[0].number, 1);
        assert_eq!(c[0].ivr.as_deref(), Some("ivr3"));
        assert_eq!(c[0].call_id.as_deref(), Some("1-30009@198.18.0.10"));
        assert!(c[0].succeeded());
        assert!((c[0].established.unwrap() - 1795633194.975).abs() < 1e-6);
        assert!(c[0].established_before(1795633195.0));
        assert!(!c[1].succeeded());
        assert!(c[1].started_after(1795633195.0));
        assert_eq!(c[1].established, None);
    }

    #[test]
    fn scenarios_name_the_ivr_and_reference_every_variable() {
        let s = ivr_scenario("ivr2");
        assert!(s.contains("X-IVR: ivr2"));
        assert!(s.contains("c=IN IP[media_ip_type] [media_ip]"));
        let c = caller_scenario(true);
        assert!(c.contains(PCAP_G711A));
        assert!(c.contains("[$ivr]"));
        assert!(!caller_scenario(false).contains("play_pcap_audio"));
    }

    #[test]
    fn caller_bound_covers_retransmissions() {
        let o = CallerOptions::new(20, 200, 4000);
        assert_eq!(o.placing(), Duration::from_secs(10));
        // 0.5 + 1 + 2 + 4 + 4 = 11.5 s of retransmissions, twice, + 5.
        assert!(
            o.bound() >= Duration::from_secs(10 + 4 + 23),
            "{:?}",
            o.bound()
        );
        assert!(o.bound() <= Duration::from_secs(50), "{:?}", o.bound());
    }
}
