//! The serving stack: the filters every request passes, in the order of the generic
//! apiserver's `DefaultBuildHandlerChain`. Read [`build`] top to bottom; each line is one
//! filter, outermost first:
//!
//! ```text
//!  panic recovery   a panicking filter or handler answers Go's 500; the server keeps going
//!  request info     the E.9 attributes, derived once (bounded query size first)
//!  request timeout  the rest runs on its own task; past --request-timeout: 504, work aborted
//!  authentication   401 on failure; the User joins the request extensions
//!  max-in-flight    429 + Retry-After: 1 when the read-only or mutating pool is full
//!  authorization    403 / 500 (SubjectAccessReview failed)
//!  handler          the API router
//! ```
//!
//! Long-running requests (verbs `watch` and `proxy`) skip the timeout and the in-flight
//! limit; members of `system:masters` are never refused by the in-flight limit. Every 429 and
//! 504 is counted in `msrs_requests_rejected_total{reason}` and logged at most once a minute.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode, Uri};
use metrics_server_api::{
    ApiConfig, Attributes, InFlightLimits, go_http_error, is_long_running, request_timed_out,
    too_many_requests,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tower::{Layer, Service, ServiceBuilder, ServiceExt as _};

use crate::authn::Authenticator;
use crate::authz::Authorizer;
use crate::cache::log_due;
use crate::layer::{AuthenticationFilter, AuthorizationFilter};
use crate::user::{MASTERS_GROUP, User};

/// Longest query string the stack parses. The request target is already bounded by the HTTP
/// layer (the `http` crate refuses URIs of 64 KiB and more); this keeps attribute derivation
/// bounded whatever the transport.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

type AttributesFn = dyn Fn(&Method, &Uri) -> Attributes + Send + Sync;

/// Settings of the stack's own filters.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// `--request-timeout`; zero disables it.
    pub request_timeout: Duration,
    /// `--max-requests-inflight` and `--max-mutating-requests-inflight`.
    pub limits: InFlightLimits,
    /// Where refusals by those two limits are counted.
    pub rejections: Rejections,
}

impl StackOptions {
    /// The timeout and in-flight pools configured for the API.
    pub fn from_api_config(config: &ApiConfig, rejections: Rejections) -> Self {
        Self {
            request_timeout: config.request_timeout,
            limits: InFlightLimits::from_config(config),
            rejections,
        }
    }
}

/// Why the stack answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// 429: the in-flight pool of the request's kind was full.
    MaxInFlight,
    /// 504: the request ran past `--request-timeout`.
    Timeout,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Self::MaxInFlight => "max_in_flight",
            Self::Timeout => "timeout",
        }
    }
}

/// `msrs_requests_rejected_total{reason}` and a log line per reason at most once a minute, so
/// an operator sees that `--max-requests-inflight` or `--request-timeout` is being hit.
#[derive(Debug, Clone, Default)]
pub struct Rejections {
    counts: Family<[(&'static str, &'static str); 1], Counter>,
    last_logged: Arc<Mutex<[Option<Instant>; 2]>>,
}

impl Rejections {
    /// Registers the counter on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let rejections = Self::default();
        registry.register(
            "msrs_requests_rejected",
            "Requests answered 429 by the in-flight limit or 504 by the request timeout",
            rejections.counts.clone(),
        );
        rejections
    }

    /// The count so far for `reason`.
    pub fn count(&self, reason: Rejection) -> u64 {
        self.counts
            .get_or_create(&[("reason", reason.label())])
            .get()
    }

    fn record(&self, reason: Rejection, detail: &dyn fmt::Display) {
        self.counts
            .get_or_create(&[("reason", reason.label())])
            .inc();
        let slot = usize::from(reason == Rejection::Timeout);
        let due = {
            let mut last = self
                .last_logged
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            log_due(&mut last[slot], Instant::now())
        };
        if due {
            match reason {
                Rejection::MaxInFlight => tracing::warn!(
                    "Refused a request with 429: {detail}; raise --max-requests-inflight if this is \
                     normal load (further refusals for a minute are only counted)"
                ),
                Rejection::Timeout => tracing::warn!(
                    "Answered a request with 504 after --request-timeout: {detail} (further \
                     timeouts for a minute are only counted)"
                ),
            }
        }
    }
}

