//! The daemon's side of the dead-man switch (`DEAD_MAN`, see the program's
//! `deadman`): arm it with the daemon's tgid and a budget (which also
//! attaches the exit tracepoint, `tandem_exit`), stamp it every loop turn
//! (one store into the map's shared mapping: no syscall, and the kernel's
//! latch and exit flag are never overwritten), read what the program
//! found, clear the latch once the control plane has acted on a trip, and
//! disarm it at a clean stop. What a trip means for the pair is the
//! control plane's decision.

use std::{
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    time::Duration,
};

use aya::{
    maps::{Array, IterableMap, MapData},
    programs::{ProgramError, RawTracePoint},
};
use tandem_common::{DeadMan, maps, progs};

use crate::{Dataplane, Error};

/// What the program's dead-man entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeadManState {
    /// The daemon's last stamp (CLOCK_MONOTONIC ns).
    pub stamp_ns: u64,
    /// 0: the switch is off.
    pub budget_ns: u64,
    /// When the program first found the node fenced (latched until
    /// [`Dataplane::clear_tripped`]).
    pub tripped_ns: Option<u64>,
    /// The exit tracepoint saw the armed tgid's main thread exit.
    pub exited: bool,
}

/// The shared mapping of `DEAD_MAN`'s one value (an mmapable array).
pub(crate) struct DeadManView {
    ptr: NonNull<DeadMan>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory, accessed with volatile
// aligned loads and stores only; it lives as long as the view.
unsafe impl Send for DeadManView {}
unsafe impl Sync for DeadManView {}

impl DeadManView {
    /// Maps the value of `map` (created with `BPF_F_MMAPABLE`).
    pub fn new(map: &Array<MapData, DeadMan>) -> Result<DeadManView, Error> {
        let fd = map.map().fd().as_fd().as_raw_fd();
        // SAFETY: sysconf has no preconditions.
        let len = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(4096);
        // SAFETY: fd is a live map descriptor; a shared read/write mapping
        // of its first page, which holds the array's value at offset 0.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0) };
        if p == libc::MAP_FAILED {
            return Err(Error::Mmap { name: maps::DEAD_MAN, source: std::io::Error::last_os_error() });
        }
        let ptr = NonNull::new(p as *mut DeadMan)
            .ok_or(Error::Mmap { name: maps::DEAD_MAN, source: std::io::Error::from_raw_os_error(libc::EINVAL) })?;
        Ok(DeadManView { ptr, len })
    }

    fn get(&self) -> DeadMan {
        let p = self.ptr.as_ptr();
        // SAFETY: p points to the mapped, aligned value.
        unsafe {
            DeadMan {
                stamp_ns: std::ptr::read_volatile(&(*p).stamp_ns),
                budget_ns: std::ptr::read_volatile(&(*p).budget_ns),
                tripped_ns: std::ptr::read_volatile(&(*p).tripped_ns),
                tgid: std::ptr::read_volatile(&(*p).tgid),
                exited: std::ptr::read_volatile(&(*p).exited),
            }
        }
    }

    fn set_stamp(&self, now_ns: u64) {
        // SAFETY: as in `get`.
        unsafe { std::ptr::write_volatile(&mut (*self.ptr.as_ptr()).stamp_ns, now_ns) }
    }

    fn set_tripped(&self, v: u64) {
        // SAFETY: as in `get`.
        unsafe { std::ptr::write_volatile(&mut (*self.ptr.as_ptr()).tripped_ns, v) }
    }

    /// Writes a whole new state, the budget last (armed only once the
    /// rest is in place) and first (off before the rest changes).
    fn set_all(&self, d: DeadMan) {
        let p = self.ptr.as_ptr();
        // SAFETY: as in `get`.
        unsafe {
            std::ptr::write_volatile(&mut (*p).budget_ns, 0);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            std::ptr::write_volatile(&mut (*p).stamp_ns, d.stamp_ns);
            std::ptr::write_volatile(&mut (*p).tripped_ns, d.tripped_ns);
            std::ptr::write_volatile(&mut (*p).tgid, d.tgid);
            std::ptr::write_volatile(&mut (*p).exited, d.exited);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            std::ptr::write_volatile(&mut (*p).budget_ns, d.budget_ns);
        }
    }
}

impl Drop for DeadManView {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
    }
}

impl Dataplane {
    /// Arms the switch for the daemon `tgid` (its process id, as the init
    /// pid namespace sees it): stamps it now, sets `budget` (zero turns
    /// the switch off), clears the latch and the exit flag, and attaches
    /// the exit tracepoint (once), which fences the node as soon as that
    /// process's main thread exits.
    pub fn arm_dead_man(&mut self, tgid: u32, budget: Duration) -> Result<(), Error> {
        self.attach_exit_trace()?;
        let budget_ns = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        self.dead_man_view.set_all(DeadMan { stamp_ns: crate::monotonic_ns(), budget_ns, tripped_ns: 0, tgid, exited: 0 });
        self.dead_man_armed = budget_ns != 0;
        self.write_vips()
    }

    fn attach_exit_trace(&mut self) -> Result<(), Error> {
        if self.exit_link.is_some() {
            return Ok(());
        }
        let name = progs::EXIT_TRACE;
        let prog: &mut RawTracePoint = self
            .ebpf
            .program_mut(name)
            .ok_or(Error::Program { name, source: ProgramError::NotLoaded })?
            .try_into()
            .map_err(|source| Error::Program { name, source })?;
        if prog.fd().is_err() {
            prog.load().map_err(|source| Error::Program { name, source })?;
        }
        let link = prog.attach("sched_process_exit").map_err(|source| Error::Program { name, source })?;
        self.exit_link = Some(link);
        Ok(())
    }

    /// Stamps the switch: the daemon is alive at `now_ns` (CLOCK_MONOTONIC,
    /// [`crate::monotonic_ns`]). One store to shared memory; it neither
    /// clears the latch nor the exit flag.
    pub fn stamp(&mut self, now_ns: u64) -> Result<(), Error> {
        self.dead_man_view.set_stamp(now_ns);
        Ok(())
    }

    /// The switch as the program sees it.
    pub fn dead_man(&self) -> Result<DeadManState, Error> {
        let d = self.dead_man_view.get();
        Ok(DeadManState {
            stamp_ns: d.stamp_ns,
            budget_ns: d.budget_ns,
            tripped_ns: (d.tripped_ns != 0).then_some(d.tripped_ns),
            exited: d.exited != 0,
        })
    }

    /// Clears the latch (the control plane has acted on the trip, e.g.
    /// stepped down). A stale stamp or an exit trips it again.
    pub fn clear_tripped(&mut self) -> Result<(), Error> {
        self.dead_man_view.set_tripped(0);
        Ok(())
    }

    /// Turns the switch off (clean shutdown, or before the XDP program is
    /// detached); the exit tracepoint stays attached but watches no one.
    pub fn disarm_dead_man(&mut self) -> Result<(), Error> {
        self.dead_man_view.set_all(DeadMan::default());
        self.dead_man_armed = false;
        self.write_vips()
    }
}
