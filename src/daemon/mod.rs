//! Wiring: the only place that spawns tasks, handles signals or talks to systemd.
//!
//! [`start`] opens the store, rebuilds the engine from it, builds the edges (readers,
//! dock, Workspace ONE client, directory, control socket, outbox worker) and connects
//! them to the engine loop through one bounded inbox. [`run`] is `badgedock run`: it
//! adds signal handling and systemd notifications around [`start`]. Correctness never
//! depends on a graceful stop: every state change is committed before it is shown.

pub mod control_server;
pub mod delivery;
pub mod demo;
pub mod engine_loop;
pub mod logging;
pub mod systemd;
pub mod taps;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checkout::{Engine, Input, Snapshot};
use crate::config::{Config, ReaderKind};
use crate::daemon::engine_loop::{EngineMsg, EngineTask, INBOX_CAPACITY};
use crate::daemon::systemd::Notifier;
use crate::daemon::taps::TapResolver;
use crate::directory::Directory;
use crate::dock::DockEvent;
use crate::domain::{ReaderName, Timestamp};
use crate::mdm::UemClient;
use crate::readers::ReaderEvent;
use crate::store::Store;

/// The wall clock, in the engine's unit. Only the daemon reads the clock.
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(millis)
}

/// Beeps and LEDs: called with the reader and success or failure.
pub type FeedbackSink = Arc<dyn Fn(&ReaderName, bool) + Send + Sync>;

/// The SQLite file inside the state directory.
pub const STORE_FILE: &str = "badgedock.sqlite3";

/// The store's path for a config.
pub fn store_path(config: &Config) -> PathBuf {
    config.station.state_dir.join(STORE_FILE)
}

/// What to start besides the core.
#[derive(Debug, Clone, Copy)]
pub struct StartOptions {
    /// systemd notifications.
    pub notifier: Notifier,
    /// Start the configured hardware readers (PC/SC, HID). The demo feeds its own.
    pub hardware_readers: bool,
}

