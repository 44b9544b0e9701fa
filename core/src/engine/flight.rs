//! Refresh attempts in this process: single-flight, back-off, the last failure.
//!
//! * [`Flight`] is one refresh attempt; every concurrent caller for the same account waits on
//!   it (single-flight). Its result is handed to its waiters and then forgotten: a failure is
//!   never cached for later callers.
//! * [`AccountRefresh`] is the per-account bookkeeping: the flight in progress, the back-off
//!   after failures, a server's `Retry-After`, and the last failure as a typed error (its code,
//!   message and `retry_after` are what every later reader gets).
//! * [`Lead`] is everything the leader of an attempt needs to finish it, including the
//!   cross-process refresh lock it holds (see `refresh_lock`).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::refresh_lock::RefreshLock;
use super::{AccountKey, CachedSession, RefreshPolicy};
use crate::crypto::random_u64;
use crate::error::{Result, VaultError};
use crate::profile::Profile;
use crate::secret::AccessToken;
use crate::session::RefreshFailure;

/// One refresh attempt in this process.
#[derive(Debug)]
pub(crate) struct Flight {
    pub id: u64,
    pub forced: bool,
    /// The generation this attempt refreshes.
    pub base_generation: u64,
    /// Give up waiting after this (monotonic ns); a later caller may then start a new attempt
    /// (which still cannot send before the holder of the refresh lock lets go of it).
    pub deadline: u64,
    result: Mutex<Slot>,
    cv: Condvar,
}

#[derive(Debug)]
enum Slot {
    Pending,
    Done(Result<AccessToken>),
    /// The attempt ended without a result of its own (another process holds the refresh lock):
    /// waiters try again.
    Abandoned,
}

impl Flight {
    pub(crate) fn new(forced: bool, base_generation: u64, deadline: u64) -> Arc<Flight> {
        Arc::new(Flight {
            id: random_u64() >> 1,
            forced,
            base_generation,
            deadline,
            result: Mutex::new(Slot::Pending),
            cv: Condvar::new(),
        })
    }

    /// Publish the result to every waiter (first call wins).
    pub(crate) fn complete(&self, result: Result<AccessToken>) {
        let mut slot = self.result.lock();
        if matches!(*slot, Slot::Pending) {
            *slot = Slot::Done(result);
        }
        self.cv.notify_all();
    }

    /// End the attempt without a result: its waiters start again.
    pub(crate) fn abandon(&self) {
        let mut slot = self.result.lock();
        if matches!(*slot, Slot::Pending) {
            *slot = Slot::Abandoned;
        }
        self.cv.notify_all();
    }

    pub(crate) fn is_done(&self) -> bool {
        !matches!(*self.result.lock(), Slot::Pending)
    }

    /// Wait for the result, at most `timeout` of real time. `None`: no result (yet, or ever):
    /// the caller starts again.
    pub(crate) fn wait(&self, timeout: Duration) -> Option<Result<AccessToken>> {
        let mut slot = self.result.lock();
        let deadline = std::time::Instant::now() + timeout;
        while matches!(*slot, Slot::Pending) {
            if self.cv.wait_until(&mut slot, deadline).timed_out() {
                break;
            }
        }
        match &*slot {
            Slot::Done(r) => Some(r.clone()),
            Slot::Pending | Slot::Abandoned => None,
        }
    }
}

/// Per-account refresh bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct AccountRefresh {
    pub flight: Option<Arc<Flight>>,
    pub failures: u32,
    /// No proactive refresh before this (monotonic ns).
    pub next_attempt: u64,
    /// The server asked us to wait until this (monotonic ns).
    pub throttled_until: u64,
    /// The last failure since the last success, typed, and when it happened (monotonic ns).
    pub last_failure: Option<(VaultError, u64)>,
}

impl AccountRefresh {
    pub(crate) fn record_failure(&mut self, err: &VaultError, now: u64, policy: &RefreshPolicy) {
        self.failures = self.failures.saturating_add(1);
        let backoff = policy.backoff(self.failures);
        self.next_attempt = now.saturating_add(u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX));
        if let VaultError::Throttled { retry_after } = err {
            let wait = retry_after.unwrap_or(backoff).max(backoff.min(Duration::from_secs(1)));
            self.throttled_until = now.saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX));
            self.next_attempt = self.next_attempt.max(self.throttled_until);
        }
        self.last_failure = Some((err.clone(), now));
    }

    pub(crate) fn record_success(&mut self) {
        self.failures = 0;
        self.next_attempt = 0;
        self.throttled_until = 0;
        self.last_failure = None;
    }

    /// The last failure exactly as it was returned (same code, same message). A throttle's
    /// `retry_after` is what is left of it now.
    pub(crate) fn last_error(&self, now: u64) -> Option<VaultError> {
        let (err, _) = self.last_failure.as_ref()?;
        Some(match err {
            VaultError::Throttled { .. } => VaultError::Throttled {
                retry_after: (self.throttled_until > now).then(|| Duration::from_nanos(self.throttled_until - now)),
            },
            other => other.clone(),
        })
    }

    pub(crate) fn failure_view(&self, now: u64) -> Option<RefreshFailure> {
        self.last_failure.as_ref().map(|(err, at)| RefreshFailure {
            code: err.code(),
            message: err.to_string(),
            ago_ms: now.saturating_sub(*at) / 1_000_000,
        })
    }
}

/// A refresh this process is leading: everything needed to finish it.
#[derive(Debug)]
pub(crate) struct Lead {
    pub account: AccountKey,
    pub flight: Arc<Flight>,
    pub profile: Arc<Profile>,
    pub base: Arc<CachedSession>,
    /// An earlier request with this same credential got no answer (a crash or a lost
    /// response): the server may already have consumed it.
    pub possibly_consumed: bool,
    /// The cross-process refresh lock, held until the attempt is settled (dropping it releases
    /// it; so does the kernel if this process dies).
    pub lock: RefreshLock,
    /// When the request was built (the transport latency is measured from here).
    pub built: std::time::Instant,
}

impl Lead {
    pub(crate) fn base_generation(&self) -> u64 {
        self.base.generation
    }
}
