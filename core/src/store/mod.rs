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

use crate::crypto::{KdfParams, KeyKind, WrappedKey};
use crate::error::{StoreResult as Result, VaultError};

/// `PRAGMA application_id` of a tokenvault file: "TKVT".
pub const APPLICATION_ID: i32 = 0x544B_5654;

/// The newest schema version this code knows.
pub const SCHEMA_VERSION: i64 = 2;

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
    "#,
];

/// A raw session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionRow {
    pub account_hash: Vec<u8>,
    pub generation: u64,
    pub format: i64,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// What [`Store::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileState {
    /// An empty (new) file: it must be initialised.
    Empty,
    /// An existing vault at this schema version (≤ [`SCHEMA_VERSION`]).
    Existing(i64),
}

/// The SQLite connection of one vault.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Connection,
}

fn to_u64(v: i64) -> Result<u64> {
    Ok(u64::try_from(v).map_err(|_| VaultError::corrupt("negative generation"))?)
}

fn to_i64(v: u64) -> Result<i64> {
    Ok(i64::try_from(v).map_err(|_| VaultError::internal("generation overflow"))?)
}

impl Store {
    /// Open (or create) the file and read its state, without writing anything to an existing
    /// file.
    pub(crate) fn open(path: &Path, busy_timeout: Duration) -> Result<(Store, FileState)> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        // Wait for another process's write lock instead of failing at once.
        conn.busy_timeout(busy_timeout)?;
        let store = Store { conn };

