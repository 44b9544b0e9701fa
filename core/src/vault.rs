//! The public [`Vault`]: a façade over the refresh engine. Every decision (freshness,
//! single-flight, the cross-process protocol, verdicts) is made in `engine`; this file checks
//! arguments, opens the file, and translates calls.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, SystemClock};
use crate::crypto::{self, KeySource, RecordCipher};
use crate::engine::{new_record, refresh_lock, Engine, Mode, PeerWait, RefreshPolicy, Start, StoreState};
use crate::error::{Result, VaultError};
use crate::events::{EventDispatcher, VaultEvent, VaultObserver};
use crate::profile::Profile;
use crate::secret::AccessToken;
use crate::session::{NewSession, SessionInfo};
use crate::store::{FileState, Store};
use crate::transport::{HttpRequest, HttpResponse, Transport, TransportError};

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

/// An encrypted, single-flight token vault over one SQLite file. `Send + Sync`: share it
/// (e.g. in an `Arc`) across threads.
pub struct Vault {
    engine: Engine,
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
        let locks = refresh_lock::RefreshLocks::new(&path)?;
        let cipher = RecordCipher::new(&data_key)?;
        let transport = options.transport.or_else(crate::transport::default_transport);
        Ok(Vault {
            engine: Engine {
                path,
                locks,
                store: Mutex::new(Some(StoreState::new(store))),
                data_key,
                cipher,
                cache: RwLock::new(Default::default()),
                refresh: Mutex::new(Default::default()),
                pending: Mutex::new(Default::default()),
                profiles: RwLock::new(Default::default()),
                transport: RwLock::new(transport),
                clock: options.clock,
                policy: options.policy,
                events: EventDispatcher::new(),
                closed: AtomicBool::new(false),
            },
        })
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
        log::debug!("stored a session (generation {generation})");
        Ok(e.info(&entry))
    }

    /// A valid access token for `account`: the cached one when it is fresh, otherwise one
    /// refreshed (once, whatever the number of concurrent callers).
    #[inline]
    pub fn access_token(&self, account: &str) -> Result<AccessToken> {
        let now = self.engine.clock.mono_ns();
        if let Some(e) = self.engine.cache.read().get(account) {
            if e.fresh_for(now, 0) {
                return Ok(e.token.clone());
            }
        }
        self.engine
            .obtain(&self.engine.key(account)?, Mode::Due { min_ttl_ns: 0 })
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
        if let Some(e) = self.engine.cache.read().get(account) {
            if e.fresh_for(now, min_ttl_ns) {
                return Ok((e.generation != known_generation).then(|| e.token.clone()));
            }
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
        if let Some(e) = self.engine.cache.read().get(account) {
            if e.fresh_for(now, min_ttl_ns) {
                return Ok(e.token.clone());
            }
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
        let rows = self.engine.with_store(|s| s.store.all_rows())?;
        let mut out = Vec::with_capacity(rows.len());
        let mut bad = 0usize;
        for row in rows {
            match self.engine.decrypt_row(&row) {
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
        let e = &self.engine;
        e.check_open()?;
        let key = e.key(account)?;
        let existed = e.with_store(|s| s.store.remove_session(&key.hash))?;
        e.cache.write().remove(account);
        if let Some(st) = e.refresh.lock().get_mut(account) {
            st.record_success();
        }
        if existed {
            e.events.emit(VaultEvent::SessionRemoved {
                account: account.to_owned(),
            });
            log::debug!("removed a session");
        }
        Ok(existed)
    }

    /// Re-wrap the data key under a new key or passphrase, in one transaction.
    pub fn rekey(&self, new_key: KeySource) -> Result<()> {
        self.engine.check_open()?;
        let wrapped = crypto::wrap_data_key(&new_key, &self.engine.data_key)?;
        self.engine.with_store(|s| s.store.replace_wrapped_key(&wrapped))?;
        log::info!("the vault key was changed");
        Ok(())
    }

    /// Close the vault: later calls fail with [`VaultError::Closed`]; waiters are released;
    /// refresh locks held by unfinished two-step attempts are released.
    pub fn close(&self) -> Result<()> {
        let e = &self.engine;
        if e.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        e.cache.write().clear();
        let flights: Vec<_> = e.refresh.lock().drain().filter_map(|(_, st)| st.flight).collect();
        for f in flights {
            f.complete(Err(VaultError::Closed));
        }
        e.pending.lock().clear();
        e.events.shutdown();
        let store = e.store.lock().take();
        drop(store);
        Ok(())
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
            Start::Join(_) | Start::PeerBusy => Ok(RefreshStep::InFlight),
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
        let row = self
            .engine
            .with_store(|s| s.store.session_row(&key.hash))?
            .ok_or(VaultError::NotFound)?;
        let record = self.engine.decrypt_row(&row)?;
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
