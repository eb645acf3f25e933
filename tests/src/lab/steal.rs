//! Simulated hypervisor steal time: one thread per online CPU, pinned to
//! it and run at `SCHED_FIFO` priority 99 (above the daemons' 50), that
//! alternates busy bursts (spinning) and sleeps, so that everything else
//! on that CPU — a daemon's loop, its timers' wake-ups, the harness — is
//! frozen for a few ms at random moments, as when a hypervisor
//! deschedules the vCPU. It owns those threads and nothing else: it
//! starts no process, touches no network and measures only itself (the
//! busy share and the burst lengths it achieved, [`StealReport`]).
//!
//! Why not CFS quota (`cpu.max`): it throttles only CFS tasks; the daemons
//! run at `SCHED_FIFO` and would never be throttled. A FIFO 99 spinner
//! preempts them at once and keeps them off the CPU until it sleeps.
//! What it does not model: interrupts and the softirqs run at their exit
//! still run during a burst (on a stolen vCPU nothing runs), and the
//! clock keeps going in both cases. The bursts it reports are the wall
//! time of each spin, so an interrupt, or the host's own steal on a VM,
//! landing in a burst lengthens it past [`MAX_BURST`]; the report gives
//! the host's steal (/proc/stat) beside them.
//!
//! The schedule is a pure function of a seed ([`Schedule`]): bursts are
//! exponential with mean [`MEAN_BURST`], clamped to
//! [`MIN_BURST`]..=[`MAX_BURST`]; sleeps are exponential too, independent
//! of the bursts (freezes arrive at random, not in a rhythm), with the
//! mean that makes the long-run busy share the requested percentage.
//!
//! Bounds: the share is refused above [`MAX_PCT`] % (with two CPUs at
//! 60 % the machine still has 40 % of each CPU for everything else; the
//! kernel's RT throttling, `sched_rt_runtime_us` 950000 of 1000000 µs by
//! default, would only cap RT tasks at 95 % and is not relied upon); the
//! threads stop when [`Steal`] is dropped (each within one cycle, at most
//! [`MAX_BURST`] + the longest sleep, which is capped too), and by
//! themselves after the hard time limit given to [`Steal::start`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The largest busy share accepted, in percent.
pub const MAX_PCT: u8 = 60;
/// Mean of the (unclamped) exponential burst length. Steal time on a
/// loaded host comes in slices of the host scheduler's granularity, a
/// few ms: 2 ms is of the order of tandem's 1 ms × 3 deadline, which is
/// what the mode is there to test.
pub const MEAN_BURST: Duration = Duration::from_millis(2);
/// Shortest burst: below ~50 µs a freeze is indistinguishable from the
/// scheduling noise already there.
pub const MIN_BURST: Duration = Duration::from_micros(50);
/// Longest burst. 10 ms is 10 heartbeat intervals, far beyond the 3 ms
/// deadline, so nothing longer tests anything new, while a longer freeze
/// is a different fault (a hung node, the bench's `hang` failure); it also
/// bounds how long the machine (the harness, a shell) is held off a CPU.
pub const MAX_BURST: Duration = Duration::from_millis(10);
/// Longest sleep, so that a stop request is seen within a bounded time
/// even at 1 % (where the mean sleep is ~200 ms).
pub const MAX_SLEEP: Duration = Duration::from_millis(1000);
/// The threads' scheduling priority (SCHED_FIFO).
pub const PRIORITY: i32 = 99;
/// Burst histogram resolution and range (longer bursts go in the last bin).
const BIN: Duration = Duration::from_micros(10);
const BINS: usize = 2_000;

/// SplitMix64: a small, seeded source of uniform numbers (no dependency;
/// each CPU's thread gets its own seed).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1]: never 0, so that `-ln(u)` is finite.
    pub fn next_open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
    /// Exponential with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * self.next_open01().ln()
    }
}

/// One cycle of the schedule: spin for `burst`, then sleep for `sleep`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    pub burst: Duration,
    pub sleep: Duration,
}

/// The burst/sleep schedule for a busy share of `pct` %: a pure function
/// of the seed (an iterator of [`Slice`]s).
#[derive(Clone, Debug)]
pub struct Schedule {
    rng: SplitMix64,
    /// Seconds.
    mean_sleep: f64,
}

