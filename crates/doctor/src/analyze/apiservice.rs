//! The route from kube-apiserver's aggregator to the server: APIServices of `metrics.k8s.io`, their
//! conditions, the Service they name, its endpoints and the pods behind it.

use crate::facts::{ApiServiceFacts, Facts, Lookup, ServiceFacts, ServiceRef, condition};
use crate::finding::{Finding, Severity};

const MANIFESTS: &str =
    "kubectl apply -f deploy/components.yaml (metrics-server-rs's install manifest)";

pub(super) fn analyze(facts: &Facts) -> Vec<Finding> {
    let services = match &facts.api_services {
        Lookup::Found(s) => s,
        Lookup::Failed(e) | Lookup::Missing(e) => {
            return vec![Finding::new(
                Severity::Warning,
                "apiservice",
                "apiservices",
                format!("could not list APIServices: {e}"),
                "run doctor with credentials that may list apiservices.apiregistration.k8s.io",
            )];
        }
        Lookup::NotChecked => return Vec::new(),
    };
    if services.is_empty() {
        return vec![Finding::new(
            Severity::Error,
            "apiservice",
            "metrics.k8s.io",
            "no APIService serves group metrics.k8s.io: `kubectl top` answers \"Metrics API not available\" and HPAs on cpu/memory show <unknown>",
            MANIFESTS,
        )];
    }
    let mut out = Vec::new();
    for api in services {
        out.push(availability(api));
        if let Some(svc_ref) = &api.service {
            out.extend(backend(api, svc_ref));
        }
    }
    out
}

fn subject(api: &ApiServiceFacts) -> String {
    format!("APIService/{}", api.name)
}

/// The Available condition, explained.
fn availability(api: &ApiServiceFacts) -> Finding {
    let Some(svc) = &api.service else {
        return Finding::new(
            Severity::Warning,
            "apiservice",
            subject(api),
            "served by kube-apiserver itself (no spec.service): no metrics-server behind it",
            format!("{MANIFESTS}, which points the APIService at the metrics-server Service"),
        );
    };
    let Some(cond) = condition(&api.conditions, "Available") else {
        return Finding::new(
            Severity::Warning,
            "apiservice",
            subject(api),
            "no Available condition yet (just created, or kube-apiserver's aggregator is not running)",
            format!("kubectl get apiservice {} -o yaml", api.name),
        );
    };
    if cond.status == "True" {
        return Finding::new(
            Severity::Info,
            "apiservice",
            subject(api),
            format!(
                "Available, served by Service {}/{} port {}",
                svc.namespace, svc.name, svc.port
            ),
            "",
        );
    }
    let (why, fix) = unavailable_cause(api, svc, &cond.reason, &cond.message);
    Finding::new(
        Severity::Error,
        "apiservice",
        subject(api),
        format!("not Available ({}): {why} [{}]", cond.reason, cond.message),
        fix,
    )
}

/// What an unavailable APIService's reason and message mean, and the fix.
fn unavailable_cause(
    api: &ApiServiceFacts,
    svc: &ServiceRef,
    reason: &str,
    message: &str,
) -> (String, String) {
    let ns = &svc.namespace;
    let name = &svc.name;
    match reason {
        "ServiceNotFound" => (
            format!("Service {ns}/{name} does not exist"),
            format!("create it: {MANIFESTS}, or kubectl -n {ns} get svc {name}"),
        ),
        "ServiceAccessError" | "EndpointsAccessError" => (
            format!("kube-apiserver could not read Service {ns}/{name} or its endpoints"),
            "check kube-apiserver's log for the aggregator's errors".to_owned(),
        ),
        "MissingEndpoints" | "EndpointsNotFound" => (
            format!(
                "Service {ns}/{name} has no ready endpoints for port {}",
                svc.port
            ),
            format!(
                "see the service/pods findings; kubectl -n {ns} get endpointslices -l kubernetes.io/service-name={name}"
            ),
        ),
        "FailedDiscoveryCheck" => discovery_cause(api, svc, message),
        _ => (
            "kube-apiserver cannot use it".to_owned(),
            format!("kubectl describe apiservice {}", api.name),
        ),
    }
}

/// `https://host:port` the aggregator called, from its message.
fn called_address(message: &str) -> Option<&str> {
    let start = message.find("https://")? + "https://".len();
    let rest = &message[start..];
    let end = rest.find(['/', '"', ' ', ':']).unwrap_or(rest.len());
    let host_end = rest[end..].strip_prefix(':').map_or(end, |after| {
        end + 1
            + after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len())
    });
    Some(&rest[..host_end])
}

