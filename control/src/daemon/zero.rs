//! `tandemctl zero` (like `ipvsadm -Z`): the baselines the `services` and
//! `reals` views subtract from the kernel's packet, byte and connection
//! counters.
//!
//! The kernel's counters are never written here. They are what
//! `tandemctl metrics` and the scrape endpoint export as Prometheus
//! counters, which must only go up: zeroing a view moves its baseline,
//! so the operator's tables start from zero while every scrape still sees
//! the counters climb (no reset, and `rate()` over the moment of a zero
//! stays right). A counter below its baseline was reset under the daemon
//! (its service removed and added again): the baseline no longer applies
//! and the view shows the counter as it is ([`counted_since`]).
//!
//! Sans-IO: it holds numbers keyed by service name and real server
//! address, takes the views' raw counters and gives them back with the
//! baselines subtracted; it reads no map.

use std::{collections::HashMap, net::IpAddr};

use crate::admin::{RealStatus, ServiceStatus, rate::counted_since};

/// Counters at the moment of a zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Count {
    packets: u64,
    bytes: u64,
    new_flows: u64,
}

impl Count {
    fn since(self, packets: &mut u64, bytes: &mut u64, new_flows: &mut u64) {
        *packets = counted_since(self.packets, *packets);
        *bytes = counted_since(self.bytes, *bytes);
        *new_flows = counted_since(self.new_flows, *new_flows);
    }
}

/// The baselines of the views: by service name, and by the real
/// server's `service` as the views name it, then its address and port.
#[derive(Debug, Default)]
pub(super) struct Baseline {
    services: HashMap<String, Count>,
    reals: HashMap<String, HashMap<(IpAddr, u16), Count>>,
}

impl Baseline {
    /// Makes the counters of `services` (raw, as the kernel counts them)
    /// the views' new zero: every service's, or only the one named
    /// `only`. Returns the services and real servers zeroed.
    pub(super) fn zero(
        &mut self,
        services: &[ServiceStatus],
        only: Option<&str>,
    ) -> (usize, usize) {
        let (mut n, mut m) = (0, 0);
        for s in services {
            let name = s.name();
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let count = Count {
                packets: s.packets,
                bytes: s.bytes,
                new_flows: s.new_flows,
            };
            for r in &s.reals {
                let count = Count {
                    packets: r.packets,
                    bytes: r.bytes,
                    new_flows: r.new_flows,
                };
                self.reals
                    .entry(r.service.clone())
                    .or_default()
                    .insert((r.address, r.port), count);
                m += 1;
            }
            self.services.insert(name, count);
            n += 1;
        }
        (n, m)
    }

    fn real(&self, r: &mut RealStatus) {
        if let Some(c) = self
            .reals
            .get(&r.service)
            .and_then(|m| m.get(&(r.address, r.port)))
        {
            c.since(&mut r.packets, &mut r.bytes, &mut r.new_flows);
        }
    }

    /// The `services` view: the raw counters with the baselines subtracted.
    pub(super) fn apply(&self, services: &mut [ServiceStatus]) {
        if self.services.is_empty() {
            return;
        }
        for s in services {
            if let Some(c) = self.services.get(&s.name()) {
                c.since(&mut s.packets, &mut s.bytes, &mut s.new_flows);
            }
            for r in &mut s.reals {
                self.real(r);
            }
        }
    }

    /// The `reals` view, the same way.
    pub(super) fn apply_reals(&self, reals: &mut [RealStatus]) {
        if self.reals.is_empty() {
            return;
        }
        for r in reals {
            self.real(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(last: u8, packets: u64) -> RealStatus {
        RealStatus {
            service: "udp/198.18.0.100:5060".into(),
            address: format!("198.18.0.{last}").parse().unwrap(),
            port: 0,
            weight: 1,
            state: "up".into(),
            health: "alive".into(),
            flows: 3,
            channels: None,
            capacity: None,
            packets,
            bytes: packets * 100,
            new_flows: packets / 10,
            mac: None,
        }
    }

    fn service(port: u16, packets: u64, reals: Vec<RealStatus>) -> ServiceStatus {
        ServiceStatus {
            vip: "198.18.0.100".parse().unwrap(),
            port,
            protocol: "udp".into(),
            scheduler: "rr".into(),
            forward: "dr".into(),
            flags: Vec::new(),
            packets,
            bytes: packets * 100,
            new_flows: packets / 10,
            reals: reals
                .into_iter()
                .map(|mut r| {
                    r.service = format!("udp/198.18.0.100:{port}");
                    r
                })
                .collect(),
        }
    }

    #[test]
    fn a_zeroed_view_counts_from_the_zero_and_the_others_are_untouched() {
        let mut b = Baseline::default();
        let raw = vec![
            service(5060, 1_000, vec![real(21, 600), real(22, 400)]),
            service(5070, 50, vec![real(21, 50)]),
        ];
        assert_eq!(b.zero(&raw, Some("udp/198.18.0.100:5060")), (1, 2));
        // Later, the kernel counted on.
        let mut later = vec![
            service(5060, 1_030, vec![real(21, 620), real(22, 410)]),
            service(5070, 80, vec![real(21, 80)]),
        ];
        let mut reals: Vec<RealStatus> = later.iter().flat_map(|s| s.reals.clone()).collect();
        b.apply(&mut later);
        b.apply_reals(&mut reals);
        assert_eq!(
            (later[0].packets, later[0].bytes, later[0].new_flows),
            (30, 3_000, 3)
        );
        assert_eq!(
            later[0].reals.iter().map(|r| r.packets).collect::<Vec<_>>(),
            [20, 10]
        );
        assert_eq!(later[0].reals[0].new_flows, 62 - 60);
        assert_eq!(
            later[0].reals[0].flows, 3,
            "active connections are a gauge: not zeroed"
        );
        assert_eq!(later[1].packets, 80, "another service is not zeroed");
        assert_eq!(
            reals.iter().map(|r| r.packets).collect::<Vec<_>>(),
            [20, 10, 80]
        );
    }

    #[test]
    fn zero_of_all_and_a_counter_reset_under_the_daemon() {
        let mut b = Baseline::default();
        let raw = vec![
            service(5060, 1_000, vec![real(21, 600)]),
            service(5070, 50, vec![]),
        ];
        assert_eq!(b.zero(&raw, None), (2, 1));
        let mut now = raw.clone();
        b.apply(&mut now);
        assert_eq!(
            (now[0].packets, now[0].reals[0].packets, now[1].packets),
            (0, 0, 0)
        );
        // The service was removed and added again: its counters restarted
        // below the baseline, and are shown as they are.
        let mut readded = vec![service(5060, 7, vec![real(21, 7)])];
        b.apply(&mut readded);
        assert_eq!((readded[0].packets, readded[0].reals[0].packets), (7, 7));
        // A name that matches nothing zeroes nothing.
        assert_eq!(b.zero(&raw, Some("tcp/198.18.0.100:5060")), (0, 0));
    }
}
