//! The io_uring event loop core of `tandemd`: a small, single-threaded
//! reactor.
//!
//! It owns one ring and the memory the kernel reads and writes for the
//! operations in flight (timespecs, receive buffers, message headers), and
//! offers the handful of operations the daemon waits on: absolute
//! `CLOCK_MONOTONIC` timeouts (sub-millisecond), one-shot polls (readable,
//! `POLLPRI`), receives from a socket, sends, accepts on a listener and
//! reads. The caller names each operation with a `u64` token of its
//! choosing and gets it back in a [`Completion`]; a token names at most one
//! operation in flight. [`Signals`] turns SIGTERM/SIGINT into a readable
//! descriptor for the same loop.
//!
//! It must not decide anything, spawn threads or block anywhere but in
//! [`Reactor::submit_and_wait`]. Descriptors passed in are borrowed: they
//! must stay open until their operation completes or is cancelled.

use std::{
    collections::HashMap,
    io, mem,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    os::fd::{FromRawFd, OwnedFd, RawFd},
    time::{Duration, Instant},
};

use io_uring::{IoUring, opcode, squeue, types};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// user_data of the reactor's own cancel/remove requests; their
/// completions are not reported.
const INTERNAL: u64 = u64::MAX;

/// How long dropping a reactor waits for cancelled operations to finish
/// before it leaks their buffers rather than free memory the kernel may
/// still write.
const DROP_WAIT: Duration = Duration::from_millis(200);

/// A misuse of the reactor or a failure of the ring.
#[derive(Debug, thiserror::Error)]
pub enum ReactorError {
    #[error("token {0} already names an operation in flight")]
    TokenInUse(u64),
    #[error("token {0} is reserved")]
    ReservedToken(u64),
    #[error("the io_uring submission queue is full")]
    QueueFull,
    #[error("io_uring: {0}")]
    Io(#[from] io::Error),
}

/// The kind of operation a completion belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Timeout,
    Poll,
    Recv,
    RecvFrom,
    Send,
    Accept,
    Read,
}

/// A finished operation.
#[derive(Debug)]
pub struct Completion {
    pub token: u64,
    pub kind: OpKind,
    /// Timeout: `Ok(0)` when the deadline passed. Poll: the ready events.
    /// Recv/RecvFrom/Read/Send: the byte count. Accept: the new
    /// descriptor's number (owned by [`Completion::accepted`]).
    pub result: io::Result<u32>,
    /// Recv/RecvFrom/Read: the bytes received. Send: the buffer given back.
    pub data: Vec<u8>,
    /// RecvFrom: the sender.
    pub from: Option<SocketAddr>,
    /// Accept: the connection, non-blocking and close-on-exec.
    pub accepted: Option<OwnedFd>,
}

/// Memory the kernel uses while an operation is in flight.
enum Resources {
    None,
    Timespec(Box<types::Timespec>),
    Buf(Vec<u8>),
    Msg(Box<MsgStorage>),
}

/// A `recvmsg` header with its iovec and address space, boxed so the
/// pointers between them stay valid.
struct MsgStorage {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_storage,
    buf: Vec<u8>,
}

struct Op {
    token: u64,
    kind: OpKind,
    /// Cancelled or replaced: its completion is not reported.
    stale: bool,
    res: Resources,
}

/// A single-threaded io_uring reactor. See the module documentation.
pub struct Reactor {
    ring: IoUring,
    /// In flight, by user_data.
    ops: HashMap<u64, Op>,
    /// Live (not stale) operations, token → user_data.
    live: HashMap<u64, u64>,
    next_id: u64,
    /// The same moment as an `Instant` and as `CLOCK_MONOTONIC`.
    anchor: (Instant, Duration),
}

// SAFETY: the raw pointers inside `Resources` point into heap memory the
// reactor owns; moving the reactor to another thread moves that ownership
// with it and the kernel does not care which thread submits.
unsafe impl Send for Reactor {}

fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Reactor {
    /// A ring with `entries` submission slots (rounded up to a power of
    /// two by the kernel).
    pub fn new(entries: u32) -> Result<Reactor, ReactorError> {
        let ring = IoUring::new(entries)?;
        let anchor = (Instant::now(), monotonic_now());
        Ok(Reactor {
            ring,
            ops: HashMap::new(),
            live: HashMap::new(),
            next_id: 1,
            anchor,
        })
    }

    /// Operations in flight whose completions will be reported.
    pub fn in_flight(&self) -> usize {
        self.live.len()
    }

    /// Whether `token` names an operation in flight.
    pub fn is_armed(&self, token: u64) -> bool {
        self.live.contains_key(&token)
    }

    /// `deadline` on `CLOCK_MONOTONIC` (what `Instant` is on Linux).
    fn monotonic(&self, deadline: Instant) -> Duration {
        let (i, m) = self.anchor;
        match deadline.checked_duration_since(i) {
            Some(ahead) => m + ahead,
            None => m.saturating_sub(i - deadline),
        }
    }

    fn check_token(&self, token: u64) -> Result<(), ReactorError> {
        if token == INTERNAL {
            return Err(ReactorError::ReservedToken(token));
        }
        if self.live.contains_key(&token) {
            return Err(ReactorError::TokenInUse(token));
        }
        Ok(())
    }

    fn push_entry(&mut self, entry: &squeue::Entry) -> Result<(), ReactorError> {
        for _ in 0..2 {
            // SAFETY: every pointer in `entry` points into memory held in
            // `self.ops` until the operation's completion is reaped.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
        Err(ReactorError::QueueFull)
    }

    /// Registers and queues an operation; `build` gets its user_data and
    /// its resources (already at their final address).
    fn start(
        &mut self,
        token: u64,
        kind: OpKind,
        res: Resources,
        build: impl FnOnce(&mut Resources) -> squeue::Entry,
    ) -> Result<(), ReactorError> {
        self.check_token(token)?;
        let id = self.next_id;
        self.next_id += 1;
        let op = self.ops.entry(id).or_insert(Op {
            token,
            kind,
            stale: false,
            res,
        });
        let entry = build(&mut op.res).user_data(id);
        if let Err(e) = self.push_entry(&entry) {
            self.ops.remove(&id);
            return Err(e);
        }
        self.live.insert(token, id);
        Ok(())
    }

    /// Arms a one-shot timer firing at `deadline` (absolute,
    /// `CLOCK_MONOTONIC`). If `token` names a timer in flight, that timer
    /// is replaced: only the new one reports.
    pub fn arm_timeout(&mut self, token: u64, deadline: Instant) -> Result<(), ReactorError> {
        if let Some(&id) = self.live.get(&token)
            && self.ops.get(&id).map(|o| o.kind) == Some(OpKind::Timeout)
        {
            self.cancel(token)?;
        }
        let t = self.monotonic(deadline);
        let ts = Box::new(
            types::Timespec::new()
                .sec(t.as_secs())
                .nsec(t.subsec_nanos()),
        );
        self.start(token, OpKind::Timeout, Resources::Timespec(ts), |res| {
            let ptr = match res {
                Resources::Timespec(ts) => &**ts as *const types::Timespec,
                _ => std::ptr::null(),
            };
            opcode::Timeout::new(ptr)
                .flags(types::TimeoutFlags::ABS)
                .build()
        })
    }

    /// Waits once for `events` (`libc::POLLIN`, `libc::POLLPRI`, ...) on
    /// `fd`; the completion's result is the ready events. Re-arm by
    /// calling again.
    pub fn poll(&mut self, token: u64, fd: RawFd, events: u32) -> Result<(), ReactorError> {
        self.start(token, OpKind::Poll, Resources::None, |_| {
            opcode::PollAdd::new(types::Fd(fd), events).build()
        })
    }

    /// Receives one datagram (or stream chunk) of at most `len` bytes.
    pub fn recv(&mut self, token: u64, fd: RawFd, len: usize) -> Result<(), ReactorError> {
        self.start(
            token,
            OpKind::Recv,
            Resources::Buf(vec![0; len]),
            |res| match res {
                Resources::Buf(b) => {
                    opcode::Recv::new(types::Fd(fd), b.as_mut_ptr(), b.len() as u32).build()
                }
                _ => opcode::Nop::new().build(),
            },
        )
    }

    /// Receives one datagram of at most `len` bytes with its sender.
    pub fn recv_from(&mut self, token: u64, fd: RawFd, len: usize) -> Result<(), ReactorError> {
        // SAFETY: all-zero msghdr/iovec/sockaddr_storage are valid; the
        // pointers are set once the storage is at its final address.
        let storage = Box::new(unsafe {
            MsgStorage {
                hdr: mem::zeroed(),
                iov: mem::zeroed(),
                addr: mem::zeroed(),
                buf: vec![0; len],
            }
        });
        self.start(
            token,
            OpKind::RecvFrom,
            Resources::Msg(storage),
            |res| match res {
                Resources::Msg(m) => {
                    let m = &mut **m;
                    m.iov.iov_base = m.buf.as_mut_ptr() as *mut libc::c_void;
                    m.iov.iov_len = m.buf.len();
                    m.hdr.msg_name = &mut m.addr as *mut _ as *mut libc::c_void;
                    m.hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                    m.hdr.msg_iov = &mut m.iov;
                    m.hdr.msg_iovlen = 1;
                    opcode::RecvMsg::new(types::Fd(fd), &mut m.hdr).build()
                }
                _ => opcode::Nop::new().build(),
            },
        )
    }

    /// Sends `data` on a connected socket; the completion gives it back.
    pub fn send(&mut self, token: u64, fd: RawFd, data: Vec<u8>) -> Result<(), ReactorError> {
        self.start(token, OpKind::Send, Resources::Buf(data), |res| match res {
            Resources::Buf(b) => {
                opcode::Send::new(types::Fd(fd), b.as_ptr(), b.len() as u32).build()
            }
            _ => opcode::Nop::new().build(),
        })
    }

    /// Reads at most `len` bytes from `fd` at its current position.
    pub fn read(&mut self, token: u64, fd: RawFd, len: usize) -> Result<(), ReactorError> {
        self.start(
            token,
            OpKind::Read,
            Resources::Buf(vec![0; len]),
            |res| match res {
                Resources::Buf(b) => {
                    opcode::Read::new(types::Fd(fd), b.as_mut_ptr(), b.len() as u32)
                        .offset(u64::MAX)
                        .build()
                }
                _ => opcode::Nop::new().build(),
            },
        )
    }

    /// Accepts one connection on a listening socket.
    pub fn accept(&mut self, token: u64, fd: RawFd) -> Result<(), ReactorError> {
        self.start(token, OpKind::Accept, Resources::None, |_| {
            opcode::Accept::new(types::Fd(fd), std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                .build()
        })
    }

    /// Cancels the operation `token` names, if any; it will not report, and
    /// the token is free at once. Returns whether one was in flight.
    pub fn cancel(&mut self, token: u64) -> Result<bool, ReactorError> {
        let Some(id) = self.live.remove(&token) else {
            return Ok(false);
        };
        let kind = match self.ops.get_mut(&id) {
            Some(op) => {
                op.stale = true;
                op.kind
            }
            None => return Ok(false),
        };
        self.push_cancel(id, kind)?;
        Ok(true)
    }

    fn push_cancel(&mut self, id: u64, kind: OpKind) -> Result<(), ReactorError> {
        let entry = match kind {
            OpKind::Timeout => opcode::TimeoutRemove::new(id).build(),
            _ => opcode::AsyncCancel::new(id).build(),
        };
        self.push_entry(&entry.user_data(INTERNAL))
    }

    /// Submits what is queued and waits until at least `min` completions
    /// are ready or `timeout` passes (`None`: no limit; with `min` 0 it
    /// does not wait). Returns the completions ready, in the order the
    /// kernel posted them; cancelled operations are not among them.
    pub fn submit_and_wait(
        &mut self,
        min: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Completion>, ReactorError> {
        let r = match timeout {
            Some(t) if min > 0 => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(min, &args)
            }
            _ => self.ring.submitter().submit_and_wait(min),
        };
        match r {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) => {}
            Err(e) => return Err(e.into()),
        }
        let mut out = Vec::new();
        self.reap(&mut out);
        Ok(out)
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        let cqes: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (id, res) in cqes {
            if id == INTERNAL {
                continue;
            }
            let Some(op) = self.ops.remove(&id) else {
                continue;
            };
            if op.stale {
                continue;
            }
            if self.live.get(&op.token) == Some(&id) {
                self.live.remove(&op.token);
            }
            out.push(complete(op, res));
        }
    }
}

/// Turns a CQE result into a [`Completion`], handing over the resources.
fn complete(op: Op, res: i32) -> Completion {
    let result = if res >= 0 {
        Ok(res as u32)
    } else if op.kind == OpKind::Timeout && res == -libc::ETIME {
        Ok(0)
    } else {
        Err(io::Error::from_raw_os_error(-res))
    };
    let mut c = Completion {
        token: op.token,
        kind: op.kind,
        result,
        data: Vec::new(),
        from: None,
        accepted: None,
    };
    match op.res {
        Resources::Buf(mut b) => {
            if matches!(op.kind, OpKind::Recv | OpKind::Read) {
                b.truncate(if res >= 0 { res as usize } else { 0 });
            }
            c.data = b;
        }
        Resources::Msg(m) => {
            let mut m = *m;
            if res >= 0 {
                m.buf.truncate(res as usize);
                c.from = sockaddr_to_std(&m.addr, m.hdr.msg_namelen);
            } else {
                m.buf.clear();
            }
            c.data = m.buf;
        }
        Resources::None | Resources::Timespec(_) => {}
    }
    if op.kind == OpKind::Accept && res >= 0 {
        // SAFETY: the kernel created this descriptor for us and nobody else
        // knows its number.
        c.accepted = Some(unsafe { OwnedFd::from_raw_fd(res) });
    }
    c
}

fn sockaddr_to_std(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET if len as usize >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says it is a sockaddr_in, which fits in the storage.
            let sin: &libc::sockaddr_in = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says it is a sockaddr_in6, which fits in the storage.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

impl Drop for Reactor {
    /// Cancels what is in flight and waits (bounded) for the kernel to let
    /// go of the buffers; whatever it still holds then is leaked, never
    /// freed under it.
    fn drop(&mut self) {
        let pending: Vec<(u64, OpKind)> = self.ops.iter().map(|(id, op)| (*id, op.kind)).collect();
        for (id, kind) in pending {
            let _ = self.push_cancel(id, kind);
        }
        let deadline = Instant::now() + DROP_WAIT;
        while !self.ops.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let args_ts = types::Timespec::from(deadline - now);
            let args = types::SubmitArgs::new().timespec(&args_ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            let cqes: Vec<u64> = self.ring.completion().map(|c| c.user_data()).collect();
            for id in cqes {
                self.ops.remove(&id);
            }
        }
        for (_, op) in self.ops.drain() {
            mem::forget(op.res);
        }
    }
}

/// SIGTERM and SIGINT (or any set) as a readable descriptor: poll
/// [`Signals::fd`] for `POLLIN` in the reactor, then [`Signals::read`].
///
/// The signals are blocked in the calling thread; create this in the main
/// thread before any other thread starts, so that they are blocked
/// everywhere and come only through the descriptor.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks `signals` in the calling thread and opens a non-blocking
    /// signalfd for them.
    pub fn new(signals: &[Signal]) -> io::Result<Signals> {
        let mut set = SigSet::empty();
        for s in signals {
            set.add(*s);
        }
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(io::Error::from)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io::Error::from)?;
        Ok(Signals { fd })
    }

    /// SIGTERM and SIGINT, the signals that stop `tandemd` cleanly.
    pub fn termination() -> io::Result<Signals> {
        Signals::new(&[Signal::SIGTERM, Signal::SIGINT])
    }

    pub fn fd(&self) -> RawFd {
        use std::os::fd::{AsFd, AsRawFd};
        self.fd.as_fd().as_raw_fd()
    }

    /// The signals pending now, drained (bounded); empty if none.
    pub fn read(&self) -> io::Result<Vec<Signal>> {
        let mut out = Vec::new();
        for _ in 0..64 {
            match self.fd.read_signal() {
                Ok(Some(info)) => {
                    if let Ok(s) = Signal::try_from(info.ssi_signo as i32) {
                        out.push(s);
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        net::UdpSocket,
        os::{fd::AsRawFd, unix::net::UnixListener},
    };

    fn percentile(sorted: &[Duration], p: f64) -> Duration {
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }

    #[test]
    fn timer_precision_1ms() {
        let mut r = Reactor::new(64).expect("ring");
        let mut late = Vec::new();
        for i in 0..200u64 {
            let deadline = Instant::now() + Duration::from_millis(1);
            r.arm_timeout(i, deadline).expect("arm");
            let c = r
                .submit_and_wait(1, Some(Duration::from_secs(1)))
                .expect("wait");
            let now = Instant::now();
            assert_eq!(c.len(), 1, "timer {i} did not fire within 1 s");
            assert_eq!(c[0].token, i);
            assert_eq!(c[0].kind, OpKind::Timeout);
            assert_eq!(c[0].result.as_ref().ok(), Some(&0));
            late.push(now.saturating_duration_since(deadline));
        }
        late.sort();
        println!(
            "1 ms io_uring timers, 200 runs, lateness: min {:?} p50 {:?} p99 {:?} max {:?}",
            late[0],
            percentile(&late, 0.5),
            percentile(&late, 0.99),
            late[late.len() - 1]
        );
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn timers_fire_in_deadline_order() {
        let mut r = Reactor::new(64).expect("ring");
        let base = Instant::now() + Duration::from_millis(2);
        // Armed out of order; token k fires at base + k × 300 µs.
        let order = [7u64, 2, 9, 0, 5, 1, 8, 3, 6, 4];
        for k in order {
            r.arm_timeout(k, base + Duration::from_micros(300 * k))
                .expect("arm");
        }
        let mut fired = Vec::new();
        let stop = Instant::now() + Duration::from_secs(2);
        while fired.len() < order.len() && Instant::now() < stop {
            for c in r
                .submit_and_wait(1, Some(Duration::from_millis(100)))
                .expect("wait")
            {
                assert!(Instant::now() >= base + Duration::from_micros(300 * c.token));
                fired.push(c.token);
            }
        }
        assert_eq!(fired, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn rearm_replaces_and_cancel_silences() {
        let mut r = Reactor::new(16).expect("ring");
        let now = Instant::now();
        r.arm_timeout(1, now + Duration::from_millis(30))
            .expect("arm");
        r.arm_timeout(1, now + Duration::from_millis(1))
            .expect("re-arm");
        r.arm_timeout(2, now + Duration::from_millis(5))
            .expect("arm");
        assert!(r.cancel(2).expect("cancel"));
        assert!(!r.cancel(2).expect("cancel again"));
        let mut seen = Vec::new();
        while Instant::now() < now + Duration::from_millis(60) {
            for c in r
                .submit_and_wait(1, Some(Duration::from_millis(10)))
                .expect("wait")
            {
                seen.push((c.token, now.elapsed()));
            }
        }
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0, 1);
        assert!(
            seen[0].1 < Duration::from_millis(25),
            "the replaced deadline fired: {seen:?}"
        );
        // A token in flight cannot name a second operation.
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        r.recv(3, sock.as_raw_fd(), 16).expect("recv");
        assert!(matches!(
            r.recv(3, sock.as_raw_fd(), 16),
            Err(ReactorError::TokenInUse(3))
        ));
        assert!(matches!(
            r.arm_timeout(3, Instant::now()),
            Err(ReactorError::TokenInUse(3))
        ));
        assert!(matches!(
            r.poll(INTERNAL, 0, 0),
            Err(ReactorError::ReservedToken(_))
        ));
    }

    #[test]
    fn udp_ping_pong_on_loopback() {
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind a");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind b");
        a.connect(b.local_addr().expect("addr")).expect("connect");
        b.connect(a.local_addr().expect("addr")).expect("connect");
        let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
        const A_RECV: u64 = 1;
        const B_RECV: u64 = 2;
        const A_SEND: u64 = 3;
        const B_SEND: u64 = 4;
        let mut r = Reactor::new(64).expect("ring");
        r.recv(A_RECV, fa, 1500).expect("recv");
        r.recv_from(B_RECV, fb, 1500).expect("recv");
        let rounds = 1000u32;
        let mut rtts = Vec::with_capacity(rounds as usize);
        let mut sent_at = Instant::now();
        r.send(A_SEND, fa, 0u32.to_be_bytes().to_vec())
            .expect("send");
        let stop = Instant::now() + Duration::from_secs(10);
        let mut done = 0u32;
        while done < rounds && Instant::now() < stop {
            for c in r
                .submit_and_wait(1, Some(Duration::from_secs(1)))
                .expect("wait")
            {
                let n = *c.result.as_ref().map_err(|e| e.to_string()).expect("op ok");
                match c.token {
                    B_RECV => {
                        assert_eq!(n, 4);
                        assert_eq!(c.from, Some(a.local_addr().expect("addr")));
                        r.recv_from(B_RECV, fb, 1500).expect("re-arm");
                        let mut pong = c.data.clone();
                        pong.reverse();
                        r.send(B_SEND, fb, pong).expect("pong");
                    }
                    A_RECV => {
                        let mut back = c.data.clone();
                        back.reverse();
                        assert_eq!(back, done.to_be_bytes(), "pong carries the ping reversed");
                        rtts.push(sent_at.elapsed());
                        done += 1;
                        r.recv(A_RECV, fa, 1500).expect("re-arm");
                        sent_at = Instant::now();
                        r.send(A_SEND, fa, done.to_be_bytes().to_vec())
                            .expect("ping");
                    }
                    A_SEND | B_SEND => assert_eq!(n, 4),
                    other => panic!("unexpected token {other}"),
                }
            }
        }
        assert_eq!(done, rounds, "ping-pong stalled");
        rtts.sort();
        println!(
            "UDP ping-pong through io_uring, {rounds} rounds: RTT p50 {:?} p99 {:?}",
            percentile(&rtts, 0.5),
            percentile(&rtts, 0.99)
        );
    }

    #[test]
    fn accept_on_unix_listener() {
        use std::io::{Read, Write};
        let dir = std::env::temp_dir().join(format!("tandem-uring-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("accept.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind");
        let mut r = Reactor::new(8).expect("ring");
        r.accept(9, listener.as_raw_fd()).expect("accept");
        r.poll(10, listener.as_raw_fd(), libc::POLLIN as u32)
            .expect("poll");
        let mut client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        let mut got = Vec::new();
        let stop = Instant::now() + Duration::from_secs(2);
        while got.len() < 2 && Instant::now() < stop {
            got.extend(
                r.submit_and_wait(1, Some(Duration::from_millis(200)))
                    .expect("wait"),
            );
        }
        let accepted = got
            .iter_mut()
            .find(|c| c.token == 9)
            .and_then(|c| c.accepted.take())
            .expect("accepted a connection");
        let mut server = std::os::unix::net::UnixStream::from(accepted);
        server.set_nonblocking(false).expect("blocking");
        client.write_all(b"status\n").expect("write");
        let mut buf = [0u8; 7];
        server.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"status\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sigterm_through_signalfd() {
        // Blocked in this thread only, and sent to this thread only, so the
        // test harness's other threads never see it.
        let signals = Signals::termination().expect("signalfd");
        let mut r = Reactor::new(8).expect("ring");
        r.poll(1, signals.fd(), libc::POLLIN as u32).expect("poll");
        assert!(r.submit_and_wait(0, None).expect("submit").is_empty());
        // SAFETY: tgkill to our own thread with a blocked signal.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                libc::gettid(),
                libc::SIGTERM,
            )
        };
        assert_eq!(rc, 0);
        let c = r
            .submit_and_wait(1, Some(Duration::from_secs(2)))
            .expect("wait");
        assert_eq!(c.len(), 1, "no completion for the signalfd");
        let events = *c[0].result.as_ref().expect("poll ok");
        assert!(events & libc::POLLIN as u32 != 0);
        assert_eq!(signals.read().expect("read"), vec![Signal::SIGTERM]);
        assert!(signals.read().expect("read").is_empty());
    }

    #[test]
    fn read_through_ring_and_drop_with_ops_in_flight() {
        let (rx, tx) = nix::unistd::pipe().expect("pipe");
        let mut r = Reactor::new(8).expect("ring");
        r.read(5, rx.as_raw_fd(), 64).expect("read");
        nix::unistd::write(&tx, b"hello").expect("write");
        let c = r
            .submit_and_wait(1, Some(Duration::from_secs(2)))
            .expect("wait");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].data, b"hello");
        // Left in flight: dropping cancels it and returns promptly.
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        r.recv(6, sock.as_raw_fd(), 64).expect("recv");
        r.arm_timeout(7, Instant::now() + Duration::from_secs(60))
            .expect("arm");
        r.submit_and_wait(0, None).expect("submit");
        let t = Instant::now();
        drop(r);
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "drop took {:?}",
            t.elapsed()
        );
    }
}
