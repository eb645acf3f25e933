//! The daemon's side of its two local endpoints, as pieces the reactor
//! drives without ever blocking: [`bind`] creates the admin socket,
//! [`Connection`] frames one admin client's request lines, and
//! [`HttpConnection`] frames one scrape of the metrics endpoint.
//!
//! Each connection carries its own budget, so that no client can hold the
//! daemon's loop or its memory: a byte budget for what it sends
//! ([`MAX_LINE`] per admin request, [`MAX_HTTP_REQUEST`] for an HTTP request
//! head), a deadline the caller checks with `expired(now)` ([`REQUEST_TIMEOUT`],
//! [`HTTP_TIMEOUT`]), and a cap on what it may leave unread ([`MAX_OUTPUT`]).
//!
//! Answers may be large (at the design maximum, 64 services × 32 real
//! servers, `metrics` is ≈ 0.9 MB): one is written out as the
//! socket takes it, a bounded write per readiness, from a cursor into the
//! queued bytes. While an answer is being sent the deadline follows the
//! client's progress: each write that the socket takes moves it to
//! [`ANSWER_IDLE`] later, never past [`ANSWER_TIMEOUT`] after the request.
//! A client that reads slowly gets its whole answer; one that stops reading
//! is dropped [`ANSWER_IDLE`] after the last byte its socket took.
//!
//! The caller passes the time (`now`) at accept and when it checks; nothing
//! here reads a clock except the `Instant::now()` conveniences
//! [`Connection::new`], [`Connection::read_requests`] and the `flush`es.
//!
//! It must not answer anything itself (the daemon builds the responses),
//! nor sleep, nor wait on a descriptor: every read and write is
//! non-blocking and bounded per call.
//!
//! How the reactor drives a connection (admin or HTTP alike):
//! - getters: `fd`, `wants_read`, `wants_write`, `is_finished`, `deadline`,
//!   `expired(now)`;
//! - on readable: `read_requests_at(now)` / `read_request()`, then `queue`
//!   the answers;
//! - on writable (poll for it while `wants_write`): `flush_at(now)`;
//! - close (drop) it once `is_finished`, on an I/O error, or once
//!   `expired(now)`.

use std::{
    io::{self, Read, Write},
    net::TcpStream,
    os::{
        fd::{AsRawFd, OwnedFd, RawFd},
        unix::{
            fs::{FileTypeExt, PermissionsExt},
            net::{UnixListener, UnixStream},
        },
    },
    path::Path,
    time::{Duration, Instant},
};

use super::io_err;
use super::protocol::{AdminError, MAX_LINE, Request, Response, format_response, parse_request};

/// Mode of the admin socket: root only.
pub const SOCKET_MODE: u32 = 0o600;

/// Creates the admin socket: non-blocking, mode 0600 before it listens (so
/// no one else can ever connect), its directory created if missing. A stale
/// socket left by a dead daemon is replaced; a live one is an error.
pub fn bind(path: &Path) -> Result<UnixListener, AdminError> {
    use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(io_err(path, "creating its directory"))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(AdminError::InUse {
                    path: path.to_owned(),
                });
            }
            std::fs::remove_file(path).map_err(io_err(path, "removing the stale socket"))?;
        }
        Ok(_) => {
            return Err(AdminError::NotASocket {
                path: path.to_owned(),
            });
        }
        Err(_) => {}
    }
    let nix_io = |op| move |e: nix::Error| io_err(path, op)(io::Error::from(e));
    let fd: OwnedFd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(nix_io("creating the socket"))?;
    let addr = UnixAddr::new(path).map_err(nix_io("socket address"))?;
    socket::bind(fd.as_raw_fd(), &addr).map_err(nix_io("binding"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(io_err(path, "setting mode 0600"))?;
    let backlog = Backlog::new(64).map_err(nix_io("backlog"))?;
    socket::listen(&fd, backlog).map_err(nix_io("listening"))?;
    Ok(UnixListener::from(fd))
}

/// Mode of the admin socket with `[admin] read_group`: the group may
/// connect (and then only read: see [`super::protocol::authorize`]).
pub const READ_GROUP_MODE: u32 = 0o660;

/// Opens the socket bound at `path` to the members of group `gid`: its
/// group becomes `gid`, its mode [`READ_GROUP_MODE`].
pub fn share_with_group(path: &Path, gid: u32) -> Result<(), AdminError> {
    nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
        .map_err(|e| io_err(path, "setting its group")(io::Error::from(e)))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(READ_GROUP_MODE))
        .map_err(io_err(path, "setting mode 0660"))
}

