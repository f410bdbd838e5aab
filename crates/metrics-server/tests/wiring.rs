//! In-process wiring: fake kubelets (HTTPS, bearer token) behind kubelet credentials derived
//! from a kube config, nodes and pods in the real indexes, the real scrape loop and store, and
//! the API router answering with `oneshot`. No cluster.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use metrics_server::metrics::ManagerMetrics;
use metrics_server::scrape::ScrapeLoop;
use metrics_server_api::{
    ApiConfig, ApiMetrics, ApiState, ClusterView, HealthState, MetricsSource,
};
use metrics_server_core::{LabelSelector, SharedSnapshot};
use metrics_server_k8s::{Cluster, KubeletCredentialFlags};
use metrics_server_kubelet::{
    AddressConfig, KubeletClient, KubeletMetrics, Scraper, ScraperConfig,
};
use metrics_server_test_support::{FakeKubelet, NodeSample, PodSample, Route, TestPki};
use prometheus_client::registry::Registry;
use tower::ServiceExt as _;

const TOKEN: &str = "kubelet-token";
const T0_MS: i64 = 1_700_000_000_000;
const SKIP_SELECTOR: &str = "metrics-server-skip!=true";

fn path_for(node: &str) -> String {
    format!("/metrics/nodes/{node}/metrics/resource")
}

fn mk_node(name: &str, port: u16, skip: bool) -> Node {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("kubernetes.io/hostname".to_owned(), name.to_owned());
    if skip {
        labels.insert("metrics-server-skip".to_owned(), "true".to_owned());
    }
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert(
        "metrics.k8s.io/resource-metrics-path".to_owned(),
        path_for(name),
    );
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: "127.0.0.1".into(),
            }]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(port),
                }),
            }),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
    }
}

fn mk_pod(namespace: &str, name: &str) -> PartialObjectMeta<Pod> {
    PartialObjectMeta {
        types: None,
        metadata: ObjectMeta {
            namespace: Some(namespace.to_owned()),
            name: Some(name.to_owned()),
            labels: Some([("app".to_owned(), "web".to_owned())].into()),
            ..ObjectMeta::default()
        },
        _phantom: std::marker::PhantomData,
    }
}

