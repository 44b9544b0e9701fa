//! Durability of the vault's own connection, observed from inside SQLite.
//!
//! `PRAGMA synchronous` is a per-connection setting that no other connection can read, so these
//! tests install a counting VFS as the process's default before any vault opens: it forwards
//! everything to the real default VFS and counts `xSync` calls on write-ahead-log files. In WAL
//! mode `synchronous=FULL` syncs the log at every commit and `NORMAL` never does (only at
//! checkpoints), so a write call that returns without a log sync was not durable: a power cut
//! could still lose it. This file is its own test binary, so the VFS swap touches no other test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::c_int;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rusqlite::ffi;
use tokenvault::{
    HttpRequest, HttpResponse, KeySource, NewSession, Preset, Profile, Transport, TransportError, Vault, VaultOptions,
};

/// `xSync` calls on WAL files since the process started.
static WAL_SYNCS: AtomicU64 = AtomicU64::new(0);
/// The tests share the counter: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A pointer that is only ever read after SQLite handed it out (the VFS and I/O method tables
/// are immutable and live for the whole process).
struct Shared<T>(*const T);
// SAFETY: the pointees are never written after they are published here.
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Shared<T> {}

/// The real default VFS.
static REAL_VFS: OnceLock<Shared<ffi::sqlite3_vfs>> = OnceLock::new();
/// (our copy, the original) for each I/O method table a WAL file was opened with.
static WAL_METHODS: Mutex<Vec<(Shared<ffi::sqlite3_io_methods>, Shared<ffi::sqlite3_io_methods>)>> =
    Mutex::new(Vec::new());

unsafe extern "C" fn counting_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(real) = REAL_VFS.get() else {
        return ffi::SQLITE_ERROR;
    };
    let real = real.0.cast_mut();
    // SAFETY: `real` is SQLite's own default VFS; the arguments are SQLite's, passed through.
    let rc = match unsafe { (*real).xOpen } {
        Some(open) => unsafe { open(real, name, file, flags, out_flags) },
        None => ffi::SQLITE_ERROR,
    };
    if rc == ffi::SQLITE_OK && flags & ffi::SQLITE_OPEN_WAL != 0 {
        // SAFETY: the real xOpen succeeded, so `file` is an open file with its methods set.
        let original = unsafe { (*file).pMethods };
        if !original.is_null() {
            let ours = wal_methods_for(original);
            // SAFETY: as above; our table differs from the original only in xSync.
            unsafe { (*file).pMethods = ours };
        }
    }
    rc
}

/// Our copy of `original` with xSync counting, made once per original table.
fn wal_methods_for(original: *const ffi::sqlite3_io_methods) -> *const ffi::sqlite3_io_methods {
    let mut tables = WAL_METHODS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((ours, _)) = tables.iter().find(|(_, o)| o.0 == original) {
        return ours.0;
    }
    // SAFETY: `original` is a live, immutable method table of the real VFS.
    let mut copy = unsafe { *original };
    copy.xSync = Some(counting_sync);
    let ours: *const ffi::sqlite3_io_methods = Box::leak(Box::new(copy));
    tables.push((Shared(ours), Shared(original)));
    ours
}

unsafe extern "C" fn counting_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    WAL_SYNCS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: SQLite calls xSync on an open file whose methods are one of our tables.
    let ours = unsafe { (*file).pMethods };
    let original = {
        let tables = WAL_METHODS.lock().unwrap_or_else(|e| e.into_inner());
        tables.iter().find(|(o, _)| o.0 == ours).map(|(_, orig)| orig.0)
    };
    match original.and_then(|o| unsafe { (*o).xSync }) {
        // SAFETY: the real xSync of this very file.
        Some(sync) => unsafe { sync(file, flags) },
        None => ffi::SQLITE_IOERR_FSYNC,
    }
}

