#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The vault's cached read against yup-oauth2's cached `token(scopes)`, in the same run
//! (issue 14, "the peer in the same run").
//!
//! * **yup-oauth2** (12.1, no TLS features): an `InstalledFlowAuthenticator` with its default
//!   in-memory token storage and a plain-HTTP hyper client. Before any timing, the bench gets
//!   the first token through the real flow: the flow delegate hands over an authorization code
//!   (standing in for the user) and yup-oauth2 exchanges it at a token endpoint this bench runs on
//!   127.0.0.1, which answers a 900-byte JWT-shaped access token, a refresh token and
//!   `expires_in: 3600`. Every timed `token(&SCOPES)` is then a cache hit: yup-oauth2 locks its
//!   storage (a `tokio::sync::Mutex`), finds the token for the scopes, checks its expiry against
//!   the clock and returns a clone. The endpoint counts its requests; the bench asserts at the end
//!   that it served exactly one, so no timed call went to the network.
//! * **vault**: `Vault::access_token` on a cached session whose access token is the same 900-byte
//!   string (opened with a raw key, read once before timing so the session is in the cache).
//! * **threads**: "2 threads" are two OS threads started together at a barrier, each doing N
//!   reads on the shared `Vault` / the shared `Authenticator`; the figure is the time per read as
//!   seen by one thread (the slower one), so perfect scaling shows the 1-thread figure again. For
//!   yup-oauth2 each OS thread blocks once per batch on its own current-thread tokio runtime
//!   (built before the clock starts) and awaits `token()` N times inside it. Why not two tasks on
//!   a 2-worker multi-thread runtime: the vault's threads are plain OS threads, and a game calls
//!   from its own threads; with one `block_on` per batch both sides run the same harness, and what
//!   is compared is the read path (and its shared lock), not tokio's scheduler.
//! * **control**: each thread clones its own 900-byte `String` (nothing shared). Its 2÷1 thread
//!   ratio shows whether the two threads really ran in parallel (~1.0–1.2) or took turns on one
//!   core (~2), so a busy machine is not mistaken for contention.
//!
//! Paired lines (A B, B A, … interleaved batches; median of per-pair ratios) come first, then
//! criterion's figures. Run:
//! `cargo bench -p tokenvault-peer-bench --bench yup_oauth2 -- --warm-up-time 1 --measurement-time 3`

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokenvault::{KeySource, NewSession, Preset, Profile, Vault, VaultOptions};
use tokenvault_peer_bench::{jwt_token, one_thread, paired, two_threads, TokenEndpoint};
use yup_oauth2::authenticator::Authenticator;
use yup_oauth2::authenticator_delegate::InstalledFlowDelegate;
use yup_oauth2::{ApplicationSecret, CustomHyperClientBuilder, InstalledFlowAuthenticator, InstalledFlowReturnMethod};

const TOKEN_LEN: usize = 900;
const ACCOUNT: &str = "player-1";
const SCOPES: [&str; 2] = ["game", "profile"];

/// Stands in for the user: returns an authorization code instead of asking on stdin.
struct CodeFromUser;

impl InstalledFlowDelegate for CodeFromUser {
    fn present_user_url<'a>(
        &'a self,
        _url: &'a str,
        need_code: bool,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        assert!(need_code, "the interactive flow asks for a code");
        Box::pin(async { Ok("bench-authorization-code".to_owned()) })
    }
}

type Yup = Authenticator<HttpConnector>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A yup-oauth2 authenticator whose token for [`SCOPES`] is cached in its memory storage,
/// obtained from `endpoint` through the installed (interactive) flow.
fn yup_with_cached_token(endpoint: &TokenEndpoint, token: &str) -> Yup {
    let secret = ApplicationSecret {
        client_id: "bench-client".to_owned(),
        client_secret: "bench-secret".to_owned(),
        token_uri: endpoint.url(),
        auth_uri: "http://127.0.0.1:9/authorize".to_owned(),
        redirect_uris: vec![],
        ..ApplicationSecret::default()
    };
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build::<_, String>(HttpConnector::new());
    runtime().block_on(async {
        let auth = InstalledFlowAuthenticator::with_client(
            secret,
            InstalledFlowReturnMethod::Interactive,
            CustomHyperClientBuilder::from(client),
        )
        .flow_delegate(Box::new(CodeFromUser))
        .build()
        .await
        .unwrap();
        let first = auth.token(&SCOPES).await.unwrap();
        assert_eq!(first.token(), Some(token));
        assert!(!first.is_expired());
        // Served from the cache from now on (checked against the endpoint's count at the end).
        assert_eq!(auth.token(&SCOPES).await.unwrap().token(), Some(token));
        auth
    })
}

