//! Per-node kubelet scrapes, from the server's scrape-health document: failing nodes grouped by
//! error class, each class with its cause and fix.

use std::collections::BTreeMap;

use crate::facts::{Facts, Grant, Lookup};
use crate::finding::{Finding, Severity};
use crate::scrape_health::{self, NodeHealth, ScrapeHealth};

const SUBJECT: &str = "scrape-health";

pub(super) fn analyze(facts: &Facts) -> Vec<Finding> {
    let doc = match &facts.scrape_health {
        Lookup::Found(doc) => doc,
        Lookup::Missing(e) => {
            return vec![Finding::new(
                Severity::Info,
                "scrape-health",
                SUBJECT,
                format!(
                    "the server does not serve {} ({e}): upstream metrics-server or an older metrics-server-rs; per-node kubelet checks skipped",
                    scrape_health::AGGREGATED_PATH
                ),
                "",
            )];
        }
        Lookup::Failed(e) => {
            let why = if super::api_available(facts) == Some(false) {
                "the metrics API is unavailable (see the apiservice finding)".to_owned()
            } else {
                e.clone()
            };
            return vec![Finding::new(
                Severity::Warning,
                "scrape-health",
                SUBJECT,
                format!("per-node scrape health unavailable through the aggregator: {why}"),
                format!("kubectl get --raw {}", scrape_health::AGGREGATED_PATH),
            )];
        }
        Lookup::NotChecked => return Vec::new(),
    };
    judge(doc, facts)
}

fn judge(doc: &ScrapeHealth, facts: &Facts) -> Vec<Finding> {
    if doc.nodes.is_empty() {
        return vec![Finding::new(
            Severity::Warning,
            "kubelet",
            "nodes",
            "the server has scraped no node yet (just started, or --node-selector keeps none)",
            "kubectl get nodes; check the server's --node-selector",
        )];
    }
    let mut groups: BTreeMap<(String, Option<u16>, bool), Vec<&NodeHealth>> = BTreeMap::new();
    let mut healthy = Vec::new();
    let mut proxied: Vec<&NodeHealth> = Vec::new();
    for node in &doc.nodes {
        let via_proxy = node.route.as_deref() == Some("node-proxy");
        match &node.last_error {
            Some(err) => groups
                .entry((err.class.clone(), err.status_code, via_proxy))
                .or_default()
                .push(node),
            None => healthy.push(node.node.clone()),
        }
        if via_proxy {
            proxied.push(node);
        }
    }
    let mut out: Vec<Finding> = groups
        .iter()
        .map(|((class, code, via_proxy), nodes)| {
            if *via_proxy && class == "http_status" && matches!(code, Some(401 | 403)) {
                return proxy_denied(nodes, facts);
            }
            class_finding(class, *code, nodes, facts)
        })
        .collect();
    if !proxied.is_empty() {
        out.push(proxied_finding(&proxied));
    }
    if !healthy.is_empty() {
        out.push(Finding::new(
            Severity::Info,
            "kubelet",
            subject_for(&healthy),
            format!(
                "{} of {} node(s) scraped fine",
                healthy.len(),
                doc.nodes.len()
            ),
            "",
        ));
    }
    out
}

/// Nodes served through the node-proxy fallback: say why the direct route fails.
fn proxied_finding(nodes: &[&NodeHealth]) -> Finding {
    let names: Vec<String> = nodes.iter().map(|n| n.node.clone()).collect();
    let direct = nodes[0].direct_error.as_ref().map_or_else(
        || "the direct kubelet port is unreachable from the server".to_owned(),
        |e| {
            format!(
                "direct scrapes fail: {} ({})",
                e.summary.as_deref().unwrap_or(&e.message),
                e.class
            )
        },
    );
    Finding::new(
        Severity::Warning,
        "kubelet",
        subject_for(&names),
        format!(
            "scraped through kube-apiserver's node proxy (--kubelet-node-proxy-fallback); {direct}"
        ),
        "open the kubelet port from the server's pods to the nodes (security group, firewall, NetworkPolicy egress); until then each of these nodes costs kube-apiserver one proxied request per resolution",
    )
}

