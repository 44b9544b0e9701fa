//! Every preset's response parser against arbitrary status, headers and body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokenvault::{HttpResponse, Preset, Profile};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let preset = Preset::ALL[usize::from(data[0]) % Preset::ALL.len()];
    let status = u16::from_be_bytes([data[1], data[2]]) % 700;
    let mut headers = vec![("Date".to_owned(), "Wed, 19 Feb 2025 21:20:00 GMT".to_owned())];
    match data[3] % 4 {
        0 => headers.push(("Content-Type".into(), "application/json".into())),
        1 => headers.push(("Content-Type".into(), "text/html".into())),
        2 => headers.push(("Retry-After".into(), String::from_utf8_lossy(&data[4..data.len().min(20)]).into_owned())),
        _ => {}
    }
    let Ok(profile) = Profile::preset(preset, "f", "https://x.example.test/t", serde_json::json!({"client_id": "c", "api_key": "k"})) else {
        return;
    };
    let response = HttpResponse::new(status, headers, data[4..].to_vec());
    let _ = profile.parse_response(&response, 1_740_000_000_000);
});
