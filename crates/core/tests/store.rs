//! Storage semantics: spec D.1-D.6 and the J.2 acceptance cases S1-S22.

use std::sync::Arc;
use std::time::Duration;

use metrics_server_core::exposition::{NodeScrape, PodScrape};
use metrics_server_core::quantity::{format_cpu_nanocores, format_memory_bytes};
use metrics_server_core::rate::{MetricsPoint, RateError};
use metrics_server_core::store::{Batch, SharedSnapshot, Snapshot, Store};

const S: i64 = 1_000_000_000;
const CORE_SECOND: u64 = 1_000_000_000;
const MIB: u64 = 1 << 20;
/// Plays the role of upstream's `containerStart := time.Now()`.
const T0: i64 = 1_785_830_400 * S;

fn store() -> Store {
    Store::new(Duration::from_secs(60))
}

/// A sample: start time and timestamp as offsets from T0 (`None` start = Go's
/// zero time), CPU in core-seconds, memory in MiB.
fn pt(start: Option<i64>, ts_s: i64, cpu_core_s: u64, mem_mib: u64) -> MetricsPoint {
    MetricsPoint {
        start_time_ns: start.map_or(0, |s| T0 + s * S),
        timestamp_ns: T0 + ts_s * S,
        cumulative_cpu_ns: cpu_core_s * CORE_SECOND,
        memory_bytes: mem_mib * MIB,
    }
}

fn node_batch(points: &[(&str, MetricsPoint)]) -> Batch {
    let mut b = Batch::new();
    for (name, p) in points {
        b.push_node(*name, *p);
    }
    b
}

fn pod(ns: &str, name: &str, containers: &[(&str, MetricsPoint)]) -> PodScrape {
    PodScrape {
        namespace: ns.into(),
        name: name.into(),
        containers: containers
            .iter()
            .map(|(n, p)| ((*n).to_owned(), *p))
            .collect(),
    }
}

fn pod_batch(containers: &[(&str, MetricsPoint)]) -> Batch {
    let mut b = Batch::new();
    b.push_pod(pod("ns1", "pod1", containers));
    b
}

// --- nodes ---

#[test]
fn s1_node_metrics_are_served_after_two_batches_and_vanish_with_the_node() {
    let mut s = store();
    let snap = s.apply(node_batch(&[("node1", pt(Some(0), 10, 10, 2))]));
    assert!(!snap.nodes_ready());
    assert_eq!(snap.node_metrics("node1"), None);

    let snap = s.apply(node_batch(&[("node1", pt(Some(0), 20, 20, 3))]));
    assert!(snap.nodes_ready());
    let u = snap.node_metrics("node1").unwrap();
    assert_eq!(format_cpu_nanocores(u.cpu_nanocores), "1");
    assert_eq!(u.cpu_nanocores, 1_000_000_000);
    assert_eq!(format_memory_bytes(u.memory_bytes), "3Mi");
    assert_eq!(u.window_ns, 10 * S);
    assert_eq!(u.timestamp_ns, T0 + 20 * S);
    assert_eq!(snap.node_metrics("node2"), None);

    let snap = s.apply(Batch::new());
    assert_eq!(snap.node_metrics("node1"), None);
    assert_eq!(snap.node_names().count(), 0);
}

#[test]
fn s2_the_same_node_batch_stored_twice_serves_nothing() {
    let mut s = store();
    let batch = || node_batch(&[("node1", pt(Some(0), 10, 10, 2))]);
    s.apply(batch());
    let snap = s.apply(batch());
    assert!(!snap.is_ready());
    assert!(!snap.nodes_ready());
    assert_eq!(snap.node_metrics("node1"), None);
}

