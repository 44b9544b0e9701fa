//! Sessions: what a host stores after its own login, what the vault keeps, and what it shows.
//!
//! Times inside a `SessionRecord` are *server time* in milliseconds since the Unix epoch,
//! with the measured server−device offset stored beside them (ADR 0005). Public views give
//! remaining durations measured on the monotonic clock, which no device clock change can move.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, Result, VaultError};
use crate::jwt;
use crate::oidc::IdentityClaims;
use crate::secret::SecretString;

/// Largest token accepted (access or refresh), in bytes.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Largest account id, in bytes.
pub const MAX_ACCOUNT_LEN: usize = 1024;
const MAX_HINTS: usize = 32;
const MAX_HINT_KEY: usize = 64;
const MAX_HINT_VALUE: usize = 1024;

/// A session as the host hands it over after its own sign-in.
#[derive(Clone)]
pub struct NewSession {
    pub(crate) account: String,
    pub(crate) profile: String,
    pub(crate) access_token: SecretString,
    pub(crate) refresh_credential: Option<SecretString>,
    pub(crate) expires: Option<ExpiryValue>,
    pub(crate) refresh_expiry: RefreshExpiry,
    pub(crate) offline: bool,
    pub(crate) token_type: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) hints: BTreeMap<String, String>,
    /// The login response's `Date` (ms), when the session came from `store_response`.
    pub(crate) server_date_ms: Option<i64>,
    /// The claims of the login response's validated id_token (`store_response`).
    pub(crate) identity: Option<IdentityClaims>,
}

impl NewSession {
    /// A session for `account` that refreshes with the profile named `profile`.
    pub fn new(account: impl Into<String>, profile: impl Into<String>, access_token: impl Into<SecretString>) -> Self {
        NewSession {
            account: account.into(),
            profile: profile.into(),
            access_token: access_token.into(),
            refresh_credential: None,
            expires: None,
            refresh_expiry: RefreshExpiry::Unknown,
            offline: false,
            token_type: None,
            scope: None,
            hints: BTreeMap::new(),
            server_date_ms: None,
            identity: None,
        }
    }

    /// A session from a login response the profile's response spec parsed.
    pub(crate) fn from_received(account: &str, profile: &str, rx: ReceivedTokens) -> NewSession {
        let ReceivedTokens {
            access_token,
            refresh_credential,
            expires,
            refresh_expiry,
            token_type,
            scope,
            server_date_ms,
            id_token,
            identity,
        } = rx;
        drop(id_token);
        NewSession {
            account: account.to_owned(),
            profile: profile.to_owned(),
            access_token,
            refresh_credential,
            expires,
            offline: refresh_expiry == RefreshExpiry::Offline,
            refresh_expiry,
            token_type,
            scope,
            hints: BTreeMap::new(),
            server_date_ms,
            identity: identity.map(|b| *b),
        }
    }

    /// The refresh token (or, for entity-token dialects, the entity token).
    pub fn refresh_credential(mut self, credential: impl Into<SecretString>) -> Self {
        self.refresh_credential = Some(credential.into());
        self
    }

    /// The access token's `expires_in`, when the login response had one. Without it the
    /// JWT `exp` claim is used, and without that the profile's default lifetime.
    ///
    /// Zero means "not given" on every surface (a C caller's `0`, a binding's `0`): the JWT
    /// `exp` or the profile's default lifetime is used instead.
    pub fn expires_in(mut self, expires_in: Duration) -> Self {
        self.expires = (!expires_in.is_zero())
            .then(|| ExpiryValue::RelativeSecs(i64::try_from(expires_in.as_secs()).unwrap_or(i64::MAX)));
        self
    }

    /// How long the refresh credential lives, if known (`refresh_expires_in`). Zero means "not
    /// given" (an offline token is [`offline`](Self::offline)).
    pub fn refresh_expires_in(mut self, d: Duration) -> Self {
        self.refresh_expiry = if d.is_zero() {
            RefreshExpiry::Unknown
        } else {
            RefreshExpiry::InSecs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        };
        self
    }

