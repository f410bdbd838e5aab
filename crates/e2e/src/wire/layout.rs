//! The message layouts the suite decodes: field numbers and names from the `generated.proto` files
//! of k8s.io/apimachinery (meta/v1, runtime, resource), k8s.io/metrics (metrics/v1beta1) and
//! k8s.io/api (apidiscovery/v2). Only the fields whose values are messages need a layout; a field
//! missing from its message's table is kept as raw bytes and still compared.
//!
//! The metrics objects mark their scrape-dependent leaves volatile: the sample time's seconds, the
//! window and every usage quantity. Nothing else is: names, labels, creation times and the order of
//! items, containers and map entries are compared as they are.

/// How the value of a field is read.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A scalar, string or bytes, kept as it is.
    Plain,
    /// An embedded message of this layout.
    Message(&'static Layout),
    /// A scalar or string that differs between two servers scraping at different moments: its
    /// value is replaced by a placeholder with this name.
    Volatile(&'static str),
}

/// A message type: its name and its known fields.
#[derive(Debug)]
pub struct Layout {
    /// The Go type's name.
    pub name: &'static str,
    /// (number, JSON name, kind) of every field that is known.
    pub fields: &'static [(u64, &'static str, Kind)],
}

impl Layout {
    /// The name and kind of field `number`; unknown fields are plain and named by number.
    pub fn field(&self, number: u64) -> (&'static str, Kind) {
        self.fields
            .iter()
            .find(|(n, _, _)| *n == number)
            .map_or(("?", Kind::Plain), |(_, name, kind)| (*name, *kind))
    }
}

use Kind::{Message, Plain, Volatile};

