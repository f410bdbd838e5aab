//! Decoder throughput over kubelet `/metrics/resource` bodies rendered by
//! `metrics_server_test_support::render_resource_metrics` (the kubelet's
//! families, HELP/TYPE lines, Go float spelling, millisecond timestamps and
//! the families the decoder skips: swap, pod totals, scrape errors).
//! Run with `make bench` (or `cargo bench -p metrics-server-core --bench
//! exposition`).

use divan::counter::BytesCount;
use divan::{AllocProfiler, Bencher, black_box};
use metrics_server_core::parse_exposition;
use metrics_server_test_support::{
    ContainerSample, NodeSample, PodSample, render_resource_metrics,
};

mod support;
use support::Rng;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

/// Request time passed to the decoder (samples carry their own timestamps).
const REQUEST_NS: i64 = support::T0_NS;

fn main() {
    #[allow(clippy::print_stdout)]
    for pods in [10, 70, 250] {
        let body = kubelet_body(pods);
        println!(
            "kubelet body, {pods} pods x 2 containers: {} bytes, {} lines",
            body.len(),
            body.lines().count()
        );
    }
    divan::main();
}

/// A node's body with `pods` pods of two containers (an app and an
/// `istio-proxy` sidecar) in ten namespaces, named like Deployment pods.
fn kubelet_body(pods: usize) -> String {
    let mut rng = Rng::new(7);
    let ts_ms = REQUEST_NS / 1_000_000;
    let node = NodeSample::new(
        1_234_567.891_234_5,
        1.616_273_408e10,
        ts_ms - rng.below(2000) as i64,
    );
    let pods: Vec<PodSample> = (0..pods)
        .map(|i| {
            let d = i % 40;
            let app = format!("deployment-{d}");
            let container = |name: &str, rng: &mut Rng| ContainerSample {
                name: name.to_owned(),
                cpu_seconds: rng.below(50_000_000_000) as f64 / 1e6,
                memory_bytes: ((1 + rng.below(500_000)) * 4096) as f64,
                start_time_seconds: (ts_ms / 1000 - 3600 - rng.below(2_592_000) as i64) as f64
                    + rng.below(1000) as f64 / 1000.0,
                timestamp_ms: Some(ts_ms - rng.below(15_000) as i64),
            };
            PodSample {
                namespace: format!("ns-{}", d % 10),
                name: format!(
                    "{app}-{}-{}",
                    rng.string(b"bcdfghjklmnpqrstvwxz2456789", 10),
                    rng.string(b"bcdfghjklmnpqrstvwxz2456789", 5)
                ),
                containers: vec![
                    container("app", &mut rng),
                    container("istio-proxy", &mut rng),
                ],
            }
        })
        .collect();
    render_resource_metrics(&node, &pods)
}

/// `parse_exposition` over one kubelet body; throughput is body bytes per
/// second, and the allocation rows are per parse.
#[divan::bench(args = [10, 70, 250], sample_count = 100, max_time = 3)]
fn parse(bencher: Bencher<'_, '_>, pods: usize) {
    let body = kubelet_body(pods);
    let outcome = parse_exposition(body.as_bytes(), REQUEST_NS);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(outcome.incomplete_pods.is_empty() && !outcome.incomplete_node);
    assert_eq!(outcome.scrape.pods.len(), pods);
    assert!(outcome.scrape.pods.iter().all(|p| p.containers.len() == 2));
    bencher
        .counter(BytesCount::of_str(&body))
        .bench(|| parse_exposition(black_box(body.as_bytes()), REQUEST_NS));
}
