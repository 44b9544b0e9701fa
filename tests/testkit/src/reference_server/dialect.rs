//! The three vendor refresh dialects, each as its seed document describes it.
//!
//! | dialect | seed | request | success | failure |
//! |---|---|---|---|---|
//! | [`Dialect::EntityToken`] | `000` | `POST /v2/client/auth/refresh-token`, headers `api-key`, `Authorization: Bearer <access>`, JSON `{entityToken, expiringAccessToken}` | 200 `{status:"success", code:200, message, errors:[], data:"<JWT>"}` | 401 (403 for a wrong `api-key`) `{status:"error", code, message, errors:[…], data:null}` |
//! | [`Dialect::SuccessEnvelope`] | `001` | `POST /v2/Auth/RefreshToken`, no auth header, JSON `{accessToken, refreshToken}` | 200 `{success:true, data:{accessToken, refreshToken}}` | 401 `{success:false, error:{type:"AUTHENTICATION", message:"Invalid or expired refresh token"}}` |
//! | [`Dialect::VersionedBearer`] | `002` | `POST /User/RefreshToken`, headers `Authorization: Bearer <current access>`, `Version: 2.0`, JSON `{refreshToken}` | 200 `{accessToken, refreshToken}` | 401 `{type:"unauthorized", title:"Unauthorized", status:401, detail}` |
//!
//! Common rules: the request must say `Content-Type: application/json` (else 415) and carry a JSON
//! object (else 400); a missing or non-string field is 400; every 4xx body has the dialect's own
//! failure shape.
//!
//! Per dialect:
//! * `000`: the entity token is the family's refresh credential; it is never rotated and lives for
//!   [`ServerConfig::refresh_ttl`](super::ServerConfig::refresh_ttl). `api-key` missing → 401, wrong →
//!   403 (checked first). The bearer and `expiringAccessToken` must each be an unrevoked access token of
//!   the entity's family; expired is fine (that is the point) and older ones are accepted, since
//!   nothing is rotated. A refresh issues a new access token and revokes nothing.
//! * `001`: `refreshToken` must be current; `accessToken` must be the family's current access token
//!   (expired is fine). Every refresh rotates the refresh token; earlier access tokens stay valid until
//!   their `exp`.
//! * `002`: `Version` other than `2.0` (or missing) → 400, checked first. The bearer must be the
//!   family's current access token (expired is fine; a previous, revoked one is 401). Every refresh
//!   rotates the refresh token and revokes the previous access token.
//! * `001` and `002`: presenting a refresh token that was already rotated out revokes the whole family
//!   (reuse detection), whatever else the request says.

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Map, Value};

use super::http::{Request, Response};
use super::tokens::{FamilyId, Lifetimes, RefreshLookup, TokenStore};
use super::IssuedTokens;

/// One of the three vendor refresh dialects of the seed documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Seed `000`: game backend with a long-lived, never-rotated entity token and a status envelope.
    EntityToken,
    /// Seed `001`: `{success, data}` envelope, refresh token rotated on every refresh.
    SuccessEnvelope,
    /// Seed `002`: bearer of the current access token plus `Version: 2.0`; rotation and revocation of
    /// the previous access token.
    VersionedBearer,
}

impl Dialect {
    /// All dialects, in seed order.
    pub const ALL: [Dialect; 3] = [Dialect::EntityToken, Dialect::SuccessEnvelope, Dialect::VersionedBearer];

