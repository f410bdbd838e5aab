//! Behaviour of the router against the spec (E, J.2 A1-A9 and P1-P7), with
//! fake caches, metrics and clock.

mod support;

use std::time::Duration;

use http::StatusCode;
use metrics_server_api::{ApiConfig, MetricsVersion, ServedVersions, StaticCluster, render_text};
use support::*;

const NOT_FOUND_ROUTE: &str = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"the server could not find the requested resource\",\"reason\":\"NotFound\",\"details\":{},\"code\":404}\n";

// === A8: discovery ===

#[tokio::test]
async fn api_resource_list_is_byte_identical_to_the_spec() {
    let h = harness();
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(
        r.body,
        "{\"kind\":\"APIResourceList\",\"apiVersion\":\"v1\",\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"resources\":[{\"name\":\"nodes\",\"singularName\":\"\",\"namespaced\":false,\"kind\":\"NodeMetrics\",\"verbs\":[\"get\",\"list\"]},{\"name\":\"pods\",\"singularName\":\"\",\"namespaced\":true,\"kind\":\"PodMetrics\",\"verbs\":[\"get\",\"list\"]}]}\n"
    );
}

#[tokio::test]
async fn api_group_is_byte_identical_to_the_spec() {
    let h = harness_v1beta1();
    let r = call(&h.app, "/apis/metrics.k8s.io").await;
    assert_eq!(
        r.body,
        "{\"kind\":\"APIGroup\",\"apiVersion\":\"v1\",\"name\":\"metrics.k8s.io\",\"versions\":[{\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"version\":\"v1beta1\"}],\"preferredVersion\":{\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"version\":\"v1beta1\"}}\n"
    );
}

#[tokio::test]
async fn api_group_list_embeds_the_group_without_type_meta() {
    let h = harness_v1beta1();
    let r = call(&h.app, "/apis").await;
    assert_eq!(
        r.body,
        "{\"kind\":\"APIGroupList\",\"groups\":[{\"name\":\"metrics.k8s.io\",\"versions\":[{\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"version\":\"v1beta1\"}],\"preferredVersion\":{\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"version\":\"v1beta1\"}}]}\n"
    );
}

#[tokio::test]
async fn api_group_list_can_carry_the_server_address() {
    let (c, m) = fixture();
    let h = harness_with(
        c,
        m,
        ApiConfig {
            server_address: Some("10.0.0.7:10250".to_owned()),
            ..ApiConfig::default()
        },
    );
    let r = call(&h.app, "/apis").await;
    assert!(r.body.contains(",\"serverAddressByClientCIDRs\":[{\"clientCIDR\":\"0.0.0.0/0\",\"serverAddress\":\"10.0.0.7:10250\"}]}]}"), "{}", r.body);
}

const AGGREGATED_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