/// Install the counting VFS as the default (once), and take the test lock.
fn counting() -> MutexGuard<'static, ()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS (initialising SQLite first).
        let real = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
        assert!(!real.is_null(), "SQLite has no default VFS");
        let _ = REAL_VFS.set(Shared(real));
        // SAFETY: a copy of the real VFS that differs only in its name and xOpen; its other
        // methods do not depend on which copy they are called through.
        let mut vfs = unsafe { *real };
        vfs.pNext = std::ptr::null_mut();
        vfs.zName = c"tokenvault-test-counting".as_ptr();
        vfs.xOpen = Some(counting_open);
        let vfs: *mut ffi::sqlite3_vfs = Box::leak(Box::new(vfs));
        // SAFETY: `vfs` lives for the rest of the process.
        let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 1) };
        assert_eq!(rc, ffi::SQLITE_OK);
    });
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn wal_syncs_during<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = WAL_SYNCS.load(Ordering::SeqCst);
    let out = f();
    (out, WAL_SYNCS.load(Ordering::SeqCst) - before)
}

fn open(path: &Path) -> Vault {
    let v = Vault::open(path, KeySource::raw(&[0x42; 32]).unwrap(), VaultOptions::default()).unwrap();
    v.register_profile(
        Profile::preset(
            Preset::OAuth2,
            "backend",
            "https://auth.example.test/token",
            serde_json::json!({"client_id": "game"}),
        )
        .unwrap(),
    )
    .unwrap();
    v
}

fn session(account: &str, token: &str) -> NewSession {
    NewSession::new(account, "backend", token)
        .refresh_credential(format!("refresh-of-{token}"))
        .expires_in(Duration::from_secs(3600))
}

#[test]
fn the_counting_vfs_sees_a_log_sync_only_when_the_connection_asks_for_one() {
    // The instrument itself: a plain connection in WAL mode syncs the log on commit under FULL
    // and not under NORMAL.
    let _serial = counting();
    let dir = tempfile::tempdir().unwrap();
    let c = rusqlite::Connection::open(dir.path().join("plain.db")).unwrap();
    c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
        .unwrap();
    c.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
    for (mode, expect_sync) in [("FULL", true), ("NORMAL", false), ("FULL", true)] {
        c.execute_batch(&format!("PRAGMA synchronous={mode}")).unwrap();
        let ((), syncs) = wal_syncs_during(|| {
            c.execute("INSERT INTO t VALUES (zeroblob(1000))", []).unwrap();
        });
        assert_eq!(syncs > 0, expect_sync, "synchronous={mode}: {syncs} log syncs");
    }
}

#[test]
fn every_write_call_syncs_the_log_before_it_returns() {
    let _serial = counting();
    let dir = tempfile::tempdir().unwrap();
    let v = open(&dir.path().join("v.db"));
    let (info, syncs) = wal_syncs_during(|| v.store(session("alice", "t1")).unwrap());
    assert!(syncs > 0, "store returned without syncing the log");
    let (_, syncs) = wal_syncs_during(|| v.store(session("alice", "t2")).unwrap());
    assert!(syncs > 0, "a replacing store returned without syncing the log");
    let (removed, syncs) = wal_syncs_during(|| v.remove("alice").unwrap());
    assert!(removed && syncs > 0, "remove returned without syncing the log");
    assert_eq!(info.account, "alice");
}

/// Answers every refresh with a new, rotated pair.
#[derive(Debug)]
struct Rotating;

impl Transport for Rotating {
    fn send(&self, _request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let body = serde_json::json!({
            "access_token": "access-after-refresh",
            "refresh_token": "refresh-after-refresh",
            "token_type": "Bearer",
            "expires_in": 3600
        });
        Ok(HttpResponse::new(
            200,
            vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body.to_string().into_bytes(),
        ))
    }
}

#[test]
fn a_refresh_syncs_the_rotated_pair_and_later_writes_stay_durable() {
    // The refresh lease is written with synchronous=NORMAL (it only has to survive a crash of the
    // process); the rotated pair after it, and every write after the refresh, must be FULL again.
    let _serial = counting();
    let dir = tempfile::tempdir().unwrap();
    let v = open(&dir.path().join("v.db"));
    v.set_transport(Some(Arc::new(Rotating))).unwrap();
    v.store(session("alice", "t1")).unwrap();
    let (token, syncs) = wal_syncs_during(|| v.force_refresh("alice").unwrap());
    assert_eq!(token.expose(), "access-after-refresh");
    assert!(
        syncs > 0,
        "the refresh returned its rotated pair without syncing the log"
    );
    let (_, syncs) = wal_syncs_during(|| v.store(session("bob", "b1")).unwrap());
    assert!(syncs > 0, "after a refresh, store returned without syncing the log");
}
