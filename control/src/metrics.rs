//! Prometheus metrics of a running `tandemd`: `tandemctl metrics` and,
//! with `[admin] metrics_listen`, an HTTP endpoint Prometheus scrapes.
//!
//! The values live elsewhere (the kernel's per-CPU counters, the pair
//! state machine, the sync sessions); each scrape copies them into a fresh
//! [`Exposition`] and encodes it in the Prometheus text format, version
//! 0.0.4 (what every Prometheus scrapes and `promtool check metrics`
//! checks): each family once, with its `# HELP` and `# TYPE`, its samples
//! together; a counter's family and samples named with the `_total` suffix;
//! a summary as `quantile` samples, with `_sum` and `_count` when the
//! caller has them. Label values and help text are escaped; a label set
//! sampled twice in one family is one sample (a counter's values add up,
//! a gauge's last value stands). Nothing here keeps state between scrapes.

use std::{collections::HashMap, fmt::Write};

/// The `Content-Type` of [`Exposition::encode`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric's name starts with it.
const PREFIX: &str = "tandem_";

/// A label set: (name, value) pairs.
pub type Labels = Vec<(String, String)>;

/// Labels from `(&str, String)` pairs.
pub fn labels<const N: usize>(pairs: [(&str, String); N]) -> Labels {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Summary,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

/// One sample's value: counters are integers, gauges and summaries floats.
#[derive(Clone, Debug)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum_count: Option<(f64, u64)>,
    },
}

/// One metric family: its name as exposed, help, type and samples in the
/// order first sampled.
struct Family {
    name: String,
    kind: Kind,
    help: String,
    samples: Vec<(Labels, Value)>,
    by_labels: HashMap<Labels, usize>,
}

/// One scrape's metrics, being filled.
#[derive(Default)]
pub struct Exposition {
    families: Vec<Family>,
    by_name: HashMap<&'static str, usize>,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// The family `name` (without the prefix, nor a counter's `_total`),
    /// registered at its first sample with that sample's help and type.
    fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> &mut Family {
        let families = &mut self.families;
        let i = *self.by_name.entry(name).or_insert_with(|| {
            let exposed = match kind {
                Kind::Counter => format!("{PREFIX}{name}_total"),
                Kind::Gauge | Kind::Summary => format!("{PREFIX}{name}"),
            };
            debug_assert!(valid_name(&exposed), "metric name {exposed:?}");
            families.push(Family {
                name: exposed,
                kind,
                help: help.to_string(),
                samples: Vec::new(),
                by_labels: HashMap::new(),
            });
            families.len() - 1
        });
        let f = &mut self.families[i];
        debug_assert_eq!(
            f.kind,
            kind,
            "{} sampled as a {} and a {}",
            f.name,
            f.kind.name(),
            kind.name()
        );
        f
    }

    /// A counter sample (`name` without the `_total` suffix, which the
    /// encoder adds).
    pub fn counter(&mut self, name: &'static str, help: &str, labels: Labels, value: u64) {
        self.family(name, Kind::Counter, help)
            .sample(labels, Value::Counter(value));
    }

    /// A gauge sample.
    pub fn gauge(&mut self, name: &'static str, help: &str, labels: Labels, value: f64) {
        self.family(name, Kind::Gauge, help)
            .sample(labels, Value::Gauge(value));
    }

    /// A summary: its `quantile` samples (quantile in 0…1, value), and its
    /// `_sum` and `_count` if the caller keeps them.
    pub fn summary(
        &mut self,
        name: &'static str,
        help: &str,
        labels: Labels,
        quantiles: &[(f64, f64)],
        sum_count: Option<(f64, u64)>,
    ) {
        let value = Value::Summary {
            quantiles: quantiles.to_vec(),
            sum_count,
        };
        self.family(name, Kind::Summary, help).sample(labels, value);
    }

    /// The text, in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            f.encode(&mut out);
        }
        out
    }
}

impl Family {
    fn sample(&mut self, labels: Labels, value: Value) {
        if let Some(&i) = self.by_labels.get(&labels) {
            let old = &mut self.samples[i].1;
            *old = match (&*old, value) {
                (Value::Counter(a), Value::Counter(b)) => Value::Counter(a.saturating_add(b)),
                (_, v) => v,
            };
            return;
        }
        self.by_labels.insert(labels.clone(), self.samples.len());
        self.samples.push((labels, value));
    }

    fn encode(&self, out: &mut String) {
        let name = &self.name;
        let _ = writeln!(out, "# HELP {name} {}", escape_help(&self.help));
        let _ = writeln!(out, "# TYPE {name} {}", self.kind.name());
        for (labels, value) in &self.samples {
            match value {
                Value::Counter(v) => {
                    let _ = writeln!(out, "{name}{} {v}", label_text(labels, None));
                }
                Value::Gauge(v) => {
                    let _ = writeln!(out, "{name}{} {}", label_text(labels, None), float(*v));
                }
                Value::Summary {
                    quantiles,
                    sum_count,
                } => {
                    for (q, v) in quantiles {
                        let _ =
                            writeln!(out, "{name}{} {}", label_text(labels, Some(*q)), float(*v));
                    }
                    if let Some((sum, count)) = sum_count {
                        let l = label_text(labels, None);
                        let _ = writeln!(out, "{name}_sum{l} {}", float(*sum));
                        let _ = writeln!(out, "{name}_count{l} {count}");
                    }
                }
            }
        }
    }
}

