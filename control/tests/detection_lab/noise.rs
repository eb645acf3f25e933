//! A noisy neighbour for the detection lab: `stress-ng` processes that
//! load both CPUs, some of them as `SCHED_FIFO` workers at the daemons'
//! realtime priority with a bounded duty cycle, started by this test and
//! stopped by their PIDs ([`StressNg`]), and the rule for a missing
//! `stress-ng` ([`require_stress_ng`]: skip, saying so, or fail where
//! skipping is forbidden, as under `cargo xtask test`).
//!
//! It stops only the processes it started, by PID, and each of them also
//! ends on its own (`--timeout`) and with the thread that started it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tandem_tests::cmd;
use tandem_tests::privileged::REQUIRE_ENV;

/// stress-ng on PATH, or where Debian's package puts it.
fn stress_ng() -> Option<PathBuf> {
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

/// One running `stress-ng`, stopped (SIGTERM by its PID, then SIGKILL)
/// when dropped.
pub struct StressNg {
    child: Option<Child>,
    what: String,
}

impl StressNg {
    /// Starts `stress-ng <args> --timeout <bound>s --quiet`.
    pub fn start(bin: &PathBuf, args: &[&str], bound: Duration) -> Result<StressNg, String> {
        let mut c = Command::new(bin);
        c.args(args)
            .args([
                "--timeout",
                &format!("{}s", bound.as_secs().max(1)),
                "--quiet",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd::die_with_parent(&mut c);
        let what = cmd::describe(&c);
        let mut child = c.spawn().map_err(|e| format!("{what}: {e}"))?;
        // It must be running (a bad option exits at once).
        std::thread::sleep(Duration::from_millis(300));
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return Err(format!("{what} exited at once ({status}): {}", err.trim()));
        }
        Ok(StressNg {
            child: Some(child),
            what,
        })
    }

    /// Its command line.
    pub fn describe(&self) -> &str {
        &self.what
    }

    /// Stops it: SIGTERM to its PID (stress-ng then stops its workers),
    /// up to 5 s, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's PID, not yet reaped.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if matches!(c.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for StressNg {
    fn drop(&mut self) {
        self.stop();
    }
}
