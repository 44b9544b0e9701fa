//! `tokenvault`: look inside a vault file, check it, and rekey it, without ever printing a
//! token, a refresh credential or a key.
//!
//! Every decision (what a file is, whether a key opens it, what a session's state is) is the
//! core library's; this tool reads arguments, loads keys and formats what the core reports.

mod format;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use tokenvault::{
    check_file, AccountReport, FileFormat, FileReport, KeySource, SchemaStatus, Vault, VaultError, VaultOptions,
};
use zeroize::Zeroizing;

use crate::format::{duration, offset, printable, timestamp};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (check: a healthy vault)
  1  an error not listed below (a missing or unreadable file, storage unavailable)
  2  usage: bad arguments, a key file that is not 32 bytes, an unset passphrase variable
  3  wrong key: the key or passphrase does not open this vault (nothing was written)
  4  the file was written by a newer tokenvault (schema too new; it was not modified)
  5  not a usable vault: not SQLite, another SQLite file, an empty file, a failed integrity
     check, or a corrupt vault
  6  inspect refused to change the file (an older schema, or a rekey waiting for its
     confirmation): see --allow-changes

No output or error ever contains a token, a refresh credential, a key or a passphrase.";

/// Inspect, check and rekey tokenvault files.
#[derive(Debug, Parser)]
#[command(name = "tokenvault", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every account in a vault: profile, generation, state, access and session expiry, clock
    /// offset, last failure, refresh count and lease state. Never a token or a key.
    ///
    /// Changes nothing in the vault (SQLite moves a `-wal` log left by a crash into the file).
    #[command(after_help = EXIT_CODES)]
    Inspect {
        /// The vault file (never created).
        file: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Let the open make the changes the app's next open would make: upgrade an older
        /// schema, and (with the new key) confirm a pending rekey, after which the old key no
        /// longer opens the vault.
        #[arg(long)]
        allow_changes: bool,
    },
    /// The file without its key: format (application id), schema version, SQLite integrity,
    /// record count. Read-only; run it while no app is opening the file.
    #[command(after_help = EXIT_CODES)]
    Check {
        /// The file to check (never created or modified).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replace the vault's key (and its data key), then confirm the new key by opening the
    /// vault with it: afterwards only the new key opens the vault. Run it while no app has the
    /// vault open.
    #[command(after_help = EXIT_CODES)]
    Rekey {
        /// The vault file (never created).
        file: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        new_key: NewKeyArgs,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct KeyArgs {
    /// A file holding the 32 raw key bytes.
    #[arg(long, value_name = "KEYFILE")]
    key_file: Option<PathBuf>,
    /// The name of an environment variable holding the passphrase.
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct NewKeyArgs {
    /// A file holding the new 32 raw key bytes.
    #[arg(long, value_name = "KEYFILE")]
    new_key_file: Option<PathBuf>,
    /// The name of an environment variable holding the new passphrase.
    #[arg(long, value_name = "VAR")]
    new_passphrase_env: Option<String>,
}

/// A failure, with its exit code and a message that names the problem (never a secret).
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

const EXIT_ERROR: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_WRONG_KEY: u8 = 3;
const EXIT_SCHEMA_TOO_NEW: u8 = 4;
const EXIT_NOT_A_VAULT: u8 = 5;
const EXIT_WOULD_CHANGE: u8 = 6;

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// A core error while working on `file`: the core's message (written never to hold a
    /// secret), with the exit code of its kind.
    fn vault(file: &Path, err: &VaultError) -> Failure {
        let name = file.display();
        match err {
            VaultError::WrongKey => Failure::new(
                EXIT_WRONG_KEY,
                format!("wrong key: the key does not open the vault {name} (nothing was written)"),
            ),
            VaultError::SchemaTooNew { found, supported } => Failure::new(
                EXIT_SCHEMA_TOO_NEW,
                format!(
                    "{name} was written by a newer tokenvault (schema version {found}; this tool reads up to \
                     {supported}); it was not modified: use a newer tokenvault"
                ),
            ),
            VaultError::Corrupt { .. } => Failure::new(EXIT_NOT_A_VAULT, format!("{name}: {err}")),
            VaultError::InvalidInput { .. } => Failure::new(EXIT_USAGE, format!("{err}")),
            _ => Failure::new(EXIT_ERROR, format!("{name}: {err}")),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect {
            file,
            key,
            json,
            allow_changes,
        } => inspect(&file, &key, json, allow_changes),
        Command::Check { file, json } => check(&file, json),
        Command::Rekey { file, key, new_key } => rekey(&file, &key, &new_key),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("tokenvault: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

// ----- keys -----------------------------------------------------------------------------------

fn key_source(key_file: Option<&Path>, passphrase_env: Option<&str>, what: &str) -> Result<KeySource, Failure> {
    if let Some(path) = key_file {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
            Failure::new(
                EXIT_USAGE,
                format!("cannot read the {what} file {} ({})", path.display(), e.kind()),
            )
        })?);
        if bytes.len() != 32 {
            return Err(Failure::new(
                EXIT_USAGE,
                format!(
                    "the {what} file {} must hold exactly 32 raw bytes (it holds {})",
                    path.display(),
                    bytes.len()
                ),
            ));
        }
        return KeySource::raw(&bytes).map_err(|e| Failure::new(EXIT_USAGE, e.to_string()));
    }
    let Some(var) = passphrase_env else {
        return Err(Failure::new(EXIT_USAGE, format!("no {what} given")));
    };
    let value = match std::env::var(var) {
        Ok(v) => Zeroizing::new(v),
        Err(std::env::VarError::NotPresent) => {
            return Err(Failure::new(
                EXIT_USAGE,
                format!("the environment variable {var} (the {what} passphrase) is not set"),
            ))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Failure::new(
                EXIT_USAGE,
                format!("the environment variable {var} (the {what} passphrase) is not valid UTF-8"),
            ))
        }
    };
    KeySource::passphrase(&value).map_err(|e| Failure::new(EXIT_USAGE, format!("{what}: {e}")))
}

// ----- the file before any open -----------------------------------------------------------

/// The key-less check every command starts with: the file must exist (it is never created)
/// and be a vault this library can open. `Vault::open` would create a missing file, and make a
/// new vault of an empty one.
fn precheck(file: &Path) -> Result<FileReport, Failure> {
    if !file.exists() {
        return Err(Failure::new(
            EXIT_ERROR,
            format!("{}: no such file (it was not created)", file.display()),
        ));
    }
    let report = check_file(file).map_err(|e| Failure::vault(file, &e))?;
    let name = file.display();
    match report.format {
        FileFormat::Vault => {}
        FileFormat::Empty => {
            return Err(Failure::new(
                EXIT_NOT_A_VAULT,
                format!("{name} is empty, not a vault (it was left as it is)"),
            ))
        }
        FileFormat::NotSqlite => {
            return Err(Failure::new(
                EXIT_NOT_A_VAULT,
                format!("{name} is not a tokenvault file (not an SQLite database)"),
            ))
        }
        FileFormat::ForeignSqlite => {
            return Err(Failure::new(
                EXIT_NOT_A_VAULT,
                format!(
                    "{name} is an SQLite database but not a tokenvault file (application id {:#010x})",
                    report.application_id.unwrap_or(0)
                ),
            ))
        }
    }
    if report.schema_status == Some(SchemaStatus::Newer) {
        let err = VaultError::SchemaTooNew {
            found: report.schema_version.unwrap_or(0),
            supported: tokenvault::SCHEMA_VERSION,
        };
        return Err(Failure::vault(file, &err));
    }
    Ok(report)
}

// ----- inspect --------------------------------------------------------------------------------

fn inspect(file: &Path, key: &KeyArgs, json: bool, allow_changes: bool) -> Result<(), Failure> {
    let key = key_source(key.key_file.as_deref(), key.passphrase_env.as_deref(), "key")?;
    let report = precheck(file)?;
    if !allow_changes {
        if report.schema_status == Some(SchemaStatus::Older) {
            return Err(Failure::new(
                EXIT_WOULD_CHANGE,
                format!(
                    "{} has schema version {}: opening it upgrades it to {} (as the app's next open would); \
                     nothing was done. Pass --allow-changes to inspect it anyway",
                    file.display(),
                    report.schema_version.unwrap_or(0),
                    tokenvault::SCHEMA_VERSION
                ),
            ));
        }
        if report.key_slots == Some(2) {
            return Err(Failure::new(
                EXIT_WOULD_CHANGE,
                format!(
                    "{}: a rekey is waiting for its first open with the new key; opening it with the new key \
                     confirms it (the old key stops opening the vault). Nothing was done. Finish the rekey (open \
                     the vault with the new key in the app), or pass --allow-changes",
                    file.display()
                ),
            ));
        }
    }
    let vault = Vault::open(file, key, VaultOptions::default()).map_err(|e| Failure::vault(file, &e))?;
    let accounts = vault.list_accounts().map_err(|e| Failure::vault(file, &e))?;
    let records = vault.session_count().map_err(|e| Failure::vault(file, &e))?;
    let mut progress = Progress::new("inspecting", accounts.len());
    let mut reports = Vec::with_capacity(accounts.len());
    for (i, account) in accounts.iter().enumerate() {
        reports.push((account, vault.account_report(account)));
        progress.tick(i + 1);
    }
    progress.finish();
    let unreadable = records.saturating_sub(accounts.len());
    let out = if json {
        let value = json!({
            "file": file.display().to_string(),
            "schema_version": report.schema_version,
            "records": records,
            "unreadable_records": unreadable,
            "accounts": reports.iter().map(|(a, r)| account_json(a, r)).collect::<Vec<_>>(),
        });
        format!("{value:#}\n")
    } else {
        let mut s = format!(
            "vault {} (schema {}): {} account(s)",
            file.display(),
            report.schema_version.unwrap_or(0),
            accounts.len()
        );
        if unreadable > 0 {
            s.push_str(&format!(
                ", {unreadable} record(s) could not be read (corrupt or failing their check)"
            ));
        }
        s.push('\n');
        for (account, r) in &reports {
            s.push('\n');
            s.push_str(&account_text(account, r));
        }
        s
    };
    drop(vault);
    write_stdout(&out)
}

fn failure_json(code: tokenvault::ErrorCode, message: &str, ago_ms: Option<u64>, source: &str) -> Value {
    json!({
        "code": code.as_i32(),
        "name": code.name(),
        "message": message,
        "ago_ms": ago_ms,
        "source": source,
    })
}

fn account_json(account: &str, r: &Result<AccountReport, VaultError>) -> Value {
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            return json!({
                "account": account,
                "error": {"code": e.code().as_i32(), "name": e.code().name(), "message": e.to_string()},
            })
        }
    };
    let i = &r.info;
    let last_failure = match (&r.verdict, &i.last_refresh_failure) {
        (Some(v), _) => failure_json(v.code, &v.message, None, "stored_verdict"),
        (None, Some(f)) => failure_json(f.code, &f.message, Some(f.ago_ms), "this_process"),
        (None, None) => Value::Null,
    };
    json!({
        "account": i.account,
        "profile": i.profile,
        "generation": i.generation,
        "state": format::state(i.state),
        "access_expires_at_ms": i.access_expires_at_ms,
        "access_expires_at": timestamp(i.access_expires_at_ms),
        "access_remaining_ms": i.access_remaining_ms,
        "session_expires_at_ms": i.session_expires_at_ms,
        "session_expires_at": i.session_expires_at_ms.map(timestamp),
        "session_remaining_ms": i.session_remaining_ms,
        "offline": i.offline,
        "clock_offset_ms": i.clock_offset_ms,
        "last_failure": last_failure,
        "refresh_count": i.refresh_count,
        "lease": r.lease.name(),
        "has_refresh_credential": i.has_refresh_credential,
    })
}

