//! `tandem-lab`: the lab by hand. `up` builds a DR lab with 4 IVRs that stays
//! until `down` (namespaces `tdmlab-*`); `demo` builds a throw-away pair lab
//! and runs the whole platform in it: two `tandemd` with simulated cards,
//! four SIPp IVRs, a SIPp caller; it kills the active director, then an IVR,
//! and prints the timeline and what the calls saw.
//!
//! Run as root, usually through `cargo xtask lab up|down` and `cargo xtask demo`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;
use tandem_tests::calls;
use tandem_tests::lab::privileged;
use tandem_tests::lab::{self, CLIENT, DIRECTOR_ADDR, Lab, LabOptions};
use tandem_tests::sipp::{self, CallerOptions};
use tandem_tests::tandemd::{Binaries, Pair, PairOptions, WorkDir, wait_for};

/// Name prefix of the persistent lab.
const PERSISTENT_PREFIX: &str = "tdmlab";
/// IVRs in the persistent and the demo lab.
const N_IVR: usize = 4;

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
    /// SIP calls through a hot-standby pair (SIPp), the active director and
    /// then an IVR killed on the way; a timeline and a table; the lab torn down.
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
    Ok(privileged::ensure_root("the lab", "it creates network namespaces")?)
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

/// Prints a line at once (the demo is watched as it runs).
macro_rules! say {
    ($($t:tt)*) => {{
        println!($($t)*);
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }};
}

/// One event of the demo's own, on tandemd's clock.
struct Mark {
    at_ns: u64,
    what: String,
}

fn mark(marks: &mut Vec<Mark>, what: impl Into<String>) {
    marks.push(Mark {
        at_ns: tandem_dataplane::monotonic_ns(),
        what: what.into(),
    });
}

/// The failover switch's watchdog on each director's card, in the demo.
const DEMO_WATCHDOG_MS: u32 = 100;

