//! Two servers' discovery documents made comparable, in JSON, YAML and protobuf: ours also lists
//! `metrics.k8s.io/v1` (upstream v0.9.0 serves v1beta1 only), and each server advertises its own
//! address in `serverAddressByClientCIDRs`.
//!
//! [`normalize`] removes every v1 entry (v1beta1 becoming the preferred version), so a document of a
//! server of both versions reads as the same document of a server of v1beta1 only, and replaces each
//! server address with `<server>`. Every other byte is kept: bodies that are not discovery documents
//! come back unchanged, and the result is compared byte for byte.

use anyhow::Result;

use crate::wire::{self, Field, Value, text_of};

const V1: &str = "metrics.k8s.io/v1";
const V1BETA1: &str = "metrics.k8s.io/v1beta1";
/// What every server address becomes.
pub const SERVER: &str = "<server>";

/// `body` (of `content_type`) without its `metrics.k8s.io/v1` entries and with server addresses
/// masked, and whether there was a v1 entry.
pub fn normalize(body: &[u8], content_type: &str) -> Result<(Vec<u8>, bool)> {
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf(body);
    }
    let text = String::from_utf8_lossy(body);
    let (text, stripped) = if content_type.starts_with("application/yaml") {
        yaml(&text)
    } else {
        json(&text)
    };
    Ok((text.into_bytes(), stripped))
}

/// The JSON form: the preferred version first (its value is also followed by a comma), then the
/// legacy version entries, then the aggregated version object.
pub fn json(body: &str) -> (String, bool) {
    let legacy = format!("{{\"groupVersion\":\"{V1}\",\"version\":\"v1\"}}");
    let beta = format!("{{\"groupVersion\":\"{V1BETA1}\",\"version\":\"v1beta1\"}}");
    const AGGREGATED: &str = "{\"version\":\"v1\",";
    const AGGREGATED_BETA: &str = "{\"version\":\"v1beta1\",";
    let mut out = body.replace(
        &format!("\"preferredVersion\":{legacy}"),
        &format!("\"preferredVersion\":{beta}"),
    );
    out = out.replace(&format!("{legacy},"), "");
    if let Some(start) = out.find(AGGREGATED)
        && let Some(len) = out[start..].find(AGGREGATED_BETA)
    {
        out.replace_range(start..start + len, "");
    }
    let stripped = out != body;
    (mask_json(&out), stripped)
}

