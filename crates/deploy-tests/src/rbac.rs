//! RBAC reduced to what it grants, so that two sets of manifests can be compared regardless of how
//! their rules are split, ordered or spelled.
//!
//! A grant is one atomic permission given to one subject: every rule is expanded into
//! (API group, resource, resource name, verb) or (non-resource URL, verb) tuples and attached, through
//! the bindings in the same manifests, to each bound subject at cluster or namespace scope. A binding
//! to a role the manifests do not define (a built-in such as `system:auth-delegator`) grants "that
//! role" by name. A ClusterRole labelled `rbac.authorization.k8s.io/aggregate-to-<role>` grants its
//! rules to the built-in role `<role>`, hence to every user of that role. Roles that nothing binds or
//! aggregates grant nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

const AGGREGATE_PREFIX: &str = "rbac.authorization.k8s.io/aggregate-to-";

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The atomic permissions of a role's `rules`.
pub fn permissions(rules: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().into_iter().flatten() {
        let verbs = strings(rule.get("verbs"));
        for url in strings(rule.get("nonResourceURLs")) {
            for verb in &verbs {
                out.insert(format!("{verb} {url}"));
            }
        }
        let mut names = strings(rule.get("resourceNames"));
        if names.is_empty() {
            names.push(String::new());
        }
        for group in strings(rule.get("apiGroups")) {
            for resource in strings(rule.get("resources")) {
                for name in &names {
                    for verb in &verbs {
                        let group = if group.is_empty() { "core" } else { &group };
                        let name = if name.is_empty() {
                            String::new()
                        } else {
                            format!(" named {name}")
                        };
                        out.insert(format!("{verb} {group}/{resource}{name}"));
                    }
                }
            }
        }
    }
    out
}

/// Every grant made by the RBAC objects among `objs` (other kinds are ignored).
pub fn grants(objs: &[Value]) -> BTreeSet<String> {
    // Roles by (kind, namespace, name): ClusterRoles have no namespace.
    let mut roles: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for obj in objs {
        if str_at(obj, "/apiVersion").split('/').next() != Some("rbac.authorization.k8s.io") {
            continue;
        }
        let kind = str_at(obj, "/kind");
        if kind != "Role" && kind != "ClusterRole" {
            continue;
        }
        let perms = permissions(obj.get("rules").unwrap_or(&Value::Null));
        let ns = if kind == "Role" {
            str_at(obj, "/metadata/namespace")
        } else {
            ""
        };
        if kind == "ClusterRole" {
            if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
                for (label, value) in labels {
                    if let Some(target) = label.strip_prefix(AGGREGATE_PREFIX)
                        && value.as_str() == Some("true")
                    {
                        for p in &perms {
                            out.insert(format!("users of ClusterRole {target} (aggregated): {p}"));
                        }
                    }
                }
            }
            if let Some(rule) = obj.get("aggregationRule") {
                out.insert(format!(
                    "ClusterRole {} aggregates {rule}",
                    str_at(obj, "/metadata/name")
                ));
            }
        }
        roles.insert(
            (
                kind.to_owned(),
                ns.to_owned(),
                str_at(obj, "/metadata/name").to_owned(),
            ),
            perms,
        );
    }
    for obj in objs {
        if str_at(obj, "/apiVersion").split('/').next() != Some("rbac.authorization.k8s.io") {
            continue;
        }
        let kind = str_at(obj, "/kind");
        let scope = match kind {
            "ClusterRoleBinding" => "cluster-wide".to_owned(),
            "RoleBinding" => format!("in namespace {}", str_at(obj, "/metadata/namespace")),
            _ => continue,
        };
        let ref_kind = str_at(obj, "/roleRef/kind");
        let ref_name = str_at(obj, "/roleRef/name");
        // A RoleBinding's Role is in the binding's namespace.
        let ref_ns = if ref_kind == "Role" {
            str_at(obj, "/metadata/namespace")
        } else {
            ""
        };
        let subjects: Vec<String> = obj
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|s| {
                let ns = str_at(s, "/namespace");
                let name = str_at(s, "/name");
                let who = if ns.is_empty() {
                    name.to_owned()
                } else {
                    format!("{ns}/{name}")
                };
                format!("{} {who}", str_at(s, "/kind"))
            })
            .collect();
        let role_key = (ref_kind.to_owned(), ref_ns.to_owned(), ref_name.to_owned());
        for subject in &subjects {
            match roles.get(&role_key) {
                Some(perms) => {
                    for p in perms {
                        out.insert(format!("{subject} {scope}: {p}"));
                    }
                }
                None => {
                    out.insert(format!(
                        "{subject} {scope}: everything {ref_kind} {ref_name} allows"
                    ));
                }
            }
        }
    }
    out
}