const fn layout(name: &'static str, fields: &'static [(u64, &'static str, Kind)]) -> Layout {
    Layout { name, fields }
}

/// `runtime.Unknown`, the envelope; `raw` is decoded by the kind its `typeMeta` names.
pub static UNKNOWN: Layout = layout(
    "runtime.Unknown",
    &[
        (1, "typeMeta", Message(&TYPE_META)),
        (2, "raw", Plain),
        (3, "contentEncoding", Plain),
        (4, "contentType", Plain),
    ],
);

static TYPE_META: Layout = layout(
    "runtime.TypeMeta",
    &[(1, "apiVersion", Plain), (2, "kind", Plain)],
);

static TIME: Layout = layout("v1.Time", &[(1, "seconds", Plain), (2, "nanos", Plain)]);

static STRING_ENTRY: Layout = layout(
    "map<string,string>",
    &[(1, "key", Plain), (2, "value", Plain)],
);

static OBJECT_META: Layout = layout(
    "v1.ObjectMeta",
    &[
        (1, "name", Plain),
        (2, "generateName", Plain),
        (3, "namespace", Plain),
        (4, "selfLink", Plain),
        (5, "uid", Plain),
        (6, "resourceVersion", Plain),
        (7, "generation", Plain),
        (8, "creationTimestamp", Message(&TIME)),
        (9, "deletionTimestamp", Message(&TIME)),
        (10, "deletionGracePeriodSeconds", Plain),
        (11, "labels", Message(&STRING_ENTRY)),
        (12, "annotations", Message(&STRING_ENTRY)),
        (14, "finalizers", Plain),
    ],
);

static LIST_META: Layout = layout(
    "v1.ListMeta",
    &[
        (1, "selfLink", Plain),
        (2, "resourceVersion", Plain),
        (3, "continue", Plain),
        (4, "remainingItemCount", Plain),
    ],
);

// === metrics.k8s.io ===

/// The time of the sample: seconds differ between the servers, nanos are always zero.
static SAMPLE_TIME: Layout = layout(
    "v1.Time",
    &[
        (1, "seconds", Volatile("sample seconds")),
        (2, "nanos", Plain),
    ],
);

static WINDOW: Layout = layout("v1.Duration", &[(1, "duration", Volatile("window"))]);

static USAGE_QUANTITY: Layout = layout("resource.Quantity", &[(1, "string", Volatile("usage"))]);

static USAGE_ENTRY: Layout = layout(
    "map<string,Quantity>",
    &[(1, "key", Plain), (2, "value", Message(&USAGE_QUANTITY))],
);

static NODE_METRICS: Layout = layout(
    "NodeMetrics",
    &[
        (1, "metadata", Message(&OBJECT_META)),
        (2, "timestamp", Message(&SAMPLE_TIME)),
        (3, "window", Message(&WINDOW)),
        (4, "usage", Message(&USAGE_ENTRY)),
    ],
);

static CONTAINER_METRICS: Layout = layout(
    "ContainerMetrics",
    &[(1, "name", Plain), (2, "usage", Message(&USAGE_ENTRY))],
);

static POD_METRICS: Layout = layout(
    "PodMetrics",
    &[
        (1, "metadata", Message(&OBJECT_META)),
        (2, "timestamp", Message(&SAMPLE_TIME)),
        (3, "window", Message(&WINDOW)),
        (4, "containers", Message(&CONTAINER_METRICS)),
    ],
);

static NODE_METRICS_LIST: Layout = layout(
    "NodeMetricsList",
    &[
        (1, "metadata", Message(&LIST_META)),
        (2, "items", Message(&NODE_METRICS)),
    ],
);

static POD_METRICS_LIST: Layout = layout(
    "PodMetricsList",
    &[
        (1, "metadata", Message(&LIST_META)),
        (2, "items", Message(&POD_METRICS)),
    ],
);

static PARTIAL: Layout = layout(
    "PartialObjectMetadata",
    &[(1, "metadata", Message(&OBJECT_META))],
);

static PARTIAL_LIST: Layout = layout(
    "PartialObjectMetadataList",
    &[
        (1, "metadata", Message(&LIST_META)),
        (2, "items", Message(&PARTIAL)),
    ],
);

// === Status ===

static STATUS_CAUSE: Layout = layout(
    "v1.StatusCause",
    &[
        (1, "reason", Plain),
        (2, "message", Plain),
        (3, "field", Plain),
    ],
);

static STATUS_DETAILS: Layout = layout(
    "v1.StatusDetails",
    &[
        (1, "name", Plain),
        (2, "group", Plain),
        (3, "kind", Plain),
        (4, "causes", Message(&STATUS_CAUSE)),
        (5, "retryAfterSeconds", Plain),
        (6, "uid", Plain),
    ],
);

static STATUS: Layout = layout(
    "v1.Status",
    &[
        (1, "metadata", Message(&LIST_META)),
        (2, "status", Plain),
        (3, "message", Plain),
        (4, "reason", Plain),
        (5, "details", Message(&STATUS_DETAILS)),
        (6, "code", Plain),
    ],
);

// === discovery ===

static GROUP_VERSION: Layout = layout(
    "v1.GroupVersionForDiscovery",
    &[(1, "groupVersion", Plain), (2, "version", Plain)],
);

static SERVER_ADDRESS: Layout = layout(
    "v1.ServerAddressByClientCIDR",
    &[(1, "clientCIDR", Plain), (2, "serverAddress", Plain)],
);

static API_GROUP: Layout = layout(
    "v1.APIGroup",
    &[
        (1, "name", Plain),
        (2, "versions", Message(&GROUP_VERSION)),
        (3, "preferredVersion", Message(&GROUP_VERSION)),
        (4, "serverAddressByClientCIDRs", Message(&SERVER_ADDRESS)),
    ],
);

static API_GROUP_LIST: Layout = layout("v1.APIGroupList", &[(1, "groups", Message(&API_GROUP))]);

static VERBS: Layout = layout("v1.Verbs", &[(1, "items", Plain)]);

static API_RESOURCE: Layout = layout(
    "v1.APIResource",
    &[
        (1, "name", Plain),
        (2, "namespaced", Plain),
        (3, "kind", Plain),
        (4, "verbs", Message(&VERBS)),
        (5, "shortNames", Plain),
        (6, "singularName", Plain),
        (7, "categories", Plain),
        (8, "group", Plain),
        (9, "version", Plain),
        (10, "storageVersionHash", Plain),
    ],
);

static API_RESOURCE_LIST: Layout = layout(
    "v1.APIResourceList",
    &[
        (1, "groupVersion", Plain),
        (2, "resources", Message(&API_RESOURCE)),
    ],
);

static GVK: Layout = layout(
    "v1.GroupVersionKind",
    &[
        (1, "group", Plain),
        (2, "version", Plain),
        (3, "kind", Plain),
    ],
);

static SUBRESOURCE_DISCOVERY: Layout = layout(
    "v2.APISubresourceDiscovery",
    &[
        (1, "subresource", Plain),
        (2, "responseKind", Message(&GVK)),
        (3, "acceptedTypes", Message(&GVK)),
        (4, "verbs", Plain),
    ],
);

static RESOURCE_DISCOVERY: Layout = layout(
    "v2.APIResourceDiscovery",
    &[
        (1, "resource", Plain),
        (2, "responseKind", Message(&GVK)),
        (3, "scope", Plain),
        (4, "singularResource", Plain),
        (5, "verbs", Plain),
        (6, "shortNames", Plain),
        (7, "categories", Plain),
        (8, "subresources", Message(&SUBRESOURCE_DISCOVERY)),
    ],
);

static VERSION_DISCOVERY: Layout = layout(
    "v2.APIVersionDiscovery",
    &[
        (1, "version", Plain),
        (2, "resources", Message(&RESOURCE_DISCOVERY)),
        (3, "freshness", Plain),
    ],
);

static GROUP_DISCOVERY: Layout = layout(
    "v2.APIGroupDiscovery",
    &[
        (1, "metadata", Message(&OBJECT_META)),
        (2, "versions", Message(&VERSION_DISCOVERY)),
    ],
);

static GROUP_DISCOVERY_LIST: Layout = layout(
    "v2.APIGroupDiscoveryList",
    &[
        (1, "metadata", Message(&LIST_META)),
        (2, "items", Message(&GROUP_DISCOVERY)),
    ],
);

/// The layout of the object an envelope of `kind` carries.
pub fn for_kind(kind: &str) -> Option<&'static Layout> {
    Some(match kind {
        "NodeMetrics" => &NODE_METRICS,
        "PodMetrics" => &POD_METRICS,
        "NodeMetricsList" => &NODE_METRICS_LIST,
        "PodMetricsList" => &POD_METRICS_LIST,
        "PartialObjectMetadata" => &PARTIAL,
        "PartialObjectMetadataList" => &PARTIAL_LIST,
        "Status" => &STATUS,
        "APIGroupList" => &API_GROUP_LIST,
        "APIGroup" => &API_GROUP,
        "APIResourceList" => &API_RESOURCE_LIST,
        "APIGroupDiscoveryList" => &GROUP_DISCOVERY_LIST,
        _ => return None,
    })
}