    /// `expires_in` as the login response wrote it, read as a refresh response's is
    /// ([`ExpiryValue::classify`]): seconds from now, or an absolute epoch time in seconds or
    /// milliseconds (Keycloak-style servers send a Java timestamp). `<= 0` means "not given".
    /// The one place that decides what a C `0` / `-1`, a binding's `0` or an epoch value means.
    pub fn expires_in_secs(mut self, value: i64) -> Self {
        self.expires = (value > 0).then(|| ExpiryValue::classify(value));
        self
    }

    /// `refresh_expires_in` as the login response wrote it (seconds from now, or an absolute
    /// epoch time in seconds or milliseconds); `<= 0` means "not given" (an offline token is
    /// [`offline`](Self::offline)).
    pub fn refresh_expires_in_secs(mut self, value: i64) -> Self {
        self.refresh_expiry = if value <= 0 {
            RefreshExpiry::Unknown
        } else {
            match ExpiryValue::classify(value) {
                ExpiryValue::RelativeSecs(s) => RefreshExpiry::InSecs(s),
                ExpiryValue::AbsoluteMs(ms) => RefreshExpiry::AtMs(ms),
            }
        };
        self
    }

    /// The refresh credential never expires by time (an OAuth2 offline token).
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// The token type (`Bearer`).
    pub fn token_type(mut self, t: impl Into<String>) -> Self {
        self.token_type = Some(t.into());
        self
    }

    /// The granted scope.
    pub fn scope(mut self, s: impl Into<String>) -> Self {
        self.scope = Some(s.into());
        self
    }

    /// A non-secret hint the host may show on a re-login screen (display name, avatar URL...).
    pub fn hint(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.hints.insert(key.into(), value.into());
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        validate_account(&self.account)?;
        validate_token("access token", self.access_token.expose())?;
        if let Some(c) = &self.refresh_credential {
            validate_token("refresh credential", c.expose())?;
        }
        if self.profile.is_empty() {
            return Err(VaultError::invalid("the profile name is empty"));
        }
        if self.hints.len() > MAX_HINTS {
            return Err(VaultError::invalid(format!("at most {MAX_HINTS} hints")));
        }
        for (k, v) in &self.hints {
            if k.is_empty() || k.len() > MAX_HINT_KEY || v.len() > MAX_HINT_VALUE {
                return Err(VaultError::invalid("a hint key or value is empty or too long"));
            }
        }
        for s in [&self.token_type, &self.scope].into_iter().flatten() {
            if s.len() > 4096 {
                return Err(VaultError::invalid("token type or scope too long"));
            }
        }
        if matches!(self.expires, Some(ExpiryValue::RelativeSecs(s)) if s > 10 * 365 * 86_400) {
            return Err(VaultError::invalid("expires_in is longer than ten years"));
        }
        Ok(())
    }
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("account", &"<redacted>")
            .field("profile", &self.profile)
            .field("access_token", &self.access_token)
            .field("refresh_credential", &self.refresh_credential)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// A login response as the server wrote it, for [`Vault::store_response`]: the host hands
/// over the raw body (and the `Date` header, if it has it); the profile's response spec reads
/// it with the same rules as a refresh response.
///
/// [`Vault::store_response`]: crate::Vault::store_response
pub struct LoginResponse {
    pub(crate) account: String,
    pub(crate) profile: String,
    pub(crate) body: Vec<u8>,
    pub(crate) date: Option<String>,
    pub(crate) refresh_credential: Option<SecretString>,
    pub(crate) hints: BTreeMap<String, String>,
}

impl LoginResponse {
    /// The body of the login response for `account`, to be read by the profile `profile`.
    pub fn new(account: impl Into<String>, profile: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        LoginResponse {
            account: account.into(),
            profile: profile.into(),
            body: body.into(),
            date: None,
            refresh_credential: None,
            hints: BTreeMap::new(),
        }
    }

