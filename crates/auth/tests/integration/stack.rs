//! The serving stack end to end over a real TLS listener: the generic apiserver's filter
//! order (timeout ⊃ authentication ⊃ max-in-flight ⊃ authorization ⊃ handler), the 504,
//! panic recovery, fail-closed reviews and a probe that is not starved.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::StatusCode;
use metrics_server_api::InFlightLimits;
use metrics_server_auth::CallPolicy;
use metrics_server_auth::stack::{Rejection, StackOptions};

use crate::support::{FakeSar, FakeTokens, Setup, TestServer, request};

const TIMEOUT_504: &str = "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"Timeout: request did not complete within the allotted timeout\",\"reason\":\"Timeout\",\"details\":{},\"code\":504}\n";
const PANIC_500: &str = "This request caused apiserver to panic. Look in the logs for details.\n";
const TOO_MANY: &str = "Too many requests, please try again later.\n";
const UNAUTHORIZED: &str = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}\n";

const CAROL: (&str, &str) = ("Authorization", "Bearer good-token");

fn setup(timeout: Duration, read_only_limit: usize) -> Setup {
    Setup {
        stack: StackOptions {
            request_timeout: timeout,
            limits: InFlightLimits::new(read_only_limit, 200),
            rejections: metrics_server_auth::stack::Rejections::default(),
        },
        ..Setup::default()
    }
}

async fn server(setup: Setup) -> TestServer {
    TestServer::start_with(
        FakeSar::allowing(&["carol"]),
        FakeTokens::with("good-token", "carol", &["devs"]),
        setup,
    )
    .await
}

/// Waits until `f` holds, polling (bounded, so a broken server fails instead of hanging).
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn a_slow_handler_gets_go_s_504_at_the_timeout_and_its_work_is_aborted() {
    let timeout = Duration::from_secs(1);
    let options = setup(timeout, 400);
    let rejections = options.stack.rejections.clone();
    let s = server(options).await;
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(20),
        s.get(s.client(None), "/sleep/30000", &[CAROL]),
    )
    .await
    .expect("an answer before the handler finishes");
    let took = started.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, TIMEOUT_504);
    assert!(took >= timeout, "answered before the timeout: {took:?}");
    assert!(took < timeout * 3, "not within 3x the timeout: {took:?}");
    // The handler's work is dropped, not left running for 30 s.
    eventually("the timed-out work is dropped", || {
        s.work.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(s.work.finished.load(Ordering::SeqCst), 0);
    // A fast request on the same server still succeeds; only the slow one was counted.
    let (status, _) = s.get(s.client(None), "/sleep/1", &[CAROL]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rejections.count(Rejection::Timeout), 1);
    assert_eq!(rejections.count(Rejection::MaxInFlight), 0);
    s.stop().await;
}

#[tokio::test]
async fn a_panicking_handler_gets_go_s_500_and_the_next_request_works() {
    // With the timeout (handler on its own task) and without it (handler inline).
    for timeout in [Duration::from_secs(60), Duration::ZERO] {
        let s = server(setup(timeout, 400)).await;
        let (status, body) = s.get(s.client(None), "/panic", &[CAROL]).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "timeout {timeout:?}"
        );
        assert_eq!(body, PANIC_500);
        let (status, body) = s.get(s.client(None), "/readyz", &[CAROL]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "carol|devs,system:authenticated|-");
        s.stop().await;
    }
}