    /// The refresh route of the seed document.
    pub fn refresh_path(self) -> &'static str {
        match self {
            Dialect::EntityToken => "/v2/client/auth/refresh-token",
            Dialect::SuccessEnvelope => "/v2/Auth/RefreshToken",
            Dialect::VersionedBearer => "/User/RefreshToken",
        }
    }

    /// The seed document number: `"000"`, `"001"` or `"002"`.
    pub fn seed(self) -> &'static str {
        match self {
            Dialect::EntityToken => "000",
            Dialect::SuccessEnvelope => "001",
            Dialect::VersionedBearer => "002",
        }
    }

    /// The dialect's success body for freshly issued tokens.
    pub(crate) fn success_response(self, tokens: &IssuedTokens) -> Response {
        let body = match self {
            Dialect::EntityToken => json!({
                "status": "success",
                "code": 200,
                "message": "Token refreshed",
                "errors": [],
                "data": tokens.access_token,
            }),
            Dialect::SuccessEnvelope => json!({
                "success": true,
                "data": {
                    "accessToken": tokens.access_token,
                    "refreshToken": tokens.refresh_credential,
                },
            }),
            Dialect::VersionedBearer => json!({
                "accessToken": tokens.access_token,
                "refreshToken": tokens.refresh_credential,
            }),
        };
        Response::json(200, &body)
    }

    /// The dialect's failure body, sent with HTTP `status`.
    pub(crate) fn failure_response(self, status: u16, detail: &str) -> Response {
        Response::json(status, &self.failure_body(status, detail))
    }

    fn failure_body(self, status: u16, detail: &str) -> Value {
        match self {
            Dialect::EntityToken => json!({
                "status": "error",
                "code": status,
                "message": if status == 401 || status == 403 {
                    "Token refresh failed"
                } else {
                    "Invalid request"
                },
                "errors": [detail],
                "data": null,
            }),
            Dialect::SuccessEnvelope if status == 401 => json!({
                "success": false,
                "error": {
                    "type": "AUTHENTICATION",
                    "message": "Invalid or expired refresh token",
                },
            }),
            Dialect::SuccessEnvelope => json!({
                "success": false,
                "error": { "type": "VALIDATION", "message": detail },
            }),
            Dialect::VersionedBearer => {
                let (kind, title) = match status {
                    401 => ("unauthorized", "Unauthorized"),
                    415 => ("unsupported_media_type", "Unsupported Media Type"),
                    _ => ("bad_request", "Bad Request"),
                };
                json!({ "type": kind, "title": title, "status": status, "detail": detail })
            }
        }
    }

    /// HTTP 200 whose body nevertheless reports failure (`000`: `status:"error"`, `code:401`; `001`:
    /// `success:false`; `002`: `{}`, i.e. no tokens at all).
    pub(crate) fn envelope_failure_response(self) -> Response {
        let body = match self {
            Dialect::VersionedBearer => json!({}),
            _ => self.failure_body(401, "refresh rejected"),
        };
        Response::json(200, &body)
    }

    /// Runs one refresh request against the store.
    pub(crate) fn refresh(self, request: &Request, env: &mut RefreshEnv<'_>) -> RefreshOutcome {
        let result = match self {
            Dialect::EntityToken => refresh_entity_token(request, env),
            Dialect::SuccessEnvelope => refresh_success_envelope(request, env),
            Dialect::VersionedBearer => refresh_versioned_bearer(request, env),
        };
        match result {
            Ok(tokens) => RefreshOutcome::Refreshed(tokens),
            Err(rejection) => RefreshOutcome::Rejected(rejection),
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.seed())
    }
}

/// The text given to [`Dialect::from_str`] names no dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDialect(pub String);

impl fmt::Display for UnknownDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown dialect {:?} (expected 000, 001 or 002)", self.0)
    }
}

impl std::error::Error for UnknownDialect {}

impl FromStr for Dialect {
    type Err = UnknownDialect;

    /// Accepts the seed number (`000`, `0`, …) or the variant name in kebab or snake case
    /// (`entity-token`, `success_envelope`, `versioned-bearer`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "000" | "0" | "entity-token" | "entitytoken" => Ok(Dialect::EntityToken),
            "001" | "1" | "success-envelope" | "successenvelope" => Ok(Dialect::SuccessEnvelope),
            "002" | "2" | "versioned-bearer" | "versionedbearer" => Ok(Dialect::VersionedBearer),
            _ => Err(UnknownDialect(s.to_owned())),
        }
    }
}

/// What a refresh needs from the server.
#[derive(Debug)]
pub(crate) struct RefreshEnv<'a> {
    pub store: &'a mut TokenStore,
    pub now_ms: u64,
    pub lifetimes: Lifetimes,
    pub api_key: &'a str,
}

/// How a refresh request ended.
#[derive(Debug)]
pub(crate) enum RefreshOutcome {
    Refreshed(IssuedTokens),
    Rejected(Rejection),
}

/// A refused refresh: HTTP status, a detail for the body, and whether it was a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub status: u16,
    pub detail: String,
    pub reuse: Option<ReuseDetected>,
}

/// A rotated-out refresh token was presented and its family revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReuseDetected {
    /// Whether this detection revoked the family (false if it already was).
    pub newly_revoked: bool,
}

fn reject(status: u16, detail: &str) -> Rejection {
    Rejection {
        status,
        detail: detail.to_owned(),
        reuse: None,
    }
}

/// The JSON object body, after checking the content type.
fn json_body(request: &Request) -> Result<Map<String, Value>, Rejection> {
    if !request.has_json_content_type() {
        return Err(reject(415, "Content-Type must be application/json"));
    }
    request
        .json_object()
        .ok_or_else(|| reject(400, "body must be a JSON object"))
}

fn string_field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, Rejection> {
    body.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| reject(400, &format!("{name} is required and must be a string")))
}

