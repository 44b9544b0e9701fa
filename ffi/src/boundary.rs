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

/// The hidden header in front of every block [`into_raw_text`] hands out: a magic word and the
/// text's true length, so freeing never depends on the length the caller passes back.
#[repr(C)]
struct TextHeader {
    magic: u64,
    len: usize,
}

/// Marks a live block (an arbitrary constant; zeroed when the block is freed).
const TEXT_MAGIC: u64 = 0x7476_6275_665f_6f6b;
const HEADER: usize = std::mem::size_of::<TextHeader>();

fn text_layout(len: usize) -> Option<std::alloc::Layout> {
    let size = HEADER.checked_add(len)?.checked_add(1)?;
    std::alloc::Layout::from_size_align(size, std::mem::align_of::<TextHeader>()).ok()
}

/// `text` as a NUL-terminated, Rust-owned heap block (see `tv_buf`): the returned pointer is to
/// the text, preceded by a hidden header holding its length. NULL only if the allocation is
/// impossible (a length near `usize::MAX`); an allocation failure aborts as everywhere in Rust.
pub(crate) fn into_raw_text(text: &[u8]) -> *mut c_char {
    let Some(layout) = text_layout(text.len()) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size (at least the header and the NUL).
    let block = unsafe { std::alloc::alloc(layout) };
    if block.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `block` is a fresh allocation of HEADER + len + 1 bytes, aligned for the header.
    unsafe {
        block.cast::<TextHeader>().write(TextHeader {
            magic: TEXT_MAGIC,
            len: text.len(),
        });
        let data = block.add(HEADER);
        std::ptr::copy_nonoverlapping(text.as_ptr(), data, text.len());
        data.add(text.len()).write(0);
        data.cast::<c_char>()
    }
}

/// What [`free_raw_text`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FreedText {
    /// Nothing to free (NULL).
    Null,
    /// Freed; the caller's length matched.
    Freed,
    /// Freed with the stored length; the caller's length was wrong (and ignored).
    FreedLengthMismatch,
    /// Not a live block of this library (no header magic): left alone rather than freed.
    NotOurs,
}

/// Zero and free a block made by [`into_raw_text`]. The length comes from the block's own
/// header; `caller_len` is only compared with it.
///
/// # Safety
/// `ptr` is NULL or a pointer returned by `into_raw_text` that has not been freed yet.
pub(crate) unsafe fn free_raw_text(ptr: *mut c_char, caller_len: usize) -> FreedText {
    if ptr.is_null() {
        return FreedText::Null;
    }
    // SAFETY: a pointer from `into_raw_text` is HEADER bytes into its block (caller contract).
    let block = unsafe { ptr.cast::<u8>().sub(HEADER) };
    // SAFETY: the header was written by `into_raw_text` and is aligned.
    let header = unsafe { block.cast::<TextHeader>().read() };
    if header.magic != TEXT_MAGIC {
        return FreedText::NotOurs;
    }
    let Some(layout) = text_layout(header.len) else {
        return FreedText::NotOurs;
    };
    // SAFETY: the whole block is `layout.size()` bytes we own; zero it (header included, so a
    // stale pointer no longer carries the magic) and give it back with the layout it came from.
    unsafe {
        wipe(std::slice::from_raw_parts_mut(block, layout.size()));
        std::alloc::dealloc(block, layout);
    }
    if caller_len == header.len {
        FreedText::Freed
    } else {
        FreedText::FreedLengthMismatch
    }
}