/// The demo, step by step; every wait is bounded, every process is ours
/// and stopped by PID, the lab goes when this returns.
fn demo() -> Result<()> {
    ensure_root()?;
    let t0 = Instant::now();
    let bins = Binaries::from_env()?;
    let version = sipp::version()?;
    let dir = WorkDir::new("demo")?;
    let mut marks = Vec::new();

    say!("== tandem demo: SIP calls through a hot-standby pair of directors");
    say!("   ({version}; tandemd {})", bins.tandemd.display());

    // Two simulated cards (FUSE) sharing one trunk: a failover switch.
    let cards = tandem_tests::lab::cards::SharedTrunkCards::mount(dir.path(), 4)?;
    let (sim, roots) = (&cards.sim, &cards.roots);
    say!(
        "== cards: two simulated DAHDI cards (FUSE), one span each on a shared trunk: card 0 is a's, card 1 is b's"
    );

    // Each card's failover switch holds the trunk for the director that
    // kicks its watchdog (tandemd does while active).
    let o = PairOptions {
        card_watchdog_ms: Some(DEMO_WATCHDOG_MS),
        ..PairOptions::default()
    };
    let mut pair = Pair::start(
        N_IVR,
        &o,
        dir.path(),
        &bins,
        Some([roots[0].as_path(), roots[1].as_path()]),
    )?;
    let lab = &pair.lab;
    say!(
        "== the lab {} (network namespaces, 198.18.0.0/15):",
        lab.prefix()
    );
    say!(
        "   client {}  directors a {} / b {} (+ heartbeat link hb0 {} / {})  witness {}",
        lab::CLIENT_ADDR,
        lab::DIRECTOR_A_ADDR,
        lab::DIRECTOR_B_ADDR,
        lab::HB_A_ADDR,
        lab::HB_B_ADDR,
        lab::WITNESS_ADDR
    );
    let ivr_list: Vec<String> = lab
        .ivrs()
        .iter()
        .map(|h| format!("{} {}", h.name, h.addr()))
        .collect();
    say!(
        "   IVRs {}  VIP {} (on every IVR's lo: direct routing)",
        ivr_list.join(", "),
        lab.vip()
    );
    say!(
        "== directors: a active, b standby in sync (tandemd, heartbeats 10 ms x 3 on both paths, witness, UDP 5060 rr + sip_persist)"
    );
    if !wait_for(Duration::from_secs(5), || {
        pair.a.log_text().contains("spans started alarm-free")
    }) {
        bail!("a's spans did not start:\n{}", pair.a.log_text());
    }

    let mut ivrs = calls::start_ivrs(&pair.lab, dir.path(), true, true)?;
    if !wait_for(Duration::from_secs(10), || {
        calls::reals_alive(&pair.a, N_IVR)
    }) {
        bail!("a does not hear every IVR: {:?}", pair.a.reals());
    }
    say!(
        "== IVRs: SIPp UAS on VIP:5060 in each IVR namespace (SDP c= the IVR's own address, RTP echoed), heartbeats to both directors; a hears all four"
    );

    // A TDM call on the trunk, answered by the active (a).
    let _ = sim.execute("ring 0 1 1");
    let tdm_a = wait_for(Duration::from_secs(5), || {
        sim.execute("call 0 1 1").contains("answered")
    });
    say!(
        "== a TDM call rings on the trunk: {}",
        if tdm_a {
            "a answered it on card 0, span 1, channel 1"
        } else {
            "not answered by a"
        }
    );

    let co = CallerOptions::new(20, 300, 5000);
    let caller = calls::start_caller(&pair.lab, dir.path(), &co)?;
    mark(
        &mut marks,
        "caller starts: 300 calls at 20/s, 5 s each, G.711 RTP",
    );
    say!(
        "== caller: SIPp on client:5060 -> VIP:5060, 20 calls/s, 300 calls of 5 s with RTP (pid {:?})",
        caller.pid()
    );

    std::thread::sleep(Duration::from_secs(5));
    // Like the test: a moment when no call was set up in the last 15 ms.
    caller.wait_quiet(Duration::from_millis(15), Duration::from_secs(2));
    let t_kill = sipp::wall_now();
    let pid_a = pair.a.pid();
    let killed_at = Instant::now();
    let kill_ns = pair.a.kill9().unwrap_or(0);
    marks.push(Mark {
        at_ns: kill_ns,
        what: format!("kill -9 director a (pid {})", pid_a.unwrap_or(0)),
    });
    mark(
        &mut marks,
        "a's process reaped: its XDP program is gone with it",
    );
    say!(
        "   t+5 s: kill -9 of director a (pid {}); nobody kicks card 0's watchdog any more",
        pid_a.unwrap_or(0)
    );
    // The failover switch notices by itself (its watchdog expires, no help
    // from here) and moves the trunk from a's card 0 to b's card.
    let released = wait_for(Duration::from_secs(5), || {
        sim.watchdog(0).is_ok_and(|w| w.released)
    });
    mark(
        &mut marks,
        if released {
            "card simulator: card 0's watchdog expired, the failover switch released a's card"
        } else {
            "card simulator: card 0's watchdog did not expire within 5 s"
        },
    );
    let relay_moved = sim
        .watchdog(0)
        .ok()
        .and_then(|w| w.last_expiry)
        .map(|at| at.saturating_duration_since(killed_at));
    say!(
        "   the failover switch {}",
        if released {
            format!(
                "released a's card {:?} after the kill (watchdog {DEMO_WATCHDOG_MS} ms): the trunk goes to b's card",
                relay_moved.unwrap_or_default()
            )
        } else {
            "did NOT release a's card within 5 s".to_string()
        }
    );
    if !wait_for(Duration::from_secs(5), || {
        pair.b.state().as_deref() == Some("active")
    }) {
        bail!("b did not take over:\n{}", pair.b.log_text());
    }
    mark(&mut marks, "tandemctl: b active");
    let t_b_active = sipp::wall_now();
    say!("   b is active");

    // A live change on the new active, while its calls flow: the file is
    // edited and reloaded, nothing restarts.
    let first_ivr = pair.lab.ivrs()[0].addr().to_string();
    let edit = std::process::Command::new(&bins.tandemctl)
        .arg("--socket")
        .arg(pair.b.socket())
        .args(["real", "edit", "-r", &first_ivr, "-w", "2"])
        .output()?;
    let said = String::from_utf8_lossy(&edit.stdout).into_owned() + &String::from_utf8_lossy(&edit.stderr);
    mark(&mut marks, format!("tandemctl real edit -r {first_ivr} -w 2 on b"));
    say!("   live change on b: `tandemctl real edit -r {first_ivr} -w 2` (the file edited, then reloaded):");
    for line in said.lines() {
        say!("     {line}");
    }

    std::thread::sleep(Duration::from_secs(5));
    let victim = 2;
    let (dead_name, dead_addr) = (ivrs[victim].name.clone(), ivrs[victim].addr);
    let pid_ivr = ivrs[victim].sipp.pid();
    let t_ivr = sipp::wall_now();
    mark(
        &mut marks,
        format!(
            "kill {dead_name}: SIPp (pid {}) and its heartbeats",
            pid_ivr.unwrap_or(0)
        ),
    );
    ivrs[victim].kill();
    say!(
        "   t+10 s: {dead_name} killed (its SIPp, pid {}, and its heartbeats)",
        pid_ivr.unwrap_or(0)
    );
    let dead_seen = wait_for(Duration::from_secs(5), || {
        pair.b
            .udp_real(dead_addr)
            .and_then(|r| r.get("health").and_then(Value::as_str).map(str::to_string))
            .as_deref()
            == Some("dead")
    });
    let t_dead = sipp::wall_now();
    say!(
        "   b {} {dead_name} dead",
        if dead_seen { "marked" } else { "did NOT mark" }
    );
    say!(
        "   waiting for the caller (the last calls end ~20 s in; the calls {dead_name} held time out)"
    );
    let r = caller.wait()?;
    mark(&mut marks, "caller done");
    let tdm_b = sim.execute("call 1 1 1");
    let b_stats = pair.b.stats();
    let b_reals = pair.b.reals();
    let b_cards = pair.b.ask(&["cards"]);
    let per_ivr = calls::stop_ivrs(&mut ivrs);

    // The timeline: both daemons' own lines and the demo's, one clock.
    say!("");
    say!("== timeline (CLOCK_MONOTONIC; ms from the kill of a; tandemd's own timeline lines)");
    let mut events: Vec<(u64, String, String)> = pair
        .timeline()
        .into_iter()
        .map(|(ns, who, what)| (ns, format!("tandemd {who}"), what))
        .collect();
    events.extend(
        marks
            .iter()
            .map(|m| (m.at_ns, "demo".to_string(), m.what.clone())),
    );
    events.sort_by_key(|e| e.0);
    for (ns, who, what) in &events {
        let ms = (*ns as f64 - kill_ns as f64) / 1e6;
        let note = if who == "tandemd b" && what.contains("standby -> takeover") {
            "   <- detection: a silent on both paths for 3 heartbeats"
        } else if what.starts_with("takeover done") {
            "   <- VIP owned in XDP, gratuitous ARP sent"
        } else if what.starts_with("spans started") {
            "   <- card spans up on this node"
        } else if what.contains(&format!("node {} dead", calls_node_id(victim))) {
            "   <- no new calls to it"
        } else {
            ""
        };
        say!("  {ms:>+11.3} ms  {who:<10} {what}{note}");
    }

    // What the calls saw.
    let est = r.calls.iter().filter(|c| c.established.is_some()).count();
    let before_kill: Vec<_> = r
        .calls
        .iter()
        .filter(|c| c.established_before(t_kill))
        .collect();
    let lost_kill = before_kill
        .iter()
        .filter(|c| !c.succeeded() && c.ivr.as_deref() != Some(&dead_name))
        .count();
    let on_dead: Vec<_> = r
        .calls
        .iter()
        .filter(|c| c.ivr.as_deref() == Some(&dead_name))
        .collect();
    let on_dead_live = on_dead
        .iter()
        .filter(|c| c.established_before(t_ivr) && c.done.is_none_or(|d| d > t_ivr))
        .count();
    let on_dead_failed = on_dead.iter().filter(|c| !c.succeeded()).count();
    let after_dead: Vec<_> = r.calls.iter().filter(|c| c.started_after(t_dead)).collect();
    let after_dead_to_dead = after_dead
        .iter()
        .filter(|c| c.ivr.as_deref() == Some(&dead_name))
        .count();
    let after_dead_failed = after_dead.iter().filter(|c| !c.succeeded()).count();
    // Set up after the kill -9 through a, whose XDP program dispatched
    // until its process was gone, while no daemon was left to sync them.
    let through_a: Vec<_> = r
        .calls
        .iter()
        .filter(|c| c.established.is_some_and(|e| e > t_kill && e <= t_b_active))
        .collect();
    let through_a_lost = through_a.iter().filter(|c| !c.succeeded()).count();
    let other_failed = r
        .failed_calls()
        .iter()
        .filter(|c| c.ivr.as_deref() != Some(&dead_name))
        .filter(|c| !c.established.is_some_and(|e| e > t_kill && e <= t_b_active))
        .count();
    say!("");
    say!("== results");
    say!("  | calls | count |");
    say!("  |---|---:|");
    say!("  | attempted (SIPp) | {} |", r.stats.created());
    say!("  | established (200 to the INVITE, ACK sent) | {est} |");
    say!(
        "  | successful (SIPp; BYE answered by the IVR of the INVITE) | {} |",
        r.stats.successful()
    );
    say!("  | failed (SIPp) | {} |", r.stats.failed());
    say!(
        "  | established before the kill of a / of them lost | {} / {lost_kill} |",
        before_kill.len()
    );
    say!(
        "  | held by {dead_name} when it died / failed among its calls | {on_dead_live} / {on_dead_failed} |"
    );
    say!(
        "  | placed after {dead_name} was marked dead / sent to it / failed | {} / {after_dead_to_dead} / {after_dead_failed} |",
        after_dead.len()
    );
    say!(
        "  | set up through a in the ms after its kill -9 (its XDP still attached, no daemon to sync) / lost | {} / {through_a_lost} |",
        through_a.len()
    );
    say!("  | other failures | {other_failed} |");
    say!(
        "  SIPp caller: {} (exit code {:?})",
        r.stats.summary(),
        r.exit_code
    );
    say!("");
    say!(
        "  per IVR (caller's log and each IVR's own SIPp statistics; RTP counted in the IVR's namespace):"
    );
    for line in calls::per_ivr_table(&r, &per_ivr).lines() {
        say!("  {line}");
    }
    say!("");
    say!("  the TDM call after the takeover: card 1 (b's), span 1, channel 1: {tdm_b}");
    if let Some(spans) = b_cards
        .as_ref()
        .and_then(|v| v.get("spans"))
        .and_then(Value::as_array)
    {
        for sp in spans {
            say!(
                "  b's span {} on {}: {} {} (owned: {})",
                sp["span"],
                sp["card"].as_str().unwrap_or("?"),
                sp["state"].as_str().unwrap_or("?"),
                sp["alarms"].as_str().unwrap_or("?"),
                sp["owned"]
            );
        }
    }
    say!("");
    say!("  b's dispatcher since it started (tandemctl stats; reasons with a count):");
    let nonzero: BTreeMap<_, _> = b_stats.iter().filter(|(_, n)| **n > 0).collect();
    for (k, n) in nonzero {
        say!("    {k:<22} {n:>8}");
    }
    say!("  b's real servers (tandemctl reals):");
    for rl in b_reals
        .iter()
        .filter(|r| r["service"].as_str().is_some_and(|s| s.starts_with("udp/")))
    {
        say!(
            "    {:<16} health {:<6} new calls {:>5}  packets {:>6}",
            rl["address"].as_str().unwrap_or("?"),
            rl["health"].as_str().unwrap_or("?"),
            rl["new_flows"],
            rl["packets"]
        );
    }
    drop(pair);
    drop(cards);
    say!("");
    say!(
        "== done in {:.0} s; the lab's namespaces, daemons and SIPp are gone",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The heartbeat node id of the IVR at `k` (0-based).
fn calls_node_id(k: usize) -> u32 {
    tandem_tests::tandemd::ivr_node_id(k)
}
