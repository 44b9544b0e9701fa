//! HTTP for refreshes done by the host: the request handle, the two-step refresh
//! (`tv_vault_begin_refresh` → send it yourself → `tv_vault_finish_refresh` /
//! `tv_vault_fail_refresh`) and the blocking transport callback (`tv_vault_set_transport`).
//!
//! One request type, [`tv_http_request`], serves both: the two-step refresh hands the caller an
//! owned one; the transport callback borrows one for the duration of the call. Its strings are
//! NUL-terminated copies, and the secret ones (header values, body) are zeroed when it is freed.

use std::ffi::{c_char, c_void, CString};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokenvault::{
    AccessToken, HttpRequest, HttpResponse, RefreshStep, Transport, TransportError, TransportErrorKind, VaultError,
};

use super::vault::{tv_vault, vault_ref, write_token};
use super::{tv_buf, tv_status};
use crate::boundary::{self, bytes_arg, invalid, utf8_arg};

/// A NUL-terminated copy of a secret, zeroed on drop.
struct SecretText(Vec<u8>);

impl SecretText {
    fn new(text: &[u8]) -> SecretText {
        let mut v = Vec::with_capacity(text.len() + 1);
        v.extend_from_slice(text);
        v.push(0);
        SecretText(v)
    }

    fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }

    /// Length without the NUL.
    fn len(&self) -> usize {
        self.0.len() - 1
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        boundary::wipe(&mut self.0);
    }
}

/// An HTTP request to perform for a refresh (opaque). Its header values and body contain
/// credentials: never log them. Read it with the `tv_http_request_*` accessors.
pub struct tv_http_request {
    method: CString,
    url: CString,
    headers: Vec<(CString, SecretText)>,
    body: SecretText,
    timeout_ms: u64,
    max_response_bytes: usize,
    allow_plain_http: bool,
    /// `sha256/<base64>` texts.
    pins: Vec<CString>,
}

impl fmt::Debug for tv_http_request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("tv_http_request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .field("body", &format_args!("<redacted, {} bytes>", self.body.len()))
            .finish_non_exhaustive()
    }
}

fn c_string(text: &str, what: &str) -> Result<CString, VaultError> {
    CString::new(text).map_err(|_| VaultError::Internal {
        reason: format!("the request's {what} contains NUL"),
    })
}

