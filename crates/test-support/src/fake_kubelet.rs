//! A fake kubelet: an HTTPS (or plain HTTP) server on `127.0.0.1:0` with canned routes.
//!
//! ```text
//! FakeKubelet::https(&cert)            builder: TLS, routes, auth requirements
//!     .require_bearer_token("t")
//!     .route("/metrics/resource", Route::ok(body).with_latency(d))
//!     .start().await?  ──────────────▶ Listening { addr }  (aborts on drop)
//!                                        ├─ connections()  TCP accepts, for keep-alive tests
//!                                        ├─ requests()     requests that reached routing
//!                                        └─ set_route / set_bearer_token at run time
//! ```
//!
//! It speaks HTTP/1.1 and h2 (chosen by ALPN over TLS, by preface over plain TCP).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::pki::{IssuedCert, PkiError};

/// The path kubelets serve resource metrics on.
pub const RESOURCE_METRICS_PATH: &str = "/metrics/resource";

/// How many requests [`Listening::seen_requests`] remembers.
const SEEN_LIMIT: usize = 256;

/// Errors starting a fake kubelet.
#[derive(Debug, thiserror::Error)]
pub enum FakeKubeletError {
    /// Binding the loopback listener failed.
    #[error("binding 127.0.0.1:0: {0}")]
    Bind(#[from] std::io::Error),
    /// The TLS config could not be built.
    #[error(transparent)]
    Tls(#[from] PkiError),
}

/// A canned reply: status, body and how long to wait before answering.
#[derive(Debug, Clone)]
pub struct Route {
    /// HTTP status code to answer with.
    pub status: u16,
    /// Response body.
    pub body: Bytes,
    /// Delay before the response headers are sent.
    pub latency: Duration,
}

impl Route {
    /// A `200 OK` with `body`.
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Self::status(200, body)
    }

    /// An arbitrary status with `body`.
    pub fn status(status: u16, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            body: body.into(),
            latency: Duration::ZERO,
        }
    }

    /// The same reply, sent after `latency`.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// Request method.
    pub method: String,
    /// Request path (no query).
    pub path: String,
    /// HTTP version, e.g. `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// All request headers.
    pub headers: HeaderMap,
    /// When the request reached routing.
    pub at: std::time::Instant,
}

/// Builder for a fake kubelet.
#[derive(Debug)]
pub struct FakeKubelet {
    routes: HashMap<String, Route>,
    tls: Option<IssuedCert>,
    client_ca_pem: Option<String>,
    bearer_token: Option<String>,
    http1_only: bool,
}

impl FakeKubelet {
    /// A plain-HTTP fake (what `--deprecated-kubelet-completely-insecure` talks to).
    pub fn http() -> Self {
        Self {
            routes: HashMap::new(),
            tls: None,
            client_ca_pem: None,
            bearer_token: None,
            http1_only: false,
        }
    }

    /// An HTTPS fake presenting `cert`.
    pub fn https(cert: &IssuedCert) -> Self {
        Self {
            tls: Some(cert.clone()),
            ..Self::http()
        }
    }

    /// Requires a client certificate signed by this CA (HTTPS only; ignored for HTTP).
    pub fn require_client_cert(mut self, ca_pem: &str) -> Self {
        self.client_ca_pem = Some(ca_pem.to_owned());
        self
    }

    /// Offers only `http/1.1` in ALPN (HTTPS), to exercise HTTP/1.1 keep-alive.
    pub fn http1_only(mut self) -> Self {
        self.http1_only = true;
        self
    }

    /// Requires `Authorization: Bearer <token>`; anything else gets `401 Unauthorized`.
    pub fn require_bearer_token(mut self, token: &str) -> Self {
        self.bearer_token = Some(token.to_owned());
        self
    }

    /// Serves `route` on `path`. Unknown paths get `404 page not found`.
    pub fn route(mut self, path: &str, route: Route) -> Self {
        self.routes.insert(path.to_owned(), route);
        self
    }

    /// Shorthand for a `200` with `body` on `/metrics/resource`.
    pub fn resource_metrics(self, body: impl Into<Bytes>) -> Self {
        self.route(RESOURCE_METRICS_PATH, Route::ok(body))
    }

