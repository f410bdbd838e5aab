//! The Node index: every Node, trimmed on arrival to what the API and the scraper read
//! (spec C.1–C.3, E.5).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use metrics_server_api::{LabelMap, NodeMeta};
use metrics_server_core::LabelSelector;
use metrics_server_kubelet::NodeTarget;
use metrics_server_kubelet::target::RESOURCE_METRICS_PATH_ANNOTATION;

/// What is kept of one Node: its API view (name, labels) and its scrape target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    /// Name and labels, shared with API responses.
    pub meta: Arc<NodeMeta>,
    /// Addresses, kubelet port, metrics-path annotation and readiness.
    pub target: NodeTarget,
}

impl NodeEntry {
    /// Trims a full Node. `None` when it has no name (never sent by kube-apiserver).
    pub fn from_node(node: Node) -> Option<Self> {
        let Node {
            metadata, status, ..
        } = node;
        let name = metadata.name.filter(|n| !n.is_empty())?;
        let labels: LabelMap = metadata.labels.unwrap_or_default();
        let metrics_path_annotation = metadata
            .annotations
            .and_then(|mut a| a.remove(RESOURCE_METRICS_PATH_ANNOTATION));
        let status = status.unwrap_or_default();
        let addresses = status
            .addresses
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.type_, a.address))
            .collect();
        let status_port = status
            .daemon_endpoints
            .and_then(|d| d.kubelet_endpoint)
            .and_then(|e| u16::try_from(e.port).ok())
            .unwrap_or(0);
        let ready = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        Some(Self {
            meta: Arc::new(NodeMeta {
                name: name.clone(),
                labels,
            }),
            target: NodeTarget {
                name,
                addresses,
                status_port,
                metrics_path_annotation,
                ready,
            },
        })
    }

    /// The node name.
    pub fn name(&self) -> &str {
        &self.meta.name
    }
}

/// All nodes by name.
#[derive(Debug, Default)]
pub struct NodeIndex {
    nodes: HashMap<String, NodeEntry>,
}

impl NodeIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a node from a full object.
    pub fn apply(&mut self, node: Node) {
        if let Some(entry) = NodeEntry::from_node(node) {
            self.apply_entry(entry);
        }
    }

    /// Adds or replaces an already trimmed node.
    pub fn apply_entry(&mut self, entry: NodeEntry) {
        self.nodes.insert(entry.meta.name.clone(), entry);
    }

    /// Removes the node called `name`.
    pub fn delete(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    /// Replaces the whole content (a relist).
    pub fn reset(&mut self, entries: Vec<NodeEntry>) {
        self.nodes = entries
            .into_iter()
            .map(|e| (e.meta.name.clone(), e))
            .collect();
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node called `name`.
    pub fn get(&self, name: &str) -> Option<&NodeEntry> {
        self.nodes.get(name)
    }

    /// API views of the nodes whose labels pass `filter`.
    pub fn list(&self, filter: impl Fn(&LabelMap) -> bool) -> Vec<Arc<NodeMeta>> {
        self.nodes
            .values()
            .filter(|e| filter(&e.meta.labels))
            .map(|e| Arc::clone(&e.meta))
            .collect()
    }

    /// Scrape targets of the nodes selected by `--node-selector`, sorted by name so that
    /// ticks are deterministic.
    pub fn targets(&self, selector: &LabelSelector) -> Vec<NodeTarget> {
        let mut targets: Vec<NodeTarget> = self
            .nodes
            .values()
            .filter(|e| selector.matches(&e.meta.labels))
            .map(|e| e.target.clone())
            .collect();
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        targets
    }
}
