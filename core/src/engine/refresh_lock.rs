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
//! The lock files live in a directory next to the vault (`<vault file>-locks/`), one file per
//! account named by a prefix of the account's keyed hash (no account id in clear). They are
//! never deleted: deleting a lock file while another process waits on it would let two holders
//! lock two different files. A vault keeps up to 64 of them open, so a refresh costs two
//! syscalls (lock, unlock) and no `open`.
//!
//! A lock file also holds the account's lost-answer marker ([`Marker`], ADR 0004), written by
//! the holder of the lock before its request leaves: one `pwrite` into a file the refresh has
//! open anyway, where a transaction of the vault file cost a log frame and a dozen system calls
//! per refresh. It survives a crash of the process (the kernel has it), as the marker must; an
//! empty or unreadable file means "no marker".

use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
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

/// The first bytes of a marker record ("tokenvault marker, version 1").
const MARKER_MAGIC: &[u8; 4] = b"TVM1";

/// Length of a marker record: magic, account hash (32 bytes), generation, credential hash (16).
const MARKER_LEN: usize = 4 + 32 + 8 + 16;

/// A lost-answer marker: a request carrying the credential with this keyed hash, refreshing
/// this generation of the account, may have reached the server without its answer being
/// stored. It matters only while the account's row is still at `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    pub account_hash: [u8; 32],
    pub generation: u64,
    pub credential_hash: [u8; 16],
}

impl Marker {
    /// A marker from the hashes as the vault computes them; `None` if either has another
    /// length than a keyed account hash (32 bytes) or credential hash (16 bytes).
    pub(crate) fn new(account_hash: &[u8], generation: u64, credential_hash: &[u8]) -> Option<Marker> {
        Some(Marker {
            account_hash: account_hash.try_into().ok()?,
            generation,
            credential_hash: credential_hash.try_into().ok()?,
        })
    }

    fn encode(&self) -> [u8; MARKER_LEN] {
        let mut out = [0u8; MARKER_LEN];
        out[..4].copy_from_slice(MARKER_MAGIC);
        out[4..36].copy_from_slice(&self.account_hash);
        out[36..44].copy_from_slice(&self.generation.to_le_bytes());
        out[44..].copy_from_slice(&self.credential_hash);
        out
    }

    /// A record as read; anything else than a whole record (an empty file, a torn or foreign
    /// one) is no marker.
    fn decode(bytes: &[u8]) -> Option<Marker> {
        if bytes.len() != MARKER_LEN || &bytes[..4] != MARKER_MAGIC {
            return None;
        }
        Some(Marker {
            account_hash: bytes[4..36].try_into().ok()?,
            generation: u64::from_le_bytes(bytes[36..44].try_into().ok()?),
            credential_hash: bytes[44..].try_into().ok()?,
        })
    }
}

fn marker_error(what: &str, e: &std::io::Error) -> VaultError {
    VaultError::StorageUnavailable {
        reason: format!("cannot {what} the refresh marker ({:?})", e.kind()),
    }
}