    /// Binds `127.0.0.1:0` and starts serving in the background.
    pub async fn start(self) -> Result<Listening, FakeKubeletError> {
        let acceptor = match &self.tls {
            Some(cert) => {
                let mut config = cert.server_config(self.client_ca_pem.as_deref())?;
                if self.http1_only {
                    // Freshly built, so this Arc is not shared yet.
                    if let Some(c) = Arc::get_mut(&mut config) {
                        c.alpn_protocols = vec![b"http/1.1".to_vec()];
                    }
                }
                Some(TlsAcceptor::from(config))
            }
            None => None,
        };
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            tls_failures: AtomicUsize::new(0),
            resumed: AtomicUsize::new(0),
            state: Mutex::new(State {
                routes: self.routes,
                bearer_token: self.bearer_token,
                seen: VecDeque::new(),
            }),
        });
        let task = tokio::spawn(accept_loop(listener, acceptor, Arc::clone(&shared)));
        Ok(Listening {
            addr,
            tls: self.tls.is_some(),
            shared,
            task,
        })
    }
}

/// A running fake kubelet. Dropping it stops the accept loop and every open connection.
#[derive(Debug)]
pub struct Listening {
    /// The bound loopback address.
    pub addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Listening {
    /// `https://127.0.0.1:<port><path>` (or `http://` for a plain fake).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// TCP connections accepted so far (a pooled client reuses one per host).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests that reached routing (after TLS, before auth checks).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// TLS handshakes that resumed an earlier session instead of a full handshake.
    pub fn resumed_handshakes(&self) -> usize {
        self.shared.resumed.load(Ordering::SeqCst)
    }

    /// TLS handshakes that failed (for example a missing client certificate).
    pub fn tls_failures(&self) -> usize {
        self.shared.tls_failures.load(Ordering::SeqCst)
    }

    /// The most recent requests, oldest first (bounded).
    pub fn seen_requests(&self) -> Vec<SeenRequest> {
        self.shared.lock().seen.iter().cloned().collect()
    }

    /// Replaces (or adds) the route for `path` while running.
    pub fn set_route(&self, path: &str, route: Route) {
        self.shared.lock().routes.insert(path.to_owned(), route);
    }

    /// Changes the required bearer token while running (`None` disables the check).
    pub fn set_bearer_token(&self, token: Option<&str>) {
        self.shared.lock().bearer_token = token.map(str::to_owned);
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

#[derive(Debug)]
struct Shared {
    connections: AtomicUsize,
    requests: AtomicUsize,
    tls_failures: AtomicUsize,
    resumed: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    routes: HashMap<String, Route>,
    bearer_token: Option<String>,
    seen: VecDeque<SeenRequest>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge the fake for everyone else.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn accept_loop(listener: TcpListener, acceptor: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(&shared);
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            match acceptor {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(tls) => {
                        if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
                        {
                            shared.resumed.fetch_add(1, Ordering::SeqCst);
                        }
                        serve(TokioIo::new(tls), shared).await
                    }
                    Err(_) => {
                        shared.tls_failures.fetch_add(1, Ordering::SeqCst);
                    }
                },
                None => serve(TokioIo::new(tcp), shared).await,
            }
        });
        while conns.try_join_next().is_some() {}
    }
}

async fn serve<I>(io: I, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(req, Arc::clone(&shared)));
    // Errors here are client hang-ups (timeouts in the scraper under test); nothing to report.
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    let (route, authorized) = {
        let mut state = shared.lock();
        if state.seen.len() == SEEN_LIMIT {
            state.seen.pop_front();
        }
        state.seen.push_back(SeenRequest {
            method: req.method().to_string(),
            path: path.clone(),
            version: format!("{:?}", req.version()),
            headers: req.headers().clone(),
            at: std::time::Instant::now(),
        });
        let authorized = match &state.bearer_token {
            None => true,
            Some(token) => req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|got| got == token),
        };
        (state.routes.get(&path).cloned(), authorized)
    };
    if !authorized {
        return Ok(reply(401, Bytes::from_static(b"Unauthorized")));
    }
    let Some(route) = route else {
        return Ok(reply(404, Bytes::from_static(b"404 page not found\n")));
    };
    if !route.latency.is_zero() {
        tokio::time::sleep(route.latency).await;
    }
    Ok(reply(route.status, route.body))
}

fn reply(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
