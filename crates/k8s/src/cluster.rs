//! The shared indexes and the [`ClusterView`] the API reads.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use metrics_server_api::{ClusterError, ClusterView, LabelFilter, NodeMeta, PodMeta};
use metrics_server_core::LabelSelector;
use metrics_server_kubelet::NodeTarget;

use crate::node::NodeIndex;
use crate::pod::PodIndex;

/// The Node index, written by the node watch and read by requests and ticks.
pub type SharedNodeIndex = Arc<RwLock<NodeIndex>>;

/// The running-Pod index, written by the pod watch and read by requests.
pub type SharedPodIndex = Arc<RwLock<PodIndex>>;

/// Read lock that survives a panicked writer (the index is always left consistent).
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write lock that survives a panicked writer.
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Both indexes. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    nodes: SharedNodeIndex,
    pods: SharedPodIndex,
}

impl Cluster {
    /// Empty indexes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Node index.
    pub fn nodes(&self) -> &SharedNodeIndex {
        &self.nodes
    }

    /// The running-Pod index.
    pub fn pods(&self) -> &SharedPodIndex {
        &self.pods
    }

    /// Scrape targets of the nodes `--node-selector` keeps, sorted by name (spec C.1).
    pub fn targets(&self, selector: &LabelSelector) -> Vec<NodeTarget> {
        read(&self.nodes).targets(selector)
    }

    /// Runs `f` with the Node index locked for writing (tests and tools).
    pub fn with_nodes<R>(&self, f: impl FnOnce(&mut NodeIndex) -> R) -> R {
        f(&mut write(&self.nodes))
    }

    /// Runs `f` with the Pod index locked for writing (tests and tools).
    pub fn with_pods<R>(&self, f: impl FnOnce(&mut PodIndex) -> R) -> R {
        f(&mut write(&self.pods))
    }
}

impl ClusterView for Cluster {
    fn list_nodes(&self, filter: LabelFilter<'_>) -> Result<Vec<Arc<NodeMeta>>, ClusterError> {
        Ok(read(&self.nodes).list(filter))
    }

    fn get_node(&self, name: &str) -> Result<Option<Arc<NodeMeta>>, ClusterError> {
        Ok(read(&self.nodes).get(name).map(|e| Arc::clone(&e.meta)))
    }

    fn list_pods(
        &self,
        namespace: Option<&str>,
        filter: LabelFilter<'_>,
    ) -> Result<Vec<Arc<PodMeta>>, ClusterError> {
        Ok(read(&self.pods).list(namespace, filter))
    }

    fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Arc<PodMeta>>, ClusterError> {
        Ok(read(&self.pods).get(namespace, name))
    }
}
