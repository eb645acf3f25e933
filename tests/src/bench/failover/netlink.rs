//! Setting links up and down from a NETLINK_ROUTE socket opened beforehand
//! inside a director's namespace, so that a failure lands within
//! microseconds of T0 (spawning `ip` would take milliseconds). Its own
//! minimal RTM_NEWLINK encoder: the bench must not wait on a library's
//! request pipeline; it changes nothing but IFF_UP.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Result, bail};

use super::os::{cvt, set_timeout};
use crate::lab::netns;

/// A NETLINK_ROUTE socket opened inside one director's namespace: sets
/// links up and down in microseconds, without spawning `ip`.
pub(super) struct LinkSetter {
    pub(super) fd: OwnedFd,
    pub(super) seq: u32,
}

impl LinkSetter {
    pub(super) fn open(ns: &str) -> Result<LinkSetter> {
        let fd = netns::try_in_netns(ns, || -> Result<OwnedFd> {
            // SAFETY: socket(2); the fd is owned right after.
            let raw = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::NETLINK_ROUTE,
                )
            };
            cvt(raw, "socket(NETLINK_ROUTE)")?;
            // SAFETY: raw is a fresh fd nobody else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(raw) })
        })??;
        set_timeout(fd.as_raw_fd(), libc::SO_RCVTIMEO, Duration::from_secs(1))?;
        Ok(LinkSetter { fd, seq: 1 })
    }

    /// RTM_NEWLINK with IFF_UP changed; waits for the kernel's ack.
    pub(super) fn set(&mut self, ifindex: u32, up: bool) -> Result<()> {
        self.seq += 1;
        let mut m = Vec::with_capacity(32);
        m.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
        m.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
        m.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes()); // pid
        m.push(libc::AF_UNSPEC as u8); // ifi_family
        m.push(0);
        m.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
        m.extend_from_slice(&(ifindex as i32).to_ne_bytes());
        let flags: u32 = if up { libc::IFF_UP as u32 } else { 0 };
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_change
        // SAFETY: m is a valid buffer of m.len() bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), m.as_ptr().cast(), m.len(), 0) };
        if n < 0 {
            bail!("rtnetlink send: {}", std::io::Error::last_os_error());
        }
        let mut buf = [0u8; 4096];
        for _ in 0..8 {
            // SAFETY: buf is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                bail!("rtnetlink ack: {}", std::io::Error::last_os_error());
            }
            let n = n as usize;
            if n < 20 {
                continue;
            }
            let ty = u16::from_ne_bytes([buf[4], buf[5]]);
            let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
            if ty == libc::NLMSG_ERROR as u16 && seq == self.seq {
                let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
                if err != 0 {
                    bail!(
                        "rtnetlink: setting link {ifindex} {}: {}",
                        if up { "up" } else { "down" },
                        std::io::Error::from_raw_os_error(-err)
                    );
                }
                return Ok(());
            }
        }
        bail!("rtnetlink: no ack for link {ifindex}")
    }
}
