//! Property tests: render-then-parse and format-then-parse round trips.

mod common;

use common::{FakeContainer, FakePod, render_kubelet};
use metrics_server_core::exposition::parse_exposition;
use metrics_server_core::quantity::{Quantity, format_cpu_nanocores, format_memory_bytes};
use metrics_server_core::selector::LabelSelector;
use metrics_server_core::{format_duration, parse_duration};
use proptest::prelude::*;

fn label_value() -> impl Strategy<Value = String> {
    // Mostly Kubernetes-looking names, sometimes anything (quotes,
    // backslashes, newlines, non-ASCII) to exercise escaping.
    prop_oneof![
        4 => "[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?",
        1 => "\\PC{0,12}",
        1 => "[\\\\\"\\na-z]{0,6}",
    ]
}

fn container() -> impl Strategy<Value = FakeContainer> {
    (
        label_value(),
        0.0f64..1e7,
        prop_oneof![Just(0.0), 1.0f64..1e12],
        0.0f64..2e9,
        0i64..=i64::MAX,
    )
        .prop_map(|(name, cpu, mem, start, ts)| FakeContainer {
            name,
            cpu_seconds: cpu,
            memory_bytes: mem.trunc(),
            start_seconds: start,
            timestamp_ms: ts,
        })
}

fn fake_pod() -> impl Strategy<Value = FakePod> {
    (
        label_value(),
        label_value(),
        prop::collection::vec(container(), 1..4),
    )
        .prop_map(|(namespace, name, mut containers)| {
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            containers.dedup_by(|a, b| a.name == b.name);
            FakePod {
                namespace,
                name,
                containers,
            }
        })
}

fn pods() -> impl Strategy<Value = Vec<FakePod>> {
    prop::collection::vec(fake_pod(), 0..6).prop_map(|mut pods| {
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        pods.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
        pods
    })
}

proptest! {
    #[test]
    fn rendered_kubelet_bodies_parse_back_to_the_same_samples(
        pods in pods(),
        node_cpu in prop_oneof![Just(0.0), 1e-3f64..1e9],
        node_mem in prop_oneof![Just(0.0), 1.0f64..1e13],
        node_ts in 0i64..=i64::MAX,
    ) {
        let node_mem = node_mem.trunc();
        let body = render_kubelet(node_cpu, node_mem, node_ts, &pods);
        let out = parse_exposition(body.as_bytes(), 0);
        prop_assert!(out.errors.is_empty(), "{:?}", out.errors);

        let node_kept = (node_cpu * 1e9) as u64 != 0 && node_mem as u64 != 0;
        prop_assert_eq!(out.scrape.node.is_some(), node_kept);
        if let Some(n) = out.scrape.node {
            prop_assert_eq!(n.cumulative_cpu_ns, (node_cpu * 1e9) as u64);
            prop_assert_eq!(n.memory_bytes, node_mem as u64);
            prop_assert_eq!(n.timestamp_ns, node_ts.wrapping_mul(1_000_000));
        }

        let expected: Vec<&FakePod> = pods
            .iter()
            .filter(|p| p.containers.iter().all(|c| (c.cpu_seconds * 1e9) as u64 != 0 && c.memory_bytes as u64 != 0))
            .collect();
        prop_assert_eq!(out.scrape.pods.len(), expected.len());
        for (got, want) in out.scrape.pods.iter().zip(expected) {
            prop_assert_eq!(&got.namespace, &want.namespace);
            prop_assert_eq!(&got.name, &want.name);
            prop_assert_eq!(got.containers.len(), want.containers.len());
            for ((name, p), c) in got.containers.iter().zip(&want.containers) {
                prop_assert_eq!(name, &c.name);
                prop_assert_eq!(p.cumulative_cpu_ns, (c.cpu_seconds * 1e9) as u64);
                prop_assert_eq!(p.memory_bytes, c.memory_bytes as u64);
                prop_assert_eq!(p.start_time_ns, (c.start_seconds * 1e9) as i64);
                prop_assert_eq!(p.timestamp_ns, c.timestamp_ms.wrapping_mul(1_000_000));
            }
        }
    }

    #[test]
    fn label_selectors_survive_display_and_reparse(
        reqs in prop::collection::vec(
            (
                "([a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?\\.)?[a-z]{1,3}/?[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?",
                0usize..9,
                prop::collection::vec("[A-Za-z0-9]([-A-Za-z0-9_.]{0,6}[A-Za-z0-9])?|", 1..4),
                -1000i64..1000,
            ),
            0..5,
        )
    ) {
        let text: Vec<String> = reqs
            .iter()
            .map(|(key, op, values, n)| {
                let key = key.trim_end_matches('/');
                match op {
                    0 => key.to_owned(),
                    1 => format!("!{key}"),
                    2 => format!("{key}={}", values[0]),
                    3 => format!("{key}=={}", values[0]),
                    4 => format!("{key}!={}", values[0]),
                    5 => format!("{key} in ({})", values.join(",")),
                    6 => format!("{key} notin ({})", values.join(",")),
                    7 => format!("{key}>{}", n.abs()),
                    _ => format!("{key}<{}", n.abs()),
                }
            })
            .collect();
        let input = text.join(",");
        let parsed = LabelSelector::parse(&input);
        prop_assert!(parsed.is_ok(), "{:?}: {:?}", input, parsed);
        let parsed = parsed.unwrap();
        let printed = parsed.to_string();
        let reparsed = LabelSelector::parse(&printed).unwrap();
        prop_assert_eq!(&reparsed, &parsed);
        prop_assert_eq!(reparsed.to_string(), printed);
    }

    #[test]
    fn go_durations_survive_format_and_parse(ns in any::<i64>()) {
        prop_assert_eq!(parse_duration(&format_duration(ns)), Ok(ns));
    }

    #[test]
    fn cpu_quantities_survive_format_and_parse(n in 0u64..=i64::MAX as u64) {
        let q = Quantity::parse(&format_cpu_nanocores(n)).unwrap();
        prop_assert_eq!(q.scaled_value(-9), n as i64);
    }

    #[test]
    fn memory_quantities_survive_format_and_parse(n in 0u64..=i64::MAX as u64) {
        let q = Quantity::parse(&format_memory_bytes(n)).unwrap();
        prop_assert_eq!(q.value(), n as i64);
    }
}
