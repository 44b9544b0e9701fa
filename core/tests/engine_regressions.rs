//! Regression tests for defects found from outside in the first release's refresh engine, each
//! on a real file: a lost-answer verdict that changed its code after a restart, a generation
//! that could go backwards in memory, and leases that a clock jump could defeat.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenvault::{
    ErrorCode, HttpRequest, HttpResponse, KeySource, ManualClock, NewSession, Preset, Profile, RefreshStep, Transport,
    TransportError, TransportErrorKind, Vault, VaultError, VaultOptions,
};

const KEY: [u8; 32] = [3; 32];
const ACCOUNT: &str = "player-7";

fn profile(timeout_ms: u64) -> Profile {
    Profile::preset(
        Preset::OAuth2,
        "backend",
        "http://127.0.0.1:9/token",
        serde_json::json!({"client_id": "game", "timeout_ms": timeout_ms}),
    )
    .unwrap()
}

fn open_with(path: &Path, clock: Arc<ManualClock>, timeout_ms: u64) -> Vault {
    let v = Vault::open(
        path,
        KeySource::raw(&KEY).unwrap(),
        VaultOptions {
            clock,
            ..VaultOptions::default()
        },
    )
    .unwrap();
    v.register_profile(profile(timeout_ms)).unwrap();
    v
}

fn open(path: &Path, clock: Arc<ManualClock>) -> Vault {
    open_with(path, clock, 30_000)
}

fn sign_in(v: &Vault) {
    v.store(
        NewSession::new(ACCOUNT, "backend", "access-0")
            .refresh_credential("refresh-0")
            .expires_in(Duration::from_secs(300)),
    )
    .unwrap();
}

fn send(v: &Vault, force: bool) -> tokenvault::PendingRefresh {
    match v.begin_refresh(ACCOUNT, force).unwrap() {
        RefreshStep::Send(p) => p,
        other => panic!("expected a request to send, got {other:?}"),
    }
}