fn account_text(account: &str, r: &Result<AccountReport, VaultError>) -> String {
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            return format!(
                "account {}\n  error            {} ({})\n",
                printable(account),
                printable(&e.to_string()),
                e.code().name()
            )
        }
    };
    let i = &r.info;
    let session = match (i.offline, i.session_expires_at_ms, i.session_remaining_ms) {
        (true, _, _) => "never (offline token)".to_owned(),
        (false, Some(at), Some(left)) => format!("{} ({})", timestamp(at), duration(left)),
        (false, Some(at), None) => timestamp(at),
        (false, None, _) => "unknown (the server did not say)".to_owned(),
    };
    let failure = match (&r.verdict, &i.last_refresh_failure) {
        (Some(v), _) => format!(
            "{} (code {}): {}; stored with the session (time not recorded)",
            v.code.name(),
            v.code.as_i32(),
            printable(&v.message)
        ),
        (None, Some(f)) => format!(
            "{} (code {}): {}; {} ago",
            f.code.name(),
            f.code.as_i32(),
            printable(&f.message),
            format::span(f.ago_ms)
        ),
        (None, None) => "none".to_owned(),
    };
    let lease = match r.lease {
        tokenvault::LeaseState::Idle => "idle",
        tokenvault::LeaseState::Refreshing => "refreshing (a refresh lock is held right now)",
        tokenvault::LeaseState::AnswerLost => "answer lost (a refresh request may have reached the server unanswered)",
    };
    format!(
        "account {}\n  profile          {}\n  generation       {}\n  state            {}\n  access expires   {} ({})\n  \
         session expires  {}\n  clock offset     {}\n  last failure     {}\n  refreshes        {}\n  lease            {}\n",
        printable(&i.account),
        printable(&i.profile),
        i.generation,
        format::state(i.state),
        timestamp(i.access_expires_at_ms),
        duration(i.access_remaining_ms),
        session,
        offset(i.clock_offset_ms),
        failure,
        i.refresh_count,
        lease,
    )
}

