//! The built-in refresh dialects ([`Preset`]): each one is the JSON a profile document would
//! otherwise spell out, which [`Profile::from_json`](super::Profile::from_json) and
//! [`Profile::preset`](super::Profile::preset) merge the host's own keys over.

use serde_json::Value;

/// The built-in dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Seed 000: game backend; JSON `{entityToken, expiringAccessToken}` with `api-key` and
    /// `Authorization: Bearer`; envelope `{status, code, message, errors, data}`; the entity
    /// token is never rotated; expiry from the JWT `exp`.
    EntityTokenEnvelope,
    /// Seed 001: JSON `{accessToken, refreshToken}`, no auth header; `{success, data}` /
    /// `{success:false, error:{type,message}}`; rotation on every refresh; refresh token 12 h.
    RotatingSuccessEnvelope,
    /// Seed 002: `Authorization: Bearer <current access>`, `Version: 2.0`, JSON
    /// `{refreshToken}`; `{accessToken, refreshToken}`; rotation; refresh token ~30 days.
    RotatingBearerVersioned,
    /// Seed 003: Keycloak's OpenID Connect token endpoint (form-encoded, `client_id` in the
    /// body; `expires_in` relative or absolute; `refresh_expires_in: 0` is an offline token;
    /// logout revokes at the sibling `revoke` endpoint, RFC 7009).
    Keycloak,
    /// Plain RFC 6749 §6 refresh (revocation, RFC 7009, at `revocation_url` when set;
    /// form-encoded; HTTP Basic client authentication when a client
    /// secret is configured).
    OAuth2,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 5] = [
        Preset::EntityTokenEnvelope,
        Preset::RotatingSuccessEnvelope,
        Preset::RotatingBearerVersioned,
        Preset::Keycloak,
        Preset::OAuth2,
    ];

    /// The name used in profile JSON (`"preset": "..."`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::EntityTokenEnvelope => "entity-token-envelope",
            Preset::RotatingSuccessEnvelope => "rotating-success-envelope",
            Preset::RotatingBearerVersioned => "rotating-bearer-versioned",
            Preset::Keycloak => "keycloak",
            Preset::OAuth2 => "oauth2",
        }
    }

    /// The preset with this name (the seed numbers `seed-000` … `seed-003` are aliases).
    pub fn from_name(name: &str) -> Option<Preset> {
        Some(match name {
            "entity-token-envelope" | "seed-000" => Preset::EntityTokenEnvelope,
            "rotating-success-envelope" | "seed-001" => Preset::RotatingSuccessEnvelope,
            "rotating-bearer-versioned" | "seed-002" => Preset::RotatingBearerVersioned,
            "keycloak" | "seed-003" => Preset::Keycloak,
            "oauth2" | "rfc6749" => Preset::OAuth2,
            _ => return None,
        })
    }

    /// The preset's JSON (every key but `url` and the host's client settings).
    pub fn defaults(self) -> Value {
        match self {
            Preset::EntityTokenEnvelope => serde_json::json!({
                "method": "POST",
                "encoding": "json",
                "headers": {"api-key": "{api_key}", "Authorization": "Bearer {access_token}"},
                "body": {"entityToken": "{refresh_credential}", "expiringAccessToken": "{access_token}"},
                "rotation": "never",
                "response": {
                    "access_token": "data",
                    "success": {"path": "status", "equals": "success"},
                    "envelope_status": "code",
                    "error_code": ["errors.0", "message"]
                },
                "reauth_statuses": [401],
                "default_lifetime_secs": 3600
            }),
            Preset::RotatingSuccessEnvelope => serde_json::json!({
                "method": "POST",
                "encoding": "json",
                "body": {"accessToken": "{access_token}", "refreshToken": "{refresh_credential}"},
                "rotation": "always",
                "response": {
                    "access_token": "data.accessToken",
                    "refresh_token": "data.refreshToken",
                    "success": {"path": "success", "equals": true},
                    "error_code": ["error.type"]
                },
                "reauth_errors": ["AUTHENTICATION"],
                "reauth_statuses": [401],
                "default_lifetime_secs": 3600,
                "refresh_lifetime_secs": 43200
            }),
            Preset::RotatingBearerVersioned => serde_json::json!({
                "method": "POST",
                "encoding": "json",
                "headers": {"Authorization": "Bearer {access_token}", "Version": "2.0"},
                "body": {"refreshToken": "{refresh_credential}"},
                "rotation": "always",
                "response": {
                    "access_token": "accessToken",
                    "refresh_token": "refreshToken",
                    "error_code": ["type", "error"]
                },
                "reauth_statuses": [401],
                "default_lifetime_secs": 3600,
                "refresh_lifetime_secs": 2_592_000
            }),
            Preset::Keycloak => serde_json::json!({
                "method": "POST",
                "encoding": "form",
                "body": {
                    "grant_type": "refresh_token",
                    "client_id": "{client_id}",
                    "refresh_token": "{refresh_credential}",
                    "client_secret": "{client_secret}"
                },
                "rotation": "optional",
                "response": {
                    "access_token": "access_token",
                    "refresh_token": "refresh_token",
                    "expires_in": "expires_in",
                    "refresh_expires_in": "refresh_expires_in",
                    "token_type": "token_type",
                    "scope": "scope",
                    "id_token": "id_token",
                    "error_code": ["error"]
                },
                "refresh_expires_in_zero_is_offline": true,
                "reauth_errors": ["invalid_grant"],
                "default_lifetime_secs": 1800,
                "revocation_url": "./revoke"
            }),
            Preset::OAuth2 => serde_json::json!({
                "method": "POST",
                "encoding": "form",
                "client_auth": "basic",
                "body": {
                    "grant_type": "refresh_token",
                    "refresh_token": "{refresh_credential}",
                    "scope": "{scope}",
                    "client_id": "{client_id}"
                },
                "rotation": "optional",
                "response": {
                    "access_token": "access_token",
                    "refresh_token": "refresh_token",
                    "expires_in": "expires_in",
                    "refresh_expires_in": "refresh_expires_in",
                    "token_type": "token_type",
                    "scope": "scope",
                    "id_token": "id_token",
                    "error_code": ["error"]
                },
                "reauth_errors": ["invalid_grant"],
                "default_lifetime_secs": 3600
            }),
        }
    }
}
