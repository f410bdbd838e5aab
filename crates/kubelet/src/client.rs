//! The pooled HTTP client used for every kubelet request (spec C.4).
//!
//! One hyper-util legacy client over hyper-rustls: connections are kept alive and reused
//! across ticks. It speaks HTTP/1.1 with an 8 KiB read buffer by default, the smallest state a
//! kept-alive connection has in hyper (about 34 KiB against 53 KiB for h2, see BENCHMARKS.md §1);
//! [`HttpVersion::Negotiate`] offers h2 by ALPN like client-go. Each request carries the bearer
//! token and User-Agent, has a hard deadline, and reads the body under a size cap.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderValue, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{HttpConnector, capture_connection};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::error::{ScrapeError, TlsFailure, chain_text};
use crate::target::Scheme;
use crate::tls::{TlsConfigError, TlsSettings, client_config};
use crate::token::{BearerToken, TokenError, TokenSource};

/// Default cap on a kubelet response body (`--kubelet-max-body-bytes`). A node with ~250 pods
/// answers in well under 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Default `--kubelet-request-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle kept-alive connection stays pooled (Go's `IdleConnTimeout`).
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Read buffer of an HTTP/1.1 connection, fixed. hyper's adaptive default grows to 64 KiB and
/// more on a kubelet body and keeps it while the connection idles between ticks. It also
/// bounds a response head (status line and headers): a kubelet's is about 200 bytes.
pub const HTTP1_READ_BUFFER_BYTES: usize = 8 * 1024;

/// The HTTP versions the client speaks to kubelets over TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 only; no ALPN offer, which kubelets answer with HTTP/1.1.
    #[default]
    Http1,
    /// Offer `h2` and `http/1.1` by ALPN, as client-go does; kubelets pick h2.
    Negotiate,
}

/// How the client reaches kubelets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS with these TLS settings (the default).
    Https(TlsSettings),
    /// `--deprecated-kubelet-completely-insecure`: plain HTTP and no credentials.
    Http,
}

/// Everything needed to build a [`KubeletClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletClientConfig {
    /// HTTPS (with TLS settings) or plain HTTP.
    pub transport: Transport,
    /// Bearer token; ignored for [`Transport::Http`] (anonymous, like upstream).
    pub token: TokenSource,
    /// `User-Agent`, e.g. `metrics-server/v0.9.0 (linux/amd64) kubernetes/abc1234`.
    pub user_agent: String,
    /// `--kubelet-request-timeout`; also bounds connection setup.
    pub request_timeout: Duration,
    /// Response bodies larger than this fail the node with `body_too_large`.
    pub max_body_bytes: usize,
    /// How long idle connections are kept for reuse; keep it above the scrape interval.
    pub pool_idle_timeout: Duration,
    /// HTTP/1.1 (default) or h2 when the kubelet offers it.
    pub http_version: HttpVersion,
    /// Keep connections for the next tick (default). `false` closes each one after its
    /// response: no memory held between ticks, but a TLS handshake per node and tick.
    pub keep_alive: bool,
}

impl KubeletClientConfig {
    /// A config with upstream defaults for everything but the transport.
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            token: TokenSource::None,
            user_agent: concat!("metrics-server-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            http_version: HttpVersion::default(),
            keep_alive: true,
        }
    }
}

/// Errors building the client. Fatal at startup.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// The token could not be loaded.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The User-Agent is not a valid header value.
    #[error("invalid User-Agent {0:?}")]
    UserAgent(String),
}

/// A successful `200 OK` response.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The whole body.
    pub body: Bytes,
    /// Taken just before the request was sent; stamps samples without a timestamp.
    pub request_time: SystemTime,
    /// Whether the connection negotiated h2.
    pub http2: bool,
}

/// A pooled, credentialed HTTP client for kubelets. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct KubeletClient {
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    scheme: Scheme,
    token: BearerToken,
    user_agent: HeaderValue,
    request_timeout: Duration,
    max_body_bytes: usize,
}