/// A failed discovery check: timeout (hung or dropped), refused (wrong port), 401/403
/// (front-proxy trust), certificate, DNS.
fn discovery_cause(api: &ApiServiceFacts, svc: &ServiceRef, message: &str) -> (String, String) {
    let m = message.to_ascii_lowercase();
    let at = called_address(message).unwrap_or("the server");
    let ns = &svc.namespace;
    let patch = format!(
        "kubectl patch apiservice {} --type=merge -p '{{\"spec\":{{\"service\":{{\"port\":<the Service port that reaches the server>}}}}}}'",
        api.name
    );
    if m.contains("deadline exceeded") || m.contains("timeout") || m.contains("timed out") {
        return (
            format!(
                "metrics-server at {at} did not answer in time: the process is hung or overloaded, or a firewall/NetworkPolicy drops traffic from kube-apiserver to it"
            ),
            format!(
                "kubectl -n {ns} logs -l k8s-app=metrics-server --tail=50; restart it (kubectl -n {ns} rollout restart deployment/metrics-server); allow ingress from kube-apiserver to the server's port (NetworkPolicy, security group)"
            ),
        );
    }
    if m.contains("connection refused") {
        return (
            format!(
                "nothing listens at {at}: the APIService's port ({}) does not reach the server's --secure-port, or the server is not running",
                svc.port
            ),
            format!(
                "point spec.service.port at the Service port whose targetPort is the server's --secure-port: {patch}"
            ),
        );
    }
    if m.contains(": 401") || m.contains("unauthorized") {
        return (front_proxy_cause(401), front_proxy_fix());
    }
    if m.contains(": 403") || m.contains("forbidden") {
        return (front_proxy_cause(403), front_proxy_fix());
    }
    if m.contains("x509") || m.contains("certificate") {
        return (
            "kube-apiserver does not trust the server's serving certificate".to_owned(),
            format!(
                "set spec.caBundle of APIService {} to the CA of the server's --tls-cert-file (or insecureSkipTLSVerify: true for a self-signed serving certificate)",
                api.name
            ),
        );
    }
    if m.contains("no such host") {
        return (
            format!("{at} does not resolve"),
            format!("kubectl -n {ns} get svc {} -o yaml", svc.name),
        );
    }
    (
        "kube-apiserver's discovery request to the server failed".to_owned(),
        format!(
            "kubectl describe apiservice {}; kubectl -n {ns} logs -l k8s-app=metrics-server",
            api.name
        ),
    )
}

fn front_proxy_cause(code: u16) -> String {
    format!(
        "the server answered {code} to kube-apiserver's proxied request: it did not accept kube-apiserver's front-proxy client certificate (front-proxy CA mismatch: the CA the server trusts for request-header authentication did not sign kube-apiserver's --proxy-client-cert-file, or its CN is not in requestheader-allowed-names), so the request counted as anonymous"
    )
}

fn front_proxy_fix() -> String {
    "make the server trust the CA that kube-apiserver publishes in kube-system/extension-apiserver-authentication (remove a --requestheader-client-ca-file naming another CA and restart the server); compare: kubectl -n kube-system get configmap extension-apiserver-authentication -o jsonpath='{.data.requestheader-client-ca-file}' | openssl x509 -noout -subject, and openssl x509 -noout -issuer -subject -in <kube-apiserver's --proxy-client-cert-file>".to_owned()
}

/// The Service, its port, its endpoints and pods.
fn backend(api: &ApiServiceFacts, svc_ref: &ServiceRef) -> Vec<Finding> {
    let subject = format!("Service/{}/{}", svc_ref.namespace, svc_ref.name);
    let svc = match &api.backend {
        Lookup::Found(svc) => svc,
        Lookup::Missing(_) => {
            return vec![Finding::new(
                Severity::Error,
                "service",
                subject,
                format!(
                    "APIService {} names this Service, which does not exist",
                    api.name
                ),
                MANIFESTS,
            )];
        }
        Lookup::Failed(e) => {
            return vec![Finding::new(
                Severity::Warning,
                "service",
                subject,
                format!("could not read the Service: {e}"),
                "run doctor with credentials that may read services, endpointslices and pods",
            )];
        }
        Lookup::NotChecked => return Vec::new(),
    };
    if svc.type_ == "ExternalName" {
        return vec![Finding::new(
            Severity::Info,
            "service",
            subject,
            format!(
                "ExternalName to {} (kube-apiserver dials it at port {}; no endpoints or pods to check)",
                svc.external_name.as_deref().unwrap_or("?"),
                svc_ref.port
            ),
            "",
        )];
    }
    let mut out = Vec::new();
    if let Some(f) = port_mismatch(api, svc_ref, svc, &subject) {
        out.push(f);
    }
    out.extend(endpoints(svc_ref, svc, &subject));
    out
}

/// `spec.service.port` must be one of the Service's ports (kube-apiserver looks it up by number).
fn port_mismatch(
    api: &ApiServiceFacts,
    svc_ref: &ServiceRef,
    svc: &ServiceFacts,
    subject: &str,
) -> Option<Finding> {
    if svc.ports.iter().any(|p| p.port == svc_ref.port) {
        return None;
    }
    let ports: Vec<String> = svc.ports.iter().map(|p| p.port.to_string()).collect();
    let right = svc.ports.first().map_or(443, |p| p.port);
    Some(Finding::new(
        Severity::Error,
        "service",
        subject,
        format!(
            "APIService {} points at port {} but the Service exposes only [{}]",
            api.name,
            svc_ref.port,
            ports.join(", ")
        ),
        format!(
            "kubectl patch apiservice {} --type=merge -p '{{\"spec\":{{\"service\":{{\"port\":{right}}}}}}}'",
            api.name
        ),
    ))
}

