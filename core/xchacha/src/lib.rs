//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`, keys wiped on drop) behind three
//! non-generic functions.
//!
//! Why a crate of its own: the AEAD is generic code, so it is compiled in the crate that calls
//! it. The vault's library is built at opt-level "z" (for size), and at that level LLVM does not
//! inline the `core::arch` intrinsics of the cipher's AVX2/SSE2 backends: every vector operation
//! becomes a call, and opening a 2 KB record took ~47 µs instead of ~4. Compiled here, with
//! `[profile.release.package.tokenvault-xchacha] opt-level = 3` in the workspace, the cipher is
//! built for speed while the rest of the library stays small.

#![forbid(unsafe_code)]

use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Key length in bytes.
pub const KEY_LEN: usize = 32;
/// Nonce length in bytes (XChaCha20: 192 bits, safe to draw at random).
pub const NONCE_LEN: usize = 24;
/// Tag length in bytes (Poly1305).
pub const TAG_LEN: usize = 16;

/// An XChaCha20-Poly1305 key. Its key schedule is wiped on drop (the crate's `zeroize`
/// feature).
pub struct XChaCha(XChaCha20Poly1305);

impl std::fmt::Debug for XChaCha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XChaCha(<key redacted>)")
    }
}

impl XChaCha {
    /// A cipher under `key`.
    #[inline(never)]
    pub fn new(key: &[u8; KEY_LEN]) -> XChaCha {
        XChaCha(XChaCha20Poly1305::new(key.into()))
    }

    /// `msg` encrypted and authenticated with `aad`: the ciphertext followed by the 16-byte
    /// tag. `None` if `nonce` is not [`NONCE_LEN`] bytes.
    #[inline(never)]
    pub fn encrypt(&self, nonce: &[u8], aad: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
        let nonce = XNonce::try_from(nonce).ok()?;
        self.0.encrypt(&nonce, Payload { msg, aad }).ok()
    }

    /// Encrypt `buf` in place and append the 16-byte tag: the plaintext's bytes become the
    /// ciphertext's, so no copy of the plaintext is made or left behind (give `buf` room for
    /// the tag to avoid a reallocation). `false`, with `buf` unchanged, if `nonce` is not
    /// [`NONCE_LEN`] bytes.
    #[inline(never)]
    pub fn encrypt_in_place(&self, nonce: &[u8], aad: &[u8], buf: &mut Vec<u8>) -> bool {
        let Ok(nonce) = XNonce::try_from(nonce) else {
            return false;
        };
        self.0.encrypt_in_place(&nonce, aad, buf).is_ok()
    }

    /// The plaintext of `ciphertext` (wiped on drop). `None` if the tag does not verify under
    /// this key, nonce and `aad`, or if `nonce` is not [`NONCE_LEN`] bytes.
    #[inline(never)]
    pub fn decrypt(&self, nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let nonce = XNonce::try_from(nonce).ok()?;
        self.0
            .decrypt(&nonce, Payload { msg: ciphertext, aad })
            .ok()
            .map(Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_input_is_authenticated() {
        let c = XChaCha::new(&[7; KEY_LEN]);
        let nonce = [1u8; NONCE_LEN];
        let ct = c.encrypt(&nonce, b"aad", b"secret").unwrap();
        assert_eq!(ct.len(), 6 + 16);
        assert_eq!(&c.decrypt(&nonce, b"aad", &ct).unwrap()[..], b"secret");
        assert!(c.decrypt(&nonce, b"other", &ct).is_none(), "aad not bound");
        assert!(c.decrypt(&[2u8; NONCE_LEN], b"aad", &ct).is_none(), "nonce not bound");
        assert!(
            XChaCha::new(&[8; KEY_LEN]).decrypt(&nonce, b"aad", &ct).is_none(),
            "key not bound"
        );
        let mut in_place = b"secret".to_vec();
        assert!(c.encrypt_in_place(&nonce, b"aad", &mut in_place));
        assert_eq!(in_place, ct, "in place and copying encryption agree");
        assert!(
            !c.encrypt_in_place(&[1u8; 12], b"aad", &mut in_place),
            "a short nonce is refused"
        );
        assert_eq!(in_place, ct, "a refused call leaves the buffer as it was");
        let mut flipped = ct.clone();
        flipped[0] ^= 1;
        assert!(
            c.decrypt(&nonce, b"aad", &flipped).is_none(),
            "ciphertext not authenticated"
        );
        assert!(
            c.encrypt(&nonce[..12], b"aad", b"x").is_none(),
            "a short nonce was accepted"
        );
    }
}
