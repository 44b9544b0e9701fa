//! Log routing through [`tokenvault::set_log_sink`], the path every binding's log callback
//! takes: the whole cycle at the most verbose level reaches the sink, with no token, key or
//! account id in any line; only the vault's own records are forwarded; the level filter holds;
//! removing the sink stops the lines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use tokenvault::{LogLevel, LogLevelFilter, LogSink};

#[path = "support/secret_cycle.rs"]
mod secret_cycle;

#[derive(Default)]
struct Capture(Mutex<Vec<(LogLevel, String, String)>>);

impl LogSink for Capture {
    fn log(&self, level: LogLevel, target: &str, message: &str) {
        self.0
            .lock()
            .unwrap()
            .push((level, target.to_owned(), message.to_owned()));
    }
}

impl Capture {
    fn take(&self) -> Vec<(LogLevel, String, String)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

// One test function: the sink is process-wide, and test functions run in parallel.
#[test]
fn the_sink_gets_the_vaults_lines_filtered_and_without_secrets() {
    let sink = Arc::new(Capture::default());
    tokenvault::set_log_sink(LogLevelFilter::Trace, Some(sink.clone())).unwrap();
    // A record of another crate (the TLS stack, the HTTP client) is not forwarded.
    log::warn!(target: "rustls::client", "not the vault's line");

    let (secrets, texts) = secret_cycle::run();
    let lines = sink.take();
    assert!(lines.len() >= 10, "the cycle logged: {lines:#?}");
    assert!(lines.iter().any(|(l, ..)| *l == LogLevel::Debug), "{lines:#?}");
    for (_, target, message) in &lines {
        assert!(target.starts_with("tokenvault"), "forwarded a foreign record: {target}");
        for s in &secrets {
            assert!(!message.contains(s.as_str()), "a secret leaked into: {message}");
        }
    }
    for text in &texts {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "a secret leaked into: {text}");
        }
    }

    // The level filter: at `Warn`, the same cycle forwards no info or debug line.
    tokenvault::set_log_sink(LogLevelFilter::Warn, Some(sink.clone())).unwrap();
    secret_cycle::run();
    let lines = sink.take();
    assert!(lines.iter().all(|(l, ..)| *l <= LogLevel::Warn), "{lines:#?}");

    // No sink: nothing.
    tokenvault::set_log_sink(LogLevelFilter::Trace, None).unwrap();
    secret_cycle::run();
    assert!(sink.take().is_empty());
    eprintln!("the sink path: checked against {} secrets", secrets.len());
}
