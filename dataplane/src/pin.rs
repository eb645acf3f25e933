//! The dispatcher's XDP link pinned in bpffs, so that the program outlives
//! the process: a daemon killed with SIGKILL leaves its dispatcher
//! attached, and the program's own guards (the dead-man switch, the VIP
//! guard) keep the dead node from answering or rejecting VIP traffic.
//!
//! One pin per instance: bpffs is host-wide while several daemons may run
//! in different network namespaces, so the file name holds the network
//! namespace's inode and the interface's index ([`pin_path`]). A pin of
//! the same instance found at attach time is a killed predecessor's: it
//! is removed first (which detaches its link), then the new link is
//! attached and pinned. [`Dataplane::detach_all`] removes the pins.
//!
//! It decides nothing about when pinning is wanted: that is the caller's
//! (the daemon pins only with its dead-man switch armed). Without a bpffs
//! under the directory it attaches as [`Dataplane::attach`] does and says
//! why ([`LinkPin::NotPinned`]); it mounts bpffs only at `/sys/fs/bpf`,
//! empty, on sysfs, in the host's (PID 1's) mount namespace.

use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
};

use aya::programs::links::FdLink;
use tandem_common::progs;

use crate::{AttachMode, Attached, Dataplane, Error, ifindex};

/// Where the daemon pins by default.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/tandem";

const BPFFS: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// What became of the pin of a dispatcher link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkPin {
    /// Pinned at `path`; `stale` is the link id (0 if unknown) of a
    /// predecessor's pin that was found there and removed.
    Pinned { path: PathBuf, stale: Option<u32> },
    /// A predecessor's pinned link (id `link`) at `path` now runs this
    /// dataplane's program: replaced in place, never detached.
    Replaced { path: PathBuf, link: u32 },
    /// Attached but not pinned (the link dies with the process), and why.
    NotPinned { reason: String },
}

/// The pin of the dispatcher on interface `ifindex` in the network
/// namespace whose inode is `netns`, under `dir`.
pub fn pin_path(dir: &Path, netns: u64, ifindex: u32) -> PathBuf {
    dir.join(format!("netns{netns}-if{ifindex}-dispatch"))
}

/// The inode of the calling thread's network namespace.
pub(crate) fn netns_inode() -> std::io::Result<u64> {
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino())
}

/// The filesystem type (`f_type`) of `path`.
fn fs_type(path: &Path) -> std::io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a zeroed statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated and st is writable.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64)
}

/// The nearest existing ancestor of `dir` (itself included).
fn existing_ancestor(dir: &Path) -> Option<&Path> {
    dir.ancestors().find(|p| p.exists())
}

/// Mounting bpffs at `/sys/fs/bpf` is what the host's init does; it is
/// done here only where it is exactly that: the directory is empty and on
/// sysfs, and this process shares PID 1's mount namespace (a mount in a
/// private one would go, with the pins, when the process does).
fn may_mount_bpffs() -> Result<(), String> {
    let root = Path::new(BPFFS);
    if fs_type(root).map_err(|e| format!("{BPFFS}: {e}"))? != SYSFS_MAGIC {
        return Err(format!("{BPFFS} is neither bpffs nor sysfs"));
    }
    let empty = std::fs::read_dir(root)
        .map_err(|e| format!("{BPFFS}: {e}"))?
        .next()
        .is_none();
    if !empty {
        return Err(format!("{BPFFS} is not empty"));
    }
    let ns = |p: &str| std::fs::read_link(p).map_err(|e| format!("{p}: {e}"));
    if ns("/proc/self/ns/mnt")? != ns("/proc/1/ns/mnt")? {
        return Err("this process has a mount namespace of its own (a bpffs mounted in it would go with the process)".into());
    }
    Ok(())
}

/// Makes sure `dir` is on a bpffs, mounting one where that is safe.
pub(crate) fn ensure_bpffs(dir: &Path) -> Result<(), String> {
    let at = existing_ancestor(dir).ok_or_else(|| format!("{} does not exist", dir.display()))?;
    let t = fs_type(at).map_err(|e| format!("{}: {e}", at.display()))?;
    if t == BPF_FS_MAGIC {
        return Ok(());
    }
    if !dir.starts_with(BPFFS) || at != Path::new(BPFFS) {
        return Err(format!("{} is not on a bpffs", at.display()));
    }
    may_mount_bpffs()
        .map_err(|why| format!("bpffs is not mounted at {BPFFS}, and not mounted here: {why}"))?;
    nix::mount::mount(
        Some("bpf"),
        BPFFS,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        Some("mode=0700"),
    )
    .map_err(|e| format!("mounting bpffs at {BPFFS}: {e}"))?;
    tracing::info!("mounted bpffs at {BPFFS}");
    Ok(())
}

