//! The blocking client `tandemctl` (and the tests) use: one request, one
//! response line (of up to [`MAX_ANSWER`] bytes: at the design maximum an
//! answer is about a megabyte), the whole exchange within a timeout, with
//! errors that name the socket and say what to do.
//!
//! It must not be used inside tandemd's loop: it blocks (for at most its
//! timeout).

use std::{
    io::{self, Read, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::{Duration, Instant},
};

use super::io_err;
use super::protocol::{AdminError, CARDS_REQUEST, MAX_ANSWER, Request, Response};

/// Size of one `read(2)` of an answer.
const READ_CHUNK: usize = 64 * 1024;

/// Sends one request to the daemon at `socket` and waits for its response,
/// all of it within `timeout`. Errors name the socket path.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, AdminError> {
    let line = serde_json::to_string(req).map_err(|e| AdminError::BadRequest {
        line: format!("{req:?}"),
        reason: e.to_string(),
    })?;
    request_line(socket, line, timeout)
}

/// Asks for the telephony cards (`{"cmd":"cards"}`), as [`request`] does.
pub fn request_cards(socket: &Path, timeout: Duration) -> Result<Response, AdminError> {
    request_line(socket, CARDS_REQUEST.to_string(), timeout)
}

fn request_line(
    socket: &Path,
    mut line: String,
    timeout: Duration,
) -> Result<Response, AdminError> {
    let path = socket.to_owned();
    let end = Instant::now() + timeout;
    let stream = connect(socket, timeout).map_err(|e| connect_error(socket, e))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(io_err(socket, "setting timeouts"))?;
    line.push('\n');
    (&stream)
        .write_all(line.as_bytes())
        .map_err(|e| timeout_or(socket, timeout, "sending the request", e))?;
    let answer = read_answer(&stream, end)
        .map_err(|e| timeout_or(socket, timeout, "reading the response", e))?;
    if answer.is_empty() {
        return Err(AdminError::BadResponse {
            path,
            reason: "the daemon closed the connection without answering".into(),
        });
    }
    if !answer.ends_with(b"\n") {
        return Err(AdminError::BadResponse {
            path,
            reason: if answer.len() > MAX_ANSWER {
                format!("the answer is longer than {MAX_ANSWER} bytes")
            } else {
                format!(
                    "the daemon closed the connection after {} bytes, before the end of its answer",
                    answer.len()
                )
            },
        });
    }
    serde_json::from_slice(&answer).map_err(|e| AdminError::BadResponse {
        path,
        reason: e.to_string(),
    })
}

/// Reads the answer line: up to and with its newline, to end of file, or
/// to the first bytes past [`MAX_ANSWER`], whichever comes first, by `end`
/// (else `TimedOut`).
fn read_answer(mut stream: &UnixStream, end: Instant) -> io::Result<Vec<u8>> {
    let mut answer = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    while answer.len() <= MAX_ANSWER {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let got = &buf[..n];
                if let Some(nl) = got.iter().position(|&b| b == b'\n') {
                    answer.extend_from_slice(&got[..=nl]);
                    break;
                }
                answer.extend_from_slice(got);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(answer)
}

/// Connects to the daemon's socket within `timeout`. A blocking
/// `connect(2)` on a Unix socket waits as long as the listener's backlog
/// is full (a daemon that does not accept): this one is non-blocking and
/// retries until the timeout, then says `TimedOut`. The stream it returns
/// is blocking.
pub fn connect(socket: &Path, timeout: Duration) -> io::Result<UnixStream> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
    let addr = UnixAddr::new(socket).map_err(io::Error::from)?;
    let end = std::time::Instant::now() + timeout;
    loop {
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(io::Error::from)?;
        match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
            Ok(()) => {
                let stream = UnixStream::from(fd);
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            // The backlog is full: the daemon is not accepting now.
            Err(nix::errno::Errno::EAGAIN) if std::time::Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(nix::errno::Errno::EAGAIN) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the daemon accepted no connection within {timeout:?}"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Maps a failed connect to an error that says what to do.
pub fn connect_error(path: &Path, e: io::Error) -> AdminError {
    let path = path.to_owned();
    match e.kind() {
        io::ErrorKind::NotFound => AdminError::NoSocket { path },
        io::ErrorKind::PermissionDenied => AdminError::PermissionDenied { path },
        io::ErrorKind::ConnectionRefused => AdminError::NotListening { path },
        _ => AdminError::Io {
            path,
            op: "connecting",
            source: e,
        },
    }
}

fn timeout_or(path: &Path, timeout: Duration, op: &'static str, e: io::Error) -> AdminError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => AdminError::Timeout {
            path: path.to_owned(),
            timeout,
        },
        _ => AdminError::Io {
            path: path.to_owned(),
            op,
            source: e,
        },
    }
}
