//! Logout that ends the session at the server: `remove_and_revoke` against oidc-provider's
//! RFC 7009 revocation endpoint (the refresh token is refused afterwards), with the network
//! down and then back, across a close and reopen and a rekey, the queue's bound, and dialects
//! without an endpoint (local removal only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenvault::{
    HttpRequest, HttpResponse, HttpsTransport, KeySource, NewSession, Preset, Profile, Transport, TransportError,
    TransportErrorKind, Vault, VaultError, VaultOptions,
};
use tokenvault_testkit::oidc_provider::{OidcConfig, OidcProvider, PUBLIC_CLIENT_ID};
use tokenvault_testkit::{Dialect, ReferenceServer, ServerConfig};
use tokenvault_tests::{profile_for, TEST_KEY};

/// The built-in transport behind a switch: while `down`, every request fails to connect.
#[derive(Debug, Default)]
struct Switch {
    down: AtomicBool,
    refused: AtomicUsize,
}

#[derive(Debug)]
struct SwitchedTransport {
    switch: Arc<Switch>,
    inner: HttpsTransport,
}

impl Transport for SwitchedTransport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        if self.switch.down.load(Ordering::SeqCst) {
            self.switch.refused.fetch_add(1, Ordering::SeqCst);
            return Err(TransportError::new(
                TransportErrorKind::Connect,
                "network down (test switch)",
            ));
        }
        self.inner.send(request)
    }
}

fn open(path: &Path, key: &[u8], op: &OidcProvider, switch: &Arc<Switch>) -> Vault {
    let v = Vault::open(
        path,
        KeySource::raw(key).unwrap(),
        VaultOptions {
            transport: Some(Arc::new(SwitchedTransport {
                switch: Arc::clone(switch),
                inner: HttpsTransport::new(),
            })),
            ..VaultOptions::default()
        },
    )
    .unwrap();
    register(&v, op);
    v
}

fn register(v: &Vault, op: &OidcProvider) {
    v.register_profile(
        Profile::preset(
            Preset::OAuth2,
            "op",
            op.token_endpoint(),
            serde_json::json!({"client_id": PUBLIC_CLIENT_ID, "revocation_url": "/token/revocation"}),
        )
        .unwrap(),
    )
    .unwrap();
}

/// Sign `account` in at the provider and store the session; returns its refresh token.
fn sign_in(v: &Vault, op: &OidcProvider, account: &str) -> String {
    let boot = op.bootstrap(account).unwrap();
    v.store(
        NewSession::new(account, "op", boot.access_token)
            .refresh_credential(boot.refresh_token.clone())
            .expires_in_secs(boot.expires_in as i64),
    )
    .unwrap();
    boot.refresh_token
}

