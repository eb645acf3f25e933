//! Live changes on a running pair (issue 13): an edit made on the active
//! with `tandemctl` is in the active's kernel maps, reaches the standby
//! over sync and is applied there (same services fingerprint on both,
//! which the heartbeats carry); the standby refuses local changes with a
//! pointer to the active; after a kill -9 of the active, the new active
//! dispatches with every change made before it.

use std::{
    process::Command,
    time::Duration,
};

use tandem_control::admin::{ReloadReply, Request, Response, StatusReply};
use tandem_tests::{
    privileged::lab_turn,
    tandemd::{Binaries, Director, Pair, PairOptions, WorkDir, wait_for},
};

fn bins() -> Binaries {
    Binaries {
        tandemd: env!("CARGO_BIN_EXE_tandemd").into(),
        tandemctl: env!("CARGO_BIN_EXE_tandemctl").into(),
    }
}

/// A pair at normal scheduling with 10 ms × 5 heartbeats (a busy shared
/// machine must not fail a director), one rr service without flags and
/// no IVR heartbeats; state sync on or off.
fn options(sync: bool) -> PairOptions {
    PairOptions {
        flags: Vec::new(),
        ivr_heartbeats: false,
        multiplier: 5,
        realtime_priority: 0,
        sync,
        ..PairOptions::default()
    }
}

fn status(d: &Director) -> StatusReply {
    match d.request(&Request::Status) {
        Some(Response::Status(s)) => s,
        other => panic!("{}: status: {other:?}", d.name),
    }
}

/// (address, weight, state) of every real server, as the kernel maps hold them.
fn reals(d: &Director) -> Vec<(String, u32, String)> {
    match d.request(&Request::Reals) {
        Some(Response::Reals { reals }) => {
            let mut v: Vec<_> = reals.iter().map(|r| (r.address.to_string(), r.weight, r.state.clone())).collect();
            v.sort();
            v
        }
        other => panic!("{}: reals: {other:?}", d.name),
    }
}

fn tandemctl(d: &Director, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .arg("--socket")
        .arg(d.socket())
        .args(args)
        .output()
        .expect("tandemctl");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// Runs a `tandemctl` edit with `--json`; its reload answer.
fn edit_json(d: &Director, args: &[&str]) -> ReloadReply {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out) = tandemctl(d, &all);
    assert_eq!(code, Some(0), "{out}");
    let line = out.lines().find(|l| l.starts_with('{')).unwrap_or_default();
    match serde_json::from_str::<Response>(line) {
        Ok(Response::Reload(r)) => r,
        other => panic!("tandemctl {args:?}: {other:?} from {out}"),
    }
}

