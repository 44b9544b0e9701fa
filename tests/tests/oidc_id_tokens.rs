//! OpenID Connect id_tokens against a real provider (panva's oidc-provider, RS256, PS256 and
//! ES256 signing keys): the claims of a validated id_token reach `session_info`; a signing-key
//! rotation costs one key-set fetch; an id_token altered in flight, naming another subject or
//! another audience is `Protocol` and nothing is stored. Requires `npm ci --prefix tests/oidc`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tokenvault::{
    ErrorCode, HttpRequest, HttpResponse, HttpsTransport, ManualClock, NewSession, Preset, Profile, Transport,
    TransportError, Vault,
};
use tokenvault_testkit::oidc_provider::{OidcConfig, OidcProvider, PUBLIC_CLIENT_ID};
use tokenvault_tests::open_vault;

const ACCOUNT: &str = "player-1";

struct Fixture {
    op: OidcProvider,
    vault: Vault,
    _clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

fn profile(op: &OidcProvider, oidc: serde_json::Value) -> Profile {
    Profile::preset(
        Preset::OAuth2,
        "op",
        op.token_endpoint(),
        serde_json::json!({"client_id": PUBLIC_CLIENT_ID, "oidc": oidc}),
    )
    .unwrap()
}

fn fixture_with(alg: &'static str, oidc: impl FnOnce(&OidcProvider) -> serde_json::Value) -> Fixture {
    let op = OidcProvider::start(OidcConfig {
        alg,
        ..OidcConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let vault = open_vault(&dir.path().join("v.db"), clock.clone()).unwrap();
    vault.register_profile(profile(&op, oidc(&op))).unwrap();
    let boot = op.bootstrap(ACCOUNT).unwrap();
    assert!(boot.id_token.is_some(), "the provider issues id_tokens");
    vault
        .store(
            NewSession::new(ACCOUNT, "op", boot.access_token.clone())
                .refresh_credential(boot.refresh_token.clone())
                .expires_in(Duration::from_secs(boot.expires_in)),
        )
        .unwrap();
    Fixture {
        op,
        vault,
        _clock: clock,
        dir,
    }
}

fn fixture(alg: &'static str) -> Fixture {
    fixture_with(alg, |op| serde_json::json!({"issuer": op.issuer()}))
}

/// What a refused id_token must leave untouched.
#[derive(Debug, PartialEq)]
struct Stored {
    pair: (String, Option<String>),
    generation: u64,
    identity: Option<tokenvault::IdentityClaims>,
}

fn stored(v: &Vault) -> Stored {
    let info = v.session_info(ACCOUNT).unwrap();
    Stored {
        pair: v.stored_pair_for_tests(ACCOUNT).unwrap(),
        generation: info.generation,
        identity: info.identity,
    }
}

#[test]
fn rs256_ps256_and_es256_id_tokens_are_validated_and_their_claims_shown() {
    // The default profile allows RS256 and ES256; PS256 must be listed.
    for (alg, oidc) in [
        ("ES256", serde_json::json!({})),
        ("RS256", serde_json::json!({})),
        ("PS256", serde_json::json!({"algorithms": ["PS256"]})),
    ] {
        let oidc = |op: &OidcProvider| {
            let mut o = oidc.clone();
            o["issuer"] = op.issuer().into();
            o
        };
        let f = fixture_with(alg, oidc);
        assert_eq!(f.vault.session_info(ACCOUNT).unwrap().identity, None, "{alg}");
        let t = f.vault.force_refresh(ACCOUNT).unwrap();
        assert!(f.op.access_ok(t.expose()).unwrap());
        let info = f.vault.session_info(ACCOUNT).unwrap();
        let id = info.identity.clone().expect("claims after a refresh with an id_token");
        assert_eq!(id.iss, f.op.issuer());
        assert_eq!(id.sub, ACCOUNT);
        assert_eq!(id.name.as_deref(), Some("Player player-1"));
        assert_eq!(id.given_name.as_deref(), Some("Player"));
        assert_eq!(id.family_name.as_deref(), Some(ACCOUNT));
        assert_eq!(id.preferred_username.as_deref(), Some(ACCOUNT));
        assert_eq!(id.email.as_deref(), Some("player-1@example.test"));
        assert_eq!(id.email_verified, Some(true));
        assert_eq!(id.locale.as_deref(), Some("en-GB"));
        assert_eq!(id.picture.as_deref(), Some("https://example.test/avatars/player-1.png"));
        // Personal data stays out of Debug.
        let dbg = format!("{info:?}");
        assert!(!dbg.contains("example.test") && !dbg.contains("Player"), "{dbg}");
        // One discovery document and one key set (the harness read the discovery document once
        // when it started).
        let s = f.op.stats().unwrap();
        assert_eq!((s.discovery_requests, s.jwks_requests), (2, 1), "{alg}: {s:?}");

        // The key set is cached: another refresh, and a reopened vault, fetch nothing more.
        f.vault.force_refresh(ACCOUNT).unwrap();
        // The claims of that second id_token (its `iat` may be a second later than the first's).
        let latest = f.vault.session_info(ACCOUNT).unwrap().identity;
        assert_eq!(latest.as_ref().map(|c| (&c.iss, &c.sub)), Some((&id.iss, &id.sub)));
        let path = f.vault.path().to_owned();
        f.vault.close().unwrap();
        let reopened = open_vault(&path, ManualClock::new()).unwrap();
        reopened.register_profile(profile(&f.op, oidc(&f.op))).unwrap();
        assert_eq!(reopened.session_info(ACCOUNT).unwrap().identity, latest);
        reopened.force_refresh(ACCOUNT).unwrap();
        let s = f.op.stats().unwrap();
        assert_eq!(s.refresh_success, 3);
        assert_eq!((s.discovery_requests, s.jwks_requests), (2, 1), "{alg}: {s:?}");
        drop(f.dir);
    }
}

#[test]
fn a_rotated_signing_key_is_fetched_once_and_the_refresh_succeeds() {
    let f = fixture("RS256");
    f.vault.force_refresh(ACCOUNT).unwrap();
    assert_eq!(f.op.stats().unwrap().jwks_requests, 1);
    let kid = f.op.rotate_signing_key().unwrap();
    assert_eq!(kid, "tokenvault-test-rs256-2");
    let t = f.vault.force_refresh(ACCOUNT).unwrap();
    assert!(f.op.access_ok(t.expose()).unwrap());
    let s = f.op.stats().unwrap();
    assert_eq!(s.jwks_requests, 2, "one fetch for the unknown kid: {s:?}");
    assert_eq!(s.refresh_success, 2);
    // And the new set is what is cached now.
    f.vault.force_refresh(ACCOUNT).unwrap();
    assert_eq!(f.op.stats().unwrap().jwks_requests, 2);
    assert_eq!(f.vault.session_info(ACCOUNT).unwrap().identity.unwrap().sub, ACCOUNT);
}

#[test]
fn the_cached_key_set_is_resealed_by_a_rekey_and_still_used() {
    let f = fixture("ES256");
    f.vault.force_refresh(ACCOUNT).unwrap();
    assert_eq!(f.op.stats().unwrap().jwks_requests, 1);
    f.vault.rekey(tokenvault::KeySource::raw(&[9u8; 32]).unwrap()).unwrap();
    f.vault.force_refresh(ACCOUNT).unwrap();
    let s = f.op.stats().unwrap();
    assert_eq!(s.jwks_requests, 1, "the re-sealed cache opened: {s:?}");
    assert_eq!(s.refresh_success, 2);
}

/// A network attacker between the vault and the provider: forwards every request to the real
/// server and rewrites the `email` claim of the id_token in token responses, keeping its
/// signature.
#[derive(Debug)]
struct AlteringProxy {
    inner: HttpsTransport,
}

impl Transport for AlteringProxy {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut response = self.inner.send(request)?;
        if !request.url.ends_with("/token") {
            return Ok(response);
        }
        let mut doc: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        let id_token = doc["id_token"].as_str().expect("an id_token to alter").to_owned();
        let mut parts: Vec<String> = id_token.split('.').map(str::to_owned).collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["email"] = "mallory@evil.test".into();
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        doc["id_token"] = parts.join(".").into();
        response.body = doc.to_string().into_bytes();
        Ok(response)
    }
}

#[test]
fn an_id_token_altered_in_flight_is_protocol_and_nothing_is_stored() {
    // Both verifiers: ECDSA P-256 and RSA.
    for alg in ["ES256", "RS256"] {
        let f = fixture(alg);
        f.vault.force_refresh(ACCOUNT).unwrap();
        let before = stored(&f.vault);
        f.vault
            .set_transport(Some(Arc::new(AlteringProxy {
                inner: HttpsTransport::new(),
            })))
            .unwrap();
        let err = f.vault.force_refresh(ACCOUNT).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Protocol, "{alg}: {err}");
        assert!(err.to_string().contains("signature"), "{err}");
        assert!(!err.to_string().contains("mallory"), "{err}");
        assert_eq!(stored(&f.vault), before, "nothing stored");
        assert_eq!(f.op.stats().unwrap().refresh_success, 2, "the server did answer");

        // The server rotated the refresh token in the answer the vault refused: the stored one is
        // spent. The lost-answer marker stayed, so its refusal is told apart (code 12), as for any
        // answer the vault could not accept.
        f.vault.set_transport(None).unwrap();
        let err = f.vault.force_refresh(ACCOUNT).unwrap_err();
        assert_eq!(err.code(), ErrorCode::RefreshOutcomeUnknown, "{err}");
        assert_eq!(f.op.stats().unwrap().reuse_detected, 1);
    }
}

#[test]
fn an_id_token_for_another_subject_is_protocol_and_nothing_is_stored() {
    let f = fixture("RS256");
    f.vault.force_refresh(ACCOUNT).unwrap();
    let before = stored(&f.vault);
    assert_eq!(before.identity.as_ref().unwrap().sub, ACCOUNT);
    f.op.next_id_token_sub("someone-else").unwrap();
    let err = f.vault.force_refresh(ACCOUNT).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Protocol, "{err}");
    assert!(err.to_string().contains("(sub)"), "{err}");
    assert!(!err.to_string().contains("someone-else"), "{err}");
    assert_eq!(stored(&f.vault), before, "nothing stored");
    assert_eq!(f.op.stats().unwrap().refresh_success, 2, "the server did answer");
}

