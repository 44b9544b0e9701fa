//! The server side of HTTP/1.1, just big enough for the reference servers.
//!
//! One request per connection: [`read_request`] parses the request line, the headers (names are
//! matched case-insensitively) and a body framed by `Content-Length` or `Transfer-Encoding: chunked`,
//! capped at [`MAX_BODY`] bytes. [`Response::write_to`] always sends `Date`, `Connection: close` and
//! `Content-Length`. Garbage input yields a [`ReadError`] that maps to a 4xx answer, never a panic.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// Largest request body accepted; a longer one is answered with 413.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Largest request line plus headers accepted; more is answered with 431.
const MAX_HEAD: usize = 16 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 100;
/// How long a lingering close waits for the client to hang up after the response.
const LINGER: Duration = Duration::from_millis(200);
/// How much a lingering close reads and discards at most.
const LINGER_BYTES: usize = 1024 * 1024;

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// The method exactly as sent (`POST`).
    pub method: String,
    /// The path without query string (`/v2/Auth/RefreshToken`).
    pub path: String,
    /// Header names lowercased, values trimmed, in the order received.
    pub headers: Vec<(String, String)>,
    /// The decoded body (empty when none was sent).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: Bearer <token>` header (scheme matched case-insensitively).
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }

    /// Whether `Content-Type` is `application/json` (parameters such as `charset` allowed).
    pub fn has_json_content_type(&self) -> bool {
        self.header("content-type").is_some_and(|value| {
            value
                .split(';')
                .next()
                .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
        })
    }

    /// The body parsed as a JSON object, if it is one.
    pub fn json_object(&self) -> Option<serde_json::Map<String, Value>> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        }
    }
}

/// Why no request could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The connection closed, timed out or failed: nobody to answer.
    Closed,
    /// Not HTTP/1.x as we know it: answer 400.
    Malformed,
    /// Request line and headers longer than the cap: answer 431.
    HeadTooLarge,
    /// Body longer than [`MAX_BODY`]: answer 413.
    BodyTooLarge,
    /// A transfer coding other than `chunked`: answer 501.
    UnsupportedTransferEncoding,
}

impl ReadError {
    /// The answer to send, if anyone is listening.
    pub fn response(self) -> Option<Response> {
        let (status, message) = match self {
            ReadError::Closed => return None,
            ReadError::Malformed => (400, "malformed HTTP request"),
            ReadError::HeadTooLarge => (431, "request head too large"),
            ReadError::BodyTooLarge => (413, "request body larger than 64 KiB"),
            ReadError::UnsupportedTransferEncoding => (501, "unsupported transfer encoding"),
        };
        Some(Response::json(status, &serde_json::json!({ "error": message })))
    }
}

/// Reads one request from `stream`. The caller sets the socket timeouts.
pub(crate) fn read_request(stream: &TcpStream) -> Result<Request, ReadError> {
    let mut reader = BufReader::new(stream);
    let mut head_budget = MAX_HEAD;

    let request_line = read_line(&mut reader, &mut head_budget)?;
    let mut parts = request_line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed);
    };
    if !version.starts_with("HTTP/1.") || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ReadError::Malformed);
    }
    let path = request_path(target).ok_or(ReadError::Malformed)?;

    let mut headers = Vec::new();
    loop {
        let line = read_line(&mut reader, &mut head_budget)?;
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(ReadError::HeadTooLarge);
        }
        let (name, value) = line.split_once(':').ok_or(ReadError::Malformed)?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ReadError::Malformed);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }

    let mut request = Request {
        method: method.to_owned(),
        path,
        headers,
        body: Vec::new(),
    };

    let expects_continue = request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if let Some(coding) = request.header("transfer-encoding") {
        if !coding.eq_ignore_ascii_case("chunked") {
            return Err(ReadError::UnsupportedTransferEncoding);
        }
        if expects_continue {
            send_continue(stream)?;
        }
        request.body = read_chunked(&mut reader)?;
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length.parse().map_err(|_| ReadError::Malformed)?;
        if length > MAX_BODY {
            return Err(ReadError::BodyTooLarge);
        }
        if expects_continue && length > 0 {
            send_continue(stream)?;
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).map_err(|_| ReadError::Closed)?;
        request.body = body;
    }
    Ok(request)
}