#[test]
fn s3_the_node_points_gauge_counts_nodes_with_a_prev() {
    let mut s = store();
    let snap = s.apply(node_batch(&[("node1", pt(Some(0), 10, 10, 2))]));
    assert_eq!(snap.node_points(), 0);
    let snap = s.apply(node_batch(&[("node1", pt(Some(0), 20, 20, 3))]));
    assert_eq!(snap.node_points(), 1);
    assert_eq!(snap.stats().node_points, 1);
}

#[test]
fn s4_a_node_cpu_decrease_omits_the_node() {
    let mut s = store();
    s.apply(node_batch(&[("node1", pt(Some(0), 10, 20, 2))]));
    let snap = s.apply(node_batch(&[("node1", pt(Some(0), 20, 10, 3))]));
    assert_eq!(snap.node_metrics("node1"), None);
    assert_eq!(snap.node_rate("node1"), Some(Err(RateError::CpuDecrease)));
}

#[test]
fn s5_a_node_point_older_than_prev_drops_prev() {
    let mut s = store();
    s.apply(node_batch(&[("node1", pt(Some(0), 1115, 20, 2))]));
    s.apply(node_batch(&[("node1", pt(Some(0), 1125, 40, 2))]));
    let snap = s.apply(node_batch(&[("node1", pt(Some(0), 115, 10, 2))]));
    assert_eq!(snap.node_metrics("node1"), None);
    assert_eq!(snap.node_points(), 0);
    assert_eq!(snap.stats().dropped_node_prevs, 1);
}

#[test]
fn s6_a_node_point_between_prev_and_last_keeps_prev() {
    let mut s = store();
    s.apply(node_batch(&[("node1", pt(Some(0), 110, 10, 2))]));
    s.apply(node_batch(&[("node1", pt(Some(0), 130, 50, 3))]));
    let snap = s.apply(node_batch(&[("node1", pt(Some(0), 120, 35, 4))]));
    let u = snap.node_metrics("node1").unwrap();
    assert_eq!(u.timestamp_ns, T0 + 120 * S);
    assert_eq!(u.window_ns, 10 * S);
    assert_eq!(format_cpu_nanocores(u.cpu_nanocores), "2500m");
    assert_eq!(u.memory_bytes, 4 * MIB);
}

#[test]
fn s7_a_node_with_zero_start_time_works_normally() {
    let mut s = store();
    s.apply(node_batch(&[("node1", pt(None, 10, 10, 2))]));
    let snap = s.apply(node_batch(&[("node1", pt(None, 20, 20, 3))]));
    let u = snap.node_metrics("node1").unwrap();
    assert_eq!((u.cpu_nanocores, u.window_ns), (1_000_000_000, 10 * S));
}

// --- pods ---

#[test]
fn s8_pod_metrics_are_served_after_two_batches_and_vanish_with_the_pod() {
    let mut s = store();
    s.apply(pod_batch(&[("container1", pt(Some(0), 120, 1, 4))]));
    let snap = s.apply(pod_batch(&[("container1", pt(Some(0), 125, 6, 5))]));
    let p = snap.pod_metrics("ns1", "pod1").unwrap();
    assert_eq!(p.timestamp_ns, T0 + 125 * S);
    assert_eq!(p.window_ns, 5 * S);
    assert_eq!(p.containers.len(), 1);
    assert_eq!(&*p.containers[0].name, "container1");
    assert_eq!(
        format_cpu_nanocores(p.containers[0].usage.cpu_nanocores),
        "1"
    );
    assert_eq!(
        format_memory_bytes(p.containers[0].usage.memory_bytes),
        "5Mi"
    );
    assert_eq!(snap.pod_metrics("ns1", "pod2"), None);

    let snap = s.apply(Batch::new());
    assert_eq!(snap.pod_metrics("ns1", "pod1"), None);
}