/// How long an admin connection may go without sending a complete request
/// (from its accept, then from its last request) before the daemon closes
/// it. `tandemctl` sends its line at once; a client that dribbles or sends
/// nothing is cut off here.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Most answer bytes a connection may hold unsent. An answer that alone is
/// larger is replaced by an error saying so; queuing past it behind answers
/// already waiting drops the connection (its client is not reading). The
/// design maximum's largest answer is ≈ 0.9 MB.
pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// How long a connection may leave its answer unread (no byte taken by its
/// socket) before the daemon drops it.
pub const ANSWER_IDLE: Duration = Duration::from_secs(1);
/// Most time one answer may take to send, from its request (an admin
/// request line, the end of an HTTP request head).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest HTTP request head the metrics endpoint reads, `\r\n\r\n` included.
pub const MAX_HTTP_REQUEST: usize = 8 * 1024;
/// How long a metrics scrape may take from its accept (request and answer).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(1);

/// Size of one `read(2)` of the framers.
const READ_CHUNK: usize = 4096;

/// Appends what `stream` has now to `input`, stopping at `WouldBlock`, at
/// end of file (`Ok(true)`) or once `input` holds more than `limit` bytes.
/// Bounded: at most `limit / READ_CHUNK + 2` reads per call.
fn read_available(mut stream: impl Read, input: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
    let mut buf = [0u8; READ_CHUNK];
    for _ in 0..(limit / READ_CHUNK + 2) {
        if input.len() > limit {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => input.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Bytes queued for a client and how far they were sent: written from a
/// cursor, so a large answer is not moved for every partial write, and
/// freed once sent.
#[derive(Default)]
struct Outbox {
    bytes: Vec<u8>,
    sent: usize,
}

impl Outbox {
    /// Bytes not sent yet.
    fn pending(&self) -> usize {
        self.bytes.len() - self.sent
    }

    fn push(&mut self, more: &[u8]) {
        if self.sent == self.bytes.len() {
            self.clear();
        }
        self.bytes.extend_from_slice(more);
    }

    fn clear(&mut self) {
        self.bytes = Vec::new();
        self.sent = 0;
    }

    /// Writes what `stream` takes now; returns whether everything is sent
    /// and how many bytes this call wrote. Bounded: each successful write
    /// sends at least one byte, and a write the socket does not take at
    /// once ends the call.
    fn write_to(&mut self, mut stream: impl Write) -> io::Result<(bool, usize)> {
        let mut wrote = 0;
        while self.sent < self.bytes.len() {
            match stream.write(&self.bytes[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sent += n;
                    wrote += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((false, wrote)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.clear();
        Ok((true, wrote))
    }

    /// [`write_to`](Self::write_to) for a connection whose `deadline`
    /// follows its client's progress, within `answer_by`: `true` when
    /// nothing is left.
    fn flush(
        &mut self,
        stream: impl Write,
        deadline: &mut Instant,
        answer_by: Instant,
        now: Instant,
    ) -> io::Result<bool> {
        let (done, wrote) = self.write_to(stream)?;
        *deadline = after_progress(*deadline, wrote, now, answer_by);
        Ok(done)
    }
}

/// The deadline after a write of `wrote` bytes at `now`, for an answer
/// due in whole by `cap`: progress moves it to [`ANSWER_IDLE`] later.
pub(super) fn after_progress(
    deadline: Instant,
    wrote: usize,
    now: Instant,
    cap: Instant,
) -> Instant {
    if wrote == 0 {
        deadline
    } else {
        deadline.max((now + ANSWER_IDLE).min(cap))
    }
}

/// One admin client on the daemon's side: a non-blocking stream with its
/// input split into request lines and its output buffered, within the
/// budget described in the module docs.
///
/// A line longer than [`MAX_LINE`] is answered with an error (the caller
/// queues it) and ends the connection's input: nothing after it is read.
/// A last line without its newline is taken as a request at end of file.
pub struct Connection {
    stream: UnixStream,
    input: Vec<u8>,
    output: Outbox,
    eof: bool,
    /// An over-long line was refused: read no more, close once the error
    /// is sent.
    closing: bool,
    /// The client did not read its answers: drop them, send nothing more.
    abandoned: bool,
    deadline: Instant,
    /// When the answers queued must be sent by: [`ANSWER_TIMEOUT`] after
    /// the last complete request.
    answer_by: Instant,
    /// The client's user id (`SO_PEERCRED`), None if it could not be read.
    peer_uid: Option<u32>,
    /// Its answer waits on this ticket (a reload being read off the loop).
    awaiting: Option<u64>,
}

impl Connection {
    /// [`accepted`](Self::accepted) now.
    pub fn new(fd: OwnedFd) -> io::Result<Connection> {
        Connection::accepted(fd, Instant::now())
    }

    /// Takes a connection accepted at `now` (e.g. a reactor accept's
    /// descriptor) and makes it non-blocking. Its first request is due
    /// within [`REQUEST_TIMEOUT`].
    pub fn accepted(fd: OwnedFd, now: Instant) -> io::Result<Connection> {
        let stream = UnixStream::from(fd);
        stream.set_nonblocking(true)?;
        let peer_uid = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
            .ok()
            .map(|c| c.uid());
        Ok(Connection {
            peer_uid,
            stream,
            input: Vec::new(),
            output: Outbox::default(),
            eof: false,
            closing: false,
            abandoned: false,
            deadline: now + REQUEST_TIMEOUT,
            answer_by: now + ANSWER_TIMEOUT,
            awaiting: None,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Its answer comes later, when the work behind `ticket` is done:
    /// nothing more is read, nothing is polled, and the connection is not
    /// finished until [`answer`](Self::answer) queues it. It expires
    /// [`ANSWER_TIMEOUT`] after its request like any answer.
    pub fn defer(&mut self, ticket: u64) {
        self.stop_reading();
        self.awaiting = Some(ticket);
        self.deadline = self.answer_by;
    }

    /// The ticket its answer waits on, if any.
    pub fn awaiting(&self) -> Option<u64> {
        self.awaiting
    }

    /// Queues the deferred answer.
    pub fn answer(&mut self, response: &Response) {
        self.awaiting = None;
        self.queue(response);
    }

    /// The client's user id, as the kernel gave it at connect (None: unknown).
    pub fn peer_uid(&self) -> Option<u32> {
        self.peer_uid
    }

    /// [`read_requests_at`](Self::read_requests_at) now.
    pub fn read_requests(&mut self) -> io::Result<Vec<Result<Request, AdminError>>> {
        self.read_requests_at(Instant::now())
    }

    /// Reads what is available and returns the complete request lines
    /// received, each parsed (blank lines are skipped). Each complete
    /// request moves the deadline to `now +` [`REQUEST_TIMEOUT`]. A line
    /// longer than [`MAX_LINE`] comes back as an error (answer it) and
    /// ends the input. Does nothing once [`wants_read`](Self::wants_read)
    /// is false.
    pub fn read_requests_at(
        &mut self,
        now: Instant,
    ) -> io::Result<Vec<Result<Request, AdminError>>> {
        let mut out = Vec::new();
        if !self.wants_read() {
            return Ok(out);
        }
        self.eof = read_available(&self.stream, &mut self.input, MAX_LINE)?;
        while let Some(pos) = self.input.iter().position(|&b| b == b'\n') {
            if pos > MAX_LINE {
                self.refuse(&mut out);
                return Ok(out);
            }
            let line: Vec<u8> = self.input.drain(..=pos).collect();
            self.take_line(&line[..pos], now, &mut out);
        }
        if self.input.len() > MAX_LINE {
            self.refuse(&mut out);
        } else if self.eof && !self.input.is_empty() {
            let line = std::mem::take(&mut self.input);
            self.take_line(&line, now, &mut out);
        }
        Ok(out)
    }

    fn take_line(&mut self, line: &[u8], now: Instant, out: &mut Vec<Result<Request, AdminError>>) {
        let line = String::from_utf8_lossy(line);
        if line.trim().is_empty() {
            return;
        }
        out.push(parse_request(&line));
        self.deadline = now + REQUEST_TIMEOUT;
        self.answer_by = now + ANSWER_TIMEOUT;
    }

    fn refuse(&mut self, out: &mut Vec<Result<Request, AdminError>>) {
        self.input.clear();
        self.closing = true;
        out.push(Err(AdminError::BadRequest {
            line: String::new(),
            reason: format!("line longer than {MAX_LINE} bytes"),
        }));
    }

    /// Queues a response; [`flush_at`](Self::flush_at) sends it. An
    /// answer larger than [`MAX_OUTPUT`] by itself is replaced by an
    /// error that says so. If answers already wait and this one would make
    /// them more than [`MAX_OUTPUT`] bytes, the client is not reading them:
    /// everything queued is dropped and the connection is
    /// [finished](Self::is_finished).
    pub fn queue(&mut self, response: &Response) {
        if self.abandoned {
            return;
        }
        let mut line = format_response(response);
        if line.len() > MAX_OUTPUT {
            line = format_response(&Response::Error {
                message: format!(
                    "the answer is {} bytes, over the {MAX_OUTPUT} a connection may hold",
                    line.len()
                ),
            });
        }
        if self.output.pending() > 0 && self.output.pending() + line.len() > MAX_OUTPUT {
            self.output.clear();
            self.abandoned = true;
            return;
        }
        self.output.push(line.as_bytes());
    }

    /// [`flush_at`](Self::flush_at) now.
    pub fn flush(&mut self) -> io::Result<bool> {
        self.flush_at(Instant::now())
    }

    /// Writes what the socket takes now; `true` when nothing is left. If
    /// it took anything, the deadline moves to [`ANSWER_IDLE`] after `now`
    /// (never past [`ANSWER_TIMEOUT`] after the request).
    pub fn flush_at(&mut self, now: Instant) -> io::Result<bool> {
        self.output
            .flush(&self.stream, &mut self.deadline, self.answer_by, now)
    }

    /// Answer bytes queued and not sent yet.
    pub fn queued(&self) -> usize {
        self.output.pending()
    }

    /// Reads nothing more: the connection is [finished](Self::is_finished)
    /// once what is queued is sent. The daemon answers one request per
    /// connection and then closes it, as clients that read to end of file
    /// (`socat`, scripts, the benches) expect.
    pub fn stop_reading(&mut self) {
        self.closing = true;
        self.input.clear();
    }

    /// More requests may come: poll for readable.
    pub fn wants_read(&self) -> bool {
        !self.eof && !self.closing && !self.abandoned
    }

    /// Answers wait to be sent: poll for writable.
    pub fn wants_write(&self) -> bool {
        self.output.pending() > 0
    }

    /// The client closed its side; close once [`Connection::flush`] is done.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Nothing more will be read and everything queued was sent: close it.
    pub fn is_finished(&self) -> bool {
        self.abandoned || (self.awaiting.is_none() && !self.wants_read() && self.output.pending() == 0)
    }

    /// When the connection expires unless a complete request arrives, or
    /// its socket takes more of its answer, first.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The connection went [`REQUEST_TIMEOUT`] without a complete request,
    /// or [`ANSWER_IDLE`] without taking any of its answer (or its answer
    /// took [`ANSWER_TIMEOUT`]): close it.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }
}

/// How far an [`HttpConnection`]'s request has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpRead {
    /// The head has not ended yet: read again when readable (until expired).
    Pending,
    /// The head ended (`\r\n\r\n`): queue the answer.
    Complete,
    /// [`MAX_HTTP_REQUEST`] bytes without the end of the head.
    TooLarge,
    /// The client closed its side before the end of the head.
    Closed,
}

/// One HTTP/1.x client of the metrics endpoint on the daemon's side: reads
/// the request head (up to the blank line, within [`MAX_HTTP_REQUEST`]
/// bytes) without blocking, then sends the one answer the caller queues
/// and is finished (`Connection: close`). The head is due within
/// [`HTTP_TIMEOUT`] of the accept; the answer is then sent as the admin
/// side's is (its deadline follows the client's progress, within
/// [`ANSWER_TIMEOUT`] of the accept). What the head says is not looked at:
/// the endpoint answers every request alike.
pub struct HttpConnection {
    stream: TcpStream,
    input: Vec<u8>,
    output: Outbox,
    read: HttpRead,
    answered: bool,
    deadline: Instant,
    answer_by: Instant,
}

impl HttpConnection {
    /// Takes a connection accepted at `now` and makes it non-blocking.
    pub fn accepted(fd: OwnedFd, now: Instant) -> io::Result<HttpConnection> {
        let stream = TcpStream::from(fd);
        stream.set_nonblocking(true)?;
        Ok(HttpConnection {
            stream,
            input: Vec::new(),
            output: Outbox::default(),
            read: HttpRead::Pending,
            answered: false,
            deadline: now + HTTP_TIMEOUT,
            answer_by: now + ANSWER_TIMEOUT,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Reads what is available of the request head. Once the answer is not
    /// [`HttpRead::Pending`] it stays so and nothing more is read.
    pub fn read_request(&mut self) -> io::Result<HttpRead> {
        if self.read != HttpRead::Pending {
            return Ok(self.read);
        }
        let eof = read_available(&self.stream, &mut self.input, MAX_HTTP_REQUEST)?;
        let end = self
            .input
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4);
        self.read = match end {
            Some(end) if end <= MAX_HTTP_REQUEST => HttpRead::Complete,
            _ if self.input.len() >= MAX_HTTP_REQUEST => HttpRead::TooLarge,
            _ if eof => HttpRead::Closed,
            _ => HttpRead::Pending,
        };
        if self.read != HttpRead::Pending {
            self.input = Vec::new();
        }
        Ok(self.read)
    }

    /// Queues the answer (a whole HTTP response, e.g.
    /// [`crate::metrics::http_response`]); [`flush_at`](Self::flush_at)
    /// sends it. Reading stops. (The metrics of the design maximum are
    /// well within [`MAX_OUTPUT`].)
    pub fn queue(&mut self, response: &[u8]) {
        self.output.push(response);
        self.answered = true;
    }

    /// [`flush_at`](Self::flush_at) now.
    pub fn flush(&mut self) -> io::Result<bool> {
        self.flush_at(Instant::now())
    }

    /// Writes what the socket takes now; `true` when nothing is left. If
    /// it took anything, the deadline moves to [`ANSWER_IDLE`] after `now`
    /// (never past [`ANSWER_TIMEOUT`] after the accept).
    pub fn flush_at(&mut self, now: Instant) -> io::Result<bool> {
        self.output
            .flush(&self.stream, &mut self.deadline, self.answer_by, now)
    }

    /// Answer bytes queued and not sent yet.
    pub fn queued(&self) -> usize {
        self.output.pending()
    }

    /// The request head may still come: poll for readable.
    pub fn wants_read(&self) -> bool {
        !self.answered && self.read == HttpRead::Pending
    }

    /// The answer waits to be sent: poll for writable.
    pub fn wants_write(&self) -> bool {
        self.output.pending() > 0
    }

    /// The answer was queued and sent: close it.
    pub fn is_finished(&self) -> bool {
        self.answered && self.output.pending() == 0
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The head took longer than [`HTTP_TIMEOUT`], or the answer went
    /// [`ANSWER_IDLE`] without progress (or took [`ANSWER_TIMEOUT`]): close it.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }
}
