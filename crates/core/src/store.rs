//! Two-point storage (spec D.1-D.6) as immutable per-tick snapshots.
//!
//! The scrape loop owns a [`Store`] and, each tick, adds every node's scrape
//! to a [`TickBuilder`] ([`Store::begin`]) as it arrives, or calls
//! [`Store::apply`] with the merged [`Batch`]. Either builds a new
//! [`Snapshot`] from the previous one and the scrapes; readers keep whatever
//! `Arc<Snapshot>` they loaded, so an API request never waits for a scrape
//! (publish it with [`SharedSnapshot`]).
//!
//! The containers of a snapshot built node by node lie in arrival order;
//! each pod's own containers stay contiguous and sorted by name.
//!
//! Layout: samples are fixed-size `Copy` [`MetricsPoint`]s stored inline;
//! nodes and pods live in sorted vectors (binary search), containers of all
//! pods in one flat vector. Node names, namespaces and container names are
//! interned `Arc<str>` shared across ticks; pods and containers refer to the
//! latter two by a `u32` index into the snapshot's tables, and pod names are
//! copied into one string per snapshot. That keeps a container slot at 64
//! bytes and a pod at 24 bytes plus its name: a cluster has few distinct
//! namespaces and container names, but one name per pod.
//!
//! ```text
//!   Snapshot
//!   ├─ nodes:      [NodeSlot{name, last, prev?}]           sorted by name
//!   ├─ pods:       [PodSlot{ns#, name@, range}]            sorted by (ns, name)
//!   ├─ containers: [ContainerSlot{name#, last, prev?}]     ← pod.range, sorted by name
//!   ├─ namespaces: [Arc<str>]  sorted, so ns# orders like the names
//!   ├─ container_names: [Arc<str>]
//!   └─ pod_names:  String      name@ = a byte range of it
//! ```

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::exposition::{NodeScrape, PodScrape};
use crate::rate::{MetricsPoint, RateError, ResourceUsage, resource_usage};

/// A container first scraped this long after it started gets a synthetic
/// previous point at its start time (upstream `freshContainerMinMetricsResolution`).
pub const FRESH_CONTAINER_MIN_AGE: Duration = Duration::from_secs(10);

// === batch ===

/// Everything one tick scraped: the merge of all successful node scrapes.
///
/// Insertion order matters only for duplicates: like upstream, the first node
/// or pod seen wins and later ones are counted in [`ApplyStats`].
#[derive(Clone, Debug, Default)]
pub struct Batch {
    nodes: Vec<(String, MetricsPoint)>,
    pods: Vec<PodScrape>,
}

impl Batch {
    /// An empty batch (storing it clears the store).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one node's decoded scrape: its node point (if kept) and its pods.
    pub fn add_node_scrape(&mut self, node_name: impl Into<String>, scrape: NodeScrape) {
        if let Some(point) = scrape.node {
            self.nodes.push((node_name.into(), point));
        }
        self.pods.extend(scrape.pods);
    }

    /// Adds a node point directly.
    pub fn push_node(&mut self, node_name: impl Into<String>, point: MetricsPoint) {
        self.nodes.push((node_name.into(), point));
    }

    /// Adds a pod directly.
    pub fn push_pod(&mut self, pod: PodScrape) {
        self.pods.push(pod);
    }

    /// Number of node points.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of pods.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }
}

// === snapshot ===

#[derive(Clone, Debug)]
struct NodeSlot {
    name: Arc<str>,
    last: MetricsPoint,
    prev: Option<MetricsPoint>,
}

#[derive(Clone, Debug)]
struct PodSlot {
    /// Index into [`Snapshot::namespaces`].
    namespace: u32,
    /// The name is `pod_names[name_start..name_start + name_len]`.
    name_start: u32,
    name_len: u32,
    /// The pod's containers are `containers[containers_start..containers_end]`.
    containers_start: u32,
    containers_end: u32,
    /// Upstream keeps a `prev` map entry for the pod only if one of its
    /// containers has a prev.
    has_prev: bool,
}

impl PodSlot {
    fn containers(&self) -> std::ops::Range<usize> {
        self.containers_start as usize..self.containers_end as usize
    }
}