// ----- check ----------------------------------------------------------------------------------

fn check(file: &Path, json: bool) -> Result<(), Failure> {
    if !file.exists() {
        return Err(Failure::new(
            EXIT_ERROR,
            format!("{}: no such file (it was not created)", file.display()),
        ));
    }
    let r = check_file(file).map_err(|e| Failure::vault(file, &e))?;
    let (verdict, code) = check_verdict(&r);
    let out = if json {
        let value = json!({
            "file": file.display().to_string(),
            "file_size": r.file_size,
            "format": match r.format {
                FileFormat::Empty => "empty",
                FileFormat::NotSqlite => "not_sqlite",
                FileFormat::ForeignSqlite => "foreign_sqlite",
                FileFormat::Vault => "tokenvault",
            },
            "application_id": r.application_id,
            "schema_version": r.schema_version,
            "supported_schema_version": tokenvault::SCHEMA_VERSION,
            "schema_status": r.schema_status.map(|s| match s {
                SchemaStatus::Current => "current",
                SchemaStatus::Older => "older",
                SchemaStatus::Newer => "newer",
                SchemaStatus::Missing => "missing",
            }),
            "integrity_ok": r.integrity_ok,
            "integrity_messages": r.integrity_messages,
            "records": r.session_count,
            "key_slots": r.key_slots,
            "lost_answer_markers": r.lost_answer_markers,
            "key_epoch": r.key_epoch,
            "log_not_read": r.log_not_read,
            "healthy": r.is_healthy(),
            "verdict": verdict,
        });
        format!("{value:#}\n")
    } else {
        check_text(file, &r, &verdict)
    };
    write_stdout(&out)?;
    match code {
        0 => Ok(()),
        // The verdict was printed on stdout; the exit code carries the rest.
        c => Err(Failure::new(c, format!("{}: {verdict}", file.display()))),
    }
}

