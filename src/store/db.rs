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
use crate::store::schema::BUSY_TIMEOUT;
use crate::store::{LocalBadge, OutboxRow, StoreError};

mod fleet;

/// The connection and the file it belongs to (for error messages).
pub(super) struct Db {
    connection: Connection,
    path: PathBuf,
}

impl Db {
    pub(super) fn new(connection: Connection, path: PathBuf) -> Db {
        Db { connection, path }
    }

    /// Closes the connection, reporting what SQLite says (checkpointing the WAL).
    pub(super) fn close(self) -> Result<(), StoreError> {
        let Db { connection, path } = self;
        connection
            .close()
            .map_err(|(_connection, source)| sql_error(&path, "close the database")(source))
    }

    /// Applies one engine transition in a single transaction.
    pub(super) fn commit(&mut self, commit: &Commit) -> Result<(), StoreError> {
        let Db { connection, path } = self;
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
                    "INSERT INTO audit (at, kind, reader, badge, username, device_platform,
                                        device_id, slot, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(&err)?;
            for entry in &commit.audit {
                append_audit
                    .execute(params![
                        entry.at.0,
                        entry.kind,
                        entry.reader.as_ref().map(ReaderName::as_str),
                        entry.badge.as_deref().map(ensure_redacted),
                        entry.username.as_ref().map(Username::as_str),
                        entry
                            .device
                            .as_ref()
                            .map(|device| platform_name(device.platform)),
                        entry.device.as_ref().map(|device| device.id.as_str()),
                        entry.slot.as_ref().map(SlotLabel::as_str),
                        entry.detail,
                    ])
                    .map_err(&err)?;
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
        }
        transaction.commit().map_err(&err)
    }

    /// What the engine needs to start again.
    pub(super) fn load(&mut self) -> Result<Persisted, StoreError> {
        let Db { connection, path } = self;
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
        let operation = "list the due outbox actions";
        let err = sql_error(&self.path, operation);
        let mut statement = self
            .connection
            .prepare_cached(
                "WITH heads AS (
                     SELECT min(id) AS id FROM outbox WHERE state = 'pending'
                     GROUP BY device_platform, device_id
                 )
                 SELECT o.record, o.attempts, o.next_attempt_at, o.sent_at, o.last_error
                 FROM outbox o JOIN heads ON o.id = heads.id
                 WHERE o.next_attempt_at <= ?1
                 ORDER BY o.id
                 LIMIT ?2",
            )
            .map_err(&err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(params![now.0, limit], |row| {
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
        let Db { connection, path } = self;
        let path = path.as_path();
        let err = sql_error(path, "write local badges");
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let mut n_written = 0;
        {
            let mut upsert = transaction
                .prepare_cached(
                    "INSERT INTO badges (number, username, display_name, groups, enroller,
                                         source, approved_by, added_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (number) DO UPDATE SET
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
                        badge.number.expose(),
                        badge.user.username.as_str(),
                        badge.user.display_name,
                        groups,
                        badge.user.enroller,
                        badge.source.as_str(),
                        badge.approved_by.as_ref().map(Username::as_str),
                        badge.added_at.0,
                    ])
                    .map_err(&err)?;
            }
        }
        transaction.commit().map_err(&err)?;
        Ok(n_written)
    }

    /// Every local badge, by username then number.
    pub(super) fn list_badges(&mut self) -> Result<Vec<LocalBadge>, StoreError> {
        let err = sql_error(&self.path, "list local badges");
        let mut statement = self
            .connection
            .prepare_cached(&format!("{BADGE_SELECT} ORDER BY username, number"))
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
            .prepare_cached("DELETE FROM badges WHERE number = ?1")
            .map_err(&err)?
            .execute(params![number.expose()])
            .map_err(&err)?;
        Ok(n_removed > 0)
    }

    /// One local badge.
    pub(super) fn find_badge(
        &mut self,
        number: &BadgeNumber,
    ) -> Result<Option<LocalBadge>, StoreError> {
        let err = sql_error(&self.path, "look up a local badge");
        let row = self
            .connection
            .prepare_cached(&format!("{BADGE_SELECT} WHERE number = ?1"))
            .map_err(&err)?
            .query_row(params![number.expose()], BadgeRow::from_row)
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

const BADGE_SELECT: &str = "SELECT number, username, display_name, groups, enroller, source,
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
            kind: self.kind,
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
    number: String,
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
            number: row.get(0)?,
            username: row.get(1)?,
            display_name: row.get(2)?,
            groups: row.get(3)?,
            enroller: row.get(4)?,
            source: row.get(5)?,
            approved_by: row.get(6)?,
            added_at: row.get(7)?,
        })
    }

    fn into_badge(self, path: &Path) -> Result<LocalBadge, StoreError> {
        Ok(LocalBadge {
            number: BadgeNumber::new(self.number),
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