#[test]
fn s9_a_pod_reports_the_earliest_container_timestamp_and_its_window() {
    let mut s = store();
    s.apply(pod_batch(&[
        ("container1", pt(Some(0), 110, 1, 4)),
        ("container2", pt(Some(0), 115, 2, 5)),
    ]));
    let snap = s.apply(pod_batch(&[
        ("container1", pt(Some(0), 120, 6, 6)),
        ("container2", pt(Some(0), 125, 7, 7)),
    ]));
    let p = snap.pod_metrics("ns1", "pod1").unwrap();
    assert_eq!(p.timestamp_ns, T0 + 120 * S);
    assert_eq!(p.window_ns, 10 * S);
    let names: Vec<&str> = p.containers.iter().map(|c| &*c.name).collect();
    assert_eq!(names, ["container1", "container2"]);
}

#[test]
fn s10_a_repeated_pod_batch_serves_nothing() {
    let mut s = store();
    let batch = || pod_batch(&[("container1", pt(Some(0), 110, 1, 4))]);
    s.apply(batch());
    let snap = s.apply(batch());
    assert!(!snap.pods_ready());
    assert_eq!(snap.pod_metrics("ns1", "pod1"), None);
}

#[test]
fn s11_the_container_points_gauge_counts_containers_with_a_prev() {
    let mut s = store();
    let snap = s.apply(pod_batch(&[
        ("container1", pt(Some(0), 110, 1, 4)),
        ("container2", pt(Some(0), 115, 2, 5)),
    ]));
    assert_eq!((snap.container_points(), snap.node_points()), (0, 0));
    let snap = s.apply(pod_batch(&[
        ("container1", pt(Some(0), 120, 6, 6)),
        ("container2", pt(Some(0), 125, 7, 7)),
    ]));
    assert_eq!((snap.container_points(), snap.node_points()), (2, 0));
}

#[test]
fn s12_a_restarted_container_is_served_from_its_start_time_when_fresh() {
    let mut s = store();
    s.apply(pod_batch(&[("container1", pt(Some(0), 10, 1, 4))]));
    let snap = s.apply(pod_batch(&[("container1", pt(Some(15), 25, 5, 5))]));
    let p = snap.pod_metrics("ns1", "pod1").unwrap();
    assert_eq!(p.timestamp_ns, T0 + 25 * S);
    assert_eq!(p.window_ns, 10 * S);
    assert_eq!(
        format_cpu_nanocores(p.containers[0].usage.cpu_nanocores),
        "500m"
    );
    assert_eq!(p.containers[0].usage.memory_bytes, 5 * MIB);
}

#[test]
fn s13_a_container_cpu_decrease_returns_the_pod_with_no_containers() {
    let mut s = store();
    s.apply(pod_batch(&[("container1", pt(Some(0), 110, 20, 4))]));
    let snap = s.apply(pod_batch(&[("container1", pt(Some(0), 120, 10, 4))]));
    let p = snap.pod_metrics("ns1", "pod1").unwrap();
    assert!(p.containers.is_empty());
    // Quirk: zero timestamp (JSON null) and a 0s window.
    assert_eq!((p.timestamp_ns, p.window_ns), (0, 0));
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].1, RateError::CpuDecrease);
}

#[test]
fn s14_a_pod_point_older_than_prev_omits_the_pod() {
    let mut s = store();
    s.apply(pod_batch(&[("container1", pt(Some(0), 1115, 20, 4))]));
    s.apply(pod_batch(&[("container1", pt(Some(0), 1125, 40, 4))]));
    let snap = s.apply(pod_batch(&[("container1", pt(Some(0), 115, 10, 4))]));
    assert_eq!(snap.pod_metrics("ns1", "pod1"), None);
    assert_eq!(snap.stats().dropped_container_prevs, 1);
}

