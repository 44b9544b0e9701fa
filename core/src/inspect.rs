//! Looking inside a vault without a secret: what an operator (or the `tokenvault` command-line
//! tool) may see.
//!
//! * [`Vault::lease_state`]: whether a refresh of an account is running right now (its OS refresh
//!   lock is held) or an earlier one lost its answer (the lost-answer marker, ADR 0004).
//! * [`Vault::account_report`]: a session's facts ([`SessionInfo`]), its stored verdict and its
//!   lease state, in one call.
//! * [`check_file`]: the file's format, schema version, SQLite integrity and record count,
//!   without a key and without writing anything.
//!
//! Nothing here returns or formats a token, a refresh credential or a key.

use std::fs::{File, TryLockError};
use std::io::ErrorKind;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::engine::refresh_lock;
use crate::error::{Error, ErrorCode, Result, StoreResult, VaultError};
use crate::session::SessionInfo;
use crate::store::{APPLICATION_ID, SCHEMA_VERSION};
use crate::vault::Vault;

/// Where the refresh coordination of one account stands, as seen from this vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// No refresh is running, and none lost its answer.
    Idle,
    /// A refresh is running right now: its OS refresh lock is held (by another process, another
    /// vault instance, or this one).
    Refreshing,
    /// A refresh request for the current generation may have reached the server without its
    /// answer being stored (a crash or a dropped connection): the lost-answer marker is
    /// recorded. If the server then refuses the credential, the verdict is
    /// [`ErrorCode::RefreshOutcomeUnknown`] (code 12), not a plain re-authentication.
    AnswerLost,
}

impl LeaseState {
    /// A stable identifier: `idle`, `refreshing`, `answer_lost`.
    pub fn name(self) -> &'static str {
        match self {
            LeaseState::Idle => "idle",
            LeaseState::Refreshing => "refreshing",
            LeaseState::AnswerLost => "answer_lost",
        }
    }
}

/// The verdict stored with a session that ended: every reader of the account gets this error,
/// in every process, until the host stores a new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVerdict {
    /// [`ErrorCode::ReauthenticationRequired`] or [`ErrorCode::RefreshOutcomeUnknown`].
    pub code: ErrorCode,
    /// The error's message, as readers get it (no secrets).
    pub message: String,
}

/// Everything an operator may see of one account: no token, no refresh credential, no key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountReport {
    /// The session's facts (its `last_refresh_failure` is the last failure *this* vault
    /// instance saw since the last success; a fresh instance has none).
    pub info: SessionInfo,
    /// The stored verdict, if the session ended; it survives restarts.
    pub verdict: Option<StoredVerdict>,
    /// The refresh coordination state.
    pub lease: LeaseState,
}

impl Vault {
    /// Whether a refresh of `account` is running right now, or an earlier one lost its answer.
    ///
    /// The refresh lock is probed through its own file description, without creating its lock
    /// file: taken and released at once (a peer starting a refresh in that instant sees it busy
    /// and waits the few microseconds it is held). A lock file that does not exist was never
    /// taken, so the lock is free. The marker (in the lock file since schema 4) counts only
    /// while it belongs to the generation stored now (a newer generation means that refresh was
    /// answered). Neither probe writes to the vault file or the lock file.
    /// [`VaultError::NotFound`] when no session is stored.
    pub fn lease_state(&self, account: &str) -> Result<LeaseState> {
        let e = &self.engine;
        e.check_open()?;
        let key = e.key(account)?;
        let lock_path = refresh_lock::lock_dir(&e.path).join(refresh_lock::lock_file_name(&key.hash));
        if lock_is_held(&lock_path)? {
            return Ok(LeaseState::Refreshing);
        }
        let generation = e.with_store(|s| s.store.generation(&key.hash))?;
        let marker = refresh_lock::read_marker(&e.path, &key.hash)?;
        match (generation, marker) {
            (None, _) => Err(VaultError::NotFound),
            (Some(g), Some(m)) if m.generation == g => Ok(LeaseState::AnswerLost),
            _ => Ok(LeaseState::Idle),
        }
    }

