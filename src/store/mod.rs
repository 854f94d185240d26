//! The durable store: one SQLite file in WAL mode, owned by one dedicated OS thread.
//!
//! [`Store`] is a cheap handle: each async method sends a job over a bounded channel to
//! the store thread, which runs it on its single connection and answers through a
//! oneshot. Nothing in the engine loop ever blocks on SQLite (invariant 3), and this
//! module is the only place in badgedock that contains SQL.
//!
//! Durability: `synchronous=FULL`, and every multi-row write is one transaction, so a
//! method that returned `Ok` survives a power cut and a kill -9 at any instant leaves
//! each transaction either wholly applied or not at all (invariant 1). Graceful
//! shutdown only tidies up: dropping every handle ends the thread; [`Store::close`]
//! also waits for it and closes the file.
//!
//! Several processes may open the same file (the daemon and a CLI command such as
//! `badges import`): writes take the lock up front (`BEGIN IMMEDIATE`) and wait up to
//! [`schema::BUSY_TIMEOUT`] for it.
//!
//! A future of this API that is dropped after its job was queued (a `select!` that
//! took another branch) does not cancel the job: a commit may still be applied.

mod blocking;
pub mod chain;
mod db;
mod error;
pub mod key;
pub mod retention;
pub mod schema;

pub use blocking::{BlockingStore, Durability};
pub use db::StoreIdentity;

pub use error::{io_fault, StorageFault, StoreError};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::checkout::{ActionId, ActionRecord, AuditEntry, Commit, Persisted};
use crate::domain::{BadgeNumber, Timestamp, User, Username};
use db::Db;

/// How many requests may wait for the store thread before senders wait too.
const QUEUE_DEPTH: usize = 256;

/// A handle to the store. Clone it freely; the store thread ends when the last handle
/// is dropped or [`Store::close`] is called.
#[derive(Clone)]
pub struct Store {
    sender: mpsc::Sender<Message>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// An outbox row with the worker's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The action as the engine committed it.
    pub record: ActionRecord,
    /// Attempts the worker has recorded.
    pub attempts: u32,
    /// Not to be tried before this time (the creation time until the first attempt).
    pub next_attempt_at: Timestamp,
    /// Set by [`Store::mark_sent`] before a non-idempotent command goes out: after a
    /// restart, the worker must ask Workspace ONE before sending it again.
    pub sent_at: Option<Timestamp>,
    /// The last error the worker recorded.
    pub last_error: Option<String>,
}

/// An audit row with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The sequence number.
    pub seq: i64,
    /// The row.
    pub entry: AuditEntry,
    /// Its chain hash, hex.
    pub hash: String,
}

/// Where a local badge came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadgeSource {
    /// `badgedock badges import FILE.csv`.
    Import,
    /// Enrolled at the station, approved by an enroller's badge.
    Enrolled,
}

impl BadgeSource {
    /// The stored name: `import` or `enrolled`.
    pub fn as_str(self) -> &'static str {
        match self {
            BadgeSource::Import => "import",
            BadgeSource::Enrolled => "enrolled",
        }
    }
}

/// A badge to write into the station's own table (imported or enrolled), with its user.
///
/// The number is stored only as its keyed hash (see [`key`]) with its redacted form
/// beside it; its `Debug` stays redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalBadge {
    /// The formatted badge number.
    pub number: BadgeNumber,
    /// Who it belongs to.
    pub user: User,
    /// Where it came from.
    pub source: BadgeSource,
    /// The enroller who approved it, for enrolled badges.
    pub approved_by: Option<Username>,
    /// When it was imported or enrolled.
    pub added_at: Timestamp,
}

/// A badge as the station's table holds it: the number only redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBadge {
    /// The redacted number (`…1234`), for lists.
    pub hint: String,
    /// Who it belongs to.
    pub user: User,
    /// Where it came from.
    pub source: BadgeSource,
    /// The enroller who approved it, for enrolled badges.
    pub approved_by: Option<Username>,
    /// When it was imported or enrolled.
    pub added_at: Timestamp,
}

