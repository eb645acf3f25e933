//! `cargo xtask bench startup`: how long `tandemd` takes from exec to
//! ready (systemd's `READY=1`: XDP attached, the role decided), with the
//! default tables (1M-entry connection and NAT tables) and the default
//! heartbeat timing (100 ms × 3), in the pair lab: `starts` times as a lone
//! node (no peer: it decides alone after the pair's init hold) and `starts`
//! times joining an active peer (it hears the peer and becomes standby).
//! Each start's phase breakdown is read typed from `status`
//! ([`tandem_control::startup::StartupReport`]).
//!
//! In the same run, the baselines: keepalived (the failover bench's
//! configuration, VRRPv3 at 10 ms) from exec to its first state and, alone,
//! to MASTER; and the floor of any XDP start, the trivial XDP_TX program
//! loaded and attached through the same loader. Every wait is bounded;
//! every process is started here and stopped by its PID.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tandem_control::startup::{Phase, StartupReport};

use crate::Lab;
use crate::bench::failover::keepalived;
use crate::lab::tandemd::{PairOptions, config_text};
use crate::lab::wait::wait_until;
use crate::lab::{DIRECTOR_A, DIRECTOR_B};

/// How long one start may take before it counts as failed.
const START_BOUND: Duration = Duration::from_secs(20);

pub struct Options {
    /// Starts per case (`TANDEM_BENCH_STARTS`, default 20).
    pub starts: usize,
    pub tandemd: PathBuf,
    pub keepalived: PathBuf,
    /// `TANDEMD_BEFORE`: another tandemd build (an older one) started
    /// alone as many times, exec→READY only (it need not report phases).
    pub before: Option<PathBuf>,
}

impl Options {
    /// `TANDEM_BENCH_STARTS`, `TANDEMD` (default: next to this binary),
    /// `KEEPALIVED` (default /usr/sbin/keepalived).
    pub fn from_env() -> Result<Options> {
        let starts = match std::env::var("TANDEM_BENCH_STARTS") {
            Ok(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .with_context(|| format!("TANDEM_BENCH_STARTS={s}: want 1..=1000"))?,
            Err(_) => 20,
        };
        let tandemd = match std::env::var_os("TANDEMD") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()?
                .parent()
                .context("no directory")?
                .join("tandemd"),
        };
        let keepalived = std::env::var_os("KEEPALIVED")
            .map_or_else(|| PathBuf::from("/usr/sbin/keepalived"), PathBuf::from);
        let before = std::env::var_os("TANDEMD_BEFORE").map(PathBuf::from);
        for p in [&tandemd, &keepalived].into_iter().chain(before.as_ref()) {
            if !p.exists() {
                bail!("{} not found", p.display());
            }
        }
        Ok(Options {
            starts,
            tandemd,
            keepalived,
            before,
        })
    }
}

/// The file tandemd runs with here: the lab's pair file with tandemd's
/// defaults for what this bench measures.
fn pair_options() -> PairOptions {
    PairOptions {
        heartbeat_interval_ms: 100,
        multiplier: 3,
        flow_entries: tandem_dataplane::common::DEFAULT_FLOW_ENTRIES,
        ..PairOptions::default()
    }
}

/// One tandemd this bench started.
struct Tandemd {
    child: Child,
    notify: UnixDatagram,
    socket: PathBuf,
    out: PathBuf,
}

