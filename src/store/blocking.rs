//! The store's queries on the caller's own thread, for single-threaded callers that must
//! stay deterministic (the station simulator, `crate::sim`).
//!
//! [`BlockingStore`] runs exactly the statements [`crate::store::Store`] runs (the same
//! `Db`), without the store thread and its channel. The daemon keeps using `Store`.

use std::path::Path;

use crate::checkout::{ActionId, AuditEntry, Commit, Persisted};
use crate::domain::Timestamp;
use crate::store::db::Db;
use crate::store::{schema, OutboxRow, StoreError};

/// How hard a [`BlockingStore`] pushes its writes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`, as the daemon runs.
    Full,
    /// `synchronous=OFF`: a commit survives a killed process (the OS keeps the page
    /// cache) but not a power cut. For the simulator, which models kill -9 by reopening
    /// the file.
    ProcessCrashOnly,
}

/// A store used from one thread, without a store thread.
pub struct BlockingStore {
    db: Db,
}

impl std::fmt::Debug for BlockingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingStore").finish_non_exhaustive()
    }
}

impl BlockingStore {
    /// Opens (creating and migrating) the store at `path`, like [`crate::store::Store::open`].
    pub fn open(path: &Path, durability: Durability) -> Result<BlockingStore, StoreError> {
        let (connection, key) = schema::open(path)?;
        if durability == Durability::ProcessCrashOnly {
            connection
                .pragma_update(None, "synchronous", "OFF")
                .map_err(|source| StoreError::Open {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        Ok(BlockingStore {
            db: Db::new(connection, path.to_path_buf(), key),
        })
    }

    /// See [`crate::store::Store::commit`].
    pub fn commit(&mut self, commit: &Commit) -> Result<(), StoreError> {
        self.db.commit(commit)
    }

    /// See [`crate::store::Store::pending_outbox`].
    pub fn pending_outbox(&mut self) -> Result<Vec<crate::store::OutboxRow>, StoreError> {
        self.db.pending_outbox()
    }

    /// See [`crate::store::Store::load`].
    pub fn load(&mut self) -> Result<Persisted, StoreError> {
        self.db.load()
    }

    /// See [`crate::store::Store::due_actions`].
    pub fn due_actions(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.db.due_actions(now, limit)
    }

    /// See [`crate::store::Store::next_due_at`].
    pub fn next_due_at(&mut self) -> Result<Option<Timestamp>, StoreError> {
        self.db.next_due_at()
    }

    /// See [`crate::store::Store::pending_count`].
    pub fn pending_count(&mut self) -> Result<u32, StoreError> {
        self.db.pending_count()
    }

    /// See [`crate::store::Store::record_attempt`].
    pub fn record_attempt(
        &mut self,
        id: ActionId,
        attempts: u32,
        next_attempt_at: Timestamp,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.db
            .record_attempt(id, attempts, next_attempt_at, last_error)
    }

    /// See [`crate::store::Store::mark_sent`].
    pub fn mark_sent(&mut self, id: ActionId, at: Timestamp) -> Result<(), StoreError> {
        self.db.mark_sent(id, at)
    }

    /// See [`crate::store::Store::recent_audit`].
    pub fn recent_audit(&mut self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.db.recent_audit(limit)
    }

    /// See [`crate::store::Store::adopt_mark`]: refuses a store that is behind the
    /// continuity mark beside it (lost WAL, old copy) or another one (emptied, replaced).
    pub fn adopt_mark(&mut self, mark: std::path::PathBuf, accept: bool) -> Result<(), StoreError> {
        self.db.adopt_mark(mark, accept)
    }

    /// How many lines the audit log holds.
    pub fn audit_len(&mut self) -> Result<u64, StoreError> {
        self.db.audit_len()
    }

    /// Closes the file (checkpointing the WAL).
    pub fn close(self) -> Result<(), StoreError> {
        self.db.close()
    }
}
