//! The station dashboard: a ratatui screen on the cabinet's console (tty1) or over SSH.
//!
//! The screen itself is the pure function [`view::render`] of a [`Feed`] and a
//! [`view::UiState`]. This module is the I/O shell around it:
//!
//! - [`run`] owns the terminal (crossterm backend, alternate screen, raw mode). It redraws
//!   when the feed changes, on keys, and once a second for the clock; otherwise it sleeps,
//!   so an idle dashboard costs next to no CPU. ratatui's buffer diffing sends only
//!   changed cells, so nothing flickers. The terminal is restored on exit, on error and,
//!   through a panic hook installed before the default one, on panic.
//! - [`spawn_socket_feed`] turns the daemon's control-socket subscription into a
//!   `watch` of [`Feed`], reconnecting with backoff and publishing [`Feed::Down`] while
//!   the daemon cannot be reached.
//! - [`run_for_socket`] is `badgedock dashboard`: the two above, plus admin commands
//!   sent to the daemon as control requests (the daemon authorises them by the socket
//!   peer's credentials; the dashboard only hides the keys when admin mode is off).
//!
//! This module reads the wall clock (for the clock and for "down since"); the view never
//! does.

mod font;
pub mod view;

#[cfg(test)]
mod tests;

use std::io::{self, Stdout, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{FixedOffset, Offset as _};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::Terminal;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::checkout::{AdminCommand, SlotState, Snapshot, SyncState};
use crate::control::{Request, Response, Subscription};
use crate::dashboard::view::UiState;
use crate::domain::Timestamp;

/// What the dashboard draws: the daemon's latest snapshot, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // One value, replaced whole; boxing buys nothing.
pub enum Feed {
    /// The station as the daemon last published it.
    Live(Snapshot),
    /// The daemon cannot be reached.
    Down {
        /// When it was first found unreachable (kept across retries).
        since: Timestamp,
        /// The last connection error, in words.
        reason: String,
    },
}

/// What the operator asked for at the dashboard's keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiCommand {
    /// Demo key 1–9: tap demo badge number N (only sent when demo keys are enabled).
    Tap(u8),
    /// An admin action, confirmed by the operator (only sent in admin mode).
    Admin(AdminCommand),
    /// The operator quit the dashboard.
    Quit,
}

/// How the dashboard behaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DashboardOptions {
    /// Draw with ASCII only: for the Linux text console (`TERM=linux`), whose fonts may
    /// lack box-drawing and block glyphs.
    pub ascii: bool,
    /// Enable the admin keys (retry failed work, cancel a reservation).
    pub admin: bool,
    /// Keys 1–9 tap demo badges (`badgedock demo`).
    pub demo_keys: bool,
}

/// Runs the dashboard on this process's terminal until the operator quits (`q`), the
/// feed's sender goes away, or an error occurs. The terminal is restored in every case.
///
/// Keys become [`UiCommand`]s on `commands`; nothing waits on that channel (a full
/// channel drops the key with a notice on screen).
///
/// # Errors
/// When the terminal cannot be set up, drawn to, or read from.
pub async fn run(
    options: DashboardOptions,
    feed: watch::Receiver<Feed>,
    commands: mpsc::Sender<UiCommand>,
) -> anyhow::Result<()> {
    // Nobody sends notices here; the sender lives as long as the loop so the branch
    // simply never fires.
    let (_notice_sender, notices) = mpsc::channel(1);
    run_with(options, feed, commands, notices, CancellationToken::new()).await
}

/// Subscribes to the daemon's snapshots over the control socket at `socket` and
/// publishes them as [`Feed::Live`]. While the daemon cannot be reached it publishes
/// [`Feed::Down`] (since when, and why) and retries with a backoff from 200 ms to 5 s, so
/// a restarted daemon is picked up within seconds. Stops when `cancel` fires or every
/// receiver is gone. Must be called inside a tokio runtime.
pub fn spawn_socket_feed(socket: PathBuf, cancel: CancellationToken) -> watch::Receiver<Feed> {
    let initial = Feed::Down {
        since: wall_clock().0,
        reason: format!("connecting to {}", socket.display()),
    };
    let (sender, receiver) = watch::channel(initial);
    let task = SocketFeedTask {
        socket,
        sender,
        cancel,
    };
    tokio::spawn(task.run());
    receiver
}