impl Tandemd {
    fn start(
        lab: &Lab,
        dir: &Path,
        program: &Path,
        me: &str,
        n: usize,
    ) -> Result<(Tandemd, Instant)> {
        let socket = dir.join(format!("tandem-{me}.sock"));
        let config = dir.join(format!("tandem-{me}.toml"));
        crate::write_private(
            &config,
            config_text(lab, me, &pair_options(), &socket, None),
        )?;
        let notify_path = dir.join(format!("notify-{me}"));
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path)?;
        notify.set_read_timeout(Some(Duration::from_millis(20)))?;
        let out = dir.join(format!("tandemd-{me}-{n}.log"));
        let log = std::fs::File::create(&out)?;
        let t0 = Instant::now();
        let child = Command::new("ip")
            .args(["netns", "exec", lab.ns(me)?])
            .arg(program)
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting tandemd")?;
        Ok((
            Tandemd {
                child,
                notify,
                socket,
                out,
            },
            t0,
        ))
    }

    /// Waits for `READY=1` (bounded); when it came.
    fn wait_ready(&mut self) -> Result<Instant> {
        let end = Instant::now() + START_BOUND;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(n) = self.notify.recv(&mut buf)
                && buf[..n].split(|b| *b == b'\n').any(|l| l == b"READY=1")
            {
                return Ok(Instant::now());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                bail!("tandemd exited before READY ({st})");
            }
        }
        bail!("no READY=1 within {START_BOUND:?}")
    }

    /// The start-up report from `status` (bounded).
    fn report(&self) -> Result<StartupReport> {
        let mut got = None;
        wait_until(Duration::from_secs(3), Duration::from_millis(10), || {
            got = crate::bench::failover::admin_status(&self.socket)
                .and_then(|v| v.get("startup").cloned())
                .filter(|s| !s.is_null())
                .and_then(|s| serde_json::from_value::<StartupReport>(s).ok());
            got.is_some()
        });
        got.context("no startup report in status")
    }

    /// SIGTERM, 5 s to exit, then SIGKILL; reaped.
    fn stop(mut self) {
        let pid = self.child.id() as libc::pid_t;
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our own child's PID, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let end = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One start's outcome.
struct Start {
    ready_ms: f64,
    report: StartupReport,
}

/// `starts` starts of director a; with `peer`, b is running (active).
fn tandem_starts(
    lab: &Lab,
    dir: &Path,
    opts: &Options,
    want: &str,
    failures: &mut Vec<String>,
) -> Vec<Start> {
    let mut out = Vec::new();
    for n in 0..opts.starts {
        let (mut d, t0) = match Tandemd::start(lab, dir, &opts.tandemd, DIRECTOR_A, n) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{want} start {n}: {e:#}"));
                continue;
            }
        };
        let outcome = d.wait_ready().and_then(|at| {
            let r = d.report()?;
            if let Err(bad) = r.check() {
                bail!("inconsistent report: {bad:?}");
            }
            if r.role != want {
                bail!("decided {}, expected {want}", r.role);
            }
            Ok(Start {
                ready_ms: at.duration_since(t0).as_secs_f64() * 1e3,
                report: r,
            })
        });
        let log = d.out.clone();
        d.stop();
        match outcome {
            Ok(s) => {
                eprintln!("startup bench: {want} {n}: READY in {:.1} ms", s.ready_ms);
                let _ = std::fs::remove_file(&log);
                out.push(s);
            }
            Err(e) => {
                eprintln!(
                    "startup bench: {want} {n}: failed: {e:#} (log kept: {})",
                    log.display()
                );
                failures.push(format!("{want} start {n}: {e:#}"));
            }
        }
    }
    out
}

