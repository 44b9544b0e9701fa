//! The public [`Vault`]: a façade over the refresh engine. Every decision (freshness,
//! single-flight, the cross-process protocol, verdicts) is made in `engine`; this file checks
//! arguments, opens the file, and translates calls.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::anchor::StateAnchor;
use crate::clock::{Clock, SystemClock};
use crate::crypto::{self, Kek, KeySource, LookupKey, RecordCipher};
use crate::engine::{new_record, refresh_lock, Engine, Keys, Mode, PeerWait, RefreshPolicy, Start, StoreState};
use crate::error::{ErrorCode, Result, VaultError};
use crate::events::{EventDispatcher, VaultEvent, VaultObserver};
use crate::metrics::{Metrics, VaultMetrics};
use crate::profile::Profile;
use crate::revocation::{RevocationQueue, RevocationReport};
use crate::secret::AccessToken;
use crate::session::{LoginResponse, NewSession, SessionInfo};
use crate::store::{FileState, Store};
use crate::transport::{HttpRequest, HttpResponse, Transport, TransportError};

/// Options for [`Vault::open`].
#[derive(Clone)]
pub struct VaultOptions {
    /// The clock (tests inject `ManualClock`, from the `test-support` feature).
    pub clock: Arc<dyn Clock>,
    /// When and how often to refresh.
    pub policy: RefreshPolicy,
    /// How long to wait for another process's SQLite write lock.
    pub busy_timeout: Duration,
    /// The transport for blocking refreshes. `None` uses the built-in HTTPS transport when the
    /// `https` feature is on; without it, only the two-step refresh works until one is set.
    pub transport: Option<Arc<dyn Transport>>,
    /// A counter kept outside the file, to recognise an old copy of the whole file (see
    /// [`StateAnchor`]). `None`: only partial rollbacks are detected.
    pub anchor: Option<Arc<dyn StateAnchor>>,
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions {
            clock: SystemClock::shared(),
            policy: RefreshPolicy::default(),
            busy_timeout: Duration::from_secs(5),
            transport: None,
            anchor: None,
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

/// The longest busy timeout [`Vault::open`] accepts: a caller's thread may wait this long for
/// another process's write.
pub const MAX_BUSY_TIMEOUT: Duration = Duration::from_secs(600);

/// The numbers of [`VaultOptions`] a host tunes, as the bindings pass them: each `None` keeps
/// the default. Applied with [`VaultOptions::tuned`]; [`Vault::open`] checks the result (a value
/// out of range is [`VaultError::InvalidInput`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tuning {
    /// [`RefreshPolicy::refresh_point`] (0.05..=0.95).
    pub refresh_point: Option<f64>,
    /// [`RefreshPolicy::jitter`] (0..=0.2).
    pub jitter: Option<f64>,
    /// [`RefreshPolicy::min_ttl_cap`] (0.05..=0.9).
    pub min_ttl_cap: Option<f64>,
    /// [`RefreshPolicy::expiry_margin`] in ms (at most one hour).
    pub expiry_margin_ms: Option<u64>,
    /// [`VaultOptions::busy_timeout`] in ms (at most [`MAX_BUSY_TIMEOUT`]).
    pub busy_timeout_ms: Option<u64>,
}

impl Tuning {
    /// Every value set to its default (what a C host starts from).
    pub fn defaults() -> Tuning {
        let o = VaultOptions::default();
        Tuning {
            refresh_point: Some(o.policy.refresh_point),
            jitter: Some(o.policy.jitter),
            min_ttl_cap: Some(o.policy.min_ttl_cap),
            expiry_margin_ms: Some(ms(o.policy.expiry_margin)),
            busy_timeout_ms: Some(ms(o.busy_timeout)),
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl VaultOptions {
    /// These options with the values `tuning` sets.
    pub fn tuned(mut self, tuning: &Tuning) -> VaultOptions {
        let p = &mut self.policy;
        p.refresh_point = tuning.refresh_point.unwrap_or(p.refresh_point);
        p.jitter = tuning.jitter.unwrap_or(p.jitter);
        p.min_ttl_cap = tuning.min_ttl_cap.unwrap_or(p.min_ttl_cap);
        if let Some(m) = tuning.expiry_margin_ms {
            p.expiry_margin = Duration::from_millis(m);
        }
        if let Some(b) = tuning.busy_timeout_ms {
            self.busy_timeout = Duration::from_millis(b);
        }
        self
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

/// An encrypted, single-flight token vault over one SQLite file. `Send + Sync`: share it
/// (e.g. in an `Arc`) across threads.
pub struct Vault {
    pub(crate) engine: Arc<Engine>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.engine.path)
            .field("closed", &self.engine.is_closed())
            .finish_non_exhaustive()
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Two-step attempts left unfinished this long past their deadline are dropped (releasing the
/// refresh lock; the lost-answer marker stays, since the host may have sent the request).
const PENDING_GRACE_NS: u64 = 60_000_000_000;

impl Vault {
    /// Open the vault at `path`, creating it if the file does not exist or is empty.
    ///
    /// An existing file is checked before anything is written to it: a file newer than this
    /// code is refused with [`VaultError::SchemaTooNew`], a wrong key with
    /// [`VaultError::WrongKey`], a foreign or damaged file with [`VaultError::Corrupt`]; in
    /// every case the file is left exactly as it was.
    pub fn open(path: impl AsRef<Path>, key: KeySource, options: VaultOptions) -> Result<Vault> {
        options.policy.validate()?;
        if options.busy_timeout > MAX_BUSY_TIMEOUT {
            return Err(VaultError::invalid("busy_timeout must be at most 10 minutes"));
        }
        let path = path.as_ref().to_path_buf();
        let (mut store, state) = Store::open(&path, options.busy_timeout)?;
        let created = state == FileState::Empty;
        let (keys, lookup) = match state {
            FileState::Empty => {
                let data_key = crypto::new_data_key()?;
                let kek = Kek::fresh(&key)?;
                let wrapped = kek.wrap(&data_key)?;
                let record = RecordCipher::new(&data_key)?;
                store.initialise(&wrapped, &record, options.clock.wall_ms())?;
                let lookup = LookupKey::derive(&data_key)?;
                log::info!("created a new vault");
                (Keys { record, kek }, lookup)
            }
            FileState::Existing(version) => Self::unlock(&mut store, &path, version, &key)?,
        };
        drop(key);
        let root = store.manifest_version(&keys.record)?;
        if let Some(anchor) = &options.anchor {
            match anchor.load()? {
                // A new vault (no file, or an empty one) starts the count again: there is nothing
                // to roll back to, and a host whose anchor outlived the file (a Keychain item
                // survives an uninstall) must not be locked out of a fresh vault.
                _ if created => {
                    if let Err(e) = anchor.store(root) {
                        log::warn!("the host anchor refused the vault's counter ({})", e.code());
                    }
                }
                Some(anchored) if root < anchored => {
                    return Err(VaultError::corrupt(
                        "the vault file is older than the host's anchor (restored from an older copy?)",
                    ))
                }
                Some(anchored) if root == anchored => {}
                _ => {
                    if let Err(e) = anchor.store(root) {
                        log::warn!("the host anchor refused the vault's counter ({})", e.code());
                    }
                }
            }
        }
        let revocations_waiting = store.has_revocations()?;
        store.end_read()?;
        let locks = refresh_lock::RefreshLocks::new(&path);
        let transport = options.transport.or_else(crate::transport::default_transport);
        Ok(Vault {
            engine: Arc::new(Engine {
                path,
                locks,
                store: Mutex::new(Some(StoreState::new(store, keys, options.anchor))),
                lookup: RwLock::new(Some(lookup)),
                cache: Default::default(),
                refresh: Mutex::new(Default::default()),
                pending: Mutex::new(Default::default()),
                profiles: RwLock::new(Default::default()),
                transport: RwLock::new(transport),
                clock: options.clock,
                policy: options.policy,
                events: EventDispatcher::new(),
                closed: AtomicBool::new(false),
                metrics: Metrics::default(),
                revocations_waiting: AtomicBool::new(revocations_waiting),
                revoker: Mutex::new(Default::default()),
            }),
        })
    }

    /// Open an existing file's data key: slot 1 (the newest key) or, after an unconfirmed
    /// `rekey`, slot 2 (the key it replaced). Opening through slot 1 confirms the rotation:
    /// slot 2 is dropped and the log truncated, so the old key opens nothing any more. Then
    /// migrate. Nothing is written before a key has opened a slot.
    fn unlock(store: &mut Store, path: &Path, version: i64, key: &KeySource) -> Result<(Keys, LookupKey)> {
        let slots = store.key_slots(version)?;
        let mut opened = None;
        let mut failure = VaultError::WrongKey;
        for (slot, wrapped) in &slots {
            let attempt = Kek::for_slot(key, wrapped).and_then(|kek| Ok((kek.unwrap(wrapped)?, kek)));
            match attempt {
                Ok((data_key, kek)) => {
                    opened = Some((*slot, data_key, kek));
                    break;
                }
                Err(VaultError::WrongKey) => {}
                Err(e) => failure = e,
            }
        }
        let Some((slot, data_key, kek)) = opened else {
            return Err(failure);
        };
        let record = RecordCipher::new(&data_key)?;
        store.configure()?;
        if version < crate::store::SCHEMA_VERSION {
            let locks = refresh_lock::RefreshLocks::new(path);
            store.migrate(version, &record, |markers| {
                for (account, generation, credential) in markers {
                    let marker = refresh_lock::Marker::new(account, *generation, credential)
                        .ok_or_else(|| VaultError::corrupt("a refresh marker of the file has a malformed hash"))?;
                    locks.import_marker(&marker)?;
                }
                Ok(())
            })?;
            log::info!("migrated the vault from schema {version}");
        }
        let (_, sealed) = store.key_state()?;
        let lookup = match sealed {
            Some((nonce, ct)) => LookupKey::unseal(&data_key, &nonce, &ct)?,
            None => LookupKey::derive(&data_key)?,
        };
        if slot == 1 && slots.len() > 1 {
            store.drop_retiring_slot()?;
            log::info!("the new vault key was confirmed; the old key no longer opens the vault");
        } else if slot != 1 {
            log::warn!("the vault was opened with the key a rekey replaced; rekey again to finish");
        }
        Ok((Keys { record, kek }, lookup))
    }

    /// The file this vault lives in.
    pub fn path(&self) -> &Path {
        &self.engine.path
    }

    // ----- configuration -------------------------------------------------------------------

    /// Register (or replace) a profile under its name.
    pub fn register_profile(&self, profile: Profile) -> Result<()> {
        self.engine.check_open()?;
        self.engine
            .profiles
            .write()
            .insert(profile.name().to_owned(), Arc::new(profile));
        // Revocations queued before (a logout while offline, or before a restart) can go now.
        crate::revocation::kick(&self.engine);
        Ok(())
    }

    /// Load a profile from JSON and register it; returns its name.
    pub fn load_profile_json(&self, json: &str) -> Result<String> {
        self.engine.check_open()?;
        let p = Profile::from_json(json)?;
        let name = p.name().to_owned();
        self.register_profile(p)?;
        Ok(name)
    }

    /// Replace the transport used by blocking refreshes; `None` restores the built-in HTTPS
    /// transport (or none, without the `https` feature). [`VaultError::Closed`] after `close`.
    pub fn set_transport(&self, transport: Option<Arc<dyn Transport>>) -> Result<()> {
        self.engine.check_open()?;
        *self.engine.transport.write() = transport.or_else(crate::transport::default_transport);
        crate::revocation::kick(&self.engine);
        Ok(())
    }

    /// Install (or remove) the observer that receives [`VaultEvent`]s on the event thread.
    /// [`VaultError::Closed`] after `close` (no event thread is started).
    pub fn set_observer(&self, observer: Option<Arc<dyn VaultObserver>>) -> Result<()> {
        self.engine.check_open()?;
        self.engine.events.set_observer(observer);
        Ok(())
    }

    // ----- sessions ---------------------------------------------------------------------------

    /// Store a session after the host's own sign-in (replacing any session of that account).
    /// Durable when it returns.
    pub fn store(&self, session: NewSession) -> Result<SessionInfo> {
        let e = &self.engine;
        e.check_open()?;
        session.validate()?;
        let key = e.key(&session.account)?;
        let profile = e.profile(&session.profile)?;
        let record = new_record(&session, &profile, e.clock.wall_ms());
        let generation = e
            .write_record(&key, None, &record)?
            .ok_or_else(|| VaultError::internal("unconditional write refused"))?;
        let entry = e.install(&key.id, record, generation);
        if let Some(st) = e.refresh.lock().get_mut(&key.id) {
            st.record_success();
        }
        crate::logging::debug_record!("stored a session (generation {generation})");
        Ok(e.info(&entry))
    }

    /// Store a session from the login response as the server wrote it: the profile's own
    /// response spec reads the body with the same rules as a refresh response (envelopes,
    /// `expires_in` relative or as an epoch time in s or ms, the JWT `exp`, Keycloak's
    /// `refresh_expires_in: 0` as an offline token, server time from `Date`). A body that is not
    /// a successful answer is `Protocol`; nothing is stored then. Durable when it returns.
    pub fn store_response(&self, response: LoginResponse) -> Result<SessionInfo> {
        let e = &self.engine;
        e.check_open()?;
        let profile = e.profile(&response.profile)?;
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(date) = &response.date {
            headers.push(("date".to_owned(), date.clone()));
        }
        let http = HttpResponse::new(200, headers, response.body.clone());
        let now_wall = e.clock.wall_ms();
        let mut received = profile
            .parse_response(&http, now_wall)
            .map_err(|err| match err.code() {
                ErrorCode::Protocol | ErrorCode::InvalidInput => err,
                _ => VaultError::protocol(format!("the login response is not a successful answer ({err})")),
            })?;
        drop(http);
        // An id_token in the login answer is validated as a refresh's is (the session is then
        // bound to its `sub`); a refused one stores nothing.
        e.check_id_token(&profile, &mut received, None, now_wall)?;
        let mut session = NewSession::from_received(&response.account, &response.profile, received);
        if let Some(c) = response.refresh_credential.clone() {
            if session.refresh_credential.is_some() {
                return Err(VaultError::invalid(
                    "the login response already carries a refresh credential; do not pass another",
                ));
            }
            session.refresh_credential = Some(c);
        }
        session.hints = response.hints.clone();
        self.store(session)
    }

    /// A valid access token for `account`: the cached one when it is fresh, otherwise one
    /// refreshed (once, whatever the number of concurrent callers).
    #[inline]
    pub fn access_token(&self, account: &str) -> Result<AccessToken> {
        let now = self.engine.clock.mono_ns();
        if let Some(token) = self.engine.cache.fresh(account, now, 0, AccessToken::clone) {
            return Ok(token);
        }
        let token = self
            .engine
            .obtain(&self.engine.key(account)?, Mode::Due { min_ttl_ns: 0 })?;
        crate::revocation::kick(&self.engine);
        Ok(token)
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
        let now = self.engine.clock.mono_ns();
        let min_ttl_ns = ns(options.min_ttl);
        let hit = |t: &AccessToken| (t.generation() != known_generation).then(|| t.clone());
        if let Some(changed) = self.engine.cache.fresh(account, now, min_ttl_ns, hit) {
            return Ok(changed);
        }
        let t = self
            .engine
            .obtain(&self.engine.key(account)?, Mode::Due { min_ttl_ns })?;
        Ok((t.generation() != known_generation).then_some(t))
    }

    /// Like [`access_token`](Self::access_token) with per-call options.
    pub fn access_token_with(&self, account: &str, options: TokenOptions) -> Result<AccessToken> {
        let min_ttl_ns = ns(options.min_ttl);
        let now = self.engine.clock.mono_ns();
        if let Some(token) = self.engine.cache.fresh(account, now, min_ttl_ns, AccessToken::clone) {
            return Ok(token);
        }
        self.engine.obtain(&self.engine.key(account)?, Mode::Due { min_ttl_ns })
    }

    /// Refresh now, whatever the token's age (joins a forced refresh already in flight).
    pub fn force_refresh(&self, account: &str) -> Result<AccessToken> {
        let key = self.engine.key(account)?;
        let current = self.engine.entry(&key)?.token.clone();
        self.engine.obtain(
            &key,
            Mode::Forced {
                rejected: Some(current),
            },
        )
    }

    /// The app's API rejected `token` (HTTP 401). If a newer generation exists (another thread
    /// or process refreshed meanwhile) it is returned without a refresh; otherwise the token is
    /// refreshed (once, however many threads report it).
    pub fn report_rejected(&self, account: &str, token: &str) -> Result<AccessToken> {
        let key = self.engine.key(account)?;
        let entry = self.engine.entry(&key)?;
        let entry = self.engine.adopt(&key, Some(&entry))?;
        if entry.token.expose() != token {
            return Ok(entry.token.clone());
        }
        let rejected = entry.token.clone();
        self.engine.obtain(
            &key,
            Mode::Forced {
                rejected: Some(rejected),
            },
        )
    }

    /// Session facts without secrets.
    pub fn session_info(&self, account: &str) -> Result<SessionInfo> {
        let key = self.engine.key(account)?;
        let e = self.engine.entry(&key)?;
        Ok(self.engine.info(&e))
    }

    /// The accounts stored. Records that fail to decrypt are skipped (and counted in the log);
    /// reading them individually gives their [`VaultError::Corrupt`] error.
    pub fn list_accounts(&self) -> Result<Vec<String>> {
        let (rows, mut bad, keys) = self.engine.with_store(|s| {
            let keys = Arc::clone(&s.keys);
            let (rows, bad) = s.store.all_rows(&keys.record)?;
            Ok((rows, bad, keys))
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            match Engine::decrypt_row(&keys, &row) {
                Ok(rec) => out.push(rec.account.to_string()),
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
        self.remove_inner(account, false)
    }

    /// Sign out at the server too: remove the session as [`remove`](Self::remove) does, and
    /// revoke its refresh credential at the profile's RFC 7009 endpoint (the `keycloak` preset,
    /// `oauth2` with `revocation_url`, any profile with `revocation_url`; seeds 000–002 have
    /// none, so their sessions are removed locally only). The local removal comes first, with
    /// the revocation queued in the same durable transaction; the request is sent in the
    /// background, never blocking this call, and what cannot be sent now (offline, a 5xx, no
    /// profile registered yet) stays queued in the file and is sent after the next successful
    /// refresh, when a profile or transport is set (after the next open), or by
    /// [`send_revocations`](Self::send_revocations). See [`pending_revocations`](Self::pending_revocations).
    pub fn remove_and_revoke(&self, account: &str) -> Result<bool> {
        self.remove_inner(account, true)
    }

    fn remove_inner(&self, account: &str, revoke: bool) -> Result<bool> {
        let e = &self.engine;
        e.check_open()?;
        let key = e.key(account)?;
        // The revocation is built from the row the file holds, under the store lock (no refresh
        // of this process can rotate the credential in between), and the removal happens only
        // if the row is still that generation (a refresh by another process meanwhile makes
        // the vault build it again from the new row): the credential revoked is the last one.
        let mut attempts = 0;
        let (existed, queued) = loop {
            attempts += 1;
            let outcome = e.with_store(|s| {
                let revocation = if revoke {
                    Self::revocation_from_file(e, s, &key)?
                } else {
                    None
                };
                let keys = Arc::clone(&s.keys);
                let removed = s.store.remove_session(
                    &key.hash,
                    &keys.record,
                    revocation.as_ref().map(|(row, generation)| (row, *generation)),
                )?;
                if removed.is_some() {
                    s.anchor_after_write();
                }
                Ok(removed.map(|existed| (existed, revocation.is_some())))
            })?;
            match outcome {
                Some(done) => break done,
                None if attempts < 5 => continue,
                None => {
                    return Err(VaultError::transient(
                        "the session kept changing while it was being removed; remove it again",
                    ))
                }
            }
        };
        e.cache.remove(account);
        if let Some(st) = e.refresh.lock().get_mut(account) {
            st.record_success();
        }
        if existed {
            e.locks.forget_marker(&key.hash);
            e.events.emit(VaultEvent::SessionRemoved {
                account: account.to_owned(),
            });
            crate::logging::debug_record!("removed a session");
            if queued {
                e.revocations_waiting.store(true, Ordering::Relaxed);
                crate::revocation::kick(e);
            }
        }
        Ok(existed)
    }

    /// The revocation of the credential the file holds for `key` now, with the generation of
    /// the row it was read from. A row that fails its checks is removed without one.
    fn revocation_from_file(
        e: &Engine,
        s: &mut crate::engine::StoreState,
        key: &crate::engine::AccountKey,
    ) -> crate::error::StoreResult<Option<(crate::store::RevocationRow, u64)>> {
        let unreadable = || {
            log::warn!("a session that fails its check is removed without revocation");
            Ok(None)
        };
        let (row, keys) = match s.checked_row(&key.hash) {
            Ok(found) => found,
            Err(crate::error::Error::Vault(err)) if err.code() == ErrorCode::Corrupt => return unreadable(),
            Err(crate::error::Error::ManifestAuth) => return unreadable(),
            Err(err) => return Err(err),
        };
        let Some(row) = row else { return Ok(None) };
        let record = match Engine::decrypt_row(&keys, &row) {
            Ok(record) if *record.account == *key.id => record,
            Ok(_) => return unreadable(),
            Err(err) if err.code() == ErrorCode::Corrupt => return unreadable(),
            Err(err) => return Err(err.into()),
        };
        Ok(e.revocation_row(&keys.record, &record, e.clock.wall_ms())?
            .map(|r| (r, row.generation)))
    }

    /// The revocations still to be sent (no secrets; the account ids are the host's own), and
    /// how many were ever dropped because the queue was full.
    pub fn pending_revocations(&self) -> Result<RevocationQueue> {
        self.engine.pending_revocations()
    }

    /// Send the queued revocations now, on this thread (blocking on the network), and say what
    /// happened. Revocations are also sent in the background without this call.
    pub fn send_revocations(&self) -> Result<RevocationReport> {
        self.engine.send_revocations()
    }

    /// Replace the vault's key, and its data key: a new random data key re-seals every record
    /// and re-authenticates the manifest in one transaction, slot 1 wraps it under `new_key`,
    /// and the log is truncated, so no ciphertext or wrapped key of the old data key remains in
    /// the file or its `-wal`. Until the first open with `new_key`, slot 2 wraps the *new* data
    /// key under the key this vault was opened with, so a host that crashed before saving
    /// `new_key` can still open with the old one (and should rekey again). The host's sequence:
    /// keep the old key, save the new key beside it, `rekey`, reopen with the new key (which
    /// retires slot 2), then delete the old key. Other handles on the file get `WrongKey` until
    /// reopened with the new key. Refuses with `Corrupt`, changing nothing, if a session fails
    /// its check.
    pub fn rekey(&self, new_key: KeySource) -> Result<()> {
        self.rekey_with_progress(new_key, &mut |_, _| {})
    }

    /// [`rekey`](Self::rekey), calling `progress(done, total)` after each record is re-sealed
    /// (on this thread, inside the rekey's transaction: keep it quick), for a tool that shows
    /// progress on a vault of many sessions.
    pub fn rekey_with_progress(&self, new_key: KeySource, progress: &mut dyn FnMut(usize, usize)) -> Result<()> {
        self.engine.check_open()?;
        let new_kek = Kek::fresh(&new_key)?;
        drop(new_key);
        let data_key = crypto::new_data_key()?;
        let record = RecordCipher::new(&data_key)?;
        self.engine.with_store(|s| {
            let old = Arc::clone(&s.keys);
            let slots = [new_kek.wrap(&data_key)?, old.kek.wrap(&data_key)?];
            let sealed = self.engine.with_lookup(|l| l.seal(&data_key))?;
            let total = s.store.session_count()?;
            let mut done = 0usize;
            s.store.rotate_key(
                &old.record,
                &record,
                |row| {
                    let plain = old.record.open(
                        &row.account_hash,
                        row.format,
                        row.generation,
                        &row.nonce,
                        &row.ciphertext,
                    )?;
                    let (nonce, ct) = record.seal(&row.account_hash, row.generation, &plain)?;
                    done += 1;
                    progress(done, total);
                    Ok((crypto::RECORD_FORMAT, nonce, ct))
                },
                &slots,
                sealed,
            )?;
            s.keys = Arc::new(Keys { record, kek: new_kek });
            s.anchor_after_write();
            Ok(())
        })?;
        log::info!("the vault key and data key were replaced");
        Ok(())
    }

    /// Move a session to a profile, and to that profile's endpoint: the explicit step after the
    /// endpoint of a session's profile changed (a session's refresh credential is never sent
    /// to another origin than the one it was stored with). Durable when it returns.
    pub fn move_session(&self, account: &str, profile: &str) -> Result<SessionInfo> {
        let e = &self.engine;
        e.check_open()?;
        let key = e.key(account)?;
        let profile = e.profile(profile)?;
        let entry = e.adopt(&key, None)?;
        let mut record = entry.record.clone();
        record.profile = profile.name().into();
        record.origin = Some(profile.origin().into());
        let generation = e
            .write_record(&key, Some(entry.generation), &record)?
            .ok_or_else(|| VaultError::transient("the session changed meanwhile; move it again"))?;
        let entry = e.install(&key.id, record, generation);
        log::info!("moved a session to another profile's endpoint");
        Ok(e.info(&entry))
    }

    /// Close the vault: later calls fail with [`VaultError::Closed`]; waiters are released;
    /// refresh locks held by unfinished two-step attempts are released. A background logout
    /// revocation pass stops before its next request; one already handed to the transport is
    /// waited for (at most its profile's timeout), so the transport is neither in a call nor
    /// called again once this returns (unless `close` is called from that call itself).
    pub fn close(&self) -> Result<()> {
        let e = &self.engine;
        if e.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        e.cache.clear();
        let flights: Vec<_> = e.refresh.lock().drain().filter_map(|(_, st)| st.flight).collect();
        for f in flights {
            f.complete(Err(VaultError::Closed));
        }
        e.pending.lock().clear();
        e.events.shutdown();
        // A background revocation pass ends before its next request (the vault is closed);
        // one in flight is waited for, so the host's transport is not called after `close`.
        crate::revocation::Worker::stop(&e.revoker);
        let store = e.store.lock().take();
        drop(store);
        // The keys go with the store (wiped on drop once no call still holds them).
        e.lookup.write().take();
        Ok(())
    }

    /// What this vault did since it was opened: cached hits, refreshes by outcome, single-flight
    /// joins, cross-process lock waits and takeovers, lost-answer markers, transport latency and
    /// response bytes. Counts only, no secret and no account id; also after `close`.
    pub fn metrics(&self) -> VaultMetrics {
        self.engine.metrics.snapshot(self.engine.cache.hits())
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.engine.is_closed()
    }

    /// Run SQLite's `quick_check` on the file.
    pub fn check_integrity(&self) -> Result<bool> {
        self.engine.with_store(|s| s.store.integrity_ok())
    }

    /// Number of stored sessions.
    pub fn session_count(&self) -> Result<usize> {
        self.engine.with_store(|s| s.store.session_count())
    }

    // ----- two-step refresh --------------------------------------------------------------------

    /// Start a refresh the host performs itself (Unity coroutines, OkHttp, URLSession).
    /// Same single-flight and persistence as the blocking path; never blocks: while another
    /// thread, process or vault instance refreshes the account, the answer is
    /// [`RefreshStep::InFlight`].
    pub fn begin_refresh(&self, account: &str, force: bool) -> Result<RefreshStep> {
        let e = &self.engine;
        let key = e.key(account)?;
        let mode = if force {
            Mode::Forced {
                rejected: Some(e.entry(&key)?.token.clone()),
            }
        } else {
            Mode::Due { min_ttl_ns: 0 }
        };
        match e.start(&key, &mode, PeerWait::Never)? {
            Start::Ready(t) => Ok(RefreshStep::Fresh(t)),
            Start::Join(_) => {
                e.metrics.flight_joins.add_one();
                Ok(RefreshStep::InFlight)
            }
            Start::PeerBusy => Ok(RefreshStep::InFlight),
            Start::Lead(lead, request) => {
                let attempt = lead.flight.id;
                let now = e.clock.mono_ns();
                let mut pending = e.pending.lock();
                pending.retain(|_, l| {
                    let keep = !l.flight.is_done() && l.flight.deadline.saturating_add(PENDING_GRACE_NS) > now;
                    if !keep {
                        l.flight.abandon();
                    }
                    keep
                });
                pending.insert(attempt, lead);
                Ok(RefreshStep::Send(PendingRefresh { attempt, request }))
            }
        }
    }

    /// Finish a two-step refresh with the server's response.
    pub fn finish_refresh(&self, attempt: u64, response: HttpResponse) -> Result<AccessToken> {
        let lead = self.take_pending(attempt)?;
        self.engine.finish(*lead, Ok(response))
    }

    /// Finish a two-step refresh whose request failed on the network.
    pub fn fail_refresh(&self, attempt: u64, error: TransportError) -> Result<AccessToken> {
        let lead = self.take_pending(attempt)?;
        self.engine.finish(*lead, Err(error))
    }

    fn take_pending(&self, attempt: u64) -> Result<Box<crate::engine::Lead>> {
        self.engine.check_open()?;
        self.engine
            .pending
            .lock()
            .remove(&attempt)
            .ok_or_else(|| VaultError::invalid("unknown or already finished refresh attempt"))
    }
}

#[cfg(feature = "test-support")]
impl Vault {
    /// Test support: the (access token, refresh credential) pair stored *in the file* for an
    /// account, bypassing the cache. Exists only with the `test-support` feature.
    #[doc(hidden)]
    pub fn stored_pair_for_tests(&self, account: &str) -> Result<(String, Option<String>)> {
        let key = self.engine.key(account)?;
        let (row, keys) = self.engine.with_store(|s| s.checked_row(&key.hash))?;
        let row = row.ok_or(VaultError::NotFound)?;
        let record = Engine::decrypt_row(&keys, &row)?;
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
