//! The auditor's findings, each on a real vault file (and real servers where a credential could
//! leave): what an attacker who can write the file, restore an old copy, read it, or change the
//! configuration can and cannot do. `docs/SECURITY.md` cites each test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection};
use tokenvault::{
    ErrorCode, KeySource, ManualClock, NewSession, Preset, Profile, StateAnchor, SystemClock, Vault, VaultError,
    VaultOptions,
};
use tokenvault_testkit::{Dialect, ReferenceServer, ServerConfig};
use tokenvault_tests::{login_and_store, open_vault, profile_for, TEST_KEY};

fn profile() -> Profile {
    Profile::preset(
        Preset::OAuth2,
        "p",
        "https://auth.example.test/token",
        serde_json::json!({"client_id": "c"}),
    )
    .unwrap()
}

fn open(path: &Path) -> Vault {
    let v = open_vault(path, SystemClock::shared()).unwrap();
    v.register_profile(profile()).unwrap();
    v
}

fn store(v: &Vault, account: &str, token: &str) {
    v.store(
        NewSession::new(account, "p", token)
            .refresh_credential(format!("refresh-of-{token}"))
            .expires_in(Duration::from_secs(3600)),
    )
    .unwrap();
}

/// A consistent copy of a closed vault (its log was checkpointed into the file on close).
fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

/// Every session row of a file: (account hash, generation, format, nonce, ciphertext).
type Row = (Vec<u8>, i64, i64, Vec<u8>, Vec<u8>);

