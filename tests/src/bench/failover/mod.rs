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
//! down at once), `link_down` (`eth0` down alone) and `hang` (SIGSTOP of
//! the daemon's processes by PID for 2 s, then SIGCONT; the trial also
//! asks, while the node is stopped, who answers ARP for the VIP, and
//! fails unless the old active yields after SIGCONT without a second
//! takeover). Links are set over rtnetlink from a socket opened
//! beforehand, so that the failure lands within microseconds of T0.
//!
//! `--noisy` runs every trial beside a competing load that the bench
//! starts and stops itself ([`crate::lab::noise`]: stress-ng CPU and RT load and a
//! second tandem pair). `--steal PCT` (1..=60) runs the whole bench under
//! simulated hypervisor steal time ([`crate::lab::steal`]: one spinner per
//! CPU, pinned, at SCHED_FIFO 99 above the daemons' 50, busy PCT % of the
//! time in random bursts of ~2 ms, at most 10 ms — the freezes a
//! descheduled vCPU sees; CFS quota would not model it, as it does not
//! throttle SCHED_FIFO tasks); the report's title names the mode and its
//! header gives the share and bursts the generator achieved. Both may be
//! combined. Every setup also reports the time the pair was
//! expected steady and the role changes seen in it (role changes per hour
//! of steady state, per system).
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
//!
//! Layout: [`run`] and the measurement's parameters here; the harness
//! (`harness`: lab, responders, link setters), one trial (`trial`), the
//! systems (`tandem`, `keepalived`) over one daemon wrapper (`daemon`),
//! the observers on the client (`probes`, `arp`), the link setter
//! (`netlink`), raw system calls (`os`) and the statistics and reports
//! (`report`).

mod arp;
mod daemon;
pub(crate) mod keepalived;
mod harness;
mod netlink;
mod os;
mod probes;
mod report;
mod tandem;
mod trial;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::lab::noise::Noise;
use crate::lab::steal;

/// stress-ng's own bound (`--timeout`): no load outlives a bench this long.
const NOISE_BOUND: Duration = Duration::from_secs(4 * 3600);
use harness::{Bench, verbose};
use report::{Results, markdown, ms, num, svg, target_checks};
pub use trial::Trial;
pub(crate) use daemon::pid_is;
pub(crate) use os::pipe;
pub(crate) use tandem::admin_status;

/// Probe period.
const PROBE_EVERY: Duration = Duration::from_millis(1);
/// After T0, a trial that has not recovered by then has failed.
const RECOVERY_LIMIT: Duration = Duration::from_millis(1500);
/// `hang`: how long the active's daemon stays stopped (SIGSTOP → SIGCONT).
const HANG_FOR: Duration = Duration::from_secs(2);
/// `hang`: how long after SIGCONT the pair is watched for a second takeover.
const COMEBACK_WATCH: Duration = Duration::from_secs(1);
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
/// `--steal`: the generator's hard time limit (it also stops with the run).
const STEAL_LIMIT: Duration = Duration::from_secs(4 * 3600);
/// How often the harness polls its own state (daemon lines, probe replies,
/// admin answers) while it waits.
const HARNESS_POLL: Duration = Duration::from_millis(2);

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
    Hang,
}

impl Failure {
    pub const ALL: [Failure; 4] = [
        Failure::Kill9,
        Failure::Crash,
        Failure::LinkDown,
        Failure::Hang,
    ];
    pub fn key(self) -> &'static str {
        match self {
            Failure::Kill9 => "kill9",
            Failure::Crash => "crash",
            Failure::LinkDown => "link_down",
            Failure::Hang => "hang",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Failure::Kill9 => "kill -9 of the daemon",
            Failure::Crash => "director crash (daemon + eth0 + hb0)",
            Failure::LinkDown => "service link (eth0) down",
            Failure::Hang => "hung daemon (SIGSTOP 2 s, then SIGCONT)",
        }
    }
}

/// What to run: trial count, systems, failures and the load beside them.
#[derive(Clone, Debug)]
pub struct Options {
    pub trials: usize,
    pub systems: Vec<System>,
    pub failures: Vec<Failure>,
    pub tandemd: PathBuf,
    pub keepalived: PathBuf,
    /// `--noisy`: the competing load of [`Noise`] for the whole run.
    pub noisy: bool,
    /// `--steal PCT`: simulated steal time of PCT % (1..=60) on every CPU
    /// for the whole run ([`crate::lab::steal`]).
    pub steal: Option<u8>,
    /// Extra time each setup is held steady before the failure
    /// (`TANDEM_BENCH_DWELL_MS`, default 0): more steady state observed.
    pub dwell: Duration,
}

