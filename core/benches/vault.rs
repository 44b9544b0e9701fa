#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Benchmarks of the vault core (issue 2), each against a bare peer measured in the same run.
//! Figures, machine and ratios: `docs/PERFORMANCE.md`.
//!
//! * `cached_read`: `Vault::access_token` on a cached ~900-byte token vs a bare
//!   `parking_lot::RwLock<HashMap<String, String>>` read + `String` clone of the same token; one
//!   thread, then two threads reading at once (each thread does N reads; the figure is the time per
//!   read on one thread, so perfect scaling shows the single-thread figure again), and a control
//!   with nothing shared between the threads. Before the criterion runs, interleaved batches print
//!   paired medians and ratios (vault vs bare, 2 threads vs 1).
//! * `store`: `Vault::store` (validate, encrypt, one durable commit) vs one bare durable SQLite
//!   commit (WAL, `synchronous=FULL`, an upsert into a STRICT table) of a row of the same size, in
//!   the same directory; plus, as a diagnostic, the same bare commit into a `WITHOUT ROWID` table
//!   (the vault's layout). Before the criterion runs, 500 interleaved pairs (store, bare commit)
//!   print both medians and the median of the pair ratios: the machine's speed drifts between
//!   two benchmarks run one after the other, never within a pair.
//! * `open_10k`: opening a vault that holds 10,000 sessions, and opening it and reading every
//!   session once (first touch: SQLite lookup, decrypt, parse, cache). Prints the resident memory
//!   per cached session (from `/proc/self/statm`).
//! * `refresh_offline` (diagnostic): the vault's refresh path without the network (two-step
//!   refresh fed a canned seed-001 response) vs one bare durable commit of a row of the same size.
//! * `cold_start` (issue 14): what a game pays at launch. A fresh `Vault::open` (raw 32-byte
//!   key) of an existing file holding one session, then the first `access_token` (a cache miss:
//!   SQLite lookup, decrypt, parse), vs a fresh `rusqlite::Connection::open` of an existing bare
//!   SQLite file (WAL, one row of the same size) and one `SELECT` of that row. Each iteration opens
//!   a new `Vault`/`Connection`; dropping it (which closes the SQLite connection, and checkpoints
//!   and deletes the WAL as the last connection) happens **outside** the timing on both sides.
//!   "Cold" means a new open in a warm process, not a cold OS page cache: the files stay cached.
//!   Paired lines print the ratio, a split of where the time goes (open, first read, the built-in
//!   transport's construction), and the passphrase (Argon2id) open against the raw-key open.
//!
//! Run: `cargo bench -p tokenvault --bench vault -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode};
use parking_lot::RwLock;
use rusqlite::{params, Connection};
use tokenvault::{
    HttpResponse, HttpsTransport, KeySource, NewSession, Preset, Profile, RefreshStep, Transport, Vault, VaultOptions,
};

const KEY: [u8; 32] = [7u8; 32];
const PROFILE: &str = "bench";
const TOKEN_LEN: usize = 900;
const SESSIONS: usize = 10_000;

// ----- fixtures ------------------------------------------------------------------------------

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A JWT-shaped access token of exactly `len` bytes (header.claims.signature, base64url), with
/// real `iat`/`exp` claims so the vault's claim decoding runs as it would in production.
fn jwt_token(sub: &str, len: usize) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signature = URL_SAFE_NO_PAD.encode([0x5Au8; 32]);
    let iat = now_secs();
    let claims = |pad: usize| {
        format!(
            r#"{{"sub":"{sub}","iat":{iat},"exp":{},"scope":"game profile","pad":"{}"}}"#,
            iat + 3600,
            "x".repeat(pad)
        )
    };
    // Base64 turns n bytes into ceil(4n/3) characters: start just below the target.
    let target = len - header.len() - signature.len() - 2;
    let mut pad = (target * 3 / 4).saturating_sub(claims(0).len() + 2);
    loop {
        let token = format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(claims(pad)));
        if token.len() >= len {
            assert!(token.len() <= len + 1, "token length {}", token.len());
            return token;
        }
        pad += 1;
    }
}