/// The fallback is on, but kube-apiserver refuses the server its node proxy.
fn proxy_denied(nodes: &[&NodeHealth], facts: &Facts) -> Finding {
    let names: Vec<String> = nodes.iter().map(|n| n.node.clone()).collect();
    let err = nodes[0].last_error.clone().unwrap_or_default();
    Finding::new(
        Severity::Error,
        "kubelet",
        subject_for(&names),
        format!(
            "the node-proxy fallback is refused: the server may not get nodes/proxy ({})",
            err.summary.as_deref().unwrap_or(&err.message)
        ),
        format!(
            "kubectl create clusterrole metrics-server-node-proxy --verb=get --resource=nodes/proxy && kubectl create clusterrolebinding metrics-server-node-proxy --clusterrole=metrics-server-node-proxy --serviceaccount={}:{} (a powerful permission: it reaches every kubelet API), or open the kubelet port and drop --kubelet-node-proxy-fallback",
            facts.namespace, facts.service_account
        ),
    )
}

fn subject_for(nodes: &[String]) -> String {
    if nodes.len() == 1 {
        return format!("node/{}", nodes[0]);
    }
    format!("nodes {}", super::list(nodes, 3))
}

/// One finding for every node failing with the same class.
fn class_finding(class: &str, code: Option<u16>, nodes: &[&NodeHealth], facts: &Facts) -> Finding {
    let names: Vec<String> = nodes.iter().map(|n| n.node.clone()).collect();
    let first = nodes[0];
    let target = match (&first.address, first.port) {
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a.clone(),
        _ => "no address".to_owned(),
    };
    let err = first.last_error.clone().unwrap_or_default();
    let (severity, what, fix) = class_advice(class, code, first, facts);
    let since = first.last_success.as_deref().map_or_else(
        || "never scraped".to_owned(),
        |t| format!("last success {t}"),
    );
    Finding::new(
        severity,
        "kubelet",
        subject_for(&names),
        format!(
            "{what} ({class}{}, {target}, {} failure(s) in a row, {since}): {}",
            code.map(|c| format!(" {c}")).unwrap_or_default(),
            first.consecutive_failures,
            err.message
        ),
        fix,
    )
}

/// Cause and fix per error class of the scrape-health contract.
fn class_advice(
    class: &str,
    code: Option<u16>,
    node: &NodeHealth,
    facts: &Facts,
) -> (Severity, String, String) {
    let port = node.port.unwrap_or(10250);
    let addr = node.address.as_deref().unwrap_or("its address");
    let addr_type = node.address_type.as_deref().unwrap_or("the chosen type");
    let e = Severity::Error;
    let s = |x: &str| x.to_owned();
    match (class, code) {
        ("connect_timeout" | "connect_refused", _) => (
            e,
            s("kubelet port unreachable from metrics-server"),
            format!(
                "allow TCP {port} (the kubelet port from node.status.daemonEndpoints) from the server's pods to the nodes (security group, firewall, NetworkPolicy egress); or start the server with --kubelet-node-proxy-fallback to scrape these nodes through kube-apiserver's node proxy (needs get on nodes/proxy, a powerful permission: kubectl create clusterrole metrics-server-node-proxy --verb=get --resource=nodes/proxy && kubectl create clusterrolebinding metrics-server-node-proxy --clusterrole=metrics-server-node-proxy --serviceaccount={}:{}; costs kube-apiserver one proxied request per node per resolution)",
                facts.namespace, facts.service_account
            ),
        ),
        ("tls_name_mismatch", _) => (
            e,
            format!("kubelet serving certificate has no SAN for {addr} ({addr_type})"),
            s(
                "have the cluster CA sign kubelet serving certificates with the nodes' addresses: serverTLSBootstrap: true in the KubeletConfiguration, then approve the CSRs (kubectl get csr; kubectl certificate approve <csr>); or --kubelet-preferred-address-types listing an address type the certificate names (e.g. Hostname first); last resort --kubelet-insecure-tls",
            ),
        ),
        ("tls_unknown_authority", _) => (
            e,
            s("kubelet serving certificate signed by a CA the server does not trust"),
            s(
                "start the server with --kubelet-certificate-authority=<CA bundle that signs the kubelet serving certificates> (or serverTLSBootstrap: true so the cluster CA signs them); last resort --kubelet-insecure-tls",
            ),
        ),
        ("tls_expired", _) => (
            e,
            s("kubelet serving certificate expired or not yet valid"),
            s(
                "rotate it (KubeletConfiguration serverTLSBootstrap: true, rotateCertificates: true) and check the node's clock",
            ),
        ),
        ("tls_handshake", _) => (
            e,
            s("TLS handshake with the kubelet failed"),
            format!(
                "openssl s_client -connect {addr}:{port} </dev/null from the server's network to see what answers"
            ),
        ),
        _ => other_advice(class, code, node, facts),
    }
}

