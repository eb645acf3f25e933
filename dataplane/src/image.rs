//! What one virtual service looks like in the maps: its `Service` value,
//! its real server slots and its scheduler tables. Computed once from a
//! validated [`ServiceConfig`]; the loader writes it to the kernel and the
//! reference model applies the very same image, so both start from
//! identical state.
//!
//! Real servers keep their slot across updates (matched by address and
//! port), so that flows already pinned to a slot keep their real server;
//! a removed real server leaves an empty slot (weight 0, down).

use std::net::IpAddr;

use tandem_common::*;

use crate::{
    config::{ConfigError, ServiceConfig, addr16},
    tables::{self, MaglevReal},
};

/// Identity of a real server within a service.
pub type RealId = (IpAddr, u16);

/// The map contents of one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceImage {
    pub key: ServiceKey,
    pub service: Service,
    /// `MAX_REALS` slots (empty slots: weight 0, state down).
    pub reals: Vec<RealServer>,
    /// Who holds each slot.
    pub slot_ids: Vec<Option<RealId>>,
    /// wrr: the cycle (`WRR_SEQ_MAX` entries, unused ones `NO_REAL`).
    pub wrr: Vec<u32>,
    /// sh/dh: 256 buckets.
    pub shdh: Vec<u32>,
    /// mh: `mh_size` entries.
    pub mh: Vec<u32>,
    /// Whether the scheduler state must be (re)initialised.
    pub reset_sched: bool,
    /// A new service (not an update): its per-real state (reported loads)
    /// starts from zero rather than from whatever the id held before.
    pub fresh: bool,
    pub sched: SchedState,
}

impl ServiceImage {
    /// Builds the image of `cfg` as service `id` (and Maglev slot
    /// `mh_slot`), keeping the slots of `previous` for real servers that
    /// stay.
    pub fn build(
        cfg: &ServiceConfig,
        id: u32,
        mh_slot: u32,
        previous: Option<&ServiceImage>,
    ) -> Result<ServiceImage, ConfigError> {
        cfg.validate()?;
        let mut slot_ids: Vec<Option<RealId>> = vec![None; MAX_REALS as usize];
        let mut slot_of = vec![usize::MAX; cfg.reals.len()];
        if let Some(prev) = previous {
            for (i, r) in cfg.reals.iter().enumerate() {
                if let Some(s) = prev
                    .slot_ids
                    .iter()
                    .position(|x| *x == Some((r.addr, r.port)))
                {
                    slot_ids[s] = Some((r.addr, r.port));
                    slot_of[i] = s;
                }
            }
        }
        for (i, r) in cfg.reals.iter().enumerate() {
            if slot_of[i] == usize::MAX {
                // Prefer slots never used before, so that a slot's old flows
                // do not land on a newcomer.
                let prev_used = |s: usize| previous.is_some_and(|p| p.slot_ids[s].is_some());
                let free = (0..MAX_REALS as usize)
                    .find(|s| slot_ids[*s].is_none() && !prev_used(*s))
                    .or_else(|| (0..MAX_REALS as usize).find(|s| slot_ids[*s].is_none()));
                let Some(s) = free else {
                    return Err(ConfigError::Service {
                        service: cfg.name(),
                        field: "reals",
                        reason: format!("no free real server slot (at most {MAX_REALS})"),
                    });
                };
                slot_ids[s] = Some((r.addr, r.port));
                slot_of[i] = s;
            }
        }
        let mut reals = vec![
            RealServer {
                state: REAL_DOWN,
                ..Default::default()
            };
            MAX_REALS as usize
        ];
        for (i, r) in cfg.reals.iter().enumerate() {
            reals[slot_of[i]] = r.raw();
        }
        let n_reals = slot_ids
            .iter()
            .rposition(|s| s.is_some())
            .map_or(0, |p| p + 1) as u32;

        let weights: Vec<u32> = (0..n_reals as usize)
            .map(|s| {
                if slot_ids[s].is_some() {
                    reals[s].weight
                } else {
                    0
                }
            })
            .collect();
        let mut wrr = vec![tables::NO_REAL; WRR_SEQ_MAX as usize];
        let mut shdh = vec![tables::NO_REAL; SHDH_BUCKETS as usize];
        let mut mh = Vec::new();
        let mut table_len = 0;
        match cfg.scheduler {
            Scheduler::Wrr => {
                let seq = tables::wrr_sequence(&weights);
                table_len = seq.len() as u32;
                wrr[..seq.len()].copy_from_slice(&seq);
            }
            Scheduler::Sh | Scheduler::Dh => {
                let slots: Vec<Option<u32>> = (0..n_reals as usize)
                    .map(|s| slot_ids[s].map(|_| reals[s].weight))
                    .collect();
                shdh = tables::shdh_table(&slots);
                table_len = SHDH_BUCKETS;
            }
            Scheduler::Mh => {
                let live: Vec<MaglevReal> = (0..n_reals as usize)
                    .filter(|s| slot_ids[*s].is_some())
                    .map(|s| MaglevReal {
                        slot: s as u32,
                        addr: addr16(slot_ids[s].map_or(cfg.vip, |x| x.0)),
                        port: reals[s].port,
                        weight: reals[s].weight,
                    })
                    .collect();
                mh = tables::maglev_table(&live, cfg.mh_size);
                table_len = cfg.mh_size;
            }
            _ => {}
        }
        let mut service = cfg.raw(id, mh_slot);
        service.n_reals = n_reals;
        service.table_len = table_len;
        let reset_sched = previous.is_none_or(|p| {
            p.service.scheduler != service.scheduler || p.service.table_len != table_len
        });
        let sched = SchedState {
            cursor: if cfg.scheduler == Scheduler::Rr {
                u32::MAX
            } else {
                0
            },
            _pad: 0,
        };
        Ok(ServiceImage {
            key: cfg.key(),
            service,
            reals,
            slot_ids,
            wrr,
            shdh,
            mh,
            reset_sched,
            fresh: previous.is_none(),
            sched,
        })
    }

    /// Slot of the real server `addr:port`, if it is configured.
    pub fn slot_of(&self, addr: IpAddr, port: u16) -> Option<u32> {
        self.slot_ids
            .iter()
            .position(|x| *x == Some((addr, port)))
            .map(|s| s as u32)
    }
}
