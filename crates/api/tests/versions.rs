//! `metrics.k8s.io/v1` beside `v1beta1`: discovery lists both with v1
//! preferred, every request answers the same in both apart from the
//! `apiVersion` of metrics objects, and a version that is not served is gone.

mod support;

use http::StatusCode;
use metrics_server_api::{ApiConfig, MetricsVersion, ServedVersions};
use support::*;

const AGGREGATED_ACCEPT: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn versions(list: &[MetricsVersion]) -> ApiConfig {
    ApiConfig {
        served_versions: ServedVersions::new(list).unwrap_or_default(),
        ..node_selector_config()
    }
}

#[test]
fn no_served_version_is_refused() {
    assert!(ServedVersions::new(&[]).is_err());
    let v1_only = ServedVersions::new(&[MetricsVersion::V1, MetricsVersion::V1]);
    assert_eq!(
        v1_only.map(|s| s.iter().collect::<Vec<_>>()),
        Ok(vec![MetricsVersion::V1])
    );
    // Preference does not depend on the order given.
    let both = ServedVersions::new(&[MetricsVersion::V1beta1, MetricsVersion::V1]);
    assert_eq!(both.map(ServedVersions::preferred), Ok(MetricsVersion::V1));
}

#[tokio::test]
async fn group_lists_both_versions_with_v1_preferred() {
    let h = harness();
    let r = call(&h.app, "/apis/metrics.k8s.io").await;
    assert_eq!(
        r.body,
        "{\"kind\":\"APIGroup\",\"apiVersion\":\"v1\",\"name\":\"metrics.k8s.io\",\"versions\":[{\"groupVersion\":\"metrics.k8s.io/v1\",\"version\":\"v1\"},{\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"version\":\"v1beta1\"}],\"preferredVersion\":{\"groupVersion\":\"metrics.k8s.io/v1\",\"version\":\"v1\"}}\n"
    );
    let r = call(&h.app, "/apis").await;
    assert_eq!(
        r.body,
        "{\"kind\":\"APIGroupList\",\"groups\":[{\"name\":\"metrics.k8s.io\",\"versions\":[{\"groupVersion\":\"metrics.k8s.io/v1\",\"version\":\"v1\"},{\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"version\":\"v1beta1\"}],\"preferredVersion\":{\"groupVersion\":\"metrics.k8s.io/v1\",\"version\":\"v1\"}}]}\n"
    );
    let r = call(&h.app, "/apis/metrics.k8s.io/v1").await;
    assert_eq!(
        r.body,
        "{\"kind\":\"APIResourceList\",\"apiVersion\":\"v1\",\"groupVersion\":\"metrics.k8s.io/v1\",\"resources\":[{\"name\":\"nodes\",\"singularName\":\"\",\"namespaced\":false,\"kind\":\"NodeMetrics\",\"verbs\":[\"get\",\"list\"]},{\"name\":\"pods\",\"singularName\":\"\",\"namespaced\":true,\"kind\":\"PodMetrics\",\"verbs\":[\"get\",\"list\"]}]}\n"
    );
}

#[tokio::test]
async fn v1_only_lists_just_v1() {
    let (c, m) = fixture();
    let h = harness_with(c, m, versions(&[MetricsVersion::V1]));
    let r = call(&h.app, "/apis/metrics.k8s.io").await;
    assert!(!r.body.contains("v1beta1"), "{}", r.body);
    assert!(
        r.body
            .contains("\"preferredVersion\":{\"groupVersion\":\"metrics.k8s.io/v1\"")
    );
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&h.app, "/openapi/v3").await;
    assert!(!r.body.contains("v1beta1"), "{}", r.body);
    let r = call(&h.app, "/").await;
    assert!(r.body.contains("\"/apis/metrics.k8s.io/v1\""));
    assert!(!r.body.contains("v1beta1"));
}

