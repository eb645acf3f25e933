//! The fault campaign's plots: three standalone SVG files drawn from the
//! report that [`super::faults`] writes (`faults.json`), by hand, with no
//! plotting crate.
//!
//! - [`CALLS_LOST_SVG`]: per fault, horizontal bars of `calls_lost` and
//!   `calls_failed_in_flight` (the per-fault sums, `report["per_fault"]`).
//! - [`MTTR_SVG`]: per fault, one dot per trial of `mttr_calls_ms` and of
//!   `mttr_redundant_ms` (`report["trials"]`) on a log10 axis, with the
//!   p50 and p99 of each marked; values below [`LOG_MIN_MS`] (0: no call
//!   met the outage) are drawn at the axis minimum, and the plot says so.
//! - [`DUAL_ACTIVE_SVG`]: per fault, one dot per trial of `dual_active_ms`
//!   on a linear axis from 0, with the [`DUAL_ACTIVE_TARGET_MS`] target
//!   dashed.
//!
//! A trial value that is null, missing or not a number is skipped (no
//! dot); a fault with none says "no values". Rows follow `per_fault`'s
//! order, then any fault seen only in `trials`. The output depends on the
//! report alone (no clock, no randomness: the dots' vertical jitter is by
//! trial index), so the same report gives the same bytes. This module
//! reads the report; it runs nothing and measures nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

/// Per fault: calls lost and calls failed in flight.
pub const CALLS_LOST_SVG: &str = "faults-calls-lost.svg";
/// Per fault and trial: time to calls succeeding again and to redundancy.
pub const MTTR_SVG: &str = "faults-mttr.svg";
/// Per fault and trial: time both directors held the service.
pub const DUAL_ACTIVE_SVG: &str = "faults-dual-active.svg";

/// The MTTR axis' minimum; lower values (0 among them) are drawn there.
pub const LOG_MIN_MS: f64 = 0.1;
/// The campaign's target for dual-active time, dashed on its plot.
pub const DUAL_ACTIVE_TARGET_MS: f64 = 1.0;

const WIDTH: f64 = 900.0;
/// Title, subtitle and legend above the rows.
const TOP: f64 = 86.0;
/// Tick labels, the axis label and a note below the rows.
const BOTTOM: f64 = 64.0;
/// The approximate advance of one character at the labels' 12px.
const CHAR_PX: f64 = 7.0;

const BLUE: &str = "#1f77b4";
const ORANGE: &str = "#e6780e";
const RED: &str = "#d62728";
const GRID: &str = "#dddddd";
const STRIPE: &str = "#f3f3f3";
const MUTED: &str = "#555555";
const INK: &str = "#222222";

