//! [`Cache`]: files opened for earlier requests, shared by later ones (as
//! nginx's `open_file_cache`).
//!
//! ```text
//!   request ─> key (path, encodings) ─> Fresh ───────> answer on the worker: a slice of
//!                                         │              the file's mapping (no open, no mmap)
//!                                         ├─ Stale ──> resolve, open, fstat (on the worker from
//!                                         │            the kernel's caches, else blocking pool):
//!                                         │            same device, inode, size and mtime?
//!                                         │            yes: insert it again, answer from it
//!                                         └─ Missing (or changed) ─> map the file, insert
//! ```
//!
//! An entry is trusted for `valid_for` after it was inserted (never, for
//! zero); after that the next request looks the path up again, so a file
//! replaced on disk is served fresh, and an unchanged one keeps its
//! mapping. The cache holds at most `max_entries` entries and `max_bytes`
//! bytes of files; the least recently used go first.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The bounds of a [`Cache`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) valid_for: Duration,
    pub(crate) max_entries: usize,
    pub(crate) max_bytes: u64,
}

/// What [`Cache::get`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup<V> {
    /// A value inserted less than `valid_for` ago: use it as it is.
    Fresh(V),
    /// An older value: check it still holds before using it (and insert it
    /// again if it does).
    Stale(V),
    Missing,
}

impl<V> Lookup<V> {
    #[cfg(test)]
    fn fresh(self) -> Option<V> {
        match self {
            Lookup::Fresh(value) => Some(value),
            _ => None,
        }
    }
}

/// A bounded map from keys to shared values, least recently used out
/// first, whose entries go stale `valid_for` after their insertion.
#[derive(Debug)]
pub(crate) struct Cache<K, V> {
    limits: Limits,
    state: Mutex<State<K, V>>,
}

#[derive(Debug)]
struct State<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Keys by last use, oldest first.
    by_use: BTreeMap<u64, K>,
    bytes: u64,
    uses: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    bytes: u64,
    inserted: Instant,
    used: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Mutex::new(State {
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
                bytes: 0,
                uses: 0,
            }),
        }
    }

    /// The value for `key`, fresh if it was inserted less than `valid_for`
    /// before `now`; it becomes the most recently used.
    pub(crate) fn get(&self, key: &K, now: Instant) -> Lookup<V> {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(entry) = state.entries.get_mut(key) else {
            return Lookup::Missing;
        };
        if let Some(key) = state.by_use.remove(&entry.used) {
            state.uses += 1;
            entry.used = state.uses;
            state.by_use.insert(entry.used, key);
        }
        let value = entry.value.clone();
        match now.saturating_duration_since(entry.inserted) < self.limits.valid_for {
            true => Lookup::Fresh(value),
            false => Lookup::Stale(value),
        }
    }

    /// Keeps `value` (which holds `bytes` bytes) for `key`, in place of any
    /// older value, and drops the least recently used entries until the
    /// cache is within its bounds. A value larger than the whole cache is
    /// not kept.
    pub(crate) fn insert(&self, key: K, value: V, bytes: u64, now: Instant) {
        let limits = self.limits;
        let mut state = self.lock();
        state.remove(&key);
        if limits.max_entries == 0 || bytes > limits.max_bytes {
            return;
        }
        while state.entries.len() >= limits.max_entries || state.bytes + bytes > limits.max_bytes {
            let Some((_, oldest)) = state.by_use.pop_first() else {
                break;
            };
            state.remove(&oldest);
        }
        state.uses += 1;
        let used = state.uses;
        state.bytes += bytes;
        state.by_use.insert(used, key.clone());
        let entry = Entry {
            value,
            bytes,
            inserted: now,
            used,
        };
        state.entries.insert(key, entry);
    }

    fn lock(&self) -> MutexGuard<'_, State<K, V>> {
        // The state is consistent between statements: a panic elsewhere
        // while it was held leaves nothing half done.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K: Hash + Eq, V> State<K, V> {
    fn remove(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key) {
            self.by_use.remove(&entry.used);
            self.bytes -= entry.bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_entries: usize, max_bytes: u64) -> Cache<&'static str, u32> {
        Cache::new(Limits {
            valid_for: Duration::from_secs(10),
            max_entries,
            max_bytes,
        })
    }

    #[test]
    fn entries_go_stale_after_the_interval() {
        let cache = cache(10, 100);
        let t0 = Instant::now();
        cache.insert("a", 1, 1, t0);
        assert_eq!(
            cache.get(&"a", t0 + Duration::from_millis(9_999)).fresh(),
            Some(1)
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(cache.get(&"a", later), Lookup::Stale(1));
        assert_eq!(cache.get(&"b", later), Lookup::Missing);
        cache.insert("a", 2, 1, t0 + Duration::from_secs(11));
        assert_eq!(
            cache.get(&"a", t0 + Duration::from_secs(12)).fresh(),
            Some(2)
        );
    }

    #[test]
    fn the_least_recently_used_entry_goes_first_when_full() {
        let cache = cache(2, 100);
        let now = Instant::now();
        cache.insert("a", 1, 1, now);
        cache.insert("b", 2, 1, now);
        assert_eq!(cache.get(&"a", now).fresh(), Some(1));
        cache.insert("c", 3, 1, now);
        assert_eq!(cache.get(&"b", now).fresh(), None);
        assert_eq!(cache.get(&"a", now).fresh(), Some(1));
        assert_eq!(cache.get(&"c", now).fresh(), Some(3));
    }

    #[test]
    fn bytes_are_bounded_and_oversized_values_not_kept() {
        let cache = cache(10, 100);
        let now = Instant::now();
        cache.insert("a", 1, 60, now);
        cache.insert("b", 2, 30, now);
        cache.insert("c", 3, 30, now);
        assert_eq!(cache.get(&"a", now).fresh(), None);
        assert_eq!(cache.get(&"b", now).fresh(), Some(2));
        cache.insert("huge", 4, 101, now);
        assert_eq!(cache.get(&"huge", now).fresh(), None);
        assert_eq!(cache.get(&"c", now).fresh(), Some(3));
        // Replacing an entry gives back its bytes.
        cache.insert("b", 5, 70, now);
        assert_eq!(cache.get(&"b", now).fresh(), Some(5));
        assert_eq!(cache.get(&"c", now).fresh(), Some(3));
        assert_eq!(cache.lock().bytes, 100);
    }
}