/// `badgedock dashboard`: draws the daemon's snapshots from the control socket on this
/// terminal, sends confirmed admin actions to the daemon as control requests, and shows
/// the daemon's answer at the bottom of the screen. Demo tap keys are ignored. Returns
/// when the operator quits or on SIGTERM/SIGHUP/SIGINT, with the terminal restored.
///
/// # Errors
/// When the terminal cannot be set up, drawn to, or read from.
pub async fn run_for_socket(socket: PathBuf, options: DashboardOptions) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let mut feed = spawn_socket_feed(socket.clone(), cancel.clone());
    // Give the first connection a moment, so a healthy start does not flash the
    // "daemon is not running" screen for a few milliseconds.
    let _ = tokio::time::timeout(FIRST_CONNECT_GRACE, feed.changed()).await;
    let (commands, command_receiver) = mpsc::channel(8);
    let (notice_sender, notices) = mpsc::channel(8);
    let forwarder = tokio::spawn(forward_commands(
        socket,
        command_receiver,
        notice_sender,
        cancel.clone(),
    ));
    tokio::spawn(cancel_on_signals(cancel.clone()));
    let result = run_with(options, feed, commands, notices, cancel.clone()).await;
    cancel.cancel();
    if let Err(err) = forwarder.await {
        tracing::warn!(cause = %err, "dashboard command forwarder ended abnormally");
    }
    result
}

/// How long an admin request may take before the dashboard says so.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `run_for_socket` waits for the daemon's first answer before drawing.
const FIRST_CONNECT_GRACE: Duration = Duration::from_secs(1);

/// First wait before reconnecting to the daemon; doubled after each failure.
const RECONNECT_INITIAL: Duration = Duration::from_millis(200);

/// Longest wait between reconnection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// How often the key reader thread wakes to see whether the dashboard has ended.
const KEY_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// True while the dashboard has the terminal in raw mode and the alternate screen; the
/// panic hook restores the terminal only then.
static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// The wall-clock time and the local offset from UTC. The only clock read of the
/// dashboard; the view gets both as data.
fn wall_clock() -> (Timestamp, FixedOffset) {
    let now = chrono::Local::now();
    (Timestamp(now.timestamp_millis()), now.offset().fix())
}

/// The terminal loop with an extra notice channel (answers to admin commands) and a
/// shutdown token (signals).
async fn run_with(
    options: DashboardOptions,
    feed: watch::Receiver<Feed>,
    commands: mpsc::Sender<UiCommand>,
    notices: mpsc::Receiver<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut session = TerminalSession::enter()
        .context("cannot take over the terminal: the dashboard must run on a terminal (tty1 or SSH with a tty)")?;
    let (key_sender, keys) = mpsc::channel(64);
    std::thread::Builder::new()
        .name("dashboard-keys".to_string())
        .spawn(move || read_keys(&key_sender))
        .context("cannot start the dashboard's key reader thread")?;
    let inputs = Inputs {
        feed,
        keys,
        notices,
        shutdown,
    };
    let host = Host {
        clock: &wall_clock,
        terminal_active: &|| TERMINAL_ACTIVE.load(Ordering::SeqCst),
    };
    let result = event_loop(&mut session.terminal, options, inputs, &commands, &host).await;
    let restored = session.leave().context("cannot restore the terminal");
    result.and(restored)
}

/// Everything the terminal loop waits on.
struct Inputs {
    /// The station's state.
    feed: watch::Receiver<Feed>,
    /// Terminal events from the key reader thread.
    keys: mpsc::Receiver<io::Result<Event>>,
    /// One-line messages for the footer.
    notices: mpsc::Receiver<String>,
    /// Ends the loop (signals).
    shutdown: CancellationToken,
}

