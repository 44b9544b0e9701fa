//! `Vault::store_response`: a session stored from the login response as the server wrote it,
//! read by the profile's own response spec. The seed documents' own example bodies, the
//! reference servers' real answers over HTTP (their `Date` header included), and oidc-provider's
//! real token response; then a refresh with what was stored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tokenvault::{
    Clock, ErrorCode, LoginResponse, ManualClock, NewSession, Preset, Profile, SessionState, Vault, VaultError,
};
use tokenvault_testkit::oidc_provider::{OidcConfig, OidcProvider, PUBLIC_CLIENT_ID};
use tokenvault_testkit::{Dialect, ReferenceServer, ServerConfig};
use tokenvault_tests::{open_vault, profile_for};

const HOUR_MS: i64 = 3_600_000;

fn vault(dir: &tempfile::TempDir, clock: &std::sync::Arc<ManualClock>) -> Vault {
    open_vault(&dir.path().join("v.db"), clock.clone()).unwrap()
}

fn preset(v: &Vault, preset: Preset, name: &str, settings: serde_json::Value) {
    v.register_profile(Profile::preset(preset, name, "https://auth.example.test/token", settings).unwrap())
        .unwrap();
}

fn jwt(claims: serde_json::Value) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[test]
fn seed_003_example_with_a_java_timestamp_expiry_and_an_offline_token() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let v = vault(&dir, &clock);
    preset(
        &v,
        Preset::Keycloak,
        "kc",
        serde_json::json!({"client_id": "integration-api"}),
    );
    let now = clock.wall_ms();
    // The document's response, its JAVA_TIMESTAMPs filled in (30 minutes from now, in ms).
    let body = format!(
        r#"{{
    "access_token": "ACCESS_TOKEN",
    "expires_in": {},
    "refresh_expires_in": 1209600,
    "refresh_token": "REFRESH_TOKEN",
    "token_type": "bearer",
    "not-before-policy": {},
    "session_state": "6f1ad2b4-8c31-4c55-a8a8-7a0e2b4f5e11",
    "scope": "TOKEN_VALIDITY_SCOPES"
}}"#,
        now + 1_800_000,
        now - 86_400_000
    );
    let info = v.store_response(LoginResponse::new("player", "kc", body)).unwrap();
    assert_eq!(info.access_expires_at_ms, now + 1_800_000);
    assert!(
        (info.access_remaining_ms - 1_800_000).abs() < 1_000,
        "{}",
        info.access_remaining_ms
    );
    assert_eq!(info.session_expires_at_ms, Some(now + 1_209_600_000));
    assert_eq!(info.token_type.as_deref(), Some("bearer"));
    assert_eq!(info.scope.as_deref(), Some("TOKEN_VALIDITY_SCOPES"));
    assert!(!info.offline);
    assert_eq!(
        v.stored_pair_for_tests("player").unwrap(),
        ("ACCESS_TOKEN".into(), Some("REFRESH_TOKEN".into()))
    );

    // `refresh_expires_in: 0`: an offline token, no session end.
    let body =
        r#"{"access_token":"A2","expires_in":300,"refresh_expires_in":0,"refresh_token":"R2","token_type":"bearer"}"#;
    let info = v.store_response(LoginResponse::new("offline", "kc", body)).unwrap();
    assert!(info.offline);
    assert_eq!(info.session_expires_at_ms, None);
    assert!((info.access_remaining_ms - 300_000).abs() < 1_000);
}

#[test]
fn seed_001_and_002_examples_and_their_failure_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let v = vault(&dir, &clock);
    preset(&v, Preset::RotatingSuccessEnvelope, "s1", serde_json::json!({}));
    preset(&v, Preset::RotatingBearerVersioned, "s2", serde_json::json!({}));
    let now = clock.wall_ms();

    // Seed 001's success example, as printed (its access token is not a complete JWT: the
    // profile's default lifetime applies; the refresh token lives 12 h).
    let body = r#"{
