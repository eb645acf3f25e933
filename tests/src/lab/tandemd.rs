//! Two `tandemd` in a pair lab, as the calls tests, the calls benchmark and
//! the demo run them: a generated `tandem.toml` per director (heartbeats
//! over the heartbeat link and the service network, a witness, the VIP,
//! state sync, a UDP service on VIP:5060 over the lab's IVRs and
//! optionally its TCP twin, IVR heartbeats, a simulated card), started
//! with `ip netns exec` (the child's PID is the daemon's), asked with
//! `tandemctl --json`, killed by PID.
//!
//! Each daemon's stdout and stderr go to one log file, appended across
//! restarts; [`Director::timeline`] reads back tandemd's timeline lines
//! (`<CLOCK_MONOTONIC ns> <event>`). Every wait is bounded. A daemon dies
//! with the thread that started it (`PR_SET_PDEATHSIG`) and on drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tandem_dataplane::Dataplane;

use crate::Lab;
use crate::lab::director::attach_pair_bridge_pass;
use crate::lab::wait::wait_until;
use crate::lab::{self, DIRECTOR_A, DIRECTOR_B, cmd};

/// The pair's shared heartbeat key (the lab's; never a real one).
pub const KEY_HEX: &str = "00112233445566778899aabbccddeeff";

/// [`KEY_HEX`] as bytes.
pub fn key() -> [u8; 16] {
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&KEY_HEX[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    k
}

/// The heartbeat node id of IVR `k` (0-based, in `lab.ivrs()` order).
pub fn ivr_node_id(k: usize) -> u32 {
    101 + k as u32
}

/// Where `tandemd` and `tandemctl` are.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub tandemd: PathBuf,
    pub tandemctl: PathBuf,
}

impl Binaries {
    /// `TANDEMD` / `TANDEMCTL`, else next to this executable (where
    /// `cargo build --release` puts them beside `tandem-bench`).
    pub fn from_env() -> Result<Binaries> {
        let here = std::env::current_exe().context("locating this executable")?;
        let dir = here
            .parent()
            .context("executable without a directory")?
            .to_path_buf();
        let bin = |var: &str, name: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.join(name))
        };
        let b = Binaries {
            tandemd: bin("TANDEMD", "tandemd"),
            tandemctl: bin("TANDEMCTL", "tandemctl"),
        };
        for p in [&b.tandemd, &b.tandemctl] {
            if !p.exists() {
                bail!(
                    "{} not found (build it: cargo build --release -p tandem-control)",
                    p.display()
                );
            }
        }
        Ok(b)
    }
}

/// What the pair's configuration holds besides the fixed lab wiring.
#[derive(Clone, Debug)]
pub struct PairOptions {
    /// The UDP service's scheduler (`rr`, `wlc`, …).
    pub scheduler: String,
    /// The UDP service's flags (`sip_persist`, `expire_nodest`, …).
    pub flags: Vec<String>,
    /// Also a TCP service on VIP:5060 (rr, the same flags) over the same IVRs.
    pub tcp_service: bool,
    /// Each real server gets its IVR heartbeat `node_id` ([`ivr_node_id`]):
    /// health from heartbeats, and no calls before the first.
    pub ivr_heartbeats: bool,
    pub heartbeat_interval_ms: u32,
    pub multiplier: u32,
    /// `node.realtime_priority` (0: normal scheduling).
    pub realtime_priority: u32,
    pub flow_entries: u32,
    /// A `[sync]` section (state sync on port 8848); [`Pair::start`] then
    /// also waits for b to be in sync.
    pub sync: bool,
    /// `node.preempt`: a returning a takes the VIP back from b.
    pub preempt: bool,
    /// `admin.metrics_listen` (e.g. `127.0.0.1:9469`), if any.
    pub metrics_listen: Option<String>,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            scheduler: "rr".into(),
            flags: vec!["sip_persist".into()],
            tcp_service: false,
            ivr_heartbeats: true,
            heartbeat_interval_ms: 10,
            multiplier: 3,
            // SIPp shares the two cores: the daemons' loops must not wait
            // behind it for 30 ms (their heartbeat deadline).
            realtime_priority: 50,
            flow_entries: 65_536,
            sync: true,
            preempt: false,
            metrics_listen: None,
        }
    }
}