impl tv_http_request {
    fn from_core(r: &HttpRequest) -> Result<tv_http_request, VaultError> {
        let headers = r
            .headers
            .iter()
            .map(|h| {
                let value = h.value.expose().as_bytes();
                if value.contains(&0) {
                    return Err(VaultError::Internal {
                        reason: "a request header value contains NUL".into(),
                    });
                }
                Ok((c_string(&h.name, "header name")?, SecretText::new(value)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(tv_http_request {
            method: c_string(&r.method, "method")?,
            url: c_string(&r.url, "URL")?,
            headers,
            body: SecretText::new(&r.body),
            timeout_ms: u64::try_from(r.timeout.as_millis()).unwrap_or(u64::MAX),
            max_response_bytes: r.max_response_bytes,
            allow_plain_http: r.allow_plain_http,
            pins: r
                .pins
                .iter()
                .map(|p| c_string(&p.to_string(), "pin"))
                .collect::<Result<Vec<_>, _>>()?,
        })
    }
}

/// The method (`"POST"` or `"PUT"`).
///
/// Ownership: `*out_method` is borrowed from `request`, valid until it is freed (or, in a
/// transport callback, until the callback returns). Thread-safe (the request is immutable).
#[no_mangle]
pub unsafe extern "C" fn tv_http_request_method(
    request: *const tv_http_request,
    out_method: *mut *const c_char,
) -> tv_status {
    boundary!("tv_http_request_method", [request, out_method], {
        // SAFETY: a live request and a valid out-pointer (header contract).
        unsafe { out_method.write((*request).method.as_ptr()) };
        Ok(())
    })
}

/// The absolute `http`/`https` URL.
///
/// Ownership: `*out_url` is borrowed from `request` (see `tv_http_request_method`).
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_http_request_url(
    request: *const tv_http_request,
    out_url: *mut *const c_char,
) -> tv_status {
    boundary!("tv_http_request_url", [request, out_url], {
        // SAFETY: a live request and a valid out-pointer (header contract).
        unsafe { out_url.write((*request).url.as_ptr()) };
        Ok(())
    })
}

/// The number of headers to send (in order). `Content-Type` is among them; `Content-Length`
/// and `Host` are not: the HTTP client adds those.
///
/// Ownership: borrows `request`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_http_request_header_count(
    request: *const tv_http_request,
    out_count: *mut usize,
) -> tv_status {
    boundary!("tv_http_request_header_count", [request, out_count], {
        // SAFETY: a live request and a valid out-pointer (header contract).
        unsafe { out_count.write((*request).headers.len()) };
        Ok(())
    })
}

/// The header at `index` (0-based, below the count). The value may be a credential
/// (`Authorization`): never log it.
///
/// Ownership: `*out_name` and `*out_value` are borrowed from `request` (see
/// `tv_http_request_method`). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_http_request_header(
    request: *const tv_http_request,
    index: usize,
    out_name: *mut *const c_char,
    out_value: *mut *const c_char,
) -> tv_status {
    boundary!("tv_http_request_header", [request, out_name, out_value], {
        // SAFETY: a live request and valid out-pointers (header contract).
        let request = unsafe { &*request };
        let (name, value) = request
            .headers
            .get(index)
            .ok_or_else(|| invalid(format!("header index {index} is out of range")))?;
        unsafe {
            out_name.write(name.as_ptr());
            out_value.write(value.as_ptr());
        }
        Ok(())
    })
}

/// Whether the request may be sent over plain `http://`: `*out_allowed` is 1 only for a
/// loopback endpoint (`127.0.0.0/8`, `[::1]`, `localhost`) or a profile with `allow_http`.
/// A host transport must refuse (`TV_TRANSPORT_INSECURE_SCHEME`) an `http://` URL when it is 0,
/// before connecting.
///
/// Ownership: borrows `request`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_http_request_allows_plain_http(
    request: *const tv_http_request,
    out_allowed: *mut u8,
) -> tv_status {
    boundary!("tv_http_request_allows_plain_http", [request, out_allowed], {
        // SAFETY: a live request and a valid out-pointer (header contract).
        unsafe { out_allowed.write(u8::from((*request).allow_plain_http)) };
        Ok(())
    })
}

/// The number of certificate pins of the endpoint (0: not pinned). When there are pins, a
/// host transport must, besides its normal certificate validation, require that some
/// certificate of the chain the server presents has a SubjectPublicKeyInfo whose SHA-256 is
/// one of them, and send nothing of the request otherwise (report `TV_TRANSPORT_CERTIFICATE_PIN`).
///
/// Ownership: borrows `request`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_http_request_pin_count(
    request: *const tv_http_request,
    out_count: *mut usize,
) -> tv_status {
    boundary!("tv_http_request_pin_count", [request, out_count], {
        // SAFETY: a live request and a valid out-pointer (header contract).
        unsafe { out_count.write((*request).pins.len()) };
        Ok(())
    })
}

/// The pin at `index` (0-based, below the count), as `sha256/<base64 of the SHA-256 of the
/// DER SubjectPublicKeyInfo>` (OkHttp's `CertificatePinner` form).
///
/// Ownership: `*out_pin` is borrowed from `request` (see `tv_http_request_method`).
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_http_request_pin(
    request: *const tv_http_request,
    index: usize,
    out_pin: *mut *const c_char,
) -> tv_status {
    boundary!("tv_http_request_pin", [request, out_pin], {
        // SAFETY: a live request (header contract).
        let request = unsafe { &*request };
        let pin = request
            .pins
            .get(index)
            .ok_or_else(|| invalid("`index` is not below the pin count"))?;
        // SAFETY: a valid out-pointer (header contract).
        unsafe { out_pin.write(pin.as_ptr()) };
        Ok(())
    })
}

