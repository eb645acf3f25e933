//! DAHDI's user ABI, as declared in dahdi-linux `include/dahdi/user.h`.
//!
//! This module owns every number that crosses the user/kernel boundary for a
//! telephony card: the ioctl request codes (type `0xDA`, each declared once
//! here with nix's `_IOR/_IOW/_IOWR` equivalents), the `#[repr(C)]` structs
//! those ioctls carry (byte for byte, `dahdi_spaninfo` packed as in the
//! header), and the constants for alarms, events, hook states, maintenance
//! commands, line configuration and signalling.
//!
//! It does no I/O and makes no policy: the safe wrappers live in
//! [`crate::device`], the simulator in [`crate::sim`]. Names follow the C
//! header (they are the ABI), so the structs keep their C spelling.
//! Character arrays are `[u8; N]`: same size and alignment as C's `char[N]`.

#![allow(non_camel_case_types)]

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The ioctl request type of the platform (`c_ulong` on Linux/glibc).
pub type IoctlRequest = nix::sys::ioctl::ioctl_num_type;

/// `DAHDI_CODE`: the ioctl type byte of every DAHDI request.
pub const DAHDI_CODE: u8 = 0xDA;

// ---------------------------------------------------------------------------
// ioctl request codes (declared once; device.rs and the simulator use these)
// ---------------------------------------------------------------------------

/// `_IOWR(DAHDI_CODE, 5, struct dahdi_params)`: read a channel's parameters.
pub const DAHDI_GET_PARAMS: IoctlRequest =
    nix::request_code_readwrite!(DAHDI_CODE, 5, size_of::<dahdi_params>());
/// `_IOW(DAHDI_CODE, 5, struct dahdi_params)`: set a channel's timing parameters.
pub const DAHDI_SET_PARAMS: IoctlRequest =
    nix::request_code_write!(DAHDI_CODE, 5, size_of::<dahdi_params>());
/// `_IOW(DAHDI_CODE, 7, int)`: set the hookswitch (one of `DAHDI_ONHOOK`…`DAHDI_RINGOFF`).
pub const DAHDI_HOOK: IoctlRequest = nix::request_code_write!(DAHDI_CODE, 7, size_of::<i32>());
/// `_IOR(DAHDI_CODE, 8, int)`: take the next signalling event (`DAHDI_EVENT_NONE` if none).
pub const DAHDI_GETEVENT: IoctlRequest = nix::request_code_read!(DAHDI_CODE, 8, size_of::<i32>());
/// `_IOWR(DAHDI_CODE, 10, struct dahdi_spaninfo)`: span status and alarms.
pub const DAHDI_SPANSTAT: IoctlRequest =
    nix::request_code_readwrite!(DAHDI_CODE, 10, size_of::<dahdi_spaninfo>());
/// `_IOW(DAHDI_CODE, 11, struct dahdi_maintinfo)`: set a span's maintenance mode.
pub const DAHDI_MAINT: IoctlRequest =
    nix::request_code_write!(DAHDI_CODE, 11, size_of::<dahdi_maintinfo>());
/// `_IOW(DAHDI_CODE, 18, struct dahdi_lineconfig)`: configure a span's line (framing, coding).
pub const DAHDI_SPANCONFIG: IoctlRequest =
    nix::request_code_write!(DAHDI_CODE, 18, size_of::<dahdi_lineconfig>());
/// `_IOW(DAHDI_CODE, 19, struct dahdi_chanconfig)`: configure a channel's signalling.
pub const DAHDI_CHANCONFIG: IoctlRequest =
    nix::request_code_write!(DAHDI_CODE, 19, size_of::<dahdi_chanconfig>());
/// `_IOR(DAHDI_CODE, 27, struct dahdi_bufferinfo)`: a channel's buffer policy.
pub const DAHDI_GET_BUFINFO: IoctlRequest =
    nix::request_code_read!(DAHDI_CODE, 27, size_of::<dahdi_bufferinfo>());
