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
pub mod journal;
pub mod logging;
pub mod storage;
pub mod systemd;
pub mod taps;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checkout::{Engine, Input, Mono, Now, Snapshot};
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

/// Both clocks, read together: what the engine is handed with each input.
pub fn clock() -> Now {
    Now {
        wall: now(),
        mono: mono_now(),
    }
}

/// The monotonic clock in the engine's unit: milliseconds since this process first read
/// it. Durations (expiry, backoff, windows) are measured on it, never on the wall clock.
pub fn mono_now() -> Mono {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    Mono(i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX))
}

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
    // 0750 from creation (the store's files inside are 0600), whatever the umask.
    crate::store::key::create_private_dir(&config.station.state_dir)
        .context("station.state-dir")?;
    // One daemon per store: a second one would send the same outbox twice. The lock is
    // on the database file itself, so no other file can be removed to get around it.
    let store_file = store_path(&config);
    let lock = lock_store(&store_file)?;
    // A state folder that takes no writes (read-only file system, full disk, wrong owner)
    // does not keep the station down: it starts from the store read-only, refuses taps
    // and opens it for writing as soon as it can (see `storage`).
    let (store, unwritable) = match Store::open(&store_file) {
        Ok(store) => (store, None),
        Err(err) => match err.storage_fault() {
            Some(kind) => match Store::open_read_only(&store_file) {
                Ok(store) => (store, Some((kind, err.to_string()))),
                Err(_) => {
                    return Err(anyhow::Error::new(err).context(format!(
                        "cannot open the station's store {}",
                        store_file.display()
                    )))
                }
            },
            None => {
                return Err(anyhow::Error::new(err).context(format!(
                    "cannot open the station's store {}",
                    store_file.display()
                )))
            }
        },
    };
    // SQLite opens a file it cannot write read-only without an error.
    let unwritable = match unwritable {
        None if store.read_only().await.unwrap_or(false) => Some((
            crate::store::StorageFault::ReadOnly,
            "SQLite could open the store for reading only".to_string(),
        )),
        other => other,
    };
    store
        .adopt_mark(mark_path(&config), false)
        .await
        .context("refusing to start from this store")?;
    let persisted = store
        .load()
        .await
        .context("cannot read the station's state from the store")?;
    let (engine, initial_effects) = Engine::restore(config.engine.clone(), persisted, clock());
    let mdm = Arc::new(
        UemClient::new(uem).context("cannot set up the Workspace ONE client (uem section)")?,
    );
    let directory = Arc::new(
        Directory::open_limited(&config.directory, config.directory_max_file_bytes)
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
    let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
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
    let mailer = match &config.smtp {
        Some(smtp) => Some(Arc::new(
            crate::mail::Mailer::new(smtp).context("cannot set up e-mail ([lending.smtp])")?,
        )),
        None => None,
    };
    let outbox = delivery::OutboxTask {
        store: store.clone(),
        mdm: Arc::clone(&mdm),
        mailer,
        engine: engine_tx.clone(),
        committed: outbox_rx,
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

    // The audit's readers and keepers: the SIEM forwarder and retention.
    if let Some(siem) = config.siem.clone() {
        let forwarder = crate::siem::Forwarder::new(store.clone(), siem, &config.station.name);
        tracker.spawn(forwarder.run(cancel.clone()));
    }
    if let Some(retention) = config.audit.retention {
        tracker.spawn(crate::store::retention::run(
            store.clone(),
            retention,
            cancel.clone(),
        ));
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
        outbox: outbox_tx,
        feedback,
        notifier: options.notifier,
        cancel: cancel.clone(),
        dock: Some(config.dock.clone()),
        outage: unwritable.map(|(kind, cause)| {
            crate::metrics::error("store");
            let (kind, problem) = storage::diagnose(kind, &store_file);
            journal::store_fault(kind.as_str(), &problem, &cause);
            storage::Outage::new(kind, problem)
        }),
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

/// Takes the one-daemon lock: `flock` on the database file itself (SQLite's own locks
/// are `fcntl` locks, which `flock` does not touch). Creates the file when it is missing.
pub fn lock_store(store_file: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(store_file)
    {
        Ok(file) => file,
        // A folder that takes no writes: the lock works on a descriptor opened to read,
        // and the store is then opened read-only (see `start`).
        Err(err) if crate::store::io_fault(&err).is_some() && store_file.is_file() => {
            std::fs::File::open(store_file).with_context(|| {
                format!("cannot open the station's store {}", store_file.display())
            })?
        }
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!(
                "cannot open the station's store {}",
                store_file.display()
            )))
        }
    };
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        anyhow::anyhow!(
            "another badgedock daemon is already using the store {} ({errno}): stop it first (systemctl stop badgedock)",
            store_file.display()
        )
    })
}

