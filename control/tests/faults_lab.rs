//! The fault campaign's smoke: every fault of `cargo xtask bench faults`
//! once, under SIP load (50 calls/s of 3 s), in the pair lab with simulated
//! cards, asserting what must hold whatever the machine's speed: no trial
//! fails, no established call is lost on a director fault, the role moves
//! exactly as each fault allows, no call fails that no fault can explain,
//! and the two directors never both forward VIP traffic for longer than
//! the target. Times (MTTR) are the benchmark's, not asserted here.

use serde_json::Value;
use tandem_tests::bench::faults::{self, Options};
use tandem_tests::privileged::lab_turn;
use tandem_tests::tandemd::Binaries;

fn bins() -> Binaries {
    Binaries {
        tandemd: env!("CARGO_BIN_EXE_tandemd").into(),
        tandemctl: env!("CARGO_BIN_EXE_tandemctl").into(),
    }
}

#[test]
fn privileged_lab_fault_campaign_smoke_every_fault_once() {
    let Some(_turn) = lab_turn("privileged_lab_fault_campaign_smoke_every_fault_once") else {
        return;
    };
    let o = Options::smoke(bins());
    let r = faults::campaign(&o).expect("the campaign ran");
    eprintln!("{}", faults::markdown(&r));
    let per_fault = r["per_fault"].as_array().expect("per_fault");
    assert_eq!(per_fault.len(), faults::Fault::ALL.len());
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    for f in per_fault {
        let name = f["fault"].as_str().unwrap();
        assert_eq!(n(f, "failed_trials"), 0, "{name}: {}", f["failures"]);
        assert_eq!(n(f, "trials"), 1, "{name}");
        assert_eq!(n(f, "unexpected_role_changes"), 0, "{name}: more role changes than it allows: {f}");
        assert_eq!(n(f, "missing_role_changes"), 0, "{name}: fewer role changes than it calls for: {f}");
        if f["on_director"] == true {
            assert_eq!(n(f, "calls_lost"), 0, "{name}: established calls lost: {f}");
            let dual = f["dual_active_ms"]["max"].as_f64().expect("dual_active_ms measured");
            assert!(dual <= faults::report::DUAL_ACTIVE_TARGET_MS, "{name}: dual-active {dual} ms: {f}");
        }
    }
    for s in r["segments"].as_array().expect("segments") {
        assert_eq!(s["unattributed"]["calls_lost"], 0, "calls lost with no fault in their life: {s}");
        assert_eq!(s["unattributed"]["calls_failed_in_flight"], 0, "calls failed before any fault: {s}");
    }
    // The observers saw the traffic they judge.
    let kill9 = r["trials"].as_array().unwrap().iter().find(|t| t["fault"] == "kill9").unwrap();
    let frames = n(&kill9["dual_active"], "frames_a") + n(&kill9["dual_active"], "frames_b");
    assert!(frames > 0, "the dual-active watch saw no VIP traffic: {kill9}");
    assert!(kill9["client_gap_ms"].as_f64().is_some(), "no client probe answered: {kill9}");
}
