//! Scraper against fake kubelets on 127.0.0.1 (spec J.2 C1–C6 plus TLS, auth and pooling).

use std::time::Duration;

use metrics_server_kubelet::{
    AddressConfig, ClientCert, ErrorClass, HttpVersion, KubeletClient, KubeletClientConfig,
    KubeletMetrics, NodeTarget, PemSource, ScrapeError, Scraper, ScraperConfig, ServerVerification,
    TlsFailure, TlsSettings, TokenSource, Transport,
};
use metrics_server_test_support::{
    FakeKubelet, Listening, NodeSample, PemDir, PodSample, RESOURCE_METRICS_PATH, Route, TestPki,
    render_resource_metrics,
};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

const TOKEN: &str = "s3cret-token";
const USER_AGENT: &str = "metrics-server/v0.9.0 (linux/amd64) kubernetes/test";

/// A far tick deadline for tests that are not about tick timing.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn body(pods: usize) -> String {
    let node = NodeSample::new(357.35491, 1.616273408e9, 1_633_253_809_720);
    let pods: Vec<PodSample> = (0..pods)
        .map(|i| {
            PodSample::single(
                "kube-system",
                &format!("pod-{i}"),
                4.7 + i as f64,
                1.25e7,
                1_633_253_812_125,
            )
        })
        .collect();
    render_resource_metrics(&node, &pods)
}

/// A node whose kubelet is the fake at `kubelet` (addressed by InternalIP + status port).
fn target(name: &str, kubelet: &Listening) -> NodeTarget {
    NodeTarget {
        name: name.to_owned(),
        addresses: vec![
            ("Hostname".into(), format!("{name}.invalid")),
            ("InternalIP".into(), "127.0.0.1".into()),
        ],
        status_port: kubelet.port(),
        metrics_path_annotation: None,
        ready: true,
    }
}

fn scraper_config() -> ScraperConfig {
    ScraperConfig {
        address: AddressConfig {
            preferred_address_types: vec!["InternalIP".into()],
            port: 1,
            use_node_status_port: true,
        },
        spread_per_node: Duration::ZERO,
        ..ScraperConfig::default()
    }
}

/// PKI + files for an HTTPS client config.
struct Tls {
    pki: TestPki,
    dir: PemDir,
}

impl Tls {
    fn new() -> Self {
        let pki = TestPki::new().unwrap();
        let dir = PemDir::new().unwrap();
        dir.write("ca.crt", pki.ca_pem()).unwrap();
        dir.write("token", format!("{TOKEN}\n")).unwrap();
        Self { pki, dir }
    }

    fn loopback_kubelet(&self) -> FakeKubelet {
        FakeKubelet::https(&self.pki.server_cert(&["127.0.0.1", "localhost"]).unwrap())
    }

    fn client_config(&self, verification: ServerVerification) -> KubeletClientConfig {
        KubeletClientConfig {
            token: TokenSource::File {
                path: self.dir.path().join("token"),
                refresh: Duration::from_secs(60),
            },
            user_agent: USER_AGENT.into(),
            ..KubeletClientConfig::new(Transport::Https(TlsSettings {
                verification,
                client_cert: None,
            }))
        }
    }

    fn verifying(&self) -> KubeletClientConfig {
        self.client_config(ServerVerification::Ca(PemSource::File(
            self.dir.path().join("ca.crt"),
        )))
    }
}

fn scraper(config: &KubeletClientConfig) -> Scraper {
    Scraper::new(KubeletClient::new(config).unwrap(), scraper_config(), None)
}

fn scraper_with_metrics(config: &KubeletClientConfig) -> (Scraper, KubeletMetrics) {
    let mut registry = Registry::default();
    let metrics = KubeletMetrics::register(&mut registry);
    let s = Scraper::new(
        KubeletClient::new(config).unwrap(),
        scraper_config(),
        Some(metrics.clone()),
    );
    (s, metrics)
}

