//! The kernel's batch map commands (`BPF_MAP_LOOKUP_BATCH`,
//! `BPF_MAP_UPDATE_BATCH`, Linux 5.6): one system call moves many entries
//! where entry-by-entry access costs one or two per entry. aya has no
//! binding for them, so this module makes the call itself.
//!
//! The reader ([`crate::TableWalk`]) walks the hash tables; the writer,
//! [`update_array`], writes the scheduler tables: a Maglev table is 65,537
//! entries, about 40 ms one call at a time and 2 ms in one batch — the
//! difference between a reload that delays heartbeats and one that does
//! not.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use aya::{
    Pod,
    maps::{Array, IterableMap, MapData},
};

use crate::Error;

/// `BPF_MAP_LOOKUP_BATCH` of `enum bpf_cmd` (include/uapi/linux/bpf.h).
pub(crate) const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// `BPF_MAP_UPDATE_BATCH` of `enum bpf_cmd`.
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// The `batch` member of `union bpf_attr`, as the kernel reads it for
/// `BPF_MAP_*_BATCH`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct BatchAttr {
    /// Where to start: a pointer to the previous call's `out_batch`, or 0 for the first call.
    pub in_batch: u64,
    /// Where the kernel writes the position to continue from.
    pub out_batch: u64,
    pub keys: u64,
    pub values: u64,
    /// In: room for (or number of) entries; out: entries done.
    pub count: u32,
    pub map_fd: u32,
    pub elem_flags: u64,
    pub flags: u64,
}

/// Makes the batch call `cmd` with `attr`; the kernel's error, if any.
///
/// # Safety
/// `attr`'s pointers must be valid for the command and the map: `keys`
/// and `values` hold `count` entries of the map's key and value sizes,
/// `in_batch` and `out_batch` are 0 or point to the map's cursor type.
pub(crate) unsafe fn call(cmd: libc::c_long, attr: &mut BatchAttr) -> Option<std::io::Error> {
    // SAFETY: the caller's contract above; the size passed is the
    // structure's.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            std::mem::size_of::<BatchAttr>() as u32,
        )
    };
    (r < 0).then(std::io::Error::last_os_error)
}

/// The error of a batch call on map `name`.
pub(crate) fn map_error(name: &'static str, call: &'static str, io_error: std::io::Error) -> Error {
    Error::Map {
        name,
        source: aya::sys::SyscallError { call, io_error }.into(),
    }
}

/// Writes `values[i]` at index `keys[i]` of the array map `map` (named
/// `name` in errors), in one system call. An error names the map and
/// how many entries the kernel had written before it.
pub(crate) fn update_array<V: Pod>(
    map: &Array<MapData, V>,
    name: &'static str,
    keys: &[u32],
    values: &[V],
) -> Result<(), Error> {
    assert_eq!(keys.len(), values.len(), "one value per key");
    if keys.is_empty() {
        return Ok(());
    }
    let fd: RawFd = map.map().fd().as_fd().as_raw_fd();
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: keys.len() as u32,
        map_fd: fd as u32,
        ..BatchAttr::default()
    };
    // SAFETY: `keys` holds `count` u32 (an array map's key) and `values`
    // `count` values of the map's value type (checked by aya when it took
    // the map); no cursor is used by an update.
    match unsafe { call(BPF_MAP_UPDATE_BATCH, &mut attr) } {
        None => Ok(()),
        Some(e) => Err(map_error(
            name,
            "bpf_map_update_batch",
            std::io::Error::new(
                e.kind(),
                format!("{e} (after {} of {} entries)", attr.count, keys.len()),
            ),
        )),
    }
}

/// Collects the entries to write to one array map before writing them
/// in one batch ([`update_array`]).
pub(crate) struct ArrayWrites<V> {
    keys: Vec<u32>,
    values: Vec<V>,
}

impl<V: Pod> ArrayWrites<V> {
    pub(crate) fn new() -> ArrayWrites<V> {
        ArrayWrites {
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, key: u32, value: V) {
        self.keys.push(key);
        self.values.push(value);
    }

    /// Writes what was pushed, in one call.
    pub(crate) fn write(self, map: &Array<MapData, V>, name: &'static str) -> Result<(), Error> {
        update_array(map, name, &self.keys, &self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout of `union bpf_attr`'s `batch` member (include/uapi/linux/bpf.h).
    #[test]
    fn batch_attr_matches_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<BatchAttr>(), 56);
        assert_eq!(std::mem::offset_of!(BatchAttr, count), 32);
        assert_eq!(std::mem::offset_of!(BatchAttr, map_fd), 36);
        assert_eq!(std::mem::offset_of!(BatchAttr, elem_flags), 40);
        assert_eq!(std::mem::offset_of!(BatchAttr, flags), 48);
    }
}
