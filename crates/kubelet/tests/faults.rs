//! The fault matrix: one misbehaving kubelet next to two healthy fake kubelets, driven through
//! the real `Scraper` for a few back-to-back ticks, every batch applied to a real `core::Store`.
//!
//! For a failing kubelet each test checks that the healthy nodes are scraped and stored in every
//! tick, within the tick's deadline (one resolution); that the faulty node fails every tick with
//! the expected error class and is not stored; that its reason is logged once at the default
//! verbosity and then only at debug; that it is counted in `metrics_server_kubelet_request_total
//! {success="false"}` and `msrs_kubelet_scrape_errors_total{class}`; and that no scrape task
//! panicked. Kubelets that answer well-formed but unusual data are checked against the storage
//! rules instead. RELIABILITY.md at the repository root lists every case.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use metrics_server_core::{Snapshot, Store};
use metrics_server_kubelet::{
    AddressConfig, ErrorClass, KubeletClient, KubeletClientConfig, KubeletMetrics, NodeTarget,
    PemSource, ScrapeError, Scraper, ScraperConfig, ServerVerification, TlsFailure, TlsSettings,
    Transport,
};
use metrics_server_test_support::{
    ContainerSample, FakeKubelet, Fault, FaultyKubelet, Listening, NodeSample, PemDir, PodSample,
    RESOURCE_METRICS_PATH, Route, TestPki, render_resource_metrics,
};
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber, span};

/// The scrape period of the matrix; every tick must end within it.
const RESOLUTION: Duration = Duration::from_secs(2);
/// `--kubelet-request-timeout` of the matrix.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(800);
/// The body cap of the matrix (the flag default is 64 MiB).
const BODY_CAP: usize = 4 * 1024 * 1024;
/// Ticks per case: the first shows the change, the others the repeats.
const TICKS: usize = 3;
/// The name of the misbehaving node.
const FAULTY: &str = "faulty";
const HEALTHY: [&str; 2] = ["healthy-1", "healthy-2"];
/// A fixed kubelet clock for bodies with explicit timestamps (ms).
const T0_MS: i64 = 1_700_000_000_000;

// === Log capture ===

#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    message: String,
    node: Option<String>,
    /// The `reason` field, when the event has one.
    reason: Option<String>,
}

/// Records every event emitted on this thread while installed (the tests run on a
/// current-thread runtime, so the scraper's tasks log here too).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    fn events(&self) -> Vec<Captured> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    node: Option<String>,
    reason: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "node" => self.node = Some(format!("{value:?}")),
            "reason" => self.reason = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Captured {
                level: *event.metadata().level(),
                message: fields.message,
                node: fields.node,
                reason: fields.reason,
            });
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

// === Bodies ===

/// A minimal kubelet body: node `ns`-less series and one container `ns/<pod>/c`. `ts` is appended
/// to every sample (`""` for none, so the scraper stamps the request time).
fn kubelet_body(
    node_cpu: &str,
    node_memory: &str,
    pod: &str,
    container_cpu: &str,
    start_time: &str,
    ts: &str,
) -> String {
    let labels = format!("container=\"c\",namespace=\"ns\",pod=\"{pod}\"");
    format!(
        "# TYPE container_cpu_usage_seconds_total counter\n\
         container_cpu_usage_seconds_total{{{labels}}} {container_cpu}{ts}\n\
         # TYPE container_memory_working_set_bytes gauge\n\
         container_memory_working_set_bytes{{{labels}}} 1.048576e+07{ts}\n\
         # TYPE container_start_time_seconds gauge\n\
         container_start_time_seconds{{{labels}}} {start_time}{ts}\n\
         # TYPE node_cpu_usage_seconds_total counter\n\
         node_cpu_usage_seconds_total {node_cpu}{ts}\n\
         # TYPE node_memory_working_set_bytes gauge\n\
         node_memory_working_set_bytes {node_memory}{ts}\n"
    )
}

/// What a healthy node answers: no timestamps, so every tick is a new sample.
fn healthy_body(node: &str) -> String {
    kubelet_body("100.5", "1e9", &format!("pod-{node}"), "10.5", "1.6e9", "")
}

