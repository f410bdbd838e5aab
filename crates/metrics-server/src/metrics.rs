//! The scrape manager's self-metrics (spec D.6, E.13): `metrics_server_storage_points` and
//! `metrics_server_manager_tick_duration_seconds`. The other four `metrics_server_*` families
//! belong to the kubelet and API crates; everything is registered on one explicit registry.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Prometheus' `DefBuckets`.
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: &'static str,
}

/// Handles to the two manager families. Cloning shares them.
#[derive(Clone, Debug)]
pub struct ManagerMetrics {
    storage_points: Family<TypeLabels, Gauge<i64, AtomicI64>>,
    tick_duration: Histogram,
}

/// Upstream's tick-duration buckets: the defaults, plus `10+(R−10)/2, R, 1.5R, 2R` when the
/// resolution R exceeds 10 s.
pub fn tick_buckets(resolution: Duration) -> Vec<f64> {
    let mut buckets = DEFAULT_BUCKETS.to_vec();
    let r = resolution.as_secs_f64();
    if r > 10.0 {
        buckets.extend([10.0 + (r - 10.0) / 2.0, r, 1.5 * r, 2.0 * r]);
    }
    buckets
}

impl ManagerMetrics {
    /// Registers both families on `registry` (no prefix).
    pub fn register(registry: &mut Registry, resolution: Duration) -> Self {
        let metrics = Self {
            storage_points: Family::default(),
            tick_duration: Histogram::new(tick_buckets(resolution)),
        };
        registry.register(
            "metrics_server_storage_points",
            "[ALPHA] Number of metrics points stored.",
            metrics.storage_points.clone(),
        );
        registry.register(
            "metrics_server_manager_tick_duration_seconds",
            "[ALPHA] The total time spent collecting and storing metrics in seconds.",
            metrics.tick_duration.clone(),
        );
        metrics
    }

    /// Sets `storage_points{type="node"}` and `{type="container"}` after a store.
    pub fn set_storage_points(&self, nodes: usize, containers: usize) {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.storage_points
            .get_or_create(&TypeLabels { r#type: "node" })
            .set(as_i64(nodes));
        self.storage_points
            .get_or_create(&TypeLabels {
                r#type: "container",
            })
            .set(as_i64(containers));
    }

    /// Observes one tick's duration.
    pub fn observe_tick(&self, elapsed: Duration) {
        self.tick_duration.observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_buckets_follow_the_resolution_like_upstream() {
        assert_eq!(
            tick_buckets(Duration::from_secs(10)),
            DEFAULT_BUCKETS.to_vec()
        );
        let b15 = tick_buckets(Duration::from_secs(15));
        assert_eq!(&b15[11..], &[12.5, 15.0, 22.5, 30.0]);
        let b60 = tick_buckets(Duration::from_secs(60));
        assert_eq!(&b60[11..], &[35.0, 60.0, 90.0, 120.0]);
    }

    #[test]
    fn both_families_render_with_upstream_names() {
        let mut registry = Registry::default();
        let m = ManagerMetrics::register(&mut registry, Duration::from_secs(15));
        m.set_storage_points(3, 7);
        m.observe_tick(Duration::from_millis(20));
        let text = metrics_server_api::render_text(&registry);
        assert!(
            text.contains("metrics_server_storage_points{type=\"node\"} 3"),
            "{text}"
        );
        assert!(text.contains("metrics_server_storage_points{type=\"container\"} 7"));
        assert!(text.contains("# TYPE metrics_server_manager_tick_duration_seconds histogram"));
        assert!(
            text.contains("metrics_server_manager_tick_duration_seconds_bucket{le=\"22.5\"} 1")
        );
        assert!(text.contains("metrics_server_manager_tick_duration_seconds_count 1"));
    }
}
