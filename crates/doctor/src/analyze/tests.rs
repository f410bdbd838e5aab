//! The diagnosis on hand-built cluster states: a healthy cluster, then one fault at a time.

use std::collections::BTreeMap;

use super::analyze;
use crate::facts::{
    Access, AccessCheck, ApiServiceFacts, AuthConfigFacts, Condition, ContainerRequests,
    EndpointFacts, Facts, HpaFacts, HpaResourceMetric, Lookup, PodFacts, REQUIRED_ACCESS,
    ServiceFacts, ServicePort, ServiceRef, TargetPod,
};
use crate::finding::{Finding, Severity, exit_code};
use crate::scrape_health::{NodeError, NodeHealth, ScrapeHealth};

const API: &str = "v1beta1.metrics.k8s.io";

fn available(status: &str, reason: &str, message: &str) -> Vec<Condition> {
    vec![Condition {
        type_: "Available".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
    }]
}

fn server_pod(name: &str, ready: bool) -> PodFacts {
    PodFacts {
        name: name.into(),
        phase: "Running".into(),
        ready,
        not_ready_reason: (!ready).then(|| "container metrics-server CrashLoopBackOff".into()),
        restarts: 0,
        container_ports: vec![(Some("https".into()), 10250)],
    }
}

fn service() -> ServiceFacts {
    ServiceFacts {
        type_: "ClusterIP".into(),
        cluster_ip: Some("10.96.0.20".into()),
        external_name: None,
        selector: BTreeMap::from([("k8s-app".into(), "metrics-server".into())]),
        ports: vec![ServicePort {
            name: Some("https".into()),
            port: 443,
            target_port: Some("https".into()),
        }],
        endpoints: Lookup::Found(vec![EndpointFacts {
            address: "10.244.0.5".into(),
            ready: true,
            pod: Some("metrics-server-abc".into()),
        }]),
        pods: Lookup::Found(vec![server_pod("metrics-server-abc", true)]),
    }
}

fn node(name: &str, error: Option<(&str, Option<u16>)>) -> NodeHealth {
    NodeHealth {
        node: name.into(),
        address: Some("192.0.2.10".into()),
        address_type: Some("InternalIP".into()),
        port: Some(10250),
        port_source: Some("status".into()),
        route: Some("direct".into()),
        url: Some("https://192.0.2.10:10250/metrics/resource".into()),
        last_attempt: Some("2026-12-03T07:00:00Z".into()),
        last_success: error.is_none().then(|| "2026-12-03T07:00:00Z".into()),
        consecutive_failures: u64::from(error.is_some()) * 3,
        latency_millis: Some(12),
        last_error: error.map(|(class, status_code)| NodeError {
            class: class.into(),
            status_code,
            message: format!("scrape failed: {class}"),
            summary: None,
            hint: None,
        }),
        direct_error: None,
    }
}

fn healthy() -> Facts {
    Facts {
        namespace: "kube-system".into(),
        service_account: "metrics-server".into(),
        api_services: Lookup::Found(vec![ApiServiceFacts {
            name: API.into(),
            service: Some(ServiceRef {
                namespace: "kube-system".into(),
                name: "metrics-server".into(),
                port: 443,
            }),
            insecure_skip_tls_verify: true,
            has_ca_bundle: false,
            conditions: available("True", "Passed", "all checks passed"),
            backend: Lookup::Found(service()),
        }]),
        service_account_exists: Lookup::Found(true),
        access: REQUIRED_ACCESS
            .iter()
            .map(|p| AccessCheck {
                permission: *p,
                result: Access::Allowed,
            })
            .collect(),
        auth_config: Lookup::Found(AuthConfigFacts {
            client_ca_present: true,
            requestheader_ca_subjects: Some(vec!["CN=front-proxy-ca".into()]),
            requestheader_allowed_names: vec!["front-proxy-client".into()],
            requestheader_username_headers: vec!["X-Remote-User".into()],
        }),
        scrape_health: Lookup::Found(ScrapeHealth {
            nodes: vec![node("n1", None), node("n2", None)],
            ..ScrapeHealth::default()
        }),
        hpas: Lookup::Found(Vec::new()),
    }
}

fn api_mut(facts: &mut Facts) -> &mut ApiServiceFacts {
    match &mut facts.api_services {
        Lookup::Found(v) => &mut v[0],
        _ => unreachable!(),
    }
}

fn svc_mut(facts: &mut Facts) -> &mut ServiceFacts {
    match &mut api_mut(facts).backend {
        Lookup::Found(s) => s,
        _ => unreachable!(),
    }
}

