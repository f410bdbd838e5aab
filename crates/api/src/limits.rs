//! `--max-requests-inflight` / `--max-mutating-requests-inflight` and
//! `--request-timeout` (spec B.2), as the generic apiserver's
//! `WithMaxInFlightLimit` and `WithTimeoutForNonLongRunningRequests`.
//!
//! * Over the limit the request is rejected at once (no queueing) with 429,
//!   `Retry-After: 1` and Go's `http.Error` text body
//!   `Too many requests, please try again later.`; privileged users
//!   (`system:masters`, via [`crate::ApiState::with_privileged_check`]) pass.
//! * A request running longer than the timeout gets 504 with the Status that
//!   Go's timeout writer encodes (no `kind`/`apiVersion`).
//! * Long-running requests (verb `watch` or `proxy`) skip both.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use http::{HeaderValue, Response, StatusCode, header};
use tokio::sync::Semaphore;

use crate::attributes::request_attributes;
use crate::health::http_error;
use crate::json::JsonWriter;
use crate::state::ApiState;
use crate::status::Status;

type PrivilegedFn = dyn Fn(&http::Extensions) -> bool + Send + Sync;

/// The two in-flight pools.
pub(crate) struct Limits {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    privileged: Option<Arc<PrivilegedFn>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("read_only", &self.read_only)
            .field("mutating", &self.mutating)
            .finish_non_exhaustive()
    }
}

impl Limits {
    pub(crate) fn new(read_only: usize, mutating: usize) -> Self {
        let pool =
            |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
        Self {
            read_only: pool(read_only),
            mutating: pool(mutating),
            privileged: None,
        }
    }

    pub(crate) fn with_privileged(mut self, f: Arc<PrivilegedFn>) -> Self {
        self.privileged = Some(f);
        self
    }
}

fn too_many_requests() -> Response<Body> {
    let mut resp = http_error(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests, please try again later.",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

fn timed_out() -> Response<Body> {
    let mut out = Vec::with_capacity(192);
    Status::request_timeout().write_json(&mut JsonWriter::new(&mut out, false), false);
    out.push(b'\n');
    let mut resp = Response::new(Body::from(out));
    *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    // Go sniffs the body: the timeout writer sets no Content-Type.
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The filter, installed by [`crate::router`].
pub(crate) async fn filter(
    State(state): State<ApiState>,
    req: Request,
    next: Next,
) -> Response<Body> {
    let attrs = request_attributes(
        req.method().as_str(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
    );
    let verb = attrs.verb();
    if verb == "watch" || verb == "proxy" {
        return next.run(req).await;
    }
    let mutating = !matches!(verb, "get" | "list" | "watch");
    let limits = &state.limits;
    let pool = if mutating {
        &limits.mutating
    } else {
        &limits.read_only
    };
    let _permit = match pool {
        None => None,
        Some(sem) => match Arc::clone(sem).try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                let exempt = limits
                    .privileged
                    .as_ref()
                    .is_some_and(|f| f(req.extensions()));
                if !exempt {
                    return too_many_requests();
                }
                None
            }
        },
    };
    let timeout = state.config.request_timeout;
    if timeout.is_zero() {
        return next.run(req).await;
    }
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => timed_out(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;
    use metrics_server_core::SharedSnapshot;
    use prometheus_client::registry::Registry;
    use tower::ServiceExt;

    use super::*;
    use crate::{ApiConfig, ApiMetrics, HealthState, StaticCluster, router};

    fn state(config: ApiConfig) -> ApiState {
        ApiState::new(
            config,
            Arc::new(StaticCluster::default()),
            Arc::new(SharedSnapshot::new()),
            Arc::new(HealthState::new(Duration::from_secs(15))),
            Arc::new(Registry::default()),
            ApiMetrics::unregistered(),
        )
    }

    async fn get(state: ApiState, uri: &str, privileged: bool) -> (StatusCode, String, String) {
        let mut req = Request::builder()
            .uri(uri)
            .body(Body::empty())
            .unwrap_or_default();
        if privileged {
            req.extensions_mut().insert("system:masters");
        }
        let resp = match router(state).oneshot(req).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        let status = resp.status();
        let retry = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        (status, retry, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn requests_over_the_inflight_limit_get_429_with_retry_after() {
        let s = state(ApiConfig {
            max_requests_inflight: 1,
            ..ApiConfig::default()
        });
        let held = s
            .limits
            .read_only
            .as_ref()
            .map(|p| Arc::clone(p).try_acquire_owned());
        assert!(matches!(held, Some(Ok(_))));
        let (status, retry, body) =
            get(s.clone(), "/apis/metrics.k8s.io/v1beta1/nodes", false).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry, "1");
        assert_eq!(body, "Too many requests, please try again later.\n");
        // Mutating requests have their own pool.
        let req = Request::builder()
            .method("POST")
            .uri("/apis/metrics.k8s.io/v1beta1/nodes")
            .body(Body::empty())
            .unwrap_or_default();
        let resp = match router(s.clone()).oneshot(req).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        drop(held);
        let (status, _, _) = get(s, "/apis/metrics.k8s.io/v1beta1/nodes", false).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn privileged_users_bypass_the_inflight_limit() {
        let s = state(ApiConfig {
            max_requests_inflight: 1,
            ..ApiConfig::default()
        })
        .with_privileged_check(|ext| ext.get::<&str>() == Some(&"system:masters"));
        let _held = s
            .limits
            .read_only
            .as_ref()
            .map(|p| Arc::clone(p).try_acquire_owned());
        let (status, _, _) = get(s.clone(), "/version", true).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = get(s, "/version", false).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn watch_requests_are_not_limited() {
        let s = state(ApiConfig {
            max_requests_inflight: 1,
            ..ApiConfig::default()
        });
        let _held = s
            .limits
            .read_only
            .as_ref()
            .map(|p| Arc::clone(p).try_acquire_owned());
        let (status, _, _) = get(s, "/apis/metrics.k8s.io/v1beta1/pods?watch=1", false).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn timeouts_answer_504_with_go_timeout_status() {
        let resp = timed_out();
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = resp
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&body),
            "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"Timeout: request did not complete within the allotted timeout\",\"reason\":\"Timeout\",\"details\":{},\"code\":504}\n"
        );
    }
}
