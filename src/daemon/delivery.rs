//! The outbox worker: the I/O shell around [`crate::outbox::Scheduler`]. The scheduler
//! decides which committed row goes to Workspace ONE next and what each answer means
//! (per-device order including rows in flight, backoff, `Retry-After`, wipes at most
//! once); this task only feeds it the engine's committed rows, performs the calls it asks
//! for, keeps the worker's bookkeeping in the store, and hands the outcomes back to the
//! engine as [`Input::ActionSettled`] and [`Input::MdmHealth`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::checkout::{ActionId, ActionRecord, FailCause, Input, MdmAction};
use crate::daemon::engine_loop::EngineMsg;
use crate::daemon::{mono_now, now};
use crate::mdm::{ErrorClass, Mdm, MdmError, UemClient};
use crate::outbox::{Answer, Dispatch, Failure, FailureKind, Scheduler, StoredRow};
use crate::store::Store;

/// What the engine loop tells the worker.
#[derive(Debug)]
pub enum OutboxMsg {
    /// The action rows of a durable commit.
    Rows(Vec<ActionRecord>),
    /// Another call (a device lookup) got an answer from Workspace ONE: rows waiting on a
    /// backoff need not wait any longer.
    Reachable,
}

/// The worker.
pub struct OutboxTask {
    /// Where the rows' bookkeeping is kept.
    pub store: Store,
    /// Workspace ONE.
    pub mdm: Arc<UemClient>,
    /// The escalation ladder's mail server (`[lending.smtp]`).
    pub mailer: Option<Arc<crate::mail::Mailer>>,
    /// The engine's inbox.
    pub engine: mpsc::Sender<EngineMsg>,
    /// The action rows of each durable commit, and news of Workspace ONE, from the
    /// engine loop.
    pub committed: mpsc::UnboundedReceiver<OutboxMsg>,
    /// Rows in flight at once.
    pub concurrency: usize,
    /// Stops the worker.
    pub cancel: CancellationToken,
}

impl OutboxTask {
    /// Runs until cancelled.
    pub async fn run(mut self) {
        let mut scheduler = Scheduler::new(self.concurrency);
        match self.store.pending_outbox().await {
            Ok(rows) => scheduler.restore(
                rows.into_iter()
                    .map(|row| StoredRow {
                        record: row.record,
                        attempts: row.attempts,
                        sent_at: row.sent_at,
                    })
                    .collect(),
                mono_now(),
            ),
            Err(err) => {
                tracing::error!(cause = %err, "cannot read the outbox; new work is still sent")
            }
        }
        let mut in_flight: JoinSet<(ActionId, Answer)> = JoinSet::new();
        loop {
            for dispatch in scheduler.poll(mono_now()) {
                let id = dispatch.id();
                if let Dispatch::Send {
                    mark_sent: true, ..
                } = &dispatch
                {
                    let at = now();
                    if let Err(err) = self.store.mark_sent(id, at).await {
                        let failure = Failure {
                            kind: FailureKind::Transient {
                                retry_after_ms: Some(5_000),
                            },
                            message: format!(
                                "cannot record the wipe as sent, so it was not sent: {err}"
                            ),
                            cause: FailCause::Other,
                        };
                        self.settle(&mut scheduler, id, Answer::Failed(failure))
                            .await;
                        continue;
                    }
                    scheduler.marked_sent(id, at);
                }
                let mdm = Arc::clone(&self.mdm);
                let mailer = self.mailer.clone();
                in_flight
                    .spawn(async move { (id, perform(&mdm, mailer.as_deref(), dispatch).await) });
            }
            let wait = scheduler
                .next_wake()
                .map(|at| Duration::from_millis(at.millis_since(mono_now()) as u64))
                .unwrap_or(Duration::from_secs(30))
                .clamp(Duration::from_millis(5), Duration::from_secs(30));
            tokio::select! {
                () = self.cancel.cancelled() => break,
                message = self.committed.recv() => match message {
                    Some(OutboxMsg::Rows(rows)) => scheduler.apply(&rows, mono_now()),
                    Some(OutboxMsg::Reachable) => scheduler.answered(mono_now()),
                    None => break,
                },
                () = tokio::time::sleep(wait) => {}
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                    let Ok((id, answer)) = joined else { continue };
                    self.settle(&mut scheduler, id, answer).await;
                }
            }
        }
        in_flight.abort_all();
    }

    /// Hands an answer to the scheduler, records the attempt and tells the engine.
    async fn settle(&self, scheduler: &mut Scheduler, id: ActionId, answer: Answer) {
        let Some(settlement) = scheduler.complete(id, mono_now(), answer) else {
            return;
        };
        if let Some(retry_at) = settlement.retry_at {
            let wall = now().plus_millis(retry_at.millis_since(mono_now()));
            let message = match &settlement.outcome {
                crate::checkout::ActionOutcome::Retrying { message, .. } => Some(message.clone()),
                _ => None,
            };
            if let Err(err) = self
                .store
                .record_attempt(id, settlement.attempts, wall, message)
                .await
            {
                tracing::error!(cause = %err, action = id.0, "cannot record an outbox attempt");
            }
        }
        let _ = self
            .engine
            .send(EngineMsg::Input(Input::ActionSettled {
                action: id,
                outcome: settlement.outcome,
            }))
            .await;
        let _ = self
            .engine
            .send(EngineMsg::Input(Input::MdmHealth {
                reachable: scheduler.reachable().unwrap_or(true),
                waiting: scheduler.waiting(),
                last_error: scheduler.last_error().map(str::to_string),
            }))
            .await;
    }
}