/// A body with explicit timestamps at `T0_MS + tick × 10 s`.
fn stamped_body(tick: i64, node_cpu: f64, container_cpu: f64, start_time: f64) -> String {
    let ts = format!(" {}", T0_MS + tick * 10_000);
    kubelet_body(
        &node_cpu.to_string(),
        "2e9",
        "pod-faulty",
        &container_cpu.to_string(),
        &start_time.to_string(),
        &ts,
    )
}

// === The matrix ===

fn node_target(name: &str, port: u16) -> NodeTarget {
    NodeTarget {
        name: name.to_owned(),
        addresses: vec![("InternalIP".into(), "127.0.0.1".into())],
        status_port: port,
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

/// What one tick showed.
struct Tick {
    elapsed: Duration,
    /// The faulty node's error, `None` when it succeeded.
    faulty: Option<ScrapeError>,
    faulty_incomplete: bool,
    /// Healthy nodes whose scrape succeeded.
    healthy_ok: usize,
    /// The store after this tick's batch.
    snapshot: Arc<Snapshot>,
}

/// Healthy kubelets, a scraper with metrics, a store and a log capture.
struct Matrix {
    healthy: Vec<Listening>,
    scraper: Scraper,
    metrics: KubeletMetrics,
    store: Store,
    capture: Capture,
    resolution: Duration,
}

impl Matrix {
    /// Plain-HTTP kubelets and client.
    async fn http() -> Self {
        Self::http_with(REQUEST_TIMEOUT, BODY_CAP, RESOLUTION).await
    }

    async fn http_with(timeout: Duration, body_cap: usize, resolution: Duration) -> Self {
        let mut healthy = Vec::new();
        for name in HEALTHY {
            let kubelet = FakeKubelet::http().resource_metrics(healthy_body(name));
            healthy.push(kubelet.start().await.unwrap());
        }
        let config = KubeletClientConfig {
            request_timeout: timeout,
            max_body_bytes: body_cap,
            ..KubeletClientConfig::new(Transport::Http)
        };
        Self::with(healthy, &config, resolution)
    }

    /// HTTPS kubelets whose certificates `pki` signed; the client trusts `pki`'s CA.
    async fn https(pki: &TestPki, dir: &PemDir) -> Self {
        let mut healthy = Vec::new();
        let cert = pki.server_cert(&["127.0.0.1"]).unwrap();
        for name in HEALTHY {
            let kubelet = FakeKubelet::https(&cert).resource_metrics(healthy_body(name));
            healthy.push(kubelet.start().await.unwrap());
        }
        let ca = dir.write("ca.crt", pki.ca_pem()).unwrap();
        let config = KubeletClientConfig {
            request_timeout: REQUEST_TIMEOUT,
            max_body_bytes: BODY_CAP,
            ..KubeletClientConfig::new(Transport::Https(TlsSettings {
                verification: ServerVerification::Ca(PemSource::File(ca)),
                client_cert: None,
            }))
        };
        Self::with(healthy, &config, RESOLUTION)
    }

    fn with(healthy: Vec<Listening>, config: &KubeletClientConfig, resolution: Duration) -> Self {
        let mut registry = Registry::default();
        let metrics = KubeletMetrics::register(&mut registry);
        let scraper = Scraper::new(
            KubeletClient::new(config).unwrap(),
            scraper_config(),
            Some(metrics.clone()),
        );
        Self {
            healthy,
            scraper,
            metrics,
            store: Store::new(resolution),
            capture: Capture::default(),
            resolution,
        }
    }

    fn targets(&self, faulty_port: u16) -> Vec<NodeTarget> {
        let mut targets: Vec<NodeTarget> = HEALTHY
            .iter()
            .zip(&self.healthy)
            .map(|(name, k)| node_target(name, k.port()))
            .collect();
        targets.push(node_target(FAULTY, faulty_port));
        targets
    }

    /// One tick against every node, stored; logs go to the capture.
    async fn tick(&mut self, faulty_port: u16) -> Tick {
        let targets = self.targets(faulty_port);
        let _guard = tracing::subscriber::set_default(self.capture.clone());
        let start = Instant::now();
        let result = self
            .scraper
            .scrape_tick(&targets, start + self.resolution)
            .await;
        let elapsed = start.elapsed();
        let faulty = result.outcome(FAULTY).expect("the faulty node finished");
        let faulty_incomplete = faulty.incomplete;
        let faulty = faulty.result.as_ref().err().cloned();
        let healthy_ok = HEALTHY
            .iter()
            .filter(|n| result.outcome(n).is_some_and(|o| o.result.is_ok()))
            .count();
        let snapshot = self.store.apply(result.into_batch());
        Tick {
            elapsed,
            faulty,
            faulty_incomplete,
            healthy_ok,
            snapshot,
        }
    }

    async fn ticks(&mut self, faulty_port: u16, n: usize) -> Vec<Tick> {
        let mut ticks = Vec::with_capacity(n);
        for _ in 0..n {
            ticks.push(self.tick(faulty_port).await);
        }
        ticks
    }

    /// Events about the faulty node at `level`.
    fn faulty_events(&self, level: Level) -> Vec<Captured> {
        self.capture
            .events()
            .into_iter()
            .filter(|e| e.level == level && e.node.as_deref() == Some(FAULTY))
            .collect()
    }

    /// The whole promise for a kubelet that fails with one of `classes` every tick.
    fn assert_isolated(&self, ticks: &[Tick], classes: &[ErrorClass]) {
        for (i, tick) in ticks.iter().enumerate() {
            assert_eq!(
                tick.healthy_ok,
                HEALTHY.len(),
                "tick {i}: healthy nodes failed"
            );
            assert!(
                tick.elapsed <= self.resolution + Duration::from_millis(600),
                "tick {i} took {:?}",
                tick.elapsed
            );
            let names: Vec<&str> = tick.snapshot.node_names().collect();
            for healthy in HEALTHY {
                assert!(names.contains(&healthy), "tick {i}: {healthy} not stored");
                if i > 0 {
                    assert!(
                        tick.snapshot.node_metrics(healthy).is_some(),
                        "tick {i}: {healthy} not served"
                    );
                }
            }
            let class = match (&tick.faulty, tick.faulty_incomplete) {
                (Some(err), _) => err.class(),
                (None, true) => ErrorClass::Incomplete,
                (None, false) => panic!("tick {i}: the faulty node succeeded"),
            };
            assert!(
                classes.contains(&class),
                "tick {i}: class {class}, want one of {classes:?} ({:?})",
                tick.faulty
            );
            assert!(
                tick.snapshot.node_metrics(FAULTY).is_none(),
                "tick {i}: the faulty node is served: {:?}",
                tick.snapshot.node_metrics(FAULTY)
            );
        }
        let class = ticks
            .first()
            .and_then(|t| t.faulty.as_ref())
            .map_or(ErrorClass::Incomplete, ScrapeError::class);
        self.assert_logged_once(class, ticks.len());
        assert_eq!(
            self.metrics.scrape_error_count(class),
            ticks.len() as u64,
            "msrs_kubelet_scrape_errors_total{{class={class}}}"
        );
        if class != ErrorClass::Incomplete {
            // Healthy requests succeed; every faulty one is a failed request.
            assert_eq!(self.metrics.request_count(false), ticks.len() as u64);
        }
        assert!(
            !self
                .capture
                .events()
                .iter()
                .any(|e| e.message.contains("Scrape task")),
            "a scrape task panicked or overran: {:?}",
            self.capture.events()
        );
    }

    /// One event at the default verbosity for the change, the repeats at debug.
    fn assert_logged_once(&self, class: ErrorClass, ticks: usize) {
        let loud_level = if class == ErrorClass::Incomplete {
            Level::INFO
        } else {
            Level::ERROR
        };
        let loud = self.faulty_events(loud_level);
        assert_eq!(loud.len(), 1, "want one {loud_level} line, got {loud:?}");
        let quiet = self.faulty_events(Level::DEBUG);
        let repeats = quiet
            .iter()
            .filter(|e| e.message == loud[0].message)
            .count();
        assert_eq!(repeats, ticks - 1, "repeats at debug: {quiet:?}");
        assert!(self.faulty_events(Level::WARN).is_empty());
    }
}

async fn run_fault(
    fault: Fault,
) -> (
    Matrix,
    Vec<Tick>,
    metrics_server_test_support::FaultyListening,
) {
    let faulty = FaultyKubelet::start(fault).await.unwrap();
    let mut matrix = Matrix::http().await;
    let ticks = matrix.ticks(faulty.port(), TICKS).await;
    (matrix, ticks, faulty)
}

// === Transport and HTTP faults ===

#[tokio::test]
async fn a_kubelet_that_accepts_and_never_answers_times_out_alone() {
    let (matrix, ticks, faulty) = run_fault(Fault::Hang).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::Timeout]);
    // One connection per tick: no retry storm against a hung kubelet.
    assert!(faulty.connections() <= TICKS, "{}", faulty.connections());
}

