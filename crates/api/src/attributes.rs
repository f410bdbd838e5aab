//! Authorization attributes of a request (spec E.9), a port of
//! `RequestInfoFactory.NewRequestInfo` from k8s.io/apiserver.
//!
//! The auth layer calls [`request_attributes`] before the router runs and
//! sends the result to a SubjectAccessReview.

use metrics_server_core::{FieldSelector, LabelSelector};

use crate::query::{Query, unescape_path};

/// What a request is about, for authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attributes {
    /// A request under `/apis/<group>/<version>/...` or `/api/<version>/...`.
    Resource(ResourceAttributes),
    /// Anything else: a path and an HTTP verb.
    NonResource(NonResourceAttributes),
}

/// `authorization.k8s.io/v1 ResourceAttributes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection` (or empty for unknown methods).
    pub verb: String,
    /// API group (`metrics.k8s.io`; empty for the core group).
    pub group: String,
    /// API version (`v1beta1`).
    pub version: String,
    /// Resource (`nodes`, `pods`).
    pub resource: String,
    /// Subresource, if any.
    pub subresource: String,
    /// Namespace from the path; empty for cluster-scoped requests.
    pub namespace: String,
    /// Object name from the path, or from a `metadata.name=` field selector
    /// on a list.
    pub name: String,
    /// Raw `fieldSelector` of list/watch requests (`AuthorizeWithSelectors`).
    pub field_selector: Option<String>,
    /// Raw `labelSelector` of list/watch requests.
    pub label_selector: Option<String>,
}

/// `authorization.k8s.io/v1 NonResourceAttributes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NonResourceAttributes {
    /// The URL path.
    pub path: String,
    /// The HTTP method in lowercase (`get`, `post`, `head`, ...).
    pub verb: String,
}

impl Attributes {
    /// A non-resource request from an HTTP method and path (what any path
    /// outside the API resources is authorized as).
    pub fn non_resource(method: &http::Method, path: &str) -> Self {
        Self::NonResource(NonResourceAttributes {
            path: path.to_owned(),
            verb: method.as_str().to_ascii_lowercase(),
        })
    }

    /// The verb, whichever kind of request this is.
    pub fn verb(&self) -> &str {
        match self {
            Self::Resource(r) => &r.verb,
            Self::NonResource(n) => &n.verb,
        }
    }
}

fn split_path(path: &str) -> Vec<&str> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