#[test]
fn s15_a_pod_point_between_prev_and_last_keeps_prev() {
    let mut s = store();
    s.apply(pod_batch(&[("container1", pt(Some(0), 115, 10, 4))]));
    s.apply(pod_batch(&[("container1", pt(Some(0), 125, 50, 5))]));
    let snap = s.apply(pod_batch(&[("container1", pt(Some(0), 120, 35, 5))]));
    let p = snap.pod_metrics("ns1", "pod1").unwrap();
    assert_eq!(p.timestamp_ns, T0 + 120 * S);
    assert_eq!(p.window_ns, 5 * S);
    assert_eq!(
        format_cpu_nanocores(p.containers[0].usage.cpu_nanocores),
        "5"
    );
    assert_eq!(
        format_memory_bytes(p.containers[0].usage.memory_bytes),
        "5Mi"
    );
}

#[test]
fn s16_a_long_running_container_needs_two_batches() {
    let mut s = store();
    let snap = s.apply(pod_batch(&[("container1", pt(Some(0), 120, 1, 4))]));
    assert!(!snap.pods_ready());
    assert_eq!(snap.pod_metrics("ns1", "pod1"), None);
}

#[test]
fn s17_a_fresh_container_is_served_after_one_batch() {
    let mut s = store();
    let mut batch = pod_batch(&[("container1", pt(Some(0), 10, 10, 4))]);
    let snap = s.apply(batch.clone());
    assert!(snap.pods_ready());
    let p = snap.pod_metrics("ns1", "pod1").unwrap();
    assert_eq!(p.timestamp_ns, T0 + 10 * S);
    assert_eq!(p.window_ns, 10 * S);
    assert_eq!(
        format_cpu_nanocores(p.containers[0].usage.cpu_nanocores),
        "1"
    );
    assert_eq!(
        format_memory_bytes(p.containers[0].usage.memory_bytes),
        "4Mi"
    );

    // Whole-store readiness (D.5) also needs a node with a prev.
    assert!(!snap.is_ready());
    let mut s = store();
    s.apply(node_batch(&[("node1", pt(None, 0, 1, 1))]));
    batch.push_node("node1", pt(None, 10, 2, 1));
    assert!(s.apply(batch).is_ready());
}

#[test]
fn s18_a_start_time_after_the_timestamp_gets_no_synthetic_prev() {
    let mut s = store();
    let snap = s.apply(pod_batch(&[("container1", pt(Some(0), -10, 10, 4))]));
    assert!(!snap.pods_ready());
    assert_eq!(snap.pod_metrics("ns1", "pod1"), None);
}

#[test]
fn s19_a_container_nine_seconds_old_gets_no_synthetic_prev() {
    let mut s = store();
    let snap = s.apply(pod_batch(&[("container1", pt(Some(0), 9, 10, 4))]));
    assert!(!snap.pods_ready());
    assert_eq!(snap.pod_metrics("ns1", "pod1"), None);
}

#[test]
fn s20_containers_with_zero_start_time_work_over_two_batches() {
    let mut s = store();
    let snap = s.apply(pod_batch(&[("container1", pt(None, 120, 1, 4))]));
    assert!(!snap.pods_ready());
    let snap = s.apply(pod_batch(&[("container1", pt(None, 125, 6, 5))]));
    let p = snap.pod_metrics("ns1", "pod1").unwrap();
    assert_eq!(p.window_ns, 5 * S);
    assert_eq!(
        format_cpu_nanocores(p.containers[0].usage.cpu_nanocores),
        "1"
    );
}

#[test]
fn s21_a_container_added_in_the_second_batch_omits_the_pod() {
    let mut s = store();
    s.apply(pod_batch(&[("container1", pt(Some(0), 110, 1, 4))]));
    let snap = s.apply(pod_batch(&[
        ("container1", pt(Some(0), 120, 6, 6)),
        ("container2", pt(Some(0), 120, 7, 7)),
    ]));
    assert_eq!(snap.pod_metrics("ns1", "pod1"), None);
    // The pod still has a prev through container1, so pods are "ready".
    assert!(snap.pods_ready());
}

