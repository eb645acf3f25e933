//! `cargo xtask bench dispatch`: the cost of the XDP dispatcher per packet,
//! measured with `BPF_PROG_TEST_RUN` against a trivial XDP_TX program in
//! the same run.
//!
//! Every iteration goes through the restoring wrapper (`tandem_bench_restore`,
//! which copies the original frame back and tail-calls the program under
//! test), the floor included, so the wrapper's cost is in both. Each case
//! checks with the verdict counters that every iteration took the path it
//! claims to measure; a case that did not is an error, not a number.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context, bail, ensure};
use serde_json::json;
use tandem_dataplane::{
    BenchTarget, Dataplane, LoadOptions, RealConfig, RealState, ServiceConfig, common::*,
    config::Protocol, packet::FrameSpec,
};

/// One measured case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub case: String,
    pub what: String,
    pub ns_per_packet: f64,
    pub runs_ns: Vec<f64>,
    pub ratio_to_floor: f64,
    pub goal_ratio: Option<f64>,
}

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The IPv6 case's VIP and client, from the benchmarking range
/// 2001:2::/48 (RFC 5180), as 198.18.0.0/15 is IPv4's.
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0x100);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 1, 0, 0, 0, 1);
/// Offset of the IPv4 source address in an untagged frame: the counter
/// written there makes every iteration a new client.
const SRC_ADDR_OFF: u32 = 14 + 12;

/// A BYE with the headers SIPp's `uac` scenario sends, shortened to fit
/// the wrapper's 256-byte frame (212 bytes of SIP; the Call-ID is the
/// fifth header, 150 bytes in).
const SIP_BYE: &[u8] = b"BYE sip:s@198.18.0.100:5090 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.19.0.1;branch=z9hG4bK-1\r\n\
From: <sip:sipp@198.19.0.1>;tag=1\r\n\
To: <sip:s@198.18.0.100>;tag=2\r\n\
Call-ID: 1-4711@198.19.0.1\r\n\
CSeq: 2 BYE\r\n\
Content-Length: 0\r\n\r\n";

fn reals(n: u8) -> Vec<RealConfig> {
    (0..n)
        .map(|i| RealConfig {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10 + i)),
            port: 0,
            mac: [0x02, 0xaa, 0, 0, 0, 10 + i],
            weight: 1 + (i as u32 % 3),
            state: RealState::Up,
            ifindex: 0,
        })
        .collect()
}

fn svc(port: u16, sched: Scheduler, fwd: Forward) -> ServiceConfig {
    ServiceConfig {
        vip: IpAddr::V4(VIP),
        port,
        proto: Protocol::Udp,
        scheduler: sched,
        forward: fwd,
        flags: 0,
        mh_size: MH_DEFAULT_SIZE,
        client_ifindex: 0,
        gateway_mac: [0x02, 0xbb, 0, 0, 0, 1],
        reals: reals(8),
    }
}

/// A 64-byte UDP frame (without FCS) to `dst:dport`.
fn frame64(dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    FrameSpec::udp(
        IpAddr::V4(CLIENT),
        40000,
        IpAddr::V4(dst),
        dport,
        &[0x5a; 22],
    )
    .build()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `target` on `frame` `runs` times with `repeat` iterations each and
/// checks that `reason` grew by exactly `runs * repeat` and the verdict is
/// `verdict`. Returns the per-run kernel averages (ns per iteration).
#[allow(clippy::too_many_arguments)]
fn measure(
    dp: &mut Dataplane,
    target: BenchTarget,
    frame: &[u8],
    vary: Option<u32>,
    repeat: u32,
    runs: usize,
    verdict: u32,
    reason: Option<Reason>,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let before = match reason {
        Some(r) => dp.reason(r)?,
        None => 0,
    };
    let total_before = dp.total_reasons()?;
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        // The floor is measured right before each run of the case (same
        // frame, same wrapper): the ratio of the pair cancels the drift of
        // a shared virtual machine.
        let f = dp.bench_run(BenchTarget::TrivialTx, frame, repeat, None)?;
        ensure!(f.verdict == XDP_TX, "floor verdict {}", f.verdict);
        let r = dp.bench_run(target, frame, repeat, vary)?;
        ensure!(
            r.verdict == verdict,
            "verdict {} instead of {verdict}",
            r.verdict
        );
        out.push((r.duration_ns as f64, f.duration_ns as f64));
    }
    let n = runs as u64 * repeat as u64;
    if let Some(r) = reason {
        let got = dp.reason(r)? - before;
        ensure!(
            got == n,
            "{} counted {got} of {n} iterations: some took another path",
            r.name()
        );
        // Nothing else may have been counted (e.g. flow_expired, no_real).
        let others = dp.total_reasons()? - total_before - got;
        ensure!(
            others == 0,
            "{others} iterations were also counted under other reasons"
        );
    }
    Ok(out)
}

