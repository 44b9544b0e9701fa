//! Support code for the benchmarks that measure the vault against a peer library in the same run
//! (issue 14). The benchmarks live in `benches/`; this library holds what they share: a
//! JWT-shaped token generator, the paired (interleaved) timing helper, the thread harness and a
//! one-route OAuth token endpoint on 127.0.0.1.
//!
//! Run: `cargo bench -p tokenvault-peer-bench --bench yup_oauth2 -- --warm-up-time 1 --measurement-time 3`

// Benchmark support: any failure here is a failed benchmark run, reported by the panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A JWT-shaped access token of `len` or `len + 1` bytes (header.claims.signature, base64url),
/// with real `iat`/`exp` claims (the vault decodes them when a session is stored).
pub fn jwt_token(sub: &str, len: usize) -> String {
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

/// Paired, interleaved timing of two measurements (A B, B A, A B, ...), so a drift of the
/// machine's speed between two benchmarks run one after the other (other builds share the cores)
/// cannot masquerade as a ratio. Each closure runs `ops` operations and returns the time they
/// took. Prints both medians per operation and the median of the per-pair ratios A/B, and
/// returns that median ratio.
pub fn paired(
    label: &str,
    pairs: usize,
    ops: u64,
    mut a: impl FnMut() -> Duration,
    mut b: impl FnMut() -> Duration,
) -> f64 {
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
    let ratio = median(&mut ratios);
    println!(
        "{label}: {pairs} interleaved pairs: A median {}, B median {} per op; median of pair ratios A/B {ratio:.2}",
        show(median(&mut ta)),
        show(median(&mut tb)),
    );
    ratio
}

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

/// `iters` operations on this thread: `setup` runs first, outside the timing (e.g. building a
/// runtime), then `run(&state, iters)` is timed.
pub fn one_thread<S>(iters: u64, setup: &dyn Fn() -> S, run: &dyn Fn(&S, u64)) -> Duration {
    let state = setup();
    let start = Instant::now();
    run(&state, iters);
    start.elapsed()
}

/// `iters` operations on each of two OS threads started together (each runs `setup` first,
/// outside the timing, then waits at a barrier); returns the slower thread's elapsed time, so
/// the figure per operation is the time per read as seen by one thread: perfect scaling shows
/// the one-thread figure again.
pub fn two_threads<S>(iters: u64, setup: &(dyn Fn() -> S + Sync), run: &(dyn Fn(&S, u64) + Sync)) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let state = setup();
                    barrier.wait();
                    let start = Instant::now();
                    run(&state, iters);
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).max().unwrap()
    })
}

/// A minimal OAuth token endpoint on 127.0.0.1: every request (whatever its path or body) gets
/// `200` with the same JSON body and `Connection: close`. It counts the requests it served, so a
/// benchmark can check that its timed loops sent none. Stopped (and its thread joined) on drop.
#[derive(Debug)]
pub struct TokenEndpoint {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenEndpoint {
    /// Start serving `body` (a JSON token response) on an ephemeral port of 127.0.0.1.
    pub fn start(body: String) -> TokenEndpoint {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (served2, stop2) = (Arc::clone(&served), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if answer(conn, &body).is_ok() {
                    served2.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        TokenEndpoint {
            addr,
            served,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Requests answered so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Read one HTTP/1.1 request (head, then `Content-Length` bytes of body) and answer it.
fn answer(conn: TcpStream, body: &str) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn);
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut request_body = vec![0u8; content_length];
    reader.read_exact(&mut request_body)?;
    let mut conn = reader.into_inner();
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}