/// The body: `*out_len` bytes at `*out_body` (followed by a NUL byte, not counted, so a text
/// body can be used as a C string). It contains credentials: never log it.
///
/// Ownership: `*out_body` is borrowed from `request` (see `tv_http_request_method`).
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_http_request_body(
    request: *const tv_http_request,
    out_body: *mut *const u8,
    out_len: *mut usize,
) -> tv_status {
    boundary!("tv_http_request_body", [request, out_body, out_len], {
        // SAFETY: a live request and valid out-pointers (header contract).
        let request = unsafe { &*request };
        unsafe {
            out_body.write(request.body.as_ptr().cast());
            out_len.write(request.body.len());
        }
        Ok(())
    })
}

/// How long the whole exchange may take, in ms; give up (and report a timeout) after it.
///
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_http_request_timeout_ms(request: *const tv_http_request, out_ms: *mut u64) -> tv_status {
    boundary!("tv_http_request_timeout_ms", [request, out_ms], {
        // SAFETY: a live request and a valid out-pointer (header contract).
        unsafe { out_ms.write((*request).timeout_ms) };
        Ok(())
    })
}

/// The largest response body to accept, in bytes; a larger one is `TV_TRANSPORT_TOO_LARGE`.
///
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_http_request_max_response_bytes(
    request: *const tv_http_request,
    out_bytes: *mut usize,
) -> tv_status {
    boundary!("tv_http_request_max_response_bytes", [request, out_bytes], {
        // SAFETY: a live request and a valid out-pointer (header contract).
        unsafe { out_bytes.write((*request).max_response_bytes) };
        Ok(())
    })
}

