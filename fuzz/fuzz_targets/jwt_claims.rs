//! JWT claim decoding (without verification) of arbitrary strings.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tokenvault::fuzzing::jwt_times(text);
    }
});
