//! Per-node scrape health, so operators can tell "cannot connect" from "slow kubelet" from
//! "kubelet reports zeros" without reading logs (user pain 1.2).
//!
//! One small record per node, updated once per node per tick under a short lock; the API
//! layer reads a snapshot. Nodes that were not targeted in the latest tick are forgotten.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::error::{ErrorClass, ScrapeError};
use crate::target::ScrapeTarget;

/// How a node's metrics were fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Straight from the kubelet.
    Direct,
    /// Through kube-apiserver's node proxy (the opt-in fallback for blocked kubelet ports).
    NodeProxy,
}

impl Route {
    /// `direct` or `node-proxy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::NodeProxy => "node-proxy",
        }
    }
}

/// One attempt as the health map records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt<'a> {
    pub(crate) target: &'a ScrapeTarget,
    pub(crate) url: &'a str,
    pub(crate) route: Route,
    /// When the data came through the node proxy: why the direct scrape failed.
    pub(crate) direct_error: Option<&'a ScrapeError>,
    pub(crate) latency: Duration,
    pub(crate) at: SystemTime,
}

/// The last known scrape state of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHealthRecord {
    /// Address, port and path chosen for the node, and why.
    pub target: ScrapeTarget,
    /// The URL of the last attempt (the kubelet's, or kube-apiserver's node proxy).
    pub url: String,
    /// How the last attempt fetched.
    pub route: Route,
    /// While scraping through the node proxy: why the direct scrape fails.
    pub direct_error: Option<(ErrorClass, String)>,
    /// When the last attempt finished.
    pub last_attempt: SystemTime,
    /// When the last fully successful scrape finished, if ever.
    pub last_success: Option<SystemTime>,
    /// Class and message of the last failure, cleared by a success.
    pub last_error: Option<(ErrorClass, String)>,
    /// Failures (including incomplete data) since the last success.
    pub consecutive_failures: u32,
    /// Duration of the last attempt.
    pub last_latency: Duration,
}

/// Shared per-node health map. Cloning shares the map.
#[derive(Debug, Clone, Default)]
pub struct NodeHealth {
    inner: Arc<Mutex<HashMap<String, NodeHealthRecord>>>,
}

impl NodeHealth {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, NodeHealthRecord>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the outcome of one attempt (`Ok` = complete node data) and returns whether the
    /// node's error class changed (a first failure, another class, or a recovery), so callers log
    /// a reason once per change rather than once per tick.
    pub(crate) fn record(
        &self,
        node: &str,
        attempt: Attempt<'_>,
        outcome: Result<(), &ScrapeError>,
    ) -> bool {
        let Attempt {
            target,
            url,
            route,
            direct_error,
            latency,
            at,
        } = attempt;
        let mut map = self.lock();
        let rec = match map.get_mut(node) {
            Some(rec) => rec,
            None => map.entry(node.to_owned()).or_insert(NodeHealthRecord {
                target: target.clone(),
                url: String::new(),
                route,
                direct_error: None,
                last_attempt: at,
                last_success: None,
                last_error: None,
                consecutive_failures: 0,
                last_latency: latency,
            }),
        };
        if rec.target != *target {
            rec.target = target.clone();
        }
        if rec.url != url {
            url.clone_into(&mut rec.url);
        }
        rec.route = route;
        rec.direct_error = direct_error.map(|e| (e.class(), e.to_string()));
        rec.last_attempt = at;
        rec.last_latency = latency;
        let before = rec.last_error.as_ref().map(|(class, _)| *class);
        match outcome {
            Ok(()) => {
                rec.last_success = Some(at);
                rec.last_error = None;
                rec.consecutive_failures = 0;
            }
            Err(e) => {
                rec.last_error = Some((e.class(), e.to_string()));
                rec.consecutive_failures = rec.consecutive_failures.saturating_add(1);
            }
        }
        before != rec.last_error.as_ref().map(|(class, _)| *class)
    }

    /// Drops records of nodes not in `keep` (deleted or deselected nodes).
    pub(crate) fn retain(&self, keep: &HashSet<&str>) {
        self.lock().retain(|name, _| keep.contains(name.as_str()));
    }

    /// The record of one node.
    pub fn get(&self, node: &str) -> Option<NodeHealthRecord> {
        self.lock().get(node).cloned()
    }

    /// All records, sorted by node name.
    pub fn snapshot(&self) -> Vec<(String, NodeHealthRecord)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{AddressConfig, NodeTarget};

    fn attempt(target: &ScrapeTarget, latency: Duration, at: SystemTime) -> Attempt<'_> {
        Attempt {
            target,
            url: "https://10.0.0.1:10250/metrics/resource",
            route: Route::Direct,
            direct_error: None,
            latency,
            at,
        }
    }

    fn target() -> ScrapeTarget {
        ScrapeTarget::of(&NodeTarget::default(), &AddressConfig::default())
    }

    #[test]
    fn only_a_change_of_error_class_is_reported_as_a_change() {
        let h = NodeHealth::new();
        let tg = target();
        let t = SystemTime::UNIX_EPOCH;
        let d = Duration::ZERO;
        let timeout = ScrapeError::Timeout { url: "u".into() };
        let status = |code| ScrapeError::HttpStatus {
            code,
            reason: String::new(),
        };
        assert!(
            !h.record("n", attempt(&tg, d, t), Ok(())),
            "a first success is no change"
        );
        assert!(
            h.record("n", attempt(&tg, d, t), Err(&timeout)),
            "first failure"
        );
        assert!(
            !h.record("n", attempt(&tg, d, t), Err(&timeout)),
            "same class again"
        );
        assert!(
            h.record("n", attempt(&tg, d, t), Err(&status(401))),
            "another class"
        );
        assert!(!h.record("n", attempt(&tg, d, t), Err(&status(401))));
        assert!(
            h.record("n", attempt(&tg, d, t), Err(&status(403))),
            "another status code"
        );
        assert!(h.record("n", attempt(&tg, d, t), Ok(())), "recovery");
        assert!(!h.record("n", attempt(&tg, d, t), Ok(())));
    }

    #[test]
    fn failures_accumulate_until_a_success_clears_them() {
        let h = NodeHealth::new();
        let tg = target();
        let t0 = SystemTime::UNIX_EPOCH;
        let err = ScrapeError::Timeout { url: "u".into() };
        assert!(h.record("n1", attempt(&tg, Duration::from_secs(1), t0), Err(&err)));
        assert!(h.record(
            "n1",
            attempt(&tg, Duration::from_secs(1), t0),
            Err(&ScrapeError::Incomplete {
                reason: String::new(),
            })
        ));
        let r = h.get("n1").unwrap();
        assert_eq!(r.consecutive_failures, 2);
        assert_eq!(r.last_error.as_ref().unwrap().0, ErrorClass::Incomplete);
        assert_eq!(r.last_success, None);

        let t1 = t0 + Duration::from_secs(15);
        assert!(h.record("n1", attempt(&tg, Duration::from_millis(20), t1), Ok(())));
        let r = h.get("n1").unwrap();
        assert_eq!(
            (r.consecutive_failures, r.last_success, r.last_error),
            (0, Some(t1), None)
        );

        assert!(!h.record("n2", attempt(&tg, Duration::ZERO, t1), Ok(())));
        h.retain(&HashSet::from(["n2"]));
        assert_eq!(h.snapshot().len(), 1);
        assert!(h.get("n1").is_none());
    }
}