/// A 32-byte refresh token in base64url (43 characters), different per `n`.
fn refresh_token(n: u64) -> String {
    let mut bytes = [0xA5u8; 32];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn open_vault(path: &Path) -> Vault {
    open_vault_with(path, KeySource::raw(&KEY).unwrap())
}

fn open_vault_with(path: &Path, key: KeySource) -> Vault {
    let vault = Vault::open(path, key, VaultOptions::default()).unwrap();
    vault
        .register_profile(
            Profile::preset(
                Preset::OAuth2,
                PROFILE,
                "https://auth.example.com/oauth/token",
                serde_json::json!({"client_id": "bench"}),
            )
            .unwrap(),
        )
        .unwrap();
    vault
}

fn session(account: &str, token: &str, n: u64) -> NewSession {
    NewSession::new(account, PROFILE, token)
        .refresh_credential(refresh_token(n))
        .expires_in(Duration::from_secs(3600))
}

/// Bytes of the stored session rows, read from the vault file through a separate connection:
/// (smallest, largest) of `length(account_hash) + length(nonce) + length(ciphertext)`.
fn vault_row_len(path: &Path) -> (usize, usize) {
    let conn = Connection::open(path).unwrap();
    conn.query_row(
        "SELECT min(length(account_hash) + length(nonce) + length(ciphertext)),
                max(length(account_hash) + length(nonce) + length(ciphertext)) FROM manifest
         WHERE account_hash IS NOT NULL",
        [],
        |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
    )
    .unwrap()
}

/// The bare durable-commit peer: one SQLite file, WAL, `synchronous=FULL`, a STRICT table
/// (blob key, integer, blob payload), one upsert per commit (autocommit).
struct BareStore {
    conn: Connection,
    key: Vec<u8>,
    payload: Vec<u8>,
    n: i64,
}

impl BareStore {
    /// `row_len` is the whole row as the vault stores it (key + nonce + ciphertext).
    /// `without_rowid` gives the table the vault's own layout (`STRICT, WITHOUT ROWID`);
    /// otherwise it is a plain rowid table, SQLite's default.
    fn open(path: &Path, row_len: usize, without_rowid: bool) -> BareStore {
        let conn = Connection::open(path).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let options = if without_rowid {
            "STRICT, WITHOUT ROWID"
        } else {
            "STRICT"
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS sessions (
                 account_hash BLOB PRIMARY KEY NOT NULL,
                 generation   INTEGER NOT NULL,
                 payload      BLOB NOT NULL
             ) {options};"
        ))
        .unwrap();
        let key = vec![0x11u8; 32];
        let payload = vec![0x42u8; row_len - key.len()];
        BareStore {
            conn,
            key,
            payload,
            n: 0,
        }
    }

    /// One durable commit of one row.
    fn commit(&mut self) {
        self.n += 1;
        // Every byte new, as a fresh nonce makes every byte of a vault row new: SQLite writes
        // only the pages whose bytes changed, so a mostly unchanged row would be cheaper.
        let mut x = (self.n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for chunk in self.payload.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO sessions (account_hash, generation, payload) VALUES (?1, ?2, ?3)
                 ON CONFLICT(account_hash) DO UPDATE SET generation = excluded.generation, payload = excluded.payload",
            )
            .unwrap();
        let changed = stmt.execute(params![self.key, self.n, self.payload]).unwrap();
        assert_eq!(changed, 1);
    }
}

/// Hand freed heap pages back to the kernel (glibc), so RSS deltas are not hidden by memory the
/// allocator kept from earlier work in this process.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// Bytes of heap in use (glibc `mallinfo2`: allocated chunks plus mmapped blocks); 0 elsewhere.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 has no preconditions.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use() -> u64 {
    0
}

/// Resident set size of this process, in bytes (Linux; 0 elsewhere).
#[cfg(not(target_os = "linux"))]
fn rss_bytes() -> u64 {
    0
}

/// Resident set size of this process, in bytes (Linux; 0 elsewhere).
#[cfg(target_os = "linux")]
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap()
}

/// Run `op` `iters` times on each of two threads started together; returns the slower thread's
/// elapsed time, so criterion reports the time per operation as seen by one thread.
fn on_two_threads(iters: u64, op: &(dyn Fn() + Sync)) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).max().unwrap()
    })
}

/// Paired, interleaved timing of two measurements (A B, B A, A B, ...), so a drift of the
/// machine's speed between two criterion benchmarks run one after the other (other builds share
/// the cores and the disk) cannot masquerade as a ratio. Each closure runs `ops` operations and
/// returns the time they took. Prints both medians per operation and the median of the per-pair
/// ratios A/B.
fn paired(label: &str, pairs: usize, ops: u64, mut a: impl FnMut() -> Duration, mut b: impl FnMut() -> Duration) {
    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    fn show(secs: f64) -> String {
        if secs < 1e-6 {
            format!("{:.1} ns", secs * 1e9)
        } else {
            format!("{:.1} µs", secs * 1e6)
        }
    }
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (x, y) = if i % 2 == 0 {
            let x = a();
            (x, b())
        } else {
            let y = b();
            (a(), y)
        };
        let (x, y) = (x.as_secs_f64() / ops as f64, y.as_secs_f64() / ops as f64);
        ta.push(x);
        tb.push(y);
        ratios.push(x / y);
    }
    println!(
        "{label}: {pairs} interleaved pairs: A median {}, B median {} per op; median of pair ratios A/B {:.2}",
        show(median(&mut ta)),
        show(median(&mut tb)),
        median(&mut ratios)
    );
}