impl KubeletClient {
    /// Builds the client. Needs a Tokio runtime only when requests are sent.
    pub fn new(config: &KubeletClientConfig) -> Result<Self, ClientBuildError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        // The per-request deadline also covers connecting; this only makes a hung connect
        // surface as an IO timeout if the caller's deadline were ever longer.
        http.set_connect_timeout(Some(config.request_timeout));
        let (scheme, token, connector) = match &config.transport {
            Transport::Https(tls) => {
                let builder = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(client_config(tls)?)
                    .https_only();
                let connector = match config.http_version {
                    HttpVersion::Http1 => builder.enable_http1().wrap_connector(http),
                    HttpVersion::Negotiate => builder.enable_all_versions().wrap_connector(http),
                };
                (Scheme::Https, BearerToken::load(&config.token)?, connector)
            }
            Transport::Http => {
                // hyper-rustls still needs a TLS config to exist; it is never used for http://.
                let unused = client_config(&TlsSettings {
                    verification: crate::tls::ServerVerification::Insecure,
                    client_cert: None,
                })?;
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(unused)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                (
                    Scheme::Http,
                    BearerToken::load(&TokenSource::None)?,
                    connector,
                )
            }
        };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .http1_read_buf_exact_size(HTTP1_READ_BUFFER_BYTES);
        if !config.keep_alive {
            builder.pool_max_idle_per_host(0);
        }
        let http = builder.build(connector);
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| ClientBuildError::UserAgent(config.user_agent.clone()))?;
        Ok(Self {
            http,
            scheme,
            token,
            user_agent,
            request_timeout: config.request_timeout,
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// The scheme URLs must use with this client.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The cap on a response body (`--kubelet-max-body-bytes`).
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The configured per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// `GET url`, finishing (headers and body) before `deadline` or failing with a timeout.
    pub async fn get(&self, url: &str, deadline: Instant) -> Result<Fetched, ScrapeError> {
        let uri: Uri =
            url.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| ScrapeError::InvalidUrl {
                    url: url.to_owned(),
                    detail: e.to_string(),
                })?;
        // The connector would also dial https:// in plain-HTTP mode; keep modes strict.
        if uri.scheme_str() != Some(self.scheme.as_str()) {
            return Err(ScrapeError::InvalidUrl {
                url: url.to_owned(),
                detail: format!("scheme must be {}", self.scheme.as_str()),
            });
        }
        let mut req = Request::get(uri)
            .header(USER_AGENT, self.user_agent.clone())
            .body(Empty::new())
            .map_err(|e| ScrapeError::InvalidUrl {
                url: url.to_owned(),
                detail: e.to_string(),
            })?;
        if let Some(auth) = self.token.header() {
            req.headers_mut().insert(AUTHORIZATION, auth);
        }
        // Lets a timeout tell "never connected" (firewall) from "slow kubelet".
        let captured = capture_connection(&mut req);
        let request_time = SystemTime::now();
        let exchange = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| classify(url, &e))?;
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
            if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
                return Err(ScrapeError::BodyTooLarge {
                    limit: self.max_body_bytes,
                });
            }
            let body = Limited::new(body, self.max_body_bytes)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        ScrapeError::BodyTooLarge {
                            limit: self.max_body_bytes,
                        }
                    } else {
                        classify_dyn(url, &*e)
                    }
                })?
                .to_bytes();
            Ok(body)
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(body)) => Ok(Fetched {
                body,
                request_time,
                http2: captured
                    .connection_metadata()
                    .as_ref()
                    .is_some_and(hyper_util::client::legacy::connect::Connected::is_negotiated_h2),
            }),
            Ok(Err(e)) => Err(e),
            Err(_elapsed) => {
                let connected = captured.connection_metadata().is_some();
                Err(if connected {
                    ScrapeError::Timeout {
                        url: url.to_owned(),
                    }
                } else {
                    ScrapeError::ConnectTimeout {
                        url: url.to_owned(),
                    }
                })
            }
        }
    }
}

/// Prefixes of rustls error texts that can surface after the handshake.
const RUSTLS_MESSAGES: [&str; 7] = [
    "received fatal alert",
    "invalid peer certificate",
    "peer is incompatible",
    "peer misbehaved",
    "peer sent no certificates",
    "received corrupt message",
    "cannot decrypt peer's message",
];

fn classify(url: &str, err: &hyper_util::client::legacy::Error) -> ScrapeError {
    classify_dyn(url, err)
}

/// Maps a transport error chain onto a bounded class by looking for the telling source:
/// a rustls error anywhere means TLS; an IO error kind tells refused/timeout; the
/// HttpConnector labels resolver failures "dns error".
fn classify_dyn(url: &str, err: &(dyn std::error::Error + 'static)) -> ScrapeError {
    let detail = chain_text(err);
    let url = url.to_owned();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut io_kind = None;
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            let kind = TlsFailure::of(tls);
            return ScrapeError::Tls { url, kind, detail };
        }
        if e.to_string().starts_with("dns error") {
            return ScrapeError::Dns { url, detail };
        }
        cur = match e.downcast_ref::<std::io::Error>() {
            Some(io) => {
                // h2 keeps IO errors as (kind, message), so a TLS alert seen on an h2
                // connection arrives as text; rustls always reports InvalidData.
                if io.kind() == std::io::ErrorKind::InvalidData
                    && RUSTLS_MESSAGES
                        .iter()
                        .any(|m| io.to_string().starts_with(m))
                {
                    let kind = TlsFailure::of_text(&io.to_string());
                    return ScrapeError::Tls { url, kind, detail };
                }
                // Keep the innermost kind: hyper-rustls re-wraps every error as `Other`.
                if io.kind() != std::io::ErrorKind::Other || io_kind.is_none() {
                    io_kind = Some(io.kind());
                }
                // io::Error::source() skips the wrapped error itself; descend explicitly.
                match io.get_ref() {
                    Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                    None => e.source(),
                }
            }
            // h2 errors expose no source; their IO cause (e.g. a TLS alert) is behind get_io.
            None => match e.downcast_ref::<h2::Error>().and_then(h2::Error::get_io) {
                Some(io) => Some(io as &(dyn std::error::Error + 'static)),
                None => e.source(),
            },
        };
    }
    match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => ScrapeError::ConnectRefused { url, detail },
        Some(std::io::ErrorKind::TimedOut) => ScrapeError::ConnectTimeout { url },
        _ => ScrapeError::Transport { url, detail },
    }
}
