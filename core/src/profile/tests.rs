//! Profile tests: every seed's request must match its document, and every example body in the
//! documents must parse to the right outcome. No server: bytes in, outcome out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::{MapAccess, Visitor};

use super::*;
use crate::error::ErrorCode;
use crate::session::{ExpiryValue, RefreshExpiry};
use crate::transport::{HttpRequest, HttpResponse};

const NOW: i64 = 1_740_000_000_000;

fn resp(status: u16, ct: &str, body: &str) -> HttpResponse {
    let mut headers = vec![("Date".to_owned(), "Wed, 19 Feb 2025 21:20:00 GMT".to_owned())];
    if !ct.is_empty() {
        headers.push(("Content-Type".to_owned(), ct.to_owned()));
    }
    HttpResponse::new(status, headers, body.as_bytes().to_vec())
}

fn json_body(req: &HttpRequest) -> Value {
    serde_json::from_slice(&req.body).unwrap()
}

fn keys_in_order(req: &HttpRequest) -> Vec<String> {
    // The body is written in profile order; read keys back in document order.
    let s = std::str::from_utf8(&req.body).unwrap();
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(s);
    struct Keys<'a>(&'a mut Vec<String>);
    impl<'de> Visitor<'de> for Keys<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("map")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<(), A::Error> {
            while let Some((k, _)) = m.next_entry::<String, Value>()? {
                self.0.push(k);
            }
            Ok(())
        }
    }
    serde::Deserializer::deserialize_map(&mut de, Keys(&mut out)).unwrap();
    out
}

fn seed000() -> Profile {
    Profile::preset(
        Preset::EntityTokenEnvelope,
        "game",
        "https://api.example.test/v2/client/auth/refresh-token",
        serde_json::json!({"api_key": "env-key-123"}),
    )
    .unwrap()
}

fn seed001() -> Profile {
    Profile::preset(
        Preset::RotatingSuccessEnvelope,
        "market",
        "https://devapi.example.test/v2/Auth/RefreshToken",
        serde_json::json!({}),
    )
    .unwrap()
}

fn seed002() -> Profile {
    Profile::preset(
        Preset::RotatingBearerVersioned,
        "sevg",
        "https://api.example.test/User/RefreshToken",
        serde_json::json!({}),
    )
    .unwrap()
}

fn seed003() -> Profile {
    Profile::preset(
        Preset::Keycloak,
        "apiax",
        "https://auth.example.test/auth/realms/apiax/protocol/openid-connect/token",
        serde_json::json!({"client_id": "integration-api"}),
    )
    .unwrap()
}

// ----- seed 000 -----------------------------------------------------------------------------

#[test]
fn seed000_request_matches_document() {
    let req = seed000().build_request("old.jwt.sig", Some("entity-tok")).unwrap();
    assert_eq!(req.method, "POST");
    assert!(req.url.ends_with("/v2/client/auth/refresh-token"));
    assert_eq!(req.header("Content-Type"), Some("application/json"));
    assert_eq!(req.header("api-key"), Some("env-key-123"));
    assert_eq!(req.header("Authorization"), Some("Bearer old.jwt.sig"));
    assert_eq!(keys_in_order(&req), ["entityToken", "expiringAccessToken"]);
    let b = json_body(&req);
    assert_eq!(b["entityToken"], "entity-tok");
    assert_eq!(b["expiringAccessToken"], "old.jwt.sig");
}

#[test]
fn seed000_success_envelope_and_no_rotation() {
    let p = seed000();
    let body = r#"{"status":"success","code":200,"message":"Token refreshed","errors":[],"data":"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3NDAwMDM2MDAsImlhdCI6MTc0MDAwMDAwMH0.sig"}"#;
    let r = p.parse_response(&resp(200, "application/json", body), NOW).unwrap();
    assert!(r.access_token.expose().starts_with("eyJ"));
    assert!(r.refresh_credential.is_none(), "the entity token is never rotated");
    assert_eq!(r.expires, None, "expiry comes from the JWT exp");
    assert_eq!(r.server_date_ms, Some(1_740_000_000_000));
}

