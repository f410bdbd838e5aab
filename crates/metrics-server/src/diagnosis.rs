//! Wiring of the per-node scrape health into what operators see: the API's scrape-health
//! document and NotFound reasons ([`KubeletDiagnosis`]), Events on Nodes and low-cardinality
//! gauges ([`NodeEvents`]), and the node-proxy fallback through kube-apiserver
//! ([`ApiServerNodeProxy`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use metrics_server_api::{NodeScrapeStatus, ScrapeDiagnosis, ScrapeFailure};
use metrics_server_kubelet::{
    ErrorClass, Fetched, NodeHealth, NodeHealthRecord, NodeProxy, ProxyFuture, Route, ScrapeError,
    ScrapeTarget,
};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

// === the API's view ===

/// The scraper's health map as the API reads it.
#[derive(Clone, Debug)]
pub struct KubeletDiagnosis {
    health: NodeHealth,
}

impl KubeletDiagnosis {
    /// Reads `health` (shared with the scraper).
    pub fn new(health: NodeHealth) -> Self {
        Self { health }
    }
}

impl ScrapeDiagnosis for KubeletDiagnosis {
    fn nodes(&self) -> Vec<NodeScrapeStatus> {
        self.health
            .snapshot()
            .into_iter()
            .map(|(node, rec)| node_status(node, &rec))
            .collect()
    }

    fn node(&self, name: &str) -> Option<NodeScrapeStatus> {
        self.health
            .get(name)
            .map(|rec| node_status(name.to_owned(), &rec))
    }
}

fn node_status(node: String, rec: &NodeHealthRecord) -> NodeScrapeStatus {
    NodeScrapeStatus {
        node,
        address: rec.target.address.clone(),
        port: rec.target.port,
        port_source: rec.target.port_source.as_str(),
        route: rec.route.as_str(),
        url: rec.url.clone(),
        last_attempt: rec.last_attempt,
        last_success: rec.last_success,
        consecutive_failures: rec.consecutive_failures,
        latency: rec.last_latency,
        last_error: rec
            .last_error
            .as_ref()
            .map(|(class, msg)| failure(*class, msg, &rec.target, rec.route, &rec.url)),
        direct_error: rec
            .direct_error
            .as_ref()
            .map(|(class, msg)| failure(*class, msg, &rec.target, Route::Direct, &rec.url)),
    }
}

/// A failure with a summary that names where it happened.
fn failure(
    class: ErrorClass,
    message: &str,
    target: &ScrapeTarget,
    route: Route,
    url: &str,
) -> ScrapeFailure {
    let place = match (route, &target.address) {
        (Route::NodeProxy, _) => format!("kube-apiserver's node proxy ({url})"),
        (Route::Direct, Some((_, address))) if address.contains(':') => {
            format!("[{address}]:{}", target.port)
        }
        (Route::Direct, Some((_, address))) => format!("{address}:{}", target.port),
        (Route::Direct, None) => String::new(),
    };
    let summary = match class {
        ErrorClass::NoAddress => class.summary(),
        _ => format!("{} {place}", class.summary()),
    };
    let hint = match (route, class) {
        (Route::NodeProxy, ErrorClass::HttpStatus(403)) => {
            "metrics-server's identity lacks RBAC get on nodes/proxy, which --kubelet-node-proxy-fallback needs"
        }
        _ => class.hint(),
    };
    ScrapeFailure {
        class: class.as_str(),
        status_code: match class {
            ErrorClass::HttpStatus(code) => Some(code),
            _ => None,
        },
        message: message.to_owned(),
        summary,
        hint,
    }
}

// === events and gauges ===

/// Most Events sent per check, so a cluster-wide outage cannot flood kube-apiserver.
const MAX_EVENTS_PER_CHECK: usize = 20;
/// Least time between two Events about the same node.
const MIN_EVENT_INTERVAL: Duration = Duration::from_secs(60);

/// Gauges of the current per-node state, by class only (never per node).
#[derive(Clone, Debug, Default)]
pub struct DiagnosisMetrics {
    failing: Family<Vec<(String, String)>, Gauge>,
    via_proxy: Gauge,
}

impl DiagnosisMetrics {
    /// Registers `msrs_kubelet_nodes_failing{class}` and `msrs_kubelet_nodes_via_node_proxy`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "msrs_kubelet_nodes_failing",
            "Nodes whose last scrape failed, by error class",
            m.failing.clone(),
        );
        registry.register(
            "msrs_kubelet_nodes_via_node_proxy",
            "Nodes scraped through kube-apiserver's node proxy because their kubelet port is unreachable",
            m.via_proxy.clone(),
        );
        m
    }

    fn set(&self, records: &[(String, NodeHealthRecord)]) {
        let mut by_class: HashMap<&'static str, i64> = HashMap::new();
        for (_, rec) in records {
            if let Some((class, _)) = &rec.last_error {
                *by_class.entry(class.as_str()).or_default() += 1;
            }
        }
        self.failing.clear();
        for (class, n) in by_class {
            self.failing
                .get_or_create(&vec![("class".to_owned(), class.to_owned())])
                .set(n);
        }
        let proxied = records
            .iter()
            .filter(|(_, r)| r.route == Route::NodeProxy)
            .count();
        self.via_proxy
            .set(i64::try_from(proxied).unwrap_or(i64::MAX));
    }
}

