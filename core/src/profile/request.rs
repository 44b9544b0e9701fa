//! Building the refresh request ([`Profile::build_request`]): body fields rendered from their
//! templates and encoded as JSON or `application/x-www-form-urlencoded`, the fixed
//! `Content-Type`/`Accept` headers, HTTP Basic client authentication when configured, then the
//! profile's own headers. Pure: no I/O.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

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
            allow_plain_http: self.plain_http_allowed,
            pins: self.pins.clone(),
        })
    }
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
