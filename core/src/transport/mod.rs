//! Moving a refresh request over the network.
//!
//! [`Transport`] is a blocking trait: a method, URL, headers and body go in; a status, headers
//! and a body come out, within the request's timeout and size cap. The vault never holds a lock
//! while a transport runs. The built-in [`HttpsTransport`] (cargo feature `https`, on by default)
//! uses `ureq` with rustls; hosts that own their networking plug in their own implementation or
//! use the two-step refresh instead.
//!
//! Redirects are never followed: a 3xx on a token endpoint is a captive portal or a
//! misconfiguration, and following it would send a refresh token to another origin.

use std::fmt;
use std::time::Duration;

use crate::secret::{wipe, SecretString};

#[cfg(feature = "https")]
mod tls;

/// An HTTP header whose value may be secret (`Authorization`).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: SecretString,
}

impl fmt::Debug for HttpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: <redacted>", self.name)
    }
}

/// A refresh request, ready to send. Its body and headers contain credentials.
#[derive(Clone)]
pub struct HttpRequest {
    /// `POST` (or `PUT`).
    pub method: String,
    /// Absolute http(s) URL.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<HttpHeader>,
    /// The body bytes (cleared on drop).
    pub body: Vec<u8>,
    /// Give up after this long.
    pub timeout: Duration,
    /// Refuse response bodies larger than this many bytes.
    pub max_response_bytes: usize,
    /// Whether this request may travel over plain `http://`. The profile sets it only for a
    /// loopback literal (`127.0.0.0/8`, `[::1]`, `localhost`) or an explicit `allow_http`; a
    /// transport must refuse an `http://` URL when it is false, before connecting.
    pub allow_plain_http: bool,
    /// Certificate pins: when not empty, the server's certificate chain must pass normal
    /// validation AND contain a certificate whose SubjectPublicKeyInfo has one of these SHA-256
    /// digests, or nothing of the request may be sent. The built-in [`HttpsTransport`]
    /// enforces them; a host transport must enforce them too (OkHttp `CertificatePinner`,
    /// a URLSession delegate, a .NET `ServerCertificateCustomValidationCallback`...).
    pub pins: Vec<SpkiPin>,
}

/// A certificate pin: the SHA-256 digest of a DER-encoded SubjectPublicKeyInfo, written
/// `sha256/<base64>` (the form OkHttp's `CertificatePinner` and HPKP use).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiPin([u8; 32]);

impl SpkiPin {
    /// A pin from its digest.
    pub fn from_sha256(digest: [u8; 32]) -> Self {
        SpkiPin(digest)
    }

    /// Parse `sha256/<standard base64 of 32 bytes>`; `None` for anything else.
    pub fn parse(text: &str) -> Option<SpkiPin> {
        use base64::Engine as _;
        let b64 = text.strip_prefix("sha256/")?;
        if b64.len() != 44 {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        Some(SpkiPin(<[u8; 32]>::try_from(bytes.as_slice()).ok()?))
    }

    /// The pin of a DER-encoded SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8]) -> SpkiPin {
        use sha2::Digest as _;
        SpkiPin(sha2::Sha256::digest(spki_der).into())
    }

    /// The SHA-256 digest.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use base64::Engine as _;
        write!(f, "sha256/{}", base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpkiPin({self})")
    }
}

/// True if `url` uses plain `http://` (any case).
fn is_plain_http(url: &str) -> bool {
    url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://"))
}

/// The checks every transport owes a request before it opens a connection: no plain http
/// unless the request allows it, and no pins over plain http.
pub fn check_request_scheme(request: &HttpRequest) -> Result<(), TransportError> {
    if is_plain_http(&request.url) && (!request.allow_plain_http || !request.pins.is_empty()) {
        return Err(TransportError::new(
            TransportErrorKind::InsecureScheme,
            "plain http refused: the profile allows it only for loopback or with allow_http",
        ));
    }
    Ok(())
}

impl HttpRequest {
    /// The value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.expose())
    }
}

impl Drop for HttpRequest {
    fn drop(&mut self) {
        wipe(&mut self.body);
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &format_args!("<redacted, {} bytes>", self.body.len()))
            .field("timeout", &self.timeout)
            .field("allow_plain_http", &self.allow_plain_http)
            .field("pins", &self.pins)
            .finish()
    }
}

/// A response as the transport received it.
#[derive(Clone, Default)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers (names in any case).
    pub headers: Vec<(String, String)>,
    /// The body bytes (cleared on drop: they contain the new tokens).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response from its parts.
    pub fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        HttpResponse { status, headers, body }
    }

    /// The value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Drop for HttpResponse {
    fn drop(&mut self) {
        wipe(&mut self.body);
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            )
            .field("body", &format_args!("<redacted, {} bytes>", self.body.len()))
            .finish()
    }
}

