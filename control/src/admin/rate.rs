//! `tandemctl services --rate` (like `ipvsadm -Ln --rate`): connections,
//! packets and bytes per second of each service and real server, from two
//! `services` answers an interval apart, over the daemon's own clock
//! (each answer's `taken_ns`, CLOCK_MONOTONIC when it read the counters).
//!
//! Pure arithmetic on the replies: the client asks twice and the daemon
//! never waits for the interval. Only what the kernel counts is given a
//! rate: packets and bytes from clients to the VIP ("in"). There is no
//! "out" per service: in DR mode the real servers answer the clients
//! directly, not through the director; in NAT mode the program rewrites
//! the replies but counts them only node-wide (`tandemctl stats`,
//! `reverse_nat`) — so the out rates are None (`-` in the table).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::protocol::ServiceStatus;

/// How much a counter counted from `before` to `now`. A counter below
/// its earlier value was reset in between (zeroed, or its service added
/// again): it counted `now` since.
pub fn counted_since(before: u64, now: u64) -> u64 {
    if now >= before { now - before } else { now }
}

/// The rates of one service or real server, per second.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// New connections (flows and SIP calls scheduled).
    pub cps: f64,
    pub in_pps: f64,
    /// Not counted per service (see the module's doc).
    pub out_pps: Option<f64>,
    /// Bytes per second.
    pub in_bps: f64,
    pub out_bps: Option<f64>,
}

/// One real server's rates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealRate {
    pub address: IpAddr,
    /// As configured (0: the virtual port).
    pub port: u16,
    #[serde(flatten)]
    pub rate: Rate,
}

/// One service's rates, with its real servers'.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceRate {
    /// `udp/198.18.0.100:5060`.
    pub service: String,
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: String,
    #[serde(flatten)]
    pub rate: Rate,
    pub reals: Vec<RealRate>,
}

/// What `tandemctl --json services --rate` prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatesReply {
    /// The interval measured, on the daemon's clock.
    pub interval_ns: u64,
    pub services: Vec<ServiceRate>,
}

/// Why no rates can be given.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("tandemd did not say when it read its counters (taken_ns is 0): it predates rates")]
    NoTimestamp,
    #[error("the second answer is not later than the first (taken_ns {first} then {second})")]
    NotLater { first: u64, second: u64 },
}

fn rate((new0, pk0, by0): (u64, u64, u64), (new1, pk1, by1): (u64, u64, u64), secs: f64) -> Rate {
    Rate {
        cps: counted_since(new0, new1) as f64 / secs,
        in_pps: counted_since(pk0, pk1) as f64 / secs,
        out_pps: None,
        in_bps: counted_since(by0, by1) as f64 / secs,
        out_bps: None,
    }
}

