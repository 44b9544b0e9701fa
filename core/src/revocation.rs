//! Logout that ends the session at the server: the refresh credential of a removed session is
//! revoked at the profile's RFC 7009 endpoint.
//!
//! The local removal comes first and is durable whatever the network does: the revocation is
//! queued, sealed, in the same transaction that removes the session (`Store::remove_session`).
//! A background pass then sends what is queued, through the vault's transport, with no vault
//! lock held; what cannot be sent now stays queued and is sent by a later pass: after the next
//! successful refresh, when a profile or a transport is set (so after the next open, once the
//! host registered its profiles), or when the host asks (`Vault::send_revocations`). The queue
//! is bounded (`MAX_PENDING_REVOCATIONS`; beyond it the oldest entry is dropped and counted) and
//! visible (`Vault::pending_revocations`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::crypto::{random_bytes, REVOCATION_DOMAIN};
use crate::engine::Engine;
use crate::error::{ErrorCode, Result, VaultError};
use crate::profile::RevocationOutcome;
use crate::secret::{to_json_secret, SecretString};
use crate::session::SessionRecord;
use crate::store::RevocationRow;

/// What a queued revocation holds (sealed under the data key).
#[derive(Serialize, Deserialize)]
struct Payload {
    account: String,
    profile: String,
    /// The origin the credential was bound to: it is only ever sent there.
    origin: String,
    token: SecretString,
}

/// A revocation waiting to be sent.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingRevocation {
    /// The account whose session was removed.
    pub account: String,
    /// The profile that knows the revocation endpoint.
    pub profile: String,
    /// When it was queued (device time, ms since the epoch).
    pub queued_at_ms: i64,
    /// Attempts that failed so far (network, 5xx, 429).
    pub attempts: u32,
}

impl std::fmt::Debug for PendingRevocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRevocation")
            .field("account", &"<redacted>")
            .field("profile", &self.profile)
            .field("queued_at_ms", &self.queued_at_ms)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// The revocation queue as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevocationQueue {
    /// Waiting to be sent, oldest first.
    pub pending: Vec<PendingRevocation>,
    /// Revocations ever dropped because the queue was full (their sessions were removed
    /// locally all the same).
    pub dropped: u64,
}

/// What one pass over the queue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RevocationReport {
    /// Confirmed by the server (RFC 7009: also for a token it no longer knew).
    pub revoked: usize,
    /// Refused by the server (a 4xx other than 408/429): dropped, sending again cannot help.
    pub refused: usize,
    /// Not sent or not answered (network, 5xx, 429): still queued.
    pub retry_later: usize,
    /// Their profile is not registered (or now points to another origin): still queued.
    pub waiting_for_profile: usize,
}

/// The background pass's state: one pass at a time, and another one after it when asked
/// meanwhile. `thread` is the last pass's thread, joined by [`Worker::stop`] when the vault
/// closes.
#[derive(Debug, Default)]
pub(crate) struct Worker {
    running: bool,
    again: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Called by `close` (after the vault is marked closed): wait until the background pass
    /// has ended, so that nothing of the vault, the host's transport included, is used or held
    /// by it once `close` returns. A pass stops before its next request once the vault is
    /// closed; one already handed to the transport is waited for (at most the profile's
    /// timeout). From the pass's own thread (a host transport closing the vault) the thread is
    /// left to end on its own.
    pub(crate) fn stop(worker: &Mutex<Worker>) {
        let taken = worker.lock().thread.take();
        if let Some(handle) = taken {
            if std::thread::current().id() != handle.thread().id() {
                let _ = handle.join();
            }
        }
    }
}

impl Engine {
    /// The queue row revoking `record`'s refresh credential, if it has one and its profile
    /// (when registered) has a revocation endpoint; sealed with `cipher` (the caller holds the
    /// store, so the row is built from what the file holds at that moment).
    pub(crate) fn revocation_row(
        &self,
        cipher: &crate::crypto::RecordCipher,
        record: &SessionRecord,
        now_ms: i64,
    ) -> Result<Option<RevocationRow>> {
        let Some(token) = &record.refresh_credential else {
            return Ok(None);
        };
        let registered = self.profiles.read().get(&*record.profile).cloned();
        if registered.as_ref().is_some_and(|p| p.revocation_url().is_none()) {
            return Ok(None);
        }
        let origin = match (&record.origin, &registered) {
            (Some(o), _) => o.clone(),
            (None, Some(p)) => p.origin().into(),
            (None, None) => return Ok(None),
        };
        let payload = Payload {
            account: record.account.to_string(),
            profile: record.profile.to_string(),
            origin: origin.to_string(),
            token: token.clone(),
        };
        let plain = to_json_secret(&payload).map_err(|_| VaultError::internal("a revocation does not serialize"))?;
        let mut id = vec![0u8; 16];
        random_bytes(&mut id)?;
        let (nonce, ciphertext) = cipher.seal_blob(REVOCATION_DOMAIN, &id, plain.as_slice())?;
        Ok(Some(RevocationRow {
            id,
            queued_at_ms: now_ms,
            attempts: 0,
            nonce,
            ciphertext,
        }))
    }

