//! Reading and zeroing what the program counts: packets per reason, per
//! service and per real server (per-CPU arrays, summed here), and the
//! active-connection count of each real server.
//!
//! Counts are the kernel's; this module only reads them, zeroes them for
//! tests, and sets active-connection counts on request.

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

    /// Active connections the kernel counts for real server `slot` of service `id`.
    pub fn active_conns(&self, id: u32, slot: u32) -> Result<u64, Error> {
        self.maps.counters.active
            .get(&(id * MAX_REALS + slot), 0)
            .map_err(map_err(maps::REAL_ACTIVE))
    }

    /// Sets an active-connection count (for tests of lc/wlc and for the
    /// control plane's periodic resync).
    pub fn set_active_conns(&mut self, id: u32, slot: u32, n: u64) -> Result<(), Error> {
        self.maps.counters.active
            .set(id * MAX_REALS + slot, n, 0)
            .map_err(map_err(maps::REAL_ACTIVE))
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
