//! Opening the database file and bringing its schema up to date.
//!
//! Migrations are embedded SQL, applied in order and keyed on `PRAGMA user_version`:
//! version N means migrations 1..=N have run. Each migration runs in its own
//! `BEGIN IMMEDIATE` transaction together with the version bump, so a crash leaves the
//! file at the old version or the new one, and two processes opening the same file at
//! once (the daemon and a CLI command) do not both apply it. A file from a newer
//! badgedock is refused rather than guessed at.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::store::StoreError;

/// How long a statement waits for another process's lock before failing.
///
/// The daemon's transactions take milliseconds; a CLI export holds only a read snapshot,
/// which WAL lets writers ignore. Five seconds is far above any legitimate wait.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `PRAGMA application_id` of a badgedock store: "BDK1" in ASCII.
const APPLICATION_ID: i64 = 0x4244_4B31;

/// The migrations, oldest first. Never edit one that has shipped; append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    -- Every device the station has seen, keyed on its platform and UDID/serial.
    CREATE TABLE devices (
        platform TEXT NOT NULL CHECK (platform IN ('apple', 'android')),
        id       TEXT NOT NULL CHECK (length(id) > 0),
        record   TEXT NOT NULL,          -- DeviceRecord as JSON
        PRIMARY KEY (platform, id)
    ) WITHOUT ROWID;

    CREATE TABLE checkouts (
        id     INTEGER PRIMARY KEY,
        state  TEXT NOT NULL
               CHECK (state IN ('reserved', 'out', 'returned', 'expired', 'cancelled')),
        record TEXT NOT NULL             -- CheckoutRecord as JSON
    );
    CREATE INDEX checkouts_open ON checkouts (id) WHERE state IN ('reserved', 'out');

    -- The MDM outbox. `state` and `record` belong to the engine; `attempts`,
    -- `next_attempt_at`, `sent_at` and `last_error` belong to the outbox worker.
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,   -- ActionId, also the idempotency key
        device_platform TEXT NOT NULL,
        device_id       TEXT NOT NULL,
        state           TEXT NOT NULL
                        CHECK (state IN ('pending', 'done', 'failed', 'cancelled')),
        record          TEXT NOT NULL,         -- ActionRecord as JSON
        attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at INTEGER NOT NULL,      -- ms since the epoch
        sent_at         INTEGER,               -- set before a non-idempotent send
        last_error      TEXT
    );
    CREATE INDEX outbox_pending_by_device
        ON outbox (device_platform, device_id, id) WHERE state = 'pending';
    CREATE INDEX outbox_open ON outbox (id) WHERE state IN ('pending', 'failed');

    -- The audit log. Badge numbers arrive redacted; rows are never changed or removed.
    CREATE TABLE audit (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        at              INTEGER NOT NULL,
        kind            TEXT NOT NULL CHECK (length(kind) > 0),
        reader          TEXT,
        badge           TEXT,
        username        TEXT,
        device_platform TEXT,
        device_id       TEXT,
        slot            TEXT,
        detail          TEXT NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

    -- Small named integers: the engine's id counters.
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- Badges imported from a file or enrolled at the station. The number is stored in
    -- full: this table is the directory itself.
    CREATE TABLE badges (
        number       TEXT PRIMARY KEY CHECK (length(number) > 0),
        username     TEXT NOT NULL CHECK (length(username) > 0),
        display_name TEXT NOT NULL,
        groups       TEXT NOT NULL DEFAULT '[]',   -- JSON array of group names
        enroller     INTEGER NOT NULL DEFAULT 0 CHECK (enroller IN (0, 1)),
        source       TEXT NOT NULL CHECK (source IN ('import', 'enrolled')),
        approved_by  TEXT,
        added_at     INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 2: the fleet publisher's durable cursors and the admin requests it carried out.
    r#"
    -- How far each fleet stream has been published (`audit` = the last audit seq that
    -- PostgreSQL acknowledged). Written after PostgreSQL's commit, so a crash in between
    -- sends a batch again, which the fleet store ignores (idempotent by station + seq).
    CREATE TABLE fleet_cursor (
        stream TEXT PRIMARY KEY,
        seq    INTEGER NOT NULL CHECK (seq >= 0)
    ) WITHOUT ROWID;

    -- Console admin requests this station has handed to its engine, by request id: a
    -- request found here is acknowledged again, never carried out twice.
    CREATE TABLE fleet_admin_done (
        request_id INTEGER PRIMARY KEY,
        at         INTEGER NOT NULL
    );
    "#,
];

/// The schema version this build writes: the number of migrations.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if needed) the database at `path`, sets the pragmas every connection
/// needs and applies the missing migrations.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let open_error = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let mut connection = Connection::open_with_flags(path, flags).map_err(open_error)?;
    // The busy timeout first: switching to WAL needs a lock another process may hold.
    connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
    let journal_mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
        .map_err(open_error)?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(open_error(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode stayed {journal_mode}, WAL is required (is the file on a network share?)"
        ))));
    }
    // FULL: a commit is on disk when it returns, so a power cut loses nothing shown.
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(open_error)?;
    connection
        .pragma_update(None, "foreign_keys", "ON")
        .map_err(open_error)?;
    migrate(&mut connection, path)?;
    Ok(connection)
}

/// Applies every migration above the file's `user_version`, one transaction each.
fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    loop {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        // Read inside the write lock: another process may have migrated meanwhile.
        let read = |transaction: &rusqlite::Transaction<'_>| -> rusqlite::Result<(i64, i64, i64)> {
            let version = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
            let application_id =
                transaction.query_row("PRAGMA application_id", [], |row| row.get(0))?;
            let n_objects = transaction.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
                [],
                |row| row.get(0),
            )?;
            Ok((version, application_id, n_objects))
        };
        let (version, application_id, n_objects) =
            read(&transaction).map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let ours = application_id == APPLICATION_ID || (application_id == 0 && n_objects == 0);
        if !ours || version < 0 {
            return Err(StoreError::Foreign {
                path: path.to_path_buf(),
            });
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == SCHEMA_VERSION {
            // Nothing to do; the empty transaction ends when dropped.
            return Ok(());
        }
        let next = version + 1;
        let migration_error = |source| StoreError::Migrate {
            path: path.to_path_buf(),
            version: next,
            source,
        };
        let sql = MIGRATIONS
            .get(usize::try_from(version).unwrap_or(usize::MAX))
            .ok_or(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            })?;
        transaction.execute_batch(sql).map_err(migration_error)?;
        transaction
            .pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(migration_error)?;
        transaction
            .pragma_update(None, "user_version", next)
            .map_err(migration_error)?;
        transaction.commit().map_err(migration_error)?;
        tracing::info!(path = %path.display(), version = next, "store schema migrated");
    }
}