/// Release a request from `tv_vault_begin_refresh`; its secret bytes are zeroed. `request` may
/// be NULL. Never free the request a transport callback borrows.
///
/// Ownership: takes `request`; it and every pointer read from it are invalid afterwards. Call it
/// when no other call on the same request is running.
#[no_mangle]
pub unsafe extern "C" fn tv_http_request_free(request: *mut tv_http_request) {
    boundary!(infallible "tv_http_request_free", (), {
        if !request.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` and is freed once (header contract).
            drop(unsafe { Box::from_raw(request) });
        }
    })
}

/// What `tv_vault_begin_refresh` decided.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tv_refresh_step {
    /// No refresh is needed (or a peer did it): read the token with `tv_vault_access_token*`.
    TV_REFRESH_FRESH = 0,
    /// Another refresh for this account is in flight; read the token again later.
    TV_REFRESH_IN_FLIGHT = 1,
    /// Send `*out_request`, then call `tv_vault_finish_refresh` or `tv_vault_fail_refresh`
    /// with `*out_attempt`.
    TV_REFRESH_SEND = 2,
}

/// Start a refresh the host performs itself (a Unity coroutine, OkHttp, URLSession), with the
/// same single-flight and durability as the blocking path. `force` = 1 refreshes whatever the
/// token's age (after a 401), 0 only when due.
///
/// On success `*out_step` says what to do. For `TV_REFRESH_SEND`, `*out_attempt` identifies the
/// attempt and `*out_request` is the request to send; otherwise they are set to 0 and NULL. An
/// attempt that is never finished is abandoned at its deadline (the request's timeout plus a
/// few seconds), and other callers can refresh again.
///
/// Sending the request: do not follow redirects. Most HTTP clients follow them by default,
/// and a 307/308 resends the body (the refresh credential) to wherever the `Location` points.
/// Turn them off: OkHttp `followRedirects(false)` and `followSslRedirects(false)`; URLSession
/// a delegate whose `urlSession(_:task:willPerformHTTPRedirection:newRequest:completionHandler:)`
/// calls `completionHandler(nil)`; UnityWebRequest `redirectLimit = 0`; .NET
/// `HttpClientHandler.AllowAutoRedirect = false`; libcurl leaves `CURLOPT_FOLLOWLOCATION` off;
/// Python `requests` `allow_redirects=False`, urllib an `HTTPRedirectHandler` whose
/// `redirect_request` returns `None`. Hand a 3xx to `tv_vault_finish_refresh` as received: it
/// is a transient failure and nothing is stored. Refuse `http://` unless
/// `tv_http_request_allows_plain_http` says 1, and enforce `tv_http_request_pin` when there are
/// pins (report `TV_TRANSPORT_INSECURE_SCHEME` / `TV_TRANSPORT_CERTIFICATE_PIN`).
///
/// Ownership: `*out_request` is owned by the caller: release it with `tv_http_request_free`
/// (any time: finishing needs only the attempt number). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_begin_refresh(
    vault: *const tv_vault,
    account: *const c_char,
    force: u8,
    out_step: *mut tv_refresh_step,
    out_attempt: *mut u64,
    out_request: *mut *mut tv_http_request,
) -> tv_status {
    boundary!(
        "tv_vault_begin_refresh",
        [vault, account, out_step, out_attempt, out_request],
        {
            // SAFETY: a live handle, a NUL-terminated string, valid out-pointers (header contract).
            let vault = unsafe { vault_ref(vault) };
            let account = unsafe { utf8_arg(account, "account") }?;
            let (step, attempt, request) = match vault.begin_refresh(account, force != 0)? {
                RefreshStep::Fresh(_) => (tv_refresh_step::TV_REFRESH_FRESH, 0, std::ptr::null_mut()),
                RefreshStep::InFlight => (tv_refresh_step::TV_REFRESH_IN_FLIGHT, 0, std::ptr::null_mut()),
                RefreshStep::Send(pending) => match tv_http_request::from_core(&pending.request) {
                    Ok(r) => (
                        tv_refresh_step::TV_REFRESH_SEND,
                        pending.attempt,
                        Box::into_raw(Box::new(r)),
                    ),
                    Err(e) => {
                        // Do not leave the attempt hanging until its deadline.
                        let _ = vault.fail_refresh(
                            pending.attempt,
                            TransportError::new(TransportErrorKind::Other, "the request could not be handed over"),
                        );
                        return Err(e);
                    }
                },
            };
            unsafe {
                out_step.write(step);
                out_attempt.write(attempt);
                out_request.write(request);
            }
            Ok(())
        }
    )
}

/// One response header handed to `tv_vault_finish_refresh`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tv_http_header {
    /// Header name (NUL-terminated; any case).
    pub name: *const c_char,
    /// Header value (NUL-terminated).
    pub value: *const c_char,
}

/// Text from the network: invalid UTF-8 is replaced, not refused (a header the vault does not
/// read must not fail a refresh).
///
/// # Safety
/// `ptr` is non-NULL and NUL-terminated.
unsafe fn lossy(ptr: *const c_char) -> String {
    // SAFETY: per the caller's contract.
    unsafe { std::ffi::CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
}

/// Finish a two-step refresh with the server's answer: HTTP `status`, `header_count` headers
/// (`headers` may be NULL when 0; invalid UTF-8 in them is replaced) and `body_len` bytes of
/// body (`body` may be NULL when 0). The response is parsed by the session's profile; on
/// success the new pair is durable before the new token is returned.
///
/// Ownership: borrows everything for the call. On success `*out_token` owns a new buffer: free
/// it with `tv_buf_free`; `*out_generation` is optional (may be NULL). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_finish_refresh(
    vault: *const tv_vault,
    attempt: u64,
    status: u16,
    headers: *const tv_http_header,
    header_count: usize,
    body: *const u8,
    body_len: usize,
    out_token: *mut tv_buf,
    out_generation: *mut u64,
) -> tv_status {
    boundary!("tv_vault_finish_refresh", [vault, out_token], {
        // SAFETY: a live handle; `header_count` headers of NUL-terminated strings; `body_len`
        // readable bytes; valid out-pointers (header contract).
        let vault = unsafe { vault_ref(vault) };
        if header_count > 0 && headers.is_null() {
            return Err(invalid("`headers` is NULL with a non-zero count"));
        }
        let mut pairs = Vec::with_capacity(header_count);
        for i in 0..header_count {
            let h = unsafe { headers.add(i).read() };
            if h.name.is_null() || h.value.is_null() {
                return Err(invalid(format!("headers[{i}] has a NULL name or value")));
            }
            pairs.push(unsafe { (lossy(h.name), lossy(h.value)) });
        }
        let body = unsafe { bytes_arg(body, body_len, "body") }?.to_vec();
        let token = vault.finish_refresh(attempt, HttpResponse::new(status, pairs, body))?;
        unsafe { write_token(&token, out_token, out_generation) };
        Ok(())
    })
}

/// Why a host could not get a response (`tv_vault_fail_refresh`, and the return value of a
/// `tv_transport_fn`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tv_transport_result {
    /// A response was received (transport callback only).
    TV_TRANSPORT_OK = 0,
    /// No answer in time (the request may have reached the server).
    TV_TRANSPORT_TIMEOUT = 1,
    /// Could not connect: DNS, refused, unreachable, TLS handshake.
    TV_TRANSPORT_CONNECT = 2,
    /// The connection broke mid-exchange (the request may have reached the server).
    TV_TRANSPORT_IO = 3,
    /// The response was larger than `tv_http_request_max_response_bytes`.
    TV_TRANSPORT_TOO_LARGE = 4,
    /// Anything else.
    TV_TRANSPORT_OTHER = 5,
    /// The server's certificate chain matched none of the request's pins
    /// (`tv_http_request_pin`); nothing of the request was sent.
    TV_TRANSPORT_CERTIFICATE_PIN = 6,
    /// The URL is plain `http://` and `tv_http_request_allows_plain_http` said no; nothing was
    /// sent.
    TV_TRANSPORT_INSECURE_SCHEME = 7,
}

