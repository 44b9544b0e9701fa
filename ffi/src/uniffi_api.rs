//! # The uniffi surface (Kotlin, Swift, Python)
//!
//! Proc-macro exports over the same [`tokenvault::Vault`] the C ABI wraps, in the same native
//! library. Bindings are generated from the built library by
//! `bindings/uniffi-bindgen/generate.sh` (library mode, the workspace's own `uniffi-bindgen`);
//! see ADR 0008.
//!
//! What this module does, and nothing more (the core decides, the surfaces translate): it converts types, maps
//! [`tokenvault::VaultError`] onto [`TokenVaultError`] in one place ([`From`] below), catches
//! panics, and adapts the host's callbacks to the core's [`tokenvault::Transport`] and
//! [`tokenvault::VaultObserver`] traits. Every decision — when to refresh, who refreshes, how a
//! failure is classified — stays in the core.
//!
//! * [`TokenVault`] — the vault object: open (key or passphrase), profiles, sessions, tokens,
//!   the two-step refresh, rekey, an explicit [`TokenVault::close`].
//! * [`TokenWatch`] — one account's token for wrappers that keep the token string on their side
//!   and only cross the boundary for a small integer (the generation) on the common cached read.
//!   Its probe, [`tokenvault_probe_generation`], is the one plain `extern "C"` function of this
//!   module: a uniffi call costs tens of µs from Kotlin (JNA allocates and reflects over a status
//!   structure per call), a direct-mapped call with an integer in and out well under 1 µs.
//! * Records ([`NewSession`], [`SessionInfo`], [`AccessToken`], [`HttpRequest`],
//!   [`HttpResponse`]), enums ([`RefreshStep`], [`VaultEvent`]) and the callback interfaces
//!   [`HttpTransport`] and [`VaultObserver`].
//!
//! Types that hold a secret or an account id export their redacted `Debug` as the foreign
//! `toString()` / `__repr__` / `debugDescription`, so a logged record shows no token.
//!
//! Every fallible export returns a `Result` (a panic inside a non-throwing Swift function is
//! fatal), and every body runs under [`guarded`], so a panic comes back as
//! [`TokenVaultError::Internal`] — proven by [`debug_trigger_panic`]. Secrets cross as plain
//! strings (the foreign side cannot do better); they are never in a `Debug` output or an
//! error message.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokenvault as tv;

/// The Result of every fallible export.
type Result<T, E = TokenVaultError> = std::result::Result<T, E>;

/// Run an export's body through the one panic boundary ([`crate::boundary::catch`]): core
/// errors become [`TokenVaultError`], panics [`TokenVaultError::Internal`].
fn guarded<T>(body: impl FnOnce() -> tv::Result<T>) -> Result<T> {
    crate::boundary::catch(body).map_err(TokenVaultError::from)
}

/// Records that hold a secret or an account id print redacted everywhere: `Display` is the
/// redacted `Debug`, so Python's `str()` and Swift's `description` show what `repr()`,
/// `debugDescription` and Kotlin's `toString()` show.
macro_rules! display_as_debug {
    ($($t:ty),* $(,)?) => {
        $(impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        })*
    };
}

display_as_debug!(
    AccessToken,
    NewSession,
    SessionInfo,
    HttpHeader,
    HttpRequest,
    HttpResponse,
    RefreshStep,
    VaultEvent,
    PendingRevocation,
    RevocationQueue,
);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// ----- errors ---------------------------------------------------------------------------------

/// Every failure of a vault operation. Each variant carries `code`, the stable number of
/// `tokenvault::ErrorCode` (the same as the C ABI's `tv_status`), and `reason`, a message that
/// never contains a token, a key or an account id.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Error)]
pub enum TokenVaultError {
    /// The refresh credential was refused: the user must sign in again. Code 1.
    ReauthenticationRequired { code: i32, reason: String },
    /// Network failure, timeout, 408, 5xx, captive portal: try again later. Code 2.
    Transient { code: i32, reason: String },
    /// The server throttled us (429); `retry_after_ms` is its `Retry-After`, if any. Code 3.
    Throttled {
        code: i32,
        retry_after_ms: Option<u64>,
        reason: String,
    },
    /// The database could not be opened, locked or written. Code 4.
    StorageUnavailable { code: i32, reason: String },
    /// The key or passphrase does not open this vault; nothing was written. Code 5.
    WrongKey { code: i32, reason: String },
    /// A record or the file failed its integrity check; nothing was altered. Code 6.
    Corrupt { code: i32, reason: String },
    /// No session is stored for that account. Code 7.
    NotFound { code: i32, reason: String },
    /// Invalid input (bad profile, empty token, key of the wrong length...). Code 8.
    InvalidInput { code: i32, reason: String },
    /// The server's answer could not be interpreted. Code 9.
    Protocol { code: i32, reason: String },
    /// A bug: a broken invariant or a caught panic. Code 10.
    Internal { code: i32, reason: String },
    /// The file was written by a newer tokenvault; it was left untouched. Code 11.
    SchemaTooNew {
        code: i32,
        found: i64,
        supported: i64,
        reason: String,
    },
    /// An earlier refresh's answer was lost; the server may have consumed the credential. Code 12.
    RefreshOutcomeUnknown { code: i32, reason: String },
    /// The vault was closed. Code 13.
    Closed { code: i32, reason: String },
}

impl TokenVaultError {
    /// The stable numeric code (`tokenvault::ErrorCode`).
    #[cfg(test)]
    fn code(&self) -> i32 {
        match self {
            TokenVaultError::ReauthenticationRequired { code, .. }
            | TokenVaultError::Transient { code, .. }
            | TokenVaultError::Throttled { code, .. }
            | TokenVaultError::StorageUnavailable { code, .. }
            | TokenVaultError::WrongKey { code, .. }
            | TokenVaultError::Corrupt { code, .. }
            | TokenVaultError::NotFound { code, .. }
            | TokenVaultError::InvalidInput { code, .. }
            | TokenVaultError::Protocol { code, .. }
            | TokenVaultError::Internal { code, .. }
            | TokenVaultError::SchemaTooNew { code, .. }
            | TokenVaultError::RefreshOutcomeUnknown { code, .. }
            | TokenVaultError::Closed { code, .. } => *code,
        }
    }

    fn reason(&self) -> &str {
        match self {
            TokenVaultError::ReauthenticationRequired { reason, .. }
            | TokenVaultError::Transient { reason, .. }
            | TokenVaultError::Throttled { reason, .. }
            | TokenVaultError::StorageUnavailable { reason, .. }
            | TokenVaultError::WrongKey { reason, .. }
            | TokenVaultError::Corrupt { reason, .. }
            | TokenVaultError::NotFound { reason, .. }
            | TokenVaultError::InvalidInput { reason, .. }
            | TokenVaultError::Protocol { reason, .. }
            | TokenVaultError::Internal { reason, .. }
            | TokenVaultError::SchemaTooNew { reason, .. }
            | TokenVaultError::RefreshOutcomeUnknown { reason, .. }
            | TokenVaultError::Closed { reason, .. } => reason,
        }
    }
}

impl fmt::Display for TokenVaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for TokenVaultError {}

/// The one conversion point from the core's error: the code comes from
/// [`tv::VaultError::code`], the reason from its `Display` (which the core keeps free of
/// secrets).
impl From<tv::VaultError> for TokenVaultError {
    fn from(err: tv::VaultError) -> Self {
        use tv::VaultError as E;
        let code = err.code().as_i32();
        let reason = err.to_string();
        match err {
            E::ReauthenticationRequired { .. } => TokenVaultError::ReauthenticationRequired { code, reason },
            E::Transient { .. } => TokenVaultError::Transient { code, reason },
            E::Throttled { retry_after } => TokenVaultError::Throttled {
                code,
                retry_after_ms: retry_after.map(millis),
                reason,
            },
            E::StorageUnavailable { .. } => TokenVaultError::StorageUnavailable { code, reason },
            E::WrongKey => TokenVaultError::WrongKey { code, reason },
            E::Corrupt { .. } => TokenVaultError::Corrupt { code, reason },
            E::NotFound => TokenVaultError::NotFound { code, reason },
            E::InvalidInput { .. } => TokenVaultError::InvalidInput { code, reason },
            E::Protocol { .. } => TokenVaultError::Protocol { code, reason },
            E::Internal { .. } => TokenVaultError::Internal { code, reason },
            E::SchemaTooNew { found, supported } => TokenVaultError::SchemaTooNew {
                code,
                found,
                supported,
                reason,
            },
            E::RefreshOutcomeUnknown { .. } => TokenVaultError::RefreshOutcomeUnknown { code, reason },
            E::Closed => TokenVaultError::Closed { code, reason },
            // A variant added to the core later: its code still crosses, with its message.
            _ => TokenVaultError::Internal { code, reason },
        }
    }
}

