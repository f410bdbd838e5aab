//! Storage benchmarks on upstream's storage-benchmark shapes
//! (`pkg/storage/storage_benchmark_test.go`): write per tick and the two
//! read paths. Run with `make bench` (or `cargo bench -p metrics-server-core
//! --bench store`).

use std::time::Duration;

use divan::counter::ItemsCount;
use divan::{AllocProfiler, Bencher, black_box};
use metrics_server_core::{PodUsage, ResourceUsage, Snapshot, Store};

mod support;
use support::{Cluster, SHAPES, Shape};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

/// Upstream's benchmark uses `NewStorage(60 * time.Second)`.
const RESOLUTION: Duration = Duration::from_secs(60);
/// Upstream pre-generates `min(100, b.N)` batches.
const BATCHES: u64 = 100;

fn main() {
    divan::main();
}

/// One `Store::apply` (→ new snapshot, old one freed) per iteration, over
/// 100 pre-generated batches with increasing timestamps applied in order,
/// starting from an empty store like upstream. Exactly 100 applies are
/// timed (10 samples × 10); cloning the batch is outside the timing.
/// Throughput is in stored containers per second.
#[divan::bench(args = SHAPES, sample_count = 10, sample_size = 10)]
fn write_tick(bencher: Bencher<'_, '_>, shape: &Shape) {
    let cluster = Cluster::new(*shape);
    let batches: Vec<_> = (0..BATCHES).map(|t| cluster.batch(t)).collect();
    let mut store = Store::new(RESOLUTION);
    let mut next = 0usize;
    bencher
        .counter(ItemsCount::new(shape.total_containers()))
        .with_inputs(|| {
            let b = batches[next % batches.len()].clone();
            next += 1;
            b
        })
        .bench_local_values(|batch| {
            // Dropping the returned Arc here keeps freeing the previous
            // snapshot inside the timed region.
            black_box(store.apply(batch).container_points());
        });
}

fn two_ticks(cluster: &Cluster) -> std::sync::Arc<Snapshot> {
    let mut store = Store::new(RESOLUTION);
    store.apply(cluster.batch(0));
    let snap = store.apply(cluster.batch(1));
    assert_eq!(snap.node_points(), cluster.nodes.len());
    assert_eq!(snap.container_points(), cluster.shape.total_containers());
    snap
}

/// Upstream `BenchmarkStorageReadNode`: usage of every node, by name.
#[divan::bench(args = SHAPES, sample_count = 50)]
fn read_all_nodes(bencher: Bencher<'_, '_>, shape: &Shape) {
    let cluster = Cluster::new(*shape);
    let snap = two_ticks(&cluster);
    let names: Vec<&str> = cluster.nodes.iter().map(String::as_str).collect();
    bencher
        .counter(ItemsCount::new(names.len()))
        .bench_local(|| {
            let out: Vec<(&str, ResourceUsage)> = black_box(&names)
                .iter()
                .filter_map(|&n| snap.node_metrics(n).map(|u| (n, u)))
                .collect();
            assert_eq!(out.len(), names.len());
            out
        });
}

fn pod_query(cluster: &Cluster, deployment: usize) -> Vec<(&str, &str)> {
    cluster.deployment_pods[deployment]
        .iter()
        .map(|&p| {
            let pod = &cluster.pods[p];
            (pod.namespace.as_str(), pod.name.as_str())
        })
        .collect()
}

fn read_pods(snap: &Snapshot, query: &[(&str, &str)]) -> Vec<PodUsage> {
    query
        .iter()
        .map(|&(ns, name)| {
            let m = snap
                .pod_metrics(ns, name)
                .expect("every pod has metrics after two ticks");
            assert!(m.timestamp_ns != 0 && !m.containers.is_empty());
            m
        })
        .collect()
}

/// Pod metrics for the pods of one deployment (deployment 0: 300 pods in
/// the 1000-node shapes, 70 in the 10-node ones, every pod for Big
/// Deployment). Throughput is in pods per second.
#[divan::bench(args = SHAPES, sample_count = 50)]
fn read_one_deployment(bencher: Bencher<'_, '_>, shape: &Shape) {
    let cluster = Cluster::new(*shape);
    let snap = two_ticks(&cluster);
    let query = pod_query(&cluster, 0);
    bencher
        .counter(ItemsCount::new(query.len()))
        .bench_local(|| read_pods(&snap, black_box(&query)));
}

/// Upstream `BenchmarkStorageReadContainer`: one op is one query per
/// deployment, covering every pod. Throughput is in pods per second.
#[divan::bench(args = SHAPES, sample_count = 20)]
fn read_all_deployments(bencher: Bencher<'_, '_>, shape: &Shape) {
    let cluster = Cluster::new(*shape);
    let snap = two_ticks(&cluster);
    let queries: Vec<Vec<(&str, &str)>> = (0..shape.deployments)
        .map(|d| pod_query(&cluster, d))
        .collect();
    bencher
        .counter(ItemsCount::new(shape.pods()))
        .bench_local(|| {
            black_box(&queries)
                .iter()
                .map(|q| read_pods(&snap, q).len())
                .sum::<usize>()
        });
}
