//! The error taxonomy shared by every surface.
//!
//! [`ErrorCode`] is the one status-code table: the C ABI's `tv_status`, the uniffi error and
//! the C# exceptions carry exactly these numbers, and they never change once released.
//! [`VaultError`] is the public error: few variants, each actionable, each mapped to one code.
//! Internal causes (SQLite, AEAD, JSON, HTTP) are converted in one place — the `From` impls and
//! constructors at the bottom of this file — and never carry a token, a key or an account id:
//! messages are written here from fixed text plus non-secret facts (status codes, sizes, names).

use std::fmt;
use std::time::Duration;

/// Stable numeric codes. `0` is success on every surface; the numbers are part of the ABI.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Success (only used by FFI surfaces).
    Ok = 0,
    /// The session can no longer be refreshed: the user must sign in again.
    ReauthenticationRequired = 1,
    /// Network failure, timeout, 408, 5xx, captive portal: try again later; the session lives on.
    Transient = 2,
    /// The server asked us to slow down (429); see the retry-after hint.
    Throttled = 3,
    /// The database file could not be opened, locked or written (busy, read-only, disk full).
    StorageUnavailable = 4,
    /// The key (or passphrase) does not open this vault. Nothing was written.
    WrongKey = 5,
    /// A record or the file failed its integrity check. Nothing was altered or deleted.
    Corrupt = 6,
    /// No session is stored for that account.
    NotFound = 7,
    /// The caller passed something invalid (bad profile, empty token, bad UTF-8, NULL...).
    InvalidInput = 8,
    /// The server answered with something the profile cannot interpret.
    Protocol = 9,
    /// A bug: an internal invariant broke or a panic was caught at the boundary.
    Internal = 10,
    /// The file was written by a newer version of tokenvault; it is left untouched.
    SchemaTooNew = 11,
    /// A refresh was sent, and its answer was lost (crash or dropped connection) before it could
    /// be stored; the server may have consumed the refresh credential.
    RefreshOutcomeUnknown = 12,
    /// The vault (or handle) was closed.
    Closed = 13,
}

impl ErrorCode {
    /// Every code, in numeric order (used by tests that check all surfaces agree).
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::Ok,
        ErrorCode::ReauthenticationRequired,
        ErrorCode::Transient,
        ErrorCode::Throttled,
        ErrorCode::StorageUnavailable,
        ErrorCode::WrongKey,
        ErrorCode::Corrupt,
        ErrorCode::NotFound,
        ErrorCode::InvalidInput,
        ErrorCode::Protocol,
        ErrorCode::Internal,
        ErrorCode::SchemaTooNew,
        ErrorCode::RefreshOutcomeUnknown,
        ErrorCode::Closed,
    ];

    /// The numeric value used on every surface.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code for a number, if it is one.
    pub fn from_i32(value: i32) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_i32() == value)
    }

    /// A stable identifier, e.g. for logs and the C `tv_status_name`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Ok => "ok",
            ErrorCode::ReauthenticationRequired => "reauthentication_required",
            ErrorCode::Transient => "transient",
            ErrorCode::Throttled => "throttled",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::WrongKey => "wrong_key",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Protocol => "protocol",
            ErrorCode::Internal => "internal",
            ErrorCode::SchemaTooNew => "schema_too_new",
            ErrorCode::RefreshOutcomeUnknown => "refresh_outcome_unknown",
            ErrorCode::Closed => "closed",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The public error of every vault operation.
///
/// Messages never contain a token, a key, a passphrase or an account id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The refresh credential was refused by the server (after re-reading the store, in case a
    /// peer had rotated it): the user must sign in again.
    #[error("re-authentication required: {reason}")]
    ReauthenticationRequired {
        /// Why, e.g. `invalid_grant` or `HTTP 401`.
        reason: String,
    },
    /// A network problem; the session is intact.
    #[error("transient failure: {reason}")]
    Transient {
        /// What went wrong, e.g. `timeout` or `HTTP 503`.
        reason: String,
    },
    /// The server throttled us.
    #[error("throttled by the server{}", retry_after.map(|d| format!("; retry after {} s", d.as_secs())).unwrap_or_default())]
    Throttled {
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The database could not be used right now.
    #[error("storage unavailable: {reason}")]
    StorageUnavailable {
        /// The SQLite condition, e.g. `database is locked`.
        reason: String,
    },
    /// The key does not open this vault; nothing was written.
    #[error("wrong key: the key or passphrase does not open this vault")]
    WrongKey,
    /// Integrity failure of one record or of the file.
    #[error("corrupt: {what}")]
    Corrupt {
        /// What failed, e.g. `session record failed authentication`.
        what: String,
    },
    /// No such session.
    #[error("no session stored for that account")]
    NotFound,
    /// The caller passed invalid input.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong with it.
        reason: String,
    },
    /// The server's answer could not be interpreted.
    #[error("protocol error: {reason}")]
    Protocol {
        /// What was unexpected.
        reason: String,
    },
    /// An internal error (a bug).
    #[error("internal error: {reason}")]
    Internal {
        /// What broke.
        reason: String,
    },
    /// The file's schema is newer than this code.
    #[error("the vault file has schema version {found}, newer than this library's {supported}; it was not modified")]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this code knows.
        supported: i64,
    },
    /// A refresh whose answer was lost may have consumed the refresh credential.
    #[error("the outcome of an earlier refresh is unknown: {reason}")]
    RefreshOutcomeUnknown {
        /// Details.
        reason: String,
    },
    /// The vault was closed.
    #[error("the vault is closed")]
    Closed,
}

