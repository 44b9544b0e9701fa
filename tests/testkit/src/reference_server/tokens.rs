//! Token issuance and bookkeeping: JWT access tokens, opaque refresh credentials, token families.
//!
//! Every login starts a **family** (one user session). A family owns every access token and refresh
//! credential derived from that login; revoking the family (logout, reuse detection) kills them all.
//!
//! * Access tokens are HS256 JWTs signed with a per-server random secret. Claims: `sub` (user), `iat`
//!   (issue time in whole seconds, rounded down), `exp`, `jti` (random), `fam` (family number).
//!   `exp = iat + ceil(ttl)`: the ttl is rounded **up** to whole seconds, so a 1.5 s ttl gives
//!   `exp - iat = 2` and a sub-second ttl gives 1 (a zero ttl gives `exp = iat`, already expired).
//!   The server accepts the token while `now < max(exp, issue instant + ttl)`: never less than the
//!   `exp` the client reads, always at least the exact ttl after issue (so "valid right after issue"
//!   holds even for a 10 ms ttl), and never more than `ceil(ttl)` after issue.
//! * Refresh credentials (refresh tokens, `000`'s entity tokens) are 32 random bytes, base64url
//!   without padding. Their lifetime is exact to the millisecond and invisible to clients.
//! * Rotation marks the presented refresh token as rotated out; presenting it again is what reuse
//!   detection looks for.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::IssuedTokens;

/// Identifies one family (one login).
pub(crate) type FamilyId = u64;

/// `n` random bytes. Falls back to hashing a process-wide counter with the time should the OS
/// generator fail, so tokens stay unique either way.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (block, chunk) in bytes.chunks_mut(32).enumerate() {
            let digest = Sha256::new()
                .chain_update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes())
                .chain_update(nanos.to_le_bytes())
                .chain_update(block.to_le_bytes())
                .finalize();
            for (dst, src) in chunk.iter_mut().zip(digest.iter()) {
                *dst = *src;
            }
        }
    }
    bytes
}

/// A fresh opaque credential: 32 random bytes, base64url without padding.
pub(crate) fn opaque_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Signs and verifies this server's HS256 JWTs.
#[derive(Clone)]
pub(crate) struct JwtSigner {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSigner { secret: <redacted> }")
    }
}

impl JwtSigner {
    /// A signer with a fresh random 32-byte secret.
    pub fn random() -> io::Result<Self> {
        Self::with_secret(&random_bytes::<32>())
    }

    /// A signer with a given secret.
    pub fn with_secret(secret: &[u8]) -> io::Result<Self> {
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad HMAC key length"))?;
        Ok(Self { mac })
    }

    /// `header.claims.signature`, each part base64url without padding.
    pub fn sign(&self, claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{claims}");
        let signature = self
            .mac
            .clone()
            .chain_update(signing_input.as_bytes())
            .finalize()
            .into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The claims of `token` if its signature is ours.
    pub fn verify(&self, token: &str) -> Option<Value> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (_, claims) = signing_input.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac
            .clone()
            .chain_update(signing_input.as_bytes())
            .verify_slice(&signature)
            .ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the store knows about a presented refresh credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshLookup {
    /// Never issued here.
    Unknown,
    /// Already rotated out: a replay, whatever the state of its family.
    RotatedOut(FamilyId),
    /// Its family was revoked.
    Revoked,
    /// Past its lifetime.
    Expired,
    /// Current, unexpired, family alive.
    Valid(FamilyId),
}

#[derive(Debug)]
struct Family {
    user: String,
    revoked: bool,
    current_access: String,
    current_refresh: String,
    /// Every pair issued to this family, oldest first.
    issued: Vec<IssuedTokens>,
}

#[derive(Debug)]
struct AccessRecord {
    family: FamilyId,
    /// `max(exp, issue instant + ttl)` in ms: accepted strictly before.
    valid_until_ms: u64,
    revoked: bool,
}

#[derive(Debug)]
struct RefreshRecord {
    family: FamilyId,
    expires_at_ms: u64,
    rotated_out: bool,
}

/// All tokens a server has issued, by family.
#[derive(Debug)]
pub(crate) struct TokenStore {
    signer: JwtSigner,
    families: HashMap<FamilyId, Family>,
    access: HashMap<String, AccessRecord>,
    refresh: HashMap<String, RefreshRecord>,
    next_family: FamilyId,
}

/// Lifetimes used when issuing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetimes {
    pub access: Duration,
    pub refresh: Duration,
}

impl TokenStore {
    pub fn new(signer: JwtSigner) -> Self {
        Self {
            signer,
            families: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            next_family: 1,
        }
    }

