//! Refresh dialects as data (sans-IO).
//!
//! A [`Profile`] describes one refresh endpoint: where to send, how to encode, where each
//! credential goes, how to read the answer and how to classify failures. It is loaded from JSON
//! a host ships in its configuration, or taken from a built-in preset ([`Preset`]) with the
//! host's URL and client settings merged over it. Building a request
//! ([`Profile::build_request`]) and reading a response ([`Profile::parse_response`]) are pure
//! functions: no I/O and no clock reads (time is passed in), so tests feed them bytes.
//!
//! Templates: header values and body fields are strings with placeholders —
//! `{access_token}`, `{refresh_credential}` (alias `{refresh_token}`), `{client_id}`,
//! `{client_secret}`, `{scope}`, `{api_key}`. A field whose template is exactly one placeholder
//! with no value (no client secret, say) is left out of the request.
//!
//! Hostile profiles (absurd sizes, non-HTTP schemes, CR/LF in headers, unknown placeholders,
//! unknown keys) are rejected when loaded, never when used.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{Result, VaultError};
use crate::secret::SecretString;
use crate::session::{validate_token, ExpiryValue, ReceivedTokens, RefreshExpiry};
use crate::transport::{HttpHeader, HttpRequest, HttpResponse};

/// Largest profile JSON accepted.
pub const MAX_PROFILE_JSON: usize = 64 * 1024;
/// Default response body cap (1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
const MAX_RESPONSE_CAP: usize = 16 * 1024 * 1024;
const MAX_LIFETIME_SECS: u64 = 10 * 365 * 86_400;

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
    /// body; `expires_in` relative or absolute; `refresh_expires_in: 0` is an offline token).
    Keycloak,
    /// Plain RFC 6749 §6 refresh (form-encoded; HTTP Basic client authentication when a client
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
                    "error_code": ["error"]
                },
                "refresh_expires_in_zero_is_offline": true,
                "reauth_errors": ["invalid_grant"],
                "default_lifetime_secs": 1800
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
                    "error_code": ["error"]
                },
                "reauth_errors": ["invalid_grant"],
                "default_lifetime_secs": 3600
            }),
        }
    }
}

/// Body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    /// `application/json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// How the client authenticates when it has a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Client id and secret go where the body templates put them.
    #[default]
    Body,
    /// HTTP Basic (RFC 6749 §2.3.1); `{client_id}`/`{client_secret}`-only body fields are left out.
    Basic,
}

/// Whether the server rotates the refresh credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    /// A new refresh credential comes back with every refresh.
    Always,
    /// Maybe; a response without one keeps the old one.
    #[default]
    Optional,
    /// Never (an entity token); any refresh token in the response is ignored.
    Never,
}

/// A success flag: the response succeeded iff `path` equals `equals`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessRule {
    /// Where the flag is.
    pub path: String,
    /// The value that means success.
    pub equals: Value,
}

/// How to read a response.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// Path of the new access token (`data.accessToken`; `""` is the root).
    pub access_token: String,
    /// Path of the new refresh credential, if the server rotates it.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Path of `expires_in` (relative seconds, or an absolute epoch time in s or ms).
    #[serde(default)]
    pub expires_in: Option<String>,
    /// Path of `refresh_expires_in`.
    #[serde(default)]
    pub refresh_expires_in: Option<String>,
    /// Path of the token type.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Path of the granted scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// A success flag for HTTP-200 envelopes.
    #[serde(default)]
    pub success: Option<SuccessRule>,
    /// Path of an HTTP-like status code inside an envelope (seed 000's `code`).
    #[serde(default)]
    pub envelope_status: Option<String>,
    /// Paths where an error code may be found, tried in order.
    #[serde(default)]
    pub error_code: Vec<String>,
}

