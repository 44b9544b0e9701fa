//! The SQLite file: schema, migrations, pragmas and row access.
//!
//! This layer stores opaque, already-encrypted rows; it never sees a token or an account id
//! (only the keyed account hash). Rules it keeps (ADR 0001, ADR 0003):
//!
//! * `PRAGMA user_version` is the schema version; each step in [`MIGRATIONS`] moves one version
//!   forward inside one transaction. A file newer than [`SCHEMA_VERSION`] is refused and never
//!   written to. The key is checked *before* any migration runs.
//! * `PRAGMA application_id` marks our files; a non-empty SQLite file without it is refused.
//! * Nothing is ever deleted implicitly: rows go away only through an explicit `remove`.
//! * Writes use `BEGIN IMMEDIATE` so two processes never deadlock upgrading a read lock, and are
//!   durable on commit (`synchronous=FULL` in WAL mode).

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::crypto::{KdfParams, KeyKind, RecordCipher, WrappedKey};
use crate::error::{Error, StoreResult as Result, VaultError};

/// `PRAGMA application_id` of a tokenvault file: "TKVT".
pub const APPLICATION_ID: i32 = 0x544B_5654;

/// The newest schema version this code knows.
pub const SCHEMA_VERSION: i64 = 7;

/// One entry per version step: `MIGRATIONS[i]` moves a file from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema.
    r#"
    -- Vault-wide facts. One row.
    CREATE TABLE vault_meta (
        id                 INTEGER PRIMARY KEY CHECK (id = 1),
        created_at_ms      INTEGER NOT NULL,
        -- The highest generation a removed session had. A session's generation grows by one
        -- with every write; a new sign-in after a logout starts above this, so an account's
        -- generations never repeat. Written only on removal: a refresh touches one page less.
        removed_generation INTEGER NOT NULL
    ) STRICT;

    -- The data key, wrapped by the host's key or by an Argon2id-stretched passphrase.
    CREATE TABLE vault_key (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        kind        TEXT NOT NULL CHECK (kind IN ('raw', 'argon2id')),
        kdf_salt    BLOB,
        kdf_m_kib   INTEGER,
        kdf_t       INTEGER,
        kdf_p       INTEGER,
        wrap_nonce  BLOB NOT NULL,
        wrapped_key BLOB NOT NULL
    ) STRICT;

    -- One row per account. The account id exists only inside the ciphertext; the key column
    -- is a keyed hash. generation and format are in the clear but bound into the AEAD's
    -- associated data.
    -- A rowid table: a ~1.3 KB record fits one leaf page (a WITHOUT ROWID page holds ~1 KB
    -- per row, so every write also rewrote an overflow page).
    CREATE TABLE sessions (
        id           INTEGER PRIMARY KEY,
        account_hash BLOB NOT NULL UNIQUE,
        generation   INTEGER NOT NULL,
        format       INTEGER NOT NULL,
        nonce        BLOB NOT NULL,
        ciphertext   BLOB NOT NULL
    ) STRICT;

    -- Cross-process refresh coordination: who is refreshing which account, until when,
    -- which generation it refreshes, and which credential (by keyed hash) it sent. A lease whose
    -- generation is no longer the session's is finished; it is left in place (so the commit of
    -- the new pair writes one page) and overwritten by the next refresh.
    CREATE TABLE refresh_lease (
        account_hash    BLOB PRIMARY KEY NOT NULL,
        holder          TEXT NOT NULL,
        expires_at_ms   INTEGER NOT NULL,
        generation      INTEGER NOT NULL,
        credential_hash BLOB NOT NULL,
        sent            INTEGER NOT NULL DEFAULT 0
    ) STRICT, WITHOUT ROWID;
    "#,
    // 1 -> 2: refresh liveness moved to an OS lock (ADR 0004). The lease table becomes the
    // lost-answer marker: only what must survive a crash. A lease that had sent its request is
    // kept as a marker; anything else it held (holder, expiry) is dropped.
    r#"
    -- A row exists while a refresh request carrying this credential (by keyed hash) for this
    -- generation may have reached the server without its answer being stored. A row whose
    -- generation is no longer the session's is finished; it stays (so the commit of the new
    -- pair writes one page) and is overwritten by the next attempt.
    CREATE TABLE refresh_marker (
        account_hash    BLOB PRIMARY KEY NOT NULL,
        generation      INTEGER NOT NULL,
        credential_hash BLOB NOT NULL
    ) STRICT, WITHOUT ROWID;
    INSERT INTO refresh_marker (account_hash, generation, credential_hash)
        SELECT account_hash, generation, credential_hash FROM refresh_lease WHERE sent != 0;
    DROP TABLE refresh_lease;

    -- Two key slots (ADR 0010): slot 1 wraps the data key under the newest key; after a rekey,
    -- slot 2 wraps the same (new) data key under the key the vault was opened with, until the
    -- first open with the new key, so a host that crashed around a rekey can still open.
    CREATE TABLE key_slot (
        slot        INTEGER PRIMARY KEY CHECK (slot IN (1, 2)),
        kind        TEXT NOT NULL CHECK (kind IN ('raw', 'argon2id')),
        kdf_salt    BLOB,
        kdf_m_kib   INTEGER,
        kdf_t       INTEGER,
        kdf_p       INTEGER,
        wrap_nonce  BLOB NOT NULL,
        wrapped_key BLOB NOT NULL
    ) STRICT;
    INSERT INTO key_slot (slot, kind, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrap_nonce, wrapped_key)
        SELECT 1, kind, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrap_nonce, wrapped_key FROM vault_key;
    DROP TABLE vault_key;

    -- key_epoch grows with every rekey (another handle learns that its key is gone). The
    -- lookup key (keyed hashes of account ids) survives rekeys: once the data key changed it is
    -- stored here, sealed under the current data key; before that it is derived from it.
    ALTER TABLE vault_meta ADD COLUMN key_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE vault_meta ADD COLUMN lookup_nonce BLOB;
    ALTER TABLE vault_meta ADD COLUMN lookup_sealed BLOB;

    -- The authenticated state (store/manifest.rs): slot 0..=255 are buckets of
    -- (account hash, generation) pairs, slot 256 the root; each row MAC'd with the data key.
    CREATE TABLE manifest (
        slot    INTEGER PRIMARY KEY,
        version INTEGER NOT NULL,
        body    BLOB NOT NULL,
        mac     BLOB NOT NULL
    ) STRICT;
    "#,
    // 2 -> 3: the two ends of a session (logout revocation, OpenID Connect id_tokens).
    r#"
    -- Refresh credentials of removed sessions whose revocation (RFC 7009) is still to be sent.
    -- Each row is sealed under the data key, bound to its random id (the credential is inside);
    -- a row goes away when the server confirmed the revocation, or when the queue is full and
    -- it is the oldest (counted in vault_meta.revocations_dropped).
    CREATE TABLE revocation (
        id           BLOB PRIMARY KEY NOT NULL,
        queued_at_ms INTEGER NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        nonce        BLOB NOT NULL,
        ciphertext   BLOB NOT NULL
    ) STRICT, WITHOUT ROWID;
    ALTER TABLE vault_meta ADD COLUMN revocations_dropped INTEGER NOT NULL DEFAULT 0;

    -- Signing keys (JWKS) of OpenID issuers, by the keyed hash of the issuer, sealed under the
    -- data key (a key put into the file by someone without it cannot make a forged id_token
    -- pass).
    CREATE TABLE jwks (
        issuer_hash   BLOB PRIMARY KEY NOT NULL,
        fetched_at_ms INTEGER NOT NULL,
        nonce         BLOB NOT NULL,
        ciphertext    BLOB NOT NULL
    ) STRICT, WITHOUT ROWID;
    "#,
    // 3 -> 4: the lost-answer markers live in the refresh-lock files (ADR 0004): writing one
    // no longer costs a transaction of this file on every refresh. `migrate` copies the
    // markers that still matter into the lock files before this step drops the table.
    r#"
    DROP TABLE refresh_marker;
    "#,
    // 4 -> 5: everything an open reads in one table (one B-tree page for a small vault instead
    // of three: docs/adr/0015-one-table-for-what-the-open-reads.md). The manifest's table keeps
    // its name and its rows (slots 0-256); the metadata row becomes slot 1000 and key slot n
    // becomes slot 1000 + n. The metadata gains `revocations_waiting`: 0 only when the
    // revocation queue is empty (set with every queued revocation, recomputed when one goes),
    // so an open reads the queue's table only when something may wait in it.
    r#"
    CREATE TABLE vault_state (
        slot                INTEGER PRIMARY KEY,
        -- Manifest rows (0-255 buckets, 256 the root).
        version             INTEGER,
        body                BLOB,
        mac                 BLOB,
        -- The metadata row (1000).
        created_at_ms       INTEGER,
        removed_generation  INTEGER,
        key_epoch           INTEGER,
        lookup_nonce        BLOB,
        lookup_sealed       BLOB,
        revocations_dropped INTEGER,
        revocations_waiting INTEGER,
        -- Key slots (1001, 1002).
        kind                TEXT,
        kdf_salt            BLOB,
        kdf_m_kib           INTEGER,
        kdf_t               INTEGER,
        kdf_p               INTEGER,
        wrap_nonce          BLOB,
        wrapped_key         BLOB,
        CHECK (
            (slot BETWEEN 0 AND 256 AND version IS NOT NULL AND body IS NOT NULL AND mac IS NOT NULL)
            OR (slot = 1000 AND created_at_ms IS NOT NULL AND removed_generation IS NOT NULL
                AND key_epoch IS NOT NULL AND revocations_dropped IS NOT NULL
                AND revocations_waiting IN (0, 1))
            OR (slot IN (1001, 1002) AND kind IN ('raw', 'argon2id') AND wrap_nonce IS NOT NULL
                AND wrapped_key IS NOT NULL)
        )
    ) STRICT;
    INSERT INTO vault_state (slot, version, body, mac) SELECT slot, version, body, mac FROM manifest;
    INSERT INTO vault_state (slot, created_at_ms, removed_generation, key_epoch, lookup_nonce, lookup_sealed,
                             revocations_dropped, revocations_waiting)
        SELECT 1000, created_at_ms, removed_generation, key_epoch, lookup_nonce, lookup_sealed, revocations_dropped,
               EXISTS (SELECT 1 FROM revocation)
        FROM vault_meta WHERE id = 1;
    INSERT INTO vault_state (slot, kind, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrap_nonce, wrapped_key)
        SELECT 1000 + slot, kind, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrap_nonce, wrapped_key FROM key_slot;
    DROP TABLE manifest;
    DROP TABLE key_slot;
    DROP TABLE vault_meta;
    ALTER TABLE vault_state RENAME TO manifest;
    "#,
    // 5 -> 6: fewer schema objects for a new connection to parse before its first statement
    // (docs/adr/0016-fewer-schema-objects-on-the-cold-path.md). The manifest's table loses its
    // `CHECK` (the code that reads each row kind checks it); `migrate` then drops the
    // revocation queue's and the key-set cache's tables if they are empty: they are created
    // again by the first write that needs them ([`REVOCATION_TABLE`], [`JWKS_TABLE`]).
    r#"
    CREATE TABLE vault_state (slot INTEGER PRIMARY KEY, version INTEGER, body BLOB, mac BLOB,
        created_at_ms INTEGER, removed_generation INTEGER, key_epoch INTEGER, lookup_nonce BLOB,
        lookup_sealed BLOB, revocations_dropped INTEGER, revocations_waiting INTEGER, kind TEXT,
        kdf_salt BLOB, kdf_m_kib INTEGER, kdf_t INTEGER, kdf_p INTEGER, wrap_nonce BLOB,
        wrapped_key BLOB) STRICT;
    INSERT INTO vault_state SELECT * FROM manifest;
    DROP TABLE manifest;
    ALTER TABLE vault_state RENAME TO manifest;
    "#,
    // 6 -> 7: the session rows move into the manifest's table
    // (docs/adr/0017-sessions-in-the-manifest-table.md): in a vault of one session its row, the
    // manifest's root and bucket, the metadata and the key slots share one B-tree page, so a
    // refresh or a store commits one page (one log frame) instead of two. A session row is a
    // row with an account hash at a slot of 2000 or above, after every other kind of row. The
    // unique index finds an account's row; a refresh does not change the indexed column, so it
    // never writes the index.
    r#"
    ALTER TABLE manifest ADD COLUMN account_hash BLOB;
    ALTER TABLE manifest ADD COLUMN generation INTEGER;
    ALTER TABLE manifest ADD COLUMN format INTEGER;
    ALTER TABLE manifest ADD COLUMN nonce BLOB;
    ALTER TABLE manifest ADD COLUMN ciphertext BLOB;
    INSERT INTO manifest (slot, account_hash, generation, format, nonce, ciphertext)
        SELECT 2000 + id, account_hash, generation, format, nonce, ciphertext
        FROM sessions;
    DROP TABLE sessions;
    CREATE UNIQUE INDEX manifest_account ON manifest (account_hash);
    "#,
];

