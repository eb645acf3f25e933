//! Channel operations: opening a channel file (and `DAHDI_SPECIFY`),
//! `GET_PARAMS` (with the master channel on request), `SET_PARAMS`,
//! `CHANCONFIG`, `ATTACH_ECHOCAN`, `HDLC_RATE`, and `DAHDI_HOOK`, the local
//! hook state machine ([`TxHook`]) with DAHDI's errnos (`ENXIO` for opening
//! an unconfigured channel, `EINVAL` for an unknown channel, hook value or
//! echo canceller, `EBUSY` for a hook operation in the wrong state).
//!
//! This module owns what the card transmits on a channel and its signalling
//! configuration (type, law, master, echo canceller, HDLC rate). It must not change the far end except as a hook operation
//! on the carrying span reaches it (the far end's own moves are in
//! `trunk.rs`), and it queues events only through `queue_event` (`events.rs`).

use nix::errno::Errno;

use super::{ChannelId, FarEnd, Timing, World};
use crate::abi::{self, dahdi_params};

/// The local hook state of a card channel (what the card transmits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxHook {
    OnHook,
    OffHook,
    /// Ringing the far end (`HOOK(RING)` / `HOOK(START)`).
    Ringing,
}

/// The echo cancellers the simulated system has (as the software ones of
/// dahdi-linux name themselves); `DAHDI_ATTACH_ECHOCAN` matches a name
/// without regard to case, `DAHDI_GETVERSION` lists them.
pub const ECHO_CANCELLERS: &[&str] = &["MG2", "KB1", "SEC", "SEC2", "OSLEC"];

/// The HDLC bit rate of a channel (`DAHDI_HDLC_RATE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HdlcRate {
    /// 56 kbit/s (the argument 56).
    Kbps56,
    /// 64 kbit/s (any other argument, as DAHDI takes it).
    Kbps64,
}

/// Signalling types the simulated channels can take.
pub const SIG_CAPS: i32 = abi::DAHDI_SIG_FXSLS
    | abi::DAHDI_SIG_FXSGS
    | abi::DAHDI_SIG_FXSKS
    | abi::DAHDI_SIG_FXOLS
    | abi::DAHDI_SIG_FXOGS
    | abi::DAHDI_SIG_FXOKS
    | abi::DAHDI_SIG_EM
    | abi::DAHDI_SIG_EM_E1
    | abi::DAHDI_SIG_CLEAR
    | abi::DAHDI_SIG_HDLCNET
    | abi::DAHDI_SIG_CAS
    | abi::DAHDI_SIG_HARDHDLC
    | abi::DAHDI_SIG_MTP2;

impl World {
    /// `DAHDI_GET_PARAMS` for `id` asked with `DAHDI_GET_PARAMS_RETURN_MASTER`:
    /// as [`World::params`], with the master's channel number in the upper
    /// 16 bits of `channo` (a channel that is not a slave is its own master).
    pub fn params_with_master(&self, id: ChannelId) -> Result<dahdi_params, Errno> {
        let mut params = self.params(id)?;
        let master = match self.chan(id).master {
            0 => params.channo,
            m => m,
        };
        params.channo |= master << 16;
        Ok(params)
    }

