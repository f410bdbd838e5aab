//! `application/vnd.kubernetes.protobuf` bodies, written straight from the
//! snapshot: the `k8s\0` magic, then a `runtime.Unknown` whose `raw` field
//! holds the gogo-encoded object, as the generic apiserver's protobuf
//! serializer writes it.
//!
//! Field numbers and presence rules are those of the generated Go code:
//! proto2 scalars and strings of value structs are always written (even
//! empty), pointers and slices only when set, maps sorted by key. `Time`
//! carries seconds only (apimachinery leaves `nanos` at zero) and a zero
//! time is an empty message.

mod discovery;

use std::io::Write as _;

pub(crate) use discovery::{
    encode_aggregated, encode_group, encode_group_list, encode_resource_list,
};

use metrics_server_core::{Bytes as Memory, Nanocores, ResourceUsage};

use crate::discovery::MetricsVersion;
use crate::negotiate::Target;
use crate::objects::{Created, Item, NodeItem, PodItem};
use crate::status::Status;

/// The media type.
pub(crate) const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes before every protobuf body.
const MAGIC: &[u8; 4] = b"k8s\0";

const VARINT: u8 = 0;
const LEN: u8 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u8, wire: u8) {
    out.push((field << 3) | wire);
}

/// A length-delimited field with raw bytes (strings, `bytes`).
fn put_bytes(out: &mut Vec<u8>, field: u8, value: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// A varint field (int64, int32 as Go writes them: sign-extended).
fn put_int(out: &mut Vec<u8>, field: u8, value: i64) {
    put_tag(out, field, VARINT);
    put_varint(out, value as u64);
}

/// A nested message: `write` appends its body; the length prefix is
/// reserved as one byte and widened afterwards when the body is longer
/// than 127 bytes (only that body moves).
fn put_message(out: &mut Vec<u8>, field: u8, write: impl FnOnce(&mut Vec<u8>)) {
    put_tag(out, field, LEN);
    let at = out.len();
    out.push(0);
    write(out);
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        put_varint(&mut prefix, len as u64);
        out[at] = prefix[0];
        out.splice(at + 1..at + 1, prefix[1..].iter().copied());
    }
}

/// `metav1.Time`: `Timestamp{seconds, nanos: 0}`, empty for the zero time.
fn put_time(out: &mut Vec<u8>, field: u8, unix_ns: i64) {
    put_message(out, field, |m| {
        if unix_ns != 0 {
            put_int(m, 1, unix_ns.div_euclid(1_000_000_000));
            put_int(m, 2, 0);
        }
    });
}

/// `resource.Quantity` (its canonical string in field 1).
fn put_quantity(out: &mut Vec<u8>, field: u8, value: impl std::fmt::Display) {
    put_message(out, field, |q| {
        put_message(q, 1, |s| {
            // Writing into a Vec cannot fail.
            let _ = write!(s, "{value}");
        });
    });
}

/// `map<string, Quantity>` of cpu and memory, in key order.
fn put_usage(out: &mut Vec<u8>, field: u8, usage: &ResourceUsage) {
    put_message(out, field, |e| {
        put_bytes(e, 1, b"cpu");
        put_quantity(e, 2, Nanocores(usage.cpu_nanocores));
    });
    put_message(out, field, |e| {
        put_bytes(e, 1, b"memory");
        put_quantity(e, 2, Memory(usage.memory_bytes));
    });
}

/// `metav1.ObjectMeta` of an item: name, namespace, creationTimestamp,
/// labels; every other always-written field empty.
fn put_object_meta<T: Item>(out: &mut Vec<u8>, field: u8, item: &T, created: Created<'_>) {
    put_message(out, field, |m| {
        put_bytes(m, 1, item.name().as_bytes());
        put_bytes(m, 2, b"");
        put_bytes(m, 3, item.namespace().unwrap_or("").as_bytes());
        put_bytes(m, 4, b"");
        put_bytes(m, 5, b"");
        put_bytes(m, 6, b"");
        put_int(m, 7, 0);
        put_time(m, 8, created.unix_ns);
        for (k, v) in item.labels() {
            put_message(m, 11, |e| {
                put_bytes(e, 1, k.as_bytes());
                put_bytes(e, 2, v.as_bytes());
            });
        }
    });
}

/// An empty `metav1.ListMeta` (selfLink, resourceVersion, continue).
fn put_list_meta(out: &mut Vec<u8>, field: u8) {
    put_message(out, field, |m| {
        put_bytes(m, 1, b"");
        put_bytes(m, 2, b"");
        put_bytes(m, 3, b"");
    });
}