#[derive(Clone, Debug)]
struct ContainerSlot {
    last: MetricsPoint,
    /// Meaningful only when `has_prev` (an `Option` would add 8 bytes).
    prev: PrevPoint,
    /// Index into [`Snapshot::container_names`].
    name: u32,
    has_prev: bool,
}

impl ContainerSlot {
    fn prev(&self) -> Option<PrevPoint> {
        self.has_prev.then_some(self.prev)
    }
}

/// What a rate needs of the older sample of a container: its memory is never
/// served (usage takes the newer sample's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PrevPoint {
    start_time_ns: i64,
    timestamp_ns: i64,
    cumulative_cpu_ns: u64,
}

impl PrevPoint {
    fn of(point: &MetricsPoint) -> Self {
        Self {
            start_time_ns: point.start_time_ns,
            timestamp_ns: point.timestamp_ns,
            cumulative_cpu_ns: point.cumulative_cpu_ns,
        }
    }

    fn point(self) -> MetricsPoint {
        MetricsPoint {
            start_time_ns: self.start_time_ns,
            timestamp_ns: self.timestamp_ns,
            cumulative_cpu_ns: self.cumulative_cpu_ns,
            memory_bytes: 0,
        }
    }
}

/// Counters about one [`Store::apply`], for logs and the
/// `metrics_server_storage_points` gauge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Nodes with a prev (`storage_points{type="node"}`).
    pub node_points: usize,
    /// Containers with a prev (`storage_points{type="container"}`).
    pub container_points: usize,
    /// Node names seen more than once in the batch (first kept).
    pub duplicate_nodes: usize,
    /// Pods seen more than once in the batch (first kept).
    pub duplicate_pods: usize,
    /// Container names repeated inside a pod (first kept).
    pub duplicate_containers: usize,
    /// Nodes whose new point was not newer than the stored prev, so the prev
    /// was dropped (upstream logs this at V(2)).
    pub dropped_node_prevs: usize,
    /// Containers in the same situation.
    pub dropped_container_prevs: usize,
}

/// Metrics for one pod (spec D.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodUsage {
    /// Timestamp of the container with the earliest `last` timestamp
    /// (unix ns). `0` when every container was skipped: Go's zero time, which
    /// the API serializes as `null`.
    pub timestamp_ns: i64,
    /// Window of that same container; `0` when every container was skipped.
    pub window_ns: i64,
    /// Containers with a usable rate, sorted by name.
    pub containers: Vec<ContainerUsage>,
    /// Containers skipped because their rate failed (upstream logs
    /// `Skipping container usage metric` for each).
    pub skipped: Vec<(Arc<str>, RateError)>,
}

/// Metrics for one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerUsage {
    /// Container name.
    pub name: Arc<str>,
    /// Its usage, timestamp and window.
    pub usage: ResourceUsage,
}

/// An immutable view of storage after one tick. Cheap to share (`Arc`).
#[derive(Debug, Default)]
pub struct Snapshot {
    nodes: Vec<NodeSlot>,
    pods: Vec<PodSlot>,
    containers: Vec<ContainerSlot>,
    /// Sorted and distinct, so namespace indexes order like the names.
    namespaces: Vec<Arc<str>>,
    container_names: Vec<Arc<str>>,
    pod_names: String,
    stats: ApplyStats,
}

