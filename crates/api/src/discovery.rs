//! Discovery documents (spec E.2, E.10): legacy `APIGroupList`, `APIGroup`,
//! `APIResourceList`, and the aggregated `apidiscovery.k8s.io/v2`
//! `APIGroupDiscoveryList` with its ETag.

use crate::json::JsonWriter;

pub(crate) const GROUP: &str = "metrics.k8s.io";
pub(crate) const VERSION: &str = "v1beta1";
pub(crate) const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

/// The two resources: (name, namespaced, kind).
const RESOURCES: [(&str, bool, &str); 2] = [
    ("nodes", false, "NodeMetrics"),
    ("pods", true, "PodMetrics"),
];

/// Precomputed discovery state.
#[derive(Debug)]
pub(crate) struct Discovery {
    server_address: Option<String>,
    /// Quoted ETag of the aggregated document.
    etag: String,
}

impl Discovery {
    pub(crate) fn new(server_address: Option<&str>) -> Self {
        // Go hashes json.Marshal of the list *before* kind/apiVersion are
        // set: `{"metadata":{},"items":[...]}`.
        let mut untyped = Vec::new();
        write_aggregated(&mut JsonWriter::new(&mut untyped, false), false);
        let digest = ring::digest::digest(&ring::digest::SHA512, &untyped);
        let mut hex = String::with_capacity(130);
        hex.push('"');
        for b in digest.as_ref() {
            hex.push_str(&format!("{b:02X}"));
        }
        hex.push('"');
        Self {
            server_address: server_address.map(str::to_owned),
            etag: hex,
        }
    }

    /// The quoted ETag of the aggregated document.
    pub(crate) fn etag(&self) -> &str {
        &self.etag
    }

    /// `GET /apis` (legacy).
    pub(crate) fn write_group_list(&self, w: &mut JsonWriter<'_>) {
        w.begin_object();
        // The real v0.9.0 binary sends no apiVersion here (only `kind`); the differential test
        // against it pins this.
        w.field_str("kind", "APIGroupList");
        w.key("groups");
        w.begin_array();
        write_group_body(w, self.server_address.as_deref(), false);
        w.end_array();
        w.end_object();
    }

    /// `GET /apis` with the aggregated-discovery media type.
    pub(crate) fn write_aggregated(&self, w: &mut JsonWriter<'_>) {
        write_aggregated(w, true);
    }
}

fn write_group_version(w: &mut JsonWriter<'_>) {
    w.begin_object();
    w.field_str("groupVersion", GROUP_VERSION);
    w.field_str("version", VERSION);
    w.end_object();
}

fn write_group_body(w: &mut JsonWriter<'_>, server_address: Option<&str>, type_meta: bool) {
    w.begin_object();
    if type_meta {
        w.field_str("kind", "APIGroup");
        w.field_str("apiVersion", "v1");
    }
    w.field_str("name", GROUP);
    w.key("versions");
    w.begin_array();
    write_group_version(w);
    w.end_array();
    w.key("preferredVersion");
    write_group_version(w);
    if let Some(addr) = server_address {
        w.key("serverAddressByClientCIDRs");
        w.begin_array();
        w.begin_object();
        w.field_str("clientCIDR", "0.0.0.0/0");
        w.field_str("serverAddress", addr);
        w.end_object();
        w.end_array();
    }
    w.end_object();
}

/// `GET /apis/metrics.k8s.io`.
pub(crate) fn write_group(w: &mut JsonWriter<'_>) {
    write_group_body(w, None, true);
}

/// `GET /apis/metrics.k8s.io/v1beta1`.
pub(crate) fn write_resource_list(w: &mut JsonWriter<'_>) {
    w.begin_object();
    w.field_str("kind", "APIResourceList");
    w.field_str("apiVersion", "v1");
    w.field_str("groupVersion", GROUP_VERSION);
    w.key("resources");
    w.begin_array();
    for (name, namespaced, kind) in RESOURCES {
        w.begin_object();
        w.field_str("name", name);
        w.field_str("singularName", "");
        w.key("namespaced");
        w.bool(namespaced);
        w.field_str("kind", kind);
        w.field_str_array("verbs", &["get", "list"]);
        w.end_object();
    }
    w.end_array();
    w.end_object();
}

fn write_aggregated(w: &mut JsonWriter<'_>, type_meta: bool) {
    w.begin_object();
    if type_meta {
        w.field_str("kind", "APIGroupDiscoveryList");
        w.field_str("apiVersion", "apidiscovery.k8s.io/v2");
    }
    w.field_empty_object("metadata");
    w.key("items");
    w.begin_array();
    w.begin_object();
    w.key("metadata");
    w.begin_object();
    w.field_str("name", GROUP);
    w.end_object();
    w.key("versions");
    w.begin_array();
    w.begin_object();
    w.field_str("version", VERSION);
    w.key("resources");
    w.begin_array();
    for (name, namespaced, kind) in RESOURCES {
        w.begin_object();
        w.field_str("resource", name);
        w.key("responseKind");
        w.begin_object();
        // Upstream leaves group and version of the response kind empty (the differential test
        // against the v0.9.0 binary pins this).
        w.field_str("group", "");
        w.field_str("version", "");
        w.field_str("kind", kind);
        w.end_object();
        w.field_str("scope", if namespaced { "Namespaced" } else { "Cluster" });
        w.field_str("singularResource", "");
        w.field_str_array("verbs", &["get", "list"]);
        w.end_object();
    }
    w.end_array();
    w.field_str("freshness", "Current");
    w.end_object();
    w.end_array();
    w.end_object();
    w.end_array();
    w.end_object();
}
