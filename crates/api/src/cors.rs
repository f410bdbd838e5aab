//! `--cors-allowed-origins`: the generic apiserver's CORS filter, which sits just outside
//! authentication.
//!
//! - No `Origin` header, or an origin no pattern matches: the request goes on unchanged and
//!   the response gets no CORS headers (the generic apiserver does not refuse it; the browser
//!   does, for lack of `Access-Control-Allow-Origin`).
//! - An origin some pattern matches (unanchored search, as Go's `MatchString`): the response
//!   gets `Access-Control-Allow-Origin: <origin>`, the default allowed methods, allowed headers
//!   and exposed headers, and `Access-Control-Allow-Credentials: true`; an `OPTIONS` request is
//!   answered here with `204 No Content` and never reaches authentication.
//!
//! Patterns are compiled with the `regex` crate. Go uses RE2 syntax; the two agree on the
//! syntax origin patterns use. One difference: Rust's `\d`, `\w`, `\s` and `\b` are Unicode
//! aware where Go's are ASCII only, which only matters for non-ASCII `Origin` values (browsers
//! send ASCII, punycode for IDNs). Like kube-apiserver's option validation, each pattern must
//! pin the start (`^` or `//`) and the end (`$` or `:`) of the host (CVE-2022-1996).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, HeaderName, ORIGIN,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use regex::Regex;
use tower::{Layer, Service};

/// The generic apiserver's defaults (it passes no methods or headers of its own).
const ALLOW_METHODS: &str = "POST, GET, OPTIONS, PUT, DELETE, PATCH";
const ALLOW_HEADERS: &str = "Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization, X-Requested-With, If-Modified-Since";
const EXPOSE_HEADERS: &str = "Date";
const ALLOW_CREDENTIALS: &str = "true";

/// A short hint appended to validation errors.
const PATTERN_HINT: &str = "each pattern is a regular expression that must anchor the host's start ('^' or '//') and end ('$' or ':'), e.g. '//example\\.com(:|$)'";

/// Why `--cors-allowed-origins` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsError {
    /// An empty list entry.
    #[error("empty value in --cors-allowed-origins, help: {PATTERN_HINT}")]
    Empty,
    /// A pattern that does not compile, or does not pin the host.
    #[error(
        "--cors-allowed-origins has an invalid regular expression: {reason}, help: {PATTERN_HINT}"
    )]
    Invalid {
        /// The compiler's message, or the pinning rule.
        reason: String,
    },
}

/// The compiled `--cors-allowed-origins` patterns.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    patterns: Arc<[Regex]>,
}

impl AllowedOrigins {
    /// Validates and compiles the flag's patterns. An empty list disables CORS.
    pub fn parse(patterns: &[String]) -> Result<Self, CorsError> {
        let mut compiled = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            if pattern.is_empty() {
                return Err(CorsError::Empty);
            }
            let regex = Regex::new(pattern).map_err(|e| CorsError::Invalid {
                reason: e.to_string(),
            })?;
            let pins_start = pattern.contains('^') || pattern.contains("//");
            let pins_end = pattern.contains('$') || pattern.contains(':');
            if !pins_start || !pins_end {
                return Err(CorsError::Invalid {
                    reason:
                        "regular expression does not pin to start/end of host in the origin header"
                            .into(),
                });
            }
            compiled.push(regex);
        }
        Ok(Self {
            patterns: compiled.into(),
        })
    }

    /// Whether CORS is on at all.
    pub fn is_enabled(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// Whether `origin` matches any pattern (a search, not a full match).
    pub fn allows(&self, origin: &str) -> bool {
        self.patterns.iter().any(|re| re.is_match(origin))
    }
}

/// The CORS filter as a tower layer.
#[derive(Debug, Clone, Default)]
pub struct CorsLayer {
    origins: AllowedOrigins,
}

impl CorsLayer {
    /// A layer for these origins; with none it passes everything through untouched.
    pub fn new(origins: AllowedOrigins) -> Self {
        Self { origins }
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cors {
            inner,
            origins: self.origins.clone(),
        }
    }
}

/// The service made by [`CorsLayer`].
#[derive(Debug, Clone)]
pub struct Cors<S> {
    inner: S,
    origins: AllowedOrigins,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Cors<S> {
    /// The origin to echo, if the request has one that is allowed.
    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        if !self.origins.is_enabled() {
            return None;
        }
        // Go reads the first value; non-UTF-8 bytes become U+FFFD as Go's regexp sees them.
        let origin = headers.get(ORIGIN)?;
        let text = String::from_utf8_lossy(origin.as_bytes());
        (!text.is_empty() && self.origins.allows(&text)).then(|| origin.clone())
    }
}