#[tokio::test]
async fn the_in_flight_limit_sits_between_authentication_and_authorization() {
    let options = setup(Duration::from_secs(60), 1);
    let rejections = options.stack.rejections.clone();
    let s = server(options).await;
    let (addr, client) = (s.addr, s.client(None));
    // Carol's slow request holds the only read-only slot.
    let holder = tokio::spawn(async move { request(addr, client, "/sleep/5000", &[CAROL]).await });
    eventually("the slot is taken", || s.sar.specs().len() == 1).await;

    // Authentication runs first: a bad token is 401, not 429.
    let (status, body) = s
        .get(
            s.client(None),
            "/metrics",
            &[("Authorization", "Bearer nope")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, UNAUTHORIZED);

    // Authorization runs after the limit: an anonymous request that would be forbidden
    // gets 429, and no SubjectAccessReview is made for it.
    let (status, body) = s.get(s.client(None), "/metrics", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, TOO_MANY);
    assert_eq!(s.sar.specs().len(), 1);
    // Always-allowed probes are limited too, as upstream.
    let (status, _) = s.get(s.client(None), "/livez", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rejections.count(Rejection::MaxInFlight), 2);

    // system:masters always gets an answer.
    let admin = s
        .pki
        .client_ca
        .client_cert("admin", &["system:masters"])
        .expect("cert");
    let (status, body) = s.get(s.client(Some(&admin)), "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, _, _) = holder.await.expect("holder");
    assert_eq!(status, StatusCode::OK);
    // The slot is free again: the anonymous request now reaches authorization (403).
    let (status, _) = s.get(s.client(None), "/metrics", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    s.stop().await;
}

#[tokio::test]
async fn a_hung_token_review_fails_closed_with_401_within_the_deadline() {
    let deadline = Duration::from_secs(1);
    let mut tokens = FakeTokens::with("good-token", "carol", &[]);
    tokens.hang = true;
    let s = TestServer::start_with(
        FakeSar::allowing(&["carol"]),
        tokens,
        Setup {
            call_policy: CallPolicy {
                deadline,
                ..CallPolicy::default()
            },
            ..Setup::default()
        },
    )
    .await;
    let started = Instant::now();
    // Bounded, so a missing deadline fails the test instead of hanging it.
    let (status, body) =
        tokio::time::timeout(deadline * 10, s.get(s.client(None), "/metrics", &[CAROL]))
            .await
            .expect("an answer");
    let took = started.elapsed();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, UNAUTHORIZED);
    assert!(took >= deadline, "{took:?}");
    assert!(took < deadline * 3, "not within 3x the deadline: {took:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_hung_subject_access_review_fails_closed_with_500_within_the_deadline() {
    let deadline = Duration::from_secs(1);
    let sar = FakeSar {
        hang: true,
        ..FakeSar::allowing(&["carol"])
    };
    let s = TestServer::start_with(
        sar,
        FakeTokens::with("good-token", "carol", &[]),
        Setup {
            call_policy: CallPolicy {
                deadline,
                ..CallPolicy::default()
            },
            ..Setup::default()
        },
    )
    .await;
    let started = Instant::now();
    // Bounded, so a missing deadline fails the test instead of hanging it.
    let (status, body) =
        tokio::time::timeout(deadline * 10, s.get(s.client(None), "/metrics", &[CAROL]))
            .await
            .expect("an answer");
    let took = started.elapsed();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        "Internal Server Error: \"/metrics\": no answer from kube-apiserver within 1s\n"
    );
    assert!(took >= deadline, "{took:?}");
    assert!(took < deadline * 3, "not within 3x the deadline: {took:?}");
    s.stop().await;
}

#[tokio::test]
async fn twenty_slow_requests_do_not_starve_livez() {
    let s = server(setup(Duration::from_secs(60), 400)).await;
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let (addr, client) = (s.addr, s.client(None));
            tokio::spawn(async move { request(addr, client, "/sleep/5000", &[CAROL]).await })
        })
        .collect();
    eventually("all 20 are in the handler", || {
        s.work.started.load(Ordering::SeqCst) == 20
    })
    .await;
    for _ in 0..5 {
        let (status, _) = s.get(s.client(None), "/livez", &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Every probe was answered while the slow requests were still running.
    assert_eq!(s.work.finished.load(Ordering::SeqCst), 5);
    for r in slow {
        let (status, _, _) = r.await.expect("slow request");
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(s.work.finished.load(Ordering::SeqCst), 25);
    s.stop().await;
}