    /// The response's HTTP `Date` header: the server's clock, which anchors the expiry.
    pub fn date_header(mut self, date: impl Into<String>) -> Self {
        self.date = Some(date.into());
        self
    }

    /// The refresh credential, for dialects whose answers do not carry it (seed `000`'s entity
    /// token comes from its authentication call; its token responses hold only the access
    /// token). A response that carries one as well is `InvalidInput`.
    pub fn refresh_credential(mut self, credential: impl Into<SecretString>) -> Self {
        self.refresh_credential = Some(credential.into());
        self
    }

    /// A non-secret hint, as [`NewSession::hint`].
    pub fn hint(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.hints.insert(key.into(), value.into());
        self
    }
}

impl Drop for LoginResponse {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.body);
    }
}

impl fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginResponse")
            .field("account", &"<redacted>")
            .field("profile", &self.profile)
            .field("body_len", &self.body.len())
            .field("refresh_credential", &self.refresh_credential)
            .finish_non_exhaustive()
    }
}

pub(crate) fn validate_account(account: &str) -> Result<()> {
    if account.is_empty() || account.len() > MAX_ACCOUNT_LEN || account.contains('\0') {
        return Err(VaultError::invalid(format!(
            "an account id must be 1..={MAX_ACCOUNT_LEN} bytes without NUL"
        )));
    }
    Ok(())
}

pub(crate) fn validate_token(what: &str, token: &str) -> Result<()> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(VaultError::invalid(format!(
            "the {what} is empty or longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    if token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(VaultError::invalid(format!(
            "the {what} contains whitespace or control characters"
        )));
    }
    Ok(())
}

/// What the vault stores for one account (encrypted as a whole). It is also what the cache
/// keeps per session, so its text fields are boxed `str`s (no spare capacity) and its rare
/// parts are boxed (`None` is one word), and the profile's name and origin are shared between
/// sessions: 304 bytes inline instead of 848.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub account: Box<str>,
    /// Shared by every cached session of the profile (the cache interns it).
    pub profile: std::sync::Arc<str>,
    pub access_token: crate::secret::TokenText,
    #[serde(default)]
    pub refresh_credential: Option<SecretString>,
    #[serde(default)]
    pub token_type: Option<Box<str>>,
    #[serde(default)]
    pub scope: Option<Box<str>>,
    /// Server time the access token was issued.
    pub issued_at_ms: i64,
    /// Server time the access token expires.
    pub access_expires_at_ms: i64,
    /// Server time the refresh credential expires; `None` = unknown or never (see `offline`).
    #[serde(default)]
    pub refresh_expires_at_ms: Option<i64>,
    #[serde(default)]
    pub offline: bool,
    /// server − device, measured when the tokens were received.
    #[serde(default)]
    pub clock_offset_ms: i64,
    #[serde(default)]
    pub hints: BTreeMap<String, String>,
    pub created_at_ms: i64,
    #[serde(default)]
    pub refresh_count: u64,
    /// The endpoint origin (`scheme://host:port`) the refresh credential may be sent to; `None`
    /// only in records written before sessions were bound (bound at their next refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<std::sync::Arc<str>>,
    /// Set when the session ended: the typed verdict every reader returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Box<Verdict>>,
    /// Records written before verdicts were typed kept the verdict's text here.
    #[serde(default, rename = "needs_reauth", skip_serializing)]
    pub legacy_reauth: Option<Box<str>>,
    /// The standard claims of the last validated OpenID Connect id_token (profiles with an
    /// `oidc` section); `None` before the first one and in records written before them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Box<IdentityClaims>>,
}

/// Why a session ended, as stored (inside the ciphertext) and returned to every reader, in
/// every process, until the host stores a new session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// The server refused the refresh credential (code 1).
    ReauthenticationRequired { reason: String },
    /// The server refused a credential that an earlier, unanswered request may have consumed
    /// (code 12).
    RefreshOutcomeUnknown { reason: String },
}

