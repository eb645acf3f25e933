//! The sync runtime's system calls that are not reads and writes: the
//! kernel's randomness (nonces, stream ids), a non-blocking dial, and
//! making an accepted socket non-blocking. Decides nothing.

use std::{
    io,
    net::{SocketAddr, TcpStream},
    os::fd::{FromRawFd, RawFd},
};

use crate::sync::wire::{NONCE_LEN, Nonce};

/// A random u64 from the kernel (nonces, stream ids).
pub fn random_u64() -> u64 {
    let mut v = 0u64;
    loop {
        // SAFETY: writes at most 8 bytes into a valid u64.
        let n = unsafe { libc::getrandom(&mut v as *mut u64 as *mut _, 8, 0) };
        if n == 8 {
            return v;
        }
    }
}

/// Fills `buf` from the kernel's random source.
fn random_bytes(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: writes at most rest.len() bytes into a valid buffer.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr() as *mut _, rest.len(), 0) };
        if n > 0 {
            done += n as usize;
        }
    }
}

/// A fresh handshake nonce: [`NONCE_LEN`] random bytes.
pub fn random_nonce() -> Nonce {
    let mut b = [0u8; NONCE_LEN];
    random_bytes(&mut b);
    Nonce::new(b)
}

pub(super) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a valid descriptor.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Starts a non-blocking TCP connect; the stream is writable when done.
pub(super) fn dial(peer: SocketAddr) -> io::Result<TcpStream> {
    let (family, sa, len) = match peer {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            (libc::AF_INET, ss, std::mem::size_of::<libc::sockaddr_in>())
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (
                libc::AF_INET6,
                ss,
                std::mem::size_of::<libc::sockaddr_in6>(),
            )
        }
    };
    // SAFETY: plain socket(2); owned right after.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is new and owned by nothing else.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    // SAFETY: sa is valid for len bytes.
    let rc = unsafe { libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len as u32) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
