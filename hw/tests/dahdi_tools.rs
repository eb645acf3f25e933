//! Debian's real dahdi-tools against the card simulator.
//!
//! Each test mounts a simulated card and runs a real tool (`dahdi_cfg`,
//! `dahdi_test`, `dahdi_scan`) on it as on a telephony server, with the
//! simulator's mount on `/dev/dahdi` in a private mount namespace
//! ([`tandem_tests::lab::dahdi_tools`]). The tests assert
//! the simulator's typed state after the tool ran (channel configuration,
//! tone zones, pseudo channel reads, requests it did not serve).
//!
//! They need root, /dev/fuse, util-linux's `unshare` and the tools (Debian
//! package `dahdi`, installed by `cargo xtask setup`); their names start
//! with `fuse_`. Without them a test prints `SKIP <name>: <reason>`, or
//! fails under `TANDEM_REQUIRE_PRIVILEGED=1`. Every tool runs under a
//! deadline and is killed (by its pid) past it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tandem_hw::abi;
use tandem_hw::device::Control;
use tandem_hw::sim::{HdlcRate, MountOptions, MountScratch, MountedCard, SimConfig, Simulator};
use tandem_tests::lab::dahdi_tools::{self, Ran};
use tandem_tests::privileged::require;

/// An E1 PRI span as an operator configures it: CCS framing, HDB3 coding,
/// CRC-4, timing from the line; 30 bearer channels with an echo canceller
/// and the D-channel on timeslot 16; the Dutch tone zone as the default.
const SYSTEM_CONF: &str = "\
# /etc/dahdi/system.conf of one E1 PRI span
span=1,1,0,ccs,hdb3,crc4
bchan=1-15,17-31
dchan=16
echocanceller=mg2,1-15,17-31
loadzone=nl
defaultzone=nl
";

/// One unconfigured E1 card (as before `dahdi_cfg` runs), mounted.
/// Fields drop in order: the mount first, then the directory.
struct Server {
    card: MountedCard,
    sim: Simulator,
    dev: PathBuf,
    dir: MountScratch,
}