impl Verdict {
    /// The error every reader gets.
    pub(crate) fn error(&self) -> VaultError {
        match self {
            Verdict::ReauthenticationRequired { reason } => {
                VaultError::ReauthenticationRequired { reason: reason.clone() }
            }
            Verdict::RefreshOutcomeUnknown { reason } => VaultError::RefreshOutcomeUnknown { reason: reason.clone() },
        }
    }

    /// Read a verdict stored as text by the first release (`Display` of the error, sometimes
    /// with its prefix repeated).
    fn from_legacy_text(text: &str) -> Verdict {
        const REAUTH: &str = "re-authentication required: ";
        const UNKNOWN: &str = "the outcome of an earlier refresh is unknown: ";
        let mut t = text;
        let mut unknown = false;
        loop {
            if let Some(rest) = t.strip_prefix(REAUTH) {
                t = rest;
            } else if let Some(rest) = t.strip_prefix(UNKNOWN) {
                unknown = true;
                t = rest;
            } else {
                break;
            }
        }
        let reason = t.to_owned();
        if unknown {
            Verdict::RefreshOutcomeUnknown { reason }
        } else {
            Verdict::ReauthenticationRequired { reason }
        }
    }
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("account", &"<redacted>")
            .field("profile", &self.profile)
            .field("access_token", &self.access_token)
            .field("refresh_credential", &self.refresh_credential)
            .field("access_expires_at_ms", &self.access_expires_at_ms)
            .finish_non_exhaustive()
    }
}

impl SessionRecord {
    /// Move a verdict stored as text by an earlier release into its typed place.
    pub(crate) fn upgrade_legacy(&mut self) {
        if let Some(text) = self.legacy_reauth.take() {
            if self.verdict.is_none() {
                self.verdict = Some(Box::new(Verdict::from_legacy_text(&text)));
            }
        }
    }

    /// Lifetime of the access token in ms (at least 1 s).
    pub(crate) fn lifetime_ms(&self) -> i64 {
        (self.access_expires_at_ms - self.issued_at_ms).max(1_000)
    }
}

/// How an `expires_in`-like value was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryValue {
    /// Seconds from now.
    RelativeSecs(i64),
    /// An absolute server time in ms.
    AbsoluteMs(i64),
}

impl ExpiryValue {
    /// Tell a relative count of seconds from an absolute epoch time (seconds or milliseconds)
    /// by magnitude: nobody issues a token for more than 31 years (10^9 s), and no epoch time
    /// in seconds reaches 10^12 before the year 33658.
    pub fn classify(n: i64) -> ExpiryValue {
        if n >= 1_000_000_000_000 {
            ExpiryValue::AbsoluteMs(n)
        } else if n >= 1_000_000_000 {
            ExpiryValue::AbsoluteMs(n.saturating_mul(1000))
        } else {
            ExpiryValue::RelativeSecs(n)
        }
    }
}

/// What the server (or the host's login) said about a refresh credential's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshExpiry {
    /// Nothing said.
    Unknown,
    /// It never expires by time (`refresh_expires_in: 0` in Keycloak's dialect).
    Offline,
    /// Expires this many seconds after the server's "now".
    InSecs(i64),
    /// Expires at this server time.
    AtMs(i64),
}

/// Tokens as read from a successful refresh response, before their times are anchored.
pub struct ReceivedTokens {
    /// The new access token.
    pub access_token: SecretString,
    /// The new refresh credential, if the server rotated it.
    pub refresh_credential: Option<SecretString>,
    /// `expires_in` as written.
    pub expires: Option<ExpiryValue>,
    /// What the server said about the refresh credential's life.
    pub refresh_expiry: RefreshExpiry,
    /// Token type.
    pub token_type: Option<String>,
    /// Granted scope.
    pub scope: Option<String>,
    /// The response's HTTP `Date`, in ms.
    pub server_date_ms: Option<i64>,
    /// The id_token as received (a credential: never stored), when the profile validates them.
    pub id_token: Option<SecretString>,
    /// The claims of the id_token, once validated.
    pub identity: Option<Box<IdentityClaims>>,
}

