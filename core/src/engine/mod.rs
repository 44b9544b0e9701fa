//! The refresh engine: every decision behind "a rotating refresh token is sent once, and no
//! session is lost without a typed verdict", made in one place.
//!
//! * [`policy`]: when a token is due ([`RefreshPolicy`]) and the cached, decrypted session the
//!   hot path reads (`CachedSession`, monotonic deadlines).
//! * [`flight`]: single-flight in this process, back-off, the typed last failure.
//! * [`refresh_lock`]: across processes (and vault instances), an OS advisory lock held for the
//!   flight; the file keeps only the lost-answer marker (`store::lease`).
//! * [`settle`]: the pure decision of what an attempt's outcome means.
//! * [`coordinator`]: the protocol itself (start, wait, lead, finish), ADR 0004.
//!
//! [`Engine`] owns the state they share: the store, the cache, the per-account bookkeeping. The
//! public `Vault` is a façade over it.
//!
//! Locks and their order (never held across network I/O): `store` may be taken first and
//! `cache` inside it, never the reverse; `refresh` (per-account flights) and `pending` are
//! taken alone. The hot path takes only its own thread's slot of `cache` (and, when that misses,
//! the shared map inside it), for a few ns.

mod cache;
mod coordinator;
mod flight;
mod id_token;
mod policy;
mod record;
pub(crate) mod refresh_lock;
mod settle;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub(crate) use cache::SessionCache;
pub(crate) use coordinator::{Mode, PeerWait, Start};
pub(crate) use flight::{AccountRefresh, Lead};
pub(crate) use policy::CachedSession;
pub use policy::RefreshPolicy;
pub(crate) use record::{new_record, record_after_refresh};

use crate::anchor::StateAnchor;
use crate::clock::Clock;
use crate::crypto::{Kek, LookupKey, RecordCipher, RECORD_FORMAT};
use crate::error::{Result, StoreResult, VaultError};
use crate::events::EventDispatcher;
use crate::metrics::Metrics;
use crate::profile::Profile;
use crate::session::{SessionInfo, SessionRecord};
use crate::store::{SessionRow, Store};
use crate::transport::Transport;

pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An account as the engine handles it: the host's id, validated, and its keyed hash, computed
/// once per call.
#[derive(Clone)]
pub(crate) struct AccountKey {
    pub id: String,
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountKey(<redacted>)")
    }
}

/// The keys of an open vault: the ciphers derived from the data key (the data key itself is
/// not kept), and the key that unwrapped it (for the retiring slot of a `rekey`). Replaced as
/// a whole by `rekey`; dropped (and wiped) by `close` once no call still holds it.
pub(crate) struct Keys {
    pub record: RecordCipher,
    pub kek: Kek,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

/// The store and, for each account, the highest generation this vault has read or written:
/// a vault never serves an older generation than one it served, and a file that holds one is
/// corrupt for that account. Both live under one lock, so a row read is always compared with
/// every generation this vault committed before it. The keys live here too: a row and the
/// keys that open it are always taken together.
#[derive(Debug)]
pub(crate) struct StoreState {
    pub store: Store,
    pub keys: Arc<Keys>,
    /// Keyed by the 32-byte account hash inline (no allocation per account).
    high_water: FastMap<[u8; 32], u64>,
    anchor: Option<Arc<dyn StateAnchor>>,
    anchored: u64,
}

impl StoreState {
    pub(crate) fn new(store: Store, keys: Keys, anchor: Option<Arc<dyn StateAnchor>>) -> StoreState {
        let anchored = store.root_seen();
        StoreState {
            store,
            keys: Arc::new(keys),
            high_water: FastMap::default(),
            anchor,
            anchored,
        }
    }

    /// The account's row, checked against the manifest and the generations seen, with the
    /// keys that open it.
    pub(crate) fn checked_row(&mut self, hash: &[u8]) -> StoreResult<(Option<SessionRow>, Arc<Keys>)> {
        let row = self.store.session_row(hash, &self.keys.record)?;
        if let Some(r) = &row {
            self.see(hash, r.generation)?;
        }
        Ok((row, Arc::clone(&self.keys)))
    }

    /// Note a generation read or written; an older one than already seen is `Corrupt`.
    pub(crate) fn see(&mut self, hash: &[u8], generation: u64) -> Result<()> {
        let key = crate::store::hash32(hash).ok_or_else(|| VaultError::internal("an account hash is not 32 bytes"))?;
        match self.high_water.get_mut(&key) {
            Some(seen) if generation < *seen => Err(VaultError::corrupt(
                "the file holds an older generation of a session than this vault already served",
            )),
            Some(seen) => {
                *seen = generation;
                Ok(())
            }
            None => {
                self.high_water.insert(key, generation);
                Ok(())
            }
        }
    }