/// An ordered list of (name, template) pairs, read from a JSON object in document order.
#[derive(Debug, Clone, PartialEq, Default)]
struct OrderedPairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedPairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedPairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<OrderedPairs, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    if out.len() >= 64 {
                        return Err(serde::de::Error::custom("too many entries"));
                    }
                    out.push((k, v));
                }
                Ok(OrderedPairs(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// The JSON form of a profile (after the preset merge).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSpec {
    name: String,
    url: String,
    #[serde(default = "default_method")]
    method: String,
    encoding: BodyEncoding,
    #[serde(default)]
    headers: OrderedPairs,
    #[serde(default)]
    body: OrderedPairs,
    #[serde(default)]
    client_auth: ClientAuth,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<SecretString>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    api_key: Option<SecretString>,
    #[serde(default)]
    rotation: Rotation,
    response: ResponseSpec,
    #[serde(default)]
    reauth_errors: Vec<String>,
    #[serde(default)]
    reauth_statuses: Vec<u16>,
    #[serde(default)]
    refresh_expires_in_zero_is_offline: bool,
    #[serde(default = "default_lifetime")]
    default_lifetime_secs: u64,
    #[serde(default)]
    refresh_lifetime_secs: Option<u64>,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_cap")]
    max_response_bytes: usize,
    #[serde(default)]
    allow_http: bool,
}

fn default_method() -> String {
    "POST".into()
}
fn default_lifetime() -> u64 {
    3600
}
fn default_timeout() -> u64 {
    15_000
}
fn default_cap() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}

/// A part of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    AccessToken,
    RefreshCredential,
    ClientId,
    ClientSecret,
    Scope,
    ApiKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Template(Vec<Piece>);

impl Template {
    fn parse(s: &str) -> Result<Template> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| VaultError::invalid("a template has an unclosed '{'"))?;
            let var = match &after[..close] {
                "access_token" => Var::AccessToken,
                "refresh_credential" | "refresh_token" | "entity_token" => Var::RefreshCredential,
                "client_id" => Var::ClientId,
                "client_secret" => Var::ClientSecret,
                "scope" => Var::Scope,
                "api_key" => Var::ApiKey,
                other => {
                    return Err(VaultError::invalid(format!(
                        "unknown placeholder {{{}}} in a template",
                        other.chars().take(40).collect::<String>()
                    )))
                }
            };
            pieces.push(Piece::Var(var));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(VaultError::invalid("a template has a stray '}'"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template(pieces))
    }

    fn sole_var(&self) -> Option<Var> {
        match self.0.as_slice() {
            [Piece::Var(v)] => Some(*v),
            _ => None,
        }
    }

    /// Render; `Ok(None)` when a sole placeholder has no value (the field is left out).
    fn render(&self, vals: &Values<'_>) -> Result<Option<SecretString>> {
        if let Some(v) = self.sole_var() {
            return Ok(vals.get(v).map(SecretString::new));
        }
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => match vals.get(*v) {
                    Some(s) => out.push_str(s),
                    None => {
                        let s = SecretString::new(out);
                        drop(s);
                        return Err(VaultError::invalid(format!(
                            "the profile needs {v:?}, which is not set"
                        )));
                    }
                },
            }
        }
        Ok(Some(SecretString::new(out)))
    }
}

struct Values<'a> {
    access_token: &'a str,
    refresh_credential: Option<&'a str>,
    client_id: Option<&'a str>,
    client_secret: Option<&'a str>,
    scope: Option<&'a str>,
    api_key: Option<&'a str>,
}

impl Values<'_> {
    fn get(&self, v: Var) -> Option<&str> {
        let s = match v {
            Var::AccessToken => Some(self.access_token),
            Var::RefreshCredential => self.refresh_credential,
            Var::ClientId => self.client_id,
            Var::ClientSecret => self.client_secret,
            Var::Scope => self.scope,
            Var::ApiKey => self.api_key,
        };
        s.filter(|s| !s.is_empty())
    }
}