fn err_of<'a>(result: &'a metrics_server_kubelet::TickResult, node: &str) -> &'a ScrapeError {
    match &result
        .outcome(node)
        .unwrap_or_else(|| panic!("no outcome for {node}"))
        .result
    {
        Ok(_) => panic!("{node} unexpectedly succeeded"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_verified_https_scrape_sends_the_token_and_decodes_the_node() {
    let tls = Tls::new();
    let kubelet = tls
        .loopback_kubelet()
        .require_bearer_token(TOKEN)
        .resource_metrics(body(3))
        .start()
        .await
        .unwrap();
    let s = scraper(&tls.verifying());

    let result = s.scrape_tick(&[target("node1", &kubelet)], far()).await;
    let outcome = result.outcome("node1").unwrap();
    let scrape = outcome.result.as_ref().unwrap();
    let node = scrape.node.unwrap();
    assert_eq!(node.cumulative_cpu_ns, 357_354_910_000);
    assert_eq!(node.memory_bytes, 1_616_273_408);
    assert_eq!(node.timestamp_ns, 1_633_253_809_720_000_000);
    assert_eq!(scrape.pods.len(), 3);
    assert!(!outcome.incomplete);

    let seen = &kubelet.seen_requests()[0];
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, RESOURCE_METRICS_PATH);
    assert_eq!(
        seen.version, "HTTP/1.1",
        "HTTP/1.1 by default, though the kubelet offers h2"
    );
    assert_eq!(seen.headers["user-agent"], USER_AGENT);
    assert_eq!(seen.headers["authorization"], format!("Bearer {TOKEN}"));
    assert!(
        seen.headers.get("accept").is_none(),
        "no Accept header, like upstream"
    );

    let batch = result.into_batch();
    assert_eq!((batch.node_count(), batch.pod_count()), (1, 3));
    let health = s.health().get("node1").unwrap();
    assert_eq!(health.consecutive_failures, 0);
    assert!(health.last_success.is_some());
}

#[tokio::test]
async fn a_wrong_token_is_a_401_status_error() {
    let tls = Tls::new();
    let kubelet = tls
        .loopback_kubelet()
        .require_bearer_token("another-token")
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let s = scraper(&tls.verifying());
    let result = s.scrape_tick(&[target("node1", &kubelet)], far()).await;
    let err = err_of(&result, "node1");
    assert_eq!(err.class(), ErrorClass::HttpStatus(401));
    assert_eq!(
        err.to_string(),
        r#"request failed, status: "401 Unauthorized""#
    );
}

#[tokio::test]
async fn a_certificate_without_the_url_host_fails_verification_but_passes_in_insecure_mode() {
    let tls = Tls::new();
    let kubelet = FakeKubelet::https(&tls.pki.server_cert(&["kubelet.example"]).unwrap())
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let targets = [target("node1", &kubelet)];

    let verifying = scraper(&tls.verifying()).scrape_tick(&targets, far()).await;
    let err = err_of(&verifying, "node1");
    assert_eq!(
        err.class(),
        ErrorClass::Tls(TlsFailure::NameMismatch),
        "{err}"
    );
    assert!(err.to_string().contains("certificate"), "{err}");

    let insecure = scraper(&tls.client_config(ServerVerification::Insecure))
        .scrape_tick(&targets, far())
        .await;
    assert!(insecure.outcome("node1").unwrap().result.is_ok());
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_a_tls_error() {
    let tls = Tls::new();
    let other = TestPki::new().unwrap();
    let kubelet = FakeKubelet::https(&other.server_cert(&["127.0.0.1"]).unwrap())
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let result = scraper(&tls.verifying())
        .scrape_tick(&[target("node1", &kubelet)], far())
        .await;
    assert_eq!(
        err_of(&result, "node1").class(),
        ErrorClass::Tls(TlsFailure::UnknownAuthority)
    );
}

#[tokio::test]
async fn a_kubelet_requiring_client_certificates_accepts_only_a_configured_one() {
    let tls = Tls::new();
    let kubelet = tls
        .loopback_kubelet()
        .require_client_cert(&tls.pki.ca_pem())
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let targets = [target("node1", &kubelet)];

    let without = scraper(&tls.verifying()).scrape_tick(&targets, far()).await;
    let err = err_of(&without, "node1");
    assert_eq!(err.class(), ErrorClass::Tls(TlsFailure::Handshake), "{err}");

    let client = tls.pki.client_cert("metrics-server", &[]).unwrap();
    let (cert, key) = tls.dir.write_cert("client", &client).unwrap();
    let mut config = tls.verifying();
    config.transport = Transport::Https(TlsSettings {
        verification: ServerVerification::Ca(PemSource::Inline(tls.pki.ca_pem().into_bytes())),
        client_cert: Some(ClientCert {
            cert: PemSource::File(cert),
            key: PemSource::File(key),
        }),
    });
    let with = scraper(&config).scrape_tick(&targets, far()).await;
    assert!(with.outcome("node1").unwrap().result.is_ok());
}

#[tokio::test]
async fn plain_http_mode_sends_no_credentials() {
    let kubelet = FakeKubelet::http()
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let config = KubeletClientConfig {
        token: TokenSource::Static(TOKEN.into()),
        ..KubeletClientConfig::new(Transport::Http)
    };
    let result = scraper(&config)
        .scrape_tick(&[target("node1", &kubelet)], far())
        .await;
    assert!(result.outcome("node1").unwrap().result.is_ok());
    assert!(
        kubelet.seen_requests()[0]
            .headers
            .get("authorization")
            .is_none()
    );
}

#[tokio::test]
async fn a_non_200_reply_fails_only_that_node_and_counts_a_failed_request() {
    let tls = Tls::new();
    let good = tls
        .loopback_kubelet()
        .resource_metrics(body(2))
        .start()
        .await
        .unwrap();
    let bad = tls
        .loopback_kubelet()
        .route(RESOURCE_METRICS_PATH, Route::status(500, "boom"))
        .start()
        .await
        .unwrap();
    let (s, metrics) = scraper_with_metrics(&tls.verifying());

    let result = s
        .scrape_tick(&[target("good", &good), target("bad", &bad)], far())
        .await;
    assert_eq!((result.succeeded(), result.failed()), (1, 1));
    let err = err_of(&result, "bad");
    assert_eq!(
        err.to_string(),
        r#"request failed, status: "500 Internal Server Error""#
    );
    assert_eq!(metrics.request_count(false), 1);
    assert_eq!(metrics.request_count(true), 1);
    let health = s.health().get("bad").unwrap();
    assert_eq!(health.last_error.unwrap().0, ErrorClass::HttpStatus(500));
    assert_eq!(health.consecutive_failures, 1);

    let batch = result.into_batch();
    assert_eq!((batch.node_count(), batch.pod_count()), (1, 2));
}

#[tokio::test]
async fn a_malformed_body_fails_only_that_node_with_a_decode_error() {
    let tls = Tls::new();
    let good = tls
        .loopback_kubelet()
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let broken = format!(
        "{}node_cpu_usage_seconds_total 1 -62135596800000\n",
        body(1)
    );
    let bad = tls
        .loopback_kubelet()
        .resource_metrics(broken)
        .start()
        .await
        .unwrap();

    let result = scraper(&tls.verifying())
        .scrape_tick(&[target("good", &good), target("bad", &bad)], far())
        .await;
    let err = err_of(&result, "bad");
    assert_eq!(err.class(), ErrorClass::Decode);
    assert!(err.to_string().contains("line "), "{err}");
    assert!(result.outcome("good").unwrap().result.is_ok());
    assert_eq!(result.into_batch().node_count(), 1);
}

#[tokio::test]
async fn a_node_reporting_zero_cpu_keeps_its_pods_but_not_its_node_point() {
    let tls = Tls::new();
    let node = NodeSample::new(0.0, 1e9, 1_633_253_809_720);
    let pods = [PodSample::single("ns", "p", 1.0, 1e6, 1_633_253_809_720)];
    let kubelet = tls
        .loopback_kubelet()
        .resource_metrics(render_resource_metrics(&node, &pods))
        .start()
        .await
        .unwrap();
    let (s, metrics) = scraper_with_metrics(&tls.verifying());

    let result = s.scrape_tick(&[target("node1", &kubelet)], far()).await;
    let outcome = result.outcome("node1").unwrap();
    assert!(outcome.incomplete);
    assert!(outcome.result.as_ref().unwrap().node.is_none());
    assert_eq!(
        metrics.request_count(true),
        1,
        "upstream counts it as a successful request"
    );
    assert_eq!(
        s.health().get("node1").unwrap().last_error.unwrap().0,
        ErrorClass::Incomplete
    );
    let batch = result.into_batch();
    assert_eq!((batch.node_count(), batch.pod_count()), (0, 1));
}

#[tokio::test]
async fn a_body_over_the_cap_is_rejected() {
    let tls = Tls::new();
    let kubelet = tls
        .loopback_kubelet()
        .resource_metrics(body(50))
        .start()
        .await
        .unwrap();
    let mut config = tls.verifying();
    config.max_body_bytes = 1024;
    let result = scraper(&config)
        .scrape_tick(&[target("node1", &kubelet)], far())
        .await;
    assert_eq!(err_of(&result, "node1").class(), ErrorClass::BodyTooLarge);
}

#[tokio::test]
async fn a_node_without_a_matching_address_is_skipped_and_others_still_work() {
    let tls = Tls::new();
    let kubelet = tls
        .loopback_kubelet()
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let mut lost = target("lost", &kubelet);
    lost.addresses = vec![("ExternalIP".into(), "127.0.0.1".into())];
    let (s, metrics) = scraper_with_metrics(&tls.verifying());

    let result = s
        .scrape_tick(&[lost, target("node1", &kubelet)], far())
        .await;
    let err = err_of(&result, "lost");
    assert_eq!(err.class(), ErrorClass::NoAddress);
    assert_eq!(err.to_string(), "no address matched types [InternalIP]");
    assert!(result.outcome("node1").unwrap().result.is_ok());
    assert_eq!(metrics.request_count(false), 1);
}

/// The sink gets each finished node with its target index; what it takes out is gone from the
/// tick's result, the rest stays.
#[tokio::test]
async fn the_sink_sees_every_outcome_with_its_target_index_and_may_take_the_scrape() {
    let tls = Tls::new();
    let up = tls
        .loopback_kubelet()
        .resource_metrics(body(2))
        .start()
        .await
        .unwrap();
    let gone = tls.loopback_kubelet().start().await.unwrap();
    let mut down = target("node1", &gone);
    drop(gone);
    tokio::time::sleep(Duration::from_millis(20)).await;
    down.ready = false;
    let targets = [target("node0", &up), down, target("node2", &up)];

    let mut seen = Vec::new();
    let result = scraper(&tls.verifying())
        .scrape_tick_with(&targets, far(), |index, outcome| {
            seen.push((index, outcome.node.clone(), outcome.result.is_ok()));
            if let (0, Ok(scrape)) = (index, &mut outcome.result) {
                assert_eq!(std::mem::take(scrape).pods.len(), 2);
            }
        })
        .await;
    seen.sort();
    let expected = [(0, "node0", true), (1, "node1", false), (2, "node2", true)]
        .map(|(i, n, ok)| (i, n.to_owned(), ok));
    assert_eq!(seen, expected);
    let pods = |node: &str| {
        result
            .outcome(node)
            .unwrap()
            .result
            .as_ref()
            .unwrap()
            .pods
            .len()
    };
    assert_eq!((pods("node0"), pods("node2")), (0, 2));
    assert_eq!(result.succeeded(), 2);
}

#[tokio::test]
async fn a_closed_port_is_connect_refused() {
    let tls = Tls::new();
    let kubelet = tls.loopback_kubelet().start().await.unwrap();
    let mut t = target("node1", &kubelet);
    drop(kubelet);
    // Nothing listens there any more (the listener was dropped with the fake).
    tokio::time::sleep(Duration::from_millis(20)).await;
    t.ready = false;
    let result = scraper(&tls.verifying()).scrape_tick(&[t], far()).await;
    assert_eq!(err_of(&result, "node1").class(), ErrorClass::ConnectRefused);
}

#[tokio::test]
async fn a_listener_that_never_answers_the_handshake_is_a_connect_timeout() {
    let tls = Tls::new();
    // Accepted by the kernel backlog, but nobody ever speaks TLS on it.
    let silent = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = silent.local_addr().unwrap().port();
    let t = NodeTarget {
        name: "node1".into(),
        addresses: vec![("InternalIP".into(), "127.0.0.1".into())],
        status_port: port,
        metrics_path_annotation: None,
        ready: true,
    };
    let mut config = tls.verifying();
    config.request_timeout = Duration::from_millis(200);
    let result = scraper(&config).scrape_tick(&[t], far()).await;
    let err = err_of(&result, "node1");
    assert_eq!(err.class(), ErrorClass::ConnectTimeout, "{err}");
    assert!(err.is_deadline());
}

/// J.2 C1 (scaled down 10x): per-node timeout 300ms, one node takes 400ms, the others
/// 200ms: the tick takes about 300ms and the slow node is absent.
#[tokio::test]
async fn a_slow_node_times_out_alone_and_bounds_the_tick_by_the_request_timeout() {
    let tls = Tls::new();
    let mut kubelets = Vec::new();
    for latency in [200, 200, 400] {
        let route = Route::ok(body(1)).with_latency(Duration::from_millis(latency));
        kubelets.push(
            tls.loopback_kubelet()
                .route(RESOURCE_METRICS_PATH, route)
                .start()
                .await
                .unwrap(),
        );
    }
    let targets: Vec<NodeTarget> = kubelets
        .iter()
        .enumerate()
        .map(|(i, k)| target(&format!("node{i}"), k))
        .collect();
    let mut config = tls.verifying();
    config.request_timeout = Duration::from_millis(300);
    let s = scraper(&config);

    let start = Instant::now();
    let result = s.scrape_tick(&targets, far()).await;
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(280), "tick took {took:?}");
    assert!(took < Duration::from_millis(900), "tick took {took:?}");
    assert!(result.outcome("node0").unwrap().result.is_ok());
    assert!(result.outcome("node1").unwrap().result.is_ok());
    let err = err_of(&result, "node2");
    assert_eq!(err.class(), ErrorClass::Timeout, "{err}");
    assert!(
        err.to_string().ends_with("context deadline exceeded"),
        "{err}"
    );
    assert_eq!(result.into_batch().node_count(), 2);
}

/// J.2 C1 (scaled down 5x): tick deadline 200ms, request timeout 5s, every node slow: the
/// tick returns after about 200ms with no nodes.
#[tokio::test]
async fn the_tick_deadline_cuts_every_slow_node_short() {
    let tls = Tls::new();
    let mut kubelets = Vec::new();
    for _ in 0..3 {
        let route = Route::ok(body(1)).with_latency(Duration::from_secs(1));
        kubelets.push(
            tls.loopback_kubelet()
                .route(RESOURCE_METRICS_PATH, route)
                .start()
                .await
                .unwrap(),
        );
    }
    let targets: Vec<NodeTarget> = kubelets
        .iter()
        .enumerate()
        .map(|(i, k)| target(&format!("node{i}"), k))
        .collect();
    let mut config = tls.verifying();
    config.request_timeout = Duration::from_secs(5);
    let s = scraper(&config);

    let start = Instant::now();
    let result = s
        .scrape_tick(&targets, start + Duration::from_millis(200))
        .await;
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(190), "tick took {took:?}");
    assert!(took < Duration::from_millis(800), "tick took {took:?}");
    assert_eq!(result.succeeded(), 0);
    assert_eq!(result.into_batch().node_count(), 0);
}

