//! The witness probe: an ICMP echo to an address on the service network.
//! A standby that lost its peer on every path takes over only if it can
//! still reach the witness; if it cannot, it is the one cut off, and
//! taking over would make a second active on an isolated segment.
//!
//! Non-blocking: `send` fires a request, the caller polls `fd()` for
//! readability (the daemon's io_uring loop) and calls `check_reply`, which
//! answers with the send time of the newest answered request; the deadline
//! is the caller's timer. The daemon probes continuously while it stands
//! by, so that a takeover can rely on a probe answered after the peer went
//! silent instead of waiting for a new round trip (see `tandemd`'s
//! `ProbeWitness`). Raw ICMP socket, so root only.

use std::{
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    time::Instant,
};

/// An ICMP echo prober for one witness address.
pub struct Witness {
    fd: OwnedFd,
    addr: Ipv4Addr,
    id: u16,
    seq: u16,
    /// Send times of the last requests, indexed by `seq % SENT`.
    sent: [(u16, Option<Instant>); SENT],
}

/// How many outstanding requests a late reply can still be matched to.
const SENT: usize = 64;

/// The Internet checksum (RFC 1071), shared with the dataplane's frame builder.
use tandem_dataplane::packet::checksum as internet_checksum;

fn checksum(b: &[u8]) -> u16 {
    internet_checksum(&[b])
}

impl Witness {
    pub fn new(addr: Ipv4Addr) -> io::Result<Witness> {
        // SAFETY: plain socket(2) call; the fd is owned right after.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("witness {addr}: raw ICMP socket: {e}"),
            ));
        }
        // SAFETY: fd is a new, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Witness {
            fd,
            addr,
            id: (std::process::id() & 0xffff) as u16,
            seq: 0,
            sent: [(0, None); SENT],
        })
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Sends one echo request; returns its sequence number.
    pub fn send(&mut self) -> io::Result<u16> {
        self.seq = self.seq.wrapping_add(1);
        let mut pkt = [0u8; 16];
        pkt[0] = 8; // echo request
        pkt[4..6].copy_from_slice(&self.id.to_be_bytes());
        pkt[6..8].copy_from_slice(&self.seq.to_be_bytes());
        pkt[8..16].copy_from_slice(b"tandem!!");
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(self.addr.octets()),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: pkt and sa are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                pkt.as_ptr() as *const _,
                pkt.len(),
                0,
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("witness {}: sending echo: {e}", self.addr),
            ));
        }
        self.sent[usize::from(self.seq) % SENT] = (self.seq, Some(Instant::now()));
        Ok(self.seq)
    }

    /// Reads pending replies; the send time of the newest request that one
    /// of them answers (None if none answers a recent request).
    pub fn check_reply(&mut self) -> Option<Instant> {
        let mut buf = [0u8; 1500];
        let mut newest: Option<Instant> = None;
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut _,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                return newest;
            }
            let n = n as usize;
            if n < 20 {
                continue;
            }
            let ihl = (buf[0] & 0x0f) as usize * 4;
            if n < ihl + 8 || buf[12..16] != self.addr.octets() {
                continue;
            }
            let icmp = &buf[ihl..n];
            let id = u16::from_be_bytes([icmp[4], icmp[5]]);
            let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
            if icmp[0] != 0 || id != self.id {
                continue;
            }
            if let (s, Some(at)) = self.sent[usize::from(seq) % SENT]
                && s == seq
            {
                newest = Some(newest.map_or(at, |n| n.max(at)));
            }
        }
    }

    /// Blocking probe with a deadline (tests and the first decision at start).
    pub fn probe_blocking(&mut self, timeout: std::time::Duration) -> io::Result<bool> {
        self.send()?;
        let asked = self.sent[usize::from(self.seq) % SENT].1;
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let left = end
                .saturating_duration_since(std::time::Instant::now())
                .as_millis()
                .max(1) as i32;
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, left) };
            if self.check_reply().is_some_and(|t| Some(t) >= asked) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl AsRawFd for Witness {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileged_loopback_answers_the_witness_probe() {
        use tandem_tests::privileged::{Need, require};
        if !require(
            "privileged_loopback_answers_the_witness_probe",
            &[Need::Root("raw ICMP socket")],
        ) {
            return;
        }
        let mut w = Witness::new(Ipv4Addr::LOCALHOST).unwrap();
        assert!(w.probe_blocking(std::time::Duration::from_secs(2)).unwrap());
        assert_eq!(checksum(&[0x08, 0, 0, 0]), 0xf7ff);
    }
}
