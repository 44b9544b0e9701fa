//! A real OAuth 2.0 / OpenID Connect server for integration tests: panva's `oidc-provider`
//! (pinned in `tests/oidc/package.json`), run by Node.js from `tests/oidc/server.mjs` on
//! 127.0.0.1 with an ephemeral port.
//!
//! Prerequisite: `npm ci --prefix tests/oidc` (from the repository root). [`OidcProvider::start`]
//! fails with that instruction when the package is missing; it never skips silently.
//!
//! What the server offers (see `server.mjs` for the details):
//! - the standard token endpoint with refresh-token rotation (configurable) and oidc-provider's own
//!   reuse detection: presenting a rotated-out refresh token again answers `invalid_grant` and
//!   revokes the whole grant (its refresh and access tokens die with it); without rotation it can
//!   also leave `refresh_token` out of refresh responses altogether
//!   ([`OidcConfig::omit_unrotated_refresh_token`]);
//! - a test-only grant, `urn:tokenvault:test:bootstrap`, that issues the first access + refresh
//!   token for an account without a browser, through the library's own token-issuing code;
//! - the userinfo endpoint (`/me`) as the protected resource;
//! - `GET /test/stats`: counters fed by the provider's events (and the key-set and discovery
//!   fetches);
//! - id_tokens signed with ES256, RS256 or PS256 ([`OidcConfig::alg`]) carrying standard claims
//!   derived from the subject; [`OidcProvider::rotate_signing_key`] replaces the key (new `kid`),
//!   [`OidcProvider::next_id_token_sub`] makes the next id_token name another subject.
//!
//! The Node process exits when its stdin closes, so even a killed test binary leaves nothing behind;
//! [`Drop`] also kills and reaps it.
//!
//! The environment variable `TOKENVAULT_NODE` overrides the `node` binary; setting
//! `TOKENVAULT_OIDC_LOG=1` echoes the server's stderr.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

/// The public client (`token_endpoint_auth_method: none`).
pub const PUBLIC_CLIENT_ID: &str = "tokenvault-test";
/// The confidential client (`token_endpoint_auth_method: client_secret_post`).
pub const CONFIDENTIAL_CLIENT_ID: &str = "tokenvault-confidential";
/// The confidential client's secret (a test fixture, not a secret).
pub const CONFIDENTIAL_CLIENT_SECRET: &str = "tokenvault-confidential-secret";
/// The test-only grant type that issues the first token pair.
pub const BOOTSTRAP_GRANT_TYPE: &str = "urn:tokenvault:test:bootstrap";

// Node loading oidc-provider can take over 20 s on two busy cores (seen once in a full test run).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const STDERR_TAIL_LINES: usize = 60;

/// How the provider is configured for one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// Access token lifetime (`expires_in`), seconds. Tests use 1–2 s.
    pub access_ttl_secs: u64,
    /// Refresh token lifetime, seconds (each rotated token gets the full lifetime again).
    pub refresh_ttl_secs: u64,
    /// Rotate the refresh token on every refresh (oidc-provider `rotateRefreshToken: true`).
    /// With `false` the same refresh token is returned forever and reuse detection cannot trigger.
    pub rotate: bool,
    /// Leave `refresh_token` out of a refresh response that would only repeat the presented one
    /// (so with `rotate: false`, out of every refresh response), as servers that never rotate
    /// often do; `OidcStats::refresh_token_omitted` counts those responses.
    pub omit_unrotated_refresh_token: bool,
    /// The id_token signing algorithm: `"ES256"` (a P-256 key), `"RS256"` or `"PS256"` (RSA-2048).
    pub alg: &'static str,
}

impl Default for OidcConfig {
    /// 60 s access tokens, 14-day refresh tokens (as in the seed document), always rotate, the
    /// refresh token always in the response.
    fn default() -> Self {
        Self {
            access_ttl_secs: 60,
            refresh_ttl_secs: 14 * 24 * 60 * 60,
            rotate: true,
            omit_unrotated_refresh_token: false,
            alg: "ES256",
        }
    }
}

