//! The Kubernetes protobuf envelope as the suite reads it: the `k8s\0` magic, then a `runtime.Unknown`
//! message whose `typeMeta` names the version and kind and whose `raw` field holds the object itself.
//!
//! The object's bytes carry no `apiVersion` (that lives in the envelope), so the same object served in
//! `metrics.k8s.io/v1` and `v1beta1` must have identical `raw` bytes.

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
}
