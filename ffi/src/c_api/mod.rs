//! The C ABI: `tv_*` functions over an opaque [`tv_vault`] handle.
//!
//! The contract every function follows is written once, in the header's preamble
//! (`ffi/cbindgen.toml`) and ADR 0006: fallible functions return a [`tv_status`]; results go
//! through trailing out-parameters written only on success; required pointers are checked for
//! NULL; strings are NUL-terminated UTF-8; whatever Rust allocates is freed by a `tv_*_free`
//! function that accepts NULL and zeroes secret bytes; no panic crosses the boundary.
//!
//! Modules: this file (status codes, buffers, version, last error, the panic test export),
//! [`vault`] (open, sessions, tokens), [`refresh`] (HTTP requests, the two-step refresh, the
//! transport callback), [`events`] (the event callback).

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // The safety contract is the header preamble (ADR 0006).

use std::ffi::c_char;

use tokenvault::ErrorCode;

use crate::boundary;

// In this order in the header: the vault, then host-driven HTTP, then events, then anchors,
// then open options, metrics and logs.
pub mod vault;
//
pub mod refresh;
//
pub mod events;
//
pub mod anchor;
//
pub mod observe;

/// Status of every fallible `tv_` function. `TV_OK` is 0; the other numbers are tokenvault's
/// error taxonomy (`tokenvault::ErrorCode`), shared with the Kotlin, Swift and C# surfaces, and
/// never change once released.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tv_status {
    /// Success.
    TV_OK = 0,
    /// The session can no longer be refreshed: the user must sign in again.
    TV_REAUTHENTICATION_REQUIRED = 1,
    /// Network failure, timeout, 408, 5xx, captive portal: try later; the session lives on.
    TV_TRANSIENT = 2,
    /// The server asked to slow down (429).
    TV_THROTTLED = 3,
    /// The database file could not be opened, locked or written.
    TV_STORAGE_UNAVAILABLE = 4,
    /// The key or passphrase does not open this vault. Nothing was written.
    TV_WRONG_KEY = 5,
    /// A record or the file failed its integrity check. Nothing was altered or deleted.
    TV_CORRUPT = 6,
    /// No session is stored for that account.
    TV_NOT_FOUND = 7,
    /// Invalid argument: NULL, invalid UTF-8, bad profile, empty token, or a caller buffer too
    /// small (then the needed length is reported, see `tv_vault_access_token_copy`).
    TV_INVALID_INPUT = 8,
    /// The server answered with something the profile cannot interpret.
    TV_PROTOCOL = 9,
    /// A bug in tokenvault: an internal invariant broke or a panic was caught at the boundary.
    TV_INTERNAL = 10,
    /// The file was written by a newer tokenvault; it was left untouched.
    TV_SCHEMA_TOO_NEW = 11,
    /// An earlier refresh was sent and its answer lost; the server may have consumed the
    /// refresh credential.
    TV_REFRESH_OUTCOME_UNKNOWN = 12,
    /// The vault was closed (`tv_vault_close`).
    TV_CLOSED = 13,
}

impl tv_status {
    /// The status carrying the same number as `code` (the one conversion point).
    pub(crate) fn from_code(code: ErrorCode) -> tv_status {
        match code {
            ErrorCode::Ok => tv_status::TV_OK,
            ErrorCode::ReauthenticationRequired => tv_status::TV_REAUTHENTICATION_REQUIRED,
            ErrorCode::Transient => tv_status::TV_TRANSIENT,
            ErrorCode::Throttled => tv_status::TV_THROTTLED,
            ErrorCode::StorageUnavailable => tv_status::TV_STORAGE_UNAVAILABLE,
            ErrorCode::WrongKey => tv_status::TV_WRONG_KEY,
            ErrorCode::Corrupt => tv_status::TV_CORRUPT,
            ErrorCode::NotFound => tv_status::TV_NOT_FOUND,
            ErrorCode::InvalidInput => tv_status::TV_INVALID_INPUT,
            ErrorCode::Protocol => tv_status::TV_PROTOCOL,
            ErrorCode::Internal => tv_status::TV_INTERNAL,
            ErrorCode::SchemaTooNew => tv_status::TV_SCHEMA_TOO_NEW,
            ErrorCode::RefreshOutcomeUnknown => tv_status::TV_REFRESH_OUTCOME_UNKNOWN,
            ErrorCode::Closed => tv_status::TV_CLOSED,
        }
    }
}

