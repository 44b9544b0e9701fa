//! The boundary every `extern "C"` function goes through.
//!
//! [`boundary!`](crate::boundary) is the one macro that wraps each exported body: it checks the
//! required pointers for NULL, runs the body under `catch_unwind` (since Rust 1.81 a panic
//! unwinding out of an `extern "C"` function aborts the host), maps the result onto
//! [`tv_status`], and records a message for `tv_last_error_message`. Its helpers below turn raw
//! arguments into Rust values (UTF-8 checked) and hand out Rust-owned buffers that are zeroed
//! when freed.
//!
//! Messages come from [`VaultError`]'s `Display`, which the core keeps free of tokens, keys and
//! account ids; the boundary adds only function and argument names. A caught panic's payload is
//! never shown (it could quote anything).

use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use tokenvault::VaultError;

use crate::c_api::tv_status;

thread_local! {
    /// The message of the most recent failed call on this thread.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Record `message` as this thread's last error. Never panics (not even during thread exit).
pub(crate) fn set_last_error(message: String) {
    let _ = LAST_ERROR.try_with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = message;
        }
    });
}

/// A copy of this thread's last error message (empty if none).
pub(crate) fn last_error() -> String {
    LAST_ERROR
        .try_with(|cell| cell.try_borrow().map(|s| s.clone()).unwrap_or_default())
        .unwrap_or_default()
}

/// The status and message for a NULL where a pointer is required.
#[cold]
pub(crate) fn null_argument(function: &'static str, argument: &'static str, record: bool) -> tv_status {
    if record {
        set_last_error(format!("invalid input: {function}: `{argument}` is NULL"));
    }
    tv_status::TV_INVALID_INPUT
}

#[cold]
fn record_error(function: &'static str, err: &VaultError) -> tv_status {
    set_last_error(format!("{function}: {err}"));
    tv_status::from_code(err.code())
}

/// The message of a caught panic, on every surface. The payload is never shown: it could quote
/// anything.
pub(crate) const PANIC_MESSAGE: &str = "a panic was caught at the boundary (a bug in tokenvault)";

/// The one panic boundary of both surfaces (the C ABI, uniffi and the generation probe): run
/// `body`, and turn a panic into [`VaultError::Internal`]. Nothing else is decided here.
#[inline(always)]
pub(crate) fn catch<T>(body: impl FnOnce() -> Result<T, VaultError>) -> Result<T, VaultError> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            // Dropping a payload can itself panic; never let that escape either.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            Err(VaultError::Internal {
                reason: PANIC_MESSAGE.to_owned(),
            })
        }
    }
}

/// Run a fallible body: panics become `TV_INTERNAL`, errors their status, both recorded as the
/// thread's last error unless `record` is false.
#[inline(always)]
pub(crate) fn run(function: &'static str, record: bool, body: impl FnOnce() -> Result<(), VaultError>) -> tv_status {
    match catch(body) {
        Ok(()) => tv_status::TV_OK,
        Err(err) if record => record_error(function, &err),
        Err(err) => tv_status::from_code(err.code()),
    }
}

/// Run an infallible body (free functions, getters of static data): a panic yields `fallback`.
#[inline(always)]
pub(crate) fn run_infallible<T>(function: &'static str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch(|| Ok(body())) {
        Ok(v) => v,
        Err(err) => {
            record_error(function, &err);
            fallback
        }
    }
}

