//! `/openapi/v2`, `/openapi/v3` and `/openapi/v3/apis/metrics.k8s.io/{v}`
//! (spec E.12). The documents are hand-written for v1beta1, kept in
//! `openapi/*.json`, and at startup rewritten for each served version,
//! merged (v2) and minified with the binary version filled in.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::discovery::{MetricsVersion, ServedVersions};

const V2: &str = include_str!("../openapi/v2.json");
const V3_GV: &str = include_str!("../openapi/v3-metrics.k8s.io-v1beta1.json");

/// The v3 document of one group-version.
#[derive(Debug)]
pub(crate) struct GroupVersionDoc {
    pub(crate) version: MetricsVersion,
    pub(crate) body: Bytes,
    /// Uppercase hex SHA-512 of `body`.
    pub(crate) hash: String,
}

/// The served documents.
#[derive(Debug)]
pub(crate) struct OpenApi {
    /// Both versions' paths and definitions in one document.
    pub(crate) v2: Bytes,
    pub(crate) v3_index: Bytes,
    /// One per served version, preferred first.
    pub(crate) v3: Vec<GroupVersionDoc>,
}

/// `strings.Split(version, "-")[0]`.
pub(crate) fn info_version(git_version: &str) -> &str {
    git_version.split('-').next().unwrap_or(git_version)
}

/// The v1beta1 document rewritten for `version`: the schemas are the same,
/// only paths, definition names, tags, operation ids and the
/// group-version-kind extensions name the version.
fn for_version(doc: &str, version: MetricsVersion) -> String {
    match version {
        MetricsVersion::V1beta1 => doc.to_owned(),
        MetricsVersion::V1 => doc.replace("v1beta1", "v1").replace("V1beta1", "V1"),
    }
}

impl OpenApi {
    pub(crate) fn new(git_version: &str, versions: ServedVersions) -> Self {
        let version = info_version(git_version);
        let render = |doc: &str| -> Vec<u8> {
            let mut quoted = Vec::new();
            crate::json::write_go_string(&mut quoted, version);
            let q = String::from_utf8_lossy(&quoted).into_owned();
            minify(&doc.replace("\"@VERSION@\"", &q))
        };
        let v3: Vec<GroupVersionDoc> = versions
            .iter()
            .map(|v| {
                let body = render(&for_version(V3_GV, v));
                let digest = ring::digest::digest(&ring::digest::SHA512, &body);
                GroupVersionDoc {
                    version: v,
                    body: Bytes::from(body),
                    hash: digest.as_ref().iter().map(|b| format!("{b:02X}")).collect(),
                }
            })
            .collect();
        let mut index = String::from("{\"paths\":{");
        // Sorted by path, as Go writes a map: "v1" before "v1beta1".
        for (i, doc) in v3.iter().enumerate() {
            if i > 0 {
                index.push(',');
            }
            let gv = doc.version.group_version();
            index.push_str(&format!(
                "\"apis/{gv}\":{{\"serverRelativeURL\":\"/openapi/v3/apis/{gv}?hash={}\"}}",
                doc.hash
            ));
        }
        index.push_str("}}");
        let v2_docs: Vec<Vec<u8>> = versions
            .iter()
            .map(|v| render(&for_version(V2, v)))
            .collect();
        Self {
            v2: Bytes::from(merge_documents(&v2_docs, &["paths", "definitions"])),
            v3_index: Bytes::from(index.into_bytes()),
            v3,
        }
    }

    /// The v3 document of the served version named `version`.
    pub(crate) fn v3_document(&self, version: &str) -> Option<&GroupVersionDoc> {
        self.v3.iter().find(|d| d.version.as_str() == version)
    }
}

/// Merges minified JSON documents of the same shape: the top-level fields
/// of the first, where the objects under `merged` are the union of every
/// document's entries, sorted by key like Go's map encoding.
fn merge_documents(docs: &[Vec<u8>], merged: &[&str]) -> Vec<u8> {
    let texts: Vec<&str> = docs
        .iter()
        .map(|d| std::str::from_utf8(d).unwrap_or("{}"))
        .collect();
    let Some(first) = texts.first() else {
        return b"{}".to_vec();
    };
    let mut out = String::with_capacity(first.len() * texts.len());
    out.push('{');
    for (i, (key, value)) in object_entries(first).into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push(':');
        let name = key.trim_matches('"');
        if !merged.contains(&name) {
            out.push_str(value);
            continue;
        }
        let mut union: BTreeMap<&str, &str> = BTreeMap::new();
        for doc in &texts {
            let Some((_, object)) = object_entries(doc)
                .into_iter()
                .find(|(k, _)| k.trim_matches('"') == name)
            else {
                continue;
            };
            union.extend(object_entries(object));
        }
        out.push('{');
        for (j, (k, v)) in union.into_iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
    }
    out.push('}');
    out.into_bytes()
}