    fn open_rows(&self) -> Result<(Vec<(RevocationRow, Payload)>, u64)> {
        self.with_store(|s| {
            let (rows, dropped) = s.store.revocations()?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let plain = s
                    .keys
                    .record
                    .open_blob(REVOCATION_DOMAIN, &row.id, &row.nonce, &row.ciphertext)?;
                let payload: Payload = serde_json::from_slice(&plain)
                    .map_err(|_| VaultError::corrupt("a queued revocation does not parse"))?;
                out.push((row, payload));
            }
            Ok((out, dropped))
        })
    }

    /// The queue, without secrets.
    pub(crate) fn pending_revocations(&self) -> Result<RevocationQueue> {
        self.check_open()?;
        let (rows, dropped) = self.open_rows()?;
        Ok(RevocationQueue {
            pending: rows
                .into_iter()
                .map(|(row, p)| PendingRevocation {
                    account: p.account,
                    profile: p.profile,
                    queued_at_ms: row.queued_at_ms,
                    attempts: row.attempts,
                })
                .collect(),
            dropped,
        })
    }

    /// One pass over the queue: send each revocation whose profile is registered, through the
    /// transport, with no vault lock held while sending.
    pub(crate) fn send_revocations(&self) -> Result<RevocationReport> {
        self.check_open()?;
        let (rows, _) = self.open_rows()?;
        let mut report = RevocationReport::default();
        if rows.is_empty() {
            self.revocations_waiting.store(false, Ordering::Relaxed);
            return Ok(report);
        }
        let transport = self.transport()?;
        for (row, payload) in rows {
            self.check_open()?;
            let profile = match self.profiles.read().get(&payload.profile).cloned() {
                Some(p) if p.origin() == payload.origin => p,
                Some(_) => {
                    log::warn!("a queued revocation waits: its profile now points to another endpoint");
                    report.waiting_for_profile += 1;
                    continue;
                }
                None => {
                    report.waiting_for_profile += 1;
                    continue;
                }
            };
            let Some(request) = profile.build_revocation(payload.token.expose())? else {
                // Registered again without a revocation endpoint: nothing can ever be sent.
                log::info!("a queued revocation was dropped: its profile has no revocation endpoint");
                self.with_store(|s| s.store.revocation_outcome(&row.id, true))?;
                report.refused += 1;
                continue;
            };
            let outcome = transport.send(&request);
            drop(request);
            let done = match outcome {
                Ok(response) => match crate::profile::Profile::revocation_outcome(response.status) {
                    RevocationOutcome::Done => {
                        report.revoked += 1;
                        true
                    }
                    RevocationOutcome::Refused(status) => {
                        log::warn!("the server refused a revocation (HTTP {status}); it is dropped");
                        report.refused += 1;
                        true
                    }
                    RevocationOutcome::Retry(status) => {
                        log::info!("a revocation got HTTP {status}; it stays queued");
                        report.retry_later += 1;
                        false
                    }
                },
                Err(e) => {
                    log::info!("a revocation could not be sent ({:?}); it stays queued", e.kind);
                    report.retry_later += 1;
                    false
                }
            };
            self.with_store(|s| s.store.revocation_outcome(&row.id, done))?;
        }
        let left = report.retry_later + report.waiting_for_profile;
        self.revocations_waiting.store(left > 0, Ordering::Relaxed);
        Ok(report)
    }
}

/// Start a background pass if revocations wait (one pass at a time; a request during a pass
/// runs another one after it).
pub(crate) fn kick(engine: &Arc<Engine>) {
    if engine.is_closed() || !engine.revocations_waiting.load(Ordering::Relaxed) {
        return;
    }
    // The thread is started and recorded under the lock, after a check of `closed` under it:
    // `close` marks the vault closed before it takes the handle, so no pass can start unseen.
    let mut w = engine.revoker.lock();
    if engine.is_closed() {
        return;
    }
    if w.running {
        w.again = true;
        return;
    }
    w.running = true;
    w.again = false;
    let e = Arc::clone(engine);
    let spawned = std::thread::Builder::new()
        .name("tokenvault-revoke".into())
        .spawn(move || loop {
            match e.send_revocations() {
                Ok(r) if r.revoked + r.refused > 0 => crate::logging::debug_record!("revocations: {r:?}"),
                Ok(_) => {}
                Err(err) if err.code() == ErrorCode::Closed => {}
                Err(err) => log::info!("revocations not sent now ({})", err.code()),
            }
            let mut w = e.revoker.lock();
            if w.again && !e.is_closed() {
                w.again = false;
                continue;
            }
            w.running = false;
            break;
        });
    match spawned {
        // The previous pass's thread has ended (`running` was false): dropping its handle
        // detaches nothing that still runs.
        Ok(handle) => w.thread = Some(handle),
        Err(_) => w.running = false,
    }
}