/// `_IOR(DAHDI_CODE, 34, int)`: the channel number behind a channel file.
pub const DAHDI_CHANNO: IoctlRequest = nix::request_code_read!(DAHDI_CODE, 34, size_of::<i32>());
/// `_IOW(DAHDI_CODE, 38, int)`: bind a `channel` file to a channel number.
pub const DAHDI_SPECIFY: IoctlRequest = nix::request_code_write!(DAHDI_CODE, 38, size_of::<i32>());
/// `_IOR(DAHDI_CODE, 57, struct dahdi_versioninfo)`: driver version and echo cancellers.
pub const DAHDI_GETVERSION: IoctlRequest =
    nix::request_code_read!(DAHDI_CODE, 57, size_of::<dahdi_versioninfo>());
/// `_IOR(DAHDI_CODE, 1, int)`: a channel's block size (bytes per `read`).
pub const DAHDI_GET_BLOCKSIZE: IoctlRequest =
    nix::request_code_read!(DAHDI_CODE, 1, size_of::<i32>());
/// `_IOW(DAHDI_CODE, 1, int)`: set a channel's block size (1..=[`DAHDI_MAX_BLOCKSIZE`]).
pub const DAHDI_SET_BLOCKSIZE: IoctlRequest =
    nix::request_code_write!(DAHDI_CODE, 1, size_of::<i32>());
/// `_IOW(DAHDI_CODE, 24, int)`: make a loaded tone zone the default (`EINVAL` if not loaded).
pub const DAHDI_DEFAULTZONE: IoctlRequest =
    nix::request_code_write!(DAHDI_CODE, 24, size_of::<i32>());
/// `_IOW(DAHDI_CODE, 25, struct dahdi_tone_def_header)`: load a tone zone
/// (the kernel also reads the `count` tone definitions that follow the header).
pub const DAHDI_LOADZONE: IoctlRequest =
    nix::request_code_write!(DAHDI_CODE, 25, size_of::<dahdi_tone_def_header>());
/// `_IOW(DAHDI_CODE, 26, int)`: unload a tone zone (an unknown zone is not an error).
pub const DAHDI_FREEZONE: IoctlRequest = nix::request_code_write!(DAHDI_CODE, 26, size_of::<i32>());
/// `_IOW(DAHDI_CODE, 59, struct dahdi_attach_echocan)`: choose a channel's
/// echo canceller by name (empty: none).
pub const DAHDI_ATTACH_ECHOCAN: IoctlRequest =
    nix::request_code_write!(DAHDI_CODE, 59, size_of::<dahdi_attach_echocan>());
/// `_IOW(DAHDI_CODE, 101, int)`: HDLC at 56 or 64 kbit/s on a channel file.
pub const DAHDI_HDLC_RATE: IoctlRequest =
    nix::request_code_write!(DAHDI_CODE, 101, size_of::<i32>());
/// `_IOW(DAHDI_CODE, 99, int)`: start a span.
pub const DAHDI_STARTUP: IoctlRequest = nix::request_code_write!(DAHDI_CODE, 99, size_of::<i32>());
/// `_IOW(DAHDI_CODE, 100, int)`: shut a span down (its channels lose their configuration).
pub const DAHDI_SHUTDOWN: IoctlRequest =
    nix::request_code_write!(DAHDI_CODE, 100, size_of::<i32>());

// ---------------------------------------------------------------------------
// tandem's extension range: the failover switch's watchdog
// ---------------------------------------------------------------------------
//
// DAHDI has no ioctls for the failover switch (the relay that connects a
// shared trunk to one of two hosts' cards and moves it when the holding
// host stops kicking its watchdog): on real cards it is a vendor add-on.
// tandem gives it requests of its own under DAHDI's type byte, in a range
// of request numbers it reserves for itself, [`TANDEM_EXT_FIRST`] ..=
// [`TANDEM_EXT_LAST`]: far above the numbers dahdi-linux assigns (densely
// from 1, up to about a hundred), so that a DAHDI request can never be
// mistaken for one of them. Every extension request is declared from
// [`TANDEM_EXT_FIRST`] plus its index below; a test checks that the range
// holds no DAHDI request this module declares. A real DAHDI driver
// answers them `ENOTTY`.

/// First request number of tandem's own extension range (type [`DAHDI_CODE`]).
pub const TANDEM_EXT_FIRST: u8 = 0xF0;
/// Last request number of tandem's own extension range.
pub const TANDEM_EXT_LAST: u8 = 0xFF;

