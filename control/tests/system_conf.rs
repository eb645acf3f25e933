//! `dahdi_cfg` and tandem read the same `/etc/dahdi/system.conf` and leave
//! a card the same: the real `dahdi_cfg` (Debian's dahdi-tools) applies an
//! E1 PRI `system.conf` to one simulated card, a [`CardManager`] whose card
//! names the same file as its `system_conf` takes the other one over, and
//! the two cards' spans and channels must then be configured alike.
//!
//! The `fuse_*` test needs root, /dev/fuse, `unshare` and the tools
//! (`cargo xtask setup` installs them): without them it prints `SKIP
//! <name>: <reason>`, or fails under `TANDEM_REQUIRE_PRIVILEGED=1`. The
//! tool runs in a private mount namespace with the card on `/dev/dahdi`
//! ([`tandem_tests::lab::dahdi_tools`]); mounts are RAII guards.

use std::time::{Duration, Instant};

use tandem_control::cards::CardManager;
use tandem_control::config::{CardConfig, system_conf};
use tandem_hw::abi;
use tandem_hw::device::Control;
use tandem_hw::sim::{MountOptions, MountScratch, SimConfig, Simulator};
use tandem_tests::lab::dahdi_tools;
use tandem_tests::privileged::require;

const SYSTEM_CONF: &str = "\
span=1,1,0,ccs,hdb3,crc4
bchan=1-15,17-31
dchan=16
echocanceller=mg2,1-15,17-31
loadzone=nl
defaultzone=nl
";

#[test]
fn fuse_takeover_configures_what_dahdi_cfg_configures() {
    let name = "fuse_takeover_configures_what_dahdi_cfg_configures";
    if !require(name, dahdi_tools::NEEDS) {
        return;
    }
    let dir = MountScratch::new("system-conf").expect("mkdtemp");
    let sim = Simulator::new(SimConfig {
        cards: 2,
        spans: 1,
        channels: 31,
        shared_trunks: false,
        signalling: 0,
    })
    .expect("simulator config");
    let mounts: Vec<_> = (0..2)
        .map(|card| {
            sim.mount(
                card,
                &dir.subdir(&format!("card{card}")).expect("create mount point"),
                MountOptions::default(),
            )
            .expect("mount card")
        })
        .collect();
    let conf = dir.path().join("system.conf");
    std::fs::write(&conf, SYSTEM_CONF).expect("write system.conf");

    // Card 0: the operator's tool.
    let scratch = dir.subdir("dev").expect("create mount point");
    let conf_arg = conf.to_str().expect("utf-8 path");
    dahdi_tools::run(mounts[0].path(), &scratch, &["dahdi_cfg", "-c", conf_arg])
        .expect_success("dahdi_cfg");

    // Card 1: tandem, from the same file.
    let system = system_conf::load(&conf).expect("system.conf");
    let config = CardConfig {
        root: mounts[1].path().to_owned(),
        spans: system.spans.iter().map(|s| s.number).collect(),
        takeover_deadline: Duration::from_millis(500),
        line: None,
        signalling: 0,
        auto_answer: false,
        watchdog: None,
        system: Some(system),
    };
    let mut manager = CardManager::open(&config).expect("open card 1");
    manager
        .shutdown_spans()
        .expect("standby shuts its spans down");
    manager.arm().expect("arm");
    manager
        .start_spans(Instant::now() + Duration::from_millis(500))
        .expect("takeover starts the span");

    let by_tool = sim.channels(0).expect("card 0 channels");
    let by_tandem = sim.channels(1).expect("card 1 channels");
    assert_eq!(
        by_tandem, by_tool,
        "tandem and dahdi_cfg disagree on the channels"
    );
    assert_eq!(
        by_tool[15].sigtype,
        abi::DAHDI_SIG_HDLCFCS,
        "not vacuous: dchan=16"
    );
    assert_eq!(
        by_tool[0].echocan,
        Some("MG2"),
        "not vacuous: echocanceller="
    );
    let span = |card: usize| {
        let status = Control::open(mounts[card].path())
            .expect("ctl")
            .span_status(1)
            .expect("SPANSTAT");
        (
            status.line_config,
            status.lbo,
            status.sync_source,
            status.configured_channels,
        )
    };
    assert_eq!(
        span(1),
        span(0),
        "tandem and dahdi_cfg disagree on the span"
    );
    assert_eq!(
        span(0).0,
        abi::DAHDI_CONFIG_CCS | abi::DAHDI_CONFIG_HDB3 | abi::DAHDI_CONFIG_CRC4
    );
    for card in 0..2 {
        assert!(
            sim.report(card).expect("status")[0].running,
            "card {card} runs span 1"
        );
        assert_eq!(sim.unserved(card).expect("unserved"), vec![], "card {card}");
    }
    drop(manager);
    drop(mounts);
}
