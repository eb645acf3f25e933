//! What `tandemctl service|real …` do: edit the daemon's configuration
//! file ([`crate::config::edit`]: checked whole, written atomically),
//! then ask the daemon to reload it, so that the change is live and
//! survives a restart. A reload the daemon refuses puts the file back as
//! it was. `real drain --wait` then watches the real server's active
//! connections until none is left.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::{ReloadReply, Request, Response, request};
use crate::config::edit::{self, Edit};

/// The file to edit: `explicit`, or the one the daemon reads on reload.
pub fn config_path(socket: &Path, timeout: Duration, explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    match request(socket, &Request::Status, timeout) {
        Ok(Response::Status(s)) if !s.config_path.is_empty() => Ok(PathBuf::from(s.config_path)),
        Ok(Response::Status(_)) => Err("tandemd names no configuration file: give --config".into()),
        Ok(other) => Err(format!("tandemd answered status with {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Makes `edit` in the file at `path` and reloads it; the daemon's
/// account of the reload. On a refused reload the file is restored.
pub fn edit_and_reload(socket: &Path, timeout: Duration, path: &Path, e: &Edit) -> Result<ReloadReply, String> {
    let old = std::fs::read_to_string(path).map_err(|err| format!("{}: cannot read: {err}", path.display()))?;
    let new = edit::apply(&old, e).map_err(|err| format!("{}: {err}", path.display()))?;
    edit::write_atomically(path, &new).map_err(|err| format!("{}: cannot write: {err}", path.display()))?;
    let restore = |why: String| {
        match edit::write_atomically(path, &old) {
            Ok(()) => format!("{why}; {} restored as it was", path.display()),
            Err(err) => format!("{why}; and {} could not be restored: {err}", path.display()),
        }
    };
    match request(socket, &Request::Reload { dry_run: false }, timeout) {
        Ok(Response::Reload(r)) if r.applied => Ok(r),
        Ok(Response::Reload(r)) => {
            let why = r.error.clone().unwrap_or_else(|| r.refused.join("; "));
            Err(restore(format!("tandemd refused the reload: {why}")))
        }
        Ok(Response::Error { message }) => Err(restore(format!("tandemd refused: {message}"))),
        Ok(other) => Err(restore(format!("tandemd answered reload with {other:?}"))),
        // Not restored: the daemon may have read the file already.
        Err(err) => Err(format!("{err}: the file is edited; run `tandemctl reload` once tandemd answers")),
    }
}

/// Active connections (flows and SIP calls, as the kernel counts them)
/// to `addr` over every service, or None when it is nowhere.
pub fn active_to(socket: &Path, timeout: Duration, addr: IpAddr) -> Result<Option<u64>, String> {
    match request(socket, &Request::Reals, timeout) {
        Ok(Response::Reals { reals }) => {
            let mine: Vec<_> = reals.iter().filter(|r| r.address == addr).collect();
            Ok((!mine.is_empty()).then(|| mine.iter().map(|r| r.flows).sum()))
        }
        Ok(other) => Err(format!("tandemd answered reals with {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits until no connection to `addr` is left or `limit` passed;
/// what is left (0: drained).
pub fn wait_drained(socket: &Path, timeout: Duration, addr: IpAddr, limit: Duration) -> Result<u64, String> {
    let end = Instant::now() + limit;
    loop {
        let left = active_to(socket, timeout, addr)?.unwrap_or(0);
        if left == 0 || Instant::now() >= end {
            return Ok(left);
        }
        std::thread::sleep(Duration::from_millis(200).min(end.saturating_duration_since(Instant::now())));
    }
}
