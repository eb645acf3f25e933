//! Counting RTP in an IVR's namespace: a packet socket on one interface,
//! read by a thread, counts the UDP datagrams to the IVR's media address
//! and port and the ones it sends back (SIPp's echo). It only reads
//! frames; it never sends.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{MAX_LIFETIME, SippError};

/// What an [`RtpCounter`] saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtpCount {
    /// UDP datagrams received for the IVR's media address and port.
    pub received: u64,
    /// UDP datagrams sent from it (SIPp's echo).
    pub echoed: u64,
}

/// Counts RTP in a namespace: a packet socket on one interface counts the
/// UDP datagrams addressed to `addr:port` (received) and sent from it
/// (echoed). A thread in the namespace; stops when dropped and, whatever
/// happens, after [`MAX_LIFETIME`].
pub struct RtpCounter {
    received: Arc<AtomicU64>,
    echoed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpCounter {
    pub fn start(
        ns: &str,
        ifindex: u32,
        addr: Ipv4Addr,
        port: u16,
    ) -> Result<RtpCounter, SippError> {
        let received = Arc::new(AtomicU64::new(0));
        let echoed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (r, e, s, ns_t) = (
            received.clone(),
            echoed.clone(),
            stop.clone(),
            ns.to_string(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("rtp count {ns}"))
            .spawn(move || {
                let fd = match crate::lab::netns::enter_on_this_thread(&ns_t)
                    .map_err(|e| e.to_string())
                    .and_then(|()| packet_socket(ifindex))
                {
                    Ok(fd) => {
                        let _ = tx.send(Ok(()));
                        fd
                    }
                    Err(err) => {
                        let _ = tx.send(Err(err));
                        return;
                    }
                };
                count_rtp(&fd, addr, port, &r, &e, &s);
            })
            .map_err(|source| SippError::Io {
                what: "spawning the RTP counter in",
                path: PathBuf::from(ns),
                source,
            })?;
        let started = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| Err("did not start".into()));
        let counter = RtpCounter {
            received,
            echoed,
            stop,
            thread: Some(thread),
        };
        started.map(|()| counter).map_err(|what| SippError::Other {
            what: format!("RTP counter in {ns}: {what}"),
        })
    }

    pub fn count(&self) -> RtpCount {
        RtpCount {
            received: self.received.load(Ordering::Relaxed),
            echoed: self.echoed.load(Ordering::Relaxed),
        }
    }
}

impl Drop for RtpCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An AF_PACKET datagram socket (frames from the network header on) bound
/// to `ifindex`, with a 50 ms receive timeout and a large buffer. It takes
/// every protocol: the kernel shows outgoing frames only to such sockets.
fn packet_socket(ifindex: u32) -> Result<OwnedFd, String> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            proto as libc::c_int,
        )
    };
    if raw < 0 {
        return Err(format!(
            "socket(AF_PACKET): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: raw is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!(
            "bind to ifindex {ifindex}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    let buf: libc::c_int = 8 << 20;
    // SAFETY: setsockopt with pointers to live values of the stated sizes.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&buf as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(fd)
}

fn count_rtp(
    fd: &OwnedFd,
    addr: Ipv4Addr,
    port: u16,
    received: &AtomicU64,
    echoed: &AtomicU64,
    stop: &AtomicBool,
) {
    let deadline = Instant::now() + MAX_LIFETIME;
    let mut buf = [0u8; 64];
    let me = addr.octets();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        // SAFETY: zeroed sockaddr_ll is valid; recvfrom writes at most its size.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf and from are live and their sizes are passed.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            continue; // timeout (EAGAIN) or EINTR: look at the stop flag
        }
        if from.sll_protocol != (libc::ETH_P_IP as u16).to_be() {
            continue;
        }
        let n = (n as usize).min(buf.len());
        let p = &buf[..n];
        if n < 20 || p[0] >> 4 != 4 || p[9] != 17 {
            continue;
        }
        let ihl = usize::from(p[0] & 0x0f) * 4;
        if n < ihl + 4 {
            continue;
        }
        let (src, dst) = (&p[12..16], &p[16..20]);
        let sport = u16::from_be_bytes([p[ihl], p[ihl + 1]]);
        let dport = u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]);
        match from.sll_pkttype {
            libc::PACKET_HOST if dst == me && dport == port => {
                received.fetch_add(1, Ordering::Relaxed);
            }
            libc::PACKET_OUTGOING if src == me && sport == port => {
                echoed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

