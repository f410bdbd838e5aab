//! The review caches (token and authorization): bounded LRU maps whose entries expire after a
//! per-entry TTL, like the generic apiserver's delegating authn/authz caches. When the bound
//! forces out a live entry, `msrs_auth_cache_evictions_total{cache}` counts it and a warning is
//! logged at most once a minute per cache, so an operator can see the cache is too small.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Default number of entries of each cache.
pub const DEFAULT_CACHE_SIZE: usize = 4096;

/// How often, at most, a cache logs that it is evicting live entries.
const EVICTION_LOG_INTERVAL: Duration = Duration::from_secs(60);

type CacheLabel = [(&'static str, &'static str); 1];

/// The auth crate's self-metrics. Cheap to clone; register once per registry.
#[derive(Debug, Clone, Default)]
pub struct AuthMetrics {
    evictions: Family<CacheLabel, Counter>,
}

impl AuthMetrics {
    /// Registers `msrs_auth_cache_evictions_total` on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "msrs_auth_cache_evictions",
            "Live entries evicted from an authentication or authorization cache because it was full",
            metrics.evictions.clone(),
        );
        metrics
    }

    /// Metrics that go nowhere (tests, or callers without a registry).
    pub fn unregistered() -> Self {
        Self::default()
    }

    pub(crate) fn evictions(&self, cache: &'static str) -> Counter {
        self.evictions.get_or_create(&[("cache", cache)]).clone()
    }
}

struct Inner<K: Hash + Eq, V> {
    /// `None` when the capacity is 0: caching is off.
    entries: Option<LruCache<K, (V, Instant)>>,
    last_logged: Option<Instant>,
}

/// A bounded LRU map with per-entry TTLs.
pub(crate) struct TtlCache<K: Hash + Eq, V> {
    name: &'static str,
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
    evictions: Counter,
}

impl<K: Hash + Eq, V> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlCache")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// `name` is the `cache` label (`token` or `authorization`); a `capacity` of 0 disables
    /// caching.
    pub(crate) fn new(name: &'static str, capacity: usize, metrics: &AuthMetrics) -> Self {
        Self {
            name,
            capacity,
            inner: Mutex::new(Inner {
                entries: NonZeroUsize::new(capacity).map(LruCache::new),
                last_logged: None,
            }),
            evictions: metrics.evictions(name),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value if present and not expired; a hit becomes the most recently used.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let mut inner = self.lock();
        let entries = inner.entries.as_mut()?;
        match entries.get(key) {
            Some((v, expires)) if Instant::now() < *expires => Some(v.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` for `ttl` (a zero TTL stores nothing). When full, the least recently
    /// used entry makes room.
    pub(crate) fn insert(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(entries) = inner.entries.as_mut() else {
            return;
        };
        let evicted_live = match entries.push(key, (value, now + ttl)) {
            // `push` also hands back the old value of a replaced key: not an eviction.
            Some((old_key, (_, expires))) => now < expires && entries.peek(&old_key).is_none(),
            None => false,
        };
        if !evicted_live {
            return;
        }
        self.evictions.inc();
        if log_due(&mut inner.last_logged, now) {
            tracing::warn!(
                cache = self.name,
                capacity = self.capacity,
                "Auth cache is full: evicting least recently used live entries (logged at most once a minute; see msrs_auth_cache_evictions_total)"
            );
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.as_ref().map_or(0, LruCache::len)
    }
}

/// Whether a limit hit may be logged now (at most once per [`EVICTION_LOG_INTERVAL`]);
/// records the time when it may.
pub(crate) fn log_due(last_logged: &mut Option<Instant>, now: Instant) -> bool {
    let due = last_logged.is_none_or(|at| now.duration_since(at) >= EVICTION_LOG_INTERVAL);
    if due {
        *last_logged = Some(now);
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize) -> (TtlCache<u32, u32>, Counter) {
        let metrics = AuthMetrics::unregistered();
        let c = TtlCache::new("token", capacity, &metrics);
        (c, metrics.evictions("token"))
    }

    #[test]
    fn entries_expire_after_their_ttl() {
        let (c, _) = cache(8);
        c.insert(1, 1, Duration::from_millis(30));
        c.insert(2, 2, Duration::from_secs(60));
        assert_eq!(c.get(&1), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(&1), None);
        assert_eq!(c.get(&2), Some(2));
    }

    #[test]
    fn a_zero_ttl_or_capacity_disables_caching() {
        let (c, _) = cache(8);
        c.insert(1, 1, Duration::ZERO);
        assert_eq!(c.get(&1), None);
        let (off, evictions) = cache(0);
        off.insert(1, 1, Duration::from_secs(60));
        assert_eq!(off.get(&1), None);
        assert_eq!(evictions.get(), 0);
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used_entry_only() {
        let (c, evictions) = cache(3);
        for k in 1..=3 {
            c.insert(k, k, Duration::from_secs(60));
        }
        // Touch 1: 2 is now the least recently used.
        assert_eq!(c.get(&1), Some(1));
        c.insert(4, 4, Duration::from_secs(60));
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&2), None, "the LRU entry went");
        assert_eq!(c.get(&1), Some(1));
        assert_eq!(c.get(&3), Some(3));
        assert_eq!(c.get(&4), Some(4));
        assert_eq!(evictions.get(), 1);
    }

    #[test]
    fn replacing_a_key_or_dropping_an_expired_entry_is_not_an_eviction() {
        let (c, evictions) = cache(2);
        c.insert(1, 1, Duration::from_millis(1));
        c.insert(2, 2, Duration::from_secs(60));
        c.insert(2, 20, Duration::from_secs(60));
        assert_eq!(c.get(&2), Some(20));
        std::thread::sleep(Duration::from_millis(5));
        // 1 is the LRU entry and already expired.
        c.insert(3, 3, Duration::from_secs(60));
        assert_eq!(evictions.get(), 0);
    }

    #[test]
    fn the_cache_never_grows_past_its_bound_and_counts_every_eviction() {
        let (c, evictions) = cache(DEFAULT_CACHE_SIZE);
        let n = u32::try_from(DEFAULT_CACHE_SIZE).unwrap_or(u32::MAX) + 10;
        for i in 0..n {
            c.insert(i, i, Duration::from_secs(60));
        }
        assert_eq!(c.len(), DEFAULT_CACHE_SIZE);
        assert_eq!(evictions.get(), 10);
        // The newest entries survive, not an emptied cache.
        assert_eq!(c.get(&(n - 1)), Some(n - 1));
    }

    #[test]
    fn eviction_logs_are_rate_limited_to_one_a_minute() {
        let start = Instant::now();
        let mut last = None;
        let at = |secs| start + Duration::from_secs(secs);
        let logged: Vec<u64> = [0, 1, 30, 59, 60, 61, 119, 120, 500]
            .into_iter()
            .filter(|s| log_due(&mut last, at(*s)))
            .collect();
        assert_eq!(logged, vec![0, 60, 120, 500]);
    }

    #[test]
    fn the_eviction_counter_is_exposed_with_our_prefix() {
        let mut registry = Registry::default();
        let metrics = AuthMetrics::register(&mut registry);
        let c: TtlCache<u32, u32> = TtlCache::new("authorization", 1, &metrics);
        c.insert(1, 1, Duration::from_secs(60));
        c.insert(2, 2, Duration::from_secs(60));
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        assert!(
            text.contains("msrs_auth_cache_evictions_total{cache=\"authorization\"} 1"),
            "{text}"
        );
    }
}
