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
        let pool = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
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
pub(crate) async fn filter(State(state): State<ApiState>, req: Request, next: Next) -> Response<Body> {
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
