//! The `reference-server` binary as other languages' tests use it: start, read `LISTENING <port>`,
//! drive it over HTTP, close stdin, see it exit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn http(port: u16, method: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn binary_prints_its_port_serves_and_exits_when_stdin_closes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reference-server"))
        .args(["--dialect", "001", "--access-ttl-ms", "1500", "--api-key", "k"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.strip_prefix("LISTENING ").unwrap().trim().parse().unwrap();
    assert_eq!(line, format!("LISTENING {port}\n"));

    let login = http(port, "POST", "/test/login", r#"{"user":"bin"}"#);
    assert!(login.starts_with("HTTP/1.1 200 OK\r\n"), "{login}");
    let body: serde_json::Value = serde_json::from_str(login.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let refresh_body = serde_json::json!({
        "accessToken": body["accessToken"], "refreshToken": body["refreshCredential"],
    })
    .to_string();
    http(
        port,
        "POST",
        "/test/fault",
        r#"{"fault":"throttle","retry_after_secs":2}"#,
    );
    let throttled = http(port, "POST", "/v2/Auth/RefreshToken", &refresh_body);
    assert!(throttled.starts_with("HTTP/1.1 429"), "{throttled}");
    assert!(throttled.contains("\r\nRetry-After: 2\r\n"));
    let refreshed = http(port, "POST", "/v2/Auth/RefreshToken", &refresh_body);
    assert!(refreshed.contains(r#""success":true"#), "{refreshed}");
    let stats = http(port, "GET", "/test/stats", "");
    assert!(stats.contains(r#""refresh_requests":2"#), "{stats}");
    assert!(stats.contains(r#""refresh_successes":1"#), "{stats}");

    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(Instant::now() < deadline, "server did not exit after stdin closed");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