/// Replaces the value of every `"serverAddress":"…"` with [`SERVER`].
fn mask_json(body: &str) -> String {
    const KEY: &str = "\"serverAddress\":\"";
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find(KEY) {
        out.push_str(&rest[..at + KEY.len()]);
        rest = &rest[at + KEY.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push_str(SERVER);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The YAML form, line by line: a `- groupVersion: …/v1` item and its `version` line go, a
/// `groupVersion: …/v1` mapping (the preferred version) becomes v1beta1, an aggregated
/// `- freshness:` item whose own `version` is v1 goes, and `serverAddress` values are masked.
pub fn yaml(body: &str) -> (String, bool) {
    let lines: Vec<&str> = body.split_inclusive('\n').collect();
    let mut out = String::with_capacity(body.len());
    let mut stripped = false;
    let mut i = 0;
    while let Some(line) = lines.get(i) {
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        let trimmed = line.trim();
        if next == "version: v1" && trimmed == format!("- groupVersion: {V1}") {
            (i, stripped) = (i + 2, true);
        } else if next == "version: v1" && trimmed == format!("groupVersion: {V1}") {
            out.push_str(&line.replace(V1, V1BETA1));
            let version = lines.get(i + 1).copied().unwrap_or_default();
            out.push_str(&version.replace("version: v1", "version: v1beta1"));
            (i, stripped) = (i + 2, true);
        } else if let Some(end) = aggregated_v1_item(&lines, i) {
            (i, stripped) = (end, true);
        } else if let Some(value) = trimmed.strip_prefix("serverAddress: ") {
            out.push_str(&line.replace(value, SERVER));
            i += 1;
        } else {
            out.push_str(line);
            i += 1;
        }
    }
    (out, stripped)
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// When `lines[start]` opens an item of aggregated discovery's `versions` (`- freshness: …`) whose
/// own `version` key is v1: the index of the first line after the item.
fn aggregated_v1_item(lines: &[&str], start: usize) -> Option<usize> {
    let first = lines.get(start)?;
    if !first.trim_start().starts_with("- freshness: ") {
        return None;
    }
    let dash = indent(first);
    let end = (start + 1..lines.len())
        .find(|&j| indent(lines[j]) <= dash)
        .unwrap_or(lines.len());
    let own_version = format!("{}version: v1", " ".repeat(dash + 2));
    lines[start..end]
        .iter()
        .any(|l| l.trim_end_matches('\n') == own_version)
        .then_some(end)
}

/// The protobuf form, edited as a tree and encoded again; other kinds come back unchanged.
pub fn protobuf(body: &[u8]) -> Result<(Vec<u8>, bool)> {
    let kind = wire::parse(body)?.kind;
    if !matches!(
        kind.as_str(),
        "APIGroupList" | "APIGroup" | "APIGroupDiscoveryList"
    ) {
        return Ok((body.to_vec(), false));
    }
    let mut tree = wire::decode_body_exact(body)?;
    let mut stripped = false;
    if let Some(raw) = tree
        .iter_mut()
        .find(|f| f.number == 2)
        .and_then(Field::message_mut)
    {
        stripped = match kind.as_str() {
            "APIGroupList" => messages(raw, 1).fold(false, |s, group| group_without_v1(group) | s),
            "APIGroup" => group_without_v1(raw),
            _ => messages(raw, 2).fold(false, |s, item| aggregated_without_v1(item) | s),
        };
    }
    Ok((wire::encode_body(&tree)?, stripped))
}

/// The embedded messages of field `number`.
fn messages(fields: &mut [Field], number: u64) -> impl Iterator<Item = &mut Vec<Field>> {
    fields
        .iter_mut()
        .filter(move |f| f.number == number)
        .filter_map(Field::message_mut)
}

fn set_text(fields: &mut [Field], number: u64, text: &str) {
    for f in fields.iter_mut().filter(|f| f.number == number) {
        f.value = Value::Bytes(text.as_bytes().to_vec());
    }
}

/// An `APIGroup`: v1 versions removed, a v1 preferred version made v1beta1, addresses masked.
fn group_without_v1(group: &mut Vec<Field>) -> bool {
    let before = group.len();
    group.retain(|f| !(f.number == 2 && f.message().and_then(|m| text_of(m, 2)) == Some("v1")));
    let mut stripped = group.len() != before;
    for preferred in messages(group, 3) {
        if text_of(preferred, 2) == Some("v1") {
            set_text(preferred, 1, V1BETA1);
            set_text(preferred, 2, "v1beta1");
            stripped = true;
        }
    }
    for address in messages(group, 4) {
        set_text(address, 2, SERVER);
    }
    stripped
}

/// An `APIGroupDiscovery`: its v1 `APIVersionDiscovery` removed.
fn aggregated_without_v1(item: &mut Vec<Field>) -> bool {
    let before = item.len();
    item.retain(|f| !(f.number == 2 && f.message().and_then(|m| text_of(m, 1)) == Some("v1")));
    item.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Discovery bodies written by the generic apiserver's handlers for a server of both versions
    /// and for one of v1beta1 only (hack/golden/protobuf), kept by the API crate.
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

    /// Normalizing both, the v1 server's body must give the v1beta1 server's, and only the first
    /// had something to remove.
    fn assert_reads_as_beta(both: &str, beta: &str, content_type: &str) {
        let (ours, stripped) = normalize(&golden(both), content_type).unwrap();
        let (theirs, nothing) = normalize(&golden(beta), content_type).unwrap();
        assert!(stripped && !nothing, "{both}");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{both}"
        );
    }

    #[test]
    fn protobuf_documents_of_both_versions_read_as_v1beta1_only() {
        let pb = "application/vnd.kubernetes.protobuf";
        for doc in ["apis", "group", "aggregated"] {
            let both = format!("discovery_{doc}");
            assert_reads_as_beta(&both, &format!("discovery_beta_{doc}"), pb);
        }
        // Only the address is masked in a v1beta1 document; the resource list has no v1 entry.
        let beta = golden("discovery_beta_apis");
        let (masked, _) = protobuf(&beta).unwrap();
        let tree = wire::decode_body(&masked).unwrap();
        let d = wire::difference(&tree, &wire::decode_body(&beta).unwrap());
        assert_eq!(
            d.as_deref(),
            Some(
                "raw.groups.serverAddressByClientCIDRs.serverAddress: \"<server>\" vs \"127.0.0.1:4443\""
            )
        );
        let list = golden("discovery_resources_v1beta1");
        assert_eq!(protobuf(&list).unwrap(), (list, false));
    }

    #[test]
    fn yaml_documents_of_both_versions_read_as_v1beta1_only() {
        for doc in ["apis", "group", "aggregated"] {
            let both = format!("discovery_{doc}_yaml");
            assert_reads_as_beta(
                &both,
                &format!("discovery_beta_{doc}_yaml"),
                "application/yaml",
            );
        }
        let (masked, _) = yaml("groups:\n  serverAddress: 127.0.0.1:4443\n");
        assert_eq!(masked, "groups:\n  serverAddress: <server>\n");
    }

    #[test]
    fn json_documents_of_both_versions_read_as_v1beta1_only() {
        let both = "{\"versions\":[{\"groupVersion\":\"metrics.k8s.io/v1\",\"version\":\"v1\"},{\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"version\":\"v1beta1\"}],\"preferredVersion\":{\"groupVersion\":\"metrics.k8s.io/v1\",\"version\":\"v1\"},\"serverAddressByClientCIDRs\":[{\"clientCIDR\":\"0.0.0.0/0\",\"serverAddress\":\"127.0.0.1:1\"}]}";
        let beta = "{\"versions\":[{\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"version\":\"v1beta1\"}],\"preferredVersion\":{\"groupVersion\":\"metrics.k8s.io/v1beta1\",\"version\":\"v1beta1\"},\"serverAddressByClientCIDRs\":[{\"clientCIDR\":\"0.0.0.0/0\",\"serverAddress\":\"<server>\"}]}";
        assert_eq!(json(both), (beta.to_owned(), true));
        let status = "{\"kind\":\"Status\",\"message\":\"v1\"}";
        assert_eq!(
            normalize(status.as_bytes(), "application/json").unwrap(),
            (status.as_bytes().to_vec(), false)
        );
    }
}
