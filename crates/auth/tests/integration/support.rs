//! Fakes and a tiny TLS client shared by the tests.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::authentication::v1::{TokenReviewSpec, TokenReviewStatus, UserInfo};
use k8s_openapi::api::authorization::v1::{SubjectAccessReviewSpec, SubjectAccessReviewStatus};
use metrics_server_api::InFlightLimits;
use metrics_server_auth::stack::{self, StackOptions};
use metrics_server_auth::{
    AccessReviewer, Attributes, AuthMetrics, AuthenticationOptions, Authenticator, AuthnConfig,
    AuthorizationOptions, Authorizer, BoxFuture, CaBundle, CallPolicy, RequestHeaderConfig,
    ResourceAttributes, ReviewError, ServeOptions, ServingCerts, TlsOptions, TokenReviewer, User,
};
use metrics_server_test_support::pki::{IssuedCert, TestPki};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

// === Fakes ===

/// Accepts the tokens it knows; counts calls.
#[derive(Debug, Default)]
pub(crate) struct FakeTokens {
    pub(crate) valid: BTreeMap<String, UserInfo>,
    pub(crate) calls: AtomicUsize,
    /// Never answer (a hung kube-apiserver).
    pub(crate) hang: bool,
}

impl FakeTokens {
    pub(crate) fn with(token: &str, user: &str, groups: &[&str]) -> Self {
        let mut valid = BTreeMap::new();
        valid.insert(
            token.to_owned(),
            UserInfo {
                username: Some(user.to_owned()),
                uid: Some(format!("uid-{user}")),
                groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
                extra: None,
            },
        );
        Self {
            valid,
            calls: AtomicUsize::new(0),
            hang: false,
        }
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl TokenReviewer for FakeTokens {
    fn review(
        &self,
        spec: TokenReviewSpec,
    ) -> BoxFuture<'_, Result<TokenReviewStatus, ReviewError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let user = spec.token.as_ref().and_then(|t| self.valid.get(t)).cloned();
        let hang = self.hang;
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok(TokenReviewStatus {
                authenticated: Some(user.is_some()),
                user,
                ..TokenReviewStatus::default()
            })
        })
    }
}

/// Allows the listed user names; records every spec it is asked about.
#[derive(Debug, Default)]
pub(crate) struct FakeSar {
    pub(crate) allow_users: Vec<String>,
    pub(crate) reason: String,
    pub(crate) fail: bool,
    /// Never answer (a hung kube-apiserver).
    pub(crate) hang: bool,
    pub(crate) specs: Mutex<Vec<SubjectAccessReviewSpec>>,
}

impl FakeSar {
    pub(crate) fn allowing(users: &[&str]) -> Self {
        Self {
            allow_users: users.iter().map(|u| (*u).to_owned()).collect(),
            ..Self::default()
        }
    }

    pub(crate) fn specs(&self) -> Vec<SubjectAccessReviewSpec> {
        self.specs.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl AccessReviewer for FakeSar {
    fn review(
        &self,
        spec: SubjectAccessReviewSpec,
    ) -> BoxFuture<'_, Result<SubjectAccessReviewStatus, ReviewError>> {
        let allowed = spec
            .user
            .as_ref()
            .is_some_and(|u| self.allow_users.contains(u));
        if let Ok(mut specs) = self.specs.lock() {
            specs.push(spec);
        }
        let (fail, hang) = (self.fail, self.hang);
        let reason = (!allowed && !self.reason.is_empty()).then(|| self.reason.clone());
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            if fail {
                return Err(ReviewError::Other("connection refused".into()));
            }
            Ok(SubjectAccessReviewStatus {
                allowed,
                reason,
                ..SubjectAccessReviewStatus::default()
            })
        })
    }
}

