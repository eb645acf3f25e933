//! The campaign's lab and how each fault is done to it and undone: the
//! pair with simulated cards on a shared trunk, four SIPp IVRs with their
//! heartbeats, a UDP echo on every IVR for the client's 1 ms probe stream,
//! and the observers outside the daemons (the service network's dual-active
//! watch, the client's probes).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tandem_control::events::Event;

use super::fault::{FAULT_HOLD, Fault, LOSS_HOLD, LOSS_PERCENT};
use super::Options;
use crate::actors::calls::{self, Ivr};
use crate::actors::responder::{Responder, spawn_udp_responder_for};
use crate::bench::observe::{ClientProbe, DualActiveWatch};
use crate::lab::bpffs::Bpffs;
use crate::lab::cards::SharedTrunkCards;
use crate::lab::tandemd::{Director, Pair, PairOptions, wait_for};
use crate::lab::{self, cmd};

/// The cards' failover-switch watchdog (`card.watchdog_ms`).
pub const CARD_WATCHDOG_MS: u32 = 100;
/// The probe service's port on the VIP (UDP, rr, DR).
pub const PROBE_PORT: u16 = 7070;
/// The nftables table the heartbeat-loss fault adds in each director.
const LOSS_TABLE: &str = "tandem_fault_loss";

/// Everything a trial acts on. Dropped in field order: the observers and
/// the probe echoes, the IVRs, the daemons and the lab, then the cards
/// (the daemons hold files on their mounts).
pub struct Rig {
    pub watch: DualActiveWatch,
    pub probe: ClientProbe,
    pub echoes: Vec<Responder>,
    pub ivrs: Vec<Ivr>,
    pub pair: Pair,
    pub cards: SharedTrunkCards,
    pub dir: PathBuf,
    pub ivr_lifetime: Duration,
    pub transport: crate::actors::sipp::Transport,
    /// The bpffs the pair pins in ([`Options::pinned`]); after `pair`, so
    /// it is unmounted after the daemons are gone.
    pub bpffs: Option<Bpffs>,
}

/// What one injection did, as the trial reports it.
#[derive(Default)]
pub struct Injected {
    /// The director it befell (a or b), or the IVR.
    pub on: String,
    /// The IVR it befell (its `X-IVR` name), for IVR faults.
    pub ivr: Option<String>,
    /// Whether a's or b's daemon was started again (its events start over).
    pub restarted: (bool, bool),
    /// What the fault's own instruments saw (nftables counters, the CPU hog).
    pub detail: Value,
}

/// The pair's options for the campaign.
pub fn pair_options(o: &Options, pin_dir: Option<PathBuf>) -> PairOptions {
    PairOptions {
        pin_dir,
        scheduler: "mh".into(),
        heartbeat_interval_ms: o.heartbeat_ms,
        multiplier: o.multiplier,
        tcp_service: o.transport == crate::actors::sipp::Transport::Tcp,
        // The shared trunk's failover switch with its watchdog, as a pair
        // with cards is deployed: a hung active's daemon stops kicking it
        // and the switch hands the trunk to the standby's card.
        card_watchdog_ms: Some(CARD_WATCHDOG_MS),
        probe_port: Some(PROBE_PORT),
        ..PairOptions::default()
    }
}

impl Rig {
    pub fn start(dir: &Path, o: &Options) -> Result<Rig> {
        let cards = SharedTrunkCards::mount(dir, 4).context("two simulated cards on a shared trunk")?;
        let bpffs = if o.pinned { Some(Bpffs::mount(dir.join("bpffs"))?) } else { None };
        let options = pair_options(o, bpffs.as_ref().map(Bpffs::pin_dir));
        let mut pair = Pair::build(4, &options, dir, &o.bins, Some(cards.root_pair()))?;
        let lifetime = o.ivr_lifetime();
        let echoes = pair
            .lab
            .ivrs()
            .iter()
            .map(|h| spawn_udp_responder_for(&h.ns, &h.name, PROBE_PORT, lifetime).context("probe echo"))
            .collect::<Result<Vec<_>>>()?;
        pair.start_directors()?;
        let ivrs = calls::start_ivrs_for(&pair.lab, dir, true, false, Some(lifetime), o.transport)?;
        if !wait_for(Duration::from_secs(10), || calls::reals_alive(&pair.a, 4)) {
            bail!("a does not hear every IVR: {:?}", pair.a.reals());
        }
        let watch = DualActiveWatch::start(&pair.lab).context("the dual-active watch")?;
        let probe = ClientProbe::to_vip(&pair.lab, PROBE_PORT).context("the client's probe stream")?;
        Ok(Rig {
            watch,
            probe,
            echoes,
            ivrs,
            pair,
            cards,
            dir: dir.to_path_buf(),
            ivr_lifetime: lifetime,
            transport: o.transport,
            bpffs,
        })
    }

