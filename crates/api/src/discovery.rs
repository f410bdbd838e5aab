//! Discovery documents (spec E.2, E.10): legacy `APIGroupList`, `APIGroup`,
//! `APIResourceList`, and the aggregated `apidiscovery.k8s.io/v2`
//! `APIGroupDiscoveryList` with its ETag, for the served versions of
//! `metrics.k8s.io` (v1 preferred).

use std::fmt;

use crate::json::JsonWriter;
use crate::protobuf;

pub(crate) const GROUP: &str = "metrics.k8s.io";

/// A version of the `metrics.k8s.io` group. Both have the same schema; only
/// `apiVersion` tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricsVersion {
    /// `metrics.k8s.io/v1` (GA since Kubernetes 1.37), the preferred version.
    V1,
    /// `metrics.k8s.io/v1beta1`, what every client before 1.37 asks for.
    V1beta1,
}

impl MetricsVersion {
    /// Both versions in preference order.
    pub const ALL: [Self; 2] = [Self::V1, Self::V1beta1];

    /// `v1` or `v1beta1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V1beta1 => "v1beta1",
        }
    }

    /// `metrics.k8s.io/<version>`, the `apiVersion` of the objects.
    pub fn group_version(self) -> &'static str {
        match self {
            Self::V1 => "metrics.k8s.io/v1",
            Self::V1beta1 => "metrics.k8s.io/v1beta1",
        }
    }

    /// The version named `s`, if it is one of ours.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for MetricsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The set of served versions: never empty, iterated in preference order
/// (v1 before v1beta1, whatever order they were given in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServedVersions {
    v1: bool,
    v1beta1: bool,
}

/// [`ServedVersions::new`] got no version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at least one metrics.k8s.io version must be served")]
pub struct NoVersionServed;

impl ServedVersions {
    /// Serves exactly `versions` (duplicates are harmless).
    pub fn new(versions: &[MetricsVersion]) -> Result<Self, NoVersionServed> {
        let served = Self {
            v1: versions.contains(&MetricsVersion::V1),
            v1beta1: versions.contains(&MetricsVersion::V1beta1),
        };
        if served.v1 || served.v1beta1 {
            Ok(served)
        } else {
            Err(NoVersionServed)
        }
    }

    /// Whether `version` is served.
    pub fn contains(self, version: MetricsVersion) -> bool {
        match version {
            MetricsVersion::V1 => self.v1,
            MetricsVersion::V1beta1 => self.v1beta1,
        }
    }

    /// The served version named `s`.
    pub fn get(self, s: &str) -> Option<MetricsVersion> {
        MetricsVersion::parse(s).filter(|v| self.contains(*v))
    }

    /// The served versions, preferred first.
    pub fn iter(self) -> impl Iterator<Item = MetricsVersion> {
        MetricsVersion::ALL
            .into_iter()
            .filter(move |v| self.contains(*v))
    }

    /// The preferred served version.
    pub fn preferred(self) -> MetricsVersion {
        if self.v1 {
            MetricsVersion::V1
        } else {
            MetricsVersion::V1beta1
        }
    }
}

impl Default for ServedVersions {
    /// Both versions.
    fn default() -> Self {
        Self {
            v1: true,
            v1beta1: true,
        }
    }
}

/// The two resources: (name, namespaced, kind).
pub(crate) const RESOURCES: [(&str, bool, &str); 2] = [
    ("nodes", false, "NodeMetrics"),
    ("pods", true, "PodMetrics"),
];

/// A legacy discovery document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Document {
    /// `GET /apis`: `APIGroupList`.
    GroupList,
    /// `GET /apis/metrics.k8s.io`: `APIGroup`.
    Group,
    /// `GET /apis/metrics.k8s.io/<version>`: `APIResourceList`.
    Resources(MetricsVersion),
}

