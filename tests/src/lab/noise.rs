//! The noisy neighbour: competing load started beside a pair under test,
//! the way a real director also runs a CTI server, an SBC or a busy DAHDI
//! driver. `cargo xtask bench failover --noisy` and the detection lab's
//! soak both run it ([`Noise`]); the rule for a missing `stress-ng` is
//! [`require_stress_ng`].
//!
//! The load: `stress-ng --cpu 2 --cpu-load 60` (CFS on both CPUs), one
//! `stress-ng` worker at SCHED_FIFO at the daemons' own priority with a
//! bounded duty cycle (30 % in 2 ms busy slices, so the machine stays
//! usable), and a second tandem pair (1 ms × 3) in its own lab
//! namespaces, idle but running.
//!
//! It stops only the processes it started, by PID, when dropped (on every
//! path out, a panic's unwinding included); each stress-ng also gets
//! SIGTERM if its starter dies and stops by itself after its `--timeout`.
//! It measures nothing itself, except what the second pair did (its role
//! changes, read from its timeline).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::lab::privileged::REQUIRE_ENV;
use crate::lab::tandemd::{Binaries, Pair, PairOptions, WorkDir};

/// The RT worker's busy slice (`--cpu-load-slice`, ms).
const RT_SLICE_MS: u32 = 2;

/// stress-ng on PATH, or where Debian's package puts it.
pub fn stress_ng() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("stress-ng"))
        .find(|p| p.is_file())
}

/// stress-ng, or `None` after saying why `test` skips (a panic where
/// skipping is forbidden: `TANDEM_REQUIRE_PRIVILEGED=1`).
pub fn require_stress_ng(test: &str) -> Option<PathBuf> {
    if let Some(p) = stress_ng() {
        return Some(p);
    }
    let reason = "stress-ng is not installed (`cargo xtask setup` installs Debian's `stress-ng`)";
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{test}: {reason}, and {REQUIRE_ENV}=1 forbids skipping it");
    }
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {reason}");
    None
}

/// One stress-ng run: its command line (for the report) and its process.
struct Stress {
    args: Vec<String>,
    child: Child,
    /// Stopped and reaped: its PID may belong to someone else now.
    reaped: bool,
}

impl Stress {
    fn start(bin: &PathBuf, args: Vec<String>) -> Result<Stress> {
        let mut cmd = Command::new(bin);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl(2) is async-signal-safe and touches only the child.
        // SIGTERM, not SIGKILL: stress-ng's parent stops its workers on it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Stress { args, child, reaped: false })
    }

    fn command_line(&self) -> String {
        format!("stress-ng {}", self.args.join(" "))
    }

