//! Counters, gauges and one histogram, rendered in the Prometheus text format on the admin
//! port's `/metrics`.
//!
//! Label values are fixed strings chosen by the terminator (outcomes, reasons, status codes),
//! never client input, so the number of series stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds (seconds) of the origin latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Counter families: name, help.
const COUNTERS: &[(&str, &str)] = &[
    (
        HANDSHAKES,
        "TLS handshakes by outcome (ok, or why the connection ended before HTTP).",
    ),
    (
        ON_DEMAND,
        "Unknown server names handled on demand, by outcome.",
    ),
    (
        PROXY_RESPONSES,
        "Responses sent to clients by the proxy, by status code.",
    ),
    (
        ORIGIN_REFUSED,
        "Origin connections refused by the address policy, by reason.",
    ),
    (
        CONNECTIONS_REJECTED,
        "Connections closed at once because a listener was at its limit.",
    ),
    (
        CACHE_REFRESHES,
        "Reads of the store's change feeds, by outcome.",
    ),
    (
        FEED_CHANGES,
        "Items read from the store's change feeds, by kind (domain, tombstone, certificate).",
    ),
    (HTTP01, "Requests on the HTTP listener, by outcome."),
];

/// TLS handshakes by outcome.
pub(crate) const HANDSHAKES: &str = "edgecert_terminator_tls_handshakes_total";
/// On-demand handling of unknown names by outcome.
pub(crate) const ON_DEMAND: &str = "edgecert_terminator_on_demand_total";
/// Proxy responses by status code.
pub(crate) const PROXY_RESPONSES: &str = "edgecert_terminator_proxy_responses_total";
/// Refused origin addresses by reason.
pub(crate) const ORIGIN_REFUSED: &str = "edgecert_terminator_origin_refused_total";
/// Connections over the limit.
pub(crate) const CONNECTIONS_REJECTED: &str = "edgecert_terminator_connections_rejected_total";
/// Change feed reads by outcome.
pub(crate) const CACHE_REFRESHES: &str = "edgecert_terminator_cache_refreshes_total";
/// Change feed items read by kind.
pub(crate) const FEED_CHANGES: &str = "edgecert_terminator_feed_changes_total";
/// HTTP listener requests by outcome.
pub(crate) const HTTP01: &str = "edgecert_terminator_http_requests_total";

/// The terminator's metrics; shared by every task.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// `(family, label name, label value)` -> count.
    counters: Mutex<BTreeMap<(&'static str, &'static str, String), u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    connections_open: AtomicI64,
}

/// Gauges read at scrape time from the cache.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CacheGauges {
    /// Certificates held.
    pub(crate) certificates: usize,
    /// Hostnames with a route to an origin.
    pub(crate) routes: usize,
    /// Whether the first read of the change feeds finished.
    pub(crate) loaded: bool,
    /// Estimated bytes the cache holds.
    pub(crate) bytes: usize,
    /// The cache's memory budget.
    pub(crate) budget: usize,
    /// Sites evicted so far to stay within the budget.
    pub(crate) evictions: u64,
}

impl Metrics {
    /// Adds one to `family{label="value"}`.
    pub(crate) fn count(&self, family: &'static str, label: &'static str, value: &str) {
        self.add(family, label, value, 1);
    }

    /// Adds `amount` to `family{label="value"}` (the series appears even for 0).
    pub(crate) fn add(&self, family: &'static str, label: &'static str, value: &str, amount: u64) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        *counters
            .entry((family, label, value.to_owned()))
            .or_default() += amount;
    }

    /// The current value of `family{label="value"}`.
    #[cfg(test)]
    pub(crate) fn counter(&self, family: &str, value: &str) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .iter()
            .filter(|((name, _, label_value), _)| *name == family && label_value == value)
            .map(|(_, count)| *count)
            .sum()
    }

    /// Records the time an origin took to answer with headers.
    pub(crate) fn origin_latency(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A client connection opened (`1`) or closed (`-1`).
    pub(crate) fn connections(&self, delta: i64) {
        self.connections_open.fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self, gauges: CacheGauges) -> String {
        let mut out = String::new();
        gauge(
            &mut out,
            "edgecert_terminator_certificates_cached",
            "Certificates held in memory.",
            gauges.certificates as f64,
        );
        gauge(
            &mut out,
            "edgecert_terminator_routes_cached",
            "Hostnames with a known origin.",
            gauges.routes as f64,
        );
        gauge(
            &mut out,
            "edgecert_terminator_cache_loaded",
            "1 once the first read of the store's change feeds finished.",
            if gauges.loaded { 1.0 } else { 0.0 },
        );
        gauge(
            &mut out,
            "edgecert_terminator_cache_bytes",
            "Estimated bytes of the sites (routes and certificates) held in memory.",
            gauges.bytes as f64,
        );
        gauge(
            &mut out,
            "edgecert_terminator_cache_budget_bytes",
            "The memory budget of the sites held.",
            gauges.budget as f64,
        );
        let _ = writeln!(
            out,
            "# HELP edgecert_terminator_cache_evictions_total Sites evicted to stay within the budget."
        );
        let _ = writeln!(
            out,
            "# TYPE edgecert_terminator_cache_evictions_total counter"
        );
        let _ = writeln!(
            out,
            "edgecert_terminator_cache_evictions_total {}",
            gauges.evictions
        );
        gauge(
            &mut out,
            "edgecert_terminator_connections_open",
            "Client connections open.",
            self.connections_open.load(Ordering::Relaxed) as f64,
        );
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (family, help) in COUNTERS {
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} counter");
            for ((name, label, value), count) in &counters {
                if name == family {
                    let _ = writeln!(out, "{family}{{{label}=\"{value}\"}} {count}");
                }
            }
        }
        let histogram = "edgecert_terminator_origin_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {histogram} Time from sending a request to an origin to its response headers."
        );
        let _ = writeln!(out, "# TYPE {histogram} histogram");
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(
                out,
                "{histogram}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{histogram}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{histogram}_sum {sum}");
        let _ = writeln!(out, "{histogram}_count {count}");
        out
    }
}

pub(crate) fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_the_histogram() {
        let metrics = Metrics::default();
        metrics.count(HANDSHAKES, "outcome", "ok");
        metrics.count(HANDSHAKES, "outcome", "ok");
        metrics.count(PROXY_RESPONSES, "code", "502");
        metrics.origin_latency(Duration::from_millis(30));
        let text = metrics.render(CacheGauges {
            certificates: 3,
            routes: 2,
            loaded: true,
            bytes: 8192,
            budget: 65536,
            evictions: 4,
        });
        assert!(text.contains("edgecert_terminator_tls_handshakes_total{outcome=\"ok\"} 2"));
        assert!(text.contains("edgecert_terminator_proxy_responses_total{code=\"502\"} 1"));
        assert!(text.contains("edgecert_terminator_certificates_cached 3"));
        assert!(text.contains("edgecert_terminator_cache_bytes 8192"));
        assert!(text.contains("edgecert_terminator_cache_evictions_total 4"));
        assert!(text.contains("edgecert_terminator_origin_latency_seconds_bucket{le=\"0.025\"} 0"));
        assert!(text.contains("edgecert_terminator_origin_latency_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("edgecert_terminator_origin_latency_seconds_count 1"));
        assert_eq!(metrics.counter(HANDSHAKES, "ok"), 2);
    }
}