impl Server {
    fn new(tag: &str) -> Server {
        let dir = MountScratch::new(&format!("dahdi-{}", tag)).expect("mkdtemp");
        let sim = Simulator::new(SimConfig {
            cards: 1,
            spans: 1,
            channels: 31,
            shared_trunks: false,
            signalling: 0,
        })
        .expect("simulator config");
        let card = sim
            .mount(0, &dir.subdir("sim").expect("create mount point"), MountOptions::default())
            .expect("mount card");
        let dev = dir.subdir("dev").expect("create mount point");
        Server {
            card,
            sim,
            dev,
            dir,
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// Run `args` with the simulator on `/dev/dahdi`, in a private mount namespace.
    fn run(&self, args: &[&str]) -> Ran {
        dahdi_tools::run(self.card.path(), &self.dev, args)
    }

    /// Run `args` and insist that it succeeded.
    fn run_ok(&self, args: &[&str]) -> Ran {
        self.run(args).expect_success(&format!("{args:?}"))
    }

    /// The ioctls the simulator did not serve, by name.
    fn unserved(&self) -> Vec<(String, u64)> {
        self.sim
            .unserved(0)
            .expect("unserved")
            .into_iter()
            .map(|(request, n)| (abi::describe_request(request), n))
            .collect()
    }

    fn root(&self) -> &Path {
        self.card.path()
    }
}

fn privileged(test: &str) -> bool {
    require(test, dahdi_tools::NEEDS)
}

#[test]
fn fuse_dahdi_cfg_applies_an_e1_pri_system_conf() {
    if !privileged("fuse_dahdi_cfg_applies_an_e1_pri_system_conf") {
        return;
    }
    let server = Server::new("cfg");
    let conf = server.write("system.conf", SYSTEM_CONF);
    let conf = conf.to_str().expect("utf-8 path");
    server.run_ok(&["dahdi_cfg", "-vv", "-c", conf]);
    assert_eq!(server.unserved(), vec![], "dahdi_cfg met unserved ioctls");

    // The span: configured, started, line as the file says.
    let control = Control::open(server.root()).expect("open ctl");
    let span = control.span_status(1).expect("SPANSTAT");
    assert_eq!(
        span.line_config,
        abi::DAHDI_CONFIG_CCS | abi::DAHDI_CONFIG_HDB3 | abi::DAHDI_CONFIG_CRC4
    );
    assert_eq!(
        span.sync_source, 1,
        "timing 1: the span is its own sync source"
    );
    assert_eq!(span.configured_channels, 31);
    let report = server.sim.report(0).expect("status");
    assert!(report[0].running, "dahdi_cfg ends with DAHDI_STARTUP");

    // The channels: 30 clear bearers with MG2, an HDLC D-channel without one.
    let channels = server.sim.channels(0).expect("channels");
    assert_eq!(channels.len(), 31);
    for ch in &channels {
        if ch.position == 16 {
            assert_eq!(ch.sigtype, abi::DAHDI_SIG_HDLCFCS, "dchan=16");
            assert_eq!(ch.echocan, None, "no echo canceller on the D-channel");
        } else {
            assert_eq!(
                ch.sigtype,
                abi::DAHDI_SIG_CLEAR,
                "bchan: channel {}",
                ch.channo
            );
            assert_eq!(ch.echocan, Some("MG2"), "channel {}", ch.channo);
        }
        assert_eq!(ch.master, ch.channo, "no slaves");
        assert_eq!(ch.hdlc_rate, HdlcRate::Kbps64, "no 56k= line");
    }

    // The tone zone: loaded once, and the default.
    let zones = server.sim.tone_zones(0).expect("tone zones");
    assert_eq!(zones.zones.len(), 1, "{zones:?}");
    let nl = &zones.zones[0];
    assert!(nl.name.contains("Netherlands"), "{nl:?}");
    assert!(
        nl.tones > 0,
        "libtonezone declares the zone's tones: {nl:?}"
    );
    assert!(!nl.ring_cadence.is_empty(), "{nl:?}");
    assert_eq!(zones.default, Some(nl.number));

    // Applying the same file again changes nothing and still succeeds
    // (GET_PARAMS with the master flag lets dahdi_cfg see it has nothing to do;
    // FREEZONE before LOADZONE reloads the zone).
    server.run_ok(&["dahdi_cfg", "-c", conf]);
    assert_eq!(server.sim.channels(0).expect("channels"), channels);
    assert_eq!(server.sim.tone_zones(0).expect("tone zones"), zones);
    assert_eq!(server.unserved(), vec![]);
}

#[test]
fn fuse_dahdi_cfg_refuses_an_unknown_echo_canceller() {
    if !privileged("fuse_dahdi_cfg_refuses_an_unknown_echo_canceller") {
        return;
    }
    let server = Server::new("ec");
    let conf = server.write(
        "system.conf",
        "span=1,0,0,ccs,hdb3\nbchan=1-15,17-31\ndchan=16\nechocanceller=nosuch,1-15\n",
    );
    let ran = server.run(&["dahdi_cfg", "-c", conf.to_str().expect("utf-8 path")]);
    assert!(!ran.status.success(), "an unknown echo canceller must fail");
    // It stopped at the first channel's ATTACH_ECHOCAN: configured, no echo canceller, not started.
    let channels = server.sim.channels(0).expect("channels");
    assert_eq!(channels[0].sigtype, abi::DAHDI_SIG_CLEAR);
    assert_eq!(channels[0].echocan, None);
    assert_eq!(channels[1].sigtype, 0, "nothing after the failed channel");
    assert!(!server.sim.report(0).expect("status")[0].running);
    assert_eq!(
        server.unserved(),
        vec![],
        "a refusal, not an unserved ioctl"
    );
}

#[test]
fn fuse_dahdi_test_reads_the_pseudo_channel_at_8_khz() {
    if !privileged("fuse_dahdi_test_reads_the_pseudo_channel_at_8_khz") {
        return;
    }
    let server = Server::new("test");
    let started = Instant::now();
    // `-c 2`: two passes of 8000 samples, then SIGALRM prints the results.
    let ran = server.run_ok(&["dahdi_test", "-c", "2"]);
    let elapsed = started.elapsed();
    assert_eq!(server.unserved(), vec![]);

    let totals = server.sim.pseudo_totals(0).expect("pseudo totals");
    assert_eq!(totals.opened, 1);
    // About 3 s of samples (alarm after c + 1 seconds), 1024-byte blocks.
    assert!(
        totals.bytes_read >= 16_000,
        "two passes need at least 16000 samples: {totals:?}"
    );
    let clock_bound = (elapsed.as_secs_f64() * 8000.0) as u64 + 2 * 1024;
    assert!(
        totals.bytes_read <= clock_bound,
        "no more samples than the 8 kHz clock made in {elapsed:?}: {totals:?}"
    );
    assert_eq!(totals.bytes_read % 1024, 0, "whole blocks: {totals:?}");

    // dahdi_test's own judgement of the clock: cumulative accuracy in percent.
    // A clock that answered at once would score near 0 %, one at twice the
    // rate 50 %; scheduling noise on a busy machine costs a few percent.
    let accuracy = ran
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Cumulative Accuracy (not per pass):"))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no accuracy in dahdi_test's output:\n{}", ran.stdout));
    assert!(accuracy >= 80.0, "accuracy {accuracy} %:\n{}", ran.stdout);
}

#[test]
fn fuse_dahdi_scan_reads_the_configured_span() {
    if !privileged("fuse_dahdi_scan_reads_the_configured_span") {
        return;
    }
    let server = Server::new("scan");
    let conf = server.write("system.conf", SYSTEM_CONF);
    server.run_ok(&["dahdi_cfg", "-c", conf.to_str().expect("utf-8 path")]);
    let ran = server.run_ok(&["dahdi_scan"]);
    assert_eq!(server.unserved(), vec![], "dahdi_scan met unserved ioctls");
    // dahdi_scan's key=value lines for span 1, read into a typed view.
    let value = |key: &str| {
        ran.stdout
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    assert_eq!(value("active").as_deref(), Some("yes"));
    assert_eq!(value("alarms").as_deref(), Some("OK"));
    assert_eq!(value("totchans").as_deref(), Some("31"));
    assert_eq!(value("framing").as_deref(), Some("CCS/CRC4"));
    assert_eq!(value("coding").as_deref(), Some("HDB3"));
}