impl fmt::Debug for ReceivedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedTokens")
            .field("access_token", &self.access_token)
            .field("refresh_credential", &self.refresh_credential)
            .field("expires", &self.expires)
            .field("refresh_expiry", &self.refresh_expiry)
            .field("server_date_ms", &self.server_date_ms)
            .field("id_token", &self.id_token)
            .finish_non_exhaustive()
    }
}

/// The anchored times of a received token set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AnchoredTimes {
    pub issued_at_ms: i64,
    pub access_expires_at_ms: i64,
    pub clock_offset_ms: i64,
    /// Server time when the tokens were received.
    pub server_now_ms: i64,
}

/// Anchor a token set's times on server time (ADR 0005).
///
/// Server "now" is the HTTP `Date` if there is one, else the JWT's `iat` (it was issued just
/// now), else the device clock corrected by the last known offset. Expiry is `expires_in`
/// (relative or absolute), else the JWT `exp`, else `now + default_lifetime`.
pub(crate) fn anchor_times(
    access_token: &str,
    expires: Option<ExpiryValue>,
    server_date_ms: Option<i64>,
    device_now_ms: i64,
    previous_offset_ms: i64,
    default_lifetime: Duration,
) -> AnchoredTimes {
    let claims = jwt::decode_times(access_token).unwrap_or_default();
    let iat_ms = claims.iat.map(|s| s.saturating_mul(1000));
    let exp_ms = claims.exp.map(|s| s.saturating_mul(1000));
    let server_now_ms = match (server_date_ms, iat_ms) {
        // Date has one-second resolution: a fresh iat within that second is more precise.
        (Some(date), Some(iat)) if iat >= date && iat - date < 1_000 => iat,
        (Some(date), _) => date,
        (None, Some(iat)) if exp_ms.is_none_or(|e| e > iat) => iat,
        _ => device_now_ms.saturating_add(previous_offset_ms),
    };
    let access_expires_at_ms = match expires {
        Some(ExpiryValue::RelativeSecs(s)) => server_now_ms.saturating_add(s.max(0).saturating_mul(1000)),
        Some(ExpiryValue::AbsoluteMs(ms)) => ms,
        None => match exp_ms {
            Some(e) => e,
            None => server_now_ms.saturating_add(i64::try_from(default_lifetime.as_millis()).unwrap_or(i64::MAX / 2)),
        },
    };
    let issued_at_ms = match iat_ms {
        Some(iat) if iat < access_expires_at_ms && iat <= server_now_ms.saturating_add(60_000) => {
            iat.min(server_now_ms)
        }
        _ => server_now_ms,
    };
    AnchoredTimes {
        issued_at_ms,
        access_expires_at_ms,
        clock_offset_ms: server_now_ms.saturating_sub(device_now_ms),
        server_now_ms,
    }
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// The most recent failed refresh, kept to make staleness visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFailure {
    /// Its code.
    pub code: ErrorCode,
    /// Its message (no secrets).
    pub message: String,
    /// How long ago it happened, in ms (monotonic).
    pub ago_ms: u64,
}

/// A session without its secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The host's account id.
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
    /// Server time the session itself (the refresh credential) ends, if known.
    pub session_expires_at_ms: Option<i64>,
    /// Forecast: time left before the user must sign in again, if known; `None` for offline
    /// tokens and servers that do not say.
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
    pub hints: BTreeMap<String, String>,
    /// The standard claims of the session's last validated OpenID Connect id_token (profiles
    /// with an `oidc` section); never the id_token itself. Personal data: kept out of `Debug`.
    pub identity: Option<IdentityClaims>,
}

