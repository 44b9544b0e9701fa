//! The `tokenvault` binary as a user runs it: the real executable on real vault files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tokenvault::{HttpResponse, KeySource, NewSession, RefreshStep, Vault, VaultOptions};

const KEY: [u8; 32] = *b"0123456789abcdef-raw-key-bytes!!";
const NEW_KEY: [u8; 32] = *b"another-32-byte-key-for-rekeying";
const PROFILE: &str = r#"{"preset":"oauth2","name":"game","url":"https://127.0.0.1:1/token","client_id":"c"}"#;
/// Every secret the fixtures store: none may appear in any output.
const SECRETS: [&str; 8] = [
    "AT-alice-5ecret",
    "RT-alice-5ecret",
    "AT-bob-5ecret",
    "RT-bob-5ecret",
    "AT-carol-5ecret",
    "RT-carol-5ecret",
    "AT-dave-5ecret",
    "RT-dave-5ecret",
];

struct Fixture {
    dir: tempfile::TempDir,
    vault: PathBuf,
    key: PathBuf,
    new_key: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("player.vault");
        let key = dir.path().join("old.key");
        let new_key = dir.path().join("new.key");
        std::fs::write(&key, KEY).unwrap();
        std::fs::write(&new_key, NEW_KEY).unwrap();
        Fixture {
            dir,
            vault,
            key,
            new_key,
        }
    }

    /// A vault with four accounts: a fresh one, an offline one, one the server refused (a
    /// stored verdict), and one whose refresh request was handed out and never answered.
    fn with_sessions() -> Fixture {
        let f = Fixture::new();
        let v = open(&f.vault, &KEY);
        v.store(
            NewSession::new("alice", "game", SECRETS[0])
                .refresh_credential(SECRETS[1])
                .expires_in_secs(1800)
                .refresh_expires_in_secs(14 * 86_400),
        )
        .unwrap();
        v.store(
            NewSession::new("bob", "game", SECRETS[2])
                .refresh_credential(SECRETS[3])
                .offline(true),
        )
        .unwrap();
        v.store(NewSession::new("carol", "game", SECRETS[4]).refresh_credential(SECRETS[5]))
            .unwrap();
        let RefreshStep::Send(p) = v.begin_refresh("carol", true).unwrap() else {
            panic!("expected a request")
        };
        let refused = HttpResponse::new(
            400,
            vec![],
            br#"{"error":"invalid_grant","error_description":"Token is not active"}"#.to_vec(),
        );
        assert!(v.finish_refresh(p.attempt, refused).is_err());
        v.store(NewSession::new("dave", "game", SECRETS[6]).refresh_credential(SECRETS[7]))
            .unwrap();
        let RefreshStep::Send(_lost) = v.begin_refresh("dave", true).unwrap() else {
            panic!("expected a request")
        };
        v.close().unwrap();
        f
    }

    /// Every file under the directory (recursively) with its bytes.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    out.insert(p.clone(), b"<dir>".to_vec());
                    walk(&p, out);
                } else {
                    out.insert(p.clone(), std::fs::read(&p).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

fn open(path: &Path, key: &[u8]) -> Vault {
    let v = Vault::open(path, KeySource::raw(key).unwrap(), VaultOptions::default()).unwrap();
    v.load_profile_json(PROFILE).unwrap();
    v
}

fn tokenvault() -> Command {
    let mut c = Command::cargo_bin("tokenvault").unwrap();
    c.env_remove("TV_PASS").env_remove("TV_NEW_PASS");
    c
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    let run = Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert_no_secret(&run);
    run
}

/// No token, refresh credential, key or passphrase, in any form we can think of.
fn assert_no_secret(run: &Run) {
    let all = format!("{}\n{}", run.stdout, run.stderr);
    for s in SECRETS {
        assert!(!all.contains(s), "a secret appeared in the output:\n{all}");
    }
    for key in [KEY, NEW_KEY] {
        let text = String::from_utf8_lossy(&key).into_owned();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        for needle in [text.as_str(), &text[..12], hex.as_str(), &hex[..16]] {
            assert!(!all.contains(needle), "key material appeared in the output:\n{all}");
        }
    }
    for pass in ["correct horse battery", "new staple passphrase"] {
        assert!(!all.contains(pass), "a passphrase appeared in the output:\n{all}");
    }
}

#[test]
fn inspect_shows_every_account_in_text_without_a_secret_and_changes_nothing() {
    let f = Fixture::with_sessions();
    let before = f.snapshot();
    let r = run(tokenvault().arg("inspect").arg(&f.vault).arg("--key-file").arg(&f.key));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(f.snapshot(), before, "inspect changed a file");
    let out = &r.stdout;
    assert!(out.contains("4 account(s)"), "{out}");
    for account in ["alice", "bob", "carol", "dave"] {
        assert!(out.contains(&format!("account {account}\n")), "{out}");
    }
    assert!(out.contains("profile          game"), "{out}");
    assert!(out.contains("never (offline token)"), "{out}");
    assert!(out.contains("reauthentication_required (code 1)"), "{out}");
    assert!(out.contains("invalid_grant"), "{out}");
    assert!(out.contains("answer lost"), "{out}");
    assert!(out.contains("access expires   20"), "{out}");
    // Stderr is not a terminal here: no progress, nothing at all.
    assert_eq!(r.stderr, "");
}

#[test]
fn inspect_json_has_every_field_of_every_account() {
    let f = Fixture::with_sessions();
    let r = run(tokenvault()
        .arg("inspect")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&f.key)
        .arg("--json"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["schema_version"], tokenvault::SCHEMA_VERSION);
    assert_eq!(v["records"], 4);
    assert_eq!(v["unreadable_records"], 0);
    let accounts = v["accounts"].as_array().unwrap();
    let by: BTreeMap<&str, &serde_json::Value> = accounts.iter().map(|a| (a["account"].as_str().unwrap(), a)).collect();
    assert_eq!(
        by.keys().copied().collect::<Vec<_>>(),
        ["alice", "bob", "carol", "dave"]
    );

    let alice = by["alice"];
    assert_eq!(alice["profile"], "game");
    assert_eq!(alice["generation"], 1);
    assert_eq!(alice["state"], "fresh");
    let left = alice["access_remaining_ms"].as_i64().unwrap();
    assert!((1_700_000..=1_800_000).contains(&left), "{left}");
    assert!(alice["access_expires_at"].as_str().unwrap().ends_with('Z'));
    let session_left = alice["session_remaining_ms"].as_i64().unwrap();
    assert!(session_left > 13 * 86_400_000, "{session_left}");
    assert_eq!(alice["offline"], false);
    assert!(alice["clock_offset_ms"].is_i64());
    assert_eq!(alice["last_failure"], serde_json::Value::Null);
    assert_eq!(alice["refresh_count"], 0);
    assert_eq!(alice["lease"], "idle");
    assert_eq!(alice["has_refresh_credential"], true);

    assert_eq!(by["bob"]["offline"], true);
    assert_eq!(by["bob"]["session_expires_at_ms"], serde_json::Value::Null);

    let carol = by["carol"];
    assert_eq!(carol["state"], "reauthentication_required");
    assert_eq!(carol["last_failure"]["code"], 1);
    assert_eq!(carol["last_failure"]["name"], "reauthentication_required");
    assert_eq!(carol["last_failure"]["source"], "stored_verdict");
    assert!(carol["last_failure"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid_grant"));

    assert_eq!(by["dave"]["lease"], "answer_lost");
    assert_eq!(by["dave"]["generation"], 1);
}

#[test]
fn inspect_with_a_passphrase_from_the_environment() {
    let f = Fixture::new();
    let v = Vault::open(
        &f.vault,
        KeySource::passphrase("correct horse battery").unwrap(),
        VaultOptions::default(),
    )
    .unwrap();
    v.load_profile_json(PROFILE).unwrap();
    v.store(NewSession::new("alice", "game", SECRETS[0]).refresh_credential(SECRETS[1]))
        .unwrap();
    drop(v);
    let r = run(tokenvault()
        .arg("inspect")
        .arg(&f.vault)
        .args(["--passphrase-env", "TV_PASS"])
        .env("TV_PASS", "correct horse battery"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("account alice"));

    let r = run(tokenvault()
        .arg("inspect")
        .arg(&f.vault)
        .args(["--passphrase-env", "TV_PASS"]));
    assert_eq!(r.code, 2, "an unset variable is a usage error");
    assert!(
        r.stderr.contains("TV_PASS") && r.stderr.contains("not set"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_wrong_key_is_named_exits_3_and_leaves_every_byte_and_file_as_it_was() {
    let f = Fixture::with_sessions();
    let wrong = f.dir.path().join("wrong.key");
    std::fs::write(&wrong, [9u8; 32]).unwrap();
    // A copy of a player's file comes without its lock directory: a wrong key must not make one.
    let locks = f.dir.path().join("player.vault-locks");
    std::fs::remove_dir_all(&locks).unwrap();
    let before = f.snapshot();
    for args in [vec!["inspect"], vec!["inspect", "--json"]] {
        let r = run(tokenvault().args(&args).arg(&f.vault).arg("--key-file").arg(&wrong));
        assert_eq!(r.code, 3, "{}", r.stderr);
        assert!(
            r.stderr.contains("wrong key: the key does not open the vault"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stdout, "");
    }
    let r = run(tokenvault()
        .arg("rekey")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&wrong)
        .arg("--new-key-file")
        .arg(&f.new_key));
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("wrong key"), "{}", r.stderr);
    let r = run(tokenvault()
        .arg("inspect")
        .arg(&f.vault)
        .args(["--passphrase-env", "TV_PASS"])
        .env("TV_PASS", "correct horse battery"));
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(f.snapshot(), before, "a wrong key changed a file or created one");
    assert!(!locks.exists());
}

#[test]
fn a_key_file_of_the_wrong_length_is_a_usage_error() {
    let f = Fixture::with_sessions();
    let short = f.dir.path().join("short.key");
    std::fs::write(&short, b"0123456789abcdef-raw-key-bytes!!\n").unwrap();
    let r = run(tokenvault().arg("inspect").arg(&f.vault).arg("--key-file").arg(&short));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("exactly 32 raw bytes (it holds 33)"), "{}", r.stderr);
    let r = run(tokenvault().arg("inspect").arg(&f.vault));
    assert_eq!(r.code, 2, "a key is required");
}

#[test]
fn a_missing_file_is_an_error_and_is_never_created() {
    let f = Fixture::new();
    let missing = f.dir.path().join("nope.vault");
    for cmd in [
        tokenvault().arg("inspect").arg(&missing).arg("--key-file").arg(&f.key),
        tokenvault().arg("check").arg(&missing),
        tokenvault()
            .arg("rekey")
            .arg(&missing)
            .arg("--key-file")
            .arg(&f.key)
            .arg("--new-key-file")
            .arg(&f.new_key),
    ] {
        let r = run(cmd);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("no such file (it was not created)"), "{}", r.stderr);
        assert!(!missing.exists(), "the missing file was created");
    }
    assert!(!f.dir.path().join("nope.vault-locks").exists());
}

#[test]
fn check_reports_a_healthy_vault_without_a_key() {
    let f = Fixture::with_sessions();
    let before = f.snapshot();
    let r = run(tokenvault().arg("check").arg(&f.vault));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = &r.stdout;
    assert!(out.contains("tokenvault vault (application id 0x544b5654)"), "{out}");
    assert!(
        out.contains(&format!("schema version   {} (current)", tokenvault::SCHEMA_VERSION)),
        "{out}"
    );
    assert!(out.contains("integrity        ok"), "{out}");
    assert!(out.contains("records          4"), "{out}");
    assert!(out.contains("lost answers     1"), "{out}");
    assert!(out.contains("verdict          healthy"), "{out}");

    let r = run(tokenvault().arg("check").arg(&f.vault).arg("--json"));
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["format"], "tokenvault");
    assert_eq!(v["application_id"], tokenvault::APPLICATION_ID);
    assert_eq!(v["schema_version"], tokenvault::SCHEMA_VERSION);
    assert_eq!(v["integrity_ok"], true);
    assert_eq!(v["records"], 4);
    assert_eq!(v["key_slots"], 1);
    assert_eq!(v["healthy"], true);
    assert_eq!(f.snapshot(), before, "check changed or created a file");
}

#[test]
fn check_tells_a_foreign_sqlite_file_garbage_and_an_empty_file_from_a_vault() {
    let f = Fixture::new();
    let foreign = f.dir.path().join("foreign.db");
    let c = rusqlite::Connection::open(&foreign).unwrap();
    c.execute_batch("CREATE TABLE sessions (x); INSERT INTO sessions VALUES (1);")
        .unwrap();
    drop(c);
    let garbage = f.dir.path().join("garbage.db");
    std::fs::write(&garbage, b"SQLite format 2\0 not really, just bytes".repeat(200)).unwrap();
    let empty = f.dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let before = f.snapshot();

    let r = run(tokenvault().arg("check").arg(&foreign));
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stdout.contains("application id 0x00000000 (not a tokenvault file)"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("not a tokenvault file"), "{}", r.stderr);
    let r = run(tokenvault().arg("check").arg(&garbage));
    assert_eq!(r.code, 5);
    assert!(r.stdout.contains("not an SQLite database"), "{}", r.stdout);
    let r = run(tokenvault().arg("check").arg(&garbage).arg("--json"));
    assert_eq!(r.code, 5);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["format"], "not_sqlite");
    assert_eq!(v["healthy"], false);
    let r = run(tokenvault().arg("check").arg(&empty));
    assert_eq!(r.code, 5);
    assert!(r.stdout.contains("an empty file, not a vault"), "{}", r.stdout);

    // inspect and rekey refuse them too, before any open (an empty file would become a vault).
    for file in [&foreign, &garbage, &empty] {
        let r = run(tokenvault().arg("inspect").arg(file).arg("--key-file").arg(&f.key));
        assert_eq!(r.code, 5, "{}", r.stderr);
        let r = run(tokenvault()
            .arg("rekey")
            .arg(file)
            .arg("--key-file")
            .arg(&f.key)
            .arg("--new-key-file")
            .arg(&f.new_key));
        assert_eq!(r.code, 5, "{}", r.stderr);
    }
    assert_eq!(f.snapshot(), before, "a command changed a non-vault file");
}

#[test]
fn a_file_from_a_newer_version_is_said_so_and_left_untouched() {
    let f = Fixture::with_sessions();
    let c = rusqlite::Connection::open(&f.vault).unwrap();
    c.execute_batch(&format!("PRAGMA user_version = {};", tokenvault::SCHEMA_VERSION + 1))
        .unwrap();
    drop(c);
    let before = f.snapshot();
    let newer = format!("schema version {}", tokenvault::SCHEMA_VERSION + 1);

    let r = run(tokenvault().arg("check").arg(&f.vault));
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stdout.contains("written by a newer tokenvault"), "{}", r.stdout);
    let r = run(tokenvault().arg("inspect").arg(&f.vault).arg("--key-file").arg(&f.key));
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr.contains("newer tokenvault") && r.stderr.contains(&newer),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("it was not modified"), "{}", r.stderr);
    let r = run(tokenvault()
        .arg("rekey")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&f.key)
        .arg("--new-key-file")
        .arg(&f.new_key));
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(f.snapshot(), before, "a newer file was changed");
}

