#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A full refresh through the vault against a local reference server (issue 3), against the bare
//! work it cannot avoid, measured in the same run. Figures and ratios: `docs/PERFORMANCE.md`.
//!
//! * `vault_force_refresh`: `Vault::force_refresh` with the seed-001 preset
//!   (`RotatingSuccessEnvelope`): lease, request, response parsing, encrypt, durable rotation.
//! * `bare_http_plus_commit`: the same request (same method, URL, headers, JSON body, a new
//!   connection each time because the server answers `Connection: close`) with `ureq`, the
//!   response parsed for the rotated pair, then one bare durable SQLite commit (WAL,
//!   `synchronous=FULL`, an upsert into a STRICT table) of a row the size of the vault's row.
//! * Diagnostics, to split the peer: the bare round trip alone, the bare commit alone.
//! * Before the criterion runs, 300 interleaved pairs (vault, peer) print both medians and the
//!   median of the pair ratios: the machine's speed drifts between two benchmarks run one after
//!   the other, never within a pair. Then 200 pairs of a diagnostic: a bare model of the vault's
//!   SQLite writes (lease commit without fsync; session row and lease deletion in one durable
//!   commit) around the same round trip, against the peer.
//! * Last, 200 interleaved pairs split the time: the vault's refresh inside and outside its
//!   transport (the built-in one, wrapped in a timer), the peer's round trip and commit.
//!
//! Run: `cargo bench -p tokenvault-tests --bench refresh -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rusqlite::{params, Connection};
use serde_json::Value;
use tokenvault::{
    HttpRequest, HttpResponse, HttpsTransport, KeySource, NewSession, Preset, Profile, Transport, TransportError,
    Vault, VaultOptions,
};
use tokenvault_testkit::{Dialect, ReferenceServer, ServerConfig};

const PROFILE: &str = "bench";

/// The bare durable-commit peer: WAL, `synchronous=FULL`, an upsert into a STRICT table, one
/// commit per call (autocommit), new bytes each time.
struct BareStore {
    conn: Connection,
    key: Vec<u8>,
    payload: Vec<u8>,
    n: i64,
}

impl BareStore {
    fn open(path: &Path, row_len: usize) -> BareStore {
        let conn = Connection::open(path).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        conn.execute_batch(
            "PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS sessions (
                 account_hash BLOB PRIMARY KEY NOT NULL,
                 generation   INTEGER NOT NULL,
                 payload      BLOB NOT NULL
             ) STRICT;
             CREATE TABLE IF NOT EXISTS lease (
                 account_hash BLOB PRIMARY KEY NOT NULL,
                 holder       TEXT NOT NULL,
                 expires_at   INTEGER NOT NULL
             ) STRICT, WITHOUT ROWID;",
        )
        .unwrap();
        let key = vec![0x11u8; 32];
        let payload = vec![0x42u8; row_len.saturating_sub(key.len()).max(8)];
        BareStore {
            conn,
            key,
            payload,
            n: 0,
        }
    }

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
        assert_eq!(stmt.execute(params![self.key, self.n, self.payload]).unwrap(), 1);
    }

    // The steps below model the SQLite work of a vault refresh (diagnostic only).

    /// A lease row written in its own transaction with `synchronous=NORMAL` (no fsync).
    fn lease_commit(&mut self) {
        self.conn.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
        self.conn
            .prepare_cached(
                "INSERT INTO lease (account_hash, holder, expires_at) VALUES (?1, 'bench-holder', ?2)
                 ON CONFLICT(account_hash) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
            )
            .unwrap()
            .execute(params![self.key, self.n])
            .unwrap();
        self.conn.execute_batch("PRAGMA synchronous=FULL").unwrap();
    }

    /// Delete the lease row (inside the caller's transaction).
    fn lease_delete(&mut self) {
        self.conn
            .prepare_cached("DELETE FROM lease WHERE account_hash = ?1")
            .unwrap()
            .execute(params![self.key])
            .unwrap();
    }

    /// The session row and the lease deletion in one durable transaction.
    fn commit_with_lease_delete(&mut self) {
        self.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        self.commit();
        self.lease_delete();
        self.conn.execute_batch("COMMIT").unwrap();
    }
}

