//! The `metrics.k8s.io` HTTP API (v1 and v1beta1, same data) of metrics-server-rs, without
//! transport security: a byte-compatible port of what kubernetes-sigs
//! metrics-server v0.9.0 (k8s.io/apiserver v0.36) answers on its secure port.
//!
//! ```text
//!   TLS + authn/authz layer (metrics-server-auth)   ── uses request_attributes()
//!        │
//!        ▼
//!   router(ApiState)   (max-in-flight and timeout: limits, placed by the stack)
//!        │
//!        ├─ /apis, /apis/metrics.k8s.io[/{v}]          discovery (legacy + aggregated v2, ETag; JSON, YAML, protobuf)
//!        ├─ /apis/metrics.k8s.io/{v}/nodes[/name]      ┐ ClusterView (informer caches)
//!        ├─ .../pods, .../namespaces/{ns}/pods[/name]  ┘ + MetricsSource (core Snapshot)
//!        │     {v}: each served version (v1, v1beta1), identical data
//!        │     JSON | Table | PartialObjectMetadata(List), pretty, selectors, Status errors
//!        ├─ /healthz /livez /readyz [/check]            HealthState + storage readiness + Clock
//!        ├─ /metrics                                    prometheus-client Registry → text 0.0.4
//!        ├─ /scrape-health (+ .../{v}/scrapehealth)     per-node scrape health (ScrapeDiagnosis)
//!        ├─ /openapi/v2, /openapi/v3[/apis/metrics.k8s.io/{v}]
//!        └─ /version, /                                 (anything else: 404 page not found)
//! ```
//!
//! Architecture invariants: handlers never await the network (caches and the
//! published snapshot only); every body is written directly as Go's
//! `encoding/json` would write it (field order of the Go structs, HTML
//! escaping, compact + `\n` or `MarshalIndent` without `\n`); request data
//! never causes a panic.

mod attributes;
mod cluster;
mod cors;
mod diagnosis;
mod discovery;
mod health;
mod hsts;
mod json;
mod limits;
mod listjson;
mod metrics;
mod negotiate;
mod objects;
mod openapi;
mod protobuf;
mod query;
mod router;
mod source;
mod state;
mod status;
mod yaml;

pub use attributes::{Attributes, NonResourceAttributes, ResourceAttributes, request_attributes};
pub use cluster::{
    ClusterError, ClusterView, LabelFilter, LabelMap, NodeMeta, PodMeta, StaticCluster,
};
pub use cors::{AllowedOrigins, Cors, CorsError, CorsLayer};
pub use diagnosis::{
    NoDiagnosis, NodeScrapeStatus, SCRAPE_HEALTH_API_VERSION, ScrapeDiagnosis, ScrapeFailure,
};
pub use discovery::{MetricsVersion, NoVersionServed, ServedVersions};
pub use health::{HealthState, ReadinessCheck};
pub use hsts::{Hsts, HstsError, HstsLayer, hsts_header_value};
pub use limits::{
    InFlightLimits, InFlightPermit, go_http_error, is_long_running, is_mutating, request_timed_out,
    too_many_requests,
};
pub use metrics::{
    ApiMetrics, exponential_buckets, format_go_float, openmetrics_to_text, render_openmetrics,
    render_text,
};
pub use objects::{
    NodeItem, PodItem, encode_node_metrics_list, encode_pod_metrics_list, pod_metrics_list_pieces,
};
pub use query::Query;
pub use router::router;
pub use source::{Clock, MetricsSource, MetricsView, SystemClock};
pub use state::{ApiConfig, ApiState, VersionInfo};
pub use status::{Status, StatusDetails};