/// The revocation queue's table (schema 6: created by the first queued revocation). Refresh
/// credentials of removed sessions whose revocation (RFC 7009) is still to be sent; each row
/// sealed under the data key, bound to its random id.
const REVOCATION_TABLE: &str = "CREATE TABLE IF NOT EXISTS revocation (id BLOB PRIMARY KEY NOT NULL, \
    queued_at_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, nonce BLOB NOT NULL, \
    ciphertext BLOB NOT NULL) STRICT, WITHOUT ROWID";

/// The key-set cache's table (schema 6: created by the first cached key set). Signing keys
/// (JWKS) of OpenID issuers, by the keyed hash of the issuer, sealed under the data key.
const JWKS_TABLE: &str = "CREATE TABLE IF NOT EXISTS jwks (issuer_hash BLOB PRIMARY KEY NOT NULL, \
    fetched_at_ms INTEGER NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL) STRICT, WITHOUT ROWID";

/// The step to schema 6 (and a new file) drops the revocation queue's and the key-set cache's
/// tables if they are empty: the first write that needs one creates it again.
fn drop_empty_lazy_tables(conn: &Connection) -> Result<()> {
    for table in ["revocation", "jwks"] {
        let empty: bool = conn.query_row(&format!("SELECT NOT EXISTS (SELECT 1 FROM {table})"), [], |r| r.get(0))?;
        if empty {
            conn.execute_batch(&format!("DROP TABLE {table};"))?;
        }
    }
    Ok(())
}

/// Whether the file has a table of this name (the revocation queue's and the key-set cache's
/// tables exist only once something was written to them).
fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)")?
        .query_row(params![name], |r| r.get(0))?)
}

/// The slot of the metadata row in the `manifest` table (schema 5).
const META_SLOT: i64 = 1000;
/// Key slot n is row `KEY_SLOT_BASE + n` of the `manifest` table (schema 5).
const KEY_SLOT_BASE: i64 = 1000;
/// The `WHERE` condition of the session rows of the manifest's table (schema 7): an account hash
/// at a session slot ([`SESSION_SLOT_BASE`] and up). A macro so that `concat!` builds whole
/// statements from it.
macro_rules! session_rows {
    () => {
        "account_hash IS NOT NULL AND slot >= 2000"
    };
}
pub(crate) use session_rows;

/// Session rows (schema 7) have slots from here up, after every other kind of row (the SQL that
/// places a new session, `max(2000, ...)`, the one that reads the open state, `slot < 2000`,
/// and [`session_rows`] spell the number).
const SESSION_SLOT_BASE: i64 = 2000;

/// A row found by its account hash is a session's only at a session's slot: an account hash on
/// a row of another kind (a tampered file) is `Corrupt` for that account, never read, written
/// or deleted as its session.
fn session_slot(slot: i64) -> Result<()> {
    if slot < SESSION_SLOT_BASE {
        return Err(VaultError::corrupt("a session's account hash is on a row of another kind").into());
    }
    Ok(())
}

