//! The lab library's one error type: every variant names what failed (the
//! command and its stderr, the namespace, the address) so a failing test says
//! why without a rerun.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command could not be started at all (not installed, not on PATH).
    #[error(
        "cannot run `{cmd}`: {source} (is it installed? `cargo xtask setup` installs the lab's tools)"
    )]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    /// A command's output was not what we expected.
    #[error("cannot parse the output of `{cmd}`: {what}")]
    Parse { cmd: String, what: String },
    /// Entering a network namespace failed.
    #[error("cannot enter network namespace {ns}: {what}")]
    Netns { ns: String, what: String },
    /// A host name the lab does not have.
    #[error("lab {lab} has no host {host:?} (hosts: {known})")]
    UnknownHost {
        lab: String,
        host: String,
        known: String,
    },
    /// A host interface the lab does not have.
    #[error("host {host} has no interface {iface:?}")]
    UnknownIface { host: String, iface: String },
    /// A lab option out of range.
    #[error("bad lab option {field}: {value}")]
    BadOption { field: &'static str, value: String },
    /// A socket operation inside a namespace failed.
    #[error("{what} in namespace {ns}: {source}")]
    Io {
        what: String,
        ns: String,
        #[source]
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("no reply from {dst} in namespace {ns} within {after:?}")]
    Timeout {
        ns: String,
        dst: SocketAddr,
        after: Duration,
    },
}

impl LabError {
    pub(crate) fn io(what: impl Into<String>, ns: &str, source: std::io::Error) -> Self {
        LabError::Io {
            what: what.into(),
            ns: ns.to_owned(),
            source,
        }
    }
}
