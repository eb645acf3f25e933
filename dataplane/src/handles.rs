//! The typed handles of every map of the XDP objects, grouped by what they
//! hold: [`Maps`] is taken from the loaded dataplane object once, at load
//! time; the benchmark object's ([`BenchObject`]) only when a benchmark or
//! test first needs it (`run`).
//!
//! It owns the handles and how they are taken (a missing map or a layout
//! mismatch is an error naming the map); what is written to them is the
//! business of the modules that use each group. The kernel-side names and
//! layouts are `tandem_common::maps` and `tandem_common::abi`.

use aya::{
    Ebpf,
    maps::{Array, DevMapHash, HashMap, MapData, PerCpuArray, ProgramArray, RingBuf},
};
use tandem_common::*;

use crate::Error;

/// Every map handle of the loaded object.
pub(crate) struct Maps {
    pub services: ServiceMaps,
    pub conns: ConnMaps,
    pub counters: CounterMaps,
    pub node: NodeMaps,
    pub heartbeat: HeartbeatMaps,
    pub rings: Rings,
    /// The benchmark object, once loaded (`Dataplane::load_bench`).
    pub bench: Option<BenchObject>,
}

/// Virtual services, their real servers and scheduler tables, and what is
/// derived from the set of services (written by `services`).
pub(crate) struct ServiceMaps {
    /// `SERVICES`: service key to id.
    pub ids: HashMap<MapData, ServiceKey, u32>,
    /// `SERVICE_CONF`, by id.
    pub conf: Array<MapData, Service>,
    /// `REALS`, by `id * MAX_REALS + slot`.
    pub reals: Array<MapData, RealServer>,
    /// `REAL_LOAD`: what each real server reports, same index as `REALS`.
    pub real_load: Array<MapData, RealLoad>,
    /// `SCHED_STATE`: rr/wrr cursors, by id.
    pub sched: Array<MapData, SchedState>,
    /// `WRR_SEQ`: wrr sequences, `WRR_SEQ_MAX` per id.
    pub wrr: Array<MapData, u32>,
    /// `SHDH_TABLE`: sh/dh buckets, `SHDH_BUCKETS` per id.
    pub shdh: Array<MapData, u32>,
    /// `MH_TABLE`: Maglev tables, `MH_MAX_SIZE` per Maglev slot.
    pub mh: Array<MapData, u32>,
    /// `PORT_FLAGS`: the port pre-filter.
    pub port_flags: Array<MapData, u32>,
    /// `GLOBALS`: NAT service count, flow events on/off.
    pub globals: Array<MapData, Globals>,
    /// `VIP_FILTER`: every service address and guarded VIP, as a filter.
    pub vip_filter: Array<MapData, VipFilter>,
}

/// The tables the program keeps per connection and per SIP call.
pub(crate) struct ConnMaps {
    /// `FLOWS`: the connection table.
    pub flows: HashMap<MapData, FlowKey, FlowValue>,
    /// `CALLS`: the SIP call table.
    pub calls: HashMap<MapData, CallKey, CallValue>,
    /// `NAT_REVERSE`: real → client 5-tuples of NAT flows.
    pub nat: HashMap<MapData, FlowKey, NatReverse>,
}

/// Counters the program keeps.
pub(crate) struct CounterMaps {
    /// `REAL_ACTIVE`: active connections per real server as the program
    /// counts them. Read only here: the program is its one writer.
    pub active: Array<MapData, u64>,
    /// `REAL_ACTIVE_ADJ`: the host's adjustment of `REAL_ACTIVE` (see
    /// `tandem_common::active_count`). Written only here.
    pub active_adj: Array<MapData, i64>,
    /// `REASONS`, per CPU.
    pub reasons: PerCpuArray<MapData, u64>,
    /// `SERVICE_STATS`, per CPU, by id.
    pub service_stats: PerCpuArray<MapData, Counters>,
    /// `REAL_STATS`, per CPU, same index as `REALS`.
    pub real_stats: PerCpuArray<MapData, Counters>,
}

/// Node-wide settings, interfaces and the program's own stages.
pub(crate) struct NodeMaps {
    /// `SETTINGS`: timeouts.
    pub settings: Array<MapData, Settings>,
    /// `IFACES`: MAC of each interface frames may leave by.
    pub ifaces: HashMap<MapData, u32, Iface>,
    /// `TX_PORTS`: the redirect devmap.
    pub tx_ports: DevMapHash<MapData>,
    /// `STAGES`: the tail-called stages of the dispatcher.
    pub stages: ProgramArray<MapData>,
}

/// Heartbeat detection and the VIPs this node answers ARP for.
pub(crate) struct HeartbeatMaps {
    /// `HB_CONFIG`: the port.
    pub config: Array<MapData, HbConfig>,
    /// `HB_SENDERS`: configured senders, with their paths and keys.
    pub senders: HashMap<MapData, HbSenderKey, HbSender>,
    /// `HB_PEERS`: last heartbeat taken per sender.
    pub peers: HashMap<MapData, HbSenderKey, HbPeer>,
    /// `OWNED_VIPS`: IPv4 VIPs answered in XDP.
    pub owned_vips: HashMap<MapData, u32, Iface>,
    /// `VIPS`: every IPv4 VIP the pair may own (the VIP guard).
    pub vips: HashMap<MapData, u32, u32>,
    /// `HB_BAD_MAC`: bad-MAC heartbeats per configured sender.
    pub bad_mac: HashMap<MapData, HbSenderKey, HbBadMac>,
    /// `DEAD_MAN`: the daemon's stamp and budget, the trip latch.
    pub dead_man: Array<MapData, DeadMan>,
    /// `ECHO_CONFIG`: this node's echo identity.
    pub echo_config: Array<MapData, EchoConfig>,
    /// `ECHO_RETURNS`: the newest returned echo per path.
    pub echo_returns: Array<MapData, EchoRecord>,
}

