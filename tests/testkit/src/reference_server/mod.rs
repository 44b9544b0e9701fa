//! Reference servers for the three vendor refresh dialects (seeds `000`, `001`, `002`).
//!
//! A [`ReferenceServer`] is a real HTTP/1.1 server on `127.0.0.1:<ephemeral port>`, one thread per
//! connection, `Connection: close` on every response. It issues tokens ([`ReferenceServer::login`]),
//! refreshes them exactly as its [`Dialect`]'s seed document describes, rotates and revokes them,
//! detects refresh-token reuse, guards a protected resource, counts what happened ([`Stats`]) and
//! misbehaves on demand ([`Fault`]). Dropping it stops the accept loop and joins its thread.
//!
//! Routes (all on the same port):
//!
//! | route | purpose |
//! |---|---|
//! | `POST <Dialect::refresh_path()>` | the refresh endpoint of the seed |
//! | `GET /protected` | `Authorization: Bearer <access>` → 200 `{"sub":…}` if the token is genuine, unexpired and unrevoked, else 401 |
//! | `POST /test/login` | `{"user":"…"}` → `{"accessToken":…, "refreshCredential":…}` (for `000` the credential is the entity token); with `"answer":"dialect"` the dialect's own success body instead, the credential in the `X-Test-Refresh-Credential` header |
//! | `POST /test/fault` | queue a fault, JSON as in [`Fault::from_json`] → `{"queued":n}` |
//! | `POST /test/clear-faults` | drop queued faults |
//! | `GET /test/stats` | [`Stats`] as JSON, field names as in Rust |
//! | `POST /oauth/revoke` | RFC 7009: form `token=…`; revokes the token's family; 200 (400 without a token) |
//! | `POST /test/revoke` | `{"token":"…"}` (access or refresh) → `{"revoked":bool}`: server-side logout |
//! | `POST /test/advance-clock` | `{"ms":n}`: move the server's clock forward (see [`ReferenceServer::advance_clock`]) |
//!
//! Tokens: access tokens are HS256 JWTs with claims `sub`, `iat`, `exp`, `jti`, `fam`, where
//! `exp = iat + ceil(access_ttl)` in whole seconds (so 1.5 s → 2 s, 200 ms → 1 s). The server accepts
//! one while `now < max(exp, issue instant + access_ttl)`: never less than the `exp` a client reads,
//! always at least the exact ttl. Refresh tokens and entity tokens are 32 random bytes in base64url,
//! with an exact (millisecond) lifetime of `refresh_ttl`.
//!
//! Non-Rust tests use the `reference-server` binary, which wraps this type.

mod clock;
mod dialect;
mod fault;
mod http;
mod routes;
mod tokens;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod test_client;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::Mutex;

pub use dialect::{Dialect, UnknownDialect};
pub use fault::{Fault, CAPTIVE_PORTAL_LOCATION};

use clock::ServerClock;
use dialect::{RefreshEnv, RefreshOutcome};
use tokens::{JwtSigner, Lifetimes, TokenStore};

/// Lifetimes and the `000` API key of a reference server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Access-token lifetime; the JWT's `exp - iat` is this rounded up to whole seconds.
    pub access_ttl: Duration,
    /// Refresh-token lifetime (`001`, `002`) and entity-token lifetime (`000`), exact to the ms.
    pub refresh_ttl: Duration,
    /// The `api-key` header value `000` requires.
    pub api_key: String,
}

impl Default for ServerConfig {
    /// Access 60 s, refresh 12 h (seed `001`'s value), API key `test-api-key`.
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(12 * 60 * 60),
            api_key: "test-api-key".to_owned(),
        }
    }
}

/// Tokens handed to a client by a login or a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    /// An HS256 JWT.
    pub access_token: String,
    /// The refresh token (`001`, `002`) or the entity token (`000`).
    pub refresh_credential: String,
}

/// What a server has seen so far. Every counter is updated before the response is written (or the
/// connection dropped), so a client that has its answer sees the stats that include it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `POST`s to the refresh path, faulted or not.
    pub refresh_requests: u64,
    /// Refreshes that issued tokens (including [`Fault::LoseResponseAfterRotate`]'s).
    pub refresh_successes: u64,
    /// Refreshes the dialect rejected (4xx), reuse detections included; faults not.
    pub refresh_failures: u64,
    /// Rotated-out refresh tokens presented (`001`, `002`).
    pub reuse_detections: u64,
    /// Requests to the RFC 7009 endpoint `/oauth/revoke` that carried a token.
    pub rfc7009_revocations: u64,
    /// Families revoked, by reuse detection or [`ReferenceServer::revoke_family_of`].
    pub families_revoked: u64,
    /// `GET /protected` answered 200.
    pub protected_ok: u64,
    /// `GET /protected` answered 401.
    pub protected_rejected: u64,
    /// Queued faults consumed by refresh requests.
    pub faults_applied: u64,
    /// [`Fault::Delay`]ed requests dropped because the client had hung up.
    pub requests_abandoned: u64,
}

