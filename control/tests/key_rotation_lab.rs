//! Key rotation without a failover (issue 14), in the pair lab under SIPp
//! calls through the VIP: the operator procedure of the README — the next
//! keys added on both nodes, current and next swapped on one node and then
//! the other, the old keys dropped — each step a `reload` of the node's
//! own file (the standby's included: it runs the active's services, its
//! own keys). Asserts on typed answers, status and events: every reload
//! applied with the key changes it should list; no state change on either
//! node and the peer heard on some path within the deadline at every
//! sample; the kernel's `hb_next_key` counter moving only while the two
//! nodes send under different keys; sync in step throughout; at the end
//! both on the new keys, a heartbeat under the old key or a stranger's
//! refused (`hb_bad_mac`) and moving nothing; no call failed.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tandem_control::admin::{ReloadReply, Request, Response, StatusReply};
use tandem_control::events::Event;
use tandem_dataplane::common::heartbeat::{self, Key, Kind, Packet, Repr};
use tandem_dataplane::common::node::NodeState;
use tandem_tests::lab::{HB_A_ADDR, HB_B_ADDR};
use tandem_tests::privileged::lab_turn;
use tandem_tests::sipp::{self, CallerOptions};
use tandem_tests::tandemd::{
    Binaries, Director, KEY_HEX, Pair, PairOptions, SYNC_KEY_HEX, WorkDir, wait_for,
};
use tandem_tests::{calls, in_netns};

/// The keys the pair moves to (the lab's; never real ones).
const NEW_KEY_HEX: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const NEW_SYNC_KEY_HEX: &str = "13579bdf02468ace13579bdf02468ace";
/// A key neither node ever holds.
const STRANGER_HEX: &str = "deadbeefdeadbeefdeadbeefdeadbeef";
const N_IVR: usize = 2;

fn bins() -> Binaries {
    Binaries {
        tandemd: env!("CARGO_BIN_EXE_tandemd").into(),
        tandemctl: env!("CARGO_BIN_EXE_tandemctl").into(),
    }
}

fn status(d: &Director) -> Option<StatusReply> {
    match d.request(&Request::Status)? {
        Response::Status(s) => Some(s),
        _ => None,
    }
}

fn hex(h: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex");
    }
    k
}

/// The `[heartbeat]` and `[sync]` key lines of one step of the procedure:
/// (current, next) for each.
fn key_lines(hb: (&str, Option<&str>), sync: (&str, Option<&str>)) -> [String; 2] {
    let lines = |(current, next): (&str, Option<&str>)| {
        let mut s = format!("key = \"{current}\"\n");
        if let Some(n) = next {
            s.push_str(&format!("next_key = \"{n}\"\n"));
        }
        s
    };
    [lines(hb), lines(sync)]
}

/// Director `d`'s own file with its key lines at `from` replaced by `to`
/// (the file keeps its mode, 0600), then `reload`: the typed answer.
fn step(d: &Director, from: &[String; 2], to: &[String; 2]) -> ReloadReply {
    let path = status(d).expect("status").config_path;
    let mut text = std::fs::read_to_string(&path).expect("the config");
    for (f, t) in from.iter().zip(to) {
        assert_eq!(
            text.matches(f.as_str()).count(),
            1,
            "{f:?} in {path}:\n{text}"
        );
        text = text.replace(f.as_str(), t);
    }
    std::fs::write(&path, text).expect("writing the config");
    match d.request(&Request::Reload { dry_run: false }) {
        Some(Response::Reload(r)) => r,
        other => panic!("{}: reload: {other:?}", d.name),
    }
}

/// What the watcher saw of both nodes between two steps.
#[derive(Default, Debug)]
struct Watch {
    samples: u32,
    /// Samples where a was not active or b not standby (or did not answer).
    wrong_roles: Vec<(String, String)>,
    /// The worst "freshest path" age of the peer's last heartbeat, per node.
    worst_heard_ms: [u64; 2],
    /// Samples where a node had not heard its peer on any path.
    unheard: u32,
    /// Samples where b's sync was not in step.
    out_of_sync: u32,
}

