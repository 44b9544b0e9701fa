//! End-to-end tests over real sockets: each dialect exactly as its seed writes the request, rotation,
//! revocation, reuse detection, every fault, the protected resource and the `/test/…` routes.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::test_client::{build, request, send_raw, Reply};
use super::*;

const JSON: (&str, &str) = ("Content-Type", "application/json");
const API_KEY: &str = "test-api-key";

fn server(dialect: Dialect) -> ReferenceServer {
    ReferenceServer::start(dialect, ServerConfig::default()).unwrap()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Seed 000 request: `api-key`, `Authorization: Bearer`, `{entityToken, expiringAccessToken}`.
fn refresh_000(s: &ReferenceServer, entity: &str, bearer: &str, expiring: &str) -> Option<Reply> {
    let body = json!({ "entityToken": entity, "expiringAccessToken": expiring }).to_string();
    let auth = format!("Bearer {bearer}");
    request(
        s.port(),
        "POST",
        "/v2/client/auth/refresh-token",
        &[JSON, ("api-key", API_KEY), ("Authorization", &auth)],
        &body,
    )
}

/// Seed 001 request: no auth header, `{accessToken, refreshToken}`.
fn refresh_001(s: &ReferenceServer, access: &str, refresh: &str) -> Option<Reply> {
    let body = json!({ "accessToken": access, "refreshToken": refresh }).to_string();
    request(s.port(), "POST", "/v2/Auth/RefreshToken", &[JSON], &body)
}

/// Seed 002 request: `Authorization: Bearer <current access>`, `Version: 2.0`, `{refreshToken}`.
fn refresh_002(s: &ReferenceServer, bearer: &str, refresh: &str) -> Option<Reply> {
    let body = json!({ "refreshToken": refresh }).to_string();
    let auth = format!("Bearer {bearer}");
    request(
        s.port(),
        "POST",
        "/User/RefreshToken",
        &[("Authorization", &auth), JSON, ("Version", "2.0")],
        &body,
    )
}

fn tokens_001(reply: &Reply) -> IssuedTokens {
    let body = reply.json();
    IssuedTokens {
        access_token: body["data"]["accessToken"].as_str().unwrap().to_owned(),
        refresh_credential: body["data"]["refreshToken"].as_str().unwrap().to_owned(),
    }
}

fn tokens_002(reply: &Reply) -> IssuedTokens {
    let body = reply.json();
    IssuedTokens {
        access_token: body["accessToken"].as_str().unwrap().to_owned(),
        refresh_credential: body["refreshToken"].as_str().unwrap().to_owned(),
    }
}

fn protected(s: &ReferenceServer, token: &str) -> Reply {
    let auth = format!("Bearer {token}");
    request(s.port(), "GET", "/protected", &[("Authorization", &auth)], "").unwrap()
}

fn assert_001_auth_failure(reply: &Reply) {
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.json(),
        json!({"success": false, "error": {"type": "AUTHENTICATION",
               "message": "Invalid or expired refresh token"}})
    );
}

// ---------------------------------------------------------------- seed 000

#[test]
fn entity_token_happy_path_envelope_and_no_rotation() {
    let s = server(Dialect::EntityToken);
    assert_eq!(
        s.refresh_url(),
        format!("http://127.0.0.1:{}/v2/client/auth/refresh-token", s.port())
    );
    let login = s.login("player-1");
    let entity = login.refresh_credential.clone();

    let reply = refresh_000(&s, &entity, &login.access_token, &login.access_token).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    let new_access = body["data"].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        json!({"status": "success", "code": 200, "message": "Token refreshed",
               "errors": [], "data": new_access})
    );
    assert_ne!(new_access, login.access_token);
    let c = claims(&new_access);
    assert_eq!(c["sub"], "player-1");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
    assert!(s.check_access(&new_access));
    // Nothing is rotated or revoked: the same entity token keeps working, old access tokens too.
    assert!(s.check_access(&login.access_token));
    let again = refresh_000(&s, &entity, &new_access, &new_access).unwrap();
    assert_eq!(again.status, 200);
    let older = refresh_000(&s, &entity, &login.access_token, &login.access_token).unwrap();
    assert_eq!(older.status, 200);
    let stats = s.stats();
    assert_eq!((stats.refresh_requests, stats.refresh_successes), (3, 3));
    assert_eq!(stats.reuse_detections, 0);
}

