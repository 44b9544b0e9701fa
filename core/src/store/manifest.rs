//! The manifest: the authenticated state of the vault (`docs/adr/0010-authenticated-state-and-key-rotation.md`).
//!
//! A record's AEAD binds its own account hash and generation, so nobody without the key can
//! forge or alter a record. It cannot tell that a *valid older* record was copied back into
//! the file, or that a removed session's row was restored. The manifest can: it lists every
//! account's current generation, MAC'd with a key derived from the data key.
//!
//! * 256 **buckets** (slot = the first byte of the account hash) each hold the sorted
//!   `(account hash, generation)` pairs of their accounts. A write re-MACs one small bucket.
//! * The **root** (slot 256) holds a counter that grows with every change of the manifest, the
//!   generation floor (the highest generation a removed session had: a new sign-in starts above
//!   it, so an account's generations never repeat), and each bucket's version. A bucket older
//!   than the root says is `Corrupt` for its accounts.
//! * A row whose generation differs from its entry, a row the manifest does not list (a
//!   removed session brought back) and an entry without a row are `Corrupt` for that account.
//! * An old copy of the *whole* state (root, buckets, rows together) is consistent: only a
//!   counter kept outside the file (the host anchor) or this instance's own memory of the
//!   counter can show it.
//!
//! The tables are read and written inside the caller's transaction, so a row and the manifest
//! entry that vouches for it always change together.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};

use super::{to_i64, to_u64};
use crate::crypto::RecordCipher;
use crate::error::{Error, StoreResult as Result, VaultError};

/// The root's slot; buckets are 0..=255.
pub(crate) const ROOT_SLOT: i64 = 256;

const ENTRY_LEN: usize = 40;
const ROOT_ENTRY_LEN: usize = 10;

/// The root row, decoded and authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Root {
    /// Grows by one with every change of the manifest.
    pub version: u64,
    /// The highest generation a removed session had.
    pub floor: u64,
    /// Each non-empty bucket's version.
    pub buckets: BTreeMap<u8, u64>,
}

/// One bucket, decoded and authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub slot: u8,
    pub entries: BTreeMap<Vec<u8>, u64>,
}

/// The bucket an account hash belongs to.
pub(crate) fn bucket_of(account_hash: &[u8]) -> u8 {
    account_hash.first().copied().unwrap_or(0)
}

fn corrupt(reason: &str) -> Error {
    Error::Vault(VaultError::corrupt(reason))
}

/// A manifest row as stored: (version, body, MAC).
pub(crate) type SlotRow = (u64, Vec<u8>, Vec<u8>);

fn read_slot(conn: &Connection, slot: i64) -> Result<Option<SlotRow>> {
    let mut stmt = conn.prepare_cached("SELECT version, body, mac FROM manifest WHERE slot = ?1")?;
    let mut rows = stmt.query(params![slot])?;
    rows.next()?.map(|r| slot_row(r, 0)).transpose()
}

/// A manifest row's (version, body, MAC) from the columns of `r` starting at `first`.
pub(crate) fn slot_row(r: &rusqlite::Row<'_>, first: usize) -> Result<SlotRow> {
    let version: i64 = r.get(first)?;
    Ok((to_u64(version)?, r.get(first + 1)?, r.get(first + 2)?))
}

fn write_slot(conn: &Connection, cipher: &RecordCipher, slot: i64, version: u64, body: &[u8]) -> Result<()> {
    let mac = cipher.manifest_mac(slot, version, body);
    conn.prepare_cached(
        "INSERT INTO manifest (slot, version, body, mac) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(slot) DO UPDATE SET version = excluded.version, body = excluded.body, mac = excluded.mac",
    )?
    .execute(params![slot, to_i64(version)?, body, &mac[..]])?;
    Ok(())
}

