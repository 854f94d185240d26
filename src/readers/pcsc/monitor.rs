//! The reader thread's loop: one `get_status_change` over every matching reader plus
//! pcsc-lite's PnP pseudo-reader, card reads, feedback, and reconnecting to pcscd.
//!
//! Shape of the loop (one pcscd *session* per established `Context`):
//! 1. re-list the readers (pcsc-lite 1.9.9 can miss a reader change that happens
//!    between two waits, so the list is re-read after every wake-up);
//! 2. serve pending feedback requests;
//! 3. wait in `get_status_change` (1 s, or 20 ms while a card waits for feedback);
//! 4. turn each changed reader's state and insert/remove counter into reads
//!    ([`Presence`]), read the card with `FF CA 00 00 00`, report.
//!
//! When pcscd stops (`CommError`, then `NoService`) the session ends, every reader is
//! reported offline, the `Context` is dropped and a new one is established with a
//! backoff from 100 ms to 1 s. Cancellation reaches a blocked wait through
//! `Context::cancel`, called by a waker registered on the [`CancellationToken`], so
//! shutdown does not wait for the timeout.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{CStr, CString};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use pcsc::{Card, Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::apdu::{self, ReaderFamily};
use super::presence::{Arrival, Presence, Seen, Verdict};
use crate::domain::{redact, ReaderName};

/// How long a wait lasts when nothing is pending; also bounds how late a reader added
/// between two waits (pcsc-lite 1.9.9) is noticed.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// How often feedback requests are looked at while a card waits for its beep.
const FEEDBACK_POLL: Duration = Duration::from_millis(20);
/// How long after a read the engine's verdict may still beep the reader.
pub(super) const FEEDBACK_WINDOW: Duration = Duration::from_secs(3);
/// First delay before reconnecting to pcscd.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest delay between reconnection attempts (recovery within ~1 s of pcscd's return).
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Pause after an unexpected `get_status_change` error, so a persistent one cannot spin.
const ERROR_PAUSE: Duration = Duration::from_millis(200);

/// What the screen says about a random UID.
pub const RANDOM_UID_REASON: &str =
    "random UID: this card/phone changes its number on every tap; use a badge";

/// One configured reader as the loop needs it.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// The configured name (events carry it); `None` for `watch` without a config.
    pub name: Option<ReaderName>,
    /// Substring of pcscd's reader name.
    pub matcher: String,
    /// Same-badge lock-out after removal.
    pub lockout: Duration,
    /// Whether feedback may be given on this reader.
    pub feedback: bool,
}

/// What the loop reports to its owner.
pub(super) enum Report<'a> {
    /// The readers that are online now (pcscd name, target index), and what is wrong
    /// with pcscd if it cannot be reached.
    Readers {
        online: &'a [(String, usize)],
        trouble: Option<&'a str>,
    },
    /// A UID that counts as a tap.
    Card {
        reader: &'a str,
        target: usize,
        uid: Vec<u8>,
    },
    /// A card that gave no usable UID.
    BadRead { target: usize, reason: String },
}

/// The owner of the loop's reports; `false` means nobody listens any more and the loop
/// stops.
pub(super) trait Sink {
    fn report(&mut self, report: Report<'_>) -> bool;
}

/// A feedback request from [`super::PcscHandle::feedback`].
#[derive(Debug)]
pub(super) struct FeedbackRequest {
    pub reader: ReaderName,
    pub ok: bool,
}

/// The context currently in use, shared with the cancellation waker.
#[derive(Default)]
pub(super) struct ContextSlot(Mutex<Option<Context>>);

impl ContextSlot {
    fn set(&self, context: Option<Context>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = context;
    }

    pub(super) fn has_context(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some()
    }

    fn get(&self) -> Option<Context> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Woken by the cancellation token (on the thread that cancels it): cancels the blocked
/// PC/SC wait and unparks the reader thread from a backoff sleep.
struct CancelWaker {
    slot: Arc<ContextSlot>,
    thread: Thread,
}

impl Wake for CancelWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(context) = self.slot.get() {
            // Fails harmlessly when no call is blocked; the loop checks the token anyway.
            let _ = context.cancel();
        }
        self.thread.unpark();
    }
}

/// Options that differ between the daemon and `badgedock readers --watch`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Options {
    /// Report random UIDs as bad reads (daemon) or as cards (watch, which shows them).
    pub refuse_random: bool,
}

