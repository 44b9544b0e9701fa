//! Secrets: the whole cycle runs with logging at its most verbose (every `log` record of every
//! crate), and no token, key or account id appears in any log line, `Debug` output or error
//! message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use tokenvault::{KeySource, ManualClock, NewSession, RefreshStep, Vault, VaultOptions};
use tokenvault_testkit::{Dialect, Fault, ReferenceServer, ServerConfig};
use tokenvault_tests::{profile_for, TEST_KEY};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES
            .lock()
            .unwrap()
            .push(format!("{} {} {}", record.level(), record.target(), record.args()));
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture;

#[test]
fn no_secret_in_any_log_line_debug_output_or_error() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

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

    let lines = LINES.lock().unwrap().clone();
    assert!(lines.len() >= 10, "the cycle logged: {lines:#?}");
    for text in lines.iter().chain(texts.iter()) {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "a secret leaked into: {text}");
        }
    }
    eprintln!(
        "{} log lines and {} Debug/error texts checked against {} secrets",
        lines.len(),
        texts.len(),
        secrets.len()
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
