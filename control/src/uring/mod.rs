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
}

// SAFETY: the raw pointers inside `Resources` point into heap memory the
// reactor owns; moving the reactor to another thread moves that ownership
// with it and the kernel does not care which thread submits.
unsafe impl Send for Reactor {}

impl Reactor {
    /// A ring with `entries` submission slots (rounded up to a power of
    /// two by the kernel).
    pub fn new(entries: u32) -> Result<Reactor, ReactorError> {
        let ring = IoUring::new(entries)?;
        Ok(Reactor {
            ring,
            ops: HashMap::new(),
            live: HashMap::new(),
            next_id: 1,
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
        Duration::from_nanos(crate::clock::ns_of(deadline))
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
mod tests;
