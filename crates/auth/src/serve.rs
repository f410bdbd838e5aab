//! The TLS accept loop: tokio-rustls handshakes feeding hyper's HTTP/1.1 or HTTP/2 connection
//! (chosen by the ALPN protocol, as Go's TLS server does), with graceful drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt as _};

use crate::serving_certs::{ServingCertResolver, accept_by_local_ip};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client certificate chain the peer presented during the handshake (leaf first; empty
/// when none). Inserted into every request's extensions; the authenticators verify it.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(pub Arc<[CertificateDer<'static>]>);

impl PeerCertificates {
    /// The leaf certificate, if one was presented.
    pub fn leaf(&self) -> Option<&CertificateDer<'static>> {
        self.0.first()
    }

    /// The certificates after the leaf.
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        self.0.get(1..).unwrap_or(&[])
    }
}

/// The TCP peer address, inserted into every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub SocketAddr);

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A TLS handshake that takes longer is dropped.
    pub handshake_timeout: Duration,
    /// HTTP/1 request headers must arrive within this (Go apiserver: `ReadHeaderTimeout` 32s).
    pub header_read_timeout: Duration,
    /// `--http2-max-streams-per-connection`; 0 means Go's default of 250.
    pub http2_max_streams_per_connection: u32,
    /// `--disable-http2-serving`: serve HTTP/1.1 only. Otherwise a connection is HTTP/2 when
    /// ALPN negotiated `h2` (as Go's TLS server; no prior knowledge over TLS).
    pub disable_http2: bool,
    /// Bound on a request's head, as Go's `MaxHeaderBytes` (kube-apiserver: 1 MiB). HTTP/1:
    /// request line and headers may take this plus 4 KiB, as Go reads them; a longer head
    /// gets 431 (empty body, where Go writes the status text) and the connection closes.
    /// HTTP/2: the header list size advertised and enforced (431, then the stream is refused).
    /// Independently, a request target of 64 KiB or more gets 414 (hyper's own bound).
    pub max_header_bytes: usize,
    /// Most header fields one HTTP/1 request may carry (hyper's count limit; more gets 431).
    /// Go has none; this is large enough for a front proxy forwarding many groups.
    pub max_headers: usize,
    /// Set when a `--tls-sni-cert-key` name is an IP: clients without SNI then get the pair
    /// named for the local address they dialled.
    pub certs_by_local_ip: Option<Arc<ServingCertResolver>>,
}

/// Go's `http.DefaultMaxHeaderBytes`, which kube-apiserver's secure serving uses.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 1 << 20;
/// Default of [`ServeOptions::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 1024;
/// hyper's smallest HTTP/1 read buffer.
const MIN_HTTP1_BUFFER: usize = 8192;

/// The two protocol builders, configured once.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    http2_enabled: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(32),
            http2_max_streams_per_connection: 0,
            disable_http2: false,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            certs_by_local_ip: None,
        }
    }
}

/// Serves `service` over TLS on `listener` until `shutdown` is cancelled, then stops
/// accepting and waits for in-flight requests to finish (HTTP/2 gets GOAWAY, HTTP/1 stops
/// keep-alive).
///
/// The TLS config is loaded per connection, so swapping it (new client-CA hints, rotated
/// serving cert) takes effect for new connections without a restart. Per-connection errors
/// are logged at debug and never end the loop.
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Arc<ArcSwap<ServerConfig>>,
    service: S,
    options: ServeOptions,
    shutdown: CancellationToken,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let builders = Arc::new(connection_builders(&options));
    let graceful = GracefulShutdown::new();

    loop {
        let (tcp, remote) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    // Usually EMFILE; back off briefly instead of spinning.
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let config = tls.load_full();
        let by_ip = options.certs_by_local_ip.clone();
        let watcher = graceful.watcher();
        let builders = builders.clone();
        let service = service.clone();
        let shutdown = shutdown.clone();
        let handshake_timeout = options.handshake_timeout;
        tokio::spawn(async move {
            let tls = tokio::select! {
                () = shutdown.cancelled() => return,
                r = handshake(config, by_ip, tcp, handshake_timeout) => match r {
                    Ok(tls) => tls,
                    Err(error) => {
                        tracing::debug!(%remote, %error, "TLS handshake failed");
                        return;
                    }
                },
            };
            let peer = PeerCertificates(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default(),
            );
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(peer.clone());
                req.extensions_mut().insert(RemoteAddr(remote));
                service.clone().oneshot(req)
            });
            let h2 = builders.http2_enabled && tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(tls);
            let ended = if h2 {
                watcher
                    .watch(builders.http2.serve_connection(io, svc))
                    .await
            } else {
                watcher
                    .watch(builders.http1.serve_connection(io, svc))
                    .await
            };
            if let Err(error) = ended {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
        });
    }

    drop(listener);
    graceful.shutdown().await;
}

async fn handshake(
    config: Arc<ServerConfig>,
    by_ip: Option<Arc<ServingCertResolver>>,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, BoxError> {
    let _ = tcp.set_nodelay(true);
    let accept = async move {
        match by_ip {
            Some(resolver) => accept_by_local_ip(config, &resolver, tcp).await,
            None => TlsAcceptor::from(config).accept(tcp).await,
        }
    };
    match tokio::time::timeout(timeout, accept).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err("handshake timed out".into()),
    }
}

fn connection_builders(options: &ServeOptions) -> Builders {
    // Go reads up to MaxHeaderBytes plus 4 KiB of slack for the request line.
    let head = options.max_header_bytes.saturating_add(4096);
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_header_size(head)
        .max_buf_size(head.max(MIN_HTTP1_BUFFER))
        .max_headers(options.max_headers);
    let streams = match options.http2_max_streams_per_connection {
        0 => 250,
        n => n,
    };
    // Go's HTTP/2 server: MaxHeaderBytes plus 32 bytes of overhead for 10 typical fields.
    let header_list = options.max_header_bytes.saturating_add(320);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(streams)
        .max_header_list_size(u32::try_from(header_list).unwrap_or(u32::MAX));
    Builders {
        http1,
        http2,
        http2_enabled: !options.disable_http2,
    }
}
