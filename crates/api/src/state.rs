//! Configuration and shared state of the router.

use std::sync::Arc;
use std::time::Duration;

use metrics_server_core::LabelSelector;
use prometheus_client::registry::Registry;

use crate::cluster::ClusterView;
use crate::diagnosis::{NoDiagnosis, ScrapeDiagnosis};
use crate::discovery::ServedVersions;
use crate::health::HealthState;
use crate::metrics::ApiMetrics;
use crate::source::{Clock, MetricsSource, SystemClock};

/// `version.Info` served on `/version` (contents are not contractual).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// Major version, e.g. `0`.
    pub major: String,
    /// Minor version, e.g. `9`.
    pub minor: String,
    /// e.g. `v0.9.0`.
    pub git_version: String,
    /// Commit hash.
    pub git_commit: String,
    /// `clean` or `dirty`.
    pub git_tree_state: String,
    /// RFC 3339 build date.
    pub build_date: String,
    /// Toolchain version; upstream's `goVersion` field.
    pub go_version: String,
    /// `rustc`.
    pub compiler: String,
    /// e.g. `linux/amd64`.
    pub platform: String,
}

impl Default for VersionInfo {
    fn default() -> Self {
        Self {
            major: String::new(),
            minor: String::new(),
            git_version: "v0.0.0-master+$Format:%H$".to_owned(),
            git_commit: "$Format:%H$".to_owned(),
            git_tree_state: String::new(),
            build_date: "1970-01-01T00:00:00Z".to_owned(),
            go_version: "n/a".to_owned(),
            compiler: "rustc".to_owned(),
            platform: format!("{}/{}", std::env::consts::OS, go_arch()),
        }
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Settings of the API (spec B.1, B.2).
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// `--node-selector`: applied to node **lists** only (spec E.5).
    pub node_selector: LabelSelector,
    /// `--max-requests-inflight` for read-only requests (0 = unlimited). This and the next
    /// two fields are applied by the serving stack around the router, not by the router.
    pub max_requests_inflight: usize,
    /// `--max-mutating-requests-inflight` (0 = unlimited). Mutating
    /// requests only ever get 404/405 here, but they are counted apart.
    pub max_mutating_requests_inflight: usize,
    /// `--request-timeout` (zero disables the timeout).
    pub request_timeout: Duration,
    /// `/version` contents; also the OpenAPI `info.version`.
    pub version: VersionInfo,
    /// When set, `/apis` lists the group with
    /// `serverAddressByClientCIDRs: [{clientCIDR: 0.0.0.0/0, serverAddress}]`
    /// like upstream's generic apiserver (`<advertise-address>:<port>`).
    pub server_address: Option<String>,
    /// Serve OpenMetrics on `/metrics` when the Accept header asks for
    /// `application/openmetrics-text`. Upstream never does (its handler has
    /// OpenMetrics disabled), so the default is off.
    pub openmetrics: bool,
    /// The `metrics.k8s.io` versions served (`--served-metrics-versions`).
    pub served_versions: ServedVersions,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            node_selector: LabelSelector::everything(),
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            request_timeout: Duration::from_secs(60),
            version: VersionInfo::default(),
            server_address: None,
            openmetrics: false,
            served_versions: ServedVersions::default(),
        }
    }
}

/// Everything a request handler reads. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) cluster: Arc<dyn ClusterView>,
    pub(crate) metrics: Arc<dyn MetricsSource>,
    pub(crate) diagnosis: Arc<dyn ScrapeDiagnosis>,
    pub(crate) health: Arc<HealthState>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) api_metrics: ApiMetrics,
    pub(crate) discovery: Arc<crate::discovery::Discovery>,
    pub(crate) openapi: Arc<crate::openapi::OpenApi>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("config", &self.config)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// Builds the state. `registry` must already contain every family that
    /// `/metrics` serves, including [`ApiMetrics`] (see
    /// [`ApiMetrics::register`]).
    pub fn new(
        config: ApiConfig,
        cluster: Arc<dyn ClusterView>,
        metrics: Arc<dyn MetricsSource>,
        health: Arc<HealthState>,
        registry: Arc<Registry>,
        api_metrics: ApiMetrics,
    ) -> Self {
        let discovery = Arc::new(crate::discovery::Discovery::new(
            config.server_address.as_deref(),
            config.served_versions,
        ));
        let openapi = Arc::new(crate::openapi::OpenApi::new(
            &config.version.git_version,
            config.served_versions,
        ));
        Self {
            config: Arc::new(config),
            cluster,
            metrics,
            diagnosis: Arc::new(NoDiagnosis),
            health,
            clock: Arc::new(SystemClock),
            registry,
            api_metrics,
            discovery,
            openapi,
        }
    }

    /// Sets where per-node scrape health comes from (the scraper), for `/scrape-health`
    /// and the reasons in NotFound messages.
    #[must_use]
    pub fn with_diagnosis(mut self, diagnosis: Arc<dyn ScrapeDiagnosis>) -> Self {
        self.diagnosis = diagnosis;
        self
    }

    /// Replaces the clock (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    /// The health state shared with the binary.
    pub fn health(&self) -> &Arc<HealthState> {
        &self.health
    }
}