impl VaultError {
    /// The stable numeric code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            VaultError::ReauthenticationRequired { .. } => ErrorCode::ReauthenticationRequired,
            VaultError::Transient { .. } => ErrorCode::Transient,
            VaultError::Throttled { .. } => ErrorCode::Throttled,
            VaultError::StorageUnavailable { .. } => ErrorCode::StorageUnavailable,
            VaultError::WrongKey => ErrorCode::WrongKey,
            VaultError::Corrupt { .. } => ErrorCode::Corrupt,
            VaultError::NotFound => ErrorCode::NotFound,
            VaultError::InvalidInput { .. } => ErrorCode::InvalidInput,
            VaultError::Protocol { .. } => ErrorCode::Protocol,
            VaultError::Internal { .. } => ErrorCode::Internal,
            VaultError::SchemaTooNew { .. } => ErrorCode::SchemaTooNew,
            VaultError::RefreshOutcomeUnknown { .. } => ErrorCode::RefreshOutcomeUnknown,
            VaultError::Closed => ErrorCode::Closed,
        }
    }

    /// True for failures that never end a session (network, throttling, server hiccups).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            VaultError::Transient { .. }
                | VaultError::Throttled { .. }
                | VaultError::Protocol { .. }
                | VaultError::StorageUnavailable { .. }
        )
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        VaultError::InvalidInput { reason: reason.into() }
    }

    pub(crate) fn protocol(reason: impl Into<String>) -> Self {
        VaultError::Protocol { reason: reason.into() }
    }

    pub(crate) fn transient(reason: impl Into<String>) -> Self {
        VaultError::Transient { reason: reason.into() }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        VaultError::Corrupt { what: what.into() }
    }

    pub(crate) fn internal(reason: impl Into<String>) -> Self {
        VaultError::Internal { reason: reason.into() }
    }

    pub(crate) fn reauth(reason: impl Into<String>) -> Self {
        VaultError::ReauthenticationRequired { reason: reason.into() }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = VaultError> = std::result::Result<T, E>;

/// The crate's internal error: a cause kept whole until the one conversion point below, which
/// decides the public variant. Storage code returns it; everything public returns
/// [`VaultError`].
#[derive(Debug)]
pub(crate) enum Error {
    /// SQLite failed (busy, read-only, full, damaged, a missing row...).
    Sqlite(rusqlite::Error),
    /// Already decided: a failed check, invalid input, a crypto or parse failure.
    Vault(VaultError),
    /// A manifest row failed its MAC: tampering, or (seen from another handle) a `rekey` that
    /// replaced the data key. The store tells the two apart before the error goes public.
    ManifestAuth,
}

/// Result of storage code.
pub(crate) type StoreResult<T> = std::result::Result<T, Error>;

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        Error::Sqlite(err)
    }
}

impl From<VaultError> for Error {
    fn from(err: VaultError) -> Self {
        Error::Vault(err)
    }
}

/// The one conversion point from internal causes to the public error. SQLite's messages name
/// tables and pragmas, never bound values (bound values are never formatted into SQL), yet only
/// the condition is kept: the public message is written here from fixed text.
impl From<Error> for VaultError {
    fn from(err: Error) -> Self {
        match err {
            Error::Vault(v) => v,
            Error::ManifestAuth => VaultError::corrupt("the vault's manifest failed authentication"),
            Error::Sqlite(e) => {
                let public = sqlite_to_public(&e);
                crate::logging::debug_record!("storage failure mapped to {}", public.code());
                public
            }
        }
    }
}

fn sqlite_to_public(err: &rusqlite::Error) -> VaultError {
    use rusqlite::ErrorCode as C;
    match err {
        rusqlite::Error::SqliteFailure(e, _) => match e.code {
            C::DatabaseBusy | C::DatabaseLocked => VaultError::StorageUnavailable {
                reason: "database is locked by another connection".into(),
            },
            C::ReadOnly => VaultError::StorageUnavailable {
                reason: "database is read-only".into(),
            },
            C::DiskFull => VaultError::StorageUnavailable {
                reason: "disk full".into(),
            },
            C::CannotOpen | C::PermissionDenied | C::SystemIoFailure | C::NoLargeFileSupport => {
                VaultError::StorageUnavailable {
                    reason: format!("cannot use the database file ({:?})", e.code),
                }
            }
            C::DatabaseCorrupt | C::NotADatabase => VaultError::corrupt("the file is not a valid SQLite database"),
            _ => VaultError::StorageUnavailable {
                reason: format!("SQLite error {:?} (extended code {})", e.code, e.extended_code),
            },
        },
        // Every query that expects a row says so itself; one that finds none means a row
        // the file must hold is missing.
        rusqlite::Error::QueryReturnedNoRows => VaultError::corrupt("a row the vault requires is missing"),
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::InvalidColumnIndex(..)
        | rusqlite::Error::InvalidColumnName(..) => VaultError::corrupt("a column has an unexpected type or value"),
        // Our SQL is fixed and tested: a statement that no longer prepares means the schema
        // stored in the file was damaged.
        rusqlite::Error::SqlInputError { .. } => VaultError::corrupt("the database schema is damaged"),
        _ => VaultError::internal("unexpected SQLite API error"),
    }
}