fn rows(path: &Path) -> Vec<Row> {
    let c = Connection::open(path).unwrap();
    let mut s = c
        .prepare("SELECT account_hash, generation, format, nonce, ciphertext FROM manifest WHERE account_hash IS NOT NULL ORDER BY slot")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn put_row(path: &Path, row: &Row) {
    let c = Connection::open(path).unwrap();
    c.execute(
        "INSERT INTO manifest (slot, account_hash, generation, format, nonce, ciphertext)
         VALUES ((SELECT max(2000, max(slot) + 1) FROM manifest), ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(account_hash) DO UPDATE SET generation = excluded.generation, format = excluded.format,
           nonce = excluded.nonce, ciphertext = excluded.ciphertext",
        params![row.0, row.1, row.2, row.3, row.4],
    )
    .unwrap();
}

fn manifest_slot(path: &Path, slot: i64) -> Option<(i64, Vec<u8>, Vec<u8>)> {
    let c = Connection::open(path).unwrap();
    c.query_row(
        "SELECT version, body, mac FROM manifest WHERE slot = ?1",
        params![slot],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .ok()
}

fn put_manifest_slot(path: &Path, slot: i64, v: &(i64, Vec<u8>, Vec<u8>)) {
    let c = Connection::open(path).unwrap();
    c.execute(
        "INSERT OR REPLACE INTO manifest (slot, version, body, mac) VALUES (?1, ?2, ?3, ?4)",
        params![slot, v.0, v.1, v.2],
    )
    .unwrap();
}

fn code(r: Result<impl Sized, VaultError>) -> Option<ErrorCode> {
    r.err().map(|e| e.code())
}

#[test]
fn an_older_row_copied_back_is_corrupt_for_that_account_only() {
    let dir = tempfile::tempdir().unwrap();
    let (path, old) = (dir.path().join("v.db"), dir.path().join("old.db"));
    drop({
        let v = open(&path);
        store(&v, "alice", "alice-token-1");
        store(&v, "bob", "bob-token-1");
        v
    });
    copy(&path, &old);
    drop({
        let v = open(&path);
        store(&v, "alice", "alice-token-2");
        v
    });
    // Without the key: put alice's older row (valid ciphertext, older generation) back.
    let now = rows(&path);
    for r in rows(&old) {
        if now.iter().any(|n| n.0 == r.0 && n.1 != r.1) {
            put_row(&path, &r);
        }
    }
    let v = open(&path);
    assert_eq!(
        code(v.access_token("alice")),
        Some(ErrorCode::Corrupt),
        "the old token is never served"
    );
    assert_eq!(v.access_token("bob").unwrap().expose(), "bob-token-1");
    assert_eq!(v.list_accounts().unwrap(), vec!["bob".to_owned()]);
    // The host decides: storing a new sign-in repairs the account.
    store(&v, "alice", "alice-token-3");
    assert_eq!(v.access_token("alice").unwrap().expose(), "alice-token-3");
}

#[test]
fn a_removed_session_copied_back_stays_logged_out() {
    let dir = tempfile::tempdir().unwrap();
    let (path, old) = (dir.path().join("v.db"), dir.path().join("old.db"));
    drop({
        let v = open(&path);
        store(&v, "alice", "alice-token-1");
        store(&v, "bob", "bob-token-1");
        v
    });
    copy(&path, &old);
    drop({
        let v = open(&path);
        assert!(v.remove("alice").unwrap());
        v
    });
    let now = rows(&path);
    for r in rows(&old) {
        if !now.iter().any(|n| n.0 == r.0) {
            put_row(&path, &r);
        }
    }
    assert_eq!(rows(&path).len(), 2, "the removed row is back in the file");
    let v = open(&path);
    assert_eq!(code(v.access_token("alice")), Some(ErrorCode::Corrupt));
    assert_eq!(v.list_accounts().unwrap(), vec!["bob".to_owned()]);
}

#[test]
fn a_row_rolled_back_with_its_manifest_bucket_is_still_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, old) = (dir.path().join("v.db"), dir.path().join("old.db"));
    // alice, and a second account in another manifest bucket (the bucket is the first byte of
    // the keyed account hash).
    let other = drop_returning(&path, |v| {
        store(v, "alice", "alice-token-1");
        let alice = rows(&path)[0].0[0];
        (0..)
            .map(|i| format!("bob{i}"))
            .find(|b| {
                store(v, b, "bob-token-1");
                let last = rows(&path).last().unwrap().0[0];
                last != alice || !v.remove(b).unwrap()
            })
            .unwrap()
    });
    copy(&path, &old);
    drop({
        let v = open(&path);
        store(&v, "alice", "alice-token-2");
        store(&v, &other, "bob-token-2");
        v
    });
    let alice_old = rows(&old).into_iter().next().unwrap();
    let bucket = i64::from(alice_old.0[0]);
    // Row and bucket together: the root says the bucket is newer.
    put_row(&path, &alice_old);
    put_manifest_slot(&path, bucket, &manifest_slot(&old, bucket).unwrap());
    {
        let v = open(&path);
        assert_eq!(code(v.access_token("alice")), Some(ErrorCode::Corrupt));
        assert_eq!(v.access_token(&other).unwrap().expose(), "bob-token-2");
    }
    // Row, bucket and root together: the other bucket is newer than the root, so the root
    // itself is stale and nothing it vouches for can be trusted: the open is refused.
    put_manifest_slot(&path, 256, &manifest_slot(&old, 256).unwrap());
    assert_eq!(code(open_vault(&path, SystemClock::shared())), Some(ErrorCode::Corrupt));
}

fn drop_returning<T>(path: &Path, f: impl FnOnce(&Vault) -> T) -> T {
    let v = open(path);
    let t = f(&v);
    drop(v);
    t
}

/// The host's anchor: a counter in a file of its own (the Keychain on iOS).
#[derive(Debug)]
struct FileAnchor(PathBuf, Mutex<u32>);

impl StateAnchor for FileAnchor {
    fn load(&self) -> tokenvault::Result<Option<u64>> {
        Ok(std::fs::read_to_string(&self.0).ok().and_then(|s| s.parse().ok()))
    }
    fn store(&self, counter: u64) -> tokenvault::Result<()> {
        *self.1.lock().unwrap() += 1;
        std::fs::write(&self.0, counter.to_string()).map_err(|_| VaultError::StorageUnavailable {
            reason: "anchor".into(),
        })
    }
}

#[test]
fn a_whole_file_restored_from_an_old_copy_is_refused_with_an_anchor_only() {
    let dir = tempfile::tempdir().unwrap();
    let (path, old) = (dir.path().join("v.db"), dir.path().join("old.db"));
    let anchor = Arc::new(FileAnchor(dir.path().join("anchor"), Mutex::new(0)));
    let with_anchor = || {
        let v = Vault::open(
            &path,
            KeySource::raw(&TEST_KEY).unwrap(),
            VaultOptions {
                anchor: Some(anchor.clone()),
                ..VaultOptions::default()
            },
        )?;
        v.register_profile(profile()).unwrap();
        Ok::<_, VaultError>(v)
    };
    drop({
        let v = with_anchor().unwrap();
        store(&v, "alice", "alice-token-1");
        v
    });
    copy(&path, &old);
    drop({
        let v = with_anchor().unwrap();
        store(&v, "alice", "alice-token-2");
        v
    });
    assert!(
        *anchor.1.lock().unwrap() >= 2,
        "every write hands the counter to the anchor"
    );
    let restored = std::fs::read(&old).unwrap();
    std::fs::write(&path, &restored).unwrap();
    assert_eq!(code(with_anchor()), Some(ErrorCode::Corrupt));
    assert_eq!(std::fs::read(&path).unwrap(), restored, "refused, and nothing written");
    // Without an anchor an old copy of everything is consistent: the limit SECURITY.md states.
    let v = open(&path);
    assert_eq!(v.access_token("alice").unwrap().expose(), "alice-token-1");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn file_and_log(path: &Path) -> Vec<u8> {
    let mut all = std::fs::read(path).unwrap();
    if let Ok(wal) = std::fs::read(format!("{}-wal", path.display())) {
        all.extend_from_slice(&wal);
    }
    all
}

#[test]
fn rekey_replaces_the_data_key_and_leaves_no_old_ciphertext_or_wrapped_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    drop({
        let v = open(&path);
        store(&v, "alice", "alice-token-1");
        store(&v, "bob", "bob-token-1");
        v
    });
    let old_rows = rows(&path);
    let old_wrapped: Vec<u8> = Connection::open(&path)
        .unwrap()
        .query_row("SELECT wrapped_key FROM manifest WHERE slot = 1001", [], |r| r.get(0))
        .unwrap();
    let v = open(&path);
    v.rekey(KeySource::raw(&[0x42; 32]).unwrap()).unwrap();
    // Still open (its log not checkpointed by a close): neither the file nor its -wal holds
    // a byte string of the old state.
    let bytes = file_and_log(&path);
    for r in &old_rows {
        assert!(!contains(&bytes, &r.4[..32]), "an old ciphertext survived the rekey");
        assert!(!contains(&bytes, &r.3), "an old nonce survived the rekey");
    }
    assert!(
        !contains(&bytes, &old_wrapped),
        "the old wrapped key survived the rekey"
    );
    assert_eq!(v.access_token("alice").unwrap().expose(), "alice-token-1");
    assert!(v.remove("bob").unwrap());
    drop(v);
    let v = Vault::open(&path, KeySource::raw(&[0x42; 32]).unwrap(), VaultOptions::default()).unwrap();
    v.register_profile(profile()).unwrap();
    assert_eq!(v.access_token("alice").unwrap().expose(), "alice-token-1");
    assert_eq!(code(v.access_token("bob")), Some(ErrorCode::NotFound));
}

#[test]
fn a_crash_on_either_side_of_a_rekey_never_locks_the_host_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let k2 = [0x22u8; 32];
    let k3 = [0x33u8; 32];
    let open_with = |k: &[u8]| Vault::open(&path, KeySource::raw(k).unwrap(), VaultOptions::default());
    drop({
        let v = open(&path);
        store(&v, "alice", "alice-token-1");
        v
    });
    // The host saved k2 but crashed before rekey: the vault is still under the old key, which
    // the documented sequence keeps until the rekey returns.
    assert_eq!(code(open_with(&k2)), Some(ErrorCode::WrongKey));
    // rekey returned, then the host crashed before saving k2: the old key still opens.
    drop({
        let v = open_with(&TEST_KEY).unwrap();
        v.rekey(KeySource::raw(&k2).unwrap()).unwrap();
        v
    });
    let v = open_with(&TEST_KEY).unwrap();
    v.register_profile(profile()).unwrap();
    assert_eq!(v.access_token("alice").unwrap().expose(), "alice-token-1");
    // ... and can finish the rotation with a fresh key.
    v.rekey(KeySource::raw(&k3).unwrap()).unwrap();
    drop(v);
    drop(open_with(&k3).unwrap());
    // Confirmed by the first open with k3: the other keys open nothing any more.
    assert_eq!(code(open_with(&TEST_KEY)), Some(ErrorCode::WrongKey));
    assert_eq!(code(open_with(&k2)), Some(ErrorCode::WrongKey));
    let slots: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM manifest WHERE slot IN (1001, 1002)", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(slots, 1);
}

