//! The event callback: token refreshed, session expired, session removed.
//!
//! Events are delivered in order on the vault's own event thread (`tokenvault-events`, see
//! `tokenvault::events`), never on the thread that caused them and never while a vault lock is
//! held, so the callback may call back into the vault.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use tokenvault::{VaultEvent, VaultObserver};

use super::refresh::{tv_destroy_fn, UserData};
use super::tv_status;
use super::vault::{tv_vault, vault_ref};

/// What happened (`tv_event.kind`).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tv_event_kind {
    /// A refresh stored a new pair: `generation`, `access_remaining_ms` and the session forecast
    /// are set.
    TV_EVENT_TOKEN_REFRESHED = 1,
    /// The server refused the refresh credential: the user must sign in again; `reason` says why.
    TV_EVENT_SESSION_EXPIRED = 2,
    /// The session was removed (`tv_vault_remove`).
    TV_EVENT_SESSION_REMOVED = 3,
}

/// One event. Every pointer in it is valid only during the callback; copy what you keep.
#[repr(C)]
#[derive(Debug)]
pub struct tv_event {
    /// What happened.
    pub kind: tv_event_kind,
    /// 1 if `session_remaining_ms` is known.
    pub has_session_remaining: u8,
    /// The account (NUL-terminated UTF-8).
    pub account: *const c_char,
    /// `TV_EVENT_TOKEN_REFRESHED`: the new generation; otherwise 0.
    pub generation: u64,
    /// `TV_EVENT_TOKEN_REFRESHED`: time left on the new access token (ms); otherwise 0.
    pub access_remaining_ms: i64,
    /// `TV_EVENT_TOKEN_REFRESHED`: forecast of the time left before the user must sign in
    /// again (ms), if `has_session_remaining`; otherwise 0.
    pub session_remaining_ms: i64,
    /// `TV_EVENT_SESSION_EXPIRED`: why (no secrets); otherwise NULL.
    pub reason: *const c_char,
}

/// Receives one event, on the vault's event thread.
pub type tv_event_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const tv_event)>;

struct CallbackObserver {
    callback: unsafe extern "C" fn(*mut c_void, *const tv_event),
    user_data: UserData,
}

/// A C string of `s`, cutting at an (impossible: validated by the core) interior NUL.
fn c_text(s: &str) -> CString {
    let bytes = s.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap_or_default()
}

impl VaultObserver for CallbackObserver {
    fn on_event(&self, event: &VaultEvent) {
        let account = c_text(event.account());
        let mut reason = None;
        let mut ev = tv_event {
            kind: tv_event_kind::TV_EVENT_SESSION_REMOVED,
            has_session_remaining: 0,
            account: account.as_ptr(),
            generation: 0,
            access_remaining_ms: 0,
            session_remaining_ms: 0,
            reason: std::ptr::null(),
        };
        match event {
            VaultEvent::TokenRefreshed {
                generation,
                access_remaining_ms,
                session_remaining_ms,
                ..
            } => {
                ev.kind = tv_event_kind::TV_EVENT_TOKEN_REFRESHED;
                ev.generation = *generation;
                ev.access_remaining_ms = *access_remaining_ms;
                ev.has_session_remaining = u8::from(session_remaining_ms.is_some());
                ev.session_remaining_ms = session_remaining_ms.unwrap_or(0);
            }
            VaultEvent::SessionExpired { reason: why, .. } => {
                ev.kind = tv_event_kind::TV_EVENT_SESSION_EXPIRED;
                let r = reason.insert(c_text(why));
                ev.reason = r.as_ptr();
            }
            VaultEvent::SessionRemoved { .. } => {}
        }
        // SAFETY: the host's function with the pointer it registered and an event whose
        // pointers (`account`, `reason`) outlive the call.
        unsafe { (self.callback)(self.user_data.ptr(), &ev) };
    }
}

/// Install (or, with `callback` = NULL, remove) the function that receives the vault's events.
///
/// The callback runs on the vault's event thread (`tokenvault-events`, one per vault), one
/// event at a time, in order; never on the thread that caused the event and never with a vault
/// lock held. It may therefore call any `tv_vault_*` function of the same vault, including a
/// blocking refresh, and `tv_vault_close` (not `tv_vault_free`). Keep it short: events queue
/// behind it. It must not let a C++ exception escape.
///
/// Ownership: on success the library keeps `user_data` and calls `destroy(user_data)` (if
/// `destroy` is not NULL) exactly once, when the callback is replaced or removed or the vault is
/// freed, after the last call of `callback` returned; `user_data` must be usable from the event
/// thread. On failure nothing is kept and `destroy` is not called. With `callback` = NULL,
/// `user_data` and `destroy` are ignored. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_set_event_callback(
    vault: *const tv_vault,
    callback: tv_event_fn,
    user_data: *mut c_void,
    destroy: tv_destroy_fn,
) -> tv_status {
    boundary!("tv_vault_set_event_callback", [vault], {
        // SAFETY: a live handle (header contract).
        let vault = unsafe { vault_ref(vault) };
        let Some(callback) = callback else {
            return vault.set_observer(None);
        };
        let (user_data, take_ownership) = UserData::new(user_data, destroy);
        vault.set_observer(Some(
            Arc::new(CallbackObserver { callback, user_data }) as Arc<dyn VaultObserver>
        ))?;
        take_ownership();
        Ok(())
    })
}
