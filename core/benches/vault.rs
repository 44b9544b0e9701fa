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
//!
//! Run: `cargo bench -p tokenvault --bench vault -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode};
use parking_lot::RwLock;
use rusqlite::{params, Connection};
use tokenvault::{HttpResponse, KeySource, NewSession, Preset, Profile, RefreshStep, Vault, VaultOptions};

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
    let vault = Vault::open(path, KeySource::raw(&KEY).unwrap(), VaultOptions::default()).unwrap();
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
                max(length(account_hash) + length(nonce) + length(ciphertext)) FROM sessions",
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

criterion_group!(benches, cached_read, store, open_10k, refresh_offline);
criterion_main!(benches);