"success": true,
"data": {
"accessToken": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
"refreshToken": "new_refresh_token_here"
}
}"#;
    let info = v.store_response(LoginResponse::new("p1", "s1", body)).unwrap();
    assert_eq!(info.session_expires_at_ms, Some(now + 12 * HOUR_MS));
    assert!(info.has_refresh_credential);
    assert_eq!(
        v.stored_pair_for_tests("p1").unwrap().1.as_deref(),
        Some("new_refresh_token_here")
    );

    // Seed 001's error example: not a login, nothing stored.
    let body =
        r#"{"success": false, "error": {"type": "AUTHENTICATION", "message": "Invalid or expired refresh token"}}"#;
    let e = v.store_response(LoginResponse::new("p1-fail", "s1", body)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Protocol, "{e}");
    assert_eq!(v.session_info("p1-fail").unwrap_err(), VaultError::NotFound);

    // Seed 002's example: the JWT's `exp` (1740000000, February 2025) is the expiry.
    let body = r#"{
  "accessToken": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJodHRwOi8vc2NoZW1hcy54bWxzb2FwLm9yZy93cy8yMDA1LzA1L2lkZW50aXR5L2NsYWltcy9uYW1laWRlbnRpZmllciI6InRlc3R1c2VyIiwiVXNlcklEIjoiMTIzIiwiSW5zdGFuY2VJRCI6IjEiLCJSb2xlcyI6Ilt7XCJSSURcIjoxLFwiQklEXCI6MTAwLFwiUElEXCI6NX1dIiwiZXhwIjoxNzQwMDAwMDAwLCJpc3MiOiJodHRwczovLzdnLmNvbS5hdSIsImF1ZCI6IlB1YmxpYyJ9.signature",
  "refreshToken": "A8c7B9d2E1f4G6h5I3j8K0l9M7n4O2p1Q5r8S3t6U4v7W1x9Y2z5"
}"#;
    let info = v.store_response(LoginResponse::new("p2", "s2", body)).unwrap();
    assert_eq!(info.access_expires_at_ms, 1_740_000_000_000);
    assert_eq!(info.state, SessionState::Expired);

    // Not JSON, an empty object, a body over the profile's cap: Protocol, nothing stored.
    for body in [&b"<html>login</html>"[..], b"{}", &vec![b' '; 2 << 20][..]] {
        let e = v
            .store_response(LoginResponse::new("p3", "s2", body.to_vec()))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Protocol, "{e}");
    }
    assert_eq!(v.session_info("p3").unwrap_err(), VaultError::NotFound);
    // A profile that is not registered.
    assert_eq!(
        v.store_response(LoginResponse::new("p3", "nope", "{}"))
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );
}

