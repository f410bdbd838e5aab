//! `Snapshot::pod_cursor` answers exactly like `Snapshot::pod_metrics`, in
//! whatever order it is asked, on awkward keys: names that are prefixes of
//! each other, non-ASCII, empty, the same name in several namespaces, keys
//! asked for but not stored, pods stored without servable metrics.

use std::sync::Arc;
use std::time::Duration;

use metrics_server_core::exposition::PodScrape;
use metrics_server_core::rate::MetricsPoint;
use metrics_server_core::store::{Batch, Snapshot, Store};
use proptest::prelude::*;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_785_830_400 * S;

/// Pieces whose concatenations collide in prefixes and straddle byte orders
/// (`"a"` < `"a-"` < `"aa"` < `"b"` < `"é"` < `"日"`).
const PIECES: &[&str] = &[
    "",
    "a",
    "a",
    "-",
    "aa",
    "b",
    "é",
    "e\u{301}",
    "日",
    "\u{10ffff}",
    "Z",
];

fn pt(ts_s: i64, cpu_s: u64) -> MetricsPoint {
    MetricsPoint {
        start_time_ns: T0,
        timestamp_ns: T0 + ts_s * S,
        cumulative_cpu_ns: cpu_s * 1_000_000_000,
        memory_bytes: 1 << 20,
    }
}

fn scrape(ns: &str, name: &str, containers: &[&str], ts_s: i64) -> PodScrape {
    PodScrape {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        containers: containers
            .iter()
            .map(|c| ((*c).to_owned(), pt(ts_s, 10 + ts_s as u64)))
            .collect(),
    }
}

/// Which tick(s) a pod is scraped in: both (servable), only the second (no
/// prev), or both with an extra container in the second (a container
/// without prev, so not servable).
#[derive(Clone, Copy, Debug)]
enum Seen {
    Both,
    SecondOnly,
    NewContainer,
}

fn snapshot(pods: &[(String, String, Seen)]) -> Arc<Snapshot> {
    let mut store = Store::new(Duration::from_secs(60));
    let (mut first, mut second) = (Batch::new(), Batch::new());
    for (ns, name, seen) in pods {
        match seen {
            Seen::Both => {
                first.push_pod(scrape(ns, name, &["c"], 0));
                second.push_pod(scrape(ns, name, &["c"], 15));
            }
            Seen::SecondOnly => second.push_pod(scrape(ns, name, &["c"], 15)),
            Seen::NewContainer => {
                first.push_pod(scrape(ns, name, &["c"], 0));
                second.push_pod(scrape(ns, name, &["c", "d"], 15));
            }
        }
    }
    store.apply(first);
    store.apply(second)
}

/// Asks the cursor for `keys` in order and checks every answer against the
/// independent lookup.
fn assert_same(snap: &Snapshot, keys: &[(String, String)]) {
    let mut cursor = snap.pod_cursor();
    for (ns, name) in keys {
        assert_eq!(
            cursor.pod_metrics(ns, name),
            snap.pod_metrics(ns, name),
            "{ns:?}/{name:?}"
        );
    }
}

fn awkward() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..4).prop_map(|p| p.concat())
}

fn seen() -> impl Strategy<Value = Seen> {
    prop_oneof![
        Just(Seen::Both),
        Just(Seen::SecondOnly),
        Just(Seen::NewContainer)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cursor_matches_binary_search_in_any_order(
        stored in prop::collection::vec((awkward(), awkward(), seen()), 0..40),
        extra in prop::collection::vec((awkward(), awkward()), 0..20),
        shuffle in prop::collection::vec(any::<prop::sample::Index>(), 0..80),
    ) {
        let snap = snapshot(&stored);
        let mut keys: Vec<(String, String)> = stored
            .iter()
            .map(|(ns, name, _)| (ns.clone(), name.clone()))
            .chain(extra)
            .collect();
        // Sorted with repeats, as a list request asks.
        keys.sort();
        assert_same(&snap, &keys);
        keys.dedup();
        assert_same(&snap, &keys);
        // Backwards and shuffled: still correct, only slower.
        keys.reverse();
        assert_same(&snap, &keys);
        for (i, ix) in shuffle.iter().enumerate() {
            if !keys.is_empty() {
                let j = ix.index(keys.len());
                let i = i % keys.len();
                keys.swap(i, j);
            }
        }
        assert_same(&snap, &keys);
    }
}

#[test]
fn cursor_on_an_empty_snapshot_finds_nothing() {
    let snap = Snapshot::empty();
    let mut cursor = snap.pod_cursor();
    assert_eq!(cursor.pod_metrics("", ""), None);
    assert_eq!(cursor.pod_metrics("ns", "pod"), None);
    assert_eq!(cursor.pod_metrics("", ""), None);
}

#[test]
fn cursor_walks_prefixes_and_shared_names_across_namespaces() {
    let names = ["a", "a-", "a-b", "aa", "b", "é", "日本"];
    let mut stored = Vec::new();
    for ns in ["", "n", "n-1", "n1", "ü"] {
        for name in names {
            stored.push((ns.to_owned(), name.to_owned(), Seen::Both));
        }
    }
    let snap = snapshot(&stored);
    let mut keys: Vec<(String, String)> = stored
        .iter()
        .map(|(ns, name, _)| (ns.clone(), name.clone()))
        .collect();
    // Stored order is byte order of (namespace, name).
    let stored_keys: Vec<(String, String)> = snap
        .pod_keys()
        .map(|(ns, name)| (ns.to_owned(), name.to_owned()))
        .collect();
    keys.sort();
    assert_eq!(stored_keys, keys);
    // Every stored pod is found, and the ones between and past them are not.
    let mut cursor = snap.pod_cursor();
    for (ns, name) in &keys {
        assert_eq!(cursor.pod_metrics(ns, &format!("{name}\0")), None);
    }
    let mut cursor = snap.pod_cursor();
    for (ns, name) in &keys {
        assert!(cursor.pod_metrics(ns, name).is_some(), "{ns}/{name}");
    }
    assert_eq!(cursor.pod_metrics("\u{10ffff}", ""), None);
    assert!(cursor.pod_metrics("", "a").is_some());
}