/// Runs the dispatch benchmark and writes `dispatch.json` and
/// `dispatch.md` under `out_dir`.
pub fn run(out_dir: &Path, repeat: u32, runs: usize) -> anyhow::Result<Vec<CaseResult>> {
    let mut dp = Dataplane::load(LoadOptions::default()).context("loading the XDP object")?;
    let mut results: Vec<CaseResult> = Vec::new();
    let base = frame64(VIP, 5060);

    let floor_runs = measure(
        &mut dp,
        BenchTarget::TrivialTx,
        &base,
        None,
        repeat,
        runs,
        XDP_TX,
        None,
    )?;
    let only = std::env::var("TANDEM_BENCH_ONLY").ok();
    let wanted = |case: &str| only.as_deref().is_none_or(|o| case.contains(o));
    let mut push = |case: &str, what: &str, pairs: Vec<(f64, f64)>, goal: Option<f64>| {
        let mut runs_ns: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let mut ratios: Vec<f64> = pairs.iter().map(|p| p.0 / p.1).collect();
        let ns = median(&mut runs_ns);
        results.push(CaseResult {
            case: case.to_string(),
            what: what.to_string(),
            ns_per_packet: ns,
            runs_ns,
            ratio_to_floor: median(&mut ratios),
            goal_ratio: goal,
        });
    };
    push(
        "floor_trivial_xdp_tx",
        "trivial program returning XDP_TX (through the same wrapper)",
        floor_runs,
        None,
    );

    // Established UDP flow, DR.
    if wanted("established_udp") {
        dp.set_service(&svc(5060, Scheduler::Rr, Forward::Dr))?;
        let warm = dp.test_run(&base)?;
        ensure!(warm.verdict == XDP_TX, "warm-up packet not forwarded");
        let m = measure(
            &mut dp,
            BenchTarget::Dispatch,
            &base,
            None,
            repeat,
            runs,
            XDP_TX,
            Some(Reason::ForwardDr),
        )?;
        push(
            "established_udp",
            "established UDP flow, DR (MAC rewrite, XDP_TX)",
            m,
            Some(3.0),
        );
    }

    // Established UDP flow over IPv6, DR: a 64-byte frame (40-byte header,
    // 2 bytes of payload).
    if wanted("established_udp_v6") {
        let mut v6 = svc(5062, Scheduler::Rr, Forward::Dr);
        v6.vip = IpAddr::V6(VIP6);
        for (i, r) in v6.reals.iter_mut().enumerate() {
            r.addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0x2, 0, 2, 0, 0, 0, 10 + i as u16));
        }
        dp.set_service(&v6)?;
        let f6 = FrameSpec::udp(IpAddr::V6(CLIENT6), 40000, IpAddr::V6(VIP6), 5062, &[0x5a; 2]).build();
        ensure!(f6.len() == 64, "the IPv6 frame is {} bytes, not 64", f6.len());
        ensure!(dp.test_run(&f6)?.verdict == XDP_TX, "IPv6 warm-up packet not forwarded");
        let m = measure(&mut dp, BenchTarget::Dispatch, &f6, None, repeat, runs, XDP_TX, Some(Reason::ForwardDr))?;
        push("established_udp_v6", "established UDP flow over IPv6, DR (MAC rewrite, XDP_TX)", m, None);
    }

    // Established UDP flow, NAT (address/port rewrite, incremental checksums).
    if wanted("established_udp_nat") {
        dp.set_service(&svc(5070, Scheduler::Rr, Forward::Nat))?;
        let nat = frame64(VIP, 5070);
        ensure!(
            dp.test_run(&nat)?.verdict == XDP_TX,
            "NAT warm-up packet not forwarded"
        );
        let m = measure(
            &mut dp,
            BenchTarget::Dispatch,
            &nat,
            None,
            repeat,
            runs,
            XDP_TX,
            Some(Reason::ForwardNat),
        )?;
        push(
            "established_udp_nat",
            "established UDP flow, NAT (rewrite + checksums, XDP_TX)",
            m,
            Some(3.0),
        );
    }

    // A SIP call's BYE (212 bytes of SIP) on a `sip_persist`
    // service: parse, Call-ID scan (the Call-ID is its fifth header),
    // CALLS hit, DR forward. The warm-up records the call; the BYE ends
    // it for the active count, so the measured iterations are plain hits.
    if wanted("sip_callid_hit") {
        let mut cfg = svc(5090, Scheduler::Rr, Forward::Dr);
        cfg.flags |= FLAG_SIP_PERSIST;
        dp.set_service(&cfg)?;
        let bye = FrameSpec::udp(IpAddr::V4(CLIENT), 5060, IpAddr::V4(VIP), 5090, SIP_BYE).build();
        for _ in 0..2 {
            ensure!(dp.test_run(&bye)?.verdict == XDP_TX, "SIP warm-up not forwarded");
        }
        // Each iteration counts a hit and its DR forward.
        let (hits, dr) = (dp.reason(Reason::SipCallIdHit)?, dp.reason(Reason::ForwardDr)?);
        let total = dp.total_reasons()?;
        let m = measure(&mut dp, BenchTarget::Dispatch, &bye, None, repeat, runs, XDP_TX, None)?;
        let n = runs as u64 * repeat as u64;
        let (hits, dr) = (dp.reason(Reason::SipCallIdHit)? - hits, dp.reason(Reason::ForwardDr)? - dr);
        ensure!(
            hits == n && dr == n && dp.total_reasons()? - total == 2 * n,
            "of {n} SIP iterations {hits} were Call-ID hits and {dr} DR forwards: some took another path"
        );
        push(
            "sip_callid_hit",
            "SIP BYE (212 bytes of SIP) of a known call: Call-ID scan, CALLS hit, DR",
            m,
            None,
        );
    }

    // New flow per scheduler with the connection table bypassed (IPVS
    // one-packet scheduling): every iteration is parsed, looked up,
    // scheduled and forwarded, with no LRU lookup or insert. The wrapper
    // writes a counter into the source address so that sh/mh see a new
    // client each time.
    for (i, sched) in Scheduler::ALL.iter().enumerate() {
        if !wanted(&format!("new_flow_{}", sched.name())) {
            continue;
        }
        let port = 6000 + i as u16;
        let mut cfg = svc(port, *sched, Forward::Dr);
        cfg.flags |= FLAG_ONE_PACKET;
        let img = dp.set_service(&cfg)?;
        let f = frame64(VIP, port);
        let new_before = dp.service_counters(img.service.id)?.new_flows;
        let m = measure(
            &mut dp,
            BenchTarget::Dispatch,
            &f,
            Some(SRC_ADDR_OFF),
            repeat,
            runs,
            XDP_TX,
            Some(Reason::ForwardDr),
        )?;
        let new = dp.service_counters(img.service.id)?.new_flows - new_before;
        let want = runs as u64 * repeat as u64;
        if new != want {
            bail!(
                "new_flow_{}: {new} scheduling decisions for {want} iterations",
                sched.name()
            );
        }
        push(
            &format!("new_flow_{}", sched.name()),
            &format!(
                "new UDP flow scheduled by {} (connection table bypassed)",
                sched.name()
            ),
            m,
            Some(5.0),
        );
    }

    // New flow with the connection table: LRU miss, schedule, insert into
    // the 1M-entry table (evicting once it is full). For comparison with
    // Katran's new-flow cost; no goal.
    for (i, sched) in [Scheduler::Rr, Scheduler::Wlc, Scheduler::Mh]
        .iter()
        .enumerate()
    {
        if !wanted(&format!("new_flow_lru_insert_{}", sched.name())) {
            continue;
        }
        let port = 6100 + i as u16;
        let img = dp.set_service(&svc(port, *sched, Forward::Dr))?;
        let f = frame64(VIP, port);
        let flows_before = dp.real_counters(img.service.id, 0)?.new_flows;
        let m = measure(
            &mut dp,
            BenchTarget::Dispatch,
            &f,
            Some(SRC_ADDR_OFF),
            repeat,
            runs,
            XDP_TX,
            Some(Reason::ForwardDr),
        )?;
        ensure!(
            dp.real_counters(img.service.id, 0)?.new_flows > flows_before,
            "no new flows recorded"
        );
        push(
            &format!("new_flow_lru_insert_{}", sched.name()),
            &format!(
                "new UDP flow by {}, LRU miss + insert into a {}-entry table",
                sched.name(),
                dp.options().flow_entries
            ),
            m,
            None,
        );
        dp.clear_flows()?;
    }

    // Packets for no service: to a port no service uses (the director's
    // own traffic: pre-filter only), and to a service port on another
    // address (connection table, service and NAT-reverse misses).
    if wanted("non_vip") {
        let other = frame64(Ipv4Addr::new(198, 18, 0, 200), 4444);
        let m = measure(
            &mut dp,
            BenchTarget::Dispatch,
            &other,
            None,
            repeat,
            runs,
            XDP_PASS,
            Some(Reason::NotService),
        )?;
        push(
            "non_vip_udp",
            "UDP to a port no service uses (XDP_PASS)",
            m,
            None,
        );
        let other = frame64(Ipv4Addr::new(198, 18, 0, 200), 5060);
        let m = measure(
            &mut dp,
            BenchTarget::Dispatch,
            &other,
            None,
            repeat,
            runs,
            XDP_PASS,
            Some(Reason::NotService),
        )?;
        push(
            "non_vip_service_port_udp",
            "UDP to a service port on an address that is no VIP (XDP_PASS)",
            m,
            None,
        );
    }

    // A malformed packet: UDP length beyond the IP payload.
    if wanted("malformed") {
        let mut bad = base.clone();
        bad[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&900u16.to_be_bytes());
        let m = measure(
            &mut dp,
            BenchTarget::Dispatch,
            &bad,
            None,
            repeat,
            runs,
            XDP_PASS,
            Some(Reason::BadUdpLength),
        )?;
        push(
            "malformed_udp_length",
            "malformed UDP length (XDP_PASS, counted)",
            m,
            None,
        );
    }

    let sizes = dp.program_sizes();
    drop(dp);
    let live = if wanted("live") {
        let frames = std::env::var("TANDEM_BENCH_LIVE_FRAMES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000_000);
        Some(super::live::run(frames, runs).context("live-frames benchmark"))
    } else {
        None
    };
    // A live path that cannot run costs the report its live table, not the
    // cases measured before it: they are written, the failure is named in
    // the report, and the run still fails.
    let (live, live_error) = match live {
        Some(Ok(l)) => (Some(l), None),
        Some(Err(e)) => (None, Some(format!("{e:#}"))),
        None => (None, None),
    };
    write_reports(out_dir, &results, repeat, runs, live.as_ref(), &sizes, live_error.as_deref())?;
    if let Some(e) = live_error {
        anyhow::bail!("{e} (the other cases are written under {})", out_dir.display());
    }
    Ok(results)
}

