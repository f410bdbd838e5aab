//! Kubelet self-metrics with upstream's exact names, labels and buckets (spec E.13).
//!
//! Registered explicitly on a caller-provided registry; nothing global.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `metrics_server_kubelet_request_total` | counter | `success` = `true`/`false` |
//! | `metrics_server_kubelet_request_duration_seconds` | histogram (default buckets) | `node` |
//! | `metrics_server_kubelet_last_request_time_seconds` | gauge (unix seconds) | `node` |
//!
//! and two counters of our own for the scraper's limits:
//!
//! | family | type | counts |
//! |---|---|---|
//! | `msrs_kubelet_inflight_limit_waits_total` | counter | node requests that waited for a permit (`--kubelet-max-requests-inflight`) |
//! | `msrs_kubelet_body_limit_exceeded_total` | counter | responses refused for exceeding `--kubelet-max-body-bytes` |
//! | `msrs_kubelet_scrape_errors_total` (ours) | counter | `class` = [`ErrorClass::as_str`], a fixed set |

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::ErrorClass;

/// Prometheus' `DefBuckets`, which upstream uses for request durations.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SuccessLabels {
    success: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: &'static str,
}

type HistogramFamily = Family<NodeLabels, Histogram, fn() -> Histogram>;

/// Handles to the kubelet request families. Cloning shares the underlying metrics.
#[derive(Clone, Debug)]
pub struct KubeletMetrics {
    request_total: Family<SuccessLabels, Counter>,
    request_duration: HistogramFamily,
    last_request_time: Family<NodeLabels, Gauge<f64, AtomicU64>>,
    inflight_limit_waits: Counter,
    body_limit_exceeded: Counter,
    scrape_errors: Family<ClassLabels, Counter>,
    /// The node labels that have series, so that a node that left the cluster can be dropped
    /// (the families cannot be iterated).
    nodes: Arc<Mutex<HashSet<String>>>,
}

fn default_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

