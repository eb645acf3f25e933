//! The ioctls of one simulated card's files: which request each kind of
//! open file answers, the decoding of its argument from the bytes FUSE
//! hands over, the call into [`World`], and the encoding of the answer.
//!
//! This module owns that table and nothing else: no FUSE types, no state.
//! Arguments are checked against the request's encoded size (what FUSE's
//! "restricted" ioctls copy in and out), so a struct of the wrong size is
//! `EINVAL`. A request a file does not serve — unknown, or a known number
//! with another size or direction — is [`Refusal::Unserved`], which the
//! filesystem answers `ENOTTY` and logs by name (or by its decoded
//! `_IOW(…)` form); the model's own refusals carry DAHDI's errno.

use std::time::Instant;

use nix::errno::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::model::{ChannelId, PseudoId, World};
use crate::abi::{self, IoctlRequest};

/// What an open file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    Ctl,
    /// `channel` before `DAHDI_SPECIFY`.
    Unbound,
    Bound(ChannelId),
    /// A `pseudo` file: its own pseudo channel.
    Pseudo(PseudoId),
}

/// Why an ioctl got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The model (or the argument check) refused with DAHDI's errno.
    Errno(Errno),
    /// This file does not serve the request: `ENOTTY`.
    Unserved,
}

impl From<Errno> for Refusal {
    fn from(errno: Errno) -> Refusal {
        Refusal::Errno(errno)
    }
}

/// A served ioctl: the bytes copied back out, and the file's new binding
/// when it changed (`DAHDI_SPECIFY`).
pub(crate) struct Answer {
    pub(crate) out: Vec<u8>,
    pub(crate) rebind: Option<Opened>,
}

impl Answer {
    fn none() -> Result<Answer, Refusal> {
        Ok(Answer {
            out: Vec::new(),
            rebind: None,
        })
    }

    fn out(out: Vec<u8>) -> Result<Answer, Refusal> {
        Ok(Answer { out, rebind: None })
    }
}

/// Answer `cmd` on a file of `card` that is `opened`.
pub(crate) fn dispatch(
    world: &mut World,
    card: usize,
    opened: Opened,
    cmd: IoctlRequest,
    input: &[u8],
    out_size: usize,
) -> Result<Answer, Refusal> {
    match opened {
        Opened::Ctl => ctl(world, card, cmd, input, out_size),
        Opened::Unbound if cmd == abi::DAHDI_SPECIFY => {
            let id = world.specify(card, arg(input, 0)?)?;
            Ok(Answer {
                out: Vec::new(),
                rebind: Some(Opened::Bound(id)),
            })
        }
        // An unbound `channel` file only takes DAHDI_SPECIFY (dahdi_prechan_ioctl).
        Opened::Unbound => Err(Refusal::Errno(Errno::ENOSYS)),
        Opened::Bound(id) => channel(world, card, id, cmd, input, out_size),
        Opened::Pseudo(id) => pseudo(world, id, cmd, input, out_size),
    }
}

