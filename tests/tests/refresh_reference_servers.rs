//! The refresh engine against the reference servers of seeds 000, 001 and 002: rotation,
//! hundreds of cycles, single-flight under 1,000 threads, every fault switch, logout races,
//! forced refreshes, the two-step refresh, clock skew and events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use tokenvault::{
    ErrorCode, HttpResponse, ManualClock, NewSession, RefreshStep, SessionState, SkewedClock, TokenOptions,
    TransportError, TransportErrorKind, Vault, VaultError, VaultEvent, VaultObserver,
};
use tokenvault_testkit::{Dialect, Fault, ReferenceServer, ServerConfig};
use tokenvault_tests::{eventually, login_and_store, open_vault, profile_for, read_from_threads};

struct Fixture {
    server: ReferenceServer,
    vault: Arc<Vault>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn fixture(dialect: Dialect, profile_extra: serde_json::Value) -> Fixture {
    let server = ReferenceServer::start(dialect, ServerConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let vault = open_vault(&dir.path().join("v.db"), clock.clone()).unwrap();
    vault
        .register_profile(profile_for(&server, "p", profile_extra).unwrap())
        .unwrap();
    login_and_store(&vault, &server, "player", "p").unwrap();
    Fixture {
        server,
        vault: Arc::new(vault),
        clock,
        _dir: dir,
    }
}

/// Move the vault's clock past the refresh point (80 % of a 60 s token, jitter is ±5 %).
fn make_due(f: &Fixture) {
    f.clock.advance(Duration::from_secs(49));
}

fn make_expired(f: &Fixture) {
    f.clock.advance(Duration::from_secs(61));
}

fn cycles(dialect: Dialect, n: usize) {
    let f = fixture(dialect, serde_json::json!({}));
    let mut previous = f.vault.access_token("player").unwrap();
    assert!(f.server.check_access(previous.expose()));
    for i in 0..n {
        // A fresh token is served from memory: no request.
        assert_eq!(f.vault.access_token("player").unwrap(), previous);
        make_due(&f);
        let t = f.vault.access_token("player").unwrap();
        assert_ne!(t.expose(), previous.expose(), "cycle {i}");
        assert!(t.generation() > previous.generation());
        assert!(
            f.server.check_access(t.expose()),
            "cycle {i}: the new token works at the protected resource"
        );
        previous = t;
    }
    let s = f.server.stats();
    assert_eq!(s.refresh_successes, n as u64);
    assert_eq!(s.refresh_requests, n as u64, "exactly one request per cycle");
    assert_eq!(s.reuse_detections, 0);
    assert_eq!(s.families_revoked, 0);
    let info = f.vault.session_info("player").unwrap();
    assert_eq!(info.refresh_count, n as u64);
    assert_eq!(info.state, SessionState::Fresh);
    // Reopen: the last rotated pair was durable.
    let path = f.vault.path().to_path_buf();
    f.vault.close().unwrap();
    let v = open_vault(&path, f.clock.clone()).unwrap();
    v.register_profile(profile_for(&f.server, "p", serde_json::json!({})).unwrap())
        .unwrap();
    assert_eq!(v.access_token("player").unwrap().expose(), previous.expose());
    make_due(&f);
    assert!(f.server.check_access(v.access_token("player").unwrap().expose()));
    assert_eq!(f.server.stats().reuse_detections, 0);
}

#[test]
fn seed000_hundreds_of_cycles_entity_token_not_rotated() {
    cycles(Dialect::EntityToken, 200);
}

#[test]
fn seed001_hundreds_of_cycles_with_rotation() {
    cycles(Dialect::SuccessEnvelope, 200);
}

#[test]
fn seed002_hundreds_of_cycles_with_rotation_and_revocation() {
    cycles(Dialect::VersionedBearer, 200);
}

#[test]
fn seed002_previous_access_token_is_revoked_by_the_server() {
    let f = fixture(Dialect::VersionedBearer, serde_json::json!({}));
    let old = f.vault.access_token("player").unwrap();
    make_due(&f);
    let new = f.vault.access_token("player").unwrap();
    assert!(!f.server.check_access(old.expose()));
    assert!(f.server.check_access(new.expose()));
    // The app reports the old token rejected: the vault answers with the newer generation,
    // without another refresh.
    let before = f.server.stats().refresh_requests;
    assert_eq!(f.vault.report_rejected("player", old.expose()).unwrap(), new);
    assert_eq!(f.server.stats().refresh_requests, before);
}

#[test]
fn a_thousand_threads_one_refresh() {
    for dialect in [Dialect::SuccessEnvelope, Dialect::VersionedBearer] {
        let f = fixture(dialect, serde_json::json!({}));
        let old = f.vault.access_token("player").unwrap();
        make_due(&f);
        let tokens: Vec<_> = read_from_threads(&f.vault, "player", 1000)
            .into_iter()
            .map(|t| t.unwrap())
            .collect();
        let first = &tokens[0];
        assert_ne!(first.expose(), old.expose());
        assert!(tokens.iter().all(|t| t == first), "every thread got the same new token");
        let s = f.server.stats();
        assert_eq!(
            s.refresh_requests, 1,
            "{dialect:?}: exactly one request reached the server"
        );
        assert_eq!(s.reuse_detections, 0);
        assert!(f.server.check_access(first.expose()));
    }
}

#[test]
fn transient_failures_serve_the_valid_token_back_off_and_recover() {
    let f = fixture(Dialect::SuccessEnvelope, serde_json::json!({}));
    let old = f.vault.access_token("player").unwrap();
    make_due(&f);
    f.server.push_fault(Fault::Status(503));
    // Still valid: served, with the failure visible.
    assert_eq!(f.vault.access_token("player").unwrap(), old);
    let info = f.vault.session_info("player").unwrap();
    assert_eq!(info.state, SessionState::RefreshDue);
    let failure = info.last_refresh_failure.expect("staleness is visible");
    assert_eq!(failure.code, ErrorCode::Transient);
    assert!(failure.message.contains("503"));
    // Backing off: no hammering.
    for _ in 0..10 {
        assert_eq!(f.vault.access_token("player").unwrap(), old);
    }
    assert_eq!(f.server.stats().refresh_requests, 1);
    // After the back-off the next read refreshes.
    f.clock.advance(Duration::from_secs(2));
    let new = f.vault.access_token("player").unwrap();
    assert_ne!(new, old);
    assert!(f.vault.session_info("player").unwrap().last_refresh_failure.is_none());
    assert_eq!(f.server.stats().refresh_requests, 2);
}

#[test]
fn an_expired_token_with_the_network_down_is_an_error_but_never_cached_or_fatal() {
    let f = fixture(Dialect::SuccessEnvelope, serde_json::json!({}));
    make_expired(&f);
    f.server.push_fault(Fault::DropConnection);
    f.server.push_fault(Fault::Status(502));
    assert_eq!(f.vault.access_token("player").unwrap_err().code(), ErrorCode::Transient);
    // The failure is not cached: the next caller tries again.
    assert_eq!(f.vault.access_token("player").unwrap_err().code(), ErrorCode::Transient);
    assert_eq!(f.server.stats().refresh_requests, 2);
    let t = f.vault.access_token("player").unwrap();
    assert!(f.server.check_access(t.expose()));
    assert_eq!(f.vault.session_info("player").unwrap().state, SessionState::Fresh);
}

#[test]
fn every_fault_gets_its_typed_outcome_and_the_session_survives() {
    let cases: Vec<(Fault, ErrorCode)> = vec![
        (Fault::Status(500), ErrorCode::Transient),
        (Fault::Status(408), ErrorCode::Transient),
        (Fault::Throttle { retry_after_secs: 1 }, ErrorCode::Throttled),
        (Fault::DropConnection, ErrorCode::Transient),
        (Fault::Garbage, ErrorCode::Protocol),
        (Fault::CaptivePortal, ErrorCode::Transient),
        (Fault::HtmlOk, ErrorCode::Transient),
        (Fault::Oversized(2 * 1024 * 1024), ErrorCode::Protocol),
        (Fault::Delay(Duration::from_millis(1500)), ErrorCode::Transient),
    ];
    let f = fixture(Dialect::VersionedBearer, serde_json::json!({"timeout_ms": 500}));
    for (fault, code) in cases {
        make_expired(&f);
        f.server.push_fault(fault.clone());
        let err = f.vault.access_token("player").unwrap_err();
        assert_eq!(err.code(), code, "{fault:?}: {err}");
        // The session is intact; the next attempt (after any Retry-After) succeeds.
        f.clock.advance(Duration::from_secs(2));
        let t = f.vault.access_token("player").unwrap();
        assert!(f.server.check_access(t.expose()), "{fault:?}");
    }
    assert_eq!(f.server.stats().reuse_detections, 0);
}

#[test]
fn retry_after_is_honoured() {
    let f = fixture(Dialect::SuccessEnvelope, serde_json::json!({}));
    make_expired(&f);
    f.server.push_fault(Fault::Throttle { retry_after_secs: 30 });
    assert_eq!(
        f.vault.access_token("player").unwrap_err(),
        VaultError::Throttled {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    // Within the window no request is sent.
    f.clock.advance(Duration::from_secs(10));
    match f.vault.access_token("player").unwrap_err() {
        VaultError::Throttled { retry_after: Some(d) } => {
            assert!(d <= Duration::from_secs(20) && d > Duration::from_secs(19))
        }
        e => panic!("{e}"),
    }
    assert_eq!(f.server.stats().refresh_requests, 1);
    f.clock.advance(Duration::from_secs(21));
    assert!(f.vault.access_token("player").is_ok());
    assert_eq!(f.server.stats().refresh_requests, 2);
}

#[derive(Default)]
struct Recorder(Mutex<Vec<VaultEvent>>);

impl VaultObserver for Recorder {
    fn on_event(&self, event: &VaultEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[test]
fn reauthentication_only_after_the_server_refuses_and_nothing_is_deleted() {
    for (dialect, fault) in [
        (Dialect::EntityToken, Some(Fault::EnvelopeFailure)),
        (Dialect::SuccessEnvelope, Some(Fault::EnvelopeFailure)),
        (Dialect::SuccessEnvelope, None),
        (Dialect::VersionedBearer, None),
    ] {
        let f = fixture(dialect, serde_json::json!({}));
        let rec = Arc::new(Recorder::default());
        f.vault.set_observer(Some(rec.clone())).unwrap();
        let t = f.vault.access_token("player").unwrap();
        match fault {
            Some(fault) => f.server.push_fault(fault),
            None => assert!(f.server.revoke_family_of(t.expose())),
        }
        make_expired(&f);
        let err = f.vault.access_token("player").unwrap_err();
        assert_eq!(err.code(), ErrorCode::ReauthenticationRequired, "{dialect:?}: {err}");
        let info = f.vault.session_info("player").unwrap();
        assert_eq!(info.state, SessionState::ReauthenticationRequired);
        assert_eq!(f.vault.list_accounts().unwrap(), ["player"], "never deleted implicitly");
        // No retry storm against a dead credential.
        let n = f.server.stats().refresh_requests;
        assert_eq!(
            f.vault.access_token("player").unwrap_err().code(),
            ErrorCode::ReauthenticationRequired
        );
        assert_eq!(f.server.stats().refresh_requests, n);
        assert!(eventually(Duration::from_secs(2), || rec
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, VaultEvent::SessionExpired { .. }))));
        // A new sign-in replaces it.
        login_and_store(&f.vault, &f.server, "player", "p").unwrap();
        assert!(f.server.check_access(f.vault.access_token("player").unwrap().expose()));
    }
}

#[test]
fn a_lost_response_after_rotation_is_a_distinct_outcome() {
    let f = fixture(Dialect::SuccessEnvelope, serde_json::json!({}));
    make_expired(&f);
    f.server.push_fault(Fault::LoseResponseAfterRotate);
    assert_eq!(f.vault.access_token("player").unwrap_err().code(), ErrorCode::Transient);
    // The server rotated; our credential is now consumed. The next attempt is refused (and the
    // server revokes the family on reuse) — the vault says what happened.
    let err = f.vault.access_token("player").unwrap_err();
    assert_eq!(err.code(), ErrorCode::RefreshOutcomeUnknown, "{err}");
    assert_eq!(
        f.vault.session_info("player").unwrap().state,
        SessionState::ReauthenticationRequired
    );
    assert_eq!(f.vault.list_accounts().unwrap(), ["player"]);
}

#[test]
fn logout_during_an_in_flight_refresh_wins() {
    let f = fixture(Dialect::SuccessEnvelope, serde_json::json!({}));
    make_expired(&f);
    f.server.push_fault(Fault::Delay(Duration::from_millis(400)));
    let v = Arc::clone(&f.vault);
    let h = std::thread::spawn(move || v.access_token("player"));
    assert!(eventually(Duration::from_secs(2), || f.server.stats().refresh_requests == 1));
    assert!(f.vault.remove("player").unwrap());
    assert_eq!(h.join().unwrap().unwrap_err(), VaultError::NotFound);
    assert_eq!(f.vault.access_token("player").unwrap_err(), VaultError::NotFound);
    assert!(
        f.vault.list_accounts().unwrap().is_empty(),
        "the late result was not written back"
    );

    // A new sign-in during the flight also wins over the late result.
    login_and_store(&f.vault, &f.server, "player", "p").unwrap();
    make_expired(&f);
    f.server.push_fault(Fault::Delay(Duration::from_millis(400)));
    let v = Arc::clone(&f.vault);
    let h = std::thread::spawn(move || v.access_token("player"));
    assert!(eventually(Duration::from_secs(2), || f.server.stats().refresh_requests == 2));
    let fresh = f.server.login("player");
    f.vault
        .store(
            NewSession::new("player", "p", fresh.access_token.clone())
                .refresh_credential(fresh.refresh_credential.clone()),
        )
        .unwrap();
    let got = h.join().unwrap().unwrap();
    assert_eq!(
        got.expose(),
        fresh.access_token,
        "the late refresh result was discarded"
    );
    assert_eq!(f.vault.access_token("player").unwrap().expose(), fresh.access_token);
}

#[test]
fn a_forced_refresh_is_not_swallowed_by_an_older_failed_one() {
    let f = fixture(Dialect::SuccessEnvelope, serde_json::json!({}));
    let old = f.vault.access_token("player").unwrap();
    make_due(&f);
    // An older, non-forced refresh is in flight (the host performs it: two-step).
    let RefreshStep::Send(pending) = f.vault.begin_refresh("player", false).unwrap() else {
        panic!("expected Send")
    };
    // Meanwhile the app got a 401 with the old token, on another thread.
    let v = Arc::clone(&f.vault);
    let rejected = old.expose().to_owned();
    let h = std::thread::spawn(move || v.report_rejected("player", &rejected));
    std::thread::sleep(Duration::from_millis(100));
    // The older attempt fails on the network.
    let served = f
        .vault
        .fail_refresh(
            pending.attempt,
            TransportError::new(TransportErrorKind::Connect, "offline"),
        )
        .unwrap();
    assert_eq!(served, old, "the older attempt served the still-valid token");
    // The forced refresh went ahead on its own and produced a new token.
    let new = h.join().unwrap().unwrap();
    assert_ne!(new, old);
    assert!(f.server.check_access(new.expose()));
    assert_eq!(
        f.server.stats().refresh_requests,
        1,
        "only the forced refresh reached the server"
    );
}

#[test]
fn report_rejected_from_many_threads_refreshes_once() {
    let f = fixture(Dialect::VersionedBearer, serde_json::json!({}));
    let old = f.vault.access_token("player").unwrap().expose().to_owned();
    let barrier = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (v, b, old) = (Arc::clone(&f.vault), Arc::clone(&barrier), old.clone());
            std::thread::spawn(move || {
                b.wait();
                v.report_rejected("player", &old).unwrap()
            })
        })
        .collect();
    let tokens: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(tokens.iter().all(|t| t == &tokens[0] && t.expose() != old));
    assert_eq!(f.server.stats().refresh_requests, 1);
    assert_eq!(f.server.stats().reuse_detections, 0);
}

#[test]
fn two_step_refresh_for_hosts_that_own_their_networking() {
    let f = fixture(Dialect::VersionedBearer, serde_json::json!({}));
    let old = f.vault.access_token("player").unwrap();
    assert!(matches!(f.vault.begin_refresh("player", false).unwrap(), RefreshStep::Fresh(t) if t == old));
    make_due(&f);
    let RefreshStep::Send(pending) = f.vault.begin_refresh("player", false).unwrap() else {
        panic!("expected Send")
    };
    assert!(matches!(
        f.vault.begin_refresh("player", false).unwrap(),
        RefreshStep::InFlight
    ));
    assert_eq!(pending.request.header("Version"), Some("2.0"));
    assert_eq!(
        pending.request.header("Authorization").unwrap(),
        format!("Bearer {}", old.expose())
    );
    // A reader on another thread waits for the same attempt.
    let v = Arc::clone(&f.vault);
    let reader = std::thread::spawn(move || {
        v.access_token_with(
            "player",
            TokenOptions {
                min_ttl: Duration::from_secs(30),
            },
        )
    });
    // The host performs the request with its own HTTP stack.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = ureq::http::Request::builder()
        .method("POST")
        .uri(pending.request.url.as_str());
    for h in &pending.request.headers {
        req = req.header(h.name.as_str(), h.value.expose());
    }
    let mut resp = agent.run(req.body(pending.request.body.clone()).unwrap()).unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let body = resp.body_mut().read_to_vec().unwrap();
    let new = f
        .vault
        .finish_refresh(pending.attempt, HttpResponse::new(status, headers, body))
        .unwrap();
    assert_ne!(new, old);
    assert_eq!(reader.join().unwrap().unwrap(), new);
    assert!(f.server.check_access(new.expose()));
    assert_eq!(
        f.vault
            .finish_refresh(pending.attempt, HttpResponse::default())
            .unwrap_err()
            .code(),
        ErrorCode::InvalidInput
    );
    assert_eq!(f.server.stats().refresh_requests, 1);
}

#[test]
fn a_min_ttl_longer_than_the_lifetime_cannot_loop() {
    let f = fixture(Dialect::SuccessEnvelope, serde_json::json!({}));
    let opts = TokenOptions {
        min_ttl: Duration::from_secs(3600),
    };
    let a = f.vault.access_token_with("player", opts).unwrap();
    for _ in 0..20 {
        assert_eq!(f.vault.access_token_with("player", opts).unwrap(), a);
    }
    assert_eq!(f.server.stats().refresh_requests, 0);
    // Past half the lifetime the cap kicks in once, then the new token satisfies it.
    f.clock.advance(Duration::from_secs(35));
    let b = f.vault.access_token_with("player", opts).unwrap();
    assert_ne!(a, b);
    for _ in 0..20 {
        assert_eq!(f.vault.access_token_with("player", opts).unwrap(), b);
    }
    assert_eq!(f.server.stats().refresh_requests, 1);
}

#[test]
fn a_device_clock_hours_off_neither_loops_nor_serves_expired_tokens() {
    for skew_hours in [-5i64, 5] {
        let server = ReferenceServer::start(
            Dialect::SuccessEnvelope,
            ServerConfig {
                access_ttl: Duration::from_secs(3),
                ..ServerConfig::default()
            },
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clock = SkewedClock::new(skew_hours * 3_600_000);
        let vault = open_vault(&dir.path().join("v.db"), clock.clone()).unwrap();
        vault
            .register_profile(profile_for(&server, "p", serde_json::json!({})).unwrap())
            .unwrap();
        login_and_store(&vault, &server, "player", "p").unwrap();
        let info = vault.session_info("player").unwrap();
        assert!(
            (info.clock_offset_ms + skew_hours * 3_600_000).abs() < 2_000,
            "offset {}",
            info.clock_offset_ms
        );
        let t = vault.access_token("player").unwrap();
        for _ in 0..100 {
            assert_eq!(vault.access_token("player").unwrap(), t);
        }
        assert_eq!(
            server.stats().refresh_requests,
            0,
            "no refresh loop with a skewed clock"
        );
        // The user moves the clock while the game runs: nothing changes.
        clock.set_skew_ms(-skew_hours * 3_600_000);
        assert_eq!(vault.access_token("player").unwrap(), t);
        assert_eq!(server.stats().refresh_requests, 0);
        // Real time passes beyond the refresh point: exactly one refresh, and a working token.
        std::thread::sleep(Duration::from_millis(2_400));
        let t2 = vault.access_token("player").unwrap();
        assert_ne!(t2, t);
        assert!(server.check_access(t2.expose()));
        assert_eq!(vault.access_token("player").unwrap(), t2);
        assert_eq!(server.stats().refresh_requests, 1);
    }
}

struct ReentrantObserver {
    vault: Mutex<Option<std::sync::Weak<Vault>>>,
    seen: Mutex<Vec<(String, bool)>>,
}

impl VaultObserver for ReentrantObserver {
    fn on_event(&self, event: &VaultEvent) {
        let v = self.vault.lock().unwrap().as_ref().and_then(|w| w.upgrade());
        // Calling back into the vault from the event thread must not deadlock.
        let ok = v.map(|v| v.session_info(event.account()).is_ok()).unwrap_or(false);
        let kind = match event {
            VaultEvent::TokenRefreshed {
                session_remaining_ms, ..
            } => format!("refreshed:{}", session_remaining_ms.is_some()),
            VaultEvent::SessionExpired { .. } => "expired".into(),
            VaultEvent::SessionRemoved { .. } => "removed".into(),
        };
        self.seen.lock().unwrap().push((kind, ok));
    }
}

#[test]
fn events_reach_the_observer_which_may_call_back_into_the_vault() {
    let f = fixture(Dialect::SuccessEnvelope, serde_json::json!({}));
    let obs = Arc::new(ReentrantObserver {
        vault: Mutex::new(Some(Arc::downgrade(&f.vault))),
        seen: Mutex::new(vec![]),
    });
    f.vault.set_observer(Some(obs.clone())).unwrap();
    make_due(&f);
    f.vault.access_token("player").unwrap();
    let info = f.vault.session_info("player").unwrap();
    // Seed 001's refresh token lives 12 h: the forecast says so.
    let left = info.session_remaining_ms.unwrap();
    assert!(left > 11 * 3_600_000 && left <= 12 * 3_600_000, "{left}");
    f.vault.remove("player").unwrap();
    assert!(eventually(Duration::from_secs(2), || obs.seen.lock().unwrap().len() == 2));
    let seen = obs.seen.lock().unwrap().clone();
    assert_eq!(seen[0], ("refreshed:true".to_owned(), true));
    assert_eq!(seen[1].0, "removed");
}

#[test]
fn a_peer_vault_on_the_same_file_adopts_instead_of_refreshing() {
    let f = fixture(Dialect::VersionedBearer, serde_json::json!({}));
    let peer = open_vault(f.vault.path(), f.clock.clone()).unwrap();
    peer.register_profile(profile_for(&f.server, "p", serde_json::json!({})).unwrap())
        .unwrap();
    let t0 = peer.access_token("player").unwrap();
    make_due(&f);
    let t1 = f.vault.access_token("player").unwrap();
    assert_ne!(t0, t1);
    // The peer's cache still holds t0 past its refresh point; it re-reads the store before
    // refreshing and adopts t1: no second request, no reuse of the rotated token.
    assert_eq!(peer.access_token("player").unwrap().expose(), t1.expose());
    assert_eq!(f.server.stats().refresh_requests, 1);
    // A 401 reported to the peer against the old token returns the adopted one, again without a
    // request: over the whole test the server saw f.vault's one refresh and nothing from the peer.
    let answer = peer.report_rejected("player", t0.expose()).unwrap();
    let s = f.server.stats();
    assert_eq!(
        (s.refresh_requests, s.reuse_detections),
        (1, 0),
        "the peer adopted instead of refreshing"
    );
    assert_eq!(answer.expose(), t1.expose());
}