#[tokio::test]
async fn a_kubelet_trickling_one_byte_per_second_times_out_alone() {
    let fault = Fault::Trickle {
        body: Bytes::from(healthy_body(FAULTY)),
        interval: Duration::from_secs(1),
    };
    let (matrix, ticks, faulty) = run_fault(fault).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::Timeout]);
    assert!(faulty.body_bytes_sent() <= 2 * TICKS as u64);
}

#[tokio::test]
async fn a_connection_reset_mid_body_is_a_transport_error() {
    let fault = Fault::ResetMidBody {
        body: Bytes::from(healthy_body(FAULTY)),
    };
    let (matrix, ticks, _faulty) = run_fault(fault).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::Transport]);
}

#[tokio::test]
async fn a_500_is_an_http_status_error() {
    let (matrix, ticks, _faulty) = run_fault(Fault::Status(500)).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::HttpStatus(500)]);
}

#[tokio::test]
async fn a_401_is_an_http_status_error() {
    let (matrix, ticks, _faulty) = run_fault(Fault::Status(401)).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::HttpStatus(401)]);
}

#[tokio::test]
async fn a_403_is_an_http_status_error() {
    let (matrix, ticks, _faulty) = run_fault(Fault::Status(403)).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::HttpStatus(403)]);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let elsewhere = FakeKubelet::http()
        .resource_metrics(healthy_body(FAULTY))
        .start()
        .await
        .unwrap();
    let fault = Fault::Redirect {
        location: format!(
            "http://127.0.0.1:{}{RESOURCE_METRICS_PATH}",
            elsewhere.port()
        ),
    };
    let (matrix, ticks, _faulty) = run_fault(fault).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::HttpStatus(302)]);
    assert_eq!(elsewhere.requests(), 0, "the redirect was followed");
}