#[test]
fn rekey_then_only_the_new_key_opens() {
    let f = Fixture::with_sessions();
    let r = run(tokenvault()
        .arg("rekey")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&f.key)
        .arg("--new-key-file")
        .arg(&f.new_key));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("4 record(s) re-sealed"), "{}", r.stdout);
    assert!(r.stdout.contains("only the new key opens this vault"), "{}", r.stdout);
    assert!(r.stdout.contains("delete the old key"), "{}", r.stdout);

    let r = run(tokenvault()
        .arg("inspect")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&f.new_key)
        .arg("--json"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["accounts"].as_array().unwrap().len(), 4);
    let r = run(tokenvault().arg("inspect").arg(&f.vault).arg("--key-file").arg(&f.key));
    assert_eq!(r.code, 3, "the old key still opens: {}", r.stdout);

    // The sessions are intact, under the new key, in the library too.
    let v = open(&f.vault, &NEW_KEY);
    assert_eq!(v.access_token("alice").unwrap().expose(), SECRETS[0]);

    let r = run(tokenvault().arg("check").arg(&f.vault).arg("--json"));
    let c: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(c["key_slots"], 1);
    assert_eq!(c["key_epoch"], 1);
}

#[test]
fn rekey_from_a_key_file_to_a_passphrase_and_back() {
    let f = Fixture::with_sessions();
    let r = run(tokenvault()
        .arg("rekey")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&f.key)
        .args(["--new-passphrase-env", "TV_NEW_PASS"])
        .env("TV_NEW_PASS", "new staple passphrase"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(tokenvault()
        .arg("rekey")
        .arg(&f.vault)
        .args(["--passphrase-env", "TV_PASS"])
        .arg("--new-key-file")
        .arg(&f.key)
        .env("TV_PASS", "new staple passphrase"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(tokenvault().arg("inspect").arg(&f.vault).arg("--key-file").arg(&f.key));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("4 account(s)"));
}

#[test]
fn inspect_refuses_to_confirm_a_pending_rekey_unless_allowed() {
    let f = Fixture::with_sessions();
    let v = open(&f.vault, &KEY);
    v.rekey(KeySource::raw(&NEW_KEY).unwrap()).unwrap();
    drop(v);
    let before = f.snapshot();
    let r = run(tokenvault()
        .arg("inspect")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&f.new_key));
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("a rekey is waiting"), "{}", r.stderr);
    assert_eq!(f.snapshot(), before);

    let r = run(tokenvault()
        .arg("inspect")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&f.new_key)
        .arg("--allow-changes"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("4 account(s)"));
}

