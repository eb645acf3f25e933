//! The file written back from a [`Config`] (`tandemctl save`, the
//! replicated services, the example's check): every value, defaults
//! included, in the tables of [`super::File`].

use super::*;

impl File {
    /// Every value written out, defaults included: the file of `to_toml`
    /// (inline keys shown only with `show_keys`).
    pub(in crate::config) fn written(c: &Config, show_keys: bool) -> File {
        let hb = &c.heartbeat;
        let (key, key_file) = hb.key.fields(show_keys);
        let (next_key, next_key_file) = hb
            .next_key
            .as_ref()
            .map_or((None, None), |k| k.fields(show_keys));
        let (ivr_key, ivr_key_file) = hb
            .ivr_key
            .as_ref()
            .map_or((None, None), |k| k.fields(show_keys));
        let name = |s: &String| IfName(s.clone());
        File {
            node: NodeTable {
                id: Int(c.node.id),
                name: NodeName(c.node.name.clone()),
                priority: Int(c.node.priority),
                preempt: Bool(c.node.preempt),
                peer_id: Int(c.node.peer_id),
                realtime_priority: Int(c.node.realtime_priority),
                card_fault_holddown_ms: Millis(c.node.card_fault_holddown),
                hold_down_ms: Millis(c.node.hold_down),
                hold_down_max_ms: Millis(c.node.hold_down_max),
                preempt_delay_ms: Millis(c.node.preempt_delay),
                switchover_hold_ms: Millis(c.node.switchover_hold.unwrap_or_default()),
            },
            heartbeat: HeartbeatTable {
                port: Int(hb.port),
                interval_ms: Millis(hb.interval),
                multiplier: Int(hb.multiplier),
                key,
                key_file,
                next_key,
                next_key_file,
                ivr_key,
                ivr_key_file,
                paths: List(
                    hb.paths
                        .iter()
                        .map(|p| PathTable {
                            name: Text(p.name.clone()),
                            interface: name(&p.interface),
                            local: UnicastV4(p.local),
                            peer: UnicastV4(p.peer),
                        })
                        .collect(),
                ),
                dead_man_ms: Some(Millis(hb.dead_man.unwrap_or_default())),
                echo: Bool(hb.echo),
            },
            sync: Some(match &c.sync {
                Some(s) => SyncTable {
                    enabled: Bool(true),
                    port: Int(s.port),
                    key: s.key.fields(show_keys).0,
                    key_file: s.key.fields(show_keys).1,
                    next_key: s.next_key.as_ref().and_then(|k| k.fields(show_keys).0),
                    next_key_file: s.next_key.as_ref().and_then(|k| k.fields(show_keys).1),
                    local: Some(OneOrMany(s.local.iter().copied().map(SyncAddr).collect())),
                    peer: Some(OneOrMany(s.peer.iter().copied().map(SyncAddr).collect())),
                },
                None => SyncTable {
                    enabled: Bool(false),
                    port: default_sync_port(),
                    key: None,
                    key_file: None,
                    next_key: None,
                    next_key_file: None,
                    local: None,
                    peer: None,
                },
            }),
            witness: c.witness.as_ref().map(|w| WitnessTable {
                address: UnicastV4(w.address),
                probe_interval_ms: Some(Millis(w.probe_interval)),
            }),
            vip: List(
                c.vips
                    .iter()
                    .map(|v| VipTable {
                        address: UnicastV4(v.address),
                        interface: name(&v.interface),
                        garp_count: Int(v.garp_count),
                        garp_interval_ms: Millis(v.garp_interval),
                    })
                    .collect(),
            ),
            dataplane: DataplaneTable {
                xdp_mode: Word(c.dataplane.xdp_mode.into()),
                interfaces: Some(List(c.dataplane.interfaces.iter().map(name).collect())),
                flow_entries: Int(c.dataplane.flow_entries),
                pin_dir: c.dataplane.pin_dir.as_ref().map(|p| Text(p.to_string_lossy().into_owned())),
                restart_grace_ms: Millis(c.dataplane.restart_grace),
            },
            timeouts: Some(TimeoutsTable {
                tcp_s: Int(c.timeouts.tcp_s),
                tcp_fin_s: Int(c.timeouts.tcp_fin_s),
                udp_s: Int(c.timeouts.udp_s),
                sip_call_s: Int(c.timeouts.sip_call_s),
            }),
            service: List(c.services.iter().map(service_table).collect()),
            admin: AdminTable {
                socket: Text(c.admin.socket.to_string_lossy().into_owned()),
                metrics_listen: c.admin.metrics_listen.map(ListenAddr),
                read_group: c.admin.read_group.clone().map(Text),
            },
            card: List(c.cards.iter().map(card_table).collect()),
        }
    }
}

/// The names of the bits set in `bits`, in the table's order.
fn names_of<T: Copy, V: Copy + PartialEq + std::ops::BitAnd<Output = V> + Default>(
    table: &[(&str, V)],
    bits: V,
    wrap: impl Fn(V) -> T,
) -> List<T> {
    List(
        table
            .iter()
            .filter(|(_, bit)| bits & *bit != V::default())
            .map(|(_, bit)| wrap(*bit))
            .collect(),
    )
}

fn service_table(s: &ServiceEntry) -> ServiceTable {
    ServiceTable {
        vip: Unicast(s.vip),
        port: Int(s.port),
        protocol: Word(s.protocol),
        scheduler: Word(s.scheduler),
        forward: Word(s.forward),
        flags: names_of(&super::super::FLAG_NAMES, s.flags, FlagName),
        mh_size: Int(s.mh_size),
        gateway_mac: s.gateway_mac.map(Mac),
        client_interface: s.client_interface.clone().map(IfName),
        sip_options: s.sip_options.as_ref().map(|o| SipOptionsTable {
            interval_ms: Millis(o.interval),
            timeout_ms: Millis(o.timeout),
            failures: Int(o.failures),
        }),
        real: List(
            s.reals
                .iter()
                .map(|r| RealTable {
                    address: Unicast(r.address),
                    port: Int(r.port),
                    mac: r.mac.map(Mac),
                    weight: Int(r.weight),
                    state: Word(r.state),
                    interface: r.interface.clone().map(IfName),
                    node_id: r.node_id.map(Int),
                })
                .collect(),
        ),
    }
}

fn card_table(c: &CardConfig) -> CardTable {
    // With a system.conf, the spans, lines and channels stay in it.
    let own = c.system.is_none();
    CardTable {
        root: AbsPath(c.root.to_string_lossy().into_owned()),
        system_conf: c
            .system
            .as_ref()
            .map(|s| AbsPath(s.path.to_string_lossy().into_owned())),
        spans: own.then(|| List(c.spans.iter().copied().map(Span).collect())),
        takeover_deadline_ms: Millis(c.takeover_deadline),
        lineconfig: c
            .line
            .map(|l| names_of(&super::super::LINECONFIG_NAMES, l.config, LineWord)),
        timing: c.line.map(|l| Int(l.timing)),
        signalling: own.then_some(Signalling(c.signalling)),
        auto_answer: Bool(c.auto_answer),
        watchdog_ms: c.watchdog.map(Millis),
    }
}
