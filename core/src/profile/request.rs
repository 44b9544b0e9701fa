//! Building the refresh request ([`Profile::build_request`]): body fields rendered from their
//! templates and encoded as JSON or `application/x-www-form-urlencoded`, the fixed
//! `Content-Type`/`Accept` headers, HTTP Basic client authentication when configured, then the
//! profile's own headers. Pure: no I/O.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::Zeroizing;

use super::spec::{BodyEncoding, ClientAuth};
use super::template::{Values, Var};
use super::Profile;
use crate::error::{Result, VaultError};
use crate::secret::SecretString;
use crate::transport::{HttpHeader, HttpRequest};

impl Profile {
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
        // Each buffer that holds a secret is sized exactly before it is written, so no
        // reallocation leaves a copy behind, and is wiped if an error ends the build early.
        let body: Zeroizing<Vec<u8>> = match self.encoding {
            BodyEncoding::Json => {
                let len = 2
                    + fields
                        .iter()
                        .map(|(name, v)| json_string_len(name) + 1 + json_string_len(v.expose()))
                        .sum::<usize>()
                    + fields.len().saturating_sub(1);
                let mut s = Zeroizing::new(String::with_capacity(len));
                s.push('{');
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    push_json_string(name, &mut s);
                    s.push(':');
                    push_json_string(v.expose(), &mut s);
                }
                s.push('}');
                Zeroizing::new(std::mem::take(&mut *s).into_bytes())
            }
            BodyEncoding::Form => {
                let len = fields
                    .iter()
                    .map(|(name, v)| form_encoded_len(name) + 1 + form_encoded_len(v.expose()))
                    .sum::<usize>()
                    + fields.len().saturating_sub(1);
                let mut s = Zeroizing::new(String::with_capacity(len));
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        s.push('&');
                    }
                    form_encode(name, &mut s);
                    s.push('=');
                    form_encode(v.expose(), &mut s);
                }
                Zeroizing::new(std::mem::take(&mut *s).into_bytes())
            }
        };
        drop(fields);
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
            headers.push(self.basic_auth()?);
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
        let mut body = body;
        Ok(HttpRequest {
            method: self.method.clone(),
            url: self.url.clone(),
            headers,
            body: std::mem::take(&mut *body),
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
            allow_plain_http: self.plain_http_allowed,
            pins: self.pins.clone(),
        })
    }
}

/// What a revocation's answer means (RFC 7009 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RevocationOutcome {
    /// 2xx: revoked (or already invalid, which the server also answers 200).
    Done,
    /// The server refused the request itself (4xx): sending it again cannot help.
    Refused(u16),
    /// 408, 429, 5xx, 3xx: try again later.
    Retry(u16),
}

impl Profile {
    /// The `Authorization: Basic` header of the client credentials (RFC 6749 §2.3.1).
    fn basic_auth(&self) -> Result<HttpHeader> {
        let id = self.client_id.as_deref().unwrap_or("");
        let secret = self.client_secret.as_ref().map(|s| s.expose()).unwrap_or("");
        let mut userpass = Zeroizing::new(String::with_capacity(
            form_encoded_len(id) + 1 + form_encoded_len(secret),
        ));
        form_encode(id, &mut userpass);
        userpass.push(':');
        form_encode(secret, &mut userpass);
        let encoded_len = base64::encoded_len(userpass.len(), true)
            .ok_or_else(|| VaultError::invalid("the client credentials are too long"))?;
        let mut value = String::with_capacity("Basic ".len() + encoded_len);
        value.push_str("Basic ");
        STANDARD.encode_string(userpass.as_bytes(), &mut value);
        Ok(HttpHeader {
            name: "Authorization".into(),
            value: SecretString::new(value),
        })
    }

    /// The RFC 7009 request revoking `refresh_token` at the profile's revocation endpoint, or
    /// `None` when the dialect has none. Form-encoded `token` and
    /// `token_type_hint=refresh_token`, with the client authenticated as for a refresh (HTTP
    /// Basic when configured, else `client_id` and any `client_secret` in the form). Pure.
    pub(crate) fn build_revocation(&self, refresh_token: &str) -> Result<Option<HttpRequest>> {
        let Some(url) = &self.revocation_url else {
            return Ok(None);
        };
        let basic = self.client_auth == ClientAuth::Basic && self.client_secret.is_some();
        let mut fields: Vec<(&str, &str)> = vec![("token", refresh_token), ("token_type_hint", "refresh_token")];
        if !basic {
            if let Some(id) = &self.client_id {
                fields.push(("client_id", id));
            }
            if let Some(secret) = &self.client_secret {
                fields.push(("client_secret", secret.expose()));
            }
        }
        let len = fields
            .iter()
            .map(|(n, v)| form_encoded_len(n) + 1 + form_encoded_len(v))
            .sum::<usize>()
            + fields.len().saturating_sub(1);
        let mut body = Zeroizing::new(String::with_capacity(len));
        for (i, (name, v)) in fields.iter().enumerate() {
            if i > 0 {
                body.push('&');
            }
            form_encode(name, &mut body);
            body.push('=');
            form_encode(v, &mut body);
        }
        let mut headers = vec![
            HttpHeader {
                name: "Content-Type".into(),
                value: SecretString::new("application/x-www-form-urlencoded"),
            },
            HttpHeader {
                name: "Accept".into(),
                value: SecretString::new("application/json"),
            },
        ];
        if basic {
            headers.push(self.basic_auth()?);
        }
        Ok(Some(HttpRequest {
            method: "POST".into(),
            url: url.clone(),
            headers,
            body: std::mem::take(&mut *body).into_bytes(),
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
            allow_plain_http: self.plain_http_allowed,
            pins: self.pins.clone(),
        }))
    }

    /// What the revocation endpoint's answer `status` means.
    pub(crate) fn revocation_outcome(status: u16) -> RevocationOutcome {
        match status {
            200..=299 => RevocationOutcome::Done,
            408 | 429 => RevocationOutcome::Retry(status),
            400..=499 => RevocationOutcome::Refused(status),
            _ => RevocationOutcome::Retry(status),
        }
    }
}

/// The length of `s` once [`form_encode`]d.
fn form_encoded_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' | b' ' => 1,
            _ => 3,
        })
        .sum()
}

/// The escape of one byte in a JSON string literal (RFC 8259): `Some("")` for a control
/// character without a short form (written `\u00XX`), `None` for a byte written as it is.
/// Every byte that needs escaping is ASCII, so the bytes of a multi-byte character never do.
fn json_escape(b: u8) -> Option<&'static str> {
    match b {
        b'"' => Some("\\\""),
        b'\\' => Some("\\\\"),
        0x08 => Some("\\b"),
        0x0c => Some("\\f"),
        b'\n' => Some("\\n"),
        b'\r' => Some("\\r"),
        b'\t' => Some("\\t"),
        0..=0x1f => Some(""),
        _ => None,
    }
}

/// The length of `s` as a JSON string literal written by [`push_json_string`].
fn json_string_len(s: &str) -> usize {
    2 + s.len()
        + s.bytes()
            .map(|b| match json_escape(b) {
                None => 0,
                Some("") => 5,
                Some(_) => 1,
            })
            .sum::<usize>()
}

/// Append `s` as a JSON string literal (RFC 8259 escaping), without intermediate copies: the
/// runs between escapes are copied whole.
fn push_json_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let Some(escape) = json_escape(b) else { continue };
        // `i` is an ASCII byte: a character boundary.
        out.push_str(&s[run..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
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
