//! Two observers for the fault campaign, measuring a pair from outside its
//! daemons: what the directors put on the service network
//! ([`DualActiveWatch`]) and what the client sees of the service
//! ([`ClientProbe`]). Both stamp on CLOCK_REALTIME, in nanoseconds since
//! the epoch, the clock of [`crate::actors::sipp::wall_now`], so their
//! windows are given as `f64` seconds of that clock (a fault instant and
//! what follows it). They record; the analysis is in pure functions
//! ([`dual_active`], [`probe_window`]) that need no root.
//!
//! # Dual-active time
//!
//! One AF_PACKET socket per director, bound to the bridge-side veth of its
//! `eth0` in the switch namespace. A frame that arrives on that port from
//! the director (any packet type but PACKET_OUTGOING, which is the bridge
//! sending to the director) is exactly a frame the director transmitted.
//! Two kinds are claims on the VIP ([`classify`]):
//!
//! - [`Kind::Forward`]: IPv4 (at most one VLAN tag) with destination VIP:
//!   the director forwarded VIP traffic (in DR mode its XDP program
//!   rewrites the MACs and sends the frame back out of `eth0`);
//! - [`Kind::ArpClaim`]: an ARP reply whose sender address is the VIP, or a
//!   gratuitous ARP request (sender = target = VIP).
//!
//! Each is stamped with the kernel's receive time on the bridge port
//! (SO_TIMESTAMPNS, CLOCK_REALTIME), or, if a frame carries no stamp, the
//! wall clock when the watcher read it.
//!
//! Definition. Within a window, each director's claims (both kinds) are
//! sorted and merged into *claim spans*: consecutive claims less than
//! [`MERGE_GAP_NS`] (20 ms, twenty frame periods of a 1 kHz stream)
//! apart belong to one span `[first, last]`; a claim with no other within
//! that distance is a *lone* span of length zero. Dual-active time is the
//! total length of the intersection of A's spans with B's, plus
//! [`LONE_NS`] (1 ms, one frame period) for every lone span of one
//! director that lies within a span of the other (an intersection of
//! length zero that is still two directors claiming at once). So a clean
//! handover (A's last frame at t, B's first at t + 2 ms) counts 0; both
//! forwarding for 50 ms counts 50 ms; an old active's stray frame 0.5 ms
//! after the new one started, within 20 ms of its own earlier frames,
//! counts 0.5 ms. Spans are cut at the window's edges. With traffic
//! sparser than one frame per 20 ms, streams fall apart into lone spans
//! and only lone-in-span coincidences count.
//!
//! # The client's probe gap
//!
//! From the client's namespace, one UDP datagram `p<seq>` every
//! [`PROBE_EVERY`] to a target (VIP:port, or any address), from one
//! socket; a responder
//! ([`crate::actors::responder::spawn_udp_responder`]) answers `<name>
//! p<seq>`. Every send and first reply is stamped on the wall clock. In a
//! window ([`probe_window`]), over the probes *sent* in it:
//!
//! - *lost*: probes without a reply;
//! - *gap*: the longest interval between the send times of two answered
//!   probes with nothing answered between them, over the pairs that
//!   enclose a lost probe sent in the window or that both lie in it. A run
//!   of lost probes straddling a window edge is measured whole; one that
//!   no answered probe follows yet is measured to its last probe and
//!   flagged open (a lower bound). Without loss the gap is the send
//!   period, about 1 ms.
//!
//! The watcher's threads and the probe's end after [`MAX_LIFETIME`], and
//! all memory is capped: [`MAX_EVENTS`] events (drops counted), one slot
//! per probe up to the probe count given.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{ControlMessageOwned, LinkAddr, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeVal;
use serde::Serialize;
use tandem_dataplane::monotonic_ns;

use crate::lab::wait::sleep_until_ns;
use crate::lab::packet::packet_socket;
use crate::lab::{self, Lab, netns};

