//! `cargo xtask bench failover`: how fast the standby of a pair takes the
//! VIP over when the active fails, for tandem and for keepalived, in the
//! same lab and the same run.
//!
//! Systems: `tandem` (two `tandemd`, 1 ms heartbeats × 3 on the heartbeat
//! link and the service network, witness on), `keepalived_vrrp` (VRRPv3,
//! `advert_int 0.01`, unicast adverts on the service network) and
//! `keepalived_bfd` (the same plus a BFD session, 10 ms × 3, on the
//! heartbeat link, tracked by the VRRP instance). Failures of the active
//! director `a`: `kill9` (SIGKILL of the daemon by PID; for keepalived all
//! three of its processes), `crash` (the daemon killed and `eth0` + `hb0`
//! down at once) and `link_down` (`eth0` down alone). Links are set over
//! rtnetlink from a socket opened beforehand, so that the failure lands
//! within microseconds of T0.
//!
//! Per trial: a steady pair, a active and b standby (keepalived: both
//! started fresh, a first; tandem: the pair is kept, what the previous
//! trial killed is restarted and the roles are put back with a
//! switchover, as tandemd needs ~2 s to load its XDP object; the systems
//! run one after the other), the client sends a UDP probe to VIP:5060 every 1 ms (one
//! socket, a sequence number in the payload), the failure is injected at
//! T0 (CLOCK_MONOTONIC, the same clock in every namespace and the clock
//! `tandemd` stamps its timeline with), and the trial ends when the new
//! owner has taken over and the probes are answered again, or 1.5 s after
//! T0 (then the trial failed and is counted, not dropped). Measured:
//! detection (T0 → the standby's first sign: `standby -> …` for tandem,
//! `Receive advertisement timeout` / BFD `Entering Down state` for
//! keepalived), takeover (T0 → `takeover done` / keepalived's
//! `Sending/queueing gratuitous ARPs`, i.e. VIP set and GARP going out),
//! the first GARP of the new owner seen on the client's wire, the longest
//! interval without a probe reply around T0 and the lost probes.
//!
//! keepalived's lines carry only wall-clock seconds: they are stamped with
//! CLOCK_MONOTONIC when this harness reads them from the pipe (tens of µs
//! late at most). tandem's probes go through the active director's XDP
//! dispatcher to the IVRs (DR); keepalived has no dispatcher, so a UDP
//! responder in each director namespace answers for the VIP owner.
//!
//! Every wait is bounded; processes are started and stopped by PID only;
//! the lab is removed on every exit path (its `Drop`).

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tandem_dataplane::{AttachMode, Dataplane, LoadOptions, monotonic_ns};

use crate::{
    Lab, Responder, in_netns,
    lab::{self, CLIENT, DIRECTOR_A, DIRECTOR_B, VIP, cmd, netns},
    spawn_udp_responder,
};

const KEY: &str = "00112233445566778899aabbccddeeff";
/// Probe period.
const PROBE_EVERY: Duration = Duration::from_millis(1);
/// After T0, a trial that has not recovered by then has failed.
const RECOVERY_LIMIT: Duration = Duration::from_millis(1500);
/// The gap and lost-probe window starts this long before T0.
const PRE_WINDOW_NS: u64 = 50_000_000;
/// Consecutive answered probes that count as "answered again".
const RESUMED_RUN: usize = 30;
/// Probes answered in a row before a failure is injected.
const STEADY_RUN: usize = 50;
/// The most probes one trial sends (bounds the stream).
const MAX_PROBES: usize = 20_000;
/// Delay between starting tandemd on a and on b (each needs ~2 s to load).
const TANDEM_B_OFFSET: Duration = Duration::from_millis(600);

/// The three systems, in the order they are run within a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    Tandem,
    KeepalivedVrrp,
    KeepalivedBfd,
}

impl System {
    pub const ALL: [System; 3] = [
        System::Tandem,
        System::KeepalivedVrrp,
        System::KeepalivedBfd,
    ];
    pub fn key(self) -> &'static str {
        match self {
            System::Tandem => "tandem",
            System::KeepalivedVrrp => "keepalived_vrrp",
            System::KeepalivedBfd => "keepalived_bfd",
        }
    }
    fn label(self) -> &'static str {
        match self {
            System::Tandem => "tandem (1 ms × 3)",
            System::KeepalivedVrrp => "keepalived VRRPv3 10 ms",
            System::KeepalivedBfd => "keepalived VRRPv3 10 ms + BFD 10 ms × 3",
        }
    }
}

/// The failures of the active director.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    Kill9,
    Crash,
    LinkDown,
}

impl Failure {
    pub const ALL: [Failure; 3] = [Failure::Kill9, Failure::Crash, Failure::LinkDown];
    pub fn key(self) -> &'static str {
        match self {
            Failure::Kill9 => "kill9",
            Failure::Crash => "crash",
            Failure::LinkDown => "link_down",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Failure::Kill9 => "kill -9 of the daemon",
            Failure::Crash => "director crash (daemon + eth0 + hb0)",
            Failure::LinkDown => "service link (eth0) down",
        }
    }
}

/// What to run: trial count and systems.
#[derive(Clone, Debug)]
pub struct Options {
    pub trials: usize,
    pub systems: Vec<System>,
    pub failures: Vec<Failure>,
    pub tandemd: PathBuf,
    pub keepalived: PathBuf,
}

impl Options {
    /// From the environment: `TANDEM_BENCH_TRIALS` (default 50),
    /// `TANDEM_BENCH_SYSTEMS` (comma list of system keys, default all),
    /// `TANDEM_BENCH_FAILURES` (comma list, default all), `TANDEMD` (default:
    /// `tandemd` next to this executable).
    pub fn from_env() -> Result<Options> {
        let trials = match std::env::var("TANDEM_BENCH_TRIALS") {
            Ok(v) => v
                .parse()
                .with_context(|| format!("TANDEM_BENCH_TRIALS={v}: not a number"))?,
            Err(_) => 50,
        };
        let pick = |var: &str, keys: &[&str]| -> Result<Option<Vec<usize>>> {
            let Ok(v) = std::env::var(var) else {
                return Ok(None);
            };
            let mut out = Vec::new();
            for k in v.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                match keys.iter().position(|x| *x == k) {
                    Some(i) => out.push(i),
                    None => bail!("{var}: unknown `{k}` (known: {})", keys.join(", ")),
                }
            }
            Ok(Some(out))
        };
        let sys_keys: Vec<&str> = System::ALL.iter().map(|s| s.key()).collect();
        let fail_keys: Vec<&str> = Failure::ALL.iter().map(|f| f.key()).collect();
        let systems = pick("TANDEM_BENCH_SYSTEMS", &sys_keys)?
            .map(|v| v.into_iter().map(|i| System::ALL[i]).collect())
            .unwrap_or_else(|| System::ALL.to_vec());
        let failures = pick("TANDEM_BENCH_FAILURES", &fail_keys)?
            .map(|v| v.into_iter().map(|i| Failure::ALL[i]).collect())
            .unwrap_or_else(|| Failure::ALL.to_vec());
        let tandemd = match std::env::var_os("TANDEMD") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()
                .context("locating this executable")?
                .parent()
                .map(|d| d.join("tandemd"))
                .context("no directory above this executable")?,
        };
        Ok(Options {
            trials,
            systems,
            failures,
            tandemd,
            keepalived: PathBuf::from("/usr/sbin/keepalived"),
        })
    }
}

// ---------------------------------------------------------------------------
// Small OS helpers: rtnetlink link flags, ARP over a packet socket.

fn cvt(r: libc::c_int, what: &str) -> Result<libc::c_int> {
    if r < 0 {
        bail!("{what}: {}", std::io::Error::last_os_error());
    }
    Ok(r)
}

fn set_timeout(fd: libc::c_int, opt: libc::c_int, d: Duration) -> Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: tv is a valid timeval of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    cvt(r, "setsockopt(timeout)").map(drop)
}

/// A NETLINK_ROUTE socket opened inside one director's namespace: sets
/// links up and down in microseconds, without spawning `ip`.
struct LinkSetter {
    fd: OwnedFd,
    seq: u32,
}

