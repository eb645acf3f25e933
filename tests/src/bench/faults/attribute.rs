//! Which fault a call met: the caller runs on across many faults (calls of
//! 30 s outlive several), so every call of SIPp's per-call log
//! (`actors::sipp`) is charged to the fault(s) it met, from its own times.
//!
//! Each fault `i` owns a window of placing, from a second before it to a
//! second before the next fault (`[t_i − 1, t_next − 1)`): a call placed
//! there and never set up is `calls_failed_in_flight` of fault `i`, and the
//! calls' MTTR of fault `i` is read from the calls placed there.
//!
//! A call that was set up and then failed (its BYE got no 200 from the IVR
//! that answered) was lost: it is charged, as `calls_lost`, to every fault
//! that happened while it lived (set-up to BYE); so one lost call may count
//! against more than one fault, which errs toward a miss of the target of
//! 0. Only where an IVR fault took down the very IVR that held it is the
//! call charged to that IVR fault alone (those calls are that IVR's own). A
//! lost call that lived through no fault is charged to the fault whose
//! window it was set up in, as `calls_lost_set_up_after_fault`, or, before
//! the first fault, to no fault (`unattributed`).
//!
//! Beside it, `calls_lost_at_hangup` charges each lost call once: to the
//! IVR fault that took its IVR, else to the fault whose window its BYE was
//! sent in (`[t_i, t_next)`): the fault its hang-up met, the likeliest
//! cause when the BYE fell into an outage.
//!
//! A call placed less than [`END_MARGIN_S`] before the caller was stopped,
//! or set up and not yet due to end then, is not judged (`cut_by_the_end`).

use serde_json::{Value, json};

use super::fault::Fault;
use crate::actors::sipp::CallRecord;

/// A call set up in more than this met the outage (its INVITE, or the
/// answer, was retransmitted: SIP's T1 is 500 ms).
pub const SLOW_SETUP_S: f64 = 0.25;
/// How long after its planned end a call's BYE may still be answered (the
/// BYE's own retransmissions).
pub const BYE_GRACE_S: f64 = 2.0;
/// Calls placed this close to the caller's end are not judged.
pub const END_MARGIN_S: f64 = 2.0;

/// One injected fault, as the attribution sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub fault: Fault,
    /// The fault's instant (wall clock, s).
    pub at: f64,
    /// The IVR it befell (its `X-IVR` name), for IVR faults.
    pub ivr: Option<String>,
}

/// What the attribution found for one fault (`per_mark`) and what it could
/// charge to none (`unattributed`).
pub struct Attribution {
    pub per_mark: Vec<Value>,
    pub unattributed: Value,
}

fn ms(s: f64) -> f64 {
    (s * 1e4).round() / 10.0
}