/// The token response of the bootstrap grant.
#[derive(Clone)]
pub struct BootstrapTokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds, relative (oidc-provider always answers with a relative count).
    pub expires_in: u64,
    pub id_token: Option<String>,
    /// The whole response body, verbatim.
    pub raw_json: String,
}

impl fmt::Debug for BootstrapTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapTokens")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Counters from `GET /test/stats`, fed by oidc-provider's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcStats {
    /// Every `POST /token` the server received, whatever the grant type or outcome.
    pub token_requests: u64,
    /// Successful bootstrap grants.
    pub bootstrap_success: u64,
    /// Successful `refresh_token` grants (`grant.success`).
    pub refresh_success: u64,
    /// Failed `refresh_token` grants by OAuth error code (`grant.error`).
    pub refresh_errors: BTreeMap<String, u64>,
    /// The same failures by oidc-provider's internal detail, e.g. `refresh token already used`,
    /// `refresh token not found`, `grant not found`, `refresh token is expired`.
    pub refresh_error_details: BTreeMap<String, u64>,
    /// Failed `refresh_token` grants with `invalid_grant`.
    pub refresh_invalid_grant: u64,
    /// `grant.revoked` events, from any route.
    pub grants_revoked: u64,
    /// A rotated-out refresh token was presented again and oidc-provider revoked its grant.
    pub reuse_detected: u64,
    /// Successful refresh responses sent without `refresh_token`
    /// (`OidcConfig::omit_unrotated_refresh_token`).
    pub refresh_token_omitted: u64,
    /// The protected resource (userinfo) refused a token.
    pub userinfo_errors: u64,
    /// Unexpected server errors (500); should always be 0.
    pub server_errors: u64,
    /// `GET /jwks`: the published key set was fetched.
    pub jwks_requests: u64,
    /// `GET /.well-known/openid-configuration`.
    pub discovery_requests: u64,
    /// Signing keys replaced through [`OidcProvider::rotate_signing_key`].
    pub keys_rotated: u64,
}

impl OidcStats {
    /// Refresh requests that reached the grant handler, successful or not.
    pub fn refresh_requests(&self) -> u64 {
        self.refresh_success + self.refresh_errors.values().sum::<u64>()
    }

    fn from_json(body: &str) -> Result<Self, String> {
        let v: Value =
            serde_json::from_str(body).map_err(|e| format!("oidc-provider: /test/stats is not JSON ({e}): {body}"))?;
        let num = |name: &str| -> Result<u64, String> {
            v.get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("oidc-provider: /test/stats lacks counter `{name}`: {body}"))
        };
        let map = |name: &str| -> Result<BTreeMap<String, u64>, String> {
            let obj = v
                .get(name)
                .and_then(Value::as_object)
                .ok_or_else(|| format!("oidc-provider: /test/stats lacks map `{name}`: {body}"))?;
            obj.iter()
                .map(|(k, n)| {
                    n.as_u64()
                        .map(|n| (k.clone(), n))
                        .ok_or_else(|| format!("oidc-provider: /test/stats `{name}.{k}`: {body}"))
                })
                .collect()
        };
        Ok(Self {
            token_requests: num("token_requests")?,
            bootstrap_success: num("bootstrap_success")?,
            refresh_success: num("refresh_success")?,
            refresh_errors: map("refresh_errors")?,
            refresh_error_details: map("refresh_error_details")?,
            refresh_invalid_grant: num("refresh_invalid_grant")?,
            grants_revoked: num("grants_revoked")?,
            reuse_detected: num("reuse_detected")?,
            refresh_token_omitted: num("refresh_token_omitted")?,
            userinfo_errors: num("userinfo_errors")?,
            server_errors: num("server_errors")?,
            jwks_requests: num("jwks_requests")?,
            discovery_requests: num("discovery_requests")?,
            keys_rotated: num("keys_rotated")?,
        })
    }
}