#[tokio::test]
async fn aggregated_discovery_is_served_with_its_media_type_and_etag() {
    let h = harness_v1beta1();
    let r = send(&h.app, get_with("/apis", &[("accept", AGGREGATED_ACCEPT)])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert_eq!(
        r.body,
        "{\"kind\":\"APIGroupDiscoveryList\",\"apiVersion\":\"apidiscovery.k8s.io/v2\",\"metadata\":{},\"items\":[{\"metadata\":{\"name\":\"metrics.k8s.io\"},\"versions\":[{\"version\":\"v1beta1\",\"resources\":[{\"resource\":\"nodes\",\"responseKind\":{\"group\":\"\",\"version\":\"\",\"kind\":\"NodeMetrics\"},\"scope\":\"Cluster\",\"singularResource\":\"\",\"verbs\":[\"get\",\"list\"]},{\"resource\":\"pods\",\"responseKind\":{\"group\":\"\",\"version\":\"\",\"kind\":\"PodMetrics\"},\"scope\":\"Namespaced\",\"singularResource\":\"\",\"verbs\":[\"get\",\"list\"]}],\"freshness\":\"Current\"}]}]}\n"
    );
    let etag = r.header("etag").to_owned();
    // Upper-case hex SHA-512 of Go's json.Marshal of the untyped list
    // (value computed with k8s.io/api v0.36 apidiscovery/v2 and crypto/sha512).
    assert_eq!(
        etag,
        "\"358A59ADB76207FD91A611EE4E44AA35402A763B15DAFCCDA881CF87B1316E7F7BCF0A0AAF9F7D57EE70498199884A495CE5759E3A791DC934EA8FB4ABBD68F3\""
    );
    assert_eq!(r.header("vary"), "Accept");
    assert_eq!(r.header("cache-control"), "public");

    let r = send(
        &h.app,
        get_with(
            "/apis",
            &[("accept", AGGREGATED_ACCEPT), ("if-none-match", &etag)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.body, "");
    assert_eq!(r.header("etag"), etag);
}

#[tokio::test]
async fn v2beta1_only_discovery_falls_back_to_legacy_negotiation() {
    let h = harness();
    let r = send(
        &h.app,
        get_with(
            "/apis",
            &[("accept", "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.body.starts_with("{\"kind\":\"APIGroupList\""));
}

/// Status, headers and bodies the generic apiserver's discovery handlers
/// write with metrics-server's codec factory (hack/golden/protobuf):
/// `<case> <hex body>`, `<case>.<header> <value>`.
const GOLDEN: &str = include_str!("../src/protobuf_golden.txt");

fn golden_text(case: &str) -> &'static str {
    GOLDEN
        .lines()
        .find_map(|l| l.strip_prefix(case)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no golden line {case}"))
}

fn golden_bytes(case: &str) -> Vec<u8> {
    let hex = golden_text(case);
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or_default())
        .collect()
}

/// Fails unless `reply` is the golden case: status, Content-Type, ETag when
/// the case has one, and the body byte for byte.
fn assert_golden(reply: &Reply, case: &str) {
    assert_eq!(
        reply.status.as_str(),
        golden_text(&format!("{case}.status")),
        "{case}"
    );
    assert_eq!(
        reply.header("content-type"),
        golden_text(&format!("{case}.content-type")),
        "{case}"
    );
    let etag_line = format!("{case}.etag ");
    if let Some(etag) = GOLDEN.lines().find_map(|l| l.strip_prefix(&etag_line)) {
        assert_eq!(reply.header("etag"), etag, "{case}");
    }
    assert_eq!(reply.bytes, golden_bytes(case), "{case}: {:?}", reply.body);
}

/// The golden program's server address.
fn golden_harness(versions: &[MetricsVersion]) -> Harness {
    let (c, m) = fixture();
    harness_with(
        c,
        m,
        ApiConfig {
            server_address: Some("127.0.0.1:4443".to_owned()),
            served_versions: ServedVersions::new(versions).unwrap_or_default(),
            ..ApiConfig::default()
        },
    )
}

#[tokio::test]
async fn discovery_is_served_in_protobuf_and_yaml_as_the_go_handlers_write_it() {
    let h = golden_harness(&MetricsVersion::ALL);
    for (path, case) in [
        ("/apis", "discovery_apis"),
        ("/apis/metrics.k8s.io", "discovery_group"),
        ("/apis/metrics.k8s.io/v1", "discovery_resources_v1"),
        (
            "/apis/metrics.k8s.io/v1beta1",
            "discovery_resources_v1beta1",
        ),
    ] {
        // What client-go and kube-controller-manager send, and protobuf alone.
        for accept in [
            "application/vnd.kubernetes.protobuf, */*",
            "application/vnd.kubernetes.protobuf",
        ] {
            let r = send(&h.app, get_with(path, &[("accept", accept)])).await;
            assert_golden(&r, case);
        }
        let r = send(&h.app, get_with(path, &[("accept", "application/yaml")])).await;
        assert_golden(&r, &format!("{case}_yaml"));
    }
}

#[tokio::test]
async fn aggregated_discovery_is_served_in_protobuf_and_yaml_as_the_go_handlers_write_it() {
    let h = golden_harness(&MetricsVersion::ALL);
    for (accept, case) in [
        (
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/vnd.kubernetes.protobuf",
            "discovery_aggregated",
        ),
        (
            "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            "discovery_aggregated_yaml",
        ),
    ] {
        let r = send(&h.app, get_with("/apis", &[("accept", accept)])).await;
        assert_golden(&r, case);
        assert_eq!(r.header("vary"), "Accept");
        // The ETag is the same whatever the format, and so is the 304.
        let etag = r.header("etag").to_owned();
        let r = send(
            &h.app,
            get_with("/apis", &[("accept", accept), ("if-none-match", &etag)]),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
        assert!(r.bytes.is_empty());
    }
}

#[tokio::test]
async fn discovery_of_a_v1beta1_server_matches_the_go_handlers() {
    let h = golden_harness(&[MetricsVersion::V1beta1]);
    let pb = "application/vnd.kubernetes.protobuf, */*";
    for (path, accept, case) in [
        ("/apis", pb, "discovery_beta_apis"),
        ("/apis", "application/yaml", "discovery_beta_apis_yaml"),
        ("/apis/metrics.k8s.io", pb, "discovery_beta_group"),
        (
            "/apis/metrics.k8s.io",
            "application/yaml",
            "discovery_beta_group_yaml",
        ),
        (
            "/apis",
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            "discovery_beta_aggregated",
        ),
        (
            "/apis",
            "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            "discovery_beta_aggregated_yaml",
        ),
    ] {
        let r = send(&h.app, get_with(path, &[("accept", accept)])).await;
        assert_golden(&r, case);
    }
}

#[tokio::test]
async fn discovery_refuses_what_no_serializer_writes_like_the_generic_apiserver() {
    let h = harness();
    for path in ["/apis", "/apis/metrics.k8s.io", "/apis/metrics.k8s.io/v1"] {
        // go-restful's route check: the route produces every serializer's type.
        let r = send(&h.app, get_with(path, &[("accept", "text/plain")])).await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{path}");
        assert_eq!(
            json(&r.body)["message"],
            "406: Not Acceptable\n\nAvailable representations: application/json, application/yaml, application/vnd.kubernetes.protobuf",
            "{path}"
        );
        // Past the route, the handler's negotiation: a stream it cannot write.
        let r = send(
            &h.app,
            get_with(path, &[("accept", "application/json;stream=other")]),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{path}");
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(
            json(&r.body)["message"],
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
            "{path}"
        );
    }
}

// === A1: node list ===

#[tokio::test]
async fn node_list_returns_servable_nodes_sorted_with_labels() {
    let h = harness();
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(item_names(&r.body), ["node1", "node2", "node3"]);
    let v = json(&r.body);
    assert_eq!(v["kind"], "NodeMetricsList");
    assert_eq!(v["metadata"], serde_json::json!({}));
    assert_eq!(
        v["items"][0]["metadata"]["labels"]["labelKey"],
        "labelValue"
    );
    assert!(
        v["items"][1]["metadata"].get("labels").is_none(),
        "empty labels are omitted"
    );
    assert!(v["items"][0].get("kind").is_none());
    assert!(r.body.ends_with("}\n"));
}

#[tokio::test]
async fn node_list_filters_by_field_and_label_selectors() {
    let h = harness();
    let names = |uri: &'static str| {
        let app = h.app.clone();
        async move { item_names(&call(&app, uri).await.body) }
    };
    assert!(
        names("/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=metadata.name%3Dnode4")
            .await
            .is_empty()
    );
    assert_eq!(
        names("/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=metadata.name%3Dnode2").await,
        ["node2"]
    );
    assert_eq!(
        names("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=labelKey%3DlabelValue").await,
        ["node1"]
    );
    assert_eq!(
        names("/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=metadata.name%3Dnode3&labelSelector=labelKey%3DotherValue").await,
        ["node3"]
    );
    // metadata.namespace is accepted for nodes but never matches a value.
    assert!(
        names("/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=metadata.namespace%3Dx")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn empty_node_list_has_empty_items_array() {
    let h = harness();
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=nothing%3Dhere",
    )
    .await;
    assert_eq!(
        r.body,
        "{\"kind\":\"NodeMetricsList\",\"apiVersion\":\"metrics.k8s.io/v1beta1\",\"metadata\":{},\"items\":[]}\n"
    );
}

#[tokio::test]
async fn node_selector_excludes_nodes_from_lists_only() {
    let h = harness();
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert!(!item_names(&r.body).contains(&"node5".to_owned()));
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes/node5").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn node_lister_errors_are_500_without_reason() {
    let (mut c, m) = fixture();
    c.error = Some("cache exploded".to_owned());
    let h = harness_with(c, m, ApiConfig::default());
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"failed listing nodes: cache exploded\",\"code\":500}\n"
    );
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/pods").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.body
            .contains("\"message\":\"failed listing pods: cache exploded\"")
    );
}

// === A2: node get ===

#[tokio::test]
async fn node_get_matches_the_golden_object() {
    let h = harness();
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes/node5").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(
        r.body,
        "{\"kind\":\"NodeMetrics\",\"apiVersion\":\"metrics.k8s.io/v1beta1\",\"metadata\":{\"name\":\"node5\",\"creationTimestamp\":\"2026-08-04T10:00:05Z\",\"labels\":{\"skipKey\":\"skipValue\"}},\"timestamp\":\"2026-08-04T09:59:58Z\",\"window\":\"15.012s\",\"usage\":{\"cpu\":\"152345678n\",\"memory\":\"1578392Ki\"}}\n"
    );
}

#[tokio::test]
async fn node_get_404s_distinguish_cache_misses_from_missing_metrics() {
    let h = harness();
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes/node4").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"nodemetrics.metrics.k8s.io \\\"node4\\\" not found: the node has not been scraped yet; the first scrape is due within 15s\",\"reason\":\"NotFound\",\"details\":{\"name\":\"node4\",\"group\":\"metrics.k8s.io\",\"kind\":\"nodemetrics\"},\"code\":404}\n"
    );
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"node \\\"nope\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"nope\",\"kind\":\"node\"},\"code\":404}\n"
    );
}

// === A3: pods ===

#[tokio::test]
async fn pod_list_is_sorted_by_namespace_then_name() {
    let h = harness();
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/pods").await;
    assert_eq!(item_names(&r.body), ["ns1/pod1", "ns1/pod2", "ns2/pod1"]);
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods").await;
    assert_eq!(item_names(&r.body), ["ns1/pod1", "ns1/pod2"]);
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.namespace%3Dns2",
    )
    .await;
    assert_eq!(item_names(&r.body), ["ns2/pod1"]);
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.namespace!%3Dns2,metadata.name%3Dpod1").await;
    assert_eq!(item_names(&r.body), ["ns1/pod1"]);
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods?labelSelector=app%3Da,tier",
    )
    .await;
    assert_eq!(item_names(&r.body), ["ns1/pod1"]);
}

