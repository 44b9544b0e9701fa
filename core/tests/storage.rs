//! The vault core against real SQLite files: keys, tampering, row swaps, schema versions,
//! the golden file of schema v1, visibility across connections (durability of the vault's own
//! connection is in `durability.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokenvault::{ErrorCode, KeySource, NewSession, Preset, Profile, SessionState, Vault, VaultError, VaultOptions};

const KEY: [u8; 32] = [0x42; 32];

fn profile() -> Profile {
    Profile::preset(
        Preset::OAuth2,
        "backend",
        "https://auth.example.test/token",
        serde_json::json!({"client_id": "game"}),
    )
    .unwrap()
}

fn open(path: &Path, key: &[u8]) -> Result<Vault, VaultError> {
    let v = Vault::open(path, KeySource::raw(key)?, VaultOptions::default())?;
    v.register_profile(profile())?;
    Ok(v)
}

fn session(account: &str, token: &str) -> NewSession {
    NewSession::new(account, "backend", token)
        .refresh_credential(format!("refresh-of-{token}"))
        .expires_in(Duration::from_secs(3600))
        .token_type("Bearer")
        .scope("openid offline_access")
        .hint("display_name", "Alice the Brave")
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// The committed golden file of schema `version`.
fn golden_path(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/data/vault-v{version}.db"))
}

/// A copy of the golden file of schema `version` in a new temporary directory (kept alive by
/// the returned guard): tests open and migrate the copy, never the committed file.
fn golden_copy(version: u32) -> (tempfile::TempDir, PathBuf) {
    let golden = golden_path(version);
    assert!(
        golden.exists(),
        "the committed schema-v{version} file is missing: {}",
        golden.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.db");
    std::fs::copy(&golden, &path).unwrap();
    (dir, path)
}

#[test]
fn store_read_close_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    {
        let v = open(&path, &KEY).unwrap();
        let info = v.store(session("alice", "tok-A1")).unwrap();
        assert_eq!(info.state, SessionState::Fresh);
        assert!(info.generation >= 1);
        assert_eq!(v.access_token("alice").unwrap().expose(), "tok-A1");
        v.close().unwrap();
        assert_eq!(v.access_token("alice").unwrap_err(), VaultError::Closed);
    }
    let v = open(&path, &KEY).unwrap();
    let t = v.access_token("alice").unwrap();
    assert_eq!(t.expose(), "tok-A1");
    let info = v.session_info("alice").unwrap();
    assert_eq!(
        info.hints.get("display_name").map(String::as_str),
        Some("Alice the Brave")
    );
    assert_eq!(info.scope.as_deref(), Some("openid offline_access"));
    assert!(info.access_remaining_ms > 3_500_000 && info.access_remaining_ms <= 3_600_000);
    assert_eq!(v.access_token("nobody").unwrap_err(), VaultError::NotFound);
}

#[test]
fn wrong_key_is_detected_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    {
        let v = open(&path, &KEY).unwrap();
        v.store(session("alice", "tok-A1")).unwrap();
    }
    assert!(!dir.path().join("v.db-wal").exists(), "a clean close leaves no WAL");
    let before = file_bytes(&path);
    let err = open(&path, &[0x43; 32]).unwrap_err();
    assert_eq!(err, VaultError::WrongKey);
    assert_eq!(err.code(), ErrorCode::WrongKey);
    let err = Vault::open(&path, KeySource::passphrase("guess").unwrap(), VaultOptions::default()).unwrap_err();
    assert_eq!(err, VaultError::WrongKey);
    assert_eq!(file_bytes(&path), before, "the file is byte-for-byte unchanged");
    // And it still opens with the right key afterwards.
    assert_eq!(
        open(&path, &KEY).unwrap().access_token("alice").unwrap().expose(),
        "tok-A1"
    );
}

#[test]
fn passphrase_vault_and_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    {
        let v = Vault::open(
            &path,
            KeySource::passphrase("correct horse battery staple").unwrap(),
            VaultOptions::default(),
        )
        .unwrap();
        v.register_profile(profile()).unwrap();
        v.store(session("alice", "tok-A1")).unwrap();
        // Rekey to a raw key: a new data key, the record re-sealed, the session untouched.
        v.rekey(KeySource::raw(&KEY).unwrap()).unwrap();
        assert_eq!(v.access_token("alice").unwrap().expose(), "tok-A1");
    }
    // The first open with the new key confirms it; from then on the old key opens nothing.
    drop(open(&path, &KEY).unwrap());
    assert_eq!(
        Vault::open(
            &path,
            KeySource::passphrase("correct horse battery staple").unwrap(),
            VaultOptions::default()
        )
        .unwrap_err(),
        VaultError::WrongKey
    );
    let v = open(&path, &KEY).unwrap();
    assert_eq!(v.access_token("alice").unwrap().expose(), "tok-A1");
    v.rekey(KeySource::passphrase("new passphrase").unwrap()).unwrap();
    drop(v);
    // Not confirmed yet: a host that crashed before saving the new key still opens.
    drop(open(&path, &KEY).unwrap());
    drop(
        Vault::open(
            &path,
            KeySource::passphrase("new passphrase").unwrap(),
            VaultOptions::default(),
        )
        .unwrap(),
    );
    assert_eq!(open(&path, &KEY).unwrap_err(), VaultError::WrongKey);
    let v = Vault::open(
        &path,
        KeySource::passphrase("new passphrase").unwrap(),
        VaultOptions::default(),
    )
    .unwrap();
    assert_eq!(v.access_token("alice").unwrap().expose(), "tok-A1");
}