/// node1 at `cpu` core-seconds; pod default/web at `pod_cpu`; both stamped `ts_ms`.
fn body(cpu: f64, pod_cpu: f64, ts_ms: i64) -> String {
    metrics_server_test_support::render_resource_metrics(
        &NodeSample::new(cpu, 2.0 * 1024.0 * 1024.0 * 1024.0, ts_ms),
        &[PodSample::single(
            "default",
            "web",
            pod_cpu,
            50.0 * 1024.0 * 1024.0,
            ts_ms,
        )],
    )
}

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, String) {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn after_two_ticks_the_nodes_endpoint_serves_the_cpu_rate_of_the_selected_node() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = TestPki::new().unwrap();
    let server_cert = pki.server_cert(&["127.0.0.1"]).unwrap();
    let kubelet = FakeKubelet::https(&server_cert)
        .require_bearer_token(TOKEN)
        .route(&path_for("node1"), Route::ok(body(100.0, 10.0, T0_MS)))
        .start()
        .await
        .unwrap();

    // The cluster as the watches would leave it: node1 scraped, node2 excluded by selector.
    let cluster = Cluster::new();
    cluster.with_nodes(|nodes| {
        nodes.apply(mk_node("node1", kubelet.port(), false));
        nodes.apply(mk_node("node2", 1, true));
    });
    cluster.with_pods(|pods| pods.apply(mk_pod("default", "web")));

    // Kubelet credentials exactly as the binary derives them from its kube config.
    let mut kube_config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
    kube_config.root_cert = Some(vec![pki.ca_der().to_vec()]);
    kube_config.auth_info.token = Some(secrecy::SecretString::from(TOKEN));
    let mut kubelet_config =
        metrics_server_k8s::kubelet_client_config(&kube_config, &KubeletCredentialFlags::default())
            .unwrap();
    kubelet_config.user_agent = metrics_server::runtime::user_agent();
    kubelet_config.request_timeout = Duration::from_secs(5);
    let client = KubeletClient::new(&kubelet_config).unwrap();

    let resolution = Duration::from_secs(15);
    let mut registry = Registry::default();
    let kubelet_metrics = KubeletMetrics::register(&mut registry);
    let api_metrics = ApiMetrics::register(&mut registry);
    let manager_metrics = ManagerMetrics::register(&mut registry, resolution);
    let scraper = Scraper::new(
        client,
        ScraperConfig {
            address: AddressConfig {
                preferred_address_types: vec!["InternalIP".into()],
                port: 10250,
                use_node_status_port: true,
            },
            ..ScraperConfig::default()
        },
        Some(kubelet_metrics),
    );
    let selector = LabelSelector::parse(SKIP_SELECTOR).unwrap();
    let published = Arc::new(SharedSnapshot::new());
    let health = Arc::new(HealthState::new(resolution));
    health.set_node_informer_synced(true);
    health.set_pod_informer_synced(true);
    let mut scrape_loop = ScrapeLoop::new(
        scraper,
        cluster.clone(),
        selector.clone(),
        Arc::clone(&published),
        Arc::clone(&health),
        manager_metrics,
        resolution,
    );

    let first = scrape_loop.tick().await;
    assert!(!first.is_ready(), "one point per node is not enough");
    kubelet.set_route(
        &path_for("node1"),
        Route::ok(body(105.0, 10.2, T0_MS + 10_000)),
    );
    let second = scrape_loop.tick().await;
    assert!(second.is_ready());
    let seen = kubelet.seen_requests();
    assert_eq!(seen.len(), 2, "node2 is never scraped");
    assert!(
        seen[0].headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("metrics-server/v")
    );

    let state = ApiState::new(
        ApiConfig {
            node_selector: selector,
            ..ApiConfig::default()
        },
        Arc::new(cluster) as Arc<dyn ClusterView>,
        published as Arc<dyn MetricsSource>,
        health,
        Arc::new(registry),
        api_metrics,
    );
    let router = metrics_server_api::router(state);

    let (status, text) = get(&router, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{text}");
    assert_eq!(items[0]["metadata"]["name"], "node1");
    assert_eq!(items[0]["usage"]["cpu"], "500m", "5 core-seconds over 10s");
    assert_eq!(items[0]["usage"]["memory"], "2Gi");
    assert_eq!(items[0]["window"], "10s");

    let (status, text) = get(
        &router,
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let pod: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(pod["containers"][0]["usage"]["cpu"], "20m");
    assert_eq!(pod["containers"][0]["usage"]["memory"], "50Mi");

    let (status, text) = get(&router, "/readyz?verbose").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("[+]metric-storage-ready ok"));

    let (status, text) = get(&router, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let mut families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|n| n.starts_with("metrics_server_"))
        .collect();
    families.sort_unstable();
    assert_eq!(
        families,
        [
            "metrics_server_api_metric_freshness_seconds",
            "metrics_server_kubelet_last_request_time_seconds",
            "metrics_server_kubelet_request_duration_seconds",
            "metrics_server_kubelet_request_total",
            "metrics_server_manager_tick_duration_seconds",
            "metrics_server_storage_points",
        ],
        "{text}"
    );
    assert!(text.contains("metrics_server_storage_points{type=\"node\"} 1"));
    assert!(text.contains("metrics_server_storage_points{type=\"container\"} 1"));
    assert!(text.contains("metrics_server_kubelet_request_total{success=\"true\"} 2"));
}

#[tokio::test]
async fn a_failing_kubelet_never_fails_a_tick() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubelet = FakeKubelet::http()
        .route(&path_for("node1"), Route::status(500, "boom"))
        .start()
        .await
        .unwrap();
    let cluster = Cluster::new();
    cluster.with_nodes(|nodes| {
        nodes.apply(mk_node("node1", kubelet.port(), false));
        // No listener on port 1: connection refused.
        nodes.apply(mk_node("node2", 1, false));
    });
    let client = KubeletClient::new(&metrics_server_kubelet::KubeletClientConfig::new(
        metrics_server_kubelet::Transport::Http,
    ))
    .unwrap();
    let scraper = Scraper::new(
        client,
        ScraperConfig {
            address: AddressConfig {
                preferred_address_types: vec!["InternalIP".into()],
                port: 10250,
                use_node_status_port: true,
            },
            ..ScraperConfig::default()
        },
        None,
    );
    let mut registry = Registry::default();
    let metrics = ManagerMetrics::register(&mut registry, Duration::from_secs(15));
    let health = Arc::new(HealthState::new(Duration::from_secs(15)));
    let mut scrape_loop = ScrapeLoop::new(
        scraper,
        cluster,
        LabelSelector::everything(),
        Arc::new(SharedSnapshot::new()),
        health,
        metrics,
        Duration::from_secs(15),
    );
    let snapshot = scrape_loop.tick().await;
    assert_eq!(snapshot.node_names().count(), 0);
    let text = metrics_server_api::render_text(&registry);
    assert!(text.contains("metrics_server_storage_points{type=\"node\"} 0"));
    assert!(text.contains("metrics_server_manager_tick_duration_seconds_count 1"));
}

#[test]
fn api_attributes_bridge_to_the_auth_layers_type() {
    let uri: http::Uri = "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods?labelSelector=a%3Db"
        .parse()
        .unwrap();
    match metrics_server::runtime::request_attributes(&http::Method::GET, &uri) {
        metrics_server_auth::Attributes::Resource(r) => {
            assert_eq!(r.verb, "list");
            assert_eq!(r.group, "metrics.k8s.io");
            assert_eq!(r.resource, "pods");
            assert_eq!(r.namespace, "ns");
            assert_eq!(r.label_selector.as_deref(), Some("a=b"));
        }
        other => panic!("expected resource attributes, got {other:?}"),
    }
    let uri: http::Uri = "/metrics".parse().unwrap();
    match metrics_server::runtime::request_attributes(&http::Method::GET, &uri) {
        metrics_server_auth::Attributes::NonResource(n) => {
            assert_eq!(n.path, "/metrics");
            assert_eq!(n.verb, "get");
        }
        other => panic!("expected non-resource attributes, got {other:?}"),
    }
}
