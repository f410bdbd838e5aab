//! Hostile clients (issue 7): selector bombs through `request_attributes`
//! and the router, huge and malformed inputs, every method on every path
//! class. Each answer is the right Status, and the cost of a big input is
//! bounded as a ratio against a small one of the same shape.

mod support;

use http::StatusCode;
use metrics_server_api::{Attributes, openmetrics_to_text, request_attributes};
use support::*;

/// Input sizes for the parsers: 64 KB against 64 runs of 1 KB.
const SMALL: usize = 1024;
const LARGE: usize = 64 * 1024;
const RATIO: usize = LARGE / SMALL;
/// Generous: linear work measures about 1x, quadratic about 64x.
const SLACK: u128 = 8;
/// A URI must stay below 65,534 bytes (`http`'s limit, so hyper's too): the
/// router shapes use encoded queries of about 60 KB against 64 x 960 bytes.
const URI_LARGE: usize = 60 * 1024;
const URI_SMALL: usize = URI_LARGE / RATIO;

const NOT_FOUND_ROUTE: &str = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"the server could not find the requested resource\",\"reason\":\"NotFound\",\"details\":{},\"code\":404}\n";
const METHOD_NOT_ALLOWED: &str = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"the server does not allow this method on the requested resource\",\"reason\":\"MethodNotAllowed\",\"details\":{},\"code\":405}\n";

/// Joins `term(i)` with `sep` until the text is at least `bytes` long.
fn repeat_terms(bytes: usize, sep: &str, term: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(bytes + 64);
    let mut i = 0;
    while out.len() < bytes {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&term(i));
        i += 1;
    }
    out
}

/// Text of about `n` bytes.
type MakeText = fn(usize) -> String;
/// A path and a query of about `n` bytes together.
type MakeRequestParts = fn(usize) -> (String, String);

/// Selector shapes: (name, query key, selector of about `n` bytes).
type Shape = (&'static str, &'static str, MakeText);

const SHAPES: &[Shape] = &[
    ("fN=v field terms", "fieldSelector", |n| {
        repeat_terms(n, ",", |i| format!("f{i}=v"))
    }),
    ("escaped field values", "fieldSelector", |n| {
        repeat_terms(n, ",", |i| format!("metadata.name!=a\\,b\\=c\\\\{i}"))
    }),
    ("label terms", "labelSelector", |n| {
        repeat_terms(n, ",", |i| format!("k{i}!=v{i}"))
    }),
    ("deep in list", "labelSelector", |n| {
        format!("k in ({})", repeat_terms(n, ",", |i| format!("v{i}")))
    }),
    ("invalid in-list values", "labelSelector", |n| {
        format!("k notin ({})", repeat_terms(n, ",", |i| format!("-{i}")))
    }),
    ("long label key", "labelSelector", |n| "k".repeat(n)),
];

fn encoded_query(key: &str, selector: &str) -> String {
    format!("{key}={}", encode_query_value(selector))
}

#[test]
fn selector_bombs_cost_linear_time_in_request_attributes() {
    let path = "/apis/metrics.k8s.io/v1beta1/pods";
    for (what, key, make) in SHAPES {
        let (small, large) = (
            encoded_query(key, &make(SMALL)),
            encoded_query(key, &make(LARGE)),
        );
        let Attributes::Resource(r) = request_attributes("GET", path, &large) else {
            panic!("{what}: a pods list is a resource request");
        };
        assert_eq!(
            (r.verb.as_str(), r.resource.as_str()),
            ("list", "pods"),
            "{what}"
        );
        assert!(
            r.field_selector.is_some() || r.label_selector.is_some(),
            "{what}: the raw selector is kept for the SubjectAccessReview"
        );
        assert_cost_ratio(
            what,
            RATIO,
            SLACK,
            || {
                std::hint::black_box(request_attributes("GET", path, &small));
            },
            || {
                std::hint::black_box(request_attributes("GET", path, &large));
            },
        );
    }
}

#[test]
fn a_name_term_inside_a_field_selector_bomb_still_names_the_object() {
    let mut selector = repeat_terms(LARGE, ",", |i| format!("f{i}=v"));
    selector.push_str(",metadata.name=pod1");
    let query = encoded_query("fieldSelector", &selector);
    let Attributes::Resource(r) =
        request_attributes("GET", "/apis/metrics.k8s.io/v1beta1/pods", &query)
    else {
        panic!("resource request");
    };
    assert_eq!((r.verb.as_str(), r.name.as_str()), ("list", "pod1"));
    assert_eq!(r.field_selector.as_deref(), Some(selector.as_str()));
}

