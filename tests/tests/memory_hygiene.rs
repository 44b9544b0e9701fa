//! Secrets left in freed memory: a global allocator that, while a scan is active, looks at every
//! block the program frees (and every block `realloc` moves away from) for the bytes of known
//! secrets — a refresh credential, access tokens, the raw key, a passphrase — and counts the
//! blocks that still hold one. A full cycle through the vault (open, store, read, two-step
//! refresh with a success and a failure, rekey, close) must free none.
//!
//! Only the vault's own code runs while the scan is active: the test builds its inputs before and
//! drops its outputs after. The built-in HTTPS transport (ureq, rustls buffers) is out of scope
//! (docs/SECURITY.md says so): the two-step refresh hands the request to the test instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokenvault::{HttpResponse, KeySource, ManualClock, NewSession, Preset, Profile, RefreshStep, Vault, VaultOptions};

/// The secrets, as fixed-size needles (the first 16 bytes of each) the allocator can read
/// without allocating.
const NEEDLES: [&[u8; 16]; 6] = [
    b"RefreshSecret-7d",
    b"AccessSecret-1e4",
    b"RotatedRefresh-5",
    b"NewAccessSecret-",
    b"PassphraseSecret",
    &[0xA7; 16],
];
const RAW_KEY: [u8; 32] = [0xA7; 32];

static ACTIVE: AtomicBool = AtomicBool::new(false);
/// `TOKENVAULT_HYGIENE_TRACE=1`: print where each such block was freed.
static TRACE: AtomicBool = AtomicBool::new(false);
static HITS: AtomicUsize = AtomicUsize::new(0);
static HIT_NEEDLE: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];

struct Scanning;

/// Blocks larger than this are not scanned (the Argon2id work area: 19 MiB of derived data).
const MAX_SCANNED: usize = 1 << 20;

fn scan(ptr: *const u8, len: usize) {
    if !ACTIVE.load(Ordering::Relaxed) || !(16..=MAX_SCANNED).contains(&len) {
        return;
    }
    // SAFETY: the block is still allocated (called before it is released) and `len` long.
    let block = unsafe { std::slice::from_raw_parts(ptr, len) };
    for (i, needle) in NEEDLES.iter().enumerate() {
        if block.windows(16).any(|w| w == &needle[..]) {
            HITS.fetch_add(1, Ordering::Relaxed);
            HIT_NEEDLE[i].fetch_add(1, Ordering::Relaxed);
            if TRACE.load(Ordering::Relaxed) && ACTIVE.swap(false, Ordering::SeqCst) {
                eprintln!(
                    "needle {i} in a freed block of {len} bytes:\n{}",
                    std::backtrace::Backtrace::force_capture()
                );
                ACTIVE.store(true, Ordering::SeqCst);
            }
        }
    }
}

// SAFETY: every call is forwarded to the system allocator; the scan only reads a block that is
// still allocated.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        scan(ptr, layout.size());
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A move leaves the old block behind: allocate, copy, scan and free it ourselves.
        // SAFETY: a valid layout for the new size (same alignment), as `GlobalAlloc` requires.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarded.
        let new = unsafe { System.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the old block, as allocated.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Scanning = Scanning;

/// One test at a time: the scan is process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

fn report() -> String {
    let names = [
        "refresh",
        "access",
        "rotated refresh",
        "new access",
        "passphrase",
        "raw key",
    ];
    names
        .iter()
        .zip(HIT_NEEDLE.iter())
        .map(|(n, c)| format!("{n}: {}", c.load(Ordering::Relaxed)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn response(status: u16, body: String) -> HttpResponse {
    HttpResponse::new(
        status,
        vec![("Content-Type".into(), "application/json".into())],
        body.into_bytes(),
    )
}

#[test]
fn a_full_cycle_frees_no_block_that_still_holds_a_secret() {
    let _serial = SERIAL.lock().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let clock = ManualClock::new();
    let options = VaultOptions {
        clock: clock.clone(),
        ..VaultOptions::default()
    };
    let profile = Profile::preset(
        Preset::OAuth2,
        "p",
        "https://auth.example.test/token",
        serde_json::json!({"client_id": "game", "client_secret": "not-a-token-secret"}),
    )
    .unwrap();
    let session = NewSession::new("player", "p", "AccessSecret-1e4-aaaaaaaaaaaaaaaaaaaaaaaa")
        .refresh_credential("RefreshSecret-7d-bbbbbbbbbbbbbbbbbbbbbbbb")
        .expires_in(Duration::from_secs(3600));
    let ok = response(
        200,
        r#"{"access_token":"NewAccessSecret-cccccccccccc","refresh_token":"RotatedRefresh-5-dddddddddddd","token_type":"Bearer","expires_in":3600}"#
            .to_owned(),
    );
    let refused = response(
        400,
        r#"{"error":"invalid_grant","error_description":"RotatedRefresh-5-dddddddddddd is not valid"}"#.to_owned(),
    );
    let key = KeySource::raw(&RAW_KEY).unwrap();
    let passphrase = KeySource::passphrase("PassphraseSecret-eeeeeeee").unwrap();

    TRACE.store(std::env::var_os("TOKENVAULT_HYGIENE_TRACE").is_some(), Ordering::SeqCst);
    ACTIVE.store(true, Ordering::SeqCst);
    let v = Vault::open(&path, key, options.clone()).unwrap();
    v.register_profile(profile).unwrap();
    v.store(session).unwrap();
    drop(v.access_token("player").unwrap());
    drop(v.session_info("player").unwrap());
    let RefreshStep::Send(pending) = v.begin_refresh("player", true).unwrap() else {
        panic!("a forced refresh sends")
    };
    let attempt = pending.attempt;
    drop(pending);
    drop(v.finish_refresh(attempt, ok).unwrap());
    let RefreshStep::Send(pending) = v.begin_refresh("player", true).unwrap() else {
        panic!("a forced refresh sends")
    };
    let attempt = pending.attempt;
    drop(pending);
    let _ = v.finish_refresh(attempt, refused).unwrap_err();
    drop(v.list_accounts().unwrap());
    v.rekey(passphrase).unwrap();
    v.close().unwrap();
    drop(v);
    ACTIVE.store(false, Ordering::SeqCst);

    assert_eq!(
        HITS.load(Ordering::SeqCst),
        0,
        "freed blocks still holding a secret: {}",
        report()
    );
}