/// Why a host transport could not produce a response. Every kind is transient for the session;
/// `Io`, `Timeout` and `TooLarge` also say the request may have reached the server.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Error)]
pub enum TransportError {
    /// No answer in time.
    Timeout { reason: String },
    /// Could not connect (DNS, refused, unreachable, TLS handshake).
    Connect { reason: String },
    /// The connection broke mid-exchange (the request may have reached the server).
    Io { reason: String },
    /// The response was larger than the request's `max_response_bytes`.
    TooLarge { reason: String },
    /// Anything else (also: an unexpected exception thrown by the host's transport).
    Other { reason: String },
    /// The server's certificate chain matched none of the request's `pins`; nothing of the
    /// request was sent.
    CertificatePin { reason: String },
    /// The URL is plain `http://` and the request's `allow_plain_http` is false; nothing was
    /// sent.
    InsecureScheme { reason: String },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, reason) = self.parts();
        write!(f, "{kind:?}: {reason}")
    }
}

impl std::error::Error for TransportError {}

impl TransportError {
    fn parts(&self) -> (tv::TransportErrorKind, &str) {
        use tv::TransportErrorKind as K;
        match self {
            TransportError::Timeout { reason } => (K::Timeout, reason),
            TransportError::Connect { reason } => (K::Connect, reason),
            TransportError::Io { reason } => (K::Io, reason),
            TransportError::TooLarge { reason } => (K::TooLarge, reason),
            TransportError::Other { reason } => (K::Other, reason),
            TransportError::CertificatePin { reason } => (K::CertificatePin, reason),
            TransportError::InsecureScheme { reason } => (K::InsecureScheme, reason),
        }
    }

    fn into_core(self) -> tv::TransportError {
        let (kind, reason) = self.parts();
        // The host wrote this text; keep it short so a careless host cannot flood the logs.
        tv::TransportError::new(kind, reason.chars().take(200).collect::<String>())
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for TransportError {
    fn from(_: uniffi::UnexpectedUniFFICallbackError) -> Self {
        // The exception's text (a stack trace) could quote the request: drop it.
        TransportError::Other {
            reason: "the host transport threw an unexpected exception".to_owned(),
        }
    }
}

// ----- records and enums ----------------------------------------------------------------------

/// A valid access token and the generation of the stored pair it belongs to.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct AccessToken {
    /// The token text, e.g. for an `Authorization: Bearer` header.
    pub token: String,
    /// Increases with every refresh and every store; report a 401 with the token to
    /// [`TokenVault::report_rejected`].
    pub generation: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AccessToken(<redacted, {} bytes>, generation {})",
            self.token.len(),
            self.generation
        )
    }
}

impl From<&tv::AccessToken> for AccessToken {
    fn from(t: &tv::AccessToken) -> Self {
        AccessToken {
            token: t.expose().to_owned(),
            generation: t.generation(),
        }
    }
}

/// A session as the app hands it over after its own sign-in.
#[derive(Clone, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct NewSession {
    /// The app's account id (never shown in errors or logs).
    pub account: String,
    /// The name of a registered profile (see [`TokenVault::load_profile_json`]).
    pub profile: String,
    /// The access token from the login response.
    pub access_token: String,
    /// The refresh token (or, for entity-token dialects, the entity token).
    #[uniffi(default = None)]
    pub refresh_credential: Option<String>,
    /// The login response's `expires_in`, in seconds; without it (or `0`) the JWT `exp`, then
    /// the profile's default lifetime.
    #[uniffi(default = None)]
    pub expires_in_secs: Option<u64>,
    /// How long the refresh credential lives, in seconds, if known (`0`: not known).
    #[uniffi(default = None)]
    pub refresh_expires_in_secs: Option<u64>,
    /// The refresh credential never expires by time (an OAuth2 offline token).
    #[uniffi(default = false)]
    pub offline: bool,
    /// The token type (`Bearer`).
    #[uniffi(default = None)]
    pub token_type: Option<String>,
    /// The granted scope.
    #[uniffi(default = None)]
    pub scope: Option<String>,
    /// Non-secret hints to show on a re-login screen (display name, avatar URL...).
    #[uniffi(default)]
    pub hints: HashMap<String, String>,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("account", &"<redacted>")
            .field("profile", &self.profile)
            .field("access_token", &"<redacted>")
            .field("has_refresh_credential", &self.refresh_credential.is_some())
            .finish_non_exhaustive()
    }
}

impl NewSession {
    fn into_core(self) -> tv::NewSession {
        let mut s = tv::NewSession::new(self.account, self.profile, self.access_token).offline(self.offline);
        if let Some(c) = self.refresh_credential {
            s = s.refresh_credential(c);
        }
        if let Some(secs) = self.expires_in_secs {
            s = s.expires_in_secs(i64::try_from(secs).unwrap_or(i64::MAX));
        }
        if let Some(secs) = self.refresh_expires_in_secs {
            s = s.refresh_expires_in_secs(i64::try_from(secs).unwrap_or(i64::MAX));
        }
        if let Some(t) = self.token_type {
            s = s.token_type(t);
        }
        if let Some(scope) = self.scope {
            s = s.scope(scope);
        }
        for (k, v) in self.hints {
            s = s.hint(k, v);
        }
        s
    }
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SessionState {
    /// The access token is valid and not yet due for refresh.
    Fresh,
    /// The access token is valid but past its refresh point.
    RefreshDue,
    /// The access token has expired; the next read refreshes it.
    Expired,
    /// The server refused the refresh credential: the user must sign in again.
    ReauthenticationRequired,
}

impl From<tv::SessionState> for SessionState {
    fn from(s: tv::SessionState) -> Self {
        match s {
            tv::SessionState::Fresh => SessionState::Fresh,
            tv::SessionState::RefreshDue => SessionState::RefreshDue,
            tv::SessionState::Expired => SessionState::Expired,
            tv::SessionState::ReauthenticationRequired => SessionState::ReauthenticationRequired,
        }
    }
}

/// The most recent failed refresh, kept to make staleness visible.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RefreshFailure {
    /// Its stable code (`tokenvault::ErrorCode`).
    pub code: i32,
    /// Its message (no secrets).
    pub message: String,
    /// How long ago it happened, in ms.
    pub ago_ms: u64,
}

/// A session without its secrets.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct SessionInfo {
    /// The app's account id.
    pub account: String,
    /// The profile it refreshes with.
    pub profile: String,
    /// The generation of the stored pair.
    pub generation: u64,
    /// Where it stands.
    pub state: SessionState,
    /// Token type.
    pub token_type: Option<String>,
    /// Granted scope.
    pub scope: Option<String>,
    /// Server time the access token was issued (ms since the epoch).
    pub issued_at_ms: i64,
    /// Server time the access token expires (ms since the epoch).
    pub access_expires_at_ms: i64,
    /// Time left on the access token, in ms (negative once expired).
    pub access_remaining_ms: i64,
    /// Server time the session (the refresh credential) ends, if known.
    pub session_expires_at_ms: Option<i64>,
    /// Forecast: time left before the user must sign in again, if known.
    pub session_remaining_ms: Option<i64>,
    /// True for refresh credentials that never expire by time.
    pub offline: bool,
    /// server − device clock, in ms, as last measured.
    pub clock_offset_ms: i64,
    /// How many refreshes this session went through.
    pub refresh_count: u64,
    /// The last failed refresh since the last success, if any.
    pub last_refresh_failure: Option<RefreshFailure>,
    /// Whether a refresh credential is stored.
    pub has_refresh_credential: bool,
    /// Non-secret hints stored with the session.
    pub hints: HashMap<String, String>,
    /// The standard claims of the session's last validated OpenID Connect id_token, if its
    /// profile has an `oidc` section and a refresh brought one.
    pub identity: Option<Arc<IdentityClaims>>,
}

/// The standard claims of a validated OpenID Connect id_token (profiles with an `oidc` section),
/// read through methods. Never the id_token itself. Personal data: an object, not a record, so
/// that `toString()` / `str()` / `repr()` print the Rust `Debug` form — the issuer and which
/// claims are present, never their values.
#[derive(PartialEq, Eq, uniffi::Object)]
#[uniffi::export(Debug, Display, Eq)]
pub struct IdentityClaims(tv::IdentityClaims);

impl fmt::Debug for IdentityClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for IdentityClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[uniffi::export]
impl IdentityClaims {
    /// Issuer (`iss`).
    pub fn iss(&self) -> String {
        self.0.iss.clone()
    }

    /// Subject (`sub`): the user's stable id at the issuer.
    pub fn sub(&self) -> String {
        self.0.sub.clone()
    }

    /// When the id_token was issued (`iat`, seconds since the epoch, server time).
    pub fn iat(&self) -> i64 {
        self.0.iat
    }

