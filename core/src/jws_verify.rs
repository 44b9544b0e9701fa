//! The signature checks behind `jsonwebtoken` (ADR 0012): a verify-only `CryptoProvider` over
//! `ring` (the same code the built-in TLS transport verifies certificates with), for the
//! algorithms a profile may allow — RS256/384/512, PS256/384/512 and ES256. Nothing here signs:
//! the vault never issues a JWT, and linking jsonwebtoken's own `rust_crypto` provider (every
//! algorithm, signing included, plus Ed25519, P-384, HMAC and a random generator) cost 1.0 MB of
//! the stripped library. RSA keys are accepted from 2,048 to 8,192 bits.
//!
//! jsonwebtoken takes its provider from a process-wide setting. [`ensure_installed`] installs
//! this one before the first id_token is checked, unless one is set already (a Rust host that
//! signs JWTs with jsonwebtoken installs its own first, and the vault then verifies with it).

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};
use signature::Verifier;

/// The largest RSA modulus accepted, in bits (a bigger one is a denial of service, not a key).
const MAX_RSA_BITS: usize = 8192;
/// The smallest (what ring verifies; a shorter key is refused as a key, before any signature).
const MIN_RSA_BITS: usize = 2048;

struct RsaVerifier {
    alg: Algorithm,
    params: &'static sig::RsaParameters,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl Verifier<Vec<u8>> for RsaVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        RsaPublicKeyComponents { n: &self.n, e: &self.e }
            .verify(self.params, msg, signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RsaVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// ES256 over an uncompressed SEC1 point (`04 || x || y`), the form a JWK's `x`/`y` give.
struct Es256Verifier(Vec<u8>);

impl Verifier<Vec<u8>> for Es256Verifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, &self.0)
            .verify(msg, signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Es256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let rsa = |params| -> Result<Box<dyn JwtVerifier>, Error> {
        let bad = || Error::from(ErrorKind::InvalidRsaKey("not an RSA public key".into()));
        match key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                let (n, e) = (strip_leading_zeros(n), strip_leading_zeros(e));
                if e.is_empty() {
                    return Err(bad());
                }
                if n.len() * 8 < MIN_RSA_BITS || n.len() * 8 > MAX_RSA_BITS {
                    return Err(Error::from(ErrorKind::InvalidRsaKey(
                        "RSA keys of 2,048 to 8,192 bits only".into(),
                    )));
                }
                Ok(Box::new(RsaVerifier {
                    alg: *alg,
                    params,
                    n: n.to_vec(),
                    e: e.to_vec(),
                }))
            }
            DecodingKeyKind::SecretOrDer(_) => Err(bad()),
        }
    };
    match alg {
        Algorithm::RS256 => rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => rsa(&sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => rsa(&sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => rsa(&sig::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => {
            let point = key.try_get_as_bytes()?;
            // 65 bytes: the uncompressed form; ring checks the point is on the curve.
            if point.len() != 65 || point[0] != 4 {
                return Err(ErrorKind::InvalidEcdsaKey.into());
            }
            Ok(Box::new(Es256Verifier(point.to_vec())))
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

/// A JWK's `n` and `e` may carry leading zero bytes; ring wants the minimal big-endian form.
fn strip_leading_zeros(n: &[u8]) -> &[u8] {
    let first = n.iter().position(|&b| b != 0).unwrap_or(n.len());
    &n[first..]
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

/// The vault's verify-only provider.
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
        ec_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidAlgorithm.into()),
        ed_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidAlgorithm.into()),
        compute_digest: |_, _| Err(ErrorKind::InvalidAlgorithm.into()),
    },
};

/// Install the vault's provider unless the process already has one (idempotent, cheap).
pub(crate) fn ensure_installed() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if PROVIDER.install_default().is_err() {
            crate::logging::debug_record!("jsonwebtoken already has a crypto provider; the vault verifies with it");
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rsa_keys_outside_2048_to_8192_bits_are_refused_as_keys() {
        let e = [1u8, 0, 1];
        for (bytes, usable) in [
            (128usize, false),
            (255, false),
            (256, true),
            (1024, true),
            (1025, false),
        ] {
            let mut n = vec![0xC5u8; bytes];
            n.insert(0, 0); // a leading zero byte, as a JWK's `n` may carry
            let key = DecodingKey::from_rsa_raw_components(&n, &e);
            assert_eq!(
                new_verifier(&Algorithm::RS256, &key).is_ok(),
                usable,
                "{} bits",
                bytes * 8
            );
        }
    }
}
