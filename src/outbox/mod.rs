//! The outbox scheduler: which committed action goes to Workspace ONE next, and what an
//! answer means for it. Pure and clock-free (sans-io, in the manner of quinn-proto): it
//! never sleeps, reads no clock and does no I/O. The daemon's worker
//! (`daemon::delivery`) and the station simulator (`sim`) both drive it: they feed it the
//! rows the engine commits ([`Scheduler::apply`]), ask what to send now
//! ([`Scheduler::poll`]), report each answer ([`Scheduler::complete`]) and sleep until
//! [`Scheduler::next_wake`].
//!
//! The rules, in one place:
//! - Rows of one device run one at a time, in id order. A row stays in the way while it
//!   is in flight even after the engine cancelled it: an undo never overtakes the
//!   assignment it undoes.
//! - Rows of different devices run at once, up to the concurrency. Escalation and ticket
//!   notifications (webhook, e-mail) run apart from their device's order.
//! - A transient failure retries the row with capped exponential backoff (2 s doubling to
//!   5 min); `Retry-After` is honoured for every row; refused credentials pause everything
//!   for 5 minutes. As soon as Workspace ONE answers again, every row waiting on a backoff
//!   is due at once.
//! - A refusal fails the row for good; the engine decides what that means.
//! - A non-idempotent command (a wipe) is marked sent durably before it leaves
//!   ([`Dispatch::Send`] with `mark_sent`), and is never sent a second time: a row that was
//!   marked sent (a crash, a lost answer) is checked instead ([`Dispatch::Verify`]).

use std::collections::BTreeMap;

use crate::checkout::{
    ActionId, ActionOutcome, ActionRecord, ActionState, DeviceCommand, FailCause, MdmAction, Mono,
};
use crate::domain::{DeviceKey, Timestamp};

/// Backoff after the first transient failure.
const FIRST_BACKOFF_MS: i64 = 2_000;
/// Backoff cap.
const MAX_BACKOFF_MS: i64 = 300_000;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER_MS: i64 = 3_600_000;
/// While Workspace ONE is unreachable, one row is tried at least this often whatever its
/// own backoff says, so the station learns it is back within this long (then every
/// backoff is reset: [`Scheduler::answered`]).
const PROBE_MS: i64 = 30_000;
/// How long to wait after credentials were refused: long enough not to lock the API
/// account, short enough to pick up a fixed secret.
const UNAUTHORIZED_RETRY_MS: i64 = 300_000;

/// True for a row that runs apart from its device's order: a webhook or e-mail of an
/// escalation or a repair ticket.
fn own_lane(record: &ActionRecord) -> bool {
    record.action.is_notification() && !record.purpose.is_workflow()
}

/// The delay before the next attempt after `attempts` failures: 2 s doubling to a 5-minute
/// cap, or what the server asked for (`Retry-After`, at most an hour, at least 100 ms).
pub fn backoff_ms(attempts: u32, retry_after_ms: Option<i64>) -> i64 {
    if let Some(asked) = retry_after_ms {
        return asked.clamp(100, MAX_RETRY_AFTER_MS);
    }
    let exponent = attempts.saturating_sub(1).min(10);
    FIRST_BACKOFF_MS
        .saturating_mul(1 << exponent)
        .min(MAX_BACKOFF_MS)
}

/// A row as the store keeps it, to start from after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// The action.
    pub record: ActionRecord,
    /// Attempts so far.
    pub attempts: u32,
    /// Set when a non-idempotent command was marked sent.
    pub sent_at: Option<Timestamp>,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    /// Send this action. With `mark_sent`, first record durably that it is being sent
    /// (then call [`Scheduler::marked_sent`]); if that fails, do not send it and report a
    /// transient failure.
    Send {
        /// The row.
        id: ActionId,
        /// The device.
        device: DeviceKey,
        /// What to do.
        action: MdmAction,
        /// True for a non-idempotent command.
        mark_sent: bool,
    },
    /// A non-idempotent command that may have been sent already: ask Workspace ONE
    /// whether it is pending ([`Answer::Pending`] or [`Answer::NotPending`]); never send
    /// it again.
    Verify {
        /// The row.
        id: ActionId,
        /// The device.
        device: DeviceKey,
        /// The command.
        command: DeviceCommand,
    },
}