impl LinkSetter {
    fn open(ns: &str) -> Result<LinkSetter> {
        let fd = netns::try_in_netns(ns, || -> Result<OwnedFd> {
            // SAFETY: socket(2); the fd is owned right after.
            let raw = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::NETLINK_ROUTE,
                )
            };
            cvt(raw, "socket(NETLINK_ROUTE)")?;
            // SAFETY: raw is a fresh fd nobody else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(raw) })
        })??;
        set_timeout(fd.as_raw_fd(), libc::SO_RCVTIMEO, Duration::from_secs(1))?;
        Ok(LinkSetter { fd, seq: 1 })
    }

    /// RTM_NEWLINK with IFF_UP changed; waits for the kernel's ack.
    fn set(&mut self, ifindex: u32, up: bool) -> Result<()> {
        self.seq += 1;
        let mut m = Vec::with_capacity(32);
        m.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
        m.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
        m.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes()); // pid
        m.push(libc::AF_UNSPEC as u8); // ifi_family
        m.push(0);
        m.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
        m.extend_from_slice(&(ifindex as i32).to_ne_bytes());
        let flags: u32 = if up { libc::IFF_UP as u32 } else { 0 };
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_change
        // SAFETY: m is a valid buffer of m.len() bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), m.as_ptr().cast(), m.len(), 0) };
        if n < 0 {
            bail!("rtnetlink send: {}", std::io::Error::last_os_error());
        }
        let mut buf = [0u8; 4096];
        for _ in 0..8 {
            // SAFETY: buf is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                bail!("rtnetlink ack: {}", std::io::Error::last_os_error());
            }
            let n = n as usize;
            if n < 20 {
                continue;
            }
            let ty = u16::from_ne_bytes([buf[4], buf[5]]);
            let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
            if ty == libc::NLMSG_ERROR as u16 && seq == self.seq {
                let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
                if err != 0 {
                    bail!(
                        "rtnetlink: setting link {ifindex} {}: {}",
                        if up { "up" } else { "down" },
                        std::io::Error::from_raw_os_error(-err)
                    );
                }
                return Ok(());
            }
        }
        bail!("rtnetlink: no ack for link {ifindex}")
    }
}

/// One ARP frame seen on the client's wire.
#[derive(Clone, Copy, Debug)]
struct ArpSeen {
    at_ns: u64,
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tpa: Ipv4Addr,
}

/// A packet socket on the client's eth0 that records every ARP frame (in a
/// thread) and can send an ARP request for the VIP.
struct ArpWatch {
    fd: Arc<OwnedFd>,
    seen: Arc<Mutex<Vec<ArpSeen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    ifindex: u32,
    mac: [u8; 6],
}

impl ArpWatch {
    fn start(ns: &str, ifindex: u32, mac: [u8; 6]) -> Result<ArpWatch> {
        let proto = (libc::ETH_P_ARP as u16).to_be();
        let fd = netns::try_in_netns(ns, || -> Result<OwnedFd> {
            // SAFETY: socket(2); the fd is owned right after.
            let raw = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    proto as libc::c_int,
                )
            };
            cvt(raw, "socket(AF_PACKET)")?;
            // SAFETY: raw is a fresh fd nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: sll is a valid sockaddr_ll of the size passed.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const sll).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            cvt(r, "bind(AF_PACKET)")?;
            Ok(fd)
        })??;
        set_timeout(fd.as_raw_fd(), libc::SO_RCVTIMEO, Duration::from_millis(5))?;
        let fd = Arc::new(fd);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (fd_t, seen_t, stop_t) = (fd.clone(), seen.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("arp watch".into())
            .spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut buf = [0u8; 256];
                while !stop_t.load(Ordering::Relaxed) && Instant::now() < deadline {
                    // SAFETY: buf is writable for its length.
                    let n = unsafe {
                        libc::recv(fd_t.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                    };
                    let at_ns = monotonic_ns();
                    if n < 42 {
                        continue;
                    }
                    let f = &buf[..n as usize];
                    if f[12..14] != [0x08, 0x06] || f[16..18] != [0x08, 0x00] {
                        continue;
                    }
                    let ip = |o: usize| Ipv4Addr::new(f[o], f[o + 1], f[o + 2], f[o + 3]);
                    let mut sha = [0u8; 6];
                    sha.copy_from_slice(&f[22..28]);
                    let a = ArpSeen {
                        at_ns,
                        op: u16::from_be_bytes([f[20], f[21]]),
                        sha,
                        spa: ip(28),
                        tpa: ip(38),
                    };
                    seen_t.lock().unwrap_or_else(|e| e.into_inner()).push(a);
                }
            })
            .context("spawning the ARP watcher")?;
        Ok(ArpWatch {
            fd,
            seen,
            stop,
            thread: Some(thread),
            ifindex,
            mac,
        })
    }

    /// Sends "who has VIP, tell client" from the client; returns the send time.
    fn request_vip(&self) -> Result<u64> {
        let mut f = Vec::with_capacity(42);
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(&lab::CLIENT_ADDR.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&VIP.octets());
        // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        let at = monotonic_ns();
        // SAFETY: f and sll are valid for the sizes passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            bail!(
                "sending an ARP request: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(at)
    }

    fn seen(&self) -> Vec<ArpSeen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ArpWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// The client's probe stream.

struct ProbeLog {
    sent: Vec<u64>,
    /// Reply time per sequence number (0: none).
    replied: Vec<u64>,
}

struct Probes {
    log: Arc<Mutex<ProbeLog>>,
    stop_send: Arc<AtomicBool>,
    stop_recv: Arc<AtomicBool>,
    sender: Option<JoinHandle<()>>,
    receiver: Option<JoinHandle<()>>,
}

