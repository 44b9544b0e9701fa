//! Record cipher and key handling (`docs/adr/0001-record-level-aead-over-sqlite.md`,
//! `docs/adr/0002-envelope-keys.md`).
//!
//! * A random 32-byte **data key** never leaves memory unwrapped. Two sub-keys are derived from
//!   it with HMAC-SHA256: the **record key** (XChaCha20-Poly1305 over every session record) and
//!   the **lookup key** (a keyed hash that replaces account ids in the table).
//! * The data key is **wrapped** (XChaCha20-Poly1305) by a key-encryption key: the host's own
//!   32 raw bytes, or Argon2id over a passphrase with the parameters stored beside the wrapped key.
//!   The wrap's associated data binds the KDF parameters, so tampering with them is detected.
//! * A wrong key fails the wrap's authentication tag: that is [`VaultError::WrongKey`], detected
//!   before anything is written.
//! * Every record's associated data is its row identity (the account hash), the record format
//!   version and the generation, so a ciphertext moved to another row, or an old row replayed
//!   under a newer generation, fails to decrypt.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokenvault_xchacha::{XChaCha, TAG_LEN};
use zeroize::Zeroizing;

use crate::error::{Result, VaultError};
use crate::secret::{wipe, SecretString};

/// Length of every key in this module.
pub const KEY_LEN: usize = 32;
/// XChaCha20 nonce length.
pub const NONCE_LEN: usize = 24;
/// Salt length for Argon2id.
pub const SALT_LEN: usize = 16;

/// Where the key that opens a vault comes from.
pub enum KeySource {
    /// 32 raw bytes from the platform's secure storage (Keychain, Keystore, DPAPI...).
    Raw(Zeroizing<[u8; KEY_LEN]>),
    /// A passphrase, stretched with Argon2id.
    Passphrase(SecretString),
}

impl KeySource {
    /// A raw key; it must be exactly 32 bytes.
    pub fn raw(bytes: &[u8]) -> Result<KeySource> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| VaultError::invalid(format!("a raw key must be {KEY_LEN} bytes, got {}", bytes.len())))?;
        Ok(KeySource::Raw(Zeroizing::new(arr)))
    }

    /// A passphrase; it must not be empty.
    pub fn passphrase(passphrase: &str) -> Result<KeySource> {
        if passphrase.is_empty() {
            return Err(VaultError::invalid("the passphrase is empty"));
        }
        Ok(KeySource::Passphrase(SecretString::new(passphrase)))
    }

    pub(crate) fn kind(&self) -> KeyKind {
        match self {
            KeySource::Raw(_) => KeyKind::Raw,
            KeySource::Passphrase(_) => KeyKind::Argon2id,
        }
    }
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Raw(_) => f.write_str("KeySource::Raw(<redacted>)"),
            KeySource::Passphrase(_) => f.write_str("KeySource::Passphrase(<redacted>)"),
        }
    }
}

/// How the data key is wrapped, as stored in the `vault_key` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Raw,
    Argon2id,
}

impl KeyKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeyKind::Raw => "raw",
            KeyKind::Argon2id => "argon2id",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<KeyKind> {
        match s {
            "raw" => Ok(KeyKind::Raw),
            "argon2id" => Ok(KeyKind::Argon2id),
            _ => Err(VaultError::corrupt("unknown key kind in the vault_key row")),
        }
    }
}

/// Argon2id cost parameters, stored with the wrapped key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism.
    pub p: u32,
}

impl KdfParams {
    /// OWASP's recommended Argon2id setting (19 MiB, 2 iterations, 1 lane).
    pub const OWASP: KdfParams = KdfParams {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };

    /// The parameters new vaults get. Unit tests of this crate use a fast setting; nothing
    /// else can.
    pub(crate) fn for_new_vaults() -> KdfParams {
        #[cfg(test)]
        {
            KdfParams { m_kib: 64, t: 1, p: 1 }
        }
        #[cfg(not(test))]
        {
            KdfParams::OWASP
        }
    }

    /// The largest parameters accepted from a file: 64 MiB, 8 passes, 4 lanes (this code writes
    /// 19 MiB, 2 passes, 1 lane). A tampered file cannot make an open allocate more than 64 MiB
    /// or run longer than ~8 OWASP-sized passes; anything outside is `Corrupt`, refused before
    /// any memory is allocated.
    pub const MAX_ACCEPTED: KdfParams = KdfParams {
        m_kib: 64 * 1024,
        t: 8,
        p: 4,
    };

