//! The refresh protocol (ADR 0004): who refreshes, who waits, and how an outcome is stored.
//!
//! 1. A caller whose token is not fresh joins this process's flight for the account or becomes
//!    its leader (single-flight).
//! 2. The leader takes the account's OS refresh lock. While a peer (another process or vault
//!    instance) holds it, a blocking leader polls — adopting the peer's pair as soon as it lands
//!    — until its own flight deadline, then serves a still-usable token or returns `Transient`;
//!    a two-step leader returns at once (`InFlight`). No wall clock is compared, no pid trusted.
//! 3. Holding the lock, the leader checks that the session is still the generation it
//!    refreshes (a peer may have refreshed: then its pair is adopted and nothing is sent), and
//!    records the lost-answer marker (the credential's keyed hash) in the lock's file. An
//!    earlier marker for the same credential means an earlier request lost its answer.
//! 4. The request is sent (by the transport, or by the host in two steps); [`settle`] decides
//!    what the outcome means; the new pair is committed durably with a compare-and-swap on the
//!    base generation (a logout or a peer's rotation in between wins); then the lock is released
//!    and the waiters get the result.
//!
//! [`settle`]: super::settle::settle

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::flight::Flight;
use super::refresh_lock::Marker;
use super::settle::{settle, AttemptFacts, Outcome, Settlement};
use super::{record_after_refresh, AccountKey, CachedSession, Engine, Lead};
use crate::error::{ErrorCode, Result, VaultError};
use crate::events::VaultEvent;
use crate::profile::Profile;
use crate::secret::AccessToken;
use crate::transport::{HttpRequest, HttpResponse, TransportError};

/// How long beyond the profile's request timeout an attempt may take before its waiters give up.
const FLIGHT_GRACE: Duration = Duration::from_secs(5);

/// How often a waiter looks at the refresh lock and the file while a peer refreshes.
const PEER_POLL: Duration = Duration::from_millis(10);

/// What the caller wants.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// A token that stays valid at least `min_ttl_ns` (capped at half its lifetime).
    Due { min_ttl_ns: u64 },
    /// A new token: the host's API rejected `rejected`.
    Forced { rejected: Option<AccessToken> },
}

/// Whether a leader waits for a peer holding the refresh lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerWait {
    /// Poll until the flight's deadline (the blocking path).
    Block,
    /// Return [`Start::PeerBusy`] at once (the two-step path never blocks).
    Never,
}

