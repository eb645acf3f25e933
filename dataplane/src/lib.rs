//! `tandem-dataplane`: the only crate that touches BPF maps.
//!
//! It loads the XDP object built from `ebpf/` (by this crate's build
//! script), attaches it to interfaces (native XDP by default, generic on
//! request or as a fallback), writes virtual services, real servers and
//! scheduler tables ([`config`], [`image`], [`tables`]), reads counters
//! and the connection table, and runs the program through
//! `BPF_PROG_TEST_RUN`. [`model`] is the host-side reference model of the
//! whole dispatch decision, built on the same scheduling code
//! (`tandem_common::sched`); [`packet`] builds test frames.
//!
//! It decides nothing: what to configure is the control plane's business.

pub mod config;
pub mod image;
pub mod model;
pub mod packet;
pub mod tables;

use std::{
    collections::HashMap as StdHashMap,
    ffi::CString,
    os::fd::{AsFd, AsRawFd},
};

use aya::{
    Ebpf, EbpfLoader, Pod,
    maps::{Array, DevMapHash, HashMap, IterableMap, MapData, PerCpuArray, ProgramArray},
    programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};
pub use tandem_common as common;
use tandem_common::*;

pub use crate::{
    config::{ConfigError, Protocol, RealConfig, RealState, ServiceConfig},
    image::ServiceImage,
};

/// The XDP object, built from `ebpf/` by `build.rs`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tandem"));

/// Errors of the dataplane; each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("loading the XDP object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("program `{name}`: {source}")]
    Program {
        name: &'static str,
        source: ProgramError,
    },
    #[error("map `{name}`: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("map `{0}` is missing from the XDP object")]
    MissingMap(&'static str),
    #[error("interface `{0}` does not exist in this network namespace")]
    NoSuchInterface(String),
    #[error("attaching XDP to `{iface}` in {mode} mode: {source}")]
    Attach {
        iface: String,
        mode: &'static str,
        source: ProgramError,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no free virtual service id (at most {MAX_SERVICES} services)")]
    TooManyServices,
    #[error("no free Maglev slot (at most {MH_SLOTS} mh services)")]
    TooManyMaglev,
    #[error("no virtual service {0}")]
    NoSuchService(String),
    #[error("frame of {0} bytes is too long for the benchmark wrapper (max {BENCH_FRAME_MAX})")]
    BenchFrameTooLong(usize),
    #[error("devmap entry for ifindex {ifindex}: {source}")]
    DevMap {
        ifindex: u32,
        source: aya::maps::xdp::XdpMapError,
    },
}

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

/// Result of one `BPF_PROG_TEST_RUN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    pub verdict: u32,
    pub frame: Vec<u8>,
    /// Average run time per repetition as the kernel measured it.
    pub duration_ns: u64,
}

