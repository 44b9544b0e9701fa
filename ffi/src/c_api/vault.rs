//! The vault handle: open, close, profiles, sessions, tokens, accounts, rekey.

use std::ffi::{c_char, CString};
use std::sync::Arc;
use std::time::Duration;

use tokenvault::{
    AccessToken, KeySource, NewSession, SessionInfo, SessionState, TokenOptions, Vault, VaultError, VaultOptions,
};

use super::{copy_out, tv_buf, tv_status};
use crate::boundary::{bytes_arg, invalid, optional_utf8_arg, utf8_arg};

/// An open vault (opaque). Create it with `tv_vault_open_with_key` or
/// `tv_vault_open_with_passphrase`; every other `tv_vault_*` function may be called on it from
/// any thread at the same time. `tv_vault_close` ends its use (later calls return
/// `TV_CLOSED`); `tv_vault_free` releases it.
#[derive(Debug)]
pub struct tv_vault {
    pub(crate) inner: Arc<Vault>,
}

/// The vault behind a handle checked non-NULL by the boundary.
///
/// # Safety
/// `ptr` is non-NULL and was returned by `tv_vault_open_*` and not yet freed.
#[inline(always)]
pub(crate) unsafe fn vault_ref<'a>(ptr: *const tv_vault) -> &'a Vault {
    // SAFETY: per the caller's contract.
    unsafe { &(*ptr).inner }
}

fn open(path: &str, key: KeySource, out_vault: *mut *mut tv_vault) -> Result<(), VaultError> {
    open_with(path, key, VaultOptions::default(), out_vault)
}

pub(crate) fn open_with(
    path: &str,
    key: KeySource,
    options: VaultOptions,
    out_vault: *mut *mut tv_vault,
) -> Result<(), VaultError> {
    if path.is_empty() {
        return Err(invalid("`path` is empty"));
    }
    let vault = Vault::open(path, key, options)?;
    let handle = Box::into_raw(Box::new(tv_vault { inner: Arc::new(vault) }));
    // SAFETY: `out_vault` was checked non-NULL and is writable (header contract).
    unsafe { out_vault.write(handle) };
    Ok(())
}

/// Open (or create) the vault file at `path` with a raw key of exactly 32 bytes (from the
/// Keychain, Keystore, DPAPI or a console's secure storage). The built-in HTTPS transport is
/// used until `tv_vault_set_transport` installs another.
///
/// An existing file is checked before anything is written to it: a wrong key gives
/// `TV_WRONG_KEY`, a newer file `TV_SCHEMA_TOO_NEW`, a damaged or foreign file `TV_CORRUPT`;
/// in every case the file is left exactly as it was.
///
/// Ownership: `path` and `key` are borrowed for the call (the key bytes are copied and the copy
/// is zeroed when the vault is freed). On success `*out_vault` receives a new handle owned by
/// the caller: release it with `tv_vault_free`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_open_with_key(
    path: *const c_char,
    key: *const u8,
    key_len: usize,
    out_vault: *mut *mut tv_vault,
) -> tv_status {
    boundary!("tv_vault_open_with_key", [path, key, out_vault], {
        // SAFETY: non-NULL NUL-terminated string / `key_len` readable bytes (header contract).
        let path = unsafe { utf8_arg(path, "path") }?;
        let key = KeySource::raw(unsafe { bytes_arg(key, key_len, "key") }?)?;
        open(path, key, out_vault)
    })
}

/// Open (or create) the vault file at `path` with a passphrase (UTF-8, non-empty), stretched
/// with Argon2id (19 MiB, 2 passes: expect tens of milliseconds). Errors as
/// `tv_vault_open_with_key`.
///
/// Ownership: `path` and `passphrase` are borrowed for the call. On success `*out_vault`
/// receives a new handle owned by the caller: release it with `tv_vault_free`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_open_with_passphrase(
    path: *const c_char,
    passphrase: *const c_char,
    out_vault: *mut *mut tv_vault,
) -> tv_status {
    boundary!("tv_vault_open_with_passphrase", [path, passphrase, out_vault], {
        // SAFETY: non-NULL NUL-terminated strings (header contract).
        let path = unsafe { utf8_arg(path, "path") }?;
        let key = KeySource::passphrase(unsafe { utf8_arg(passphrase, "passphrase") }?)?;
        open(path, key, out_vault)
    })
}

/// Close the vault: waiting refreshes are released, queued events are delivered (unless this is
/// called from the event callback itself), a background logout revocation in flight is waited
/// for (at most its profile's timeout; none starts afterwards), the file is closed, and every
/// later call on the handle returns `TV_CLOSED`. Closing twice is harmless. The handle stays
/// valid until `tv_vault_free`.
///
/// Ownership: borrows `vault`. Thread-safe; may be called from the vault's own callbacks.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_close(vault: *const tv_vault) -> tv_status {
    boundary!("tv_vault_close", [vault], {
        // SAFETY: a live handle (header contract).
        unsafe { vault_ref(vault) }.close()
    })
}