/// A vault (raw key) holding one session whose access token is `token`, already in its cache.
fn vault_with_cached_token(dir: &std::path::Path, token: &str) -> Vault {
    let vault = Vault::open(
        dir.join("peer.db"),
        KeySource::raw(&[7u8; 32]).unwrap(),
        VaultOptions::default(),
    )
    .unwrap();
    vault
        .register_profile(
            Profile::preset(
                Preset::OAuth2,
                "bench",
                "https://auth.example.com/oauth/token",
                serde_json::json!({"client_id": "bench"}),
            )
            .unwrap(),
        )
        .unwrap();
    vault
        .store(
            NewSession::new(ACCOUNT, "bench", token)
                .refresh_credential("bench-refresh-token")
                .expires_in(Duration::from_secs(3600)),
        )
        .unwrap();
    assert_eq!(vault.access_token(ACCOUNT).unwrap().expose(), token);
    vault
}

fn peer_cached_read(c: &mut Criterion) {
    let token = jwt_token(ACCOUNT, TOKEN_LEN);
    let endpoint = TokenEndpoint::start(
        serde_json::json!({
            "access_token": token,
            "refresh_token": "bench-refresh-token",
            "expires_in": 3600,
            "token_type": "Bearer",
        })
        .to_string(),
    );
    let yup = yup_with_cached_token(&endpoint, &token);
    assert_eq!(endpoint.served(), 1);
    let dir = tempfile::tempdir().unwrap();
    let vault = vault_with_cached_token(dir.path(), &token);

    // The timed bodies: `n` cached reads each.
    let vault_setup = || ();
    let vault_reads = |_: &(), n: u64| {
        for _ in 0..n {
            black_box(vault.access_token(black_box(ACCOUNT)).unwrap());
        }
    };
    let yup_reads = |rt: &tokio::runtime::Runtime, n: u64| {
        rt.block_on(async {
            for _ in 0..n {
                black_box(yup.token(black_box(&SCOPES)).await.unwrap());
            }
        })
    };
    let control_setup = || token.clone();
    let control_reads = |own: &String, n: u64| {
        for _ in 0..n {
            black_box(black_box(own).clone());
        }
    };

    // 1-thread batches of 20,000 reads; 2-thread batches of 100,000 reads per thread.
    const ONE: u64 = 20_000;
    const TWO: u64 = 100_000;
    paired(
        "peer_cached_read: paired 1 thread (A = vault access_token, B = yup-oauth2 token)",
        200,
        ONE,
        || one_thread(ONE, &vault_setup, &vault_reads),
        || one_thread(ONE, &runtime, &yup_reads),
    );
    paired(
        "peer_cached_read: paired 2 threads (A = vault access_token, B = yup-oauth2 token)",
        30,
        TWO,
        || two_threads(TWO, &vault_setup, &vault_reads),
        || two_threads(TWO, &runtime, &yup_reads),
    );
    paired(
        "peer_cached_read: scaling of the vault (A = 2 threads, B = 1 thread)",
        30,
        TWO,
        || two_threads(TWO, &vault_setup, &vault_reads),
        || one_thread(TWO, &vault_setup, &vault_reads),
    );
    paired(
        "peer_cached_read: scaling of yup-oauth2 (A = 2 threads, B = 1 thread)",
        30,
        TWO,
        || two_threads(TWO, &runtime, &yup_reads),
        || one_thread(TWO, &runtime, &yup_reads),
    );
    paired(
        "peer_cached_read: scaling of the unshared control (A = 2 threads, B = 1 thread)",
        30,
        TWO,
        || two_threads(TWO, &control_setup, &control_reads),
        || one_thread(TWO, &control_setup, &control_reads),
    );

    let mut g = c.benchmark_group("peer_cached_read");
    g.bench_function("vault_access_token/1_thread", |b| {
        b.iter_custom(|iters| one_thread(iters, &vault_setup, &vault_reads))
    });
    g.bench_function("yup_oauth2_token/1_thread", |b| {
        b.iter_custom(|iters| one_thread(iters, &runtime, &yup_reads))
    });
    g.bench_function("vault_access_token/2_threads", |b| {
        b.iter_custom(|iters| two_threads(iters, &vault_setup, &vault_reads))
    });
    g.bench_function("yup_oauth2_token/2_threads", |b| {
        b.iter_custom(|iters| two_threads(iters, &runtime, &yup_reads))
    });
    g.finish();

    // Every timed yup-oauth2 call was a cache hit: the endpoint still served only the first.
    assert_eq!(endpoint.served(), 1, "a timed token() call went to the token endpoint");
}

criterion_group!(benches, peer_cached_read);
criterion_main!(benches);