/// Time `ops` calls of `op` on this thread.
fn timed(ops: u64, op: &dyn Fn()) -> Duration {
    let start = Instant::now();
    for _ in 0..ops {
        op();
    }
    start.elapsed()
}

// ----- 1. cached access-token read -----------------------------------------------------------

fn cached_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let vault = open_vault(&dir.path().join("read.db"));
    let token = jwt_token("player-1", TOKEN_LEN);
    vault.store(session("player-1", &token, 1)).unwrap();
    assert_eq!(vault.access_token("player-1").unwrap().expose(), token);

    let bare: RwLock<HashMap<String, String>> = RwLock::new(HashMap::new());
    bare.write().insert("player-1".to_owned(), token.clone());
    assert_eq!(bare.read().get("player-1").cloned().unwrap(), token);

    let vault_read = || {
        black_box(vault.access_token(black_box("player-1")).unwrap());
    };
    let bare_read = || {
        black_box(bare.read().get(black_box("player-1")).cloned().unwrap());
    };

    // Control: the same String clone with nothing shared between the threads (each clones its
    // own copy). Its 2-thread figure shows what "scaling" looks like on this machine at this
    // moment (two cores shared with other work).
    let private_clone = || {
        thread_local! {
            static TOKEN: String = jwt_token("player-1", TOKEN_LEN);
        }
        TOKEN.with(|t| black_box(black_box(t).clone()));
    };

    // Interleaved batches: robust ratios on a machine whose load changes from one second to the
    // next. 1-thread batches of 20,000 reads; 2-thread batches of 200,000 reads per thread.
    const ONE: u64 = 20_000;
    const TWO: u64 = 200_000;
    paired(
        "cached_read: paired 1 thread (A = vault, B = bare)",
        300,
        ONE,
        || timed(ONE, &vault_read),
        || timed(ONE, &bare_read),
    );
    paired(
        "cached_read: paired 2 threads (A = vault, B = bare)",
        40,
        TWO,
        || on_two_threads(TWO, &vault_read),
        || on_two_threads(TWO, &bare_read),
    );
    paired(
        "cached_read: scaling of the vault (A = 2 threads, B = 1 thread)",
        40,
        TWO,
        || on_two_threads(TWO, &vault_read),
        || timed(TWO, &vault_read),
    );
    paired(
        "cached_read: scaling of the bare peer (A = 2 threads, B = 1 thread)",
        40,
        TWO,
        || on_two_threads(TWO, &bare_read),
        || timed(TWO, &bare_read),
    );
    paired(
        "cached_read: scaling of the unshared control (A = 2 threads, B = 1 thread)",
        40,
        TWO,
        || on_two_threads(TWO, &private_clone),
        || timed(TWO, &private_clone),
    );

    let mut g = c.benchmark_group("cached_read");
    g.bench_function("vault_access_token/1_thread", |b| b.iter(vault_read));
    g.bench_function("bare_rwlock_hashmap_clone/1_thread", |b| b.iter(bare_read));
    g.bench_function("control_unshared_string_clone/1_thread", |b| b.iter(private_clone));
    g.bench_function("vault_access_token/2_threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, &vault_read))
    });
    g.bench_function("bare_rwlock_hashmap_clone/2_threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, &bare_read))
    });
    g.bench_function("control_unshared_string_clone/2_threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, &private_clone))
    });
    g.finish();
}

// ----- 2. storing a session vs one bare durable commit ---------------------------------------

