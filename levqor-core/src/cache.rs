//! [`TtlCache`]: the core's one cache. Each entry is trusted for a fixed time after it was
//! written, then reads as absent; the map is bounded so that a flood of distinct keys cannot
//! grow it without limit.
//!
//! Written here rather than taken from `moka` or `quick_cache`: every use is a small map read on
//! a request's hot path (a key lookup, a user's consent facts, a tier), where a read lock and a
//! hash lookup is the whole cost, and none of them needs eviction policies, weights or a
//! background housekeeper.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// A map whose entries expire `ttl` after they were written, holding at most `capacity`.
pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: RwLock<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// An empty cache.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The value of `key`, unless it is missing or older than the TTL.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.read().expect("cache lock");
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    /// Stores `value` for `key`. When the map is full, expired entries go first, and if it is
    /// still full, every entry does.
    pub(crate) fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.write().expect("cache lock");
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Drops `key`, so the next read goes to the source.
    pub(crate) fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.write().expect("cache lock").remove(key);
    }

    /// Keeps only the entries for which `keep` holds.
    pub(crate) fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        self.entries
            .write()
            .expect("cache lock")
            .retain(|k, (v, _)| keep(k, v));
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        self.entries.write().expect("cache lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = TtlCache::new(Duration::from_millis(20), 10);
        cache.insert("a", 1);
        assert_eq!(cache.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_everything() {
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        cache.insert(1, "a");
        cache.insert(2, "b");
        cache.insert(2, "b2"); // a known key never evicts
        assert_eq!(cache.get(&1), Some("a"));
        cache.insert(3, "c");
        assert_eq!((cache.get(&1), cache.get(&3)), (None, Some("c")));
    }

    #[test]
    fn removal_and_retain_forget_at_once() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        for i in 0..4 {
            cache.insert(i, i * 10);
        }
        cache.remove(&0);
        cache.retain(|_, v| *v != 20);
        assert_eq!(
            (0..4).map(|i| cache.get(&i)).collect::<Vec<_>>(),
            [None, Some(10), None, Some(30)]
        );
        cache.clear();
        assert_eq!(cache.get(&1), None);
    }
}