const GIB: u64 = 1024 * 1024 * 1024;
/// What loopback socket buffers can hold beyond what the client read.
const SOCKET_SLACK: u64 = 32 * 1024 * 1024;

#[tokio::test]
async fn a_1_gib_body_with_its_length_declared_is_refused_before_reading() {
    let fault = Fault::Huge {
        total: GIB,
        declare_length: true,
    };
    let (matrix, ticks, faulty) = run_fault(fault).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::BodyTooLarge]);
    assert!(
        faulty.body_bytes_sent() < TICKS as u64 * SOCKET_SLACK,
        "{} bytes sent",
        faulty.body_bytes_sent()
    );
}

#[tokio::test]
async fn a_1_gib_chunked_body_is_cut_off_at_the_cap() {
    let fault = Fault::Huge {
        total: GIB,
        declare_length: false,
    };
    let (matrix, ticks, faulty) = run_fault(fault).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::BodyTooLarge]);
    // The client stops reading at the cap; the kernel buffers the rest of what was sent.
    let per_tick = faulty.body_bytes_sent() / TICKS as u64;
    assert!(
        per_tick >= BODY_CAP as u64 / 2 && per_tick < BODY_CAP as u64 + SOCKET_SLACK,
        "{per_tick} bytes sent per tick"
    );
}

