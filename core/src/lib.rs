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
//! Modules: `store` (the SQLite file), [`crypto`] (record cipher and key
//! wrapping), [`profile`] (refresh dialects, sans-IO), [`engine`] (refresh policy and
//! single-flight), [`transport`] (HTTP), [`vault`] (the public object), [`events`].

pub mod clock;
pub mod crypto;
pub mod engine;
pub mod error;
pub mod events;
pub mod jwt;
pub mod profile;
pub mod secret;
pub mod session;
pub(crate) mod store;
pub mod transport;
pub mod vault;

pub use clock::{Clock, ManualClock, SkewedClock, SystemClock};
pub use crypto::{KdfParams, KeySource};
pub use engine::RefreshPolicy;
pub use error::{ErrorCode, Result, VaultError};
pub use events::{VaultEvent, VaultObserver};
pub use profile::{Preset, Profile};
pub use secret::{AccessToken, SecretString};
pub use session::{NewSession, RefreshFailure, SessionInfo, SessionState};
#[cfg(feature = "https")]
pub use transport::HttpsTransport;
pub use transport::{HttpHeader, HttpRequest, HttpResponse, Transport, TransportError, TransportErrorKind};
pub use vault::{PendingRefresh, RefreshStep, TokenOptions, Vault, VaultOptions};

/// The newest schema version this library reads and writes.
pub const SCHEMA_VERSION: i64 = store::SCHEMA_VERSION;

/// Static assertion: the vault can be shared across threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vault>();
};

/// Entry points for the fuzz targets in `fuzz/` (compiled only under `cfg(fuzzing)`, which
/// `cargo fuzz` sets): they reach crate-internal code with arbitrary bytes.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use crate::crypto::{self, KdfParams, KeyKind, KeySource, RecordCipher, WrappedKey};

    /// Decrypt arbitrary bytes as a session record of an arbitrary row, and parse what decrypts.
    pub fn open_record(data: &[u8]) {
        let Ok(cipher) = RecordCipher::new(&[7u8; 32]) else {
            return;
        };
        if data.len() < 34 {
            return;
        }
        let (head, rest) = data.split_at(34);
        let generation = u64::from(head[0]);
        let format = i64::from(head[1] % 3);
        let (nonce, ct) = rest.split_at(rest.len().min(24));
        if let Ok(plain) = cipher.open(&head[2..34], format, generation, nonce, ct) {
            let _ = serde_json::from_slice::<crate::session::SessionRecord>(&plain);
        }
        // And a record that does decrypt, built from the input, must parse or fail cleanly.
        if let Ok((n, c)) = cipher.seal(&head[2..34], generation, rest) {
            if let Ok(plain) = cipher.open(&head[2..34], crypto::RECORD_FORMAT, generation, &n, &c) {
                let _ = serde_json::from_slice::<crate::session::SessionRecord>(&plain);
            }
        }
    }

    /// Unwrap an arbitrary stored key row.
    pub fn unwrap_key(data: &[u8]) {
        if data.len() < 16 {
            return;
        }
        let kind = if data[0] & 1 == 0 {
            KeyKind::Raw
        } else {
            KeyKind::Argon2id
        };
        let kdf = (kind == KeyKind::Argon2id).then(|| KdfParams {
            m_kib: 8 + u32::from(data[1] % 64),
            t: u32::from(data[2] % 4),
            p: u32::from(data[3] % 3),
        });
        let w = WrappedKey {
            kind,
            salt: Some(data[4..16].to_vec()),
            kdf,
            nonce: data.get(16..40).unwrap_or_default().to_vec(),
            wrapped: data.get(40..).unwrap_or_default().to_vec(),
        };
        if let Ok(src) = KeySource::raw(&[1u8; 32]) {
            let _ = crypto::unwrap_data_key(&src, &w);
        }
        if let Ok(src) = KeySource::passphrase("fuzz") {
            let _ = crypto::unwrap_data_key(&src, &w);
        }
    }
}
