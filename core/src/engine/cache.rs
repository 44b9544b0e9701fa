//! The session cache: the shared map of decrypted sessions and, in front of it, a small copy per
//! reading thread, so that a cached read writes no memory another thread reads (ADR 0014).
//!
//! A read served by the shared map alone takes the map's read lock and bumps the token's
//! reference count: both write cache lines that every reading thread shares, and two threads
//! reading at once slowed each other down 3–5×. Here:
//!
//! * every change to the map (a session installed or removed, `close`) bumps `epoch` while the
//!   write lock is still held ([`CacheWrite`]);
//! * each thread keeps its own copies (its own allocations) of the tokens it read, each tagged
//!   with the epoch it read *before* it read the shared map;
//! * a hit is a copy whose epoch is still the current one and whose token is fresh for the
//!   caller: the thread reads `epoch` (written only on changes) and touches only its own slot.
//!
//! A copy made while the map was changing carries the epoch of before the change, so it is never
//! served once the change is complete; the next read replaces it. The slots belong to the vault
//! (`thread_local::ThreadLocal`): `close` wipes every thread's copies, and a slot outlives its
//! thread only until another thread takes it over or the vault is dropped.

use std::hash::BuildHasher;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use thread_local::ThreadLocal;

use super::policy::{CachedSession, Due};
use crate::secret::AccessToken;

/// The shared map: account id → its decrypted session, keyed by the account inside the entry
/// (the id is not stored a second time, as a `HashMap<String, _>` key would be).
#[derive(Default)]
pub(crate) struct SessionMap {
    table: hashbrown::HashTable<Arc<CachedSession>>,
    hasher: foldhash::fast::RandomState,
}

impl SessionMap {
    pub(crate) fn get(&self, account: &str) -> Option<&Arc<CachedSession>> {
        self.table
            .find(self.hasher.hash_one(account), |e| &*e.record.account == account)
    }

    /// Insert `entry` under its record's account, replacing the one there.
    pub(crate) fn insert(&mut self, entry: Arc<CachedSession>) {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(&*entry.record.account);
        match self.table.entry(
            hash,
            |e| e.record.account == entry.record.account,
            |e| hasher.hash_one(&*e.record.account),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut slot) => *slot.get_mut() = entry,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(entry);
            }
        }
    }

    pub(crate) fn remove(&mut self, account: &str) -> Option<Arc<CachedSession>> {
        let hash = self.hasher.hash_one(account);
        let found = self.table.find_entry(hash, |e| &*e.record.account == account).ok()?;
        Some(found.remove().0)
    }

    pub(crate) fn clear(&mut self) {
        self.table.clear();
    }
}

/// Sessions a thread keeps its own copy of (a game reads one or two accounts; a thread that
/// reads more rotates through these and falls back to the shared map).
const COPIES_PER_THREAD: usize = 8;

/// Distinct profile names and origins the cache shares (a vault has a handful of profiles).
const NAMES_MAX: usize = 64;

/// Keeps its value alone on its cache line (two lines, for the adjacent-line prefetcher).
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

#[derive(Default)]
pub(crate) struct SessionCache {
    map: RwLock<SessionMap>,
    /// Profile names and endpoint origins, one copy each for every cached session.
    names: Mutex<hashbrown::HashTable<Arc<str>>>,
    /// Hits served where no slot could be taken (reads from thread-local destructors).
    hits_without_slot: AtomicU64,
    epoch: Padded<AtomicU64>,
    threads: ThreadLocal<Padded<Mutex<Copies>>>,
}

/// One thread's copies and its count of cached hits.
#[derive(Default)]
struct Copies {
    entries: Vec<TokenCopy>,
    next: usize,
    hits: u64,
}

struct TokenCopy {
    account: Box<str>,
    epoch: u64,
    due: Due,
    token: AccessToken,
}

impl Copies {
    fn put(&mut self, account: &str, epoch: u64, due: Due, token: AccessToken) {
        let copy = TokenCopy {
            account: account.into(),
            epoch,
            due,
            token,
        };
        if let Some(slot) = self.entries.iter_mut().find(|c| &*c.account == account) {
            *slot = copy;
        } else if self.entries.len() < COPIES_PER_THREAD {
            self.entries.push(copy);
        } else {
            self.entries[self.next] = copy;
            self.next = (self.next + 1) % COPIES_PER_THREAD;
        }
    }
}

/// The map's write guard; dropping it bumps the epoch before the lock is released.
pub(crate) struct CacheWrite<'a> {
    guard: RwLockWriteGuard<'a, SessionMap>,
    epoch: &'a AtomicU64,
}

impl Deref for CacheWrite<'_> {
    type Target = SessionMap;
    fn deref(&self) -> &SessionMap {
        &self.guard
    }
}

impl DerefMut for CacheWrite<'_> {
    fn deref_mut(&mut self) -> &mut SessionMap {
        &mut self.guard
    }
}