/// `_IOW(DAHDI_CODE, TANDEM_EXT_FIRST + 0, __u32)`: arm the card's failover
/// switch watchdog with a timeout in milliseconds
/// ([`TANDEM_WATCHDOG_MIN_MS`] ..= [`TANDEM_WATCHDOG_MAX_MS`], else `EINVAL`).
/// Arming counts as a kick, and takes back the relay's release of this card
/// (a free trunk comes to this card's running span again).
pub const TANDEM_WATCHDOG_ARM: IoctlRequest =
    nix::request_code_write!(DAHDI_CODE, TANDEM_EXT_FIRST, size_of::<u32>());
/// `_IO(DAHDI_CODE, TANDEM_EXT_FIRST + 1)`: kick the watchdog. `EINVAL` if it is
/// not armed; `ETIMEDOUT` if it expired (the relay let go of this card).
pub const TANDEM_WATCHDOG_KICK: IoctlRequest =
    nix::request_code_none!(DAHDI_CODE, TANDEM_EXT_FIRST + 1);
/// `_IO(DAHDI_CODE, TANDEM_EXT_FIRST + 2)`: disarm the watchdog (the trunk stays where it is).
pub const TANDEM_WATCHDOG_DISARM: IoctlRequest =
    nix::request_code_none!(DAHDI_CODE, TANDEM_EXT_FIRST + 2);
/// `_IOR(DAHDI_CODE, TANDEM_EXT_FIRST + 3, struct tandem_watchdog_status)`.
pub const TANDEM_WATCHDOG_STATUS: IoctlRequest = nix::request_code_read!(
    DAHDI_CODE,
    TANDEM_EXT_FIRST + 3,
    size_of::<tandem_watchdog_status>()
);

/// Shortest watchdog timeout `TANDEM_WATCHDOG_ARM` accepts, in milliseconds.
pub const TANDEM_WATCHDOG_MIN_MS: u32 = 10;
/// Longest watchdog timeout `TANDEM_WATCHDOG_ARM` accepts, in milliseconds.
pub const TANDEM_WATCHDOG_MAX_MS: u32 = 60_000;

/// The name of a DAHDI ioctl request, for errors and logs.
pub fn ioctl_name(request: IoctlRequest) -> Option<&'static str> {
    Some(match request {
        DAHDI_GET_PARAMS => "DAHDI_GET_PARAMS",
        DAHDI_SET_PARAMS => "DAHDI_SET_PARAMS",
        DAHDI_HOOK => "DAHDI_HOOK",
        DAHDI_GETEVENT => "DAHDI_GETEVENT",
        DAHDI_SPANSTAT => "DAHDI_SPANSTAT",
        DAHDI_MAINT => "DAHDI_MAINT",
        DAHDI_SPANCONFIG => "DAHDI_SPANCONFIG",
        DAHDI_CHANCONFIG => "DAHDI_CHANCONFIG",
        DAHDI_GET_BUFINFO => "DAHDI_GET_BUFINFO",
        DAHDI_CHANNO => "DAHDI_CHANNO",
        DAHDI_SPECIFY => "DAHDI_SPECIFY",
        DAHDI_GETVERSION => "DAHDI_GETVERSION",
        DAHDI_STARTUP => "DAHDI_STARTUP",
        DAHDI_SHUTDOWN => "DAHDI_SHUTDOWN",
        DAHDI_GET_BLOCKSIZE => "DAHDI_GET_BLOCKSIZE",
        DAHDI_SET_BLOCKSIZE => "DAHDI_SET_BLOCKSIZE",
        DAHDI_DEFAULTZONE => "DAHDI_DEFAULTZONE",
        DAHDI_LOADZONE => "DAHDI_LOADZONE",
        DAHDI_FREEZONE => "DAHDI_FREEZONE",
        DAHDI_ATTACH_ECHOCAN => "DAHDI_ATTACH_ECHOCAN",
        DAHDI_HDLC_RATE => "DAHDI_HDLC_RATE",
        TANDEM_WATCHDOG_ARM => "TANDEM_WATCHDOG_ARM",
        TANDEM_WATCHDOG_KICK => "TANDEM_WATCHDOG_KICK",
        TANDEM_WATCHDOG_DISARM => "TANDEM_WATCHDOG_DISARM",
        TANDEM_WATCHDOG_STATUS => "TANDEM_WATCHDOG_STATUS",
        _ => return None,
    })
}