/// What the loop reads from its surroundings; tests replace both.
struct Host<'a> {
    /// The wall clock and the local offset from UTC.
    clock: &'a dyn Fn() -> (Timestamp, FixedOffset),
    /// False once the panic hook has handed the terminal back after a panic elsewhere
    /// in the process: drawing then would scribble over the panic message.
    terminal_active: &'a dyn Fn() -> bool,
}

/// Draws and waits, until quit. Generic over the backend so tests run it on a
/// `TestBackend` with scripted key events and a fixed clock.
async fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    options: DashboardOptions,
    mut inputs: Inputs,
    commands: &mpsc::Sender<UiCommand>,
    host: &Host<'_>,
) -> anyhow::Result<()> {
    let clock = host.clock;
    let (now, utc_offset) = clock();
    let mut ui = UiState::new(&options, now, utc_offset);
    let mut feed = inputs.feed.borrow_and_update().clone();
    let mut dirty = true;
    loop {
        if !(host.terminal_active)() {
            anyhow::bail!(
                "badgedock panicked elsewhere and the terminal was restored; the dashboard stops"
            );
        }
        if dirty {
            (ui.now, ui.utc_offset) = clock();
            if let Feed::Live(snapshot) = &feed {
                ui.selected_slot = ui.selected_slot.min(snapshot.slots.len().saturating_sub(1));
            }
            terminal
                .draw(|frame| view::render(frame, &feed, &ui))
                .context("cannot draw the dashboard")?;
            dirty = false;
        }
        // Wake just after the next whole second so the clock ticks on time.
        let next_second = 1_000 - ui.now.0.rem_euclid(1_000) + 5;
        let until_tick = Duration::from_millis(u64::try_from(next_second).unwrap_or(1_000));
        // Biased: a feed change is drawn before keys that arrived with it are handled.
        tokio::select! {
            biased;
            () = inputs.shutdown.cancelled() => return Ok(()),
            changed = inputs.feed.changed() => {
                if changed.is_err() {
                    // The publisher is gone (the demo stopped): nothing more to show.
                    return Ok(());
                }
                feed = inputs.feed.borrow_and_update().clone();
                dirty = true;
            }
            key = inputs.keys.recv() => match key {
                Some(Ok(Event::Key(key))) => match handle_key(key, &mut ui, &feed, &options) {
                    KeyOutcome::Nothing => {}
                    KeyOutcome::Redraw => dirty = true,
                    KeyOutcome::Quit => {
                        if commands.try_send(UiCommand::Quit).is_err() {
                            tracing::debug!("nobody listened for the dashboard's quit");
                        }
                        return Ok(());
                    }
                    KeyOutcome::Send(command) => {
                        ui.notice = Some(send_notice(commands.try_send(command.clone()), &command));
                        dirty = true;
                    }
                },
                Some(Ok(_)) => dirty = true,
                Some(Err(err)) => {
                    return Err(anyhow::Error::new(err).context("cannot read keys from the terminal"));
                }
                None => anyhow::bail!("the dashboard's key reader stopped"),
            },
            Some(notice) = inputs.notices.recv() => {
                ui.notice = Some(notice);
                dirty = true;
            }
            () = tokio::time::sleep(until_tick) => dirty = true,
        }
    }
}

/// The footer message after trying to send `command`.
fn send_notice(
    sent: Result<(), mpsc::error::TrySendError<UiCommand>>,
    command: &UiCommand,
) -> String {
    let what = match command {
        UiCommand::Tap(n) => format!("demo badge {n} tapped"),
        UiCommand::Admin(AdminCommand::Retry { slot }) => format!("slot {slot}: retry sent"),
        UiCommand::Admin(AdminCommand::CancelReservation { slot }) => {
            format!("slot {slot}: cancellation sent")
        }
        UiCommand::Admin(AdminCommand::CloseLoan { .. }) => "loan closing sent".to_string(),
        UiCommand::Admin(AdminCommand::MarkLost { .. }) => "marked lost".to_string(),
        UiCommand::Admin(AdminCommand::MarkBroken { slot }) => {
            format!("slot {slot}: marked broken")
        }
        UiCommand::Admin(AdminCommand::ClearBroken { slot }) => {
            format!("slot {slot}: back in service")
        }
        UiCommand::Quit => "quitting".to_string(),
    };
    match sent {
        Ok(()) => what,
        Err(mpsc::error::TrySendError::Full(_)) => "busy: key ignored, try again".to_string(),
        Err(mpsc::error::TrySendError::Closed(_)) => {
            "not sent: nothing is listening for dashboard commands".to_string()
        }
    }
}