impl Drop for CacheWrite<'_> {
    fn drop(&mut self) {
        // Runs before `guard` is dropped: the new epoch is visible before any reader can take
        // the read lock and see the changed map.
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

impl SessionCache {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, SessionMap> {
        self.map.read()
    }

    pub(crate) fn write(&self) -> CacheWrite<'_> {
        CacheWrite {
            guard: self.map.write(),
            epoch: &self.epoch.0,
        }
    }

    /// The hot path: `f` applied to this thread's copy of the account's token when the cached
    /// session is fresh for `min_ttl_ns` at `now`; `None` when it is not cached or not fresh
    /// (the caller then takes the engine's path). Counts a cached hit.
    #[inline]
    pub(crate) fn fresh<R>(
        &self,
        account: &str,
        now: u64,
        min_ttl_ns: u64,
        f: impl FnOnce(&AccessToken) -> R,
    ) -> Option<R> {
        let epoch = self.epoch.0.load(Ordering::Acquire);
        let Some(slot) = self.threads.get() else {
            return self.fresh_without_slot(account, epoch, now, min_ttl_ns, f);
        };
        let mut copies = slot.0.lock();
        if let Some(i) = copies.entries.iter().position(|c| &*c.account == account) {
            let c = &copies.entries[i];
            if c.epoch == epoch {
                if c.due.fresh_for(now, min_ttl_ns) {
                    let r = f(&c.token);
                    copies.hits += 1;
                    return Some(r);
                }
            } else {
                // The cache changed since this copy was made: drop it now (a removed session's
                // token must not stay in this thread's memory until the slot is reused).
                copies.entries.swap_remove(i);
            }
        }
        let token = self.copy_from_map(&mut copies, account, epoch, now, min_ttl_ns)?;
        copies.hits += 1;
        Some(f(&token))
    }

    /// The thread's first read from this vault: take a slot for it. A read from a thread-local
    /// destructor may find the slot machinery already torn down (taking a slot panics then):
    /// it is served from the shared map alone.
    #[cold]
    #[inline(never)]
    fn fresh_without_slot<R>(
        &self,
        account: &str,
        epoch: u64,
        now: u64,
        min_ttl_ns: u64,
        f: impl FnOnce(&AccessToken) -> R,
    ) -> Option<R> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.threads.get_or_default())) {
            Ok(slot) => {
                let mut copies = slot.0.lock();
                let token = self.copy_from_map(&mut copies, account, epoch, now, min_ttl_ns)?;
                copies.hits += 1;
                Some(f(&token))
            }
            Err(_) => {
                let map = self.map.read();
                let entry = map.get(account).filter(|e| e.fresh_for(now, min_ttl_ns))?;
                self.hits_without_slot.fetch_add(1, Ordering::Relaxed);
                Some(f(&entry.token))
            }
        }
    }

    /// Miss on this thread's copies: read the shared map and keep a copy of a fresh token.
    #[inline(never)]
    fn copy_from_map(
        &self,
        copies: &mut Copies,
        account: &str,
        epoch: u64,
        now: u64,
        min_ttl_ns: u64,
    ) -> Option<AccessToken> {
        let map = self.map.read();
        let entry = map.get(account)?;
        if !entry.fresh_for(now, min_ttl_ns) {
            return None;
        }
        let token = entry.token.private_copy();
        let due = entry.due();
        drop(map);
        copies.put(account, epoch, due, token.clone());
        Some(token)
    }

    /// Replace `text` by the cache's copy of the same text (kept on first sight; at most
    /// [`NAMES_MAX`] are kept, further ones stay as they are).
    pub(crate) fn intern(&self, text: &mut Arc<str>) {
        let hasher = foldhash::fast::FixedState::default();
        let hash = hasher.hash_one(&**text);
        let mut names = self.names.lock();
        if let Some(known) = names.find(hash, |n| **n == **text) {
            *text = Arc::clone(known);
        } else if names.len() < NAMES_MAX {
            names.insert_unique(hash, Arc::clone(text), |n| hasher.hash_one(&**n));
        }
    }

    /// Remove an account's session (logout, or removed by another process) and wipe every
    /// thread's copy of its token.
    pub(crate) fn remove(&self, account: &str) {
        self.write().remove(account);
        for slot in self.threads.iter() {
            slot.0.lock().entries.retain(|c| &*c.account != account);
        }
    }

    /// Empty the map and wipe every thread's copies (`close`).
    pub(crate) fn clear(&self) {
        self.write().clear();
        for slot in self.threads.iter() {
            slot.0.lock().entries.clear();
        }
    }

    /// Cached hits over every thread since the vault was opened.
    pub(crate) fn hits(&self) -> u64 {
        let slotted: u64 = self.threads.iter().map(|slot| slot.0.lock().hits).sum();
        slotted + self.hits_without_slot.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_share_one_copy_up_to_the_limit() {
        let cache = SessionCache::default();
        let mut a: Arc<str> = Arc::from("backend");
        let mut b: Arc<str> = Arc::from(String::from("backend"));
        cache.intern(&mut a);
        cache.intern(&mut b);
        assert!(Arc::ptr_eq(&a, &b));
        for i in 0..NAMES_MAX {
            cache.intern(&mut Arc::from(format!("profile-{i}")));
        }
        let (mut c, mut d): (Arc<str>, Arc<str>) = (Arc::from("late"), Arc::from("late"));
        cache.intern(&mut c);
        cache.intern(&mut d);
        assert!(!Arc::ptr_eq(&c, &d), "past the limit, names are left as they are");
        assert_eq!(*c, *d);
    }
}
