//! The Kubernetes protobuf envelope as the suite reads it: the `k8s\0` magic, then a `runtime.Unknown`
//! message whose `typeMeta` names the version and kind and whose `raw` field holds the object itself.
//!
//! The object's bytes carry no `apiVersion` (that lives in the envelope), so the same object served in
//! `metrics.k8s.io/v1` and `v1beta1` must have identical `raw` bytes.
//!
//! [`decode_body`] reads a whole body into a tree by the known message layouts ([`layout`]), with the
//! scrape-dependent leaves of metrics objects replaced by placeholders, so that two servers' answers
//! can be compared field by field; [`encode_body`] writes a tree back as Go writes it.

pub mod layout;
mod tree;

pub use tree::{
    FIXED32, FIXED64, Field, LEN, VARINT, Value, decode, decode_body, decode_body_exact,
    difference, encode_body, text_of,
};

use anyhow::{Result, bail, ensure};

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\0";

/// The fields of a `runtime.Unknown` envelope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// `typeMeta.apiVersion` (`metrics.k8s.io/v1`, `v1` for a Status).
    pub api_version: String,
    /// `typeMeta.kind`.
    pub kind: String,
    /// The encoded object.
    pub raw: Vec<u8>,
    /// `contentEncoding` (empty in practice).
    pub content_encoding: String,
    /// `contentType` (empty in practice).
    pub content_type: String,
}

/// Splits a protobuf body into its envelope fields.
pub fn parse(body: &[u8]) -> Result<Envelope> {
    let Some(message) = body.strip_prefix(MAGIC) else {
        bail!(
            "the body does not start with k8s\\0: {:02x?}",
            &body[..body.len().min(8)]
        );
    };
    let mut envelope = Envelope::default();
    for field in Fields(message) {
        let (number, value) = field?;
        match number {
            1 => {
                for inner in Fields(value) {
                    let (n, v) = inner?;
                    match n {
                        1 => envelope.api_version = text(v)?,
                        2 => envelope.kind = text(v)?,
                        _ => {}
                    }
                }
            }
            2 => envelope.raw = value.to_vec(),
            3 => envelope.content_encoding = text(value)?,
            4 => envelope.content_type = text(value)?,
            _ => bail!("runtime.Unknown has no field {number}"),
        }
    }
    Ok(envelope)
}

fn text(bytes: &[u8]) -> Result<String> {
    Ok(std::str::from_utf8(bytes)?.to_owned())
}

