//! The card driver: safe, typed wrappers over DAHDI ioctls on real file
//! descriptors, in the style of rust-vmm's kvm-ioctls.
//!
//! This module owns the device files: [`Control`] owns the `ctl` node and
//! [`Channel`] owns one channel file (`chan/<span>/<chan>`, or `channel`
//! bound with `DAHDI_SPECIFY`); [`Span`] is a view through the control node.
//! Each ioctl is one method; `unsafe` is confined to the single line that
//! makes the call. Errors name the device path, the ioctl and the errno.
//!
//! It must not decide anything: which spans to start, and when, is the
//! control plane's business. It does not require the nodes to be character
//! devices, so the same code drives the simulator's regular files. It does not
//! block except in [`Channel::wait_event`], which is bounded by its timeout;
//! event-driven callers poll the channel's fd for `POLLPRI` themselves (for
//! example through io_uring) and then call [`Channel::event`].

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::abi::{self, dahdi_params};

/// Where the DAHDI nodes live on a real system.
pub const DEFAULT_DEVICE_ROOT: &str = "/dev/dahdi";

/// The ioctls, each bound once to its request code from [`crate::abi`].
mod ioctls {
    use crate::abi::*;

    nix::ioctl_readwrite_bad!(get_params, DAHDI_GET_PARAMS, dahdi_params);
    nix::ioctl_write_ptr_bad!(set_params, DAHDI_SET_PARAMS, dahdi_params);
    nix::ioctl_write_ptr_bad!(hook, DAHDI_HOOK, i32);
    nix::ioctl_read_bad!(get_event, DAHDI_GETEVENT, i32);
    nix::ioctl_readwrite_bad!(span_stat, DAHDI_SPANSTAT, dahdi_spaninfo);
    nix::ioctl_write_ptr_bad!(maint, DAHDI_MAINT, dahdi_maintinfo);
    nix::ioctl_write_ptr_bad!(span_config, DAHDI_SPANCONFIG, dahdi_lineconfig);
    nix::ioctl_write_ptr_bad!(chan_config, DAHDI_CHANCONFIG, dahdi_chanconfig);
    nix::ioctl_read_bad!(get_bufinfo, DAHDI_GET_BUFINFO, dahdi_bufferinfo);
    nix::ioctl_read_bad!(chan_no, DAHDI_CHANNO, i32);
    nix::ioctl_write_ptr_bad!(specify, DAHDI_SPECIFY, i32);
    nix::ioctl_read_bad!(get_version, DAHDI_GETVERSION, dahdi_versioninfo);
    nix::ioctl_write_ptr_bad!(startup, DAHDI_STARTUP, i32);
    nix::ioctl_write_ptr_bad!(shutdown, DAHDI_SHUTDOWN, i32);
}

/// What went wrong talking to a card.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device file could not be opened.
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The driver refused an ioctl.
    #[error("{}: {ioctl} failed: {errno}", path.display())]
    Ioctl {
        path: PathBuf,
        ioctl: &'static str,
        errno: Errno,
    },
    /// Waiting for a channel event failed, or the device reported an error condition.
    #[error("{}: waiting for a channel event: {reason}", path.display())]
    Poll { path: PathBuf, reason: String },
    /// An argument the driver would reject anyway, caught before the call.
    #[error("{}: {ioctl}: {field} = {value} is out of range", path.display())]
    Argument {
        path: PathBuf,
        ioctl: &'static str,
        field: &'static str,
        value: i64,
    },
}

impl Error {
    /// The errno behind this error, if the kernel (or the simulator) gave one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Open { source, .. } => source.raw_os_error().map(Errno::from_raw),
            Error::Ioctl { errno, .. } => Some(*errno),
            Error::Poll { .. } | Error::Argument { .. } => None,
        }
    }
}

/// Result of a card operation.
pub type Result<T> = std::result::Result<T, Error>;

fn open_node(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })
}

fn ioctl_error(path: &Path, ioctl: &'static str, errno: Errno) -> Error {
    Error::Ioctl {
        path: path.to_owned(),
        ioctl,
        errno,
    }
}

// ---------------------------------------------------------------------------
// Typed values
// ---------------------------------------------------------------------------

/// A span's alarm bits (`DAHDI_ALARM_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Alarms(pub u32);