    /// Starts a family for `user` with a first access token and refresh credential.
    pub fn login(&mut self, user: &str, now_ms: u64, lifetimes: Lifetimes) -> IssuedTokens {
        let family = self.next_family;
        self.next_family += 1;
        self.families.insert(
            family,
            Family {
                user: user.to_owned(),
                revoked: false,
                current_access: String::new(),
                current_refresh: String::new(),
                issued: Vec::new(),
            },
        );
        self.issue_access(family, now_ms, lifetimes.access);
        self.issue_refresh(family, now_ms, lifetimes.refresh);
        self.record_issued(family)
    }

    /// Append the family's current pair to its history and return it.
    fn record_issued(&mut self, family: FamilyId) -> IssuedTokens {
        let Some(f) = self.families.get_mut(&family) else {
            return IssuedTokens {
                access_token: String::new(),
                refresh_credential: String::new(),
            };
        };
        let pair = IssuedTokens {
            access_token: f.current_access.clone(),
            refresh_credential: f.current_refresh.clone(),
        };
        f.issued.push(pair.clone());
        pair
    }

    /// A new access token for a non-rotating family (the entity token stays): recorded as a pair.
    pub fn issue_access_keep_refresh(&mut self, family: FamilyId, now_ms: u64, ttl: Duration) -> String {
        let token = self.issue_access(family, now_ms, ttl);
        self.record_issued(family);
        token
    }

    /// Every pair issued to the family of `token` (any access or refresh credential of it),
    /// oldest first.
    pub fn issued_pairs(&self, token: &str) -> Vec<IssuedTokens> {
        self.family_of(token)
            .and_then(|f| self.families.get(&f))
            .map(|f| f.issued.clone())
            .unwrap_or_default()
    }

    /// A new access token for `family`, which becomes its current one. Earlier ones stay valid.
    pub fn issue_access(&mut self, family: FamilyId, now_ms: u64, ttl: Duration) -> String {
        let user = self.families.get(&family).map(|f| f.user.clone()).unwrap_or_default();
        let ttl_ms = duration_ms(ttl);
        let iat = now_ms / 1000;
        let exp = iat.saturating_add(ttl_ms.div_ceil(1000));
        let claims = json!({
            "sub": user,
            "iat": iat,
            "exp": exp,
            "jti": URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
            "fam": family,
        });
        let token = self.signer.sign(&claims);
        self.access.insert(
            token.clone(),
            AccessRecord {
                family,
                valid_until_ms: exp.saturating_mul(1000).max(now_ms.saturating_add(ttl_ms)),
                revoked: false,
            },
        );
        if let Some(f) = self.families.get_mut(&family) {
            f.current_access.clone_from(&token);
        }
        token
    }

    fn issue_refresh(&mut self, family: FamilyId, now_ms: u64, ttl: Duration) -> String {
        let token = opaque_token();
        self.refresh.insert(
            token.clone(),
            RefreshRecord {
                family,
                expires_at_ms: now_ms.saturating_add(duration_ms(ttl)),
                rotated_out: false,
            },
        );
        if let Some(f) = self.families.get_mut(&family) {
            f.current_refresh.clone_from(&token);
        }
        token
    }

