//! Standalone reference server for tests written in other languages (C, C#, Kotlin, Python).
//!
//! ```text
//! reference-server --dialect 000|001|002 [--access-ttl-ms N] [--refresh-ttl-ms N] [--api-key K]
//! ```
//!
//! Binds `127.0.0.1:0`, prints exactly `LISTENING <port>` on stdout (flushed) and serves until its
//! stdin reaches end of file or the process is killed. Faults, stats, logins, revocation and the
//! server clock are driven over HTTP through the `/test/…` routes described in
//! `tokenvault_testkit::reference_server`. Defaults are those of `ServerConfig::default()`.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use tokenvault_testkit::{Dialect, ReferenceServer, ServerConfig};

const USAGE: &str = "usage: reference-server --dialect 000|001|002 [--access-ttl-ms N] \
                     [--refresh-ttl-ms N] [--api-key K]";

fn main() -> ExitCode {
    let (dialect, config) = match parse_args(std::env::args().skip(1)) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("reference-server: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let server = match ReferenceServer::start(dialect, config) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("reference-server: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    {
        let mut stdout = io::stdout().lock();
        if writeln!(stdout, "LISTENING {}", server.port())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return ExitCode::FAILURE;
        }
    }
    wait_for_stdin_eof();
    drop(server);
    ExitCode::SUCCESS
}

fn wait_for_stdin_eof() {
    let mut stdin = io::stdin().lock();
    let mut sink = [0u8; 1024];
    loop {
        match stdin.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// `Ok(None)` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<(Dialect, ServerConfig)>, String> {
    let mut dialect = None;
    let mut config = ServerConfig::default();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--dialect" => dialect = Some(value()?.parse::<Dialect>().map_err(|e| e.to_string())?),
            "--access-ttl-ms" => config.access_ttl = millis(&flag, &value()?)?,
            "--refresh-ttl-ms" => config.refresh_ttl = millis(&flag, &value()?)?,
            "--api-key" => config.api_key = value()?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let dialect = dialect.ok_or("--dialect is required")?;
    Ok(Some((dialect, config)))
}

fn millis(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("{flag} expects a number of milliseconds, got {value:?}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<(Dialect, ServerConfig)>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_all_flags() {
        let (dialect, config) = parse(&[
            "--dialect",
            "002",
            "--access-ttl-ms",
            "1500",
            "--refresh-ttl-ms=60000",
            "--api-key",
            "k",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(dialect, Dialect::VersionedBearer);
        assert_eq!(config.access_ttl, Duration::from_millis(1500));
        assert_eq!(config.refresh_ttl, Duration::from_secs(60));
        assert_eq!(config.api_key, "k");
        assert_eq!(
            parse(&["--dialect", "000"]).unwrap().unwrap().1,
            ServerConfig::default()
        );
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&[]).is_err());
        assert!(parse(&["--dialect", "003"]).is_err());
        assert!(parse(&["--dialect"]).is_err());
        assert!(parse(&["--dialect", "001", "--access-ttl-ms", "soon"]).is_err());
        assert!(parse(&["--dialect", "001", "--port", "1"]).is_err());
    }
}