    /// `DAHDI_GET_PARAMS` for `id`.
    pub fn params(&self, id: ChannelId) -> Result<dahdi_params, Errno> {
        self.card(id.card)?;
        let ch = self.chan(id);
        let span = &self.cards[id.card].spans[id.span];
        let far = self.carried_far_end(id);
        let mut params = dahdi_params {
            channo: self.channo(id),
            spanno: id.span as i32 + 1,
            chanpos: id.index as i32 + 1,
            sigtype: ch.sig,
            sigcap: SIG_CAPS,
            rxisoffhook: i32::from(matches!(far, Some(FarEnd::Ringing | FarEnd::OffHook))),
            rxbits: -1,
            txbits: -1,
            txhooksig: match ch.tx {
                TxHook::OnHook => abi::DAHDI_TXSIG_ONHOOK,
                TxHook::OffHook => abi::DAHDI_TXSIG_OFFHOOK,
                TxHook::Ringing => abi::DAHDI_TXSIG_START,
            },
            rxhooksig: match far {
                Some(FarEnd::Ringing) => abi::DAHDI_RXSIG_RING,
                Some(FarEnd::OffHook) => abi::DAHDI_RXSIG_OFFHOOK,
                _ if !span.running => abi::DAHDI_RXSIG_INITIAL,
                _ => abi::DAHDI_RXSIG_ONHOOK,
            },
            curlaw: if ch.law == abi::DAHDI_LAW_MULAW {
                abi::DAHDI_LAW_MULAW
            } else {
                abi::DAHDI_LAW_ALAW
            },
            idlebits: ch.idle_bits,
            prewinktime: ch.timing.prewinktime,
            preflashtime: ch.timing.preflashtime,
            winktime: ch.timing.winktime,
            flashtime: ch.timing.flashtime,
            starttime: ch.timing.starttime,
            rxwinktime: ch.timing.rxwinktime,
            rxflashtime: ch.timing.rxflashtime,
            debouncetime: ch.timing.debouncetime,
            pulsebreaktime: ch.timing.pulsebreaktime,
            pulsemaketime: ch.timing.pulsemaketime,
            pulseaftertime: ch.timing.pulseaftertime,
            chan_alarms: ch.chan_alarms,
            ..Default::default()
        };
        abi::set_c_string(
            &mut params.name,
            &format!("CARDSIM/{}/{}/{}", id.card, id.span + 1, id.index + 1),
        );
        Ok(params)
    }

    /// `DAHDI_SET_PARAMS` for `id`: the timing fields (signalling type is not set here).
    pub fn set_params(&mut self, id: ChannelId, params: &dahdi_params) -> Result<(), Errno> {
        self.card(id.card)?;
        self.chan_mut(id).timing = Timing {
            prewinktime: params.prewinktime,
            preflashtime: params.preflashtime,
            winktime: params.winktime,
            flashtime: params.flashtime,
            starttime: params.starttime,
            rxwinktime: params.rxwinktime,
            rxflashtime: params.rxflashtime,
            debouncetime: params.debouncetime,
            pulsebreaktime: params.pulsebreaktime,
            pulsemaketime: params.pulsemaketime,
            pulseaftertime: params.pulseaftertime,
        };
        Ok(())
    }

    /// `DAHDI_CHANCONFIG` (`EINVAL` for an unknown channel or a signalling type it cannot take).
    pub fn chan_config(
        &mut self,
        card: usize,
        config: &abi::dahdi_chanconfig,
    ) -> Result<(), Errno> {
        let id = self.channel_by_number(card, config.chan)?;
        let master = if config.sigtype == abi::DAHDI_SIG_SLAVE {
            // A slave follows its master's configuration: the master must exist.
            self.channel_by_number(card, config.master)?;
            config.master
        } else if config.sigtype & SIG_CAPS != config.sigtype {
            return Err(Errno::EINVAL);
        } else {
            0
        };
        if ![
            abi::DAHDI_LAW_DEFAULT,
            abi::DAHDI_LAW_MULAW,
            abi::DAHDI_LAW_ALAW,
        ]
        .contains(&config.deflaw)
        {
            return Err(Errno::EINVAL);
        }
        let ch = self.chan_mut(id);
        ch.sig = config.sigtype;
        ch.law = if config.deflaw == abi::DAHDI_LAW_DEFAULT {
            abi::DAHDI_LAW_ALAW
        } else {
            config.deflaw
        };
        ch.idle_bits = config.idlebits;
        ch.master = master;
        Ok(())
    }

    /// `DAHDI_ATTACH_ECHOCAN`: `EINVAL` for an unknown channel or an echo
    /// canceller the system does not have; an empty name detaches. The name
    /// is read up to its first NUL, at most 15 bytes (DAHDI terminates it).
    pub fn attach_echocan(
        &mut self,
        card: usize,
        attach: &abi::dahdi_attach_echocan,
    ) -> Result<(), Errno> {
        let id = self.channel_by_number(card, attach.chan)?;
        let mut name = attach.echocan;
        name[name.len() - 1] = 0;
        let wanted = abi::c_string(&name);
        let echocan = if wanted.is_empty() {
            None
        } else {
            let known = ECHO_CANCELLERS
                .iter()
                .find(|known| known.eq_ignore_ascii_case(&wanted))
                .ok_or(Errno::EINVAL)?;
            Some(*known)
        };
        self.chan_mut(id).echocan = echocan;
        Ok(())
    }