/// What `ours` grants that `theirs` does not (`extra`) and the reverse (`missing`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub missing: BTreeSet<String>,
    pub extra: BTreeSet<String>,
}

impl Comparison {
    pub fn is_equal(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

pub fn compare(ours: &[Value], theirs: &[Value]) -> Comparison {
    let ours = grants(ours);
    let theirs = grants(theirs);
    Comparison {
        missing: theirs.difference(&ours).cloned().collect(),
        extra: ours.difference(&theirs).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(kind: &str, name: &str, rules: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
               "metadata": {"name": name, "namespace": "kube-system"}, "rules": rules})
    }

    fn binding(kind: &str, name: &str, ref_kind: &str, ref_name: &str) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
               "metadata": {"name": name, "namespace": "kube-system"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref_name},
               "subjects": [{"kind": "ServiceAccount", "name": "ms", "namespace": "kube-system"}]})
    }

    #[test]
    fn rules_expand_to_atomic_permissions() {
        let p = permissions(&json!([
            {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["ms"], "verbs": ["patch"]},
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}
        ]));
        let expected: BTreeSet<String> = [
            "get core/pods",
            "list core/pods",
            "get core/nodes",
            "list core/nodes",
            "patch apps/deployments named ms",
            "get /metrics",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(p, expected);
    }

    #[test]
    fn the_same_grants_split_differently_compare_equal() {
        let a = vec![
            role(
                "ClusterRole",
                "r",
                json!([{"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list"]}]),
            ),
            binding("ClusterRoleBinding", "b", "ClusterRole", "r"),
        ];
        let b = vec![
            role(
                "ClusterRole",
                "other-name",
                json!([
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "get"]},
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
                ]),
            ),
            binding("ClusterRoleBinding", "b2", "ClusterRole", "other-name"),
        ];
        assert!(compare(&a, &b).is_equal());
    }

    #[test]
    fn more_or_less_is_reported_and_scope_matters() {
        let base = vec![
            role(
                "ClusterRole",
                "r",
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            ),
            binding("ClusterRoleBinding", "b", "ClusterRole", "r"),
            binding(
                "RoleBinding",
                "auth",
                "Role",
                "extension-apiserver-authentication-reader",
            ),
        ];
        let mut more = base.clone();
        more[0] = role(
            "ClusterRole",
            "r",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch"]}]),
        );
        let c = compare(&more, &base);
        assert!(c.missing.is_empty());
        assert_eq!(
            c.extra.into_iter().collect::<Vec<_>>(),
            ["ServiceAccount kube-system/ms cluster-wide: watch core/pods"]
        );

        // The same role bound in a namespace instead of cluster-wide is less.
        let mut narrower = base.clone();
        narrower[1] = binding("RoleBinding", "b", "ClusterRole", "r");
        let c = compare(&narrower, &base);
        assert_eq!(
            c.missing.into_iter().collect::<Vec<_>>(),
            ["ServiceAccount kube-system/ms cluster-wide: get core/pods"]
        );
        assert_eq!(
            c.extra.into_iter().collect::<Vec<_>>(),
            ["ServiceAccount kube-system/ms in namespace kube-system: get core/pods"]
        );

        // Built-in roles are compared by name.
        let g = grants(&base);
        assert!(g.contains(
            "ServiceAccount kube-system/ms in namespace kube-system: everything Role extension-apiserver-authentication-reader allows"
        ));
    }

    #[test]
    fn aggregation_labels_grant_to_the_target_role() {
        let mut reader = role(
            "ClusterRole",
            "reader",
            json!([{"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["get"]}]),
        );
        reader["metadata"]["labels"] = json!({
            "rbac.authorization.k8s.io/aggregate-to-view": "true",
            "rbac.authorization.k8s.io/aggregate-to-edit": "false",
            "k8s-app": "metrics-server"
        });
        let g: Vec<String> = grants(&[reader]).into_iter().collect();
        assert_eq!(
            g,
            ["users of ClusterRole view (aggregated): get metrics.k8s.io/pods"]
        );
    }

    #[test]
    fn unbound_roles_and_other_kinds_grant_nothing() {
        let objs = vec![
            role(
                "ClusterRole",
                "unused",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            ),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ms"}}),
        ];
        assert!(grants(&objs).is_empty());
    }
}