/// HTTP, address and data classes.
fn other_advice(
    class: &str,
    code: Option<u16>,
    node: &NodeHealth,
    facts: &Facts,
) -> (Severity, String, String) {
    let addr_type = node.address_type.as_deref().unwrap_or("the chosen type");
    let e = Severity::Error;
    let s = |x: &str| x.to_owned();
    match (class, code) {
        ("http_status", Some(401)) => (
            e,
            s("kubelet rejected the server's credentials"),
            s(
                "enable the kubelet's webhook authentication (authentication.webhook.enabled: true) and check the server's token or client certificate",
            ),
        ),
        ("http_status", Some(403)) => (
            e,
            s("kubelet denied the server: RBAC nodes/metrics"),
            super::access::grant_fix(Grant::ServerRole, &facts.namespace, &facts.service_account),
        ),
        ("http_status", _) => (
            e,
            s("kubelet answered an HTTP error"),
            format!(
                "check the kubelet on the node (journalctl -u kubelet); the path scraped is {}",
                node.url.as_deref().unwrap_or("/metrics/resource")
            ),
        ),
        ("dns", _) => (
            e,
            format!("the node's {addr_type} address does not resolve from the server"),
            s(
                "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname (an IP first), or fix DNS for node names",
            ),
        ),
        ("no_address" | "invalid_url", _) => (
            e,
            s("no usable address of the preferred types"),
            format!(
                "--kubelet-preferred-address-types listing types the node has: kubectl get node {} -o jsonpath='{{.status.addresses}}'",
                node.node
            ),
        ),
        ("timeout", _) => (
            e,
            s("kubelet accepted the connection but answered too slowly"),
            s(
                "check the kubelet's and container runtime's load on the node; raise --kubelet-request-timeout only if it is just slow",
            ),
        ),
        ("body_too_large", _) => (
            e,
            s("kubelet's answer is larger than the server accepts"),
            s("raise --kubelet-max-body-bytes (nodes with very many containers)"),
        ),
        ("decode", _) => (
            e,
            s("kubelet's /metrics/resource answer could not be parsed"),
            format!(
                "kubectl get --raw /api/v1/nodes/{}/proxy/metrics/resource | head",
                node.node
            ),
        ),
        ("incomplete", _) => (
            Severity::Warning,
            s("kubelet reported missing or zero usage"),
            s(
                "check the container runtime's stats (CRI/cAdvisor) on the node; a node with no running pods reports zero",
            ),
        ),
        _ => (
            e,
            s("scraping the kubelet failed"),
            node.last_error
                .as_ref()
                .and_then(|e| e.hint.clone())
                .unwrap_or_else(|| s("see the server's log")),
        ),
    }
}
