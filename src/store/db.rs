//! The synchronous side of the store: every statement badgedock runs, on the one
//! connection owned by the store thread.
//!
//! Records are kept as JSON next to the few columns SQL needs to filter and order on
//! (states, device keys, times). Write paths that touch more than one row run in a
//! `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so the busy timeout
//! applies and a concurrent CLI process cannot make a half-started transaction fail.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::checkout::{
    ActionId, ActionState, AuditEntry, CheckoutState, Commit, Counters, Persisted,
};
use crate::domain::{
    BadgeNumber, DeviceKey, Platform, ReaderName, SlotLabel, Timestamp, User, Username,
};
use crate::store::chain;
use crate::store::key::BadgeKey;
use crate::store::schema::BUSY_TIMEOUT;
use crate::store::{AuditRecord, LocalBadge, OutboxRow, StoreError, StoredBadge};

/// The connection, the file it belongs to (for error messages) and the station key
/// badge numbers are hashed with.
pub(super) struct Db {
    connection: Connection,
    path: PathBuf,
    key: BadgeKey,
    /// Where the continuity mark is kept, when this process is the station's daemon.
    mark: Option<PathBuf>,
    /// This store's identity and commit count, as in its `meta` table.
    identity: Option<StoreIdentity>,
}

/// A store's identity: a random id chosen when the file was created, and how many
/// transitions it has committed. The daemon keeps a copy beside the file (the mark): a
/// store whose count is behind its mark lost its WAL or was restored from an old copy;
/// one with another id was replaced or reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreIdentity {
    /// Chosen at creation.
    pub id: i64,
    /// Transitions committed so far.
    pub commits: i64,
}

impl StoreIdentity {
    fn encode(self) -> String {
        format!("badgedock-store {} {}\n", self.id, self.commits)
    }

    /// Reads a mark file's text.
    pub fn decode(text: &str) -> Option<StoreIdentity> {
        let mut words = text.split_whitespace();
        if words.next()? != "badgedock-store" {
            return None;
        }
        Some(StoreIdentity {
            id: words.next()?.parse().ok()?,
            commits: words.next()?.parse().ok()?,
        })
    }
}

impl Db {
    pub(super) fn new(connection: Connection, path: PathBuf, key: BadgeKey) -> Db {
        Db {
            connection,
            path,
            key,
            mark: None,
            identity: None,
        }
    }