impl Dispatch {
    /// The row this is about.
    pub fn id(&self) -> ActionId {
        match self {
            Dispatch::Send { id, .. } | Dispatch::Verify { id, .. } => *id,
        }
    }
}

/// How a failed call should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Timeouts, connection errors, 5xx, 429, HTML error pages: try again.
    Transient {
        /// `Retry-After`, when the server said.
        retry_after_ms: Option<i64>,
    },
    /// Refused for good.
    Rejected,
    /// Credentials or tenant code refused.
    Unauthorized,
}

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What to do about it.
    pub kind: FailureKind,
    /// The message, free of secrets.
    pub message: String,
    /// The kind of refusal, when known.
    pub cause: FailCause,
}

/// Workspace ONE's answer to a dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Done (sent and accepted).
    Done,
    /// [`Dispatch::Verify`]: the command is pending or done on the device.
    Pending,
    /// [`Dispatch::Verify`]: Workspace ONE shows nothing pending.
    NotPending,
    /// The call failed.
    Failed(Failure),
}

/// What an answer came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The row.
    pub id: ActionId,
    /// For the engine (which ignores rows it no longer has).
    pub outcome: ActionOutcome,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When the row is tried again (monotonic), for a retry.
    pub retry_at: Option<Mono>,
}

#[derive(Debug, Clone)]
struct Row {
    record: ActionRecord,
    attempts: u32,
    due: Mono,
    sent_at: Option<Timestamp>,
    in_flight: bool,
    /// No longer wanted, but in flight: kept until its answer so that it still blocks
    /// the device's later rows.
    cancelled: bool,
}

/// The scheduler. See the module documentation.
#[derive(Debug, Clone)]
pub struct Scheduler {
    concurrency: usize,
    rows: BTreeMap<ActionId, Row>,
    paused_until: Option<Mono>,
    paused_for_credentials: bool,
    reachable: Option<bool>,
    last_error: Option<String>,
    /// While unreachable: when a row may go as a probe, whatever its backoff.
    probe_at: Option<Mono>,
}

impl Scheduler {
    /// A scheduler running at most `concurrency` rows at once.
    pub fn new(concurrency: usize) -> Scheduler {
        Scheduler {
            concurrency: concurrency.max(1),
            rows: BTreeMap::new(),
            paused_until: None,
            paused_for_credentials: false,
            reachable: None,
            last_error: None,
            probe_at: None,
        }
    }

    /// Starts from the rows the store kept (pending ones): all due at `now`, whatever
    /// wall time they were due at before the restart.
    pub fn restore(&mut self, rows: Vec<StoredRow>, now: Mono) {
        for row in rows {
            if row.record.state != ActionState::Pending {
                continue;
            }
            self.rows.insert(
                row.record.id,
                Row {
                    record: row.record,
                    attempts: row.attempts,
                    due: now,
                    sent_at: row.sent_at,
                    in_flight: false,
                    cancelled: false,
                },
            );
        }
    }