#[test]
fn s22_readiness_needs_both_node_and_pod_points() {
    // Only nodes.
    let mut s = store();
    s.apply(node_batch(&[("node1", pt(None, 10, 10, 2))]));
    let snap = s.apply(node_batch(&[("node1", pt(None, 20, 20, 3))]));
    assert!(snap.nodes_ready() && !snap.is_ready());

    // Only pods.
    let mut s = store();
    s.apply(pod_batch(&[("container1", pt(Some(0), 120, 1, 4))]));
    let snap = s.apply(pod_batch(&[("container1", pt(Some(0), 125, 6, 5))]));
    assert!(snap.pods_ready() && !snap.is_ready());

    // Both.
    let mut s = store();
    let both = |node: MetricsPoint, c: MetricsPoint| {
        let mut b = pod_batch(&[("container1", c)]);
        b.push_node("node1", node);
        b
    };
    let snap = s.apply(both(pt(None, 10, 10, 2), pt(Some(0), 120, 1, 4)));
    assert!(!snap.is_ready());
    let snap = s.apply(both(pt(None, 20, 20, 3), pt(Some(0), 125, 6, 5)));
    assert!(snap.is_ready());
}

// --- beyond the J.2 list ---

#[test]
fn duplicates_in_a_batch_keep_the_first_seen() {
    let mut s = store();
    let mut b = Batch::new();
    b.push_node("node1", pt(None, 10, 1, 1));
    b.push_node("node1", pt(None, 11, 2, 2));
    b.push_pod(pod(
        "ns",
        "p",
        &[("c", pt(None, 10, 1, 1)), ("c", pt(None, 10, 9, 9))],
    ));
    b.push_pod(pod("ns", "p", &[("d", pt(None, 10, 1, 1))]));
    let snap = s.apply(b);
    let stats = snap.stats();
    assert_eq!(
        (
            stats.duplicate_nodes,
            stats.duplicate_pods,
            stats.duplicate_containers
        ),
        (1, 1, 1)
    );
    let mut b = Batch::new();
    b.push_node("node1", pt(None, 20, 11, 1));
    b.push_pod(pod("ns", "p", &[("c", pt(None, 20, 11, 1))]));
    let snap = s.apply(b);
    // First node1 (cpu 1 at t=10) and first "c" (cpu 1) were kept.
    assert_eq!(
        snap.node_metrics("node1").unwrap().cpu_nanocores,
        1_000_000_000
    );
    let p = snap.pod_metrics("ns", "p").unwrap();
    assert_eq!(p.containers[0].usage.cpu_nanocores, 1_000_000_000);
}

#[test]
fn a_start_time_moving_back_is_a_skipped_container_and_the_prev_keeps_its_own() {
    let mut s = store();
    s.apply(pod_batch(&[("c", pt(Some(50), 110, 10, 4))]));
    // Started "earlier" than the stored point said, yet before its timestamp: no
    // restart, so the stored point is the prev, with its later start time.
    let snap = s.apply(pod_batch(&[("c", pt(Some(40), 120, 20, 4))]));
    let p = snap.pod_metrics("ns1", "pod1").unwrap();
    assert!(p.containers.is_empty());
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].1, RateError::StartTimeDecrease);
    // A point between prev and last keeps that prev, start time included.
    let snap = s.apply(pod_batch(&[("c", pt(Some(40), 115, 15, 4))]));
    let p = snap.pod_metrics("ns1", "pod1").unwrap();
    assert_eq!(p.skipped[0].1, RateError::StartTimeDecrease);
    // With the start time back where the prev has it, the rate is served again.
    let snap = s.apply(pod_batch(&[("c", pt(Some(50), 116, 16, 4))]));
    let p = snap.pod_metrics("ns1", "pod1").unwrap();
    assert_eq!(p.containers.len(), 1);
    assert_eq!(p.containers[0].usage.cpu_nanocores, CORE_SECOND);
}

