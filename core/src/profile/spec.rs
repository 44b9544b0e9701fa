//! The JSON form of a profile and its validation.
//!
//! [`ProfileSpec`] is what a profile document deserializes into (after the preset merge);
//! `Profile::from_spec` turns it into a [`Profile`], refusing hostile input up front: absurd
//! sizes and counts, non-HTTP(S) URLs or user info in them, plain HTTP to a non-loopback host,
//! CR/LF or other control characters in headers and fields, forbidden framing headers, unknown
//! placeholders, over-deep response paths, and unknown keys (`deny_unknown_fields`).

use std::fmt;
use std::time::Duration;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::template::{Piece, Template, Var};
use super::{Profile, DEFAULT_MAX_RESPONSE_BYTES};
use crate::error::{Result, VaultError};
use crate::secret::SecretString;
use crate::transport::SpkiPin;

const MAX_RESPONSE_CAP: usize = 16 * 1024 * 1024;
const MAX_LIFETIME_SECS: u64 = 10 * 365 * 86_400;

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
    /// Path of an OpenID Connect id_token; read (and validated) only when the profile has an
    /// `oidc` section.
    #[serde(default)]
    pub id_token: Option<String>,
}

/// The JSON form of a profile's `oidc` section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OidcSpec {
    issuer: String,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    jwks_url: Option<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    #[serde(default = "default_leeway")]
    leeway_secs: u64,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}
fn default_leeway() -> u64 {
    crate::oidc::DEFAULT_LEEWAY_SECS
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
pub(super) struct ProfileSpec {
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
    #[serde(default)]
    pins: Vec<String>,
    /// RFC 7009 revocation endpoint: absolute, or relative to `url` (`./revoke`, `/revoke`);
    /// on `url`'s origin.
    #[serde(default)]
    revocation_url: Option<String>,
    #[serde(default)]
    oidc: Option<OidcSpec>,
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

/// Every key the profile schema knows, at any depth: the only map keys an error may name.
const SCHEMA_KEYS: &[&str] = &[
    "name",
    "url",
    "method",
    "encoding",
    "headers",
    "body",
    "client_auth",
    "client_id",
    "client_secret",
    "scope",
    "api_key",
    "rotation",
    "response",
    "reauth_errors",
    "reauth_statuses",
    "refresh_expires_in_zero_is_offline",
    "default_lifetime_secs",
    "refresh_lifetime_secs",
    "timeout_ms",
    "max_response_bytes",
    "allow_http",
    "pins",
    "revocation_url",
    "access_token",
    "refresh_token",
    "expires_in",
    "refresh_expires_in",
    "token_type",
    "success",
    "envelope_status",
    "error_code",
    "path",
    "equals",
    "id_token",
    "oidc",
    "issuer",
    "audience",
    "jwks_url",
    "algorithms",
    "leeway_secs",
];

/// Describe a profile that does not fit the schema without quoting anything from it.
///
/// serde's messages quote the offending value (`invalid type: string "s3cr3t", expected u64`)
/// or key, and a profile holds client secrets and API keys. The description is rebuilt from
/// parts that come from the schema alone: the kind of mismatch, what was expected, and the
/// path to the field, naming only keys the schema defines (others become `?`) and list
/// positions.
pub(super) fn describe_spec_error(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    use serde_path_to_error::Segment;
    let mut path = String::new();
    for seg in e.path().iter() {
        match seg {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(SCHEMA_KEYS.iter().find(|k| **k == key.as_str()).copied().unwrap_or("?"));
            }
            Segment::Unknown => path.push_str(".?"),
        }
    }
    let msg = e.inner().to_string();
    // What serde expected comes after the last ", expected " (the schema's words, after any quoted value).
    let expected = || {
        msg.rfind(", expected ")
            .map(|i| &msg[i + ", expected ".len()..])
            .map(|x| x.split(" at line ").next().unwrap_or(x))
            .filter(|x| x.len() <= 160 && x.chars().all(|c| c.is_ascii_alphanumeric() || " `_,.-".contains(c)))
            .map(|x| format!(" (expected {x})"))
            .unwrap_or_default()
    };
    let missing = || {
        msg.strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
            .and_then(|f| SCHEMA_KEYS.iter().find(|k| **k == f))
            .map(|f| format!(" `{f}`"))
            .unwrap_or_default()
    };
    let what = if msg.starts_with("invalid type: ") {
        format!("a value has the wrong type{}", expected())
    } else if msg.starts_with("invalid value: ") {
        format!("a value is not acceptable{}", expected())
    } else if msg.starts_with("invalid length ") {
        format!("a list has the wrong length{}", expected())
    } else if msg.starts_with("unknown variant ") {
        format!("unknown choice{}", expected())
    } else if msg.starts_with("unknown field ") {
        "unknown key".to_owned()
    } else if msg.starts_with("missing field ") {
        format!("missing key{}", missing())
    } else if msg.starts_with("duplicate field ") {
        "a key appears twice".to_owned()
    } else if msg.starts_with("too many entries") {
        "too many entries".to_owned()
    } else {
        "a value does not fit the profile schema".to_owned()
    };
    if path.is_empty() {
        format!("invalid profile: {what}")
    } else {
        format!("invalid profile: {what} at `{path}`")
    }
}

/// Deep-merge `over` into `base` (objects merge key by key; anything else replaces).
pub(super) fn merge(base: &mut Value, over: Value) {
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
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| VaultError::invalid("the URL has an unclosed '[' in its host"))?;
        if !after.is_empty() && !after.starts_with(':') {
            return Err(VaultError::invalid("the URL has text after its bracketed host"));
        }
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(VaultError::invalid("the URL has an empty host"));
    }
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(VaultError::invalid("the URL's port is not a number"));
    }
    let loopback = is_loopback_host(host, authority.starts_with('['));
    Ok((https, loopback))
}

