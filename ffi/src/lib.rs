//! # tokenvault-ffi
//!
//! The one native library of tokenvault (`libtokenvault.so` / `libtokenvault.a`). It holds every
//! foreign surface of the vault, so an app links one copy of Rust std and SQLite:
//!
//! * [`c_api`] — the hand-written `extern "C"` API. Its header,
//!   `bindings/c/include/tokenvault.h`, is generated from this crate by a pinned cbindgen
//!   (`ffi/cbindgen.toml`) and committed; `bindings/c/check-header.sh` fails on any difference.
//! * `uniffi_api` — proc-macro exports for Kotlin, Swift and Python (ADR 0008), plus the one
//!   plain C probe the Kotlin/Python cached readers use on their hot path.
//!
//! This crate converts types and catches panics; every decision lives in the `tokenvault` core
//! (a rule found here would drift from the other surface). The conventions of the C ABI are in ADR 0006 and in the header's preamble.

#[macro_use]
mod boundary;
pub mod c_api;
mod uniffi_api;

uniffi::setup_scaffolding!();
