//! The dataplane's tables kept in bpffs across a restart of the daemon, so
//! that a new process adopts them instead of starting empty: the flows,
//! calls, services, heartbeat records and counters the old process's
//! program used stay in use, and the new program replaces the old one in
//! the same pinned XDP link (`pin`), atomically, without a packet seeing
//! an interface with no program or empty tables (Katran keeps its maps
//! across program reloads the same way).
//!
//! Tables are adopted only when their layout is this build's: every map
//! of the object is pinned under `<dir>/netns<inode>-maps-<layout>/`, where
//! `<layout>` hashes the object's map definitions (type, key and value
//! sizes, entries after the load-time sizes, flags), [`LAYOUT_VERSION`]
//! and the source text of the shared ABI types. A build or configuration
//! with another layout finds no directory of its own: it creates fresh
//! tables (and the caller announces a switchover), and the other layout's
//! directory is removed once nothing uses it ([`Dataplane::remove_superseded`]).
//!
//! The daemon's own hand-over (its role and epoch, the grace it announced)
//! lives beside them in a one-entry array of a fixed layout
//! (`<dir>/netns<inode>-handoff`, [`Handoff`]), written by the stopping
//! process and read once by the next.
//!
//! Pins of network namespaces that no longer exist are orphans (a lab's
//! killed daemons): [`prune_orphans`] removes them.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use aya::maps::{Array, Map, MapData};
use tandem_common::*;

use crate::{Dataplane, Error, LoadOptions, ServiceImage, error::map_err, loader::OBJECT};

/// Bumped when the meaning of a table changes without its sizes doing so.
pub const LAYOUT_VERSION: u32 = 1;

/// The shared ABI types, whose text is part of the layout: an edit there
/// (even a comment) makes a new layout, never a silent reinterpretation.
const ABI_SOURCES: &[&str] = &[
    include_str!("../common/src/abi/mod.rs"),
    include_str!("../common/src/abi/call.rs"),
    include_str!("../common/src/abi/counters.rs"),
    include_str!("../common/src/abi/flow.rs"),
    include_str!("../common/src/abi/heartbeat.rs"),
    include_str!("../common/src/abi/names.rs"),
    include_str!("../common/src/abi/service.rs"),
    include_str!("../common/src/abi/settings.rs"),
];

fn fnv1a(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x0100_0000_01b3);
    }
}

/// The object's maps (name and definition), without the data sections.
fn object_maps() -> Result<Vec<(String, aya_obj::Map)>, Error> {
    let obj = aya_obj::Object::parse(OBJECT).map_err(|e| Error::Pin {
        path: PathBuf::from("(the XDP object)"),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut maps: Vec<(String, aya_obj::Map)> =
        obj.maps.into_iter().filter(|(n, _)| !n.starts_with('.')).collect();
    maps.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(maps)
}

/// The object's map names (the pins of a table directory).
pub fn map_names() -> Result<Vec<String>, Error> {
    Ok(object_maps()?.into_iter().map(|(n, _)| n).collect())
}

/// The layout of the tables a load with these sizes creates.
pub fn layout_hash(options: LoadOptions, call_entries: u32) -> Result<u64, Error> {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    fnv1a(&mut h, &LAYOUT_VERSION.to_le_bytes());
    for src in ABI_SOURCES {
        fnv1a(&mut h, src.as_bytes());
    }
    for (name, m) in object_maps()? {
        let entries = match name.as_str() {
            maps::FLOWS => options.flow_entries,
            maps::NAT_REVERSE => options.nat_entries,
            maps::CALLS => call_entries.max(1),
            _ => m.max_entries(),
        };
        fnv1a(&mut h, name.as_bytes());
        for v in [m.map_type(), m.key_size(), m.value_size(), entries, m.map_flags()] {
            fnv1a(&mut h, &v.to_le_bytes());
        }
    }
    Ok(h)
}

/// The directory of the tables of layout `layout` in the network
/// namespace of inode `netns`.
pub fn tables_dir(dir: &Path, netns: u64, layout: u64) -> PathBuf {
    dir.join(format!("netns{netns}-maps-{layout:016x}"))
}

fn handoff_path(dir: &Path, netns: u64) -> PathBuf {
    dir.join(format!("netns{netns}-handoff"))
}

/// What a pinned load found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tables {
    /// The tables of a predecessor with this layout, now in use.
    Adopted { dir: PathBuf },
    /// Fresh tables, pinned at `dir`; `superseded` are other layouts'
    /// directories of this network namespace (a predecessor of another
    /// build or table size), removed by [`Dataplane::remove_superseded`].
    Created { dir: PathBuf, superseded: Vec<PathBuf> },
    /// Not pinned (no bpffs, or no network namespace inode), and why.
    NotPinned { reason: String },
}

/// What a stopping daemon leaves for its successor (fixed layout, 64
/// bytes: magic "TNDH", version 1, then the fields little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handoff {
    /// It was active (else standby or anything else).
    pub active: bool,
    pub epoch: u64,
    /// CLOCK_MONOTONIC ns until which the peer was told to wait.
    pub until_ns: u64,
    /// The layout of the tables it left.
    pub layout: u64,
    /// Its process id.
    pub pid: u32,
}