    /// Bounds accepted when reading a file (see [`KdfParams::MAX_ACCEPTED`]).
    pub(crate) fn check_stored(self) -> Result<()> {
        let max = KdfParams::MAX_ACCEPTED;
        if !(8..=max.m_kib).contains(&self.m_kib) || !(1..=max.t).contains(&self.t) || !(1..=max.p).contains(&self.p) {
            return Err(VaultError::corrupt(
                "key-derivation parameters in the file are outside what this version accepts",
            ));
        }
        Ok(())
    }
}

/// The stored form of the wrapped data key.
#[derive(Debug, Clone)]
pub(crate) struct WrappedKey {
    pub kind: KeyKind,
    pub salt: Option<Vec<u8>>,
    pub kdf: Option<KdfParams>,
    pub nonce: Vec<u8>,
    pub wrapped: Vec<u8>,
}

/// Fill a buffer from the operating system's CSPRNG (through ring, which the TLS transport and
/// the id_token checks link anyway: one random-source crate in the library, not two).
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    use ring::rand::SecureRandom as _;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| VaultError::internal("the operating system's random source failed"))
}

/// A random u64 (jitter, attempt ids).
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // Jitter and ids only: on the (theoretical) failure of the OS source, a fixed value is
    // harmless.
    let _ = random_bytes(&mut b);
    u64::from_le_bytes(b)
}

fn wrap_aad(kind: KeyKind, salt: Option<&[u8]>, kdf: Option<KdfParams>) -> Vec<u8> {
    let mut aad = b"tokenvault/keywrap/v1/".to_vec();
    aad.extend_from_slice(kind.as_str().as_bytes());
    if let Some(s) = salt {
        aad.push(b'/');
        aad.extend_from_slice(s);
    }
    if let Some(k) = kdf {
        aad.extend_from_slice(&k.m_kib.to_be_bytes());
        aad.extend_from_slice(&k.t.to_be_bytes());
        aad.extend_from_slice(&k.p.to_be_bytes());
    }
    aad
}

/// Derive the key-encryption key for a source.
fn key_encryption_key(
    source: &KeySource,
    salt: Option<&[u8]>,
    kdf: Option<KdfParams>,
) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let mut kek = Zeroizing::new([0u8; KEY_LEN]);
    match source {
        KeySource::Raw(raw) => {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&raw[..])
                .map_err(|_| VaultError::internal("HMAC key setup failed"))?;
            mac.update(b"tokenvault/kek/raw/v1");
            kek.copy_from_slice(&mac.finalize().into_bytes());
        }
        KeySource::Passphrase(pass) => {
            let (Some(salt), Some(k)) = (salt, kdf) else {
                return Err(VaultError::corrupt("passphrase vault without KDF parameters"));
            };
            let params = argon2::Params::new(k.m_kib, k.t, k.p, Some(KEY_LEN))
                .map_err(|_| VaultError::corrupt("invalid Argon2 parameters"))?;
            let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            argon
                .hash_password_into(pass.expose().as_bytes(), salt, &mut kek[..])
                .map_err(|_| VaultError::internal("Argon2id derivation failed"))?;
        }
    }
    Ok(kek)
}

/// A key-encryption key with the parameters it was derived under: what a key slot is wrapped
/// with. Kept in memory while a vault is open so that `rekey` can re-wrap the new data key
/// for the key the vault was opened with (the retiring slot).
pub(crate) struct Kek {
    key: Zeroizing<[u8; KEY_LEN]>,
    kind: KeyKind,
    salt: Option<Vec<u8>>,
    kdf: Option<KdfParams>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek({:?}, <redacted>)", self.kind)
    }
}

impl Kek {
    /// A fresh key-encryption key for a source (a new salt for a passphrase).
    pub(crate) fn fresh(source: &KeySource) -> Result<Kek> {
        let kind = source.kind();
        let (salt, kdf) = match kind {
            KeyKind::Raw => (None, None),
            KeyKind::Argon2id => {
                let mut salt = vec![0u8; SALT_LEN];
                random_bytes(&mut salt)?;
                (Some(salt), Some(KdfParams::for_new_vaults()))
            }
        };
        let key = key_encryption_key(source, salt.as_deref(), kdf)?;
        Ok(Kek { key, kind, salt, kdf })
    }

