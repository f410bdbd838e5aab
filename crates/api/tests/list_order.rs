//! Pod lists served from a real snapshot are byte for byte what the former
//! path produced (look every pod up on its own, then sort the items by
//! namespace and name), whatever order the cluster cache hands pods out in,
//! on awkward names: prefixes of each other, non-ASCII, the same name in
//! several namespaces, pods cached without metrics and metrics without a
//! cached pod.

mod support;

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use metrics_server_api::{
    ApiConfig, ApiMetrics, ApiState, HealthState, LabelMap, MetricsVersion, PodItem, PodMeta,
    StaticCluster, encode_pod_metrics_list, router,
};
use metrics_server_core::exposition::PodScrape;
use metrics_server_core::rate::MetricsPoint;
use metrics_server_core::store::{Batch, SharedSnapshot, Snapshot, Store};
use metrics_server_core::{FieldSelector, LabelSelector, Rfc3339Seconds};
use prometheus_client::registry::Registry;
use support::{FakeClock, NOW, call, labels};

const S: i64 = 1_000_000_000;

fn point(ts: i64, cpu_s: u64) -> MetricsPoint {
    MetricsPoint {
        start_time_ns: (NOW as i64 - 100) * S,
        timestamp_ns: ts,
        cumulative_cpu_ns: cpu_s * 1_000_000_000,
        memory_bytes: 1 << 20,
    }
}

fn scrape(ns: &str, name: &str, ts: i64) -> PodScrape {
    PodScrape {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        containers: vec![("c".to_owned(), point(ts, (ts / S) as u64 % 1000))],
    }
}

const NAMESPACES: &[&str] = &["a", "a-", "a-b", "aa", "b", "é", "e\u{301}", "日本", "z"];
const NAMES: &[&str] = &["p", "p-", "p-1", "p1", "pé", "q", "ü", "日", "p\u{10ffff}"];

struct World {
    snapshot: Arc<Snapshot>,
    /// Cached pods in a scrambled order.
    pods: Vec<Arc<PodMeta>>,
}

/// Every (namespace, name): some scraped twice (served), some only once
/// (stored, not served), some never (cached only); plus scraped pods that
/// are not cached.
fn world() -> World {
    let (mut first, mut second) = (Batch::new(), Batch::new());
    let t1 = (NOW as i64 - 20) * S;
    let t2 = (NOW as i64 - 5) * S;
    let mut pods = Vec::new();
    for (i, ns) in NAMESPACES.iter().enumerate() {
        for (j, name) in NAMES.iter().enumerate() {
            let k = i * NAMES.len() + j;
            match k % 5 {
                0 => second.push_pod(scrape(ns, name, t2)),
                1 => {}
                _ => {
                    first.push_pod(scrape(ns, name, t1));
                    second.push_pod(scrape(ns, name, t2));
                }
            }
            if k % 7 != 3 {
                let app = ["web", "db", "web-x"][k % 3];
                pods.push(Arc::new(PodMeta {
                    namespace: (*ns).to_owned(),
                    name: (*name).to_owned(),
                    labels: labels(&[("app", app)]),
                    created: None,
                }));
            }
        }
    }
    // A fixed scramble: hash-map-like order.
    let len = pods.len();
    let mut scrambled = Vec::with_capacity(len);
    for i in 0..len {
        scrambled.push(Arc::clone(&pods[(i * 37 + 11) % len]));
    }
    let mut store = Store::new(Duration::from_secs(60));
    store.apply(first);
    World {
        snapshot: store.apply(second),
        pods: scrambled,
    }
}