fn store(c: &mut Criterion) {
    // One temporary directory (same file system) for both files.
    let dir = tempfile::tempdir().unwrap();
    let vault_path = dir.path().join("store.db");
    let vault = open_vault(&vault_path);
    let token = jwt_token("player-1", TOKEN_LEN);
    let new_session = session("player-1", &token, 1);
    vault.store(new_session.clone()).unwrap();
    let (row_len, _) = vault_row_len(&vault_path);
    println!(
        "store: a stored session row is {row_len} bytes (key + nonce + ciphertext); the bare row is the same size"
    );
    let mut bare = BareStore::open(&dir.path().join("bare.db"), row_len, false);
    bare.commit();
    let mut bare_wr = BareStore::open(&dir.path().join("bare-without-rowid.db"), row_len, true);
    bare_wr.commit();

    paired(
        "store: paired (A = vault_store, B = bare_sqlite_durable_commit)",
        500,
        1,
        || {
            let s = new_session.clone();
            let start = Instant::now();
            vault.store(s).unwrap();
            start.elapsed()
        },
        || {
            let start = Instant::now();
            bare.commit();
            start.elapsed()
        },
    );

    let mut g = c.benchmark_group("store");
    g.sample_size(50);
    g.bench_function("vault_store", |b| {
        b.iter_batched(
            || new_session.clone(),
            |s| vault.store(s).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("bare_sqlite_durable_commit", |b| b.iter(|| bare.commit()));
    // Diagnostic, not the target's peer: the same bare commit into the vault's table layout.
    g.bench_function("bare_sqlite_durable_commit_without_rowid", |b| {
        b.iter(|| bare_wr.commit())
    });
    g.finish();
}

// ----- 3. a vault holding 10,000 sessions ------------------------------------------------------

struct Populated {
    _dir: tempfile::TempDir,
    path: PathBuf,
    accounts: Vec<String>,
}

/// Created once (outside any timing) and reused by every sample.
fn populated() -> &'static Populated {
    static FIXTURE: OnceLock<Populated> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("10k.db");
        let accounts: Vec<String> = (0..SESSIONS).map(|i| format!("player-{i:05}")).collect();
        let started = Instant::now();
        {
            let vault = open_vault(&path);
            for (i, a) in accounts.iter().enumerate() {
                vault.store(session(a, &jwt_token(a, TOKEN_LEN), i as u64)).unwrap();
            }
            assert_eq!(vault.session_count().unwrap(), SESSIONS);
            vault.close().unwrap();
        }
        let file = std::fs::metadata(&path).unwrap().len();
        println!(
            "open_10k: created {SESSIONS} sessions in {:.1} s; file {:.1} MiB",
            started.elapsed().as_secs_f64(),
            file as f64 / 1_048_576.0
        );

        // Memory per session: RSS (and heap in use) before and after every session is loaded
        // into the cache. A full scan of the rows first (`list_accounts` reads and decrypts
        // every row without caching it) fills SQLite's page cache (capped at 2,000 KiB by
        // default), so the difference is the vault's own in-memory state. (`session_count`
        // alone reads too few pages: with it, the page cache grew by ~2 MB during the loop.)
        let vault = open_vault(&path);
        assert_eq!(vault.list_accounts().unwrap().len(), SESSIONS);
        trim_heap();
        let (rss0, heap0) = (rss_bytes(), heap_in_use());
        for a in &accounts {
            black_box(vault.access_token(a).unwrap());
        }
        let (rss1, heap1) = (rss_bytes(), heap_in_use());
        let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / SESSIONS as f64;
        println!(
            "open_10k: loading {SESSIONS} sessions into the cache: RSS {:.2} -> {:.2} MiB = {:.0} bytes per session; \
             heap in use {:.2} -> {:.2} MiB = {:.0} bytes per session",
            rss0 as f64 / 1_048_576.0,
            rss1 as f64 / 1_048_576.0,
            per(rss0, rss1),
            heap0 as f64 / 1_048_576.0,
            heap1 as f64 / 1_048_576.0,
            per(heap0, heap1),
        );
        drop(vault);
        Populated {
            _dir: dir,
            path,
            accounts,
        }
    })
}

fn open_10k(c: &mut Criterion) {
    let mut g = c.benchmark_group("open_10k");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("open", |b| {
        let p = populated();
        b.iter_with_large_drop(|| open_vault(&p.path))
    });
    g.bench_function("open_and_read_all", |b| {
        let p = populated();
        b.iter_with_large_drop(|| {
            let vault = open_vault(&p.path);
            for a in &p.accounts {
                black_box(vault.access_token(a).unwrap());
            }
            vault
        })
    });
    g.finish();
}

// ----- 4. diagnostic: a refresh without the network ----------------------------------------