#[test]
fn another_handle_learns_of_a_rekey_as_wrong_key_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let a = open(&path);
    store(&a, "alice", "alice-token-1");
    let b = open(&path);
    b.rekey(KeySource::raw(&[0x55; 32]).unwrap()).unwrap();
    assert_eq!(code(a.remove("alice")), Some(ErrorCode::WrongKey));
    assert_eq!(b.access_token("alice").unwrap().expose(), "alice-token-1");
}

#[cfg(unix)]
#[test]
fn files_are_created_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    // SAFETY: umask only changes this process's file-creation mask; restored below.
    let before = unsafe { libc::umask(0) };
    let v = open(&path);
    store(&v, "alice", "alice-token-1");
    let _ = v.force_refresh("alice"); // creates the account's lock file (the request fails)
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut checked = vec![
        (path.clone(), 0o600),
        (PathBuf::from(format!("{}-wal", path.display())), 0o600),
        (PathBuf::from(format!("{}-shm", path.display())), 0o600),
        (dir.path().join("v.db-locks"), 0o700),
    ];
    for e in std::fs::read_dir(dir.path().join("v.db-locks")).unwrap() {
        checked.push((e.unwrap().path(), 0o600));
    }
    // SAFETY: as above.
    unsafe { libc::umask(before) };
    assert!(checked.len() >= 5, "a lock file exists: {checked:?}");
    for (p, want) in checked {
        assert_eq!(mode(&p), want, "{}", p.display());
    }
}