impl Store {
    /// Opens the store at `path`, creating the file (and its parent directory) when
    /// missing and migrating its schema, then starts the store thread.
    ///
    /// This does blocking file I/O: call it at start-up or from `spawn_blocking`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let (connection, key) = schema::open(path)?;
        Store::start_thread(connection, path, key)
    }

    /// Opens an existing store for reading only, when its folder takes no writes at
    /// start (a read-only file system, a full disk); [`Store::reopen_writable`] later.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let (connection, key) = schema::open_read_only(path)?;
        Store::start_thread(connection, path, key)
    }

    fn start_thread(
        connection: rusqlite::Connection,
        path: &Path,
        key: key::BadgeKey,
    ) -> Result<Store, StoreError> {
        let path = Arc::new(path.to_path_buf());
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let db = Db::new(connection, path.as_ref().clone(), key);
        std::thread::Builder::new()
            .name("badgedock-store".to_string())
            .spawn(move || run_store_thread(db, receiver))
            .map_err(|source| StoreError::Thread {
                path: path.as_ref().clone(),
                source,
            })?;
        tracing::debug!(path = %path.display(), "store opened");
        Ok(Store { sender, path })
    }

    /// Whether this store was opened read-only and not yet reopened for writing.
    pub async fn read_only(&self) -> Result<bool, StoreError> {
        self.call(|db| Ok(db.read_only())).await
    }

    /// After [`Store::open_read_only`]: opens the file again for writing (migrating it if
    /// needed) and, for the daemon's store, checks and writes its continuity mark. Every
    /// handle then writes through the new connection. Does nothing when writable.
    pub async fn reopen_writable(&self) -> Result<(), StoreError> {
        self.call(|db| {
            if db.read_only() {
                db.reopen_writable()
            } else {
                Ok(())
            }
        })
        .await
    }

    /// Opens the station's own store as its daemon: checks it against the continuity
    /// mark beside it (refusing a store that lost its WAL, was restored from an old copy,
    /// emptied or replaced: [`StoreError::Rewound`], [`StoreError::Replaced`]) and keeps
    /// the mark current after every commit. `accept` takes the store as it is and
    /// rewrites the mark (an operator's decision).
    pub async fn adopt_mark(&self, mark: PathBuf, accept: bool) -> Result<(), StoreError> {
        self.call(move |db| db.adopt_mark(mark, accept)).await
    }

    /// This store's identity and commit count.
    pub async fn identity(&self) -> Result<StoreIdentity, StoreError> {
        self.call(|db| db.identity()).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies one engine transition in a single transaction: upserts devices and
    /// check-outs, inserts outbox rows or updates their engine-owned fields, appends the
    /// audit lines and writes the counters. Durable when it returns `Ok`; on `Err`
    /// nothing of it was written.
    pub async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        self.call(move |db| db.commit(&commit)).await
    }

    /// Writes one small row in a transaction of its own: after a storage fault, whether
    /// the disk takes writes again.
    pub async fn probe(&self, at: Timestamp) -> Result<(), StoreError> {
        self.call(move |db| db.probe(at)).await
    }

    /// Everything the engine needs to restart: all devices, the check-outs in state
    /// Reserved or Out, the outbox rows in state Pending or Failed (by id) and the
    /// counters. Read in one snapshot.
    pub async fn load(&self) -> Result<Persisted, StoreError> {
        self.call(|db| db.load()).await
    }

    /// The outbox rows to work on now: for each device only its lowest-id pending row
    /// (a device's actions run in order), and only when `next_attempt_at <= now`;
    /// ordered by id, at most `limit`.
    pub async fn due_actions(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.call(move |db| db.due_actions(now, limit)).await
    }

    /// Every pending outbox row with the worker's bookkeeping, by id: what the outbox
    /// scheduler starts from.
    pub async fn pending_outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.call(|db| db.pending_outbox()).await
    }

    /// The earliest `next_attempt_at` among each device's first pending row; `None`
    /// when nothing is pending. The worker sleeps until then (or until a commit).
    pub async fn next_due_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.call(|db| db.next_due_at()).await
    }

    /// How many outbox rows are pending.
    pub async fn pending_count(&self) -> Result<u32, StoreError> {
        self.call(|db| db.pending_count()).await
    }

    /// Records the worker's bookkeeping after an attempt. Engine commits never reset
    /// these columns (except when an operator retries a failed action).
    pub async fn record_attempt(
        &self,
        id: ActionId,
        attempts: u32,
        next_attempt_at: Timestamp,
        last_error: Option<String>,
    ) -> Result<(), StoreError> {
        self.call(move |db| db.record_attempt(id, attempts, next_attempt_at, last_error.as_deref()))
            .await
    }

    /// Durably notes that the action is about to be sent. Call it, and wait for it,
    /// before sending a non-idempotent command (a wipe).
    pub async fn mark_sent(&self, id: ActionId, at: Timestamp) -> Result<(), StoreError> {
        self.call(move |db| db.mark_sent(id, at)).await
    }

    /// The `limit` newest audit lines, newest first.
    pub async fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.call(move |db| db.recent_audit(limit)).await
    }

    /// Writes the whole audit log as CSV to `writer`, oldest first, and gives the
    /// writer back. Columns: `seq,at,kind,reader,badge,username,platform,device,slot,
    /// detail`; `at` is RFC 3339 UTC; badges stay redacted; fields are quoted as CSV
    /// requires. The store thread does the writing, so a slow writer delays other
    /// requests of this handle's process: give it a buffer or a file.
    pub async fn export_audit_csv<W: Write + Send + 'static>(
        &self,
        writer: W,
    ) -> Result<W, StoreError> {
        self.call(move |db| db.export_audit_csv(writer)).await
    }

    /// Walks the audit hash chain and reports the first break (`badgedock audit verify`).
    pub async fn verify_audit(&self) -> Result<chain::Verification, StoreError> {
        self.call(|db| db.verify_audit()).await
    }

    /// Audit retention, the one path that removes audit rows: in one transaction it
    /// checks the chain (a broken chain is kept as evidence: the inner `Err`), removes
    /// the rows older than `before` that every audit cursor has passed, and leaves the
    /// last removed row's hash as the anchor the chain goes on from.
    pub async fn prune_audit(
        &self,
        before: Timestamp,
        now: Timestamp,
    ) -> Result<Result<chain::Pruned, chain::ChainProblem>, StoreError> {
        self.call(move |db| db.prune_audit(before, now)).await
    }

    /// Up to `limit` audit rows after sequence number `after`, oldest first.
    pub async fn audit_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.call(move |db| db.audit_after(after, limit)).await
    }

    /// Every audit row stamped before `before`, oldest first (reports).
    pub async fn audit_before(&self, before: Timestamp) -> Result<Vec<AuditRecord>, StoreError> {
        self.call(move |db| db.audit_before(before)).await
    }

    /// The newest audit sequence number ever given (0 before the first row).
    pub async fn recent_audit_head(&self) -> Result<i64, StoreError> {
        self.call(|db| db.audit_head()).await
    }

    /// The last sequence number the reader `name` handled; `None` before its first.
    pub async fn audit_cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let name = name.to_string();
        self.call(move |db| db.audit_cursor(&name)).await
    }

    /// What came of fleet console request `request`, when this station carried it out
    /// (recorded in the commit that did it).
    pub async fn fleet_request_done(&self, request: i64) -> Result<Option<String>, StoreError> {
        self.call(move |db| db.fleet_request_done(request)).await
    }

    /// Durably moves the cursor `name` to `seq`.
    pub async fn set_audit_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        let name = name.to_string();
        self.call(move |db| db.set_audit_cursor(&name, seq)).await
    }

    /// Inserts or replaces local badges in one transaction; returns how many were
    /// written.
    pub async fn upsert_badges(&self, badges: Vec<LocalBadge>) -> Result<usize, StoreError> {
        self.call(move |db| db.upsert_badges(&badges)).await
    }

    /// Every local badge, by username then redacted number.
    pub async fn list_badges(&self) -> Result<Vec<StoredBadge>, StoreError> {
        self.call(|db| db.list_badges()).await
    }

    /// Removes a local badge; `false` when there was none with this number.
    pub async fn remove_badge(&self, number: &BadgeNumber) -> Result<bool, StoreError> {
        let number = number.clone();
        self.call(move |db| db.remove_badge(&number)).await
    }

    /// Looks up a local badge by its keyed hash.
    pub async fn find_badge(
        &self,
        number: &BadgeNumber,
    ) -> Result<Option<StoredBadge>, StoreError> {
        let number = number.clone();
        self.call(move |db| db.find_badge(&number)).await
    }

    /// Copies the database to `target` with SQLite's online backup API while this and
    /// other processes keep using it; `target` must not exist and is created 0600.
    /// Returns the number of pages copied.
    pub async fn backup_to(&self, target: &Path) -> Result<i32, StoreError> {
        let target = target.to_path_buf();
        self.call(move |db| db.backup_to(&target)).await
    }

    /// Stops the store thread once the requests already queued (by any handle) are
    /// done, closes the file and waits for that. Other handles get
    /// [`StoreError::Closed`] afterwards.
    pub async fn close(self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Message::Close(reply)).await.is_err() {
            // The thread is already gone: nothing left to close.
            return Ok(());
        }
        answer.await.unwrap_or(Ok(()))
    }

    /// [`Store::close`] for synchronous code. Must not be called from within an async
    /// context (it blocks the calling thread).
    pub fn close_blocking(self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.sender.blocking_send(Message::Close(reply)).is_err() {
            return Ok(());
        }
        answer.blocking_recv().unwrap_or(Ok(()))
    }

    /// Runs `job` on the store thread and waits for its answer.
    async fn call<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let message = Message::Run(Box::new(move |db: &mut Db| {
            // The caller may have gone away (a dropped future); the work is done anyway.
            let _ = reply.send(job(db));
        }));
        self.sender.send(message).await.map_err(|_| self.closed())?;
        answer.await.map_err(|_| self.closed())?
    }

    fn closed(&self) -> StoreError {
        StoreError::Closed {
            path: self.path.as_ref().clone(),
        }
    }
}

/// A request to the store thread.
enum Message {
    /// Run this on the connection.
    Run(Box<dyn FnOnce(&mut Db) + Send>),
    /// Finish what is queued, close the file and answer.
    Close(oneshot::Sender<Result<(), StoreError>>),
}

/// The store thread: runs jobs in arrival order until every handle is gone or one asks
/// to close, then closes the connection.
fn run_store_thread(mut db: Db, mut receiver: mpsc::Receiver<Message>) {
    let mut closers = Vec::new();
    while let Some(message) = receiver.blocking_recv() {
        match message {
            Message::Run(job) => job(&mut db),
            Message::Close(reply) => {
                // Stop accepting; what is already queued still runs.
                receiver.close();
                closers.push(reply);
            }
        }
    }
    let mut result = db.close();
    if let Err(error) = &result {
        tracing::warn!(cause = %error, "store closed with an error");
    }
    for closer in closers {
        let _ = closer.send(std::mem::replace(&mut result, Ok(())));
    }
}
