//! A cache of replies, bounded in bytes: F(n) in decimal, keyed by n, least
//! recently used evicted first.
//!
//! The pika server memoises `fib` with an unbounded `lru_cache`; this one is
//! bounded (`--cache-mb`), so a server that meets many large n keeps a known
//! amount of memory. Only values are cached: an error reply costs nothing to
//! make again.
//!
//! One cache serves all of a server's workers (`SharedCache`, a mutex held
//! for a lookup or an insertion only, never while F(n) is computed), so a
//! value computed by one worker answers the same n on any other, and the
//! bound is the server's, not each worker's. Two workers that miss the same n
//! at the same time both compute it; the second insertion replaces the
//! first.

use crate::monitoring::CacheMetrics;
use lru::LruCache;
use std::sync::{Arc, Mutex, PoisonError};

/// What an entry costs beyond its digits: the key, the `Arc`'s counts and
/// length, the list links and the hash table's slot (about 60 bytes with
/// lru 0.19 on a 64-bit target, rounded up). Counting it keeps the bound
/// honest for many small values.
pub const ENTRY_OVERHEAD: usize = 64;

/// The LRU order and the byte count, without the lock.
pub struct ReplyCache {
    entries: LruCache<u64, Arc<str>>,
    /// The sum of `cost` over the entries; at most `capacity`.
    bytes: usize,
    capacity: usize,
    /// Entries evicted to make room, since the cache was made.
    evictions: u64,
}

/// The bytes an entry of `digits` counts against the bound.
pub fn cost(digits: &str) -> usize {
    digits.len().saturating_add(ENTRY_OVERHEAD)
}

impl ReplyCache {
    /// A cache holding at most `capacity` bytes (as counted by `cost`); 0
    /// holds nothing.
    pub fn new(capacity: usize) -> ReplyCache {
        ReplyCache {
            entries: LruCache::unbounded(),
            bytes: 0,
            capacity,
            evictions: 0,
        }
    }

    /// F(n) if cached, which makes n the most recently used.
    pub fn get(&mut self, n: u64) -> Option<Arc<str>> {
        self.entries.get(&n).cloned()
    }

    /// Caches F(n) = `digits` as the most recently used entry, evicting the
    /// least recently used until the total fits. A value that alone exceeds
    /// the capacity is not cached (and evicts nothing). Returns whether it
    /// was cached.
    pub fn insert(&mut self, n: u64, digits: Arc<str>) -> bool {
        let size = cost(&digits);
        if size > self.capacity {
            return false;
        }
        if let Some(old) = self.entries.pop(&n) {
            self.bytes -= cost(&old);
        }
        while self.bytes + size > self.capacity {
            match self.entries.pop_lru() {
                Some((_, evicted)) => {
                    self.bytes -= cost(&evicted);
                    self.evictions += 1;
                }
                // Unreachable: an empty cache has room for `size`.
                None => break,
            }
        }
        self.entries.push(n, digits);
        self.bytes += size;
        true
    }

    /// Entries evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// The bytes held, as counted against the capacity.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached n, most recently used first.
    pub fn keys(&self) -> Vec<u64> {
        self.entries.iter().map(|(&n, _)| n).collect()
    }
}

/// The cache all of a server's workers share; `None` inside when turned off
/// (`--cache-mb 0`), so that a server without a cache takes no lock. Its
/// counters are updated under the same lock, as atomics.
pub struct SharedCache {
    cache: Option<Mutex<ReplyCache>>,
    metrics: CacheMetrics,
}

impl SharedCache {
    pub fn new(capacity: usize) -> SharedCache {
        SharedCache::with_metrics(capacity, CacheMetrics::unregistered())
    }

    pub fn with_metrics(capacity: usize, metrics: CacheMetrics) -> SharedCache {
        SharedCache {
            cache: (capacity > 0).then(|| Mutex::new(ReplyCache::new(capacity))),
            metrics,
        }
    }

    /// F(n) if cached; a hit or a miss is counted (nothing when off).
    pub fn get(&self, n: u64) -> Option<Arc<str>> {
        let cache = self.cache.as_ref()?;
        let found = lock(cache).get(n);
        match found {
            Some(_) => self.metrics.hits.inc(),
            None => self.metrics.misses.inc(),
        }
        found
    }

    pub fn insert(&self, n: u64, digits: Arc<str>) -> bool {
        let Some(cache) = self.cache.as_ref() else {
            return false;
        };
        let mut cache = lock(cache);
        let evicted_before = cache.evictions();
        let inserted = cache.insert(n, digits);
        self.metrics
            .evictions
            .inc_by(cache.evictions() - evicted_before);
        self.metrics
            .entries
            .set(i64::try_from(cache.len()).unwrap_or(i64::MAX));
        self.metrics
            .bytes
            .set(i64::try_from(cache.bytes()).unwrap_or(i64::MAX));
        inserted
    }
}

