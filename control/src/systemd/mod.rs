//! tandemd as a systemd service: the notify protocol (`Type=notify`:
//! `READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=`, `WATCHDOG=1`)
//! through the `sd-notify` crate, and whether stderr is the journal
//! (`JOURNAL_STREAM`), so that the binary logs to journald natively.
//!
//! What to send and when is [`plan`]'s (sans-IO, tested with a simulated
//! clock); [`Notifier`] only sends it. Without `NOTIFY_SOCKET` in the
//! environment every call is a no-op. A send is one datagram on a unix
//! socket (no reply is awaited); a failure is logged once, and its end
//! once.

pub mod plan;

use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tandem_dataplane::common::node::NodeState;

pub use plan::{Note, Plan, WatchdogPacer};

/// The daemon's side of systemd's notify socket.
#[derive(Debug)]
pub struct Notifier {
    plan: Plan,
    /// `NOTIFY_SOCKET` was set when the daemon started.
    socket: bool,
    /// The last send failed (logged once until one succeeds).
    failing: bool,
}

impl Notifier {
    /// From the environment systemd gave the process: `NOTIFY_SOCKET`,
    /// and `WATCHDOG_USEC` with `WATCHDOG_PID` (this process's).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let mut usec = 0;
        let watchdog = (socket && sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec));
        if let Some(w) = watchdog {
            tracing::info!(
                watchdog_ms = w.as_millis() as u64,
                "systemd watchdog on: WATCHDOG=1 every {} ms from the loop",
                (w / 4).as_millis()
            );
        }
        Notifier {
            plan: Plan::new(watchdog),
            socket,
            failing: false,
        }
    }

    /// Whether systemd listens (`NOTIFY_SOCKET` set).
    pub fn enabled(&self) -> bool {
        self.socket
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// One loop turn (see [`Plan::handle_turn`]); sends what is due.
    pub fn turn(&mut self, now: Instant, state: NodeState, reloading: bool) {
        if !self.socket {
            return;
        }
        self.plan.handle_turn(now, state, reloading);
        self.flush();
    }

    /// The daemon starts to shut down.
    pub fn stopping(&mut self) {
        if !self.socket {
            return;
        }
        self.plan.handle_stopping();
        self.flush();
    }

    fn flush(&mut self) {
        while let Some(note) = self.plan.poll_note() {
            let result = match &note {
                Note::Ready => sd_notify::notify(false, &[NotifyState::Ready]),
                Note::Stopping => sd_notify::notify(false, &[NotifyState::Stopping]),
                Note::Watchdog => sd_notify::notify(false, &[NotifyState::Watchdog]),
                Note::Status(s) => sd_notify::notify(false, &[NotifyState::Status(s)]),
                Note::Reloading => NotifyState::monotonic_usec_now().and_then(|usec| {
                    sd_notify::notify(false, &[NotifyState::Reloading, usec])
                }),
            };
            match result {
                Err(e) if !self.failing => {
                    self.failing = true;
                    tracing::error!("systemd notify socket: sending {note:?}: {e} (further failures not logged)");
                }
                Ok(()) if self.failing => {
                    self.failing = false;
                    tracing::info!("systemd notify socket: sending again");
                }
                _ => {}
            }
        }
    }
}

/// Whether this process's stderr is the journal: `JOURNAL_STREAM`
/// (`DEVICE:INODE`, set by systemd for a unit whose output goes to the
/// journal) names stderr's device and inode.
pub fn stderr_is_journal() -> bool {
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => journal_stream_matches(&var.to_string_lossy(), st.st_dev, st.st_ino),
        Err(_) => false,
    }
}

/// `JOURNAL_STREAM`'s value (`DEVICE:INODE`, decimal) against a file's
/// device and inode.
pub fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>().is_ok_and(|d| d == dev) && i.parse::<u64>().is_ok_and(|i| i == ino)
}

/// Whether tandemd runs as a systemd service whose logs belong in the
/// journal: stderr is the journal stream, or systemd gave it a notify
/// socket (`Type=notify`).
pub fn under_systemd() -> bool {
    stderr_is_journal() || std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_names_device_and_inode() {
        assert!(journal_stream_matches("8:12345", 8, 12345));
        assert!(journal_stream_matches("8:12345\n", 8, 12345));
        assert!(!journal_stream_matches("8:12346", 8, 12345));
        assert!(!journal_stream_matches("9:12345", 8, 12345));
        assert!(!journal_stream_matches("812345", 8, 12345));
        assert!(!journal_stream_matches("x:y", 8, 12345));
    }
}