impl Snapshot {
    /// An empty snapshot (not ready, serves nothing).
    pub fn empty() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn node_slot(&self, name: &str) -> Option<&NodeSlot> {
        self.nodes
            .binary_search_by(|n| (*n.name).cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    fn pod_slot(&self, namespace: &str, name: &str) -> Option<(&PodSlot, &[ContainerSlot])> {
        let ns = self
            .namespaces
            .binary_search_by(|n| (**n).cmp(namespace))
            .ok()?;
        let ns = u32::try_from(ns).ok()?;
        let i = self
            .pods
            .binary_search_by(|p| (p.namespace, self.pod_name(p)).cmp(&(ns, name)))
            .ok()?;
        let pod = &self.pods[i];
        Some((pod, self.containers.get(pod.containers())?))
    }

    fn pod_name(&self, pod: &PodSlot) -> &str {
        let start = pod.name_start as usize;
        self.pod_names
            .get(start..start + pod.name_len as usize)
            .unwrap_or_default()
    }

    fn pod_namespace(&self, pod: &PodSlot) -> &str {
        self.namespaces
            .get(pod.namespace as usize)
            .map_or("", |n| n)
    }

    fn container_name(&self, container: &ContainerSlot) -> &Arc<str> {
        &self.container_names[container.name as usize]
    }

    /// `(namespace, name)` of a stored pod.
    fn pod_key(&self, pod: &PodSlot) -> (&str, &str) {
        (self.pod_namespace(pod), self.pod_name(pod))
    }

    /// Node usage, or `None` when the node has no servable metrics (unknown,
    /// no prev yet, or a failed rate: D.4).
    pub fn node_metrics(&self, name: &str) -> Option<ResourceUsage> {
        self.node_rate(name)?.ok()
    }

    /// Like [`Self::node_metrics`] but tells a failed rate apart, for logging
    /// (`Skipping node usage metric`). `None` means unknown or no prev.
    pub fn node_rate(&self, name: &str) -> Option<Result<ResourceUsage, RateError>> {
        let n = self.node_slot(name)?;
        let prev = n.prev.as_ref()?;
        Some(resource_usage(&n.last, prev))
    }

    /// Pod usage per D.4: `None` unless the pod has a prev and every container
    /// in `last` has a prev. Containers whose rate fails are skipped; if all
    /// are skipped the pod is still returned, with no containers, timestamp 0
    /// and window 0 (upstream quirk).
    pub fn pod_metrics(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        let (pod, containers) = self.pod_slot(namespace, name)?;
        self.pod_usage(pod, containers)
    }

    /// A cursor for looking up many pods: [`PodCursor::pod_metrics`] answers
    /// like [`Self::pod_metrics`], and is cheapest when asked in `(namespace,
    /// name)` order (the order pods are stored in).
    pub fn pod_cursor(&self) -> PodCursor<'_> {
        PodCursor {
            snapshot: self,
            pos: 0,
        }
    }

    /// D.5: at least one node and at least one pod have a prev.
    pub fn is_ready(&self) -> bool {
        self.nodes_ready() && self.pods_ready()
    }

    /// At least one node has a prev.
    pub fn nodes_ready(&self) -> bool {
        self.stats.node_points > 0
    }

    /// At least one pod has a prev.
    pub fn pods_ready(&self) -> bool {
        self.stats.container_points > 0
    }

    /// D.6: number of nodes with a prev.
    pub fn node_points(&self) -> usize {
        self.stats.node_points
    }

    /// D.6: number of containers with a prev.
    pub fn container_points(&self) -> usize {
        self.stats.container_points
    }

    /// Counters from the apply that built this snapshot.
    pub fn stats(&self) -> ApplyStats {
        self.stats
    }

    /// Names of all stored nodes, sorted.
    pub fn node_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.nodes.iter().map(|n| &*n.name)
    }

    /// `(namespace, name)` of all stored pods, sorted.
    pub fn pod_keys(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.pods.iter().map(|p| self.pod_key(p))
    }

    /// D.4 for one stored pod (see [`Snapshot::pod_metrics`]).
    fn pod_usage(&self, pod: &PodSlot, containers: &[ContainerSlot]) -> Option<PodUsage> {
        if !pod.has_prev || containers.iter().any(|c| !c.has_prev) {
            return None;
        }
        let mut out = PodUsage {
            containers: Vec::with_capacity(containers.len()),
            ..PodUsage::default()
        };
        let mut earliest: Option<ResourceUsage> = None;
        for c in containers {
            let Some(prev) = c.prev() else {
                continue;
            };
            let name = Arc::clone(self.container_name(c));
            match resource_usage(&c.last, &prev.point()) {
                Ok(usage) => {
                    // Strictly earlier wins; ties keep the first by name.
                    if earliest.is_none_or(|e| e.timestamp_ns > usage.timestamp_ns) {
                        earliest = Some(usage);
                    }
                    out.containers.push(ContainerUsage { name, usage });
                }
                Err(e) => out.skipped.push((name, e)),
            }
        }
        if let Some(e) = earliest {
            out.timestamp_ns = e.timestamp_ns;
            out.window_ns = e.window_ns;
        }
        Some(out)
    }
}

