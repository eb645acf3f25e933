//! The pair's `tandem.toml`: the lab's fixed wiring (node ids and
//! priorities, both heartbeat paths, the witness, the VIP, the dataplane's
//! interfaces, the key) with what [`PairOptions`] and a test choose (the
//! UDP service and its real servers, IVR heartbeats, a TCP twin, sync, a
//! simulated card, the metrics endpoint, lines added to the UDP service).
//!
//! Text only: it writes no file and starts nothing (that is
//! [`super::Director`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::Lab;
use crate::lab::{self, DIRECTOR_A};

/// The pair's shared heartbeat key (the lab's; never a real one).
pub const KEY_HEX: &str = "00112233445566778899aabbccddeeff";

/// The IVR master key: each lab IVR's heartbeat key is derived from it
/// and the IVR's node id ([`ivr_key_of`]).
pub const IVR_KEY_HEX: &str = "a0b1c2d3e4f5061728394a5b6c7d8e9f";
/// The sync key (when the pair's file has a `[sync]` table; else derived).
pub const SYNC_KEY_HEX: &str = "f00dfacecafebeef0123456789abcdef";

fn bytes(hex: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    k
}

/// [`KEY_HEX`] as bytes: the director heartbeat key.
pub fn key() -> [u8; 16] {
    bytes(KEY_HEX)
}

/// [`IVR_KEY_HEX`] as bytes.
pub fn ivr_key() -> [u8; 16] {
    bytes(IVR_KEY_HEX)
}

/// [`SYNC_KEY_HEX`] as bytes.
pub fn sync_key() -> [u8; 16] {
    bytes(SYNC_KEY_HEX)
}

/// The heartbeat key of the IVR with heartbeat node id `node_id`, as a
/// director checks it.
pub fn ivr_key_of(node_id: u32) -> tandem_control::keys::Secret {
    tandem_control::keys::Secret::new(tandem_control::keys::ivr_key_bytes(&ivr_key(), node_id))
}

/// The heartbeat node id of IVR `k` (0-based, in `lab.ivrs()` order).
pub fn ivr_node_id(k: usize) -> u32 {
    101 + k as u32
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
    /// How many of the lab's IVRs (the first, in `lab.ivrs()` order) the
    /// services list as real servers (None: all of them); the others are
    /// in the lab, not in the file, for a test that adds them live.
    pub configured_ivrs: Option<usize>,
    /// Each real server gets its IVR heartbeat `node_id` ([`ivr_node_id`]):
    /// health from heartbeats, and no calls before the first.
    pub ivr_heartbeats: bool,
    pub heartbeat_interval_ms: u32,
    pub multiplier: u32,
    /// `node.realtime_priority` (0: normal scheduling).
    pub realtime_priority: u32,
    pub flow_entries: u32,
    /// A `[sync]` section (state sync on port 8848); [`Pair::start`] then
    /// also waits for b to be in sync. `false` leaves out the section and
    /// that wait, not sync itself: without the section tandemd syncs on
    /// its default port, 8848, as well.
    ///
    /// [`Pair::start`]: super::Pair::start
    pub sync: bool,
    /// `node.preempt`: a returning a takes the VIP back from b.
    pub preempt: bool,
    /// `admin.metrics_listen` (e.g. `127.0.0.1:9469`), if any.
    pub metrics_listen: Option<String>,
    /// `card.watchdog_ms` of each director's simulated card (the failover
    /// switch's watchdog), if any.
    pub card_watchdog_ms: Option<u32>,
    /// `card.auto_answer` of a's and b's card (default: only a answers
    /// calls itself; b holds one only from sync).
    pub card_auto_answer: [bool; 2],
    /// `dataplane.pin_dir`: a bpffs directory the test mounted (a
    /// daemon started with `ip netns exec` sees no bpffs at /sys/fs/bpf,
    /// so by default its XDP link is not pinned and dies with it).
    pub pin_dir: Option<PathBuf>,
    /// Each real server's `mac` written in the file; without it (the
    /// default) tandemd takes the IVRs' MACs from its neighbour table.
    pub typed_macs: bool,
    /// Also a UDP service on VIP:port (rr, DR, no flags) over the same
    /// IVRs, for a client's probe stream beside the SIP service.
    pub probe_port: Option<u16>,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            scheduler: "rr".into(),
            flags: vec!["sip_persist".into()],
            tcp_service: false,
            configured_ivrs: None,
            typed_macs: false,
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
            card_watchdog_ms: None,
            card_auto_answer: [true, false],
            pin_dir: None,
            probe_port: None,
        }
    }
}

