//! The fleet publisher's statements: audit lines after a cursor, the durable cursors and
//! the admin requests already carried out (tables of schema version 2).

use rusqlite::{params, OptionalExtension};

use super::{sql_error, AuditRow, Db};
use crate::store::{SequencedAudit, StoreError};

impl Db {
    /// Audit lines with `seq > after`, oldest first, at most `limit`.
    pub(in crate::store) fn audit_after(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SequencedAudit>, StoreError> {
        let err = sql_error(&self.path, "read the audit log for the fleet");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT seq, at, kind, reader, badge, username, device_platform, device_id,
                        slot, detail
                 FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(&err)?;
        let rows = statement
            .query_map(params![after, limit], AuditRow::from_row)
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        rows.into_iter()
            .map(|row| {
                let seq = row.seq;
                Ok(SequencedAudit {
                    seq,
                    entry: row.into_entry(&self.path)?,
                })
            })
            .collect()
    }

    /// A fleet cursor; 0 when the stream was never published.
    pub(in crate::store) fn fleet_cursor(&mut self, stream: &str) -> Result<i64, StoreError> {
        let err = sql_error(&self.path, "read the fleet cursor");
        self.connection
            .query_row(
                "SELECT seq FROM fleet_cursor WHERE stream = ?1",
                params![stream],
                |row| row.get(0),
            )
            .optional()
            .map(|seq| seq.unwrap_or(0))
            .map_err(&err)
    }

    /// Moves a fleet cursor forward (never back: an older value is ignored).
    pub(in crate::store) fn set_fleet_cursor(
        &mut self,
        stream: &str,
        seq: i64,
    ) -> Result<(), StoreError> {
        let err = sql_error(&self.path, "write the fleet cursor");
        self.connection
            .execute(
                "INSERT INTO fleet_cursor (stream, seq) VALUES (?1, ?2)
                 ON CONFLICT (stream) DO UPDATE SET seq = max(seq, excluded.seq)",
                params![stream, seq],
            )
            .map_err(&err)?;
        Ok(())
    }

    /// Records that a console admin request was handed to the engine; `false` when it
    /// already had been.
    pub(in crate::store) fn mark_fleet_admin_done(
        &mut self,
        request_id: i64,
        at: i64,
    ) -> Result<bool, StoreError> {
        let err = sql_error(&self.path, "record a fleet admin request");
        let inserted = self
            .connection
            .execute(
                "INSERT INTO fleet_admin_done (request_id, at) VALUES (?1, ?2)
                 ON CONFLICT (request_id) DO NOTHING",
                params![request_id, at],
            )
            .map_err(&err)?;
        Ok(inserted == 1)
    }
}
