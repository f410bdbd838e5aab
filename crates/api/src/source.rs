//! Where metrics come from: the core store's published snapshot.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use metrics_server_core::{PodUsage, ResourceUsage, SharedSnapshot, Snapshot};

use crate::cluster::PodMeta;

/// One consistent read view (a snapshot) for the duration of a request.
pub trait MetricsView: Send + Sync {
    /// Node usage per spec D.4, `None` when nothing is servable.
    fn node_metrics(&self, name: &str) -> Option<ResourceUsage>;
    /// Pod usage per spec D.4, `None` when nothing is servable.
    fn pod_metrics(&self, namespace: &str, name: &str) -> Option<PodUsage>;
    /// [`Self::pod_metrics`] of each of `pods`: calls `found` with the index
    /// in `pods` and the usage of each pod that has one, in the order of
    /// `pods`. Lists pass pods sorted by (namespace, name), which a sorted
    /// store can walk instead of searching for each pod.
    fn pods_metrics(&self, pods: &[Arc<PodMeta>], found: &mut dyn FnMut(usize, PodUsage)) {
        for (i, p) in pods.iter().enumerate() {
            if let Some(usage) = self.pod_metrics(&p.namespace, &p.name) {
                found(i, usage);
            }
        }
    }
    /// Storage readiness (spec D.5).
    fn is_ready(&self) -> bool;
}

/// Hands out views; production wraps the store's [`SharedSnapshot`].
pub trait MetricsSource: Send + Sync + 'static {
    /// The current view.
    fn view(&self) -> Arc<dyn MetricsView>;
}

impl MetricsView for Snapshot {
    fn node_metrics(&self, name: &str) -> Option<ResourceUsage> {
        Snapshot::node_metrics(self, name)
    }
    fn pod_metrics(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        Snapshot::pod_metrics(self, namespace, name)
    }
    fn pods_metrics(&self, pods: &[Arc<PodMeta>], found: &mut dyn FnMut(usize, PodUsage)) {
        let mut cursor = self.pod_cursor();
        for (i, p) in pods.iter().enumerate() {
            if let Some(usage) = cursor.pod_metrics(&p.namespace, &p.name) {
                found(i, usage);
            }
        }
    }
    fn is_ready(&self) -> bool {
        Snapshot::is_ready(self)
    }
}

impl MetricsSource for SharedSnapshot {
    fn view(&self) -> Arc<dyn MetricsView> {
        self.load()
    }
}

impl MetricsSource for ArcSwap<Snapshot> {
    fn view(&self) -> Arc<dyn MetricsView> {
        self.load_full()
    }
}

/// Wall-clock time, injectable so tests control "now".
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Unix nanoseconds of `t` (negative before 1970, saturating).
pub(crate) fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}
