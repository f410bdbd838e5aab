//! The running-Pod index: metadata only (namespace, name, labels) of pods in phase `Running`
//! (spec A.1, K.12).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::core::PartialObjectMeta;
use metrics_server_api::{LabelMap, PodMeta};

/// Trims pod metadata to what the API serves. `None` without a namespace or name.
pub fn pod_meta(pod: PartialObjectMeta<Pod>) -> Option<PodMeta> {
    let meta = pod.metadata;
    let namespace = meta.namespace.filter(|n| !n.is_empty())?;
    let name = meta.name.filter(|n| !n.is_empty())?;
    let created = meta
        .creation_timestamp
        .and_then(|t| u64::try_from(t.0.as_second()).ok())
        .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    Some(PodMeta {
        namespace,
        name,
        labels: meta.labels.unwrap_or_default(),
        created,
    })
}

/// Running pods by namespace, then name.
///
/// Ordered maps, so lists come out in the order the API serves them
/// (namespace, then name, bytewise) and need no sort per request.
#[derive(Debug, Default)]
pub struct PodIndex {
    namespaces: BTreeMap<String, BTreeMap<String, Arc<PodMeta>>>,
    len: usize,
}

impl PodIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a pod from its metadata.
    pub fn apply(&mut self, pod: PartialObjectMeta<Pod>) {
        if let Some(meta) = pod_meta(pod) {
            self.apply_meta(meta);
        }
    }

    /// Adds or replaces an already trimmed pod.
    pub fn apply_meta(&mut self, meta: PodMeta) {
        let names = self.namespaces.entry(meta.namespace.clone()).or_default();
        if names.insert(meta.name.clone(), Arc::new(meta)).is_none() {
            self.len += 1;
        }
    }

    /// Removes the pod `namespace/name`.
    pub fn delete(&mut self, namespace: &str, name: &str) {
        if let Some(names) = self.namespaces.get_mut(namespace) {
            if names.remove(name).is_some() {
                self.len -= 1;
            }
            if names.is_empty() {
                self.namespaces.remove(namespace);
            }
        }
    }

    /// Replaces the whole content (a relist).
    pub fn reset(&mut self, metas: Vec<PodMeta>) {
        self.namespaces.clear();
        self.len = 0;
        for meta in metas {
            self.apply_meta(meta);
        }
    }

    /// Number of pods.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no pods.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pod `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodMeta>> {
        self.namespaces.get(namespace)?.get(name).cloned()
    }

    /// Pods in `namespace` (all when `None`) whose labels pass `filter`,
    /// sorted by namespace, then name.
    pub fn list(
        &self,
        namespace: Option<&str>,
        filter: impl Fn(&LabelMap) -> bool,
    ) -> Vec<Arc<PodMeta>> {
        let keep = |p: &&Arc<PodMeta>| filter(&p.labels);
        match namespace {
            Some(ns) => self
                .namespaces
                .get(ns)
                .map(|names| names.values().filter(keep).cloned().collect())
                .unwrap_or_default(),
            None => self
                .namespaces
                .values()
                .flat_map(BTreeMap::values)
                .filter(keep)
                .cloned()
                .collect(),
        }
    }
}
