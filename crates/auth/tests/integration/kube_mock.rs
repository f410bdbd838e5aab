//! The kube-rs implementations against a mock API server (tower-test), checking request
//! bodies as kube-apiserver would receive them.

use std::collections::BTreeMap;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::authentication::v1::TokenReviewSpec;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReviewSpec,
};
use kube::client::Body;
use metrics_server_auth::lookup::{self, AuthenticationOptions};
use metrics_server_auth::{AccessReviewer, KubeAccessReviewer, KubeTokenReviewer, TokenReviewer};
use metrics_server_test_support::pki::TestPki;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

type MockHandle = Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (kube::Client, MockHandle) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(svc, "default"), handle)
}

/// Answers one request: asserts method and path, returns the JSON body it carried.
fn answer_one(
    mut handle: MockHandle,
    method: Method,
    path: &'static str,
    status: StatusCode,
    response: Value,
) -> tokio::task::JoinHandle<Value> {
    tokio::spawn(async move {
        let (req, send) = handle.next_request().await.expect("a request");
        assert_eq!(req.method(), method);
        assert_eq!(req.uri().path(), path);
        let bytes = req.into_body().collect_bytes().await.expect("body");
        let sent = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("json body")
        };
        send.send_response(
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&response).expect("json")))
                .expect("response"),
        );
        sent
    })
}

#[tokio::test]
async fn a_token_review_posts_the_token_with_no_audiences() {
    let (client, handle) = mock_client();
    let server = answer_one(
        handle,
        Method::POST,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        StatusCode::CREATED,
        json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {},
            "spec": {"token": "abc"},
            "status": {"authenticated": true, "user": {"username": "carol", "uid": "42",
                       "groups": ["devs"], "extra": {"scopes": ["a"]}}}
        }),
    );
    let status = KubeTokenReviewer::new(client)
        .review(TokenReviewSpec {
            token: Some("abc".into()),
            audiences: None,
        })
        .await
        .expect("review");
    let sent = server.await.expect("server");
    assert_eq!(
        sent,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
               "metadata": {}, "spec": {"token": "abc"}})
    );
    assert_eq!(status.authenticated, Some(true));
    let user = status.user.expect("user");
    assert_eq!(user.username.as_deref(), Some("carol"));
    assert_eq!(user.groups, Some(vec!["devs".to_owned()]));
}

#[tokio::test]
async fn a_subject_access_review_posts_user_groups_extra_and_resource_attributes() {
    let (client, handle) = mock_client();
    let server = answer_one(
        handle,
        Method::POST,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        StatusCode::CREATED,
        json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
            "spec": {"user": "alice"},
            "status": {"allowed": false, "reason": "no RBAC policy matched"}
        }),
    );
    let mut extra = BTreeMap::new();
    extra.insert("scopes".to_owned(), vec!["view".to_owned()]);
    let status = KubeAccessReviewer::new(client)
        .review(SubjectAccessReviewSpec {
            user: Some("alice".into()),
            uid: Some("u1".into()),
            groups: Some(vec!["team".into(), "system:authenticated".into()]),
            extra: Some(extra),
            resource_attributes: Some(ResourceAttributes {
                verb: Some("list".into()),
                group: Some("metrics.k8s.io".into()),
                version: Some("v1beta1".into()),
                resource: Some("pods".into()),
                namespace: Some("default".into()),
                ..ResourceAttributes::default()
            }),
            non_resource_attributes: None,
        })
        .await
        .expect("review");
    let sent = server.await.expect("server");
    assert_eq!(
        sent,
        json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
            "spec": {
                "user": "alice", "uid": "u1",
                "groups": ["team", "system:authenticated"],
                "extra": {"scopes": ["view"]},
                "resourceAttributes": {"verb": "list", "group": "metrics.k8s.io",
                    "version": "v1beta1", "resource": "pods", "namespace": "default"}
            }
        })
    );
    assert!(!status.allowed);
    assert_eq!(status.reason.as_deref(), Some("no RBAC policy matched"));
}

