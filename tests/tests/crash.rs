//! Crash safety: a child process refreshing and storing in a loop is killed with SIGKILL at
//! random moments. After each kill the file passes `PRAGMA integrity_check`, opens with the right
//! key, and every session holds a pair the server last issued or the one before it — never
//! nothing, never a mix of two pairs.
//!
//! `TOKENVAULT_CRASH_KILLS` sets the number of kills (default 60; `./test.sh` runs 1,000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::Duration;

use tokenvault::{NewSession, SystemClock};
use tokenvault_testkit::{Dialect, ReferenceServer, ServerConfig};
use tokenvault_tests::{open_vault, preset_for};

fn kills() -> usize {
    std::env::var("TOKENVAULT_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn pseudo_random(seed: &mut u64) -> u64 {
    // xorshift: reproducible from the printed seed.
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn sigkill_at_random_moments_never_loses_or_mixes_a_pair() {
    let server = ReferenceServer::start(Dialect::SuccessEnvelope, ServerConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let profile = serde_json::json!({"preset": preset_for(Dialect::SuccessEnvelope).name(), "name": "p", "url": server.refresh_url()});
    let accounts = ["alice", "bob"];
    {
        let v = open_vault(&db, SystemClock::shared()).unwrap();
        v.load_profile_json(&profile.to_string()).unwrap();
        for a in accounts {
            let t = server.login(a);
            v.store(NewSession::new(a, "p", t.access_token).refresh_credential(t.refresh_credential))
                .unwrap();
        }
    }
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let n = kills();
    let (mut at_last, mut at_previous) = (0usize, 0usize);
    for i in 0..n {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vault-worker"))
            .args(["crash-loop", "--db"])
            .arg(&db)
            .args(["--profile", &profile.to_string(), "--accounts", &accounts.join(",")])
            .args(["--login", &format!("{}/test/login", server.base_url())])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // 0–40 ms after start: before the vault opens, mid-request, mid-commit, between steps.
        std::thread::sleep(Duration::from_micros(pseudo_random(&mut seed) % 40_000));
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("kill {i}: the worker exited by itself ({status}): {err}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // The file is intact and opens with the right key.
        let v = open_vault(&db, SystemClock::shared()).unwrap();
        assert!(v.check_integrity().unwrap(), "kill {i}: integrity_check failed");
        for a in accounts {
            let (access, refresh) = v
                .stored_pair_for_tests(a)
                .unwrap_or_else(|e| panic!("kill {i}: {a}: {e}"));
            let refresh = refresh.expect("a refresh credential is always stored");
            let pairs = server.issued_pairs(&access);
            let pos = pairs
                .iter()
                .position(|p| p.access_token == access)
                .unwrap_or_else(|| panic!("kill {i}: {a}: the stored access token was never issued"));
            assert_eq!(
                pairs[pos].refresh_credential, refresh,
                "kill {i}: {a}: a mix of two pairs"
            );
            match pairs.len() - 1 - pos {
                0 => at_last += 1,
                1 => at_previous += 1,
                k => panic!("kill {i}: {a}: the stored pair is {k} rotations old"),
            }
        }
        drop(v);
    }
    let s = server.stats();
    eprintln!(
        "{n} kills survived; sessions at the last issued pair {at_last} times, at the one before {at_previous} times; server: {s:?}"
    );
    assert!(s.refresh_successes > 0);
}
