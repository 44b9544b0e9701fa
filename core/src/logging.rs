//! Routing the vault's logs to the host's logger (Unity's console, Logcat, `logging`, ...).
//!
//! The vault logs through the `log` crate, with no secret in any line. A Rust host installs its
//! own `log` logger as usual. A host without one (C, C#, Kotlin, Python, Swift) registers a
//! [`LogSink`] with [`set_log_sink`]: it receives the records of the vault's own crates (the
//! targets starting with `tokenvault`) at or above its level. Records of the crates underneath
//! (the TLS stack, the HTTP client) are not forwarded: their lines are not ours to vouch for.

use std::sync::Arc;

/// A debug-level record of the vault's own, as `log::debug!` makes one, but not compiled out by
/// `log`'s static level features. The shipped library turns on `release_max_level_info`, which
/// removes the debug records of every crate in the build (the TLS stack and the HTTP client
/// have many, and none is ever forwarded to a host); the vault's own debug lines stay, filtered
/// at run time by [`log::max_level`] like any other.
macro_rules! debug_record {
    ($($arg:tt)+) => {
        if log::Level::Debug <= log::max_level() {
            log::logger().log(
                &log::Record::builder()
                    .level(log::Level::Debug)
                    .target(module_path!())
                    .module_path_static(Some(module_path!()))
                    .file_static(Some(file!()))
                    .line(Some(line!()))
                    .args(format_args!($($arg)+))
                    .build(),
            )
        }
    };
}
pub(crate) use debug_record;

use parking_lot::RwLock;

use crate::error::{Result, VaultError};

/// Receives the vault's log lines. Called on whichever thread logs, possibly while the vault
/// holds internal locks: it must return quickly and must not call into a vault.
pub trait LogSink: Send + Sync {
    /// One line: its level, its target (the module, e.g. `tokenvault::engine::coordinator`) and
    /// the message.
    fn log(&self, level: log::Level, target: &str, message: &str);
}

static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);

struct Forwarder;

static FORWARDER: Forwarder = Forwarder;

fn ours(target: &str) -> bool {
    target.starts_with("tokenvault")
}

impl log::Log for Forwarder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        ours(metadata.target()) && metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Some(sink) = SINK.read().clone() else { return };
        let message = match record.args().as_str() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(record.args().to_string()),
        };
        sink.log(record.level(), record.target(), &message);
    }

    fn flush(&self) {}
}

/// Route the vault's log records at `level` and above to `sink` (replacing any sink set
/// before); `None`, or [`log::LevelFilter::Off`], stops the routing. Process-wide: every vault
/// logs to it.
///
/// The first call installs the forwarder as the process's `log` logger. If another logger is
/// already installed (a Rust host with its own), the vault already logs there: the call fails
/// with [`VaultError::InvalidInput`] and changes nothing.
pub fn set_log_sink(level: log::LevelFilter, sink: Option<Arc<dyn LogSink>>) -> Result<()> {
    install()?;
    let level = if sink.is_some() { level } else { log::LevelFilter::Off };
    *SINK.write() = sink;
    log::set_max_level(level);
    Ok(())
}

fn install() -> Result<()> {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ours = *INSTALLED.get_or_init(|| log::set_logger(&FORWARDER).is_ok());
    if ours {
        Ok(())
    } else {
        Err(VaultError::invalid(
            "another `log` logger is installed in this process; the vault's records go there",
        ))
    }
}