fn with_db<T>(path: &Path, f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
    let c = rusqlite::Connection::open(path).unwrap();
    f(&c)
}

#[test]
fn a_flipped_byte_is_a_typed_corrupt_error_never_an_altered_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    {
        let v = open(&path, &KEY).unwrap();
        v.store(session("alice", "tok-A1")).unwrap();
        v.store(session("bob", "tok-B1")).unwrap();
    }
    let rows: Vec<(Vec<u8>, Vec<u8>)> = with_db(&path, |c| {
        c.prepare("SELECT account_hash, ciphertext FROM manifest WHERE account_hash IS NOT NULL")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    });
    assert_eq!(rows.len(), 2);
    // The account id is nowhere in the file.
    let all = file_bytes(&path);
    for needle in [&b"alice"[..], b"tok-A1", b"refresh-of", b"Alice the Brave", b"backend"] {
        assert!(
            !all.windows(needle.len()).any(|w| w == needle),
            "{:?} found in clear",
            String::from_utf8_lossy(needle)
        );
    }
    // Flip one byte of every position of the first row's ciphertext, one at a time.
    let (hash, ct) = rows[0].clone();
    for i in 0..ct.len() {
        let mut bad = ct.clone();
        bad[i] ^= 0x01;
        with_db(&path, |c| {
            c.execute(
                "UPDATE manifest SET ciphertext = ?1 WHERE account_hash = ?2",
                rusqlite::params![bad, hash],
            )
            .unwrap()
        });
        let v = open(&path, &KEY).unwrap();
        let a = v.access_token("alice");
        let b = v.access_token("bob");
        // Exactly one of the two rows is damaged; it fails typed, the other reads fine.
        let (damaged, intact, intact_tok) = if a.is_err() { (a, b, "tok-B1") } else { (b, a, "tok-A1") };
        assert_eq!(damaged.unwrap_err().code(), ErrorCode::Corrupt, "byte {i}");
        assert_eq!(intact.unwrap().expose(), intact_tok);
        assert_eq!(v.list_accounts().unwrap().len(), 1);
    }
    // Restore: everything readable again, nothing was deleted.
    with_db(&path, |c| {
        c.execute(
            "UPDATE manifest SET ciphertext = ?1 WHERE account_hash = ?2",
            rusqlite::params![ct, hash],
        )
        .unwrap()
    });
    let v = open(&path, &KEY).unwrap();
    assert_eq!(v.list_accounts().unwrap(), ["alice", "bob"]);
}

#[test]
fn a_row_moved_to_another_account_fails_to_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let (ha, hb) = {
        let v = open(&path, &KEY).unwrap();
        v.store(session("alice", "tok-A1")).unwrap();
        v.store(session("bob", "tok-B1")).unwrap();
        drop(v);
        let hashes = blobs(
            &path,
            "SELECT account_hash FROM manifest WHERE account_hash IS NOT NULL",
        );
        (hashes[0].clone(), hashes[1].clone())
    };
    // Copy row B's whole content (generation, nonce, ciphertext) over row A.
    with_db(&path, |c| {
        c.execute(
            "UPDATE manifest SET (generation, format, nonce, ciphertext) = (SELECT generation, format, nonce, ciphertext FROM manifest WHERE account_hash = ?2) WHERE account_hash = ?1",
            rusqlite::params![ha, hb],
        )
        .unwrap();
    });
    let v = open(&path, &KEY).unwrap();
    let results = [v.access_token("alice"), v.access_token("bob")];
    assert_eq!(
        results
            .iter()
            .filter(|r| r.as_ref().is_err_and(|e| e.code() == ErrorCode::Corrupt))
            .count(),
        1
    );
    // Neither account ever reads the other's token.
    if let Ok(t) = v.access_token("alice") {
        assert_eq!(t.expose(), "tok-A1");
    }
    // A generation rolled back in the clear column is detected too.
    with_db(&path, |c| {
        c.execute(
            "UPDATE manifest SET generation = generation + 100 WHERE account_hash = ?1",
            rusqlite::params![hb],
        )
        .unwrap()
    });
    let v = open(&path, &KEY).unwrap();
    assert_eq!(v.access_token("bob").unwrap_err().code(), ErrorCode::Corrupt);
}