/// A validated refresh dialect for one endpoint.
#[derive(Clone)]
pub struct Profile {
    name: String,
    url: String,
    method: String,
    encoding: BodyEncoding,
    headers: Vec<(String, Template)>,
    body: Vec<(String, Template)>,
    client_auth: ClientAuth,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    scope: Option<String>,
    api_key: Option<SecretString>,
    rotation: Rotation,
    response: ResponseSpec,
    reauth_errors: Vec<String>,
    reauth_statuses: Vec<u16>,
    refresh_expires_in_zero_is_offline: bool,
    default_lifetime: Duration,
    refresh_lifetime: Option<Duration>,
    timeout: Duration,
    max_response_bytes: usize,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("method", &self.method)
            .field("encoding", &self.encoding)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            )
            .field("body", &self.body.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

/// Deep-merge `over` into `base` (objects merge key by key; anything else replaces).
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() && k != "headers" && k != "body" => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn no_controls(what: &str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(VaultError::invalid(format!("{what} is longer than {max} bytes")));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(VaultError::invalid(format!(
            "{what} contains control characters (CR/LF?)"
        )));
    }
    Ok(())
}

fn check_path(what: &str, p: &str) -> Result<()> {
    no_controls(what, p, 256)?;
    if p.split('.').count() > 16 {
        return Err(VaultError::invalid(format!("{what} is nested too deeply")));
    }
    Ok(())
}

/// Validate a URL well enough to refuse anything hostile; returns whether its host is loopback.
fn check_url(url: &str) -> Result<(bool, bool)> {
    no_controls("the URL", url, 2048)?;
    if url.contains(' ') {
        return Err(VaultError::invalid("the URL contains spaces"));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| VaultError::invalid("the URL has no scheme"))?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err(VaultError::invalid("the URL's scheme must be http or https")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(VaultError::invalid("the URL needs a host and no user info"));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority)
    };
    if host.is_empty() {
        return Err(VaultError::invalid("the URL has an empty host"));
    }
    let loopback = host == "localhost" || host == "::1" || host.starts_with("127.");
    Ok((https, loopback))
}

