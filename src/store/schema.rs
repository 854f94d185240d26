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

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::store::key::{self, BadgeKey};
use crate::store::StoreError;

/// How long a statement waits for another process's lock before failing.
///
/// The daemon's transactions take milliseconds; a CLI export holds only a read snapshot,
/// which WAL lets writers ignore. Five seconds is far above any legitimate wait.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `PRAGMA application_id` of a badgedock store: "BDK1" in ASCII.
const APPLICATION_ID: i64 = 0x4244_4B31;

/// One schema migration: SQL, or Rust for what SQL cannot do (hashing with the key).
enum Migration {
    Sql(&'static str),
    Rust(fn(&Transaction<'_>, &BadgeKey) -> rusqlite::Result<()>),
}

/// The migrations, oldest first. Never edit one that has shipped; append a new one.
const MIGRATIONS: &[Migration] = &[
    // 1: the first schema.
    Migration::Sql(
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
    ),
    // 2: badge numbers only as keyed hashes (HMAC-SHA256 with station.key).
    Migration::Rust(hash_badge_numbers),
    // 3: loans may end without the phone coming back here ('closed': returned at another
    // cabinet or closed by an operator; 'lost'). SQLite cannot change a CHECK in place:
    // the table is rebuilt with its rows.
    Migration::Sql(
        r#"
    CREATE TABLE checkouts_v2 (
        id     INTEGER PRIMARY KEY,
        state  TEXT NOT NULL
               CHECK (state IN ('reserved', 'out', 'returned', 'expired', 'cancelled',
                                'closed', 'lost')),
        record TEXT NOT NULL             -- CheckoutRecord as JSON
    );
    INSERT INTO checkouts_v2 (id, state, record) SELECT id, state, record FROM checkouts;
    DROP TABLE checkouts;
    ALTER TABLE checkouts_v2 RENAME TO checkouts;
    CREATE INDEX checkouts_open ON checkouts (id) WHERE state IN ('reserved', 'out');
    "#,
    ),
    // 4: the audit hash chain, its retention anchor, and named cursors over the audit;
    // the rows already there are chained in the same transaction.
    Migration::Rust(chain_the_audit),
    // 5: loans' due times as a column (issue 14).
    Migration::Sql(LOAN_DUE_TIMES_SQL),
    // 6: the fleet console's admin requests this station carried out (issue 15). The
    // fleet publisher's audit cursor is the `fleet` row of `audit_cursors`.
    Migration::Sql(
        r#"
    -- Written in the same transaction as the transition that carried the request out:
    -- a request found here is acknowledged to the fleet store, never carried out again.
    CREATE TABLE fleet_admin_done (
        request_id INTEGER PRIMARY KEY,
        outcome    TEXT NOT NULL,
        at         INTEGER NOT NULL
    );
    "#,
    ),
];

/// Migration 5: `checkouts.due_at` (ms since the epoch, the wall-clock due time the
/// engine computed at check-out), kept equal to the record's `due_at` by triggers, so
/// the engine's upsert is unchanged and the column needs no other code; indexed for the
/// open loans.
const LOAN_DUE_TIMES_SQL: &str = r#"
    ALTER TABLE checkouts ADD COLUMN due_at INTEGER;
    UPDATE checkouts SET due_at = json_extract(record, '$.due_at');
    CREATE TRIGGER checkouts_due_at_insert AFTER INSERT ON checkouts
        BEGIN
            UPDATE checkouts SET due_at = json_extract(NEW.record, '$.due_at') WHERE id = NEW.id;
        END;
    CREATE TRIGGER checkouts_due_at_update AFTER UPDATE OF record ON checkouts
        BEGIN
            UPDATE checkouts SET due_at = json_extract(NEW.record, '$.due_at') WHERE id = NEW.id;
        END;
    CREATE INDEX checkouts_due ON checkouts (due_at) WHERE state = 'out';
"#;

/// Migration 2: the local badge table keyed by `badge_hmac`, with the redacted form
/// (`hint`) beside it; every existing number is hashed and the plain one dropped.
fn hash_badge_numbers(transaction: &Transaction<'_>, key: &BadgeKey) -> rusqlite::Result<()> {
    transaction.execute_batch(
        r#"
        -- Badges imported from a file or enrolled at the station, by keyed hash only:
        -- badge_hmac = HMAC-SHA256(station.key, number) in hex, hint = its redacted form.
        CREATE TABLE badges_keyed (
            badge_hmac   TEXT PRIMARY KEY CHECK (length(badge_hmac) = 64),
            hint         TEXT NOT NULL,
            username     TEXT NOT NULL CHECK (length(username) > 0),
            display_name TEXT NOT NULL,
            groups       TEXT NOT NULL DEFAULT '[]',
            enroller     INTEGER NOT NULL DEFAULT 0 CHECK (enroller IN (0, 1)),
            source       TEXT NOT NULL CHECK (source IN ('import', 'enrolled')),
            approved_by  TEXT,
            added_at     INTEGER NOT NULL
        ) WITHOUT ROWID;
        "#,
    )?;
    let numbers: Vec<String> = transaction
        .prepare("SELECT number FROM badges")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut copy = transaction.prepare(
        "INSERT INTO badges_keyed (badge_hmac, hint, username, display_name, groups, enroller,
                                   source, approved_by, added_at)
         SELECT ?1, ?2, username, display_name, groups, enroller, source, approved_by, added_at
         FROM badges WHERE number = ?3",
    )?;
    for number in &numbers {
        copy.execute(rusqlite::params![
            key.hash_text(number),
            crate::domain::redact(number),
            number
        ])?;
    }
    drop(copy);
    transaction.execute_batch(
        "DROP TABLE badges;
         ALTER TABLE badges_keyed RENAME TO badges;",
    )
}

/// Migration 4: the audit's hash chain (`chain::chain_existing_rows` hashes the rows a
/// file already has), the retention anchor and the audit cursors.
fn chain_the_audit(transaction: &Transaction<'_>, _key: &BadgeKey) -> rusqlite::Result<()> {
    transaction.execute_batch(AUDIT_CHAIN_SQL)?;
    crate::store::chain::chain_existing_rows(transaction)
}

const AUDIT_CHAIN_SQL: &str = r#"
    ALTER TABLE audit ADD COLUMN hash BLOB;
    CREATE TRIGGER audit_hash_required BEFORE INSERT ON audit
        WHEN NEW.hash IS NULL OR length(NEW.hash) != 32
        BEGIN SELECT RAISE(ABORT, 'an audit row needs the 32-byte hash of its chain'); END;

    -- Left by retention: the sequence number and hash of the last removed audit row,
    -- which the first remaining row chains onto.
    CREATE TABLE audit_anchor (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        seq       INTEGER NOT NULL,
        hash      BLOB NOT NULL CHECK (length(hash) = 32),
        pruned_at INTEGER NOT NULL,
        n_removed INTEGER NOT NULL
    );

    -- How far a reader of the audit (the SIEM forwarder) has got: the last sequence
    -- number it delivered. Retention never removes rows past a cursor.
    CREATE TABLE audit_cursors (
        name TEXT PRIMARY KEY CHECK (length(name) > 0),
        seq  INTEGER NOT NULL
    ) WITHOUT ROWID;
"#;

/// The schema version this build writes: the number of migrations.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if needed) the database at `path` and the station key beside it,
/// sets the pragmas every connection needs and applies the missing migrations. The
/// folder is created 0750 and the file 0600 (see [`key`]).
pub fn open(path: &Path) -> Result<(Connection, BadgeKey), StoreError> {
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    key::create_private_dir(parent)?;
    let open_error = |source| opening(path, source);
    key::create_private_file(path).map_err(|err| {
        open_error(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("cannot create the file: {err}")),
        ))
    })?;
    let badge_key = BadgeKey::load_or_create(parent)?;
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
    let migrated = migrate(&mut connection, path, &badge_key)?;
    if migrated.contains(&2) {
        // The plain badge numbers of the old table must not survive in free pages or in
        // the WAL: rewrite the file and empty the WAL.
        connection
            .execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|source| StoreError::Migrate {
                path: path.to_path_buf(),
                version: 2,
                source,
            })?;
    }
    Ok((connection, badge_key))
}