fn problems(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .collect()
}

/// The one Error finding of `check`, which must exist.
fn error<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.severity == Severity::Error && f.check == check)
        .unwrap_or_else(|| panic!("no {check} error in {findings:#?}"))
}

#[test]
fn a_healthy_cluster_has_only_info_findings_and_exits_0() {
    let findings = analyze(&healthy());
    assert!(problems(&findings).is_empty(), "{findings:#?}");
    assert_eq!(exit_code(&findings), 0);
    let checks: Vec<&str> = findings.iter().map(|f| f.check).collect();
    for check in [
        "apiservice",
        "endpoints",
        "rbac",
        "authentication",
        "kubelet",
    ] {
        assert!(checks.contains(&check), "{check} missing from {checks:?}");
    }
}

#[test]
fn no_apiservice_at_all_is_an_error_with_the_install_fix() {
    let mut facts = healthy();
    facts.api_services = Lookup::Found(Vec::new());
    let findings = analyze(&facts);
    let f = error(&findings, "apiservice");
    assert!(f.message.contains("no APIService"), "{f:?}");
    assert!(f.fix.contains("kubectl apply"), "{f:?}");
    assert_eq!(exit_code(&findings), 1);
}

#[test]
fn a_removed_rbac_binding_names_the_permissions_and_the_binding_to_create() {
    let mut facts = healthy();
    for check in &mut facts.access {
        if check.permission.grant == crate::facts::Grant::ServerRole {
            check.result = Access::Denied(String::new());
        }
    }
    let findings = analyze(&facts);
    let f = error(&findings, "rbac");
    assert!(f.message.contains("get nodes/metrics"), "{f:?}");
    assert!(f.message.contains("list pods"), "{f:?}");
    assert_eq!(
        f.fix,
        "kubectl create clusterrolebinding system:metrics-server --clusterrole=system:metrics-server --serviceaccount=kube-system:metrics-server (the ClusterRole comes with deploy/components.yaml)"
    );
    // Only the one group is reported.
    assert_eq!(findings.iter().filter(|f| f.check == "rbac").count(), 1);
}

#[test]
fn each_missing_binding_has_its_own_fix() {
    let mut facts = healthy();
    for check in &mut facts.access {
        check.result = Access::Denied("no RBAC policy matched".into());
    }
    let findings = analyze(&facts);
    let fixes: Vec<&str> = findings
        .iter()
        .filter(|f| f.check == "rbac")
        .map(|f| f.fix.as_str())
        .collect();
    assert_eq!(fixes.len(), 3, "{fixes:?}");
    assert!(fixes[1].contains("--clusterrole=system:auth-delegator"));
    assert!(fixes[2].contains("--role=extension-apiserver-authentication-reader"));
}

#[test]
fn unknown_access_and_a_missing_service_account_are_warnings() {
    let mut facts = healthy();
    facts.service_account_exists = Lookup::Found(false);
    facts.access[0].result = Access::Unknown("403: forbidden".into());
    let findings = analyze(&facts);
    let warnings: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning && f.check == "rbac")
        .collect();
    assert_eq!(warnings.len(), 2, "{findings:#?}");
    assert!(
        warnings[0]
            .fix
            .contains("create serviceaccount metrics-server")
    );
}