    /// Which of the pair is active now (a: true), if exactly one is and
    /// the other is standby.
    pub fn settled(&self) -> Option<bool> {
        match (self.pair.a.state().as_deref(), self.pair.b.state().as_deref()) {
            (Some("active"), Some("standby")) => Some(true),
            (Some("standby"), Some("active")) => Some(false),
            _ => None,
        }
    }

    /// Redundant: one active, one standby in sync, every IVR heard by the
    /// active, and the active's card carries the trunk.
    pub fn redundant(&self) -> bool {
        match self.settled() {
            Some(a_active) => {
                let (act, sby) = if a_active { (&self.pair.a, &self.pair.b) } else { (&self.pair.b, &self.pair.a) };
                in_sync(sby) && calls::reals_alive(act, self.ivrs.len()) && self.carries(if a_active { 0 } else { 1 })
            }
            None => false,
        }
    }

    /// Both daemons' roles and sync states and the cards', for an error.
    pub fn describe(&self) -> String {
        format!(
            "a {:?}, b {:?}, a sync {:?}, b sync {:?}, card 0 {}, card 1 {}",
            self.pair.a.state(),
            self.pair.b.state(),
            self.pair.a.sync(),
            self.pair.b.sync(),
            self.cards.sim.execute("status 0"),
            self.cards.sim.execute("status 1"),
        )
    }

    /// Card `c`'s span 1 carries the trunk (from the simulator's status).
    pub fn carries(&self, c: usize) -> bool {
        let s = self.cards.sim.execute(&format!("status {c}"));
        s.contains("carrier=yes")
    }

    pub fn director(&self, a: bool) -> &Director {
        if a { &self.pair.a } else { &self.pair.b }
    }

    fn director_mut(&mut self, a: bool) -> &mut Director {
        if a { &mut self.pair.a } else { &mut self.pair.b }
    }

    fn sim(&self, line: &str) -> Result<()> {
        let r = self.cards.sim.execute(line);
        if !r.starts_with("ok") {
            bail!("card simulator `{line}`: {r}");
        }
        Ok(())
    }