/// What a key press asks of the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyOutcome {
    /// Nothing changed.
    Nothing,
    /// The UI state changed; draw again.
    Redraw,
    /// Leave the dashboard.
    Quit,
    /// Send this command (and draw again).
    Send(UiCommand),
}

/// Applies one key to the UI state. Admin keys only work in admin mode and ask for
/// confirmation (`y`) first; demo keys only work with demo keys on.
fn handle_key(
    key: KeyEvent,
    ui: &mut UiState,
    feed: &Feed,
    options: &DashboardOptions,
) -> KeyOutcome {
    if key.kind != KeyEventKind::Press {
        return KeyOutcome::Nothing;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return match key.code {
            // Raw mode turns Ctrl-C into a key rather than a signal.
            KeyCode::Char('c') => KeyOutcome::Quit,
            _ => KeyOutcome::Nothing,
        };
    }
    if let Some(pending) = ui.pending.take() {
        return match key.code {
            KeyCode::Char('y' | 'Y') => KeyOutcome::Send(UiCommand::Admin(pending)),
            _ => {
                ui.notice = Some("left as it was".to_string());
                KeyOutcome::Redraw
            }
        };
    }
    match key.code {
        KeyCode::Char('q' | 'Q') => return KeyOutcome::Quit,
        KeyCode::Esc if ui.notice.is_some() => {
            ui.notice = None;
            return KeyOutcome::Redraw;
        }
        KeyCode::Char(digit @ '1'..='9') if options.demo_keys => {
            let n = u8::try_from(digit.to_digit(10).unwrap_or(0)).unwrap_or(0);
            return KeyOutcome::Send(UiCommand::Tap(n));
        }
        _ => {}
    }
    let Feed::Live(snapshot) = feed else {
        return KeyOutcome::Nothing;
    };
    if !options.admin || snapshot.slots.is_empty() {
        return KeyOutcome::Nothing;
    }
    let n_slots = snapshot.slots.len();
    let selected = ui.selected_slot.min(n_slots - 1);
    let slot = &snapshot.slots[selected];
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => {
            ui.selected_slot = selected.saturating_sub(1);
            KeyOutcome::Redraw
        }
        KeyCode::Down | KeyCode::Char('j') => {
            ui.selected_slot = (selected + 1).min(n_slots - 1);
            KeyOutcome::Redraw
        }
        KeyCode::Char('r') => {
            if slot.state == SlotState::SetAside || slot.sync == SyncState::Failed {
                ui.pending = Some(AdminCommand::Retry {
                    slot: slot.label.clone(),
                });
            } else {
                ui.notice = Some(format!("slot {}: nothing failed to retry", slot.label));
            }
            KeyOutcome::Redraw
        }
        KeyCode::Char('c') => {
            if slot.state == SlotState::Reserved {
                ui.pending = Some(AdminCommand::CancelReservation {
                    slot: slot.label.clone(),
                });
            } else {
                ui.notice = Some(format!("slot {}: no reservation to cancel", slot.label));
            }
            KeyOutcome::Redraw
        }
        KeyCode::Char('b') => {
            let label = slot.label.clone();
            match slot.state {
                SlotState::Broken => ui.pending = Some(AdminCommand::ClearBroken { slot: label }),
                SlotState::Empty | SlotState::Foreign => {
                    ui.notice = Some(format!("slot {label}: no cabinet phone to mark broken"))
                }
                _ => ui.pending = Some(AdminCommand::MarkBroken { slot: label }),
            }
            KeyOutcome::Redraw
        }
        _ => KeyOutcome::Nothing,
    }
}

