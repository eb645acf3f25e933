//! One tandemd at the design maximum, alone in a network namespace this
//! test creates: 64 UDP services on one VIP (ports 5060…5123), each with
//! the same 32 real servers, IVRs with heartbeat node ids (none sends
//! any: they are all dead), its admin socket in a scratch directory and
//! its metrics endpoint on 127.0.0.1 inside the namespace. For the tests
//! of big answers (`tandemctl`, the metrics endpoint, `promtool`).
//!
//! It writes its own configuration (the pair lab's writer has one UDP
//! service) and kills only the daemon it started, by its PID, on drop;
//! the namespace goes with it. Addresses are in 198.18.0.0/15.

#![allow(dead_code)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tandem_control::admin::{self, Request, Response};

/// The design maximum.
pub const SERVICES: usize = 64;
pub const REALS_PER_SERVICE: usize = 32;

/// Real server `r`'s IVR heartbeat node id is this plus `r`.
pub const IVR_NODE_ID_BASE: u32 = 1000;

/// The metrics endpoint, inside the namespace.
pub const METRICS: &str = "127.0.0.1:9471";

use tandem_tests::lab::netns::{Owned as Netns, single_director};

/// A running tandemd configured with [`SERVICES`] × [`REALS_PER_SERVICE`].
pub struct LargeDaemon {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
    stderr: PathBuf,
    // Dropped after the daemon (fields drop in order): the namespace last.
    ns: Netns,
}

impl Drop for LargeDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The configuration: one director (its peer never answers), a service
/// veth svc0 (198.18.0.11) and a heartbeat veth hb0 (198.18.1.1).
/// The flags service `s` (0-based) is configured with, as written in the file.
pub fn flags_of(s: usize) -> &'static [&'static str] {
    match s % 3 {
        0 => &[],
        1 => &["expire_nodest"],
        _ => &["sched_fallback", "sip_persist"],
    }
}

fn config(socket: &Path) -> String {
    let mut text = format!(
        r#"[node]
id = 1
peer_id = 2
name = "big"

[heartbeat]
interval_ms = 10
key = "000102030405060708090a0b0c0d0e0f"
ivr_key = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
paths = [{{ name = "link", interface = "hb0", local = "198.18.1.1", peer = "198.18.1.2" }}]

[[vip]]
address = "198.18.0.100"
interface = "svc0"

[dataplane]
xdp_mode = "generic"
interfaces = ["svc0", "hb0"]
flow_entries = 4096

[admin]
socket = "{}"
metrics_listen = "{METRICS}"

"#,
        socket.display()
    );
    for s in 0..SERVICES {
        text.push_str(&format!(
            "[[service]]\nvip = \"198.18.0.100\"\nport = {}\nprotocol = \"udp\"\nscheduler = \"rr\"\nforward = \"dr\"\nflags = [{}]\n\n",
            5060 + s,
            flags_of(s).iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(", ")
        ));
        for r in 0..REALS_PER_SERVICE {
            text.push_str(&format!(
                "[[service.real]]\naddress = \"198.18.0.{}\"\nmac = \"02:18:00:00:00:{:02x}\"\nnode_id = {}\n\n",
                20 + r,
                20 + r,
                IVR_NODE_ID_BASE + r as u32
            ));
        }
    }
    text
}

fn tandemd() -> std::ffi::OsString {
    std::env::var_os("TANDEMD").unwrap_or_else(|| env!("CARGO_BIN_EXE_tandemd").into())
}

impl LargeDaemon {
    /// Builds the namespace, writes the configuration and starts tandemd;
    /// returns once it answers `status` (at most 30 s).
    pub fn start(tag: &str) -> LargeDaemon {
        let ns = single_director(tag);
        let dir = std::env::temp_dir().join(format!("tandem-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let socket = dir.join("admin.sock");
        let config_path = dir.join("tandem.toml");
        tandem_tests::write_private(&config_path, config(&socket)).expect("write the configuration");
        let stderr = dir.join("stderr");
        let err = std::fs::File::create(&stderr).expect("stderr file");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(tandemd())
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("tandemd");
        let mut d = LargeDaemon {
            child,
            dir,
            socket,
            stderr,
            ns,
        };
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("tandemd exited ({st}):\n{}", d.stderr_text());
            }
            if matches!(d.request(&Request::Status), Ok(Response::Status(_))) {
                return d;
            }
            assert!(
                Instant::now() < end,
                "tandemd did not answer status within 30 s:\n{}",
                d.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn ns(&self) -> &str {
        &self.ns.0
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        METRICS.parse().expect("address")
    }

    pub fn request(&self, req: &Request) -> Result<Response, admin::AdminError> {
        admin::request(&self.socket, req, Duration::from_secs(10))
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The daemon is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