    /// Takes the rows of a durable engine commit: new pending rows join the queue, rows
    /// the engine settled, failed or cancelled leave it (once their answer is in, if in
    /// flight).
    pub fn apply(&mut self, records: &[ActionRecord], now: Mono) {
        for record in records {
            match record.state {
                ActionState::Pending => {
                    let row = self.rows.entry(record.id).or_insert_with(|| Row {
                        record: record.clone(),
                        attempts: 0,
                        due: now,
                        sent_at: None,
                        in_flight: false,
                        cancelled: false,
                    });
                    row.record = record.clone();
                    row.cancelled = false;
                }
                ActionState::Done | ActionState::Failed | ActionState::Cancelled => {
                    match self.rows.get_mut(&record.id) {
                        Some(row) if row.in_flight => row.cancelled = true,
                        Some(_) => {
                            self.rows.remove(&record.id);
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// The rows to start now, in id order; each is in flight until [`Scheduler::complete`].
    pub fn poll(&mut self, now: Mono) -> Vec<Dispatch> {
        if self.paused_until.is_some_and(|until| until > now) {
            return Vec::new();
        }
        let mut free = self
            .concurrency
            .saturating_sub(self.rows.values().filter(|r| r.in_flight).count());
        let mut out = Vec::new();
        let probe = self.probe(now);
        for id in self.heads() {
            if free == 0 {
                break;
            }
            let Some(row) = self.rows.get_mut(&id) else {
                continue;
            };
            if row.in_flight || (row.due > now && probe != Some(id)) {
                continue;
            }
            if probe == Some(id) {
                self.probe_at = None;
            }
            row.in_flight = true;
            free -= 1;
            let device = row.record.device.clone();
            out.push(match &row.record.action {
                MdmAction::Command { command } if !command.is_idempotent() => {
                    if row.sent_at.is_some() {
                        Dispatch::Verify {
                            id,
                            device,
                            command: *command,
                        }
                    } else {
                        Dispatch::Send {
                            id,
                            device,
                            action: row.record.action.clone(),
                            mark_sent: true,
                        }
                    }
                }
                action => Dispatch::Send {
                    id,
                    device,
                    action: action.clone(),
                    mark_sent: false,
                },
            });
        }
        out
    }

    /// The row to try now as a probe of an unreachable Workspace ONE: the head row due
    /// first, once [`PROBE_MS`] passed since the last failure and nothing is in flight.
    fn probe(&self, now: Mono) -> Option<ActionId> {
        if self.reachable != Some(false) || self.probe_at.is_none_or(|at| at > now) {
            return None;
        }
        if self.rows.values().any(|r| r.in_flight) {
            return None;
        }
        self.heads()
            .into_iter()
            .filter_map(|id| self.rows.get(&id))
            .filter(|row| !own_lane(&row.record))
            .map(|row| (row.due, row.record.id))
            .min()
            .map(|(_, id)| id)
    }

    /// The first row of every device (in flight or not), by id. A notification (an
    /// escalation's or a ticket's webhook or e-mail) is its own lane: it waits for no
    /// device work and holds none back.
    fn heads(&self) -> Vec<ActionId> {
        let mut seen = std::collections::BTreeSet::new();
        self.rows
            .values()
            .filter(|row| own_lane(&row.record) || seen.insert(row.record.device.clone()))
            .map(|row| row.record.id)
            .collect()
    }

    /// The shell recorded durably that this non-idempotent row is being sent.
    pub fn marked_sent(&mut self, id: ActionId, at: Timestamp) {
        if let Some(row) = self.rows.get_mut(&id) {
            row.sent_at = Some(at);
        }
    }

    /// Workspace ONE's answer for an in-flight row.
    pub fn complete(&mut self, id: ActionId, now: Mono, answer: Answer) -> Option<Settlement> {
        let row = self.rows.get_mut(&id)?;
        row.in_flight = false;
        row.attempts = row.attempts.saturating_add(1);
        let attempts = row.attempts;
        let cancelled = row.cancelled;
        // A notification's answer comes from a webhook receiver or a mail server: it
        // tells nothing about Workspace ONE, and its failures pause nothing else.
        let from_workspace_one = !own_lane(&row.record);
        let command = match &row.record.action {
            MdmAction::Command { command } => Some(*command),
            _ => None,
        };
        let (outcome, retry_at) = match answer {
            Answer::Done | Answer::Pending => {
                if from_workspace_one {
                    self.answered(now);
                }
                (ActionOutcome::Done, None)
            }
            Answer::NotPending => {
                if from_workspace_one {
                    self.answered(now);
                }
                let name = command
                    .map(DeviceCommand::api_name)
                    .unwrap_or("the command");
                (
                    ActionOutcome::Failed {
                        message: format!(
                            "{name} may have been sent before a restart and Workspace ONE shows nothing pending; it was not sent again: check the device in the console"
                        ),
                        cause: FailCause::Other,
                    },
                    None,
                )
            }
            Answer::Failed(failure) => match failure.kind {
                FailureKind::Rejected => {
                    if from_workspace_one {
                        self.answered(now);
                    }
                    self.last_error = Some(failure.message.clone());
                    (
                        ActionOutcome::Failed {
                            message: failure.message,
                            cause: failure.cause,
                        },
                        None,
                    )
                }
                FailureKind::Transient { retry_after_ms } => {
                    let delay = backoff_ms(attempts, retry_after_ms);
                    let at = now.plus_millis(delay);
                    if from_workspace_one {
                        if retry_after_ms.is_some() {
                            self.pause(at);
                        }
                        self.unreachable(now, &failure.message);
                    }
                    (
                        ActionOutcome::Retrying {
                            attempts,
                            message: failure.message,
                        },
                        Some(at),
                    )
                }
                FailureKind::Unauthorized => {
                    let at = now.plus_millis(UNAUTHORIZED_RETRY_MS);
                    if from_workspace_one {
                        self.pause(at);
                        self.paused_for_credentials = true;
                        self.unreachable(now, &failure.message);
                    }
                    (
                        ActionOutcome::Retrying {
                            attempts,
                            message: failure.message,
                        },
                        Some(at),
                    )
                }
            },
        };
        match retry_at {
            Some(at) if !cancelled => {
                if let Some(row) = self.rows.get_mut(&id) {
                    row.due = at;
                }
            }
            _ => {
                self.rows.remove(&id);
            }
        }
        Some(Settlement {
            id,
            outcome,
            attempts,
            retry_at,
        })
    }

    /// Workspace ONE answered (an outbox call, or any other call the shell made, such as
    /// a device lookup): it is reachable, and nothing waits on a backoff any more. A pause
    /// for refused credentials ends too (they work again); a `Retry-After` pause stays.
    pub fn answered(&mut self, now: Mono) {
        if self.reachable != Some(true) {
            for row in self.rows.values_mut() {
                if !row.in_flight && row.attempts > 0 {
                    row.attempts = 0;
                    row.due = row.due.min(now);
                }
            }
            if self.paused_for_credentials {
                self.paused_until = None;
                self.paused_for_credentials = false;
            }
        }
        self.reachable = Some(true);
    }

    fn unreachable(&mut self, now: Mono, message: &str) {
        self.reachable = Some(false);
        self.probe_at = Some(now.plus_millis(PROBE_MS));
        self.last_error = Some(message.to_string());
    }

    fn pause(&mut self, until: Mono) {
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
    }

    /// When something next becomes due (monotonic); `None` when nothing waits.
    pub fn next_wake(&self) -> Option<Mono> {
        let due = self
            .heads()
            .into_iter()
            .filter_map(|id| self.rows.get(&id))
            .filter(|row| !row.in_flight)
            .map(|row| row.due)
            .min()?;
        let probe = match self.probe_at {
            Some(at)
                if self.reachable == Some(false) && !self.rows.values().any(|r| r.in_flight) =>
            {
                at
            }
            _ => due,
        };
        let due = due.min(probe);
        Some(match self.paused_until {
            Some(until) => due.max(until),
            None => due,
        })
    }

    /// The rows it holds and still wants, with their records (for a shell that learns
    /// the engine's changes by reading the store rather than from each commit).
    pub fn queued(&self) -> Vec<(ActionId, ActionRecord)> {
        self.rows
            .values()
            .filter(|r| !r.cancelled)
            .map(|r| (r.record.id, r.record.clone()))
            .collect()
    }

    /// Attempts made so far for a row (0 for an unknown one).
    pub fn attempts(&self, id: ActionId) -> u32 {
        self.rows.get(&id).map_or(0, |r| r.attempts)
    }

    /// Rows still wanted (pending or in flight).
    pub fn waiting(&self) -> u32 {
        self.rows.values().filter(|r| !r.cancelled).count() as u32
    }

    /// Rows in flight (cancelled ones included).
    pub fn in_flight(&self) -> usize {
        self.rows.values().filter(|r| r.in_flight).count()
    }

    /// `Some(false)` after a transient failure, `Some(true)` after any answer.
    pub fn reachable(&self) -> Option<bool> {
        self.reachable
    }

    /// The last error, free of secrets.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The oldest wanted row's creation time (wall), for the "oldest waiting" gauge.
    pub fn oldest_waiting(&self) -> Option<Timestamp> {
        self.rows
            .values()
            .filter(|r| !r.cancelled)
            .map(|r| r.record.created_at)
            .min()
    }
}

#[cfg(test)]
mod tests;
