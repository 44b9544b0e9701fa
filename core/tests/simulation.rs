//! A deterministic simulation of the refresh protocol.
//!
//! Two to four vault instances ("processes", each with its own clock) share one real SQLite
//! file and are driven step by step through the two-step refresh API, so a seed — not the OS
//! scheduler — chooses every interleaving. A scripted OAuth2 server rotates refresh tokens,
//! detects reuse (and then revokes the whole family, as real servers do), fails with 503,
//! throttles with 429 + `Retry-After`, and answers requests that the client already gave up on.
//! The network loses answers after the server committed. Instances crash mid-flight (their OS
//! refresh locks are released), clocks jump by hours both ways, and the host logs out and
//! signs in again while refreshes are in flight.
//!
//! After every step the simulation checks:
//! 1. a refresh credential is sent again only after every earlier request carrying it lost its
//!    answer or consumed nothing (a 503, a 429, a refused connection);
//! 2. no session ends without a typed verdict, and every instance reports the same one;
//! 3. no instance serves an older generation than one it served;
//! 4. a peer's rotated pair is adopted, never overwritten (the stored credential only moves
//!    forward in its family);
//! 5. a logout is never undone by a late answer.
//!
//! `TOKENVAULT_SIM_SEEDS=N` sets how many seeds run (default 10,000); `TOKENVAULT_SIM_SEED=N`
//! replays one seed and prints its trace. A failure prints the seed and the trace.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokenvault::{
    ErrorCode, HttpResponse, KeySource, ManualClock, NewSession, Preset, Profile, RefreshPolicy, RefreshStep,
    TransportError, TransportErrorKind, Vault, VaultError, VaultOptions,
};

const ACCOUNT: &str = "player-1";
const KEY: [u8; 32] = [0x5a; 32];
const LIFETIME_S: u64 = 300;

/// SplitMix64: small, fast, and the whole run follows from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Pending,
    Delivered,
    Lost,
}

enum ReqState {
    /// On its way to the server.
    Queued,
    /// The server answered; the answer is on its way back.
    Processed(HttpResponse),
    /// The client gave up (or crashed); the server may still process it, and its answer is lost.
    Orphan,
    Done,
}

struct Req {
    slot: usize,
    incarnation: u64,
    attempt: u64,
    credential: String,
    state: ReqState,
    answer: Answer,
    /// The server rotated the credential on this request.
    consumed: bool,
}

struct Issued {
    family: u64,
    index: u64,
    consumed_by: Option<usize>,
}

#[derive(Default)]
struct Server {
    tokens: HashMap<String, Issued>,
    revoked: HashSet<u64>,
    next_family: u64,
}

impl Server {
    fn login(&mut self) -> (String, String) {
        self.next_family += 1;
        self.issue(self.next_family, 0)
    }

    fn issue(&mut self, family: u64, index: u64) -> (String, String) {
        let access = format!("a{family}x{index}");
        let refresh = format!("r{family}x{index}");
        self.tokens.insert(
            refresh.clone(),
            Issued {
                family,
                index,
                consumed_by: None,
            },
        );
        (access, refresh)
    }

    /// Whether a credential still works at the server.
    fn alive(&self, credential: &str) -> bool {
        self.tokens
            .get(credential)
            .is_some_and(|t| t.consumed_by.is_none() && !self.revoked.contains(&t.family))
    }

    fn handle(&mut self, req_id: usize, credential: &str, rng: &mut Rng, faults: bool) -> (HttpResponse, bool) {
        let refused = || {
            HttpResponse::new(
                400,
                vec![("Content-Type".into(), "application/json".into())],
                br#"{"error":"invalid_grant","error_description":"refresh token is not valid"}"#.to_vec(),
            )
        };
        let Some(t) = self.tokens.get_mut(credential) else {
            return (refused(), false);
        };
        let family = t.family;
        if self.revoked.contains(&family) {
            return (refused(), false);
        }
        if t.consumed_by.is_some() {
            // Reuse detection: the whole family is revoked.
            self.revoked.insert(family);
            return (refused(), false);
        }
        if faults && rng.chance(12) {
            return (HttpResponse::new(503, vec![], b"unavailable".to_vec()), false);
        }
        if faults && rng.chance(6) {
            let secs = 1 + rng.below(120);
            return (
                HttpResponse::new(429, vec![("Retry-After".into(), secs.to_string())], Vec::new()),
                false,
            );
        }
        t.consumed_by = Some(req_id);
        let index = t.index + 1;
        let (access, refresh) = self.issue(family, index);
        let body = format!(
            r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":{LIFETIME_S},"refresh_token":"{refresh}"}}"#
        );
        (
            HttpResponse::new(
                200,
                vec![("Content-Type".into(), "application/json".into())],
                body.into_bytes(),
            ),
            true,
        )
    }
}