const HANDOFF_MAGIC: [u8; 4] = *b"TNDH";
const HANDOFF_LEN: usize = 64;

impl Handoff {
    pub fn to_bytes(&self) -> [u8; HANDOFF_LEN] {
        let mut b = [0u8; HANDOFF_LEN];
        b[0..4].copy_from_slice(&HANDOFF_MAGIC);
        b[4] = 1;
        b[5] = self.active as u8;
        b[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        b[16..24].copy_from_slice(&self.until_ns.to_le_bytes());
        b[24..32].copy_from_slice(&self.layout.to_le_bytes());
        b[32..36].copy_from_slice(&self.pid.to_le_bytes());
        b
    }

    /// `None` for an empty (taken) or foreign entry.
    pub fn from_bytes(b: &[u8; HANDOFF_LEN]) -> Option<Handoff> {
        if b[0..4] != HANDOFF_MAGIC || b[4] != 1 {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(Handoff {
            active: b[5] != 0,
            epoch: u64_at(8),
            until_ns: u64_at(16),
            layout: u64_at(24),
            pid: u32::from_le_bytes(b[32..36].try_into().expect("4 bytes")),
        })
    }
}

fn pin_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Pin {
        path: path.to_path_buf(),
        source: std::io::Error::other(what.to_string()),
    }
}

/// The hand-over array of this network namespace, opened or created.
fn handoff_map(dir: &Path) -> Result<Array<MapData, [u8; HANDOFF_LEN]>, Error> {
    let netns = crate::pin::netns_inode().map_err(|e| pin_error(dir, e))?;
    let path = handoff_path(dir, netns);
    let data = match MapData::from_pin(&path) {
        Ok(d) => d,
        Err(_) => {
            let obj = aya_obj::Map::new_from_params(
                aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_ARRAY as u32,
                4,
                HANDOFF_LEN as u32,
                1,
                0,
            );
            let d = MapData::create(obj, "tandem_handoff", None).map_err(|e| pin_error(&path, e))?;
            d.pin(&path).map_err(|e| pin_error(&path, e))?;
            d
        }
    };
    Array::try_from(Map::Array(data)).map_err(|e| pin_error(&path, e))
}

/// Leaves `h` for the next process under `dir`.
pub fn write_handoff(dir: &Path, h: &Handoff) -> Result<(), Error> {
    handoff_map(dir)?
        .set(0, h.to_bytes(), 0)
        .map_err(|e| pin_error(dir, e))
}

/// Takes what a predecessor left under `dir` (once: the entry is
/// cleared), if anything.
pub fn take_handoff(dir: &Path) -> Result<Option<Handoff>, Error> {
    let netns = crate::pin::netns_inode().map_err(|e| pin_error(dir, e))?;
    if !handoff_path(dir, netns).exists() {
        return Ok(None);
    }
    let mut m = handoff_map(dir)?;
    let b = m.get(&0, 0).map_err(|e| pin_error(dir, e))?;
    m.set(0, [0u8; HANDOFF_LEN], 0).map_err(|e| pin_error(dir, e))?;
    Ok(Handoff::from_bytes(&b))
}

/// Fences the dispatcher that runs on this network namespace's tables of
/// layout `layout` (a predecessor of another build or table size, whose
/// tables cannot be adopted): its dead-man entry is written tripped, so it
/// stops answering for the VIPs and dispatching at once, before the peer
/// is told to take over. Only when that entry has the size of this build's
/// `DeadMan` (else it says so and changes nothing).
pub fn fence_tables(dir: &Path, layout: u64) -> Result<(), Error> {
    let netns = crate::pin::netns_inode().map_err(|e| pin_error(dir, e))?;
    let path = tables_dir(dir, netns, layout).join(maps::DEAD_MAN);
    let data = MapData::from_pin(&path).map_err(|e| pin_error(&path, e))?;
    let size = data.info().map_err(|e| pin_error(&path, e))?.value_size() as usize;
    if size != core::mem::size_of::<DeadMan>() {
        return Err(pin_error(&path, format!("a dead-man entry of {size} bytes, not this build's")));
    }
    let mut a: Array<MapData, DeadMan> = Array::try_from(Map::Array(data)).map_err(|e| pin_error(&path, e))?;
    let now = crate::clock::monotonic_ns();
    let fenced = DeadMan { stamp_ns: 0, budget_ns: 1, tripped_ns: now.max(1), tgid: 0, exited: 1 };
    a.set(0, fenced, 0).map_err(|e| pin_error(&path, e))
}

/// The inodes of the network namespaces that exist: those of every
/// process and task, and those bound to a path (`ip netns`, containers).
fn live_netns() -> HashSet<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut live = HashSet::new();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let path = p.path();
            if let Ok(m) = std::fs::metadata(path.join("ns/net")) {
                live.insert(m.ino());
            }
            if let Ok(tasks) = std::fs::read_dir(path.join("task")) {
                for t in tasks.flatten() {
                    if let Ok(m) = std::fs::metadata(t.path().join("ns/net")) {
                        live.insert(m.ino());
                    }
                }
            }
        }
    }
    // Bind mounts of namespaces: nsfs entries, their root `net:[inode]`.
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in info.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let fstype = f.iter().position(|x| *x == "-").and_then(|i| f.get(i + 1));
            if fstype == Some(&"nsfs")
                && let Some(ino) = f
                    .get(3)
                    .and_then(|r| r.strip_prefix("net:["))
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|r| r.parse().ok())
            {
                live.insert(ino);
            }
        }
    }
    live
}

