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
//! the admin socket beyond filling [`admin::SpanStatus`].
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
//!   [`take_alarm_events`](CardManager::take_alarm_events).
//! - Every 50 ms: [`check_alarms`](CardManager::check_alarms); on
//!   [`AlarmReport::changed`], `LocalFault(CardAlarm)` or `LocalFaultCleared`.
//! - Admin `cards`: [`cards_status`](CardManager::cards_status) of every card.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::{Deserialize, Serialize};
use tandem_hw::abi;
use tandem_hw::device::{
    Alarms, Channel, ChannelConfig, Control, Event, Hook, LineConfig, SpanStatus as HwSpanStatus,
};

use crate::admin;
use crate::config::CardConfig;

/// Alarms that make a span unable to carry its trunk: red (loss of frame),
/// blue (AIS) and loss of signal.
pub const FAULT_ALARMS: Alarms =
    Alarms(abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_BLUE | abi::DAHDI_ALARM_LOS);

/// Longest single sleep of the blocking waits ([`CardManager::start_spans`],
/// [`CardManager::wait_call_event`]) between two looks at the card.
pub const POLL_STEP: Duration = Duration::from_millis(1);

/// The state of a call on one channel (the sync layer's five states).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// No call.
    #[default]
    Idle,
    /// Incoming and not answered yet, or outgoing and the far end is being rung.
    Ringing,
    Answered,
    OnHold,
    /// The far end hung up; the channel is still off hook.
    HungUp,
}

impl CallState {
    /// The name used in call records and `tandemctl cards`.
    pub fn name(self) -> &'static str {
        match self {
            CallState::Idle => "idle",
            CallState::Ringing => "ringing",
            CallState::Answered => "answered",
            CallState::OnHold => "on_hold",
            CallState::HungUp => "hung_up",
        }
    }

    /// A call is established (what a takeover must keep).
    pub fn is_up(self) -> bool {
        matches!(self, CallState::Answered | CallState::OnHold)
    }
}

impl fmt::Display for CallState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A channel's call state changed: the record the state-sync layer carries
/// to the standby.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallEvent {
    /// Span number (1-based, as DAHDI numbers spans).
    pub span: u32,
    /// Channel position within the span (1-based).
    pub channel: u32,
    pub state: CallState,
    /// When the change was seen, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

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

/// How a takeover's spans came up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanTakeover {
    /// Every owned span, with the time from [`CardManager::begin_start`]'s
    /// call to the first `DAHDI_SPANSTAT` that found it alarm-free.
    pub spans: Vec<SpanUp>,
    /// The slowest span's time: the card's span takeover time.
    pub elapsed: Duration,
}

/// One span of a [`SpanTakeover`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanUp {
    pub span: u32,
    pub elapsed: Duration,
}

impl fmt::Display for SpanTakeover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spans alarm-free in {:?}", self.elapsed)?;
        for s in &self.spans {
            write!(f, "; span {} {:?}", s.span, s.elapsed)?;
        }
        Ok(())
    }
}

/// What this node wants of an owned span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanPhase {
    /// Shut down on purpose (standby).
    Stopped,
    /// Started by a takeover, waiting to be alarm-free until the deadline.
    Starting,
    /// Carrying its trunk (or supposed to).
    Started,
}

impl SpanPhase {
    pub fn name(self) -> &'static str {
        match self {
            SpanPhase::Stopped => "stopped",
            SpanPhase::Starting => "starting",
            SpanPhase::Started => "started",
        }
    }
}

/// One owned span in an [`AlarmReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanAlarm {
    pub span: u32,
    pub phase: SpanPhase,
    /// `None` when `DAHDI_SPANSTAT` failed (see `error`).
    pub alarms: Option<Alarms>,
    /// This span makes the node unfit to serve.
    pub fault: bool,
    pub error: Option<String>,
}

/// The result of [`CardManager::check_alarms`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmReport {
    pub spans: Vec<SpanAlarm>,
    local_fault: bool,
    changed: bool,
}

impl AlarmReport {
    /// Some owned span is in fault: feed `pair::Event::LocalFault(FaultKind::CardAlarm)`.
    pub fn local_fault(&self) -> bool {
        self.local_fault
    }

    /// [`local_fault`](Self::local_fault) differs from the previous report
    /// (the first report counts as changed only when it is a fault).
    pub fn changed(&self) -> bool {
        self.changed
    }
}