    /// `DAHDI_HDLC_RATE` on a channel file: 56 selects 56 kbit/s, anything else 64.
    pub fn set_hdlc_rate(&mut self, id: ChannelId, rate: i32) -> Result<(), Errno> {
        self.card(id.card)?;
        self.chan_mut(id).hdlc_rate = if rate == 56 {
            HdlcRate::Kbps56
        } else {
            HdlcRate::Kbps64
        };
        Ok(())
    }

    /// Opening a channel file: `ENXIO` unless the channel has a signalling type.
    pub fn open_channel(&self, id: ChannelId) -> Result<(), Errno> {
        self.card(id.card)?;
        if self.chan(id).sig == 0 {
            return Err(Errno::ENXIO);
        }
        Ok(())
    }

    /// `DAHDI_SPECIFY`: `EINVAL` for an unknown channel number, then as [`World::open_channel`].
    pub fn specify(&self, card: usize, channo: i32) -> Result<ChannelId, Errno> {
        let id = self.channel_by_number(card, channo)?;
        self.open_channel(id)?;
        Ok(id)
    }

    /// `DAHDI_HOOK`.
    pub fn hook(&mut self, id: ChannelId, value: i32) -> Result<(), Errno> {
        self.card(id.card)?;
        let carrier = self.carries(id);
        let slot = id.index;
        let trunk = self.cards[id.card].spans[id.span].trunk;
        let tx = self.chan(id).tx;
        let far = self.trunks[trunk].timeslots[slot].far;
        match value {
            abi::DAHDI_ONHOOK => {
                if carrier {
                    let ts = &mut self.trunks[trunk].timeslots[slot];
                    match (tx, far) {
                        (TxHook::OffHook, FarEnd::OffHook) | (TxHook::Ringing, FarEnd::Alerted) => {
                            ts.far = FarEnd::OnHook;
                            ts.hold = false;
                        }
                        _ => {}
                    }
                }
                self.chan_mut(id).tx = TxHook::OnHook;
            }
            abi::DAHDI_OFFHOOK => {
                if tx == TxHook::Ringing {
                    return Err(Errno::EBUSY);
                }
                self.chan_mut(id).tx = TxHook::OffHook;
                if carrier && far == FarEnd::Ringing {
                    self.trunks[trunk].timeslots[slot].far = FarEnd::OffHook;
                }
            }
            abi::DAHDI_RING | abi::DAHDI_START => {
                if tx != TxHook::OnHook || (carrier && far != FarEnd::OnHook) {
                    return Err(Errno::EBUSY);
                }
                self.chan_mut(id).tx = TxHook::Ringing;
                if carrier {
                    self.trunks[trunk].timeslots[slot].far = FarEnd::Alerted;
                }
                self.queue_event(id, abi::DAHDI_EVENT_RINGERON);
            }
            abi::DAHDI_RINGOFF => {
                if tx == TxHook::Ringing {
                    self.chan_mut(id).tx = TxHook::OnHook;
                    if carrier && far == FarEnd::Alerted {
                        self.trunks[trunk].timeslots[slot].far = FarEnd::OnHook;
                    }
                    self.queue_event(id, abi::DAHDI_EVENT_RINGEROFF);
                }
            }
            abi::DAHDI_WINK => {
                if tx != TxHook::OnHook {
                    return Err(Errno::EBUSY);
                }
                self.queue_event(id, abi::DAHDI_EVENT_HOOKCOMPLETE);
            }
            abi::DAHDI_FLASH => {
                if tx != TxHook::OffHook {
                    return Err(Errno::EBUSY);
                }
                if carrier && far == FarEnd::OffHook {
                    let ts = &mut self.trunks[trunk].timeslots[slot];
                    ts.hold = !ts.hold;
                }
                self.queue_event(id, abi::DAHDI_EVENT_HOOKCOMPLETE);
            }
            _ => return Err(Errno::EINVAL),
        }
        Ok(())
    }
}