impl Alarms {
    pub const NONE: Alarms = Alarms(abi::DAHDI_ALARM_NONE);
    pub const RECOVER: Alarms = Alarms(abi::DAHDI_ALARM_RECOVER);
    pub const LOOPBACK: Alarms = Alarms(abi::DAHDI_ALARM_LOOPBACK);
    pub const YELLOW: Alarms = Alarms(abi::DAHDI_ALARM_YELLOW);
    pub const RED: Alarms = Alarms(abi::DAHDI_ALARM_RED);
    pub const BLUE: Alarms = Alarms(abi::DAHDI_ALARM_BLUE);
    pub const NOTOPEN: Alarms = Alarms(abi::DAHDI_ALARM_NOTOPEN);
    pub const LOS: Alarms = Alarms(abi::DAHDI_ALARM_LOS);
    pub const LFA: Alarms = Alarms(abi::DAHDI_ALARM_LFA);
    pub const LMFA: Alarms = Alarms(abi::DAHDI_ALARM_LMFA);

    /// Every named alarm bit, with its name as dahdi_tool prints it.
    pub const NAMED: [(Alarms, &'static str); 9] = [
        (Alarms::RECOVER, "RECOVER"),
        (Alarms::LOOPBACK, "LOOPBACK"),
        (Alarms::YELLOW, "YELLOW"),
        (Alarms::RED, "RED"),
        (Alarms::BLUE, "BLUE"),
        (Alarms::NOTOPEN, "NOTOPEN"),
        (Alarms::LOS, "LOS"),
        (Alarms::LFA, "LFA"),
        (Alarms::LMFA, "LMFA"),
    ];

    /// No alarm bit is set.
    pub fn is_clear(self) -> bool {
        self.0 == 0
    }

    /// Every bit of `other` is set here.
    pub fn contains(self, other: Alarms) -> bool {
        self.0 & other.0 == other.0
    }

    /// Parse `RED,LOS` / `red|los` / `none` (the form [`Display`](fmt::Display) prints).
    pub fn parse(text: &str) -> Option<Alarms> {
        let mut bits = 0;
        for word in text
            .split([',', '|', '+'])
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            if word.eq_ignore_ascii_case("none") || word.eq_ignore_ascii_case("ok") {
                continue;
            }
            let (alarm, _) = Alarms::NAMED
                .iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(word))?;
            bits |= alarm.0;
        }
        Some(Alarms(bits))
    }
}

impl std::ops::BitOr for Alarms {
    type Output = Alarms;
    fn bitor(self, rhs: Alarms) -> Alarms {
        Alarms(self.0 | rhs.0)
    }
}

impl fmt::Display for Alarms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clear() {
            return f.write_str("OK");
        }
        let mut rest = self.0;
        let mut first = true;
        for (alarm, name) in Alarms::NAMED {
            if self.contains(alarm) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !alarm.0;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{rest:#x}")?;
        }
        Ok(())
    }
}

/// A hookswitch operation (`DAHDI_HOOK` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Hook {
    OnHook = abi::DAHDI_ONHOOK,
    OffHook = abi::DAHDI_OFFHOOK,
    Wink = abi::DAHDI_WINK,
    Flash = abi::DAHDI_FLASH,
    Start = abi::DAHDI_START,
    Ring = abi::DAHDI_RING,
    RingOff = abi::DAHDI_RINGOFF,
}

/// A maintenance command (`dahdi_maintinfo.command`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum MaintCommand {
    None = abi::DAHDI_MAINT_NONE,
    LocalLoop = abi::DAHDI_MAINT_LOCALLOOP,
    NetworkLineLoop = abi::DAHDI_MAINT_NETWORKLINELOOP,
    LoopUp = abi::DAHDI_MAINT_LOOPUP,
    LoopDown = abi::DAHDI_MAINT_LOOPDOWN,
    FasDefect = abi::DAHDI_MAINT_FAS_DEFECT,
    MultiDefect = abi::DAHDI_MAINT_MULTI_DEFECT,
    CrcDefect = abi::DAHDI_MAINT_CRC_DEFECT,
    CasDefect = abi::DAHDI_MAINT_CAS_DEFECT,
    PrbsDefect = abi::DAHDI_MAINT_PRBS_DEFECT,
    BipolarDefect = abi::DAHDI_MAINT_BIPOLAR_DEFECT,
    Prbs = abi::DAHDI_MAINT_PRBS,
    NetworkPayloadLoop = abi::DAHDI_MAINT_NETWORKPAYLOADLOOP,
    ResetCounters = abi::DAHDI_RESET_COUNTERS,
    /// Ask the framer to simulate an alarm (fault injection).
    AlarmSim = abi::DAHDI_MAINT_ALARM_SIM,
}