/// The vault's whole refresh path except the network: `begin_refresh` (forced) then
/// `finish_refresh` with a canned seed-001 response, vs one bare durable commit of a row of the
/// same size. What this costs above the bare commit is what a refresh costs above
/// (HTTP + commit) in `tests/benches/refresh.rs`, with no server noise.
fn refresh_offline(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let vault_path = dir.path().join("offline.db");
    let vault = Vault::open(&vault_path, KeySource::raw(&KEY).unwrap(), VaultOptions::default()).unwrap();
    vault
        .register_profile(
            Profile::preset(
                Preset::RotatingSuccessEnvelope,
                PROFILE,
                "http://127.0.0.1:9/v2/Auth/RefreshToken",
                serde_json::json!({}),
            )
            .unwrap(),
        )
        .unwrap();
    // A 208-byte JWT, like the reference server's.
    let token = jwt_token("player-1", 208);
    vault.store(session("player-1", &token, 0)).unwrap();
    let response = |n: u64| {
        let body = format!(
            r#"{{"success":true,"data":{{"accessToken":"{}","refreshToken":"{}"}}}}"#,
            jwt_token("player-1", 208),
            refresh_token(n)
        );
        HttpResponse::new(
            200,
            vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body.into_bytes(),
        )
    };
    let refresh = |resp: HttpResponse| {
        let RefreshStep::Send(pending) = vault.begin_refresh("player-1", true).unwrap() else {
            unreachable!("a forced refresh must be sent");
        };
        vault.finish_refresh(pending.attempt, resp).unwrap()
    };
    refresh(response(1));
    let (row_len, _) = vault_row_len(&vault_path);
    let mut bare = BareStore::open(&dir.path().join("bare.db"), row_len, false);
    bare.commit();

    let mut n = 1;
    paired(
        "refresh_offline: paired (A = vault two-step refresh with a canned response, B = bare_sqlite_durable_commit)",
        300,
        1,
        || {
            n += 1;
            let resp = response(n);
            let start = Instant::now();
            black_box(refresh(resp));
            start.elapsed()
        },
        || {
            let start = Instant::now();
            bare.commit();
            start.elapsed()
        },
    );

    let mut g = c.benchmark_group("refresh_offline");
    g.sample_size(30);
    g.bench_function("vault_two_step_refresh", |b| {
        b.iter_batched(
            || {
                n += 1;
                response(n)
            },
            refresh,
            BatchSize::SmallInput,
        )
    });
    g.bench_function("bare_sqlite_durable_commit", |b| b.iter(|| bare.commit()));
    g.finish();
}

// ----- 5. cold start: open + first read vs a bare SQLite open + one row ----------------------

const PASSPHRASE: &str = "correct horse battery staple";
const ACCOUNT: &str = "player-1";

/// The files a cold start opens, created once (outside any timing) and closed before the runs.
struct ColdFiles {
    _dir: tempfile::TempDir,
    /// A vault holding one session, wrapped by the raw 32-byte key [`KEY`].
    raw: PathBuf,
    /// The same, wrapped by [`PASSPHRASE`] (Argon2id with the parameters new vaults get).
    passphrase: PathBuf,
    /// A bare SQLite file (WAL, STRICT rowid table) with one row as long as the vault's row.
    bare: PathBuf,
    bare_key: Vec<u8>,
    bare_payload_len: usize,
    /// The vault's session row key (its keyed account hash), for the SQLite-only diagnostic.
    vault_row_key: Vec<u8>,
    /// A file with a compact layout (one small table for the metadata, key slots and manifest,
    /// and the sessions table), for the layout diagnostic.
    compact: PathBuf,
    token: String,
}

/// The statements `Vault::open` and the first `access_token` run on a one-session vault of
/// schema 5, in order, with their transactions (as a breakpoint on `sqlite3_prepare_v3` lists
/// them), each with what it is bound to. Nothing else: no key, no MAC, no decryption. Kept in
/// step with `core/src/store` by hand.
const VAULT_COLD_SQL: &[(&str, Bind)] = &[
    ("PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;", Bind::Nothing),
    ("BEGIN DEFERRED", Bind::Nothing),
    ("PRAGMA application_id", Bind::Nothing),
    ("PRAGMA user_version", Bind::Nothing),
    (
        "SELECT *, (SELECT max(version) FROM manifest WHERE slot < 256) FROM manifest WHERE slot < 2000 \
         ORDER BY slot DESC",
        Bind::Nothing,
    ),
    ("PRAGMA journal_mode", Bind::Nothing),
    ("PRAGMA data_version", Bind::Nothing),
    ("COMMIT", Bind::Nothing),
    ("BEGIN DEFERRED", Bind::Nothing),
    ("PRAGMA data_version", Bind::Nothing),
    (
        "SELECT generation, format, nonce, ciphertext FROM manifest WHERE account_hash = ?1",
        Bind::RowKey,
    ),
    ("COMMIT", Bind::Nothing),
];

