//! The store's typed error: every variant names the database file and says what to do.
//!
//! Callers branch on few of these (the daemon refuses to start on any of them, the
//! outbox worker logs and retries), so the variants are chosen for the operator reading
//! the message: which file, what the store was doing, and the next step.

use std::path::PathBuf;

use crate::checkout::ActionId;

/// Something the store could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store is behind the station's last commit: its WAL was lost, or it was
    /// restored from an old copy. Loans and audit since then are missing.
    #[error(
        "the store {path} is behind this station's last commit (it has {found} transitions, the station had written {expected}): \
         its WAL file (badgedock.sqlite3-wal) was lost or it was restored from an old copy, so loans and audit lines are missing. \
         Put the WAL file back, or restore a backup taken with `badgedock backup`; to start from this store anyway (phones out \
         since then are forgotten until they are docked), run `badgedock admin accept-store`"
    )]
    Rewound {
        /// The database file.
        path: PathBuf,
        /// Transitions in the file.
        found: i64,
        /// Transitions the station had written.
        expected: i64,
    },
    /// The store is not the one this station last used (reset, emptied or replaced).
    #[error(
        "the store {path} is not the one this station last used (that one had {commits} transitions): \
         it was reset, emptied or replaced, and the station would forget every phone out on loan. \
         Restore the right file or a backup; to start from this store anyway, run `badgedock admin accept-store`"
    )]
    Replaced {
        /// The database file.
        path: PathBuf,
        /// Transitions the station had written to its store.
        commits: i64,
    },
    /// The continuity mark beside the store cannot be read or written.
    #[error("cannot read or write the store's continuity mark {path}: {source}; make the state directory writable by the badgedock user")]
    Mark {
        /// The mark file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The directory meant to hold the database could not be created.
    #[error(
        "cannot create the directory {path} for the badgedock store: {source}; \
         create it and make it writable by the badgedock user"
    )]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The database file is damaged (SQLite says `SQLITE_CORRUPT` or `SQLITE_NOTADB`).
    /// Not a permission or disk-space problem: restarting does not help.
    #[error(
        "the badgedock store {path} is damaged (found while trying to {operation}: {source}). \
         This is not a permission or disk-space problem, and restarting will not fix it: stop badgedock, \
         move the file aside with its -wal and -shm files (mv {path} {path}.damaged), then restore the \
         last copy made with `badgedock backup` to {path} (or leave it missing to start from an empty \
         store), and run `badgedock admin accept-store`"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the store was doing.
        operation: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },

    /// SQLite could not open the file or set it up (WAL, pragmas).
    #[error(
        "cannot open the badgedock store {path}: {source}; check that the file and its \
         directory are writable by the badgedock user and that the disk is not full"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },

    /// The file is an SQLite database, but not one badgedock wrote.
    #[error(
        "{path} is not a badgedock store (it holds other tables); point station.state-dir \
         at a directory of its own"
    )]
    Foreign {
        /// The database file.
        path: PathBuf,
    },

    /// The file was written by a newer badgedock whose schema this build does not know.
    #[error(
        "the badgedock store {path} has schema version {found}, newer than the {supported} \
         this badgedock understands; upgrade badgedock (or restore a backup made by this \
         version) instead of downgrading the data"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The file's `user_version`.
        found: i64,
        /// The newest version this build can migrate to.
        supported: i64,
    },

    /// A schema migration failed; the file is left at its previous version.
    #[error(
        "cannot migrate the badgedock store {path} to schema version {version}: {source}; \
         the file was left unchanged, check the disk and file permissions and start again"
    )]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The version being applied.
        version: i64,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },

    /// Another process kept the database locked for longer than the busy timeout.
    #[error(
        "the badgedock store {path} stayed locked by another process for {timeout_ms} ms \
         while trying to {operation}; stop the other badgedock command and try again"
    )]
    Busy {
        /// The database file.
        path: PathBuf,
        /// What the store was doing.
        operation: &'static str,
        /// How long it waited.
        timeout_ms: u64,
    },

    /// An SQLite statement failed. Nothing of the failed transaction was written.
    #[error(
        "the badgedock store {path} could not {operation}: {source}; nothing of this \
         change was written; check that the disk is not full and the file is writable"
    )]
    Sql {
        /// The database file.
        path: PathBuf,
        /// What the store was doing.
        operation: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },

    /// The station key (badge numbers are stored as keyed hashes) is unusable.
    #[error("the station key {path} is unusable: {message}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },

    /// The backup could not be written.
    #[error("cannot back up the badgedock store {path} to {target}: {message}")]
    Backup {
        /// The database file.
        path: PathBuf,
        /// The copy.
        target: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },

    /// A stored record could not be decoded.
    #[error(
        "the badgedock store {path} holds a {what} that cannot be read ({source}); the file \
         was edited by hand or written by an incompatible badgedock; restore a backup"
    )]
    Decode {
        /// The database file.
        path: PathBuf,
        /// Which kind of record.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },

    /// A record could not be encoded as JSON (a bug; records are plain data).
    #[error("cannot encode a {what} for the badgedock store {path}: {source}; this is a bug, please report it")]
    Encode {
        /// The database file.
        path: PathBuf,
        /// Which kind of record.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },

    /// The outbox worker referred to an action the store does not hold.
    #[error(
        "the badgedock store {path} has no outbox action {id}; the worker and the store \
         disagree, which is a bug: restart badgedock and report it"
    )]
    UnknownAction {
        /// The database file.
        path: PathBuf,
        /// The action.
        id: u64,
    },

    /// Writing the audit export failed.
    #[error("cannot write the audit export of {path}: {source}; check where the output goes")]
    Export {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: csv::Error,
    },

    /// The store thread could not be started.
    #[error("cannot start the thread for the badgedock store {path}: {source}; the system is out of resources, free some and start again")]
    Thread {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The store's thread has stopped (closed, or it panicked).
    #[error("the badgedock store {path} is closed; restart badgedock")]
    Closed {
        /// The database file.
        path: PathBuf,
    },
}