    /// Injects `fault` on the active (`a_active`) or on IVR `ivr_k`, and
    /// undoes it after its hold, as an operator or systemd would (a
    /// killed daemon is restarted after the takeover, a link comes back);
    /// `takeover` is called between the injection and the repair to wait
    /// for the standby to take over (it returns the takeover's time).
    pub fn inject_and_repair(
        &mut self,
        fault: Fault,
        a_active: bool,
        ivr_k: usize,
        t0: Instant,
        takeover: &mut dyn FnMut(&Rig) -> Result<()>,
    ) -> Result<Injected> {
        let act = if a_active { lab::DIRECTOR_A } else { lab::DIRECTOR_B };
        let sby = if a_active { lab::DIRECTOR_B } else { lab::DIRECTOR_A };
        let card = if a_active { 0 } else { 1 };
        let mut done = Injected { on: act.to_string(), ..Injected::default() };
        let hold = |d: Duration| std::thread::sleep(d.saturating_sub(t0.elapsed()));
        match fault {
            Fault::Kill9 | Fault::Crash => {
                if fault == Fault::Crash {
                    for ifname in ["eth0", "hb0"] {
                        self.pair.lab.set_link(act, ifname, false)?;
                    }
                }
                self.director_mut(a_active).kill9();
                takeover(self)?;
                if fault == Fault::Crash {
                    for ifname in ["eth0", "hb0"] {
                        self.pair.lab.set_link(act, ifname, true)?;
                    }
                }
                self.director_mut(a_active).start()?;
                done.restarted = (a_active, !a_active);
            }
            Fault::Hang => {
                signal(self.director(a_active).pid(), libc::SIGSTOP);
                takeover(self)?;
                hold(FAULT_HOLD);
                signal(self.director(a_active).pid(), libc::SIGCONT);
            }
            Fault::ServiceLinkDown | Fault::HeartbeatLinkCut | Fault::Partition => {
                let links: &[&str] = match fault {
                    Fault::ServiceLinkDown => &["eth0"],
                    Fault::HeartbeatLinkCut => &["hb0"],
                    _ => &["hb0", "eth0"],
                };
                for l in links {
                    self.pair.lab.set_link(act, l, false)?;
                }
                takeover(self)?;
                hold(FAULT_HOLD);
                for l in links {
                    self.pair.lab.set_link(act, l, true)?;
                }
            }
            Fault::HeartbeatLoss => {
                for (me, peers) in [
                    (lab::DIRECTOR_A, [lab::DIRECTOR_B_ADDR, lab::HB_B_ADDR]),
                    (lab::DIRECTOR_B, [lab::DIRECTOR_A_ADDR, lab::HB_A_ADDR]),
                ] {
                    self.loss_rules(me, &peers)?;
                }
                hold(LOSS_HOLD);
                let mut counts = serde_json::Map::new();
                for me in [lab::DIRECTOR_A, lab::DIRECTOR_B] {
                    counts.insert(me.to_string(), self.loss_counts(me));
                    self.pair.lab.exec(me, "nft", &["delete", "table", "ip", LOSS_TABLE])?;
                }
                done.on = format!("{act}+{sby}");
                done.detail = Value::Object(counts);
            }
            Fault::CpuStarvation => {
                let pid = self.director(a_active).pid().context("the active's daemon is not running")?;
                let (cpu, prio) = loop_thread(pid).context("the active's loop thread")?;
                let mut hog = cpu_hog(cpu, prio, FAULT_HOLD)?;
                let ok = wait_child(&mut hog, FAULT_HOLD + Duration::from_secs(5));
                done.detail = json!({"cpu": cpu, "sched_fifo_priority": prio, "hog_exited": ok});
            }
            Fault::RedAlarm => {
                self.sim(&format!("alarm {card} 1 RED"))?;
                takeover(self)?;
                hold(FAULT_HOLD);
                self.sim(&format!("alarm {card} 1 none"))?;
            }
            Fault::TrunkCut => {
                self.sim(&format!("cut {card} 1"))?;
                takeover(self)?;
                hold(FAULT_HOLD);
                self.sim(&format!("restore {card} 1"))?;
            }
            Fault::IvrKill => {
                done.on = self.ivrs[ivr_k].name.clone();
                done.ivr = Some(done.on.clone());
                self.ivrs[ivr_k].kill();
                // Restarted once its calls would have timed out at the
                // caller (no sooner: a fresh SIPp would answer their BYEs).
                hold(FAULT_HOLD);
                self.ivrs[ivr_k] =
                    calls::start_ivr(&self.pair.lab, &self.dir, ivr_k, true, false, Some(self.ivr_lifetime), self.transport)?;
            }
            Fault::IvrHang => {
                done.on = self.ivrs[ivr_k].name.clone();
                done.ivr = Some(done.on.clone());
                signal(self.ivrs[ivr_k].sipp.pid(), libc::SIGSTOP);
                hold(FAULT_HOLD);
                signal(self.ivrs[ivr_k].sipp.pid(), libc::SIGCONT);
            }
            Fault::StandbyKill => {
                done.on = sby.to_string();
                self.director_mut(!a_active).kill9();
                // New calls go on being set up with no standby to sync to.
                std::thread::sleep(Duration::from_millis(500));
                self.director_mut(!a_active).start()?;
                done.restarted = (!a_active, a_active);
            }
            Fault::Switchover => {
                if !self.director(a_active).switchover() {
                    bail!("switchover refused:\n{}", self.director(a_active).log_text());
                }
                takeover(self)?;
            }
        }
        Ok(done)
    }

    /// Drops [`LOSS_PERCENT`] % of the UDP packets `me` sends to `peers`
    /// (its peer's addresses on both heartbeat paths), counting all and
    /// the dropped ones.
    fn loss_rules(&self, me: &str, peers: &[std::net::Ipv4Addr; 2]) -> Result<()> {
        let set = format!("{{ {}, {} }}", peers[0], peers[1]);
        let script = format!(
            "table ip {LOSS_TABLE} {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n    ip daddr {set} meta l4proto udp counter\n    ip daddr {set} meta l4proto udp numgen random mod 100 < {LOSS_PERCENT} counter drop\n  }}\n}}\n"
        );
        let file = self.dir.join(format!("loss-{me}.nft"));
        std::fs::write(&file, script).with_context(|| format!("writing {}", file.display()))?;
        self.pair
            .lab
            .exec(me, "nft", &["-f", &file.display().to_string()])
            .with_context(|| format!("nft -f {} in {me}", file.display()))?;
        Ok(())
    }