    /// This store's identity (created on first use).
    pub(super) fn identity(&mut self) -> Result<StoreIdentity, StoreError> {
        if let Some(identity) = self.identity {
            return Ok(identity);
        }
        let err = sql_error(&self.path, "read the store's identity");
        let fresh_id = {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            (nanos ^ (i64::from(std::process::id()) << 40)).abs().max(1)
        };
        if !self.read_only() {
            self.connection
                .execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?1)",
                    params![fresh_id],
                )
                .map_err(&err)?;
        }
        let read = |key: &str| -> rusqlite::Result<i64> {
            self.connection
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    params![key],
                    |row| row.get(0),
                )
                .optional()
                .map(Option::unwrap_or_default)
        };
        let identity = StoreIdentity {
            id: read("store_id").map_err(&err)?,
            commits: read("commits").map_err(&err)?,
        };
        self.identity = Some(identity);
        Ok(identity)
    }

    /// Whether the connection was opened read-only ([`crate::store::Store::open_read_only`]).
    pub(super) fn read_only(&self) -> bool {
        self.connection
            .is_readonly(rusqlite::MAIN_DB)
            .unwrap_or(true)
    }

    /// Opens the file again for writing (after a read-only start), then writes the
    /// continuity mark again when this is the daemon's store.
    pub(super) fn reopen_writable(&mut self) -> Result<(), StoreError> {
        // The read-only connection is closed first: SQLite shares one `-shm` mapping per
        // file within a process, and the one it opened read-only would make the new
        // connection read-only too.
        let placeholder =
            Connection::open_in_memory().map_err(sql_error(&self.path, "reopen the store"))?;
        let old = std::mem::replace(&mut self.connection, placeholder);
        let _ = old.close();
        let (connection, key) = match crate::store::schema::open(&self.path) {
            Ok(opened) => opened,
            Err(err) => {
                // Still not writable: read it as before, and say why not.
                let (connection, key) = crate::store::schema::open_read_only(&self.path)?;
                self.connection = connection;
                self.key = key;
                return Err(err);
            }
        };
        self.connection = connection;
        self.key = key;
        self.identity = None;
        if let Some(mark) = self.mark.take() {
            self.adopt_mark(mark, false)?;
        }
        Ok(())
    }

    /// Checks this store against the mark the station's daemon left beside it, then keeps
    /// the mark up to date after every commit. See [`StoreIdentity`]. On a read-only
    /// connection it only checks (the mark is written once the store is writable).
    pub(super) fn adopt_mark(&mut self, mark: PathBuf, accept: bool) -> Result<(), StoreError> {
        let identity = self.identity()?;
        let previous = match std::fs::read_to_string(&mark) {
            Ok(text) => StoreIdentity::decode(&text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(StoreError::Mark {
                    path: mark.clone(),
                    source,
                })
            }
        };
        if let Some(previous) = previous.filter(|_| !accept) {
            if previous.id != identity.id {
                return Err(StoreError::Replaced {
                    path: self.path.clone(),
                    commits: previous.commits,
                });
            }
            if identity.commits < previous.commits {
                return Err(StoreError::Rewound {
                    path: self.path.clone(),
                    found: identity.commits,
                    expected: previous.commits,
                });
            }
        }
        if !self.read_only() {
            write_mark(&mark, identity).map_err(|source| StoreError::Mark {
                path: mark.clone(),
                source,
            })?;
        }
        self.mark = Some(mark);
        Ok(())
    }

    /// Copies the whole database to `target` (created 0600, must not exist) with
    /// SQLite's online backup, a few pages at a time so other processes (the daemon)
    /// keep writing meanwhile. Returns the number of pages copied.
    pub(super) fn backup_to(&mut self, target: &Path) -> Result<i32, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let backup_error = |message: String| StoreError::Backup {
            path: self.path.clone(),
            target: target.to_path_buf(),
            message,
        };
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(crate::store::key::FILE_MODE)
            .open(target)
            .map_err(|err| {
                backup_error(match err.kind() {
                    std::io::ErrorKind::AlreadyExists => {
                        "the file exists already: choose a new name (a backup never overwrites)"
                            .into()
                    }
                    _ => format!("cannot create it: {err}"),
                })
            })?;
        let result = (|| -> rusqlite::Result<i32> {
            let mut destination = Connection::open(target)?;
            {
                let backup = rusqlite::backup::Backup::new(&self.connection, &mut destination)?;
                backup.run_to_completion(64, std::time::Duration::from_millis(5), None)?;
            }
            // A backup is one self-contained file: no WAL beside it.
            destination.pragma_update(None, "journal_mode", "DELETE")?;
            let pages: i32 = destination.query_row("PRAGMA page_count", [], |row| row.get(0))?;
            destination.close().map_err(|(_, err)| err)?;
            Ok(pages)
        })();
        result.map_err(|err| {
            let _ = std::fs::remove_file(target);
            backup_error(format!(
                "{err}; nothing was kept, check the disk space and try again"
            ))
        })
    }

    /// Closes the connection, reporting what SQLite says (checkpointing the WAL).
    pub(super) fn close(self) -> Result<(), StoreError> {
        let Db {
            connection, path, ..
        } = self;
        connection
            .close()
            .map_err(|(_connection, source)| sql_error(&path, "close the database")(source))
    }

    /// Applies one engine transition in a single transaction.
    pub(super) fn commit(&mut self, commit: &Commit) -> Result<(), StoreError> {
        let Db {
            connection, path, ..
        } = self;
        let path = path.as_path();
        let operation = "write a transition";
        let err = sql_error(path, operation);
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        {
            let mut upsert_device = transaction
                .prepare_cached(
                    "INSERT INTO devices (platform, id, record) VALUES (?1, ?2, ?3)
                     ON CONFLICT (platform, id) DO UPDATE SET record = excluded.record",
                )
                .map_err(&err)?;
            for device in &commit.devices {
                let record = encode(path, "device record", device)?;
                upsert_device
                    .execute(params![
                        platform_name(device.key.platform),
                        device.key.id,
                        record
                    ])
                    .map_err(&err)?;
            }

            let mut upsert_checkout = transaction
                .prepare_cached(
                    "INSERT INTO checkouts (id, state, record) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE
                     SET state = excluded.state, record = excluded.record",
                )
                .map_err(&err)?;
            for checkout in &commit.checkouts {
                let record = encode(path, "check-out record", checkout)?;
                upsert_checkout
                    .execute(params![
                        checkout.id.0,
                        checkout_state_name(checkout.state),
                        record
                    ])
                    .map_err(&err)?;
            }

            // The engine owns `state` and `record`; the worker's columns survive an update.
            // The one exception is an operator's retry (failed -> pending): the worker no
            // longer works on a failed row, so its attempts start again from zero and it is
            // due at once. `sent_at` always survives: it is what prevents a second wipe.
            let mut upsert_action = transaction
                .prepare_cached(
                    "INSERT INTO outbox
                         (id, device_platform, device_id, state, record, attempts, next_attempt_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)
                     ON CONFLICT (id) DO UPDATE SET
                         device_platform = excluded.device_platform,
                         device_id = excluded.device_id,
                         attempts = CASE WHEN outbox.state = 'failed' AND excluded.state = 'pending'
                                         THEN 0 ELSE outbox.attempts END,
                         next_attempt_at = CASE WHEN outbox.state = 'failed'
                                                     AND excluded.state = 'pending'
                                                THEN excluded.next_attempt_at
                                                ELSE outbox.next_attempt_at END,
                         state = excluded.state,
                         record = excluded.record",
                )
                .map_err(&err)?;
            for action in &commit.actions {
                let record = encode(path, "outbox action", action)?;
                upsert_action
                    .execute(params![
                        action.id.0,
                        platform_name(action.device.platform),
                        action.device.id,
                        action_state_name(&action.state),
                        record,
                        action.created_at.0,
                    ])
                    .map_err(&err)?;
            }

            let mut append_audit = transaction
                .prepare_cached(
                    "INSERT INTO audit (seq, at, kind, reader, badge, username, device_platform,
                                        device_id, slot, detail, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(&err)?;
            // Each row chains onto the one before it (see `chain`); the write lock is held,
            // so the head cannot move under us.
            let (mut seq, mut previous) = if commit.audit.is_empty() {
                (0, chain::GENESIS)
            } else {
                chain::head(&transaction).map_err(&err)?
            };
            for entry in &commit.audit {
                seq += 1;
                let row = chain::ChainRow {
                    seq,
                    at: entry.at.0,
                    kind: entry.kind.as_str().to_string(),
                    reader: entry.reader.as_ref().map(|r| r.as_str().to_string()),
                    badge: entry.badge.as_deref().map(ensure_redacted),
                    username: entry.username.as_ref().map(|u| u.as_str().to_string()),
                    device_platform: entry
                        .device
                        .as_ref()
                        .map(|device| platform_name(device.platform).to_string()),
                    device_id: entry.device.as_ref().map(|device| device.id.clone()),
                    slot: entry.slot.as_ref().map(|s| s.as_str().to_string()),
                    detail: entry.detail.clone(),
                };
                let hash = chain::row_hash(&previous, &row);
                append_audit
                    .execute(params![
                        row.seq,
                        row.at,
                        row.kind,
                        row.reader,
                        row.badge,
                        row.username,
                        row.device_platform,
                        row.device_id,
                        row.slot,
                        row.detail,
                        hash.as_slice(),
                    ])
                    .map_err(&err)?;
                previous = hash;
            }

            if !commit.fleet_requests.is_empty() {
                let mut done = transaction
                    .prepare_cached(
                        "INSERT INTO fleet_admin_done (request_id, outcome, at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (request_id) DO NOTHING",
                    )
                    .map_err(&err)?;
                for request in &commit.fleet_requests {
                    done.execute(params![request.request, request.outcome, request.at.0])
                        .map_err(&err)?;
                }
            }

            let mut write_counter = transaction
                .prepare_cached(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .map_err(&err)?;
            write_counter
                .execute(params!["next_checkout", commit.counters.next_checkout])
                .map_err(&err)?;
            write_counter
                .execute(params!["next_action", commit.counters.next_action])
                .map_err(&err)?;
            transaction
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('commits', 1)
                     ON CONFLICT (key) DO UPDATE SET value = value + 1",
                    [],
                )
                .map_err(&err)?;
        }
        transaction.commit().map_err(&err)?;
        if let Some(identity) = self.identity.as_mut() {
            identity.commits += 1;
            if let Some(mark) = &self.mark {
                // After the commit is durable; a mark that lags by one commit after a
                // power cut is harmless, one ahead of the store is impossible.
                if let Err(cause) = write_mark(mark, *identity) {
                    tracing::warn!(path = %mark.display(), %cause, "cannot update the store's continuity mark");
                }
            }
        }
        Ok(())
    }

    /// A small write in a transaction of its own (the `probe_at` row of `meta`): whether
    /// the disk takes writes again after a fault.
    pub(super) fn probe(&mut self, at: Timestamp) -> Result<(), StoreError> {
        let err = sql_error(&self.path, "write a probe row");
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        transaction
            .execute(
                "INSERT INTO meta (key, value) VALUES ('probe_at', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![at.0],
            )
            .map_err(&err)?;
        transaction.commit().map_err(&err)
    }

    /// What the engine needs to start again.
    pub(super) fn load(&mut self) -> Result<Persisted, StoreError> {
        let Db {
            connection, path, ..
        } = self;
        let path = path.as_path();
        let err = sql_error(path, "load the station state");
        // One read transaction: the four reads see the same commit.
        let transaction = connection.transaction().map_err(&err)?;
        let devices = query_json(
            &transaction,
            path,
            "load the devices",
            "device record",
            "SELECT record FROM devices ORDER BY platform, id",
        )?;
        let open_checkouts = query_json(
            &transaction,
            path,
            "load the open check-outs",
            "check-out record",
            "SELECT record FROM checkouts WHERE state IN ('reserved', 'out') ORDER BY id",
        )?;
        let open_actions = query_json(
            &transaction,
            path,
            "load the open outbox actions",
            "outbox action",
            "SELECT record FROM outbox WHERE state IN ('pending', 'failed') ORDER BY id",
        )?;
        let counters = read_counters(&transaction).map_err(&err)?;
        transaction.commit().map_err(&err)?;
        Ok(Persisted {
            devices,
            open_checkouts,
            open_actions,
            counters,
        })
    }

    /// The due head of each device's pending queue, by id.
    pub(super) fn due_actions(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.outbox_rows(
            "list the due outbox actions",
            "WITH heads AS (
                 SELECT min(id) AS id FROM outbox WHERE state = 'pending'
                 GROUP BY device_platform, device_id
             )
             SELECT o.record, o.attempts, o.next_attempt_at, o.sent_at, o.last_error
             FROM outbox o JOIN heads ON o.id = heads.id
             WHERE o.next_attempt_at <= ?1
             ORDER BY o.id
             LIMIT ?2",
            params![now.0, limit],
        )
    }

    /// Every pending outbox row with the worker's bookkeeping, by id.
    pub(super) fn pending_outbox(&mut self) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_rows(
            "list the pending outbox actions",
            "SELECT record, attempts, next_attempt_at, sent_at, last_error
             FROM outbox WHERE state = 'pending' ORDER BY id",
            params![],
        )
    }

    fn outbox_rows(
        &mut self,
        operation: &'static str,
        sql: &str,
        parameters: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let err = sql_error(&self.path, operation);
        let mut statement = self.connection.prepare_cached(sql).map_err(&err)?;
        let rows = statement
            .query_map(parameters, |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, u32>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        rows.into_iter()
            .map(|(record, attempts, next_attempt_at, sent_at, last_error)| {
                Ok(OutboxRow {
                    record: decode(&self.path, "outbox action", &record)?,
                    attempts,
                    next_attempt_at: Timestamp(next_attempt_at),
                    sent_at: sent_at.map(Timestamp),
                    last_error,
                })
            })
            .collect()
    }

    /// The earliest `next_attempt_at` among the per-device heads.
    pub(super) fn next_due_at(&mut self) -> Result<Option<Timestamp>, StoreError> {
        let err = sql_error(&self.path, "find the next due outbox action");
        self.connection
            .prepare_cached(
                "WITH heads AS (
                     SELECT min(id) AS id FROM outbox WHERE state = 'pending'
                     GROUP BY device_platform, device_id
                 )
                 SELECT min(o.next_attempt_at) FROM outbox o JOIN heads ON o.id = heads.id",
            )
            .map_err(&err)?
            .query_row([], |row| row.get::<_, Option<i64>>(0))
            .map(|at| at.map(Timestamp))
            .map_err(&err)
    }

    /// How many outbox rows are pending.
    pub(super) fn pending_count(&mut self) -> Result<u32, StoreError> {
        let err = sql_error(&self.path, "count the pending outbox actions");
        self.connection
            .prepare_cached("SELECT count(*) FROM outbox WHERE state = 'pending'")
            .map_err(&err)?
            .query_row([], |row| row.get::<_, u32>(0))
            .map_err(&err)
    }

    /// The worker's bookkeeping after an attempt.
    pub(super) fn record_attempt(
        &mut self,
        id: ActionId,
        attempts: u32,
        next_attempt_at: Timestamp,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        let err = sql_error(&self.path, "record an outbox attempt");
        let n_changed = self
            .connection
            .prepare_cached(
                "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4
                 WHERE id = ?1",
            )
            .map_err(&err)?
            .execute(params![id.0, attempts, next_attempt_at.0, last_error])
            .map_err(&err)?;
        self.expect_one_row(id, n_changed)
    }

    /// Notes that the action is about to be sent.
    pub(super) fn mark_sent(&mut self, id: ActionId, at: Timestamp) -> Result<(), StoreError> {
        let err = sql_error(&self.path, "mark an outbox action as sent");
        let n_changed = self
            .connection
            .prepare_cached("UPDATE outbox SET sent_at = ?2 WHERE id = ?1")
            .map_err(&err)?
            .execute(params![id.0, at.0])
            .map_err(&err)?;
        self.expect_one_row(id, n_changed)
    }

    /// How many lines the audit log holds.
    pub(super) fn audit_len(&mut self) -> Result<u64, StoreError> {
        let err = sql_error(&self.path, "count the audit lines");
        self.connection
            .prepare_cached("SELECT count(*) FROM audit")
            .map_err(&err)?
            .query_row([], |row| row.get::<_, u64>(0))
            .map_err(&err)
    }

    /// The newest audit lines, newest first.
    pub(super) fn recent_audit(&mut self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let err = sql_error(&self.path, "read the audit log");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT seq, at, kind, reader, badge, username, device_platform, device_id,
                        slot, detail
                 FROM audit ORDER BY seq DESC LIMIT ?1",
            )
            .map_err(&err)?;
        let rows = statement
            .query_map(params![limit], AuditRow::from_row)
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        rows.into_iter()
            .map(|row| row.into_entry(&self.path))
            .collect()
    }

    /// Walks the audit hash chain.
    pub(super) fn verify_audit(&mut self) -> Result<chain::Verification, StoreError> {
        let err = sql_error(&self.path, "verify the audit chain");
        // A read transaction: one snapshot while the daemon keeps appending.
        let transaction = self.connection.transaction().map_err(&err)?;
        let verification = chain::verify(&transaction).map_err(&err)?;
        transaction.commit().map_err(&err)?;
        Ok(verification)
    }

    /// Retention: removes the audit rows older than `before`, never a row a cursor has
    /// not passed, after checking the chain (a broken chain is evidence and is kept).
    pub(super) fn prune_audit(
        &mut self,
        before: Timestamp,
        now: Timestamp,
    ) -> Result<Result<chain::Pruned, chain::ChainProblem>, StoreError> {
        let err = sql_error(&self.path, "apply the audit retention");
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        if let Some(problem) = chain::verify(&transaction).map_err(&err)?.problem {
            return Ok(Err(problem));
        }
        let keep_from: Option<i64> = transaction
            .query_row("SELECT min(seq) + 1 FROM audit_cursors", [], |row| {
                row.get(0)
            })
            .map_err(&err)?;
        let pruned = chain::prune(&transaction, before.0, keep_from, now.0).map_err(&err)?;
        transaction.commit().map_err(&err)?;
        Ok(Ok(pruned))
    }

    /// Up to `limit` audit rows after sequence number `after`, oldest first, with their
    /// hashes.
    pub(super) fn audit_after(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.audit_records(
            "SELECT seq, at, kind, reader, badge, username, device_platform, device_id,
                    slot, detail, hash
             FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            params![after, limit],
        )
    }

    /// The audit rows with `at` before `before`, oldest first.
    pub(super) fn audit_before(
        &mut self,
        before: Timestamp,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_records(
            "SELECT seq, at, kind, reader, badge, username, device_platform, device_id,
                    slot, detail, hash
             FROM audit WHERE at < ?1 ORDER BY seq",
            params![before.0],
        )
    }

    fn audit_records(
        &mut self,
        sql: &str,
        parameters: impl rusqlite::Params,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let err = sql_error(&self.path, "read the audit log");
        let mut statement = self.connection.prepare_cached(sql).map_err(&err)?;
        let rows = statement
            .query_map(parameters, |row| {
                Ok((AuditRow::from_row(row)?, row.get::<_, Option<Vec<u8>>>(10)?))
            })
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        rows.into_iter()
            .map(|(row, hash)| {
                let seq = row.seq;
                Ok(AuditRecord {
                    seq,
                    entry: row.into_entry(&self.path)?,
                    hash: hash.as_deref().map(chain::hex).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The newest audit sequence number ever given.
    pub(super) fn audit_head(&mut self) -> Result<i64, StoreError> {
        let err = sql_error(&self.path, "read the audit head");
        let transaction = self.connection.transaction().map_err(&err)?;
        let (seq, _) = chain::head(&transaction).map_err(&err)?;
        transaction.commit().map_err(&err)?;
        Ok(seq)
    }

    /// A named cursor over the audit: the last sequence number its reader handled.
    pub(super) fn audit_cursor(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        let err = sql_error(&self.path, "read an audit cursor");
        self.connection
            .prepare_cached("SELECT seq FROM audit_cursors WHERE name = ?1")
            .map_err(&err)?
            .query_row(params![name], |row| row.get(0))
            .optional()
            .map_err(&err)
    }

    /// What came of a fleet console request this station carried out; `None` when it
    /// has not been.
    pub(super) fn fleet_request_done(
        &mut self,
        request: i64,
    ) -> Result<Option<String>, StoreError> {
        let err = sql_error(&self.path, "read the fleet requests carried out");
        self.connection
            .prepare_cached("SELECT outcome FROM fleet_admin_done WHERE request_id = ?1")
            .map_err(&err)?
            .query_row(params![request], |row| row.get(0))
            .optional()
            .map_err(&err)
    }

    /// Moves a named cursor (creating it).
    pub(super) fn set_audit_cursor(&mut self, name: &str, seq: i64) -> Result<(), StoreError> {
        let err = sql_error(&self.path, "move an audit cursor");
        self.connection
            .prepare_cached(
                "INSERT INTO audit_cursors (name, seq) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
            )
            .map_err(&err)?
            .execute(params![name, seq])
            .map_err(&err)?;
        Ok(())
    }

    /// Streams the whole audit log as CSV into `writer`, oldest first.
    pub(super) fn export_audit_csv<W: Write>(&mut self, writer: W) -> Result<W, StoreError> {
        let err = sql_error(&self.path, "read the audit log");
        let export_error = |source: csv::Error| StoreError::Export {
            path: self.path.clone(),
            source,
        };
        let mut csv_writer = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(writer);
        csv_writer
            .write_record([
                "seq", "at", "kind", "reader", "badge", "username", "platform", "device", "slot",
                "detail",
            ])
            .map_err(export_error)?;
        let mut statement = self
            .connection
            .prepare(
                "SELECT seq, at, kind, reader, badge, username, device_platform, device_id,
                        slot, detail
                 FROM audit ORDER BY seq",
            )
            .map_err(&err)?;
        let mut rows = statement.query([]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            let row = AuditRow::from_row(row).map_err(&err)?;
            let at = chrono::DateTime::from_timestamp_millis(row.at)
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_else(|| row.at.to_string());
            csv_writer
                .write_record([
                    row.seq.to_string().as_str(),
                    at.as_str(),
                    row.kind.as_str(),
                    spreadsheet_safe(row.reader.as_deref().unwrap_or("")).as_ref(),
                    row.badge
                        .as_deref()
                        .map(ensure_redacted)
                        .as_deref()
                        .unwrap_or(""),
                    spreadsheet_safe(row.username.as_deref().unwrap_or("")).as_ref(),
                    row.device_platform.as_deref().unwrap_or(""),
                    spreadsheet_safe(row.device_id.as_deref().unwrap_or("")).as_ref(),
                    spreadsheet_safe(row.slot.as_deref().unwrap_or("")).as_ref(),
                    spreadsheet_safe(&row.detail).as_ref(),
                ])
                .map_err(export_error)?;
        }
        csv_writer
            .into_inner()
            .map_err(|error| export_error(csv::Error::from(error.into_error())))
    }

    /// Inserts or replaces local badges in one transaction; returns how many were written.
    pub(super) fn upsert_badges(&mut self, badges: &[LocalBadge]) -> Result<usize, StoreError> {
        let Db {
            connection,
            path,
            key,
            ..
        } = self;
        let path = path.as_path();
        let err = sql_error(path, "write local badges");
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let mut n_written = 0;
        {
            let mut upsert = transaction
                .prepare_cached(
                    "INSERT INTO badges (badge_hmac, username, display_name, groups, enroller,
                                         source, approved_by, added_at, hint)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (badge_hmac) DO UPDATE SET
                         hint = excluded.hint,
                         username = excluded.username,
                         display_name = excluded.display_name,
                         groups = excluded.groups,
                         enroller = excluded.enroller,
                         source = excluded.source,
                         approved_by = excluded.approved_by,
                         added_at = excluded.added_at",
                )
                .map_err(&err)?;
            for badge in badges {
                let groups = encode(path, "badge's group list", &badge.user.groups)?;
                n_written += upsert
                    .execute(params![
                        key.hash(&badge.number),
                        badge.user.username.as_str(),
                        badge.user.display_name,
                        groups,
                        badge.user.enroller,
                        badge.source.as_str(),
                        badge.approved_by.as_ref().map(Username::as_str),
                        badge.added_at.0,
                        badge.number.redacted(),
                    ])
                    .map_err(&err)?;
            }
        }
        transaction.commit().map_err(&err)?;
        Ok(n_written)
    }

    /// Every local badge, by username then redacted number.
    pub(super) fn list_badges(&mut self) -> Result<Vec<StoredBadge>, StoreError> {
        let err = sql_error(&self.path, "list local badges");
        let mut statement = self
            .connection
            .prepare_cached(&format!("{BADGE_SELECT} ORDER BY username, hint"))
            .map_err(&err)?;
        let rows = statement
            .query_map([], BadgeRow::from_row)
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        rows.into_iter()
            .map(|row| row.into_badge(&self.path))
            .collect()
    }

    /// Removes one local badge; false when it was not there.
    pub(super) fn remove_badge(&mut self, number: &BadgeNumber) -> Result<bool, StoreError> {
        let err = sql_error(&self.path, "remove a local badge");
        let n_removed = self
            .connection
            .prepare_cached("DELETE FROM badges WHERE badge_hmac = ?1")
            .map_err(&err)?
            .execute(params![self.key.hash(number)])
            .map_err(&err)?;
        Ok(n_removed > 0)
    }

    /// One local badge.
    pub(super) fn find_badge(
        &mut self,
        number: &BadgeNumber,
    ) -> Result<Option<StoredBadge>, StoreError> {
        let err = sql_error(&self.path, "look up a local badge");
        let row = self
            .connection
            .prepare_cached(&format!("{BADGE_SELECT} WHERE badge_hmac = ?1"))
            .map_err(&err)?
            .query_row(params![self.key.hash(number)], BadgeRow::from_row)
            .optional()
            .map_err(&err)?;
        row.map(|row| row.into_badge(&self.path)).transpose()
    }

    fn expect_one_row(&self, id: ActionId, n_changed: usize) -> Result<(), StoreError> {
        if n_changed == 0 {
            Err(StoreError::unknown_action(self.path.clone(), id))
        } else {
            Ok(())
        }
    }
}

const BADGE_SELECT: &str = "SELECT hint, username, display_name, groups, enroller, source,
                                   approved_by, added_at
                            FROM badges";

/// An audit row as stored, before its device columns are put back together.
struct AuditRow {
    seq: i64,
    at: i64,
    kind: String,
    reader: Option<String>,
    badge: Option<String>,
    username: Option<String>,
    device_platform: Option<String>,
    device_id: Option<String>,
    slot: Option<String>,
    detail: String,
}

impl AuditRow {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<AuditRow> {
        Ok(AuditRow {
            seq: row.get(0)?,
            at: row.get(1)?,
            kind: row.get(2)?,
            reader: row.get(3)?,
            badge: row.get(4)?,
            username: row.get(5)?,
            device_platform: row.get(6)?,
            device_id: row.get(7)?,
            slot: row.get(8)?,
            detail: row.get(9)?,
        })
    }

    fn into_entry(self, path: &Path) -> Result<AuditEntry, StoreError> {
        let device = match (self.device_platform, self.device_id) {
            (Some(platform), Some(id)) => Some(DeviceKey {
                platform: from_name(path, "audit line's device platform", platform)?,
                id,
            }),
            _ => None,
        };
        Ok(AuditEntry {
            at: Timestamp(self.at),
            kind: crate::checkout::AuditKind::from_name(&self.kind),
            reader: self.reader.map(ReaderName::new),
            badge: self.badge,
            username: self.username.map(Username::new),
            device,
            slot: self.slot.map(SlotLabel::new),
            detail: self.detail,
        })
    }
}

/// A badge row as stored.
struct BadgeRow {
    hint: String,
    username: String,
    display_name: String,
    groups: String,
    enroller: bool,
    source: String,
    approved_by: Option<String>,
    added_at: i64,
}

impl BadgeRow {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<BadgeRow> {
        Ok(BadgeRow {
            hint: row.get(0)?,
            username: row.get(1)?,
            display_name: row.get(2)?,
            groups: row.get(3)?,
            enroller: row.get(4)?,
            source: row.get(5)?,
            approved_by: row.get(6)?,
            added_at: row.get(7)?,
        })
    }

    fn into_badge(self, path: &Path) -> Result<StoredBadge, StoreError> {
        Ok(StoredBadge {
            hint: self.hint,
            user: User {
                username: Username::new(self.username),
                display_name: self.display_name,
                groups: decode(path, "badge's group list", &self.groups)?,
                enroller: self.enroller,
            },
            source: from_name(path, "badge source", self.source)?,
            approved_by: self.approved_by.map(Username::new),
            added_at: Timestamp(self.added_at),
        })
    }
}

/// Replaces the mark file atomically (a temporary file renamed over it), readable by
/// the service alone.
fn write_mark(mark: &Path, identity: StoreIdentity) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let temporary = mark.with_extension("mark.tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(identity.encode().as_bytes())?;
    drop(file);
    std::fs::rename(&temporary, mark)
}

fn read_counters(connection: &Connection) -> rusqlite::Result<Counters> {
    let read = |key: &str| -> rusqlite::Result<u64> {
        connection
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                params![key],
                |row| row.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
    };
    Ok(Counters {
        next_checkout: read("next_checkout")?,
        next_action: read("next_action")?,
    })
}

fn query_json<T: DeserializeOwned>(
    connection: &Connection,
    path: &Path,
    operation: &'static str,
    what: &'static str,
    sql: &str,
) -> Result<Vec<T>, StoreError> {
    let err = sql_error(path, operation);
    let mut statement = connection.prepare_cached(sql).map_err(&err)?;
    let texts = statement
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(&err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(&err)?;
    texts.iter().map(|text| decode(path, what, text)).collect()
}

/// Maps an SQLite error to a [`StoreError`] naming the file and the operation; a lock
/// that outlasted the busy timeout gets its own message.
fn sql_error<'a>(
    path: &'a Path,
    operation: &'static str,
) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
    move |source| match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            path: path.to_path_buf(),
            operation,
            source,
        },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy {
            path: path.to_path_buf(),
            operation,
            timeout_ms: u64::try_from(BUSY_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
        },
        _ => StoreError::Sql {
            path: path.to_path_buf(),
            operation,
            source,
        },
    }
}

fn encode<T: Serialize + ?Sized>(
    path: &Path,
    what: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode {
        path: path.to_path_buf(),
        what,
        source,
    })
}

