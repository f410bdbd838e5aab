//! One store batch from this replica's own scrapes and its copies of the peers' shards.
//!
//! The store's rules (two points per series, resets, drops) do not change: a point does not
//! care who scraped it. Re-applying an unchanged point is a no-op for the store (a sample
//! that is not newer than `last` keeps the stored pair), so the batch may be rebuilt and
//! applied whenever any source changes, not only on this replica's ticks.
//!
//! During a handover a node can be held by two sources (the leaver's copy and the new
//! owner); the freshest scrape wins, the first source on a tie.

use std::collections::BTreeMap;

use metrics_server_core::{Batch, NodeScrape};

/// The newest sample time in a scrape: its node point, else its newest container.
pub fn freshness(scrape: &NodeScrape) -> i64 {
    scrape.node.map_or_else(
        || {
            scrape
                .pods
                .iter()
                .flat_map(|p| p.containers.iter().map(|(_, c)| c.timestamp_ns))
                .max()
                .unwrap_or(i64::MIN)
        },
        |p| p.timestamp_ns,
    )
}

/// Builds the batch from `sources` (this replica's own first), keeping for each node the
/// freshest scrape among the sources, and only nodes `keep` accepts (the nodes the cluster
/// still lists and the node selector keeps).
pub fn batch<'a, S, I>(sources: S, keep: impl Fn(&str) -> bool) -> Batch
where
    S: IntoIterator<Item = I>,
    I: IntoIterator<Item = (&'a str, &'a NodeScrape)>,
{
    let mut chosen: BTreeMap<&'a str, &'a NodeScrape> = BTreeMap::new();
    for source in sources {
        for (name, scrape) in source {
            if !keep(name) {
                continue;
            }
            match chosen.get(name) {
                Some(held) if freshness(held) >= freshness(scrape) => {}
                _ => {
                    chosen.insert(name, scrape);
                }
            }
        }
    }
    let mut out = Batch::new();
    for (name, scrape) in chosen {
        out.add_node_scrape(name, scrape.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_server_core::{MetricsPoint, PodScrape, Store};
    use std::time::Duration;

    const S: i64 = 1_000_000_000;

    fn point(ts_s: i64, cpu_s: u64) -> MetricsPoint {
        MetricsPoint {
            start_time_ns: S,
            timestamp_ns: ts_s * S,
            cumulative_cpu_ns: cpu_s * 1_000_000_000,
            memory_bytes: 1 << 20,
        }
    }

    fn scrape(node: &str, ts_s: i64, cpu_s: u64) -> NodeScrape {
        NodeScrape {
            node: Some(MetricsPoint {
                start_time_ns: 0,
                ..point(ts_s, cpu_s)
            }),
            pods: vec![PodScrape {
                namespace: "default".to_owned(),
                name: format!("pod-on-{node}"),
                containers: vec![("app".to_owned(), point(ts_s, cpu_s / 2))],
            }],
        }
    }

    fn entries(v: &[(String, NodeScrape)]) -> impl Iterator<Item = (&str, &NodeScrape)> {
        v.iter().map(|(k, s)| (k.as_str(), s))
    }

    #[test]
    fn the_freshest_scrape_of_a_node_wins_and_unknown_nodes_are_left_out() {
        let own = vec![("a".to_owned(), scrape("a", 20, 2))];
        let peer = vec![
            ("a".to_owned(), scrape("a", 10, 1)),
            ("b".to_owned(), scrape("b", 10, 1)),
            ("gone".to_owned(), scrape("gone", 10, 1)),
        ];
        let b = batch([entries(&own), entries(&peer)], |n| n != "gone");
        assert_eq!(b.node_count(), 2);
        assert_eq!(b.pod_count(), 2);
        let mut store = Store::new(Duration::from_secs(15));
        let snap = store.apply(b);
        assert_eq!(snap.node_names().collect::<Vec<_>>(), ["a", "b"]);
    }

    /// A replica that merges a peer's points and later takes the node over serves the same
    /// rate as the peer would have, and has a rate on its very first own scrape.
    #[test]
    fn merged_points_give_the_same_rates_and_a_rate_right_after_takeover() {
        let res = Duration::from_secs(15);
        let mut owner = Store::new(res);
        let mut other = Store::new(res);
        let mut peer_copy: Vec<(String, NodeScrape)> = Vec::new();
        for (ts, cpu) in [(100, 10), (115, 13)] {
            let s = vec![("n".to_owned(), scrape("n", ts, cpu))];
            owner.apply(batch([entries(&s)], |_| true));
            peer_copy = s;
            // The other replica rebuilds on its own tick and on the peer's news: twice.
            other.apply(batch([entries(&[]), entries(&peer_copy)], |_| true));
            other.apply(batch([entries(&[]), entries(&peer_copy)], |_| true));
        }
        let (a, b) = (owner.snapshot(), other.snapshot());
        assert_eq!(a.node_metrics("n"), b.node_metrics("n"));
        assert!(a.node_metrics("n").is_some());
        assert_eq!(
            a.pod_metrics("default", "pod-on-n"),
            b.pod_metrics("default", "pod-on-n")
        );
        // The owner dies; the other replica scrapes n itself at 130 s: a rate at once, over
        // the 15 s since the owner's last point.
        let own = vec![("n".to_owned(), scrape("n", 130, 16))];
        let snap = other.apply(batch([entries(&own), entries(&peer_copy)], |_| true));
        let usage = snap.node_metrics("n").unwrap();
        assert_eq!(usage.window_ns, 15 * S);
        assert_eq!(usage.cpu_nanocores, 200_000_000);
    }
}