/// Whether the provider still honours `refresh_token` (a refresh with it succeeds).
fn still_valid(op: &OidcProvider, refresh_token: &str) -> bool {
    let (status, _) = op.refresh_raw(refresh_token).unwrap();
    status == 200
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn logout_revokes_the_refresh_token_at_the_server() {
    let op = OidcProvider::start(OidcConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let switch = Arc::new(Switch::default());
    let v = open(&dir.path().join("v.db"), &TEST_KEY, &op, &switch);
    let kept = sign_in(&v, &op, "kept");
    let rt = sign_in(&v, &op, "player");
    assert!(v.remove_and_revoke("player").unwrap());
    // The removal is local and immediate; the revocation goes out in the background.
    assert_eq!(v.session_info("player").unwrap_err(), VaultError::NotFound);
    assert!(wait_until(|| v.pending_revocations().unwrap().pending.is_empty()));
    assert!(!still_valid(&op, &rt), "the revoked refresh token was accepted");
    // Only that session: another one still refreshes.
    assert!(still_valid(&op, &kept));
    // Removing again: nothing to remove, nothing queued.
    assert!(!v.remove_and_revoke("player").unwrap());
    assert_eq!(v.send_revocations().unwrap(), Default::default());
}

#[test]
fn offline_logout_is_queued_and_sent_when_the_network_is_back() {
    let op = OidcProvider::start(OidcConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let switch = Arc::new(Switch::default());
    let v = open(&dir.path().join("v.db"), &TEST_KEY, &op, &switch);
    let rt = sign_in(&v, &op, "player");
    switch.down.store(true, Ordering::SeqCst);
    assert!(v.remove_and_revoke("player").unwrap());
    assert_eq!(v.session_info("player").unwrap_err(), VaultError::NotFound);
    // The background pass tried and failed; the revocation is queued, visible, and counted.
    assert!(wait_until(|| v
        .pending_revocations()
        .unwrap()
        .pending
        .first()
        .is_some_and(|p| p.attempts >= 1)));
    let q = v.pending_revocations().unwrap();
    assert_eq!(q.pending.len(), 1);
    assert_eq!(
        (q.pending[0].account.as_str(), q.pending[0].profile.as_str()),
        ("player", "op")
    );
    assert!(!format!("{q:?}").contains("player"), "Debug shows no account id");
    let r = v.send_revocations().unwrap();
    assert_eq!((r.revoked, r.retry_later), (0, 1));

    switch.down.store(false, Ordering::SeqCst);
    let r = v.send_revocations().unwrap();
    assert_eq!((r.revoked, r.retry_later), (1, 0));
    assert!(v.pending_revocations().unwrap().pending.is_empty());
    assert!(!still_valid(&op, &rt));
}

#[test]
fn a_queued_revocation_survives_close_reopen_and_rekey_and_goes_out_after_the_next_open() {
    let op = OidcProvider::start(OidcConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let switch = Arc::new(Switch::default());
    let v = open(&path, &TEST_KEY, &op, &switch);
    let rt = sign_in(&v, &op, "player");
    // Schema 6: the queue's table exists once something was queued (an open of a vault that
    // never revoked has one schema object fewer to parse).
    let has_queue_table = || -> bool {
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'revocation'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            == 1
    };
    assert!(!has_queue_table(), "a new vault has no revocation table");
    assert!(v.pending_revocations().unwrap().pending.is_empty());
    switch.down.store(true, Ordering::SeqCst);
    assert!(v.remove_and_revoke("player").unwrap());
    assert!(has_queue_table(), "the first queued revocation creates its table");
    assert!(wait_until(|| v.pending_revocations().unwrap().pending[0].attempts >= 1));
    // A rekey re-seals the queue with the new data key.
    let new_key = [0x5a; 32];
    v.rekey(KeySource::raw(&new_key).unwrap()).unwrap();
    v.close().unwrap();
    drop(v);
    assert!(still_valid_without_consuming(&op));

    // Next launch, network back: the pass runs once the profile is registered.
    switch.down.store(false, Ordering::SeqCst);
    let v = open(&path, &new_key, &op, &switch);
    assert!(wait_until(|| v.pending_revocations().unwrap().pending.is_empty()));
    assert!(!still_valid(&op, &rt));
    // The file holds the revocation sealed: no refresh token in clear.
    drop(v);
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.windows(rt.len()).any(|w| w == rt.as_bytes()));
    // The queue is empty again, and the metadata says so: the next open does not read it.
    let waiting: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT revocations_waiting FROM manifest WHERE slot = 1000", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(waiting, 0, "the flag of an empty revocation queue");
}

/// The provider is up (a fresh sign-in works); nothing of the queued token is touched.
fn still_valid_without_consuming(op: &OidcProvider) -> bool {
    op.bootstrap("probe").is_ok()
}

#[test]
fn the_queue_is_bounded_and_counts_what_it_dropped() {
    let op = OidcProvider::start(OidcConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let switch = Arc::new(Switch::default());
    let v = open(&dir.path().join("v.db"), &TEST_KEY, &op, &switch);
    switch.down.store(true, Ordering::SeqCst);
    for i in 0..258 {
        let account = format!("p{i}");
        v.store(NewSession::new(&account, "op", "access").refresh_credential(format!("refresh-{i}")))
            .unwrap();
        assert!(v.remove_and_revoke(&account).unwrap());
    }
    let q = v.pending_revocations().unwrap();
    assert_eq!(q.pending.len(), 256);
    assert_eq!(q.dropped, 2);
    // The oldest went: the first two accounts.
    assert_eq!(q.pending[0].account, "p2");
}

#[test]
fn dialects_without_a_revocation_endpoint_remove_locally_only() {
    let server = ReferenceServer::start(Dialect::SuccessEnvelope, ServerConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::open(
        dir.path().join("v.db"),
        KeySource::raw(&TEST_KEY).unwrap(),
        VaultOptions::default(),
    )
    .unwrap();
    v.register_profile(profile_for(&server, "p", serde_json::json!({})).unwrap())
        .unwrap();
    let t = server.login("player");
    v.store(NewSession::new("player", "p", t.access_token).refresh_credential(t.refresh_credential.clone()))
        .unwrap();
    assert!(v.remove_and_revoke("player").unwrap());
    assert!(v.pending_revocations().unwrap().pending.is_empty());
    assert_eq!(server.stats().refresh_requests, 0);
}

#[test]
fn revocation_urls_stay_on_the_token_endpoints_origin() {
    let ok = |r: &str| {
        Profile::preset(
            Preset::OAuth2,
            "o",
            "https://id.example.com/realms/game/protocol/openid-connect/token",
            serde_json::json!({"client_id": "c", "revocation_url": r}),
        )
        .map(|p| p.revocation_url().map(str::to_owned))
    };
    assert_eq!(
        ok("./revoke").unwrap().as_deref(),
        Some("https://id.example.com/realms/game/protocol/openid-connect/revoke")
    );
    assert_eq!(
        ok("/oauth/revoke").unwrap().as_deref(),
        Some("https://id.example.com/oauth/revoke")
    );
    assert_eq!(
        ok("https://id.example.com/revoke").unwrap().as_deref(),
        Some("https://id.example.com/revoke")
    );
    for bad in [
        "https://evil.example.com/revoke",
        "http://id.example.com/revoke",
        "revoke",
        "https://id.example.com:444/r",
    ] {
        assert!(ok(bad).is_err(), "{bad}");
    }
    // The keycloak preset derives its endpoint from the token URL.
    let kc = Profile::preset(
        Preset::Keycloak,
        "k",
        "https://id.example.com/realms/game/protocol/openid-connect/token",
        serde_json::json!({"client_id": "c"}),
    )
    .unwrap();
    assert_eq!(
        kc.revocation_url(),
        Some("https://id.example.com/realms/game/protocol/openid-connect/revoke")
    );
}

/// The built-in transport, keeping the `token` of every revocation request it sends.
#[derive(Debug, Default)]
struct RecordingTransport {
    inner: HttpsTransport,
    revoked: std::sync::Mutex<Vec<String>>,
}

impl Transport for RecordingTransport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        if request.url.ends_with("/token/revocation") {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            let token = body
                .split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .unwrap_or_default()
                .to_owned();
            self.revoked.lock().unwrap().push(token);
        }
        self.inner.send(request)
    }
}

/// Another vault instance on the same file (another process, in the field) refreshed the session
/// after this instance cached it: the logout revokes the credential the file holds now, not the
/// one this instance cached, which the provider already rotated away (this provider would end
/// the whole grant either way; a server that revokes only the token presented would not).
#[test]
fn logout_revokes_the_credential_in_the_file_not_a_stale_cached_one() {
    let op = OidcProvider::start(OidcConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let recorder = Arc::new(RecordingTransport::default());
    let a = Vault::open(
        &path,
        KeySource::raw(&TEST_KEY).unwrap(),
        VaultOptions {
            transport: Some(Arc::clone(&recorder) as Arc<dyn Transport>),
            ..VaultOptions::default()
        },
    )
    .unwrap();
    register(&a, &op);
    let first = sign_in(&a, &op, "player");
    a.access_token("player").unwrap(); // cached by `a`
    let b = open(&path, &TEST_KEY, &op, &Arc::new(Switch::default()));
    b.force_refresh("player").unwrap();
    let (_, rotated) = b.stored_pair_for_tests("player").unwrap();
    let rotated = rotated.unwrap();
    assert_ne!(rotated, first, "the provider rotates refresh tokens");
    assert!(a.remove_and_revoke("player").unwrap());
    assert!(wait_until(|| a.pending_revocations().unwrap().pending.is_empty()));
    let sent = recorder.revoked.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one revocation request");
    assert!(
        sent[0] == rotated,
        "the revocation carried a credential the provider had already rotated away"
    );
    assert!(
        !still_valid(&op, &rotated),
        "the credential in the file was not revoked"
    );
}

/// A transport whose every request takes `delay` and then fails to connect; it records whether
/// a request is in progress and whether it was dropped (the vault let go of it).
#[derive(Debug)]
struct SlowTransport {
    delay: Duration,
    entered: Arc<AtomicUsize>,
    in_send: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

impl Transport for SlowTransport {
    fn send(&self, _request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self.in_send.store(true, Ordering::SeqCst);
        self.entered.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.in_send.store(false, Ordering::SeqCst);
        Err(TransportError::new(TransportErrorKind::Connect, "slow network (test)"))
    }
}

impl Drop for SlowTransport {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// `close` waits for the background revocation pass: once it returns, the host's transport is
/// not in a call and is not called again, and dropping the vault releases it (a C host's
/// transport `destroy` runs by `tv_vault_free` at the latest, as the C header promises). The
/// revocation stays queued for the next open.
#[test]
fn close_waits_for_the_background_revocation_and_releases_the_transport() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let (entered, in_send, dropped) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let v = Vault::open(
        &path,
        KeySource::raw(&TEST_KEY).unwrap(),
        VaultOptions {
            transport: Some(Arc::new(SlowTransport {
                delay: Duration::from_millis(600),
                entered: Arc::clone(&entered),
                in_send: Arc::clone(&in_send),
                dropped: Arc::clone(&dropped),
            })),
            ..VaultOptions::default()
        },
    )
    .unwrap();
    v.register_profile(
        Profile::preset(
            Preset::OAuth2,
            "op",
            "https://127.0.0.1:9/token",
            serde_json::json!({"client_id": "game", "revocation_url": "/token/revocation"}),
        )
        .unwrap(),
    )
    .unwrap();
    for account in ["a", "b"] {
        v.store(
            NewSession::new(account, "op", "access")
                .refresh_credential(format!("refresh-{account}"))
                .expires_in_secs(3600),
        )
        .unwrap();
    }
    assert!(v.remove_and_revoke("a").unwrap());
    assert!(v.remove_and_revoke("b").unwrap());
    assert!(wait_until(|| entered.load(Ordering::SeqCst) >= 1));
    v.close().unwrap();
    assert!(
        !in_send.load(Ordering::SeqCst),
        "close returned while the transport was in a call"
    );
    let calls = entered.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        entered.load(Ordering::SeqCst),
        calls,
        "the transport was called after close"
    );
    drop(v);
    assert!(
        dropped.load(Ordering::SeqCst),
        "a background thread still holds the transport"
    );
    // Both revocations wait for the next open.
    let v = Vault::open(&path, KeySource::raw(&TEST_KEY).unwrap(), VaultOptions::default()).unwrap();
    assert_eq!(v.pending_revocations().unwrap().pending.len(), 2);
}