    /// The loss rules' counters in `me`: packets sent to the peer and dropped.
    fn loss_counts(&self, me: &str) -> Value {
        let text = self.pair.lab.exec(me, "nft", &["list", "table", "ip", LOSS_TABLE]).unwrap_or_default();
        let packets: Vec<u64> = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.position(|t| t == "packets")?;
                w.next()?.parse().ok()
            })
            .collect();
        let (sent, dropped) = (packets.first().copied().unwrap_or(0), packets.get(1).copied().unwrap_or(0));
        json!({
            "udp_to_peer": sent,
            "dropped": dropped,
            "dropped_percent": if sent > 0 { (dropped as f64 * 1000.0 / sent as f64).round() / 10.0 } else { 0.0 },
        })
    }
}

pub fn in_sync(d: &Director) -> bool {
    d.sync()
        .and_then(|s| s.get("state").and_then(Value::as_str).map(|s| s == "in sync"))
        .unwrap_or(false)
}

/// The last event number a running daemon holds (0 when none or not
/// answering).
pub fn last_seq(d: &Director) -> u64 {
    d.events(0).last().map_or(0, |e| e.seq)
}

/// Acquisitions of the active role among a daemon's events after `after`.
pub fn acquisitions(d: &Director, after: u64) -> u64 {
    d.events(after)
        .iter()
        .filter(|e| matches!(&e.event, Event::StateChanged { to, .. } if to == "active"))
        .count() as u64
}

/// A running daemon's resident memory and open descriptors (for the
/// report: a leak across trials shows as a climb).
pub fn resources(d: &Director) -> Value {
    let Some(pid) = d.pid() else { return Value::Null };
    let rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
    });
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).ok();
    let sync = d.sync_status();
    // The flows the kernel's connection table holds, per real server.
    let kernel_flows: u64 = d.reals().iter().filter_map(|r| r.get("flows").and_then(Value::as_u64)).sum();
    json!({
        "director": d.name,
        "rss_kb": rss_kb,
        "fds": fds,
        "sync_flows": sync.as_ref().map(|s| s.flows),
        "sync_calls": sync.as_ref().map(|s| s.calls),
        "sync_channels": sync.as_ref().map(|s| s.channels),
        "sync_queue": sync.as_ref().map(|s| s.queue),
        "kernel_flows": kernel_flows,
    })
}

pub fn signal(pid: Option<u32>, sig: libc::c_int) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) on a child this bench started and still holds.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }
}

/// The CPU and SCHED_FIFO priority of the daemon's real-time thread (its
/// loop), from `/proc/PID/task/*/stat` (fields 39 `processor`, 40
/// `rt_priority`, 41 `policy`); the main thread's CPU if none is FIFO.
fn loop_thread(pid: u32) -> Result<(u32, u32)> {
    let dir = format!("/proc/{pid}/task");
    let mut first = None;
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = e?.path().join("stat");
        let Ok(stat) = std::fs::read_to_string(&path) else { continue };
        // Fields after the command's closing parenthesis, from field 3.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u32>().ok());
        let (Some(cpu), Some(prio), Some(policy)) = (field(39), field(40), field(41)) else { continue };
        if policy == 1 {
            return Ok((cpu, prio));
        }
        first.get_or_insert((cpu, prio.max(1)));
    }
    first.with_context(|| format!("no thread readable in {dir}"))
}

/// A SCHED_FIFO busy loop at `prio` pinned to `cpu` for `hold`
/// (`stress-ng`, bounded by its `--timeout`; dies with this process).
fn cpu_hog(cpu: u32, prio: u32, hold: Duration) -> Result<Child> {
    let bin = crate::lab::noise::stress_ng().context("stress-ng is not installed (`cargo xtask setup` installs it)")?;
    let mut c = Command::new(bin);
    c.args(["--cpu", "1", "--cpu-load", "100", "--taskset"])
        .arg(cpu.to_string())
        .args(["--sched", "fifo", "--sched-prio"])
        .arg(prio.to_string())
        .arg("--timeout")
        .arg(format!("{}s", hold.as_secs().max(1)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd::die_with_parent(&mut c);
    c.spawn().context("starting stress-ng")
}

fn wait_child(c: &mut Child, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(Some(_)) = c.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    false
}
