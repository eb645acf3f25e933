//! `system.conf` as `dahdi_cfg` reads it: an E1 PRI span, T1 robbed-bit
//! channels, and each refusal naming its line.

use std::path::Path;

use tandem_hw::abi;

use super::*;

const E1_PRI: &str = "\
# One E1 PRI span
span=1,1,0,ccs,hdb3,crc4

BCHAN = 1-15,17-31   # bearer channels
dchan=16
echocanceller=MG2,1-15,17-31
loadzone=nl
loadzone=us
defaultzone=nl
";

fn path() -> &'static Path {
    Path::new("/etc/dahdi/system.conf")
}

fn refusal(text: &str) -> SystemConfError {
    parse(path(), text).expect_err("refused")
}

#[test]
fn an_e1_pri_span_with_bearers_a_d_channel_echo_cancellers_and_zones() {
    let conf = parse(path(), E1_PRI).expect("valid");
    assert_eq!(
        conf.spans,
        vec![SystemSpan {
            number: 1,
            timing: 1,
            lbo: 0,
            line_config: abi::DAHDI_CONFIG_CCS | abi::DAHDI_CONFIG_HDB3 | abi::DAHDI_CONFIG_CRC4,
        }]
    );
    assert_eq!(conf.channels.len(), 31);
    let d = &conf.channels[&16];
    assert_eq!(
        (d.signalling, d.echo_canceller.as_deref(), d.line),
        (abi::DAHDI_SIG_HDLCFCS, None, 5)
    );
    for channel in (1..=15).chain(17..=31) {
        let b = &conf.channels[&channel];
        assert_eq!(b.signalling, abi::DAHDI_SIG_CLEAR, "channel {channel}");
        assert_eq!(
            b.echo_canceller.as_deref(),
            Some("MG2"),
            "channel {channel}"
        );
        assert_eq!(b.line, 4);
    }
    assert_eq!(conf.tone_zones, vec!["nl".to_string(), "us".to_string()]);
    assert_eq!(conf.default_zone.as_deref(), Some("nl"));
    assert_eq!(conf.path, path());
}

#[test]
fn t1_spans_with_robbed_bit_channels_and_span_options() {
    let conf = parse(
        path(),
        "span=2,0,3,esf,b8zs\nspan=1,2,0,d4,ami,yellow,nt,te,term\nfxoks=1-24\nfxsks=25-48\nunused=49\n",
    )
    .expect("valid");
    assert_eq!(
        conf.spans.iter().map(|s| s.number).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(conf.spans[0].lbo, 3);
    assert_eq!(
        conf.spans[0].line_config,
        abi::DAHDI_CONFIG_ESF | abi::DAHDI_CONFIG_B8ZS
    );
    assert_eq!(
        conf.spans[1].line_config,
        abi::DAHDI_CONFIG_D4
            | abi::DAHDI_CONFIG_AMI
            | abi::DAHDI_CONFIG_NOTOPEN
            | abi::DAHDI_CONFIG_TERM,
        "te clears what nt set"
    );
    assert_eq!(conf.channels[&24].signalling, abi::DAHDI_SIG_FXOKS);
    assert_eq!(conf.channels[&25].signalling, abi::DAHDI_SIG_FXSKS);
    assert!(
        !conf.channels.contains_key(&49),
        "unused configures nothing"
    );
    assert!(conf.tone_zones.is_empty() && conf.default_zone.is_none());
}

#[test]
fn every_refusal_names_the_file_and_the_line() {
    let cases: [(&str, usize, &str); 15] = [
        ("span=1,1,0,ccs\n", 1, "should be <span>"),
        ("\n\nspan=0,1,0,ccs,hdb3\n", 3, "span number `0`"),
        ("span=1,256,0,ccs,hdb3\n", 1, "timing `256`"),
        ("span=1,1,8,ccs,hdb3\n", 1, "line build-out `8`"),
        ("span=1,1,0,sf,hdb3\n", 1, "framing `sf`"),
        ("span=1,1,0,ccs,hdb4\n", 1, "coding `hdb4`"),
        ("span=1,1,0,ccs,hdb3,crc5\n", 1, "span option `crc5`"),
        (
            "span=1,1,0,ccs,hdb3\nspan=1,0,0,ccs,hdb3\n",
            2,
            "span 1 is configured twice",
        ),
        ("bchan=1-15,17-x\n", 1, "channel `x`"),
        ("bchan=15-1\n", 1, "should start before it ends"),
        (
            "bchan=1-15\n# comment\ndchan=15\n",
            3,
            "channel 15 is already configured on line 1",
        ),
        ("bchan=1024\n", 1, "from 1 to 1023"),
        ("frobnicate=1\n", 1, "unknown keyword `frobnicate`"),
        ("cas=1-4:1101\n", 1, "tandem does not model it"),
        (
            "loadzone=us\n\ndefaultzone=nl\n",
            3,
            "no loadzone= line loads it",
        ),
    ];
    for (text, line, problem) in cases {
        let e = refusal(text);
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.problem.contains(problem), "{text:?}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("/etc/dahdi/system.conf:{line}: ")),
            "{e}"
        );
    }
    for text in [
        "bchan\n",
        "=1\n",
        "bchan=\n",
        "echocanceller=mg2\n",
        "echocanceller=,1\n",
    ] {
        assert_eq!(refusal(text).line, 1, "{text:?}");
    }
}

