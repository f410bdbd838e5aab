//! The pure parts of gathering: Kubernetes objects into facts.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::{auth_config_facts, hpa, pem_subjects, pods};

#[test]
fn the_auth_config_map_yields_ca_subjects_and_lists() {
    let ca = metrics_server_test_support::TestPki::new()
        .unwrap()
        .ca_pem();
    let other = metrics_server_test_support::TestPki::new()
        .unwrap()
        .ca_pem();
    let data = BTreeMap::from([
        ("client-ca-file".to_owned(), ca.clone()),
        (
            "requestheader-client-ca-file".to_owned(),
            format!("{ca}{other}"),
        ),
        (
            "requestheader-allowed-names".to_owned(),
            r#"["front-proxy-client"]"#.to_owned(),
        ),
        (
            "requestheader-username-headers".to_owned(),
            r#"["X-Remote-User"]"#.to_owned(),
        ),
    ]);
    let facts = auth_config_facts(&data);
    assert!(facts.client_ca_present);
    assert_eq!(
        facts.requestheader_ca_subjects,
        Some(vec![
            "CN=metrics-server-rs test CA".to_owned(),
            "CN=metrics-server-rs test CA".to_owned()
        ])
    );
    assert_eq!(facts.requestheader_allowed_names, ["front-proxy-client"]);
    assert_eq!(facts.requestheader_username_headers, ["X-Remote-User"]);

    let empty = auth_config_facts(&BTreeMap::new());
    assert!(!empty.client_ca_present);
    assert_eq!(empty.requestheader_ca_subjects, None);
    assert!(empty.requestheader_allowed_names.is_empty());
}

#[test]
fn unreadable_pem_yields_no_subject() {
    assert!(pem_subjects(b"not a certificate").is_empty());
    assert!(
        pem_subjects(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_empty()
    );
}

#[test]
fn hpa_metrics_without_a_current_value_are_unknown() {
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 3,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 50}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1"}}}
            ]
        },
        "status": {
            "desiredReplicas": 1,
            "currentMetrics": [
                {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "60Mi"}}}
            ],
            "conditions": [{"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "missing request for cpu"}]
        }
    }))
    .unwrap();
    let facts = hpa::hpa_facts(&hpa);
    assert_eq!(
        (facts.target_kind.as_str(), facts.target_name.as_str()),
        ("Deployment", "web")
    );
    let shown: Vec<(&str, Option<&str>, Option<&str>)> = facts
        .metrics
        .iter()
        .map(|m| {
            (
                m.resource.as_str(),
                m.container.as_deref(),
                m.current.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("cpu", None, None),
            ("memory", None, Some("60Mi")),
            ("cpu", Some("app"), None)
        ]
    );
    assert_eq!(facts.conditions[0].reason, "FailedGetResourceMetric");
}

#[test]
fn utilization_is_shown_as_a_percentage() {
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
        },
        "status": {"desiredReplicas": 1, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 5, "averageValue": "5m"}}}
        ]}
    }))
    .unwrap();
    assert_eq!(
        hpa::hpa_facts(&hpa).metrics[0].current.as_deref(),
        Some("5%")
    );
}

#[test]
fn a_pod_that_is_not_ready_says_why() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "metrics-server-abc"},
        "spec": {"containers": [{"name": "metrics-server", "ports": [{"name": "https", "containerPort": 10250}]}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "message": "containers with unready status: [metrics-server]"}],
            "containerStatuses": [{"name": "metrics-server", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
        }
    }))
    .unwrap();
    let facts = pods::pod_facts(&pod);
    assert!(!facts.ready);
    assert_eq!(
        facts.not_ready_reason.as_deref(),
        Some("container metrics-server CrashLoopBackOff")
    );
    assert_eq!(facts.restarts, 4);
    assert_eq!(facts.container_ports, [(Some("https".to_owned()), 10250)]);
}

#[derive(Debug)]
struct Wrapped(&'static str, Option<Box<Wrapped>>);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.as_deref().map(|e| e as _)
    }
}

#[test]
fn transport_errors_carry_their_causes() {
    let e = Wrapped(
        "client error (Connect)",
        Some(Box::new(Wrapped(
            "tcp connect error",
            Some(Box::new(Wrapped("Connection refused", None))),
        ))),
    );
    assert_eq!(
        super::chain(&e),
        "client error (Connect): tcp connect error: Connection refused"
    );
    // A cause already in the text is not repeated.
    let e = Wrapped(
        "read: Connection reset",
        Some(Box::new(Wrapped("Connection reset", None))),
    );
    assert_eq!(super::chain(&e), "read: Connection reset");
}
