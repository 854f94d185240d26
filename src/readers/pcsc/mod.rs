//! PC/SC contactless readers through pcsc-lite (the `pcsc` crate), on their own thread.
//!
//! [`spawn`] starts the reader thread for the daemon: one `get_status_change` loop over
//! every pcscd reader whose name contains a configured `match` string, plus pcsc-lite's
//! PnP pseudo-reader. Each new card is read once with `FF CA 00 00 00` and reported as a
//! [`ReaderEvent::Tap`] (raw UID bytes in the order the reader returned them) or, when no
//! usable UID came back, a [`ReaderEvent::BadRead`] with a reason for the screen. A card
//! held on the reader is one tap; the same badge again after removal is a new tap only
//! after the reader's `lockout_ms`. Random UIDs (4 bytes starting `08`) are never taps.
//! Readers coming and going, and pcscd stopping and returning, are reported as
//! [`ReaderEvent::Online`] / [`ReaderEvent::Offline`]; the thread reconnects by itself.
//!
//! [`list_readers`] and [`watch`] serve `badgedock readers [--watch]`.
//!
//! Logs name the configured reader and pcscd's reader; UIDs appear only redacted.

mod apdu;
mod monitor;
mod presence;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::badges::RawBadge;
use crate::config::{ReaderConfig, ReaderKind};
use crate::domain::ReaderName;
use crate::readers::ReaderEvent;

pub use apdu::{parse_uid_answer, ReaderFamily, GET_UID};
pub use monitor::RANDOM_UID_REASON;

use monitor::{ContextSlot, FeedbackRequest, Monitor, Options, Report, Sink, Target};

/// Errors of the one-shot PC/SC calls ([`list_readers`], [`watch`]).
#[derive(Debug, Error)]
pub enum PcscError {
    /// pcscd cannot be reached.
    #[error("cannot connect to pcscd: start it (`systemctl start pcscd.socket`) and check that this user may use it (polkit rule)")]
    Service(#[source] pcsc::Error),
    /// A PC/SC call failed.
    #[error("PC/SC call {call} failed")]
    Call {
        /// The PC/SC function.
        call: &'static str,
        /// pcsc-lite's answer.
        #[source]
        source: pcsc::Error,
    },
}

/// The running reader thread.
///
/// Cancelling the token given to [`spawn`] stops it promptly (a blocked PC/SC wait is
/// cancelled through the context); [`PcscHandle::join`] then waits for it. Dropping the
/// handle does not stop the thread.
pub struct PcscHandle {
    thread: Option<JoinHandle<()>>,
    /// The context the thread is using, the one its cancellation cancels.
    slot: Arc<ContextSlot>,
    feedback: std::sync::mpsc::Sender<FeedbackRequest>,
    /// Configured readers with `feedback = true`.
    feedback_readers: BTreeSet<ReaderName>,
}

impl PcscHandle {
    /// Asks for a success (`ok`) or failure beep/LED on `reader` for the read just
    /// reported. Never blocks: the reader thread serves the request while the card is
    /// still connected, within a few seconds of the read. Does nothing for readers with
    /// `feedback = false` and for reader models without known feedback commands
    /// (only ACS ACR122U and ACR1252U-family readers have them).
    pub fn feedback(&self, reader: &ReaderName, ok: bool) {
        if self.feedback_readers.contains(reader) {
            // The thread may have stopped; then there is nothing to signal.
            let _ = self.feedback.send(FeedbackRequest {
                reader: reader.clone(),
                ok,
            });
        }
    }

    /// True while the reader thread holds a connection (a context) to pcscd.
    pub fn connected(&self) -> bool {
        self.slot.has_context()
    }

    /// Waits for the reader thread to finish (after its token was cancelled).
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                error!("the PC/SC reader thread panicked");
            }
        }
    }
}

/// Starts the PC/SC reader thread for `readers` (the `kind = "pcsc"` ones; others are
/// ignored with a warning). Events go to `events` with `blocking_send`; the thread stops
/// when `cancel` is cancelled or `events` is closed. pcscd need not be running yet.
pub fn spawn(
    readers: Vec<ReaderConfig>,
    events: mpsc::Sender<ReaderEvent>,
    cancel: CancellationToken,
) -> std::io::Result<PcscHandle> {
    let readers: Vec<ReaderConfig> = readers
        .into_iter()
        .filter(|reader| {
            let pcsc = reader.kind == ReaderKind::Pcsc;
            if !pcsc {
                warn!(reader = %reader.name, "not a PC/SC reader; the PC/SC thread ignores it");
            }
            pcsc
        })
        .collect();
    let targets = readers
        .iter()
        .map(|reader| Target {
            name: Some(reader.name.clone()),
            matcher: reader.matcher.clone(),
            lockout: Duration::from_millis(reader.lockout_ms),
            feedback: reader.feedback,
        })
        .collect();
    let feedback_readers = readers
        .iter()
        .filter(|reader| reader.feedback)
        .map(|reader| reader.name.clone())
        .collect();
    let (feedback, feedback_requests) = std::sync::mpsc::channel();
    let slot = Arc::new(ContextSlot::default());
    let sink = EventSink {
        readers: readers
            .iter()
            .map(|reader| (reader.name.clone(), reader.matcher.clone()))
            .collect(),
        events,
        reported: BTreeMap::new(),
    };
    let monitor = Monitor::new(
        targets,
        Options {
            refuse_random: true,
        },
        sink,
        cancel,
        Arc::clone(&slot),
        Some(feedback_requests),
    );
    // The thread logs through the caller's subscriber (a test's scoped one included).
    let dispatch = tracing::dispatcher::get_default(|dispatch| dispatch.clone());
    let thread = std::thread::Builder::new()
        .name("pcsc-readers".into())
        .spawn(move || tracing::dispatcher::with_default(&dispatch, || monitor.run()))?;
    Ok(PcscHandle {
        thread: Some(thread),
        slot,
        feedback,
        feedback_readers,
    })
}

