//! Two `tandemd` in the pair lab for the benchmarks (sync, spans): the
//! generated `tandem.toml`, start and SIGKILL by PID, and questions through
//! `tandemctl --json`, the operator's tool.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::{
    Lab,
    lab::{self, DIRECTOR_A},
};

pub const KEY: &str = "00112233445566778899aabbccddeeff";

pub struct Node {
    ns: String,
    config: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    tandemctl: PathBuf,
    tandemd: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl Node {
    pub fn new(ns: &str, config: PathBuf, socket: PathBuf, log: PathBuf, tandemd: &Path, tandemctl: &Path) -> Result<Node> {
        Ok(Node { ns: ns.to_string(), config, socket, log, child: None, tandemctl: tandemctl.to_path_buf(), tandemd: tandemd.to_path_buf() })
    }

    pub fn start(&mut self) -> Result<()> {
        let log = std::fs::File::create(&self.log)?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(&self.tandemd)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {} in {}", self.tandemd.display(), self.ns))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL by PID (only the daemon this bench started).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn ask(&self, what: &str) -> Option<Value> {
        let out = Command::new(&self.tandemctl)
            .arg("--socket")
            .arg(&self.socket)
            .args(["--json", "--timeout-ms", "2000", what])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn state(&self) -> Option<String> {
        self.ask("status")?.get("state")?.as_str().map(str::to_string)
    }

    pub fn sync(&self) -> Option<Value> {
        self.ask("sync")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub fn num(v: &Option<Value>, k: &str) -> u64 {
    v.as_ref().and_then(|v| v.get(k)).and_then(Value::as_u64).unwrap_or(0)
}

pub fn text(v: &Option<Value>, k: &str) -> String {
    v.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).unwrap_or("").to_string()
}

pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

pub fn config(lab: &Lab, dir: &Path, me: &str, extra: &str) -> (PathBuf, PathBuf) {
    let (id, peer_id, priority, local, peer, hb_local, hb_peer) = if me == DIRECTOR_A {
        (1, 2, 150, lab::DIRECTOR_A_ADDR, lab::DIRECTOR_B_ADDR, lab::HB_A_ADDR, lab::HB_B_ADDR)
    } else {
        (2, 1, 100, lab::DIRECTOR_B_ADDR, lab::DIRECTOR_A_ADDR, lab::HB_B_ADDR, lab::HB_A_ADDR)
    };
    let socket = dir.join(format!("{me}.sock"));
    let mut reals = String::new();
    for ivr in lab.ivrs() {
        reals.push_str(&format!("[[service.real]]\naddress = \"{}\"\nmac = \"{}\"\nweight = 1\n\n", ivr.addr(), ivr.eth0().mac_string()));
    }
    let text = format!(
        r#"[node]
id = {id}
peer_id = {peer_id}
name = "{me}"
priority = {priority}
preempt = false

[heartbeat]
interval_ms = 10
multiplier = 3
key = "{KEY}"
paths = [
  {{ name = "link", interface = "hb0", local = "{hb_local}", peer = "{hb_peer}" }},
  {{ name = "service", interface = "eth0", local = "{local}", peer = "{peer}" }},
]

[witness]
address = "{witness}"

{extra}
[[vip]]
address = "{vip}"
interface = "eth0"

[dataplane]
xdp_mode = "native"
interfaces = ["eth0", "hb0"]
flow_entries = 131072

[[service]]
vip = "{vip}"
port = 5060
protocol = "udp"
scheduler = "rr"
forward = "dr"

{reals}
[admin]
socket = "{socket}"
"#,
        witness = lab::WITNESS_ADDR,
        vip = lab.vip(),
        socket = socket.display(),
    );
    let path = dir.join(format!("{me}.toml"));
    let _ = std::fs::write(&path, text);
    (path, socket)
}