#[test]
fn a_newer_schema_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    drop(open(&path, &KEY).unwrap());
    with_db(&path, |c| c.execute_batch("PRAGMA user_version = 99;").unwrap());
    let before = file_bytes(&path);
    let err = open(&path, &KEY).unwrap_err();
    assert_eq!(
        err,
        VaultError::SchemaTooNew {
            found: 99,
            supported: tokenvault::SCHEMA_VERSION
        }
    );
    assert_eq!(err.code(), ErrorCode::SchemaTooNew);
    assert_eq!(file_bytes(&path), before);
}

#[test]
fn foreign_and_garbage_files_are_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0xA5u8; 8192]).unwrap();
    assert_eq!(open(&garbage, &KEY).unwrap_err().code(), ErrorCode::Corrupt);
    assert_eq!(file_bytes(&garbage), vec![0xA5u8; 8192]);

    let foreign = dir.path().join("foreign.db");
    with_db(&foreign, |c| {
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap()
    });
    let before = file_bytes(&foreign);
    assert_eq!(open(&foreign, &KEY).unwrap_err().code(), ErrorCode::Corrupt);
    assert_eq!(file_bytes(&foreign), before);

    let missing_dir = dir.path().join("no/such/dir/v.db");
    let e = open(&missing_dir, &KEY).unwrap_err();
    assert_eq!(e.code(), ErrorCode::StorageUnavailable);
    assert!(e.to_string().contains("folder of the vault file does not exist"), "{e}");
}