/// What a diagnostic statement is bound to.
#[derive(Clone, Copy)]
enum Bind {
    Nothing,
    /// The session row's key (the keyed account hash).
    RowKey,
}

/// What the same open and first read could run on [`compact_file`]'s layout: the header, one
/// statement for the metadata, key slots and manifest root, then the row and its bucket.
const COMPACT_COLD_SQL: &[(&str, Bind)] = &[
    ("PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;", Bind::Nothing),
    ("BEGIN DEFERRED", Bind::Nothing),
    ("PRAGMA application_id", Bind::Nothing),
    ("PRAGMA user_version", Bind::Nothing),
    ("PRAGMA journal_mode", Bind::Nothing),
    ("SELECT k, v FROM vault WHERE k < 1000", Bind::Nothing),
    ("COMMIT", Bind::Nothing),
    ("BEGIN DEFERRED", Bind::Nothing),
    ("PRAGMA data_version", Bind::Nothing),
    (
        "SELECT generation, format, nonce, ciphertext FROM sessions WHERE account_hash = ?1",
        Bind::RowKey,
    ),
    ("SELECT v FROM vault WHERE k = 1000", Bind::Nothing),
    ("COMMIT", Bind::Nothing),
];

/// A compact layout of the same content: `vault (k, v)` holds the metadata row, the key slot,
/// the manifest root and the one bucket (rows of the sizes the vault writes); `sessions` is the
/// vault's own table with a copy of its row.
fn compact_file(dir: &Path, raw: &Path) -> PathBuf {
    let path = dir.join("cold-compact.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE vault (k INTEGER PRIMARY KEY, v BLOB NOT NULL) STRICT;
         CREATE TABLE sessions (id INTEGER PRIMARY KEY, account_hash BLOB NOT NULL UNIQUE, generation INTEGER NOT NULL,
             format INTEGER NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL) STRICT;",
    )
    .unwrap();
    let src = Connection::open(raw).unwrap();
    let blob = |sql: &str| -> Vec<u8> { src.query_row(sql, [], |r| r.get(0)).unwrap() };
    let rows = [
        (1, vec![0u8; 64]),
        (
            2,
            blob("SELECT CAST(wrap_nonce || wrapped_key AS BLOB) FROM manifest WHERE slot = 1001"),
        ),
        (
            999,
            blob("SELECT CAST(body || mac AS BLOB) FROM manifest WHERE slot = 256"),
        ),
        (
            1000,
            blob("SELECT CAST(body || mac AS BLOB) FROM manifest WHERE slot < 256"),
        ),
    ];
    for (k, v) in rows {
        conn.execute("INSERT INTO vault (k, v) VALUES (?1, ?2)", params![k, v])
            .unwrap();
    }
    let (h, g, f, n, c): (Vec<u8>, i64, i64, Vec<u8>, Vec<u8>) = src
        .query_row(
            "SELECT account_hash, generation, format, nonce, ciphertext FROM manifest WHERE account_hash IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    conn.execute(
        "INSERT INTO sessions (account_hash, generation, format, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![h, g, f, n, c],
    )
    .unwrap();
    path
}

/// Diagnostic: SQLite alone running `sql` on a new connection to `path` (each statement
/// stepped to its end); returns the time until the last one finished. The connection is
/// dropped after the clock stops.
fn sqlite_statements(path: &Path, sql: &[(&str, Bind)], row_key: &[u8]) -> Duration {
    let start = Instant::now();
    let conn = Connection::open(path).unwrap();
    let mut columns = 0usize;
    for &(text, bind) in sql {
        if text.contains(';') || text.starts_with("BEGIN") || text == "COMMIT" {
            conn.execute_batch(text).unwrap();
            continue;
        }
        let mut stmt = conn.prepare_cached(text).unwrap();
        let mut rows = match bind {
            Bind::Nothing => stmt.query([]).unwrap(),
            Bind::RowKey => stmt.query(params![row_key]).unwrap(),
        };
        while let Some(row) = rows.next().unwrap() {
            columns += usize::from(row.get_ref(0).is_ok());
        }
    }
    let elapsed = start.elapsed();
    assert!(columns >= 6, "every statement found its rows ({columns})");
    drop(conn);
    elapsed
}