impl Options {
    /// From the environment: `TANDEM_BENCH_TRIALS` (default 50),
    /// `TANDEM_BENCH_SYSTEMS` (comma list of system keys, default all),
    /// `TANDEM_BENCH_FAILURES` (comma list of failure keys: kill9, crash,
    /// link_down, hang; default all), `TANDEM_BENCH_DWELL_MS` (default 0),
    /// `TANDEM_BENCH_NOISY=1` (as `--noisy`), `TANDEM_BENCH_STEAL=PCT` (as
    /// `--steal PCT`, 1..=60; `TANDEM_BENCH_STEAL_SEED` fixes its seed),
    /// `TANDEMD` (default: `tandemd`
    /// next to this executable).
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
        let dwell_ms: u64 = match std::env::var("TANDEM_BENCH_DWELL_MS") {
            Ok(v) => v
                .parse()
                .with_context(|| format!("TANDEM_BENCH_DWELL_MS={v}: not a number"))?,
            Err(_) => 0,
        };
        let steal = match std::env::var("TANDEM_BENCH_STEAL") {
            Ok(v) => {
                let pct: u8 = v.trim().parse().with_context(|| {
                    format!("TANDEM_BENCH_STEAL={v}: not a percentage (1..={})", steal::MAX_PCT)
                })?;
                steal::check_pct(pct).with_context(|| format!("TANDEM_BENCH_STEAL={v}"))?;
                Some(pct)
            }
            Err(_) => None,
        };
        Ok(Options {
            trials,
            systems,
            failures,
            tandemd,
            keepalived: PathBuf::from("/usr/sbin/keepalived"),
            noisy: std::env::var("TANDEM_BENCH_NOISY").is_ok_and(|v| v == "1"),
            steal,
            dwell: Duration::from_millis(dwell_ms),
        })
    }
}

/// Runs the whole benchmark and writes `failover.{json,md,svg}` into `out`.
/// Returns the Markdown report.
pub fn run(out: &Path, opts: Options) -> Result<String> {
    crate::lab::privileged::ensure_root("tandem-bench failover", "network namespaces, XDP")?;
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
    // The noisy neighbour runs from here to the end of this function (it
    // stops when dropped, on every path out).
    let noise = if opts.noisy {
        let tandemctl = opts.tandemd.with_file_name("tandemctl");
        let bins = crate::lab::tandemd::Binaries {
            tandemd: opts.tandemd.clone(),
            tandemctl,
        };
        eprintln!("failover bench: --noisy: starting stress-ng (CPU, RT at priority {}) and a second tandem pair", tandem::REALTIME_PRIORITY);
        Some(Noise::start(&bins, tandem::REALTIME_PRIORITY, NOISE_BOUND)?)
    } else {
        None
    };
    // The steal generator, likewise, until the end of this function.
    let steal = match opts.steal {
        Some(pct) => {
            let seed = std::env::var("TANDEM_BENCH_STEAL_SEED")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(1, |d| d.as_nanos() as u64)
                });
            eprintln!(
                "failover bench: --steal {pct}: one spinner per CPU at SCHED_FIFO {}, busy {pct} % in random bursts (seed {seed})",
                steal::PRIORITY
            );
            Some(steal::Steal::start(pct, seed, STEAL_LIMIT)?)
        }
        None => None,
    };
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
    // The steal generator's figures go in the header, under the title.
    let steal_report = steal.as_ref().map(steal::Steal::report);
    let header = steal_report
        .as_ref()
        .map(steal::StealReport::markdown_line)
        .unwrap_or_default();
    let mut md = markdown(&res, &opts, elapsed, &checks, &header);
    let load = match &noise {
        Some(n) => {
            let (v, line) = n.describe();
            md.push_str(&line);
            v
        }
        None if opts.steal.is_some() => {
            md.push_str("- **Load**: none besides the steal generator (see its line under the title; `--noisy` adds the noisy neighbour).\n");
            json!("steal only")
        }
        None => {
            md.push_str("- **Load**: quiet (no competing load started by the bench; run with `--noisy` for the noisy neighbour, `--steal PCT` for steal time).\n");
            json!("quiet")
        }
    };
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
    j.insert("mode".into(), json!(mode(&opts)));
    j.insert(
        "steal".into(),
        steal_report
            .as_ref()
            .map_or(Value::Null, steal::StealReport::to_json),
    );
    j.insert("load".into(), load);
    j.insert("dwell_ms".into(), json!(opts.dwell.as_millis() as u64));
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
            "hang_ms": HANG_FOR.as_millis() as u64,
            "hang_comeback_watch_ms": COMEBACK_WATCH.as_millis() as u64,
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
    drop(noise);
    drop(steal);
    Ok(md)
}

/// The load the run was measured under, for the title and the JSON:
/// `quiet`, `noisy`, `steal 23 %` or `noisy + steal 23 %`.
pub(crate) fn mode(opts: &Options) -> String {
    match (opts.noisy, opts.steal) {
        (false, None) => "quiet".into(),
        (true, None) => "noisy".into(),
        (false, Some(p)) => format!("steal {p} %"),
        (true, Some(p)) => format!("noisy + steal {p} %"),
    }
}