#[test]
fn echo_cancellers_only_reach_configured_channels() {
    let conf = parse(path(), "echocanceller=oslec,1-3\nbchan=2\n").expect("valid");
    assert_eq!(conf.channels.len(), 1);
    assert_eq!(conf.channels[&2].echo_canceller.as_deref(), Some("oslec"));
}

#[test]
fn a_missing_file_is_refused_with_its_path() {
    let e = load(Path::new("/nonexistent/tandem/system.conf")).expect_err("missing");
    assert_eq!(e.line, 0);
    assert!(e.problem.starts_with("cannot be read"), "{e}");
    assert_eq!(e.path, Path::new("/nonexistent/tandem/system.conf"));
}

// ---------------------------------------------------------------------------
// Through tandem.toml: `[[card]] system_conf`.
// ---------------------------------------------------------------------------

use crate::config::{Config, ConfigError};

/// A `system.conf` in a directory of its own, removed on drop.
struct ConfFile(std::path::PathBuf, std::path::PathBuf);

impl ConfFile {
    fn new(text: &str) -> ConfFile {
        let template = std::env::temp_dir().join("tandem-system-conf-XXXXXX");
        let dir = nix::unistd::mkdtemp(&template).expect("mkdtemp");
        let path = dir.join("system.conf");
        std::fs::write(&path, text).expect("write system.conf");
        ConfFile(dir, path)
    }

    fn card(&self, extra: &str) -> String {
        format!(
            "{}\n[[card]]\nroot = \"/run/cardsim/a\"\nsystem_conf = \"{}\"\n{extra}",
            crate::config::tests::GOOD,
            self.1.display()
        )
    }
}

impl Drop for ConfFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.1);
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_card_takes_its_spans_lines_and_channels_from_system_conf() {
    let file = ConfFile::new(&format!("{E1_PRI}span=2,0,0,ccs,hdb3\nbchan=32-62\n"));
    let c = Config::parse(&file.card("")).unwrap_or_else(|e| panic!("{e}"));
    let card = &c.cards[0];
    assert_eq!(card.spans, vec![1, 2], "the span= lines, in file order");
    let system = card.system.as_ref().expect("system.conf kept");
    assert_eq!(system.path, file.1);
    assert_eq!(system.channels.len(), 62);
    assert_eq!(system.channels[&16].signalling, abi::DAHDI_SIG_HDLCFCS);
    assert_eq!(card.line, None, "the lines are the file's");

    // Written out, the card names its system.conf (not its spans) and reads back equal.
    let text = c.to_toml_with_keys();
    assert!(text.contains("system_conf = "), "{text}");
    let again = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c, again);
}

#[test]
fn a_bad_system_conf_line_is_a_config_error_naming_the_file_and_line() {
    let file = ConfFile::new("span=1,1,0,ccs,hdb3\nbchan=1-15\ndchan=15\n");
    let e = Config::parse(&file.card("")).expect_err("channel 15 twice");
    assert_eq!(e.field(), Some("card[0].system_conf"));
    let [ConfigError::SystemConf { error, .. }] = e.problems() else {
        panic!("one system.conf problem: {e}");
    };
    assert_eq!((error.path.as_path(), error.line), (file.1.as_path(), 3));
    assert_eq!(
        e.to_string(),
        format!(
            "card[0].system_conf: {}:3: channel 15 is already configured on line 2",
            file.1.display()
        )
    );

    let missing = ConfFile::new("");
    let e = Config::parse(&missing.card("")).expect_err("no span");
    assert!(e.to_string().contains("has no span= line"), "{e}");
    let gone = missing
        .card("")
        .replace("system.conf\"", "nonexistent.conf\"");
    let e = Config::parse(&gone).expect_err("missing file");
    assert!(
        e.to_string().contains("nonexistent.conf:0: cannot be read"),
        "{e}"
    );
}

#[test]
fn what_system_conf_decides_is_not_given_twice() {
    let file = ConfFile::new(E1_PRI);
    let e = Config::parse(&file.card(
        "spans = [1]\nlineconfig = [\"ccs\", \"hdb3\"]\ntiming = 1\nsignalling = \"clear\"\n",
    ))
    .expect_err("both");
    let fields: Vec<_> = e.problems().iter().filter_map(ConfigError::field).collect();
    assert_eq!(
        fields,
        [
            "card[0].spans",
            "card[0].lineconfig",
            "card[0].timing",
            "card[0].signalling"
        ]
    );
    assert!(e.to_string().contains("come from system.conf"), "{e}");
}