    /// When the user authenticated (`auth_time`), if the issuer says.
    pub fn auth_time(&self) -> Option<i64> {
        self.0.auth_time
    }

    /// Authorized party (`azp`), if present.
    pub fn azp(&self) -> Option<String> {
        self.0.azp.clone()
    }

    /// `name`.
    pub fn name(&self) -> Option<String> {
        self.0.name.clone()
    }

    /// `given_name`.
    pub fn given_name(&self) -> Option<String> {
        self.0.given_name.clone()
    }

    /// `family_name`.
    pub fn family_name(&self) -> Option<String> {
        self.0.family_name.clone()
    }

    /// `middle_name`.
    pub fn middle_name(&self) -> Option<String> {
        self.0.middle_name.clone()
    }

    /// `nickname`.
    pub fn nickname(&self) -> Option<String> {
        self.0.nickname.clone()
    }

    /// `preferred_username`.
    pub fn preferred_username(&self) -> Option<String> {
        self.0.preferred_username.clone()
    }

    /// `profile`.
    pub fn profile(&self) -> Option<String> {
        self.0.profile.clone()
    }

    /// `picture`.
    pub fn picture(&self) -> Option<String> {
        self.0.picture.clone()
    }

    /// `website`.
    pub fn website(&self) -> Option<String> {
        self.0.website.clone()
    }

    /// `email`.
    pub fn email(&self) -> Option<String> {
        self.0.email.clone()
    }

    /// `email_verified`.
    pub fn email_verified(&self) -> Option<bool> {
        self.0.email_verified
    }

    /// `gender`.
    pub fn gender(&self) -> Option<String> {
        self.0.gender.clone()
    }

    /// `birthdate`.
    pub fn birthdate(&self) -> Option<String> {
        self.0.birthdate.clone()
    }

    /// `zoneinfo`.
    pub fn zoneinfo(&self) -> Option<String> {
        self.0.zoneinfo.clone()
    }

    /// `locale`.
    pub fn locale(&self) -> Option<String> {
        self.0.locale.clone()
    }

    /// `phone_number`.
    pub fn phone_number(&self) -> Option<String> {
        self.0.phone_number.clone()
    }

    /// `phone_number_verified`.
    pub fn phone_number_verified(&self) -> Option<bool> {
        self.0.phone_number_verified
    }

    /// `updated_at`.
    pub fn updated_at(&self) -> Option<i64> {
        self.0.updated_at
    }
}

impl fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionInfo")
            .field("account", &"<redacted>")
            .field("profile", &self.profile)
            .field("generation", &self.generation)
            .field("state", &self.state)
            .field("access_remaining_ms", &self.access_remaining_ms)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl From<tv::SessionInfo> for SessionInfo {
    fn from(i: tv::SessionInfo) -> Self {
        SessionInfo {
            account: i.account,
            profile: i.profile,
            generation: i.generation,
            state: i.state.into(),
            token_type: i.token_type,
            scope: i.scope,
            issued_at_ms: i.issued_at_ms,
            access_expires_at_ms: i.access_expires_at_ms,
            access_remaining_ms: i.access_remaining_ms,
            session_expires_at_ms: i.session_expires_at_ms,
            session_remaining_ms: i.session_remaining_ms,
            offline: i.offline,
            clock_offset_ms: i.clock_offset_ms,
            refresh_count: i.refresh_count,
            last_refresh_failure: i.last_refresh_failure.map(|f| RefreshFailure {
                code: f.code.as_i32(),
                message: f.message,
                ago_ms: f.ago_ms,
            }),
            has_refresh_credential: i.has_refresh_credential,
            hints: i.hints.into_iter().collect(),
            identity: i.identity.map(|c| Arc::new(IdentityClaims(c))),
        }
    }
}

/// An HTTP header. The value may be secret (`Authorization`).
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct HttpHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

impl fmt::Debug for HttpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: <redacted>", self.name)
    }
}

/// A refresh request to send. Its headers and body contain credentials: never log them.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct HttpRequest {
    /// `POST` (or `PUT`).
    pub method: String,
    /// Absolute http(s) URL.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<HttpHeader>,
    /// The body bytes.
    pub body: Vec<u8>,
    /// Give up after this many milliseconds.
    pub timeout_ms: u64,
    /// Refuse (as [`TransportError::TooLarge`]) response bodies larger than this.
    pub max_response_bytes: u64,
    /// Whether the request may travel over plain `http://` (a loopback endpoint, or a profile
    /// with `allow_http`). When false, refuse an `http://` URL with
    /// [`TransportError::InsecureScheme`] before connecting.
    pub allow_plain_http: bool,
    /// Certificate pins, each `sha256/<base64 of the SHA-256 of the DER SubjectPublicKeyInfo>`
    /// (OkHttp's `CertificatePinner` form). When not empty, besides normal certificate
    /// validation, some certificate of the chain the server presents must match one, or
    /// nothing of the request may be sent ([`TransportError::CertificatePin`]).
    pub pins: Vec<String>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &format_args!("<redacted, {} bytes>", self.body.len()))
            .field("timeout_ms", &self.timeout_ms)
            .field("allow_plain_http", &self.allow_plain_http)
            .field("pins", &self.pins)
            .finish()
    }
}

impl From<&tv::HttpRequest> for HttpRequest {
    fn from(r: &tv::HttpRequest) -> Self {
        HttpRequest {
            method: r.method.clone(),
            url: r.url.clone(),
            headers: r
                .headers
                .iter()
                .map(|h| HttpHeader {
                    name: h.name.clone(),
                    value: h.value.expose().to_owned(),
                })
                .collect(),
            body: r.body.clone(),
            timeout_ms: millis(r.timeout),
            max_response_bytes: u64::try_from(r.max_response_bytes).unwrap_or(u64::MAX),
            allow_plain_http: r.allow_plain_http,
            pins: r.pins.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The server's response, as the host's HTTP client received it (redirects not followed).
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers (names in any case).
    pub headers: Vec<HttpHeader>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body", &format_args!("<redacted, {} bytes>", self.body.len()))
            .finish_non_exhaustive()
    }
}

impl HttpResponse {
    fn into_core(self) -> tv::HttpResponse {
        tv::HttpResponse::new(
            self.status,
            self.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            self.body,
        )
    }
}

/// The result of [`TokenVault::begin_refresh`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
#[uniffi::export(Debug, Display)]
pub enum RefreshStep {
    /// No refresh is needed (or a peer already did it): here is a valid token.
    Fresh { token: AccessToken },
    /// Another refresh of this account is in flight; read the token again later.
    InFlight,
    /// Send `request`, then hand the response to [`TokenVault::finish_refresh`] (or a network
    /// failure to [`TokenVault::fail_refresh`]) with this `attempt`.
    Send { attempt: u64, request: HttpRequest },
}

/// Something the app may want to react to, delivered on the vault's event thread.
#[derive(Clone, PartialEq, Eq, uniffi::Enum)]
#[uniffi::export(Debug, Display)]
pub enum VaultEvent {
    /// A refresh stored a new pair.
    TokenRefreshed {
        account: String,
        generation: u64,
        access_remaining_ms: i64,
        session_remaining_ms: Option<i64>,
    },
    /// The server refused the refresh credential: the user must sign in again.
    SessionExpired { account: String, reason: String },
    /// The session was removed (logout).
    SessionRemoved { account: String },
}

impl fmt::Debug for VaultEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultEvent::TokenRefreshed { generation, .. } => write!(f, "TokenRefreshed(generation {generation})"),
            VaultEvent::SessionExpired { reason, .. } => write!(f, "SessionExpired({reason:?})"),
            VaultEvent::SessionRemoved { .. } => f.write_str("SessionRemoved"),
        }
    }
}

impl From<&tv::VaultEvent> for VaultEvent {
    fn from(e: &tv::VaultEvent) -> Self {
        match e {
            tv::VaultEvent::TokenRefreshed {
                account,
                generation,
                access_remaining_ms,
                session_remaining_ms,
            } => VaultEvent::TokenRefreshed {
                account: account.clone(),
                generation: *generation,
                access_remaining_ms: *access_remaining_ms,
                session_remaining_ms: *session_remaining_ms,
            },
            tv::VaultEvent::SessionExpired { account, reason } => VaultEvent::SessionExpired {
                account: account.clone(),
                reason: reason.clone(),
            },
            tv::VaultEvent::SessionRemoved { account } => VaultEvent::SessionRemoved {
                account: account.clone(),
            },
        }
    }
}

/// The built-in refresh dialects (see the profile documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Preset {
    /// Seed 000: entity token + envelope.
    EntityTokenEnvelope,
    /// Seed 001: rotating refresh token, `{success, data}` envelope.
    RotatingSuccessEnvelope,
    /// Seed 002: `Authorization: Bearer`, `Version: 2.0`, rotating refresh token.
    RotatingBearerVersioned,
    /// Seed 003: Keycloak's token endpoint.
    Keycloak,
    /// Plain RFC 6749 §6.
    Oauth2,
}

