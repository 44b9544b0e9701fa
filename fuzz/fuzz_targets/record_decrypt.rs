//! Record decryption and parsing of arbitrary bytes, and unwrapping of arbitrary key rows.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tokenvault::fuzzing::open_record(data);
    tokenvault::fuzzing::unwrap_key(data);
});
