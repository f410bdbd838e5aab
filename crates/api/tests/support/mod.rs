//! Fakes and helpers shared by the API tests.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use metrics_server_api::{
    ApiConfig, ApiMetrics, ApiState, Clock, HealthState, LabelMap, MetricsSource, MetricsVersion,
    MetricsView, NodeMeta, PodMeta, ServedVersions, StaticCluster, router,
};
use metrics_server_core::{ContainerUsage, LabelSelector, PodUsage, ResourceUsage};
use prometheus_client::registry::Registry;
use tower::ServiceExt;

/// 2026-08-04T10:00:05Z
pub const NOW: u64 = 1_785_837_605;
/// 2026-08-04T09:59:58Z
pub const SAMPLE: u64 = 1_785_837_598;

pub fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX) * 1_000_000_000
}

/// A clock tests can move.
#[derive(Debug)]
pub struct FakeClock(pub Mutex<SystemTime>);

impl FakeClock {
    pub fn at(unix_secs: u64) -> Arc<Self> {
        Arc::new(Self(Mutex::new(
            UNIX_EPOCH + Duration::from_secs(unix_secs),
        )))
    }
    pub fn set(&self, unix_secs: u64) {
        if let Ok(mut t) = self.0.lock() {
            *t = UNIX_EPOCH + Duration::from_secs(unix_secs);
        }
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        self.0.lock().map(|t| *t).unwrap_or(UNIX_EPOCH)
    }
}

/// Metrics keyed by node name and `(namespace, name)`.
#[derive(Debug, Default)]
pub struct FakeMetrics {
    pub nodes: HashMap<String, ResourceUsage>,
    pub pods: HashMap<(String, String), PodUsage>,
    pub ready: bool,
}