/// Read up to one marker record from the start of `file` (one byte more than a record, to tell
/// a longer file). A read of a regular file that returns fewer bytes than asked has reached its
/// end: one system call for a marker, not a second one to find the end.
fn read_record(file: &File) -> std::io::Result<Option<Marker>> {
    let mut buf = [0u8; MARKER_LEN + 1];
    let mut filled = 0;
    loop {
        let want = buf.len() - filled;
        match read_at(file, &mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled == buf.len() || n < want {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Marker::decode(&buf[..filled]))
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, 0)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8]) -> std::io::Result<()> {
    let mut offset = 0u64;
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(file, buf, offset) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl RefreshLock {
    /// The marker an earlier attempt left in this account's lock file, if any.
    pub(crate) fn marker(&self) -> Result<Option<Marker>> {
        read_record(&self.slot.file).map_err(|e| marker_error("read", &e))
    }

    /// Record this attempt's marker (before its request leaves).
    pub(crate) fn set_marker(&self, marker: &Marker) -> Result<()> {
        write_all_at(&self.slot.file, &marker.encode()).map_err(|e| marker_error("write", &e))
    }

    /// Forget the marker: the attempt's request was certainly not consumed.
    pub(crate) fn clear_marker(&self) -> Result<()> {
        self.slot.file.set_len(0).map_err(|e| marker_error("clear", &e))
    }
}

/// The marker of `account_hash` in its lock file, read without taking the lock (inspection
/// only: the caller checked that nobody holds it). No file, or a record of another account
/// (whose hash shares the file name's prefix), is no marker; nothing is created.
pub(crate) fn read_marker(vault_path: &Path, account_hash: &[u8]) -> Result<Option<Marker>> {
    let path = lock_dir(vault_path).join(lock_file_name(account_hash));
    let marker = match File::open(&path) {
        Ok(file) => read_record(&file).map_err(|e| marker_error("read", &e))?,
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(marker_error("read", &e)),
    };
    Ok(marker.filter(|m| m.account_hash[..] == *account_hash))
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

    /// Open (creating it, and the directory, if missing) one account's lock file.
    fn open_file(&self, account_hash: &[u8]) -> Result<File> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let path = self.dir.join(lock_file_name(account_hash));
        match options.open(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.create_dir()?;
                options.open(&path)
            }
            other => other,
        }
        .map_err(|e| VaultError::StorageUnavailable {
            reason: format!("cannot open a refresh lock file ({:?})", e.kind()),
        })
    }

    /// Write a marker carried over from a schema-3 file (where markers lived in the vault
    /// file) into its account's lock file. Called by the migration, before the old table is
    /// dropped in the same step's transaction (a crash in between writes it again).
    pub(crate) fn import_marker(&self, marker: &Marker) -> Result<()> {
        let file = self.open_file(&marker.account_hash)?;
        write_all_at(&file, &marker.encode()).map_err(|e| marker_error("write", &e))
    }

    /// After a logout: forget the removed session's marker (stale already: the removal raised
    /// the generation floor), so that no keyed hash of its credential stays next to the vault.
    /// Only when the lock is free at once (a refresh holding it keeps its marker; its late
    /// result is discarded anyway) and its file exists (nothing is created). Failures are
    /// logged: the marker is harmless.
    pub(crate) fn forget_marker(&self, account_hash: &[u8]) {
        if !self.dir.join(lock_file_name(account_hash)).exists() {
            return;
        }
        let cleared = self
            .try_acquire(account_hash)
            .and_then(|lock| lock.map_or(Ok(()), |l| l.clear_marker()));
        if let Err(e) = cleared {
            log::warn!("could not clear the marker of a removed session ({})", e.code());
        }
    }

    fn slot(&self, account_hash: &[u8]) -> Result<Arc<LockSlot>> {
        let mut slots = self.slots.lock();
        if let Some(s) = slots.get(account_hash) {
            return Ok(Arc::clone(s));
        }
        if slots.len() >= MAX_OPEN_LOCK_FILES {
            slots.retain(|_, s| s.held.load(Ordering::Acquire) || Arc::strong_count(s) > 1);
        }
        let file = self.open_file(account_hash)?;
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

    #[test]
    fn a_marker_is_read_only_from_a_file_of_exactly_one_record() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let locks = RefreshLocks::new(&path);
        let hash = [3u8; 32];
        let lock = locks.try_acquire(&hash).unwrap().unwrap();
        assert_eq!(lock.marker().unwrap(), None, "a new lock file holds no marker");
        let marker = Marker::new(&hash, 7, &[9u8; 16]).unwrap();
        lock.set_marker(&marker).unwrap();
        assert_eq!(lock.marker().unwrap(), Some(marker));
        let file = lock_dir(&path).join(lock_file_name(&hash));
        // One byte more than a record: not a marker.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b"x")
            .unwrap();
        assert_eq!(lock.marker().unwrap(), None, "a longer file was read as a marker");
        // One byte less: not a marker either.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(MARKER_LEN as u64 - 1)
            .unwrap();
        assert_eq!(lock.marker().unwrap(), None, "a shorter file was read as a marker");
        lock.set_marker(&marker).unwrap();
        assert_eq!(lock.marker().unwrap(), Some(marker));
    }
}