fn transport_kind(code: i32) -> Option<TransportErrorKind> {
    Some(match code {
        1 => TransportErrorKind::Timeout,
        2 => TransportErrorKind::Connect,
        3 => TransportErrorKind::Io,
        4 => TransportErrorKind::TooLarge,
        5 => TransportErrorKind::Other,
        6 => TransportErrorKind::CertificatePin,
        7 => TransportErrorKind::InsecureScheme,
        _ => return None,
    })
}

fn transport_error(kind: TransportErrorKind, by: &str) -> TransportError {
    let what = match kind {
        TransportErrorKind::Timeout => "timed out",
        TransportErrorKind::Connect => "could not connect",
        TransportErrorKind::Io => "the connection broke",
        TransportErrorKind::TooLarge => "the response was too large",
        TransportErrorKind::Other => "failed",
        TransportErrorKind::InsecureScheme => "refused plain http",
        TransportErrorKind::CertificatePin => "certificate pin mismatch",
    };
    TransportError::new(kind, format!("{by}: {what}"))
}

/// Finish a two-step refresh whose request failed on the network; `kind` is one of
/// `TV_TRANSPORT_TIMEOUT` … `TV_TRANSPORT_INSECURE_SCHEME`. The session is kept: while its token is
/// still valid (and the refresh was not forced) that token is returned with `TV_OK`; otherwise
/// `TV_TRANSIENT`.
///
/// Ownership: on success `*out_token` owns a new buffer: free it with `tv_buf_free`;
/// `*out_generation` is optional (may be NULL). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_fail_refresh(
    vault: *const tv_vault,
    attempt: u64,
    kind: i32,
    out_token: *mut tv_buf,
    out_generation: *mut u64,
) -> tv_status {
    boundary!("tv_vault_fail_refresh", [vault, out_token], {
        // SAFETY: a live handle and valid out-pointers (header contract).
        let vault = unsafe { vault_ref(vault) };
        let kind =
            transport_kind(kind).ok_or_else(|| invalid(format!("{kind} is not a tv_transport_result failure")))?;
        let token: AccessToken = vault.fail_refresh(attempt, transport_error(kind, "the host's HTTP client"))?;
        unsafe { write_token(&token, out_token, out_generation) };
        Ok(())
    })
}