/// The body of one metrics object (no type meta: it is in the envelope).
pub(crate) trait ProtoItem: Item {
    fn put_body(&self, out: &mut Vec<u8>, created: Created<'_>);
}

impl ProtoItem for NodeItem {
    fn put_body(&self, out: &mut Vec<u8>, created: Created<'_>) {
        put_object_meta(out, 1, self, created);
        put_time(out, 2, self.usage.timestamp_ns);
        put_message(out, 3, |d| put_int(d, 1, self.usage.window_ns));
        put_usage(out, 4, &self.usage);
    }
}

impl ProtoItem for PodItem {
    fn put_body(&self, out: &mut Vec<u8>, created: Created<'_>) {
        put_object_meta(out, 1, self, created);
        put_time(out, 2, self.usage.timestamp_ns);
        put_message(out, 3, |d| put_int(d, 1, self.usage.window_ns));
        for c in &self.usage.containers {
            put_message(out, 4, |m| {
                put_bytes(m, 1, c.name.as_bytes());
                put_usage(m, 2, &c.usage);
            });
        }
    }
}

/// `k8s\0` + `runtime.Unknown{typeMeta, raw, contentEncoding: "", contentType: ""}`
/// around the object `write` appends.
fn envelope(api_version: &str, kind: &str, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(MAGIC);
    put_message(&mut out, 1, |t| {
        put_bytes(t, 1, api_version.as_bytes());
        put_bytes(t, 2, kind.as_bytes());
    });
    put_message(&mut out, 2, write);
    put_bytes(&mut out, 3, b"");
    put_bytes(&mut out, 4, b"");
    out
}

/// `PartialObjectMetadata`: only the object meta.
fn put_partial<T: Item>(out: &mut Vec<u8>, item: &T, created: Created<'_>) {
    put_object_meta(out, 1, item, created);
}

/// One object, or its `PartialObjectMetadata`.
pub(crate) fn encode_one<T: ProtoItem>(
    item: &T,
    created: Created<'_>,
    version: MetricsVersion,
    target: Target,
) -> Vec<u8> {
    match target {
        Target::Partial { v1beta1 } => envelope(
            Target::meta_api_version(v1beta1),
            "PartialObjectMetadata",
            |o| put_partial(o, item, created),
        ),
        _ => envelope(version.group_version(), T::KIND, |o| {
            item.put_body(o, created)
        }),
    }
}

/// A list, or its `PartialObjectMetadataList`.
pub(crate) fn encode_list<T: ProtoItem>(
    items: &[T],
    created: Created<'_>,
    version: MetricsVersion,
    target: Target,
) -> Vec<u8> {
    match target {
        Target::PartialList { v1beta1 } => envelope(
            Target::meta_api_version(v1beta1),
            "PartialObjectMetadataList",
            |o| {
                put_list_meta(o, 1);
                for item in items {
                    put_message(o, 2, |m| put_partial(m, item, created));
                }
            },
        ),
        _ => envelope(version.group_version(), T::LIST_KIND, |o| {
            put_list_meta(o, 1);
            for item in items {
                put_message(o, 2, |m| item.put_body(m, created));
            }
        }),
    }
}

/// A `meta/v1 Status`.
pub(crate) fn encode_status(status: &Status) -> Vec<u8> {
    envelope("v1", "Status", |o| {
        put_list_meta(o, 1);
        put_bytes(o, 2, b"Failure");
        put_bytes(o, 3, status.message.as_bytes());
        put_bytes(o, 4, status.reason.as_bytes());
        if let Some(d) = &status.details {
            put_message(o, 5, |m| {
                put_bytes(m, 1, d.name.as_bytes());
                put_bytes(m, 2, d.group.as_bytes());
                put_bytes(m, 3, d.kind.as_bytes());
                put_int(m, 5, 0);
                put_bytes(m, 6, b"");
            });
        }
        put_int(o, 6, i64::from(status.code));
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use metrics_server_core::{ContainerUsage, PodUsage};

    use super::*;
    use crate::cluster::{NodeMeta, PodMeta};

    /// Written by `hack/golden/protobuf` (k8s.io/apimachinery and
    /// k8s.io/metrics v0.36.3, k8s.io/apiserver v0.36.2's discovery
    /// handlers): `<case> <hex>` per body, `<case>.<header> <text>` beside.
    const GOLDEN: &str = include_str!("protobuf_golden.txt");

    /// The text after `<case> ` (empty when there is no such line).
    pub(super) fn golden_text(case: &str) -> &'static str {
        GOLDEN
            .lines()
            .find_map(|l| l.strip_prefix(case)?.strip_prefix(' '))
            .unwrap_or("")
    }

    /// The bytes of a hex golden line.
    pub(super) fn golden(case: &str) -> Vec<u8> {
        let hex = golden_text(case);
        (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect()
    }

    /// The golden program's times: created 1785837605.123456789, sampled
    /// 1785837598.25, window 15.004 s.
    const CREATED: Created<'static> = Created {
        text: "",
        unix_ns: 1_785_837_605_123_456_789,
    };
    const SAMPLE_NS: i64 = 1_785_837_598_250_000_000;
    const WINDOW_NS: i64 = 15_004_000_000;

    fn usage(cpu_nanocores: u64, memory_bytes: u64) -> ResourceUsage {
        ResourceUsage {
            timestamp_ns: SAMPLE_NS,
            window_ns: WINDOW_NS,
            cpu_nanocores,
            memory_bytes,
        }
    }

    fn node(name: &str, labels: &[(&str, &str)], u: ResourceUsage) -> NodeItem {
        NodeItem {
            meta: Arc::new(NodeMeta {
                name: name.to_owned(),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            }),
            usage: u,
        }
    }

    fn pod() -> PodItem {
        let container = |name: &str, u| ContainerUsage {
            name: Arc::from(name),
            usage: u,
        };
        PodItem {
            meta: Arc::new(PodMeta {
                namespace: "default".to_owned(),
                name: "web-0".to_owned(),
                labels: [("app".to_owned(), "web".to_owned())].into_iter().collect(),
                created: None,
            }),
            usage: PodUsage {
                timestamp_ns: SAMPLE_NS,
                window_ns: WINDOW_NS,
                containers: vec![
                    container("app", usage(7_338_891, 12_533_760)),
                    container("sidecar", usage(1_500_000, 3_145_728)),
                ],
                skipped: Vec::new(),
            },
        }
    }

    #[test]
    fn objects_match_the_go_serializer_byte_for_byte() {
        let nodes = [
            node(
                "node1",
                &[("kubernetes.io/os", "linux"), ("a", "b")],
                usage(123_456_789, 2_147_483_648),
            ),
            node("node2", &[], usage(0, 1000)),
        ];
        let beta = MetricsVersion::V1beta1;
        assert_eq!(
            encode_list(&nodes, CREATED, beta, Target::Object),
            golden("node_list")
        );
        assert_eq!(
            encode_one(&pod(), CREATED, beta, Target::Object),
            golden("pod")
        );
        assert_eq!(
            encode_list(&[pod()], CREATED, beta, Target::Object),
            golden("pod_list")
        );
    }

    #[test]
    fn status_matches_the_go_serializer_byte_for_byte() {
        let status = Status::not_found("metrics.k8s.io", "nodemetrics", "ghost");
        assert_eq!(encode_status(&status), golden("status"));
    }

    #[test]
    fn varints_and_long_messages_are_prefixed_like_protobuf() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut out = Vec::new();
        put_message(&mut out, 2, |m| m.extend_from_slice(&[7; 200]));
        assert_eq!(&out[..3], &[0x12, 0xc8, 0x01]);
        assert_eq!(out.len(), 203);
        let mut out = Vec::new();
        put_int(&mut out, 1, -1);
        assert_eq!(out.len(), 11);
    }

    #[test]
    fn status_envelope_has_go_field_layout() {
        let body = encode_status(&Status::not_found("", "node", "n1"));
        let mut expected = b"k8s\0".to_vec();
        expected.extend_from_slice(b"\x0a\x0c\x0a\x02v1\x12\x06Status");
        let message = b"node \"n1\" not found";
        let mut raw = b"\x0a\x06\x0a\x00\x12\x00\x1a\x00\x12\x07Failure".to_vec();
        raw.push(0x1a);
        raw.push(message.len() as u8);
        raw.extend_from_slice(message);
        raw.extend_from_slice(b"\x22\x08NotFound");
        raw.extend_from_slice(b"\x2a\x10\x0a\x02n1\x12\x00\x1a\x04node\x28\x00\x32\x00");
        raw.extend_from_slice(b"\x30\x94\x03");
        expected.push(0x12);
        expected.push(raw.len() as u8);
        expected.extend_from_slice(&raw);
        expected.extend_from_slice(b"\x1a\x00\x22\x00");
        assert_eq!(body, expected);
    }
}