#[test]
fn huge_paths_and_query_junk_cost_linear_time_in_request_attributes() {
    let cases: [(&str, MakeRequestParts); 4] = [
        ("long namespace", |n| {
            (
                format!(
                    "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
                    "n".repeat(n)
                ),
                String::new(),
            )
        }),
        ("many path segments", |n| {
            (format!("/api{}", "/a".repeat(n / 2)), String::new())
        }),
        ("thousands of query parameters", |n| {
            (
                "/apis/metrics.k8s.io/v1beta1/nodes".to_owned(),
                repeat_terms(n, "&", |i| format!("p{i}=v")),
            )
        }),
        ("percent-encoding junk", |n| {
            (
                format!(
                    "/apis/metrics.k8s.io/v1beta1/nodes/{}",
                    "%zz%%4".repeat(n / 6)
                ),
                "%%%=%zz&".repeat(n / 8),
            )
        }),
    ];
    for (what, make) in cases {
        let ((sp, sq), (lp, lq)) = (make(SMALL), make(LARGE));
        assert_cost_ratio(
            what,
            RATIO,
            SLACK,
            || {
                std::hint::black_box(request_attributes("GET", &sp, &sq));
            },
            || {
                std::hint::black_box(request_attributes("GET", &lp, &lq));
            },
        );
    }
}

