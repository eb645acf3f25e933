//! The ioctls the driver issues, each bound once to its request code from
//! [`crate::abi`] (nix's `*_bad!` macros, since the codes are precomputed there).
//!
//! This module owns only the bindings: the generated functions are `unsafe`
//! and are called only from the safe methods of `Control` (`control.rs`) and
//! `Channel` (`channel.rs`), one `unsafe` line each. It must not declare
//! request numbers of its own (they live in `abi.rs`, tested against the C
//! header) nor wrap the calls in any logic.

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
nix::ioctl_write_ptr_bad!(attach_echocan, DAHDI_ATTACH_ECHOCAN, dahdi_attach_echocan);
nix::ioctl_write_ptr_bad!(startup, DAHDI_STARTUP, i32);
nix::ioctl_write_ptr_bad!(shutdown, DAHDI_SHUTDOWN, i32);
nix::ioctl_write_ptr_bad!(watchdog_arm, TANDEM_WATCHDOG_ARM, u32);
nix::ioctl_none_bad!(watchdog_kick, TANDEM_WATCHDOG_KICK);
nix::ioctl_none_bad!(watchdog_disarm, TANDEM_WATCHDOG_DISARM);
nix::ioctl_read_bad!(
    watchdog_status,
    TANDEM_WATCHDOG_STATUS,
    tandem_watchdog_status
);
