//! `/openapi/v2`, `/openapi/v3` and `/openapi/v3/apis/metrics.k8s.io/v1beta1`
//! (spec E.12). The documents are hand-written, kept in `openapi/*.json`,
//! and minified at startup with the binary version filled in.

use bytes::Bytes;

const V2: &str = include_str!("../openapi/v2.json");
const V3_GV: &str = include_str!("../openapi/v3-metrics.k8s.io-v1beta1.json");

/// The served documents.
#[derive(Debug)]
pub(crate) struct OpenApi {
    pub(crate) v2: Bytes,
    pub(crate) v3_group_version: Bytes,
    pub(crate) v3_index: Bytes,
    /// Uppercase hex SHA-512 of the v3 group-version document.
    pub(crate) v3_hash: String,
}

/// `strings.Split(version, "-")[0]`.
pub(crate) fn info_version(git_version: &str) -> &str {
    git_version.split('-').next().unwrap_or(git_version)
}

impl OpenApi {
    pub(crate) fn new(git_version: &str) -> Self {
        let version = info_version(git_version);
        let render = |doc: &str| -> Vec<u8> {
            let mut quoted = Vec::new();
            crate::json::write_go_string(&mut quoted, version);
            let q = String::from_utf8_lossy(&quoted).into_owned();
            minify(&doc.replace("\"@VERSION@\"", &q))
        };
        let v3 = render(V3_GV);
        let digest = ring::digest::digest(&ring::digest::SHA512, &v3);
        let hash: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        let index = format!(
            "{{\"paths\":{{\"apis/metrics.k8s.io/v1beta1\":{{\"serverRelativeURL\":\"/openapi/v3/apis/metrics.k8s.io/v1beta1?hash={hash}\"}}}}}}"
        );
        Self {
            v2: Bytes::from(render(V2)),
            v3_group_version: Bytes::from(v3),
            v3_index: Bytes::from(index.into_bytes()),
            v3_hash: hash,
        }
    }
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
    fn minify_keeps_string_whitespace() {
        assert_eq!(
            minify("{ \"a b\" : [ 1, \"\\\" x\" ] }"),
            b"{\"a b\":[1,\"\\\" x\"]}".to_vec()
        );
    }
}
