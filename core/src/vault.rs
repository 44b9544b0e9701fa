//! The public [`Vault`]: ties the store, the record cipher, the profiles, the refresh engine,
//! the transport and the events together.
//!
//! Locks and their order (never held across network I/O, never two at once except as listed):
//! `cache` (RwLock, the hot path takes it shared for a few ns) · `refresh` (per-account flight
//! bookkeeping) · `store` (the SQLite connection) · `pending` (two-step attempts). The store
//! lock may be taken while `refresh` is *not* held; `cache` is only taken for short map
//! operations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use zeroize::Zeroizing;

use crate::clock::{Clock, SystemClock};
use crate::crypto::{self, KeySource, RecordCipher, KEY_LEN, RECORD_FORMAT};
use crate::engine::{AccountRefresh, CachedSession, Flight, Lead, RefreshPolicy};
use crate::error::{Result, VaultError};
use crate::events::{EventDispatcher, VaultEvent, VaultObserver};
use crate::profile::Profile;
use crate::secret::AccessToken;
use crate::session::{anchor_times, NewSession, RefreshExpiry, SessionInfo, SessionRecord};
use crate::store::{FileState, SessionRow, Store};
use crate::transport::{HttpRequest, HttpResponse, Transport, TransportError};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// How long a cross-process refresh lease lasts beyond the request timeout.
const LEASE_GRACE: Duration = Duration::from_secs(5);

/// How far beyond a full lease a peer's lease expiry may lie before it is taken for a clock
/// that jumped back (and ignored).
const LEASE_CLOCK_SLACK_MS: i64 = 60_000;

/// Options for [`Vault::open`].
#[derive(Clone)]
pub struct VaultOptions {
    /// The clock (inject a [`crate::ManualClock`] in tests).
    pub clock: Arc<dyn Clock>,
    /// When and how often to refresh.
    pub policy: RefreshPolicy,
    /// How long to wait for another process's SQLite write lock.
    pub busy_timeout: Duration,
    /// The transport for blocking refreshes. `None` uses the built-in HTTPS transport when the
    /// `https` feature is on; without it, only the two-step refresh works until one is set.
    pub transport: Option<Arc<dyn Transport>>,
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions {
            clock: SystemClock::shared(),
            policy: RefreshPolicy::default(),
            busy_timeout: Duration::from_secs(5),
            transport: None,
        }
    }
}

impl std::fmt::Debug for VaultOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultOptions")
            .field("clock", &self.clock)
            .field("policy", &self.policy)
            .field("busy_timeout", &self.busy_timeout)
            .finish_non_exhaustive()
    }
}

/// Per-call options for [`Vault::access_token_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenOptions {
    /// The token must stay valid at least this long (capped at half its lifetime, so a value
    /// longer than the lifetime cannot cause a refresh loop).
    pub min_ttl: Duration,
}

/// The result of [`Vault::begin_refresh`].
#[derive(Debug)]
pub enum RefreshStep {
    /// No refresh is needed (or a peer already did it): here is a valid token.
    Fresh(AccessToken),
    /// Another refresh for this account is in flight; wait for it (read the token again later).
    InFlight,
    /// Send this request, then hand the response to [`Vault::finish_refresh`] (or a network
    /// failure to [`Vault::fail_refresh`]).
    Send(PendingRefresh),
}

/// A refresh request the host must perform itself.
#[derive(Debug)]
pub struct PendingRefresh {
    /// Identifies the attempt in [`Vault::finish_refresh`].
    pub attempt: u64,
    /// The request (contains credentials: do not log it).
    pub request: HttpRequest,
}

#[derive(Debug, Clone)]
enum Mode {
    Due { min_ttl_ns: u64 },
    Forced { rejected: Option<AccessToken> },
}

enum Start {
    Ready(AccessToken),
    Join(Arc<Flight>),
    Lead(Box<Lead>, HttpRequest),
}