impl Schedule {
    /// `pct` in 1..=[`MAX_PCT`].
    pub fn new(pct: u8, seed: u64) -> Result<Schedule> {
        check_pct(pct)?;
        let p = f64::from(pct) / 100.0;
        // busy / (busy + sleep) = p  ⇔  E[sleep] = E[burst] (1 − p) / p.
        // The sleep cap cuts a little off the mean at 1–2 % only (the
        // mean sleep is ~200 ms at 1 %, capped at 1 s: e^-5 of the mass).
        let mean_sleep = mean_burst_secs() * (1.0 - p) / p;
        Ok(Schedule {
            rng: SplitMix64::new(seed),
            mean_sleep,
        })
    }

    /// The busy share this schedule aims at, from its parameters.
    pub fn planned_share(&self) -> f64 {
        let b = mean_burst_secs();
        b / (b + self.mean_sleep)
    }
}

impl Iterator for Schedule {
    type Item = Slice;
    fn next(&mut self) -> Option<Slice> {
        let b = self
            .rng
            .exp(MEAN_BURST.as_secs_f64())
            .clamp(MIN_BURST.as_secs_f64(), MAX_BURST.as_secs_f64());
        let s = self.rng.exp(self.mean_sleep).min(MAX_SLEEP.as_secs_f64());
        Some(Slice {
            burst: Duration::from_secs_f64(b),
            sleep: Duration::from_secs_f64(s),
        })
    }
}

/// E[clamp(X, a, c)] for X exponential with mean m:
/// a + m (e^(−a/m) − e^(−c/m)).
fn mean_burst_secs() -> f64 {
    let (a, c, m) = (
        MIN_BURST.as_secs_f64(),
        MAX_BURST.as_secs_f64(),
        MEAN_BURST.as_secs_f64(),
    );
    a + m * ((-a / m).exp() - (-c / m).exp())
}

/// Refuses a share outside 1..=[`MAX_PCT`], naming the value.
pub fn check_pct(pct: u8) -> Result<()> {
    if !(1..=MAX_PCT).contains(&pct) {
        bail!("steal {pct} %: must be 1..={MAX_PCT} (more would starve the machine)");
    }
    Ok(())
}

/// What one CPU's thread has done so far.
#[derive(Clone, Debug)]
struct CpuStats {
    cpu: usize,
    /// Wall time spent in bursts (CLOCK_MONOTONIC around each spin).
    busy: Duration,
    /// The thread's own CPU time (CLOCK_THREAD_CPUTIME_ID): lower than
    /// `busy` if the kernel's RT throttling or anything else took the CPU
    /// during a burst.
    cpu_time: Duration,
    /// Since the thread reached its priority and CPU.
    wall: Duration,
    bursts: u64,
    /// Burst lengths in [`BIN`] steps.
    hist: Vec<u64>,
    max_burst: Duration,
    /// Read back after setting it: `SCHED_FIFO 99 on CPU n`.
    sched: String,
}

impl CpuStats {
    fn new(cpu: usize) -> CpuStats {
        CpuStats {
            cpu,
            busy: Duration::ZERO,
            cpu_time: Duration::ZERO,
            wall: Duration::ZERO,
            bursts: 0,
            hist: vec![0; BINS],
            max_burst: Duration::ZERO,
            sched: String::new(),
        }
    }
    fn record(&mut self, burst: Duration) {
        self.busy += burst;
        self.bursts += 1;
        let i = ((burst.as_nanos() / BIN.as_nanos()) as usize).min(BINS - 1);
        self.hist[i] += 1;
        self.max_burst = self.max_burst.max(burst);
    }
}

/// Nearest-rank percentile of a [`BIN`] histogram, as the bin's upper edge.
fn hist_pct(hist: &[u64], q: f64) -> Duration {
    let n: u64 = hist.iter().sum();
    if n == 0 {
        return Duration::ZERO;
    }
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    let mut seen = 0;
    for (i, c) in hist.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return BIN * (i as u32 + 1);
        }
    }
    BIN * BINS as u32
}

/// What the generator achieved, per CPU and over all of them.
#[derive(Clone, Debug)]
pub struct StealReport {
    pub pct: u8,
    pub seed: u64,
    /// Per CPU: (cpu, busy share by wall time, busy share by the thread's
    /// CPU time, bursts, scheduling read back).
    pub cpus: Vec<(usize, f64, f64, u64, String)>,
    pub burst_p50: Duration,
    pub burst_p99: Duration,
    pub burst_max: Duration,
    pub running: Duration,
    /// `sched_rt_runtime_us / sched_rt_period_us` as read at the start.
    pub rt_throttle: String,
    /// Per CPU: the real steal time the kernel accounted while the
    /// generator ran (/proc/stat, share of that CPU's time): on a VM, the
    /// host's own steal comes on top of the simulated one.
    pub host_steal: Vec<(usize, f64)>,
}