#[test]
fn an_id_token_for_another_audience_is_protocol_and_nothing_is_stored() {
    let f = fixture_with(
        "ES256",
        |op| serde_json::json!({"issuer": op.issuer(), "audience": "another-client"}),
    );
    let before = stored(&f.vault);
    let err = f.vault.force_refresh(ACCOUNT).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Protocol, "{err}");
    assert!(err.to_string().contains("(aud)"), "{err}");
    assert_eq!(stored(&f.vault), before, "nothing stored");
    assert_eq!(before.identity, None);
    assert_eq!(f.op.stats().unwrap().refresh_success, 1, "the server did answer");
}

#[test]
fn a_signature_algorithm_the_profile_does_not_allow_is_refused() {
    // PS256 is not among the default RS256 and ES256.
    let f = fixture("PS256");
    let before = stored(&f.vault);
    let err = f.vault.force_refresh(ACCOUNT).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Protocol, "{err}");
    assert!(err.to_string().contains("algorithm"), "{err}");
    assert_eq!(stored(&f.vault), before, "nothing stored");
}

#[test]
fn an_issuer_that_is_not_the_providers_is_refused() {
    // The discovery document names the real issuer; a profile expecting another one (here: the
    // same server under `localhost`) refuses before any refresh is sent.
    let f = fixture_with(
        "ES256",
        |op| serde_json::json!({"issuer": op.issuer().replace("127.0.0.1", "localhost")}),
    );
    let before = stored(&f.vault);
    let err = f.vault.force_refresh(ACCOUNT).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Transient, "{err}");
    assert_eq!(stored(&f.vault), before);
    let s = f.op.stats().unwrap();
    assert_eq!(s.refresh_requests(), 0, "nothing was sent: {s:?}");
}

