//! Trunks and their far end: the failover switch that connects each trunk to
//! one span (its carrier), the far end of every timeslot ([`FarEnd`]) with the
//! call state it makes with the carrying channel ([`CallState`]), and the
//! far end's moves driven by the control interface (ring, answer, hang up,
//! cut the trunk).
//!
//! This module owns which span carries a trunk and what the far end does. It
//! must not touch a channel's local hook state except where the far end's move
//! ends it (an answered or rejected ring), and it queues events only through
//! `queue_event` (`events.rs`).

use std::fmt;

use nix::errno::Errno;

use super::{ChannelId, TxHook, World};
use crate::abi;

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

impl World {
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

    /// Cut (or restore) the trunk behind a span: its carrier sees `RED|LOS`.
    pub fn cut_trunk(&mut self, card: usize, spanno: i32, cut: bool) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(spanno).ok_or(Errno::EINVAL)?;
        let trunk = self.cards[card].spans[index].trunk;
        self.trunks[trunk].cut = cut;
        self.settle_alarms();
        Ok(())
    }

    /// The call state of the timeslot behind `chan/<spanno>/<chanpos>` of `card`.
    pub fn call(&self, card: usize, spanno: i32, chanpos: i32) -> Result<CallState, Errno> {
        let (trunk, slot) = self.timeslot_of(card, spanno, chanpos)?;
        Ok(self.call_state(trunk, slot))
    }

    pub(super) fn call_state(&self, trunk: usize, slot: usize) -> CallState {
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

    pub(super) fn carries(&self, id: ChannelId) -> bool {
        let span = &self.cards[id.card].spans[id.span];
        span.running && self.trunks[span.trunk].carrier == Some((id.card, id.span))
    }

    pub(super) fn carried_far_end(&self, id: ChannelId) -> Option<FarEnd> {
        self.carries(id).then(|| {
            let trunk = self.cards[id.card].spans[id.span].trunk;
            self.trunks[trunk].timeslots[id.index].far
        })
    }

    /// Connect `trunk` to `to` (or to nothing); the new carrier learns which far ends are off hook.
    pub(super) fn connect(&mut self, trunk: usize, to: Option<(usize, usize)>) {
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

    /// If span `span` of `card` carries its trunk, the failover switch moves the
    /// trunk to the first member span that is running on a present card, or to
    /// nothing. Called once the span has stopped or its card is unplugged.
    pub(super) fn hand_over(&mut self, card: usize, span: usize) {
        let trunk = self.cards[card].spans[span].trunk;
        if self.trunks[trunk].carrier == Some((card, span)) {
            let next = self.trunks[trunk]
                .members
                .iter()
                .copied()
                .find(|&(c, s)| self.may_carry(c, s));
            self.connect(trunk, next);
        }
    }

    /// Whether the failover switch may connect a trunk to span `span` of
    /// `card`: the span runs, its card is present and the card's watchdog
    /// has not released it.
    pub(super) fn may_carry(&self, card: usize, span: usize) -> bool {
        let c = &self.cards[card];
        c.spans[span].running && !c.removed && !c.watchdog.released
    }
}