/// What was last reported about a node.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Reported {
    class: Option<ErrorClass>,
    at: Instant,
}

/// Watches the health map once per resolution: updates the gauges, and records an Event on a
/// Node when its failure class changes (a first failure, another class, a recovery), at most
/// once a minute per node and `MAX_EVENTS_PER_CHECK` per check.
pub struct NodeEvents {
    health: NodeHealth,
    metrics: DiagnosisMetrics,
    recorder: Option<Recorder>,
    reported: HashMap<String, Reported>,
    every: Duration,
}

impl std::fmt::Debug for NodeEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeEvents")
            .field("events", &self.recorder.is_some())
            .field("reported", &self.reported.len())
            .finish_non_exhaustive()
    }
}

impl NodeEvents {
    /// `client` None: gauges only.
    pub fn new(
        health: NodeHealth,
        metrics: DiagnosisMetrics,
        client: Option<kube::Client>,
        every: Duration,
    ) -> Self {
        let recorder = client.map(|c| Recorder::new(c, Reporter::from("metrics-server")));
        Self {
            health,
            metrics,
            recorder,
            reported: HashMap::new(),
            every,
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => self.check().await,
            }
        }
    }

    async fn check(&mut self) {
        let records = self.health.snapshot();
        self.metrics.set(&records);
        self.reported
            .retain(|node, _| records.iter().any(|(n, _)| n == node));
        let now = Instant::now();
        let mut sent = 0;
        for (node, rec) in &records {
            let class = rec.last_error.as_ref().map(|(c, _)| *c);
            let due = match self.reported.get(node) {
                None => class.is_some(),
                Some(r) => r.class != class && now.duration_since(r.at) >= MIN_EVENT_INTERVAL,
            };
            if !due || sent >= MAX_EVENTS_PER_CHECK {
                continue;
            }
            sent += 1;
            self.reported
                .insert(node.clone(), Reported { class, at: now });
            if !self.publish(node, rec).await {
                return;
            }
        }
    }

    /// Sends one Event; false when Events are disabled from now on (no RBAC for them).
    async fn publish(&mut self, node: &str, rec: &NodeHealthRecord) -> bool {
        let Some(recorder) = &self.recorder else {
            return true;
        };
        let status = node_status(node.to_owned(), rec);
        let event = match &status.last_error {
            Some(f) => Event {
                type_: EventType::Warning,
                reason: "MetricsScrapeFailed".to_owned(),
                note: Some(truncate(&format!(
                    "metrics-server cannot scrape this node's kubelet: {} ({})",
                    f.summary, f.hint
                ))),
                action: "Scrape".to_owned(),
                secondary: None,
            },
            None => Event {
                type_: EventType::Normal,
                reason: "MetricsScrapeRecovered".to_owned(),
                note: Some(format!(
                    "metrics-server scrapes this node again via {}",
                    status.route
                )),
                action: "Scrape".to_owned(),
                secondary: None,
            },
        };
        let reference = ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Node".to_owned()),
            name: Some(node.to_owned()),
            ..ObjectReference::default()
        };
        match recorder.publish(&event, &reference).await {
            Ok(()) => true,
            Err(kube::Error::Api(s)) if s.code == 403 => {
                tracing::warn!(
                    error = %s.message,
                    "Cannot create Events (RBAC create on events.k8s.io events is missing); Node scrape events are off"
                );
                self.recorder = None;
                false
            }
            Err(e) => {
                tracing::debug!(node, error = %e, "Failed to record a Node event");
                true
            }
        }
    }
}