/// Control for the two cases above: the same streamed bodies under the cap are read whole, so
/// `body_too_large` there comes from the cap, not from broken framing in the fake.
#[tokio::test]
async fn a_streamed_body_under_the_cap_is_read_whole() {
    for declare_length in [true, false] {
        let total = BODY_CAP as u64 / 2;
        let fault = Fault::Huge {
            total,
            declare_length,
        };
        let (_matrix, ticks, faulty) = run_fault(fault).await;
        for tick in &ticks {
            // Comment lines only: a valid exposition with no samples.
            assert!(tick.faulty.is_none(), "{declare_length}: {:?}", tick.faulty);
            assert_eq!(tick.healthy_ok, HEALTHY.len());
        }
        assert_eq!(faulty.body_bytes_sent(), TICKS as u64 * total);
    }
}

#[tokio::test]
async fn random_bytes_as_body_are_a_decode_error() {
    let mut rng = fastrand::Rng::with_seed(7);
    let body: Vec<u8> = (0..64 * 1024).map(|_| rng.u8(..)).collect();
    let fault = Fault::Body {
        body: Bytes::from(body),
        content_type: "application/octet-stream",
    };
    let (matrix, ticks, _faulty) = run_fault(fault).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::Decode]);
}

#[tokio::test]
async fn random_bytes_instead_of_http_are_a_transport_error() {
    let mut rng = fastrand::Rng::with_seed(11);
    let bytes: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
    let (matrix, ticks, _faulty) = run_fault(Fault::Garbage(Bytes::from(bytes))).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::Transport]);
}

/// The 8 KiB HTTP/1.1 read buffer (`HTTP1_READ_BUFFER_BYTES`) also bounds a response head: 4 KiB
/// of headers are read, 9 KiB fail the node as a transport error.
#[tokio::test]
async fn a_response_head_larger_than_the_read_buffer_is_a_transport_error() {
    let body = healthy_body("faulty");
    for (padding, fits) in [(4 * 1024, true), (9 * 1024, false)] {
        let raw = format!(
            "HTTP/1.1 200 OK\r\nX-Padding: {}\r\nContent-Length: {}\r\n\r\n{body}",
            "a".repeat(padding),
            body.len()
        );
        let faulty = FaultyKubelet::start(Fault::Garbage(Bytes::from(raw)))
            .await
            .unwrap();
        let client = KubeletClient::new(&KubeletClientConfig::new(Transport::Http)).unwrap();
        let url = format!("http://127.0.0.1:{}{RESOURCE_METRICS_PATH}", faulty.port());
        let got = client
            .get(&url, Instant::now() + Duration::from_secs(5))
            .await;
        match got {
            Ok(fetched) => assert!(
                fits && fetched.body == body.as_bytes(),
                "{padding} bytes of header were read"
            ),
            Err(e) => assert!(
                !fits && e.class() == ErrorClass::Transport,
                "{padding} bytes of header: {e}"
            ),
        }
    }
}

#[tokio::test]
async fn an_html_page_is_a_decode_error() {
    let page = "<!DOCTYPE html>\n<html><head><title>Login</title></head>\n\
                <body><h1>Please sign in</h1></body></html>\n";
    let fault = Fault::Body {
        body: Bytes::from_static(page.as_bytes()),
        content_type: "text/html",
    };
    let (matrix, ticks, _faulty) = run_fault(fault).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::Decode]);
}

// === Values ===

/// The node reports `memory` as its working set: the node point must be rejected (incomplete,
/// or a decode error), never served, with the reason logged once.
async fn assert_node_memory_rejected(memory: &str) {
    let body = kubelet_body("100.5", memory, "pod-faulty", "10.5", "1.6e9", "");
    let fault = Fault::Body {
        body: Bytes::from(body),
        content_type: "text/plain",
    };
    let (matrix, ticks, _faulty) = run_fault(fault).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::Incomplete, ErrorClass::Decode]);
    // The one line at the default verbosity says which value was refused.
    let loud = matrix.faulty_events(Level::INFO);
    let reason = loud
        .first()
        .and_then(|e| e.reason.clone())
        .unwrap_or_default();
    assert!(
        reason.contains("node_memory_working_set_bytes") && reason.contains(memory),
        "the log names the refused value: {loud:?}"
    );
}

#[tokio::test]
async fn a_nan_node_memory_is_rejected() {
    assert_node_memory_rejected("NaN").await;
}

#[tokio::test]
async fn a_negative_node_memory_is_rejected() {
    assert_node_memory_rejected("-1.048576e+07").await;
}