#[tokio::test]
async fn aggregated_discovery_lists_v1_first_and_changes_its_etag() {
    let h = harness();
    let r = send(&h.app, get_with("/apis", &[("accept", AGGREGATED_ACCEPT)])).await;
    assert_eq!(r.status, StatusCode::OK);
    let resources = "\"resources\":[{\"resource\":\"nodes\",\"responseKind\":{\"group\":\"\",\"version\":\"\",\"kind\":\"NodeMetrics\"},\"scope\":\"Cluster\",\"singularResource\":\"\",\"verbs\":[\"get\",\"list\"]},{\"resource\":\"pods\",\"responseKind\":{\"group\":\"\",\"version\":\"\",\"kind\":\"PodMetrics\"},\"scope\":\"Namespaced\",\"singularResource\":\"\",\"verbs\":[\"get\",\"list\"]}],\"freshness\":\"Current\"";
    assert_eq!(
        r.body,
        format!(
            "{{\"kind\":\"APIGroupDiscoveryList\",\"apiVersion\":\"apidiscovery.k8s.io/v2\",\"metadata\":{{}},\"items\":[{{\"metadata\":{{\"name\":\"metrics.k8s.io\"}},\"versions\":[{{\"version\":\"v1\",{resources}}},{{\"version\":\"v1beta1\",{resources}}}]}}]}}\n"
        )
    );
    let beta = harness_v1beta1();
    let r_beta = send(
        &beta.app,
        get_with("/apis", &[("accept", AGGREGATED_ACCEPT)]),
    )
    .await;
    let etag = r.header("etag");
    assert_eq!(etag.len(), 130);
    assert_ne!(etag, r_beta.header("etag"));
    let r = send(
        &h.app,
        get_with(
            "/apis",
            &[("accept", AGGREGATED_ACCEPT), ("if-none-match", etag)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn index_and_openapi_name_both_versions() {
    let h = harness();
    let paths = json(&call(&h.app, "/").await.body)["paths"].clone();
    let paths: Vec<&str> = paths
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
        .unwrap_or_default();
    let at = |p: &str| paths.iter().position(|x| *x == p);
    assert!(at("/apis/metrics.k8s.io").is_some());
    assert!(at("/apis/metrics.k8s.io/v1") < at("/apis/metrics.k8s.io/v1beta1"));
    assert!(at("/apis/metrics.k8s.io/v1").is_some());
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    assert_eq!(paths, sorted);

    let v2 = json(&call(&h.app, "/openapi/v2").await.body);
    for v in ["v1", "v1beta1"] {
        assert!(v2["paths"][format!("/apis/metrics.k8s.io/{v}/nodes/{{name}}")].is_object());
        let kind = &v2["definitions"][format!("io.k8s.metrics.pkg.apis.metrics.{v}.NodeMetrics")]["x-kubernetes-group-version-kind"]
            [0];
        assert_eq!(kind["version"], v);
        assert_eq!(kind["kind"], "NodeMetrics");
    }
    let index = json(&call(&h.app, "/openapi/v3").await.body);
    for v in ["v1", "v1beta1"] {
        let url = index["paths"][format!("apis/metrics.k8s.io/{v}")]["serverRelativeURL"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            url.starts_with(&format!("/openapi/v3/apis/metrics.k8s.io/{v}?hash=")),
            "{url}"
        );
        let r = call(&h.app, &url).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("cache-control"), "public, immutable");
        let doc = json(&r.body);
        assert_eq!(
            doc["components"]["schemas"][format!("io.k8s.metrics.pkg.apis.metrics.{v}.PodMetrics")]
                ["x-kubernetes-group-version-kind"][0]["version"],
            v
        );
        assert!(doc["paths"][format!("/apis/metrics.k8s.io/{v}/pods")].is_object());
    }
}

/// Requests whose answers must be the same in both versions.
const CASES: &[(&str, &str)] = &[
    ("nodes", ""),
    ("nodes?labelSelector=labelKey%3DlabelValue", ""),
    ("nodes?fieldSelector=metadata.name%3Dnode2", ""),
    ("nodes?labelSelector=a%3E1.5", ""),
    ("nodes?limit=abc", ""),
    ("nodes?watch=true", ""),
    ("nodes/node1", ""),
    ("nodes/node4", ""),
    ("nodes/nope", ""),
    ("nodes/node2?pretty=true", ""),
    ("pods", ""),
    ("pods?fieldSelector=spec.nodeName%3Dnode1", ""),
    ("namespaces/ns1/pods", ""),
    ("namespaces/ns1/pods?labelSelector=app%3Da,tier", ""),
    ("namespaces/ns1/pods/pod2", ""),
    ("namespaces/ns1/pods/pod3", ""),
    ("namespaces/ns1/pods/ghost", ""),
    ("namespaces/empty/pods", ""),
    ("services", ""),
    (
        "nodes",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    ),
    (
        "nodes?includeObject=Object",
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    ),
    (
        "nodes?includeObject=All",
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    ),
    (
        "namespaces/ns1/pods/pod1?includeObject=Object",
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
    ),
    (
        "nodes",
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
    ),
    (
        "nodes/node1",
        "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
    ),
    (
        "nodes",
        "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
    ),
    ("nodes/node1", "text/plain"),
    ("nodes/node1", "application/vnd.kubernetes.protobuf, */*"),
    (
        "namespaces/ns1/pods/pod2",
        "application/vnd.kubernetes.protobuf",
    ),
    (
        "namespaces/ns1/pods/ghost",
        "application/vnd.kubernetes.protobuf",
    ),
    ("services", "application/vnd.kubernetes.protobuf"),
    (
        "nodes/node1",
        "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
    ),
    ("pods", "application/json;pretty=1"),
];

/// A v1beta1 answer as v1 would write it: JSON names the version in quotes,
/// protobuf in the envelope's TypeMeta, whose length prefix shrinks by five.
fn as_v1(body: &str) -> String {
    let json = body.replace("\"metrics.k8s.io/v1beta1\"", "\"metrics.k8s.io/v1\"");
    let beta = "\n\u{16}metrics.k8s.io/v1beta1";
    match json.strip_prefix("k8s\0\n") {
        Some(rest) if rest.get(1..).is_some_and(|r| r.starts_with(beta)) => {
            let len = rest.chars().next().map_or(0, |c| c as u32 - 5);
            let tail = rest.get(1 + beta.len()..).unwrap_or("");
            let len = char::from_u32(len).unwrap_or('\0');
            format!("k8s\0\n{len}\n\u{11}metrics.k8s.io/v1{tail}")
        }
        _ => json,
    }
}

#[tokio::test]
async fn every_answer_of_v1_is_the_v1beta1_answer_with_its_api_version() {
    let h = harness();
    for (rest, accept) in CASES {
        let mut headers = Vec::new();
        if !accept.is_empty() {
            headers.push(("accept", *accept));
        }
        let beta = send(
            &h.app,
            get_with(&format!("/apis/metrics.k8s.io/v1beta1/{rest}"), &headers),
        )
        .await;
        let ga = send(
            &h.app,
            get_with(&format!("/apis/metrics.k8s.io/v1/{rest}"), &headers),
        )
        .await;
        assert_eq!(ga.status, beta.status, "{rest} {accept}");
        let mut headers = (ga.headers.clone(), beta.headers.clone());
        headers.0.remove("content-length");
        headers.1.remove("content-length");
        assert_eq!(headers.0, headers.1, "{rest} {accept}");
        assert_eq!(ga.body, as_v1(&beta.body), "{rest} {accept}");
        if beta.status == StatusCode::OK && accept.is_empty() && !rest.starts_with("services") {
            assert!(
                ga.body.contains("\"metrics.k8s.io/v1\""),
                "{rest}: {}",
                ga.body
            );
        }
    }
}

#[tokio::test]
async fn scrape_health_is_under_every_served_version() {
    let h = harness();
    let beta = call(&h.app, "/apis/metrics.k8s.io/v1beta1/scrapehealth").await;
    let ga = call(&h.app, "/apis/metrics.k8s.io/v1/scrapehealth").await;
    assert_eq!(beta.status, StatusCode::OK);
    assert_eq!(ga.status, StatusCode::OK);
    assert_eq!(ga.body, beta.body);
}
