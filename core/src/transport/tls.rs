//! TLS for the built-in transport: one rustls client configuration and the ureq connector that
//! wraps every `https://` connection in it.
//!
//! The verifier does the normal WebPKI validation (chain to a trusted root, name, validity)
//! and then, when the request carries certificate pins, requires that some certificate of the
//! chain the server presented has a SubjectPublicKeyInfo whose SHA-256 is one of the pins. The
//! handshake finishes before the connector returns, so a refused certificate or a pin mismatch
//! ends the connection before a byte of the HTTP request is written.
//!
//! The cryptography is *ring*'s, as rustls's own *ring* provider offers it, with two things left
//! out for size (docs/adr/0014-small-library-and-thread-local-reads.md):
//! - the ChaCha20-Poly1305 cipher suites: every TLS 1.3 server must implement AES-128-GCM
//!   (RFC 8446, §9.1), and TLS 1.2 servers are reached with the ECDHE AES-GCM suites;
//! - the loading of private keys: only a client certificate needs one, and the vault never
//!   presents one.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::ring::{cipher_suite as suite, kx_group};
use rustls::crypto::{CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::SigningKey;
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, Transport as UreqTransport, TransportAdapter,
};
use webpki::ring as alg;

use super::SpkiPin;

/// The `ureq::Error::Tls` text that marks a pin mismatch (read back by the error classifier).
pub(super) const PIN_MISMATCH: &str = "certificate pin mismatch";
/// The `ureq::Error::Tls` text of a certificate the verifier refused (untrusted chain, wrong
/// name, expired...).
pub(super) const CERTIFICATE_REFUSED: &str = "TLS certificate refused";
/// The `ureq::Error::Tls` text of any other failed handshake (no common protocol version or
/// cipher suite, a malformed message...).
pub(super) const HANDSHAKE_FAILED: &str = "TLS handshake failed";

/// The TLS cryptography of the built-in transport: *ring*'s, without ChaCha20-Poly1305 and
/// without private keys (see the module documentation).
fn provider() -> CryptoProvider {
    CryptoProvider {
        // rustls's order: the strongest first, TLS 1.3 before TLS 1.2.
        cipher_suites: vec![
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &RingRandom,
        key_provider: &NoClientKeys,
    }
}

/// The certificate and handshake signature algorithms rustls's *ring* provider verifies (the
/// same list; the provider does not export it).
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P256_SHA384,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
        alg::ED25519,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
        alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        // For TLS 1.2 the curve is not fixed by the scheme; for TLS 1.3 it is.
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[alg::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (SignatureScheme::RSA_PKCS1_SHA512, &[alg::RSA_PKCS1_2048_8192_SHA512]),
        (SignatureScheme::RSA_PKCS1_SHA384, &[alg::RSA_PKCS1_2048_8192_SHA384]),
        (SignatureScheme::RSA_PKCS1_SHA256, &[alg::RSA_PKCS1_2048_8192_SHA256]),
    ],
};

/// Random bytes for the handshake, from the operating system through *ring*.
#[derive(Debug)]
struct RingRandom;

impl SecureRandom for RingRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new().fill(buf).map_err(|_| GetRandomFailed)
    }
}

/// The key provider of a client that never presents a certificate: the configuration is
/// built `with_no_client_auth`, so rustls never asks it for a key.
#[derive(Debug)]
struct NoClientKeys;

impl KeyProvider for NoClientKeys {
    fn load_private_key(&self, _key_der: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "the vault presents no client certificate".into(),
        ))
    }
}

