//! The lean HTTP/1.1 client against fake kubelets: framing, caps, status reasons, keep-alive
//! and its pool (reuse, server closes, stale connections, idle expiry, no keep-alive).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use metrics_server_kubelet::{
    ErrorClass, KubeletClient, KubeletClientConfig, PemSource, ScrapeError, ServerVerification,
    TlsSettings, TokenSource, Transport,
};
use metrics_server_test_support::{
    FakeKubelet, Fault, FaultyKubelet, PemDir, RESOURCE_METRICS_PATH, TestPki,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn plain(max_body_bytes: usize) -> KubeletClient {
    KubeletClient::new(&KubeletClientConfig {
        max_body_bytes,
        ..KubeletClientConfig::new(Transport::Http)
    })
    .unwrap()
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}{RESOURCE_METRICS_PATH}")
}

/// Answers with exactly `raw` (any bytes) on a fresh connection per request.
async fn raw_reply(raw: &str) -> metrics_server_test_support::FaultyListening {
    FaultyKubelet::start(Fault::Garbage(Bytes::from(raw.to_owned())))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_chunked_body_with_extensions_and_trailers_is_read_whole() {
    let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
               6;ext=\"v\"\r\n# one\n\r\n6\r\n# two\n\r\n0\r\nX-Checksum: none\r\n\r\n";
    let kubelet = raw_reply(raw).await;
    let fetched = plain(1024).get(&url(kubelet.port()), soon()).await.unwrap();
    assert_eq!(fetched.body, "# one\n# two\n");
    assert!(!fetched.http2);
}

#[tokio::test]
async fn a_content_length_body_is_read_whole_and_the_request_is_well_formed() {
    let pki = TestPki::new().unwrap();
    let dir = PemDir::new().unwrap();
    dir.write("ca.crt", pki.ca_pem()).unwrap();
    let body = "# HELP x\n".repeat(10_000);
    let kubelet = FakeKubelet::https(&pki.server_cert(&["127.0.0.1"]).unwrap())
        .http1_only()
        .resource_metrics(body.clone())
        .start()
        .await
        .unwrap();
    let config = KubeletClientConfig {
        token: TokenSource::Static("t0ken".into()),
        user_agent: "lean-test/1".into(),
        ..KubeletClientConfig::new(Transport::Https(TlsSettings {
            verification: ServerVerification::Ca(PemSource::File(dir.path().join("ca.crt"))),
            client_cert: None,
        }))
    };
    let client = KubeletClient::new(&config).unwrap();
    let fetched = client
        .get(&kubelet.url(RESOURCE_METRICS_PATH), soon())
        .await
        .unwrap();
    assert_eq!(fetched.body, body.as_bytes());
    let seen = &kubelet.seen_requests()[0];
    assert_eq!(
        (seen.method.as_str(), seen.version.as_str()),
        ("GET", "HTTP/1.1")
    );
    let header = |name: &str| seen.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("host"), Some(kubelet.addr.to_string().as_str()));
    assert_eq!(header("user-agent"), Some("lean-test/1"));
    assert_eq!(header("authorization"), Some("Bearer t0ken"));
    assert_eq!(header("connection"), None);
}

#[tokio::test]
async fn bodies_over_the_cap_fail_whether_declared_or_streamed() {
    for declare_length in [true, false] {
        let kubelet = FaultyKubelet::start(Fault::Huge {
            total: 1 << 20,
            declare_length,
        })
        .await
        .unwrap();
        let got = plain(64 * 1024).get(&url(kubelet.port()), soon()).await;
        assert!(
            matches!(got, Err(ScrapeError::BodyTooLarge { limit: 65536 })),
            "declared {declare_length}: {got:?}"
        );
    }
}

#[tokio::test]
async fn a_body_growing_past_the_cap_without_framing_fails() {
    let raw = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}",
        "x".repeat(2000)
    );
    let kubelet = raw_reply(&raw).await;
    let got = plain(1000).get(&url(kubelet.port()), soon()).await;
    assert!(
        matches!(got, Err(ScrapeError::BodyTooLarge { .. })),
        "{got:?}"
    );
    let got = plain(2000).get(&url(kubelet.port()), soon()).await.unwrap();
    assert_eq!(got.body.len(), 2000);
}

#[tokio::test]
async fn a_non_200_status_keeps_its_reason_or_gets_the_canonical_one() {
    for (raw, code, reason) in [
        (
            "HTTP/1.1 503 Kubelet Busy\r\nContent-Length: 0\r\n\r\n",
            503,
            "Kubelet Busy",
        ),
        (
            "HTTP/1.1 401 \r\nContent-Length: 4\r\n\r\nnope",
            401,
            "Unauthorized",
        ),
    ] {
        let kubelet = raw_reply(raw).await;
        let err = plain(1024)
            .get(&url(kubelet.port()), soon())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ScrapeError::HttpStatus {
                code,
                reason: reason.to_owned()
            }
        );
        assert_eq!(err.class(), ErrorClass::HttpStatus(code));
    }
}

