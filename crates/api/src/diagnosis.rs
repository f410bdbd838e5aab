//! Why a node or pod has no metrics: the scrape health that the binary feeds in, served as a
//! JSON document (`/scrape-health`, and under the API group so it is reachable through the
//! aggregator) and folded into the message of a NotFound (user pain: `<unknown>` with no reason).
//!
//! Only the message grows; `reason`, `code` and `details` of the Status stay upstream's.

use std::time::{Duration, SystemTime};

use crate::json::JsonWriter;
use crate::source::unix_nanos;

/// `apiVersion` of the scrape-health document (ours, not a Kubernetes group).
pub const SCRAPE_HEALTH_API_VERSION: &str = "diagnostics.metrics-server-rs/v1alpha1";

/// How many failing nodes a pod's message names at most.
const NAMED_FAILING_NODES: usize = 3;

/// One failed scrape, as operators read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeFailure {
    /// A stable class name (`connect_timeout`, `tls_name_mismatch`, `http_status`, ...).
    pub class: &'static str,
    /// The HTTP status, for `http_status`.
    pub status_code: Option<u16>,
    /// The error as logged.
    pub message: String,
    /// A short phrase with the endpoint: `connect timeout to 10.0.0.81:10250`.
    pub summary: String,
    /// What it usually means.
    pub hint: &'static str,
}

/// The scrape state of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeScrapeStatus {
    /// Node name.
    pub node: String,
    /// Address scraped and the `status.addresses` type it came from.
    pub address: Option<(String, String)>,
    /// Port scraped.
    pub port: u16,
    /// `status` or `flag`.
    pub port_source: &'static str,
    /// `direct` or `node-proxy`.
    pub route: &'static str,
    /// URL of the last attempt.
    pub url: String,
    /// When the last attempt finished.
    pub last_attempt: SystemTime,
    /// When the last complete scrape finished.
    pub last_success: Option<SystemTime>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Duration of the last attempt.
    pub latency: Duration,
    /// Why the last attempt failed.
    pub last_error: Option<ScrapeFailure>,
    /// While scraped through the node proxy: why the direct scrape fails.
    pub direct_error: Option<ScrapeFailure>,
}

/// The scraper's per-node health, as the API reads it. Reads must be cheap (a local map).
pub trait ScrapeDiagnosis: Send + Sync + 'static {
    /// Every node targeted by the latest scrape, sorted by name.
    fn nodes(&self) -> Vec<NodeScrapeStatus>;
    /// One node's state; `None` when it was not targeted.
    fn node(&self, name: &str) -> Option<NodeScrapeStatus>;
}

/// No diagnosis (tests and tools without a scraper).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDiagnosis;

impl ScrapeDiagnosis for NoDiagnosis {
    fn nodes(&self) -> Vec<NodeScrapeStatus> {
        Vec::new()
    }
    fn node(&self, _name: &str) -> Option<NodeScrapeStatus> {
        None
    }
}

/// Writes the scrape-health document.
pub(crate) fn write_scrape_health(
    w: &mut JsonWriter<'_>,
    nodes: &[NodeScrapeStatus],
    resolution: Duration,
    now: SystemTime,
) {
    w.begin_object();
    w.field_str("kind", "ScrapeHealth");
    w.field_str("apiVersion", SCRAPE_HEALTH_API_VERSION);
    w.field_str("metricResolution", &go_duration(resolution));
    w.field_str("generatedAt", &rfc3339(now));
    let failing = nodes.iter().filter(|n| n.last_error.is_some()).count();
    w.key("summary");
    w.begin_object();
    w.key("nodes");
    w.int(count(nodes.len()));
    w.key("healthy");
    w.int(count(nodes.len() - failing));
    w.key("failing");
    w.int(count(failing));
    w.end_object();
    w.key("nodes");
    w.begin_array();
    for node in nodes {
        write_node(w, node);
    }
    w.end_array();
    w.end_object();
}