    /// The key-encryption key of `source` under a stored slot's parameters (checked first: a
    /// hostile file cannot make this allocate beyond [`KdfParams::MAX_ACCEPTED`]).
    pub(crate) fn for_slot(source: &KeySource, stored: &WrappedKey) -> Result<Kek> {
        if source.kind() != stored.kind {
            return Err(VaultError::WrongKey);
        }
        if let Some(k) = stored.kdf {
            k.check_stored()?;
        }
        let key = key_encryption_key(source, stored.salt.as_deref(), stored.kdf)?;
        Ok(Kek {
            key,
            kind: stored.kind,
            salt: stored.salt.clone(),
            kdf: stored.kdf,
        })
    }

    /// Wrap a data key (a fresh nonce every time).
    pub(crate) fn wrap(&self, data_key: &[u8; KEY_LEN]) -> Result<WrappedKey> {
        let mut nonce = vec![0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let aad = wrap_aad(self.kind, self.salt.as_deref(), self.kdf);
        let wrapped = XChaCha::new(&self.key)
            .encrypt(&nonce, &aad, &data_key[..])
            .ok_or_else(|| VaultError::internal("key wrap failed"))?;
        Ok(WrappedKey {
            kind: self.kind,
            salt: self.salt.clone(),
            kdf: self.kdf,
            nonce,
            wrapped,
        })
    }

    /// Unwrap a slot. Any authentication failure is [`VaultError::WrongKey`] (the key kind
    /// matched but the key did not), never corruption: the two are indistinguishable by
    /// design, and a wrong key must never be treated as damage.
    pub(crate) fn unwrap(&self, stored: &WrappedKey) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        if stored.nonce.len() != NONCE_LEN {
            return Err(VaultError::corrupt("the wrapped key has a bad nonce"));
        }
        let aad = wrap_aad(stored.kind, stored.salt.as_deref(), stored.kdf);
        let plain = XChaCha::new(&self.key)
            .decrypt(&stored.nonce, &aad, &stored.wrapped)
            .ok_or(VaultError::WrongKey)?;
        if plain.len() != KEY_LEN {
            return Err(VaultError::corrupt("the wrapped key has the wrong length"));
        }
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        out.copy_from_slice(&plain);
        Ok(out)
    }
}

/// Wrap a data key under a key source (tests; the vault keeps the [`Kek`]).
#[cfg(test)]
pub(crate) fn wrap_data_key(source: &KeySource, data_key: &[u8; KEY_LEN]) -> Result<WrappedKey> {
    Kek::fresh(source)?.wrap(data_key)
}

/// Unwrap the data key of one stored slot (tests and fuzzing).
#[cfg(any(test, fuzzing))]
pub(crate) fn unwrap_data_key(source: &KeySource, stored: &WrappedKey) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    Kek::for_slot(source, stored)?.unwrap(stored)
}

/// A fresh random data key.
pub(crate) fn new_data_key() -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    random_bytes(&mut k[..])?;
    Ok(k)
}

/// The format of session records written by this code; part of every record's AAD.
/// Format 1 (the first release) sealed the serialized record as is; format 2 pads it to a size
/// bucket (see [`padded_len`]), so a ciphertext's length no longer tells a token's length.
pub(crate) const RECORD_FORMAT: i64 = 2;

/// The padded plaintext length of a record of `len` bytes (4-byte length prefix included):
/// 2 KiB (a session with a JWT access token and its refresh credential usually fits), else
/// 4 KiB, else the next multiple of 4 KiB. A record still fits one 4 KiB page up to 2 KiB.
pub(crate) fn padded_len(len: usize) -> usize {
    let need = len.saturating_add(4);
    if need <= 2048 {
        2048
    } else {
        need.div_ceil(4096).saturating_mul(4096)
    }
}

fn subkey(data_key: &[u8; KEY_LEN], label: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(data_key)
        .map_err(|_| VaultError::internal("HMAC key setup failed"))?;
    mac.update(label);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

/// The key behind the keyed hashes that stand for account ids and refresh credentials in the
/// file. It does not change with `rekey` (so hashes, markers and in-flight refreshes stay
/// valid): first derived from the first data key, then stored sealed under the current one.
pub(crate) struct LookupKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupKey(<redacted>)")
    }
}

const LOOKUP_SEAL_AAD: &[u8] = b"tokenvault/lookup-key/sealed/v1";

