//! The lean HTTP/1.1 client used for kubelets unless h2 is negotiated.
//!
//! ```text
//! get ─▶ pool.take(host:port) ──▶ exchange ──ok──▶ pool.put (whole body read, keep-alive)
//!          │ none                   │ stale (failed before any response byte)
//!          ▼                        ▼
//!        connect: lookup_host → TCP (nodelay) → rustls handshake (no ALPN) → exchange
//! ```
//!
//! Between requests a kept connection is only its socket and rustls state: the request head
//! is written from a short-lived buffer, and the response is read through a buffer made per
//! response ([`wire::Reader`]). hyper instead keeps a read buffer, a write buffer, a dispatch
//! channel and a task per connection, about 37 KiB while idle.

mod pool;
mod wire;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::client::classify_dyn;
use crate::error::ScrapeError;
use pool::Pool;
use wire::{BodyError, Framing, Reader};

/// Largest response head (status line and headers) accepted; a kubelet's is about 200 bytes.
/// Same bound as hyper's fixed read buffer gave before.
const MAX_HEAD_BYTES: usize = crate::client::HTTP1_READ_BUFFER_BYTES;

/// Error bodies (401, 500, ...) up to this size are read so the connection can be kept.
const MAX_DRAINED_ERROR_BODY: usize = 64 * 1024;

/// Where one request goes, derived from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    /// The request URL, for errors.
    pub(crate) url: &'a str,
    /// Host without IPv6 brackets, for DNS and TLS server name.
    pub(crate) host: &'a str,
    /// Port to connect to.
    pub(crate) port: u16,
    /// `host:port` with brackets kept: the pool key.
    pub(crate) authority: String,
}

/// A kubelet connection: TLS over TCP, or bare TCP for `--deprecated-kubelet-completely-insecure`.
#[derive(Debug)]
enum Conn {
    Plain(TcpStream),
    // Boxed: the TLS state is large and the enum is moved in and out of the pool.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// Whether the socket has nothing to read. An idle connection is not polled while pooled,
    /// so the kubelet closing it (FIN, close_notify, reset) or writing anything unasked shows
    /// only here: such a connection is dropped rather than sent a request whose answer could
    /// be confused with what is already waiting.
    fn is_quiet(&self) -> bool {
        let tcp = match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        };
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        // A no-op waker: this only asks the kernel, a later read registers the real one.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        tcp.poll_peek(&mut cx, &mut buf).is_pending()
    }

    /// Polls a read once, without blocking, after a whole response: true if nothing is there.
    /// Over TLS this also lets rustls shrink its record buffer (up to 18 KiB after a body)
    /// back to 4 KiB, which it does only when asked to read with nothing buffered; hyper's
    /// idle read did that, a pooled socket nobody reads would keep the large buffer.
    fn settle(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(self).poll_read(&mut cx, &mut buf).is_pending()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How an exchange on one connection failed.
enum Failure {
    /// Nothing of a response arrived (write failed, or EOF/reset before the first byte): on a
    /// pooled connection the kubelet probably closed it while idle, so a retry is safe.
    Stale(io::Error),
    /// Anything else, already classified.
    Fatal(ScrapeError),
}

/// A TCP or TLS connect step failed; the text mirrors hyper's connector.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct ConnectError {
    what: &'static str,
    #[source]
    source: io::Error,
}

/// The lean HTTP/1.1 client: connector, idle pool and body cap.
pub(crate) struct Http1Client {
    /// `None` for plain HTTP.
    tls: Option<TlsConnector>,
    /// `None` without keep-alive: every connection is closed after its response.
    pool: Option<Pool<Conn>>,
    max_body_bytes: usize,
}