    pub fn lookup_refresh(&self, token: &str, now_ms: u64) -> RefreshLookup {
        let Some(record) = self.refresh.get(token) else {
            return RefreshLookup::Unknown;
        };
        if record.rotated_out {
            return RefreshLookup::RotatedOut(record.family);
        }
        if self.family_revoked(record.family) {
            return RefreshLookup::Revoked;
        }
        if now_ms >= record.expires_at_ms {
            return RefreshLookup::Expired;
        }
        RefreshLookup::Valid(record.family)
    }

    fn family_revoked(&self, family: FamilyId) -> bool {
        self.families.get(&family).is_none_or(|f| f.revoked)
    }

    /// Whether `token` is an unrevoked access token of `family` (expired or not).
    pub fn access_belongs_to(&self, token: &str, family: FamilyId) -> bool {
        self.access
            .get(token)
            .is_some_and(|r| r.family == family && !r.revoked && !self.family_revoked(family))
    }

    /// Whether `token` is the current, unrevoked access token of `family` (expired or not).
    pub fn is_current_access(&self, token: &str, family: FamilyId) -> bool {
        self.access_belongs_to(token, family) && self.families.get(&family).is_some_and(|f| f.current_access == token)
    }

    /// Rotation: `presented` is rotated out, a new access token and refresh token are issued, and
    /// with `revoke_previous_access` the family's previous access token is revoked.
    pub fn rotate(
        &mut self,
        family: FamilyId,
        presented: &str,
        now_ms: u64,
        lifetimes: Lifetimes,
        revoke_previous_access: bool,
    ) -> IssuedTokens {
        if let Some(record) = self.refresh.get_mut(presented) {
            record.rotated_out = true;
        }
        if revoke_previous_access {
            let previous = self.families.get(&family).map(|f| f.current_access.clone());
            if let Some(record) = previous.and_then(|t| self.access.get_mut(&t)) {
                record.revoked = true;
            }
        }
        self.issue_access(family, now_ms, lifetimes.access);
        self.issue_refresh(family, now_ms, lifetimes.refresh);
        self.record_issued(family)
    }

    /// Revokes every token of `family`. Returns whether it was alive until now.
    pub fn revoke_family(&mut self, family: FamilyId) -> bool {
        match self.families.get_mut(&family) {
            Some(f) if !f.revoked => {
                f.revoked = true;
                true
            }
            _ => false,
        }
    }

    /// The family of any access token or refresh credential issued here.
    pub fn family_of(&self, token: &str) -> Option<FamilyId> {
        self.access
            .get(token)
            .map(|r| r.family)
            .or_else(|| self.refresh.get(token).map(|r| r.family))
    }

    /// The user of `token` if it is a genuine, unrevoked, unexpired access token.
    pub fn check_access(&self, token: &str, now_ms: u64) -> Option<String> {
        let record = self.access.get(token)?;
        if record.revoked || self.family_revoked(record.family) {
            return None;
        }
        if now_ms >= record.valid_until_ms {
            return None;
        }
        let claims = self.signer.verify(token)?;
        claims.get("sub")?.as_str().map(str::to_owned)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const LIFETIMES: Lifetimes = Lifetimes {
        access: Duration::from_millis(1500),
        refresh: Duration::from_secs(60),
    };

    fn claims_of(token: &str) -> Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn jwt_has_the_documented_shape_and_signature() {
        let signer = JwtSigner::with_secret(b"k").unwrap();
        let token = signer.sign(&json!({"sub": "u"}));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!token.contains('='));
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
        // Independent HMAC check.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            mac.finalize().into_bytes().to_vec()
        );
        assert_eq!(signer.verify(&token).unwrap(), json!({"sub": "u"}));
        assert!(signer.verify(&format!("{token}x")).is_none());
        assert!(JwtSigner::with_secret(b"other").unwrap().verify(&token).is_none());
        assert!(signer.verify("no dots").is_none());
    }