#[tokio::test]
async fn connections_are_reused_across_ticks() {
    let tls = Tls::new();
    let mut kubelets = Vec::new();
    for _ in 0..3 {
        kubelets.push(
            tls.loopback_kubelet()
                .resource_metrics(body(1))
                .start()
                .await
                .unwrap(),
        );
    }
    let targets: Vec<NodeTarget> = kubelets
        .iter()
        .enumerate()
        .map(|(i, k)| target(&format!("node{i}"), k))
        .collect();
    let s = scraper(&tls.verifying());
    for _ in 0..2 {
        let result = s.scrape_tick(&targets, far()).await;
        assert_eq!(result.succeeded(), 3);
    }
    for k in &kubelets {
        assert_eq!((k.connections(), k.requests()), (1, 2));
    }
}

#[tokio::test]
async fn the_in_flight_bound_serialises_requests() {
    let tls = Tls::new();
    let mut kubelets = Vec::new();
    for _ in 0..3 {
        let route = Route::ok(body(1)).with_latency(Duration::from_millis(100));
        kubelets.push(
            tls.loopback_kubelet()
                .route(RESOURCE_METRICS_PATH, route)
                .start()
                .await
                .unwrap(),
        );
    }
    let targets: Vec<NodeTarget> = kubelets
        .iter()
        .enumerate()
        .map(|(i, k)| target(&format!("node{i}"), k))
        .collect();
    let config = ScraperConfig {
        max_in_flight: 1,
        ..scraper_config()
    };
    let s = Scraper::new(KubeletClient::new(&tls.verifying()).unwrap(), config, None);
    let start = Instant::now();
    let result = s.scrape_tick(&targets, far()).await;
    assert_eq!(result.succeeded(), 3);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "took {:?}",
        start.elapsed()
    );
}