impl From<Preset> for tv::Preset {
    fn from(p: Preset) -> Self {
        match p {
            Preset::EntityTokenEnvelope => tv::Preset::EntityTokenEnvelope,
            Preset::RotatingSuccessEnvelope => tv::Preset::RotatingSuccessEnvelope,
            Preset::RotatingBearerVersioned => tv::Preset::RotatingBearerVersioned,
            Preset::Keycloak => tv::Preset::Keycloak,
            Preset::Oauth2 => tv::Preset::OAuth2,
        }
    }
}

/// Options for opening a vault. Every field is optional: `None` keeps the library's default. A
/// value out of range fails the open with `InvalidInput`, before any file is touched.
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct OpenOptions {
    /// Fraction of the access token's lifetime after which it is refreshed proactively
    /// (0.05..=0.95; default 0.75).
    #[uniffi(default = None)]
    pub refresh_point: Option<f64>,
    /// Spread around the refresh point, as a fraction of the lifetime (0..=0.2; default 0.05).
    #[uniffi(default = None)]
    pub jitter: Option<f64>,
    /// The largest share of a token's lifetime a caller's minimum TTL may demand (0.05..=0.9;
    /// default 0.5).
    #[uniffi(default = None)]
    pub min_ttl_cap: Option<f64>,
    /// A token counts as expired this long before its `exp`, in ms (at most one hour; default
    /// 5,000; capped at 10 % of the token's lifetime).
    #[uniffi(default = None)]
    pub expiry_margin_ms: Option<u64>,
    /// How long to wait for another process's write lock on the file, in ms (at most 10
    /// minutes; default 5,000).
    #[uniffi(default = None)]
    pub busy_timeout_ms: Option<u64>,
}

impl OpenOptions {
    fn into_core(self) -> tv::VaultOptions {
        tv::VaultOptions::default().tuned(&tv::Tuning {
            refresh_point: self.refresh_point,
            jitter: self.jitter,
            min_ttl_cap: self.min_ttl_cap,
            expiry_margin_ms: self.expiry_margin_ms,
            busy_timeout_ms: self.busy_timeout_ms,
        })
    }
}

/// A revocation waiting to be sent.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct PendingRevocation {
    /// The account whose session was removed.
    pub account: String,
    /// The profile that knows the revocation endpoint.
    pub profile: String,
    /// When it was queued (device time, ms since the epoch).
    pub queued_at_ms: i64,
    /// Attempts that failed so far.
    pub attempts: u32,
}

impl fmt::Debug for PendingRevocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingRevocation")
            .field("account", &"<redacted>")
            .field("profile", &self.profile)
            .field("queued_at_ms", &self.queued_at_ms)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// The revocation queue.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct RevocationQueue {
    /// Waiting to be sent, oldest first.
    pub pending: Vec<PendingRevocation>,
    /// Revocations ever dropped because the queue was full.
    pub dropped: u64,
}

/// What one pass over the revocation queue did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RevocationReport {
    /// Confirmed by the server.
    pub revoked: u64,
    /// Refused by the server (a 4xx): dropped.
    pub refused: u64,
    /// Not sent or not answered: still queued.
    pub retry_later: u64,
    /// Their profile is not registered: still queued.
    pub waiting_for_profile: u64,
}

/// Failed refresh attempts of one error code.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FailureCount {
    /// The stable code (as `TokenVaultError`'s `code`).
    pub code: i32,
    /// Its name (`"transient"`, ...).
    pub name: String,
    /// How many attempts failed with it.
    pub count: u64,
}

/// What a vault did since it was opened ([`TokenVault::metrics`]). Counts only: no token, no
/// account id.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VaultMetrics {
    /// Reads answered from the cache without any refresh or file access.
    pub cached_hits: u64,
    /// Refresh requests the vault built to send (blocking and two-step).
    pub refreshes_started: u64,
    /// Attempts that ended with a stored pair.
    pub refreshes_succeeded: u64,
    /// Attempts that ended with an error, all codes together.
    pub refreshes_failed: u64,
    /// The same, by error code (codes that never occurred are left out).
    pub refreshes_failed_by_code: Vec<FailureCount>,
    /// Callers that waited for a refresh already in flight in this vault.
    pub single_flight_joins: u64,
    /// Times the account's cross-process refresh lock was held by a peer.
    pub lock_waits: u64,
    /// Times this vault refreshed after waiting for a peer that left no new pair.
    pub lock_takeovers: u64,
    /// Attempts that found an earlier attempt's lost-answer marker.
    pub lost_answer_markers: u64,
    /// Requests that went through the transport.
    pub transport_requests: u64,
    /// Median transport latency over the last 1,024 requests, in µs; `None` before any.
    pub transport_latency_p50_us: Option<u64>,
    /// 99th percentile of the same window, in µs.
    pub transport_latency_p99_us: Option<u64>,
    /// Response body bytes received.
    pub response_bytes: u64,
}

impl From<tv::VaultMetrics> for VaultMetrics {
    fn from(m: tv::VaultMetrics) -> Self {
        VaultMetrics {
            cached_hits: m.cached_hits,
            refreshes_started: m.refreshes_started,
            refreshes_succeeded: m.refreshes_succeeded,
            refreshes_failed: m.refreshes_failed_total(),
            refreshes_failed_by_code: m
                .refreshes_failed
                .iter()
                .map(|(code, count)| FailureCount {
                    code: code.as_i32(),
                    name: code.name().to_owned(),
                    count: *count,
                })
                .collect(),
            single_flight_joins: m.single_flight_joins,
            lock_waits: m.lock_waits,
            lock_takeovers: m.lock_takeovers,
            lost_answer_markers: m.lost_answer_markers,
            transport_requests: m.transport_requests,
            transport_latency_p50_us: m.transport_latency_p50_us,
            transport_latency_p99_us: m.transport_latency_p99_us,
            response_bytes: m.response_bytes,
        }
    }
}

/// Log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    /// Errors.
    Error,
    /// Warnings: something the app may want to look at.
    Warn,
    /// A session ended, a refresh failed, a vault was created.
    Info,
    /// Each refresh step.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    fn filter(self) -> tv::LogLevelFilter {
        match self {
            LogLevel::Error => tv::LogLevelFilter::Error,
            LogLevel::Warn => tv::LogLevelFilter::Warn,
            LogLevel::Info => tv::LogLevelFilter::Info,
            LogLevel::Debug => tv::LogLevelFilter::Debug,
            LogLevel::Trace => tv::LogLevelFilter::Trace,
        }
    }

    fn from_core(level: tv::LogLevel) -> LogLevel {
        match level {
            tv::LogLevel::Error => LogLevel::Error,
            tv::LogLevel::Warn => LogLevel::Warn,
            tv::LogLevel::Info => LogLevel::Info,
            tv::LogLevel::Debug => LogLevel::Debug,
            tv::LogLevel::Trace => LogLevel::Trace,
        }
    }
}

// ----- callback interfaces --------------------------------------------------------------------

