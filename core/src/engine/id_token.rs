//! The id_token of a refresh response (profiles with an `oidc` section; ADR 0012): the
//! issuer's key set, cached sealed in the vault file and fetched through the vault's
//! transport, then the pure validation of `crate::oidc`.
//!
//! * The key set is read from the cache (`jwks` table, sealed under the data key with the
//!   issuer's keyed hash as associated data); a missing, unreadable or day-old cache is
//!   fetched again: the `jwks_url`, or the `jwks_uri` of `{issuer}/.well-known/openid-configuration`
//!   (whose `issuer` must be the configured one).
//! * A token whose `kid` no cached key matches makes the vault fetch the set again, once.
//! * The blocking path fetches a missing key set *before* it sends the refresh
//!   ([`Engine::prefetch_jwks`]): a rotating server's answer is then never lost to a key set
//!   that could not be fetched afterwards.
//! * Any failure after the server answered (the key set unreachable, the token refused) is a
//!   `Protocol` error: nothing is stored, and the lost-answer marker stays (the server may have
//!   rotated the refresh token; settle's rule for a malformed answer).

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;

use super::Engine;
use crate::crypto::JWKS_DOMAIN;
use crate::error::{Result, VaultError};
use crate::oidc::{self, IdTokenError, OidcSettings, MAX_JWKS_BYTES};
use crate::profile::Profile;
use crate::session::{ReceivedTokens, SessionRecord};
use crate::transport::{HttpHeader, HttpRequest, Transport};

/// A cached key set older than this (by the device clock) is fetched again before use.
const JWKS_MAX_AGE_MS: i64 = 24 * 3600 * 1000;

impl Engine {
    /// Validate the id_token a refresh returned, when the profile validates them: on success
    /// its claims replace the stored ones; a response without one keeps them. The id_token
    /// itself is dropped (wiped) here and never stored.
    ///
    /// `base` is the stored session a refresh started from (its clock offset, and the `sub` the
    /// new token must keep); `None` for a first sign-in (`store_response`), which binds the
    /// session to the token's `sub`.
    pub(crate) fn check_id_token(
        &self,
        profile: &Profile,
        received: &mut ReceivedTokens,
        base: Option<&SessionRecord>,
        device_now_ms: i64,
    ) -> Result<()> {
        let Some(settings) = profile.oidc() else {
            received.id_token = None;
            return Ok(());
        };
        let Some(token) = received.id_token.take() else {
            return Ok(());
        };
        let server_now_ms = received
            .server_date_ms
            .unwrap_or_else(|| device_now_ms.saturating_add(base.map_or(0, |b| b.clock_offset_ms)));
        let refused = |e: VaultError| VaultError::protocol(format!("the id_token could not be checked: {e}"));
        let issuer_hash = self.with_lookup(|l| Ok(l.issuer_hash(&settings.issuer)))?;
        let (keys, fetched) = match self.cached_jwks(&issuer_hash, device_now_ms) {
            Some(keys) => (keys, false),
            None => (self.fetch_jwks(settings, profile, &issuer_hash).map_err(refused)?, true),
        };
        let stored = base.and_then(|b| b.identity.as_deref());
        let result = match oidc::validate_id_token(token.expose(), settings, &keys, server_now_ms, stored) {
            Err(IdTokenError::UnknownKey) if !fetched => {
                log::info!("id_token: unknown key id, fetching the issuer's key set again");
                let keys = self.fetch_jwks(settings, profile, &issuer_hash).map_err(refused)?;
                oidc::validate_id_token(token.expose(), settings, &keys, server_now_ms, stored)
            }
            r => r,
        };
        match result {
            Ok(claims) => {
                received.identity = Some(Box::new(claims));
                Ok(())
            }
            Err(e) => {
                log::warn!("id_token refused: {e}");
                Err(VaultError::protocol(format!("the id_token is not valid: {e}")))
            }
        }
    }

    /// Before a blocking refresh is sent: fetch the issuer's key set if none is cached, so the
    /// answer can be checked. Nothing has been sent when this fails.
    pub(crate) fn prefetch_jwks(&self, profile: &Profile) -> Result<()> {
        let Some(settings) = profile.oidc() else { return Ok(()) };
        let issuer_hash = self.with_lookup(|l| Ok(l.issuer_hash(&settings.issuer)))?;
        if self.cached_jwks(&issuer_hash, self.clock.wall_ms()).is_some() {
            return Ok(());
        }
        self.fetch_jwks(settings, profile, &issuer_hash).map(drop)
    }

