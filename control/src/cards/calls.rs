//! Channels and calls: the owned channel files (for the daemon's `POLLPRI`
//! polls), their signalling events (`DAHDI_GETEVENT`) and this node's own
//! hook operations turned into [`CallEvent`]s, and the calls picked up
//! after a takeover from the synced records ([`CardManager::expect_calls`]).
//!
//! It owns each channel's [`CallState`]. It knows nothing of the sync
//! layer's types (the daemon maps [`CallEvent`] to them) and changes no
//! span: a channel whose device is gone is only marked and left for
//! [`super::alarms`] to judge. Its only wait is
//! [`CardManager::wait_call_event`], bounded by its timeout.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::{Deserialize, Serialize};
use tandem_hw::abi;
use tandem_hw::device::{Event, Hook};

use super::{CardError, CardManager, SpanPhase};

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

/// An open channel file, for the daemon's io_uring `POLL_ADD` (`POLLPRI`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelFd {
    pub span: u32,
    pub channel: u32,
    pub fd: RawFd,
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
    pub(super) fn wait_channels(&mut self, timeout: Duration) -> Result<(), CardError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