#[tokio::test]
async fn a_non_resource_subject_access_review_carries_path_and_verb() {
    let (client, handle) = mock_client();
    let server = answer_one(
        handle,
        Method::POST,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        StatusCode::CREATED,
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "metadata": {}, "spec": {}, "status": {"allowed": true}}),
    );
    let status = KubeAccessReviewer::new(client)
        .review(SubjectAccessReviewSpec {
            user: Some("system:anonymous".into()),
            groups: Some(vec!["system:unauthenticated".into()]),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some("/metrics".into()),
                verb: Some("get".into()),
            }),
            ..SubjectAccessReviewSpec::default()
        })
        .await
        .expect("review");
    let sent = server.await.expect("server");
    assert_eq!(
        sent["spec"]["nonResourceAttributes"],
        json!({"path": "/metrics", "verb": "get"})
    );
    assert!(status.allowed);
}

const CM_PATH: &str =
    "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication";

#[tokio::test]
async fn the_configmap_supplies_both_cas_and_the_request_header_settings() {
    let client_ca = TestPki::new().expect("ca");
    let proxy_ca = TestPki::new().expect("ca");
    let (client, handle) = mock_client();
    let server = answer_one(
        handle,
        Method::GET,
        CM_PATH,
        StatusCode::OK,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
            "data": {
                "client-ca-file": client_ca.ca_pem(),
                "requestheader-client-ca-file": proxy_ca.ca_pem(),
                "requestheader-allowed-names": "[\"front-proxy-client\"]",
                "requestheader-username-headers": "[\"X-Remote-User\"]",
                "requestheader-group-headers": "[\"X-Remote-Group\"]",
                "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]"
            }
        }),
    );
    let config = lookup::load(&AuthenticationOptions::default(), Some(&client))
        .await
        .expect("load");
    server.await.expect("server");
    assert!(config.client_ca.is_some());
    let rh = config.request_header.as_ref().expect("request header");
    assert_eq!(rh.allowed_names, vec!["front-proxy-client".to_owned()]);
    assert_eq!(rh.username_headers, vec!["x-remote-user".to_owned()]);
    assert_eq!(rh.group_headers, vec!["x-remote-group".to_owned()]);
    assert_eq!(rh.extra_headers_prefix, vec!["x-remote-extra-".to_owned()]);
    // Both test CAs carry the same subject; an issuer is advertised once.
    assert_eq!(config.acceptable_issuers().len(), 1);
}

#[tokio::test]
async fn an_explicit_requestheader_ca_flag_wins_over_the_configmap() {
    let flag_ca = TestPki::new().expect("ca");
    let dir = metrics_server_test_support::pki::PemDir::new().expect("dir");
    let path = dir
        .write("front-proxy-ca.crt", flag_ca.ca_pem())
        .expect("write");
    let cm_ca = TestPki::new().expect("ca");
    let (client, handle) = mock_client();
    let server = answer_one(
        handle,
        Method::GET,
        CM_PATH,
        StatusCode::OK,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
               "data": {"requestheader-client-ca-file": cm_ca.ca_pem(),
                        "requestheader-username-headers": "[\"X-Other-User\"]",
                        "client-ca-file": cm_ca.ca_pem()}}),
    );
    let opts = AuthenticationOptions {
        requestheader_client_ca_file: Some(path),
        ..AuthenticationOptions::default()
    };
    let config = lookup::load(&opts, Some(&client)).await.expect("load");
    server.await.expect("server");
    let rh = config.request_header.expect("request header");
    let flag_bundle = metrics_server_auth::CaBundle::from_pem(flag_ca.ca_pem().as_bytes(), "flag")
        .expect("bundle");
    assert_eq!(rh.ca, flag_bundle);
    assert_eq!(
        rh.username_headers,
        vec!["x-remote-user".to_owned()],
        "flag defaults"
    );
    assert!(config.client_ca.is_some(), "client CA still looked up");
}

