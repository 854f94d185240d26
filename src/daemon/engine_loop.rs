//! The engine loop: one task owns the [`Engine`]; every input arrives on one bounded
//! channel, is stamped with the time, handled, and its effects performed in order. A
//! `Commit` is written to the store and acknowledged before the snapshot is published or
//! a tap is answered (invariant: durable before shown). The loop also pings the systemd
//! watchdog, so a wedged loop stops the pings.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::checkout::{AuditKind, Effect, Engine, Input, Snapshot, TapDecision};
use crate::daemon::delivery::OutboxMsg;
use crate::daemon::journal;
use crate::daemon::systemd::Notifier;
use crate::daemon::{clock, mono_now, FeedbackSink};
use crate::domain::DeviceKey;
use crate::mdm::{Mdm, UemClient};
use crate::store::Store;

/// A message for the engine loop.
#[derive(Debug)]
pub enum EngineMsg {
    /// An input nobody waits on.
    Input(Input),
    /// Which badge waits for its username, and who approved it (supervised enrolment).
    ApprovedEnrollment {
        /// The answer: `None` when no approval is open.
        reply: oneshot::Sender<Option<(crate::domain::BadgeNumber, crate::domain::User)>>,
    },
    /// An input whose tap decision someone waits for (the control socket's `tap`).
    Ask {
        /// The input (a tap).
        input: Input,
        /// Answered once the tap is durably recorded.
        reply: oneshot::Sender<TapDecision>,
    },
}

/// Hands a resolved tap to the engine and waits for the station's decision, which comes
/// once the tap is durably recorded. A read that yielded no badge (`Input::BadRead`) is
/// passed on for the screen and answered as refused here. `Err` means the engine is gone
/// or did not answer.
pub async fn decide(engine: &mpsc::Sender<EngineMsg>, input: Input) -> Result<TapDecision, String> {
    if let Input::BadRead { reason, .. } = &input {
        let reason = format!("badge not read: {reason}");
        let _ = engine.send(EngineMsg::Input(input)).await;
        return Ok(TapDecision::Refused { reason });
    }
    let (reply, answer) = oneshot::channel();
    engine
        .send(EngineMsg::Ask { input, reply })
        .await
        .map_err(|_| "the engine is stopping".to_string())?;
    match tokio::time::timeout(Duration::from_secs(10), answer).await {
        Ok(Ok(decision)) => Ok(decision),
        _ => Err("the engine did not answer: check `journalctl -u badgedock`".to_string()),
    }
}

/// How deep the engine's inbox is; senders wait when it is full (backpressure).
pub const INBOX_CAPACITY: usize = 256;

/// The task that owns the engine.
pub struct EngineTask {
    /// The state machine.
    pub engine: Engine,
    /// Where inputs arrive.
    pub inbox: mpsc::Receiver<EngineMsg>,
    /// A sender into the same inbox, for lookups that answer later.
    pub inbox_tx: mpsc::Sender<EngineMsg>,
    /// The durable store.
    pub store: Store,
    /// Workspace ONE, for device lookups.
    pub mdm: Arc<UemClient>,
    /// Where snapshots are published.
    pub snapshots: watch::Sender<Snapshot>,
    /// The outbox worker: the action rows of each durable commit.
    pub outbox: mpsc::UnboundedSender<OutboxMsg>,
    /// Beeps and LEDs.
    pub feedback: FeedbackSink,
    /// systemd.
    pub notifier: Notifier,
    /// Stops the loop.
    pub cancel: CancellationToken,
}

