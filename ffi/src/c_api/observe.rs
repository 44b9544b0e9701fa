//! Open options, metrics and log routing through the C ABI: the struct-with-size-first
//! conventions of `tv_anchor`, over the core's `Tuning`, `Vault::metrics` and `set_log_sink`.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use tokenvault::{ErrorCode, KeySource, LogLevel, LogLevelFilter, LogSink, Tuning, VaultOptions};

use super::anchor::{read_anchor, tv_anchor};
use super::refresh::{tv_destroy_fn, UserData};
use super::tv_status;
use super::vault::{open_with, tv_vault, vault_ref};
use crate::boundary::{bytes_arg, invalid, optional_utf8_arg, utf8_arg};

/// Options for `tv_vault_open_with_options`. Fill it with `tv_open_options_init` (the library's
/// defaults and `struct_size`), then change what you need. A value out of range makes the open
/// fail with `TV_INVALID_INPUT`, before any file is touched.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tv_open_options {
    /// `sizeof(tv_open_options)`. A later library accepts the sizes of earlier headers; a size
    /// larger than this library knows is refused (it would ignore settings).
    pub struct_size: usize,
    /// Fraction of the access token's lifetime after which it is refreshed (0.05..=0.95;
    /// default 0.75).
    pub refresh_point: f64,
    /// Spread around the refresh point, as a fraction of the lifetime (0..=0.2; default 0.05).
    pub jitter: f64,
    /// The largest share of a token's lifetime a caller's minimum TTL may demand (0.05..=0.9;
    /// default 0.5).
    pub min_ttl_cap: f64,
    /// A token counts as expired this long before its `exp` (at most one hour; default 5 s;
    /// capped at 10 % of the token's lifetime).
    pub expiry_margin_ms: u64,
    /// How long to wait for another process's write lock on the file (at most 10 minutes;
    /// default 5 s).
    pub busy_timeout_ms: u64,
    /// An optional host anchor (see `tv_anchor`), or NULL.
    pub anchor: *const tv_anchor,
}

/// Fill `*options` with the library's defaults and its `struct_size`.
///
/// Ownership: borrows `options`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_open_options_init(options: *mut tv_open_options) -> tv_status {
    boundary!("tv_open_options_init", [options], {
        let d = Tuning::defaults();
        let value = tv_open_options {
            struct_size: std::mem::size_of::<tv_open_options>(),
            refresh_point: d.refresh_point.unwrap_or_default(),
            jitter: d.jitter.unwrap_or_default(),
            min_ttl_cap: d.min_ttl_cap.unwrap_or_default(),
            expiry_margin_ms: d.expiry_margin_ms.unwrap_or_default(),
            busy_timeout_ms: d.busy_timeout_ms.unwrap_or_default(),
            anchor: std::ptr::null(),
        };
        // SAFETY: non-NULL and writable (header contract).
        unsafe { options.write(value) };
        Ok(())
    })
}