struct Instance {
    vault: Option<Vault>,
    clock: Arc<ManualClock>,
    incarnation: u64,
    /// Highest generation this incarnation handed out.
    served: u64,
}

struct Sim {
    rng: Rng,
    path: PathBuf,
    server: Server,
    instances: Vec<Instance>,
    reqs: Vec<Req>,
    trace: Vec<String>,
    /// Logged out (and not signed in again).
    logged_out: bool,
    /// Session epoch (bumped by each sign-in) and the verdict reported in it, if any.
    epoch: u64,
    verdict: Option<(u64, ErrorCode, String)>,
    /// The family and index of the credential last seen in the file.
    stored_position: Option<(u64, u64)>,
    next_incarnation: u64,
    /// (earlier request, later request carrying the same credential, sent while the earlier
    /// one's answer was still pending): the earlier answer must never be delivered.
    resends: Vec<(usize, usize)>,
}

fn profile() -> Profile {
    Profile::preset(
        Preset::OAuth2,
        "sim",
        "http://127.0.0.1:9/token",
        serde_json::json!({"client_id": "sim"}),
    )
    .unwrap()
}

fn open(path: &Path, clock: &Arc<ManualClock>) -> Vault {
    let options = VaultOptions {
        clock: clock.clone(),
        // No jitter, and a back-off far below the smallest clock step: every decision follows
        // from the seed.
        policy: RefreshPolicy {
            jitter: 0.0,
            backoff_initial: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
            ..RefreshPolicy::default()
        },
        ..VaultOptions::default()
    };
    let v = Vault::open(path, KeySource::raw(&KEY).unwrap(), options).unwrap();
    v.register_profile(profile()).unwrap();
    v
}

fn credential_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .find_map(|kv| kv.strip_prefix("refresh_token="))
        .unwrap_or_default()
        .to_owned()
}

impl Sim {
    fn new(seed: u64, dir: &Path) -> Sim {
        let mut rng = Rng(seed);
        let count = 2 + rng.below(3) as usize;
        let path = dir.join(format!("sim-{seed}.db"));
        let start_wall = 1_800_000_000_000;
        let mut instances = Vec::new();
        for i in 0..count {
            let clock = ManualClock::at_wall_ms(start_wall + (i as i64) * 1_000);
            instances.push(Instance {
                vault: Some(open(&path, &clock)),
                clock,
                incarnation: i as u64,
                served: 0,
            });
        }
        let mut sim = Sim {
            rng,
            path,
            server: Server::default(),
            instances,
            reqs: Vec::new(),
            trace: Vec::new(),
            logged_out: true,
            epoch: 0,
            verdict: None,
            stored_position: None,
            next_incarnation: count as u64,
            resends: Vec::new(),
        };
        sim.sign_in(0);
        sim
    }

    fn vault(&self, slot: usize) -> &Vault {
        self.instances[slot].vault.as_ref().unwrap()
    }

    fn sign_in(&mut self, slot: usize) {
        let (access, refresh) = self.server.login();
        let s = NewSession::new(ACCOUNT, "sim", access)
            .refresh_credential(refresh)
            .expires_in(Duration::from_secs(LIFETIME_S));
        let info = self.vault(slot).store(s).unwrap();
        self.epoch += 1;
        self.logged_out = false;
        self.stored_position = None;
        self.note_served(slot, info.generation);
        self.trace
            .push(format!("#{slot} signs in (generation {})", info.generation));
    }

    fn note_served(&mut self, slot: usize, generation: u64) {
        let inst = &mut self.instances[slot];
        assert!(
            generation >= inst.served,
            "invariant 3: #{slot} served generation {generation} after {}",
            inst.served
        );
        inst.served = generation;
    }