    #[test]
    fn ttl_is_rounded_up_and_the_token_lives_at_least_its_ttl() {
        let mut store = TokenStore::new(JwtSigner::random().unwrap());
        let now_ms = 1_000_000_700;
        let issued = store.login("alice", now_ms, LIFETIMES);
        let claims = claims_of(&issued.access_token);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["iat"], 1_000_000);
        // A 1.5 s ttl is rounded up to 2 s.
        assert_eq!(claims["exp"], 1_000_002);
        assert_eq!(claims["fam"], 1);
        assert!(claims["jti"].as_str().unwrap().len() >= 20);
        // Valid until max(exp, issue + ttl) = 1_000_002.2 s.
        assert!(store.check_access(&issued.access_token, 1_000_002_199).is_some());
        assert!(store.check_access(&issued.access_token, 1_000_002_200).is_none());
        // Valid until exp when exp is the later bound.
        let issued = store.login("carol", 7_000_100, LIFETIMES);
        assert_eq!(claims_of(&issued.access_token)["exp"], 7_002);
        assert!(store.check_access(&issued.access_token, 7_001_999).is_some());
        assert!(store.check_access(&issued.access_token, 7_002_000).is_none());
        // Sub-second ttl: exp is one second after iat, and the token is valid right after issue.
        let short = Lifetimes {
            access: Duration::from_millis(10),
            ..LIFETIMES
        };
        let issued = store.login("bob", 5_000_995, short);
        assert_eq!(claims_of(&issued.access_token)["exp"], 5_001);
        assert!(store.check_access(&issued.access_token, 5_001_004).is_some());
        assert!(store.check_access(&issued.access_token, 5_001_005).is_none());
        // Zero ttl: born expired.
        let zero = Lifetimes {
            access: Duration::ZERO,
            ..LIFETIMES
        };
        let issued = store.login("dan", 9_000_500, zero);
        let claims = claims_of(&issued.access_token);
        assert_eq!(claims["exp"], claims["iat"]);
        assert!(store.check_access(&issued.access_token, 9_000_500).is_none());
    }

    #[test]
    fn refresh_tokens_are_opaque_unique_and_expire_exactly() {
        let mut store = TokenStore::new(JwtSigner::random().unwrap());
        let a = store.login("u", 10_000, LIFETIMES);
        let b = store.login("u", 10_000, LIFETIMES);
        assert_ne!(a.refresh_credential, b.refresh_credential);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a.refresh_credential).unwrap().len(), 32);
        assert_eq!(
            store.lookup_refresh(&a.refresh_credential, 69_999),
            RefreshLookup::Valid(1)
        );
        assert_eq!(
            store.lookup_refresh(&a.refresh_credential, 70_000),
            RefreshLookup::Expired
        );
        assert_eq!(store.lookup_refresh("nope", 0), RefreshLookup::Unknown);
    }

    #[test]
    fn rotation_and_family_revocation() {
        let mut store = TokenStore::new(JwtSigner::random().unwrap());
        let first = store.login("u", 0, LIFETIMES);
        let second = store.rotate(1, &first.refresh_credential, 0, LIFETIMES, true);
        assert_eq!(
            store.lookup_refresh(&first.refresh_credential, 0),
            RefreshLookup::RotatedOut(1)
        );
        assert!(!store.access_belongs_to(&first.access_token, 1));
        assert!(store.is_current_access(&second.access_token, 1));
        let third = store.rotate(1, &second.refresh_credential, 0, LIFETIMES, false);
        assert!(store.access_belongs_to(&second.access_token, 1));
        assert!(!store.is_current_access(&second.access_token, 1));
        assert_eq!(store.family_of(&third.refresh_credential), Some(1));
        assert!(store.revoke_family(1));
        assert!(!store.revoke_family(1));
        assert_eq!(
            store.lookup_refresh(&third.refresh_credential, 0),
            RefreshLookup::Revoked
        );
        assert!(store.check_access(&third.access_token, 0).is_none());
    }
}
