//! Typed values the ioctls take and return: span alarms, hook operations,
//! maintenance commands, channel events, span status, line and channel
//! configuration, the driver version, and the failover switch's watchdog
//! status (tandem's extension).
//!
//! This module owns the conversions between these types and the raw ABI
//! (`DAHDI_*` codes and `#[repr(C)]` structs of [`crate::abi`]). It must not
//! touch a file descriptor: the ioctls themselves live on
//! [`Control`](super::Control) and [`Channel`](super::Channel).

use std::fmt;

use crate::abi;

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

/// The failover switch's watchdog on one card (`TANDEM_WATCHDOG_STATUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchdogStatus {
    /// Armed and not expired.
    pub armed: bool,
    /// The armed (or last armed) timeout.
    pub timeout: std::time::Duration,
    /// Time since the last kick or arm; None if never armed.
    pub since_kick: Option<std::time::Duration>,
    /// How many times the watchdog expired.
    pub expired: u32,
    /// The watchdog expired and the relay let go of this card (until armed or disarmed).
    pub released: bool,
    /// The card (host) the relay holds the trunk for, None when no card carries it.
    pub relay_holder: Option<u32>,
}

impl From<&abi::tandem_watchdog_status> for WatchdogStatus {
    fn from(s: &abi::tandem_watchdog_status) -> WatchdogStatus {
        let ms = |v: u32| std::time::Duration::from_millis(u64::from(v));
        WatchdogStatus {
            armed: s.armed != 0,
            timeout: ms(s.timeout_ms),
            since_kick: (s.last_kick_age_ms != u32::MAX).then(|| ms(s.last_kick_age_ms)),
            expired: s.expired_count,
            released: s.released != 0,
            relay_holder: u32::try_from(s.relay_holder).ok(),
        }
    }
}
