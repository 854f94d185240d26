//! The outbox worker: due outbox rows go to Workspace ONE, outcomes come back to the
//! engine as [`Input::ActionSettled`].
//!
//! Rows of one device run in order (the store hands out only each device's oldest
//! pending row); rows of different devices run concurrently up to `uem.concurrency`.
//! Transient failures are retried with capped exponential backoff, honouring
//! `Retry-After` for every row at once; refusals fail the row. A non-idempotent command
//! (a wipe) is marked sent durably before it leaves, and after a crash it is never sent
//! again: Workspace ONE is asked whether the wipe is pending instead.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checkout::{ActionId, ActionOutcome, Input, MdmAction};
use crate::daemon::engine_loop::EngineMsg;
use crate::daemon::now;
use crate::domain::Timestamp;
use crate::mdm::{ErrorClass, Mdm, UemClient};
use crate::store::{OutboxRow, Store};

/// The delay before attempt `attempts + 1`, after `attempts` failures: 2 s doubling to a
/// 5-minute cap, or what the server asked for (`Retry-After`, at most an hour).
pub fn backoff(attempts: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(asked) = retry_after {
        return asked
            .min(Duration::from_secs(3600))
            .max(Duration::from_millis(100));
    }
    let exponent = attempts.saturating_sub(1).min(10);
    Duration::from_secs(2u64.saturating_mul(1 << exponent)).min(Duration::from_secs(300))
}

/// How long to wait before retrying after credentials were refused: long enough not to
/// lock the API account, short enough to pick up a fixed secret.
const UNAUTHORIZED_RETRY: Duration = Duration::from_secs(300);

/// What one attempt came to.
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

/// The worker.
pub struct OutboxTask {
    /// Where the rows are.
    pub store: Store,
    /// Workspace ONE.
    pub mdm: Arc<UemClient>,
    /// The engine's inbox.
    pub engine: mpsc::Sender<EngineMsg>,
    /// Woken when the engine commits new work.
    pub wake: Arc<Notify>,
    /// Rows in flight at once.
    pub concurrency: usize,
    /// Stops the worker.
    pub cancel: CancellationToken,
}

impl OutboxTask {
    /// Runs until cancelled.
    pub async fn run(self) {
        let mut in_flight: JoinSet<(ActionId, Attempt, u32)> = JoinSet::new();
        let mut busy: HashSet<ActionId> = HashSet::new();
        // Rows reported to the engine but maybe not yet committed as done: never resend
        // them from this process (after a restart the store is the truth).
        let mut reported: HashSet<ActionId> = HashSet::new();
        let mut paused_until: Option<Timestamp> = None;
        let mut last_error: Option<String> = None;
        loop {
            let now_ts = now();
            let paused = paused_until.is_some_and(|until| until > now_ts);
            if !paused && in_flight.len() < self.concurrency {
                match self.store.due_actions(now_ts, self.concurrency * 2).await {
                    Ok(rows) => {
                        for row in rows {
                            let id = row.record.id;
                            if busy.contains(&id)
                                || reported.contains(&id)
                                || in_flight.len() >= self.concurrency
                            {
                                continue;
                            }
                            busy.insert(id);
                            let mdm = Arc::clone(&self.mdm);
                            let store = self.store.clone();
                            in_flight.spawn(async move {
                                let attempts = row.attempts + 1;
                                (id, attempt(&mdm, &store, row).await, attempts)
                            });
                        }
                    }
                    Err(err) => tracing::error!(cause = %err, "cannot read the outbox"),
                }
            }
            let wait = self.next_wait(paused_until).await;
            tokio::select! {
                () = self.cancel.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                    let Ok((id, outcome, attempts)) = joined else { continue };
                    busy.remove(&id);
                    let (settled, reachable) = match outcome {
                        Attempt::Done => {
                            reported.insert(id);
                            (ActionOutcome::Done, true)
                        }
                        Attempt::Failed(message) => {
                            reported.insert(id);
                            last_error = Some(message.clone());
                            (ActionOutcome::Failed { message }, true)
                        }
                        Attempt::Retry { message, delay, pause_all, unreachable } => {
                            last_error = Some(message.clone());
                            let next = now().plus_millis(delay.as_millis() as i64);
                            if pause_all {
                                paused_until = Some(paused_until.map_or(next, |p| p.max(next)));
                            }
                            if let Err(err) = self.store.record_attempt(id, attempts, next, Some(message.clone())).await {
                                tracing::error!(cause = %err, action = id.0, "cannot record an outbox attempt");
                            }
                            (ActionOutcome::Retrying { attempts, message }, !unreachable)
                        }
                    };
                    let _ = self.engine.send(EngineMsg::Input(Input::ActionSettled { action: id, outcome: settled })).await;
                    let waiting = self.store.pending_count().await.unwrap_or(0);
                    let _ = self
                        .engine
                        .send(EngineMsg::Input(Input::MdmHealth { reachable, waiting, last_error: last_error.clone() }))
                        .await;
                    if reported.len() > 10_000 {
                        reported.clear();
                    }
                }
            }
        }
        in_flight.abort_all();
    }

    async fn next_wait(&self, paused_until: Option<Timestamp>) -> Duration {
        let now_ts = now();
        let until_due = match self.store.next_due_at().await {
            Ok(Some(at)) => Duration::from_millis(at.millis_since(now_ts) as u64),
            _ => Duration::from_secs(30),
        };
        let until_unpaused = paused_until
            .map(|until| Duration::from_millis(until.millis_since(now_ts) as u64))
            .unwrap_or_default();
        until_due
            .max(until_unpaused)
            .clamp(Duration::from_millis(20), Duration::from_secs(30))
    }
}