/// A Rust-owned, NUL-terminated byte string (a token, or JSON text).
///
/// `data` points to `len` bytes followed by a NUL byte; it is NULL only in a buffer that was
/// never filled or was already freed. Free it with `tv_buf_free`, which zeroes the bytes; do not
/// change `data` or `len` before that.
#[repr(C)]
#[derive(Debug)]
pub struct tv_buf {
    /// The bytes, followed by a NUL byte.
    pub data: *mut c_char,
    /// Length in bytes, without the trailing NUL.
    pub len: usize,
}

impl tv_buf {
    /// A buffer owning a copy of `text`.
    pub(crate) fn from_bytes(text: &[u8]) -> tv_buf {
        tv_buf {
            data: boundary::into_raw_text(text),
            len: text.len(),
        }
    }
}

/// The library's version, e.g. `"0.1.0"`.
///
/// Ownership: a static string; never free it. Thread-safe.
#[no_mangle]
pub extern "C" fn tv_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// A stable lower-case name for a status, e.g. `"wrong_key"` for `TV_WRONG_KEY`, and
/// `"unknown"` for a number that is no status.
///
/// Ownership: a static string; never free it. Thread-safe.
#[no_mangle]
pub extern "C" fn tv_status_name(status: i32) -> *const c_char {
    boundary!(infallible "tv_status_name", c"unknown".as_ptr(), {
        status_name(status).as_ptr()
    })
}

fn status_name(status: i32) -> &'static std::ffi::CStr {
    match ErrorCode::from_i32(status) {
        None => c"unknown",
        Some(code) => match tv_status::from_code(code) {
            tv_status::TV_OK => c"ok",
            tv_status::TV_REAUTHENTICATION_REQUIRED => c"reauthentication_required",
            tv_status::TV_TRANSIENT => c"transient",
            tv_status::TV_THROTTLED => c"throttled",
            tv_status::TV_STORAGE_UNAVAILABLE => c"storage_unavailable",
            tv_status::TV_WRONG_KEY => c"wrong_key",
            tv_status::TV_CORRUPT => c"corrupt",
            tv_status::TV_NOT_FOUND => c"not_found",
            tv_status::TV_INVALID_INPUT => c"invalid_input",
            tv_status::TV_PROTOCOL => c"protocol",
            tv_status::TV_INTERNAL => c"internal",
            tv_status::TV_SCHEMA_TOO_NEW => c"schema_too_new",
            tv_status::TV_REFRESH_OUTCOME_UNKNOWN => c"refresh_outcome_unknown",
            tv_status::TV_CLOSED => c"closed",
        },
    }
}

/// Copy the message of the most recent failed `tv_` call on this thread into `buf`, with a
/// NUL terminator, and its length (without the NUL) into `*out_len`. The message never
/// contains a token, key, passphrase or account id. It is empty if no call failed yet;
/// successful calls leave it unchanged. This function never changes it.
///
/// If `buf_len` is less than the length plus one, nothing is copied, `*out_len` receives the
/// length and `TV_INVALID_INPUT` is returned (`buf` may be NULL when `buf_len` is 0).
///
/// Ownership: `buf` is the caller's. Thread-safe (the message is per thread).
#[no_mangle]
pub unsafe extern "C" fn tv_last_error_message(buf: *mut c_char, buf_len: usize, out_len: *mut usize) -> tv_status {
    boundary!(quiet "tv_last_error_message", [out_len], {
        let message = boundary::last_error();
        // SAFETY: `buf` has `buf_len` writable bytes and `out_len` is valid (header contract).
        unsafe { copy_out(message.as_bytes(), buf, buf_len, out_len) }
    })
}

/// Copy `text` and a NUL into `buf` and its length into `*out_len`; when it does not fit, only
/// `*out_len` is written and the error is `InvalidInput`.
///
/// # Safety
/// `buf` has `buf_len` writable bytes (or `buf_len` is 0); `out_len` is valid for writes.
#[inline]
pub(crate) unsafe fn copy_out(
    text: &[u8],
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> Result<(), tokenvault::VaultError> {
    if text.len() >= buf_len || buf.is_null() {
        // SAFETY: `out_len` is valid per the caller's contract.
        unsafe { out_len.write(text.len()) };
        return Err(buffer_too_small(text.len()));
    }
    // SAFETY: `buf` has room for `text.len() + 1` bytes (checked above); the regions are
    // distinct (ours is Rust-owned).
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        buf.add(text.len()).write(0);
        out_len.write(text.len());
    }
    Ok(())
}

