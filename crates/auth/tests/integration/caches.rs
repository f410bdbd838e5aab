//! Review caches: a second identical request within the TTL does not call the reviewer.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderMap, Method};
use metrics_server_auth::lookup::AuthenticationOptions;
use metrics_server_auth::{
    AccessReviewer, Attributes, AuthMetrics, Authenticator, AuthnConfig, AuthorizationOptions,
    Authorizer, Decision, TokenReviewer, User,
};

use crate::support::{FakeSar, FakeTokens};

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    h
}

fn authenticator(tokens: Arc<FakeTokens>, ttl: Duration) -> Authenticator {
    Authenticator::new(
        Arc::new(ArcSwap::from_pointee(AuthnConfig::default())),
        Some(tokens as Arc<dyn TokenReviewer>),
        ttl,
    )
}

#[tokio::test]
async fn a_token_is_reviewed_once_within_the_cache_ttl_and_again_after_it() {
    let tokens = Arc::new(FakeTokens::with("t", "carol", &[]));
    let authn = authenticator(tokens.clone(), Duration::from_millis(200));
    for _ in 0..3 {
        let user = authn
            .authenticate(&bearer("t"), None)
            .await
            .expect("authenticated");
        assert_eq!(user.name, "carol");
    }
    assert_eq!(tokens.calls(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    authn
        .authenticate(&bearer("t"), None)
        .await
        .expect("authenticated");
    assert_eq!(tokens.calls(), 2);
}

#[tokio::test]
async fn a_rejected_token_is_cached_too() {
    let tokens = Arc::new(FakeTokens::default());
    let authn = authenticator(tokens.clone(), Duration::from_secs(10));
    assert!(authn.authenticate(&bearer("bad"), None).await.is_err());
    assert!(authn.authenticate(&bearer("bad"), None).await.is_err());
    assert_eq!(tokens.calls(), 1);
}

#[tokio::test]
async fn without_a_token_reviewer_bearer_tokens_are_ignored() {
    let authn = Authenticator::new(
        Arc::new(ArcSwap::from_pointee(AuthnConfig::default())),
        None,
        Duration::from_secs(10),
    );
    let user = authn
        .authenticate(&bearer("x"), None)
        .await
        .expect("anonymous");
    assert_eq!(user, User::anonymous());
}

fn authorizer(sar: Arc<FakeSar>, allowed: Duration, denied: Duration) -> Authorizer {
    Authorizer::new(
        &AuthorizationOptions {
            authorized_ttl: allowed,
            unauthorized_ttl: denied,
            ..AuthorizationOptions::default()
        },
        Some(sar as Arc<dyn AccessReviewer>),
    )
    .expect("authorizer")
}

fn user(name: &str) -> User {
    User {
        name: name.into(),
        groups: vec!["system:authenticated".into()],
        ..User::default()
    }
}

#[tokio::test]
async fn an_allowed_review_is_cached_for_the_authorized_ttl() {
    let sar = Arc::new(FakeSar::allowing(&["alice"]));
    let authz = authorizer(sar.clone(), Duration::from_millis(200), Duration::ZERO);
    let attrs = Attributes::non_resource(&Method::GET, "/metrics");
    for _ in 0..3 {
        assert!(matches!(
            authz.authorize(&user("alice"), &attrs).await,
            Decision::Allow
        ));
    }
    assert_eq!(sar.specs().len(), 1);
    // A different user is a different key.
    assert!(matches!(
        authz.authorize(&user("bob"), &attrs).await,
        Decision::Deny { .. }
    ));
    assert_eq!(sar.specs().len(), 2);
    tokio::time::sleep(Duration::from_millis(250)).await;
    authz.authorize(&user("alice"), &attrs).await;
    assert_eq!(sar.specs().len(), 3);
}

#[tokio::test]
async fn a_denied_review_is_cached_for_the_unauthorized_ttl() {
    let sar = Arc::new(FakeSar::default());
    let authz = authorizer(sar.clone(), Duration::ZERO, Duration::from_secs(10));
    let attrs = Attributes::non_resource(&Method::GET, "/metrics");
    for _ in 0..2 {
        assert!(matches!(
            authz.authorize(&user("bob"), &attrs).await,
            Decision::Deny { .. }
        ));
    }
    assert_eq!(sar.specs().len(), 1);
}

#[tokio::test]
async fn review_errors_are_not_cached() {
    let sar = Arc::new(FakeSar {
        fail: true,
        ..FakeSar::default()
    });
    let authz = authorizer(
        sar.clone(),
        Duration::from_secs(10),
        Duration::from_secs(10),
    );
    let attrs = Attributes::non_resource(&Method::GET, "/metrics");
    for _ in 0..2 {
        assert!(matches!(
            authz.authorize(&user("bob"), &attrs).await,
            Decision::Error(_)
        ));
    }
    assert_eq!(sar.specs().len(), 2);
}

#[tokio::test]
async fn always_allow_paths_apply_to_non_resource_requests_only() {
    let sar = Arc::new(FakeSar::default());
    let authz = Authorizer::new(
        &AuthorizationOptions {
            always_allow_paths: vec!["/apis/*".into()],
            ..AuthorizationOptions::default()
        },
        Some(sar.clone() as Arc<dyn AccessReviewer>),
    )
    .expect("authorizer");
    let discovery = Attributes::non_resource(&Method::GET, "/apis/metrics.k8s.io/v1beta1");
    assert!(matches!(
        authz.authorize(&User::anonymous(), &discovery).await,
        Decision::Allow
    ));
    let pods = Attributes::Resource(metrics_server_auth::ResourceAttributes {
        verb: "list".into(),
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        resource: "pods".into(),
        ..Default::default()
    });
    assert!(matches!(
        authz.authorize(&User::anonymous(), &pods).await,
        Decision::Deny { .. }
    ));
    // The default list no longer applies once the flag is set.
    let readyz = Attributes::non_resource(&Method::GET, "/readyz");
    assert!(matches!(
        authz.authorize(&User::anonymous(), &readyz).await,
        Decision::Deny { .. }
    ));
}

fn metric_line(registry: &prometheus_client::registry::Registry, cache: &str) -> String {
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    let prefix = format!("msrs_auth_cache_evictions_total{{cache=\"{cache}\"}} ");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_cache_sizes_from_the_options_bound_both_caches_and_evictions_are_counted() {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = AuthMetrics::register(&mut registry);

    let mut tokens = FakeTokens::with("t1", "carol", &[]);
    tokens.valid.insert("t2".into(), tokens.valid["t1"].clone());
    let tokens = Arc::new(tokens);
    let authn = Authenticator::from_options(
        Arc::new(ArcSwap::from_pointee(AuthnConfig::default())),
        Some(tokens.clone() as Arc<dyn TokenReviewer>),
        &AuthenticationOptions {
            token_cache_size: 1,
            ..AuthenticationOptions::default()
        },
        &metrics,
    );
    // With room for one token, alternating two tokens reviews every time.
    for token in ["t1", "t2", "t1", "t2"] {
        authn.authenticate(&bearer(token), None).await.expect("ok");
    }
    assert_eq!(tokens.calls(), 4);
    assert_eq!(
        metric_line(&registry, "token"),
        "msrs_auth_cache_evictions_total{cache=\"token\"} 3"
    );

    let sar = Arc::new(FakeSar::allowing(&["alice", "bob"]));
    let authz = Authorizer::with_metrics(
        &AuthorizationOptions {
            cache_size: 2,
            ..AuthorizationOptions::default()
        },
        Some(sar.clone() as Arc<dyn AccessReviewer>),
        &metrics,
    )
    .expect("authorizer");
    let attrs = Attributes::non_resource(&Method::GET, "/metrics");
    for name in ["alice", "bob", "alice", "carol", "alice", "bob"] {
        authz.authorize(&user(name), &attrs).await;
    }
    // alice stays cached (recently used); carol pushes bob out, so bob is reviewed again.
    assert_eq!(sar.specs().len(), 4);
    assert_eq!(
        metric_line(&registry, "authorization"),
        "msrs_auth_cache_evictions_total{cache=\"authorization\"} 2"
    );
}