impl MetricsView for FakeMetrics {
    fn node_metrics(&self, name: &str) -> Option<ResourceUsage> {
        self.nodes.get(name).copied()
    }
    fn pod_metrics(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        self.pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
    fn is_ready(&self) -> bool {
        self.ready
    }
}

/// A source whose view can be swapped.
#[derive(Debug, Default)]
pub struct FakeSource(pub Mutex<Arc<FakeMetrics>>);

impl MetricsSource for FakeSource {
    fn view(&self) -> Arc<dyn MetricsView> {
        match self.0.lock() {
            Ok(v) => v.clone(),
            Err(_) => Arc::new(FakeMetrics::default()),
        }
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> LabelMap {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn node(name: &str, l: &[(&str, &str)]) -> Arc<NodeMeta> {
    Arc::new(NodeMeta {
        name: name.to_owned(),
        labels: labels(l),
    })
}

pub fn pod(ns: &str, name: &str, l: &[(&str, &str)]) -> Arc<PodMeta> {
    Arc::new(PodMeta {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        labels: labels(l),
        created: None,
    })
}

pub fn usage(ts: i64, window_ns: i64, cpu: u64, mem: u64) -> ResourceUsage {
    ResourceUsage {
        timestamp_ns: ts,
        window_ns,
        cpu_nanocores: cpu,
        memory_bytes: mem,
    }
}

pub fn pod_usage(ts: i64, window_ns: i64, containers: &[(&str, u64, u64)]) -> PodUsage {
    PodUsage {
        timestamp_ns: ts,
        window_ns,
        containers: containers
            .iter()
            .map(|(n, c, m)| ContainerUsage {
                name: Arc::from(*n),
                usage: usage(ts, window_ns, *c, *m),
            })
            .collect(),
        skipped: Vec::new(),
    }
}

/// The standard fixture: nodes 1-5 (node4 without metrics, node5 excluded
/// by `--node-selector=skipKey!=skipValue`), pods in two namespaces.
pub fn fixture() -> (StaticCluster, FakeMetrics) {
    let cluster = StaticCluster {
        nodes: vec![
            node("node3", &[("labelKey", "otherValue")]),
            node("node1", &[("labelKey", "labelValue")]),
            node("node2", &[]),
            node("node4", &[]),
            node("node5", &[("skipKey", "skipValue")]),
        ],
        pods: vec![
            pod("ns2", "pod1", &[("app", "b")]),
            pod("ns1", "pod2", &[("app", "a")]),
            pod("ns1", "pod1", &[("app", "a"), ("tier", "web")]),
            pod("ns1", "pod3", &[]),
        ],
        error: None,
    };
    let ts = secs(SAMPLE);
    let mut metrics = FakeMetrics {
        ready: true,
        ..FakeMetrics::default()
    };
    metrics.nodes.insert(
        "node1".into(),
        usage(ts, 1_000, 10_000_000, 5 * 1024 * 1024),
    );
    metrics
        .nodes
        .insert("node2".into(), usage(ts, 2_000, 5_000_000, 5 * 1024 * 1024));
    metrics.nodes.insert(
        "node3".into(),
        usage(ts, 3_000, 1_000_000_000, 3 * 1024 * 1024),
    );
    metrics.nodes.insert(
        "node5".into(),
        usage(ts, 15_012_000_000, 152_345_678, 1_616_273_408),
    );
    metrics.pods.insert(
        ("ns1".into(), "pod1".into()),
        pod_usage(
            ts,
            1_000,
            &[
                ("c1", 4_000_000, 2 * 1024 * 1024),
                ("c2", 6_000_000, 3 * 1024 * 1024),
            ],
        ),
    );
    metrics.pods.insert(
        ("ns1".into(), "pod2".into()),
        pod_usage(ts, 2_000, &[("c", 5_000_000, 1024 * 1024)]),
    );
    metrics.pods.insert(
        ("ns2".into(), "pod1".into()),
        pod_usage(ts, 3_000, &[("c", 1_000_000_000, 3 * 1024 * 1024)]),
    );
    (cluster, metrics)
}

/// Everything a test needs.
pub struct Harness {
    pub app: Router,
    pub state: ApiState,
    pub clock: Arc<FakeClock>,
    pub source: Arc<FakeSource>,
    pub health: Arc<HealthState>,
    pub registry: Arc<Registry>,
}

pub fn harness_with(cluster: StaticCluster, metrics: FakeMetrics, config: ApiConfig) -> Harness {
    let mut registry = Registry::default();
    let api_metrics = ApiMetrics::register(&mut registry);
    let registry = Arc::new(registry);
    let clock = FakeClock::at(NOW);
    let source = Arc::new(FakeSource(Mutex::new(Arc::new(metrics))));
    let health = Arc::new(HealthState::new(Duration::from_secs(15)));
    health.set_node_informer_synced(true);
    health.set_pod_informer_synced(true);
    let state = ApiState::new(
        config,
        Arc::new(cluster),
        source.clone(),
        health.clone(),
        registry.clone(),
        api_metrics,
    )
    .with_clock(clock.clone());
    Harness {
        app: router(state.clone()),
        state,
        clock,
        source,
        health,
        registry,
    }
}

pub fn node_selector_config() -> ApiConfig {
    ApiConfig {
        node_selector: LabelSelector::parse("skipKey!=skipValue").unwrap_or_default(),
        ..ApiConfig::default()
    }
}

pub fn harness() -> Harness {
    let (c, m) = fixture();
    harness_with(c, m, node_selector_config())
}

/// [`harness`] serving only `metrics.k8s.io/v1beta1`, as upstream v0.9.0 does.
pub fn harness_v1beta1() -> Harness {
    let (c, m) = fixture();
    harness_with(
        c,
        m,
        ApiConfig {
            served_versions: ServedVersions::new(&[MetricsVersion::V1beta1]).unwrap_or_default(),
            ..node_selector_config()
        },
    )
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
    /// The body as sent.
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let resp = match app.clone().oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes: bytes.to_vec(),
    }
}

pub fn get(uri: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .body(Body::empty())
        .unwrap_or_default()
}

pub fn get_with(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap_or_default()
}

pub async fn call(app: &Router, uri: &str) -> Reply {
    send(app, get(uri)).await
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

pub fn item_names(body: &str) -> Vec<String> {
    json(body)["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    let m = &i["metadata"];
                    match m["namespace"].as_str() {
                        Some(ns) => format!("{ns}/{}", m["name"].as_str().unwrap_or("")),
                        None => m["name"].as_str().unwrap_or("").to_owned(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Median of `runs` timings, in nanoseconds.
fn median(mut v: Vec<u128>) -> u128 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0).max(1)
}

/// Asserts that one call of `large` costs at most `slack` times what `ratio`
/// calls of `small` cost together (`large`'s input being about `ratio` times
/// `small`'s). Linear work measures about 1x, quadratic about `ratio` x.
/// Medians of interleaved runs; no absolute times.
pub fn assert_cost_ratio(
    what: &str,
    ratio: usize,
    slack: u128,
    mut small: impl FnMut(),
    mut large: impl FnMut(),
) {
    const RUNS: usize = 7;
    small();
    large();
    let (mut s, mut l) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = std::time::Instant::now();
        for _ in 0..ratio {
            small();
        }
        s.push(t.elapsed().as_nanos());
        let t = std::time::Instant::now();
        large();
        l.push(t.elapsed().as_nanos());
    }
    let (s, l) = (median(s), median(l));
    assert!(
        l <= s * slack,
        "{what}: one large input took {l} ns, {ratio} small ones {s} ns (allowed {slack}x)"
    );
}

/// [`assert_cost_ratio`] for requests through a router: `small` and `large`
/// build the requests.
pub async fn assert_request_cost_ratio(
    what: &str,
    app: &Router,
    ratio: usize,
    slack: u128,
    small: impl Fn() -> Request<Body>,
    large: impl Fn() -> Request<Body>,
) {
    const RUNS: usize = 7;
    send(app, small()).await;
    send(app, large()).await;
    let (mut s, mut l) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t = std::time::Instant::now();
        for _ in 0..ratio {
            send(app, small()).await;
        }
        s.push(t.elapsed().as_nanos());
        let t = std::time::Instant::now();
        send(app, large()).await;
        l.push(t.elapsed().as_nanos());
    }
    let (s, l) = (median(s), median(l));
    assert!(
        l <= s * slack,
        "{what}: one large request took {l} ns, {ratio} small ones {s} ns (allowed {slack}x)"
    );
}

/// A request with any method and headers; panics on a URI or header that
/// `http` rejects, so a test never silently sends `GET /` instead.
pub fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).expect("a valid request")
}

/// Percent-encodes everything but unreserved characters and the few
/// sub-delimiters selectors use, for a query value.
pub fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!()*,=:@/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
