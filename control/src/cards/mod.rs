//! Telephony cards in the control plane: span ownership that follows the
//! pair state, span alarms as local faults, and channel hook events as call
//! records.
//!
//! This module owns, for one configured card ([`CardConfig`]: a DAHDI device
//! root), the spans this node drives while it is active and the channel
//! files of those spans. [`CardManager`]
//! - starts the spans on a takeover — configure (`DAHDI_SPANCONFIG`,
//!   `DAHDI_CHANCONFIG`), `DAHDI_STARTUP`, then `DAHDI_SPANSTAT` until every
//!   span is alarm-free or the deadline passes — either driven by the caller's
//!   event loop ([`CardManager::begin_start`] + [`CardManager::poll_started`])
//!   or blocking ([`CardManager::start_spans`]);
//! - shuts them down on demotion ([`CardManager::shutdown_spans`]) and gets
//!   shut-down spans ready for a fast takeover ([`CardManager::arm`]);
//! - judges their alarms ([`CardManager::check_alarms`]): RED, BLUE or LOS on
//!   a span that should carry its trunk is a local fault; a span shut down
//!   on purpose reports `NOTOPEN`, which is normal on a standby;
//! - turns channel signalling events (`DAHDI_GETEVENT` after `POLLPRI`) and
//!   its own hook operations into [`CallEvent`]s (idle, ringing, answered,
//!   on hold, hung up) that the state-sync layer carries to the peer, and
//!   picks up, after a takeover, the calls the synced records say were up
//!   ([`CardManager::expect_calls`]).
//!
//! It must not decide *when*: the pair state machine does, and the daemon
//! calls in here on its transitions. It issues card ioctls only through
//! [`tandem_hw::device`], the same code against the simulator as against a
//! card, and it never waits without bound: the only waits are the blocking
//! conveniences, each bounded by its deadline or timeout. It knows nothing
//! of the sync layer's types (the daemon maps [`CallEvent`] to them) nor of
//! the admin socket beyond filling [`admin::SpanStatus`](crate::admin::SpanStatus).
//!
//! # Spans and the pair state
//! | pair state | spans | who calls |
//! |---|---|---|
//! | Init, Standby, Fault, Maintenance | shut down (`NOTOPEN`) | [`shutdown_spans`](CardManager::shutdown_spans) then [`arm`](CardManager::arm) |
//! | Takeover → Active | started, alarm-free within the deadline | [`begin_start`](CardManager::begin_start) / [`poll_started`](CardManager::poll_started) |
//! | Active → anything else | shut down first | [`shutdown_spans`](CardManager::shutdown_spans) |
//!
//! # Faults
//! A span is judged by what this node wants of it:
//! - *stopped* (shut down on purpose): a fault only if the card reports RED,
//!   BLUE or LOS on it anyway (a standby that could not carry the trunk if
//!   promoted). `NOTOPEN` alone is normal.
//! - *starting*: never a fault before the takeover deadline.
//! - *started*: RED, BLUE, LOS, or `NOTOPEN` (someone else shut it down) is a
//!   fault.
//!
//! A device error (the card or the simulator vanished) is a fault in every
//! state, reported with the device path, the ioctl and the errno.
//!
//! # Driving it from tandemd
//! - Start: [`CardManager::open`] per `[[card]]`, then
//!   [`shutdown_spans`](CardManager::shutdown_spans) and
//!   [`arm`](CardManager::arm) (Init is not Active); register every
//!   [`channel_fds`](CardManager::channel_fds) entry for `POLLPRI` (again
//!   whenever [`generation`](CardManager::generation) changes).
//! - `BecomeActive`: [`expect_calls`](CardManager::expect_calls) with the
//!   synced call records, [`begin_start`](CardManager::begin_start) with
//!   `now + takeover_deadline()`, then [`poll_started`](CardManager::poll_started)
//!   from a short timer (≈1 ms) and after channel events until it answers.
//! - `BecomeStandby`: [`shutdown_spans`](CardManager::shutdown_spans) first,
//!   the rest of the demotion, then [`arm`](CardManager::arm).
//! - `POLLPRI` on a channel: [`read_channel_events`](CardManager::read_channel_events),
//!   then [`take_call_events`](CardManager::take_call_events) to the sync
//!   layer, and [`check_alarms`](CardManager::check_alarms) if
//!   [`take_alarm_events`](CardManager::take_alarm_events), its
//!   [`local_fault`](AlarmReport::local_fault) into
//!   [`CardFaultFilter::handle_event_alarm`].
//! - Every 50 ms: [`check_alarms`](CardManager::check_alarms) of every card
//!   into [`CardFaultFilter::handle_alarm`] (with whether the node is
//!   active); when it answers a change, `LocalFault(CardAlarm)` or
//!   `LocalFaultCleared`.
//! - Admin `cards`: [`cards_status`](CardManager::cards_status) of every card.
//! - Every loop turn: [`watchdog_turn`](CardManager::watchdog_turn) with
//!   whether the node is active (at most one ioctl); on shutdown, once more
//!   with `false` (disarm).
//!
//! # Layout
//! - [`spans`]: starting, shutting down and arming the owned spans, and the
//!   takeover deadline;
//! - [`alarms`]: judging span alarms into a local fault, and
//!   [`CardFaultFilter`], the hold-down that decides when that fault is
//!   raised and cleared (sans-IO, tested with a simulated clock);
//! - [`calls`]: channel events, call states, the hook operations
//!   (answer, hang up, hold, ring) and picking up synced calls;
//! - [`status`]: what `tandemctl cards` shows;
//! - [`watchdog`]: the failover switch's watchdog — [`WatchdogKicker`]
//!   (sans-IO: arm when active, kick every timeout / 4, disarm when not)
//!   and [`CardManager::watchdog_turn`], called once per loop turn.
//!
//! This file holds the state they share ([`CardManager`] and the spans and
//! channels it owns), its errors and [`CardManager::open`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use tandem_hw::device::{Alarms, Channel, Control};