/// The length-delimited fields of a message (number, bytes); any other wire type is an error, as no
/// field of `runtime.Unknown` or `TypeMeta` has one.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        Some(self.field())
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> Result<(u64, &'a [u8])> {
        let key = self.varint()?;
        ensure!(key & 7 == 2, "field {} has wire type {}", key >> 3, key & 7);
        let len = usize::try_from(self.varint()?)?;
        ensure!(
            len <= self.0.len(),
            "field {} overruns the message",
            key >> 3
        );
        let (value, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok((key >> 3, value))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some((&byte, rest)) = self.0.split_first() else {
                bail!("truncated varint");
            };
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        bail!("varint longer than 64 bits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden bodies written by Go's codec factory (hack/golden/protobuf), kept by the API crate.
    const GOLDEN: &str = include_str!("../../api/src/protobuf_golden.txt");

    fn golden(case: &str) -> Vec<u8> {
        let hex = GOLDEN
            .lines()
            .find_map(|l| l.strip_prefix(case)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no golden case {case}"));
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn go_envelopes_name_their_version_and_kind() {
        let list = parse(&golden("node_list")).unwrap();
        assert_eq!(list.api_version, "metrics.k8s.io/v1beta1");
        assert_eq!(list.kind, "NodeMetricsList");
        assert!(list.content_type.is_empty() && list.content_encoding.is_empty());
        let pod = parse(&golden("pod")).unwrap();
        assert_eq!(
            (pod.api_version.as_str(), pod.kind.as_str()),
            ("metrics.k8s.io/v1beta1", "PodMetrics")
        );
        let status = parse(&golden("status")).unwrap();
        assert_eq!(
            (status.api_version.as_str(), status.kind.as_str()),
            ("v1", "Status")
        );
    }

    #[test]
    fn the_raw_object_is_the_bytes_after_the_type_meta() {
        let body = golden("pod");
        let pod = parse(&body).unwrap();
        // The object is the tail of the envelope, before the two empty string fields (1a 00 22 00).
        assert!(body.ends_with(&[&pod.raw[..], &[0x1a, 0, 0x22, 0]].concat()));
        assert_eq!(
            pod.raw[0], 0x0a,
            "the object starts with its metadata (field 1)"
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(parse(b"{\"kind\":\"Status\"}").is_err());
        assert!(
            parse(b"k8s\0\x0a\x05ab").is_err(),
            "a field longer than the body"
        );
        assert!(parse(b"k8s\0\x08\x01").is_err(), "a varint field");
        assert!(parse(b"k8s\0\x0a\x80").is_err(), "a truncated length");
        assert_eq!(parse(b"k8s\0").unwrap(), Envelope::default());
    }

    /// The `k`-th field `number` at each step, from the body's top level down.
    fn field_at<'a>(fields: &'a mut [Field], path: &[(u64, usize)]) -> &'a mut Field {
        let ((number, k), rest) = path.split_first().expect("a path");
        let field = fields
            .iter_mut()
            .filter(|f| f.number == *number)
            .nth(*k)
            .unwrap_or_else(|| panic!("no field {number} #{k}"));
        if rest.is_empty() {
            field
        } else {
            field_at(field.message_mut().expect("a message"), rest)
        }
    }

    /// The golden body with the value at `path` replaced, encoded again.
    fn edited(case: &str, path: &[(u64, usize)], value: Value) -> Vec<u8> {
        let mut tree = decode_body_exact(&golden(case)).unwrap();
        field_at(&mut tree, path).value = value;
        encode_body(&tree).unwrap()
    }

    /// A path of (field number, occurrence) steps.
    type Path = Vec<(u64, usize)>;

    /// raw, then the k-th item, then `rest`.
    fn in_item(k: usize, rest: &[(u64, usize)]) -> Path {
        [&[(2, 0), (2, k)], rest].concat()
    }

    fn text(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn every_golden_body_encodes_back_to_its_bytes() {
        let mut bodies = 0;
        for line in GOLDEN.lines() {
            let Some((case, hex)) = line.split_once(' ') else {
                continue;
            };
            if case.contains('.') || !hex.starts_with("6b387300") {
                continue;
            }
            let body = golden(case);
            let tree = decode_body_exact(&body).unwrap();
            assert_eq!(encode_body(&tree).unwrap(), body, "{case}");
            bodies += 1;
        }
        assert!(
            bodies >= 10,
            "only {bodies} protobuf bodies in the golden file"
        );
    }

    #[test]
    fn scrape_times_windows_and_usage_are_placeholders() {
        let original = decode_body(&golden("node_list")).unwrap();
        let edits: [(Path, Value); 3] = [
            // items[0].timestamp.seconds, one second later.
            (in_item(0, &[(2, 0), (1, 0)]), Value::Number(1_785_837_599)),
            // items[1].window.duration: 30 s.
            (in_item(1, &[(3, 0), (1, 0)]), Value::Number(30_000_000_000)),
            // items[0].usage[cpu].value.string, shorter: every enclosing length changes.
            (in_item(0, &[(4, 0), (2, 0), (1, 0)]), text("99n")),
        ];
        for (path, value) in edits {
            let body = edited("node_list", &path, value.clone());
            assert_ne!(body, golden("node_list"), "{path:?}");
            let tree = decode_body(&body).unwrap();
            assert_eq!(difference(&tree, &original), None, "{path:?} {value:?}");
            assert_eq!(tree, original);
        }
        let pod = decode_body(&golden("pod")).unwrap();
        // containers[1].usage[memory].value.string
        let body = edited(
            "pod",
            &[(2, 0), (4, 1), (2, 1), (2, 0), (1, 0)],
            text("1Ki"),
        );
        assert_eq!(decode_body(&body).unwrap(), pod);
    }

    #[test]
    fn names_labels_creation_times_and_order_are_compared() {
        let original = decode_body(&golden("node_list")).unwrap();
        let cases: [(Path, Value, &str); 4] = [
            (
                in_item(1, &[(1, 0), (1, 0)]),
                text("node3"),
                "raw.items[1].metadata.name: \"node3\" vs \"node2\"",
            ),
            (
                in_item(0, &[(1, 0), (11, 1), (2, 0)]),
                text("windows"),
                "raw.items.metadata.labels[1].value: \"windows\" vs \"linux\"",
            ),
            (
                in_item(0, &[(1, 0), (8, 0), (1, 0)]),
                Value::Number(1),
                "raw.items.metadata.creationTimestamp.seconds: 1 vs 1785837605",
            ),
            (
                in_item(1, &[(4, 1), (1, 0)]),
                text("cpu"),
                "raw.items[1].usage[1].key: \"cpu\" vs \"memory\"",
            ),
        ];
        for (path, value, expected) in cases {
            let tree = decode_body(&edited("node_list", &path, value)).unwrap();
            assert_eq!(difference(&tree, &original).as_deref(), Some(expected));
        }
        // Containers in another order.
        let mut pod = decode_body_exact(&golden("pod")).unwrap();
        let raw = field_at(&mut pod, &[(2, 0)]).message_mut().unwrap();
        let last = raw.len() - 1;
        raw.swap(last - 1, last);
        let swapped = decode_body(&encode_body(&pod).unwrap()).unwrap();
        let d = difference(&swapped, &decode_body(&golden("pod")).unwrap());
        assert_eq!(
            d.as_deref(),
            Some("raw.containers.name: \"sidecar\" vs \"app\"")
        );
        // A missing item.
        let mut list = decode_body_exact(&golden("node_list")).unwrap();
        field_at(&mut list, &[(2, 0)]).message_mut().unwrap().pop();
        let shorter = decode_body(&encode_body(&list).unwrap()).unwrap();
        assert_eq!(
            difference(&original, &shorter).as_deref(),
            Some("raw.items[1]: only in the first: a message of 5 fields")
        );
    }

    #[test]
    fn discovery_documents_have_no_placeholders() {
        let body = golden("discovery_aggregated");
        let tree = decode_body(&body).unwrap();
        assert_eq!(tree, decode_body_exact(&body).unwrap());
        assert_eq!(text_of(&tree, 3), Some(""));
        let address = [(2, 0), (1, 0), (4, 0), (2, 0)];
        let other = edited("discovery_apis", &address, text("127.0.0.1:1"));
        let d = difference(
            &decode_body(&other).unwrap(),
            &decode_body(&golden("discovery_apis")).unwrap(),
        );
        assert_eq!(
            d.as_deref(),
            Some(
                "raw.groups.serverAddressByClientCIDRs.serverAddress: \"127.0.0.1:1\" vs \"127.0.0.1:4443\""
            )
        );
    }

    #[test]
    fn bodies_of_unknown_kinds_or_broken_fields_are_errors() {
        let mut tree = decode_body_exact(&golden("status")).unwrap();
        field_at(&mut tree, &[(1, 0), (2, 0)]).value = text("Secret");
        assert!(decode_body(&encode_body(&tree).unwrap()).is_err());
        // A message field written as a varint.
        assert!(decode(b"\x08\x01", layout::for_kind("NodeMetrics").unwrap()).is_err());
        assert!(
            decode(b"\x0b", layout::for_kind("NodeMetrics").unwrap()).is_err(),
            "a group"
        );
        assert!(decode(b"\x12\x05ab", layout::for_kind("APIGroup").unwrap()).is_err());
    }
}
