//! The TLS accept loop: tokio-rustls handshakes feeding hyper-util's auto (HTTP/1.1 + h2)
//! connection builder, with graceful drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
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
    /// `--disable-http2-serving`: refuse HTTP/2 even with prior knowledge.
    pub disable_http2: bool,
    /// Set when a `--tls-sni-cert-key` name is an IP: clients without SNI then get the pair
    /// named for the local address they dialled.
    pub certs_by_local_ip: Option<Arc<ServingCertResolver>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(32),
            http2_max_streams_per_connection: 0,
            disable_http2: false,
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
    let builder = Arc::new(connection_builder(&options));
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
        let builder = builder.clone();
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
            let conn = builder.serve_connection(TokioIo::new(tls), svc);
            if let Err(error) = watcher.watch(conn).await {
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

fn connection_builder(options: &ServeOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let streams = match options.http2_max_streams_per_connection {
        0 => 250,
        n => n,
    };
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(streams);
    if options.disable_http2 {
        builder = builder.http1_only();
    }
    builder
}