/// Why a transport could not produce a response. `InsecureScheme` and `CertificatePin` are
/// refusals of the configuration (the vault reports them as protocol errors); the others are
/// transient for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// No answer in time.
    Timeout,
    /// Could not connect (DNS, refused, unreachable, TLS handshake).
    Connect,
    /// The connection broke mid-exchange (the request may have reached the server).
    Io,
    /// The response was larger than the cap.
    TooLarge,
    /// Anything else.
    Other,
    /// The URL is plain `http://` and the request does not allow it. Nothing was sent.
    InsecureScheme,
    /// The server's certificate chain is valid but matches none of the request's pins.
    /// Nothing of the request was sent.
    CertificatePin,
}

/// A transport failure. The message must not contain secrets (never echo the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// What kind.
    pub kind: TransportErrorKind,
    /// A short description.
    pub message: String,
}

impl TransportError {
    /// A transport error.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }

    /// True if the request may have reached the server (its outcome is unknown).
    pub fn may_have_been_delivered(&self) -> bool {
        matches!(
            self.kind,
            TransportErrorKind::Io | TransportErrorKind::Timeout | TransportErrorKind::TooLarge
        )
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// Sends refresh requests. Implementations must be thread-safe; they are called without any
/// vault lock held, possibly from several threads at once (for different accounts).
pub trait Transport: Send + Sync + fmt::Debug {
    /// Send `request` and return the response, honouring `request.timeout` and
    /// `request.max_response_bytes`. Must not follow redirects (a 307/308 would resend the
    /// body, with the refresh credential, elsewhere): return the 3xx, which the vault treats
    /// as a transient failure and stores nothing from. Must refuse plain `http://`
    /// unless `request.allow_plain_http` (see [`check_request_scheme`]) and must enforce
    /// `request.pins` when there are any, before sending a byte of the request.
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// The transport a vault uses when the host sets none: the built-in HTTPS transport with the
/// `https` feature, nothing without it (then only the two-step refresh works).
pub(crate) fn default_transport() -> Option<std::sync::Arc<dyn Transport>> {
    #[cfg(feature = "https")]
    {
        Some(std::sync::Arc::new(HttpsTransport::new()))
    }
    #[cfg(not(feature = "https"))]
    {
        None
    }
}

/// The built-in transport: `ureq` 3 with rustls (ring) and the Mozilla root store.
///
/// A request without pins goes through one ureq agent and its connection pool. A request with
/// certificate pins goes through an agent of its own pin set, whose TLS verifier does the
/// normal validation and then the pin check during the handshake; connections verified under
/// one pin set are never reused for another.
#[cfg(feature = "https")]
pub struct HttpsTransport {
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The agent of requests without pins, built on first use (`None`: the TLS configuration
    /// could not be built).
    unpinned: std::sync::OnceLock<Option<ureq::Agent>>,
    /// Agents by (sorted) pin set, built on first use; at most [`PINNED_AGENTS`].
    pinned: parking_lot::Mutex<Vec<(Vec<SpkiPin>, ureq::Agent)>>,
}

/// How many pin sets keep a pooled agent; further sets get a one-off agent per request.
#[cfg(feature = "https")]
const PINNED_AGENTS: usize = 8;

#[cfg(feature = "https")]
impl fmt::Debug for HttpsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsTransport")
            .field("extra_roots", &self.extra_roots.len())
            .finish_non_exhaustive()
    }
}

/// Bytes of a response head (status line and headers) the built-in transport accepts; its
/// per-connection input buffer is a little larger (ureq can only tell a head over the limit
/// from a stalled one while the buffer still has room). ureq's default,
/// 128 KiB for each of the input and output buffers of every connection (TCP and TLS layers
/// alike), was zero-filled on each new connection: about a third of a local refresh's
/// on-CPU time (docs/PERFORMANCE.md). Token endpoints answer with a few hundred bytes of headers; nginx,
/// in front of most of them, refuses upstream heads over 4–8 KiB by default.
#[cfg(feature = "https")]
pub(crate) const MAX_RESPONSE_HEAD: usize = 32 * 1024;

/// Bytes of the output buffer: the longest request line or header must fit (the head is
/// written line by line, the body in pieces of this size). A longer line is refused before
/// it is sent.
#[cfg(feature = "https")]
const OUTPUT_BUFFER: usize = 16 * 1024;

#[cfg(feature = "https")]
fn agent_config() -> ureq::config::Config {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("tokenvault/", env!("CARGO_PKG_VERSION")))
        .max_idle_connections_per_host(4)
        .input_buffer_size(MAX_RESPONSE_HEAD + 4096)
        .max_response_header_size(MAX_RESPONSE_HEAD)
        .output_buffer_size(OUTPUT_BUFFER)
        .build()
}

#[cfg(feature = "https")]
impl HttpsTransport {
    /// A transport with its own connection pool.
    pub fn new() -> Self {
        HttpsTransport {
            extra_roots: Vec::new(),
            unpinned: std::sync::OnceLock::new(),
            pinned: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// A transport that also trusts the root certificates in `pem` (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks), on top of the Mozilla roots: for a private
    /// certificate authority, or a test server. Certificate validation stays on; pins, when a
    /// request carries them, are still enforced. Fails on text that holds no certificate or
    /// one rustls cannot use as a root.
    pub fn with_extra_roots(pem: &[u8]) -> Result<Self, crate::VaultError> {
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = Vec::new();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            roots.push(cert.map_err(|_| crate::VaultError::invalid("the root certificates are not valid PEM"))?);
        }
        if roots.is_empty() {
            return Err(crate::VaultError::invalid("no certificate in the PEM text"));
        }
        // Build once now so a certificate rustls refuses is reported here, not per request.
        tls::client_config(&roots, &[]).map_err(|_| crate::VaultError::invalid("a root certificate is not usable"))?;
        Ok(HttpsTransport {
            extra_roots: roots,
            ..HttpsTransport::new()
        })
    }

    /// A new agent (and connection pool) whose TLS trusts this transport's roots and enforces
    /// `pins` (sorted, without duplicates; empty: no pins).
    fn new_agent(&self, pins: &[SpkiPin]) -> Result<ureq::Agent, TransportError> {
        use ureq::unversioned::transport::Connector as _;
        let config = tls::client_config(&self.extra_roots, pins)
            .map_err(|_| TransportError::new(TransportErrorKind::Other, "TLS configuration failed"))?;
        // ureq's default connector's steps for a plain or CONNECT-proxied TCP stream, then TLS.
        let connector =
            ().chain(ureq::unversioned::transport::ConnectProxyConnector::default())
                .chain(ureq::unversioned::transport::TcpConnector::default())
                .chain(tls::TlsConnector { config });
        Ok(ureq::Agent::with_parts(
            agent_config(),
            connector,
            ureq::unversioned::resolver::DefaultResolver::default(),
        ))
    }

    /// The agent for a request's pin set.
    fn agent_for(&self, pins: &[SpkiPin]) -> Result<ureq::Agent, TransportError> {
        if pins.is_empty() {
            return self
                .unpinned
                .get_or_init(|| self.new_agent(&[]).ok())
                .clone()
                .ok_or_else(|| TransportError::new(TransportErrorKind::Other, "TLS configuration failed"));
        }
        let mut key = pins.to_vec();
        key.sort_by_key(|p| p.0);
        key.dedup();
        let mut cache = self.pinned.lock();
        if let Some((_, agent)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(agent.clone());
        }
        let agent = self.new_agent(&key)?;
        if cache.len() < PINNED_AGENTS {
            cache.push((key, agent.clone()));
        }
        Ok(agent)
    }
}

#[cfg(feature = "https")]
impl Default for HttpsTransport {
    fn default() -> Self {
        HttpsTransport::new()
    }
}

#[cfg(feature = "https")]
fn classify_ureq(err: &ureq::Error) -> TransportError {
    use ureq::Error as E;
    let (kind, msg): (TransportErrorKind, String) = match err {
        E::Timeout(t) => (TransportErrorKind::Timeout, format!("timed out ({t:?})")),
        E::HostNotFound => (TransportErrorKind::Connect, "host not found".into()),
        E::ConnectionFailed => (TransportErrorKind::Connect, "connection failed".into()),
        E::Io(e) => (
            match e.kind() {
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable => {
                    TransportErrorKind::Connect
                }
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => TransportErrorKind::Timeout,
                _ => TransportErrorKind::Io,
            },
            format!("i/o error ({:?})", e.kind()),
        ),
        E::BodyExceedsLimit(n) => (TransportErrorKind::TooLarge, format!("response body over {n} bytes")),
        // The server answered (the request was processed): like a body over the cap.
        E::LargeResponseHeader(_, n) => (TransportErrorKind::TooLarge, format!("response head over {n} bytes")),
        // A request line or header longer than the output buffer: refused before it was sent.
        E::Protocol(ureq_proto::Error::OutputOverflow) => (
            TransportErrorKind::Other,
            format!("a request header is over {OUTPUT_BUFFER} bytes"),
        ),
        E::Tls(m) if *m == tls::PIN_MISMATCH => (TransportErrorKind::CertificatePin, (*m).into()),
        E::Tls(m) if *m == tls::CERTIFICATE_REFUSED => (TransportErrorKind::Connect, (*m).into()),
        E::Tls(_) | E::Rustls(_) => (TransportErrorKind::Connect, "TLS failure".into()),
        E::Protocol(_) => (TransportErrorKind::Io, "malformed HTTP response".into()),
        E::BadUri(_) => (TransportErrorKind::Other, "bad URI".into()),
        _ => (TransportErrorKind::Other, "HTTP client error".into()),
    };
    TransportError::new(kind, msg)
}

#[cfg(feature = "https")]
impl Transport for HttpsTransport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        check_request_scheme(request)?;
        let method = ureq::http::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| TransportError::new(TransportErrorKind::Other, "invalid method"))?;
        let mut builder = ureq::http::Request::builder().method(method).uri(request.url.as_str());
        for h in &request.headers {
            builder = builder.header(h.name.as_str(), h.value.expose());
        }
        let http_req = builder
            .body(request.body.as_slice())
            .map_err(|_| TransportError::new(TransportErrorKind::Other, "invalid request line or header"))?;
        let agent = self.agent_for(&request.pins)?;
        let http_req = agent
            .configure_request(http_req)
            .timeout_global(Some(request.timeout))
            .build();
        let mut resp = agent.run(http_req).map_err(|e| classify_ureq(&e))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_owned(), v.to_owned())))
            .collect();
        let limit = u64::try_from(request.max_response_bytes).unwrap_or(u64::MAX);
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| classify_ureq(&e))?;
        Ok(HttpResponse { status, headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A plain-TCP server on 127.0.0.1 that counts the connections and bytes it receives, keeps
    /// what it received, and answers each connection with a fixed response (by default a small
    /// HTTP 200). Stopped (and joined) on drop.
    pub(super) struct CountingServer {
        pub(super) port: u16,
        pub(super) connections: Arc<AtomicUsize>,
        pub(super) bytes: Arc<AtomicUsize>,
        pub(super) received: Arc<parking_lot::Mutex<Vec<u8>>>,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl CountingServer {
        pub(super) fn start() -> CountingServer {
            Self::answering(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                    .to_vec(),
            )
        }

        pub(super) fn answering(response: Vec<u8>) -> CountingServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let port = listener.local_addr().unwrap().port();
            let (connections, bytes, received, stop) = (
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicUsize::new(0)),
                Arc::new(parking_lot::Mutex::new(Vec::new())),
                Arc::new(AtomicBool::new(false)),
            );
            let (c, b, r, st) = (connections.clone(), bytes.clone(), received.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                while !st.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            c.fetch_add(1, Ordering::SeqCst);
                            sock.set_nonblocking(false).unwrap();
                            sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
                            let mut buf = [0u8; 4096];
                            while let Ok(n) = sock.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                b.fetch_add(n, Ordering::SeqCst);
                                let mut all = r.lock();
                                all.extend_from_slice(&buf[..n]);
                                // The whole request of `request_to` arrived: its head, then its
                                // body, which ends with "refresh" (otherwise the read times out).
                                if all.windows(4).any(|w| w == b"\r\n\r\n") && all.ends_with(b"refresh") {
                                    break;
                                }
                            }
                            let _ = sock.write_all(&response);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
            CountingServer {
                port,
                connections,
                bytes,
                received,
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for CountingServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    pub(super) fn request_to(url: String, allow_plain_http: bool, pins: Vec<SpkiPin>) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            url,
            headers: vec![HttpHeader {
                name: "Content-Type".into(),
                value: SecretString::new("application/x-www-form-urlencoded"),
            }],
            body: b"refresh_token=sekrit-refresh".to_vec(),
            timeout: Duration::from_secs(5),
            max_response_bytes: 4096,
            allow_plain_http,
            pins,
        }
    }

    /// The built-in transport refuses plain http on its own when the request does not allow
    /// it: a typed error, and the loopback server sees no connection and no byte.
    #[cfg(feature = "https")]
    #[test]
    fn https_transport_refuses_plain_http_unless_the_request_allows_it() {
        let server = CountingServer::start();
        let t = HttpsTransport::new();
        let url = format!("http://127.0.0.1:{}/token", server.port);
        let err = t.send(&request_to(url.clone(), false, vec![])).unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::InsecureScheme, "{err}");
        assert!(!err.may_have_been_delivered());
        let upper = format!("HTTP://127.0.0.1:{}/token", server.port);
        assert_eq!(
            t.send(&request_to(upper, false, vec![])).unwrap_err().kind,
            TransportErrorKind::InsecureScheme
        );
        // Pins over plain http are refused too: a pin cannot be checked without TLS.
        let pin = SpkiPin::from_sha256([7; 32]);
        assert_eq!(
            t.send(&request_to(url.clone(), true, vec![pin])).unwrap_err().kind,
            TransportErrorKind::InsecureScheme
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(server.connections.load(Ordering::SeqCst), 0);
        assert_eq!(server.bytes.load(Ordering::SeqCst), 0);
        // The same server, allowed: the request arrives (the server above was really listening).
        let resp = t.send(&request_to(url, true, vec![])).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
        assert!(server.bytes.load(Ordering::SeqCst) > 0);
    }

    /// The built-in transport's buffers are small (`MAX_RESPONSE_HEAD`, `OUTPUT_BUFFER`), not
    /// its limits on bodies: a large body streams through, a large head within the limit
    /// passes; a head over it is `TooLarge` (the server answered: the request may have been
    /// processed), a request header longer than the output buffer is refused before the body
    /// (the credential) leaves.
    #[cfg(feature = "https")]
    #[test]
    fn buffers_bound_heads_not_bodies() {
        let t = HttpsTransport::new();
        let answer = |pad: usize, body: usize| {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nX-Pad: {}\r\nContent-Length: {body}\r\nConnection: close\r\n\r\n",
                "p".repeat(pad)
            )
            .into_bytes();
            r.extend(std::iter::repeat_n(b'b', body));
            r
        };
        let big_request = |port: u16| {
            let mut r = request_to(format!("http://127.0.0.1:{port}/token"), true, vec![]);
            r.max_response_bytes = 1 << 20;
            r
        };
        // A 20 KiB header and a 300 KiB body (ten times the input buffer): intact.
        let server = CountingServer::answering(answer(20 * 1024, 300 * 1024));
        let resp = t.send(&big_request(server.port)).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body.len(), 300 * 1024);
        assert!(resp.body.iter().all(|&b| b == b'b'));
        assert_eq!(resp.header("x-pad").map(str::len), Some(20 * 1024));
        // A head over the limit: typed, and counted as possibly delivered.
        let server = CountingServer::answering(answer(MAX_RESPONSE_HEAD + 1024, 2));
        let err = t.send(&big_request(server.port)).unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::TooLarge, "{err}");
        assert!(err.may_have_been_delivered());
        assert!(String::from_utf8_lossy(&server.received.lock()).ends_with("sekrit-refresh"));
        // A request header longer than the output buffer: typed, not delivered, and the body
        // never left.
        let server = CountingServer::start();
        let mut req = big_request(server.port);
        req.headers.push(HttpHeader {
            name: "X-Long".into(),
            value: SecretString::new("v".repeat(OUTPUT_BUFFER + 1)),
        });
        let err = t.send(&req).unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::Other, "{err}");
        assert!(!err.may_have_been_delivered());
        std::thread::sleep(Duration::from_millis(400));
        assert!(!String::from_utf8_lossy(&server.received.lock()).contains("sekrit"));
    }

    #[test]
    fn debug_redacts_credentials() {
        let req = HttpRequest {
            method: "POST".into(),
            url: "https://example.invalid/token".into(),
            headers: vec![HttpHeader {
                name: "Authorization".into(),
                value: SecretString::new("Bearer sekrit"),
            }],
            body: b"refresh_token=sekrit".to_vec(),
            timeout: Duration::from_secs(1),
            max_response_bytes: 10,
            allow_plain_http: false,
            pins: vec![],
        };
        let s = format!("{req:?}");
        assert!(!s.contains("sekrit"), "{s}");
        assert_eq!(req.header("authorization"), Some("Bearer sekrit"));
        let resp = HttpResponse::new(200, vec![], b"{\"access_token\":\"sekrit\"}".to_vec());
        assert!(!format!("{resp:?}").contains("sekrit"));
    }
}

