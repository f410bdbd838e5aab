//! A small TTL cache for review results (Go's delegating authn/authz cache ~10s).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bound on entries; when reached, expired entries are purged and, if that is not
/// enough, the cache is cleared. Keeps memory bounded under a flood of distinct tokens.
const MAX_ENTRIES: usize = 4096;

/// A bounded map whose entries expire after a per-entry TTL.
#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value if present and not expired.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(key) {
            Some((v, expires)) if Instant::now() < *expires => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` for `ttl`; a zero TTL stores nothing.
    pub(crate) fn insert(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, expires)| now < *expires);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (value, now + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl() {
        let c = TtlCache::new();
        c.insert("a", 1, Duration::from_millis(30));
        c.insert("b", 2, Duration::from_secs(60));
        assert_eq!(c.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(&"a"), None);
        assert_eq!(c.get(&"b"), Some(2));
    }

    #[test]
    fn a_zero_ttl_disables_caching() {
        let c = TtlCache::new();
        c.insert("a", 1, Duration::ZERO);
        assert_eq!(c.get(&"a"), None);
    }

    #[test]
    fn the_cache_never_grows_past_its_bound() {
        let c = TtlCache::new();
        for i in 0..(MAX_ENTRIES + 10) {
            c.insert(i, i, Duration::from_secs(60));
        }
        let len = c.entries.lock().map(|m| m.len()).unwrap_or(0);
        assert!(len <= MAX_ENTRIES);
    }
}