fn decode<T: DeserializeOwned>(
    path: &Path,
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Decode {
        path: path.to_path_buf(),
        what,
        source,
    })
}

/// Parses a unit enum from the name serde gives it (`apple`, `import`).
fn from_name<T: DeserializeOwned>(
    path: &Path,
    what: &'static str,
    name: String,
) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(name)).map_err(|source| StoreError::Decode {
        path: path.to_path_buf(),
        what,
        source,
    })
}

/// The audit must never hold a full badge number (invariant 5). The engine redacts;
/// this is the second lock on the door: anything that is not already the short
/// redacted form (`…` plus at most four characters) is redacted here.
fn ensure_redacted(badge: &str) -> String {
    let already_redacted = badge.starts_with('…') && badge.chars().count() <= 5;
    if already_redacted {
        badge.to_string()
    } else {
        crate::domain::redact(badge.trim_start_matches('…'))
    }
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Apple => "apple",
        Platform::Android => "android",
    }
}

fn checkout_state_name(state: CheckoutState) -> &'static str {
    match state {
        CheckoutState::Reserved => "reserved",
        CheckoutState::Out => "out",
        CheckoutState::Returned => "returned",
        CheckoutState::Expired => "expired",
        CheckoutState::Cancelled => "cancelled",
        CheckoutState::Closed => "closed",
        CheckoutState::Lost => "lost",
    }
}

