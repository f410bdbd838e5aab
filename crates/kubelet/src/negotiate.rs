//! The hyper client kept for [`HttpVersion::Negotiate`](crate::HttpVersion::Negotiate): h2
//! offered by ALPN like client-go. HTTP/1.1 goes through the lean client in [`crate::http1`].

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderValue, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, HttpConnector, capture_connection};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::client::{HTTP1_READ_BUFFER_BYTES, KubeletClientConfig, classify_dyn};
use crate::error::ScrapeError;

/// A pooled hyper client over hyper-rustls offering h2 and HTTP/1.1.
#[derive(Debug)]
pub(crate) struct NegotiateClient {
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    max_body_bytes: usize,
}

impl NegotiateClient {
    pub(crate) fn new(config: &KubeletClientConfig, tls: rustls::ClientConfig) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        // The per-request deadline also covers connecting; this only makes a hung connect
        // surface as an IO timeout if the caller's deadline were ever longer.
        http.set_connect_timeout(Some(config.request_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_all_versions()
            .wrap_connector(http);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .http1_read_buf_exact_size(HTTP1_READ_BUFFER_BYTES);
        if !config.keep_alive {
            builder.pool_max_idle_per_host(0);
        }
        Self {
            http: builder.build(connector),
            max_body_bytes: config.max_body_bytes,
        }
    }

    /// `GET uri` before `deadline`: the body, and whether the connection speaks h2.
    pub(crate) async fn get(
        &self,
        url: &str,
        uri: Uri,
        user_agent: HeaderValue,
        auth: Option<HeaderValue>,
        deadline: Instant,
    ) -> Result<(Bytes, bool), ScrapeError> {
        let mut req = Request::get(uri)
            .header(USER_AGENT, user_agent)
            .body(Empty::new())
            .map_err(|e| ScrapeError::InvalidUrl {
                url: url.to_owned(),
                detail: e.to_string(),
            })?;
        if let Some(auth) = auth {
            req.headers_mut().insert(AUTHORIZATION, auth);
        }
        // Lets a timeout tell "never connected" (firewall) from "slow kubelet".
        let captured = capture_connection(&mut req);
        match tokio::time::timeout_at(deadline, self.exchange(url, req)).await {
            Ok(Ok(body)) => {
                let h2 = captured
                    .connection_metadata()
                    .as_ref()
                    .is_some_and(Connected::is_negotiated_h2);
                Ok((body, h2))
            }
            Ok(Err(e)) => Err(e),
            Err(_elapsed) => Err(if captured.connection_metadata().is_some() {
                ScrapeError::Timeout {
                    url: url.to_owned(),
                }
            } else {
                ScrapeError::ConnectTimeout {
                    url: url.to_owned(),
                }
            }),
        }
    }

    async fn exchange(&self, url: &str, req: Request<Empty<Bytes>>) -> Result<Bytes, ScrapeError> {
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| classify_dyn(url, &e))?;
        let (parts, body) = resp.into_parts();
        if parts.status != StatusCode::OK {
            let reason = parts
                .extensions
                .get::<hyper::ext::ReasonPhrase>()
                .and_then(|r| std::str::from_utf8(r.as_bytes()).ok())
                .or_else(|| parts.status.canonical_reason())
                .unwrap_or("")
                .to_owned();
            return Err(ScrapeError::HttpStatus {
                code: parts.status.as_u16(),
                reason,
            });
        }
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_large = ScrapeError::BodyTooLarge {
            limit: self.max_body_bytes,
        };
        if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err(too_large);
        }
        let body = Limited::new(body, self.max_body_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large
                } else {
                    classify_dyn(url, &*e)
                }
            })?;
        Ok(body.to_bytes())
    }
}