#[test]
fn store_response_validates_the_login_answers_id_token() {
    let f = fixture("ES256");
    // The provider's real token response, id_token included: stored with its claims.
    let boot = f.op.bootstrap("player-2").unwrap();
    let info = f
        .vault
        .store_response(tokenvault::LoginResponse::new("player-2", "op", boot.raw_json.clone()))
        .unwrap();
    let id = info.identity.expect("claims from the login answer's id_token");
    assert_eq!(id.sub, "player-2");
    assert_eq!(id.email.as_deref(), Some("player-2@example.test"));
    // The session is bound to that subject: a refresh keeps it.
    f.vault.force_refresh("player-2").unwrap();
    assert_eq!(
        f.vault
            .session_info("player-2")
            .unwrap()
            .identity
            .map(|i| i.sub)
            .as_deref(),
        Some("player-2")
    );

    // An id_token altered before it reached the host: Protocol, nothing stored.
    let boot = f.op.bootstrap("player-3").unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&boot.raw_json).unwrap();
    let id_token = doc["id_token"].as_str().unwrap().to_owned();
    let mut parts: Vec<String> = id_token.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["sub"] = "someone-else".into();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    doc["id_token"] = parts.join(".").into();
    let err = f
        .vault
        .store_response(tokenvault::LoginResponse::new("player-3", "op", doc.to_string()))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Protocol, "{err}");
    assert_eq!(
        f.vault.session_info("player-3").unwrap_err().code(),
        ErrorCode::NotFound
    );
}