/// A running oidc-provider. Dropping it stops the server.
pub struct OidcProvider {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    issuer: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    config: OidcConfig,
    agent: ureq::Agent,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProvider")
            .field("pid", &self.child.id())
            .field("issuer", &self.issuer)
            .field("token_endpoint", &self.token_endpoint)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `tests/oidc`, next to this crate.
pub fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("oidc")
}

fn check_installed(dir: &Path) -> Result<(), String> {
    let fix = "run `npm ci --prefix tests/oidc` from the repository root";
    let server = dir.join("server.mjs");
    if !server.is_file() {
        return Err(format!("oidc-provider harness: {} is missing", server.display()));
    }
    let installed = dir.join("node_modules").join("oidc-provider").join("package.json");
    let installed = std::fs::read_to_string(&installed).map_err(|_| {
        format!(
            "oidc-provider is not installed ({} not found): {fix}",
            installed.display()
        )
    })?;
    let manifest = std::fs::read_to_string(dir.join("package.json"))
        .map_err(|e| format!("oidc-provider harness: cannot read tests/oidc/package.json: {e}"))?;
    let pinned = serde_json::from_str::<Value>(&manifest)
        .ok()
        .and_then(|v| v["dependencies"]["oidc-provider"].as_str().map(str::to_owned));
    let found = serde_json::from_str::<Value>(&installed)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_owned));
    match (pinned, found) {
        (Some(p), Some(f)) if p == f => Ok(()),
        (p, f) => Err(format!(
            "oidc-provider in tests/oidc/node_modules is {} but package.json pins {}: {fix}",
            f.as_deref().unwrap_or("unreadable"),
            p.as_deref().unwrap_or("nothing"),
        )),
    }
}

fn drain_stderr(pipe: impl Read, tail: Arc<Mutex<VecDeque<String>>>) {
    let echo = std::env::var_os("TOKENVAULT_OIDC_LOG").is_some_and(|v| !v.is_empty() && v != "0");
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        if echo {
            eprintln!("[oidc-provider] {line}");
        }
        let mut tail = tail.lock();
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// Reads stdout: reports the `LISTENING <port>` line (or why it never came), then keeps
/// draining so the pipe never fills up.
fn watch_stdout(pipe: impl Read, ready: mpsc::Sender<Result<u16, String>>) {
    let mut lines = BufReader::new(pipe).lines();
    let mut ready = Some(ready);
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(tx) = ready.take() {
                    let port = line
                        .strip_prefix("LISTENING ")
                        .and_then(|p| p.trim().parse::<u16>().ok());
                    // The receiver may have given up already; nothing to do then.
                    let _ = tx.send(port.ok_or_else(|| format!("expected `LISTENING <port>` on stdout, got {line:?}")));
                }
            }
            Some(Err(e)) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Err(format!("reading stdout failed: {e}")));
                }
                break;
            }
            None => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Err("the server exited before listening".to_owned()));
                }
                break;
            }
        }
    }
}

