//! The calls lab: a [`Pair`](crate::lab::tandemd::Pair) of directors, an IVR
//! on every IVR host (a SIPp UAS on the VIP with its RTP echo and counter,
//! plus its heartbeats to both directors) and a SIPp caller in the client
//! namespace. Shared by the calls tests, `tandem-bench calls` and the demo.
//!
//! It only composes [`crate::actors::sipp`], [`crate::actors::ivr_heartbeat`] and
//! [`crate::lab::tandemd`]; every process and thread it starts is stopped by
//! its handle.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::actors::ivr_heartbeat::IvrHeartbeat;
use crate::actors::sipp::{
    CallerOptions, CallerReport, IvrOptions, RtpCount, SIP_PORT, SippCaller, SippIvr, SippStats,
    Transport,
};
use crate::lab::tandemd::{self, Director};
use crate::lab::{self, CLIENT_ADDR};
use crate::{Lab, LabError};

/// IVR heartbeats are sent this often (the directors' deadline in the
/// calls lab is 3 × 10 ms: a few sends per deadline, so that a busy
/// machine does not make a live IVR look dead).
pub const IVR_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(4);

/// One IVR server of the lab.
pub struct Ivr {
    pub name: String,
    pub addr: Ipv4Addr,
    /// Its heartbeat node id (the `node_id` of its real server).
    pub node_id: u32,
    pub sipp: SippIvr,
    pub heartbeat: Option<IvrHeartbeat>,
}

impl Ivr {
    /// The IVR dies: SIPp killed (SIGKILL) and its heartbeats stopped, together.
    pub fn kill(&mut self) {
        self.sipp.kill();
        if let Some(mut h) = self.heartbeat.take() {
            h.stop();
        }
    }

    pub fn rtp(&self) -> RtpCount {
        self.sipp.rtp()
    }
}

/// Starts an IVR on every IVR host of `lab` (files in `dir`), with
/// heartbeats to both directors if `heartbeats`, RTP echo if `rtp`.
pub fn start_ivrs(lab: &Lab, dir: &Path, heartbeats: bool, rtp: bool) -> Result<Vec<Ivr>> {
    start_ivrs_for(lab, dir, heartbeats, rtp, None, Transport::Udp)
}

/// [`start_ivrs`] with each SIPp quitting after `lifetime` instead of
/// `IvrOptions`' default (a run longer than it: the fault campaign).
pub fn start_ivrs_for(
    lab: &Lab,
    dir: &Path,
    heartbeats: bool,
    rtp: bool,
    lifetime: Option<Duration>,
    transport: Transport,
) -> Result<Vec<Ivr>> {
    (0..lab.ivrs().len())
        .map(|k| start_ivr(lab, dir, k, heartbeats, rtp, lifetime, transport))
        .collect()
}

/// Starts the IVR of IVR host `k` (0-based) of `lab`, as
/// [`start_ivrs_for`] does for each (again after [`Ivr::kill`], say).
pub fn start_ivr(
    lab: &Lab,
    dir: &Path,
    k: usize,
    heartbeats: bool,
    rtp: bool,
    lifetime: Option<Duration>,
    transport: Transport,
) -> Result<Ivr> {
    let ivrs = lab.ivrs();
    let host = ivrs
        .get(k)
        .with_context(|| format!("the lab has no IVR host {k}"))?;
    let base = IvrOptions::for_host(host, lab.vip());
    let o = IvrOptions {
        rtp,
        lifetime: lifetime.unwrap_or(base.lifetime),
        transport,
        ..base
    };
    let sipp = SippIvr::start(dir, &o).with_context(|| format!("starting SIPp on {}", host.name))?;
    let node_id = tandemd::ivr_node_id(k);
    let heartbeat = if heartbeats {
        Some(
            IvrHeartbeat::start_in_pair_lab_for(
                lab,
                k,
                IVR_HEARTBEAT_INTERVAL,
                100,
                lifetime.unwrap_or(crate::actors::ivr_heartbeat::MAX_LIFETIME),
            )
                .map_err(|e: LabError| anyhow::anyhow!(e))?,
        )
    } else {
        None
    };
    Ok(Ivr {
        name: host.name.clone(),
        addr: host.addr(),
        node_id,
        sipp,
        heartbeat,
    })
}

/// Whether `d` reports every real server of its UDP SIP service (port
/// 5060) alive (heard from).
pub fn reals_alive(d: &Director, n: usize) -> bool {
    let reals = d.reals();
    let udp: Vec<_> = reals
        .iter()
        .filter(|r| {
            r.get("service")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s.starts_with("udp/") && s.ends_with(&format!(":{SIP_PORT}")))
        })
        .collect();
    udp.len() == n
        && udp
            .iter()
            .all(|r| r.get("health").and_then(|h| h.as_str()) == Some("alive"))
}

/// Starts the caller in the client namespace toward VIP:5060.
pub fn start_caller(lab: &Lab, dir: &Path, o: &CallerOptions) -> Result<SippCaller> {
    let ns = lab.ns(lab::CLIENT)?;
    SippCaller::start(
        dir,
        ns,
        CLIENT_ADDR,
        SocketAddrV4::new(lab.vip(), SIP_PORT),
        o,
    )
    .context("starting the SIPp caller")
}

/// Stops every IVR's SIPp once its calls are over (their last BYE is held
/// 2 s for retransmissions; at most 5 s in all; a killed one keeps its
/// last statistics) and returns (name, statistics, RTP) per IVR.
pub fn stop_ivrs(ivrs: &mut [Ivr]) -> Vec<(String, Option<SippStats>, RtpCount)> {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    for i in ivrs.iter_mut() {
        i.sipp
            .wait_idle(end.saturating_duration_since(std::time::Instant::now()));
    }
    ivrs.iter_mut()
        .map(|i| {
            if let Some(mut h) = i.heartbeat.take() {
                h.stop();
            }
            let s = i.sipp.stop().ok();
            (i.name.clone(), s, i.rtp())
        })
        .collect()
}

/// A table of the calls per IVR, from the caller's view (established,
/// succeeded) and the IVR's (SIPp UAS counters), with RTP.
pub fn per_ivr_table(
    report: &CallerReport,
    ivrs: &[(String, Option<SippStats>, RtpCount)],
) -> String {
    let mut est: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for c in &report.calls {
        if let Some(i) = &c.ivr {
            let e = est.entry(i.as_str()).or_default();
            e.0 += 1;
            if c.succeeded() {
                e.1 += 1;
            }
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| IVR | established (caller) | succeeded (caller) | incoming (IVR SIPp) | successful (IVR SIPp) | failed (IVR SIPp) | RTP received | RTP echoed |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, st, rtp) in ivrs {
        let (e, ok) = est.get(name.as_str()).copied().unwrap_or_default();
        let (inc, succ, fail) = st
            .as_ref()
            .map_or((0, 0, 0), |s| (s.incoming(), s.successful(), s.failed()));
        let _ = writeln!(
            s,
            "| {name} | {e} | {ok} | {inc} | {succ} | {fail} | {} | {} |",
            rtp.received, rtp.echoed
        );
    }
    s
}
