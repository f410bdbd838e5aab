//! The pieces of `--max-requests-inflight` / `--max-mutating-requests-inflight`
//! and `--request-timeout` (spec B.2) that know the API: which verbs are
//! long-running or mutating, the two in-flight pools, and the exact 429 and
//! 504 responses. The serving stack (metrics-server-auth's `stack`) places
//! them in the generic apiserver's order around authentication.
//!
//! * Over the limit a request is rejected at once (no queueing) with 429,
//!   `Retry-After: 1` and Go's `http.Error` text body
//!   `Too many requests, please try again later.`.
//! * A request running longer than the timeout gets 504 with the Status that
//!   Go's timeout writer encodes (no `kind`/`apiVersion`).
//! * Long-running requests (verb `watch` or `proxy`) skip both.

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::json::JsonWriter;
use crate::state::ApiConfig;
use crate::status::Status;

/// Whether a request with this verb is long-running: exempt from the
/// request timeout and the in-flight limit.
pub fn is_long_running(verb: &str) -> bool {
    matches!(verb, "watch" | "proxy")
}

/// Whether a verb counts against the mutating pool.
pub fn is_mutating(verb: &str) -> bool {
    !matches!(verb, "get" | "list" | "watch")
}

/// The read-only and mutating in-flight pools (`None` = unlimited).
#[derive(Debug, Clone)]
pub struct InFlightLimits {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
}

/// Held while a request is in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct InFlightPermit {
    _slot: Option<OwnedSemaphorePermit>,
}

impl InFlightLimits {
    /// Pools of `read_only` and `mutating` slots; 0 means unlimited.
    pub fn new(read_only: usize, mutating: usize) -> Self {
        let pool =
            |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
        Self {
            read_only: pool(read_only),
            mutating: pool(mutating),
        }
    }

    /// The pools configured in `config`.
    pub fn from_config(config: &ApiConfig) -> Self {
        Self::new(
            config.max_requests_inflight,
            config.max_mutating_requests_inflight,
        )
    }

    /// Takes a slot of the pool for `verb`; `None` when that pool is full.
    pub fn try_admit(&self, verb: &str) -> Option<InFlightPermit> {
        let pool = if is_mutating(verb) {
            &self.mutating
        } else {
            &self.read_only
        };
        match pool {
            None => Some(InFlightPermit { _slot: None }),
            Some(sem) => Arc::clone(sem)
                .try_acquire_owned()
                .ok()
                .map(|p| InFlightPermit { _slot: Some(p) }),
        }
    }
}

/// Go's `http.Error`: plain text, newline-terminated, `nosniff`.
pub fn go_http_error<B: From<String>>(code: StatusCode, msg: &str) -> Response<B> {
    let mut resp = Response::new(B::from(format!("{msg}\n")));
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The max-in-flight rejection: 429 with `Retry-After: 1`.
pub fn too_many_requests<B: From<String>>() -> Response<B> {
    let mut resp = go_http_error(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests, please try again later.",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The timeout filter's answer: 504 with Go's timeout Status.
pub fn request_timed_out<B: From<String>>() -> Response<B> {
    let mut out = Vec::with_capacity(192);
    Status::request_timeout().write_json(&mut JsonWriter::new(&mut out, false), false);
    out.push(b'\n');
    let mut resp = Response::new(B::from(String::from_utf8_lossy(&out).into_owned()));
    *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    // Go sniffs the body: the timeout writer sets no Content-Type.
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pool_admits_nobody_until_a_slot_frees() {
        let limits = InFlightLimits::new(1, 1);
        let held = limits.try_admit("get");
        assert!(held.is_some());
        assert!(limits.try_admit("list").is_none());
        // Mutating requests have their own pool.
        assert!(limits.try_admit("create").is_some());
        drop(held);
        assert!(limits.try_admit("get").is_some());
    }

    #[test]
    fn zero_means_unlimited() {
        let limits = InFlightLimits::new(0, 0);
        let held: Vec<_> = (0..1000).filter_map(|_| limits.try_admit("get")).collect();
        assert_eq!(held.len(), 1000);
    }

    #[test]
    fn watch_and_proxy_are_long_running() {
        assert!(is_long_running("watch"));
        assert!(is_long_running("proxy"));
        assert!(!is_long_running("list"));
        assert!(!is_mutating("watch"));
        assert!(is_mutating("delete"));
    }

    #[test]
    fn the_429_is_go_s_http_error_with_retry_after() {
        let resp: Response<String> = too_many_requests();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(resp.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(
            resp.into_body(),
            "Too many requests, please try again later.\n"
        );
    }

    #[test]
    fn the_504_body_is_go_s_timeout_status() {
        let resp: Response<String> = request_timed_out();
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            resp.into_body(),
            "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"Timeout: request did not complete within the allotted timeout\",\"reason\":\"Timeout\",\"details\":{},\"code\":504}\n"
        );
    }
}
