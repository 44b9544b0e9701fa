//! Tamper: flip every byte of a small real vault file, one at a time. Each open and read either
//! succeeds with the original values or fails with a typed error — never altered data, never a
//! panic. `TOKENVAULT_TAMPER_STRIDE=k` flips every k-th byte (default 3; `./test.sh` flips all of them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use tokenvault::{ErrorCode, KeySource, NewSession, Preset, Profile, SystemClock, Vault, VaultOptions};
use tokenvault_tests::{open_vault, TEST_KEY};

fn profile() -> Profile {
    Profile::preset(
        Preset::OAuth2,
        "p",
        "https://auth.example.test/token",
        serde_json::json!({"client_id": "c"}),
    )
    .unwrap()
}

#[test]
fn flipping_any_byte_never_yields_altered_data() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.db");
    let accounts = [("alice", "access-alice-1"), ("bob", "access-bob-1")];
    {
        let v = open_vault(&original, SystemClock::shared()).unwrap();
        v.register_profile(profile()).unwrap();
        for (a, t) in accounts {
            v.store(
                NewSession::new(a, "p", t)
                    .refresh_credential(format!("refresh-{a}"))
                    .expires_in(Duration::from_secs(3600)),
            )
            .unwrap();
        }
    }
    let bytes = std::fs::read(&original).unwrap();
    let stride: usize = std::env::var("TOKENVAULT_TAMPER_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let path = dir.path().join("tampered.db");
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut flipped = 0usize;
    for i in (0..bytes.len()).step_by(stride.max(1)) {
        let mut b = bytes.clone();
        b[i] ^= 0x5A;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        std::fs::write(&path, &b).unwrap();
        flipped += 1;
        let opened = std::panic::catch_unwind(|| {
            Vault::open(&path, KeySource::raw(&TEST_KEY).unwrap(), VaultOptions::default())
        });
        let vault = match opened {
            Err(_) => panic!("byte {i}: open panicked"),
            Ok(Err(e)) => {
                assert!(
                    matches!(
                        e.code(),
                        ErrorCode::Corrupt
                            | ErrorCode::WrongKey
                            | ErrorCode::SchemaTooNew
                            | ErrorCode::StorageUnavailable
                    ),
                    "byte {i}: {e}"
                );
                *outcomes.entry(format!("open: {}", e.code())).or_default() += 1;
                continue;
            }
            Ok(Ok(v)) => v,
        };
        for (a, t) in accounts {
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vault.access_token(a)));
            match read {
                Err(_) => panic!("byte {i}: read panicked"),
                Ok(Ok(tok)) => {
                    assert_eq!(tok.expose(), t, "byte {i}: altered token returned");
                    *outcomes.entry("read: original".into()).or_default() += 1;
                }
                Ok(Err(e)) => {
                    assert!(
                        matches!(
                            e.code(),
                            ErrorCode::Corrupt | ErrorCode::NotFound | ErrorCode::StorageUnavailable
                        ),
                        "byte {i}: {e}"
                    );
                    *outcomes.entry(format!("read: {}", e.code())).or_default() += 1;
                }
            }
            if let Ok(Ok(info)) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vault.session_info(a))) {
                assert_eq!(info.account, a, "byte {i}");
                assert_eq!(info.profile, "p", "byte {i}");
            }
        }
        if let Ok(list) = vault.list_accounts() {
            for a in &list {
                assert!(
                    accounts.iter().any(|(x, _)| x == a),
                    "byte {i}: an account appeared: {a}"
                );
            }
        }
    }
    eprintln!(
        "{flipped} bytes flipped (file of {} bytes); outcomes: {outcomes:?}",
        bytes.len()
    );
    assert!(flipped >= bytes.len() / stride.max(1));
}