fn write_reports(
    out_dir: &Path,
    results: &[CaseResult],
    repeat: u32,
    runs: usize,
    live: Option<&super::live::LiveResult>,
    sizes: &[tandem_dataplane::ProgramSize],
    live_error: Option<&str>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cases: Vec<_> = results
        .iter()
        .map(|r| {
            json!({
                "case": r.case,
                "what": r.what,
                "ns_per_packet": (r.ns_per_packet * 10.0).round() / 10.0,
                "ratio_to_floor": (r.ratio_to_floor * 100.0).round() / 100.0,
                "runs_ns_per_packet": r.runs_ns,
                "goal_ratio_to_floor": r.goal_ratio,
                "meets_goal": r.goal_ratio.map(|g| r.ratio_to_floor <= g),
            })
        })
        .collect();
    let doc = json!({
        "benchmark": "dispatch",
        "method": "BPF_PROG_TEST_RUN through a frame-restoring wrapper; each run of a case is paired with a floor run just before it; ns_per_packet is the median over runs of the kernel average per iteration, ratio_to_floor the median of the paired ratios",
        "repeat_per_run": repeat,
        "runs": runs,
        "frame_bytes": 64,
        "kernel": kernel,
        "flow_table_entries": DEFAULT_FLOW_ENTRIES,
        "cases": cases,
        "programs": sizes.iter().map(|p| json!({
            "program": p.name,
            "xlated_insns": p.xlated_insns,
            "jited_bytes": p.jited_bytes,
        })).collect::<Vec<_>>(),
        "live_frames": live.map(|l| json!({
            "method": "veth path gen -> dir (program under test) -> sink (XDP count+drop); generator: BPF_PROG_TEST_RUN live frames; one established UDP flow, DR",
            "frames_per_run": l.frames_per_run,
            "runs": l.runs,
            "dispatch_delivered_pps": l.dispatch_pps.round(),
            "trivial_forwarder_delivered_pps": l.forwarder_pps.round(),
            "ratio_to_trivial_forwarder": (l.dispatch_pps / l.forwarder_pps * 100.0).round() / 100.0,
            "dispatch_delivered_fraction": l.dispatch_delivered_fraction,
            "trivial_forwarder_delivered_fraction": l.forwarder_delivered_fraction,
            "dispatch_cpu_ns_per_delivered_packet": l.dispatch_cpu_ns_per_packet.round(),
            "trivial_forwarder_cpu_ns_per_delivered_packet": l.forwarder_cpu_ns_per_packet.round(),
        })),
        "live_frames_error": live_error,
    });
    std::fs::write(
        out_dir.join("dispatch.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;
    let mut md = markdown(results, repeat, runs);
    md.push_str(&sizes_markdown(sizes));
    if let Some(l) = live {
        md.push_str(&live_markdown(l));
    }
    if let Some(e) = live_error {
        md.push_str(&format!("\nLive frames through veths: not measured: {e}\n"));
    }
    std::fs::write(out_dir.join("dispatch.md"), md)?;
    Ok(())
}

/// The table printed and written to `dispatch.md`.
pub fn markdown(results: &[CaseResult], repeat: u32, runs: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| case | ns/packet | × floor | goal | |");
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    for r in results {
        let goal = r.goal_ratio.map_or(String::new(), |g| format!("≤ {g:.1}×"));
        let ok = match r.goal_ratio {
            Some(g) if r.ratio_to_floor <= g => "ok",
            Some(_) => "MISSED",
            None => "",
        };
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.2} | {} | {} |",
            r.case, r.ns_per_packet, r.ratio_to_floor, goal, ok
        );
    }
    let _ = writeln!(
        s,
        "\nBPF_PROG_TEST_RUN, 64-byte UDP frames, median of {runs} runs × {repeat} iterations, frame restored before every iteration (floor measured through the same wrapper)."
    );
    s
}