#[tokio::test]
async fn pod_get_returns_containers_in_go_field_order() {
    let h = harness();
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods/pod2",
    )
    .await;
    assert_eq!(
        r.body,
        "{\"kind\":\"PodMetrics\",\"apiVersion\":\"metrics.k8s.io/v1beta1\",\"metadata\":{\"name\":\"pod2\",\"namespace\":\"ns1\",\"creationTimestamp\":\"2026-08-04T10:00:05Z\",\"labels\":{\"app\":\"a\"}},\"timestamp\":\"2026-08-04T09:59:58Z\",\"window\":\"2µs\",\"containers\":[{\"name\":\"c\",\"usage\":{\"cpu\":\"5m\",\"memory\":\"1Mi\"}}]}\n"
    );
}

#[tokio::test]
async fn pod_get_404s_name_the_pod_or_the_podmetrics() {
    let h = harness();
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods/pod3",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"podmetrics.metrics.k8s.io \\\"ns1/pod3\\\" not found: no kubelet reported usage for this pod in the last scrapes (every node scrapes fine: the pod's containers may not be running, or its kubelet omits them)\",\"reason\":\"NotFound\",\"details\":{\"name\":\"ns1/pod3\",\"group\":\"metrics.k8s.io\",\"kind\":\"podmetrics\"},\"code\":404}\n"
    );
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods/ghost",
    )
    .await;
    assert_eq!(
        r.body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"ghost\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"ghost\",\"kind\":\"pods\"},\"code\":404}\n"
    );
}

#[tokio::test]
async fn pod_whose_containers_were_all_skipped_has_null_timestamp() {
    let (c, mut m) = fixture();
    m.pods.insert(
        ("ns1".into(), "pod3".into()),
        metrics_server_core::PodUsage::default(),
    );
    let h = harness_with(c, m, ApiConfig::default());
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods/pod3",
    )
    .await;
    assert!(
        r.body
            .ends_with("\"timestamp\":null,\"window\":\"0s\",\"containers\":[]}\n"),
        "{}",
        r.body
    );
}

// === A4: tables ===

const KUBECTL_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[tokio::test]
async fn node_table_has_columns_from_the_first_item() {
    let h = harness();
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/nodes?includeObject=None",
            &[("accept", KUBECTL_TABLE)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        "{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{},\"columnDefinitions\":[{\"name\":\"Name\",\"type\":\"string\",\"format\":\"name\",\"description\":\"Name of the resource\",\"priority\":0},{\"name\":\"cpu\",\"type\":\"string\",\"format\":\"quantity\",\"description\":\"\",\"priority\":0},{\"name\":\"memory\",\"type\":\"string\",\"format\":\"quantity\",\"description\":\"\",\"priority\":0},{\"name\":\"Window\",\"type\":\"string\",\"format\":\"duration\",\"description\":\"\",\"priority\":0}],\"rows\":[{\"cells\":[\"node1\",\"10m\",\"5Mi\",\"1µs\"],\"object\":null},{\"cells\":[\"node2\",\"5m\",\"5Mi\",\"2µs\"],\"object\":null},{\"cells\":[\"node3\",\"1\",\"3Mi\",\"3µs\"],\"object\":null}]}\n"
    );
}

