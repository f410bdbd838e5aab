//! What the steps of `Args::run` share: the one metrics registry, and the state the watches,
//! the scrape loop and the API have in common.

use std::sync::Arc;
use std::time::Duration;

use metrics_server_api::{ApiMetrics, HealthState};
use metrics_server_auth::AuthMetrics;
use metrics_server_auth::stack::Rejections;
use metrics_server_core::SharedSnapshot;
use metrics_server_k8s::Cluster;
use metrics_server_kubelet::{KubeletMetrics, NodeHealth};
use prometheus_client::registry::Registry;

use crate::diagnosis::DiagnosisMetrics;
use crate::metrics::ManagerMetrics;
use crate::shard::{Shard, ShardSettings};

/// One explicit registry and a handle to each of its families.
pub(super) struct SelfMetrics {
    /// Everything `/metrics` serves.
    pub(super) registry: Arc<Registry>,
    pub(super) kubelet: KubeletMetrics,
    pub(super) api: ApiMetrics,
    pub(super) manager: ManagerMetrics,
    pub(super) auth: AuthMetrics,
    pub(super) rejections: Rejections,
    pub(super) diagnosis: DiagnosisMetrics,
}

impl SelfMetrics {
    /// Registers every family; with sharding, the shard state too, whose families the
    /// registry then holds.
    pub(super) fn register(
        resolution: Duration,
        shard_settings: Option<ShardSettings>,
    ) -> (Self, Option<Arc<Shard>>) {
        let mut registry = Registry::default();
        let kubelet = KubeletMetrics::register(&mut registry);
        let api = ApiMetrics::register(&mut registry);
        let manager = ManagerMetrics::register(&mut registry, resolution);
        let auth = AuthMetrics::register(&mut registry);
        let rejections = Rejections::register(&mut registry);
        let shard =
            shard_settings.map(|settings| crate::shard::start(settings, resolution, &mut registry));
        let diagnosis = DiagnosisMetrics::register(&mut registry);
        let metrics = Self {
            registry: Arc::new(registry),
            kubelet,
            api,
            manager,
            auth,
            rejections,
            diagnosis,
        };
        (metrics, shard)
    }
}

/// The state the watches fill, the scrape loop publishes into and the API serves from.
pub(super) struct Shared {
    /// `--metric-resolution`.
    pub(super) resolution: Duration,
    /// The node and pod caches.
    pub(super) cluster: Cluster,
    /// `/healthz`, `/livez`, `/readyz`.
    pub(super) health: Arc<HealthState>,
    /// The scrape loop's latest snapshot.
    pub(super) published: Arc<SharedSnapshot>,
    /// With `--shard-by-lease`: this replica's share of the nodes.
    pub(super) shard: Option<Arc<Shard>>,
    /// Per-node scrape health as the scraper records it.
    pub(super) scrape_health: NodeHealth,
}

impl Shared {
    pub(super) fn new(
        resolution: Duration,
        shard: Option<Arc<Shard>>,
        scrape_health: NodeHealth,
    ) -> Self {
        Self {
            resolution,
            cluster: Cluster::new(),
            health: Arc::new(HealthState::new(resolution)),
            published: Arc::new(SharedSnapshot::new()),
            shard,
            scrape_health,
        }
    }
}
