//! What can go wrong talking to a card: [`Error`], which names the device
//! path, the ioctl and the errno, and the crate's [`Result`].
//!
//! This module owns the error vocabulary of the driver. It must not retry,
//! log or interpret errors: callers decide what an errno means to them.

use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// What went wrong talking to a card.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device file could not be opened.
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The driver refused an ioctl.
    #[error("{}: {ioctl} failed: {errno}", path.display())]
    Ioctl {
        path: PathBuf,
        ioctl: &'static str,
        errno: Errno,
    },
    /// Waiting for a channel event failed, or the device reported an error condition.
    #[error("{}: waiting for a channel event: {reason}", path.display())]
    Poll { path: PathBuf, reason: String },
    /// An argument the driver would reject anyway, caught before the call.
    #[error("{}: {ioctl}: {field} = {value} is out of range", path.display())]
    Argument {
        path: PathBuf,
        ioctl: &'static str,
        field: &'static str,
        value: i64,
    },
}

impl Error {
    /// The errno behind this error, if the kernel (or the simulator) gave one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Open { source, .. } => source.raw_os_error().map(Errno::from_raw),
            Error::Ioctl { errno, .. } => Some(*errno),
            Error::Poll { .. } | Error::Argument { .. } => None,
        }
    }
}

/// Result of a card operation.
pub type Result<T> = std::result::Result<T, Error>;

/// The error for `ioctl` failing with `errno` on the node at `path`.
pub(super) fn ioctl_error(path: &Path, ioctl: &'static str, errno: Errno) -> Error {
    Error::Ioctl {
        path: path.to_owned(),
        ioctl,
        errno,
    }
}