impl KubeletMetrics {
    /// Registers the three families on `registry` (which must not add a prefix).
    ///
    /// prometheus-client appends `_total` to counter names itself, so the counter is registered
    /// as `metrics_server_kubelet_request`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            request_total: Family::default(),
            request_duration: Family::new_with_constructor(default_histogram),
            last_request_time: Family::default(),
            inflight_limit_waits: Counter::default(),
            body_limit_exceeded: Counter::default(),
            scrape_errors: Family::default(),
            nodes: Arc::default(),
        };
        registry.register(
            "metrics_server_kubelet_request",
            "[ALPHA] Number of requests sent to Kubelet API",
            metrics.request_total.clone(),
        );
        registry.register(
            "metrics_server_kubelet_request_duration_seconds",
            "[ALPHA] Duration of requests to Kubelet API in seconds",
            metrics.request_duration.clone(),
        );
        registry.register(
            "metrics_server_kubelet_last_request_time_seconds",
            "[ALPHA] Time of last request performed to Kubelet API since unix epoch in seconds",
            metrics.last_request_time.clone(),
        );
        registry.register(
            "msrs_kubelet_inflight_limit_waits",
            "Kubelet requests that had to wait because --kubelet-max-requests-inflight requests were already running",
            metrics.inflight_limit_waits.clone(),
        );
        registry.register(
            "msrs_kubelet_body_limit_exceeded",
            "Kubelet responses refused because their body exceeded --kubelet-max-body-bytes",
            metrics.body_limit_exceeded.clone(),
        );
        // Ours, so not `metrics_server_`: one series per error class, never per node.
        registry.register(
            "msrs_kubelet_scrape_errors",
            "Kubelet scrapes that gave no complete data, by error class",
            metrics.scrape_errors.clone(),
        );
        metrics
    }

    /// Counts a node request that found every in-flight permit taken.
    pub fn record_inflight_limit_wait(&self) {
        self.inflight_limit_waits.inc();
    }

    /// Counts a response refused for its body size.
    pub fn record_body_limit_exceeded(&self) {
        self.body_limit_exceeded.inc();
    }

    /// Current value of `msrs_kubelet_inflight_limit_waits_total`.
    pub fn inflight_limit_waits(&self) -> u64 {
        self.inflight_limit_waits.get()
    }

    /// Current value of `msrs_kubelet_body_limit_exceeded_total`.
    pub fn body_limit_exceeded(&self) -> u64 {
        self.body_limit_exceeded.get()
    }

    /// Counts one failed (or incomplete) node scrape under its class.
    pub fn observe_error(&self, class: ErrorClass) {
        self.scrape_errors
            .get_or_create(&ClassLabels {
                class: class.as_str(),
            })
            .inc();
    }

    /// Current value of `msrs_kubelet_scrape_errors_total{class}` (for tests).
    pub fn scrape_error_count(&self, class: ErrorClass) -> u64 {
        self.scrape_errors
            .get_or_create(&ClassLabels {
                class: class.as_str(),
            })
            .get()
    }

    /// Records one finished node request, like upstream's `collectNode` defer.
    pub fn observe(&self, node: &str, success: bool, duration: Duration, finished: SystemTime) {
        self.request_total
            .get_or_create(&SuccessLabels { success })
            .inc();
        let labels = NodeLabels {
            node: node.to_owned(),
        };
        {
            // Known nodes (every tick but a node's first) cost a lookup, not an allocation.
            let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
            if !nodes.contains(node) {
                nodes.insert(node.to_owned());
            }
        }
        self.request_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        // Upstream sets float64(time.Now().Unix()): whole seconds.
        let secs = finished
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_request_time
            .get_or_create(&labels)
            .set(secs as f64);
    }

    /// Drops the per-node series of nodes not in `keep` (nodes that left the cluster), so that
    /// node churn does not grow `/metrics` and memory without bound.
    pub fn retain_nodes(&self, keep: &HashSet<&str>) {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        nodes.retain(|node| {
            if keep.contains(node.as_str()) {
                return true;
            }
            let labels = NodeLabels { node: node.clone() };
            self.request_duration.remove(&labels);
            self.last_request_time.remove(&labels);
            false
        });
    }

    /// Current value of `metrics_server_kubelet_request_total{success}` (for tests and logs).
    pub fn request_count(&self, success: bool) -> u64 {
        self.request_total
            .get_or_create(&SuccessLabels { success })
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn families_use_upstream_names_help_labels_and_buckets() {
        let mut registry = Registry::default();
        let m = KubeletMetrics::register(&mut registry);
        m.observe(
            "node1",
            true,
            Duration::from_millis(30),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        m.observe("node1", false, Duration::from_millis(30), UNIX_EPOCH);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        // OpenMetrics names the counter family without `_total` in HELP/TYPE and appends a
        // period to HELP; the /metrics endpoint rewrites both for the 0.0.4 text format.
        assert!(out.contains(
            "# HELP metrics_server_kubelet_request [ALPHA] Number of requests sent to Kubelet API.\n"
        ));
        assert!(out.contains("# TYPE metrics_server_kubelet_request counter"));
        assert!(out.contains("metrics_server_kubelet_request_total{success=\"true\"} 1"));
        assert!(out.contains("metrics_server_kubelet_request_total{success=\"false\"} 1"));
        assert!(out.contains("# TYPE metrics_server_kubelet_request_duration_seconds histogram"));
        for le in [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
            "+Inf",
        ] {
            assert!(
                out.contains(&format!("metrics_server_kubelet_request_duration_seconds_bucket{{le=\"{le}\",node=\"node1\"}}")),
                "bucket {le} missing in\n{out}"
            );
        }
        assert!(out.contains("# TYPE metrics_server_kubelet_last_request_time_seconds gauge"));
        assert!(
            out.contains("metrics_server_kubelet_last_request_time_seconds{node=\"node1\"} 0.0")
        );
        assert_eq!(m.request_count(false), 1);
    }

    #[test]
    fn limit_counters_are_our_own_families_on_the_given_registry() {
        let mut registry = Registry::default();
        let m = KubeletMetrics::register(&mut registry);
        m.record_inflight_limit_wait();
        m.record_inflight_limit_wait();
        m.record_body_limit_exceeded();
        m.observe("node1", true, Duration::from_millis(1), UNIX_EPOCH);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        assert!(out.contains("# TYPE msrs_kubelet_inflight_limit_waits counter"));
        assert!(
            out.contains("msrs_kubelet_inflight_limit_waits_total 2\n"),
            "{out}"
        );
        assert!(
            out.contains("msrs_kubelet_body_limit_exceeded_total 1\n"),
            "{out}"
        );
        assert_eq!((m.inflight_limit_waits(), m.body_limit_exceeded()), (2, 1));
        // Upstream's families stay exactly three from this crate.
        let upstream: std::collections::BTreeSet<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .filter(|n| n.starts_with("metrics_server_"))
            .collect();
        assert_eq!(upstream.len(), 3, "{upstream:?}");
        // A second registry gets counters of its own: nothing is shared through globals.
        let other = KubeletMetrics::register(&mut Registry::default());
        assert_eq!(other.inflight_limit_waits(), 0);
    }

    #[test]
    fn series_of_nodes_that_left_are_dropped() {
        let mut registry = Registry::default();
        let m = KubeletMetrics::register(&mut registry);
        m.observe("stays", true, Duration::from_millis(1), UNIX_EPOCH);
        m.observe("leaves", false, Duration::from_millis(1), UNIX_EPOCH);
        m.retain_nodes(&HashSet::from(["stays"]));
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        assert!(out.contains("node=\"stays\""), "{out}");
        assert!(!out.contains("node=\"leaves\""), "{out}");
        // The request counters are not per node and keep counting.
        assert_eq!((m.request_count(true), m.request_count(false)), (1, 1));
    }

    #[test]
    fn scrape_errors_are_counted_by_class_under_our_prefix() {
        let mut registry = Registry::default();
        let m = KubeletMetrics::register(&mut registry);
        m.observe_error(ErrorClass::Timeout);
        m.observe_error(ErrorClass::HttpStatus(401));
        m.observe_error(ErrorClass::HttpStatus(403));
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        assert!(
            out.contains("# TYPE msrs_kubelet_scrape_errors counter"),
            "{out}"
        );
        assert!(
            out.contains("msrs_kubelet_scrape_errors_total{class=\"timeout\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("msrs_kubelet_scrape_errors_total{class=\"http_status\"} 2"),
            "{out}"
        );
        assert_eq!(m.scrape_error_count(ErrorClass::HttpStatus(500)), 2);
    }
}