fn status_body(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "nope", "reason": reason, "code": code})
}

#[tokio::test]
async fn a_forbidden_lookup_is_fatal_unless_tolerated() {
    let (client, handle) = mock_client();
    let server = answer_one(
        handle,
        Method::GET,
        CM_PATH,
        StatusCode::FORBIDDEN,
        status_body(403, "Forbidden"),
    );
    let err = lookup::load(&AuthenticationOptions::default(), Some(&client))
        .await
        .map(|_| ())
        .unwrap_err();
    server.await.expect("server");
    assert!(
        err.to_string()
            .starts_with("unable to load configmap based request-header-client-ca-file"),
        "{err}"
    );

    let (client, handle) = mock_client();
    let server = answer_one(
        handle,
        Method::GET,
        CM_PATH,
        StatusCode::FORBIDDEN,
        status_body(403, "Forbidden"),
    );
    let opts = AuthenticationOptions {
        tolerate_lookup_failure: true,
        ..AuthenticationOptions::default()
    };
    let config = lookup::load(&opts, Some(&client)).await.expect("tolerated");
    server.await.expect("server");
    assert!(config.client_ca.is_none() && config.request_header.is_none());
}

#[tokio::test]
async fn a_missing_configmap_is_not_an_error() {
    let (client, handle) = mock_client();
    let server = answer_one(
        handle,
        Method::GET,
        CM_PATH,
        StatusCode::NOT_FOUND,
        status_body(404, "NotFound"),
    );
    let config = lookup::load(&AuthenticationOptions::default(), Some(&client))
        .await
        .expect("load");
    server.await.expect("server");
    assert!(config.client_ca.is_none() && config.request_header.is_none());
}

#[tokio::test]
async fn skip_lookup_never_calls_the_api_server() {
    let (client, mut handle) = mock_client();
    let opts = AuthenticationOptions {
        skip_lookup: true,
        ..AuthenticationOptions::default()
    };
    let config = lookup::load(&opts, Some(&client)).await.expect("load");
    assert!(config.client_ca.is_none());
    drop(client);
    assert!(handle.next_request().await.is_none(), "no request was made");
}

// === Deadlines and retries against a hung or failing kube-apiserver ===

mod deadlines {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use arc_swap::ArcSwap;
    use http::{HeaderMap, Response, StatusCode};
    use kube::client::Body;
    use metrics_server_auth::lookup::{self, AuthenticationOptions};
    use metrics_server_auth::{
        AuthMetrics, Authenticator, AuthnConfig, CallPolicy, KubeTokenReviewer, TokenReviewer,
    };
    use metrics_server_test_support::pki::TestPki;
    use serde_json::{Value, json};
    use tokio_util::sync::CancellationToken;

    use super::{CM_PATH, MockHandle, mock_client};

    const DEADLINE: Duration = Duration::from_secs(1);

    fn policy() -> CallPolicy {
        CallPolicy {
            deadline: DEADLINE,
            max_attempts: 5,
            first_backoff: Duration::from_millis(20),
        }
    }

    fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).expect("json")))
            .expect("response")
    }

    /// Serves requests in order: `None` does not answer (the request hangs for `hold`),
    /// `Some` answers. Returns the paths asked for.
    fn script(
        mut handle: MockHandle,
        answers: Vec<Option<(StatusCode, Value)>>,
        hold: Duration,
    ) -> tokio::task::JoinHandle<Vec<String>> {
        tokio::spawn(async move {
            let mut paths = Vec::new();
            let mut hung = Vec::new();
            for answer in answers {
                let Some((req, send)) = handle.next_request().await else {
                    break;
                };
                paths.push(req.uri().path().to_owned());
                match answer {
                    None => hung.push(send),
                    Some((status, body)) => send.send_response(json_response(status, &body)),
                }
            }
            if !hung.is_empty() {
                tokio::time::sleep(hold).await;
            }
            paths
        })
    }

    fn bearer() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().expect("header"));
        h
    }

    fn authenticator(client: kube::Client) -> Authenticator {
        Authenticator::from_options(
            Arc::new(ArcSwap::from_pointee(AuthnConfig::default())),
            Some(Arc::new(KubeTokenReviewer::new(client)) as Arc<dyn TokenReviewer>),
            &AuthenticationOptions {
                call_policy: policy(),
                ..AuthenticationOptions::default()
            },
            &AuthMetrics::unregistered(),
        )
    }

    #[tokio::test]
    async fn a_hung_token_review_fails_within_the_deadline() {
        let (client, handle) = mock_client();
        let _server = script(handle, vec![None], Duration::from_secs(30));
        let started = Instant::now();
        let result = tokio::time::timeout(
            DEADLINE * 10,
            authenticator(client).authenticate(&bearer(), None),
        )
        .await
        .expect("an answer");
        let took = started.elapsed();
        assert!(result.is_err(), "a hung review must not authenticate");
        assert!(took >= DEADLINE && took < DEADLINE * 3, "{took:?}");
    }

    #[tokio::test]
    async fn a_token_review_that_gets_503_is_retried() {
        let (client, handle) = mock_client();
        let unavailable = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "ServiceUnavailable", "code": 503});
        let ok = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "metadata": {}, "spec": {},
            "status": {"authenticated": true, "user": {"username": "carol"}}});
        let server = script(
            handle,
            vec![
                Some((StatusCode::SERVICE_UNAVAILABLE, unavailable)),
                Some((StatusCode::CREATED, ok)),
            ],
            Duration::ZERO,
        );
        let user = authenticator(client)
            .authenticate(&bearer(), None)
            .await
            .expect("authenticated on the second attempt");
        assert_eq!(user.name, "carol");
        assert_eq!(server.await.expect("server").len(), 2);
    }

    #[tokio::test]
    async fn a_hung_configmap_lookup_fails_within_the_deadline() {
        let (client, handle) = mock_client();
        let _server = script(handle, vec![None], Duration::from_secs(30));
        let opts = AuthenticationOptions {
            call_policy: policy(),
            ..AuthenticationOptions::default()
        };
        let started = Instant::now();
        let result = tokio::time::timeout(DEADLINE * 10, lookup::load(&opts, Some(&client)))
            .await
            .expect("an answer");
        let took = started.elapsed();
        assert!(matches!(result, Err(metrics_server_auth::Error::Lookup(_))));
        assert!(took >= DEADLINE && took < DEADLINE * 3, "{took:?}");
    }

    #[tokio::test]
    async fn the_reloader_survives_a_hung_read_and_keeps_reloading() {
        let ca = TestPki::new().expect("ca");
        let (client, handle) = mock_client();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
            "data": {"client-ca-file": ca.ca_pem()}});
        // The first re-read hangs; the next one brings a client CA.
        let server = script(
            handle,
            vec![None, Some((StatusCode::OK, cm))],
            Duration::ZERO,
        );
        let opts = AuthenticationOptions {
            reload_interval: Duration::from_millis(20),
            call_policy: policy(),
            ..AuthenticationOptions::default()
        };
        let target = Arc::new(ArcSwap::from_pointee(AuthnConfig::default()));
        let changes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&changes);
        let shutdown = CancellationToken::new();
        let task = lookup::spawn_reloader(
            opts,
            Some(client),
            Arc::clone(&target),
            move |_| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            },
            shutdown.clone(),
        );
        let paths = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("both reads within 10 s")
            .expect("server");
        assert_eq!(paths, vec![CM_PATH.to_owned(), CM_PATH.to_owned()]);
        for _ in 0..200 {
            if target.load().client_ca.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(target.load().client_ca.is_some(), "the new CA was loaded");
        assert_eq!(changes.load(std::sync::atomic::Ordering::SeqCst), 1);
        shutdown.cancel();
        task.await.expect("reloader ends on shutdown");
    }
}
