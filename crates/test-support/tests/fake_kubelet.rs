//! Smoke tests of the fake kubelet over raw HTTP/1.1 (the scraper's own tests cover h2).

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_server_test_support::pki::{provider, roots_from_pem};
use metrics_server_test_support::{FakeKubelet, IssuedCert, Route, TestPki};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn client_config(pki: &TestPki, client: Option<&IssuedCert>) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots_from_pem(&pki.ca_pem()).unwrap());
    let config = match client {
        Some(c) => builder
            .with_client_auth_cert(c.cert_chain(), c.private_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Sends one `Connection: close` request and returns the raw response text.
async fn get_tls(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: kubelet\r\n{auth}Connection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    tls.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn https_fake_serves_routes_and_enforces_the_bearer_token() {
    let pki = TestPki::new().unwrap();
    let cert = pki.server_cert(&["127.0.0.1"]).unwrap();
    let kubelet = FakeKubelet::https(&cert)
        .require_bearer_token("s3cret")
        .resource_metrics("node_cpu_usage_seconds_total 1 1\n")
        .start()
        .await
        .unwrap();
    let config = client_config(&pki, None);

    let ok = get_tls(
        kubelet.addr,
        config.clone(),
        "/metrics/resource",
        Some("s3cret"),
    )
    .await
    .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    assert!(ok.ends_with("node_cpu_usage_seconds_total 1 1\n"), "{ok}");

    let denied = get_tls(
        kubelet.addr,
        config.clone(),
        "/metrics/resource",
        Some("wrong"),
    )
    .await
    .unwrap();
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");

    let missing = get_tls(kubelet.addr, config, "/nope", Some("s3cret"))
        .await
        .unwrap();
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    assert_eq!(kubelet.connections(), 3);
    assert_eq!(kubelet.requests(), 3);
    let seen = kubelet.seen_requests();
    assert_eq!(seen[2].path, "/nope");
    assert_eq!(seen[0].version, "HTTP/1.1");
}

#[tokio::test]
async fn client_certificate_is_required_when_configured() {
    let pki = TestPki::new().unwrap();
    let cert = pki.server_cert(&["127.0.0.1"]).unwrap();
    let client = pki
        .client_cert("metrics-server", &["system:masters"])
        .unwrap();
    let kubelet = FakeKubelet::https(&cert)
        .require_client_cert(&pki.ca_pem())
        .resource_metrics("x 1\n")
        .start()
        .await
        .unwrap();

    let with = get_tls(
        kubelet.addr,
        client_config(&pki, Some(&client)),
        "/metrics/resource",
        None,
    )
    .await
    .unwrap();
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");

    // TLS 1.3 reports the missing certificate only after the handshake, on first read.
    let without = get_tls(
        kubelet.addr,
        client_config(&pki, None),
        "/metrics/resource",
        None,
    )
    .await;
    assert!(
        without.is_err() || without.as_deref().is_ok_and(str::is_empty),
        "{without:?}"
    );
    // The server counts the failure after sending its alert, so give it a moment.
    for _ in 0..100 {
        if kubelet.tls_failures() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(kubelet.tls_failures(), 1);
}

#[tokio::test]
async fn plain_http_fake_applies_latency_and_runtime_route_changes() {
    let kubelet = FakeKubelet::http()
        .route(
            "/slow",
            Route::ok("late").with_latency(Duration::from_millis(150)),
        )
        .start()
        .await
        .unwrap();
    assert!(kubelet.url("/x").starts_with("http://127.0.0.1:"));

    let get = |path: &'static str| async move {
        let mut tcp = TcpStream::connect(kubelet.addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.unwrap();
        out
    };
    let start = Instant::now();
    let slow = get("/slow").await;
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert!(slow.ends_with("late"), "{slow}");

    kubelet.set_route("/slow", Route::status(503, "busy"));
    let busy = get("/slow").await;
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
}
