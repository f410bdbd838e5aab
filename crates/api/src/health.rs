//! `/healthz`, `/livez` and `/readyz` (spec E.11), byte-compatible with
//! `k8s.io/apiserver/pkg/server/healthz` and metrics-server's probes.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};

use crate::query::Query;
use crate::source::{Clock, MetricsView, unix_nanos};
use crate::status::go_quote;

/// Probe inputs that the binary updates; read on every probe.
#[derive(Debug)]
pub struct HealthState {
    resolution: Duration,
    node_informer_synced: AtomicBool,
    pod_informer_synced: AtomicBool,
    /// Metadata informers that have not synced (GVR strings).
    metadata_unsynced: Mutex<Vec<String>>,
    /// Unix ns of the start of the last tick; `i64::MIN` = never.
    tick_last_start: AtomicI64,
    shutdown: AtomicBool,
    /// `shard-complete`, listed in `/readyz` only once set (sharded high availability).
    shard_complete: OnceLock<Arc<dyn ReadinessCheck>>,
}

/// A readiness condition of our own, supplied by the binary.
pub trait ReadinessCheck: Send + Sync + std::fmt::Debug {
    /// `Err(reason)` while not ready.
    fn check(&self) -> Result<(), String>;
}

impl HealthState {
    /// The scrape interval (`--metric-resolution`).
    pub fn resolution(&self) -> Duration {
        self.resolution
    }

    /// Fresh state for a server scraping every `resolution`: informers not
    /// synced, no tick yet, not shutting down.
    pub fn new(resolution: Duration) -> Self {
        Self {
            resolution,
            node_informer_synced: AtomicBool::new(false),
            pod_informer_synced: AtomicBool::new(false),
            metadata_unsynced: Mutex::new(vec!["/v1, Resource=pods".to_owned()]),
            tick_last_start: AtomicI64::new(i64::MIN),
            shutdown: AtomicBool::new(false),
            shard_complete: OnceLock::new(),
        }
    }

    /// Adds the `shard-complete` check to `/readyz` (after upstream's checks). Once only.
    pub fn set_shard_check(&self, check: Arc<dyn ReadinessCheck>) {
        let _ = self.shard_complete.set(check);
    }

    /// The Node informer has (or has not) synced.
    pub fn set_node_informer_synced(&self, synced: bool) {
        self.node_informer_synced.store(synced, Ordering::Release);
    }

    /// The metadata-only Pod informer has (or has not) synced. It backs both
    /// `metric-informer-sync` and `metadata-informer-sync`.
    pub fn set_pod_informer_synced(&self, synced: bool) {
        self.pod_informer_synced.store(synced, Ordering::Release);
        if let Ok(mut m) = self.metadata_unsynced.lock() {
            m.clear();
            if !synced {
                m.push("/v1, Resource=pods".to_owned());
            }
        }
    }

    /// A scrape tick starts now (`tickLastStart`).
    pub fn record_tick_start(&self, at: SystemTime) {
        self.tick_last_start
            .store(unix_nanos(at), Ordering::Release);
    }

    /// The termination signal arrived: `/readyz` fails from now on.
    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    /// True once [`Self::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}

/// The three probe endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Healthz,
    Livez,
    Readyz,
}

impl Endpoint {
    pub(crate) fn from_path_segment(s: &str) -> Option<Self> {
        match s {
            "healthz" => Some(Self::Healthz),
            "livez" => Some(Self::Livez),
            "readyz" => Some(Self::Readyz),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Healthz => "healthz",
            Self::Livez => "livez",
            Self::Readyz => "readyz",
        }
    }

