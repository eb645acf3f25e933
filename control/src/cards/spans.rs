//! Span ownership: the owned spans started on a takeover (configure their
//! line and channels from the card table or, with `system_conf`, as DAHDI's
//! `system.conf` says, the echo cancellers included;
//! `DAHDI_STARTUP`, then `DAHDI_SPANSTAT` until alarm-free or the takeover
//! deadline), shut down on demotion, and armed while shut down so that the
//! next takeover only has to start them.
//!
//! It owns each span's [`SpanPhase`] and the start attempt in progress. It
//! must not decide when to start or stop (the pair state machine does) and
//! never judges alarms outside a start ([`super::alarms`] does); its only
//! wait is [`CardManager::start_spans`], bounded by the deadline.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tandem_hw::abi;
use tandem_hw::device::{Alarms, Channel, ChannelConfig, LineConfig};

use super::{CallState, CardError, CardManager, POLL_STEP, Slot, StartAttempt};

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

impl CardManager {
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
        let system = self.config.system.as_ref();
        // The positions this node drives: every channel of the span, or with
        // a system.conf the ones it configures.
        let positions: Vec<u32> = (1..=total)
            .filter(|&p| system.is_none_or(|s| s.channels.contains_key(&(base + p as i32 - 1))))
            .collect();
        if stopped {
            let line = match system {
                Some(system) => {
                    system
                        .spans
                        .iter()
                        .find(|s| s.number == number)
                        .map(|s| LineConfig {
                            line_config: s.line_config,
                            lbo: s.lbo,
                            sync: s.timing as i32,
                        })
                }
                None => self.config.line.map(|line| LineConfig {
                    line_config: line.config,
                    lbo: 0,
                    sync: line.timing as i32,
                }),
            };
            if let Some(line) = line {
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
            for &position in &positions {
                let channel = base + position as i32 - 1;
                // As dahdi_cfg applies system.conf: signalling, then the echo canceller.
                let (signalling, echo_canceller) =
                    match system.and_then(|s| s.channels.get(&channel)) {
                        Some(ch) => (ch.signalling, Some(ch.echo_canceller.as_deref())),
                        None => (self.config.signalling, None),
                    };
                let config = ChannelConfig {
                    channel,
                    signalling,
                    law: abi::DAHDI_LAW_DEFAULT,
                    idle_bits: 0,
                };
                self.control
                    .configure_channel(&config)
                    .map_err(self.span_error(number))?;
                if let Some(name) = echo_canceller {
                    self.control
                        .attach_echocan(channel, name)
                        .map_err(self.span_error(number))?;
                }
            }
        }
        // Open what is not open (or was lost), keep what is.
        let mut opened = false;
        let span = &mut self.spans[index];
        span.slots.retain(|slot| !slot.broken);
        for position in positions {
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
}