/// The `(quoted key, raw value)` entries of a minified JSON object.
fn object_entries(object: &str) -> Vec<(&str, &str)> {
    let b = object.as_bytes();
    let mut out = Vec::new();
    if b.first() != Some(&b'{') {
        return out;
    }
    let mut i = 1;
    while i < b.len() && b[i] == b'"' {
        let key_end = string_end(b, i);
        let value_start = key_end + 1;
        let value_end = value_end(b, value_start);
        match (object.get(i..key_end), object.get(value_start..value_end)) {
            (Some(k), Some(v)) => out.push((k, v)),
            _ => break,
        }
        i = value_end + 1;
    }
    out
}

/// The index just after the string starting at `b[start]` (a quote).
fn string_end(b: &[u8], start: usize) -> usize {
    let mut j = start + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

/// The index of the `,` or closing bracket that ends the value at `start`.
fn value_end(b: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut j = start;
    while j < b.len() {
        match b[j] {
            b'"' => {
                j = string_end(b, j);
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return j,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => return j,
            _ => {}
        }
        j += 1;
    }
    b.len()
}

/// Removes insignificant whitespace from a JSON document.
fn minify(doc: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(doc.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in doc.as_bytes() {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.push(b);
        } else if !b.is_ascii_whitespace() {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_drops_the_suffix() {
        assert_eq!(info_version("v0.9.0-12-gabc"), "v0.9.0");
        assert_eq!(info_version("v0.9.0"), "v0.9.0");
    }

    #[test]
    fn merging_unions_the_named_objects_in_key_order() {
        let a =
            br#"{"s":"2","paths":{"/b":{"x":1},"/d":[1,"}"]},"defs":{"k":{}},"z":true}"#.to_vec();
        let b =
            br#"{"s":"9","paths":{"/a":{"y":"\"{"},"/c":2},"defs":{"k":{}},"z":false}"#.to_vec();
        assert_eq!(
            String::from_utf8(merge_documents(&[a, b], &["paths", "defs"])).unwrap_or_default(),
            r#"{"s":"2","paths":{"/a":{"y":"\"{"},"/b":{"x":1},"/c":2,"/d":[1,"}"]},"defs":{"k":{}},"z":true}"#
        );
    }

    #[test]
    fn both_versions_are_documented_and_v1_names_no_beta() {
        let api = OpenApi::new("v0.1.0", ServedVersions::default());
        let v2 = std::str::from_utf8(&api.v2).unwrap_or_default();
        for path in [
            "nodes",
            "pods",
            "nodes/{name}",
            "namespaces/{namespace}/pods/{name}",
        ] {
            for v in ["v1", "v1beta1"] {
                assert!(
                    v2.contains(&format!("\"/apis/metrics.k8s.io/{v}/{path}\":")),
                    "{v} {path}"
                );
            }
        }
        assert!(v2.contains("\"io.k8s.metrics.pkg.apis.metrics.v1.PodMetrics\":"));
        assert!(v2.contains("\"io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics\":"));
        let v1 = api
            .v3_document("v1")
            .map(|d| d.body.clone())
            .unwrap_or_default();
        let v1 = std::str::from_utf8(&v1).unwrap_or_default();
        assert!(v1.contains("listMetricsV1NodeMetrics"));
        assert!(!v1.contains("beta"));
        let index = std::str::from_utf8(&api.v3_index).unwrap_or_default();
        assert!(
            index.find("apis/metrics.k8s.io/v1\"") < index.find("apis/metrics.k8s.io/v1beta1\"")
        );
        let only = OpenApi::new(
            "v0.1.0",
            ServedVersions::new(&[MetricsVersion::V1beta1]).unwrap_or_default(),
        );
        assert!(only.v3_document("v1").is_none());
        assert!(
            !std::str::from_utf8(&only.v2)
                .unwrap_or_default()
                .contains("metrics.v1.")
        );
    }

    #[test]
    fn minify_keeps_string_whitespace() {
        assert_eq!(
            minify("{ \"a b\" : [ 1, \"\\\" x\" ] }"),
            b"{\"a b\":[1,\"\\\" x\"]}".to_vec()
        );
    }
}
