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

/// Why a transport could not produce a response. All of these are transient for the session.
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
    /// `request.max_response_bytes`. Must not follow redirects.
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
#[cfg(feature = "https")]
#[derive(Debug)]
pub struct HttpsTransport {
    agent: ureq::Agent,
}

#[cfg(feature = "https")]
impl HttpsTransport {
    /// A transport with its own connection pool.
    pub fn new() -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("tokenvault/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections_per_host(4)
            .build()
            .into();
        HttpsTransport { agent }
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
        E::Tls(_) => (TransportErrorKind::Connect, "TLS failure".into()),
        E::Protocol(_) => (TransportErrorKind::Io, "malformed HTTP response".into()),
        E::BadUri(_) => (TransportErrorKind::Other, "bad URI".into()),
        _ => (TransportErrorKind::Other, "HTTP client error".into()),
    };
    TransportError::new(kind, msg)
}

#[cfg(feature = "https")]
impl Transport for HttpsTransport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = ureq::http::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| TransportError::new(TransportErrorKind::Other, "invalid method"))?;
        let mut builder = ureq::http::Request::builder().method(method).uri(request.url.as_str());
        for h in &request.headers {
            builder = builder.header(h.name.as_str(), h.value.expose());
        }
        let http_req = builder
            .body(request.body.as_slice())
            .map_err(|_| TransportError::new(TransportErrorKind::Other, "invalid request line or header"))?;
        let http_req = self
            .agent
            .configure_request(http_req)
            .timeout_global(Some(request.timeout))
            .build();
        let mut resp = self.agent.run(http_req).map_err(|e| classify_ureq(&e))?;
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
        };
        let s = format!("{req:?}");
        assert!(!s.contains("sekrit"), "{s}");
        assert_eq!(req.header("authorization"), Some("Bearer sekrit"));
        let resp = HttpResponse::new(200, vec![], b"{\"access_token\":\"sekrit\"}".to_vec());
        assert!(!format!("{resp:?}").contains("sekrit"));
    }
}