/// State shared by the accept loop, the connection threads and the handle.
struct Shared {
    dialect: Dialect,
    config: ServerConfig,
    clock: ServerClock,
    store: Mutex<TokenStore>,
    faults: Mutex<VecDeque<Fault>>,
    stats: Mutex<Stats>,
    stopping: AtomicBool,
}

impl Shared {
    fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            access: self.config.access_ttl,
            refresh: self.config.refresh_ttl,
        }
    }

    fn login(&self, user: &str) -> IssuedTokens {
        let now_ms = self.clock.now_ms();
        self.store.lock().login(user, now_ms, self.lifetimes())
    }

    fn check_access(&self, token: &str) -> Option<String> {
        let now_ms = self.clock.now_ms();
        self.store.lock().check_access(token, now_ms)
    }

    fn revoke_family_of(&self, token: &str) -> bool {
        let newly_revoked = {
            let mut store = self.store.lock();
            store.family_of(token).is_some_and(|family| store.revoke_family(family))
        };
        if newly_revoked {
            self.stats.lock().families_revoked += 1;
        }
        newly_revoked
    }

    /// Runs a refresh through the dialect and records it in the stats.
    fn refresh(&self, request: &http::Request) -> http::Response {
        let outcome = {
            let mut store = self.store.lock();
            let mut env = RefreshEnv {
                store: &mut store,
                now_ms: self.clock.now_ms(),
                lifetimes: self.lifetimes(),
                api_key: &self.config.api_key,
            };
            self.dialect.refresh(request, &mut env)
        };
        let mut stats = self.stats.lock();
        match outcome {
            RefreshOutcome::Refreshed(tokens) => {
                stats.refresh_successes += 1;
                self.dialect.success_response(&tokens)
            }
            RefreshOutcome::Rejected(rejection) => {
                stats.refresh_failures += 1;
                if let Some(reuse) = rejection.reuse {
                    stats.reuse_detections += 1;
                    if reuse.newly_revoked {
                        stats.families_revoked += 1;
                    }
                }
                self.dialect.failure_response(rejection.status, &rejection.detail)
            }
        }
    }
}

/// A running reference server; see the [module documentation](self).
pub struct ReferenceServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept_thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for ReferenceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReferenceServer")
            .field("dialect", &self.shared.dialect)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ReferenceServer {
    /// Binds `127.0.0.1:0` and starts serving `dialect` on a background thread.
    pub fn start(dialect: Dialect, config: ServerConfig) -> io::Result<ReferenceServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            dialect,
            config,
            clock: ServerClock::default(),
            store: Mutex::new(TokenStore::new(JwtSigner::random()?)),
            faults: Mutex::new(VecDeque::new()),
            stats: Mutex::new(Stats::default()),
            stopping: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name(format!("reference-server-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &accept_shared))?;
        Ok(ReferenceServer {
            shared,
            addr,
            accept_thread: Some(accept_thread),
        })
    }

    /// The dialect this server speaks.
    pub fn dialect(&self) -> Dialect {
        self.shared.dialect
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// `base_url()` plus the dialect's refresh path.
    pub fn refresh_url(&self) -> String {
        format!("{}{}", self.base_url(), self.shared.dialect.refresh_path())
    }

    /// Starts a new family (session) for `user`, as a login endpoint would.
    pub fn login(&self, user: &str) -> IssuedTokens {
        self.shared.login(user)
    }

    /// Whether `token` would be accepted by `GET /protected` now (not counted in [`Stats`]).
    pub fn check_access(&self, token: &str) -> bool {
        self.shared.check_access(token).is_some()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().clone()
    }

    /// Queues `fault` for a later refresh request (first in, first out, one per request).
    pub fn push_fault(&self, fault: Fault) {
        self.shared.faults.lock().push_back(fault);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().clear();
    }

    /// Server-side logout: revokes the family of this access token or refresh credential, so every
    /// token of it is rejected from now on. Returns whether a live family was revoked.
    pub fn revoke_family_of(&self, token: &str) -> bool {
        self.shared.revoke_family_of(token)
    }

    /// Every (access, refresh credential) pair issued to the family of `token` — a login and each
    /// refresh — oldest first. Crash tests check that a vault holds the last or the one before.
    pub fn issued_pairs(&self, token: &str) -> Vec<IssuedTokens> {
        self.shared.store.lock().issued_pairs(token)
    }

    /// Moves this server's clock forward: token issue and expiry times, expiry checks and the `Date`
    /// header all shift, so tests expire tokens without sleeping.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept; it sees the flag and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for connection in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        match connection {
            Ok(stream) => {
                let shared = Arc::clone(shared);
                // If no thread can be spawned the connection is dropped: the client sees a reset.
                let _ = thread::Builder::new()
                    .name("reference-server-conn".to_owned())
                    .spawn(move || routes::serve_connection(&shared, stream));
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}