impl LookupKey {
    fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Result<LookupKey> {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&bytes[..])
            .map_err(|_| VaultError::internal("HMAC key setup failed"))?;
        Ok(LookupKey { bytes, mac })
    }

    /// The lookup key of a vault whose data key never changed: derived from it.
    pub(crate) fn derive(data_key: &[u8; KEY_LEN]) -> Result<LookupKey> {
        LookupKey::from_bytes(subkey(data_key, b"tokenvault/lookup-key/v1")?)
    }

    /// Seal this key under a data key (stored after a rotation): (nonce, ciphertext).
    pub(crate) fn seal(&self, data_key: &[u8; KEY_LEN]) -> Result<(Vec<u8>, Vec<u8>)> {
        let k = subkey(data_key, b"tokenvault/lookup-seal-key/v1")?;
        let mut nonce = vec![0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        let ct = XChaCha::new(&k)
            .encrypt(&nonce, LOOKUP_SEAL_AAD, &self.bytes[..])
            .ok_or_else(|| VaultError::internal("lookup key sealing failed"))?;
        Ok((nonce, ct))
    }

    /// Open a sealed lookup key; any failure is `Corrupt` (the data key is known good).
    pub(crate) fn unseal(data_key: &[u8; KEY_LEN], nonce: &[u8], ct: &[u8]) -> Result<LookupKey> {
        let k = subkey(data_key, b"tokenvault/lookup-seal-key/v1")?;
        let plain = XChaCha::new(&k)
            .decrypt(nonce, LOOKUP_SEAL_AAD, ct)
            .ok_or_else(|| VaultError::corrupt("the sealed lookup key failed authentication"))?;
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if plain.len() != KEY_LEN {
            return Err(VaultError::corrupt("the sealed lookup key has the wrong length"));
        }
        bytes.copy_from_slice(&plain);
        LookupKey::from_bytes(bytes)
    }

    /// The keyed hash that stands for an account id in the table.
    pub(crate) fn account_hash(&self, account: &str) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(b"account\0");
        mac.update(account.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The keyed hash that stands for an OpenID issuer in the key-set cache (the issuer's URL
    /// is not in the file in clear).
    pub(crate) fn issuer_hash(&self, issuer: &str) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(b"issuer\0");
        mac.update(issuer.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// A keyed hash of a refresh credential (for compare-and-swap across processes and for the
    /// record of what a refresh sent), so the credential itself is never stored twice.
    pub(crate) fn credential_hash(&self, credential: &str) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(b"credential\0");
        mac.update(credential.as_bytes());
        mac.finalize().into_bytes()[..16].to_vec()
    }
}

/// Length of a manifest MAC.
pub(crate) const MAC_LEN: usize = 32;

/// Encrypts and decrypts session records and authenticates the manifest. Holds only keys
/// derived from one data key; replaced as a whole by `rekey`.
pub(crate) struct RecordCipher {
    aead: XChaCha,
    manifest: Hmac<Sha256>,
}

impl std::fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordCipher(<keys redacted>)")
    }
}

/// The domain of a queued revocation's seal ([`RecordCipher::seal_blob`]).
pub(crate) const REVOCATION_DOMAIN: &str = "revocation";
/// The domain of a cached key set's seal.
pub(crate) const JWKS_DOMAIN: &str = "jwks";

impl RecordCipher {
    pub(crate) fn new(data_key: &[u8; KEY_LEN]) -> Result<RecordCipher> {
        let record_key = subkey(data_key, b"tokenvault/record-key/v1")?;
        let manifest_key = subkey(data_key, b"tokenvault/manifest-key/v1")?;
        Ok(RecordCipher {
            aead: XChaCha::new(&record_key),
            manifest: <Hmac<Sha256> as KeyInit>::new_from_slice(&manifest_key[..])
                .map_err(|_| VaultError::internal("HMAC key setup failed"))?,
        })
    }

    /// The MAC state over one manifest row, ready to finalize or verify.
    fn manifest_state(&self, slot: i64, version: u64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.manifest.clone();
        mac.update(b"tokenvault/manifest/v1\0");
        mac.update(&slot.to_be_bytes());
        mac.update(&version.to_be_bytes());
        mac.update(body);
        mac
    }