#[test]
fn a_wrong_apiservice_port_is_named_against_the_service_ports() {
    let mut facts = healthy();
    let api = api_mut(&mut facts);
    api.service.as_mut().unwrap().port = 8443;
    api.conditions = available(
        "False",
        "FailedDiscoveryCheck",
        "failing or missing response from https://10.96.0.20:8443/apis/metrics.k8s.io/v1beta1: Get \"https://10.96.0.20:8443/apis/metrics.k8s.io/v1beta1\": dial tcp 10.96.0.20:8443: connect: connection refused",
    );
    let findings = analyze(&facts);
    let svc = error(&findings, "service");
    assert!(svc.message.contains("port 8443"), "{svc:?}");
    assert!(svc.message.contains("[443]"), "{svc:?}");
    assert!(svc.fix.contains(r#""port":443"#), "{svc:?}");
    let api = error(&findings, "apiservice");
    assert!(
        api.message.contains("nothing listens at 10.96.0.20:8443"),
        "{api:?}"
    );
    assert!(
        api.fix
            .contains("kubectl patch apiservice v1beta1.metrics.k8s.io"),
        "{api:?}"
    );
}

#[test]
fn connection_refused_through_an_external_name_names_the_port() {
    let mut facts = healthy();
    let api = api_mut(&mut facts);
    api.service.as_mut().unwrap().port = 1;
    api.conditions = available(
        "False",
        "FailedDiscoveryCheck",
        "failing or missing response from https://127.0.0.1:1/apis/metrics.k8s.io/v1beta1: Get \"https://127.0.0.1:1/apis/metrics.k8s.io/v1beta1\": dial tcp 127.0.0.1:1: connect: connection refused",
    );
    let svc = svc_mut(&mut facts);
    svc.type_ = "ExternalName".into();
    svc.external_name = Some("127.0.0.1".into());
    let findings = analyze(&facts);
    let f = error(&findings, "apiservice");
    assert!(f.message.contains("APIService's port (1)"), "{f:?}");
    // No port check is possible through an ExternalName: the one error is the APIService's.
    assert_eq!(problems(&findings).len(), 1, "{findings:#?}");
}

#[test]
fn a_service_whose_selector_matches_nothing_has_no_endpoints() {
    let mut facts = healthy();
    api_mut(&mut facts).conditions = available(
        "False",
        "MissingEndpoints",
        "endpoints for service/metrics-server in \"kube-system\" have no addresses with port name \"https\"",
    );
    let svc = svc_mut(&mut facts);
    svc.endpoints = Lookup::Found(Vec::new());
    svc.pods = Lookup::Found(Vec::new());
    let findings = analyze(&facts);
    let api = error(&findings, "apiservice");
    assert!(api.message.contains("MissingEndpoints"), "{api:?}");
    assert!(api.message.contains("has no ready endpoints"), "{api:?}");
    // Before the EndpointSlice controller has made a slice, kube-apiserver says EndpointsNotFound.
    let mut early = facts.clone();
    api_mut(&mut early).conditions = available(
        "False",
        "EndpointsNotFound",
        "cannot find endpointslices for service/metrics-server in \"kube-system\"",
    );
    let early = analyze(&early);
    assert!(
        error(&early, "apiservice")
            .message
            .contains("has no ready endpoints")
    );
    let eps = error(&findings, "endpoints");
    assert!(
        eps.message
            .contains("selector k8s-app=metrics-server matches no pod"),
        "{eps:?}"
    );
    assert!(eps.fix.contains("get pods --show-labels"), "{eps:?}");
}

#[test]
fn endpoints_missing_because_pods_are_not_ready_name_the_pods() {
    let mut facts = healthy();
    let svc = svc_mut(&mut facts);
    svc.endpoints = Lookup::Found(vec![EndpointFacts {
        address: "10.244.0.5".into(),
        ready: false,
        pod: Some("metrics-server-abc".into()),
    }]);
    svc.pods = Lookup::Found(vec![server_pod("metrics-server-abc", false)]);
    let findings = analyze(&facts);
    let eps = error(&findings, "endpoints");
    assert!(
        eps.message
            .contains("metrics-server-abc (Running: container metrics-server CrashLoopBackOff)"),
        "{eps:?}"
    );
    assert!(
        eps.fix
            .contains("kubectl -n kube-system logs -l k8s-app=metrics-server"),
        "{eps:?}"
    );
}

#[test]
fn ready_pods_without_endpoints_point_at_a_named_target_port_nobody_declares() {
    let mut facts = healthy();
    let svc = svc_mut(&mut facts);
    svc.endpoints = Lookup::Found(Vec::new());
    svc.ports[0].target_port = Some("metrics".into());
    let findings = analyze(&facts);
    let eps = error(&findings, "endpoints");
    assert!(
        eps.message
            .contains("targetPort \"metrics\" names no container port of its ready pods (they declare [https])"),
        "{eps:?}"
    );
    assert!(eps.fix.contains("edit svc metrics-server"), "{eps:?}");

    // A numeric targetPort needs no declaration: the cause is elsewhere.
    let mut facts = healthy();
    let svc = svc_mut(&mut facts);
    svc.endpoints = Lookup::Found(Vec::new());
    svc.ports[0].target_port = Some("10250".into());
    let findings = analyze(&facts);
    assert!(
        error(&findings, "endpoints")
            .message
            .contains("no EndpointSlice lists them")
    );
}

#[test]
fn a_missing_service_is_an_error() {
    let mut facts = healthy();
    let api = api_mut(&mut facts);
    api.backend = Lookup::Missing("services \"metrics-server\" not found".into());
    api.conditions = available(
        "False",
        "ServiceNotFound",
        "service/metrics-server in \"kube-system\" is not present",
    );
    let findings = analyze(&facts);
    assert!(
        error(&findings, "apiservice")
            .message
            .contains("does not exist")
    );
    assert!(error(&findings, "service").fix.contains("kubectl apply"));
}

#[test]
fn a_hung_server_times_out_discovery() {
    let mut facts = healthy();
    api_mut(&mut facts).conditions = available(
        "False",
        "FailedDiscoveryCheck",
        "failing or missing response from https://127.0.0.1:40123/apis/metrics.k8s.io/v1beta1: Get \"https://127.0.0.1:40123/apis/metrics.k8s.io/v1beta1\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
    );
    facts.scrape_health = Lookup::Failed("no answer within 10s".into());
    let findings = analyze(&facts);
    let f = error(&findings, "apiservice");
    assert!(
        f.message
            .contains("metrics-server at 127.0.0.1:40123 did not answer in time"),
        "{f:?}"
    );
    assert!(f.message.contains("hung"), "{f:?}");
    assert!(f.fix.contains("rollout restart"), "{f:?}");
    // The scrape-health warning points at the API rather than repeating the timeout.
    let sh = findings
        .iter()
        .find(|f| f.check == "scrape-health")
        .unwrap();
    assert!(sh.message.contains("metrics API is unavailable"), "{sh:?}");
}

#[test]
fn a_401_or_403_on_discovery_is_a_front_proxy_trust_problem() {
    for code in ["401", "403"] {
        let mut facts = healthy();
        api_mut(&mut facts).conditions = available(
            "False",
            "FailedDiscoveryCheck",
            &format!(
                "failing or missing response from https://127.0.0.1:4443/apis/metrics.k8s.io/v1beta1: bad status from https://127.0.0.1:4443/apis/metrics.k8s.io/v1beta1: {code}"
            ),
        );
        let findings = analyze(&facts);
        let f = error(&findings, "apiservice");
        assert!(f.message.contains("front-proxy CA mismatch"), "{f:?}");
        assert!(f.message.contains(&format!("answered {code}")), "{f:?}");
        assert!(
            f.fix.contains("extension-apiserver-authentication"),
            "{f:?}"
        );
    }
}

#[test]
fn a_serving_certificate_the_aggregator_does_not_trust() {
    let mut facts = healthy();
    api_mut(&mut facts).conditions = available(
        "False",
        "FailedDiscoveryCheck",
        "failing or missing response from https://10.96.0.20:443/apis/metrics.k8s.io/v1beta1: Get \"...\": tls: failed to verify certificate: x509: certificate signed by unknown authority",
    );
    let f = error(&analyze(&facts), "apiservice").clone();
    assert!(f.fix.contains("caBundle"), "{f:?}");
}

#[test]
fn the_auth_config_map_checks() {
    let mut facts = healthy();
    facts.auth_config =
        Lookup::Missing("configmaps \"extension-apiserver-authentication\" not found".into());
    assert!(
        error(&analyze(&facts), "authentication")
            .fix
            .contains("--requestheader-client-ca-file")
    );

    let mut facts = healthy();
    facts.auth_config = Lookup::Found(AuthConfigFacts {
        client_ca_present: false,
        requestheader_ca_subjects: None,
        ..AuthConfigFacts::default()
    });
    let findings = analyze(&facts);
    assert!(
        error(&findings, "authentication")
            .message
            .contains("no requestheader-client-ca-file")
    );
    assert!(
        findings
            .iter()
            .any(|f| f.severity == Severity::Warning && f.message.contains("no client-ca-file"))
    );

    // The CA subjects are shown, so a mismatch can be seen by eye.
    let info = analyze(&healthy())
        .into_iter()
        .find(|f| f.check == "authentication")
        .unwrap();
    assert!(info.message.contains("CN=front-proxy-ca"), "{info:?}");
    assert!(
        info.message.contains("allowed names: front-proxy-client"),
        "{info:?}"
    );
}

#[test]
fn a_blocked_kubelet_port_suggests_opening_it_or_the_node_proxy_fallback() {
    for class in ["connect_timeout", "connect_refused"] {
        let mut facts = healthy();
        facts.scrape_health = Lookup::Found(ScrapeHealth {
            nodes: vec![
                node("n1", None),
                node("n2", Some((class, None))),
                node("n3", Some((class, None))),
            ],
            ..ScrapeHealth::default()
        });
        let findings = analyze(&facts);
        let f = error(&findings, "kubelet");
        assert_eq!(f.subject, "nodes n2, n3");
        assert!(
            f.message
                .starts_with("kubelet port unreachable from metrics-server"),
            "{f:?}"
        );
        assert!(f.message.contains("192.0.2.10:10250"), "{f:?}");
        assert!(f.fix.contains("--kubelet-node-proxy-fallback"), "{f:?}");
        assert!(f.fix.contains("nodes/proxy"), "{f:?}");
        assert!(f.fix.contains("allow TCP 10250"), "{f:?}");
        let info = findings
            .iter()
            .find(|f| f.check == "kubelet" && f.severity == Severity::Info)
            .unwrap();
        assert_eq!(info.subject, "node/n1");
    }
}

#[test]
fn kubelet_certificate_and_authorization_classes_have_their_fixes() {
    let cases: [(&str, Option<u16>, &str, &str); 5] = [
        (
            "tls_name_mismatch",
            None,
            "has no SAN for 192.0.2.10 (InternalIP)",
            "serverTLSBootstrap",
        ),
        (
            "tls_unknown_authority",
            None,
            "CA the server does not trust",
            "--kubelet-certificate-authority",
        ),
        (
            "http_status",
            Some(403),
            "RBAC nodes/metrics",
            "--clusterrole=system:metrics-server",
        ),
        (
            "http_status",
            Some(401),
            "rejected the server's credentials",
            "webhook",
        ),
        (
            "dns",
            None,
            "does not resolve",
            "--kubelet-preferred-address-types",
        ),
    ];
    for (class, code, message, fix) in cases {
        let mut facts = healthy();
        facts.scrape_health = Lookup::Found(ScrapeHealth {
            nodes: vec![node("n1", Some((class, code)))],
            ..ScrapeHealth::default()
        });
        let findings = analyze(&facts);
        let f = error(&findings, "kubelet");
        assert!(f.message.contains(message), "{class}: {f:?}");
        assert!(f.fix.contains(fix), "{class}: {f:?}");
    }
    let mut facts = healthy();
    facts.scrape_health = Lookup::Found(ScrapeHealth {
        nodes: vec![node("n1", Some(("tls_name_mismatch", None)))],
        ..ScrapeHealth::default()
    });
    assert!(
        error(&analyze(&facts), "kubelet")
            .fix
            .contains("--kubelet-insecure-tls")
    );
}

#[test]
fn incomplete_data_is_a_warning_and_the_fallback_route_is_reported() {
    let mut facts = healthy();
    let mut proxied = node("n2", None);
    proxied.route = Some("node-proxy".into());
    proxied.direct_error = Some(NodeError {
        class: "connect_timeout".into(),
        summary: Some("connect timeout to 192.0.2.10:10250".into()),
        ..NodeError::default()
    });
    facts.scrape_health = Lookup::Found(ScrapeHealth {
        nodes: vec![node("n1", Some(("incomplete", None))), proxied],
        ..ScrapeHealth::default()
    });
    let findings = analyze(&facts);
    assert!(
        findings.iter().all(|f| f.severity != Severity::Error),
        "{findings:#?}"
    );
    let warnings: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .collect();
    assert_eq!(warnings.len(), 2, "{findings:#?}");
    let proxied = warnings.iter().find(|f| f.subject == "node/n2").unwrap();
    assert!(
        proxied.message.contains("node proxy")
            && proxied
                .message
                .contains("connect timeout to 192.0.2.10:10250 (connect_timeout)"),
        "{proxied:?}"
    );
}

#[test]
fn a_refused_node_proxy_fallback_asks_for_nodes_proxy_not_nodes_metrics() {
    let mut facts = healthy();
    let mut n = node("n1", Some(("http_status", Some(403))));
    n.route = Some("node-proxy".into());
    facts.scrape_health = Lookup::Found(ScrapeHealth {
        nodes: vec![n],
        ..ScrapeHealth::default()
    });
    let findings = analyze(&facts);
    let f = error(&findings, "kubelet");
    assert!(f.message.contains("may not get nodes/proxy"), "{f:?}");
    assert!(f.fix.contains("--resource=nodes/proxy"), "{f:?}");
}

#[test]
fn a_server_without_the_scrape_health_endpoint_is_only_info() {
    let mut facts = healthy();
    facts.scrape_health =
        Lookup::Missing("the server could not find the requested resource".into());
    let findings = analyze(&facts);
    assert_eq!(exit_code(&findings), 0, "{findings:#?}");
    let f = findings
        .iter()
        .find(|f| f.check == "scrape-health")
        .unwrap();
    assert!(f.message.contains("upstream metrics-server"), "{f:?}");
}

fn hpa(requests: &[&str], metrics: Lookup<()>) -> HpaFacts {
    HpaFacts {
        namespace: "shop".into(),
        name: "web".into(),
        target_kind: "Deployment".into(),
        target_name: "web".into(),
        metrics: vec![HpaResourceMetric {
            resource: "cpu".into(),
            target_type: "Utilization".into(),
            container: None,
            current: None,
        }],
        conditions: vec![Condition {
            type_: "ScalingActive".into(),
            status: "False".into(),
            reason: "FailedGetResourceMetric".into(),
            message:
                "the HPA was unable to compute the replica count: failed to get cpu utilization"
                    .into(),
        }],
        pods: Lookup::Found(vec![TargetPod {
            name: "web-1".into(),
            phase: "Running".into(),
            containers: vec![
                ContainerRequests {
                    name: "app".into(),
                    requests: requests.iter().map(|r| (*r).to_owned()).collect(),
                },
                ContainerRequests {
                    name: "sidecar".into(),
                    requests: vec!["cpu".into(), "memory".into()],
                },
            ],
            metrics,
        }]),
    }
}

#[test]
fn an_hpa_at_unknown_because_a_container_requests_no_cpu() {
    let mut facts = healthy();
    facts.hpas = Lookup::Found(vec![hpa(&["memory"], Lookup::Found(()))]);
    let findings = analyze(&facts);
    let f = error(&findings, "hpa");
    assert_eq!(f.subject, "HorizontalPodAutoscaler/shop/web");
    assert!(f.message.contains("cpu shows <unknown>"), "{f:?}");
    assert!(
        f.message
            .contains("container(s) app of pod web-1 request no cpu"),
        "{f:?}"
    );
    assert!(
        f.fix
            .starts_with("kubectl -n shop set resources deployment/web -c app --requests=cpu="),
        "{f:?}"
    );
}

#[test]
fn an_hpa_at_unknown_because_pods_have_no_metrics_quotes_the_api() {
    let mut facts = healthy();
    let why = "podmetrics.metrics.k8s.io \"shop/web-1\" not found: started 5s ago, first usage expected within 30s";
    facts.hpas = Lookup::Found(vec![hpa(&["cpu"], Lookup::Missing(why.into()))]);
    let findings = analyze(&facts);
    let f = findings.iter().find(|f| f.check == "hpa").unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains(why), "{f:?}");
}

#[test]
fn an_hpa_at_unknown_because_the_api_is_down_points_at_the_api() {
    let mut facts = healthy();
    api_mut(&mut facts).conditions = available("False", "MissingEndpoints", "no endpoints");
    facts.hpas = Lookup::Found(vec![hpa(&["cpu"], Lookup::Failed("503".into()))]);
    let findings = analyze(&facts);
    assert!(
        error(&findings, "hpa")
            .message
            .contains("metrics API is unavailable")
    );
}

#[test]
fn average_value_targets_need_no_request_and_fall_back_to_the_condition() {
    let mut facts = healthy();
    let mut h = hpa(&[], Lookup::Found(()));
    h.metrics[0].target_type = "AverageValue".into();
    facts.hpas = Lookup::Found(vec![h]);
    let findings = analyze(&facts);
    let f = findings.iter().find(|f| f.check == "hpa").unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains("FailedGetResourceMetric"), "{f:?}");
}

#[test]
fn container_resource_metrics_look_only_at_their_container() {
    let mut facts = healthy();
    let mut h = hpa(&[], Lookup::Found(()));
    h.metrics[0].container = Some("sidecar".into());
    facts.hpas = Lookup::Found(vec![h]);
    let findings = analyze(&facts);
    // The sidecar requests cpu; the app container's missing request does not matter.
    assert!(
        findings
            .iter()
            .all(|f| !(f.check == "hpa" && f.severity == Severity::Error)),
        "{findings:#?}"
    );
}

#[test]
fn findings_come_most_severe_first() {
    let mut facts = healthy();
    facts.access[0].result = Access::Denied(String::new());
    facts.service_account_exists = Lookup::Found(false);
    let findings = analyze(&facts);
    let severities: Vec<Severity> = findings.iter().map(|f| f.severity).collect();
    let mut sorted = severities.clone();
    sorted.sort();
    assert_eq!(severities, sorted);
    assert_eq!(severities[0], Severity::Error);
}