/// Request arrival times at the fake, relative to `since`.
fn arrivals(kubelet: &Listening, since: std::time::Instant) -> Vec<Duration> {
    kubelet
        .seen_requests()
        .iter()
        .map(|r| r.at.saturating_duration_since(since))
        .collect()
}

/// How many quarters of `window` received at least two of the `arrivals`.
fn busy_quarters(arrivals: &[Duration], window: Duration) -> usize {
    let mut counts = [0usize; 4];
    for at in arrivals {
        let quarter = (at.as_secs_f64() / (window.as_secs_f64() / 4.0)) as usize;
        if let Some(count) = counts.get_mut(quarter) {
            *count += 1;
        }
    }
    counts.iter().filter(|c| **c >= 2).count()
}

/// 40 nodes with a 4 s jitter window: the arrivals must cover at least 3 of the window's 4
/// quarters with two requests each (a uniform spread misses that with probability < 1e-6),
/// which a run without jitter cannot do unless the machine stalls for over 2 s; the same run
/// without jitter must bunch every request into the first quarter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_spreads_requests_but_stays_below_the_window() {
    const NODES: usize = 40;
    let window = Duration::from_secs(4);
    let run = |spread_per_node: Duration| async move {
        let kubelet = FakeKubelet::http()
            .resource_metrics(body(1))
            .start()
            .await
            .unwrap();
        let targets: Vec<NodeTarget> = (0..NODES)
            .map(|i| target(&format!("node{i}"), &kubelet))
            .collect();
        let config = ScraperConfig {
            spread_per_node,
            max_spread: window,
            ..scraper_config()
        };
        let s = Scraper::new(
            KubeletClient::new(&KubeletClientConfig::new(Transport::Http)).unwrap(),
            config,
            None,
        );
        let since = std::time::Instant::now();
        let result = s.scrape_tick(&targets, far()).await;
        let elapsed = since.elapsed();
        assert_eq!(result.succeeded(), NODES);
        (arrivals(&kubelet, since), elapsed)
    };

    // 40 x 100 ms is exactly the 4 s ceiling.
    let (jittered, elapsed) = run(Duration::from_millis(100)).await;
    assert_eq!(jittered.len(), NODES);
    assert!(
        busy_quarters(&jittered, window) >= 3,
        "requests not spread over the window: {jittered:?}"
    );
    // Every request starts inside the window; the tick ends soon after its last start.
    assert!(
        jittered
            .iter()
            .all(|at| *at < window + Duration::from_secs(1)),
        "{jittered:?}"
    );
    assert!(
        elapsed < window + Duration::from_secs(3),
        "took {elapsed:?}"
    );

    let (bunched, _) = run(Duration::ZERO).await;
    assert_eq!(bunched.len(), NODES);
    assert!(
        bunched.iter().all(|at| *at < window / 4),
        "without jitter every request starts at once: {bunched:?}"
    );
    assert!(busy_quarters(&bunched, window) <= 1, "{bunched:?}");
}

