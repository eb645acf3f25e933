//! Mounting a simulated card, and getting rid of the mount again.
//!
//! This module owns the lifetime of one FUSE mount: [`MountedCard`] mounts
//! the card's filesystem on a directory (as root, directly with mount(2), no
//! libfuse), serves it from a background thread, and unmounts it when it is
//! dropped — also while a test unwinds from a panic. Unmounting never waits
//! without bound: a busy mount is detached lazily, and the serving thread is
//! given a deadline to finish. Once a card is being unmounted, files still
//! open on it answer `ENODEV` (as DAHDI's do after a surprise removal).
//!
//! It only ever unmounts the directory it mounted, or (in
//! [`clean_stale_mount`]) a mount on the caller's own mount point whose
//! server is gone.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};

use super::fs::{CardFs, SharedWorld, lock};

/// How long an unmount waits for the serving thread to finish.
const UNMOUNT_DEADLINE: Duration = Duration::from_secs(5);

/// Mount options for a simulated card.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// Let users other than the mounting one open the files (`allow_other`).
    pub allow_other: bool,
}

/// Mounting or unmounting failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{}: cannot mount card {card}: {source}", path.display())]
    Mount {
        path: PathBuf,
        card: usize,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot unmount: {errno}", path.display())]
    Unmount { path: PathBuf, errno: Errno },
    #[error("{}: the FUSE server thread did not stop within {:?}", path.display(), UNMOUNT_DEADLINE)]
    Stuck { path: PathBuf },
}

/// One card's filesystem, mounted and served until dropped.
pub struct MountedCard {
    path: PathBuf,
    card: usize,
    world: SharedWorld,
    gone: Arc<AtomicBool>,
    session: Option<BackgroundSession>,
}

impl std::fmt::Debug for MountedCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountedCard")
            .field("path", &self.path)
            .field("card", &self.card)
            .field("mounted", &self.session.is_some())
            .finish()
    }
}

impl MountedCard {
    pub(crate) fn mount(
        world: SharedWorld,
        card: usize,
        path: &Path,
        options: MountOptions,
    ) -> Result<MountedCard, MountError> {
        let path = path.to_owned();
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName(format!("tandem-cardsim{card}")),
            MountOption::Subtype("tandem-cardsim".into()),
            MountOption::NoExec,
            MountOption::NoAtime,
        ];
        config.acl = if options.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        let gone = Arc::new(AtomicBool::new(false));
        let fs = CardFs::new(world.clone(), card, gone.clone());
        let session =
            fuser::spawn_mount(fs, &path, &config).map_err(|source| MountError::Mount {
                path: path.clone(),
                card,
                source,
            })?;
        tracing::info!(card, path = %path.display(), "card mounted");
        Ok(MountedCard {
            path,
            card,
            world,
            gone,
            session: Some(session),
        })
    }

    /// The mount point: the card's device root (`ctl`, `channel`, `chan/`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which simulated card this mount serves.
    pub fn card(&self) -> usize {
        self.card
    }

    /// Unmount now and report how it went (dropping does the same, silently).
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), MountError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // From now on, files still open answer ENODEV, and pollers wake to see it.
        self.gone.store(true, Ordering::SeqCst);
        lock(&self.world).wake_card(self.card);

        // A plain unmount works when no file is open; otherwise detach lazily:
        // the kernel ends the connection (and the server thread) when the last
        // file closes, so there is nothing to wait for here.
        let unmounted = match umount2(&self.path, MntFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::EBUSY) => umount2(&self.path, MntFlags::MNT_DETACH).map(|()| false),
            // Already gone (unmounted by someone, or the server died).
            Err(Errno::EINVAL | Errno::ENOENT) => Ok(true),
            Err(e) => Err(e),
        };
        let finished = match unmounted {
            Ok(finished) => finished,
            Err(errno) => {
                // Dropping the session still tries its own unmount.
                drop(session);
                return Err(MountError::Unmount {
                    path: self.path.clone(),
                    errno,
                });
            }
        };
        if !finished {
            tracing::info!(card = self.card, path = %self.path.display(), "card detached; files still open answer ENODEV");
            drop(session);
            return Ok(());
        }
        let deadline = Instant::now() + UNMOUNT_DEADLINE;
        while !session.guard.is_finished() {
            if Instant::now() >= deadline {
                // Leave the thread to the process; it ends with the connection.
                tracing::warn!(path = %self.path.display(), "FUSE server thread still running after unmount");
                drop(session);
                return Err(MountError::Stuck {
                    path: self.path.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Err(e) = session.join() {
            tracing::warn!(path = %self.path.display(), error = %e, "FUSE server ended with an error");
        }
        tracing::info!(card = self.card, path = %self.path.display(), "card unmounted");
        Ok(())
    }
}

impl Drop for MountedCard {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "unmount on drop");
        }
    }
}

/// If `path` is a FUSE mount whose server is gone (`ENOTCONN`), detach it.
/// Returns whether it did. Anything else at `path` is left alone.
pub fn clean_stale_mount(path: &Path) -> Result<bool, MountError> {
    match std::fs::metadata(path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            umount2(path, MntFlags::MNT_DETACH).map_err(|errno| MountError::Unmount {
                path: path.to_owned(),
                errno,
            })?;
            tracing::info!(path = %path.display(), "stale mount detached");
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Whether `path` is a mount point in this process's mount namespace.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let Some(wanted) = path.to_str() else {
        return false;
    };
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| unescape_mountinfo(mount_point) == wanted)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/trailing\\04"), "/trailing\\04");
    }

    #[test]
    fn root_is_a_mount_point_and_a_fresh_name_is_not() {
        assert!(is_mount_point(Path::new("/")));
        assert!(!is_mount_point(Path::new("/nonexistent/tandem-cardsim")));
    }
}

/// A temporary directory for mount points (tests and labs): created under
/// the system's temporary directory with `tag` in its name, removed on
/// drop — but only once nothing is mounted in it, so that nothing under a
/// live mount is ever removed.
pub struct MountScratch(std::path::PathBuf);

impl MountScratch {
    pub fn new(tag: &str) -> std::io::Result<MountScratch> {
        let template = std::env::temp_dir().join(format!("tandem-{tag}-XXXXXX"));
        nix::unistd::mkdtemp(&template)
            .map(MountScratch)
            .map_err(std::io::Error::from)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// A new directory `name` in it (a mount point).
    pub fn subdir(&self, name: &str) -> std::io::Result<std::path::PathBuf> {
        let path = self.0.join(name);
        std::fs::create_dir(&path)?;
        Ok(path)
    }
}

impl Drop for MountScratch {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if is_mount_point(&path) {
                return;
            }
            let _ = std::fs::remove_dir(&path).or_else(|_| std::fs::remove_file(&path));
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}
