//! `tandem-lab`: the lab by hand. `up` builds a DR lab with 4 IVRs that stays
//! until `down` (namespaces `tdmlab-*`); `demo` builds a throw-away lab, runs
//! the IVR stand-ins and walks a client through it.
//!
//! Run as root, usually through `cargo xtask lab up|down` and `cargo xtask demo`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tandem_tests::lab::{CLIENT, DIRECTOR, DIRECTOR_ADDR, Lab, LabOptions};
use tandem_tests::{Responder, spawn_tcp_responder, spawn_udp_responder, tcp_request, udp_request};

/// Name prefix of the persistent lab.
const PERSISTENT_PREFIX: &str = "tdmlab";
/// IVRs in the persistent and the demo lab.
const N_IVR: usize = 4;
/// The port the demo's IVR stand-ins listen on (SIP's).
const SIP_PORT: u16 = 5060;

#[derive(Parser)]
#[command(name = "tandem-lab", about = "tandem's network-namespace lab")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the persistent DR lab (namespaces tdmlab-*) with 4 IVRs and print it.
    Up,
    /// Remove the persistent lab.
    Down,
    /// Build a lab, start IVR stand-ins, send requests through it, tear it down.
    Demo,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Up => up(),
        Cmd::Down => down(),
        Cmd::Demo => demo(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tandem-lab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn ensure_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the lab needs root (it creates network namespaces)");
    }
    Ok(())
}

fn up() -> Result<()> {
    ensure_root()?;
    let options = LabOptions {
        fixed_prefix: Some(PERSISTENT_PREFIX.into()),
        ..LabOptions::default()
    };
    let lab = Lab::dr_with(N_IVR, options).context("building the persistent lab")?;
    print!("{lab}");
    let prefix = lab.into_persistent();
    println!(
        "lab {prefix} is up; e.g. `ip netns exec {prefix}-{CLIENT} ping {DIRECTOR_ADDR}`; `tandem-lab down` removes it"
    );
    Ok(())
}

fn down() -> Result<()> {
    ensure_root()?;
    let removed =
        Lab::remove_persistent(PERSISTENT_PREFIX).context("removing the persistent lab")?;
    if removed.is_empty() {
        println!("no namespaces {PERSISTENT_PREFIX}-*: nothing to remove");
    } else {
        println!("removed {}", removed.join(" "));
    }
    Ok(())
}

/// The demo, step by step. Each step is its own function so that the
/// dispatch steps slot in between the ones here.
fn demo() -> Result<()> {
    ensure_root()?;
    let lab = Lab::dr(N_IVR).context("building the demo lab")?;
    println!("== the lab");
    print!("{lab}");
    let responders = demo_start_ivrs(&lab)?;
    demo_direct_requests(&lab)?;
    demo_dispatch(&lab)?;
    drop(responders);
    println!("== done; the lab's namespaces are removed on exit");
    Ok(())
}

/// Starts a UDP and a TCP responder on SIP's port on every IVR.
fn demo_start_ivrs(lab: &Lab) -> Result<Vec<Responder>> {
    println!("== IVR stand-ins: UDP and TCP responders on port {SIP_PORT} of every IVR");
    let mut responders = Vec::new();
    for ivr in lab.ivrs() {
        responders.push(spawn_udp_responder(&ivr.ns, &ivr.name, SIP_PORT)?);
        responders.push(spawn_tcp_responder(&ivr.ns, &ivr.name, SIP_PORT)?);
    }
    Ok(responders)
}

/// The client asks every IVR at its own address: the wires work.
fn demo_direct_requests(lab: &Lab) -> Result<()> {
    println!("== client -> each IVR directly (no director involved)");
    let client = lab.ns(CLIENT)?;
    let timeout = Duration::from_secs(2);
    for ivr in lab.ivrs() {
        let dst = SocketAddr::from((ivr.addr(), SIP_PORT));
        let udp = udp_request(client, 0, dst, b"OPTIONS", timeout)
            .with_context(|| format!("UDP to {dst}"))?;
        let tcp = tcp_request(client, dst, b"OPTIONS", timeout)
            .with_context(|| format!("TCP to {dst}"))?;
        println!(
            "  {dst}: udp reply {:?}, tcp reply {:?}",
            String::from_utf8_lossy(&udp),
            String::from_utf8_lossy(&tcp)
        );
    }
    Ok(())
}

