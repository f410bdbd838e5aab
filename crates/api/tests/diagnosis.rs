//! Scrape health in the API: the `/scrape-health` document (and its path under the group, for
//! the aggregator), and NotFound messages that say why while keeping upstream's reason, code and
//! details.

mod support;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use http::StatusCode;
use metrics_server_api::{NodeScrapeStatus, ScrapeDiagnosis, ScrapeFailure};
use support::{NOW, call, fixture, harness_with, node_selector_config, pod};

#[derive(Debug, Default)]
struct FakeDiagnosis(Vec<NodeScrapeStatus>);

impl ScrapeDiagnosis for FakeDiagnosis {
    fn nodes(&self) -> Vec<NodeScrapeStatus> {
        self.0.clone()
    }
    fn node(&self, name: &str) -> Option<NodeScrapeStatus> {
        self.0.iter().find(|n| n.node == name).cloned()
    }
}

fn node4_blocked(seconds_ago: u64) -> NodeScrapeStatus {
    NodeScrapeStatus {
        node: "node4".into(),
        address: Some(("InternalIP".into(), "127.0.0.81".into())),
        port: 10250,
        port_source: "flag",
        route: "direct",
        url: "https://127.0.0.81:10250/metrics/resource".into(),
        last_attempt: UNIX_EPOCH + Duration::from_secs(NOW - seconds_ago),
        last_success: None,
        consecutive_failures: 1,
        latency: Duration::from_secs(10),
        last_error: Some(ScrapeFailure {
            class: "connect_timeout",
            status_code: None,
            message: "Get \"https://127.0.0.81:10250/metrics/resource\": context deadline exceeded (while connecting)".into(),
            summary: "connect timeout to 127.0.0.81:10250".into(),
            hint: "kubelet port unreachable from metrics-server (firewall, security group or network policy)",
        }),
        direct_error: None,
    }
}

fn harness(diagnosis: FakeDiagnosis) -> support::Harness {
    let (mut cluster, metrics) = fixture();
    let mut young = (*pod("ns1", "young", &[])).clone();
    young.created = Some(UNIX_EPOCH + Duration::from_secs(NOW - 5));
    cluster.pods.push(Arc::new(young));
    let mut h = harness_with(cluster, metrics, node_selector_config());
    h.state = h.state.clone().with_diagnosis(Arc::new(diagnosis));
    h.app = metrics_server_api::router(h.state.clone());
    h
}

#[tokio::test]
async fn a_node_whose_scrape_fails_says_when_what_and_why_in_its_404() {
    let h = harness(FakeDiagnosis(vec![node4_blocked(40)]));
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes/node4").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"nodemetrics.metrics.k8s.io \\\"node4\\\" not found: last scrape failed 40s ago: connect timeout to 127.0.0.81:10250 (kubelet port unreachable from metrics-server (firewall, security group or network policy))\",\"reason\":\"NotFound\",\"details\":{\"name\":\"node4\",\"group\":\"metrics.k8s.io\",\"kind\":\"nodemetrics\"},\"code\":404}\n"
    );
}

#[tokio::test]
async fn a_node_outside_the_node_selector_says_so() {
    let (cluster, mut metrics) = fixture();
    metrics.nodes.remove("node5");
    let h = harness_with(cluster, metrics, node_selector_config());
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes/node5").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.body
            .contains("not found: the node is not scraped: it does not match --node-selector"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn pods_say_whether_they_are_new_or_which_nodes_fail() {
    let h = harness(FakeDiagnosis(vec![node4_blocked(40)]));
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods/young",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.body.contains("\"message\":\"podmetrics.metrics.k8s.io \\\"ns1/young\\\" not found: the pod was created 5s ago; first usage expected within 45s\",\"reason\":\"NotFound\",\"details\":{\"name\":\"ns1/young\",\"group\":\"metrics.k8s.io\",\"kind\":\"podmetrics\"},\"code\":404}"),
        "{}",
        r.body
    );
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods/pod3",
    )
    .await;
    assert!(
        r.body.contains("not found: no kubelet reported usage for this pod in the last scrapes; 1 node(s) fail to scrape: node4 (connect timeout to 127.0.0.81:10250)\""),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_scrape_health_document_is_served_directly_and_under_the_group() {
    let h = harness(FakeDiagnosis(vec![node4_blocked(40)]));
    let direct = call(&h.app, "/scrape-health").await;
    assert_eq!(direct.status, StatusCode::OK);
    assert_eq!(direct.header("content-type"), "application/json");
    let doc: serde_json::Value = serde_json::from_str(&direct.body).unwrap();
    assert_eq!(doc["kind"], "ScrapeHealth");
    assert_eq!(doc["metricResolution"], "15s");
    assert_eq!(doc["summary"]["failing"], 1);
    let node = &doc["nodes"][0];
    assert_eq!(node["node"], "node4");
    assert_eq!(node["address"], "127.0.0.81");
    assert_eq!(node["addressType"], "InternalIP");
    assert_eq!(node["lastError"]["class"], "connect_timeout");
    assert_eq!(node["lastSuccess"], serde_json::Value::Null);

    let grouped = call(&h.app, "/apis/metrics.k8s.io/v1beta1/scrapehealth").await;
    assert_eq!(grouped.status, StatusCode::OK);
    assert_eq!(grouped.body, direct.body);
}

#[tokio::test]
async fn the_scrape_health_path_is_not_advertised_in_discovery() {
    let h = harness(FakeDiagnosis::default());
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1").await;
    assert!(!r.body.contains("scrapehealth"), "{}", r.body);
}
