//! `Vault::metrics` counts what the engine did, against a real reference server and real files:
//! cached hits, refreshes by outcome and error code, single-flight joins, cross-process lock
//! waits and takeovers, lost-answer markers, transport latency and response bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier};
use std::time::Duration;

use tokenvault::{
    ErrorCode, KeySource, ManualClock, NewSession, RefreshStep, TokenOptions, TransportError, TransportErrorKind,
    Vault, VaultOptions,
};
use tokenvault_testkit::{Dialect, Fault, ReferenceServer, ServerConfig};
use tokenvault_tests::{profile_for, TEST_KEY};

fn open(path: &std::path::Path, clock: &Arc<ManualClock>, server: &ReferenceServer) -> Vault {
    let v = Vault::open(
        path,
        KeySource::raw(&TEST_KEY).unwrap(),
        VaultOptions {
            clock: clock.clone(),
            ..VaultOptions::default()
        },
    )
    .unwrap();
    v.register_profile(profile_for(server, "p", serde_json::json!({})).unwrap())
        .unwrap();
    v
}

fn sign_in(v: &Vault, server: &ReferenceServer, account: &str) {
    let t = server.login(account);
    v.store(NewSession::new(account, "p", t.access_token).refresh_credential(t.refresh_credential))
        .unwrap();
}

#[test]
fn hits_refreshes_failures_and_the_transport_are_counted() {
    let server = ReferenceServer::start(Dialect::SuccessEnvelope, ServerConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let v = open(&dir.path().join("v.db"), &clock, &server);
    assert_eq!(v.metrics(), tokenvault::VaultMetrics::default());
    sign_in(&v, &server, "a");

    for _ in 0..100 {
        v.access_token("a").unwrap();
    }
    let first = v.access_token("a").unwrap();
    assert_eq!(
        v.token_if_changed("a", first.generation(), TokenOptions::default())
            .unwrap(),
        None
    );
    let m = v.metrics();
    assert_eq!(m.cached_hits, 102);
    assert_eq!((m.refreshes_started, m.transport_requests), (0, 0));

    // Due: one refresh, answered.
    clock.advance(Duration::from_secs(50));
    v.access_token("a").unwrap();
    let m = v.metrics();
    assert_eq!((m.refreshes_started, m.refreshes_succeeded), (1, 1));
    assert_eq!(m.transport_requests, 1);
    assert!(m.response_bytes > 100, "{m:?}");
    let p50 = m.transport_latency_p50_us.unwrap();
    assert!(p50 > 0 && m.transport_latency_p99_us.unwrap() >= p50);

    // A 503 (the still-valid token is served) and a refused credential: failures by code.
    clock.advance(Duration::from_secs(50));
    server.push_fault(Fault::Status(503));
    v.access_token("a").unwrap();
    clock.advance(Duration::from_secs(600));
    server.push_fault(Fault::Status(401));
    assert_eq!(
        v.access_token("a").unwrap_err().code(),
        ErrorCode::ReauthenticationRequired
    );
    let m = v.metrics();
    assert_eq!(m.refreshes_started, 3);
    assert_eq!(m.refreshes_succeeded, 1);
    assert_eq!(
        m.refreshes_failed,
        vec![(ErrorCode::ReauthenticationRequired, 1), (ErrorCode::Transient, 1)]
    );
    assert_eq!(m.refreshes_failed_total(), 2);
    assert_eq!(m.transport_requests, 3);
    // Still readable after close.
    v.close().unwrap();
    assert_eq!(v.metrics().refreshes_started, 3);
}

#[test]
fn callers_joining_a_flight_are_counted() {
    let server = ReferenceServer::start(Dialect::SuccessEnvelope, ServerConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let v = Arc::new(open(&dir.path().join("v.db"), &clock, &server));
    sign_in(&v, &server, "a");
    clock.advance(Duration::from_secs(50));
    // The refresh answer takes 300 ms: the three other callers join it.
    server.push_fault(Fault::Delay(Duration::from_millis(300)));
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (v, barrier) = (Arc::clone(&v), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                v.access_token("a").unwrap()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let m = v.metrics();
    assert_eq!(m.refreshes_started, 1, "{m:?}");
    assert_eq!(m.single_flight_joins, 3, "{m:?}");
    assert_eq!(server.stats().refresh_requests, 1);
}

#[test]
fn lock_waits_takeovers_and_lost_answers_across_two_instances() {
    let server = ReferenceServer::start(Dialect::SuccessEnvelope, ServerConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let clock = ManualClock::new();
    let a = open(&path, &clock, &server);
    let b = Arc::new(open(&path, &clock, &server));
    sign_in(&a, &server, "acc");
    clock.advance(Duration::from_secs(50));

    // `a` sends in two steps and holds the account's refresh lock meanwhile.
    let RefreshStep::Send(pending) = a.begin_refresh("acc", false).unwrap() else {
        panic!("a should lead");
    };
    // `b` finds the lock held: a lock wait, and (two-step) no request of its own.
    assert!(matches!(b.begin_refresh("acc", false).unwrap(), RefreshStep::InFlight));
    assert_eq!(b.metrics().lock_waits, 1);

    // `b` blocks for it; `a`'s request then fails with the connection broken mid-exchange: the
    // server may have consumed the credential, so the marker stays, `a` lets go, and `b` takes
    // over, finding the earlier attempt's marker.
    let waiter = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || b.access_token("acc"))
    };
    std::thread::sleep(Duration::from_millis(200));
    a.fail_refresh(pending.attempt, TransportError::new(TransportErrorKind::Io, "reset"))
        .unwrap();
    waiter.join().unwrap().unwrap();
    let m = b.metrics();
    assert_eq!(m.lock_waits, 2, "{m:?}");
    assert_eq!(m.lock_takeovers, 1, "{m:?}");
    assert_eq!(m.lost_answer_markers, 1, "{m:?}");
    assert_eq!((m.refreshes_started, m.refreshes_succeeded), (1, 1), "{m:?}");
    let ma = a.metrics();
    assert_eq!((ma.refreshes_started, ma.transport_requests), (1, 1), "{ma:?}");
    assert_eq!(ma.refreshes_failed, vec![(ErrorCode::Transient, 1)], "{ma:?}");
}
