//! The list-pods request path through the real router: 30,000 running pods
//! (1,000 nodes x 30, 10 namespaces, the two Deployment labels each) looked
//! up in a real `Snapshot` after two ticks. Cases: all namespaces, one
//! namespace, a label selector, a field selector.
//!
//! `handler` stops at the response head (cache list, snapshot lookups,
//! ordering; the JSON body is encoded lazily while streaming), `full`
//! also drains the body. The pods come from a stand-in for the k8s crate's
//! `PodIndex` in two orders: `hash` (what a `HashMap` index hands out) and
//! `sorted` (namespace, then name).
//!
//! `cargo bench -p metrics-server-api --bench list_pods`; on a busy machine
//! `LIST_CPU_BATCHES=<n>` times batches by on-CPU time instead of divan;
//! `LIST_ONLY=<text>` keeps only the rows whose name contains it (for
//! profiling one case).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use divan::{Bencher, black_box};
use http::Request;
use http_body_util::BodyExt;
use metrics_server_api::{
    ApiConfig, ApiMetrics, ApiState, ClusterError, ClusterView, HealthState, LabelFilter, NodeMeta,
    PodMeta, router,
};
use metrics_server_core::{SharedSnapshot, Snapshot, Store};
use prometheus_client::registry::Registry;
use tower::ServiceExt;

#[path = "support/cpu_time.rs"]
mod cpu_time;
#[path = "../../core/benches/support/mod.rs"]
mod support;
use support::{Cluster, Shape};

/// How the stand-in index hands out pods.
#[derive(Clone, Copy, Debug)]
enum Order {
    Hash,
    Sorted,
}

const ORDERS: [Order; 2] = [Order::Hash, Order::Sorted];

const CASES: [(&str, &str); 4] = [
    ("all", "/apis/metrics.k8s.io/v1beta1/pods"),
    (
        "namespace",
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns-3/pods",
    ),
    (
        "label",
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Ddeployment-7",
    ),
    (
        "field",
        "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.namespace%3Dns-3",
    ),
];

/// Running pods by namespace, then name, like the k8s crate's index.
enum Index {
    Hash(HashMap<String, HashMap<String, Arc<PodMeta>>>),
    Sorted(BTreeMap<String, BTreeMap<String, Arc<PodMeta>>>),
}

impl Index {
    fn new(order: Order, pods: &[Arc<PodMeta>]) -> Self {
        match order {
            Order::Hash => {
                let mut m: HashMap<String, HashMap<String, Arc<PodMeta>>> = HashMap::new();
                for p in pods {
                    m.entry(p.namespace.clone())
                        .or_default()
                        .insert(p.name.clone(), Arc::clone(p));
                }
                Self::Hash(m)
            }
            Order::Sorted => {
                let mut m: BTreeMap<String, BTreeMap<String, Arc<PodMeta>>> = BTreeMap::new();
                for p in pods {
                    m.entry(p.namespace.clone())
                        .or_default()
                        .insert(p.name.clone(), Arc::clone(p));
                }
                Self::Sorted(m)
            }
        }
    }
}

impl ClusterView for Index {
    fn list_nodes(&self, _: LabelFilter<'_>) -> Result<Vec<Arc<NodeMeta>>, ClusterError> {
        Ok(Vec::new())
    }

    fn get_node(&self, _: &str) -> Result<Option<Arc<NodeMeta>>, ClusterError> {
        Ok(None)
    }

    fn list_pods(
        &self,
        namespace: Option<&str>,
        filter: LabelFilter<'_>,
    ) -> Result<Vec<Arc<PodMeta>>, ClusterError> {
        let keep = |p: &&Arc<PodMeta>| filter(&p.labels);
        Ok(match (self, namespace) {
            (Self::Hash(m), Some(ns)) => m
                .get(ns)
                .map(|n| n.values().filter(keep).cloned().collect())
                .unwrap_or_default(),
            (Self::Hash(m), None) => m
                .values()
                .flat_map(HashMap::values)
                .filter(keep)
                .cloned()
                .collect(),
            (Self::Sorted(m), Some(ns)) => m
                .get(ns)
                .map(|n| n.values().filter(keep).cloned().collect())
                .unwrap_or_default(),
            (Self::Sorted(m), None) => m
                .values()
                .flat_map(BTreeMap::values)
                .filter(keep)
                .cloned()
                .collect(),
        })
    }