/// The ring buffers the kernel pushes to; each is handed out once
/// (`Dataplane::take_*_events`), hence the `Option`.
pub(crate) struct Rings {
    /// `HB_EVENTS`.
    pub heartbeats: Option<RingBuf<MapData>>,
    /// `FLOW_EVENTS`.
    pub flows: Option<RingBuf<MapData>>,
    /// `CALL_EVENTS`.
    pub calls: Option<RingBuf<MapData>>,
}

/// The benchmark object (`tandem-bench`): its programs and its maps.
pub(crate) struct BenchObject {
    pub ebpf: Ebpf,
    pub maps: BenchMaps,
}

/// The benchmark programs' maps.
pub(crate) struct BenchMaps {
    /// `BENCH_FRAME`: the frame the restoring wrapper copies back.
    pub frame: Array<MapData, BenchFrame>,
    /// `BENCH_TARGET`: the program the wrapper tail-calls.
    pub target: ProgramArray<MapData>,
    /// `BENCH_COUNT`: frames the sink counted, per CPU.
    pub count: PerCpuArray<MapData, u64>,
    /// `BENCH_FWD`: where the baseline forwarder redirects to.
    pub fwd: Array<MapData, u32>,
    /// `BENCH_TX_PORTS`: the baseline forwarder's redirect devmap.
    pub tx_ports: DevMapHash<MapData>,
}

impl BenchMaps {
    /// Takes every map out of the loaded benchmark object.
    pub fn take(ebpf: &mut Ebpf) -> Result<BenchMaps, Error> {
        Ok(BenchMaps {
            frame: take(ebpf, maps::BENCH_FRAME)?,
            target: take(ebpf, maps::BENCH_TARGET)?,
            count: take(ebpf, maps::BENCH_COUNT)?,
            fwd: take(ebpf, maps::BENCH_FWD)?,
            tx_ports: take(ebpf, maps::BENCH_TX_PORTS)?,
        })
    }
}

impl Maps {
    /// Takes every map out of the loaded dataplane object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Maps, Error> {
        Ok(Maps {
            services: ServiceMaps {
                ids: take(ebpf, maps::SERVICES)?,
                conf: take(ebpf, maps::SERVICE_CONF)?,
                reals: take(ebpf, maps::REALS)?,
                real_load: take(ebpf, maps::REAL_LOAD)?,
                sched: take(ebpf, maps::SCHED_STATE)?,
                wrr: take(ebpf, maps::WRR_SEQ)?,
                shdh: take(ebpf, maps::SHDH_TABLE)?,
                mh: take(ebpf, maps::MH_TABLE)?,
                port_flags: take(ebpf, maps::PORT_FLAGS)?,
                globals: take(ebpf, maps::GLOBALS)?,
                vip_filter: take(ebpf, maps::VIP_FILTER)?,
            },
            conns: ConnMaps {
                flows: take(ebpf, maps::FLOWS)?,
                calls: take(ebpf, maps::CALLS)?,
                nat: take(ebpf, maps::NAT_REVERSE)?,
            },
            counters: CounterMaps {
                active: take(ebpf, maps::REAL_ACTIVE)?,
                active_adj: take(ebpf, maps::REAL_ACTIVE_ADJ)?,
                reasons: take(ebpf, maps::REASONS)?,
                service_stats: take(ebpf, maps::SERVICE_STATS)?,
                real_stats: take(ebpf, maps::REAL_STATS)?,
            },
            node: NodeMaps {
                settings: take(ebpf, maps::SETTINGS)?,
                ifaces: take(ebpf, maps::IFACES)?,
                tx_ports: take(ebpf, maps::TX_PORTS)?,
                stages: take(ebpf, maps::STAGES)?,
            },
            heartbeat: HeartbeatMaps {
                config: take(ebpf, maps::HB_CONFIG)?,
                senders: take(ebpf, maps::HB_SENDERS)?,
                peers: take(ebpf, maps::HB_PEERS)?,
                owned_vips: take(ebpf, maps::OWNED_VIPS)?,
                vips: take(ebpf, maps::VIPS)?,
                dead_man: take(ebpf, maps::DEAD_MAN)?,
                bad_mac: take(ebpf, maps::HB_BAD_MAC)?,
                echo_config: take(ebpf, maps::ECHO_CONFIG)?,
                echo_returns: take(ebpf, maps::ECHO_RETURNS)?,
            },
            rings: Rings {
                heartbeats: Some(take(ebpf, maps::HB_EVENTS)?),
                flows: Some(take(ebpf, maps::FLOW_EVENTS)?),
                calls: Some(take(ebpf, maps::CALL_EVENTS)?),
            },
            bench: None,
        })
    }
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, Error> {
    let map = ebpf.take_map(name).ok_or(Error::MissingMap(name))?;
    T::try_from(map).map_err(|source| Error::Map { name, source })
}