    /// Check an error a vault returned: only these codes may come out of the protocol, and a
    /// verdict is the same everywhere within one sign-in.
    fn note_error(&mut self, slot: usize, e: &VaultError) {
        match e.code() {
            ErrorCode::Transient | ErrorCode::Throttled => {}
            ErrorCode::NotFound => assert!(self.logged_out, "#{slot}: NotFound while signed in"),
            ErrorCode::ReauthenticationRequired | ErrorCode::RefreshOutcomeUnknown => {
                let v = (self.epoch, e.code(), e.to_string());
                match &self.verdict {
                    Some(known) if known.0 == self.epoch => {
                        assert_eq!(known, &v, "invariant 2: instances report different verdicts")
                    }
                    _ => self.verdict = Some(v),
                }
            }
            other => panic!("#{slot}: unexpected error {other}: {e}"),
        }
    }

    fn begin(&mut self, slot: usize, force: bool) {
        let r = self.vault(slot).begin_refresh(ACCOUNT, force);
        match r {
            Ok(RefreshStep::Fresh(t)) => {
                self.trace
                    .push(format!("#{slot} begin(force={force}): fresh g{}", t.generation()));
                self.note_served(slot, t.generation());
            }
            Ok(RefreshStep::InFlight) => self.trace.push(format!("#{slot} begin(force={force}): in flight")),
            Ok(RefreshStep::Send(p)) => {
                let credential = credential_of(&p.request.body);
                let id = self.reqs.len();
                self.trace
                    .push(format!("#{slot} begin(force={force}): send {credential} (req {id})"));
                for (earlier, r) in self.reqs.iter().enumerate() {
                    if r.credential != credential {
                        continue;
                    }
                    assert!(
                        !(r.answer == Answer::Delivered && r.consumed),
                        "invariant 1: req {id} resends a credential that req {earlier} consumed and whose answer was delivered"
                    );
                    if r.answer == Answer::Pending && !matches!(r.state, ReqState::Orphan | ReqState::Done) {
                        self.resends.push((earlier, id));
                    }
                }
                self.push_req(slot, p.attempt, credential);
            }
            Err(e) => {
                self.trace
                    .push(format!("#{slot} begin(force={force}): {} {e}", e.code()));
                self.note_error(slot, &e);
            }
        }
    }

    /// A request the vault handed out, now on its way to the server.
    fn push_req(&mut self, slot: usize, attempt: u64, credential: String) -> usize {
        self.reqs.push(Req {
            slot,
            incarnation: self.instances[slot].incarnation,
            attempt,
            credential,
            state: ReqState::Queued,
            answer: Answer::Pending,
            consumed: false,
        });
        self.reqs.len() - 1
    }

    fn open_reqs(&self, pred: impl Fn(&ReqState) -> bool) -> Vec<usize> {
        (0..self.reqs.len()).filter(|&i| pred(&self.reqs[i].state)).collect()
    }

    fn process(&mut self, id: usize, faults: bool) {
        let credential = self.reqs[id].credential.clone();
        let (response, consumed) = self.server.handle(id, &credential, &mut self.rng, faults);
        self.trace
            .push(format!("server handles req {id} ({credential}): {} ", response.status));
        let req = &mut self.reqs[id];
        req.consumed = consumed;
        req.state = match std::mem::replace(&mut req.state, ReqState::Done) {
            ReqState::Orphan => {
                req.answer = Answer::Lost;
                ReqState::Done
            }
            _ => ReqState::Processed(response),
        };
    }

    fn live(&self, id: usize) -> bool {
        let r = &self.reqs[id];
        self.instances[r.slot].incarnation == r.incarnation
    }