#[tokio::test]
async fn an_empty_target_list_is_an_empty_tick() {
    let s = scraper(&KubeletClientConfig::new(Transport::Http));
    let result = s.scrape_tick(&[], far()).await;
    assert!(result.outcomes.is_empty());
    assert!(result.elapsed < Duration::from_millis(100));
    assert_eq!(result.into_batch().node_count(), 0);
}

#[tokio::test]
async fn a_duplicate_node_name_keeps_the_first_scrape() {
    let first = FakeKubelet::http()
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let second = FakeKubelet::http()
        .resource_metrics(body(2))
        .start()
        .await
        .unwrap();
    let s = scraper(&KubeletClientConfig::new(Transport::Http));
    let result = s
        .scrape_tick(&[target("same", &first), target("same", &second)], far())
        .await;
    assert_eq!(result.succeeded(), 2);
    let batch = result.into_batch();
    assert_eq!((batch.node_count(), batch.pod_count()), (1, 1));
}

#[tokio::test]
async fn health_forgets_nodes_that_are_no_longer_targeted() {
    let kubelet = FakeKubelet::http()
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let s = scraper(&KubeletClientConfig::new(Transport::Http));
    s.scrape_tick(&[target("a", &kubelet), target("b", &kubelet)], far())
        .await;
    assert_eq!(s.health().snapshot().len(), 2);
    s.scrape_tick(&[target("b", &kubelet)], far()).await;
    let names: Vec<String> = s.health().snapshot().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["b"]);
}