/// Opens an existing store for reading only, for a daemon whose state folder takes no
/// writes at start (a read-only file system, a full disk): the station comes up, shows
/// what it holds and refuses taps until [`open`] succeeds. Without a WAL beside the file
/// (a clean stop removes it) the file is opened `immutable=1`, which needs no `-shm`;
/// with one, SQLite reads the WAL through its existing `-shm`. No migration is run: a
/// file at another schema version is refused.
pub fn open_read_only(path: &Path) -> Result<(Connection, BadgeKey), StoreError> {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const PATH: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.');
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let badge_key = BadgeKey::load_or_create(parent)?;
    let invalid = |message: String| StoreError::Open {
        path: path.to_path_buf(),
        source: rusqlite::Error::InvalidParameterName(message),
    };
    let text = path
        .to_str()
        .ok_or_else(|| invalid("the path is not UTF-8".into()))?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let has_wal = std::fs::metadata(&wal).is_ok_and(|metadata| metadata.len() > 0);
    let uri = format!(
        "file:{}{}",
        utf8_percent_encode(text, PATH),
        if has_wal { "" } else { "?immutable=1" }
    );
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let connection =
        Connection::open_with_flags(&uri, flags).map_err(|source| opening(path, source))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|source| opening(path, source))?;
    let (version, application_id): (i64, i64) = connection
        .query_row(
            "SELECT * FROM pragma_user_version, pragma_application_id",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(|source| opening(path, source))?;
    if application_id != APPLICATION_ID {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
        });
    }
    if version != SCHEMA_VERSION {
        return Err(invalid(format!(
            "it has schema version {version} and this badgedock needs {SCHEMA_VERSION}: the migration needs a writable store"
        )));
    }
    Ok((connection, badge_key))
}