fn write_node(w: &mut JsonWriter<'_>, n: &NodeScrapeStatus) {
    w.begin_object();
    w.field_str("node", &n.node);
    let (address_type, address) = match &n.address {
        Some((t, a)) => (Some(t.as_str()), Some(a.as_str())),
        None => (None, None),
    };
    optional_str(w, "address", address);
    optional_str(w, "addressType", address_type);
    w.key("port");
    w.int(i64::from(n.port));
    w.field_str("portSource", n.port_source);
    w.field_str("route", n.route);
    w.field_str("url", &n.url);
    w.field_str("lastAttempt", &rfc3339(n.last_attempt));
    optional_str(w, "lastSuccess", n.last_success.map(rfc3339).as_deref());
    w.key("consecutiveFailures");
    w.int(i64::from(n.consecutive_failures));
    w.key("latencyMillis");
    w.int(i64::try_from(n.latency.as_millis()).unwrap_or(i64::MAX));
    write_failure(w, "lastError", n.last_error.as_ref());
    if n.direct_error.is_some() {
        write_failure(w, "directError", n.direct_error.as_ref());
    }
    w.end_object();
}

fn write_failure(w: &mut JsonWriter<'_>, key: &str, failure: Option<&ScrapeFailure>) {
    w.key(key);
    let Some(f) = failure else {
        w.null();
        return;
    };
    w.begin_object();
    w.field_str("class", f.class);
    if let Some(code) = f.status_code {
        w.key("statusCode");
        w.int(i64::from(code));
    }
    w.field_str("message", &f.message);
    w.field_str("summary", &f.summary);
    w.field_str("hint", f.hint);
    w.end_object();
}

fn optional_str(w: &mut JsonWriter<'_>, key: &str, value: Option<&str>) {
    w.key(key);
    match value {
        Some(v) => w.string(v),
        None => w.null(),
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn rfc3339(t: SystemTime) -> String {
    metrics_server_core::format_rfc3339_seconds(unix_nanos(t))
}

/// Why a node that exists has no metrics. `selected` is false when `--node-selector`
/// excludes it (it is then never scraped).
pub(crate) fn node_reason(
    status: Option<&NodeScrapeStatus>,
    selected: bool,
    now: SystemTime,
    resolution: Duration,
) -> String {
    if !selected {
        return "the node is not scraped: it does not match --node-selector".to_owned();
    }
    let Some(s) = status else {
        return format!(
            "the node has not been scraped yet; the first scrape is due within {}",
            go_duration(resolution)
        );
    };
    if let Some(err) = &s.last_error {
        let repeated = if s.consecutive_failures > 1 {
            format!(" ({} times in a row)", s.consecutive_failures)
        } else {
            String::new()
        };
        return format!(
            "last scrape failed {} ago{repeated}: {} ({})",
            ago(now, s.last_attempt),
            err.summary,
            err.hint
        );
    }
    // Scraped fine but nothing servable: usage is a rate and needs two samples.
    format!(
        "last scrape succeeded {} ago via {}, but node usage needs two scrapes; expected within {}",
        ago(now, s.last_attempt),
        s.route,
        go_duration(resolution)
    )
}

/// Why a running pod has no metrics. The pod's node is not in the metadata-only cache, so
/// the message names the pod's age and any nodes that currently fail.
pub(crate) fn pod_reason(
    created: Option<SystemTime>,
    failing: &[NodeScrapeStatus],
    now: SystemTime,
    resolution: Duration,
) -> String {
    // A container needs two scrapes after it starts; allow one more for the pod to start.
    let expected = resolution.saturating_mul(3);
    if let Some(created) = created {
        let age = now.duration_since(created).unwrap_or_default();
        if age < expected {
            return format!(
                "the pod was created {} ago; first usage expected within {}",
                go_duration(round_secs(age)),
                go_duration(expected)
            );
        }
    }
    let mut why = "no kubelet reported usage for this pod in the last scrapes".to_owned();
    if failing.is_empty() {
        why.push_str(
            " (every node scrapes fine: the pod's containers may not be running, or its kubelet omits them)",
        );
        return why;
    }
    let named: Vec<String> = failing
        .iter()
        .take(NAMED_FAILING_NODES)
        .map(|n| {
            let summary = n.last_error.as_ref().map_or("", |e| e.summary.as_str());
            format!("{} ({summary})", n.node)
        })
        .collect();
    let more = failing.len().saturating_sub(NAMED_FAILING_NODES);
    why.push_str(&format!(
        "; {} node(s) fail to scrape: {}{}",
        failing.len(),
        named.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ));
    why
}

fn ago(now: SystemTime, then: SystemTime) -> String {
    go_duration(round_secs(now.duration_since(then).unwrap_or_default()))
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500))
}

