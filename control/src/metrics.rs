//! Prometheus metrics of a running `tandemd`: `tandemctl metrics` and,
//! with `[admin] metrics_listen`, an HTTP endpoint Prometheus scrapes.
//!
//! The values live elsewhere (the kernel's per-CPU counters, the pair
//! state machine, the sync sessions); each scrape copies them into a fresh
//! `prometheus_client` registry ([`Exposition`]) and encodes it in the
//! OpenMetrics text format, so nothing here keeps state between scrapes.

use std::collections::HashMap;

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// A label set: (name, value) pairs.
pub type Labels = Vec<(String, String)>;

/// One scrape's metrics, being filled.
#[derive(Default)]
pub struct Exposition {
    registry: Registry,
    counters: HashMap<&'static str, Family<Labels, Counter>>,
    gauges: HashMap<&'static str, Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>>,
}

/// Labels from `(&str, String)` pairs.
pub fn labels<const N: usize>(pairs: [(&str, String); N]) -> Labels {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition { registry: Registry::with_prefix("tandem"), ..Exposition::default() }
    }

    /// A counter sample (`name` without the `_total` suffix, which the
    /// encoder adds).
    pub fn counter(&mut self, name: &'static str, help: &str, labels: Labels, value: u64) {
        let fam = self.counters.entry(name).or_insert_with(|| {
            let f = Family::<Labels, Counter>::default();
            self.registry.register(name, help, f.clone());
            f
        });
        fam.get_or_create(&labels).inc_by(value);
    }

    /// A gauge sample.
    pub fn gauge(&mut self, name: &'static str, help: &str, labels: Labels, value: f64) {
        let fam = self.gauges.entry(name).or_insert_with(|| {
            let f = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
            self.registry.register(name, help, f.clone());
            f
        });
        fam.get_or_create(&labels).set(value);
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            out = format!("# encoding failed: {e}\n");
        }
        out
    }
}

/// An HTTP/1.0 answer carrying the metrics (the endpoint answers every
/// request with them, whatever the path).
pub fn http_response(body: &str) -> String {
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_encode_with_labels() {
        let mut e = Exposition::new();
        e.counter("dispatch_packets", "Packets by verdict reason.", labels([("reason", "forward_dr".into())]), 42);
        e.counter("dispatch_packets", "Packets by verdict reason.", labels([("reason", "no_real".into())]), 0);
        e.gauge("sync_lag_seconds", "Sync lag.", labels([("quantile", "0.99".into())]), 0.0058);
        e.gauge("node_state", "1 for the current state.", labels([("state", "active".into())]), 1.0);
        let text = e.encode();
        assert!(text.contains("# TYPE tandem_dispatch_packets counter"), "{text}");
        assert!(text.contains("tandem_dispatch_packets_total{reason=\"forward_dr\"} 42"), "{text}");
        assert!(text.contains("tandem_dispatch_packets_total{reason=\"no_real\"} 0"), "{text}");
        assert!(text.contains("tandem_sync_lag_seconds{quantile=\"0.99\"} 0.0058"), "{text}");
        assert!(text.contains("tandem_node_state{state=\"active\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let http = http_response(&text);
        assert!(http.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(http.contains(&format!("Content-Length: {}\r\n", text.len())));
    }
}
