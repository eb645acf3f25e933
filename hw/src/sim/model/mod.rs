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
//! - Each card has a watchdog on the failover switch that its host arms and
//!   kicks. When an armed watchdog goes unkicked for longer than its
//!   timeout, the switch *releases* the card: every trunk it carries moves
//!   to the next started span of a card that is not released (or to
//!   nothing, and then to the first span that starts), and the released
//!   card takes no trunk until it is armed (or disarmed) again. Expiry is
//!   judged by [`World::watchdog_expire`] with the time passed in; the
//!   simulator calls it from its own timer thread.
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
//! - Each card is a whole DAHDI system of its own: its tone zones and its
//!   pseudo channels (numbered after the spans' channels) are per card.
//!
//! Deviations from a real card: no audio on span channels (pseudo channels
//! read silence at the 8 kHz pace), no timers (wink, flash and
//! ring cadences complete at once), channel files are not exclusive (FUSE
//! releases files asynchronously, so exclusivity would make quick reopen racy).
//!
//! ## Layout
//! [`World`] and the state it holds (cards, spans, channels, trunks) are
//! defined here, with construction and lookups; its operations are split by
//! concept, each file one `impl World` block:
//! - `span.rs`: the control node's span operations (`SPANSTAT`, `STARTUP`, …).
//! - `channel.rs`: opening channels, parameters and the `HOOK` state machine.
//! - `events.rs`: event queues, `GETEVENT`, pollers and their wakers.
//! - `alarm.rs`: how span alarms follow from the state, and their events.
//! - `trunk.rs`: the failover switch, the far end and call states.
//! - `card.rs`: hot-unplug and the status report.
//! - `watchdog.rs`: the failover switch's per-card watchdog (tandem's
//!   extension ioctls) and the relay that lets go of a card whose host
//!   stopped kicking it.
//! - `tonezone.rs`: the tone zones `dahdi_cfg` loads (`LOADZONE`,
//!   `FREEZONE`, `DEFAULTZONE`).
//! - `pseudo.rs`: pseudo channels (the `pseudo` file): their channel
//!   numbers, block size and the 8 kHz sample clock their reads follow.

use std::collections::{BTreeMap, VecDeque};

use nix::errno::Errno;

use crate::abi;

mod alarm;
mod card;
mod channel;
mod events;
mod pseudo;
mod span;
mod tonezone;
mod trunk;
mod watchdog;

pub use card::{ChannelReport, SpanReport};
pub use channel::{ECHO_CANCELLERS, HdlcRate, SIG_CAPS, TxHook};
pub use events::Waker;
pub use pseudo::{PSEUDO_SILENCE, PseudoId, PseudoRead, PseudoTotals};
pub use span::{LINE_COMPAT, VERSION};
pub use tonezone::{ToneZone, ToneZoneReport};
pub use trunk::{CallState, FarEnd};
pub use watchdog::WatchdogReport;

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

/// A channel's timing parameters, as `DAHDI_SET_PARAMS` left them (kept, not used:
/// the simulator has no timers).
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

/// One channel of a span: its configuration, what it transmits, its events.
struct ChannelState {
    sig: i32,
    law: i32,
    idle_bits: i32,
    tx: TxHook,
    chan_alarms: u32,
    events: VecDeque<i32>,
    timing: Timing,
    /// The card-wide number of this channel's master (`DAHDI_CHANCONFIG`
    /// of a `DAHDI_SIG_SLAVE`), 0 for itself.
    master: i32,
    /// The echo canceller `DAHDI_ATTACH_ECHOCAN` chose (by its canonical name).
    echocan: Option<&'static str>,
    hdlc_rate: HdlcRate,
    /// Pollers to wake on the next event, keyed by their poll handle.
    wakers: Vec<(u64, Waker)>,
}

/// A span's error counters, raised by the `DAHDI_MAINT_*_DEFECT` commands.
#[derive(Default)]
struct Counters {
    bpv: i32,
    crc4: i32,
    ebit: i32,
    fas: i32,
}

/// One span of a card: running or not, its trunk, its alarm inputs and its channels.
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

/// One card: its spans, whether it was hot-unplugged, and its host's
/// watchdog on the failover switch.
struct Card {
    spans: Vec<SpanState>,
    /// Hot-unplugged: every operation answers `ENODEV`.
    removed: bool,
    watchdog: watchdog::Watchdog,
    /// Loaded tone zones by number, and the default one.
    zones: BTreeMap<i32, ToneZone>,
    default_zone: Option<i32>,
    /// Open pseudo channels (`pseudo` files), by handle.
    pseudos: BTreeMap<u64, pseudo::Pseudo>,
    next_pseudo: u64,
    pseudo_totals: PseudoTotals,
    /// Requests this card's files were sent and the simulator does not
    /// serve (answered `ENOTTY`), with how often each came.
    unserved: BTreeMap<abi::IoctlRequest, u64>,
}

/// One timeslot of a trunk: what the far end does, and whether the call is on hold.
#[derive(Clone, Copy)]
struct Timeslot {
    far: FarEnd,
    hold: bool,
}

/// One trunk (E1/T1 line), the spans that terminate it and the one that carries it.
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
                        master: 0,
                        echocan: None,
                        hdlc_rate: HdlcRate::Kbps64,
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
                watchdog: watchdog::Watchdog::default(),
                zones: BTreeMap::new(),
                default_zone: None,
                pseudos: BTreeMap::new(),
                next_pseudo: 1,
                pseudo_totals: PseudoTotals::default(),
                unserved: BTreeMap::new(),
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
}

#[cfg(test)]
mod tests;
