//! The end-to-end half of `cargo xtask bench dispatch`: packets per second
//! delivered through real veths with the dispatcher in the path, against a
//! trivial XDP forwarder on the same path.
//!
//! Path: `gen` --veth--> `dir` (program under test on `d0`, redirecting to
//! `d1`) --veth--> `sink` (an XDP program that counts and drops). The
//! generator is `BPF_PROG_TEST_RUN` with live frames (an XDP_TX program run
//! on `g0`), so the frames are real transmissions. Both programs see the
//! same frames; the dispatcher's are one established UDP flow in DR mode.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Instant,
};

use anyhow::{Context, Result, ensure};
use tandem_dataplane::{
    Dataplane, LoadOptions, RealConfig, RealState, ServiceConfig,
    common::{Forward, Scheduler},
    config::Protocol,
    packet::FrameSpec,
};

use crate::in_netns;
use crate::lab::{cmd, netns};

/// Namespaces of one run, removed on drop.
struct Wires {
    gen_ns: String,
    dir_ns: String,
    sink_ns: String,
}

impl Drop for Wires {
    fn drop(&mut self) {
        for ns in [&self.gen_ns, &self.dir_ns, &self.sink_ns] {
            let _ = netns::delete(ns);
        }
    }
}

fn read_sys(ns: &str, iface: &str, what: &str) -> Result<String> {
    Ok(
        cmd::exec_in(ns, "cat", &[&format!("/sys/class/net/{iface}/{what}")])?
            .trim()
            .to_string(),
    )
}

fn build() -> Result<Wires> {
    let p = netns::unique_prefix();
    let w = Wires {
        gen_ns: format!("{p}-gen"),
        dir_ns: format!("{p}-dir"),
        sink_ns: format!("{p}-sink"),
    };
    for ns in [&w.gen_ns, &w.dir_ns, &w.sink_ns] {
        netns::add(ns)?;
        netns::sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1")?;
    }
    cmd::ip_in(
        &w.gen_ns,
        &[
            "link", "add", "g0", "type", "veth", "peer", "name", "d0", "netns", &w.dir_ns,
        ],
    )?;
    cmd::ip_in(
        &w.dir_ns,
        &[
            "link", "add", "d1", "type", "veth", "peer", "name", "s0", "netns", &w.sink_ns,
        ],
    )?;
    for (ns, ifs) in [
        (&w.gen_ns, vec!["g0", "lo"]),
        (&w.dir_ns, vec!["d0", "d1", "lo"]),
        (&w.sink_ns, vec!["s0", "lo"]),
    ] {
        for i in ifs {
            cmd::ip_in(ns, &["link", "set", i, "up"])?;
        }
    }
    Ok(w)
}

/// Delivered packets per second (and the fraction of sent frames that
/// arrived) for the dispatcher and for the trivial forwarder.
#[derive(Clone, Debug)]
pub struct LiveResult {
    pub dispatch_pps: f64,
    pub forwarder_pps: f64,
    pub dispatch_delivered_fraction: f64,
    pub forwarder_delivered_fraction: f64,
    pub frames_per_run: u32,
    pub runs: usize,
    /// CPU time of the whole machine (every CPU busy in user, system, IRQ
    /// or softirq time: generator, director and sink share the two vCPUs)
    /// per delivered packet, ns.
    pub dispatch_cpu_ns_per_packet: f64,
    pub forwarder_cpu_ns_per_packet: f64,
}

/// Busy CPU time of the whole machine so far, ns (`/proc/stat`'s first
/// line: user, nice, system, irq and softirq, in USER_HZ ticks).
fn busy_cpu_ns() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().context("/proc/stat is empty")?;
    let f: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    ensure!(f.len() >= 7, "/proc/stat's cpu line is short: {line:?}");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((f[0] + f[1] + f[2] + f[5] + f[6]) * 1e9 / hz)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(frames: u32, runs: usize) -> Result<LiveResult> {
    let w = build().context("building the live-frames path")?;
    let d1_ifindex: u32 = read_sys(&w.dir_ns, "d1", "ifindex")?.parse()?;
    let d1_mac =
        tandem_dataplane::parse_mac(&read_sys(&w.dir_ns, "d1", "address")?).context("d1 mac")?;
    let s0_mac =
        tandem_dataplane::parse_mac(&read_sys(&w.sink_ns, "s0", "address")?).context("s0 mac")?;
    let d0_mac =
        tandem_dataplane::parse_mac(&read_sys(&w.dir_ns, "d0", "address")?).context("d0 mac")?;
    let g0_ifindex: u32 = read_sys(&w.gen_ns, "g0", "ifindex")?.parse()?;

    let mut dp = Dataplane::load(LoadOptions::default())?;
    let vip = Ipv4Addr::new(198, 18, 2, 100);
    let cfg = ServiceConfig {
        vip: IpAddr::V4(vip),
        port: 5060,
        proto: Protocol::Udp,
        scheduler: Scheduler::Wrr,
        forward: Forward::Dr,
        flags: 0,
        mh_size: 65_537,
        client_ifindex: 0,
        gateway_mac: [0; 6],
        reals: vec![RealConfig {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 2, 20)),
            port: 0,
            mac: s0_mac,
            weight: 1,
            state: RealState::Up,
            ifindex: d1_ifindex,
        }],
    };
    dp.set_service(&cfg)?;
    in_netns(&w.dir_ns, || dp.add_tx_port(d1_ifindex, d1_mac))?;
    let mut spec = FrameSpec::udp(
        IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1)),
        40000,
        IpAddr::V4(vip),
        5060,
        &[0x5a; 22],
    );
    spec.dst_mac = d0_mac;
    let frame = spec.build();

    let mut one = |dispatch: bool| -> Result<(f64, f64, f64)> {
        in_netns(&w.dir_ns, || {
            if dispatch {
                dp.attach("d0", tandem_dataplane::AttachMode::Native)
            } else {
                dp.attach_trivial_forwarder("d0", d1_ifindex)
            }
        })?;
        in_netns(&w.sink_ns, || dp.attach_sink("s0"))?;
        let before = dp.sink_count()?;
        let cpu_before = busy_cpu_ns()?;
        let start = Instant::now();
        in_netns(&w.gen_ns, || {
            dp.live_generate(g0_ifindex, &frame, frames, 64)
        })?;
        // Frames still in flight reach the sink within microseconds.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let elapsed = start.elapsed().as_secs_f64() - 0.020;
        let got = dp.sink_count()? - before;
        let cpu = busy_cpu_ns()? - cpu_before;
        dp.detach_all()?;
        ensure!(
            got > 0,
            "no frame reached the sink ({})",
            if dispatch { "dispatcher" } else { "forwarder" }
        );
        Ok((got as f64 / elapsed, got as f64 / frames as f64, cpu / got as f64))
    };
    let (mut dpps, mut fpps, mut dfrac, mut ffrac, mut dcpu, mut fcpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (p, f, c) = one(false)?;
        fpps.push(p);
        ffrac.push(f);
        fcpu.push(c);
        let (p, f, c) = one(true)?;
        dpps.push(p);
        dfrac.push(f);
        dcpu.push(c);
    }
    Ok(LiveResult {
        dispatch_pps: median(&mut dpps),
        forwarder_pps: median(&mut fpps),
        dispatch_delivered_fraction: median(&mut dfrac),
        forwarder_delivered_fraction: median(&mut ffrac),
        frames_per_run: frames,
        runs,
        dispatch_cpu_ns_per_packet: median(&mut dcpu),
        forwarder_cpu_ns_per_packet: median(&mut fcpu),
    })
}
