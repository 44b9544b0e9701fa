//! The whole vault cycle, run by the tests that check logs for secrets: store, reads,
//! refreshes with rotation, a 401 report, failures of every kind, the two-step path, an unknown
//! account, rekey, remove and reopen. Returns the secrets it used and the `Debug` and error
//! texts it produced.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use tokenvault::{KeySource, ManualClock, NewSession, RefreshStep, Vault, VaultOptions};
use tokenvault_testkit::{Dialect, Fault, ReferenceServer, ServerConfig};
use tokenvault_tests::{profile_for, TEST_KEY};

/// (secrets, texts)
pub fn run() -> (Vec<String>, Vec<String>) {
    let account = "account-id-7c1d9e";
    let server = ReferenceServer::start(Dialect::SuccessEnvelope, ServerConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let clock = ManualClock::new();
    let open = |key: &[u8]| {
        let v = Vault::open(
            &path,
            KeySource::raw(key)?,
            VaultOptions {
                clock: clock.clone(),
                ..VaultOptions::default()
            },
        )?;
        v.register_profile(profile_for(&server, "p", serde_json::json!({})).unwrap())
            .unwrap();
        Ok::<_, tokenvault::VaultError>(v)
    };
    let mut secrets: Vec<String> = vec![
        account.to_owned(),
        hex(&TEST_KEY),
        STANDARD.encode(TEST_KEY),
        URL_SAFE_NO_PAD.encode(TEST_KEY),
    ];
    let mut texts: Vec<String> = Vec::new();

    let v = open(&TEST_KEY).unwrap();
    let t = server.login(account);
    secrets.push(t.access_token.clone());
    secrets.push(t.refresh_credential.clone());
    texts.push(format!(
        "{:?}",
        v.store(NewSession::new(account, "p", t.access_token.clone()).refresh_credential(t.refresh_credential.clone()))
            .unwrap()
    ));
    let seen = |tok: &tokenvault::AccessToken, secrets: &mut Vec<String>, texts: &mut Vec<String>| {
        secrets.push(tok.expose().to_owned());
        texts.push(format!("{tok:?}"));
    };
    // Reads, refreshes (rotation), a 401 report, failures of every kind, the two-step path.
    let a = v.access_token(account).unwrap();
    seen(&a, &mut secrets, &mut texts);
    clock.advance(Duration::from_secs(50));
    let b = v.access_token(account).unwrap();
    seen(&b, &mut secrets, &mut texts);
    let c = v.report_rejected(account, b.expose()).unwrap();
    seen(&c, &mut secrets, &mut texts);
    for fault in [
        Fault::Status(503),
        Fault::Garbage,
        Fault::Throttle { retry_after_secs: 1 },
        Fault::CaptivePortal,
        Fault::EnvelopeFailure,
    ] {
        clock.advance(Duration::from_secs(120));
        server.push_fault(fault);
        texts.push(v.access_token(account).unwrap_err().to_string());
        texts.push(format!("{:?}", v.session_info(account)));
        let t = server.login(account);
        secrets.push(t.access_token.clone());
        secrets.push(t.refresh_credential.clone());
        v.store(NewSession::new(account, "p", t.access_token).refresh_credential(t.refresh_credential))
            .unwrap();
    }
    clock.advance(Duration::from_secs(50));
    if let RefreshStep::Send(p) = v.begin_refresh(account, false).unwrap() {
        texts.push(format!("{p:?}"));
        texts.push(format!("{:?}", p.request));
        texts.push(
            v.finish_refresh(p.attempt, tokenvault::HttpResponse::new(401, vec![], b"{}".to_vec()))
                .unwrap_err()
                .to_string(),
        );
    }
    texts.push(format!("{v:?}"));
    texts.push(v.access_token("unknown-account-id-5f2a").unwrap_err().to_string());
    secrets.push("unknown-account-id-5f2a".into());
    v.rekey(KeySource::passphrase("passphrase-secret-91ab").unwrap())
        .unwrap();
    secrets.push("passphrase-secret-91ab".into());
    v.remove(account).unwrap();
    drop(v);
    // The first open with the new passphrase confirms the rekey; then the old key is wrong.
    drop(
        Vault::open(
            &path,
            KeySource::passphrase("passphrase-secret-91ab").unwrap(),
            VaultOptions::default(),
        )
        .unwrap(),
    );
    texts.push(open(&TEST_KEY).unwrap_err().to_string());
    texts.push(format!(
        "{:?}",
        KeySource::passphrase("passphrase-secret-91ab").unwrap()
    ));

    (secrets, texts)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