/// How a reader takes escape commands, learnt on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    Untried,
    Code(pcsc::ffi::DWORD),
    Refused,
}

/// A reader present in the current pcscd session.
struct Physical {
    /// pcscd's name, for logs and `watch`.
    name: String,
    target: usize,
    family: ReaderFamily,
    /// True once the first wait has reported the reader's state: only then is it
    /// online (a card already there is known not to be a tap).
    seen: bool,
    /// False while pcscd reports the reader UNKNOWN or UNAVAILABLE.
    available: bool,
    /// The card's connection, kept after a read so feedback can go through it.
    held: Option<Card>,
    /// Until when a feedback request for this reader is still served.
    feedback_until: Option<Instant>,
    escape: Escape,
}

enum SessionEnd {
    /// Cancelled, or nobody listens any more.
    Stop,
    /// pcscd went away (or the context broke): reconnect.
    Lost(pcsc::Error),
}

/// The online readers (pcscd name, target index) and pcscd's trouble, as last reported.
type ReadersReport = (Vec<(String, usize)>, Option<String>);

/// The loop's state.
pub(super) struct Monitor<S: Sink> {
    targets: Vec<Target>,
    options: Options,
    sink: S,
    cancel: CancellationToken,
    slot: Arc<ContextSlot>,
    feedback: Option<std::sync::mpsc::Receiver<FeedbackRequest>>,
    /// Readers of the current session, by pcscd name.
    readers: BTreeMap<CString, Physical>,
    /// Card history per pcscd reader name; survives pcscd restarts (lock-out).
    history: HashMap<CString, Presence>,
    /// pcscd readers that match no target, already logged.
    ignored: BTreeSet<CString>,
    /// What was last reported with [`Report::Readers`].
    last_readers: Option<ReadersReport>,
    stopped: bool,
}

impl<S: Sink> Monitor<S> {
    pub(super) fn new(
        targets: Vec<Target>,
        options: Options,
        sink: S,
        cancel: CancellationToken,
        slot: Arc<ContextSlot>,
        feedback: Option<std::sync::mpsc::Receiver<FeedbackRequest>>,
    ) -> Monitor<S> {
        Monitor {
            targets,
            options,
            sink,
            cancel,
            slot,
            feedback,
            readers: BTreeMap::new(),
            history: HashMap::new(),
            ignored: BTreeSet::new(),
            last_readers: None,
            stopped: false,
        }
    }

