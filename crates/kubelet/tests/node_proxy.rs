//! The opt-in node-proxy fallback: a node whose kubelet port is unreachable is scraped through
//! kube-apiserver's node proxy, per node, and goes back to direct scrapes once direct works.
//!
//! kube-apiserver is stood in for by a recording [`NodeProxy`] here (one module under test); the
//! real node proxy is exercised by the e2e suite on the local cluster.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use metrics_server_kubelet::{
    AddressConfig, ErrorClass, Fetched, KubeletClient, KubeletClientConfig, NodeProxy, NodeTarget,
    ProxyFuture, Route, ScrapeError, Scraper, ScraperConfig, Transport,
};
use metrics_server_test_support::{FakeKubelet, NodeSample, PodSample, render_resource_metrics};
use tokio::time::Instant;

fn body() -> String {
    let node = NodeSample::new(357.35, 1.6e9, 1_633_253_809_720);
    let pod = PodSample::single("default", "web-1", 4.7, 1.25e7, 1_633_253_812_125);
    render_resource_metrics(&node, &[pod])
}

/// Records the paths asked for and answers each with the healthy body.
#[derive(Debug, Default)]
struct RecordingProxy {
    paths: Mutex<Vec<String>>,
}

impl RecordingProxy {
    fn calls(&self) -> Vec<String> {
        self.paths
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl NodeProxy for RecordingProxy {
    fn get<'a>(&'a self, path: &'a str, _deadline: Instant) -> ProxyFuture<'a> {
        Box::pin(async move {
            self.paths
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(path.to_owned());
            Ok(Fetched {
                body: Bytes::from(body()),
                request_time: SystemTime::now(),
                http2: false,
            })
        })
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:6443{path}")
    }
}

/// A loopback port with nothing listening (connections are refused).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn node(port: u16) -> NodeTarget {
    NodeTarget {
        name: "node1".into(),
        addresses: vec![("InternalIP".into(), "127.0.0.1".into())],
        status_port: port,
        metrics_path_annotation: None,
        ready: true,
    }
}

fn scraper(proxy: Option<Arc<RecordingProxy>>) -> Scraper {
    let client = KubeletClient::new(&KubeletClientConfig {
        request_timeout: Duration::from_secs(2),
        ..KubeletClientConfig::new(Transport::Http)
    })
    .unwrap();
    let config = ScraperConfig {
        address: AddressConfig {
            preferred_address_types: vec!["InternalIP".into()],
            port: 1,
            use_node_status_port: true,
        },
        spread_per_node: Duration::ZERO,
        ..ScraperConfig::default()
    };
    let scraper = Scraper::new(client, config, None);
    match proxy {
        Some(p) => {
            let (scraper, set) = scraper.with_node_proxy(p);
            assert!(set);
            scraper
        }
        None => scraper,
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn an_unreachable_port_is_scraped_through_the_proxy_then_direct_again() {
    let proxy = Arc::new(RecordingProxy::default());
    let scraper = scraper(Some(Arc::clone(&proxy)));
    let blocked = node(closed_port());

    let tick = scraper
        .scrape_tick(std::slice::from_ref(&blocked), far())
        .await;
    let outcome = tick.outcome("node1").unwrap();
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(
        proxy.calls(),
        ["/api/v1/nodes/node1/proxy/metrics/resource"]
    );
    let health = scraper.health().get("node1").unwrap();
    assert_eq!(health.route, Route::NodeProxy);
    assert_eq!(
        health.url,
        "https://127.0.0.1:6443/api/v1/nodes/node1/proxy/metrics/resource"
    );
    assert_eq!(
        health.direct_error.as_ref().map(|e| e.0),
        Some(ErrorClass::ConnectRefused)
    );
    assert_eq!((health.last_error, health.consecutive_failures), (None, 0));

    // Still blocked: the proxy keeps serving, direct is retried alongside.
    let tick = scraper
        .scrape_tick(std::slice::from_ref(&blocked), far())
        .await;
    assert!(tick.outcome("node1").unwrap().result.is_ok());
    assert_eq!(proxy.calls().len(), 2);

    // The port opens: direct wins and the proxy is no longer asked after that tick.
    let kubelet = FakeKubelet::http()
        .resource_metrics(body())
        .start()
        .await
        .unwrap();
    let open = node(kubelet.port());
    let tick = scraper
        .scrape_tick(std::slice::from_ref(&open), far())
        .await;
    assert!(tick.outcome("node1").unwrap().result.is_ok());
    let health = scraper.health().get("node1").unwrap();
    assert_eq!((health.route, health.direct_error), (Route::Direct, None));
    let calls = proxy.calls().len();
    scraper.scrape_tick(&[open], far()).await;
    assert_eq!(
        proxy.calls().len(),
        calls,
        "direct again: no proxied request"
    );
    assert_eq!(kubelet.requests(), 2);
}

#[tokio::test]
async fn without_the_fallback_an_unreachable_port_fails_the_node() {
    let scraper = scraper(None);
    let tick = scraper.scrape_tick(&[node(closed_port())], far()).await;
    let err = tick.outcome("node1").unwrap().result.as_ref().unwrap_err();
    assert!(matches!(err, ScrapeError::ConnectRefused { .. }), "{err}");
    let health = scraper.health().get("node1").unwrap();
    assert_eq!(health.route, Route::Direct);
    assert_eq!(
        health.last_error.as_ref().map(|e| e.0),
        Some(ErrorClass::ConnectRefused)
    );
}

#[tokio::test]
async fn other_failures_do_not_switch_to_the_proxy() {
    let proxy = Arc::new(RecordingProxy::default());
    let scraper = scraper(Some(Arc::clone(&proxy)));
    let kubelet = FakeKubelet::http()
        .route(
            "/metrics/resource",
            metrics_server_test_support::Route::status(500, "boom"),
        )
        .start()
        .await
        .unwrap();
    let tick = scraper.scrape_tick(&[node(kubelet.port())], far()).await;
    let err = tick.outcome("node1").unwrap().result.as_ref().unwrap_err();
    assert_eq!(err.class(), ErrorClass::HttpStatus(500));
    assert!(
        proxy.calls().is_empty(),
        "a kubelet that answers is not bypassed"
    );
}