/// An encrypted, single-flight token vault over one SQLite file. `Send + Sync`: share it
/// (e.g. in an `Arc`) across threads.
pub struct Vault {
    path: PathBuf,
    store: Mutex<Option<Store>>,
    data_key: Zeroizing<[u8; KEY_LEN]>,
    cipher: RecordCipher,
    cache: RwLock<FastMap<String, Arc<CachedSession>>>,
    refresh: Mutex<FastMap<String, AccountRefresh>>,
    pending: Mutex<FastMap<u64, Box<Lead>>>,
    profiles: RwLock<FastMap<String, Arc<Profile>>>,
    transport: RwLock<Option<Arc<dyn Transport>>>,
    clock: Arc<dyn Clock>,
    policy: RefreshPolicy,
    events: EventDispatcher,
    closed: AtomicBool,
    instance_id: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn ms_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Vault {
    /// Open the vault at `path`, creating it if the file does not exist or is empty.
    ///
    /// An existing file is checked before anything is written to it: a file newer than this
    /// code is refused with [`VaultError::SchemaTooNew`], a wrong key with
    /// [`VaultError::WrongKey`], a foreign or damaged file with [`VaultError::Corrupt`]; in
    /// every case the file is left exactly as it was.
    pub fn open(path: impl AsRef<Path>, key: KeySource, options: VaultOptions) -> Result<Vault> {
        options.policy.validate()?;
        let path = path.as_ref().to_path_buf();
        let (mut store, state) = Store::open(&path, options.busy_timeout)?;
        let data_key = match state {
            FileState::Empty => {
                let dk = crypto::new_data_key()?;
                let wrapped = crypto::wrap_data_key(&key, &dk)?;
                store.initialise(&wrapped, options.clock.wall_ms())?;
                log::info!("created a new vault");
                dk
            }
            FileState::Existing(version) => {
                let wrapped = store.wrapped_key()?;
                let dk = crypto::unwrap_data_key(&key, &wrapped)?;
                store.configure()?;
                if version < crate::store::SCHEMA_VERSION {
                    store.migrate(version)?;
                    log::info!("migrated the vault from schema {version}");
                }
                dk
            }
        };
        let cipher = RecordCipher::new(&data_key)?;
        let transport = match options.transport {
            Some(t) => Some(t),
            None => default_transport(),
        };
        let mut id = [0u8; 8];
        crypto::random_bytes(&mut id)?;
        Ok(Vault {
            path,
            store: Mutex::new(Some(store)),
            data_key,
            cipher,
            cache: RwLock::new(FastMap::default()),
            refresh: Mutex::new(FastMap::default()),
            pending: Mutex::new(FastMap::default()),
            profiles: RwLock::new(FastMap::default()),
            transport: RwLock::new(transport),
            clock: options.clock,
            policy: options.policy,
            events: EventDispatcher::new(),
            closed: AtomicBool::new(false),
            instance_id: format!("{}-{:016x}", std::process::id(), u64::from_le_bytes(id)),
        })
    }

    /// The file this vault lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    // ----- configuration -------------------------------------------------------------------

    /// Register (or replace) a profile under its name.
    pub fn register_profile(&self, profile: Profile) -> Result<()> {
        self.check_open()?;
        self.profiles
            .write()
            .insert(profile.name().to_owned(), Arc::new(profile));
        Ok(())
    }

    /// Load a profile from JSON and register it; returns its name.
    pub fn load_profile_json(&self, json: &str) -> Result<String> {
        let p = Profile::from_json(json)?;
        let name = p.name().to_owned();
        self.register_profile(p)?;
        Ok(name)
    }

    /// Replace the transport used by blocking refreshes.
    pub fn set_transport(&self, transport: Arc<dyn Transport>) {
        *self.transport.write() = Some(transport);
    }

    /// Install (or remove) the observer that receives [`VaultEvent`]s on the event thread.
    pub fn set_observer(&self, observer: Option<Arc<dyn VaultObserver>>) {
        self.events.set_observer(observer);
    }

    // ----- sessions ---------------------------------------------------------------------------

    /// Store a session after the host's own sign-in (replacing any session of that account).
    /// Durable when it returns.
    pub fn store(&self, session: NewSession) -> Result<SessionInfo> {
        self.check_open()?;
        session.validate()?;
        let profile = self.profile(&session.profile)?;
        let device_now = self.clock.wall_ms();
        let times = anchor_times(
            session.access_token.expose(),
            session
                .expires_in
                .map(|d| crate::session::ExpiryValue::RelativeSecs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
            None,
            device_now,
            0,
            profile.default_lifetime(),
        );
        let refresh_expires_at_ms = if session.offline {
            None
        } else {
            session
                .refresh_expires_in
                .or(profile.refresh_lifetime())
                .map(|d| times.server_now_ms.saturating_add(ms_i64(d)))
        };
        let record = SessionRecord {
            account: session.account.clone(),
            profile: session.profile.clone(),
            access_token: session.access_token.clone(),
            refresh_credential: session.refresh_credential.clone(),
            token_type: session.token_type.clone(),
            scope: session.scope.clone(),
            issued_at_ms: times.issued_at_ms,
            access_expires_at_ms: times.access_expires_at_ms,
            refresh_expires_at_ms,
            offline: session.offline,
            clock_offset_ms: times.clock_offset_ms,
            hints: session.hints.clone(),
            created_at_ms: times.server_now_ms,
            refresh_count: 0,
            needs_reauth: None,
        };
        let hash = self.cipher.account_hash(&session.account);
        let generation = self
            .write_record(&hash, None, &record)?
            .ok_or_else(|| VaultError::internal("unconditional write refused"))?;
        let entry = self.install(&session.account, record, generation);
        {
            let mut r = self.refresh.lock();
            if let Some(st) = r.get_mut(&session.account) {
                st.record_success();
            }
        }
        log::debug!("stored a session (generation {generation})");
        Ok(self.info(&entry))
    }

    /// A valid access token for `account`: the cached one when it is fresh, otherwise one
    /// refreshed (once, whatever the number of concurrent callers).
    #[inline]
    pub fn access_token(&self, account: &str) -> Result<AccessToken> {
        let now = self.clock.mono_ns();
        if let Some(e) = self.cache.read().get(account) {
            if e.fresh_for(now, 0) {
                return Ok(e.token.clone());
            }
        }
        self.obtain(account, Mode::Due { min_ttl_ns: 0 })
    }

    /// For bindings that keep the token as a managed string: `Ok(None)` when the token of
    /// `known_generation` is still the current, fresh one (nothing crosses the boundary, nothing
    /// is cloned), otherwise the valid token — refreshed if due — exactly as
    /// [`access_token_with`](Self::access_token_with) would return it. The vault still makes
    /// every refresh decision.
    #[inline]
    pub fn token_if_changed(
        &self,
        account: &str,
        known_generation: u64,
        options: TokenOptions,
    ) -> Result<Option<AccessToken>> {
        let now = self.clock.mono_ns();
        let min_ttl_ns = ns(options.min_ttl);
        if let Some(e) = self.cache.read().get(account) {
            if e.fresh_for(now, min_ttl_ns) {
                return Ok((e.generation != known_generation).then(|| e.token.clone()));
            }
        }
        let t = self.obtain(account, Mode::Due { min_ttl_ns })?;
        Ok((t.generation() != known_generation).then_some(t))
    }

    /// Like [`access_token`](Self::access_token) with per-call options.
    pub fn access_token_with(&self, account: &str, options: TokenOptions) -> Result<AccessToken> {
        let min_ttl_ns = ns(options.min_ttl);
        let now = self.clock.mono_ns();
        if let Some(e) = self.cache.read().get(account) {
            if e.fresh_for(now, min_ttl_ns) {
                return Ok(e.token.clone());
            }
        }
        self.obtain(account, Mode::Due { min_ttl_ns })
    }

    /// Refresh now, whatever the token's age (joins a forced refresh already in flight).
    pub fn force_refresh(&self, account: &str) -> Result<AccessToken> {
        let current = self.entry(account)?.token.clone();
        self.obtain(
            account,
            Mode::Forced {
                rejected: Some(current),
            },
        )
    }

    /// The app's API rejected `token` (HTTP 401). If a newer generation exists (another thread
    /// or process refreshed meanwhile) it is returned without a refresh; otherwise the token is
    /// refreshed (once, however many threads report it).
    pub fn report_rejected(&self, account: &str, token: &str) -> Result<AccessToken> {
        let entry = self.entry(account)?;
        let entry = self.reload_if_changed(account, &entry)?;
        if entry.token.expose() != token {
            return Ok(entry.token.clone());
        }
        let rejected = entry.token.clone();
        self.obtain(
            account,
            Mode::Forced {
                rejected: Some(rejected),
            },
        )
    }

    /// Session facts without secrets.
    pub fn session_info(&self, account: &str) -> Result<SessionInfo> {
        let e = self.entry(account)?;
        Ok(self.info(&e))
    }

    /// The accounts stored. Records that fail to decrypt are skipped (and counted in the log);
    /// reading them individually gives their [`VaultError::Corrupt`] error.
    pub fn list_accounts(&self) -> Result<Vec<String>> {
        let rows = self.with_store(|s| s.all_rows())?;
        let mut out = Vec::with_capacity(rows.len());
        let mut bad = 0usize;
        for row in rows {
            match self.decrypt_row(&row) {
                Ok(rec) => out.push(rec.account.clone()),
                Err(_) => bad += 1,
            }
        }
        if bad > 0 {
            log::warn!("{bad} session record(s) could not be read");
        }
        out.sort();
        Ok(out)
    }

    /// Remove an account's session (logout). A refresh in flight for it is discarded when it
    /// lands. Returns whether a session existed.
    pub fn remove(&self, account: &str) -> Result<bool> {
        self.check_open()?;
        crate::session::validate_account(account)?;
        let hash = self.cipher.account_hash(account);
        let existed = self.with_store(|s| s.remove_session(&hash))?;
        self.cache.write().remove(account);
        self.refresh.lock().remove(account);
        if existed {
            self.events.emit(VaultEvent::SessionRemoved {
                account: account.to_owned(),
            });
            log::debug!("removed a session");
        }
        Ok(existed)
    }

    /// Re-wrap the data key under a new key or passphrase, in one transaction.
    pub fn rekey(&self, new_key: KeySource) -> Result<()> {
        self.check_open()?;
        let wrapped = crypto::wrap_data_key(&new_key, &self.data_key)?;
        self.with_store(|s| s.replace_wrapped_key(&wrapped))?;
        log::info!("the vault key was changed");
        Ok(())
    }

    /// Close the vault: later calls fail with [`VaultError::Closed`]; waiters are released.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.cache.write().clear();
        let flights: Vec<Arc<Flight>> = self.refresh.lock().drain().filter_map(|(_, st)| st.flight).collect();
        for f in flights {
            f.complete(Err(VaultError::Closed));
        }
        self.pending.lock().clear();
        self.events.shutdown();
        let store = self.store.lock().take();
        drop(store);
        Ok(())
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Run SQLite's `quick_check` on the file.
    pub fn check_integrity(&self) -> Result<bool> {
        self.with_store(|s| s.integrity_ok())
    }

    /// Number of stored sessions.
    pub fn session_count(&self) -> Result<usize> {
        self.with_store(|s| s.session_count())
    }

    // ----- two-step refresh --------------------------------------------------------------------

    /// Start a refresh the host performs itself (Unity coroutines, OkHttp, URLSession).
    /// Same single-flight and persistence as the blocking path.
    pub fn begin_refresh(&self, account: &str, force: bool) -> Result<RefreshStep> {
        let mode = if force {
            Mode::Forced {
                rejected: Some(self.entry(account)?.token.clone()),
            }
        } else {
            Mode::Due { min_ttl_ns: 0 }
        };
        match self.start(account, &mode)? {
            Start::Ready(t) => Ok(RefreshStep::Fresh(t)),
            Start::Join(_) => Ok(RefreshStep::InFlight),
            Start::Lead(lead, request) => {
                let attempt = lead.flight.id;
                let now = self.clock.mono_ns();
                let mut pending = self.pending.lock();
                pending.retain(|_, l| !l.flight.is_done() && l.flight.deadline.saturating_add(60_000_000_000) > now);
                pending.insert(attempt, lead);
                Ok(RefreshStep::Send(PendingRefresh { attempt, request }))
            }
        }
    }

    /// Finish a two-step refresh with the server's response.
    pub fn finish_refresh(&self, attempt: u64, response: HttpResponse) -> Result<AccessToken> {
        let lead = self.take_pending(attempt)?;
        self.finish(*lead, Ok(response))
    }

    /// Finish a two-step refresh whose request failed on the network.
    pub fn fail_refresh(&self, attempt: u64, error: TransportError) -> Result<AccessToken> {
        let lead = self.take_pending(attempt)?;
        self.finish(*lead, Err(error))
    }

    fn take_pending(&self, attempt: u64) -> Result<Box<Lead>> {
        self.check_open()?;
        self.pending
            .lock()
            .remove(&attempt)
            .ok_or_else(|| VaultError::invalid("unknown or already finished refresh attempt"))
    }

    // ----- internals ---------------------------------------------------------------------------

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            Err(VaultError::Closed)
        } else {
            Ok(())
        }
    }

    fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        let mut guard = self.store.lock();
        let store = guard.as_mut().ok_or(VaultError::Closed)?;
        f(store)
    }

    fn profile(&self, name: &str) -> Result<Arc<Profile>> {
        self.profiles.read().get(name).cloned().ok_or_else(|| {
            VaultError::invalid(format!(
                "the profile {:?} is not registered",
                name.chars().take(64).collect::<String>()
            ))
        })
    }

    fn transport(&self) -> Result<Arc<dyn Transport>> {
        self.transport.read().clone().ok_or_else(|| {
            VaultError::invalid("no transport is configured; set one or use begin_refresh/finish_refresh")
        })
    }

    fn decrypt_row(&self, row: &SessionRow) -> Result<SessionRecord> {
        let plain = self.cipher.open(
            &row.account_hash,
            row.format,
            row.generation,
            &row.nonce,
            &row.ciphertext,
        )?;
        serde_json::from_slice::<SessionRecord>(&plain)
            .map_err(|_| VaultError::corrupt("a session record does not parse"))
    }

    /// Encrypt and write a record (compare-and-swap on `expected`). `Ok(None)`: the guard
    /// failed, nothing was written.
    fn write_record(&self, hash: &[u8], expected: Option<u64>, record: &SessionRecord) -> Result<Option<u64>> {
        let plain = Zeroizing::new(
            serde_json::to_vec(record).map_err(|_| VaultError::internal("record serialisation failed"))?,
        );
        let cipher = &self.cipher;
        self.with_store(|s| {
            s.write_session(hash, expected, |generation| {
                let (nonce, ct) = cipher.seal(hash, generation, &plain)?;
                Ok((RECORD_FORMAT, nonce, ct))
            })
        })
    }

    fn install(&self, account: &str, record: SessionRecord, generation: u64) -> Arc<CachedSession> {
        let entry = Arc::new(CachedSession::build(
            record,
            generation,
            self.clock.as_ref(),
            &self.policy,
        ));
        let mut cache = self.cache.write();
        match cache.get(account) {
            // Never replace a newer generation with an older one.
            Some(existing) if existing.generation > generation => Arc::clone(existing),
            _ => {
                cache.insert(account.to_owned(), Arc::clone(&entry));
                entry
            }
        }
    }

    /// The cached entry, loading it from the store on a miss.
    fn entry(&self, account: &str) -> Result<Arc<CachedSession>> {
        if let Some(e) = self.cache.read().get(account) {
            return Ok(Arc::clone(e));
        }
        self.check_open()?;
        crate::session::validate_account(account)?;
        let hash = self.cipher.account_hash(account);
        let row = self.with_store(|s| s.session_row(&hash))?.ok_or(VaultError::NotFound)?;
        let record = self.decrypt_row(&row)?;
        if record.account != account {
            return Err(VaultError::corrupt("a session record belongs to another account"));
        }
        Ok(self.install(account, record, row.generation))
    }

    /// Adopt a pair written by another process (or another vault instance) since we cached.
    fn reload_if_changed(&self, account: &str, entry: &Arc<CachedSession>) -> Result<Arc<CachedSession>> {
        let hash = self.cipher.account_hash(account);
        let row = self.with_store(|s| s.session_row(&hash))?;
        match row {
            None => {
                self.cache.write().remove(account);
                Err(VaultError::NotFound)
            }
            Some(row) if row.generation == entry.generation => Ok(Arc::clone(entry)),
            Some(row) => {
                let record = self.decrypt_row(&row)?;
                if record.account != account {
                    return Err(VaultError::corrupt("a session record belongs to another account"));
                }
                log::debug!("adopted generation {} written by a peer", row.generation);
                let fresh = Arc::new(CachedSession::build(
                    record,
                    row.generation,
                    self.clock.as_ref(),
                    &self.policy,
                ));
                self.cache.write().insert(account.to_owned(), Arc::clone(&fresh));
                Ok(fresh)
            }
        }
    }

    fn ready(entry: &CachedSession, mode: &Mode, now: u64) -> Option<AccessToken> {
        match mode {
            Mode::Due { min_ttl_ns } => entry.fresh_for(now, *min_ttl_ns).then(|| entry.token.clone()),
            Mode::Forced { rejected: Some(r) } => {
                (entry.generation != r.generation() && entry.token.expose() != r.expose() && now < entry.usable_until)
                    .then(|| entry.token.clone())
            }
            Mode::Forced { rejected: None } => None,
        }
    }

    fn obtain(&self, account: &str, mode: Mode) -> Result<AccessToken> {
        for _ in 0..8 {
            match self.start(account, &mode)? {
                Start::Ready(t) => return Ok(t),
                Start::Join(flight) => {
                    let wait = Duration::from_nanos(flight.deadline.saturating_sub(self.clock.mono_ns()))
                        .max(Duration::from_millis(50));
                    match flight.wait(wait) {
                        None => continue,
                        Some(Ok(t)) => {
                            if let Mode::Forced { rejected: Some(r) } = &mode {
                                if t.expose() == r.expose() {
                                    // That attempt did not produce a new token. If it was a
                                    // forced refresh of the very pair we reject, it failed:
                                    // report that. Otherwise (an older, non-forced attempt, or
                                    // one that refreshed an older generation) try our own.
                                    if flight.forced && flight.base_generation == r.generation() {
                                        return Err(self.last_failure(account).unwrap_or_else(|| {
                                            VaultError::transient("the refresh did not produce a new token")
                                        }));
                                    }
                                    continue;
                                }
                            }
                            return Ok(t);
                        }
                        Some(Err(e)) => return Err(e),
                    }
                }
                Start::Lead(lead, request) => {
                    let transport = match self.transport() {
                        Ok(t) => t,
                        Err(e) => {
                            self.release_lease(&lead);
                            self.end_flight(&lead.account, &lead.flight, Err(e.clone()));
                            return Err(e);
                        }
                    };
                    log::debug!("refresh: sending (generation {})", lead.base_generation);
                    let response = transport.send(&request);
                    drop(request);
                    return self.finish(*lead, response);
                }
            }
        }
        Err(VaultError::transient("the refresh did not settle"))
    }

    fn last_failure(&self, account: &str) -> Option<VaultError> {
        let r = self.refresh.lock();
        let (code, msg, _) = r.get(account)?.last_failure.clone()?;
        Some(match code {
            crate::ErrorCode::Throttled => VaultError::Throttled { retry_after: None },
            crate::ErrorCode::ReauthenticationRequired => VaultError::reauth(msg),
            crate::ErrorCode::Protocol => VaultError::protocol(msg),
            _ => VaultError::transient(msg),
        })
    }

    fn start(&self, account: &str, mode: &Mode) -> Result<Start> {
        self.check_open()?;
        let now = self.clock.mono_ns();
        let entry = self.entry(account)?;
        if let Some(t) = Self::ready(&entry, mode, now) {
            return Ok(Start::Ready(t));
        }
        // Another process may have refreshed already: adopt its pair instead of refreshing.
        let entry = self.reload_if_changed(account, &entry)?;
        if let Some(t) = Self::ready(&entry, mode, now) {
            return Ok(Start::Ready(t));
        }
        let forced = matches!(mode, Mode::Forced { .. });
        if let Some(reason) = &entry.record.needs_reauth {
            if !forced && entry.usable(now) {
                return Ok(Start::Ready(entry.token.clone()));
            }
            return Err(VaultError::reauth(reason.clone()));
        }
        let Some(credential) = entry.record.refresh_credential.as_ref() else {
            if !forced && entry.usable(now) {
                return Ok(Start::Ready(entry.token.clone()));
            }
            return Err(VaultError::reauth("no refresh credential is stored for this session"));
        };
        let profile = self.profile(&entry.record.profile)?;
        let flight = {
            let mut map = self.refresh.lock();
            let st = map.entry(account.to_owned()).or_default();
            if let Some(f) = &st.flight {
                if !f.is_done() && now < f.deadline {
                    return Ok(Start::Join(Arc::clone(f)));
                }
                if !f.is_done() {
                    f.complete(Err(VaultError::transient(
                        "the refresh in flight was abandoned: no answer before its deadline",
                    )));
                }
                st.flight = None;
            }
            if !forced && entry.usable(now) && now < st.next_attempt {
                // Backing off after a failure: serve the still-valid token (staleness is
                // visible in session_info).
                return Ok(Start::Ready(entry.token.clone()));
            }
            if now < st.throttled_until {
                if !forced && entry.usable(now) {
                    return Ok(Start::Ready(entry.token.clone()));
                }
                return Err(VaultError::Throttled {
                    retry_after: Some(Duration::from_nanos(st.throttled_until - now)),
                });
            }
            let deadline = now.saturating_add(ns(profile.timeout() + LEASE_GRACE));
            let f = Flight::new(forced, entry.generation, deadline);
            st.flight = Some(Arc::clone(&f));
            f
        };
        let credential_hash = self.cipher.credential_hash(credential.expose());
        let lead = Box::new(Lead {
            account: account.to_owned(),
            account_hash: self.cipher.account_hash(account),
            flight: Arc::clone(&flight),
            profile,
            base_generation: entry.generation,
            base: Arc::clone(&entry),
            credential_hash,
            lease_holder: format!("{}-{:x}", self.instance_id, flight.id),
            possibly_consumed: false,
        });
        match self.prepare(lead) {
            Ok(s) => Ok(s),
            Err(e) => {
                self.end_flight(account, &flight, Err(e.clone()));
                Err(e)
            }
        }
    }

    /// Take the cross-process lease (or adopt a peer's result) and build the request.
    fn prepare(&self, mut lead: Box<Lead>) -> Result<Start> {
        let lease_ms = ms_i64(lead.profile.timeout() + LEASE_GRACE);
        let started = self.clock.mono_ns();
        let mut warned = false;
        loop {
            match self.try_lease(&lead, lease_ms)? {
                LeaseOutcome::Acquired { possibly_consumed } => {
                    lead.possibly_consumed = possibly_consumed;
                    break;
                }
                LeaseOutcome::StoreChanged => {
                    let entry = self.reload_if_changed(&lead.account, &lead.base)?;
                    let t = entry.token.clone();
                    self.end_flight(&lead.account, &lead.flight, Ok(t.clone()));
                    return Ok(Start::Ready(t));
                }
                LeaseOutcome::HeldByPeer => {
                    if !warned
                        && self.clock.mono_ns().saturating_sub(started)
                            > ns(Duration::from_millis(u64::try_from(lease_ms).unwrap_or(20_000)))
                    {
                        // The peer's lease outlived its own deadline; try_lease will take it
                        // over once it has expired. Said once, not every poll.
                        log::warn!("a peer's refresh lease is taking long");
                        warned = true;
                    }
                    std::thread::sleep(Duration::from_millis(15));
                }
            }
        }
        let base = &lead.base.record;
        let request = lead.profile.build_request(
            base.access_token.expose(),
            base.refresh_credential.as_ref().map(|c| c.expose()),
        );
        match request {
            Ok(r) => Ok(Start::Lead(lead, r)),
            Err(e) => {
                self.release_lease(&lead);
                Err(e)
            }
        }
    }

    fn try_lease(&self, lead: &Lead, lease_ms: i64) -> Result<LeaseOutcome> {
        let hash = &lead.account_hash;
        let clock = &self.clock;
        self.with_store(|s| {
            let conn = s.conn_mut();
            // The lease only needs to survive a crash of this process, not a power cut:
            // NORMAL skips the fsync (DESIGN.md §6: ~27 µs instead of ~145 µs).
            conn.prepare_cached("PRAGMA synchronous=NORMAL")?.execute([])?;
            let result = (|| -> Result<LeaseOutcome> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // Read the clock only once the write lock is ours: waiting for it may take a
                // while, and a stale "now" would make a peer's fresh lease look implausible.
                let now_wall = clock.wall_ms();
                let generation: Option<i64> = tx
                    .prepare_cached("SELECT generation FROM sessions WHERE account_hash = ?1")?
                    .query_row(params![hash], |r| r.get(0))
                    .optional()?;
                if generation.and_then(|g| u64::try_from(g).ok()) != Some(lead.base_generation) {
                    return Ok(LeaseOutcome::StoreChanged);
                }
                let lease: Option<(String, i64, i64, Vec<u8>, i64)> = tx
                    .prepare_cached(
                        "SELECT holder, expires_at_ms, generation, credential_hash, sent FROM refresh_lease WHERE account_hash = ?1",
                    )?
                    .query_row(params![hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                    .optional()?;
                let mut possibly_consumed = false;
                // A lease for an older generation belongs to a refresh that completed.
                let pending = lease.filter(|l| u64::try_from(l.2).ok() == Some(lead.base_generation));
                if let Some((holder, expires, _, cred, sent)) = pending {
                    // A lease much further in the future than any lease we would take means the
                    // clock jumped back: treat it as expired.
                    let plausible = expires <= now_wall.saturating_add(lease_ms).saturating_add(LEASE_CLOCK_SLACK_MS);
                    if holder != lead.lease_holder && expires > now_wall && plausible && holder_alive(&holder) {
                        return Ok(LeaseOutcome::HeldByPeer);
                    }
                    // An expired lease (or a lost-answer marker) for this very credential: a
                    // request carrying it may have been consumed by the server.
                    possibly_consumed = sent != 0 && cred == lead.credential_hash && holder != lead.lease_holder;
                }
                tx.prepare_cached(
                    "INSERT INTO refresh_lease (account_hash, holder, expires_at_ms, generation, credential_hash, sent)
                     VALUES (?1, ?2, ?3, ?4, ?5, 1)
                     ON CONFLICT(account_hash) DO UPDATE SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms,
                       generation = excluded.generation, credential_hash = excluded.credential_hash, sent = 1",
                )?
                .execute(params![
                    hash,
                    lead.lease_holder,
                    now_wall.saturating_add(lease_ms),
                    i64::try_from(lead.base_generation).unwrap_or(i64::MAX),
                    lead.credential_hash
                ])?;
                tx.commit()?;
                Ok(LeaseOutcome::Acquired { possibly_consumed })
            })();
            conn.prepare_cached("PRAGMA synchronous=FULL")?.execute([])?;
            result
        })
    }

    /// Drop our lease. With `keep_marker`, the row stays (expired) as a record that a request
    /// carrying this credential may have reached the server without its answer reaching us.
    fn release_lease_with(&self, lead: &Lead, keep_marker: bool) {
        let r = self.with_store(|s| {
            let conn = s.conn_mut();
            if keep_marker {
                conn.execute(
                    "UPDATE refresh_lease SET expires_at_ms = 0, holder = 'lost:' || holder WHERE account_hash = ?1 AND holder = ?2",
                    params![lead.account_hash, lead.lease_holder],
                )?;
            } else {
                conn.execute(
                    "DELETE FROM refresh_lease WHERE account_hash = ?1 AND holder = ?2",
                    params![lead.account_hash, lead.lease_holder],
                )?;
            }
            Ok(())
        });
        if let Err(e) = r {
            log::warn!("could not release a refresh lease: {e}");
        }
    }

    fn release_lease(&self, lead: &Lead) {
        self.release_lease_with(lead, false);
    }

    fn end_flight(&self, account: &str, flight: &Arc<Flight>, result: Result<AccessToken>) {
        {
            let mut map = self.refresh.lock();
            if let Some(st) = map.get_mut(account) {
                if st.flight.as_ref().is_some_and(|f| Arc::ptr_eq(f, flight)) {
                    st.flight = None;
                }
            }
        }
        flight.complete(result);
    }

    fn finish(&self, lead: Lead, response: std::result::Result<HttpResponse, TransportError>) -> Result<AccessToken> {
        let mut event = None;
        let result = self.finish_inner(&lead, response, &mut event);
        // Waiters are released before observers hear of it: an observer reacting to the event
        // (say, with a forced refresh) never finds this attempt still in flight.
        self.end_flight(&lead.account, &lead.flight, result.clone());
        if let Some(e) = event {
            self.events.emit(e);
        }
        result
    }

    fn finish_inner(
        &self,
        lead: &Lead,
        response: std::result::Result<HttpResponse, TransportError>,
        event: &mut Option<VaultEvent>,
    ) -> Result<AccessToken> {
        if self.is_closed() {
            return Err(VaultError::Closed);
        }
        let now_wall = self.clock.wall_ms();
        let (outcome, maybe_delivered) = match &response {
            Ok(r) => (lead.profile.parse_response(r, now_wall), false),
            Err(te) if te.kind == crate::transport::TransportErrorKind::TooLarge => (
                Err(VaultError::protocol(format!(
                    "the response was too large ({})",
                    te.message
                ))),
                true,
            ),
            Err(te) => (
                Err(VaultError::transient(format!("network: {te}"))),
                te.may_have_been_delivered(),
            ),
        };
        drop(response);
        let base = &lead.base;
        match outcome {
            Ok(received) => {
                let record = record_after_refresh(&base.record, received, &lead.profile, now_wall);
                match self.write_record(&lead.account_hash, Some(lead.base_generation), &record)? {
                    Some(generation) => {
                        let entry = Arc::new(CachedSession::build(
                            record,
                            generation,
                            self.clock.as_ref(),
                            &self.policy,
                        ));
                        self.cache.write().insert(lead.account.clone(), Arc::clone(&entry));
                        if let Some(st) = self.refresh.lock().get_mut(&lead.account) {
                            st.record_success();
                        }
                        let info = self.info(&entry);
                        *event = Some(VaultEvent::TokenRefreshed {
                            account: lead.account.clone(),
                            generation,
                            access_remaining_ms: info.access_remaining_ms,
                            session_remaining_ms: info.session_remaining_ms,
                        });
                        log::debug!("refresh: stored generation {generation}");
                        Ok(entry.token.clone())
                    }
                    None => {
                        // Logged out, signed in again, or a peer rotated meanwhile: our result
                        // is discarded and the stored pair wins.
                        self.release_lease(lead);
                        log::debug!("refresh: result discarded, the stored session changed meanwhile");
                        let entry = self.reload_if_changed(&lead.account, base)?;
                        Ok(entry.token.clone())
                    }
                }
            }
            Err(e @ VaultError::ReauthenticationRequired { .. }) => {
                // A peer may have rotated the credential we sent: re-read before declaring the
                // session dead.
                let current = self.reload_if_changed(&lead.account, base)?;
                if current.generation != lead.base_generation {
                    self.release_lease(lead);
                    return Ok(current.token.clone());
                }
                self.release_lease(lead);
                let err = if lead.possibly_consumed {
                    VaultError::RefreshOutcomeUnknown {
                        reason: "an earlier refresh with this credential got no answer (crash or lost response), and the server now refuses it".into(),
                    }
                } else {
                    e
                };
                let mut record = base.record.clone();
                record.needs_reauth = Some(err.to_string());
                if let Some(generation) = self.write_record(&lead.account_hash, Some(lead.base_generation), &record)? {
                    self.install(&lead.account, record, generation);
                }
                if let Some(st) = self.refresh.lock().get_mut(&lead.account) {
                    st.record_failure(&err, self.clock.mono_ns(), &self.policy);
                }
                *event = Some(VaultEvent::SessionExpired {
                    account: lead.account.clone(),
                    reason: err.to_string(),
                });
                log::info!("refresh: the server refused the refresh credential ({})", err.code());
                Err(err)
            }
            Err(e) => {
                // Keep the lost-answer marker while the credential may have been consumed.
                self.release_lease_with(lead, maybe_delivered || lead.possibly_consumed);
                let now = self.clock.mono_ns();
                if let Some(st) = self.refresh.lock().get_mut(&lead.account) {
                    st.record_failure(&e, now, &self.policy);
                }
                log::info!("refresh failed ({}); the session is kept", e.code());
                let current = self.entry(&lead.account)?;
                if !lead.flight.forced && current.usable(now) {
                    Ok(current.token.clone())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn info(&self, e: &CachedSession) -> SessionInfo {
        let now = self.clock.mono_ns();
        let ms = |t: u64| ((i128::from(t) - i128::from(now)) / 1_000_000) as i64;
        let last_refresh_failure = self
            .refresh
            .lock()
            .get(&e.record.account)
            .and_then(|st| st.failure_view(now));
        SessionInfo {
            account: e.record.account.clone(),
            profile: e.record.profile.clone(),
            generation: e.generation,
            state: e.state(now),
            token_type: e.record.token_type.clone(),
            scope: e.record.scope.clone(),
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
        }
    }
}

#[cfg(feature = "test-support")]
impl Vault {
    /// Test support: the (access token, refresh credential) pair stored *in the file* for an
    /// account, bypassing the cache. Exists only with the `test-support` feature.
    #[doc(hidden)]
    pub fn stored_pair_for_tests(&self, account: &str) -> Result<(String, Option<String>)> {
        let hash = self.cipher.account_hash(account);
        let row = self.with_store(|s| s.session_row(&hash))?.ok_or(VaultError::NotFound)?;
        let record = self.decrypt_row(&row)?;
        Ok((
            record.access_token.expose().to_owned(),
            record.refresh_credential.as_ref().map(|c| c.expose().to_owned()),
        ))
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Whether the process that took a lease (its holder id starts with its pid) still runs on this
/// machine. A crashed holder's lease need not be waited out. When in doubt (another OS, a sandbox
/// that forbids the check, a recycled pid), the holder counts as alive and its lease expires by
/// itself.
fn holder_alive(holder: &str) -> bool {
    #[cfg(unix)]
    {
        let Some(pid) = holder.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            return true;
        };
        if pid <= 0 {
            return true;
        }
        if pid == i32::try_from(std::process::id()).unwrap_or(-1) {
            return true;
        }
        // SAFETY: signal 0 performs only the existence and permission check.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = holder;
        true
    }
}

enum LeaseOutcome {
    Acquired { possibly_consumed: bool },
    HeldByPeer,
    StoreChanged,
}

/// The record after a successful refresh: new tokens and times, the old refresh credential
/// kept when the response has none.
fn record_after_refresh(
    base: &SessionRecord,
    rx: crate::session::ReceivedTokens,
    profile: &Profile,
    device_now_ms: i64,
) -> SessionRecord {
    let t = anchor_times(
        rx.access_token.expose(),
        rx.expires,
        rx.server_date_ms,
        device_now_ms,
        base.clock_offset_ms,
        profile.default_lifetime(),
    );
    let rotated = rx.refresh_credential.is_some();
    let (refresh_expires_at_ms, offline) = match rx.refresh_expiry {
        RefreshExpiry::Offline => (None, true),
        RefreshExpiry::InSecs(s) => (Some(t.server_now_ms.saturating_add(s.saturating_mul(1000))), false),
        RefreshExpiry::AtMs(ms) => (Some(ms), false),
        RefreshExpiry::Unknown if rotated => (
            profile
                .refresh_lifetime()
                .map(|d| t.server_now_ms.saturating_add(ms_i64(d)))
                .or(base.refresh_expires_at_ms),
            base.offline,
        ),
        RefreshExpiry::Unknown => (base.refresh_expires_at_ms, base.offline),
    };
    SessionRecord {
        account: base.account.clone(),
        profile: base.profile.clone(),
        access_token: rx.access_token,
        refresh_credential: rx.refresh_credential.or_else(|| base.refresh_credential.clone()),
        token_type: rx.token_type.or_else(|| base.token_type.clone()),
        scope: rx.scope.or_else(|| base.scope.clone()),
        issued_at_ms: t.issued_at_ms,
        access_expires_at_ms: t.access_expires_at_ms,
        refresh_expires_at_ms,
        offline,
        clock_offset_ms: t.clock_offset_ms,
        hints: base.hints.clone(),
        created_at_ms: base.created_at_ms,
        refresh_count: base.refresh_count.saturating_add(1),
        needs_reauth: None,
    }
}

#[cfg(feature = "https")]
fn default_transport() -> Option<Arc<dyn Transport>> {
    Some(Arc::new(crate::transport::HttpsTransport::new()))
}

#[cfg(not(feature = "https"))]
fn default_transport() -> Option<Arc<dyn Transport>> {
    None
}