fn action_state_name(state: &ActionState) -> &'static str {
    match state {
        ActionState::Pending => "pending",
        ActionState::Done => "done",
        ActionState::Failed => "failed",
        ActionState::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_reaching_the_audit_are_always_redacted() {
        assert_eq!(ensure_redacted("…3F9A"), "…3F9A");
        assert_eq!(ensure_redacted("DEADBEEF3F9A"), "…3F9A");
        assert_eq!(ensure_redacted("…DEADBEEF3F9A"), "…3F9A");
        assert_eq!(ensure_redacted("1234"), "…");
    }

    #[test]
    fn state_names_match_the_serde_names() {
        // The SQL CHECK constraints and filters use these names; serde writes the same
        // ones into the JSON records, so the two can never disagree.
        for state in [
            CheckoutState::Reserved,
            CheckoutState::Out,
            CheckoutState::Returned,
            CheckoutState::Expired,
            CheckoutState::Cancelled,
        ] {
            assert_eq!(
                serde_json::to_value(state).ok(),
                Some(serde_json::Value::from(checkout_state_name(state)))
            );
        }
        for state in [
            ActionState::Pending,
            ActionState::Done,
            ActionState::Failed,
            ActionState::Cancelled,
        ] {
            assert_eq!(
                serde_json::to_value(&state).ok(),
                Some(serde_json::Value::from(action_state_name(&state)))
            );
        }
        for platform in [Platform::Apple, Platform::Android] {
            assert_eq!(
                serde_json::to_value(platform).ok(),
                Some(serde_json::Value::from(platform_name(platform)))
            );
        }
    }
}

/// A text cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR at
/// the start) gets a leading apostrophe, so an audit export opened in Excel by IT staff
/// cannot execute anything that reached a username, slot label or detail.
fn spreadsheet_safe(value: &str) -> std::borrow::Cow<'_, str> {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => std::borrow::Cow::Owned(format!("'{value}")),
        _ => std::borrow::Cow::Borrowed(value),
    }
}

#[cfg(test)]
mod spreadsheet_tests {
    use super::spreadsheet_safe;

    #[test]
    fn formula_cells_are_neutralised() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("alice"), "alice");
        assert_eq!(spreadsheet_safe(""), "");
    }
}
