//! The server's scrape-health document (`GET /apis/metrics.k8s.io/v1beta1/scrapehealth`), parsed
//! leniently: every field is optional and unknown fields are ignored, so doctor keeps working with
//! servers older or newer than itself.

use serde::{Deserialize, Serialize};

use crate::error::DoctorError;

/// The path of the document through kube-apiserver's aggregation layer.
pub const AGGREGATED_PATH: &str = "/apis/metrics.k8s.io/v1beta1/scrapehealth";

/// The document's `kind`.
pub const KIND: &str = "ScrapeHealth";

/// The whole document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScrapeHealth {
    pub kind: Option<String>,
    pub metric_resolution: Option<String>,
    pub generated_at: Option<String>,
    pub nodes: Vec<NodeHealth>,
}

/// One node's scrape health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeHealth {
    pub node: String,
    pub address: Option<String>,
    pub address_type: Option<String>,
    pub port: Option<u32>,
    pub port_source: Option<String>,
    /// `direct` or `node-proxy`.
    pub route: Option<String>,
    pub url: Option<String>,
    pub last_attempt: Option<String>,
    pub last_success: Option<String>,
    pub consecutive_failures: u64,
    pub latency_millis: Option<u64>,
    pub last_error: Option<NodeError>,
    /// While scraped through the node proxy: why the direct scrape fails.
    pub direct_error: Option<NodeError>,
}

/// The last failure of a node's scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeError {
    pub class: String,
    pub status_code: Option<u16>,
    pub message: String,
    /// A short phrase with the endpoint (`connect timeout to 10.0.0.81:10250`).
    pub summary: Option<String>,
    pub hint: Option<String>,
}

/// Parses the document; a `kind` other than `ScrapeHealth` is an error (something else answered).
pub fn parse(text: &str) -> Result<ScrapeHealth, DoctorError> {
    let doc: ScrapeHealth = serde_json::from_str(text)
        .map_err(|e| DoctorError::Decode(format!("scrape-health document: {e}")))?;
    match doc.kind.as_deref() {
        Some(KIND) | None => Ok(doc),
        Some(other) => Err(DoctorError::Decode(format!(
            "expected kind {KIND}, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_example_parses_and_unknown_fields_are_ignored() {
        let doc = parse(
            r#"{"kind":"ScrapeHealth","apiVersion":"diagnostics.metrics-server-rs/v1alpha1",
            "metricResolution":"15s","summary":{"nodes":2},"futureField":[1,2],
            "nodes":[{"node":"worker-2","address":"10.0.0.81","addressType":"InternalIP","port":10250,
            "portSource":"status","route":"direct","url":"https://10.0.0.81:10250/metrics/resource",
            "lastAttempt":"2026-12-03T07:00:00Z","lastSuccess":null,"consecutiveFailures":3,
            "latencyMillis":12,"lastError":{"class":"connect_timeout","message":"deadline","hint":"x","extra":1}},
            {"node":"worker-1","lastError":null,"route":"node-proxy",
            "directError":{"class":"connect_refused","summary":"connection refused by 10.0.0.80:10250"}}]}"#,
        )
        .unwrap();
        assert_eq!(doc.metric_resolution.as_deref(), Some("15s"));
        assert_eq!(doc.nodes.len(), 2);
        let n = &doc.nodes[0];
        assert_eq!(n.port, Some(10250));
        assert_eq!(n.consecutive_failures, 3);
        assert_eq!(n.last_success, None);
        assert_eq!(n.last_error.as_ref().unwrap().class, "connect_timeout");
        assert_eq!(doc.nodes[1].last_error, None);
        let direct = doc.nodes[1].direct_error.as_ref().unwrap();
        assert_eq!(direct.class, "connect_refused");
        assert_eq!(
            direct.summary.as_deref(),
            Some("connection refused by 10.0.0.80:10250")
        );
    }

    #[test]
    fn another_kind_or_no_json_is_an_error() {
        assert!(parse(r#"{"kind":"Status","code":404}"#).is_err());
        assert!(parse("404 page not found").is_err());
        assert_eq!(parse("{}").unwrap(), ScrapeHealth::default());
    }
}