/// The app's own HTTP client (OkHttp, `java.net.http`, URLSession, requests...), used by
/// blocking refreshes instead of the built-in one. Called on the thread that needs the refresh,
/// possibly from several threads at once (for different accounts), with no vault lock held.
/// It must honour `timeout_ms` and `max_response_bytes`, refuse plain `http://` unless
/// `allow_plain_http` ([`TransportError::InsecureScheme`]), and enforce `pins` when there are
/// any ([`TransportError::CertificatePin`]), before sending anything.
///
/// It must not follow redirects, and most clients do by default: a 307/308 resends the body,
/// with the refresh credential, to wherever `Location` points. OkHttp:
/// `followRedirects(false)` and `followSslRedirects(false)`. URLSession: a delegate whose
/// `urlSession(_:task:willPerformHTTPRedirection:newRequest:completionHandler:)` calls
/// `completionHandler(nil)`. `java.net.http`: `followRedirects(HttpClient.Redirect.NEVER)`.
/// Python `requests`: `allow_redirects=False`; urllib: an `HTTPRedirectHandler` whose
/// `redirect_request` returns `None`. Return the 3xx as the response: the vault treats it as a
/// transient failure and stores nothing. The same holds for a request from `begin_refresh`.
#[uniffi::export(callback_interface)]
pub trait HttpTransport: Send + Sync {
    /// Send `request` and return the response, or the reason there is none.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// Receives [`VaultEvent`]s, in order, on the vault's event thread (never on the thread that
/// caused them, never under a vault lock: calling back into the vault is safe).
#[uniffi::export(callback_interface)]
pub trait VaultObserver: Send + Sync {
    /// Called once per event.
    fn on_event(&self, event: VaultEvent);
}

/// A counter the app keeps outside the vault file (the Keychain, Keystore-backed preferences, a
/// file of its choosing), so that an old copy of the whole vault file is recognised at open
/// (`Corrupt`). `store` is called after every write with the store locked: keep it quick.
#[uniffi::export(callback_interface)]
pub trait StateAnchor: Send + Sync {
    /// The counter last stored, or `None` if none was ever stored (a new install).
    fn load(&self) -> Result<Option<u64>, AnchorError>;
    /// Keep `counter` (it only grows).
    fn store(&self, counter: u64) -> Result<(), AnchorError>;
}

/// Receives the vault's log lines (route them to Logcat, `os_log`, `logging`...). Called on
/// whichever thread logs, possibly while the vault holds internal locks: return quickly and
/// never call into a vault from it. No line holds a token, a key or an account id.
#[uniffi::export(callback_interface)]
pub trait LogListener: Send + Sync {
    /// One line: its level, its target (the module) and the message.
    fn on_log(&self, level: LogLevel, target: String, message: String);
}

struct ListenerSink(Box<dyn LogListener>);

impl tv::LogSink for ListenerSink {
    fn log(&self, level: tv::LogLevel, target: &str, message: &str) {
        self.0
            .on_log(LogLevel::from_core(level), target.to_owned(), message.to_owned());
    }
}

/// Route the vault's log lines at `max_level` and above to `listener`, replacing any listener
/// set before; `None` stops the routing. Process-wide: every vault logs to it. Only the vault's
/// own lines are routed (not those of the TLS and HTTP libraries underneath).
#[uniffi::export(default(listener = None))]
pub fn set_log_listener(max_level: LogLevel, listener: Option<Box<dyn LogListener>>) -> Result<()> {
    guarded(|| {
        let sink = listener.map(|l| Arc::new(ListenerSink(l)) as Arc<dyn tv::LogSink>);
        tv::set_log_sink(max_level.filter(), sink)
    })
}

/// Why the app's [`StateAnchor`] failed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Error)]
pub enum AnchorError {
    /// The anchor could not be read or written.
    Failed { reason: String },
}

impl fmt::Display for AnchorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AnchorError::Failed { reason } = self;
        write!(f, "host anchor failed: {reason}")
    }
}

impl std::error::Error for AnchorError {}

impl From<uniffi::UnexpectedUniFFICallbackError> for AnchorError {
    fn from(_: uniffi::UnexpectedUniFFICallbackError) -> Self {
        AnchorError::Failed {
            reason: "the host anchor threw an unexpected exception".to_owned(),
        }
    }
}

/// Adapts a host [`StateAnchor`] to the core's.
struct ForeignAnchor(Box<dyn StateAnchor>);

impl fmt::Debug for ForeignAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForeignAnchor")
    }
}

impl ForeignAnchor {
    fn failed(what: &str) -> tv::VaultError {
        tv::VaultError::StorageUnavailable {
            reason: format!("the host anchor could not be {what}"),
        }
    }
}

impl tv::StateAnchor for ForeignAnchor {
    fn load(&self) -> tv::Result<Option<u64>> {
        match catch_unwind(AssertUnwindSafe(|| self.0.load())) {
            Ok(Ok(v)) => Ok(v),
            _ => Err(Self::failed("read")),
        }
    }

    fn store(&self, counter: u64) -> tv::Result<()> {
        match catch_unwind(AssertUnwindSafe(|| self.0.store(counter))) {
            Ok(Ok(())) => Ok(()),
            _ => Err(Self::failed("written")),
        }
    }
}

/// Adapts a host [`HttpTransport`] to the core's [`tv::Transport`].
struct ForeignTransport(Box<dyn HttpTransport>);

impl fmt::Debug for ForeignTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForeignTransport")
    }
}

impl tv::Transport for ForeignTransport {
    fn send(&self, request: &tv::HttpRequest) -> Result<tv::HttpResponse, tv::TransportError> {
        // The size cap, like every rule, is the core's: it refuses an oversized body when it
        // reads the response.
        let sent = catch_unwind(AssertUnwindSafe(|| self.0.send(HttpRequest::from(request))));
        match sent {
            Ok(Ok(response)) => Ok(response.into_core()),
            Ok(Err(failure)) => Err(failure.into_core()),
            Err(_) => Err(tv::TransportError::new(
                tv::TransportErrorKind::Other,
                "the host transport failed unexpectedly",
            )),
        }
    }
}

/// Adapts a host [`VaultObserver`] to the core's [`tv::VaultObserver`].
struct ForeignObserver(Box<dyn VaultObserver>);

impl tv::VaultObserver for ForeignObserver {
    fn on_event(&self, event: &tv::VaultEvent) {
        // The core's event thread catches a panic here (e.g. an exception thrown by the host's
        // listener) and goes on with the next event.
        self.0.on_event(VaultEvent::from(event));
    }
}

// ----- the vault object -----------------------------------------------------------------------

/// An encrypted, single-flight token vault over one SQLite file. Thread-safe: share one
/// instance across the app. Call [`close`](Self::close) when done; later calls fail with
/// [`TokenVaultError::Closed`].
#[derive(Debug, uniffi::Object)]
pub struct TokenVault {
    vault: Arc<tv::Vault>,
}

#[uniffi::export]
impl TokenVault {
    /// Open (or create) the vault at `path` with a 32-byte key from the platform's secure
    /// storage (Keychain, Android Keystore...). A wrong key fails with `WrongKey` and writes
    /// nothing.
    #[uniffi::constructor(default(options = None))]
    pub fn open_with_key(path: String, key: Vec<u8>, options: Option<OpenOptions>) -> Result<Arc<Self>> {
        let key = zeroize::Zeroizing::new(key);
        guarded(|| {
            let key = tv::KeySource::raw(&key)?;
            TokenVault::open(&path, key, options)
        })
    }

    /// [`open_with_key`](Self::open_with_key) with a host anchor: an old copy of the whole
    /// file (a restored backup) is refused with `Corrupt`, the file left as it was.
    #[uniffi::constructor(default(options = None))]
    pub fn open_with_key_anchored(
        path: String,
        key: Vec<u8>,
        anchor: Box<dyn StateAnchor>,
        options: Option<OpenOptions>,
    ) -> Result<Arc<Self>> {
        guarded(|| {
            let key = tv::KeySource::raw(&key)?;
            TokenVault::open_anchored(&path, key, options, Some(Arc::new(ForeignAnchor(anchor))))
        })
    }

    /// [`open_with_passphrase`](Self::open_with_passphrase) with a host anchor.
    #[uniffi::constructor(default(options = None))]
    pub fn open_with_passphrase_anchored(
        path: String,
        passphrase: String,
        anchor: Box<dyn StateAnchor>,
        options: Option<OpenOptions>,
    ) -> Result<Arc<Self>> {
        guarded(|| {
            let key = tv::KeySource::passphrase(&passphrase)?;
            TokenVault::open_anchored(&path, key, options, Some(Arc::new(ForeignAnchor(anchor))))
        })
    }

    /// Open (or create) the vault at `path` with a passphrase (stretched with Argon2id).
    #[uniffi::constructor(default(options = None))]
    pub fn open_with_passphrase(path: String, passphrase: String, options: Option<OpenOptions>) -> Result<Arc<Self>> {
        let passphrase = zeroize::Zeroizing::new(passphrase);
        guarded(|| {
            let key = tv::KeySource::passphrase(&passphrase)?;
            TokenVault::open(&path, key, options)
        })
    }

    /// Load a profile (a refresh dialect) from JSON and register it; returns its name.
    pub fn load_profile_json(&self, json: String) -> Result<String> {
        guarded(|| self.vault.load_profile_json(&json))
    }

    /// Register a built-in dialect under `name` for `url`, with optional settings as JSON
    /// (`{"client_id": ...}`, `{"api_key": ...}`).
    #[uniffi::method(default(settings_json = None))]
    pub fn register_preset(
        &self,
        preset: Preset,
        name: String,
        url: String,
        settings_json: Option<String>,
    ) -> Result<()> {
        guarded(|| {
            let settings = match settings_json {
                None => serde_json::Value::Object(serde_json::Map::new()),
                Some(json) => serde_json::from_str(&json).map_err(|_| tv::VaultError::InvalidInput {
                    reason: "the preset settings are not valid JSON".to_owned(),
                })?,
            };
            self.vault
                .register_profile(tv::Profile::preset(preset.into(), &name, &url, settings)?)
        })
    }

    /// Use the app's own HTTP client for blocking refreshes (instead of the built-in one).
    pub fn set_transport(&self, transport: Box<dyn HttpTransport>) -> Result<()> {
        guarded(|| self.vault.set_transport(Some(Arc::new(ForeignTransport(transport)))))
    }