#[test]
fn entity_token_accepts_an_expired_access_token() {
    let s = server(Dialect::EntityToken);
    let login = s.login("p");
    s.advance_clock(Duration::from_secs(61));
    assert!(!s.check_access(&login.access_token));
    let reply = refresh_000(&s, &login.refresh_credential, &login.access_token, &login.access_token).unwrap();
    assert_eq!(reply.status, 200);
    assert!(s.check_access(reply.json()["data"].as_str().unwrap()));
}

#[test]
fn entity_token_rejects_missing_or_wrong_credentials() {
    let s = server(Dialect::EntityToken);
    let login = s.login("p");
    let other = s.login("q");
    let body = json!({ "entityToken": login.refresh_credential,
                       "expiringAccessToken": login.access_token })
    .to_string();
    let auth = format!("Bearer {}", login.access_token);
    let path = Dialect::EntityToken.refresh_path();

    let no_key = request(s.port(), "POST", path, &[JSON, ("Authorization", &auth)], &body);
    let no_key = no_key.unwrap();
    assert_eq!(no_key.status, 401);
    let envelope = no_key.json();
    assert_eq!(envelope["status"], "error");
    assert_eq!(envelope["code"], 401);
    assert_eq!(envelope["data"], Value::Null);
    assert!(envelope["errors"][0].as_str().unwrap().contains("api-key"));

    let wrong_key = request(
        s.port(),
        "POST",
        path,
        &[JSON, ("api-key", "nope"), ("Authorization", &auth)],
        &body,
    )
    .unwrap();
    assert_eq!(wrong_key.status, 403);
    assert_eq!(wrong_key.json()["code"], 403);

    let no_bearer = request(s.port(), "POST", path, &[JSON, ("api-key", API_KEY)], &body);
    assert_eq!(no_bearer.unwrap().status, 401);

    // Another family's access token, in either place.
    let mixed = refresh_000(&s, &login.refresh_credential, &other.access_token, &login.access_token);
    assert_eq!(mixed.unwrap().status, 401);
    let mixed = refresh_000(&s, &login.refresh_credential, &login.access_token, &other.access_token);
    assert_eq!(mixed.unwrap().status, 401);
    let bogus = refresh_000(&s, "bogus", &login.access_token, &login.access_token);
    assert_eq!(bogus.unwrap().status, 401);

    // Server-side logout.
    assert!(s.revoke_family_of(&login.refresh_credential));
    let revoked = refresh_000(&s, &login.refresh_credential, &login.access_token, &login.access_token);
    assert_eq!(revoked.unwrap().status, 401);
    assert!(!s.check_access(&login.access_token));
    assert!(s.check_access(&other.access_token));
    let stats = s.stats();
    assert_eq!((stats.refresh_failures, stats.families_revoked), (7, 1));
}

// ---------------------------------------------------------------- seed 001

#[test]
fn success_envelope_happy_path_and_rotation() {
    let s = server(Dialect::SuccessEnvelope);
    let login = s.login("u1");
    let reply = refresh_001(&s, &login.access_token, &login.refresh_credential).unwrap();
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["success"], true);
    assert_eq!(body.as_object().unwrap().len(), 2);
    assert_eq!(body["data"].as_object().unwrap().len(), 2);
    let next = tokens_001(&reply);
    assert_ne!(next.refresh_credential, login.refresh_credential);
    assert_ne!(next.access_token, login.access_token);
    assert_eq!(claims(&next.access_token)["sub"], "u1");
    assert!(s.check_access(&next.access_token));

    // Rotation on every refresh.
    let third = tokens_001(&refresh_001(&s, &next.access_token, &next.refresh_credential).unwrap());
    assert_ne!(third.refresh_credential, next.refresh_credential);
    assert_eq!(s.stats().refresh_successes, 2);
}

#[test]
fn success_envelope_reuse_revokes_the_family() {
    let s = server(Dialect::SuccessEnvelope);
    let login = s.login("u");
    let bystander = s.login("v");
    let next = tokens_001(&refresh_001(&s, &login.access_token, &login.refresh_credential).unwrap());

    // Replaying the rotated-out refresh token.
    let replay = refresh_001(&s, &login.access_token, &login.refresh_credential).unwrap();
    assert_001_auth_failure(&replay);
    let stats = s.stats();
    assert_eq!((stats.reuse_detections, stats.families_revoked), (1, 1));

    // The whole family is dead, including the legitimately rotated pair.
    assert_001_auth_failure(&refresh_001(&s, &next.access_token, &next.refresh_credential).unwrap());
    assert!(!s.check_access(&next.access_token));
    assert_eq!(protected(&s, &next.access_token).status, 401);
    // Another family is untouched.
    assert!(s.check_access(&bystander.access_token));
    let ok = refresh_001(&s, &bystander.access_token, &bystander.refresh_credential).unwrap();
    assert_eq!(ok.status, 200);
}

