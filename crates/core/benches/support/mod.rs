//! Cluster generator shared by the storage benches (and, through `#[path]`,
//! the API encoding bench): upstream's storage-benchmark shapes
//! (`pkg/storage/storage_benchmark_test.go`) with Kubernetes-like names.
//!
//! Names: nodes `node-<20 random [a-z0-9]>` (as upstream), namespaces
//! `ns-<i>`, pods `deployment-<d>-<10-char template hash>-<5-char suffix>`
//! (unique), containers `container-<i>` (as upstream). Pods land on random
//! nodes, like upstream's generator. Everything is deterministic (fixed
//! seed).

#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt;

use metrics_server_core::{Batch, MetricsPoint, NodeScrape, PodScrape};

/// Unix time of tick 0 (2026-01-01T00:00:00Z), in nanoseconds.
pub(crate) const T0_NS: i64 = 1_767_225_600_000_000_000;
/// Scrape period between ticks.
pub(crate) const TICK_NS: i64 = 15_000_000_000;

/// One of upstream's storage-benchmark scenarios.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub(crate) name: &'static str,
    pub(crate) nodes: usize,
    pub(crate) pods_per_node: usize,
    pub(crate) deployments: usize,
    pub(crate) namespaces: usize,
    pub(crate) containers: usize,
}

impl Shape {
    pub(crate) const fn new(
        name: &'static str,
        nodes: usize,
        pods_per_node: usize,
        deployments: usize,
        namespaces: usize,
        containers: usize,
    ) -> Self {
        Self {
            name,
            nodes,
            pods_per_node,
            deployments,
            namespaces,
            containers,
        }
    }

    pub(crate) const fn pods(&self) -> usize {
        self.nodes * self.pods_per_node
    }

    pub(crate) const fn total_containers(&self) -> usize {
        self.pods() * self.containers
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Upstream's eleven scenarios, same order and parameters.
pub(crate) const SHAPES: &[Shape] = &[
    Shape::new("normal_1000", 1000, 30, 100, 10, 2),
    Shape::new("normal_100", 100, 70, 100, 10, 2),
    Shape::new("normal_10", 10, 70, 100, 10, 2),
    Shape::new("big_namespace_1000", 1000, 30, 100, 1, 2),
    Shape::new("big_namespace_100", 100, 70, 100, 1, 2),
    Shape::new("big_namespace_10", 10, 70, 100, 1, 2),
    Shape::new("big_deployment_1000", 1000, 30, 1, 1, 2),
    Shape::new("big_deployment_100", 100, 70, 1, 1, 2),
    Shape::new("big_deployment_10", 10, 70, 1, 1, 2),
    Shape::new("dense_container_100", 100, 30, 100, 10, 10),
    Shape::new("dense_container_10", 10, 30, 100, 10, 10),
];

/// xorshift64*: deterministic and dependency-free.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub(crate) fn string(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len() as u64) as usize]))
            .collect()
    }
}

/// Upstream's node-name charset.
const CHARSET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Kubernetes' `rand.String` alphabet (no vowels, no confusable digits).
const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A pod of the generated cluster.
#[derive(Clone, Debug)]
pub(crate) struct Pod {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) deployment: usize,
    /// The deployment's pod-template-hash.
    pub(crate) template_hash: String,
}

/// A generated cluster: nodes, pods on nodes, pods per deployment.
#[derive(Clone, Debug)]
pub(crate) struct Cluster {
    pub(crate) shape: Shape,
    pub(crate) nodes: Vec<String>,
    pub(crate) pods: Vec<Pod>,
    /// Pod indices per node, sorted by (namespace, name) like a decoded scrape.
    pub(crate) node_pods: Vec<Vec<usize>>,
    /// Pod indices per deployment.
    pub(crate) deployment_pods: Vec<Vec<usize>>,
    pub(crate) containers: Vec<String>,
}