fn ctl(
    world: &mut World,
    card: usize,
    cmd: IoctlRequest,
    input: &[u8],
    out_size: usize,
) -> Result<Answer, Refusal> {
    match cmd {
        abi::DAHDI_GETVERSION => Answer::out(reply(out_size, &world.version(card)?)?),
        abi::DAHDI_SPANSTAT => {
            let info: abi::dahdi_spaninfo = arg(input, out_size)?;
            if info.spanno == 0 {
                // No channel behind the control node.
                return Err(Errno::EINVAL.into());
            }
            Answer::out(reply(out_size, &world.span_info(card, info.spanno)?)?)
        }
        abi::DAHDI_GET_PARAMS => {
            let params: abi::dahdi_params = arg(input, out_size)?;
            let master = params.channo & abi::DAHDI_GET_PARAMS_RETURN_MASTER != 0;
            let channo = params.channo & !abi::DAHDI_GET_PARAMS_RETURN_MASTER;
            let id = world.channel_by_number(card, channo)?;
            let answer = if master {
                world.params_with_master(id)?
            } else {
                world.params(id)?
            };
            Answer::out(reply(out_size, &answer)?)
        }
        abi::DAHDI_SET_PARAMS => {
            let params: abi::dahdi_params = arg(input, 0)?;
            let id = world.channel_by_number(card, params.channo)?;
            world.set_params(id, &params)?;
            Answer::none()
        }
        abi::DAHDI_SPANCONFIG => {
            world.span_config(card, &arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_CHANCONFIG => {
            world.chan_config(card, &arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_ATTACH_ECHOCAN => {
            world.attach_echocan(card, &arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_LOADZONE => {
            world.load_zone(card, &arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_FREEZONE => {
            world.free_zone(card, arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_DEFAULTZONE => {
            world.set_default_zone(card, arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_STARTUP => {
            world.startup(card, arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_SHUTDOWN => {
            world.shutdown(card, arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_MAINT => {
            world.maint(card, &arg(input, 0)?)?;
            Answer::none()
        }
        abi::TANDEM_WATCHDOG_ARM => {
            let timeout_ms: u32 = arg(input, 0)?;
            world.watchdog_arm(card, timeout_ms, Instant::now())?;
            Answer::none()
        }
        abi::TANDEM_WATCHDOG_KICK => {
            expect_no_input(input)?;
            world.watchdog_kick(card, Instant::now())?;
            Answer::none()
        }
        abi::TANDEM_WATCHDOG_DISARM => {
            expect_no_input(input)?;
            world.watchdog_disarm(card)?;
            Answer::none()
        }
        abi::TANDEM_WATCHDOG_STATUS => {
            expect_no_input(input)?;
            Answer::out(reply(
                out_size,
                &world.watchdog_status(card, Instant::now())?,
            )?)
        }
        _ => Err(Refusal::Unserved),
    }
}

fn channel(
    world: &mut World,
    card: usize,
    id: ChannelId,
    cmd: IoctlRequest,
    input: &[u8],
    out_size: usize,
) -> Result<Answer, Refusal> {
    match cmd {
        abi::DAHDI_GET_PARAMS => {
            // The file's own channel, whatever number was asked (as DAHDI does).
            let params: abi::dahdi_params = arg(input, out_size)?;
            let answer = if params.channo & abi::DAHDI_GET_PARAMS_RETURN_MASTER != 0 {
                world.params_with_master(id)?
            } else {
                world.params(id)?
            };
            Answer::out(reply(out_size, &answer)?)
        }
        abi::DAHDI_SET_PARAMS => {
            world.set_params(id, &arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_HOOK => {
            world.hook(id, arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_GETEVENT => {
            expect_no_input(input)?;
            Answer::out(reply(out_size, &world.take_event(id)?)?)
        }
        abi::DAHDI_CHANNO => {
            expect_no_input(input)?;
            Answer::out(reply(out_size, &world.channo(id))?)
        }
        abi::DAHDI_HDLC_RATE => {
            world.set_hdlc_rate(id, arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_GET_BUFINFO => {
            expect_no_input(input)?;
            Answer::out(reply(out_size, &bufinfo(abi::DAHDI_DEFAULT_BLOCKSIZE))?)
        }
        abi::DAHDI_SPANSTAT => {
            let info: abi::dahdi_spaninfo = arg(input, out_size)?;
            let spanno = if info.spanno == 0 {
                id.span as i32 + 1
            } else {
                info.spanno
            };
            Answer::out(reply(out_size, &world.span_info(card, spanno)?)?)
        }
        _ => Err(Refusal::Unserved),
    }
}

fn pseudo(
    world: &mut World,
    id: PseudoId,
    cmd: IoctlRequest,
    input: &[u8],
    out_size: usize,
) -> Result<Answer, Refusal> {
    match cmd {
        abi::DAHDI_GET_PARAMS => {
            let params: abi::dahdi_params = arg(input, out_size)?;
            let master = params.channo & abi::DAHDI_GET_PARAMS_RETURN_MASTER != 0;
            Answer::out(reply(out_size, &world.pseudo_params(id, master)?)?)
        }
        abi::DAHDI_CHANNO => {
            expect_no_input(input)?;
            Answer::out(reply(out_size, &world.pseudo_channo(id)?)?)
        }
        abi::DAHDI_GET_BLOCKSIZE => {
            expect_no_input(input)?;
            Answer::out(reply(out_size, &world.pseudo_blocksize(id)?)?)
        }
        abi::DAHDI_SET_BLOCKSIZE => {
            world.set_pseudo_blocksize(id, arg(input, 0)?)?;
            Answer::none()
        }
        abi::DAHDI_GET_BUFINFO => {
            expect_no_input(input)?;
            Answer::out(reply(out_size, &bufinfo(world.pseudo_blocksize(id)?))?)
        }
        _ => Err(Refusal::Unserved),
    }
}

/// `DAHDI_GET_BUFINFO`: immediate policy, DAHDI's default number of buffers.
fn bufinfo(bufsize: i32) -> abi::dahdi_bufferinfo {
    abi::dahdi_bufferinfo {
        txbufpolicy: 0,
        rxbufpolicy: 0,
        numbufs: abi::DAHDI_DEFAULT_NUM_BUFS,
        bufsize,
        readbufs: 0,
        writebufs: 0,
    }
}

/// Decode an ioctl argument: the input must be exactly one `T`, and the
/// output (if any) exactly one `T` too.
fn arg<T: FromBytes>(input: &[u8], out_size: usize) -> Result<T, Errno> {
    if out_size != 0 && out_size != size_of::<T>() {
        return Err(Errno::EINVAL);
    }
    T::read_from_bytes(input).map_err(|_| Errno::EINVAL)
}

fn expect_no_input(input: &[u8]) -> Result<(), Errno> {
    if input.is_empty() {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// Encode an ioctl answer; the caller's buffer must be exactly one `T`.
fn reply<T: IntoBytes + Immutable + KnownLayout>(
    out_size: usize,
    value: &T,
) -> Result<Vec<u8>, Errno> {
    if out_size != size_of::<T>() {
        return Err(Errno::EINVAL);
    }
    Ok(value.as_bytes().to_vec())
}