/// Open (or create) the vault file at `path` with options: give exactly one of `key` (32 raw
/// bytes, `key_len` 32) or `passphrase` (UTF-8), the other NULL. Errors as
/// `tv_vault_open_with_key`; an option out of range is `TV_INVALID_INPUT` and no file is created.
///
/// Ownership: `path`, `key`, `passphrase` and `options` are borrowed for the call. With an
/// anchor, on success the library owns `options->anchor->user_data` (as
/// `tv_vault_open_with_key_anchored`). On success `*out_vault` receives a new handle: release
/// it with `tv_vault_free`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_open_with_options(
    path: *const c_char,
    key: *const u8,
    key_len: usize,
    passphrase: *const c_char,
    options: *const tv_open_options,
    out_vault: *mut *mut tv_vault,
) -> tv_status {
    boundary!("tv_vault_open_with_options", [path, options, out_vault], {
        // SAFETY: a NUL-terminated string; `key_len` readable bytes or NULL; a NUL-terminated
        // string or NULL (header contract).
        let path = unsafe { utf8_arg(path, "path") }?;
        let passphrase = unsafe { optional_utf8_arg(passphrase, "passphrase") }?;
        let key = match (key.is_null(), passphrase) {
            (false, None) => KeySource::raw(unsafe { bytes_arg(key, key_len, "key") }?)?,
            (true, Some(p)) => KeySource::passphrase(p)?,
            _ => return Err(invalid("give exactly one of `key` and `passphrase`")),
        };
        // SAFETY: the size field comes first in every version of the struct.
        let size = unsafe { options.cast::<usize>().read() };
        if size != std::mem::size_of::<tv_open_options>() {
            return Err(invalid(
                "`options->struct_size` is not sizeof(tv_open_options) of this library's header",
            ));
        }
        // SAFETY: a readable tv_open_options (checked size, header contract).
        let o = unsafe { options.read() };
        let tuning = Tuning {
            refresh_point: Some(o.refresh_point),
            jitter: Some(o.jitter),
            min_ttl_cap: Some(o.min_ttl_cap),
            expiry_margin_ms: Some(o.expiry_margin_ms),
            busy_timeout_ms: Some(o.busy_timeout_ms),
        };
        let mut vault_options = VaultOptions::default().tuned(&tuning);
        let mut take = None;
        if !o.anchor.is_null() {
            // SAFETY: a readable tv_anchor (header contract).
            let (anchor, t) = unsafe { read_anchor(o.anchor) }?;
            vault_options.anchor = Some(anchor);
            take = Some(t);
        }
        open_with(path, key, vault_options, out_vault)?;
        if let Some(take) = take {
            take();
        }
        Ok(())
    })
}

/// How many error codes `tv_metrics::refreshes_failed_by_code` has room for (indexed by
/// `tv_status`).
pub const TV_METRICS_CODES: usize = 16;

/// What a vault did since it was opened (`tv_vault_metrics`). Counts only: no token, no
/// account id.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tv_metrics {
    /// Set by the caller to `sizeof(tv_metrics)` before the call.
    pub struct_size: usize,
    /// Reads answered from the cache without any refresh or file access.
    pub cached_hits: u64,
    /// Refresh requests the vault built to send (blocking and two-step).
    pub refreshes_started: u64,
    /// Attempts that ended with a stored pair.
    pub refreshes_succeeded: u64,
    /// Attempts that ended with an error (the sum of `refreshes_failed_by_code`).
    pub refreshes_failed: u64,
    /// Failed attempts by their `tv_status` (index `TV_TRANSIENT`, ...).
    pub refreshes_failed_by_code: [u64; TV_METRICS_CODES],
    /// Callers that waited for a refresh already in flight in this vault.
    pub single_flight_joins: u64,
    /// Times the account's cross-process refresh lock was held by a peer.
    pub lock_waits: u64,
    /// Times this vault refreshed after waiting for a peer that left no new pair.
    pub lock_takeovers: u64,
    /// Attempts that found an earlier attempt's lost-answer marker.
    pub lost_answer_markers: u64,
    /// Requests that went through the transport.
    pub transport_requests: u64,
    /// Median transport latency over the last 1,024 requests, in µs; 0 before any request.
    pub transport_latency_p50_us: u64,
    /// 99th percentile of the same window, in µs; 0 before any request.
    pub transport_latency_p99_us: u64,
    /// Response body bytes received.
    pub response_bytes: u64,
}