/// A request as a reader of `user.h` would recognise it: its name when this
/// module declares it, else its decoded form, e.g. `_IOW(0xDA, 42, 4)`
/// (direction, type byte, number, argument size).
pub fn describe_request(request: IoctlRequest) -> String {
    if let Some(name) = ioctl_name(request) {
        return name.to_string();
    }
    // IoctlRequest is c_ulong on glibc, c_int on musl.
    #[allow(clippy::unnecessary_cast)]
    let n = request as u64;
    let nr = n & 0xff;
    let ty = (n >> 8) & 0xff;
    let size = (n >> 16) & 0x3fff;
    let dir = match (n >> 30) & 0x3 {
        0 => "_IO",
        1 => "_IOW",
        2 => "_IOR",
        _ => "_IOWR",
    };
    if dir == "_IO" {
        format!("_IO({ty:#04X}, {nr})")
    } else {
        format!("{dir}({ty:#04X}, {nr}, {size})")
    }
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

/// `DAHDI_MAX_SPANS`: span numbers run 1..=128.
pub const DAHDI_MAX_SPANS: i32 = 128;
/// `DAHDI_MAX_CHANNELS`.
pub const DAHDI_MAX_CHANNELS: i32 = 1024;
/// `DAHDI_MAX_EVENTSIZE`: events a channel queues before it drops new ones.
pub const DAHDI_MAX_EVENTSIZE: usize = 64;
/// `DAHDI_GET_PARAMS_RETURN_MASTER`: flag in `channo` asking for the master
/// channel too (answered in the upper 16 bits of `channo`).
pub const DAHDI_GET_PARAMS_RETURN_MASTER: i32 = 0x4000_0000;
/// `DAHDI_TONE_ZONE_MAX`: tone zones a system holds.
pub const DAHDI_TONE_ZONE_MAX: usize = 128;
/// `DAHDI_MAX_CADENCE`: entries of a ring cadence.
pub const DAHDI_MAX_CADENCE: usize = 16;
/// `DAHDI_MAX_BLOCKSIZE`: the largest block a channel reads or writes.
pub const DAHDI_MAX_BLOCKSIZE: i32 = 8192;
/// `DAHDI_DEFAULT_BLOCKSIZE`: a channel's block size until `DAHDI_SET_BLOCKSIZE`.
pub const DAHDI_DEFAULT_BLOCKSIZE: i32 = 1024;
/// `DAHDI_DEFAULT_NUM_BUFS`: blocks a channel buffers each way.
pub const DAHDI_DEFAULT_NUM_BUFS: i32 = 2;

// ---------------------------------------------------------------------------
// Alarm bits (`dahdi_spaninfo.alarms`, `dahdi_params.chan_alarms`)
// ---------------------------------------------------------------------------

pub const DAHDI_ALARM_NONE: u32 = 0;
pub const DAHDI_ALARM_RECOVER: u32 = 1 << 0;
pub const DAHDI_ALARM_LOOPBACK: u32 = 1 << 1;
pub const DAHDI_ALARM_YELLOW: u32 = 1 << 2;
pub const DAHDI_ALARM_RED: u32 = 1 << 3;
pub const DAHDI_ALARM_BLUE: u32 = 1 << 4;
pub const DAHDI_ALARM_NOTOPEN: u32 = 1 << 5;
/// Loss of signal (verbose alarms live in the upper byte).
pub const DAHDI_ALARM_LOS: u32 = 1 << 8;
/// Loss of frame alignment.
pub const DAHDI_ALARM_LFA: u32 = 1 << 9;
/// Loss of multi-frame alignment.
pub const DAHDI_ALARM_LMFA: u32 = 1 << 10;

// ---------------------------------------------------------------------------
// Maintenance commands (`dahdi_maintinfo.command`)
// ---------------------------------------------------------------------------

pub const DAHDI_MAINT_NONE: i32 = 0;
pub const DAHDI_MAINT_LOCALLOOP: i32 = 1;
pub const DAHDI_MAINT_REMOTELOOP: i32 = 2;
pub const DAHDI_MAINT_NETWORKLINELOOP: i32 = 2;
pub const DAHDI_MAINT_LOOPUP: i32 = 3;
pub const DAHDI_MAINT_LOOPDOWN: i32 = 4;
pub const DAHDI_MAINT_FAS_DEFECT: i32 = 6;
pub const DAHDI_MAINT_MULTI_DEFECT: i32 = 7;
pub const DAHDI_MAINT_CRC_DEFECT: i32 = 8;
pub const DAHDI_MAINT_CAS_DEFECT: i32 = 9;
pub const DAHDI_MAINT_PRBS_DEFECT: i32 = 10;
pub const DAHDI_MAINT_BIPOLAR_DEFECT: i32 = 11;
pub const DAHDI_MAINT_PRBS: i32 = 12;
pub const DAHDI_MAINT_NETWORKPAYLOADLOOP: i32 = 13;
pub const DAHDI_RESET_COUNTERS: i32 = 14;
/// Ask the framer to simulate an alarm condition (fault injection on real cards).
pub const DAHDI_MAINT_ALARM_SIM: i32 = 15;

// ---------------------------------------------------------------------------
// Hook values (`DAHDI_HOOK` argument)
// ---------------------------------------------------------------------------

pub const DAHDI_ONHOOK: i32 = 0;
pub const DAHDI_OFFHOOK: i32 = 1;
pub const DAHDI_WINK: i32 = 2;
pub const DAHDI_FLASH: i32 = 3;
pub const DAHDI_START: i32 = 4;
pub const DAHDI_RING: i32 = 5;
pub const DAHDI_RINGOFF: i32 = 6;

// ---------------------------------------------------------------------------
// Hook signalling states reported in `dahdi_params` (enum dahdi_txsig /
// dahdi_rxsig from dahdi/kernel.h; their values reach userspace through
// `txhooksig` / `rxhooksig`).
// ---------------------------------------------------------------------------

pub const DAHDI_TXSIG_ONHOOK: i32 = 0;
pub const DAHDI_TXSIG_OFFHOOK: i32 = 1;
pub const DAHDI_TXSIG_START: i32 = 2;
pub const DAHDI_TXSIG_KEWL: i32 = 3;
pub const DAHDI_RXSIG_ONHOOK: i32 = 0;
pub const DAHDI_RXSIG_OFFHOOK: i32 = 1;
pub const DAHDI_RXSIG_START: i32 = 2;
pub const DAHDI_RXSIG_RING: i32 = 3;
pub const DAHDI_RXSIG_INITIAL: i32 = 4;

// ---------------------------------------------------------------------------
// Events (`DAHDI_GETEVENT` result)
// ---------------------------------------------------------------------------

pub const DAHDI_EVENT_NONE: i32 = 0;
pub const DAHDI_EVENT_ONHOOK: i32 = 1;
pub const DAHDI_EVENT_RINGOFFHOOK: i32 = 2;
pub const DAHDI_EVENT_WINKFLASH: i32 = 3;
pub const DAHDI_EVENT_ALARM: i32 = 4;
pub const DAHDI_EVENT_NOALARM: i32 = 5;
pub const DAHDI_EVENT_ABORT: i32 = 6;
pub const DAHDI_EVENT_OVERRUN: i32 = 7;
pub const DAHDI_EVENT_BADFCS: i32 = 8;
pub const DAHDI_EVENT_DIALCOMPLETE: i32 = 9;
pub const DAHDI_EVENT_RINGERON: i32 = 10;
pub const DAHDI_EVENT_RINGEROFF: i32 = 11;
pub const DAHDI_EVENT_HOOKCOMPLETE: i32 = 12;
pub const DAHDI_EVENT_BITSCHANGED: i32 = 13;
pub const DAHDI_EVENT_PULSE_START: i32 = 14;
pub const DAHDI_EVENT_TIMER_EXPIRED: i32 = 15;
pub const DAHDI_EVENT_TIMER_PING: i32 = 16;
pub const DAHDI_EVENT_POLARITY: i32 = 17;
pub const DAHDI_EVENT_RINGBEGIN: i32 = 18;
pub const DAHDI_EVENT_EC_DISABLED: i32 = 19;
pub const DAHDI_EVENT_REMOVED: i32 = 20;
pub const DAHDI_EVENT_NEONMWI_ACTIVE: i32 = 21;
pub const DAHDI_EVENT_NEONMWI_INACTIVE: i32 = 22;
pub const DAHDI_EVENT_TX_CED_DETECTED: i32 = 23;
pub const DAHDI_EVENT_RX_CED_DETECTED: i32 = 24;
pub const DAHDI_EVENT_TX_CNG_DETECTED: i32 = 25;
pub const DAHDI_EVENT_RX_CNG_DETECTED: i32 = 26;
pub const DAHDI_EVENT_EC_NLP_DISABLED: i32 = 27;
pub const DAHDI_EVENT_EC_NLP_ENABLED: i32 = 28;
pub const DAHDI_EVENT_READ_OVERRUN: i32 = 29;
pub const DAHDI_EVENT_WRITE_UNDERRUN: i32 = 30;
/// OR'd with the digit received.
pub const DAHDI_EVENT_PULSEDIGIT: i32 = 1 << 16;
/// OR'd with the DTMF digit, key down.
pub const DAHDI_EVENT_DTMFDOWN: i32 = 1 << 17;
/// OR'd with the DTMF digit, key up.
pub const DAHDI_EVENT_DTMFUP: i32 = 1 << 18;

// ---------------------------------------------------------------------------
// Line configuration (`dahdi_lineconfig.lineconfig`, `dahdi_spaninfo.linecompat`)
// ---------------------------------------------------------------------------

pub const DAHDI_CONFIG_TXLEVEL: i32 = 7;
pub const DAHDI_CONFIG_D4: i32 = 1 << 4;
pub const DAHDI_CONFIG_ESF: i32 = 1 << 5;
pub const DAHDI_CONFIG_AMI: i32 = 1 << 6;
pub const DAHDI_CONFIG_B8ZS: i32 = 1 << 7;
pub const DAHDI_CONFIG_CCS: i32 = 1 << 8;
pub const DAHDI_CONFIG_HDB3: i32 = 1 << 9;
pub const DAHDI_CONFIG_CRC4: i32 = 1 << 10;
pub const DAHDI_CONFIG_NTTE: i32 = 1 << 11;
pub const DAHDI_CONFIG_TERM: i32 = 1 << 12;
pub const DAHDI_CONFIG_NOTOPEN: i32 = 1 << 16;

// ---------------------------------------------------------------------------
// Signalling types (`dahdi_chanconfig.sigtype`, `dahdi_params.sigtype`)
// ---------------------------------------------------------------------------

const DAHDI_SIG_FXO_BIT: i32 = 1 << 12;
const DAHDI_SIG_FXS_BIT: i32 = 1 << 13;
const DAHDI_SIG_DACS_BIT: i32 = 1 << 16;
pub const DAHDI_SIG_NONE: i32 = 0;
pub const DAHDI_SIG_FXSLS: i32 = (1 << 0) | DAHDI_SIG_FXS_BIT;
pub const DAHDI_SIG_FXSGS: i32 = (1 << 1) | DAHDI_SIG_FXS_BIT;
pub const DAHDI_SIG_FXSKS: i32 = (1 << 2) | DAHDI_SIG_FXS_BIT;
pub const DAHDI_SIG_FXOLS: i32 = (1 << 3) | DAHDI_SIG_FXO_BIT;
pub const DAHDI_SIG_FXOGS: i32 = (1 << 4) | DAHDI_SIG_FXO_BIT;
pub const DAHDI_SIG_FXOKS: i32 = (1 << 5) | DAHDI_SIG_FXO_BIT;
pub const DAHDI_SIG_EM: i32 = 1 << 6;
pub const DAHDI_SIG_CLEAR: i32 = 1 << 7;
pub const DAHDI_SIG_HDLCRAW: i32 = (1 << 8) | DAHDI_SIG_CLEAR;
pub const DAHDI_SIG_HDLCFCS: i32 = (1 << 9) | DAHDI_SIG_HDLCRAW;
pub const DAHDI_SIG_HDLCNET: i32 = (1 << 10) | DAHDI_SIG_HDLCFCS;
pub const DAHDI_SIG_SLAVE: i32 = 1 << 11;
pub const DAHDI_SIG_SF: i32 = 1 << 14;
pub const DAHDI_SIG_CAS: i32 = 1 << 15;
pub const DAHDI_SIG_DACS: i32 = DAHDI_SIG_DACS_BIT | DAHDI_SIG_CLEAR;
pub const DAHDI_SIG_EM_E1: i32 = 1 << 17;
pub const DAHDI_SIG_DACS_RBS: i32 = (1 << 18) | DAHDI_SIG_DACS_BIT;
pub const DAHDI_SIG_HARDHDLC: i32 = (1 << 19) | DAHDI_SIG_CLEAR;
pub const DAHDI_SIG_MTP2: i32 = (1 << 20) | DAHDI_SIG_HDLCFCS;

// ---------------------------------------------------------------------------
// Companding law (`dahdi_chanconfig.deflaw`, `dahdi_params.curlaw`)
// ---------------------------------------------------------------------------

pub const DAHDI_LAW_DEFAULT: i32 = 0;
pub const DAHDI_LAW_MULAW: i32 = 1;
pub const DAHDI_LAW_ALAW: i32 = 2;

// ---------------------------------------------------------------------------
// Structs
// ---------------------------------------------------------------------------

/// `struct dahdi_params`: a channel's parameters (`DAHDI_GET_PARAMS` / `DAHDI_SET_PARAMS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct dahdi_params {
    /// Channel number (in: which channel on the `ctl` node; out: this channel).
    pub channo: i32,
    /// Span number.
    pub spanno: i32,
    /// Channel position within its span.
    pub chanpos: i32,
    pub sigtype: i32,
    pub sigcap: i32,
    pub rxisoffhook: i32,
    pub rxbits: i32,
    pub txbits: i32,
    pub txhooksig: i32,
    pub rxhooksig: i32,
    /// `DAHDI_LAW_MULAW` or `DAHDI_LAW_ALAW`.
    pub curlaw: i32,
    pub idlebits: i32,
    /// Channel name, NUL-terminated.
    pub name: [u8; 40],
    pub prewinktime: i32,
    pub preflashtime: i32,
    pub winktime: i32,
    pub flashtime: i32,
    pub starttime: i32,
    pub rxwinktime: i32,
    pub rxflashtime: i32,
    pub debouncetime: i32,
    pub pulsebreaktime: i32,
    pub pulsemaketime: i32,
    pub pulseaftertime: i32,
    /// Alarms on this channel (`DAHDI_ALARM_*`).
    pub chan_alarms: u32,
}

