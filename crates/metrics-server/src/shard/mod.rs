//! Sharded high availability (`--shard-by-lease`): the wiring around the pure
//! `metrics-server-shard` crate.
//!
//! ```text
//!  lease::run ── apply own Lease every duration/3, list the group's Leases ──▶ Shard::set_members
//!  ScrapeLoop::tick ── scrape Shard::owns(node) only ─▶ Shard::update_own ─▶ Shard::batch ─▶ Store
//!  exchange::serve ◀── GET /shard/v1/points?epoch&since&wait (long poll, peers) ── OwnShard delta
//!  exchange::poll_peer (one task per live peer) ─▶ PeerView::apply ─▶ Shard::changed ─▶ re-merge
//!  /readyz shard-complete ◀── Shard::completeness
//! ```
//!
//! A peer whose exchange has failed for longer than the lease duration is treated as gone
//! for assignment (its nodes are scraped here), though its Lease may still be live: a node
//! may then be scraped twice, never not at all.

pub mod exchange;
pub mod flags;
pub mod lease;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics_server_core::{Batch, NodeScrape};
use metrics_server_shard::{Assignment, Member, OwnShard, PeerView};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

pub use flags::{ShardFlags, ShardSettings};

/// One peer as this replica knows it.
#[derive(Debug)]
struct PeerSlot {
    address: Option<String>,
    view: PeerView,
    /// Since when every exchange with it failed (None: the last one worked).
    failing_since: Option<Instant>,
    /// When its Lease disappeared or expired; its copy is kept one resolution more.
    left_at: Option<Instant>,
    /// When it was first seen live.
    seen_at: Instant,
}

/// Self-metrics of sharding (registered only when it is on).
#[derive(Clone, Debug, Default)]
pub struct ShardMetrics {
    members: Gauge<i64, AtomicI64>,
    owned_nodes: Gauge<i64, AtomicI64>,
    peer_nodes: Gauge<i64, AtomicI64>,
    received_bytes: Counter,
    exchange_errors: Counter,
}

impl ShardMetrics {
    /// Registers the `msrs_shard_*` families.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "msrs_shard_members",
            "Live members of this replica's group, itself included.",
            m.members.clone(),
        );
        registry.register(
            "msrs_shard_owned_nodes",
            "Nodes this replica scraped successfully in its last tick.",
            m.owned_nodes.clone(),
        );
        registry.register(
            "msrs_shard_peer_nodes",
            "Nodes held from peers' shards.",
            m.peer_nodes.clone(),
        );
        registry.register(
            "msrs_shard_exchange_received_bytes",
            "Bytes of point deltas received from peers.",
            m.received_bytes.clone(),
        );
        registry.register(
            "msrs_shard_exchange_errors",
            "Failed exchanges with peers.",
            m.exchange_errors.clone(),
        );
        m
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The shared state of sharding: membership, this replica's shard and its copies of peers'.
#[derive(Debug)]
pub struct Shard {
    settings: ShardSettings,
    resolution: Duration,
    epoch: u64,
    own: Mutex<OwnShard>,
    /// The own shard's version, for long polls.
    version: watch::Sender<u64>,
    peers: Mutex<BTreeMap<String, PeerSlot>>,
    assignment: Mutex<Assignment>,
    /// Whether the group's Leases were listed at least once.
    membership_known: watch::Sender<bool>,
    /// Peers' copies changed: the scrape loop re-merges.
    changed: Notify,
    /// Peers came or went: the exchange supervisor starts and stops pollers.
    peers_changed: Notify,
    metrics: ShardMetrics,
}

impl Shard {
    /// Sharding state for this replica; `epoch` tells its incarnations apart.
    pub fn new(
        settings: ShardSettings,
        resolution: Duration,
        epoch: u64,
        metrics: ShardMetrics,
    ) -> Self {
        let assignment = Assignment::new([settings.identity.clone()]);
        Self {
            settings,
            resolution,
            epoch,
            own: Mutex::new(OwnShard::new(epoch)),
            version: watch::Sender::new(0),
            peers: Mutex::new(BTreeMap::new()),
            assignment: Mutex::new(assignment),
            membership_known: watch::Sender::new(false),
            changed: Notify::new(),
            peers_changed: Notify::new(),
            metrics,
        }
    }

