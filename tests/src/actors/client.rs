//! One-shot client requests from inside a lab namespace, each bounded by a
//! timeout: a UDP datagram and its reply, a TCP request and its reply.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::LabError;
use crate::lab::netns::try_in_netns;

/// Sends `payload` from `ns` (source port `src_port`, 0 for any) to `dst` and
/// returns the first reply. The socket is connected to `dst`, so only a reply
/// from `dst` itself counts: behind a DR director, the real server must
/// answer from the VIP.
pub fn udp_request(
    ns: &str,
    src_port: u16,
    dst: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, LabError> {
    try_in_netns(ns, || {
        let io = |what: &str, e| LabError::io(format!("UDP to {dst}: {what}"), ns, e);
        let bind: SocketAddr = match dst {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, src_port).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, src_port).into(),
        };
        let sock = UdpSocket::bind(bind).map_err(|e| io(&format!("bind {bind}"), e))?;
        sock.connect(dst).map_err(|e| io("connect", e))?;
        sock.send(payload).map_err(|e| io("send", e))?;
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LabError::Timeout {
                    ns: ns.to_owned(),
                    dst,
                    after: timeout,
                });
            }
            sock.set_read_timeout(Some(left))
                .map_err(|e| io("set_read_timeout", e))?;
            match sock.recv(&mut buf) {
                Ok(n) => return Ok(buf[..n].to_vec()),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(io("recv", e)),
            }
        }
    })?
}

/// Connects from `ns` to `dst`, sends `payload`, closes its sending side and
/// returns everything the server sent until it closed; all within `timeout`.
pub fn tcp_request(
    ns: &str,
    dst: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, LabError> {
    try_in_netns(ns, || {
        let io = |what: &str, e| LabError::io(format!("TCP to {dst}: {what}"), ns, e);
        let deadline = Instant::now() + timeout;
        let timed_out = || LabError::Timeout {
            ns: ns.to_owned(),
            dst,
            after: timeout,
        };
        let mut stream = TcpStream::connect_timeout(&dst, timeout).map_err(|e| match e.kind() {
            ErrorKind::TimedOut | ErrorKind::WouldBlock => timed_out(),
            _ => io("connect", e),
        })?;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        stream
            .set_write_timeout(Some(left))
            .map_err(|e| io("set_write_timeout", e))?;
        stream.write_all(payload).map_err(|e| io("write", e))?;
        stream
            .shutdown(Shutdown::Write)
            .map_err(|e| io("shutdown", e))?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            stream
                .set_read_timeout(Some(left))
                .map_err(|e| io("set_read_timeout", e))?;
            match stream.read(&mut buf) {
                Ok(0) => return Ok(reply),
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(io("read", e)),
            }
        }
    })?
}

/// Opens many UDP flows at once from `ns`: one socket per source port in
/// `ports`, each connected to `dst`, sends `payload` from each (paced at
/// `rate` datagrams per second, 0 for as fast as possible) and waits until
/// every flow has a reply or `timeout` passes. Returns, per port in order,
/// the first reply (None if none came). Raises the open-file limit to fit
/// the sockets. Bounded: one datagram per port, one wait. With a zero
/// `timeout` each socket is closed right after its datagram (no replies
/// are read; any number of flows fits).
pub fn udp_flows(
    ns: &str,
    ports: &[u16],
    dst: SocketAddr,
    payload: &[u8],
    rate: u32,
    timeout: Duration,
) -> Result<Vec<Option<Vec<u8>>>, LabError> {
    if !timeout.is_zero() {
        raise_nofile(ports.len() as u64 + 256);
    }
    try_in_netns(ns, || {
        let io = |what: String, e| LabError::io(format!("UDP flows to {dst}: {what}"), ns, e);
        let mut socks = Vec::with_capacity(ports.len());
        let start = Instant::now();
        for (i, &p) in ports.iter().enumerate() {
            if rate > 0 {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            let bind: SocketAddr = match dst {
                SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, p).into(),
                SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, p).into(),
            };
            let s = UdpSocket::bind(bind).map_err(|e| io(format!("bind {bind}"), e))?;
            s.connect(dst).map_err(|e| io("connect".into(), e))?;
            s.set_nonblocking(true).map_err(|e| io("set_nonblocking".into(), e))?;
            s.send(payload).map_err(|e| io(format!("send from port {p}"), e))?;
            if !timeout.is_zero() {
                socks.push(s);
            }
        }
        let mut out: Vec<Option<Vec<u8>>> = vec![None; ports.len()];
        let mut left = socks.len();
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 2048];
        while left > 0 && Instant::now() < deadline {
            let mut got = false;
            for (i, s) in socks.iter().enumerate() {
                if out[i].is_some() {
                    continue;
                }
                if let Ok(n) = s.recv(&mut buf) {
                    out[i] = Some(buf[..n].to_vec());
                    left -= 1;
                    got = true;
                }
            }
            if !got {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(out)
    })?
}

fn raise_nofile(want: u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < want {
            r.rlim_cur = want.min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}
