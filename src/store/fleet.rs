//! What the fleet publisher asks of the store: audit lines by sequence, its durable
//! cursors, and the console admin requests already carried out.

use crate::checkout::AuditEntry;
use crate::domain::Timestamp;
use crate::store::{Store, StoreError};

/// An audit line with its sequence number (the audit table's `seq`, gap-free and
/// increasing in commit order: one connection writes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencedAudit {
    /// The line's sequence number.
    pub seq: i64,
    /// The line.
    pub entry: AuditEntry,
}

impl Store {
    /// Audit lines after sequence `after`, oldest first, at most `limit`.
    pub async fn audit_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SequencedAudit>, StoreError> {
        self.call(move |db| db.audit_after(after, limit)).await
    }

    /// The durable cursor of a fleet stream (0 when never published).
    pub async fn fleet_cursor(&self, stream: &'static str) -> Result<i64, StoreError> {
        self.call(move |db| db.fleet_cursor(stream)).await
    }

    /// Moves a fleet cursor forward; durable when it returns.
    pub async fn set_fleet_cursor(&self, stream: &'static str, seq: i64) -> Result<(), StoreError> {
        self.call(move |db| db.set_fleet_cursor(stream, seq)).await
    }

    /// Records, durably, that console admin request `request_id` was handed to the
    /// engine. `false` when it already was (it must not be carried out again).
    pub async fn mark_fleet_admin_done(
        &self,
        request_id: i64,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.call(move |db| db.mark_fleet_admin_done(request_id, at.0))
            .await
    }
}
