//! One scrape tick over all selected nodes (spec C.5).
//!
//! ```text
//! scrape_tick(targets, tick_deadline)
//!   ├─ per node (own task): sleep jitter ∈ [0, min(8ms × n, 4s))
//!   │     → wait for an in-flight permit (bounded by the tick deadline; a wait is counted)
//!   │     → deadline = min(tick deadline, now + request timeout)
//!   │     → resolve URL → GET → parse → NodeOutcome {Ok(NodeScrape) | Err(ScrapeError)}
//!   │     → self-metrics, health record, log the reason when the node's error class changes
//!   └─ wait for every task (each bounded by its deadline) → TickResult
//!                                                            └─ into_batch() → core::Batch
//! ```
//!
//! A failed or malformed node fails only itself, never the tick. Hitting a limit (no free
//! in-flight permit, a body over the cap) is counted per tick and logged once per tick.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_server_core::{Batch, NodeScrape, parse_exposition};
use tokio::sync::{Semaphore, SemaphorePermit, TryAcquireError};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Fetched, KubeletClient};
use crate::error::{ScrapeError, go_duration};
use crate::health::{Attempt, NodeHealth, Route};
use crate::metrics::KubeletMetrics;
use crate::target::{AddressConfig, NodeTarget, ScrapeTarget, node_proxy_path, resolve_url};

/// A fetch through kube-apiserver, boxed so the scraper stays free of any Kubernetes client.
pub type ProxyFuture<'a> = Pin<Box<dyn Future<Output = Result<Fetched, ScrapeError>> + Send + 'a>>;

/// GETs a path from kube-apiserver with the server's own credentials: the opt-in fallback
/// (`--kubelet-node-proxy-fallback`) for nodes whose kubelet port this process cannot reach.
pub trait NodeProxy: Send + Sync + std::fmt::Debug + 'static {
    /// GETs `path` (an `/api/v1/nodes/<node>/proxy/...` path), finishing before `deadline`,
    /// with the same body cap and error classes as a direct scrape.
    fn get<'a>(&'a self, path: &'a str, deadline: Instant) -> ProxyFuture<'a>;
    /// The full URL of `path`, for logs and the health record.
    fn url(&self, path: &str) -> String;
}

/// Nodes that switch to the node proxy when they answer this way: the port is unreachable.
fn port_unreachable(err: &ScrapeError) -> bool {
    matches!(
        err,
        ScrapeError::ConnectTimeout { .. } | ScrapeError::ConnectRefused { .. }
    )
}

/// Least time left in a tick worth a proxied attempt after a failed direct one.
const MIN_PROXY_BUDGET: Duration = Duration::from_millis(500);

/// Default bound on concurrent kubelet requests (`--kubelet-max-requests-inflight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Upstream's jitter per node (`delayPerSourceMs`).
pub const DEFAULT_SPREAD_PER_NODE: Duration = Duration::from_millis(8);

/// Upstream's jitter ceiling (`maxDelayMs`).
pub const DEFAULT_MAX_SPREAD: Duration = Duration::from_secs(4);

/// How long after the tick deadline the tick still waits for tasks that are decoding.
const TICK_GRACE: Duration = Duration::from_millis(500);

/// Scheduling and addressing knobs of the scraper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScraperConfig {
    /// Address type priority, port and node-status-port choice.
    pub address: AddressConfig,
    /// Maximum requests in flight at once (upstream has no cap).
    pub max_in_flight: usize,
    /// Jitter window grows by this much per node...
    pub spread_per_node: Duration,
    /// ...up to this ceiling. `Duration::ZERO` for either disables jitter.
    pub max_spread: Duration,
}

impl Default for ScraperConfig {
    fn default() -> Self {
        Self {
            address: AddressConfig::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            spread_per_node: DEFAULT_SPREAD_PER_NODE,
            max_spread: DEFAULT_MAX_SPREAD,
        }
    }
}

/// What one node produced this tick.
#[derive(Debug)]
pub struct NodeOutcome {
    /// Node name.
    pub node: String,
    /// The decoded scrape, or why there is none. An `Ok` scrape may lack the node point
    /// (zero rule); see [`NodeOutcome::incomplete`].
    pub result: Result<NodeScrape, ScrapeError>,
    /// The node reported zero or missing CPU or memory, so its node point was dropped.
    pub incomplete: bool,
    /// Time from sending (after jitter and queueing) to the end of decoding.
    pub latency: Duration,
}