    /// The resolved settings.
    pub fn settings(&self) -> &ShardSettings {
        &self.settings
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PeerSlot>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn own(&self) -> std::sync::MutexGuard<'_, OwnShard> {
        self.own.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this replica scrapes `node` now.
    pub fn owns(&self, node: &str) -> bool {
        self.assignment
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .owns(&self.settings.identity, node)
    }

    /// Records the live members from the last Lease listing (this replica is always one).
    pub fn set_members(&self, members: &[Member], now: Instant) {
        let me = &self.settings.identity;
        let mut peers = self.peers();
        let live: HashSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let mut came_or_went = false;
        for m in members.iter().filter(|m| m.id != *me) {
            let slot = peers.entry(m.id.clone()).or_insert_with(|| {
                came_or_went = true;
                PeerSlot {
                    address: None,
                    view: PeerView::new(),
                    failing_since: None,
                    left_at: None,
                    seen_at: now,
                }
            });
            came_or_went |= slot.left_at.take().is_some() || slot.address != m.peer_address;
            slot.address.clone_from(&m.peer_address);
        }
        for (id, slot) in peers.iter_mut() {
            if !live.contains(id.as_str()) && slot.left_at.is_none() {
                slot.left_at = Some(now);
                came_or_went = true;
            }
        }
        // A leaver's copy bridges the handover for one resolution, then goes.
        let resolution = self.resolution;
        peers.retain(|_, s| s.left_at.is_none_or(|t| now.duration_since(t) < resolution));
        self.reassign(&peers, now);
        drop(peers);
        self.membership_known.send_replace(true);
        if came_or_went {
            self.peers_changed.notify_one();
            self.changed.notify_one();
        }
    }

    /// Recomputes the assignment from the last membership (when Leases cannot be listed).
    pub fn refresh(&self, now: Instant) {
        let peers = self.peers();
        self.reassign(&peers, now);
    }

    /// Assignment: this replica plus every live peer that has not failed exchanges for longer
    /// than the lease duration.
    fn reassign(&self, peers: &BTreeMap<String, PeerSlot>, now: Instant) {
        let lease = self.settings.lease_duration;
        let members = peers
            .iter()
            .filter(|(_, s)| s.left_at.is_none())
            .filter(|(_, s)| {
                s.failing_since
                    .is_none_or(|t| now.duration_since(t) < lease)
            })
            .map(|(id, _)| id.clone())
            .chain([self.settings.identity.clone()]);
        let next = Assignment::new(members);
        let mut current = self
            .assignment
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *current != next {
            tracing::info!(members = ?next.members(), "Shard members changed");
            self.metrics.members.set(gauge_value(next.members().len()));
            *current = next;
        }
    }

    /// Stores this tick's successful scrapes of owned nodes and wakes long polls on a change.
    pub fn update_own(&self, scrapes: Vec<(String, NodeScrape)>) {
        let mut own = self.own();
        self.metrics.owned_nodes.set(gauge_value(scrapes.len()));
        if own.update(scrapes) {
            self.version.send_replace(own.version());
        }
    }

    /// The batch to store: own scrapes and peers' copies, freshest per node, for the nodes
    /// `keep` accepts.
    pub fn batch(&self, keep: impl Fn(&str) -> bool) -> Batch {
        let own = self.own();
        let peers = self.peers();
        self.metrics
            .peer_nodes
            .set(gauge_value(peers.values().map(|p| p.view.len()).sum()));
        let sources = std::iter::once(
            Box::new(own.entries()) as Box<dyn Iterator<Item = (&str, &NodeScrape)> + '_>
        )
        .chain(peers.values().map(|p| {
            Box::new(p.view.entries()) as Box<dyn Iterator<Item = (&str, &NodeScrape)> + '_>
        }));
        metrics_server_shard::batch(sources, keep)
    }

    /// Waits until a peer's copy changed.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Why this replica does not hold every live member's shard yet (`Ok` when it does).
    pub fn completeness(&self, now: Instant) -> Result<(), String> {
        if !*self.membership_known.borrow() {
            return Err("the group's Leases were not listed yet".to_owned());
        }
        let lease = self.settings.lease_duration;
        let peers = self.peers();
        let missing: Vec<&str> = peers
            .iter()
            .filter(|(_, s)| s.left_at.is_none() && !s.view.is_synced())
            // A peer that never answered within a lease duration is scraped for here.
            .filter(|(_, s)| {
                now.duration_since(s.seen_at) < lease
                    || s.failing_since
                        .is_none_or(|t| now.duration_since(t) < lease)
            })
            .map(|(id, _)| id.as_str())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("no points yet from peers {missing:?}"))
        }
    }
}

/// The shard state for `settings`, its metrics registered on `registry`.
pub fn start(settings: ShardSettings, resolution: Duration, registry: &mut Registry) -> Arc<Shard> {
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    tracing::info!(
        identity = %settings.identity,
        group = %settings.group,
        namespace = %settings.namespace,
        peer_address = %settings.peer_address,
        lease_duration = ?settings.lease_duration,
        "Sharding nodes by Lease"
    );
    let metrics = ShardMetrics::register(registry);
    Arc::new(Shard::new(settings, resolution, epoch, metrics))
}

/// Starts the Lease loop and the exchange pollers; they stop when `stop` is cancelled (the
/// Lease is then released). The returned task ends when both have.
pub fn spawn(
    shard: Arc<Shard>,
    client: kube::Client,
    user_agent: String,
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let peer_client = Arc::new(exchange::peer_client(&shard, user_agent)?);
    let leases = tokio::spawn(lease::run(Arc::clone(&shard), client, stop.child_token()));
    let pollers = tokio::spawn(exchange::supervise(shard, peer_client, stop.child_token()));
    Ok(tokio::spawn(async move {
        let _ = tokio::join!(leases, pollers);
    }))
}