    fn deliver(&mut self, id: usize) {
        let ReqState::Processed(response) = std::mem::replace(&mut self.reqs[id].state, ReqState::Done) else {
            return;
        };
        let (slot, attempt) = (self.reqs[id].slot, self.reqs[id].attempt);
        if !self.live(id) {
            self.reqs[id].answer = Answer::Lost;
            return;
        }
        match self.vault(slot).finish_refresh(attempt, response) {
            Ok(t) => {
                self.reqs[id].answer = Answer::Delivered;
                self.trace.push(format!("#{slot} finish req {id}: g{}", t.generation()));
                self.note_served(slot, t.generation());
            }
            Err(e) if e.code() == ErrorCode::InvalidInput => {
                // The vault had dropped the attempt (past its deadline): the answer is lost.
                self.reqs[id].answer = Answer::Lost;
                self.trace
                    .push(format!("#{slot} finish req {id}: attempt dropped by the vault"));
            }
            Err(e) => {
                self.reqs[id].answer = Answer::Delivered;
                self.trace.push(format!("#{slot} finish req {id}: {} {e}", e.code()));
                self.note_error(slot, &e);
            }
        }
    }

    /// The client stops waiting: a timeout (the request may still reach the server) or a
    /// refused connection (it never will).
    fn fail(&mut self, id: usize, kind: TransportErrorKind) {
        let state = std::mem::replace(&mut self.reqs[id].state, ReqState::Done);
        let reached = matches!(state, ReqState::Processed(_));
        if kind == TransportErrorKind::Connect && reached {
            self.reqs[id].state = state;
            return;
        }
        self.reqs[id].state = match (kind, reached) {
            (TransportErrorKind::Timeout, false) => ReqState::Orphan,
            _ => ReqState::Done,
        };
        if reached {
            self.reqs[id].answer = Answer::Lost;
        }
        let (slot, attempt) = (self.reqs[id].slot, self.reqs[id].attempt);
        if !self.live(id) {
            return;
        }
        let r = self
            .vault(slot)
            .fail_refresh(attempt, TransportError::new(kind, "simulated"));
        match r {
            Ok(t) => {
                self.trace
                    .push(format!("#{slot} fail req {id} ({kind:?}): served g{}", t.generation()));
                self.note_served(slot, t.generation());
            }
            Err(e) if e.code() == ErrorCode::InvalidInput => {
                self.trace
                    .push(format!("#{slot} fail req {id}: attempt dropped by the vault"));
            }
            Err(e) => {
                self.trace
                    .push(format!("#{slot} fail req {id} ({kind:?}): {} {e}", e.code()));
                self.note_error(slot, &e);
            }
        }
    }

    fn crash(&mut self, slot: usize) {
        let inc = self.instances[slot].incarnation;
        for r in self.reqs.iter_mut().filter(|r| r.slot == slot && r.incarnation == inc) {
            r.state = match std::mem::replace(&mut r.state, ReqState::Done) {
                ReqState::Queued => ReqState::Orphan,
                ReqState::Processed(_) => {
                    r.answer = Answer::Lost;
                    ReqState::Done
                }
                other => other,
            };
        }
        // Dropping the vault is what a crash leaves behind: the kernel releases its locks.
        self.instances[slot].vault = None;
        let clock = self.instances[slot].clock.clone();
        self.instances[slot] = Instance {
            vault: Some(open(&self.path, &clock)),
            clock,
            incarnation: self.next_incarnation,
            served: 0,
        };
        self.next_incarnation += 1;
        self.trace.push(format!("#{slot} crashes and restarts"));
    }

    fn step(&mut self) {
        let slot = self.rng.below(self.instances.len() as u64) as usize;
        match self.rng.below(100) {
            0..=24 => {
                let force = self.rng.chance(25);
                self.begin(slot, force);
            }
            25..=39 => {
                let secs = 1 + self.rng.below(LIFETIME_S + 100);
                self.instances[slot].clock.advance(Duration::from_secs(secs));
                self.trace.push(format!("#{slot} clock +{secs} s"));
            }
            40..=44 => {
                let hours = self.rng.below(7) as i64 - 3;
                self.instances[slot].clock.shift_wall(hours * 3_600_000);
                self.trace.push(format!("#{slot} wall clock {hours:+} h"));
            }
            45..=59 => {
                let q = self.open_reqs(|s| matches!(s, ReqState::Queued | ReqState::Orphan));
                if let Some(&id) = q.get(self.rng.below(q.len() as u64) as usize) {
                    self.process(id, true);
                }
            }
            60..=74 => {
                let q = self.open_reqs(|s| matches!(s, ReqState::Processed(_)));
                if let Some(&id) = q.get(self.rng.below(q.len() as u64) as usize) {
                    self.deliver(id);
                }
            }
            75..=81 => {
                let q = self.open_reqs(|s| matches!(s, ReqState::Queued | ReqState::Processed(_)));
                if let Some(&id) = q.get(self.rng.below(q.len() as u64) as usize) {
                    let kind = if self.rng.chance(50) {
                        TransportErrorKind::Timeout
                    } else {
                        TransportErrorKind::Connect
                    };
                    self.fail(id, kind);
                }
            }
            82..=87 => self.crash(slot),
            88..=92 => {
                if !self.logged_out && self.rng.chance(50) {
                    let existed = self.vault(slot).remove(ACCOUNT).unwrap();
                    self.logged_out = true;
                    self.trace.push(format!("#{slot} logs out (existed: {existed})"));
                } else {
                    self.sign_in(slot);
                }
            }
            _ => {
                let r = self.vault(slot).session_info(ACCOUNT);
                if let Err(e) = r {
                    self.note_error(slot, &e);
                }
            }
        }
    }