/// `watch` as `Convert_Slice_string_To_bool`: absent, `0` or `false`
/// (any case) is false; anything else, even empty, is true.
pub(crate) fn watch_requested(query: &Query) -> bool {
    query
        .get("watch")
        .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Parses a field selector like `fields.ParseSelector` alone (no field
/// validation): unknown fields are accepted here. One linear pass.
fn parse_fields_unvalidated(s: &str) -> Option<FieldSelector> {
    FieldSelector::parse_syntax(s).ok()
}

/// True when `metainternalversion.ListOptions` would decode from `query`.
fn list_options_decode(query: &Query) -> Option<Option<FieldSelector>> {
    if let Some(l) = query.get("labelSelector")
        && !LabelSelector::is_valid(l)
    {
        return None;
    }
    for key in ["limit", "timeoutSeconds"] {
        if let Some(v) = query.get(key) {
            v.parse::<i64>().ok()?;
        }
    }
    match query.get("fieldSelector") {
        Some(f) => Some(Some(parse_fields_unvalidated(f)?)),
        None => Some(None),
    }
}

/// `content.IsPathSegmentName(name)` is empty.
fn is_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// Derives the authorization attributes of a request.
///
/// `path` is the raw request path (percent-decoded here like Go's
/// `URL.Path`); `query` the raw query string.
pub fn request_attributes(method: &str, path: &str, query: &str) -> Attributes {
    let decoded = unescape_path(path).unwrap_or_else(|| path.to_owned());
    let query = Query::parse(query);
    let non_resource = || {
        Attributes::NonResource(NonResourceAttributes {
            path: decoded.clone(),
            verb: method.to_ascii_lowercase(),
        })
    };
    let mut parts = split_path(&decoded);
    if parts.len() < 3 {
        return non_resource();
    }
    let prefix = parts[0];
    if prefix != "api" && prefix != "apis" {
        return non_resource();
    }
    parts.remove(0);
    let mut info = ResourceAttributes::default();
    if prefix == "apis" {
        if parts.len() < 3 {
            return non_resource();
        }
        info.group = parts.remove(0).to_owned();
    }
    info.version = parts.remove(0).to_owned();

    let mut verb_via_path = false;
    if parts[0] == "proxy" || parts[0] == "watch" {
        if parts.len() < 2 {
            // Go returns an error here, which the filter turns into a 500;
            // authorize it as the special verb with no resource.
            info.verb = parts[0].to_owned();
            return Attributes::Resource(info);
        }
        info.verb = parts.remove(0).to_owned();
        verb_via_path = true;
    } else {
        info.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_owned();
    }

    if parts[0] == "namespaces" && parts.len() > 1 {
        info.namespace = parts[1].to_owned();
        if parts.len() > 2 && parts[2] != "status" && parts[2] != "finalize" {
            parts.drain(..2);
        }
    }

    if parts.len() >= 3 && info.verb != "proxy" {
        info.subresource = parts[2].to_owned();
    }
    if parts.len() >= 2 {
        info.name = parts[1].to_owned();
    }
    if !parts.is_empty() {
        info.resource = parts[0].to_owned();
    }

    if info.name.is_empty() && info.verb == "get" {
        let decoded_opts = list_options_decode(&query);
        info.verb = if watch_requested(&query) {
            "watch"
        } else {
            "list"
        }
        .to_owned();
        if let Some(Some(fields)) = decoded_opts
            && let Some(name) = fields.requires_exact_match("metadata.name")
            && is_path_segment_name(name)
        {
            info.name = name.to_owned();
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".to_owned();
    }
    if !verb_via_path && matches!(info.verb.as_str(), "list" | "watch" | "deletecollection") {
        info.field_selector = query.get("fieldSelector").map(str::to_owned);
        info.label_selector = query.get("labelSelector").map(str::to_owned);
    }
    Attributes::Resource(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(method: &str, path: &str, query: &str) -> ResourceAttributes {
        match request_attributes(method, path, query) {
            Attributes::Resource(r) => r,
            Attributes::NonResource(n) => panic!("expected a resource request, got {n:?}"),
        }
    }

    #[test]
    fn listing_pods_in_a_namespace_is_list_with_namespace() {
        let r = res(
            "GET",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
            "labelSelector=app%3Dx",
        );
        assert_eq!(r.verb, "list");
        assert_eq!(r.group, "metrics.k8s.io");
        assert_eq!(r.version, "v1beta1");
        assert_eq!(r.resource, "pods");
        assert_eq!(r.namespace, "default");
        assert_eq!(r.name, "");
        assert_eq!(r.label_selector.as_deref(), Some("app=x"));
    }

    #[test]
    fn getting_a_node_is_get_with_name() {
        let r = res("GET", "/apis/metrics.k8s.io/v1beta1/nodes/n1", "");
        assert_eq!(
            (r.verb.as_str(), r.resource.as_str(), r.name.as_str()),
            ("get", "nodes", "n1")
        );
        assert_eq!(r.namespace, "");
        assert_eq!(r.field_selector, None);
    }

    #[test]
    fn watch_query_makes_the_verb_watch() {
        assert_eq!(
            res("GET", "/apis/metrics.k8s.io/v1beta1/pods", "watch=true").verb,
            "watch"
        );
        assert_eq!(
            res("GET", "/apis/metrics.k8s.io/v1beta1/pods", "watch=1").verb,
            "watch"
        );
        assert_eq!(
            res("GET", "/apis/metrics.k8s.io/v1beta1/pods", "watch=false").verb,
            "list"
        );
        assert_eq!(
            res("GET", "/apis/metrics.k8s.io/v1beta1/pods", "watch=0").verb,
            "list"
        );
    }

    #[test]
    fn name_field_selector_names_the_object() {
        let r = res(
            "GET",
            "/apis/metrics.k8s.io/v1beta1/nodes",
            "fieldSelector=metadata.name%3Dn2",
        );
        assert_eq!((r.verb.as_str(), r.name.as_str()), ("list", "n2"));
        let r = res(
            "GET",
            "/apis/metrics.k8s.io/v1beta1/pods",
            "fieldSelector=spec.nodeName%3Dx,metadata.name%3Dp",
        );
        assert_eq!(r.name, "p");
    }

    #[test]
    fn write_methods_map_to_write_verbs() {
        assert_eq!(
            res("POST", "/apis/metrics.k8s.io/v1beta1/nodes", "").verb,
            "create"
        );
        assert_eq!(
            res("DELETE", "/apis/metrics.k8s.io/v1beta1/nodes", "").verb,
            "deletecollection"
        );
        assert_eq!(
            res("DELETE", "/apis/metrics.k8s.io/v1beta1/nodes/a", "").verb,
            "delete"
        );
    }

    #[test]
    fn discovery_and_health_paths_are_non_resource() {
        for path in [
            "/apis",
            "/apis/metrics.k8s.io",
            "/apis/metrics.k8s.io/v1beta1",
            "/readyz",
            "/metrics",
            "/",
        ] {
            assert_eq!(
                request_attributes("GET", path, ""),
                Attributes::NonResource(NonResourceAttributes {
                    path: path.to_owned(),
                    verb: "get".to_owned()
                }),
                "{path}"
            );
        }
        assert_eq!(request_attributes("HEAD", "/metrics", "").verb(), "head");
    }
}