/// Claims of one director closer than this belong to one claim span.
pub const MERGE_GAP_NS: u64 = 20_000_000;
/// What a lone claim inside the other director's span counts: one frame period.
pub const LONE_NS: u64 = 1_000_000;
/// The most events a [`DualActiveWatch`] keeps; later ones are counted as dropped.
pub const MAX_EVENTS: usize = 2_000_000;
/// The longest an observer's threads run, whatever their handles do.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3 * 3600);
/// The probe period of a [`ClientProbe`].
pub const PROBE_EVERY: Duration = Duration::from_millis(1);
/// Probes a [`ClientProbe::start`] sends at most: [`MAX_LIFETIME`] at 1 kHz.
pub const MAX_PROBES: usize = 10_800_000;
/// A probe younger than this is neither lost nor answered yet to [`ClientProbe::window`].
pub const REPLY_WAIT_NS: u64 = 200_000_000;
/// How long a blocked receive waits before looking at its stop flag.
const RECV_TIMEOUT: Duration = Duration::from_millis(20);
/// The receive buffer asked for on each bridge port (bursts at takeover).
const PORT_RCVBUF: usize = 4 << 20;

/// CLOCK_REALTIME now, in nanoseconds since the epoch.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Seconds since the epoch (as [`crate::actors::sipp::wall_now`]) to
/// nanoseconds; negative and NaN give 0.
fn s_to_ns(s: f64) -> u64 {
    (s * 1e9).round() as u64
}

/// One director of a pair lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Director {
    A,
    B,
}

impl Director {
    /// Its host name in the lab ([`lab::DIRECTOR_A`], [`lab::DIRECTOR_B`]).
    pub fn host(self) -> &'static str {
        match self {
            Director::A => lab::DIRECTOR_A,
            Director::B => lab::DIRECTOR_B,
        }
    }
}

/// What a director's frame claims (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// IPv4 to the VIP: it forwarded VIP traffic.
    Forward,
    /// An ARP reply from the VIP, or a gratuitous ARP for it.
    ArpClaim,
}

/// One claim seen on a director's bridge port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// Receive time on the bridge port: CLOCK_REALTIME, ns since the epoch.
    pub at_ns: u64,
    pub director: Director,
    pub kind: Kind,
}

