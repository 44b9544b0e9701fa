//! # tokenvault
//!
//! An embedded, in-process token vault. It keeps a player's or user's session tokens encrypted
//! in one SQLite file, hands out a valid access token in nanoseconds, and refreshes it against
//! the app's own backend before it expires — once, however many threads (or processes) ask at
//! the same moment.
//!
//! ```no_run
//! use tokenvault::{KeySource, NewSession, Profile, Preset, Vault, VaultOptions};
//! # fn main() -> Result<(), tokenvault::VaultError> {
//! let key = [7u8; 32]; // from the Keychain / Keystore / DPAPI
//! let vault = Vault::open("tokens.db", KeySource::raw(&key)?, VaultOptions::default())?;
//! vault.register_profile(Profile::preset(
//!     Preset::OAuth2,
//!     "backend",
//!     "https://auth.example.com/oauth/token",
//!     serde_json::json!({"client_id": "game-client"}),
//! )?)?;
//! vault.store(NewSession::new("player-1", "backend", "access…").refresh_credential("refresh…"))?;
//! let token = vault.access_token("player-1")?; // cached: ~30 ns; refreshed when due
//! println!("Authorization: Bearer {}", token.expose());
//! # Ok(()) }
//! ```
//!
//! Modules (private; the curated list below is the public API): `store` (the SQLite file),
//! `crypto` (record cipher and key wrapping), `profile` (refresh dialects, sans-IO), `engine`
//! (refresh policy, single-flight, the cross-process protocol, verdicts), `transport` (HTTP),
//! `vault` (the public façade), `events`.

mod anchor;
mod clock;
mod crypto;
mod engine;
mod error;
mod events;
mod inspect;
mod jws_verify;
mod jwt;
mod logging;
mod metrics;
mod oidc;
mod profile;
mod revocation;
mod secret;
mod session;
mod store;
mod transport;
mod vault;

pub use anchor::StateAnchor;
pub use clock::{Clock, SystemClock};
#[cfg(any(test, feature = "test-support"))]
pub use clock::{ManualClock, SkewedClock};
pub use crypto::{KdfParams, KeySource};
pub use engine::RefreshPolicy;
pub use error::{ErrorCode, Result, VaultError};
pub use events::{VaultEvent, VaultObserver};
pub use inspect::{check_file, AccountReport, FileFormat, FileReport, LeaseState, SchemaStatus, StoredVerdict};
pub use log::{Level as LogLevel, LevelFilter as LogLevelFilter};
pub use logging::{set_log_sink, LogSink};
pub use metrics::{VaultMetrics, LATENCY_WINDOW};
pub use oidc::{IdentityClaims, OidcSettings};
pub use profile::{
    BodyEncoding, ClientAuth, Preset, Profile, ResponseSpec, Rotation, SuccessRule, DEFAULT_MAX_RESPONSE_BYTES,
    MAX_PROFILE_JSON,
};
pub use revocation::{PendingRevocation, RevocationQueue, RevocationReport};
pub use secret::{AccessToken, SecretString};
pub use session::{
    ExpiryValue, LoginResponse, NewSession, ReceivedTokens, RefreshExpiry, RefreshFailure, SessionInfo, SessionState,
};
#[cfg(feature = "https")]
pub use transport::HttpsTransport;
pub use transport::{
    check_request_scheme, HttpHeader, HttpRequest, HttpResponse, SpkiPin, Transport, TransportError, TransportErrorKind,
};
pub use vault::{PendingRefresh, RefreshStep, TokenOptions, Tuning, Vault, VaultOptions, MAX_BUSY_TIMEOUT};

/// The newest schema version this library reads and writes.
pub const SCHEMA_VERSION: i64 = store::SCHEMA_VERSION;

/// `PRAGMA application_id` of a tokenvault file ("TKVT").
pub const APPLICATION_ID: i32 = store::APPLICATION_ID;

/// Static assertion: the vault can be shared across threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vault>();
};

/// Entry points for the fuzz targets in `fuzz/` (compiled only under `cfg(fuzzing)`, which
/// `cargo fuzz` sets): they reach crate-internal code with arbitrary bytes.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