/// The network namespace inode a pin's name starts with (`netns<inode>-`).
fn pin_netns(name: &str) -> Option<u64> {
    name.strip_prefix("netns")?.split('-').next()?.parse().ok()
}

/// Removes the pins under `dir` (links, tables, hand-overs) of network
/// namespaces that no longer exist; returns what it removed.
pub fn prune_orphans(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let live = live_netns();
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(ns) = pin_netns(&name) else { continue };
        if live.contains(&ns) {
            continue;
        }
        let path = e.path();
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

impl Dataplane {
    /// [`Dataplane::load_entry_with_calls`] (the stages are
    /// [`Dataplane::load_stages`]'s) with every table pinned under `dir`
    /// (see the module doc): a predecessor's tables of the same layout
    /// are adopted as they are — services, settings and tables are not
    /// reset, and the services they hold become this dataplane's written
    /// images, so that writing the same services again changes nothing.
    pub fn load_pinned(
        options: LoadOptions,
        call_entries: u32,
        dir: &Path,
    ) -> Result<(Dataplane, Tables), Error> {
        let netns = match crate::pin::netns_inode() {
            Ok(n) => n,
            Err(e) => {
                let dp = Dataplane::load_entry_with_calls(options, call_entries)?;
                return Ok((dp, Tables::NotPinned { reason: format!("network namespace inode: {e}") }));
            }
        };
        if let Err(reason) = crate::pin::ensure_bpffs(dir) {
            let dp = Dataplane::load_entry_with_calls(options, call_entries)?;
            return Ok((dp, Tables::NotPinned { reason }));
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Pin { path: dir.to_path_buf(), source })?;
        let layout = layout_hash(options, call_entries)?;
        let tables = tables_dir(dir, netns, layout);
        let names = map_names()?;
        let complete = names.iter().all(|n| tables.join(n).exists());
        if tables.exists() && !complete {
            // A load that failed half-way: nothing of it is worth keeping.
            std::fs::remove_dir_all(&tables).map_err(|source| Error::Pin { path: tables.clone(), source })?;
        }
        std::fs::create_dir_all(&tables).map_err(|source| Error::Pin { path: tables.clone(), source })?;
        let pins: Vec<(String, PathBuf)> = names.iter().map(|n| (n.clone(), tables.join(n))).collect();
        let mut dp = Dataplane::load_object(options, call_entries, &pins, complete)?;
        dp.tables = Some(tables.clone());
        dp.tables_adopted = complete;
        if complete {
            dp.adopt_services()?;
            return Ok((dp, Tables::Adopted { dir: tables }));
        }
        let prefix = format!("netns{netns}-maps-");
        let mut superseded: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| Error::Pin { path: dir.to_path_buf(), source })?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix) && e.path() != tables)
            .map(|e| e.path())
            .collect();
        superseded.sort();
        Ok((dp, Tables::Created { dir: tables, superseded }))
    }

    /// Removes other layouts' table directories (after the new program
    /// replaced the one that used them).
    pub fn remove_superseded(&self, dirs: &[PathBuf]) -> Result<(), Error> {
        for d in dirs {
            std::fs::remove_dir_all(d).map_err(|source| Error::Pin { path: d.clone(), source })?;
        }
        Ok(())
    }

    /// Takes the services the adopted tables hold as this dataplane's own
    /// written images (ids, Maglev slots, real-server slots), so that the
    /// daemon's first writes keep every id and slot the flows refer to.
    fn adopt_services(&mut self) -> Result<(), Error> {
        let m = &self.maps.services;
        let mut found = HashMap::new();
        for id in 0..MAX_SERVICES {
            let service = m.conf.get(&id, 0).map_err(map_err(maps::SERVICE_CONF))?;
            if service.id != id {
                continue;
            }
            let mut reals = Vec::with_capacity(MAX_REALS as usize);
            let mut slot_ids = Vec::with_capacity(MAX_REALS as usize);
            for slot in 0..MAX_REALS {
                let r = m.reals.get(&(id * MAX_REALS + slot), 0).map_err(map_err(maps::REALS))?;
                let used = r.addr != [0; 16] || r.port != 0;
                slot_ids.push(used.then(|| (crate::records::addr_of(&r.addr), r.port)));
                reals.push(r);
            }
            let image = ServiceImage {
                key: service.key,
                service,
                reals,
                slot_ids,
                wrr: Vec::new(),
                shdh: Vec::new(),
                // Unknown here: an mh table is written again whole, with
                // the values it holds (each entry's write is atomic).
                mh: Vec::new(),
                reset_sched: false,
                fresh: false,
                sched: Default::default(),
            };
            found.insert(service.key, image);
        }
        for (key, img) in found {
            if img.service.scheduler == Scheduler::Mh as u8 && img.service.mh_slot < MH_SLOTS {
                self.mh_slots[img.service.mh_slot as usize] = Some(key);
            }
            self.services.insert(key, img);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handoff_reads_back_and_an_empty_entry_is_none() {
        let h = Handoff { active: true, epoch: 7, until_ns: 123, layout: 0xdead_beef, pid: 42 };
        assert_eq!(Handoff::from_bytes(&h.to_bytes()), Some(h));
        assert_eq!(Handoff::from_bytes(&[0; HANDOFF_LEN]), None);
    }

    #[test]
    fn the_layout_changes_with_the_table_sizes() {
        let a = layout_hash(LoadOptions::default(), DEFAULT_CALL_ENTRIES).unwrap();
        let b = layout_hash(LoadOptions { flow_entries: 1024, ..LoadOptions::default() }, DEFAULT_CALL_ENTRIES).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, layout_hash(LoadOptions::default(), DEFAULT_CALL_ENTRIES).unwrap());
        assert!(map_names().unwrap().iter().any(|n| n == maps::FLOWS));
    }

    #[test]
    fn pin_names_tell_their_network_namespace() {
        assert_eq!(pin_netns("netns4026531840-if7-dispatch"), Some(4026531840));
        assert_eq!(pin_netns("netns12-maps-00ff"), Some(12));
        assert_eq!(pin_netns("something-else"), None);
    }
}