#[tokio::test]
async fn a_minus_infinite_node_memory_is_rejected() {
    assert_node_memory_rejected("-Inf").await;
}

#[tokio::test]
async fn a_plus_infinite_node_memory_is_rejected() {
    assert_node_memory_rejected("+Inf").await;
}

#[tokio::test]
async fn a_node_memory_of_1e300_is_rejected() {
    assert_node_memory_rejected("1e300").await;
}

// === Storage rules ===

/// A plain fake whose body the test changes between ticks.
async fn scripted_kubelet(first: String) -> Listening {
    FakeKubelet::http()
        .resource_metrics(first)
        .start()
        .await
        .unwrap()
}

fn set_body(kubelet: &Listening, body: String) {
    kubelet.set_route(RESOURCE_METRICS_PATH, Route::ok(body));
}

fn assert_healthy(tick: &Tick) {
    assert_eq!(tick.healthy_ok, HEALTHY.len());
    assert!(tick.elapsed <= RESOLUTION + Duration::from_millis(600));
    assert!(tick.faulty.is_none(), "{:?}", tick.faulty);
}

const CORE: u64 = 1_000_000_000;

#[tokio::test]
async fn a_counter_reset_drops_one_rate_and_recovers() {
    let start = (T0_MS / 1000 - 3600) as f64;
    let kubelet = scripted_kubelet(stamped_body(0, 100.0, 10.0, start)).await;
    let mut m = Matrix::http().await;
    let t0 = m.tick(kubelet.port()).await;
    set_body(&kubelet, stamped_body(1, 110.0, 11.0, start));
    let t1 = m.tick(kubelet.port()).await;
    // Both counters fall back (kubelet restart; the container kept its start time).
    set_body(&kubelet, stamped_body(2, 5.0, 0.5, start));
    let t2 = m.tick(kubelet.port()).await;
    set_body(&kubelet, stamped_body(3, 15.0, 1.5, start));
    let t3 = m.tick(kubelet.port()).await;
    for t in [&t0, &t1, &t2, &t3] {
        assert_healthy(t);
    }
    let cpu = |t: &Tick| t.snapshot.node_metrics(FAULTY).map(|u| u.cpu_nanocores);
    assert_eq!(cpu(&t1), Some(CORE));
    assert_eq!(cpu(&t2), None, "a rate across the reset was served");
    assert!(t2.snapshot.node_rate(FAULTY).is_some_and(|r| r.is_err()));
    let pod = t2.snapshot.pod_metrics("ns", "pod-faulty").unwrap();
    assert!(
        pod.containers.is_empty() && pod.skipped.len() == 1,
        "{pod:?}"
    );
    assert_eq!(cpu(&t3), Some(CORE));
    let pod = t3.snapshot.pod_metrics("ns", "pod-faulty").unwrap();
    assert_eq!(pod.containers[0].usage.cpu_nanocores, CORE / 10);
}

#[tokio::test]
async fn a_container_restart_starts_a_new_series() {
    let first_start = (T0_MS / 1000 - 3600) as f64;
    let kubelet = scripted_kubelet(stamped_body(0, 100.0, 50.0, first_start)).await;
    let mut m = Matrix::http().await;
    m.tick(kubelet.port()).await;
    set_body(&kubelet, stamped_body(1, 110.0, 51.0, first_start));
    let t1 = m.tick(kubelet.port()).await;
    // Restarted 5 s before the next sample: a new start time and a counter from zero.
    let restart = ((T0_MS + 15_000) / 1000) as f64;
    set_body(&kubelet, stamped_body(2, 120.0, 1.0, restart));
    let t2 = m.tick(kubelet.port()).await;
    set_body(&kubelet, stamped_body(3, 130.0, 1.5, restart));
    let t3 = m.tick(kubelet.port()).await;
    let cpu = |t: &Tick| {
        t.snapshot
            .pod_metrics("ns", "pod-faulty")
            .map(|p| p.containers[0].usage.cpu_nanocores)
    };
    assert_eq!(cpu(&t1), Some(CORE / 10));
    assert_eq!(cpu(&t2), None, "a rate across the restart was served");
    assert_eq!(cpu(&t3), Some(CORE / 20));
    for t in [&t1, &t2, &t3] {
        assert_healthy(t);
        assert_eq!(
            t.snapshot.node_metrics(FAULTY).map(|u| u.cpu_nanocores),
            Some(CORE)
        );
    }
}