#[cfg(all(test, feature = "https"))]
mod pinning_tests {
    //! Certificate pinning against real rustls servers on 127.0.0.1, with certificates from a
    //! test certificate authority made by rcgen.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::tests::request_to;
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData as _};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Leaf {
        cert: CertificateDer<'static>,
        key: Vec<u8>,
        /// The pin computed by rcgen from the key (not by the code under test).
        pin: SpkiPin,
    }

    struct Pki {
        ca_pem: String,
        ca_cert: CertificateDer<'static>,
        ca_pin: SpkiPin,
        a: Leaf,
        b: Leaf,
    }

    fn pki() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tokenvault test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let ca_pin = SpkiPin::of_spki(&ca_key.subject_public_key_info());
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            let cert = params.signed_by(&key, &issuer).unwrap();
            Leaf {
                cert: cert.der().clone(),
                key: key.serialize_der(),
                pin: SpkiPin::of_spki(&key.subject_public_key_info()),
            }
        };
        Pki {
            ca_pem: ca.pem(),
            ca_cert: ca.der().clone(),
            ca_pin,
            a: leaf("server A"),
            b: leaf("server B"),
        }
    }

    /// A rustls HTTPS server on 127.0.0.1 presenting `chain`; counts TLS connections attempted
    /// and the plaintext (HTTP) bytes it received. Stopped and joined on drop.
    struct TlsServer {
        port: u16,
        connections: Arc<AtomicUsize>,
        http_bytes: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl TlsServer {
        fn start(chain: Vec<CertificateDer<'static>>, key: &[u8]) -> TlsServer {
            TlsServer::start_with(
                chain,
                key,
                rustls::crypto::ring::default_provider(),
                rustls::DEFAULT_VERSIONS,
            )
        }

        /// A server of only these cipher suites (in `provider`) and protocol versions.
        fn start_with(
            chain: Vec<CertificateDer<'static>>,
            key: &[u8],
            provider: rustls::crypto::CryptoProvider,
            versions: &[&'static rustls::SupportedProtocolVersion],
        ) -> TlsServer {
            let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
            TlsServer::start_answering(chain, key, provider, versions, ok.to_vec())
        }

        /// A server that answers every request with `response` (a whole HTTP response).
        fn start_answering(
            chain: Vec<CertificateDer<'static>>,
            key: &[u8],
            provider: rustls::crypto::CryptoProvider,
            versions: &[&'static rustls::SupportedProtocolVersion],
            response: Vec<u8>,
        ) -> TlsServer {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec()));
            let config = Arc::new(
                rustls::ServerConfig::builder_with_provider(Arc::new(provider))
                    .with_protocol_versions(versions)
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(chain, key)
                    .unwrap(),
            );
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let port = listener.local_addr().unwrap().port();
            let connections = Arc::new(AtomicUsize::new(0));
            let http_bytes = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (c, b, st) = (connections.clone(), http_bytes.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                while !st.load(Ordering::SeqCst) {
                    let Ok((sock, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    c.fetch_add(1, Ordering::SeqCst);
                    sock.set_nonblocking(false).unwrap();
                    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, sock);
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    // A failed handshake (the client refused our certificate) ends in an error here.
                    while let Ok(n) = tls.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        b.fetch_add(n, Ordering::SeqCst);
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            let _ = tls.write_all(&response);
                            let _ = tls.flush();
                            tls.conn.send_close_notify();
                            let _ = tls.flush();
                            // Close only after the client did: closing with the request's
                            // unread body in the socket would reset the connection, and the
                            // client could lose the end of a long answer.
                            let _ = tls.sock.shutdown(std::net::Shutdown::Write);
                            while matches!(tls.sock.read(&mut buf), Ok(n) if n > 0) {}
                            break;
                        }
                    }
                }
            });
            TlsServer {
                port,
                connections,
                http_bytes,
                stop,
                thread: Some(thread),
            }
        }

        fn url(&self) -> String {
            format!("https://127.0.0.1:{}/token", self.port)
        }
    }

    impl Drop for TlsServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    #[test]
    fn spki_is_found_in_real_certificates() {
        let pki = pki();
        assert_eq!(tls::spki_of(pki.a.cert.as_ref()).map(SpkiPin::of_spki), Some(pki.a.pin));
        assert_eq!(
            tls::spki_of(pki.ca_cert.as_ref()).map(SpkiPin::of_spki),
            Some(pki.ca_pin)
        );
        assert_eq!(tls::spki_of(b"\x30\x03\x30\x01"), None);
        assert_eq!(tls::spki_of(b""), None);
        let text = pki.a.pin.to_string();
        assert!(text.starts_with("sha256/") && text.len() == 51, "{text}");
        assert_eq!(SpkiPin::parse(&text), Some(pki.a.pin));
        for bad in [
            "",
            "sha256/",
            "sha1/AAAA",
            "sha256/not base64!",
            &text[..50],
            &format!("{text}="),
        ] {
            assert_eq!(SpkiPin::parse(bad), None, "{bad}");
        }
    }

    /// Pins for A: the server presenting A answers; the server presenting B (a valid
    /// certificate from the same trusted CA) is refused with the typed error before its HTTP
    /// layer receives a byte; a backup pin for B lets B through; a pin on the CA key matches
    /// when the server sends the CA in its chain.
    #[test]
    fn pinned_requests_reach_only_servers_with_a_pinned_key() {
        let pki = pki();
        let server_a = TlsServer::start(vec![pki.a.cert.clone()], &pki.a.key);
        let server_b = TlsServer::start(vec![pki.b.cert.clone()], &pki.b.key);
        let t = HttpsTransport::with_extra_roots(pki.ca_pem.as_bytes()).unwrap();

        let ok = t.send(&request_to(server_a.url(), false, vec![pki.a.pin])).unwrap();
        assert_eq!(ok.status, 200);
        assert!(server_a.http_bytes.load(Ordering::SeqCst) > 0);

        let err = t.send(&request_to(server_b.url(), false, vec![pki.a.pin])).unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::CertificatePin, "{err}");
        assert!(!err.may_have_been_delivered());
        assert!(!format!("{err} {err:?}").contains("sekrit"));
        assert_eq!(
            server_b.connections.load(Ordering::SeqCst),
            1,
            "the handshake was attempted"
        );
        assert_eq!(
            server_b.http_bytes.load(Ordering::SeqCst),
            0,
            "no request byte reached B"
        );

        // Unpinned, B is a valid server of a trusted CA.
        assert_eq!(t.send(&request_to(server_b.url(), false, vec![])).unwrap().status, 200);
        // A backup pin: the first pin matches nothing, the second is B's.
        let other = SpkiPin::from_sha256([9; 32]);
        let backup = t
            .send(&request_to(server_b.url(), false, vec![other, pki.b.pin]))
            .unwrap();
        assert_eq!(backup.status, 200);

        // A pin on the CA's key matches when the chain the server presents includes the CA.
        let server_chain = TlsServer::start(vec![pki.a.cert.clone(), pki.ca_cert.clone()], &pki.a.key);
        let via_ca = t
            .send(&request_to(server_chain.url(), false, vec![pki.ca_pin]))
            .unwrap();
        assert_eq!(via_ca.status, 200);
    }

    /// Through the vault: a pin mismatch is a protocol error ("certificate pin mismatch"), the
    /// server's HTTP layer gets nothing, and the attempt counts as not delivered, so a later
    /// refusal by the server is a plain verdict (code 1), not a lost answer (code 12).
    #[test]
    fn the_vault_reports_a_pin_mismatch_as_not_delivered() {
        use crate::{ErrorCode, KeySource, NewSession, Preset, Profile, RefreshStep, Vault, VaultOptions};
        let pki = pki();
        let server_b = TlsServer::start(vec![pki.b.cert.clone()], &pki.b.key);
        let dir = tempfile::tempdir().unwrap();
        let transport = Arc::new(HttpsTransport::with_extra_roots(pki.ca_pem.as_bytes()).unwrap());
        let vault = Vault::open(
            dir.path().join("vault.db"),
            KeySource::raw(&[5; 32]).unwrap(),
            VaultOptions {
                transport: Some(transport),
                ..VaultOptions::default()
            },
        )
        .unwrap();
        let pins = [pki.a.pin.to_string(), SpkiPin::from_sha256([9; 32]).to_string()];
        let profile = Profile::preset(
            Preset::OAuth2,
            "backend",
            &server_b.url(),
            serde_json::json!({"client_id": "game", "pins": pins}),
        )
        .unwrap();
        assert_eq!(profile.pins().len(), 2);
        vault.register_profile(profile).unwrap();
        vault
            .store(
                NewSession::new("p", "backend", "access-0")
                    .refresh_credential("refresh-sekrit")
                    .expires_in(Duration::from_secs(300)),
            )
            .unwrap();
        let err = vault.force_refresh("p").unwrap_err();
        assert_eq!(err.code(), ErrorCode::Protocol, "{err}");
        assert!(err.to_string().contains("certificate pin mismatch"), "{err}");
        assert!(!format!("{err} {err:?}").contains("sekrit"));
        assert_eq!(server_b.http_bytes.load(Ordering::SeqCst), 0);
        // The session lives on and the pins travel on the two-step request for host transports.
        let RefreshStep::Send(pending) = vault.begin_refresh("p", true).unwrap() else {
            panic!("expected a request to send");
        };
        assert_eq!(pending.request.pins.len(), 2);
        assert!(pending.request.pins.contains(&pki.a.pin));
        let refused = vault
            .finish_refresh(
                pending.attempt,
                HttpResponse::new(
                    400,
                    vec![("Content-Type".into(), "application/json".into())],
                    br#"{"error":"invalid_grant"}"#.to_vec(),
                ),
            )
            .unwrap_err();
        assert_eq!(refused.code(), ErrorCode::ReauthenticationRequired, "{refused}");
    }

    /// A pin never replaces validation: a matching pin on a server whose CA is not trusted is
    /// still refused (as a TLS failure), and nothing reaches the server's HTTP layer.
    #[test]
    fn a_matching_pin_does_not_bypass_certificate_validation() {
        let pki = pki();
        let server_a = TlsServer::start(vec![pki.a.cert.clone()], &pki.a.key);
        let t = HttpsTransport::new();
        let err = t.send(&request_to(server_a.url(), false, vec![pki.a.pin])).unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::Connect, "{err}");
        // Unpinned, on the default agent: the untrusted chain is a connect failure too (the
        // request never left), not an I/O error that might have delivered it.
        let err = t.send(&request_to(server_a.url(), false, vec![])).unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::Connect, "{err}");
        assert!(err.to_string().contains("TLS certificate refused"), "{err}");
        assert!(!err.may_have_been_delivered());
        assert_eq!(server_a.http_bytes.load(Ordering::SeqCst), 0);
        assert!(HttpsTransport::with_extra_roots(b"not pem").is_err());
    }

    /// The transport's TLS: servers of TLS 1.2 only and of TLS 1.3 only are reached (AES-GCM),
    /// and a server that offers only ChaCha20-Poly1305 suites, which the transport leaves out,
    /// is a connect failure before any HTTP byte is sent.
    #[test]
    fn tls_1_2_and_1_3_servers_are_reached_with_aes_gcm() {
        use rustls::crypto::ring::{cipher_suite as suite, default_provider};
        let pki = pki();
        let t = HttpsTransport::with_extra_roots(pki.ca_pem.as_bytes()).unwrap();
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let server = TlsServer::start_with(vec![pki.a.cert.clone()], &pki.a.key, default_provider(), &[version]);
            let ok = t.send(&request_to(server.url(), false, vec![])).unwrap();
            assert_eq!(ok.status, 200, "{version:?}");
        }
        let chacha_only = rustls::crypto::CryptoProvider {
            cipher_suites: vec![
                suite::TLS13_CHACHA20_POLY1305_SHA256,
                suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ],
            ..default_provider()
        };
        let server = TlsServer::start_with(
            vec![pki.a.cert.clone()],
            &pki.a.key,
            chacha_only,
            rustls::DEFAULT_VERSIONS,
        );
        let err = t.send(&request_to(server.url(), false, vec![])).unwrap_err();
        assert_eq!(err.kind, TransportErrorKind::Connect, "{err}");
        assert!(err.to_string().contains("TLS failure"), "{err}");
        assert!(!err.may_have_been_delivered());
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
        assert_eq!(server.http_bytes.load(Ordering::SeqCst), 0);
    }

    /// Over TLS, a response larger than the connection's input buffer, in chunks of many sizes
    /// (the transport's buffers shift and refill many times), arrives whole and in order.
    #[test]
    fn a_large_chunked_body_arrives_whole_over_tls() {
        let pki = pki();
        let body: Vec<u8> = (0..200_000u32)
            .map(|i| b"0123456789abcdef"[(i * 7 % 16) as usize])
            .collect();
        let mut response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        let mut rest = &body[..];
        let mut size = 1;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            response.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            response.extend_from_slice(chunk);
            response.extend_from_slice(b"\r\n");
            rest = tail;
            size = size * 3 + 1;
        }
        response.extend_from_slice(b"0\r\n\r\n");
        let server = TlsServer::start_answering(
            vec![pki.a.cert.clone()],
            &pki.a.key,
            rustls::crypto::ring::default_provider(),
            rustls::DEFAULT_VERSIONS,
            response,
        );
        let t = HttpsTransport::with_extra_roots(pki.ca_pem.as_bytes()).unwrap();
        let mut request = request_to(server.url(), false, vec![]);
        request.max_response_bytes = 1 << 20;
        let got = t.send(&request).unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.body.len(), body.len());
        assert!(got.body == body, "the body arrived out of order");
    }
}
