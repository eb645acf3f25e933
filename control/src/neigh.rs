//! Real servers' MAC addresses from the kernel's neighbour table, for the
//! real servers whose `mac` the file leaves out: the XDP program rewrites
//! a dispatched frame's destination MAC to its real server's, and an IVR
//! whose NIC is replaced must not silently stop getting calls.
//!
//! - [`NeighTable`] (sans-IO) keeps what the kernel says of the wanted
//!   addresses and decides what changed ([`MacChange`]) and which address
//!   to nudge next.
//! - [`NeighMonitor`] moves it: it subscribes to `RTMGRP_NEIGH`, asks for
//!   a dump at start and after a receive-queue overrun, and nudges the
//!   kernel with one datagram to the real server's discard port (UDP 9)
//!   every [`NUDGE_EVERY`]: that makes the kernel resolve an address it
//!   does not know, and keeps verifying the ones it knows (XDP forwards
//!   without the stack, so nothing else would use the entries: they would
//!   go stale and be collected). A MAC that changes is announced by the
//!   real server's gratuitous ARP, or found by the kernel's own probes.
//!
//! Non-blocking: the daemon polls the socket in its loop and nudges from
//! a timer.

use std::{
    collections::{BTreeSet, HashMap},
    io,
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::{AsRawFd, RawFd},
    time::{Duration, Instant},
};

use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR};

use crate::net::{
    self, Message, RouteSocket,
    neigh::{NeighNotice, RTMGRP_NEIGH},
    resync::Resync,
};

/// How often each wanted address is nudged.
pub const NUDGE_EVERY: Duration = Duration::from_millis(500);

/// A wanted address's MAC changed (None: not known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacChange {
    pub addr: IpAddr,
    pub before: Option<[u8; 6]>,
    pub after: Option<[u8; 6]>,
}

/// What the kernel says of the wanted addresses (no I/O).
#[derive(Debug, Default)]
pub struct NeighTable {
    known: HashMap<IpAddr, [u8; 6]>,
    wanted: BTreeSet<IpAddr>,
    /// When each wanted address was last nudged.
    nudged: HashMap<IpAddr, Instant>,
    /// MAC changes of known addresses seen so far.
    pub changes: u64,
}

impl NeighTable {
    /// The addresses whose MAC is wanted (the others are not kept).
    pub fn set_wanted(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        self.wanted = addrs.into_iter().collect();
        self.known.retain(|a, _| self.wanted.contains(a));
        self.nudged.retain(|a, _| self.wanted.contains(a));
    }

    pub fn wanted(&self) -> &BTreeSet<IpAddr> {
        &self.wanted
    }

    /// The MAC of `addr`, when the kernel knows it.
    pub fn mac(&self, addr: IpAddr) -> Option<[u8; 6]> {
        self.known.get(&addr).copied()
    }

    /// Takes `mac` for a wanted `addr` not yet known, as it was before
    /// this process started (a restart's adopted tables): no change is
    /// reported, and the kernel's neighbour table corrects it if it is
    /// wrong.
    pub fn seed(&mut self, addr: IpAddr, mac: [u8; 6]) {
        if self.wanted.contains(&addr) && mac != [0; 6] {
            self.known.entry(addr).or_insert(mac);
        }
    }

    /// Takes one notice; the change it makes to a wanted address, if any.
    pub fn apply(&mut self, n: NeighNotice) -> Option<MacChange> {
        let addr = n.addr();
        if !self.wanted.contains(&addr) {
            return None;
        }
        let before = self.known.get(&addr).copied();
        let after = match n {
            NeighNotice::Known { mac, .. } => Some(mac),
            NeighNotice::Unknown { .. } => None,
        };
        if before == after {
            return None;
        }
        match after {
            Some(m) => self.known.insert(addr, m),
            None => self.known.remove(&addr),
        };
        if before.is_some() && after.is_some() {
            self.changes += 1;
        }
        Some(MacChange { addr, before, after })
    }

    /// The wanted addresses due for a nudge at `now` (marked nudged).
    pub fn due(&mut self, now: Instant) -> Vec<IpAddr> {
        let due: Vec<IpAddr> = self
            .wanted
            .iter()
            .filter(|a| self.nudged.get(a).is_none_or(|t| now.saturating_duration_since(*t) >= NUDGE_EVERY))
            .copied()
            .collect();
        for a in &due {
            self.nudged.insert(*a, now);
        }
        due
    }
}

/// The addresses of the real servers whose MAC is not configured (all
/// zeros in the dataplane's form).
pub fn unresolved(services: &[tandem_dataplane::ServiceConfig]) -> BTreeSet<IpAddr> {
    services
        .iter()
        .flat_map(|s| &s.reals)
        .filter(|r| r.mac == [0; 6])
        .map(|r| r.addr)
        .collect()
}

/// The neighbour monitor: the table, fed from rtnetlink.
pub struct NeighMonitor {
    sock: RouteSocket,
    pub table: NeighTable,
    nudge4: Option<UdpSocket>,
    nudge6: Option<UdpSocket>,
    resync: Resync,
}