    /// Install (or, with `None`, remove) the observer of [`VaultEvent`]s.
    pub fn set_observer(&self, observer: Option<Box<dyn VaultObserver>>) -> Result<()> {
        guarded(|| {
            let observer = observer.map(|o| Arc::new(ForeignObserver(o)) as Arc<dyn tv::VaultObserver>);
            self.vault.set_observer(observer)
        })
    }

    /// Store a session after the app's own sign-in (replacing any session of that account).
    /// Durable when it returns.
    pub fn store(&self, session: NewSession) -> Result<SessionInfo> {
        guarded(|| self.vault.store(session.into_core()).map(SessionInfo::from))
    }

    /// Store a session from the login response as the server wrote it: `body` is read by the
    /// profile's own response spec, with the same rules as a refresh response (envelopes,
    /// `expires_in` relative or as an epoch time, the JWT `exp`, Keycloak's
    /// `refresh_expires_in: 0` as an offline token). `date_header`: the response's `Date`.
    /// `refresh_credential`: for dialects whose answer does not carry it (seed 000's entity
    /// token). A body that is not a successful answer is `Protocol`; nothing is stored then.
    #[uniffi::method(default(date_header = None, refresh_credential = None))]
    pub fn store_response(
        &self,
        account: String,
        profile: String,
        body: String,
        date_header: Option<String>,
        refresh_credential: Option<String>,
    ) -> Result<SessionInfo> {
        guarded(|| {
            let mut login = tv::LoginResponse::new(account, profile, body.into_bytes());
            if let Some(d) = date_header {
                login = login.date_header(d);
            }
            if let Some(c) = refresh_credential {
                login = login.refresh_credential(c);
            }
            self.vault.store_response(login).map(SessionInfo::from)
        })
    }

    /// A valid access token: the cached one when fresh, otherwise refreshed (once, however
    /// many threads ask).
    pub fn access_token(&self, account: String) -> Result<AccessToken> {
        guarded(|| self.vault.access_token(&account).map(|t| AccessToken::from(&t)))
    }

    /// Like [`access_token`](Self::access_token), for a token that must stay valid at least
    /// `min_ttl_ms` more (capped at half its lifetime).
    pub fn access_token_with_min_ttl(&self, account: String, min_ttl_ms: u64) -> Result<AccessToken> {
        guarded(|| {
            let options = tv::TokenOptions {
                min_ttl: Duration::from_millis(min_ttl_ms),
            };
            self.vault
                .access_token_with(&account, options)
                .map(|t| AccessToken::from(&t))
        })
    }

    /// Refresh now, whatever the token's age.
    pub fn force_refresh(&self, account: String) -> Result<AccessToken> {
        guarded(|| self.vault.force_refresh(&account).map(|t| AccessToken::from(&t)))
    }

    /// The app's API rejected `token` (HTTP 401): returns a newer token if one exists,
    /// otherwise refreshes (once, however many threads report it).
    pub fn report_rejected(&self, account: String, token: String) -> Result<AccessToken> {
        guarded(|| {
            self.vault
                .report_rejected(&account, &token)
                .map(|t| AccessToken::from(&t))
        })
    }

    /// A watch on one account's token, for wrappers that keep the token string on their side
    /// (see [`TokenWatch`]).
    pub fn watch(&self, account: String) -> Result<Arc<TokenWatch>> {
        guarded(|| {
            // Fail early, with NotFound, for an account that has no session.
            self.vault.session_info(&account)?;
            Ok(Arc::new(TokenWatch::register(Arc::clone(&self.vault), account)))
        })
    }

    /// Session facts without secrets.
    pub fn session_info(&self, account: String) -> Result<SessionInfo> {
        guarded(|| self.vault.session_info(&account).map(SessionInfo::from))
    }

    /// The stored accounts, sorted.
    pub fn list_accounts(&self) -> Result<Vec<String>> {
        guarded(|| self.vault.list_accounts())
    }

    /// Remove an account's session (logout). Returns whether one existed. With `revoke`, also
    /// sign out at the server: the refresh credential is revoked at the profile's RFC 7009
    /// endpoint (`keycloak`, or a profile with `revocation_url`; seeds 000–002 have none). The
    /// local removal comes first, with the revocation queued durably; it is sent in the
    /// background (this call never waits for the network) and, if it cannot go now, later.
    #[uniffi::method(default(revoke = false))]
    pub fn remove(&self, account: String, revoke: bool) -> Result<bool> {
        guarded(|| {
            if revoke {
                self.vault.remove_and_revoke(&account)
            } else {
                self.vault.remove(&account)
            }
        })
    }

    /// The revocations still to be sent (oldest first) and how many were ever dropped because
    /// the queue was full.
    pub fn pending_revocations(&self) -> Result<RevocationQueue> {
        guarded(|| {
            let q = self.vault.pending_revocations()?;
            Ok(RevocationQueue {
                pending: q
                    .pending
                    .into_iter()
                    .map(|p| PendingRevocation {
                        account: p.account,
                        profile: p.profile,
                        queued_at_ms: p.queued_at_ms,
                        attempts: p.attempts,
                    })
                    .collect(),
                dropped: q.dropped,
            })
        })
    }

    /// Send the queued revocations now, on this thread (blocking on the network).
    pub fn send_revocations(&self) -> Result<RevocationReport> {
        guarded(|| {
            let r = self.vault.send_revocations()?;
            let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
            Ok(RevocationReport {
                revoked: n(r.revoked),
                refused: n(r.refused),
                retry_later: n(r.retry_later),
                waiting_for_profile: n(r.waiting_for_profile),
            })
        })
    }

    /// Move an account's session to `profile` and to its endpoint. A session's refresh
    /// credential is only sent to the origin it was stored with: after a profile was registered
    /// again with another endpoint, refreshing gives `InvalidInput` (nothing sent) until this.
    pub fn move_session(&self, account: String, profile: String) -> Result<SessionInfo> {
        guarded(|| self.vault.move_session(&account, &profile).map(SessionInfo::from))
    }

    /// Replace the vault's key and its data key (every record re-sealed, the log truncated).
    /// The key the vault was opened with keeps opening it until the first open with the new
    /// key. The app's sequence: keep the old key, save the new one beside it, rekey, reopen
    /// with the new key, then delete the old one. Other handles get `WrongKey`.
    pub fn rekey_with_key(&self, key: Vec<u8>) -> Result<()> {
        let key = zeroize::Zeroizing::new(key);
        guarded(|| self.vault.rekey(tv::KeySource::raw(&key)?))
    }

    /// [`rekey_with_key`](Self::rekey_with_key) with a new passphrase.
    pub fn rekey_with_passphrase(&self, passphrase: String) -> Result<()> {
        let passphrase = zeroize::Zeroizing::new(passphrase);
        guarded(|| self.vault.rekey(tv::KeySource::passphrase(&passphrase)?))
    }

    /// Start a refresh the app performs itself (OkHttp, URLSession...): same single-flight and
    /// persistence as the blocking path.
    pub fn begin_refresh(&self, account: String, force: bool) -> Result<RefreshStep> {
        guarded(|| {
            Ok(match self.vault.begin_refresh(&account, force)? {
                tv::RefreshStep::Fresh(t) => RefreshStep::Fresh {
                    token: AccessToken::from(&t),
                },
                tv::RefreshStep::InFlight => RefreshStep::InFlight,
                tv::RefreshStep::Send(pending) => RefreshStep::Send {
                    attempt: pending.attempt,
                    request: HttpRequest::from(&pending.request),
                },
            })
        })
    }

    /// Finish a two-step refresh with the server's response.
    pub fn finish_refresh(&self, attempt: u64, response: HttpResponse) -> Result<AccessToken> {
        guarded(|| {
            self.vault
                .finish_refresh(attempt, response.into_core())
                .map(|t| AccessToken::from(&t))
        })
    }

    /// Finish a two-step refresh whose request failed on the network.
    pub fn fail_refresh(&self, attempt: u64, error: TransportError) -> Result<AccessToken> {
        guarded(|| {
            self.vault
                .fail_refresh(attempt, error.into_core())
                .map(|t| AccessToken::from(&t))
        })
    }

    /// Number of stored sessions.
    pub fn session_count(&self) -> Result<u64> {
        guarded(|| self.vault.session_count().map(|n| u64::try_from(n).unwrap_or(u64::MAX)))
    }

    /// Run SQLite's integrity check on the file.
    pub fn check_integrity(&self) -> Result<bool> {
        guarded(|| self.vault.check_integrity())
    }

    /// Close the vault: later calls fail with `Closed`; waiting callers are released; a
    /// background logout revocation in flight is waited for (at most its profile's timeout),
    /// so the transport is not called once this returns. Calling it again does nothing.
    pub fn close(&self) -> Result<()> {
        guarded(|| self.vault.close())
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.vault.is_closed()
    }

