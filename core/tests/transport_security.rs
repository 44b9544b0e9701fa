//! Redirects on a token endpoint, end to end on a real file: whether the answer comes from a host
//! transport (the two-step refresh) or from the built-in transport talking to a real server on
//! 127.0.0.1, a 3xx is a transient failure, nothing of its body is stored, and the redirect is
//! not followed (the target never hears of the request).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokenvault::{
    ErrorCode, HttpResponse, HttpsTransport, KeySource, NewSession, Preset, Profile, RefreshStep, Vault, VaultOptions,
};

const ACCOUNT: &str = "player-1";
const TOKENS: &str = r#"{"access_token":"stolen-access","refresh_token":"stolen-refresh","expires_in":3600}"#;

fn vault(dir: &std::path::Path, url: &str) -> Vault {
    let v = Vault::open(
        dir.join("vault.db"),
        KeySource::raw(&[7; 32]).unwrap(),
        VaultOptions {
            transport: Some(Arc::new(HttpsTransport::new())),
            ..VaultOptions::default()
        },
    )
    .unwrap();
    v.register_profile(
        Profile::preset(Preset::OAuth2, "backend", url, serde_json::json!({"client_id": "game"})).unwrap(),
    )
    .unwrap();
    v.store(
        NewSession::new(ACCOUNT, "backend", "access-0")
            .refresh_credential("refresh-0")
            .expires_in(Duration::from_secs(300)),
    )
    .unwrap();
    v
}

fn unchanged(v: &Vault) {
    assert_eq!(
        v.stored_pair_for_tests(ACCOUNT).unwrap(),
        ("access-0".to_owned(), Some("refresh-0".to_owned()))
    );
    assert_eq!(v.access_token(ACCOUNT).unwrap().expose(), "access-0");
}

/// A 3xx handed back by a host transport (which correctly did not follow it) stores nothing,
/// even when its body looks like a token response.
#[test]
fn a_redirect_from_a_host_transport_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path(), "https://auth.example.test/token");
    for status in [301, 302, 303, 307, 308] {
        let RefreshStep::Send(pending) = v.begin_refresh(ACCOUNT, true).unwrap() else {
            panic!("expected a request to send");
        };
        let response = HttpResponse::new(
            status,
            vec![
                ("Location".into(), "https://elsewhere.example.test/token".into()),
                ("Content-Type".into(), "application/json".into()),
            ],
            TOKENS.as_bytes().to_vec(),
        );
        let err = v.finish_refresh(pending.attempt, response).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Transient, "{status}: {err}");
        unchanged(&v);
    }
}

/// A real server on 127.0.0.1 answering 307 to a second server: the built-in transport does not
/// follow it (the second server gets no connection), the refresh fails as transient and the
/// stored pair is untouched.
#[test]
fn the_built_in_transport_does_not_follow_a_redirect() {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let target_port = target.local_addr().unwrap().port();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let (st, sv) = (stop.clone(), served.clone());
    server.set_nonblocking(true).unwrap();
    let thread = std::thread::spawn(move || {
        while !st.load(Ordering::SeqCst) {
            let Ok((mut sock, _)) = server.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            sock.set_nonblocking(false).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            sv.fetch_add(1, Ordering::SeqCst);
            let reply = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target_port}/token\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{TOKENS}",
                TOKENS.len()
            );
            let _ = sock.write_all(reply.as_bytes());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path(), &format!("http://127.0.0.1:{port}/token"));
    let err = v.force_refresh(ACCOUNT).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Transient, "{err}");
    assert_eq!(served.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(50));
    assert!(target.accept().is_err(), "the redirect target must not be contacted");
    unchanged(&v);
    stop.store(true, Ordering::SeqCst);
    thread.join().unwrap();
}