    /// stress-ng's worker PIDs (the parent's children).
    fn workers(&self) -> Vec<i32> {
        let pid = self.child.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM to the parent (which stops its workers), up to 3 s, then
    /// SIGKILL to the workers it had and to the parent; reaped.
    fn stop(&mut self) {
        if std::mem::replace(&mut self.reaped, true) {
            return;
        }
        let workers = self.workers();
        if self.running() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(3);
            while self.running() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for w in workers {
            let is_stress = std::fs::read(format!("/proc/{w}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("stress-ng"));
            if is_stress {
                // SAFETY: kill(2) on a worker of a stress-ng we started (checked above).
                unsafe { libc::kill(w, libc::SIGKILL) };
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The competing load, running while this lives.
pub struct Noise {
    stress: Vec<Stress>,
    /// The second pair: its daemons, then its lab, dropped in that order.
    pair: Option<Pair>,
    _dir: WorkDir,
    /// The RT worker's scheduling as read back from /proc (policy, priority).
    rt_check: Option<String>,
    started: Instant,
}

impl Noise {
    /// Starts the CPU load, the RT load at `rt_priority` (both bounded by
    /// stress-ng's `--timeout` of `bound`) and the second pair (1 ms × 3,
    /// no sync), and waits until that pair is steady.
    pub fn start(bins: &Binaries, rt_priority: u32, bound: Duration) -> Result<Noise> {
        let bin = stress_ng().context("stress-ng is not installed (`cargo xtask setup` installs it)")?;
        let t = format!("{}s", bound.as_secs().max(1));
        let cpu = ["--cpu", "2", "--cpu-load", "60", "--timeout", &t];
        let slice = RT_SLICE_MS.to_string();
        let prio = rt_priority.to_string();
        let rt = [
            "--cpu", "1", "--cpu-load", "30", "--cpu-load-slice", &slice, "--sched", "fifo", "--sched-prio", &prio,
            "--timeout", &t,
        ];
        let mut noise = Noise {
            stress: Vec::new(),
            pair: None,
            _dir: WorkDir::new("noise")?,
            rt_check: None,
            started: Instant::now(),
        };
        for args in [&cpu[..], &rt[..]] {
            noise.stress.push(Stress::start(&bin, args.iter().map(|s| s.to_string()).collect())?);
        }
        // The workers are forked after a moment; check they run and how.
        std::thread::sleep(Duration::from_millis(500));
        for s in noise.stress.iter_mut() {
            if !s.running() {
                bail!("{} exited at once", s.command_line());
            }
        }
        noise.rt_check = noise.stress[1].workers().first().map(|&w| sched_of(w));
        let pair = Pair::start(2, &PairOptions::bare_1ms(rt_priority), noise._dir.path(), bins, None)
            .context("starting the noisy neighbour's tandem pair")?;
        noise.pair = Some(pair);
        noise.started = Instant::now();
        Ok(noise)
    }

    /// The stress-ng command lines.
    pub fn command_lines(&self) -> Vec<String> {
        self.stress.iter().map(Stress::command_line).collect()
    }

    /// The second pair's role changes since it was steady: entries into
    /// the active role after each node's first state.
    pub fn pair_role_changes(&self) -> usize {
        let Some(p) = &self.pair else { return 0 };
        [&p.a, &p.b]
            .iter()
            .map(|d| {
                d.timeline()
                    .iter()
                    .filter(|(_, l)| l.starts_with("state ") && l.contains("-> active"))
                    .count()
            })
            .sum::<usize>()
            // a's own start (init -> active) is not a change.
            .saturating_sub(1)
    }

    /// What ran, for a report (JSON and one Markdown line).
    pub fn describe(&self) -> (Value, String) {
        let cmds = self.command_lines();
        let lab = self.pair.as_ref().map(|p| p.lab.prefix().to_string());
        let changes = self.pair_role_changes();
        let secs = self.started.elapsed().as_secs_f64();
        let v = json!({
            "stress": cmds,
            "rt_worker_sched": self.rt_check,
            "second_pair": {"heartbeat_interval_ms": 1, "multiplier": 3, "lab": lab, "running_s": (secs * 10.0).round() / 10.0, "role_changes": changes},
        });
        let md = format!(
            "- **Load (--noisy)**: `{}`; RT worker scheduling read back: {}; a second tandem pair (1 ms × 3, lab `{}`) idle beside it for {:.0} s, {} role changes of its own.\n",
            cmds.join("`; `"),
            self.rt_check.as_deref().unwrap_or("not seen"),
            lab.as_deref().unwrap_or("–"),
            secs,
            changes
        );
        (v, md)
    }

    /// Stops the load now (as dropping it does), keeping what
    /// [`Noise::pair_role_changes`] reads.
    pub fn stop_stress(&mut self) {
        for s in self.stress.iter_mut() {
            s.stop();
        }
    }
}

impl Drop for Noise {
    fn drop(&mut self) {
        self.stop_stress();
        self.pair = None;
    }
}

/// `policy/priority` of `pid` from /proc/PID/stat (fields 41 and 40).
fn sched_of(pid: i32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): field n is f[n - 3].
    let policy = match f.get(38).and_then(|p| p.parse::<i32>().ok()) {
        Some(libc::SCHED_FIFO) => "SCHED_FIFO",
        Some(libc::SCHED_RR) => "SCHED_RR",
        Some(libc::SCHED_OTHER) => "SCHED_OTHER",
        Some(_) => "other",
        None => "unknown",
    };
    let rt = f.get(37).copied().unwrap_or("?");
    format!("{policy} rt_priority {rt}")
}
