//! The whole cycle, against a local reference server of seed 001 (rotating refresh tokens):
//! store, read, expire, refresh, rotate, close, reopen, still valid, and a wrong key refused.
//!
//! `cargo run -p tokenvault-tests --bin demo` (add `--release` for realistic read timings).

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenvault::{KeySource, NewSession, SystemClock, Vault, VaultError, VaultOptions};
use tokenvault_testkit::{Dialect, ReferenceServer, ServerConfig};
use tokenvault_tests::{open_vault, profile_for};

fn check(cond: bool, what: &str) -> Result<(), Box<dyn Error>> {
    if cond {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("FAILED: {what}").into())
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let server = ReferenceServer::start(
        Dialect::SuccessEnvelope,
        ServerConfig {
            access_ttl: Duration::from_secs(2),
            ..ServerConfig::default()
        },
    )?;
    println!(
        "reference server (seed 001 dialect, 2 s access tokens, rotating refresh tokens) at {}",
        server.base_url()
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("demo-vault.db");
    let clock = SystemClock::shared();

    println!("\n1. open a new vault with a 32-byte key and store the session after sign-in");
    let vault = Arc::new(open_vault(&path, clock.clone())?);
    vault.register_profile(profile_for(&server, "game-backend", serde_json::json!({}))?)?;
    let login = server.login("player-42");
    let info = vault.store(
        NewSession::new("player-42", "game-backend", login.access_token.clone())
            .refresh_credential(login.refresh_credential.clone())
            .hint("display_name", "Player Forty-Two"),
    )?;
    println!(
        "  stored generation {}, access token valid for {} ms (from its JWT exp)",
        info.generation, info.access_remaining_ms
    );
    check(
        std::fs::read(&path)?.windows(9).all(|w| w != b"player-42"),
        "the account id is not in the file in clear",
    )?;

    println!("\n2. read the cached token");
    let t0 = vault.access_token("player-42")?;
    check(t0.expose() == login.access_token, "the stored token is served")?;
    let n = 1_000_000u32;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(vault.access_token("player-42")?);
    }
    println!(
        "  {} cached reads: {:.1} ns per read",
        n,
        start.elapsed().as_nanos() as f64 / f64::from(n)
    );
    check(server.stats().refresh_requests == 0, "no request reached the server")?;

    println!("\n3. let it reach its refresh point (75 % of its lifetime) and read again");
    std::thread::sleep(Duration::from_millis(1_700));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let v = Arc::clone(&vault);
            std::thread::spawn(move || v.access_token("player-42"))
        })
        .collect();
    let mut got = Vec::new();
    for t in threads {
        got.push(t.join().map_err(|_| "a reader thread panicked")??);
    }
    let t1 = got[0].clone();
    check(
        got.iter().all(|t| *t == t1),
        "8 concurrent readers got the same refreshed token",
    )?;
    check(t1.expose() != t0.expose(), "the token was refreshed")?;
    check(server.stats().refresh_requests == 1, "exactly one refresh request")?;
    check(
        server.check_access(t1.expose()),
        "the new token works at the protected resource",
    )?;
    let info = vault.session_info("player-42")?;
    println!(
        "  generation {} -> {}, refresh token rotated, session forecast: {} h left",
        t0.generation(),
        t1.generation(),
        info.session_remaining_ms.unwrap_or(0) / 3_600_000
    );

    println!("\n4. let it expire completely, then read: refreshed and rotated again");
    std::thread::sleep(Duration::from_millis(2_100));
    let t2 = vault.access_token("player-42")?;
    check(
        t2.expose() != t1.expose() && server.check_access(t2.expose()),
        "a second rotation",
    )?;
    check(
        server.stats().reuse_detections == 0,
        "the server saw no refresh-token reuse",
    )?;

    println!("\n5. close, reopen with the right key: the rotated pair was durable");
    vault.close()?;
    check(
        matches!(vault.access_token("player-42"), Err(VaultError::Closed)),
        "a closed vault refuses reads",
    )?;
    drop(vault);
    let reopened = open_vault(&path, clock.clone())?;
    reopened.register_profile(profile_for(&server, "game-backend", serde_json::json!({}))?)?;
    let t3 = reopened.access_token("player-42")?;
    check(
        t3.expose() == t2.expose() && server.check_access(t3.expose()),
        "still valid after reopening",
    )?;
    std::thread::sleep(Duration::from_millis(1_700));
    let t4 = reopened.access_token("player-42")?;
    check(
        t4.expose() != t3.expose() && server.check_access(t4.expose()),
        "and it refreshes with the stored rotated refresh token",
    )?;
    drop(reopened);

    println!("\n6. open with a wrong key");
    let after_close = std::fs::read(&path)?;
    match Vault::open(&path, KeySource::raw(&[0u8; 32])?, VaultOptions::default()) {
        Err(VaultError::WrongKey) => println!(
            "  ok: refused with WrongKey (code {})",
            VaultError::WrongKey.code().as_i32()
        ),
        other => return Err(format!("FAILED: expected WrongKey, got {other:?}").into()),
    }
    check(
        std::fs::read(&path)? == after_close,
        "the file is byte-for-byte unchanged",
    )?;

    let s = server.stats();
    println!(
        "\ndemo complete: {} refreshes, {} reuse detections, {} families revoked",
        s.refresh_successes, s.reuse_detections, s.families_revoked
    );
    Ok(())
}