/// The path of a request target in origin form (`/a?b`) or absolute form (`http://h/a?b`).
fn request_path(target: &str) -> Option<String> {
    let origin_form = match target.find("://") {
        Some(scheme_end) => {
            let after_scheme = target.get(scheme_end + 3..)?;
            after_scheme.find('/').and_then(|i| after_scheme.get(i..))?
        }
        None => target,
    };
    if !origin_form.starts_with('/') {
        return None;
    }
    let path = origin_form.split(['?', '#']).next().unwrap_or(origin_form);
    Some(path.to_owned())
}

fn send_continue(stream: &TcpStream) -> Result<(), ReadError> {
    let mut writer = stream;
    writer
        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        .map_err(|_| ReadError::Closed)
}

/// One line without its `\r\n` (or bare `\n`), charged against `budget`.
fn read_line<R: BufRead>(reader: &mut R, budget: &mut usize) -> Result<String, ReadError> {
    if *budget == 0 {
        return Err(ReadError::HeadTooLarge);
    }
    let mut line = Vec::new();
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX);
    let read = reader
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(|_| ReadError::Closed)?;
    if read == 0 {
        return Err(ReadError::Closed);
    }
    if line.last() != Some(&b'\n') {
        // Either the budget ran out or the peer closed mid-line.
        return Err(if read >= *budget {
            ReadError::HeadTooLarge
        } else {
            ReadError::Closed
        });
    }
    *budget -= read;
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| ReadError::Malformed)
}

/// A `Transfer-Encoding: chunked` body, capped at [`MAX_BODY`].
fn read_chunked<R: BufRead>(reader: &mut R) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    // Chunk-size lines and trailers share one budget, like the head.
    let mut budget = MAX_HEAD;
    loop {
        let line = read_line(reader, &mut budget)?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ReadError::Malformed)?;
        if size == 0 {
            // Trailer fields until the empty line; ignored.
            while !read_line(reader, &mut budget)?.is_empty() {}
            return Ok(body);
        }
        if size > MAX_BODY - body.len() {
            return Err(ReadError::BodyTooLarge);
        }
        let start = body.len();
        body.resize(start + size, 0);
        let chunk = body.get_mut(start..).ok_or(ReadError::Malformed)?;
        reader.read_exact(chunk).map_err(|_| ReadError::Closed)?;
        if !read_line(reader, &mut budget)?.is_empty() {
            return Err(ReadError::Malformed);
        }
    }
}

/// What a response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// Exactly these bytes.
    Bytes(Vec<u8>),
    /// A JSON document of exactly this many bytes, produced while writing (see
    /// [`Response::oversized_json`]).
    JsonPadding(usize),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Bytes(bytes) => bytes.len(),
            Body::JsonPadding(len) => *len,
        }
    }
}