#[test]
fn golden_v1_file_opens_with_every_later_version() {
    let (_dir, path) = golden_copy(1);
    let v = open(&path, &KEY).unwrap();
    assert_eq!(v.list_accounts().unwrap(), ["golden-alice", "golden-bob"]);
    let info = v.session_info("golden-alice").unwrap();
    assert_eq!(info.profile, "backend");
    assert_eq!(info.hints.get("display_name").map(String::as_str), Some("Golden Alice"));
    assert!(info.has_refresh_credential);
    // Its tokens lived one second (it was written in November 2026); reading them needs a refresh, which
    // fails here (no such server) but must not damage or delete anything.
    assert_eq!(info.state, SessionState::Expired);
    assert!(v.check_integrity().unwrap());
    // A vault at a newer version can still write to it.
    v.store(session("golden-carol", "tok-C1")).unwrap();
    assert_eq!(v.list_accounts().unwrap().len(), 3);
    drop(v);
    // The migration to schema 2 moved the key into slot 1 and built the manifest over both
    // sessions, in the same transaction; schema 3 added the revocation queue and the key-set
    // cache; schema 4 moved the lost-answer markers into the refresh-lock files; schema 5 moved
    // the key slots and the metadata into the manifest's table.
    let (version, slots, buckets) = with_db(&path, |c| {
        (
            c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap(),
            c.query_row("SELECT count(*) FROM manifest WHERE slot IN (1001, 1002)", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap(),
            c.query_row("SELECT count(*) FROM manifest WHERE slot < 256", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap(),
        )
    });
    assert_eq!((version, slots), (tokenvault::SCHEMA_VERSION, 1));
    assert_eq!(tables(&path, "refresh_marker"), 0, "the marker table was not dropped");
    assert!((1..=3).contains(&buckets), "{buckets}");
    // Both empty, so schema 6 dropped them.
    assert_eq!(tables(&path, "revocation"), 0);
    assert_eq!(tables(&path, "jwks"), 0);
}

/// How many tables named `name` the file has.
fn tables(path: &Path, name: &str) -> i64 {
    with_db(path, |c| {
        c.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
    })
}

/// The first column of every row of `sql`, as blobs (account hashes, in the tests below).
fn blobs(path: &Path, sql: &str) -> Vec<Vec<u8>> {
    with_db(path, |c| {
        c.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    })
}

fn count(path: &Path, table: &str) -> i64 {
    with_db(path, |c| {
        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    })
}

#[test]
fn golden_v2_file_migrates_and_refuses_a_row_it_does_not_vouch_for() {
    let (_dir, path) = golden_copy(2);
    let v = open(&path, &KEY).unwrap();
    let version = with_db(&path, |c| {
        c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).unwrap()
    });
    assert_eq!(version, tokenvault::SCHEMA_VERSION);
    assert_eq!(tables(&path, "revocation"), 0, "an empty queue's table is dropped");
    assert_eq!(v.list_accounts().unwrap(), ["golden-alice", "golden-bob"]);
    let info = v.session_info("golden-alice").unwrap();
    assert_eq!(info.hints.get("display_name").map(String::as_str), Some("Golden Alice"));
    drop(v);
    // A row whose generation the manifest does not vouch for is refused.
    with_db(&path, |c| {
        c.execute(
            "UPDATE manifest SET generation = generation + 1 WHERE account_hash IS NOT NULL",
            [],
        )
        .unwrap();
    });
    let v = open(&path, &KEY).unwrap();
    assert_eq!(v.session_info("golden-alice").unwrap_err().code(), ErrorCode::Corrupt);
}

/// A copy of the committed golden file of schema `version` opens with this code (migrating it),
/// and its sessions read back.
fn golden_file_opens(version: u32) {
    let (_dir, path) = golden_copy(version);
    golden_file_opens_at(&path);
}

fn golden_file_opens_at(path: &Path) {
    let v = open(path, &KEY).unwrap();
    assert_eq!(v.list_accounts().unwrap(), ["golden-alice", "golden-bob"]);
    let info = v.session_info("golden-bob").unwrap();
    assert!(info.has_refresh_credential);
    assert!(v.check_integrity().unwrap());
}

#[test]
fn golden_v3_file_opens() {
    golden_file_opens(3);
}

/// Schema 3 kept the lost-answer markers in the vault file; the step to schema 4 carries the
/// ones that still matter (their generation is the row's) into the refresh-lock files, drops
/// the table, and a stale one is not carried.
#[test]
fn golden_v3_markers_move_into_the_lock_files() {
    let (_dir, path) = golden_copy(3);
    // What a schema-3 vault wrote before a request that lost its answer (bob), and a finished
    // one (alice: the marker of an older generation).
    with_db(&path, |c| {
        c.execute_batch(
            "INSERT INTO refresh_marker (account_hash, generation, credential_hash)
               SELECT account_hash, generation, zeroblob(16) FROM sessions WHERE rowid = (SELECT max(rowid) FROM sessions);
             INSERT INTO refresh_marker (account_hash, generation, credential_hash)
               SELECT account_hash, generation - 1, zeroblob(16) FROM sessions WHERE rowid = (SELECT min(rowid) FROM sessions);",
        )
        .unwrap()
    });
    let before = tokenvault::check_file(&path).unwrap();
    assert_eq!((before.schema_version, before.lost_answer_markers), (Some(3), Some(1)));
    let v = open(&path, &KEY).unwrap();
    assert_eq!(tables(&path, "refresh_marker"), 0, "the marker table was not dropped");
    let states: Vec<_> = ["golden-alice", "golden-bob"]
        .iter()
        .map(|a| v.lease_state(a).unwrap())
        .collect();
    assert_eq!(
        states,
        [tokenvault::LeaseState::Idle, tokenvault::LeaseState::AnswerLost]
    );
    drop(v);
    let after = tokenvault::check_file(&path).unwrap();
    assert_eq!(
        (after.schema_version, after.lost_answer_markers),
        (Some(tokenvault::SCHEMA_VERSION), Some(1))
    );
}

#[test]
fn golden_v4_file_opens() {
    golden_file_opens(4);
}

#[test]
fn golden_v5_file_opens() {
    golden_file_opens(5);
}

#[test]
fn golden_v6_file_opens() {
    golden_file_opens(6);
}

#[test]
fn golden_v7_file_opens() {
    golden_file_opens(7);
}

/// Schema 7 moves the session rows into the manifest's table, after every other kind of row
/// (slots from 2000), with a unique index on the account hash; the sessions table goes.
#[test]
fn golden_v6_sessions_move_into_the_manifest_table() {
    let (_dir, path) = golden_copy(6);
    let hashes_before = blobs(&path, "SELECT account_hash FROM sessions ORDER BY account_hash");
    assert_eq!(hashes_before.len(), 2);
    drop(open(&path, &KEY).unwrap());
    assert_eq!(tables(&path, "sessions"), 0, "the sessions table was not dropped");
    let hashes_after = blobs(
        &path,
        "SELECT account_hash FROM manifest WHERE account_hash IS NOT NULL ORDER BY account_hash",
    );
    let (min_slot, index) = with_db(&path, |c| {
        let min_slot: i64 = c
            .query_row(
                "SELECT min(slot) FROM manifest WHERE account_hash IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let index: String = c
            .query_row("SELECT sql FROM sqlite_schema WHERE type = 'index'", [], |r| r.get(0))
            .unwrap();
        (min_slot, index)
    });
    assert_eq!(hashes_after, hashes_before);
    assert!(min_slot > 2000, "{min_slot}");
    assert!(index.contains("UNIQUE") && index.contains("account_hash"), "{index}");
    golden_file_opens_at(&path);
}

/// Schema 7 keeps every kind of row in one table: a session row with a column missing, or a
/// session's row moved onto a row of another kind (the metadata row), reads as `Corrupt` for
/// that account, is never served, listed or removed as a session; the other account still
/// reads.
#[test]
fn a_session_row_of_the_wrong_shape_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    {
        let v = open(&path, &KEY).unwrap();
        v.store(session("alice", "tok-A1")).unwrap();
        v.store(session("bob", "tok-B1")).unwrap();
    }
    let hashes = blobs(
        &path,
        "SELECT account_hash FROM manifest WHERE account_hash IS NOT NULL ORDER BY slot",
    );
    let (alice, bob) = (hashes[0].clone(), hashes[1].clone());
    with_db(&path, |c| {
        c.execute("UPDATE manifest SET nonce = NULL WHERE account_hash = ?1", [&alice])
            .unwrap()
    });
    let v = open(&path, &KEY).unwrap();
    assert_eq!(v.access_token("alice").unwrap_err().code(), ErrorCode::Corrupt);
    assert_eq!(v.access_token("bob").unwrap().expose(), "tok-B1");
    drop(v);
    // Bob's whole row moves onto the metadata row (slot 1000): the record itself is intact
    // (its sealing does not bind the slot), only its place is wrong.
    with_db(&path, |c| {
        c.execute_batch("CREATE TEMP TABLE bob AS SELECT * FROM manifest WHERE slot >= 2000")
            .unwrap();
        c.execute("DELETE FROM temp.bob WHERE account_hash != ?1", [&bob])
            .unwrap();
        c.execute("DELETE FROM manifest WHERE account_hash = ?1", [&bob])
            .unwrap();
        c.execute(
            "UPDATE manifest SET (account_hash, generation, format, nonce, ciphertext) =
               (SELECT account_hash, generation, format, nonce, ciphertext FROM temp.bob) WHERE slot = 1000",
            [],
        )
        .unwrap()
    });
    let v = open(&path, &KEY).unwrap();
    assert_eq!(v.access_token("bob").unwrap_err().code(), ErrorCode::Corrupt);
    assert_eq!(v.session_info("bob").unwrap_err().code(), ErrorCode::Corrupt);
    // Neither listed nor removed as bob's session: the metadata row stays, the vault still opens.
    assert!(v.list_accounts().unwrap().is_empty());
    assert_eq!(v.remove("bob").unwrap_err().code(), ErrorCode::Corrupt);
    drop(v);
    assert_eq!(count(&path, "manifest WHERE slot = 1000"), 1);
    open(&path, &KEY).unwrap();
}

/// The size of the write-ahead log, in frames of `page_size` bytes (a frame is a 24-byte
/// header and one page; the log starts with a 32-byte header).
fn wal_frames(path: &Path) -> u64 {
    let page_size: i64 = with_db(path, |c| c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap());
    let page_size = u64::try_from(page_size).unwrap();
    let wal = std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len());
    wal.saturating_sub(32) / (24 + page_size)
}