/// One line for the report, and the exit code.
fn check_verdict(r: &FileReport) -> (String, u8) {
    match (r.format, r.schema_status) {
        (FileFormat::Empty, _) => ("an empty file, not a vault".into(), EXIT_NOT_A_VAULT),
        (FileFormat::NotSqlite, _) => (
            "not a tokenvault file (not an SQLite database)".into(),
            EXIT_NOT_A_VAULT,
        ),
        (FileFormat::ForeignSqlite, _) => ("an SQLite database, but not a tokenvault file".into(), EXIT_NOT_A_VAULT),
        (FileFormat::Vault, Some(SchemaStatus::Newer)) => (
            format!(
                "written by a newer tokenvault (schema {} > {}): this version cannot open it",
                r.schema_version.unwrap_or(0),
                tokenvault::SCHEMA_VERSION
            ),
            EXIT_SCHEMA_TOO_NEW,
        ),
        (FileFormat::Vault, _) if !r.is_healthy() => (
            "a damaged vault (see the integrity and schema lines)".into(),
            EXIT_NOT_A_VAULT,
        ),
        (FileFormat::Vault, _) => ("healthy".into(), 0),
    }
}

fn check_text(file: &Path, r: &FileReport, verdict: &str) -> String {
    let mut s = format!("file             {} ({} bytes)\n", file.display(), r.file_size);
    let format = match r.format {
        FileFormat::Empty => "empty".to_owned(),
        FileFormat::NotSqlite => "not an SQLite database".to_owned(),
        FileFormat::ForeignSqlite => format!(
            "SQLite, application id {:#010x} (not a tokenvault file)",
            r.application_id.unwrap_or(0)
        ),
        FileFormat::Vault => format!(
            "tokenvault vault (application id {:#010x})",
            r.application_id.unwrap_or(0)
        ),
    };
    s.push_str(&format!("format           {format}\n"));
    if let Some(v) = r.schema_version {
        let status = match r.schema_status {
            Some(SchemaStatus::Current) => " (current)".to_owned(),
            Some(SchemaStatus::Older) => {
                format!(" (older: the next open upgrades it to {})", tokenvault::SCHEMA_VERSION)
            }
            Some(SchemaStatus::Newer) => format!(" (newer than this tool's {})", tokenvault::SCHEMA_VERSION),
            Some(SchemaStatus::Missing) => " (missing)".to_owned(),
            None => String::new(),
        };
        s.push_str(&format!("schema version   {v}{status}\n"));
    }
    match r.integrity_ok {
        Some(true) => s.push_str("integrity        ok\n"),
        Some(false) => {
            s.push_str("integrity        FAILED\n");
            for m in &r.integrity_messages {
                s.push_str(&format!("                 {m}\n"));
            }
        }
        None => {}
    }
    if let Some(n) = r.session_count {
        s.push_str(&format!("records          {n}\n"));
    }
    if let Some(n) = r.key_slots {
        let note = if n > 1 {
            " (a rekey waits for its first open with the new key)"
        } else {
            ""
        };
        s.push_str(&format!("key slots        {n}{note}\n"));
    }
    if let Some(n) = r.lost_answer_markers {
        s.push_str(&format!("lost answers     {n}\n"));
    }
    if let Some(n) = r.key_epoch {
        s.push_str(&format!("rekeys           {n}\n"));
    }
    if r.log_not_read {
        s.push_str("note             a -wal log exists without its -shm index: only the main file was read\n");
    }
    s.push_str(&format!("verdict          {verdict}\n"));
    s
}