    fn checks(self) -> &'static [Check] {
        use Check::*;
        match self {
            Self::Healthz => &[
                Ping,
                Log,
                MaxInFlightHook,
                ObjectCountHook,
                MetadataInformerSync,
            ],
            Self::Livez => &[
                Ping,
                Log,
                MaxInFlightHook,
                ObjectCountHook,
                MetricCollectionTimely,
                MetadataInformerSync,
            ],
            Self::Readyz => &[
                Ping,
                Log,
                MaxInFlightHook,
                ObjectCountHook,
                MetricStorageReady,
                MetricInformerSync,
                MetadataInformerSync,
                Shutdown,
                ShardComplete,
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Ping,
    Log,
    MaxInFlightHook,
    ObjectCountHook,
    MetricStorageReady,
    MetricInformerSync,
    MetadataInformerSync,
    MetricCollectionTimely,
    Shutdown,
    ShardComplete,
}

/// What a check needs to run.
pub(crate) struct ProbeContext<'a> {
    pub(crate) health: &'a HealthState,
    pub(crate) metrics: &'a dyn MetricsView,
    pub(crate) clock: &'a dyn Clock,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Log => "log",
            Self::MaxInFlightHook => "poststarthook/max-in-flight-filter",
            Self::ObjectCountHook => "poststarthook/storage-object-count-tracker-hook",
            Self::MetricStorageReady => "metric-storage-ready",
            Self::MetricInformerSync => "metric-informer-sync",
            Self::MetadataInformerSync => "metadata-informer-sync",
            Self::MetricCollectionTimely => "metric-collection-timely",
            Self::Shutdown => "shutdown",
            Self::ShardComplete => "shard-complete",
        }
    }

    /// Whether the check exists on this server (ours only when configured).
    fn enabled(self, health: &HealthState) -> bool {
        self != Self::ShardComplete || health.shard_complete.get().is_some()
    }

    fn run(self, ctx: &ProbeContext<'_>) -> Result<(), String> {
        let name = self.name();
        match self {
            Self::Ping | Self::Log | Self::MaxInFlightHook | Self::ObjectCountHook => Ok(()),
            Self::MetricStorageReady => {
                if ctx.metrics.is_ready() {
                    Ok(())
                } else {
                    let err = "no metrics to serve";
                    tracing::info!(probe = name, err, "Failed probe");
                    Err(err.to_owned())
                }
            }
            Self::MetricInformerSync => {
                let err = if !ctx.health.node_informer_synced.load(Ordering::Acquire) {
                    "cache for node informer has not synced"
                } else if !ctx.health.pod_informer_synced.load(Ordering::Acquire) {
                    "cache for pod informer has not synced"
                } else {
                    return Ok(());
                };
                tracing::info!(probe = name, err, "Failed probe");
                Err(err.to_owned())
            }
            Self::MetadataInformerSync => {
                let unsynced = ctx
                    .health
                    .metadata_unsynced
                    .lock()
                    .map(|m| m.clone())
                    .unwrap_or_default();
                if unsynced.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} informers not started yet: [{}]",
                        unsynced.len(),
                        unsynced.join(" ")
                    ))
                }
            }
            Self::MetricCollectionTimely => {
                let last = ctx.health.tick_last_start.load(Ordering::Acquire);
                if last == i64::MIN {
                    return Ok(());
                }
                let now = unix_nanos(ctx.clock.now());
                let wait = i128::from(now) - i128::from(last);
                // time.Duration(1.5 * float64(resolution))
                let max = ctx.health.resolution.as_nanos().saturating_mul(3) / 2;
                let max = i128::try_from(max).unwrap_or(i128::MAX);
                if wait > max {
                    let err = "metric collection didn't finish on time";
                    tracing::info!(
                        probe = name,
                        err,
                        duration = %metrics_server_core::GoDuration(i64::try_from(wait).unwrap_or(i64::MAX)),
                        maxDuration = %metrics_server_core::GoDuration(i64::try_from(max).unwrap_or(i64::MAX)),
                        "Failed probe"
                    );
                    Err(err.to_owned())
                } else {
                    Ok(())
                }
            }
            Self::Shutdown => {
                if ctx.health.is_shutting_down() {
                    Err("process is shutting down".to_owned())
                } else {
                    Ok(())
                }
            }
            Self::ShardComplete => match ctx.health.shard_complete.get() {
                Some(check) => check.check().inspect_err(|err| {
                    tracing::info!(probe = name, err, "Failed probe");
                }),
                None => Ok(()),
            },
        }
    }
}

fn text_response(code: StatusCode, body: String, nosniff: bool) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if nosniff {
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    resp
}

/// Serves `/<endpoint>` (`rest` empty) or `/<endpoint>/<check>`. `None`
/// when the check does not exist on that endpoint (404).
pub(crate) fn serve(
    endpoint: Endpoint,
    rest: &str,
    query: &Query,
    ctx: &ProbeContext<'_>,
) -> Option<Response<Body>> {
    if !rest.is_empty() {
        let check = endpoint
            .checks()
            .iter()
            .find(|c| c.name() == rest && c.enabled(ctx.health))?;
        return Some(match check.run(ctx) {
            Ok(()) => text_response(StatusCode::OK, "ok".to_owned(), false),
            Err(e) => crate::limits::go_http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("internal server error: {e}"),
            ),
        });
    }
    Some(serve_root(endpoint, query, ctx))
}

fn serve_root(endpoint: Endpoint, query: &Query, ctx: &ProbeContext<'_>) -> Response<Body> {
    let mut excluded: Vec<&str> = query.all("exclude").collect();
    excluded.sort_unstable();
    excluded.dedup();
    let mut output = String::with_capacity(512);
    let mut failed: Vec<&str> = Vec::new();
    let mut log_output = String::new();
    for check in endpoint.checks().iter().filter(|c| c.enabled(ctx.health)) {
        let name = check.name();
        if let Some(i) = excluded.iter().position(|e| *e == name) {
            excluded.remove(i);
            output.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        match check.run(ctx) {
            Ok(()) => output.push_str(&format!("[+]{name} ok\n")),
            Err(e) => {
                output.push_str(&format!("[-]{name} failed: reason withheld\n"));
                log_output.push_str(&format!("[-]{name} failed: {e}\n"));
                failed.push(name);
            }
        }
    }
    if !excluded.is_empty() {
        let quoted: Vec<String> = excluded.iter().map(|e| go_quote(e)).collect();
        output.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            quoted.join(",")
        ));
    }
    let name = endpoint.name();
    if !failed.is_empty() {
        tracing::debug!("{} check failed: {name}\n{log_output}", failed.join(","));
        output.push_str(&format!("{name} check failed"));
        return crate::limits::go_http_error(StatusCode::INTERNAL_SERVER_ERROR, &output);
    }
    if !query.has("verbose") {
        return text_response(StatusCode::OK, "ok".to_owned(), true);
    }
    output.push_str(&format!("{name} check passed\n"));
    text_response(StatusCode::OK, output, true)
}
