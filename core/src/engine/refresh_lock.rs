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
//! lock two different files.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Result, VaultError};

/// A held refresh lock. Dropping it releases it.
#[derive(Debug)]
pub(crate) struct RefreshLock {
    file: File,
}

impl Drop for RefreshLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock too; unlocking first makes it immediate even
        // if a duplicate of the descriptor were alive somewhere.
        let _ = self.file.unlock();
    }
}

/// The directory of a vault's lock files.
pub(crate) fn lock_dir(vault_path: &Path) -> PathBuf {
    let mut name = vault_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push("-locks");
    vault_path.with_file_name(name)
}

/// Create the lock directory (owner-only on Unix).
pub(crate) fn create_lock_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| VaultError::StorageUnavailable {
        reason: format!("cannot create the refresh lock directory ({:?})", e.kind()),
    })
}

fn lock_file_name(account_hash: &[u8]) -> String {
    let mut s = String::with_capacity(36);
    for b in account_hash.iter().take(16) {
        s.push_str(&format!("{b:02x}"));
    }
    s.push_str(".lock");
    s
}

/// Try to take the lock of one account without waiting. `Ok(None)`: someone (another process,
/// or another vault instance or attempt in this process) holds it.
pub(crate) fn try_acquire(dir: &Path, account_hash: &[u8]) -> Result<Option<RefreshLock>> {
    let path = dir.join(lock_file_name(account_hash));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| VaultError::StorageUnavailable {
            reason: format!("cannot open a refresh lock file ({:?})", e.kind()),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(RefreshLock { file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(VaultError::StorageUnavailable {
            reason: format!("cannot take a refresh lock ({:?})", e.kind()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_descriptions_in_one_process_exclude_each_other_and_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let d = lock_dir(&dir.path().join("v.db"));
        create_lock_dir(&d).unwrap();
        let a = try_acquire(&d, &[1; 32]).unwrap();
        assert!(a.is_some());
        assert!(
            try_acquire(&d, &[1; 32]).unwrap().is_none(),
            "a second holder got the lock"
        );
        assert!(
            try_acquire(&d, &[2; 32]).unwrap().is_some(),
            "another account is independent"
        );
        drop(a);
        assert!(try_acquire(&d, &[1; 32]).unwrap().is_some(), "dropping did not release");
    }
}