/// keepalived from exec to its first state and, alone, to MASTER (ms).
fn keepalived_start(lab: &Lab, dir: &Path, opts: &Options, n: usize) -> Result<(f64, f64)> {
    let conf = dir.join("keepalived-a.conf");
    std::fs::write(&conf, keepalived::config_text(DIRECTOR_A, false))?;
    let pid = dir.join(format!("keepalived-{n}"));
    let (r, w) = crate::bench::failover::pipe()?;
    let t0 = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", lab.ns(DIRECTOR_A)?])
        .arg(&opts.keepalived)
        .args(["-n", "-l", "-D", "-G", "-R", "-P", "-f"])
        .arg(&conf)
        .arg("-p")
        .arg(pid.with_extension("pid"))
        .arg("-r")
        .arg(pid.with_extension("vrrp.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(w.try_clone()?))
        .stderr(Stdio::from(w))
        .spawn()
        .context("starting keepalived")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(std::fs::File::from(r))
            .lines()
            .take(100_000)
        {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let end = t0 + Duration::from_secs(10);
    let (mut first, mut master) = (None, None);
    while master.is_none() && Instant::now() < end {
        if let Ok((at, line)) = rx.recv_timeout(Duration::from_millis(20))
            && line.contains("Entering ")
            && line.contains(" STATE")
        {
            let ms = at.duration_since(t0).as_secs_f64() * 1e3;
            first.get_or_insert(ms);
            if line.contains("Entering MASTER STATE") {
                master = Some(ms);
            }
        }
    }
    // Its VRRP child, then the parent: by PID, checked against our config path.
    let tag = conf.display().to_string();
    let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
        .unwrap_or_default();
    // SAFETY: kill(2) on our own child's PID, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let stop_end = Instant::now() + Duration::from_secs(3);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < stop_end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    for k in kids
        .split_whitespace()
        .filter_map(|k| k.parse::<i32>().ok())
    {
        if crate::bench::failover::pid_is(k, &tag) {
            // SAFETY: kill(2) on a PID this bench started (checked above).
            unsafe { libc::kill(k, libc::SIGKILL) };
        }
    }
    match (first, master) {
        (Some(f), Some(m)) => Ok((f, m)),
        _ => bail!("keepalived {n}: no MASTER within 10 s (first state: {first:?})"),
    }
}

/// A process's user + system CPU time (ms), from /proc.
fn process_cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (hz > 0.0).then(|| ticks * 1000.0 / hz)
}

/// Nearest-rank percentile of `v` (ms), 0 when empty.
fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

fn summary(v: &[f64]) -> Value {
    json!({ "n": v.len(), "p50": pct(v, 0.5), "p99": pct(v, 0.99), "max": pct(v, 1.0) })
}

/// Each phase's p50 / p99 / max (ms) over `starts`, and the verifier's CPU.
fn phases(starts: &[Start]) -> Value {
    let mut m = serde_json::Map::new();
    for p in Phase::ALL {
        let v: Vec<f64> = starts
            .iter()
            .map(|s| s.report.phase_us(p).unwrap_or(0) as f64 / 1e3)
            .collect();
        m.insert(p.name().into(), summary(&v));
    }
    let cpu: Vec<f64> = starts
        .iter()
        .map(|s| s.report.verify_cpu_us() as f64 / 1e3)
        .collect();
    m.insert("verifier_cpu".into(), summary(&cpu));
    let work: Vec<f64> = starts
        .iter()
        .map(|s| s.report.work_us() as f64 / 1e3)
        .collect();
    m.insert("work".into(), summary(&work));
    let mut progs = serde_json::Map::new();
    if let Some(first) = starts.first() {
        for p in &first.report.programs {
            let v: Vec<f64> = starts
                .iter()
                .filter_map(|s| s.report.programs.iter().find(|q| q.name == p.name))
                .map(|q| q.cpu_us as f64 / 1e3)
                .collect();
            progs.insert(p.name.clone(), summary(&v));
        }
    }
    m.insert("program_cpu".into(), Value::Object(progs));
    Value::Object(m)
}

pub fn run(out: &Path, opts: Options) -> Result<String> {
    crate::lab::privileged::ensure_root("tandem-bench startup", "network namespaces, XDP")?;
    let started = Instant::now();
    let lab = Lab::pair(2).context("building the pair lab")?;
    let dir = std::env::temp_dir().join(format!("tandem-bench-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut failures = Vec::new();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    eprintln!("startup bench: {} lone starts", opts.starts);
    let lone = tandem_starts(&lab, &dir, &opts, "active", &mut failures);

    eprintln!(
        "startup bench: {} starts beside an active peer",
        opts.starts
    );
    // The active peer's CPU use while a starts beside it (ms per s).
    let mut peer_cpu = None;
    let joined = match Tandemd::start(&lab, &dir, &opts.tandemd, DIRECTOR_B, 0) {
        Ok((mut b, _)) => {
            let up = b.wait_ready().and_then(|_| b.report());
            let v = match up {
                Ok(r) if r.role == "active" => {
                    let (cpu0, t0) = (process_cpu_ms(b.child.id()), Instant::now());
                    let v = tandem_starts(&lab, &dir, &opts, "standby", &mut failures);
                    let cpu = process_cpu_ms(b.child.id())
                        .zip(cpu0)
                        .map(|(c1, c0)| c1 - c0);
                    peer_cpu = cpu.map(|ms| ms / t0.elapsed().as_secs_f64());
                    v
                }
                Ok(r) => {
                    failures.push(format!("the peer b decided {}, not active", r.role));
                    Vec::new()
                }
                Err(e) => {
                    failures.push(format!("the peer b: {e:#}"));
                    Vec::new()
                }
            };
            b.stop();
            v
        }
        Err(e) => {
            failures.push(format!("the peer b: {e:#}"));
            Vec::new()
        }
    };

    let mut before_ms = Vec::new();
    if let Some(before) = &opts.before {
        eprintln!(
            "startup bench: {} lone starts of {}",
            opts.starts,
            before.display()
        );
        for n in 0..opts.starts {
            let r = Tandemd::start(&lab, &dir, before, DIRECTOR_A, n).and_then(|(mut d, t0)| {
                let at = d.wait_ready();
                d.stop();
                Ok(at?.duration_since(t0).as_secs_f64() * 1e3)
            });
            match r {
                Ok(ms) => before_ms.push(ms),
                Err(e) => failures.push(format!("before start {n}: {e:#}")),
            }
        }
    }

    eprintln!("startup bench: keepalived and the trivial XDP floor");
    let (mut ka_first, mut ka_master, mut floor_load, mut floor_total) =
        (vec![], vec![], vec![], vec![]);
    for n in 0..opts.starts {
        match keepalived_start(&lab, &dir, &opts, n) {
            Ok((f, m)) => {
                ka_first.push(f);
                ka_master.push(m);
            }
            Err(e) => failures.push(format!("keepalived: {e:#}")),
        }
        match crate::lab::netns::try_in_netns(lab.ns(DIRECTOR_A)?, || {
            tandem_dataplane::trivial_xdp_start("eth0")
        }) {
            Ok(Ok((l, a))) => {
                floor_load.push(l.as_secs_f64() * 1e3);
                floor_total.push((l + a).as_secs_f64() * 1e3);
            }
            Ok(Err(e)) => failures.push(format!("trivial XDP: {e}")),
            Err(e) => failures.push(format!("trivial XDP: {e}")),
        }
    }
    drop(lab);
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    }

    let ready = |v: &[Start]| v.iter().map(|s| s.ready_ms).collect::<Vec<f64>>();
    let (lone_ms, join_ms) = (ready(&lone), ready(&joined));
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let result = json!({
        "bench": "startup",
        "method": "exec of `ip netns exec … tandemd` to READY=1 on a NOTIFY_SOCKET this bench binds; phases from status.startup",
        "machine": crate::bench::reload::machine(),
        "loadavg_before": load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "loadavg_after": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "starts": opts.starts,
        "config": { "flow_entries": tandem_dataplane::common::DEFAULT_FLOW_ENTRIES, "heartbeat_interval_ms": 100, "multiplier": 3, "init_hold_ms": 600, "services": "1 UDP rr, sip_persist, 2 IVRs with heartbeats", "witness": true },
        "lone": { "ready_ms": summary(&lone_ms), "phases_ms": phases(&lone) },
        "joining": { "ready_ms": summary(&join_ms), "phases_ms": phases(&joined), "peer_cpu_ms_per_s": peer_cpu },
        "keepalived": { "first_state_ms": summary(&ka_first), "master_alone_ms": summary(&ka_master) },
        "before": opts.before.as_ref().map(|b| json!({ "tandemd": b.display().to_string(), "ready_ms": summary(&before_ms) })),
        "trivial_xdp": { "load_ms": summary(&floor_load), "load_attach_ms": summary(&floor_total) },
        "ratios_p50": {
            "lone_vs_keepalived_master": ratio(pct(&lone_ms, 0.5), pct(&ka_master, 0.5)),
            "joining_vs_keepalived_first_state": ratio(pct(&join_ms, 0.5), pct(&ka_first, 0.5)),
            "lone_vs_trivial_xdp": ratio(pct(&lone_ms, 0.5), pct(&floor_total, 0.5)),
            "lone_vs_before": ratio(pct(&lone_ms, 0.5), pct(&before_ms, 0.5)),
        },
        "failed": failures.len(),
        "failures": failures,
        "seconds": started.elapsed().as_secs(),
    });
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("startup.json"),
        serde_json::to_string_pretty(&result)? + "\n",
    )?;
    let md = super::startup_report::markdown(&result);
    std::fs::write(out.join("startup.md"), &md)?;
    Ok(md)
}