/// Performs one dispatch against Workspace ONE (or the mail server, for an e-mail).
async fn perform(
    mdm: &UemClient,
    mailer: Option<&crate::mail::Mailer>,
    dispatch: Dispatch,
) -> Answer {
    if let Dispatch::Send {
        id,
        action: MdmAction::Email { to, subject, body },
        ..
    } = &dispatch
    {
        return send_mail(mailer, *id, to, subject, body).await;
    }
    match dispatch {
        Dispatch::Verify { device, .. } => match mdm.wipe_pending(&device).await {
            Ok(true) => Answer::Pending,
            Ok(false) => Answer::NotPending,
            Err(err) => Answer::Failed(failure(err)),
        },
        Dispatch::Send {
            id, device, action, ..
        } => {
            let started = std::time::Instant::now();
            let result = mdm.perform(&device, &action).await;
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
            tracing::debug!(action = id.0, device = %device, elapsed_ms = started.elapsed().as_millis() as u64, ok = result.is_ok(), "outbox action attempted");
            match result {
                Ok(()) => Answer::Done,
                Err(err) => Answer::Failed(failure(err)),
            }
        }
    }
}

/// Sends an e-mail row.
async fn send_mail(
    mailer: Option<&crate::mail::Mailer>,
    id: ActionId,
    to: &[String],
    subject: &str,
    body: &str,
) -> Answer {
    let Some(mailer) = mailer else {
        return Answer::Failed(Failure {
            kind: FailureKind::Rejected,
            message: "no [lending.smtp] section: the e-mail cannot be sent".into(),
            cause: FailCause::Other,
        });
    };
    match mailer
        .send(&format!("action-{}", id.0), to, subject, body)
        .await
    {
        Ok(()) => {
            tracing::info!(action = id.0, "overdue e-mail sent");
            Answer::Done
        }
        Err(err) => Answer::Failed(Failure {
            kind: if err.is_transient() {
                FailureKind::Transient {
                    retry_after_ms: None,
                }
            } else {
                FailureKind::Rejected
            },
            message: err.to_string(),
            cause: FailCause::Other,
        }),
    }
}

/// What a failed call means for the scheduler.
pub fn failure(err: MdmError) -> Failure {
    let cause = match &err {
        MdmError::NoSuchUser { .. } => FailCause::UnknownUser,
        MdmError::AmbiguousUser { .. } => FailCause::AmbiguousUser,
        MdmError::DeviceNotFound { .. } => FailCause::UnknownDevice,
        _ => FailCause::Other,
    };
    let kind = match err.class() {
        ErrorClass::Transient { retry_after } => FailureKind::Transient {
            retry_after_ms: retry_after.map(|wait| wait.as_millis() as i64),
        },
        ErrorClass::Rejected => FailureKind::Rejected,
        ErrorClass::Unauthorized => FailureKind::Unauthorized,
    };
    Failure {
        kind,
        message: err.to_string(),
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classed_for_the_scheduler() {
        let timeout = MdmError::Timeout {
            operation: "wipe check".into(),
        };
        assert_eq!(
            failure(timeout).kind,
            FailureKind::Transient {
                retry_after_ms: None
            }
        );
        let limited = MdmError::RateLimited {
            operation: "assign".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            failure(limited).kind,
            FailureKind::Transient {
                retry_after_ms: Some(7_000)
            }
        );
        let nobody = MdmError::NoSuchUser {
            username: crate::domain::Username::new("bob"),
        };
        let nobody = failure(nobody);
        assert_eq!(nobody.kind, FailureKind::Rejected);
        assert_eq!(nobody.cause, FailCause::UnknownUser);
        assert!(!nobody.message.contains("Username("), "{}", nobody.message);
    }
}