#[test]
fn seed000_http_200_with_failing_envelope_is_a_failure() {
    let p = seed000();
    let body = r#"{"status":"error","code":401,"message":"Entity token expired","errors":["Invalid entity token"],"data":null}"#;
    let e = p.parse_response(&resp(200, "application/json", body), NOW).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ReauthenticationRequired);
    let body = r#"{"status":"error","code":503,"message":"maintenance","errors":[],"data":null}"#;
    assert_eq!(
        p.parse_response(&resp(200, "application/json", body), NOW)
            .unwrap_err()
            .code(),
        ErrorCode::Transient
    );
    let body = r#"{"status":"error","code":400,"message":"bad","errors":[],"data":null}"#;
    assert_eq!(
        p.parse_response(&resp(200, "application/json", body), NOW)
            .unwrap_err()
            .code(),
        ErrorCode::Protocol
    );
    let e = p
        .parse_response(
            &resp(
                401,
                "application/json",
                r#"{"status":"error","code":401,"message":"x","errors":[],"data":null}"#,
            ),
            NOW,
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ReauthenticationRequired);
}

// ----- seed 001 -----------------------------------------------------------------------------

#[test]
fn seed001_request_matches_document() {
    let req = seed001()
        .build_request("your_access_token_here", Some("your_refresh_token_here"))
        .unwrap();
    assert_eq!(req.method, "POST");
    assert!(req.url.ends_with("/v2/Auth/RefreshToken"));
    assert_eq!(req.header("Content-Type"), Some("application/json"));
    assert_eq!(req.header("Authorization"), None, "this endpoint takes no auth header");
    assert_eq!(keys_in_order(&req), ["accessToken", "refreshToken"]);
    assert_eq!(
        json_body(&req),
        serde_json::json!({"accessToken":"your_access_token_here","refreshToken":"your_refresh_token_here"})
    );
}

#[test]
fn seed001_document_bodies() {
    let p = seed001();
    let ok = r#"{
"success": true,
"data": {
"accessToken": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
"refreshToken": "new_refresh_token_here"
}
}"#;
    let r = p.parse_response(&resp(200, "application/json", ok), NOW).unwrap();
    assert_eq!(r.access_token.expose(), "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...");
    assert_eq!(
        r.refresh_credential.as_ref().map(|s| s.expose()),
        Some("new_refresh_token_here")
    );
    let fail = r#"{
"success": false,
"error": {
"type": "AUTHENTICATION",
"message": "Invalid or expired refresh token"
}
}"#;
    let e = p.parse_response(&resp(401, "application/json", fail), NOW).unwrap_err();
    assert_eq!(e, VaultError::reauth("AUTHENTICATION"));
    // The same body with HTTP 200 is still a failure (the success flag says so).
    assert_eq!(
        p.parse_response(&resp(200, "application/json", fail), NOW)
            .unwrap_err()
            .code(),
        ErrorCode::ReauthenticationRequired
    );
    assert_eq!(p.refresh_lifetime(), Some(Duration::from_secs(12 * 3600)));
}

// ----- seed 002 -----------------------------------------------------------------------------

#[test]
fn seed002_request_matches_document() {
    let req = seed002()
        .build_request("current.access.jwt", Some("refreshToken"))
        .unwrap();
    assert_eq!(req.method, "POST");
    assert!(req.url.ends_with("/User/RefreshToken"));
    assert_eq!(req.header("Authorization"), Some("Bearer current.access.jwt"));
    assert_eq!(req.header("Content-Type"), Some("application/json"));
    assert_eq!(req.header("Version"), Some("2.0"));
    assert_eq!(json_body(&req), serde_json::json!({"refreshToken": "refreshToken"}));
}

#[test]
fn seed002_document_response() {
    let body = r#"{
  "accessToken": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJodHRwOi8vc2NoZW1hcy54bWxzb2FwLm9yZy93cy8yMDA1LzA1L2lkZW50aXR5L2NsYWltcy9uYW1laWRlbnRpZmllciI6InRlc3R1c2VyIiwiVXNlcklEIjoiMTIzIiwiSW5zdGFuY2VJRCI6IjEiLCJSb2xlcyI6Ilt7XCJSSURcIjoxLFwiQklEXCI6MTAwLFwiUElEXCI6NX1dIiwiZXhwIjoxNzQwMDAwMDAwLCJpc3MiOiJodHRwczovLzdnLmNvbS5hdSIsImF1ZCI6IlB1YmxpYyJ9.signature",
  "refreshToken": "A8c7B9d2E1f4G6h5I3j8K0l9M7n4O2p1Q5r8S3t6U4v7W1x9Y2z5"
}"#;
    let r = seed002()
        .parse_response(&resp(200, "application/json; charset=utf-8", body), NOW)
        .unwrap();
    assert_eq!(
        crate::jwt::decode_times(r.access_token.expose()).unwrap().exp,
        Some(1_740_000_000)
    );
    assert_eq!(
        r.refresh_credential.unwrap().expose(),
        "A8c7B9d2E1f4G6h5I3j8K0l9M7n4O2p1Q5r8S3t6U4v7W1x9Y2z5"
    );
    assert_eq!(
        seed002().parse_response(&resp(401, "", ""), NOW).unwrap_err().code(),
        ErrorCode::ReauthenticationRequired
    );
    // Missing tokens in a 200 are a protocol error, not a silent success.
    assert_eq!(
        seed002()
            .parse_response(&resp(200, "application/json", "{}"), NOW)
            .unwrap_err()
            .code(),
        ErrorCode::Protocol
    );
}