#[test]
fn success_envelope_checks_access_token_expiry_and_format() {
    let s = ReferenceServer::start(
        Dialect::SuccessEnvelope,
        ServerConfig {
            refresh_ttl: Duration::from_secs(3600),
            ..ServerConfig::default()
        },
    )
    .unwrap();
    let login = s.login("u");
    let other = s.login("w");
    // accessToken of another family.
    assert_001_auth_failure(&refresh_001(&s, &other.access_token, &login.refresh_credential).unwrap());
    // Missing field, not JSON, wrong content type.
    let path = Dialect::SuccessEnvelope.refresh_path();
    let missing = request(s.port(), "POST", path, &[JSON], r#"{"refreshToken":"x"}"#).unwrap();
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["error"]["type"], "VALIDATION");
    let not_json = request(s.port(), "POST", path, &[JSON], "refreshToken=x").unwrap();
    assert_eq!(not_json.status, 400);
    let form = request(
        s.port(),
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &json!({"accessToken": login.access_token, "refreshToken": login.refresh_credential}).to_string(),
    )
    .unwrap();
    assert_eq!(form.status, 415);
    // An expired access token is fine; an expired refresh token is not (and is no reuse).
    s.advance_clock(Duration::from_secs(61));
    let next = tokens_001(&refresh_001(&s, &login.access_token, &login.refresh_credential).unwrap());
    s.advance_clock(Duration::from_secs(3600));
    assert_001_auth_failure(&refresh_001(&s, &next.access_token, &next.refresh_credential).unwrap());
    assert_eq!(s.stats().reuse_detections, 0);
}

// ---------------------------------------------------------------- seed 002

#[test]
fn versioned_bearer_happy_path_rotation_and_revocation_of_previous_access() {
    let s = server(Dialect::VersionedBearer);
    let login = s.login("u2");
    let reply = refresh_002(&s, &login.access_token, &login.refresh_credential).unwrap();
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body.as_object().unwrap().len(), 2);
    let next = tokens_002(&reply);
    assert_ne!(next.refresh_credential, login.refresh_credential);

    // The previous access token is revoked when new tokens are issued.
    assert!(!s.check_access(&login.access_token));
    assert_eq!(protected(&s, &login.access_token).status, 401);
    assert_eq!(protected(&s, &next.access_token).json(), json!({"sub": "u2"}));

    // The revoked previous bearer cannot refresh, even with the current refresh token.
    let stale = refresh_002(&s, &login.access_token, &next.refresh_credential).unwrap();
    assert_eq!(stale.status, 401);
    assert_eq!(stale.json()["type"], "unauthorized", "problem body: {}", stale.json());
    assert_eq!(s.stats().reuse_detections, 0);

    // An expired current bearer is fine.
    s.advance_clock(Duration::from_secs(120));
    let later = refresh_002(&s, &next.access_token, &next.refresh_credential).unwrap();
    assert_eq!(later.status, 200);
    assert!(s.check_access(&tokens_002(&later).access_token));
}

#[test]
fn versioned_bearer_reuse_revokes_the_family() {
    let s = server(Dialect::VersionedBearer);
    let login = s.login("u");
    let next = tokens_002(&refresh_002(&s, &login.access_token, &login.refresh_credential).unwrap());
    let replay = refresh_002(&s, &next.access_token, &login.refresh_credential).unwrap();
    assert_eq!(replay.status, 401);
    assert_eq!(
        replay.json(),
        json!({"type": "unauthorized", "title": "Unauthorized", "status": 401,
               "detail": "refresh token reuse detected; session revoked"})
    );
    assert!(!s.check_access(&next.access_token));
    assert_eq!(
        refresh_002(&s, &next.access_token, &next.refresh_credential)
            .unwrap()
            .status,
        401
    );
    let stats = s.stats();
    assert_eq!(
        (stats.reuse_detections, stats.families_revoked, stats.refresh_failures),
        (1, 1, 2)
    );
}

