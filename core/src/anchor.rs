//! The host anchor: a counter kept outside the vault file, so that an old copy of the whole
//! file (a backup restore, a copied-back file) can be recognised.
//!
//! Inside the file, the manifest (ADR 0010) makes every account's current generation and every
//! logout authentic: copying back one session's older row, or a removed session's row, is
//! `Corrupt` for that account. An old copy of *everything* is consistent with itself, though:
//! only a counter stored elsewhere can show that the file went back. The vault hands the
//! manifest's counter to [`StateAnchor::store`] after every write and compares it with
//! [`StateAnchor::load`] at open: a file whose counter is lower than the anchor's is refused
//! with `Corrupt` (nothing is changed or deleted; the host decides). A vault created anew resets
//! the anchor to its own counter: there is nothing to roll back to, and an anchor that outlived
//! its file (a Keychain item survives an uninstall) must not lock the user out of a new vault.
//!
//! Where to keep it: the iOS Keychain or Android Keystore-backed preferences (which a file
//! restore does not roll back together with the app's files), or any store of the host's
//! choosing. What it cannot see: a rollback between two writes the anchor missed (a failing
//! `store` is logged and retried after the next write), and a rollback of the anchor itself.

use std::fmt;

use crate::error::Result;

/// A monotonic counter the host keeps outside the vault file.
pub trait StateAnchor: Send + Sync + fmt::Debug {
    /// The counter last stored, or `None` if none was ever stored (a new install).
    fn load(&self) -> Result<Option<u64>>;
    /// Keep `counter`. It grows with every write; a vault created anew (no file, or an empty
    /// one) starts again from its own counter. Called after every write, with the store lock
    /// held: keep it quick.
    fn store(&self, counter: u64) -> Result<()>;
}
