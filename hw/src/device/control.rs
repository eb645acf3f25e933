//! The control node: [`Control`] owns the `ctl` file of a device root and
//! issues the span-wide ioctls (`SPANSTAT`, `SPANCONFIG`, `CHANCONFIG`,
//! `ATTACH_ECHOCAN`, `STARTUP`, `SHUTDOWN`, `MAINT`, `GETVERSION`, and `GET_PARAMS` by channel
//! number) and tandem's failover-switch watchdog extension
//! (`TANDEM_WATCHDOG_ARM`, `KICK`, `DISARM`, `STATUS`); [`Span`] is a
//! borrowed view of one span through it.
//!
//! One safe method per ioctl, with `unsafe` confined to the line that makes
//! the call. It must not decide when a span starts or stops (the control
//! plane does), and it must not open channel files itself beyond
//! [`Span::channel`], which hands over to [`Channel::open`].

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;

use super::error::{Error, Result, ioctl_error};
use super::values::{ChannelConfig, LineConfig, MaintCommand, SpanStatus, Version, WatchdogStatus};
use super::{Channel, DEFAULT_DEVICE_ROOT, ioctls, open_node};
use crate::abi::{self, dahdi_params};

/// The `ctl` node of a DAHDI system: span-wide operations.
#[derive(Debug)]
pub struct Control {
    file: File,
    path: PathBuf,
    root: PathBuf,
}

impl Control {
    /// Open `<root>/ctl` (the root is `/dev/dahdi` on a real system, a mount on the simulator).
    pub fn open(root: impl AsRef<Path>) -> Result<Control> {
        let root = root.as_ref().to_owned();
        let path = root.join("ctl");
        let file = open_node(&path)?;
        Ok(Control { file, path, root })
    }

    /// Open `/dev/dahdi/ctl`.
    pub fn open_default() -> Result<Control> {
        Control::open(DEFAULT_DEVICE_ROOT)
    }