/// The continuity mark kept beside the store (see `store::StoreIdentity`).
pub fn mark_path(config: &Config) -> PathBuf {
    config.station.state_dir.join("badgedock.mark")
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
        // The engine's audit tells the story; this is for debugging the dock itself.
        match &event {
            DockEvent::Docked { slot, device } => {
                tracing::debug!(slot = %slot, device = %device, "dock: {device} plugged in at slot {slot}")
            }
            DockEvent::Undocked { slot, device } => {
                tracing::debug!(slot = %slot, device = %device, "dock: {device} unplugged from slot {slot}")
            }
            DockEvent::Moved { from, to, device } => {
                tracing::debug!(device = %device, "dock: {device} moved from slot {from} to slot {to}")
            }
        }
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

/// One line for `systemctl status`: slots ready, loans, readers, Workspace ONE; first
/// of all that taps cannot be recorded, when the store's disk refuses writes.
pub fn status_line(snapshot: &Snapshot) -> String {
    let line = station_line(snapshot);
    if snapshot.instruction.headline == storage::HEADLINE {
        format!(
            "CANNOT RECORD TAPS: {} — {line}",
            snapshot.instruction.detail
        )
    } else {
        line
    }
}

fn station_line(snapshot: &Snapshot) -> String {
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
    let config = crate::config::load_for_station(config_path, &env)?;
    let notifier = Notifier::from_env();
    tracing::info!(station = %config.station.name, config = %config_path.display(), "starting");
    // The config the daemon started with: what a reload cannot change stays as here.
    let current = config.clone();
    let mut daemon = start(
        config,
        StartOptions {
            notifier,
            hardware_readers: true,
        },
    )
    .await?;
    notifier.ready(&status_line(&daemon.snapshots.borrow()));
    journal::started(
        &current.station.name,
        current.dock.slots.len(),
        current.readers.len(),
        &current
            .uem
            .as_ref()
            .map_or_else(|| "not configured".to_string(), |uem| uem.base_url.clone()),
    );
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    let stop_reason = loop {
        tokio::select! {
            signal = signals.next() => {
                if signal == "SIGHUP" {
                    reload(config_path, &env, &current, &daemon.resolver);
                    continue;
                }
                break signal.to_string();
            }
            result = daemon.engine_finished() => {
                result?;
                break "the engine loop ended".to_string();
            }
        }
    };
    journal::stopping(&stop_reason);
    notifier.stopping();
    daemon.shutdown(Duration::from_secs(4)).await?;
    Ok(())
}

/// The signals `run` handles: SIGHUP reloads, the others stop the daemon and are named
/// in the journal.
struct Signals {
    streams: Vec<(&'static str, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut streams = Vec::new();
        for (name, kind) in [
            ("SIGHUP", SignalKind::hangup()),
            ("SIGTERM", SignalKind::terminate()),
            ("SIGINT", SignalKind::interrupt()),
            ("SIGQUIT", SignalKind::quit()),
            ("SIGUSR1", SignalKind::user_defined1()),
            ("SIGUSR2", SignalKind::user_defined2()),
        ] {
            streams.push((name, signal(kind)?));
        }
        Ok(Signals { streams })
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        std::future::poll_fn(|cx| {
            for (name, stream) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*name);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

/// SIGHUP: re-reads the config and the badge directory. A bad config is refused and the
/// daemon keeps the one in force; what only a restart changes is said.
fn reload(path: &Path, env: &crate::config::LoadEnv, current: &Config, resolver: &TapResolver) {
    let new = match crate::config::load(path, env) {
        Ok(new) => new,
        Err(err) => {
            journal::reload_refused(&err.to_string());
            return;
        }
    };
    let directory = match Directory::open(&new.directory) {
        Ok(directory) => directory,
        Err(err) => {
            journal::reload_refused(&format!("the badge directory: {err}"));
            return;
        }
    };
    let mut kept = Vec::new();
    if new.dock.slots != current.dock.slots {
        kept.push("the dock's slots".to_string());
    }
    if new.station.state_dir != current.station.state_dir {
        kept.push("station.state-dir".to_string());
    }
    if new.station.control_socket != current.station.control_socket {
        kept.push("station.control-socket".to_string());
    }
    let readers = |c: &Config| -> Vec<(String, String)> {
        c.readers
            .iter()
            .map(|r| (r.name.to_string(), r.matcher.clone()))
            .collect()
    };
    if readers(&new) != readers(current) {
        kept.push("the readers".to_string());
    }
    let uem = |c: &Config| {
        c.uem
            .as_ref()
            .map(|u| (u.base_url.clone(), u.staging_user.clone()))
    };
    if uem(&new) != uem(current) {
        kept.push("[uem]".to_string());
    }
    if new.metrics_listen != current.metrics_listen {
        kept.push("metrics.listen".to_string());
    }
    let what = format!("badge directory {}, station policy", directory.describe());
    resolver.replace(Arc::new(directory), new.policy.clone());
    journal::reloaded(&what, &kept);
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
            match (&loan.due_text, loan.overdue) {
                (Some(due), true) => format!(", due {due} — OVERDUE"),
                (Some(due), false) => format!(", due {due}"),
                (None, true) => " — OVERDUE".to_string(),
                (None, false) => String::new(),
            }
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
