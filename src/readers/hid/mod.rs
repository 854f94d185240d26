//! HID badge readers: RF IDeas SDK-mode feature reports, and keyboard wedges read as
//! hidraw input reports or as evdev key events under an exclusive grab.
//!
//! [`spawn`] starts one OS thread per `hid` or `wedge` reader. Each thread opens its device
//! through a [`Backend`], reports `Online`, turns what the device sends into
//! [`ReaderEvent`]s with the pure decoders in [`keyboard`] and [`sdk`], and reports
//! `Offline` (once) when the device is missing or goes away, then rescans quietly every
//! [`HidOptions::rescan`]. Events go out with `blocking_send` on the daemon's bounded
//! channel; the thread ends when the cancellation token fires or the channel closes.
//!
//! Which path a device takes:
//! - `kind = "hid"`, vendor 0c27 (RF IDeas pcProx): SDK mode, polling the card buffer with
//!   feature reports every [`HidOptions::sdk_poll`] (readers.md 2.3). The reader should have
//!   `bHaltKBSnd` set, or it also types every card into the console (a warning is logged).
//! - `kind = "hid"`, any other vendor: boot-keyboard input reports through hidapi. With
//!   hidapi's default hidraw backend the keystrokes also reach the console (readers.md 2.4),
//!   so a warning is logged; prefer `kind = "wedge"`.
//! - `kind = "wedge"`: every `/dev/input/event*` node of the matching USB device is opened
//!   and grabbed (`EVIOCGRAB`) as soon as it is found, so keystrokes reach nobody else; the
//!   grab is released when the thread stops.
//!
//! The hardware sits behind [`Backend`], [`ReportSource`] and [`sdk::FeatureIo`]; time
//! behind [`Clock`]. [`spawn_with`] takes them explicitly, which is how the tests drive the
//! whole path from report bytes to events with a scripted fake.

pub mod keyboard;
pub mod sdk;

mod device;

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use crate::badges::RawBadge;
use crate::config::{ReaderConfig, ReaderKind};
use crate::domain::ReaderName;
use crate::readers::ReaderEvent;

pub use device::find_event_nodes;
use keyboard::{BootKeyboardDecoder, EvdevKeyDecoder, WedgeOutput};
use sdk::{FeatureIo, SdkOutput, SdkReader};

/// A device stopped answering (unplugged, permission lost, I/O error).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// One thing a keyboard-style device delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceInput {
    /// An input report from hidraw (boot keyboard: 8 bytes).
    Report(Vec<u8>),
    /// An evdev `EV_KEY` event: `KEY_*` code, value 1 press / 0 release / 2 repeat.
    Key {
        /// The `KEY_*` code.
        code: u16,
        /// Press, release or repeat.
        value: i32,
    },
}

/// A keyboard-style device: hidraw input reports or evdev key events.
pub trait ReportSource: Send {
    /// Waits up to `timeout` for the next input; `Ok(None)` when nothing came.
    fn next_input(&mut self, timeout: Duration) -> Result<Option<SourceInput>, SourceError>;
}

/// An opened reader.
pub enum Opened {
    /// Read keystrokes (boot reports or evdev keys).
    Keyboard(Box<dyn ReportSource>),
    /// Poll the card buffer with feature reports (RF IDeas SDK mode).
    Sdk(Box<dyn FeatureIo + Send>),
}

/// Why a reader could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenError {
    /// No device with the configured USB id is connected.
    #[error("not connected (no USB device {0})")]
    NotFound(String),
    /// The device is there but cannot be used; the text says what to do.
    #[error("{0}")]
    Failed(String),
}

/// Finds and opens the device of one reader.
pub trait Backend: Send {
    /// Opens the reader's device, or says why not.
    fn open(&mut self, reader: &ReaderConfig) -> Result<Opened, OpenError>;
}

/// Milliseconds and sleeping, injectable so tests run on scripted time.
pub trait Clock: Send + Sync {
    /// Monotonic milliseconds since an arbitrary start.
    fn now_ms(&self) -> u64;
    /// Blocks the calling thread for `duration`.
    fn sleep(&self, duration: Duration);
}

/// The real clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    /// A clock starting now.
    pub fn new() -> Self {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Timing of the reader threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HidOptions {
    /// How often a missing device is looked for again.
    pub rescan: Duration,
    /// How often an SDK-mode reader's card buffer is read.
    pub sdk_poll: Duration,
    /// Longest wait for keyboard input before checking timeouts and cancellation.
    pub input_wait: Duration,
    /// A wedge read with no key for this long is dropped as a half read.
    pub key_timeout_ms: u64,
}

impl Default for HidOptions {
    fn default() -> Self {
        HidOptions {
            rescan: Duration::from_secs(2),
            sdk_poll: Duration::from_millis(250),
            input_wait: Duration::from_millis(100),
            key_timeout_ms: keyboard::DEFAULT_KEY_TIMEOUT_MS,
        }
    }
}

/// The running reader threads.
#[derive(Debug)]
pub struct HidHandle {
    threads: Vec<JoinHandle<()>>,
}

impl HidHandle {
    /// How many reader threads run.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// True when no `hid` or `wedge` reader was configured.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Waits for every thread to end (cancel the token first). Blocks: call it from
    /// `spawn_blocking` or a plain thread.
    pub fn join(self) {
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a HID reader thread panicked");
            }
        }
    }
}

