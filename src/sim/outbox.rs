//! The outbox driver: the simulator's I/O shell around the real, pure
//! [`crate::outbox::Scheduler`] — the same scheduler the daemon's worker
//! (`daemon/delivery.rs`) runs. It feeds the scheduler the store's pending rows, keeps
//! the worker's bookkeeping in the real store (`mark_sent`, `record_attempt`) and turns
//! Workspace ONE's answers into the inputs the daemon would give the engine.
//!
//! The daemon hands the scheduler each durable commit's rows; the simulator reads the
//! store's pending rows at each poll instead, which comes to the same: a row the engine
//! cancelled, failed or settled is no longer pending, and leaves the queue (once its
//! answer is in, if it is in flight).

use crate::checkout::{ActionId, ActionOutcome, ActionState, Input, MdmAction, Mono};
use crate::daemon::delivery::failure;
use crate::domain::{DeviceKey, Timestamp};
use crate::mdm::MdmError;
use crate::outbox::{Answer, Dispatch, Scheduler, StoredRow};
use crate::store::{BlockingStore, StoreError};

/// A request the driver wants sent to Workspace ONE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Send {
    /// Perform the row's action.
    Perform {
        /// The row.
        id: ActionId,
        /// The device.
        device: DeviceKey,
        /// What to do.
        action: MdmAction,
        /// This attempt's number.
        attempts: u32,
    },
    /// The row is a wipe already marked sent: ask whether it is pending instead.
    WipeCheck {
        /// The row.
        id: ActionId,
        /// The device.
        device: DeviceKey,
        /// This attempt's number.
        attempts: u32,
    },
}

/// One station's outbox worker, minus the network.
#[derive(Debug)]
pub struct OutboxDriver {
    scheduler: Scheduler,
    /// False until the store's rows were loaded (a fresh process).
    started: bool,
}

impl OutboxDriver {
    /// A fresh worker (also after a restart: nothing of it survives a kill).
    pub fn new(concurrency: usize) -> OutboxDriver {
        OutboxDriver {
            scheduler: Scheduler::new(concurrency),
            started: false,
        }
    }

    /// Brings the scheduler up to date with the store's pending rows.
    fn sync(&mut self, store: &mut BlockingStore, mono: Mono) -> Result<(), StoreError> {
        let rows = store.pending_outbox()?;
        if !self.started {
            self.started = true;
            self.scheduler.restore(
                rows.into_iter()
                    .map(|row| StoredRow {
                        record: row.record,
                        attempts: row.attempts,
                        sent_at: row.sent_at,
                    })
                    .collect(),
                mono,
            );
            return Ok(());
        }
        let pending: Vec<_> = rows.into_iter().map(|row| row.record).collect();
        let gone: Vec<_> = self
            .scheduler
            .queued()
            .into_iter()
            .filter(|(id, _)| !pending.iter().any(|r| r.id == *id))
            .map(|(_, mut record)| {
                record.state = ActionState::Cancelled;
                record
            })
            .collect();
        self.scheduler.apply(&gone, mono);
        self.scheduler.apply(&pending, mono);
        Ok(())
    }

    /// The rows to send now. Wipes are marked sent in the store first.
    pub fn poll(
        &mut self,
        store: &mut BlockingStore,
        now: Timestamp,
        mono: Mono,
    ) -> Result<Vec<Send>, StoreError> {
        self.sync(store, mono)?;
        let mut sends = Vec::new();
        for dispatch in self.scheduler.poll(mono) {
            let attempts = self.scheduler.attempts(dispatch.id()) + 1;
            match dispatch {
                Dispatch::Send {
                    id,
                    device,
                    action,
                    mark_sent,
                } => {
                    if mark_sent {
                        store.mark_sent(id, now)?;
                        self.scheduler.marked_sent(id, now);
                    }
                    sends.push(Send::Perform {
                        id,
                        device,
                        action,
                        attempts,
                    });
                }
                Dispatch::Verify { id, device, .. } => sends.push(Send::WipeCheck {
                    id,
                    device,
                    attempts,
                }),
            }
        }
        Ok(sends)
    }

    /// The answer to a [`Send::Perform`]: the inputs the daemon would give the engine.
    pub fn settle_perform(
        &mut self,
        store: &mut BlockingStore,
        now: Timestamp,
        mono: Mono,
        id: ActionId,
        result: Result<(), MdmError>,
    ) -> Result<Vec<Input>, StoreError> {
        let answer = match result {
            Ok(()) => Answer::Done,
            Err(err) => Answer::Failed(failure(err)),
        };
        self.settle(store, now, mono, id, answer)
    }

    /// The answer to a [`Send::WipeCheck`].
    pub fn settle_wipe_check(
        &mut self,
        store: &mut BlockingStore,
        now: Timestamp,
        mono: Mono,
        id: ActionId,
        result: Result<bool, MdmError>,
    ) -> Result<Vec<Input>, StoreError> {
        let answer = match result {
            Ok(true) => Answer::Pending,
            Ok(false) => Answer::NotPending,
            Err(err) => Answer::Failed(failure(err)),
        };
        self.settle(store, now, mono, id, answer)
    }

    /// Another call (a device lookup) got an answer from Workspace ONE.
    pub fn answered(&mut self, mono: Mono) {
        self.scheduler.answered(mono);
    }

    /// When the worker would look at the outbox again unprompted (monotonic); a commit
    /// wakes it earlier.
    pub fn next_wake(&self, mono: Mono) -> Mono {
        self.scheduler
            .next_wake()
            .unwrap_or(mono.plus_millis(30_000))
            .max(mono.plus_millis(5))
            .min(mono.plus_millis(30_000))
    }

    /// Rows in flight.
    pub fn in_flight(&self) -> usize {
        self.scheduler.in_flight()
    }

    fn settle(
        &mut self,
        store: &mut BlockingStore,
        now: Timestamp,
        mono: Mono,
        id: ActionId,
        answer: Answer,
    ) -> Result<Vec<Input>, StoreError> {
        let Some(settlement) = self.scheduler.complete(id, mono, answer) else {
            return Ok(Vec::new());
        };
        if let (Some(retry_at), ActionOutcome::Retrying { message, .. }) =
            (settlement.retry_at, &settlement.outcome)
        {
            let wall = now.plus_millis(retry_at.millis_since(mono));
            match store.record_attempt(id, settlement.attempts, wall, Some(message)) {
                Ok(()) | Err(StoreError::UnknownAction { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(vec![
            Input::ActionSettled {
                action: id,
                outcome: settlement.outcome,
            },
            Input::MdmHealth {
                reachable: self.scheduler.reachable().unwrap_or(true),
                waiting: self.scheduler.waiting(),
                last_error: self.scheduler.last_error().map(str::to_string),
            },
        ])
    }
}