#[tokio::test]
async fn selector_bombs_through_the_router_answer_400_in_linear_time() {
    let h = harness();
    for (what, key, make) in SHAPES {
        // Shrink the selector until its encoded query fits the target size.
        let fit = |target: usize| {
            let mut n = target;
            loop {
                let q = encoded_query(key, &make(n));
                if q.len() <= target || n < 16 {
                    return q;
                }
                n = n * 9 / 10;
            }
        };
        let (small, large) = (fit(URI_SMALL), fit(URI_LARGE));
        let uri = |q: &str| format!("/apis/metrics.k8s.io/v1beta1/pods?{q}");
        let r = send(&h.app, request("GET", &uri(&large), &[])).await;
        let ok = matches!(
            *what,
            "escaped field values" | "label terms" | "deep in list"
        );
        let want = if ok {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        let head: String = r.body.chars().take(300).collect();
        assert_eq!(r.status, want, "{what}: {head}");
        if !ok {
            assert!(
                r.body.starts_with("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"")
                    && r.body.ends_with("\"reason\":\"BadRequest\",\"code\":400}\n"),
                "{what}"
            );
        }
        assert_request_cost_ratio(
            what,
            &h.app,
            RATIO,
            SLACK,
            || request("GET", &uri(&small), &[]),
            || request("GET", &uri(&large), &[]),
        )
        .await;
    }
}

#[tokio::test]
async fn the_field_selector_bomb_names_the_first_unknown_field() {
    let h = harness();
    let selector = repeat_terms(20 * 1024, ",", |i| format!("f{i}=v"));
    let uri = format!(
        "/apis/metrics.k8s.io/v1beta1/pods?{}",
        encoded_query("fieldSelector", &selector)
    );
    let r = send(&h.app, request("GET", &uri, &[])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"\\\"f0\\\" is not a known field selector: only \\\"metadata.name\\\", \\\"metadata.namespace\\\"\",\"reason\":\"BadRequest\",\"code\":400}\n"
    );
}

#[tokio::test]
async fn a_deep_in_list_selects_like_a_short_one() {
    let h = harness();
    let mut values = repeat_terms(URI_LARGE / 2, ",", |i| format!("v{i}"));
    values.push_str(",labelValue");
    let uri = format!(
        "/apis/metrics.k8s.io/v1beta1/nodes?{}",
        encoded_query("labelSelector", &format!("labelKey in ({values})"))
    );
    let r = send(&h.app, request("GET", &uri, &[])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(item_names(&r.body), ["node1"]);
}

#[tokio::test]
async fn every_method_on_every_path_class_gets_the_right_answer() {
    let h = harness();
    const METHODS: &[&str] = &[
        "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PURGE",
    ];
    // go-restful routes: GET only, 405 Status otherwise.
    for path in [
        "/apis",
        "/apis/metrics.k8s.io",
        "/apis/metrics.k8s.io/v1beta1",
        "/apis/metrics.k8s.io/v1beta1/nodes",
        "/apis/metrics.k8s.io/v1beta1/nodes/node1",
        "/apis/metrics.k8s.io/v1beta1/pods",
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods",
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods/pod1",
        "/version",
    ] {
        assert_eq!(
            call(&h.app, path).await.status,
            StatusCode::OK,
            "GET {path}"
        );
        for method in METHODS {
            let r = send(&h.app, request(method, path, &[])).await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if *method != "HEAD" {
                assert_eq!(r.body, METHOD_NOT_ALLOWED, "{method} {path}");
            }
            assert_eq!(
                r.header("content-type"),
                "application/json",
                "{method} {path}"
            );
        }
    }
    // Unknown resources under the group: 404 Status whatever the method.
    for path in [
        "/apis/metrics.k8s.io/v1beta1/services",
        "/apis/metrics.k8s.io/v1beta1/nodes/a/b",
        "/apis/metrics.k8s.io/v2/nodes",
    ] {
        for method in METHODS.iter().chain(&["GET"]) {
            let r = send(&h.app, request(method, path, &[])).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
            if *method != "HEAD" {
                assert_eq!(r.body, NOT_FOUND_ROUTE, "{method} {path}");
            }
        }
    }
    // The plain mux serves any method.
    for path in [
        "/",
        "/metrics",
        "/openapi/v2",
        "/openapi/v3",
        "/healthz",
        "/livez",
        "/readyz",
        "/readyz/ping",
    ] {
        for method in METHODS.iter().chain(&["GET"]) {
            let r = send(&h.app, request(method, path, &[])).await;
            assert_eq!(r.status, StatusCode::OK, "{method} {path}");
        }
    }
    // Anything else: the mux's plain 404.
    for path in [
        "/foo",
        "/apis/other.k8s.io/v1",
        "/healthz/",
        "/readyz/nope",
        "/api/v1/nodes",
    ] {
        for method in METHODS.iter().chain(&["GET"]) {
            let r = send(&h.app, request(method, path, &[])).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
            if *method != "HEAD" {
                assert_eq!(r.body, "404 page not found\n", "{method} {path}");
            }
            assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
        }
    }
}

#[tokio::test]
async fn watch_on_every_list_is_405_even_with_selectors() {
    let h = harness();
    for (path, kind) in [
        ("/apis/metrics.k8s.io/v1beta1/nodes", "nodes"),
        ("/apis/metrics.k8s.io/v1beta1/pods", "pods"),
        ("/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods", "pods"),
    ] {
        for query in [
            "watch=true",
            "watch=1",
            "watch=",
            "watch=yes",
            "watch=true&fieldSelector=metadata.name%3Dnode1",
            "watch=true&labelSelector=a%20in%20(b,c)&resourceVersion=0&timeoutSeconds=5",
        ] {
            let r = call(&h.app, &format!("{path}?{query}")).await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{path}?{query}");
            assert_eq!(
                r.body,
                format!(
                    "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":\"watch is not supported on resources of kind \\\"{kind}.metrics.k8s.io\\\"\",\"reason\":\"MethodNotAllowed\",\"details\":{{\"group\":\"metrics.k8s.io\",\"kind\":\"{kind}\"}},\"code\":405}}\n"
                ),
                "{path}?{query}"
            );
        }
        for query in ["watch=false", "watch=0", "watch=FALSE"] {
            let r = call(&h.app, &format!("{path}?{query}")).await;
            assert_eq!(r.status, StatusCode::OK, "{path}?{query}");
        }
    }
}

#[tokio::test]
async fn malformed_accept_headers_get_json_or_406() {
    let h = harness();
    let node = "/apis/metrics.k8s.io/v1beta1/nodes/node1";
    // go-restful's route check first (a clause of `*/*` or
    // `application/json` before any `;`), then goautoneg's negotiation.
    for accept in [
        "",
        "*/*;q=abc",
        "*/*;;;",
        "application/json;q=0",
        " */* ",
        "text/html,*/*",
    ] {
        let r = send(&h.app, request("GET", node, &[("accept", accept)])).await;
        assert_eq!(r.status, StatusCode::OK, "{accept:?}");
        assert_eq!(r.header("content-type"), "application/json", "{accept:?}");
    }
    for accept in [
        ",,,",
        "application",
        "application/*",
        "text/html",
        "application/json/x",
        ";;;",
        "application/json;as=Table",
    ] {
        let r = send(&h.app, request("GET", node, &[("accept", accept)])).await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{accept:?}");
        assert!(
            r.body.contains("\"reason\": \"NotAcceptable\"")
                || r.body.contains("\"reason\":\"NotAcceptable\""),
            "{accept:?}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn huge_accept_headers_cost_linear_time_and_only_the_first_ranges_count() {
    let h = harness();
    let node = "/apis/metrics.k8s.io/v1beta1/nodes/node1";
    let shapes: [(&str, MakeText); 3] = [
        ("many ranges", |n| {
            repeat_terms(n, ",", |_| "text/html;q=0.9".to_owned()) + ",*/*"
        }),
        ("many parameters", |n| {
            format!("application/json{}", ";p=v".repeat(n / 4))
        }),
        ("one long type", |n| format!("{}/json,*/*", "a".repeat(n))),
    ];
    for (what, make) in shapes {
        let (small, large) = (make(SMALL), make(LARGE));
        assert_request_cost_ratio(
            what,
            &h.app,
            RATIO,
            SLACK,
            || request("GET", node, &[("accept", &small)]),
            || request("GET", node, &[("accept", &large)]),
        )
        .await;
    }
    // A megabyte of ranges: only the first 64 are negotiated, so a `*/*` at
    // the end is not seen, while go-restful's route check still finds it.
    let megabyte = repeat_terms(1 << 20, ",", |_| "text/html".to_owned()) + ",*/*";
    let r = send(&h.app, request("GET", node, &[("accept", &megabyte)])).await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    assert!(
        r.body
            .contains("only the following media types are accepted: application/json"),
        "{}",
        r.body
    );
    let first = format!("*/*,{megabyte}");
    let r = send(&h.app, request("GET", node, &[("accept", &first)])).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[test]
fn metrics_rendering_is_linear_in_the_number_of_children() {
    let family = |children: usize| {
        let mut om = String::from("# HELP x_seconds Latency.\n# TYPE x_seconds histogram\n");
        // Children arrive in reverse order and interleaved, the worst case
        // for a first-seen search.
        for i in (0..children).rev() {
            om.push_str(&format!("x_seconds_sum{{node=\"n{i}\"}} 1.5\n"));
            om.push_str(&format!(
                "x_seconds_bucket{{le=\"+Inf\",node=\"n{i}\"}} 1\n"
            ));
            om.push_str(&format!("x_seconds_count{{node=\"n{i}\"}} 1\n"));
        }
        om.push_str("# EOF\n");
        om
    };
    let (small, large) = (family(80), family(80 * RATIO));
    let text = openmetrics_to_text(&large);
    assert_eq!(text.lines().count(), 2 + 3 * 80 * RATIO);
    assert!(text.contains("x_seconds_bucket{node=\"n0\",le=\"+Inf\"} 1\nx_seconds_sum{node=\"n0\"} 1.5\nx_seconds_count{node=\"n0\"} 1\nx_seconds_bucket{node=\"n1\",le=\"+Inf\"} 1\n"));
    assert_cost_ratio(
        "openmetrics_to_text",
        RATIO,
        SLACK,
        || {
            std::hint::black_box(openmetrics_to_text(&small));
        },
        || {
            std::hint::black_box(openmetrics_to_text(&large));
        },
    );
}

#[tokio::test]
async fn huge_paths_many_parameters_and_percent_junk_through_the_router() {
    let h = harness();
    // (what, URI of about `n` bytes, expected status, expected body or "")
    type Case = (&'static str, fn(usize) -> String, StatusCode, &'static str);
    let cases: [Case; 5] = [
        (
            "long pod name",
            |n| {
                format!(
                    "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods/{}",
                    "p".repeat(n)
                )
            },
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            "many segments under the group",
            |n| format!("/apis/metrics.k8s.io/v1beta1{}", "/a".repeat(n / 2)),
            StatusCode::NOT_FOUND,
            NOT_FOUND_ROUTE,
        ),
        (
            "many segments elsewhere",
            |n| "/x".repeat(n / 2),
            StatusCode::NOT_FOUND,
            "404 page not found\n",
        ),
        (
            "thousands of query parameters",
            |n| {
                format!(
                    "/apis/metrics.k8s.io/v1beta1/nodes?{}",
                    repeat_terms(n, "&", |i| format!("p{i}=v&exclude=x"))
                )
            },
            StatusCode::OK,
            "",
        ),
        (
            "percent-encoding junk in the query",
            |n| {
                format!(
                    "/apis/metrics.k8s.io/v1beta1/nodes?{}",
                    "%zz=%%&a=%G0&".repeat(n / 14)
                )
            },
            StatusCode::OK,
            "",
        ),
    ];
    for (what, make, status, body) in cases {
        let (small, large) = (make(URI_SMALL), make(URI_LARGE));
        let r = send(&h.app, request("GET", &large, &[])).await;
        assert_eq!(r.status, status, "{what}");
        if !body.is_empty() {
            assert_eq!(r.body, body, "{what}");
        }
        assert_request_cost_ratio(
            what,
            &h.app,
            RATIO,
            SLACK,
            || request("GET", &small, &[]),
            || request("GET", &large, &[]),
        )
        .await;
    }
    // A path that does not percent-decode is a plain 400, as Go's server
    // answers for a request line it cannot parse.
    let r = send(
        &h.app,
        request("GET", "/apis/metrics.k8s.io/v1beta1/nodes/%zz", &[]),
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::BAD_REQUEST, "400 Bad Request\n")
    );
    // Percent-encoded selectors decode like Go's url.ParseQuery.
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=labelKey+in+%28labelValue%29",
    )
    .await;
    assert_eq!(item_names(&r.body), ["node1"]);
}
