//! Two `tandemd` in a pair lab, as the pair-lab tests, the calls tests,
//! the benchmarks and the demo run them: a generated `tandem.toml` per
//! director (heartbeats over the heartbeat link and the service network, a
//! witness, the VIP, state sync, a UDP service on VIP:5060 over the lab's
//! IVRs and optionally its TCP twin, IVR heartbeats, a simulated card: see
//! [`PairOptions`]), started with `ip netns exec` (the child's PID is the
//! daemon's), asked with `tandemctl --json` or, typed, over the admin
//! socket from this process ([`Director::request`]), killed by PID.
//!
//! What a daemon did is read as typed events ([`Director::events`], the
//! admin `events` request), not as log sentences. Each daemon's stdout and
//! stderr go to one log file, appended across restarts, for people to
//! read; [`Director::timeline`] reads back its timeline lines
//! (`<CLOCK_MONOTONIC ns> <event>`), and [`Director::logged_events`] parses
//! them into events only for the post-mortem of a daemon that no longer
//! answers. Every wait is bounded. A daemon dies with the thread that
//! started it (`PR_SET_PDEATHSIG`) and on drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tandem_control::admin::{self, Request, Response};
use tandem_control::events::{Event, Stamped};
use tandem_dataplane::Dataplane;

use crate::Lab;
use crate::lab::director::attach_pair_bridge_pass;
use crate::lab::wait::wait_until;
use crate::lab::{DIRECTOR_A, DIRECTOR_B, cmd};

mod config;

use config::DirectorConfig;
pub use config::{
    IVR_KEY_HEX, KEY_HEX, PairOptions, SYNC_KEY_HEX, config_text, ivr_key, ivr_key_of, ivr_node_id, key,
    sync_key,
};

/// How long an admin request asked from this process may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

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

