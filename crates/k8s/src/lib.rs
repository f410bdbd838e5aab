//! Cluster view of metrics-server-rs: what the informers of upstream metrics-server keep,
//! as plain indexes fed by kube-rs watches (spec A.1, C.1–C.4, E.5, K.12, K.13).
//!
//! ```text
//!  kube-apiserver
//!    │ watch Node (full objects)            │ watch PartialObjectMeta<Pod>
//!    │                                      │   fieldSelector=status.phase=Running
//!    ▼                                      ▼
//!  EventHandler<NodeIndex>               EventHandler<PodIndex>      (watch.rs; errors logged,
//!    │ trim on arrival: name, labels,      │ trim: namespace, name,    retried with backoff)
//!    │ addresses, kubelet port, path       │ labels
//!    │ annotation, Ready                   │
//!    ▼                                      ▼
//!  Arc<RwLock<NodeIndex>>                Arc<RwLock<PodIndex>>
//!    └───────────────┬──────────────────────┘
//!                    ▼
//!                 Cluster ── ClusterView (API: list/get with label filters)
//!                         └─ targets(--node-selector) → Vec<NodeTarget> (scraper, per tick)
//! ```
//!
//! [`config`] builds the kube clients (`--kubeconfig` or in-cluster, plus the delegated
//! authentication/authorization clients) and the kubelet credentials upstream derives from the
//! same kubeconfig.
//!
//! Architecture invariants: indexes never do IO and never fail; a watch error never ends a
//! watch; the [`Synced`] signal turns true on the first complete list and never goes back.

pub mod cluster;
pub mod config;
mod error;
pub mod node;
pub mod pod;
pub mod watch;

pub use cluster::{Cluster, SharedNodeIndex, SharedPodIndex};
pub use config::{KubeletCredentialFlags, client, kubelet_client_config, load_config};
pub use error::ConfigError;
pub use node::{NodeEntry, NodeIndex};
pub use pod::{PodIndex, pod_meta};
pub use watch::{
    EventHandler, RUNNING_PODS_FIELD_SELECTOR, Synced, WatchedIndex, node_watch, pod_watch,
};

#[cfg(test)]
mod tests;