    /// After a write: hand the manifest's new counter to the host's anchor. The write itself
    /// is committed; a failing anchor is logged (a rollback to a state between the anchor's
    /// value and the file's is then not detected) and retried after the next write.
    pub(crate) fn anchor_after_write(&mut self) {
        let Some(anchor) = &self.anchor else { return };
        let now = self.store.root_seen();
        if now <= self.anchored {
            return;
        }
        match anchor.store(now) {
            Ok(()) => self.anchored = now,
            Err(e) => log::warn!("the host anchor refused the vault's counter ({})", e.code()),
        }
    }
}

/// Everything a vault's operations share.
pub(crate) struct Engine {
    pub path: PathBuf,
    pub locks: refresh_lock::RefreshLocks,
    pub store: Mutex<Option<StoreState>>,
    /// The key of the keyed account and credential hashes (unchanged by `rekey`); `None` once
    /// closed, so the key is wiped on `close`.
    pub lookup: RwLock<Option<LookupKey>>,
    pub cache: SessionCache,
    pub refresh: Mutex<FastMap<String, AccountRefresh>>,
    pub pending: Mutex<FastMap<u64, Box<Lead>>>,
    pub profiles: RwLock<FastMap<String, Arc<Profile>>>,
    pub transport: RwLock<Option<Arc<dyn Transport>>>,
    pub clock: Arc<dyn Clock>,
    pub policy: RefreshPolicy,
    pub events: EventDispatcher,
    pub closed: AtomicBool,
    pub metrics: Metrics,
    /// Revocations may be waiting in the file (set at open and when one is queued; cleared by
    /// a pass that left none).
    pub revocations_waiting: AtomicBool,
    pub revoker: Mutex<crate::revocation::Worker>,
}

impl Engine {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            Err(VaultError::Closed)
        } else {
            Ok(())
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The account's identity for one call: validated once, hashed once.
    pub(crate) fn key(&self, account: &str) -> Result<AccountKey> {
        crate::session::validate_account(account)?;
        let hash = self.with_lookup(|l| Ok(l.account_hash(account)))?;
        Ok(AccountKey {
            id: account.to_owned(),
            hash,
        })
    }

    /// Run `f` with the lookup key; [`VaultError::Closed`] once it was wiped by `close`.
    pub(crate) fn with_lookup<T>(&self, f: impl FnOnce(&LookupKey) -> Result<T>) -> Result<T> {
        f(self.lookup.read().as_ref().ok_or(VaultError::Closed)?)
    }

    /// Run `f` on the store (the store lock held); its internal error is converted here.
    pub(crate) fn with_store<T>(&self, f: impl FnOnce(&mut StoreState) -> StoreResult<T>) -> Result<T> {
        let mut guard = self.store.lock();
        let state = guard.as_mut().ok_or(VaultError::Closed)?;
        Ok(f(state)?)
    }

    pub(crate) fn profile(&self, name: &str) -> Result<Arc<Profile>> {
        self.profiles.read().get(name).cloned().ok_or_else(|| {
            VaultError::invalid(format!(
                "the profile {:?} is not registered",
                name.chars().take(64).collect::<String>()
            ))
        })
    }

    pub(crate) fn transport(&self) -> Result<Arc<dyn Transport>> {
        self.transport.read().clone().ok_or_else(|| {
            VaultError::invalid("no transport is configured; set one or use begin_refresh/finish_refresh")
        })
    }

    pub(crate) fn decrypt_row(keys: &Keys, row: &SessionRow) -> Result<SessionRecord> {
        let plain = keys.record.open(
            &row.account_hash,
            row.format,
            row.generation,
            &row.nonce,
            &row.ciphertext,
        )?;
        let mut record = serde_json::from_slice::<SessionRecord>(&plain)
            .map_err(|_| VaultError::corrupt("a session record does not parse"))?;
        record.upgrade_legacy();
        Ok(record)
    }

    /// Encrypt and write a record (compare-and-swap on `expected`). `Ok(None)`: the guard
    /// failed, nothing was written.
    pub(crate) fn write_record(
        &self,
        key: &AccountKey,
        expected: Option<u64>,
        record: &SessionRecord,
    ) -> Result<Option<u64>> {
        let plain =
            crate::secret::to_json_secret(record).map_err(|_| VaultError::internal("record serialisation failed"))?;
        let hash = &key.hash;
        self.with_store(|s| {
            let keys = Arc::clone(&s.keys);
            let written = s.store.write_session(hash, expected, &keys.record, |generation| {
                let (nonce, ct) = keys.record.seal(hash, generation, plain.as_slice())?;
                Ok((RECORD_FORMAT, nonce, ct))
            })?;
            if let Some(g) = written {
                s.see(hash, g)?;
                s.anchor_after_write();
            }
            Ok(written)
        })
    }

    /// Put a session in the cache, never over a newer generation (two threads may install
    /// what they read in either order).
    pub(crate) fn install(&self, account: &str, mut record: SessionRecord, generation: u64) -> Arc<CachedSession> {
        self.cache.intern(&mut record.profile);
        if let Some(origin) = &mut record.origin {
            self.cache.intern(origin);
        }
        let entry = Arc::new(CachedSession::build(
            record,
            generation,
            self.clock.as_ref(),
            &self.policy,
        ));
        debug_assert_eq!(
            &*entry.record.account, account,
            "a session cached under another account"
        );
        let mut cache = self.cache.write();
        if self.is_closed() {
            // A write that finished while the vault was closing: `close` already emptied the
            // cache, and nothing may be cached after it.
            return entry;
        }
        match cache.get(account) {
            Some(existing) if existing.generation > generation => Arc::clone(existing),
            _ => {
                cache.insert(Arc::clone(&entry));
                entry
            }
        }
    }

    /// The cached entry, loading it from the store on a miss.
    pub(crate) fn entry(&self, key: &AccountKey) -> Result<Arc<CachedSession>> {
        if let Some(e) = self.cache.read().get(&key.id) {
            return Ok(Arc::clone(e));
        }
        self.check_open()?;
        self.adopt(key, None)
    }

    /// Read what the file holds for the account and make it the cached entry: the pair a peer
    /// (another process or vault instance) wrote since we cached `known`, or `known` itself when
    /// nothing changed. A removed session is `NotFound`; an older generation than one this vault
    /// saw is `Corrupt`.
    pub(crate) fn adopt(&self, key: &AccountKey, known: Option<&Arc<CachedSession>>) -> Result<Arc<CachedSession>> {
        if let Some(k) = known {
            // Nothing committed by another connection since this one last read or wrote the
            // row at the known generation: what is known is what is stored.
            if self.with_store(|s| s.store.still_at(&key.hash, k.generation))? {
                return Ok(Arc::clone(k));
            }
        }
        let (row, keys) = self.with_store(|s| s.checked_row(&key.hash))?;
        let Some(row) = row else {
            self.cache.remove(&key.id);
            return Err(VaultError::NotFound);
        };
        if let Some(k) = known {
            if k.generation == row.generation {
                return Ok(Arc::clone(k));
            }
        }
        let record = Self::decrypt_row(&keys, &row)?;
        drop(keys);
        if *record.account != *key.id {
            return Err(VaultError::corrupt("a session record belongs to another account"));
        }
        if known.is_some() {
            crate::logging::debug_record!("adopted generation {} written by a peer", row.generation);
        }
        Ok(self.install(&key.id, record, row.generation))
    }

    /// Session facts without secrets.
    pub(crate) fn info(&self, e: &CachedSession) -> SessionInfo {
        let now = self.clock.mono_ns();
        let ms = |t: u64| ((i128::from(t) - i128::from(now)) / 1_000_000) as i64;
        let last_refresh_failure = self
            .refresh
            .lock()
            .get(&*e.record.account)
            .and_then(|st| st.failure_view(now));
        SessionInfo {
            account: e.record.account.to_string(),
            profile: e.record.profile.to_string(),
            generation: e.generation,
            state: e.state(now),
            token_type: e.record.token_type.as_deref().map(str::to_owned),
            scope: e.record.scope.as_deref().map(str::to_owned),
            issued_at_ms: e.record.issued_at_ms,
            access_expires_at_ms: e.record.access_expires_at_ms,
            access_remaining_ms: ms(e.expires_at),
            session_expires_at_ms: if e.record.offline {
                None
            } else {
                e.record.refresh_expires_at_ms
            },
            session_remaining_ms: e.session_ends_at.map(ms),
            offline: e.record.offline,
            clock_offset_ms: e.record.clock_offset_ms,
            refresh_count: e.record.refresh_count,
            last_refresh_failure,
            has_refresh_credential: e.record.refresh_credential.is_some(),
            hints: e.record.hints.clone(),
            identity: e.record.identity.as_deref().cloned(),
        }
    }
}