// ----- seed 003 -----------------------------------------------------------------------------

#[test]
fn seed003_request_matches_document() {
    let req = seed003().build_request("ACCESS", Some("_REFRESH_TOKEN_")).unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.header("Content-Type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(
        std::str::from_utf8(&req.body).unwrap(),
        "grant_type=refresh_token&client_id=integration-api&refresh_token=_REFRESH_TOKEN_"
    );
    assert_eq!(req.header("Authorization"), None);
}

#[test]
fn seed003_document_response_relative_and_absolute_expiry() {
    let p = seed003();
    let rel = r#"{"access_token":"ACCESS_TOKEN","expires_in":1800,"refresh_expires_in":1209600,"refresh_token":"REFRESH_TOKEN","token_type":"bearer","not-before-policy":0,"session_state":"UUID","scope":"TOKEN_VALIDITY_SCOPES"}"#;
    let r = p.parse_response(&resp(200, "application/json", rel), NOW).unwrap();
    assert_eq!(r.expires, Some(ExpiryValue::RelativeSecs(1800)));
    assert_eq!(r.refresh_expiry, RefreshExpiry::InSecs(1_209_600));
    assert_eq!(r.token_type.as_deref(), Some("bearer"));
    assert_eq!(r.scope.as_deref(), Some("TOKEN_VALIDITY_SCOPES"));
    // JAVA_TIMESTAMP: an absolute epoch time, in milliseconds or seconds.
    let abs_ms = rel.replace("\"expires_in\":1800", "\"expires_in\":1740001800000");
    assert_eq!(
        p.parse_response(&resp(200, "application/json", &abs_ms), NOW)
            .unwrap()
            .expires,
        Some(ExpiryValue::AbsoluteMs(1_740_001_800_000))
    );
    let abs_s = rel.replace("\"expires_in\":1800", "\"expires_in\":1740001800");
    assert_eq!(
        p.parse_response(&resp(200, "application/json", &abs_s), NOW)
            .unwrap()
            .expires,
        Some(ExpiryValue::AbsoluteMs(1_740_001_800_000))
    );
}

#[test]
fn seed003_refresh_expires_in_zero_is_offline() {
    let body =
        r#"{"access_token":"A","expires_in":1800,"refresh_expires_in":0,"refresh_token":"R","token_type":"bearer"}"#;
    let r = seed003()
        .parse_response(&resp(200, "application/json", body), NOW)
        .unwrap();
    assert_eq!(r.refresh_expiry, RefreshExpiry::Offline);
}

