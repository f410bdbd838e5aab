//! NodeMetrics / PodMetrics objects and their JSON forms (spec E.3, E.4,
//! E.8): plain objects and lists, `meta.k8s.io` Tables and
//! PartialObjectMetadata(List). Field order follows the Go structs.

use std::sync::Arc;

use metrics_server_core::{Bytes, GoDuration, Nanocores, PodUsage, ResourceUsage, Rfc3339Seconds};

use crate::cluster::{LabelMap, NodeMeta, PodMeta};
use crate::discovery::MetricsVersion;
use crate::json::JsonWriter;
use crate::listjson::{CompactItem, CompactListBody, STREAM_CHUNK, encode_compact_list};
use crate::negotiate::Target;

/// A node with servable metrics.
#[derive(Clone, Debug)]
pub struct NodeItem {
    /// Cached node.
    pub meta: Arc<NodeMeta>,
    /// Its usage.
    pub usage: ResourceUsage,
}

/// A pod with servable metrics.
#[derive(Clone, Debug)]
pub struct PodItem {
    /// Cached pod.
    pub meta: Arc<PodMeta>,
    /// Its usage.
    pub usage: PodUsage,
}

/// `metadata.creationTimestamp` of served objects (the time of the request),
/// as JSON writes it and as a time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Created<'a> {
    /// RFC 3339 at second precision.
    pub(crate) text: &'a str,
    /// Unix nanoseconds.
    pub(crate) unix_ns: i64,
}