/// E.9 for the paths the tests use (the real derivation lives in the API crate).
pub(crate) fn attributes(method: &Method, uri: &Uri) -> Attributes {
    let path = uri.path();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let res = |ns: &str, resource: &str| {
        Attributes::Resource(ResourceAttributes {
            verb: "list".into(),
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            resource: resource.into(),
            namespace: ns.into(),
            ..ResourceAttributes::default()
        })
    };
    match segs.as_slice() {
        [
            "apis",
            "metrics.k8s.io",
            "v1beta1",
            "namespaces",
            ns,
            "pods",
        ] => res(ns, "pods"),
        ["apis", "metrics.k8s.io", "v1beta1", "nodes"] => res("", "nodes"),
        _ => Attributes::non_resource(method, path),
    }
}

// === A server under test ===

/// The PKI of one test: serving, client and front-proxy CAs.
pub(crate) struct Pki {
    pub(crate) serving: TestPki,
    pub(crate) serving_cert: IssuedCert,
    pub(crate) client_ca: TestPki,
    pub(crate) front_proxy_ca: TestPki,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let serving = TestPki::new().expect("serving CA");
        let serving_cert = serving.server_cert(&["127.0.0.1"]).expect("serving cert");
        Self {
            serving,
            serving_cert,
            client_ca: TestPki::new().expect("client CA"),
            front_proxy_ca: TestPki::new().expect("front-proxy CA"),
        }
    }

    pub(crate) fn authn_config(&self, allowed_names: &[&str]) -> AuthnConfig {
        let defaults = AuthenticationOptions::default();
        AuthnConfig {
            client_ca: Some(
                CaBundle::from_pem(self.client_ca.ca_pem().as_bytes(), "client-ca").expect("CA"),
            ),
            request_header: Some(RequestHeaderConfig {
                ca: CaBundle::from_pem(self.front_proxy_ca.ca_pem().as_bytes(), "front-proxy-ca")
                    .expect("CA"),
                allowed_names: allowed_names.iter().map(|n| (*n).to_owned()).collect(),
                username_headers: defaults.requestheader_username_headers,
                group_headers: defaults.requestheader_group_headers,
                extra_headers_prefix: defaults.requestheader_extra_headers_prefix,
            }),
        }
    }
}

/// A running TLS server with the auth layer around an echo service.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) pki: Pki,
    pub(crate) sar: Arc<FakeSar>,
    pub(crate) tokens: Arc<FakeTokens>,
    pub(crate) work: Arc<WorkCounters>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// What the handler did: requests that finished, and requests whose work was dropped before
/// finishing (aborted by the timeout or a gone client).
#[derive(Debug, Default)]
pub(crate) struct WorkCounters {
    pub(crate) started: AtomicUsize,
    pub(crate) finished: AtomicUsize,
    pub(crate) dropped: AtomicUsize,
}

/// Counts a request as dropped unless it was marked done.
struct WorkGuard {
    counters: Arc<WorkCounters>,
    done: AtomicBool,
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        let counter = if self.done.load(Ordering::SeqCst) {
            &self.counters.finished
        } else {
            &self.counters.dropped
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// Settings of a [`TestServer`] beyond the fakes.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) stack: StackOptions,
    pub(crate) call_policy: CallPolicy,
    pub(crate) tls: TlsOptions,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            stack: StackOptions {
                request_timeout: Duration::from_secs(60),
                limits: InFlightLimits::new(400, 200),
                rejections: metrics_server_auth::stack::Rejections::default(),
            },
            call_policy: CallPolicy::default(),
            tls: TlsOptions::default(),
        }
    }
}

/// Echoes `<user>|<groups>|<x-remote-user header or ->`. `/slow` sleeps 300 ms first,
/// `/sleep/<ms>` sleeps that long, `/panic` panics.
async fn echo(
    req: Request<Incoming>,
    counters: Arc<WorkCounters>,
) -> Result<Response<String>, Infallible> {
    counters.started.fetch_add(1, Ordering::SeqCst);
    let guard = WorkGuard {
        counters,
        done: AtomicBool::new(false),
    };
    let path = req.uri().path();
    if path == "/slow" {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if let Some(ms) = path.strip_prefix("/sleep/").and_then(|ms| ms.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    assert_ne!(path, "/panic", "the handler panics on /panic");
    guard.done.store(true, Ordering::SeqCst);
    let user = req.extensions().get::<User>().cloned().unwrap_or_default();
    let remote = req
        .headers()
        .get("x-remote-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    Ok(Response::new(format!(
        "{}|{}|{}",
        user.name,
        user.groups.join(","),
        remote
    )))
}

