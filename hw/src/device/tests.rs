//! Unit tests of the driver that need no device: value conversions, error
//! text, node paths and a missing device root.

use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::error::ioctl_error;
use super::*;
use crate::abi;

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