impl Cluster {
    pub(crate) fn new(shape: Shape) -> Self {
        let mut rng = Rng::new(1);
        let mut seen = HashSet::new();
        let nodes: Vec<String> = (0..shape.nodes)
            .map(|_| {
                loop {
                    let n = format!("node-{}", rng.string(CHARSET, 20));
                    if seen.insert(n.clone()) {
                        break n;
                    }
                }
            })
            .collect();

        let total = shape.pods();
        let per_deployment = total / shape.deployments;
        let rest = total % shape.deployments;
        let mut pods = Vec::with_capacity(total);
        let mut node_pods = vec![Vec::new(); shape.nodes];
        let mut deployment_pods = Vec::with_capacity(shape.deployments);
        for d in 0..shape.deployments {
            let namespace = format!("ns-{}", d % shape.namespaces);
            let template_hash = rng.string(K8S_ALPHABET, 10);
            let count = per_deployment + usize::from(d < rest);
            let mut mine = Vec::with_capacity(count);
            for _ in 0..count {
                let name = loop {
                    let n = format!(
                        "deployment-{d}-{template_hash}-{}",
                        rng.string(K8S_ALPHABET, 5)
                    );
                    if seen.insert(n.clone()) {
                        break n;
                    }
                };
                let i = pods.len();
                pods.push(Pod {
                    namespace: namespace.clone(),
                    name,
                    deployment: d,
                    template_hash: template_hash.clone(),
                });
                node_pods[rng.below(shape.nodes as u64) as usize].push(i);
                mine.push(i);
            }
            deployment_pods.push(mine);
        }
        for list in &mut node_pods {
            list.sort_by(|&a, &b| {
                (&pods[a].namespace, &pods[a].name).cmp(&(&pods[b].namespace, &pods[b].name))
            });
        }
        let containers = (0..shape.containers)
            .map(|i| format!("container-{i}"))
            .collect();
        Self {
            shape,
            nodes,
            pods,
            node_pods,
            deployment_pods,
            containers,
        }
    }

    /// The batch of tick `tick`: every node scraped, timestamps
    /// `T0 + tick * 15s` plus a per-node offset of up to 4 s (upstream's
    /// jitter), cumulative CPU growing every tick, containers started a day
    /// before tick 0 (so only the "no restart" rule applies).
    pub(crate) fn batch(&self, tick: u64) -> Batch {
        let mut batch = Batch::new();
        let tick_ns = T0_NS + tick as i64 * TICK_NS;
        let start_ns = T0_NS - 86_400_000_000_000;
        let mut serial = 0u64;
        for (n, node_name) in self.nodes.iter().enumerate() {
            let ts = tick_ns + (n as i64 * 8 % 4000) * 1_000_000;
            let node = point(n as u64 + 1_000_000, tick, ts, 0);
            let pods = self.node_pods[n]
                .iter()
                .map(|&p| {
                    let pod = &self.pods[p];
                    PodScrape {
                        namespace: pod.namespace.clone(),
                        name: pod.name.clone(),
                        containers: self
                            .containers
                            .iter()
                            .map(|c| {
                                serial += 1;
                                (c.clone(), point(serial, tick, ts, start_ns))
                            })
                            .collect(),
                    }
                })
                .collect();
            batch.add_node_scrape(
                node_name.clone(),
                NodeScrape {
                    node: Some(node),
                    pods,
                },
            );
        }
        batch
    }
}

/// A sample whose CPU grows by a fixed per-series amount each tick (0.01 to
/// ~1 core over 15 s) and whose memory stays in 4 MiB..4 GiB.
fn point(series: u64, tick: u64, ts: i64, start_ns: i64) -> MetricsPoint {
    let h = series.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let per_tick = 150_000_000 + (h >> 40) % 15_000_000_000;
    MetricsPoint {
        start_time_ns: start_ns,
        timestamp_ns: ts,
        cumulative_cpu_ns: 1_000_000_000_000 + (tick + 1) * per_tick,
        memory_bytes: 4 * 1024 * 1024 + (h >> 20) % (4 * 1024 * 1024 * 1024),
    }
}