/// A rustls client configuration trusting the Mozilla roots plus `extra_roots`, enforcing
/// `pins` when there are any.
pub(super) fn client_config(
    extra_roots: &[CertificateDer<'static>],
    pins: &[SpkiPin],
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(provider());
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for root in extra_roots {
        roots.add(root.clone())?;
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|_| rustls::Error::General("the certificate verifier could not be built".into()))?;
    let verifier = PinningVerifier {
        inner,
        pins: pins.to_vec(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Normal WebPKI validation, then the pin check.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<SpkiPin>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        if self.pins.is_empty() || chain_matches(end_entity, intermediates, &self.pins) {
            return Ok(verified);
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// True if a certificate of the presented chain has a pinned public key.
fn chain_matches(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], pins: &[SpkiPin]) -> bool {
    std::iter::once(end_entity)
        .chain(intermediates)
        .filter_map(|cert| spki_of(cert.as_ref()))
        .any(|spki| pins.contains(&SpkiPin::of_spki(spki)))
}

/// One DER element read from the front of a byte string.
struct DerElement<'a> {
    tag: u8,
    /// The element with its tag and length.
    whole: &'a [u8],
    /// Its contents.
    contents: &'a [u8],
    /// What follows it.
    rest: &'a [u8],
}

fn der_element(input: &[u8]) -> Option<DerElement<'_>> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = input
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    Some(DerElement {
        tag,
        whole,
        contents: whole.get(header..)?,
        rest: input.get(end..)?,
    })
}

/// The DER SubjectPublicKeyInfo of an X.509 certificate (the bytes a pin hashes).
pub(super) fn spki_of(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    let certificate = der_element(cert).filter(|e| e.tag == SEQUENCE)?;
    let tbs = der_element(certificate.contents).filter(|e| e.tag == SEQUENCE)?;
    let mut rest = tbs.contents;
    // [0] EXPLICIT version, present from v2 on.
    if rest.first() == Some(&0xa0) {
        rest = der_element(rest)?.rest;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = der_element(rest)?.rest;
    }
    der_element(rest).filter(|e| e.tag == SEQUENCE).map(|e| e.whole)
}

/// The ureq connector step that wraps TCP in TLS with a configuration of [`client_config`].
/// Plain `http://` connections pass through untouched (the transport refused them earlier
/// unless allowed; a pinned request is never plain http).
pub(super) struct TlsConnector {
    pub(super) config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConnector")
    }
}

impl<In: UreqTransport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Err(ureq::Error::ConnectionFailed);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().ok_or(ureq::Error::Tls("the URL has no host"))?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let name = ServerName::try_from(host)
            .map_err(|_| ureq::Error::Tls("invalid server name"))?
            .to_owned();
        let mut conn = ClientConnection::new(self.config.clone(), name).map_err(ureq::Error::Rustls)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        // Finish the handshake (and so the pin check) before ureq writes the request.
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                let refusal = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
                let timed_out = matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock);
                use rustls::Error as R;
                // The handshake did not finish: nothing of the request was written.
                return Err(match refusal {
                    Some(R::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)) => {
                        ureq::Error::Tls(PIN_MISMATCH)
                    }
                    Some(R::InvalidCertificate(_) | R::NoCertificatesPresented | R::UnsupportedNameType) => {
                        ureq::Error::Tls(CERTIFICATE_REFUSED)
                    }
                    _ if timed_out => ureq::Error::Io(e),
                    _ => ureq::Error::Tls(HANDSHAKE_FAILED),
                });
            }
        }
        let buffers = ZeroedBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// A TLS stream established by [`TlsConnector`].
pub(super) struct TlsTransport {
    buffers: ZeroedBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl UreqTransport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        use std::io::Write as _;
        self.stream.sock.set_timeout(timeout);
        let output = self
            .buffers
            .output()
            .get(..amount)
            .ok_or(ureq::Error::Tls("output beyond the buffer"))?;
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        use std::io::Read as _;
        self.stream.sock.set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.sock.get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// The TLS layer's HTTP buffers: what ureq's `LazyBuffers` does, with buffers that come zeroed
/// from the allocator. In this size-optimised build `Vec::resize`, which `LazyBuffers` uses,
/// stores one byte per iteration: ~14 µs for the 52 KiB of a connection's buffers, against
/// ~0.3 µs for a zeroed allocation (docs/PERFORMANCE.md).
#[derive(Debug)]
pub(super) struct ZeroedBuffers {
    input: Vec<u8>,
    /// Bytes of `input` read from the connection (`..filled`), of which the first `consumed`
    /// were used.
    filled: usize,
    consumed: usize,
    output: Vec<u8>,
    /// The last `input_consume` used something (ureq's rule for `can_use_input`).
    progress: bool,
}

/// The least free input space `tmp_and_output` hands out (ureq's own minimum).
const MIN_TMP: usize = 10 * 1024;

impl ZeroedBuffers {
    pub(super) fn new(input_size: usize, output_size: usize) -> Self {
        ZeroedBuffers {
            input: vec![0; input_size.max(1)],
            filled: 0,
            consumed: 0,
            output: vec![0; output_size.max(1)],
            progress: false,
        }
    }

