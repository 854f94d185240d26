//! Test doubles for the HID reader plumbing: a scripted clock, a strict feature-report
//! transcript, a simulated RF IDeas pcProx, a scripted keyboard source and a backend that
//! hands them out in order, plus helpers that write boot reports from HID usages.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use badgedock::badges::format::FormatRule;
use badgedock::config::{ReaderConfig, ReaderKind};
use badgedock::domain::ReaderName;
use badgedock::readers::hid::sdk::FeatureIo;
use badgedock::readers::hid::{
    Backend, Clock, OpenError, Opened, ReportSource, SourceError, SourceInput,
};
use badgedock::readers::ReaderEvent;
use tokio::sync::mpsc::Receiver;

/// Time that moves only when a thread sleeps or a script says so.
#[derive(Debug, Default)]
pub struct FakeClock {
    now: AtomicU64,
}

impl FakeClock {
    pub fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep(&self, duration: Duration) {
        self.advance(u64::try_from(duration.as_millis()).unwrap());
        // Yield for real so a rescan loop on fake time does not spin a core.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One exchange of a feature-report transcript.
#[derive(Debug, Clone)]
pub enum Exchange {
    /// The host must send exactly these bytes (report id first).
    Send(Vec<u8>),
    /// The device answers a GET with these bytes (report id first; may be short).
    Get(Vec<u8>),
}

/// Parses "00 8F 00 …" into bytes.
pub fn bytes(hex: &str) -> Vec<u8> {
    hex.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// A device that insists on a byte-exact transcript and records any deviation.
#[derive(Debug)]
pub struct TranscriptIo {
    pub script: VecDeque<Exchange>,
}

impl TranscriptIo {
    pub fn new(script: Vec<Exchange>) -> Self {
        TranscriptIo {
            script: script.into(),
        }
    }

    pub fn assert_done(&self) {
        assert!(
            self.script.is_empty(),
            "transcript not finished: {:?}",
            self.script
        );
    }
}

impl FeatureIo for TranscriptIo {
    fn send_feature(&mut self, data: &[u8]) -> Result<(), SourceError> {
        match self.script.pop_front() {
            Some(Exchange::Send(expected)) => {
                assert_eq!(data, expected.as_slice(), "unexpected SET_REPORT");
                Ok(())
            }
            other => panic!("SET_REPORT {data:02X?} where the transcript has {other:?}"),
        }
    }

    fn get_feature(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        assert_eq!(buf[0], 0, "GET_REPORT must ask for report id 0");
        match self.script.pop_front() {
            Some(Exchange::Get(reply)) => {
                buf[..reply.len()].copy_from_slice(&reply);
                Ok(reply.len())
            }
            other => panic!("GET_REPORT where the transcript has {other:?}"),
        }
    }
}

/// A simulated pcProx in SDK mode: answers config page 0 and the card buffers; each `8F`
/// consumes one entry of `cards` (None = no card). When the entries run out the device
/// "unplugs" (transport error).
pub struct SimulatedPcProx {
    pub page0: [u8; 8],
    pub cards: VecDeque<Option<([u8; 8], u8)>>,
    pub current: Option<([u8; 8], u8)>,
    pub pending_reply: Option<[u8; 8]>,
    /// Answer the config query with only 3 data bytes (not a pcProx after all).
    pub short_config: bool,
}

impl SimulatedPcProx {
    pub fn new(lead: u8, trail: u8, cards: Vec<Option<([u8; 8], u8)>>) -> Self {
        let mut page0 = [0u8; 8];
        page0[2] = lead | trail << 4;
        page0[6] = 0x28;
        page0[7] = 0x80; // bHaltKBSnd
        SimulatedPcProx {
            page0,
            cards: cards.into(),
            current: None,
            pending_reply: None,
            short_config: false,
        }
    }
}

impl FeatureIo for SimulatedPcProx {
    fn send_feature(&mut self, data: &[u8]) -> Result<(), SourceError> {
        assert_eq!(
            data.len(),
            9,
            "feature reports are 9 bytes with the report id"
        );
        self.pending_reply = Some(match data[1] {
            0x80 => self.page0,
            0x8F => {
                let Some(next) = self.cards.pop_front() else {
                    return Err(SourceError("device unplugged".into()));
                };
                self.current = next;
                self.current.map(|(data, _)| data).unwrap_or([0; 8])
            }
            0x8E => {
                let bits = self.current.map(|(_, bits)| bits).unwrap_or(0);
                [bits, bits, 0, 0, 0, 0, 0, 0]
            }
            other => panic!("unexpected command {other:02X}"),
        });
        Ok(())
    }

    fn get_feature(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        let reply = self.pending_reply.take().expect("GET without a command");
        buf[0] = 0;
        if self.short_config && reply == self.page0 {
            buf[1..4].copy_from_slice(&reply[..3]);
            return Ok(4);
        }
        buf[1..9].copy_from_slice(&reply);
        Ok(9)
    }
}

/// One step of a keyboard script.
#[derive(Debug, Clone)]
pub enum Step {
    Input(SourceInput),
    /// Nothing arrives for this long (the fake clock advances).
    Idle(u64),
    /// The device fails with this message.
    Fail(String),
}

/// A keyboard source replaying a script; the clock advances by `ms_per_input` per input.
pub struct ScriptedSource {
    pub steps: VecDeque<Step>,
    pub clock: Arc<FakeClock>,
    pub ms_per_input: u64,
}

impl ReportSource for ScriptedSource {
    fn next_input(&mut self, timeout: Duration) -> Result<Option<SourceInput>, SourceError> {
        match self.steps.pop_front() {
            Some(Step::Input(input)) => {
                self.clock.advance(self.ms_per_input);
                Ok(Some(input))
            }
            Some(Step::Idle(ms)) => {
                self.clock.advance(ms);
                Ok(None)
            }
            Some(Step::Fail(message)) => Err(SourceError(message)),
            None => {
                self.clock.sleep(timeout);
                Ok(None)
            }
        }
    }
}

/// What the fake backend hands out on each `open`.
pub enum Session {
    Missing,
    Denied(String),
    Keyboard(ScriptedSource),
    Sdk(SimulatedPcProx),
}

/// A backend that hands out sessions in order, then reports the reader missing.
pub struct FakeBackend {
    pub sessions: VecDeque<Session>,
    pub opens: Arc<AtomicUsize>,
}

impl FakeBackend {
    pub fn new(sessions: Vec<Session>) -> (Self, Arc<AtomicUsize>) {
        let opens = Arc::new(AtomicUsize::new(0));
        (
            FakeBackend {
                sessions: sessions.into(),
                opens: opens.clone(),
            },
            opens,
        )
    }
}

impl Backend for FakeBackend {
    fn open(&mut self, reader: &ReaderConfig) -> Result<Opened, OpenError> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        match self.sessions.pop_front() {
            None | Some(Session::Missing) => Err(OpenError::NotFound(reader.matcher.clone())),
            Some(Session::Denied(message)) => Err(OpenError::Failed(message)),
            Some(Session::Keyboard(source)) => Ok(Opened::Keyboard(Box::new(source))),
            Some(Session::Sdk(device)) => Ok(Opened::Sdk(Box::new(device))),
        }
    }
}

pub fn reader(
    name: &str,
    kind: ReaderKind,
    matcher: &str,
    format: &str,
    lockout_ms: u64,
) -> ReaderConfig {
    ReaderConfig {
        name: ReaderName::new(name),
        kind,
        matcher: matcher.to_string(),
        format: FormatRule::parse(format).unwrap(),
        lockout_ms,
        feedback: false,
    }
}

/// Waits for the next event; gives up (and fails the test) after 20 s so a bug cannot hang
/// the suite. This guards against deadlock; it asserts nothing about speed.
pub fn next_event(events: &mut Receiver<ReaderEvent>) -> ReaderEvent {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match events.try_recv() {
            Ok(event) => return event,
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                panic!("event channel closed")
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                assert!(Instant::now() < deadline, "no reader event within 20 s");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// A boot-keyboard report: modifiers then up to six usages.
pub fn report(modifiers: u8, keys: &[u8]) -> Vec<u8> {
    let mut report = vec![modifiers, 0, 0, 0, 0, 0, 0, 0];
    report[2..2 + keys.len()].copy_from_slice(keys);
    report
}

/// The HID usage and Shift for a character a wedge types.
pub fn usage_of(c: char) -> (u8, bool) {
    match c {
        'a'..='z' => (0x04 + (c as u8 - b'a'), false),
        'A'..='Z' => (0x04 + (c as u8 - b'A'), true),
        '1'..='9' => (0x1E + (c as u8 - b'1'), false),
        '0' => (0x27, false),
        _ => panic!("no usage for {c:?}"),
    }
}

/// Press/release reports typing `text` then Enter, the way a wedge reader does.
pub fn typed(text: &str) -> Vec<Vec<u8>> {
    let mut reports = Vec::new();
    for c in text.chars() {
        let (usage, shift) = usage_of(c);
        let modifiers = if shift { 0x02 } else { 0x00 };
        reports.push(report(modifiers, &[usage]));
        reports.push(report(0, &[]));
    }
    reports.push(report(0, &[0x28]));
    reports.push(report(0, &[]));
    reports
}

/// The evdev `KEY_*` code for a character, and whether Shift is needed.
pub fn key_code_of(c: char) -> (u16, bool) {
    const LETTERS: [u16; 26] = [
        30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25, 16, 19, 31, 20, 22, 47, 17,
        45, 21, 44,
    ];
    match c {
        'a'..='z' => (LETTERS[(c as u8 - b'a') as usize], false),
        'A'..='Z' => (LETTERS[(c as u8 - b'A') as usize], true),
        '1'..='9' => (2 + u16::from(c as u8 - b'1'), false),
        '0' => (11, false),
        _ => panic!("no key for {c:?}"),
    }
}

/// evdev events typing `text` then Enter (Left Shift around capitals).
pub fn typed_events(text: &str) -> Vec<(u16, i32)> {
    let mut events = Vec::new();
    for c in text.chars() {
        let (code, shift) = key_code_of(c);
        if shift {
            events.push((42, 1));
        }
        events.push((code, 1));
        events.push((code, 0));
        if shift {
            events.push((42, 0));
        }
    }
    events.push((28, 1));
    events.push((28, 0));
    events
}