/// Looks up a rotating refresh token; a rotated-out one revokes its family.
fn rotating_family(env: &mut RefreshEnv<'_>, refresh_token: &str) -> Result<FamilyId, Rejection> {
    match env.store.lookup_refresh(refresh_token, env.now_ms) {
        RefreshLookup::Valid(family) => Ok(family),
        RefreshLookup::RotatedOut(family) => Err(Rejection {
            status: 401,
            detail: "refresh token reuse detected; session revoked".to_owned(),
            reuse: Some(ReuseDetected {
                newly_revoked: env.store.revoke_family(family),
            }),
        }),
        RefreshLookup::Revoked => Err(reject(401, "refresh token revoked")),
        RefreshLookup::Expired => Err(reject(401, "refresh token expired")),
        RefreshLookup::Unknown => Err(reject(401, "unknown refresh token")),
    }
}

fn refresh_entity_token(request: &Request, env: &mut RefreshEnv<'_>) -> Result<IssuedTokens, Rejection> {
    match request.header("api-key") {
        None => return Err(reject(401, "api-key header is required")),
        Some(key) if key != env.api_key => return Err(reject(403, "invalid api-key")),
        Some(_) => {}
    }
    let bearer = request
        .bearer()
        .ok_or_else(|| reject(401, "Authorization: Bearer <token> is required"))?;
    let body = json_body(request)?;
    let entity_token = string_field(&body, "entityToken")?;
    let expiring = string_field(&body, "expiringAccessToken")?;
    let family = match env.store.lookup_refresh(entity_token, env.now_ms) {
        RefreshLookup::Valid(family) => family,
        RefreshLookup::Expired => return Err(reject(401, "entity token expired")),
        _ => return Err(reject(401, "invalid entity token")),
    };
    if !env.store.access_belongs_to(bearer, family) {
        return Err(reject(401, "invalid session token"));
    }
    if !env.store.access_belongs_to(expiring, family) {
        return Err(reject(401, "invalid expiringAccessToken"));
    }
    let access_token = env
        .store
        .issue_access_keep_refresh(family, env.now_ms, env.lifetimes.access);
    Ok(IssuedTokens {
        access_token,
        refresh_credential: entity_token.to_owned(),
    })
}

fn refresh_success_envelope(request: &Request, env: &mut RefreshEnv<'_>) -> Result<IssuedTokens, Rejection> {
    let body = json_body(request)?;
    let access_token = string_field(&body, "accessToken")?;
    let refresh_token = string_field(&body, "refreshToken")?;
    let family = rotating_family(env, refresh_token)?;
    if !env.store.is_current_access(access_token, family) {
        return Err(reject(401, "accessToken is not the session's current token"));
    }
    Ok(env
        .store
        .rotate(family, refresh_token, env.now_ms, env.lifetimes, false))
}

fn refresh_versioned_bearer(request: &Request, env: &mut RefreshEnv<'_>) -> Result<IssuedTokens, Rejection> {
    match request.header("version") {
        Some("2.0") => {}
        Some(_) => return Err(reject(400, "unsupported API version; send Version: 2.0")),
        None => return Err(reject(400, "Version header is required")),
    }
    let bearer = request
        .bearer()
        .ok_or_else(|| reject(401, "Authorization: Bearer <access token> is required"))?;
    let body = json_body(request)?;
    let refresh_token = string_field(&body, "refreshToken")?;
    let family = rotating_family(env, refresh_token)?;
    if !env.store.is_current_access(bearer, family) {
        return Err(reject(401, "bearer is not the session's current access token"));
    }
    Ok(env.store.rotate(family, refresh_token, env.now_ms, env.lifetimes, true))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names_round_trip() {
        for dialect in Dialect::ALL {
            assert_eq!(dialect.seed().parse::<Dialect>().unwrap(), dialect);
            assert_eq!(format!("{dialect:?}").parse::<Dialect>().unwrap(), dialect);
            assert!(dialect.refresh_path().starts_with('/'));
        }
        assert_eq!("entity-token".parse::<Dialect>(), Ok(Dialect::EntityToken));
        assert_eq!("versioned_bearer".parse::<Dialect>(), Ok(Dialect::VersionedBearer));
        assert!("003".parse::<Dialect>().is_err());
    }

    #[test]
    fn failure_bodies_match_the_seeds() {
        let body = |d: Dialect, status| d.failure_body(status, "why");
        assert_eq!(
            body(Dialect::EntityToken, 401),
            json!({"status": "error", "code": 401, "message": "Token refresh failed",
                   "errors": ["why"], "data": null})
        );
        assert_eq!(
            body(Dialect::SuccessEnvelope, 401),
            json!({"success": false, "error": {"type": "AUTHENTICATION",
                   "message": "Invalid or expired refresh token"}})
        );
        assert_eq!(
            body(Dialect::VersionedBearer, 401),
            json!({"type": "unauthorized", "title": "Unauthorized", "status": 401,
                   "detail": "why"})
        );
    }
}
