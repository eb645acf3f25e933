//! Loading the XDP objects, attaching their programs to interfaces and
//! detaching them, and the node-wide settings and interfaces written once
//! at start-up ([`Dataplane::set_settings`], [`Dataplane::add_tx_port`]).
//!
//! Native XDP by default, generic on request or as a fallback
//! ([`AttachMode`]). Interface names are resolved in the calling thread's
//! network namespace. It configures no service: that is `services`. The
//! benchmark object ([`BENCH_OBJECT`]) is loaded here too, but only on a
//! benchmark's or test's request (`run`); the daemon never loads it.

use std::{collections::HashMap as StdHashMap, ffi::CString};

use aya::{
    EbpfLoader,
    programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId},
};
use tandem_common::*;

use crate::{Dataplane, Error, error::map_err, handles::Maps};

/// The XDP object, built from `ebpf/` by `build.rs`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tandem"));

/// The benchmark object (`ebpf/src/bin/tandem-bench.rs`), built beside it.
pub(crate) static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tandem-bench"));

/// How to attach to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) XDP; an error if the driver lacks it.
    Native,
    /// Generic (skb) XDP.
    Generic,
    /// Native if the driver supports it, else generic.
    Auto,
}

impl AttachMode {
    pub fn parse(s: &str) -> Option<AttachMode> {
        match s {
            "native" | "drv" | "driver" => Some(AttachMode::Native),
            "generic" | "skb" => Some(AttachMode::Generic),
            "auto" => Some(AttachMode::Auto),
            _ => None,
        }
    }
}

/// The mode an attachment ended up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    Native,
    Generic,
}

/// Load-time sizes.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Entries of the connection table (LRU).
    pub flow_entries: u32,
    /// Entries of the NAT reverse table (LRU).
    pub nat_entries: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            flow_entries: DEFAULT_FLOW_ENTRIES,
            nat_entries: DEFAULT_FLOW_ENTRIES,
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(mac)
}

/// The ifindex of `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> Result<u32, Error> {
    let c = CString::new(name).map_err(|_| Error::NoSuchInterface(name.to_string()))?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(Error::NoSuchInterface(name.to_string()))
    } else {
        Ok(idx)
    }
}

impl Dataplane {
    /// Loads the object and the dispatcher program (nothing is attached),
    /// with a SIP call table of `DEFAULT_CALL_ENTRIES`.
    pub fn load(options: LoadOptions) -> Result<Dataplane, Error> {
        Dataplane::load_with_calls(options, DEFAULT_CALL_ENTRIES)
    }

    /// [`Dataplane::load`] with a SIP call table (`CALLS`, LRU) of
    /// `call_entries` entries.
    pub fn load_with_calls(options: LoadOptions, call_entries: u32) -> Result<Dataplane, Error> {
        let mut dp = Dataplane::load_entry_with_calls(options, call_entries)?;
        dp.load_stages()?;
        Ok(dp)
    }

    /// [`Dataplane::load_with_calls`] without the tail-call stages, which
    /// [`Dataplane::load_stages`] loads (`stages`).
    pub fn load_entry_with_calls(options: LoadOptions, call_entries: u32) -> Result<Dataplane, Error> {
        Dataplane::load_object(options, call_entries, &[], false)
    }