/// The loaded dispatcher and its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    options: LoadOptions,
    services: StdHashMap<ServiceKey, ServiceImage>,
    mh_slots: [Option<ServiceKey>; MH_SLOTS as usize],
    links: Vec<(String, &'static str, XdpLinkId)>,
    bench_seq: u32,
    m_services: HashMap<MapData, ServiceKey, u32>,
    m_conf: Array<MapData, Service>,
    m_reals: Array<MapData, RealServer>,
    m_active: Array<MapData, u64>,
    m_real_load: Array<MapData, RealLoad>,
    m_sched: Array<MapData, SchedState>,
    m_wrr: Array<MapData, u32>,
    m_shdh: Array<MapData, u32>,
    m_mh: Array<MapData, u32>,
    m_flows: HashMap<MapData, FlowKey, FlowValue>,
    m_calls: HashMap<MapData, CallKey, CallValue>,
    call_events: Option<aya::maps::RingBuf<MapData>>,
    m_nat: HashMap<MapData, FlowKey, NatReverse>,
    m_settings: Array<MapData, Settings>,
    m_ifaces: HashMap<MapData, u32, Iface>,
    m_tx: DevMapHash<MapData>,
    m_reasons: PerCpuArray<MapData, u64>,
    m_svc_stats: PerCpuArray<MapData, Counters>,
    m_real_stats: PerCpuArray<MapData, Counters>,
    m_bench_frame: Array<MapData, BenchFrame>,
    m_bench_target: ProgramArray<MapData>,
    m_stages: ProgramArray<MapData>,
    m_port_flags: Array<MapData, u32>,
    m_bench_count: PerCpuArray<MapData, u64>,
    m_hb_config: Array<MapData, HbConfig>,
    m_hb_nodes: HashMap<MapData, u32, u32>,
    m_hb_peers: HashMap<MapData, HbPeerKey, HbPeer>,
    m_owned_vips: HashMap<MapData, u32, Iface>,
    hb_events: Option<aya::maps::RingBuf<MapData>>,
    flow_events: Option<aya::maps::RingBuf<MapData>>,
    flow_events_on: bool,
    m_bench_fwd: Array<MapData, u32>,
    m_globals: Array<MapData, Globals>,
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, Error> {
    let map = ebpf.take_map(name).ok_or(Error::MissingMap(name))?;
    T::try_from(map).map_err(|source| Error::Map { name, source })
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> Error {
    move |source| Error::Map { name, source }
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
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::FLOWS, options.flow_entries)
            .map_max_entries(maps::NAT_REVERSE, options.nat_entries)
            .map_max_entries(maps::CALLS, call_entries.max(1))
            .load(OBJECT)?;
        for name in [
            progs::DISPATCH,
            progs::NEW_FLOW,
            progs::NEW_FLOW_LOAD,
            progs::SIP,
            progs::PASS,
            progs::TRIVIAL_TX,
            progs::BENCH_RESTORE,
            progs::SINK,
            progs::BENCH_FWD,
        ] {
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(Error::Program {
                    name,
                    source: ProgramError::NotLoaded,
                })?
                .try_into()
                .map_err(|source| Error::Program { name, source })?;
            // The verifier gives up with EAGAIN when a signal is pending
            // on the loading thread (e.g. SIGCHLD in a process that runs
            // children); like libbpf, try again a few times.
            let mut attempt = 0;
            loop {
                match prog.load() {
                    Ok(()) => break,
                    Err(ProgramError::LoadError { io_error, .. })
                        if io_error.raw_os_error() == Some(libc::EAGAIN) && attempt < 5 =>
                    {
                        attempt += 1;
                    }
                    Err(source) => return Err(Error::Program { name, source }),
                }
            }
        }
        let mut dp = Dataplane {
            m_services: take(&mut ebpf, maps::SERVICES)?,
            m_conf: take(&mut ebpf, maps::SERVICE_CONF)?,
            m_reals: take(&mut ebpf, maps::REALS)?,
            m_active: take(&mut ebpf, maps::REAL_ACTIVE)?,
            m_real_load: take(&mut ebpf, maps::REAL_LOAD)?,
            m_sched: take(&mut ebpf, maps::SCHED_STATE)?,
            m_wrr: take(&mut ebpf, maps::WRR_SEQ)?,
            m_shdh: take(&mut ebpf, maps::SHDH_TABLE)?,
            m_mh: take(&mut ebpf, maps::MH_TABLE)?,
            m_flows: take(&mut ebpf, maps::FLOWS)?,
            m_calls: take(&mut ebpf, maps::CALLS)?,
            call_events: Some(take(&mut ebpf, maps::CALL_EVENTS)?),
            m_nat: take(&mut ebpf, maps::NAT_REVERSE)?,
            m_settings: take(&mut ebpf, maps::SETTINGS)?,
            m_ifaces: take(&mut ebpf, maps::IFACES)?,
            m_tx: take(&mut ebpf, maps::TX_PORTS)?,
            m_reasons: take(&mut ebpf, maps::REASONS)?,
            m_svc_stats: take(&mut ebpf, maps::SERVICE_STATS)?,
            m_real_stats: take(&mut ebpf, maps::REAL_STATS)?,
            m_bench_frame: take(&mut ebpf, maps::BENCH_FRAME)?,
            m_bench_target: take(&mut ebpf, maps::BENCH_TARGET)?,
            m_stages: take(&mut ebpf, maps::STAGES)?,
            m_port_flags: take(&mut ebpf, maps::PORT_FLAGS)?,
            m_bench_count: take(&mut ebpf, maps::BENCH_COUNT)?,
            m_hb_config: take(&mut ebpf, maps::HB_CONFIG)?,
            m_hb_nodes: take(&mut ebpf, maps::HB_NODES)?,
            m_hb_peers: take(&mut ebpf, maps::HB_PEERS)?,
            m_owned_vips: take(&mut ebpf, maps::OWNED_VIPS)?,
            hb_events: Some(take(&mut ebpf, maps::HB_EVENTS)?),
            flow_events: Some(take(&mut ebpf, maps::FLOW_EVENTS)?),
            flow_events_on: false,
            m_bench_fwd: take(&mut ebpf, maps::BENCH_FWD)?,
            m_globals: take(&mut ebpf, maps::GLOBALS)?,
            ebpf,
            options,
            services: StdHashMap::new(),
            mh_slots: [None; MH_SLOTS as usize],
            links: Vec::new(),
            bench_seq: 0,
        };
        for (index, name) in [(0, progs::NEW_FLOW), (1, progs::NEW_FLOW_LOAD), (2, progs::SIP)] {
            let fd = dp.prog_fd(name)?;
            dp.m_stages.set(index, &fd, 0).map_err(map_err(maps::STAGES))?;
        }
        dp.set_settings(&Settings::default())?;
        // Service ids that are not in use must not match any lookup.
        let unused = Service {
            id: u32::MAX,
            ..Default::default()
        };
        for id in 0..MAX_SERVICES {
            dp.m_conf
                .set(id, unused, 0)
                .map_err(map_err(maps::SERVICE_CONF))?;
        }
        Ok(dp)
    }

    pub fn options(&self) -> LoadOptions {
        self.options
    }

    fn xdp(&mut self, name: &'static str) -> Result<&mut Xdp, Error> {
        self.ebpf
            .program_mut(name)
            .ok_or(Error::Program {
                name,
                source: ProgramError::NotLoaded,
            })?
            .try_into()
            .map_err(|source| Error::Program { name, source })
    }

    /// A descriptor of loaded program `name`, for a program array.
    fn prog_fd(&mut self, name: &'static str) -> Result<aya::programs::ProgramFd, Error> {
        self.xdp(name)?
            .fd()
            .map_err(|source| Error::Program { name, source })?
            .try_clone()
            .map_err(|e| Error::Program { name, source: ProgramError::IOError(e) })
    }

    fn attach_prog(
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

    /// Detaches every program this dataplane attached.
    pub fn detach_all(&mut self) -> Result<(), Error> {
        for (_, name, id) in std::mem::take(&mut self.links) {
            self.xdp(name)?
                .detach(id)
                .map_err(|source| Error::Program { name, source })?;
        }
        Ok(())
    }

    pub fn set_settings(&mut self, s: &Settings) -> Result<(), Error> {
        self.m_settings
            .set(0, *s, 0)
            .map_err(map_err(maps::SETTINGS))
    }

    /// Declares an interface frames may be redirected to (in the calling
    /// thread's network namespace): its MAC becomes the source MAC of
    /// frames sent out of it.
    pub fn add_tx_port(&mut self, ifindex: u32, mac: [u8; 6]) -> Result<(), Error> {
        self.m_ifaces
            .insert(ifindex, Iface { mac, _pad: [0; 2] }, 0)
            .map_err(map_err(maps::IFACES))?;
        self.m_tx
            .insert(ifindex, ifindex, None, 0)
            .map_err(|source| Error::DevMap { ifindex, source })
    }

    /// Adds or replaces a virtual service. The configuration is validated
    /// and its tables built before any map is written.
    pub fn set_service(&mut self, cfg: &ServiceConfig) -> Result<ServiceImage, Error> {
        let key = cfg.key();
        let previous = self.services.get(&key);
        let id = match previous {
            Some(p) => p.service.id,
            None => (0..MAX_SERVICES)
                .find(|i| !self.services.values().any(|s| s.service.id == *i))
                .ok_or(Error::TooManyServices)?,
        };
        let mh_slot = if cfg.scheduler == Scheduler::Mh {
            match self.mh_slots.iter().position(|s| *s == Some(key)) {
                Some(s) => s as u32,
                None => self
                    .mh_slots
                    .iter()
                    .position(|s| s.is_none())
                    .ok_or(Error::TooManyMaglev)? as u32,
            }
        } else {
            0
        };
        let image = ServiceImage::build(cfg, id, mh_slot, previous)?;
        if cfg.scheduler != Scheduler::Mh {
            for s in self.mh_slots.iter_mut() {
                if *s == Some(key) {
                    *s = None;
                }
            }
        } else {
            self.mh_slots[mh_slot as usize] = Some(key);
        }
        self.write_image(&image)?;
        self.services.insert(key, image.clone());
        self.write_derived()?;
        Ok(image)
    }

    /// Rewrites what is derived from the set of services: the port
    /// pre-filter and the NAT service count.
    fn write_derived(&mut self) -> Result<(), Error> {
        let (ports, mut globals) = derived(self.services.values().map(|i| &i.service));
        globals.flow_events = self.flow_events_on as u32;
        for (idx, flags) in ports {
            self.m_port_flags
                .set(idx, flags, 0)
                .map_err(map_err(maps::PORT_FLAGS))?;
        }
        self.m_globals
            .set(0, globals, 0)
            .map_err(map_err(maps::GLOBALS))
    }

    fn write_image(&mut self, img: &ServiceImage) -> Result<(), Error> {
        let id = img.service.id;
        match Scheduler::from_u8(img.service.scheduler) {
            Some(Scheduler::Wrr) => {
                for (i, v) in img
                    .wrr
                    .iter()
                    .enumerate()
                    .take(img.service.table_len as usize)
                {
                    self.m_wrr
                        .set(id * WRR_SEQ_MAX + i as u32, *v, 0)
                        .map_err(map_err(maps::WRR_SEQ))?;
                }
            }
            Some(Scheduler::Sh | Scheduler::Dh) => {
                for (i, v) in img.shdh.iter().enumerate() {
                    self.m_shdh
                        .set(id * SHDH_BUCKETS + i as u32, *v, 0)
                        .map_err(map_err(maps::SHDH_TABLE))?;
                }
            }
            Some(Scheduler::Mh) => {
                let base = img.service.mh_slot * MH_MAX_SIZE;
                for (i, v) in img.mh.iter().enumerate() {
                    self.m_mh
                        .set(base + i as u32, *v, 0)
                        .map_err(map_err(maps::MH_TABLE))?;
                }
            }
            _ => {}
        }
        for (i, r) in img.reals.iter().enumerate() {
            self.m_reals
                .set(id * MAX_REALS + i as u32, *r, 0)
                .map_err(map_err(maps::REALS))?;
        }
        if img.reset_sched {
            self.m_sched
                .set(id, img.sched, 0)
                .map_err(map_err(maps::SCHED_STATE))?;
        }
        if img.fresh {
            for slot in 0..MAX_REALS {
                self.m_real_load
                    .set(id * MAX_REALS + slot, RealLoad::default(), 0)
                    .map_err(map_err(maps::REAL_LOAD))?;
            }
        }
        self.m_conf
            .set(id, img.service, 0)
            .map_err(map_err(maps::SERVICE_CONF))?;
        self.m_services
            .insert(img.key, id, 0)
            .map_err(map_err(maps::SERVICES))
    }

    /// Removes a virtual service; its flows expire (their packets pass).
    pub fn remove_service(&mut self, key: &ServiceKey) -> Result<(), Error> {
        let img = self
            .services
            .remove(key)
            .ok_or_else(|| Error::NoSuchService(format!("{key:?}")))?;
        self.m_services
            .remove(key)
            .map_err(map_err(maps::SERVICES))?;
        let unused = Service {
            id: u32::MAX,
            ..Default::default()
        };
        self.m_conf
            .set(img.service.id, unused, 0)
            .map_err(map_err(maps::SERVICE_CONF))?;
        for s in self.mh_slots.iter_mut() {
            if *s == Some(*key) {
                *s = None;
            }
        }
        // Its SIP calls go (their ids would name slots of the next service
        // given this id), and with them their active-connection counts.
        let id = img.service.id;
        let calls: Vec<(CallKey, CallValue)> = self
            .m_calls
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, _)| k.service_id == id)
            .collect();
        for (k, v) in calls {
            let _ = self.m_calls.remove(&k);
            if v.flags & CALL_COUNTED != 0 {
                let a = self.active_conns(id, v.real_idx)?;
                self.set_active_conns(id, v.real_idx, a.saturating_sub(1))?;
            }
        }
        // The removed service's port loses its flags unless another uses it.
        let idx = port_index(key.proto, key.port);
        self.m_port_flags
            .set(idx, 0, 0)
            .map_err(map_err(maps::PORT_FLAGS))?;
        self.write_derived()
    }

    /// The images of the configured services.
    pub fn services(&self) -> impl Iterator<Item = &ServiceImage> {
        self.services.values()
    }

    pub fn service(&self, key: &ServiceKey) -> Option<&ServiceImage> {
        self.services.get(key)
    }

    /// Per-reason packet counts, summed over CPUs.
    pub fn reasons(&self) -> Result<Vec<(Reason, u64)>, Error> {
        Reason::ALL
            .iter()
            .map(|r| {
                let v = self
                    .m_reasons
                    .get(&(*r as u32), 0)
                    .map_err(map_err(maps::REASONS))?;
                Ok((*r, v.iter().sum()))
            })
            .collect()
    }

    pub fn reason(&self, r: Reason) -> Result<u64, Error> {
        let v = self
            .m_reasons
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
            .m_svc_stats
            .get(&id, 0)
            .map_err(map_err(maps::SERVICE_STATS))?;
        Ok(Self::sum(&v))
    }

    /// Counters of real server `slot` of service `id`, summed over CPUs.
    pub fn real_counters(&self, id: u32, slot: u32) -> Result<Counters, Error> {
        let v = self
            .m_real_stats
            .get(&(id * MAX_REALS + slot), 0)
            .map_err(map_err(maps::REAL_STATS))?;
        Ok(Self::sum(&v))
    }

    /// Active connections the kernel counts for real server `slot` of service `id`.
    pub fn active_conns(&self, id: u32, slot: u32) -> Result<u64, Error> {
        self.m_active
            .get(&(id * MAX_REALS + slot), 0)
            .map_err(map_err(maps::REAL_ACTIVE))
    }

    /// Sets an active-connection count (for tests of lc/wlc and for the
    /// control plane's periodic resync).
    pub fn set_active_conns(&mut self, id: u32, slot: u32, n: u64) -> Result<(), Error> {
        self.m_active
            .set(id * MAX_REALS + slot, n, 0)
            .map_err(map_err(maps::REAL_ACTIVE))
    }

    /// Sets the load real server `slot` of service `id` reports (used by
    /// services with `FLAG_REPORTED_LOAD`).
    pub fn set_real_load(&mut self, id: u32, slot: u32, load: RealLoad) -> Result<(), Error> {
        self.m_real_load.set(id * MAX_REALS + slot, load, 0).map_err(map_err(maps::REAL_LOAD))
    }

    /// Looks up one flow.
    pub fn flow(&self, key: &FlowKey) -> Option<FlowValue> {
        self.m_flows.get(key, 0).ok()
    }

    /// Every entry of the connection table.
    pub fn flows(&self) -> Vec<(FlowKey, FlowValue)> {
        self.m_flows.iter().filter_map(Result::ok).collect()
    }

    /// Looks up one SIP call.
    pub fn call(&self, key: &CallKey) -> Option<CallValue> {
        self.m_calls.get(key, 0).ok()
    }

    /// Every entry of the SIP call table.
    pub fn calls(&self) -> Vec<(CallKey, CallValue)> {
        self.m_calls.iter().filter_map(Result::ok).collect()
    }

    /// Every entry of the NAT reverse table.
    pub fn nat_reverse(&self) -> Vec<(FlowKey, NatReverse)> {
        self.m_nat.iter().filter_map(Result::ok).collect()
    }

    /// Kernel memory charged to the connection table (`memlock` of the
    /// map, from /proc/self/fdinfo), in bytes.
    pub fn flow_table_bytes(&self) -> Option<u64> {
        let fd = self.m_flows.map().fd().as_fd().as_raw_fd();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
        info.lines().find_map(|l| {
            l.strip_prefix("memlock:")
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Runs the dispatcher once on `frame` (`BPF_PROG_TEST_RUN`).
    pub fn test_run(&mut self, frame: &[u8]) -> Result<RunResult, Error> {
        self.run_prog(progs::DISPATCH, frame, 1)
    }

    fn run_prog(
        &mut self,
        name: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<RunResult, Error> {
        let mut out = vec![0u8; frame.len() + 256];
        let prog = self.xdp(name)?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = repeat;
        let r = prog
            .test_run(opts)
            .map_err(|source| Error::Program { name, source })?;
        out.truncate(r.data_size_out as usize);
        Ok(RunResult {
            verdict: r.return_value,
            frame: out,
            duration_ns: r.duration.as_nanos() as u64,
        })
    }

    /// Benchmarks a program on `frame` through the restoring wrapper:
    /// `repeat` iterations, each starting from the original frame. Returns
    /// the verdict of the last iteration and the kernel's average ns/run.
    ///
    /// With `vary_off`, a running counter is written at that offset of the
    /// frame before each iteration (every iteration a new flow).
    pub fn bench_run(
        &mut self,
        target: BenchTarget,
        frame: &[u8],
        repeat: u32,
        vary_off: Option<u32>,
    ) -> Result<RunResult, Error> {
        if frame.len() > BENCH_FRAME_MAX {
            return Err(Error::BenchFrameTooLong(frame.len()));
        }
        let mut bf = BenchFrame {
            len: frame.len() as u32,
            vary_off: vary_off.unwrap_or(0),
            seq: self.bench_seq,
            _pad: 0,
            data: [0; BENCH_FRAME_MAX],
        };
        bf.data[..frame.len()].copy_from_slice(frame);
        self.m_bench_frame
            .set(0, bf, 0)
            .map_err(map_err(maps::BENCH_FRAME))?;
        let name = match target {
            BenchTarget::Dispatch => progs::DISPATCH,
            BenchTarget::TrivialTx => progs::TRIVIAL_TX,
        };
        let fd = self.prog_fd(name)?;
        self.m_bench_target
            .set(0, &fd, 0)
            .map_err(map_err(maps::BENCH_TARGET))?;
        let r = self.run_prog(progs::BENCH_RESTORE, frame, repeat)?;
        // The next run continues the sequence: its flows are new again.
        self.bench_seq = self.bench_seq.wrapping_add(repeat);
        Ok(r)
    }

    /// Empties the connection and NAT reverse tables and zeroes the
    /// active-connection counts (tests; an operator's `flush`).
    pub fn clear_flows(&mut self) -> Result<(), Error> {
        let keys: Vec<FlowKey> = self.m_flows.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = self.m_flows.remove(&k);
        }
        let keys: Vec<FlowKey> = self.m_nat.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = self.m_nat.remove(&k);
        }
        let keys: Vec<CallKey> = self.m_calls.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = self.m_calls.remove(&k);
        }
        for slot in 0..MAX_REAL_SLOTS {
            self.m_active
                .set(slot, 0, 0)
                .map_err(map_err(maps::REAL_ACTIVE))?;
        }
        Ok(())
    }

    /// Makes every flow and SIP call look `by_ns` older (tests of idle
    /// timeouts).
    pub fn age_flows(&mut self, by_ns: u64) -> Result<(), Error> {
        for (k, mut v) in self.flows() {
            v.last_seen_ns = v.last_seen_ns.saturating_sub(by_ns);
            self.m_flows.insert(k, v, 0).map_err(map_err(maps::FLOWS))?;
        }
        for (k, mut v) in self.calls() {
            v.last_seen_ns = v.last_seen_ns.saturating_sub(by_ns);
            self.m_calls.insert(k, v, 0).map_err(map_err(maps::CALLS))?;
        }
        Ok(())
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
            self.m_reasons
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
            self.m_svc_stats
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
            self.m_real_stats
                .set(i, v, 0)
                .map_err(map_err(maps::REAL_STATS))?;
        }
        Ok(())
    }

    /// Removes every service (tests).
    pub fn remove_all_services(&mut self) -> Result<(), Error> {
        let keys: Vec<ServiceKey> = self.services.keys().copied().collect();
        for k in keys {
            self.remove_service(&k)?;
        }
        Ok(())
    }

    /// Enables heartbeat detection on `port` with the SipHash `key` (port 0
    /// disables it: datagrams to it are then ordinary traffic).
    pub fn set_heartbeat(&mut self, key: &tandem_common::heartbeat::Key, port: u16) -> Result<(), Error> {
        let cfg = HbConfig { k0: key.k0, k1: key.k1, port, _pad: [0; 3] };
        self.m_hb_config.set(0, cfg, 0).map_err(map_err(maps::HB_CONFIG))
    }

    /// Declares a heartbeat sender: heartbeats from other node ids, or of
    /// another kind, are refused.
    pub fn add_heartbeat_node(&mut self, node_id: u32, kind: tandem_common::heartbeat::Kind) -> Result<(), Error> {
        self.m_hb_nodes.insert(node_id, kind as u32, 0).map_err(map_err(maps::HB_NODES))
    }

    pub fn remove_heartbeat_node(&mut self, node_id: u32) -> Result<(), Error> {
        let _ = self.m_hb_nodes.remove(&node_id);
        let keys: Vec<HbPeerKey> = self.m_hb_peers.keys().filter_map(Result::ok).filter(|k| k.node_id == node_id).collect();
        for k in keys {
            let _ = self.m_hb_peers.remove(&k);
        }
        Ok(())
    }

    /// What the kernel last heard from every sender on every path.
    pub fn heartbeat_peers(&self) -> Vec<HbPeer> {
        self.m_hb_peers.iter().filter_map(Result::ok).map(|(_, v)| v).collect()
    }

    /// The ring buffer of sender state changes (taken once; the caller
    /// polls its fd for readability, e.g. with io_uring, then drains it).
    pub fn take_heartbeat_events(&mut self) -> Option<HeartbeatEvents> {
        self.hb_events.take().map(RingEvents::new)
    }

    /// Marks an IPv4 VIP as owned (the program answers ARP for it with
    /// `mac`) or not.
    pub fn set_vip_owned(&mut self, vip: std::net::Ipv4Addr, mac: [u8; 6], owned: bool) -> Result<(), Error> {
        let key = u32::from_ne_bytes(vip.octets());
        if owned {
            self.m_owned_vips.insert(key, Iface { mac, _pad: [0; 2] }, 0).map_err(map_err(maps::OWNED_VIPS))
        } else {
            let _ = self.m_owned_vips.remove(&key);
            Ok(())
        }
    }

    /// Turns the push of new and expired flows to the flow ring buffer on
    /// or off (on while a standby is synced).
    pub fn set_flow_events(&mut self, on: bool) -> Result<(), Error> {
        self.flow_events_on = on;
        self.write_derived()
    }

    /// The ring buffer of connection-table changes (taken once).
    pub fn take_flow_events(&mut self) -> Option<FlowEvents> {
        self.flow_events.take().map(RingEvents::new)
    }

    /// Writes a flow learned from the active node into this node's
    /// connection table (standby side of state sync), counting it as an
    /// active connection of its real server. `service` and `real` name the
    /// service and real server by key and address (ids and slots differ
    /// between nodes). Returns false if this node has no such service or
    /// real server (the flow is then not kept).
    pub fn upsert_synced_flow(
        &mut self,
        key: &FlowKey,
        service: &ServiceKey,
        real: (std::net::IpAddr, u16),
        created_ns: u64,
        flags: u32,
    ) -> Result<bool, Error> {
        let Some(img) = self.services.get(service) else {
            return Ok(false);
        };
        let Some(slot) = img.slot_of(real.0, real.1) else {
            return Ok(false);
        };
        let id = img.service.id;
        let now = monotonic_coarse_ns();
        let old = self.m_flows.get(key, 0).ok();
        if let Some(o) = old
            && o.service_id == id
            && o.real_idx == slot
            && o.flags & (FLOW_COUNTED | FLOW_CLOSING) == flags & (FLOW_COUNTED | FLOW_CLOSING)
        {
            // Already held as synced (a snapshot after a role change
            // repeats what this node has): one lookup, no writes.
            return Ok(true);
        }
        let value = FlowValue {
            last_seen_ns: now,
            created_ns,
            service_id: id,
            real_idx: slot,
            flags: flags & (FLOW_COUNTED | FLOW_CLOSING),
            _pad: 0,
        };
        self.m_flows.insert(*key, value, 0).map_err(map_err(maps::FLOWS))?;
        if img.service.forward == Forward::Nat as u8 {
            // The real server's replies come back through this node now:
            // their reverse entry, as the XDP program writes it.
            let real = &img.reals[slot as usize];
            let port = if real.port != 0 { real.port } else { key.dport };
            let rkey = FlowKey::new(real.addr, key.src, port, key.sport, key.proto);
            self.m_nat
                .insert(rkey, NatReverse { service_id: id, real_idx: slot }, 0)
                .map_err(map_err(maps::NAT_REVERSE))?;
        }
        let was_counted = old.is_some_and(|o| o.flags & FLOW_COUNTED != 0 && o.service_id == id && o.real_idx == slot);
        if value.flags & FLOW_COUNTED != 0 && !was_counted {
            let a = self.active_conns(id, slot)?;
            self.set_active_conns(id, slot, a + 1)?;
        }
        Ok(true)
    }

    /// The ring buffer of SIP call-table changes (taken once; pushed while
    /// flow events are on, see [`Dataplane::set_flow_events`]).
    pub fn take_call_events(&mut self) -> Option<CallEvents> {
        self.call_events.take().map(RingEvents::new)
    }

    /// Writes a SIP call learned from the active node into this node's call
    /// table (standby side of state sync; `hash` is
    /// `tandem_common::sip::callid_hash` of the Call-ID), counting it as an
    /// active connection of its real server (once: a repeated upsert to the
    /// same real server does not count it again; a move counts it over).
    /// `service` and `real` name the service and real server by key and
    /// address. Returns false if this node has no such service or real server.
    pub fn upsert_synced_call(
        &mut self,
        service: &ServiceKey,
        hash: u64,
        real: (std::net::IpAddr, u16),
        created_ns: u64,
    ) -> Result<bool, Error> {
        let Some(img) = self.services.get(service) else {
            return Ok(false);
        };
        let Some(slot) = img.slot_of(real.0, real.1) else {
            return Ok(false);
        };
        let id = img.service.id;
        let key = CallKey::new(id, hash);
        let old = self.m_calls.get(&key, 0).ok();
        let value = CallValue {
            last_seen_ns: monotonic_coarse_ns(),
            created_ns,
            real_idx: slot,
            flags: CALL_COUNTED,
        };
        self.m_calls.insert(key, value, 0).map_err(map_err(maps::CALLS))?;
        match old {
            Some(o) if o.flags & CALL_COUNTED != 0 && o.real_idx == slot => {}
            Some(o) if o.flags & CALL_COUNTED != 0 => {
                let a = self.active_conns(id, o.real_idx)?;
                self.set_active_conns(id, o.real_idx, a.saturating_sub(1))?;
                let a = self.active_conns(id, slot)?;
                self.set_active_conns(id, slot, a + 1)?;
            }
            _ => {
                let a = self.active_conns(id, slot)?;
                self.set_active_conns(id, slot, a + 1)?;
            }
        }
        Ok(true)
    }

    /// Removes a SIP call (state sync: the active replaced it).
    pub fn remove_synced_call(&mut self, service: &ServiceKey, hash: u64) -> Result<(), Error> {
        let Some(img) = self.services.get(service) else {
            return Ok(());
        };
        let key = CallKey::new(img.service.id, hash);
        if let Ok(old) = self.m_calls.get(&key, 0) {
            let _ = self.m_calls.remove(&key);
            if old.flags & CALL_COUNTED != 0 {
                let a = self.active_conns(key.service_id, old.real_idx)?;
                self.set_active_conns(key.service_id, old.real_idx, a.saturating_sub(1))?;
            }
        }
        Ok(())
    }

    /// Removes a flow (state sync: the active expired it).
    pub fn remove_synced_flow(&mut self, key: &FlowKey) -> Result<(), Error> {
        if let Ok(old) = self.m_flows.get(key, 0) {
            let _ = self.m_flows.remove(key);
            if let Some(svc) = self.services.values().find(|i| i.service.id == old.service_id)
                && svc.service.forward == Forward::Nat as u8
                && let Some(real) = svc.reals.get(old.real_idx as usize)
            {
                let port = if real.port != 0 { real.port } else { key.dport };
                let _ = self.m_nat.remove(&FlowKey::new(real.addr, key.src, port, key.sport, key.proto));
            }
            if old.flags & FLOW_COUNTED != 0 {
                let a = self.active_conns(old.service_id, old.real_idx)?;
                self.set_active_conns(old.service_id, old.real_idx, a.saturating_sub(1))?;
            }
        }
        Ok(())
    }

    /// Attaches the benchmark sink (count and drop) to `iface`.
    pub fn attach_sink(&mut self, iface: &str) -> Result<Attached, Error> {
        self.attach_prog(progs::SINK, iface, AttachMode::Native)
    }

    /// Attaches the baseline forwarder to `iface`: every frame is
    /// redirected to `to_ifindex` (which must be a tx port).
    pub fn attach_trivial_forwarder(&mut self, iface: &str, to_ifindex: u32) -> Result<Attached, Error> {
        self.m_bench_fwd.set(0, to_ifindex, 0).map_err(map_err(maps::BENCH_FWD))?;
        self.attach_prog(progs::BENCH_FWD, iface, AttachMode::Native)
    }

    /// Frames the sink has counted, over all CPUs.
    pub fn sink_count(&self) -> Result<u64, Error> {
        let v = self.m_bench_count.get(&0, 0).map_err(map_err(maps::BENCH_COUNT))?;
        Ok(v.iter().sum())
    }

    /// Sends `repeat` copies of `frame` out of `ifindex` (in the calling
    /// thread's network namespace) as XDP live frames: the trivial XDP_TX
    /// program runs on each and the kernel transmits it for real.
    pub fn live_generate(&mut self, ifindex: u32, frame: &[u8], repeat: u32, batch: u32) -> Result<(), Error> {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex (u32 each).
        // The kernel wants data = 0 and data_end = the frame's length.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let name = progs::TRIVIAL_TX;
        let prog = self.xdp(name)?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.ctx_in = Some(&ctx);
        opts.repeat = repeat;
        opts.attrs = aya::programs::TestRunAttrs::new().xdp_live_frames(batch);
        prog.test_run(opts).map_err(|source| Error::Program { name, source })?;
        Ok(())
    }

    /// Sum of all per-reason counters (to check a benchmark's path).
    pub fn total_reasons(&self) -> Result<u64, Error> {
        Ok(self.reasons()?.iter().map(|(_, n)| n).sum())
    }
}