/// In a vault of one session, the session's row shares its page with the manifest (schema 7):
/// storing a new pair for the account commits one page, one log frame, where two tables cost
/// two. A second session of this size no longer fits that page.
#[test]
fn a_write_to_a_one_session_vault_commits_one_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let v = open(&path, &KEY).unwrap();
    v.store(session("alice", "tok-A1")).unwrap();
    for i in 2..6 {
        let before = wal_frames(&path);
        v.store(session("alice", &format!("tok-A{i}"))).unwrap();
        assert_eq!(wal_frames(&path) - before, 1, "store {i}");
    }
    assert_eq!(v.access_token("alice").unwrap().expose(), "tok-A5");
}

/// Schema 6: the manifest's table loses its `CHECK`, and the revocation queue's and key-set
/// cache's tables go only if they are empty (what they hold stays; an empty one is created
/// again by the first write that needs it).
#[test]
fn golden_v5_file_drops_empty_tables_and_keeps_a_used_one() {
    let (_dir, path) = golden_copy(5);
    // A cached key set (its content is read only when an id_token is checked).
    with_db(&path, |c| {
        c.execute(
            "INSERT INTO jwks (issuer_hash, fetched_at_ms, nonce, ciphertext) VALUES (x'01', 1, x'02', x'03')",
            [],
        )
        .unwrap()
    });
    drop(open(&path, &KEY).unwrap());
    assert_eq!(
        tables(&path, "revocation"),
        0,
        "the empty revocation table was not dropped"
    );
    assert_eq!(tables(&path, "jwks"), 1, "a table with a row was dropped");
    assert_eq!(count(&path, "jwks"), 1);
    let (manifest_sql, objects) = with_db(&path, |c| {
        (
            c.query_row("SELECT sql FROM sqlite_schema WHERE name = 'manifest'", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap(),
            c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
                .unwrap(),
        )
    });
    assert!(!manifest_sql.contains("CHECK"), "{manifest_sql}");
    assert_eq!(objects, 3, "manifest (+ its account index), jwks");
    golden_file_opens_at(&path);
}

/// Schema 5 keeps everything an open reads in one table: the metadata row and the key slot
/// move into the manifest's table, their own tables go, and the revocation flag says the
/// (empty) queue holds nothing.
#[test]
fn golden_v4_state_moves_into_the_manifest_table() {
    let (_dir, path) = golden_copy(4);
    let epoch_before: i64 = with_db(&path, |c| {
        c.query_row("SELECT key_epoch FROM vault_meta WHERE id = 1", [], |r| r.get(0))
            .unwrap()
    });
    drop(open(&path, &KEY).unwrap());
    assert_eq!(tables(&path, "key_slot"), 0, "the key slot table was not dropped");
    assert_eq!(tables(&path, "vault_meta"), 0, "the metadata table was not dropped");
    let (objects, slots, meta) = with_db(&path, |c| {
        (
            c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            c.query_row("SELECT count(*) FROM manifest WHERE slot IN (1001, 1002)", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap(),
            c.query_row(
                "SELECT key_epoch, revocations_waiting, created_at_ms > 0 FROM manifest WHERE slot = 1000",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, bool>(2)?)),
            )
            .unwrap(),
        )
    });
    // Schema 6 then drops the empty revocation queue's and key-set cache's tables; schema 7
    // moves the sessions into the manifest's table.
    assert_eq!(objects, 2, "manifest (+ its account index)");
    assert_eq!(slots, 1);
    assert_eq!(meta, (epoch_before, 0, true));
    // The migrated file serves its sessions and passes the integrity check.
    golden_file_opens_at(&path);
}

