//! JSON encoding of big metrics lists: `encode_pod_metrics_list` for 30,000
//! pods (2 containers each, upstream's largest storage shape) and
//! `encode_node_metrics_list` for 5,000 nodes (upstream's documented
//! maximum), and the pod list as the server streams it (`pod_list_30000_streamed`).
//! Items come from a real `Store` after two ticks. Run with
//! `make bench` (or `cargo bench -p metrics-server-api --bench encode`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use divan::counter::BytesCount;
use divan::{AllocProfiler, Bencher, black_box};
use metrics_server_api::{
    MetricsVersion, NodeItem, NodeMeta, PodItem, PodMeta, encode_node_metrics_list,
    encode_pod_metrics_list, pod_metrics_list_pieces,
};
use metrics_server_core::{Snapshot, Store, format_rfc3339_seconds};

#[path = "support/cpu_time.rs"]
mod cpu_time;
#[path = "../../core/benches/support/mod.rs"]
mod support;
use support::{Cluster, Shape};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    #[allow(clippy::print_stdout)]
    {
        let pods = pod_items();
        let out = encode_pod_metrics_list(&pods, &created(), MetricsVersion::V1beta1);
        println!(
            "PodMetricsList, {} pods x 2 containers: {} bytes ({:.0} bytes/pod)",
            pods.len(),
            out.len(),
            out.len() as f64 / pods.len() as f64
        );
        let nodes = node_items();
        let out = encode_node_metrics_list(&nodes, &created(), MetricsVersion::V1beta1);
        println!(
            "NodeMetricsList, {} nodes: {} bytes ({:.0} bytes/node)",
            nodes.len(),
            out.len(),
            out.len() as f64 / nodes.len() as f64
        );
    }
    if let Some(n) = std::env::var("ENCODE_CPU_BATCHES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        cpu_time_report(n);
        return;
    }
    divan::main();
}

/// `ENCODE_CPU_BATCHES=<n>`: instead of divan, time `n` batches of calls by
/// on-CPU time and print the per-call figure of the best and the median batch.
#[allow(clippy::print_stdout)]
fn cpu_time_report(n: u32) {
    fn report(name: &str, bytes: usize, n: u32, f: impl FnMut() -> usize) {
        let Some((min, median, per_batch)) = cpu_time::per_call_cpu_ns(n, f) else {
            println!("{name}: no CPU time available");
            return;
        };
        let mbs = |ns: f64| bytes as f64 / ns * 1e3;
        println!(
            "{name}: on-CPU per call, best batch {:.2} ms ({:.0} MB/s), median batch {:.2} ms ({:.0} MB/s); {n} batches of {per_batch}",
            min / 1e6,
            mbs(min),
            median / 1e6,
            mbs(median),
        );
    }
    let created = created();
    let pods = pod_items();
    let len = encode_pod_metrics_list(&pods, &created, MetricsVersion::V1beta1).len();
    report("pod_list_30000", len, n, || {
        encode_pod_metrics_list(black_box(&pods), &created, MetricsVersion::V1beta1).len()
    });
    report("pod_list_30000_streamed", len, n, || {
        pod_metrics_list_pieces(black_box(&pods), &created, MetricsVersion::V1beta1)
            .map(|piece| black_box(piece).len())
            .sum()
    });
    let nodes = node_items();
    let len = encode_node_metrics_list(&nodes, &created, MetricsVersion::V1beta1).len();
    report("node_list_5000", len, n, || {
        encode_node_metrics_list(black_box(&nodes), &created, MetricsVersion::V1beta1).len()
    });
}

fn two_ticks(cluster: &Cluster) -> Arc<Snapshot> {
    let mut store = Store::new(Duration::from_secs(60));
    store.apply(cluster.batch(0));
    store.apply(cluster.batch(1))
}

fn created() -> String {
    format_rfc3339_seconds(support::T0_NS + 20 * support::TICK_NS)
}

/// 30,000 pods with the labels a Deployment gives them (`app`,
/// `pod-template-hash`).
fn pod_items() -> Vec<PodItem> {
    let cluster = Cluster::new(Shape::new("pods_30000", 1000, 30, 100, 10, 2));
    let snap = two_ticks(&cluster);
    cluster
        .pods
        .iter()
        .map(|p| PodItem {
            meta: Arc::new(PodMeta {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                labels: BTreeMap::from([
                    ("app".to_owned(), format!("deployment-{}", p.deployment)),
                    ("pod-template-hash".to_owned(), p.template_hash.clone()),
                ]),
                created: None,
            }),
            usage: snap
                .pod_metrics(&p.namespace, &p.name)
                .expect("pod metrics"),
        })
        .collect()
}

/// 5,000 nodes with the eight labels a typical cloud node carries.
fn node_items() -> Vec<NodeItem> {
    let cluster = Cluster::new(Shape::new("nodes_5000", 5000, 0, 1, 1, 0));
    let snap = two_ticks(&cluster);
    cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let zone = ["eu-west-1a", "eu-west-1b", "eu-west-1c"][i % 3];
            let labels = [
                ("beta.kubernetes.io/arch", "amd64"),
                ("beta.kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "amd64"),
                ("kubernetes.io/hostname", n.as_str()),
                ("kubernetes.io/os", "linux"),
                ("node.kubernetes.io/instance-type", "m5.xlarge"),
                ("topology.kubernetes.io/region", "eu-west-1"),
                ("topology.kubernetes.io/zone", zone),
            ];
            NodeItem {
                meta: Arc::new(NodeMeta {
                    name: n.clone(),
                    labels: labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                }),
                usage: snap.node_metrics(n).expect("node metrics"),
            }
        })
        .collect()
}

/// Compact `PodMetricsList` of 30,000 pods; throughput is output bytes/s.
#[divan::bench(sample_count = 30)]
fn pod_list_30000(bencher: Bencher<'_, '_>) {
    let items = pod_items();
    let created = created();
    let len = encode_pod_metrics_list(&items, &created, MetricsVersion::V1beta1).len();
    bencher
        .counter(BytesCount::new(len))
        .bench(|| encode_pod_metrics_list(black_box(&items), &created, MetricsVersion::V1beta1));
}

/// The same list as the server streams it: ~64 KiB pieces, each dropped
/// once "sent", so no call holds the whole body.
#[divan::bench(sample_count = 30)]
fn pod_list_30000_streamed(bencher: Bencher<'_, '_>) {
    let items = pod_items();
    let created = created();
    let len = encode_pod_metrics_list(&items, &created, MetricsVersion::V1beta1).len();
    bencher.counter(BytesCount::new(len)).bench(|| {
        pod_metrics_list_pieces(black_box(&items), &created, MetricsVersion::V1beta1)
            .map(|piece| black_box(piece).len())
            .sum::<usize>()
    });
}

/// Compact `NodeMetricsList` of 5,000 nodes; throughput is output bytes/s.
#[divan::bench(sample_count = 50)]
fn node_list_5000(bencher: Bencher<'_, '_>) {
    let items = node_items();
    let created = created();
    let len = encode_node_metrics_list(&items, &created, MetricsVersion::V1beta1).len();
    bencher
        .counter(BytesCount::new(len))
        .bench(|| encode_node_metrics_list(black_box(&items), &created, MetricsVersion::V1beta1));
}
