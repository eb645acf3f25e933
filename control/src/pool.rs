//! The IVR pool manager, sans-IO: decides from the IVR servers' heartbeats
//! (as the kernel recorded them) which real servers are alive and what
//! load they report. Silent for the heartbeat deadline: dead (no new
//! flows); heard again: alive. Inputs carry `now`; outputs are changes for
//! the runtime to apply to the dataplane. No I/O, no clock of its own.
//!
//! Method kinds (quinn-proto style): getters ([`Pool::member`],
//! [`Pool::members`]), events with their time ([`Pool::heard`],
//! [`Pool::handle_timeout`]), what it wants next ([`Pool::poll_timeout`]);
//! and [`effective`], the merge of the pool's verdicts and the SIP probes'
//! into the services the dataplane schedules on.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use tandem_dataplane::{RealState, ServiceConfig};

/// What the pool knows of one IVR server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub alive: bool,
    pub last_seen: Option<Instant>,
    /// Reported active channels and capacity.
    pub load: (u32, u32),
}

/// A decision for the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The IVR with this node id became alive (`true`) or dead (`false`).
    Health { node_id: u32, alive: bool },
    /// Its reported load changed.
    Load {
        node_id: u32,
        active: u32,
        capacity: u32,
    },
}

/// The pool.
#[derive(Clone, Debug)]
pub struct Pool {
    deadline: Duration,
    members: BTreeMap<u32, Member>,
}

impl Pool {
    /// `nodes`: the configured IVR node ids. They start dead until heard
    /// (a server that never sent a heartbeat gets no calls).
    pub fn new(nodes: impl IntoIterator<Item = u32>, deadline: Duration) -> Pool {
        let members = nodes
            .into_iter()
            .map(|n| {
                (
                    n,
                    Member {
                        alive: false,
                        last_seen: None,
                        load: (0, 0),
                    },
                )
            })
            .collect();
        Pool { deadline, members }
    }

    pub fn member(&self, node_id: u32) -> Option<&Member> {
        self.members.get(&node_id)
    }

    pub fn members(&self) -> impl Iterator<Item = (u32, &Member)> {
        self.members.iter().map(|(k, v)| (*k, v))
    }

    /// A heartbeat of `node_id` arrived at `at` with this load. Unknown
    /// node ids are ignored (the kernel refuses them anyway).
    pub fn heard(&mut self, node_id: u32, at: Instant, load: (u32, u32), out: &mut Vec<Change>) {
        let Some(m) = self.members.get_mut(&node_id) else {
            return;
        };
        if m.last_seen.is_some_and(|t| t >= at) {
            return;
        }
        m.last_seen = Some(at);
        if !m.alive {
            m.alive = true;
            out.push(Change::Health {
                node_id,
                alive: true,
            });
        }
        if m.load != load {
            m.load = load;
            out.push(Change::Load {
                node_id,
                active: load.0,
                capacity: load.1,
            });
        }
    }

    /// Marks dead every member silent for the deadline at `now`.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Change>) {
        for (id, m) in self.members.iter_mut() {
            let silent = match m.last_seen {
                Some(t) => now.saturating_duration_since(t) > self.deadline,
                None => true,
            };
            if m.alive && silent {
                m.alive = false;
                out.push(Change::Health {
                    node_id: *id,
                    alive: false,
                });
            }
        }
    }

    /// After a reload: the configured IVR node ids are now `nodes`. Those
    /// that stay keep what the pool knows of them (alive, last heard,
    /// load); new ones start dead until heard, as at start-up; the others
    /// are forgotten.
    pub fn set_nodes(&mut self, nodes: impl IntoIterator<Item = u32>) {
        let old = std::mem::take(&mut self.members);
        for n in nodes {
            let m = old.get(&n).copied().unwrap_or(Member {
                alive: false,
                last_seen: None,
                load: (0, 0),
            });
            self.members.insert(n, m);
        }
    }

    /// When `handle_timeout` must next run (the earliest death of a live member).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.members
            .values()
            .filter(|m| m.alive)
            .filter_map(|m| m.last_seen.map(|t| t + self.deadline))
            .min()
    }
}

