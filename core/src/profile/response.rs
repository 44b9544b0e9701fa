//! Reading a refresh response ([`Profile::parse_response`]) into new tokens or a classified
//! failure (reauthenticate, transient, throttled, protocol), plus the helpers it needs: dotted
//! JSON paths ([`get_path`]), lenient integers, the server's `Date` and `Retry-After`. Pure:
//! the current time is passed in.

use std::time::Duration;

use serde_json::Value;

use super::spec::Rotation;
use super::Profile;
use crate::error::{Result, VaultError};
use crate::secret::SecretString;
use crate::session::{validate_token, ExpiryValue, ReceivedTokens, RefreshExpiry};
use crate::transport::HttpResponse;

impl Profile {
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
        // Wiped when dropped, on every return below: the document holds the new tokens.
        let json: Option<WipedJson> = if ct_json || (ct.is_empty() && body_looks_json) {
            serde_json::from_slice(&response.body).ok().map(WipedJson)
        } else {
            None
        };

        if status >= 400 {
            let code = json.as_ref().and_then(|j| self.error_code(&j.0));
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
        let Some(wiped) = json else {
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
        let json = &wiped.0;
        if let Some(rule) = &self.response.success {
            if get_path(json, &rule.path) != Some(&rule.equals) {
                return Err(self.envelope_failure(json, now_wall_ms));
            }
        }
        let access = match get_path(json, &self.response.access_token) {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(VaultError::protocol("the response has no access token"));
            }
            Some(_) => return Err(VaultError::protocol("the access token in the response is not a string")),
        };
        validate_token("access token in the response", access)
            .map_err(|_| VaultError::protocol("the access token in the response is malformed"))?;
        let refresh = match (&self.response.refresh_token, self.rotation) {
            (Some(path), Rotation::Always | Rotation::Optional) => match get_path(json, path) {
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
            Some(path) => match get_path(json, path) {
                None | Some(Value::Null) => None,
                Some(v) => Some(ExpiryValue::classify(
                    number(v).ok_or_else(|| VaultError::protocol("expires_in is not a number"))?,
                )),
            },
        };
        let refresh_expiry = match &self.response.refresh_expires_in {
            None => RefreshExpiry::Unknown,
            Some(path) => match get_path(json, path) {
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
                .and_then(|p| get_path(json, p))
                .and_then(|v| v.as_str())
                .filter(|s| s.len() <= 4096)
                .map(str::to_owned)
        };
        // Only a profile that validates id_tokens reads them; any other ignores the field.
        let id_token = match (&self.oidc, &self.response.id_token) {
            (Some(_), Some(path)) => match get_path(json, path) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if !s.is_empty() && s.len() <= crate::oidc::MAX_ID_TOKEN_LEN => {
                    Some(SecretString::new(s.as_str()))
                }
                Some(_) => return Err(VaultError::protocol("the id_token in the response is malformed")),
            },
            _ => None,
        };
        let received = ReceivedTokens {
            access_token: SecretString::new(access.as_str()),
            refresh_credential: refresh,
            expires,
            refresh_expiry,
            token_type: text(&self.response.token_type),
            scope: text(&self.response.scope),
            server_date_ms: server_date_ms(response),
            id_token,
            identity: None,
        };
        drop(wiped);
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

/// A parsed response document whose strings are overwritten before it is freed, whichever
/// way [`Profile::parse_response`] returns.
struct WipedJson(Value);

impl Drop for WipedJson {
    fn drop(&mut self) {
        wipe_json(&mut self.0);
    }
}

/// Overwrite the string values of a parsed JSON document.
fn wipe_json(v: &mut Value) {
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
    walk(v);
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
