//! A misbehaving kubelet: HTTP/1.1 written by hand (plain on `127.0.0.1:0`, or over TLS on any
//! loopback address for cluster-level runs), so a test can
//! produce what a well-behaved server library never would (a hang after the request, a body
//! trickled a byte at a time, a reset in the middle of a body, a 1 GiB body, bytes that are
//! not HTTP at all).
//!
//! ```text
//! FaultyKubelet::start(Fault::Trickle { .. }).await?  ──▶ FaultyListening { addr }  (aborts on drop)
//!     ├─ connections()   TCP accepts
//!     ├─ requests()      request heads read completely
//!     └─ body_bytes_sent()  body bytes the kernel accepted (what a client could have read)
//! ```
//!
//! Every reply carries `Connection: close`; each request gets its own connection. Nothing large
//! is ever held in memory: big bodies are written from one reused chunk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A connection the faults are written to: plain TCP or TLS over TCP.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {
    /// Makes the next close a reset (RST) instead of an orderly shutdown.
    fn reset_on_close(&self) -> std::io::Result<()>;
}

impl Conn for TcpStream {
    fn reset_on_close(&self) -> std::io::Result<()> {
        self.set_zero_linger()
    }
}

impl Conn for TlsStream<TcpStream> {
    fn reset_on_close(&self) -> std::io::Result<()> {
        self.get_ref().0.set_zero_linger()
    }
}

/// The largest request head the fake reads before giving up on a connection.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Size of the chunk big bodies are written from.
const CHUNK: usize = 64 * 1024;

/// What the kubelet does once it has read a request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Reads the request and never answers (the connection stays open).
    Hang,
    /// Sends `200` headers announcing `body`, then one byte of it per `interval`.
    Trickle {
        /// The body being trickled.
        body: Bytes,
        /// Pause between bytes.
        interval: Duration,
    },
    /// Sends `200` headers announcing `body`, half of it, then resets the connection (RST).
    ResetMidBody {
        /// The body of which only the first half is sent.
        body: Bytes,
    },
    /// Answers `status` with a short plain-text body.
    Status(u16),
    /// Answers `302 Found` pointing at `location`.
    Redirect {
        /// The `Location` header.
        location: String,
    },
    /// Answers `200` with `total` bytes of comment lines, streamed; with `declare_length` the
    /// size is announced in `Content-Length`, otherwise the body is chunked.
    Huge {
        /// Body size in bytes.
        total: u64,
        /// Announce the size up front.
        declare_length: bool,
    },
    /// Answers `200` with this body and the given `Content-Type`.
    Body {
        /// Response body.
        body: Bytes,
        /// `Content-Type` header value.
        content_type: &'static str,
    },
    /// Writes these bytes instead of any HTTP response, then closes.
    Garbage(Bytes),
    /// Answers `200` text: the n-th request gets the n-th body, the last one repeats (scripted
    /// series such as advancing timestamps).
    Sequence(Arc<[Bytes]>),
}

/// Starts misbehaving kubelets.
#[derive(Debug)]
pub struct FaultyKubelet;

impl FaultyKubelet {
    /// Binds `127.0.0.1:0` and answers every request with `fault`.
    pub async fn start(fault: Fault) -> std::io::Result<FaultyListening> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), fault, None).await
    }

    /// Binds `addr` (a loopback address: a simulated node's InternalIP and kubelet port) and
    /// answers every request with `fault`, over TLS when `tls` is given.
    pub async fn start_on(
        addr: SocketAddr,
        fault: Fault,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<FaultyListening> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{addr} is not a loopback address"),
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let acceptor = tls.map(TlsAcceptor::from);
        let task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            fault,
            Arc::clone(&counters),
        ));
        Ok(FaultyListening {
            addr,
            counters,
            task,
        })
    }
}

/// A running faulty kubelet. Dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct FaultyListening {
    /// The bound loopback address.
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl FaultyListening {
    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Request heads read completely so far.
    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// Body bytes handed to the kernel so far, over all connections.
    pub fn body_bytes_sent(&self) -> u64 {
        self.counters.body_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyListening {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicUsize,
    requests: AtomicUsize,
    body_bytes: AtomicU64,
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    fault: Fault,
    counters: Arc<Counters>,
) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            continue;
        };
        counters.connections.fetch_add(1, Ordering::SeqCst);
        let fault = fault.clone();
        let counters = Arc::clone(&counters);
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            // Write errors are the client hanging up, which is what most faults provoke.
            let _ = match acceptor {
                None => serve(tcp, &fault, &counters).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(tls) => serve(tls, &fault, &counters).await,
                    Err(_) => Ok(()),
                },
            };
        });
        while conns.try_join_next().is_some() {}
    }
}