    /// An account's facts, its stored verdict and its lease state: what `tokenvault inspect`
    /// shows. Reads the session as [`session_info`](Self::session_info) does (checked against
    /// the manifest; never refreshed).
    pub fn account_report(&self, account: &str) -> Result<AccountReport> {
        let e = &self.engine;
        let key = e.key(account)?;
        let entry = e.entry(&key)?;
        let info = e.info(&entry);
        let verdict = entry.record.verdict.as_ref().map(|v| {
            let err = v.error();
            StoredVerdict {
                code: err.code(),
                message: err.to_string(),
            }
        });
        drop(entry);
        let lease = self.lease_state(account)?;
        Ok(AccountReport { info, verdict, lease })
    }
}

/// Probe an OS refresh lock: held by anyone (any process, any vault instance)?
fn lock_is_held(path: &Path) -> Result<bool> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(VaultError::StorageUnavailable {
                reason: format!("cannot open a refresh lock file ({:?})", e.kind()),
            })
        }
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(false)
        }
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(VaultError::StorageUnavailable {
            reason: format!("cannot probe a refresh lock ({:?})", e.kind()),
        }),
    }
}

/// What kind of file [`check_file`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// An empty file: [`Vault::open`] would make a new vault of it.
    Empty,
    /// Not an SQLite database at all.
    NotSqlite,
    /// An SQLite database, but not a tokenvault vault (another `application_id`).
    ForeignSqlite,
    /// A tokenvault vault.
    Vault,
}

/// Where a vault's schema version stands against this library's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaStatus {
    /// The version this library writes.
    Current,
    /// Older: the next [`Vault::open`] (after the key is checked) upgrades the file.
    Older,
    /// Newer than this library: [`Vault::open`] refuses it with [`VaultError::SchemaTooNew`].
    Newer,
    /// The vault marker is set but no schema version is: the file is damaged.
    Missing,
}

/// What [`check_file`] found, without a key. Only facts stored in clear (`docs/SECURITY.md` lists
/// them): no account id, token or key material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileReport {
    /// What kind of file it is.
    pub format: FileFormat,
    /// The file's size in bytes.
    pub file_size: u64,
    /// `PRAGMA application_id`, for an SQLite file (a vault's is [`APPLICATION_ID`](crate::APPLICATION_ID)).
    pub application_id: Option<i32>,
    /// `PRAGMA user_version`, for an SQLite file: a vault's schema version.
    pub schema_version: Option<i64>,
    /// For a vault: its schema version against this library's [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    pub schema_status: Option<SchemaStatus>,
    /// SQLite's `integrity_check`, for an SQLite file: `Some(true)` when it answered `ok`.
    pub integrity_ok: Option<bool>,
    /// The first lines `integrity_check` reported when it did not answer `ok` (page and table
    /// names, never record contents).
    pub integrity_messages: Vec<String>,
    /// Stored sessions (records), for a vault of a schema this library knows.
    pub session_count: Option<u64>,
    /// Key slots: 2 while a `rekey` waits for its first open with the new key (the key it
    /// replaced still opens the vault until then).
    pub key_slots: Option<u64>,
    /// Lost-answer markers that belong to a session's current generation (read from the
    /// refresh-lock files next to the vault since schema 4; none are created).
    pub lost_answer_markers: Option<u64>,
    /// How many times the vault was rekeyed.
    pub key_epoch: Option<u64>,
    /// A `-wal` log exists without its `-shm` index: the log (changes not yet moved into the
    /// file) could not be read without writing, so the figures describe the main file alone.
    pub log_not_read: bool,
}

impl FileReport {
    /// True for a vault this library can open as it is (the key aside): the vault marker, a
    /// schema version it knows, and SQLite's integrity check passed.
    pub fn is_healthy(&self) -> bool {
        self.format == FileFormat::Vault
            && matches!(self.schema_status, Some(SchemaStatus::Current | SchemaStatus::Older))
            && self.integrity_ok == Some(true)
    }
}

/// Most `integrity_check` lines kept in a [`FileReport`].
const MAX_INTEGRITY_MESSAGES: usize = 20;