/// `{a="x",b="y"}` (with `quantile` last if given), or nothing without labels.
fn label_text(labels: &Labels, quantile: Option<f64>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some(q) = quantile {
        parts.push(format!("quantile=\"{}\"", float(q)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// A float as the format writes it (`NaN`, `+Inf`, `-Inf`, else decimal).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// An HTTP/1.0 answer carrying the metrics (the endpoint answers every
/// request with them, whatever the path).
pub fn http_response(body: &str) -> String {
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// An HTTP/1.0 answer saying the endpoint is busy (its clients hold too
/// many unread answers): try again later.
pub fn http_unavailable() -> String {
    let body = "busy: too many answers unread\n";
    format!(
        "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_summaries_encode_in_the_text_format() {
        let mut e = Exposition::new();
        e.counter(
            "dispatch_packets",
            "Packets by verdict reason",
            labels([("reason", "forward_dr".into())]),
            42,
        );
        e.counter(
            "dispatch_packets",
            "Packets by verdict reason",
            labels([("reason", "no_real".into())]),
            0,
        );
        e.gauge(
            "node_state",
            "1 for the current state",
            labels([("state", "active".into())]),
            1.0,
        );
        e.gauge("node_epoch", "The epoch", Vec::new(), 7.0);
        e.summary(
            "sync_lag_seconds",
            "Sync lag",
            Vec::new(),
            &[(0.5, 0.0011), (0.99, 0.0058), (1.0, 0.02)],
            None,
        );
        e.summary(
            "other_seconds",
            "With sum and count",
            labels([("path", "a".into())]),
            &[(0.5, 1.5)],
            Some((12.5, 4)),
        );
        let text = e.encode();
        assert_eq!(
            text,
            "# HELP tandem_dispatch_packets_total Packets by verdict reason\n\
             # TYPE tandem_dispatch_packets_total counter\n\
             tandem_dispatch_packets_total{reason=\"forward_dr\"} 42\n\
             tandem_dispatch_packets_total{reason=\"no_real\"} 0\n\
             # HELP tandem_node_state 1 for the current state\n\
             # TYPE tandem_node_state gauge\n\
             tandem_node_state{state=\"active\"} 1\n\
             # HELP tandem_node_epoch The epoch\n\
             # TYPE tandem_node_epoch gauge\n\
             tandem_node_epoch 7\n\
             # HELP tandem_sync_lag_seconds Sync lag\n\
             # TYPE tandem_sync_lag_seconds summary\n\
             tandem_sync_lag_seconds{quantile=\"0.5\"} 0.0011\n\
             tandem_sync_lag_seconds{quantile=\"0.99\"} 0.0058\n\
             tandem_sync_lag_seconds{quantile=\"1\"} 0.02\n\
             # HELP tandem_other_seconds With sum and count\n\
             # TYPE tandem_other_seconds summary\n\
             tandem_other_seconds{path=\"a\",quantile=\"0.5\"} 1.5\n\
             tandem_other_seconds_sum{path=\"a\"} 12.5\n\
             tandem_other_seconds_count{path=\"a\"} 4\n"
        );
        let http = http_response(&text);
        assert!(http.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(http.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")));
        assert!(http.contains(&format!("Content-Length: {}\r\n", text.len())));
        assert!(http_unavailable().starts_with("HTTP/1.0 503 "));
    }

    #[test]
    fn a_label_set_sampled_twice_is_one_sample() {
        let mut e = Exposition::new();
        let l = || labels([("service", "udp/198.18.0.100:5060".into())]);
        e.counter("service_packets", "Packets", l(), 2);
        e.counter("service_packets", "Packets", l(), 3);
        e.gauge("real_flows", "Flows", l(), 1.0);
        e.gauge("real_flows", "Flows", l(), 4.0);
        let text = e.encode();
        assert!(
            text.contains("tandem_service_packets_total{service=\"udp/198.18.0.100:5060\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("tandem_real_flows{service=\"udp/198.18.0.100:5060\"} 4\n"),
            "{text}"
        );
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            2,
            "{text}"
        );
    }

    #[test]
    fn label_values_help_and_odd_floats_are_escaped() {
        let mut e = Exposition::new();
        e.gauge(
            "odd",
            "A \\ help\nover two lines",
            labels([("name", "say \"hi\"\\\n".into())]),
            f64::NAN,
        );
        e.gauge(
            "odd",
            "ignored: the first help stands",
            labels([("name", "up".into())]),
            f64::INFINITY,
        );
        e.gauge(
            "odd",
            "",
            labels([("name", "down".into())]),
            f64::NEG_INFINITY,
        );
        let text = e.encode();
        assert!(
            text.starts_with(
                "# HELP tandem_odd A \\\\ help\\nover two lines\n# TYPE tandem_odd gauge\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("tandem_odd{name=\"say \\\"hi\\\"\\\\\\n\"} NaN\n"),
            "{text}"
        );
        assert!(text.contains("tandem_odd{name=\"up\"} +Inf\n"), "{text}");
        assert!(text.contains("tandem_odd{name=\"down\"} -Inf\n"), "{text}");
        assert!(
            valid_name("tandem_a:b_1")
                && !valid_name("1abc")
                && !valid_name("a-b")
                && !valid_name("")
        );
    }
}