/// The bare HTTP peer: seed 001's refresh request exactly as the vault's preset sends it
/// (`POST`, `Content-Type: application/json`, `Accept: application/json`,
/// `{"accessToken","refreshToken"}`), the rotated pair read back from the envelope.
struct BareClient {
    agent: ureq::Agent,
    url: String,
    access: String,
    refresh: String,
}

impl BareClient {
    fn new(url: String, access: String, refresh: String) -> BareClient {
        // Configured like the vault's built-in transport.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent("tokenvault-bench")
            .max_idle_connections_per_host(4)
            .input_buffer_size(36 * 1024)
            .max_response_header_size(32 * 1024)
            .output_buffer_size(16 * 1024)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        BareClient {
            agent,
            url,
            access,
            refresh,
        }
    }

    fn round_trip(&mut self) {
        let body = serde_json::to_vec(&serde_json::json!({
            "accessToken": self.access,
            "refreshToken": self.refresh,
        }))
        .unwrap();
        let mut resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(&body[..])
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let bytes = resp.body_mut().with_config().limit(1 << 20).read_to_vec().unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["success"], Value::Bool(true));
        self.access = v["data"]["accessToken"].as_str().unwrap().to_owned();
        self.refresh = v["data"]["refreshToken"].as_str().unwrap().to_owned();
    }
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

/// The vault's own built-in transport, timed (diagnostic only).
#[derive(Debug)]
struct TimedTransport {
    inner: HttpsTransport,
    last: Mutex<Duration>,
}

impl Transport for TimedTransport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let start = Instant::now();
        let response = self.inner.send(request);
        *self.last.lock().unwrap() = start.elapsed();
        response
    }
}

/// Diagnostic: where the time of a refresh goes, vault and peer side by side (interleaved).
fn split(pairs: usize, vault: &Vault, timed: &TimedTransport, client: &mut BareClient, bare: &mut BareStore) {
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e6
    }
    let (mut v_total, mut v_http, mut v_rest, mut b_http, mut b_commit) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..pairs {
        let start = Instant::now();
        black_box(vault.force_refresh("vault-player").unwrap());
        let total = start.elapsed().as_secs_f64();
        let http = timed.last.lock().unwrap().as_secs_f64();
        v_total.push(total);
        v_http.push(http);
        v_rest.push(total - http);
        let start = Instant::now();
        client.round_trip();
        let mid = Instant::now();
        bare.commit();
        b_http.push((mid - start).as_secs_f64());
        b_commit.push(mid.elapsed().as_secs_f64());
    }
    println!(
        "refresh: diagnostic split over {pairs} interleaved pairs (medians, µs): vault total {:.0} = in its \
         transport {:.0} + outside it {:.0}; peer HTTP {:.0} + commit {:.0}",
        median(v_total),
        median(v_http),
        median(v_rest),
        median(b_http),
        median(b_commit)
    );
}

fn vault_row_len(path: &Path) -> usize {
    let conn = Connection::open(path).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT max(length(account_hash) + length(nonce) + length(ciphertext)) FROM manifest \
             WHERE account_hash IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    n as usize
}