/// Director `me`'s `tandem.toml` (and where its admin socket will be).
/// `card`: the root of its simulated card and whether it answers calls
/// itself (`auto_answer`).
pub fn config_text(
    lab: &Lab,
    me: &str,
    o: &PairOptions,
    socket: &Path,
    card: Option<(&Path, bool)>,
) -> String {
    let reals: Vec<(Ipv4Addr, String)> = lab
        .ivrs()
        .iter()
        .map(|ivr| (ivr.addr(), ivr.eth0().mac_string()))
        .collect();
    render_config(lab.prefix(), lab.vip(), &reals, me, o, socket, card)
}

/// [`config_text`] from what it needs of the lab: its prefix, the VIP and
/// each IVR's address and MAC (in `lab.ivrs()` order).
fn render_config(
    prefix: &str,
    vip: Ipv4Addr,
    ivrs: &[(Ipv4Addr, String)],
    me: &str,
    o: &PairOptions,
    socket: &Path,
    card: Option<(&Path, bool)>,
) -> String {
    let (id, peer_id, priority, local, peer, hb_local, hb_peer) = if me == DIRECTOR_A {
        (
            1,
            2,
            150,
            lab::DIRECTOR_A_ADDR,
            lab::DIRECTOR_B_ADDR,
            lab::HB_A_ADDR,
            lab::HB_B_ADDR,
        )
    } else {
        (
            2,
            1,
            100,
            lab::DIRECTOR_B_ADDR,
            lab::DIRECTOR_A_ADDR,
            lab::HB_B_ADDR,
            lab::HB_A_ADDR,
        )
    };
    let reals = |with_id: bool| {
        let mut s = String::new();
        for (k, (addr, mac)) in ivrs.iter().enumerate() {
            s.push_str(&format!(
                "[[service.real]]\naddress = \"{addr}\"\nmac = \"{mac}\"\nweight = 1\n{}\n",
                if with_id {
                    format!("node_id = {}\n", ivr_node_id(k))
                } else {
                    String::new()
                }
            ));
        }
        s
    };
    let flags: Vec<String> = o.flags.iter().map(|f| format!("\"{f}\"")).collect();
    let sync = if o.sync {
        "[sync]\nport = 8848\n\n"
    } else {
        ""
    };
    let mut text = format!(
        r#"# Generated by tandem-tests (lab/tandemd.rs) for lab {prefix}.
[node]
id = {id}
peer_id = {peer_id}
name = "{me}"
priority = {priority}
preempt = {preempt}
realtime_priority = {rt}

[heartbeat]
interval_ms = {interval}
multiplier = {mult}
key = "{KEY_HEX}"
paths = [
  {{ name = "link", interface = "hb0", local = "{hb_local}", peer = "{hb_peer}" }},
  {{ name = "service", interface = "eth0", local = "{local}", peer = "{peer}" }},
]

[witness]
address = "{witness}"

{sync}[[vip]]
address = "{vip}"
interface = "eth0"

[dataplane]
xdp_mode = "native"
interfaces = ["eth0", "hb0"]
flow_entries = {flows}

[[service]]
vip = "{vip}"
port = 5060
protocol = "udp"
scheduler = "{sched}"
forward = "dr"
flags = [{flags}]

{reals}
"#,
        preempt = o.preempt,
        rt = o.realtime_priority,
        interval = o.heartbeat_interval_ms,
        mult = o.multiplier,
        witness = lab::WITNESS_ADDR,
        flows = o.flow_entries,
        sched = o.scheduler,
        flags = flags.join(", "),
        reals = reals(o.ivr_heartbeats),
    );
    if o.tcp_service {
        // The same flags: with sip_persist, Call-IDs seen over TCP are
        // learned for the UDP service.
        text.push_str(&format!(
            "[[service]]\nvip = \"{vip}\"\nport = 5060\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforward = \"dr\"\nflags = [{}]\n\n{}\n",
            flags.join(", "),
            reals(o.ivr_heartbeats)
        ));
    }
    if let Some((root, auto_answer)) = card {
        text.push_str(&format!(
            "[[card]]\nroot = \"{}\"\nspans = [1]\ntakeover_deadline_ms = 500\nauto_answer = {auto_answer}\n\n",
            root.display()
        ));
    }
    text.push_str(&format!("[admin]\nsocket = \"{}\"\n", socket.display()));
    if let Some(m) = &o.metrics_listen {
        text.push_str(&format!("metrics_listen = \"{m}\"\n"));
    }
    text
}