/// A signalling event taken from a channel (`DAHDI_GETEVENT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// The far end went on hook (hung up).
    OnHook,
    /// The far end went off hook, or rings us.
    RingOffHook,
    WinkFlash,
    /// The span went into alarm.
    Alarm,
    /// The span's alarms cleared.
    NoAlarm,
    DialComplete,
    /// We started ringing the far end.
    RingerOn,
    /// We stopped ringing the far end.
    RingerOff,
    /// A wink, flash or start we asked for has completed.
    HookComplete,
    BitsChanged,
    Polarity,
    RingBegin,
    /// The channel's device went away: close it.
    Removed,
    DtmfDown(u8),
    DtmfUp(u8),
    PulseDigit(u8),
    /// Any other `DAHDI_EVENT_*` code, kept raw.
    Other(i32),
}

impl Event {
    /// Decode a `DAHDI_GETEVENT` result; `None` for `DAHDI_EVENT_NONE`.
    pub fn from_raw(code: i32) -> Option<Event> {
        let digit = (code & 0xff) as u8;
        Some(match code {
            abi::DAHDI_EVENT_NONE => return None,
            abi::DAHDI_EVENT_ONHOOK => Event::OnHook,
            abi::DAHDI_EVENT_RINGOFFHOOK => Event::RingOffHook,
            abi::DAHDI_EVENT_WINKFLASH => Event::WinkFlash,
            abi::DAHDI_EVENT_ALARM => Event::Alarm,
            abi::DAHDI_EVENT_NOALARM => Event::NoAlarm,
            abi::DAHDI_EVENT_DIALCOMPLETE => Event::DialComplete,
            abi::DAHDI_EVENT_RINGERON => Event::RingerOn,
            abi::DAHDI_EVENT_RINGEROFF => Event::RingerOff,
            abi::DAHDI_EVENT_HOOKCOMPLETE => Event::HookComplete,
            abi::DAHDI_EVENT_BITSCHANGED => Event::BitsChanged,
            abi::DAHDI_EVENT_POLARITY => Event::Polarity,
            abi::DAHDI_EVENT_RINGBEGIN => Event::RingBegin,
            abi::DAHDI_EVENT_REMOVED => Event::Removed,
            c if c & abi::DAHDI_EVENT_DTMFDOWN != 0 => Event::DtmfDown(digit),
            c if c & abi::DAHDI_EVENT_DTMFUP != 0 => Event::DtmfUp(digit),
            c if c & abi::DAHDI_EVENT_PULSEDIGIT != 0 => Event::PulseDigit(digit),
            other => Event::Other(other),
        })
    }
}

/// A span's status, as `DAHDI_SPANSTAT` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanStatus {
    /// Span number (1-based).
    pub span: i32,
    pub name: String,
    pub description: String,
    pub alarms: Alarms,
    /// Channels with a signalling type configured.
    pub configured_channels: i32,
    pub total_channels: i32,
    /// Spans in the whole system (on the simulator: on this card).
    pub total_spans: i32,
    pub line_config: i32,
    pub line_compat: i32,
    pub lbo: i32,
    pub lbo_name: String,
    /// Span number of the timing source, 0 for free run.
    pub sync_source: i32,
    /// "E1", "T1", "FXS", …
    pub span_type: String,
    pub manufacturer: String,
    pub device_type: String,
    pub location: String,
    pub bpv_count: i32,
    pub crc4_count: i32,
    pub ebit_count: i32,
    pub fas_count: i32,
    pub errored_seconds: u32,
}

impl From<&abi::dahdi_spaninfo> for SpanStatus {
    fn from(info: &abi::dahdi_spaninfo) -> SpanStatus {
        // Copy packed fields out before use: no references into a packed struct.
        let info = *info;
        SpanStatus {
            span: info.spanno,
            name: abi::c_string(&{ info.name }),
            description: abi::c_string(&{ info.desc }),
            alarms: Alarms(info.alarms as u32),
            configured_channels: info.numchans,
            total_channels: info.totalchans,
            total_spans: info.totalspans,
            line_config: info.lineconfig,
            line_compat: info.linecompat,
            lbo: info.lbo,
            lbo_name: abi::c_string(&{ info.lboname }),
            sync_source: info.syncsrc,
            span_type: abi::c_string(&{ info.spantype }),
            manufacturer: abi::c_string(&{ info.manufacturer }),
            device_type: abi::c_string(&{ info.devicetype }),
            location: abi::c_string(&{ info.location }),
            bpv_count: info.bpvcount,
            crc4_count: info.crc4count,
            ebit_count: info.ebitcount,
            fas_count: info.fascount,
            errored_seconds: info.errsec,
        }
    }
}

/// A span's line configuration (`DAHDI_SPANCONFIG`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineConfig {
    /// Framing and coding bits (`DAHDI_CONFIG_*`).
    pub line_config: i32,
    /// Line build-out.
    pub lbo: i32,
    /// Timing source priority; 0 = never a timing source.
    pub sync: i32,
}

