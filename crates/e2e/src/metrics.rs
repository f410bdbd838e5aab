//! The `metrics.k8s.io` objects (`v1` and `v1beta1` share one schema), read through kube-apiserver's aggregation layer as upstream's
//! e2e suite does with its metrics clientset.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, anyhow};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::quantity::Quantity;

/// The API path prefix of v1beta1, the version every client of upstream's servers reads.
pub const API: &str = "/apis/metrics.k8s.io/v1beta1";

/// The versions our server serves: v1 (GA in Kubernetes 1.37, preferred) and v1beta1.
pub const VERSIONS: [&str; 2] = ["v1", "v1beta1"];

/// The API path prefix of `version`.
pub fn api(version: &str) -> String {
    format!("/apis/metrics.k8s.io/{version}")
}

/// The metadata fields the suite reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// Object name.
    pub name: String,
    /// Namespace (pods only).
    pub namespace: Option<String>,
}

/// `NodeMetrics`.
#[derive(Clone, Debug, Deserialize)]
pub struct NodeMetrics {
    /// Metadata.
    pub metadata: Meta,
    /// Sample time.
    pub timestamp: Option<String>,
    /// Sampling window.
    pub window: Option<String>,
    /// `cpu` and `memory` quantities.
    #[serde(default)]
    pub usage: BTreeMap<String, String>,
}

/// `PodMetrics`.
#[derive(Clone, Debug, Deserialize)]
pub struct PodMetrics {
    /// Metadata.
    pub metadata: Meta,
    /// Sample time.
    pub timestamp: Option<String>,
    /// Sampling window.
    pub window: Option<String>,
    /// Per-container usage.
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

/// One container of a `PodMetrics`.
#[derive(Clone, Debug, Deserialize)]
pub struct ContainerMetrics {
    /// Container name.
    pub name: String,
    /// `cpu` and `memory` quantities.
    #[serde(default)]
    pub usage: BTreeMap<String, String>,
}

/// `NodeMetricsList` / `PodMetricsList`.
#[derive(Clone, Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct List<T> {
    /// The items (a JSON `null` reads as empty).
    #[serde(default = "Vec::new", deserialize_with = "null_as_empty")]
    pub items: Vec<T>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Reads a `usage` entry as a quantity.
pub fn usage(usage: &BTreeMap<String, String>, resource: &str) -> Result<Quantity> {
    let raw = usage
        .get(resource)
        .ok_or_else(|| anyhow!("no {resource:?} in usage {usage:?}"))?;
    Quantity::parse(raw).with_context(|| format!("usage {resource}"))
}

impl ContainerMetrics {
    /// CPU in millicores, rounded up.
    pub fn cpu_millis(&self) -> Result<i128> {
        Ok(usage(&self.usage, "cpu")?.milli_value())
    }

    /// Memory in whole mebibytes, rounded down (upstream: `Value()/1024/1024`).
    pub fn memory_mebibytes(&self) -> Result<i128> {
        Ok(usage(&self.usage, "memory")?.value() / (1024 * 1024))
    }
}

/// GETs `path` through kube-apiserver and decodes it. API errors keep their `Status` (so a 404 can be
/// told apart with [`not_found`]).
pub async fn get<T: DeserializeOwned>(client: &kube::Client, path: &str) -> Result<T, kube::Error> {
    let request = http::Request::get(path)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    client.request(request).await
}

/// Whether an error is the API server's 404.
pub fn not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_metrics_decode_and_expose_client_go_style_values() {
        let json = r#"{"kind":"PodMetrics","apiVersion":"metrics.k8s.io/v1beta1",
            "metadata":{"name":"p","namespace":"default","creationTimestamp":"2026-08-04T10:00:05Z"},
            "timestamp":"2026-08-04T09:59:58Z","window":"15.004s",
            "containers":[{"name":"c","usage":{"cpu":"50000000n","memory":"51200Ki"}}]}"#;
        let pod: PodMetrics = serde_json::from_str(json).unwrap();
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(pod.containers[0].cpu_millis().unwrap(), 50);
        assert_eq!(pod.containers[0].memory_mebibytes().unwrap(), 50);
    }

    #[test]
    fn lists_with_null_or_missing_items_are_empty() {
        let a: List<NodeMetrics> = serde_json::from_str(r#"{"items":null}"#).unwrap();
        let b: List<NodeMetrics> = serde_json::from_str(r#"{"metadata":{}}"#).unwrap();
        assert!(a.items.is_empty() && b.items.is_empty());
    }

    #[test]
    fn a_missing_resource_is_an_error() {
        let c = ContainerMetrics {
            name: "c".into(),
            usage: BTreeMap::from([("cpu".to_owned(), "5m".to_owned())]),
        };
        assert!(c.memory_mebibytes().is_err());
    }
}