/// What a frame a director sent claims on `vip`, if anything.
pub fn classify(frame: &[u8], vip: Ipv4Addr) -> Option<Kind> {
    let be16 = |o: usize| {
        frame
            .get(o..o + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (mut ethertype, mut l3) = (be16(12)?, 14);
    if ethertype == 0x8100 || ethertype == 0x88a8 {
        (ethertype, l3) = (be16(16)?, 18);
    }
    let ip = |o: usize| Ipv4Addr::new(frame[o], frame[o + 1], frame[o + 2], frame[o + 3]);
    match ethertype {
        0x0800 => {
            let hdr = frame.get(l3..l3 + 20)?;
            (hdr[0] >> 4 == 4 && ip(l3 + 16) == vip).then_some(Kind::Forward)
        }
        0x0806 => {
            let arp = frame.get(l3..l3 + 28)?;
            if arp[..6] != [0x00, 0x01, 0x08, 0x00, 6, 4] {
                return None;
            }
            let op = u16::from_be_bytes([arp[6], arp[7]]);
            let (spa, tpa) = (ip(l3 + 14), ip(l3 + 24));
            (spa == vip && (op == 2 || (op == 1 && tpa == vip))).then_some(Kind::ArpClaim)
        }
        _ => None,
    }
}

/// Dual-active time and the claims it was computed from, in one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct DualActive {
    /// Dual-active time (module doc), milliseconds.
    pub ms: f64,
    /// [`Kind::Forward`] frames of director A in the window.
    pub frames_a: u64,
    pub frames_b: u64,
    /// [`Kind::ArpClaim`] frames of director A in the window.
    pub arp_a: u64,
    pub arp_b: u64,
}

impl DualActive {
    /// Whether both directors claimed the VIP at all in the window.
    pub fn both_seen(&self) -> bool {
        self.frames_a + self.arp_a > 0 && self.frames_b + self.arp_b > 0
    }
}

/// Dual-active time of `events` (in any order) between `from_s` and
/// `to_s` (wall-clock seconds, both included), with the claim counts.
pub fn dual_active(events: &[Seen], from_s: f64, to_s: f64) -> DualActive {
    let (from, to) = (s_to_ns(from_s), s_to_ns(to_s));
    let mut out = DualActive::default();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for e in events.iter().filter(|e| (from..=to).contains(&e.at_ns)) {
        let (times, frames, arps) = match e.director {
            Director::A => (&mut a, &mut out.frames_a, &mut out.arp_a),
            Director::B => (&mut b, &mut out.frames_b, &mut out.arp_b),
        };
        times.push(e.at_ns);
        match e.kind {
            Kind::Forward => *frames += 1,
            Kind::ArpClaim => *arps += 1,
        }
    }
    out.ms = overlap_ns(&claim_spans(a), &claim_spans(b)) as f64 / 1e6;
    out
}

/// [`dual_active`]'s time alone, in milliseconds.
pub fn dual_active_ms(events: &[Seen], from_s: f64, to_s: f64) -> f64 {
    dual_active(events, from_s, to_s).ms
}

/// Sorted claim times → disjoint spans `[first, last]`, merged below [`MERGE_GAP_NS`].
fn claim_spans(mut times: Vec<u64>) -> Vec<(u64, u64)> {
    times.sort_unstable();
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for t in times {
        match spans.last_mut() {
            Some(last) if t - last.1 < MERGE_GAP_NS => last.1 = t,
            _ => spans.push((t, t)),
        }
    }
    spans
}

/// Length of the intersection of two sorted disjoint span lists, plus
/// [`LONE_NS`] per lone span touching a span of the other list.
fn overlap_ns(a: &[(u64, u64)], b: &[(u64, u64)]) -> u64 {
    let (mut i, mut j, mut total) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let (lo, hi) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
        if hi > lo {
            total += hi - lo;
        } else if hi == lo && (a[i].0 == a[i].1 || b[j].0 == b[j].1) {
            total += LONE_NS;
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    total
}

/// A packet socket in `ns` bound to `ifindex` for every protocol, with
/// kernel receive stamps and a receive timeout.
fn open_port(ns: &str, ifname: &str, ifindex: u32) -> Result<OwnedFd> {
    let what = format!("{ifname} (ifindex {ifindex}) in namespace {ns}");
    let fd = netns::try_in_netns(ns, || -> Result<OwnedFd> {
        Ok(packet_socket(ifindex, (libc::ETH_P_ALL as u16).to_be())?)
    })
    .with_context(|| format!("entering namespace {ns}"))?
    .with_context(|| format!("opening a packet socket on {what}"))?;
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true)
        .with_context(|| format!("SO_TIMESTAMPNS on {what}"))?;
    let timeout = TimeVal::new(0, RECV_TIMEOUT.as_micros() as libc::suseconds_t);
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)
        .with_context(|| format!("SO_RCVTIMEO on {what}"))?;
    // Best effort: a bigger buffer, and frames to the director left out
    // in the kernel (the receive loop skips them anyway).
    let _ = setsockopt(&fd, sockopt::RcvBufForce, &PORT_RCVBUF);
    let one: libc::c_int = 1;
    // SAFETY: one is a valid c_int of the size passed.
    let _ = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Ok(fd)
}

/// Frames the kernel dropped on a packet socket since the last call (PACKET_STATISTICS).
fn kernel_drops(fd: &OwnedFd) -> u64 {
    // SAFETY: an all-zero tpacket_stats is valid.
    let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: st and len are valid for the size passed.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&raw mut st).cast(),
            &mut len,
        )
    };
    if r < 0 { 0 } else { u64::from(st.tp_drops) }
}

/// What the recorder threads share.
#[derive(Default)]
struct EventLog {
    events: Vec<Seen>,
    /// The cap on `events`.
    max: usize,
    /// Claims not kept: `events` was full.
    dropped: u64,
    /// Claims stamped on the watcher's clock: the kernel gave no stamp.
    unstamped: u64,
}