/// A running station.
pub struct RunningDaemon {
    /// Published after every input.
    pub snapshots: watch::Receiver<Snapshot>,
    /// Where simulated readers can send events, as real readers do.
    pub reader_events: mpsc::Sender<ReaderEvent>,
    /// The engine's inbox.
    pub engine: mpsc::Sender<EngineMsg>,
    /// Resolves injected taps.
    pub resolver: Arc<TapResolver>,
    /// Stops everything.
    pub cancel: CancellationToken,
    tracker: TaskTracker,
    engine_task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    blocking: std::sync::Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    store: Store,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl RunningDaemon {
    /// Waits until the engine loop ends (it ends on cancel, or on a store failure).
    pub async fn engine_finished(&mut self) -> anyhow::Result<()> {
        let Some(task) = self.engine_task.as_mut() else {
            return Ok(());
        };
        let joined = task.await;
        self.engine_task = None;
        match joined {
            Ok(result) => result,
            Err(err) => Err(anyhow::anyhow!("the engine loop panicked: {err}")),
        }
    }

    /// Stops every task within `deadline`; what does not stop in time is abandoned
    /// (nothing is lost: the store already holds every state change).
    pub async fn shutdown(self, deadline: Duration) -> anyhow::Result<()> {
        self.cancel.cancel();
        self.tracker.close();
        let engine_result = match self.engine_task {
            Some(task) => tokio::time::timeout(deadline, task).await,
            None => Ok(Ok(Ok(()))),
        };
        let _ = tokio::time::timeout(deadline, self.tracker.wait()).await;
        let blocking = self
            .blocking
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for stop in blocking {
            let _ = tokio::time::timeout(Duration::from_secs(2), tokio::task::spawn_blocking(stop))
                .await;
        }
        drop(self.store);
        match engine_result {
            Ok(Ok(result)) => result,
            Ok(Err(err)) => Err(anyhow::anyhow!("the engine loop panicked: {err}")),
            Err(_) => Err(anyhow::anyhow!(
                "the engine loop did not stop within {deadline:?}"
            )),
        }
    }
}

/// Starts a station from a validated config.
pub async fn start(config: Config, options: StartOptions) -> anyhow::Result<RunningDaemon> {
    let uem = config
        .uem
        .as_ref()
        .context("the config has no [uem] section: badgedock run needs Workspace ONE (see the README's configuration section)")?;
    std::fs::create_dir_all(&config.station.state_dir).with_context(|| {
        format!(
            "cannot create station.state-dir {}",
            config.station.state_dir.display()
        )
    })?;
    // One daemon per state directory: a second one would send the same outbox twice.
    let lock = lock_state_dir(&config.station.state_dir)?;
    let store_file = store_path(&config);
    let store = Store::open(&store_file)
        .with_context(|| format!("cannot open the station's store {}", store_file.display()))?;
    let persisted = store
        .load()
        .await
        .context("cannot read the station's state from the store")?;
    let (engine, initial_effects) = Engine::restore(config.engine.clone(), persisted, now());
    let mdm = Arc::new(
        UemClient::new(uem).context("cannot set up the Workspace ONE client (uem section)")?,
    );
    let directory = Arc::new(
        Directory::open(&config.directory)
            .context("cannot open the badge directory (directory section)")?,
    );

    if let Some(listen) = config.metrics_listen {
        match crate::metrics::install(listen) {
            Ok(()) => tracing::info!(listen = %listen, "Prometheus metrics served"),
            Err(crate::metrics::MetricsError::AlreadyInstalled) => {
                tracing::warn!(
                    "metrics already installed in this process; keeping the first exporter"
                )
            }
            Err(err) => return Err(anyhow::Error::new(err).context("metrics.listen")),
        }
    }
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (engine_tx, engine_rx) = mpsc::channel(INBOX_CAPACITY);
    let (snapshot_tx, snapshot_rx) = watch::channel(engine.snapshot());
    let outbox_wake = Arc::new(Notify::new());
    let (reader_tx, reader_rx) = mpsc::channel::<ReaderEvent>(64);
    let (dock_tx, dock_rx) = mpsc::channel::<DockEvent>(64);
    let mut blocking: Vec<Box<dyn FnOnce() + Send>> = Vec::new();

    // The dock's first scan tells the engine what is present now, so devices that left
    // while the daemon was down are noticed before the first tap.
    let dock_config = config.dock.clone();
    let inventory = tokio::task::spawn_blocking(move || crate::dock::scan(&dock_config))
        .await
        .context("the dock inventory panicked")?;
    if let Some(present) = inventory {
        engine_tx
            .send(EngineMsg::Input(Input::Inventory { present }))
            .await
            .map_err(|_| anyhow::anyhow!("engine inbox closed at start-up"))?;
    }

    // Readers.
    let mut feedback_targets: Vec<FeedbackSink> = Vec::new();
    if options.hardware_readers {
        let pcsc_readers: Vec<_> = config
            .readers
            .iter()
            .filter(|r| r.kind == ReaderKind::Pcsc)
            .cloned()
            .collect();
        if !pcsc_readers.is_empty() {
            let handle =
                crate::readers::pcsc::spawn(pcsc_readers, reader_tx.clone(), cancel.clone())
                    .context("cannot start the PC/SC reader thread")?;
            let handle = Arc::new(handle);
            let for_feedback = Arc::clone(&handle);
            feedback_targets.push(Arc::new(move |reader: &ReaderName, ok: bool| {
                for_feedback.feedback(reader, ok)
            }));
            blocking.push(Box::new(move || {
                if let Ok(handle) = Arc::try_unwrap(handle) {
                    handle.join();
                }
            }));
        }
        let hid_readers: Vec<_> = config
            .readers
            .iter()
            .filter(|r| matches!(r.kind, ReaderKind::Hid | ReaderKind::Wedge))
            .cloned()
            .collect();
        if !hid_readers.is_empty() {
            let handle = crate::readers::hid::spawn(hid_readers, reader_tx.clone(), cancel.clone())
                .context("cannot start the HID reader thread")?;
            blocking.push(Box::new(move || handle.join()));
        }
    }
    let feedback: FeedbackSink = Arc::new(move |reader: &ReaderName, ok: bool| {
        for target in &feedback_targets {
            target(reader, ok);
        }
    });

    // Dock.
    let dock_handle = crate::dock::spawn(config.dock.clone(), dock_tx, cancel.clone())
        .context("cannot start the dock watcher")?;
    blocking.push(Box::new(move || {
        let _ = dock_handle.join();
    }));
    tracker.spawn(forward_dock_events(
        dock_rx,
        engine_tx.clone(),
        cancel.clone(),
    ));

    // Taps.
    let resolver = Arc::new(TapResolver::new(
        &config.readers,
        Arc::clone(&directory),
        store.clone(),
        config.policy.clone(),
    ));
    tracker.spawn(taps::run_reader_events(
        Arc::clone(&resolver),
        reader_rx,
        engine_tx.clone(),
        cancel.clone(),
    ));

    // Outbox.
    let outbox = delivery::OutboxTask {
        store: store.clone(),
        mdm: Arc::clone(&mdm),
        engine: engine_tx.clone(),
        wake: Arc::clone(&outbox_wake),
        concurrency: uem.concurrency as usize,
        cancel: cancel.clone(),
    };
    tracker.spawn(outbox.run());
    if let Some(fleet) = crate::fleet::FleetTask::new(
        &config,
        store.clone(),
        snapshot_rx.clone(),
        engine_tx.clone(),
        cancel.clone(),
    ) {
        tracker.spawn(fleet.run());
    }

    // Control socket.
    let control = control_server::ControlServer::bind(
        &config.station.control_socket,
        config.station.admin_group.as_deref(),
        snapshot_rx.clone(),
        engine_tx.clone(),
        Arc::clone(&resolver),
        control_server::EnrollmentDesk {
            directory: Arc::clone(&directory),
            mdm: Arc::clone(&mdm),
            store: store.clone(),
        },
    )?;
    tracker.spawn(control.run(cancel.clone()));

    // The engine loop last: everything it talks to exists.
    let engine_task = EngineTask {
        engine,
        inbox: engine_rx,
        inbox_tx: engine_tx.clone(),
        store: store.clone(),
        mdm,
        snapshots: snapshot_tx,
        outbox_wake,
        feedback,
        notifier: options.notifier,
        cancel: cancel.clone(),
    };
    let engine_task = tokio::spawn(engine_task.run(initial_effects));
    tracker.spawn(status_line_task(
        snapshot_rx.clone(),
        options.notifier,
        cancel.clone(),
    ));

    Ok(RunningDaemon {
        snapshots: snapshot_rx,
        reader_events: reader_tx,
        engine: engine_tx,
        resolver,
        cancel,
        tracker,
        engine_task: Some(engine_task),
        blocking: std::sync::Mutex::new(blocking),
        store,
        _lock: lock,
    })
}

fn lock_state_dir(state_dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = state_dir.join("badgedock.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        anyhow::anyhow!(
            "another badgedock daemon is already using {} ({errno}): stop it first (systemctl stop badgedock)",
            state_dir.display()
        )
    })
}