/// Adds the exchange endpoint to the API router.
pub fn with_exchange_route(router: axum::Router, shard: Arc<Shard>) -> axum::Router {
    axum::Router::new()
        .route(exchange::PATH, axum::routing::get(exchange::serve))
        .with_state(shard)
        .merge(router)
}

/// The `shard-complete` readiness check.
#[derive(Debug)]
struct Complete(Arc<Shard>);

impl metrics_server_api::ReadinessCheck for Complete {
    fn check(&self) -> Result<(), String> {
        self.0.completeness(Instant::now())
    }
}

/// The `/readyz` check of `shard`.
pub fn readiness(shard: Arc<Shard>) -> Arc<dyn metrics_server_api::ReadinessCheck> {
    Arc::new(Complete(shard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_server_core::MetricsPoint;

    fn settings(id: &str) -> ShardSettings {
        ShardSettings {
            group: "g".to_owned(),
            namespace: "ns".to_owned(),
            identity: id.to_owned(),
            peer_address: format!("{id}:443"),
            lease_duration: Duration::from_secs(6),
            allowed_users: vec!["peer".to_owned()],
            token_file: String::new(),
            ca_file: String::new(),
        }
    }

    fn member(id: &str) -> Member {
        Member {
            id: id.to_owned(),
            peer_address: Some(format!("{id}:443")),
            expires_ns: i64::MAX,
        }
    }

    fn scrape(ts: i64) -> NodeScrape {
        NodeScrape {
            node: Some(MetricsPoint {
                timestamp_ns: ts,
                cumulative_cpu_ns: 1,
                memory_bytes: 1,
                start_time_ns: 0,
            }),
            pods: Vec::new(),
        }
    }

    fn nodes() -> Vec<String> {
        (0..60).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn alone_a_replica_owns_every_node_and_shares_them_once_peers_appear() {
        let shard = Shard::new(
            settings("a"),
            Duration::from_secs(15),
            1,
            ShardMetrics::default(),
        );
        assert!(nodes().iter().all(|n| shard.owns(n)));
        assert!(
            shard.completeness(Instant::now()).is_err(),
            "Leases not listed yet"
        );
        let now = Instant::now();
        shard.set_members(&[member("a"), member("b"), member("c")], now);
        let mine = nodes().iter().filter(|n| shard.owns(n)).count();
        assert!((10..=30).contains(&mine), "owns {mine} of 60");
        let err = shard.completeness(now).unwrap_err();
        assert!(err.contains("\"b\"") && err.contains("\"c\""), "{err}");
    }

    #[test]
    fn a_peer_failing_for_a_lease_duration_is_taken_over_and_no_longer_awaited() {
        let shard = Shard::new(
            settings("a"),
            Duration::from_secs(15),
            1,
            ShardMetrics::default(),
        );
        let t0 = Instant::now();
        shard.set_members(&[member("a"), member("b")], t0);
        assert!(!nodes().iter().all(|n| shard.owns(n)));
        assert!(exchange::tests::mark(&shard, "b", t0));
        shard.refresh(t0 + Duration::from_secs(3));
        assert!(
            !nodes().iter().all(|n| shard.owns(n)),
            "not yet: within the lease"
        );
        let later = t0 + Duration::from_secs(7);
        shard.refresh(later);
        assert!(nodes().iter().all(|n| shard.owns(n)));
        assert_eq!(shard.completeness(later), Ok(()));
    }

    #[test]
    fn peers_points_are_merged_and_a_leavers_copy_goes_after_one_resolution() {
        let res = Duration::from_secs(15);
        let shard = Shard::new(settings("a"), res, 1, ShardMetrics::default());
        let t0 = Instant::now();
        shard.set_members(&[member("a"), member("b")], t0);
        let mut theirs = OwnShard::new(9);
        theirs.update([("node-b".to_owned(), scrape(5))]);
        exchange::tests::deliver(&shard, "b", theirs.delta_since(0, 0));
        shard.update_own(vec![("node-a".to_owned(), scrape(5))]);
        assert_eq!(shard.batch(|_| true).node_count(), 2);
        assert_eq!(shard.batch(|n| n == "node-a").node_count(), 1);
        assert_eq!(shard.completeness(t0), Ok(()));
        // b leaves: its copy bridges one resolution, then goes.
        shard.set_members(&[member("a")], t0 + Duration::from_secs(1));
        assert_eq!(shard.batch(|_| true).node_count(), 2);
        shard.set_members(&[member("a")], t0 + Duration::from_secs(17));
        assert_eq!(shard.batch(|_| true).node_count(), 1);
    }
}