fn sleep_until_ns(t: u64) {
    let ts = libc::timespec {
        tv_sec: (t / 1_000_000_000) as libc::time_t,
        tv_nsec: (t % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: ts is valid; a null remainder is allowed with TIMER_ABSTIME.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
}

impl Probes {
    fn start(client_ns: &str) -> Result<Probes> {
        let sock = netns::try_in_netns(client_ns, || UdpSocket::bind((lab::CLIENT_ADDR, 0)))?
            .context("binding the probe socket")?;
        sock.set_read_timeout(Some(Duration::from_millis(5)))?;
        let rx = sock.try_clone()?;
        let log = Arc::new(Mutex::new(ProbeLog {
            sent: Vec::with_capacity(MAX_PROBES),
            replied: vec![0; MAX_PROBES],
        }));
        let stop_send = Arc::new(AtomicBool::new(false));
        let stop_recv = Arc::new(AtomicBool::new(false));
        let (log_s, stop_s) = (log.clone(), stop_send.clone());
        let to = SocketAddr::from((VIP, 5060));
        let sender = std::thread::Builder::new()
            .name("probe send".into())
            .spawn(move || {
                let period = PROBE_EVERY.as_nanos() as u64;
                let mut next = monotonic_ns();
                for seq in 0..MAX_PROBES {
                    if stop_s.load(Ordering::Relaxed) {
                        break;
                    }
                    sleep_until_ns(next);
                    let msg = format!("p{seq}");
                    let at = monotonic_ns();
                    let _ = sock.send_to(msg.as_bytes(), to);
                    log_s
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .sent
                        .push(at);
                    next += period;
                    let now = monotonic_ns();
                    if next < now {
                        // Late (a busy core): keep the period, skip the backlog.
                        next = now + period / 2;
                    }
                }
            })?;
        let (log_r, stop_r) = (log.clone(), stop_recv.clone());
        let receiver = std::thread::Builder::new()
            .name("probe recv".into())
            .spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut buf = [0u8; 512];
                while !stop_r.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let Ok((n, _)) = rx.recv_from(&mut buf) else {
                        continue;
                    };
                    let at = monotonic_ns();
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let Some(seq) = text
                        .rsplit(' ')
                        .next()
                        .and_then(|t| t.strip_prefix('p'))
                        .and_then(|s| s.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    let mut l = log_r.lock().unwrap_or_else(|e| e.into_inner());
                    if seq < l.replied.len() && l.replied[seq] == 0 {
                        l.replied[seq] = at;
                    }
                }
            })?;
        Ok(Probes {
            log,
            stop_send,
            stop_recv,
            sender: Some(sender),
            receiver: Some(receiver),
        })
    }

    /// (sent, replied) snapshot.
    fn snapshot(&self) -> (Vec<u64>, Vec<u64>) {
        let l = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let n = l.sent.len();
        (l.sent.clone(), l.replied[..n].to_vec())
    }

    /// Whether the last `run` probes sent at least `settle_ns` ago were all answered.
    fn answered_run(&self, run: usize, settle_ns: u64, after_ns: u64) -> bool {
        let now = monotonic_ns();
        let l = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let eligible: Vec<usize> = (0..l.sent.len())
            .filter(|&i| l.sent[i] >= after_ns && l.sent[i] + settle_ns <= now)
            .collect();
        eligible.len() >= run
            && eligible[eligible.len() - run..]
                .iter()
                .all(|&i| l.replied[i] != 0)
    }

    fn stop(mut self) -> (Vec<u64>, Vec<u64>) {
        self.stop_send.store(true, Ordering::Relaxed);
        if let Some(t) = self.sender.take() {
            let _ = t.join();
        }
        std::thread::sleep(Duration::from_millis(10));
        self.stop_recv.store(true, Ordering::Relaxed);
        if let Some(t) = self.receiver.take() {
            let _ = t.join();
        }
        self.snapshot()
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self.stop_send.store(true, Ordering::Relaxed);
        self.stop_recv.store(true, Ordering::Relaxed);
        for t in [self.sender.take(), self.receiver.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Daemons: started with `ip netns exec` (which execs: the child's PID is the
// daemon's), output read line by line and stamped.

#[derive(Clone, Debug)]
struct Line {
    /// CLOCK_MONOTONIC when this harness read it.
    read_ns: u64,
    /// The daemon's own CLOCK_MONOTONIC stamp (tandemd's `<ns> <text>`).
    own_ns: Option<u64>,
    text: String,
}

impl Line {
    fn at(&self) -> u64 {
        self.own_ns.unwrap_or(self.read_ns)
    }
}

struct Daemon {
    child: Option<Child>,
    /// Other processes of the same daemon (keepalived's VRRP and BFD children).
    extra: Vec<i32>,
    lines: Arc<Mutex<Vec<Line>>>,
    /// Text that identifies this daemon in /proc/PID/cmdline (its config path).
    tag: String,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    cvt(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        "pipe2",
    )?;
    // SAFETY: both are fresh fds nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Whether `pid` is alive and still runs the program started with `tag` in its command line.
fn pid_is(pid: i32, tag: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(tag))
        .unwrap_or(false)
}

impl Daemon {
    fn spawn(
        ns: &str,
        program: &Path,
        args: &[String],
        tag: &str,
        stamped: bool,
    ) -> Result<Daemon> {
        let (r, w) = pipe()?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(w.try_clone()?))
            .stderr(Stdio::from(w))
            .spawn()
            .with_context(|| format!("starting {} in {ns}", program.display()))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let lines_t = lines.clone();
        // The reader ends at EOF, when every process of the daemon is gone.
        std::thread::Builder::new()
            .name("daemon output".into())
            .spawn(move || {
                let mut rd = BufReader::new(std::fs::File::from(r));
                let mut buf = String::new();
                for _ in 0..1_000_000 {
                    buf.clear();
                    match rd.read_line(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let read_ns = monotonic_ns();
                    let text = buf.trim_end().to_string();
                    let own_ns = if stamped {
                        text.split(' ').next().and_then(|t| t.parse::<u64>().ok())
                    } else {
                        None
                    };
                    lines_t
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Line {
                            read_ns,
                            own_ns,
                            text,
                        });
                }
            })?;
        Ok(Daemon {
            child: Some(child),
            extra: Vec::new(),
            lines,
            tag: tag.to_string(),
        })
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn has_line(&self, pat: &str) -> bool {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|l| l.text.contains(pat))
    }

    fn count_lines(&self, pat: &str) -> usize {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| l.text.contains(pat))
            .count()
    }

    /// First line after `t0` containing any of `pats`.
    fn first_after(&self, t0: u64, pats: &[&str]) -> Option<Line> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| l.at() >= t0 && pats.iter().any(|p| l.text.contains(p)))
            .min_by_key(|l| l.at())
            .cloned()
    }

    fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
        }
    }

    /// SIGKILL to every process of the daemon (children first), by PID.
    /// keepalived runs with `--dont-respawn`, so its parent does not
    /// replace a child killed first; children it has now are added too.
    fn kill9(&mut self) {
        if let Some(pid) = self.pid() {
            let now = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for c in now.split_whitespace().filter_map(|c| c.parse::<i32>().ok()) {
                if !self.extra.contains(&c) {
                    self.extra.push(c);
                }
            }
        }
        for &p in &self.extra {
            if pid_is(p, &self.tag) {
                // SAFETY: kill(2) on a PID this harness started (checked above).
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
        }
    }

    /// SIGTERM, up to 3 s to exit, then SIGKILL; reaps the child.
    fn stop(&mut self) {
        if let Some(pid) = self.pid()
            && !self.exited()
        {
            // SAFETY: kill(2) on our own child's PID.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(3);
            while !self.exited() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.kill9();
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        // Children of a killed keepalived: give them a moment to go.
        let end = Instant::now() + Duration::from_secs(2);
        while self.extra.iter().any(|&p| pid_is(p, &self.tag)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn dump(&self, path: &Path) {
        let mut s = String::new();
        for l in self.lines() {
            s.push_str(&format!("[{}] {}\n", l.read_ns, l.text));
        }
        let _ = std::fs::write(path, s);
    }
}

/// SIGTERM to every daemon at once, then [`Daemon::stop`] each (bounded).
fn stop_all(ds: &mut [&mut Daemon]) {
    for d in ds.iter_mut() {
        if let Some(pid) = d.pid()
            && !d.exited()
        {
            // SAFETY: kill(2) on our own child's PID.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    let end = Instant::now() + Duration::from_secs(3);
    while ds.iter_mut().any(|d| !d.exited()) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
    for d in ds.iter_mut() {
        d.stop();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// The bench lab: the pair topology, IVR responders, XDP_PASS on the
// bridge side of the directors' service veths, link setters.

struct Bench {
    lab: Lab,
    _ivrs: Vec<Responder>,
    _peers: Dataplane,
    links: BTreeMap<&'static str, LinkSetter>,
    dir: PathBuf,
    keep_dir: bool,
    opts: Options,
    mac_a: [u8; 6],
    mac_b: [u8; 6],
    /// tandem's pair, kept from one trial to the next (what a trial killed
    /// is restarted, the roles are put back with a switchover).
    tandem: Option<(Daemon, Daemon)>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop_tandem();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn verbose() -> bool {
    std::env::var_os("TANDEM_BENCH_VERBOSE").is_some()
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `{"cmd":"status"}` over the admin socket; the reply as JSON.
fn admin_status(socket: &Path) -> Option<Value> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"{\"cmd\":\"status\"}\n").ok()?;
    let mut buf = Vec::new();
    let _ = s.take(1 << 20).read_to_end(&mut buf);
    let line = String::from_utf8_lossy(&buf);
    serde_json::from_str(line.lines().next()?).ok()
}

fn state_of(v: &Option<Value>) -> Option<String> {
    v.as_ref()?.get("state")?.as_str().map(str::to_string)
}

/// What one trial measured (times in ns after T0).
#[derive(Clone, Debug, Default)]
pub struct Trial {
    pub ok: bool,
    pub reason: Option<String>,
    pub detect_ns: Option<u64>,
    pub takeover_ns: Option<u64>,
    pub garp_wire_ns: Option<u64>,
    pub gap_ns: u64,
    pub lost: u64,
    /// kill9: MACs that answered an ARP request for the VIP after the takeover.
    pub arp_answer_macs: Vec<[u8; 6]>,
    /// kill9, tandem: an XDP program still attached to the killed node's links.
    pub xdp_left: Option<bool>,
    /// The client's neighbour entry for the VIP pointed to the new owner at the end.
    pub neigh_on_new_owner: Option<bool>,
    /// Attempts discarded because the pair changed roles by itself before
    /// the failure (what changed, ms after the steady state was confirmed).
    pub unstable: Vec<String>,
}

enum Attempt {
    Done(Trial),
    Unstable(String),
}

impl Bench {
    fn new(opts: Options) -> Result<Bench> {
        let lab = Lab::pair(2).context("building the pair lab")?;
        let ivrs: Vec<Responder> = lab
            .ivrs()
            .iter()
            .map(|h| spawn_udp_responder(&h.ns, &h.name, 5060))
            .collect::<Result<_, _>>()?;
        let mut peers = Dataplane::load(LoadOptions {
            flow_entries: 1024,
            nat_entries: 1024,
        })
        .context("loading XDP for the bridge-side veths")?;
        for d in [DIRECTOR_A, DIRECTOR_B] {
            let i = lab.iface(d, "eth0")?.clone();
            in_netns(&i.peer_ns, || {
                peers.attach_pass(&i.peer, AttachMode::Native)
            })
            .with_context(|| format!("XDP_PASS on {}", i.peer))?;
        }
        let mut links = BTreeMap::new();
        for d in [DIRECTOR_A, DIRECTOR_B] {
            links.insert(d, LinkSetter::open(lab.ns(d)?)?);
        }
        let dir =
            std::env::temp_dir().join(format!("tandem-bench-failover-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mac_a = lab.iface(DIRECTOR_A, "eth0")?.mac;
        let mac_b = lab.iface(DIRECTOR_B, "eth0")?.mac;
        Ok(Bench {
            lab,
            _ivrs: ivrs,
            _peers: peers,
            links,
            dir,
            keep_dir: false,
            opts,
            mac_a,
            mac_b,
            tandem: None,
        })
    }

    fn set_link(&mut self, host: &'static str, iface: &str, up: bool) -> Result<()> {
        let idx = self.lab.iface(host, iface)?.ifindex;
        self.links
            .get_mut(host)
            .context("no link setter")?
            .set(idx, up)
    }

    /// Links up, no VIP anywhere on the directors, ARP sysctls for `sys`,
    /// the client's neighbour entry for the VIP gone.
    fn reset(&mut self, sys: System) -> Result<()> {
        for d in [DIRECTOR_A, DIRECTOR_B] {
            self.set_link(d, "eth0", true)?;
            self.set_link(d, "hb0", true)?;
            let ns = self.lab.ns(d)?.to_string();
            if sys == System::Tandem && self.tandem.is_some() {
                // A running tandemd manages the VIP itself.
                continue;
            }
            for dev in ["lo", "eth0"] {
                let _ = cmd::ip_in(&ns, &["addr", "del", &format!("{VIP}/32"), "dev", dev]);
            }
            if sys != System::Tandem {
                // tandemd sets arp_ignore=1 (only XDP answers for the VIP);
                // keepalived relies on the kernel's default ARP behaviour.
                netns::sysctl(&ns, "net.ipv4.conf.eth0.arp_ignore", "0")?;
                netns::sysctl(&ns, "net.ipv4.conf.eth0.arp_announce", "0")?;
            }
        }
        let client = self.lab.ns(CLIENT)?.to_string();
        let _ = cmd::ip_in(&client, &["neigh", "flush", "to", &VIP.to_string()]);
        Ok(())
    }

    fn tandem_config(&self, me: &str) -> Result<(PathBuf, PathBuf)> {
        let (id, peer_id, priority, local, peer, hb_local, hb_peer) = if me == DIRECTOR_A {
            (
                1,
                2,
                150,
                lab::DIRECTOR_A_ADDR,
                lab::DIRECTOR_B_ADDR,
                lab::HB_A_ADDR,
                lab::HB_B_ADDR,
            )
        } else {
            (
                2,
                1,
                100,
                lab::DIRECTOR_B_ADDR,
                lab::DIRECTOR_A_ADDR,
                lab::HB_B_ADDR,
                lab::HB_A_ADDR,
            )
        };
        let socket = self.dir.join(format!("tandem-{me}.sock"));
        let mut reals = String::new();
        for ivr in self.lab.ivrs() {
            reals.push_str(&format!(
                "[[service.real]]\naddress = \"{}\"\nmac = \"{}\"\nweight = 1\n\n",
                ivr.addr(),
                ivr.eth0().mac_string()
            ));
        }
        let text = format!(
            r#"[node]
id = {id}
peer_id = {peer_id}
name = "{me}"
priority = {priority}
preempt = false
realtime_priority = 50

[heartbeat]
interval_ms = 1
multiplier = 3
key = "{KEY}"
paths = [
  {{ name = "link", interface = "hb0", local = "{hb_local}", peer = "{hb_peer}" }},
  {{ name = "service", interface = "eth0", local = "{local}", peer = "{peer}" }},
]

[witness]
address = "{witness}"

[[vip]]
address = "{VIP}"
interface = "eth0"

[dataplane]
xdp_mode = "native"
interfaces = ["eth0", "hb0"]
flow_entries = 65536

[[service]]
vip = "{VIP}"
port = 5060
protocol = "udp"
scheduler = "rr"
forward = "dr"

{reals}
[admin]
socket = "{socket}"
"#,
            witness = lab::WITNESS_ADDR,
            socket = socket.display(),
        );
        let path = self.dir.join(format!("tandem-{me}.toml"));
        std::fs::write(&path, text)?;
        Ok((path, socket))
    }

    fn keepalived_config(&self, me: &str, bfd: bool) -> Result<PathBuf> {
        let (priority, src, peer, hb_src, hb_peer) = if me == DIRECTOR_A {
            (
                250,
                lab::DIRECTOR_A_ADDR,
                lab::DIRECTOR_B_ADDR,
                lab::HB_A_ADDR,
                lab::HB_B_ADDR,
            )
        } else {
            (
                200,
                lab::DIRECTOR_B_ADDR,
                lab::DIRECTOR_A_ADDR,
                lab::HB_B_ADDR,
                lab::HB_A_ADDR,
            )
        };
        // The same real-time priority as tandem's loop (keepalived's own
        // knobs for it), so that neither is at the scheduler's mercy.
        let mut text = format!(
            "global_defs {{\n  router_id {me}\n  vrrp_rt_priority 50\n  bfd_rt_priority 50\n}}\n"
        );
        if bfd {
            // On the heartbeat link, like tandem's dedicated path. The
            // tracked weight lowers the priority while the peer is up
            // (`reverse`): when BFD loses the peer, the standby's
            // priority goes up, which is the only lever keepalived 2.2.7
            // gives BFD over a backup instance.
            text.push_str(&format!(
                "bfd_instance peer {{\n  neighbor_ip {hb_peer}\n  source_ip {hb_src}\n  min_rx 10\n  min_tx 10\n  multiplier 3\n  vrrp\n}}\n"
            ));
        }
        text.push_str(&format!(
            "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  version 3\n  priority {priority}\n  advert_int 0.01\n  unicast_src_ip {src}\n  unicast_peer {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {VIP}/32 dev eth0\n  }}\n"
        ));
        if bfd {
            text.push_str("  track_bfd {\n    peer weight 50 reverse\n  }\n");
        }
        text.push_str("}\n");
        let path = self.dir.join(format!(
            "keepalived-{}-{me}.conf",
            if bfd { "bfd" } else { "vrrp" }
        ));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    fn start_tandem(&self, me: &'static str) -> Result<(Daemon, PathBuf)> {
        let (config, socket) = self.tandem_config(me)?;
        let _ = std::fs::remove_file(&socket);
        let tag = config.display().to_string();
        let d = Daemon::spawn(
            self.lab.ns(me)?,
            &self.opts.tandemd,
            &["--config".into(), tag.clone()],
            &tag,
            true,
        )?;
        Ok((d, socket))
    }

    fn start_keepalived(&self, me: &'static str, bfd: bool) -> Result<Daemon> {
        let config = self.keepalived_config(me, bfd)?;
        let base = self.dir.join(format!("keepalived-{me}"));
        let pidf = |s: &str| PathBuf::from(format!("{}{s}.pid", base.display()));
        let (main, vrrp, bfdp, chk) = (pidf(""), pidf("-vrrp"), pidf("-bfd"), pidf("-check"));
        for p in [&main, &vrrp, &bfdp, &chk] {
            let _ = std::fs::remove_file(p);
        }
        let tag = config.display().to_string();
        // Foreground, log to the console (our pipe), details, no syslog,
        // never respawn a child (a respawned child would outlive a kill).
        let mut args: Vec<String> = vec![
            "-n".into(),
            "-l".into(),
            "-D".into(),
            "-G".into(),
            "-R".into(),
            "-f".into(),
            tag.clone(),
        ];
        for (flag, p) in [("-p", &main), ("-r", &vrrp), ("-b", &bfdp), ("-c", &chk)] {
            args.push(flag.into());
            args.push(p.display().to_string());
        }
        if !bfd {
            args.push("-P".into()); // VRRP only
        }
        let mut d = Daemon::spawn(self.lab.ns(me)?, &self.opts.keepalived, &args, &tag, false)?;
        let read_pid = |p: &Path| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
        };
        let wanted: Vec<&PathBuf> = if bfd { vec![&vrrp, &bfdp] } else { vec![&vrrp] };
        if !wait_for(Duration::from_secs(5), || {
            wanted.iter().all(|p| read_pid(p).is_some())
        }) {
            bail!("keepalived in {me}: no child pidfiles after 5 s");
        }
        d.extra = wanted.iter().filter_map(|p| read_pid(p)).collect();
        Ok(d)
    }

    /// One trial of `sys` under `failure`: up to 3 attempts when the pair
    /// changes roles by itself before the failure (counted in
    /// `Trial::unstable`). Errors are harness failures.
    fn trial(&mut self, sys: System, failure: Failure, n: usize) -> Result<Trial> {
        let mut unstable = Vec::new();
        for _ in 0..3 {
            match self.attempt(sys, failure, n)? {
                Attempt::Done(mut t) => {
                    t.unstable = unstable;
                    return Ok(t);
                }
                Attempt::Unstable(why) => unstable.push(why),
            }
        }
        Ok(Trial {
            reason: Some(format!(
                "setup: the pair changed roles by itself in {} attempts",
                unstable.len()
            )),
            unstable,
            ..Trial::default()
        })
    }

    fn attempt(&mut self, sys: System, failure: Failure, n: usize) -> Result<Attempt> {
        self.reset(sys)?;
        let mut out = Trial::default();
        let client_ns = self.lab.ns(CLIENT)?.to_string();
        // Start the pair: a alone first, then b; wait for a steady state.
        let mut responders = Vec::new();
        let (mut a, mut b);
        match sys {
            System::Tandem => match self.tandem_pair()? {
                Ok((da, db)) => {
                    a = da;
                    b = db;
                }
                Err((why, da, db)) => {
                    if let Some(da) = &da {
                        self.keep(n, sys, failure, da, db.as_ref());
                    }
                    return Ok(Attempt::Unstable(format!("setup: {why}")));
                }
            },
            System::KeepalivedVrrp | System::KeepalivedBfd => {
                let bfd = sys == System::KeepalivedBfd;
                for d in [DIRECTOR_A, DIRECTOR_B] {
                    responders.push(spawn_udp_responder(self.lab.ns(d)?, d, 5060)?);
                }
                let k0 = Instant::now();
                a = self.start_keepalived(DIRECTOR_A, bfd)?;
                if !wait_for(Duration::from_secs(10), || {
                    a.has_line("Entering MASTER STATE")
                }) {
                    return self.setup_failed(
                        n,
                        sys,
                        failure,
                        "a did not become MASTER alone",
                        &a,
                        None,
                    );
                }
                b = self.start_keepalived(DIRECTOR_B, bfd)?;
                let mut steady = wait_for(Duration::from_secs(10), || {
                    b.has_line("Entering BACKUP STATE")
                });
                if bfd {
                    steady = steady
                        && wait_for(Duration::from_secs(10), || {
                            a.has_line("Tracked BFD instance peer is UP")
                                && b.has_line("Tracked BFD instance peer is UP")
                        });
                }
                // Longer than b's master-down interval (≈ 35 ms): b must
                // have heard a by then and stayed backup.
                std::thread::sleep(Duration::from_millis(100));
                if verbose() {
                    eprintln!(
                        "  keepalived setup {:.0} ms",
                        k0.elapsed().as_secs_f64() * 1e3
                    );
                }
                if !steady
                    || b.has_line("Entering MASTER STATE")
                    || a.count_lines("Entering MASTER STATE") != 1
                {
                    return self.setup_failed(
                        n,
                        sys,
                        failure,
                        "no steady state (a MASTER, b BACKUP)",
                        &a,
                        Some(&b),
                    );
                }
            }
        }
        // From here until T0 neither node may change its role by itself.
        let role_pats: &[&str] = match sys {
            System::Tandem => &["state ", "takeover done", "released VIPs", "GARP re-sent"],
            _ => &["Entering ", "Receive advertisement timeout"],
        };
        let (a_mark, b_mark, marked_ns) = (a.lines().len(), b.lines().len(), monotonic_ns());
        let c = self.lab.iface(CLIENT, "eth0")?.clone();
        let arp = ArpWatch::start(&client_ns, c.ifindex, c.mac)?;
        let probes = Probes::start(&client_ns)?;
        if !wait_for(Duration::from_secs(5), || {
            probes.answered_run(STEADY_RUN, 5_000_000, 0)
        }) {
            drop(probes);
            return self.setup_failed(
                n,
                sys,
                failure,
                "probes to the VIP not answered before the failure",
                &a,
                Some(&b),
            );
        }
        let changed: Vec<String> = [("a", &a, a_mark), ("b", &b, b_mark)]
            .iter()
            .flat_map(|(name, d, mark)| {
                d.lines()
                    .into_iter()
                    .skip(*mark)
                    .filter(|l| l.at() > marked_ns && role_pats.iter().any(|p| l.text.contains(p)))
                    .map(move |l| {
                        format!(
                            "{name} +{:.1} ms: {}",
                            ms(l.at().saturating_sub(marked_ns)),
                            l.text
                        )
                    })
            })
            .collect();
        if !changed.is_empty() {
            drop(probes);
            drop(arp);
            self.keep(n, sys, failure, &a, Some(&b));
            if sys == System::Tandem {
                // The next attempt puts the roles back (switchover) or,
                // if the pair does not settle, restarts it.
                self.tandem = Some((a, b));
            }
            drop(responders);
            return Ok(Attempt::Unstable(changed.join("; ")));
        }
        // Inject the failure.
        let t0 = monotonic_ns();
        match failure {
            Failure::Kill9 => a.kill9(),
            Failure::Crash => {
                a.kill9();
                self.set_link(DIRECTOR_A, "eth0", false)?;
                self.set_link(DIRECTOR_A, "hb0", false)?;
            }
            Failure::LinkDown => self.set_link(DIRECTOR_A, "eth0", false)?,
        }
        let (detect_pats, takeover_pats): (&[&str], &[&str]) = match sys {
            System::Tandem => (&["state standby -> "], &["takeover done"]),
            System::KeepalivedVrrp => (
                &[
                    "Receive advertisement timeout",
                    "priority 0 advertisement",
                    "Entering MASTER STATE",
                ],
                &["Sending/queueing gratuitous ARPs"],
            ),
            System::KeepalivedBfd => (
                &[
                    "Entering Down state",
                    "Receive advertisement timeout",
                    "priority 0 advertisement",
                    "Entering MASTER STATE",
                ],
                &["Sending/queueing gratuitous ARPs"],
            ),
        };
        let limit_ns = t0 + RECOVERY_LIMIT.as_nanos() as u64;
        let mut recovered = false;
        while monotonic_ns() < limit_ns {
            if monotonic_ns() > t0 + 60_000_000
                && b.first_after(t0, takeover_pats).is_some()
                && probes.answered_run(RESUMED_RUN, 10_000_000, t0)
            {
                recovered = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let end_ns = monotonic_ns();
        let (sent, replied) = probes.stop();
        out.detect_ns = b
            .first_after(t0, detect_pats)
            .map(|l| l.at().saturating_sub(t0));
        out.takeover_ns = b
            .first_after(t0, takeover_pats)
            .map(|l| l.at().saturating_sub(t0));
        if std::env::var_os("TANDEM_BENCH_TRACE").is_some() {
            // The new owner's timeline after the failure, relative to T0.
            for l in b.lines().iter().filter(|l| l.at() >= t0 && l.at() < t0 + 50_000_000) {
                eprintln!("  trace {:?} +{:.3} ms {}", failure, (l.at() - t0) as f64 / 1e6, l.text);
            }
        }
        let garps = arp.seen();
        out.garp_wire_ns = garps
            .iter()
            .filter(|g| g.at_ns >= t0 && g.sha == self.mac_b && g.spa == VIP && g.tpa == VIP)
            .map(|g| g.at_ns - t0)
            .min();
        // Gap: the longest interval between consecutive replies from
        // T0 − 50 ms to the end (the end counts as a reply if none came
        // after T0: a censored gap).
        let from = t0.saturating_sub(PRE_WINDOW_NS);
        let mut times: Vec<u64> = replied
            .iter()
            .copied()
            .filter(|&r| r != 0 && r >= from && r <= end_ns)
            .collect();
        times.sort_unstable();
        if times.last().is_none_or(|&l| l < t0) {
            times.push(end_ns);
        }
        out.gap_ns = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(end_ns - from);
        out.lost = sent
            .iter()
            .zip(&replied)
            .filter(|&(&s, &r)| s >= from && s + 20_000_000 <= end_ns && r == 0)
            .count() as u64;
        if failure == Failure::Kill9 && recovered {
            // What the killed node left behind: does it still answer ARP
            // for the VIP, and (tandem) is an XDP program still attached?
            let asked = arp.request_vip()?;
            std::thread::sleep(Duration::from_millis(30));
            let mut macs: Vec<[u8; 6]> = arp
                .seen()
                .iter()
                .filter(|g| {
                    g.at_ns >= asked && g.op == 2 && g.spa == VIP && g.tpa == lab::CLIENT_ADDR
                })
                .map(|g| g.sha)
                .collect();
            macs.sort_unstable();
            macs.dedup();
            out.arp_answer_macs = macs;
            if sys == System::Tandem {
                let ns = self.lab.ns(DIRECTOR_A)?.to_string();
                let mut left = false;
                for dev in ["eth0", "hb0"] {
                    let j = cmd::ip_in(&ns, &["-j", "-d", "link", "show", "dev", dev])
                        .unwrap_or_default();
                    left |= j.contains("\"xdp\"");
                }
                out.xdp_left = Some(left);
            }
        }
        if recovered {
            let j = cmd::ip_in(&client_ns, &["-j", "neigh", "show", "to", &VIP.to_string()])
                .unwrap_or_default();
            out.neigh_on_new_owner = Some(j.contains(&lab::format_mac(&self.mac_b)));
        }
        drop(arp);
        out.ok = recovered && out.takeover_ns.is_some();
        if !out.ok {
            out.reason = Some(if out.takeover_ns.is_none() {
                format!("no takeover by b within {} ms", RECOVERY_LIMIT.as_millis())
            } else {
                format!(
                    "probes not answered again within {} ms",
                    RECOVERY_LIMIT.as_millis()
                )
            });
            self.keep(n, sys, failure, &a, Some(&b));
        }
        drop(responders);
        if sys == System::Tandem {
            self.tandem = Some((a, b));
        } else {
            // A graceful keepalived stop takes ~1 s; the trial is over and
            // `reset` removes what it leaves, so SIGKILL (by PID) it is.
            let k1 = Instant::now();
            a.kill9();
            b.kill9();
            stop_all(&mut [&mut a, &mut b]);
            if verbose() {
                eprintln!(
                    "  keepalived stop {:.0} ms",
                    k1.elapsed().as_secs_f64() * 1e3
                );
            }
        }
        Ok(Attempt::Done(out))
    }

    fn stop_tandem(&mut self) {
        if let Some((mut a, mut b)) = self.tandem.take() {
            stop_all(&mut [&mut a, &mut b]);
        }
    }

    /// tandem's pair in its steady state: a active, b standby hearing a.
    /// Restarts what is not running (both: a first, b `TANDEM_B_OFFSET`
    /// later, as tandemd needs ~2 s to load its XDP object), and puts the
    /// roles back with a switchover when b is the active one. On failure
    /// both are handed back for their logs (and are stopped when dropped).
    #[allow(clippy::type_complexity)]
    fn tandem_pair(
        &mut self,
    ) -> Result<Result<(Daemon, Daemon), (String, Option<Daemon>, Option<Daemon>)>> {
        let sa = self.dir.join(format!("tandem-{DIRECTOR_A}.sock"));
        let sb = self.dir.join(format!("tandem-{DIRECTOR_B}.sock"));
        let (mut a, mut b) = match self.tandem.take() {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        if a.as_mut().is_some_and(|d| d.exited()) {
            a = None;
        }
        if b.as_mut().is_some_and(|d| d.exited()) {
            b = None;
        }
        let fresh = a.is_none() || b.is_none();
        if a.is_none() && b.is_none() {
            a = Some(self.start_tandem(DIRECTOR_A)?.0);
            std::thread::sleep(TANDEM_B_OFFSET);
            b = Some(self.start_tandem(DIRECTOR_B)?.0);
        } else if a.is_none() {
            a = Some(self.start_tandem(DIRECTOR_A)?.0);
        } else if b.is_none() {
            b = Some(self.start_tandem(DIRECTOR_B)?.0);
        }
        let roles = || {
            let (x, y) = (admin_status(&sa), admin_status(&sb));
            let peer = |v: &Option<Value>| {
                v.as_ref()
                    .and_then(|v| v.pointer("/peer/state"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            (state_of(&x), peer(&x), state_of(&y), peer(&y))
        };
        let is = |r: &(
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ),
                  p: [&str; 4]| {
            r.0.as_deref() == Some(p[0])
                && r.1.as_deref() == Some(p[1])
                && r.2.as_deref() == Some(p[2])
                && r.3.as_deref() == Some(p[3])
        };
        let a_up = ["active", "standby", "standby", "active"];
        let b_up = ["standby", "active", "active", "standby"];
        let mut last = roles();
        let settle = if fresh {
            Duration::from_secs(15)
        } else {
            Duration::from_secs(5)
        };
        if !wait_for(settle, || {
            last = roles();
            is(&last, a_up) || is(&last, b_up)
        }) {
            return Ok(Err((format!("no steady pair: {last:?}"), a, b)));
        }
        if is(&last, b_up) {
            let reply = UnixStream::connect(&sb).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_millis(500)))?;
                s.write_all(b"{\"cmd\":\"switchover\"}\n")?;
                let mut r = String::new();
                let _ = s.take(1 << 16).read_to_string(&mut r);
                Ok(r)
            });
            if !wait_for(Duration::from_secs(3), || {
                last = roles();
                is(&last, a_up)
            }) {
                return Ok(Err((
                    format!("switchover back to a failed ({reply:?}): {last:?}"),
                    a,
                    b,
                )));
            }
        }
        match (a, b) {
            (Some(a), Some(b)) => Ok(Ok((a, b))),
            (a, b) => Ok(Err(("a daemon is missing".into(), a, b))),
        }
    }

    fn keep(&mut self, n: usize, sys: System, failure: Failure, a: &Daemon, b: Option<&Daemon>) {
        self.keep_dir = true;
        let base = format!("{}-{}-{n}", sys.key(), failure.key());
        a.dump(&self.dir.join(format!("{base}-a.log")));
        if let Some(b) = b {
            b.dump(&self.dir.join(format!("{base}-b.log")));
        }
    }

    fn setup_failed(
        &mut self,
        n: usize,
        sys: System,
        failure: Failure,
        why: &str,
        a: &Daemon,
        b: Option<&Daemon>,
    ) -> Result<Attempt> {
        self.keep(n, sys, failure, a, b);
        Ok(Attempt::Unstable(format!("setup: {why}")))
    }
}

// ---------------------------------------------------------------------------
// Statistics and reports.

/// Nearest-rank percentile of sorted `v` (q in 0..=1).
fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = (q * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn num(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

#[derive(Default)]
struct Case {
    trials: Vec<Trial>,
}

impl Case {
    fn ok(&self) -> impl Iterator<Item = &Trial> {
        self.trials.iter().filter(|t| t.ok)
    }
    fn sorted(&self, f: impl Fn(&Trial) -> Option<u64>, only_ok: bool) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .trials
            .iter()
            .filter(|t| !only_ok || t.ok)
            .filter_map(|t| f(t).map(ms))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }
    fn detect(&self) -> Vec<f64> {
        self.sorted(|t| t.detect_ns, true)
    }
    fn takeover(&self) -> Vec<f64> {
        self.sorted(|t| t.takeover_ns, true)
    }
    fn garp(&self) -> Vec<f64> {
        self.sorted(|t| t.garp_wire_ns, true)
    }
    /// Gaps of every trial that got past setup (failed ones censored at the limit).
    fn gap(&self) -> Vec<f64> {
        self.sorted(
            |t| (t.ok || t.takeover_ns.is_some() || t.gap_ns > 0).then_some(t.gap_ns),
            false,
        )
    }
    fn lost(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .trials
            .iter()
            .filter(|t| t.gap_ns > 0)
            .map(|t| t.lost as f64)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }
    fn unstable(&self) -> usize {
        self.trials.iter().map(|t| t.unstable.len()).sum()
    }
    fn setup_failed(&self) -> usize {
        self.trials
            .iter()
            .filter(|t| {
                !t.ok
                    && t.reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with("setup") || r.starts_with("harness"))
            })
            .count()
    }
    fn failed(&self) -> usize {
        self.trials.iter().filter(|t| !t.ok).count()
    }

    fn to_json(&self, sys: System, failure: Failure, mac_a: [u8; 6]) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("trials".into(), json!(self.trials.len()));
        o.insert("failed_trials".into(), json!(self.failed()));
        o.insert(
            "failed_before_injection_trials".into(),
            json!(self.setup_failed()),
        );
        for (name, v) in [
            ("detect", self.detect()),
            ("takeover", self.takeover()),
            ("garp_wire", self.garp()),
            ("gap", self.gap()),
        ] {
            for (k, q) in [("min", 0.0), ("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
                let x = if k == "min" {
                    v.first().copied().unwrap_or(f64::NAN)
                } else {
                    pct(&v, q)
                };
                o.insert(format!("{name}_{k}_ms"), num(x));
            }
        }
        let lost = self.lost();
        o.insert("lost_probes".into(), json!(lost.iter().sum::<f64>() as u64));
        o.insert("lost_probes_p50".into(), num(pct(&lost, 0.5)));
        o.insert("lost_probes_p99".into(), num(pct(&lost, 0.99)));
        o.insert("lost_probes_max".into(), num(pct(&lost, 1.0)));
        if failure == Failure::Kill9 {
            let checked = self.ok().filter(|t| !t.arp_answer_macs.is_empty()).count();
            let dead = self
                .ok()
                .filter(|t| t.arp_answer_macs.contains(&mac_a))
                .count();
            o.insert("arp_checked_trials".into(), json!(checked));
            o.insert("dead_node_answered_arp_trials".into(), json!(dead));
            if sys == System::Tandem {
                o.insert(
                    "xdp_left_attached_trials".into(),
                    json!(
                        self.trials
                            .iter()
                            .filter(|t| t.xdp_left == Some(true))
                            .count()
                    ),
                );
            }
        }
        let unstable: Vec<&String> = self.trials.iter().flat_map(|t| t.unstable.iter()).collect();
        o.insert("unstable_setups".into(), json!(unstable.len()));
        o.insert(
            "unstable_examples".into(),
            json!(unstable.iter().take(5).collect::<Vec<_>>()),
        );
        o.insert(
            "client_neigh_on_new_owner_trials".into(),
            json!(
                self.trials
                    .iter()
                    .filter(|t| t.neigh_on_new_owner == Some(true))
                    .count()
            ),
        );
        let fails: Vec<Value> = self
            .trials
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.ok)
            .map(|(i, t)| json!({"trial": i, "reason": t.reason.clone().unwrap_or_default()}))
            .collect();
        o.insert("failures".into(), Value::Array(fails));
        let ns_list = |f: &dyn Fn(&Trial) -> Option<u64>| -> Value {
            Value::Array(
                self.trials
                    .iter()
                    .map(|t| f(t).map_or(Value::Null, |x| num(ms(x))))
                    .collect(),
            )
        };
        o.insert(
            "samples_ms".into(),
            json!({
                "detect": ns_list(&|t| t.detect_ns),
                "takeover": ns_list(&|t| t.takeover_ns),
                "garp_wire": ns_list(&|t| t.garp_wire_ns),
                "gap": ns_list(&|t| Some(t.gap_ns)),
                "lost_probes": Value::Array(self.trials.iter().map(|t| json!(t.lost)).collect()),
            }),
        );
        Value::Object(o)
    }
}

fn fmt_ms(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn trio(v: &[f64]) -> String {
    format!(
        "{} / {} / {}",
        fmt_ms(pct(v, 0.5)),
        fmt_ms(pct(v, 0.99)),
        fmt_ms(pct(v, 1.0))
    )
}

type Results = BTreeMap<(System, Failure), Case>;

fn markdown(res: &Results, opts: &Options, elapsed: Duration, checks: &[String]) -> String {
    let mut s = String::new();
    s.push_str("# Failover: tandem vs keepalived, same lab, same run\n\n");
    s.push_str(&format!(
        "{} trials per system and failure; the systems run one after the other in the same lab, the failures interleaved (one trial of each per round). \
         Times in ms after the failure (T0, CLOCK_MONOTONIC): p50 / p99 / max (nearest rank; with 50 trials p99 is the 50th value, the max). \
         Run took {:.0} s.\n\n",
        opts.trials,
        elapsed.as_secs_f64()
    ));
    s.push_str("| failure | system | detect p50 / p99 / max | takeover p50 / p99 / max | GARP on the wire p50 / p99 | client gap p50 / p99 / max | lost probes total (p50 / p99 per trial) | failed | unstable setups |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for f in &opts.failures {
        for sys in &opts.systems {
            let Some(c) = res.get(&(*sys, *f)) else {
                continue;
            };
            let g = c.garp();
            let lost = c.lost();
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} / {} | {} | {} ({} / {}) | {} / {}{} | {} |\n",
                f.label(),
                sys.label(),
                trio(&c.detect()),
                trio(&c.takeover()),
                fmt_ms(pct(&g, 0.5)),
                fmt_ms(pct(&g, 0.99)),
                trio(&c.gap()),
                lost.iter().sum::<f64>() as u64,
                pct(&lost, 0.5),
                pct(&lost, 0.99),
                c.failed(),
                c.trials.len(),
                if c.setup_failed() > 0 {
                    format!(" ({} before injection)", c.setup_failed())
                } else {
                    String::new()
                },
                c.unstable()
            ));
        }
    }
    s.push_str("\n## keepalived ÷ tandem (p99)\n\n| failure | metric | keepalived VRRP ÷ tandem | keepalived BFD ÷ tandem |\n|---|---|---|---|\n");
    for f in &opts.failures {
        let Some(t) = res.get(&(System::Tandem, *f)) else {
            continue;
        };
        for (name, get) in [
            ("detect", Case::detect as fn(&Case) -> Vec<f64>),
            ("takeover", Case::takeover),
            ("client gap", Case::gap),
        ] {
            let tv = pct(&get(t), 0.99);
            let r = |sys: System| {
                res.get(&(sys, *f)).map_or("–".to_string(), |c| {
                    let k = pct(&get(c), 0.99);
                    if tv > 0.0 && k.is_finite() && tv.is_finite() {
                        if k / tv < 1.0 {
                            format!("{:.2}×", k / tv)
                        } else {
                            format!("{:.1}×", k / tv)
                        }
                    } else {
                        "–".into()
                    }
                })
            };
            s.push_str(&format!(
                "| {} | {name} | {} | {} |\n",
                f.key(),
                r(System::KeepalivedVrrp),
                r(System::KeepalivedBfd)
            ));
        }
    }
    s.push_str("\n## Targets (tandem)\n\n");
    for c in checks {
        s.push_str(&format!("- {c}\n"));
    }
    s.push_str(
        "\n## Notes\n\n\
- **Probes.** The client sends a UDP datagram to VIP:5060 every 1 ms (one socket, a sequence number in the payload). \
For tandem the probes go through the active director's XDP dispatcher to the two IVRs (DR) and the IVRs answer the client directly: that is the product path. \
keepalived has no dispatcher in the path: a UDP responder in each director namespace answers for whichever node holds the VIP.\n\
- **Detection.** tandem: the standby's first `state standby -> …` line (its own CLOCK_MONOTONIC stamp). keepalived: the standby's first \
`Receive advertisement timeout` (VRRP) or, with BFD, `(peer) Entering Down state`, stamped when this harness read the line from the pipe.\n\
- **Takeover.** tandem: `takeover done: VIPs owned, GARP sent`. keepalived: `Sending/queueing gratuitous ARPs` (the VIP has been added, the first GARP goes out). \
*GARP on the wire*: the first gratuitous ARP for the VIP from the new owner's MAC seen by a packet socket in the client's namespace, the same observer for every system.\n\
- **Client gap.** The longest interval between two consecutive probe replies from T0 − 50 ms until the probes are answered again (30 in a row); \
a trial that does not recover within 1.5 s counts as failed, with its gap censored at the window's end; lost probes: probes sent in that window without a reply.\n\
- **kill -9.** tandem: SIGKILL of `tandemd` by PID. keepalived: SIGKILL of all its processes by PID (VRRP child, BFD child, then the parent; run with `--dont-respawn`) — killing only the parent makes the children exit cleanly (priority-0 advert), which is not a crash. \
*What a killed daemon leaves behind:* tandem's XDP programs are attached through bpf links owned by the process, so they go with it; the VIP stays on `lo` but the service interface runs with `arp_ignore=1`, so nobody answers ARP for it on the dead node, and the dispatcher is gone: the node is silent on the service network. \
A killed keepalived leaves the VIP on `eth0` with the kernel answering ARP for it, so after the backup's takeover two nodes answer ARP for the VIP, and (with a service that survives the daemon, as here and as with IPVS) the dead-daemon node goes on serving whatever still reaches it — that is why keepalived's client gap under kill -9 is near zero while it has no master anymore.\n\
- **Crash.** The daemon killed and the director's `eth0` and `hb0` set down at once (rtnetlink, within ~100 µs). **Link down.** `eth0` of the active set down alone (tandem: a local fault; the active hands over through the heartbeat link; keepalived: its tracked interface goes down, the instance enters FAULT and b's advert timer runs out).\n\
- **keepalived settings.** 2.2.7 (Debian), VRRPv3, `advert_int 0.01` (its minimum), unicast adverts on the service network, priorities 250 (a) / 200 (b) (skew ≈ 2 ms), default scheduling (no `max_auto_priority`). BFD: `min_rx 10`, `min_tx 10`, `multiplier 3` on the heartbeat link, `track_bfd { peer weight 50 reverse }` (the priority goes up when the peer is lost). \
tandem: `interval_ms = 1`, `multiplier = 3`, heartbeats on the heartbeat link and the service network, witness on (the standby probes it every 1 ms and takes over on an answer to a probe sent after the peer missed two heartbeats, so the witness adds no round trip). Both systems run their loops at SCHED_FIFO 50 (tandem `realtime_priority = 50`; keepalived `vrrp_rt_priority 50`, `bfd_rt_priority 50`).\n\
- **What a takeover waits for.** tandem's takeover is done when the dataplane owns the VIP and the first GARP is out; the VIP's address on `lo` is added by a worker thread after it, because the netlink request waits for the kernel's RTNL mutex: in a crash, the failed node's links going down hold it, and an inline add measured 5–22 ms here (takeover p99 17.3 ms in the previous run). XDP answers ARP and dispatches the VIP's traffic without the address.\n\
- **Why tandem's client gap can end before its takeover.** When a director's `eth0` goes down (crash, link down), the bridge drops its MAC from the forwarding table and floods the client's frames for it to every port; tandem's standby runs the dispatcher too and forwards VIP traffic that reaches it before it owns the VIP, so the probes are answered through b before b has taken over (under link down the gap stays a few ms although the takeover fails or takes ~1 s). A switch that flushes its table on link down does the same. Under kill -9 the dead node's port stays up and nothing is flooded.\n\
- **Unstable setups.** Before the failure, both nodes must keep their roles from the confirmed steady state through the ≥ 55 ms of steady probes; an attempt in which either changed its role by itself (a spurious takeover) is discarded, counted here, and retried (3 attempts, then the trial fails).\n\
- Percentiles are nearest-rank over the trials that recovered (detect, takeover, GARP) or over all trials (gap, lost probes).\n",
    );
    s
}

/// Log-axis plot: per failure and system, the takeover time (min–max line,
/// p50–p99 box) and the client gap (same, lighter).
fn svg(res: &Results, opts: &Options) -> String {
    let rows: Vec<(Failure, System)> = opts
        .failures
        .iter()
        .flat_map(|f| opts.systems.iter().map(move |s| (*f, *s)))
        .collect();
    let (lmin, lmax) = (0.1f64.log10(), 3000f64.log10());
    let (x0, x1) = (330.0, 950.0);
    let row_h = 44.0;
    let top = 60.0;
    let h = top + row_h * rows.len() as f64 + 60.0;
    let x = |v: f64| x0 + (v.clamp(0.1, 3000.0).log10() - lmin) / (lmax - lmin) * (x1 - x0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"980\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
<text x=\"490\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Failover of the active director: takeover time and client-seen gap (ms, log scale)</text>\n\
<text x=\"490\" y=\"40\" text-anchor=\"middle\" fill=\"#555\">line: min–max; box: p50–p99; dark: takeover (T0 → VIP + GARP); light: longest gap in the 1 ms probe stream; {} trials each</text>\n",
        opts.trials
    );
    for v in [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0] {
        let xv = x(v);
        s.push_str(&format!(
            "<line x1=\"{xv:.1}\" y1=\"{top}\" x2=\"{xv:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n<text x=\"{xv:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{v}</text>\n",
            h - 50.0,
            h - 35.0
        ));
    }
    let colors = |sys: System| match sys {
        System::Tandem => ("#1b7837", "#a6dba0"),
        System::KeepalivedVrrp => ("#b2182b", "#f4a582"),
        System::KeepalivedBfd => ("#2166ac", "#92c5de"),
    };
    for (i, (f, sys)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64 + 8.0;
        let Some(c) = res.get(&(*sys, *f)) else {
            continue;
        };
        s.push_str(&format!(
            "<text x=\"10\" y=\"{:.1}\">{}</text>\n<text x=\"10\" y=\"{:.1}\" fill=\"#555\">{}</text>\n",
            y + 12.0,
            f.key(),
            y + 27.0,
            sys.key()
        ));
        for (k, (v, col)) in [(c.takeover(), colors(*sys).0), (c.gap(), colors(*sys).1)]
            .into_iter()
            .enumerate()
        {
            if v.is_empty() {
                continue;
            }
            let yy = y + 6.0 + k as f64 * 16.0;
            let (mn, p50, p99, mx) = (v[0], pct(&v, 0.5), pct(&v, 0.99), pct(&v, 1.0));
            s.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{col}\" stroke-width=\"2\"/>\n",
                x(mn),
                yy + 5.0,
                x(mx),
                yy + 5.0
            ));
            s.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{yy:.1}\" width=\"{:.1}\" height=\"10\" fill=\"{col}\" stroke=\"#333\" stroke-width=\"0.5\"/>\n",
                x(p50),
                (x(p99) - x(p50)).max(2.0)
            ));
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#333\">{}</text>\n",
                x(mx) + 4.0,
                yy + 9.0,
                if k == 0 {
                    format!("takeover p99 {}", fmt_ms(p99))
                } else {
                    format!("gap p99 {}", fmt_ms(p99))
                }
            ));
        }
        let failed = c.failed();
        if failed > 0 {
            s.push_str(&format!(
                "<text x=\"200\" y=\"{:.1}\" fill=\"#b2182b\">{failed}/{} failed</text>\n",
                y + 27.0,
                c.trials.len()
            ));
        }
    }
    s.push_str("</svg>\n");
    s
}

fn target_checks(res: &Results, opts: &Options) -> Vec<String> {
    let mut out = Vec::new();
    let mark = |ok: bool| if ok { "PASS" } else { "FAIL" };
    for f in &opts.failures {
        let Some(t) = res.get(&(System::Tandem, *f)) else {
            continue;
        };
        let failed = t.failed();
        let d99 = pct(&t.detect(), 0.99);
        let t99 = pct(&t.takeover(), 0.99);
        let g99 = pct(&t.gap(), 0.99);
        out.push(format!(
            "{}: detect p99 {} ms ≤ 5: {}; takeover p99 {} ms ≤ 10: {}; gap p99 {} ms ≤ 15: {}; failed trials {} (of {}, {} of them before the failure was injected): {}",
            f.key(),
            fmt_ms(d99),
            mark(d99 <= 5.0),
            fmt_ms(t99),
            mark(t99 <= 10.0),
            fmt_ms(g99),
            mark(g99 <= 15.0),
            failed,
            t.trials.len(),
            t.setup_failed(),
            mark(failed == 0)
        ));
        let fastest = [System::KeepalivedVrrp, System::KeepalivedBfd]
            .iter()
            .filter_map(|s| res.get(&(*s, *f)).map(|c| pct(&c.takeover(), 0.99)))
            .filter(|x| x.is_finite())
            .fold(f64::INFINITY, f64::min);
        if fastest.is_finite() {
            out.push(format!(
                "{}: keepalived's fastest takeover p99 {} ms ÷ tandem's {} ms = {:.2}× ≥ 3×: {}",
                f.key(),
                fmt_ms(fastest),
                fmt_ms(t99),
                fastest / t99,
                mark(t99.is_finite() && fastest / t99 >= 3.0)
            ));
        }
    }
    out
}

/// Runs the whole benchmark and writes `failover.{json,md,svg}` into `out`.
/// Returns the Markdown report.
pub fn run(out: &Path, opts: Options) -> Result<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("tandem-bench failover needs root (network namespaces, XDP)");
    }
    if !opts.tandemd.is_file() {
        bail!(
            "{}: no tandemd there; build it into the same target directory (`cargo build --release -p tandem-control`) or set TANDEMD",
            opts.tandemd.display()
        );
    }
    let needs_keepalived = opts.systems.iter().any(|s| *s != System::Tandem);
    if needs_keepalived && !opts.keepalived.is_file() {
        bail!(
            "{}: keepalived is not installed (`cargo xtask setup` installs it)",
            opts.keepalived.display()
        );
    }
    let loadavg = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let load_before = loadavg();
    let started = Instant::now();
    let mut bench = Bench::new(opts.clone())?;
    eprintln!(
        "failover bench: lab {}, {} trials × {} failures × {} systems, tandemd {}; logs of failed trials kept in {}",
        bench.lab.prefix(),
        opts.trials,
        opts.failures.len(),
        opts.systems.len(),
        opts.tandemd.display(),
        bench.dir.display()
    );
    let mut res: Results = BTreeMap::new();
    for sys in &opts.systems {
        for round in 0..opts.trials {
            let mut line = format!("{} round {:>3}/{}:", sys.key(), round + 1, opts.trials);
            for f in &opts.failures {
                {
                    let t_start = Instant::now();
                    let t = match bench.trial(*sys, *f, round) {
                        Ok(t) => t,
                        Err(e) => Trial {
                            reason: Some(format!("harness: {e:#}")),
                            ..Trial::default()
                        },
                    };
                    line.push_str(&format!(
                        " {}/{} {}",
                        f.key(),
                        match sys {
                            System::Tandem => "t",
                            System::KeepalivedVrrp => "kv",
                            System::KeepalivedBfd => "kb",
                        },
                        match (t.ok, t.takeover_ns) {
                            (true, Some(x)) => format!("{:.1}", ms(x)),
                            _ => format!("FAIL({})", t.reason.clone().unwrap_or_default()),
                        }
                    ));
                    if verbose() {
                        line.push_str(&format!(
                            " [{:.2}s{}]",
                            t_start.elapsed().as_secs_f64(),
                            if t.unstable.is_empty() {
                                String::new()
                            } else {
                                format!(" unstable: {}", t.unstable.join(" | "))
                            }
                        ));
                    } else if !t.unstable.is_empty() {
                        line.push_str(&format!("[{} unstable]", t.unstable.len()));
                    }
                    res.entry((*sys, *f)).or_default().trials.push(t);
                }
            }
            eprintln!("{line}");
        }
        bench.stop_tandem();
    }
    // Spans: ioctl round trip and span takeover with simulated cards
    // (`TANDEM_BENCH_SPANS` switchovers, default 50; 0 skips).
    let switchovers: usize = std::env::var("TANDEM_BENCH_SPANS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let spans = if opts.systems.contains(&System::Tandem) && switchovers > 0 {
        let tandemctl = opts.tandemd.with_file_name("tandemctl");
        eprintln!("failover bench: spans, {switchovers} switchovers with simulated cards");
        Some(super::spans::run(&opts.tandemd, &tandemctl, switchovers)?)
    } else {
        None
    };
    let elapsed = started.elapsed();
    let checks = target_checks(&res, &opts);
    let mut md = markdown(&res, &opts, elapsed, &checks);
    md.push_str(&format!(
        "- Machine: {} CPUs; load average (1/5/15 min) {} before the run, {} after. tandem's 1 ms × 3 deadline is sensitive to scheduling delays on a loaded machine.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before.split(' ').take(3).collect::<Vec<_>>().join(" / "),
        loadavg().split(' ').take(3).collect::<Vec<_>>().join(" / ")
    ));
    if let Some((_, section)) = &spans {
        md.push_str(section);
    }
    let mut j = serde_json::Map::new();
    j.insert("bench".into(), json!("failover"));
    j.insert("trials_per_case".into(), json!(opts.trials));
    j.insert("elapsed_s".into(), num(elapsed.as_secs_f64()));
    j.insert("loadavg_before".into(), json!(load_before));
    j.insert("loadavg_after".into(), json!(loadavg()));
    j.insert(
        "cpus".into(),
        json!(std::thread::available_parallelism().map_or(0, |n| n.get())),
    );
    j.insert(
        "setup".into(),
        json!({
            "tandem": {"heartbeat_interval_ms": 1, "multiplier": 3, "paths": ["hb0", "eth0"], "witness": true, "probes_via": "XDP dispatcher (DR) to 2 IVRs"},
            "keepalived_vrrp": {"version": "2.2.7", "vrrp_version": 3, "advert_int_ms": 10, "unicast": true, "priorities": [250, 200], "probes_via": "UDP responder in the director namespace"},
            "keepalived_bfd": {"version": "2.2.7", "vrrp_version": 3, "advert_int_ms": 10, "bfd_min_rx_ms": 10, "bfd_min_tx_ms": 10, "bfd_multiplier": 3, "bfd_path": "hb0", "track_bfd": "weight 50 reverse", "probes_via": "UDP responder in the director namespace"},
            "probe_interval_ms": 1,
            "recovery_limit_ms": RECOVERY_LIMIT.as_millis() as u64,
            "percentiles": "nearest rank",
        }),
    );
    for sys in &opts.systems {
        let mut o = serde_json::Map::new();
        for f in &opts.failures {
            if let Some(c) = res.get(&(*sys, *f)) {
                o.insert(f.key().into(), c.to_json(*sys, *f, bench.mac_a));
            }
        }
        j.insert(sys.key().into(), Value::Object(o));
    }
    j.insert("target_checks".into(), json!(checks));
    if let Some((v, _)) = spans {
        j.insert("spans".into(), v);
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("failover.json"),
        serde_json::to_string_pretty(&Value::Object(j))? + "\n",
    )?;
    std::fs::write(out.join("failover.md"), &md)?;
    std::fs::write(out.join("failover.svg"), svg(&res, &opts))?;
    if bench.keep_dir {
        eprintln!("logs of failed trials: {}", bench.dir.display());
    }
    drop(bench);
    Ok(md)
}