impl OidcProvider {
    /// Starts `node tests/oidc/server.mjs` and waits (at most 20 s) until it listens.
    pub fn start(config: OidcConfig) -> Result<OidcProvider, String> {
        for (name, v) in [
            ("access_ttl_secs", config.access_ttl_secs),
            ("refresh_ttl_secs", config.refresh_ttl_secs),
        ] {
            if v == 0 {
                return Err(format!("OidcConfig::{name} must be at least 1 second"));
            }
        }
        let dir = oidc_dir();
        check_installed(&dir)?;

        let node = std::env::var_os("TOKENVAULT_NODE").unwrap_or_else(|| "node".into());
        let mut child = Command::new(&node)
            .arg("server.mjs")
            .arg("--access-ttl")
            .arg(config.access_ttl_secs.to_string())
            .arg("--refresh-ttl")
            .arg(config.refresh_ttl_secs.to_string())
            .arg("--rotate")
            .arg(if config.rotate { "true" } else { "false" })
            .arg("--omit-unrotated-refresh-token")
            .arg(config.omit_unrotated_refresh_token.to_string())
            .arg("--alg")
            .arg(config.alg)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run {:?} (Node.js, needed for the oidc-provider harness; set \
                     TOKENVAULT_NODE to override): {e}",
                    node
                )
            })?;

        let stdin = child.stdin.take();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(pipe) = child.stderr.take() {
            let tail = Arc::clone(&stderr_tail);
            thread::Builder::new()
                .name("oidc-provider-stderr".into())
                .spawn(move || drain_stderr(pipe, tail))
                .map_err(|e| format!("cannot spawn the stderr reader: {e}"))?;
        }
        let (tx, rx) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            thread::Builder::new()
                .name("oidc-provider-stdout".into())
                .spawn(move || watch_stdout(pipe, tx))
                .map_err(|e| format!("cannot spawn the stdout reader: {e}"))?;
        }

        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(HTTP_TIMEOUT))
            .build()
            .into();

        // From here on, `provider` owns the child: an early return drops (kills) it.
        let mut provider = OidcProvider {
            child,
            stdin,
            port: 0,
            issuer: String::new(),
            token_endpoint: String::new(),
            userinfo_endpoint: String::new(),
            config,
            agent,
            stderr_tail,
        };

        let started = Instant::now();
        let port = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(port)) => port,
            Ok(Err(why)) => return Err(provider.failure(&why)),
            Err(_) => return Err(provider.failure(&format!("no `LISTENING <port>` within {:?}", started.elapsed()))),
        };
        provider.port = port;
        provider.issuer = format!("http://127.0.0.1:{port}");
        provider.discover()?;
        Ok(provider)
    }

    /// Reads the discovery document and checks the issuer and endpoints it advertises.
    fn discover(&mut self) -> Result<(), String> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let (status, body) = self.get(&url, None)?;
        if status != 200 {
            return Err(self.failure(&format!("discovery answered {status}: {body}")));
        }
        let doc: Value =
            serde_json::from_str(&body).map_err(|e| self.failure(&format!("discovery is not JSON ({e}): {body}")))?;
        let field = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_owned);
        if field("issuer").as_deref() != Some(self.issuer.as_str()) {
            return Err(self.failure(&format!("discovery issuer {:?} != {}", field("issuer"), self.issuer)));
        }
        let token = field("token_endpoint").ok_or_else(|| self.failure("discovery has no token_endpoint"))?;
        let userinfo = field("userinfo_endpoint").ok_or_else(|| self.failure("discovery has no userinfo_endpoint"))?;
        let grants_ok = doc
            .get("grant_types_supported")
            .and_then(Value::as_array)
            .is_some_and(|g| g.iter().any(|g| g.as_str() == Some(BOOTSTRAP_GRANT_TYPE)));
        if !grants_ok {
            return Err(self.failure("discovery does not list the bootstrap grant type"));
        }
        self.token_endpoint = token;
        self.userinfo_endpoint = userinfo;
        Ok(())
    }

    /// A startup failure message with the server's recent stderr.
    fn failure(&self, why: &str) -> String {
        let tail = self.stderr_tail.lock();
        let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
        format!(
            "oidc-provider harness (tests/oidc/server.mjs) failed: {why}\n--- server stderr ---\n{}",
            tail.join("\n")
        )
    }

    /// `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The token endpoint as advertised by the discovery document (`<issuer>/token`).
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// The protected resource: oidc-provider's userinfo endpoint (`<issuer>/me`), which takes
    /// `Authorization: Bearer <access token>`.
    pub fn protected_resource(&self) -> &str {
        &self.userinfo_endpoint
    }

    /// The public client's id.
    pub fn client_id(&self) -> &'static str {
        PUBLIC_CLIENT_ID
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Issues the first token pair for `account` to the public client, through the test-only
    /// bootstrap grant (scope `openid offline_access`).
    pub fn bootstrap(&self, account: &str) -> Result<BootstrapTokens, String> {
        self.bootstrap_form(&[
            ("grant_type", BOOTSTRAP_GRANT_TYPE),
            ("client_id", PUBLIC_CLIENT_ID),
            ("account", account),
        ])
    }

    /// As [`bootstrap`](Self::bootstrap), for the confidential client (`client_secret_post`).
    pub fn bootstrap_confidential(&self, account: &str) -> Result<BootstrapTokens, String> {
        self.bootstrap_form(&[
            ("grant_type", BOOTSTRAP_GRANT_TYPE),
            ("client_id", CONFIDENTIAL_CLIENT_ID),
            ("client_secret", CONFIDENTIAL_CLIENT_SECRET),
            ("account", account),
        ])
    }

    fn bootstrap_form(&self, form: &[(&str, &str)]) -> Result<BootstrapTokens, String> {
        let (status, body) = self.post_form(&self.token_endpoint, form)?;
        if status != 200 {
            return Err(format!("bootstrap grant answered {status}: {body}"));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("bootstrap response is not JSON ({e})"))?;
        let text = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(BootstrapTokens {
            access_token: text("access_token").ok_or("bootstrap response has no access_token")?,
            refresh_token: text("refresh_token").ok_or("bootstrap response has no refresh_token")?,
            expires_in: v
                .get("expires_in")
                .and_then(Value::as_u64)
                .ok_or("bootstrap response has no numeric expires_in")?,
            id_token: text("id_token"),
            raw_json: body,
        })
    }

    /// `true` if the protected resource accepts `access_token` (200), `false` if it refuses it
    /// (401: unknown, expired or revoked); any other answer is an error.
    pub fn access_ok(&self, access_token: &str) -> Result<bool, String> {
        let (status, body) = self.get(&self.userinfo_endpoint, Some(access_token))?;
        match status {
            200 => Ok(true),
            401 => Ok(false),
            _ => Err(format!("protected resource answered {status}: {body}")),
        }
    }

    /// The server's counters.
    pub fn stats(&self) -> Result<OidcStats, String> {
        let (status, body) = self.get(&format!("{}/test/stats", self.issuer), None)?;
        if status != 200 {
            return Err(format!("/test/stats answered {status}: {body}"));
        }
        OidcStats::from_json(&body)
    }

    /// Replace the signing key by a new one (same algorithm, new `kid`); the old key leaves the
    /// published key set at once. Returns the new `kid`.
    pub fn rotate_signing_key(&self) -> Result<String, String> {
        let (status, body) = self.post_form(&format!("{}/test/rotate-key", self.issuer), &[])?;
        if status != 200 {
            return Err(format!("/test/rotate-key answered {status}: {body}"));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("/test/rotate-key: {e}"))?;
        v["kid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "/test/rotate-key: no kid".to_owned())
    }

    /// The next id_token the token endpoint issues names `sub` as its subject (once).
    pub fn next_id_token_sub(&self, sub: &str) -> Result<(), String> {
        let url = format!("{}/test/next-sub?sub={}", self.issuer, sub);
        let (status, body) = self.post_form(&url, &[])?;
        if status != 204 {
            return Err(format!("/test/next-sub answered {status}: {body}"));
        }
        Ok(())
    }

    /// A plain refresh for the public client:
    /// `grant_type=refresh_token&client_id=…&refresh_token=…`, form-urlencoded.
    /// Returns the status and the body as received.
    pub fn refresh_raw(&self, refresh_token: &str) -> Result<(u16, String), String> {
        self.post_form(
            &self.token_endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", PUBLIC_CLIENT_ID),
                ("refresh_token", refresh_token),
            ],
        )
    }

    fn get(&self, url: &str, bearer: Option<&str>) -> Result<(u16, String), String> {
        let mut req = self.agent.get(url);
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let resp = req.call().map_err(|e| format!("GET {url}: {e}"))?;
        Self::read(url, resp)
    }

    fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<(u16, String), String> {
        let resp = self
            .agent
            .post(url)
            .send_form(form.iter().copied())
            .map_err(|e| format!("POST {url}: {e}"))?;
        Self::read(url, resp)
    }

    fn read(url: &str, mut resp: ureq::http::Response<ureq::Body>) -> Result<(u16, String), String> {
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{url}: reading the body failed: {e}"))?;
        Ok((status, body))
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // Closing stdin alone makes the server exit; kill anyway so nothing outlives the test.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