/// The names of the readers pcscd knows now (empty when there are none).
pub fn list_readers() -> Result<Vec<String>, PcscError> {
    let context = pcsc::Context::establish(pcsc::Scope::User).map_err(PcscError::Service)?;
    match context.list_readers_owned() {
        Ok(names) => Ok(names
            .iter()
            .map(|name| name.to_string_lossy().into_owned())
            .collect()),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(source) => Err(PcscError::Call {
            call: "SCardListReaders",
            source,
        }),
    }
}

/// `badgedock readers --watch`: sends `(pcscd reader name, badge)` for every card put on
/// a reader, until `cancel` is cancelled or `out` is closed. Blocks the calling thread.
///
/// With PC/SC readers in `readers`, only readers matching them are watched; otherwise
/// every reader is. Unlike the daemon there is no lock-out (an installer taps the same
/// badge again and again) and random UIDs are sent too (`RawBadge::is_random_uid` flags
/// them); reads without a usable UID are logged as warnings.
pub fn watch(
    readers: &[ReaderConfig],
    out: std::sync::mpsc::Sender<(String, RawBadge)>,
    cancel: CancellationToken,
) -> Result<(), PcscError> {
    // Fail fast when pcscd is not there at all; later outages are ridden out.
    drop(pcsc::Context::establish(pcsc::Scope::User).map_err(PcscError::Service)?);
    let mut targets: Vec<Target> = readers
        .iter()
        .filter(|reader| reader.kind == ReaderKind::Pcsc)
        .map(|reader| Target {
            name: Some(reader.name.clone()),
            matcher: reader.matcher.clone(),
            lockout: Duration::ZERO,
            feedback: false,
        })
        .collect();
    if targets.is_empty() {
        targets.push(Target {
            name: None,
            matcher: String::new(),
            lockout: Duration::ZERO,
            feedback: false,
        });
    }
    let monitor = Monitor::new(
        targets,
        Options {
            refuse_random: false,
        },
        WatchSink { out },
        cancel,
        Arc::new(ContextSlot::default()),
        None,
    );
    monitor.run();
    Ok(())
}

/// Turns the loop's reports into [`ReaderEvent`]s for the daemon, one Online/Offline per
/// configured reader (online while at least one matching pcscd reader is present).
struct EventSink {
    /// Configured name and matcher, by target index.
    readers: Vec<(ReaderName, String)>,
    events: mpsc::Sender<ReaderEvent>,
    /// What was last reported per reader: `None` online, `Some(detail)` offline.
    reported: BTreeMap<usize, Option<String>>,
}

impl Sink for EventSink {
    fn report(&mut self, report: Report<'_>) -> bool {
        match report {
            Report::Readers { online, trouble } => {
                for (index, (name, matcher)) in self.readers.iter().enumerate() {
                    let status = match trouble {
                        Some(trouble) => Some(trouble.to_string()),
                        None if online.iter().any(|(_, target)| *target == index) => None,
                        None => Some(format!(
                            "no PC/SC reader whose name contains {matcher:?} is connected (`badgedock readers` lists them)"
                        )),
                    };
                    if self.reported.get(&index) == Some(&status) {
                        continue;
                    }
                    let event = match &status {
                        None => ReaderEvent::Online {
                            reader: name.clone(),
                        },
                        Some(detail) => ReaderEvent::Offline {
                            reader: name.clone(),
                            detail: detail.clone(),
                        },
                    };
                    self.reported.insert(index, status);
                    if self.events.blocking_send(event).is_err() {
                        return false;
                    }
                }
                true
            }
            Report::Card { target, uid, .. } => self
                .events
                .blocking_send(ReaderEvent::Tap {
                    reader: self.readers[target].0.clone(),
                    raw: RawBadge::Uid(uid),
                })
                .is_ok(),
            Report::BadRead { target, reason, .. } => self
                .events
                .blocking_send(ReaderEvent::BadRead {
                    reader: self.readers[target].0.clone(),
                    reason,
                })
                .is_ok(),
        }
    }
}

/// Sends every card to `badgedock readers --watch`.
struct WatchSink {
    out: std::sync::mpsc::Sender<(String, RawBadge)>,
}

impl Sink for WatchSink {
    fn report(&mut self, report: Report<'_>) -> bool {
        match report {
            Report::Card { reader, uid, .. } => self
                .out
                .send((reader.to_string(), RawBadge::Uid(uid)))
                .is_ok(),
            Report::Readers { online, trouble } => {
                match trouble {
                    Some(trouble) => warn!(problem = %trouble, "PC/SC readers unavailable"),
                    None => {
                        tracing::info!(readers = ?online.iter().map(|(name, _)| name).collect::<Vec<_>>(), "watching PC/SC readers")
                    }
                }
                true
            }
            Report::BadRead { .. } => true,
        }
    }
}