fn cold_files() -> ColdFiles {
    let dir = tempfile::tempdir().unwrap();
    let token = jwt_token(ACCOUNT, TOKEN_LEN);
    let raw = dir.path().join("cold-raw.db");
    let passphrase = dir.path().join("cold-passphrase.db");
    for (path, key) in [
        (&raw, KeySource::raw(&KEY).unwrap()),
        (&passphrase, KeySource::passphrase(PASSPHRASE).unwrap()),
    ] {
        let vault = open_vault_with(path, key);
        vault.store(session(ACCOUNT, &token, 1)).unwrap();
        vault.close().unwrap();
    }
    let (row_len, _) = vault_row_len(&raw);
    let bare = dir.path().join("cold-bare.db");
    let (bare_key, bare_payload_len) = {
        let mut store = BareStore::open(&bare, row_len, false);
        store.commit();
        (store.key.clone(), store.payload.len())
    };
    let (schema_objects, vault_row_key): (i64, Vec<u8>) = {
        let conn = Connection::open(&raw).unwrap();
        let n = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        let k = conn
            .query_row(
                "SELECT account_hash FROM manifest WHERE account_hash IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (n, k)
    };
    println!(
        "cold_start: the vault's session row is {row_len} bytes (key + nonce + ciphertext); the bare row is the same size; \
         the vault's schema has {schema_objects} objects (tables, indexes), the bare file's 2"
    );
    let compact = compact_file(dir.path(), &raw);
    ColdFiles {
        _dir: dir,
        raw,
        passphrase,
        bare,
        bare_key,
        bare_payload_len,
        vault_row_key,
        compact,
        token,
    }
}

/// One cold start of the vault: a new `Vault` on the existing file, then its first
/// `access_token` (a cache miss: the row is read, checked, decrypted and parsed). Returns
/// (time to return from `open`, time of the first read). The key is built before the clock
/// starts; the vault is dropped (closed) after it stops.
fn vault_cold(path: &Path, key: KeySource, options: VaultOptions, expected: &str) -> (Duration, Duration) {
    let start = Instant::now();
    let vault = Vault::open(path, key, options).unwrap();
    let opened = start.elapsed();
    let token = vault.access_token(ACCOUNT).unwrap();
    let total = start.elapsed();
    assert_eq!(token.expose(), expected);
    drop(token);
    drop(vault);
    (opened, total - opened)
}

/// One cold start of the bare peer: a new `rusqlite::Connection` on the existing file, then one
/// `SELECT` of the row by its 32-byte key. `configure` also runs the per-connection pragmas the
/// vault sets (WAL, `synchronous=FULL`, `secure_delete`) first, as a durable app would. Returns
/// (time to open [and configure], time of the read); the connection is dropped after the clock
/// stops.
fn bare_cold(files: &ColdFiles, configure: bool) -> (Duration, Duration) {
    let start = Instant::now();
    let conn = Connection::open(&files.bare).unwrap();
    if configure {
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).unwrap();
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;")
            .unwrap();
        assert_eq!(mode, "wal");
    }
    let opened = start.elapsed();
    let payload: Vec<u8> = conn
        .query_row(
            "SELECT payload FROM sessions WHERE account_hash = ?1",
            [&files.bare_key],
            |r| r.get(0),
        )
        .unwrap();
    let total = start.elapsed();
    assert_eq!(payload.len(), files.bare_payload_len);
    drop(conn);
    (opened, total - opened)
}

/// Diagnostic: SQLite alone on the vault's own file. A new `rusqlite::Connection` on the raw-key
/// vault file, then one `SELECT` of the session row's nonce and ciphertext by its key: what the
/// vault's schema and file cost SQLite, without any of the vault's own statements or crypto.
fn sqlite_on_vault_file(files: &ColdFiles) -> Duration {
    let start = Instant::now();
    let conn = Connection::open(&files.raw).unwrap();
    let (nonce, ciphertext): (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT nonce, ciphertext FROM manifest WHERE account_hash = ?1",
            [&files.vault_row_key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let elapsed = start.elapsed();
    assert!(!nonce.is_empty() && ciphertext.len() > TOKEN_LEN);
    drop(conn);
    elapsed
}

fn raw_key() -> KeySource {
    KeySource::raw(&KEY).unwrap()
}

/// Sum of `iters` cold starts (criterion's `iter_custom`): only the timed part of each counts.
fn sum_of(iters: u64, mut one: impl FnMut() -> (Duration, Duration)) -> Duration {
    (0..iters).map(|_| one()).map(|(a, b)| a + b).sum()
}

/// Interleaved phase split (vault, bare, bare, vault, ...): medians of each side's open and
/// first-read phases, so the ratio's excess can be placed in one of them.
fn cold_split(files: &ColdFiles, pairs: usize) {
    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e6
    }
    let (mut vo, mut vr, mut bo, mut br) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let run_vault = || vault_cold(&files.raw, raw_key(), VaultOptions::default(), &files.token);
        let ((o1, r1), (o2, r2)) = if i % 2 == 0 {
            let v = run_vault();
            (v, bare_cold(files, false))
        } else {
            let b = bare_cold(files, false);
            (run_vault(), b)
        };
        vo.push(o1.as_secs_f64());
        vr.push(r1.as_secs_f64());
        bo.push(o2.as_secs_f64());
        br.push(r2.as_secs_f64());
    }
    println!(
        "cold_start: split, {pairs} interleaved pairs (medians): vault open {:.1} µs + first access_token {:.1} µs; \
         bare Connection::open {:.1} µs + first SELECT {:.1} µs",
        median(&mut vo),
        median(&mut vr),
        median(&mut bo),
        median(&mut br)
    );
}

