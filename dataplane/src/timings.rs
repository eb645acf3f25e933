//! How long loading the XDP object took, step by step ([`LoadTimings`]),
//! and the loading of the dataplane's programs in parallel, one thread
//! per program ([`load_programs`]): the verifier is what start-up waits
//! for (seconds for the scheduler and SIP stages against milliseconds for
//! the map creation, 1M-entry LRU tables included), and each program is
//! verified on its own, so the machine's cores verify them side by side.
//!
//! It measures and loads; it decides nothing about what is loaded.

use std::time::{Duration, Instant};

use aya::programs::{Program, ProgramError, Xdp};

use crate::{Dataplane, Error};

/// What [`Dataplane::load`] spent its time on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadTimings {
    /// The object parsed and relocated, its maps created (the kernel
    /// allocates the LRU tables' entries here).
    pub object: Duration,
    /// Each dataplane program's load (the verifier), in
    /// `progs::DATAPLANE` order.
    pub programs: Vec<ProgramLoad>,
    /// The wall time of loading them all (in parallel: less than the sum).
    pub verify: Duration,
    /// The exit fence's load and attach (`sched_process_exit`).
    pub exit_fence: Duration,
    /// The node tables written at load: the settings, the unused
    /// service ids.
    pub tables: Duration,
    /// The tail-call stages verified (in parallel) and put in the stage
    /// array ([`Dataplane::load_stages`]; zero until then).
    pub stages: Duration,
}

/// One program's load, on its own thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramLoad {
    pub name: &'static str,
    /// From the thread's start to the program loaded.
    pub wall: Duration,
    /// The CPU time the loading thread used (the verifier runs in its
    /// system call): what the load costs whatever else runs beside it.
    pub cpu: Duration,
    /// The instructions the verifier processed (the kernel's
    /// `verified_insns`; 0 when it does not say): its work, in its units.
    pub verified_insns: u32,
}

impl LoadTimings {
    /// What loading the object and its entry programs took (the stages apart).
    pub fn total(&self) -> Duration {
        self.object + self.verify + self.exit_fence + self.tables
    }
}

impl Dataplane {
    /// How long this dataplane's load took, step by step.
    pub fn load_timings(&self) -> &LoadTimings {
        &self.load_timings
    }
}

/// Loads the XDP programs `names` of `ebpf` into the kernel, each on its
/// own thread; their load times, in `names` order. The first error (in
/// `names` order) is returned once every thread has finished.
pub(crate) fn load_programs(
    ebpf: &mut aya::Ebpf,
    names: &[&'static str],
) -> Result<Vec<ProgramLoad>, Error> {
    let mut wanted: Vec<(&'static str, &mut Program)> = Vec::new();
    for (name, prog) in ebpf.programs_mut() {
        if let Some(n) = names.iter().find(|n| **n == name) {
            wanted.push((n, prog));
        }
    }
    for n in names {
        if !wanted.iter().any(|(w, _)| w == n) {
            return Err(Error::Program {
                name: n,
                source: ProgramError::NotLoaded,
            });
        }
    }
    let mut results: Vec<(&'static str, Result<ProgramLoad, Error>)> = std::thread::scope(|s| {
        let handles: Vec<_> = wanted
            .into_iter()
            .map(|(name, prog)| {
                let h = std::thread::Builder::new()
                    .name(format!("verify {name}"))
                    .spawn_scoped(s, move || load_one(prog, name));
                (name, h)
            })
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| {
                let r = match h {
                    Ok(h) => h.join().unwrap_or_else(|_| {
                        Err(Error::Program {
                            name,
                            source: ProgramError::IOError(std::io::Error::other(
                                "loading thread panicked",
                            )),
                        })
                    }),
                    Err(e) => Err(Error::Program {
                        name,
                        source: ProgramError::IOError(e),
                    }),
                };
                (name, r)
            })
            .collect()
    });
    results.sort_by_key(|(name, _)| names.iter().position(|n| n == name));
    results.into_iter().map(|(_, r)| r).collect()
}

/// This thread's CPU time (user and system).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which ts is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Loads one XDP program; how long it took, in wall and CPU time.
fn load_one(prog: &mut Program, name: &'static str) -> Result<ProgramLoad, Error> {
    let (t, cpu) = (Instant::now(), thread_cpu());
    let xdp: &mut Xdp = prog
        .try_into()
        .map_err(|source| Error::Program { name, source })?;
    // The verifier gives up with EAGAIN when a signal is pending on the
    // loading thread; like libbpf, try again a few times.
    let mut attempt = 0;
    loop {
        match xdp.load() {
            Ok(()) => {
                let (wall, cpu) = (t.elapsed(), thread_cpu().saturating_sub(cpu));
                let verified_insns = xdp
                    .info()
                    .ok()
                    .and_then(|i| i.verified_instruction_count())
                    .unwrap_or(0);
                return Ok(ProgramLoad {
                    name,
                    wall,
                    cpu,
                    verified_insns,
                });
            }
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempt < 5 =>
            {
                attempt += 1;
            }
            Err(source) => return Err(Error::Program { name, source }),
        }
    }
}

/// The floor of any XDP start, for comparison: the benchmark object's
/// trivial XDP_TX program (`progs::TRIVIAL_TX`) loaded through the same
/// loader, then attached to `iface` (native; in the calling thread's
/// network namespace) and detached again. How long the load and the
/// attach took.
pub fn trivial_xdp_start(iface: &str) -> Result<(Duration, Duration), Error> {
    let t = Instant::now();
    let mut ebpf = aya::EbpfLoader::new().load(crate::loader::BENCH_OBJECT)?;
    let name = tandem_common::progs::TRIVIAL_TX;
    crate::loader::load_xdp(&mut ebpf, name)?;
    let loaded = t.elapsed();
    let t = Instant::now();
    let xdp = crate::loader::xdp_of(&mut ebpf, name)?;
    let link = xdp
        .attach(iface, aya::programs::XdpMode::Driver)
        .map_err(|source| Error::Attach {
            iface: iface.to_string(),
            mode: "native",
            source,
        })?;
    let attached = t.elapsed();
    xdp.detach(link)
        .map_err(|source| Error::Program { name, source })?;
    Ok((loaded, attached))
}
