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
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;

/// The link monitor.
pub struct LinkMonitor {
    fd: OwnedFd,
    /// Watched ifindex → (name, up).
    watched: HashMap<u32, (String, bool)>,
    /// A dump requested after an overrun is still coming.
    dumping: bool,
    /// Another overrun came during the dump: ask again when it ends.
    redump: bool,
    /// Watched links the dump under way has listed.
    dumped: Vec<u32>,
    overruns: u64,
    seq: u32,
}

/// Is the interface up with a carrier, from its sysfs `flags`/`carrier`?
fn sysfs_up(name: &str) -> bool {
    let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).unwrap_or_default();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
    let carrier = std::fs::read_to_string(format!("/sys/class/net/{name}/carrier")).unwrap_or_default();
    flags & IFF_UP != 0 && carrier.trim() == "1"
}

impl LinkMonitor {
    /// Subscribes to link notifications and reads the current state of
    /// `interfaces` (name, ifindex).
    pub fn new(interfaces: &[(String, u32)]) -> io::Result<LinkMonitor> {
        // SAFETY: socket(2); the fd is owned right after.
        let raw = unsafe {
            libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; zeroed is valid.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = RTMGRP_LINK;
        // SAFETY: sa is a valid sockaddr_nl of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("binding rtnetlink to RTMGRP_LINK: {e}")));
        }
        let watched = interfaces.iter().map(|(n, i)| (*i, (n.clone(), sysfs_up(n)))).collect();
        let mut m = LinkMonitor { fd, watched, dumping: false, redump: false, dumped: Vec::new(), overruns: 0, seq: 0 };
        // sysfs is a first guess (it shows the links of the namespace it
        // was mounted in); the dump's answers, read with the first
        // notifications, are the kernel's word.
        m.request_dump()?;
        Ok(m)
    }

    /// Receive-queue overruns seen so far (each followed by a dump).
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// Asks the kernel for every link (`RTM_GETLINK` dump); the answers
    /// come as `RTM_NEWLINK` messages on this socket, then `NLMSG_DONE`.
    fn request_dump(&mut self) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        // nlmsghdr (16) + ifinfomsg (16), family AF_UNSPEC: every link.
        let mut req = [0u8; 32];
        req[0..4].copy_from_slice(&32u32.to_ne_bytes());
        req[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // SAFETY: the kernel reads req.len() bytes from req; fd is ours.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr() as *const _, req.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.dumping = true;
        self.dumped.clear();
        Ok(())
    }

    /// Watched interfaces that are down now.
    pub fn down(&self) -> Vec<String> {
        self.watched.values().filter(|(_, up)| !up).map(|(n, _)| n.clone()).collect()
    }

    /// Reads pending notifications (and dump answers); returns the watched
    /// interfaces whose state changed, as (name, up). Bounded: it reads
    /// what is queued now and returns.
    pub fn read_changes(&mut self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16384];
        let mut overrun = false;
        for _ in 0..1024 {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    // Notifications were dropped: what is queued is read
                    // on, and a dump tells the truth afterwards.
                    Some(libc::ENOBUFS) => {
                        overrun = true;
                        continue;
                    }
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => break,
                    _ => {
                        tracing::error!("link monitor: reading rtnetlink: {e}");
                        break;
                    }
                }
            }
            if n == 0 {
                break;
            }
            self.parse(&buf[..n as usize], &mut out);
        }
        if overrun {
            self.overruns += 1;
            tracing::warn!("link monitor: rtnetlink notifications lost (receive queue overrun {}); re-reading every link", self.overruns);
            if self.dumping {
                self.redump = true;
            } else if let Err(e) = self.request_dump() {
                tracing::error!("link monitor: requesting a link dump after an overrun: {e}");
            }
        }
        out
    }

    /// One datagram of netlink messages.
    fn parse(&mut self, buf: &[u8], out: &mut Vec<(String, bool)>) {
        let n = buf.len();
        let mut off = 0usize;
        while off + 16 <= n {
            let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
            let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            if len < 16 || off + len > n {
                break;
            }
            match ty {
                RTM_NEWLINK | RTM_DELLINK if len >= 32 => {
                    let m = &buf[off + 16..off + 32];
                    let index = i32::from_ne_bytes([m[4], m[5], m[6], m[7]]) as u32;
                    let flags = u32::from_ne_bytes([m[8], m[9], m[10], m[11]]);
                    let up = ty == RTM_NEWLINK && flags & IFF_UP != 0 && flags & IFF_LOWER_UP != 0;
                    if self.dumping && ty == RTM_NEWLINK && self.watched.contains_key(&index) {
                        self.dumped.push(index);
                    }
                    if let Some((name, was)) = self.watched.get_mut(&index)
                        && *was != up
                    {
                        *was = up;
                        out.push((name.clone(), up));
                    }
                }
                NLMSG_ERROR if self.dumping && len >= 20 => {
                    let errno = i32::from_ne_bytes([buf[off + 16], buf[off + 17], buf[off + 18], buf[off + 19]]);
                    if errno != 0 {
                        self.dumping = false;
                        tracing::error!("link monitor: the link dump failed: {}", io::Error::from_raw_os_error(-errno));
                    }
                }
                NLMSG_DONE if self.dumping => {
                    // A watched link absent from a finished dump is gone.
                    self.dumping = false;
                    for (index, (name, up)) in self.watched.iter_mut() {
                        if *up && !self.dumped.contains(index) {
                            *up = false;
                            out.push((name.clone(), false));
                        }
                    }
                    if std::mem::take(&mut self.redump)
                        && let Err(e) = self.request_dump()
                    {
                        tracing::error!("link monitor: requesting a link dump: {e}");
                    }
                }
                _ => {}
            }
            off += (len + 3) & !3;
        }
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