fn refresh(c: &mut Criterion) {
    let server = ReferenceServer::start(Dialect::SuccessEnvelope, ServerConfig::default()).unwrap();
    // One temporary directory (same file system) for the vault and the bare peer's file.
    let dir = tempfile::tempdir().unwrap();
    let vault_path = dir.path().join("refresh.db");
    let vault = Vault::open(
        &vault_path,
        KeySource::raw(&[7u8; 32]).unwrap(),
        VaultOptions::default(),
    )
    .unwrap();
    vault
        .register_profile(
            Profile::preset(
                Preset::RotatingSuccessEnvelope,
                PROFILE,
                &server.refresh_url(),
                serde_json::json!({}),
            )
            .unwrap(),
        )
        .unwrap();
    let t = server.login("vault-player");
    vault
        .store(
            NewSession::new("vault-player", PROFILE, t.access_token)
                .refresh_credential(t.refresh_credential)
                .expires_in(Duration::from_secs(3600)),
        )
        .unwrap();
    let first = vault.force_refresh("vault-player").unwrap();
    assert!(server.check_access(first.expose()));
    let row_len = vault_row_len(&vault_path);

    let t = server.login("bare-player");
    let mut client = BareClient::new(server.refresh_url(), t.access_token, t.refresh_credential);
    let mut bare = BareStore::open(&dir.path().join("bare.db"), row_len);
    client.round_trip();
    bare.commit();
    println!(
        "refresh: vault row {row_len} bytes (key + nonce + ciphertext), bare row the same; access token {} bytes",
        first.expose().len()
    );

    paired(
        "refresh: paired (A = vault_force_refresh, B = bare_http_plus_commit)",
        300,
        1,
        || {
            let start = Instant::now();
            black_box(vault.force_refresh("vault-player").unwrap());
            start.elapsed()
        },
        || {
            let start = Instant::now();
            client.round_trip();
            bare.commit();
            start.elapsed()
        },
    );

    // Diagnostic: a bare model of the vault's SQLite writes around the same round trip, in a file
    // of its own: a lease commit with synchronous=NORMAL, the HTTP round trip, then one FULL
    // commit of the session row and the lease deletion.
    let t = server.login("model-player");
    let mut model_client = BareClient::new(server.refresh_url(), t.access_token, t.refresh_credential);
    let mut model = BareStore::open(&dir.path().join("model.db"), row_len);
    paired(
        "refresh: diagnostic (A = bare model with one durable commit: NORMAL lease commit + HTTP + \
         FULL commit of session + lease delete, B = bare_http_plus_commit)",
        200,
        1,
        || {
            let start = Instant::now();
            model.lease_commit();
            model_client.round_trip();
            model.commit_with_lease_delete();
            start.elapsed()
        },
        || {
            let start = Instant::now();
            client.round_trip();
            bare.commit();
            start.elapsed()
        },
    );

    let mut g = c.benchmark_group("refresh");
    g.sample_size(30);
    g.bench_function("vault_force_refresh", |b| {
        b.iter(|| black_box(vault.force_refresh(black_box("vault-player")).unwrap()))
    });
    g.bench_function("bare_http_plus_commit", |b| {
        b.iter(|| {
            client.round_trip();
            bare.commit();
        })
    });
    g.bench_function("diagnostic_bare_http_only", |b| b.iter(|| client.round_trip()));
    g.bench_function("diagnostic_bare_commit_only", |b| b.iter(|| bare.commit()));
    g.finish();

    // Last, so every figure above used the vault's default transport: the same transport, timed.
    let timed = Arc::new(TimedTransport {
        inner: HttpsTransport::new(),
        last: Mutex::new(Duration::ZERO),
    });
    vault.set_transport(Some(timed.clone())).unwrap();
    split(200, &vault, &timed, &mut client, &mut bare);

    // Every refresh rotated cleanly: no rejected request, no reuse detection.
    let stats = server.stats();
    assert_eq!(stats.refresh_failures, 0, "{stats:?}");
    assert_eq!(stats.reuse_detections, 0, "{stats:?}");
    assert!(server.check_access(vault.access_token("vault-player").unwrap().expose()));
    println!(
        "refresh: the server answered {} refreshes, none rejected",
        stats.refresh_successes
    );
}

criterion_group!(benches, refresh);
criterion_main!(benches);