    fn get_pod(&self, _: &str, _: &str) -> Result<Option<Arc<PodMeta>>, ClusterError> {
        Ok(None)
    }
}

struct Setup {
    app: Router,
    rt: tokio::runtime::Runtime,
}

impl Setup {
    fn new(order: Order) -> Self {
        let cluster = Cluster::new(Shape::new("pods_30000", 1000, 30, 100, 10, 2));
        let mut store = Store::new(Duration::from_secs(60));
        store.apply(cluster.batch(0));
        let snapshot: Arc<Snapshot> = store.apply(cluster.batch(1));
        let shared = SharedSnapshot::new();
        shared.publish(snapshot);
        let pods: Vec<Arc<PodMeta>> = cluster
            .pods
            .iter()
            .map(|p| {
                Arc::new(PodMeta {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    labels: BTreeMap::from([
                        ("app".to_owned(), format!("deployment-{}", p.deployment)),
                        ("pod-template-hash".to_owned(), p.template_hash.clone()),
                    ]),
                    created: None,
                })
            })
            .collect();
        let mut registry = Registry::default();
        let api_metrics = ApiMetrics::register(&mut registry);
        let health = Arc::new(HealthState::new(Duration::from_secs(15)));
        health.set_node_informer_synced(true);
        health.set_pod_informer_synced(true);
        let state = ApiState::new(
            ApiConfig::default(),
            Arc::new(Index::new(order, &pods)),
            Arc::new(shared),
            health,
            Arc::new(registry),
            api_metrics,
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        Self {
            app: router(state),
            rt,
        }
    }

    /// One request; with `drain`, the body too. Returns the status (and the
    /// body length when drained).
    fn call(&self, uri: &str, drain: bool) -> usize {
        self.rt.block_on(async {
            let req = Request::builder()
                .uri(uri)
                .body(Body::empty())
                .expect("request");
            let Ok(resp) = self.app.clone().oneshot(req).await;
            let status = usize::from(resp.status().as_u16());
            if !drain {
                return status;
            }
            resp.into_body()
                .collect()
                .await
                .map(|c| c.to_bytes().len())
                .unwrap_or(0)
        })
    }
}

fn main() {
    if let Some(n) = std::env::var("LIST_CPU_BATCHES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        cpu_time_report(n);
        return;
    }
    divan::main();
}

/// Batches of about 0.2 s of calls timed by on-CPU time; prints the per-call
/// figure of the best and the median batch.
#[allow(clippy::print_stdout)]
fn cpu_time_report(n: u32) {
    let only = std::env::var("LIST_ONLY").unwrap_or_default();
    for order in ORDERS {
        let setup = Setup::new(order);
        for (name, uri) in CASES {
            for drain in [false, true] {
                let what = if drain { "full" } else { "handler" };
                if !format!("{order:?}/{name}/{what}").contains(&only) {
                    continue;
                }
                let bytes = black_box(setup.call(uri, true));
                let Some((min, median, per_batch)) =
                    cpu_time::per_call_cpu_ns(n, || setup.call(uri, drain))
                else {
                    println!("{name}: no CPU time available");
                    continue;
                };
                println!(
                    "{order:?}/{name}/{what}: on-CPU per call, best batch {:.3} ms, median batch {:.3} ms; {n} batches of {per_batch}; body {bytes} bytes",
                    min / 1e6,
                    median / 1e6,
                );
            }
        }
    }
}

/// Response head only: the work `list_pods` does before streaming.
#[divan::bench(args = ORDERS, consts = [0, 1, 2, 3], sample_count = 30)]
fn handler<const CASE: usize>(bencher: Bencher<'_, '_>, order: Order) {
    let setup = Setup::new(order);
    let uri = CASES[CASE].1;
    bencher.bench_local(|| setup.call(black_box(uri), false));
}

/// The whole response, body drained.
#[divan::bench(args = ORDERS, consts = [0, 1, 2, 3], sample_count = 30)]
fn full<const CASE: usize>(bencher: Bencher<'_, '_>, order: Order) {
    let setup = Setup::new(order);
    let uri = CASES[CASE].1;
    bencher.bench_local(|| setup.call(black_box(uri), true));
}
