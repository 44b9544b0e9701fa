//! OpenID Connect id_token validation (header, key selection, signature, claims) of arbitrary
//! text against an arbitrary key set.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tokenvault::fuzzing::id_token(data);
});