/// The revocation endpoint of a profile whose token endpoint is `url`: `r` absolute, or a
/// reference relative to `url` (`./x` replaces its last path segment, `/x` its whole path). It
/// must stay on `url`'s origin: a refresh credential never goes anywhere the refresh itself
/// does not.
fn resolve_revocation_url(url: &str, r: &str) -> Result<String> {
    no_controls("the revocation URL", r, 2048)?;
    let resolved = if r.contains("://") {
        r.to_owned()
    } else if let Some(rest) = r.strip_prefix("./") {
        let path_end = url.find(['?', '#']).unwrap_or(url.len());
        let base = &url[..path_end];
        let dir_end = base
            .rfind('/')
            .filter(|&i| i > base.find("://").map_or(0, |j| j + 2))
            .unwrap_or(base.len());
        format!("{}/{rest}", &base[..dir_end])
    } else if r.starts_with('/') {
        format!("{}{r}", super::origin_of_preserving_case(url))
    } else {
        return Err(VaultError::invalid(
            "revocation_url must be absolute or start with \"./\" or \"/\"",
        ));
    };
    check_url(&resolved)?;
    if super::origin_of(&resolved) != super::origin_of(url) {
        return Err(VaultError::invalid(
            "revocation_url must be on the same origin as the token endpoint",
        ));
    }
    Ok(resolved)
}

/// Most certificate pins a profile may carry.
pub(super) const MAX_PINS: usize = 8;

/// Validate `pins` (`sha256/<base64 of the SubjectPublicKeyInfo's SHA-256>`): at most
/// [`MAX_PINS`], no duplicates, and only on an https URL (a pin means nothing without TLS).
fn check_pins(pins: &[String], https: bool) -> Result<Vec<SpkiPin>> {
    if pins.is_empty() {
        return Ok(Vec::new());
    }
    if !https {
        return Err(VaultError::invalid("certificate pins need an https URL"));
    }
    if pins.len() > MAX_PINS {
        return Err(VaultError::invalid(format!("at most {MAX_PINS} certificate pins")));
    }
    let mut out: Vec<SpkiPin> = Vec::with_capacity(pins.len());
    for p in pins {
        let pin = SpkiPin::parse(p).ok_or_else(|| {
            VaultError::invalid("a certificate pin must be \"sha256/\" followed by the base64 of 32 bytes")
        })?;
        if out.contains(&pin) {
            return Err(VaultError::invalid("a certificate pin is listed twice"));
        }
        out.push(pin);
    }
    if out.len() == 1 {
        log::warn!(
            "a profile pins a single certificate key: add a backup pin so a key rotation cannot lock every user out"
        );
    }
    Ok(out)
}