fn rotated(n: u32) -> HttpResponse {
    HttpResponse::new(
        200,
        vec![("Content-Type".into(), "application/json".into())],
        format!(r#"{{"access_token":"access-{n}","expires_in":300,"refresh_token":"refresh-{n}"}}"#).into_bytes(),
    )
}

fn invalid_grant() -> HttpResponse {
    HttpResponse::new(400, vec![], br#"{"error":"invalid_grant"}"#.to_vec())
}

fn timeout() -> TransportError {
    TransportError::new(TransportErrorKind::Timeout, "no answer")
}

/// Defect 1: after a lost answer, the refusal is code 12 for every later call, every instance,
/// and every process that opens the file later, with one message (no repeated prefix).
#[test]
fn a_lost_answer_verdict_keeps_its_code_and_message_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let clock = ManualClock::new();
    let v = open(&path, clock.clone());
    sign_in(&v);
    let p = send(&v, true);
    assert_eq!(
        v.fail_refresh(p.attempt, timeout()).unwrap_err().code(),
        ErrorCode::Transient
    );
    let p = send(&v, true);
    let verdict = v.finish_refresh(p.attempt, invalid_grant()).unwrap_err();
    assert_eq!(verdict.code(), ErrorCode::RefreshOutcomeUnknown, "{verdict}");
    let message = verdict.to_string();
    assert_eq!(message.matches("unknown").count(), 1, "{message}");

    let same = |e: VaultError| {
        assert_eq!((e.code(), e.to_string()), (verdict.code(), message.clone()));
    };
    same(v.force_refresh(ACCOUNT).unwrap_err());
    same(v.begin_refresh(ACCOUNT, true).unwrap_err());
    // Another instance on the file (another process), then the file reopened after a restart.
    let peer = open(&path, ManualClock::new());
    same(peer.force_refresh(ACCOUNT).unwrap_err());
    drop((v, peer));
    let later_clock = ManualClock::new();
    let reopened = open(&path, later_clock.clone());
    same(reopened.force_refresh(ACCOUNT).unwrap_err());
    later_clock.advance(Duration::from_secs(600));
    same(reopened.access_token(ACCOUNT).unwrap_err());
    // Only a new sign-in clears it.
    sign_in(&reopened);
    assert_eq!(reopened.access_token(ACCOUNT).unwrap().expose(), "access-0");
}

/// Defect 2: a vault never serves an older generation than one it served; a file that holds one
/// (an old row written back) is `Corrupt` for that account.
#[test]
fn an_older_generation_in_the_file_is_corrupt_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let v = open(&path, ManualClock::new());
    sign_in(&v);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let old: (i64, Vec<u8>, Vec<u8>) = raw
        .query_row(
            "SELECT generation, nonce, ciphertext FROM manifest WHERE account_hash IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let p = send(&v, true);
    let t = v.finish_refresh(p.attempt, rotated(1)).unwrap();
    assert_eq!(t.expose(), "access-1");
    raw.execute(
        "UPDATE manifest SET generation = ?1, nonce = ?2, ciphertext = ?3 WHERE account_hash IS NOT NULL",
        rusqlite::params![old.0, old.1, old.2],
    )
    .unwrap();
    let e = v.report_rejected(ACCOUNT, "access-1").unwrap_err();
    assert_eq!(e.code(), ErrorCode::Corrupt, "{e}");
    assert_eq!(v.begin_refresh(ACCOUNT, true).unwrap_err().code(), ErrorCode::Corrupt);
}

#[derive(Debug, Default)]
struct Counting(AtomicUsize);

impl Transport for Counting {
    fn send(&self, _request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(rotated(99))
    }
}

/// Defect 3: liveness comes from the OS lock, not wall clocks. While one instance waits for an
/// answer, another whose device clock is 2 h ahead (or behind) never sends the same credential;
/// a blocking caller waits at most until its own deadline, then serves the still-usable token
/// (or `Transient` when forced) — and once the holder dies, the next attempt knows the
/// credential may have been consumed.
#[test]
fn a_clock_jump_never_lets_a_second_request_carry_the_same_credential() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let a = open(&path, ManualClock::new());
    sign_in(&a);
    let held = send(&a, true);

    for jump_h in [2i64, -2, 48] {
        let clock = ManualClock::new();
        clock.shift_wall(jump_h * 3_600_000);
        let b = open_with(&path, clock.clone(), 100);
        assert!(
            matches!(b.begin_refresh(ACCOUNT, true).unwrap(), RefreshStep::InFlight),
            "a peer with a clock {jump_h:+} h off took over a live refresh"
        );
        if jump_h != -2 {
            continue;
        }
        // The blocking path (once: each wait lasts the deadline): waits for the holder until its
        // own deadline (100 ms timeout plus the grace), sends nothing, answers without the server.
        let counting = Arc::new(Counting::default());
        b.set_transport(Some(counting.clone())).unwrap();
        let started = Instant::now();
        let forced = b.force_refresh(ACCOUNT).unwrap_err();
        assert_eq!(forced.code(), ErrorCode::Transient, "{forced}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the waiter had no deadline"
        );
        // A read still gets the usable token (this device sees it valid) and sends nothing.
        clock.advance(Duration::from_secs(250));
        assert_eq!(b.access_token(ACCOUNT).unwrap().expose(), "access-0");
        assert_eq!(counting.0.load(Ordering::SeqCst), 0, "a second request was sent");
    }

    // The holder dies with its request unanswered: the kernel releases the lock, and the next
    // attempt knows the credential may have been consumed.
    drop(held);
    drop(a);
    let c = open(&path, ManualClock::new());
    let p = send(&c, true);
    let e = c.finish_refresh(p.attempt, invalid_grant()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::RefreshOutcomeUnknown, "{e}");
}

/// The rules of a closed vault and of `expires_in = 0` are the core's, so every surface agrees.
#[test]
fn closed_vaults_refuse_configuration_and_zero_expiry_means_not_given() {
    let dir = tempfile::tempdir().unwrap();
    let v = open(&dir.path().join("v.db"), ManualClock::new());
    let info = v
        .store(
            NewSession::new(ACCOUNT, "backend", "access-0")
                .refresh_credential("refresh-0")
                .expires_in_secs(0),
        )
        .unwrap();
    // Not "already expired": the profile's default lifetime applies.
    assert!(info.access_remaining_ms > 60_000, "{info:?}");
    v.close().unwrap();
    assert_eq!(
        v.set_transport(Some(Arc::new(Counting::default()))).unwrap_err(),
        VaultError::Closed
    );
    assert_eq!(v.set_observer(None).unwrap_err(), VaultError::Closed);
}

/// A row the file must hold that is missing is `Corrupt`, never `NotFound` (which a host reads as
/// "signed out").
#[test]
fn a_missing_metadata_row_is_corrupt_not_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let v = open(&path, ManualClock::new());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM manifest WHERE slot = 1000", [])
        .unwrap();
    // A store needs only the authenticated manifest; a removal and an open need the row.
    v.store(NewSession::new(ACCOUNT, "backend", "access-0").refresh_credential("refresh-0"))
        .unwrap();
    let e = v.remove(ACCOUNT).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Corrupt, "{e}");
    assert_eq!(v.session_count().unwrap(), 1, "nothing was removed");
    drop(v);
    let e = Vault::open(&path, KeySource::raw(&KEY).unwrap(), VaultOptions::default()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Corrupt, "{e}");
}