#[tokio::test]
async fn negotiated_h2_connections_are_reused_across_ticks() {
    let tls = Tls::new();
    let kubelet = tls
        .loopback_kubelet()
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let config = KubeletClientConfig {
        http_version: HttpVersion::Negotiate,
        ..tls.verifying()
    };
    let s = scraper(&config);
    for _ in 0..3 {
        assert_eq!(
            s.scrape_tick(&[target("node1", &kubelet)], far())
                .await
                .succeeded(),
            1
        );
    }
    assert_eq!(kubelet.seen_requests()[0].version, "HTTP/2.0");
    assert_eq!((kubelet.connections(), kubelet.requests()), (1, 3));
}

/// `Fetched::http2` and what the kubelet saw agree, for each HTTP version setting and kubelet.
#[tokio::test]
async fn the_http_version_setting_decides_what_the_kubelet_sees() {
    let tls = Tls::new();
    let cases = [
        (HttpVersion::Http1, false, "HTTP/1.1"),
        (HttpVersion::Negotiate, false, "HTTP/2.0"),
        (HttpVersion::Negotiate, true, "HTTP/1.1"),
    ];
    for (version, kubelet_http1_only, expected) in cases {
        let mut kubelet = tls.loopback_kubelet().resource_metrics(body(1));
        if kubelet_http1_only {
            kubelet = kubelet.http1_only();
        }
        let kubelet = kubelet.start().await.unwrap();
        let config = KubeletClientConfig {
            http_version: version,
            ..tls.verifying()
        };
        let client = KubeletClient::new(&config).unwrap();
        let fetched = client
            .get(&kubelet.url(RESOURCE_METRICS_PATH), far())
            .await
            .unwrap();
        let case = format!("{version:?}, kubelet http1 only: {kubelet_http1_only}");
        assert_eq!(kubelet.seen_requests()[0].version, expected, "{case}");
        assert_eq!(fetched.http2, expected == "HTTP/2.0", "{case}");
    }
}

