//! OpenID Connect id_tokens: a profile's `oidc` section, the validation OpenID Connect Core
//! §12.2 asks of an id_token returned by a refresh, and the standard claims a session keeps.
//!
//! Validation is pure: the token, the issuer's key set (JWKS), the server's "now" and the
//! claims already stored go in; the validated claims or the reason of the refusal come out.
//! The signature is checked by the `jsonwebtoken` crate (pure-Rust RustCrypto backend) with
//! exactly the algorithm the profile allows and the key the token's `kid` names; `iss`, `aud`
//! (and `azp` when there are several audiences) as configured; `sub` (and `auth_time`, `azp`)
//! unchanged from the stored claims; `exp` and `iat` against server time, with a leeway.
//! Fetching and caching the key set is the engine's business (ADR 0012).

use std::fmt;

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest id_token inspected, in bytes.
pub(crate) const MAX_ID_TOKEN_LEN: usize = 64 * 1024;
/// Largest key-set (or discovery) document read, in bytes.
pub(crate) const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys read from one key set.
const MAX_KEYS: usize = 64;
/// Longest claim string kept; a longer one is dropped (not truncated).
const MAX_CLAIM_LEN: usize = 2048;
/// Default leeway on `exp` / `iat`, in seconds.
pub(crate) const DEFAULT_LEEWAY_SECS: u64 = 60;
/// Largest leeway a profile may ask for.
pub(crate) const MAX_LEEWAY_SECS: u64 = 600;

/// The signature algorithms a profile may allow (those `crate::jws_verify` checks). Symmetric
/// (`HS*`) algorithms and `none` are never accepted: a public client has no shared secret with
/// the issuer.
pub(crate) fn algorithm_from_name(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        _ => return None,
    })
}

/// A profile's validated `oidc` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) jwks_url: Option<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway_secs: u64,
    /// The profile's `allow_http`: the issuer's URLs follow the endpoint's plain-http rule.
    pub(crate) allow_http: bool,
}

impl OidcSettings {
    /// The issuer (`iss`) an id_token must name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience (`aud`) an id_token must include: the profile's `audience`, else its
    /// `client_id`.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The key-set URL; `None` means discovered from
    /// `{issuer}/.well-known/openid-configuration`.
    pub fn jwks_url(&self) -> Option<&str> {
        self.jwks_url.as_deref()
    }

    /// The discovery document's URL.
    pub(crate) fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'))
    }
}

/// The standard claims of a validated id_token (OpenID Connect Core §5.1), as a session keeps
/// and shows them. Never the id_token itself: it is a credential.
///
/// These are personal data: `Debug` prints the issuer and which claims are present, never their
/// values, and the vault never logs them.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdentityClaims {
    /// Issuer (`iss`).
    pub iss: String,
    /// Subject (`sub`): the user's stable id at the issuer.
    pub sub: String,
    /// When the id_token was issued (`iat`, seconds since the epoch, server time).
    pub iat: i64,
    /// When the user authenticated (`auth_time`), if the issuer says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Authorized party (`azp`), if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `given_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// `family_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// `middle_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// `nickname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// `preferred_username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// `profile` (a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `picture` (a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// `website`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `email_verified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// `gender`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// `birthdate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    /// `zoneinfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoneinfo: Option<String>,
    /// `locale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// `phone_number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// `phone_number_verified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
    /// `updated_at` (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
}

impl fmt::Debug for IdentityClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present: Vec<&str> = [
            ("name", self.name.is_some()),
            ("given_name", self.given_name.is_some()),
            ("family_name", self.family_name.is_some()),
            ("middle_name", self.middle_name.is_some()),
            ("nickname", self.nickname.is_some()),
            ("preferred_username", self.preferred_username.is_some()),
            ("profile", self.profile.is_some()),
            ("picture", self.picture.is_some()),
            ("website", self.website.is_some()),
            ("email", self.email.is_some()),
            ("email_verified", self.email_verified.is_some()),
            ("gender", self.gender.is_some()),
            ("birthdate", self.birthdate.is_some()),
            ("zoneinfo", self.zoneinfo.is_some()),
            ("locale", self.locale.is_some()),
            ("phone_number", self.phone_number.is_some()),
            ("phone_number_verified", self.phone_number_verified.is_some()),
            ("updated_at", self.updated_at.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.then_some(n))
        .collect();
        f.debug_struct("IdentityClaims")
            .field("iss", &self.iss)
            .field("sub", &"<redacted>")
            .field("iat", &self.iat)
            .field("present", &present)
            .finish_non_exhaustive()
    }
}