/// The composed stack around a handler `S`.
pub type Stack<S> = Filtered<
    PanicRecovery,
    Filtered<
        RequestInfo,
        Filtered<
            RequestTimeout,
            Filtered<AuthenticationFilter, Filtered<MaxInFlight, Filtered<AuthorizationFilter, S>>>,
        >,
    >,
>;

/// Composes the stack around `handler`. `attributes` derives the E.9 request attributes
/// (the API crate's `request_attributes`). In Go's chain, HSTS sits between request info
/// and the timeout and CORS between the timeout and authentication; a filter added here
/// takes the matching line. Wrapping the returned service puts a filter outside them all.
pub fn build<S>(
    options: StackOptions,
    authn: Authenticator,
    authz: Authorizer,
    attributes: impl Fn(&Method, &Uri) -> Attributes + Send + Sync + 'static,
    handler: S,
) -> Stack<S> {
    ServiceBuilder::new()
        .layer(FilterLayer(PanicRecovery))
        .layer(FilterLayer(RequestInfo(Arc::new(attributes))))
        .layer(FilterLayer(RequestTimeout(
            options.request_timeout,
            options.rejections.clone(),
        )))
        .layer(FilterLayer(AuthenticationFilter::new(authn)))
        .layer(FilterLayer(MaxInFlight(options.limits, options.rejections)))
        .layer(FilterLayer(AuthorizationFilter::new(authz)))
        .service(handler)
}

// === The filter plumbing ===

/// A boxed, sendable, `'static` future.
pub type FilterFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One step of the chain: gets the request and the rest of the chain (`next`, ready).
pub trait Filter: Clone + Send + Sync + 'static {
    /// Handles `req`, usually by calling `next`.
    fn filter<S, ReqB, ResB>(
        &self,
        req: Request<ReqB>,
        next: S,
    ) -> impl Future<Output = Result<Response<ResB>, S::Error>> + Send
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqB: Send + 'static,
        ResB: From<String> + Send + 'static;
}

/// Makes a [`Filtered`] service out of a filter.
#[derive(Debug, Clone)]
pub struct FilterLayer<F>(pub F);

impl<F: Clone, S> Layer<S> for FilterLayer<F> {
    type Service = Filtered<F, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Filtered {
            filter: self.0.clone(),
            inner,
        }
    }
}

/// A filter in front of a service.
#[derive(Debug, Clone)]
pub struct Filtered<F, S> {
    filter: F,
    inner: S,
}

impl<F, S, ReqB, ResB> Service<Request<ReqB>> for Filtered<F, S>
where
    F: Filter,
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: From<String> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = FilterFuture<Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The clone is not ready; keep the one that is (tower's standard swap).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let filter = self.filter.clone();
        Box::pin(async move { filter.filter(req, inner).await })
    }
}

// === Panic recovery ===

/// Go's `WithPanicRecovery`: a panic below answers 500 with Go's text and is logged.
#[derive(Debug, Clone, Copy)]
pub struct PanicRecovery;

const PANIC_MESSAGE: &str = "This request caused apiserver to panic. Look in the logs for details.";

impl Filter for PanicRecovery {
    async fn filter<S, ReqB, ResB>(
        &self,
        req: Request<ReqB>,
        next: S,
    ) -> Result<Response<ResB>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqB: Send + 'static,
        ResB: From<String> + Send + 'static,
    {
        let method = req.method().clone();
        let uri = req.uri().clone();
        match CatchUnwind(Box::pin(next.oneshot(req))).await {
            Ok(result) => result,
            Err(payload) => {
                tracing::error!(%method, %uri, panic = panic_text(&*payload), "apiserver panic'd");
                Ok(go_http_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    PANIC_MESSAGE,
                ))
            }
        }
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("")
}