fn app(world: &World, pods: Vec<Arc<PodMeta>>) -> axum::Router {
    let mut registry = Registry::default();
    let api_metrics = ApiMetrics::register(&mut registry);
    let health = Arc::new(HealthState::new(Duration::from_secs(15)));
    health.set_node_informer_synced(true);
    health.set_pod_informer_synced(true);
    let shared = SharedSnapshot::new();
    shared.publish(Arc::clone(&world.snapshot));
    let state = ApiState::new(
        ApiConfig::default(),
        Arc::new(StaticCluster {
            pods,
            ..StaticCluster::default()
        }),
        Arc::new(shared),
        health,
        Arc::new(registry),
        api_metrics,
    )
    .with_clock(FakeClock::at(NOW));
    router(state)
}

/// The former list path: filter, look each pod up, sort the items.
fn expected(
    world: &World,
    namespace: Option<&str>,
    label: &LabelSelector,
    field: &FieldSelector,
) -> Vec<u8> {
    let mut items: Vec<PodItem> = world
        .pods
        .iter()
        .filter(|p| namespace.is_none_or(|ns| p.namespace == ns))
        .filter(|p| label.matches(&p.labels as &LabelMap))
        .filter(|p| {
            field.matches(&[
                ("metadata.name", p.name.as_str()),
                ("metadata.namespace", p.namespace.as_str()),
            ])
        })
        .filter_map(|meta| {
            let usage = world.snapshot.pod_metrics(&meta.namespace, &meta.name)?;
            Some(PodItem {
                meta: Arc::clone(meta),
                usage,
            })
        })
        .collect();
    items.sort_by(|a, b| match a.meta.namespace.cmp(&b.meta.namespace) {
        Ordering::Equal => a.meta.name.cmp(&b.meta.name),
        o => o,
    });
    let created = Rfc3339Seconds(NOW as i64 * S).to_string();
    encode_pod_metrics_list(&items, &created, MetricsVersion::V1beta1)
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn pod_lists_match_the_former_lookup_and_sort_in_any_cache_order() {
    let world = world();
    let mut sorted = world.pods.clone();
    sorted.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut reversed = sorted.clone();
    reversed.reverse();
    let apps = [
        app(&world, world.pods.clone()),
        app(&world, sorted),
        app(&world, reversed),
        app(&world, Vec::new()),
    ];
    let mut cases: Vec<(Option<&str>, &str, &str)> = vec![
        (None, "", ""),
        (None, "app=web", ""),
        (None, "app!=db", ""),
        (None, "", "metadata.name=p1"),
        (None, "app=web", "metadata.namespace!=a"),
    ];
    for ns in NAMESPACES.iter().copied().chain(["missing"]) {
        cases.push((Some(ns), "", ""));
        cases.push((Some(ns), "app in (web,db)", ""));
        cases.push((Some(ns), "", "metadata.name!=p"));
    }
    let mut served = 0;
    for (i, app) in apps.iter().enumerate() {
        for (ns, label, field) in &cases {
            let path = match ns {
                Some(ns) => format!(
                    "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
                    escape(ns)
                ),
                None => "/apis/metrics.k8s.io/v1beta1/pods".to_owned(),
            };
            let uri = format!(
                "{path}?labelSelector={}&fieldSelector={}",
                escape(label),
                escape(field)
            );
            let reply = call(app, &uri).await;
            assert_eq!(reply.status, 200, "{uri}: {}", reply.body);
            let want = if i == 3 {
                expected(
                    &World {
                        snapshot: Arc::clone(&world.snapshot),
                        pods: Vec::new(),
                    },
                    *ns,
                    &LabelSelector::default(),
                    &FieldSelector::default(),
                )
            } else {
                expected(
                    &world,
                    *ns,
                    &LabelSelector::parse(label).unwrap_or_default(),
                    &FieldSelector::parse(field).unwrap_or_default(),
                )
            };
            assert_eq!(
                String::from_utf8_lossy(&reply.bytes),
                String::from_utf8_lossy(&want),
                "{uri}"
            );
            served += support::item_names(&reply.body).len();
        }
    }
    // The cases do serve pods (not only empty lists).
    assert!(served > 100, "{served}");
}