/// Read and authenticate the root. A missing root is `Corrupt`; a root whose MAC fails is
/// [`Error::ManifestAuth`] (the caller tells a rotated key from tampering).
pub(crate) fn read_root(conn: &Connection, cipher: &RecordCipher) -> Result<Root> {
    decode_root(
        cipher,
        read_slot(conn, ROOT_SLOT)?.ok_or_else(|| corrupt("the vault has no manifest"))?,
    )
}

/// Authenticate and decode the root's row (as [`read_root`] reads it).
pub(crate) fn decode_root(cipher: &RecordCipher, (version, body, mac): SlotRow) -> Result<Root> {
    if !cipher.manifest_ok(ROOT_SLOT, version, &body, &mac) {
        return Err(Error::ManifestAuth);
    }
    if body.len() < 8 || (body.len() - 8) % ROOT_ENTRY_LEN != 0 {
        return Err(corrupt("the manifest root is malformed"));
    }
    let mut floor = [0u8; 8];
    floor.copy_from_slice(&body[..8]);
    let mut buckets = BTreeMap::new();
    for e in body[8..].chunks_exact(ROOT_ENTRY_LEN) {
        let slot = u16::from_be_bytes([e[0], e[1]]);
        let slot = u8::try_from(slot).map_err(|_| corrupt("the manifest root names a bad bucket"))?;
        let mut v = [0u8; 8];
        v.copy_from_slice(&e[2..]);
        buckets.insert(slot, u64::from_be_bytes(v));
    }
    Ok(Root {
        version,
        floor: u64::from_be_bytes(floor),
        buckets,
    })
}

/// Read and authenticate one bucket against the root.
pub(crate) fn read_bucket(conn: &Connection, cipher: &RecordCipher, root: &Root, slot: u8) -> Result<Bucket> {
    decode_bucket(cipher, root, slot, read_slot(conn, i64::from(slot))?)
}

/// Authenticate and decode one bucket's row (`None`: the file has no row for it) against the
/// root, as [`read_bucket`] reads it.
pub(crate) fn decode_bucket(cipher: &RecordCipher, root: &Root, slot: u8, stored: Option<SlotRow>) -> Result<Bucket> {
    let expected = root.buckets.get(&slot).copied();
    let (version, body, mac) = match (stored, expected) {
        (None, None) => {
            return Ok(Bucket {
                slot,
                entries: BTreeMap::new(),
            })
        }
        (Some(s), Some(_)) => s,
        (None, Some(_)) => return Err(corrupt("a manifest bucket is missing")),
        (Some(_), None) => return Err(corrupt("a manifest bucket the root does not list")),
    };
    if Some(version) != expected {
        return Err(corrupt(
            "a manifest bucket is older than the manifest root (part of the file was rolled back)",
        ));
    }
    if !cipher.manifest_ok(i64::from(slot), version, &body, &mac) {
        return Err(Error::ManifestAuth);
    }
    if body.len() % ENTRY_LEN != 0 {
        return Err(corrupt("a manifest bucket is malformed"));
    }
    let mut entries = BTreeMap::new();
    for e in body.chunks_exact(ENTRY_LEN) {
        let mut g = [0u8; 8];
        g.copy_from_slice(&e[32..]);
        entries.insert(e[..32].to_vec(), u64::from_be_bytes(g));
    }
    Ok(Bucket { slot, entries })
}

/// A bucket's stored body: its sorted (32-byte account hash, generation) entries.
fn encode_bucket(bucket: &Bucket) -> Vec<u8> {
    let mut body = Vec::with_capacity(bucket.entries.len() * ENTRY_LEN);
    for (hash, generation) in &bucket.entries {
        body.extend_from_slice(hash);
        body.extend_from_slice(&generation.to_be_bytes());
    }
    body
}