impl Dataplane {
    /// Attaches the dispatcher to `iface` like [`Dataplane::attach`] and
    /// pins its link under `dir` (see the module doc), replacing a stale
    /// pin of the same instance. A missing bpffs is not an error: the
    /// link is then attached unpinned ([`LinkPin::NotPinned`]).
    pub fn attach_pinned(
        &mut self,
        iface: &str,
        mode: AttachMode,
        dir: &Path,
    ) -> Result<(Attached, LinkPin), Error> {
        let index = ifindex(iface)?;
        let path = match netns_inode() {
            Ok(ns) => pin_path(dir, ns, index),
            Err(e) => {
                let attached = self.attach(iface, mode)?;
                return Ok((
                    attached,
                    LinkPin::NotPinned {
                        reason: format!("network namespace inode: {e}"),
                    },
                ));
            }
        };
        if let Err(reason) = ensure_bpffs(dir) {
            let attached = self.attach(iface, mode)?;
            return Ok((attached, LinkPin::NotPinned { reason }));
        }
        let pin_err = |source| Error::Pin {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(pin_err)?;
        if std::fs::symlink_metadata(&path).is_ok() {
            match self.replace_in_link(&path) {
                Ok(id) => {
                    let attached = match mode {
                        AttachMode::Generic => Attached::Generic,
                        AttachMode::Native | AttachMode::Auto => Attached::Native,
                    };
                    return Ok((attached, LinkPin::Replaced { path, link: id }));
                }
                Err(why) => tracing::warn!(
                    "{iface}: the predecessor's link at {} cannot take this program ({why}): detaching it and attaching anew",
                    path.display()
                ),
            }
        }
        let stale = if std::fs::symlink_metadata(&path).is_ok() {
            // The predecessor's link; dropping the last reference (the
            // pin) detaches it, so that the attach below finds the
            // interface free.
            let id = aya::programs::links::PinnedLink::from_pin(&path)
                .ok()
                .and_then(|l| FdLink::from(l).info().ok())
                .map_or(0, |i| i.id());
            std::fs::remove_file(&path).map_err(pin_err)?;
            Some(id)
        } else {
            None
        };
        let attached = if stale.is_some() {
            self.attach_after_stale(iface, mode)?
        } else {
            self.attach_prog(progs::DISPATCH, iface, mode)?
        };
        let Some((_, name, id)) = self.links.pop() else {
            return Ok((
                attached,
                LinkPin::NotPinned {
                    reason: "no link recorded".into(),
                },
            ));
        };
        let link = self
            .xdp(name)?
            .take_link(id)
            .map_err(|source| Error::Program { name, source })?;
        let pinned = FdLink::try_from(link)
            .map_err(|e| format!("not a bpf_link ({e})"))
            .and_then(|fd| fd.pin(&path).map_err(|e| e.to_string()));
        match pinned {
            Ok(p) => {
                self.pinned.push((path.clone(), p));
                Ok((attached, LinkPin::Pinned { path, stale }))
            }
            Err(reason) => {
                // The taken link was dropped with the failure: attach again.
                let attached = self.attach(iface, mode)?;
                Ok((attached, LinkPin::NotPinned { reason }))
            }
        }
    }

    /// Puts this dataplane's dispatcher into the pinned link at `path`
    /// (`BPF_LINK_UPDATE`: the interface runs the old program until the
    /// new one replaces it, never none); the pin stays, now this
    /// dataplane's. Returns the link id.
    fn replace_in_link(&mut self, path: &Path) -> Result<u32, String> {
        use aya::programs::xdp::XdpLink;
        let pinned = aya::programs::links::PinnedLink::from_pin(path).map_err(|e| e.to_string())?;
        let fd = FdLink::from(pinned);
        let id = fd.info().map_err(|e| e.to_string())?.id();
        let link = XdpLink::try_from(fd).map_err(|e| e.to_string())?;
        let prog = self.xdp(progs::DISPATCH).map_err(|e| e.to_string())?;
        let link_id = prog.attach_to_link(link).map_err(|e| format!("bpf_link_update: {e}"))?;
        // The program's copy of the link descriptor is not needed: the pin
        // holds the link, and a fresh handle on it is kept for unpinning.
        drop(prog.take_link(link_id).map_err(|e| e.to_string())?);
        let held = aya::programs::links::PinnedLink::from_pin(path).map_err(|e| e.to_string())?;
        self.pinned.push((path.to_path_buf(), held));
        Ok(id)
    }

    /// Attaches the dispatcher where a predecessor's pin was just removed.
    /// The kernel releases that link asynchronously (a bpffs inode is freed
    /// after an RCU grace period, the link put from a work queue), so the
    /// interface may still hold the old program for a moment: tried again
    /// every 10 ms, for up to a second.
    fn attach_after_stale(&mut self, iface: &str, mode: AttachMode) -> Result<Attached, Error> {
        let mut tries = 0;
        loop {
            match self.attach_prog(progs::DISPATCH, iface, mode) {
                Err(Error::Attach { .. }) if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => {
                    if tries > 0 {
                        tracing::info!(
                            "{iface}: the predecessor's link was gone after {tries} retries"
                        );
                    }
                    return other;
                }
            }
        }
    }

    /// Lets go of the pinned links without removing their pins: they stay
    /// attached, running this dataplane's program on its pinned tables,
    /// for the next process to adopt (a planned restart).
    pub fn keep_pins(&mut self) {
        self.pinned.clear();
        self.tables = None;
    }

    /// Removes the pins of this dataplane's pinned links and detaches them.
    pub(crate) fn unpin_all(&mut self) -> Result<(), Error> {
        for (path, p) in std::mem::take(&mut self.pinned) {
            drop(p.unpin().map_err(|source| Error::Pin { path, source })?);
        }
        if let Some(dir) = self.tables.take() {
            std::fs::remove_dir_all(&dir).map_err(|source| Error::Pin { path: dir, source })?;
        }
        Ok(())
    }
}

impl Drop for Dataplane {
    /// A process that ends normally (an error, a panic that unwinds) takes
    /// its pins along; only one that is killed leaves them behind. Tables
    /// it adopted from a predecessor stay pinned unless it attached (a
    /// start that failed before leaves them to the predecessor's program,
    /// which still runs on them, and to the next start).
    fn drop(&mut self) {
        if self.tables_adopted && self.pinned.is_empty() {
            self.tables = None;
        }
        if let Err(e) = self.unpin_all() {
            tracing::error!("{e}");
        }
    }
}

/// The per-reason packet counts (summed over CPUs) of the program behind
/// the pinned link at `path`: what an orphaned dispatcher, whose daemon is
/// gone, has counted since.
pub fn pinned_reasons(path: &Path) -> Result<Vec<(tandem_common::Reason, u64)>, Error> {
    use aya::maps::{Map, MapData, MapInfo, PerCpuArray};
    let fail = |what: String| Error::Pin {
        path: path.to_path_buf(),
        source: std::io::Error::other(what),
    };
    let link = aya::programs::links::PinnedLink::from_pin(path).map_err(|e| fail(e.to_string()))?;
    let prog_id = FdLink::from(link)
        .info()
        .map_err(|e| fail(e.to_string()))?
        .program_id();
    let prog = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == prog_id)
        .ok_or_else(|| fail(format!("program {prog_id} not loaded")))?;
    let ids = prog
        .map_ids()
        .map_err(|e| fail(e.to_string()))?
        .unwrap_or_default();
    let id = ids
        .into_iter()
        .find(|id| {
            MapInfo::from_id(*id)
                .is_ok_and(|m| m.name_as_str() == Some(tandem_common::maps::REASONS))
        })
        .ok_or_else(|| {
            fail(format!(
                "program {prog_id} has no map {}",
                tandem_common::maps::REASONS
            ))
        })?;
    let map = Map::from_map_data(MapData::from_id(id).map_err(|e| fail(e.to_string()))?)
        .map_err(|e| fail(e.to_string()))?;
    let reasons: PerCpuArray<MapData, u64> = map
        .try_into()
        .map_err(|e: aya::maps::MapError| fail(e.to_string()))?;
    tandem_common::Reason::ALL
        .iter()
        .map(|r| {
            let v = reasons
                .get(&(*r as u32), 0)
                .map_err(|e| fail(e.to_string()))?;
            Ok((*r, v.iter().sum()))
        })
        .collect()
}

/// The kernel's id of the link pinned at `path`.
pub fn pinned_link_id(path: &Path) -> Result<u32, Error> {
    let fail = |what: String| Error::Pin {
        path: path.to_path_buf(),
        source: std::io::Error::other(what),
    };
    let link = aya::programs::links::PinnedLink::from_pin(path).map_err(|e| fail(e.to_string()))?;
    Ok(FdLink::from(link)
        .info()
        .map_err(|e| fail(e.to_string()))?
        .id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_names_the_network_namespace_and_the_interface() {
        let p = pin_path(Path::new(DEFAULT_PIN_DIR), 4026531840, 7);
        assert_eq!(
            p,
            Path::new("/sys/fs/bpf/tandem/netns4026531840-if7-dispatch")
        );
    }

    #[test]
    fn a_directory_off_bpffs_is_refused_without_mounting() {
        let dir = std::env::temp_dir().join(format!("tandem-pin-test-{}", std::process::id()));
        let why = ensure_bpffs(&dir).expect_err("a temporary directory is not on a bpffs");
        assert!(why.contains("is not on a bpffs"), "{why}");
    }
}