        let page_count: i64 = store.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        if page_count == 0 {
            return Ok((store, FileState::Empty));
        }
        let app_id: i32 = store.conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let version: i64 = store.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
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
        Ok((store, FileState::Existing(version)))
    }

    /// Pragmas for a file we are going to use. Only called after the key has been checked (or
    /// on a new file), because switching the journal mode writes to the file header.
    pub(crate) fn configure(&self) -> Result<()> {
        // WAL: readers never block the writer, and a commit is one append + fsync.
        let mode: String = self.conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(VaultError::StorageUnavailable {
                reason: format!("the file system refused WAL mode (got {mode})"),
            }
            .into());
        }
        // FULL: in WAL mode, fsync the log on every commit, so a returned write survives power
        // loss, not only a crash of the process: a rotated pair is durable before it is used.
        self.conn.execute_batch("PRAGMA synchronous=FULL;")?;
        // No foreign keys are used; secure_delete overwrites freed pages so removed sessions'
        // ciphertext does not linger in the file.
        self.conn.execute_batch("PRAGMA secure_delete=ON;")?;
        Ok(())
    }

    /// Create the schema of a new file and store its wrapped key.
    pub(crate) fn initialise(&mut self, wrapped: &WrappedKey, now_ms: i64) -> Result<()> {
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
        tx.execute(
            "INSERT INTO vault_meta (id, created_at_ms, removed_generation) VALUES (1, ?1, 0)",
            params![now_ms],
        )?;
        Self::write_wrapped_key(&tx, wrapped)?;
        tx.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
        ))?;
        tx.commit()?;
        Ok(())
    }

    /// Bring an existing, key-checked file up to [`SCHEMA_VERSION`], one step per transaction.
    pub(crate) fn migrate(&mut self, from: i64) -> Result<()> {
        let mut version = from;
        while version < SCHEMA_VERSION {
            let idx = usize::try_from(version).map_err(|_| VaultError::corrupt("bad schema version"))?;
            let step = MIGRATIONS
                .get(idx)
                .ok_or_else(|| VaultError::internal("missing migration step"))?;
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if current == version {
                tx.execute_batch(step)?;
                tx.execute_batch(&format!("PRAGMA user_version = {};", version + 1))?;
            }
            tx.commit()?;
            version = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        }
        Ok(())
    }

    fn write_wrapped_key(conn: &Connection, w: &WrappedKey) -> Result<()> {
        conn.execute(
            "INSERT INTO vault_key (id, kind, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrap_nonce, wrapped_key)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, kdf_salt = excluded.kdf_salt,
               kdf_m_kib = excluded.kdf_m_kib, kdf_t = excluded.kdf_t, kdf_p = excluded.kdf_p,
               wrap_nonce = excluded.wrap_nonce, wrapped_key = excluded.wrapped_key",
            params![
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

    /// Read the wrapped data key (read-only).
    pub(crate) fn wrapped_key(&self) -> Result<WrappedKey> {
        let row = self
            .conn
            .query_row(
                "SELECT kind, kdf_salt, kdf_m_kib, kdf_t, kdf_p, wrap_nonce, wrapped_key FROM vault_key WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<Vec<u8>>>(1)?,
                        r.get::<_, Option<u32>>(2)?,
                        r.get::<_, Option<u32>>(3)?,
                        r.get::<_, Option<u32>>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                        r.get::<_, Vec<u8>>(6)?,
                    ))
                },
            )
            .optional()?
            .ok_or_else(|| VaultError::corrupt("the vault has no key row"))?;
        let kind = KeyKind::parse(&row.0)?;
        let kdf = match (row.2, row.3, row.4) {
            (Some(m_kib), Some(t), Some(p)) => Some(KdfParams { m_kib, t, p }),
            _ => None,
        };
        Ok(WrappedKey {
            kind,
            salt: row.1,
            kdf,
            nonce: row.5,
            wrapped: row.6,
        })
    }

    /// Replace the wrapped key in one transaction (rekey).
    pub(crate) fn replace_wrapped_key(&mut self, w: &WrappedKey) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::write_wrapped_key(&tx, w)?;
        tx.commit()?;
        Ok(())
    }

    /// One session row.
    pub(crate) fn session_row(&self, account_hash: &[u8]) -> Result<Option<SessionRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT generation, format, nonce, ciphertext FROM sessions WHERE account_hash = ?1")?;
        let row = stmt
            .query_row(params![account_hash], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .optional()?;
        match row {
            None => Ok(None),
            Some((g, format, nonce, ciphertext)) => Ok(Some(SessionRow {
                account_hash: account_hash.to_vec(),
                generation: to_u64(g)?,
                format,
                nonce,
                ciphertext,
            })),
        }
    }

    /// Every session row.
    pub(crate) fn all_rows(&self) -> Result<Vec<SessionRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT account_hash, generation, format, nonce, ciphertext FROM sessions ORDER BY account_hash",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (account_hash, g, format, nonce, ciphertext) = row?;
            out.push(SessionRow {
                account_hash,
                generation: to_u64(g)?,
                format,
                nonce,
                ciphertext,
            });
        }
        Ok(out)
    }

    /// Write a session row under its next generation, in one durable transaction.
    ///
    /// `expected` is the compare-and-swap guard: `Some(g)` requires the row to exist with
    /// generation `g`; `None` writes unconditionally (a host storing a new login).
    /// `seal(generation)` encrypts the record for that generation. Returns `Ok(None)` when the
    /// guard failed (nothing written). The next generation is the row's plus one, or for a new
    /// row one above any removed session's, so an account's generations only ever grow.
    pub(crate) fn write_session(
        &mut self,
        account_hash: &[u8],
        expected: Option<u64>,
        seal: impl FnOnce(u64) -> crate::error::Result<(i64, Vec<u8>, Vec<u8>)>,
    ) -> Result<Option<u64>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<i64> = tx
            .prepare_cached("SELECT generation FROM sessions WHERE account_hash = ?1")?
            .query_row(params![account_hash], |r| r.get(0))
            .optional()?;
        let current = current.map(to_u64).transpose()?;
        if expected.is_some() && current != expected {
            return Ok(None);
        }
        let base = match current {
            Some(g) => g,
            None => to_u64(
                tx.prepare_cached("SELECT removed_generation FROM vault_meta WHERE id = 1")?
                    .query_row([], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| VaultError::corrupt("the vault has no metadata row"))?,
            )?,
        };
        let generation = base
            .checked_add(1)
            .ok_or_else(|| VaultError::internal("generation overflow"))?;
        let (format, nonce, ciphertext) = seal(generation)?;
        tx.prepare_cached(
            "INSERT INTO sessions (account_hash, generation, format, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(account_hash) DO UPDATE SET generation = excluded.generation, format = excluded.format,
               nonce = excluded.nonce, ciphertext = excluded.ciphertext",
        )?
        .execute(params![account_hash, to_i64(generation)?, format, nonce, ciphertext])?;
        tx.commit()?;
        Ok(Some(generation))
    }

    /// Remove a session (explicit logout) and its lease. Its generation is remembered, so a
    /// refresh that was in flight can never write its late result back, and a new sign-in of
    /// the account starts above it. Returns whether a row existed.
    pub(crate) fn remove_session(&mut self, account_hash: &[u8]) -> Result<bool> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE vault_meta SET removed_generation = max(removed_generation,
               coalesce((SELECT generation FROM sessions WHERE account_hash = ?1), 0)) WHERE id = 1",
            params![account_hash],
        )?;
        let n = tx.execute("DELETE FROM sessions WHERE account_hash = ?1", params![account_hash])?;
        tx.execute(
            "DELETE FROM refresh_marker WHERE account_hash = ?1",
            params![account_hash],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Run `PRAGMA quick_check` (used by tests and diagnostics).
    pub(crate) fn integrity_ok(&self) -> Result<bool> {
        let s: String = self.conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        Ok(s == "ok")
    }

    /// Number of session rows.
    pub(crate) fn session_count(&self) -> Result<usize> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
        Ok(usize::try_from(n).map_err(|_| VaultError::corrupt("negative count"))?)
    }
}

mod lease;
pub(crate) use lease::AttemptStart;
