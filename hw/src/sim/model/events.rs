//! Channel event queues and the pollers waiting on them: `DAHDI_GETEVENT`,
//! `poll` with a [`Waker`] per poll handle, and waking every poller of a card
//! that goes away.
//!
//! This module owns each channel's bounded event queue (`DAHDI_MAX_EVENTSIZE`)
//! and its wakers. It must not decide which events happen: the other parts of
//! the model call `queue_event`, which also wakes the pollers. It knows nothing
//! of FUSE: a waker is an opaque callback registered by `fs.rs`.

use nix::errno::Errno;

use super::{ChannelId, World};
use crate::abi;

/// Called (once) when a channel gets an event; registered by a poller.
pub type Waker = Box<dyn FnOnce() + Send>;

impl World {
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

    pub(super) fn queue_event(&mut self, id: ChannelId, event: i32) {
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
