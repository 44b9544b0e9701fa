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

mod presets;
mod request;
mod response;
mod spec;
mod template;

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Result, VaultError};
use crate::secret::SecretString;

pub use presets::Preset;
// Kept at `crate::profile::` for the rest of the crate; nothing outside profile uses them today.
pub(crate) use request::RevocationOutcome;
#[allow(unused_imports)]
pub(crate) use response::{get_path, server_date_ms};
pub(crate) use spec::fetch_url_rule;
use spec::{merge, ProfileSpec};
pub use spec::{BodyEncoding, ClientAuth, ResponseSpec, Rotation, SuccessRule};
use template::Template;

/// Largest profile JSON accepted.
pub const MAX_PROFILE_JSON: usize = 64 * 1024;
/// Default response body cap (1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A validated refresh dialect for one endpoint.
#[derive(Clone)]
pub struct Profile {
    name: String,
    url: String,
    /// `origin_of(url)`, computed once: every refresh compares it with the session's.
    origin: String,
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
    /// Plain `http://` is acceptable for this endpoint (a loopback literal, or `allow_http`).
    plain_http_allowed: bool,
    /// SPKI SHA-256 pins the server's chain must match (empty: no pinning).
    pins: Vec<crate::transport::SpkiPin>,
    /// The RFC 7009 revocation endpoint (same origin as `url`), if the dialect has one.
    revocation_url: Option<String>,
    /// The `oidc` section: id_tokens in responses are validated against this issuer.
    oidc: Option<crate::oidc::OidcSettings>,
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
            .field("pins", &self.pins.len())
            .field("oidc", &self.oidc)
            .finish_non_exhaustive()
    }
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
            // Category and position only: serde_json's text never reaches the caller.
            VaultError::invalid(format!(
                "the profile is not valid JSON ({}, line {}, column {})",
                match e.classify() {
                    serde_json::error::Category::Io => "read error",
                    serde_json::error::Category::Syntax => "syntax error",
                    serde_json::error::Category::Data => "data error",
                    serde_json::error::Category::Eof => "unexpected end",
                },
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
        let spec: ProfileSpec =
            serde_path_to_error::deserialize(value).map_err(|e| VaultError::invalid(spec::describe_spec_error(&e)))?;
        Profile::from_spec(spec)
    }

    /// A preset for `url`, with optional settings as JSON (`client_id`, `api_key`...).
    pub fn preset(preset: Preset, name: &str, url: &str, settings: Value) -> Result<Profile> {
        let mut doc = serde_json::json!({"preset": preset.name(), "name": name, "url": url});
        merge(&mut doc, settings);
        Profile::from_json(&doc.to_string())
    }

    /// The profile's name (what sessions refer to).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The endpoint's origin, `scheme://host:port` (lower case, default port made explicit):
    /// what a stored session is bound to. A session's refresh credential is only ever sent to
    /// the origin it was stored with.
    pub fn origin(&self) -> &str {
        &self.origin
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

    /// The certificate pins (SPKI SHA-256) the endpoint's chain must match; empty when the
    /// profile does not pin.
    pub fn pins(&self) -> &[crate::transport::SpkiPin] {
        &self.pins
    }

    /// The OpenID Connect settings (`oidc` section), when id_tokens are validated.
    pub fn oidc(&self) -> Option<&crate::oidc::OidcSettings> {
        self.oidc.as_ref()
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The RFC 7009 revocation endpoint a logout sends the refresh credential to, if the
    /// dialect has one (the `keycloak` preset derives it; `oauth2` takes `revocation_url`).
    pub fn revocation_url(&self) -> Option<&str> {
        self.revocation_url.as_deref()
    }
}

/// `scheme://authority` of a validated URL, as written (for building a URL on it).
fn origin_of_preserving_case(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!("{scheme}://{authority}")
}

/// `scheme://host:port` of a URL the profile validated (scheme and authority present, no user
/// info).
pub(crate) fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("").to_ascii_lowercase();
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], authority[i + 1..].to_owned()),
        _ => (
            authority.as_str(),
            if scheme == "https" { "443" } else { "80" }.to_owned(),
        ),
    };
    format!("{scheme}://{host}:{port}")
}

#[cfg(test)]
mod tests;