#[tokio::test]
async fn a_kept_connection_carries_every_request_even_after_an_error_status() {
    let kubelet = FakeKubelet::http()
        .resource_metrics("# ok\n")
        .start()
        .await
        .unwrap();
    let client = plain(1024);
    for path in [RESOURCE_METRICS_PATH, "/missing", RESOURCE_METRICS_PATH] {
        let _ = client.get(&kubelet.url(path), soon()).await;
    }
    assert_eq!((kubelet.connections(), kubelet.requests()), (1, 3));
}

#[tokio::test]
async fn connection_close_from_the_server_is_honoured() {
    // The faulty kubelet says `Connection: close` on every reply and closes after it.
    let kubelet = FaultyKubelet::start(Fault::Body {
        body: Bytes::from_static(b"# ok\n"),
        content_type: "text/plain",
    })
    .await
    .unwrap();
    let client = plain(1024);
    for _ in 0..3 {
        let fetched = client.get(&url(kubelet.port()), soon()).await.unwrap();
        assert_eq!(fetched.body, "# ok\n");
    }
    assert_eq!((kubelet.connections(), kubelet.requests()), (3, 3));
}

#[tokio::test]
async fn without_keep_alive_each_request_has_its_own_connection_and_says_close() {
    let kubelet = FakeKubelet::http()
        .resource_metrics("# ok\n")
        .start()
        .await
        .unwrap();
    let client = KubeletClient::new(&KubeletClientConfig {
        keep_alive: false,
        ..KubeletClientConfig::new(Transport::Http)
    })
    .unwrap();
    for _ in 0..3 {
        client
            .get(&kubelet.url(RESOURCE_METRICS_PATH), soon())
            .await
            .unwrap();
    }
    assert_eq!((kubelet.connections(), kubelet.requests()), (3, 3));
    let seen = kubelet.seen_requests();
    assert!(
        seen.iter()
            .all(|r| r.headers.get("connection").is_some_and(|v| v == "close"))
    );
}

#[tokio::test]
async fn an_idle_connection_past_the_idle_timeout_is_not_reused() {
    let kubelet = FakeKubelet::http()
        .resource_metrics("# ok\n")
        .start()
        .await
        .unwrap();
    let client = KubeletClient::new(&KubeletClientConfig {
        pool_idle_timeout: Duration::from_millis(100),
        ..KubeletClientConfig::new(Transport::Http)
    })
    .unwrap();
    let url = kubelet.url(RESOURCE_METRICS_PATH);
    let get = || client.get(&url, soon());
    get().await.unwrap();
    get().await.unwrap();
    assert_eq!(kubelet.connections(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    get().await.unwrap();
    assert_eq!((kubelet.connections(), kubelet.requests()), (2, 3));
}

/// How [`one_request_per_connection`] ends a connection after answering its first request.
#[derive(Debug, Clone, Copy)]
enum Close {
    /// Right away, while the client has it pooled (the client sees it before reusing it).
    Idle { reset: bool },
    /// Only once the next request arrives, unanswered: the race of a kubelet closing an
    /// idle connection just as the client reuses it.
    OnNextRequest { reset: bool },
}

/// Reads one request head; false if the peer closed first.
async fn read_head(tcp: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// A keep-alive server answering only the first request of each connection, then closing it
/// as `close` says. Counts accepted connections.
async fn one_request_per_connection(
    close: Close,
) -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            conns.spawn(async move {
                if !read_head(&mut tcp).await {
                    return;
                }
                let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n# ok\n";
                let _ = tcp.write_all(reply).await;
                let reset = match close {
                    Close::Idle { reset } => reset,
                    Close::OnNextRequest { reset } => {
                        read_head(&mut tcp).await;
                        reset
                    }
                };
                if reset {
                    let _ = tcp.set_zero_linger();
                }
            });
        }
    });
    (addr, accepted, task)
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_not_reused_or_retried_on_a_fresh_one() {
    for close in [
        Close::Idle { reset: false },
        Close::Idle { reset: true },
        Close::OnNextRequest { reset: false },
        Close::OnNextRequest { reset: true },
    ] {
        let (addr, accepted, task) = one_request_per_connection(close).await;
        let client = plain(1024);
        for _ in 0..3 {
            let fetched = client.get(&url(addr.port()), soon()).await;
            assert_eq!(fetched.unwrap().body, "# ok\n", "{close:?}");
            // Let an idle close arrive while the connection sits in the pool.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Close::OnNextRequest: requests 2 and 3 each met a pooled connection, then a new one.
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "{close:?}");
        task.abort();
    }
}

#[tokio::test]
async fn a_fresh_connection_closed_before_answering_is_a_transport_error() {
    let kubelet = raw_reply("").await;
    let err = plain(1024)
        .get(&url(kubelet.port()), soon())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transport, "{err}");
    // Not retried: the connection was not a pooled one.
    assert_eq!(kubelet.connections(), 1);
}

#[tokio::test]
async fn an_unresolvable_host_is_a_dns_error() {
    let err = plain(1024)
        .get(
            "http://kubelet.does-not-exist.invalid:10250/metrics/resource",
            soon(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Dns, "{err}");
}