/// An error while opening the file: [`StoreError::Corrupt`] when SQLite says the file is
/// damaged (not a badgedock or permission problem), else [`StoreError::Open`].
fn opening(path: &Path, source: rusqlite::Error) -> StoreError {
    if crate::store::error::is_corruption(&source) {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            operation: "open the database",
            source,
        }
    } else {
        StoreError::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Applies every migration above the file's `user_version`, one transaction each;
/// returns the versions applied.
fn migrate(
    connection: &mut Connection,
    path: &Path,
    key: &BadgeKey,
) -> Result<Vec<i64>, StoreError> {
    let mut applied = Vec::new();
    loop {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| opening(path, source))?;
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
            read(&transaction).map_err(|source| opening(path, source))?;
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
            return Ok(applied);
        }
        let next = version + 1;
        let migration_error = |source| StoreError::Migrate {
            path: path.to_path_buf(),
            version: next,
            source,
        };
        let migration = MIGRATIONS
            .get(usize::try_from(version).unwrap_or(usize::MAX))
            .ok_or(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            })?;
        match migration {
            Migration::Sql(sql) => transaction.execute_batch(sql),
            Migration::Rust(apply) => apply(&transaction, key),
        }
        .map_err(migration_error)?;
        transaction
            .pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(migration_error)?;
        transaction
            .pragma_update(None, "user_version", next)
            .map_err(migration_error)?;
        transaction.commit().map_err(migration_error)?;
        applied.push(next);
        tracing::info!(path = %path.display(), version = next, "store schema migrated");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chaining_migration_hashes_the_rows_a_version_1_file_already_has() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v1.sqlite3");
        {
            let raw = Connection::open(&path).expect("open");
            let Migration::Sql(first) = MIGRATIONS[0] else {
                panic!("migration 1 is SQL")
            };
            raw.execute_batch(first).expect("migration 1");
            raw.pragma_update(None, "application_id", APPLICATION_ID)
                .expect("application_id");
            raw.pragma_update(None, "user_version", 1).expect("version");
            for n in 1..=3 {
                raw.execute(
                    "INSERT INTO audit (at, kind, detail) VALUES (?1, 'tap', 'old row')",
                    [n * 1000],
                )
                .expect("insert");
            }
        }
        let (mut connection, _key) = open(&path).expect("migrate");
        let transaction = connection.transaction().expect("read");
        let verification = crate::store::chain::verify(&transaction).expect("verify");
        assert_eq!((verification.n_rows, verification.problem), (3, None));
        // The append-only trigger is back after the migration's own update.
        assert!(transaction
            .execute("UPDATE audit SET detail = 'x' WHERE seq = 1", [])
            .is_err());
    }
}