/// Starts a thread for every `hid` and `wedge` reader (others are ignored) with the real
/// hidapi and evdev backends.
pub fn spawn(
    readers: Vec<ReaderConfig>,
    events: Sender<ReaderEvent>,
    cancel: CancellationToken,
) -> io::Result<HidHandle> {
    let mut with_backends: Vec<(ReaderConfig, Box<dyn Backend>)> = Vec::new();
    for reader in readers {
        let backend: Box<dyn Backend> = match reader.kind {
            ReaderKind::Hid => Box::new(device::HidapiBackend::new()),
            ReaderKind::Wedge => Box::new(device::EvdevBackend::new()),
            ReaderKind::Pcsc => continue,
        };
        with_backends.push((reader, backend));
    }
    spawn_with(
        with_backends,
        events,
        cancel,
        Arc::new(SystemClock::new()),
        HidOptions::default(),
    )
}

/// Starts one thread per reader with the given backends, clock and timing.
pub fn spawn_with(
    readers: Vec<(ReaderConfig, Box<dyn Backend>)>,
    events: Sender<ReaderEvent>,
    cancel: CancellationToken,
    clock: Arc<dyn Clock>,
    options: HidOptions,
) -> io::Result<HidHandle> {
    let mut threads = Vec::new();
    for (reader, backend) in readers {
        let task = ReaderTask {
            name: reader.name.clone(),
            reader,
            backend,
            events: events.clone(),
            cancel: cancel.clone(),
            clock: clock.clone(),
            options,
            last_offline: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("hid-{}", task.name.as_str()))
            .spawn(move || task.run());
        match thread {
            Ok(thread) => threads.push(thread),
            Err(err) => {
                // Stop the ones already started before giving up.
                cancel.cancel();
                for thread in threads {
                    let _ = thread.join();
                }
                return Err(err);
            }
        }
    }
    Ok(HidHandle { threads })
}

/// Parses a `vvvv:pppp` matcher (the config loader has already checked its shape).
pub fn parse_usb_id(matcher: &str) -> Option<(u16, u16)> {
    let (vendor, product) = matcher.trim().split_once(':')?;
    Some((
        u16::from_str_radix(vendor, 16).ok()?,
        u16::from_str_radix(product, 16).ok()?,
    ))
}

/// One reader's thread.
struct ReaderTask {
    name: ReaderName,
    reader: ReaderConfig,
    backend: Box<dyn Backend>,
    events: Sender<ReaderEvent>,
    cancel: CancellationToken,
    clock: Arc<dyn Clock>,
    options: HidOptions,
    /// The last `Offline` detail sent, so a missing reader is reported once, not per rescan.
    last_offline: Option<String>,
}

impl ReaderTask {
    fn run(mut self) {
        tracing::info!(reader = %self.name, kind = ?self.reader.kind, usb_id = %self.reader.matcher, "HID reader thread started");
        while !self.stopping() {
            match self.backend.open(&self.reader).and_then(prepare) {
                Ok(device) => {
                    self.last_offline = None;
                    tracing::info!(reader = %self.name, "HID reader opened");
                    self.send(ReaderEvent::Online {
                        reader: self.name.clone(),
                    });
                    let ended = match device {
                        Device::Keyboard(source) => self.run_keyboard(source),
                        Device::Sdk(io, config) => self.run_sdk(io, config),
                    };
                    if let Some(detail) = ended {
                        tracing::warn!(reader = %self.name, %detail, "HID reader lost");
                        self.offline(detail);
                    }
                }
                Err(err) => {
                    let detail = err.to_string();
                    if self.last_offline.as_deref() != Some(detail.as_str()) {
                        tracing::warn!(reader = %self.name, %detail, "HID reader unavailable; rescanning");
                    }
                    self.offline(detail);
                }
            }
            self.pause(self.options.rescan);
        }
        tracing::info!(reader = %self.name, "HID reader thread stopped");
    }