/// Records every claim on the VIP that directors a and b of a pair lab
/// send on the service network (module doc), until dropped or
/// [`MAX_LIFETIME`].
pub struct DualActiveWatch {
    ports: Vec<Arc<OwnedFd>>,
    log: Arc<Mutex<EventLog>>,
    kernel_dropped: AtomicU64,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DualActiveWatch {
    /// Opens a packet socket on the bridge-side veth of each director's
    /// `eth0` in `lab`'s switch namespace and starts recording, keeping
    /// at most [`MAX_EVENTS`] events.
    pub fn start(lab: &Lab) -> Result<DualActiveWatch> {
        DualActiveWatch::start_with(lab, MAX_EVENTS)
    }

    /// [`DualActiveWatch::start`] keeping at most `max_events` events
    /// (16 bytes each).
    pub fn start_with(lab: &Lab, max_events: usize) -> Result<DualActiveWatch> {
        let vip = lab.vip();
        let log = Arc::new(Mutex::new(EventLog {
            max: max_events,
            ..EventLog::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut watch = DualActiveWatch {
            ports: Vec::new(),
            log,
            kernel_dropped: AtomicU64::new(0),
            stop,
            threads: Vec::new(),
        };
        // From here on an error drops `watch`, which stops what was started.
        for director in [Director::A, Director::B] {
            let iface = lab
                .iface(director.host(), "eth0")
                .with_context(|| format!("director {}'s eth0", director.host()))?;
            let fd = Arc::new(open_port(&iface.peer_ns, &iface.peer, iface.peer_ifindex)?);
            let (fd_t, log_t, stop_t) = (fd.clone(), watch.log.clone(), watch.stop.clone());
            let ifindex = iface.peer_ifindex as usize;
            let thread = std::thread::Builder::new()
                .name(format!("dual watch {}", director.host()))
                .spawn(move || record(&fd_t, ifindex, director, vip, &log_t, &stop_t))
                .with_context(|| format!("spawning the recorder of {}", iface.peer))?;
            watch.ports.push(fd);
            watch.threads.push(thread);
        }
        Ok(watch)
    }

    /// A copy of every event recorded so far, in the order recorded (not
    /// quite sorted by time: the two directors' threads interleave).
    pub fn events(&self) -> Vec<Seen> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .events
            .clone()
    }

    /// [`dual_active`] over the events so far, between `from_s` and `to_s`
    /// (wall-clock seconds, as [`crate::actors::sipp::wall_now`]).
    pub fn window(&self, from_s: f64, to_s: f64) -> DualActive {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        dual_active(&log.events, from_s, to_s)
    }

    /// Forgets the events before `from_s` (wall-clock seconds): between
    /// trials of a long campaign, so that the cap holds the next ones.
    pub fn forget_before(&self, from_s: f64) {
        let from = s_to_ns(from_s);
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.events.retain(|e| e.at_ns >= from);
    }

    /// Claims stamped when the watcher read them, not by the kernel on
    /// arrival (0 unless SO_TIMESTAMPNS gave nothing): a later, noisier
    /// stamp on the same clock.
    pub fn unstamped(&self) -> u64 {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).unstamped
    }

    /// Claims not recorded: beyond the cap on events, or dropped by the
    /// kernel on a full socket buffer (any frame; an upper bound).
    pub fn dropped(&self) -> u64 {
        let mut kernel = 0;
        for fd in &self.ports {
            kernel += kernel_drops(fd);
        }
        let kernel = self.kernel_dropped.fetch_add(kernel, Ordering::Relaxed) + kernel;
        self.log.lock().unwrap_or_else(|e| e.into_inner()).dropped + kernel
    }
}

impl Drop for DualActiveWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The recorder of one bridge port: every claim the director sends, until
/// `stop` or [`MAX_LIFETIME`].
fn record(
    fd: &OwnedFd,
    ifindex: usize,
    director: Director,
    vip: Ipv4Addr,
    log: &Mutex<EventLog>,
    stop: &AtomicBool,
) {
    let deadline = Instant::now() + MAX_LIFETIME;
    // Headers only: the kernel truncates longer frames to the buffer.
    let mut buf = [0u8; 128];
    let mut cmsg = nix::cmsg_space!(libc::timespec);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let (len, pkttype, at_ns) = {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            match recvmsg::<LinkAddr>(fd.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
            {
                Ok(msg) => {
                    let Some(addr) = msg.address.filter(|a| a.ifindex() == ifindex) else {
                        continue;
                    };
                    let stamp = msg.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::ScmTimestampns(ts) => {
                                Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
                            }
                            _ => None,
                        })
                    });
                    (msg.bytes, addr.pkttype(), stamp)
                }
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!(
                        "dual-active watch {}: recvmsg: {e}; stopping",
                        director.host()
                    );
                    return;
                }
            }
        };
        if pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let Some(kind) = classify(&buf[..len.min(buf.len())], vip) else {
            continue;
        };
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if log.events.len() >= log.max {
            log.dropped += 1;
            continue;
        }
        log.unstamped += u64::from(at_ns.is_none());
        let at_ns = at_ns.unwrap_or_else(wall_ns);
        log.events.push(Seen {
            at_ns,
            director,
            kind,
        });
    }
}