#[test]
fn seed_000_envelope_with_the_entity_token_given_apart_and_the_date_header() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let v = vault(&dir, &clock);
    preset(
        &v,
        Preset::EntityTokenEnvelope,
        "s0",
        serde_json::json!({"api_key": "k"}),
    );
    // The server's clock is an hour ahead of the device: its `Date` and the JWT say so.
    let server_now_s = clock.wall_ms() / 1000 + 3600;
    let access = jwt(serde_json::json!({"sub": "p", "iat": server_now_s, "exp": server_now_s + 900}));
    let body = serde_json::json!({
        "status": "success", "code": 200, "message": "Token refreshed", "errors": [], "data": access,
    })
    .to_string();
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(server_now_s as u64));
    let info = v
        .store_response(
            LoginResponse::new("p", "s0", body.clone())
                .date_header(date)
                .refresh_credential("entity-token-1")
                .hint("display_name", "P"),
        )
        .unwrap();
    assert_eq!(info.access_expires_at_ms, (server_now_s + 900) * 1000);
    assert!(
        (info.access_remaining_ms - 900_000).abs() < 1_000,
        "{}",
        info.access_remaining_ms
    );
    assert!(
        (info.clock_offset_ms - 3_600_000).abs() < 1_000,
        "{}",
        info.clock_offset_ms
    );
    assert_eq!(info.hints.get("display_name").map(String::as_str), Some("P"));
    assert_eq!(
        v.stored_pair_for_tests("p").unwrap(),
        (access, Some("entity-token-1".into()))
    );

    // A second credential besides one in the response is refused.
    preset(&v, Preset::RotatingBearerVersioned, "s2", serde_json::json!({}));
    let e = v
        .store_response(
            LoginResponse::new("q", "s2", r#"{"accessToken":"a.b.c","refreshToken":"r"}"#).refresh_credential("x"),
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert_eq!(v.session_info("q").unwrap_err(), VaultError::NotFound);
}

#[test]
fn the_reference_servers_real_login_answers_store_and_refresh() {
    for dialect in Dialect::ALL {
        let server = ReferenceServer::start(dialect, ServerConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let v = vault(&dir, &clock);
        v.register_profile(profile_for(&server, "p", serde_json::json!({})).unwrap())
            .unwrap();
        let agent = ureq::Agent::new_with_defaults();
        let mut resp = agent
            .post(format!("{}/test/login", server.base_url()))
            .header("content-type", "application/json")
            .send(r#"{"user": "player", "answer": "dialect"}"#)
            .unwrap();
        let header = |name: &str| resp.headers().get(name).map(|h| h.to_str().unwrap().to_owned());
        let date = header("date").unwrap();
        let entity = header("x-test-refresh-credential").unwrap();
        let body = resp.body_mut().read_to_vec().unwrap();
        let mut login = LoginResponse::new("player", "p", body).date_header(date);
        if dialect == Dialect::EntityToken {
            login = login.refresh_credential(entity);
        }
        let info = v.store_response(login).unwrap();
        assert!(info.has_refresh_credential, "{dialect:?}");
        assert!(
            (55_000..=60_000).contains(&info.access_remaining_ms),
            "{dialect:?}: {}",
            info.access_remaining_ms
        );
        let first = v.access_token("player").unwrap();
        assert!(server.check_access(first.expose()));
        clock.advance(Duration::from_secs(50));
        let second = v.access_token("player").unwrap();
        assert!(second.generation() > first.generation(), "{dialect:?}");
        assert!(server.check_access(second.expose()), "{dialect:?}");
        assert_eq!(server.stats().refresh_successes, 1, "{dialect:?}");
    }
}

#[test]
fn oidc_providers_real_token_response_stores_and_refreshes() {
    let op = OidcProvider::start(OidcConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let v = vault(&dir, &clock);
    for (name, preset) in [("kc", Preset::Keycloak), ("o2", Preset::OAuth2)] {
        v.register_profile(
            Profile::preset(
                preset,
                name,
                op.token_endpoint(),
                serde_json::json!({"client_id": PUBLIC_CLIENT_ID}),
            )
            .unwrap(),
        )
        .unwrap();
        let boot = op.bootstrap(name).unwrap();
        let info = v
            .store_response(LoginResponse::new(name, name, boot.raw_json.clone()))
            .unwrap();
        assert!(info.has_refresh_credential);
        assert_eq!(info.token_type.as_deref(), Some("Bearer"));
        assert!(
            (info.access_remaining_ms - boot.expires_in as i64 * 1000).abs() < 2_000,
            "{}",
            info.access_remaining_ms
        );
        let before = v.access_token(name).unwrap();
        assert_eq!(before.expose(), boot.access_token);
        let after = v.force_refresh(name).unwrap();
        assert_ne!(after.expose(), before.expose());
        assert!(op.access_ok(after.expose()).unwrap());
    }
    // The same session, stored the old way, agrees with store_response.
    let boot = op.bootstrap("manual").unwrap();
    let manual = v
        .store(
            NewSession::new("manual", "kc", boot.access_token.clone())
                .refresh_credential(boot.refresh_token.clone())
                .expires_in_secs(boot.expires_in as i64),
        )
        .unwrap();
    assert!((manual.access_remaining_ms - boot.expires_in as i64 * 1000).abs() < 2_000);
}

#[test]
fn new_session_reads_expires_in_as_a_refresh_response_does() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let v = vault(&dir, &clock);
    preset(&v, Preset::Keycloak, "kc", serde_json::json!({"client_id": "c"}));
    let now = clock.wall_ms();
    for (value, expected_at) in [
        (1800, now + 1_800_000),                         // relative seconds
        (now / 1000 + 1800, (now / 1000 + 1800) * 1000), // epoch seconds
        (now + 1_800_000, now + 1_800_000),              // epoch milliseconds (seed 003)
    ] {
        let info = v
            .store(
                NewSession::new("a", "kc", "tok")
                    .refresh_credential("r")
                    .expires_in_secs(value),
            )
            .unwrap();
        assert_eq!(info.access_expires_at_ms, expected_at, "expires_in {value}");
    }
    let info = v
        .store(
            NewSession::new("a", "kc", "tok")
                .refresh_credential("r")
                .refresh_expires_in_secs(now + 3_600_000),
        )
        .unwrap();
    assert_eq!(info.session_expires_at_ms, Some(now + 3_600_000));
    // Relative values longer than ten years are still refused.
    assert_eq!(
        v.store(NewSession::new("a", "kc", "tok").expires_in_secs(400_000_000))
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );
}