impl Profile {
    /// Load a profile from JSON. With `"preset": "<name>"`, the preset's settings are the
    /// defaults and the document's keys override them.
    pub fn from_json(json: &str) -> Result<Profile> {
        if json.len() > MAX_PROFILE_JSON {
            return Err(VaultError::invalid(format!(
                "a profile is limited to {MAX_PROFILE_JSON} bytes"
            )));
        }
        let mut value: Value = serde_json::from_str(json).map_err(|e| {
            VaultError::invalid(format!(
                "the profile is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let obj = value
            .as_object_mut()
            .ok_or_else(|| VaultError::invalid("a profile must be a JSON object"))?;
        let value = match obj.remove("preset") {
            None => value,
            Some(Value::String(name)) => {
                let preset = Preset::from_name(&name).ok_or_else(|| VaultError::invalid("unknown preset name"))?;
                let mut base = preset.defaults();
                merge(&mut base, value);
                base
            }
            Some(_) => return Err(VaultError::invalid("\"preset\" must be a string")),
        };
        let spec: ProfileSpec = serde_json::from_value(value).map_err(|e| {
            // serde's message names the offending key, never a value of ours.
            let msg = e.to_string();
            VaultError::invalid(format!(
                "invalid profile: {}",
                msg.chars().take(200).collect::<String>()
            ))
        })?;
        Profile::from_spec(spec)
    }

    /// A preset for `url`, with optional settings as JSON (`client_id`, `api_key`...).
    pub fn preset(preset: Preset, name: &str, url: &str, settings: Value) -> Result<Profile> {
        let mut doc = serde_json::json!({"preset": preset.name(), "name": name, "url": url});
        merge(&mut doc, settings);
        Profile::from_json(&doc.to_string())
    }

    fn from_spec(s: ProfileSpec) -> Result<Profile> {
        if s.name.is_empty()
            || s.name.len() > 64
            || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(VaultError::invalid("a profile name must be 1..=64 of [A-Za-z0-9._-]"));
        }
        let (https, loopback) = check_url(&s.url)?;
        if !https && !loopback && !s.allow_http {
            return Err(VaultError::invalid(
                "plain http is only allowed to loopback hosts unless allow_http is set",
            ));
        }
        let method = s.method.to_ascii_uppercase();
        if method != "POST" && method != "PUT" {
            return Err(VaultError::invalid("the method must be POST or PUT"));
        }
        if s.headers.0.len() > 32 || s.body.0.len() > 32 {
            return Err(VaultError::invalid("at most 32 headers and 32 body fields"));
        }
        let mut headers = Vec::new();
        for (name, value) in s.headers.0 {
            if name.is_empty() || name.len() > 64 || !name.chars().all(is_token_char) {
                return Err(VaultError::invalid(
                    "a header name is empty, too long or not an HTTP token",
                ));
            }
            let lower = name.to_ascii_lowercase();
            if [
                "content-length",
                "host",
                "transfer-encoding",
                "connection",
                "content-type",
            ]
            .contains(&lower.as_str())
            {
                return Err(VaultError::invalid(
                    "a profile may not set Content-Length, Host, Transfer-Encoding, Connection or Content-Type",
                ));
            }
            no_controls("a header value", &value, 8192)?;
            headers.push((name, Template::parse(&value)?));
        }
        let mut body = Vec::new();
        for (name, value) in s.body.0 {
            no_controls("a body field name", &name, 128)?;
            if name.is_empty() {
                return Err(VaultError::invalid("a body field name is empty"));
            }
            no_controls("a body field", &value, 8192)?;
            body.push((name, Template::parse(&value)?));
        }
        for (what, v) in [("client_id", &s.client_id), ("scope", &s.scope)] {
            if let Some(v) = v {
                no_controls(what, v, 4096)?;
            }
        }
        for (what, v) in [("client_secret", &s.client_secret), ("api_key", &s.api_key)] {
            if let Some(v) = v {
                no_controls(what, v.expose(), 4096)?;
            }
        }
        let r = &s.response;
        check_path("response.access_token", &r.access_token)?;
        for (what, p) in [
            ("response.refresh_token", &r.refresh_token),
            ("response.expires_in", &r.expires_in),
            ("response.refresh_expires_in", &r.refresh_expires_in),
            ("response.token_type", &r.token_type),
            ("response.scope", &r.scope),
            ("response.envelope_status", &r.envelope_status),
        ] {
            if let Some(p) = p {
                check_path(what, p)?;
            }
        }
        if let Some(rule) = &r.success {
            check_path("response.success.path", &rule.path)?;
            if rule.equals.to_string().len() > 256 {
                return Err(VaultError::invalid("response.success.equals is too large"));
            }
        }
        if r.error_code.len() > 8 || s.reauth_errors.len() > 32 || s.reauth_statuses.len() > 32 {
            return Err(VaultError::invalid("too many error paths, reauth errors or statuses"));
        }
        for p in &r.error_code {
            check_path("response.error_code", p)?;
        }
        for e in &s.reauth_errors {
            no_controls("a reauth error", e, 128)?;
        }
        if s.reauth_statuses.iter().any(|c| !(400..=499).contains(c)) {
            return Err(VaultError::invalid("reauth_statuses must be 4xx codes"));
        }
        if !(1..=MAX_LIFETIME_SECS).contains(&s.default_lifetime_secs)
            || s.refresh_lifetime_secs
                .is_some_and(|v| !(1..=MAX_LIFETIME_SECS).contains(&v))
        {
            return Err(VaultError::invalid("lifetimes must be between 1 s and 10 years"));
        }
        if !(100..=300_000).contains(&s.timeout_ms) {
            return Err(VaultError::invalid("timeout_ms must be between 100 and 300000"));
        }
        if !(1024..=MAX_RESPONSE_CAP).contains(&s.max_response_bytes) {
            return Err(VaultError::invalid(
                "max_response_bytes must be between 1 KiB and 16 MiB",
            ));
        }
        let mentions_credential = body
            .iter()
            .chain(headers.iter())
            .any(|(_, t)| t.0.contains(&Piece::Var(Var::RefreshCredential)));
        if !mentions_credential {
            return Err(VaultError::invalid("the profile never sends the refresh credential"));
        }
        Ok(Profile {
            name: s.name,
            url: s.url,
            method,
            encoding: s.encoding,
            headers,
            body,
            client_auth: s.client_auth,
            client_id: s.client_id,
            client_secret: s.client_secret,
            scope: s.scope,
            api_key: s.api_key,
            rotation: s.rotation,
            response: s.response,
            reauth_errors: s.reauth_errors,
            reauth_statuses: s.reauth_statuses,
            refresh_expires_in_zero_is_offline: s.refresh_expires_in_zero_is_offline,
            default_lifetime: Duration::from_secs(s.default_lifetime_secs),
            refresh_lifetime: s.refresh_lifetime_secs.map(Duration::from_secs),
            timeout: Duration::from_millis(s.timeout_ms),
            max_response_bytes: s.max_response_bytes,
        })
    }

    /// The profile's name (what sessions refer to).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The default access-token lifetime when neither `expires_in` nor a JWT `exp` says.
    pub fn default_lifetime(&self) -> Duration {
        self.default_lifetime
    }

    /// How long a newly issued refresh credential lives when the server does not say.
    pub fn refresh_lifetime(&self) -> Option<Duration> {
        self.refresh_lifetime
    }

    /// Whether the server rotates refresh credentials.
    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Build the refresh request for the current tokens. Pure.
    pub fn build_request(&self, access_token: &str, refresh_credential: Option<&str>) -> Result<HttpRequest> {
        let basic = self.client_auth == ClientAuth::Basic && self.client_secret.is_some();
        let vals = Values {
            access_token,
            refresh_credential,
            client_id: self.client_id.as_deref(),
            client_secret: self.client_secret.as_ref().map(|s| s.expose()),
            scope: self.scope.as_deref(),
            api_key: self.api_key.as_ref().map(|s| s.expose()),
        };
        let mut fields: Vec<(&str, SecretString)> = Vec::with_capacity(self.body.len());
        for (name, t) in &self.body {
            if basic && matches!(t.sole_var(), Some(Var::ClientId | Var::ClientSecret)) {
                continue;
            }
            if let Some(v) = t.render(&vals)? {
                fields.push((name.as_str(), v));
            }
        }
        let body = match self.encoding {
            BodyEncoding::Json => {
                let mut s = String::from("{");
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    s.push_str(&Value::String((*name).to_owned()).to_string());
                    s.push(':');
                    s.push_str(&Value::String(v.expose().to_owned()).to_string());
                }
                s.push('}');
                s.into_bytes()
            }
            BodyEncoding::Form => {
                let mut s = String::new();
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        s.push('&');
                    }
                    form_encode(name, &mut s);
                    s.push('=');
                    form_encode(v.expose(), &mut s);
                }
                s.into_bytes()
            }
        };
        let content_type = match self.encoding {
            BodyEncoding::Json => "application/json",
            BodyEncoding::Form => "application/x-www-form-urlencoded",
        };
        let mut headers = vec![
            HttpHeader {
                name: "Content-Type".into(),
                value: SecretString::new(content_type),
            },
            HttpHeader {
                name: "Accept".into(),
                value: SecretString::new("application/json"),
            },
        ];
        if basic {
            let mut userpass = String::new();
            form_encode(self.client_id.as_deref().unwrap_or(""), &mut userpass);
            userpass.push(':');
            form_encode(
                self.client_secret.as_ref().map(|s| s.expose()).unwrap_or(""),
                &mut userpass,
            );
            let value = SecretString::new(format!("Basic {}", STANDARD.encode(userpass.as_bytes())));
            drop(SecretString::new(userpass));
            headers.push(HttpHeader {
                name: "Authorization".into(),
                value,
            });
        }
        for (name, t) in &self.headers {
            if let Some(v) = t.render(&vals)? {
                if v.expose().chars().any(|c| c.is_control()) {
                    return Err(VaultError::invalid("a header value would contain control characters"));
                }
                headers.push(HttpHeader {
                    name: name.clone(),
                    value: v,
                });
            }
        }
        Ok(HttpRequest {
            method: self.method.clone(),
            url: self.url.clone(),
            headers,
            body,
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
        })
    }

