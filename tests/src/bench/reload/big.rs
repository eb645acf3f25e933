//! The reload bench's configuration at the design maximum: a pair
//! director's own `tandem.toml` grown to 64 services × 32 real servers,
//! so that the reload it measures goes from the pair's file to the big
//! one and back, while the pair's first service (the one the SIPp load
//! runs on) keeps dispatching to the lab's IVRs.
//!
//! The site it describes: the lab's few IVRs (those already in the file,
//! with their MACs and heartbeat node ids) and made-up ones (IVR k at
//! 198.18.0.(20 + k), node id 100 + k, a locally administered MAC
//! `02:18:00:00:01:kk`) that send no heartbeats and so are dead: no
//! traffic is sent to them. The first service lists the lab's IVRs and
//! made-up ones up to 32; services 1–63 (the VIP's ports 5061–5123, a mix
//! of schedulers and flags, mh on seven of them: the eight Maglev slots
//! the dataplane has, with the first service's) each list the next 32
//! made-up IVRs.
//!
//! Two choices keep the lab's shape from deciding what is measured, and
//! both stand for product behaviour the bench reports rather than hides:
//! - The lab's IVRs are only in the first service. Listed in all 64, as
//!   `control/tests/large_lab` lists its IVRs, every change of their
//!   health rewrites all 64 services on the daemon's loop (turns of
//!   0.4–2.2 s were seen while writing this bench), the IVRs' heartbeats
//!   starve behind it on two CPUs, and the pair does not settle.
//! - In the first service (mh without `sched_fallback`) the made-up IVRs
//!   have weight 0 (quiescent, as in IPVS): a real server that is only
//!   dead keeps its share of the Maglev table in tandem and the new calls
//!   that hash to it are dropped (28 in 32 of the load's new calls were
//!   lost so while writing this bench).
//!
//! Text only: it writes no file and starts nothing.

use std::net::{IpAddr, Ipv4Addr};

use tandem_control::config::{
    Config,
    diff::{RealId, ServiceId},
    edit::{self, Edit, RealSettings},
};

use crate::lab;

/// The design maximum (`tandem_common::abi::MAX_SERVICES`, `MAX_REALS`).
pub const SERVICES: usize = 64;
pub const REALS_PER_SERVICE: usize = 32;

/// One IVR of the site, as a service lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteReal {
    pub address: Ipv4Addr,
    pub mac: String,
    pub node_id: Option<u32>,
}

/// The scheduler of extra service `s` (1-based: service 0 is the pair's):
/// mh on every ninth (seven of them), else wrr, wlc, rr, sh in turn.
pub fn scheduler_of(s: usize) -> &'static str {
    if s.is_multiple_of(9) {
        "mh"
    } else {
        ["wrr", "wlc", "rr", "sh"][s % 4]
    }
}