    /// Invariants that hold between any two steps.
    fn check(&mut self) {
        // 1: a credential resent while an earlier request with it was in flight: that earlier
        // attempt must have been given up by the vault (its answer can only be lost).
        for &(earlier, later) in &self.resends {
            assert!(
                self.reqs[earlier].answer != Answer::Delivered,
                "invariant 1: req {later} was sent while req {earlier} (same credential) was in flight, and req {earlier}'s answer was then accepted"
            );
        }
        // 4 and 5: what the file holds.
        let Some(slot) = (0..self.instances.len()).find(|&i| self.instances[i].vault.is_some()) else {
            return;
        };
        match self.vault(slot).stored_pair_for_tests(ACCOUNT) {
            Err(e) if e.code() == ErrorCode::NotFound => {
                assert!(self.logged_out, "a signed-in session vanished from the file");
            }
            Err(e) => panic!("the file's session cannot be read: {e}"),
            Ok((_, refresh)) => {
                assert!(!self.logged_out, "invariant 5: a logout was undone");
                let refresh = refresh.unwrap_or_default();
                let issued = self
                    .server
                    .tokens
                    .get(&refresh)
                    .expect("the file holds a credential never issued");
                let position = (issued.family, issued.index);
                if let Some(prev) = self.stored_position {
                    assert!(
                        prev.0 != position.0 || prev.1 <= position.1,
                        "invariant 4: the stored credential went back from {prev:?} to {position:?}"
                    );
                }
                self.stored_position = Some(position);
            }
        }
    }

    /// Let everything in flight end, then ask every instance for a new token: a session the
    /// server still honours refreshes; one it killed ends with the same typed verdict
    /// everywhere.
    fn settle_all(&mut self) {
        for id in self.open_reqs(|s| matches!(s, ReqState::Queued | ReqState::Processed(_))) {
            self.fail(id, TransportErrorKind::Timeout);
        }
        self.check();
        if self.logged_out {
            return;
        }
        // Past any Retry-After the server gave (at most 120 s).
        for inst in &self.instances {
            inst.clock.advance(Duration::from_secs(121));
        }
        for slot in 0..self.instances.len() {
            let stored = self
                .vault(slot)
                .stored_pair_for_tests(ACCOUNT)
                .unwrap()
                .1
                .unwrap_or_default();
            let alive = self.server.alive(&stored);
            match self.vault(slot).begin_refresh(ACCOUNT, true) {
                Ok(RefreshStep::Send(p)) => {
                    let id = self.push_req(slot, p.attempt, credential_of(&p.request.body));
                    self.process(id, false);
                    let ReqState::Processed(response) = std::mem::replace(&mut self.reqs[id].state, ReqState::Done)
                    else {
                        unreachable!()
                    };
                    self.reqs[id].answer = Answer::Delivered;
                    match self.vault(slot).finish_refresh(p.attempt, response) {
                        Ok(t) => {
                            assert!(alive, "#{slot} refreshed a session the server had killed");
                            self.trace.push(format!("#{slot} final refresh: g{}", t.generation()));
                            self.note_served(slot, t.generation());
                        }
                        Err(e) => {
                            self.trace.push(format!("#{slot} final refresh: {} {e}", e.code()));
                            assert!(!alive, "#{slot}: a live session failed its final refresh: {e}");
                            assert!(
                                matches!(
                                    e.code(),
                                    ErrorCode::ReauthenticationRequired | ErrorCode::RefreshOutcomeUnknown
                                ),
                                "invariant 2: a killed session ended without a verdict: {e}"
                            );
                            self.note_error(slot, &e);
                        }
                    }
                }
                Ok(RefreshStep::Fresh(t)) => {
                    // A peer refreshed just before (the rejected token is not the current one).
                    self.note_served(slot, t.generation());
                }
                Ok(RefreshStep::InFlight) => panic!("#{slot}: a refresh is in flight with nothing pending"),
                Err(e) => {
                    self.trace.push(format!("#{slot} final refresh: {} {e}", e.code()));
                    assert!(!alive, "#{slot}: a live session refused: {e}");
                    self.note_error(slot, &e);
                    assert!(
                        self.verdict.as_ref().is_some_and(|v| v.0 == self.epoch),
                        "invariant 2: no verdict for a killed session: {e}"
                    );
                }
            }
            self.check();
        }
    }
}