/// The port pre-filter entries and globals implied by a set of services
/// (only ports in use are listed; all others are 0).
pub fn derived<'a>(services: impl Iterator<Item = &'a Service>) -> (Vec<(u32, u32)>, Globals) {
    let mut ports: StdHashMap<u32, u32> = StdHashMap::new();
    let mut globals = Globals::default();
    for s in services {
        let mut bit = if s.flags & FLAG_ONE_PACKET != 0 {
            PORT_ONE_PACKET
        } else {
            PORT_CONN
        };
        if s.flags & FLAG_SIP_PERSIST != 0 && s.key.proto == PROTO_UDP {
            bit |= PORT_SIP;
        }
        *ports
            .entry(port_index(s.key.proto, s.key.port))
            .or_default() |= bit;
        if s.forward == Forward::Nat as u8 {
            globals.nat_services += 1;
        }
    }
    let mut ports: Vec<(u32, u32)> = ports.into_iter().collect();
    ports.sort();
    (ports, globals)
}

/// Records of type `T` the kernel pushes to a ring buffer: poll the fd
/// for readability (e.g. with io_uring), then drain with `next`.
pub struct RingEvents<T: Pod> {
    rb: aya::maps::RingBuf<MapData>,
    _record: std::marker::PhantomData<T>,
}