impl StealReport {
    pub fn to_json(&self) -> Value {
        json!({
            "requested_pct": self.pct,
            "seed": self.seed,
            "threads": format!("one per CPU, pinned, SCHED_FIFO {PRIORITY}"),
            "burst_model_ms": {"mean_unclamped": MEAN_BURST.as_secs_f64() * 1e3, "min": MIN_BURST.as_secs_f64() * 1e3, "max": MAX_BURST.as_secs_f64() * 1e3, "distribution": "exponential, clamped; sleeps exponential, independent"},
            "achieved": self.cpus.iter().map(|(cpu, share, cpu_share, n, sched)| json!({
                "cpu": cpu,
                "busy_pct": round2(share * 100.0),
                "cpu_time_pct": round2(cpu_share * 100.0),
                "bursts": n,
                "sched": sched,
            })).collect::<Vec<_>>(),
            "burst_p50_ms": round2(self.burst_p50.as_secs_f64() * 1e3),
            "burst_p99_ms": round2(self.burst_p99.as_secs_f64() * 1e3),
            "burst_max_ms": round2(self.burst_max.as_secs_f64() * 1e3),
            "running_s": round2(self.running.as_secs_f64()),
            "rt_throttle": self.rt_throttle,
            "host_steal_pct": self.host_steal.iter().map(|(cpu, x)| json!({"cpu": cpu, "pct": round2(x * 100.0)})).collect::<Vec<_>>(),
        })
    }