/// Everything one tick produced.
#[derive(Debug, Default)]
pub struct TickResult {
    /// One entry per target that finished, in target order.
    pub outcomes: Vec<NodeOutcome>,
    /// Wall time of the whole tick.
    pub elapsed: Duration,
    /// Nodes whose request had to wait because every in-flight permit was taken.
    pub inflight_limit_waits: usize,
    /// Nodes whose response body exceeded the client's cap.
    pub body_limit_exceeded: usize,
}

impl TickResult {
    /// Nodes whose request and decode succeeded.
    pub fn succeeded(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_ok()).count()
    }

    /// Nodes that failed.
    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.succeeded()
    }

    /// The outcome for `node`, if it finished.
    pub fn outcome(&self, node: &str) -> Option<&NodeOutcome> {
        self.outcomes.iter().find(|o| o.node == node)
    }

    /// Merges successful scrapes into the store's batch. A repeated node name keeps the
    /// first scrape and logs an error (pod duplicates are resolved and counted by the store).
    pub fn into_batch(self) -> Batch {
        let mut seen: HashSet<String> = HashSet::with_capacity(self.outcomes.len());
        let mut batch = Batch::new();
        for outcome in self.outcomes {
            let Ok(scrape) = outcome.result else { continue };
            if !seen.insert(outcome.node.clone()) {
                tracing::error!(node = %outcome.node, "Got duplicate node point");
                continue;
            }
            batch.add_node_scrape(outcome.node, scrape);
        }
        batch
    }
}

/// Scrapes every target of a tick concurrently. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct Scraper {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: KubeletClient,
    config: ScraperConfig,
    metrics: Option<KubeletMetrics>,
    health: NodeHealth,
    permits: Semaphore,
    /// The node-proxy fallback, when enabled.
    proxy: Option<Arc<dyn NodeProxy>>,
    /// Nodes currently scraped through the proxy (each tick also retries direct).
    proxied: Mutex<HashSet<String>>,
}