/// Forward-moving pod lookups in a [`Snapshot`] (see [`Snapshot::pod_cursor`]).
///
/// Each lookup starts where the previous one ended, so keys asked for in
/// `(namespace, name)` order cost one compare each when stored (two when
/// not) rather than a binary search over all pods. A key behind the cursor is still found (by
/// a binary search over the part behind it), so any order gives the same
/// answers.
#[derive(Clone, Debug)]
pub struct PodCursor<'a> {
    snapshot: &'a Snapshot,
    /// Every slot before `pos` is `<=` the previous key.
    pos: usize,
}

impl PodCursor<'_> {
    /// Same answer as [`Snapshot::pod_metrics`].
    pub fn pod_metrics(&mut self, namespace: &str, name: &str) -> Option<PodUsage> {
        let snap = self.snapshot;
        let i = self.seek(namespace, name)?;
        let pod = snap.pods.get(i)?;
        snap.pod_usage(pod, snap.containers.get(pod.containers())?)
    }

    /// Index of the slot `(namespace, name)`, moving the cursor to just past
    /// it (or to where it would be).
    fn seek(&mut self, namespace: &str, name: &str) -> Option<usize> {
        let snap = self.snapshot;
        let pods = &snap.pods;
        let cmp = |p: &PodSlot| snap.pod_key(p).cmp(&(namespace, name));
        let pos = self.pos.min(pods.len());
        // Keys asked in stored order are usually the slot at the cursor: one
        // compare. Equal is an answer whichever way the keys run.
        let found = match pods.get(pos).map(cmp) {
            Some(Ordering::Equal) => Ok(pos),
            Some(Ordering::Less) => gallop(pods, pos + 1, cmp)?,
            // Not after the cursor: absent just before it, or behind it (keys
            // out of order or repeated).
            Some(Ordering::Greater) | None => match pos.checked_sub(1).and_then(|i| pods.get(i)) {
                Some(p) if cmp(p).is_ge() => pods.get(..pos)?.binary_search_by(cmp),
                _ => Err(pos),
            },
        };
        match found {
            Ok(i) => {
                self.pos = i + 1;
                Some(i)
            }
            Err(i) => {
                self.pos = i;
                None
            }
        }
    }
}

/// Binary search of `pods` for the key `cmp` compares with, knowing every
/// slot before `lo` is less than it: probes `lo`, `lo + 2`, `lo + 6`,
/// `lo + 14`, ... until one is not less, then searches the last gap. Costs
/// about twice the log of the distance moved rather than of the length.
fn gallop(
    pods: &[PodSlot],
    mut lo: usize,
    cmp: impl Fn(&PodSlot) -> Ordering,
) -> Option<Result<usize, usize>> {
    let mut step = 1usize;
    let (hi, at_hi) = loop {
        let probe = lo.saturating_add(step - 1);
        let Some(p) = pods.get(probe) else {
            break (pods.len(), None);
        };
        let o = cmp(p);
        if o.is_ge() {
            break (probe, Some(o));
        }
        lo = probe + 1;
        step = step.saturating_mul(2);
    };
    Some(match pods.get(lo..hi)?.binary_search_by(&cmp) {
        Ok(i) => Ok(lo + i),
        Err(i) if lo + i == hi && at_hi == Some(Ordering::Equal) => Ok(hi),
        Err(i) => Err(lo + i),
    })
}

// === store ===

/// The writer side: holds the current snapshot and the interner of node
/// names, namespaces and container names (pod names are not interned: each
/// snapshot copies them into one string).
#[derive(Debug)]
pub struct Store {
    resolution_ns: i64,
    current: Arc<Snapshot>,
    names: HashSet<Arc<str>>,
}

impl Store {
    /// A store for the given `--metric-resolution` (used by the fresh
    /// container rule, D.3.1).
    pub fn new(metric_resolution: Duration) -> Self {
        Self {
            resolution_ns: i64::try_from(metric_resolution.as_nanos()).unwrap_or(i64::MAX),
            current: Snapshot::empty(),
            names: HashSet::new(),
        }
    }