/// The response a transport callback fills (opaque; only valid during the callback).
#[derive(Debug)]
pub struct tv_http_response {
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    max_body: usize,
    too_large: bool,
}

impl Drop for tv_http_response {
    fn drop(&mut self) {
        boundary::wipe(&mut self.body);
    }
}

/// Set the HTTP status of the response (100..=999).
///
/// Ownership: borrows `response`. Call only from the callback that received it.
#[no_mangle]
pub unsafe extern "C" fn tv_http_response_set_status(response: *mut tv_http_response, status: u16) -> tv_status {
    boundary!("tv_http_response_set_status", [response], {
        if !(100..=999).contains(&status) {
            return Err(invalid(format!("{status} is not an HTTP status")));
        }
        // SAFETY: the response a running callback received (header contract).
        unsafe { (*response).status = Some(status) };
        Ok(())
    })
}

/// Add a response header (NUL-terminated; invalid UTF-8 is replaced).
///
/// Ownership: borrows everything (copied). Call only from the callback that received it.
#[no_mangle]
pub unsafe extern "C" fn tv_http_response_add_header(
    response: *mut tv_http_response,
    name: *const c_char,
    value: *const c_char,
) -> tv_status {
    boundary!("tv_http_response_add_header", [response, name, value], {
        // SAFETY: the response a running callback received; NUL-terminated strings.
        let pair = unsafe { (lossy(name), lossy(value)) };
        unsafe { (*response).headers.push(pair) };
        Ok(())
    })
}

/// Append `len` bytes to the response body (`data` may be NULL when `len` is 0). Past
/// `tv_http_request_max_response_bytes` in total, nothing more is kept, `TV_INVALID_INPUT` is
/// returned and the exchange counts as `TV_TRANSPORT_TOO_LARGE` whatever the callback returns.
///
/// Ownership: borrows `data` (copied). Call only from the callback that received `response`.
#[no_mangle]
pub unsafe extern "C" fn tv_http_response_append_body(
    response: *mut tv_http_response,
    data: *const u8,
    len: usize,
) -> tv_status {
    boundary!("tv_http_response_append_body", [response], {
        // SAFETY: the response a running callback received; `len` readable bytes at `data`.
        let response = unsafe { &mut *response };
        let data = unsafe { bytes_arg(data, len, "data") }?;
        if response.too_large || response.body.len().saturating_add(data.len()) > response.max_body {
            response.too_large = true;
            return Err(invalid("the response body is larger than max_response_bytes"));
        }
        append_without_copies(&mut response.body, data, response.max_body);
        Ok(())
    })
}

/// Append `data` to a body that holds secrets (the new tokens). A `Vec` that grows leaves its
/// old buffer behind unwiped, so growth is done here: a new buffer (doubling, capped at `cap`),
/// the bytes copied over, the old buffer zeroed before it is freed.
fn append_without_copies(body: &mut Vec<u8>, data: &[u8], cap: usize) {
    let needed = body.len().saturating_add(data.len());
    if needed > body.capacity() {
        let grown = body
            .capacity()
            .saturating_mul(2)
            .max(needed)
            .max(256)
            .min(cap.max(needed));
        let mut bigger = Vec::with_capacity(grown);
        bigger.extend_from_slice(body);
        boundary::wipe(body);
        *body = bigger;
    }
    body.extend_from_slice(data);
}

