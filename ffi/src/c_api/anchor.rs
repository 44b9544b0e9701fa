//! The host anchor through the C ABI: a counter the host keeps outside the vault file (the
//! Keychain, Keystore-backed preferences, a file elsewhere), so that an old copy of the whole
//! vault file is recognised at open.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use tokenvault::{KeySource, StateAnchor, VaultError, VaultOptions};

use super::refresh::{tv_destroy_fn, UserData};
use super::tv_status;
use crate::boundary::{bytes_arg, invalid, utf8_arg};

/// Reads the anchor's counter. Return `TV_OK` and set `*out_present` to 1 and `*out_counter`
/// to the counter, or `*out_present` to 0 if none was ever stored (a new install). Any other
/// status fails the open with `TV_STORAGE_UNAVAILABLE`.
pub type tv_anchor_load_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, out_counter: *mut u64, out_present: *mut i32) -> i32>;

/// Keeps the anchor's counter (it only grows). Called after every write, on the writing
/// thread, while the vault's store is locked: keep it quick. A failure is logged and retried
/// after the next write.
pub type tv_anchor_store_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, counter: u64) -> i32>;

/// A host anchor (see `docs/SECURITY.md`). `struct_size` must be `sizeof(tv_anchor)` (later
/// versions may add fields after these). `load` and `store` are required; `destroy` (optional)
/// is called once with `user_data` when the vault no longer needs it (after `tv_vault_close`
/// or `tv_vault_free`). The callbacks may be called from any thread.
#[repr(C)]
#[derive(Debug)]
pub struct tv_anchor {
    /// `sizeof(tv_anchor)`.
    pub struct_size: usize,
    /// Reads the counter.
    pub load: tv_anchor_load_fn,
    /// Keeps the counter.
    pub store: tv_anchor_store_fn,
    /// Passed to every callback.
    pub user_data: *mut c_void,
    /// Releases `user_data` (may be NULL).
    pub destroy: tv_destroy_fn,
}

struct CallbackAnchor {
    load: unsafe extern "C" fn(*mut c_void, *mut u64, *mut i32) -> i32,
    store: unsafe extern "C" fn(*mut c_void, u64) -> i32,
    data: UserData,
}

impl std::fmt::Debug for CallbackAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackAnchor")
    }
}

impl StateAnchor for CallbackAnchor {
    fn load(&self) -> tokenvault::Result<Option<u64>> {
        let mut counter = 0u64;
        let mut present = 0i32;
        // SAFETY: the host's function with its own pointer and two valid out-pointers.
        let status = unsafe { (self.load)(self.data.ptr(), &mut counter, &mut present) };
        if status != tv_status::TV_OK as i32 {
            return Err(VaultError::StorageUnavailable {
                reason: format!("the host anchor could not be read (status {status})"),
            });
        }
        Ok((present != 0).then_some(counter))
    }

    fn store(&self, counter: u64) -> tokenvault::Result<()> {
        // SAFETY: the host's function with its own pointer.
        let status = unsafe { (self.store)(self.data.ptr(), counter) };
        if status != tv_status::TV_OK as i32 {
            return Err(VaultError::StorageUnavailable {
                reason: format!("the host anchor refused the counter (status {status})"),
            });
        }
        Ok(())
    }
}

/// The anchor described by `anchor`, and the closure that hands `user_data` to the library.
///
/// # Safety
/// `anchor` is non-NULL and points to a readable `tv_anchor` of at least `struct_size` bytes.
pub(crate) unsafe fn read_anchor(
    anchor: *const tv_anchor,
) -> Result<(Arc<dyn StateAnchor>, impl FnOnce()), VaultError> {
    // SAFETY: the size field comes first in every version of the struct.
    let size = unsafe { anchor.cast::<usize>().read() };
    if size < std::mem::size_of::<tv_anchor>() {
        return Err(invalid("`anchor->struct_size` is smaller than sizeof(tv_anchor)"));
    }
    // SAFETY: at least sizeof(tv_anchor) readable bytes (checked above, header contract).
    let a = unsafe { &*anchor };
    let (Some(load), Some(store)) = (a.load, a.store) else {
        return Err(invalid("`anchor->load` and `anchor->store` are required"));
    };
    let (data, take) = UserData::new(a.user_data, a.destroy);
    Ok((Arc::new(CallbackAnchor { load, store, data }), take))
}

fn open_anchored(
    path: &str,
    key: KeySource,
    anchor: *const tv_anchor,
    out_vault: *mut *mut super::vault::tv_vault,
) -> Result<(), VaultError> {
    // SAFETY: `anchor` was checked non-NULL by the boundary (header contract for the rest).
    let (anchor, take) = unsafe { read_anchor(anchor) }?;
    let options = VaultOptions {
        anchor: Some(anchor),
        ..VaultOptions::default()
    };
    super::vault::open_with(path, key, options, out_vault)?;
    take();
    Ok(())
}

/// `tv_vault_open_with_key` with a host anchor: a file whose manifest counter is lower than the
/// anchor's (an old copy of the whole vault) is refused with `TV_CORRUPT`, and the file is left
/// exactly as it was; an anchor that cannot be read gives `TV_STORAGE_UNAVAILABLE`.
///
/// Ownership: `path`, `key` and `anchor` are borrowed for the call; on success the library owns
/// `anchor->user_data` (released through `anchor->destroy`), on failure the caller keeps it.
/// On success `*out_vault` receives a new handle: release it with `tv_vault_free`.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_open_with_key_anchored(
    path: *const c_char,
    key: *const u8,
    key_len: usize,
    anchor: *const tv_anchor,
    out_vault: *mut *mut super::vault::tv_vault,
) -> tv_status {
    boundary!("tv_vault_open_with_key_anchored", [path, key, anchor, out_vault], {
        // SAFETY: non-NULL NUL-terminated string / `key_len` readable bytes (header contract).
        let path = unsafe { utf8_arg(path, "path") }?;
        let key = KeySource::raw(unsafe { bytes_arg(key, key_len, "key") }?)?;
        open_anchored(path, key, anchor, out_vault)
    })
}

/// `tv_vault_open_with_passphrase` with a host anchor; see `tv_vault_open_with_key_anchored`.
///
/// Ownership: as `tv_vault_open_with_key_anchored`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_open_with_passphrase_anchored(
    path: *const c_char,
    passphrase: *const c_char,
    anchor: *const tv_anchor,
    out_vault: *mut *mut super::vault::tv_vault,
) -> tv_status {
    boundary!(
        "tv_vault_open_with_passphrase_anchored",
        [path, passphrase, anchor, out_vault],
        {
            // SAFETY: non-NULL NUL-terminated strings (header contract).
            let path = unsafe { utf8_arg(path, "path") }?;
            let key = KeySource::passphrase(unsafe { utf8_arg(passphrase, "passphrase") }?)?;
            open_anchored(path, key, anchor, out_vault)
        }
    )
}
