//! The names of the maps and programs in the two object files: the
//! dataplane (`tandem`, what `tandemd` loads) and the benchmark object
//! (`tandem-bench`, loaded only by benchmarks and tests). The names of the
//! benchmark object are marked as such.

/// Map names in the object files, for the host's typed accessors.
pub mod maps {
    pub const SERVICES: &str = "SERVICES";
    pub const SERVICE_CONF: &str = "SERVICE_CONF";
    pub const REALS: &str = "REALS";
    pub const REAL_ACTIVE: &str = "REAL_ACTIVE";
    pub const REAL_ACTIVE_ADJ: &str = "REAL_ACTIVE_ADJ";
    pub const REAL_LOAD: &str = "REAL_LOAD";
    pub const SCHED_STATE: &str = "SCHED_STATE";
    pub const WRR_SEQ: &str = "WRR_SEQ";
    pub const SHDH_TABLE: &str = "SHDH_TABLE";
    pub const MH_TABLE: &str = "MH_TABLE";
    pub const FLOWS: &str = "FLOWS";
    pub const NAT_REVERSE: &str = "NAT_REVERSE";
    pub const SETTINGS: &str = "SETTINGS";
    pub const IFACES: &str = "IFACES";
    pub const TX_PORTS: &str = "TX_PORTS";
    pub const REASONS: &str = "REASONS";
    pub const SERVICE_STATS: &str = "SERVICE_STATS";
    pub const REAL_STATS: &str = "REAL_STATS";
    pub const STAGES: &str = "STAGES";
    pub const PORT_FLAGS: &str = "PORT_FLAGS";
    pub const GLOBALS: &str = "GLOBALS";
    pub const VIP_FILTER: &str = "VIP_FILTER";
    pub const HB_CONFIG: &str = "HB_CONFIG";
    pub const HB_SENDERS: &str = "HB_SENDERS";
    pub const HB_PEERS: &str = "HB_PEERS";
    pub const HB_EVENTS: &str = "HB_EVENTS";
    pub const FLOW_EVENTS: &str = "FLOW_EVENTS";
    pub const CALLS: &str = "CALLS";
    pub const CALL_EVENTS: &str = "CALL_EVENTS";
    pub const OWNED_VIPS: &str = "OWNED_VIPS";
    pub const DEAD_MAN: &str = "DEAD_MAN";
    pub const HB_BAD_MAC: &str = "HB_BAD_MAC";
    pub const VIPS: &str = "VIPS";
    pub const ECHO_CONFIG: &str = "ECHO_CONFIG";
    pub const ECHO_RETURNS: &str = "ECHO_RETURNS";

    // The benchmark object's maps.
    pub const BENCH_FRAME: &str = "BENCH_FRAME";
    pub const BENCH_TARGET: &str = "BENCH_TARGET";
    pub const BENCH_COUNT: &str = "BENCH_COUNT";
    pub const BENCH_FWD: &str = "BENCH_FWD";
    /// The baseline forwarder's redirect devmap.
    pub const BENCH_TX_PORTS: &str = "BENCH_TX_PORTS";
}

/// Program names in the object files.
pub mod progs {
    /// The dispatcher attached to interfaces.
    pub const DISPATCH: &str = "tandem_xdp";
    /// The dispatcher's new-flow stage, entered by tail call (`STAGES[0]`).
    pub const NEW_FLOW: &str = "tandem_new_flow";
    /// The new-flow stage of load-aware services (`STAGES[1]`).
    pub const NEW_FLOW_LOAD: &str = "tandem_new_flow_load";
    /// The SIP stage (`STAGES[2]`): Call-ID scan, `CALLS` lookup, TCP learning.
    pub const SIP: &str = "tandem_sip";
    /// XDP_PASS, for the far end of veths that receive XDP_TX/REDIRECT.
    pub const PASS: &str = "tandem_pass";
    /// Raw tracepoint on `sched_process_exit`: sets `DEAD_MAN.exited` when
    /// the armed daemon's thread-group leader exits.
    pub const EXIT_FENCE: &str = "tandem_exit_fence";
    /// The kernel tracepoint [`EXIT_FENCE`] is attached to.
    pub const EXIT_FENCE_TP: &str = "sched_process_exit";

    // The benchmark object's programs.
    /// Benchmark floor: XDP_TX on the same packet.
    pub const TRIVIAL_TX: &str = "tandem_trivial_tx";
    /// Benchmark sink: counts (`BENCH_COUNT`) and drops.
    pub const SINK: &str = "tandem_sink";
    /// Benchmark baseline forwarder: redirects to `BENCH_FWD[0]`.
    pub const BENCH_FWD: &str = "tandem_bench_fwd";
    /// Benchmark wrapper: restores the frame then tail-calls `BENCH_TARGET[0]`.
    pub const BENCH_RESTORE: &str = "tandem_bench_restore";

    /// The programs of the dataplane object, all loaded at once.
    pub const DATAPLANE: [&str; 5] = [DISPATCH, NEW_FLOW, NEW_FLOW_LOAD, SIP, PASS];
    /// The programs of the benchmark object.
    pub const BENCH: [&str; 4] = [TRIVIAL_TX, BENCH_RESTORE, SINK, BENCH_FWD];
}
