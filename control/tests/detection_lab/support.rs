//! What the detection lab tests share beyond the lab itself: keys added
//! to (or changed in) a director's generated `tandem.toml` before it
//! starts ([`add_to_table`], [`replace_in_config`]), typed status
//! ([`status`]), stopping and continuing a daemon by its PID ([`Stopped`]),
//! a daemon's events gathered as they come so that none is lost to the
//! timeline's bound ([`EventLog`]), and the two clocks side by side
//! ([`Clocks`]).
//!
//! It decides nothing about the pair: the tests do.

use std::path::Path;

use tandem_control::admin::{Request, Response, StatusReply};
use tandem_control::events::{Event, Stamped};
use tandem_dataplane::monotonic_ns;
use tandem_tests::tandemd::Director;

use super::wire::realtime_ns;

/// Where [`tandem_tests::tandemd::Director::new`] writes director
/// `name`'s configuration in `dir`.
fn config_path(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.toml"))
}

/// Adds `lines` at the top of `[table]` in director `name`'s configuration
/// (written by `Pair::build` into `dir`, read by the next start).
pub fn add_to_table(dir: &Path, name: &str, table: &str, lines: &[String]) {
    let path = config_path(dir, name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let header = format!("[{table}]\n");
    let Some(at) = text.find(&header) else {
        panic!("{} has no {header:?}:\n{text}", path.display());
    };
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str(&text[..at + header.len()]);
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&text[at + header.len()..]);
    std::fs::write(&path, out).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Replaces the one occurrence of `from` with `to` in director `name`'s configuration.
pub fn replace_in_config(dir: &Path, name: &str, from: &str, to: &str) {
    let path = config_path(dir, name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} in {}:\n{text}",
        path.display()
    );
    std::fs::write(&path, text.replace(from, to))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// `status`, typed, if the daemon answers.
pub fn status(d: &Director) -> Option<StatusReply> {
    match d.request(&Request::Status)? {
        Response::Status(s) => Some(s),
        _ => None,
    }
}

/// A daemon stopped with SIGSTOP by its PID; SIGCONT when dropped (also
/// after a panic), unless continued before.
pub struct Stopped {
    pid: Option<libc::pid_t>,
}

impl Stopped {
    /// SIGSTOP to `d`'s PID. Panics if it is not running.
    pub fn stop(d: &Director) -> Stopped {
        let pid =
            d.pid()
                .unwrap_or_else(|| panic!("{} is not running", d.name)) as libc::pid_t;
        // SAFETY: kill(2) on the PID of a child this process started.
        let r = unsafe { libc::kill(pid, libc::SIGSTOP) };
        assert_eq!(r, 0, "SIGSTOP {pid}: {}", std::io::Error::last_os_error());
        Stopped { pid: Some(pid) }
    }

    /// SIGCONT.
    pub fn cont(mut self) {
        self.resume();
    }

    fn resume(&mut self) {
        if let Some(pid) = self.pid.take() {
            // SAFETY: kill(2) on the PID of a child this process started.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        self.resume();
    }
}

/// One daemon's events from a starting point on, gathered by [`EventLog::poll`].
pub struct EventLog {
    after: u64,
    pub events: Vec<Stamped>,
    /// Events the daemon had already dropped when asked (its timeline is bounded).
    pub missed: u64,
}

impl EventLog {
    /// From the daemon's newest event on (what it did before is left out).
    pub fn from_now(d: &Director) -> EventLog {
        let after = d.events(0).last().map_or(0, |e| e.seq);
        EventLog {
            after,
            events: Vec::new(),
            missed: 0,
        }
    }

    /// Every event the daemon holds.
    pub fn from_start() -> EventLog {
        EventLog {
            after: 0,
            events: Vec::new(),
            missed: 0,
        }
    }

    /// Asks the daemon for what is new (nothing if it does not answer).
    pub fn poll(&mut self, d: &Director) {
        for e in d.events(self.after) {
            if e.seq > self.after + 1 && self.after > 0 {
                self.missed += e.seq - self.after - 1;
            }
            self.after = e.seq;
            self.events.push(e);
        }
    }

    /// The pair's state changes, in order: (`CLOCK_MONOTONIC` ns, from, to, epoch).
    pub fn state_changes(&self) -> Vec<(u64, String, String, u64)> {
        self.events
            .iter()
            .filter_map(|e| match &e.event {
                Event::StateChanged {
                    from, to, epoch, ..
                } => Some((e.at_ns, from.clone(), to.clone(), *epoch)),
                _ => None,
            })
            .collect()
    }

    /// State changes into `to` at or after `since_ns`.
    pub fn entered(&self, to: &str, since_ns: u64) -> Vec<u64> {
        self.state_changes()
            .into_iter()
            .filter(|c| c.2 == to && c.0 >= since_ns)
            .map(|c| c.0)
            .collect()
    }

    /// The first event satisfying `f`, with its time.
    pub fn first(&self, f: impl Fn(&Event) -> bool) -> Option<&Stamped> {
        self.events.iter().find(|e| f(&e.event))
    }

    /// The events as text lines, for a failure message.
    pub fn show(&self) -> String {
        self.events
            .iter()
            .map(|e| format!("  {} {}", e.at_ns, e.event))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `CLOCK_MONOTONIC` (the daemons' event stamps) and `CLOCK_REALTIME`
/// (packet stamps, SIPp's log) read side by side, to convert between them.
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    pub mono_ns: u64,
    pub real_ns: u64,
}

impl Clocks {
    pub fn now() -> Clocks {
        let a = monotonic_ns();
        let real_ns = realtime_ns();
        let b = monotonic_ns();
        Clocks {
            mono_ns: a + (b - a) / 2,
            real_ns,
        }
    }

    /// A `CLOCK_MONOTONIC` stamp on the realtime clock, in s (as SIPp's log).
    pub fn wall_s(&self, mono_ns: u64) -> f64 {
        (self.real_ns as f64 + mono_ns as f64 - self.mono_ns as f64) / 1e9
    }
}

/// The last `n` lines of a daemon's log, for failure messages.
pub fn log_tail(d: &Director, n: usize) -> String {
    let text = d.log_text();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The test's own bpffs for the pair's pins.
pub use tandem_tests::lab::bpffs::Bpffs as TestBpffs;