/// Reads terminal events on its own thread (crossterm's reader blocks) and hands them to
/// the loop. Polls with a timeout so it notices within `KEY_POLL_INTERVAL` that the loop
/// has gone, and stops after the first error.
fn read_keys(keys: &mpsc::Sender<io::Result<Event>>) {
    while !keys.is_closed() {
        match crossterm::event::poll(KEY_POLL_INTERVAL) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(err) => {
                let _ = keys.blocking_send(Err(err));
                return;
            }
        }
        let event = crossterm::event::read();
        let failed = event.is_err();
        if keys.blocking_send(event).is_err() || failed {
            return;
        }
    }
}

/// The terminal in raw mode on the alternate screen, restored on drop.
struct TerminalSession {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    /// False once restored, so drop does not restore twice.
    active: bool,
}

impl TerminalSession {
    fn enter() -> io::Result<TerminalSession> {
        install_panic_hook();
        crossterm::terminal::enable_raw_mode()?;
        TERMINAL_ACTIVE.store(true, Ordering::SeqCst);
        let mut stdout = io::stdout();
        let entered = crossterm::execute!(
            stdout,
            crossterm::terminal::EnterAlternateScreen,
            crossterm::cursor::Hide
        )
        .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(mut terminal) => {
                if let Err(err) = terminal.clear() {
                    let _ = restore_terminal(&mut io::stdout());
                    return Err(err);
                }
                Ok(TerminalSession {
                    terminal,
                    active: true,
                })
            }
            Err(err) => {
                let _ = restore_terminal(&mut stdout);
                Err(err)
            }
        }
    }

    /// Restores the terminal, reporting failure.
    fn leave(mut self) -> io::Result<()> {
        self.active = false;
        restore_terminal(self.terminal.backend_mut())
    }
}

impl Drop for TerminalSession {
    fn drop(&mut self) {
        if self.active {
            let _ = restore_terminal(self.terminal.backend_mut());
        }
    }
}

/// Puts the terminal back as the shell expects it: cooked mode, main screen, cursor
/// shown. Safe to call when the terminal was never set up (raw mode is only undone when
/// crossterm enabled it).
fn restore_terminal(out: &mut impl Write) -> io::Result<()> {
    TERMINAL_ACTIVE.store(false, Ordering::SeqCst);
    let raw = crossterm::terminal::disable_raw_mode();
    let screen = crossterm::execute!(
        out,
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    raw.and(screen)
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Installs, once per process, a panic hook that restores the terminal (when the
/// dashboard holds it) before the previous hook prints the panic, so the message lands
/// on a usable screen instead of a raw-mode alternate screen.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(restoring_hook(previous, || {
            if TERMINAL_ACTIVE.load(Ordering::SeqCst) {
                let _ = restore_terminal(&mut io::stdout());
            }
        }));
    });
}

/// A panic hook that runs `restore` and then `previous`.
fn restoring_hook(previous: PanicHook, restore: impl Fn() + Sync + Send + 'static) -> PanicHook {
    Box::new(move |info| {
        restore();
        previous(info);
    })
}

/// Feeds a `watch` of [`Feed`] from the daemon's control socket.
struct SocketFeedTask {
    /// The control socket.
    socket: PathBuf,
    /// Where the feed is published.
    sender: watch::Sender<Feed>,
    /// Stops the task.
    cancel: CancellationToken,
}