/// Frees a callback's `user_data` when the library no longer needs it.
pub type tv_destroy_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Performs one HTTP exchange for a blocking refresh: send `request` (method, URL, headers,
/// body, within its timeout), fill `response` with `tv_http_response_*`, and return
/// `TV_TRANSPORT_OK`, or a `tv_transport_result` failure. Never follow redirects (a 307/308
/// would resend the refresh credential; how to turn them off in common clients: see
/// `tv_vault_begin_refresh`): return the 3xx as the response. Refuse plain `http://` unless
/// `tv_http_request_allows_plain_http`, and enforce the request's pins (`tv_http_request_pin`).
pub type tv_transport_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        request: *const tv_http_request,
        response: *mut tv_http_response,
    ) -> i32,
>;

/// A C pointer with its destructor, run once when the last owner drops it.
pub(crate) struct UserData {
    ptr: *mut c_void,
    destroy: tv_destroy_fn,
    /// Set once the vault accepted the callback: only then does the library own `ptr` (on
    /// failure the caller keeps it, and `destroy` is not called).
    owned: Arc<AtomicBool>,
}

// SAFETY: the header contract requires `user_data` to be usable from any thread (callbacks run
// on the calling thread or on the event thread, and destroy may run on either).
unsafe impl Send for UserData {}
// SAFETY: as above; the library never touches the pointee, it only passes the pointer on.
unsafe impl Sync for UserData {}

impl UserData {
    /// The caller's pointer, not yet owned: call the returned closure once the vault accepted
    /// it (a callback refused, say by a closed vault, leaves `user_data` to the caller).
    pub(crate) fn new(ptr: *mut c_void, destroy: tv_destroy_fn) -> (UserData, impl FnOnce()) {
        let owned = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&owned);
        (UserData { ptr, destroy, owned }, move || {
            flag.store(true, Ordering::SeqCst)
        })
    }

    pub(crate) fn ptr(&self) -> *mut c_void {
        self.ptr
    }
}

impl Drop for UserData {
    fn drop(&mut self) {
        if let Some(destroy) = self.destroy.filter(|_| self.owned.load(Ordering::SeqCst)) {
            // SAFETY: the caller's destructor for its own pointer, called exactly once.
            unsafe { destroy(self.ptr) };
        }
    }
}

/// A [`Transport`] that calls the host's C function.
struct CallbackTransport {
    send: unsafe extern "C" fn(*mut c_void, *const tv_http_request, *mut tv_http_response) -> i32,
    user_data: UserData,
}

impl fmt::Debug for CallbackTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackTransport")
    }
}

impl Transport for CallbackTransport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let by = "the host's transport callback";
        let c_request =
            tv_http_request::from_core(request).map_err(|_| transport_error(TransportErrorKind::Other, by))?;
        let mut response = tv_http_response {
            status: None,
            headers: Vec::new(),
            body: Vec::new(),
            max_body: request.max_response_bytes,
            too_large: false,
        };
        // SAFETY: the host's function, with the pointer it registered and two objects valid for
        // the duration of the call.
        let code = unsafe { (self.send)(self.user_data.ptr(), &c_request, &mut response) };
        drop(c_request);
        if response.too_large {
            return Err(transport_error(TransportErrorKind::TooLarge, by));
        }
        if code != 0 {
            return Err(transport_error(
                transport_kind(code).unwrap_or(TransportErrorKind::Other),
                by,
            ));
        }
        let Some(status) = response.status else {
            return Err(TransportError::new(
                TransportErrorKind::Other,
                format!("{by} returned TV_TRANSPORT_OK without setting a status"),
            ));
        };
        let headers = std::mem::take(&mut response.headers);
        let body = std::mem::take(&mut response.body);
        Ok(HttpResponse::new(status, headers, body))
    }
}