/// One response; written with [`Response::write_to`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &Value) -> Self {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        Self::raw(status, Some("application/json"), bytes)
    }

    /// An HTML response.
    pub fn html(status: u16, page: &str) -> Self {
        Self::raw(status, Some("text/html; charset=utf-8"), page.as_bytes().to_vec())
    }

    /// Any bytes under any content type.
    pub fn raw(status: u16, content_type: Option<&'static str>, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body: Body::Bytes(body),
        }
    }

    /// A 200 JSON response of exactly `len` bytes: `{"padding":"xxx…"}` when `len` ≥ 14, else `{}`
    /// padded with spaces (and, below 2 bytes, only spaces).
    pub fn oversized_json(len: usize) -> Self {
        Self {
            status: 200,
            content_type: Some("application/json"),
            headers: Vec::new(),
            body: Body::JsonPadding(len),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Writes the status line, headers and body. `date` is the IMF-fixdate for the `Date` header.
    pub fn write_to(&self, stream: &TcpStream, date: &str) -> io::Result<()> {
        let status = if (100..=999).contains(&self.status) {
            self.status
        } else {
            500
        };
        // 1xx, 204 and 304 never carry a body.
        let bodiless = status < 200 || status == 204 || status == 304;
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nDate: {date}\r\nConnection: close\r\n",
            reason_phrase(status)
        );
        if !bodiless {
            if let Some(content_type) = self.content_type {
                head.push_str(&format!("Content-Type: {content_type}\r\n"));
            }
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        for (name, value) in &self.headers {
            // Never let a header value split the head.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");

        let mut writer = io::BufWriter::with_capacity(16 * 1024, stream);
        writer.write_all(head.as_bytes())?;
        if !bodiless {
            match &self.body {
                Body::Bytes(bytes) => writer.write_all(bytes)?,
                Body::JsonPadding(len) => write_json_padding(&mut writer, *len)?,
            }
        }
        writer.flush()
    }
}

fn write_json_padding<W: Write>(writer: &mut W, len: usize) -> io::Result<()> {
    const OPEN: &[u8] = br#"{"padding":""#;
    const CLOSE: &[u8] = br#""}"#;
    let (open, fill, close): (&[u8], u8, &[u8]) = if len >= OPEN.len() + CLOSE.len() {
        (OPEN, b'x', CLOSE)
    } else if len >= 2 {
        (b"{}", b' ', b"")
    } else {
        (b"", b' ', b"")
    };
    writer.write_all(open)?;
    let chunk = [fill; 8192];
    let mut remaining = len - open.len() - close.len();
    while remaining > 0 {
        let n = remaining.min(chunk.len());
        writer.write_all(chunk.get(..n).unwrap_or_default())?;
        remaining -= n;
    }
    writer.write_all(close)
}

/// Ends a connection after the response: half-close, then read and discard what the client still
/// sends for a moment, so unread request bytes do not turn the close into a reset that could destroy
/// the response before the client reads it.
pub(crate) fn close_gracefully(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(LINGER));
    let mut sink = [0u8; 4096];
    let mut reader = stream;
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match reader.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// The reason phrase for a status code (`"Unknown"` for codes without one).
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Feeds `raw` to `read_request` through a real socket pair.
    fn parse(raw: &[u8]) -> Result<Request, ReadError> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.write_all(raw).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        read_request(&server)
    }

    #[test]
    fn parses_request_line_headers_and_body() {
        let request = parse(
            b"POST /v2/Auth/RefreshToken?x=1 HTTP/1.1\r\nHost: a\r\nCONTENT-TYPE: application/json; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v2/Auth/RefreshToken");
        assert_eq!(
            request.header("content-type").unwrap(),
            "application/json; charset=utf-8"
        );
        assert!(request.has_json_content_type());
        assert_eq!(request.body, b"{}");
    }

    #[test]
    fn parses_chunked_bodies_and_absolute_targets() {
        let request = parse(
            b"POST http://127.0.0.1:1/a/b HTTP/1.1\nTransfer-Encoding: chunked\n\n3;ext=1\r\n{\"a\r\n4\r\n\":1}\r\n0\r\nX-Trailer: y\r\n\r\n",
        )
        .unwrap();
        assert_eq!(request.path, "/a/b");
        assert_eq!(request.body, br#"{"a":1}"#);
    }

    #[test]
    fn bearer_is_case_insensitive_and_trimmed() {
        let request = parse(b"GET / HTTP/1.1\r\nauthorization: bearer  abc \r\n\r\n").unwrap();
        assert_eq!(request.bearer(), Some("abc"));
        let basic = parse(b"GET / HTTP/1.1\r\nAuthorization: Basic abc\r\n\r\n").unwrap();
        assert_eq!(basic.bearer(), None);
    }

    #[test]
    fn rejects_garbage_and_oversized_input() {
        assert_eq!(parse(b"\x00\xff\xfe garbage\r\n\r\n"), Err(ReadError::Malformed));
        assert_eq!(parse(b"GET / HTTP/1.1 extra\r\n\r\n"), Err(ReadError::Malformed));
        assert_eq!(parse(b"GET nopath HTTP/1.1\r\n\r\n"), Err(ReadError::Malformed));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), Err(ReadError::Malformed));
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(ReadError::Malformed)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n"),
            Err(ReadError::BodyTooLarge)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffff\r\n"),
            Err(ReadError::BodyTooLarge)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err(ReadError::UnsupportedTransferEncoding)
        );
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        huge.extend(b"\r\n\r\n");
        assert_eq!(parse(&huge), Err(ReadError::HeadTooLarge));
        assert_eq!(parse(b""), Err(ReadError::Closed));
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort"),
            Err(ReadError::Closed)
        );
    }

    #[test]
    fn json_padding_has_the_exact_length_and_parses() {
        for len in [0, 1, 2, 5, 13, 14, 15, 100, 20_000] {
            let mut out = Vec::new();
            write_json_padding(&mut out, len).unwrap();
            assert_eq!(out.len(), len);
            if len >= 2 {
                serde_json::from_slice::<Value>(&out).unwrap();
            }
        }
    }
}