#[test]
fn pods_are_kept_in_namespace_then_name_order_whatever_order_they_arrive_in() {
    // Namespaces that arrive out of order, and keys whose concatenations would
    // order differently ("a" + "b-x" against "a-b" + "x").
    let keys = [
        ("zeta", "p"),
        ("a-b", "x"),
        ("a", "b-x"),
        ("a", "a"),
        ("kube-system", "coredns"),
        ("a-b", "a"),
    ];
    let mut s = store();
    let batch = |t: i64| {
        let mut b = Batch::new();
        for (i, (ns, name)) in (0u64..).zip(keys) {
            b.push_pod(pod(ns, name, &[("c", pt(None, t, i + t as u64, 1))]));
        }
        b
    };
    s.apply(batch(10));
    let snap = s.apply(batch(20));
    let stored: Vec<(&str, &str)> = snap.pod_keys().collect();
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    assert_eq!(stored, sorted);
    let mut cursor = snap.pod_cursor();
    for (i, (ns, name)) in (0u64..).zip(keys) {
        let by_key = snap.pod_metrics(ns, name).unwrap();
        // Every pod used 10 core-seconds more over the 10-second window.
        assert_eq!(
            by_key.containers[0].usage.cpu_nanocores, CORE_SECOND,
            "{ns}/{name} ({i})"
        );
        assert_eq!(cursor.pod_metrics(ns, name), Some(by_key));
    }
    assert_eq!(snap.pod_metrics("a", "b"), None);
    assert_eq!(snap.pod_metrics("b", "x"), None);
    assert_eq!(snap.pod_metrics("", ""), None);
}

/// Three nodes' scrapes at tick `t`: node-b and node-c both report pod `ns/shared` (with
/// other values), node-a repeats a container name, node-c has no node point, and every
/// fourth tick node-b restarts its container (a dropped prev).
fn tick_scrapes(t: i64) -> Vec<(&'static str, NodeScrape)> {
    let ts = 10 * t;
    let restart = if t % 4 == 3 { Some(ts - 5) } else { None };
    let node_a = NodeScrape {
        node: Some(pt(None, ts, 10 + t as u64, 100)),
        pods: vec![pod(
            "ns",
            "a1",
            &[
                ("c", pt(None, ts, 1 + t as u64, 1)),
                ("c", pt(None, ts, 50, 9)),
            ],
        )],
    };
    let node_b = NodeScrape {
        node: Some(pt(None, ts, 20 + 2 * t as u64, 200)),
        pods: vec![
            pod("ns", "b1", &[("c", pt(restart, ts, 2 * t as u64, 2))]),
            pod("ns", "shared", &[("c", pt(None, ts, 3 * t as u64, 3))]),
        ],
    };
    let node_c = NodeScrape {
        node: None,
        pods: vec![
            pod("ns", "shared", &[("c", pt(None, ts, 7 * t as u64, 7))]),
            pod(
                "other",
                "c1",
                &[
                    ("x", pt(None, ts, t as u64, 4)),
                    ("a", pt(None, ts, t as u64, 5)),
                ],
            ),
        ],
    };
    vec![("node-a", node_a), ("node-b", node_b), ("node-c", node_c)]
}

/// Everything a reader can see of a snapshot.
fn served(snap: &Snapshot) -> String {
    let nodes: Vec<String> = snap
        .node_names()
        .map(|n| format!("{n}: {:?}", snap.node_rate(n)))
        .collect();
    let pods: Vec<String> = snap
        .pod_keys()
        .map(|(ns, p)| format!("{ns}/{p}: {:?}", snap.pod_metrics(ns, p)))
        .collect();
    format!("{nodes:#?}\n{pods:#?}\n{:?}", snap.stats())
}