/// Whether a URL's host names this machine for the plain-http exception.
///
/// Only literals qualify: an IPv4 address in 127.0.0.0/8 in dotted-quad form (`127.0.0.1`,
/// `127.1.2.3`), the bracketed IPv6 loopback `[::1]`, or the name `localhost` in any case.
/// Everything else is not loopback, on purpose: DNS names that merely start with `127.` or
/// `localhost` (`127.attacker.example`, `127.0.0.1.nip.io`, `localhost.attacker.example`)
/// resolve wherever their owner likes; `localhost.` (trailing dot) is an absolute DNS name a
/// resolver may send to the network; shorthand or octal IPv4 forms (`127.1`, `0177.0.0.1`) are
/// read differently by different parsers; and IPv4-mapped IPv6 (`[::ffff:127.0.0.1]`) is
/// refused rather than trusted to every stack's mapping rules.
fn is_loopback_host(host: &str, bracketed: bool) -> bool {
    if bracketed {
        return host
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip == std::net::Ipv6Addr::LOCALHOST);
    }
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return ip.is_loopback();
    }
    host.eq_ignore_ascii_case("localhost")
}

impl Profile {
    pub(super) fn from_spec(s: ProfileSpec) -> Result<Profile> {
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
        let pins = check_pins(&s.pins, https)?;
        let revocation_url = match &s.revocation_url {
            None => None,
            Some(r) => Some(resolve_revocation_url(&s.url, r)?),
        };
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
            ("response.id_token", &r.id_token),
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
        let oidc = match s.oidc {
            None => None,
            Some(o) => Some(check_oidc(
                o,
                s.client_id.as_deref(),
                s.allow_http,
                r.id_token.is_some(),
            )?),
        };
        Ok(Profile {
            name: s.name,
            origin: super::origin_of(&s.url),
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
            plain_http_allowed: !https && (loopback || s.allow_http),
            pins,
            revocation_url,
            oidc,
        })
    }
}

/// Validate an `oidc` section: the issuer and key-set URLs under the same rules as the
/// endpoint (http(s), no user info, plain http only to loopback unless `allow_http`), an
/// audience (the `client_id` by default), asymmetric algorithms only, a bounded leeway.
fn check_oidc(
    o: OidcSpec,
    client_id: Option<&str>,
    allow_http: bool,
    has_id_token_path: bool,
) -> Result<crate::oidc::OidcSettings> {
    for (what, url) in [("oidc.issuer", Some(&o.issuer)), ("oidc.jwks_url", o.jwks_url.as_ref())] {
        if let Some(url) = url {
            fetch_url_rule(url, allow_http).map_err(|e| VaultError::invalid(format!("{what}: {e}")))?;
        }
    }
    let audience = match o.audience.as_deref().or(client_id) {
        Some(a) if !a.is_empty() => {
            no_controls("oidc.audience", a, 1024)?;
            a.to_owned()
        }
        _ => return Err(VaultError::invalid("oidc needs an audience or a client_id")),
    };
    if o.algorithms.is_empty() || o.algorithms.len() > 7 {
        return Err(VaultError::invalid("oidc.algorithms must list 1 to 7 algorithms"));
    }
    let mut algorithms = Vec::new();
    for a in &o.algorithms {
        let alg = crate::oidc::algorithm_from_name(a).ok_or_else(|| {
            VaultError::invalid("oidc.algorithms: only RS256, RS384, RS512, PS256, PS384, PS512 and ES256 are accepted")
        })?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    if o.leeway_secs > crate::oidc::MAX_LEEWAY_SECS {
        return Err(VaultError::invalid("oidc.leeway_secs must be at most 600"));
    }
    if !has_id_token_path {
        return Err(VaultError::invalid(
            "an oidc section needs response.id_token (the id_token's path)",
        ));
    }
    Ok(crate::oidc::OidcSettings {
        issuer: o.issuer,
        audience,
        jwks_url: o.jwks_url,
        algorithms,
        leeway_secs: o.leeway_secs,
        allow_http,
    })
}

/// Whether the vault may fetch `url` (an issuer's discovery document or key set), under the
/// endpoint's rules: `Ok(true)` when it may go over plain http (a loopback literal, or
/// `allow_http`), `Ok(false)` for https; an error (never quoting the URL) otherwise.
pub(crate) fn fetch_url_rule(url: &str, allow_http: bool) -> std::result::Result<bool, &'static str> {
    let (https, loopback) = check_url(url).map_err(|_| "not a valid http(s) URL")?;
    if url.contains(['?', '#']) {
        return Err("a query or fragment is not accepted");
    }
    if https {
        Ok(false)
    } else if loopback || allow_http {
        Ok(true)
    } else {
        Err("plain http is only allowed to loopback hosts unless allow_http is set")
    }
}
