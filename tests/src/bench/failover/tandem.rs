//! tandem as the system under test: its `tandem.toml` (from
//! [`crate::lab::tandemd::config_text`]: 1 ms × 3 heartbeats, no sync, no
//! flags, SCHED_FIFO 50), its start through the bench's own [`Daemon`]
//! wrapper (stamped pipe output, as keepalived's), and the pair kept from
//! one trial to the next: what a trial killed is restarted and the roles
//! are put back with a switchover. The daemons are asked over the admin
//! socket directly, not through `tandemctl`: the bench polls every 2 ms
//! and must not load the machine it measures with a process per question.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use super::daemon::{Daemon, stop_all};
use super::harness::Bench;
use super::{HARNESS_POLL, TANDEM_B_OFFSET};
use crate::lab::tandemd::{PairOptions, config_text};
use crate::lab::wait::wait_until;
use crate::lab::{DIRECTOR_A, DIRECTOR_B};

/// `{"cmd":"status"}` over the admin socket; the reply as JSON.
pub(crate) fn admin_status(socket: &Path) -> Option<Value> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"{\"cmd\":\"status\"}\n").ok()?;
    let mut buf = Vec::new();
    let _ = s.take(1 << 20).read_to_end(&mut buf);
    let line = String::from_utf8_lossy(&buf);
    serde_json::from_str(line.lines().next()?).ok()
}

/// `node.realtime_priority` of the daemons under test (as the lab's
/// default, and keepalived's `vrrp_rt_priority`); `--noisy`'s RT load
/// runs at the same priority.
pub(super) const REALTIME_PRIORITY: u32 = 50;

/// tandem as this bench runs it: 1 ms × 3 heartbeats on both paths with
/// the witness, the loop at SCHED_FIFO 50 (as keepalived's), one rr UDP
/// service without flags over the two IVRs (no IVR heartbeats), no sync.
fn tandem_options() -> PairOptions {
    PairOptions::bare_1ms(REALTIME_PRIORITY)
}

/// The `state` of a status reply.
pub(super) fn state_of(v: &Option<Value>) -> Option<String> {
    v.as_ref()?.get("state")?.as_str().map(str::to_string)
}

/// A steady pair (a, b), or why not, with what is left of the pair.
pub(super) type PairOutcome = Result<(Daemon, Daemon), (String, Option<Daemon>, Option<Daemon>)>;

impl Bench {
    /// Director `me`'s configuration and admin socket, written into the
    /// bench's directory as `tandem-<me>.toml` / `tandem-<me>.sock`.
    pub(super) fn tandem_config(&self, me: &str) -> Result<(PathBuf, PathBuf)> {
        let socket = self.dir.join(format!("tandem-{me}.sock"));
        let text = config_text(&self.lab, me, &tandem_options(), &socket, None);
        let path = self.dir.join(format!("tandem-{me}.toml"));
        crate::write_private(&path, text)?;
        Ok((path, socket))
    }

    pub(super) fn start_tandem(&self, me: &'static str) -> Result<(Daemon, PathBuf)> {
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


    pub(super) fn stop_tandem(&mut self) {
        if let Some((mut a, mut b)) = self.tandem.take() {
            stop_all(&mut [&mut a, &mut b]);
        }
    }

    /// tandem's pair in its steady state: a active, b standby hearing a.
    /// Restarts what is not running (both: a first, b `TANDEM_B_OFFSET`
    /// later, as tandemd needs ~2 s to load its XDP object), and puts the
    /// roles back with a switchover when b is the active one. On failure
    /// both are handed back for their logs (and are stopped when dropped).
    pub(super) fn tandem_pair(&mut self) -> Result<PairOutcome> {
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
        if !wait_until(settle, HARNESS_POLL, || {
            last = roles();
            is(&last, a_up) || is(&last, b_up)
        }) {
            return Ok(Err((format!("no steady pair: {last:?}"), a, b)));
        }
        if is(&last, b_up) {
            // a lost the role in the trial (a flap, unless it restarted):
            // it is held down, advertises priority 0 and b refuses to hand
            // the role to it until the hold-down ends — the damping working,
            // not an unstable pair. Wait it out (bounded: what is left of
            // its hold-down, which backs off over the trials' flaps) until
            // b sees a as a standby that would take the role (priority > 0,
            // as b's switchover requires) before asking.
            let hold_left = admin_status(&sa)
                .and_then(|v| v.pointer("/damping/hold_down_ms").and_then(Value::as_u64))
                .map_or(Duration::ZERO, Duration::from_millis);
            let ready = || {
                admin_status(&sb).is_some_and(|v| {
                    v.pointer("/peer/state").and_then(Value::as_str) == Some("standby")
                        && v.pointer("/peer/priority").and_then(Value::as_u64).is_some_and(|p| p > 0)
                })
            };
            let bound = (hold_left + Duration::from_secs(3)).min(Duration::from_secs(120));
            wait_until(bound, HARNESS_POLL, ready);
            let b_mark = b.as_ref().map_or(0, |d| d.lines().len());
            let reply = UnixStream::connect(&sb).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_millis(500)))?;
                s.write_all(b"{\"cmd\":\"switchover\"}\n")?;
                let mut r = String::new();
                let _ = s.take(1 << 16).read_to_string(&mut r);
                Ok(r)
            });
            if !wait_until(Duration::from_secs(3), HARNESS_POLL, || {
                last = roles();
                is(&last, a_up)
            }) {
                return Ok(Err((
                    format!("switchover back to a failed ({reply:?}): {last:?}"),
                    a,
                    b,
                )));
            }
            // b's VIP leaves its `lo` after the role (off its loop): wait
            // for that line, so that the trial does not take the tail of
            // this switchover for a role change of the steady state.
            let released = || {
                b.as_ref()
                    .is_some_and(|d| d.lines().iter().skip(b_mark).any(|l| l.text.contains("released VIPs")))
            };
            wait_until(Duration::from_secs(2), HARNESS_POLL, released);
        }
        match (a, b) {
            (Some(a), Some(b)) => Ok(Ok((a, b))),
            (a, b) => Ok(Err(("a daemon is missing".into(), a, b))),
        }
    }

}