    /// Loads the object and its entry programs (not the stages) with the
    /// maps named in `pins` opened from (or created and pinned at) their
    /// paths; with `adopted` (they all existed: a predecessor's tables, see
    /// `adopt`) nothing they hold is reset, and its stages stay in the
    /// stage array until [`Dataplane::load_stages`] replaces them.
    pub(crate) fn load_object(
        options: LoadOptions,
        call_entries: u32,
        pins: &[(String, std::path::PathBuf)],
        adopted: bool,
    ) -> Result<Dataplane, Error> {
        let t0 = std::time::Instant::now();
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(maps::FLOWS, options.flow_entries)
            .map_max_entries(maps::NAT_REVERSE, options.nat_entries)
            .map_max_entries(maps::CALLS, call_entries.max(1));
        for (name, path) in pins {
            loader.map_pin_path(name.as_str(), path.as_path());
        }
        let mut ebpf = loader.load(OBJECT)?;
        let t1 = std::time::Instant::now();
        let programs = crate::timings::load_programs(&mut ebpf, &crate::stages::ENTRY)?;
        let t2 = std::time::Instant::now();
        let maps = Maps::take(&mut ebpf)?;
        let mut dp = Dataplane {
            ebpf,
            maps,
            options,
            services: StdHashMap::new(),
            mh_slots: [None; MH_SLOTS as usize],
            links: Vec::new(),
            pinned: Vec::new(),
            tables: None,
            tables_adopted: false,
            bench_seq: 0,
            flow_events_on: false,
            dead_man_tgid: 0,
            exit_fence: false,
            load_timings: crate::timings::LoadTimings {
                object: t1 - t0,
                programs,
                verify: t2 - t1,
                ..Default::default()
            },
        };
        // The exit fence is a safety net, not a requirement: without it
        // the dead-man switch still trips on the stale stamp.
        match attach_exit_fence(&mut dp.ebpf) {
            Ok(()) => dp.exit_fence = true,
            Err(e) => tracing::warn!(
                "{e}: the exit fence is off, a killed daemon is fenced by its stale dead-man stamp alone"
            ),
        }
        let t3 = std::time::Instant::now();
        dp.load_timings.exit_fence = t3 - t2;
        if adopted {
            return Ok(dp);
        }
        dp.set_settings(&Settings::default())?;
        // Service ids that are not in use must not match any lookup.
        let unused = Service {
            id: u32::MAX,
            ..Default::default()
        };
        for id in 0..MAX_SERVICES {
            dp.maps.services.conf
                .set(id, unused, 0)
                .map_err(map_err(maps::SERVICE_CONF))?;
        }
        dp.load_timings.tables = t3.elapsed();
        Ok(dp)
    }

    pub fn options(&self) -> LoadOptions {
        self.options
    }

    /// Loaded program `name`, of the dataplane object or, once loaded, the
    /// benchmark object.
    pub(crate) fn xdp(&mut self, name: &'static str) -> Result<&mut Xdp, Error> {
        let prog = match self.ebpf.program_mut(name) {
            Some(p) => Some(p),
            None => self.maps.bench.as_mut().and_then(|b| b.ebpf.program_mut(name)),
        };
        prog.ok_or(Error::Program {
            name,
            source: ProgramError::NotLoaded,
        })?
        .try_into()
        .map_err(|source| Error::Program { name, source })
    }

    /// Each loaded XDP program of the dataplane object (and of the
    /// benchmark object, once loaded) with the size the verifier left of
    /// it (`xlated`, in 8-byte BPF instructions) and its JIT image in
    /// bytes, as `bpftool prog show` reports them.
    pub fn program_sizes(&mut self) -> Vec<ProgramSize> {
        let names = tandem_common::progs::DATAPLANE.into_iter().chain(tandem_common::progs::BENCH);
        names
            .filter_map(|name| {
                let info = self.xdp(name).ok()?.info().ok()?;
                Some(ProgramSize {
                    name,
                    xlated_insns: info.size_translated().unwrap_or(0) / 8,
                    jited_bytes: info.size_jitted(),
                })
            })
            .collect()
    }

    /// A descriptor of loaded program `name`, for a program array.
    pub(crate) fn prog_fd(&mut self, name: &'static str) -> Result<aya::programs::ProgramFd, Error> {
        self.xdp(name)?
            .fd()
            .map_err(|source| Error::Program { name, source })?
            .try_clone()
            .map_err(|e| Error::Program { name, source: ProgramError::IOError(e) })
    }

