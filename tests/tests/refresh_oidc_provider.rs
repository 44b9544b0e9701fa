//! The OAuth2 dialect against a real, certified provider: panva's oidc-provider, which rotates
//! refresh tokens and revokes the whole grant when a rotated-out token is presented again.
//! Requires `npm ci --prefix tests/oidc` (the test command runs it); never skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use tokenvault::{ErrorCode, ManualClock, NewSession, Preset, Profile, SessionState, Vault};
use tokenvault_testkit::oidc_provider::{
    OidcConfig, OidcProvider, CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, PUBLIC_CLIENT_ID,
};
use tokenvault_tests::{open_vault, read_from_threads};

struct Fixture {
    op: OidcProvider,
    vault: Arc<Vault>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn fixture(config: OidcConfig, preset: Preset, confidential: bool) -> Fixture {
    let op = OidcProvider::start(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let vault = open_vault(&dir.path().join("v.db"), clock.clone()).unwrap();
    let settings = if confidential {
        serde_json::json!({"client_id": CONFIDENTIAL_CLIENT_ID, "client_secret": CONFIDENTIAL_CLIENT_SECRET})
    } else {
        serde_json::json!({"client_id": PUBLIC_CLIENT_ID})
    };
    vault
        .register_profile(Profile::preset(preset, "op", op.token_endpoint(), settings).unwrap())
        .unwrap();
    let boot = if confidential {
        op.bootstrap_confidential("player-1")
    } else {
        op.bootstrap("player-1")
    }
    .unwrap();
    vault
        .store(
            NewSession::new("player-1", "op", boot.access_token.clone())
                .refresh_credential(boot.refresh_token.clone())
                .expires_in(Duration::from_secs(boot.expires_in)),
        )
        .unwrap();
    Fixture {
        op,
        vault: Arc::new(vault),
        clock,
        _dir: dir,
    }
}

fn run_cycles(f: &Fixture, n: usize) {
    let mut prev = f.vault.access_token("player-1").unwrap();
    assert!(f.op.access_ok(prev.expose()).unwrap());
    for i in 0..n {
        f.clock.advance(Duration::from_secs(49));
        let t = f.vault.access_token("player-1").unwrap();
        assert_ne!(t, prev, "cycle {i}");
        assert!(
            f.op.access_ok(t.expose()).unwrap(),
            "cycle {i}: the provider accepts the new token"
        );
        prev = t;
    }
    let s = f.op.stats().unwrap();
    assert_eq!(s.refresh_success, n as u64);
    assert_eq!(s.reuse_detected, 0, "{s:?}");
    assert_eq!(s.grants_revoked, 0);
    assert_eq!(s.server_errors, 0);
    assert_eq!(
        f.vault.session_info("player-1").unwrap().token_type.as_deref(),
        Some("Bearer")
    );
}

#[test]
fn oauth2_preset_hundreds_of_rotations_zero_reuse() {
    let f = fixture(OidcConfig::default(), Preset::OAuth2, false);
    run_cycles(&f, 200);
}

#[test]
fn keycloak_preset_with_a_confidential_client() {
    let f = fixture(OidcConfig::default(), Preset::Keycloak, true);
    run_cycles(&f, 50);
}

#[test]
fn without_rotation_the_old_refresh_token_is_kept() {
    // The provider neither rotates nor repeats the refresh token: every refresh response lacks
    // `refresh_token` (RFC 6749 §6 makes a new one optional). The vault must keep the stored one;
    // had it dropped it, the second cycle would have nothing to refresh with.
    let f = fixture(
        OidcConfig {
            rotate: false,
            omit_unrotated_refresh_token: true,
            ..OidcConfig::default()
        },
        Preset::OAuth2,
        false,
    );
    let (_, stored_before) = f.vault.stored_pair_for_tests("player-1").unwrap();
    assert!(stored_before.is_some());
    run_cycles(&f, 20);
    let s = f.op.stats().unwrap();
    assert_eq!(
        s.refresh_token_omitted, 20,
        "every refresh response lacked the field: {s:?}"
    );
    let (_, stored_after) = f.vault.stored_pair_for_tests("player-1").unwrap();
    assert_eq!(
        stored_after, stored_before,
        "the bootstrap refresh token is still the stored one"
    );
}

#[test]
fn a_thousand_threads_one_refresh_at_the_real_provider() {
    let f = fixture(OidcConfig::default(), Preset::OAuth2, false);
    let old = f.vault.access_token("player-1").unwrap();
    f.clock.advance(Duration::from_secs(49));
    let tokens: Vec<_> = read_from_threads(&f.vault, "player-1", 1000)
        .into_iter()
        .map(|t| t.unwrap())
        .collect();
    assert!(tokens.iter().all(|t| t == &tokens[0] && *t != old));
    let s = f.op.stats().unwrap();
    assert_eq!(s.refresh_requests(), 1, "{s:?}");
    assert_eq!(s.reuse_detected, 0);
    assert!(f.op.access_ok(tokens[0].expose()).unwrap());
}

#[test]
fn invalid_grant_means_reauthentication_and_the_session_is_kept() {
    let op = OidcProvider::start(OidcConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let vault = open_vault(&dir.path().join("v.db"), clock.clone()).unwrap();
    vault
        .register_profile(
            Profile::preset(
                Preset::OAuth2,
                "op",
                op.token_endpoint(),
                serde_json::json!({"client_id": PUBLIC_CLIENT_ID}),
            )
            .unwrap(),
        )
        .unwrap();
    let boot = op.bootstrap("player-2").unwrap();
    vault
        .store(
            NewSession::new("player-2", "op", boot.access_token.clone())
                .refresh_credential(boot.refresh_token.clone())
                .expires_in(Duration::from_secs(boot.expires_in)),
        )
        .unwrap();
    // Someone else (a leaked copy) uses the refresh token first; then our refresh is a reuse.
    let (status, _) = op.refresh_raw(&boot.refresh_token).unwrap();
    assert_eq!(status, 200);
    clock.advance(Duration::from_secs(61));
    let err = vault.access_token("player-2").unwrap_err();
    assert_eq!(err.code(), ErrorCode::ReauthenticationRequired, "{err}");
    assert_eq!(
        vault.session_info("player-2").unwrap().state,
        SessionState::ReauthenticationRequired
    );
    assert_eq!(vault.list_accounts().unwrap(), ["player-2"]);
    assert_eq!(
        op.stats().unwrap().reuse_detected,
        1,
        "the provider saw the reuse and revoked the grant"
    );
}