    /// The MAC of one manifest row.
    pub(crate) fn manifest_mac(&self, slot: i64, version: u64, body: &[u8]) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&self.manifest_state(slot, version, body).finalize().into_bytes());
        out
    }

    /// Check a manifest row's MAC in constant time.
    pub(crate) fn manifest_ok(&self, slot: i64, version: u64, body: &[u8], tag: &[u8]) -> bool {
        self.manifest_state(slot, version, body).verify_slice(tag).is_ok()
    }

    fn record_aad(account_hash: &[u8], format: i64, generation: u64) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(b"tokenvault/session/");
        aad.extend_from_slice(&format.to_be_bytes());
        aad.extend_from_slice(&generation.to_be_bytes());
        aad.extend_from_slice(account_hash);
        aad
    }

    /// Encrypt a record's plaintext, padded to its size bucket; returns (nonce, ciphertext).
    pub(crate) fn seal(&self, account_hash: &[u8], generation: u64, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        self.seal_aad(&Self::record_aad(account_hash, RECORD_FORMAT, generation), plaintext)
    }

    /// The associated data of a sealed value that is not a session record: its domain (what it
    /// is) and its id, so a value cannot be moved to another row or another table.
    fn blob_aad(domain: &str, id: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + domain.len() + id.len());
        aad.extend_from_slice(b"tokenvault/");
        aad.extend_from_slice(domain.as_bytes());
        aad.push(b'/');
        aad.extend_from_slice(id);
        aad
    }

    /// Encrypt another sealed value of the vault (a queued revocation, a cached key set), bound
    /// to `domain` and `id`, padded like a record; returns (nonce, ciphertext).
    pub(crate) fn seal_blob(&self, domain: &str, id: &[u8], plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        self.seal_aad(&Self::blob_aad(domain, id), plaintext)
    }

    /// Decrypt a value sealed by [`seal_blob`](Self::seal_blob) with the same domain and id;
    /// any failure is [`VaultError::Corrupt`].
    pub(crate) fn open_blob(
        &self,
        domain: &str,
        id: &[u8],
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.open_aad(&Self::blob_aad(domain, id), nonce, ciphertext, true)
    }

    fn seal_aad(&self, aad: &[u8], plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let len = u32::try_from(plaintext.len()).map_err(|_| VaultError::invalid("a session record is too large"))?;
        let mut nonce = vec![0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        // Zero-filled by the allocator, with room for the tag; then the length prefix and the
        // record. The buffer is encrypted in place: it holds the ciphertext afterwards, so no
        // copy of the plaintext is left to wipe.
        let padded = padded_len(plaintext.len());
        let mut buf = vec![0u8; padded + TAG_LEN];
        buf.truncate(padded);
        let sealed = match buf.get_mut(..4 + plaintext.len()) {
            Some(head) => {
                head[..4].copy_from_slice(&len.to_be_bytes());
                head[4..].copy_from_slice(plaintext);
                self.aead.encrypt_in_place(&nonce, aad, &mut buf)
            }
            None => false,
        };
        if !sealed {
            wipe(&mut buf);
            return Err(VaultError::internal("record encryption failed"));
        }
        Ok((nonce, buf))
    }

    /// Decrypt a record (format 1 or 2) and return its unpadded plaintext. Any failure is
    /// [`VaultError::Corrupt`]: the data key is already known to be right (it unwrapped), so a
    /// failing tag means this record was altered or moved.
    pub(crate) fn open(
        &self,
        account_hash: &[u8],
        format: i64,
        generation: u64,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        if format != 1 && format != RECORD_FORMAT {
            return Err(VaultError::corrupt(format!("unknown session record format {format}")));
        }
        let aad = Self::record_aad(account_hash, format, generation);
        self.open_aad(&aad, nonce, ciphertext, format != 1)
    }

    fn open_aad(&self, aad: &[u8], nonce: &[u8], ciphertext: &[u8], padded: bool) -> Result<Zeroizing<Vec<u8>>> {
        if nonce.len() != NONCE_LEN {
            return Err(VaultError::corrupt("a session record has a bad nonce"));
        }
        let mut plain = self
            .aead
            .decrypt(nonce, aad, ciphertext)
            .ok_or_else(|| VaultError::corrupt("a session record failed authentication"))?;
        if !padded {
            return Ok(plain);
        }
        let len = plain
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| n.saturating_add(4) <= plain.len())
            .ok_or_else(|| VaultError::corrupt("a session record has a bad length prefix"))?;
        plain.copy_within(4..4 + len, 0);
        let tail = len;
        wipe(&mut plain[tail..]);
        plain.truncate(len);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_roundtrip_and_wrong_key() {
        let dk = new_data_key().unwrap();
        for src in [
            KeySource::raw(&[7u8; 32]).unwrap(),
            KeySource::passphrase("correct horse").unwrap(),
        ] {
            let w = wrap_data_key(&src, &dk).unwrap();
            assert_eq!(&unwrap_data_key(&src, &w).unwrap()[..], &dk[..]);
        }
        let w = wrap_data_key(&KeySource::raw(&[7u8; 32]).unwrap(), &dk).unwrap();
        assert_eq!(
            unwrap_data_key(&KeySource::raw(&[8u8; 32]).unwrap(), &w).unwrap_err(),
            VaultError::WrongKey
        );
        assert_eq!(
            unwrap_data_key(&KeySource::passphrase("x").unwrap(), &w).unwrap_err(),
            VaultError::WrongKey
        );
        let w = wrap_data_key(&KeySource::passphrase("right").unwrap(), &dk).unwrap();
        assert_eq!(
            unwrap_data_key(&KeySource::passphrase("wrong").unwrap(), &w).unwrap_err(),
            VaultError::WrongKey
        );
        // Tampered KDF parameters are detected (they are in the AAD).
        let mut t = w.clone();
        t.kdf = Some(KdfParams { m_kib: 128, t: 1, p: 1 });
        assert!(unwrap_data_key(&KeySource::passphrase("right").unwrap(), &t).is_err());
        // Hostile parameters are refused before any allocation (1 GiB is over the cap).
        t.kdf = Some(KdfParams {
            m_kib: 1024 * 1024,
            t: 1,
            p: 1,
        });
        assert_eq!(
            unwrap_data_key(&KeySource::passphrase("right").unwrap(), &t)
                .unwrap_err()
                .code(),
            crate::ErrorCode::Corrupt
        );
    }

    #[test]
    fn raw_key_length_is_checked() {
        assert!(KeySource::raw(&[1u8; 31]).is_err());
        assert!(KeySource::passphrase("").is_err());
        assert!(!format!("{:?}", KeySource::passphrase("hunter2").unwrap()).contains("hunter2"));
    }

    #[test]
    fn records_are_bound_to_row_and_generation() {
        let c = RecordCipher::new(&[1u8; 32]).unwrap();
        let l = LookupKey::derive(&[1u8; 32]).unwrap();
        let a = l.account_hash("alice");
        let b = l.account_hash("bob");
        assert_ne!(a, b);
        let (n, ct) = c.seal(&a, 5, b"secret record").unwrap();
        assert_eq!(&c.open(&a, 2, 5, &n, &ct).unwrap()[..], b"secret record");
        assert!(c.open(&b, 2, 5, &n, &ct).is_err(), "moved to another row");
        assert!(c.open(&a, 2, 4, &n, &ct).is_err(), "other generation");
        assert!(c.open(&a, 1, 5, &n, &ct).is_err(), "other format");
        let mut bad = ct.clone();
        bad[3] ^= 1;
        assert_eq!(
            c.open(&a, 2, 5, &n, &bad).unwrap_err().code(),
            crate::ErrorCode::Corrupt
        );
    }

    #[test]
    fn records_are_padded_to_size_buckets() {
        let c = RecordCipher::new(&[1u8; 32]).unwrap();
        let h = [9u8; 32];
        let lens = |n: usize| c.seal(&h, 1, &vec![b'x'; n]).unwrap().1.len();
        assert_eq!(lens(10), lens(2044), "records up to 2 KiB share one size");
        assert_eq!(lens(2045), lens(4092));
        assert_ne!(lens(4092), lens(4093));
        for n in [0, 1, 2044, 2045, 4092, 4093, 9000] {
            let (nonce, ct) = c.seal(&h, 1, &vec![b'y'; n]).unwrap();
            assert_eq!(c.open(&h, 2, 1, &nonce, &ct).unwrap().len(), n);
        }
    }

    #[test]
    fn lookup_key_survives_sealing_under_another_data_key() {
        let l = LookupKey::derive(&[1u8; 32]).unwrap();
        let (n, ct) = l.seal(&[2u8; 32]).unwrap();
        let back = LookupKey::unseal(&[2u8; 32], &n, &ct).unwrap();
        assert_eq!(back.account_hash("a"), l.account_hash("a"));
        assert!(LookupKey::unseal(&[3u8; 32], &n, &ct).is_err());
    }
}