#[tokio::test]
async fn pod_table_sums_containers_and_embeds_partial_metadata() {
    let h = harness();
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods/pod1",
            &[("accept", KUBECTL_TABLE)],
        ),
    )
    .await;
    let v = json(&r.body);
    assert_eq!(
        v["rows"][0]["cells"],
        serde_json::json!(["pod1", "10m", "5Mi", "1µs"])
    );
    assert!(
        r.body.ends_with(
            "\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{\"name\":\"pod1\",\"namespace\":\"ns1\",\"creationTimestamp\":\"2026-08-04T10:00:05Z\",\"labels\":{\"app\":\"a\",\"tier\":\"web\"}}}}]}\n"
        ),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn table_include_object_embeds_the_full_typed_item() {
    let h = harness();
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/nodes/node1?includeObject=Object",
            &[(
                "accept",
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
            )],
        ),
    )
    .await;
    let v = json(&r.body);
    assert_eq!(v["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(v["rows"][0]["object"]["kind"], "NodeMetrics");
    assert_eq!(
        v["rows"][0]["object"]["apiVersion"],
        "metrics.k8s.io/v1beta1"
    );
}

#[tokio::test]
async fn empty_table_has_null_columns_and_rows() {
    let h = harness();
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/namespaces/empty/pods",
            &[("accept", KUBECTL_TABLE)],
        ),
    )
    .await;
    assert_eq!(
        r.body,
        "{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{},\"columnDefinitions\":null,\"rows\":null}\n"
    );
}

#[tokio::test]
async fn bad_include_object_is_a_bad_request() {
    let h = harness();
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/nodes?includeObject=All",
            &[("accept", KUBECTL_TABLE)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("\"message\":\"Unable to convert to Table as requested: includeObject: Invalid value: \\\"All\\\": must be 'Metadata', 'Object', 'None', or empty\""), "{}", r.body);
}

#[tokio::test]
async fn partial_object_metadata_list_is_supported() {
    let h = harness();
    let accept = [(
        "accept",
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
    )];
    let r = send(
        &h.app,
        get_with("/apis/metrics.k8s.io/v1beta1/namespaces/ns2/pods", &accept),
    )
    .await;
    assert_eq!(
        r.body,
        "{\"kind\":\"PartialObjectMetadataList\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{},\"items\":[{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{\"name\":\"pod1\",\"namespace\":\"ns2\",\"creationTimestamp\":\"2026-08-04T10:00:05Z\",\"labels\":{\"app\":\"b\"}}}]}\n"
    );
    let r = send(
        &h.app,
        get_with("/apis/metrics.k8s.io/v1beta1/nodes/node1", &accept),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    assert!(r.body.contains("you requested PartialObjectMetadataList, but the requested object is not a list (*metrics.NodeMetrics)"));
}

// === A5: freshness ===

#[tokio::test]
async fn freshness_is_observed_once_per_returned_item() {
    let h = harness();
    call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes/node1").await;
    call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes/node4").await;
    let text = render_text(&h.registry);
    assert!(
        text.contains("metrics_server_api_metric_freshness_seconds_count 4\n"),
        "{text}"
    );
    // Each item is 7 s old: all land in the (5.92, 8.07] bucket.
    assert!(
        text.contains("metrics_server_api_metric_freshness_seconds_sum 28\n"),
        "{text}"
    );
    assert!(
        text.contains("metrics_server_api_metric_freshness_seconds_bucket{le=\"1\"} 0\n"),
        "{text}"
    );
    assert!(text.contains(
        "# HELP metrics_server_api_metric_freshness_seconds [ALPHA] Freshness of metrics exported\n"
    ));
}

// === A6, A7: watch and bad selectors ===

#[tokio::test]
async fn watch_is_method_not_allowed() {
    let h = harness();
    for (uri, kind) in [
        ("/apis/metrics.k8s.io/v1beta1/pods?watch=true", "pods"),
        (
            "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods?watch=1",
            "pods",
        ),
        ("/apis/metrics.k8s.io/v1beta1/nodes?watch=true", "nodes"),
    ] {
        let r = call(&h.app, uri).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{uri}");
        assert_eq!(
            r.body,
            format!(
                "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":\"watch is not supported on resources of kind \\\"{kind}.metrics.k8s.io\\\"\",\"reason\":\"MethodNotAllowed\",\"details\":{{\"group\":\"metrics.k8s.io\",\"kind\":\"{kind}\"}},\"code\":405}}\n"
            )
        );
    }
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/pods?watch=false").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn unsupported_field_selector_is_a_bad_request() {
    let h = harness();
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dnode1",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"\\\"spec.nodeName\\\" is not a known field selector: only \\\"metadata.name\\\", \\\"metadata.namespace\\\"\",\"reason\":\"BadRequest\",\"code\":400}\n"
    );
}