    /// Runs until the token is cancelled or the sink stops listening.
    pub(super) fn run(mut self) {
        let waker = Waker::from(Arc::new(CancelWaker {
            slot: Arc::clone(&self.slot),
            thread: std::thread::current(),
        }));
        // Polled once to register the waker; kept alive for the whole run.
        let mut cancelled = Box::pin(self.cancel.clone().cancelled_owned());
        if cancelled
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
            .is_ready()
        {
            return;
        }
        let mut backoff = BACKOFF_START;
        let mut outage_logged = false;
        while !self.should_stop() {
            match Context::establish(Scope::User) {
                Ok(context) => {
                    self.slot.set(Some(context.clone()));
                    // A cancel that came before the slot was filled found nothing to cancel.
                    if self.should_stop() {
                        break;
                    }
                    info!("connected to pcscd");
                    let end = self.session(&context);
                    self.slot.set(None);
                    self.end_session();
                    match end {
                        SessionEnd::Stop => break,
                        SessionEnd::Lost(err) => {
                            warn!(error = %err, "lost the connection to pcscd; reconnecting");
                            outage_logged = true;
                            let trouble = format!("pcscd stopped ({err}); reconnecting");
                            self.report_readers(Some(trouble));
                            backoff = BACKOFF_START;
                        }
                    }
                }
                Err(err) => {
                    if !outage_logged {
                        warn!(error = %err, "cannot reach pcscd; retrying every second at most");
                        outage_logged = true;
                    } else {
                        debug!(error = %err, "pcscd still unreachable");
                    }
                    // After a lost connection the screen already says what happened.
                    let already_reported = matches!(&self.last_readers, Some((_, Some(_))));
                    if !already_reported {
                        self.report_readers(Some(format!(
                            "pcscd is not running ({err}); retrying"
                        )));
                    }
                }
            }
            if self.should_stop() {
                break;
            }
            self.pause(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        debug!("PC/SC reader loop stopped");
    }

    fn should_stop(&self) -> bool {
        self.stopped || self.cancel.is_cancelled()
    }

    /// Sleeps for `duration` unless cancelled first (the waker unparks this thread).
    fn pause(&self, duration: Duration) {
        let until = Instant::now() + duration;
        while !self.should_stop() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::park_timeout(until - now);
        }
    }

    fn session(&mut self, context: &Context) -> SessionEnd {
        let mut states = vec![ReaderState::new(pcsc::PNP_NOTIFICATION(), State::UNAWARE)];
        for presence in self.history.values_mut() {
            presence.new_session();
        }
        loop {
            if self.should_stop() {
                return SessionEnd::Stop;
            }
            if let Err(err) = self.refresh(context, &mut states) {
                return SessionEnd::Lost(err);
            }
            self.serve_feedback(context);
            self.expire_feedback();
            if self.should_stop() {
                return SessionEnd::Stop;
            }
            for state in &mut states {
                state.sync_current_state();
            }
            match context.get_status_change(self.wait_timeout(), &mut states) {
                Ok(()) => {
                    if let Err(err) = self.handle_changes(context, &states) {
                        return SessionEnd::Lost(err);
                    }
                }
                Err(pcsc::Error::Timeout) => {}
                Err(pcsc::Error::Cancelled) => debug!("PC/SC wait cancelled"),
                // A reader vanished between the listing and the wait: list again.
                Err(pcsc::Error::UnknownReader) => self.pause(Duration::from_millis(20)),
                Err(err) if is_service_lost(err) => return SessionEnd::Lost(err),
                Err(err) => {
                    warn!(error = %err, "waiting for reader changes failed; retrying");
                    self.pause(ERROR_PAUSE);
                }
            }
        }
    }

    /// Releases the cards and forgets the readers of a finished session.
    fn end_session(&mut self) {
        for physical in self.readers.values_mut() {
            release(physical.held.take());
        }
        self.readers.clear();
    }

    /// Re-lists pcscd's readers and brings `states` in line with them.
    fn refresh(
        &mut self,
        context: &Context,
        states: &mut Vec<ReaderState>,
    ) -> Result<(), pcsc::Error> {
        let names = match context.list_readers_owned() {
            Ok(names) => names,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(err) => return Err(err),
        };
        let listed: BTreeSet<CString> = names.iter().cloned().collect();
        let pnp = pcsc::PNP_NOTIFICATION();
        states.retain(|state| {
            state.name() == pnp || listed.iter().any(|name| name.as_c_str() == state.name())
        });
        let gone: Vec<CString> = self
            .readers
            .keys()
            .filter(|name| !listed.contains(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(mut physical) = self.readers.remove(&name) {
                info!(reader = %self.target_label(physical.target), pcsc_reader = %physical.name, "PC/SC reader removed");
                release(physical.held.take());
            }
        }
        for name in names {
            if self.readers.contains_key(&name) || self.ignored.contains(&name) {
                continue;
            }
            let text = name.to_string_lossy().into_owned();
            let Some(target) = self
                .targets
                .iter()
                .position(|target| text.contains(&target.matcher))
            else {
                info!(pcsc_reader = %text, "PC/SC reader ignored: no configured reader matches its name");
                self.ignored.insert(name);
                continue;
            };
            debug!(reader = %self.target_label(target), pcsc_reader = %text, "PC/SC reader found");
            self.history.entry(name.clone()).or_default().new_session();
            states.push(ReaderState::new(name.clone(), State::UNAWARE));
            self.readers.insert(
                name,
                Physical {
                    family: ReaderFamily::from_reader_name(&text),
                    name: text,
                    target,
                    seen: false,
                    available: true,
                    held: None,
                    feedback_until: None,
                    escape: Escape::Untried,
                },
            );
        }
        self.ignored.retain(|name| listed.contains(name));
        // A reader just found is neither online nor missing until its first state is
        // known (the very next wait returns at once); reporting now would flash Offline.
        if self.readers.values().all(|physical| physical.seen) {
            self.report_readers(None);
        }
        Ok(())
    }

    /// Reports the readers that are online, when that changed.
    fn report_readers(&mut self, trouble: Option<String>) {
        let online: Vec<(String, usize)> = if trouble.is_some() {
            Vec::new()
        } else {
            self.readers
                .values()
                .filter(|physical| physical.seen && physical.available)
                .map(|physical| (physical.name.clone(), physical.target))
                .collect()
        };
        let now = (online, trouble);
        if self.last_readers.as_ref() == Some(&now) {
            return;
        }
        let keep_going = self.sink.report(Report::Readers {
            online: &now.0,
            trouble: now.1.as_deref(),
        });
        self.last_readers = Some(now);
        self.stopped |= !keep_going;
    }

    fn wait_timeout(&self) -> Duration {
        let now = Instant::now();
        let pending = self
            .readers
            .values()
            .filter_map(|physical| physical.feedback_until)
            .filter(|until| *until > now)
            .min();
        match pending {
            Some(until) => FEEDBACK_POLL.min(until - now),
            None => IDLE_WAIT,
        }
    }

    fn handle_changes(
        &mut self,
        context: &Context,
        states: &[ReaderState],
    ) -> Result<(), pcsc::Error> {
        let pnp = pcsc::PNP_NOTIFICATION();
        for state in states {
            if self.should_stop() {
                return Ok(());
            }
            let event = state.event_state();
            if state.name() == pnp || !event.contains(State::CHANGED) {
                continue;
            }
            let name = state.name().to_owned();
            let available = !event.intersects(State::UNKNOWN | State::UNAVAILABLE);
            let Some(physical) = self.readers.get_mut(&name) else {
                continue;
            };
            physical.seen = true;
            physical.available = available;
            if !available {
                release(physical.held.take());
                continue;
            }
            let seen = if event.contains(State::PRESENT) {
                if event.contains(State::MUTE) {
                    Seen::Mute
                } else {
                    Seen::Present
                }
            } else {
                Seen::Empty
            };
            let presence = self.history.entry(name.clone()).or_default();
            let change = presence.observe(seen, state.event_count());
            let now = Instant::now();
            if change.removed {
                presence.removed(now);
                release(physical.held.take());
            }
            let (reader, target) = (physical.name.clone(), physical.target);
            match change.arrival {
                Arrival::Nothing => {}
                Arrival::AlreadyThere => {
                    info!(reader = %self.target_label(target), pcsc_reader = %reader,
                        "a card was already on the reader when it came online; not a tap (take it away and tap again)");
                }
                Arrival::Missed => {
                    self.bad_read(&name, None, "the card was taken away before it could be read; hold the badge on the reader a moment longer".into());
                }
                Arrival::Mute => {
                    self.bad_read(
                        &name,
                        None,
                        "the card did not answer the reader; tap again, or use another badge"
                            .into(),
                    );
                }
                Arrival::Read => self.read_card(context, &name)?,
            }
        }
        self.report_readers(None);
        Ok(())
    }

    /// Reads the UID of the card just put on reader `name` and reports it.
    fn read_card(&mut self, context: &Context, name: &CStr) -> Result<(), pcsc::Error> {
        let started = Instant::now();
        let card = match context.connect(name, ShareMode::Shared, Protocols::ANY) {
            Ok(card) => card,
            Err(err) if is_service_lost(err) => return Err(err),
            Err(err) => {
                self.bad_read(name, None, card_error_reason("connect", err));
                return Ok(());
            }
        };
        let mut buffer = [0u8; pcsc::MAX_BUFFER_SIZE];
        let answer = match card.transmit(&apdu::GET_UID, &mut buffer) {
            Ok(answer) => answer.to_vec(),
            Err(err) => {
                release(Some(card));
                if is_service_lost(err) {
                    return Err(err);
                }
                self.bad_read(name, None, card_error_reason("transmit", err));
                return Ok(());
            }
        };
        let card = Some(card);
        let uid = match apdu::parse_uid_answer(&answer) {
            Ok(uid) => uid,
            Err(no_uid) => {
                self.bad_read(name, card, no_uid.reason);
                return Ok(());
            }
        };
        let Some(physical) = self.readers.get(name) else {
            release(card);
            return Ok(());
        };
        let (reader, target) = (physical.name.clone(), physical.target);
        let label = self.target_label(target);
        let redacted = redact(&crate::badges::format::hex_upper(&uid));
        if self.options.refuse_random && crate::badges::RawBadge::Uid(uid.clone()).is_random_uid() {
            self.bad_read(name, card, RANDOM_UID_REASON.into());
            return Ok(());
        }
        let lockout = self.targets[target].lockout;
        let verdict =
            self.history
                .entry(name.to_owned())
                .or_default()
                .read(&uid, Instant::now(), lockout);
        if verdict == Verdict::LockedOut {
            info!(reader = %label, pcsc_reader = %reader, uid = %redacted,
                lockout_ms = lockout.as_millis() as u64, "same badge again within the lock-out; ignored");
            release(card);
            return Ok(());
        }
        info!(reader = %label, pcsc_reader = %reader, uid = %redacted, uid_len = uid.len(),
            read_us = started.elapsed().as_micros() as u64, "badge read");
        self.hold_for_feedback(name, card);
        let keep_going = self.sink.report(Report::Card {
            reader: &reader,
            target,
            uid,
        });
        self.stopped |= !keep_going;
        Ok(())
    }

    /// Logs and reports a presentation that gave no usable UID.
    fn bad_read(&mut self, name: &CStr, card: Option<Card>, reason: String) {
        let Some(physical) = self.readers.get(name) else {
            release(card);
            return;
        };
        let (reader, target) = (physical.name.clone(), physical.target);
        warn!(reader = %self.target_label(target), pcsc_reader = %reader, reason = %reason, "card gave no usable UID");
        self.hold_for_feedback(name, card);
        let keep_going = self.sink.report(Report::BadRead { target, reason });
        self.stopped |= !keep_going;
    }

    /// Keeps the card connected for a moment when the reader can beep, so the engine's
    /// verdict can be signalled through it; otherwise disconnects at once.
    fn hold_for_feedback(&mut self, name: &CStr, card: Option<Card>) {
        let wants_feedback = self.feedback.is_some();
        let Some(physical) = self.readers.get_mut(name) else {
            release(card);
            return;
        };
        let capable = physical.family != ReaderFamily::Unknown
            && physical.escape != Escape::Refused
            || physical.family == ReaderFamily::Acr122u && card.is_some();
        if wants_feedback && capable && self.targets[physical.target].feedback {
            release(physical.held.take());
            physical.held = card;
            physical.feedback_until = Some(Instant::now() + FEEDBACK_WINDOW);
        } else {
            release(card);
        }
    }

    /// Drops the held cards whose feedback window has passed.
    fn expire_feedback(&mut self) {
        let now = Instant::now();
        for physical in self.readers.values_mut() {
            if physical.feedback_until.is_some_and(|until| until <= now) {
                physical.feedback_until = None;
                release(physical.held.take());
            }
        }
    }

    fn serve_feedback(&mut self, context: &Context) {
        let Some(receiver) = &self.feedback else {
            return;
        };
        let requests: Vec<FeedbackRequest> = receiver.try_iter().collect();
        for request in requests {
            let now = Instant::now();
            let waiting = self
                .readers
                .iter()
                .filter(|(_, physical)| {
                    self.targets[physical.target].name.as_ref() == Some(&request.reader)
                        && physical.feedback_until.is_some_and(|until| until > now)
                })
                .max_by_key(|(_, physical)| physical.feedback_until)
                .map(|(name, _)| name.clone());
            let Some(name) = waiting else {
                debug!(reader = %request.reader, "feedback requested when no read was waiting for it; dropped");
                continue;
            };
            if let Some(physical) = self.readers.get_mut(&name) {
                give_feedback(context, &name, physical, request.ok);
                physical.feedback_until = None;
                release(physical.held.take());
            }
        }
    }

    fn target_label(&self, target: usize) -> String {
        match &self.targets[target].name {
            Some(name) => name.to_string(),
            None => "-".to_string(),
        }
    }
}

/// Beeps / flashes reader `name` through its held card or a direct connection.
fn give_feedback(context: &Context, name: &CStr, physical: &mut Physical, ok: bool) {
    let outcome = match physical.family {
        ReaderFamily::Unknown => return,
        ReaderFamily::Acr122u => match &physical.held {
            Some(card) => {
                let mut buffer = [0u8; pcsc::MAX_BUFFER_SIZE];
                match card.transmit(&apdu::acr122u_feedback(ok), &mut buffer) {
                    Ok(answer) if apdu::acr122u_feedback_accepted(answer) => Ok(()),
                    Ok(answer) => Err(format!("the reader answered {answer:02X?}")),
                    Err(err) => Err(err.to_string()),
                }
            }
            None => escape(
                context,
                name,
                physical,
                &apdu::acr122u_feedback(ok),
                apdu::acr122u_feedback_accepted,
            ),
        },
        ReaderFamily::Acr12xx => escape(
            context,
            name,
            physical,
            &apdu::acr12xx_buzzer(ok),
            apdu::acr12xx_accepted,
        ),
    };
    match outcome {
        Ok(()) => debug!(pcsc_reader = %physical.name, ok, "feedback given"),
        Err(why) => warn!(pcsc_reader = %physical.name, ok, error = %why, "reader feedback failed"),
    }
}

/// Sends an escape command through the held card, or through a direct connection.
fn escape(
    context: &Context,
    name: &CStr,
    physical: &mut Physical,
    command: &[u8],
    accepted: fn(&[u8]) -> bool,
) -> Result<(), String> {
    let codes: Vec<pcsc::ffi::DWORD> = match physical.escape {
        Escape::Refused => return Err("the driver refuses escape commands".into()),
        Escape::Code(code) => vec![code],
        Escape::Untried => apdu::escape_control_codes().to_vec(),
    };
    let direct = match &physical.held {
        Some(_) => None,
        None => Some(
            context
                .connect(name, ShareMode::Direct, Protocols::UNDEFINED)
                .map_err(|err| format!("direct connection refused: {err}"))?,
        ),
    };
    let (result, working_code) = match (&physical.held, &direct) {
        (Some(card), _) | (None, Some(card)) => try_escape(card, &codes, command, accepted),
        (None, None) => (Err("no connection to the reader".into()), None),
    };
    release(direct);
    if let Some(code) = working_code {
        physical.escape = Escape::Code(code);
    }
    if result.is_err() && physical.escape == Escape::Untried {
        physical.escape = Escape::Refused;
        warn!(pcsc_reader = %physical.name,
            "the reader driver refused its escape commands: no beep or LED feedback on this reader \
             (with libccid set bit 0 of ifdDriverOptions in its Info.plist, or use ACS's acsccid driver)");
    }
    result
}

/// Tries each control code until the driver takes one; returns the outcome and the
/// code that the driver accepted.
fn try_escape(
    card: &Card,
    codes: &[pcsc::ffi::DWORD],
    command: &[u8],
    accepted: fn(&[u8]) -> bool,
) -> (Result<(), String>, Option<pcsc::ffi::DWORD>) {
    let mut buffer = [0u8; pcsc::MAX_BUFFER_SIZE];
    let mut last_error = String::from("no control code to try");
    for &code in codes {
        match card.control(code, command, &mut buffer) {
            Ok(answer) if accepted(answer) => return (Ok(()), Some(code)),
            Ok(answer) => {
                return (
                    Err(format!("the reader answered {answer:02X?}")),
                    Some(code),
                )
            }
            Err(err) => last_error = err.to_string(),
        }
    }
    (Err(last_error), None)
}

/// Disconnects a card, leaving it powered (the crate's `Drop` would reset it).
fn release(card: Option<Card>) {
    if let Some(card) = card {
        if let Err((_card, err)) = card.disconnect(Disposition::LeaveCard) {
            debug!(error = %err, "disconnecting from the card failed (it is probably gone)");
        }
    }
}

/// True when the error means pcscd (or our connection to it) is gone.
fn is_service_lost(err: pcsc::Error) -> bool {
    matches!(
        err,
        pcsc::Error::CommError
            | pcsc::Error::NoService
            | pcsc::Error::ServiceStopped
            | pcsc::Error::InvalidHandle
    )
}

/// Words a failed connect/transmit for the screen.
fn card_error_reason(call: &str, err: pcsc::Error) -> String {
    match err {
        pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard | pcsc::Error::ResetCard => {
            "the card was taken away before it could be read; hold the badge on the reader a moment longer".into()
        }
        pcsc::Error::UnresponsiveCard | pcsc::Error::UnpoweredCard | pcsc::Error::UnsupportedCard => {
            format!("the card did not answer the reader ({err}); tap again, or use another badge")
        }
        pcsc::Error::SharingViolation => {
            format!("another program holds the reader exclusively ({err}); close it (e.g. a browser smart-card plug-in)")
        }
        _ => format!("the reader could not read the card ({call}: {err}); tap again"),
    }
}