    /// The snapshot built by the last [`Self::apply`] (empty before).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current)
    }

    /// Stores one tick's batch (D.2, D.3): replaces everything, keeping at
    /// most a `prev` per node and container, and returns the new snapshot.
    pub fn apply(&mut self, batch: Batch) -> Arc<Snapshot> {
        let mut tick = self.begin();
        for (order, (name, point)) in (0u64..).zip(batch.nodes) {
            tick.add_node_point(order, &name, point);
        }
        for (order, pod) in (0u64..).zip(batch.pods) {
            tick.add_pod(order, pod);
        }
        tick.finish()
    }

    /// Starts the next snapshot, to be filled node by node as scrapes arrive
    /// (see [`TickBuilder`]). Dropping the builder leaves the store as it was.
    pub fn begin(&mut self) -> TickBuilder<'_> {
        let old = Arc::clone(&self.current);
        TickBuilder {
            nodes: Vec::with_capacity(old.nodes.len()),
            pods: Vec::with_capacity(old.pods.len()),
            containers: Vec::with_capacity(old.containers.len()),
            namespaces: Names::with_capacity(old.namespaces.len()),
            container_names: Names::with_capacity(old.container_names.len()),
            pod_names: String::with_capacity(old.pod_names.len()),
            old,
            store: self,
        }
    }

    /// D.3 rules 1-3 for one container.
    fn container_prev(
        &self,
        new: &MetricsPoint,
        old: Option<&ContainerSlot>,
        old_pod_has_prev: bool,
        dropped_prevs: &mut u32,
    ) -> Option<PrevPoint> {
        // Rule 1: a container first seen 10s..resolution after it started gets
        // a synthetic zero-CPU prev at its start time. A missing start time is
        // Go's zero time, whose age is never below the resolution.
        let age = new.timestamp_ns.saturating_sub(new.start_time_ns);
        if new.start_time_ns != 0
            && new.start_time_ns < new.timestamp_ns
            && age < self.resolution_ns
            && age >= FRESH_CONTAINER_MIN_AGE.as_nanos() as i64
        {
            return Some(PrevPoint {
                start_time_ns: new.start_time_ns,
                timestamp_ns: new.start_time_ns,
                cumulative_cpu_ns: 0,
            });
        }
        // Rules 2-3: keep history only if the container did not restart since
        // the stored point.
        let old = old?;
        if new.start_time_ns >= old.last.timestamp_ns {
            return None;
        }
        if new.timestamp_ns > old.last.timestamp_ns {
            return Some(PrevPoint::of(&old.last));
        }
        if !old_pod_has_prev {
            return None;
        }
        match old.prev() {
            Some(p) if p.timestamp_ns < new.timestamp_ns => Some(p),
            Some(_) => {
                *dropped_prevs += 1;
                None
            }
            None => None,
        }
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return Arc::clone(a);
        }
        let a: Arc<str> = Arc::from(s);
        self.names.insert(Arc::clone(&a));
        a
    }
}

// === building a tick ===

/// The next snapshot under construction, filled with node scrapes as they
/// arrive and in any order. Each carries its rank in the tick (`order`, e.g.
/// the node's index among the targets): [`TickBuilder::finish`] gives exactly
/// what [`Store::apply`] gives for a batch holding the scrapes in that order,
/// while a scrape's strings are freed as soon as it is added instead of
/// waiting in a batch for the slowest node.
#[derive(Debug)]
pub struct TickBuilder<'s> {
    store: &'s mut Store,
    old: Arc<Snapshot>,
    nodes: Vec<Pending<NodeSlot>>,
    pods: Vec<Pending<PodSlot>>,
    /// Containers of the added pods, in arrival order (pods hold ranges).
    containers: Vec<ContainerSlot>,
    /// Namespaces in arrival order; [`TickBuilder::finish`] sorts them.
    namespaces: Names,
    container_names: Names,
    /// Names of the added pods, one after the other.
    pod_names: String,
}

