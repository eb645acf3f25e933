//! Span alarms: the injected fault bits and how a span's alarms follow from
//! its state — injected | `RED|LOS` from `DAHDI_MAINT_ALARM_SIM` | `LOOPBACK`
//! in a loopback mode | `NOTOPEN` when stopped | `RED|LOS` when started without
//! its trunk or when the trunk is cut.
//!
//! This module owns the computation and `settle_alarms`, which every state
//! change ends with: it stores each span's alarms and queues `ALARM` /
//! `NOALARM` on the channels whose alarms changed (as `dahdi_alarm_notify`
//! does). It must not change the state the alarms are computed from, except
//! the injected bits it is told to set.

use nix::errno::Errno;

use super::{ChannelId, World};
use crate::abi;

impl World {
    /// Replace the injected alarm bits of a span (a fault on the card or its line).
    pub fn inject_alarms(&mut self, card: usize, spanno: i32, alarms: u32) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(spanno).ok_or(Errno::EINVAL)?;
        self.cards[card].spans[index].injected = alarms;
        self.settle_alarms();
        Ok(())
    }

    /// The alarms span `index` of `card` shows, computed from its state and its trunk.
    fn compute_alarms(&self, card: usize, index: usize) -> u32 {
        let span = &self.cards[card].spans[index];
        let trunk = &self.trunks[span.trunk];
        let mut alarms = span.injected;
        if span.alarm_sim {
            alarms |= abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_LOS;
        }
        if span.maint != abi::DAHDI_MAINT_NONE {
            alarms |= abi::DAHDI_ALARM_LOOPBACK;
        }
        if !span.running {
            alarms |= abi::DAHDI_ALARM_NOTOPEN;
        } else if trunk.carrier != Some((card, index)) || trunk.cut {
            alarms |= abi::DAHDI_ALARM_RED | abi::DAHDI_ALARM_LOS;
        }
        alarms
    }

    /// Recompute every span's alarms; channels of a span whose alarms changed get
    /// `ALARM` or `NOALARM` (as `dahdi_alarm_notify` queues them).
    pub(super) fn settle_alarms(&mut self) {
        for card in 0..self.cards.len() {
            if self.cards[card].removed {
                continue;
            }
            for index in 0..self.config.spans {
                let alarms = self.compute_alarms(card, index);
                if alarms == self.cards[card].spans[index].alarms {
                    continue;
                }
                self.cards[card].spans[index].alarms = alarms;
                for slot in 0..self.config.channels {
                    let id = ChannelId {
                        card,
                        span: index,
                        index: slot,
                    };
                    if self.chan(id).chan_alarms != alarms {
                        self.chan_mut(id).chan_alarms = alarms;
                        let event = if alarms == 0 {
                            abi::DAHDI_EVENT_NOALARM
                        } else {
                            abi::DAHDI_EVENT_ALARM
                        };
                        self.queue_event(id, event);
                    }
                }
            }
        }
    }
}
