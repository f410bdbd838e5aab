//! Feeding the indexes from kube-rs watches (upstream's informers, spec A.1, C.1).
//!
//! ```text
//!  watcher(Api<Node>)                        ─┐  default_backoff(): errors are logged,
//!  watcher(Api<PartialObjectMeta<Pod>>,       │  the stream retries (0.8s … 30s)
//!          fields=status.phase=Running)      ─┤
//!                                             ▼
//!  EventHandler::handle ── Init → buffer; InitApply → trim + buffer;
//!                          InitDone → index.reset(buffer), Synced = true (first time);
//!                          Apply → trim + index.apply; Delete → index.delete
//! ```
//!
//! Objects are trimmed as they arrive, so a relist never holds full objects.

use std::future::Future;
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, watcher as make_watcher};
use metrics_server_api::PodMeta;
use tokio::sync::watch;

use crate::cluster::{SharedNodeIndex, SharedPodIndex, write};
use crate::node::{NodeEntry, NodeIndex};
use crate::pod::{PodIndex, pod_meta};

/// The field selector of the pod watch: only running pods are visible (spec K.12).
pub const RUNNING_PODS_FIELD_SELECTOR: &str = "status.phase=Running";

/// Page size of the initial lists.
const PAGE_SIZE: u32 = 500;

/// An index that a watch keeps up to date.
pub trait WatchedIndex: Send + Sync + 'static {
    /// The object the watch yields.
    type Object: Send;
    /// What the index keeps of it.
    type Item: Send;
    /// Trims an object; `None` drops it (no name).
    fn trim(object: Self::Object) -> Option<Self::Item>;
    /// Adds or replaces.
    fn apply_item(&mut self, item: Self::Item);
    /// Removes by the item's key.
    fn delete_item(&mut self, item: &Self::Item);
    /// Replaces everything (relist).
    fn reset_items(&mut self, items: Vec<Self::Item>);
}

impl WatchedIndex for NodeIndex {
    type Object = Node;
    type Item = NodeEntry;

    fn trim(object: Node) -> Option<NodeEntry> {
        NodeEntry::from_node(object)
    }
    fn apply_item(&mut self, item: NodeEntry) {
        self.apply_entry(item);
    }
    fn delete_item(&mut self, item: &NodeEntry) {
        self.delete(item.name());
    }
    fn reset_items(&mut self, items: Vec<NodeEntry>) {
        self.reset(items);
    }
}

impl WatchedIndex for PodIndex {
    type Object = PartialObjectMeta<Pod>;
    type Item = PodMeta;

    fn trim(object: PartialObjectMeta<Pod>) -> Option<PodMeta> {
        pod_meta(object)
    }
    fn apply_item(&mut self, item: PodMeta) {
        self.apply_meta(item);
    }
    fn delete_item(&mut self, item: &PodMeta) {
        self.delete(&item.namespace, &item.name);
    }
    fn reset_items(&mut self, items: Vec<PodMeta>) {
        self.reset(items);
    }
}

/// Becomes true once the first full list has been applied (client-go `HasSynced`); it never
/// goes back. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Synced(watch::Receiver<bool>);

impl Synced {
    /// A signal and the sender that sets it (the sender lives in the [`EventHandler`]).
    fn channel() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Whether the first list has completed.
    pub fn is_synced(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until synced. Returns `false` if the watch ended before syncing.
    pub async fn wait(&mut self) -> bool {
        self.0.wait_for(|s| *s).await.is_ok()
    }
}

/// Applies watch events to an index.
#[derive(Debug)]
pub struct EventHandler<I: WatchedIndex> {
    index: Arc<RwLock<I>>,
    buffer: Option<Vec<I::Item>>,
    synced: watch::Sender<bool>,
    kind: &'static str,
}

impl<I: WatchedIndex> EventHandler<I> {
    /// A handler writing into `index`, plus its sync signal. `kind` names the resource in logs.
    pub fn new(index: Arc<RwLock<I>>, kind: &'static str) -> (Self, Synced) {
        let (synced, signal) = Synced::channel();
        (
            Self {
                index,
                buffer: None,
                synced,
                kind,
            },
            signal,
        )
    }

    /// Applies one event.
    pub fn handle(&mut self, event: Event<I::Object>) {
        match event {
            Event::Init => self.buffer = Some(Vec::new()),
            Event::InitApply(object) => {
                if let Some(item) = I::trim(object) {
                    self.buffer.get_or_insert_with(Vec::new).push(item);
                }
            }
            Event::InitDone => {
                let items = self.buffer.take().unwrap_or_default();
                let count = items.len();
                write(&self.index).reset_items(items);
                if !*self.synced.borrow() {
                    tracing::info!(kind = self.kind, count, "Cache synced");
                } else {
                    tracing::debug!(kind = self.kind, count, "Cache relisted");
                }
                self.synced.send_replace(true);
            }
            Event::Apply(object) => {
                if let Some(item) = I::trim(object) {
                    write(&self.index).apply_item(item);
                }
            }
            Event::Delete(object) => {
                if let Some(item) = I::trim(object) {
                    write(&self.index).delete_item(&item);
                }
            }
        }
    }

    /// Consumes a watch stream until it ends (a kube-rs watcher never does). Errors are
    /// logged; the stream itself retries with its backoff.
    pub async fn run<S>(mut self, stream: S)
    where
        S: Stream<Item = Result<Event<I::Object>, watcher::Error>>,
    {
        let mut stream = std::pin::pin!(stream);
        let mut failures: u32 = 0;
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    // `Init` is emitted before the list is attempted, so only data counts as
                    // recovery.
                    if failures > 0 && !matches!(event, Event::Init) {
                        tracing::info!(kind = self.kind, failures, "Watch recovered");
                        failures = 0;
                    }
                    self.handle(event);
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(kind = self.kind, %error, failures, "Watch failed; retrying with backoff");
                }
            }
        }
        tracing::error!(kind = self.kind, "Watch stream ended");
    }
}

/// The Node watch (full objects, no selector). Returns the future to spawn and its sync signal.
pub fn node_watch(
    client: kube::Client,
    index: SharedNodeIndex,
) -> (impl Future<Output = ()> + Send + 'static, Synced) {
    let api: Api<Node> = Api::all(client);
    let config = watcher::Config::default()
        .any_semantic()
        .page_size(PAGE_SIZE);
    let (handler, synced) = EventHandler::new(index, "Node");
    let stream = make_watcher(api, config).default_backoff();
    (handler.run(stream), synced)
}

/// The metadata-only watch of running pods. Returns the future to spawn and its sync signal.
pub fn pod_watch(
    client: kube::Client,
    index: SharedPodIndex,
) -> (impl Future<Output = ()> + Send + 'static, Synced) {
    let api: Api<PartialObjectMeta<Pod>> = Api::all(client);
    let config = watcher::Config::default()
        .fields(RUNNING_PODS_FIELD_SELECTOR)
        .any_semantic()
        .page_size(PAGE_SIZE);
    let (handler, synced) = EventHandler::new(index, "Pod");
    let stream = make_watcher(api, config).default_backoff();
    (handler.run(stream), synced)
}