    pub(crate) fn attach_prog(
        &mut self,
        name: &'static str,
        iface: &str,
        mode: AttachMode,
    ) -> Result<Attached, Error> {
        ifindex(iface)?;
        let try_mode =
            |this: &mut Dataplane, m: XdpMode, label: &'static str| -> Result<XdpLinkId, Error> {
                this.xdp(name)?
                    .attach(iface, m)
                    .map_err(|source| Error::Attach {
                        iface: iface.to_string(),
                        mode: label,
                        source,
                    })
            };
        let (id, attached) = match mode {
            AttachMode::Native => (try_mode(self, XdpMode::Driver, "native")?, Attached::Native),
            AttachMode::Generic => (try_mode(self, XdpMode::Skb, "generic")?, Attached::Generic),
            AttachMode::Auto => match try_mode(self, XdpMode::Driver, "native") {
                Ok(id) => (id, Attached::Native),
                Err(native) => {
                    tracing::warn!(%native, "falling back to generic XDP");
                    (try_mode(self, XdpMode::Skb, "generic")?, Attached::Generic)
                }
            },
        };
        self.links.push((iface.to_string(), name, id));
        Ok(attached)
    }

    /// Attaches the dispatcher to `iface` (in the calling thread's network
    /// namespace). It stays attached until [`Dataplane::detach_all`] or drop.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<Attached, Error> {
        self.attach_prog(progs::DISPATCH, iface, mode)
    }

    /// Attaches the XDP_PASS program, for the far end of a veth that must
    /// accept XDP_TX/REDIRECT frames.
    pub fn attach_pass(&mut self, iface: &str, mode: AttachMode) -> Result<Attached, Error> {
        self.attach_prog(progs::PASS, iface, mode)
    }

    /// Detaches every program this dataplane attached, pinned links too
    /// (their pins are removed).
    pub fn detach_all(&mut self) -> Result<(), Error> {
        self.unpin_all()?;
        for (_, name, id) in std::mem::take(&mut self.links) {
            self.xdp(name)?
                .detach(id)
                .map_err(|source| Error::Program { name, source })?;
        }
        Ok(())
    }

    pub fn set_settings(&mut self, s: &Settings) -> Result<(), Error> {
        self.maps.node.settings
            .set(0, *s, 0)
            .map_err(map_err(maps::SETTINGS))
    }

    /// Declares an interface frames may be redirected to (in the calling
    /// thread's network namespace): its MAC becomes the source MAC of
    /// frames sent out of it.
    pub fn add_tx_port(&mut self, ifindex: u32, mac: [u8; 6]) -> Result<(), Error> {
        self.maps.node.ifaces
            .insert(ifindex, Iface { mac, _pad: [0; 2] }, 0)
            .map_err(map_err(maps::IFACES))?;
        self.maps.node.tx_ports
            .insert(ifindex, ifindex, None, 0)
            .map_err(|source| Error::DevMap { ifindex, source })
    }
}

/// Loads the exit fence (`progs::EXIT_FENCE`) and attaches it to
/// `sched_process_exit` (a raw tracepoint: no tracefs needed). The link
/// lives as long as the object.
fn attach_exit_fence(ebpf: &mut aya::Ebpf) -> Result<(), Error> {
    let (name, tracepoint) = (progs::EXIT_FENCE, progs::EXIT_FENCE_TP);
    let err = |source| Error::Tracepoint { name, tracepoint, source };
    let prog: &mut aya::programs::RawTracePoint = ebpf
        .program_mut(name)
        .ok_or(err(ProgramError::NotLoaded))?
        .try_into()
        .map_err(err)?;
    let mut attempt = 0;
    loop {
        match prog.load() {
            Ok(()) => break,
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempt < 5 =>
            {
                attempt += 1;
            }
            Err(source) => return Err(err(source)),
        }
    }
    prog.attach(tracepoint).map_err(err)?;
    Ok(())
}

/// XDP program `name` of `ebpf` (an error naming it if there is none).
pub(crate) fn xdp_of<'e>(ebpf: &'e mut aya::Ebpf, name: &'static str) -> Result<&'e mut Xdp, Error> {
    ebpf.program_mut(name)
        .ok_or(Error::Program {
            name,
            source: ProgramError::NotLoaded,
        })?
        .try_into()
        .map_err(|source| Error::Program { name, source })
}

/// Loads program `name` of `ebpf` into the kernel.
pub(crate) fn load_xdp(ebpf: &mut aya::Ebpf, name: &'static str) -> Result<(), Error> {
    let prog = xdp_of(ebpf, name)?;
    // The verifier gives up with EAGAIN when a signal is pending on the
    // loading thread (e.g. SIGCHLD in a process that runs children); like
    // libbpf, try again a few times.
    let mut attempt = 0;
    loop {
        match prog.load() {
            Ok(()) => return Ok(()),
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempt < 5 =>
            {
                attempt += 1;
            }
            Err(source) => return Err(Error::Program { name, source }),
        }
    }
}

/// One program's size after verification ([`Dataplane::program_sizes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramSize {
    pub name: &'static str,
    /// BPF instructions after the verifier's rewrites (`xlated_prog_len` / 8).
    pub xlated_insns: u32,
    /// Bytes of the JIT image (0 without the JIT).
    pub jited_bytes: u32,
}