impl fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionInfo")
            .field("account", &"<redacted>")
            .field("profile", &self.profile)
            .field("generation", &self.generation)
            .field("state", &self.state)
            .field("access_remaining_ms", &self.access_remaining_ms)
            .field("session_remaining_ms", &self.session_remaining_ms)
            .field("refresh_count", &self.refresh_count)
            .field("last_refresh_failure", &self.last_refresh_failure)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn jwt(claims: &str) -> String {
        format!("e30.{}.s", URL_SAFE_NO_PAD.encode(claims))
    }

    #[test]
    fn classify_expiry_by_magnitude() {
        assert_eq!(ExpiryValue::classify(1800), ExpiryValue::RelativeSecs(1800));
        assert_eq!(
            ExpiryValue::classify(1_800_000_000),
            ExpiryValue::AbsoluteMs(1_800_000_000_000)
        );
        assert_eq!(
            ExpiryValue::classify(1_800_000_000_123),
            ExpiryValue::AbsoluteMs(1_800_000_000_123)
        );
    }

    #[test]
    fn expires_in_wins_then_jwt_then_default() {
        let dev = 1_700_000_000_000;
        let t = anchor_times(
            "opaque",
            Some(ExpiryValue::RelativeSecs(60)),
            None,
            dev,
            0,
            Duration::from_secs(5),
        );
        assert_eq!(t.access_expires_at_ms, dev + 60_000);
        let tok = jwt(r#"{"iat":1700000000,"exp":1700000300}"#);
        let t = anchor_times(&tok, None, None, dev, 0, Duration::from_secs(5));
        assert_eq!(t.access_expires_at_ms, dev + 300_000);
        assert_eq!(t.issued_at_ms, dev);
        let t = anchor_times("opaque", None, None, dev, 0, Duration::from_secs(5));
        assert_eq!(t.access_expires_at_ms, dev + 5_000);
    }

    #[test]
    fn device_clock_hours_off_is_corrected_by_date_header() {
        let server = 1_700_000_000_000;
        let device = server + 5 * 3600 * 1000; // device is 5 h ahead
        let t = anchor_times(
            "opaque",
            Some(ExpiryValue::RelativeSecs(1800)),
            Some(server),
            device,
            0,
            Duration::from_secs(1),
        );
        assert_eq!(t.clock_offset_ms, -5 * 3600 * 1000);
        assert_eq!(t.access_expires_at_ms, server + 1_800_000);
        // and by the JWT iat when there is no Date
        let tok = jwt(r#"{"iat":1700000000,"exp":1700001800}"#);
        let t = anchor_times(&tok, None, None, device, 0, Duration::from_secs(1));
        assert_eq!(t.clock_offset_ms, -5 * 3600 * 1000);
        assert_eq!(t.access_expires_at_ms - t.issued_at_ms, 1_800_000);
    }

    #[test]
    fn legacy_text_verdicts_keep_their_code_and_lose_repeated_prefixes() {
        let v = Verdict::from_legacy_text("re-authentication required: re-authentication required: invalid_grant");
        assert_eq!(v.error().to_string(), "re-authentication required: invalid_grant");
        let v =
            Verdict::from_legacy_text("re-authentication required: the outcome of an earlier refresh is unknown: x");
        assert_eq!(v.error().code(), crate::ErrorCode::RefreshOutcomeUnknown);
        assert_eq!(v.error().to_string(), "the outcome of an earlier refresh is unknown: x");
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), v);
    }

    #[test]
    fn tokens_with_spaces_or_controls_are_refused() {
        assert!(validate_token("t", "abc").is_ok());
        assert!(validate_token("t", "a b").is_err());
        assert!(validate_token("t", "a\r\nb").is_err());
        assert!(validate_token("t", "").is_err());
        assert!(validate_account("").is_err());
        assert!(validate_account("a\0b").is_err());
    }
}
