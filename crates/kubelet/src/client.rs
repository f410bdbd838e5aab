//! The pooled HTTP client used for every kubelet request (spec C.4).
//!
//! HTTP/1.1 (the default, https or plain http) goes through a lean client ([`crate::http1`])
//! that keeps only the socket and its rustls state in the idle pool between ticks, reading
//! each response through a buffer made for it; hyper kept about 37 KiB per idle connection
//! (BENCHMARKS.md §1). [`HttpVersion::Negotiate`] offers h2 by ALPN like client-go and still
//! uses hyper ([`crate::negotiate`]). Each request carries the bearer token and User-Agent,
//! has a hard deadline, and reads the body under a size cap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::Uri;
use hyper::header::HeaderValue;
use tokio::time::Instant;

use crate::error::{ScrapeError, TlsFailure, chain_text};
use crate::http1::{Http1Client, Target, request_head};
use crate::negotiate::NegotiateClient;
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

/// Bounds an HTTP/1.1 response head (status line and headers); a kubelet's is about 200 bytes.
/// Also hyper's fixed read buffer on the h2-negotiating client, where its adaptive default
/// would grow to 64 KiB and more on a kubelet body and keep it while the connection idles.
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
    backend: Backend,
    scheme: Scheme,
    token: BearerToken,
    user_agent: HeaderValue,
    request_timeout: Duration,
    max_body_bytes: usize,
}

/// HTTP/1.1 (https or http) goes through the lean client; only h2 negotiation needs hyper.
#[derive(Debug)]
enum Backend {
    Http1(Http1Client),
    // Boxed: hyper's client is large and this variant is the rare one.
    Negotiate(Box<NegotiateClient>),
}

impl KubeletClient {
    /// Builds the client. Needs a Tokio runtime only when requests are sent.
    pub fn new(config: &KubeletClientConfig) -> Result<Self, ClientBuildError> {
        let idle_timeout = config.keep_alive.then_some(config.pool_idle_timeout);
        let (scheme, token, backend) = match &config.transport {
            Transport::Https(tls) => {
                let tls = client_config(tls)?;
                let backend = match config.http_version {
                    // No ALPN offered: kubelets answer HTTP/1.1.
                    HttpVersion::Http1 => Backend::Http1(Http1Client::new(
                        Some(Arc::new(tls)),
                        idle_timeout,
                        config.max_body_bytes,
                    )),
                    HttpVersion::Negotiate => {
                        Backend::Negotiate(Box::new(NegotiateClient::new(config, tls)))
                    }
                };
                (Scheme::Https, BearerToken::load(&config.token)?, backend)
            }
            Transport::Http => (
                Scheme::Http,
                BearerToken::load(&TokenSource::None)?,
                Backend::Http1(Http1Client::new(None, idle_timeout, config.max_body_bytes)),
            ),
        };
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| ClientBuildError::UserAgent(config.user_agent.clone()))?;
        Ok(Self {
            backend,
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
        let invalid = |detail: String| ScrapeError::InvalidUrl {
            url: url.to_owned(),
            detail,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| invalid(e.to_string()))?;
        // Keep modes strict: no https:// in plain-HTTP mode and the reverse.
        if uri.scheme_str() != Some(self.scheme.as_str()) {
            return Err(invalid(format!("scheme must be {}", self.scheme.as_str())));
        }
        // Read per request: bound service account tokens rotate.
        let auth = self.token.header();
        let request_time = SystemTime::now();
        let (body, http2) = match &self.backend {
            Backend::Negotiate(h) => {
                h.get(url, uri, self.user_agent.clone(), auth, deadline)
                    .await?
            }
            Backend::Http1(h) => {
                let body = self.get_http1(h, url, &uri, auth, deadline).await?;
                (body, false)
            }
        };
        Ok(Fetched {
            body,
            request_time,
            http2,
        })
    }

    async fn get_http1(
        &self,
        client: &Http1Client,
        url: &str,
        uri: &Uri,
        auth: Option<HeaderValue>,
        deadline: Instant,
    ) -> Result<Bytes, ScrapeError> {
        let Some(host) = uri.host() else {
            return Err(ScrapeError::InvalidUrl {
                url: url.to_owned(),
                detail: "no host".to_owned(),
            });
        };
        let default_port = match self.scheme {
            Scheme::Https => 443,
            Scheme::Http => 80,
        };
        let port = uri.port_u16().unwrap_or(default_port);
        // Like hyper: the port appears in Host only when it is not the scheme's default.
        let host_header = if port == default_port {
            host.to_owned()
        } else {
            format!("{host}:{port}")
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let head = request_head(
            if path.is_empty() { "/" } else { path },
            &host_header,
            self.user_agent.as_bytes(),
            auth.as_ref().map(HeaderValue::as_bytes),
            client.keeps_alive(),
        );
        let target = Target {
            url,
            host: host.trim_start_matches('[').trim_end_matches(']'),
            port,
            authority: format!("{host}:{port}"),
        };
        // Set once TCP and TLS are up: a timeout before that is a connect timeout.
        let connected = AtomicBool::new(false);
        let exchange = client.fetch(&target, &head, &connected);
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_elapsed) if connected.load(Ordering::Relaxed) => Err(ScrapeError::Timeout {
                url: url.to_owned(),
            }),
            Err(_elapsed) => Err(ScrapeError::ConnectTimeout {
                url: url.to_owned(),
            }),
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

/// Maps a transport error chain onto a bounded class by looking for the telling source:
/// a rustls error anywhere means TLS; an IO error kind tells refused/timeout; the
/// HttpConnector labels resolver failures "dns error".
pub(crate) fn classify_dyn(url: &str, err: &(dyn std::error::Error + 'static)) -> ScrapeError {
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
