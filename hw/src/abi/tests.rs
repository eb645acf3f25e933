//! Layouts and request codes against the C header.
//!
//! The numbers below were obtained once by compiling a small C program
//! (printing `sizeof`, `offsetof` and the `DAHDI_*` request macros)
//! against a temporary copy of dahdi-linux `include/dahdi/user.h`
//! (asterisk/dahdi-linux at d1c842a, with an empty `dahdi/dahdi_config.h`),
//! using gcc 12.2.0 (Debian 12.2.0-14+deb12u1) on x86_64. Nothing of that
//! program or header is part of this repository.

use core::mem::{align_of, offset_of, size_of};

use super::*;

#[test]
fn struct_sizes_match_user_h() {
    assert_eq!(size_of::<dahdi_params>(), 136);
    assert_eq!(align_of::<dahdi_params>(), 4);
    assert_eq!(size_of::<dahdi_spaninfo>(), 314);
    assert_eq!(align_of::<dahdi_spaninfo>(), 1, "dahdi_spaninfo is packed");
    assert_eq!(size_of::<dahdi_lineconfig>(), 36);
    assert_eq!(size_of::<dahdi_chanconfig>(), 76);
    assert_eq!(size_of::<dahdi_maintinfo>(), 8);
    assert_eq!(size_of::<dahdi_versioninfo>(), 160);
    assert_eq!(size_of::<dahdi_bufferinfo>(), 24);
    assert_eq!(size_of::<dahdi_tone_def_header>(), 112);
    assert_eq!(size_of::<dahdi_attach_echocan>(), 20);
    assert_eq!(size_of::<tandem_watchdog_status>(), 24);
    assert_eq!(align_of::<tandem_watchdog_status>(), 4);
}

#[test]
fn dahdi_params_offsets_match_user_h() {
    let expected: [(usize, usize); 25] = [
        (offset_of!(dahdi_params, channo), 0),
        (offset_of!(dahdi_params, spanno), 4),
        (offset_of!(dahdi_params, chanpos), 8),
        (offset_of!(dahdi_params, sigtype), 12),
        (offset_of!(dahdi_params, sigcap), 16),
        (offset_of!(dahdi_params, rxisoffhook), 20),
        (offset_of!(dahdi_params, rxbits), 24),
        (offset_of!(dahdi_params, txbits), 28),
        (offset_of!(dahdi_params, txhooksig), 32),
        (offset_of!(dahdi_params, rxhooksig), 36),
        (offset_of!(dahdi_params, curlaw), 40),
        (offset_of!(dahdi_params, idlebits), 44),
        (offset_of!(dahdi_params, name), 48),
        (offset_of!(dahdi_params, prewinktime), 88),
        (offset_of!(dahdi_params, preflashtime), 92),
        (offset_of!(dahdi_params, winktime), 96),
        (offset_of!(dahdi_params, flashtime), 100),
        (offset_of!(dahdi_params, starttime), 104),
        (offset_of!(dahdi_params, rxwinktime), 108),
        (offset_of!(dahdi_params, rxflashtime), 112),
        (offset_of!(dahdi_params, debouncetime), 116),
        (offset_of!(dahdi_params, pulsebreaktime), 120),
        (offset_of!(dahdi_params, pulsemaketime), 124),
        (offset_of!(dahdi_params, pulseaftertime), 128),
        (offset_of!(dahdi_params, chan_alarms), 132),
    ];
    for (i, (got, want)) in expected.iter().enumerate() {
        assert_eq!(got, want, "dahdi_params field #{i}");
    }
}

#[test]
fn dahdi_spaninfo_offsets_match_user_h() {
    let expected: [(usize, usize); 29] = [
        (offset_of!(dahdi_spaninfo, spanno), 0),
        (offset_of!(dahdi_spaninfo, name), 4),
        (offset_of!(dahdi_spaninfo, desc), 24),
        (offset_of!(dahdi_spaninfo, alarms), 64),
        (offset_of!(dahdi_spaninfo, txlevel), 68),
        (offset_of!(dahdi_spaninfo, rxlevel), 72),
        (offset_of!(dahdi_spaninfo, bpvcount), 76),
        (offset_of!(dahdi_spaninfo, crc4count), 80),
        (offset_of!(dahdi_spaninfo, ebitcount), 84),
        (offset_of!(dahdi_spaninfo, fascount), 88),
        (offset_of!(dahdi_spaninfo, fecount), 92),
        (offset_of!(dahdi_spaninfo, cvcount), 96),
        (offset_of!(dahdi_spaninfo, becount), 100),
        (offset_of!(dahdi_spaninfo, prbs), 104),
        (offset_of!(dahdi_spaninfo, errsec), 108),
        (offset_of!(dahdi_spaninfo, irqmisses), 112),
        (offset_of!(dahdi_spaninfo, syncsrc), 116),
        (offset_of!(dahdi_spaninfo, numchans), 120),
        (offset_of!(dahdi_spaninfo, totalchans), 124),
        (offset_of!(dahdi_spaninfo, totalspans), 128),
        (offset_of!(dahdi_spaninfo, lbo), 132),
        (offset_of!(dahdi_spaninfo, lineconfig), 136),
        (offset_of!(dahdi_spaninfo, lboname), 140),
        (offset_of!(dahdi_spaninfo, location), 180),
        (offset_of!(dahdi_spaninfo, manufacturer), 220),
        (offset_of!(dahdi_spaninfo, devicetype), 260),
        (offset_of!(dahdi_spaninfo, irq), 300),
        (offset_of!(dahdi_spaninfo, linecompat), 304),
        (offset_of!(dahdi_spaninfo, spantype), 308),
    ];
    for (i, (got, want)) in expected.iter().enumerate() {
        assert_eq!(got, want, "dahdi_spaninfo field #{i}");
    }
}

