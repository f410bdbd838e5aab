//! Request-head limits over a real TLS listener, as Go's `MaxHeaderBytes` (1 MiB) bounds
//! kube-apiserver: what hyper answers for a head that is too large, a request target that
//! is too long, or too many header fields, and that heads within the bounds are served.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use metrics_server_auth::TlsOptions;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{FakeSar, FakeTokens, TestServer};

async fn server() -> TestServer {
    TestServer::start(
        FakeSar::default(),
        FakeTokens::default(),
        TlsOptions::default(),
    )
    .await
}

fn with_alpn(config: &Arc<ClientConfig>, alpn: &[u8]) -> Arc<ClientConfig> {
    let mut config = (**config).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// Writes `head` on an HTTP/1.1 TLS connection and returns the status line's code.
async fn raw_http1(s: &TestServer, head: &[u8]) -> u16 {
    let tcp = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let client = with_alpn(&s.client(None), b"http/1.1");
    let mut tls = tokio_rustls::TlsConnector::from(client)
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    // The server may answer and close before reading everything: ignore write errors.
    let _ = tls.write_all(head).await;
    let _ = tls.flush().await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await;
        match read {
            Ok(Ok(n)) if n > 0 => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            _ => break,
        }
    }
    let line = String::from_utf8_lossy(&out);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn get_with_headers(path: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

#[tokio::test]
async fn http1_heads_up_to_one_mebibyte_and_4_kib_are_served_and_larger_ones_get_431() {
    let s = server().await;
    let big = |n: usize| vec![("X-Big".to_owned(), "a".repeat(n))];
    assert_eq!(
        raw_http1(&s, &get_with_headers("/readyz", &big(1 << 20))).await,
        200
    );
    assert_eq!(
        raw_http1(&s, &get_with_headers("/readyz", &big((1 << 20) + 8192))).await,
        431
    );
    s.stop().await;
}

#[tokio::test]
async fn http1_header_count_is_bounded_above_hyper_s_default() {
    let s = server().await;
    let many = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("X-H{i}"), "v".to_owned()))
            .collect()
    };
    // Beyond hyper's default of 100 (a front proxy forwarding many groups).
    assert_eq!(
        raw_http1(&s, &get_with_headers("/readyz", &many(500))).await,
        200
    );
    assert_eq!(
        raw_http1(&s, &get_with_headers("/readyz", &many(2000))).await,
        431
    );
    s.stop().await;
}

#[tokio::test]
async fn a_request_target_of_64_kib_or_more_gets_414_before_any_parsing() {
    let s = server().await;
    let query = format!(
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector={}",
        "a".repeat(70 * 1024)
    );
    assert_eq!(raw_http1(&s, &get_with_headers(&query, &[])).await, 414);
    assert!(s.sar.specs().is_empty(), "nothing reached authorization");
    s.stop().await;
}

#[tokio::test]
async fn http2_header_lists_are_bounded_too() {
    let s = server().await;
    let send = |value: String| {
        let client = with_alpn(&s.client(None), b"h2");
        let addr = s.addr;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let tls = tokio_rustls::TlsConnector::from(client)
                .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
                .await
                .expect("TLS handshake");
            let (mut send, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                TokioIo::new(tls),
            )
            .await
            .expect("h2 handshake");
            tokio::spawn(conn);
            let req = Request::get("https://127.0.0.1/readyz")
                .header("x-big", value)
                .body(Empty::<Bytes>::new())
                .expect("request");
            send.send_request(req).await.map(|r| r.status())
        }
    };
    assert_eq!(
        send("a".repeat(64 * 1024)).await.ok(),
        Some(StatusCode::OK),
        "64 KiB is more than hyper's 16 KiB default and within Go's bound"
    );
    let over = send("a".repeat(2 << 20)).await;
    assert!(
        matches!(
            over,
            Ok(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE) | Err(_)
        ),
        "{over:?}"
    );
    s.stop().await;
}
