//! Secrets are types.
//!
//! [`SecretString`] owns a secret (a token, a client secret, a passphrase): its `Debug` prints
//! `SecretString(<redacted, N bytes>)`, its bytes are cleared when dropped, and the only way to
//! read it is the explicit [`SecretString::expose`]. [`AccessToken`] is the cheap, shareable
//! form handed out by the hot read path: cloning it is one atomic increment, and the bytes are
//! cleared when the last clone goes away. Clearing uses `fill(0)` plus an optimization barrier:
//! measured on the 2-core development machine, `zeroize` 1.9's one-volatile-byte-at-a-time loop
//! costs ~115 ns for 900 B, this ~9 ns.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Overwrite a buffer with zeros in a way the optimizer keeps.
pub(crate) fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    zeroize::optimization_barrier(&*bytes);
}

/// A growable byte buffer for secrets: whenever it must grow, the old allocation is wiped before
/// it is freed (a plain `Vec` leaves the bytes it held in the block `realloc` releases), and the
/// bytes are wiped on drop.
pub(crate) struct SecretBuf(Vec<u8>);

impl SecretBuf {
    pub(crate) fn with_capacity(n: usize) -> SecretBuf {
        SecretBuf(Vec::with_capacity(n))
    }

    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        let need = self.0.len().saturating_add(bytes.len());
        if need > self.0.capacity() {
            let mut grown = Vec::with_capacity(need.max(self.0.capacity().saturating_mul(2)));
            grown.extend_from_slice(&self.0);
            let mut old = std::mem::replace(&mut self.0, grown);
            old.resize(old.capacity(), 0);
            wipe(&mut old);
        }
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl std::io::Write for SecretBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.extend(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        let len = self.0.capacity();
        self.0.resize(len, 0);
        wipe(&mut self.0);
    }
}

/// Serialize `value` as JSON into a [`SecretBuf`].
pub(crate) fn to_json_secret<T: Serialize>(value: &T) -> serde_json::Result<SecretBuf> {
    let mut buf = SecretBuf::with_capacity(2048);
    serde_json::to_writer(&mut buf, value)?;
    Ok(buf)
}

/// A secret string: redacted `Debug`, cleared on drop, read only through [`expose`](Self::expose).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret's text. Call it only where the bytes are needed.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        SecretString(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        SecretString(value.to_owned())
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        // SAFETY-free: zeros are valid UTF-8, so the String stays well-formed.
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        wipe(&mut bytes);
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString(<redacted, {} bytes>)", self.0.len())
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretString)
    }
}

/// The bytes behind an [`AccessToken`], cleared when the last reference is dropped.
#[derive(PartialEq, Eq)]
struct TokenBytes(Box<str>);

impl Drop for TokenBytes {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_boxed_bytes();
        wipe(&mut bytes);
    }
}

/// The access token's text inside a session record, shared with every [`AccessToken`] handed
/// out from it: one copy in memory per session, wiped when the last holder drops it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TokenText(Arc<TokenBytes>);

impl TokenText {
    pub(crate) fn new(text: &str) -> Self {
        TokenText(Arc::new(TokenBytes(text.into())))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0 .0
    }
}

impl fmt::Debug for TokenText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenText(<redacted, {} bytes>)", self.0 .0.len())
    }
}

impl Serialize for TokenText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for TokenText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through a SecretString: the intermediate String is wiped when it drops.
        let text = SecretString::deserialize(deserializer)?;
        Ok(TokenText::new(text.expose()))
    }
}

/// A valid access token handed out by the vault, with the generation it belongs to.
///
/// Cloning is cheap (reference counted). `Debug` is redacted; [`expose`](Self::expose) reads it.
#[derive(Clone)]
pub struct AccessToken {
    bytes: Arc<TokenBytes>,
    generation: u64,
}

impl AccessToken {
    pub(crate) fn new(token: &str, generation: u64) -> Self {
        AccessToken {
            bytes: Arc::new(TokenBytes(token.into())),
            generation,
        }
    }

    /// The token of a session record, sharing its text (no copy).
    pub(crate) fn of_record(text: &TokenText, generation: u64) -> Self {
        AccessToken {
            bytes: Arc::clone(&text.0),
            generation,
        }
    }

    /// The token text, e.g. for an `Authorization: Bearer` header.
    pub fn expose(&self) -> &str {
        &self.bytes.0
    }

    /// The generation of the stored pair this token belongs to. It increases with every
    /// refresh and every store; report it back with a 401 to avoid needless refreshes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True if both are the same refresh result: the same generation and the same text.
    pub fn same_as(&self, other: &AccessToken) -> bool {
        self.generation == other.generation && self.expose() == other.expose()
    }

    /// A copy in an allocation of its own (a thread's private copy on the hot path: cloning
    /// it then writes only that thread's memory).
    pub(crate) fn private_copy(&self) -> AccessToken {
        AccessToken::new(self.expose(), self.generation)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AccessToken(<redacted, {} bytes>, generation {})",
            self.bytes.0.len(),
            self.generation
        )
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.generation == other.generation && self.expose() == other.expose()
    }
}

impl Eq for AccessToken {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = SecretString::new("super-secret-token");
        let t = AccessToken::new("another-secret", 3);
        assert!(!format!("{s:?}").contains("super"));
        assert!(!format!("{t:?}").contains("another"));
        assert!(format!("{t:?}").contains("generation 3"));
        assert_eq!(s.expose(), "super-secret-token");
        assert_eq!(t.expose(), "another-secret");
    }

    #[test]
    fn wipe_clears_bytes() {
        let mut b = *b"abcdef";
        wipe(&mut b);
        assert_eq!(b, [0u8; 6]);
    }
}