/// Write a changed bucket and the root that vouches for it (the root's counter grows by one;
/// the bucket takes the new counter as its version). An empty bucket is deleted.
pub(crate) fn write_bucket(conn: &Connection, cipher: &RecordCipher, root: &mut Root, bucket: &Bucket) -> Result<()> {
    root.version = root
        .version
        .checked_add(1)
        .ok_or_else(|| Error::Vault(VaultError::internal("manifest counter overflow")))?;
    if bucket.entries.is_empty() {
        conn.prepare_cached("DELETE FROM manifest WHERE slot = ?1")?
            .execute(params![i64::from(bucket.slot)])?;
        root.buckets.remove(&bucket.slot);
    } else {
        if bucket.entries.keys().any(|hash| hash.len() != 32) {
            return Err(Error::Vault(VaultError::internal("an account hash is not 32 bytes")));
        }
        write_slot(
            conn,
            cipher,
            i64::from(bucket.slot),
            root.version,
            &encode_bucket(bucket),
        )?;
        root.buckets.insert(bucket.slot, root.version);
    }
    write_root(conn, cipher, root)
}

/// Write the root as it is.
pub(crate) fn write_root(conn: &Connection, cipher: &RecordCipher, root: &Root) -> Result<()> {
    let mut body = Vec::with_capacity(8 + root.buckets.len() * ROOT_ENTRY_LEN);
    body.extend_from_slice(&root.floor.to_be_bytes());
    for (slot, version) in &root.buckets {
        body.extend_from_slice(&u16::from(*slot).to_be_bytes());
        body.extend_from_slice(&version.to_be_bytes());
    }
    write_slot(conn, cipher, ROOT_SLOT, root.version, &body)
}

/// The check of one account: its row's generation (if any) against its manifest entry.
pub(crate) fn check_entry(bucket: &Bucket, account_hash: &[u8], row_generation: Option<u64>) -> Result<()> {
    match (bucket.entries.get(account_hash).copied(), row_generation) {
        (Some(g), Some(r)) if g == r => Ok(()),
        (Some(_), Some(_)) => Err(corrupt(
            "the file holds another generation of this session than its manifest (rolled back or replaced)",
        )),
        (None, Some(_)) => Err(corrupt(
            "the file holds a session its manifest does not list (a removed session restored?)",
        )),
        (Some(_), None) => Err(corrupt("a session the manifest lists is missing from the file")),
        (None, None) => Ok(()),
    }
}

/// Where [`rebuild`] finds the session rows: their own table (the step to schema 2), or the
/// manifest's table (schema 7 on).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SessionRows {
    OwnTable,
    ManifestTable,
}

/// Build the manifest over the rows as they are (a new vault, a file migrated from schema 1,
/// or the re-MAC of `rekey`). Replaces any manifest rows.
pub(crate) fn rebuild(
    conn: &Connection,
    cipher: &RecordCipher,
    rows_at: SessionRows,
    floor: u64,
    version: u64,
) -> Result<Root> {
    // Only the manifest's own rows: from schema 5 the table also holds the metadata and key slots.
    conn.execute("DELETE FROM manifest WHERE slot <= 256", [])?;
    let mut buckets: BTreeMap<u8, Bucket> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(match rows_at {
            SessionRows::OwnTable => "SELECT account_hash, generation FROM sessions",
            SessionRows::ManifestTable => {
                concat!(
                    "SELECT account_hash, generation FROM manifest WHERE ",
                    super::session_rows!()
                )
            }
        })?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (hash, g) = row?;
            let slot = bucket_of(&hash);
            buckets
                .entry(slot)
                .or_insert_with(|| Bucket {
                    slot,
                    entries: BTreeMap::new(),
                })
                .entries
                .insert(hash, to_u64(g)?);
        }
    }
    let mut root = Root {
        version,
        floor,
        buckets: BTreeMap::new(),
    };
    for bucket in buckets.values() {
        write_slot(conn, cipher, i64::from(bucket.slot), version, &encode_bucket(bucket))?;
        root.buckets.insert(bucket.slot, version);
    }
    write_root(conn, cipher, &root)?;
    Ok(root)
}