#[test]
fn help_documents_the_commands_and_exit_codes() {
    let r = run(tokenvault().arg("--help"));
    assert_eq!(r.code, 0);
    for needle in [
        "inspect",
        "check",
        "rekey",
        "Exit codes:",
        "3  wrong key",
        "4  the file was written by a newer",
    ] {
        assert!(r.stdout.contains(needle), "{needle} missing from:\n{}", r.stdout);
    }
    let r = run(tokenvault().args(["inspect", "--help"]));
    assert!(r.stdout.contains("--passphrase-env <VAR>") && r.stdout.contains("--key-file <KEYFILE>"));
    let r = run(tokenvault().arg("frobnicate"));
    assert_eq!(r.code, 2);
}

#[test]
fn a_file_of_an_older_schema_is_upgraded_only_when_allowed() {
    let f = Fixture::new();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/vault-v1.db");
    std::fs::copy(&golden, &f.vault).unwrap();
    std::fs::write(&f.key, [0x42; 32]).unwrap();
    let before = f.snapshot();

    let r = run(tokenvault().arg("check").arg(&f.vault));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("schema version   1 (older"), "{}", r.stdout);
    assert!(r.stdout.contains("records          2"), "{}", r.stdout);
    let r = run(tokenvault().arg("inspect").arg(&f.vault).arg("--key-file").arg(&f.key));
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("has schema version 1"), "{}", r.stderr);
    assert_eq!(
        f.snapshot(),
        before,
        "inspect upgraded the file without being allowed to"
    );

    let r = run(tokenvault()
        .arg("inspect")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&f.key)
        .arg("--allow-changes")
        .arg("--json"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> = v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["golden-alice", "golden-bob"]);
    let r = run(tokenvault().arg("check").arg(&f.vault));
    assert!(
        r.stdout
            .contains(&format!("schema version   {} (current)", tokenvault::SCHEMA_VERSION)),
        "{}",
        r.stdout
    );
}

#[test]
fn account_ids_with_control_characters_cannot_drive_the_terminal() {
    let f = Fixture::new();
    let v = open(&f.vault, &KEY);
    v.store(
        NewSession::new("evil\u{1b}[2J\nprofile          forged", "game", SECRETS[0]).refresh_credential(SECRETS[1]),
    )
    .unwrap();
    drop(v);
    let r = run(tokenvault().arg("inspect").arg(&f.vault).arg("--key-file").arg(&f.key));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains('\u{1b}'), "{:?}", r.stdout);
    assert!(
        r.stdout.contains("account evil\\u{1b}[2J\\nprofile          forged\n"),
        "{}",
        r.stdout
    );
    let r = run(tokenvault()
        .arg("inspect")
        .arg(&f.vault)
        .arg("--key-file")
        .arg(&f.key)
        .arg("--json"));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["accounts"][0]["account"], "evil\u{1b}[2J\nprofile          forged");
}