/// `struct dahdi_spaninfo` (packed in the header): `DAHDI_SPANSTAT`.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct dahdi_spaninfo {
    /// Span number (in: which span, 0 = the channel's own on a channel file).
    pub spanno: i32,
    pub name: [u8; 20],
    pub desc: [u8; 40],
    /// Alarm bits (`DAHDI_ALARM_*`).
    pub alarms: i32,
    pub txlevel: i32,
    pub rxlevel: i32,
    pub bpvcount: i32,
    pub crc4count: i32,
    pub ebitcount: i32,
    pub fascount: i32,
    pub fecount: u32,
    pub cvcount: u32,
    pub becount: u32,
    pub prbs: u32,
    pub errsec: u32,
    pub irqmisses: i32,
    /// Span number of the current sync source, 0 for free run.
    pub syncsrc: i32,
    /// Channels with a signalling type configured.
    pub numchans: i32,
    pub totalchans: i32,
    /// Spans in the whole system.
    pub totalspans: i32,
    pub lbo: i32,
    pub lineconfig: i32,
    pub lboname: [u8; 40],
    pub location: [u8; 40],
    pub manufacturer: [u8; 40],
    pub devicetype: [u8; 40],
    pub irq: i32,
    pub linecompat: i32,
    pub spantype: [u8; 6],
}