#[tokio::test]
async fn duplicate_series_keep_the_last_line_and_fail_nothing() {
    let once = healthy_body(FAULTY);
    let twice = format!(
        "{once}{}",
        kubelet_body("100.5", "3e9", "pod-faulty", "10.5", "1.6e9", "")
    );
    let kubelet = scripted_kubelet(twice).await;
    let mut m = Matrix::http().await;
    let ticks = m.ticks(kubelet.port(), 2).await;
    for t in &ticks {
        assert_healthy(t);
    }
    let node = ticks[1].snapshot.node_metrics(FAULTY).unwrap();
    assert_eq!(node.memory_bytes, 3_000_000_000);
    let pod = ticks[1].snapshot.pod_metrics("ns", "pod-faulty").unwrap();
    assert_eq!(pod.containers.len(), 1);
}

#[tokio::test]
async fn samples_without_timestamps_get_the_request_time() {
    let kubelet = scripted_kubelet(healthy_body(FAULTY)).await;
    let mut m = Matrix::http().await;
    let before = SystemTime::now();
    let ticks = m.ticks(kubelet.port(), 2).await;
    let after = SystemTime::now();
    let ns = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
    for t in &ticks {
        assert_healthy(t);
    }
    let node = ticks[1].snapshot.node_metrics(FAULTY).unwrap();
    assert!(
        (ns(before)..=ns(after)).contains(&node.timestamp_ns),
        "{node:?}"
    );
    assert!(node.window_ns > 0 && node.window_ns < ns(after) - ns(before) + 1);
}

/// Timestamps far from now are used as the kubelet sends them; the rate stays exact.
async fn assert_clock_offset_is_harmless(base_ms: i64) {
    let body = |tick: i64, cpu: f64| {
        let ts = format!(" {}", base_ms + tick * 10_000);
        kubelet_body(&cpu.to_string(), "2e9", "pod-faulty", "1", "1", &ts)
    };
    let kubelet = scripted_kubelet(body(0, 100.0)).await;
    let mut m = Matrix::http().await;
    m.tick(kubelet.port()).await;
    set_body(&kubelet, body(1, 110.0));
    let t1 = m.tick(kubelet.port()).await;
    assert_healthy(&t1);
    let node = t1.snapshot.node_metrics(FAULTY).unwrap();
    assert_eq!(
        (node.cpu_nanocores, node.window_ns),
        (CORE, 10 * CORE as i64)
    );
}

#[tokio::test]
async fn timestamps_far_in_the_future_are_harmless() {
    // Year 2191.
    assert_clock_offset_is_harmless(7_000_000_000_000).await;
}

#[tokio::test]
async fn timestamps_far_in_the_past_are_harmless() {
    // One second after the epoch.
    assert_clock_offset_is_harmless(1_000).await;
}

#[tokio::test]
async fn timestamps_beyond_the_nanosecond_range_wrap_without_harm() {
    // Year 3000: milliseconds × 10⁶ overflows i64 and wraps, as in Go.
    assert_clock_offset_is_harmless(32_503_680_000_000).await;
}