#[test]
fn a_tampered_key_derivation_cost_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    drop(Vault::open(&path, KeySource::passphrase("pass").unwrap(), VaultOptions::default()).unwrap());
    let c = Connection::open(&path).unwrap();
    c.execute(
        "UPDATE manifest SET kdf_m_kib = 1048576, kdf_t = 64 WHERE slot = 1001",
        [],
    )
    .unwrap();
    drop(c);
    let before = std::fs::read(&path).unwrap();
    let err = Vault::open(&path, KeySource::passphrase("pass").unwrap(), VaultOptions::default()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Corrupt, "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn ciphertext_length_does_not_tell_token_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    drop({
        let v = open(&path);
        // A short opaque token and a typical JWT: one size in the file.
        store(&v, "a", &"x".repeat(40));
        store(&v, "b", &"y".repeat(700));
        v
    });
    let r = rows(&path);
    assert_eq!(r[0].4.len(), r[1].4.len());
}

#[test]
fn a_session_is_refreshed_only_at_the_origin_it_was_stored_with() {
    let a = ReferenceServer::start(Dialect::SuccessEnvelope, ServerConfig::default()).unwrap();
    let b = ReferenceServer::start(Dialect::SuccessEnvelope, ServerConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let v = open_vault(&dir.path().join("v.db"), clock.clone()).unwrap();
    v.register_profile(profile_for(&a, "p", serde_json::json!({})).unwrap())
        .unwrap();
    login_and_store(&v, &a, "player", "p").unwrap();
    // A configuration change (a mistake, or a hostile one) points the profile elsewhere.
    v.register_profile(profile_for(&b, "p", serde_json::json!({})).unwrap())
        .unwrap();
    clock.advance(Duration::from_secs(61));
    let err = v.access_token("player").unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
    assert_eq!(code(v.begin_refresh("player", true)), Some(ErrorCode::InvalidInput));
    assert_eq!(b.stats().refresh_requests, 0, "nothing was sent to the new origin");
    assert_eq!(a.stats().refresh_requests, 0);
    // The host moves the session explicitly: from then on its credential goes to b.
    v.move_session("player", "p").unwrap();
    let _ = v.access_token("player");
    assert_eq!(b.stats().refresh_requests, 1);
}

#[test]
fn an_anchor_that_outlived_its_file_starts_again_with_a_new_vault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let anchor = Arc::new(FileAnchor(dir.path().join("anchor"), Mutex::new(0)));
    std::fs::write(&anchor.0, "1000").unwrap();
    let open = || {
        Vault::open(
            &path,
            KeySource::raw(&TEST_KEY).unwrap(),
            VaultOptions {
                anchor: Some(anchor.clone()),
                ..VaultOptions::default()
            },
        )
    };
    drop(open().unwrap());
    let now: u64 = std::fs::read_to_string(&anchor.0).unwrap().parse().unwrap();
    assert!(now < 1000, "reset to the new vault's counter: {now}");
    drop(open().unwrap());
}