/// `struct dahdi_lineconfig`: `DAHDI_SPANCONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct dahdi_lineconfig {
    /// Span number (0 to use `name`).
    pub span: i32,
    pub name: [u8; 20],
    /// Line build-out.
    pub lbo: i32,
    /// Framing and coding (`DAHDI_CONFIG_*`).
    pub lineconfig: i32,
    /// Sync source priority (0 = not a sync source).
    pub sync: i32,
}

/// `struct dahdi_chanconfig`: `DAHDI_CHANCONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct dahdi_chanconfig {
    /// Channel number.
    pub chan: i32,
    pub name: [u8; 40],
    /// Signalling type (`DAHDI_SIG_*`), 0 to unconfigure.
    pub sigtype: i32,
    /// `DAHDI_LAW_DEFAULT`, `DAHDI_LAW_MULAW` or `DAHDI_LAW_ALAW`.
    pub deflaw: i32,
    pub master: i32,
    pub idlebits: i32,
    pub netdev_name: [u8; 16],
}

/// `struct dahdi_maintinfo`: `DAHDI_MAINT`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct dahdi_maintinfo {
    pub spanno: i32,
    /// `DAHDI_MAINT_*`.
    pub command: i32,
}

/// `struct dahdi_versioninfo`: `DAHDI_GETVERSION`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct dahdi_versioninfo {
    pub version: [u8; 80],
    pub echo_canceller: [u8; 80],
}