/// One director's `tandemd`.
pub struct Director {
    pub name: &'static str,
    ns: String,
    config: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    bins: Binaries,
    /// Starts so far.
    pub starts: u32,
}

impl Drop for Director {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl Director {
    /// Writes `name`'s configuration into `dir`; does not start it.
    pub fn new(
        lab: &Lab,
        name: &'static str,
        dir: &Path,
        o: &PairOptions,
        card: Option<(&Path, bool)>,
        bins: &Binaries,
    ) -> Result<Director> {
        let socket = dir.join(format!("{name}.sock"));
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text(lab, name, o, &socket, card))
            .with_context(|| format!("writing {}", config.display()))?;
        Ok(Director {
            name,
            ns: lab.ns(name)?.to_string(),
            config,
            socket,
            log: dir.join(format!("{name}.log")),
            child: None,
            bins: bins.clone(),
            starts: 0,
        })
    }

    pub fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(&self.bins.tandemd)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        cmd::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} in {}", self.bins.tandemd.display(), self.ns))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the daemon is running (started and not exited).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// SIGKILL by PID, as a crash; returns CLOCK_MONOTONIC just before it.
    pub fn kill9(&mut self) -> Option<u64> {
        let mut c = self.child.take()?;
        let at = tandem_dataplane::monotonic_ns();
        let _ = c.kill();
        let _ = c.wait();
        Some(at)
    }

    /// SIGTERM (VIPs released, XDP detached), up to 3 s, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            // SAFETY: kill(2) on our own child's PID, not yet reaped.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill9();
    }

    /// `tandemctl --json <args>`: the daemon's answer, if any.
    pub fn ask(&self, args: &[&str]) -> Option<Value> {
        let out = Command::new(&self.bins.tandemctl)
            .arg("--socket")
            .arg(&self.socket)
            .args(["--json", "--timeout-ms", "2000"])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The network namespace the daemon runs in.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The daemon's admin socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's typed events numbered above `after` (all of them the
    /// daemon still holds, asked in pages), or none if it does not answer.
    pub fn events(&self, after: u64) -> Vec<tandem_control::events::Stamped> {
        use tandem_control::admin::{Request, Response, request};
        let mut out: Vec<tandem_control::events::Stamped> = Vec::new();
        loop {
            let from = out.last().map_or(after, |e| e.seq);
            match request(&self.socket, &Request::Events { after: from }, Duration::from_secs(2)) {
                Ok(Response::Events { events }) if !events.is_empty() => out.extend(events),
                _ => return out,
            }
        }
    }

    /// Pair state (`active`, `standby`, …).
    pub fn state(&self) -> Option<String> {
        self.ask(&["status"])?
            .get("state")?
            .as_str()
            .map(str::to_string)
    }

    pub fn sync(&self) -> Option<Value> {
        self.ask(&["sync"])
    }

    /// `tandemctl reals`: every real server (service, address, health, new_flows, …).
    pub fn reals(&self) -> Vec<Value> {
        self.ask(&["reals"])
            .and_then(|v| v.get("reals").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    }

    /// The UDP service's real server at `addr`.
    pub fn udp_real(&self, addr: std::net::Ipv4Addr) -> Option<Value> {
        self.reals().into_iter().find(|r| {
            r.get("address").and_then(Value::as_str) == Some(&addr.to_string())
                && r.get("service")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.starts_with("udp/"))
        })
    }

    /// `tandemctl stats`: the dispatcher's counters by reason.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        if let Some(v) = self.ask(&["stats"]) {
            for r in v
                .get("reasons")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(n), Some(p)) = (
                    r.get("reason").and_then(Value::as_str),
                    r.get("packets").and_then(Value::as_u64),
                ) {
                    m.insert(n.to_string(), p);
                }
            }
        }
        m
    }

    /// `tandemctl switchover`; true if it was carried out.
    pub fn switchover(&self) -> bool {
        self.ask(&["switchover"])
            .is_some_and(|v| v.get("reply").and_then(Value::as_str) == Some("done"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// tandemd's timeline lines: `(CLOCK_MONOTONIC ns, event)`, in order.
    pub fn timeline(&self) -> Vec<(u64, String)> {
        self.log_text()
            .lines()
            .filter_map(|l| {
                let (ns, what) = l.split_once(' ')?;
                let ns: u64 = ns.parse().ok()?;
                (ns > 0).then(|| (ns, what.to_string()))
            })
            .collect()
    }
}

/// Polls `f` every 20 ms until it holds or `timeout` passes (the pace
/// for questions through `tandemctl`, a process per question).
pub fn wait_for(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    wait_until(timeout, Duration::from_millis(20), f)
}

/// A scratch directory for configs, logs and SIPp files; removed on drop
/// unless `TANDEM_KEEP_LOGS=1`.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn new(tag: &str) -> Result<WorkDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!("tandem-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(WorkDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::env::var("TANDEM_KEEP_LOGS").is_ok_and(|v| v == "1") {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A pair lab with both daemons: `a` active, `b` standby and in sync.
/// Drops the daemons, then the XDP programs on the bridge side, then the lab.
pub struct Pair {
    pub a: Director,
    pub b: Director,
    _peers: Dataplane,
    pub lab: Lab,
}

impl Pair {
    /// Builds a pair lab with `n_ivr` IVRs, writes both configurations
    /// into `dir` (`cards`: each director's card root; a answers calls
    /// itself, b only holds synced ones), starts a (until active), then b
    /// (until standby, and in sync when `o.sync`).
    pub fn start(
        n_ivr: usize,
        o: &PairOptions,
        dir: &Path,
        bins: &Binaries,
        cards: Option<[&Path; 2]>,
    ) -> Result<Pair> {
        let lab = Lab::pair(n_ivr).context("building the pair lab")?;
        let peers = attach_pair_bridge_pass(&lab)?;
        // Only a answers card calls itself: b holds one only from sync.
        let card = |k: usize| cards.map(|c| (c[k], k == 0));
        let a = Director::new(&lab, DIRECTOR_A, dir, o, card(0), bins)?;
        let b = Director::new(&lab, DIRECTOR_B, dir, o, card(1), bins)?;
        let mut p = Pair {
            a,
            b,
            _peers: peers,
            lab,
        };
        p.a.start()?;
        if !wait_for(Duration::from_secs(15), || {
            p.a.state().as_deref() == Some("active")
        }) {
            bail!("a did not become active:\n{}", p.a.log_text());
        }
        p.b.start()?;
        if !wait_for(Duration::from_secs(15), || {
            p.b.state().as_deref() == Some("standby")
                && (!o.sync
                    || p.b.sync().is_some_and(|s| {
                        s.get("state").and_then(Value::as_str) == Some("in sync")
                    }))
        }) {
            bail!(
                "b did not become a standby{}:\n{}",
                if o.sync { " in sync" } else { "" },
                p.b.log_text()
            );
        }
        Ok(p)
    }

    /// The director that is active now, if exactly one is.
    pub fn active(&self) -> Option<&Director> {
        let (sa, sb) = (self.a.state(), self.b.state());
        match (sa.as_deref(), sb.as_deref()) {
            (Some("active"), s) if s != Some("active") => Some(&self.a),
            (s, Some("active")) if s != Some("active") => Some(&self.b),
            _ => None,
        }
    }

    /// Both directors' timelines merged in time order, each event tagged
    /// with its director.
    pub fn timeline(&self) -> Vec<(u64, &'static str, String)> {
        let mut t: Vec<(u64, &'static str, String)> = Vec::new();
        for d in [&self.a, &self.b] {
            t.extend(d.timeline().into_iter().map(|(ns, w)| (ns, d.name, w)));
        }
        t.sort_by_key(|e| e.0);
        t
    }
}

#[cfg(test)]
mod tests;
