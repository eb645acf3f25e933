//! The schedulers' view of the model's maps (`tandem_common::sched::SchedView`
//! over plain memory), as the kernel's `KernelView` is over its maps.

use std::cell::Cell;

use tandem_common::{
    sched::{self, SchedView},
    *,
};

use super::Model;

pub(super) struct View<'a> {
    pub(super) m: &'a Model,
    pub(super) id: u32,
    pub(super) mh_slot: u32,
    pub(super) cursor: Cell<u32>,
    pub(super) least: std::cell::UnsafeCell<sched::LeastScratch>,
}

impl SchedView for View<'_> {
    fn real(&self, idx: u32) -> Option<&RealServer> {
        if idx >= MAX_REALS {
            return None;
        }
        self.m.reals.get((self.id * MAX_REALS + idx) as usize)
    }
    fn active(&self, idx: u32) -> u32 {
        if idx >= MAX_REALS {
            return 0;
        }
        self.m.active_conns(self.id, idx).min(u32::MAX as u64) as u32
    }
    fn reported(&self, idx: u32) -> RealLoad {
        if idx >= MAX_REALS {
            return RealLoad::default();
        }
        self.m.real_load[(self.id * MAX_REALS + idx) as usize]
    }
    fn wrr_entry(&self, pos: u32) -> Option<u32> {
        if pos >= WRR_SEQ_MAX {
            return None;
        }
        Some(
            self.m.wrr[self.id as usize]
                .get(pos as usize)
                .copied()
                .unwrap_or(0),
        )
    }
    fn shdh_entry(&self, pos: u32) -> Option<u32> {
        if pos >= SHDH_BUCKETS {
            return None;
        }
        Some(
            self.m.shdh[self.id as usize]
                .get(pos as usize)
                .copied()
                .unwrap_or(0),
        )
    }
    fn mh_entry(&self, pos: u32) -> Option<u32> {
        if pos >= MH_MAX_SIZE || self.mh_slot >= MH_SLOTS {
            return None;
        }
        Some(
            self.m.mh[self.mh_slot as usize]
                .get(pos as usize)
                .copied()
                .unwrap_or(0),
        )
    }
    fn cursor(&self) -> u32 {
        self.cursor.get()
    }
    fn set_cursor(&self, v: u32) {
        self.cursor.set(v)
    }
    fn least_scratch(&self) -> *mut sched::LeastScratch {
        self.least.get()
    }
    fn repeat<F: FnMut(u32) -> bool>(&self, count: u32, mut body: F) {
        for k in 0..count {
            if body(k) {
                break;
            }
        }
    }
}