impl PairOptions {
    /// The bare fast pair the failover bench runs and the noisy
    /// neighbour runs beside it: 1 ms × 3 heartbeats with the witness,
    /// the loop at SCHED_FIFO `realtime_priority`, one rr UDP service
    /// without flags over the IVRs (no IVR heartbeats), no sync, no
    /// preemption, no metrics endpoint.
    pub fn bare_1ms(realtime_priority: u32) -> PairOptions {
        PairOptions {
            flags: Vec::new(),
            ivr_heartbeats: false,
            heartbeat_interval_ms: 1,
            realtime_priority,
            sync: false,
            ..PairOptions::default()
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
    DirectorConfig::new(lab, me, o, socket, card).text()
}

/// What one director's `tandem.toml` is made of: the lab's part (its
/// prefix, the VIP, each IVR's address and MAC in `lab.ivrs()` order), the
/// [`PairOptions`], and what a test adds to the UDP service's table.
#[derive(Clone, Debug)]
pub(super) struct DirectorConfig {
    pub(super) prefix: String,
    pub(super) vip: Ipv4Addr,
    pub(super) ivrs: Vec<(Ipv4Addr, String)>,
    pub(super) me: String,
    pub(super) options: PairOptions,
    pub(super) socket: PathBuf,
    pub(super) card: Option<(PathBuf, bool)>,
    /// Lines put as they are into the UDP service's table
    /// ([`super::Director::add_udp_service_line`]).
    pub(super) udp_service_lines: Vec<String>,
}

impl DirectorConfig {
    pub(super) fn new(
        lab: &Lab,
        me: &str,
        o: &PairOptions,
        socket: &Path,
        card: Option<(&Path, bool)>,
    ) -> DirectorConfig {
        DirectorConfig {
            prefix: lab.prefix().to_string(),
            vip: lab.vip(),
            ivrs: lab
                .ivrs()
                .iter()
                .take(o.configured_ivrs.unwrap_or(usize::MAX))
                .map(|ivr| (ivr.addr(), ivr.eth0().mac_string()))
                .collect(),
            me: me.to_string(),
            options: o.clone(),
            socket: socket.to_path_buf(),
            card: card.map(|(root, answer)| (root.to_path_buf(), answer)),
            udp_service_lines: Vec::new(),
        }
    }

    /// The file's text.
    pub(super) fn text(&self) -> String {
        let (prefix, vip, ivrs, me, o) = (
            &self.prefix,
            self.vip,
            &self.ivrs,
            self.me.as_str(),
            &self.options,
        );
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
                let mac = if o.typed_macs { format!("mac = \"{mac}\"\n") } else { String::new() };
                s.push_str(&format!(
                    "[[service.real]]\naddress = \"{addr}\"\n{mac}weight = 1\n{}\n",
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
        // Absent, [sync] is on (over the heartbeat paths): off must say so.
        let sync = if o.sync {
            format!("[sync]\nport = 8848\nkey = \"{SYNC_KEY_HEX}\"\n\n")
        } else {
            "[sync]\nenabled = false\n\n".to_string()
        };
        let udp_extra: String = self
            .udp_service_lines
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
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
ivr_key = "{IVR_KEY_HEX}"
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
{pin_dir}
[[service]]
vip = "{vip}"
port = 5060
protocol = "udp"
scheduler = "{sched}"
forward = "dr"
flags = [{flags}]
{udp_extra}
{reals}
"#,
            preempt = o.preempt,
            rt = o.realtime_priority,
            interval = o.heartbeat_interval_ms,
            mult = o.multiplier,
            witness = lab::WITNESS_ADDR,
            flows = o.flow_entries,
            pin_dir = o
                .pin_dir
                .as_ref()
                .map(|d| format!("pin_dir = \"{}\"\n", d.display()))
                .unwrap_or_default(),
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
        if let Some(port) = o.probe_port {
            text.push_str(&format!(
                "[[service]]\nvip = \"{vip}\"\nport = {port}\nprotocol = \"udp\"\nscheduler = \"rr\"\nforward = \"dr\"\n\n{}\n",
                reals(o.ivr_heartbeats)
            ));
        }
        if let Some((root, auto_answer)) = &self.card {
            let watchdog = o
                .card_watchdog_ms
                .map(|ms| format!("watchdog_ms = {ms}\n"))
                .unwrap_or_default();
            text.push_str(&format!(
                "[[card]]\nroot = \"{}\"\nspans = [1]\ntakeover_deadline_ms = 500\nauto_answer = {auto_answer}\n{watchdog}\n",
                root.display()
            ));
        }
        text.push_str(&format!(
            "[admin]\nsocket = \"{}\"\n",
            self.socket.display()
        ));
        if let Some(m) = &o.metrics_listen {
            text.push_str(&format!("metrics_listen = \"{m}\"\n"));
        }
        text
    }
}
