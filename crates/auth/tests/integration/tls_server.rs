//! X1–X6 and friends, through a real TLS listener on 127.0.0.1:0.

use std::time::Duration;

use http::StatusCode;
use metrics_server_auth::TlsOptions;
use metrics_server_test_support::pki::TestPki;

use crate::support::{FakeSar, FakeTokens, TestServer, request};

const UNAUTHORIZED: &str = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}\n";

async fn server() -> TestServer {
    TestServer::start(
        FakeSar::allowing(&["alice"]),
        FakeTokens::with("good-token", "carol", &["devs"]),
        TlsOptions::default(),
    )
    .await
}

#[tokio::test]
async fn x1_anonymous_readyz_is_allowed_without_a_review() {
    let s = server().await;
    let (status, body) = s.get(s.client(None), "/readyz", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "system:anonymous|system:unauthenticated|-");
    assert!(s.sar.specs().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn x2_anonymous_metrics_is_forbidden_by_the_subject_access_review() {
    let s = server().await;
    let (status, body) = s.get(s.client(None), "/metrics", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"forbidden: User \\\"system:anonymous\\\" cannot get path \\\"/metrics\\\"\",\"reason\":\"Forbidden\",\"details\":{},\"code\":403}\n"
    );
    let specs = s.sar.specs();
    assert_eq!(specs.len(), 1);
    let spec = &specs[0];
    assert_eq!(spec.user.as_deref(), Some("system:anonymous"));
    assert_eq!(spec.groups, Some(vec!["system:unauthenticated".to_owned()]));
    let nra = spec.non_resource_attributes.as_ref().expect("non-resource");
    assert_eq!(nra.path.as_deref(), Some("/metrics"));
    assert_eq!(nra.verb.as_deref(), Some("get"));
    assert!(spec.resource_attributes.is_none());
    s.stop().await;
}

#[tokio::test]
async fn x3_a_front_proxy_user_triggers_a_review_for_list_pods() {
    let s = server().await;
    let proxy = s
        .pki
        .front_proxy_ca
        .client_cert("front-proxy-client", &[])
        .expect("cert");
    let (status, body) = s
        .get(
            s.client(Some(&proxy)),
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
            &[
                ("X-Remote-User", "alice"),
                ("X-Remote-Group", "team-a"),
                ("X-Remote-Group", "team-b"),
                ("X-Remote-Extra-Scopes", "view"),
                ("X-Remote-Extra-Example.com%2fKey", "v1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The handler sees alice, and the identity headers have been stripped.
    assert_eq!(body, "alice|team-a,team-b,system:authenticated|-");
    let specs = s.sar.specs();
    assert_eq!(specs.len(), 1);
    let spec = &specs[0];
    assert_eq!(spec.user.as_deref(), Some("alice"));
    assert_eq!(
        spec.groups,
        Some(vec![
            "team-a".into(),
            "team-b".into(),
            "system:authenticated".into()
        ])
    );
    let extra = spec.extra.clone().expect("extra");
    assert_eq!(extra.get("scopes"), Some(&vec!["view".to_owned()]));
    assert_eq!(extra.get("example.com/key"), Some(&vec!["v1".to_owned()]));
    let ra = spec
        .resource_attributes
        .as_ref()
        .expect("resource attributes");
    assert_eq!(ra.verb.as_deref(), Some("list"));
    assert_eq!(ra.group.as_deref(), Some("metrics.k8s.io"));
    assert_eq!(ra.version.as_deref(), Some("v1beta1"));
    assert_eq!(ra.resource.as_deref(), Some("pods"));
    assert_eq!(ra.namespace.as_deref(), Some("default"));
    assert_eq!(ra.name, None);
    s.stop().await;
}

#[tokio::test]
async fn x3_a_denied_front_proxy_user_gets_go_s_403_message_with_the_reason() {
    let sar = FakeSar {
        reason: "no RBAC policy matched".into(),
        ..FakeSar::default()
    };
    let s = TestServer::start(sar, FakeTokens::default(), TlsOptions::default()).await;
    let proxy = s
        .pki
        .front_proxy_ca
        .client_cert("front-proxy-client", &[])
        .expect("cert");
    let (status, body) = s
        .get(
            s.client(Some(&proxy)),
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
            &[("X-Remote-User", "alice")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains(r#""message":"pods.metrics.k8s.io is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"metrics.k8s.io\" in the namespace \"default\": no RBAC policy matched""#),
        "{body}"
    );
    s.stop().await;
}

#[tokio::test]
async fn x4_remote_headers_without_a_client_certificate_are_ignored() {
    let s = server().await;
    let (status, body) = s
        .get(
            s.client(None),
            "/readyz",
            &[
                ("X-Remote-User", "alice"),
                ("X-Remote-Group", "system:masters"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "system:anonymous|system:unauthenticated|-");
    // And they grant nothing: /metrics still goes to the review as anonymous.
    let (status, _) = s
        .get(
            s.client(None),
            "/metrics",
            &[("X-Remote-Group", "system:masters")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    s.stop().await;
}

#[tokio::test]
async fn x4_remote_headers_with_a_client_ca_certificate_are_ignored() {
    let s = server().await;
    let bob = s.pki.client_ca.client_cert("bob", &["ops"]).expect("cert");
    let (status, body) = s
        .get(
            s.client(Some(&bob)),
            "/readyz",
            &[("X-Remote-User", "alice")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "bob|ops,system:authenticated|-");
    s.stop().await;
}

#[tokio::test]
async fn x4_a_certificate_from_an_unknown_ca_is_rejected_with_401() {
    let s = server().await;
    let rogue = TestPki::new().expect("rogue CA");
    let cert = rogue.client_cert("front-proxy-client", &[]).expect("cert");
    let (status, body) = s
        .get(
            s.client(Some(&cert)),
            "/readyz",
            &[("X-Remote-User", "alice")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn x4_a_front_proxy_certificate_with_a_cn_outside_allowed_names_is_rejected() {
    let s = server().await;
    let cert = s
        .pki
        .front_proxy_ca
        .client_cert("someone-else", &[])
        .expect("cert");
    let (status, _) = s
        .get(
            s.client(Some(&cert)),
            "/readyz",
            &[("X-Remote-User", "alice")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn an_expired_front_proxy_certificate_does_not_carry_remote_headers() {
    let s = server().await;
    let cert = s
        .pki
        .front_proxy_ca
        .expired_client_cert("front-proxy-client", &[])
        .expect("cert");
    let (status, body) = s
        .get(
            s.client(Some(&cert)),
            "/metrics",
            &[
                ("X-Remote-User", "alice"),
                ("X-Remote-Group", "system:masters"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn an_expired_client_certificate_is_rejected_with_401() {
    let s = server().await;
    let cert = s
        .pki
        .client_ca
        .expired_client_cert("alice", &["system:masters"])
        .expect("cert");
    let (status, body) = s.get(s.client(Some(&cert)), "/metrics", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn x5_system_masters_via_the_front_proxy_is_allowed_without_a_review() {
    let s = server().await;
    let proxy = s
        .pki
        .front_proxy_ca
        .client_cert("front-proxy-client", &[])
        .expect("cert");
    let (status, body) = s
        .get(
            s.client(Some(&proxy)),
            "/apis/metrics.k8s.io/v1beta1/nodes",
            &[
                ("X-Remote-User", "system:kube-aggregator"),
                ("X-Remote-Group", "system:masters"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "system:kube-aggregator|system:masters,system:authenticated|-"
    );
    assert!(s.sar.specs().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn x6_a_bad_bearer_token_is_rejected_with_401_and_no_anonymous_fallback() {
    let s = server().await;
    let (status, body) = s
        .get(
            s.client(None),
            "/readyz",
            &[("Authorization", "Bearer nope")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn a_good_bearer_token_authenticates_through_the_token_review() {
    let s = server().await;
    let (status, body) = s
        .get(
            s.client(None),
            "/readyz",
            &[("Authorization", "Bearer good-token")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "carol|devs,system:authenticated|-");
    assert_eq!(s.tokens.calls(), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_failing_subject_access_review_gives_a_plain_text_500() {
    let sar = FakeSar {
        fail: true,
        ..FakeSar::default()
    };
    let s = TestServer::start(sar, FakeTokens::default(), TlsOptions::default()).await;
    let (status, body) = s.get(s.client(None), "/metrics?x=1", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        "Internal Server Error: \"/metrics?x=1\": connection refused\n"
    );
    s.stop().await;
}

#[tokio::test]
async fn h2_is_negotiated_by_default_and_dropped_when_disabled() {
    let s = server().await;
    let (status, alpn, _) = request(s.addr, s.client(None), "/readyz", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    s.stop().await;

    let tls = TlsOptions::from_flags("", &[], true).expect("flags");
    let s = TestServer::start(FakeSar::default(), FakeTokens::default(), tls).await;
    let (status, alpn, _) = request(s.addr, s.client(None), "/readyz", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    s.stop().await;
}

#[tokio::test]
async fn shutdown_drains_an_in_flight_request() {
    let s = TestServer::start(
        FakeSar::allowing(&["system:anonymous"]),
        FakeTokens::default(),
        TlsOptions::default(),
    )
    .await;
    let client = s.client(None);
    let addr = s.addr;
    // /slow sleeps 300ms in the handler; cancel while it is running.
    let inflight = tokio::spawn(async move { request(addr, client, "/slow", &[]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.shutdown_token().cancel();
    let (status, _, body) = inflight.await.expect("request task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "system:anonymous|system:unauthenticated|-");
    s.stop().await;
}

/// Records the acceptable issuers the server sent; presents no certificate.
#[derive(Debug, Default)]
struct HintRecorder(std::sync::Mutex<Vec<Vec<u8>>>);

impl rustls::client::ResolvesClientCert for HintRecorder {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        if let Ok(mut hints) = self.0.lock() {
            hints.extend(root_hint_subjects.iter().map(|h| h.to_vec()));
        }
        None
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn the_handshake_requests_a_client_certificate_naming_the_trusted_cas() {
    let s = server().await;
    let recorder = std::sync::Arc::new(HintRecorder::default());
    let mut config = rustls::ClientConfig::builder_with_provider(metrics_server_auth::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(s.pki.serving.root_store().expect("roots"))
        .with_client_cert_resolver(recorder.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (status, _, _) = request(s.addr, std::sync::Arc::new(config), "/readyz", &[]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a client without a certificate is still served"
    );
    let hints = recorder.0.lock().map(|h| h.clone()).unwrap_or_default();
    let expected =
        metrics_server_auth::CaBundle::from_pem(s.pki.client_ca.ca_pem().as_bytes(), "client-ca")
            .expect("bundle");
    assert!(
        !hints.is_empty(),
        "the CertificateRequest lists acceptable issuers"
    );
    assert!(
        expected
            .subjects()
            .iter()
            .all(|s| hints.iter().any(|h| h.as_slice() == s.as_ref())),
        "the client CA subject is advertised"
    );
    s.stop().await;
}

/// Always presents the given certified key.
#[derive(Debug)]
struct FixedCert(std::sync::Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_certificate_presented_without_its_private_key_is_refused() {
    let s = server().await;
    let proxy = s
        .pki
        .front_proxy_ca
        .client_cert("front-proxy-client", &[])
        .expect("cert");
    let other = s
        .pki
        .front_proxy_ca
        .client_cert("other", &[])
        .expect("cert");
    // The proxy's certificate, but signed with someone else's key. rustls refuses to build
    // such a pair through the builder, so hand it over through a resolver.
    let signer = metrics_server_auth::provider()
        .key_provider
        .load_private_key(other.private_key())
        .expect("signing key");
    let mismatched =
        std::sync::Arc::new(rustls::sign::CertifiedKey::new(proxy.cert_chain(), signer));
    let mut config = rustls::ClientConfig::builder_with_provider(metrics_server_auth::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(s.pki.serving.root_store().expect("roots"))
        .with_client_cert_resolver(std::sync::Arc::new(FixedCert(mismatched)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let outcome = async {
        let tcp = tokio::net::TcpStream::connect(s.addr).await.ok()?;
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(
                rustls_pki_types::ServerName::try_from("127.0.0.1").ok()?,
                tcp,
            )
            .await
            .ok()?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .ok()?;
        tokio::spawn(conn);
        let req = http::Request::get("https://127.0.0.1/readyz")
            .header("X-Remote-User", "alice")
            .header("X-Remote-Group", "system:masters")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .ok()?;
        send.send_request(req).await.ok().map(|r| r.status())
    }
    .await;
    assert_eq!(outcome, None, "no response may be served");
    s.stop().await;
}
