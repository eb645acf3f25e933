//! Span alarms as a local fault: [`CardManager::check_alarms`] judges each
//! owned span's alarms by what this node wants of it (see the parent
//! module's *Faults*), and [`CardFaultFilter`] turns that judgement into the
//! card fault the pair state machine is told of, with the hold-down.
//!
//! The judgement and the filter are pure decisions: the filter is sans-IO
//! (its caller passes `now` and whether the node is active) and reads no
//! clock, the judgement reads only `DAHDI_SPANSTAT`. Neither tells the pair
//! state machine anything: the daemon feeds `LocalFault(CardAlarm)` /
//! `LocalFaultCleared` from the filter's answers.

use std::fmt;
use std::time::{Duration, Instant};

use tandem_hw::abi;
use tandem_hw::device::Alarms;

use super::{CardManager, SpanPhase};

/// Alarms that make a span unable to carry its trunk: red (loss of frame),
/// blue (AIS) and loss of signal.
pub const FAULT_ALARMS: Alarms =
    Alarms(abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_BLUE | abi::DAHDI_ALARM_LOS);

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

impl CardManager {
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
}

/// Whether a span in `phase` with `alarms` makes the node unfit to serve.
pub(super) fn span_fault(
    phase: SpanPhase,
    deadline: Option<Instant>,
    alarms: Alarms,
    now: Instant,
) -> bool {
    let line_fault = alarms.0 & FAULT_ALARMS.0 != 0;
    match phase {
        SpanPhase::Stopped => line_fault,
        SpanPhase::Starting => {
            deadline.is_none_or(|d| now >= d) && (line_fault || alarms.contains(Alarms::NOTOPEN))
        }
        SpanPhase::Started => line_fault || alarms.contains(Alarms::NOTOPEN),
    }
}

/// The card fault the pair state machine is told of, from the alarm
/// judgements ([`AlarmReport::local_fault`]) over time.
///
/// A span shut down shows no alarm, which says nothing of the trunk behind
/// it: a node whose card fault clears while it is not active (typically one
/// that lost the role to that fault) stays faulty for the hold-down
/// (`[node] card_fault_holddown_ms`), so that a trunk cut behind both nodes
/// hands the role over once instead of bouncing it between them. An active
/// node's fault clears at once.
///
/// Sans-IO: no clock, no device. How to drive it:
/// - getters: [`is_faulty`](Self::is_faulty);
/// - `handle_*`, each answering `Some(new fault state)` when the fault is
///   raised or cleared (then feed `LocalFault(CardAlarm)` or
///   `LocalFaultCleared`):
///   [`handle_alarm`](Self::handle_alarm) for the periodic check (every
///   50 ms), [`handle_event_alarm`](Self::handle_event_alarm) for the check
///   after a channel's alarm event, [`handle_start_failed`](Self::handle_start_failed)
///   when a takeover's spans did not come up;
/// - [`poll_timeout`](Self::poll_timeout): when the hold-down ends (the
///   first [`handle_alarm`](Self::handle_alarm) at or after it clears the
///   fault if the alarm is still clear).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardFaultFilter {
    holddown: Duration,
    fault: bool,
    /// The fault clears then, unless raised again; set by the first clear
    /// [`handle_alarm`](Self::handle_alarm) of a faulty node.
    clear_at: Option<Instant>,
}

impl CardFaultFilter {
    /// No fault yet; `holddown` is `[node] card_fault_holddown_ms`.
    pub fn new(holddown: Duration) -> CardFaultFilter {
        CardFaultFilter {
            holddown,
            fault: false,
            clear_at: None,
        }
    }

    /// The card fault is raised.
    pub fn is_faulty(&self) -> bool {
        self.fault
    }

    /// The periodic alarm check: `fault` is whether any card's
    /// [`check_alarms`](CardManager::check_alarms) found a local fault,
    /// `active` whether this node is active now. A fault is raised at once
    /// (and any pending clear forgotten). A clear starts the hold-down at
    /// the first check that sees it; the fault clears at the first check at
    /// or after `now + holddown`, or at once while the node is active.
    pub fn handle_alarm(&mut self, fault: bool, active: bool, now: Instant) -> Option<bool> {
        if fault {
            self.clear_at = None;
            return self.set(true);
        }
        if !self.fault {
            return None;
        }
        let until = *self.clear_at.get_or_insert(now + self.holddown);
        if active || now >= until {
            self.clear_at = None;
            return self.set(false);
        }
        None
    }

    /// The check after a channel reported `ALARM`/`NOALARM`/`REMOVED`: the
    /// fault follows that card's [`AlarmReport::local_fault`] at once, with
    /// no hold-down, and a pending clear of [`handle_alarm`](Self::handle_alarm)
    /// is left as it is (tandemd's behaviour so far).
    pub fn handle_event_alarm(&mut self, fault: bool) -> Option<bool> {
        self.set(fault)
    }

    /// A takeover's spans failed to start ([`CardManager::poll_started`]
    /// answered an error): the fault is raised; a pending clear is left as
    /// it is.
    pub fn handle_start_failed(&mut self) -> Option<bool> {
        self.set(true)
    }