    /// The path of the `ctl` node.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device root this node was opened under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `DAHDI_GETVERSION`: the driver's version and its echo cancellers.
    pub fn version(&self) -> Result<Version> {
        let mut info = abi::dahdi_versioninfo::default();
        // SAFETY: the fd is open for the life of `self`; the driver writes at most size_of(info) bytes.
        let res = unsafe { ioctls::get_version(self.file.as_raw_fd(), &mut info) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_GETVERSION", e))?;
        Ok(Version {
            version: abi::c_string(&info.version),
            echo_canceller: abi::c_string(&info.echo_canceller),
        })
    }

    /// `DAHDI_SPANSTAT`: the status and alarms of span `span` (1-based).
    pub fn span_status(&self, span: i32) -> Result<SpanStatus> {
        self.span_info(span).map(|info| SpanStatus::from(&info))
    }

    /// `DAHDI_SPANSTAT`, the raw struct.
    pub fn span_info(&self, span: i32) -> Result<abi::dahdi_spaninfo> {
        let mut info = abi::dahdi_spaninfo {
            spanno: span,
            ..Default::default()
        };
        // SAFETY: the fd is open; the driver reads and writes exactly size_of(dahdi_spaninfo) bytes.
        let res = unsafe { ioctls::span_stat(self.file.as_raw_fd(), &mut info) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_SPANSTAT", e))?;
        Ok(info)
    }

    /// All spans of the system, in span-number order (`DAHDI_SPANSTAT` from span 1 on,
    /// until `totalspans` have answered).
    pub fn spans(&self) -> Result<Vec<SpanStatus>> {
        let mut spans = Vec::new();
        for span in 1..=abi::DAHDI_MAX_SPANS {
            match self.span_status(span) {
                Ok(status) => {
                    let total = status.total_spans;
                    spans.push(status);
                    if spans.len() as i32 >= total {
                        break;
                    }
                }
                // Span numbers may have holes.
                Err(Error::Ioctl {
                    errno: Errno::EINVAL,
                    ..
                }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(spans)
    }

    /// A view of span `span` through this control node.
    pub fn span(&self, span: i32) -> Span<'_> {
        Span {
            control: self,
            span,
        }
    }

    /// `DAHDI_SPANCONFIG`: set span `span`'s framing, coding, build-out and timing priority.
    pub fn configure_span(&self, span: i32, config: &LineConfig) -> Result<()> {
        let mut line = abi::dahdi_lineconfig {
            span,
            lbo: config.lbo,
            lineconfig: config.line_config,
            sync: config.sync,
            ..Default::default()
        };
        line.name = [0; 20];
        // SAFETY: the fd is open; the driver reads size_of(dahdi_lineconfig) bytes.
        let res = unsafe { ioctls::span_config(self.file.as_raw_fd(), &line) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_SPANCONFIG", e))?;
        Ok(())
    }

    /// `DAHDI_CHANCONFIG`: set a channel's signalling type and law.
    pub fn configure_channel(&self, config: &ChannelConfig) -> Result<()> {
        let chan = abi::dahdi_chanconfig {
            chan: config.channel,
            sigtype: config.signalling,
            deflaw: config.law,
            master: config.channel,
            idlebits: config.idle_bits,
            ..Default::default()
        };
        // SAFETY: the fd is open; the driver reads size_of(dahdi_chanconfig) bytes.
        let res = unsafe { ioctls::chan_config(self.file.as_raw_fd(), &chan) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_CHANCONFIG", e))?;
        Ok(())
    }

    /// `DAHDI_ATTACH_ECHOCAN`: give channel `channel` the echo canceller
    /// named `name` (`None`: none). The driver refuses a name it has no echo
    /// canceller of with `EINVAL`; a name longer than 15 bytes is `EINVAL` here.
    pub fn attach_echocan(&self, channel: i32, name: Option<&str>) -> Result<()> {
        let mut attach = abi::dahdi_attach_echocan {
            chan: channel,
            ..Default::default()
        };
        let name = name.unwrap_or("");
        if name.len() >= attach.echocan.len() {
            return Err(ioctl_error(
                &self.path,
                "DAHDI_ATTACH_ECHOCAN",
                Errno::EINVAL,
            ));
        }
        abi::set_c_string(&mut attach.echocan, name);
        // SAFETY: the fd is open; the driver reads size_of(dahdi_attach_echocan) bytes.
        let res = unsafe { ioctls::attach_echocan(self.file.as_raw_fd(), &attach) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_ATTACH_ECHOCAN", e))?;
        Ok(())
    }

    /// `DAHDI_STARTUP`: start span `span` (the driver hangs up its channels and runs it).
    pub fn startup(&self, span: i32) -> Result<()> {
        // SAFETY: the fd is open; the driver reads one int.
        let res = unsafe { ioctls::startup(self.file.as_raw_fd(), &span) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_STARTUP", e))?;
        Ok(())
    }

    /// `DAHDI_SHUTDOWN`: stop span `span`; its channels lose their signalling configuration.
    pub fn shutdown(&self, span: i32) -> Result<()> {
        // SAFETY: the fd is open; the driver reads one int.
        let res = unsafe { ioctls::shutdown(self.file.as_raw_fd(), &span) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_SHUTDOWN", e))?;
        Ok(())
    }

    /// `DAHDI_MAINT`: put span `span` in a maintenance mode (loopbacks, defects, alarm simulation).
    pub fn maint(&self, span: i32, command: MaintCommand) -> Result<()> {
        self.maint_raw(span, command as i32)
    }

    /// `DAHDI_MAINT` with a raw command number.
    pub fn maint_raw(&self, span: i32, command: i32) -> Result<()> {
        let info = abi::dahdi_maintinfo {
            spanno: span,
            command,
        };
        // SAFETY: the fd is open; the driver reads size_of(dahdi_maintinfo) bytes.
        let res = unsafe { ioctls::maint(self.file.as_raw_fd(), &info) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_MAINT", e))?;
        Ok(())
    }

    /// `DAHDI_GET_PARAMS` on the control node: the parameters of channel `channel` (card-wide number).
    pub fn channel_params(&self, channel: i32) -> Result<dahdi_params> {
        let mut params = dahdi_params {
            channo: channel,
            ..Default::default()
        };
        // SAFETY: the fd is open; the driver reads and writes size_of(dahdi_params) bytes.
        let res = unsafe { ioctls::get_params(self.file.as_raw_fd(), &mut params) };
        res.map_err(|e| ioctl_error(&self.path, "DAHDI_GET_PARAMS", e))?;
        Ok(params)
    }

    /// `TANDEM_WATCHDOG_ARM`: arm the card's failover-switch watchdog. The
    /// switch holds the trunk on this card while it is kicked at least every
    /// `timeout`, and releases the card when it is not. Arming counts as a
    /// kick and takes back an earlier release. `timeout` must be within
    /// [`abi::TANDEM_WATCHDOG_MIN_MS`] ..= [`abi::TANDEM_WATCHDOG_MAX_MS`]
    /// milliseconds (checked before the call: [`Error::Argument`]).
    pub fn watchdog_arm(&self, timeout: std::time::Duration) -> Result<()> {
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let range = abi::TANDEM_WATCHDOG_MIN_MS..=abi::TANDEM_WATCHDOG_MAX_MS;
        if !range.contains(&ms) || Duration::from_millis(u64::from(ms)) != timeout {
            return Err(Error::Argument {
                path: self.path.clone(),
                ioctl: "TANDEM_WATCHDOG_ARM",
                field: "timeout_ms (10..=60000, whole milliseconds)",
                value: i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX),
            });
        }
        self.watchdog_arm_raw(ms)
    }

    /// `TANDEM_WATCHDOG_ARM` with a raw timeout in milliseconds (no check here).
    pub fn watchdog_arm_raw(&self, timeout_ms: u32) -> Result<()> {
        // SAFETY: the fd is open; the driver reads one u32.
        let res = unsafe { ioctls::watchdog_arm(self.file.as_raw_fd(), &timeout_ms) };
        res.map_err(|e| ioctl_error(&self.path, "TANDEM_WATCHDOG_ARM", e))?;
        Ok(())
    }

    /// `TANDEM_WATCHDOG_KICK`: the host is alive; the switch keeps the trunk
    /// here. `EINVAL` if the watchdog is not armed, `ETIMEDOUT` once it expired.
    pub fn watchdog_kick(&self) -> Result<()> {
        // SAFETY: the fd is open; the request carries no argument.
        let res = unsafe { ioctls::watchdog_kick(self.file.as_raw_fd()) };
        res.map_err(|e| ioctl_error(&self.path, "TANDEM_WATCHDOG_KICK", e))?;
        Ok(())
    }

    /// `TANDEM_WATCHDOG_DISARM`: stop the watchdog; the trunk stays where it is.
    pub fn watchdog_disarm(&self) -> Result<()> {
        // SAFETY: the fd is open; the request carries no argument.
        let res = unsafe { ioctls::watchdog_disarm(self.file.as_raw_fd()) };
        res.map_err(|e| ioctl_error(&self.path, "TANDEM_WATCHDOG_DISARM", e))?;
        Ok(())
    }

    /// `TANDEM_WATCHDOG_STATUS`: armed or not, timeout, time since the last
    /// kick, expiries, whether the relay released this card and which card
    /// it holds the trunk for.
    pub fn watchdog_status(&self) -> Result<WatchdogStatus> {
        let mut status = abi::tandem_watchdog_status::default();
        // SAFETY: the fd is open; the driver writes size_of(tandem_watchdog_status) bytes.
        let res = unsafe { ioctls::watchdog_status(self.file.as_raw_fd(), &mut status) };
        res.map_err(|e| ioctl_error(&self.path, "TANDEM_WATCHDOG_STATUS", e))?;
        Ok(WatchdogStatus::from(&status))
    }
}

impl AsRawFd for Control {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for Control {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// One span, seen through the control node.
#[derive(Clone, Copy, Debug)]
pub struct Span<'a> {
    control: &'a Control,
    span: i32,
}

impl Span<'_> {
    /// The span number.
    pub fn number(&self) -> i32 {
        self.span
    }

    /// `DAHDI_SPANSTAT` for this span.
    pub fn status(&self) -> Result<SpanStatus> {
        self.control.span_status(self.span)
    }

    /// `DAHDI_SPANCONFIG` for this span.
    pub fn configure(&self, config: &LineConfig) -> Result<()> {
        self.control.configure_span(self.span, config)
    }

    /// `DAHDI_STARTUP` for this span.
    pub fn startup(&self) -> Result<()> {
        self.control.startup(self.span)
    }

    /// `DAHDI_SHUTDOWN` for this span.
    pub fn shutdown(&self) -> Result<()> {
        self.control.shutdown(self.span)
    }

    /// `DAHDI_MAINT` for this span.
    pub fn maint(&self, command: MaintCommand) -> Result<()> {
        self.control.maint(self.span, command)
    }

    /// Open channel `position` (1-based within the span) through `chan/<span>/<position>`.
    pub fn channel(&self, position: i32) -> Result<Channel> {
        Channel::open(self.control.root(), self.span, position)
    }
}
