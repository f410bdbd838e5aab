//! The server's own RBAC (SubjectAccessReviews for its ServiceAccount) and the
//! `extension-apiserver-authentication` ConfigMap kube-apiserver publishes.

use std::collections::BTreeMap;

use crate::facts::{Access, AuthConfigFacts, Facts, Grant, Lookup};
use crate::finding::{Finding, Severity};

pub(super) fn analyze_rbac(facts: &Facts) -> Vec<Finding> {
    let ns = &facts.namespace;
    let sa = &facts.service_account;
    let subject = format!("ServiceAccount/{ns}/{sa}");
    let mut out = Vec::new();
    if let Lookup::Found(false) = facts.service_account_exists {
        out.push(Finding::new(
            Severity::Warning,
            "rbac",
            subject.clone(),
            "the ServiceAccount does not exist (the rbac findings are about the permissions it would have)",
            format!(
                "kubectl -n {ns} create serviceaccount {sa}, or pass --service-account/--namespace naming the one the server runs as"
            ),
        ));
    }
    let mut denied: BTreeMap<Grant, Vec<String>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for check in &facts.access {
        match &check.result {
            Access::Allowed => {}
            Access::Denied(_) => denied
                .entry(check.permission.grant)
                .or_default()
                .push(check.permission.describe()),
            Access::Unknown(e) => unknown.push(format!("{}: {e}", check.permission.describe())),
        }
    }
    for (grant, perms) in &denied {
        out.push(Finding::new(
            Severity::Error,
            "rbac",
            subject.clone(),
            format!("may not {} ({})", perms.join(", "), grant_effect(*grant)),
            grant_fix(*grant, ns, sa),
        ));
    }
    if !unknown.is_empty() {
        out.push(Finding::new(
            Severity::Warning,
            "rbac",
            subject.clone(),
            format!("could not check: {}", super::list(&unknown, 2)),
            "run doctor with credentials that may create subjectaccessreviews.authorization.k8s.io",
        ));
    }
    if denied.is_empty() && unknown.is_empty() && !facts.access.is_empty() {
        out.push(Finding::new(
            Severity::Info,
            "rbac",
            subject,
            format!(
                "has all {} permissions the server needs",
                facts.access.len()
            ),
            "",
        ));
    }
    out
}

fn grant_effect(grant: Grant) -> &'static str {
    match grant {
        Grant::ServerRole => {
            "without them the server cannot watch nodes and pods or read kubelets: \"Forbidden\" in its log, no metrics"
        }
        Grant::AuthDelegator => {
            "without them the server cannot check who calls it: every request through kube-apiserver fails"
        }
        Grant::AuthReader => {
            "without it the server cannot read the front-proxy CA and rejects kube-apiserver's requests"
        }
    }
}

/// The binding that grants a group of permissions (deploy/base/rbac.yaml creates all three).
pub(crate) fn grant_fix(grant: Grant, ns: &str, sa: &str) -> String {
    match grant {
        Grant::ServerRole => format!(
            "kubectl create clusterrolebinding system:metrics-server --clusterrole=system:metrics-server --serviceaccount={ns}:{sa} (the ClusterRole comes with deploy/components.yaml)"
        ),
        Grant::AuthDelegator => format!(
            "kubectl create clusterrolebinding metrics-server:system:auth-delegator --clusterrole=system:auth-delegator --serviceaccount={ns}:{sa}"
        ),
        Grant::AuthReader => format!(
            "kubectl -n kube-system create rolebinding metrics-server-auth-reader --role=extension-apiserver-authentication-reader --serviceaccount={ns}:{sa}"
        ),
    }
}

const CM: &str = "ConfigMap/kube-system/extension-apiserver-authentication";

pub(super) fn analyze_auth_config(facts: &Facts) -> Vec<Finding> {
    match &facts.auth_config {
        Lookup::Found(cfg) => auth_config_found(cfg),
        Lookup::Missing(_) => vec![Finding::new(
            Severity::Error,
            "authentication",
            CM,
            "missing: kube-apiserver publishes it when started with --client-ca-file and --requestheader-client-ca-file; without it the server cannot authenticate kube-apiserver's proxied requests",
            "start kube-apiserver with --requestheader-client-ca-file, --proxy-client-cert-file, --proxy-client-key-file, --requestheader-allowed-names and --requestheader-username-headers=X-Remote-User (the aggregation layer settings)",
        )],
        Lookup::Failed(e) => vec![Finding::new(
            Severity::Warning,
            "authentication",
            CM,
            format!("could not read it: {e}"),
            "run doctor with credentials that may get configmaps in kube-system",
        )],
        Lookup::NotChecked => Vec::new(),
    }
}

fn auth_config_found(cfg: &AuthConfigFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    match &cfg.requestheader_ca_subjects {
        None => out.push(Finding::new(
            Severity::Error,
            "authentication",
            CM,
            "no requestheader-client-ca-file: kube-apiserver has no front-proxy CA, so the server cannot tell its proxied requests from anonymous ones",
            "start kube-apiserver with --requestheader-client-ca-file=<front-proxy CA> and --proxy-client-cert-file/--proxy-client-key-file signed by it",
        )),
        Some(subjects) if subjects.is_empty() => out.push(Finding::new(
            Severity::Error,
            "authentication",
            CM,
            "requestheader-client-ca-file holds no readable certificate",
            "check kube-apiserver's --requestheader-client-ca-file; kube-apiserver rewrites this ConfigMap from it",
        )),
        Some(subjects) => {
            let names = if cfg.requestheader_allowed_names.is_empty() {
                "any client name".to_owned()
            } else {
                cfg.requestheader_allowed_names.join(", ")
            };
            out.push(Finding::new(
                Severity::Info,
                "authentication",
                CM,
                format!(
                    "front-proxy CA(s): {}; allowed names: {names}",
                    subjects.join(" | ")
                ),
                "",
            ));
        }
    }
    if !cfg.client_ca_present {
        out.push(Finding::new(
            Severity::Warning,
            "authentication",
            CM,
            "no client-ca-file: clients presenting certificates (Prometheus, kubectl with a client certificate) cannot authenticate directly to the server",
            "start kube-apiserver with --client-ca-file",
        ));
    }
    out
}