    /// What this vault did since it was opened (also after `close`).
    pub fn metrics(&self) -> VaultMetrics {
        self.vault.metrics().into()
    }
}

/// Freeing the object closes the vault (Kotlin's `AutoCloseable.close()`, a Swift `deinit`, a
/// Python `del`), even while [`TokenWatch`]es of it are alive: they then fail with `Closed`.
impl Drop for TokenVault {
    fn drop(&mut self) {
        let _ = self.vault.close();
    }
}

impl TokenVault {
    fn open(path: &str, key: tv::KeySource, options: Option<OpenOptions>) -> tv::Result<Arc<TokenVault>> {
        TokenVault::open_anchored(path, key, options, None)
    }

    fn open_anchored(
        path: &str,
        key: tv::KeySource,
        options: Option<OpenOptions>,
        anchor: Option<Arc<dyn tv::StateAnchor>>,
    ) -> tv::Result<Arc<TokenVault>> {
        let options = tv::VaultOptions {
            anchor,
            ..options.unwrap_or_default().into_core()
        };
        let vault = Arc::new(tv::Vault::open(path, key, options)?);
        let mut live = LIVE_VAULTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&vault));
        drop(live);
        Ok(Arc::new(TokenVault { vault }))
    }
}

/// Every vault opened through this surface (weakly): [`close_all_vaults`] closes them when the
/// host runtime shuts down.
static LIVE_VAULTS: Mutex<Vec<std::sync::Weak<tv::Vault>>> = Mutex::new(Vec::new());

/// Close every vault this process opened through the bindings, and stop log routing: for the
/// host runtime's shutdown (Python's `atexit`, a JVM shutdown hook). A vault's event thread
/// must not call into a runtime that is finalizing (Python ends such a thread with a forced
/// unwind, which aborts the process); closing first delivers the queued events and ends the
/// thread while the runtime still runs. Idempotent; vaults stay usable only as closed vaults.
#[uniffi::export]
pub fn close_all_vaults() {
    let live: Vec<_> = LIVE_VAULTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .drain(..)
        .filter_map(|w| w.upgrade())
        .collect();
    for v in live {
        let _ = crate::boundary::catch(|| v.close());
    }
    let _ = crate::boundary::catch(|| tv::set_log_sink(tv::LogLevelFilter::Off, None));
}

/// One account's token, for a wrapper that keeps the token string on its side.
///
/// [`current_generation`](Self::current_generation) asks the core for a valid token exactly as
/// [`TokenVault::access_token`] does (refreshing when the core says so) but returns only its
/// generation, a plain integer: the string crosses the boundary only when the generation differs
/// from the one the wrapper holds ([`token`](Self::token)). The same question is also answered by
/// the plain C function [`tokenvault_probe_generation`] for this watch's
/// [`probe_id`](Self::probe_id), which a binding calls without uniffi's per-call cost (Kotlin's
/// `CachedToken`). Closing the vault closes its watches.
#[derive(Debug, uniffi::Object)]
pub struct TokenWatch {
    probe: Arc<Probe>,
    probe_id: u64,
}

/// What a probe reads: the vault and the account.
#[derive(Debug)]
struct Probe {
    vault: Arc<tv::Vault>,
    account: String,
}

impl Probe {
    /// The generation of the valid token (`known_generation` while that one is still current
    /// and fresh: then nothing is cloned).
    fn generation(&self, known_generation: u64) -> tv::Result<u64> {
        let changed = self
            .vault
            .token_if_changed(&self.account, known_generation, tv::TokenOptions::default())?;
        Ok(changed.map_or(known_generation, |t| t.generation()))
    }
}

/// The probes of live watches, by id. Ids are never reused, so a stale id finds nothing (and is
/// reported as `Closed`) instead of reaching freed memory.
static PROBES: RwLock<BTreeMap<u64, Arc<Probe>>> = RwLock::new(BTreeMap::new());
static NEXT_PROBE_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The error of this thread's last failed probe, for [`TokenWatch::raise_probe_failure`].
    static PROBE_FAILURE: RefCell<Option<tv::VaultError>> = const { RefCell::new(None) };
}

impl TokenWatch {
    fn register(vault: Arc<tv::Vault>, account: String) -> TokenWatch {
        let probe = Arc::new(Probe { vault, account });
        let probe_id = NEXT_PROBE_ID.fetch_add(1, Ordering::Relaxed);
        // A poisoned lock only means a panic elsewhere while it was held: the map is still sound.
        let mut probes = PROBES.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        probes.insert(probe_id, Arc::clone(&probe));
        TokenWatch { probe, probe_id }
    }
}

impl Drop for TokenWatch {
    fn drop(&mut self) {
        let mut probes = PROBES.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        probes.remove(&self.probe_id);
    }
}

#[uniffi::export]
impl TokenWatch {
    /// The generation of the account's valid token (refreshed first when due).
    pub fn current_generation(&self) -> Result<u64> {
        guarded(|| self.probe.generation(0))
    }

    /// The account's valid token, with its generation.
    pub fn token(&self) -> Result<AccessToken> {
        guarded(|| {
            self.probe
                .vault
                .access_token(&self.probe.account)
                .map(|t| AccessToken::from(&t))
        })
    }

    /// `None` while the valid token is still of `known_generation`; otherwise the new token.
    pub fn token_if_changed(&self, known_generation: u64) -> Result<Option<AccessToken>> {
        guarded(|| {
            let changed = self.probe.vault.token_if_changed(
                &self.probe.account,
                known_generation,
                tv::TokenOptions::default(),
            )?;
            Ok(changed.map(|t| AccessToken::from(&t)))
        })
    }

    /// The id to pass to [`tokenvault_probe_generation`] while this watch is alive.
    pub fn probe_id(&self) -> u64 {
        self.probe_id
    }

    /// After [`tokenvault_probe_generation`] returned a negative number on this thread: fails
    /// with that error (as a typed `TokenVaultError`). Returns `Ok` if there was none.
    pub fn raise_probe_failure(&self) -> Result<()> {
        guarded(|| match PROBE_FAILURE.try_with(|cell| cell.borrow_mut().take()) {
            Ok(Some(err)) => Err(err),
            _ => Ok(()),
        })
    }
}

/// The generation of the valid token of the watch `probe_id` (see [`TokenWatch::probe_id`]),
/// refreshing first when the core says so — [`TokenWatch::token_if_changed`] as a plain C
/// function with integers in and out. Pass the generation of the token the caller holds (0 for
/// none): while it is still current and fresh, the core answers without cloning anything.
///
/// Returns the generation (≥ 1), or minus the failure's stable code (`-7` for not found, `-13`
/// once the watch or the vault is closed...): the caller then calls
/// [`TokenWatch::raise_probe_failure`] on the same thread for the typed error. Never unwinds.
///
/// Not part of the C ABI (the C header does not declare it): bindings declare it themselves
/// (Kotlin's `CachedToken` through JNA direct mapping).
/// cbindgen:ignore
#[no_mangle]
pub extern "C" fn tokenvault_probe_generation(probe_id: u64, known_generation: u64) -> i64 {
    let result = crate::boundary::catch(|| {
        let probe = PROBES
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&probe_id)
            .cloned();
        match probe {
            Some(p) => p.generation(known_generation),
            None => Err(tv::VaultError::Closed),
        }
    });
    match result {
        Ok(generation) => i64::try_from(generation).unwrap_or(i64::MAX),
        Err(err) => {
            let code = err.code().as_i32();
            let _ = PROBE_FAILURE.try_with(|cell| {
                if let Ok(mut slot) = cell.try_borrow_mut() {
                    *slot = Some(err);
                }
            });
            -i64::from(code)
        }
    }
}

// ----- free functions -------------------------------------------------------------------------

/// The library version (`tokenvault` crate version).
#[uniffi::export]
pub fn tokenvault_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// The stable name of a status code (`"not_found"` for 7), or `None` for an unknown number.
#[uniffi::export]
pub fn error_code_name(code: i32) -> Option<String> {
    tv::ErrorCode::from_i32(code).map(|c| c.name().to_owned())
}

