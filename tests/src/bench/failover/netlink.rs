//! Setting links up and down from a NETLINK_ROUTE socket opened beforehand
//! inside a director's namespace, so that a failure lands within
//! microseconds of T0 (spawning `ip` would take milliseconds). The socket
//! and the RTM_NEWLINK request are tandem's one rtnetlink layer
//! (`tandem_control::net`); one request, one acknowledgement, no pipeline
//! to wait on. It changes nothing but IFF_UP.

use std::time::Duration;

use anyhow::{Context, Result};
use tandem_control::net::{self, RouteSocket};

use crate::lab::netns;

/// A NETLINK_ROUTE socket opened inside one director's namespace: sets
/// links up and down in microseconds, without spawning `ip`.
pub(super) struct LinkSetter {
    sock: RouteSocket,
}

impl LinkSetter {
    pub(super) fn open(ns: &str) -> Result<LinkSetter> {
        let sock = netns::try_in_netns(ns, || RouteSocket::open(Duration::from_secs(1)))?
            .with_context(|| format!("socket(NETLINK_ROUTE) in {ns}"))?;
        Ok(LinkSetter { sock })
    }

    /// RTM_NEWLINK with IFF_UP changed; waits for the kernel's ack.
    pub(super) fn set(&mut self, ifindex: u32, up: bool) -> Result<()> {
        net::link::set_up(&mut self.sock, ifindex, up).with_context(|| {
            format!(
                "rtnetlink: setting link {ifindex} {}",
                if up { "up" } else { "down" }
            )
        })
    }
}
