//! The scraper's operational limits: hitting one is counted in our own counters and logged
//! once per tick at the default verbosity, and healthy nodes are still scraped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_server_kubelet::{
    AddressConfig, ErrorClass, KubeletClient, KubeletClientConfig, KubeletMetrics, NodeTarget,
    Scraper, ScraperConfig, Transport,
};
use metrics_server_test_support::{
    FakeKubelet, Listening, NodeSample, PodSample, RESOURCE_METRICS_PATH, Route,
    render_resource_metrics,
};
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

fn far() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn body(pods: usize) -> String {
    let node = NodeSample::new(357.35491, 1.616273408e9, 1_633_253_809_720);
    let pods: Vec<PodSample> = (0..pods)
        .map(|i| {
            PodSample::single(
                "default",
                &format!("pod-{i}"),
                4.7,
                1.25e7,
                1_633_253_812_125,
            )
        })
        .collect();
    render_resource_metrics(&node, &pods)
}

fn target(name: &str, kubelet: &Listening) -> NodeTarget {
    NodeTarget {
        name: name.to_owned(),
        addresses: vec![("InternalIP".into(), "127.0.0.1".into())],
        status_port: kubelet.port(),
        metrics_path_annotation: None,
        ready: true,
    }
}

fn config(max_in_flight: usize) -> ScraperConfig {
    ScraperConfig {
        address: AddressConfig {
            preferred_address_types: vec!["InternalIP".into()],
            port: 1,
            use_node_status_port: true,
        },
        max_in_flight,
        spread_per_node: Duration::ZERO,
        ..ScraperConfig::default()
    }
}

fn scraper(client: &KubeletClientConfig, max_in_flight: usize) -> (Scraper, KubeletMetrics) {
    let mut registry = Registry::default();
    let metrics = KubeletMetrics::register(&mut registry);
    let scraper = Scraper::new(
        KubeletClient::new(client).unwrap(),
        config(max_in_flight),
        Some(metrics.clone()),
    );
    (scraper, metrics)
}

/// Events logged at info or above (what `--v=0` shows), as (level, message + fields).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<(Level, String)>>>);

impl Captured {
    fn mentioning(&self, needle: &str) -> Vec<(Level, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, text)| text.contains(needle))
            .cloned()
            .collect()
    }
}

struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl Subscriber for Captured {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::INFO
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), text.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

async fn slow_kubelets(n: usize) -> Vec<Listening> {
    let mut kubelets = Vec::new();
    for _ in 0..n {
        let route = Route::ok(body(1)).with_latency(Duration::from_millis(300));
        kubelets.push(
            FakeKubelet::http()
                .route(RESOURCE_METRICS_PATH, route)
                .start()
                .await
                .unwrap(),
        );
    }
    kubelets
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_are_counted_and_logged_once_per_tick() {
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(captured.clone());
    let kubelets = slow_kubelets(3).await;
    let targets: Vec<NodeTarget> = kubelets
        .iter()
        .enumerate()
        .map(|(i, k)| target(&format!("node{i}"), k))
        .collect();
    let client = KubeletClientConfig::new(Transport::Http);

    // Room for everyone: no wait, no counter, no line.
    let (roomy, roomy_metrics) = scraper(&client, 3);
    let tick = roomy.scrape_tick(&targets, far()).await;
    assert_eq!((tick.succeeded(), tick.inflight_limit_waits), (3, 0));
    assert_eq!(roomy_metrics.inflight_limit_waits(), 0);
    assert!(
        captured
            .mentioning("--kubelet-max-requests-inflight")
            .is_empty()
    );

    // One permit for three slow nodes: the other two wait, every node still succeeds.
    let (tight, metrics) = scraper(&client, 1);
    let tick = tight.scrape_tick(&targets, far()).await;
    assert_eq!((tick.succeeded(), tick.inflight_limit_waits), (3, 2));
    assert_eq!(metrics.inflight_limit_waits(), 2);
    let lines = captured.mentioning("--kubelet-max-requests-inflight");
    assert_eq!(lines.len(), 1, "one line per tick: {lines:?}");
    assert!(lines[0].1.contains("waited=2") && lines[0].1.contains("limit=1"));

    // The counter accumulates across ticks; the log stays at one line per tick.
    tight.scrape_tick(&targets, far()).await;
    assert_eq!(metrics.inflight_limit_waits(), 4);
    assert_eq!(
        captured.mentioning("--kubelet-max-requests-inflight").len(),
        2
    );
}

#[tokio::test]
async fn bodies_over_the_cap_are_counted_and_logged_once_per_tick_while_small_ones_pass() {
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(captured.clone());
    let small = body(1);
    let large = body(200);
    let cap = small.len() * 2;
    assert!(large.len() > cap);
    let mut targets = Vec::new();
    let mut kubelets = Vec::new();
    for (name, text) in [("small", &small), ("large1", &large), ("large2", &large)] {
        let kubelet = FakeKubelet::http()
            .resource_metrics(text.clone())
            .start()
            .await
            .unwrap();
        targets.push(target(name, &kubelet));
        kubelets.push(kubelet);
    }
    let mut client = KubeletClientConfig::new(Transport::Http);
    client.max_body_bytes = cap;
    let (scraper, metrics) = scraper(&client, 8);

    let tick = scraper.scrape_tick(&targets, far()).await;
    assert!(tick.outcome("small").unwrap().result.is_ok());
    for node in ["large1", "large2"] {
        let err = tick.outcome(node).unwrap().result.as_ref().unwrap_err();
        assert_eq!(err.class(), ErrorClass::BodyTooLarge, "{node}");
    }
    assert_eq!(tick.body_limit_exceeded, 2);
    assert_eq!(metrics.body_limit_exceeded(), 2);
    let lines = captured.mentioning("--kubelet-max-body-bytes");
    assert_eq!(lines.len(), 1, "one line per tick: {lines:?}");
    assert_eq!(lines[0].0, Level::WARN);
    assert!(lines[0].1.contains("nodes=2"), "{lines:?}");
    assert!(lines[0].1.contains(&format!("limit={cap}")), "{lines:?}");
    assert_eq!(metrics.inflight_limit_waits(), 0);
}