    /// One Markdown line.
    pub fn markdown_line(&self) -> String {
        let per_cpu: Vec<String> = self
            .cpus
            .iter()
            .map(|(cpu, share, cpu_share, n, _)| {
                format!(
                    "CPU {cpu} {:.1} % ({:.1} % by its CPU time, {n} bursts)",
                    share * 100.0,
                    cpu_share * 100.0
                )
            })
            .collect();
        let sched: Vec<&str> = self.cpus.iter().map(|c| c.4.as_str()).collect();
        let host: Vec<String> = self
            .host_steal
            .iter()
            .map(|(cpu, x)| format!("CPU {cpu} {:.1} %", x * 100.0))
            .collect();
        format!(
            "- **Steal (--steal {})**: one spinner per CPU, pinned, SCHED_FIFO {PRIORITY} (above the daemons; read back: {}), bursts exponential (mean {} ms, clamped to {}–{} ms), sleeps exponential for a {} % busy share, seed {}; achieved over {:.0} s: {}; bursts as measured (wall time of each spin, interrupts and the host's own steal included) p50 / p99 / max {:.2} / {:.2} / {:.2} ms; the host's real steal meanwhile (/proc/stat): {}; RT throttling {}.\n",
            self.pct,
            sched.join(", "),
            MEAN_BURST.as_millis(),
            MIN_BURST.as_secs_f64() * 1e3,
            MAX_BURST.as_millis(),
            self.pct,
            self.seed,
            self.running.as_secs_f64(),
            per_cpu.join(", "),
            self.burst_p50.as_secs_f64() * 1e3,
            self.burst_p99.as_secs_f64() * 1e3,
            self.burst_max.as_secs_f64() * 1e3,
            if host.is_empty() {
                "not read".to_string()
            } else {
                host.join(", ")
            },
            self.rt_throttle
        )
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The running generator: its threads stop when this is dropped.
pub struct Steal {
    pct: u8,
    seed: u64,
    stop: Arc<AtomicBool>,
    stats: Vec<Arc<Mutex<CpuStats>>>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
    rt_throttle: String,
    /// /proc/stat per CPU at the start: (steal, total) in clock ticks.
    stat0: Vec<(usize, u64, u64)>,
}

impl Steal {
    /// Starts one thread per online CPU (pinned, SCHED_FIFO 99) with a
    /// busy share of `pct` %, each stopping by itself after `limit`.
    /// Fails (and stops what it started) if a thread cannot get its CPU
    /// or priority (needs root or CAP_SYS_NICE).
    pub fn start(pct: u8, seed: u64, limit: Duration) -> Result<Steal> {
        check_pct(pct)?;
        let cpus = online_cpus()?;
        let read = |f: &str| {
            std::fs::read_to_string(format!("/proc/sys/kernel/{f}"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into())
        };
        let mut steal = Steal {
            pct,
            seed,
            stop: Arc::new(AtomicBool::new(false)),
            stats: Vec::new(),
            threads: Vec::new(),
            started: Instant::now(),
            stat0: Vec::new(),
            rt_throttle: format!(
                "{} / {} µs",
                read("sched_rt_runtime_us"),
                read("sched_rt_period_us")
            ),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        for (i, cpu) in cpus.iter().copied().enumerate() {
            let stats = Arc::new(Mutex::new(CpuStats::new(cpu)));
            let schedule = Schedule::new(pct, seed.wrapping_add(i as u64 * 0x1_0000_0001))?;
            let (stop, st, tx) = (steal.stop.clone(), stats.clone(), ready_tx.clone());
            let h = std::thread::Builder::new()
                .name(format!("steal-cpu{cpu}"))
                .spawn(move || spinner(cpu, schedule, limit, &stop, &st, &tx))
                .context("spawning a steal thread")?;
            steal.stats.push(stats);
            steal.threads.push(h);
        }
        drop(ready_tx);
        for _ in &cpus {
            match ready_rx.recv_timeout(Duration::from_secs(5)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => bail!("steal generator: {e}"),
                Err(_) => bail!("steal generator: a thread did not start within 5 s"),
            }
        }
        steal.started = Instant::now();
        steal.stat0 = cpu_ticks();
        Ok(steal)
    }

    /// What it has achieved so far (it keeps running).
    pub fn report(&self) -> StealReport {
        let mut hist = vec![0u64; BINS];
        let mut max = Duration::ZERO;
        let mut cpus = Vec::new();
        for s in &self.stats {
            let s = match s.lock() {
                Ok(g) => g.clone(),
                Err(p) => p.into_inner().clone(),
            };
            for (h, c) in hist.iter_mut().zip(&s.hist) {
                *h += c;
            }
            max = max.max(s.max_burst);
            let wall = s.wall.as_secs_f64();
            let share = |d: Duration| {
                if wall > 0.0 {
                    d.as_secs_f64() / wall
                } else {
                    0.0
                }
            };
            cpus.push((s.cpu, share(s.busy), share(s.cpu_time), s.bursts, s.sched));
        }
        StealReport {
            pct: self.pct,
            seed: self.seed,
            cpus,
            burst_p50: hist_pct(&hist, 0.5),
            burst_p99: hist_pct(&hist, 0.99),
            burst_max: max,
            running: self.started.elapsed(),
            rt_throttle: self.rt_throttle.clone(),
            host_steal: cpu_ticks()
                .iter()
                .filter_map(|(cpu, st, tot)| {
                    let (_, st0, tot0) = self.stat0.iter().find(|c| c.0 == *cpu)?;
                    let d = tot.saturating_sub(*tot0);
                    (d > 0).then(|| (*cpu, st.saturating_sub(*st0) as f64 / d as f64))
                })
                .collect(),
        }
    }
}

impl Drop for Steal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// Per CPU from /proc/stat: (cpu, steal, sum of all fields) in ticks.
fn cpu_ticks() -> Vec<(usize, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_cpu_ticks(&stat)
}

fn parse_cpu_ticks(stat: &str) -> Vec<(usize, u64, u64)> {
    stat.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let cpu: usize = f.next()?.strip_prefix("cpu")?.parse().ok()?;
            // user nice system idle iowait irq softirq steal guest guest_nice;
            // guest time is already in user, so only the first 8 add up.
            let v: Vec<u64> = f.take(8).filter_map(|x| x.parse().ok()).collect();
            (v.len() == 8).then(|| (cpu, v[7], v.iter().sum()))
        })
        .collect()
}

/// The CPUs this process may run on (its affinity mask at start).
fn online_cpus() -> Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET reads the set only, for indices below CPU_SETSIZE.
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    if cpus.is_empty() {
        bail!("sched_getaffinity: no CPU in this process's mask");
    }
    Ok(cpus)
}

/// Pins the calling thread to `cpu` and makes it SCHED_FIFO 99.
fn pin_and_raise(cpu: usize) -> Result<String, String> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu < CPU_SETSIZE (it came from CPU_ISSET over that range).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a valid cpu_set_t of the size passed; 0 = this thread.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(format!(
            "sched_setaffinity(CPU {cpu}): {}",
            std::io::Error::last_os_error()
        ));
    }
    let param = libc::sched_param {
        sched_priority: PRIORITY,
    };
    // SAFETY: param is valid; 0 = this thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        return Err(format!(
            "sched_setscheduler(SCHED_FIFO {PRIORITY}) on CPU {cpu}: {} (needs root or CAP_SYS_NICE)",
            std::io::Error::last_os_error()
        ));
    }
    // Read both back.
    // SAFETY: no arguments.
    let policy = unsafe { libc::sched_getscheduler(0) };
    // SAFETY: no arguments.
    let on = unsafe { libc::sched_getcpu() };
    let mut p = libc::sched_param { sched_priority: 0 };
    // SAFETY: p is a valid sched_param; 0 = this thread.
    unsafe { libc::sched_getparam(0, &mut p) };
    let name = if policy == libc::SCHED_FIFO {
        "SCHED_FIFO"
    } else {
        "not SCHED_FIFO"
    };
    Ok(format!("{name} {} on CPU {on}", p.sched_priority))
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Sleeps until `t` on CLOCK_MONOTONIC (`base` is `base_ns` there).
fn sleep_until(t: Instant, base: Instant, base_ns: u64) {
    super::wait::sleep_until_ns(base_ns + t.saturating_duration_since(base).as_nanos() as u64);
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One CPU's thread: pin, raise, then burst/sleep until stopped or `limit`.
fn spinner(
    cpu: usize,
    schedule: Schedule,
    limit: Duration,
    stop: &AtomicBool,
    stats: &Mutex<CpuStats>,
    ready: &std::sync::mpsc::Sender<Result<(), String>>,
) {
    let sched = match pin_and_raise(cpu) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if let Ok(mut s) = stats.lock() {
        s.sched = sched;
    }
    let _ = ready.send(Ok(()));
    let (base, base_ns) = (Instant::now(), monotonic_ns());
    let cpu0 = thread_cpu_time();
    let end = base + limit;
    // The schedule's own timeline: each burst starts where the previous
    // sleep was meant to end, so late wake-ups shorten the next burst
    // instead of drifting the share.
    let mut next = base;
    for slice in schedule {
        if stop.load(Ordering::Relaxed) || Instant::now() >= end {
            break;
        }
        let burst_end = next + slice.burst;
        let t0 = Instant::now();
        // Bounded: ends at burst_end, at most MAX_BURST after `next`.
        while Instant::now() < burst_end {
            std::hint::spin_loop();
        }
        let spun = t0.elapsed();
        next = burst_end + slice.sleep;
        if let Ok(mut s) = stats.lock() {
            s.record(spun);
            s.cpu_time = thread_cpu_time().saturating_sub(cpu0);
            s.wall = base.elapsed();
        }
        sleep_until(next, base, base_ns);
    }
    if let Ok(mut s) = stats.lock() {
        s.cpu_time = thread_cpu_time().saturating_sub(cpu0);
        s.wall = base.elapsed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(pct: u8, seed: u64, n: usize) -> f64 {
        let (mut b, mut s) = (0.0, 0.0);
        for sl in Schedule::new(pct, seed).unwrap().take(n) {
            b += sl.burst.as_secs_f64();
            s += sl.sleep.as_secs_f64();
        }
        b / (b + s)
    }

    #[test]
    fn long_run_share_is_the_requested_percentage() {
        for pct in [5u8, 23, 40, 60] {
            let got = share(pct, 7, 200_000) * 100.0;
            assert!(
                (got - f64::from(pct)).abs() < 0.5,
                "{pct} %: the schedule gives {got:.2} %"
            );
            let plan = Schedule::new(pct, 7).unwrap().planned_share() * 100.0;
            assert!(
                (plan - f64::from(pct)).abs() < 1e-9,
                "{pct} %: planned {plan}"
            );
        }
    }

    #[test]
    fn bursts_are_clamped_and_their_mean_is_the_model() {
        let v: Vec<Slice> = Schedule::new(23, 42).unwrap().take(100_000).collect();
        assert!(
            v.iter()
                .all(|s| s.burst >= MIN_BURST && s.burst <= MAX_BURST)
        );
        assert!(v.iter().all(|s| s.sleep <= MAX_SLEEP));
        // Exp(2 ms) reaches 10 ms with probability e^-5 ≈ 0.67 %.
        let capped = v.iter().filter(|s| s.burst == MAX_BURST).count() as f64 / v.len() as f64;
        assert!((0.004..0.01).contains(&capped), "capped share {capped}");
        let mean = v.iter().map(|s| s.burst.as_secs_f64()).sum::<f64>() / v.len() as f64;
        assert!(
            (mean - mean_burst_secs()).abs() < 0.03 * mean_burst_secs(),
            "mean burst {mean}"
        );
        // Median of Exp(2 ms) is 2 ln 2 ≈ 1.39 ms.
        let mut b: Vec<f64> = v.iter().map(|s| s.burst.as_secs_f64() * 1e3).collect();
        b.sort_by(f64::total_cmp);
        let p50 = b[b.len() / 2];
        assert!((1.3..1.5).contains(&p50), "burst p50 {p50} ms");
    }

    #[test]
    fn same_seed_same_schedule_other_seed_other() {
        let a: Vec<Slice> = Schedule::new(23, 1).unwrap().take(100).collect();
        let b: Vec<Slice> = Schedule::new(23, 1).unwrap().take(100).collect();
        let c: Vec<Slice> = Schedule::new(23, 2).unwrap().take(100).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn shares_outside_one_to_sixty_are_refused() {
        assert!(Schedule::new(0, 1).is_err());
        assert!(Schedule::new(61, 1).is_err());
        assert!(Schedule::new(1, 1).is_ok());
        assert!(Schedule::new(60, 1).is_ok());
        let e = check_pct(75).unwrap_err().to_string();
        assert!(e.contains("75") && e.contains("60"), "{e}");
    }

    /// Runs the generator for real: 2 s at 20 % on every CPU, then checks
    /// what it says it achieved. Needs root (SCHED_FIFO 99); 40 % of each
    /// CPU stays free, so it runs beside other tests.
    #[test]
    fn generator_achieves_its_share_needs_root() {
        use crate::lab::privileged::{Need, require};
        let name = "generator_achieves_its_share_needs_root";
        if !require(name, &[Need::Root("SCHED_FIFO 99")]) {
            return;
        }
        let steal = Steal::start(20, 3, Duration::from_secs(30)).unwrap();
        std::thread::sleep(Duration::from_secs(2));
        let r = steal.report();
        drop(steal);
        assert!(!r.cpus.is_empty());
        for (cpu, share, cpu_share, n, sched) in &r.cpus {
            assert!(sched.starts_with("SCHED_FIFO 99"), "CPU {cpu}: {sched}");
            assert!((0.14..0.26).contains(share), "CPU {cpu}: busy {share}");
            assert!(
                (0.12..0.28).contains(cpu_share),
                "CPU {cpu}: cpu time {cpu_share}"
            );
            assert!(*n > 50, "CPU {cpu}: {n} bursts in 2 s");
        }
        assert!(
            r.burst_max <= MAX_BURST + Duration::from_millis(1),
            "{:?}",
            r.burst_max
        );
        assert!(
            r.burst_p50 >= Duration::from_micros(700) && r.burst_p50 <= Duration::from_millis(2)
        );
    }

    #[test]
    fn proc_stat_lines_give_steal_and_total_per_cpu() {
        let stat = "cpu  10 0 10 70 0 0 0 10 0 0\ncpu0 5 0 5 35 0 0 0 5 0 0\ncpu1 5 0 5 35 0 0 0 5 7 0\nintr 1 2\n";
        assert_eq!(parse_cpu_ticks(stat), vec![(0, 5, 50), (1, 5, 50)]);
    }

    #[test]
    fn histogram_percentiles_are_nearest_rank_upper_edges() {
        let mut s = CpuStats::new(0);
        for us in [15u64, 25, 25, 35, 1_005] {
            s.record(Duration::from_micros(us));
        }
        assert_eq!(hist_pct(&s.hist, 0.5), Duration::from_micros(30));
        assert_eq!(hist_pct(&s.hist, 0.99), Duration::from_micros(1_010));
        assert_eq!(s.max_burst, Duration::from_micros(1_005));
        assert_eq!(hist_pct(&[0; 4], 0.5), Duration::ZERO);
    }
}
