//! The cards' side of the loop: channel files polled for DAHDI events,
//! the alarm check (its hold-down decided by
//! [`crate::cards::CardFaultFilter`]), spans started on takeover with the
//! synced calls expected, and the cards' call events published as sync
//! records (answered first on cards with `auto_answer`).
//!
//! Card decisions are [`crate::cards`]'; this module routes to them.

use std::time::{Duration, Instant};

use anyhow::Result;
use tandem_dataplane::common::node::NodeState;

use super::{Daemon, Event, token::Token};
use crate::cards::CallState as CardCall;
use crate::sync::{
    CallState as SyncCall,
    apply::{card_call_id, parse_card_call_id},
};

fn sync_state(s: CardCall) -> SyncCall {
    match s {
        CardCall::Idle => SyncCall::Idle,
        CardCall::Ringing => SyncCall::Ringing,
        CardCall::Answered => SyncCall::Answered,
        CardCall::OnHold => SyncCall::OnHold,
        CardCall::HungUp => SyncCall::HungUp,
    }
}

fn card_state(s: SyncCall) -> CardCall {
    match s {
        SyncCall::Idle => CardCall::Idle,
        SyncCall::Ringing => CardCall::Ringing,
        SyncCall::Answered => CardCall::Answered,
        SyncCall::OnHold => CardCall::OnHold,
        SyncCall::HungUp => CardCall::HungUp,
    }
}

impl Daemon {
    /// On takeover: the calls the synced records say were up on our
    /// channels are expected (picked up as the trunk arrives), and the
    /// spans start.
    pub(super) fn start_spans(&mut self) -> Result<()> {
        let expected = self.synced_card_calls();
        for (i, c) in self.cards.iter_mut().enumerate() {
            let calls: Vec<crate::cards::CallEvent> = expected
                .iter()
                .filter(|(card, _)| *card == i)
                .map(|(_, e)| *e)
                .collect();
            if !calls.is_empty() {
                tracing::info!(
                    "card {}: expecting {} calls",
                    c.root().display(),
                    calls.len()
                );
            }
            if let Err(e) = c.expect_calls(&calls) {
                tracing::error!("card {}: {e}", c.root().display());
            }
        }
        let now = Instant::now();
        for c in self.cards.iter_mut() {
            let deadline = now + c.takeover_deadline();
            if let Err(e) = c.begin_start(deadline) {
                tracing::error!("card {}: {e}", c.root().display());
            }
        }
        if let Err(e) = self
            .ring
            .rearm(Token::CardsStart, now + Duration::from_micros(200))
        {
            // Not fatal on the takeover path: the loop re-arms it next turn.
            tracing::warn!("cards: cannot arm the start-wait timer: {e}");
        }
        Ok(())
    }

    pub(super) fn on_cards_start(&mut self) -> Result<()> {
        let now = Instant::now();
        let mut pending = false;
        let mut results = Vec::new();
        for c in self.cards.iter_mut() {
            match c.poll_started(now) {
                None => pending |= c.is_starting(),
                Some(r) => results.push((c.root().display().to_string(), r)),
            }
        }
        for (root, r) in results {
            match r {
                Ok(t) => self.mark(Event::SpansStarted {
                    root,
                    micros: t.elapsed.as_micros() as u64,
                }),
                Err(e) => {
                    self.mark(Event::SpansFailed {
                        root,
                        error: e.to_string(),
                    });
                    // A span that cannot start is an alarm of its own.
                    let change = self.card_fault.handle_start_failed();
                    self.card_fault_changed(change);
                }
            }
        }
        if pending
            && let Err(e) = self
                .ring
                .arm_timeout(Token::CardsStart, now + Duration::from_micros(500))
        {
            // Not fatal on the takeover path: the loop re-arms it next turn.
            tracing::warn!("cards: cannot arm the start-wait timer: {e}");
        }
        Ok(())
    }

    /// The card fault as the hold-down filter sees it; the pair is told
    /// of changes.
    fn card_fault_changed(&mut self, change: Option<bool>) {
        if let Some(raised) = change {
            self.mark(Event::CardAlarm { raised });
            self.update_fault();
        }
    }

    pub(super) fn on_card_alarms(&mut self) -> Result<()> {
        let mut fault = false;
        for c in self.cards.iter_mut() {
            fault |= c.check_alarms().local_fault();
        }
        let active = self.pair.state() == NodeState::Active;
        let change = self.card_fault.handle_alarm(fault, active, Instant::now());
        self.card_fault_changed(change);
        self.ring.arm_timeout(
            Token::CardAlarms,
            Instant::now() + Duration::from_millis(50),
        )?;
        Ok(())
    }

