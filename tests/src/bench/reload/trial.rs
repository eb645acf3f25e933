//! One trial of the reload bench and the questions it asks the daemons
//! over their admin sockets: a weight edit ([`edit_trial`]) and a reload
//! of the design-maximum phase ([`big_trial`]), each timed from its start
//! to a's reply and to b holding the change, with what went wrong named.
//! It starts nothing and keeps no state between trials.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use tandem_control::admin::{
    self, RealStatus, ReloadReply, Request, Response, StatusReply, SyncReply,
};
use tandem_control::config::{diff::ServiceId, edit};
use tandem_dataplane::monotonic_ns;

use super::with_weight;

/// How long one status, reals or sync question may take.
pub(super) const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a reload may take to be answered (a 64 × 32 file included).
pub(super) const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the standby is asked whether it holds a change.
pub(super) const STANDBY_POLL: Duration = Duration::from_micros(500);

/// The longest an edit may take to reach the standby's maps.
pub(super) const STANDBY_TIMEOUT: Duration = Duration::from_secs(3);

/// The same for a reload of the design maximum.
pub(super) const BIG_STANDBY_TIMEOUT: Duration = Duration::from_secs(20);

pub(super) fn status(sock: &Path) -> Option<StatusReply> {
    match admin::request(sock, &Request::Status, ADMIN_TIMEOUT).ok()? {
        Response::Status(s) => Some(s),
        _ => None,
    }
}

pub(super) fn reals(sock: &Path) -> Option<Vec<RealStatus>> {
    match admin::request(sock, &Request::Reals, ADMIN_TIMEOUT).ok()? {
        Response::Reals { reals } => Some(reals),
        _ => None,
    }
}

pub(super) fn sync(sock: &Path) -> Option<SyncReply> {
    match admin::request(sock, &Request::Sync, ADMIN_TIMEOUT).ok()? {
        Response::Sync(s) => Some(s),
        _ => None,
    }
}

/// `udp/198.18.0.100:5060`, as `reals` names a service.
pub(super) fn service_name(id: ServiceId) -> String {
    format!("udp/{}:{}", id.vip, id.port)
}

/// The weight the kernel maps hold for `addr` in service `name`.
pub(super) fn weight_in(reals: &[RealStatus], name: &str, addr: Ipv4Addr) -> Option<u32> {
    reals
        .iter()
        .find(|r| r.service == name && r.address == IpAddr::V4(addr))
        .map(|r| r.weight)
}

/// Asks `sock` to reload; the reply if it was applied without error.
pub(super) fn reload(sock: &Path) -> Result<ReloadReply, String> {
    match admin::request(sock, &Request::Reload { dry_run: false }, RELOAD_TIMEOUT) {
        Ok(Response::Reload(r)) if r.applied && r.error.is_none() => Ok(r),
        Ok(Response::Reload(r)) => Err(format!(
            "not applied: {}",
            r.error.clone().unwrap_or_else(|| r.refused.join("; "))
        )),
        Ok(other) => Err(format!("answered {other:?}")),
        Err(e) => Err(format!("no answer: {e}")),
    }
}

/// Polls `holds` every [`STANDBY_POLL`] until it holds (µs since `t0`)
/// or `timeout` after `t0` passed (None).
pub(super) fn wait_held(
    t0: Instant,
    timeout: Duration,
    mut holds: impl FnMut() -> bool,
) -> Option<u64> {
    loop {
        if holds() {
            return Some(t0.elapsed().as_micros() as u64);
        }
        if t0.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(STANDBY_POLL);
    }
}

/// Waits (at most 5 s) until b acknowledged every record a had at `seq`;
/// a's sync counters then.
pub(super) fn synced_past(a: &Path, seq: u64) -> Option<SyncReply> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let s = sync(a)?;
        if s.acked >= seq || Instant::now() >= end {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One weight edit.
#[derive(Clone, Debug, Default)]
pub(super) struct EditTrial {
    pub(super) weight: u32,
    pub(super) start_ns: u64,
    pub(super) end_ns: u64,
    pub(super) edit_us: u64,
    pub(super) reply: Option<ReloadReply>,
    pub(super) reply_us: Option<u64>,
    pub(super) standby_us: Option<u64>,
    /// b's own apply, from its `Reloaded` event (filled in at the end).
    pub(super) standby_apply_us: Option<u64>,
    /// A role change before it had to be undone by a switchover.
    pub(super) after_restore: bool,
    /// After the role change it caused: a runs b's services, the change is gone.
    pub(super) undone: Option<bool>,
    pub(super) failure: Option<String>,
}

/// Which reload of the design-maximum phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BigKind {
    /// The pair's file → the design maximum.
    Load,
    /// One weight in the first service (mh: its Maglev table is rebuilt).
    OneWeight,
    /// One weight in service 1 (wlc: no table), for comparison.
    OneWeightWlc,
    /// The same file again.
    Nothing,
    /// Back to the pair's file.
    Back,
}

