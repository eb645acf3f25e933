//! Reading and zeroing what the program counts: packets per reason, per
//! service and per real server (per-CPU arrays, summed here), and the
//! active-connection count of each real server.
//!
//! Counts are the kernel's; this module only reads them, zeroes them for
//! tests, and sets active-connection counts on request. Active
//! connections have two halves with one writer each: the program's
//! (`REAL_ACTIVE`, never written here) and the host's adjustment
//! (`REAL_ACTIVE_ADJ`, written only here), summed by
//! `tandem_common::active_count`.

use tandem_common::*;

use crate::{Dataplane, Error, error::map_err};

impl Dataplane {
    /// Per-reason packet counts, summed over CPUs.
    pub fn reasons(&self) -> Result<Vec<(Reason, u64)>, Error> {
        Reason::ALL
            .iter()
            .map(|r| {
                let v = self
                    .maps.counters.reasons
                    .get(&(*r as u32), 0)
                    .map_err(map_err(maps::REASONS))?;
                Ok((*r, v.iter().sum()))
            })
            .collect()
    }

    pub fn reason(&self, r: Reason) -> Result<u64, Error> {
        let v = self
            .maps.counters.reasons
            .get(&(r as u32), 0)
            .map_err(map_err(maps::REASONS))?;
        Ok(v.iter().sum())
    }

    fn sum(v: &[Counters]) -> Counters {
        v.iter().fold(Counters::default(), |a, c| Counters {
            packets: a.packets + c.packets,
            bytes: a.bytes + c.bytes,
            new_flows: a.new_flows + c.new_flows,
            _pad: 0,
        })
    }

    /// Counters of service `id`, summed over CPUs.
    pub fn service_counters(&self, id: u32) -> Result<Counters, Error> {
        let v = self
            .maps.counters.service_stats
            .get(&id, 0)
            .map_err(map_err(maps::SERVICE_STATS))?;
        Ok(Self::sum(&v))
    }

    /// Counters of real server `slot` of service `id`, summed over CPUs.
    pub fn real_counters(&self, id: u32, slot: u32) -> Result<Counters, Error> {
        let v = self
            .maps.counters.real_stats
            .get(&(id * MAX_REALS + slot), 0)
            .map_err(map_err(maps::REAL_STATS))?;
        Ok(Self::sum(&v))
    }

    /// Active connections of real server `slot` of service `id`, as the
    /// lc-family schedulers see them: the program's count plus the host's
    /// adjustment (`tandem_common::active_count`).
    pub fn active_conns(&self, id: u32, slot: u32) -> Result<u64, Error> {
        let i = id * MAX_REALS + slot;
        Ok(active_count(self.active_kernel(i)?, self.active_adj(i)?))
    }

    /// Sets an active-connection count (for tests of lc/wlc and for the
    /// control plane's periodic resync). Only the host's adjustment is
    /// written, to what makes the sum `n`: flows the program counts or
    /// ends meanwhile change it from there.
    pub fn set_active_conns(&mut self, id: u32, slot: u32, n: u64) -> Result<(), Error> {
        let i = id * MAX_REALS + slot;
        let kernel = self.active_kernel(i)?;
        self.set_active_adj(i, (n as i64).wrapping_sub(kernel as i64))
    }

    /// Counts one active connection more (`up`) or one fewer on real
    /// server `slot` of service `id`: a flow or call the host wrote or
    /// removed. Only the host's half (`REAL_ACTIVE_ADJ`) is written, so
    /// that the program's concurrent atomic adds to its own half are never
    /// lost. A count already at zero stays at zero.
    pub(crate) fn count_active(&mut self, id: u32, slot: u32, up: bool) -> Result<(), Error> {
        let i = id * MAX_REALS + slot;
        let adj = self.active_adj(i)?;
        if up {
            self.set_active_adj(i, adj.wrapping_add(1))
        } else if active_count(self.active_kernel(i)?, adj) > 0 {
            self.set_active_adj(i, adj.wrapping_sub(1))
        } else {
            Ok(())
        }
    }

    /// Makes every active-connection count zero (the host's half cancels
    /// the program's).
    pub(crate) fn zero_active_conns(&mut self) -> Result<(), Error> {
        for i in 0..MAX_REAL_SLOTS {
            let kernel = self.active_kernel(i)?;
            self.set_active_adj(i, (kernel as i64).wrapping_neg())?;
        }
        Ok(())
    }

    /// The program's half of slot `i` (`REAL_ACTIVE`, read only).
    fn active_kernel(&self, i: u32) -> Result<u64, Error> {
        self.maps.counters.active.get(&i, 0).map_err(map_err(maps::REAL_ACTIVE))
    }

    /// The host's half of slot `i` (`REAL_ACTIVE_ADJ`).
    fn active_adj(&self, i: u32) -> Result<i64, Error> {
        self.maps.counters.active_adj.get(&i, 0).map_err(map_err(maps::REAL_ACTIVE_ADJ))
    }

    fn set_active_adj(&mut self, i: u32, adj: i64) -> Result<(), Error> {
        self.maps.counters.active_adj.set(i, adj, 0).map_err(map_err(maps::REAL_ACTIVE_ADJ))
    }

    /// Zeroes every counter (reasons, services, real servers).
    pub fn reset_counters(&mut self) -> Result<(), Error> {
        let n = aya::util::nr_cpus().map_err(|(_, e)| Error::Map {
            name: maps::REASONS,
            source: aya::maps::MapError::IoError(e),
        })?;
        for r in 0..REASON_COUNT {
            let v = aya::maps::PerCpuValues::try_from(vec![0u64; n]).map_err(|e| Error::Map {
                name: maps::REASONS,
                source: e.into(),
            })?;
            self.maps.counters.reasons
                .set(r, v, 0)
                .map_err(map_err(maps::REASONS))?;
        }
        for i in 0..MAX_SERVICES {
            let v =
                aya::maps::PerCpuValues::try_from(vec![Counters::default(); n]).map_err(|e| {
                    Error::Map {
                        name: maps::SERVICE_STATS,
                        source: e.into(),
                    }
                })?;
            self.maps.counters.service_stats
                .set(i, v, 0)
                .map_err(map_err(maps::SERVICE_STATS))?;
        }
        for i in 0..MAX_REAL_SLOTS {
            let v =
                aya::maps::PerCpuValues::try_from(vec![Counters::default(); n]).map_err(|e| {
                    Error::Map {
                        name: maps::REAL_STATS,
                        source: e.into(),
                    }
                })?;
            self.maps.counters.real_stats
                .set(i, v, 0)
                .map_err(map_err(maps::REAL_STATS))?;
        }
        Ok(())
    }

    /// Sum of all per-reason counters (to check a benchmark's path).
    pub fn total_reasons(&self) -> Result<u64, Error> {
        Ok(self.reasons()?.iter().map(|(_, n)| n).sum())
    }
}