use crate::config::CardConfig;

pub mod alarms;
pub mod calls;
pub mod spans;
pub mod status;
pub mod watchdog;

pub use alarms::{AlarmReport, CardFaultFilter, FAULT_ALARMS, SpanAlarm};
pub use calls::{CallEvent, CallState, ChannelFd};
pub use spans::{SpanPhase, SpanTakeover, SpanUp};
pub use watchdog::{WatchdogAction, WatchdogDone, WatchdogKicker, WatchdogNews};

/// Longest single sleep of the blocking waits ([`CardManager::start_spans`],
/// [`CardManager::wait_call_event`]) between two looks at the card.
pub const POLL_STEP: Duration = Duration::from_millis(1);

/// What went wrong with a card. Every variant names the device root, and
/// device errors carry the driver's message (device path, ioctl, errno).
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The control node could not be opened or read.
    #[error("card {}: {source}", root.display())]
    Device {
        root: PathBuf,
        #[source]
        source: tandem_hw::Error,
    },
    /// An ioctl on a span failed.
    #[error("card {} span {span}: {source}", root.display())]
    Span {
        root: PathBuf,
        span: u32,
        #[source]
        source: tandem_hw::Error,
    },
    /// An ioctl on a channel failed.
    #[error("card {} span {span} channel {channel}: {source}", root.display())]
    Channel {
        root: PathBuf,
        span: u32,
        channel: u32,
        #[source]
        source: tandem_hw::Error,
    },
    /// A configured span does not exist on the card.
    #[error("card {}: span {span} is not on this card (it has spans {present})", root.display())]
    NoSuchSpan {
        root: PathBuf,
        span: u32,
        present: String,
    },
    /// The card numbers channels differently from what the span list implies.
    #[error("card {} span {span}: channel {channo} is span {found_span} position {found_position}, not position 1", root.display())]
    Numbering {
        root: PathBuf,
        span: u32,
        channo: i32,
        found_span: i32,
        found_position: i32,
    },
    /// A takeover's span did not come up clean in time.
    #[error("card {} span {span}: not alarm-free {waited:?} after DAHDI_STARTUP: {alarms}", root.display())]
    NotAlarmFree {
        root: PathBuf,
        span: u32,
        alarms: Alarms,
        waited: Duration,
    },
    /// [`CardManager::poll_started`] without a start in progress.
    #[error("card {}: no span start in progress", root.display())]
    NotStarting { root: PathBuf },
    /// A span or channel this node does not own.
    #[error("card {} span {span} channel {channel}: not a channel of a span this node owns", root.display())]
    NotOwned {
        root: PathBuf,
        span: u32,
        channel: u32,
    },
    /// A hook operation that the call's state does not allow.
    #[error("card {} span {span} channel {channel}: cannot {operation} a call that is {state}{why}", root.display())]
    CallState {
        root: PathBuf,
        span: u32,
        channel: u32,
        operation: &'static str,
        state: CallState,
        why: &'static str,
    },
    /// Waiting on the channel files failed.
    #[error("card {}: waiting for channel events: {errno}", root.display())]
    Poll { root: PathBuf, errno: Errno },
}