impl Scraper {
    /// A scraper using `client`; `metrics` is optional so tests and tools can skip it.
    pub fn new(
        client: KubeletClient,
        config: ScraperConfig,
        metrics: Option<KubeletMetrics>,
    ) -> Self {
        let permits = Semaphore::new(config.max_in_flight.clamp(1, Semaphore::MAX_PERMITS));
        Self {
            inner: Arc::new(Inner {
                client,
                config,
                metrics,
                health: NodeHealth::new(),
                permits,
                proxy: None,
                proxied: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Enables the node-proxy fallback. Call before the first tick (the scraper must not be
    /// shared yet); a shared scraper is left unchanged and `false` is returned.
    pub fn with_node_proxy(mut self, proxy: Arc<dyn NodeProxy>) -> (Self, bool) {
        let set = match Arc::get_mut(&mut self.inner) {
            Some(inner) => {
                inner.proxy = Some(proxy);
                true
            }
            None => false,
        };
        (self, set)
    }

    /// The per-node health map (shared; updated by every tick).
    pub fn health(&self) -> NodeHealth {
        self.inner.health.clone()
    }

    /// The underlying client.
    pub fn client(&self) -> &KubeletClient {
        &self.inner.client
    }

    /// Scrapes all `targets`, returning by `tick_deadline` (plus a short grace for decoding).
    /// An empty target list returns an empty result at once.
    pub async fn scrape_tick(&self, targets: &[NodeTarget], tick_deadline: Instant) -> TickResult {
        self.scrape_tick_with(targets, tick_deadline, |_, _| {})
            .await
    }

    /// [`Self::scrape_tick`], handing each outcome to `sink` with its target index as soon as
    /// the node finishes. The sink may take a successful scrape out of the outcome (e.g. to
    /// store it at once, `std::mem::take`); the result keeps whatever the sink leaves.
    pub async fn scrape_tick_with(
        &self,
        targets: &[NodeTarget],
        tick_deadline: Instant,
        mut sink: impl FnMut(usize, &mut NodeOutcome),
    ) -> TickResult {
        let start = Instant::now();
        let spread = self.spread(targets.len());
        let hits = Arc::new(LimitHits::default());
        let mut tasks = JoinSet::new();
        for (index, target) in targets.iter().enumerate() {
            let jitter = random_below(spread);
            let inner = Arc::clone(&self.inner);
            let target = target.clone();
            let hits = Arc::clone(&hits);
            tasks.spawn(async move {
                (
                    index,
                    inner
                        .scrape_node(target, jitter, tick_deadline, &hits)
                        .await,
                )
            });
        }

        let mut slots: Vec<Option<NodeOutcome>> = (0..targets.len()).map(|_| None).collect();
        let hard_stop = tick_deadline + TICK_GRACE;
        loop {
            match tokio::time::timeout_at(hard_stop, tasks.join_next()).await {
                Ok(Some(Ok((index, mut outcome)))) => {
                    sink(index, &mut outcome);
                    slots[index] = Some(outcome);
                }
                Ok(Some(Err(err))) => tracing::error!(err = %err, "Scrape task failed"),
                Ok(None) => break,
                Err(_) => {
                    tracing::error!(
                        pending = tasks.len(),
                        "Scrape tasks overran the tick deadline, abandoning them"
                    );
                    tasks.abort_all();
                    break;
                }
            }
        }

        self.forget_departed(targets);
        let outcomes: Vec<NodeOutcome> = slots.into_iter().flatten().collect();
        let result = TickResult {
            outcomes,
            elapsed: start.elapsed(),
            inflight_limit_waits: hits.inflight_waits.load(Ordering::Relaxed),
            body_limit_exceeded: hits.body_exceeded.load(Ordering::Relaxed),
        };
        self.log_limit_hits(&result);
        tracing::debug!(
            duration = ?result.elapsed,
            nodes = targets.len(),
            succeeded = result.succeeded(),
            failed = result.failed(),
            "Scrape finished"
        );
        result
    }

    /// Drops health, proxy and metrics state of nodes that are no longer targets.
    fn forget_departed(&self, targets: &[NodeTarget]) {
        let keep: HashSet<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        self.inner.health.retain(&keep);
        self.inner
            .proxied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|n| keep.contains(n.as_str()));
        if let Some(metrics) = &self.inner.metrics {
            metrics.retain_nodes(&keep);
        }
    }

    /// One line per tick and limit, so a cluster that outgrows a limit is visible at the
    /// default verbosity without a line per node.
    fn log_limit_hits(&self, tick: &TickResult) {
        if tick.inflight_limit_waits > 0 {
            tracing::info!(
                waited = tick.inflight_limit_waits,
                limit = self.inner.config.max_in_flight,
                "Kubelet requests waited for a free slot: --kubelet-max-requests-inflight requests were already running"
            );
        }
        if tick.body_limit_exceeded > 0 {
            tracing::warn!(
                nodes = tick.body_limit_exceeded,
                limit = self.inner.client.max_body_bytes(),
                "Kubelet responses exceeded --kubelet-max-body-bytes; those nodes were not updated"
            );
        }
    }

    /// The jitter window: min(per-node × n, ceiling).
    fn spread(&self, nodes: usize) -> Duration {
        let per = self.inner.config.spread_per_node;
        let n = u32::try_from(nodes).unwrap_or(u32::MAX);
        per.checked_mul(n)
            .unwrap_or(Duration::MAX)
            .min(self.inner.config.max_spread)
    }
}

/// Uniform in [0, bound); zero when the bound is zero.
fn random_below(bound: Duration) -> Duration {
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(fastrand::u64(0..nanos))
    }
}

/// How often this tick's nodes ran into a limit.
#[derive(Debug, Default)]
struct LimitHits {
    inflight_waits: AtomicUsize,
    body_exceeded: AtomicUsize,
}

/// What one fetch produced and how it was fetched.
struct Fetch {
    result: Result<(NodeScrape, Option<String>), ScrapeError>,
    url: String,
    route: Route,
    /// Set when the data came through the proxy: why direct failed.
    direct_error: Option<ScrapeError>,
}

impl Inner {
    async fn scrape_node(
        &self,
        target: NodeTarget,
        jitter: Duration,
        tick_deadline: Instant,
        hits: &LimitHits,
    ) -> NodeOutcome {
        // Spreads connection setup over the interval instead of a thundering herd.
        tokio::time::sleep_until((Instant::now() + jitter).min(tick_deadline)).await;
        let permit = self.acquire_permit(tick_deadline, hits).await;
        let start = Instant::now();
        let timeout = self.client.request_timeout();
        let deadline = tick_deadline.min(start + timeout);
        let fetch = match permit {
            Some(_permit) => self.fetch(&target, deadline).await,
            // A queue timeout is a tick timeout.
            None => {
                let url = self.direct_url(&target);
                Fetch {
                    result: Err(ScrapeError::Timeout { url: url.clone() }),
                    url,
                    route: Route::Direct,
                    direct_error: None,
                }
            }
        };
        let latency = start.elapsed();
        let finished = SystemTime::now();
        if matches!(fetch.result, Err(ScrapeError::BodyTooLarge { .. })) {
            hits.body_exceeded.fetch_add(1, Ordering::Relaxed);
            if let Some(metrics) = &self.metrics {
                metrics.record_body_limit_exceeded();
            }
        }

        let (result, incomplete) = match fetch.result {
            Ok((scrape, incomplete)) => (Ok(scrape), incomplete),
            Err(e) => (Err(e), None),
        };
        if let Some(metrics) = &self.metrics {
            metrics.observe(&target.name, result.is_ok(), latency, finished);
        }
        let failure = match &result {
            Ok(_) if incomplete.is_some() => Some(ScrapeError::Incomplete {
                reason: incomplete.clone().unwrap_or_default(),
            }),
            Ok(_) => None,
            Err(e) => Some(e.clone()),
        };
        let scrape_target = ScrapeTarget::of(&target, &self.config.address);
        let attempt = Attempt {
            target: &scrape_target,
            url: &fetch.url,
            route: fetch.route,
            direct_error: fetch.direct_error.as_ref(),
            latency,
            at: finished,
        };
        self.record_health(&target, attempt, failure.as_ref());
        NodeOutcome {
            node: target.name,
            result,
            incomplete: incomplete.is_some(),
            latency,
        }
    }

    fn direct_url(&self, target: &NodeTarget) -> String {
        resolve_url(target, &self.config.address, self.client.scheme()).unwrap_or_default()
    }

    /// Direct, or through the node proxy when enabled and the kubelet port is unreachable.
    /// A node already on the proxy retries direct every tick, concurrently, and switches back
    /// as soon as direct answers (or fails for a reason the proxy would not fix).
    async fn fetch(&self, target: &NodeTarget, deadline: Instant) -> Fetch {
        let Some(proxy) = &self.proxy else {
            return self.fetch_direct(target, deadline).await;
        };
        if self.is_proxied(&target.name) {
            let (direct, proxied) = tokio::join!(
                self.fetch_direct(target, deadline),
                self.fetch_proxied(proxy.as_ref(), target, deadline)
            );
            return match direct.result {
                Err(e) if port_unreachable(&e) => Fetch {
                    direct_error: Some(e),
                    ..proxied
                },
                _ => {
                    self.set_proxied(&target.name, false);
                    tracing::info!(node = %target.name, "Kubelet reachable again; scraping it directly");
                    direct
                }
            };
        }
        let direct = self.fetch_direct(target, deadline).await;
        match direct.result {
            Err(e) if port_unreachable(&e) => {
                self.set_proxied(&target.name, true);
                tracing::warn!(node = %target.name, err = %e, "Kubelet port unreachable; scraping the node through kube-apiserver's node proxy");
                if deadline.saturating_duration_since(Instant::now()) < MIN_PROXY_BUDGET {
                    return Fetch {
                        result: Err(e),
                        ..direct
                    };
                }
                Fetch {
                    direct_error: Some(e),
                    ..self.fetch_proxied(proxy.as_ref(), target, deadline).await
                }
            }
            _ => direct,
        }
    }

    fn is_proxied(&self, node: &str) -> bool {
        self.proxied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(node)
    }

    fn set_proxied(&self, node: &str, on: bool) {
        let mut set = self.proxied.lock().unwrap_or_else(PoisonError::into_inner);
        if on {
            set.insert(node.to_owned());
        } else {
            set.remove(node);
        }
    }

    async fn fetch_direct(&self, target: &NodeTarget, deadline: Instant) -> Fetch {
        // The URL is resolved once: it is both the request and what the health record shows.
        let (url, result) = match resolve_url(target, &self.config.address, self.client.scheme()) {
            Err(e) => (String::new(), Err(e.into())),
            // The tick ran out while this node waited for its turn.
            Ok(url) if Instant::now() >= deadline => {
                (url.clone(), Err(ScrapeError::Timeout { url }))
            }
            Ok(url) => {
                let result = match self.client.get(&url, deadline).await {
                    Ok(fetched) => decode(target, &fetched),
                    Err(e) => Err(e),
                };
                (url, result)
            }
        };
        Fetch {
            result,
            url,
            route: Route::Direct,
            direct_error: None,
        }
    }

    async fn fetch_proxied(
        &self,
        proxy: &dyn NodeProxy,
        target: &NodeTarget,
        deadline: Instant,
    ) -> Fetch {
        let path = node_proxy_path(target);
        let result = match proxy.get(&path, deadline).await {
            Ok(fetched) => decode(target, &fetched),
            Err(e) => Err(e),
        };
        Fetch {
            result,
            url: proxy.url(&path),
            route: Route::NodeProxy,
            direct_error: None,
        }
    }

    /// A permit, waiting (and counting the wait) when all are taken; `None` when the tick
    /// deadline passes first. The semaphore is never closed.
    async fn acquire_permit(
        &self,
        tick_deadline: Instant,
        hits: &LimitHits,
    ) -> Option<SemaphorePermit<'_>> {
        match self.permits.try_acquire() {
            Ok(permit) => return Some(permit),
            Err(TryAcquireError::Closed) => return None,
            Err(TryAcquireError::NoPermits) => {}
        }
        hits.inflight_waits.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.record_inflight_limit_wait();
        }
        match tokio::time::timeout_at(tick_deadline, self.permits.acquire()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => None,
        }
    }

    /// Updates the node's health, counts a failure by class, and logs the reason at the default
    /// verbosity only when the node's error class changes (every tick repeats at debug).
    fn record_health(
        &self,
        target: &NodeTarget,
        attempt: Attempt<'_>,
        failure: Option<&ScrapeError>,
    ) {
        let outcome = failure.map_or(Ok(()), Err);
        let changed = self.health.record(&target.name, attempt, outcome);
        match failure {
            None if changed => tracing::info!(node = %target.name, "Scraping node succeeds again"),
            None => {}
            Some(err) => {
                if let Some(metrics) = &self.metrics {
                    metrics.observe_error(err.class());
                }
                log_failure(target, err, self.client.request_timeout(), changed);
            }
        }
    }
}

/// Decodes a body; returns the scrape and, when the node point was dropped (zero, missing or
/// unstorable values), why.
fn decode(
    target: &NodeTarget,
    fetched: &Fetched,
) -> Result<(NodeScrape, Option<String>), ScrapeError> {
    let request_time_ns = fetched
        .request_time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let parsed = parse_exposition(&fetched.body, request_time_ns);
    for (namespace, pod) in &parsed.incomplete_pods {
        tracing::debug!(node = %target.name, pod = %format_args!("{namespace}/{pod}"), "Failed getting complete Pod metric");
    }
    for rejected in &parsed.rejected_containers {
        tracing::debug!(node = %target.name, %rejected, "Dropped a pod with an unstorable value");
    }
    let incomplete = parsed.incomplete_node.then(|| {
        parsed.rejected_node.as_ref().map_or_else(
            || "zero or missing node CPU or memory".to_owned(),
            ToString::to_string,
        )
    });
    Ok((parsed.into_result()?, incomplete))
}

/// Upstream's messages. Only a change of error class is logged at the default verbosity (a node
/// failing the same way every tick repeats at debug); failures of NotReady nodes are expected
/// noise, so they always go to debug. Incomplete data is not an error: its change is info.
fn log_failure(target: &NodeTarget, err: &ScrapeError, timeout: Duration, changed: bool) {
    let timeout = go_duration(timeout);
    let class = err.class();
    let loud = changed && target.ready;
    match (loud, err) {
        (true, ScrapeError::Incomplete { reason }) => {
            tracing::info!(node = %target.name, class = %class, %reason, "Failed getting complete node metric")
        }
        (false, ScrapeError::Incomplete { reason }) => {
            tracing::debug!(node = %target.name, class = %class, %reason, "Failed getting complete node metric")
        }
        (true, _) if err.is_deadline() => tracing::error!(
            node = %target.name, err = %err, class = %class, timeout = %timeout,
            "Failed to scrape node, timeout to access kubelet"
        ),
        (true, _) => {
            tracing::error!(node = %target.name, err = %err, class = %class, "Failed to scrape node")
        }
        (false, _) if err.is_deadline() => tracing::debug!(
            node = %target.name, err = %err, class = %class, timeout = %timeout,
            "Failed to scrape node, timeout to access kubelet"
        ),
        (false, _) => {
            tracing::debug!(node = %target.name, err = %err, class = %class, "Failed to scrape node")
        }
    }
}