impl NeighMonitor {
    /// Subscribes to neighbour notifications and asks for the table.
    pub fn new() -> io::Result<NeighMonitor> {
        let sock = RouteSocket::subscribe(RTMGRP_NEIGH)
            .map_err(|e| io::Error::new(e.kind(), format!("binding rtnetlink to RTMGRP_NEIGH: {e}")))?;
        let open = |bind: &str| {
            UdpSocket::bind(bind).and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            })
        };
        let mut m = NeighMonitor {
            sock,
            table: NeighTable::default(),
            nudge4: open("0.0.0.0:0").ok(),
            nudge6: open("[::]:0").ok(),
            resync: Resync::default(),
        };
        m.request_dump()?;
        Ok(m)
    }

    /// Wants the MACs of `addrs` from now on; a dump is asked for when
    /// one is new (the kernel tells changes only, and may know it already).
    pub fn want(&mut self, addrs: BTreeSet<IpAddr>) {
        let new = addrs.iter().any(|a| !self.table.wanted().contains(a));
        self.table.set_wanted(addrs);
        if new && self.resync.want() {
            self.dump("the wanted addresses changed");
        }
    }

    fn request_dump(&mut self) -> io::Result<()> {
        net::neigh::request_dump(&mut self.sock)?;
        self.resync.asked();
        Ok(())
    }

    /// Asks for a dump; a failure is logged with `why` it was wanted.
    fn dump(&mut self, why: &str) {
        if let Err(e) = self.request_dump() {
            tracing::error!("neighbour monitor: requesting a dump ({why}): {e}");
        }
    }

    /// Reads pending notifications (and dump answers); the changes to
    /// wanted addresses. Bounded: it reads what is queued now.
    pub fn read_changes(&mut self) -> Vec<MacChange> {
        let mut out = Vec::new();
        let (datagrams, overrun) = self.sock.drain("neighbour monitor");
        for datagram in &datagrams {
            for m in net::messages(datagram) {
                self.handle(&m, &mut out);
            }
        }
        if overrun {
            let now = self.resync.lost();
            tracing::warn!(
                "neighbour monitor: rtnetlink notifications lost (receive queue overrun {}); re-reading the table",
                self.resync.overruns()
            );
            if now {
                self.dump("after an overrun");
            }
        }
        out
    }

    fn handle(&mut self, m: &Message<'_>, out: &mut Vec<MacChange>) {
        if let Some(n) = net::neigh::notice(m) {
            out.extend(self.table.apply(n));
            return;
        }
        match m.kind {
            NLMSG_ERROR if self.resync.dumping() => {
                if let Some(Err(e)) = m.ack() {
                    self.resync.failed();
                    tracing::error!("neighbour monitor: the neighbour dump failed: {e}");
                }
            }
            NLMSG_DONE if self.resync.dumping() => {
                if self.resync.ended() {
                    self.dump("wanted during the last one");
                }
            }
            _ => {}
        }
    }

    /// Nudges the wanted addresses that are due (one byte to UDP port 9
    /// each; a send that fails is retried at the next nudge).
    pub fn nudge(&mut self, now: Instant) {
        for addr in self.table.due(now) {
            let sock = match addr {
                IpAddr::V4(_) => self.nudge4.as_ref(),
                IpAddr::V6(_) => self.nudge6.as_ref(),
            };
            if let Some(s) = sock
                && let Err(e) = s.send_to(&[0], SocketAddr::new(addr, 9))
            {
                tracing::debug!("neighbour monitor: nudging {addr}: {e}");
            }
        }
    }
}

impl AsRawFd for NeighMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 21));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 22));

    #[test]
    fn only_wanted_addresses_change_and_a_new_mac_is_counted() {
        let mut t = NeighTable::default();
        t.set_wanted([A]);
        let known = |mac| NeighNotice::Known { ifindex: 2, addr: A, mac };
        assert_eq!(t.apply(NeighNotice::Known { ifindex: 2, addr: B, mac: [2; 6] }), None, "not wanted");
        assert_eq!(t.apply(known([2, 0, 0, 0, 0, 1])), Some(MacChange { addr: A, before: None, after: Some([2, 0, 0, 0, 0, 1]) }));
        assert_eq!(t.apply(known([2, 0, 0, 0, 0, 1])), None, "the same again");
        assert_eq!(t.changes, 0);
        assert_eq!(
            t.apply(known([2, 0, 0, 0, 0, 9])),
            Some(MacChange { addr: A, before: Some([2, 0, 0, 0, 0, 1]), after: Some([2, 0, 0, 0, 0, 9]) })
        );
        assert_eq!(t.changes, 1);
        assert_eq!(t.mac(A), Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(t.apply(NeighNotice::Unknown { ifindex: 2, addr: A }).map(|c| c.after), Some(None));
        assert_eq!(t.mac(A), None);
        t.set_wanted([B]);
        assert!(t.wanted().contains(&B) && !t.wanted().contains(&A));
    }

    #[test]
    fn each_wanted_address_is_nudged_once_per_period() {
        let mut t = NeighTable::default();
        t.set_wanted([A, B]);
        let t0 = Instant::now();
        assert_eq!(t.due(t0), vec![A, B]);
        assert!(t.due(t0 + NUDGE_EVERY / 2).is_empty());
        assert_eq!(t.due(t0 + NUDGE_EVERY), vec![A, B]);
    }
}
