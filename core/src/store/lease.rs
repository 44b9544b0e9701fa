//! What the refresh protocol asks of the vault file.
//!
//! Liveness (who is refreshing right now) is an OS lock held by the refresh engine, and the
//! lost-answer marker lives in that lock's file (`engine/refresh_lock.rs`, ADR 0004). The vault
//! file only answers whether an account's row is still the generation an attempt refreshes.
//! Schema 3 kept the markers in a `refresh_marker` table: the step to schema 4 hands them to
//! the lock files ([`Store::legacy_markers`]) and drops the table.

use rusqlite::Connection;

use super::Store;
use crate::error::StoreResult as Result;

impl Store {
    /// Called with the account's refresh lock held, before the request is built: is the
    /// stored session still at `base_generation`? (`false`: a peer rotated it, the host stored
    /// a new session or logged out; adopt what is stored instead.) Reads nothing when this
    /// connection last saw the row at that generation and no other connection has committed
    /// since.
    pub(crate) fn still_generation(&mut self, account_hash: &[u8], base_generation: u64) -> Result<bool> {
        if self.still_at(account_hash, base_generation)? {
            return Ok(true);
        }
        Ok(Self::generation_in(&self.conn, account_hash)? == Some(base_generation))
    }

    /// The generation of the account's row, if it has one (for inspection). Writes nothing.
    pub(crate) fn generation(&self, account_hash: &[u8]) -> Result<Option<u64>> {
        Self::generation_in(&self.conn, account_hash)
    }

    /// The markers of a schema-3 file that still matter (their generation is the row's), as
    /// (account hash, generation, credential hash), read inside the migration's transaction.
    pub(crate) fn legacy_markers(conn: &Connection) -> Result<Vec<super::LegacyMarker>> {
        let mut stmt = conn.prepare(
            "SELECT m.account_hash, m.generation, m.credential_hash FROM refresh_marker m
             JOIN sessions s ON s.account_hash = m.account_hash AND s.generation = m.generation",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (hash, generation, credential) = row?;
            out.push((hash, super::to_u64(generation)?, credential));
        }
        Ok(out)
    }
}