/// Go's `time.Duration.String()` (`15s`, `1m30s`, `1.5s`).
pub(crate) fn go_duration(d: Duration) -> String {
    metrics_server_core::format_duration(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn failing(node: &str, at: SystemTime) -> NodeScrapeStatus {
        NodeScrapeStatus {
            node: node.to_owned(),
            address: Some(("InternalIP".into(), "10.0.0.81".into())),
            port: 10250,
            port_source: "flag",
            route: "direct",
            url: "https://10.0.0.81:10250/metrics/resource".into(),
            last_attempt: at,
            last_success: None,
            consecutive_failures: 3,
            latency: Duration::from_secs(10),
            last_error: Some(ScrapeFailure {
                class: "connect_timeout",
                status_code: None,
                message: "Get \"https://10.0.0.81:10250/metrics/resource\": context deadline exceeded (while connecting)".into(),
                summary: "connect timeout to 10.0.0.81:10250".into(),
                hint: "kubelet port unreachable from metrics-server",
            }),
            direct_error: None,
        }
    }

    #[test]
    fn a_failing_node_says_when_what_and_why() {
        let s = failing("worker-2", t(0));
        assert_eq!(
            node_reason(Some(&s), true, t(40), Duration::from_secs(15)),
            "last scrape failed 40s ago (3 times in a row): connect timeout to 10.0.0.81:10250 (kubelet port unreachable from metrics-server)"
        );
    }

    #[test]
    fn unselected_unscraped_and_single_sample_nodes_say_so() {
        let res = Duration::from_secs(15);
        assert!(node_reason(None, false, t(0), res).contains("--node-selector"));
        assert_eq!(
            node_reason(None, true, t(0), res),
            "the node has not been scraped yet; the first scrape is due within 15s"
        );
        let mut ok = failing("n", t(0));
        ok.last_error = None;
        ok.consecutive_failures = 0;
        ok.last_success = Some(t(0));
        assert!(node_reason(Some(&ok), true, t(5), res).starts_with(
            "last scrape succeeded 5s ago via direct, but node usage needs two scrapes"
        ));
    }

    #[test]
    fn a_new_pod_says_when_usage_is_expected() {
        let res = Duration::from_secs(15);
        assert_eq!(
            pod_reason(Some(t(0)), &[], t(5), res),
            "the pod was created 5s ago; first usage expected within 45s"
        );
    }

    #[test]
    fn an_old_pod_names_the_failing_nodes_or_says_all_scrape_fine() {
        let res = Duration::from_secs(15);
        let msg = pod_reason(Some(t(0)), &[], t(600), res);
        assert!(msg.contains("every node scrapes fine"), "{msg}");
        let nodes: Vec<_> = (1..=5).map(|i| failing(&format!("w{i}"), t(0))).collect();
        let msg = pod_reason(None, &nodes, t(600), res);
        assert!(
            msg.ends_with("; 5 node(s) fail to scrape: w1 (connect timeout to 10.0.0.81:10250), w2 (connect timeout to 10.0.0.81:10250), w3 (connect timeout to 10.0.0.81:10250) and 2 more"),
            "{msg}"
        );
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn the_document_lists_nodes_with_a_summary() {
        let mut out = Vec::new();
        let mut healthy = failing("a", t(0));
        healthy.last_error = None;
        healthy.route = "node-proxy";
        healthy.direct_error = failing("x", t(0)).last_error;
        let nodes = [healthy, failing("b", t(0))];
        write_scrape_health(
            &mut JsonWriter::new(&mut out, false),
            &nodes,
            Duration::from_secs(15),
            t(1),
        );
        let doc = String::from_utf8(out).unwrap();
        assert!(doc.starts_with("{\"kind\":\"ScrapeHealth\",\"apiVersion\":\"diagnostics.metrics-server-rs/v1alpha1\",\"metricResolution\":\"15s\",\"generatedAt\":\"2023-11-14T22:13:21Z\",\"summary\":{\"nodes\":2,\"healthy\":1,\"failing\":1},\"nodes\":[{\"node\":\"a\",\"address\":\"10.0.0.81\",\"addressType\":\"InternalIP\",\"port\":10250,\"portSource\":\"flag\",\"route\":\"node-proxy\""), "{doc}");
        assert!(
            doc.contains("\"lastError\":null,\"directError\":{\"class\":\"connect_timeout\""),
            "{doc}"
        );
        assert!(doc.contains("\"lastSuccess\":null,\"consecutiveFailures\":3,\"latencyMillis\":10000,\"lastError\":{\"class\":\"connect_timeout\""), "{doc}");
    }
}