/// One director's `tandemd`.
pub struct Director {
    pub name: &'static str,
    ns: String,
    /// What its configuration file holds, and where that file is.
    config: DirectorConfig,
    config_path: PathBuf,
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
        let d = Director {
            name,
            ns: lab.ns(name)?.to_string(),
            config: DirectorConfig::new(lab, name, o, &socket, card),
            config_path: dir.join(format!("{name}.toml")),
            socket,
            log: dir.join(format!("{name}.log")),
            child: None,
            bins: bins.clone(),
            starts: 0,
        };
        d.write_config()?;
        Ok(d)
    }

    fn write_config(&self) -> Result<()> {
        crate::write_private(&self.config_path, self.config.text())
            .with_context(|| format!("writing {}", self.config_path.display()))
    }

    /// Adds `line` (e.g. `sip_options = { interval_ms = 100, … }`) to the
    /// UDP service's table of the configuration, which the next
    /// [`Director::start`] reads.
    pub fn add_udp_service_line(&mut self, line: &str) -> Result<()> {
        self.config.udp_service_lines.push(line.to_string());
        self.write_config()
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
            .arg(&self.config_path)
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
        self.terminate(Duration::from_secs(3));
        self.kill9();
    }

    /// SIGTERM, then waits up to `within` for the daemon to exit: true if
    /// it did (it is reaped then), false if it runs on or was not running.
    /// Without pinned tables the node stops (VIPs released, XDP detached);
    /// with them (`PairOptions::pin_dir`) it is a planned restart: the
    /// node is left for the next process.
    pub fn terminate(&mut self, within: Duration) -> bool {
        self.signal_and_wait(libc::SIGTERM, within)
    }

    /// SIGINT: the node stops (VIPs released, XDP detached, pins removed)
    /// whatever its configuration; waits as [`Director::terminate`] does.
    pub fn interrupt(&mut self, within: Duration) -> bool {
        self.signal_and_wait(libc::SIGINT, within)
    }

    fn signal_and_wait(&mut self, signal: libc::c_int, within: Duration) -> bool {
        let Some(c) = self.child.as_mut() else {
            return false;
        };
        // SAFETY: kill(2) on our own child's PID, not yet reaped.
        unsafe { libc::kill(c.id() as libc::pid_t, signal) };
        let end = Instant::now() + within;
        loop {
            if matches!(c.try_wait(), Ok(Some(_))) {
                self.child = None;
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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

    /// One admin request asked from this process over the admin socket
    /// (no `tandemctl`): the daemon's typed answer, if it answers.
    pub fn request(&self, req: &Request) -> Option<Response> {
        admin::request(&self.socket, req, ADMIN_TIMEOUT).ok()
    }

    /// The pair state, as [`Director::state`], but asked over the admin
    /// socket from this process: for tests that poll every 20 ms beside
    /// daemons at normal scheduling, where a `tandemctl` process per
    /// question is load they do not need.
    pub fn pair_state(&self) -> Option<String> {
        match self.request(&Request::Status)? {
            Response::Status(s) => Some(s.state),
            _ => None,
        }
    }

    /// `sync`, typed and asked from this process.
    pub fn sync_status(&self) -> Option<admin::SyncReply> {
        match self.request(&Request::Sync)? {
            Response::Sync(s) => Some(s),
            _ => None,
        }
    }

    /// The daemon's typed events numbered above `after` (all of them the
    /// daemon still holds, asked in pages), or none if it does not answer.
    pub fn events(&self, after: u64) -> Vec<Stamped> {
        let mut out: Vec<Stamped> = Vec::new();
        loop {
            let from = out.last().map_or(after, |e| e.seq);
            match admin::request(
                &self.socket,
                &Request::Events { after: from },
                ADMIN_TIMEOUT,
            ) {
                Ok(Response::Events { events }) if !events.is_empty() => out.extend(events),
                _ => return out,
            }
        }
    }

    /// Whether any event the running daemon holds satisfies `f`.
    pub fn saw(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.events(0).iter().any(|e| f(&e.event))
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

    /// The daemon's events read back from its log, for the post-mortem of
    /// a daemon that no longer answers (killed, or gone on SIGTERM: its
    /// admin socket is gone with it): each timeline line
    /// ([`Director::timeline`], every start since the log was created)
    /// parsed back into an [`Event`] with its `CLOCK_MONOTONIC` ns. Only
    /// events whose text carries all their fields are recognised (state
    /// changes, takeovers, VIPs released, GARPs, signals, start, IVR
    /// health, SIP probes, links, witness, spans shut down, in sync); other
    /// lines are left out. This is the one place that reads events from
    /// log text: ask a daemon that answers ([`Director::events`]).
    pub fn logged_events(&self) -> Vec<(u64, Event)> {
        self.timeline()
            .into_iter()
            .filter_map(|(ns, text)| Some((ns, parse_logged_event(&text)?)))
            .collect()
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

/// An [`Event`] from its timeline text (its `Display`), if it is one of
/// those [`Director::logged_events`] recognises.
fn parse_logged_event(text: &str) -> Option<Event> {
    let whole = [
        Event::VipsReleased,
        Event::GarpResent,
        Event::SpansShutDown,
        Event::WitnessProbing,
        Event::WitnessUnreachable,
        Event::SyncInSync,
        Event::CardAlarm { raised: true },
        Event::CardAlarm { raised: false },
    ];
    if let Some(e) = whole.into_iter().find(|e| e.to_string() == text) {
        return Some(e);
    }
    if let Some(rest) = text.strip_prefix("state ") {
        let (from, rest) = rest.split_once(" -> ")?;
        let (to, rest) = rest.split_once(" (epoch ")?;
        let (epoch, rest) = rest.split_once(')')?;
        // The pair's reason follows ": " at the end of the line.
        let (rest, reason) = match rest.split_once(": ") {
            Some((rest, reason)) => (rest, reason.to_string()),
            None => (rest, String::new()),
        };
        let peer_heard = if rest.is_empty() {
            Vec::new()
        } else {
            let list = rest.strip_prefix(" (peer last heard ")?.strip_suffix(')')?;
            list.split(", ")
                .map(|h| {
                    let (ms, ifindex) = h.split_once(" ms ago on ifindex ")?;
                    let us = (ms.parse::<f64>().ok()? * 1000.0).round() as u64;
                    Some((ifindex.parse().ok()?, us))
                })
                .collect::<Option<Vec<_>>>()?
        };
        return Some(Event::StateChanged {
            from: from.into(),
            to: to.into(),
            epoch: epoch.parse().ok()?,
            peer_heard,
            reason,
        });
    }
    if let Some(rest) = text.strip_prefix("takeover done: VIPs owned, GARP sent (epoch ") {
        let (epoch, micros) = rest.strip_suffix(" µs)")?.split_once("; ")?;
        return Some(Event::TakeoverDone {
            epoch: epoch.parse().ok()?,
            micros: micros.parse().ok()?,
        });
    }
    if let Some(rest) = text.strip_prefix("signal ") {
        if let Some(signal) = rest.strip_suffix(": shutting down") {
            return Some(Event::ShuttingDown {
                signal: signal.into(),
            });
        }
        return None;
    }
    if let Some(rest) = text.strip_prefix("ALARM: the peer runs other services (fingerprint ") {
        let (peer, rest) = rest.split_once(", here ")?;
        let here = rest.strip_suffix("): a takeover would dispatch differently")?;
        return Some(Event::ConfigMismatch {
            on: true,
            here: here.into(),
            peer: peer.into(),
        });
    }
    if let Some(rest) = text.strip_prefix("the peer runs the same services again (fingerprint ") {
        let here = rest.strip_suffix(')')?;
        return Some(Event::ConfigMismatch {
            on: false,
            here: here.into(),
            peer: here.into(),
        });
    }
    if let Some(rest) = text.strip_prefix("reload of ") {
        if let Some((source, reason)) = rest.split_once(" refused, nothing changed: ") {
            return Some(Event::ReloadRefused {
                source: source.into(),
                reason: reason.into(),
            });
        }
        let (source, rest) = rest.split_once(": ")?;
        let (changes, rest) = rest.split_once(" change(s) applied in ")?;
        let (micros, fingerprint) = rest.split_once(" µs; services fingerprint ")?;
        return Some(Event::Reloaded {
            source: source.into(),
            changes: changes.parse().ok()?,
            fingerprint: fingerprint.into(),
            micros: micros.parse().ok()?,
        });
    }
    if let Some(rest) = text.strip_prefix("tandemd node ") {
        let (id, name) = rest.strip_suffix(") started")?.split_once(" (")?;
        return Some(Event::Started {
            node_id: id.parse().ok()?,
            name: name.into(),
        });
    }
    if let Some(rest) = text.strip_prefix("ivr node ") {
        let (id, alive) = match rest.strip_suffix(" alive") {
            Some(id) => (id, true),
            None => (rest.strip_suffix(" dead: no new flows")?, false),
        };
        return Some(Event::IvrHealth {
            node_id: id.parse().ok()?,
            alive,
        });
    }
    if let Some(rest) = text.strip_prefix("real ") {
        let (real, what) = rest.split_once(": SIP OPTIONS ")?;
        let answered = match what {
            "answered again" => true,
            "unanswered: no new flows" => false,
            _ => return None,
        };
        return Some(Event::SipOptions {
            real: real.parse().ok()?,
            answered,
        });
    }
    if let Some(rest) = text.strip_prefix("link ") {
        let (name, up) = rest.rsplit_once(' ')?;
        let up = match up {
            "up" => true,
            "down" => false,
            _ => return None,
        };
        return Some(Event::LinkChanged {
            name: name.into(),
            up,
        });
    }
    None
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
    /// [`Pair::start_directors`] also waits for b to be in sync.
    wait_sync: bool,
}

impl Pair {
    /// Builds a pair lab with `n_ivr` IVRs, writes both configurations
    /// into `dir` (`cards`: each director's card root; who answers calls
    /// itself: [`PairOptions::card_auto_answer`]), starts a (until active), then b
    /// (until standby, and in sync when `o.sync`).
    pub fn start(
        n_ivr: usize,
        o: &PairOptions,
        dir: &Path,
        bins: &Binaries,
        cards: Option<[&Path; 2]>,
    ) -> Result<Pair> {
        let mut p = Pair::build(n_ivr, o, dir, bins, cards)?;
        p.start_directors()?;
        Ok(p)
    }

    /// [`Pair::start`] without starting the daemons: the lab, the
    /// bridge-side XDP and both configurations, for a test that starts
    /// peers first or adds to the configurations
    /// ([`Pair::add_udp_service_line`]), then calls
    /// [`Pair::start_directors`].
    pub fn build(
        n_ivr: usize,
        o: &PairOptions,
        dir: &Path,
        bins: &Binaries,
        cards: Option<[&Path; 2]>,
    ) -> Result<Pair> {
        let lab = Lab::pair(n_ivr).context("building the pair lab")?;
        let peers = attach_pair_bridge_pass(&lab)?;
        // By default only a answers card calls itself: b holds one only from sync.
        let card = |k: usize| cards.map(|c| (c[k], o.card_auto_answer[k]));
        let a = Director::new(&lab, DIRECTOR_A, dir, o, card(0), bins)?;
        let b = Director::new(&lab, DIRECTOR_B, dir, o, card(1), bins)?;
        Ok(Pair {
            a,
            b,
            _peers: peers,
            lab,
            wait_sync: o.sync,
        })
    }

    /// [`Director::add_udp_service_line`] for both directors.
    pub fn add_udp_service_line(&mut self, line: &str) -> Result<()> {
        self.a.add_udp_service_line(line)?;
        self.b.add_udp_service_line(line)
    }

    /// Starts a (until active), then b (until standby, and in sync when
    /// the options have `sync`).
    pub fn start_directors(&mut self) -> Result<()> {
        self.a.start()?;
        if !wait_for(Duration::from_secs(15), || {
            self.a.state().as_deref() == Some("active")
        }) {
            bail!("a did not become active:\n{}", self.a.log_text());
        }
        self.b.start()?;
        if !wait_for(Duration::from_secs(15), || {
            self.b.state().as_deref() == Some("standby")
                && (!self.wait_sync
                    || self
                        .b
                        .sync()
                        .is_some_and(|s| s.get("state").and_then(Value::as_str) == Some("in sync")))
        }) {
            bail!(
                "b did not become a standby{}:\n{}",
                if self.wait_sync { " in sync" } else { "" },
                self.b.log_text()
            );
        }
        Ok(())
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