#[tokio::test]
async fn fifty_thousand_containers_on_one_node_are_stored_next_to_healthy_nodes() {
    const PODS: usize = 5_000;
    const PER_POD: usize = 10;
    let pods: Vec<PodSample> = (0..PODS)
        .map(|p| PodSample {
            namespace: "big".into(),
            name: format!("pod-{p}"),
            containers: (0..PER_POD)
                .map(|c| ContainerSample {
                    name: format!("c{c}"),
                    cpu_seconds: 1.5 + c as f64,
                    memory_bytes: 1e7,
                    start_time_seconds: 1.6e9,
                    timestamp_ms: None,
                })
                .collect(),
        })
        .collect();
    let node = NodeSample {
        cpu_seconds: 5000.0,
        memory_bytes: 6.4e10,
        timestamp_ms: None,
    };
    let body = render_resource_metrics(&node, &pods);
    assert!(body.len() < 64 * 1024 * 1024, "{} bytes", body.len());
    let kubelet = scripted_kubelet(body).await;
    // The flag defaults: 64 MiB cap, 10 s timeout, and the manifests' 15 s resolution.
    let resolution = Duration::from_secs(15);
    let mut m = Matrix::http_with(Duration::from_secs(10), 64 * 1024 * 1024, resolution).await;
    let ticks = m.ticks(kubelet.port(), 2).await;
    for t in &ticks {
        assert_eq!(t.healthy_ok, HEALTHY.len());
        assert!(t.faulty.is_none(), "{:?}", t.faulty);
        assert!(t.elapsed < resolution, "tick took {:?}", t.elapsed);
    }
    let snapshot = &ticks[1].snapshot;
    let big = snapshot.pod_keys().filter(|(ns, _)| *ns == "big").count();
    assert_eq!(big, PODS);
    let pod = snapshot.pod_metrics("big", "pod-4999").unwrap();
    assert_eq!(pod.containers.len(), PER_POD);
    assert!(snapshot.node_metrics(FAULTY).is_some());
}

// === Certificates ===

async fn run_tls_fault(faulty: FakeKubelet, pki: &TestPki, dir: &PemDir) -> (Matrix, Vec<Tick>) {
    let faulty = faulty
        .resource_metrics(healthy_body(FAULTY))
        .start()
        .await
        .unwrap();
    let mut matrix = Matrix::https(pki, dir).await;
    let ticks = matrix.ticks(faulty.port(), TICKS).await;
    drop(faulty);
    (matrix, ticks)
}

#[tokio::test]
async fn a_certificate_without_the_node_address_is_a_tls_error() {
    let (pki, dir) = (TestPki::new().unwrap(), PemDir::new().unwrap());
    let cert = pki.server_cert(&["kubelet.invalid", "10.9.8.7"]).unwrap();
    let (matrix, ticks) = run_tls_fault(FakeKubelet::https(&cert), &pki, &dir).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::Tls(TlsFailure::NameMismatch)]);
}

#[tokio::test]
async fn an_expired_certificate_is_a_tls_error() {
    let (pki, dir) = (TestPki::new().unwrap(), PemDir::new().unwrap());
    let cert = pki.expired_server_cert(&["127.0.0.1"]).unwrap();
    let (matrix, ticks) = run_tls_fault(FakeKubelet::https(&cert), &pki, &dir).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::Tls(TlsFailure::Expired)]);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_a_tls_error() {
    let (pki, dir) = (TestPki::new().unwrap(), PemDir::new().unwrap());
    let other = TestPki::new().unwrap();
    let cert = other.server_cert(&["127.0.0.1"]).unwrap();
    let (matrix, ticks) = run_tls_fault(FakeKubelet::https(&cert), &pki, &dir).await;
    matrix.assert_isolated(&ticks, &[ErrorClass::Tls(TlsFailure::UnknownAuthority)]);
}

// === Logging across changes ===

#[tokio::test]
async fn each_change_of_failure_is_logged_once_and_recovery_once() {
    let kubelet = scripted_kubelet(healthy_body(FAULTY)).await;
    let mut m = Matrix::http().await;
    m.tick(kubelet.port()).await;
    kubelet.set_route(RESOURCE_METRICS_PATH, Route::status(500, "boom"));
    m.ticks(kubelet.port(), 2).await;
    kubelet.set_route(RESOURCE_METRICS_PATH, Route::status(403, "no"));
    m.ticks(kubelet.port(), 2).await;
    kubelet.set_route(RESOURCE_METRICS_PATH, Route::ok(healthy_body(FAULTY)));
    m.ticks(kubelet.port(), 2).await;
    let errors = m.faulty_events(Level::ERROR);
    assert_eq!(errors.len(), 2, "one per class: {errors:?}");
    let infos = m.faulty_events(Level::INFO);
    assert_eq!(infos.len(), 1, "one recovery line: {infos:?}");
    // The label is the class name, shared by every status code: 2 × 500 + 2 × 403.
    assert_eq!(m.metrics.scrape_error_count(ErrorClass::HttpStatus(500)), 4);
}