/// Distinct names of one tick, each with its index in arrival order.
#[derive(Debug)]
struct Names {
    list: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl Names {
    fn with_capacity(n: usize) -> Self {
        Self {
            list: Vec::with_capacity(n),
            index: HashMap::with_capacity(n),
        }
    }

    /// The index of `name`, added (with the store's shared copy) if new.
    /// `None` only past `u32::MAX` names.
    fn id(&mut self, store: &mut Store, name: &str) -> Option<u32> {
        if let Some(&id) = self.index.get(name) {
            return Some(id);
        }
        let id = u32::try_from(self.list.len()).ok()?;
        let shared = store.intern(name);
        self.index.insert(Arc::clone(&shared), id);
        self.list.push(shared);
        Some(id)
    }
}

/// A node or pod slot and what it adds to [`ApplyStats`] if it is kept.
#[derive(Debug)]
struct Pending<T> {
    order: u64,
    slot: T,
    dropped_prevs: u32,
    /// Pods only: containers with a prev, and repeated container names.
    with_prev: u32,
    duplicate_containers: u32,
}

impl<T> Pending<T> {
    fn new(order: u64, slot: T) -> Self {
        Self {
            order,
            slot,
            dropped_prevs: 0,
            with_prev: 0,
            duplicate_containers: 0,
        }
    }
}

impl TickBuilder<'_> {
    /// Adds one node's decoded scrape. Of two node points or pods with the
    /// same name, the one with the lower `order` is kept; give every scrape
    /// of a tick its own `order`.
    pub fn add_node_scrape(&mut self, order: u32, node_name: &str, scrape: NodeScrape) {
        let base = u64::from(order) << 32;
        if let Some(point) = scrape.node {
            self.add_node_point(base, node_name, point);
        }
        for (i, pod) in (0u64..).zip(scrape.pods) {
            self.add_pod(base | (i & u64::from(u32::MAX)), pod);
        }
    }

    fn add_node_point(&mut self, order: u64, name: &str, new: MetricsPoint) {
        let mut pending = Pending::new(
            order,
            NodeSlot {
                name: self.store.intern(name),
                last: new,
                prev: None,
            },
        );
        pending.slot.prev = match self.old.node_slot(name) {
            Some(o) if new.timestamp_ns > o.last.timestamp_ns => Some(o.last),
            Some(o) => match o.prev {
                Some(p) if p.timestamp_ns < new.timestamp_ns => Some(p),
                Some(_) => {
                    pending.dropped_prevs = 1;
                    None
                }
                None => None,
            },
            None => None,
        };
        self.nodes.push(pending);
    }

    fn add_pod(&mut self, order: u64, mut pod: PodScrape) {
        // Indexes are u32: a tick past 4 billion containers or bytes of pod
        // names (far beyond any cluster) keeps what fits.
        let (Some(namespace), Ok(name_start), Ok(name_len), Ok(start)) = (
            self.namespaces.id(self.store, &pod.namespace),
            u32::try_from(self.pod_names.len()),
            u32::try_from(pod.name.len()),
            u32::try_from(self.containers.len()),
        ) else {
            return;
        };
        let old = Arc::clone(&self.old);
        let old_pod = old.pod_slot(&pod.namespace, &pod.name);
        let old_pod_has_prev = old_pod.is_some_and(|(p, _)| p.has_prev);
        pod.containers.sort_by(|a, b| a.0.cmp(&b.0));
        let before = pod.containers.len();
        pod.containers.dedup_by(|later, first| later.0 == first.0);
        self.pod_names.push_str(&pod.name);
        let mut pending = Pending::new(
            order,
            PodSlot {
                namespace,
                name_start,
                name_len,
                containers_start: start,
                containers_end: start,
                has_prev: false,
            },
        );
        pending.duplicate_containers = (before - pod.containers.len()) as u32;
        for (cname, new) in &pod.containers {
            let Some(name) = self.container_names.id(self.store, cname) else {
                break;
            };
            let old_c = old_pod.and_then(|(_, cs)| {
                cs.binary_search_by(|c| (**old.container_name(c)).cmp(cname))
                    .ok()
                    .map(|i| &cs[i])
            });
            let prev =
                self.store
                    .container_prev(new, old_c, old_pod_has_prev, &mut pending.dropped_prevs);
            pending.with_prev += u32::from(prev.is_some());
            self.containers.push(ContainerSlot {
                last: *new,
                prev: prev.unwrap_or_default(),
                name,
                has_prev: prev.is_some(),
            });
        }
        pending.slot.containers_end = u32::try_from(self.containers.len()).unwrap_or(start);
        pending.slot.has_prev = pending.with_prev > 0;
        self.pods.push(pending);
    }

