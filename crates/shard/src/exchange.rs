//! Versioned shard state: the owner's side ([`OwnShard`]) and a peer's copy ([`PeerView`]).
//!
//! The owner bumps its version whenever a tick changes what it holds and remembers, per node,
//! the version that last changed it, plus a bounded list of removals. A peer that last saw
//! version `v` asks for `delta_since(epoch, v)` and gets only what changed; a peer that is
//! too far behind, or knew another incarnation of the owner, gets the full state.

use std::collections::BTreeMap;

use metrics_server_core::NodeScrape;
use thiserror::Error;

use crate::codec::Delta;

/// Removals remembered for deltas; a peer further behind gets the full state.
pub const MAX_TOMBSTONES: usize = 4096;

#[derive(Clone, Debug)]
struct Entry {
    changed: u64,
    scrape: NodeScrape,
}

/// The nodes this replica scraped, versioned for its peers.
#[derive(Clone, Debug)]
pub struct OwnShard {
    epoch: u64,
    version: u64,
    entries: BTreeMap<String, Entry>,
    /// node → version at which it was removed.
    tombstones: BTreeMap<String, u64>,
    /// Deltas can start at this version or later; earlier cursors get a full state.
    horizon: u64,
}

impl OwnShard {
    /// An empty shard of the incarnation `epoch` (pick one that differs across restarts,
    /// such as the start time).
    pub fn new(epoch: u64) -> Self {
        Self {
            epoch,
            version: 0,
            entries: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            horizon: 0,
        }
    }

    /// The incarnation.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The current version (0 before anything was held).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The held nodes and their latest scrapes, by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &NodeScrape)> + '_ {
        self.entries.iter().map(|(k, e)| (k.as_str(), &e.scrape))
    }

    /// Number of held nodes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replaces what this replica holds with one tick's successful scrapes of its own nodes
    /// (a node absent from `scrapes` is no longer held, as the store forgets a node whose
    /// scrape failed). Returns whether anything changed; the version moves only then.
    pub fn update<I>(&mut self, scrapes: I) -> bool
    where
        I: IntoIterator<Item = (String, NodeScrape)>,
    {
        let next = self.version + 1;
        let mut fresh: BTreeMap<String, Entry> = BTreeMap::new();
        let mut changed = false;
        for (name, scrape) in scrapes {
            let entry = match self.entries.remove(&name) {
                Some(old) if old.scrape == scrape => old,
                _ => {
                    changed = true;
                    Entry {
                        changed: next,
                        scrape,
                    }
                }
            };
            self.tombstones.remove(&name);
            fresh.insert(name, entry);
        }
        for gone in std::mem::take(&mut self.entries).into_keys() {
            changed = true;
            self.tombstones.insert(gone, next);
        }
        self.entries = fresh;
        if changed {
            self.version = next;
            self.prune_tombstones();
        }
        changed
    }

    fn prune_tombstones(&mut self) {
        while self.tombstones.len() > MAX_TOMBSTONES {
            let Some((name, v)) = self
                .tombstones
                .iter()
                .min_by_key(|(_, v)| **v)
                .map(|(k, v)| (k.clone(), *v))
            else {
                break;
            };
            self.tombstones.remove(&name);
            self.horizon = self.horizon.max(v);
        }
    }

    /// What a peer holding `(epoch, since)` needs to catch up.
    pub fn delta_since(&self, epoch: u64, since: u64) -> Delta {
        let full = epoch != self.epoch || since < self.horizon || since > self.version;
        let upserts = self
            .entries
            .iter()
            .filter(|(_, e)| full || e.changed > since)
            .map(|(k, e)| (k.clone(), e.scrape.clone()))
            .collect();
        let removed = if full {
            Vec::new()
        } else {
            self.tombstones
                .iter()
                .filter(|(_, v)| **v > since)
                .map(|(k, _)| k.clone())
                .collect()
        };
        Delta {
            epoch: self.epoch,
            since: if full { 0 } else { since },
            version: self.version,
            full,
            upserts,
            removed,
        }
    }

    /// Whether a peer at `(epoch, since)` has something to fetch.
    pub fn has_news_for(&self, epoch: u64, since: u64) -> bool {
        epoch != self.epoch || since != self.version
    }
}

/// Why a delta does not fit a peer's copy; the caller asks for the full state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ApplyError {
    /// The delta starts at another version or incarnation than the copy holds.
    #[error("delta from {epoch}/{since} does not follow the copy's {have_epoch}/{have_version}")]
    Gap {
        /// The delta's epoch.
        epoch: u64,
        /// The delta's start.
        since: u64,
        /// The copy's epoch.
        have_epoch: u64,
        /// The copy's version.
        have_version: u64,
    },
}

/// One peer's shard as this replica last received it.
#[derive(Clone, Debug, Default)]
pub struct PeerView {
    epoch: u64,
    version: u64,
    synced: bool,
    nodes: BTreeMap<String, NodeScrape>,
}

impl PeerView {
    /// An empty copy that has never synced (its cursor asks for the full state).
    pub fn new() -> Self {
        Self::default()
    }

    /// `(epoch, version)` to ask the peer for next.
    pub fn cursor(&self) -> (u64, u64) {
        if self.synced {
            (self.epoch, self.version)
        } else {
            (0, 0)
        }
    }