#[test]
fn versioned_bearer_requires_version_and_bearer() {
    let s = server(Dialect::VersionedBearer);
    let login = s.login("u");
    let body = json!({ "refreshToken": login.refresh_credential }).to_string();
    let auth = format!("Bearer {}", login.access_token);
    let path = Dialect::VersionedBearer.refresh_path();
    let no_version = request(s.port(), "POST", path, &[JSON, ("Authorization", &auth)], &body);
    let no_version = no_version.unwrap();
    assert_eq!(no_version.status, 400);
    assert_eq!(no_version.json()["status"], 400);
    let v1 = request(
        s.port(),
        "POST",
        path,
        &[JSON, ("Authorization", &auth), ("Version", "1.0")],
        &body,
    );
    assert_eq!(v1.unwrap().status, 400);
    let no_bearer = request(s.port(), "POST", path, &[JSON, ("Version", "2.0")], &body);
    assert_eq!(no_bearer.unwrap().status, 401);
    // Nothing rotated by the failures.
    let ok = refresh_002(&s, &login.access_token, &login.refresh_credential).unwrap();
    assert_eq!(ok.status, 200);
}

// ---------------------------------------------------------------- faults

#[test]
fn status_throttle_garbage_portal_html_and_oversized_faults_change_nothing() {
    let s = server(Dialect::SuccessEnvelope);
    let login = s.login("u");
    let refresh = || refresh_001(&s, &login.access_token, &login.refresh_credential).unwrap();

    s.push_fault(Fault::Status(503));
    let r = refresh();
    assert_eq!(r.status, 503);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(String::from_utf8_lossy(&r.body).contains("503 Service Unavailable"));

    s.push_fault(Fault::Status(401));
    assert_001_auth_failure(&refresh());

    s.push_fault(Fault::Status(418));
    assert_eq!(refresh().json()["status"], 418);

    s.push_fault(Fault::Throttle { retry_after_secs: 2 });
    let r = refresh();
    assert_eq!((r.status, r.header("retry-after")), (429, Some("2")));

    s.push_fault(Fault::Garbage);
    let r = refresh();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());

    s.push_fault(Fault::CaptivePortal);
    let r = refresh();
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some(CAPTIVE_PORTAL_LOCATION));
    assert!(r.header("content-type").unwrap().starts_with("text/html"));

    s.push_fault(Fault::HtmlOk);
    let r = refresh();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(String::from_utf8_lossy(&r.body).contains("<form"));

    s.push_fault(Fault::Oversized(200_000));
    let r = refresh();
    assert_eq!((r.status, r.body.len()), (200, 200_000));
    assert!(r.json()["padding"].is_string());

    // None of it rotated anything: the original pair still refreshes, exactly once.
    assert_eq!(refresh().status, 200);
    let stats = s.stats();
    assert_eq!(stats.faults_applied, 8);
    assert_eq!((stats.refresh_requests, stats.refresh_successes), (9, 1));
    assert_eq!(stats.refresh_failures, 0);
}

#[test]
fn envelope_failure_fault_in_each_dialect() {
    let s = server(Dialect::EntityToken);
    let login = s.login("p");
    s.push_fault(Fault::EnvelopeFailure);
    let r = refresh_000(&s, &login.refresh_credential, &login.access_token, &login.access_token);
    let r = r.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "error");
    assert_eq!(r.json()["code"], 401);
    assert_eq!(r.json()["data"], Value::Null);

    let s = server(Dialect::SuccessEnvelope);
    let login = s.login("p");
    s.push_fault(Fault::EnvelopeFailure);
    let r = refresh_001(&s, &login.access_token, &login.refresh_credential).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["success"], false);
    assert_eq!(r.json()["error"]["type"], "AUTHENTICATION");

    let s = server(Dialect::VersionedBearer);
    let login = s.login("p");
    s.push_fault(Fault::EnvelopeFailure);
    let r = refresh_002(&s, &login.access_token, &login.refresh_credential).unwrap();
    assert_eq!((r.status, r.json()), (200, json!({})));
    // Still the same pair afterwards.
    let ok = refresh_002(&s, &login.access_token, &login.refresh_credential).unwrap();
    assert_eq!(ok.status, 200);
}

#[test]
fn drop_connection_answers_nothing_and_rotates_nothing() {
    let s = server(Dialect::VersionedBearer);
    let login = s.login("u");
    s.push_fault(Fault::DropConnection);
    assert!(refresh_002(&s, &login.access_token, &login.refresh_credential).is_none());
    assert!(s.check_access(&login.access_token));
    let ok = refresh_002(&s, &login.access_token, &login.refresh_credential).unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(s.stats().reuse_detections, 0);
}