/// What the step to schema 4 hands over: the markers of a schema-3 file that still matter, as
/// (account hash, generation, credential hash).
pub(crate) type LegacyMarkers = [LegacyMarker];

/// One marker of a schema-3 file: (account hash, generation, credential hash).
pub(crate) type LegacyMarker = (Vec<u8>, u64, Vec<u8>);

/// A cached key set as stored: (fetched at, nonce, ciphertext).
pub(crate) type SealedJwks = (i64, Vec<u8>, Vec<u8>);

/// The most revocations kept waiting; beyond it the oldest is dropped (and counted).
pub(crate) const MAX_PENDING_REVOCATIONS: i64 = 256;

/// A revocation waiting to be sent, as stored (sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RevocationRow {
    pub id: Vec<u8>,
    pub queued_at_ms: i64,
    pub attempts: u32,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// A raw session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionRow {
    pub account_hash: Vec<u8>,
    pub generation: u64,
    pub format: i64,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl SessionRow {
    /// The row of `account_hash` from columns 1-4 of `r` (generation, format, nonce,
    /// ciphertext), as the statements that read session rows select them.
    fn from_columns(account_hash: Vec<u8>, r: &rusqlite::Row<'_>) -> Result<Self> {
        Ok(SessionRow {
            account_hash,
            generation: to_u64(r.get(1)?)?,
            format: r.get(2)?,
            nonce: r.get(3)?,
            ciphertext: r.get(4)?,
        })
    }
}

/// A sealed value as stored: (nonce, ciphertext).
pub(crate) type SealedBlob = (Vec<u8>, Vec<u8>);

/// What [`Store::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileState {
    /// An empty (new) file: it must be initialised.
    Empty,
    /// An existing vault at this schema version (≤ [`SCHEMA_VERSION`]).
    Existing(i64),
}

/// The SQLite connection of one vault, and what this instance has seen of the file's
/// authenticated state.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Connection,
    /// The highest manifest counter read or written: a lower one later means the file went
    /// back in time under this instance.
    root_seen: u64,
    /// The key epoch this instance's data key belongs to.
    key_epoch: u64,
    /// Accounts whose row this connection checked against the manifest, or wrote, at this
    /// generation, while `PRAGMA data_version` stayed `verified_at` (no other connection
    /// committed since): reading such a row again needs no new check.
    /// Keyed by the 32-byte account hash inline (no allocation per account); at most
    /// [`VERIFIED_MAX`] entries (a forgotten one only costs the manifest check again).
    verified: crate::engine::FastMap<[u8; 32], u64>,
    verified_at: i64,
    /// The metadata's `revocations_waiting` as [`key_state`](Self::key_state) read it: `false`
    /// means the revocation queue is empty.
    revocations_flag: bool,
    /// What the open read of a schema-5 file in one statement, valid while the open's read
    /// transaction lasts ([`end_read`](Self::end_read) drops it).
    open_state: Option<OpenState>,
    /// The manifest root this connection last authenticated (with the scan for newer buckets),
    /// and when: reused while nothing changed the file since (see [`RootSeen`]).
    root_cache: Option<RootSeen>,
    /// What this connection's last session write left in the manifest (see [`WriteSeen`]).
    write_seen: Option<WriteSeen>,
}

/// The manifest root and bucket a session write of this connection committed, the row it
/// wrote, and the moment: `PRAGMA data_version` read inside that write's transaction (it moves
/// only when another connection commits) and the connection's change count after the commit
/// (it moves with every row this connection changes afterwards). The next write (a refresh of
/// the same account, typically) finds both unchanged inside its own transaction: the manifest
/// rows and the row are byte for byte what this connection wrote and authenticated, so it
/// neither reads nor re-checks them. Anything else (another connection's commit, any other
/// write of this one, a failed or abandoned write, another bucket) reads them as before.
#[derive(Debug)]
struct WriteSeen {
    data_version: i64,
    changes: u64,
    root: manifest::Root,
    bucket: manifest::Bucket,
    /// The account whose row was written, and its generation.
    account: Vec<u8>,
    generation: u64,
}

/// A manifest root read and authenticated at a moment of the file: `PRAGMA data_version` (moves
/// when another connection commits) and the connection's own change count (moves with every
/// row this connection inserts, updates or deletes, committed or not). While both are
/// unchanged no byte of the manifest changed, so the root need not be read and checked again:
/// the open's root serves the first read, and each account's first read after it.
#[derive(Debug)]
struct RootSeen {
    data_version: i64,
    changes: u64,
    root: manifest::Root,
    /// Bucket rows read with the root (the open reads a small vault's buckets with it), checked
    /// against the root only when used.
    buckets: Vec<(u8, manifest::SlotRow)>,
    /// Whether `buckets` holds every bucket row the file has.
    all_buckets: bool,
}

impl RootSeen {
    /// A bucket's stored row as read with the root: `Some(None)` when the file has none,
    /// `None` when it was not read.
    fn bucket(&self, slot: u8) -> Option<Option<manifest::SlotRow>> {
        match self.buckets.iter().find(|(s, _)| *s == slot) {
            Some((_, row)) => Some(Some(row.clone())),
            None => self.all_buckets.then_some(None),
        }
    }
}

/// Whether a manifest root remembered at `then` (`PRAGMA data_version`, the connection's change
/// count) still is the file's at `now`: no other connection committed, this one changed no row,
/// and it is not older than what this instance saw (`seen`).
fn still_current(then: (i64, u64), now: (i64, u64), root: &manifest::Root, seen: u64) -> bool {
    then == now && root.version >= seen
}

/// How many bucket rows an open reads with the root: all of a small vault's (up to this many
/// buckets: a handful of sessions), so its first reads need no statement of their own.
const OPEN_BUCKETS: usize = 4;

/// A key slot row as stored: (slot, kind, salt, m KiB, t, p, nonce, wrapped key).
type KeySlotRow = (
    i64,
    String,
    Option<Vec<u8>>,
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Vec<u8>,
    Vec<u8>,
);

/// The metadata row's key state: (key epoch, lookup nonce, sealed lookup key, revocations
/// waiting).
type MetaRow = (i64, Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// A key slot row as stored, numbered `slot`, from the seven columns of `r` starting at
/// `first` (kind, salt, m KiB, t, p, nonce, wrapped key).
fn key_slot_row(r: &rusqlite::Row<'_>, slot: i64, first: usize) -> rusqlite::Result<KeySlotRow> {
    Ok((
        slot,
        r.get(first)?,
        r.get(first + 1)?,
        r.get(first + 2)?,
        r.get(first + 3)?,
        r.get(first + 4)?,
        r.get(first + 5)?,
        r.get(first + 6)?,
    ))
}

/// Everything an open of a schema-5 file reads, from one statement over the manifest's table
/// (the root, the metadata row and the key slots share its pages): raw rows, checked where they
/// are used, exactly as the statements they replace would have been.
#[derive(Debug, Default)]
struct OpenState {
    slots: Vec<KeySlotRow>,
    meta: Option<MetaRow>,
    root: Option<manifest::SlotRow>,
    /// The highest version of any bucket (for the "bucket newer than the root" check).
    newest_bucket: Option<i64>,
    /// The highest-numbered bucket rows, up to [`OPEN_BUCKETS`].
    buckets: Vec<(u8, manifest::SlotRow)>,
    /// Whether `buckets` holds every bucket row of the file.
    all_buckets: bool,
}

/// How many accounts' verified generations a connection remembers: the accounts a host reads
/// again and again, without an entry per stored session in a vault of thousands.
const VERIFIED_MAX: usize = 256;

/// An account hash as a fixed-size key (HMAC-SHA-256: always 32 bytes; anything else is never
/// remembered, so it is checked again on every read).
pub(crate) fn hash32(hash: &[u8]) -> Option<[u8; 32]> {
    hash.try_into().ok()
}

/// Create the vault file readable and writable by its owner only (0600 whatever the umask), if
/// it does not exist yet. SQLite gives its `-wal` and `-shm` files the main file's mode.
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(file) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                // The umask cannot widen 0600, but a narrower umask (0o277) could leave it
                // unwritable: set it exactly.
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| io_unavailable("cannot set the vault file's permissions", &e))?;
            }
            drop(file);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && path.parent().is_some_and(|d| !d.as_os_str().is_empty() && !d.exists()) =>
        {
            Err(Error::Vault(VaultError::StorageUnavailable {
                reason: "the folder of the vault file does not exist (create it first)".into(),
            }))
        }
        Err(e) => Err(io_unavailable("cannot create the vault file", &e)),
    }
}

