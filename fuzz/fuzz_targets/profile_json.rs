//! Profile loading (hostile profiles) and, when one loads, request building.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokenvault::Profile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = Profile::from_json(text) {
        let _ = p.build_request("access.token.value", Some("refresh-credential"));
        let _ = p.build_request("a", None);
    }
});