#[test]
fn small_struct_offsets_match_user_h() {
    assert_eq!(offset_of!(dahdi_lineconfig, span), 0);
    assert_eq!(offset_of!(dahdi_lineconfig, name), 4);
    assert_eq!(offset_of!(dahdi_lineconfig, lbo), 24);
    assert_eq!(offset_of!(dahdi_lineconfig, lineconfig), 28);
    assert_eq!(offset_of!(dahdi_lineconfig, sync), 32);

    assert_eq!(offset_of!(dahdi_chanconfig, chan), 0);
    assert_eq!(offset_of!(dahdi_chanconfig, name), 4);
    assert_eq!(offset_of!(dahdi_chanconfig, sigtype), 44);
    assert_eq!(offset_of!(dahdi_chanconfig, deflaw), 48);
    assert_eq!(offset_of!(dahdi_chanconfig, master), 52);
    assert_eq!(offset_of!(dahdi_chanconfig, idlebits), 56);
    assert_eq!(offset_of!(dahdi_chanconfig, netdev_name), 60);

    assert_eq!(offset_of!(dahdi_maintinfo, spanno), 0);
    assert_eq!(offset_of!(dahdi_maintinfo, command), 4);

    assert_eq!(offset_of!(dahdi_versioninfo, version), 0);
    assert_eq!(offset_of!(dahdi_versioninfo, echo_canceller), 80);

    assert_eq!(offset_of!(dahdi_tone_def_header, count), 0);
    assert_eq!(offset_of!(dahdi_tone_def_header, zone), 4);
    assert_eq!(offset_of!(dahdi_tone_def_header, ringcadence), 8);
    assert_eq!(offset_of!(dahdi_tone_def_header, name), 72);

    assert_eq!(offset_of!(dahdi_attach_echocan, chan), 0);
    assert_eq!(offset_of!(dahdi_attach_echocan, echocan), 4);
}

#[test]
fn ioctl_request_codes_match_user_h() {
    let expected: [(IoctlRequest, u32, &str); 21] = [
        (DAHDI_GET_PARAMS, 0xc088_da05, "DAHDI_GET_PARAMS"),
        (DAHDI_SET_PARAMS, 0x4088_da05, "DAHDI_SET_PARAMS"),
        (DAHDI_HOOK, 0x4004_da07, "DAHDI_HOOK"),
        (DAHDI_GETEVENT, 0x8004_da08, "DAHDI_GETEVENT"),
        (DAHDI_SPANSTAT, 0xc13a_da0a, "DAHDI_SPANSTAT"),
        (DAHDI_MAINT, 0x4008_da0b, "DAHDI_MAINT"),
        (DAHDI_SPANCONFIG, 0x4024_da12, "DAHDI_SPANCONFIG"),
        (DAHDI_CHANCONFIG, 0x404c_da13, "DAHDI_CHANCONFIG"),
        (DAHDI_GET_BUFINFO, 0x8018_da1b, "DAHDI_GET_BUFINFO"),
        (DAHDI_CHANNO, 0x8004_da22, "DAHDI_CHANNO"),
        (DAHDI_SPECIFY, 0x4004_da26, "DAHDI_SPECIFY"),
        (DAHDI_GETVERSION, 0x80a0_da39, "DAHDI_GETVERSION"),
        (DAHDI_STARTUP, 0x4004_da63, "DAHDI_STARTUP"),
        (DAHDI_SHUTDOWN, 0x4004_da64, "DAHDI_SHUTDOWN"),
        (DAHDI_GET_BLOCKSIZE, 0x8004_da01, "DAHDI_GET_BLOCKSIZE"),
        (DAHDI_SET_BLOCKSIZE, 0x4004_da01, "DAHDI_SET_BLOCKSIZE"),
        (DAHDI_DEFAULTZONE, 0x4004_da18, "DAHDI_DEFAULTZONE"),
        (DAHDI_LOADZONE, 0x4070_da19, "DAHDI_LOADZONE"),
        (DAHDI_FREEZONE, 0x4004_da1a, "DAHDI_FREEZONE"),
        (DAHDI_ATTACH_ECHOCAN, 0x4014_da3b, "DAHDI_ATTACH_ECHOCAN"),
        (DAHDI_HDLC_RATE, 0x4004_da65, "DAHDI_HDLC_RATE"),
    ];
    for (request, number, name) in expected {
        // IoctlRequest is c_ulong on glibc, c_int on musl.
        #[allow(clippy::unnecessary_cast)]
        let request_number = request as u64;
        assert_eq!(request_number, u64::from(number), "{name}");
        assert_eq!(ioctl_name(request), Some(name));
    }
    // The legacy _IOR form of GET_PARAMS is a different request, and unknown here.
    assert_eq!(ioctl_name(0x8088_da05 as IoctlRequest), None);
}