#[tokio::test]
async fn without_keep_alive_every_tick_opens_a_new_connection() {
    let tls = Tls::new();
    let kubelet = tls
        .loopback_kubelet()
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let config = KubeletClientConfig {
        keep_alive: false,
        ..tls.verifying()
    };
    let s = scraper(&config);
    for _ in 0..3 {
        let result = s.scrape_tick(&[target("node1", &kubelet)], far()).await;
        assert_eq!(result.succeeded(), 1);
    }
    assert_eq!((kubelet.connections(), kubelet.requests()), (3, 3));
    // Like a Go kubelet, the fake sends a session ticket: only the first handshake is full.
    assert_eq!(kubelet.resumed_handshakes(), 2);
}

/// A body many times the 8 KiB HTTP/1.1 read buffer arrives whole over TLS.
#[tokio::test]
async fn a_body_larger_than_the_read_buffer_is_read_whole() {
    let tls = Tls::new();
    let big = body(2000);
    assert!(big.len() > 200 * 1024, "{} bytes", big.len());
    let kubelet = tls
        .loopback_kubelet()
        .resource_metrics(big.clone())
        .start()
        .await
        .unwrap();
    let client = KubeletClient::new(&tls.verifying()).unwrap();
    let fetched = client
        .get(&kubelet.url(RESOURCE_METRICS_PATH), far())
        .await
        .unwrap();
    assert_eq!(fetched.body, big.as_bytes());
}