/// `struct dahdi_bufferinfo`: `DAHDI_GET_BUFINFO`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct dahdi_bufferinfo {
    pub txbufpolicy: i32,
    pub rxbufpolicy: i32,
    pub numbufs: i32,
    pub bufsize: i32,
    pub readbufs: i32,
    pub writebufs: i32,
}

/// `struct dahdi_tone_def_header`: `DAHDI_LOADZONE`. In the kernel's ABI
/// `count` tone definitions (`struct dahdi_tone_def`, 44 bytes each) follow
/// it in the caller's memory; the request's size covers the header alone.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct dahdi_tone_def_header {
    /// Tone definitions that follow the header.
    pub count: i32,
    /// The zone number being loaded (0..=255).
    pub zone: i32,
    /// Ring cadence in ms, on/off alternating, ending with 0.
    pub ringcadence: [i32; DAHDI_MAX_CADENCE],
    /// The zone's informational name.
    pub name: [u8; 40],
}

/// `struct dahdi_attach_echocan`: `DAHDI_ATTACH_ECHOCAN`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct dahdi_attach_echocan {
    /// Channel number.
    pub chan: i32,
    /// Echo canceller name (e.g. `mg2`), empty for none.
    pub echocan: [u8; 16],
}

/// `struct tandem_watchdog_status`: `TANDEM_WATCHDOG_STATUS` (tandem's
/// extension; all fields 32-bit, no padding).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct tandem_watchdog_status {
    /// 1 while armed (an expiry disarms it).
    pub armed: u32,
    /// The armed timeout in milliseconds (the last one, once disarmed; 0 if never armed).
    pub timeout_ms: u32,
    /// Milliseconds since the last kick (or arm); `u32::MAX` if never armed.
    pub last_kick_age_ms: u32,
    /// How many times this card's watchdog expired.
    pub expired_count: u32,
    /// The card whose span carries the trunk behind this card's first span
    /// (where the relay holds it), -1 when no card carries it.
    pub relay_holder: i32,
    /// 1 when the watchdog expired and the relay let go of this card (until
    /// the next `TANDEM_WATCHDOG_ARM` or `DISARM`).
    pub released: u32,
}

macro_rules! zeroed_default {
    ($($ty:ty),*) => {$(
        impl Default for $ty {
            fn default() -> Self {
                <$ty as zerocopy::FromZeros>::new_zeroed()
            }
        }
    )*};
}
zeroed_default!(
    dahdi_params,
    dahdi_spaninfo,
    dahdi_lineconfig,
    dahdi_chanconfig,
    dahdi_versioninfo,
    dahdi_tone_def_header
);

/// The text of a NUL-terminated C `char` array (up to the first NUL, lossy UTF-8).
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Copy `text` into a C `char` array, truncated so that it always ends in NUL.
pub fn set_c_string(dst: &mut [u8], text: &str) {
    dst.fill(0);
    let n = text.len().min(dst.len().saturating_sub(1));
    dst[..n].copy_from_slice(&text.as_bytes()[..n]);
}

#[cfg(test)]
mod tests;