/// Test-only: panics inside the boundary, to prove from Kotlin, Swift and Python that a panic
/// comes back as [`TokenVaultError::Internal`] (code 10) instead of crashing the app. It has no
/// other effect (the default panic hook prints a line to stderr).
#[uniffi::export]
#[allow(clippy::panic)]
pub fn debug_trigger_panic() -> Result<()> {
    guarded(|| panic!("debug_trigger_panic: a deliberate panic inside the uniffi boundary"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tv::{ErrorCode, VaultError};

    fn one_error_per_code() -> Vec<VaultError> {
        vec![
            VaultError::ReauthenticationRequired { reason: "r".into() },
            VaultError::Transient { reason: "t".into() },
            VaultError::Throttled {
                retry_after: Some(Duration::from_secs(3)),
            },
            VaultError::StorageUnavailable { reason: "s".into() },
            VaultError::WrongKey,
            VaultError::Corrupt { what: "c".into() },
            VaultError::NotFound,
            VaultError::InvalidInput { reason: "i".into() },
            VaultError::Protocol { reason: "p".into() },
            VaultError::Internal { reason: "x".into() },
            VaultError::SchemaTooNew { found: 9, supported: 1 },
            VaultError::RefreshOutcomeUnknown { reason: "u".into() },
            VaultError::Closed,
        ]
    }

    #[test]
    fn every_error_carries_the_core_code() {
        let errors = one_error_per_code();
        // Every code but Ok is covered exactly once.
        let mut codes: Vec<i32> = errors.iter().map(|e| e.code().as_i32()).collect();
        codes.sort_unstable();
        let expected: Vec<i32> = ErrorCode::ALL.iter().skip(1).map(|c| c.as_i32()).collect();
        assert_eq!(codes, expected);
        for e in errors {
            let core_code = e.code().as_i32();
            let message = e.to_string();
            let mapped = TokenVaultError::from(e);
            assert_eq!(mapped.code(), core_code);
            assert_eq!(mapped.to_string(), message);
            assert_eq!(
                error_code_name(core_code).as_deref(),
                Some(ErrorCode::from_i32(core_code).unwrap().name())
            );
        }
        let throttled = TokenVaultError::from(VaultError::Throttled {
            retry_after: Some(Duration::from_millis(2500)),
        });
        assert!(matches!(
            throttled,
            TokenVaultError::Throttled {
                retry_after_ms: Some(2500),
                ..
            }
        ));
        assert_eq!(error_code_name(99), None);
    }

    #[test]
    fn a_panic_comes_back_as_internal() {
        let err = debug_trigger_panic().unwrap_err();
        assert_eq!(err.code(), ErrorCode::Internal.as_i32());
        assert!(matches!(err, TokenVaultError::Internal { .. }));
        assert!(!err.to_string().contains("deliberate"), "the payload is never shown");
    }

    #[derive(Debug)]
    struct Canned(u16, Vec<u8>);

    impl HttpTransport for Canned {
        fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
            assert_eq!(request.method, "POST");
            if self.0 == 0 {
                return Err(TransportError::Connect {
                    reason: "refused".into(),
                });
            }
            Ok(HttpResponse {
                status: self.0,
                headers: vec![],
                body: self.1.clone(),
            })
        }
    }

    fn request(cap: usize) -> tv::HttpRequest {
        tv::HttpRequest {
            method: "POST".into(),
            url: "https://example.invalid/token".into(),
            headers: vec![],
            body: b"x".to_vec(),
            timeout: Duration::from_secs(1),
            max_response_bytes: cap,
            allow_plain_http: false,
            pins: vec![],
        }
    }

    #[test]
    fn foreign_transport_maps_responses_failures_and_the_size_cap() {
        use tv::Transport as _;
        let ok = ForeignTransport(Box::new(Canned(200, b"{}".to_vec())));
        assert_eq!(ok.send(&request(10)).unwrap().status, 200);
        // An oversized body is passed on: the core refuses it when it reads the response.
        let big = ForeignTransport(Box::new(Canned(200, vec![b'x'; 11])));
        assert_eq!(big.send(&request(10)).unwrap().body.len(), 11);
        let down = ForeignTransport(Box::new(Canned(0, vec![])));
        assert_eq!(
            down.send(&request(10)).unwrap_err().kind,
            tv::TransportErrorKind::Connect
        );
    }

    /// Foreign transports receive the plain-http permission and the pins.
    #[test]
    fn foreign_requests_carry_plain_http_permission_and_pins() {
        let mut core = request(10);
        core.allow_plain_http = true;
        core.pins = vec![tv::SpkiPin::from_sha256([2; 32])];
        let foreign = HttpRequest::from(&core);
        assert!(foreign.allow_plain_http);
        assert_eq!(foreign.pins, vec![core.pins[0].to_string()]);
        let mapped = TransportError::CertificatePin { reason: "pin".into() }.into_core();
        assert_eq!(mapped.kind, tv::TransportErrorKind::CertificatePin);
        assert!(!mapped.may_have_been_delivered());
    }

    #[test]
    fn debug_output_is_redacted() {
        let t = AccessToken {
            token: "sekrit-token".into(),
            generation: 4,
        };
        let h = HttpHeader {
            name: "Authorization".into(),
            value: "Bearer sekrit".into(),
        };
        let s = NewSession {
            account: "player-sekrit".into(),
            profile: "p".into(),
            access_token: "sekrit".into(),
            refresh_credential: Some("sekrit".into()),
            expires_in_secs: None,
            refresh_expires_in_secs: None,
            offline: false,
            token_type: None,
            scope: None,
            hints: HashMap::new(),
        };
        for text in [format!("{t:?}"), format!("{h:?}"), format!("{s:?}")] {
            assert!(!text.contains("sekrit"), "{text}");
        }
    }

    #[test]
    fn the_vault_object_round_trips_a_session() {
        let dir = std::env::temp_dir().join(format!("tv-uniffi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.db").to_string_lossy().into_owned();
        let _ = std::fs::remove_file(&path);
        let vault = TokenVault::open_with_key(path.clone(), vec![7; 32], None).unwrap();
        vault
            .register_preset(
                Preset::Oauth2,
                "backend".into(),
                "http://127.0.0.1:9/token".into(),
                Some(r#"{"client_id":"c"}"#.into()),
            )
            .unwrap();
        let info = vault
            .store(NewSession {
                account: "a".into(),
                profile: "backend".into(),
                access_token: "tok-1".into(),
                refresh_credential: Some("r".into()),
                expires_in_secs: Some(3600),
                refresh_expires_in_secs: None,
                offline: false,
                token_type: None,
                scope: None,
                hints: HashMap::from([("name".to_owned(), "Ada".to_owned())]),
            })
            .unwrap();
        assert_eq!(info.state, SessionState::Fresh);
        let t = vault.access_token("a".into()).unwrap();
        assert_eq!(t.token, "tok-1");
        let watch = vault.watch("a".into()).unwrap();
        assert_eq!(watch.current_generation().unwrap(), t.generation);
        assert_eq!(watch.token_if_changed(t.generation).unwrap(), None);
        assert_eq!(watch.token_if_changed(0).unwrap(), Some(t.clone()));
        assert_eq!(vault.list_accounts().unwrap(), vec!["a".to_owned()]);
        assert!(matches!(
            vault.watch("nobody".into()),
            Err(TokenVaultError::NotFound { code: 7, .. })
        ));
        assert!(matches!(
            TokenVault::open_with_key(path.clone(), vec![8; 32], None),
            Err(TokenVaultError::WrongKey { code: 5, .. })
        ));
        assert!(matches!(
            TokenVault::open_with_key(path.clone(), vec![8; 31], None),
            Err(TokenVaultError::InvalidInput { code: 8, .. })
        ));
        // The probe answers what current_generation answers, as a plain C function.
        let held = i64::try_from(t.generation).unwrap();
        assert_eq!(tokenvault_probe_generation(watch.probe_id(), 0), held);
        assert_eq!(tokenvault_probe_generation(watch.probe_id(), t.generation), held);
        assert!(
            tokenvault_probe_generation(u64::MAX, 0) < 0,
            "an unknown id finds nothing"
        );
        assert!(matches!(
            watch.raise_probe_failure(),
            Err(TokenVaultError::Closed { .. })
        ));
        assert!(watch.raise_probe_failure().is_ok(), "the failure is taken once");
        vault.remove("a".into(), false).unwrap();
        assert_eq!(tokenvault_probe_generation(watch.probe_id(), t.generation), -7);
        assert!(matches!(
            watch.raise_probe_failure(),
            Err(TokenVaultError::NotFound { .. })
        ));
        vault
            .store(NewSession {
                account: "a".into(),
                profile: "backend".into(),
                access_token: "tok-2".into(),
                refresh_credential: None,
                expires_in_secs: Some(3600),
                refresh_expires_in_secs: None,
                offline: false,
                token_type: None,
                scope: None,
                hints: HashMap::new(),
            })
            .unwrap();
        let stale_id = {
            let other = vault.watch("a".into()).unwrap();
            assert!(tokenvault_probe_generation(other.probe_id(), t.generation) > held);
            other.probe_id()
        };
        assert_eq!(
            tokenvault_probe_generation(stale_id, 0),
            -13,
            "a dropped watch's id is closed"
        );
        vault.close().unwrap();
        vault.close().unwrap();
        assert!(vault.is_closed());
        assert!(matches!(
            vault.access_token("a".into()),
            Err(TokenVaultError::Closed { code: 13, .. })
        ));
        assert!(matches!(
            watch.current_generation(),
            Err(TokenVaultError::Closed { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
