//! Tests of the oidc-provider harness itself: the real server rotates refresh tokens, detects reuse
//! by revoking the whole grant, and counts what happened.
//!
//! Needs `npm ci --prefix tests/oidc` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::Value;
use tokenvault_testkit::oidc_provider::{OidcConfig, OidcProvider, PUBLIC_CLIENT_ID};

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn start(config: OidcConfig) -> OidcProvider {
    let t = Instant::now();
    let p = OidcProvider::start(config).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("oidc-provider started in {:?} at {}", t.elapsed(), p.issuer());
    p
}

#[test]
fn rotation_then_reuse_revokes_the_grant() {
    // Long access tokens: a 401 below can only come from the revocation, not from expiry.
    let op = start(OidcConfig {
        access_ttl_secs: 60,
        ..OidcConfig::default()
    });
    assert_eq!(op.token_endpoint(), format!("{}/token", op.issuer()));
    assert_eq!(op.client_id(), PUBLIC_CLIENT_ID);

    let boot = op.bootstrap("alice").unwrap();
    assert_eq!(boot.expires_in, 60);
    assert!(boot.id_token.is_some(), "openid scope yields an id_token");
    let raw = json(&boot.raw_json);
    assert_eq!(raw["token_type"], "Bearer");
    assert_eq!(raw["scope"], "openid offline_access profile email");
    assert!(op.access_ok(&boot.access_token).unwrap());
    assert!(!op.access_ok("not-a-token").unwrap());

    // Refresh once: rotation hands out a new refresh token.
    let t = Instant::now();
    let (status, body) = op.refresh_raw(&boot.refresh_token).unwrap();
    eprintln!("refresh round trip {:?}", t.elapsed());
    assert_eq!(status, 200, "{body}");
    let r1 = json(&body);
    let rt1 = r1["refresh_token"].as_str().unwrap().to_owned();
    let at1 = r1["access_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, boot.refresh_token, "refresh token must rotate");
    assert_ne!(at1, boot.access_token);
    assert_eq!(r1["expires_in"], 60);
    assert_eq!(r1["token_type"], "Bearer");
    assert!(op.access_ok(&at1).unwrap(), "the new access token works");

    let s = op.stats().unwrap();
    assert_eq!((s.bootstrap_success, s.refresh_success), (1, 1));
    assert_eq!(s.reuse_detected, 0);

    // Reuse the rotated-out token: invalid_grant, and the whole grant is revoked.
    let (status, body) = op.refresh_raw(&boot.refresh_token).unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["error"], "invalid_grant");

    let (status, body) = op.refresh_raw(&rt1).unwrap();
    assert_eq!(status, 400, "the newest refresh token died with the grant: {body}");
    assert_eq!(json(&body)["error"], "invalid_grant");
    assert!(!op.access_ok(&at1).unwrap(), "access tokens died with the grant");
    assert!(!op.access_ok(&boot.access_token).unwrap());

    let s = op.stats().unwrap();
    assert_eq!(s.reuse_detected, 1, "{s:?}");
    assert_eq!(s.grants_revoked, 1, "{s:?}");
    assert_eq!(s.refresh_success, 1, "{s:?}");
    assert_eq!(s.refresh_invalid_grant, 2, "{s:?}");
    assert_eq!(s.refresh_errors.get("invalid_grant"), Some(&2), "{s:?}");
    assert_eq!(
        s.refresh_error_details.get("refresh token already used"),
        Some(&1),
        "{s:?}"
    );
    assert_eq!(s.refresh_requests(), 3);
    assert_eq!(s.token_requests, 4);
    assert_eq!(s.userinfo_errors, 3);
    assert_eq!(s.server_errors, 0);
}

#[test]
fn grants_are_independent_and_confidential_client_works() {
    let op = start(OidcConfig::default());
    let a = op.bootstrap("alice").unwrap();
    let b = op.bootstrap("bob").unwrap();
    let c = op.bootstrap_confidential("carol").unwrap();
    assert!(op.access_ok(&c.access_token).unwrap());

    // Rotate a, then reuse a's first token: only a's grant is revoked.
    assert_eq!(op.refresh_raw(&a.refresh_token).unwrap().0, 200);
    assert_eq!(op.refresh_raw(&a.refresh_token).unwrap().0, 400);
    assert!(!op.access_ok(&a.access_token).unwrap());
    assert!(op.access_ok(&b.access_token).unwrap());
    let (status, body) = op.refresh_raw(&b.refresh_token).unwrap();
    assert_eq!(status, 200, "{body}");

    // The public-client refresh helper cannot use the confidential client's token.
    let (status, body) = op.refresh_raw(&c.refresh_token).unwrap();
    assert_eq!((status, json(&body)["error"].as_str()), (400, Some("invalid_grant")));
    assert!(
        op.access_ok(&c.access_token).unwrap(),
        "a client mismatch revokes nothing"
    );

    let s = op.stats().unwrap();
    assert_eq!(s.bootstrap_success, 3);
    assert_eq!(s.reuse_detected, 1, "{s:?}");
    assert_eq!(s.grants_revoked, 1, "{s:?}");
}