    /// Reads keystrokes until the device fails (`Some(why)`) or the thread stops (`None`).
    fn run_keyboard(&mut self, mut source: Box<dyn ReportSource>) -> Option<String> {
        let mut reports = BootKeyboardDecoder::new(self.options.key_timeout_ms);
        let mut keys = EvdevKeyDecoder::new(self.options.key_timeout_ms);
        let mut repeat = RepeatGuard::default();
        while !self.stopping() {
            let input = match source.next_input(self.options.input_wait) {
                Ok(input) => input,
                Err(err) => return Some(err.to_string()),
            };
            let now = self.clock.now_ms();
            let outputs: Vec<WedgeOutput> = match input {
                Some(SourceInput::Report(report)) => reports.report(&report, now),
                Some(SourceInput::Key { code, value }) => keys.key(code, value, now),
                None => reports
                    .tick(now)
                    .into_iter()
                    .chain(keys.tick(now))
                    .collect(),
            };
            for output in outputs {
                match output {
                    WedgeOutput::Read(text) => {
                        if repeat.admit(&text, now, self.reader.lockout_ms) {
                            self.tap(RawBadge::Text(text));
                        } else {
                            tracing::debug!(reader = %self.name, "same read again within the lock-out; ignored");
                        }
                    }
                    dropped => {
                        if let Some(reason) = dropped.reason() {
                            self.bad_read(reason);
                        }
                    }
                }
            }
        }
        None
    }

    /// Polls an SDK-mode reader until it fails (`Some(why)`) or the thread stops (`None`).
    fn run_sdk(
        &mut self,
        mut io: Box<dyn FeatureIo + Send>,
        config: sdk::SdkConfig,
    ) -> Option<String> {
        if !config.keystrokes_halted {
            tracing::warn!(
                reader = %self.name,
                "the pcProx is not in SDK mode (bHaltKBSnd off): it also types every card into the console; configure it with bHaltKBSnd = 1"
            );
        }
        let mut poller = SdkReader::new(config, self.reader.lockout_ms);
        while !self.stopping() {
            match poller.poll(io.as_mut(), self.clock.now_ms()) {
                Ok(Some(SdkOutput::Tap(raw))) => self.tap(raw),
                Ok(Some(SdkOutput::BadRead(reason))) => self.bad_read(reason),
                Ok(None) => {}
                Err(err) => return Some(err.to_string()),
            }
            self.clock.sleep(self.options.sdk_poll);
        }
        None
    }

    fn tap(&mut self, raw: RawBadge) {
        tracing::debug!(reader = %self.name, "badge read");
        self.send(ReaderEvent::Tap {
            reader: self.name.clone(),
            raw,
        });
    }

    fn bad_read(&mut self, reason: String) {
        tracing::info!(reader = %self.name, %reason, "bad read");
        self.send(ReaderEvent::BadRead {
            reader: self.name.clone(),
            reason,
        });
    }

    fn offline(&mut self, detail: String) {
        if self.stopping() || self.last_offline.as_deref() == Some(detail.as_str()) {
            return;
        }
        self.last_offline = Some(detail.clone());
        self.send(ReaderEvent::Offline {
            reader: self.name.clone(),
            detail,
        });
    }

    fn send(&self, event: ReaderEvent) {
        if self.events.blocking_send(event).is_err() {
            tracing::debug!(reader = %self.name, "event channel closed; stopping");
        }
    }

    fn stopping(&self) -> bool {
        self.cancel.is_cancelled() || self.events.is_closed()
    }

    /// Sleeps up to `duration` in short slices so cancellation is seen quickly.
    fn pause(&self, duration: Duration) {
        let slice = Duration::from_millis(100);
        let mut left = duration;
        while !left.is_zero() && !self.stopping() {
            let step = left.min(slice);
            self.clock.sleep(step);
            left -= step;
        }
    }
}

/// An opened device, ready to read: an SDK-mode reader has had its configuration read, so a
/// device that cannot answer it is reported offline instead of flapping online.
enum Device {
    Keyboard(Box<dyn ReportSource>),
    Sdk(Box<dyn FeatureIo + Send>, sdk::SdkConfig),
}

fn prepare(opened: Opened) -> Result<Device, OpenError> {
    match opened {
        Opened::Keyboard(source) => Ok(Device::Keyboard(source)),
        Opened::Sdk(mut io) => {
            let config =
                sdk::read_config(io.as_mut()).map_err(|err| OpenError::Failed(err.to_string()))?;
            Ok(Device::Sdk(io, config))
        }
    }
}

/// Suppresses the same wedge read repeated within the lock-out (a held card typed again).
#[derive(Debug, Default)]
struct RepeatGuard {
    last: Option<(String, u64)>,
}

impl RepeatGuard {
    fn admit(&mut self, text: &str, now_ms: u64, lockout_ms: u64) -> bool {
        let repeated = matches!(
            &self.last,
            Some((previous, at)) if previous == text && now_ms.saturating_sub(*at) < lockout_ms
        );
        self.last = Some((text.to_string(), now_ms));
        !repeated
    }
}