#[test]
fn lose_response_after_rotate_rotates_then_hangs_up() {
    let s = server(Dialect::VersionedBearer);
    let login = s.login("u");
    s.push_fault(Fault::LoseResponseAfterRotate);
    assert!(refresh_002(&s, &login.access_token, &login.refresh_credential).is_none());
    // The server rotated: the old access token is revoked, and retrying the old refresh token is
    // reuse, which revokes the family.
    assert!(!s.check_access(&login.access_token));
    let retry = refresh_002(&s, &login.access_token, &login.refresh_credential).unwrap();
    assert_eq!(retry.status, 401);
    let stats = s.stats();
    assert_eq!(
        (stats.refresh_successes, stats.reuse_detections, stats.families_revoked),
        (1, 1, 1)
    );
}

#[test]
fn delay_answers_late_and_a_client_that_gave_up_changes_nothing() {
    let s = server(Dialect::SuccessEnvelope);
    let login = s.login("u");

    s.push_fault(Fault::Delay(Duration::from_millis(150)));
    let started = Instant::now();
    let late = refresh_001(&s, &login.access_token, &login.refresh_credential).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(late.status, 200);
    let next = tokens_001(&late);

    // A client that times out and hangs up before the delayed answer.
    s.push_fault(Fault::Delay(Duration::from_millis(150)));
    let body = json!({"accessToken": next.access_token, "refreshToken": next.refresh_credential});
    let raw = build(s.port(), "POST", "/v2/Auth/RefreshToken", &[JSON], &body.to_string());
    let mut impatient = TcpStream::connect(("127.0.0.1", s.port())).unwrap();
    impatient.write_all(&raw).unwrap();
    drop(impatient);
    let deadline = Instant::now() + Duration::from_secs(2);
    while s.stats().requests_abandoned == 0 {
        assert!(Instant::now() < deadline, "delayed request never finished");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The abandoned request rotated nothing.
    let ok = refresh_001(&s, &next.access_token, &next.refresh_credential).unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(s.stats().reuse_detections, 0);
}

#[test]
fn faults_are_fifo_one_per_refresh_and_clearable() {
    let s = server(Dialect::EntityToken);
    let login = s.login("p");
    let refresh = || {
        refresh_000(&s, &login.refresh_credential, &login.access_token, &login.access_token)
            .unwrap()
            .status
    };
    s.push_fault(Fault::Status(500));
    s.push_fault(Fault::Throttle { retry_after_secs: 1 });
    // Other routes do not consume faults.
    assert_eq!(protected(&s, &login.access_token).status, 200);
    assert_eq!(refresh(), 500);
    assert_eq!(refresh(), 429);
    assert_eq!(refresh(), 200);
    s.push_fault(Fault::Status(502));
    s.clear_faults();
    assert_eq!(refresh(), 200);
}

// ---------------------------------------------------------------- protected resource

#[test]
fn protected_resource_accepts_only_live_access_tokens() {
    let s = server(Dialect::SuccessEnvelope);
    let login = s.login("alice");
    let ok = protected(&s, &login.access_token);
    assert_eq!((ok.status, ok.json()), (200, json!({"sub": "alice"})));
    assert_eq!(protected(&s, &login.refresh_credential).status, 401);
    assert_eq!(protected(&s, "a.b.c").status, 401);
    let none = request(s.port(), "GET", "/protected", &[], "").unwrap();
    assert_eq!(none.status, 401);
    assert!(none.header("www-authenticate").unwrap().starts_with("Bearer"));
    // A forged token with the same claims but another key.
    let mut forged: Vec<&str> = login.access_token.split('.').collect();
    forged[2] = "AAAA";
    assert_eq!(protected(&s, &forged.join(".")).status, 401);

    s.advance_clock(Duration::from_secs(60));
    assert_eq!(protected(&s, &login.access_token).status, 401);
    let stats = s.stats();
    assert_eq!((stats.protected_ok, stats.protected_rejected), (1, 5));
}

// ---------------------------------------------------------------- HTTP surface and test routes

#[test]
fn http_surface_is_strict_and_well_formed() {
    let s = server(Dialect::VersionedBearer);
    let not_found = request(s.port(), "GET", "/nope", &[], "").unwrap();
    assert_eq!(not_found.status, 404);
    let wrong_method = request(s.port(), "GET", "/User/RefreshToken", &[], "").unwrap();
    assert_eq!((wrong_method.status, wrong_method.header("allow")), (405, Some("POST")));
    for reply in [&not_found, &wrong_method] {
        assert_eq!(reply.header("connection"), Some("close"));
        httpdate::parse_http_date(reply.header("date").unwrap()).unwrap();
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
    let big = "x".repeat(64 * 1024 + 1);
    let too_large = request(s.port(), "POST", "/User/RefreshToken", &[JSON], &big).unwrap();
    assert_eq!(too_large.status, 413);
    let garbage = send_raw(s.port(), b"\x16\x03\x01 hello\r\n\r\n").unwrap();
    assert_eq!(garbage.status, 400);
    // A refresh with a non-JSON body gets the dialect's 400.
    let login = s.login("u");
    let auth = format!("Bearer {}", login.access_token);
    let r = request(
        s.port(),
        "POST",
        "/User/RefreshToken",
        &[JSON, ("Version", "2.0"), ("Authorization", &auth)],
        "{not json",
    )
    .unwrap();
    assert_eq!((r.status, r.json()["title"].clone()), (400, json!("Bad Request")));
    // The server's Date follows its clock.
    s.advance_clock(Duration::from_secs(86_400));
    let date = httpdate::parse_http_date(not_found_date(&s).as_str()).unwrap();
    let ahead = date.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(ahead > Duration::from_secs(86_000));
}

fn not_found_date(s: &ReferenceServer) -> String {
    request(s.port(), "GET", "/nope", &[], "")
        .unwrap()
        .header("date")
        .unwrap()
        .to_owned()
}

#[test]
fn test_routes_drive_the_server_over_http() {
    let s = server(Dialect::SuccessEnvelope);
    let port = s.port();
    let login = request(port, "POST", "/test/login", &[JSON], r#"{"user":"http-user"}"#).unwrap();
    let login = login.json();
    let access = login["accessToken"].as_str().unwrap().to_owned();
    let refresh = login["refreshCredential"].as_str().unwrap().to_owned();
    assert!(s.check_access(&access));
    assert_eq!(claims(&access)["sub"], "http-user");

    let queued = request(
        port,
        "POST",
        "/test/fault",
        &[JSON],
        r#"{"fault":"status","status":503}"#,
    );
    assert_eq!(queued.unwrap().json(), json!({"queued": 1}));
    let bad = request(port, "POST", "/test/fault", &[JSON], r#"{"fault":"nope"}"#).unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(refresh_001(&s, &access, &refresh).unwrap().status, 503);
    request(port, "POST", "/test/fault", &[JSON], r#"{"fault":"drop"}"#).unwrap();
    request(port, "POST", "/test/clear-faults", &[], "").unwrap();
    let next = tokens_001(&refresh_001(&s, &access, &refresh).unwrap());

    let advanced = request(port, "POST", "/test/advance-clock", &[JSON], r#"{"ms":61000}"#);
    assert_eq!(advanced.unwrap().status, 200);
    assert!(!s.check_access(&next.access_token));

    let body = json!({"token": next.refresh_credential}).to_string();
    let revoked = request(port, "POST", "/test/revoke", &[JSON], &body).unwrap();
    assert_eq!(revoked.json(), json!({"revoked": true}));
    // RFC 7009: form-encoded, 200 whether or not the token is known, 400 without one.
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let body = format!("token={}&token_type_hint=refresh_token", refresh);
    assert_eq!(
        request(port, "POST", "/oauth/revoke", &[form], &body).unwrap().status,
        200
    );
    assert_eq!(
        request(port, "POST", "/oauth/revoke", &[form], "token_type_hint=x")
            .unwrap()
            .status,
        400
    );

    let stats = request(port, "GET", "/test/stats", &[], "").unwrap().json();
    assert_eq!(
        stats,
        json!({"refresh_requests": 2, "refresh_successes": 1, "refresh_failures": 0,
               "reuse_detections": 0, "families_revoked": 1, "rfc7009_revocations": 1, "protected_ok": 0,
               "protected_rejected": 0, "faults_applied": 1, "requests_abandoned": 0})
    );
}

#[test]
fn dropping_the_server_stops_it() {
    let s = server(Dialect::EntityToken);
    let port = s.port();
    assert_eq!(s.base_url(), format!("http://127.0.0.1:{port}"));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(s);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