#[test]
fn without_rotation_the_refresh_token_is_stable_and_reusable() {
    let op = start(OidcConfig {
        rotate: false,
        ..OidcConfig::default()
    });
    let boot = op.bootstrap("dave").unwrap();
    for _ in 0..3 {
        let (status, body) = op.refresh_raw(&boot.refresh_token).unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(json(&body)["refresh_token"], boot.refresh_token.as_str());
    }
    let s = op.stats().unwrap();
    assert_eq!((s.refresh_success, s.reuse_detected), (3, 0));
    assert_eq!(s.refresh_token_omitted, 0);
}

#[test]
fn omit_unrotated_refresh_token_leaves_it_out_and_the_old_one_keeps_working() {
    let op = start(OidcConfig {
        rotate: false,
        omit_unrotated_refresh_token: true,
        ..OidcConfig::default()
    });
    let boot = op.bootstrap("frank").unwrap();
    // The bootstrap grant's own response is not a refresh: it still carries the refresh token.
    assert!(!boot.refresh_token.is_empty());
    for _ in 0..3 {
        let (status, body) = op.refresh_raw(&boot.refresh_token).unwrap();
        assert_eq!(status, 200, "{body}");
        let v = json(&body);
        assert!(v.get("refresh_token").is_none(), "{body}");
        assert!(v["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    }
    let s = op.stats().unwrap();
    assert_eq!(
        (s.refresh_success, s.refresh_token_omitted, s.reuse_detected),
        (3, 3, 0)
    );
}

#[test]
fn omit_unrotated_refresh_token_never_drops_a_rotated_one() {
    let op = start(OidcConfig {
        omit_unrotated_refresh_token: true,
        ..OidcConfig::default()
    });
    let boot = op.bootstrap("grace").unwrap();
    let (status, body) = op.refresh_raw(&boot.refresh_token).unwrap();
    assert_eq!(status, 200, "{body}");
    let rotated = json(&body)["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, boot.refresh_token);
    assert_eq!(op.stats().unwrap().refresh_token_omitted, 0);
}

#[test]
fn access_tokens_expire_with_zero_clock_tolerance() {
    // Two seconds: expiry is checked in whole epoch seconds, so a token issued at second X is
    // good until X + 2, and the check just after issuing cannot cross that line (with a
    // one-second lifetime it did whenever the issue fell late in a second: a flake in CI).
    let op = start(OidcConfig {
        access_ttl_secs: 2,
        ..OidcConfig::default()
    });
    let boot = op.bootstrap("erin").unwrap();
    assert_eq!(boot.expires_in, 2);
    assert!(op.access_ok(&boot.access_token).unwrap());
    // After 3 s the token is expired for sure.
    std::thread::sleep(Duration::from_millis(3100));
    assert!(!op.access_ok(&boot.access_token).unwrap());
    // The refresh token is still good and yields a fresh, working access token.
    let (status, body) = op.refresh_raw(&boot.refresh_token).unwrap();
    assert_eq!(status, 200, "{body}");
    let at = json(&body)["access_token"].as_str().unwrap().to_owned();
    assert!(op.access_ok(&at).unwrap());
}

#[test]
fn many_refresh_cycles_do_not_evict_live_grants() {
    // The library's default store is an LRU of 1,000 entries and each refresh adds two or three.
    // Keep one grant idle while another rotates 1,000 times, then use the idle one. (Measured with
    // the default store: the idle refresh token is gone by then, `refresh token not found`.)
    let op = start(OidcConfig::default());
    let idle = op.bootstrap("idle").unwrap();
    let busy = op.bootstrap("busy").unwrap();
    let mut rt = busy.refresh_token;
    let t = Instant::now();
    for _ in 0..1000 {
        let (status, body) = op.refresh_raw(&rt).unwrap();
        assert_eq!(status, 200, "{body}");
        rt = json(&body)["refresh_token"].as_str().unwrap().to_owned();
    }
    eprintln!("1000 refreshes in {:?}", t.elapsed());
    assert!(op.access_ok(&idle.access_token).unwrap());
    let (status, body) = op.refresh_raw(&idle.refresh_token).unwrap();
    assert_eq!(status, 200, "{body}");
    let s = op.stats().unwrap();
    assert_eq!((s.refresh_success, s.reuse_detected), (1001, 0));
}

#[test]
fn missing_account_is_rejected() {
    let op = start(OidcConfig::default());
    let err = op.bootstrap("").unwrap_err();
    assert!(err.contains("400"), "{err}");
}