#[test]
fn privileged_lab_a_change_on_the_active_reaches_the_standby_and_survives_a_failover() {
    const NAME: &str = "privileged_lab_a_change_on_the_active_reaches_the_standby_and_survives_a_failover";
    let Some(_turn) = lab_turn(NAME) else {
        return;
    };
    let o = options(true);
    let dir = WorkDir::new("reload").expect("work dir");
    let mut p = Pair::start(2, &o, dir.path(), &bins(), None).expect("a active, b standby in sync");
    let (sa, sb) = (status(&p.a), status(&p.b));
    assert_eq!(sa.config_fingerprint, sb.config_fingerprint, "the same file on both");
    assert!(
        wait_for(Duration::from_secs(2), || status(&p.b).peer_config_fingerprint.as_deref() == Some(sa.config_fingerprint.as_str())),
        "b hears a's fingerprint in its heartbeats: {:?}",
        status(&p.b)
    );
    let before = reals(&p.a);
    assert_eq!(before, reals(&p.b));
    let ivr = before[0].0.clone();

    // On the active: a weight edit, applied there and replicated.
    // The answer waits until the standby runs the change (its
    // heartbeats carry the new fingerprint), and says so.
    let r = edit_json(&p.a, &["real", "edit", "-r", &ivr, "-w", "9"]);
    let fa = status(&p.a).config_fingerprint;
    assert_ne!(fa, sa.config_fingerprint);
    assert_eq!(r.fingerprint, fa, "{r:?}");
    assert!(r.standby_held_us.is_some() && r.standby_note.is_none(), "{r:?}");
    assert!(reals(&p.a).iter().any(|r| r.0 == ivr && r.1 == 9), "{:?}", reals(&p.a));
    assert_eq!(
        status(&p.b).config_fingerprint,
        fa,
        "the answer said b runs a's services: {r:?}\n{}",
        p.b.log_text()
    );
    println!("standby runs the change {} µs after a applied it", r.standby_held_us.unwrap_or(0));
    assert_eq!(reals(&p.b), reals(&p.a), "b's kernel maps hold a's services");
    assert!(status(&p.a).alarms.iter().all(|a| !a.contains("mismatch")), "{:?}", status(&p.a).alarms);

    // On the standby: changes of the services are the active's to make.
    // A reload of b's own file, which follows a's services, is taken (it
    // may change b's keys: key_rotation_lab) and changes nothing here.
    let (code, out) = tandemctl(&p.b, &["reload"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = tandemctl(&p.b, &["real", "edit", "-r", &ivr, "-w", "2"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("change them on the active (node 1)"), "{out}");
    assert_eq!(status(&p.b).config_fingerprint, fa, "the refused edit changed nothing on b");

    // A drained real server, then the active dies: b dispatches with both changes.
    let other = before[1].0.clone();
    let (code, out) = tandemctl(&p.a, &["real", "drain", &other]);
    assert_eq!(code, Some(0), "{out}");
    let fa = status(&p.a).config_fingerprint;
    assert!(wait_for(Duration::from_secs(3), || status(&p.b).config_fingerprint == fa), "{}", p.b.log_text());
    p.a.kill9();
    assert!(
        wait_for(Duration::from_secs(5), || p.b.pair_state().as_deref() == Some("active")),
        "b did not take over:\n{}",
        p.b.log_text()
    );
    let now = reals(&p.b);
    assert!(now.iter().any(|r| r.0 == ivr && r.1 == 9), "{now:?}");
    assert!(now.iter().any(|r| r.0 == other && r.2 == "draining"), "{now:?}");
    assert_eq!(status(&p.b).config_fingerprint, fa);
    // b's own file follows the active's services (its other tables kept):
    // a restart of b runs what the pair ran.
    let path = status(&p.b).config_path;
    let file = tandem_control::config::Config::load(std::path::Path::new(&path)).expect("b's file is valid");
    assert_eq!(tandem_control::config::fingerprint_hex(file.fingerprint()), fa, "{path}");
    assert_eq!(file.node.id, 2, "b's own node table is kept");
    assert!(
        p.b.saw(|e| matches!(e, tandem_control::events::Event::FileFollowed { error: None, fingerprint, .. } if *fingerprint == fa)),
        "b recorded that its file follows the active's services"
    );
}

#[test]
fn privileged_lab_without_sync_a_different_configuration_is_shown_on_both_nodes() {
    const NAME: &str = "privileged_lab_without_sync_a_different_configuration_is_shown_on_both_nodes";
    let Some(_turn) = lab_turn(NAME) else {
        return;
    };
    let o = options(false);
    let dir = WorkDir::new("mismatch").expect("work dir");
    let p = Pair::start(2, &o, dir.path(), &bins(), None).expect("a active, b standby");
    let mismatch = |d: &Director| status(d).alarms.iter().any(|a| a.starts_with("configuration mismatch"));
    assert!(!mismatch(&p.a) && !mismatch(&p.b));
    let ivr = reals(&p.a)[0].0.clone();
    let r = edit_json(&p.a, &["real", "edit", "-r", &ivr, "-w", "4"]);
    let fa = status(&p.a).config_fingerprint;
    // The answer does not wait for a standby that cannot receive it, and says why.
    assert!(r.standby_held_us.is_none(), "{r:?}");
    assert!(r.standby_note.as_deref().is_some_and(|n| n.contains("sync is off")), "{r:?}");
    // Without sync nothing replicates: the heartbeats carry the difference.
    assert!(
        wait_for(Duration::from_secs(2), || mismatch(&p.a) && mismatch(&p.b)),
        "a: {:?}\nb: {:?}",
        status(&p.a),
        status(&p.b)
    );
    assert_eq!(status(&p.b).peer_config_fingerprint.as_deref(), Some(fa.as_str()));
    assert!(
        p.b.saw(|e| matches!(e, tandem_control::events::Event::ConfigMismatch { on: true, peer, .. } if *peer == fa)),
        "b logged the mismatch"
    );
    let metric = |d: &Director| match d.request(&Request::Metrics) {
        Some(Response::Metrics { text }) => text.lines().find(|l| l.starts_with("tandem_config_mismatch ")).map(str::to_string),
        other => panic!("metrics: {other:?}"),
    };
    let m = metric(&p.b);
    assert_eq!(m.as_deref(), Some("tandem_config_mismatch 1"), "b: {:?}\na: {:?}", status(&p.b), status(&p.a));
    // The same change on b's file (it is a standby without sync: its own
    // file is its truth) ends the mismatch on both.
    let (code, out) = tandemctl(&p.b, &["real", "edit", "-r", &ivr, "-w", "4"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(wait_for(Duration::from_secs(2), || !mismatch(&p.a) && !mismatch(&p.b)), "{:?}", status(&p.b));
    assert_eq!(metric(&p.b).as_deref(), Some("tandem_config_mismatch 0"));
    assert!(p.a.saw(|e| matches!(e, tandem_control::events::Event::ConfigMismatch { on: false, .. })));
}