impl<T: Pod> RingEvents<T> {
    fn new(rb: aya::maps::RingBuf<MapData>) -> RingEvents<T> {
        RingEvents { rb, _record: std::marker::PhantomData }
    }

    /// The next pending record, if any (non-blocking).
    pub fn next(&mut self) -> Option<T> {
        let item = self.rb.next()?;
        if item.len() < std::mem::size_of::<T>() {
            return None;
        }
        // SAFETY: the kernel wrote a whole T (checked length), a plain-data
        // type; read unaligned.
        Some(unsafe { std::ptr::read_unaligned(item.as_ptr() as *const T) })
    }
}

impl<T: Pod> std::os::fd::AsRawFd for RingEvents<T> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.rb.as_raw_fd()
    }
}

/// Heartbeat sender changes pushed by the kernel (`HB_EVENTS`).
pub type HeartbeatEvents = RingEvents<HbPeer>;
/// Connection-table changes pushed by the kernel (`FLOW_EVENTS`).
pub type FlowEvents = RingEvents<FlowEvent>;
/// SIP call-table changes pushed by the kernel (`CALL_EVENTS`).
pub type CallEvents = RingEvents<CallEvent>;

/// CLOCK_MONOTONIC_COARSE in nanoseconds: the clock of flow timestamps
/// (`bpf_ktime_get_coarse_ns`).
pub fn monotonic_coarse_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `HbPeer::last_seen_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What [`Dataplane::bench_run`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchTarget {
    Dispatch,
    TrivialTx,
}