/// The flags of extra service `s`, as `control/tests/large_lab` varies them.
pub fn flags_of(s: usize) -> &'static [&'static str] {
    match s % 3 {
        0 => &[],
        1 => &["expire_nodest"],
        _ => &["sched_fallback", "sip_persist"],
    }
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn in_lab_range(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 198 && (o[1] == 18 || o[1] == 19)
}

/// The pair's first service: its identity and its IVRs as the file has them.
fn first_service(cfg: &Config) -> Result<(ServiceId, Vec<SiteReal>), String> {
    let s0 = cfg.services.first().ok_or("the file has no service")?;
    let mut reals = Vec::new();
    for r in &s0.reals {
        let IpAddr::V4(address) = r.address else {
            return Err(format!("real server {} is not IPv4", r.address));
        };
        reals.push(SiteReal {
            address,
            mac: mac_text(r.mac.unwrap_or_default()),
            node_id: r.node_id,
        });
    }
    Ok((ServiceId::of(s0), reals))
}

/// `n` made-up IVRs, the first numbered `from` (IVR k:
/// [`lab::dr_ivr_addr`]`(k)`, node id [`lab::tandemd::ivr_node_id`]`(k - 1)`
/// when `heartbeats`, MAC `02:18:00:00:01:kk`).
pub fn made_up_reals(from: usize, n: usize, heartbeats: bool) -> Vec<SiteReal> {
    (from..from + n)
        .map(|k| SiteReal {
            address: lab::dr_ivr_addr(k),
            mac: format!("02:18:00:00:01:{k:02x}"),
            node_id: heartbeats.then(|| lab::tandemd::ivr_node_id(k - 1)),
        })
        .collect()
}

/// The first service's 32 IVRs: the lab's, then made-up ones; and the
/// 32 made-up IVRs every other service lists (the next ones).
pub fn site_reals(lab_reals: &[SiteReal]) -> (Vec<SiteReal>, Vec<SiteReal>) {
    let heartbeats = lab_reals.iter().any(|r| r.node_id.is_some());
    let n = lab_reals.len();
    let mut first = lab_reals.to_vec();
    first.extend(made_up_reals(
        n + 1,
        REALS_PER_SERVICE.saturating_sub(n),
        heartbeats,
    ));
    let others = made_up_reals(n + 1, REALS_PER_SERVICE, heartbeats);
    (first, others)
}

/// `small` (a pair director's file) grown to [`SERVICES`] ×
/// [`REALS_PER_SERVICE`]: the first service gets the site's other IVRs
/// (added with [`edit::apply`], its own lines and comments kept), and
/// services 1–63 are appended. Checked whole ([`Config::parse`]) and
/// counted before it is returned.
pub fn big_config(small: &str) -> Result<String, String> {
    let cfg = Config::parse(small).map_err(|e| format!("the pair's file: {e}"))?;
    if cfg.services.len() != 1 {
        return Err(format!(
            "the pair's file has {} services, expected 1",
            cfg.services.len()
        ));
    }
    let (first, lab_reals) = first_service(&cfg)?;
    if lab_reals.len() > REALS_PER_SERVICE {
        return Err(format!(
            "the first service has {} real servers",
            lab_reals.len()
        ));
    }
    let (site, others) = site_reals(&lab_reals);
    // The made-up IVRs must not be any of the lab's hosts.
    if let Some(r) = others
        .iter()
        .find(|r| lab_reals.iter().any(|l| l.address == r.address))
    {
        return Err(format!("made-up IVR {} is a lab IVR", r.address));
    }
    if let Some(r) = site
        .iter()
        .chain(&others)
        .find(|r| !in_lab_range(r.address))
    {
        return Err(format!("{} is outside 198.18.0.0/15", r.address));
    }
    let IpAddr::V4(vip) = first.vip else {
        return Err(format!("the VIP {} is not IPv4", first.vip));
    };
    if !in_lab_range(vip) {
        return Err(format!("the VIP {vip} is outside 198.18.0.0/15"));
    }
    let mut text = small.to_string();
    // Weight 0 in the first service: see the module's comment.
    for r in &site[lab_reals.len()..] {
        let add = Edit::RealAdd {
            service: first,
            real: RealId {
                address: IpAddr::V4(r.address),
                port: 0,
            },
            settings: RealSettings {
                mac: Some(r.mac.clone()),
                weight: Some(0),
                node_id: r.node_id,
                ..Default::default()
            },
        };
        text = edit::apply(&text, &add)
            .map_err(|e| format!("adding {} to the first service: {e}", r.address))?;
    }
    text.push_str("\n# Services 1-63 of the reload bench's design maximum (64 x 32).\n");
    for s in 1..SERVICES {
        let port = first.port as usize + s;
        let flags: Vec<String> = flags_of(s).iter().map(|f| format!("\"{f}\"")).collect();
        text.push_str(&format!(
            "[[service]]\nvip = \"{vip}\"\nport = {port}\nprotocol = \"udp\"\nscheduler = \"{}\"\nforward = \"dr\"\nflags = [{}]\n\n",
            scheduler_of(s),
            flags.join(", ")
        ));
        for r in &others {
            text.push_str(&format!(
                "[[service.real]]\naddress = \"{}\"\nmac = \"{}\"\nweight = 1\n",
                r.address, r.mac
            ));
            if let Some(id) = r.node_id {
                text.push_str(&format!("node_id = {id}\n"));
            }
            text.push('\n');
        }
    }
    let big = Config::parse(&text).map_err(|e| format!("the big file: {e}"))?;
    let shape: Vec<usize> = big.services.iter().map(|s| s.reals.len()).collect();
    if shape.len() != SERVICES || shape.iter().any(|&n| n != REALS_PER_SERVICE) {
        return Err(format!(
            "the big file has services of {shape:?} real servers"
        ));
    }
    Ok(text)
}

/// `text` with the weight of real server `real` in service `service` set
/// to `weight` (as `tandemctl real edit -u SERVICE -r REAL -w WEIGHT`).
pub fn with_weight(
    text: &str,
    service: ServiceId,
    real: Ipv4Addr,
    weight: u32,
) -> Result<String, String> {
    let e = Edit::RealEdit {
        service: Some(service),
        real: RealId {
            address: IpAddr::V4(real),
            port: 0,
        },
        settings: RealSettings {
            weight: Some(weight),
            ..Default::default()
        },
    };
    edit::apply(text, &e).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_control::config::diff::{Change, diff};

    /// A pair director's file as `lab::tandemd` writes it, cut down: one
    /// mh + sip_persist UDP service over two IVRs with heartbeat node ids.
    const SMALL: &str = r#"# a pair director
[node]
id = 1
peer_id = 2
name = "a"

[heartbeat]
interval_ms = 10
key = "00112233445566778899aabbccddeeff"
ivr_key = "a0b1c2d3e4f5061728394a5b6c7d8e9f"
paths = [{ name = "link", interface = "lo", local = "198.18.3.1", peer = "198.18.3.2" }]

[[vip]]
address = "198.18.0.100"
interface = "lo"

[[service]]
vip = "198.18.0.100"
port = 5060
protocol = "udp"
scheduler = "mh"
forward = "dr"
flags = ["sip_persist"]

[[service.real]]
address = "198.18.0.21"
mac = "02:00:00:00:00:21"
weight = 1
node_id = 101

[[service.real]]
address = "198.18.0.22" # ivr2
mac = "02:00:00:00:00:22"
weight = 1
node_id = 102

[admin]
socket = "/tmp/x/a.sock"
"#;

    fn first() -> ServiceId {
        let c = Config::parse(SMALL).unwrap();
        ServiceId::of(&c.services[0])
    }

    #[test]
    fn the_big_file_is_the_design_maximum_around_the_pairs_first_service() {
        let big = big_config(SMALL).expect("big file");
        assert!(
            big.contains("# a pair director") && big.contains("# ivr2"),
            "the pair's lines kept"
        );
        let (small, c) = (Config::parse(SMALL).unwrap(), Config::parse(&big).unwrap());
        assert_eq!(c.services.len(), SERVICES);
        assert!(
            c.services
                .iter()
                .all(|s| s.reals.len() == REALS_PER_SERVICE)
        );
        // The first service: the same service, its IVRs first and as they were.
        let (s0, old) = (&c.services[0], &small.services[0]);
        assert_eq!(
            (s0.vip, s0.port, s0.scheduler, s0.flags),
            (old.vip, old.port, old.scheduler, old.flags)
        );
        assert_eq!(&s0.reals[..2], &old.reals[..]);
        // The lab's IVRs only in the first service.
        let lab_ips: Vec<IpAddr> = old.reals.iter().map(|r| r.address).collect();
        assert!(
            c.services[1..]
                .iter()
                .all(|s| s.reals.iter().all(|r| !lab_ips.contains(&r.address)))
        );
        assert_eq!(
            c.services[1].reals[0].address,
            IpAddr::V4(lab::dr_ivr_addr(3))
        );
        assert_eq!(
            c.services[1].reals[31].address,
            IpAddr::V4(lab::dr_ivr_addr(34))
        );
        // Every address in 198.18.0.0/15, distinct within a service, and
        // the made-up IVRs numbered after the lab's.
        for s in &c.services {
            let mut a: Vec<IpAddr> = s.reals.iter().map(|r| r.address).collect();
            assert!(
                a.iter()
                    .all(|a| matches!(a, IpAddr::V4(v) if in_lab_range(*v))),
                "{a:?}"
            );
            a.sort();
            a.dedup();
            assert_eq!(a.len(), REALS_PER_SERVICE);
        }
        assert_eq!(s0.reals[2].address, IpAddr::V4(lab::dr_ivr_addr(3)));
        // The made-up IVRs take no share of the first service's table.
        assert!(s0.reals[2..].iter().all(|r| r.weight == 0));
        assert!(
            c.services[1..]
                .iter()
                .all(|s| s.reals.iter().all(|r| r.weight == 1))
        );
        assert_eq!(s0.reals[2].node_id, Some(lab::tandemd::ivr_node_id(2)));
        assert_eq!(s0.reals[31].address, IpAddr::V4(lab::dr_ivr_addr(32)));
        // At most the dataplane's eight Maglev slots.
        let mh = c
            .services
            .iter()
            .filter(|s| s.scheduler == tandem_dataplane::common::Scheduler::Mh)
            .count();
        assert_eq!(mh, 8);
        let ports: Vec<u16> = c.services.iter().map(|s| s.port).collect();
        assert_eq!(ports, (5060..5060 + SERVICES as u16).collect::<Vec<_>>());
    }

    #[test]
    fn the_reload_plans_are_the_ones_the_bench_reports() {
        let big = big_config(SMALL).unwrap();
        let (small, c) = (Config::parse(SMALL).unwrap(), Config::parse(&big).unwrap());
        // Small to big: 63 services added, 30 IVRs added to the first.
        let up = diff(&small, &c);
        assert!(up.refused.is_empty(), "{:?}", up.refused);
        let added = up
            .changes
            .iter()
            .filter(|c| matches!(c, Change::ServiceAdded(_)))
            .count();
        let reals = up
            .changes
            .iter()
            .filter(|c| matches!(c, Change::RealAdded { .. }))
            .count();
        assert_eq!((added, reals, up.changes.len()), (63, 30, 93));
        // One weight: one change, of that real server in that service.
        let w =
            Config::parse(&with_weight(&big, first(), lab::dr_ivr_addr(1), 7).unwrap()).unwrap();
        let one = diff(&c, &w);
        assert_eq!(one.changes.len(), 1, "{:?}", one.changes);
        assert!(
            matches!(&one.changes[0], Change::RealEdited { service, real, .. } if *service == first() && real.address == IpAddr::V4(lab::dr_ivr_addr(1)))
        );
        assert_eq!(
            w.services[1].reals[0].weight, 1,
            "the same IVR in another service is left alone"
        );
        // Nothing, and back.
        assert!(diff(&c, &c).changes.is_empty());
        let down = diff(&c, &small);
        assert!(down.refused.is_empty());
        assert_eq!(down.changes.len(), 93);
    }

    #[test]
    fn a_file_with_more_than_the_pairs_one_service_is_refused() {
        let big = big_config(SMALL).unwrap();
        let e = big_config(&big).expect_err("refused");
        assert!(e.contains("64 services"), "{e}");
    }
}