    /// Move the unconsumed bytes to the front when the buffer is more than half full (or
    /// start over when everything was consumed), as ureq does.
    fn shift(&mut self) {
        if self.consumed == 0 {
            return;
        }
        if self.consumed == self.filled {
            self.consumed = 0;
            self.filled = 0;
        } else if self.filled > self.input.len() / 2 {
            self.input.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
    }
}

impl Buffers for ZeroedBuffers {
    fn output(&mut self) -> &mut [u8] {
        &mut self.output
    }

    fn input(&self) -> &[u8] {
        &self.input[self.consumed..self.filled]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.shift();
        &mut self.input[self.filled..]
    }

    fn input_appended(&mut self, amount: usize) {
        self.filled = (self.filled + amount).min(self.input.len());
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.consumed = (self.consumed + amount).min(self.filled);
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.shift();
        let free = self.input.len() - self.filled;
        if free < MIN_TMP {
            let mut grown = vec![0; self.input.len() + (MIN_TMP - free)];
            grown[..self.filled].copy_from_slice(&self.input[..self.filled]);
            self.input = grown;
        }
        (&mut self.input[self.filled..], &mut self.output)
    }

    fn can_use_input(&self) -> bool {
        self.filled > self.consumed && self.progress
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Reading, consuming, the shift to the front, the temporary space and `can_use_input`,
    /// step by step.
    #[test]
    fn zeroed_buffers_keep_unconsumed_input_in_order() {
        let mut b = ZeroedBuffers::new(16, 8);
        assert_eq!(b.output().len(), 8);
        assert!(b.output().iter().all(|&x| x == 0));
        assert!(b.input().is_empty() && !b.can_use_input());

        b.input_append_buf()[..10].copy_from_slice(b"0123456789");
        b.input_appended(10);
        assert_eq!(b.input(), b"0123456789");
        assert!(!b.can_use_input(), "nothing consumed yet");
        b.input_consume(4);
        assert_eq!(b.input(), b"456789");
        assert!(b.can_use_input());
        // More than half full with a consumed prefix: the rest moves to the front.
        assert_eq!(b.input_append_buf().len(), 16 - 6);
        assert_eq!(b.input(), b"456789");
        b.input_append_buf()[..3].copy_from_slice(b"abc");
        b.input_appended(3);
        assert_eq!(b.input(), b"456789abc");
        b.input_consume(0);
        assert!(!b.can_use_input(), "the last consume used nothing");
        // Everything consumed: the next read starts at the front.
        b.input_consume(9);
        assert!(b.input().is_empty());
        assert_eq!(b.input_append_buf().len(), 16);
        // An over-long append or consume is clamped, never a panic.
        b.input_appended(100);
        assert_eq!(b.input().len(), 16);
        b.input_consume(100);
        assert!(b.input().is_empty());

        // The temporary space is at least 10 KiB, after the unconsumed input, which it keeps.
        let mut b = ZeroedBuffers::new(16, 8);
        b.input_append_buf()[..5].copy_from_slice(b"hello");
        b.input_appended(5);
        let (tmp, out) = b.tmp_and_output();
        assert!(tmp.len() >= MIN_TMP, "{}", tmp.len());
        assert_eq!(out.len(), 8);
        assert_eq!(b.input(), b"hello");
    }
}