/// The rates between two `services` answers taken at `first.0` and
/// `second.0` (their `taken_ns`). Services and real servers are matched
/// by name and address; one only in the second answer (added in between)
/// counts from zero, one only in the first is left out.
pub fn rates(
    first: (u64, &[ServiceStatus]),
    second: (u64, &[ServiceStatus]),
) -> Result<RatesReply, RateError> {
    let (t0, before) = first;
    let (t1, after) = second;
    if t0 == 0 || t1 == 0 {
        return Err(RateError::NoTimestamp);
    }
    if t1 <= t0 {
        return Err(RateError::NotLater {
            first: t0,
            second: t1,
        });
    }
    let secs = (t1 - t0) as f64 / 1e9;
    let services = after
        .iter()
        .map(|s| {
            let name = s.name();
            let old = before.iter().find(|o| o.name() == name);
            let counts = |o: Option<&ServiceStatus>| {
                o.map_or((0, 0, 0), |o| (o.new_flows, o.packets, o.bytes))
            };
            ServiceRate {
                service: name,
                vip: s.vip,
                port: s.port,
                protocol: s.protocol.clone(),
                rate: rate(counts(old), counts(Some(s)), secs),
                reals: s
                    .reals
                    .iter()
                    .map(|r| {
                        let was = old
                            .and_then(|o| {
                                o.reals
                                    .iter()
                                    .find(|x| x.address == r.address && x.port == r.port)
                            })
                            .map_or((0, 0, 0), |x| (x.new_flows, x.packets, x.bytes));
                        RealRate {
                            address: r.address,
                            port: r.port,
                            rate: rate(was, (r.new_flows, r.packets, r.bytes), secs),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(RatesReply {
        interval_ns: t1 - t0,
        services,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::RealStatus;

    fn service(
        new_flows: u64,
        packets: u64,
        bytes: u64,
        reals: &[(u8, u64, u64, u64)],
    ) -> ServiceStatus {
        ServiceStatus {
            vip: "198.18.0.100".parse().unwrap(),
            port: 5060,
            protocol: "udp".into(),
            scheduler: "rr".into(),
            forward: "dr".into(),
            flags: Vec::new(),
            packets,
            bytes,
            new_flows,
            reals: reals
                .iter()
                .map(|&(last, n, p, b)| RealStatus {
                    service: "udp/198.18.0.100:5060".into(),
                    address: format!("198.18.0.{last}").parse().unwrap(),
                    port: 0,
                    weight: 1,
                    state: "up".into(),
                    health: "alive".into(),
                    flows: 0,
                    channels: None,
                    capacity: None,
                    packets: p,
                    bytes: b,
                    new_flows: n,
                    mac: None,
                })
                .collect(),
        }
    }

    #[test]
    fn counters_reset_in_between_count_from_zero() {
        assert_eq!(counted_since(10, 25), 15);
        assert_eq!(counted_since(25, 25), 0);
        assert_eq!(counted_since(1000, 7), 7, "zeroed or re-added: 7 since");
    }

    #[test]
    fn rates_are_the_differences_over_the_daemons_interval() {
        let before = [service(
            10,
            1_000,
            100_000,
            &[(21, 4, 600, 60_000), (22, 6, 400, 40_000)],
        )];
        // Half a second later on the daemon's clock.
        let after = [service(
            60,
            3_000,
            400_000,
            &[
                (21, 24, 1_600, 210_000),
                (22, 36, 1_400, 190_000),
                (23, 5, 10, 1_000),
            ],
        )];
        let r = rates((1_000_000_000, &before), (1_500_000_000, &after)).unwrap();
        assert_eq!(r.interval_ns, 500_000_000);
        let s = &r.services[0];
        assert_eq!(s.service, "udp/198.18.0.100:5060");
        assert_eq!(
            s.rate,
            Rate {
                cps: 100.0,
                in_pps: 4_000.0,
                out_pps: None,
                in_bps: 600_000.0,
                out_bps: None
            }
        );
        let cps: Vec<f64> = s.reals.iter().map(|r| r.rate.cps).collect();
        assert_eq!(
            cps,
            [40.0, 60.0, 10.0],
            "a real server added in between counts from 0"
        );
        assert_eq!(s.reals[0].rate.in_pps, 2_000.0);
        assert_eq!(s.reals[1].rate.in_bps, 300_000.0);
    }

    #[test]
    fn a_service_zeroed_in_between_has_the_rate_of_what_it_counted_since() {
        let before = [service(100, 5_000, 0, &[])];
        let after = [service(20, 200, 0, &[])];
        let r = rates((1_000, &before), (1_000 + 2_000_000_000, &after)).unwrap();
        assert_eq!(
            (r.services[0].rate.cps, r.services[0].rate.in_pps),
            (10.0, 100.0)
        );
    }

    #[test]
    fn without_a_later_timestamp_there_is_no_rate() {
        let s = [service(0, 0, 0, &[])];
        assert_eq!(rates((0, &s), (5, &s)), Err(RateError::NoTimestamp));
        assert_eq!(
            rates((9, &s), (9, &s)),
            Err(RateError::NotLater {
                first: 9,
                second: 9
            })
        );
    }

    #[test]
    fn rates_in_json_have_null_out_directions() {
        let s = [service(0, 0, 0, &[(21, 0, 0, 0)])];
        let r = rates((1, &s), (1_000_000_001, &s)).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["services"][0]["cps"], 0.0);
        assert!(v["services"][0]["out_pps"].is_null());
        assert!(v["services"][0]["reals"][0]["out_bps"].is_null());
        assert_eq!(v["services"][0]["reals"][0]["address"], "198.18.0.21");
    }
}