/// How a call starts.
pub(crate) enum Start {
    Ready(AccessToken),
    Join(Arc<Flight>),
    /// Another process or vault instance is refreshing this account.
    PeerBusy,
    Lead(Box<Lead>, HttpRequest),
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Engine {
    /// A token for the blocking path: cached, adopted from a peer, or refreshed once.
    pub(crate) fn obtain(&self, key: &AccountKey, mode: Mode) -> Result<AccessToken> {
        for _ in 0..8 {
            match self.start(key, &mode, PeerWait::Block)? {
                Start::Ready(t) => return Ok(t),
                Start::PeerBusy => continue,
                Start::Join(flight) => {
                    self.metrics.flight_joins.add_one();
                    let wait = Duration::from_nanos(flight.deadline.saturating_sub(self.clock.mono_ns()))
                        .max(Duration::from_millis(50));
                    match flight.wait(wait) {
                        None => continue,
                        Some(Ok(t)) => {
                            if let Mode::Forced { rejected: Some(r) } = &mode {
                                if t.expose() == r.expose() {
                                    // That attempt did not produce a new token. If it was a
                                    // forced refresh of the very pair we reject, it failed:
                                    // report that. Otherwise (an older, non-forced attempt, or
                                    // one that refreshed an older generation) try our own.
                                    if flight.forced && flight.base_generation == r.generation() {
                                        let now = self.clock.mono_ns();
                                        return Err(self
                                            .refresh
                                            .lock()
                                            .get(&key.id)
                                            .and_then(|st| st.last_error(now))
                                            .unwrap_or_else(|| {
                                                VaultError::transient("the refresh did not produce a new token")
                                            }));
                                    }
                                    continue;
                                }
                            }
                            return Ok(t);
                        }
                        Some(Err(e)) => return Err(e),
                    }
                }
                Start::Lead(lead, request) => {
                    let transport = match self.transport() {
                        Ok(t) => t,
                        Err(e) => {
                            // Nothing was sent: the marker of this attempt means nothing.
                            self.clear_marker(&lead);
                            self.metrics.refresh_ended(Err(e.code()));
                            self.end_flight(&lead.account.id, &lead.flight, Err(e.clone()));
                            return Err(e);
                        }
                    };
                    if let Err(e) = self.prefetch_jwks(&lead.profile) {
                        // Nothing was sent: an answer that could not be checked would be lost.
                        self.clear_marker(&lead);
                        let e = VaultError::transient(format!(
                            "the OpenID issuer's keys could not be fetched before the refresh ({})",
                            e.code()
                        ));
                        self.metrics.refresh_ended(Err(e.code()));
                        self.end_flight(&lead.account.id, &lead.flight, Err(e.clone()));
                        return Err(e);
                    }
                    crate::logging::debug_record!("refresh: sending (generation {})", lead.base_generation());
                    let response = transport.send(&request);
                    drop(request);
                    return self.finish(*lead, response);
                }
            }
        }
        Err(VaultError::transient("the refresh did not settle"))
    }

    fn ready(entry: &CachedSession, mode: &Mode, now: u64) -> Option<AccessToken> {
        match mode {
            Mode::Due { min_ttl_ns } => entry.fresh_for(now, *min_ttl_ns).then(|| entry.token.clone()),
            Mode::Forced { rejected: Some(r) } => {
                (entry.generation != r.generation() && entry.token.expose() != r.expose() && now < entry.usable_until)
                    .then(|| entry.token.clone())
            }
            Mode::Forced { rejected: None } => None,
        }
    }

    /// What a caller gets from a session it did not refresh itself: its verdict once it has one
    /// (unless a non-forced caller can still use the token), else its token.
    fn resolve(current: &CachedSession, forced: bool, now: u64) -> Result<AccessToken> {
        match &current.record.verdict {
            Some(v) if forced || !current.usable(now) => Err(v.error()),
            _ => Ok(current.token.clone()),
        }
    }

    /// Decide how a call starts: a ready token, a flight to join, a busy peer, or a lead.
    pub(crate) fn start(&self, key: &AccountKey, mode: &Mode, wait: PeerWait) -> Result<Start> {
        self.check_open()?;
        let now = self.clock.mono_ns();
        let entry = self.entry(key)?;
        if let Some(t) = Self::ready(&entry, mode, now) {
            return Ok(Start::Ready(t));
        }
        // The cached entry may be behind the file: a peer may have refreshed, stored a verdict,
        // or the host signed in again through another instance. A call that would answer from
        // the cached entry without leading (a verdict, no refresh credential, a back-off) reads
        // the file first; a lead checks it once it holds the refresh lock (`lead`), before
        // anything is sent, so the common path reads the file once.
        let answers_without_lead = entry.record.verdict.is_some()
            || entry.record.refresh_credential.is_none()
            || self
                .refresh
                .lock()
                .get(&key.id)
                .is_some_and(|st| now < st.next_attempt || now < st.throttled_until);
        let entry = if answers_without_lead {
            let entry = self.adopt(key, Some(&entry))?;
            if let Some(t) = Self::ready(&entry, mode, now) {
                return Ok(Start::Ready(t));
            }
            entry
        } else {
            entry
        };
        let forced = matches!(mode, Mode::Forced { .. });
        if entry.record.verdict.is_some() {
            return Self::resolve(&entry, forced, now).map(Start::Ready);
        }
        if entry.record.refresh_credential.is_none() {
            if !forced && entry.usable(now) {
                return Ok(Start::Ready(entry.token.clone()));
            }
            return Err(VaultError::reauth("no refresh credential is stored for this session"));
        }
        let profile = self.profile(&entry.record.profile)?;
        check_origin(&entry.record, &profile)?;
        let flight = {
            let mut map = self.refresh.lock();
            let st = map.entry(key.id.clone()).or_default();
            if let Some(f) = &st.flight {
                if !f.is_done() && now < f.deadline {
                    return Ok(Start::Join(Arc::clone(f)));
                }
                // Past its deadline: its waiters start again. Its leader may still be waiting
                // for an answer, holding the refresh lock; a new leader waits for that lock.
                f.abandon();
                st.flight = None;
            }
            if !forced && entry.usable(now) && now < st.next_attempt {
                // Backing off after a failure: serve the still-valid token (staleness is
                // visible in session_info).
                return Ok(Start::Ready(entry.token.clone()));
            }
            if now < st.throttled_until {
                if !forced && entry.usable(now) {
                    return Ok(Start::Ready(entry.token.clone()));
                }
                return Err(VaultError::Throttled {
                    retry_after: Some(Duration::from_nanos(st.throttled_until - now)),
                });
            }
            let deadline = now.saturating_add(ns(profile.timeout() + FLIGHT_GRACE));
            let f = Flight::new(forced, entry.generation, deadline);
            st.flight = Some(Arc::clone(&f));
            f
        };
        match self.lead(key, entry, Arc::clone(&flight), profile, wait) {
            Ok(Start::PeerBusy) => {
                self.detach_flight(&key.id, &flight);
                flight.abandon();
                Ok(Start::PeerBusy)
            }
            Ok(s) => Ok(s),
            Err(e) => {
                self.end_flight(&key.id, &flight, Err(e.clone()));
                Err(e)
            }
        }
    }

    /// Take the refresh lock (or adopt a peer's result), record the marker, build the request.
    fn lead(
        &self,
        key: &AccountKey,
        entry: Arc<CachedSession>,
        flight: Arc<Flight>,
        profile: Arc<Profile>,
        wait: PeerWait,
    ) -> Result<Start> {
        let credential_hash = match &entry.record.refresh_credential {
            Some(c) => self.with_lookup(|l| Ok(l.credential_hash(c.expose())))?,
            None => return Err(VaultError::internal("a lead without a refresh credential")),
        };
        let Some(marker) = Marker::new(&key.hash, entry.generation, &credential_hash) else {
            return Err(VaultError::internal(
                "an account or credential hash has an unexpected length",
            ));
        };
        let started = Instant::now();
        let budget = Duration::from_nanos(flight.deadline.saturating_sub(self.clock.mono_ns()));
        let mut warned = false;
        let mut waited = false;
        let lock = loop {
            if let Some(lock) = self.locks.try_acquire(&key.hash)? {
                break lock;
            }
            if !waited {
                self.metrics.lock_waits.add_one();
                waited = true;
            }
            // A peer is refreshing: adopt its pair as soon as it lands.
            let current = self.adopt(key, Some(&entry))?;
            if current.generation != entry.generation {
                let r = Self::resolve(&current, flight.forced, self.clock.mono_ns());
                self.end_flight(&key.id, &flight, r.clone());
                return r.map(Start::Ready);
            }
            if wait == PeerWait::Never {
                return Ok(Start::PeerBusy);
            }
            let now = self.clock.mono_ns();
            if started.elapsed() >= budget || now >= flight.deadline {
                // Our own deadline: never send while the peer may still be sending.
                let r = if !flight.forced && entry.usable(now) {
                    Ok(entry.token.clone())
                } else {
                    Err(VaultError::transient(
                        "another process is refreshing this session and has not finished",
                    ))
                };
                self.end_flight(&key.id, &flight, r.clone());
                return r.map(Start::Ready);
            }
            if !warned && started.elapsed() >= budget / 2 {
                log::warn!("a peer's refresh of a session is taking long");
                warned = true;
            }
            std::thread::sleep(PEER_POLL);
        };
        // Holding the lock: is the session still the generation this attempt refreshes?
        if !self.with_store(|s| s.store.still_generation(&key.hash, entry.generation))? {
            drop(lock);
            let current = self.adopt(key, Some(&entry))?;
            let r = Self::resolve(&current, flight.forced, self.clock.mono_ns());
            self.end_flight(&key.id, &flight, r.clone());
            return r.map(Start::Ready);
        }
        // The marker an earlier attempt with this same credential for this generation left
        // means its request lost its answer; then this attempt's marker, before anything is
        // sent.
        let possibly_consumed = lock.marker()? == Some(marker);
        lock.set_marker(&marker)?;
        if waited {
            // The peer let go of the lock without leaving a new pair: this vault refreshes
            // in its place.
            self.metrics.lock_takeovers.add_one();
        }
        if possibly_consumed {
            self.metrics.lost_answers.add_one();
        }
        let lead = Box::new(Lead {
            account: key.clone(),
            flight,
            profile,
            base: entry,
            possibly_consumed,
            lock,
            built: Instant::now(),
        });
        let base = &lead.base.record;
        let request = lead.profile.build_request(
            base.access_token.expose(),
            base.refresh_credential.as_ref().map(|c| c.expose()),
        );
        match request {
            Ok(r) => {
                self.metrics.refreshes_started.add_one();
                Ok(Start::Lead(lead, r))
            }
            Err(e) => {
                self.clear_marker(&lead);
                Err(e)
            }
        }
    }

    /// Forget this attempt's marker (its request was certainly not consumed), unless an
    /// earlier lost answer already made the credential suspect.
    pub(crate) fn clear_marker(&self, lead: &Lead) {
        if lead.possibly_consumed {
            return;
        }
        if let Err(e) = lead.lock.clear_marker() {
            log::warn!("could not clear a refresh marker: {}", e.code());
        }
    }

    fn detach_flight(&self, account: &str, flight: &Arc<Flight>) {
        let mut map = self.refresh.lock();
        if let Some(st) = map.get_mut(account) {
            if st.flight.as_ref().is_some_and(|f| Arc::ptr_eq(f, flight)) {
                st.flight = None;
            }
        }
    }

    pub(crate) fn end_flight(&self, account: &str, flight: &Arc<Flight>, result: Result<AccessToken>) {
        self.detach_flight(account, flight);
        flight.complete(result);
    }

    /// Settle an attempt with what came back, store the outcome, release the lock, wake the
    /// waiters, then tell the observer.
    pub(crate) fn finish(
        &self,
        lead: Lead,
        response: std::result::Result<HttpResponse, TransportError>,
    ) -> Result<AccessToken> {
        self.metrics
            .transport_done(lead.built.elapsed(), response.as_ref().map_or(0, |r| r.body.len()));
        let mut event = None;
        let result = self.finish_inner(&lead, response, &mut event);
        let Lead {
            account, flight, lock, ..
        } = lead;
        drop(lock);
        // Waiters are released before observers hear of it: an observer reacting to the event
        // (say, with a forced refresh) never finds this attempt still in flight.
        self.end_flight(&account.id, &flight, result.clone());
        if let Some(e) = event {
            self.events.emit(e);
        }
        result
    }

    fn finish_inner(
        &self,
        lead: &Lead,
        response: std::result::Result<HttpResponse, TransportError>,
        event: &mut Option<VaultEvent>,
    ) -> Result<AccessToken> {
        if self.is_closed() {
            self.metrics.refresh_ended(Err(ErrorCode::Closed));
            return Err(VaultError::Closed);
        }
        let now_wall = self.clock.wall_ms();
        let outcome = match &response {
            Ok(r) => Outcome::Answer(lead.profile.parse_response(r, now_wall)),
            Err(te) => Outcome::from_transport(te),
        };
        drop(response);
        // An id_token is checked before anything is decided: a refused one is a `Protocol`
        // answer (nothing stored, the lost-answer marker kept), like a malformed response.
        let outcome = match outcome {
            Outcome::Answer(Ok(mut received)) => {
                match self.check_id_token(&lead.profile, &mut received, Some(&lead.base.record), now_wall) {
                    Ok(()) => Outcome::Answer(Ok(received)),
                    Err(e) => Outcome::Answer(Err(e)),
                }
            }
            other => other,
        };
        let now = self.clock.mono_ns();
        let forced = lead.flight.forced;
        let facts = AttemptFacts {
            forced,
            possibly_consumed: lead.possibly_consumed,
            base_usable: lead.base.usable(now),
        };
        let key = &lead.account;
        let settlement = settle(facts, outcome);
        self.metrics.refresh_ended(match &settlement {
            Settlement::Commit(_) => Ok(()),
            Settlement::Verdict(v) => Err(v.error().code()),
            Settlement::Failed { error, .. } => Err(error.code()),
        });
        match settlement {
            Settlement::Commit(received) => {
                let record = record_after_refresh(&lead.base.record, received, &lead.profile, now_wall);
                let Some(generation) = self.write_record(key, Some(lead.base_generation()), &record)? else {
                    // Logged out, signed in again, or a peer rotated meanwhile: our result is
                    // discarded and what is stored wins.
                    crate::logging::debug_record!("refresh: result discarded, the stored session changed meanwhile");
                    let current = self.adopt(key, Some(&lead.base))?;
                    return Self::resolve(&current, forced, now);
                };
                let entry = self.install(&key.id, record, generation);
                if let Some(st) = self.refresh.lock().get_mut(&key.id) {
                    st.record_success();
                }
                let info = self.info(&entry);
                *event = Some(VaultEvent::TokenRefreshed {
                    account: key.id.clone(),
                    generation,
                    access_remaining_ms: info.access_remaining_ms,
                    session_remaining_ms: info.session_remaining_ms,
                });
                crate::logging::debug_record!("refresh: stored generation {generation}");
                Ok(entry.token.clone())
            }
            Settlement::Verdict(verdict) => {
                // A peer may have rotated the credential we sent: re-read before declaring the
                // session dead.
                let current = self.adopt(key, Some(&lead.base))?;
                if current.generation != lead.base_generation() {
                    return Self::resolve(&current, forced, now);
                }
                let mut record = lead.base.record.clone();
                record.verdict = Some(Box::new(verdict.clone()));
                match self.write_record(key, Some(lead.base_generation()), &record)? {
                    Some(generation) => {
                        self.install(&key.id, record, generation);
                    }
                    None => {
                        let current = self.adopt(key, Some(&lead.base))?;
                        return Self::resolve(&current, forced, now);
                    }
                }
                let err = verdict.error();
                if let Some(st) = self.refresh.lock().get_mut(&key.id) {
                    st.record_failure(&err, now, &self.policy);
                }
                *event = Some(VaultEvent::SessionExpired {
                    account: key.id.clone(),
                    reason: err.to_string(),
                });
                log::info!("refresh: the session ended ({})", err.code());
                Err(err)
            }
            Settlement::Failed {
                error,
                keep_marker,
                serve_stale,
            } => {
                if !keep_marker {
                    self.clear_marker(lead);
                }
                if let Some(st) = self.refresh.lock().get_mut(&key.id) {
                    st.record_failure(&error, now, &self.policy);
                }
                log::info!("refresh failed ({}); the session is kept", error.code());
                let current = self.entry(key)?;
                if serve_stale && current.usable(now) && current.record.verdict.is_none() {
                    Ok(current.token.clone())
                } else {
                    Err(error)
                }
            }
        }
    }
}

/// A session's refresh credential goes only to the origin it was stored with: a profile
/// re-registered under the same name with another endpoint gets a typed error, and nothing is
/// sent, until the host moves the session explicitly (`Vault::move_session`).
pub(crate) fn check_origin(record: &crate::session::SessionRecord, profile: &Profile) -> Result<()> {
    match &record.origin {
        Some(origin) if **origin != *profile.origin() => Err(VaultError::invalid(format!(
            "the profile {:?} now points to another endpoint than this session was stored with; \
             move the session to it explicitly (move_session) to send its credential there",
            profile.name()
        ))),
        _ => Ok(()),
    }
}