impl CardError {
    /// The errno behind this error, if the device gave one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            CardError::Device { source, .. }
            | CardError::Span { source, .. }
            | CardError::Channel { source, .. } => source.errno(),
            CardError::Poll { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

struct Slot {
    position: u32,
    channel: Channel,
    state: CallState,
    /// We rang the far end (`HOOK(RING)`) and it has not answered.
    outgoing: bool,
    /// A `FLASH` was sent; its `HOOKCOMPLETE` toggles hold.
    flash_pending: bool,
    /// The channel answered `ENODEV`/`ENOTCONN` or reported `REMOVED`: not polled any more.
    broken: bool,
}

struct OwnedSpan {
    number: u32,
    phase: SpanPhase,
    /// Card-wide number of the span's first channel.
    base_channel: i32,
    total_channels: u32,
    /// Channels configured and open since the last `DAHDI_SHUTDOWN`.
    armed: bool,
    slots: Vec<Slot>,
    /// When [`SpanPhase::Starting`] stops being excused.
    deadline: Option<Instant>,
}

struct StartAttempt {
    began: Instant,
    deadline: Instant,
    /// Per owned span: time to alarm-free, once seen.
    up: Vec<Option<Duration>>,
}

/// The spans one node owns on one card, and their channels.
pub struct CardManager {
    config: CardConfig,
    control: Control,
    spans: Vec<OwnedSpan>,
    start: Option<StartAttempt>,
    events: VecDeque<CallEvent>,
    /// Calls the synced records say are up, to pick up after a takeover.
    expected: HashMap<(u32, u32), CallState>,
    fault: bool,
    alarm_events: bool,
    generation: u64,
    /// The failover switch's watchdog (`card.watchdog_ms`), if configured.
    watchdog: Option<WatchdogKicker>,
}

impl fmt::Debug for CardManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardManager")
            .field("root", &self.config.root)
            .field(
                "spans",
                &self
                    .spans
                    .iter()
                    .map(|s| (s.number, s.phase))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl CardManager {
    /// Opens the card's control node and checks that every configured span
    /// exists. Changes nothing on the card: spans found running stay running
    /// (call [`shutdown_spans`](Self::shutdown_spans) unless this node is active).
    pub fn open(config: &CardConfig) -> Result<CardManager, CardError> {
        let root = config.root.clone();
        let control = Control::open(&root).map_err(|source| CardError::Device {
            root: root.clone(),
            source,
        })?;
        let present = control.spans().map_err(|source| CardError::Device {
            root: root.clone(),
            source,
        })?;
        let mut spans = Vec::with_capacity(config.spans.len());
        for &number in &config.spans {
            let Some(status) = present.iter().find(|s| s.span == number as i32) else {
                return Err(CardError::NoSuchSpan {
                    root,
                    span: number,
                    present: present
                        .iter()
                        .map(|s| s.span.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            // DAHDI numbers channels card-wide in span order.
            let before: i64 = present
                .iter()
                .filter(|s| s.span < status.span)
                .map(|s| i64::from(s.total_channels.max(0)))
                .sum();
            let running = !status.alarms.contains(Alarms::NOTOPEN);
            spans.push(OwnedSpan {
                number,
                phase: if running {
                    SpanPhase::Started
                } else {
                    SpanPhase::Stopped
                },
                base_channel: i32::try_from(before + 1).unwrap_or(i32::MAX),
                total_channels: status.total_channels.max(0) as u32,
                armed: false,
                slots: Vec::new(),
                deadline: None,
            });
        }
        Ok(CardManager {
            config: config.clone(),
            control,
            spans,
            start: None,
            events: VecDeque::new(),
            expected: HashMap::new(),
            fault: false,
            alarm_events: false,
            generation: 0,
            watchdog: config.watchdog.map(WatchdogKicker::new),
        })
    }

    /// The card's device root.
    pub fn root(&self) -> &Path {
        &self.config.root
    }

    /// The configured takeover deadline (`card.takeover_deadline_ms`).
    pub fn takeover_deadline(&self) -> Duration {
        self.config.takeover_deadline
    }

    /// The owned span numbers, in configuration order.
    pub fn span_numbers(&self) -> Vec<u32> {
        self.spans.iter().map(|s| s.number).collect()
    }

    /// What this node wants of owned span `span`.
    pub fn phase(&self, span: u32) -> Option<SpanPhase> {
        self.spans
            .iter()
            .find(|s| s.number == span)
            .map(|s| s.phase)
    }

    fn span_error(&self, span: u32) -> impl FnOnce(tandem_hw::Error) -> CardError + '_ {
        move |source| CardError::Span {
            root: self.config.root.clone(),
            span,
            source,
        }
    }
}
