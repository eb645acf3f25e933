//! Walking the connection table (`FLOWS`) and the SIP call table
//! (`CALLS`) a batch at a time, with `BPF_MAP_LOOKUP_BATCH`: one system
//! call copies out up to a batch of entries, where reading entry by entry
//! (`get_next_key` + `lookup`) takes two per entry — the difference
//! between milliseconds and seconds for a million-entry table.
//!
//! A [`TableWalk`] owns fixed buffers, reused from batch to batch, and
//! where the walk stands ([`WalkPosition`], the kernel's bucket cursor),
//! so that a caller can do other work between batches, or stop and resume
//! the walk later from its position (a later request). It only reads:
//! entries that change while a walk is under way may be seen once, twice
//! or not at all, as with any walk of a live hash table, and it does not
//! touch their LRU state.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use aya::{Pod, maps::IterableMap};
use tandem_common::*;

use crate::{
    Dataplane, Error,
    batch::{BPF_MAP_LOOKUP_BATCH, BatchAttr},
};

/// Where a walk of a hash table stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkPosition {
    /// Not started: the next batch is the table's first.
    Start,
    /// The next batch starts at this bucket of the kernel's hash table
    /// (an opaque cursor: a bucket past the end ends the walk).
    Bucket(u32),
    /// The walk has seen the whole table.
    End,
}

/// Entries of one table, read a batch at a time (see the module's doc).
pub struct TableWalk<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
    /// Entries of the last batch in `keys` and `values`.
    len: usize,
    position: WalkPosition,
}

/// Most entries a batch buffer grows to when one bucket of the table
/// holds more than the batch (the kernel then refuses with ENOSPC).
const MAX_BATCH: usize = 1 << 16;

impl<K: Pod + Default, V: Pod + Default> TableWalk<K, V> {
    /// A walk from `from` that reads up to `batch` entries per call
    /// (at least 1).
    pub fn new(batch: usize, from: WalkPosition) -> TableWalk<K, V> {
        let n = batch.clamp(1, MAX_BATCH);
        TableWalk {
            keys: vec![K::default(); n],
            values: vec![V::default(); n],
            len: 0,
            position: from,
        }
    }

    /// Reads up to `batch` entries per call from now on (at least 1):
    /// small batches while each entry costs its caller much, large ones
    /// while it costs little.
    pub fn set_batch(&mut self, batch: usize) {
        let n = batch.clamp(1, MAX_BATCH);
        self.keys.resize(n, K::default());
        self.values.resize(n, V::default());
        self.len = 0;
    }

    /// Where the next batch starts ([`WalkPosition::End`]: the walk is over).
    pub fn position(&self) -> WalkPosition {
        self.position
    }

    pub fn is_done(&self) -> bool {
        self.position == WalkPosition::End
    }

    /// The entries of the last batch.
    pub fn entries(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.keys[..self.len].iter().zip(&self.values[..self.len])
    }

    /// Reads the next batch of the map `fd` into the buffers; returns the
    /// number of entries read (0 at the end).
    fn step(&mut self, fd: RawFd, name: &'static str) -> Result<usize, Error> {
        self.len = 0;
        let start = match self.position {
            WalkPosition::End => return Ok(0),
            WalkPosition::Start => None,
            WalkPosition::Bucket(b) => Some(b),
        };
        loop {
            let in_batch: u32 = start.unwrap_or(0);
            let mut out_batch: u32 = 0;
            let mut attr = BatchAttr {
                in_batch: if start.is_some() {
                    &in_batch as *const u32 as u64
                } else {
                    0
                },
                out_batch: &mut out_batch as *mut u32 as u64,
                keys: self.keys.as_mut_ptr() as u64,
                values: self.values.as_mut_ptr() as u64,
                count: self.keys.len() as u32,
                map_fd: fd as u32,
                ..BatchAttr::default()
            };
            // SAFETY: `keys` and `values` have room for `count` entries of
            // the map's key and value sizes (the handles' types, checked
            // by aya when it took the map); `in_batch` and `out_batch`
            // are u32 (the hash tables' cursor) and outlive the call.
            let err = unsafe { crate::batch::call(BPF_MAP_LOOKUP_BATCH, &mut attr) };
            match err.as_ref().and_then(std::io::Error::raw_os_error) {
                None => {
                    self.len = (attr.count as usize).min(self.keys.len());
                    self.position = WalkPosition::Bucket(out_batch);
                    return Ok(self.len);
                }
                // The end of the table, with what the last buckets held.
                Some(libc::ENOENT) => {
                    self.len = (attr.count as usize).min(self.keys.len());
                    self.position = WalkPosition::End;
                    return Ok(self.len);
                }
                // One bucket holds more entries than the batch: a larger one.
                Some(libc::ENOSPC) if self.keys.len() < MAX_BATCH => {
                    let n = (self.keys.len() * 2).min(MAX_BATCH);
                    self.keys.resize(n, K::default());
                    self.values.resize(n, V::default());
                }
                _ => {
                    return Err(crate::batch::map_error(
                        name,
                        "bpf_map_lookup_batch",
                        err.unwrap_or_else(|| std::io::Error::other("no errno")),
                    ));
                }
            }
        }
    }
}

impl Dataplane {
    /// Reads the next batch of the connection table into `walk`; returns
    /// the number of entries read (0 once the walk is over).
    pub fn next_flows(&self, walk: &mut TableWalk<FlowKey, FlowValue>) -> Result<usize, Error> {
        let fd = self.maps.conns.flows.map().fd().as_fd().as_raw_fd();
        walk.step(fd, maps::FLOWS)
    }

    /// Reads the next batch of the SIP call table into `walk`.
    pub fn next_calls(&self, walk: &mut TableWalk<CallKey, CallValue>) -> Result<usize, Error> {
        let fd = self.maps.conns.calls.map().fd().as_fd().as_raw_fd();
        walk.step(fd, maps::CALLS)
    }

    /// The node-wide settings as the program reads them (`SETTINGS`):
    /// the idle timeouts.
    pub fn settings(&self) -> Result<Settings, Error> {
        self.maps
            .node
            .settings
            .get(&0, 0)
            .map_err(crate::error::map_err(maps::SETTINGS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_walk_reads_nothing_and_a_batch_is_at_least_one() {
        let mut w: TableWalk<FlowKey, FlowValue> = TableWalk::new(0, WalkPosition::End);
        assert_eq!(w.step(-1, maps::FLOWS).expect("no call made"), 0);
        assert!(w.is_done());
        assert_eq!(w.keys.len(), 1);
        assert_eq!(w.entries().count(), 0);
    }
}
