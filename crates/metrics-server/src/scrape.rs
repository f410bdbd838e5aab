//! The scrape loop (spec C.9, D.5, D.6): one tick immediately, then one per
//! `--metric-resolution`, ticks never overlapping and missed ticks dropped.
//!
//! ```text
//! tick: record_tick_start ─► targets(--node-selector) ─► Store::begin
//!       ─► scrape_tick_with(deadline = now + R): each node's scrape into the TickBuilder as it arrives
//!       ─► TickBuilder::finish ─► SharedSnapshot::publish ─► storage_points, tick histogram
//! ```
//!
//! With `--shard-by-lease` (peers' points are merged) or repeated node names the tick is stored
//! as one batch instead (`Store::apply`), with the same result. A tick never fails: failed nodes
//! are simply absent from the new snapshot.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use metrics_server_api::HealthState;
use metrics_server_core::{LabelSelector, SharedSnapshot, Snapshot, Store};
use metrics_server_k8s::Cluster;
use metrics_server_kubelet::{NodeTarget, Scraper};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::metrics::ManagerMetrics;
use crate::shard::Shard;

/// Readiness as last logged, to log transitions only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Readiness {
    nodes: bool,
    pods: bool,
}

/// Whether no two targets share a node name (node names are unique in a cluster).
fn unique_names(targets: &[NodeTarget]) -> bool {
    let mut seen = HashSet::with_capacity(targets.len());
    targets.iter().all(|t| seen.insert(t.name.as_str()))
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
    /// With `--shard-by-lease`: scrape owned nodes only and merge peers' points.
    shard: Option<Arc<Shard>>,
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
            shard: None,
        }
    }

    /// Shares the nodes with the group of `shard` (see `crate::shard`).
    pub fn with_shard(mut self, shard: Arc<Shard>) -> Self {
        self.shard = Some(shard);
        self
    }

    /// Runs one tick and returns the snapshot it published.
    pub async fn tick(&mut self) -> Arc<Snapshot> {
        let start = Instant::now();
        self.health.record_tick_start(SystemTime::now());
        let mut targets = self.cluster.targets(&self.node_selector);
        let listed: HashSet<String> = match &self.shard {
            Some(shard) => {
                let listed = targets.iter().map(|t| t.name.clone()).collect();
                targets.retain(|t| shard.owns(&t.name));
                listed
            }
            None => HashSet::new(),
        };
        tracing::debug!(nodes = targets.len(), "Scraping metrics");
        let deadline = start + self.resolution;
        let snapshot = match &self.shard {
            Some(shard) => {
                let result = self.scraper.scrape_tick(&targets, deadline).await;
                let owned = result
                    .outcomes
                    .into_iter()
                    .filter_map(|o| Some((o.node, o.result.ok()?)))
                    .collect();
                shard.update_own(owned);
                self.store.apply(shard.batch(|n| listed.contains(n)))
            }
            None if unique_names(&targets) => {
                // Each node is stored as it arrives: no tick-long batch of decoded scrapes.
                let mut tick = self.store.begin();
                self.scraper
                    .scrape_tick_with(&targets, deadline, |index, outcome| {
                        if let Ok(scrape) = &mut outcome.result {
                            let order = u32::try_from(index).unwrap_or(u32::MAX);
                            tick.add_node_scrape(order, &outcome.node, std::mem::take(scrape));
                        }
                    })
                    .await;
                tick.finish()
            }
            // Repeated names keep the first successful scrape whole (TickResult::into_batch).
            None => {
                let result = self.scraper.scrape_tick(&targets, deadline).await;
                self.store.apply(result.into_batch())
            }
        };
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

    /// Stores peers' news between ticks (sharding only): the same merge as a tick, without
    /// scraping. Re-storing unchanged points changes nothing.
    fn merge_peers(&mut self) {
        let Some(shard) = &self.shard else { return };
        let listed: HashSet<String> = self
            .cluster
            .targets(&self.node_selector)
            .into_iter()
            .map(|t| t.name)
            .collect();
        let snapshot = self.store.apply(shard.batch(|n| listed.contains(n)));
        self.published.publish(Arc::clone(&snapshot));
        let stats = snapshot.stats();
        self.metrics
            .set_storage_points(stats.node_points, stats.container_points);
        self.log_readiness(&snapshot);
    }

    /// Ticks immediately, then every resolution, until `shutdown`. A tick in progress when
    /// shutdown arrives is abandoned. With sharding, peers' news is stored between ticks.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.resolution);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let shard = self.shard.clone();
        loop {
            let peers_changed = async {
                match &shard {
                    Some(s) => s.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
                () = peers_changed => {
                    self.merge_peers();
                    continue;
                }
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = self.tick() => {}
            }
        }
    }
}
