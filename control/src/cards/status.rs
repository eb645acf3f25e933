//! What `tandemctl cards` shows: every span of a card (owned or not) with
//! its alarms, state and fault, and the call state of each owned channel,
//! as [`admin::SpanStatus`] rows.
//!
//! It only reads (`DAHDI_SPANSTAT` through the card's control node) and
//! changes no state; the fault it shows is the same judgement as
//! [`CardManager::check_alarms`]'s.

use std::time::Instant;

use tandem_hw::device::{Alarms, SpanStatus as HwSpanStatus};

use super::alarms::span_fault;
use super::{CardManager, OwnedSpan};
use crate::admin;

impl CardManager {
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