/// Release a handle (closing the vault first if needed). The destroy functions given to
/// `tv_vault_set_transport` and `tv_vault_set_event_callback` run here at the latest. `vault`
/// may be NULL.
///
/// Ownership: takes `vault`; the pointer is invalid afterwards. NOT thread-safe with other
/// calls on the same handle: call it last, when no other call on this vault is running (not
/// from inside its callbacks).
#[no_mangle]
pub unsafe extern "C" fn tv_vault_free(vault: *mut tv_vault) {
    boundary!(infallible "tv_vault_free", (), {
        if !vault.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` in `open` and is freed once
            // (header contract).
            drop(unsafe { Box::from_raw(vault) });
        }
    })
}

/// Register (or replace) a refresh profile from its JSON (see the profile documentation;
/// `{"preset": "keycloak", "name": ..., "url": ..., "client_id": ...}` starts from a preset).
/// Sessions name the profile they refresh with.
///
/// Ownership: `json` is borrowed for the call. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_load_profile_json(vault: *const tv_vault, json: *const c_char) -> tv_status {
    boundary!("tv_vault_load_profile_json", [vault, json], {
        // SAFETY: a live handle and a NUL-terminated string (header contract).
        let vault = unsafe { vault_ref(vault) };
        let json = unsafe { utf8_arg(json, "json") }?;
        vault.load_profile_json(json).map(drop)
    })
}

/// A session to store, as the host's own sign-in produced it. Set `struct_size` to
/// `sizeof(tv_session_params)`; zero-initialise the struct, then fill what you have.
#[repr(C)]
#[derive(Debug)]
pub struct tv_session_params {
    /// `sizeof(tv_session_params)`: lets later versions append fields.
    pub struct_size: u32,
    /// `1` if the refresh credential never expires by time (an OAuth2 offline token), else `0`.
    pub offline: u8,
    /// The host's account id (required, UTF-8, at most 1024 bytes).
    pub account: *const c_char,
    /// The name of a registered profile (required).
    pub profile: *const c_char,
    /// The access token (required).
    pub access_token: *const c_char,
    /// The refresh token (or entity token); NULL if none.
    pub refresh_credential: *const c_char,
    /// The access token's `expires_in` as the login response wrote it: seconds from now, or an
    /// absolute epoch time in seconds or milliseconds (a Java timestamp), told apart as in
    /// refresh responses; `<= 0` if unknown (then the JWT `exp`, then the profile's default
    /// lifetime is used).
    pub expires_in_secs: i64,
    /// The refresh credential's `refresh_expires_in`, read the same way; `<= 0` if unknown (for
    /// Keycloak's `refresh_expires_in: 0`, an offline token, set `offline` instead).
    pub refresh_expires_in_secs: i64,
    /// Token type (e.g. `"Bearer"`); NULL if none.
    pub token_type: *const c_char,
    /// Granted scope; NULL if none.
    pub scope: *const c_char,
    /// Non-secret hints to keep with the session, as a JSON object of strings (e.g.
    /// `{"display_name":"Ada"}`); NULL if none.
    pub hints_json: *const c_char,
}

/// Read a caller struct whose first field is a `u32` size that must equal `size_of::<T>()`.
///
/// # Safety
/// `ptr` is non-NULL and points to at least a `u32`, and to a whole `T` if that `u32` says so.
unsafe fn read_sized<T>(ptr: *const T, what: &str) -> Result<*const T, VaultError> {
    // SAFETY: the first field is a u32 (repr(C) structs of this module), readable per contract.
    let size = unsafe { ptr.cast::<u32>().read_unaligned() };
    if usize::try_from(size).ok() != Some(std::mem::size_of::<T>()) {
        return Err(invalid(format!(
            "{what}.struct_size is {size}, this library expects {}",
            std::mem::size_of::<T>()
        )));
    }
    Ok(ptr)
}

/// Build a core `NewSession` from the caller's parameters.
///
/// # Safety
/// The string pointers of `p` are NULL or NUL-terminated (header contract).
unsafe fn new_session(p: &tv_session_params) -> Result<NewSession, VaultError> {
    // SAFETY (every block below): NULL or NUL-terminated strings per the caller's contract.
    let account = unsafe { utf8_arg(p.account, "params.account") }?;
    let profile = unsafe { utf8_arg(p.profile, "params.profile") }?;
    let access = unsafe { utf8_arg(p.access_token, "params.access_token") }?;
    let mut s = NewSession::new(account, profile, access);
    if let Some(c) = unsafe { optional_utf8_arg(p.refresh_credential, "params.refresh_credential") }? {
        s = s.refresh_credential(c);
    }
    s = s
        .expires_in_secs(p.expires_in_secs)
        .refresh_expires_in_secs(p.refresh_expires_in_secs);
    s = s.offline(p.offline != 0);
    if let Some(t) = unsafe { optional_utf8_arg(p.token_type, "params.token_type") }? {
        s = s.token_type(t);
    }
    if let Some(t) = unsafe { optional_utf8_arg(p.scope, "params.scope") }? {
        s = s.scope(t);
    }
    if let Some(h) = unsafe { optional_utf8_arg(p.hints_json, "params.hints_json") }? {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(h).map_err(|_| invalid("params.hints_json is not a JSON object"))?;
        for (k, v) in map {
            let serde_json::Value::String(v) = v else {
                return Err(invalid("params.hints_json values must be strings"));
            };
            s = s.hint(k, v);
        }
    }
    Ok(s)
}

/// Store a session after the host's own sign-in, replacing any session of that account. It is
/// durable (committed to disk) when this returns. If `out_info` is not NULL (its `struct_size`
/// set by the caller), it receives the stored session's facts.
///
/// Ownership: `params` and its strings are borrowed for the call (secrets are copied into
/// zeroed-on-drop memory). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_store(
    vault: *const tv_vault,
    params: *const tv_session_params,
    out_info: *mut tv_session_info,
) -> tv_status {
    boundary!("tv_vault_store", [vault, params], {
        // SAFETY: a live handle; `params` and `out_info` point to structs with their
        // `struct_size` set (header contract).
        let vault = unsafe { vault_ref(vault) };
        let params = unsafe { &*read_sized(params, "params")? };
        if !out_info.is_null() {
            unsafe { read_sized(out_info, "out_info") }?;
        }
        let session = unsafe { new_session(params) }?;
        let info = vault.store(session)?;
        if !out_info.is_null() {
            unsafe { out_info.write(session_info_struct(&info)) };
        }
        Ok(())
    })
}

/// Store a session from the login response as the server wrote it: `body` (`body_len` bytes)
/// is read by the profile's own response spec with the same rules as a refresh response
/// (envelopes, `expires_in` relative or as an epoch time in s or ms, the JWT `exp`, Keycloak's
/// `refresh_expires_in: 0` as an offline token). `date_header` (the response's `Date`, or NULL)
/// anchors the expiry on the server's clock. `refresh_credential` (or NULL) is for dialects
/// whose answer does not carry it (seed 000's entity token); a response that carries one as well
/// is `TV_INVALID_INPUT`. A body that is not a successful answer is `TV_PROTOCOL` and nothing is
/// stored. Durable when it returns; `out_info` as in `tv_vault_store`.
///
/// Ownership: every argument is borrowed for the call (the body's copy is zeroed). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_store_response(
    vault: *const tv_vault,
    account: *const c_char,
    profile: *const c_char,
    body: *const u8,
    body_len: usize,
    date_header: *const c_char,
    refresh_credential: *const c_char,
    out_info: *mut tv_session_info,
) -> tv_status {
    boundary!("tv_vault_store_response", [vault, account, profile], {
        // SAFETY: a live handle; NUL-terminated strings or NULL where optional; `body_len`
        // readable bytes; `out_info` NULL or a struct with its size set (header contract).
        let vault = unsafe { vault_ref(vault) };
        let account = unsafe { utf8_arg(account, "account") }?;
        let profile = unsafe { utf8_arg(profile, "profile") }?;
        let body = unsafe { bytes_arg(body, body_len, "body") }?;
        if !out_info.is_null() {
            unsafe { read_sized(out_info, "out_info") }?;
        }
        let mut login = tokenvault::LoginResponse::new(account, profile, body);
        if let Some(d) = unsafe { optional_utf8_arg(date_header, "date_header") }? {
            login = login.date_header(d);
        }
        if let Some(c) = unsafe { optional_utf8_arg(refresh_credential, "refresh_credential") }? {
            login = login.refresh_credential(c);
        }
        let info = vault.store_response(login)?;
        if !out_info.is_null() {
            unsafe { out_info.write(session_info_struct(&info)) };
        }
        Ok(())
    })
}

#[inline(always)]
fn token(vault: &Vault, account: &str, min_ttl_ms: u64) -> Result<AccessToken, VaultError> {
    if min_ttl_ms == 0 {
        vault.access_token(account)
    } else {
        vault.access_token_with(
            account,
            TokenOptions {
                min_ttl: Duration::from_millis(min_ttl_ms),
            },
        )
    }
}

/// Write a token to the caller's `tv_buf` and optional generation.
///
/// # Safety
/// `out_token` is valid for writes; `out_generation` is NULL or valid for writes.
pub(crate) unsafe fn write_token(token: &AccessToken, out_token: *mut tv_buf, out_generation: *mut u64) {
    // SAFETY: per the caller's contract.
    unsafe {
        out_token.write(tv_buf::from_bytes(token.expose().as_bytes()));
        if !out_generation.is_null() {
            out_generation.write(token.generation());
        }
    }
}

/// A valid access token for `account`, copied into the caller's buffer: the cached one when it
/// is fresh (the hot path: no allocation, no lock beyond a shared read), otherwise one
/// refreshed through the transport — once, however many threads ask at the same moment.
/// `min_ttl_ms` > 0 asks for a token that stays valid at least that long (capped at half its
/// lifetime). While the network is down a still-valid token is served.
///
/// On success `buf` holds the token and a NUL, `*out_len` its length without the NUL, and
/// `*out_generation` (if not NULL) the generation of the stored pair it belongs to (it grows
/// with every refresh and every store: compare it to skip work when the token did not change).
/// If `buf_len` is less than the length plus one, nothing is copied, `*out_len` receives the
/// length and `TV_INVALID_INPUT` is returned (`buf` may be NULL when `buf_len` is 0). A
/// 4096-byte buffer fits most tokens; tokens are at most 65536 bytes.
///
/// Ownership: `buf` is the caller's; wipe it when done. Thread-safe. A refresh runs the
/// transport callback on this thread.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_access_token_copy(
    vault: *const tv_vault,
    account: *const c_char,
    min_ttl_ms: u64,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
    out_generation: *mut u64,
) -> tv_status {
    boundary!("tv_vault_access_token_copy", [vault, account, out_len], {
        // SAFETY: a live handle, a NUL-terminated string, `buf_len` writable bytes at `buf`,
        // valid out-pointers (header contract).
        let vault = unsafe { vault_ref(vault) };
        let account = unsafe { utf8_arg(account, "account") }?;
        let token = token(vault, account, min_ttl_ms)?;
        unsafe { copy_out(token.expose().as_bytes(), buf, buf_len, out_len) }?;
        if !out_generation.is_null() {
            unsafe { out_generation.write(token.generation()) };
        }
        Ok(())
    })
}

/// Like `tv_vault_access_token_copy`, returning the token in a library-allocated buffer.
///
/// Ownership: on success `*out_token` owns a new buffer: free it with `tv_buf_free` (which
/// zeroes it). `*out_generation` is optional (may be NULL). Thread-safe; a refresh runs the
/// transport callback on this thread.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_access_token(
    vault: *const tv_vault,
    account: *const c_char,
    min_ttl_ms: u64,
    out_token: *mut tv_buf,
    out_generation: *mut u64,
) -> tv_status {
    boundary!("tv_vault_access_token", [vault, account, out_token], {
        // SAFETY: a live handle, a NUL-terminated string, valid out-pointers (header contract).
        let vault = unsafe { vault_ref(vault) };
        let account = unsafe { utf8_arg(account, "account") }?;
        let token = token(vault, account, min_ttl_ms)?;
        unsafe { write_token(&token, out_token, out_generation) };
        Ok(())
    })
}

/// For callers that keep the token they were last given (a managed string in C#, a cached
/// `std::string`): ask whether the token of `known_generation` is still the one to use.
///
/// On success `*out_changed` says which case it is:
/// - `0`: the token of `known_generation` is the current one and still fresh (including
///   `min_ttl_ms`, as in `tv_vault_access_token_copy`): keep using it. Nothing is allocated or
///   copied; `*out_token` is set to `{NULL, 0}` and `*out_generation` to `known_generation`.
/// - `1`: `*out_token` owns the valid token (refreshed through the transport if it was due,
///   exactly as `tv_vault_access_token` would return it) and `*out_generation` its generation.
///   Pass `known_generation` = 0 (no generation is 0) to always get the token.
///
/// The vault still makes every refresh decision; the caller only skips bytes it already has.
///
/// Ownership: when `*out_changed` is 1, `*out_token` owns a new buffer: free it with
/// `tv_buf_free` (keeping it as the cached copy until the next change is fine). Thread-safe; a
/// refresh runs the transport callback on this thread.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_token_if_changed(
    vault: *const tv_vault,
    account: *const c_char,
    min_ttl_ms: u64,
    known_generation: u64,
    out_token: *mut tv_buf,
    out_generation: *mut u64,
    out_changed: *mut u8,
) -> tv_status {
    boundary!(
        "tv_vault_token_if_changed",
        [vault, account, out_token, out_generation, out_changed],
        {
            // SAFETY: a live handle, a NUL-terminated string, valid out-pointers (header contract).
            let vault = unsafe { vault_ref(vault) };
            let account = unsafe { utf8_arg(account, "account") }?;
            let options = TokenOptions {
                min_ttl: Duration::from_millis(min_ttl_ms),
            };
            match vault.token_if_changed(account, known_generation, options)? {
                None => unsafe {
                    out_token.write(tv_buf {
                        data: std::ptr::null_mut(),
                        len: 0,
                    });
                    out_generation.write(known_generation);
                    out_changed.write(0);
                },
                Some(token) => unsafe {
                    write_token(&token, out_token, out_generation);
                    out_changed.write(1);
                },
            }
            Ok(())
        }
    )
}

/// Refresh now, whatever the token's age (joining a forced refresh already in flight), and
/// return the new token.
///
/// Ownership: on success `*out_token` owns a new buffer: free it with `tv_buf_free`.
/// `*out_generation` is optional (may be NULL). Thread-safe; runs the transport callback on
/// this thread.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_force_refresh(
    vault: *const tv_vault,
    account: *const c_char,
    out_token: *mut tv_buf,
    out_generation: *mut u64,
) -> tv_status {
    boundary!("tv_vault_force_refresh", [vault, account, out_token], {
        // SAFETY: a live handle, a NUL-terminated string, valid out-pointers (header contract).
        let vault = unsafe { vault_ref(vault) };
        let account = unsafe { utf8_arg(account, "account") }?;
        let token = vault.force_refresh(account)?;
        unsafe { write_token(&token, out_token, out_generation) };
        Ok(())
    })
}

/// The app's API rejected `rejected_token` (HTTP 401). If a newer token exists already
/// (another thread or process refreshed meanwhile) it is returned without a refresh; otherwise
/// the token is refreshed, once however many threads report it.
///
/// Ownership: `rejected_token` is borrowed; on success `*out_token` owns a new buffer: free it
/// with `tv_buf_free`. `*out_generation` is optional (may be NULL). Thread-safe; may run the
/// transport callback on this thread.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_report_rejected(
    vault: *const tv_vault,
    account: *const c_char,
    rejected_token: *const c_char,
    out_token: *mut tv_buf,
    out_generation: *mut u64,
) -> tv_status {
    boundary!(
        "tv_vault_report_rejected",
        [vault, account, rejected_token, out_token],
        {
            // SAFETY: a live handle, NUL-terminated strings, valid out-pointers (header contract).
            let vault = unsafe { vault_ref(vault) };
            let account = unsafe { utf8_arg(account, "account") }?;
            let rejected = unsafe { utf8_arg(rejected_token, "rejected_token") }?;
            let token = vault.report_rejected(account, rejected)?;
            unsafe { write_token(&token, out_token, out_generation) };
            Ok(())
        }
    )
}

/// Where a session stands (`tv_session_info.state`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tv_session_state {
    /// The access token is valid and not yet due for refresh.
    TV_SESSION_FRESH = 0,
    /// The access token is valid but past its refresh point.
    TV_SESSION_REFRESH_DUE = 1,
    /// The access token has expired; the next read refreshes it.
    TV_SESSION_EXPIRED = 2,
    /// The server refused the refresh credential: the user must sign in again.
    TV_SESSION_REAUTHENTICATION_REQUIRED = 3,
}

/// A session's facts, without secrets or strings (for those, see
/// `tv_vault_session_info_json`). Times are server time in ms since the Unix epoch; remaining
/// durations are measured on the monotonic clock. Set `struct_size` to
/// `sizeof(tv_session_info)` before passing it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tv_session_info {
    /// `sizeof(tv_session_info)`, set by the caller.
    pub struct_size: u32,
    /// Where the session stands.
    pub state: tv_session_state,
    /// Generation of the stored pair.
    pub generation: u64,
    /// How many refreshes this session went through.
    pub refresh_count: u64,
    /// When the access token was issued.
    pub issued_at_ms: i64,
    /// When the access token expires.
    pub access_expires_at_ms: i64,
    /// Time left on the access token (negative once expired).
    pub access_remaining_ms: i64,
    /// When the session itself (the refresh credential) ends; valid if `has_session_expires_at`.
    pub session_expires_at_ms: i64,
    /// Forecast of the time left before the user must sign in again; valid if
    /// `has_session_remaining`.
    pub session_remaining_ms: i64,
    /// Server clock minus device clock, as last measured.
    pub clock_offset_ms: i64,
    /// How long ago the last failed refresh happened; valid if `last_failure_status` != TV_OK.
    pub last_failure_ago_ms: u64,
    /// Status of the last failed refresh since the last success, `TV_OK` (0) if none.
    pub last_failure_status: i32,
    /// 1 if `session_expires_at_ms` is known.
    pub has_session_expires_at: u8,
    /// 1 if `session_remaining_ms` is known (never for offline tokens).
    pub has_session_remaining: u8,
    /// 1 for refresh credentials that never expire by time.
    pub offline: u8,
    /// 1 if a refresh credential is stored.
    pub has_refresh_credential: u8,
}

fn state_of(s: SessionState) -> tv_session_state {
    match s {
        SessionState::Fresh => tv_session_state::TV_SESSION_FRESH,
        SessionState::RefreshDue => tv_session_state::TV_SESSION_REFRESH_DUE,
        SessionState::Expired => tv_session_state::TV_SESSION_EXPIRED,
        SessionState::ReauthenticationRequired => tv_session_state::TV_SESSION_REAUTHENTICATION_REQUIRED,
    }
}

fn state_name(s: SessionState) -> &'static str {
    match s {
        SessionState::Fresh => "fresh",
        SessionState::RefreshDue => "refresh_due",
        SessionState::Expired => "expired",
        SessionState::ReauthenticationRequired => "reauthentication_required",
    }
}

fn session_info_struct(i: &SessionInfo) -> tv_session_info {
    let failure = i.last_refresh_failure.as_ref();
    tv_session_info {
        struct_size: std::mem::size_of::<tv_session_info>() as u32,
        state: state_of(i.state),
        generation: i.generation,
        refresh_count: i.refresh_count,
        issued_at_ms: i.issued_at_ms,
        access_expires_at_ms: i.access_expires_at_ms,
        access_remaining_ms: i.access_remaining_ms,
        session_expires_at_ms: i.session_expires_at_ms.unwrap_or(0),
        session_remaining_ms: i.session_remaining_ms.unwrap_or(0),
        clock_offset_ms: i.clock_offset_ms,
        last_failure_ago_ms: failure.map_or(0, |f| f.ago_ms),
        last_failure_status: failure.map_or(0, |f| f.code.as_i32()),
        has_session_expires_at: u8::from(i.session_expires_at_ms.is_some()),
        has_session_remaining: u8::from(i.session_remaining_ms.is_some()),
        offline: u8::from(i.offline),
        has_refresh_credential: u8::from(i.has_refresh_credential),
    }
}

/// A session's facts (no secrets), for status screens and the "sign in again soon" forecast.
///
/// Ownership: `*out_info` is the caller's struct, with `struct_size` set. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_session_info(
    vault: *const tv_vault,
    account: *const c_char,
    out_info: *mut tv_session_info,
) -> tv_status {
    boundary!("tv_vault_session_info", [vault, account, out_info], {
        // SAFETY: a live handle, a NUL-terminated string, a struct with `struct_size` set.
        let vault = unsafe { vault_ref(vault) };
        let account = unsafe { utf8_arg(account, "account") }?;
        unsafe { read_sized(out_info, "out_info") }?;
        let info = vault.session_info(account)?;
        unsafe { out_info.write(session_info_struct(&info)) };
        Ok(())
    })
}

fn session_info_json(i: &SessionInfo) -> serde_json::Value {
    serde_json::json!({
        "account": i.account,
        "profile": i.profile,
        "generation": i.generation,
        "state": state_name(i.state),
        "token_type": i.token_type,
        "scope": i.scope,
        "issued_at_ms": i.issued_at_ms,
        "access_expires_at_ms": i.access_expires_at_ms,
        "access_remaining_ms": i.access_remaining_ms,
        "session_expires_at_ms": i.session_expires_at_ms,
        "session_remaining_ms": i.session_remaining_ms,
        "offline": i.offline,
        "clock_offset_ms": i.clock_offset_ms,
        "refresh_count": i.refresh_count,
        "has_refresh_credential": i.has_refresh_credential,
        "last_refresh_failure": i.last_refresh_failure.as_ref().map(|f| serde_json::json!({
            "status": f.code.as_i32(),
            "name": f.code.name(),
            "message": f.message,
            "ago_ms": f.ago_ms,
        })),
        "hints": i.hints,
        "identity": i.identity,
    })
}

/// A session's facts as one JSON object (no secrets): `account`, `profile`, `generation`,
/// `state` (`"fresh"`, `"refresh_due"`, `"expired"`, `"reauthentication_required"`),
/// `token_type`, `scope`, `issued_at_ms`, `access_expires_at_ms`, `access_remaining_ms`,
/// `session_expires_at_ms`, `session_remaining_ms`, `offline`, `clock_offset_ms`,
/// `refresh_count`, `has_refresh_credential`, `last_refresh_failure` (`null` or
/// `{status, name, message, ago_ms}`), `hints` (an object of strings) and `identity`: `null`,
/// or the standard claims of the last validated OpenID Connect id_token (profiles with an `oidc`
/// section) — `iss`, `sub`, `iat`, and those the issuer sent of `auth_time`, `azp`, `name`,
/// `given_name`, `family_name`, `middle_name`, `nickname`, `preferred_username`, `profile`,
/// `picture`, `website`, `email`, `email_verified`, `gender`, `birthdate`, `zoneinfo`,
/// `locale`, `phone_number`, `phone_number_verified`, `updated_at` (never the id_token; the
/// claims are personal data). Unknown values are `null`.
///
/// Ownership: on success `*out_json` owns a new buffer: free it with `tv_buf_free`.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_session_info_json(
    vault: *const tv_vault,
    account: *const c_char,
    out_json: *mut tv_buf,
) -> tv_status {
    boundary!("tv_vault_session_info_json", [vault, account, out_json], {
        // SAFETY: a live handle, a NUL-terminated string, a valid out-pointer.
        let vault = unsafe { vault_ref(vault) };
        let account = unsafe { utf8_arg(account, "account") }?;
        let info = vault.session_info(account)?;
        let text = session_info_json(&info).to_string();
        unsafe { out_json.write(tv_buf::from_bytes(text.as_bytes())) };
        Ok(())
    })
}

/// The accounts stored in a vault (opaque), sorted; see `tv_vault_list_accounts`.
#[derive(Debug)]
pub struct tv_account_list {
    accounts: Vec<CString>,
}

/// The accounts with a stored session, sorted. Records that cannot be read are skipped (reading
/// them one by one gives their error).
///
/// Ownership: on success `*out_list` receives a new list owned by the caller: release it with
/// `tv_account_list_free`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_list_accounts(
    vault: *const tv_vault,
    out_list: *mut *mut tv_account_list,
) -> tv_status {
    boundary!("tv_vault_list_accounts", [vault, out_list], {
        // SAFETY: a live handle and a valid out-pointer (header contract).
        let vault = unsafe { vault_ref(vault) };
        let accounts = vault
            .list_accounts()?
            .into_iter()
            .map(|a| {
                CString::new(a).map_err(|_| VaultError::Internal {
                    reason: "an account id contains NUL".into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let list = Box::into_raw(Box::new(tv_account_list { accounts }));
        unsafe { out_list.write(list) };
        Ok(())
    })
}

/// The number of accounts in `list`.
///
/// Ownership: borrows `list`. Thread-safe (the list is immutable).
#[no_mangle]
pub unsafe extern "C" fn tv_account_list_count(list: *const tv_account_list, out_count: *mut usize) -> tv_status {
    boundary!("tv_account_list_count", [list, out_count], {
        // SAFETY: a live list and a valid out-pointer (header contract).
        unsafe { out_count.write((*list).accounts.len()) };
        Ok(())
    })
}

/// The account at `index` (0-based, below the count), as a NUL-terminated UTF-8 string.
///
/// Ownership: `*out_account` is borrowed from `list` and valid until `tv_account_list_free`.
/// Thread-safe (the list is immutable).
#[no_mangle]
pub unsafe extern "C" fn tv_account_list_get(
    list: *const tv_account_list,
    index: usize,
    out_account: *mut *const c_char,
) -> tv_status {
    boundary!("tv_account_list_get", [list, out_account], {
        // SAFETY: a live list and a valid out-pointer (header contract).
        let list = unsafe { &*list };
        let account = list.accounts.get(index).ok_or_else(|| {
            invalid(format!(
                "index {index} is out of range ({} accounts)",
                list.accounts.len()
            ))
        })?;
        unsafe { out_account.write(account.as_ptr()) };
        Ok(())
    })
}

/// Release an account list. `list` may be NULL.
///
/// Ownership: takes `list`; it and the strings it handed out are invalid afterwards. Call it
/// when no other call on the same list is running.
#[no_mangle]
pub unsafe extern "C" fn tv_account_list_free(list: *mut tv_account_list) {
    boundary!(infallible "tv_account_list_free", (), {
        if !list.is_null() {
            // SAFETY: the pointer came from `Box::into_raw` and is freed once (header contract).
            drop(unsafe { Box::from_raw(list) });
        }
    })
}

/// Remove an account's session (logout). A refresh in flight for it is discarded when it lands.
/// `*out_existed` (optional, may be NULL) receives 1 if a session existed, else 0.
///
/// Ownership: borrows its arguments. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_remove(
    vault: *const tv_vault,
    account: *const c_char,
    out_existed: *mut u8,
) -> tv_status {
    boundary!("tv_vault_remove", [vault, account], {
        // SAFETY: a live handle, a NUL-terminated string, NULL or a valid out-pointer.
        let vault = unsafe { vault_ref(vault) };
        let account = unsafe { utf8_arg(account, "account") }?;
        let existed = vault.remove(account)?;
        if !out_existed.is_null() {
            unsafe { out_existed.write(u8::from(existed)) };
        }
        Ok(())
    })
}

/// Sign out at the server too: remove the session as `tv_vault_remove` does, and revoke its
/// refresh credential at the profile's RFC 7009 endpoint (`keycloak` preset, or a profile with
/// `revocation_url`; seeds 000–002 have none: local removal only). The local removal comes
/// first, with the revocation queued durably in the same transaction; the request is sent in
/// the background (this call never waits for the network), and what cannot be sent now stays
/// queued and is sent later (after a successful refresh, when a profile or transport is set, or
/// by `tv_vault_send_revocations`). `*out_existed` as in `tv_vault_remove`.
///
/// Ownership: borrows its arguments. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_remove_and_revoke(
    vault: *const tv_vault,
    account: *const c_char,
    out_existed: *mut u8,
) -> tv_status {
    boundary!("tv_vault_remove_and_revoke", [vault, account], {
        // SAFETY: a live handle, a NUL-terminated string, NULL or a valid out-pointer.
        let vault = unsafe { vault_ref(vault) };
        let account = unsafe { utf8_arg(account, "account") }?;
        let existed = vault.remove_and_revoke(account)?;
        if !out_existed.is_null() {
            unsafe { out_existed.write(u8::from(existed)) };
        }
        Ok(())
    })
}

/// The revocations still to be sent, as JSON:
/// `{"pending":[{"account":…,"profile":…,"queued_at_ms":…,"attempts":…}],"dropped":n}` (oldest
/// first; `dropped` counts revocations ever dropped because the queue was full).
///
/// Ownership: on success `*out_json` receives a buffer owned by the caller: release it with
/// `tv_buf_free`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_pending_revocations_json(vault: *const tv_vault, out_json: *mut tv_buf) -> tv_status {
    boundary!("tv_vault_pending_revocations_json", [vault, out_json], {
        // SAFETY: a live handle and a valid out-pointer (header contract).
        let vault = unsafe { vault_ref(vault) };
        let q = vault.pending_revocations()?;
        let text = serde_json::json!({
            "pending": q.pending.iter().map(|p| serde_json::json!({
                "account": p.account,
                "profile": p.profile,
                "queued_at_ms": p.queued_at_ms,
                "attempts": p.attempts,
            })).collect::<Vec<_>>(),
            "dropped": q.dropped,
        })
        .to_string();
        unsafe { out_json.write(tv_buf::from_bytes(text.as_bytes())) };
        Ok(())
    })
}

/// Send the queued revocations now, on this thread (blocking on the network). `*out_revoked`
/// (optional, may be NULL) receives how many the server confirmed, `*out_pending` (optional)
/// how many are still queued (offline, a 5xx, their profile not registered). A revocation the
/// server refuses (a 4xx) is dropped.
///
/// Ownership: borrows its arguments. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_send_revocations(
    vault: *const tv_vault,
    out_revoked: *mut usize,
    out_pending: *mut usize,
) -> tv_status {
    boundary!("tv_vault_send_revocations", [vault], {
        // SAFETY: a live handle; NULL or valid out-pointers (header contract).
        let vault = unsafe { vault_ref(vault) };
        let r = vault.send_revocations()?;
        if !out_revoked.is_null() {
            unsafe { out_revoked.write(r.revoked) };
        }
        if !out_pending.is_null() {
            unsafe { out_pending.write(r.retry_later + r.waiting_for_profile) };
        }
        Ok(())
    })
}

/// Move an account's session to the profile `profile` and to that profile's endpoint. A
/// session's refresh credential is only sent to the origin (scheme, host, port) it was stored
/// with: after a profile was registered again with another endpoint, refreshing it gives
/// `TV_INVALID_INPUT` (nothing is sent) until the host calls this. Durable when it returns.
///
/// Ownership: borrows its arguments. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_move_session(
    vault: *const tv_vault,
    account: *const c_char,
    profile: *const c_char,
) -> tv_status {
    boundary!("tv_vault_move_session", [vault, account, profile], {
        // SAFETY: a live handle and NUL-terminated strings (header contract).
        let vault = unsafe { vault_ref(vault) };
        let account = unsafe { utf8_arg(account, "account") }?;
        let profile = unsafe { utf8_arg(profile, "profile") }?;
        vault.move_session(account, profile).map(|_| ())
    })
}

/// Replace the vault's key and its data key: every record is re-sealed under a new data key in
/// one transaction and the log truncated, so nothing sealed under the old data key remains in
/// the file or its `-wal`. The key the vault was opened with keeps opening it until the first
/// successful open with the new key (a host that crashed before saving the new key is not
/// locked out). The host's sequence: keep the old key, save the new key beside it, rekey,
/// reopen with the new key, then delete the old key. Other handles on the file get
/// `TV_WRONG_KEY` until reopened with the new key.
///
/// Ownership: `key` is borrowed for the call. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_rekey_with_key(vault: *const tv_vault, key: *const u8, key_len: usize) -> tv_status {
    boundary!("tv_vault_rekey_with_key", [vault, key], {
        // SAFETY: a live handle and `key_len` readable bytes (header contract).
        let vault = unsafe { vault_ref(vault) };
        let key = KeySource::raw(unsafe { bytes_arg(key, key_len, "key") }?)?;
        vault.rekey(key)
    })
}

/// `tv_vault_rekey_with_key` with a new passphrase (UTF-8, non-empty).
///
/// Ownership: `passphrase` is borrowed for the call. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_rekey_with_passphrase(
    vault: *const tv_vault,
    passphrase: *const c_char,
) -> tv_status {
    boundary!("tv_vault_rekey_with_passphrase", [vault, passphrase], {
        // SAFETY: a live handle and a NUL-terminated string (header contract).
        let vault = unsafe { vault_ref(vault) };
        let key = KeySource::passphrase(unsafe { utf8_arg(passphrase, "passphrase") }?)?;
        vault.rekey(key)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::ffi::{CStr, CString};
    use std::ptr::{null, null_mut};

    use super::*;

    fn temp_db(name: &str) -> (std::path::PathBuf, CString) {
        let dir = std::env::temp_dir().join(format!("tokenvault-ffi-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = CString::new(dir.join("v.db").to_str().unwrap()).unwrap();
        (dir, path)
    }

    #[test]
    fn store_read_copy_and_close_through_the_c_functions() {
        let (dir, path) = temp_db("cycle");
        let key = [3u8; 32];
        let mut v: *mut tv_vault = null_mut();
        unsafe {
            assert_eq!(
                tv_vault_open_with_key(path.as_ptr(), key.as_ptr(), 32, &mut v),
                tv_status::TV_OK
            );
            let profile = c"{\"preset\":\"oauth2\",\"name\":\"p\",\"url\":\"https://a.example/token\"}";
            assert_eq!(tv_vault_load_profile_json(v, profile.as_ptr()), tv_status::TV_OK);

            let mut params: tv_session_params = std::mem::zeroed();
            params.struct_size = std::mem::size_of::<tv_session_params>() as u32;
            params.account = c"ada".as_ptr();
            params.profile = c"p".as_ptr();
            params.access_token = c"access-1".as_ptr();
            params.refresh_credential = c"refresh-1".as_ptr();
            params.expires_in_secs = 3600;
            let mut info: tv_session_info = std::mem::zeroed();
            info.struct_size = std::mem::size_of::<tv_session_info>() as u32;
            assert_eq!(tv_vault_store(v, &params, &mut info), tv_status::TV_OK);
            assert_eq!(info.state, tv_session_state::TV_SESSION_FRESH);
            assert_eq!(info.has_refresh_credential, 1);

            let mut buf = [0 as c_char; 64];
            let (mut len, mut generation) = (0usize, 0u64);
            let st = tv_vault_access_token_copy(v, c"ada".as_ptr(), 0, buf.as_mut_ptr(), 64, &mut len, &mut generation);
            assert_eq!(st, tv_status::TV_OK);
            assert_eq!(CStr::from_ptr(buf.as_ptr()).to_bytes(), b"access-1");
            assert_eq!((len, generation), (8, info.generation));
            // Too small: the needed length, nothing written.
            let mut small = [0x55 as c_char; 8];
            let st = tv_vault_access_token_copy(v, c"ada".as_ptr(), 0, small.as_mut_ptr(), 8, &mut len, null_mut());
            assert_eq!((st, len), (tv_status::TV_INVALID_INPUT, 8));
            assert_eq!(small, [0x55 as c_char; 8]);
            // NULL and invalid UTF-8.
            let bad = [0xffu8 as c_char, 0];
            let st = tv_vault_access_token_copy(v, bad.as_ptr(), 0, buf.as_mut_ptr(), 64, &mut len, null_mut());
            assert_eq!(st, tv_status::TV_INVALID_INPUT);
            let st = tv_vault_access_token_copy(v, null(), 0, buf.as_mut_ptr(), 64, &mut len, null_mut());
            assert_eq!(st, tv_status::TV_INVALID_INPUT);

            let mut token = tv_buf {
                data: null_mut(),
                len: 0,
            };
            assert_eq!(
                tv_vault_access_token(v, c"ada".as_ptr(), 0, &mut token, null_mut()),
                tv_status::TV_OK
            );
            assert_eq!(CStr::from_ptr(token.data).to_bytes(), b"access-1");
            crate::c_api::tv_buf_free(&mut token);

            // Unchanged: nothing handed out; changed (an unknown generation): the token.
            let (mut changed, mut g) = (9u8, 0u64);
            let st = tv_vault_token_if_changed(v, c"ada".as_ptr(), 0, generation, &mut token, &mut g, &mut changed);
            assert_eq!((st, changed, g), (tv_status::TV_OK, 0, generation));
            assert!(token.data.is_null());
            let st = tv_vault_token_if_changed(v, c"ada".as_ptr(), 0, 0, &mut token, &mut g, &mut changed);
            assert_eq!((st, changed, g), (tv_status::TV_OK, 1, generation));
            assert_eq!(CStr::from_ptr(token.data).to_bytes(), b"access-1");
            crate::c_api::tv_buf_free(&mut token);
            let st = tv_vault_token_if_changed(v, c"ada".as_ptr(), 0, 0, &mut token, null_mut(), &mut changed);
            assert_eq!(st, tv_status::TV_INVALID_INPUT);

            assert_eq!(tv_vault_close(v), tv_status::TV_OK);
            let st = tv_vault_access_token_copy(v, c"ada".as_ptr(), 0, buf.as_mut_ptr(), 64, &mut len, null_mut());
            assert_eq!(st, tv_status::TV_CLOSED);
            tv_vault_free(v);

            let wrong = [4u8; 32];
            let mut w: *mut tv_vault = null_mut();
            let st = tv_vault_open_with_key(path.as_ptr(), wrong.as_ptr(), 32, &mut w);
            assert_eq!(st, tv_status::TV_WRONG_KEY);
            assert!(w.is_null());
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