    /// Read a response into new tokens or a classified failure. Pure: `now_wall_ms` is only
    /// used to turn an HTTP-date `Retry-After` into a duration.
    pub fn parse_response(&self, response: &HttpResponse, now_wall_ms: i64) -> Result<ReceivedTokens> {
        let status = response.status;
        if response.body.len() > self.max_response_bytes {
            return Err(VaultError::protocol(format!(
                "the response body is over {} bytes",
                self.max_response_bytes
            )));
        }
        if (300..400).contains(&status) {
            return Err(VaultError::transient(format!(
                "HTTP {status} redirect (a captive portal?)"
            )));
        }
        if status == 429 {
            return Err(VaultError::Throttled {
                retry_after: retry_after(response, now_wall_ms),
            });
        }
        if status == 408 || status >= 500 {
            return Err(VaultError::transient(format!("HTTP {status}")));
        }
        if status < 200 {
            return Err(VaultError::protocol(format!("unexpected HTTP {status}")));
        }
        let ct = response.header("content-type").unwrap_or("").to_ascii_lowercase();
        let ct_json = ct.contains("json");
        let ct_html = ct.starts_with("text/html");
        let body_looks_json = response
            .body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
        let json: Option<Value> = if ct_json || (ct.is_empty() && body_looks_json) {
            serde_json::from_slice(&response.body).ok()
        } else {
            None
        };

        if status >= 400 {
            let code = json.as_ref().and_then(|j| self.error_code(j));
            if let Some(code) = &code {
                if self.reauth_errors.iter().any(|e| e == code) {
                    return Err(VaultError::reauth(code.clone()));
                }
            }
            if self.reauth_statuses.contains(&status) {
                return Err(VaultError::reauth(format!(
                    "HTTP {status}{}",
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                )));
            }
            return Err(VaultError::protocol(format!(
                "HTTP {status}{}",
                code.map(|c| format!(" {c}")).unwrap_or_default()
            )));
        }

        // 2xx
        let Some(json) = json else {
            if ct_html {
                return Err(VaultError::transient(
                    "an HTML page instead of JSON (a captive portal?)",
                ));
            }
            if ct_json || (ct.is_empty() && body_looks_json) {
                return Err(VaultError::protocol("the response body is not valid JSON"));
            }
            return Err(VaultError::protocol("unexpected response content type"));
        };
        if let Some(rule) = &self.response.success {
            if get_path(&json, &rule.path) != Some(&rule.equals) {
                return Err(self.envelope_failure(&json, now_wall_ms));
            }
        }
        let access = match get_path(&json, &self.response.access_token) {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(VaultError::protocol("the response has no access token"));
            }
            Some(_) => return Err(VaultError::protocol("the access token in the response is not a string")),
        };
        validate_token("access token in the response", access)
            .map_err(|_| VaultError::protocol("the access token in the response is malformed"))?;
        let refresh = match (&self.response.refresh_token, self.rotation) {
            (Some(path), Rotation::Always | Rotation::Optional) => match get_path(&json, path) {
                Some(Value::String(s)) if !s.is_empty() => {
                    validate_token("refresh token in the response", s)
                        .map_err(|_| VaultError::protocol("the refresh token in the response is malformed"))?;
                    Some(SecretString::new(s.as_str()))
                }
                None | Some(Value::Null) | Some(Value::String(_)) => None,
                Some(_) => {
                    return Err(VaultError::protocol(
                        "the refresh token in the response is not a string",
                    ))
                }
            },
            _ => None,
        };
        let expires = match &self.response.expires_in {
            None => None,
            Some(path) => match get_path(&json, path) {
                None | Some(Value::Null) => None,
                Some(v) => Some(ExpiryValue::classify(
                    number(v).ok_or_else(|| VaultError::protocol("expires_in is not a number"))?,
                )),
            },
        };
        let refresh_expiry = match &self.response.refresh_expires_in {
            None => RefreshExpiry::Unknown,
            Some(path) => match get_path(&json, path) {
                None | Some(Value::Null) => RefreshExpiry::Unknown,
                Some(v) => {
                    let n = number(v).ok_or_else(|| VaultError::protocol("refresh_expires_in is not a number"))?;
                    if n == 0 && self.refresh_expires_in_zero_is_offline {
                        RefreshExpiry::Offline
                    } else {
                        match ExpiryValue::classify(n) {
                            ExpiryValue::RelativeSecs(s) => RefreshExpiry::InSecs(s),
                            ExpiryValue::AbsoluteMs(ms) => RefreshExpiry::AtMs(ms),
                        }
                    }
                }
            },
        };
        let text = |p: &Option<String>| -> Option<String> {
            p.as_ref()
                .and_then(|p| get_path(&json, p))
                .and_then(|v| v.as_str())
                .filter(|s| s.len() <= 4096)
                .map(str::to_owned)
        };
        let received = ReceivedTokens {
            access_token: SecretString::new(access.as_str()),
            refresh_credential: refresh,
            expires,
            refresh_expiry,
            token_type: text(&self.response.token_type),
            scope: text(&self.response.scope),
            server_date_ms: server_date_ms(response),
        };
        wipe_json(json);
        Ok(received)
    }

    fn error_code(&self, json: &Value) -> Option<String> {
        self.response.error_code.iter().find_map(|p| {
            let s = get_path(json, p)?.as_str()?;
            // Only short, code-like strings are kept: descriptions may echo input.
            (s.len() <= 64 && !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)))
                .then(|| s.to_owned())
        })
    }

    fn envelope_failure(&self, json: &Value, now_wall_ms: i64) -> VaultError {
        let code = self.error_code(json);
        if let Some(c) = &code {
            if self.reauth_errors.iter().any(|e| e == c) {
                return VaultError::reauth(c.clone());
            }
        }
        let status = self
            .response
            .envelope_status
            .as_ref()
            .and_then(|p| get_path(json, p))
            .and_then(number)
            .and_then(|n| u16::try_from(n).ok());
        let _ = now_wall_ms;
        match status {
            Some(s) if self.reauth_statuses.contains(&s) => VaultError::reauth(format!("envelope status {s}")),
            Some(429) => VaultError::Throttled { retry_after: None },
            Some(s) if s == 408 || s >= 500 => VaultError::transient(format!("envelope status {s}")),
            Some(s) => VaultError::protocol(format!("the response envelope reports failure (status {s})")),
            None => VaultError::protocol("the response envelope reports failure"),
        }
    }
}

