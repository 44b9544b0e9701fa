//! Secrets: the whole cycle runs with logging at its most verbose (every `log` record of every
//! crate), and no token, key or account id appears in any log line, `Debug` output or error
//! message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;

#[path = "support/secret_cycle.rs"]
mod secret_cycle;

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
    let (secrets, texts) = secret_cycle::run();
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