/// The programs' sizes after verification.
pub fn sizes_markdown(sizes: &[tandem_dataplane::ProgramSize]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n| program | instructions (xlated) | JIT bytes |");
    let _ = writeln!(s, "|---|---:|---:|");
    for p in sizes {
        let _ = writeln!(s, "| `{}` | {} | {} |", p.name, p.xlated_insns, p.jited_bytes);
    }
    s
}

/// The end-to-end table.
pub fn live_markdown(l: &super::live::LiveResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n| through veths (live frames) | delivered Mpps | delivered / sent | × trivial forwarder | CPU ns / delivered packet |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        s,
        "| trivial XDP forwarder | {:.2} | {:.2} | 1.00 | {:.0} |",
        l.forwarder_pps / 1e6,
        l.forwarder_delivered_fraction,
        l.forwarder_cpu_ns_per_packet
    );
    let _ = writeln!(
        s,
        "| tandem dispatcher (established UDP, DR) | {:.2} | {:.2} | {:.2} | {:.0} |",
        l.dispatch_pps / 1e6,
        l.dispatch_delivered_fraction,
        l.dispatch_pps / l.forwarder_pps,
        l.dispatch_cpu_ns_per_packet
    );
    let _ = writeln!(
        s,
        "\n{} frames per run, median of {} runs; generator, director and sink share the machine's 2 vCPUs (CPU time: every CPU's busy time during the run, from `/proc/stat`, over the packets delivered).",
        l.frames_per_run, l.runs
    );
    s
}