/// The services with health applied: a real server whose IVR is dead (its
/// heartbeat, `ivr_slots` maps IVR node ids to their (service, real)
/// places) or whose SIP stack does not answer (`sip_down`, from the
/// OPTIONS probes) is down (no new flows) whatever its configured state.
pub fn effective(
    services: &[ServiceConfig],
    ivr_slots: &HashMap<u32, Vec<(usize, usize)>>,
    pool: &Pool,
    sip_down: &HashSet<(usize, usize)>,
    macs: &crate::neigh::NeighTable,
) -> Vec<ServiceConfig> {
    let mut out = services.to_vec();
    // A real server the file gives no MAC takes the neighbour table's;
    // until it has one it stays at all zeros, which the dataplane keeps
    // down (no traffic).
    for r in out.iter_mut().flat_map(|s| s.reals.iter_mut()) {
        if r.mac == [0; 6]
            && let Some(m) = macs.mac(r.addr)
        {
            r.mac = m;
        }
    }
    let mut down = |si: usize, ri: usize| {
        if let Some(r) = out.get_mut(si).and_then(|s| s.reals.get_mut(ri)) {
            r.state = RealState::Down;
        }
    };
    for (si, ri) in sip_down {
        down(*si, *ri);
    }
    for (node, places) in ivr_slots {
        if !pool.member(*node).is_some_and(|m| m.alive) {
            for (si, ri) in places {
                down(*si, *ri);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_ivr_goes_down_and_comes_back() {
        let t0 = Instant::now();
        let d = Duration::from_millis(30);
        let mut p = Pool::new([101, 102], d);
        let mut out = Vec::new();
        assert!(!p.member(101).unwrap().alive, "unheard servers start dead");
        p.heard(101, t0, (2, 30), &mut out);
        p.heard(102, t0, (0, 30), &mut out);
        assert_eq!(
            out,
            vec![
                Change::Health {
                    node_id: 101,
                    alive: true
                },
                Change::Load {
                    node_id: 101,
                    active: 2,
                    capacity: 30
                },
                Change::Health {
                    node_id: 102,
                    alive: true
                },
                Change::Load {
                    node_id: 102,
                    active: 0,
                    capacity: 30
                },
            ]
        );
        out.clear();
        assert_eq!(p.poll_timeout(), Some(t0 + d));
        // 102 keeps talking, 101 goes silent.
        p.heard(102, t0 + Duration::from_millis(20), (0, 30), &mut out);
        p.handle_timeout(t0 + Duration::from_millis(29), &mut out);
        assert!(out.is_empty(), "not yet past the deadline");
        p.handle_timeout(t0 + Duration::from_millis(31), &mut out);
        assert_eq!(
            out,
            vec![Change::Health {
                node_id: 101,
                alive: false
            }]
        );
        out.clear();
        // An old record does not revive it; a new one does.
        p.heard(101, t0, (2, 30), &mut out);
        assert!(out.is_empty());
        p.heard(101, t0 + Duration::from_millis(40), (5, 30), &mut out);
        assert_eq!(
            out,
            vec![
                Change::Health {
                    node_id: 101,
                    alive: true
                },
                Change::Load {
                    node_id: 101,
                    active: 5,
                    capacity: 30
                }
            ]
        );
        // Unknown node ids change nothing.
        out.clear();
        p.heard(999, t0 + Duration::from_millis(50), (1, 1), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_reload_keeps_the_members_that_stay() {
        let t0 = Instant::now();
        let mut p = Pool::new([101, 102], Duration::from_millis(30));
        p.heard(101, t0, (3, 30), &mut Vec::new());
        p.set_nodes([101, 103]);
        assert_eq!(
            p.member(101),
            Some(&Member {
                alive: true,
                last_seen: Some(t0),
                load: (3, 30)
            }),
            "kept as it was"
        );
        assert!(!p.member(103).unwrap().alive, "a new IVR starts dead until heard");
        assert!(p.member(102).is_none(), "a removed IVR is forgotten");
    }

    #[test]
    fn effective_takes_dead_and_mute_servers_out() {
        use tandem_dataplane::{RealConfig, config::Protocol};
        let real = |k: u8| RealConfig {
            addr: format!("198.18.0.{}", 21 + k).parse().unwrap(),
            port: 0,
            mac: [2, 0, 0, 0, 0, k],
            weight: 1,
            state: RealState::Up,
            ifindex: 0,
        };
        let svc = ServiceConfig {
            vip: "198.18.0.100".parse().unwrap(),
            port: 5060,
            proto: Protocol::Udp,
            scheduler: tandem_dataplane::common::Scheduler::Rr,
            forward: tandem_dataplane::common::Forward::Dr,
            flags: 0,
            mh_size: tandem_dataplane::common::MH_DEFAULT_SIZE,
            client_ifindex: 0,
            gateway_mac: [0; 6],
            reals: (0..3).map(real).collect(),
        };
        let services = vec![svc];
        let t0 = Instant::now();
        let mut pool = Pool::new([101, 102], Duration::from_millis(30));
        pool.heard(101, t0, (0, 30), &mut Vec::new());
        let slots: HashMap<u32, Vec<(usize, usize)>> =
            [(101, vec![(0, 0)]), (102, vec![(0, 1)])].into();
        let mute: HashSet<(usize, usize)> = [(0, 2)].into();
        let eff = effective(&services, &slots, &pool, &mute, &Default::default());
        let states: Vec<RealState> = eff[0].reals.iter().map(|r| r.state).collect();
        assert_eq!(
            states,
            vec![RealState::Up, RealState::Down, RealState::Down]
        );
        // The configured services are not touched, and out-of-range places are ignored.
        assert_eq!(services[0].reals[1].state, RealState::Up);
        let stray: HashSet<(usize, usize)> = [(3, 0), (0, 9)].into();
        assert_eq!(
            effective(&services, &HashMap::new(), &pool, &stray, &Default::default())[0]
                .reals
                .len(),
            3
        );
        // A real server without a MAC takes the neighbour table's; one the
        // table does not know stays at zeros (the dataplane keeps it down).
        let mut unresolved = services.clone();
        unresolved[0].reals[0].mac = [0; 6];
        unresolved[0].reals[1].mac = [0; 6];
        let mut macs = crate::neigh::NeighTable::default();
        macs.set_wanted([unresolved[0].reals[0].addr]);
        macs.apply(crate::net::neigh::NeighNotice::Known { ifindex: 2, addr: unresolved[0].reals[0].addr, mac: [2, 0, 0, 0, 0, 0x77] });
        let eff = effective(&unresolved, &HashMap::new(), &pool, &HashSet::new(), &macs);
        assert_eq!(eff[0].reals[0].mac, [2, 0, 0, 0, 0, 0x77]);
        assert_eq!(eff[0].reals[1].mac, [0; 6]);
        assert_eq!(eff[0].reals[2].mac, services[0].reals[2].mac, "a configured MAC is kept");
    }
}