// ----- rekey ----------------------------------------------------------------------------------

fn rekey(file: &Path, key: &KeyArgs, new_key: &NewKeyArgs) -> Result<(), Failure> {
    let old = key_source(key.key_file.as_deref(), key.passphrase_env.as_deref(), "key")?;
    // Read the new key twice (once for the rekey, once to confirm it), before anything is
    // changed: a bad new key file fails here, not halfway.
    let new = key_source(
        new_key.new_key_file.as_deref(),
        new_key.new_passphrase_env.as_deref(),
        "new key",
    )?;
    let confirm = key_source(
        new_key.new_key_file.as_deref(),
        new_key.new_passphrase_env.as_deref(),
        "new key",
    )?;
    let report = precheck(file)?;
    let vault = Vault::open(file, old, VaultOptions::default()).map_err(|e| Failure::vault(file, &e))?;
    let records = vault.session_count().map_err(|e| Failure::vault(file, &e))?;
    let mut progress = Progress::new("re-sealing", records);
    vault
        .rekey_with_progress(new, &mut |done, _| progress.tick(done))
        .map_err(|e| Failure::vault(file, &e))?;
    progress.finish();
    vault.close().map_err(|e| Failure::vault(file, &e))?;
    drop(vault);
    let upgraded = report.schema_status == Some(SchemaStatus::Older);
    // The first open with the new key confirms the rotation: the old key's slot is dropped.
    let confirmed = Vault::open(file, confirm, VaultOptions::default()).and_then(|v| v.close());
    let mut out = format!(
        "rekeyed {}: {records} record(s) re-sealed under a new data key{}.\n",
        file.display(),
        if upgraded {
            format!(" (the schema was upgraded to {})", tokenvault::SCHEMA_VERSION)
        } else {
            String::new()
        }
    );
    match confirmed {
        Ok(()) => out.push_str(
            "The new key is confirmed: only the new key opens this vault now.\n\
             Next: give the app the new key (replace the old one in its secure storage) before it opens \
             the vault again, then delete the old key. An app that had the vault open gets a wrong-key \
             error until it reopens with the new key.\n",
        ),
        Err(e) => {
            write_stdout(&out)?;
            return Err(Failure::new(
                EXIT_ERROR,
                format!(
                    "the rekey is done but opening with the new key failed ({e}); the old key still opens the \
                     vault: keep both keys and run `tokenvault rekey` again"
                ),
            ));
        }
    }
    write_stdout(&out)
}

// ----- output ---------------------------------------------------------------------------------

fn write_stdout(s: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(EXIT_ERROR, format!("cannot write the output ({})", e.kind())))
}

/// Progress on stderr, only when stderr is a terminal (never in a pipe or a log).
struct Progress {
    what: &'static str,
    total: usize,
    tty: bool,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    /// Counts are redrawn at most every this many ms.
    const EVERY_MS: u128 = 100;

    fn new(what: &'static str, total: usize) -> Progress {
        Progress {
            what,
            total,
            tty: std::io::stderr().is_terminal(),
            last: None,
            shown: false,
        }
    }

    fn tick(&mut self, done: usize) {
        if !self.tty {
            return;
        }
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t).as_millis() < Self::EVERY_MS)
            && done != self.total
        {
            return;
        }
        self.last = Some(now);
        self.shown = true;
        eprint!("\r{}: {done}/{} ", self.what, self.total);
    }

    fn finish(&mut self) {
        if self.tty && self.shown {
            eprint!("\r\x1b[2K");
        }
    }
}
