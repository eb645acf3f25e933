//! Network namespaces as the lab's hosts: unique names, creating and deleting
//! them, running Rust code inside one, per-namespace sysctls, and removing
//! namespaces that a dead test process left behind.
//!
//! Names: a lab's namespaces are `<prefix>-<host>`, with the prefix
//! `tdm<pid>x<counter>` for labs that clean up after themselves and a fixed
//! one (`tdmlab`) for the persistent lab of `tandem-lab up`. Only names of the
//! first form whose pid is dead are ever removed by [`cleanup_stale`]; other
//! namespaces on the machine are never touched.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};

use crate::LabError;
use crate::lab::cmd;

/// Every tandem lab namespace starts with this.
pub const PREFIX: &str = "tdm";
/// Where iproute2 keeps named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// `ip netns add` mounts /run/netns on first use; concurrent first uses can
/// stack mounts, so this process creates namespaces one at a time.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

/// A prefix no other lab of this or any live process uses: `tdm<pid>x<n>`.
pub fn unique_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}x{n}", std::process::id())
}

/// The pid in a name of the form `tdm<pid>x<n>-…`, if it has that form.
pub fn owner_pid(ns: &str) -> Option<u32> {
    let rest = ns.strip_prefix(PREFIX)?;
    let (pid, rest) = rest.split_once('x')?;
    let (counter, _host) = rest.split_once('-')?;
    if pid.is_empty() || counter.is_empty() || !counter.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

fn path(ns: &str) -> Result<PathBuf, LabError> {
    if ns.is_empty() || ns.contains('/') || ns == "." || ns == ".." {
        return Err(LabError::Netns {
            ns: ns.to_owned(),
            what: "not a valid namespace name".into(),
        });
    }
    Ok(Path::new(NETNS_DIR).join(ns))
}

/// Whether the named namespace exists.
pub fn exists(ns: &str) -> bool {
    path(ns).map(|p| p.exists()).unwrap_or(false)
}

/// `ip netns add <ns>`.
pub fn add(ns: &str) -> Result<(), LabError> {
    path(ns)?;
    // A poisoned lock only means another thread panicked while holding it.
    let _guard = CREATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cmd::ip(&["netns", "add", ns]).map(drop)
}

/// `ip netns del <ns>`. The namespace itself lives on while a socket or
/// process still holds it, but its name is gone at once.
pub fn delete(ns: &str) -> Result<(), LabError> {
    path(ns)?;
    cmd::ip(&["netns", "del", ns]).map(drop)
}

/// Names of all named network namespaces on the machine.
pub fn list() -> Result<Vec<String>, LabError> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io(format!("listing {NETNS_DIR}"), "(root)", e)),
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Removes the namespaces `tdm<pid>x<n>-*` whose pid is no longer alive (left
/// by a test process that was killed before its labs' `Drop` ran). Returns
/// the names removed. Namespaces of live processes, the persistent lab's and
/// everything not tandem's are left alone.
pub fn cleanup_stale() -> Result<Vec<String>, LabError> {
    let me = std::process::id();
    let mut removed = Vec::new();
    let mut first_err = None;
    for ns in list()? {
        let Some(pid) = owner_pid(&ns) else { continue };
        if pid == me || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match delete(&ns) {
            Ok(()) => removed.push(ns),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// Moves the calling thread into network namespace `ns`, for good. Only for
/// threads this crate spawns for the purpose (responders, [`try_in_netns`]).
pub(crate) fn enter_on_this_thread(ns: &str) -> Result<(), LabError> {
    let p = path(ns)?;
    let file = File::open(&p).map_err(|e| LabError::Netns {
        ns: ns.to_owned(),
        what: format!("opening {}: {e}", p.display()),
    })?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| LabError::Netns {
        ns: ns.to_owned(),
        what: format!("setns(CLONE_NEWNET): {e}"),
    })
}

/// Runs `f` on a new thread that has entered network namespace `ns`, and
/// returns its result. Sockets created inside `f` stay in `ns` for their
/// whole life, wherever they are used afterwards; a process spawned inside
/// `f` starts in `ns`. A panic in `f` is passed on to the caller.
pub fn try_in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
    path(ns)?;
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name(format!("netns {ns}"))
            .spawn_scoped(s, move || {
                enter_on_this_thread(ns)?;
                Ok(f())
            })
            .map_err(|e| LabError::Netns {
                ns: ns.to_owned(),
                what: format!("spawning a thread: {e}"),
            })?;
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// [`try_in_netns`] for callers that cannot go on without the namespace:
/// panics, naming the namespace, if it cannot be entered.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    match try_in_netns(ns, f) {
        Ok(v) => v,
        Err(e) => panic!("in_netns: {e}"),
    }
}

/// Writes a sysctl inside `ns`; `key` in dotted form (`net.ipv4.ip_forward`).
/// Network sysctls under /proc/sys/net belong to the writing thread's namespace.
pub fn sysctl(ns: &str, key: &str, value: &str) -> Result<(), LabError> {
    let file = format!("/proc/sys/{}", key.replace('.', "/"));
    try_in_netns(ns, || std::fs::write(&file, value))?
        .map_err(|e| LabError::io(format!("writing {value} to {file}"), ns, e))
}

/// Reads a sysctl inside `ns` (trimmed).
pub fn read_sysctl(ns: &str, key: &str) -> Result<String, LabError> {
    let file = format!("/proc/sys/{}", key.replace('.', "/"));
    try_in_netns(ns, || std::fs::read_to_string(&file))?
        .map(|s| s.trim().to_owned())
        .map_err(|e| LabError::io(format!("reading {file}"), ns, e))
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn owner_pid_only_for_per_process_names() {
        assert_eq!(owner_pid("tdm1234x0-client"), Some(1234));
        assert_eq!(owner_pid("tdm99x12-sw"), Some(99));
        assert_eq!(owner_pid("tdmlab-client"), None);
        assert_eq!(owner_pid("tdm1234x-client"), None);
        assert_eq!(owner_pid("tdmx1-client"), None);
        assert_eq!(owner_pid("tdm12x3"), None);
        assert_eq!(owner_pid("other1x2-a"), None);
        assert_eq!(owner_pid("tdm1a2x3-a"), None);
    }
}

/// A namespace a test made for itself, deleted when this is dropped (also
/// after a panic).
pub struct Owned(pub String);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = delete(&self.0);
    }
}

