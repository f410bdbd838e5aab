//! Decoding of kubelet `/metrics/resource` bodies: spec C.6-C.7 and the J.2
//! acceptance cases D1-D15.

mod common;

use common::{FakeContainer, FakePod, Rng, realistic_pods, render_kubelet};
use metrics_server_core::exposition::{LineErrorKind, NodeScrape, decode_node, parse_exposition};
use metrics_server_core::rate::MetricsPoint;
use metrics_server_core::timefmt::days_from_civil;

/// Unix ns for a UTC wall-clock time.
fn utc(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64, ms: i64) -> i64 {
    ((days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * 1000 + ms) * 1_000_000
}

/// The upstream decode fixture of spec C.6 (with `[STABLE]` headers).
const FIXTURE: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 4.710169 1633253812125
container_cpu_usage_seconds_total{container="metrics-server",namespace="kube-system",pod="metrics-server-66547b68cb-z9lkj"} 5.102405 1633253811469
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.253376e+07 1633253812125
container_memory_working_set_bytes{container="metrics-server",namespace="kube-system",pod="metrics-server-66547b68cb-z9lkj"} 1.8845696e+07 1633253811469
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.633252712e+09
container_start_time_seconds{container="metrics-server",namespace="kube-system",pod="metrics-server-66547b68cb-z9lkj"} 1.6332527e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 357.35491 1633253809720
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.616273408e+09 1633253809720
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 4.67812 1633253803935
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.2627968e+07 1633253803935
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE scrape_error gauge
scrape_error 0
"#;

const CONTAINER_LINES: &str = r#"
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 4.710169 1633253812125
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.253376e+07 1633253812125
container_start_time_seconds{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.633252712e+9 1633253812125
"#;

const NODE_LINES: &str = "
node_cpu_usage_seconds_total 357.35491 1633253809720
node_memory_working_set_bytes 1.616273408e+09 1633253809720
";

fn decode(body: &str) -> NodeScrape {
    decode_node(body.as_bytes(), 0).expect("decodes")
}

fn coredns_point() -> MetricsPoint {
    MetricsPoint {
        start_time_ns: utc(2021, 10, 3, 9, 18, 32, 0),
        timestamp_ns: utc(2021, 10, 3, 9, 36, 52, 125),
        cumulative_cpu_ns: 4_710_169_000,
        memory_bytes: 12_533_760,
    }
}

fn node_point() -> MetricsPoint {
    MetricsPoint {
        start_time_ns: 0,
        timestamp_ns: utc(2021, 10, 3, 9, 36, 49, 720),
        cumulative_cpu_ns: 357_354_910_000,
        memory_bytes: 1_616_273_408,
    }
}

#[test]
fn d1_the_upstream_fixture_decodes_to_the_expected_values() {
    let s = decode(FIXTURE);
    assert_eq!(s.node, Some(node_point()));
    assert_eq!(s.pods.len(), 2);
    let coredns = &s.pods[0];
    assert_eq!(
        (coredns.namespace.as_str(), coredns.name.as_str()),
        ("kube-system", "coredns-558bd4d5db-4dpjz")
    );
    assert_eq!(
        coredns.containers,
        vec![("coredns".to_owned(), coredns_point())]
    );
    let ms = &s.pods[1];
    assert_eq!(ms.name, "metrics-server-66547b68cb-z9lkj");
    assert_eq!(ms.containers[0].0, "metrics-server");
    assert_eq!(ms.containers[0].1.memory_bytes, 18_845_696);
}

#[test]
fn d2_samples_without_timestamps_use_the_request_time_truncated_to_ms() {
    let body = r#"
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 4.710169
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.253376e+07
container_start_time_seconds{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.633252712e+9
node_cpu_usage_seconds_total 357.35491
node_memory_working_set_bytes 1.616273408e+09
"#;
    let request_time = utc(2077, 7, 7, 7, 7, 7, 0) + 123_456; // sub-ms part is dropped
    let s = decode_node(body.as_bytes(), request_time).unwrap();
    let want_ts = utc(2077, 7, 7, 7, 7, 7, 0);
    assert_eq!(
        s.node,
        Some(MetricsPoint {
            timestamp_ns: want_ts,
            ..node_point()
        })
    );
    assert_eq!(
        s.pods[0].containers[0].1,
        MetricsPoint {
            timestamp_ns: want_ts,
            ..coredns_point()
        }
    );
}

#[test]
fn d3_container_lines_only_give_a_pod_and_no_node() {
    let s = decode(CONTAINER_LINES);
    assert_eq!(s.node, None);
    assert_eq!(s.pods.len(), 1);
    // The start-time line's own timestamp is ignored.
    assert_eq!(s.pods[0].containers[0].1, coredns_point());
}

#[test]
fn d4_to_d7_a_container_without_cpu_or_memory_drops_the_pod() {
    let cases = [
        // D4: no CPU
        r#"container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 1.253376e+07 1633253812125"#,
        // D5: CPU = 0
        "container_cpu_usage_seconds_total{container=\"coredns\",namespace=\"kube-system\",pod=\"coredns-558bd4d5db-4dpjz\"} 0 1633253812125\n\
         container_memory_working_set_bytes{container=\"coredns\",namespace=\"kube-system\",pod=\"coredns-558bd4d5db-4dpjz\"} 1.253376e+07 1633253812125",
        // D6: no memory
        r#"container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"} 4.710169 1633253812125"#,
        // D7: memory = 0
        "container_cpu_usage_seconds_total{container=\"coredns\",namespace=\"kube-system\",pod=\"coredns-558bd4d5db-4dpjz\"} 4.710169 1633253812125\n\
         container_memory_working_set_bytes{container=\"coredns\",namespace=\"kube-system\",pod=\"coredns-558bd4d5db-4dpjz\"} 0 1633253812125",
    ];
    for body in cases {
        let outcome = parse_exposition(body.as_bytes(), 0);
        assert!(outcome.errors.is_empty(), "{body}");
        assert_eq!(outcome.scrape, NodeScrape::default(), "{body}");
        assert_eq!(
            outcome.incomplete_pods,
            vec![(
                "kube-system".to_owned(),
                "coredns-558bd4d5db-4dpjz".to_owned()
            )]
        );
    }
}

#[test]
fn one_bad_container_drops_its_whole_pod_but_not_other_pods() {
    let body = r#"
container_cpu_usage_seconds_total{container="a",namespace="ns",pod="p1"} 1 1000
container_memory_working_set_bytes{container="a",namespace="ns",pod="p1"} 10 1000
container_start_time_seconds{container="b",namespace="ns",pod="p1"} 1
container_cpu_usage_seconds_total{container="a",namespace="ns",pod="p2"} 1 1000
container_memory_working_set_bytes{container="a",namespace="ns",pod="p2"} 10 1000
"#;
    let s = decode(body);
    assert_eq!(s.pods.len(), 1);
    assert_eq!(s.pods[0].name, "p2");
}

#[test]
fn d8_node_lines_only_give_the_node_and_no_pods() {
    let s = decode(NODE_LINES);
    assert_eq!(s.node, Some(node_point()));
    assert!(s.pods.is_empty());
}

#[test]
fn d9_to_d12_a_node_without_cpu_or_memory_is_dropped() {
    for body in [
        "node_memory_working_set_bytes 1.616273408e+09 1633253809720\n",
        "node_cpu_usage_seconds_total 0 1633253809720\nnode_memory_working_set_bytes 1.616273408e+09 1633253809720\n",
        "node_cpu_usage_seconds_total 357.35491 1633253809720\n",
        "node_cpu_usage_seconds_total 357.35491 1633253809720\nnode_memory_working_set_bytes 0 1633253809720\n",
    ] {
        let outcome = parse_exposition(body.as_bytes(), 0);
        assert!(outcome.errors.is_empty());
        assert!(outcome.incomplete_node, "{body}");
        assert_eq!(outcome.scrape, NodeScrape::default(), "{body}");
    }
}

#[test]
fn d13_a_negative_timestamp_fails_the_whole_node() {
    let body = r#"
# HELP container_start_time_seconds [ALPHA] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="metrics-server",namespace="kubernetes-dashboard",pod="kubernetes-dashboard-metrics-server-77db45cdf4-fppzx"} -6.7953645788713455e+09 -62135596800000
container_start_time_seconds{container="metrics-server",namespace="kubernetes-dashboard",pod="kubernetes-dashboard-metrics-server-77db45cdf4-tpx4v"} 1.6509742024191372e+09 1650974202419
node_cpu_usage_seconds_total 357.35491 1633253809720
node_memory_working_set_bytes 1.616273408e+09 1633253809720
"#;
    let outcome = parse_exposition(body.as_bytes(), 0);
    assert_eq!(outcome.errors.len(), 1);
    assert_eq!(outcome.errors[0].line, 4);
    assert_eq!(outcome.errors[0].kind, LineErrorKind::NegativeTimestamp);
    // The lenient view still has the node; upstream's rule rejects it all.
    assert!(outcome.scrape.node.is_some());
    let err = decode_node(body.as_bytes(), 0).unwrap_err();
    assert_eq!(err.count, 1);
    assert!(
        err.to_string()
            .starts_with("failed parsing metrics: line 4")
    );
}

#[test]
fn d14_a_realistic_seventy_pod_kubelet_gives_one_node_and_seventy_pods() {
    let now_ms = 1_785_830_400_000; // 2026-08-04
    let mut rng = Rng::new(0x5eed_0070);
    let pods = realistic_pods(&mut rng, 70, now_ms);
    let body = render_kubelet(123_456.789, 7.5e9, now_ms, &pods);
    let lines = body.lines().filter(|l| !l.starts_with('#')).count();
    assert!(
        lines > 300,
        "a 70-pod body has hundreds of samples ({lines})"
    );

    let s = decode_node(body.as_bytes(), now_ms * 1_000_000).unwrap();
    assert_eq!(s.node.map(|n| n.timestamp_ns), Some(now_ms * 1_000_000));
    assert_eq!(s.pods.len(), 70);
    let containers: usize = s.pods.iter().map(|p| p.containers.len()).sum();
    assert_eq!(
        containers,
        pods.iter().map(|p| p.containers.len()).sum::<usize>()
    );
    for fake in &pods {
        let got = s
            .pods
            .iter()
            .find(|p| p.namespace == fake.namespace && p.name == fake.name)
            .unwrap();
        for c in &fake.containers {
            let (_, point) = got.containers.iter().find(|(n, _)| *n == c.name).unwrap();
            assert_eq!(point.cumulative_cpu_ns, (c.cpu_seconds * 1e9) as u64);
            assert_eq!(point.memory_bytes, c.memory_bytes as u64);
            assert_eq!(point.timestamp_ns, c.timestamp_ms * 1_000_000);
            assert_eq!(point.start_time_ns, (c.start_seconds * 1e9) as i64);
        }
    }
    // Output order is deterministic: pods by (namespace, name), containers by name.
    assert!(
        s.pods
            .windows(2)
            .all(|w| (&w[0].namespace, &w[0].name) < (&w[1].namespace, &w[1].name))
    );
    assert!(
        s.pods
            .iter()
            .all(|p| p.containers.windows(2).all(|w| w[0].0 < w[1].0))
    );
}

#[test]
fn d15_standard_families_with_non_negative_timestamps_never_error() {
    let mut rng = Rng::new(15);
    for round in 0..300 {
        let n = rng.below(8) as usize;
        let mut pods = realistic_pods(&mut rng, n, 1_700_000_000_000 + round);
        for p in &mut pods {
            // Awkward but legal label values and extreme values.
            if rng.chance(30) {
                p.name = format!("{}\\\"quoted\"\n{}", p.name, round);
            }
            for c in &mut p.containers {
                c.timestamp_ms = *rng.pick(&[0, 1, i64::MAX, c.timestamp_ms]);
                c.cpu_seconds =
                    *rng.pick(&[f64::NAN, f64::INFINITY, -1.0, 0.0, 1e300, c.cpu_seconds]);
            }
        }
        let body = render_kubelet(1.0, 2.0, rng.below(i64::MAX as u64) as i64, &pods);
        let outcome = parse_exposition(body.as_bytes(), 0);
        assert!(outcome.errors.is_empty(), "{:?}\n{body}", outcome.errors);
    }
}

#[test]
fn escaped_label_values_are_unescaped_and_unknown_labels_ignored() {
    let body = concat!(
        r#"container_cpu_usage_seconds_total{id="x",container="c\"1\\",namespace="n\ns",pod="p",} 1 5"#,
        "\n",
        r#"container_memory_working_set_bytes { container = "c\"1\\" , namespace="n\ns" ,pod="p"} 2 5"#,
        "\n",
    );
    let outcome = parse_exposition(body.as_bytes(), 0);
    // The second line has a space before `{`, which upstream does not match.
    assert!(outcome.errors.is_empty());
    assert!(outcome.scrape.pods.is_empty());
    assert_eq!(
        outcome.incomplete_pods,
        vec![("n\ns".to_owned(), "p".to_owned())]
    );

    let body = body.replace("bytes {", "bytes{");
    let s = decode(&body);
    assert_eq!(s.pods[0].namespace, "n\ns");
    assert_eq!(s.pods[0].containers[0].0, "c\"1\\");
}

#[test]
fn families_match_only_by_exact_name() {
    let body = "\
node_cpu_usage_seconds_total_extra 99 1\n\
node_cpu_usage_seconds 98 1\n\
node_cpu_usage_seconds_total 1 1000\n\
node_memory_working_set_bytes{} 2 1000\n\
xnode_memory_working_set_bytes 3 1000\n";
    let s = decode(body);
    let node = s.node.unwrap();
    assert_eq!(
        (node.cumulative_cpu_ns, node.memory_bytes),
        (1_000_000_000, 2)
    );
}

#[test]
fn syntax_errors_are_reported_per_line() {
    let body = "\
node_cpu_usage_seconds_total\n\
node_cpu_usage_seconds_total abc\n\
node_cpu_usage_seconds_total 1 12x\n\
node_cpu_usage_seconds_total 1 2 3\n\
node_cpu_usage_seconds_total{a=\"b} 1\n\
node_cpu_usage_seconds_total{a} 1\n\
node_cpu_usage_seconds_total{1a=\"x\"} 1\n\
node_cpu_usage_seconds_total{a=b} 1\n\
node_cpu_usage_seconds_total 1e400\n\
node_cpu_usage_seconds_total 1 99999999999999999999\n\
node_cpu_usage_seconds_total 1 1\r\n\
!bogus\n\
node_memory_working_set_bytes 1 1\n\
other_family{this is not parsed at all\n";
    let kinds: Vec<(usize, LineErrorKind)> = parse_exposition(body.as_bytes(), 0)
        .errors
        .into_iter()
        .map(|e| (e.line, e.kind))
        .collect();
    use LineErrorKind::*;
    assert_eq!(
        kinds,
        vec![
            (1, MissingValue),
            (2, InvalidValue),
            (3, TrailingData),
            (4, TrailingData),
            (5, UnterminatedLabels),
            (6, ExpectedEqual),
            (7, ExpectedLabelName),
            (8, ExpectedLabelValue),
            (9, InvalidValue),
            (10, InvalidTimestamp),
            (11, TrailingData),
            (12, InvalidStart),
        ]
    );
}

#[test]
fn duplicate_series_keep_the_last_value_like_upstream_maps() {
    let body = "\
container_cpu_usage_seconds_total{container=\"c\",namespace=\"n\",pod=\"p\"} 1 1000\n\
container_cpu_usage_seconds_total{container=\"c\",namespace=\"n\",pod=\"p\"} 2 2000\n\
container_memory_working_set_bytes{container=\"c\",namespace=\"n\",pod=\"p\"} 3 1500\n";
    let s = decode(body);
    let p = s.pods[0].containers[0].1;
    assert_eq!(p.cumulative_cpu_ns, 2_000_000_000);
    // The memory line came last, so its timestamp wins.
    assert_eq!(p.timestamp_ns, 1_500_000_000);
}

#[test]
fn crlf_line_endings_are_syntax_errors_like_upstream() {
    let body = NODE_LINES.replace('\n', "\r\n");
    let outcome = parse_exposition(body.as_bytes(), 0);
    assert!(!outcome.errors.is_empty());
    assert!(decode_node(body.as_bytes(), 0).is_err());
}

#[test]
fn a_container_with_only_a_start_time_drops_its_pod() {
    let fake = FakePod {
        namespace: "ns".into(),
        name: "p".into(),
        containers: vec![FakeContainer {
            name: "c".into(),
            cpu_seconds: 1.0,
            memory_bytes: 1.0,
            start_seconds: 1.0,
            timestamp_ms: 1,
        }],
    };
    let mut body = render_kubelet(1.0, 1.0, 1, &[fake]);
    body.push_str(
        "container_start_time_seconds{container=\"init\",namespace=\"ns\",pod=\"p\"} 5\n",
    );
    let s = decode(&body);
    assert!(s.pods.is_empty());
    assert!(s.node.is_some());
}

// === values that cannot be stored (issue 7) ===

use metrics_server_core::exposition::{RejectedContainer, RejectedValue, ValueProblem};

const NODE_MEMORY_OK: &str = "node_memory_working_set_bytes 1.616273408e+09 1000\n";
const NODE_CPU_OK: &str = "node_cpu_usage_seconds_total 357.35491 1000\n";

fn rejected(
    line: usize,
    metric: &'static str,
    value: &str,
    problem: ValueProblem,
) -> RejectedValue {
    RejectedValue {
        line,
        metric,
        value: value.to_owned(),
        problem,
    }
}

#[test]
fn node_memory_that_no_quantity_can_hold_drops_the_node_with_a_reason() {
    use ValueProblem::*;
    for (value, problem) in [
        ("+Inf", NotFinite),
        ("-Inf", NotFinite),
        ("NaN", NotFinite),
        ("1e300", MemoryTooLarge),
        ("9223372036854775808", MemoryTooLarge),
        ("-1", Negative),
        ("-0.5", Negative),
    ] {
        let body =
            format!("{NODE_CPU_OK}node_memory_working_set_bytes {value} 1000\n{CONTAINER_LINES}");
        let outcome = parse_exposition(body.as_bytes(), 0);
        assert!(outcome.errors.is_empty(), "{value}: not a syntax error");
        assert_eq!(outcome.scrape.node, None, "{value}");
        assert!(outcome.incomplete_node, "{value}");
        let want = rejected(2, "node_memory_working_set_bytes", value, problem);
        assert_eq!(outcome.rejected_node.as_ref(), Some(&want), "{value}");
        // Same scope as a zero value: the pods of the node are kept.
        assert_eq!(outcome.scrape.pods.len(), 1, "{value}");
        assert!(decode_node(body.as_bytes(), 0).is_ok_and(|s| s.node.is_none()));
    }
    let outcome = parse_exposition(
        format!("{NODE_CPU_OK}node_memory_working_set_bytes +Inf 1000\n").as_bytes(),
        0,
    );
    assert_eq!(
        outcome.rejected_node.map(|r| r.to_string()).as_deref(),
        Some("line 2: node_memory_working_set_bytes value +Inf is not a finite number")
    );
}

#[test]
fn the_largest_storable_memory_and_cpu_are_kept_exactly() {
    // The largest f64 below 2^63 bytes, and CPU seconds just below 2^64 ns.
    let body = "node_cpu_usage_seconds_total 18446744073.709 1000\n\
                node_memory_working_set_bytes 9223372036854774784 1000\n";
    let outcome = parse_exposition(body.as_bytes(), 0);
    assert_eq!(outcome.rejected_node, None);
    let node = outcome.scrape.node.expect("kept");
    assert_eq!(node.memory_bytes, 9_223_372_036_854_774_784);
    assert!(node.memory_bytes <= i64::MAX as u64);
    assert_eq!(node.cumulative_cpu_ns, (18_446_744_073.709f64 * 1e9) as u64);
}

#[test]
fn node_cpu_beyond_a_u64_of_nanoseconds_drops_the_node() {
    use ValueProblem::*;
    for (value, problem) in [
        ("+Inf", NotFinite),
        ("NaN", NotFinite),
        ("1e300", CpuTooLarge),
        ("18446744074", CpuTooLarge),
        ("-357.3", Negative),
    ] {
        let body = format!("node_cpu_usage_seconds_total {value} 1000\n{NODE_MEMORY_OK}");
        let outcome = parse_exposition(body.as_bytes(), 0);
        assert!(outcome.errors.is_empty(), "{value}");
        assert_eq!(outcome.scrape.node, None, "{value}");
        assert_eq!(
            outcome.rejected_node,
            Some(rejected(1, "node_cpu_usage_seconds_total", value, problem)),
            "{value}"
        );
    }
}

#[test]
fn a_container_value_that_cannot_be_stored_drops_its_pod_only() {
    use ValueProblem::*;
    let other = "container_cpu_usage_seconds_total{container=\"c\",namespace=\"ns\",pod=\"ok\"} 1 1000\n\
                 container_memory_working_set_bytes{container=\"c\",namespace=\"ns\",pod=\"ok\"} 2 1000\n";
    for (family, value, problem) in [
        ("container_cpu_usage_seconds_total", "+Inf", NotFinite),
        ("container_cpu_usage_seconds_total", "1e300", CpuTooLarge),
        ("container_cpu_usage_seconds_total", "-1", Negative),
        ("container_memory_working_set_bytes", "-Inf", NotFinite),
        ("container_memory_working_set_bytes", "1e19", MemoryTooLarge),
        ("container_memory_working_set_bytes", "NaN", NotFinite),
        ("container_start_time_seconds", "+Inf", NotFinite),
        ("container_start_time_seconds", "NaN", NotFinite),
    ] {
        let bad = format!(
            "container_cpu_usage_seconds_total{{container=\"c\",namespace=\"ns\",pod=\"bad\"}} 1 1000\n\
             container_memory_working_set_bytes{{container=\"c\",namespace=\"ns\",pod=\"bad\"}} 2 1000\n\
             {family}{{container=\"c\",namespace=\"ns\",pod=\"bad\"}} {value} 1000\n"
        );
        let body = format!("{NODE_CPU_OK}{NODE_MEMORY_OK}{bad}{other}");
        let outcome = parse_exposition(body.as_bytes(), 0);
        assert!(outcome.errors.is_empty(), "{family} {value}");
        assert!(
            outcome.scrape.node.is_some(),
            "{family} {value}: the node stays"
        );
        let pods: Vec<&str> = outcome
            .scrape
            .pods
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(pods, ["ok"], "{family} {value}");
        assert_eq!(
            outcome.incomplete_pods,
            [("ns".to_owned(), "bad".to_owned())]
        );
        let want = RejectedContainer {
            namespace: "ns".to_owned(),
            pod: "bad".to_owned(),
            container: "c".to_owned(),
            value: rejected(5, family, value, problem),
        };
        assert_eq!(
            outcome.rejected_containers,
            std::slice::from_ref(&want),
            "{family} {value}"
        );
        assert!(want.to_string().starts_with("container ns/bad/c: line 5: "));
    }
}

#[test]
fn finite_start_times_are_kept_like_upstream_even_far_out() {
    // A start time is a time, not a quantity: before 1970 is kept, and one
    // beyond the i64 range saturates as before.
    for (value, want) in [
        ("-1.5", -1_500_000_000),
        ("1e300", i64::MAX),
        ("-1e300", i64::MIN),
    ] {
        let body = format!(
            "{NODE_CPU_OK}{NODE_MEMORY_OK}\
             container_cpu_usage_seconds_total{{container=\"c\",namespace=\"ns\",pod=\"p\"}} 1 1000\n\
             container_memory_working_set_bytes{{container=\"c\",namespace=\"ns\",pod=\"p\"}} 2 1000\n\
             container_start_time_seconds{{container=\"c\",namespace=\"ns\",pod=\"p\"}} {value} 1000\n"
        );
        let outcome = parse_exposition(body.as_bytes(), 0);
        assert!(outcome.rejected_containers.is_empty(), "{value}");
        assert_eq!(
            outcome.scrape.pods[0].containers[0].1.start_time_ns, want,
            "{value}"
        );
    }
}

#[test]
fn the_last_line_of_a_series_decides_as_for_any_value() {
    // A bad value overwritten by a good one is forgotten, and the reverse.
    let body = format!("node_cpu_usage_seconds_total NaN 1000\n{NODE_CPU_OK}{NODE_MEMORY_OK}");
    let outcome = parse_exposition(body.as_bytes(), 0);
    assert_eq!(outcome.rejected_node, None);
    assert!(outcome.scrape.node.is_some());
    let body = format!("{NODE_CPU_OK}node_cpu_usage_seconds_total +Inf 1000\n{NODE_MEMORY_OK}");
    let outcome = parse_exposition(body.as_bytes(), 0);
    assert_eq!(outcome.rejected_node.map(|r| r.line), Some(2));
    assert_eq!(outcome.scrape.node, None);
}

#[test]
fn a_long_rejected_value_is_quoted_at_most_64_bytes() {
    let value = format!("-{}", "1".repeat(300));
    let body = format!("{NODE_CPU_OK}node_memory_working_set_bytes {value} 1000\n");
    let outcome = parse_exposition(body.as_bytes(), 0);
    let r = outcome.rejected_node.expect("rejected");
    assert_eq!(r.problem, ValueProblem::Negative);
    assert_eq!(r.value, value[..64]);
}
