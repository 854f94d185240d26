//! The outbox driver: the one file that decides, for the simulator, which outbox rows
//! go to Workspace ONE and what an answer does to them.
//!
//! It mirrors `daemon/delivery.rs` decision for decision, on the real store queries
//! (`due_actions`, `mark_sent`, `record_attempt`, `next_due_at`, `pending_count`) and
//! the daemon's own `backoff`: at most `concurrency` rows in flight; per device only
//! the store's lowest pending row, skipping rows in flight (`busy`) or already
//! answered in this process (`reported`); a wipe is marked sent before it leaves and,
//! once marked, is never sent again (Workspace ONE is asked whether it is pending);
//! transient failures back off per row, a `Retry-After` or a refused credential
//! pauses every row. Times are the station's wall clock, as in the daemon.
//!
//! When the pure `crate::outbox::Scheduler` lands, this file becomes the adapter that
//! runs it: `poll` asks it what to send, `settle` tells it what came back.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::checkout::{ActionId, ActionOutcome, Input, MdmAction};
use crate::daemon::delivery::backoff;
use crate::domain::{DeviceKey, Timestamp};
use crate::mdm::{ErrorClass, MdmError};
use crate::store::{BlockingStore, StoreError};

/// `delivery.rs`: how long to wait after credentials were refused.
const UNAUTHORIZED_RETRY: Duration = Duration::from_secs(300);

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

/// One station's outbox worker, minus the I/O.
#[derive(Debug)]
pub struct OutboxDriver {
    concurrency: usize,
    busy: BTreeSet<ActionId>,
    reported: BTreeSet<ActionId>,
    paused_until: Option<Timestamp>,
    last_error: Option<String>,
}

/// What one attempt came to (`delivery.rs`'s `Attempt`).
enum Attempt {
    Done,
    Failed(String),
    Retry {
        message: String,
        delay: Duration,
        pause_all: bool,
        unreachable: bool,
    },
}

impl OutboxDriver {
    /// A fresh worker (also after a restart: nothing of it survives a kill).
    pub fn new(concurrency: usize) -> OutboxDriver {
        OutboxDriver {
            concurrency,
            busy: BTreeSet::new(),
            reported: BTreeSet::new(),
            paused_until: None,
            last_error: None,
        }
    }

    /// The rows to send now. Wipes are marked sent in the store first.
    pub fn poll(
        &mut self,
        store: &mut BlockingStore,
        now: Timestamp,
    ) -> Result<Vec<Send>, StoreError> {
        let paused = self.paused_until.is_some_and(|until| until > now);
        let mut sends = Vec::new();
        if paused || self.busy.len() >= self.concurrency {
            return Ok(sends);
        }
        for row in store.due_actions(now, self.concurrency * 2)? {
            let id = row.record.id;
            if self.busy.contains(&id)
                || self.reported.contains(&id)
                || self.busy.len() >= self.concurrency
            {
                continue;
            }
            self.busy.insert(id);
            let attempts = row.attempts + 1;
            let device = row.record.device.clone();
            if let MdmAction::Command { command } = &row.record.action {
                if !command.is_idempotent() {
                    if row.sent_at.is_some() {
                        sends.push(Send::WipeCheck {
                            id,
                            device,
                            attempts,
                        });
                        continue;
                    }
                    store.mark_sent(id, now)?;
                }
            }
            sends.push(Send::Perform {
                id,
                device,
                action: row.record.action,
                attempts,
            });
        }
        Ok(sends)
    }

    /// The answer to a [`Send::Perform`]: the inputs the daemon would give the engine.
    pub fn settle_perform(
        &mut self,
        store: &mut BlockingStore,
        now: Timestamp,
        id: ActionId,
        attempts: u32,
        result: Result<(), MdmError>,
    ) -> Result<Vec<Input>, StoreError> {
        let attempt = match result {
            Ok(()) => Attempt::Done,
            Err(err) => classify(err, attempts),
        };
        self.settle(store, now, id, attempts, attempt)
    }

    /// The answer to a [`Send::WipeCheck`].
    pub fn settle_wipe_check(
        &mut self,
        store: &mut BlockingStore,
        now: Timestamp,
        id: ActionId,
        attempts: u32,
        result: Result<bool, MdmError>,
    ) -> Result<Vec<Input>, StoreError> {
        let attempt = match result {
            Ok(true) => Attempt::Done,
            Ok(false) => Attempt::Failed(
                "the wipe may have been sent before a restart and Workspace ONE shows no wipe pending; check the device in the console, it was not sent again"
                    .into(),
            ),
            Err(err) => classify(err, attempts),
        };
        self.settle(store, now, id, attempts, attempt)
    }

    /// When the worker would look at the outbox again unprompted (`next_wait`).
    pub fn next_wake(
        &self,
        store: &mut BlockingStore,
        now: Timestamp,
    ) -> Result<Timestamp, StoreError> {
        let until_due = match store.next_due_at()? {
            Some(at) => at.millis_since(now),
            None => 30_000,
        };
        let until_unpaused = self
            .paused_until
            .map(|until| until.millis_since(now))
            .unwrap_or_default();
        Ok(now.plus_millis(until_due.max(until_unpaused).clamp(20, 30_000)))
    }

    /// Rows in flight.
    pub fn in_flight(&self) -> usize {
        self.busy.len()
    }

    fn settle(
        &mut self,
        store: &mut BlockingStore,
        now: Timestamp,
        id: ActionId,
        attempts: u32,
        attempt: Attempt,
    ) -> Result<Vec<Input>, StoreError> {
        self.busy.remove(&id);
        let (outcome, reachable) = match attempt {
            Attempt::Done => {
                self.reported.insert(id);
                (ActionOutcome::Done, true)
            }
            Attempt::Failed(message) => {
                self.reported.insert(id);
                self.last_error = Some(message.clone());
                (ActionOutcome::Failed { message }, true)
            }
            Attempt::Retry {
                message,
                delay,
                pause_all,
                unreachable,
            } => {
                self.last_error = Some(message.clone());
                let next = now.plus_millis(delay.as_millis() as i64);
                if pause_all {
                    self.paused_until = Some(self.paused_until.map_or(next, |p| p.max(next)));
                }
                match store.record_attempt(id, attempts, next, Some(&message)) {
                    Ok(()) | Err(StoreError::UnknownAction { .. }) => {}
                    Err(other) => return Err(other),
                }
                (ActionOutcome::Retrying { attempts, message }, !unreachable)
            }
        };
        let waiting = store.pending_count()?;
        Ok(vec![
            Input::ActionSettled {
                action: id,
                outcome,
            },
            Input::MdmHealth {
                reachable,
                waiting,
                last_error: self.last_error.clone(),
            },
        ])
    }
}

/// `delivery.rs`'s `classify`.
fn classify(err: MdmError, attempts: u32) -> Attempt {
    let message = err.to_string();
    match err.class() {
        ErrorClass::Transient { retry_after } => Attempt::Retry {
            message,
            delay: backoff(attempts, retry_after),
            pause_all: retry_after.is_some(),
            unreachable: true,
        },
        ErrorClass::Rejected => Attempt::Failed(message),
        ErrorClass::Unauthorized => Attempt::Retry {
            message,
            delay: UNAUTHORIZED_RETRY,
            pause_all: true,
            unreachable: true,
        },
    }
}