#[test]
fn oauth2_errors_and_basic_auth() {
    let p = Profile::preset(
        Preset::OAuth2,
        "o",
        "https://as.example.test/token",
        serde_json::json!({"client_id": "cli ent", "client_secret": "s3cr:et"}),
    )
    .unwrap();
    let req = p.build_request("a", Some("r t")).unwrap();
    assert_eq!(
        std::str::from_utf8(&req.body).unwrap(),
        "grant_type=refresh_token&refresh_token=r+t"
    );
    // RFC 6749 §2.3.1: id and secret form-encoded, then Base64.
    assert_eq!(
        req.header("Authorization"),
        Some(format!("Basic {}", STANDARD.encode("cli+ent:s3cr%3Aet")).as_str())
    );
    let e = p
        .parse_response(
            &resp(
                400,
                "application/json",
                r#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#,
            ),
            NOW,
        )
        .unwrap_err();
    assert_eq!(e, VaultError::reauth("invalid_grant"));
    let e = p
        .parse_response(&resp(401, "application/json", r#"{"error":"invalid_client"}"#), NOW)
        .unwrap_err();
    assert_eq!(
        e.code(),
        ErrorCode::Protocol,
        "a client misconfiguration is not the user's fault"
    );
    assert!(!format!("{p:?}").contains("s3cr"));
}

// ----- generic failure classification ---------------------------------------------------------

#[test]
fn transient_throttled_and_malformed_responses() {
    let p = seed001();
    for s in [500, 502, 503, 504, 408] {
        assert_eq!(
            p.parse_response(&resp(s, "text/html", "<html>"), NOW)
                .unwrap_err()
                .code(),
            ErrorCode::Transient,
            "{s}"
        );
    }
    for s in [301, 302, 303, 307, 308] {
        assert_eq!(
            p.parse_response(&resp(s, "text/html", "<html>"), NOW)
                .unwrap_err()
                .code(),
            ErrorCode::Transient,
            "{s}"
        );
    }
    let mut r = resp(429, "application/json", "{}");
    r.headers.push(("Retry-After".into(), "7".into()));
    assert_eq!(
        p.parse_response(&r, NOW).unwrap_err(),
        VaultError::Throttled {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    let mut r = resp(429, "", "");
    r.headers
        .push(("Retry-After".into(), "Wed, 19 Feb 2025 21:21:00 GMT".into()));
    assert_eq!(
        p.parse_response(&r, NOW).unwrap_err(),
        VaultError::Throttled {
            retry_after: Some(Duration::from_secs(60))
        }
    );
    // A captive portal's HTML 200 is transient; other content types are protocol errors.
    assert_eq!(
        p.parse_response(&resp(200, "text/html", "<html>login</html>"), NOW)
            .unwrap_err()
            .code(),
        ErrorCode::Transient
    );
    assert_eq!(
        p.parse_response(&resp(200, "application/xml", "<x/>"), NOW)
            .unwrap_err()
            .code(),
        ErrorCode::Protocol
    );
    assert_eq!(
        p.parse_response(&resp(200, "application/json", "{not json"), NOW)
            .unwrap_err()
            .code(),
        ErrorCode::Protocol
    );
    assert_eq!(
        p.parse_response(&resp(200, "application/json", "[]"), NOW)
            .unwrap_err()
            .code(),
        ErrorCode::Protocol
    );
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(DEFAULT_MAX_RESPONSE_BYTES));
    assert_eq!(
        p.parse_response(&resp(200, "application/json", &big), NOW)
            .unwrap_err()
            .code(),
        ErrorCode::Protocol
    );
    // A token with a CR/LF or a space in it would become header injection: refused.
    let bad = r#"{"success":true,"data":{"accessToken":"a\r\nX-Evil: 1","refreshToken":"r"}}"#;
    assert_eq!(
        p.parse_response(&resp(200, "application/json", bad), NOW)
            .unwrap_err()
            .code(),
        ErrorCode::Protocol
    );
    let num = r#"{"success":true,"data":{"accessToken":42,"refreshToken":"r"}}"#;
    assert_eq!(
        p.parse_response(&resp(200, "application/json", num), NOW)
            .unwrap_err()
            .code(),
        ErrorCode::Protocol
    );
}

#[test]
fn error_messages_never_echo_server_text() {
    let p = seed001();
    let body = r#"{"success":false,"error":{"type":"token leaked-secret-value in description","message":"leaked-secret-value"}}"#;
    let e = p.parse_response(&resp(400, "application/json", body), NOW).unwrap_err();
    assert!(!e.to_string().contains("leaked-secret-value"), "{e}");
}

// ----- loading and hostile profiles ---------------------------------------------------------

#[test]
fn full_profile_from_json_without_preset() {
    let json = r#"{
        "name": "custom",
        "url": "https://id.example.test/refresh",
        "encoding": "json",
        "headers": {"X-Client": "game", "Authorization": "Bearer {access_token}"},
        "body": {"token": "{refresh_token}"},
        "rotation": "always",
        "response": {"access_token": "tokens.access", "refresh_token": "tokens.refresh", "expires_in": "tokens.ttl"},
        "reauth_statuses": [401, 403],
        "default_lifetime_secs": 600
    }"#;
    let p = Profile::from_json(json).unwrap();
    assert_eq!(p.name(), "custom");
    let req = p.build_request("A", Some("R")).unwrap();
    assert_eq!(req.header("X-Client"), Some("game"));
    let r = p
        .parse_response(
            &resp(
                200,
                "application/json",
                r#"{"tokens":{"access":"A2","refresh":"R2","ttl":"600"}}"#,
            ),
            NOW,
        )
        .unwrap();
    assert_eq!(r.expires, Some(ExpiryValue::RelativeSecs(600)));
    assert_eq!(
        p.parse_response(&resp(403, "", ""), NOW).unwrap_err().code(),
        ErrorCode::ReauthenticationRequired
    );
}

#[test]
fn hostile_profiles_are_rejected_at_load() {
    let base = serde_json::json!({"preset": "seed-001", "name": "x", "url": "https://a.example.test/r"});
    let with = |k: &str, v: Value| {
        let mut d = base.clone();
        d[k] = v;
        Profile::from_json(&d.to_string())
    };
    assert!(Profile::from_json(&base.to_string()).is_ok());
    assert!(with("url", "ftp://a.example.test/r".into()).is_err());
    assert!(with("url", "javascript:alert(1)".into()).is_err());
    assert!(
        with("url", "http://a.example.test/r".into()).is_err(),
        "plain http to a remote host"
    );
    assert!(
        with("url", "http://127.0.0.1:8080/r".into()).is_ok(),
        "plain http to loopback is fine"
    );
    assert!(with("url", "https://a.example.test/r\r\nHost: evil".into()).is_err());
    assert!(with("url", "https://user:pw@a.example.test/r".into()).is_err());
    assert!(with("url", format!("https://a.example.test/{}", "a".repeat(5000)).into()).is_err());
    assert!(with("headers", serde_json::json!({"X-A": "v\r\nX-Injected: 1"})).is_err());
    assert!(with("headers", serde_json::json!({"Bad Header": "v"})).is_err());
    assert!(with("headers", serde_json::json!({"Content-Length": "1"})).is_err());
    assert!(
        with("body", serde_json::json!({"a": "{password}"})).is_err(),
        "unknown placeholder"
    );
    assert!(with("body", serde_json::json!({"a": "{unclosed"})).is_err());
    assert!(with("body", serde_json::json!({"a": "no credential anywhere"})).is_err());
    assert!(with("max_response_bytes", serde_json::json!(1u64 << 40)).is_err());
    assert!(with("timeout_ms", serde_json::json!(0)).is_err());
    assert!(with("default_lifetime_secs", serde_json::json!(u64::MAX)).is_err());
    assert!(with("method", "DELETE".into()).is_err());
    assert!(with("name", "a/b".into()).is_err());
    assert!(with("surprise", "typo".into()).is_err(), "unknown keys are rejected");
    assert!(with("preset", "nope".into()).is_err());
    let many: serde_json::Map<String, Value> = (0..100).map(|i| (format!("h{i}"), Value::String("v".into()))).collect();
    assert!(with("headers", Value::Object(many)).is_err());
    assert!(Profile::from_json(&"x".repeat(MAX_PROFILE_JSON + 1)).is_err());
    assert!(Profile::from_json("[]").is_err());
    assert!(Profile::from_json("{").is_err());
}

#[test]
fn every_preset_builds_a_request_that_sends_the_credential() {
    for preset in Preset::ALL {
        let p = Profile::preset(
            preset,
            "p",
            "https://x.example.test/t",
            serde_json::json!({"client_id": "c", "api_key": "k"}),
        )
        .unwrap();
        let req = p.build_request("ACC", Some("CRED")).unwrap();
        let all = format!(
            "{} {}",
            String::from_utf8_lossy(&req.body),
            req.headers
                .iter()
                .map(|h| h.value.expose().to_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(all.contains("CRED"), "{preset:?}");
        assert_eq!(Preset::from_name(preset.name()), Some(preset));
    }
}

#[test]
fn origin_is_scheme_host_and_explicit_port() {
    assert_eq!(
        origin_of("https://Auth.Example.com/token"),
        "https://auth.example.com:443"
    );
    assert_eq!(
        origin_of("https://auth.example.com:8443/a?b"),
        "https://auth.example.com:8443"
    );
    assert_eq!(origin_of("http://127.0.0.1:9000/t"), "http://127.0.0.1:9000");
    assert_eq!(origin_of("http://[::1]/t"), "http://[::1]:80");
    assert_eq!(origin_of("http://[::1]:81/t"), "http://[::1]:81");
}

/// Plain http is accepted only for loopback literals; names that merely look like loopback are
/// refused, and the request carries the decision for the transport's own check.
#[test]
fn plain_http_only_to_loopback_literals() {
    let load = |url: &str| {
        let d = serde_json::json!({"preset": "seed-001", "name": "x", "url": url});
        Profile::from_json(&d.to_string())
    };
    for url in [
        "http://127.0.0.1/token",
        "http://127.0.0.1:8080/token",
        "http://127.1.2.3/token",
        "http://[::1]/token",
        "http://[::1]:9000/token",
        "http://localhost/token",
        "http://LOCALHOST:80/token",
    ] {
        let p = load(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(p.build_request("a", Some("r")).unwrap().allow_plain_http, "{url}");
    }
    for url in [
        "http://127.attacker.example/token",
        "http://127.0.0.1.nip.io/token",
        "http://localhost.attacker.example/token",
        "http://localhost./token",
        "http://[::ffff:127.0.0.1]/token",
        "http://127.1/token",
        "http://0177.0.0.1/token",
        "http://128.0.0.1/token",
        "http://[::1]evil.example/token",
        "http://127.0.0.1:80x/token",
        "http://[::2]/token",
    ] {
        assert!(load(url).is_err(), "{url} must not count as loopback");
    }
    // https never needs the exception, and an explicit allow_http is carried to the transport.
    let p = load("https://127.attacker.example/token").unwrap();
    assert!(!p.build_request("a", Some("r")).unwrap().allow_plain_http);
    let d = serde_json::json!({"preset": "seed-001", "name": "x", "url": "http://lan.example/t", "allow_http": true});
    let p = Profile::from_json(&d.to_string()).unwrap();
    assert!(p.build_request("a", Some("r")).unwrap().allow_plain_http);
}

/// Certificate pins: `sha256/<base64 of 32 bytes>`, at most 8, no duplicates, https only; they
/// travel on every request built from the profile.
#[test]
fn certificate_pins_are_validated_and_carried_on_the_request() {
    let pin = |b: u8| format!("sha256/{}", STANDARD.encode([b; 32]));
    let load = |url: &str, pins: Value| {
        let d = serde_json::json!({"preset": "seed-001", "name": "x", "url": url, "pins": pins});
        Profile::from_json(&d.to_string())
    };
    let p = load("https://a.example.test/r", serde_json::json!([pin(1), pin(2)])).unwrap();
    assert_eq!(p.pins().len(), 2);
    assert_eq!(p.pins()[0].to_string(), pin(1));
    let req = p.build_request("a", Some("r")).unwrap();
    assert_eq!(req.pins, p.pins());
    assert!(
        load("https://a.example.test/r", serde_json::json!([pin(1)])).is_ok(),
        "one pin is allowed"
    );
    assert!(load("https://a.example.test/r", serde_json::json!([]))
        .unwrap()
        .pins()
        .is_empty());
    for bad in [
        serde_json::json!(["sha1/AAAA"]),
        serde_json::json!([format!("sha256/{}", STANDARD.encode([1u8; 31]))]),
        serde_json::json!([format!("sha256/{}", STANDARD.encode([1u8; 33]))]),
        serde_json::json!(["sha256/!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!="]),
        serde_json::json!([pin(1), pin(1)]),
        Value::Array((0..9).map(|i| Value::String(pin(i))).collect()),
        serde_json::json!("sha256/not-a-list"),
    ] {
        assert!(load("https://a.example.test/r", bad.clone()).is_err(), "{bad}");
    }
    assert!(
        load("http://127.0.0.1:8080/r", serde_json::json!([pin(1), pin(2)])).is_err(),
        "pins need TLS"
    );
}

/// A profile that does not fit the schema is refused without quoting any of its values: a
/// secret-looking value of the wrong type, an unknown enum choice, an unknown key, a bad
/// template — in every kind of field — never appears in the error's `Display` or `Debug`.
#[test]
fn profile_load_errors_never_quote_the_profile() {
    const SECRET: &str = "s3cr3t-Zq8x";
    let base =
        serde_json::json!({"preset": "seed-003", "name": "x", "url": "https://a.example.test/r", "client_id": "c"});
    let n: Value = serde_json::json!(4_242_424_242u64); // a number that must not be echoed either
    let s = || Value::String(format!("{SECRET}-value"));
    let cases: Vec<(&str, Value)> = vec![
        // string where a number is expected
        ("timeout_ms", s()),
        ("default_lifetime_secs", s()),
        ("max_response_bytes", s()),
        ("refresh_lifetime_secs", s()),
        // number or object where a string is expected
        ("client_secret", n.clone()),
        ("client_secret", serde_json::json!({ SECRET: SECRET })),
        ("api_key", serde_json::json!([SECRET])),
        ("client_id", serde_json::json!({"k": SECRET})),
        ("scope", serde_json::json!(true)),
        ("name", n.clone()),
        ("method", serde_json::json!([SECRET])),
        // unknown enum choices
        ("encoding", s()),
        ("rotation", s()),
        ("client_auth", s()),
        // string or object where a bool or a list is expected
        ("allow_http", s()),
        ("refresh_expires_in_zero_is_offline", s()),
        ("reauth_errors", serde_json::json!({ SECRET: 1 })),
        ("reauth_statuses", serde_json::json!([s()])),
        ("pins", serde_json::json!({ SECRET: SECRET })),
        ("pins", serde_json::json!([n.clone()])),
        // maps of strings with wrong values
        ("headers", serde_json::json!({"X-Api-Key": n.clone()})),
        ("headers", serde_json::json!({"X-Api-Key": {"v": SECRET}})),
        ("body", serde_json::json!({"client_secret": [SECRET]})),
        ("headers", s()),
        (
            "headers",
            serde_json::json!({"X-Api-Key": format!("{SECRET}-{{{SECRET}}}")}),
        ),
        // nested response fields
        ("response", s()),
        ("response", serde_json::json!({"access_token": n.clone()})),
        ("response", serde_json::json!({"access_token": "a", "surprise": SECRET})),
        (
            "response",
            serde_json::json!({"access_token": "a", "success": {"path": "ok", "equals": 1, SECRET: 2}}),
        ),
        ("response", serde_json::json!({"access_token": "a", "error_code": s()})),
        // an unknown key, named like a secret
        (SECRET, s()),
    ];
    let numeric = n.to_string();
    for (key, value) in cases {
        let mut doc = base.clone();
        doc[key] = value.clone();
        let err = Profile::from_json(&doc.to_string()).expect_err(key);
        let shown = format!("{err} | {err:?}");
        assert!(!shown.contains(SECRET), "{key}={value}: {shown}");
        assert!(!shown.contains(&numeric), "{key}={value}: {shown}");
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{shown}");
    }
    // A duplicate key in the text: the document is read (the last one wins) or refused, and the
    // secret never shows either way.
    let dup = format!(
        r#"{{"preset":"seed-003","name":"x","url":"https://a.example.test/r","timeout_ms":"{SECRET}","timeout_ms":"{SECRET}"}}"#
    );
    let err = Profile::from_json(&dup).unwrap_err();
    assert!(!format!("{err} {err:?}").contains(SECRET));
    // Syntax errors give a category and a position, never the text around it.
    let broken = format!(r#"{{"preset":"seed-003","client_secret":"{SECRET}" "#);
    let err = Profile::from_json(&broken).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(SECRET) && shown.contains("line 1"), "{shown}");
    // The description still helps: what was expected, and where.
    let mut doc = base.clone();
    doc["timeout_ms"] = s();
    let err = Profile::from_json(&doc.to_string()).unwrap_err().to_string();
    assert!(
        err.contains("wrong type") && err.contains("u64") && err.contains("`timeout_ms`"),
        "{err}"
    );
    let mut doc = base.clone();
    doc["response"] = serde_json::json!({"access_token": n});
    let err = Profile::from_json(&doc.to_string()).unwrap_err().to_string();
    assert!(err.contains("`response.access_token`"), "{err}");
}

/// The request body is written without intermediate copies; it must still be exactly what
/// serde_json writes for the same fields (escapes included), and the form body exact too.
#[test]
fn request_bodies_are_encoded_exactly() {
    let tricky = "a\"b\\c\u{1}\u{8}\u{c}\n\r\t\u{1f}é€😀/<>&=+ %";
    let p = seed001();
    let req = p.build_request(tricky, Some(tricky)).unwrap();
    let expected = serde_json::json!({"accessToken": tricky, "refreshToken": tricky}).to_string();
    assert_eq!(std::str::from_utf8(&req.body).unwrap(), expected);
    assert_eq!(
        req.body.capacity(),
        req.body.len(),
        "sized exactly: no reallocation copies"
    );
    let form = seed003().build_request("a", Some(tricky)).unwrap();
    let text = std::str::from_utf8(&form.body).unwrap();
    assert!(
        text.contains("refresh_token=a%22b%5Cc%01%08%0C%0A%0D%09%1F%C3%A9%E2%82%AC%F0%9F%98%80%2F%3C%3E%26%3D%2B+%25"),
        "{text}"
    );
    assert_eq!(form.body.capacity(), form.body.len());
}

/// The `oidc` section: defaults (audience = client_id, RS256 and ES256), and what is refused
/// when loaded — symmetric algorithms, plain http to a non-loopback issuer, no audience, unknown
/// keys — without quoting the profile.
#[test]
fn oidc_sections_are_validated_at_load() {
    let base = |oidc: serde_json::Value| {
        serde_json::json!({"preset": "oauth2", "name": "op", "url": "https://op.example/token",
            "client_id": "client-1", "oidc": oidc})
    };
    let p = Profile::from_json(&base(serde_json::json!({"issuer": "https://op.example"})).to_string()).unwrap();
    let o = p.oidc().unwrap();
    assert_eq!(o.issuer(), "https://op.example");
    assert_eq!(o.audience(), "client-1");
    assert_eq!(o.jwks_url(), None);
    assert_eq!(
        o.algorithms,
        [jsonwebtoken::Algorithm::RS256, jsonwebtoken::Algorithm::ES256]
    );
    assert_eq!(o.discovery_url(), "https://op.example/.well-known/openid-configuration");
    // Without a section, an id_token in a response is ignored (not even read).
    assert!(seed003().oidc().is_none());
    for (oidc, why) in [
        (
            serde_json::json!({"issuer": "https://op.example", "algorithms": ["HS256"]}),
            "algorithms",
        ),
        (
            serde_json::json!({"issuer": "https://op.example", "algorithms": ["none"]}),
            "algorithms",
        ),
        (
            serde_json::json!({"issuer": "https://op.example", "algorithms": []}),
            "algorithms",
        ),
        (
            serde_json::json!({"issuer": "https://op.example", "algorithms": ["EdDSA"]}),
            "algorithms",
        ),
        (serde_json::json!({"issuer": "http://op.example"}), "plain http"),
        (
            serde_json::json!({"issuer": "https://op.example", "jwks_url": "http://op.example/k"}),
            "plain http",
        ),
        (serde_json::json!({"issuer": "ftp://op.example"}), "oidc.issuer"),
        (
            serde_json::json!({"issuer": "https://op.example", "leeway_secs": 3600}),
            "leeway",
        ),
        (
            serde_json::json!({"issuer": "https://op.example", "secret-thing": "s3cr3t"}),
            "unknown key",
        ),
        (serde_json::json!({"issuer": 42}), "wrong type"),
    ] {
        let err = Profile::from_json(&base(oidc).to_string()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        let text = err.to_string();
        assert!(text.contains(why), "{why}: {text}");
        assert!(!text.contains("s3cr3t") && !text.contains("op.example"), "{text}");
    }
    // No audience and no client_id.
    let doc = serde_json::json!({"preset": "oauth2", "name": "op", "url": "https://op.example/token",
        "oidc": {"issuer": "https://op.example"}});
    assert!(Profile::from_json(&doc.to_string())
        .unwrap_err()
        .to_string()
        .contains("audience"));
    // A custom dialect must say where its id_token is.
    let mut doc = base(serde_json::json!({"issuer": "https://op.example"}));
    doc["response"]["id_token"] = serde_json::Value::Null;
    let mut d = doc.as_object().unwrap().clone();
    d.remove("preset");
    let mut full = Preset::OAuth2.defaults();
    merge(&mut full, serde_json::Value::Object(d));
    full["response"].as_object_mut().unwrap().remove("id_token");
    assert!(Profile::from_json(&full.to_string())
        .unwrap_err()
        .to_string()
        .contains("response.id_token"));
    // Plain http to a loopback issuer is the endpoint's rule too.
    let p = Profile::from_json(
        &serde_json::json!({"preset": "oauth2", "name": "op", "url": "http://127.0.0.1:9/token",
            "client_id": "c", "oidc": {"issuer": "http://127.0.0.1:9", "audience": "other", "algorithms": ["ES256", "PS256", "RS512"]}})
        .to_string(),
    )
    .unwrap();
    assert_eq!(p.oidc().unwrap().audience(), "other");
}