/// Attributes `calls` (one caller's, calls of `call_s` seconds, stopped at
/// `t_end`) to `marks` (in time order). See the module.
pub fn attribute(calls: &[CallRecord], marks: &[Mark], call_s: f64, t_end: f64) -> Attribution {
    let next = |i: usize| marks.get(i + 1).map_or(f64::INFINITY, |m| m.at);
    let window = |i: usize, s: f64| s >= marks[i].at - 1.0 && s < next(i) - 1.0;
    let placed_in = |s: f64| (0..marks.len()).find(|&i| window(i, s));
    let judged = |c: &CallRecord| match (c.started, c.established) {
        (None, _) => false,
        (Some(s), None) => s < t_end - END_MARGIN_S,
        (Some(_), Some(e)) => c.done.is_some() || e + call_s + BYE_GRACE_S <= t_end,
    };
    let mut lost = vec![0u64; marks.len()];
    let mut lost_later = vec![0u64; marks.len()];
    let mut at_hangup = vec![0u64; marks.len()];
    let mut in_flight = vec![0u64; marks.len()];
    let mut in_progress = vec![0u64; marks.len()];
    let (mut un_lost, mut un_in_flight, mut cut) = (0u64, 0u64, 0u64);
    for c in calls {
        if !judged(c) {
            cut += 1;
            continue;
        }
        if let Some(e) = c.established {
            let end = c.done.unwrap_or(e + call_s + BYE_GRACE_S);
            let lived: Vec<usize> = (0..marks.len()).filter(|&i| marks[i].at >= e && marks[i].at <= end).collect();
            for &i in &lived {
                in_progress[i] += 1;
            }
            if c.succeeded() {
                continue;
            }
            let bye = e + call_s;
            let own_ivr = lived
                .iter()
                .copied()
                .find(|&i| marks[i].fault.on_ivr() && marks[i].ivr.is_some() && marks[i].ivr == c.ivr);
            let hangup = own_ivr.or_else(|| (0..marks.len()).rev().find(|&i| marks[i].at <= bye && bye < next(i)));
            if let Some(i) = hangup {
                at_hangup[i] += 1;
            }
            match (own_ivr, lived.is_empty()) {
                (Some(i), _) => lost[i] += 1,
                (None, false) => lived.iter().for_each(|&i| lost[i] += 1),
                (None, true) => match c.started.and_then(placed_in) {
                    Some(i) => lost_later[i] += 1,
                    None => un_lost += 1,
                },
            }
        } else if !c.succeeded() {
            match c.started.and_then(placed_in) {
                Some(i) => in_flight[i] += 1,
                None => un_in_flight += 1,
            }
        }
    }
    let per_mark = (0..marks.len())
        .map(|i| {
            let t = marks[i].at;
            let mine: Vec<&CallRecord> =
                calls.iter().filter(|c| judged(c) && c.started.is_some_and(|s| window(i, s))).collect();
            // Calls that met the outage: failed without being set up, or set
            // up slowly.
            let met = |c: &&&CallRecord| match c.established {
                None => !c.succeeded(),
                Some(e) => c.started.is_some_and(|s| e - s > SLOW_SETUP_S),
            };
            let last_met = mine.iter().filter(met).filter_map(|c| c.started).fold(f64::NAN, f64::max);
            let mttr_calls_ms = if last_met.is_nan() {
                Some(0.0)
            } else {
                mine.iter()
                    .filter(|c| c.established.is_some() && c.started.is_some_and(|s| s > last_met))
                    .filter_map(|c| c.established)
                    .fold(None, |m: Option<f64>, e| Some(m.map_or(e, |m| m.min(e))))
                    .map(|e| ms(e - t).max(0.0))
            };
            json!({
                "calls_placed": mine.len(),
                "in_progress_at_fault": in_progress[i],
                "calls_lost": lost[i],
                "calls_lost_at_hangup": at_hangup[i],
                "calls_lost_set_up_after_fault": lost_later[i],
                "calls_failed_in_flight": in_flight[i],
                "calls_met_outage": mine.iter().filter(met).count(),
                "mttr_calls_ms": mttr_calls_ms,
            })
        })
        .collect();
    Attribution {
        per_mark,
        unattributed: json!({
            "calls_lost": un_lost,
            "calls_failed_in_flight": un_in_flight,
            "cut_by_the_end": cut,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(n: u64, started: f64, established: Option<f64>, ok: bool) -> CallRecord {
        CallRecord {
            number: n,
            started: Some(started),
            established,
            ivr: established.map(|_| "ivr1".to_string()),
            call_id: None,
            done: if ok { established.map(|e| e + 5.0) } else { None },
            bye_ivr: if ok { Some("ivr1".to_string()) } else { None },
        }
    }

    fn mark(fault: Fault, at: f64) -> Mark {
        Mark { fault, at, ivr: None }
    }

    #[test]
    fn calls_are_attributed_around_one_fault_and_the_mttr_follows_the_last_call_that_met_it() {
        let t = 1000.0;
        let calls = vec![
            // Established before the fault, lost.
            call(1, t - 3.0, Some(t - 2.999), false),
            // Established before, survived.
            call(2, t - 2.0, Some(t - 1.999), true),
            // Placed just before the fault, never set up.
            call(3, t - 0.001, None, false),
            // Placed after, retransmitted: slow set-up (met the outage).
            call(4, t + 0.002, Some(t + 0.503), true),
            // The first good call after the last one that met it.
            call(5, t + 0.010, Some(t + 0.0115), true),
            call(6, t + 0.020, Some(t + 0.0212), true),
        ];
        let a = attribute(&calls, &[mark(Fault::Kill9, t)], 5.0, t + 100.0);
        let v = &a.per_mark[0];
        assert_eq!(v["calls_lost"], 1);
        assert_eq!(v["calls_failed_in_flight"], 1);
        assert_eq!(v["calls_lost_set_up_after_fault"], 0);
        assert_eq!(v["calls_met_outage"], 2);
        assert_eq!(v["in_progress_at_fault"], 2);
        assert!((v["mttr_calls_ms"].as_f64().unwrap() - 11.5).abs() < 0.05, "{v}");
        assert_eq!(a.unattributed["calls_lost"], 0);
    }

    #[test]
    fn no_call_met_the_outage_is_an_mttr_of_zero() {
        let t = 50.0;
        let calls = vec![call(1, t - 1.5, Some(t - 1.499), true), call(2, t + 0.01, Some(t + 0.011), true)];
        let a = attribute(&calls, &[mark(Fault::Hang, t)], 5.0, t + 100.0);
        assert_eq!(a.per_mark[0]["mttr_calls_ms"].as_f64(), Some(0.0));
        assert_eq!(a.per_mark[0]["calls_lost"], 0);
    }

    #[test]
    fn a_long_call_lost_counts_against_every_fault_it_lived_through_but_an_ivr_s_own_only_there() {
        let marks = vec![
            mark(Fault::Kill9, 100.0),
            Mark { fault: Fault::IvrKill, at: 110.0, ivr: Some("ivr2".into()) },
            mark(Fault::Hang, 120.0),
        ];
        let mut on_ivr2 = call(2, 95.0, Some(95.01), false);
        on_ivr2.ivr = Some("ivr2".into());
        let calls = vec![
            // Lived through all three, on ivr1: charged to the two director
            // faults and to the IVR fault (not its IVR) alike.
            call(1, 95.0, Some(95.01), false),
            // Lived through all three, on the killed IVR: that fault only.
            on_ivr2,
            // Set up after the hang, lost with no fault in its life.
            call(3, 121.0, Some(121.01), false),
            // Before any fault, never set up, and lost with no fault lived.
            call(4, 10.0, None, false),
            call(5, 10.0, Some(10.01), false),
            // Placed in the IVR fault's window, never set up.
            call(6, 111.0, None, false),
        ];
        let a = attribute(&calls, &marks, 30.0, 200.0);
        let lost: Vec<u64> = a.per_mark.iter().map(|v| v["calls_lost"].as_u64().unwrap()).collect();
        assert_eq!(lost, vec![1, 2, 1]);
        // Hung up after the hang (BYEs at 125 and 151 s): there, once each;
        // the killed IVR's own call to its fault.
        let at_hangup: Vec<u64> = a.per_mark.iter().map(|v| v["calls_lost_at_hangup"].as_u64().unwrap()).collect();
        assert_eq!(at_hangup, vec![0, 1, 2]);
        assert_eq!(a.per_mark[2]["calls_lost_set_up_after_fault"], 1);
        assert_eq!(a.per_mark[1]["calls_failed_in_flight"], 1);
        assert_eq!(a.unattributed["calls_lost"], 1);
        assert_eq!(a.unattributed["calls_failed_in_flight"], 1);
    }

    #[test]
    fn calls_the_end_cut_short_are_not_judged() {
        let calls = vec![call(1, 190.0, Some(190.01), false), call(2, 199.5, None, false)];
        let a = attribute(&calls, &[mark(Fault::Kill9, 100.0)], 30.0, 200.0);
        assert_eq!(a.per_mark[0]["calls_lost_set_up_after_fault"], 0);
        assert_eq!(a.per_mark[0]["calls_failed_in_flight"], 0);
        assert_eq!(a.unattributed["cut_by_the_end"], 2);
    }
}
