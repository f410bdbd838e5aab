//! What the API needs from the Kubernetes object caches (spec E.5).
//!
//! Production backs [`ClusterView`] with the Node informer and the
//! metadata-only, `status.phase=Running` Pod informer; tests use a fake.

use std::collections::BTreeMap;
use std::sync::Arc;

use thiserror::Error;

/// Object labels, sorted by key (Go serializes map keys sorted).
pub type LabelMap = BTreeMap<String, String>;

/// A node as the API sees it: name and labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeMeta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: LabelMap,
}

/// A running pod as the API sees it: namespace, name and labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodMeta {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: LabelMap,
    /// `metadata.creationTimestamp`, to tell a pod too new for usage from a missing one.
    pub created: Option<std::time::SystemTime>,
}

/// A cache read failed. The text ends up in a 500 Status
/// (`failed listing nodes: <text>`).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ClusterError(pub String);

/// A filter over labels, built by the API from the request's
/// `labelSelector` (and, for node lists, `--node-selector`).
pub type LabelFilter<'a> = &'a (dyn Fn(&LabelMap) -> bool + Send + Sync);

/// Read access to the informer caches.
///
/// Implementations must be cheap to call on every request: they read local
/// caches, never the network.
pub trait ClusterView: Send + Sync + 'static {
    /// Nodes whose labels pass `filter`, in any order.
    fn list_nodes(&self, filter: LabelFilter<'_>) -> Result<Vec<Arc<NodeMeta>>, ClusterError>;

    /// The node called `name`; `Ok(None)` when the cache has no such node.
    fn get_node(&self, name: &str) -> Result<Option<Arc<NodeMeta>>, ClusterError>;

    /// Running pods in `namespace` (all namespaces when `None`) whose labels
    /// pass `filter`, in any order; sorted by namespace, then name (bytewise)
    /// is cheapest to serve, as lists go out in that order.
    fn list_pods(
        &self,
        namespace: Option<&str>,
        filter: LabelFilter<'_>,
    ) -> Result<Vec<Arc<PodMeta>>, ClusterError>;

    /// The running pod `namespace/name`; `Ok(None)` when not cached.
    fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Arc<PodMeta>>, ClusterError>;
}

/// An in-memory [`ClusterView`]: useful for tests and tools.
#[derive(Clone, Debug, Default)]
pub struct StaticCluster {
    /// Nodes.
    pub nodes: Vec<Arc<NodeMeta>>,
    /// Pods.
    pub pods: Vec<Arc<PodMeta>>,
    /// When set, every call fails with this text.
    pub error: Option<String>,
}

impl StaticCluster {
    fn check(&self) -> Result<(), ClusterError> {
        match &self.error {
            Some(e) => Err(ClusterError(e.clone())),
            None => Ok(()),
        }
    }
}

impl ClusterView for StaticCluster {
    fn list_nodes(&self, filter: LabelFilter<'_>) -> Result<Vec<Arc<NodeMeta>>, ClusterError> {
        self.check()?;
        Ok(self
            .nodes
            .iter()
            .filter(|n| filter(&n.labels))
            .cloned()
            .collect())
    }

    fn get_node(&self, name: &str) -> Result<Option<Arc<NodeMeta>>, ClusterError> {
        self.check()?;
        Ok(self.nodes.iter().find(|n| n.name == name).cloned())
    }

    fn list_pods(
        &self,
        namespace: Option<&str>,
        filter: LabelFilter<'_>,
    ) -> Result<Vec<Arc<PodMeta>>, ClusterError> {
        self.check()?;
        Ok(self
            .pods
            .iter()
            .filter(|p| namespace.is_none_or(|ns| p.namespace == ns) && filter(&p.labels))
            .cloned()
            .collect())
    }

    fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Arc<PodMeta>>, ClusterError> {
        self.check()?;
        Ok(self
            .pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
            .cloned())
    }
}