fn cors_headers(origin: HeaderValue) -> [(HeaderName, HeaderValue); 5] {
    [
        (ACCESS_CONTROL_ALLOW_ORIGIN, origin),
        (
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        ),
        (
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        ),
        (
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        ),
        (
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static(ALLOW_CREDENTIALS),
        ),
    ]
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(origin) = self.allowed_origin(req.headers()) else {
            return Box::pin(self.inner.call(req));
        };
        if req.method() == Method::OPTIONS {
            // A preflight stops here, before authentication.
            let mut response = Response::new(ResBody::default());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response.headers_mut().extend(cors_headers(origin));
            return Box::pin(std::future::ready(Ok(response)));
        }
        let future = self.inner.call(req);
        Box::pin(async move {
            let mut response = future.await?;
            // Go sets these before the handler runs, so a handler's own value wins.
            let headers = response.headers_mut();
            for (name, value) in cors_headers(origin) {
                if !headers.contains_key(&name) {
                    headers.insert(name, value);
                }
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tower::ServiceExt as _;

    use super::*;

    fn origins(patterns: &[&str]) -> Result<AllowedOrigins, CorsError> {
        AllowedOrigins::parse(&patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn patterns_must_compile_and_pin_the_host() {
        assert!(origins(&["//example\\.com(:|$)", "^https://example\\.com$"]).is_ok());
        assert_eq!(origins(&[""]).map(|_| ()), Err(CorsError::Empty));
        for unpinned in ["example\\.com", "^example\\.com", "example\\.com$"] {
            let err = origins(&[unpinned])
                .map(|_| ())
                .expect_err(unpinned)
                .to_string();
            assert!(
                err.starts_with("--cors-allowed-origins has an invalid regular expression: regular expression does not pin to start/end of host in the origin header"),
                "{err}"
            );
        }
        let err = origins(&["^(https://x$"])
            .map(|_| ())
            .expect_err("bad regex")
            .to_string();
        assert!(
            err.starts_with("--cors-allowed-origins has an invalid regular expression: "),
            "{err}"
        );
    }

    #[test]
    fn matching_is_a_search_like_go_match_string() {
        let o = origins(&["//example\\.com(:|$)"]).expect("valid");
        assert!(o.allows("https://example.com"));
        assert!(o.allows("http://example.com:8080"));
        assert!(!o.allows("https://example.com.evil.test"));
        assert!(!o.allows("https://notexample.com"));
    }

    /// Counts calls to the inner service; answers 200 "inner".
    fn counting_service(
        calls: Arc<AtomicUsize>,
    ) -> impl Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send> + Clone
    {
        tower::service_fn(move |_req: Request<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new("inner".to_owned())) }
        })
    }

    async fn call(method: Method, origin: Option<&str>) -> (Response<String>, usize) {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = CorsLayer::new(origins(&["^https://ok\\.test$"]).expect("valid"));
        let mut req = Request::builder().method(method);
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        let response = layer
            .layer(counting_service(calls.clone()))
            .oneshot(req.body(()).expect("request"))
            .await
            .expect("infallible");
        (response, calls.load(Ordering::SeqCst))
    }

    fn header<'a>(r: &'a Response<String>, name: &HeaderName) -> Option<&'a str> {
        r.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn an_allowed_origin_is_echoed_with_the_default_headers() {
        let (r, calls) = call(Method::GET, Some("https://ok.test")).await;
        assert_eq!(calls, 1);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.body(), "inner");
        assert_eq!(
            header(&r, &ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("https://ok.test")
        );
        assert_eq!(
            header(&r, &ACCESS_CONTROL_ALLOW_METHODS),
            Some("POST, GET, OPTIONS, PUT, DELETE, PATCH")
        );
        assert_eq!(
            header(&r, &ACCESS_CONTROL_ALLOW_HEADERS),
            Some(
                "Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization, X-Requested-With, If-Modified-Since"
            )
        );
        assert_eq!(header(&r, &ACCESS_CONTROL_EXPOSE_HEADERS), Some("Date"));
        assert_eq!(header(&r, &ACCESS_CONTROL_ALLOW_CREDENTIALS), Some("true"));
    }

    #[tokio::test]
    async fn a_preflight_from_an_allowed_origin_is_answered_204_without_the_inner_service() {
        let (r, calls) = call(Method::OPTIONS, Some("https://ok.test")).await;
        assert_eq!(calls, 0);
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.body(), "");
        assert_eq!(
            header(&r, &ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("https://ok.test")
        );
        assert_eq!(header(&r, &ACCESS_CONTROL_ALLOW_CREDENTIALS), Some("true"));
    }

    #[tokio::test]
    async fn a_disallowed_or_missing_origin_passes_through_without_cors_headers() {
        for origin in [Some("https://evil.test"), Some(""), None] {
            for method in [Method::GET, Method::OPTIONS] {
                let (r, calls) = call(method.clone(), origin).await;
                assert_eq!(calls, 1, "{method} {origin:?}");
                assert_eq!(r.status(), StatusCode::OK);
                assert!(
                    r.headers()
                        .keys()
                        .all(|k| !k.as_str().starts_with("access-control-")),
                    "{method} {origin:?}: {:?}",
                    r.headers()
                );
            }
        }
    }

    #[tokio::test]
    async fn no_patterns_means_no_cors_at_all() {
        let calls = Arc::new(AtomicUsize::new(0));
        let req = Request::builder()
            .method(Method::OPTIONS)
            .header(ORIGIN, "https://ok.test")
            .body(())
            .expect("request");
        let r = CorsLayer::default()
            .layer(counting_service(calls.clone()))
            .oneshot(req)
            .await
            .expect("infallible");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(!r.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }
}