    /// When the hold-down of a faulty node ends, if one is running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clear_at.filter(|_| self.fault)
    }

    fn set(&mut self, fault: bool) -> Option<bool> {
        (self.fault != fault).then(|| {
            self.fault = fault;
            fault
        })
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

    const HOLDDOWN: Duration = Duration::from_secs(10);
    const CHECK: Duration = Duration::from_millis(50);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_alarm_raises_the_fault_at_once() {
        let t0 = Instant::now();
        let mut f = CardFaultFilter::new(HOLDDOWN);
        assert!(!f.is_faulty());
        assert_eq!(
            f.handle_alarm(false, true, t0),
            None,
            "no fault, nothing to say"
        );
        assert_eq!(f.handle_alarm(true, true, t0 + CHECK), Some(true));
        assert!(f.is_faulty());
        // Raised once: the next checks say nothing new.
        assert_eq!(f.handle_alarm(true, false, t0 + CHECK * 2), None);
        assert!(f.is_faulty());
        assert_eq!(f.poll_timeout(), None, "no hold-down while the alarm is up");
    }

    #[test]
    fn a_clear_on_a_standby_waits_out_the_holddown() {
        let t0 = Instant::now();
        let mut f = CardFaultFilter::new(HOLDDOWN);
        assert_eq!(f.handle_alarm(true, true, t0), Some(true));
        // The node lost the role; the alarm clears 200 ms later.
        let cleared = t0 + ms(200);
        assert_eq!(f.handle_alarm(false, false, cleared), None);
        assert_eq!(f.poll_timeout(), Some(cleared + HOLDDOWN));
        // Still faulty at every check before the hold-down ends, which
        // runs from the first clear check, not from each one.
        let mut t = cleared;
        while t + CHECK < cleared + HOLDDOWN {
            t += CHECK;
            assert_eq!(
                f.handle_alarm(false, false, t),
                None,
                "at {:?}",
                t - cleared
            );
            assert!(f.is_faulty());
        }
        assert_eq!(f.poll_timeout(), Some(cleared + HOLDDOWN));
        assert_eq!(
            f.handle_alarm(false, false, cleared + HOLDDOWN),
            Some(false)
        );
        assert!(!f.is_faulty());
        assert_eq!(f.poll_timeout(), None);
        assert_eq!(
            f.handle_alarm(false, false, cleared + HOLDDOWN + CHECK),
            None
        );
    }

    #[test]
    fn a_clear_on_the_active_node_clears_at_once() {
        let t0 = Instant::now();
        let mut f = CardFaultFilter::new(HOLDDOWN);
        assert_eq!(f.handle_alarm(true, true, t0), Some(true));
        assert_eq!(f.handle_alarm(false, true, t0 + CHECK), Some(false));
        assert!(!f.is_faulty());
        assert_eq!(f.poll_timeout(), None);
        // A standby in its hold-down that becomes active clears at the
        // next check.
        assert_eq!(f.handle_alarm(true, false, t0 + CHECK * 2), Some(true));
        assert_eq!(f.handle_alarm(false, false, t0 + CHECK * 3), None);
        assert_eq!(f.handle_alarm(false, true, t0 + CHECK * 4), Some(false));
    }

    #[test]
    fn an_alarm_within_the_holddown_restarts_it() {
        let t0 = Instant::now();
        let mut f = CardFaultFilter::new(HOLDDOWN);
        assert_eq!(f.handle_alarm(true, false, t0), Some(true));
        assert_eq!(f.handle_alarm(false, false, t0 + ms(100)), None);
        assert_eq!(f.poll_timeout(), Some(t0 + ms(100) + HOLDDOWN));
        // Raised again 5 s into the hold-down: still faulty (no change to
        // report), and the pending clear is forgotten.
        let again = t0 + ms(5_100);
        assert_eq!(f.handle_alarm(true, false, again), None);
        assert!(f.is_faulty());
        assert_eq!(f.poll_timeout(), None);
        // The next clear starts a whole new hold-down: the first one's end
        // passes with the fault still raised.
        let cleared = again + CHECK;
        assert_eq!(f.handle_alarm(false, false, cleared), None);
        assert_eq!(f.handle_alarm(false, false, t0 + ms(100) + HOLDDOWN), None);
        assert!(f.is_faulty());
        assert_eq!(
            f.handle_alarm(false, false, cleared + HOLDDOWN - ms(1)),
            None
        );
        assert_eq!(
            f.handle_alarm(false, false, cleared + HOLDDOWN),
            Some(false)
        );
    }

    #[test]
    fn a_zero_holddown_clears_at_the_first_clear_check() {
        let t0 = Instant::now();
        let mut f = CardFaultFilter::new(Duration::ZERO);
        assert_eq!(f.handle_alarm(true, false, t0), Some(true));
        assert_eq!(f.handle_alarm(false, false, t0 + CHECK), Some(false));
    }

    #[test]
    fn channel_alarm_events_and_failed_starts_skip_the_holddown() {
        let t0 = Instant::now();
        let mut f = CardFaultFilter::new(HOLDDOWN);
        // A failed start raises the fault; raising it twice says nothing.
        assert_eq!(f.handle_start_failed(), Some(true));
        assert_eq!(f.handle_start_failed(), None);
        // The check after a channel's alarm event follows the report at
        // once, in both directions, whatever the hold-down.
        assert_eq!(f.handle_alarm(false, false, t0), None, "hold-down running");
        assert_eq!(f.poll_timeout(), Some(t0 + HOLDDOWN));
        assert_eq!(f.handle_event_alarm(false), Some(false));
        assert!(!f.is_faulty());
        assert_eq!(
            f.poll_timeout(),
            None,
            "not faulty: no hold-down to wait for"
        );
        assert_eq!(f.handle_event_alarm(false), None);
        assert_eq!(f.handle_event_alarm(true), Some(true));
        // The earlier hold-down's end was kept: the next clear check after
        // it clears the fault at once (as tandemd did).
        assert_eq!(f.poll_timeout(), Some(t0 + HOLDDOWN));
        assert_eq!(
            f.handle_alarm(false, false, t0 + HOLDDOWN + CHECK),
            Some(false)
        );
    }
}