fn io_unavailable(what: &str, e: &std::io::Error) -> Error {
    Error::Vault(VaultError::StorageUnavailable {
        reason: format!("{what} ({:?})", e.kind()),
    })
}

fn to_u64(v: i64) -> Result<u64> {
    Ok(u64::try_from(v).map_err(|_| VaultError::corrupt("negative generation"))?)
}

fn to_i64(v: u64) -> Result<i64> {
    Ok(i64::try_from(v).map_err(|_| VaultError::internal("generation overflow"))?)
}

impl Store {
    /// Remember that the account's row was checked against the manifest at `generation`.
    fn remember_verified(&mut self, hash: [u8; 32], generation: u64) -> Option<u64> {
        if self.verified.len() >= VERIFIED_MAX && !self.verified.contains_key(&hash) {
            self.verified.clear();
        }
        self.verified.insert(hash, generation)
    }

    /// Open (or create) the file and read its state, without writing anything to an existing
    /// file.
    pub(crate) fn open(path: &Path, busy_timeout: Duration) -> Result<(Store, FileState)> {
        // An existing file is opened as it is (no create attempt, one system call fewer); only a
        // missing one is created, by us, 0600.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match Connection::open_with_flags(path, flags) {
            Ok(conn) => conn,
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::CannotOpen => {
                create_private(path)?;
                Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_CREATE)?
            }
            Err(e) => return Err(e.into()),
        };
        // Wait for another process's write lock instead of failing at once.
        conn.busy_timeout(busy_timeout)?;
        // Connection settings, not written to the file (the journal mode is, see `configure`).
        // FULL: in WAL mode, fsync the log on every commit, so a returned write survives power
        // loss, not only a crash of the process: a rotated pair is durable before it is used.
        // secure_delete overwrites freed pages so removed sessions' ciphertext does not linger
        // in the file.
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;")?;
        let mut store = Store {
            conn,
            root_seen: 0,
            key_epoch: 0,
            verified: Default::default(),
            verified_at: 0,
            revocations_flag: true,
            open_state: None,
            root_cache: None,
            write_seen: None,
        };

        // Everything the open reads (header, key slots, key state, manifest root, the
        // revocation flag) is read in one read transaction, which `end_read` closes: one
        // shared lock taken and released instead of one per statement.
        store.begin_read()?;
        let app_id: i32 = store.conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let version: i64 = store.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        // Both header fields are zero in a new (empty) file and in an SQLite file that is not
        // ours: only then does the page count tell them apart.
        if app_id == 0 && version == 0 {
            let page_count: i64 = store.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            if page_count == 0 {
                store.end_read()?;
                return Ok((store, FileState::Empty));
            }
        }
        if app_id != APPLICATION_ID {
            return Err(VaultError::corrupt("the file is an SQLite database but not a tokenvault vault").into());
        }
        if version > SCHEMA_VERSION {
            return Err(VaultError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            }
            .into());
        }
        if version < 1 {
            return Err(VaultError::corrupt("the vault file has no schema").into());
        }
        if version >= 5 {
            store.open_state = Some(store.read_open_state()?);
        }
        Ok((store, FileState::Existing(version)))
    }

    /// The root, the metadata row and the key slots of a file of schema 5 or later, and the
    /// newest bucket's version, in one statement (each further statement on a new connection
    /// costs more than the rows it reads).
    fn read_open_state(&self) -> Result<OpenState> {
        // `*` is the table's columns in their schema-5 order (slot; version, body, mac;
        // created_at_ms, removed_generation, key_epoch, lookup_nonce, lookup_sealed,
        // revocations_dropped, revocations_waiting; kind, kdf_salt, kdf_m_kib, kdf_t, kdf_p,
        // wrap_nonce, wrapped_key), then the newest bucket's version: the shortest statement to
        // parse on a new connection, where every token and column counts. Highest slot first:
        // the key slots, the metadata, the root, then as many buckets as a small vault has (the
        // scan stops after [`OPEN_BUCKETS`]).
        // Schema 7 appended the session columns (account_hash, generation, format, nonce,
        // ciphertext) to the table: the subquery's column is the last one, whatever the schema.
        let mut stmt = self.conn.prepare(
            "SELECT *, (SELECT max(version) FROM manifest WHERE slot < 256) FROM manifest WHERE slot < 2000 \
             ORDER BY slot DESC",
        )?;
        let newest_bucket_column = stmt.column_count() - 1;
        let mut rows = stmt.query([])?;
        let mut state = OpenState {
            all_buckets: true,
            ..OpenState::default()
        };
        while let Some(r) = rows.next()? {
            state.newest_bucket = r.get(newest_bucket_column)?;
            match r.get::<_, i64>(0)? {
                slot @ 0..=255 => {
                    if state.buckets.len() == OPEN_BUCKETS {
                        state.all_buckets = false;
                        break;
                    }
                    match (u8::try_from(slot), manifest::slot_row(r, 1)) {
                        (Ok(slot), Ok(row)) => state.buckets.push((slot, row)),
                        // A malformed bucket row is read again, and refused, by the first read
                        // of an account in it: `Corrupt` for those accounts, not for the open.
                        _ => state.all_buckets = false,
                    }
                }
                manifest::ROOT_SLOT => state.root = Some(manifest::slot_row(r, 1)?),
                META_SLOT => state.meta = Some((r.get(6)?, r.get(7)?, r.get(8)?, r.get(10)?)),
                slot @ 1001..=1002 => state.slots.push(key_slot_row(r, slot - KEY_SLOT_BASE, 11)?),
                _ => {}
            }
        }
        // Slot 1 first, as `key_slots` promises (the scan went down).
        state.slots.reverse();
        Ok(state)
    }

    /// Start the read transaction of [`Store::open`] (a deferred `BEGIN`: the shared lock is
    /// taken by the first read).
    fn begin_read(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        Ok(())
    }

    /// End the open's read transaction, if it is still open: before the open writes anything
    /// (a new file, a migration, a confirmed rekey) and at the end of the open.
    pub(crate) fn end_read(&mut self) -> Result<()> {
        self.open_state = None;
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    /// WAL mode for a file we are going to use. Only called after the key has been checked (or
    /// on a new file), because switching the journal mode writes to the file header: a file
    /// already in WAL mode (every file this code created) is only checked, inside the open's
    /// read transaction.
    pub(crate) fn configure(&mut self) -> Result<()> {
        // WAL: readers never block the writer, and a commit is one append + fsync.
        if !self.conn.is_autocommit() {
            let mode: String = self.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            if mode.eq_ignore_ascii_case("wal") {
                return Ok(());
            }
            self.end_read()?;
        }
        let mode: String = self.conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(VaultError::StorageUnavailable {
                reason: format!("the file system refused WAL mode (got {mode})"),
            }
            .into());
        }
        Ok(())
    }

    /// Create the schema of a new file, its key slot and its (empty) manifest.
    pub(crate) fn initialise(&mut self, wrapped: &WrappedKey, cipher: &RecordCipher, now_ms: i64) -> Result<()> {
        self.configure()?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        // Another process may have initialised the file between our check and this lock.
        let v: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if v != 0 {
            return Err(VaultError::StorageUnavailable {
                reason: "another process created this vault at the same moment; open it again".into(),
            }
            .into());
        }
        for step in MIGRATIONS {
            tx.execute_batch(step)?;
        }
        drop_empty_lazy_tables(&tx)?;
        tx.execute(
            "INSERT INTO manifest (slot, created_at_ms, removed_generation, key_epoch, revocations_dropped,
                                   revocations_waiting)
             VALUES (?1, ?2, 0, 0, 0, 0)",
            params![META_SLOT, now_ms],
        )?;
        Self::write_slot(&tx, 1, wrapped)?;
        let root = manifest::rebuild(&tx, cipher, manifest::SessionRows::ManifestTable, 0, 1)?;
        tx.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
        ))?;
        tx.commit()?;
        self.root_seen = root.version;
        Ok(())
    }

    /// Bring an existing, key-checked file up to [`SCHEMA_VERSION`], one step per transaction.
    /// The step to schema 2 also builds the manifest over the rows as they are, in the same
    /// transaction (a crash leaves a version-1 file, or a version-2 file with its manifest).
    ///
    /// `export_markers` receives the markers of a schema-3 file (step to schema 4), inside the
    /// step's transaction: the step commits only if they were written elsewhere.
    pub(crate) fn migrate(
        &mut self,
        from: i64,
        cipher: &RecordCipher,
        export_markers: impl Fn(&LegacyMarkers) -> crate::error::Result<()>,
    ) -> Result<()> {
        self.end_read()?;
        let mut version = from;
        while version < SCHEMA_VERSION {
            let idx = usize::try_from(version).map_err(|_| VaultError::corrupt("bad schema version"))?;
            let step = MIGRATIONS
                .get(idx)
                .ok_or_else(|| VaultError::internal("missing migration step"))?;
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if current == version {
                if version + 1 == 4 {
                    export_markers(&Self::legacy_markers(&tx)?)?;
                }
                tx.execute_batch(step)?;
                if version + 1 == 2 {
                    let floor: i64 =
                        tx.query_row("SELECT removed_generation FROM vault_meta WHERE id = 1", [], |r| {
                            r.get(0)
                        })?;
                    let root = manifest::rebuild(&tx, cipher, manifest::SessionRows::OwnTable, to_u64(floor)?, 1)?;
                    self.root_seen = root.version;
                }
                if version + 1 == 6 {
                    drop_empty_lazy_tables(&tx)?;
                }
                tx.execute_batch(&format!("PRAGMA user_version = {};", version + 1))?;
            }
            tx.commit()?;
            version = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        }
        Ok(())
    }

    fn write_slot(conn: &Connection, slot: i64, w: &WrappedKey) -> Result<()> {
        conn.execute(
            "INSERT INTO manifest (slot, kind, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrap_nonce, wrapped_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                KEY_SLOT_BASE + slot,
                w.kind.as_str(),
                w.salt,
                w.kdf.map(|k| k.m_kib),
                w.kdf.map(|k| k.t),
                w.kdf.map(|k| k.p),
                w.nonce,
                w.wrapped
            ],
        )?;
        Ok(())
    }

    /// The wrapped data key's slots, slot 1 first (read-only). A schema-1 file has one, in its
    /// `vault_key` table.
    pub(crate) fn key_slots(&self, schema: i64) -> Result<Vec<(i64, WrappedKey)>> {
        let rows = match &self.open_state {
            Some(state) => state.slots.clone(),
            None => self.key_slot_rows(schema)?,
        };
        let mut out = Vec::new();
        for (slot, kind, salt, m, t, p, nonce, wrapped) in rows {
            let kdf = match (m, t, p) {
                (Some(m_kib), Some(t), Some(p)) => Some(KdfParams { m_kib, t, p }),
                _ => None,
            };
            out.push((
                slot,
                WrappedKey {
                    kind: KeyKind::parse(&kind)?,
                    salt,
                    kdf,
                    nonce,
                    wrapped,
                },
            ));
        }
        if out.is_empty() {
            return Err(VaultError::corrupt("the vault has no key row").into());
        }
        Ok(out)
    }

    fn key_slot_rows(&self, schema: i64) -> Result<Vec<KeySlotRow>> {
        let sql = if schema < 2 {
            "SELECT 1, kind, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrap_nonce, wrapped_key FROM vault_key WHERE id = 1"
        } else if schema < 5 {
            "SELECT slot, kind, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrap_nonce, wrapped_key FROM key_slot ORDER BY slot"
        } else {
            "SELECT slot - 1000, kind, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrap_nonce, wrapped_key FROM manifest
             WHERE slot IN (1001, 1002) ORDER BY slot"
        };
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| key_slot_row(r, r.get(0)?, 1))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// The key epoch and the sealed lookup key once a rekey stored it.
    pub(crate) fn key_state(&mut self) -> Result<(u64, Option<SealedBlob>)> {
        let meta = match self.open_state.as_mut().and_then(|state| state.meta.take()) {
            Some(meta) => Some(meta),
            None => self
                .conn
                .query_row(
                    "SELECT key_epoch, lookup_nonce, lookup_sealed, revocations_waiting FROM manifest WHERE slot = ?1",
                    params![META_SLOT],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?,
        };
        let (epoch, nonce, sealed, waiting) =
            meta.ok_or_else(|| VaultError::corrupt("the vault has no metadata row"))?;
        let epoch = to_u64(epoch)?;
        self.key_epoch = epoch;
        self.revocations_flag = waiting != 0;
        Ok((epoch, nonce.zip(sealed)))
    }

    /// The data key was opened through slot 1, the newest key: forget the retiring slot and
    /// checkpoint, so that the old key opens nothing any more.
    pub(crate) fn drop_retiring_slot(&mut self) -> Result<bool> {
        self.end_read()?;
        let n = self
            .conn
            .execute("DELETE FROM manifest WHERE slot = ?1", params![KEY_SLOT_BASE + 2])?;
        if n > 0 {
            self.checkpoint();
        }
        Ok(n > 0)
    }

    /// Move the log into the file and truncate it, so that no old page (an old ciphertext, an
    /// old wrapped key) stays in the `-wal` file. Another connection reading at that moment can
    /// keep the log from being truncated: logged, retried by the next checkpoint.
    pub(crate) fn checkpoint(&self) {
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0))
        {
            Ok(0) => {}
            Ok(_) => log::warn!("the log could not be truncated (another connection is reading)"),
            Err(e) => log::warn!("checkpoint failed ({})", VaultError::from(Error::from(e)).code()),
        }
    }

    /// Replace the data key: every record re-sealed by `reseal`, the manifest re-MAC'd under
    /// `new`, the key slots and the sealed lookup key replaced, in one transaction; then a
    /// truncating checkpoint. Refuses (changing nothing) if any session fails its check.
    pub(crate) fn rotate_key(
        &mut self,
        old: &RecordCipher,
        new: &RecordCipher,
        mut reseal: impl FnMut(&SessionRow) -> crate::error::Result<(i64, Vec<u8>, Vec<u8>)>,
        slots: &[WrappedKey],
        lookup_sealed: (Vec<u8>, Vec<u8>),
    ) -> Result<()> {
        let epoch = self.key_epoch;
        let seen = self.root_seen;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let root = Self::root_in(&tx, old, seen, epoch)?;
        let (rows, malformed) = Self::rows_in(&tx)?;
        if malformed > 0 {
            return Err(VaultError::corrupt("a session row is malformed").into());
        }
        let mut buckets: std::collections::BTreeMap<u8, manifest::Bucket> = Default::default();
        for slot in root.buckets.keys() {
            buckets.insert(*slot, manifest::read_bucket(&tx, old, &root, *slot)?);
        }
        for bucket in buckets.values() {
            for hash in bucket.entries.keys() {
                if !rows.iter().any(|r| &r.account_hash == hash) {
                    return Err(VaultError::corrupt("a session the manifest lists is missing from the file").into());
                }
            }
        }
        for row in &rows {
            let empty = manifest::Bucket::default();
            let bucket = buckets.get(&manifest::bucket_of(&row.account_hash)).unwrap_or(&empty);
            manifest::check_entry(bucket, &row.account_hash, Some(row.generation))?;
            let (format, nonce, ct) = reseal(row)?;
            tx.prepare_cached("UPDATE manifest SET format = ?2, nonce = ?3, ciphertext = ?4 WHERE account_hash = ?1")?
                .execute(params![row.account_hash, format, nonce, ct])?;
        }
        let version = root
            .version
            .checked_add(1)
            .ok_or_else(|| VaultError::internal("manifest counter overflow"))?;
        let root = manifest::rebuild(&tx, new, manifest::SessionRows::ManifestTable, root.floor, version)?;
        Self::reseal_blobs(&tx, old, new)?;
        tx.execute("DELETE FROM manifest WHERE slot IN (1001, 1002)", [])?;
        for (i, w) in slots.iter().enumerate() {
            Self::write_slot(&tx, i64::try_from(i).unwrap_or(1) + 1, w)?;
        }
        let next_epoch = epoch
            .checked_add(1)
            .ok_or_else(|| VaultError::internal("key epoch overflow"))?;
        tx.execute(
            "UPDATE manifest SET key_epoch = ?1, lookup_nonce = ?2, lookup_sealed = ?3 WHERE slot = ?4",
            params![to_i64(next_epoch)?, lookup_sealed.0, lookup_sealed.1, META_SLOT],
        )?;
        tx.commit()?;
        self.verified.clear();
        self.key_epoch = next_epoch;
        self.root_seen = root.version;
        self.checkpoint();
        Ok(())
    }

    /// Re-seal the queued revocations and the cached key sets under the new data key.
    fn reseal_blobs(conn: &Connection, old: &RecordCipher, new: &RecordCipher) -> Result<()> {
        let tables: [(&str, &str, &str); 2] = [
            ("revocation", "id", crate::crypto::REVOCATION_DOMAIN),
            ("jwks", "issuer_hash", crate::crypto::JWKS_DOMAIN),
        ];
        for (table, key, domain) in tables {
            if !has_table(conn, table)? {
                continue;
            }
            let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = conn
                .prepare(&format!("SELECT {key}, nonce, ciphertext FROM {table}"))?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<std::result::Result<_, _>>()?;
            for (id, nonce, ct) in rows {
                let plain = old.open_blob(domain, &id, &nonce, &ct)?;
                let (nonce, ct) = new.seal_blob(domain, &id, &plain)?;
                conn.execute(
                    &format!("UPDATE {table} SET nonce = ?2, ciphertext = ?3 WHERE {key} = ?1"),
                    params![id, nonce, ct],
                )?;
            }
        }
        Ok(())
    }

    /// The authenticated root, checked against what this instance saw; a MAC failure is told
    /// apart: the data key was replaced by another handle (`WrongKey`), or tampering.
    fn root_in(conn: &Connection, cipher: &RecordCipher, seen: u64, epoch: u64) -> Result<manifest::Root> {
        let root = manifest::read_root(conn, cipher).map_err(|e| Self::classify(conn, e, epoch))?;
        let newest: Option<i64> = conn
            .prepare_cached("SELECT max(version) FROM manifest WHERE slot < 256")?
            .query_row([], |r| r.get(0))?;
        Self::check_root(root, seen, newest)
    }

    /// An authenticated root against what this instance saw, and against the newest bucket: a
    /// bucket newer than the root means the root itself was put back from an older copy.
    fn check_root(root: manifest::Root, seen: u64, newest_bucket: Option<i64>) -> Result<manifest::Root> {
        let root = Self::check_seen(root, seen)?;
        if newest_bucket.map(to_u64).transpose()?.is_some_and(|v| v > root.version) {
            return Err(VaultError::corrupt(
                "the manifest root is older than one of its buckets (part of the file was rolled back)",
            )
            .into());
        }
        Ok(root)
    }

    fn check_seen(root: manifest::Root, seen: u64) -> Result<manifest::Root> {
        if root.version < seen {
            return Err(
                VaultError::corrupt("the vault file went back in time (an older copy replaced it while open)").into(),
            );
        }
        Ok(root)
    }

    /// The root for a write: authenticated and checked against what this instance saw, without
    /// the scan for buckets newer than it. A write over a stale root cannot hide it: the buckets
    /// it does not rewrite stay newer than the root, and the next read refuses the vault.
    fn root_for_write(conn: &Connection, cipher: &RecordCipher, seen: u64, epoch: u64) -> Result<manifest::Root> {
        let root = manifest::read_root(conn, cipher).map_err(|e| Self::classify(conn, e, epoch))?;
        Self::check_seen(root, seen)
    }

    fn classify(conn: &Connection, err: Error, epoch: u64) -> Error {
        if !matches!(err, Error::ManifestAuth) {
            return err;
        }
        let current: Option<i64> = conn
            .query_row(
                "SELECT key_epoch FROM manifest WHERE slot = ?1",
                params![META_SLOT],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten();
        match current.and_then(|c| u64::try_from(c).ok()) {
            Some(c) if c != epoch => {
                log::warn!("the vault was rekeyed through another handle; open it again with the new key");
                Error::Vault(VaultError::WrongKey)
            }
            _ => err,
        }
    }

    fn bucket_in(
        conn: &Connection,
        cipher: &RecordCipher,
        root: &manifest::Root,
        hash: &[u8],
        epoch: u64,
    ) -> Result<manifest::Bucket> {
        manifest::read_bucket(conn, cipher, root, manifest::bucket_of(hash)).map_err(|e| Self::classify(conn, e, epoch))
    }

    /// The manifest's counter: at open, compared with the host's anchor.
    pub(crate) fn manifest_version(&mut self, cipher: &RecordCipher) -> Result<u64> {
        // Read before the root: a commit of another connection in between (outside the open's
        // read transaction) only makes the remembered root look older than it is.
        let data_version = Self::data_version(&self.conn)?;
        let mut buckets = (Vec::new(), false);
        // The open's statement read the root (the last use of what it read); otherwise, or if
        // the file has no root row (refused by `root_in`), it is read here.
        let root = match self.open_state.take() {
            Some(OpenState {
                root: Some(row),
                newest_bucket,
                buckets: read,
                all_buckets,
                ..
            }) => {
                buckets = (read, all_buckets);
                let root =
                    manifest::decode_root(cipher, row).map_err(|e| Self::classify(&self.conn, e, self.key_epoch))?;
                Self::check_root(root, self.root_seen, newest_bucket)?
            }
            _ => Self::root_in(&self.conn, cipher, self.root_seen, self.key_epoch)?,
        };
        self.root_seen = root.version;
        let version = root.version;
        self.root_cache = Some(RootSeen {
            data_version,
            changes: self.conn.total_changes(),
            root,
            buckets: buckets.0,
            all_buckets: buckets.1,
        });
        Ok(version)
    }

    fn data_version(conn: &Connection) -> Result<i64> {
        Ok(conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?)
    }

    /// [`root_in`](Self::root_in) inside a read transaction that read `data_version` before:
    /// the root this connection last authenticated when nothing changed the file since,
    /// otherwise read, checked and remembered.
    fn root_at<'c>(
        conn: &Connection,
        cipher: &RecordCipher,
        (seen, epoch): (u64, u64),
        cache: &'c mut Option<RootSeen>,
        data_version: i64,
    ) -> Result<&'c RootSeen> {
        let changes = conn.total_changes();
        let fresh = cache
            .as_ref()
            .is_some_and(|c| still_current((c.data_version, c.changes), (data_version, changes), &c.root, seen));
        let seen_root = match cache.take() {
            Some(c) if fresh => c,
            _ => RootSeen {
                data_version,
                changes,
                root: Self::root_in(conn, cipher, seen, epoch)?,
                buckets: Default::default(),
                all_buckets: false,
            },
        };
        Ok(cache.insert(seen_root))
    }

    /// The highest manifest counter this instance read or wrote.
    pub(crate) fn root_seen(&self) -> u64 {
        self.root_seen
    }

    /// The generation of an account's row, if it has one.
    fn generation_in(conn: &Connection, account_hash: &[u8]) -> Result<Option<u64>> {
        let found: Option<(i64, i64)> = conn
            .prepare_cached("SELECT slot, generation FROM manifest WHERE account_hash = ?1")?
            .query_row(params![account_hash], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        found
            .map(|(slot, generation)| {
                session_slot(slot)?;
                to_u64(generation)
            })
            .transpose()
    }

    fn row_in(conn: &Connection, account_hash: &[u8]) -> Result<Option<SessionRow>> {
        let mut stmt = conn.prepare_cached(
            "SELECT slot, generation, format, nonce, ciphertext FROM manifest WHERE account_hash = ?1",
        )?;
        let mut rows = stmt.query(params![account_hash])?;
        let Some(r) = rows.next()? else { return Ok(None) };
        session_slot(r.get(0)?)?;
        SessionRow::from_columns(account_hash.to_vec(), r).map(Some)
    }

    /// One session row, checked against the manifest in the same read transaction: a row older
    /// than its entry, a row of a removed session, or a listed session without its row is
    /// `Corrupt` for this account.
    pub(crate) fn session_row(&mut self, account_hash: &[u8], cipher: &RecordCipher) -> Result<Option<SessionRow>> {
        // One read transaction: `data_version` and the rows read after it are one snapshot.
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let data_version = Self::data_version(&tx)?;
        Self::observe(&mut self.verified, &mut self.verified_at, data_version);
        let row = Self::row_in(&tx, account_hash)?;
        if let Some(&generation) = hash32(account_hash).and_then(|h| self.verified.get(&h)) {
            if row.as_ref().map(|r| r.generation) == Some(generation) {
                tx.commit()?;
                return Ok(row);
            }
        }
        let seen = (self.root_seen, self.key_epoch);
        let known = Self::root_at(&tx, cipher, seen, &mut self.root_cache, data_version)?;
        let slot = manifest::bucket_of(account_hash);
        let bucket = match known.bucket(slot) {
            Some(stored) => manifest::decode_bucket(cipher, &known.root, slot, stored)
                .map_err(|e| Self::classify(&tx, e, self.key_epoch))?,
            None => Self::bucket_in(&tx, cipher, &known.root, account_hash, self.key_epoch)?,
        };
        manifest::check_entry(&bucket, account_hash, row.as_ref().map(|r| r.generation))?;
        let version = known.root.version;
        tx.commit()?;
        self.root_seen = version;
        if let Some(h) = hash32(account_hash) {
            match &row {
                Some(r) => self.remember_verified(h, r.generation),
                None => self.verified.remove(&h),
            };
        }
        Ok(row)
    }

    /// Whether the account's row is still at `generation` without reading it: this connection
    /// checked or wrote it at that generation, and no other connection has committed since
    /// (`PRAGMA data_version` unchanged). `false` means only "read it to know".
    pub(crate) fn still_at(&mut self, account_hash: &[u8], generation: u64) -> Result<bool> {
        let data_version = Self::data_version(&self.conn)?;
        Ok(Self::observe(&mut self.verified, &mut self.verified_at, data_version)
            && hash32(account_hash).and_then(|h| self.verified.get(&h)) == Some(&generation))
    }

    /// Note the `PRAGMA data_version` just read: when another connection committed since the
    /// last one, what this connection verified may be stale and is forgotten. Returns whether
    /// it was unchanged. (Fields, not `&mut self`: callers hold a transaction of the connection.)
    fn observe(verified: &mut crate::engine::FastMap<[u8; 32], u64>, verified_at: &mut i64, data_version: i64) -> bool {
        if data_version == *verified_at {
            return true;
        }
        verified.clear();
        *verified_at = data_version;
        false
    }

    /// Every session row, and the number of rows with an account hash that are not a session's
    /// shape (a column missing or of another type: a tampered file).
    fn rows_in(conn: &Connection) -> Result<(Vec<SessionRow>, usize)> {
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT account_hash, generation, format, nonce, ciphertext FROM manifest WHERE ",
            session_rows!(),
            " ORDER BY account_hash"
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        let mut malformed = 0usize;
        while let Some(r) = rows.next()? {
            match r
                .get(0)
                .map_err(Error::from)
                .and_then(|hash| SessionRow::from_columns(hash, r))
            {
                Ok(row) => out.push(row),
                Err(_) => malformed += 1,
            }
        }
        Ok((out, malformed))
    }

    /// Every session row the manifest vouches for, and the number of rows it does not.
    pub(crate) fn all_rows(&mut self, cipher: &RecordCipher) -> Result<(Vec<SessionRow>, usize)> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let (rows, malformed) = Self::rows_in(&tx)?;
        let root = Self::root_in(&tx, cipher, self.root_seen, self.key_epoch)?;
        let mut buckets: std::collections::BTreeMap<u8, Option<manifest::Bucket>> = Default::default();
        let mut good = Vec::with_capacity(rows.len());
        let mut bad = malformed;
        for row in rows {
            let slot = manifest::bucket_of(&row.account_hash);
            let bucket = buckets
                .entry(slot)
                .or_insert_with(|| manifest::read_bucket(&tx, cipher, &root, slot).ok());
            match bucket {
                Some(b) if manifest::check_entry(b, &row.account_hash, Some(row.generation)).is_ok() => good.push(row),
                _ => bad += 1,
            }
        }
        tx.commit()?;
        self.root_seen = root.version;
        Ok((good, bad))
    }

    /// Write a session row under its next generation, and its manifest entry, in one durable
    /// transaction.
    ///
    /// `expected` is the compare-and-swap guard: `Some(g)` requires the row to exist with
    /// generation `g` (and the manifest to agree); `None` writes unconditionally (a host
    /// storing a new login, which also replaces a row the manifest refused).
    /// `seal(generation)` encrypts the record for that generation. Returns `Ok(None)` when the
    /// guard failed (nothing written). The next generation is above the row's, its entry's and
    /// every removed session's, so an account's generations only ever grow.
    pub(crate) fn write_session(
        &mut self,
        account_hash: &[u8],
        expected: Option<u64>,
        cipher: &RecordCipher,
        seal: impl FnOnce(u64) -> crate::error::Result<(i64, Vec<u8>, Vec<u8>)>,
    ) -> Result<Option<u64>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let data_version = Self::data_version(&tx)?;
        let changes = tx.total_changes();
        let seen = self.write_seen.take().filter(|w| {
            still_current(
                (w.data_version, w.changes),
                (data_version, changes),
                &w.root,
                self.root_seen,
            ) && w.bucket.slot == manifest::bucket_of(account_hash)
        });
        let (mut root, mut bucket, current) = match seen {
            Some(w) => {
                let current = if w.account == account_hash {
                    Some(w.generation)
                } else {
                    Self::generation_in(&tx, account_hash)?
                };
                (w.root, w.bucket, current)
            }
            None => {
                let root = Self::root_for_write(&tx, cipher, self.root_seen, self.key_epoch)?;
                let bucket = Self::bucket_in(&tx, cipher, &root, account_hash, self.key_epoch)?;
                (root, bucket, Self::generation_in(&tx, account_hash)?)
            }
        };
        if expected.is_some() {
            manifest::check_entry(&bucket, account_hash, current)?;
            if current != expected {
                return Ok(None);
            }
        }
        // The root's floor is at least `removed_generation` (set from it by the migration,
        // raised with it by every removal) and, unlike it, authenticated.
        let base = [
            current.unwrap_or(0),
            bucket.entries.get(account_hash).copied().unwrap_or(0),
            root.floor,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let generation = base
            .checked_add(1)
            .ok_or_else(|| VaultError::internal("generation overflow"))?;
        let (format, nonce, ciphertext) = seal(generation)?;
        tx.prepare_cached(
            "INSERT INTO manifest (slot, account_hash, generation, format, nonce, ciphertext)
             VALUES (max(2000, ifnull((SELECT max(slot) FROM manifest), 0) + 1), ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(account_hash) DO UPDATE SET generation = excluded.generation, format = excluded.format,
               nonce = excluded.nonce, ciphertext = excluded.ciphertext",
        )?
        .execute(params![account_hash, to_i64(generation)?, format, nonce, ciphertext])?;
        bucket.entries.insert(account_hash.to_vec(), generation);
        manifest::write_bucket(&tx, cipher, &mut root, &bucket)?;
        tx.commit()?;
        self.root_seen = root.version;
        if let Some(h) = hash32(account_hash) {
            self.remember_verified(h, generation);
        }
        self.write_seen = Some(WriteSeen {
            data_version,
            changes: self.conn.total_changes(),
            root,
            bucket,
            account: account_hash.to_vec(),
            generation,
        });
        Ok(Some(generation))
    }

    /// Remove a session (explicit logout) and its manifest entry, then checkpoint
    /// (no page of the removed record stays in the log). Its generation raises the floor, so a
    /// refresh that was in flight can never write its late result back, and a new sign-in of
    /// the account starts above it. Returns whether a row existed.
    ///
    /// `revocation`, if given, is queued in the same transaction: the logout and the promise to
    /// revoke at the server are durable together.
    /// Remove an account's row (and queue `revocation`, built from the row of generation
    /// `.1`). `Ok(None)`: the row is no longer that generation (another process wrote it since
    /// the revocation was built); nothing was changed, build it again.
    pub(crate) fn remove_session(
        &mut self,
        account_hash: &[u8],
        cipher: &RecordCipher,
        revocation: Option<(&RevocationRow, u64)>,
    ) -> Result<Option<bool>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut root = Self::root_for_write(&tx, cipher, self.root_seen, self.key_epoch)?;
        let mut bucket = Self::bucket_in(&tx, cipher, &root, account_hash, self.key_epoch)?;
        let found = Self::generation_in(&tx, account_hash)?;
        if let Some((_, built_from)) = revocation {
            if found != Some(built_from) {
                return Ok(None);
            }
        }
        let current = found.unwrap_or(0);
        let listed = bucket.entries.remove(account_hash);
        root.floor = root.floor.max(current).max(listed.unwrap_or(0));
        let updated = tx.execute(
            "UPDATE manifest SET removed_generation = max(removed_generation, ?1) WHERE slot = ?2",
            params![to_i64(root.floor)?, META_SLOT],
        )?;
        if updated != 1 {
            return Err(VaultError::corrupt("the vault has no metadata row").into());
        }
        // The slot bound is a second guard: `generation_in` above already refused a row of
        // another kind that carries this account hash.
        let n = tx.execute(
            "DELETE FROM manifest WHERE account_hash = ?1 AND slot >= 2000",
            params![account_hash],
        )?;
        manifest::write_bucket(&tx, cipher, &mut root, &bucket)?;
        if let (Some((r, _)), true) = (revocation, n > 0) {
            Self::queue_revocation_in(&tx, r)?;
        }
        tx.commit()?;
        self.root_seen = root.version;
        if let Some(h) = hash32(account_hash) {
            self.verified.remove(&h);
        }
        if n > 0 {
            self.checkpoint();
        }
        Ok(Some(n > 0))
    }

    fn queue_revocation_in(conn: &Connection, r: &RevocationRow) -> Result<()> {
        conn.execute_batch(REVOCATION_TABLE)?;
        conn.prepare_cached(
            "INSERT INTO revocation (id, queued_at_ms, attempts, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![r.id, r.queued_at_ms, r.attempts, r.nonce, r.ciphertext])?;
        conn.prepare_cached("UPDATE manifest SET revocations_waiting = 1 WHERE slot = ?1")?
            .execute(params![META_SLOT])?;
        let excess: i64 = conn.query_row("SELECT count(*) FROM revocation", [], |row| row.get(0))?;
        let excess = excess - MAX_PENDING_REVOCATIONS;
        if excess > 0 {
            conn.execute(
                "DELETE FROM revocation WHERE id IN (SELECT id FROM revocation ORDER BY queued_at_ms, id LIMIT ?1)",
                params![excess],
            )?;
            conn.execute(
                "UPDATE manifest SET revocations_dropped = revocations_dropped + ?1 WHERE slot = ?2",
                params![excess, META_SLOT],
            )?;
            log::warn!("the revocation queue is full: {excess} oldest revocation(s) dropped");
        }
        Ok(())
    }

    /// Whether any revocation waits to be sent (read at open, without the rows). The queue's
    /// table is read only when the metadata's flag says it may hold something.
    pub(crate) fn has_revocations(&self) -> Result<bool> {
        // A flag without the table (written by hand: the flag is not authenticated) means
        // nothing waits.
        if !self.revocations_flag || !has_table(&self.conn, "revocation")? {
            return Ok(false);
        }
        Ok(self
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM revocation)", [], |r| r.get(0))?)
    }

    /// The revocations waiting to be sent, oldest first, and how many were ever dropped.
    pub(crate) fn revocations(&self) -> Result<(Vec<RevocationRow>, u64)> {
        let dropped: i64 = self.conn.query_row(
            "SELECT revocations_dropped FROM manifest WHERE slot = ?1",
            params![META_SLOT],
            |r| r.get(0),
        )?;
        if !has_table(&self.conn, "revocation")? {
            return Ok((Vec::new(), to_u64(dropped)?));
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, queued_at_ms, attempts, nonce, ciphertext FROM revocation ORDER BY queued_at_ms, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RevocationRow {
                id: r.get(0)?,
                queued_at_ms: r.get(1)?,
                attempts: r.get(2)?,
                nonce: r.get(3)?,
                ciphertext: r.get(4)?,
            })
        })?;
        let rows = rows.collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((rows, to_u64(dropped)?))
    }

    /// A revocation was sent and confirmed (`done`), or failed once more.
    pub(crate) fn revocation_outcome(&mut self, id: &[u8], done: bool) -> Result<()> {
        if done {
            // The flag goes back to 0 with the queue's last row, in the same transaction.
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached("DELETE FROM revocation WHERE id = ?1")?
                .execute(params![id])?;
            tx.prepare_cached(
                "UPDATE manifest SET revocations_waiting = EXISTS (SELECT 1 FROM revocation) WHERE slot = ?1",
            )?
            .execute(params![META_SLOT])?;
            tx.commit()?;
        } else {
            self.conn
                .prepare_cached("UPDATE revocation SET attempts = attempts + 1 WHERE id = ?1")?
                .execute(params![id])?;
        }
        Ok(())
    }

    /// The sealed key set cached for an issuer (by its keyed hash): (fetched at, nonce,
    /// ciphertext).
    pub(crate) fn jwks(&self, issuer_hash: &[u8]) -> Result<Option<SealedJwks>> {
        if !has_table(&self.conn, "jwks")? {
            return Ok(None);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT fetched_at_ms, nonce, ciphertext FROM jwks WHERE issuer_hash = ?1")?
            .query_row(params![issuer_hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?)
    }

    /// Cache an issuer's sealed key set, replacing the previous one.
    pub(crate) fn put_jwks(
        &mut self,
        issuer_hash: &[u8],
        fetched_at_ms: i64,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<()> {
        self.conn.execute_batch(JWKS_TABLE)?;
        self.conn
            .prepare_cached(
                "INSERT INTO jwks (issuer_hash, fetched_at_ms, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(issuer_hash) DO UPDATE SET fetched_at_ms = excluded.fetched_at_ms,
                   nonce = excluded.nonce, ciphertext = excluded.ciphertext",
            )?
            .execute(params![issuer_hash, fetched_at_ms, nonce, ciphertext])?;
        Ok(())
    }

    /// Run `PRAGMA quick_check` (used by tests and diagnostics).
    pub(crate) fn integrity_ok(&self) -> Result<bool> {
        let s: String = self.conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        Ok(s == "ok")
    }

    /// Number of session rows.
    pub(crate) fn session_count(&self) -> Result<usize> {
        let n: i64 = self.conn.query_row(
            concat!("SELECT count(*) FROM manifest WHERE ", session_rows!()),
            [],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).map_err(|_| VaultError::corrupt("negative count"))?)
    }
}

mod lease;
mod manifest;
