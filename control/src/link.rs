//! Watches the links of the service interfaces over rtnetlink
//! (`RTMGRP_LINK` notifications): an interface that goes administratively
//! down or loses its carrier is a local fault for the pair state machine
//! (the active hands over through the heartbeat link), and its return
//! clears it. Non-blocking: the daemon polls `fd()` in its io_uring loop
//! and calls `read_changes`.

use std::{
    collections::HashMap,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;

/// The link monitor.
pub struct LinkMonitor {
    fd: OwnedFd,
    /// Watched ifindex → (name, up).
    watched: HashMap<u32, (String, bool)>,
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
        Ok(LinkMonitor { fd, watched })
    }

    /// Watched interfaces that are down now.
    pub fn down(&self) -> Vec<String> {
        self.watched.values().filter(|(_, up)| !up).map(|(n, _)| n.clone()).collect()
    }

    /// Reads pending notifications; returns the watched interfaces whose
    /// state changed, as (name, up).
    pub fn read_changes(&mut self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16384];
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len(), libc::MSG_DONTWAIT) };
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            let n = n as usize;
            while off + 16 <= n {
                let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
                let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                if len < 16 || off + len > n {
                    break;
                }
                if (ty == RTM_NEWLINK || ty == RTM_DELLINK) && len >= 32 {
                    let m = &buf[off + 16..off + 32];
                    let index = i32::from_ne_bytes([m[4], m[5], m[6], m[7]]) as u32;
                    let flags = u32::from_ne_bytes([m[8], m[9], m[10], m[11]]);
                    let up = ty == RTM_NEWLINK && flags & IFF_UP != 0 && flags & IFF_LOWER_UP != 0;
                    if let Some((name, was)) = self.watched.get_mut(&index)
                        && *was != up
                    {
                        *was = up;
                        out.push((name.clone(), up));
                    }
                }
                off += (len + 3) & !3;
            }
        }
        out
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
