//! The cross-process refresh lock: an OS advisory lock on a per-account sidecar file.
//!
//! Whoever sends a refresh request for an account holds this lock from before the request is
//! built until its outcome is stored. Liveness comes from the kernel, not from clocks or pids:
//! the lock is `flock` on Unix and `LockFileEx` on Windows (through `std::fs::File::try_lock`),
//! held per *open file description*, so
//!
//! * two processes exclude each other, and so do two vault instances in one process (each opens
//!   its own description), which POSIX `fcntl` locks would not do;
//! * a holder that dies, is killed or drops its vault releases it at once: there is nothing to
//!   expire, and no wall clock to be fooled by a device clock moved by hours.
//!
//! The lock files live in a directory next to the vault (`<vault file>-locks/`), one empty file
//! per account named by a prefix of the account's keyed hash (no account id in clear). They are
//! never deleted: deleting a lock file while another process waits on it would let two holders
//! lock two different files. A vault keeps up to 64 of them open, so a refresh costs two
//! syscalls (lock, unlock) and no `open`.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Result, VaultError};

/// Open lock files kept per vault (an open descriptor each); past this, files not held are
/// closed.
const MAX_OPEN_LOCK_FILES: usize = 64;

/// One account's lock file, kept open between refreshes (no `open` on the refresh path), with
/// a flag for this vault instance: the OS lock excludes other descriptions (processes, other
/// instances), the flag excludes a second attempt of this instance on the same description
/// (an abandoned attempt still waiting for its answer).
#[derive(Debug)]
struct LockSlot {
    file: File,
    held: AtomicBool,
}

/// A held refresh lock. Dropping it releases it.
#[derive(Debug)]
pub(crate) struct RefreshLock {
    slot: Arc<LockSlot>,
}

impl Drop for RefreshLock {
    fn drop(&mut self) {
        let _ = self.slot.file.unlock();
        self.slot.held.store(false, Ordering::Release);
    }
}

/// The lock files of one vault instance.
#[derive(Debug)]
pub(crate) struct RefreshLocks {
    dir: PathBuf,
    slots: Mutex<crate::engine::FastMap<Vec<u8>, Arc<LockSlot>>>,
}

/// The directory of a vault's lock files.
pub(crate) fn lock_dir(vault_path: &Path) -> PathBuf {
    let mut name = vault_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push("-locks");
    vault_path.with_file_name(name)
}

/// The lock file of one account in [`lock_dir`] (a prefix of its keyed hash).
pub(crate) fn lock_file_name(account_hash: &[u8]) -> String {
    let mut s = String::with_capacity(38);
    for b in account_hash.iter().take(16) {
        s.push_str(&format!("{b:02x}"));
    }
    s.push_str(".lock");
    s
}

impl RefreshLocks {
    /// The lock files next to `vault_path`. Nothing is created until the first refresh asks
    /// for a lock (opening a vault, or only reading from it, touches no directory).
    pub(crate) fn new(vault_path: &Path) -> RefreshLocks {
        RefreshLocks {
            dir: lock_dir(vault_path),
            slots: Mutex::new(Default::default()),
        }
    }

    /// Create the lock directory (owner-only on Unix) if it is missing.
    fn create_dir(&self) -> Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&self.dir).map_err(|e| VaultError::StorageUnavailable {
            reason: format!("cannot create the refresh lock directory ({:?})", e.kind()),
        })
    }

    fn slot(&self, account_hash: &[u8]) -> Result<Arc<LockSlot>> {
        let mut slots = self.slots.lock();
        if let Some(s) = slots.get(account_hash) {
            return Ok(Arc::clone(s));
        }
        if slots.len() >= MAX_OPEN_LOCK_FILES {
            slots.retain(|_, s| s.held.load(Ordering::Acquire) || Arc::strong_count(s) > 1);
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let path = self.dir.join(lock_file_name(account_hash));
        let file = match options.open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.create_dir()?;
                options.open(&path)
            }
            other => other,
        }
        .map_err(|e| VaultError::StorageUnavailable {
            reason: format!("cannot open a refresh lock file ({:?})", e.kind()),
        })?;
        let slot = Arc::new(LockSlot {
            file,
            held: AtomicBool::new(false),
        });
        slots.insert(account_hash.to_vec(), Arc::clone(&slot));
        Ok(slot)
    }

    /// Try to take the lock of one account without waiting. `Ok(None)`: someone (another
    /// process, another vault instance, or another attempt of this one) holds it.
    pub(crate) fn try_acquire(&self, account_hash: &[u8]) -> Result<Option<RefreshLock>> {
        let slot = self.slot(account_hash)?;
        if slot.held.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        match slot.file.try_lock() {
            Ok(()) => Ok(Some(RefreshLock { slot })),
            Err(e) => {
                slot.held.store(false, Ordering::Release);
                match e {
                    TryLockError::WouldBlock => Ok(None),
                    TryLockError::Error(e) => Err(VaultError::StorageUnavailable {
                        reason: format!("cannot take a refresh lock ({:?})", e.kind()),
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_and_attempts_exclude_each_other_and_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let (one, two) = (RefreshLocks::new(&path), RefreshLocks::new(&path));
        assert!(
            !lock_dir(&path).exists(),
            "the directory was created before a lock was asked for"
        );
        let a = one.try_acquire(&[1; 32]).unwrap();
        assert!(a.is_some());
        assert!(
            one.try_acquire(&[1; 32]).unwrap().is_none(),
            "a second attempt got the lock"
        );
        assert!(
            two.try_acquire(&[1; 32]).unwrap().is_none(),
            "another instance got the lock"
        );
        assert!(
            two.try_acquire(&[2; 32]).unwrap().is_some(),
            "another account is independent"
        );
        drop(a);
        assert!(two.try_acquire(&[1; 32]).unwrap().is_some(), "dropping did not release");
        // Many accounts: descriptors are recycled, locks still work.
        let held: Vec<_> = (0..100u8)
            .map(|i| one.try_acquire(&[i + 10; 32]).unwrap().unwrap())
            .collect();
        drop(held);
        assert!(one.try_acquire(&[200; 32]).unwrap().is_some());
        assert!(one.slots.lock().len() <= MAX_OPEN_LOCK_FILES + 1);
    }
}