impl BigKind {
    pub(super) const ALL: [BigKind; 5] = [
        BigKind::Load,
        BigKind::OneWeight,
        BigKind::OneWeightWlc,
        BigKind::Nothing,
        BigKind::Back,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            BigKind::Load => "load",
            BigKind::OneWeight => "one_weight",
            BigKind::OneWeightWlc => "one_weight_wlc",
            BigKind::Nothing => "nothing",
            BigKind::Back => "back",
        }
    }
}

/// One reload of the design-maximum phase.
#[derive(Clone, Debug)]
pub(super) struct BigTrial {
    pub(super) round: usize,
    pub(super) kind: BigKind,
    pub(super) start_ns: u64,
    pub(super) end_ns: u64,
    pub(super) edit_us: u64,
    pub(super) reply: Option<ReloadReply>,
    pub(super) reply_us: Option<u64>,
    pub(super) standby_us: Option<u64>,
    pub(super) standby_apply_us: Option<u64>,
    pub(super) sync_bytes: Option<u64>,
    pub(super) sync_records: Option<u64>,
    pub(super) late_turns: [u64; 2],
    /// A role change before it had to be undone by a switchover.
    pub(super) after_restore: bool,
    /// After the role change it caused: a runs b's services, the change is gone.
    pub(super) undone: Option<bool>,
    pub(super) failure: Option<String>,
}

/// `late_turns` of a and b now (0 for a daemon that does not answer).
pub(super) fn late_turns(a: &Path, b: &Path) -> [u64; 2] {
    [a, b].map(|s| status(s).map_or(0, |s| s.late_turns))
}