#[test]
fn scrapes_added_in_any_order_store_like_the_batch_in_their_order() {
    let mut by_batch = store();
    let mut by_arrival = store();
    for t in 1..=8 {
        let scrapes = tick_scrapes(t);
        let mut batch = Batch::new();
        for (name, scrape) in &scrapes {
            batch.add_node_scrape(*name, scrape.clone());
        }
        let expected = by_batch.apply(batch);
        // node-c (order 2) arrives before node-b (order 1), whose `ns/shared` must still win.
        let mut tick = by_arrival.begin();
        for order in [2u32, 0, 1] {
            let (name, scrape) = &scrapes[order as usize];
            tick.add_node_scrape(order, name, scrape.clone());
        }
        let got = tick.finish();
        assert_eq!(served(&got), served(&expected), "tick {t}");
        assert!(Arc::ptr_eq(&by_arrival.snapshot(), &got));
    }
    let last = by_arrival.snapshot();
    let stats = last.stats();
    assert_eq!((stats.duplicate_pods, stats.duplicate_containers), (1, 1));
    assert_eq!(
        last.pod_metrics("ns", "shared").unwrap().containers[0]
            .usage
            .cpu_nanocores,
        3 * CORE_SECOND / 10,
        "node-b's pod (order 1) is kept"
    );
}

#[test]
fn a_dropped_tick_builder_leaves_the_store_as_it_was() {
    let mut s = store();
    let before = s.apply(node_batch(&[("node1", pt(None, 10, 10, 2))]));
    let mut tick = s.begin();
    tick.add_node_scrape(
        0,
        "node2",
        NodeScrape {
            node: Some(pt(None, 20, 20, 3)),
            pods: Vec::new(),
        },
    );
    drop(tick);
    assert!(Arc::ptr_eq(&s.snapshot(), &before));
    let after = s.apply(node_batch(&[("node1", pt(None, 20, 20, 2))]));
    assert!(after.node_metrics("node1").is_some());
}

#[test]
fn readers_keep_their_snapshot_while_the_store_moves_on() {
    let shared = SharedSnapshot::new();
    let mut s = store();
    s.apply(node_batch(&[("node1", pt(None, 10, 10, 2))]));
    shared.publish(s.apply(node_batch(&[("node1", pt(None, 20, 20, 3))])));
    let held = shared.load();
    shared.publish(s.apply(Batch::new()));
    assert!(held.node_metrics("node1").is_some());
    assert!(shared.load().node_metrics("node1").is_none());
}

#[test]
fn a_container_restart_without_fresh_rule_drops_history() {
    // Restarted 100s before the new timestamp: too old for the fresh rule
    // (resolution 60s), and the start time is after the stored timestamp.
    let mut s = store();
    s.apply(pod_batch(&[("container1", pt(Some(0), 10, 5, 4))]));
    let snap = s.apply(pod_batch(&[("container1", pt(Some(20), 120, 1, 4))]));
    assert_eq!(snap.pod_metrics("ns1", "pod1"), None);
    assert_eq!(snap.container_points(), 0);
}

#[test]
fn a_fresh_container_older_than_the_resolution_is_not_fresh() {
    let mut s = Store::new(Duration::from_secs(15));
    let snap = s.apply(pod_batch(&[("container1", pt(Some(0), 15, 10, 4))]));
    assert_eq!(snap.pod_metrics("ns1", "pod1"), None);
    let snap = Store::new(Duration::from_secs(15))
        .apply(pod_batch(&[("container1", pt(Some(0), 14, 10, 4))]));
    assert!(snap.pod_metrics("ns1", "pod1").is_some());
}

#[test]
fn interned_names_are_shared_across_ticks() {
    let mut s = store();
    let a = s.apply(pod_batch(&[("container1", pt(Some(0), 110, 1, 4))]));
    let b = s.apply(pod_batch(&[("container1", pt(Some(0), 120, 2, 4))]));
    let name_a = a.pod_metrics("ns1", "pod1");
    assert!(name_a.is_none());
    let pb = b.pod_metrics("ns1", "pod1").unwrap();
    let again = s.apply(pod_batch(&[("container1", pt(Some(0), 130, 3, 4))]));
    let pc = again.pod_metrics("ns1", "pod1").unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &pb.containers[0].name,
        &pc.containers[0].name
    ));
}

