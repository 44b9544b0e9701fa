//! The lost-answer marker: the part of refresh coordination that must survive a crash.
//!
//! Liveness (who is refreshing right now) is an OS lock held by the refresh engine. The file only
//! remembers, per account, that a request carrying a given credential (by keyed hash) for a given
//! generation may have reached the server without its answer being stored. The next attempt with
//! the same credential learns that the server may already have consumed it, so a refusal then is
//! `RefreshOutcomeUnknown` (code 12), not a plain re-authentication.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{to_i64, Store};
use crate::error::StoreResult as Result;

/// What [`Store::begin_attempt`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptStart {
    /// The stored session is no longer the generation the attempt refreshes (a peer rotated it,
    /// the host stored a new session or logged out): adopt what is stored instead.
    StoreChanged,
    /// The marker is written: the request may be sent. `possibly_consumed`: an earlier request
    /// with this same credential for this generation lost its answer.
    Started { possibly_consumed: bool },
}

impl Store {
    /// Called with the account's refresh lock held, before the request is handed out: check
    /// that the session is still at `base_generation`, read any marker an unfinished earlier
    /// attempt left, and record this attempt's marker, in one transaction.
    pub(crate) fn begin_attempt(
        &mut self,
        account_hash: &[u8],
        base_generation: u64,
        credential_hash: &[u8],
    ) -> Result<AttemptStart> {
        // The marker only has to survive a crash of this process, not a power cut (after a power
        // cut no answer is pending in memory either): NORMAL skips the fsync of the commit.
        self.conn.prepare_cached("PRAGMA synchronous=NORMAL")?.execute([])?;
        let result = self.begin_attempt_tx(account_hash, base_generation, credential_hash);
        // Back to FULL for everything else: a rotated pair must be durable before it is used.
        self.conn.prepare_cached("PRAGMA synchronous=FULL")?.execute([])?;
        result
    }

    fn begin_attempt_tx(&mut self, hash: &[u8], base_generation: u64, credential_hash: &[u8]) -> Result<AttemptStart> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if Self::generation_in(&tx, hash)? != Some(base_generation) {
            return Ok(AttemptStart::StoreChanged);
        }
        let base = to_i64(base_generation)?;
        let marker: Option<(i64, Vec<u8>)> = tx
            .prepare_cached("SELECT generation, credential_hash FROM refresh_marker WHERE account_hash = ?1")?
            .query_row(params![hash], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let possibly_consumed = marker.is_some_and(|(g, c)| g == base && c == credential_hash);
        tx.prepare_cached(
            "INSERT INTO refresh_marker (account_hash, generation, credential_hash) VALUES (?1, ?2, ?3)
             ON CONFLICT(account_hash) DO UPDATE SET generation = excluded.generation,
               credential_hash = excluded.credential_hash",
        )?
        .execute(params![hash, base, credential_hash])?;
        tx.commit()?;
        Ok(AttemptStart::Started { possibly_consumed })
    }

    /// For inspection, in one read: the generation of the account's row, if it has one, and
    /// the generation of its lost-answer marker, if one is recorded (it matters only while the
    /// two are equal). Writes nothing.
    pub(crate) fn marker_state(&mut self, account_hash: &[u8]) -> Result<(Option<u64>, Option<u64>)> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let generation = Self::generation_in(&tx, account_hash)?;
        let marker: Option<i64> = tx
            .prepare_cached("SELECT generation FROM refresh_marker WHERE account_hash = ?1")?
            .query_row(params![account_hash], |r| r.get(0))
            .optional()?;
        tx.commit()?;
        Ok((generation, marker.map(super::to_u64).transpose()?))
    }

    /// The attempt's request certainly consumed nothing (it was never sent, or the server
    /// answered without rotating): forget the marker of that generation.
    pub(crate) fn clear_marker(&mut self, account_hash: &[u8], generation: u64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM refresh_marker WHERE account_hash = ?1 AND generation = ?2")?
            .execute(params![account_hash, to_i64(generation)?])?;
        Ok(())
    }
}