async fn forward_dock_events(
    mut events: mpsc::Receiver<DockEvent>,
    engine: mpsc::Sender<EngineMsg>,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => break,
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        tracing::info!(event = ?event, "dock");
        let input = match event {
            DockEvent::Docked { slot, device } => Input::Docked { slot, device },
            DockEvent::Undocked { slot, device } => Input::Undocked { slot, device },
            DockEvent::Moved { from, to, device } => Input::Moved { from, to, device },
        };
        if engine.send(EngineMsg::Input(input)).await.is_err() {
            break;
        }
    }
}

/// Keeps systemd's STATUS= line in step with the station, at most once a second.
async fn status_line_task(
    mut snapshots: watch::Receiver<Snapshot>,
    notifier: Notifier,
    cancel: CancellationToken,
) {
    let mut last = String::new();
    loop {
        let line = status_line(&snapshots.borrow_and_update());
        if line != last {
            notifier.status(&line);
            last = line;
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            changed = snapshots.changed() => if changed.is_err() { break },
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One line for `systemctl status`: slots ready, loans, readers, Workspace ONE.
pub fn status_line(snapshot: &Snapshot) -> String {
    let ready = snapshot
        .slots
        .iter()
        .filter(|slot| slot.state == crate::checkout::SlotState::Available)
        .count();
    let readers_online = snapshot.readers.iter().filter(|r| r.online).count();
    let mdm = match snapshot.mdm.reachable {
        Some(false) => format!(
            "Workspace ONE unreachable, {} waiting",
            snapshot.mdm.waiting
        ),
        _ => format!("Workspace ONE ok, {} waiting", snapshot.mdm.waiting),
    };
    format!(
        "{ready}/{} phones ready, {} out, readers {readers_online}/{} online, {mdm}",
        snapshot.slots.len(),
        snapshot.loans.len(),
        snapshot.readers.len()
    )
}

/// Why `badgedock run` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config is wrong (exit code 78).
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// Anything else (exit code 70 or 1).
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// `badgedock run --config FILE`.
pub async fn run(config_path: &Path) -> Result<(), RunError> {
    let env = crate::config::LoadEnv {
        credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
    };
    let config = crate::config::load(config_path, &env)?;
    let notifier = Notifier::from_env();
    tracing::info!(station = %config.station.name, config = %config_path.display(), "starting");
    let mut daemon = start(
        config,
        StartOptions {
            notifier,
            hardware_readers: true,
        },
    )
    .await?;
    notifier.ready(&status_line(&daemon.snapshots.borrow()));
    tracing::info!("ready");
    let stop_reason = tokio::select! {
        signal = wait_for_signal() => signal.map(|name| format!("received {name}")),
        result = daemon.engine_finished() => {
            result?;
            Ok("engine loop ended".to_string())
        }
    }
    .context("cannot install signal handlers")?;
    tracing::info!(reason = %stop_reason, "stopping");
    notifier.stopping();
    daemon.shutdown(Duration::from_secs(4)).await?;
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}

/// `badgedock status` as text: one line per slot, then loans, readers, Workspace ONE.
/// Badge numbers never appear in a snapshot, so nothing here needs redacting.
pub fn status_text(snapshot: &Snapshot) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(text, "{} — {}", snapshot.station, status_line(snapshot));
    let _ = writeln!(
        text,
        "now: {} — {}",
        snapshot.instruction.headline, snapshot.instruction.detail
    );
    let _ = writeln!(text, "slots:");
    for slot in &snapshot.slots {
        let device = match (&slot.device, &slot.device_name) {
            (Some(key), Some(name)) => format!("{name} [{key}]"),
            (Some(key), None) => key.to_string(),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            text,
            "  {:<4} {:<13} {:<48} ws1-id={} holder={} sync={:?}{}",
            slot.label.as_str(),
            format!("{:?}", slot.state).to_lowercase(),
            device,
            slot.mdm_id
                .map(|id| id.to_string())
                .unwrap_or_else(|| "-".into()),
            slot.holder.as_deref().unwrap_or("-"),
            slot.sync,
            slot.note
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(text, "out with users:");
    if snapshot.loans.is_empty() {
        let _ = writeln!(text, "  none");
    }
    for loan in &snapshot.loans {
        let _ = writeln!(
            text,
            "  {} ({}) has {} from slot {}{}",
            loan.holder,
            loan.username,
            loan.device_name
                .clone()
                .unwrap_or_else(|| loan.device.to_string()),
            loan.slot,
            if loan.overdue { " — OVERDUE" } else { "" }
        );
    }
    let _ = writeln!(text, "readers:");
    if snapshot.readers.is_empty() {
        let _ = writeln!(text, "  none reported (taps only through `badgedock tap`)");
    }
    for reader in &snapshot.readers {
        let _ = writeln!(
            text,
            "  {} {}{}",
            reader.name,
            if reader.online { "online" } else { "OFFLINE" },
            reader
                .detail
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        text,
        "workspace one: {} — {} action(s) waiting{}",
        match snapshot.mdm.reachable {
            None => "not contacted yet",
            Some(true) => "reachable",
            Some(false) => "UNREACHABLE",
        },
        snapshot.mdm.waiting,
        snapshot
            .mdm
            .last_error
            .as_ref()
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default()
    );
    if let Some(fleet) = &snapshot.fleet {
        let _ = writeln!(
            text,
            "fleet: {}",
            if fleet.reachable {
                format!(
                    "reachable — {} loan(s) at other cabinets count against the limit",
                    fleet.remote_loans
                )
            } else {
                "UNREACHABLE — the limit counts this cabinet's loans only".to_string()
            }
        );
    }
    text
}