#[test]
fn watchdog_requests_sit_in_the_extension_range_only() {
    // _IOW/_IO/_IOR encodings, worked out by hand from asm-generic/ioctl.h.
    let expected: [(IoctlRequest, u32, &str); 4] = [
        (TANDEM_WATCHDOG_ARM, 0x4004_daf0, "TANDEM_WATCHDOG_ARM"),
        (TANDEM_WATCHDOG_KICK, 0x0000_daf1, "TANDEM_WATCHDOG_KICK"),
        (
            TANDEM_WATCHDOG_DISARM,
            0x0000_daf2,
            "TANDEM_WATCHDOG_DISARM",
        ),
        (
            TANDEM_WATCHDOG_STATUS,
            0x8018_daf3,
            "TANDEM_WATCHDOG_STATUS",
        ),
    ];
    let nr = |request: IoctlRequest| {
        #[allow(clippy::unnecessary_cast)]
        let n = request as u64;
        ((n & 0xff) as u8, ((n >> 8) & 0xff) as u8)
    };
    for (request, number, name) in expected {
        #[allow(clippy::unnecessary_cast)]
        let request_number = request as u64;
        assert_eq!(request_number, u64::from(number), "{name}");
        assert_eq!(ioctl_name(request), Some(name));
        let (n, ty) = nr(request);
        assert_eq!(ty, DAHDI_CODE, "{name}");
        assert!((TANDEM_EXT_FIRST..=TANDEM_EXT_LAST).contains(&n), "{name}");
    }
    for dahdi in [
        DAHDI_GET_PARAMS,
        DAHDI_SET_PARAMS,
        DAHDI_HOOK,
        DAHDI_GETEVENT,
        DAHDI_SPANSTAT,
        DAHDI_MAINT,
        DAHDI_SPANCONFIG,
        DAHDI_CHANCONFIG,
        DAHDI_GET_BUFINFO,
        DAHDI_CHANNO,
        DAHDI_SPECIFY,
        DAHDI_GETVERSION,
        DAHDI_STARTUP,
        DAHDI_SHUTDOWN,
        DAHDI_GET_BLOCKSIZE,
        DAHDI_SET_BLOCKSIZE,
        DAHDI_DEFAULTZONE,
        DAHDI_LOADZONE,
        DAHDI_FREEZONE,
        DAHDI_ATTACH_ECHOCAN,
        DAHDI_HDLC_RATE,
    ] {
        let (n, _) = nr(dahdi);
        assert!(n < TANDEM_EXT_FIRST, "{:?}", ioctl_name(dahdi));
    }
}

#[test]
fn watchdog_status_offsets() {
    assert_eq!(offset_of!(tandem_watchdog_status, armed), 0);
    assert_eq!(offset_of!(tandem_watchdog_status, timeout_ms), 4);
    assert_eq!(offset_of!(tandem_watchdog_status, last_kick_age_ms), 8);
    assert_eq!(offset_of!(tandem_watchdog_status, expired_count), 12);
    assert_eq!(offset_of!(tandem_watchdog_status, relay_holder), 16);
    assert_eq!(offset_of!(tandem_watchdog_status, released), 20);
}

#[test]
fn c_strings_round_trip_and_stay_terminated() {
    let mut name = [0xffu8; 6];
    set_c_string(&mut name, "E1");
    assert_eq!(&name, b"E1\0\0\0\0");
    assert_eq!(c_string(&name), "E1");
    set_c_string(&mut name, "TOOLONG");
    assert_eq!(&name, b"TOOLO\0");
    assert_eq!(c_string(b"no-nul"), "no-nul");
}

#[test]
fn unknown_requests_are_described_by_their_encoding() {
    assert_eq!(
        describe_request(DAHDI_ATTACH_ECHOCAN),
        "DAHDI_ATTACH_ECHOCAN"
    );
    // DAHDI_SETTONEZONE (_IOW(DAHDI_CODE, 22, int)) is not declared here.
    assert_eq!(
        describe_request(0x4004_da16 as IoctlRequest),
        "_IOW(0xDA, 22, 4)"
    );
    assert_eq!(
        describe_request(0xc088_da2a as IoctlRequest),
        "_IOWR(0xDA, 42, 136)"
    );
    assert_eq!(
        describe_request(0x0000_da2c as IoctlRequest),
        "_IO(0xDA, 44)"
    );
}
