//! Events for the host: token refreshed, session expired, session removed.
//!
//! Events are queued and delivered, in order, on one dedicated thread per vault
//! (`tokenvault-events`), never on the thread that caused them and never while a vault lock is
//! held. An observer may therefore call back into the vault (read a token, remove a session)
//! without any deadlock; a panicking observer is caught and logged, and delivery goes on.

use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

/// Something the host may want to react to.
#[derive(Clone, PartialEq, Eq)]
pub enum VaultEvent {
    /// A refresh stored a new pair.
    TokenRefreshed {
        /// The account.
        account: String,
        /// The new generation.
        generation: u64,
        /// Time left on the new access token (ms).
        access_remaining_ms: i64,
        /// Forecast: time left before the user must sign in again (ms), if known.
        session_remaining_ms: Option<i64>,
    },
    /// The server refused the refresh credential: the user must sign in again.
    SessionExpired {
        /// The account.
        account: String,
        /// Why (no secrets).
        reason: String,
    },
    /// The session was removed (logout).
    SessionRemoved {
        /// The account.
        account: String,
    },
}

impl VaultEvent {
    /// The account the event is about.
    pub fn account(&self) -> &str {
        match self {
            VaultEvent::TokenRefreshed { account, .. }
            | VaultEvent::SessionExpired { account, .. }
            | VaultEvent::SessionRemoved { account } => account,
        }
    }
}

impl std::fmt::Debug for VaultEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultEvent::TokenRefreshed {
                generation,
                access_remaining_ms,
                session_remaining_ms,
                ..
            } => write!(f, "TokenRefreshed {{ account: <redacted>, generation: {generation}, access_remaining_ms: {access_remaining_ms}, session_remaining_ms: {session_remaining_ms:?} }}"),
            VaultEvent::SessionExpired { reason, .. } => write!(f, "SessionExpired {{ account: <redacted>, reason: {reason:?} }}"),
            VaultEvent::SessionRemoved { .. } => f.write_str("SessionRemoved { account: <redacted> }"),
        }
    }
}

/// Receives vault events on the vault's event thread.
pub trait VaultObserver: Send + Sync {
    /// Called once per event, in order.
    fn on_event(&self, event: &VaultEvent);
}

/// The running delivery thread: its queue, its handle and its id.
type DeliveryThread = (Sender<VaultEvent>, JoinHandle<()>);

/// Queues events and runs the delivery thread.
pub(crate) struct EventDispatcher {
    state: Mutex<Option<DeliveryThread>>,
    observer: Arc<Mutex<Option<Arc<dyn VaultObserver>>>>,
}

impl std::fmt::Debug for EventDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventDispatcher")
    }
}

impl EventDispatcher {
    pub(crate) fn new() -> Self {
        EventDispatcher {
            state: Mutex::new(None),
            observer: Arc::new(Mutex::new(None)),
        }
    }

    /// Install (or clear) the observer; starts the delivery thread on first use.
    pub(crate) fn set_observer(&self, observer: Option<Arc<dyn VaultObserver>>) {
        let want_thread = observer.is_some();
        *self.observer.lock() = observer;
        if !want_thread {
            return;
        }
        let mut st = self.state.lock();
        if st.is_none() {
            let (tx, rx) = channel::<VaultEvent>();
            let obs = Arc::clone(&self.observer);
            let spawned = std::thread::Builder::new()
                .name("tokenvault-events".into())
                .spawn(move || {
                    while let Ok(ev) = rx.recv() {
                        let current = obs.lock().clone();
                        if let Some(o) = current {
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| o.on_event(&ev)));
                            if r.is_err() {
                                log::error!("a vault observer panicked; the event was dropped");
                            }
                        }
                    }
                });
            match spawned {
                Ok(h) => *st = Some((tx, h)),
                Err(_) => log::error!("could not start the event thread; events will not be delivered"),
            }
        }
    }

    /// Queue an event (dropped silently when no observer was ever set).
    pub(crate) fn emit(&self, event: VaultEvent) {
        if let Some((tx, _)) = self.state.lock().as_ref() {
            let _ = tx.send(event);
        }
    }

    /// Stop the thread after it delivered what is queued. From the event thread itself
    /// (an observer closing the vault), the thread is detached instead of joined.
    pub(crate) fn shutdown(&self) {
        let taken = self.state.lock().take();
        if let Some((tx, handle)) = taken {
            drop(tx);
            if std::thread::current().id() != handle.thread().id() {
                let _ = handle.join();
            }
        }
    }
}