/// `ip -n <ns> <args>` (split at white space); panics naming the command
/// when it fails (for tests that build their own namespace).
pub fn ip_in(ns: &str, args: &str) {
    let argv: Vec<&str> = ["-n", ns].into_iter().chain(args.split_whitespace()).collect();
    if let Err(e) = cmd::ip(&argv) {
        panic!("ip -n {ns} {args}: {e}");
    }
}

/// A namespace `tl-<tag>-<pid>` for one director on its own: a service veth
/// `svc0` (198.18.0.11/24, other end `svc1`) and a heartbeat veth `hb0`
/// (198.18.1.1/24, other end `hb1`), all up; its peer never answers.
pub fn single_director(tag: &str) -> Owned {
    let ns = Owned(format!("tl-{tag}-{}", std::process::id()));
    if let Err(e) = add(&ns.0) {
        panic!("ip netns add {}: {e}", ns.0);
    }
    ip_in(&ns.0, "link set lo up");
    ip_in(&ns.0, "link add svc0 type veth peer name svc1");
    ip_in(&ns.0, "link add hb0 type veth peer name hb1");
    for l in ["svc0", "svc1", "hb0", "hb1"] {
        ip_in(&ns.0, &format!("link set {l} up"));
    }
    ip_in(&ns.0, "addr add 198.18.0.11/24 dev svc0");
    ip_in(&ns.0, "addr add 198.18.1.1/24 dev hb0");
    ns
}
