//! Peak memory while many kubelets stream 1 GiB bodies in the same tick: the scraper's memory is
//! bounded by the body cap times the requests in flight, not by what kubelets send.
//!
//! Alone in its own test binary so the process's peak resident set (`VmHWM`) belongs to this case.

use std::time::Duration;

use metrics_server_kubelet::{
    AddressConfig, ErrorClass, KubeletClient, KubeletClientConfig, NodeTarget, ScrapeError,
    Scraper, ScraperConfig, Transport,
};
use metrics_server_test_support::{Fault, FaultyKubelet, FaultyListening};
use tokio::time::Instant;

const MIB: usize = 1024 * 1024;

/// Peak resident set of this process in bytes, from `/proc/self/status`.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_1_gib_bodies_at_once_stay_within_cap_times_concurrency() {
    const NODES: usize = 16;
    const CAP: usize = 8 * MIB;
    let mut kubelets = Vec::new();
    for _ in 0..NODES {
        let fault = Fault::Huge {
            total: 1 << 30,
            declare_length: false,
        };
        kubelets.push(FaultyKubelet::start(fault).await.unwrap());
    }
    let targets: Vec<NodeTarget> = kubelets
        .iter()
        .enumerate()
        .map(|(i, k)| NodeTarget {
            name: format!("node{i}"),
            addresses: vec![("InternalIP".into(), "127.0.0.1".into())],
            status_port: k.port(),
            metrics_path_annotation: None,
            ready: true,
        })
        .collect();
    let config = KubeletClientConfig {
        request_timeout: Duration::from_secs(30),
        max_body_bytes: CAP,
        ..KubeletClientConfig::new(Transport::Http)
    };
    let scraper = Scraper::new(
        KubeletClient::new(&config).unwrap(),
        ScraperConfig {
            address: AddressConfig {
                preferred_address_types: vec!["InternalIP".into()],
                port: 1,
                use_node_status_port: true,
            },
            spread_per_node: Duration::ZERO,
            ..ScraperConfig::default()
        },
        None,
    );

    let baseline = peak_rss();
    let result = scraper
        .scrape_tick(&targets, Instant::now() + Duration::from_secs(40))
        .await;
    let grown = peak_rss().saturating_sub(baseline);

    assert_eq!(result.outcomes.len(), NODES);
    for outcome in &result.outcomes {
        let class = outcome.result.as_ref().err().map(ScrapeError::class);
        assert_eq!(class, Some(ErrorClass::BodyTooLarge), "{}", outcome.node);
    }
    // Collecting a capped body may hold it twice (frames, then one buffer); allow that plus
    // 64 MiB for the runtime. Reading the bodies whole would need 16 GiB.
    let bound = NODES * CAP * 2 + 64 * MIB;
    assert!(
        grown < bound,
        "peak RSS grew by {} MiB, bound {} MiB",
        grown / MIB,
        bound / MIB
    );
    let sent: u64 = kubelets.iter().map(FaultyListening::body_bytes_sent).sum();
    assert!(
        sent < (NODES * (CAP + 32 * MIB)) as u64,
        "{} MiB sent",
        sent / MIB as u64
    );
}