impl fmt::Display for AlarmReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.spans {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "span {} {}: ", s.span, s.phase.name())?;
            match (&s.alarms, &s.error) {
                (_, Some(e)) => write!(f, "{e}")?,
                (Some(a), None) => write!(f, "{a}")?,
                (None, None) => f.write_str("?")?,
            }
            if s.fault {
                f.write_str(" (fault)")?;
            }
        }
        Ok(())
    }
}

/// An open channel file, for the daemon's io_uring `POLL_ADD` (`POLLPRI`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelFd {
    pub span: u32,
    pub channel: u32,
    pub fd: RawFd,
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An errno that means the device is gone for good.
fn is_gone(e: &tandem_hw::Error) -> bool {
    matches!(
        e.errno(),
        Some(Errno::ENODEV | Errno::ENOTCONN | Errno::ENXIO | Errno::EIO)
    )
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

    // -----------------------------------------------------------------------
    // Span ownership
    // -----------------------------------------------------------------------

    /// Gets shut-down owned spans ready for a fast takeover: line and channel
    /// configuration (`DAHDI_SPANCONFIG` if `lineconfig` is set,
    /// `DAHDI_CHANCONFIG` for every channel) and the channel files opened,
    /// their stale events dropped. Call it after entering Standby (after
    /// [`shutdown_spans`](Self::shutdown_spans)); [`begin_start`](Self::begin_start)
    /// does it for any span still unarmed. Spans that are not stopped only
    /// get their files opened (a running channel is not reconfigured).
    /// The set of channel fds may change: see [`generation`](Self::generation).
    pub fn arm(&mut self) -> Result<(), CardError> {
        for index in 0..self.spans.len() {
            if !self.spans[index].armed {
                self.arm_span(index)?;
            }
        }
        Ok(())
    }

    fn arm_span(&mut self, index: usize) -> Result<(), CardError> {
        let root = self.config.root.clone();
        let (number, base, total, stopped) = {
            let s = &self.spans[index];
            (
                s.number,
                s.base_channel,
                s.total_channels,
                s.phase == SpanPhase::Stopped,
            )
        };
        let span_no = number as i32;
        if stopped {
            if let Some(line) = self.config.line {
                let line = LineConfig {
                    line_config: line.config,
                    lbo: 0,
                    sync: line.timing as i32,
                };
                self.control
                    .configure_span(span_no, &line)
                    .map_err(self.span_error(number))?;
            }
            // The numbering must match before channels are configured by number.
            let params = self
                .control
                .channel_params(base)
                .map_err(self.span_error(number))?;
            if params.spanno != span_no || params.chanpos != 1 {
                return Err(CardError::Numbering {
                    root,
                    span: number,
                    channo: base,
                    found_span: params.spanno,
                    found_position: params.chanpos,
                });
            }
            for position in 1..=total as i32 {
                let config = ChannelConfig {
                    channel: base + position - 1,
                    signalling: self.config.signalling,
                    law: abi::DAHDI_LAW_DEFAULT,
                    idle_bits: 0,
                };
                self.control
                    .configure_channel(&config)
                    .map_err(self.span_error(number))?;
            }
        }
        // Open what is not open (or was lost), keep what is.
        let mut opened = false;
        let span = &mut self.spans[index];
        span.slots.retain(|slot| !slot.broken);
        for position in 1..=total {
            if span.slots.iter().any(|s| s.position == position) {
                continue;
            }
            let channel = Channel::open(&root, span_no, position as i32).map_err(|source| {
                CardError::Channel {
                    root: root.clone(),
                    span: number,
                    channel: position,
                    source,
                }
            })?;
            span.slots.push(Slot {
                position,
                channel,
                state: CallState::Idle,
                outgoing: false,
                flash_pending: false,
                broken: false,
            });
            opened = true;
        }
        span.slots.sort_by_key(|s| s.position);
        if stopped {
            // Events queued before now belong to the span's previous life.
            for slot in &span.slots {
                for _ in 0..=abi::DAHDI_MAX_EVENTSIZE {
                    match slot.channel.event() {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(source) => {
                            return Err(CardError::Channel {
                                root,
                                span: number,
                                channel: slot.position,
                                source,
                            });
                        }
                    }
                }
            }
        }
        span.armed = true;
        if opened {
            self.generation += 1;
        }
        Ok(())
    }

    /// Starts every owned span for a takeover: arms spans that are not armed
    /// yet, then `DAHDI_STARTUP` each. The spans are then *starting*: not
    /// judged by [`check_alarms`](Self::check_alarms) until `deadline`.
    /// Drive the wait with [`poll_started`](Self::poll_started) (from a timer
    /// and whenever a channel event arrives), or use
    /// [`start_spans`](Self::start_spans). The takeover time is measured from
    /// this call.
    pub fn begin_start(&mut self, deadline: Instant) -> Result<(), CardError> {
        let began = Instant::now();
        self.start = None;
        self.arm()?;
        for index in 0..self.spans.len() {
            let number = self.spans[index].number;
            if let Err(source) = self.control.startup(number as i32) {
                // Spans already started are judged from now on.
                self.finish_start();
                return Err(CardError::Span {
                    root: self.config.root.clone(),
                    span: number,
                    source,
                });
            }
            let span = &mut self.spans[index];
            if span.phase == SpanPhase::Stopped {
                for slot in &mut span.slots {
                    slot.state = CallState::Idle;
                    slot.outgoing = false;
                    slot.flash_pending = false;
                }
            }
            span.phase = SpanPhase::Starting;
            span.deadline = Some(deadline);
        }
        self.start = Some(StartAttempt {
            began,
            deadline,
            up: vec![None; self.spans.len()],
        });
        Ok(())
    }

    /// Looks at the starting spans (`DAHDI_SPANSTAT`): `None` while some span
    /// is not alarm-free and `now` is before the deadline; `Some(Ok(..))` once
    /// every span is alarm-free; `Some(Err(..))` at the deadline (naming the
    /// first span still in alarm; the spans stay started and are judged by
    /// [`check_alarms`](Self::check_alarms) from then on), on a device error,
    /// or when no start is in progress.
    pub fn poll_started(&mut self, now: Instant) -> Option<Result<SpanTakeover, CardError>> {
        let root = self.config.root.clone();
        let Some(attempt) = self.start.as_mut() else {
            return Some(Err(CardError::NotStarting { root }));
        };
        let mut pending: Option<(u32, Alarms)> = None;
        for (index, span) in self.spans.iter().enumerate() {
            if attempt.up[index].is_some() {
                continue;
            }
            match self.control.span_status(span.number as i32) {
                Ok(status) if status.alarms.is_clear() => {
                    attempt.up[index] = Some(attempt.began.elapsed());
                }
                Ok(status) => {
                    pending.get_or_insert((span.number, status.alarms));
                }
                Err(source) => {
                    let span = span.number;
                    self.finish_start();
                    return Some(Err(CardError::Span { root, span, source }));
                }
            }
        }
        let attempt = self.start.as_ref()?;
        match pending {
            None => {
                let spans: Vec<SpanUp> = self
                    .spans
                    .iter()
                    .zip(&attempt.up)
                    .map(|(s, up)| SpanUp {
                        span: s.number,
                        elapsed: up.unwrap_or_default(),
                    })
                    .collect();
                let elapsed = spans.iter().map(|s| s.elapsed).max().unwrap_or_default();
                self.finish_start();
                Some(Ok(SpanTakeover { spans, elapsed }))
            }
            Some((span, alarms)) if now >= attempt.deadline => {
                let waited = now.saturating_duration_since(attempt.began);
                self.finish_start();
                Some(Err(CardError::NotAlarmFree {
                    root,
                    span,
                    alarms,
                    waited,
                }))
            }
            Some(_) => None,
        }
    }

    fn finish_start(&mut self) {
        self.start = None;
        for span in &mut self.spans {
            if span.phase == SpanPhase::Starting {
                span.phase = SpanPhase::Started;
                span.deadline = None;
            }
        }
    }

    /// A start is in progress (between [`begin_start`](Self::begin_start) and
    /// the answer of [`poll_started`](Self::poll_started)).
    pub fn is_starting(&self) -> bool {
        self.start.is_some()
    }

    /// The blocking takeover: [`begin_start`](Self::begin_start), then
    /// [`poll_started`](Self::poll_started) until it answers, sleeping on the
    /// channel files (`POLLPRI`, at most [`POLL_STEP`] at a time) in between.
    /// Channel events that arrive meanwhile are processed as usual.
    pub fn start_spans(&mut self, deadline: Instant) -> Result<SpanTakeover, CardError> {
        self.begin_start(deadline)?;
        loop {
            let now = Instant::now();
            if let Some(result) = self.poll_started(now) {
                return result;
            }
            let step = deadline.saturating_duration_since(now).min(POLL_STEP);
            if let Err(e) = self.wait_channels(step) {
                self.finish_start();
                return Err(e);
            }
        }
    }

    /// `DAHDI_SHUTDOWN` on every owned span (demotion does this first; so
    /// do Init and Standby). Every span is tried even if one fails; the first
    /// error is returned. Call states are reset to idle without call events:
    /// the calls live on with the peer that takes the trunk. Channel files
    /// stay open; [`arm`](Self::arm) configures them again.
    pub fn shutdown_spans(&mut self) -> Result<(), CardError> {
        self.start = None;
        let mut first = None;
        for index in 0..self.spans.len() {
            let number = self.spans[index].number;
            if let Err(source) = self.control.shutdown(number as i32) {
                first.get_or_insert(CardError::Span {
                    root: self.config.root.clone(),
                    span: number,
                    source,
                });
            }
            let span = &mut self.spans[index];
            span.phase = SpanPhase::Stopped;
            span.deadline = None;
            span.armed = false;
            for slot in &mut span.slots {
                slot.state = CallState::Idle;
                slot.outgoing = false;
                slot.flash_pending = false;
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    // -----------------------------------------------------------------------
    // Alarms
    // -----------------------------------------------------------------------

    /// `DAHDI_SPANSTAT` on every owned span, judged by what this node wants
    /// of it (see the module docs). Call it periodically (e.g. every 50 ms)
    /// and after channel events ([`take_alarm_events`](Self::take_alarm_events)).
    /// When [`AlarmReport::changed`], feed the pair
    /// `LocalFault(FaultKind::CardAlarm)` or `LocalFaultCleared`.
    pub fn check_alarms(&mut self) -> AlarmReport {
        let now = Instant::now();
        let mut spans = Vec::with_capacity(self.spans.len());
        for span in &self.spans {
            let (alarms, error) = match self.control.span_status(span.number as i32) {
                Ok(status) => (Some(status.alarms), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let fault = match alarms {
                None => true,
                Some(alarms) => span_fault(span.phase, span.deadline, alarms, now),
            };
            spans.push(SpanAlarm {
                span: span.number,
                phase: span.phase,
                alarms,
                fault,
                error,
            });
        }
        let local_fault = spans.iter().any(|s| s.fault);
        let changed = local_fault != self.fault;
        self.fault = local_fault;
        AlarmReport {
            spans,
            local_fault,
            changed,
        }
    }

    /// Whether a channel reported `ALARM`/`NOALARM`/`REMOVED` since the last
    /// call: time to [`check_alarms`](Self::check_alarms).
    pub fn take_alarm_events(&mut self) -> bool {
        std::mem::take(&mut self.alarm_events)
    }

    // -----------------------------------------------------------------------
    // Channels and calls
    // -----------------------------------------------------------------------

    /// The open channel files, for `POLLPRI` polling. The set changes only
    /// in [`arm`](Self::arm) and [`begin_start`](Self::begin_start) (and when a
    /// channel breaks); [`generation`](Self::generation) counts the changes.
    pub fn channel_fds(&self) -> Vec<ChannelFd> {
        self.spans
            .iter()
            .flat_map(|span| {
                span.slots
                    .iter()
                    .filter(|s| !s.broken)
                    .map(move |s| ChannelFd {
                        span: span.number,
                        channel: s.position,
                        fd: s.channel.as_raw_fd(),
                    })
            })
            .collect()
    }

    /// Bumped whenever the set of [`channel_fds`](Self::channel_fds) changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn slot_index(&self, span: u32, channel: u32) -> Result<(usize, usize), CardError> {
        self.spans
            .iter()
            .enumerate()
            .find(|(_, s)| s.number == span)
            .and_then(|(i, s)| {
                s.slots
                    .iter()
                    .position(|slot| slot.position == channel && !slot.broken)
                    .map(|j| (i, j))
            })
            .ok_or_else(|| CardError::NotOwned {
                root: self.config.root.clone(),
                span,
                channel,
            })
    }

    /// Takes every queued event of one channel (`DAHDI_GETEVENT` until
    /// empty; bounded by the driver's queue length) and applies it. Call it
    /// when the channel's fd reports `POLLPRI`. Returns the number of events.
    pub fn read_channel_events(&mut self, span: u32, channel: u32) -> Result<usize, CardError> {
        let (i, j) = self.slot_index(span, channel)?;
        self.read_slot(i, j)
    }

    /// [`read_channel_events`](Self::read_channel_events) on every open
    /// channel; the first error is returned after all were read.
    pub fn read_all_events(&mut self) -> Result<usize, CardError> {
        let mut total = 0;
        let mut first = None;
        for i in 0..self.spans.len() {
            for j in 0..self.spans[i].slots.len() {
                if self.spans[i].slots[j].broken {
                    continue;
                }
                match self.read_slot(i, j) {
                    Ok(n) => total += n,
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    fn read_slot(&mut self, i: usize, j: usize) -> Result<usize, CardError> {
        let mut count = 0;
        for _ in 0..=abi::DAHDI_MAX_EVENTSIZE {
            let slot = &self.spans[i].slots[j];
            let event = match slot.channel.event() {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(count),
                Err(source) => return Err(self.channel_failed(i, j, source)),
            };
            count += 1;
            self.apply(i, j, event)?;
        }
        Ok(count)
    }

    fn channel_failed(&mut self, i: usize, j: usize, source: tandem_hw::Error) -> CardError {
        let span = &mut self.spans[i];
        let slot = &mut span.slots[j];
        if is_gone(&source) && !slot.broken {
            slot.broken = true;
            self.alarm_events = true;
            self.generation += 1;
        }
        CardError::Channel {
            root: self.config.root.clone(),
            span: span.number,
            channel: slot.position,
            source,
        }
    }

    fn set_state(&mut self, i: usize, j: usize, state: CallState) {
        let span = self.spans[i].number;
        let slot = &mut self.spans[i].slots[j];
        if slot.state == state {
            return;
        }
        slot.state = state;
        self.events.push_back(CallEvent {
            span,
            channel: slot.position,
            state,
            at_ms: now_ms(),
        });
    }

    /// The far end of this channel is off hook (not ringing): a call that was
    /// up when the trunk moved here.
    fn far_off_hook(&mut self, i: usize, j: usize) -> Result<bool, CardError> {
        match self.spans[i].slots[j].channel.params() {
            Ok(params) => Ok(params.rxhooksig == abi::DAHDI_RXSIG_OFFHOOK),
            Err(source) => Err(self.channel_failed(i, j, source)),
        }
    }

    /// Picks up a call the synced records say is up: `HOOK(OFFHOOK)`, then
    /// the recorded state.
    fn adopt(&mut self, i: usize, j: usize, state: CallState) -> Result<(), CardError> {
        if let Err(source) = self.spans[i].slots[j].channel.hook(Hook::OffHook) {
            return Err(self.channel_failed(i, j, source));
        }
        self.spans[i].slots[j].outgoing = false;
        self.set_state(i, j, state);
        Ok(())
    }

    fn apply(&mut self, i: usize, j: usize, event: Event) -> Result<(), CardError> {
        match event {
            Event::Alarm | Event::NoAlarm => {
                self.alarm_events = true;
                return Ok(());
            }
            Event::Removed => {
                let slot = &mut self.spans[i].slots[j];
                if !slot.broken {
                    slot.broken = true;
                    self.generation += 1;
                }
                self.alarm_events = true;
                return Ok(());
            }
            _ => {}
        }
        // Hook events of a span shut down on purpose are leftovers.
        if self.spans[i].phase == SpanPhase::Stopped {
            return Ok(());
        }
        let key = (self.spans[i].number, self.spans[i].slots[j].position);
        let (state, outgoing) = {
            let slot = &self.spans[i].slots[j];
            (slot.state, slot.outgoing)
        };
        match event {
            Event::RingOffHook if outgoing => {
                // The far end answered our ringing.
                self.spans[i].slots[j].outgoing = false;
                self.set_state(i, j, CallState::Answered);
            }
            Event::RingOffHook if state == CallState::Idle => {
                match self.expected.get(&key).copied().filter(|s| s.is_up()) {
                    Some(up) if self.far_off_hook(i, j)? => self.adopt(i, j, up)?,
                    _ => self.set_state(i, j, CallState::Ringing),
                }
            }
            Event::OnHook => match state {
                CallState::Ringing => {
                    // Abandoned before it was answered; this side is on hook.
                    self.spans[i].slots[j].outgoing = false;
                    self.set_state(i, j, CallState::HungUp);
                    self.set_state(i, j, CallState::Idle);
                }
                CallState::Answered | CallState::OnHold => {
                    self.spans[i].slots[j].flash_pending = false;
                    self.set_state(i, j, CallState::HungUp);
                }
                CallState::Idle | CallState::HungUp => {}
            },
            Event::RingerOn if state == CallState::Idle => {
                self.spans[i].slots[j].outgoing = true;
                self.set_state(i, j, CallState::Ringing);
            }
            Event::RingerOff if outgoing && state == CallState::Ringing => {
                self.spans[i].slots[j].outgoing = false;
                self.set_state(i, j, CallState::Idle);
            }
            Event::HookComplete if self.spans[i].slots[j].flash_pending => {
                self.spans[i].slots[j].flash_pending = false;
                match state {
                    CallState::Answered => self.set_state(i, j, CallState::OnHold),
                    CallState::OnHold => self.set_state(i, j, CallState::Answered),
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The call records of the synced state: calls recorded as answered or
    /// on hold on an owned channel are picked up (`HOOK(OFFHOOK)`) when the
    /// trunk brings them here with the far end still off hook, and keep
    /// their recorded state. Call it before [`begin_start`](Self::begin_start)
    /// on a takeover (it replaces the previous set); a channel already
    /// showing such a call as ringing is picked up at once.
    pub fn expect_calls(&mut self, calls: &[CallEvent]) -> Result<(), CardError> {
        self.expected = calls
            .iter()
            .filter(|c| c.state.is_up())
            .filter(|c| self.spans.iter().any(|s| s.number == c.span))
            .map(|c| ((c.span, c.channel), c.state))
            .collect();
        let mut first = None;
        for i in 0..self.spans.len() {
            if self.spans[i].phase == SpanPhase::Stopped {
                continue;
            }
            for j in 0..self.spans[i].slots.len() {
                let slot = &self.spans[i].slots[j];
                let key = (self.spans[i].number, slot.position);
                let Some(&want) = self.expected.get(&key) else {
                    continue;
                };
                if slot.broken || slot.outgoing || slot.state != CallState::Ringing {
                    continue;
                }
                let result = match self.far_off_hook(i, j) {
                    Ok(true) => self.adopt(i, j, want),
                    Ok(false) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Takes the call events seen so far, oldest first.
    pub fn take_call_events(&mut self) -> Vec<CallEvent> {
        self.events.drain(..).collect()
    }

    /// The current call state of an owned channel.
    pub fn call_state(&self, span: u32, channel: u32) -> Option<CallState> {
        let (i, j) = self.slot_index(span, channel).ok()?;
        Some(self.spans[i].slots[j].state)
    }

    /// Every owned channel's call state, as records (e.g. a full sync).
    pub fn call_states(&self) -> Vec<CallEvent> {
        let at_ms = now_ms();
        self.spans
            .iter()
            .flat_map(|span| {
                span.slots.iter().map(move |s| CallEvent {
                    span: span.number,
                    channel: s.position,
                    state: s.state,
                    at_ms,
                })
            })
            .collect()
    }

    /// Waits up to `timeout` for the next call event, reading channel events
    /// as they arrive (for tests and tools; the daemon polls the fds itself).
    pub fn wait_call_event(&mut self, timeout: Duration) -> Result<Option<CallEvent>, CardError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.wait_channels(left.min(Duration::from_millis(100)))?;
        }
    }

    /// Sleeps until some open channel has an event (`POLLPRI`) or `timeout`
    /// passes, then reads the channels that are ready.
    fn wait_channels(&mut self, timeout: Duration) -> Result<(), CardError> {
        let mut where_: Vec<(usize, usize)> = Vec::new();
        let ready: Vec<(usize, usize, bool)> = {
            let mut fds = Vec::new();
            for (i, span) in self.spans.iter().enumerate() {
                for (j, slot) in span.slots.iter().enumerate() {
                    if !slot.broken {
                        fds.push(PollFd::new(slot.channel.as_fd(), PollFlags::POLLPRI));
                        where_.push((i, j));
                    }
                }
            }
            if fds.is_empty() {
                std::thread::sleep(timeout);
                return Ok(());
            }
            let millis = timeout.as_micros().div_ceil(1000);
            let millis = u16::try_from(millis).unwrap_or(u16::MAX);
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(Errno::EINTR) => return Ok(()),
                Err(errno) => {
                    return Err(CardError::Poll {
                        root: self.config.root.clone(),
                        errno,
                    });
                }
            }
            let broken = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
            fds.iter()
                .zip(&where_)
                .filter_map(|(fd, &(i, j))| {
                    let revents = fd.revents().unwrap_or(PollFlags::empty());
                    (!revents.is_empty()).then_some((i, j, revents.intersects(broken)))
                })
                .collect()
        };
        let mut first = None;
        for (i, j, broken) in ready {
            let result = self.read_slot(i, j);
            if broken && result.is_ok() && !self.spans[i].slots[j].broken {
                // The device reported an error but GETEVENT did not say why:
                // stop polling this file rather than spin on it.
                let slot = &mut self.spans[i].slots[j];
                slot.broken = true;
                self.alarm_events = true;
                self.generation += 1;
            }
            if let Err(e) = result {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn started_slot(
        &self,
        span: u32,
        channel: u32,
        operation: &'static str,
    ) -> Result<(usize, usize), CardError> {
        let (i, j) = self.slot_index(span, channel)?;
        if self.spans[i].phase == SpanPhase::Stopped {
            return Err(CardError::CallState {
                root: self.config.root.clone(),
                span,
                channel,
                operation,
                state: self.spans[i].slots[j].state,
                why: ": the span is shut down",
            });
        }
        Ok((i, j))
    }

    fn refuse(&self, i: usize, j: usize, operation: &'static str, why: &'static str) -> CardError {
        CardError::CallState {
            root: self.config.root.clone(),
            span: self.spans[i].number,
            channel: self.spans[i].slots[j].position,
            operation,
            state: self.spans[i].slots[j].state,
            why,
        }
    }

    fn hook(&mut self, i: usize, j: usize, hook: Hook) -> Result<(), CardError> {
        match self.spans[i].slots[j].channel.hook(hook) {
            Ok(()) => Ok(()),
            Err(source) => Err(self.channel_failed(i, j, source)),
        }
    }

    /// Answers an incoming ringing call (`HOOK(OFFHOOK)`): answered.
    pub fn answer(&mut self, span: u32, channel: u32) -> Result<(), CardError> {
        let (i, j) = self.started_slot(span, channel, "answer")?;
        let slot = &self.spans[i].slots[j];
        if slot.state != CallState::Ringing || slot.outgoing {
            return Err(self.refuse(i, j, "answer", " (only an incoming ringing call)"));
        }
        self.hook(i, j, Hook::OffHook)?;
        self.set_state(i, j, CallState::Answered);
        Ok(())
    }

    /// Hangs up (`HOOK(ONHOOK)`): an answered, held or hung-up call, or our
    /// own outgoing ringing. The channel is idle.
    pub fn hang_up(&mut self, span: u32, channel: u32) -> Result<(), CardError> {
        let (i, j) = self.started_slot(span, channel, "hang up")?;
        let slot = &self.spans[i].slots[j];
        match slot.state {
            CallState::Idle => return Ok(()),
            CallState::Ringing if !slot.outgoing => {
                return Err(self.refuse(i, j, "hang up", " (incoming: answer it first)"));
            }
            _ => {}
        }
        self.hook(i, j, Hook::OnHook)?;
        let slot = &mut self.spans[i].slots[j];
        slot.outgoing = false;
        slot.flash_pending = false;
        self.set_state(i, j, CallState::Idle);
        Ok(())
    }

    /// Puts an answered call on hold, or takes a held one back (`HOOK(FLASH)`);
    /// the state changes when the flash completes (`HOOKCOMPLETE`).
    pub fn toggle_hold(&mut self, span: u32, channel: u32) -> Result<(), CardError> {
        let (i, j) = self.started_slot(span, channel, "hold")?;
        if !self.spans[i].slots[j].state.is_up() {
            return Err(self.refuse(i, j, "hold", " (only an answered call)"));
        }
        self.hook(i, j, Hook::Flash)?;
        self.spans[i].slots[j].flash_pending = true;
        Ok(())
    }

    /// Calls out on an idle channel (`HOOK(RING)`): ringing once the card
    /// reports `RINGERON`, answered when the far end picks up.
    pub fn ring(&mut self, span: u32, channel: u32) -> Result<(), CardError> {
        let (i, j) = self.started_slot(span, channel, "ring")?;
        if self.spans[i].slots[j].state != CallState::Idle {
            return Err(self.refuse(i, j, "ring", " (only an idle channel)"));
        }
        self.hook(i, j, Hook::Ring)?;
        self.spans[i].slots[j].outgoing = true;
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Status
    // -----------------------------------------------------------------------

    /// Every span of the card (owned or not) with its alarms, and the call
    /// state of each owned channel, for `tandemctl cards`. A span that cannot
    /// be read carries the error instead.
    pub fn cards_status(&self) -> Vec<admin::SpanStatus> {
        let card = self.config.root.to_string_lossy().into_owned();
        let now = Instant::now();
        let present = match self.control.spans() {
            Ok(present) => present,
            Err(e) => {
                return self
                    .spans
                    .iter()
                    .map(|s| admin::SpanStatus {
                        card: card.clone(),
                        span: s.number,
                        state: s.phase.name().into(),
                        owned: true,
                        fault: true,
                        total_channels: s.total_channels,
                        error: Some(e.to_string()),
                        ..Default::default()
                    })
                    .collect();
            }
        };
        present
            .iter()
            .map(|status| {
                let owned = self.spans.iter().find(|s| s.number as i32 == status.span);
                self.span_status(&card, status, owned, now)
            })
            .collect()
    }

    fn span_status(
        &self,
        card: &str,
        status: &HwSpanStatus,
        owned: Option<&OwnedSpan>,
        now: Instant,
    ) -> admin::SpanStatus {
        let (state, fault, channels) = match owned {
            Some(span) => (
                span.phase.name(),
                span_fault(span.phase, span.deadline, status.alarms, now),
                span.slots
                    .iter()
                    .map(|s| admin::ChannelStatus {
                        channel: s.position,
                        state: if s.broken {
                            "gone".into()
                        } else {
                            s.state.name().into()
                        },
                    })
                    .collect(),
            ),
            None => (
                if status.alarms.contains(Alarms::NOTOPEN) {
                    "stopped"
                } else {
                    "started"
                },
                false,
                Vec::new(),
            ),
        };
        admin::SpanStatus {
            card: card.to_string(),
            span: status.span.max(0) as u32,
            name: status.name.clone(),
            description: status.description.clone(),
            span_type: status.span_type.clone(),
            alarms: status.alarms.to_string(),
            state: state.into(),
            owned: owned.is_some(),
            fault,
            configured_channels: status.configured_channels.max(0) as u32,
            total_channels: status.total_channels.max(0) as u32,
            channels,
            error: None,
        }
    }
}

/// Whether a span in `phase` with `alarms` makes the node unfit to serve.
fn span_fault(phase: SpanPhase, deadline: Option<Instant>, alarms: Alarms, now: Instant) -> bool {
    let line_fault = alarms.0 & FAULT_ALARMS.0 != 0;
    match phase {
        SpanPhase::Stopped => line_fault,
        SpanPhase::Starting => {
            deadline.is_none_or(|d| now >= d) && (line_fault || alarms.contains(Alarms::NOTOPEN))
        }
        SpanPhase::Started => line_fault || alarms.contains(Alarms::NOTOPEN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_depend_on_what_the_node_wants_of_the_span() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        let red = Alarms::RED | Alarms::LOS;
        // A standby's span shut down on purpose: NOTOPEN is normal.
        assert!(!span_fault(SpanPhase::Stopped, None, Alarms::NOTOPEN, now));
        assert!(span_fault(
            SpanPhase::Stopped,
            None,
            red | Alarms::NOTOPEN,
            now
        ));
        // Starting: excused until the deadline.
        assert!(!span_fault(SpanPhase::Starting, Some(later), red, now));
        assert!(span_fault(SpanPhase::Starting, Some(now), red, now));
        // Started.
        assert!(!span_fault(SpanPhase::Started, None, Alarms::NONE, now));
        assert!(!span_fault(SpanPhase::Started, None, Alarms::YELLOW, now));
        assert!(span_fault(SpanPhase::Started, None, Alarms::BLUE, now));
        assert!(span_fault(SpanPhase::Started, None, Alarms::LOS, now));
        assert!(span_fault(SpanPhase::Started, None, Alarms::NOTOPEN, now));
    }

    #[test]
    fn call_events_serialize_simply() {
        let e = CallEvent {
            span: 1,
            channel: 3,
            state: CallState::OnHold,
            at_ms: 1_700_000_000_000,
        };
        let text = serde_json::to_string(&e).expect("encode");
        assert_eq!(
            text,
            r#"{"span":1,"channel":3,"state":"on_hold","at_ms":1700000000000}"#
        );
        assert_eq!(serde_json::from_str::<CallEvent>(&text).expect("decode"), e);
        assert_eq!(CallState::HungUp.to_string(), "hung_up");
    }
}