// --- values at the limits (issue 7) ---

/// The batch one kubelet body gives for `node1`.
fn batch_from_body(body: &str) -> Batch {
    let scrape =
        metrics_server_core::exposition::decode_node(body.as_bytes(), 0).expect("no syntax error");
    let mut b = Batch::new();
    if let Some(p) = scrape.node {
        b.push_node("node1", p);
    }
    for pod in scrape.pods {
        b.push_pod(pod);
    }
    b
}

fn node_body(cpu: &str, memory: &str, ts_ms: i64) -> String {
    format!(
        "node_cpu_usage_seconds_total {cpu} {ts_ms}\nnode_memory_working_set_bytes {memory} {ts_ms}\n\
         container_cpu_usage_seconds_total{{container=\"c\",namespace=\"ns\",pod=\"p\"}} {cpu} {ts_ms}\n\
         container_memory_working_set_bytes{{container=\"c\",namespace=\"ns\",pod=\"p\"}} {memory} {ts_ms}\n"
    )
}

#[test]
fn a_node_reporting_unstorable_values_is_not_served_until_two_good_scrapes() {
    let mut s = store();
    s.apply(batch_from_body(&node_body("10", "1e9", 1_000)));
    let snap = s.apply(batch_from_body(&node_body("20", "1e9", 11_000)));
    assert_eq!(
        snap.node_metrics("node1").map(|u| u.cpu_nanocores),
        Some(1_000_000_000)
    );
    for bad in ["+Inf", "-Inf", "1e300", "NaN", "-1"] {
        let snap = s.apply(batch_from_body(&node_body("30", bad, 21_000)));
        // Never 16 EiB: the node and the pod are gone for this tick.
        assert_eq!(snap.node_metrics("node1"), None, "{bad}");
        assert_eq!(snap.pod_metrics("ns", "p"), None, "{bad}");
        s.apply(batch_from_body(&node_body("40", "1e9", 31_000)));
        let snap = s.apply(batch_from_body(&node_body("50", "2e9", 41_000)));
        let u = snap.node_metrics("node1").expect("served again");
        assert_eq!(u.memory_bytes, 2_000_000_000, "{bad}");
    }
}

#[test]
fn extreme_but_storable_values_are_served_without_overflow() {
    let mut s = store();
    let first = MetricsPoint {
        start_time_ns: 0,
        timestamp_ns: T0,
        cumulative_cpu_ns: u64::MAX - 10 * CORE_SECOND,
        memory_bytes: i64::MAX as u64,
    };
    let last = MetricsPoint {
        timestamp_ns: T0 + 10 * S,
        cumulative_cpu_ns: u64::MAX,
        ..first
    };
    s.apply(node_batch(&[("node1", first)]));
    let snap = s.apply(node_batch(&[("node1", last)]));
    let u = snap.node_metrics("node1").expect("served");
    assert_eq!(u.cpu_nanocores, CORE_SECOND);
    assert_eq!(format_memory_bytes(u.memory_bytes), "9223372036854775807");

    // A counter from zero to the top within one millisecond: the rate
    // saturates instead of wrapping.
    let mut s = store();
    let zero = MetricsPoint {
        cumulative_cpu_ns: 1,
        ..first
    };
    let top = MetricsPoint {
        timestamp_ns: T0 + 1_000_000,
        cumulative_cpu_ns: u64::MAX,
        ..first
    };
    s.apply(node_batch(&[("node1", zero)]));
    let u = s
        .apply(node_batch(&[("node1", top)]))
        .node_metrics("node1")
        .expect("served");
    assert_eq!(u.cpu_nanocores, u64::MAX);
    assert_eq!(
        format_cpu_nanocores(u.cpu_nanocores),
        "18446744073709551610n"
    );
}