/// Runs one edit trial (weight `w`).
pub(super) fn edit_trial(
    a: &Path,
    b: &Path,
    path: &Path,
    first: ServiceId,
    ivr: Ipv4Addr,
    w: u32,
) -> EditTrial {
    let mut t = EditTrial {
        weight: w,
        start_ns: monotonic_ns(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let name = service_name(first);
    let edited = std::fs::read_to_string(path)
        .map_err(|e| format!("reading {}: {e}", path.display()))
        .and_then(|old| with_weight(&old, first, ivr, w))
        .and_then(|new| {
            edit::write_atomically(path, &new)
                .map_err(|e| format!("writing {}: {e}", path.display()))
        });
    t.edit_us = t0.elapsed().as_micros() as u64;
    if let Err(e) = edited {
        t.failure = Some(format!("edit: {e}"));
        t.end_ns = monotonic_ns();
        return t;
    }
    match reload(a) {
        Ok(r) => {
            t.reply_us = Some(t0.elapsed().as_micros() as u64);
            t.reply = Some(r);
        }
        Err(e) => {
            t.failure = Some(format!("reload: {e}"));
            t.end_ns = monotonic_ns();
            return t;
        }
    }
    if reals(a).and_then(|r| weight_in(&r, &name, ivr)) != Some(w) {
        t.failure = Some("a's maps do not hold the weight after its reply".into());
    }
    t.standby_us = wait_held(t0, STANDBY_TIMEOUT, || {
        reals(b).and_then(|r| weight_in(&r, &name, ivr)) == Some(w)
    });
    if t.standby_us.is_none() && t.failure.is_none() {
        let roles = (status(a).map(|s| s.state), status(b).map(|s| s.state));
        t.failure = Some(
            if roles.0.as_deref() == Some("active") && roles.1.as_deref() == Some("standby") {
                format!("b's maps did not hold the weight within {STANDBY_TIMEOUT:?}")
            } else {
                format!(
                    "roles changed: a {:?}, b {:?} when b's maps had not held the weight",
                    roles.0, roles.1
                )
            },
        );
        if let Some(r) = &t.reply
            && !(roles.0.as_deref() == Some("active") && roles.1.as_deref() == Some("standby"))
        {
            t.undone = change_undone(a, &r.fingerprint);
        }
    }
    t.end_ns = monotonic_ns();
    t
}

/// After a role change that followed a reload to `fingerprint`: whether
/// a ends up running other services (b's, taken over sync as its
/// standby), that is, the change is undone (None: a did not answer).
pub(super) fn change_undone(a: &Path, fingerprint: &str) -> Option<bool> {
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        let f = status(a).map(|s| s.config_fingerprint);
        if f.as_deref().is_some_and(|f| f != fingerprint) {
            return Some(true);
        }
        if Instant::now() >= end {
            return f.map(|_| false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs one reload of the design-maximum phase: writes `text` (None:
/// the file as it is) and reloads. Checked after, not timed: a's and b's
/// `status.config_fingerprint`, which a daemon sets in the loop turn that
/// writes the maps (a `reals` answer of 2,048 rows is built in one turn
/// of the loop being measured: it is timed once, on the standby, in the
/// stage's set-up).
pub(super) fn big_trial(
    a: &Path,
    b: &Path,
    path: &Path,
    round: usize,
    kind: BigKind,
    text: Option<&str>,
) -> BigTrial {
    let before_turns = late_turns(a, b);
    let before_sync = sync(a);
    let mut t = BigTrial {
        round,
        kind,
        start_ns: monotonic_ns(),
        end_ns: 0,
        edit_us: 0,
        reply: None,
        reply_us: None,
        standby_us: None,
        standby_apply_us: None,
        sync_bytes: None,
        sync_records: None,
        late_turns: [0, 0],
        after_restore: false,
        undone: None,
        failure: None,
    };
    let t0 = Instant::now();
    if let Some(text) = text
        && let Err(e) = edit::write_atomically(path, text)
    {
        t.failure = Some(format!("writing {}: {e}", path.display()));
        t.end_ns = monotonic_ns();
        return t;
    }
    t.edit_us = t0.elapsed().as_micros() as u64;
    let r = match reload(a) {
        Ok(r) => r,
        Err(e) => {
            t.failure = Some(format!("reload: {e}"));
            t.end_ns = monotonic_ns();
            return t;
        }
    };
    t.reply_us = Some(t0.elapsed().as_micros() as u64);
    let seq = sync(a).map_or(0, |s| s.last_seq);
    let fingerprint = r.fingerprint.clone();
    let changed = r.fingerprint != r.fingerprint_before;
    t.reply = Some(r);
    if changed {
        // Stops early if b leaves standby (a role change: it will not hold it).
        let mut left: Option<String> = None;
        let held = wait_held(t0, BIG_STANDBY_TIMEOUT, || match status(b) {
            Some(s) if s.state != "standby" => {
                left = Some(s.state);
                true
            }
            Some(s) => s.config_fingerprint == fingerprint,
            None => false,
        });
        match left {
            Some(state) => {
                t.failure = Some(format!(
                    "roles changed: b became {state} before it held the services (a now {:?})",
                    status(a).map(|s| s.state)
                ));
                t.undone = change_undone(a, &fingerprint);
            }
            None if held.is_none() => {
                t.failure = Some(format!(
                    "b did not take the services within {BIG_STANDBY_TIMEOUT:?}"
                ))
            }
            None => t.standby_us = held,
        }
    } else if kind != BigKind::Nothing {
        t.failure = Some("the reload changed nothing".into());
    }
    // Sync bytes only while a stayed the publisher.
    if t.failure.is_none()
        && let (Some(before), Some(after)) = (before_sync, synced_past(a, seq))
        && after.role == before.role
    {
        t.sync_bytes = Some(after.bytes_sent.saturating_sub(before.bytes_sent));
        t.sync_records = Some(after.records.saturating_sub(before.records));
    }
    t.end_ns = monotonic_ns();
    if t.failure.is_none() {
        let (fa, fb) = (
            status(a).map(|s| s.config_fingerprint),
            status(b).map(|s| s.config_fingerprint),
        );
        if fa.as_deref() != Some(fingerprint.as_str())
            || fb.as_deref() != Some(fingerprint.as_str())
        {
            t.failure = Some(format!(
                "after the reload to {fingerprint}: a runs {fa:?}, b {fb:?}"
            ));
        }
    }
    let after_turns = late_turns(a, b);
    t.late_turns = [0, 1].map(|k| after_turns[k].saturating_sub(before_turns[k]));
    t
}