/// `includeObject` of a Table request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// Shared behaviour of the two object kinds.
pub(crate) trait Item: CompactItem {
    const KIND: &'static str;
    const LIST_KIND: &'static str;
    fn name(&self) -> &str;
    fn namespace(&self) -> Option<&str>;
    fn labels(&self) -> &LabelMap;
    fn window_ns(&self) -> i64;
    /// Everything after `metadata`.
    fn write_body(&self, w: &mut JsonWriter<'_>);
    /// Table usage cells: `(resource, quantity)` sorted by resource, or
    /// `None` when the object has no usage at all (a pod without
    /// containers).
    fn table_usage(&self) -> Option<[(&'static str, String); 2]>;
}

fn write_timestamp(w: &mut JsonWriter<'_>, ns: i64) {
    w.key("timestamp");
    if ns == 0 {
        w.null();
    } else {
        w.display_string(Rfc3339Seconds(ns));
    }
}

fn write_usage(w: &mut JsonWriter<'_>, u: &ResourceUsage) {
    w.key("usage");
    w.begin_object();
    w.key("cpu");
    w.display_string(Nanocores(u.cpu_nanocores));
    w.key("memory");
    w.display_string(Bytes(u.memory_bytes));
    w.end_object();
}

impl Item for NodeItem {
    const KIND: &'static str = "NodeMetrics";
    const LIST_KIND: &'static str = "NodeMetricsList";
    fn name(&self) -> &str {
        &self.meta.name
    }
    fn namespace(&self) -> Option<&str> {
        None
    }
    fn labels(&self) -> &LabelMap {
        &self.meta.labels
    }
    fn window_ns(&self) -> i64 {
        self.usage.window_ns
    }
    fn write_body(&self, w: &mut JsonWriter<'_>) {
        write_timestamp(w, self.usage.timestamp_ns);
        w.key("window");
        w.display_string(GoDuration(self.usage.window_ns));
        write_usage(w, &self.usage);
    }
    fn table_usage(&self) -> Option<[(&'static str, String); 2]> {
        Some([
            ("cpu", Nanocores(self.usage.cpu_nanocores).to_string()),
            ("memory", Bytes(self.usage.memory_bytes).to_string()),
        ])
    }
}

impl Item for PodItem {
    const KIND: &'static str = "PodMetrics";
    const LIST_KIND: &'static str = "PodMetricsList";
    fn name(&self) -> &str {
        &self.meta.name
    }
    fn namespace(&self) -> Option<&str> {
        Some(&self.meta.namespace)
    }
    fn labels(&self) -> &LabelMap {
        &self.meta.labels
    }
    fn window_ns(&self) -> i64 {
        self.usage.window_ns
    }
    fn write_body(&self, w: &mut JsonWriter<'_>) {
        write_timestamp(w, self.usage.timestamp_ns);
        w.key("window");
        w.display_string(GoDuration(self.usage.window_ns));
        w.key("containers");
        w.begin_array();
        for c in &self.usage.containers {
            w.begin_object();
            w.field_str("name", &c.name);
            write_usage(w, &c.usage);
            w.end_object();
        }
        w.end_array();
    }
    fn table_usage(&self) -> Option<[(&'static str, String); 2]> {
        if self.usage.containers.is_empty() {
            return None;
        }
        // Quantity.Add over containers: same scale, so a plain sum.
        let (cpu, mem) = self
            .usage
            .containers
            .iter()
            .fold((0u64, 0u64), |(c, m), x| {
                (
                    c.saturating_add(x.usage.cpu_nanocores),
                    m.saturating_add(x.usage.memory_bytes),
                )
            });
        Some([
            ("cpu", Nanocores(cpu).to_string()),
            ("memory", Bytes(mem).to_string()),
        ])
    }
}

/// `metadata` of an item (name, namespace, creationTimestamp, labels).
fn write_metadata<T: Item>(w: &mut JsonWriter<'_>, item: &T, created: &str) {
    w.key("metadata");
    w.begin_object();
    w.field_str("name", item.name());
    if let Some(ns) = item.namespace() {
        w.field_str_omitempty("namespace", ns);
    }
    w.field_str("creationTimestamp", created);
    let labels = item.labels();
    if !labels.is_empty() {
        w.key("labels");
        w.begin_object();
        for (k, v) in labels {
            w.field_str(k, v);
        }
        w.end_object();
    }
    w.end_object();
}

/// One object; `type_meta` (the version) adds `kind` and `apiVersion`.
fn write_item<T: Item>(
    w: &mut JsonWriter<'_>,
    item: &T,
    created: &str,
    type_meta: Option<MetricsVersion>,
) {
    w.begin_object();
    if let Some(version) = type_meta {
        w.field_str("kind", T::KIND);
        w.field_str("apiVersion", version.group_version());
    }
    write_metadata(w, item, created);
    item.write_body(w);
    w.end_object();
}

fn write_partial<T: Item>(w: &mut JsonWriter<'_>, item: &T, created: &str, v1beta1: bool) {
    w.begin_object();
    w.field_str("kind", "PartialObjectMetadata");
    w.field_str("apiVersion", Target::meta_api_version(v1beta1));
    write_metadata(w, item, created);
    w.end_object();
}

fn finish(mut out: Vec<u8>, pretty: bool) -> Vec<u8> {
    if !pretty {
        out.push(b'\n');
    }
    out
}

/// How a response should look.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Encoding {
    /// The requested `metrics.k8s.io` version.
    pub(crate) version: MetricsVersion,
    pub(crate) target: Target,
    pub(crate) include: IncludeObject,
    pub(crate) pretty: bool,
}

/// Why a conversion was refused (406 NotAcceptable text).
pub(crate) fn partial_mismatch_message<T: Item>(target: Target, list: bool) -> Option<String> {
    match (target, list) {
        (Target::Partial { .. }, true) => Some(format!(
            "you requested PartialObjectMetadata, but the requested object is a list (*metrics.{})",
            T::LIST_KIND
        )),
        (Target::PartialList { .. }, false) => Some(format!(
            "you requested PartialObjectMetadataList, but the requested object is not a list (*metrics.{})",
            T::KIND
        )),
        _ => None,
    }
}

/// Encodes one object (a GET of a named resource).
pub(crate) fn encode_one<T: Item>(item: &T, created: &str, enc: Encoding) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut w = JsonWriter::new(&mut out, enc.pretty);
    match enc.target {
        Target::Table { v1beta1 } => {
            write_table(
                &mut w,
                std::slice::from_ref(item),
                created,
                (enc.include, enc.version),
                v1beta1,
            );
        }
        Target::Partial { v1beta1 } => write_partial(&mut w, item, created, v1beta1),
        Target::Object | Target::PartialList { .. } => {
            write_item(&mut w, item, created, Some(enc.version));
        }
    }
    finish(out, enc.pretty)
}

/// Encodes a list response.
pub(crate) fn encode_list<T: Item>(items: &[T], created: &str, enc: Encoding) -> Vec<u8> {
    match enc.target {
        Target::Table { v1beta1 } => {
            let mut out = Vec::with_capacity(256 + items.len() * 256);
            let mut w = JsonWriter::new(&mut out, enc.pretty);
            write_table(&mut w, items, created, (enc.include, enc.version), v1beta1);
            finish(out, enc.pretty)
        }
        Target::PartialList { v1beta1 } => {
            let mut out = Vec::with_capacity(256 + items.len() * 192);
            let mut w = JsonWriter::new(&mut out, enc.pretty);
            w.begin_object();
            w.field_str("kind", "PartialObjectMetadataList");
            w.field_str("apiVersion", Target::meta_api_version(v1beta1));
            w.field_empty_object("metadata");
            w.key("items");
            if items.is_empty() {
                // Items stays a nil slice: Go encodes it as null.
                w.null();
            } else {
                w.begin_array();
                for item in items {
                    write_partial(&mut w, item, created, v1beta1);
                }
                w.end_array();
            }
            w.end_object();
            finish(out, enc.pretty)
        }
        Target::Object | Target::Partial { .. } => {
            encode_object_list(items, created, enc.version, enc.pretty)
        }
    }
}

/// The body of a list response. A large compact `NodeMetricsList` /
/// `PodMetricsList` (the hot path of `kubectl top` and the autoscalers) is
/// rendered while it is sent, so no request holds the whole list; everything
/// else is encoded up front.
pub(crate) fn list_body<T: Item + Send + Unpin + 'static>(
    items: Vec<T>,
    created: &str,
    enc: Encoding,
) -> axum::body::Body {
    let object_list = matches!(enc.target, Target::Object | Target::Partial { .. });
    if object_list && !enc.pretty && items.len().saturating_mul(T::TYPICAL_LEN) >= STREAM_CHUNK {
        return axum::body::Body::new(CompactListBody::new(items, created, enc.version));
    }
    axum::body::Body::from(encode_list(&items, created, enc))
}

/// Encodes a compact `PodMetricsList` of `version` (trailing newline
/// included) with `created` as every item's `metadata.creationTimestamp`
/// (RFC 3339). One pass straight into the output buffer: the hot path for
/// big clusters.
pub fn encode_pod_metrics_list(
    items: &[PodItem],
    created: &str,
    version: MetricsVersion,
) -> Vec<u8> {
    encode_object_list(items, created, version, false)
}

/// The bytes of [`encode_pod_metrics_list`] in the pieces (about 64 KiB
/// each) that a large list response is streamed in, each rendered when
/// asked for.
pub fn pod_metrics_list_pieces<'a>(
    items: &'a [PodItem],
    created: &str,
    version: MetricsVersion,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    let mut body = CompactListBody::new(items, created, version);
    std::iter::from_fn(move || body.next_piece())
}

/// Encodes a compact `NodeMetricsList`, like [`encode_pod_metrics_list`].
pub fn encode_node_metrics_list(
    items: &[NodeItem],
    created: &str,
    version: MetricsVersion,
) -> Vec<u8> {
    encode_object_list(items, created, version, false)
}

/// Encodes a `NodeMetricsList` / `PodMetricsList`.
pub(crate) fn encode_object_list<T: Item>(
    items: &[T],
    created: &str,
    version: MetricsVersion,
    pretty: bool,
) -> Vec<u8> {
    if pretty {
        encode_object_list_general(items, created, version, true)
    } else {
        encode_compact_list(items, created, version)
    }
}

/// [`encode_object_list`] through the general writer: the indented form, and
/// the reference the compact fast path is tested against.
pub(crate) fn encode_object_list_general<T: Item>(
    items: &[T],
    created: &str,
    version: MetricsVersion,
    pretty: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + items.len() * 320);
    let mut w = JsonWriter::new(&mut out, pretty);
    w.begin_object();
    w.field_str("kind", T::LIST_KIND);
    w.field_str("apiVersion", version.group_version());
    w.field_empty_object("metadata");
    w.key("items");
    w.begin_array();
    for item in items {
        write_item(&mut w, item, created, None);
    }
    w.end_array();
    w.end_object();
    finish(out, pretty)
}