/// Check a vault file without its key: its format (`application_id`), schema version, SQLite
/// integrity (`PRAGMA integrity_check`), and record counts.
///
/// Read-only: the file is opened with `SQLITE_OPEN_READ_ONLY` and never created. When no `-wal`
/// log exists it is opened `immutable` (SQLite would otherwise create the `-wal` and `-shm`
/// files and leave them behind), so check a file no process is opening at that moment. When a
/// log and its index exist (a vault in use, or left by a crash) they are read, not changed; a log
/// without its index is not read ([`FileReport::log_not_read`]).
///
/// A file that does not exist or cannot be read is [`VaultError::StorageUnavailable`]; every
/// other finding (not SQLite, not a vault, a newer schema, a failed integrity check) is in the
/// report.
pub fn check_file(path: impl AsRef<Path>) -> Result<FileReport> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| VaultError::StorageUnavailable {
        reason: match e.kind() {
            ErrorKind::NotFound => "the file does not exist".to_owned(),
            k => format!("cannot read the file ({k:?})"),
        },
    })?;
    if !meta.is_file() {
        return Err(VaultError::StorageUnavailable {
            reason: "not a regular file".into(),
        });
    }
    let mut report = FileReport {
        format: FileFormat::Empty,
        file_size: meta.len(),
        application_id: None,
        schema_version: None,
        schema_status: None,
        integrity_ok: None,
        integrity_messages: Vec::new(),
        session_count: None,
        key_slots: None,
        lost_answer_markers: None,
        key_epoch: None,
        log_not_read: false,
    };
    if meta.len() == 0 {
        return Ok(report);
    }
    let sidecar = |suffix: &str| {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        std::path::PathBuf::from(name).exists()
    };
    let (wal, shm) = (sidecar("-wal"), sidecar("-shm"));
    let read_log = wal && shm;
    report.log_not_read = wal && !shm;
    let conn = open_read_only(path, !read_log)?;
    let header = conn
        .query_row("PRAGMA application_id", [], |r| r.get::<_, i32>(0))
        .and_then(|app| Ok((app, conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?)));
    let (app_id, version) = match header {
        Ok(h) => h,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            ) =>
        {
            report.format = FileFormat::NotSqlite;
            return Ok(report);
        }
        Err(e) => return Err(Error::from(e).into()),
    };
    report.application_id = Some(app_id);
    report.schema_version = Some(version);
    let (ok, messages) = integrity(&conn)?;
    report.integrity_ok = Some(ok);
    report.integrity_messages = messages;
    if app_id != APPLICATION_ID {
        report.format = FileFormat::ForeignSqlite;
        return Ok(report);
    }
    report.format = FileFormat::Vault;
    let status = if version < 1 {
        SchemaStatus::Missing
    } else if version > SCHEMA_VERSION {
        SchemaStatus::Newer
    } else if version < SCHEMA_VERSION {
        SchemaStatus::Older
    } else {
        SchemaStatus::Current
    };
    report.schema_status = Some(status);
    if matches!(status, SchemaStatus::Current | SchemaStatus::Older) && ok {
        // A damaged schema (a table missing) leaves the counts unknown; the integrity check
        // and the format already say what matters.
        if let Ok(counts) = counts(&conn, path, version) {
            (
                report.session_count,
                report.key_slots,
                report.lost_answer_markers,
                report.key_epoch,
            ) = counts;
        }
    }
    Ok(report)
}

fn open_read_only(path: &Path, immutable: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let uri = file_uri(path, immutable);
    Connection::open_with_flags(uri, flags).map_err(|e| VaultError::from(Error::from(e)))
}

/// An SQLite `file:` URI for `path`: the path's bytes, percent-encoding what a URI would misread
/// (`%`, `?`, `#`) and every byte outside ASCII (SQLite decodes them back to the same bytes).
fn file_uri(path: &Path, immutable: bool) -> String {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().into_owned().into_bytes();
    let mut uri = String::from("file:");
    for b in bytes {
        match b {
            b'%' | b'?' | b'#' | 0x80.. => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(char::from(b)),
        }
    }
    uri.push_str("?mode=ro");
    if immutable {
        uri.push_str("&immutable=1");
    }
    uri
}

fn integrity(conn: &Connection) -> Result<(bool, Vec<String>)> {
    let run = || -> StoreResult<Vec<String>> {
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let lines = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for line in lines.take(MAX_INTEGRITY_MESSAGES) {
            out.push(line?);
        }
        Ok(out)
    };
    match run() {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok((true, Vec::new())),
        Ok(lines) => Ok((false, lines)),
        Err(Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            Ok((false, vec![format!("SQLite stopped the check: {:?}", e.code)]))
        }
        Err(e) => Err(e.into()),
    }
}

/// (sessions, key slots, current lost-answer markers, key epoch) of a vault at `version`.
type Counts = (Option<u64>, Option<u64>, Option<u64>, Option<u64>);

