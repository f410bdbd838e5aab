//! `--strict-transport-security-directives`: a `Strict-Transport-Security` header on every
//! response, as the generic apiserver's HSTS filter sets it (the outermost filter, so 401s,
//! 403s and 429s carry it too).
//!
//! The directives are joined with `"; "`; a header the inner service already set wins. An
//! empty directive list installs nothing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::STRICT_TRANSPORT_SECURITY;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

/// Why `--strict-transport-security-directives` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HstsError {
    /// One directive was empty or blank.
    #[error("empty value in strict-transport-security-directives")]
    Empty,
    /// A directive other than `max-age=<n>`, `includeSubDomains` or `preload`.
    #[error(
        "--strict-transport-security-directives invalid, allowed values: max-age=expireTime, includeSubDomains, preload. see https://tools.ietf.org/html/rfc6797#section-6.1 for more information"
    )]
    Invalid,
    /// The joined value cannot be an HTTP header value (control characters).
    #[error("--strict-transport-security-directives: {0:?} is not a valid header value")]
    NotAHeaderValue(String),
}

/// Validates the directives as the generic apiserver does (RFC 6797 section 6.1 shapes only:
/// `max-age` is checked for the `name=value` form, not for a number) and returns the header
/// value, or `None` when the list is empty.
pub fn hsts_header_value(directives: &[String]) -> Result<Option<HeaderValue>, HstsError> {
    if directives.is_empty() {
        return Ok(None);
    }
    for directive in directives {
        if directive.trim().is_empty() {
            return Err(HstsError::Empty);
        }
        if directive == "includeSubDomains" || directive == "preload" {
            continue;
        }
        let mut parts = directive.split('=');
        let well_formed =
            parts.next() == Some("max-age") && parts.next().is_some() && parts.next().is_none();
        if !well_formed {
            return Err(HstsError::Invalid);
        }
    }
    let joined = directives.join("; ");
    HeaderValue::from_str(&joined)
        .map(Some)
        .map_err(|_| HstsError::NotAHeaderValue(joined))
}

/// Adds `Strict-Transport-Security` to every response. `None` passes responses through.
#[derive(Debug, Clone, Default)]
pub struct HstsLayer {
    value: Option<HeaderValue>,
}

impl HstsLayer {
    /// A layer setting `value` (from [`hsts_header_value`]); `None` disables it.
    pub fn new(value: Option<HeaderValue>) -> Self {
        Self { value }
    }

    /// Validates `--strict-transport-security-directives` and builds the layer.
    pub fn from_directives(directives: &[String]) -> Result<Self, HstsError> {
        hsts_header_value(directives).map(Self::new)
    }
}

impl<S> Layer<S> for HstsLayer {
    type Service = Hsts<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Hsts {
            inner,
            value: self.value.clone(),
        }
    }
}

/// The service made by [`HstsLayer`].
#[derive(Debug, Clone)]
pub struct Hsts<S> {
    inner: S,
    value: Option<HeaderValue>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Hsts<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let future = self.inner.call(req);
        let value = self.value.clone();
        Box::pin(async move {
            let mut response = future.await?;
            if let Some(value) = value {
                let headers = response.headers_mut();
                if !headers.contains_key(STRICT_TRANSPORT_SECURITY) {
                    headers.insert(STRICT_TRANSPORT_SECURITY, value);
                }
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt as _;

    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn directives_are_joined_with_semicolon_space() {
        let value = hsts_header_value(&strings(&[
            "max-age=31536000",
            "includeSubDomains",
            "preload",
        ]))
        .expect("valid")
        .expect("some");
        assert_eq!(
            value.as_bytes(),
            b"max-age=31536000; includeSubDomains; preload"
        );
    }

    #[test]
    fn an_empty_list_installs_nothing() {
        assert_eq!(hsts_header_value(&[]), Ok(None));
    }

    #[test]
    fn bad_directives_are_refused_with_the_generic_apiserver_texts() {
        assert_eq!(
            hsts_header_value(&strings(&["max-age=1", " "])),
            Err(HstsError::Empty)
        );
        for bad in [
            "fakevalue",
            "max-age",
            "max-age=1=2",
            "maxage=1",
            "IncludeSubDomains",
        ] {
            let err = hsts_header_value(&strings(&[bad])).expect_err(bad);
            assert_eq!(err, HstsError::Invalid, "{bad}");
            assert!(err.to_string().starts_with(
                "--strict-transport-security-directives invalid, allowed values: max-age=expireTime, includeSubDomains, preload."
            ));
        }
    }

    async fn respond(layer: HstsLayer, preset: Option<&'static str>) -> Response<String> {
        let inner = tower::service_fn(move |_req: Request<()>| async move {
            let mut response = Response::new(String::new());
            if let Some(v) = preset {
                response
                    .headers_mut()
                    .insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(v));
            }
            Ok::<_, Infallible>(response)
        });
        layer
            .layer(inner)
            .oneshot(Request::new(()))
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn every_response_carries_the_header_and_an_inner_value_wins() {
        let layer = HstsLayer::from_directives(&strings(&["max-age=10"])).expect("valid");
        let plain = respond(layer.clone(), None).await;
        assert_eq!(
            plain
                .headers()
                .get_all(STRICT_TRANSPORT_SECURITY)
                .iter()
                .collect::<Vec<_>>(),
            vec![&HeaderValue::from_static("max-age=10")]
        );
        let preset = respond(layer, Some("max-age=5")).await;
        assert_eq!(
            preset
                .headers()
                .get_all(STRICT_TRANSPORT_SECURITY)
                .iter()
                .collect::<Vec<_>>(),
            vec![&HeaderValue::from_static("max-age=5")]
        );
        let off = respond(HstsLayer::default(), None).await;
        assert!(!off.headers().contains_key(STRICT_TRANSPORT_SECURITY));
    }
}
