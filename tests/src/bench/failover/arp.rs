//! ARP on the client's wire: a packet socket in the client's namespace
//! records every ARP frame with its CLOCK_MONOTONIC arrival (the new
//! owner's first GARP) and sends one ARP request for the VIP (who answers
//! after a kill -9). It watches and asks; it never answers.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tandem_dataplane::monotonic_ns;

use super::os::set_timeout;
use crate::lab::packet::packet_socket;
use crate::lab::{self, VIP, netns};

/// One ARP frame seen on the client's wire.
#[derive(Clone, Copy, Debug)]
pub(super) struct ArpSeen {
    pub(super) at_ns: u64,
    pub(super) op: u16,
    pub(super) sha: [u8; 6],
    pub(super) spa: Ipv4Addr,
    pub(super) tpa: Ipv4Addr,
}

/// A packet socket on the client's eth0 that records every ARP frame (in a
/// thread) and can send an ARP request for the VIP.
pub(super) struct ArpWatch {
    pub(super) fd: Arc<OwnedFd>,
    pub(super) seen: Arc<Mutex<Vec<ArpSeen>>>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) thread: Option<JoinHandle<()>>,
    pub(super) ifindex: u32,
    pub(super) mac: [u8; 6],
}

impl ArpWatch {
    pub(super) fn start(ns: &str, ifindex: u32, mac: [u8; 6]) -> Result<ArpWatch> {
        let proto = (libc::ETH_P_ARP as u16).to_be();
        let fd = netns::try_in_netns(ns, || -> Result<OwnedFd> {
            Ok(packet_socket(ifindex, proto)?)
        })??;
        set_timeout(fd.as_raw_fd(), libc::SO_RCVTIMEO, Duration::from_millis(5))?;
        let fd = Arc::new(fd);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (fd_t, seen_t, stop_t) = (fd.clone(), seen.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("arp watch".into())
            .spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut buf = [0u8; 256];
                while !stop_t.load(Ordering::Relaxed) && Instant::now() < deadline {
                    // SAFETY: buf is writable for its length.
                    let n = unsafe {
                        libc::recv(fd_t.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                    };
                    let at_ns = monotonic_ns();
                    if n < 42 {
                        continue;
                    }
                    let f = &buf[..n as usize];
                    if f[12..14] != [0x08, 0x06] || f[16..18] != [0x08, 0x00] {
                        continue;
                    }
                    let ip = |o: usize| Ipv4Addr::new(f[o], f[o + 1], f[o + 2], f[o + 3]);
                    let mut sha = [0u8; 6];
                    sha.copy_from_slice(&f[22..28]);
                    let a = ArpSeen {
                        at_ns,
                        op: u16::from_be_bytes([f[20], f[21]]),
                        sha,
                        spa: ip(28),
                        tpa: ip(38),
                    };
                    seen_t.lock().unwrap_or_else(|e| e.into_inner()).push(a);
                }
            })
            .context("spawning the ARP watcher")?;
        Ok(ArpWatch {
            fd,
            seen,
            stop,
            thread: Some(thread),
            ifindex,
            mac,
        })
    }

    /// Sends "who has VIP, tell client" from the client; returns the send time.
    pub(super) fn request_vip(&self) -> Result<u64> {
        let mut f = Vec::with_capacity(42);
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(&lab::CLIENT_ADDR.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&VIP.octets());
        // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        let at = monotonic_ns();
        // SAFETY: f and sll are valid for the sizes passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            bail!(
                "sending an ARP request: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(at)
    }

    pub(super) fn seen(&self) -> Vec<ArpSeen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ArpWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