fn counts(conn: &Connection, path: &Path, version: i64) -> StoreResult<Counts> {
    let count = |sql: &str| -> StoreResult<u64> {
        let n: i64 = conn.query_row(sql, [], |r| r.get(0))?;
        Ok(u64::try_from(n).map_err(|_| VaultError::corrupt("negative count"))?)
    };
    // Schema 7 moved the session rows into the manifest's table.
    let (sessions_sql, rows_sql) = if version < 7 {
        (
            "SELECT count(*) FROM sessions",
            "SELECT account_hash, generation FROM sessions",
        )
    } else {
        (
            concat!("SELECT count(*) FROM manifest WHERE ", crate::store::session_rows!()),
            concat!(
                "SELECT account_hash, generation FROM manifest WHERE ",
                crate::store::session_rows!()
            ),
        )
    };
    let sessions = count(sessions_sql)?;
    if version < 2 {
        let markers = count(
            "SELECT count(*) FROM refresh_lease l JOIN sessions s ON s.account_hash = l.account_hash
             WHERE l.sent != 0 AND l.generation = s.generation",
        )?;
        return Ok((Some(sessions), Some(1), Some(markers), Some(0)));
    }
    let slots = if version < 5 {
        count("SELECT count(*) FROM key_slot")?
    } else {
        count("SELECT count(*) FROM manifest WHERE slot IN (1001, 1002)")?
    };
    let markers = if version < 4 {
        count(
            "SELECT count(*) FROM refresh_marker m JOIN sessions s ON s.account_hash = m.account_hash
             WHERE m.generation = s.generation",
        )?
    } else {
        // Schema 4: each account's marker is in its refresh-lock file (read, never created).
        let mut stmt = conn.prepare(rows_sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        let mut n = 0u64;
        for row in rows {
            let (hash, generation) = row?;
            let marker = refresh_lock::read_marker(path, &hash)?;
            if marker.is_some_and(|m| i64::try_from(m.generation) == Ok(generation)) {
                n += 1;
            }
        }
        n
    };
    let epoch_sql = if version < 5 {
        "SELECT key_epoch FROM vault_meta WHERE id = 1"
    } else {
        "SELECT key_epoch FROM manifest WHERE slot = 1000"
    };
    let epoch: Option<i64> = conn.query_row(epoch_sql, [], |r| r.get(0)).optional()?;
    Ok((
        Some(sessions),
        Some(slots),
        Some(markers),
        epoch.and_then(|e| u64::try_from(e).ok()),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::crypto::KeySource;
    use crate::session::NewSession;
    use crate::vault::VaultOptions;

    const PROFILE: &str = r#"{"preset":"oauth2","name":"p","url":"https://127.0.0.1:1/token","client_id":"c"}"#;

    fn vault(path: &Path) -> Vault {
        let v = Vault::open(path, KeySource::raw(&[7u8; 32]).unwrap(), VaultOptions::default()).unwrap();
        v.load_profile_json(PROFILE).unwrap();
        v
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn lease_state_sees_the_refresh_lock_and_the_current_marker_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let v = vault(&path);
        v.store(NewSession::new("alice", "p", "at-1").refresh_credential("rt-1"))
            .unwrap();
        assert_eq!(v.lease_state("alice").unwrap(), LeaseState::Idle);
        assert_eq!(v.lease_state("nobody"), Err(VaultError::NotFound));

        // Another process (here: another instance) holds the account's refresh lock.
        let key = v.engine.key("alice").unwrap();
        let other = refresh_lock::RefreshLocks::new(&path);
        let held = other.try_acquire(&key.hash).unwrap().unwrap();
        assert_eq!(v.lease_state("alice").unwrap(), LeaseState::Refreshing);
        // The probe released what it took: the holder's lock is still the only one.
        drop(held);
        assert_eq!(v.lease_state("alice").unwrap(), LeaseState::Idle);
        assert!(
            other.try_acquire(&key.hash).unwrap().is_some(),
            "the probe kept the lock"
        );

        // A request was handed out and never answered: the marker of the current generation.
        let crate::vault::RefreshStep::Send(pending) = v.begin_refresh("alice", true).unwrap() else {
            panic!("expected a request to send");
        };
        assert_eq!(v.lease_state("alice").unwrap(), LeaseState::Refreshing);
        let report = v.account_report("alice").unwrap();
        assert_eq!(report.lease, LeaseState::Refreshing);
        drop(pending);
        v.close().unwrap();
        let v = vault(&path);
        assert_eq!(v.lease_state("alice").unwrap(), LeaseState::AnswerLost);
        // A new sign-in (a newer generation) makes that marker history.
        v.store(NewSession::new("alice", "p", "at-2").refresh_credential("rt-2"))
            .unwrap();
        assert_eq!(v.lease_state("alice").unwrap(), LeaseState::Idle);
    }

    #[test]
    fn a_logout_clears_the_marker_unless_a_refresh_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let lock_len = |v: &Vault, account: &str| {
            let key = v.engine.key(account).unwrap();
            std::fs::metadata(refresh_lock::lock_dir(&path).join(refresh_lock::lock_file_name(&key.hash)))
                .unwrap()
                .len()
        };
        let v = vault(&path);
        for account in ["alice", "bob"] {
            v.store(NewSession::new(account, "p", "at-1").refresh_credential("rt-1"))
                .unwrap();
            // A request handed out and never answered leaves its marker.
            let crate::vault::RefreshStep::Send(pending) = v.begin_refresh(account, true).unwrap() else {
                panic!("expected a request to send");
            };
            drop(pending);
        }
        v.close().unwrap();
        let v = vault(&path);
        assert!(lock_len(&v, "alice") > 0 && lock_len(&v, "bob") > 0);
        assert!(v.remove("alice").unwrap());
        assert_eq!(lock_len(&v, "alice"), 0, "the removed session's marker stayed");
        // A refresh holding the lock (another process) keeps its marker.
        let other = refresh_lock::RefreshLocks::new(&path);
        let held = other.try_acquire(&v.engine.key("bob").unwrap().hash).unwrap().unwrap();
        assert!(v.remove("bob").unwrap());
        assert!(lock_len(&v, "bob") > 0);
        drop(held);
    }

    #[test]
    fn the_probe_creates_no_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let v = vault(&path);
        for i in 0..5 {
            v.store(NewSession::new(format!("user-{i}"), "p", "at").refresh_credential("rt"))
                .unwrap();
        }
        // No refresh ran: the lock directory does not exist yet, and probing creates neither
        // it nor a lock file.
        let locks = refresh_lock::lock_dir(&path);
        let probe_all = || {
            for i in 0..5 {
                assert_eq!(v.lease_state(&format!("user-{i}")).unwrap(), LeaseState::Idle);
            }
        };
        assert!(!locks.exists(), "the lock directory exists before any refresh");
        probe_all();
        assert!(!locks.exists(), "the probe created the lock directory");
        // Once a refresh took a lock, probing still adds no file.
        drop(v.force_refresh("user-0"));
        let before = listing(&locks);
        probe_all();
        assert_eq!(listing(&locks), before);
    }

    #[test]
    fn account_report_carries_the_stored_verdict_and_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let v = vault(&path);
        v.store(NewSession::new("bob", "p", "secret-access").refresh_credential("secret-refresh"))
            .unwrap();
        let r = v.account_report("bob").unwrap();
        assert_eq!(r.verdict, None);
        assert_eq!(r.lease, LeaseState::Idle);
        assert_eq!(r.info.generation, 1);

        // The server refuses the credential: a verdict is stored with the session.
        let crate::vault::RefreshStep::Send(p) = v.begin_refresh("bob", true).unwrap() else {
            panic!("expected a request to send");
        };
        let refused = crate::transport::HttpResponse {
            status: 400,
            headers: vec![],
            body: br#"{"error":"invalid_grant","error_description":"Token is not active"}"#.to_vec(),
        };
        assert!(v.finish_refresh(p.attempt, refused).is_err());
        v.close().unwrap();
        let v = vault(&path);
        let r = v.account_report("bob").unwrap();
        let verdict = r.verdict.clone().expect("a stored verdict");
        assert_eq!(verdict.code, ErrorCode::ReauthenticationRequired);
        assert!(verdict.message.contains("invalid_grant"), "{}", verdict.message);
        let shown = format!("{r:?} {}", verdict.message);
        assert!(!shown.contains("secret-access") && !shown.contains("secret-refresh"));
    }

    #[test]
    fn check_file_reads_a_vault_without_its_key_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let v = vault(&path);
        for i in 0..3 {
            v.store(NewSession::new(format!("user-{i}"), "p", "at").refresh_credential("rt"))
                .unwrap();
        }
        v.close().unwrap();
        drop(v);
        let bytes = std::fs::read(&path).unwrap();
        let files = listing(dir.path());

        let r = check_file(&path).unwrap();
        assert_eq!(r.format, FileFormat::Vault);
        assert!(r.is_healthy());
        assert_eq!(r.application_id, Some(APPLICATION_ID));
        assert_eq!(r.schema_version, Some(SCHEMA_VERSION));
        assert_eq!(r.schema_status, Some(SchemaStatus::Current));
        assert_eq!(r.integrity_ok, Some(true));
        assert_eq!(r.session_count, Some(3));
        assert_eq!(r.key_slots, Some(1));
        assert_eq!(r.lost_answer_markers, Some(0));
        assert!(!r.log_not_read);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "check changed the file");
        assert_eq!(listing(dir.path()), files, "check created files");

        // While a vault has it open (its log and index exist), they are read.
        let v = vault(&path);
        v.store(NewSession::new("user-9", "p", "at").refresh_credential("rt"))
            .unwrap();
        let r = check_file(&path).unwrap();
        assert_eq!(r.session_count, Some(4));
        assert!(r.is_healthy());
    }

    #[test]
    fn check_file_tells_foreign_garbage_empty_newer_and_missing_files_apart() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        assert!(matches!(
            check_file(&missing),
            Err(VaultError::StorageUnavailable { .. })
        ));
        assert!(!missing.exists(), "check created a missing file");

        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(check_file(&empty).unwrap().format, FileFormat::Empty);

        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
        let r = check_file(&garbage).unwrap();
        assert_eq!(r.format, FileFormat::NotSqlite);
        assert!(!r.is_healthy());

        let foreign = dir.path().join("foreign.db");
        let c = Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(c);
        let r = check_file(&foreign).unwrap();
        assert_eq!(r.format, FileFormat::ForeignSqlite);
        assert_eq!(r.application_id, Some(0));
        assert!(!r.is_healthy());

        let newer = dir.path().join("newer.db");
        drop(vault(&newer));
        let c = Connection::open(&newer).unwrap();
        c.execute_batch(&format!("PRAGMA user_version = {};", SCHEMA_VERSION + 1))
            .unwrap();
        drop(c);
        let r = check_file(&newer).unwrap();
        assert_eq!(r.format, FileFormat::Vault);
        assert_eq!(r.schema_status, Some(SchemaStatus::Newer));
        assert_eq!(r.session_count, None);
        assert!(!r.is_healthy());
    }

    #[test]
    fn check_file_reports_a_pending_rekey_and_a_damaged_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let v = vault(&path);
        for i in 0..50 {
            v.store(NewSession::new(format!("user-{i}"), "p", "at").refresh_credential("rt"))
                .unwrap();
        }
        v.rekey(KeySource::raw(&[8u8; 32]).unwrap()).unwrap();
        drop(v);
        let r = check_file(&path).unwrap();
        assert_eq!(r.key_slots, Some(2));
        assert_eq!(r.key_epoch, Some(1));

        // Overwrite a page in the middle of the file (not the header): the check says so.
        let mut bytes = std::fs::read(&path).unwrap();
        let page = 4096;
        assert!(bytes.len() > 4 * page);
        for b in &mut bytes[2 * page..3 * page] {
            *b = 0xff;
        }
        std::fs::write(&path, &bytes).unwrap();
        let r = check_file(&path).unwrap();
        assert_eq!(r.integrity_ok, Some(false));
        assert!(!r.integrity_messages.is_empty());
        assert!(!r.is_healthy());
    }

    #[test]
    fn file_uris_escape_what_sqlite_would_read_as_uri_syntax() {
        assert_eq!(
            file_uri(Path::new("/tmp/a?b#c%d.db"), true),
            "file:/tmp/a%3Fb%23c%25d.db?mode=ro&immutable=1"
        );
        assert_eq!(file_uri(Path::new("v.db"), false), "file:v.db?mode=ro");
        assert_eq!(file_uri(Path::new("é.db"), false), "file:%C3%A9.db?mode=ro");
        // A real file under such a name is found (SQLite decodes the bytes back).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("joué ?#%.db");
        drop(vault(&path));
        assert_eq!(check_file(&path).unwrap().format, FileFormat::Vault);
    }
}