impl EngineTask {
    /// Runs until cancelled, or until the store refuses a commit (then the daemon must
    /// stop: the store is the truth and a restart rebuilds from it).
    pub async fn run(mut self, initial: Vec<Effect>) -> anyhow::Result<()> {
        self.perform(initial, None).await?;
        self.publish();
        let watchdog = self.notifier.watchdog_interval();
        let mut last_ping = tokio::time::Instant::now();
        loop {
            let deadline_wait = self
                .engine
                .next_deadline()
                .map(|deadline| {
                    Duration::from_millis(deadline.millis_since(mono_now()).max(0) as u64 + 1)
                })
                .unwrap_or(Duration::from_secs(3600));
            let ping_wait = watchdog
                .map(|interval| interval.saturating_sub(last_ping.elapsed()))
                .unwrap_or(Duration::from_secs(3600));
            let message = tokio::select! {
                () = self.cancel.cancelled() => break,
                message = self.inbox.recv() => match message {
                    Some(message) => Some(message),
                    None => break,
                },
                () = tokio::time::sleep(deadline_wait.min(ping_wait)) => None,
            };
            let (input, reply) = match message {
                Some(EngineMsg::ApprovedEnrollment { reply }) => {
                    // A read-only question; the approval's expiry is its own deadline.
                    let _ = reply.send(self.engine.approved_enrollment());
                    continue;
                }
                Some(EngineMsg::Input(input)) => (input, None),
                Some(EngineMsg::Ask { input, reply }) => (input, Some(reply)),
                None => (Input::Tick, None),
            };
            match &input {
                Input::BadRead { .. } => crate::metrics::tap("bad-read"),
                Input::ReaderStatus { reader, online, .. } => {
                    crate::metrics::reader_online(reader.as_str(), *online)
                }
                Input::MdmHealth {
                    reachable, waiting, ..
                } => journal::mdm_health(*reachable, *waiting),
                _ => {}
            }
            let effects = self.engine.handle(clock(), input);
            self.perform(effects, reply).await?;
            self.publish();
            if let Some(interval) = watchdog {
                if last_ping.elapsed() >= interval {
                    self.notifier.watchdog();
                    last_ping = tokio::time::Instant::now();
                }
            }
        }
        Ok(())
    }

    fn publish(&self) {
        let snapshot = self.engine.snapshot();
        crate::metrics::station(&snapshot);
        self.snapshots.send_replace(snapshot);
    }

    async fn perform(
        &mut self,
        effects: Vec<Effect>,
        mut reply: Option<oneshot::Sender<TapDecision>>,
    ) -> anyhow::Result<()> {
        for effect in effects {
            match effect {
                Effect::Commit(commit) => {
                    for entry in &commit.audit {
                        match entry.kind {
                            AuditKind::Checkout => crate::metrics::checkout(),
                            AuditKind::Checkin => crate::metrics::checkin(),
                            AuditKind::ActionFailed => crate::metrics::error("mdm-action-failed"),
                            AuditKind::UnexpectedRemoval => {
                                crate::metrics::error("unexpected-removal")
                            }
                            _ => {}
                        }
                    }
                    let mut attempt = 0;
                    loop {
                        match self.store.commit(commit.clone()).await {
                            Ok(()) => {
                                if !commit.actions.is_empty() {
                                    let _ =
                                        self.outbox.send(OutboxMsg::Rows(commit.actions.clone()));
                                }
                                commit.audit.iter().for_each(|entry| {
                                    journal::audit(entry);
                                    crate::metrics::audited(entry.kind.as_str(), &entry.detail);
                                });
                                break;
                            }
                            Err(err) if attempt < 3 => {
                                crate::metrics::error("store");
                                attempt += 1;
                                tracing::error!(cause = %err, attempt, "store commit failed; retrying");
                                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                            }
                            Err(err) => {
                                return Err(anyhow::Error::new(err).context(
                                    "cannot write the station's state; stopping so that a restart rebuilds from the store",
                                ));
                            }
                        }
                    }
                }
                Effect::Identify { device, request } => self.identify(device, request),
                Effect::Feedback { reader, ok } => (self.feedback)(&reader, ok),
                // The rows went to the worker with their commit.
                Effect::WakeOutbox => {}
                Effect::Decision(decision) => {
                    crate::metrics::tap(if decision.accepted() {
                        "accepted"
                    } else {
                        "refused"
                    });
                    if let Some(reply) = reply.take() {
                        let _ = reply.send(decision);
                    }
                }
            }
        }
        Ok(())
    }

    fn identify(&self, device: DeviceKey, request: u64) {
        let mdm = Arc::clone(&self.mdm);
        let inbox = self.inbox_tx.clone();
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let result = mdm.lookup_device(&device).await;
            match &result {
                Ok(_) => {
                    let _ = outbox.send(OutboxMsg::Reachable);
                }
                Err(err) if !err.is_transient() => {
                    let _ = outbox.send(OutboxMsg::Reachable);
                }
                Err(_) => {}
            }
            let result = result.map_err(|err| err.to_string());
            let _ = inbox
                .send(EngineMsg::Input(Input::DeviceIdentified {
                    device,
                    request,
                    result,
                }))
                .await;
        });
    }
}
