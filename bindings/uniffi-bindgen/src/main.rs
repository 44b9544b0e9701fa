//! `uniffi-bindgen`, built from the same uniffi version as the library it reads.
//!
//! The PyPI `uniffi-bindgen` lags behind uniffi releases and fails on libraries built with newer
//! ones, so the workspace carries its own (see `docs/adr/0008-uniffi-bindings.md`). Run it
//! through `bindings/uniffi-bindgen/generate.sh`, which builds the unstripped debug library first
//! and generates in library mode.

fn main() {
    uniffi::uniffi_bindgen_main()
}