async fn attempt(mdm: &UemClient, store: &Store, row: OutboxRow) -> Attempt {
    let record = &row.record;
    if let MdmAction::Command { command } = &record.action {
        if !command.is_idempotent() {
            if row.sent_at.is_some() {
                // Sent before a crash or a lost answer: never send a wipe twice.
                return match mdm.wipe_pending(&record.device).await {
                    Ok(true) => Attempt::Done,
                    Ok(false) => Attempt::Failed(format!(
                        "{} may have been sent before a restart and Workspace ONE shows no wipe pending; check the device in the console, it was not sent again",
                        command.api_name()
                    )),
                    Err(err) => classify(err, row.attempts + 1),
                };
            }
            if let Err(err) = store.mark_sent(record.id, now()).await {
                return Attempt::Retry {
                    message: format!("cannot record the wipe as sent, not sending it: {err}"),
                    delay: Duration::from_secs(5),
                    pause_all: false,
                    unreachable: false,
                };
            }
        }
    }
    let started = std::time::Instant::now();
    let result = mdm.perform(&record.device, &record.action).await;
    crate::metrics::mdm_latency(
        started.elapsed().as_secs_f64(),
        match &result {
            Ok(()) => "ok",
            Err(err) => match err.class() {
                ErrorClass::Transient { .. } => "transient",
                ErrorClass::Rejected => "rejected",
                ErrorClass::Unauthorized => "unauthorized",
            },
        },
    );
    tracing::debug!(action = record.id.0, device = %record.device, elapsed_ms = started.elapsed().as_millis() as u64, ok = result.is_ok(), "outbox action attempted");
    match result {
        Ok(()) => Attempt::Done,
        Err(err) => classify(err, row.attempts + 1),
    }
}

/// What a failed call means for the row, after `attempts` attempts (this one included):
/// the retry delay is decided here, for every call the worker makes.
fn classify(err: crate::mdm::MdmError, attempts: u32) -> Attempt {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transient_failure_backs_off() {
        // Also the wipe re-check after a restart: a timeout there must not retry at once.
        let timeout = crate::mdm::MdmError::Timeout {
            operation: "wipe check".into(),
        };
        match classify(timeout, 3) {
            Attempt::Retry {
                delay, pause_all, ..
            } => {
                assert_eq!(delay, Duration::from_secs(8));
                assert!(!pause_all);
            }
            _ => panic!("a timeout is transient"),
        }
        let limited = crate::mdm::MdmError::RateLimited {
            operation: "assign".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        match classify(limited, 1) {
            Attempt::Retry {
                delay, pause_all, ..
            } => {
                assert_eq!(delay, Duration::from_secs(7));
                assert!(pause_all, "Retry-After pauses every row");
            }
            _ => panic!("a 429 is transient"),
        }
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_honours_retry_after() {
        assert_eq!(backoff(1, None), Duration::from_secs(2));
        assert_eq!(backoff(2, None), Duration::from_secs(4));
        assert_eq!(backoff(5, None), Duration::from_secs(32));
        assert_eq!(backoff(30, None), Duration::from_secs(300));
        assert_eq!(
            backoff(3, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            backoff(3, Some(Duration::from_secs(86_400))),
            Duration::from_secs(3600)
        );
    }
}