fn cold_start(c: &mut Criterion) {
    let files = cold_files();
    let total = |(a, b): (Duration, Duration)| a + b;
    // A transport built once and shared: opening with it skips the construction of the
    // built-in HTTPS transport (a ureq agent) that a default open performs.
    let prebuilt: Arc<dyn Transport> = Arc::new(HttpsTransport::new());
    let with_transport = || VaultOptions {
        transport: Some(Arc::clone(&prebuilt)),
        ..VaultOptions::default()
    };

    paired(
        "cold_start: paired (A = Vault::open raw key + first access_token, B = bare Connection::open + SELECT of the row)",
        300,
        1,
        || total(vault_cold(&files.raw, raw_key(), VaultOptions::default(), &files.token)),
        || total(bare_cold(&files, false)),
    );
    cold_split(&files, 300);
    paired(
        "cold_start: diagnostic (A = the same vault cold start, B = bare open + the vault's pragmas + SELECT)",
        300,
        1,
        || total(vault_cold(&files.raw, raw_key(), VaultOptions::default(), &files.token)),
        || total(bare_cold(&files, true)),
    );
    paired(
        "cold_start: diagnostic (A = SQLite alone on the vault's file: open + SELECT of the session row, B = the bare cold start)",
        300,
        1,
        || sqlite_on_vault_file(&files),
        || total(bare_cold(&files, false)),
    );
    paired(
        "cold_start: diagnostic (A = SQLite alone running the statements of the vault's open and first read on its file, B = the bare cold start)",
        300,
        1,
        || sqlite_statements(&files.raw, VAULT_COLD_SQL, &files.vault_row_key),
        || total(bare_cold(&files, false)),
    );
    paired(
        "cold_start: diagnostic (A = SQLite alone running the same open and first read on a compact layout, B = the bare cold start)",
        300,
        1,
        || sqlite_statements(&files.compact, COMPACT_COLD_SQL, &files.vault_row_key),
        || total(bare_cold(&files, false)),
    );
    paired(
        "cold_start: diagnostic (A = vault cold start, default transport, B = vault cold start with a prebuilt transport)",
        300,
        1,
        || total(vault_cold(&files.raw, raw_key(), VaultOptions::default(), &files.token)),
        || total(vault_cold(&files.raw, raw_key(), with_transport(), &files.token)),
    );
    // Argon2id with the stored parameters runs on every passphrase open: a few tens of ms.
    paired(
        "cold_start: passphrase (A = Vault::open with the passphrase + first access_token, B = the same with the raw key)",
        15,
        1,
        || {
            let key = KeySource::passphrase(PASSPHRASE).unwrap();
            total(vault_cold(&files.passphrase, key, VaultOptions::default(), &files.token))
        },
        || total(vault_cold(&files.raw, raw_key(), VaultOptions::default(), &files.token)),
    );

    let mut g = c.benchmark_group("cold_start");
    g.bench_function("vault_open_raw_key_first_access_token", |b| {
        b.iter_custom(|iters| {
            sum_of(iters, || {
                vault_cold(&files.raw, raw_key(), VaultOptions::default(), &files.token)
            })
        })
    });
    g.bench_function("bare_sqlite_open_select_row", |b| {
        b.iter_custom(|iters| sum_of(iters, || bare_cold(&files, false)))
    });
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("vault_open_passphrase_first_access_token", |b| {
        b.iter_custom(|iters| {
            sum_of(iters, || {
                let key = KeySource::passphrase(PASSPHRASE).unwrap();
                vault_cold(&files.passphrase, key, VaultOptions::default(), &files.token)
            })
        })
    });
    g.finish();
}

criterion_group!(benches, cached_read, store, open_10k, refresh_offline, cold_start);
criterion_main!(benches);