/// Why an id_token was refused. The texts name the failing check, never a claim's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdTokenError {
    /// No key of the set matches the token's `kid` (or the set has no usable key): the issuer
    /// may have rotated its keys; the set is fetched again once.
    UnknownKey,
    /// Any other failure.
    Invalid(&'static str),
}

impl fmt::Display for IdTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdTokenError::UnknownKey => f.write_str("no key of the issuer's key set matches the id_token's key id"),
            IdTokenError::Invalid(why) => f.write_str(why),
        }
    }
}

/// Read a key-set document (`{"keys": [...]}`); keys of unknown types are skipped, at most
/// [`MAX_KEYS`] are kept. `None` when it is not a key set.
pub(crate) fn parse_jwks(bytes: &[u8]) -> Option<JwkSet> {
    if bytes.len() > MAX_JWKS_BYTES {
        return None;
    }
    let doc: Value = serde_json::from_slice(bytes).ok()?;
    let keys = doc.get("keys")?.as_array()?;
    let keys: Vec<Jwk> = keys
        .iter()
        .take(MAX_KEYS)
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .collect();
    Some(JwkSet { keys })
}

/// The key a token's header names: by `kid`, or the only signing key of the set when the token
/// has none.
fn select_key<'a>(keys: &'a JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<&'a Jwk> {
    let usable = |k: &&Jwk| {
        !matches!(
            k.common.public_key_use,
            Some(PublicKeyUse::Encryption) | Some(PublicKeyUse::Other(_))
        ) && k
            .common
            .key_algorithm
            .is_none_or(|a| a == jsonwebtoken::jwk::KeyAlgorithm::from(alg))
    };
    match kid {
        Some(kid) => keys
            .keys
            .iter()
            .filter(usable)
            .find(|k| k.common.key_id.as_deref() == Some(kid)),
        None => {
            let mut it = keys.keys.iter().filter(usable);
            let only = it.next()?;
            it.next().is_none().then_some(only)
        }
    }
}

fn text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)?
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= MAX_CLAIM_LEN)
        .map(str::to_owned)
}

fn seconds(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })
}