/// Polls a future, turning a panic during a poll into `Err(payload)`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

// === Request info ===

/// Go's `WithRequestInfo`: derives the request attributes once and stores them in the
/// request extensions for the in-flight limit and authorization. A query string longer
/// than [`MAX_QUERY_BYTES`] is refused with 414 before anything parses it.
#[derive(Clone)]
pub struct RequestInfo(Arc<AttributesFn>);

impl fmt::Debug for RequestInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestInfo").finish_non_exhaustive()
    }
}

impl Filter for RequestInfo {
    async fn filter<S, ReqB, ResB>(
        &self,
        mut req: Request<ReqB>,
        next: S,
    ) -> Result<Response<ResB>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqB: Send + 'static,
        ResB: From<String> + Send + 'static,
    {
        if req.uri().query().map_or(0, str::len) > MAX_QUERY_BYTES {
            return Ok(go_http_error(StatusCode::URI_TOO_LONG, "414 URI Too Long"));
        }
        let attrs = (self.0)(req.method(), req.uri());
        req.extensions_mut().insert(attrs);
        next.oneshot(req).await
    }
}

/// The verb of a request that passed [`RequestInfo`] (`""` if it did not).
fn verb_of(extensions: &http::Extensions) -> &str {
    extensions.get::<Attributes>().map_or("", Attributes::verb)
}

// === Request timeout ===

/// Go's `WithTimeoutForNonLongRunningRequests`: everything below runs on its own task; when
/// the timeout passes first, the task is aborted and the client gets the 504 Status.
#[derive(Debug, Clone)]
pub struct RequestTimeout(pub Duration, pub Rejections);

/// Aborts a spawned task when the request future is dropped (client gone).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Filter for RequestTimeout {
    async fn filter<S, ReqB, ResB>(
        &self,
        req: Request<ReqB>,
        next: S,
    ) -> Result<Response<ResB>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqB: Send + 'static,
        ResB: From<String> + Send + 'static,
    {
        let timeout = self.0;
        if timeout.is_zero() || is_long_running(verb_of(req.extensions())) {
            return next.oneshot(req).await;
        }
        let uri = req.uri().clone();
        let mut work = tokio::spawn(next.oneshot(req));
        let _abort = AbortOnDrop(work.abort_handle());
        match tokio::time::timeout(timeout, &mut work).await {
            Ok(Ok(result)) => result,
            // Hand the panic to the recovery filter above, as Go's timeout filter does.
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(_)) => Ok(go_http_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request was cancelled",
            )),
            Err(_) => {
                self.1.record(Rejection::Timeout, &uri);
                Ok(request_timed_out())
            }
        }
    }
}

// === Max in flight ===

/// Go's `WithMaxInFlightLimit`: no queueing, 429 when the pool of the request's kind is full.
#[derive(Debug, Clone)]
pub struct MaxInFlight(pub InFlightLimits, pub Rejections);

impl Filter for MaxInFlight {
    async fn filter<S, ReqB, ResB>(
        &self,
        req: Request<ReqB>,
        next: S,
    ) -> Result<Response<ResB>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqB: Send + 'static,
        ResB: From<String> + Send + 'static,
    {
        let verb = verb_of(req.extensions());
        if is_long_running(verb) {
            return next.oneshot(req).await;
        }
        let _permit = match self.0.try_admit(verb) {
            Some(permit) => Some(permit),
            // A privileged user always gets an answer.
            None if req
                .extensions()
                .get::<User>()
                .is_some_and(|u| u.in_group(MASTERS_GROUP)) =>
            {
                None
            }
            None => {
                self.1.record(Rejection::MaxInFlight, req.uri());
                return Ok(too_many_requests());
            }
        };
        next.oneshot(req).await
    }
}