/// Ready endpoints, and why there are none.
fn endpoints(svc_ref: &ServiceRef, svc: &ServiceFacts, subject: &str) -> Vec<Finding> {
    let ns = &svc_ref.namespace;
    let ready = match &svc.endpoints {
        Lookup::Found(eps) => eps.iter().filter(|e| e.ready).count(),
        Lookup::Failed(e) => {
            return vec![Finding::new(
                Severity::Warning,
                "endpoints",
                subject,
                format!("could not read the Service's EndpointSlices: {e}"),
                "",
            )];
        }
        _ => return Vec::new(),
    };
    let pods = svc.pods.found().map_or(&[][..], Vec::as_slice);
    let not_ready: Vec<String> = pods
        .iter()
        .filter(|p| !p.ready)
        .map(|p| {
            format!(
                "{} ({}{})",
                p.name,
                p.phase,
                p.not_ready_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let selector = svc.selector_string();
    if ready > 0 {
        let mut out = vec![Finding::new(
            Severity::Info,
            "endpoints",
            subject,
            format!("{ready} ready endpoint(s)"),
            "",
        )];
        if !not_ready.is_empty() {
            out.push(Finding::new(
                Severity::Warning,
                "pods",
                subject,
                format!("pods not ready: {}", super::list(&not_ready, 3)),
                format!("kubectl -n {ns} describe pods -l {selector}"),
            ));
        }
        return out;
    }
    let (why, fix) = no_endpoints_cause(svc_ref, svc, pods, &not_ready);
    vec![Finding::new(
        Severity::Error,
        "endpoints",
        subject,
        format!("no ready endpoints: {why}"),
        fix,
    )]
}

/// Why a Service has no ready endpoints, and the fix.
fn no_endpoints_cause(
    svc_ref: &ServiceRef,
    svc: &ServiceFacts,
    pods: &[crate::facts::PodFacts],
    not_ready: &[String],
) -> (String, String) {
    let ns = &svc_ref.namespace;
    let selector = svc.selector_string();
    if selector.is_empty() {
        (
            "the Service has no selector and nothing maintains its endpoints".to_owned(),
            format!(
                "give it the server pods' labels: kubectl -n {ns} patch svc {} -p '{{\"spec\":{{\"selector\":{{\"k8s-app\":\"metrics-server\"}}}}}}'",
                svc_ref.name
            ),
        )
    } else if pods.is_empty() {
        (
            format!("its selector {selector} matches no pod"),
            format!(
                "start the server (kubectl -n {ns} get deploy metrics-server) or make the selector match its pods' labels (kubectl -n {ns} get pods --show-labels)"
            ),
        )
    } else if not_ready.is_empty() {
        ready_pods_without_endpoints(svc_ref, svc, pods)
    } else {
        (
            format!("no matching pod is ready: {}", super::list(not_ready, 3)),
            format!(
                "kubectl -n {ns} describe pods -l {selector}; kubectl -n {ns} logs -l {selector}"
            ),
        )
    }
}

/// Ready pods but no endpoints: a named targetPort that no container declares, or a lagging
/// endpoint controller.
fn ready_pods_without_endpoints(
    svc_ref: &ServiceRef,
    svc: &ServiceFacts,
    pods: &[crate::facts::PodFacts],
) -> (String, String) {
    let ns = &svc_ref.namespace;
    let declared: Vec<&str> = pods
        .iter()
        .flat_map(|p| p.container_ports.iter())
        .filter_map(|(name, _)| name.as_deref())
        .collect();
    let unnamed = svc.ports.iter().find_map(|p| {
        let target = p.target_port.as_deref()?;
        let named = target.parse::<i32>().is_err();
        (named && !declared.contains(&target)).then_some(target)
    });
    match unnamed {
        Some(target) => (
            format!(
                "the Service's targetPort {target:?} names no container port of its ready pods (they declare [{}])",
                declared.join(", ")
            ),
            format!(
                "name the server's container port {target:?} (ports: [{{name: {target}, containerPort: <its --secure-port>}}]) or set the Service's targetPort to the port number: kubectl -n {ns} edit svc {}",
                svc_ref.name
            ),
        ),
        None => (
            "its pods are ready but no EndpointSlice lists them (the endpoint controller lags or is not running)".to_owned(),
            format!(
                "kubectl -n {ns} get endpointslices -l kubernetes.io/service-name={} -o yaml; check kube-controller-manager",
                svc_ref.name
            ),
        ),
    }
}