#[tokio::test]
async fn unparsable_selectors_are_bad_requests() {
    let h = harness();
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=a%3E1.5",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("\"message\":\"unable to parse requirement: values[0]: Invalid value: \\\"1.5\\\": for 'Gt', 'Lt' operators, the value must be an integer\""), "{}", r.body);
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=metadata.name",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body
            .contains("invalid selector: 'metadata.name'; can't understand 'metadata.name'")
    );
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes?limit=abc").await;
    assert!(
        r.body
            .contains("\"message\":\"strconv.ParseInt: parsing \\\"abc\\\": invalid syntax\""),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn pagination_and_version_parameters_are_ignored() {
    let h = harness();
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/nodes?limit=1&continue=abc&resourceVersion=0&resourceVersionMatch=NotOlderThan&timeoutSeconds=5&allowWatchBookmarks=true",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(item_names(&r.body).len(), 3);
}

// === A9 and E.7: negotiation ===

#[tokio::test]
async fn protobuf_first_accept_gets_protobuf_and_json_first_gets_json() {
    let h = harness();
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/nodes",
            &[("accept", "application/vnd.kubernetes.protobuf, */*")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        "application/vnd.kubernetes.protobuf"
    );
    assert!(r.body.starts_with("k8s\0"));
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/nodes",
            &[(
                "accept",
                "application/json, application/vnd.kubernetes.protobuf",
            )],
        ),
    )
    .await;
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(item_names(&r.body).len(), 3);
}

#[tokio::test]
async fn yaml_is_served_for_objects_lists_and_errors() {
    let h = harness();
    let yaml = [("accept", "application/yaml")];
    let r = send(
        &h.app,
        get_with("/apis/metrics.k8s.io/v1/nodes/node1", &yaml),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/yaml");
    assert!(
        r.body
            .starts_with("apiVersion: metrics.k8s.io/v1\nkind: NodeMetrics\nmetadata:\n"),
        "{}",
        r.body
    );
    assert!(r.body.contains("\nusage:\n  cpu: "), "{}", r.body);
    let r = send(
        &h.app,
        get_with("/apis/metrics.k8s.io/v1beta1/nodes", &yaml),
    )
    .await;
    assert_eq!(r.header("content-type"), "application/yaml");
    assert!(
        r.body
            .starts_with("apiVersion: metrics.k8s.io/v1beta1\nitems:\n- metadata:\n"),
        "{}",
        r.body
    );
    assert!(
        r.body.ends_with("kind: NodeMetricsList\nmetadata: {}\n"),
        "{}",
        r.body
    );
    let r = send(
        &h.app,
        get_with("/apis/metrics.k8s.io/v1beta1/nodes/ghost", &yaml),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("content-type"), "application/yaml");
    assert!(
        r.body.starts_with("apiVersion: v1\ncode: 404\ndetails:\n"),
        "{}",
        r.body
    );
    // YAML has no stream serializer: a watch clause in YAML alone is not acceptable.
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/nodes",
            &[("accept", "application/yaml;stream=watch")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn unacceptable_media_types_get_406() {
    let h = harness();
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/nodes/node1",
            &[("accept", "text/plain")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(r.header("content-type"), "application/json");
    // No acceptable type for the error either: Go writes it indented.
    assert_eq!(
        r.body,
        "{\n  \"kind\": \"Status\",\n  \"apiVersion\": \"v1\",\n  \"metadata\": {},\n  \"status\": \"Failure\",\n  \"message\": \"406: Not Acceptable\\n\\nAvailable representations: application/json, application/yaml, application/vnd.kubernetes.protobuf\",\n  \"reason\": \"NotAcceptable\",\n  \"details\": {},\n  \"code\": 406\n}"
    );
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/nodes/node1",
            &[("accept", "application/json;as=Pod;g=meta.k8s.io;v=v1")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    assert!(
        r.body
            .contains("only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf\"")
    );
}

#[tokio::test]
async fn pretty_printing_follows_query_and_user_agent() {
    let h = harness();
    let r = call(
        &h.app,
        "/apis/metrics.k8s.io/v1beta1/nodes/node2?pretty=true",
    )
    .await;
    assert_eq!(
        r.body,
        "{\n  \"kind\": \"NodeMetrics\",\n  \"apiVersion\": \"metrics.k8s.io/v1beta1\",\n  \"metadata\": {\n    \"name\": \"node2\",\n    \"creationTimestamp\": \"2026-08-04T10:00:05Z\"\n  },\n  \"timestamp\": \"2026-08-04T09:59:58Z\",\n  \"window\": \"2µs\",\n  \"usage\": {\n    \"cpu\": \"5m\",\n    \"memory\": \"5Mi\"\n  }\n}"
    );
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/nodes/node2",
            &[("user-agent", "curl/8.5.0")],
        ),
    )
    .await;
    assert!(r.body.starts_with("{\n  \"kind\""));
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/nodes/node2?pretty=false",
            &[("user-agent", "curl/8.5.0")],
        ),
    )
    .await;
    assert!(r.body.starts_with("{\"kind\""));
    let r = send(
        &h.app,
        get_with(
            "/apis/metrics.k8s.io/v1beta1/nodes/none",
            &[("user-agent", "Mozilla/5.0")],
        ),
    )
    .await;
    assert!(r.body.starts_with("{\n  \"kind\": \"Status\""));
}

// === routing ===

#[tokio::test]
async fn unknown_resources_under_the_group_are_not_found_statuses() {
    let h = harness();
    for uri in [
        "/apis/metrics.k8s.io/v1beta1/services",
        "/apis/metrics.k8s.io/v2/nodes",
        "/apis/metrics.k8s.io/v1beta2",
        "/apis/metrics.k8s.io/v1beta1/nodes/a/b",
        "/apis/metrics.k8s.io/v1/nodes/a/b",
    ] {
        let r = call(&h.app, uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.body, NOT_FOUND_ROUTE, "{uri}");
    }
    // A version that is not served has no routes at all.
    let only_beta = harness_v1beta1();
    for uri in [
        "/apis/metrics.k8s.io/v1",
        "/apis/metrics.k8s.io/v1/nodes",
        "/apis/metrics.k8s.io/v1/namespaces/ns1/pods/pod1",
    ] {
        let r = call(&only_beta.app, uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.body, NOT_FOUND_ROUTE, "{uri}");
    }
    let r = call(&h.app, "/apis/other.k8s.io").await;
    assert_eq!(r.body, "404 page not found\n");
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
}

#[tokio::test]
async fn write_methods_are_method_not_allowed() {
    let h = harness();
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let req = http::Request::builder()
            .method(method)
            .uri("/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods/pod1")
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        let r = send(&h.app, req).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(
            r.body,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"the server does not allow this method on the requested resource\",\"reason\":\"MethodNotAllowed\",\"details\":{},\"code\":405}\n"
        );
    }
}