impl SocketFeedTask {
    async fn run(self) {
        let mut backoff = RECONNECT_INITIAL;
        // When the daemon was first found unreachable; None while connected.
        let mut down_since = match &*self.sender.borrow() {
            Feed::Down { since, .. } => Some(*since),
            Feed::Live(_) => None,
        };
        loop {
            let opened = tokio::select! {
                () = self.cancel.cancelled() => return,
                () = self.sender.closed() => return,
                opened = Subscription::open(&self.socket) => opened,
            };
            match opened {
                Ok(mut subscription) => loop {
                    let next = tokio::select! {
                        () = self.cancel.cancelled() => return,
                        () = self.sender.closed() => return,
                        next = subscription.next() => next,
                    };
                    match next {
                        Ok(snapshot) => {
                            if down_since.take().is_some() {
                                tracing::info!(socket = %self.socket.display(), "connected to the badgedock daemon");
                            }
                            backoff = RECONNECT_INITIAL;
                            self.sender.send_replace(Feed::Live(snapshot));
                        }
                        Err(err) => {
                            self.publish_down(&mut down_since, err.to_string());
                            break;
                        }
                    }
                },
                Err(err) => self.publish_down(&mut down_since, err.to_string()),
            }
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = self.sender.closed() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RECONNECT_MAX);
        }
    }

    /// Publishes [`Feed::Down`], keeping the first time the daemon was found down.
    fn publish_down(&self, down_since: &mut Option<Timestamp>, reason: String) {
        let since = match down_since {
            Some(since) => *since,
            None => {
                tracing::warn!(socket = %self.socket.display(), cause = %reason, "lost the badgedock daemon; retrying");
                *down_since.insert(wall_clock().0)
            }
        };
        let down = Feed::Down { since, reason };
        self.sender.send_if_modified(|feed| {
            if *feed == down {
                false
            } else {
                *feed = down;
                true
            }
        });
    }
}

/// Sends admin commands to the daemon as control requests and turns its answers into
/// footer notices. Demo taps are ignored: the dashboard process has no demo badges.
async fn forward_commands(
    socket: PathBuf,
    mut commands: mpsc::Receiver<UiCommand>,
    notices: mpsc::Sender<String>,
    cancel: CancellationToken,
) {
    loop {
        let command = tokio::select! {
            () = cancel.cancelled() => return,
            command = commands.recv() => command,
        };
        let Some(command) = command else { return };
        let admin = match command {
            UiCommand::Admin(admin) => admin,
            UiCommand::Tap(n) => {
                tracing::debug!(key = n, "demo tap key ignored outside the demo");
                continue;
            }
            UiCommand::Quit => continue,
        };
        let answer = tokio::select! {
            () = cancel.cancelled() => return,
            answer = crate::control::request(&socket, Request::Admin { admin: admin.clone() }, ADMIN_TIMEOUT) => answer,
        };
        let notice = match answer {
            Ok(Response::Done { message }) => message,
            Ok(Response::Error { message }) => format!("refused: {message}"),
            Ok(other) => format!("unexpected answer from the daemon: {other:?}"),
            Err(err) => format!("not sent: {err}"),
        };
        tracing::info!(command = ?admin, answer = %notice, "admin command from the dashboard");
        if notices.try_send(notice).is_err() {
            tracing::debug!("dashboard notice dropped");
        }
    }
}

/// Cancels `cancel` on SIGTERM (systemd stopping the unit), SIGHUP (the SSH session
/// closed) or SIGINT, so the loop ends and restores the terminal.
async fn cancel_on_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::interrupt(),
    ];
    let mut streams = Vec::new();
    for kind in kinds {
        match signal(kind) {
            Ok(stream) => streams.push(stream),
            Err(err) => {
                tracing::warn!(cause = %err, "cannot listen for a signal; the dashboard may not restore the terminal when stopped")
            }
        }
    }
    let any_signal = futures_any(streams);
    tokio::select! {
        () = cancel.cancelled() => {}
        () = any_signal => {
            tracing::info!("signal received; closing the dashboard");
            cancel.cancel();
        }
    }
}

/// Resolves when any of the signal streams fires (never when there are none).
async fn futures_any(mut streams: Vec<tokio::signal::unix::Signal>) {
    if streams.is_empty() {
        std::future::pending::<()>().await;
    }
    std::future::poll_fn(|context| {
        for stream in &mut streams {
            if stream.poll_recv(context).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await;
}