#[cold]
fn buffer_too_small(needed: usize) -> tokenvault::VaultError {
    boundary::invalid(format!(
        "the buffer is too small: {needed} bytes plus a NUL are needed (written to out_len)"
    ))
}

/// Free a buffer returned by a `tv_` function: its bytes are overwritten with zeros, then
/// released, and `buf->data` / `buf->len` are reset to NULL / 0 (so a second call is
/// harmless). `buf` may be NULL, and `buf->data` may be NULL.
///
/// The library keeps each buffer's true length next to its bytes and frees by that length:
/// a `buf->len` changed by the caller is ignored (the whole block is still zeroed and freed)
/// and recorded as this thread's last error message. A `buf->data` the library did not hand
/// out (or already freed) cannot be made safe; when its hidden marker is missing it is left
/// alone and reported the same way.
///
/// Ownership: takes back what the library allocated; `buf` itself stays the caller's.
/// Thread-safe for distinct buffers.
#[no_mangle]
pub unsafe extern "C" fn tv_buf_free(buf: *mut tv_buf) {
    boundary!(infallible "tv_buf_free", (), {
        if buf.is_null() {
            return;
        }
        // SAFETY: `buf` points to a `tv_buf` filled by this library (header contract).
        let outcome = unsafe {
            let b = &mut *buf;
            let outcome = boundary::free_raw_text(b.data, b.len);
            b.data = std::ptr::null_mut();
            b.len = 0;
            outcome
        };
        match outcome {
            boundary::FreedText::Null | boundary::FreedText::Freed => {}
            boundary::FreedText::FreedLengthMismatch => boundary::set_last_error(
                "tv_buf_free: `buf->len` was not the buffer's length; the buffer was freed by its true length".to_owned(),
            ),
            boundary::FreedText::NotOurs => boundary::set_last_error(
                "tv_buf_free: `buf->data` is not a live buffer of this library; it was not freed".to_owned(),
            ),
        }
    })
}