/// The probes of one window (module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ProbeWindow {
    /// Probes sent in the window.
    pub sent: u64,
    pub answered: u64,
    pub lost: u64,
    /// The longest gap between answered probes, milliseconds; `None`
    /// without two answered probes or a lost one to measure.
    pub gap_ms: Option<f64>,
    /// The longest gap is a run of lost probes no answer has ended yet.
    pub gap_open: bool,
}

/// Lost probes and the longest gap (module doc) among the probes sent
/// from `from_ns` to `to_ns` (both included), given every probe's send
/// time (`sent`, non-decreasing) and reply time (`replied`, 0: none).
pub fn probe_window(sent: &[u64], replied: &[u64], from_ns: u64, to_ns: u64) -> ProbeWindow {
    let n = sent.len().min(replied.len());
    let (sent, answered) = (&sent[..n], |i: usize| replied[i] != 0);
    let lo = sent.partition_point(|&s| s < from_ns);
    let hi = sent.partition_point(|&s| s <= to_ns);
    let mut out = ProbeWindow::default();
    if lo >= hi {
        return out;
    }
    out.sent = (hi - lo) as u64;
    // (length, open) of the longest gap so far.
    let mut gap: Option<(u64, bool)> = None;
    let mut widen = |len: u64, open: bool| {
        if gap.is_none_or(|(g, _)| len > g) {
            gap = Some((len, open));
        }
    };
    // The last answered probe in the window with no lost probe since.
    let mut prev: Option<usize> = None;
    let mut i = lo;
    while i < hi {
        if answered(i) {
            out.answered += 1;
            if let Some(p) = prev {
                widen(sent[i] - sent[p], false);
            }
            prev = Some(i);
            i += 1;
            continue;
        }
        // A run of lost probes, followed whole across the window's edges.
        let mut start = i;
        while start > 0 && !answered(start - 1) {
            start -= 1;
        }
        let mut end = i;
        while end + 1 < n && !answered(end + 1) {
            end += 1;
        }
        let left = sent[start.saturating_sub(1)];
        match (end + 1 < n).then_some(end + 1) {
            Some(next) => widen(sent[next] - left, false),
            None => widen(sent[end] - left, true),
        }
        out.lost += (end.min(hi - 1) + 1 - i) as u64;
        prev = None;
        i = end + 1;
    }
    if let Some((len, open)) = gap {
        out.gap_ms = Some(len as f64 / 1e6);
        out.gap_open = open;
    }
    out
}

/// Every probe's send time and first reply time (0: none), wall-clock ns.
struct ProbeLog {
    sent: Vec<u64>,
    replied: Vec<u64>,
}