/// Validate an id_token returned by a refresh (OpenID Connect Core §3.1.3.7 and §12.2).
///
/// `server_now_ms` is the server's time (the response's `Date`, else the device clock
/// corrected by the session's measured offset); `stored` are the claims of the session's last
/// validated id_token, if any.
pub(crate) fn validate_id_token(
    token: &str,
    settings: &OidcSettings,
    keys: &JwkSet,
    server_now_ms: i64,
    stored: Option<&IdentityClaims>,
) -> Result<IdentityClaims, IdTokenError> {
    use IdTokenError::Invalid;
    if token.len() > MAX_ID_TOKEN_LEN {
        return Err(Invalid("the id_token is too long"));
    }
    crate::jws_verify::ensure_installed();
    let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid("the id_token is not a signed JWT"))?;
    if !settings.algorithms.contains(&header.alg) {
        return Err(Invalid(
            "the id_token is signed with an algorithm the profile does not allow",
        ));
    }
    let jwk = select_key(keys, header.kid.as_deref(), header.alg).ok_or(IdTokenError::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| Invalid("the issuer's key for the id_token is unusable"))?;
    let mut validation = Validation::new(header.alg);
    // Time is checked below against the server's clock, not this device's.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
    validation.set_issuer(&[settings.issuer.as_str()]);
    validation.set_audience(&[settings.audience.as_str()]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        Invalid(match e.kind() {
            K::InvalidSignature => "the id_token's signature does not verify",
            K::InvalidIssuer => "the id_token's issuer (iss) is not the configured issuer",
            K::InvalidAudience => "the id_token's audience (aud) does not include the configured audience",
            K::MissingRequiredClaim(_) => "the id_token lacks a required claim (iss, sub, aud or exp)",
            K::InvalidAlgorithm => "the id_token's algorithm does not match its key",
            K::InvalidEcdsaKey | K::InvalidEddsaKey | K::InvalidRsaKey(_) | K::InvalidKeyFormat => {
                "the issuer's key for the id_token is unusable"
            }
            _ => "the id_token is malformed",
        })
    })?;
    let c = &data.claims;
    let leeway_ms = i64::try_from(settings.leeway_secs).unwrap_or(0).saturating_mul(1000);
    let exp = seconds(c, "exp").ok_or(Invalid("the id_token's exp is not a number"))?;
    let iat = seconds(c, "iat").ok_or(Invalid("the id_token has no numeric iat"))?;
    if exp.saturating_mul(1000) <= server_now_ms.saturating_sub(leeway_ms) {
        return Err(Invalid("the id_token has expired (exp is past the server's time)"));
    }
    // §12.2: iat is the time the new id_token was issued: now, within the leeway.
    if iat.saturating_mul(1000) > server_now_ms.saturating_add(leeway_ms)
        || iat.saturating_mul(1000) < server_now_ms.saturating_sub(leeway_ms)
    {
        return Err(Invalid("the id_token's iat is not the server's time"));
    }
    if iat > exp {
        return Err(Invalid("the id_token's iat is after its exp"));
    }
    let sub = text(c, "sub").ok_or(Invalid("the id_token's sub is not a string"))?;
    let azp = text(c, "azp");
    let several_audiences = c.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1);
    match &azp {
        Some(azp) if *azp != settings.audience => {
            return Err(Invalid("the id_token's authorized party (azp) is not this client"))
        }
        None if several_audiences => {
            return Err(Invalid(
                "the id_token has several audiences and no authorized party (azp)",
            ))
        }
        _ => {}
    }
    let auth_time = seconds(c, "auth_time");
    if let Some(prev) = stored {
        if prev.sub != sub {
            return Err(Invalid("the id_token's subject (sub) is not the session's"));
        }
        if prev.azp.is_some() != azp.is_some() || (prev.azp.is_some() && prev.azp != azp) {
            return Err(Invalid("the id_token's authorized party (azp) changed"));
        }
        if let (Some(a), Some(b)) = (prev.auth_time, auth_time) {
            if a != b {
                return Err(Invalid("the id_token's auth_time changed"));
            }
        }
    }
    Ok(IdentityClaims {
        iss: settings.issuer.clone(),
        sub,
        iat,
        auth_time,
        azp,
        name: text(c, "name"),
        given_name: text(c, "given_name"),
        family_name: text(c, "family_name"),
        middle_name: text(c, "middle_name"),
        nickname: text(c, "nickname"),
        preferred_username: text(c, "preferred_username"),
        profile: text(c, "profile"),
        picture: text(c, "picture"),
        website: text(c, "website"),
        email: text(c, "email"),
        email_verified: c.get("email_verified").and_then(Value::as_bool),
        gender: text(c, "gender"),
        birthdate: text(c, "birthdate"),
        zoneinfo: text(c, "zoneinfo"),
        locale: text(c, "locale"),
        phone_number: text(c, "phone_number"),
        phone_number_verified: c.get("phone_number_verified").and_then(Value::as_bool),
        updated_at: seconds(c, "updated_at"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;

    // A P-256 test key (the private scalar `d`, base64url) and its public JWK: a fixture, not a
    // secret.
    const D: &str = "xKTgyqKW1-LRYGGOQ3U-ds7D5i8wiUZph6tXilWk07k";
    const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256",
        "x":"2Yijy171VeyClbiRHZ6l9gH2UZ1cUmzqARD19fqgc5c","y":"Ht-F3NGx-TMFQ0u7YZCdwsLiudEBOh4LJ9M9XyyQ3-8"}]}"#;
    const NOW_S: i64 = 1_800_000_000;

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer: "https://op.example".into(),
            audience: "client-1".into(),
            jwks_url: None,
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            leeway_secs: 60,
            allow_http: false,
        }
    }

    /// A compact JWS signed with the fixture key (ES256), written by hand: the vault's
    /// jsonwebtoken provider only verifies.
    fn sign(kid: Option<&str>, claims: Value) -> String {
        let mut header = serde_json::json!({"alg": "ES256", "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = kid.into();
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = p256::ecdsa::SigningKey::from_slice(&URL_SAFE_NO_PAD.decode(D).unwrap()).unwrap();
        let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn claims() -> Value {
        serde_json::json!({"iss": "https://op.example", "aud": "client-1", "sub": "user-1",
            "iat": NOW_S, "exp": NOW_S + 3600, "email": "a@example.com", "email_verified": true,
            "name": "A B"})
    }

    fn check(token: &str, stored: Option<&IdentityClaims>) -> Result<IdentityClaims, IdTokenError> {
        validate_id_token(
            token,
            &settings(),
            &parse_jwks(JWKS.as_bytes()).unwrap(),
            NOW_S * 1000,
            stored,
        )
    }

    fn with(f: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut c = claims();
        f(c.as_object_mut().unwrap());
        c
    }

    #[test]
    fn a_valid_id_token_yields_its_standard_claims() {
        let c = check(&sign(Some("k1"), claims()), None).unwrap();
        assert_eq!(c.sub, "user-1");
        assert_eq!(c.email.as_deref(), Some("a@example.com"));
        assert_eq!(c.email_verified, Some(true));
        assert_eq!(c.name.as_deref(), Some("A B"));
        assert_eq!(c.iat, NOW_S);
        // The single key of the set is used for a token without kid.
        assert!(check(&sign(None, claims()), None).is_ok());
        // Debug shows which claims exist, never their values.
        let d = format!("{c:?}");
        assert!(
            !d.contains("user-1") && !d.contains("a@example.com") && !d.contains("A B"),
            "{d}"
        );
        assert!(d.contains("email"), "{d}");
    }

    #[test]
    fn every_check_refuses_what_it_guards() {
        let ok = check(&sign(Some("k1"), claims()), None).unwrap();
        let refuse = |c: Value, stored: Option<&IdentityClaims>| check(&sign(Some("k1"), c), stored).unwrap_err();
        assert_eq!(
            check(&sign(Some("other"), claims()), None).unwrap_err(),
            IdTokenError::UnknownKey
        );
        for (c, why) in [
            (
                with(|m| drop(m.insert("iss".into(), "https://evil.example".into()))),
                "issuer",
            ),
            (
                with(|m| drop(m.insert("aud".into(), "another-client".into()))),
                "audience",
            ),
            (
                with(|m| drop(m.insert("aud".into(), serde_json::json!(["client-1", "x"])))),
                "azp",
            ),
            (with(|m| drop(m.insert("azp".into(), "x".into()))), "azp"),
            (with(|m| drop(m.insert("exp".into(), (NOW_S - 61).into()))), "expired"),
            (with(|m| drop(m.insert("iat".into(), (NOW_S + 61).into()))), "iat"),
            (with(|m| drop(m.insert("iat".into(), (NOW_S - 61).into()))), "iat"),
            (with(|m| drop(m.remove("iat"))), "iat"),
            (with(|m| drop(m.remove("sub"))), "required"),
        ] {
            let e = refuse(c, None);
            assert!(e.to_string().contains(why), "{why}: {e}");
        }
        // Several audiences are fine with azp naming this client.
        assert!(check(
            &sign(
                Some("k1"),
                with(|m| {
                    m.insert("aud".into(), serde_json::json!(["client-1", "x"]));
                    m.insert("azp".into(), "client-1".into());
                })
            ),
            None
        )
        .is_ok());
        // sub must stay the session's.
        let e = refuse(with(|m| drop(m.insert("sub".into(), "user-2".into()))), Some(&ok));
        assert!(e.to_string().contains("sub"), "{e}");
        assert!(check(&sign(Some("k1"), claims()), Some(&ok)).is_ok());
    }

    #[test]
    fn a_tampered_token_or_a_confused_algorithm_is_refused() {
        let t = sign(Some("k1"), claims());
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let forged =
            URL_SAFE_NO_PAD.encode(with(|m| drop(m.insert("email".into(), "evil@example.com".into()))).to_string());
        parts[1] = forged;
        let e = check(&parts.join("."), None).unwrap_err();
        assert!(e.to_string().contains("signature"), "{e}");
        // HS256 signed with the public key's bytes (algorithm confusion) or alg "none".
        let hs = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k1"}"#),
            t.split('.').nth(1).unwrap(),
            URL_SAFE_NO_PAD.encode([7u8; 32])
        );
        assert!(check(&hs, None).unwrap_err().to_string().contains("algorithm"));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#),
            t.split('.').nth(1).unwrap()
        );
        assert!(check(&none, None).is_err());
        assert!(check("not a jwt", None).is_err());
    }
}
