use serde_json::json;

use super::*;
use crate::lab::tandemd::WorkDir;

const ODD: &str = "link<&>cut";

/// Three faults; nulls, a missing key, a non-number and zeros among
/// the trials' values.
fn report() -> Value {
    let trial = |fault: &str, calls: Value, redundant: Value, dual: Value| {
        let mut t =
            json!({ "fault": fault, "mttr_calls_ms": calls, "mttr_redundant_ms": redundant });
        if !dual.is_null() || fault != ODD {
            t["dual_active_ms"] = dual;
        }
        t
    };
    json!({
        "bench": "faults",
        "setup": { "trials_per_fault": 3, "rate_cps": 100, "heartbeat_ms": 10 },
        "per_fault": [
            { "fault": "kill9", "calls_lost": 0, "calls_failed_in_flight": 12 },
            { "fault": "hang", "calls_lost": 3, "calls_failed_in_flight": 250 },
            { "fault": ODD, "calls_lost": 0, "calls_failed_in_flight": 0 },
        ],
        "trials": [
            trial("kill9", json!(47.3), json!(683.0), json!(0.0)),
            trial("kill9", json!(0.0), json!(701.0), json!(0.4)),
            trial("kill9", json!(52.0), Value::Null, json!(0.6)),
            trial("hang", json!(310.0), json!(4950.0), json!(2.5)),
            trial("hang", Value::Null, json!(5010.0), Value::Null),
            trial("hang", json!(298.5), json!("n/a"), json!(1.1)),
            trial(ODD, json!(0.0), json!(0.05), Value::Null),
            trial(ODD, json!(0.0), json!(12.0), Value::Null),
        ],
    })
}

fn non_null(r: &Value, keys: &[&str]) -> usize {
    let trials = r["trials"].as_array().expect("trials");
    keys.iter()
        .map(|k| trials.iter().filter(|t| t[*k].is_number()).count())
        .sum()
}

#[test]
fn writes_three_well_formed_plots_with_one_dot_per_value() {
    let dir = WorkDir::new("faults-svg").expect("scratch dir");
    let r = report();
    let paths = write_plots(&r, dir.path()).expect("plots written");
    let names: Vec<_> = paths
        .iter()
        .map(|p| p.file_name().and_then(|n| n.to_str()).unwrap_or(""))
        .collect();
    assert_eq!(names, [CALLS_LOST_SVG, MTTR_SVG, DUAL_ACTIVE_SVG]);
    let expected_dots = [
        0,
        non_null(&r, &["mttr_calls_ms", "mttr_redundant_ms"]),
        non_null(&r, &["dual_active_ms"]),
    ];
    assert_eq!(expected_dots, [0, 13, 5]);
    for (path, dots) in paths.iter().zip(expected_dots) {
        let svg = std::fs::read_to_string(path).expect("plot readable");
        let name = path.display();
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{name}"
        );
        assert!(svg.ends_with("</svg>\n"), "{name}");
        assert_eq!(svg.matches("<svg").count(), 1, "{name}");
        assert_eq!(
            svg.matches("<g").count(),
            svg.matches("</g>").count(),
            "{name}"
        );
        assert_eq!(
            svg.matches("<text").count(),
            svg.matches("</text>").count(),
            "{name}"
        );
        assert!(svg.matches("<g").count() >= 3, "{name}");
        for fault in ["kill9", "hang", "link&lt;&amp;&gt;cut"] {
            assert!(
                svg.contains(&format!(">{fault}</text>")),
                "{name} lacks the row {fault}"
            );
        }
        assert!(!svg.contains(ODD), "{name} has the fault's name unescaped");
        assert_eq!(svg.matches("<circle").count(), dots, "{name}");
        assert!(
            !svg.contains("NaN") && !svg.contains("\"inf") && !svg.contains("\"-inf"),
            "{name}"
        );
    }
    let mttr = std::fs::read_to_string(&paths[1]).expect("mttr");
    assert!(
        mttr.contains("drawn at 0.1 ms"),
        "the log axis' floor is not stated"
    );
    let dual = std::fs::read_to_string(&paths[2]).expect("dual");
    assert!(
        dual.contains("stroke-dasharray=\"6 4\""),
        "no dashed target line"
    );
    assert!(
        dual.contains("no values"),
        "the fault without dual-active values is not said so"
    );
}

#[test]
fn same_report_same_bytes() {
    let (a, b) = (
        WorkDir::new("faults-svg-a").expect("a"),
        WorkDir::new("faults-svg-b").expect("b"),
    );
    let r = report();
    let pa = write_plots(&r, a.path()).expect("a written");
    let pb = write_plots(&r, b.path()).expect("b written");
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(
            std::fs::read(x).expect("x"),
            std::fs::read(y).expect("y"),
            "{}",
            x.display()
        );
    }
}

#[test]
fn an_empty_report_still_gives_valid_plots() {
    let svg = mttr_svg(&json!({}));
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    assert!(svg.contains("no faults in the report"));
    assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
    assert!(!calls_lost_svg(&json!({ "per_fault": "x" })).contains("class=\"bars\""));
}

#[test]
fn log_axis_puts_zero_and_tiny_values_at_its_minimum() {
    let s = Scale::log10(5010.0);
    assert_eq!(
        s,
        Scale::Log10 {
            min_exp: -1,
            max_exp: 4
        }
    );
    assert_eq!(s.fraction(0.0), 0.0);
    assert_eq!(s.fraction(-3.0), 0.0);
    assert_eq!(s.fraction(0.05), 0.0);
    assert!((s.fraction(1.0) - 0.2).abs() < 1e-12);
    assert_eq!(s.fraction(10_000.0), 1.0);
    assert_eq!(
        Scale::log10(0.0),
        Scale::Log10 {
            min_exp: -1,
            max_exp: 1
        }
    );
    assert_eq!(
        Scale::log10(1000.0),
        Scale::Log10 {
            min_exp: -1,
            max_exp: 3
        }
    );
}

#[test]
fn linear_axis_ends_on_a_round_number_at_or_above_the_max() {
    let ticks = |max| {
        Scale::linear(max)
            .ticks()
            .0
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
    };
    assert_eq!(ticks(1.0), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
    assert_eq!(ticks(0.0), ticks(1.0));
    assert_eq!(ticks(2.5), ["0", "0.5", "1", "1.5", "2", "2.5"]);
    assert_eq!(ticks(250.0), ["0", "50", "100", "150", "200", "250"]);
    assert_eq!(ticks(251.0), ["0", "100", "200", "300"]);
}

#[test]
fn percentiles_match_the_reports_rank() {
    let mut v = [5.0, 1.0, 3.0, 2.0, 4.0];
    assert_eq!(percentile(&mut v, 50.0), Some(3.0));
    assert_eq!(percentile(&mut v, 99.0), Some(5.0));
    assert_eq!(percentile(&mut [], 50.0), None);
}

#[test]
fn labels_and_numbers() {
    assert_eq!(xml_escape("a<&>\"'b"), "a&lt;&amp;&gt;&quot;&apos;b");
    assert_eq!(fmt_num(0.0), "0");
    assert_eq!(fmt_num(-0.0), "0");
    assert_eq!(fmt_num(0.1), "0.1");
    assert_eq!(fmt_num(47.3), "47.3");
    assert_eq!(fmt_num(683.0), "683");
    assert_eq!(fmt_num(10_000.0), "10000");
}