async fn serve<C: Conn>(mut tcp: C, fault: &Fault, counters: &Counters) -> std::io::Result<()> {
    if !read_request_head(&mut tcp).await? {
        return Ok(());
    }
    let nth = counters.requests.fetch_add(1, Ordering::SeqCst);
    match fault {
        Fault::Hang => std::future::pending::<std::io::Result<()>>().await,
        Fault::Trickle { body, interval } => {
            tcp.write_all(
                format!("{}\r\n", head(200, "text/plain", Some(body.len() as u64))).as_bytes(),
            )
            .await?;
            for byte in body.iter() {
                tcp.write_all(&[*byte]).await?;
                counters.body_bytes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(*interval).await;
            }
            Ok(())
        }
        Fault::ResetMidBody { body } => {
            tcp.write_all(
                format!("{}\r\n", head(200, "text/plain", Some(body.len() as u64))).as_bytes(),
            )
            .await?;
            let half = &body[..body.len() / 2];
            tcp.write_all(half).await?;
            tcp.flush().await?;
            counters
                .body_bytes
                .fetch_add(half.len() as u64, Ordering::SeqCst);
            // Linger zero turns the close into a reset.
            tcp.reset_on_close()?;
            drop(tcp);
            Ok(())
        }
        Fault::Status(code) => {
            let body = format!("{code} fault injected\n");
            write_reply(&mut tcp, *code, "text/plain", &[], body.as_bytes()).await
        }
        Fault::Redirect { location } => {
            let extra = [("Location", location.as_str())];
            write_reply(&mut tcp, 302, "text/html", &extra, b"<a>Found</a>\n").await
        }
        Fault::Huge {
            total,
            declare_length,
        } => write_huge(&mut tcp, *total, *declare_length, counters).await,
        Fault::Body { body, content_type } => {
            write_reply(&mut tcp, 200, content_type, &[], body).await?;
            counters
                .body_bytes
                .fetch_add(body.len() as u64, Ordering::SeqCst);
            Ok(())
        }
        Fault::Garbage(bytes) => {
            tcp.write_all(bytes).await?;
            tcp.shutdown().await
        }
        Fault::Sequence(bodies) => {
            let Some(body) = bodies.get(nth).or_else(|| bodies.last()) else {
                return write_reply(&mut tcp, 500, "text/plain", &[], b"empty sequence\n").await;
            };
            write_reply(&mut tcp, 200, "text/plain", &[], body).await?;
            counters
                .body_bytes
                .fetch_add(body.len() as u64, Ordering::SeqCst);
            Ok(())
        }
    }
}

/// Reads until the blank line ending a request head; false if the peer closed first or the
/// head is too large.
async fn read_request_head<C: Conn>(tcp: &mut C) -> std::io::Result<bool> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok(false);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(true);
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Ok(false);
        }
    }
}

/// The status line and headers, without the blank line that ends them.
fn head(status: u16, content_type: &str, length: Option<u64>) -> String {
    let framing = match length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".to_owned(),
    };
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\n{framing}Connection: close\r\n",
        reason(status)
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Fault",
    }
}

async fn write_reply<C: Conn>(
    tcp: &mut C,
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = head(status, content_type, Some(body.len() as u64));
    for (name, value) in extra_headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    tcp.write_all(out.as_bytes()).await?;
    tcp.write_all(body).await?;
    tcp.shutdown().await
}

/// Streams `total` bytes of comment lines from one reused chunk, counting what the kernel took.
async fn write_huge<C: Conn>(
    tcp: &mut C,
    total: u64,
    declare_length: bool,
    counters: &Counters,
) -> std::io::Result<()> {
    let length = declare_length.then_some(total);
    tcp.write_all(format!("{}\r\n", head(200, "text/plain", length)).as_bytes())
        .await?;
    let line = b"# padding padding padding padding padding padding padding padding\n";
    let chunk: Vec<u8> = line.iter().copied().cycle().take(CHUNK).collect();
    let mut left = total;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        if declare_length {
            tcp.write_all(&chunk[..n]).await?;
        } else {
            tcp.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            tcp.write_all(&chunk[..n]).await?;
            tcp.write_all(b"\r\n").await?;
        }
        counters.body_bytes.fetch_add(n as u64, Ordering::SeqCst);
        left -= n as u64;
    }
    if !declare_length {
        tcp.write_all(b"0\r\n\r\n").await?;
    }
    tcp.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr) -> String {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /metrics/resource HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_sequence_answers_in_order_then_repeats_its_last_body() {
        let bodies: Arc<[Bytes]> = Arc::from(vec![Bytes::from("one\n"), Bytes::from("two\n")]);
        let kubelet = FaultyKubelet::start(Fault::Sequence(bodies)).await.unwrap();
        let replies = [
            get(kubelet.addr).await,
            get(kubelet.addr).await,
            get(kubelet.addr).await,
        ];
        assert!(replies[0].starts_with("HTTP/1.1 200") && replies[0].ends_with("\r\n\r\none\n"));
        assert!(replies[1].ends_with("\r\n\r\ntwo\n"), "{}", replies[1]);
        assert!(replies[2].ends_with("\r\n\r\ntwo\n"), "{}", replies[2]);
        assert_eq!(kubelet.requests(), 3);
    }
}
