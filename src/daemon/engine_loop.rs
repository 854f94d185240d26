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
use crate::daemon::storage::{self, Outage};
use crate::daemon::systemd::Notifier;
use crate::daemon::{clock, mono_now, FeedbackSink};
use crate::domain::DeviceKey;
use crate::mdm::{Mdm, UemClient};
use crate::store::{StorageFault, Store, StoreError};

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
    /// The dock, scanned again after an outage that dropped events.
    pub dock: Option<crate::config::DockConfig>,
    /// Set while the store refuses writes because of its disk (see [`storage`]).
    pub outage: Option<Outage>,
}

/// Why the effects of an input could not be performed.
enum Failed {
    /// The disk under the store refused the commit: the daemon stays up.
    Storage(StorageFault, StoreError),
    /// Anything else: the daemon stops and a restart rebuilds from the store.
    Stop(anyhow::Error),
}

impl EngineTask {
    /// Runs until cancelled, or until the store fails in a way that is not the disk's
    /// (then the daemon must stop: the store is the truth and a restart rebuilds from
    /// it). A full, read-only or failing disk does not stop it: see [`storage`].
    pub async fn run(mut self, initial: Vec<Effect>) -> anyhow::Result<()> {
        crate::metrics::store_writable(self.outage.is_none());
        if let Err(failed) = self.perform(initial, &mut None).await {
            match failed {
                Failed::Stop(err) => return Err(err),
                Failed::Storage(kind, err) => self.enter_outage(kind, &err),
            }
        }
        self.publish();
        let watchdog = self.notifier.watchdog_interval();
        let mut last_ping = tokio::time::Instant::now();
        loop {
            let wait = match &self.outage {
                // No deadline of the engine fires while its changes cannot be recorded.
                Some(outage) => outage
                    .next_probe
                    .saturating_duration_since(tokio::time::Instant::now()),
                None => self
                    .engine
                    .next_deadline()
                    .map(|deadline| {
                        Duration::from_millis(deadline.millis_since(mono_now()).max(0) as u64 + 1)
                    })
                    .unwrap_or(Duration::from_secs(3600)),
            };
            let ping_wait = watchdog
                .map(|interval| interval.saturating_sub(last_ping.elapsed()))
                .unwrap_or(Duration::from_secs(3600));
            let message = tokio::select! {
                () = self.cancel.cancelled() => break,
                message = self.inbox.recv() => match message {
                    Some(message) => Some(message),
                    None => break,
                },
                () = tokio::time::sleep(wait.min(ping_wait)) => None,
            };
            let (input, reply) = match message {
                Some(EngineMsg::ApprovedEnrollment { reply }) => {
                    // A read-only question; the approval's expiry is its own deadline.
                    let _ = reply.send(self.engine.approved_enrollment());
                    continue;
                }
                Some(EngineMsg::Input(input)) => (Some(input), None),
                Some(EngineMsg::Ask { input, reply }) => (Some(input), Some(reply)),
                None => (None, None),
            };
            match (input, self.outage.is_some()) {
                (Some(input), _) => {
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
                    self.step(input, reply).await?;
                }
                (None, false) => self.step(Input::Tick, None).await?,
                (None, true) => {
                    if self
                        .outage
                        .as_ref()
                        .is_some_and(|outage| outage.next_probe <= tokio::time::Instant::now())
                    {
                        self.probe().await?;
                    }
                }
            }
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

    /// One input: handled on a copy of the engine, which is kept only once its commit is
    /// durable. While the store refuses writes, taps are refused and the rest waits.
    async fn step(
        &mut self,
        input: Input,
        reply: Option<oneshot::Sender<TapDecision>>,
    ) -> anyhow::Result<()> {
        if let Some(outage) = self.outage.as_mut() {
            match input {
                Input::Tap { reader, .. } => {
                    outage.refused += 1;
                    crate::metrics::tap("refused");
                    (self.feedback)(&reader, false);
                    if let Some(reply) = reply {
                        let _ = reply.send(TapDecision::Refused {
                            reason: storage::REFUSAL.to_string(),
                        });
                    }
                    tracing::warn!(
                        reader = %reader,
                        "tap refused at reader {reader}: the station cannot record taps ({})",
                        outage.problem
                    );
                }
                // Nothing to record; the next probe is on its own timer.
                Input::Tick => {}
                other => {
                    if !outage.defer(other) && outage.dropped == 1 {
                        tracing::error!(
                            "more than {} events waited for the store; later ones are dropped and the dock is scanned again once it is writable",
                            storage::MAX_DEFERRED
                        );
                    }
                }
            }
            return Ok(());
        }
        let tap_reader = match &input {
            Input::Tap { reader, .. } => Some(reader.clone()),
            _ => None,
        };
        let kept = input.clone();
        let mut next = self.engine.clone();
        let effects = next.handle(clock(), input);
        let mut reply = reply;
        match self.perform(effects, &mut reply).await {
            Ok(()) => {}
            Err(Failed::Stop(err)) => return Err(err),
            Err(Failed::Storage(kind, err)) => {
                self.enter_outage(kind, &err);
                // The change was not recorded, so it did not happen: a tap is refused
                // (never a phone without a durable record), anything else waits.
                if let Some(outage) = self.outage.as_mut() {
                    match tap_reader {
                        Some(reader) => {
                            outage.refused += 1;
                            crate::metrics::tap("refused");
                            (self.feedback)(&reader, false);
                            if let Some(reply) = reply.take() {
                                let _ = reply.send(TapDecision::Refused {
                                    reason: storage::REFUSAL.to_string(),
                                });
                            }
                        }
                        None => {
                            outage.defer(kept);
                        }
                    }
                }
                return Ok(());
            }
        }
        self.engine = next;
        Ok(())
    }

    /// The first failed commit of an episode: said once in the journal and the metric.
    fn enter_outage(&mut self, kind: StorageFault, err: &StoreError) {
        if self.outage.is_some() {
            return;
        }
        crate::metrics::error("store");
        crate::metrics::store_writable(false);
        let (kind, problem) = storage::diagnose(kind, self.store.path());
        journal::store_fault(kind.as_str(), &problem, &err.to_string());
        self.outage = Some(Outage::new(kind, problem));
    }

    /// While the store refuses writes: a probe write, then what waited, in order. The
    /// episode ends only when all of it is recorded.
    async fn probe(&mut self) -> anyhow::Result<()> {
        let Some(mut outage) = self.outage.take() else {
            return Ok(());
        };
        outage.next_probe = tokio::time::Instant::now() + storage::PROBE_INTERVAL;
        // After a read-only start, the store is opened for writing first.
        let probed = match self.store.reopen_writable().await {
            Ok(()) => self.store.probe(crate::daemon::now()).await,
            Err(err) => Err(err),
        };
        if let Err(err) = probed {
            if err.storage_fault().is_none() {
                return Err(anyhow::Error::new(err)
                    .context("the store failed while the daemon waited for its disk"));
            }
            tracing::debug!(cause = %err, "the store still refuses writes");
            self.outage = Some(outage);
            return Ok(());
        }
        while let Some(input) = outage.deferred.pop_front() {
            let mut next = self.engine.clone();
            let effects = next.handle(clock(), input.clone());
            match self.perform(effects, &mut None).await {
                Ok(()) => self.engine = next,
                Err(Failed::Stop(err)) => return Err(err),
                Err(Failed::Storage(_, err)) => {
                    tracing::debug!(cause = %err, "the store took a probe but refused a commit");
                    outage.deferred.push_front(input);
                    self.outage = Some(outage);
                    return Ok(());
                }
            }
        }
        crate::metrics::store_writable(true);
        journal::store_recovered(
            outage.kind.as_str(),
            outage.started.elapsed().as_secs(),
            outage.refused,
        );
        if outage.dropped > 0 {
            self.rescan_dock();
        }
        Ok(())
    }

    /// Asks the dock what is present now (events were dropped during a long outage).
    fn rescan_dock(&self) {
        let Some(dock) = self.dock.clone() else {
            return;
        };
        let inbox = self.inbox_tx.clone();
        tokio::spawn(async move {
            if let Ok(Some(present)) =
                tokio::task::spawn_blocking(move || crate::dock::scan(&dock)).await
            {
                let _ = inbox
                    .send(EngineMsg::Input(Input::Inventory { present }))
                    .await;
            }
        });
    }

    fn publish(&self) {
        let mut snapshot = self.engine.snapshot();
        crate::metrics::station(&snapshot);
        if let Some(outage) = &self.outage {
            snapshot.at = crate::daemon::now();
            outage.overlay(&mut snapshot);
        }
        self.snapshots.send_replace(snapshot);
    }

    /// Performs one input's effects: the commit first (awaited), then the rest in order.
    /// When the commit fails nothing else is performed.
    async fn perform(
        &mut self,
        effects: Vec<Effect>,
        reply: &mut Option<oneshot::Sender<TapDecision>>,
    ) -> Result<(), Failed> {
        let (commits, effects): (Vec<Effect>, Vec<Effect>) = effects
            .into_iter()
            .partition(|effect| matches!(effect, Effect::Commit(_)));
        for commit in commits {
            let Effect::Commit(commit) = commit else {
                continue;
            };
            let mut attempt = 0;
            loop {
                match self.store.commit(commit.clone()).await {
                    Ok(()) => {
                        for entry in &commit.audit {
                            match entry.kind {
                                AuditKind::Checkout => crate::metrics::checkout(),
                                AuditKind::Checkin => crate::metrics::checkin(),
                                AuditKind::ActionFailed => {
                                    crate::metrics::error("mdm-action-failed")
                                }
                                AuditKind::UnexpectedRemoval => {
                                    crate::metrics::error("unexpected-removal")
                                }
                                _ => {}
                            }
                        }
                        if !commit.actions.is_empty() {
                            let _ = self.outbox.send(OutboxMsg::Rows(commit.actions.clone()));
                        }
                        commit.audit.iter().for_each(|entry| {
                            journal::audit(entry);
                            crate::metrics::audited(entry.kind.as_str(), &entry.detail);
                        });
                        break;
                    }
                    Err(err) => {
                        if let Some(kind) = err.storage_fault() {
                            return Err(Failed::Storage(kind, err));
                        }
                        if err.is_corrupt() || attempt >= 3 {
                            return Err(Failed::Stop(anyhow::Error::new(err).context(
                                "cannot write the station's state; stopping so that a restart rebuilds from the store",
                            )));
                        }
                        crate::metrics::error("store");
                        attempt += 1;
                        tracing::error!(cause = %err, attempt, "store commit failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                    }
                }
            }
        }
        for effect in effects {
            match effect {
                Effect::Commit(_) => {}
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