/// Writes `tests/data/vault-v{SCHEMA_VERSION}.db`, the golden file of the current schema (never
/// overwriting an older version's file, which later versions must keep opening). Run once per
/// schema version, then add a test that opens it:
/// `cargo test -p tokenvault --test storage -- --ignored write_golden_file`.
#[test]
#[ignore]
fn write_golden_file() {
    let golden = golden_path(u32::try_from(tokenvault::SCHEMA_VERSION).unwrap());
    let _ = std::fs::remove_file(&golden);
    let v = open(&golden, &KEY).unwrap();
    v.store(
        NewSession::new("golden-alice", "backend", "golden-access-alice")
            .refresh_credential("golden-refresh-alice")
            .expires_in(Duration::from_secs(1))
            .hint("display_name", "Golden Alice"),
    )
    .unwrap();
    v.store(
        NewSession::new("golden-bob", "backend", "golden-access-bob")
            .refresh_credential("golden-refresh-bob")
            .expires_in(Duration::from_secs(1)),
    )
    .unwrap();
    v.close().unwrap();
}

/// An open reads a small vault's buckets with the manifest root (schema 5); a larger vault's
/// first reads fetch the others. Either way every bucket is authenticated when it is used: a
/// tampered bucket among those the open read is `Corrupt` for its accounts, never trusted.
#[test]
fn buckets_read_at_open_are_checked_when_used_and_the_others_are_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let accounts: Vec<String> = (0..40).map(|i| format!("player-{i}")).collect();
    {
        let v = open(&path, &KEY).unwrap();
        for a in &accounts {
            v.store(session(a, &format!("token-{a}"))).unwrap();
        }
    }
    let buckets = count(&path, "manifest WHERE slot < 256");
    assert!(buckets > 4, "more buckets than an open reads: {buckets}");
    let v = open(&path, &KEY).unwrap();
    for a in &accounts {
        assert_eq!(v.access_token(a).unwrap().expose(), format!("token-{a}"));
    }
    drop(v);
    // Each account's token as stored, or `Corrupt`: (served, refused).
    let serve_all = |v: &Vault| {
        let (mut served, mut refused) = (0, 0);
        for a in &accounts {
            match v.access_token(a) {
                Ok(t) => {
                    assert_eq!(t.expose(), format!("token-{a}"));
                    served += 1;
                }
                Err(e) => {
                    assert_eq!(e.code(), ErrorCode::Corrupt, "{e}");
                    refused += 1;
                }
            }
        }
        (served, refused)
    };
    // The highest bucket is one of those the open reads: zero its MAC.
    with_db(&path, |c| {
        c.execute(
            "UPDATE manifest SET mac = zeroblob(length(mac)) WHERE slot = (SELECT max(slot) FROM manifest WHERE slot < 256)",
            [],
        )
        .unwrap()
    });
    let (_, refused) = serve_all(&open(&path, &KEY).unwrap());
    assert!(refused >= 1, "the accounts of the tampered bucket were served");

    // A bucket row the open cannot even decode (its version made NULL behind SQLite's checks)
    // does not fail the open: the accounts in it are `Corrupt`, the others are served.
    with_db(&path, |c| {
        c.execute_batch(
            "PRAGMA ignore_check_constraints = ON;
             UPDATE manifest SET version = NULL WHERE slot = (SELECT max(slot) FROM manifest WHERE slot < 256);",
        )
        .unwrap()
    });
    let (served, refused) = serve_all(&open(&path, &KEY).unwrap());
    assert!(refused >= 1 && served >= 1, "served {served}, refused {refused}");
}