/// Writes the three plots of `report` (a `faults.json`) into `out_dir`,
/// creating it if need be; returns their paths in the order listed in the
/// module's documentation.
pub fn write_plots(report: &Value, out_dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let plots = [
        (CALLS_LOST_SVG, calls_lost_svg(report)),
        (MTTR_SVG, mttr_svg(report)),
        (DUAL_ACTIVE_SVG, dual_active_svg(report)),
    ];
    let mut written = Vec::with_capacity(plots.len());
    for (name, svg) in plots {
        let path = out_dir.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The bar chart of calls lost and failed in flight, per fault.
pub fn calls_lost_svg(report: &Value) -> String {
    let per_fault = report["per_fault"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names: Vec<String> = per_fault.iter().map(|f| fault_name(&f["fault"])).collect();
    let bars = [
        (
            "calls_lost",
            BLUE,
            "calls_lost: established before the fault, then failed",
        ),
        (
            "calls_failed_in_flight",
            ORANGE,
            "calls_failed_in_flight: never established",
        ),
    ];
    let counts: Vec<Vec<Option<u64>>> = per_fault
        .iter()
        .map(|f| bars.iter().map(|(key, ..)| f[*key].as_u64()).collect())
        .collect();
    let max = counts
        .iter()
        .flatten()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0);

    let row_h = 30.0;
    let left = label_margin(&names);
    let axis = Axis {
        x0: left,
        x1: WIDTH - 60.0,
        scale: Scale::linear(max as f64),
    };
    let mut svg = Svg::new(
        rows_height(names.len(), row_h),
        "Fault campaign: calls lost per fault",
        &format!("sums over each fault's trials; {}", setup_line(report)),
    );
    svg.legend(&bars.map(|(_, colour, label)| (Swatch::Bar(colour), label)));
    svg.rows(&names, row_h, left);
    svg.x_axis(
        &axis,
        rows_bottom(names.len(), row_h),
        "calls (sum over the fault's trials)",
    );

    for (i, row) in counts.iter().enumerate() {
        let mid = TOP + row_h * (i as f64 + 0.5);
        svg.open_group("bars");
        for (k, (count, (_, colour, _))) in row.iter().zip(&bars).enumerate() {
            let y = mid - 10.0 + 11.0 * k as f64;
            let label = match count {
                Some(n) => {
                    let x = axis.x(*n as f64);
                    let _ = writeln!(
                        svg.s,
                        "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"9\" fill=\"{colour}\"/>",
                        axis.x0,
                        x - axis.x0
                    );
                    (x, n.to_string())
                }
                None => (axis.x0, "n/a".to_string()),
            };
            svg.text(
                label.0 + 4.0,
                y + 8.0,
                "start",
                "font-size=\"10\"",
                &label.1,
            );
        }
        svg.close_group();
    }
    svg.finish()
}

/// The strip plot of the two times to repair, per fault and trial.
pub fn mttr_svg(report: &Value) -> String {
    strip_svg(
        report,
        &StripPlot {
            title: "Fault campaign: time to repair per trial (ms, log scale)",
            series: &[
                Series {
                    key: "mttr_calls_ms",
                    colour: BLUE,
                    label: "mttr_calls_ms: calls succeed again",
                },
                Series {
                    key: "mttr_redundant_ms",
                    colour: ORANGE,
                    label: "mttr_redundant_ms: pair redundant again",
                },
            ],
            scale: |max| Scale::log10(max),
            axis_label: "time from the fault (ms, log10 scale)",
            note: format!(
                "One dot per trial. Values below {} ms (0: no call met the outage) are drawn at {} ms, the axis minimum.",
                fmt_num(LOG_MIN_MS),
                fmt_num(LOG_MIN_MS)
            ),
            target: None,
        },
    )
}

/// The strip plot of dual-active time, per fault and trial.
pub fn dual_active_svg(report: &Value) -> String {
    strip_svg(
        report,
        &StripPlot {
            title: "Fault campaign: dual-active time per trial (ms)",
            series: &[Series {
                key: "dual_active_ms",
                colour: BLUE,
                label: "dual_active_ms: both directors active",
            }],
            scale: |max| Scale::linear(max.max(DUAL_ACTIVE_TARGET_MS)),
            axis_label: "time both directors held the service (ms)",
            note: "One dot per trial.".to_string(),
            target: Some((DUAL_ACTIVE_TARGET_MS, "1 ms target")),
        },
    )
}

/// One key of the trials, drawn as one colour of dots.
struct Series {
    key: &'static str,
    colour: &'static str,
    label: &'static str,
}

struct StripPlot {
    title: &'static str,
    series: &'static [Series],
    /// The axis for the largest value (`0` when there is none).
    scale: fn(f64) -> Scale,
    axis_label: &'static str,
    note: String,
    /// A dashed vertical line at this value, with its legend label.
    target: Option<(f64, &'static str)>,
}

fn strip_svg(report: &Value, plot: &StripPlot) -> String {
    let names = fault_names(report);
    let trials = report["trials"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    // values[fault][series]: the fault's trials' values, in trial order.
    let values: Vec<Vec<Vec<f64>>> = names
        .iter()
        .map(|name| {
            let of_fault: Vec<&Value> = trials
                .iter()
                .filter(|t| fault_name(&t["fault"]) == *name)
                .collect();
            plot.series
                .iter()
                .map(|s| of_fault.iter().filter_map(|t| t[s.key].as_f64()).collect())
                .collect()
        })
        .collect();
    let max = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(0.0, f64::max);

    let sub_h = 14.0;
    let row_h = sub_h * plot.series.len() as f64 + 10.0;
    let left = label_margin(&names);
    let stats_w = 150.0;
    let axis = Axis {
        x0: left,
        x1: WIDTH - stats_w - 20.0,
        scale: (plot.scale)(max),
    };
    let trials_n = trials.len();
    let mut svg = Svg::new(
        rows_height(names.len(), row_h),
        plot.title,
        &format!("{trials_n} trials in all; {}", setup_line(report)),
    );
    let mut legend: Vec<(Swatch, &str)> = plot
        .series
        .iter()
        .map(|s| (Swatch::Dot(s.colour), s.label))
        .collect();
    legend.push((Swatch::Line { dashed: false }, "p50"));
    legend.push((Swatch::Line { dashed: true }, "p99"));
    if let Some((_, label)) = plot.target {
        legend.push((Swatch::Target, label));
    }
    svg.legend(&legend);
    svg.rows(&names, row_h, left);
    let bottom = rows_bottom(names.len(), row_h);
    svg.x_axis(&axis, bottom, plot.axis_label);
    svg.text(
        WIDTH / 2.0,
        bottom + 52.0,
        "middle",
        &format!("font-size=\"11\" fill=\"{MUTED}\""),
        &plot.note,
    );
    svg.text(
        WIDTH - stats_w,
        TOP - 6.0,
        "start",
        &format!("font-size=\"10\" fill=\"{MUTED}\""),
        "p50 · p99 (ms)",
    );
    if let Some((at, _)) = plot.target {
        let x = axis.x(at);
        let _ = writeln!(
            svg.s,
            "<line x1=\"{x:.1}\" y1=\"{TOP:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"{RED}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>"
        );
    }

    for (i, per_series) in values.iter().enumerate() {
        let row_top = TOP + row_h * i as f64;
        svg.open_group("trials");
        for (k, (vals, s)) in per_series.iter().zip(plot.series).enumerate() {
            let mid = row_top + 5.0 + sub_h * (k as f64 + 0.5);
            for (j, v) in vals.iter().enumerate() {
                let jitter = (j % 3) as f64 * 3.0 - 3.0;
                let _ = writeln!(
                    svg.s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{}\" fill-opacity=\"0.6\"/>",
                    axis.x(*v),
                    mid + jitter,
                    s.colour
                );
            }
            let mut sorted = vals.clone();
            let stats = match (percentile(&mut sorted, 50.0), percentile(&mut sorted, 99.0)) {
                (Some(p50), Some(p99)) => {
                    svg.marker(axis.x(p50), mid, false);
                    svg.marker(axis.x(p99), mid, true);
                    format!("{} · {}", fmt_num(p50), fmt_num(p99))
                }
                _ => "no values".to_string(),
            };
            svg.text(
                WIDTH - stats_w,
                mid + 4.0,
                "start",
                &format!("font-size=\"11\" fill=\"{}\"", s.colour),
                &stats,
            );
        }
        svg.close_group();
    }
    svg.finish()
}

/// How values map onto the plot's width.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scale {
    /// 0 … `max`, ticked every `step`.
    Linear { max: f64, step: f64 },
    /// 10^`min_exp` … 10^`max_exp`, ticked every decade.
    Log10 { min_exp: i32, max_exp: i32 },
}

impl Scale {
    /// 0 up to a round number at or above `max` (at least 1).
    fn linear(max: f64) -> Scale {
        let max = if max.is_finite() && max > 0.0 {
            max
        } else {
            1.0
        };
        let raw = max / 5.0;
        let decade = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * decade)
            .find(|s| *s >= raw * (1.0 - 1e-9))
            .unwrap_or(10.0 * decade);
        Scale::Linear {
            max: (max / step - 1e-9).ceil().max(1.0) * step,
            step,
        }
    }

    /// [`LOG_MIN_MS`] up to the decade at or above `max` (at least 10).
    fn log10(max: f64) -> Scale {
        let min_exp = LOG_MIN_MS.log10().round() as i32;
        let top = if max.is_finite() && max > 0.0 {
            (max.log10() - 1e-9).ceil() as i32
        } else {
            1
        };
        Scale::Log10 {
            min_exp,
            max_exp: top.max(min_exp + 2),
        }
    }

    /// The value's position on the axis, 0 … 1 (clamped).
    fn fraction(self, v: f64) -> f64 {
        let f = match self {
            Scale::Linear { max, .. } => v / max,
            Scale::Log10 { min_exp, max_exp } => {
                let lo = f64::from(min_exp);
                if v <= 10f64.powi(min_exp) {
                    0.0
                } else {
                    (v.log10() - lo) / (f64::from(max_exp) - lo)
                }
            }
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Labelled ticks, and unlabelled minor ones (a log axis' 2…9).
    fn ticks(self) -> (Vec<(f64, String)>, Vec<f64>) {
        match self {
            Scale::Linear { max, step } => {
                let n = (max / step).round() as u32;
                (
                    (0..=n)
                        .map(|i| f64::from(i) * step)
                        .map(|v| (v, fmt_num(v)))
                        .collect(),
                    Vec::new(),
                )
            }
            Scale::Log10 { min_exp, max_exp } => {
                let major = (min_exp..=max_exp)
                    .map(|e| 10f64.powi(e))
                    .map(|v| (v, fmt_num(v)))
                    .collect();
                let minor = (min_exp..max_exp)
                    .flat_map(|e| (2..10).map(move |m| f64::from(m) * 10f64.powi(e)))
                    .collect();
                (major, minor)
            }
        }
    }
}

struct Axis {
    x0: f64,
    x1: f64,
    scale: Scale,
}

impl Axis {
    fn x(&self, v: f64) -> f64 {
        self.x0 + (self.x1 - self.x0) * self.scale.fraction(v)
    }
}

/// A legend entry's sample.
enum Swatch {
    Bar(&'static str),
    Dot(&'static str),
    Line { dashed: bool },
    Target,
}

/// An SVG document under construction; every element on its own line.
struct Svg {
    s: String,
}

impl Svg {
    fn new(height: f64, title: &str, subtitle: &str) -> Svg {
        let mut svg = Svg { s: String::new() };
        let _ = writeln!(
            svg.s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"12\">"
        );
        svg.s
            .push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        svg.text(
            WIDTH / 2.0,
            24.0,
            "middle",
            "font-size=\"16\" font-weight=\"bold\"",
            title,
        );
        svg.text(
            WIDTH / 2.0,
            43.0,
            "middle",
            &format!("fill=\"{MUTED}\""),
            subtitle,
        );
        svg
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, attrs: &str, text: &str) {
        let _ = writeln!(
            self.s,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" {attrs}>{}</text>",
            xml_escape(text)
        );
    }

    fn open_group(&mut self, class: &str) {
        let _ = writeln!(self.s, "<g class=\"{class}\">");
    }

    fn close_group(&mut self) {
        self.s.push_str("</g>\n");
    }

    /// One line of samples and labels, centred under the subtitle.
    fn legend(&mut self, entries: &[(Swatch, &str)]) {
        let item_w = |label: &str| 18.0 + 6.2 * label.chars().count() as f64 + 22.0;
        let total: f64 = entries.iter().map(|(_, l)| item_w(l)).sum::<f64>() - 22.0;
        let mut x = ((WIDTH - total) / 2.0).max(8.0);
        let y = 62.0;
        self.open_group("legend");
        for (swatch, label) in entries {
            let _ = match swatch {
                Swatch::Bar(c) => {
                    writeln!(
                        self.s,
                        "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"9\" fill=\"{c}\"/>",
                        y - 4.5
                    )
                }
                // A rounded square, so that `<circle` counts the data alone.
                Swatch::Dot(c) => writeln!(
                    self.s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" rx=\"3.5\" fill=\"{c}\" fill-opacity=\"0.6\"/>",
                    x + 2.5,
                    y - 3.5
                ),
                Swatch::Line { dashed } => writeln!(
                    self.s,
                    "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{INK}\" stroke-width=\"2\"{}/>",
                    x + 6.0,
                    y - 6.0,
                    x + 6.0,
                    y + 6.0,
                    if *dashed {
                        " stroke-dasharray=\"3 2\""
                    } else {
                        ""
                    }
                ),
                Swatch::Target => writeln!(
                    self.s,
                    "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{RED}\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>",
                    x + 6.0,
                    y - 7.0,
                    x + 6.0,
                    y + 7.0
                ),
            };
            self.text(x + 18.0, y + 4.0, "start", "font-size=\"11\"", label);
            x += item_w(label);
        }
        self.close_group();
    }

    /// Striped row backgrounds and the faults' names as row labels.
    fn rows(&mut self, names: &[String], row_h: f64, left: f64) {
        self.open_group("rows");
        if names.is_empty() {
            self.text(
                WIDTH / 2.0,
                TOP + row_h / 2.0 + 4.0,
                "middle",
                &format!("fill=\"{MUTED}\""),
                "no faults in the report",
            );
        }
        for (i, name) in names.iter().enumerate() {
            let y = TOP + row_h * i as f64;
            if i % 2 == 1 {
                let _ = writeln!(
                    self.s,
                    "<rect x=\"0\" y=\"{y:.1}\" width=\"{WIDTH:.0}\" height=\"{row_h:.1}\" fill=\"{STRIPE}\"/>"
                );
            }
            self.text(left - 10.0, y + row_h / 2.0 + 4.0, "end", "", name);
        }
        self.close_group();
    }

    /// Grid lines from the top row down to `bottom`, tick labels, the axis
    /// label, and the axis line itself.
    fn x_axis(&mut self, axis: &Axis, bottom: f64, label: &str) {
        let (major, minor) = axis.scale.ticks();
        self.open_group("axis");
        for v in minor {
            let x = axis.x(v);
            let _ = writeln!(
                self.s,
                "<line x1=\"{x:.1}\" y1=\"{TOP:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"{GRID}\" stroke-width=\"0.5\"/>"
            );
        }
        for (v, text) in &major {
            let x = axis.x(*v);
            let _ = writeln!(
                self.s,
                "<line x1=\"{x:.1}\" y1=\"{TOP:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"#bbbbbb\"/>"
            );
            self.text(x, bottom + 15.0, "middle", "font-size=\"11\"", text);
        }
        let _ = writeln!(
            self.s,
            "<line x1=\"{:.1}\" y1=\"{bottom:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\" stroke=\"#333333\"/>",
            axis.x0, axis.x1
        );
        self.text(
            (axis.x0 + axis.x1) / 2.0,
            bottom + 33.0,
            "middle",
            "",
            label,
        );
        self.close_group();
    }

    /// A p50 (solid) or p99 (dashed) mark across one strip, dark so that
    /// it shows over the strip's dots.
    fn marker(&mut self, x: f64, mid: f64, dashed: bool) {
        let _ = writeln!(
            self.s,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{INK}\" stroke-width=\"2\"{}/>",
            mid - 7.0,
            mid + 7.0,
            if dashed {
                " stroke-dasharray=\"3 2\""
            } else {
                ""
            }
        );
    }

    /// Closes the document.
    fn finish(mut self) -> String {
        self.s.push_str("</svg>\n");
        self.s
    }
}

/// The total height for `rows` rows of `row_h`.
fn rows_height(rows: usize, row_h: f64) -> f64 {
    rows_bottom(rows, row_h) + BOTTOM
}

/// Where the rows end and the axis starts (room for one row if none).
fn rows_bottom(rows: usize, row_h: f64) -> f64 {
    TOP + row_h * rows.max(1) as f64
}

/// Room at the left for the longest fault name.
fn label_margin(names: &[String]) -> f64 {
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    (CHAR_PX * longest as f64 + 24.0).clamp(110.0, 320.0)
}

/// A fault's name as the report spells it (a non-string as its JSON).
fn fault_name(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// The faults in `per_fault`'s order, then those only in `trials`.
fn fault_names(report: &Value) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let listed = report["per_fault"].as_array().into_iter().flatten();
    let tried = report["trials"].as_array().into_iter().flatten();
    for f in listed.chain(tried) {
        let name = fault_name(&f["fault"]);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The campaign's set-up in a few words, from `report["setup"]`.
fn setup_line(report: &Value) -> String {
    let st = &report["setup"];
    let mut parts = Vec::new();
    if let Some(n) = st["trials_per_fault"].as_u64() {
        parts.push(format!("{n} trials per fault"));
    }
    if let Some(r) = st["rate_cps"].as_f64() {
        parts.push(format!("{} calls/s", fmt_num(r)));
    }
    if let Some(h) = st["heartbeat_ms"].as_f64() {
        parts.push(format!("heartbeats {} ms", fmt_num(h)));
    }
    if parts.is_empty() {
        "from faults.json".to_string()
    } else {
        parts.join(", ")
    }
}

/// The same rank as `faults.rs`' summaries: the value at
/// round(p/100 · (n − 1)) of the sorted values.
fn percentile(v: &mut [f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    Some(v[i.min(v.len() - 1)])
}

/// A number for a label: no trailing zeros, precision by magnitude.
fn fmt_num(x: f64) -> String {
    let x = if x == 0.0 { 0.0 } else { x };
    let a = x.abs();
    let s = if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 0.1 || a == 0.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Text made safe for an SVG element's content or an attribute.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
