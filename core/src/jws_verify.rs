//! The signature checks behind `jsonwebtoken` (ADR 0012): a verify-only `CryptoProvider` over
//! RustCrypto's `rsa` and `p256`, for the algorithms a profile may allow — RS256/384/512,
//! PS256/384/512 and ES256. Nothing here signs: the vault never issues a JWT, and linking
//! jsonwebtoken's own `rust_crypto` provider (every algorithm, signing included, plus
//! Ed25519, P-384, HMAC and a random generator) cost 1.0 MB of the stripped library.
//!
//! jsonwebtoken takes its provider from a process-wide setting. [`ensure_installed`] installs
//! this one before the first id_token is checked, unless one is set already (a Rust host that
//! signs JWTs with jsonwebtoken installs its own first, and the vault then verifies with it).

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPublicKey};
use sha2_10::{Digest, Sha256, Sha384, Sha512};
use signature::Verifier;

/// The largest RSA modulus accepted, in bits (a bigger one is a denial of service, not a key).
const MAX_RSA_BITS: usize = 8192;

#[derive(Clone, Copy)]
enum Scheme {
    Pkcs1,
    Pss,
}

#[derive(Clone, Copy)]
enum Hash {
    S256,
    S384,
    S512,
}

struct RsaVerifier {
    alg: Algorithm,
    scheme: Scheme,
    hash: Hash,
    key: RsaPublicKey,
}

impl Verifier<Vec<u8>> for RsaVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        match (self.scheme, self.hash) {
            (Scheme::Pkcs1, Hash::S256) => self.check(Pkcs1v15Sign::new::<Sha256>(), msg, sig),
            (Scheme::Pkcs1, Hash::S384) => self.check(Pkcs1v15Sign::new::<Sha384>(), msg, sig),
            (Scheme::Pkcs1, Hash::S512) => self.check(Pkcs1v15Sign::new::<Sha512>(), msg, sig),
            (Scheme::Pss, Hash::S256) => self.check(Pss::new::<Sha256>(), msg, sig),
            (Scheme::Pss, Hash::S384) => self.check(Pss::new::<Sha384>(), msg, sig),
            (Scheme::Pss, Hash::S512) => self.check(Pss::new::<Sha512>(), msg, sig),
        }
    }
}

impl RsaVerifier {
    fn check<S: rsa::traits::SignatureScheme>(
        &self,
        scheme: S,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), signature::Error> {
        let digest = match self.hash {
            Hash::S256 => Sha256::digest(msg).to_vec(),
            Hash::S384 => Sha384::digest(msg).to_vec(),
            Hash::S512 => Sha512::digest(msg).to_vec(),
        };
        self.key
            .verify(scheme, &digest, sig)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RsaVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

struct Es256Verifier(p256::ecdsa::VerifyingKey);

impl Verifier<Vec<u8>> for Es256Verifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let sig = p256::ecdsa::Signature::from_slice(sig).map_err(|_| signature::Error::new())?;
        self.0.verify(msg, &sig)
    }
}

impl JwtVerifier for Es256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

fn rsa_key(key: &DecodingKey) -> Result<RsaPublicKey, Error> {
    let bad = || Error::from(ErrorKind::InvalidRsaKey("not an RSA public key".into()));
    match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            if n.len() * 8 > MAX_RSA_BITS {
                return Err(bad());
            }
            RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e)).map_err(|_| bad())
        }
        DecodingKeyKind::SecretOrDer(_) => Err(bad()),
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let rsa = |scheme, hash| -> Result<Box<dyn JwtVerifier>, Error> {
        Ok(Box::new(RsaVerifier {
            alg: *alg,
            scheme,
            hash,
            key: rsa_key(key)?,
        }))
    };
    match alg {
        Algorithm::RS256 => rsa(Scheme::Pkcs1, Hash::S256),
        Algorithm::RS384 => rsa(Scheme::Pkcs1, Hash::S384),
        Algorithm::RS512 => rsa(Scheme::Pkcs1, Hash::S512),
        Algorithm::PS256 => rsa(Scheme::Pss, Hash::S256),
        Algorithm::PS384 => rsa(Scheme::Pss, Hash::S384),
        Algorithm::PS512 => rsa(Scheme::Pss, Hash::S512),
        Algorithm::ES256 => {
            let bytes = key.try_get_as_bytes()?;
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                .map_err(|_| Error::from(ErrorKind::InvalidEcdsaKey))?;
            Ok(Box::new(Es256Verifier(vk)))
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
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
            log::debug!("jsonwebtoken already has a crypto provider; the vault verifies with it");
        }
    });
}