fn run_seed(seed: u64, dir: &Path) -> Result<usize, String> {
    let trace = Arc::new(parking_lot_free::Slot::default());
    let t2 = Arc::clone(&trace);
    let dir = dir.to_path_buf();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut sim = Sim::new(seed, &dir);
        let steps = 30 + sim.rng.below(50) as usize;
        let mut run = || {
            for _ in 0..steps {
                sim.step();
                sim.check();
            }
            sim.settle_all();
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut run));
        t2.set(sim.trace.join("\n"));
        let path = sim.path.clone();
        drop(sim);
        remove_vault_files(&path);
        match r {
            Ok(()) => steps,
            Err(p) => std::panic::resume_unwind(p),
        }
    }));
    result.map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        format!("seed {seed} failed: {msg}\ntrace:\n{}", trace.take())
    })
}

/// A tiny cell for the trace of a seed that panicked (no extra dependency).
mod parking_lot_free {
    #[derive(Default)]
    pub struct Slot(std::sync::Mutex<String>);
    impl Slot {
        pub fn set(&self, s: String) {
            if let Ok(mut g) = self.0.lock() {
                *g = s;
            }
        }
        pub fn take(&self) -> String {
            self.0.lock().map(|mut g| std::mem::take(&mut *g)).unwrap_or_default()
        }
    }
}

fn remove_vault_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    let mut locks = path.as_os_str().to_owned();
    locks.push("-locks");
    let _ = std::fs::remove_dir_all(PathBuf::from(locks));
}

/// A directory on tmpfs when there is one: the simulation's durable commits then cost no
/// fsync, and 10,000 seeds fit in the normal test run. The file is a real SQLite file either way.
fn sim_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("tokenvault-sim").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

#[test]
fn simulation() {
    let dir = sim_dir();
    if let Ok(one) = std::env::var("TOKENVAULT_SIM_SEED") {
        let seed: u64 = one.parse().expect("TOKENVAULT_SIM_SEED must be a number");
        match run_seed(seed, dir.path()) {
            Ok(steps) => println!("seed {seed}: {steps} steps, every invariant held"),
            Err(report) => panic!("{report}"),
        }
        return;
    }
    let seeds: u64 = std::env::var("TOKENVAULT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let steps = Arc::new(AtomicU64::new(0));
    let failure: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (next, steps, failure) = (Arc::clone(&next), Arc::clone(&steps), Arc::clone(&failure));
            let dir = dir.path();
            s.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds || failure.lock().unwrap().is_some() {
                    break;
                }
                match run_seed(seed, dir) {
                    Ok(n) => {
                        steps.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(report) => {
                        let mut f = failure.lock().unwrap();
                        if f.is_none() {
                            *f = Some(report);
                        }
                    }
                }
            });
        }
    });
    if let Some(report) = failure.lock().unwrap().take() {
        panic!("{report}\nreplay with TOKENVAULT_SIM_SEED=<seed>");
    }
    println!(
        "simulation: {seeds} seeds, {} steps, every invariant held ({:.1} s)",
        steps.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