#[tokio::test]
async fn responses_are_not_cacheable_by_default() {
    let h = harness();
    let r = call(&h.app, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(r.header("cache-control"), "no-cache, private");
}

#[tokio::test]
async fn version_and_index_are_indented_json() {
    let h = harness();
    let r = call(&h.app, "/version").await;
    assert_eq!(r.status, StatusCode::OK);
    let v = json(&r.body);
    assert_eq!(v["compiler"], "rustc");
    assert!(r.body.starts_with("{\n  \"major\": "));
    let r = call(&h.app, "/").await;
    assert!(
        json(&r.body)["paths"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == "/readyz"))
    );
}

#[tokio::test]
async fn openapi_documents_are_served_and_parse() {
    let h = harness();
    let r = call(&h.app, "/openapi/v2").await;
    assert_eq!(r.status, StatusCode::OK);
    let v = json(&r.body);
    assert_eq!(v["swagger"], "2.0");
    assert_eq!(v["info"]["title"], "Kubernetes metrics-server");
    assert_eq!(
        v["definitions"]["io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics"]["required"],
        serde_json::json!(["timestamp", "window", "usage"])
    );
    let index = json(&call(&h.app, "/openapi/v3").await.body);
    let url = index["paths"]["apis/metrics.k8s.io/v1beta1"]["serverRelativeURL"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(url.starts_with("/openapi/v3/apis/metrics.k8s.io/v1beta1?hash="));
    let r = call(&h.app, &url).await;
    assert_eq!(r.header("cache-control"), "public, immutable");
    let v3 = json(&r.body);
    assert_eq!(v3["openapi"], "3.0.0");
    assert_eq!(
        v3["components"]["schemas"]["io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics"]["x-kubernetes-group-version-kind"]
            [0]["kind"],
        "PodMetrics"
    );
}

#[tokio::test]
async fn openapi_version_drops_the_git_suffix() {
    let (c, m) = fixture();
    let mut config = ApiConfig::default();
    config.version.git_version = "v0.9.0-3-gdeadbee".to_owned();
    let h = harness_with(c, m, config);
    let v = json(&call(&h.app, "/openapi/v2").await.body);
    assert_eq!(v["info"]["version"], "v0.9.0");
}

// === health: P1-P7 and E.11 ===

const READYZ_VERBOSE: &str = "[+]ping ok\n[+]log ok\n[+]poststarthook/max-in-flight-filter ok\n[+]poststarthook/storage-object-count-tracker-hook ok\n[+]metric-storage-ready ok\n[+]metric-informer-sync ok\n[+]metadata-informer-sync ok\n[+]shutdown ok\nreadyz check passed\n";
const LIVEZ_VERBOSE: &str = "[+]ping ok\n[+]log ok\n[+]poststarthook/max-in-flight-filter ok\n[+]poststarthook/storage-object-count-tracker-hook ok\n[+]metric-collection-timely ok\n[+]metadata-informer-sync ok\nlivez check passed\n";

#[tokio::test]
async fn verbose_probes_print_the_upstream_check_lists() {
    let h = harness();
    let r = call(&h.app, "/readyz?verbose&").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, READYZ_VERBOSE);
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert_eq!(call(&h.app, "/livez?verbose").await.body, LIVEZ_VERBOSE);
    assert_eq!(
        call(&h.app, "/healthz?verbose").await.body,
        "[+]ping ok\n[+]log ok\n[+]poststarthook/max-in-flight-filter ok\n[+]poststarthook/storage-object-count-tracker-hook ok\n[+]metadata-informer-sync ok\nhealthz check passed\n"
    );
    assert_eq!(call(&h.app, "/readyz").await.body, "ok");
}

#[tokio::test]
async fn storage_not_ready_fails_readyz_with_reason_withheld() {
    let (c, mut m) = fixture();
    m.ready = false;
    let h = harness_with(c, m, ApiConfig::default());
    let r = call(&h.app, "/readyz").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.body,
        READYZ_VERBOSE
            .replace(
                "[+]metric-storage-ready ok",
                "[-]metric-storage-ready failed: reason withheld"
            )
            .replace("readyz check passed\n", "readyz check failed\n")
    );
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    let r = call(&h.app, "/readyz/metric-storage-ready").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body, "internal server error: no metrics to serve\n");
    // livez does not care about storage.
    assert_eq!(call(&h.app, "/livez").await.status, StatusCode::OK);
}

/// A readiness condition the test flips.
#[derive(Debug, Default)]
struct Flag(std::sync::Mutex<Option<String>>);

impl metrics_server_api::ReadinessCheck for Flag {
    fn check(&self) -> Result<(), String> {
        match self.0.lock().map(|g| g.clone()) {
            Ok(None) => Ok(()),
            Ok(Some(reason)) => Err(reason),
            Err(_) => Err("poisoned".to_owned()),
        }
    }
}

