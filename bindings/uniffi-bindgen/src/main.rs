//! `uniffi-bindgen`, built from the same uniffi version as the library it reads.
//!
//! The PyPI `uniffi-bindgen` lags behind and fails on newer libraries (DESIGN.md §6), so the
//! workspace carries its own. Run it through `bindings/generate.sh`, which builds the unstripped
//! debug library first and generates in library mode.

fn main() {
    uniffi::uniffi_bindgen_main()
}
