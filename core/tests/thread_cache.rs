//! The per-thread copies in front of the session cache: a thread that keeps reading never serves
//! its copy after the session changed on another thread (stored again, refreshed, removed, the
//! vault closed), nor after the token stopped being fresh. One reader thread lives through the
//! whole test, so its copy is the one under test each time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tokenvault::{
    ErrorCode, HttpResponse, KeySource, ManualClock, NewSession, Preset, Profile, RefreshStep, Vault, VaultOptions,
};

const ACCOUNT: &str = "player-1";

/// A thread that reads the account's token each time it is asked, with the same vault handle.
struct Reader {
    ask: mpsc::Sender<()>,
    answer: mpsc::Receiver<Result<String, ErrorCode>>,
    handle: thread::JoinHandle<()>,
}

impl Reader {
    fn start(vault: Arc<Vault>) -> Reader {
        let (ask, asked) = mpsc::channel::<()>();
        let (tell, answer) = mpsc::channel();
        let handle = thread::spawn(move || {
            for () in asked {
                let r = vault
                    .access_token(ACCOUNT)
                    .map(|t| t.expose().to_owned())
                    .map_err(|e| e.code());
                if tell.send(r).is_err() {
                    break;
                }
            }
        });
        Reader { ask, answer, handle }
    }

    fn read(&self) -> Result<String, ErrorCode> {
        self.ask.send(()).unwrap();
        self.answer.recv_timeout(Duration::from_secs(20)).unwrap()
    }

    fn stop(self) {
        drop(self.ask);
        self.handle.join().unwrap();
    }
}

fn session(token: &str) -> NewSession {
    NewSession::new(ACCOUNT, "backend", token)
        .refresh_credential("refresh-0")
        .expires_in(Duration::from_secs(600))
}

fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Arc<Vault> {
    let v = Vault::open(
        dir.join("v.db"),
        KeySource::raw(&[9; 32]).unwrap(),
        VaultOptions {
            clock,
            ..VaultOptions::default()
        },
    )
    .unwrap();
    let profile = Profile::preset(
        Preset::OAuth2,
        "backend",
        "http://127.0.0.1:9/token",
        serde_json::json!({"client_id": "game"}),
    )
    .unwrap();
    v.register_profile(profile).unwrap();
    Arc::new(v)
}

#[test]
fn a_threads_copy_follows_every_change_made_on_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let v = open(dir.path(), ManualClock::new());
    v.store(session("access-0")).unwrap();
    let reader = Reader::start(Arc::clone(&v));

    assert_eq!(reader.read().unwrap(), "access-0");
    assert_eq!(reader.read().unwrap(), "access-0");
    assert_eq!(v.metrics().cached_hits, 2);

    // Stored again on this thread.
    v.store(session("access-1")).unwrap();
    assert_eq!(reader.read().unwrap(), "access-1");

    // Refreshed (two-step) on this thread.
    let RefreshStep::Send(pending) = v.begin_refresh(ACCOUNT, true).unwrap() else {
        panic!("expected a request to send");
    };
    let body = br#"{"access_token":"access-2","expires_in":600,"refresh_token":"refresh-2"}"#.to_vec();
    let answer = HttpResponse::new(200, vec![("Content-Type".into(), "application/json".into())], body);
    v.finish_refresh(pending.attempt, answer).unwrap();
    assert_eq!(reader.read().unwrap(), "access-2");
    assert_eq!(v.access_token(ACCOUNT).unwrap().expose(), "access-2");

    // Removed (logout).
    assert!(v.remove(ACCOUNT).unwrap());
    assert_eq!(reader.read(), Err(ErrorCode::NotFound));

    // Stored, then the vault closed.
    v.store(session("access-3")).unwrap();
    assert_eq!(reader.read().unwrap(), "access-3");
    let hits = v.metrics().cached_hits;
    v.close().unwrap();
    assert_eq!(reader.read(), Err(ErrorCode::Closed));
    assert_eq!(v.metrics().cached_hits, hits, "a closed vault serves no copy");
    reader.stop();
}

#[test]
fn a_copy_is_not_served_once_its_token_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let v = open(dir.path(), Arc::clone(&clock));
    v.store(session("access-0")).unwrap();
    let reader = Reader::start(Arc::clone(&v));
    assert_eq!(reader.read().unwrap(), "access-0");
    let hits = v.metrics().cached_hits;

    // Past the refresh point (and the expiry): the copy is no longer fresh, so the read goes to
    // the engine, whose refresh cannot reach 127.0.0.1:9.
    clock.advance(Duration::from_secs(601));
    assert!(reader.read().is_err());
    assert_eq!(v.metrics().cached_hits, hits, "a due token is not a cached hit");
    reader.stop();
}

#[test]
fn many_threads_reading_get_the_same_refresh_result_and_every_hit_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let v = open(dir.path(), ManualClock::new());
    v.store(session("access-0")).unwrap();
    let first = v.access_token(ACCOUNT).unwrap();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let v = Arc::clone(&v);
            let first = first.clone();
            thread::spawn(move || {
                for _ in 0..1000 {
                    let t = v.access_token(ACCOUNT).unwrap();
                    assert!(t.same_as(&first));
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(v.metrics().cached_hits, 6001);
}

#[test]
fn a_thread_reading_more_accounts_than_it_keeps_copies_of_gets_each_ones_current_token() {
    let dir = tempfile::tempdir().unwrap();
    let v = open(dir.path(), ManualClock::new());
    let accounts: Vec<String> = (0..20).map(|i| format!("player-{i}")).collect();
    let store_all = |round: u32| {
        for a in &accounts {
            let s = NewSession::new(a.as_str(), "backend", format!("{a}-token-{round}"))
                .refresh_credential("refresh-0")
                .expires_in(Duration::from_secs(600));
            v.store(s).unwrap();
        }
    };
    store_all(0);
    let reader = {
        let v = Arc::clone(&v);
        let accounts = accounts.clone();
        move |round: u32| {
            for _ in 0..3 {
                for a in &accounts {
                    assert_eq!(v.access_token(a).unwrap().expose(), format!("{a}-token-{round}"));
                }
            }
        }
    };
    let (ask, asked) = mpsc::channel::<u32>();
    let (done, finished) = mpsc::channel::<()>();
    let t = thread::spawn(move || {
        for round in asked {
            reader(round);
            done.send(()).unwrap();
        }
    });
    ask.send(0).unwrap();
    finished.recv_timeout(Duration::from_secs(20)).unwrap();
    store_all(1);
    ask.send(1).unwrap();
    finished.recv_timeout(Duration::from_secs(20)).unwrap();
    drop(ask);
    t.join().unwrap();
}

/// The invariant behind the epoch: once a store has returned and a reader has seen that it
/// returned (through an acquire load of what the writer published after it), the reader never
/// gets an older token, from its own copy or from the map.
#[test]
fn a_reader_never_gets_a_token_older_than_one_whose_store_it_has_seen_complete() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let v = open(dir.path(), ManualClock::new());
    v.store(session("access-0")).unwrap();
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (v, published, stop) = (Arc::clone(&v), Arc::clone(&published), Arc::clone(&stop));
            thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let seen = published.load(Ordering::Acquire);
                    let token = v.access_token(ACCOUNT).unwrap();
                    let n: u64 = token.expose().trim_start_matches("access-").parse().unwrap();
                    assert!(
                        n >= seen,
                        "read access-{n} after the store of access-{seen} had returned"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for n in 1..=400u64 {
        v.store(session(&format!("access-{n}"))).unwrap();
        published.store(n, Ordering::Release);
    }
    stop.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}
