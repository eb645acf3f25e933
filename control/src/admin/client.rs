//! The blocking client `tandemctl` (and the tests) use: one request, one
//! response line, within a timeout, with errors that name the socket and
//! say what to do.
//!
//! It must not be used inside tandemd's loop: it blocks (for at most its
//! timeout).

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use super::io_err;
use super::protocol::{AdminError, CARDS_REQUEST, MAX_LINE, Request, Response};

/// Sends one request to the daemon at `socket` and waits (at most
/// `timeout`) for its response. Errors name the socket path.
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
    let stream = connect(socket, timeout).map_err(|e| connect_error(socket, e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(io_err(socket, "setting timeouts"))?;
    line.push('\n');
    (&stream)
        .write_all(line.as_bytes())
        .map_err(|e| timeout_or(socket, timeout, "sending the request", e))?;
    let mut reader = BufReader::new((&stream).take(MAX_LINE as u64 + 1));
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .map_err(|e| timeout_or(socket, timeout, "reading the response", e))?;
    if answer.is_empty() {
        return Err(AdminError::BadResponse {
            path,
            reason: "the daemon closed the connection without answering".into(),
        });
    }
    if !answer.ends_with('\n') {
        return Err(AdminError::BadResponse {
            path,
            reason: format!("unterminated or longer than {MAX_LINE} bytes"),
        });
    }
    serde_json::from_str(answer.trim_end()).map_err(|e| AdminError::BadResponse {
        path,
        reason: e.to_string(),
    })
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
        let fd = socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)
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
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("the daemon accepted no connection within {timeout:?}")));
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
