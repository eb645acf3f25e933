//! The daemons under test, tandemd and keepalived alike: started with
//! `ip netns exec` (which execs: the child's PID is the daemon's), their
//! output read line by line from a pipe and stamped with CLOCK_MONOTONIC
//! as it is read (tandemd's own stamp kept beside it), stopped and killed
//! by PID only (keepalived's children too, checked against their command
//! line). The same wrapper for both systems, so that both are observed
//! the same way.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tandem_dataplane::monotonic_ns;

use super::os::pipe;

#[derive(Clone, Debug)]
pub(super) struct Line {
    /// CLOCK_MONOTONIC when this harness read it.
    pub(super) read_ns: u64,
    /// The daemon's own CLOCK_MONOTONIC stamp (tandemd's `<ns> <text>`).
    pub(super) own_ns: Option<u64>,
    pub(super) text: String,
}

impl Line {
    pub(super) fn at(&self) -> u64 {
        self.own_ns.unwrap_or(self.read_ns)
    }
}

pub(super) struct Daemon {
    pub(super) child: Option<Child>,
    /// Other processes of the same daemon (keepalived's VRRP and BFD children).
    pub(super) extra: Vec<i32>,
    pub(super) lines: Arc<Mutex<Vec<Line>>>,
    /// Text that identifies this daemon in /proc/PID/cmdline (its config path).
    pub(super) tag: String,
}

/// Whether `pid` is alive and still runs the program started with `tag` in its command line.
pub(crate) fn pid_is(pid: i32, tag: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(tag))
        .unwrap_or(false)
}

impl Daemon {
    pub(super) fn spawn(
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

    pub(super) fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    pub(super) fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn has_line(&self, pat: &str) -> bool {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|l| l.text.contains(pat))
    }

    pub(super) fn count_lines(&self, pat: &str) -> usize {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| l.text.contains(pat))
            .count()
    }

    /// First line after `t0` containing any of `pats`.
    pub(super) fn first_after(&self, t0: u64, pats: &[&str]) -> Option<Line> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| l.at() >= t0 && pats.iter().any(|p| l.text.contains(p)))
            .min_by_key(|l| l.at())
            .cloned()
    }

    pub(super) fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
        }
    }

    /// SIGKILL to every process of the daemon (children first), by PID.
    /// keepalived runs with `--dont-respawn`, so its parent does not
    /// replace a child killed first; children it has now are added too.
    pub(super) fn kill9(&mut self) {
        self.signal_all(libc::SIGKILL);
    }

    /// SIGSTOP to every process of the daemon (children first), by PID:
    /// a hung daemon. [`Daemon::resume`] undoes it; [`Daemon::stop`] too.
    pub(super) fn hang(&mut self) {
        self.signal_all(libc::SIGSTOP);
    }

    /// SIGCONT to every process of the daemon, by PID.
    pub(super) fn resume(&mut self) {
        self.signal_all(libc::SIGCONT);
    }

    fn signal_all(&mut self, sig: libc::c_int) {
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
                unsafe { libc::kill(p, sig) };
            }
        }
        if sig == libc::SIGKILL {
            if let Some(c) = self.child.as_mut() {
                let _ = c.kill();
            }
        } else if let Some(pid) = self.pid()
            && !self.exited()
        {
            // SAFETY: kill(2) on our own child's PID, not yet reaped.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// SIGTERM, up to 3 s to exit, then SIGKILL; reaps the child.
    pub(super) fn stop(&mut self) {
        // A hung (SIGSTOPped) daemon would not act on SIGTERM.
        self.resume();
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

    pub(super) fn dump(&self, path: &Path) {
        let mut s = String::new();
        for l in self.lines() {
            s.push_str(&format!("[{}] {}\n", l.read_ns, l.text));
        }
        let _ = std::fs::write(path, s);
    }
}

/// SIGTERM to every daemon at once, then [`Daemon::stop`] each (bounded).
pub(super) fn stop_all(ds: &mut [&mut Daemon]) {
    for d in ds.iter_mut() {
        d.resume();
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
