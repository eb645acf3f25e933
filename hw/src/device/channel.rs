//! Channel files: [`Channel`] owns one open channel (`chan/SSS/CCC`, or
//! `channel` bound with `DAHDI_SPECIFY`) and issues its ioctls: parameters
//! (`GET_PARAMS`, `SET_PARAMS`), the hookswitch (`HOOK`), signalling events
//! (`GETEVENT`), `CHANNO`, `GET_BUFINFO` and `SPANSTAT` of its span.
//!
//! One safe method per ioctl, with `unsafe` confined to the line that makes
//! the call. It must not block except in [`Channel::wait_event`], which is
//! bounded by its timeout; event loops poll the fd for `POLLPRI` themselves
//! and call [`Channel::event`]. It keeps no call state: what a hook change or
//! an event means is the caller's business.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::error::{Error, Result, ioctl_error};
use super::values::{Event, Hook, SpanStatus};
use super::{ioctls, open_node};
use crate::abi::{self, dahdi_params};

/// One open channel: hook operations, parameters and signalling events.
///
/// The fd is exposed ([`AsRawFd`], [`AsFd`]) so an event loop can wait for
/// `POLLPRI` on it (io_uring `POLL_ADD`) and then call [`Channel::event`].
#[derive(Debug)]
pub struct Channel {
    file: File,
    path: PathBuf,
}

impl Channel {
    /// The path of channel `position` of span `span` under `root`: `chan/SSS/CCC`.
    pub fn node_path(root: impl AsRef<Path>, span: i32, position: i32) -> PathBuf {
        root.as_ref()
            .join("chan")
            .join(format!("{span:03}"))
            .join(format!("{position:03}"))
    }

    /// Open channel `position` of span `span` through `<root>/chan/SSS/CCC`.
    pub fn open(root: impl AsRef<Path>, span: i32, position: i32) -> Result<Channel> {
        let path = Channel::node_path(root, span, position);
        let file = open_node(&path)?;
        Ok(Channel { file, path })
    }

    /// Open `<root>/channel` and bind it to card-wide channel number `channel` with `DAHDI_SPECIFY`.
    pub fn open_by_number(root: impl AsRef<Path>, channel: i32) -> Result<Channel> {
        let path = root.as_ref().join("channel");
        let file = open_node(&path)?;
        // SAFETY: the fd was just opened; the driver reads one int.
        let res = unsafe { ioctls::specify(file.as_raw_fd(), &channel) };
        res.map_err(|e| ioctl_error(&path, "DAHDI_SPECIFY", e))?;
        Ok(Channel { file, path })
    }

    /// The path this channel was opened through.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `DAHDI_GET_PARAMS`: this channel's parameters, hook and alarm state.
    pub fn params(&self) -> Result<dahdi_params> {
        let mut params = dahdi_params::default();
        // SAFETY: the fd is open; the driver reads and writes size_of(dahdi_params) bytes.
        let res = unsafe { ioctls::get_params(self.file.as_raw_fd(), &mut params) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_GET_PARAMS", e))?;
        Ok(params)
    }

    /// `DAHDI_SET_PARAMS`: set this channel's timing parameters (wink, flash, debounce…).
    pub fn set_params(&self, params: &dahdi_params) -> Result<()> {
        // SAFETY: the fd is open; the driver reads size_of(dahdi_params) bytes.
        let res = unsafe { ioctls::set_params(self.file.as_raw_fd(), params) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_SET_PARAMS", e))?;
        Ok(())
    }

    /// `DAHDI_HOOK`: go on/off hook, wink, flash, start, ring or stop ringing.
    pub fn hook(&self, hook: Hook) -> Result<()> {
        self.hook_raw(hook as i32)
    }

    /// `DAHDI_HOOK` with a raw value.
    pub fn hook_raw(&self, value: i32) -> Result<()> {
        // SAFETY: the fd is open; the driver reads one int.
        let res = unsafe { ioctls::hook(self.file.as_raw_fd(), &value) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_HOOK", e))?;
        Ok(())
    }

    /// `DAHDI_GETEVENT`: take the next signalling event, `None` if the queue is empty.
    pub fn event(&self) -> Result<Option<Event>> {
        let mut code = abi::DAHDI_EVENT_NONE;
        // SAFETY: the fd is open; the driver writes one int.
        let res = unsafe { ioctls::get_event(self.file.as_raw_fd(), &mut code) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_GETEVENT", e))?;
        Ok(Event::from_raw(code))
    }

    /// `DAHDI_CHANNO`: the card-wide channel number behind this file.
    pub fn number(&self) -> Result<i32> {
        let mut channo = 0;
        // SAFETY: the fd is open; the driver writes one int.
        let res = unsafe { ioctls::chan_no(self.file.as_raw_fd(), &mut channo) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_CHANNO", e))?;
        Ok(channo)
    }

    /// `DAHDI_GET_BUFINFO`: the channel's audio buffer policy.
    pub fn buffer_info(&self) -> Result<abi::dahdi_bufferinfo> {
        let mut info = abi::dahdi_bufferinfo::default();
        // SAFETY: the fd is open; the driver writes size_of(dahdi_bufferinfo) bytes.
        let res = unsafe { ioctls::get_bufinfo(self.file.as_raw_fd(), &mut info) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_GET_BUFINFO", e))?;
        Ok(info)
    }

    /// `DAHDI_SPANSTAT` through this channel: the status of the span it belongs to.
    pub fn span_status(&self) -> Result<SpanStatus> {
        let mut info = abi::dahdi_spaninfo::default();
        // SAFETY: the fd is open; the driver reads and writes size_of(dahdi_spaninfo) bytes.
        let res = unsafe { ioctls::span_stat(self.file.as_raw_fd(), &mut info) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_SPANSTAT", e))?;
        Ok(SpanStatus::from(&info))
    }

    /// Wait up to `timeout` for a signalling event: `poll(2)` for `POLLPRI`, then
    /// `DAHDI_GETEVENT`. `Ok(None)` when the timeout passes without one.
    ///
    /// Meant for tests and tools; the control plane polls the fd from its own loop.
    pub fn wait_event(&self, timeout: Duration) -> Result<Option<Event>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.event()? {
                return Ok(Some(event));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let millis = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLPRI)];
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(0) => continue,
                Ok(_) => {
                    let revents = fds[0].revents().unwrap_or(PollFlags::empty());
                    let broken = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
                    if revents.intersects(broken) {
                        // Let GETEVENT say why (ENOTCONN, ENODEV…) if it can.
                        self.event()?;
                        return Err(Error::Poll {
                            path: self.path.clone(),
                            reason: format!("device reported {revents:?}"),
                        });
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(Error::Poll {
                        path: self.path.clone(),
                        reason: errno.to_string(),
                    });
                }
            }
        }
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