#[tokio::test]
async fn the_shard_check_is_listed_last_only_once_set_and_fails_readyz_alone() {
    let h = harness();
    assert_eq!(
        call(&h.app, "/readyz/shard-complete").await.status,
        StatusCode::NOT_FOUND
    );
    let flag = std::sync::Arc::new(Flag::default());
    h.health.set_shard_check(flag.clone());
    let with_check =
        READYZ_VERBOSE.replace("[+]shutdown ok\n", "[+]shutdown ok\n[+]shard-complete ok\n");
    assert_eq!(call(&h.app, "/readyz?verbose").await.body, with_check);
    if let Ok(mut g) = flag.0.lock() {
        *g = Some("no points yet from peers [\"b\"]".to_owned());
    }
    let r = call(&h.app, "/readyz").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.body
            .contains("[-]shard-complete failed: reason withheld\nreadyz check failed"),
        "{}",
        r.body
    );
    let r = call(&h.app, "/readyz/shard-complete").await;
    assert_eq!(
        r.body,
        "internal server error: no points yet from peers [\"b\"]\n"
    );
    // livez and healthz do not list it.
    assert_eq!(call(&h.app, "/livez").await.status, StatusCode::OK);
    assert_eq!(
        call(&h.app, "/readyz?exclude=shard-complete").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn storage_readiness_follows_the_metrics_source() {
    let (c, mut m) = fixture();
    m.ready = false;
    let h = harness_with(c, m, ApiConfig::default());
    assert_eq!(
        call(&h.app, "/readyz/metric-storage-ready").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    if let Ok(mut v) = h.source.0.lock() {
        *v = std::sync::Arc::new(FakeMetrics {
            ready: true,
            ..FakeMetrics::default()
        });
    }
    let r = call(&h.app, "/readyz/metric-storage-ready").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn collection_timely_passes_before_the_first_tick() {
    let h = harness();
    h.clock.set(NOW + 3600);
    assert_eq!(
        call(&h.app, "/livez/metric-collection-timely").await.body,
        "ok"
    );
}

#[tokio::test]
async fn collection_timely_passes_one_resolution_after_a_tick() {
    let h = harness();
    h.health
        .record_tick_start(std::time::UNIX_EPOCH + Duration::from_secs(NOW));
    h.clock.set(NOW + 15);
    assert_eq!(call(&h.app, "/livez").await.status, StatusCode::OK);
}

#[tokio::test]
async fn collection_timely_fails_two_resolutions_after_a_tick() {
    let h = harness();
    h.health
        .record_tick_start(std::time::UNIX_EPOCH + Duration::from_secs(NOW));
    h.clock.set(NOW + 30);
    let r = call(&h.app, "/livez").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.body
            .contains("[-]metric-collection-timely failed: reason withheld\n")
    );
    assert!(r.body.ends_with("livez check failed\n"));
    let r = call(&h.app, "/livez/metric-collection-timely").await;
    assert_eq!(
        r.body,
        "internal server error: metric collection didn't finish on time\n"
    );
}

#[tokio::test]
async fn collection_timely_ignores_failed_scrapes() {
    // A tick that scraped nothing still records its start: only a hung loop fails.
    let (c, mut m) = fixture();
    m.ready = false;
    let h = harness_with(c, m, ApiConfig::default());
    h.health
        .record_tick_start(std::time::UNIX_EPOCH + Duration::from_secs(NOW));
    h.clock.set(NOW + 5);
    assert_eq!(call(&h.app, "/livez").await.status, StatusCode::OK);
}

#[tokio::test]
async fn excluded_checks_are_reported_and_unknown_ones_warned() {
    let (c, mut m) = fixture();
    m.ready = false;
    let h = harness_with(c, m, ApiConfig::default());
    let r = call(
        &h.app,
        "/readyz?verbose&exclude=metric-storage-ready&exclude=zzz&exclude=aaa",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("[+]metric-storage-ready excluded: ok\n"));
    assert!(r.body.ends_with("[+]shutdown ok\nwarn: some health checks cannot be excluded: no matches for \"aaa\",\"zzz\"\nreadyz check passed\n"), "{}", r.body);
}

#[tokio::test]
async fn informer_sync_and_shutdown_fail_readiness() {
    let h = harness();
    h.health.set_pod_informer_synced(false);
    let r = call(&h.app, "/readyz/metric-informer-sync").await;
    assert_eq!(
        r.body,
        "internal server error: cache for pod informer has not synced\n"
    );
    let r = call(&h.app, "/healthz/metadata-informer-sync").await;
    assert_eq!(
        r.body,
        "internal server error: 1 informers not started yet: [/v1, Resource=pods]\n"
    );
    h.health.set_pod_informer_synced(true);
    h.health.begin_shutdown();
    let r = call(&h.app, "/readyz").await;
    assert!(r.body.contains("[-]shutdown failed: reason withheld\n"));
    assert_eq!(call(&h.app, "/livez").await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_check_paths_are_plain_404s() {
    let h = harness();
    assert_eq!(
        call(&h.app, "/livez/metric-storage-ready").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(call(&h.app, "/healthz/").await.body, "404 page not found\n");
    let r = call(&h.app, "/readyz/poststarthook/max-in-flight-filter").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
}

// === /metrics ===

#[tokio::test]
async fn metrics_are_served_as_text_format_0_0_4() {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Success {
        success: String,
    }
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Type {
        r#type: String,
    }

    let mut registry = Registry::default();
    let requests = Family::<Success, Counter>::default();
    registry.register(
        "metrics_server_kubelet_request",
        "[ALPHA] Number of requests sent to Kubelet API",
        requests.clone(),
    );
    let points = Family::<Type, Gauge>::default();
    registry.register(
        "metrics_server_storage_points",
        "[ALPHA] Number of metrics points stored.",
        points.clone(),
    );
    let tick = Histogram::new([0.5, 1.0, 12.5].into_iter());
    registry.register(
        "metrics_server_manager_tick_duration_seconds",
        "[ALPHA] The total time spent collecting and storing metrics in seconds.",
        tick.clone(),
    );
    let unused = Family::<Success, Counter>::default();
    registry.register("metrics_server_unused", "Never observed", unused);
    requests
        .get_or_create(&Success {
            success: "true".into(),
        })
        .inc_by(3);
    requests
        .get_or_create(&Success {
            success: "false".into(),
        })
        .inc();
    points
        .get_or_create(&Type {
            r#type: "node".into(),
        })
        .set(2);
    points
        .get_or_create(&Type {
            r#type: "container".into(),
        })
        .set(7);
    tick.observe(0.25);
    tick.observe(2.0);

    let h = harness();
    let api_metrics = metrics_server_api::ApiMetrics::unregistered();
    let state = metrics_server_api::ApiState::new(
        ApiConfig::default(),
        std::sync::Arc::new(StaticCluster::default()),
        h.source.clone(),
        h.health.clone(),
        std::sync::Arc::new(registry),
        api_metrics,
    );
    let app = metrics_server_api::router(state);
    let r = call(&app, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
    );
    assert_eq!(
        r.body,
        "# HELP metrics_server_kubelet_request_total [ALPHA] Number of requests sent to Kubelet API\n\
         # TYPE metrics_server_kubelet_request_total counter\n\
         metrics_server_kubelet_request_total{success=\"false\"} 1\n\
         metrics_server_kubelet_request_total{success=\"true\"} 3\n\
         # HELP metrics_server_manager_tick_duration_seconds [ALPHA] The total time spent collecting and storing metrics in seconds.\n\
         # TYPE metrics_server_manager_tick_duration_seconds histogram\n\
         metrics_server_manager_tick_duration_seconds_bucket{le=\"0.5\"} 1\n\
         metrics_server_manager_tick_duration_seconds_bucket{le=\"1\"} 1\n\
         metrics_server_manager_tick_duration_seconds_bucket{le=\"12.5\"} 2\n\
         metrics_server_manager_tick_duration_seconds_bucket{le=\"+Inf\"} 2\n\
         metrics_server_manager_tick_duration_seconds_sum 2.25\n\
         metrics_server_manager_tick_duration_seconds_count 2\n\
         # HELP metrics_server_storage_points [ALPHA] Number of metrics points stored.\n\
         # TYPE metrics_server_storage_points gauge\n\
         metrics_server_storage_points{type=\"container\"} 7\n\
         metrics_server_storage_points{type=\"node\"} 2\n"
    );
}

// === large lists ===

#[test]
fn thirty_thousand_pods_encode_to_one_valid_list() {
    use metrics_server_api::{MetricsVersion, PodItem, encode_pod_metrics_list};
    let ts = secs(SAMPLE);
    let items: Vec<PodItem> = (0..30_000)
        .map(|i| PodItem {
            meta: pod(
                &format!("ns-{}", i % 10),
                &format!("pod-{i:05}"),
                &[("app", "web"), ("pod-template-hash", "558bd4d5db")],
            ),
            usage: pod_usage(
                ts,
                15_004_000_000,
                &[
                    ("app", 7_338_891, 12_533_760),
                    ("sidecar", 1_500_000, 3_145_728),
                ],
            ),
        })
        .collect();
    let started = std::time::Instant::now();
    let body = encode_pod_metrics_list(&items, "2026-08-04T10:00:05Z", MetricsVersion::V1beta1);
    let elapsed = started.elapsed();
    assert!(body.starts_with(b"{\"kind\":\"PodMetricsList\",\"apiVersion\":\"metrics.k8s.io/v1beta1\",\"metadata\":{},\"items\":[{\"metadata\":{\"name\":\"pod-00000\""));
    assert!(body.ends_with(b"]}]}\n"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(30_000));
    assert_eq!(
        v["items"][29_999]["containers"][0]["usage"]["memory"],
        "12240Ki"
    );
    // Generous even for unoptimized builds on a loaded machine.
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
}

/// A list big enough to be streamed in pieces gives the same bytes as the
/// one-buffer encoder, for JSON (v1 and v1beta1, compact and pretty) and
/// YAML, and the streamed form announces no length.
#[tokio::test]
async fn big_pod_lists_stream_the_same_bytes() {
    use http_body::Body as _;
    use metrics_server_api::{PodItem, encode_pod_metrics_list};
    use tower::ServiceExt as _;

    let ts = secs(SAMPLE);
    let mut cluster = StaticCluster::default();
    let mut metrics = FakeMetrics {
        ready: true,
        ..FakeMetrics::default()
    };
    let mut items = Vec::new();
    for i in 0..3_000 {
        let ns = format!("ns-{}", i % 7);
        let name = format!("pod-{i:05}<&>\u{2028}");
        let meta = pod(&ns, &name, &[("app", "w\u{1}\"eb"), ("h", "é")]);
        let u = pod_usage(ts, 15_004_000_000, &[("app", 7_338_891 + i, 12_533_760)]);
        cluster.pods.push(meta.clone());
        metrics.pods.insert((ns, name), u.clone());
        items.push(PodItem { meta, usage: u });
    }
    items.sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
    let h = harness_with(cluster, metrics, ApiConfig::default());
    let created = metrics_server_core::format_rfc3339_seconds(secs(NOW));
    for version in [MetricsVersion::V1, MetricsVersion::V1beta1] {
        let uri = format!("/apis/metrics.k8s.io/{}/pods", version.as_str());
        let resp = match h.app.clone().oneshot(get(&uri)).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.body().size_hint().exact(), None, "streamed");
        let body = send(&h.app, get(&uri)).await;
        let want = encode_pod_metrics_list(&items, &created, version);
        assert!(body.bytes == want, "streamed list differs from the encoder");

        // Pretty and YAML still take the one-buffer paths and agree with it.
        let pretty = send(&h.app, get(&format!("{uri}?pretty=true"))).await;
        assert_eq!(json(&pretty.body), json(&body.body));
        let yaml = send(&h.app, get_with(&uri, &[("accept", "application/yaml")])).await;
        assert_eq!(yaml.status, StatusCode::OK);
        assert!(yaml.body.starts_with("apiVersion: metrics.k8s.io/"));
    }
    // A small list is one buffer of known length.
    let small = harness();
    let resp = match small
        .app
        .clone()
        .oneshot(get("/apis/metrics.k8s.io/v1beta1/pods"))
        .await
    {
        Ok(r) => r,
        Err(e) => match e {},
    };
    assert!(resp.body().size_hint().exact().is_some());
}
