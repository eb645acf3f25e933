//! Whole cards: hot-unplug and the per-span status report the control
//! interface prints ([`SpanReport`]).
//!
//! This module owns a card's `removed` flag. It must not reach into FUSE: an
//! unplugged card's files answer `ENODEV` because the model's operations check
//! the flag, and its pollers wake because unplugging queues `REMOVED` on every
//! channel.

use nix::errno::Errno;

use super::{CallState, ChannelId, World};
use crate::abi;

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

impl World {
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
            self.hand_over(card, span);
        }
        self.settle_alarms();
        Ok(())
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
}
