//! A bpffs mounted by a test or a bench at a directory of its own, for the
//! pins of a pair: a daemon started under `ip netns exec` sees no bpffs at
//! `/sys/fs/bpf` (the command remounts `/sys` for the namespace), so
//! without one its XDP link is not pinned and dies with it. The mount is
//! made before the daemons start, so their mount namespaces share it.
//! Unmounting it on drop releases whatever is still pinned.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A mounted bpffs; the pair's `dataplane.pin_dir` is [`Bpffs::pin_dir`].
pub struct Bpffs(pub PathBuf);

impl Bpffs {
    /// Mounts a bpffs at `at` (made if missing), mode 0700.
    pub fn mount(at: impl AsRef<Path>) -> Result<Bpffs> {
        let at = at.as_ref();
        std::fs::create_dir_all(at).with_context(|| format!("the bpffs mount point {}", at.display()))?;
        nix::mount::mount(Some("bpf"), at, Some("bpf"), nix::mount::MsFlags::empty(), Some("mode=0700"))
            .with_context(|| format!("mounting a bpffs at {}", at.display()))?;
        Ok(Bpffs(at.to_path_buf()))
    }

    /// The directory the pair pins in (tandemd makes it).
    pub fn pin_dir(&self) -> PathBuf {
        self.0.join("tandem")
    }

    /// The pins under [`Bpffs::pin_dir`], sorted.
    pub fn pins(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.pin_dir())
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("unmounting the bpffs at {}: {e}", self.0.display());
        }
    }
}