impl TestServer {
    pub(crate) async fn start(sar: FakeSar, tokens: FakeTokens, tls: TlsOptions) -> Self {
        Self::start_with(
            sar,
            tokens,
            Setup {
                tls,
                ..Setup::default()
            },
        )
        .await
    }

    /// A server whose stack, review deadlines and TLS are set by `setup`.
    pub(crate) async fn start_with(sar: FakeSar, tokens: FakeTokens, setup: Setup) -> Self {
        let Setup {
            stack: stack_options,
            call_policy,
            tls,
        } = setup;
        let pki = Pki::new();
        let authn_config = Arc::new(ArcSwap::from_pointee(
            pki.authn_config(&["front-proxy-client"]),
        ));
        let sar = Arc::new(sar);
        let tokens = Arc::new(tokens);
        let authn = Authenticator::from_options(
            authn_config.clone(),
            Some(tokens.clone() as Arc<dyn TokenReviewer>),
            &AuthenticationOptions {
                call_policy,
                ..AuthenticationOptions::default()
            },
            &AuthMetrics::unregistered(),
        );
        let authz = Authorizer::new(
            &AuthorizationOptions {
                call_policy,
                ..AuthorizationOptions::default()
            },
            Some(sar.clone() as Arc<dyn AccessReviewer>),
        )
        .expect("authorizer");
        let work = Arc::new(WorkCounters::default());
        let counters = Arc::clone(&work);
        let handler = tower::service_fn(move |req| echo(req, Arc::clone(&counters)));
        let service = stack::build(stack_options, authn, authz, attributes, handler);

        let certs = ServingCerts::from_pem(
            pki.serving_cert.cert_pem.as_bytes(),
            pki.serving_cert.key_pem.as_bytes(),
            "test",
        )
        .expect("serving certs");
        let config = metrics_server_auth::server_config(
            &certs,
            &tls,
            authn_config.load().acceptable_issuers(),
        )
        .expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let options = ServeOptions {
            disable_http2: !tls.http2(),
            ..ServeOptions::default()
        };
        let task = tokio::spawn(metrics_server_auth::serve(
            listener,
            Arc::new(ArcSwap::new(config)),
            service,
            options,
            shutdown.clone(),
        ));
        Self {
            addr,
            pki,
            sar,
            tokens,
            work,
            shutdown,
            task,
        }
    }

    /// Client config trusting the serving CA, presenting `cert` if given.
    pub(crate) fn client(&self, cert: Option<&IssuedCert>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(metrics_server_auth::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(self.pki.serving.root_store().expect("roots"));
        let mut config = match cert {
            Some(c) => builder
                .with_client_auth_cert(c.cert_chain(), c.private_key())
                .expect("client cert"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    pub(crate) async fn get(
        &self,
        client: Arc<ClientConfig>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let (status, _, body) = request(self.addr, client, path, headers).await;
        (status, body)
    }

    /// Cancels and waits for the drain.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve drains within 5s")
            .expect("serve task");
    }

    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// One HTTP/1.1 (or h2 if negotiated) GET; returns status, negotiated ALPN and body.
pub(crate) async fn request(
    addr: SocketAddr,
    client: Arc<ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<Vec<u8>>, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(client)
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let mut req = Request::get(format!("https://127.0.0.1{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new()).expect("request");
    let resp = if alpn.as_deref() == Some(b"h2") {
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(conn);
        send.send_request(req).await.expect("response")
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        send.send_request(req).await.expect("response")
    };
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, alpn, String::from_utf8_lossy(&body).into_owned())
}