impl LineConfig {
    /// E1 with CCS signalling, HDB3 coding and CRC4 framing (the usual ISDN PRI setup).
    pub const E1_CCS_HDB3_CRC4: LineConfig = LineConfig {
        line_config: abi::DAHDI_CONFIG_CCS | abi::DAHDI_CONFIG_HDB3 | abi::DAHDI_CONFIG_CRC4,
        lbo: 0,
        sync: 1,
    };
}

/// A channel's signalling configuration (`DAHDI_CHANCONFIG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Channel number (card-wide, 1-based).
    pub channel: i32,
    /// Signalling type (`DAHDI_SIG_*`); `DAHDI_SIG_NONE` unconfigures.
    pub signalling: i32,
    /// `DAHDI_LAW_DEFAULT`, `DAHDI_LAW_MULAW` or `DAHDI_LAW_ALAW`.
    pub law: i32,
    /// Idle bits for CAS channels.
    pub idle_bits: i32,
}

/// `DAHDI_GETVERSION`'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub version: String,
    pub echo_canceller: String,
}

// ---------------------------------------------------------------------------
// The control node
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------

/// Round-trip times of one ioctl, measured over many calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundTrip {
    pub iterations: usize,
    pub min: Duration,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl fmt::Display for RoundTrip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls: min {:?}, median {:?}, p99 {:?}, max {:?}, mean {:?}",
            self.iterations, self.min, self.median, self.p99, self.max, self.mean
        )
    }
}

/// Time `iterations` `DAHDI_GET_PARAMS` calls on `channel` (for benchmarks).
pub fn measure_get_params(channel: &Channel, iterations: usize) -> Result<RoundTrip> {
    if iterations == 0 {
        return Err(Error::Argument {
            path: channel.path.clone(),
            ioctl: "DAHDI_GET_PARAMS",
            field: "iterations",
            value: 0,
        });
    }
    let mut samples = Vec::with_capacity(iterations);
    let started = Instant::now();
    for _ in 0..iterations {
        let t0 = Instant::now();
        channel.params()?;
        samples.push(t0.elapsed());
    }
    let total = started.elapsed();
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(RoundTrip {
        iterations,
        min: samples[0],
        median: at(0.5),
        p99: at(0.99),
        max: samples[samples.len() - 1],
        mean: Duration::from_nanos((total.as_nanos() / iterations as u128) as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_print_and_parse_like_dahdi_tool() {
        let alarms = Alarms::RED | Alarms::LOS;
        assert_eq!(alarms.to_string(), "RED|LOS");
        assert_eq!(Alarms::parse("red,los"), Some(alarms));
        assert_eq!(Alarms::parse("none"), Some(Alarms::NONE));
        assert_eq!(Alarms::NONE.to_string(), "OK");
        assert_eq!(Alarms::parse("purple"), None);
        assert_eq!(
            Alarms(1 << 20 | abi::DAHDI_ALARM_BLUE).to_string(),
            "BLUE|0x100000"
        );
    }

    #[test]
    fn events_decode_from_raw_codes() {
        assert_eq!(Event::from_raw(0), None);
        assert_eq!(
            Event::from_raw(abi::DAHDI_EVENT_RINGOFFHOOK),
            Some(Event::RingOffHook)
        );
        assert_eq!(
            Event::from_raw(abi::DAHDI_EVENT_ONHOOK),
            Some(Event::OnHook)
        );
        assert_eq!(
            Event::from_raw(abi::DAHDI_EVENT_DTMFDOWN | i32::from(b'5')),
            Some(Event::DtmfDown(b'5'))
        );
        assert_eq!(Event::from_raw(999), Some(Event::Other(999)));
    }

    #[test]
    fn errors_name_the_path_the_ioctl_and_the_errno() {
        let e = ioctl_error(Path::new("/dev/dahdi/ctl"), "DAHDI_SPANSTAT", Errno::EINVAL);
        let text = e.to_string();
        assert!(text.contains("/dev/dahdi/ctl"), "{text}");
        assert!(text.contains("DAHDI_SPANSTAT"), "{text}");
        assert!(text.contains("EINVAL"), "{text}");
        assert_eq!(e.errno(), Some(Errno::EINVAL));
    }

    #[test]
    fn channel_nodes_use_three_digit_names() {
        assert_eq!(
            Channel::node_path("/dev/dahdi", 1, 24),
            PathBuf::from("/dev/dahdi/chan/001/024")
        );
    }

    #[test]
    fn opening_a_missing_root_is_a_clear_error() {
        let e = Control::open("/nonexistent/tandem-dahdi").unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/tandem-dahdi/ctl"),
            "{e}"
        );
        assert_eq!(e.errno(), Some(Errno::ENOENT));
    }
}