/// Event notes are limited to 1 KiB.
fn truncate(s: &str) -> String {
    const MAX: usize = 1024;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

// === the node-proxy fallback ===

/// GETs node-proxy paths from kube-apiserver with the server's own credentials.
#[derive(Clone)]
pub struct ApiServerNodeProxy {
    client: kube::Client,
    base_url: String,
    max_body_bytes: usize,
}

impl std::fmt::Debug for ApiServerNodeProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerNodeProxy")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ApiServerNodeProxy {
    /// `base_url` is the cluster URL from the kubeconfig (for logs and the health record).
    pub fn new(client: kube::Client, base_url: &str, max_body_bytes: usize) -> Self {
        Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            max_body_bytes,
        }
    }

    async fn fetch(&self, path: &str) -> Result<Fetched, ScrapeError> {
        let url = self.url(path);
        let request =
            http::Request::get(path)
                .body(Vec::new())
                .map_err(|e| ScrapeError::InvalidUrl {
                    url: url.clone(),
                    detail: e.to_string(),
                })?;
        let request_time = std::time::SystemTime::now();
        let response = self
            .client
            .send(request.map(kube::client::Body::from))
            .await
            .map_err(|e| ScrapeError::Transport {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let (parts, body) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            // kube-apiserver says why in a Status body ("address not allowed", "no endpoints").
            let why = Limited::new(body, STATUS_BODY_LIMIT)
                .collect()
                .await
                .ok()
                .and_then(|b| status_message(&b.to_bytes()));
            let phrase = parts.status.canonical_reason().unwrap_or("");
            return Err(ScrapeError::HttpStatus {
                code: parts.status.as_u16(),
                reason: match why {
                    Some(why) => format!("{phrase} ({why})"),
                    None => phrase.to_owned(),
                },
            });
        }
        let body: Bytes = Limited::new(body, self.max_body_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ScrapeError::BodyTooLarge {
                        limit: self.max_body_bytes,
                    }
                } else {
                    ScrapeError::Transport {
                        url: url.clone(),
                        detail: e.to_string(),
                    }
                }
            })?
            .to_bytes();
        Ok(Fetched {
            body,
            request_time,
            http2: false,
        })
    }
}

/// Most of an error body read for its message.
const STATUS_BODY_LIMIT: usize = 16 * 1024;

/// The `message` of a `meta/v1 Status` body.
fn status_message(body: &[u8]) -> Option<String> {
    let status: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = status.get("message")?.as_str()?.trim();
    (!message.is_empty()).then(|| message.chars().take(256).collect())
}

impl NodeProxy for ApiServerNodeProxy {
    fn get<'a>(&'a self, path: &'a str, deadline: Instant) -> ProxyFuture<'a> {
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, self.fetch(path)).await {
                Ok(result) => result,
                Err(_) => Err(ScrapeError::Timeout {
                    url: self.url(path),
                }),
            }
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// Shares one proxy as the scraper's trait object.
pub fn node_proxy(proxy: ApiServerNodeProxy) -> Arc<dyn NodeProxy> {
    Arc::new(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_server_kubelet::{AddressConfig, NodeTarget, TlsFailure};

    fn target() -> ScrapeTarget {
        ScrapeTarget::of(
            &NodeTarget {
                name: "w2".into(),
                addresses: vec![("InternalIP".into(), "10.0.0.81".into())],
                ..NodeTarget::default()
            },
            &AddressConfig::default(),
        )
    }

    #[test]
    fn summaries_name_the_endpoint_and_the_class() {
        let t = target();
        let url = "https://10.0.0.81:10250/metrics/resource";
        let f = failure(ErrorClass::ConnectTimeout, "m", &t, Route::Direct, url);
        assert_eq!(f.summary, "connect timeout to 10.0.0.81:10250");
        assert_eq!(f.class, "connect_timeout");
        assert!(f.hint.contains("unreachable"));
        let f = failure(
            ErrorClass::Tls(TlsFailure::NameMismatch),
            "m",
            &t,
            Route::Direct,
            url,
        );
        assert_eq!(
            f.summary,
            "TLS: certificate not valid for the address 10.0.0.81:10250"
        );
        assert_eq!(f.class, "tls_name_mismatch");
        let f = failure(ErrorClass::HttpStatus(403), "m", &t, Route::Direct, url);
        assert_eq!(
            (f.summary.as_str(), f.status_code),
            ("HTTP 403 from 10.0.0.81:10250", Some(403))
        );
        assert!(f.hint.contains("nodes/metrics"));
        let f = failure(
            ErrorClass::HttpStatus(503),
            "m",
            &t,
            Route::NodeProxy,
            "https://127.0.0.1:6443/api/v1/nodes/w2/proxy/metrics/resource",
        );
        assert_eq!(
            f.summary,
            "HTTP 503 from kube-apiserver's node proxy (https://127.0.0.1:6443/api/v1/nodes/w2/proxy/metrics/resource)"
        );
        let f = failure(ErrorClass::HttpStatus(403), "m", &t, Route::NodeProxy, "u");
        assert!(f.hint.contains("nodes/proxy"), "{}", f.hint);
    }

    #[test]
    fn the_node_proxy_error_keeps_kube_apiservers_reason() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"address not allowed","reason":"BadRequest","code":400}"#;
        assert_eq!(status_message(body).as_deref(), Some("address not allowed"));
        assert_eq!(status_message(b"<html>"), None);
        assert_eq!(status_message(br#"{"message":""}"#), None);
    }

    #[test]
    fn long_notes_are_cut_at_a_character_boundary() {
        let s = "é".repeat(600);
        let t = truncate(&s);
        assert!(t.len() <= 1024 && t.ends_with("..."));
        assert_eq!(truncate("short"), "short");
    }
}