/// Overwrite the strings of a parsed JSON document before it is freed.
fn wipe_json(mut v: Value) {
    fn walk(v: &mut Value) {
        match v {
            Value::String(s) => {
                let mut b = std::mem::take(s).into_bytes();
                crate::secret::wipe(&mut b);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
}

fn form_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
}

/// `a.b.0.c` into a JSON document; `""` is the root.
pub(crate) fn get_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(root);
    }
    let mut cur = root;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(o) => o.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// An integer from a JSON number or numeric string.
fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9e15)
                .map(|f| f.floor() as i64)
        }),
        Value::String(s) if s.len() <= 20 => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// The HTTP `Date` header in ms since the epoch.
pub(crate) fn server_date_ms(response: &HttpResponse) -> Option<i64> {
    let d = response.header("date")?;
    let t = httpdate::parse_http_date(d.trim()).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

/// `Retry-After`: delta-seconds or an HTTP-date; capped at one day.
fn retry_after(response: &HttpResponse, now_wall_ms: i64) -> Option<Duration> {
    let v = response.header("retry-after")?.trim();
    let cap = Duration::from_secs(86_400);
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(cap));
    }
    let t = httpdate::parse_http_date(v).ok()?;
    let at_ms = i64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()?;
    // Prefer the server's own clock for the comparison when it sent one.
    let now = server_date_ms(response).unwrap_or(now_wall_ms);
    let ms = u64::try_from(at_ms.saturating_sub(now).max(0)).ok()?;
    Some(Duration::from_millis(ms).min(cap))
}

#[cfg(test)]
mod tests;
