//! The critical tasks of `Args::run` from the watches on: waiting for the caches, running
//! until a signal or a crash, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use metrics_server_api::HealthState;
use metrics_server_k8s::{Cluster, Synced};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::RunError;
use crate::flags::std_duration;

/// The node and pod watches, each filling its half of the cluster cache.
#[derive(Debug)]
pub(super) struct Watches {
    nodes: JoinHandle<()>,
    pods: JoinHandle<()>,
}

/// How waiting for the caches ended, when no watch failed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CacheWait {
    /// Both caches are complete.
    Synced,
    /// A signal asked to stop first.
    ShutdownRequested,
}

impl Watches {
    /// Starts both watches into `cluster`; each `Synced` tells when its cache is complete.
    pub(super) fn start(client: &kube::Client, cluster: &Cluster) -> (Self, (Synced, Synced)) {
        let (node_watch, node_synced) =
            metrics_server_k8s::node_watch(client.clone(), Arc::clone(cluster.nodes()));
        let (pod_watch, pod_synced) =
            metrics_server_k8s::pod_watch(client.clone(), Arc::clone(cluster.pods()));
        let nodes = tokio::spawn(tracing::Instrument::instrument(
            node_watch,
            tracing::info_span!("nodes"),
        ));
        let pods = tokio::spawn(tracing::Instrument::instrument(
            pod_watch,
            tracing::info_span!("pods"),
        ));
        (Self { nodes, pods }, (node_synced, pod_synced))
    }

    /// Waits for both caches (then marks them synced in `health`), for a signal, or for a
    /// watch to end (an error).
    pub(super) async fn wait_for_caches(
        &mut self,
        (node_synced, pod_synced): (Synced, Synced),
        signals: &mut Signals,
        health: &HealthState,
    ) -> Result<CacheWait, RunError> {
        tokio::select! {
            r = wait_for_sync(node_synced, pod_synced) => r.map_err(RunError::Crashed)?,
            () = signals.recv() => {
                tracing::info!("Shutdown requested before the caches synced");
                return Ok(CacheWait::ShutdownRequested);
            }
            r = &mut self.nodes => return Err(RunError::Crashed(ended("node watch", r))),
            r = &mut self.pods => return Err(RunError::Crashed(ended("pod watch", r))),
        }
        health.set_node_informer_synced(true);
        health.set_pod_informer_synced(true);
        Ok(CacheWait::Synced)
    }
}

/// Waits for both caches, logging progress every 10 s.
async fn wait_for_sync(mut nodes: Synced, mut pods: Synced) -> anyhow::Result<()> {
    tracing::info!("Waiting for the node and pod caches to sync");
    let (nodes_probe, pods_probe) = (nodes.clone(), pods.clone());
    let wait = async {
        let (n, p) = tokio::join!(nodes.wait(), pods.wait());
        n && p
    };
    let mut wait = std::pin::pin!(wait);
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    loop {
        tokio::select! {
            ok = &mut wait => {
                return if ok {
                    tracing::info!("Caches synced");
                    Ok(())
                } else {
                    Err(anyhow!("a watch ended before its cache synced"))
                };
            }
            _ = progress.tick() => {
                tracing::info!(
                    nodes_synced = nodes_probe.is_synced(),
                    pods_synced = pods_probe.is_synced(),
                    "Still waiting for the caches to sync"
                );
            }
        }
    }
}

/// The shard's Lease loop and exchange pollers (no tasks without `--shard-by-lease`).
#[derive(Debug)]
pub(super) struct Sharding {
    /// Stops both; the Lease is then released.
    pub(super) stop: CancellationToken,
    /// Ends when both have.
    pub(super) tasks: Option<JoinHandle<()>>,
}

/// The server once serving: the critical tasks and what graceful shutdown stops.
#[derive(Debug)]
pub(super) struct Running {
    pub(super) signals: Signals,
    pub(super) watches: Watches,
    pub(super) scrape_loop: JoinHandle<()>,
    /// The HTTPS server, or with `--secure-port=0` a task that waits for `shutdown`.
    pub(super) server: JoinHandle<()>,
    pub(super) sharding: Sharding,
    pub(super) health: Arc<HealthState>,
    /// Stops accepting, drains, and stops the scrape loop and the reloaders.
    pub(super) shutdown: CancellationToken,
}

impl Running {
    /// Runs until a signal (Ok) or until a critical task ends: then cancels `shutdown` and
    /// returns why.
    pub(super) async fn wait_for_exit(&mut self) -> Result<(), RunError> {
        let crashed = tokio::select! {
            () = self.signals.recv() => None,
            r = &mut self.watches.nodes => Some(ended("node watch", r)),
            r = &mut self.watches.pods => Some(ended("pod watch", r)),
            r = &mut self.scrape_loop => Some(ended("scrape loop", r)),
            r = &mut self.server => Some(ended("HTTPS server", r)),
        };
        if let Some(error) = crashed {
            self.shutdown.cancel();
            return Err(RunError::Crashed(error));
        }
        Ok(())
    }

    /// /readyz fails, the shard Lease is released, `--shutdown-delay-duration` passes while
    /// still serving, then everything stops: in-flight requests get `--request-timeout` (ns)
    /// plus a margin.
    pub(super) async fn graceful_shutdown(
        self,
        shutdown_delay_duration: i64,
        request_timeout: i64,
    ) {
        let Self {
            signals,
            watches,
            scrape_loop,
            mut server,
            sharding,
            health,
            shutdown,
        } = self;
        health.begin_shutdown();
        sharding.stop.cancel();
        if let Some(tasks) = sharding.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(6), tasks).await;
        }
        signals.exit_on_second_signal();
        let delay = std_duration(shutdown_delay_duration);
        if !delay.is_zero() {
            tracing::info!(delay = ?delay, "Shutdown requested; /readyz now fails, still serving");
            tokio::time::sleep(delay).await;
        }
        tracing::info!("Shutting down: draining in-flight requests");
        shutdown.cancel();
        watches.nodes.abort();
        watches.pods.abort();
        let drain =
            std_duration(request_timeout).max(Duration::from_secs(1)) + Duration::from_secs(5);
        if tokio::time::timeout(drain, &mut server).await.is_err() {
            tracing::warn!("In-flight requests did not finish in time");
            server.abort();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), scrape_loop).await;
        tracing::info!("Stopped");
    }
}

fn ended(what: &str, r: Result<(), tokio::task::JoinError>) -> anyhow::Error {
    match r {
        Ok(()) => anyhow!("{what} ended unexpectedly"),
        Err(e) if e.is_panic() => anyhow!("{what} panicked"),
        Err(e) => anyhow!("{what} was cancelled: {e}"),
    }
}

/// SIGTERM and SIGINT.
#[derive(Debug)]
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!(signal = "SIGTERM", "Received termination signal"),
            _ = self.int.recv() => tracing::info!(signal = "SIGINT", "Received termination signal"),
        }
    }

    /// A second signal during shutdown exits at once, like the Go apiserver.
    fn exit_on_second_signal(self) {
        let mut signals = self;
        tokio::spawn(async move {
            signals.recv().await;
            tracing::warn!("Second termination signal; exiting immediately");
            std::process::exit(1);
        });
    }
}