/// The cache's state is consistent between any two statements that can
/// panic (none of them can while it is locked), so a poisoned lock is used
/// as it is.
fn lock(cache: &Mutex<ReplyCache>) -> std::sync::MutexGuard<'_, ReplyCache> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(len: usize) -> Arc<str> {
        "7".repeat(len).into()
    }

    /// A cache with room for exactly `values` values of `len` digits.
    fn cache_for(values: usize, len: usize) -> ReplyCache {
        ReplyCache::new(values * (len + ENTRY_OVERHEAD))
    }

    #[test]
    fn the_byte_bound_holds_whatever_is_inserted() {
        let capacity = 10_000;
        let mut cache = ReplyCache::new(capacity);
        let mut expected_bytes = std::collections::HashMap::new();
        // Sizes from 0 to 3,000 digits in a scrambled order, some n again.
        for i in 0..500u64 {
            let n = (i * 7919) % 97;
            let len = ((i * 2654435761) % 3001) as usize;
            assert!(cache.insert(n, digits(len)));
            expected_bytes.insert(n, len + ENTRY_OVERHEAD);
            assert!(cache.bytes() <= capacity, "{} > {capacity}", cache.bytes());
            let held: usize = cache.keys().iter().map(|n| expected_bytes[n]).sum();
            assert_eq!(cache.bytes(), held, "the count matches what is held");
            assert!(cache.get(n).is_some(), "the newest entry is kept");
        }
        assert!(cache.len() > 1);
    }

    #[test]
    fn the_least_recently_used_goes_first() {
        let mut cache = cache_for(3, 100);
        for n in [1, 2, 3] {
            assert!(cache.insert(n, digits(100)));
        }
        // Using 1 makes 2 the least recently used.
        assert_eq!(cache.get(1).as_deref(), Some(&*digits(100)));
        assert!(cache.insert(4, digits(100)));
        assert_eq!(cache.keys(), [4, 1, 3]);
        assert!(cache.get(2).is_none());
        // A larger value evicts as many as it needs, oldest first.
        // 228 digits need the room of 2 entries of 100 (cost 164 each):
        // 3 and 1 go, 4 stays.
        assert!(cache.insert(5, digits(228)));
        assert_eq!(cache.keys(), [5, 4]);
        assert_eq!(cache.bytes(), 228 + 100 + 2 * ENTRY_OVERHEAD);
        // 300 digits need the room of all three.
        assert!(cache.insert(6, digits(300)));
        assert_eq!(cache.keys(), [6]);
    }

    #[test]
    fn inserting_a_cached_n_again_replaces_it() {
        let mut cache = cache_for(2, 100);
        assert!(cache.insert(1, digits(100)));
        assert!(cache.insert(2, digits(100)));
        assert!(cache.insert(1, digits(100)));
        assert_eq!(cache.keys(), [1, 2]);
        assert_eq!(cache.bytes(), 2 * (100 + ENTRY_OVERHEAD));
    }

    #[test]
    fn a_value_larger_than_the_whole_cache_is_not_cached() {
        let mut cache = cache_for(2, 100);
        assert!(cache.insert(1, digits(100)));
        assert!(!cache.insert(2, digits(1000)));
        assert!(cache.get(2).is_none());
        assert_eq!(cache.keys(), [1], "nothing was evicted for it");
        // Exactly the capacity fits.
        let mut exact = ReplyCache::new(100 + ENTRY_OVERHEAD);
        assert!(exact.insert(3, digits(100)));
        assert!(!exact.insert(4, digits(101)));
        assert_eq!(exact.keys(), [3]);
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let mut cache = ReplyCache::new(0);
        assert!(!cache.insert(1, digits(0)));
        assert!(cache.is_empty());
        let shared = SharedCache::new(0);
        assert!(!shared.insert(1, digits(1)));
        assert!(shared.get(1).is_none());
    }

    #[test]
    fn the_shared_cache_counts_hits_misses_evictions_entries_and_bytes() {
        let metrics = CacheMetrics::unregistered();
        let shared = SharedCache::with_metrics(2 * (100 + ENTRY_OVERHEAD), metrics.clone());
        assert!(shared.get(1).is_none());
        for n in [1, 2, 3] {
            assert!(shared.insert(n, digits(100)));
        }
        assert!(shared.get(3).is_some());
        assert!(shared.get(1).is_none(), "evicted by 3");
        assert_eq!((metrics.hits.get(), metrics.misses.get()), (1, 2));
        assert_eq!(metrics.evictions.get(), 1);
        assert_eq!(metrics.entries.get(), 2);
        assert_eq!(metrics.bytes.get(), 2 * (100 + ENTRY_OVERHEAD) as i64);
        // Off: nothing counted.
        let off_metrics = CacheMetrics::unregistered();
        let off = SharedCache::with_metrics(0, off_metrics.clone());
        assert!(off.get(1).is_none());
        assert_eq!(off_metrics.misses.get(), 0);
    }

    #[test]
    fn the_shared_cache_answers_from_any_thread() {
        let shared = SharedCache::new(1 << 20);
        std::thread::scope(|scope| {
            for n in 0..4u64 {
                let shared = &shared;
                scope.spawn(move || assert!(shared.insert(n, digits(n as usize + 1))));
            }
        });
        for n in 0..4u64 {
            assert_eq!(shared.get(n).map(|d| d.len()), Some(n as usize + 1));
        }
    }
}