fn write_column(w: &mut JsonWriter<'_>, name: &str, format: &str, description: &str) {
    w.begin_object();
    w.field_str("name", name);
    w.field_str("type", "string");
    w.field_str("format", format);
    w.field_str("description", description);
    w.key("priority");
    w.int(0);
    w.end_object();
}

/// `metav1.Table` built like metrics-server's `addNodeMetricsToTable` /
/// `addPodMetricsToTable`; `include` also names the version of embedded
/// objects.
fn write_table<T: Item>(
    w: &mut JsonWriter<'_>,
    items: &[T],
    created: &str,
    include: (IncludeObject, MetricsVersion),
    v1beta1: bool,
) {
    let (include, version) = include;
    // Columns come from the first item with usage (Go's `names == nil`
    // test); rows before it only have Name and Window.
    let mut names: Vec<&'static str> = Vec::new();
    let mut columns_set = false;
    let mut rows: Vec<(Vec<String>, &T)> = Vec::with_capacity(items.len());
    for item in items {
        let usage = item.table_usage();
        if names.is_empty() {
            names = usage
                .as_ref()
                .map(|u| u.iter().map(|(n, _)| *n).collect())
                .unwrap_or_default();
            columns_set = true;
        }
        let mut cells = Vec::with_capacity(names.len() + 2);
        cells.push(item.name().to_owned());
        for name in &names {
            let v = usage
                .as_ref()
                .and_then(|u| u.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()))
                .unwrap_or_else(|| "0".to_owned());
            cells.push(v);
        }
        cells.push(GoDuration(item.window_ns()).to_string());
        rows.push((cells, item));
    }

    w.begin_object();
    w.field_str("kind", "Table");
    w.field_str("apiVersion", Target::meta_api_version(v1beta1));
    w.field_empty_object("metadata");
    w.key("columnDefinitions");
    if columns_set {
        w.begin_array();
        write_column(w, "Name", "name", "Name of the resource");
        for name in &names {
            write_column(w, name, "quantity", "");
        }
        write_column(w, "Window", "duration", "");
        w.end_array();
    } else {
        w.null();
    }
    w.key("rows");
    if rows.is_empty() {
        w.null();
    } else {
        w.begin_array();
        for (cells, item) in &rows {
            w.begin_object();
            w.key("cells");
            w.begin_array();
            for c in cells {
                w.string(c);
            }
            w.end_array();
            w.key("object");
            match include {
                IncludeObject::None => w.null(),
                IncludeObject::Metadata => write_partial(w, *item, created, v1beta1),
                IncludeObject::Object => write_item(w, *item, created, Some(version)),
            }
            w.end_object();
        }
        w.end_array();
    }
    w.end_object();
}