impl fmt::Debug for Http1Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http1Client")
            .field("tls", &self.tls.is_some())
            .field("pool", &self.pool)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl Http1Client {
    /// `tls` is the rustls config for HTTPS (`None`: plain HTTP); `idle_timeout` is `None`
    /// when connections are not kept.
    pub(crate) fn new(
        tls: Option<Arc<rustls::ClientConfig>>,
        idle_timeout: Option<std::time::Duration>,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            tls: tls.map(TlsConnector::from),
            pool: idle_timeout.map(Pool::new),
            max_body_bytes,
        }
    }

    /// Whether connections are kept (the request then omits `Connection: close`).
    pub(crate) fn keeps_alive(&self) -> bool {
        self.pool.is_some()
    }

    /// Sends `head` (a whole GET request head) to `target` and reads the `200` body.
    /// `connected` is set while a connection is established, so a caller's timeout can tell
    /// a connect timeout from a slow response.
    pub(crate) async fn fetch(
        &self,
        target: &Target<'_>,
        head: &[u8],
        connected: &AtomicBool,
    ) -> Result<Bytes, ScrapeError> {
        if let Some(conn) = self.take_pooled(&target.authority) {
            connected.store(true, Ordering::Relaxed);
            match self.exchange(conn, target, head).await {
                Ok(body) => return Ok(body),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Stale(e)) => {
                    tracing::debug!(url = target.url, error = %e, "pooled connection was closed, reconnecting");
                    connected.store(false, Ordering::Relaxed);
                }
            }
        }
        let conn = self.connect(target).await?;
        connected.store(true, Ordering::Relaxed);
        match self.exchange(conn, target, head).await {
            Ok(body) => Ok(body),
            Err(Failure::Fatal(e)) => Err(e),
            Err(Failure::Stale(e)) => Err(classify_dyn(target.url, &e)),
        }
    }

    /// A pooled connection that still looks idle; closed ones met on the way are dropped.
    fn take_pooled(&self, authority: &str) -> Option<Conn> {
        let pool = self.pool.as_ref()?;
        while let Some(conn) = pool.take(authority) {
            if conn.is_quiet() {
                return Some(conn);
            }
        }
        None
    }

    async fn connect(&self, target: &Target<'_>) -> Result<Conn, ScrapeError> {
        let addrs = tokio::net::lookup_host((target.host, target.port))
            .await
            .map_err(|e| ScrapeError::Dns {
                url: target.url.to_owned(),
                detail: format!("dns error: {e}"),
            })?;
        let tcp = connect_any(addrs)
            .await
            .map_err(|e| classify_dyn(target.url, &e))?;
        let Some(tls) = &self.tls else {
            return Ok(Conn::Plain(tcp));
        };
        let name = ServerName::try_from(target.host.to_owned()).map_err(|e| {
            let source = io::Error::new(io::ErrorKind::InvalidInput, e);
            classify_dyn(
                target.url,
                &ConnectError {
                    what: "invalid server name",
                    source,
                },
            )
        })?;
        // Handshake errors are io::Error(InvalidData) around the rustls::Error, which
        // classify_dyn finds.
        let stream = tls.connect(name, tcp).await.map_err(|source| {
            classify_dyn(
                target.url,
                &ConnectError {
                    what: "tls handshake error",
                    source,
                },
            )
        })?;
        Ok(Conn::Tls(Box::new(stream)))
    }

    /// One request and response on `conn`, returning it to the pool when it can be reused.
    async fn exchange(
        &self,
        mut conn: Conn,
        target: &Target<'_>,
        head: &[u8],
    ) -> Result<Bytes, Failure> {
        if let Err(e) = write_all_flush(&mut conn, head).await {
            return Err(Failure::Stale(e));
        }
        let mut reader = Reader::new(&mut conn);
        let resp = match reader.read_head(MAX_HEAD_BYTES).await {
            Ok(resp) => resp,
            Err(e) if !reader.received() => return Err(Failure::Stale(e)),
            Err(e) => return Err(Failure::Fatal(classify_dyn(target.url, &e))),
        };
        let too_large = || {
            Failure::Fatal(ScrapeError::BodyTooLarge {
                limit: self.max_body_bytes,
            })
        };
        if resp.status != 200 {
            // Read a small error body anyway, so a node failing every tick (RBAC, say)
            // keeps its connection instead of paying a handshake per tick.
            let drained = match resp.framing {
                Framing::Eof => false,
                f => reader.read_body(f, MAX_DRAINED_ERROR_BODY).await.is_ok(),
            };
            let reusable = drained && resp.keep_alive && reader.buffered().is_empty();
            drop(reader);
            self.release(target, conn, reusable);
            return Err(Failure::Fatal(status_error(resp.status, resp.reason)));
        }
        if let Framing::Length(n) = resp.framing
            && n > self.max_body_bytes as u64
        {
            return Err(too_large());
        }
        let body = match reader.read_body(resp.framing, self.max_body_bytes).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => return Err(too_large()),
            Err(BodyError::Io(e)) => return Err(Failure::Fatal(classify_dyn(target.url, &e))),
        };
        let reusable =
            resp.keep_alive && resp.framing != Framing::Eof && reader.buffered().is_empty();
        drop(reader);
        self.release(target, conn, reusable);
        Ok(Bytes::from(body))
    }

    /// Pools `conn` if it may carry another request; otherwise drops (closes) it.
    fn release(&self, target: &Target<'_>, mut conn: Conn, reusable: bool) {
        if let (true, Some(pool)) = (reusable, &self.pool)
            && conn.settle()
        {
            pool.put(&target.authority, conn);
        }
    }
}

async fn write_all_flush(conn: &mut Conn, bytes: &[u8]) -> io::Result<()> {
    conn.write_all(bytes).await?;
    conn.flush().await
}

/// Connects to the first address that accepts, in resolver order, with `TCP_NODELAY`.
async fn connect_any(addrs: impl Iterator<Item = SocketAddr>) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                tcp.set_nodelay(true).map_err(|source| ConnectError {
                    what: "tcp set_nodelay error",
                    source,
                })?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(ConnectError {
        what: "tcp connect error",
        source: last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "no addresses to connect to")
        }),
    })
}

/// `HttpStatus` with the reason phrase as sent, or the canonical one when none was.
fn status_error(code: u16, reason: String) -> ScrapeError {
    let reason = if reason.is_empty() {
        hyper::StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
            .to_owned()
    } else {
        reason
    };
    ScrapeError::HttpStatus { code, reason }
}

/// Writes a GET request head for `path_and_query`. Header values were validated as
/// `HeaderValue`s (no CR or LF).
pub(crate) fn request_head(
    path_and_query: &str,
    host: &str,
    user_agent: &[u8],
    authorization: Option<&[u8]>,
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"GET ");
    head.extend_from_slice(path_and_query.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    head.extend_from_slice(host.as_bytes());
    head.extend_from_slice(b"\r\nUser-Agent: ");
    head.extend_from_slice(user_agent);
    if let Some(auth) = authorization {
        head.extend_from_slice(b"\r\nAuthorization: ");
        head.extend_from_slice(auth);
    }
    if !keep_alive {
        head.extend_from_slice(b"\r\nConnection: close");
    }
    head.extend_from_slice(b"\r\n\r\n");
    head
}