    /// Whether a full state was received at least once.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Applies a delta received from the peer. Returns whether the held nodes changed.
    pub fn apply(&mut self, delta: Delta) -> Result<bool, ApplyError> {
        if !delta.full && (!self.synced || delta.epoch != self.epoch || delta.since != self.version)
        {
            return Err(ApplyError::Gap {
                epoch: delta.epoch,
                since: delta.since,
                have_epoch: self.epoch,
                have_version: self.version,
            });
        }
        let mut changed = delta.full && !delta.upserts.is_empty() || !self.synced;
        if delta.full {
            changed |= !self.nodes.is_empty();
            self.nodes.clear();
        }
        for name in delta.removed {
            changed |= self.nodes.remove(&name).is_some();
        }
        for (name, scrape) in delta.upserts {
            changed = true;
            self.nodes.insert(name, scrape);
        }
        self.epoch = delta.epoch;
        self.version = delta.version;
        self.synced = true;
        Ok(changed)
    }

    /// The held nodes and their scrapes, by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &NodeScrape)> + '_ {
        self.nodes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of held nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_server_core::MetricsPoint;
    use proptest::prelude::*;

    fn scrape(ts: i64) -> NodeScrape {
        NodeScrape {
            node: Some(MetricsPoint {
                timestamp_ns: ts,
                cumulative_cpu_ns: ts as u64,
                memory_bytes: 1,
                start_time_ns: 0,
            }),
            pods: Vec::new(),
        }
    }

    fn names(v: &PeerView) -> Vec<&str> {
        v.entries().map(|(k, _)| k).collect()
    }

    #[test]
    fn only_changes_since_the_peers_version_are_sent() {
        let mut own = OwnShard::new(9);
        assert!(own.update([("a".to_owned(), scrape(1)), ("b".to_owned(), scrape(1))]));
        assert_eq!(own.version(), 1);
        assert!(own.update([("a".to_owned(), scrape(2)), ("b".to_owned(), scrape(1))]));
        let d = own.delta_since(9, 1);
        assert!(!d.full);
        assert_eq!(d.upserts.len(), 1);
        assert_eq!(d.upserts[0].0, "a");
        // Nothing changed: the version stays, so long polls keep waiting.
        assert!(!own.update([("a".to_owned(), scrape(2)), ("b".to_owned(), scrape(1))]));
        assert_eq!(own.version(), 2);
        assert!(!own.has_news_for(9, 2));
        // b's scrape failed: it is removed, and peers hear of it.
        assert!(own.update([("a".to_owned(), scrape(3))]));
        let d = own.delta_since(9, 2);
        assert_eq!(d.removed, ["b"]);
    }

    #[test]
    fn strangers_and_peers_from_the_future_get_the_full_state() {
        let mut own = OwnShard::new(9);
        own.update([("a".to_owned(), scrape(1))]);
        for (epoch, since) in [(8, 1), (9, 5), (0, 0)] {
            let d = own.delta_since(epoch, since);
            assert!(d.full, "{epoch}/{since}");
            assert_eq!(d.upserts.len(), 1);
        }
    }

    #[test]
    fn a_peer_copy_follows_deltas_and_refuses_gaps() {
        let mut own = OwnShard::new(3);
        let mut view = PeerView::new();
        assert_eq!(view.cursor(), (0, 0));
        own.update([("a".to_owned(), scrape(1)), ("b".to_owned(), scrape(1))]);
        let (e, v) = view.cursor();
        assert!(view.apply(own.delta_since(e, v)).unwrap());
        assert_eq!(view.cursor(), (3, 1));
        own.update([("b".to_owned(), scrape(2)), ("c".to_owned(), scrape(2))]);
        let skipped = own.delta_since(3, 1);
        own.update([("c".to_owned(), scrape(3))]);
        // A delta from version 2 does not fit a copy at version 1.
        let gap = own.delta_since(3, 2);
        assert!(matches!(
            view.apply(gap),
            Err(ApplyError::Gap { since: 2, .. })
        ));
        assert_eq!(names(&view), ["a", "b"]);
        let (e, v) = view.cursor();
        assert!(view.apply(own.delta_since(e, v)).unwrap());
        assert_eq!(names(&view), ["c"]);
        assert_eq!(view.entries().next().unwrap().1, &scrape(3));
        // A delta the copy already passed is refused too.
        assert!(view.apply(skipped).is_err());
    }

    #[test]
    fn an_owner_restart_resets_the_copy() {
        let mut first = OwnShard::new(1);
        first.update([("a".to_owned(), scrape(1))]);
        let mut view = PeerView::new();
        view.apply(first.delta_since(0, 0)).unwrap();
        let mut second = OwnShard::new(2);
        second.update([("b".to_owned(), scrape(5))]);
        let (e, v) = view.cursor();
        let d = second.delta_since(e, v);
        assert!(d.full);
        view.apply(d).unwrap();
        assert_eq!(names(&view), ["b"]);
    }

    proptest! {
        /// Whatever the owner does and however many polls the peer misses, a peer that
        /// applies what it is sent (asking again from scratch on a gap) ends equal.
        #[test]
        fn a_copy_converges_to_the_owner(
            ticks in proptest::collection::vec(
                (proptest::collection::btree_map(0u8..12, 0i64..4, 0..8), any::<bool>()), 1..30),
        ) {
            let mut own = OwnShard::new(77);
            let mut view = PeerView::new();
            for (held, poll) in ticks {
                own.update(held.into_iter().map(|(n, ts)| (format!("n{n}"), scrape(ts))));
                if !poll {
                    continue;
                }
                let (e, v) = view.cursor();
                let delta = crate::codec::decode(&crate::codec::encode(&own.delta_since(e, v))).unwrap();
                prop_assert!(view.apply(delta).is_ok());
                let want: Vec<(&str, &NodeScrape)> = own.entries().collect();
                let got: Vec<(&str, &NodeScrape)> = view.entries().collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(view.cursor(), (77, own.version()));
            }
        }
    }
}
