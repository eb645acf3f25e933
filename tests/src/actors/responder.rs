//! IVR stand-ins: a thread inside a lab namespace that answers every UDP
//! datagram, or every TCP connection's request, with `<name> <payload>`, so a
//! test can tell which real server a request reached.
//!
//! A UDP reply leaves from the address the request was sent to (IP_PKTINFO),
//! as a real server behind a DR director must answer from the VIP. A
//! responder stops when its handle is dropped and, whatever happens, after
//! [`MAX_LIFETIME`]; every wait inside it is bounded.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, sendmsg, setsockopt,
    sockopt,
};

use crate::LabError;
use crate::lab::netns;

/// A responder stops by itself after this long, even if its handle leaks.
pub const MAX_LIFETIME: Duration = Duration::from_secs(600);
/// How often a responder looks at its stop flag.
const POLL: Duration = Duration::from_millis(50);
/// TCP: a request ends at EOF, or when no byte came for this long after the first.
const TCP_IDLE_END: Duration = Duration::from_millis(200);
/// TCP: the most time one connection gets.
const TCP_CONN_LIMIT: Duration = Duration::from_secs(2);
/// TCP: the largest request read.
const TCP_MAX_REQUEST: usize = 1 << 20;

/// A running responder. Dropping it stops the thread and waits for it (at most ~[`TCP_CONN_LIMIT`]).
pub struct Responder {
    name: String,
    ns: String,
    port: u16,
    served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` requests were answered or `timeout` passed; true if reached.
    pub fn wait_served(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.served() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// The name it puts at the start of every reply.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace it runs in.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The port it listens on (0.0.0.0:port).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops it now (the same as dropping it).
    pub fn stop(self) {}
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // A panic in the responder thread was already printed; nothing to add.
            let _ = t.join();
        }
    }
}

/// The reply to `payload`: `<name> <payload>`.
fn reply(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(name.len() + 1 + payload.len());
    r.extend_from_slice(name.as_bytes());
    r.push(b' ');
    r.extend_from_slice(payload);
    r
}

/// Starts a thread in `ns` that binds `kind` and then runs `serve` on it;
/// returns once the socket is bound (or binding failed).
fn spawn<S: Send + 'static>(
    ns: &str,
    name: &str,
    port: u16,
    bind: impl FnOnce() -> std::io::Result<S> + Send + 'static,
    serve: impl FnOnce(S, &str, &AtomicBool, &AtomicU64) + Send + 'static,
) -> Result<Responder, LabError> {
    let served = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Result<(), LabError>>();
    let (ns_t, name_t, served_t, stop_t) =
        (ns.to_owned(), name.to_owned(), served.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name(format!("responder {name}"))
        .spawn(move || {
            let bound = netns::enter_on_this_thread(&ns_t).and_then(|()| {
                bind().map_err(|e| LabError::io(format!("binding port {port}"), &ns_t, e))
            });
            let sock = match bound {
                Ok(s) => {
                    let _ = tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            serve(sock, &name_t, &stop_t, &served_t);
        })
        .map_err(|e| LabError::io("spawning a responder thread", ns, e))?;
    let started = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| {
            Err(LabError::Netns {
                ns: ns.to_owned(),
                what: format!("responder {name} did not start"),
            })
        });
    let responder = Responder {
        name: name.to_owned(),
        ns: ns.to_owned(),
        port,
        served,
        stop,
        thread: Some(thread),
    };
    started.map(|()| responder)
}

/// A UDP responder on 0.0.0.0:`port` in `ns`: every datagram is answered
/// with `<name> <payload>`, from the address it was sent to.
pub fn spawn_udp_responder(ns: &str, name: &str, port: u16) -> Result<Responder, LabError> {
    spawn_udp_responder_for(ns, name, port, MAX_LIFETIME)
}

/// [`spawn_udp_responder`] that stops by itself after `lifetime` instead
/// of [`MAX_LIFETIME`] (a run longer than it: the fault campaign).
pub fn spawn_udp_responder_for(
    ns: &str,
    name: &str,
    port: u16,
    lifetime: Duration,
) -> Result<Responder, LabError> {
    let ns_owned = ns.to_owned();
    spawn(
        ns,
        name,
        port,
        move || {
            let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
            sock.set_read_timeout(Some(POLL))?;
            setsockopt(&sock, sockopt::Ipv4PacketInfo, &true).map_err(std::io::Error::from)?;
            Ok(sock)
        },
        move |sock, name, stop, served| serve_udp(&sock, name, &ns_owned, stop, served, lifetime),
    )
}

fn serve_udp(
    sock: &UdpSocket,
    name: &str,
    ns: &str,
    stop: &AtomicBool,
    served: &AtomicU64,
    lifetime: Duration,
) {
    let deadline = Instant::now() + lifetime;
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let (len, from, to) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<SockaddrIn>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) {
                Ok(msg) => {
                    let to = msg.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::Ipv4PacketInfo(pi) => Some(pi),
                            _ => None,
                        })
                    });
                    (msg.bytes, msg.address, to)
                }
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("responder {name} in {ns}: recvmsg: {e}; stopping");
                    return;
                }
            }
        };
        let Some(from) = from else { continue };
        let out = reply(name, &buf[..len]);
        let iov = [IoSlice::new(&out)];
        // Counted before the reply leaves, so a client that has its reply
        // already sees the count.
        served.fetch_add(1, Ordering::Relaxed);
        let sent = match to {
            Some(pi) => {
                // Answer from the address the request was for (the VIP in DR mode).
                let src = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: pi.ipi_addr,
                    ipi_addr: pi.ipi_addr,
                };
                sendmsg(
                    sock.as_raw_fd(),
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&src)],
                    MsgFlags::empty(),
                    Some(&from),
                )
            }
            None => sendmsg(sock.as_raw_fd(), &iov, &[], MsgFlags::empty(), Some(&from)),
        };
        if let Err(e) = sent {
            served.fetch_sub(1, Ordering::Relaxed);
            eprintln!("responder {name} in {ns}: reply to {from}: {e}");
        }
    }
}

/// A TCP responder on 0.0.0.0:`port` in `ns`: for each connection it reads a
/// request (until EOF, or until the peer pauses for 200 ms after sending
/// something), answers `<name> <request>` and closes. Connections are served
/// one at a time, each for at most 2 s.
pub fn spawn_tcp_responder(ns: &str, name: &str, port: u16) -> Result<Responder, LabError> {
    let ns_owned = ns.to_owned();
    spawn(
        ns,
        name,
        port,
        move || {
            let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
            l.set_nonblocking(true)?;
            Ok(l)
        },
        move |listener, name, stop, served| {
            let deadline = Instant::now() + MAX_LIFETIME;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        if let Err(e) = serve_tcp(stream, name, served) {
                            eprintln!(
                                "responder {name} in {ns_owned}: connection from {peer}: {e}"
                            );
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => {
                        eprintln!("responder {name} in {ns_owned}: accept: {e}");
                        std::thread::sleep(POLL);
                    }
                }
            }
        },
    )
}

/// Reads one request, answers it, counts it, and closes (in that order, so a
/// client that saw the connection close also sees the count).
fn serve_tcp(mut stream: TcpStream, name: &str, served: &AtomicU64) -> std::io::Result<()> {
    use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(TCP_CONN_LIMIT))?;
    let deadline = Instant::now() + TCP_CONN_LIMIT;
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let now = Instant::now();
        if now >= deadline || request.len() >= TCP_MAX_REQUEST {
            break;
        }
        let wait = if request.is_empty() {
            deadline - now
        } else {
            TCP_IDLE_END.min(deadline - now)
        };
        stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == Interrupted => continue,
            Err(e) if matches!(e.kind(), WouldBlock | TimedOut) => {
                if request.is_empty() {
                    continue; // the deadline check ends this
                }
                break;
            }
            Err(e) => return Err(e),
        }
    }
    stream.write_all(&reply(name, &request))?;
    stream.flush()?;
    served.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
