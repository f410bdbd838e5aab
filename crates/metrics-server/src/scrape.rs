//! The scrape loop (spec C.9, D.5, D.6): one tick immediately, then one per
//! `--metric-resolution`, ticks never overlapping and missed ticks dropped.
//!
//! ```text
//! tick: record_tick_start ─► targets(--node-selector) ─► scrape_tick(deadline = now + R)
//!       ─► Store::apply(batch) ─► SharedSnapshot::publish ─► storage_points, tick histogram
//! ```
//!
//! A tick never fails: failed nodes are simply absent from the batch.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use metrics_server_api::HealthState;
use metrics_server_core::{LabelSelector, SharedSnapshot, Snapshot, Store};
use metrics_server_k8s::Cluster;
use metrics_server_kubelet::Scraper;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::metrics::ManagerMetrics;

/// Readiness as last logged, to log transitions only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Readiness {
    nodes: bool,
    pods: bool,
}

/// Owns the store and drives ticks.
#[derive(Debug)]
pub struct ScrapeLoop {
    scraper: Scraper,
    cluster: Cluster,
    node_selector: LabelSelector,
    store: Store,
    published: Arc<SharedSnapshot>,
    health: Arc<HealthState>,
    metrics: ManagerMetrics,
    resolution: Duration,
    readiness: Option<Readiness>,
}

impl ScrapeLoop {
    /// A loop scraping the nodes of `cluster` that `node_selector` keeps, publishing into
    /// `published`.
    pub fn new(
        scraper: Scraper,
        cluster: Cluster,
        node_selector: LabelSelector,
        published: Arc<SharedSnapshot>,
        health: Arc<HealthState>,
        metrics: ManagerMetrics,
        resolution: Duration,
    ) -> Self {
        Self {
            scraper,
            cluster,
            node_selector,
            store: Store::new(resolution),
            published,
            health,
            metrics,
            resolution,
            readiness: None,
        }
    }

    /// Runs one tick and returns the snapshot it published.
    pub async fn tick(&mut self) -> Arc<Snapshot> {
        let start = Instant::now();
        self.health.record_tick_start(SystemTime::now());
        let targets = self.cluster.targets(&self.node_selector);
        tracing::debug!(nodes = targets.len(), "Scraping metrics");
        let result = self
            .scraper
            .scrape_tick(&targets, start + self.resolution)
            .await;
        let snapshot = self.store.apply(result.into_batch());
        self.published.publish(Arc::clone(&snapshot));
        let stats = snapshot.stats();
        self.metrics
            .set_storage_points(stats.node_points, stats.container_points);
        self.log_readiness(&snapshot);
        let elapsed = start.elapsed();
        self.metrics.observe_tick(elapsed);
        tracing::debug!(
            duration = ?elapsed,
            node_points = stats.node_points,
            container_points = stats.container_points,
            "Storing metrics"
        );
        snapshot
    }

    fn log_readiness(&mut self, snapshot: &Snapshot) {
        let now = Readiness {
            nodes: snapshot.nodes_ready(),
            pods: snapshot.pods_ready(),
        };
        if self.readiness == Some(now) {
            return;
        }
        match (now.nodes, now.pods) {
            (true, true) => tracing::debug!("Metric storage is ready"),
            (false, true) => tracing::debug!("Metric storage is not ready: node metrics missing"),
            (true, false) => tracing::debug!("Metric storage is not ready: pod metrics missing"),
            (false, false) => {
                tracing::debug!("Metric storage is not ready: node and pod metrics missing");
            }
        }
        self.readiness = Some(now);
    }

    /// Ticks immediately, then every resolution, until `shutdown`. A tick in progress when
    /// shutdown arrives is abandoned.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.resolution);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = self.tick() => {}
            }
        }
    }
}
