//! The simulated hardware: cards of N spans × M channels, the trunks they
//! terminate, and the failover switch that connects each trunk to one card.
//!
//! This module owns every bit of simulated state and answers DAHDI's
//! operations with DAHDI's errnos (taken from dahdi-base.c: `EINVAL` for an
//! unknown span in `SPANSTAT`/`MAINT` or channel in `GET_PARAMS`/`CHANCONFIG`,
//! `ENXIO` for an unknown span in `STARTUP`/`SHUTDOWN`/`SPANCONFIG` and for
//! opening an unconfigured channel, `EBUSY` for hook operations in the wrong
//! state, `ENOSYS` for an unknown maintenance command). It also plays the far
//! end of every trunk (ring, answer, hang up) and takes injected faults.
//!
//! It does no I/O and knows nothing of FUSE: the filesystem in `fs.rs` turns
//! ioctls into calls here, and registers wakers that are called when a
//! channel gets an event (that is how `POLLPRI` reaches a poller).
//!
//! ## Model
//! - A span is stopped until `STARTUP`; `SHUTDOWN` stops it and unconfigures
//!   its channels (signalling type 0), as DAHDI does. A stopped span reports
//!   `NOTOPEN`.
//! - Each span terminates one trunk (E1/T1 line). With a shared trunk, span *s*
//!   of every card terminates trunk *s* through a failover switch: only one
//!   span carries it, the first started; when the carrier shuts down, the
//!   switch moves the trunk to the next started span, if any. A started span
//!   that does not carry its trunk sees no signal: `RED|LOS`.
//! - The far end of each timeslot is on hook, ringing us, being rung by us, or
//!   off hook. Moving the trunk does not disturb the far end: calls stay up,
//!   and the span that takes the trunk over gets `RINGOFFHOOK` for every
//!   timeslot whose far end is ringing or off hook (DAHDI queues the received
//!   hook state after `STARTUP` the same way).
//! - Span alarms = injected | `RED|LOS` from `DAHDI_MAINT_ALARM_SIM` |
//!   `LOOPBACK` in a loopback maintenance mode | `NOTOPEN` when stopped |
//!   `RED|LOS` when started without the trunk or when the trunk is cut. Every
//!   change queues `ALARM`/`NOALARM` on the span's channels.
//! - Incoming call: far end rings → `RINGOFFHOOK`; `HOOK(OFFHOOK)` answers;
//!   far-end hang-up → `ONHOOK`; `HOOK(ONHOOK)` hangs up towards the far end.
//!   Outgoing: `HOOK(RING)` → `RINGERON`; far end answers → `RINGOFFHOOK`;
//!   `HOOK(RINGOFF)` → `RINGEROFF`. `FLASH` on an answered call toggles hold
//!   and completes with `HOOKCOMPLETE`, as does `WINK`.
//!
//! Deviations from a real card: no audio, no timers (wink, flash and
//! ring cadences complete at once), channel files are not exclusive (FUSE
//! releases files asynchronously, so exclusivity would make quick reopen racy).

use std::collections::VecDeque;
use std::fmt;

use nix::errno::Errno;

use crate::abi::{self, dahdi_params, dahdi_spaninfo};

/// Called (once) when a channel gets an event; registered by a poller.
pub type Waker = Box<dyn FnOnce() + Send>;

/// What to simulate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Number of cards (each is served as its own device root).
    pub cards: usize,
    /// Spans per card.
    pub spans: usize,
    /// Channels per span (E1: 31, T1: 24).
    pub channels: usize,
    /// Span *s* of every card shares trunk *s* through a failover switch.
    pub shared_trunks: bool,
    /// Signalling type the channels start with (as if `dahdi_cfg` had run), 0 for none.
    pub signalling: i32,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            cards: 1,
            spans: 1,
            channels: 31,
            shared_trunks: false,
            signalling: abi::DAHDI_SIG_FXSKS,
        }
    }
}

/// A configuration that cannot be simulated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("simulator config: {field} = {value}: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub value: usize,
    pub reason: &'static str,
}

/// The local hook state of a card channel (what the card transmits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxHook {
    OnHook,
    OffHook,
    /// Ringing the far end (`HOOK(RING)` / `HOOK(START)`).
    Ringing,
}

/// The far end of one trunk timeslot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FarEnd {
    OnHook,
    /// The far end is calling us and ringing.
    Ringing,
    /// We are ringing the far end.
    Alerted,
    OffHook,
}

/// A call's state on one timeslot, as the far end and the carrying channel see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    Idle,
    /// Incoming, not answered yet.
    Ringing,
    /// Outgoing, the far end is ringing.
    Alerting,
    Answered,
    OnHold,
    /// The far end hung up; the channel is still off hook.
    HungUp,
    /// The far end is off hook but no carrying channel is (after a trunk moved).
    Orphaned,
}

impl fmt::Display for CallState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallState::Idle => "idle",
            CallState::Ringing => "ringing",
            CallState::Alerting => "alerting",
            CallState::Answered => "answered",
            CallState::OnHold => "on-hold",
            CallState::HungUp => "hung-up",
            CallState::Orphaned => "orphaned",
        })
    }
}

/// A span as the control interface reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanReport {
    pub card: usize,
    pub span: i32,
    pub running: bool,
    pub alarms: u32,
    /// This span carries its trunk.
    pub carrier: bool,
    pub trunk: usize,
    /// Call state per channel position (index 0 = channel 1).
    pub calls: Vec<CallState>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Timing {
    prewinktime: i32,
    preflashtime: i32,
    winktime: i32,
    flashtime: i32,
    starttime: i32,
    rxwinktime: i32,
    rxflashtime: i32,
    debouncetime: i32,
    pulsebreaktime: i32,
    pulsemaketime: i32,
    pulseaftertime: i32,
}

