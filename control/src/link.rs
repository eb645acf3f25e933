//! Watches the links of the service interfaces over rtnetlink
//! (`RTMGRP_LINK` notifications): an interface that goes administratively
//! down or loses its carrier is a local fault for the pair state machine
//! (the active hands over through the heartbeat link), and its return
//! clears it. Non-blocking: the daemon polls `fd()` in its io_uring loop
//! and calls `read_changes`.
//!
//! Notifications can be lost: when the socket's receive queue overflows,
//! the kernel drops them and the next read fails with `ENOBUFS`. The
//! monitor then asks for a dump of every link (`RTM_GETLINK`, which the
//! kernel paces to the reader, so it cannot overflow) and takes the state
//! of the watched links from it: a missed change is found, never kept
//! wrong. Overruns are counted ([`LinkMonitor::overruns`]).

use std::{
    collections::HashMap,
    io,
    os::fd::{AsRawFd, RawFd},
};

use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR};

use crate::net::{
    self, Message, RouteSocket,
    link::{LinkNotice, RTMGRP_LINK},
    resync::Resync,
};

/// `IFF_UP`, in the sysfs `flags` of an interface.
const IFF_UP: u32 = libc::IFF_UP as u32;

/// The link monitor.
pub struct LinkMonitor {
    sock: RouteSocket,
    /// Watched ifindex → (name, up).
    watched: HashMap<u32, (String, bool)>,
    /// The dumps asked for after overruns.
    resync: Resync,
    /// Watched links the dump under way has listed.
    dumped: Vec<u32>,
}

/// Is the interface up with a carrier, from its sysfs `flags`/`carrier`?
fn sysfs_up(name: &str) -> bool {
    let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).unwrap_or_default();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
    let carrier =
        std::fs::read_to_string(format!("/sys/class/net/{name}/carrier")).unwrap_or_default();
    flags & IFF_UP != 0 && carrier.trim() == "1"
}

impl LinkMonitor {
    /// Subscribes to link notifications and reads the current state of
    /// `interfaces` (name, ifindex).
    pub fn new(interfaces: &[(String, u32)]) -> io::Result<LinkMonitor> {
        let sock = RouteSocket::subscribe(RTMGRP_LINK).map_err(|e| {
            io::Error::new(e.kind(), format!("binding rtnetlink to RTMGRP_LINK: {e}"))
        })?;
        let watched = interfaces
            .iter()
            .map(|(n, i)| (*i, (n.clone(), sysfs_up(n))))
            .collect();
        let mut m = LinkMonitor {
            sock,
            watched,
            resync: Resync::default(),
            dumped: Vec::new(),
        };
        // sysfs is a first guess (it shows the links of the namespace it
        // was mounted in); the dump's answers, read with the first
        // notifications, are the kernel's word.
        m.request_dump()?;
        Ok(m)
    }

    /// Receive-queue overruns seen so far (each followed by a dump).
    pub fn overruns(&self) -> u64 {
        self.resync.overruns()
    }

    /// Asks the kernel for every link (`RTM_GETLINK` dump); the answers
    /// come as `RTM_NEWLINK` messages on this socket, then `NLMSG_DONE`.
    fn request_dump(&mut self) -> io::Result<()> {
        net::link::request_dump(&mut self.sock)?;
        self.resync.asked();
        self.dumped.clear();
        Ok(())
    }

    /// Watched interfaces that are down now.
    pub fn down(&self) -> Vec<String> {
        self.watched
            .values()
            .filter(|(_, up)| !up)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Reads pending notifications (and dump answers); returns the watched
    /// interfaces whose state changed, as (name, up). Bounded: it reads
    /// what is queued now and returns.
    pub fn read_changes(&mut self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let (datagrams, overrun) = self.sock.drain("link monitor");
        for datagram in &datagrams {
            for m in net::messages(datagram) {
                self.handle(&m, &mut out);
            }
        }
        if overrun {
            let now = self.resync.lost();
            tracing::warn!(
                "link monitor: rtnetlink notifications lost (receive queue overrun {}); re-reading every link",
                self.resync.overruns()
            );
            if now && let Err(e) = self.request_dump() {
                tracing::error!("link monitor: requesting a link dump after an overrun: {e}");
            }
        }
        out
    }

    /// One netlink message: a link's state, or the end (or failure) of the
    /// dump under way.
    fn handle(&mut self, m: &Message<'_>, out: &mut Vec<(String, bool)>) {
        if let Some(notice) = net::link::notice(m) {
            let index = notice.index();
            let up = notice.is_up();
            if self.resync.dumping()
                && matches!(notice, LinkNotice::Present { .. })
                && self.watched.contains_key(&index)
            {
                self.dumped.push(index);
            }
            if let Some((name, was)) = self.watched.get_mut(&index)
                && *was != up
            {
                *was = up;
                out.push((name.clone(), up));
            }
            return;
        }
        match m.kind {
            NLMSG_ERROR if self.resync.dumping() => {
                if let Some(Err(e)) = m.ack()
                    && e.raw_os_error().is_some()
                {
                    self.resync.failed();
                    tracing::error!("link monitor: the link dump failed: {e}");
                }
            }
            NLMSG_DONE if self.resync.dumping() => {
                // A watched link absent from a finished dump is gone.
                let again = self.resync.ended();
                for (index, (name, up)) in self.watched.iter_mut() {
                    if *up && !self.dumped.contains(index) {
                        *up = false;
                        out.push((name.clone(), false));
                    }
                }
                if again
                    && let Err(e) = self.request_dump()
                {
                    tracing::error!("link monitor: requesting a link dump: {e}");
                }
            }
            _ => {}
        }
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}