/// Install the host's HTTP client for blocking refreshes (`tv_vault_access_token*`,
/// `tv_vault_force_refresh`, `tv_vault_report_rejected`), replacing the current one; `send` =
/// NULL restores the built-in HTTPS transport.
///
/// `send` runs on the thread that asked for the token, possibly on several threads at once (for
/// different accounts), never with a vault lock held. It may call `tv_vault_*` functions of
/// the same vault, but must not wait for a refresh of the account it is refreshing
/// (`tv_vault_access_token*` on a due token, `tv_vault_force_refresh`, `tv_vault_report_rejected`
/// for that account): that call would wait for the very refresh it is part of, until the
/// refresh's deadline. It must not free the vault, nor let a C++ exception escape.
///
/// Ownership: on success the library keeps `user_data` and calls `destroy(user_data)` (if
/// `destroy` is not NULL) exactly once, when the transport is replaced or the vault is freed,
/// after the last call of `send` returned; `user_data` must be usable from any thread. On
/// failure nothing is kept and `destroy` is not called. With `send` = NULL, `user_data` and
/// `destroy` are ignored. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_set_transport(
    vault: *const tv_vault,
    send: tv_transport_fn,
    user_data: *mut c_void,
    destroy: tv_destroy_fn,
) -> tv_status {
    boundary!("tv_vault_set_transport", [vault], {
        // SAFETY: a live handle (header contract).
        let vault = unsafe { vault_ref(vault) };
        let Some(send) = send else {
            return vault.set_transport(None);
        };
        let (user_data, take_ownership) = UserData::new(user_data, destroy);
        vault.set_transport(Some(Arc::new(CallbackTransport { send, user_data })))?;
        take_ownership();
        Ok(())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn transport_results_match_the_core_kinds() {
        use tv_transport_result::*;
        for (c, k) in [
            (TV_TRANSPORT_TIMEOUT, TransportErrorKind::Timeout),
            (TV_TRANSPORT_CONNECT, TransportErrorKind::Connect),
            (TV_TRANSPORT_IO, TransportErrorKind::Io),
            (TV_TRANSPORT_TOO_LARGE, TransportErrorKind::TooLarge),
            (TV_TRANSPORT_OTHER, TransportErrorKind::Other),
            (TV_TRANSPORT_CERTIFICATE_PIN, TransportErrorKind::CertificatePin),
            (TV_TRANSPORT_INSECURE_SCHEME, TransportErrorKind::InsecureScheme),
        ] {
            assert_eq!(transport_kind(c as i32), Some(k));
        }
        assert_eq!(transport_kind(TV_TRANSPORT_OK as i32), None);
        assert_eq!(transport_kind(99), None);
    }

    /// A host transport sees the plain-http permission and the pins, in `sha256/` form.
    #[test]
    fn requests_expose_plain_http_permission_and_pins() {
        use std::ffi::CStr;
        let pin = tokenvault::SpkiPin::from_sha256([1; 32]);
        let core = HttpRequest {
            method: "POST".into(),
            url: "https://auth.example.test/token".into(),
            headers: vec![],
            body: b"x".to_vec(),
            timeout: std::time::Duration::from_secs(1),
            max_response_bytes: 1024,
            allow_plain_http: false,
            pins: vec![pin],
        };
        let req = tv_http_request::from_core(&core).unwrap();
        let (mut allowed, mut count, mut text) = (9u8, 0usize, std::ptr::null());
        unsafe {
            assert_eq!(tv_http_request_allows_plain_http(&req, &mut allowed), tv_status::TV_OK);
            assert_eq!(tv_http_request_pin_count(&req, &mut count), tv_status::TV_OK);
            assert_eq!(tv_http_request_pin(&req, 0, &mut text), tv_status::TV_OK);
            assert_eq!(CStr::from_ptr(text).to_str().unwrap(), pin.to_string());
            assert_eq!(tv_http_request_pin(&req, 1, &mut text), tv_status::TV_INVALID_INPUT);
            assert_eq!(
                tv_http_request_pin_count(std::ptr::null(), &mut count),
                tv_status::TV_INVALID_INPUT
            );
        }
        assert_eq!((allowed, count), (0, 1));
        assert!(pin.to_string().starts_with("sha256/"));
    }
}