struct ChannelState {
    sig: i32,
    law: i32,
    idle_bits: i32,
    tx: TxHook,
    chan_alarms: u32,
    events: VecDeque<i32>,
    timing: Timing,
    /// Pollers to wake on the next event, keyed by their poll handle.
    wakers: Vec<(u64, Waker)>,
}

#[derive(Default)]
struct Counters {
    bpv: i32,
    crc4: i32,
    ebit: i32,
    fas: i32,
}

struct SpanState {
    running: bool,
    trunk: usize,
    injected: u32,
    alarm_sim: bool,
    maint: i32,
    alarms: u32,
    line_config: i32,
    lbo: i32,
    sync: i32,
    counters: Counters,
    channels: Vec<ChannelState>,
}

struct Card {
    spans: Vec<SpanState>,
    /// Hot-unplugged: every operation answers `ENODEV`.
    removed: bool,
}

#[derive(Clone, Copy)]
struct Timeslot {
    far: FarEnd,
    hold: bool,
}

struct Trunk {
    timeslots: Vec<Timeslot>,
    /// (card, span index) of every span that terminates this trunk.
    members: Vec<(usize, usize)>,
    carrier: Option<(usize, usize)>,
    cut: bool,
}

/// Where a channel lives: card, span index (0-based), channel index (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelId {
    pub card: usize,
    pub span: usize,
    pub index: usize,
}

/// Line configurations the simulated spans accept (E1 and T1 framing/coding).
pub const LINE_COMPAT: i32 = abi::DAHDI_CONFIG_D4
    | abi::DAHDI_CONFIG_ESF
    | abi::DAHDI_CONFIG_AMI
    | abi::DAHDI_CONFIG_B8ZS
    | abi::DAHDI_CONFIG_CCS
    | abi::DAHDI_CONFIG_HDB3
    | abi::DAHDI_CONFIG_CRC4;

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

/// Version string `DAHDI_GETVERSION` answers with.
pub const VERSION: &str = concat!("tandem-cardsim ", env!("CARGO_PKG_VERSION"));

/// All simulated cards and trunks.
pub struct World {
    config: SimConfig,
    cards: Vec<Card>,
    trunks: Vec<Trunk>,
}

impl World {
    /// Build cards, spans, channels and trunks; every span starts stopped.
    pub fn new(config: SimConfig) -> Result<World, ConfigError> {
        let check = |field, value: usize, max: usize| {
            if value == 0 || value > max {
                Err(ConfigError {
                    field,
                    value,
                    reason: "out of range",
                })
            } else {
                Ok(())
            }
        };
        check("cards", config.cards, 16)?;
        check("spans", config.spans, abi::DAHDI_MAX_SPANS as usize)?;
        check("channels", config.channels, 999)?;
        if config.spans * config.channels > abi::DAHDI_MAX_CHANNELS as usize {
            return Err(ConfigError {
                field: "spans × channels",
                value: config.spans * config.channels,
                reason: "more than DAHDI_MAX_CHANNELS (1024) on one card",
            });
        }

        let mut trunks: Vec<Trunk> = Vec::new();
        let mut cards = Vec::with_capacity(config.cards);
        for card in 0..config.cards {
            let mut spans = Vec::with_capacity(config.spans);
            for span in 0..config.spans {
                let trunk = if config.shared_trunks {
                    span
                } else {
                    card * config.spans + span
                };
                if trunk == trunks.len() {
                    trunks.push(Trunk {
                        timeslots: vec![
                            Timeslot {
                                far: FarEnd::OnHook,
                                hold: false,
                            };
                            config.channels
                        ],
                        members: Vec::new(),
                        carrier: None,
                        cut: false,
                    });
                }
                trunks[trunk].members.push((card, span));
                let channels = (0..config.channels)
                    .map(|_| ChannelState {
                        sig: config.signalling,
                        law: abi::DAHDI_LAW_ALAW,
                        idle_bits: 0,
                        tx: TxHook::OnHook,
                        chan_alarms: abi::DAHDI_ALARM_NOTOPEN,
                        events: VecDeque::new(),
                        timing: Timing::default(),
                        wakers: Vec::new(),
                    })
                    .collect();
                spans.push(SpanState {
                    running: false,
                    trunk,
                    injected: 0,
                    alarm_sim: false,
                    maint: abi::DAHDI_MAINT_NONE,
                    alarms: abi::DAHDI_ALARM_NOTOPEN,
                    line_config: 0,
                    lbo: 0,
                    sync: 0,
                    counters: Counters::default(),
                    channels,
                });
            }
            cards.push(Card {
                spans,
                removed: false,
            });
        }
        Ok(World {
            config,
            cards,
            trunks,
        })
    }