#[tokio::test]
async fn a_rotated_token_file_is_picked_up() {
    let tls = Tls::new();
    let kubelet = tls
        .loopback_kubelet()
        .require_bearer_token(TOKEN)
        .resource_metrics(body(1))
        .start()
        .await
        .unwrap();
    let mut config = tls.verifying();
    config.token = TokenSource::File {
        path: tls.dir.path().join("token"),
        refresh: Duration::ZERO,
    };
    let s = scraper(&config);
    let targets = [target("node1", &kubelet)];
    assert!(
        s.scrape_tick(&targets, far())
            .await
            .outcome("node1")
            .unwrap()
            .result
            .is_ok()
    );

    tls.dir.write("token", "rotated-token\n").unwrap();
    kubelet.set_bearer_token(Some("rotated-token"));
    assert!(
        s.scrape_tick(&targets, far())
            .await
            .outcome("node1")
            .unwrap()
            .result
            .is_ok()
    );
}

#[tokio::test]
async fn samples_without_timestamps_are_stamped_with_the_request_time() {
    let node = NodeSample {
        timestamp_ms: None,
        ..NodeSample::new(10.0, 1e9, 0)
    };
    let kubelet = FakeKubelet::http()
        .resource_metrics(render_resource_metrics(&node, &[]))
        .start()
        .await
        .unwrap();
    let s = scraper(&KubeletClientConfig::new(Transport::Http));
    let ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 * 1_000_000
    };
    let before = ms(std::time::SystemTime::now());
    let result = s.scrape_tick(&[target("node1", &kubelet)], far()).await;
    let after = ms(std::time::SystemTime::now());
    let point = result
        .outcome("node1")
        .unwrap()
        .result
        .as_ref()
        .unwrap()
        .node
        .unwrap();
    assert!(
        (before..=after).contains(&point.timestamp_ns),
        "{before} <= {} <= {after}",
        point.timestamp_ns
    );
}

#[tokio::test]
async fn the_path_annotation_is_requested() {
    let kubelet = FakeKubelet::http()
        .route("/virtual/metrics", Route::ok(body(1)))
        .start()
        .await
        .unwrap();
    let mut t = target("node1", &kubelet);
    t.metrics_path_annotation = Some("/virtual/metrics".into());
    let result = scraper(&KubeletClientConfig::new(Transport::Http))
        .scrape_tick(&[t], far())
        .await;
    assert!(result.outcome("node1").unwrap().result.is_ok());
    assert_eq!(kubelet.seen_requests()[0].path, "/virtual/metrics");
}

#[tokio::test]
async fn unreadable_or_empty_credentials_fail_client_construction() {
    let tls = Tls::new();
    let missing_ca = tls.client_config(ServerVerification::Ca(PemSource::File(
        tls.dir.path().join("nope.crt"),
    )));
    let err = KubeletClient::new(&missing_ca).unwrap_err();
    assert!(err.to_string().contains("nope.crt"), "{err}");

    let empty_ca = tls.client_config(ServerVerification::Ca(PemSource::Inline(Vec::new())));
    assert!(KubeletClient::new(&empty_ca).is_err());

    let mut missing_token = tls.verifying();
    missing_token.token = TokenSource::File {
        path: tls.dir.path().join("no-token"),
        refresh: Duration::from_secs(60),
    };
    assert!(KubeletClient::new(&missing_token).is_err());
}