    /// Resolves duplicates, stores the snapshot as the current one and
    /// returns it.
    pub fn finish(self) -> Arc<Snapshot> {
        let Self {
            store,
            old,
            mut nodes,
            mut pods,
            mut containers,
            namespaces,
            container_names,
            mut pod_names,
        } = self;
        let mut stats = ApplyStats::default();

        nodes.sort_unstable_by(|a, b| (&*a.slot.name, a.order).cmp(&(&*b.slot.name, b.order)));
        let before = nodes.len();
        nodes.dedup_by(|later, first| later.slot.name == first.slot.name);
        stats.duplicate_nodes = before - nodes.len();
        for n in &nodes {
            stats.node_points += usize::from(n.slot.prev.is_some());
            stats.dropped_node_prevs += n.dropped_prevs as usize;
        }

        let namespaces = sort_namespaces(namespaces.list, &mut pods);
        let name = |p: &PodSlot| {
            let start = p.name_start as usize;
            pod_names.get(start..start + p.name_len as usize)
        };
        // Orders are distinct, so an unstable sort (no scratch buffer) is deterministic.
        pods.sort_unstable_by(|a, b| {
            (a.slot.namespace, name(&a.slot), a.order).cmp(&(
                b.slot.namespace,
                name(&b.slot),
                b.order,
            ))
        });
        let before = pods.len();
        pods.dedup_by(|later, first| {
            later.slot.namespace == first.slot.namespace && name(&later.slot) == name(&first.slot)
        });
        stats.duplicate_pods = before - pods.len();
        for p in &pods {
            stats.container_points += p.with_prev as usize;
            stats.dropped_container_prevs += p.dropped_prevs as usize;
            stats.duplicate_containers += p.duplicate_containers as usize;
        }
        // Collected in place: without the shrink the vectors would keep the larger
        // `Pending` allocations for as long as the snapshot lives.
        let mut pods: Vec<PodSlot> = pods.into_iter().map(|p| p.slot).collect();
        pods.shrink_to_fit();
        if stats.duplicate_pods > 0 {
            containers = compact(&mut pods, containers);
        }
        containers.shrink_to_fit();
        pod_names.shrink_to_fit();
        let mut container_names = container_names.list;
        container_names.shrink_to_fit();
        let mut nodes: Vec<NodeSlot> = nodes.into_iter().map(|n| n.slot).collect();
        nodes.shrink_to_fit();

        let snapshot = Arc::new(Snapshot {
            nodes,
            pods,
            containers,
            namespaces,
            container_names,
            pod_names,
            stats,
        });
        store.current = Arc::clone(&snapshot);
        drop(old);
        // Forget names no snapshot uses any more (the set holds one count).
        store.names.retain(|n| Arc::strong_count(n) > 1);
        snapshot
    }
}

/// Sorts the tick's namespaces by name and renumbers the pods' indexes to
/// match, so that comparing indexes compares names.
fn sort_namespaces(mut names: Vec<Arc<str>>, pods: &mut [Pending<PodSlot>]) -> Vec<Arc<str>> {
    let mut by_name: Vec<u32> = (0..names.len() as u32).collect();
    by_name.sort_unstable_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
    let mut rank = vec![0u32; names.len()];
    for (r, &id) in (0u32..).zip(&by_name) {
        rank[id as usize] = r;
    }
    for p in pods {
        p.slot.namespace = rank[p.slot.namespace as usize];
    }
    names.sort_unstable();
    names.shrink_to_fit();
    names
}

/// Keeps only the containers of `pods` (dropped duplicates leave theirs behind).
fn compact(pods: &mut [PodSlot], containers: Vec<ContainerSlot>) -> Vec<ContainerSlot> {
    let mut slots: Vec<Option<ContainerSlot>> = containers.into_iter().map(Some).collect();
    let mut kept = Vec::with_capacity(slots.len());
    for pod in pods {
        let start = kept.len() as u32;
        if let Some(own) = slots.get_mut(pod.containers()) {
            kept.extend(own.iter_mut().filter_map(Option::take));
        }
        pod.containers_start = start;
        pod.containers_end = kept.len() as u32;
    }
    kept
}

// === publishing ===

/// The latest snapshot, readable from any thread without locks (arc-swap).
#[derive(Debug)]
pub struct SharedSnapshot(ArcSwap<Snapshot>);

impl SharedSnapshot {
    /// Starts with an empty snapshot.
    pub fn new() -> Self {
        Self(ArcSwap::new(Snapshot::empty()))
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Replaces the current snapshot.
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        self.0.store(snapshot);
    }
}

impl Default for SharedSnapshot {
    fn default() -> Self {
        Self::new()
    }
}