/// Precomputed discovery state.
#[derive(Debug)]
pub(crate) struct Discovery {
    server_address: Option<String>,
    versions: ServedVersions,
    /// Quoted ETag of the aggregated document.
    etag: String,
}

impl Discovery {
    pub(crate) fn new(server_address: Option<&str>, versions: ServedVersions) -> Self {
        // Go hashes json.Marshal of the list *before* kind/apiVersion are
        // set: `{"metadata":{},"items":[...]}`.
        let mut untyped = Vec::new();
        write_aggregated(&mut JsonWriter::new(&mut untyped, false), versions, false);
        let digest = ring::digest::digest(&ring::digest::SHA512, &untyped);
        let mut hex = String::with_capacity(130);
        hex.push('"');
        for b in digest.as_ref() {
            hex.push_str(&format!("{b:02X}"));
        }
        hex.push('"');
        Self {
            server_address: server_address.map(str::to_owned),
            versions,
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
        write_group_body(w, self.versions, self.server_address.as_deref(), false);
        w.end_array();
        w.end_object();
    }

    /// `GET /apis` with the aggregated-discovery media type.
    pub(crate) fn write_aggregated(&self, w: &mut JsonWriter<'_>) {
        write_aggregated(w, self.versions, true);
    }

    /// `GET /apis/metrics.k8s.io`.
    pub(crate) fn write_group(&self, w: &mut JsonWriter<'_>) {
        write_group_body(w, self.versions, None, true);
    }

    /// `doc` in JSON.
    pub(crate) fn write_json(&self, doc: Document, w: &mut JsonWriter<'_>) {
        match doc {
            Document::GroupList => self.write_group_list(w),
            Document::Group => self.write_group(w),
            Document::Resources(version) => write_resource_list(w, version),
        }
    }

    /// `doc` in protobuf.
    pub(crate) fn protobuf(&self, doc: Document) -> Vec<u8> {
        match doc {
            Document::GroupList => {
                protobuf::encode_group_list(self.versions, self.server_address.as_deref())
            }
            Document::Group => protobuf::encode_group(self.versions),
            Document::Resources(version) => protobuf::encode_resource_list(version),
        }
    }

    /// The aggregated document in protobuf.
    pub(crate) fn aggregated_protobuf(&self) -> Vec<u8> {
        protobuf::encode_aggregated(self.versions)
    }
}

fn write_group_version(w: &mut JsonWriter<'_>, version: MetricsVersion) {
    w.begin_object();
    w.field_str("groupVersion", version.group_version());
    w.field_str("version", version.as_str());
    w.end_object();
}

fn write_group_body(
    w: &mut JsonWriter<'_>,
    versions: ServedVersions,
    server_address: Option<&str>,
    type_meta: bool,
) {
    w.begin_object();
    if type_meta {
        w.field_str("kind", "APIGroup");
        w.field_str("apiVersion", "v1");
    }
    w.field_str("name", GROUP);
    w.key("versions");
    w.begin_array();
    for version in versions.iter() {
        write_group_version(w, version);
    }
    w.end_array();
    w.key("preferredVersion");
    write_group_version(w, versions.preferred());
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

/// `GET /apis/metrics.k8s.io/<version>`.
fn write_resource_list(w: &mut JsonWriter<'_>, version: MetricsVersion) {
    w.begin_object();
    w.field_str("kind", "APIResourceList");
    w.field_str("apiVersion", "v1");
    w.field_str("groupVersion", version.group_version());
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

fn write_aggregated(w: &mut JsonWriter<'_>, versions: ServedVersions, type_meta: bool) {
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
    for version in versions.iter() {
        write_aggregated_version(w, version);
    }
    w.end_array();
    w.end_object();
    w.end_array();
    w.end_object();
}

/// One version of the group in the aggregated document.
fn write_aggregated_version(w: &mut JsonWriter<'_>, version: MetricsVersion) {
    w.begin_object();
    w.field_str("version", version.as_str());
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
}