/// An environmental fault of the disk under the store: the daemon stays up, refuses what
/// it cannot record and tries again, rather than stopping (see `daemon::engine_loop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// No space left (`SQLITE_FULL`, `ENOSPC`, `EDQUOT`).
    Full,
    /// The file or its folder cannot be written (`SQLITE_READONLY`, `SQLITE_CANTOPEN`,
    /// `SQLITE_PERM`, `EROFS`, `EACCES`, `EPERM`).
    ReadOnly,
    /// The disk failed a read or write (`SQLITE_IOERR`, `EIO`).
    Io,
}

impl StorageFault {
    /// A short fixed word for logs and metrics labels: `full`, `read-only`, `io`.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageFault::Full => "full",
            StorageFault::ReadOnly => "read-only",
            StorageFault::Io => "io",
        }
    }
}

/// The fault an SQLite error stands for, if it is one of the disk's.
pub(crate) fn sqlite_fault(error: &rusqlite::Error) -> Option<StorageFault> {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code()? {
        ErrorCode::DiskFull => Some(StorageFault::Full),
        ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied => {
            Some(StorageFault::ReadOnly)
        }
        ErrorCode::SystemIoFailure => Some(StorageFault::Io),
        _ => None,
    }
}

/// Whether an SQLite error says the file is damaged.
pub(crate) fn is_corruption(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// The fault an OS error stands for, if it is one of the disk's.
pub fn io_fault(error: &std::io::Error) -> Option<StorageFault> {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Some(StorageFault::Full),
        ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => Some(StorageFault::ReadOnly),
        _ => match error.raw_os_error() {
            Some(code) if code == nix::errno::Errno::EIO as i32 => Some(StorageFault::Io),
            _ => None,
        },
    }
}

impl StoreError {
    /// The disk fault behind this error, when it is one: the daemon keeps running
    /// through these (and says so), while every other error stops it.
    pub fn storage_fault(&self) -> Option<StorageFault> {
        match self {
            StoreError::Open { source, .. }
            | StoreError::Migrate { source, .. }
            | StoreError::Sql { source, .. } => sqlite_fault(source),
            StoreError::Mark { source, .. } | StoreError::CreateDir { source, .. } => {
                io_fault(source)
            }
            _ => None,
        }
    }

    /// Whether the database file is damaged ([`StoreError::Corrupt`]).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }

    /// Builds [`StoreError::UnknownAction`].
    pub(crate) fn unknown_action(path: PathBuf, id: ActionId) -> StoreError {
        StoreError::UnknownAction { path, id: id.0 }
    }
}
