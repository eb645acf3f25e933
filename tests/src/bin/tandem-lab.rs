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
use tandem_tests::lab::{self, CLIENT, DIRECTOR, DIRECTOR_ADDR, Lab, LabOptions};
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

/// Requests to the VIP through the director. Until tandem's XDP dispatcher is
/// attached to the director's eth0, the VIP is only an address of the
/// director, which has no service on it.
fn demo_dispatch(lab: &Lab) -> Result<()> {
    let dir = lab.host(DIRECTOR)?;
    println!(
        "== dispatch via VIP {}: not wired yet — tandem-dataplane will attach the XDP program to {} {} (ifindex {})",
        lab::VIP,
        dir.ns,
        dir.eth0().name,
        dir.eth0().ifindex
    );
    Ok(())
}
