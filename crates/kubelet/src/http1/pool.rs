//! The idle pool of the lean HTTP/1.1 client: only sockets (and their TLS state) wait here.
//!
//! Keyed by `host:port` (a client speaks one scheme). A request takes the most recently
//! returned connection of its authority; connections idle longer than the idle timeout are
//! dropped when met, and a periodic sweep drops those of authorities no longer asked for
//! (nodes that left the cluster), so their sockets do not stay open forever.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Idle connections kept per authority. The scraper asks each kubelet once per tick, so one
/// is enough; a second covers a request overlapping the next tick's.
pub(crate) const MAX_IDLE_PER_AUTHORITY: usize = 2;

/// Longest time between sweeps of the whole pool.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// A pool of idle connections of type `C`.
#[derive(Debug)]
pub(crate) struct Pool<C> {
    idle_timeout: Duration,
    sweep_interval: Duration,
    inner: Mutex<Inner<C>>,
}

#[derive(Debug)]
struct Inner<C> {
    by_authority: HashMap<String, Vec<Idle<C>>>,
    last_sweep: Instant,
}

#[derive(Debug)]
struct Idle<C> {
    conn: C,
    since: Instant,
}

impl<C> Pool<C> {
    /// A pool dropping connections idle for `idle_timeout` or longer.
    pub(crate) fn new(idle_timeout: Duration) -> Self {
        Self {
            idle_timeout,
            sweep_interval: idle_timeout.min(MAX_SWEEP_INTERVAL),
            inner: Mutex::new(Inner {
                by_authority: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<C>> {
        // Nothing here can leave the map half-updated; a panic elsewhere must not wedge it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently returned live connection to `authority`, if any.
    pub(crate) fn take(&self, authority: &str) -> Option<C> {
        let now = Instant::now();
        let mut inner = self.lock();
        let idle = inner.by_authority.get_mut(authority)?;
        let mut found = None;
        // Newest first: expired ones met on the way are dropped (closing their sockets).
        while let Some(entry) = idle.pop() {
            if now.duration_since(entry.since) < self.idle_timeout {
                found = Some(entry.conn);
                break;
            }
        }
        if idle.is_empty() {
            inner.by_authority.remove(authority);
        }
        found
    }

    /// Keeps `conn` for the next request to `authority`, dropping the oldest one beyond the
    /// per-authority bound.
    pub(crate) fn put(&self, authority: &str, conn: C) {
        let now = Instant::now();
        let mut inner = self.lock();
        if now.duration_since(inner.last_sweep) >= self.sweep_interval {
            self.sweep(&mut inner, now);
        }
        let idle = inner.by_authority.entry(authority.to_owned()).or_default();
        if idle.len() >= MAX_IDLE_PER_AUTHORITY {
            idle.remove(0);
        }
        idle.push(Idle { conn, since: now });
    }

    fn sweep(&self, inner: &mut Inner<C>, now: Instant) {
        inner.by_authority.retain(|_, idle| {
            idle.retain(|e| now.duration_since(e.since) < self.idle_timeout);
            !idle.is_empty()
        });
        inner.by_authority.shrink_to_fit();
        inner.last_sweep = now;
    }

    /// Idle connections held, over all authorities (tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.lock().by_authority.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_newest_connection_is_taken_first_and_the_bound_drops_the_oldest() {
        let pool = Pool::new(Duration::from_secs(90));
        for n in 1..=3 {
            pool.put("a:1", n);
        }
        assert_eq!(pool.idle_count(), MAX_IDLE_PER_AUTHORITY);
        assert_eq!(pool.take("a:1"), Some(3));
        assert_eq!(pool.take("a:1"), Some(2));
        assert_eq!(pool.take("a:1"), None);
        assert_eq!(pool.take("b:1"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_connections_are_never_taken() {
        let pool = Pool::new(Duration::from_secs(90));
        pool.put("a:1", 1);
        tokio::time::advance(Duration::from_secs(60)).await;
        pool.put("a:1", 2);
        tokio::time::advance(Duration::from_secs(40)).await;
        // 1 is 100 s old, 2 is 40 s old.
        assert_eq!(pool.take("a:1"), Some(2));
        assert_eq!(pool.take("a:1"), None);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_drops_authorities_nobody_asks_for_any_more() {
        let pool = Pool::new(Duration::from_secs(90));
        pool.put("gone:1", 1);
        tokio::time::advance(Duration::from_secs(91)).await;
        pool.put("here:1", 2);
        assert_eq!(pool.idle_count(), 1);
        assert_eq!(pool.take("here:1"), Some(2));
    }
}