    /// The cached key set of an issuer, if there is one, it opens, parses and is under a day
    /// old. A row that does not open is only a cache miss: the set is fetched again.
    fn cached_jwks(&self, issuer_hash: &[u8], device_now_ms: i64) -> Option<JwkSet> {
        let row = self
            .with_store(|s| Ok((s.store.jwks(issuer_hash)?, Arc::clone(&s.keys))))
            .ok()?;
        let (Some((fetched_at_ms, nonce, ct)), keys) = row else {
            return None;
        };
        if device_now_ms.saturating_sub(fetched_at_ms) > JWKS_MAX_AGE_MS || fetched_at_ms > device_now_ms + 60_000 {
            return None;
        }
        match keys.record.open_blob(JWKS_DOMAIN, issuer_hash, &nonce, &ct) {
            Ok(plain) => oidc::parse_jwks(&plain),
            Err(_) => {
                log::warn!("the cached key set of an OpenID issuer does not open; fetching it again");
                None
            }
        }
    }

    /// Fetch the issuer's key set through the vault's transport and cache it sealed.
    fn fetch_jwks(&self, settings: &OidcSettings, profile: &Profile, issuer_hash: &[u8]) -> Result<JwkSet> {
        let transport = self.transport()?;
        let jwks_url = match settings.jwks_url() {
            Some(u) => u.to_owned(),
            None => {
                let body = self.get_json(transport.as_ref(), &settings.discovery_url(), settings, profile)?;
                let doc: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|_| VaultError::protocol("the issuer's discovery document is not JSON"))?;
                if doc.get("issuer").and_then(|v| v.as_str()) != Some(settings.issuer()) {
                    return Err(VaultError::protocol(
                        "the issuer's discovery document names another issuer",
                    ));
                }
                doc.get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| VaultError::protocol("the issuer's discovery document has no jwks_uri"))?
            }
        };
        let body = self.get_json(transport.as_ref(), &jwks_url, settings, profile)?;
        let keys = oidc::parse_jwks(&body).ok_or_else(|| VaultError::protocol("the issuer's key set is not a JWKS"))?;
        let plain = serde_json::to_vec(&keys).map_err(|_| VaultError::internal("key set serialisation failed"))?;
        let now = self.clock.wall_ms();
        let stored = self.with_store(|s| {
            let (nonce, ct) = s.keys.record.seal_blob(JWKS_DOMAIN, issuer_hash, &plain)?;
            s.store.put_jwks(issuer_hash, now, &nonce, &ct)
        });
        if let Err(e) = stored {
            // The set is still good for this check; the next one fetches it again.
            log::warn!("could not cache an OpenID issuer's key set ({})", e.code());
        }
        crate::logging::debug_record!("fetched an OpenID issuer's key set ({} keys)", keys.keys.len());
        Ok(keys)
    }

    /// GET a JSON document of the issuer: the endpoint's plain-http rule, the profile's
    /// timeout, a size cap, no redirects (the transport never follows them), and the profile's
    /// pins when the document lives at the token endpoint's origin.
    fn get_json(
        &self,
        transport: &dyn Transport,
        url: &str,
        settings: &OidcSettings,
        profile: &Profile,
    ) -> Result<Vec<u8>> {
        let allow_plain_http = crate::profile::fetch_url_rule(url, settings.allow_http)
            .map_err(|why| VaultError::protocol(format!("an issuer URL is refused: {why}")))?;
        let pins = if crate::profile::origin_of(url) == profile.origin() {
            profile.pins().to_vec()
        } else {
            Vec::new()
        };
        let request = HttpRequest {
            method: "GET".into(),
            url: url.to_owned(),
            headers: vec![HttpHeader {
                name: "Accept".into(),
                value: "application/json".into(),
            }],
            body: Vec::new(),
            timeout: profile.timeout().min(Duration::from_secs(30)),
            max_response_bytes: MAX_JWKS_BYTES,
            allow_plain_http,
            pins,
        };
        let response = transport
            .send(&request)
            .map_err(|e| VaultError::transient(format!("fetching the issuer's keys: {e}")))?;
        if response.status != 200 {
            return Err(VaultError::protocol(format!(
                "the issuer answered HTTP {} for its keys or discovery document",
                response.status
            )));
        }
        if response.body.len() > MAX_JWKS_BYTES {
            return Err(VaultError::protocol("the issuer's document is too large"));
        }
        Ok(response.body.clone())
    }
}