    /// The configuration this world was built from.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    fn card(&self, card: usize) -> Result<&Card, Errno> {
        let c = self.cards.get(card).ok_or(Errno::ENODEV)?;
        if c.removed {
            return Err(Errno::ENODEV);
        }
        Ok(c)
    }

    /// Span index for a DAHDI span number, if it exists.
    fn span_index(&self, spanno: i32) -> Option<usize> {
        let index = usize::try_from(spanno).ok()?.checked_sub(1)?;
        (index < self.config.spans).then_some(index)
    }

    fn chan(&self, id: ChannelId) -> &ChannelState {
        &self.cards[id.card].spans[id.span].channels[id.index]
    }

    fn chan_mut(&mut self, id: ChannelId) -> &mut ChannelState {
        &mut self.cards[id.card].spans[id.span].channels[id.index]
    }

    /// The channel with card-wide number `channo` on `card`.
    pub fn channel_by_number(&self, card: usize, channo: i32) -> Result<ChannelId, Errno> {
        self.card(card)?;
        let n = usize::try_from(channo)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .filter(|&n| n < self.config.spans * self.config.channels)
            .ok_or(Errno::EINVAL)?;
        Ok(ChannelId {
            card,
            span: n / self.config.channels,
            index: n % self.config.channels,
        })
    }

    /// The channel at `chan/<spanno>/<chanpos>` on `card`, if that node exists.
    pub fn channel_at(&self, card: usize, spanno: i32, chanpos: i32) -> Option<ChannelId> {
        let span = self.span_index(spanno)?;
        let index = usize::try_from(chanpos).ok()?.checked_sub(1)?;
        (card < self.cards.len() && index < self.config.channels).then_some(ChannelId {
            card,
            span,
            index,
        })
    }

    /// Card-wide channel number of `id`.
    pub fn channo(&self, id: ChannelId) -> i32 {
        (id.span * self.config.channels + id.index + 1) as i32
    }

    // -----------------------------------------------------------------------
    // Control node operations
    // -----------------------------------------------------------------------

    /// `DAHDI_GETVERSION`.
    pub fn version(&self, card: usize) -> Result<abi::dahdi_versioninfo, Errno> {
        self.card(card)?;
        let mut info = abi::dahdi_versioninfo::default();
        abi::set_c_string(&mut info.version, VERSION);
        abi::set_c_string(&mut info.echo_canceller, "");
        Ok(info)
    }

    /// `DAHDI_SPANSTAT` for span number `spanno` (`EINVAL` if there is no such span).
    pub fn span_info(&self, card: usize, spanno: i32) -> Result<dahdi_spaninfo, Errno> {
        let c = self.card(card)?;
        let index = self.span_index(spanno).ok_or(Errno::EINVAL)?;
        let span = &c.spans[index];
        let mut info = dahdi_spaninfo {
            spanno,
            alarms: span.alarms as i32,
            txlevel: span.lbo,
            rxlevel: 0,
            bpvcount: span.counters.bpv,
            crc4count: span.counters.crc4,
            ebitcount: span.counters.ebit,
            fascount: span.counters.fas,
            syncsrc: if span.running && span.sync > 0 {
                spanno
            } else {
                0
            },
            numchans: span.channels.iter().filter(|ch| ch.sig != 0).count() as i32,
            totalchans: self.config.channels as i32,
            totalspans: self.config.spans as i32,
            lbo: span.lbo,
            lineconfig: span.line_config,
            linecompat: LINE_COMPAT,
            ..Default::default()
        };
        let mut text = [0u8; 40];
        abi::set_c_string(&mut text[..20], &format!("CARDSIM/{card}/{spanno}"));
        info.name.copy_from_slice(&text[..20]);
        abi::set_c_string(
            &mut text,
            &format!("tandem card simulator {card} span {spanno}"),
        );
        info.desc = text;
        abi::set_c_string(&mut text, "0 db (CSU)/0-133 feet (DSX-1)");
        info.lboname = text;
        abi::set_c_string(&mut text, &format!("cardsim:{card}"));
        info.location = text;
        abi::set_c_string(&mut text, "tandem");
        info.manufacturer = text;
        abi::set_c_string(&mut text, "cardsim E1");
        info.devicetype = text;
        let mut spantype = [0u8; 6];
        abi::set_c_string(&mut spantype, "E1");
        info.spantype = spantype;
        Ok(info)
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

    /// `DAHDI_SPANCONFIG` (`ENXIO` for an unknown span, `EINVAL` for an unsupported line config).
    pub fn span_config(&mut self, card: usize, line: &abi::dahdi_lineconfig) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(line.span).ok_or(Errno::ENXIO)?;
        if line.lineconfig & 0x1ff0 & LINE_COMPAT != line.lineconfig & 0x1ff0 {
            return Err(Errno::EINVAL);
        }
        let span = &mut self.cards[card].spans[index];
        span.line_config = line.lineconfig;
        span.lbo = line.lbo;
        span.sync = line.sync;
        Ok(())
    }

    /// `DAHDI_CHANCONFIG` (`EINVAL` for an unknown channel or a signalling type it cannot take).
    pub fn chan_config(
        &mut self,
        card: usize,
        config: &abi::dahdi_chanconfig,
    ) -> Result<(), Errno> {
        let id = self.channel_by_number(card, config.chan)?;
        if config.sigtype & SIG_CAPS != config.sigtype {
            return Err(Errno::EINVAL);
        }
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
        Ok(())
    }

    /// `DAHDI_STARTUP` (`ENXIO` for an unknown span; starting a running span is a no-op).
    pub fn startup(&mut self, card: usize, spanno: i32) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(spanno).ok_or(Errno::ENXIO)?;
        if self.cards[card].spans[index].running {
            return Ok(());
        }
        let span = &mut self.cards[card].spans[index];
        span.running = true;
        for ch in &mut span.channels {
            ch.tx = TxHook::OnHook;
        }
        let trunk = span.trunk;
        if self.trunks[trunk].carrier.is_none() {
            self.connect(trunk, Some((card, index)));
        }
        self.settle_alarms();
        Ok(())
    }

    /// `DAHDI_SHUTDOWN` (`ENXIO` for an unknown span): stop the span, unconfigure its
    /// channels, and let the failover switch move the trunk on.
    pub fn shutdown(&mut self, card: usize, spanno: i32) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(spanno).ok_or(Errno::ENXIO)?;
        let span = &mut self.cards[card].spans[index];
        span.running = false;
        for ch in &mut span.channels {
            ch.sig = 0;
            ch.tx = TxHook::OnHook;
        }
        let trunk = span.trunk;
        if self.trunks[trunk].carrier == Some((card, index)) {
            let next = self.trunks[trunk]
                .members
                .iter()
                .copied()
                .find(|&(c, s)| self.cards[c].spans[s].running && !self.cards[c].removed);
            self.connect(trunk, next);
        }
        self.settle_alarms();
        Ok(())
    }

    /// `DAHDI_MAINT` (`EINVAL` for an unknown span, `ENOSYS` for an unknown command).
    pub fn maint(&mut self, card: usize, info: &abi::dahdi_maintinfo) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(info.spanno).ok_or(Errno::EINVAL)?;
        let span = &mut self.cards[card].spans[index];
        match info.command {
            abi::DAHDI_MAINT_NONE => {
                span.maint = abi::DAHDI_MAINT_NONE;
                span.alarm_sim = false;
            }
            abi::DAHDI_MAINT_LOCALLOOP
            | abi::DAHDI_MAINT_NETWORKLINELOOP
            | abi::DAHDI_MAINT_NETWORKPAYLOADLOOP => span.maint = info.command,
            abi::DAHDI_MAINT_LOOPUP | abi::DAHDI_MAINT_LOOPDOWN | abi::DAHDI_MAINT_PRBS => {}
            abi::DAHDI_MAINT_FAS_DEFECT => span.counters.fas += 1,
            abi::DAHDI_MAINT_MULTI_DEFECT | abi::DAHDI_MAINT_CAS_DEFECT => span.counters.ebit += 1,
            abi::DAHDI_MAINT_CRC_DEFECT => span.counters.crc4 += 1,
            abi::DAHDI_MAINT_BIPOLAR_DEFECT | abi::DAHDI_MAINT_PRBS_DEFECT => {
                span.counters.bpv += 1
            }
            abi::DAHDI_RESET_COUNTERS => span.counters = Counters::default(),
            abi::DAHDI_MAINT_ALARM_SIM => span.alarm_sim = true,
            _ => return Err(Errno::ENOSYS),
        }
        self.settle_alarms();
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Channel operations
    // -----------------------------------------------------------------------

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

    /// `DAHDI_GETEVENT`: the next event, or `DAHDI_EVENT_NONE`.
    pub fn take_event(&mut self, id: ChannelId) -> Result<i32, Errno> {
        self.card(id.card)?;
        Ok(self
            .chan_mut(id)
            .events
            .pop_front()
            .unwrap_or(abi::DAHDI_EVENT_NONE))
    }

    /// Events queued on `id`.
    pub fn pending_events(&self, id: ChannelId) -> usize {
        self.chan(id).events.len()
    }

    /// `poll`: whether an event is pending; if not and `waker` is given, it is
    /// called when one arrives (one waker per `handle`, the latest wins).
    pub fn poll_events(
        &mut self,
        id: ChannelId,
        handle: u64,
        waker: Option<Waker>,
    ) -> Result<bool, Errno> {
        if self.cards.get(id.card).is_none_or(|c| c.removed) {
            return Err(Errno::ENODEV);
        }
        let ch = self.chan_mut(id);
        if !ch.events.is_empty() {
            return Ok(true);
        }
        if let Some(waker) = waker {
            ch.wakers.retain(|(h, _)| *h != handle);
            ch.wakers.push((handle, waker));
        }
        Ok(false)
    }

    /// Forget a poller's waker (its file was closed).
    pub fn forget_waker(&mut self, id: ChannelId, handle: u64) {
        if let Some(ch) = self
            .cards
            .get_mut(id.card)
            .and_then(|c| c.spans.get_mut(id.span))
            .and_then(|s| s.channels.get_mut(id.index))
        {
            ch.wakers.retain(|(h, _)| *h != handle);
        }
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

    // -----------------------------------------------------------------------
    // The far end and fault injection (the control interface)
    // -----------------------------------------------------------------------

    fn timeslot_of(&self, card: usize, spanno: i32, chanpos: i32) -> Result<(usize, usize), Errno> {
        let id = self
            .channel_at(card, spanno, chanpos)
            .ok_or(Errno::EINVAL)?;
        Ok((self.cards[id.card].spans[id.span].trunk, id.index))
    }

    fn carrier_channel(&self, trunk: usize, slot: usize) -> Option<ChannelId> {
        self.trunks[trunk].carrier.map(|(card, span)| ChannelId {
            card,
            span,
            index: slot,
        })
    }

    /// The far end calls on the timeslot behind `chan/<spanno>/<chanpos>` of `card`:
    /// the carrying channel gets `RINGOFFHOOK`.
    pub fn far_ring(&mut self, card: usize, spanno: i32, chanpos: i32) -> Result<(), Errno> {
        let (trunk, slot) = self.timeslot_of(card, spanno, chanpos)?;
        let carrier = self.carrier_channel(trunk, slot);
        if self.trunks[trunk].timeslots[slot].far != FarEnd::OnHook
            || carrier.is_some_and(|id| self.chan(id).tx != TxHook::OnHook)
        {
            return Err(Errno::EBUSY);
        }
        self.trunks[trunk].timeslots[slot].far = FarEnd::Ringing;
        if let Some(id) = carrier {
            self.queue_event(id, abi::DAHDI_EVENT_RINGOFFHOOK);
        }
        Ok(())
    }

    /// The far end answers our ringing: the carrying channel gets `RINGOFFHOOK`.
    pub fn far_answer(&mut self, card: usize, spanno: i32, chanpos: i32) -> Result<(), Errno> {
        let (trunk, slot) = self.timeslot_of(card, spanno, chanpos)?;
        if self.trunks[trunk].timeslots[slot].far != FarEnd::Alerted {
            return Err(Errno::EINVAL);
        }
        self.trunks[trunk].timeslots[slot].far = FarEnd::OffHook;
        if let Some(id) = self.carrier_channel(trunk, slot) {
            if self.chan(id).tx == TxHook::Ringing {
                self.chan_mut(id).tx = TxHook::OffHook;
            }
            self.queue_event(id, abi::DAHDI_EVENT_RINGOFFHOOK);
        }
        Ok(())
    }

    /// The far end hangs up (or rejects our ringing): the carrying channel gets `ONHOOK`.
    pub fn far_hangup(&mut self, card: usize, spanno: i32, chanpos: i32) -> Result<(), Errno> {
        let (trunk, slot) = self.timeslot_of(card, spanno, chanpos)?;
        let was = self.trunks[trunk].timeslots[slot].far;
        if was == FarEnd::OnHook {
            return Err(Errno::EINVAL);
        }
        let ts = &mut self.trunks[trunk].timeslots[slot];
        ts.far = FarEnd::OnHook;
        ts.hold = false;
        if let Some(id) = self.carrier_channel(trunk, slot) {
            if was == FarEnd::Alerted && self.chan(id).tx == TxHook::Ringing {
                self.chan_mut(id).tx = TxHook::OnHook;
            }
            self.queue_event(id, abi::DAHDI_EVENT_ONHOOK);
        }
        Ok(())
    }

    /// Replace the injected alarm bits of a span (a fault on the card or its line).
    pub fn inject_alarms(&mut self, card: usize, spanno: i32, alarms: u32) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(spanno).ok_or(Errno::EINVAL)?;
        self.cards[card].spans[index].injected = alarms;
        self.settle_alarms();
        Ok(())
    }

    /// Cut (or restore) the trunk behind a span: its carrier sees `RED|LOS`.
    pub fn cut_trunk(&mut self, card: usize, spanno: i32, cut: bool) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(spanno).ok_or(Errno::EINVAL)?;
        let trunk = self.cards[card].spans[index].trunk;
        self.trunks[trunk].cut = cut;
        self.settle_alarms();
        Ok(())
    }

    /// Hot-unplug a card: its files answer `ENODEV`, its channels get `REMOVED`,
    /// and its spans let go of their trunks.
    pub fn unplug(&mut self, card: usize) -> Result<(), Errno> {
        self.card(card)?;
        for span in 0..self.config.spans {
            for index in 0..self.config.channels {
                self.queue_event(ChannelId { card, span, index }, abi::DAHDI_EVENT_REMOVED);
            }
        }
        self.cards[card].removed = true;
        for span in 0..self.config.spans {
            let trunk = self.cards[card].spans[span].trunk;
            if self.trunks[trunk].carrier == Some((card, span)) {
                let next = self.trunks[trunk]
                    .members
                    .iter()
                    .copied()
                    .find(|&(c, s)| self.cards[c].spans[s].running && !self.cards[c].removed);
                self.connect(trunk, next);
            }
        }
        self.settle_alarms();
        Ok(())
    }

    /// Wake every poller of `card` (its device is going away; they will see it gone).
    pub fn wake_card(&mut self, card: usize) {
        let Some(c) = self.cards.get_mut(card) else {
            return;
        };
        for span in &mut c.spans {
            for ch in &mut span.channels {
                for (_, wake) in ch.wakers.drain(..) {
                    wake();
                }
            }
        }
    }

    /// Whether `card` was unplugged.
    pub fn is_removed(&self, card: usize) -> bool {
        self.cards.get(card).is_none_or(|c| c.removed)
    }

    /// The state of every span of `card`.
    pub fn report(&self, card: usize) -> Result<Vec<SpanReport>, Errno> {
        let c = self.cards.get(card).ok_or(Errno::ENODEV)?;
        Ok(c.spans
            .iter()
            .enumerate()
            .map(|(index, span)| {
                let trunk = &self.trunks[span.trunk];
                SpanReport {
                    card,
                    span: index as i32 + 1,
                    running: span.running,
                    alarms: span.alarms,
                    carrier: trunk.carrier == Some((card, index)),
                    trunk: span.trunk,
                    calls: (0..self.config.channels)
                        .map(|slot| self.call_state(span.trunk, slot))
                        .collect(),
                }
            })
            .collect())
    }

    /// The call state of the timeslot behind `chan/<spanno>/<chanpos>` of `card`.
    pub fn call(&self, card: usize, spanno: i32, chanpos: i32) -> Result<CallState, Errno> {
        let (trunk, slot) = self.timeslot_of(card, spanno, chanpos)?;
        Ok(self.call_state(trunk, slot))
    }

    fn call_state(&self, trunk: usize, slot: usize) -> CallState {
        let ts = self.trunks[trunk].timeslots[slot];
        let tx = self.carrier_channel(trunk, slot).map(|id| self.chan(id).tx);
        match ts.far {
            FarEnd::Ringing => CallState::Ringing,
            FarEnd::Alerted => CallState::Alerting,
            FarEnd::OffHook if ts.hold => CallState::OnHold,
            FarEnd::OffHook if tx == Some(TxHook::OffHook) => CallState::Answered,
            FarEnd::OffHook => CallState::Orphaned,
            FarEnd::OnHook if tx == Some(TxHook::OffHook) => CallState::HungUp,
            FarEnd::OnHook => CallState::Idle,
        }
    }

    // -----------------------------------------------------------------------
    // Internals
    // -----------------------------------------------------------------------

    fn carries(&self, id: ChannelId) -> bool {
        let span = &self.cards[id.card].spans[id.span];
        span.running && self.trunks[span.trunk].carrier == Some((id.card, id.span))
    }

    fn carried_far_end(&self, id: ChannelId) -> Option<FarEnd> {
        self.carries(id).then(|| {
            let trunk = self.cards[id.card].spans[id.span].trunk;
            self.trunks[trunk].timeslots[id.index].far
        })
    }

    /// Connect `trunk` to `to` (or to nothing); the new carrier learns which far ends are off hook.
    fn connect(&mut self, trunk: usize, to: Option<(usize, usize)>) {
        self.trunks[trunk].carrier = to;
        for slot in 0..self.trunks[trunk].timeslots.len() {
            let ts = &mut self.trunks[trunk].timeslots[slot];
            match ts.far {
                // Ringing towards the far end stops with the span that rang.
                FarEnd::Alerted => ts.far = FarEnd::OnHook,
                FarEnd::Ringing | FarEnd::OffHook => {
                    if let Some((card, span)) = to {
                        self.queue_event(
                            ChannelId {
                                card,
                                span,
                                index: slot,
                            },
                            abi::DAHDI_EVENT_RINGOFFHOOK,
                        );
                    }
                }
                FarEnd::OnHook => {}
            }
        }
    }

    fn compute_alarms(&self, card: usize, index: usize) -> u32 {
        let span = &self.cards[card].spans[index];
        let trunk = &self.trunks[span.trunk];
        let mut alarms = span.injected;
        if span.alarm_sim {
            alarms |= abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_LOS;
        }
        if span.maint != abi::DAHDI_MAINT_NONE {
            alarms |= abi::DAHDI_ALARM_LOOPBACK;
        }
        if !span.running {
            alarms |= abi::DAHDI_ALARM_NOTOPEN;
        } else if trunk.carrier != Some((card, index)) || trunk.cut {
            alarms |= abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_LOS;
        }
        alarms
    }

    /// Recompute every span's alarms; channels of a span whose alarms changed get
    /// `ALARM` or `NOALARM` (as `dahdi_alarm_notify` queues them).
    fn settle_alarms(&mut self) {
        for card in 0..self.cards.len() {
            if self.cards[card].removed {
                continue;
            }
            for index in 0..self.config.spans {
                let alarms = self.compute_alarms(card, index);
                if alarms == self.cards[card].spans[index].alarms {
                    continue;
                }
                self.cards[card].spans[index].alarms = alarms;
                for slot in 0..self.config.channels {
                    let id = ChannelId {
                        card,
                        span: index,
                        index: slot,
                    };
                    if self.chan(id).chan_alarms != alarms {
                        self.chan_mut(id).chan_alarms = alarms;
                        let event = if alarms == 0 {
                            abi::DAHDI_EVENT_NOALARM
                        } else {
                            abi::DAHDI_EVENT_ALARM
                        };
                        self.queue_event(id, event);
                    }
                }
            }
        }
    }

    fn queue_event(&mut self, id: ChannelId, event: i32) {
        let ch = self.chan_mut(id);
        if ch.events.len() >= abi::DAHDI_MAX_EVENTSIZE {
            tracing::warn!(?id, event, "event queue full, event dropped");
            return;
        }
        ch.events.push_back(event);
        for (_, wake) in ch.wakers.drain(..) {
            wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn world(cards: usize, shared: bool) -> World {
        World::new(SimConfig {
            cards,
            spans: 2,
            channels: 4,
            shared_trunks: shared,
            signalling: abi::DAHDI_SIG_FXSKS,
        })
        .expect("valid config")
    }

    fn drain(w: &mut World, id: ChannelId) -> Vec<i32> {
        let mut events = Vec::new();
        loop {
            match w.take_event(id).expect("event") {
                abi::DAHDI_EVENT_NONE => return events,
                e => events.push(e),
            }
        }
    }

    const A1: ChannelId = ChannelId {
        card: 0,
        span: 0,
        index: 0,
    };
    const B1: ChannelId = ChannelId {
        card: 1,
        span: 0,
        index: 0,
    };

    #[test]
    fn config_out_of_range_is_rejected_with_the_field() {
        let e = World::new(SimConfig {
            spans: 0,
            ..SimConfig::default()
        })
        .err()
        .expect("zero spans rejected");
        assert_eq!(e.field, "spans");
        let e = World::new(SimConfig {
            spans: 40,
            channels: 31,
            ..SimConfig::default()
        })
        .err()
        .expect("too many channels rejected");
        assert_eq!(e.value, 40 * 31);
    }

    #[test]
    fn span_numbers_and_channel_numbers_follow_dahdi_errnos() {
        let mut w = world(1, false);
        assert_eq!(w.span_info(0, 0).err(), Some(Errno::EINVAL));
        assert_eq!(w.span_info(0, 3).err(), Some(Errno::EINVAL));
        assert_eq!(w.startup(0, 3).err(), Some(Errno::ENXIO));
        assert_eq!(w.shutdown(0, -1).err(), Some(Errno::ENXIO));
        assert_eq!(
            w.maint(
                0,
                &abi::dahdi_maintinfo {
                    spanno: 9,
                    command: 0
                }
            )
            .err(),
            Some(Errno::EINVAL)
        );
        assert_eq!(
            w.maint(
                0,
                &abi::dahdi_maintinfo {
                    spanno: 1,
                    command: 5
                }
            )
            .err(),
            Some(Errno::ENOSYS)
        );
        assert_eq!(w.channel_by_number(0, 0).err(), Some(Errno::EINVAL));
        assert_eq!(w.channel_by_number(0, 9).err(), Some(Errno::EINVAL));
        let id = w.channel_by_number(0, 6).expect("channel 6");
        assert_eq!((id.span, id.index), (1, 1));
        assert_eq!(w.channo(id), 6);
        assert_eq!(w.hook(id, 42).err(), Some(Errno::EINVAL));
    }

    #[test]
    fn startup_clears_notopen_and_shutdown_unconfigures_channels() {
        let mut w = world(1, false);
        assert_eq!(
            w.span_info(0, 1).expect("span").alarms as u32,
            abi::DAHDI_ALARM_NOTOPEN
        );
        w.startup(0, 1).expect("startup");
        assert_eq!({ w.span_info(0, 1).expect("span").alarms }, 0);
        assert_eq!(drain(&mut w, A1), vec![abi::DAHDI_EVENT_NOALARM]);
        w.shutdown(0, 1).expect("shutdown");
        assert_eq!({ w.span_info(0, 1).expect("span").numchans }, 0);
        assert_eq!(w.open_channel(A1).err(), Some(Errno::ENXIO));
        assert_eq!(drain(&mut w, A1), vec![abi::DAHDI_EVENT_ALARM]);
    }

    #[test]
    fn incoming_call_rings_answers_and_hangs_up() {
        let mut w = world(1, false);
        w.startup(0, 1).expect("startup");
        drain(&mut w, A1);
        w.far_ring(0, 1, 1).expect("ring");
        assert_eq!(w.far_ring(0, 1, 1).err(), Some(Errno::EBUSY));
        assert_eq!(w.call(0, 1, 1), Ok(CallState::Ringing));
        assert_eq!(w.params(A1).expect("params").rxisoffhook, 1);
        assert_eq!(drain(&mut w, A1), vec![abi::DAHDI_EVENT_RINGOFFHOOK]);
        w.hook(A1, abi::DAHDI_OFFHOOK).expect("answer");
        assert_eq!(w.call(0, 1, 1), Ok(CallState::Answered));
        w.hook(A1, abi::DAHDI_FLASH).expect("hold");
        assert_eq!(w.call(0, 1, 1), Ok(CallState::OnHold));
        w.hook(A1, abi::DAHDI_FLASH).expect("unhold");
        assert_eq!(w.call(0, 1, 1), Ok(CallState::Answered));
        w.far_hangup(0, 1, 1).expect("hangup");
        assert_eq!(w.call(0, 1, 1), Ok(CallState::HungUp));
        assert_eq!(
            drain(&mut w, A1),
            vec![
                abi::DAHDI_EVENT_HOOKCOMPLETE,
                abi::DAHDI_EVENT_HOOKCOMPLETE,
                abi::DAHDI_EVENT_ONHOOK
            ]
        );
        w.hook(A1, abi::DAHDI_ONHOOK).expect("onhook");
        assert_eq!(w.call(0, 1, 1), Ok(CallState::Idle));
    }

    #[test]
    fn outgoing_call_rings_the_far_end_until_it_answers() {
        let mut w = world(1, false);
        w.startup(0, 1).expect("startup");
        drain(&mut w, A1);
        w.hook(A1, abi::DAHDI_RING).expect("ring");
        assert_eq!(w.hook(A1, abi::DAHDI_RING).err(), Some(Errno::EBUSY));
        assert_eq!(w.hook(A1, abi::DAHDI_OFFHOOK).err(), Some(Errno::EBUSY));
        assert_eq!(w.call(0, 1, 1), Ok(CallState::Alerting));
        w.far_answer(0, 1, 1).expect("answer");
        assert_eq!(w.call(0, 1, 1), Ok(CallState::Answered));
        assert_eq!(
            drain(&mut w, A1),
            vec![abi::DAHDI_EVENT_RINGERON, abi::DAHDI_EVENT_RINGOFFHOOK]
        );
        w.hook(A1, abi::DAHDI_ONHOOK).expect("hang up");
        assert_eq!(w.call(0, 1, 1), Ok(CallState::Idle));
        assert_eq!(w.far_hangup(0, 1, 1).err(), Some(Errno::EINVAL));
    }

    #[test]
    fn shared_trunk_follows_the_started_span_and_keeps_calls_up() {
        let mut w = world(2, true);
        w.startup(0, 1).expect("start A");
        w.startup(1, 1).expect("start B");
        let a = w.report(0).expect("report")[0].clone();
        let b = w.report(1).expect("report")[0].clone();
        assert!(a.carrier && !b.carrier);
        assert_eq!(a.alarms, 0);
        assert_eq!(b.alarms, abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_LOS);
        drain(&mut w, A1);
        drain(&mut w, B1);

        // Only the carrier hears the far end.
        w.far_ring(1, 1, 1).expect("ring");
        assert_eq!(drain(&mut w, A1), vec![abi::DAHDI_EVENT_RINGOFFHOOK]);
        assert_eq!(drain(&mut w, B1), Vec::<i32>::new());
        w.hook(A1, abi::DAHDI_OFFHOOK).expect("answer on A");
        // B's hook does not reach the trunk.
        w.hook(B1, abi::DAHDI_ONHOOK).expect("B on hook");
        assert_eq!(w.call(0, 1, 1), Ok(CallState::Answered));

        // A shuts down: the trunk moves to B with the call still up.
        w.shutdown(0, 1).expect("stop A");
        assert_eq!(w.call(1, 1, 1), Ok(CallState::Orphaned));
        assert_eq!(
            drain(&mut w, B1),
            vec![abi::DAHDI_EVENT_RINGOFFHOOK, abi::DAHDI_EVENT_NOALARM]
        );
        assert_eq!({ w.span_info(1, 1).expect("span").alarms }, 0);
        w.hook(B1, abi::DAHDI_OFFHOOK).expect("B picks the call up");
        assert_eq!(w.call(1, 1, 1), Ok(CallState::Answered));
        w.far_hangup(0, 1, 1).expect("far end hangs up");
        assert_eq!(drain(&mut w, B1), vec![abi::DAHDI_EVENT_ONHOOK]);
        assert_eq!(drain(&mut w, A1), vec![abi::DAHDI_EVENT_ALARM]);
    }

    #[test]
    fn alarm_sim_loopback_and_injection_raise_and_clear_alarms() {
        let mut w = world(1, false);
        w.startup(0, 1).expect("startup");
        drain(&mut w, A1);
        let maint = |command| abi::dahdi_maintinfo { spanno: 1, command };
        w.maint(0, &maint(abi::DAHDI_MAINT_ALARM_SIM))
            .expect("alarm sim");
        assert_eq!(
            w.span_info(0, 1).expect("span").alarms as u32,
            abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_LOS
        );
        w.maint(0, &maint(abi::DAHDI_MAINT_LOCALLOOP))
            .expect("loop");
        assert_ne!(
            w.span_info(0, 1).expect("span").alarms as u32 & abi::DAHDI_ALARM_LOOPBACK,
            0
        );
        w.maint(0, &maint(abi::DAHDI_MAINT_NONE)).expect("none");
        assert_eq!({ w.span_info(0, 1).expect("span").alarms }, 0);
        w.inject_alarms(0, 1, abi::DAHDI_ALARM_YELLOW)
            .expect("inject");
        assert_eq!(
            w.params(A1).expect("params").chan_alarms,
            abi::DAHDI_ALARM_YELLOW
        );
        w.inject_alarms(0, 1, 0).expect("clear");
        w.cut_trunk(0, 1, true).expect("cut");
        assert_eq!(
            w.span_info(0, 1).expect("span").alarms as u32,
            abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_LOS
        );
        w.cut_trunk(0, 1, false).expect("restore");
        // ALARM_SIM, LOOPBACK (changed), NONE → NOALARM, YELLOW, clear, cut, restore.
        assert_eq!(
            drain(&mut w, A1),
            vec![
                abi::DAHDI_EVENT_ALARM,
                abi::DAHDI_EVENT_ALARM,
                abi::DAHDI_EVENT_NOALARM,
                abi::DAHDI_EVENT_ALARM,
                abi::DAHDI_EVENT_NOALARM,
                abi::DAHDI_EVENT_ALARM,
                abi::DAHDI_EVENT_NOALARM,
            ]
        );
    }

    #[test]
    fn wakers_fire_once_when_an_event_arrives() {
        let mut w = world(1, false);
        w.startup(0, 1).expect("startup");
        drain(&mut w, A1);
        let fired = Arc::new(AtomicUsize::new(0));
        let f = fired.clone();
        let ready = w
            .poll_events(
                A1,
                7,
                Some(Box::new(move || {
                    f.fetch_add(1, Ordering::SeqCst);
                })),
            )
            .expect("poll");
        assert!(!ready);
        w.far_ring(0, 1, 1).expect("ring");
        w.far_hangup(0, 1, 1).expect("hangup");
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert!(w.poll_events(A1, 7, None).expect("poll"));
    }

    #[test]
    fn unplugged_card_answers_enodev_and_lets_go_of_the_trunk() {
        let mut w = world(2, true);
        w.startup(0, 1).expect("start A");
        w.startup(1, 1).expect("start B");
        drain(&mut w, B1);
        w.unplug(0).expect("unplug");
        assert_eq!(w.span_info(0, 1).err(), Some(Errno::ENODEV));
        assert_eq!(w.take_event(A1).err(), Some(Errno::ENODEV));
        assert!(w.report(1).expect("report")[0].carrier);
        assert_eq!(drain(&mut w, B1), vec![abi::DAHDI_EVENT_NOALARM]);
    }

    #[test]
    fn event_queue_is_bounded() {
        let mut w = world(1, false);
        for _ in 0..(abi::DAHDI_MAX_EVENTSIZE + 10) {
            w.hook(A1, abi::DAHDI_WINK).expect("wink");
        }
        assert_eq!(w.pending_events(A1), abi::DAHDI_MAX_EVENTSIZE);
    }
}