/// A 1 kHz UDP probe stream from a lab namespace to a target, with every
/// send and reply stamped on the wall clock (module doc). Sends until
/// dropped, `max_probes` or [`MAX_LIFETIME`].
pub struct ClientProbe {
    log: Arc<Mutex<ProbeLog>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ClientProbe {
    /// Probes from the lab's client to VIP:`port`.
    pub fn to_vip(lab: &Lab, port: u16) -> Result<ClientProbe> {
        let ns = lab.ns(lab::CLIENT).context("the lab's client")?;
        ClientProbe::start(ns, lab::CLIENT_ADDR, SocketAddrV4::new(lab.vip(), port))
    }

    /// Probes from `local` (an address of namespace `ns`, any port) to
    /// `target`, at most [`MAX_PROBES`].
    pub fn start(ns: &str, local: Ipv4Addr, target: SocketAddrV4) -> Result<ClientProbe> {
        ClientProbe::start_with(ns, local, target, MAX_PROBES)
    }

    /// [`ClientProbe::start`] with at most `max_probes` probes (the memory
    /// is reserved up front: 16 bytes per probe, touched as they are sent).
    pub fn start_with(
        ns: &str,
        local: Ipv4Addr,
        target: SocketAddrV4,
        max_probes: usize,
    ) -> Result<ClientProbe> {
        let sock = netns::try_in_netns(ns, || UdpSocket::bind((local, 0)))
            .with_context(|| format!("entering namespace {ns}"))?
            .with_context(|| format!("binding the probe socket to {local} in namespace {ns}"))?;
        sock.set_read_timeout(Some(RECV_TIMEOUT))
            .with_context(|| format!("the probe socket's timeout in namespace {ns}"))?;
        let rx = sock.try_clone().context("cloning the probe socket")?;
        let log = Arc::new(Mutex::new(ProbeLog {
            sent: Vec::with_capacity(max_probes),
            replied: vec![0; max_probes],
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut probe = ClientProbe {
            log,
            stop,
            threads: Vec::new(),
        };
        let (log_s, stop_s) = (probe.log.clone(), probe.stop.clone());
        let sender = std::thread::Builder::new()
            .name("probe send".into())
            .spawn(move || send_probes(&sock, target, max_probes, &log_s, &stop_s))
            .context("spawning the probe sender")?;
        probe.threads.push(sender);
        let (log_r, stop_r) = (probe.log.clone(), probe.stop.clone());
        let receiver = std::thread::Builder::new()
            .name("probe recv".into())
            .spawn(move || receive_replies(&rx, &log_r, &stop_r))
            .context("spawning the probe receiver")?;
        probe.threads.push(receiver);
        Ok(probe)
    }

    /// Probes sent so far.
    pub fn sent(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sent
            .len()
    }

    /// [`probe_window`] between `from_s` and `to_s` (wall-clock seconds),
    /// over the probes sent at least [`REPLY_WAIT_NS`] ago.
    pub fn window(&self, from_s: f64, to_s: f64) -> ProbeWindow {
        let settled = wall_ns().saturating_sub(REPLY_WAIT_NS);
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let n = log.sent.partition_point(|&s| s <= settled);
        probe_window(
            &log.sent[..n],
            &log.replied[..n],
            s_to_ns(from_s),
            s_to_ns(to_s),
        )
    }

    /// The longest gap in the window, milliseconds ([`ClientProbe::window`]).
    pub fn gap_ms(&self, from_s: f64, to_s: f64) -> Option<f64> {
        self.window(from_s, to_s).gap_ms
    }

    /// Probes sent in the window without a reply ([`ClientProbe::window`]).
    pub fn lost(&self, from_s: f64, to_s: f64) -> u64 {
        self.window(from_s, to_s).lost
    }
}

impl Drop for ClientProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One `p<seq>` to `target` every [`PROBE_EVERY`], paced on
/// CLOCK_MONOTONIC, stamped on the wall clock.
fn send_probes(
    sock: &UdpSocket,
    target: SocketAddrV4,
    max_probes: usize,
    log: &Mutex<ProbeLog>,
    stop: &AtomicBool,
) {
    let deadline = Instant::now() + MAX_LIFETIME;
    let period = PROBE_EVERY.as_nanos() as u64;
    let mut next = monotonic_ns();
    for seq in 0..max_probes {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            break;
        }
        sleep_until_ns(next);
        let msg = format!("p{seq}");
        let at = wall_ns();
        let _ = sock.send_to(msg.as_bytes(), target);
        log.lock().unwrap_or_else(|e| e.into_inner()).sent.push(at);
        next += period;
        let now = monotonic_ns();
        if next < now {
            // Late (a busy core): keep the period, skip the backlog.
            next = now + period / 2;
        }
    }
}

/// Stamps the first reply to each probe (`<name> p<seq>`).
fn receive_replies(sock: &UdpSocket, log: &Mutex<ProbeLog>, stop: &AtomicBool) {
    let deadline = Instant::now() + MAX_LIFETIME + Duration::from_secs(10);
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let at = wall_ns();
        let Some(seq) = std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|t| t.rsplit(' ').next())
            .and_then(|t| t.strip_prefix('p'))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
        // A reply may beat the sender's log entry: any slot of the stream.
        if seq < l.replied.len() && l.replied[seq] == 0 {
            l.replied[seq] = at;
        }
    }
}

#[cfg(test)]
mod tests;