/// The one boundary of every exported function.
///
/// ```ignore
/// boundary!("tv_fn", [required_ptr_a, required_ptr_b], { ...; Ok(()) })      // -> tv_status
/// boundary!(quiet "tv_fn", [ptrs], { ... })  // same, but never touches the last error
/// boundary!(infallible "tv_fn", fallback, { ... })  // -> T; a panic returns `fallback`
/// ```
///
/// Pointers listed in brackets are required: NULL returns `TV_INVALID_INPUT` before the body
/// runs. The body is a block evaluating to `Result<(), VaultError>`; it writes its outputs
/// itself, last, so they are written only on success.
macro_rules! boundary {
    (infallible $name:literal, $fallback:expr, $body:block) => {
        $crate::boundary::run_infallible($name, $fallback, || $body)
    };
    (quiet $name:literal, [$($ptr:ident),* $(,)?], $body:block) => {{
        $(
            if $ptr.is_null() {
                return $crate::boundary::null_argument($name, stringify!($ptr), false);
            }
        )*
        $crate::boundary::run($name, false, || -> ::std::result::Result<(), ::tokenvault::VaultError> { $body })
    }};
    ($name:literal, [$($ptr:ident),* $(,)?], $body:block) => {{
        $(
            if $ptr.is_null() {
                return $crate::boundary::null_argument($name, stringify!($ptr), true);
            }
        )*
        $crate::boundary::run($name, true, || -> ::std::result::Result<(), ::tokenvault::VaultError> { $body })
    }};
}

/// An `InvalidInput` error naming the argument (never its value).
#[cold]
pub(crate) fn invalid(reason: impl Into<String>) -> VaultError {
    VaultError::InvalidInput { reason: reason.into() }
}

/// A required, NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is non-NULL and points to a NUL-terminated string that outlives `'a`.
#[inline]
pub(crate) unsafe fn utf8_arg<'a>(ptr: *const c_char, argument: &'static str) -> Result<&'a str, VaultError> {
    if ptr.is_null() {
        return Err(invalid(format!("`{argument}` is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let cstr = unsafe { CStr::from_ptr(ptr) };
    cstr.to_str()
        .map_err(|_| invalid(format!("`{argument}` is not valid UTF-8")))
}

/// An optional string argument: NULL is `None`.
///
/// # Safety
/// As [`utf8_arg`] when non-NULL.
#[inline]
pub(crate) unsafe fn optional_utf8_arg<'a>(
    ptr: *const c_char,
    argument: &'static str,
) -> Result<Option<&'a str>, VaultError> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { utf8_arg(ptr, argument) }.map(Some)
    }
}

/// A byte-slice argument: `ptr` may be NULL only when `len` is 0.
///
/// # Safety
/// When `len > 0`, `ptr` points to `len` readable bytes that outlive `'a`.
#[inline]
pub(crate) unsafe fn bytes_arg<'a>(ptr: *const u8, len: usize, argument: &'static str) -> Result<&'a [u8], VaultError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(invalid(format!("`{argument}` is NULL with a non-zero length")));
    }
    // SAFETY: non-NULL, `len` readable bytes per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Overwrite memory with zeros in a way the optimizer keeps (measured here: `fill(0)` plus a
/// barrier costs ~9 ns for 900 B where `zeroize`'s byte loop costs ~115 ns).
pub(crate) fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    zeroize::optimization_barrier(&*bytes);
}

/// `text` as a NUL-terminated, Rust-owned heap block of `len + 1` bytes (see `tv_buf`).
pub(crate) fn into_raw_text(text: &[u8]) -> *mut c_char {
    let mut v = Vec::with_capacity(text.len() + 1);
    v.extend_from_slice(text);
    v.push(0);
    Box::into_raw(v.into_boxed_slice()).cast::<c_char>()
}

/// Free (after zeroing) a block made by [`into_raw_text`] for a text of `len` bytes.
///
/// # Safety
/// `ptr` came from `into_raw_text` with a text of exactly `len` bytes and is not used again.
pub(crate) unsafe fn free_raw_text(ptr: *mut c_char, len: usize) {
    if ptr.is_null() {
        return;
    }
    let slice = std::ptr::slice_from_raw_parts_mut(ptr.cast::<u8>(), len + 1);
    // SAFETY: the block was a `Box<[u8]>` of `len + 1` bytes, per the caller's contract.
    let mut block = unsafe { Box::from_raw(slice) };
    wipe(&mut block);
}
