//! HSTS and CORS in front of authentication, through a real TLS listener, wired as the
//! binary wires them: HSTS ⊃ CORS ⊃ the serving stack (authentication, authorization) ⊃ handler.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use metrics_server_api::{AllowedOrigins, CorsLayer, HstsLayer};
use metrics_server_auth::{
    AccessReviewer, Authenticator, AuthorizationOptions, Authorizer, ServeOptions, ServingCerts,
    TlsOptions, TokenReviewer,
};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Layer as _;

use crate::support::{FakeSar, FakeTokens, Pki, attributes};

struct Server {
    addr: SocketAddr,
    pki: Pki,
    sar: Arc<FakeSar>,
    shutdown: CancellationToken,
}

async fn handler(
    _req: Request<Incoming>,
) -> Result<Response<http_body_util::Full<Bytes>>, Infallible> {
    Ok(Response::new(http_body_util::Full::new(
        Bytes::from_static(b"handled"),
    )))
}

async fn start(origins: &[&str], hsts: &[&str]) -> Server {
    let pki = Pki::new();
    let authn_config = Arc::new(ArcSwap::from_pointee(pki.authn_config(&[])));
    let sar = Arc::new(FakeSar::allowing(&["alice"]));
    let authn = Authenticator::new(
        authn_config.clone(),
        Some(Arc::new(FakeTokens::default()) as Arc<dyn TokenReviewer>),
        Duration::from_secs(10),
    );
    let authz = Authorizer::new(
        &AuthorizationOptions::default(),
        Some(sar.clone() as Arc<dyn AccessReviewer>),
    )
    .expect("authorizer");
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let cors = AllowedOrigins::parse(&owned(origins)).expect("origins");
    let hsts = HstsLayer::from_directives(&owned(hsts)).expect("directives");
    let service = metrics_server_auth::stack::build(
        metrics_server_auth::stack::StackOptions {
            request_timeout: Duration::ZERO,
            limits: metrics_server_api::InFlightLimits::new(0, 0),
            rejections: metrics_server_auth::stack::Rejections::default(),
        },
        authn,
        authz,
        attributes,
        tower::service_fn(handler),
    );
    let service = hsts.layer(CorsLayer::new(cors).layer(service));

    let certs = ServingCerts::from_pem(
        pki.serving_cert.cert_pem.as_bytes(),
        pki.serving_cert.key_pem.as_bytes(),
        "test",
    )
    .expect("certs");
    let config =
        metrics_server_auth::server_config(&certs, &TlsOptions::default(), vec![]).expect("config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(metrics_server_auth::serve(
        listener,
        Arc::new(ArcSwap::new(config)),
        service,
        ServeOptions::default(),
        shutdown.clone(),
    ));
    Server {
        addr,
        pki,
        sar,
        shutdown,
    }
}

/// One HTTP/1.1 request; returns status, headers and body.
async fn send(
    s: &Server,
    method: Method,
    path: &str,
    origin: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let client = ClientConfig::builder_with_provider(metrics_server_auth::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(s.pki.serving.root_store().expect("roots"))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(format!("https://127.0.0.1{path}"))
        .header("host", "127.0.0.1");
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    h.get(name).map(http::HeaderValue::as_bytes)
}

#[tokio::test]
async fn hsts_is_on_every_response_including_refusals() {
    let s = start(&[], &["max-age=31536000", "includeSubDomains", "preload"]).await;
    let want: &[u8] = b"max-age=31536000; includeSubDomains; preload";
    let (status, headers, body) = send(&s, Method::GET, "/readyz", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "handled"));
    assert_eq!(get(&headers, "strict-transport-security"), Some(want));
    let (status, headers, _) = send(&s, Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(get(&headers, "strict-transport-security"), Some(want));
    s.shutdown.cancel();
}

#[tokio::test]
async fn without_directives_there_is_no_hsts_header() {
    let s = start(&[], &[]).await;
    let (_, headers, _) = send(&s, Method::GET, "/readyz", None).await;
    assert!(!headers.contains_key("strict-transport-security"));
    s.shutdown.cancel();
}

#[tokio::test]
async fn an_allowed_preflight_is_answered_before_authentication() {
    let s = start(&["^https://ui\\.example$"], &[]).await;
    let (status, headers, body) =
        send(&s, Method::OPTIONS, "/metrics", Some("https://ui.example")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, "");
    assert_eq!(
        get(&headers, "access-control-allow-origin"),
        Some(&b"https://ui.example"[..])
    );
    assert_eq!(
        get(&headers, "access-control-allow-methods"),
        Some(&b"POST, GET, OPTIONS, PUT, DELETE, PATCH"[..])
    );
    assert_eq!(
        get(&headers, "access-control-allow-credentials"),
        Some(&b"true"[..])
    );
    assert!(s.sar.specs().is_empty(), "no authorization for a preflight");
    s.shutdown.cancel();
}

#[tokio::test]
async fn allowed_origins_get_cors_headers_on_refusals_and_others_get_none() {
    let s = start(&["^https://ui\\.example$"], &[]).await;
    // Anonymous GET /metrics is refused by the review; the refusal still carries CORS headers
    // so the browser can show the 403 to the page.
    let (status, headers, _) = send(&s, Method::GET, "/metrics", Some("https://ui.example")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&headers, "access-control-allow-origin"),
        Some(&b"https://ui.example"[..])
    );
    assert_eq!(
        get(&headers, "access-control-expose-headers"),
        Some(&b"Date"[..])
    );

    // A foreign origin is not refused by the filter: the request goes through authentication
    // and authorization as usual, and the response carries no CORS headers.
    for method in [Method::OPTIONS, Method::GET] {
        let (status, headers, _) =
            send(&s, method.clone(), "/metrics", Some("https://evil.example")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}");
        assert!(
            headers
                .keys()
                .all(|k| !k.as_str().starts_with("access-control-")),
            "{method}: {headers:?}"
        );
    }
    s.shutdown.cancel();
}
