//! Kubernetes objects read from multi-document YAML (kustomize or Helm output), keyed by kind,
//! namespace and name, and compared field by field.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// Parses every non-empty YAML document of `text`; a `kind: List` is flattened into its items.
pub fn parse_documents(text: &str) -> Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).context("parsing YAML")?;
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        match doc {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(Value::Array(items)) = map.get("items") {
                    out.extend(items.iter().cloned());
                }
            }
            Value::Object(_) => out.push(doc),
            other => bail!("a YAML document is not an object: {other}"),
        }
    }
    Ok(out)
}

/// What identifies an object in a cluster (the API group is part of `api_group`, the version is not).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub api_group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.api_group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.api_group)
        };
        if self.namespace.is_empty() {
            write!(f, "{}{group} {}", self.kind, self.name)
        } else {
            write!(f, "{}{group} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The key of one object. Fails if kind or name is missing.
pub fn key(obj: &Value) -> Result<ObjectKey> {
    let api_version = str_at(obj, "/apiVersion");
    let api_group = api_version
        .rsplit_once('/')
        .map_or("", |(group, _)| group)
        .to_owned();
    let kind = str_at(obj, "/kind").to_owned();
    let name = str_at(obj, "/metadata/name").to_owned();
    if kind.is_empty() || name.is_empty() {
        bail!("object without kind or metadata.name: {obj}");
    }
    Ok(ObjectKey {
        api_group,
        kind,
        namespace: str_at(obj, "/metadata/namespace").to_owned(),
        name,
    })
}

/// Objects by key; fails on a duplicate key.
pub fn index(objs: &[Value]) -> Result<BTreeMap<ObjectKey, Value>> {
    let mut map = BTreeMap::new();
    for obj in objs {
        let k = key(obj)?;
        if map.insert(k.clone(), obj.clone()).is_some() {
            bail!("{k} appears twice");
        }
    }
    Ok(map)
}

/// The keys of `objs`.
pub fn keys(objs: &[Value]) -> Result<BTreeSet<ObjectKey>> {
    Ok(index(objs)?.into_keys().collect())
}

/// Formats a set of keys one per line, for messages.
pub fn list(keys: &BTreeSet<ObjectKey>) -> String {
    keys.iter()
        .map(|k| format!("  {k}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every container image of a workload object (Deployment, DaemonSet, ...), init containers included.
pub fn images(obj: &Value) -> Vec<String> {
    [
        "/spec/template/spec/containers",
        "/spec/template/spec/initContainers",
    ]
    .iter()
    .filter_map(|p| obj.pointer(p).and_then(Value::as_array))
    .flatten()
    .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_owned))
    .collect()
}

/// A copy of `obj` with every container image replaced by `image`.
pub fn with_images(obj: &Value, image: &str) -> Value {
    let mut obj = obj.clone();
    for p in [
        "/spec/template/spec/containers",
        "/spec/template/spec/initContainers",
    ] {
        if let Some(Value::Array(containers)) = obj.pointer_mut(p) {
            for c in containers {
                if let Some(slot) = c.get_mut("image") {
                    *slot = Value::String(image.to_owned());
                }
            }
        }
    }
    obj
}

/// The JSON pointers at which `a` and `b` differ (a missing field counts as a difference), with
/// both values, at most `limit` of them.
pub fn differences(a: &Value, b: &Value, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    diff_into(a, b, String::new(), &mut out, limit);
    out
}

fn diff_into(a: &Value, b: &Value, at: String, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let names: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for n in names {
                let path = format!("{at}/{}", n.replace('~', "~0").replace('/', "~1"));
                match (x.get(n), y.get(n)) {
                    (Some(p), Some(q)) => diff_into(p, q, path, out, limit),
                    (p, q) => out.push(format!("{path}: {} vs {}", show(p), show(q))),
                }
                if out.len() >= limit {
                    return;
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_into(p, q, format!("{at}/{i}"), out, limit);
            }
        }
        _ => out.push(format!(
            "{}: {a} vs {b}",
            if at.is_empty() { "/" } else { &at }
        )),
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "(absent)".to_owned(), ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_documents_skipping_empty_ones_and_flattening_lists() {
        let text = "---\n# only a comment\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  namespace: ns\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRole\n  metadata: {name: r}\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        let keys: Vec<String> = docs.iter().map(|d| key(d).unwrap().to_string()).collect();
        assert_eq!(
            keys,
            [
                "ServiceAccount ns/a",
                "ClusterRole.rbac.authorization.k8s.io r"
            ]
        );
    }

    #[test]
    fn yaml_scalars_keep_their_types() {
        let docs = parse_documents(
            "kind: X\nmetadata: {name: x, labels: {a: \"true\"}}\nspec: {n: 100, b: true, s: \"\"}\n",
        )
        .unwrap();
        assert_eq!(docs[0]["metadata"]["labels"]["a"], json!("true"));
        assert_eq!(docs[0]["spec"], json!({"n": 100, "b": true, "s": ""}));
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        let a = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"}});
        assert!(index(&[a.clone(), a]).is_err());
    }

    #[test]
    fn images_are_found_and_replaced() {
        let d = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "x:1"}], "initContainers": [{"name": "b", "image": "y:2"}]}}}});
        assert_eq!(images(&d), ["x:1", "y:2"]);
        assert_eq!(images(&with_images(&d, "z")), ["z", "z"]);
    }

    #[test]
    fn differences_name_the_paths() {
        let a = json!({"spec": {"a": 1, "list": [1, 2], "only": {"x": 1}}});
        let b = json!({"spec": {"a": 2, "list": [1, 3], "other/name": true}});
        let d = differences(&a, &b, 10);
        assert_eq!(
            d,
            [
                "/spec/a: 1 vs 2",
                "/spec/list/1: 2 vs 3",
                "/spec/only: {\"x\":1} vs (absent)",
                "/spec/other~1name: (absent) vs true",
            ]
        );
        assert_eq!(differences(&a, &a, 10), Vec::<String>::new());
        assert_eq!(differences(&a, &b, 1).len(), 1);
    }
}