/// A snapshot of the vault's metrics into `*out`. Set `out->struct_size` to
/// `sizeof(tv_metrics)` first (a later library fills only the fields an earlier header has).
/// Works after `tv_vault_close` too.
///
/// Ownership: borrows `vault` and `out`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_vault_metrics(vault: *const tv_vault, out: *mut tv_metrics) -> tv_status {
    boundary!("tv_vault_metrics", [vault, out], {
        // SAFETY: the size field comes first (header contract).
        let size = unsafe { out.cast::<usize>().read() };
        if size < std::mem::size_of::<tv_metrics>() {
            return Err(invalid("`out->struct_size` is smaller than sizeof(tv_metrics)"));
        }
        // SAFETY: a live handle (header contract).
        let m = unsafe { vault_ref(vault) }.metrics();
        let mut by_code = [0u64; TV_METRICS_CODES];
        for (code, n) in &m.refreshes_failed {
            if let Some(slot) = by_code.get_mut(*code as usize) {
                *slot = *n;
            }
        }
        let value = tv_metrics {
            struct_size: size,
            cached_hits: m.cached_hits,
            refreshes_started: m.refreshes_started,
            refreshes_succeeded: m.refreshes_succeeded,
            refreshes_failed: m.refreshes_failed_total(),
            refreshes_failed_by_code: by_code,
            single_flight_joins: m.single_flight_joins,
            lock_waits: m.lock_waits,
            lock_takeovers: m.lock_takeovers,
            lost_answer_markers: m.lost_answer_markers,
            transport_requests: m.transport_requests,
            transport_latency_p50_us: m.transport_latency_p50_us.unwrap_or(0),
            transport_latency_p99_us: m.transport_latency_p99_us.unwrap_or(0),
            response_bytes: m.response_bytes,
        };
        // SAFETY: `size` >= sizeof(tv_metrics) writable bytes (checked above, header contract).
        unsafe { out.write(value) };
        Ok(())
    })
}

/// Log levels, most severe first (the numbers of the `log` crate).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tv_log_level {
    /// No logging.
    TV_LOG_OFF = 0,
    /// Errors.
    TV_LOG_ERROR = 1,
    /// Warnings: something the host may want to look at (a peer's refresh is slow, a cleanup
    /// failed).
    TV_LOG_WARN = 2,
    /// A session ended, a refresh failed, a vault was created.
    TV_LOG_INFO = 3,
    /// Each refresh step.
    TV_LOG_DEBUG = 4,
    /// Everything.
    TV_LOG_TRACE = 5,
}

/// Receives one log line: its level (`tv_log_level`), its target (the module) and the message,
/// both NUL-terminated UTF-8 valid only during the call. Called on whichever thread logs,
/// possibly while the vault holds internal locks: return quickly, and never call a `tv_`
/// function from it.
pub type tv_log_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: i32, target: *const c_char, message: *const c_char)>;

struct CallbackSink {
    log: unsafe extern "C" fn(*mut c_void, i32, *const c_char, *const c_char),
    data: UserData,
}

fn c_text(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

impl LogSink for CallbackSink {
    fn log(&self, level: LogLevel, target: &str, message: &str) {
        let (target, message) = (c_text(target), c_text(message));
        // SAFETY: the host's function with its own pointer and two NUL-terminated strings.
        unsafe { (self.log)(self.data.ptr(), level as i32, target.as_ptr(), message.as_ptr()) };
    }
}

/// Route the vault's log lines at `max_level` and above (a `tv_log_level`) to `callback`,
/// replacing any callback set before (its `destroy` runs once no line is being delivered to it).
/// A NULL `callback`, or `TV_LOG_OFF`, stops the routing. Process-wide: every vault logs to it.
/// No line ever holds a token, a key or an account id. Only the vault's own lines are routed
/// (not those of the TLS and HTTP libraries underneath).
///
/// Ownership: on success the library owns `user_data` (released through `destroy`, which may
/// be NULL); on failure the caller keeps it. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn tv_set_log_callback(
    max_level: i32,
    callback: tv_log_fn,
    user_data: *mut c_void,
    destroy: tv_destroy_fn,
) -> tv_status {
    boundary!("tv_set_log_callback", [], {
        let level = match max_level {
            0 => LogLevelFilter::Off,
            1 => LogLevelFilter::Error,
            2 => LogLevelFilter::Warn,
            3 => LogLevelFilter::Info,
            4 => LogLevelFilter::Debug,
            5 => LogLevelFilter::Trace,
            _ => return Err(invalid("`max_level` is not a tv_log_level")),
        };
        let Some(log) = callback else {
            return tokenvault::set_log_sink(LogLevelFilter::Off, None);
        };
        let (data, take) = UserData::new(user_data, destroy);
        let sink: Arc<dyn LogSink> = Arc::new(CallbackSink { log, data });
        tokenvault::set_log_sink(level, Some(sink))?;
        take();
        Ok(())
    })
}

// The error codes fit the metrics array.
const _: () = assert!(ErrorCode::ALL.len() <= TV_METRICS_CODES);