#[test]
fn remove_bumps_the_generation_and_lists_update() {
    let dir = tempfile::tempdir().unwrap();
    let v = open(&dir.path().join("v.db"), &KEY).unwrap();
    let g1 = v.store(session("alice", "t1")).unwrap().generation;
    let g2 = v.store(session("alice", "t2")).unwrap().generation;
    assert!(g2 > g1);
    v.store(session("bob", "t3")).unwrap();
    assert_eq!(v.list_accounts().unwrap(), ["alice", "bob"]);
    assert!(v.remove("alice").unwrap());
    assert!(!v.remove("alice").unwrap());
    assert_eq!(v.access_token("alice").unwrap_err(), VaultError::NotFound);
    assert_eq!(v.list_accounts().unwrap(), ["bob"]);
    let g3 = v.store(session("alice", "t4")).unwrap().generation;
    assert!(g3 > g2, "generations never repeat across logout and login");
}

#[test]
fn writes_are_visible_to_another_connection_when_the_call_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let a = open(&path, &KEY).unwrap();
    let b = open(&path, &KEY).unwrap();
    a.store(session("alice", "t1")).unwrap();
    assert_eq!(b.access_token("alice").unwrap().expose(), "t1");
    // The file is in WAL mode (a property of the file, so any connection can read it). That the
    // vault's own connection syncs the log on every commit (synchronous=FULL) is per connection,
    // invisible from here: tests/durability.rs observes it through a counting VFS.
    let mode = with_db(&path, |c| {
        c.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .unwrap()
    });
    assert_eq!(mode, "wal");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let v = open(&path, &KEY).unwrap();
    v.store(session("alice", "good")).unwrap();
    let g = v.session_info("alice").unwrap().generation;
    for bad in [
        NewSession::new("", "backend", "t"),
        NewSession::new("alice", "backend", ""),
        NewSession::new("alice", "backend", "with space"),
        NewSession::new("alice", "backend", "crlf\r\nX: y"),
        NewSession::new("alice", "no-such-profile", "t"),
        NewSession::new("a\0b", "backend", "t"),
        NewSession::new("alice", "backend", "t".repeat(70_000)),
    ] {
        assert_eq!(v.store(bad).unwrap_err().code(), ErrorCode::InvalidInput);
    }
    assert!(KeySource::raw(&[1, 2, 3]).is_err());
    assert_eq!(v.session_info("alice").unwrap().generation, g);
    assert_eq!(v.access_token("alice").unwrap().expose(), "good");
}

#[test]
fn secrets_stay_out_of_debug_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let v = open(&dir.path().join("v.db"), &KEY).unwrap();
    let info = v.store(session("alice-secret-id", "tok-SECRET")).unwrap();
    let t = v.access_token("alice-secret-id").unwrap();
    let texts = [
        format!("{info:?}"),
        format!("{t:?}"),
        format!("{v:?}"),
        format!("{:?}", session("alice-secret-id", "tok-SECRET")),
        format!("{:?}", KeySource::raw(&KEY).unwrap()),
        v.access_token("other-secret-id").unwrap_err().to_string(),
    ];
    for s in texts {
        for secret in ["tok-SECRET", "alice-secret-id", "refresh-of", "other-secret-id"] {
            assert!(!s.contains(secret), "{s}");
        }
    }
}

#[test]
fn the_vault_is_shared_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let v = Arc::new(open(&dir.path().join("v.db"), &KEY).unwrap());
    for i in 0..8 {
        v.store(session(&format!("acct-{i}"), &format!("tok-{i}"))).unwrap();
    }
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let v = Arc::clone(&v);
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    assert_eq!(
                        v.access_token(&format!("acct-{i}")).unwrap().expose(),
                        format!("tok-{i}")
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn token_if_changed_answers_unchanged_without_handing_out_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let v = open(&dir.path().join("v.db"), &KEY).unwrap();
    v.store(session("alice", "t1")).unwrap();
    let t = v.access_token("alice").unwrap();
    let opts = tokenvault::TokenOptions::default();
    assert_eq!(v.token_if_changed("alice", t.generation(), opts).unwrap(), None);
    assert_eq!(v.token_if_changed("alice", 0, opts).unwrap(), Some(t.clone()));
    v.store(session("alice", "t2")).unwrap();
    let t2 = v.token_if_changed("alice", t.generation(), opts).unwrap().unwrap();
    assert_eq!(t2.expose(), "t2");
    assert_eq!(v.token_if_changed("bob", 0, opts).unwrap_err(), VaultError::NotFound);
}