/// Dispatch through the director: tandem's XDP program on its eth0, a
/// weighted UDP service and a TCP service on the VIP, real requests from
/// the client, the kernel's counters next to what the IVRs answered, then
/// one IVR drained.
fn demo_dispatch(lab: &Lab) -> Result<()> {
    use std::collections::BTreeMap;
    use tandem_dataplane::{
        Dataplane, LoadOptions, RealConfig, RealState, ServiceConfig,
        common::{Forward, Reason, Scheduler},
        config::Protocol,
    };
    let dir = lab.host(DIRECTOR)?;
    println!(
        "== tandem's XDP dispatcher on {} {}",
        dir.ns,
        dir.eth0().name
    );
    let mut dp = Dataplane::load(LoadOptions::default()).context("loading the XDP object")?;
    let mode = tandem_tests::director::attach_director(&mut dp, lab, "eth0")?;
    println!(
        "  attached ({mode:?} XDP); connection table {} entries, {} MiB of kernel memory",
        dp.options().flow_entries,
        dp.flow_table_bytes().unwrap_or(0) / (1 << 20)
    );
    let vip = std::net::IpAddr::V4(lab.vip());
    let weights = [1u32, 2, 3, 4];
    let reals = |w: &[u32]| -> Vec<RealConfig> {
        lab.ivrs()
            .iter()
            .zip(w)
            .map(|(h, w)| RealConfig {
                addr: std::net::IpAddr::V4(h.addr()),
                port: 0,
                mac: h.eth0().mac,
                weight: *w,
                state: RealState::Up,
                ifindex: 0,
            })
            .collect()
    };
    let mut udp = ServiceConfig {
        vip,
        port: SIP_PORT,
        proto: Protocol::Udp,
        scheduler: Scheduler::Wrr,
        forward: Forward::Dr,
        flags: 0,
        mh_size: 65_537,
        client_ifindex: 0,
        gateway_mac: [0; 6],
        reals: reals(&weights),
    };
    let tcp = ServiceConfig {
        proto: Protocol::Tcp,
        scheduler: Scheduler::Rr,
        reals: reals(&[1, 1, 1, 1]),
        ..udp.clone()
    };
    dp.set_service(&udp)?;
    dp.set_service(&tcp)?;
    println!(
        "  services: udp/{vip}:{SIP_PORT} wrr, weights {weights:?}, direct routing; tcp/{vip}:{SIP_PORT} rr"
    );

    let client = lab.ns(CLIENT)?;
    let timeout = Duration::from_secs(2);
    let dst = SocketAddr::new(vip, SIP_PORT);
    let udp_round = |first: u16, n: u16| -> Result<BTreeMap<String, u32>> {
        let mut by = BTreeMap::new();
        for i in 0..n {
            let r = udp_request(
                client,
                first + i,
                dst,
                b"INVITE sip:ivr@tandem SIP/2.0",
                timeout,
            )
            .with_context(|| format!("UDP request from port {} to {dst} unanswered", first + i))?;
            let name = String::from_utf8_lossy(&r)
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_string();
            *by.entry(name).or_insert(0) += 1;
        }
        Ok(by)
    };
    let counters = |dp: &Dataplane, cfg: &ServiceConfig| -> Result<BTreeMap<String, u64>> {
        let img = dp.service(&cfg.key()).context("service missing")?;
        let mut by = BTreeMap::new();
        for (h, r) in lab.ivrs().iter().zip(&cfg.reals) {
            let slot = img.slot_of(r.addr, r.port).context("slot")?;
            by.insert(
                h.name.clone(),
                dp.real_counters(img.service.id, slot)?.new_flows,
            );
        }
        Ok(by)
    };
    println!(
        "== 200 SIP requests over UDP to {dst}, each from its own source port (200 new flows)"
    );
    let answered = udp_round(20_000, 200)?;
    println!("  answered by (reply from the VIP, sent directly by the IVR): {answered:?}");
    println!(
        "  kernel per-real new flows:                                  {:?}",
        counters(&dp, &udp)?
    );
    let again = udp_round(20_000, 200)?;
    println!(
        "  the same 200 flows again stay where they were: {}",
        if again == answered { "yes" } else { "NO" }
    );
    println!("== 8 TCP connections to {dst} (rr)");
    let mut by = BTreeMap::new();
    for _ in 0..8 {
        let r = tcp_request(
            client,
            dst,
            b"OPTIONS sip:ivr@tandem SIP/2.0\r\n\r\n",
            timeout,
        )?;
        let name = String::from_utf8_lossy(&r)
            .split_whitespace()
            .next()
            .unwrap_or("?")
            .to_string();
        *by.entry(name).or_insert(0) += 1;
    }
    println!("  answered by: {by:?}");
    println!("== ivr4 set to draining: no new flows for it, its existing flows stay");
    udp.reals[3].state = RealState::Draining;
    dp.set_service(&udp)?;
    let fresh = udp_round(30_000, 90)?;
    println!("  90 new flows answered by: {fresh:?}");
    let old = udp_round(20_000, 200)?;
    println!("  the first 200 flows again: {old:?}");
    println!("== dispatcher counters (packets by reason)");
    for (r, n) in dp.reasons()? {
        if n > 0 {
            println!("  {:>16}: {n}", r.name());
        }
    }
    println!("  flows in the connection table: {}", dp.flows().len());
    let lost = dp.reason(Reason::NoReal)?;
    anyhow::ensure!(lost == 0, "{lost} packets found no real server");
    dp.detach_all()?;
    Ok(())
}