/// Samples both nodes every 20 ms for `d`.
fn watch(p: &Pair, d: Duration, w: &mut Watch) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        let (sa, sb) = (status(&p.a), status(&p.b));
        w.samples += 1;
        let role = |s: &Option<StatusReply>| {
            s.as_ref()
                .map_or_else(|| "?".to_string(), |s| s.state.clone())
        };
        if role(&sa) != "active" || role(&sb) != "standby" {
            w.wrong_roles.push((role(&sa), role(&sb)));
        }
        for (k, s) in [&sa, &sb].into_iter().enumerate() {
            match s
                .as_ref()
                .and_then(|s| s.paths.iter().filter_map(|p| p.last_heard_ms).min())
            {
                Some(ms) => w.worst_heard_ms[k] = w.worst_heard_ms[k].max(ms),
                None => w.unheard += 1,
            }
        }
        if p.b.sync_status().is_none_or(|s| s.state != "in sync") {
            w.out_of_sync += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn next_key_count(d: &Director) -> u64 {
    d.stats().get("hb_next_key").copied().unwrap_or(0)
}

/// A director heartbeat claiming to be b, from b's address on the link,
/// to a's heartbeat port, under `key`.
fn forge_from_b(p: &Pair, key: &str, seq: u64) {
    let mut payload = vec![0u8; heartbeat::LEN];
    let r = Repr {
        kind: Kind::Director,
        state: NodeState::Active,
        priority: 255,
        node_id: 2,
        path: 0,
        epoch: 1 << 40,
        boot_id: 0xf0_4ced,
        seq,
        sent_ns: 0,
        active_channels: 0,
        capacity: 0,
        restart_grace_ms: 0,
    };
    r.emit(
        &mut Packet::new_unchecked(&mut payload[..]),
        &Key::from_bytes(&hex(key)),
    );
    in_netns(p.b.ns(), || {
        let s = UdpSocket::bind(SocketAddr::from((HB_B_ADDR, 0)))
            .expect("a socket on b's link address");
        s.send_to(&payload, SocketAddr::from((HB_A_ADDR, 694)))
            .expect("sent");
    });
}

#[test]
fn privileged_lab_a_key_rotation_under_calls_changes_no_role() {
    const NAME: &str = "privileged_lab_a_key_rotation_under_calls_changes_no_role";
    let Some(_turn) = lab_turn(NAME) else { return };
    eprintln!(
        "{NAME}: {}",
        sipp::version().expect("SIPp (cargo xtask setup installs sip-tester)")
    );
    // 10 ms × 5 heartbeats: a deadline of 50 ms on a shared machine.
    let o = PairOptions {
        multiplier: 5,
        ..PairOptions::default()
    };
    let deadline_ms = u64::from(o.heartbeat_interval_ms * o.multiplier);
    let dir = WorkDir::new("key-rotation").expect("work dir");
    let mut p =
        Pair::start(N_IVR, &o, dir.path(), &bins(), None).expect("a active, b standby in sync");
    let mut ivrs = calls::start_ivrs(&p.lab, dir.path(), true, false).expect("IVRs");
    assert!(
        wait_for(Duration::from_secs(10), || calls::reals_alive(&p.a, N_IVR)),
        "a does not hear every IVR: {:?}",
        p.a.reals()
    );
    // 20 calls/s of 3 s for 15 s: about 60 in progress at every step.
    let co = CallerOptions {
        rtp: false,
        ..CallerOptions::new(20, 300, 3000)
    };
    let caller = calls::start_caller(&p.lab, dir.path(), &co).expect("caller");
    std::thread::sleep(Duration::from_secs(1));
    let after = [&p.a, &p.b].map(|d| d.events(0).last().map_or(0, |e| e.seq));
    let base_next = [next_key_count(&p.a), next_key_count(&p.b)];
    let mut w = Watch::default();
    let mut failures: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };

    let old = key_lines((KEY_HEX, None), (SYNC_KEY_HEX, None));
    let added = key_lines(
        (KEY_HEX, Some(NEW_KEY_HEX)),
        (SYNC_KEY_HEX, Some(NEW_SYNC_KEY_HEX)),
    );
    let swapped = key_lines(
        (NEW_KEY_HEX, Some(KEY_HEX)),
        (NEW_SYNC_KEY_HEX, Some(SYNC_KEY_HEX)),
    );
    let new = key_lines((NEW_KEY_HEX, None), (NEW_SYNC_KEY_HEX, None));
    let applied = |r: &ReloadReply, want: &str| {
        r.applied && r.refused.is_empty() && r.error.is_none() && r.changes == [want.to_string()]
    };
    let show = |r: &ReloadReply| format!("{r:?}");

    // 1. The next keys added on both nodes: nobody sends under them yet.
    let want = "~ keys: heartbeat.next_key added; sync.next_key added";
    for d in [&p.a, &p.b] {
        let r = step(d, &old, &added);
        check(
            applied(&r, want),
            format!("step 1 on {}: {}", d.name, show(&r)),
        );
    }
    watch(&p, Duration::from_millis(700), &mut w);
    let counts = [next_key_count(&p.a), next_key_count(&p.b)];
    check(
        counts == base_next,
        format!(
            "hb_next_key moved before anyone sent under the next key: {base_next:?} -> {counts:?}"
        ),
    );

    // 2a. a swaps: a sends under the new key, b takes it as its next;
    // b still sends under the old one, a takes it as its next.
    let want = "~ keys: heartbeat.key changed to the former next key; heartbeat.next_key changed; sync.key changed to the former next key; sync.next_key changed";
    let r = step(&p.a, &added, &swapped);
    check(applied(&r, want), format!("step 2 on a: {}", show(&r)));
    watch(&p, Duration::from_millis(700), &mut w);
    let mid = [next_key_count(&p.a), next_key_count(&p.b)];
    check(
        mid[0] > counts[0] && mid[1] > counts[1],
        format!(
            "each node takes the other's heartbeats under its next key once a swapped: {counts:?} -> {mid:?}"
        ),
    );
    // 2b. b swaps: both send under the new key, the current one of both.
    let r = step(&p.b, &added, &swapped);
    check(applied(&r, want), format!("step 2 on b: {}", show(&r)));
    watch(&p, Duration::from_millis(300), &mut w);
    let settled = [next_key_count(&p.a), next_key_count(&p.b)];
    watch(&p, Duration::from_millis(700), &mut w);
    let later = [next_key_count(&p.a), next_key_count(&p.b)];
    check(
        later == settled,
        format!("hb_next_key still moves once both swapped: {settled:?} -> {later:?}"),
    );

    // 3. The old keys dropped on both.
    let want = "~ keys: heartbeat.next_key removed; sync.next_key removed";
    for d in [&p.a, &p.b] {
        let r = step(d, &swapped, &new);
        check(
            applied(&r, want),
            format!("step 3 on {}: {}", d.name, show(&r)),
        );
    }
    watch(&p, Duration::from_millis(700), &mut w);

    // Both on the new keys: a heartbeat under the old key or a stranger's is refused.
    let bad_before = p.a.stats().get("hb_bad_mac").copied().unwrap_or(0);
    for (i, k) in [KEY_HEX, STRANGER_HEX].into_iter().enumerate() {
        for s in 0..5 {
            forge_from_b(&p, k, 1 + s + 10 * i as u64);
        }
    }
    watch(&p, Duration::from_millis(300), &mut w);
    let bad_after = p.a.stats().get("hb_bad_mac").copied().unwrap_or(0);
    check(
        bad_after >= bad_before + 10,
        format!(
            "a refused {} of 10 heartbeats under the old or an unknown key",
            bad_after - bad_before
        ),
    );
    let fa = status(&p.a).expect("a's status");
    check(
        fa.peer
            .as_ref()
            .is_some_and(|peer| peer.state == "standby" && peer.priority != 255),
        format!("a's view of b moved: {:?}", fa.peer),
    );
    // The current keys are the new ones on both: a save writes them out.
    for d in [&p.a, &p.b] {
        let text = match d.request(&Request::Save) {
            Some(Response::Config { text }) => text,
            other => panic!("{}: save: {other:?}", d.name),
        };
        let cfg = tandem_control::config::Config::parse(&text)
            .expect("the saved configuration reads back");
        check(
            *cfg.heartbeat.key == hex(NEW_KEY_HEX) && cfg.heartbeat.next_key.is_none(),
            format!("{} does not run the new heartbeat key alone", d.name),
        );
        let sync = cfg.sync.expect("sync on");
        check(
            *sync.key == hex(NEW_SYNC_KEY_HEX) && sync.next_key.is_none(),
            format!("{} does not run the new sync key alone", d.name),
        );
    }

    let r = caller.wait().expect("caller report");
    let per_ivr = calls::stop_ivrs(&mut ivrs);
    eprintln!("caller: {} (exit {:?})", r.stats.summary(), r.exit_code);
    eprintln!("{}", calls::per_ivr_table(&r, &per_ivr));
    eprintln!("watched: {w:?}");
    eprintln!(
        "hb_next_key (a, b): before {base_next:?}, next added {counts:?}, a swapped {mid:?}, both swapped {settled:?} then {later:?}"
    );
    check(
        r.stats.failed() == 0 && r.stats.successful() >= 250,
        format!("calls: {}", r.stats.summary()),
    );
    // Typed events: no state change on either node during the rotation.
    for (d, after) in [(&p.a, after[0]), (&p.b, after[1])] {
        let changes: Vec<String> = d
            .events(after)
            .into_iter()
            .filter(|e| matches!(e.event, Event::StateChanged { .. }))
            .map(|e| e.event.to_string())
            .collect();
        check(
            changes.is_empty(),
            format!("{} changed state during the rotation: {changes:?}", d.name),
        );
    }
    check(
        w.wrong_roles.is_empty(),
        format!(
            "{} of {} samples without a active and b standby: {:?}",
            w.wrong_roles.len(),
            w.samples,
            w.wrong_roles
        ),
    );
    check(
        w.unheard == 0 && w.worst_heard_ms.iter().all(|&ms| ms < deadline_ms),
        format!("the peer went unheard: {w:?} (deadline {deadline_ms} ms)"),
    );
    check(
        w.out_of_sync == 0,
        format!("b's sync was out of step in {} samples", w.out_of_sync),
    );
    check(w.samples > 100, format!("only {} samples", w.samples));
    if !failures.is_empty() {
        panic!(
            "{NAME}: {} check(s) failed:\n- {}\n\na:\n{}\nb:\n{}",
            failures.len(),
            failures.join("\n- "),
            p.a.log_text(),
            p.b.log_text()
        );
    }
    p.a.stop();
    p.b.stop();
}
