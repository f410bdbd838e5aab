//! Request routing with authorization attributes: whatever method, path, query and Accept header a
//! client sends, deriving the attributes and answering through the router never panics, and the
//! answer is an HTTP status the API can legitimately give.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use http::Request;
use libfuzzer_sys::fuzz_target;
use metrics_server_api::{
    ApiConfig, ApiMetrics, ApiState, HealthState, StaticCluster, request_attributes, router,
};
use metrics_server_core::SharedSnapshot;
use prometheus_client::registry::Registry;
use tower::ServiceExt;

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

fn state() -> ApiState {
    ApiState::new(
        ApiConfig::default(),
        Arc::new(StaticCluster::default()),
        Arc::new(SharedSnapshot::new()),
        Arc::new(HealthState::new(Duration::from_secs(15))),
        Arc::new(Registry::default()),
        ApiMetrics::unregistered(),
    )
}

/// Input layout: one byte picks the method, the rest is `path?query\naccept`.
fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[usize::from(m) % METHODS.len()];
    let text = String::from_utf8_lossy(rest);
    let (target, accept) = text.split_once('\n').unwrap_or((&text, "*/*"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let _ = request_attributes(method, path, query);

    let uri = format!("/{}", target.trim_start_matches('/'));
    let Ok(req) = Request::builder()
        .method(method)
        .uri(uri.as_str())
        .header("accept", accept.trim())
        .body(Body::empty())
    else {
        return; // hyper would have refused this request line already
    };
    let resp = runtime().block_on(router(state()).oneshot(req));
    let code = match resp {
        Ok(r) => r.status().as_u16(),
        Err(e) => match e {},
    };
    assert!(
        matches!(code, 200 | 201 | 204 | 304 | 400 | 403 | 404 | 405 | 406 | 410 | 415 | 429 | 500 | 503 | 504),
        "unexpected status {code} for {method} {uri}"
    );
});