#[test]
fn tuned_options_apply_and_out_of_range_values_are_invalid_input_with_no_file_created() {
    use tokenvault::{TokenOptions, Tuning};
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        Tuning {
            refresh_point: Some(0.99),
            ..Tuning::default()
        },
        Tuning {
            jitter: Some(-0.1),
            ..Tuning::default()
        },
        Tuning {
            min_ttl_cap: Some(1.5),
            ..Tuning::default()
        },
        Tuning {
            min_ttl_cap: Some(f64::NAN),
            ..Tuning::default()
        },
        Tuning {
            expiry_margin_ms: Some(3_600_001),
            ..Tuning::default()
        },
        Tuning {
            busy_timeout_ms: Some(600_001),
            ..Tuning::default()
        },
    ];
    for (i, t) in bad.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.db"));
        let e = Vault::open(&path, KeySource::raw(&KEY).unwrap(), VaultOptions::default().tuned(t)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{t:?}");
        assert!(!path.exists(), "{t:?}");
    }
    assert_eq!(
        VaultOptions::default().tuned(&Tuning::defaults()).policy,
        VaultOptions::default().policy
    );

    // A tuned refresh point applies: 40 % of a 100 s lifetime.
    let t = Tuning {
        refresh_point: Some(0.4),
        jitter: Some(0.0),
        min_ttl_cap: Some(0.1),
        ..Tuning::default()
    };
    let clock = tokenvault::ManualClock::new();
    let options = VaultOptions {
        clock: clock.clone(),
        ..VaultOptions::default()
    }
    .tuned(&t);
    let v = Vault::open(dir.path().join("v.db"), KeySource::raw(&KEY).unwrap(), options).unwrap();
    v.register_profile(profile()).unwrap();
    v.store(
        NewSession::new("a", "backend", "tok")
            .refresh_credential("r")
            .expires_in(Duration::from_secs(100)),
    )
    .unwrap();
    assert_eq!(v.session_info("a").unwrap().state, SessionState::Fresh);
    // A caller asking for 50 s more gets the fresh token: the cap (10 s) applies, not 50 s.
    v.access_token_with(
        "a",
        TokenOptions {
            min_ttl: Duration::from_secs(50),
        },
    )
    .unwrap();
    assert_eq!(v.metrics().refreshes_started, 0);
    clock.advance(Duration::from_secs(39));
    assert_eq!(v.session_info("a").unwrap().state, SessionState::Fresh);
    clock.advance(Duration::from_secs(2));
    assert_eq!(v.session_info("a").unwrap().state, SessionState::RefreshDue);
}

#[test]
fn rekey_reports_progress_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let v = open(&path, &KEY).unwrap();
    for i in 0..25 {
        v.store(session(&format!("p{i}"), &format!("t{i}"))).unwrap();
    }
    let mut seen = Vec::new();
    v.rekey_with_progress(KeySource::raw(&[9u8; 32]).unwrap(), &mut |done, total| {
        seen.push((done, total))
    })
    .unwrap();
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.first(), Some(&(1, 25)));
    assert_eq!(seen.last(), Some(&(25, 25)));
    drop(v);
    assert_eq!(open(&path, &[9u8; 32]).unwrap().session_count().unwrap(), 25);
}

/// A vault starts its next session write from the manifest it wrote last only while no other
/// connection has committed: writes of another instance in between (other accounts, other
/// buckets) are never overwritten by a remembered root.
#[test]
fn a_peer_write_between_two_writes_is_kept_in_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let a = open(&path, &KEY).unwrap();
    let b = open(&path, &KEY).unwrap();
    a.store(session("alice", "a1")).unwrap();
    let others: Vec<String> = (0..8).map(|i| format!("bob-{i}")).collect();
    for (i, other) in others.iter().enumerate() {
        b.store(session(other, &format!("b{i}"))).unwrap();
        a.store(session("alice", &format!("a{}", i + 2))).unwrap();
    }
    for v in [&a, &b] {
        for (i, other) in others.iter().enumerate() {
            assert_eq!(v.access_token(other).unwrap().expose(), format!("b{i}"));
        }
        assert_eq!(v.access_token("alice").unwrap().expose(), "a9");
        assert!(v.check_integrity().unwrap());
    }
    drop((a, b));
    let v = open(&path, &KEY).unwrap();
    assert_eq!(v.list_accounts().unwrap().len(), 9);
    assert!(v.check_integrity().unwrap());
}