/// Test-only: panics inside the boundary, to prove from C (and C#, Python) that a panic comes
/// back as `TV_INTERNAL` with a last-error message instead of aborting the process. Always
/// exported, so the library under test is the library shipped; never call it otherwise (it
/// prints a panic message to stderr).
///
/// Thread-safe.
#[no_mangle]
#[allow(clippy::panic)]
pub extern "C" fn tv_test_panic() -> tv_status {
    boundary!("tv_test_panic", [], {
        panic!("tv_test_panic: a deliberate panic inside the C boundary");
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    /// Every status, in numeric order: kept beside `ErrorCode::ALL` by the test below.
    const ALL_STATUSES: [tv_status; 14] = [
        tv_status::TV_OK,
        tv_status::TV_REAUTHENTICATION_REQUIRED,
        tv_status::TV_TRANSIENT,
        tv_status::TV_THROTTLED,
        tv_status::TV_STORAGE_UNAVAILABLE,
        tv_status::TV_WRONG_KEY,
        tv_status::TV_CORRUPT,
        tv_status::TV_NOT_FOUND,
        tv_status::TV_INVALID_INPUT,
        tv_status::TV_PROTOCOL,
        tv_status::TV_INTERNAL,
        tv_status::TV_SCHEMA_TOO_NEW,
        tv_status::TV_REFRESH_OUTCOME_UNKNOWN,
        tv_status::TV_CLOSED,
    ];

    #[test]
    fn status_numbers_and_names_agree_with_error_code() {
        assert_eq!(ALL_STATUSES.len(), ErrorCode::ALL.len());
        for (status, code) in ALL_STATUSES.iter().zip(ErrorCode::ALL) {
            assert_eq!(*status as i32, code.as_i32(), "{status:?} vs {code:?}");
            assert_eq!(tv_status::from_code(code), *status);
            let name = unsafe { CStr::from_ptr(tv_status_name(code.as_i32())) };
            assert_eq!(name.to_str().unwrap(), code.name());
        }
        let unknown = unsafe { CStr::from_ptr(tv_status_name(14)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown");
        assert_eq!(std::mem::size_of::<tv_status>(), 4);
    }

    fn last_error() -> String {
        let mut buf = [0 as c_char; 512];
        let mut len = 0usize;
        let st = unsafe { tv_last_error_message(buf.as_mut_ptr(), buf.len(), &mut len) };
        assert_eq!(st, tv_status::TV_OK);
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn a_panic_comes_back_as_internal() {
        assert_eq!(tv_test_panic(), tv_status::TV_INTERNAL);
        let msg = last_error();
        assert!(msg.contains("tv_test_panic") && msg.contains("panic"), "{msg}");
        assert!(!msg.contains("deliberate"), "the payload must not leak: {msg}");
    }

    #[test]
    fn last_error_reports_the_needed_length_and_keeps_the_message() {
        assert_eq!(tv_test_panic(), tv_status::TV_INTERNAL);
        let full = last_error();
        let mut len = 0usize;
        let st = unsafe { tv_last_error_message(std::ptr::null_mut(), 0, &mut len) };
        assert_eq!(st, tv_status::TV_INVALID_INPUT);
        assert_eq!(len, full.len());
        let mut small = [0x55 as c_char; 4];
        let st = unsafe { tv_last_error_message(small.as_mut_ptr(), small.len(), &mut len) };
        assert_eq!(st, tv_status::TV_INVALID_INPUT);
        assert_eq!(small, [0x55 as c_char; 4], "nothing is written on failure");
        assert_eq!(last_error(), full, "reading the message does not change it");
        let st = unsafe { tv_last_error_message(small.as_mut_ptr(), small.len(), std::ptr::null_mut()) };
        assert_eq!(st, tv_status::TV_INVALID_INPUT);
        assert_eq!(last_error(), full);
    }

    #[test]
    fn buf_free_zeroes_and_accepts_null() {
        unsafe { tv_buf_free(std::ptr::null_mut()) };
        let mut b = tv_buf::from_bytes(b"secret");
        assert_eq!(unsafe { CStr::from_ptr(b.data) }.to_bytes(), b"secret");
        unsafe { tv_buf_free(&mut b) };
        assert!(b.data.is_null());
        assert_eq!(b.len, 0);
        unsafe { tv_buf_free(&mut b) };
    }

    /// A caller that changes `len` (shorter, longer, absurd) before freeing still gets the
    /// whole block zeroed and freed by its true length, and a message saying so; under
    /// Miri/ASan/valgrind a length-trusting free would be a mismatched deallocation.
    #[test]
    fn buf_free_ignores_a_wrong_length() {
        for wrong in [0usize, 3, 7, 1 << 20, usize::MAX] {
            let mut b = tv_buf::from_bytes(b"secret-token");
            b.len = wrong;
            crate::boundary::set_last_error(String::new());
            unsafe { tv_buf_free(&mut b) };
            assert!(b.data.is_null());
            assert_eq!(b.len, 0);
            let msg = crate::boundary::last_error();
            assert!(msg.contains("true length"), "{wrong}: {msg}");
        }
        // The right length leaves no message.
        let mut b = tv_buf::from_bytes(b"secret-token");
        crate::boundary::set_last_error(String::new());
        unsafe { tv_buf_free(&mut b) };
        assert_eq!(crate::boundary::last_error(), "");
        // An empty text is a real block too.
        let mut e = tv_buf::from_bytes(b"");
        assert!(!e.data.is_null());
        e.len = 5;
        unsafe { tv_buf_free(&mut e) };
        assert!(e.data.is_null());
    }

    /// The bytes are zeroed before they are released, wherever `len` points.
    #[test]
    fn free_raw_text_zeroes_the_whole_block() {
        let p = crate::boundary::into_raw_text(b"abcdef");
        assert_eq!(
            unsafe { crate::boundary::free_raw_text(p, 2) },
            crate::boundary::FreedText::FreedLengthMismatch
        );
        let p = crate::boundary::into_raw_text(b"abcdef");
        assert_eq!(
            unsafe { crate::boundary::free_raw_text(p, 6) },
            crate::boundary::FreedText::Freed
        );
        assert_eq!(
            unsafe { crate::boundary::free_raw_text(std::ptr::null_mut(), 6) },
            crate::boundary::FreedText::Null
        );
    }

    #[test]
    fn version_is_the_crate_version() {
        let v = unsafe { CStr::from_ptr(tv_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
