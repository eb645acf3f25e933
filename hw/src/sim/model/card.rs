//! Whole cards: hot-unplug, the per-span status report the control
//! interface prints ([`SpanReport`]), the channel configuration report
//! ([`ChannelReport`]: what `dahdi_cfg` left on each channel), and the log
//! of requests the simulator does not serve.
//!
//! This module owns a card's `removed` flag and its log of unserved requests. It must not reach into FUSE: an
//! unplugged card's files answer `ENODEV` because the model's operations check
//! the flag, and its pollers wake because unplugging queues `REMOVED` on every
//! channel.

use nix::errno::Errno;

use super::{CallState, ChannelId, HdlcRate, World};
use crate::abi::{self, IoctlRequest};

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

/// A channel's configuration, as `DAHDI_CHANCONFIG`, `ATTACH_ECHOCAN` and
/// `HDLC_RATE` left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelReport {
    /// Card-wide channel number.
    pub channo: i32,
    pub span: i32,
    pub position: i32,
    /// `DAHDI_SIG_*`, 0 when unconfigured.
    pub sigtype: i32,
    /// `DAHDI_LAW_MULAW` or `DAHDI_LAW_ALAW`.
    pub law: i32,
    /// The master's channel number (its own when not a slave).
    pub master: i32,
    /// The attached echo canceller's name (one of [`super::ECHO_CANCELLERS`]).
    pub echocan: Option<&'static str>,
    pub hdlc_rate: HdlcRate,
}

impl World {
    /// The configuration of every channel of `card`, in channel-number order.
    pub fn channel_report(&self, card: usize) -> Result<Vec<ChannelReport>, Errno> {
        let c = self.cards.get(card).ok_or(Errno::ENODEV)?;
        let mut report = Vec::with_capacity(self.config.spans * self.config.channels);
        for (span, s) in c.spans.iter().enumerate() {
            for (index, ch) in s.channels.iter().enumerate() {
                let channo = self.channo(ChannelId { card, span, index });
                report.push(ChannelReport {
                    channo,
                    span: span as i32 + 1,
                    position: index as i32 + 1,
                    sigtype: ch.sig,
                    law: if ch.law == abi::DAHDI_LAW_MULAW {
                        abi::DAHDI_LAW_MULAW
                    } else {
                        abi::DAHDI_LAW_ALAW
                    },
                    master: if ch.master == 0 { channo } else { ch.master },
                    echocan: ch.echocan,
                    hdlc_rate: ch.hdlc_rate,
                });
            }
        }
        Ok(report)
    }

    /// Note a request a file of `card` was sent that the simulator does not serve.
    pub fn note_unserved(&mut self, card: usize, request: IoctlRequest) {
        if let Some(c) = self.cards.get_mut(card) {
            *c.unserved.entry(request).or_default() += 1;
        }
    }

    /// The requests of `card` the simulator did not serve, with their counts.
    pub fn unserved(&self, card: usize) -> Result<Vec<(IoctlRequest, u64)>, Errno> {
        let c = self.cards.get(card).ok_or(Errno::ENODEV)?;
        Ok(c.unserved.iter().map(|(&r, &n)| (r, n)).collect())
    }

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
