//! The few raw system calls the failover bench makes itself: an errno
//! check, socket timeouts, a pipe, and sleeping until a CLOCK_MONOTONIC
//! instant. Each `unsafe` block is one call with its `SAFETY` note.

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Result, bail};

pub(super) fn cvt(r: libc::c_int, what: &str) -> Result<libc::c_int> {
    if r < 0 {
        bail!("{what}: {}", std::io::Error::last_os_error());
    }
    Ok(r)
}

pub(super) fn set_timeout(fd: libc::c_int, opt: libc::c_int, d: Duration) -> Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: tv is a valid timeval of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    cvt(r, "setsockopt(timeout)").map(drop)
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    cvt(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        "pipe2",
    )?;
    // SAFETY: both are fresh fds nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub(super) use crate::lab::wait::sleep_until_ns;