    pub(super) fn on_channel(&mut self, card: usize, index: usize) -> Result<()> {
        let Some(ch) = self.chan_polls.get(&(card, index)).copied() else {
            return Ok(());
        };
        match self.cards[card].read_channel_events(ch.span, ch.channel) {
            Ok(_) => {
                if self.cards[card].take_alarm_events() {
                    let fault = self.cards[card].check_alarms().local_fault();
                    let change = self.card_fault.handle_event_alarm(fault);
                    self.card_fault_changed(change);
                }
            }
            Err(e) => tracing::warn!(
                "card {}: span {} channel {}: {e}",
                self.cards[card].root().display(),
                ch.span,
                ch.channel
            ),
        }
        self.publish_card_calls();
        // One-shot poll: again, unless the channel broke (a new generation
        // re-polls everything).
        if self.cards[card].generation() == self.chan_gens.get(card).copied().unwrap_or(u64::MAX) {
            self.ring
                .poll(Token::Channel { card, index }, ch.fd, libc::POLLPRI as u32)?;
        }
        Ok(())
    }

    /// The card call records of the synced store, by card index.
    fn synced_card_calls(&self) -> Vec<(usize, crate::cards::CallEvent)> {
        let Some(sy) = &self.sync else {
            return Vec::new();
        };
        sy.store()
            .calls()
            .filter_map(|c| {
                let (card, _, _) = parse_card_call_id(&c.id)?;
                let ch = c.channel?;
                Some((
                    card,
                    crate::cards::CallEvent {
                        span: ch.span,
                        channel: ch.channel,
                        state: card_state(c.state),
                        at_ms: c.updated_ms,
                    },
                ))
            })
            .collect()
    }

    /// Publishes the call events of the cards (active node), answering
    /// incoming calls first on cards with `auto_answer`.
    pub(super) fn publish_card_calls(&mut self) {
        let mut records = Vec::new();
        for (i, c) in self.cards.iter_mut().enumerate() {
            let mut events = c.take_call_events();
            if self.cfg.cards.get(i).is_some_and(|cc| cc.auto_answer) {
                for e in events.clone() {
                    if e.state == CardCall::Ringing
                        && c.call_state(e.span, e.channel) == Some(CardCall::Ringing)
                    {
                        match c.answer(e.span, e.channel) {
                            Ok(()) => events.extend(c.take_call_events()),
                            Err(err) => tracing::warn!(
                                "card {}: auto answer on span {} channel {}: {err}",
                                c.root().display(),
                                e.span,
                                e.channel
                            ),
                        }
                    }
                }
            }
            for e in events {
                let id = card_call_id(i, e.span, e.channel);
                if e.state == CardCall::Idle {
                    records.push(crate::sync::Record::CallRemoved(id));
                } else {
                    records.push(crate::sync::Record::Call(crate::sync::CallRecord {
                        id,
                        channel: Some(crate::sync::ChannelRef {
                            span: e.span,
                            channel: e.channel,
                        }),
                        flow: None,
                        ivr: None,
                        state: sync_state(e.state),
                        created_ms: e.at_ms,
                        updated_ms: e.at_ms,
                    }));
                }
            }
        }
        if records.is_empty() {
            return;
        }
        if let Some(sy) = self.sync.as_mut() {
            let now = Instant::now();
            for r in records {
                sy.record(r, now);
            }
        }
    }

    /// Polls the cards' channel files for `POLLPRI`, again whenever a card's
    /// set of open channels changed.
    pub(super) fn cards_turn(&mut self) -> Result<()> {
        let gens: Vec<u64> = self.cards.iter().map(|c| c.generation()).collect();
        if gens == self.chan_gens {
            return Ok(());
        }
        for (card, index) in self.chan_polls.keys().copied().collect::<Vec<_>>() {
            self.ring.cancel(Token::Channel { card, index })?;
        }
        self.chan_polls.clear();
        for (card, c) in self.cards.iter().enumerate() {
            for (index, ch) in c.channel_fds().into_iter().enumerate() {
                self.ring
                    .poll(Token::Channel { card, index }, ch.fd, libc::POLLPRI as u32)?;
                self.chan_polls.insert((card, index), ch);
            }
        }
        self.chan_gens = gens;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_and_sync_call_states_round_trip() {
        for s in [
            CardCall::Idle,
            CardCall::Ringing,
            CardCall::Answered,
            CardCall::OnHold,
            CardCall::HungUp,
        ] {
            assert_eq!(card_state(sync_state(s)), s);
        }
    }
}
