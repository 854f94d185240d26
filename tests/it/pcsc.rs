//! The PC/SC reader backend against a real pcscd, the vsmartcard vpcd driver and the
//! project's own virtual card (`support/pcscd.rs`): UIDs read exactly, debounce and
//! lock-out, two readers, pcscd killed and restarted, error status words, random UIDs,
//! feedback, prompt cancellation, and the `badgedock readers --watch` feed.
//!
//! Waits are generous bounds, never timing assertions: the speed figures come from
//! `cargo bench --bench pcsc`.

#[path = "support/pcscd.rs"]
pub mod harness;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use badgedock::badges::format::FormatRule;
use badgedock::badges::RawBadge;
use badgedock::config::{ReaderConfig, ReaderKind};
use badgedock::domain::ReaderName;
use badgedock::readers::pcsc::{self as backend, PcscHandle, RANDOM_UID_REASON};
use badgedock::readers::ReaderEvent;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use harness::{Pcscd, VirtualCard, READERS};

/// Long enough for anything that should happen; a bound, not a measurement.
const PATIENCE: Duration = Duration::from_secs(20);
/// Long enough for a card to be noticed and read (pcscd polls vpcd every 400 ms).
const HOLD: Duration = Duration::from_millis(1200);

fn reader(name: &str, matcher: &str, lockout_ms: u64, feedback: bool) -> ReaderConfig {
    ReaderConfig {
        name: ReaderName::new(name),
        kind: ReaderKind::Pcsc,
        matcher: matcher.to_string(),
        format: FormatRule::parse("hex").unwrap(),
        lockout_ms,
        feedback,
    }
}

/// The backend under test, with its event channel and its log.
struct Backend {
    handle: Option<PcscHandle>,
    events: mpsc::Receiver<ReaderEvent>,
    cancel: CancellationToken,
    logs: CapturedLogs,
}

impl Backend {
    fn spawn(readers: Vec<ReaderConfig>) -> Backend {
        let (sender, events) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let logs = CapturedLogs::default();
        // The reader thread keeps the subscriber that is current when it is spawned.
        let handle = {
            let _guard = logs.install();
            backend::spawn(readers, sender, cancel.clone()).unwrap()
        };
        Backend {
            handle: Some(handle),
            events,
            cancel,
            logs,
        }
    }

    fn handle(&self) -> &PcscHandle {
        self.handle.as_ref().unwrap()
    }

    /// The next event, or a panic naming `what` was awaited.
    fn next(&mut self, what: &str) -> ReaderEvent {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.events.try_recv() {
                Ok(event) => return event,
                Err(mpsc::error::TryRecvError::Empty) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(err) => panic!(
                    "no event while waiting for {what}: {err}\n--- reader thread log ---\n{}",
                    self.logs.text()
                ),
            }
        }
    }

    /// The next tap or bad read, skipping Online/Offline.
    fn next_read(&mut self, what: &str) -> ReaderEvent {
        loop {
            match self.next(what) {
                ReaderEvent::Online { .. } | ReaderEvent::Offline { .. } => continue,
                event => return event,
            }
        }
    }

    /// Waits for `reader` to be reported online.
    fn online(&mut self, reader: &str) {
        loop {
            if let ReaderEvent::Online { reader: name } = self.next(&format!("{reader} online")) {
                if name.as_str() == reader {
                    return;
                }
            }
        }
    }

    /// Waits for `reader` to be reported offline; returns the detail.
    fn offline(&mut self, reader: &str) -> String {
        loop {
            if let ReaderEvent::Offline {
                reader: name,
                detail,
            } = self.next(&format!("{reader} offline"))
            {
                if name.as_str() == reader {
                    return detail;
                }
            }
        }
    }

    /// Cancels and joins, returning how long the join took.
    fn stop(&mut self) -> Duration {
        self.cancel.cancel();
        let started = Instant::now();
        if let Some(handle) = self.handle.take() {
            handle.join();
        }
        started.elapsed()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tap(reader: &str, uid: &[u8]) -> ReaderEvent {
    ReaderEvent::Tap {
        reader: ReaderName::new(reader),
        raw: RawBadge::Uid(uid.to_vec()),
    }
}

/// Log lines of the reader thread (it inherits the spawning thread's subscriber).
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[test]
fn insertion_gives_a_tap_with_the_exact_uid_of_4_7_and_10_bytes() {
    let pcscd = Pcscd::start();
    let mut backend = Backend::spawn(vec![reader("front", "Virtual PCD 00 00", 0, false)]);
    // Online straight away, without a passing Offline while the first state is read.
    assert_eq!(
        backend.next("the reader online"),
        ReaderEvent::Online {
            reader: ReaderName::new("front")
        }
    );
    let uids: [&[u8]; 3] = [
        &[0xDE, 0xAD, 0xBE, 0xEF],
        &[0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6],
        &[0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99],
    ];
    for uid in uids {
        let card = pcscd.insert(0, VirtualCard::with_uid(uid));
        assert_eq!(backend.next_read("a tap"), tap("front", uid));
        let log = card.remove();
        assert_eq!(
            log.commands(),
            vec![vec![0xFF, 0xCA, 0x00, 0x00, 0x00]],
            "one GET DATA per presentation"
        );
    }
}

#[test]
fn a_held_card_is_one_tap_and_the_same_badge_taps_again_only_after_the_lockout() {
    let pcscd = Pcscd::start();
    let mut backend = Backend::spawn(vec![reader("front", "Virtual PCD 00 00", 3000, false)]);
    backend.online("front");
    let badge = [0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6];
    let other = [0x11, 0x22, 0x33, 0x44];

    let held = pcscd.insert(0, VirtualCard::with_uid(&badge));
    assert_eq!(backend.next_read("the first tap"), tap("front", &badge));
    std::thread::sleep(Duration::from_secs(5));
    let log = held.remove();
    assert_eq!(log.commands().len(), 1, "a held card is read once");
    let removed_at = Instant::now();

    // Straight back on the reader: within the 3 s lock-out, so not a tap. A different
    // badge afterwards is: the next event must be that one, with nothing in between.
    pcscd.present_card(0, &badge, HOLD);
    pcscd.present_card(0, &other, HOLD);
    assert_eq!(backend.next_read("the other badge"), tap("front", &other));

    // After the lock-out the same badge is a tap again.
    std::thread::sleep(Duration::from_millis(3500).saturating_sub(removed_at.elapsed()));
    pcscd.present_card(0, &badge, HOLD);
    assert_eq!(
        backend.next_read("the badge after the lock-out"),
        tap("front", &badge)
    );
}

#[test]
fn a_card_already_on_the_reader_at_start_is_not_a_tap() {
    let pcscd = Pcscd::start();
    let lying_there = pcscd.insert(0, VirtualCard::with_uid(&[0x04, 0x0A, 0x0B, 0x0C]));
    // Wait until pcscd has seen it, so it is really there before the backend starts.
    let deadline = Instant::now() + PATIENCE;
    while lying_there.log().powered_at.is_none() {
        assert!(Instant::now() < deadline, "pcscd never powered the card");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut backend = Backend::spawn(vec![reader("front", "Virtual PCD 00 00", 0, false)]);
    backend.online("front");
    drop(lying_there);
    pcscd.present_card(0, &[0x04, 0x0D, 0x0E, 0x0F], HOLD);
    assert_eq!(
        backend.next_read("the next badge"),
        tap("front", &[0x04, 0x0D, 0x0E, 0x0F])
    );
    assert!(backend
        .logs
        .text()
        .contains("a card was already on the reader"));
}

#[test]
fn two_readers_read_at_once() {
    let pcscd = Pcscd::start();
    let mut backend = Backend::spawn(vec![
        reader("left", "Virtual PCD 00 00", 0, false),
        reader("right", "Virtual PCD 00 01", 0, false),
    ]);
    backend.online("left");
    backend.online("right");
    let left_badge = [0x0A, 0x0B, 0x0C, 0x0D];
    let right_badge = [0x04, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
    let left = pcscd.insert(0, VirtualCard::with_uid(&left_badge));
    let right = pcscd.insert(1, VirtualCard::with_uid(&right_badge));
    let mut taps = vec![
        backend.next_read("a first tap"),
        backend.next_read("a second tap"),
    ];
    taps.sort_by_key(|event| format!("{event:?}"));
    assert_eq!(
        taps,
        vec![tap("left", &left_badge), tap("right", &right_badge)]
    );
    drop((left, right));
}

#[test]
fn the_reader_thread_recovers_when_pcscd_is_killed_and_restarted() {
    let mut pcscd = Pcscd::start();
    let mut backend = Backend::spawn(vec![reader("front", "Virtual PCD 00 00", 0, false)]);
    backend.online("front");
    pcscd.present_card(0, &[0x01, 0x02, 0x03, 0x04], HOLD);
    assert_eq!(
        backend.next_read("a tap before the crash"),
        tap("front", &[0x01, 0x02, 0x03, 0x04])
    );

    pcscd.kill();
    let detail = backend.offline("front");
    assert!(
        detail.contains("pcscd"),
        "the screen says pcscd is the problem: {detail}"
    );

    pcscd.restart();
    backend.online("front");
    pcscd.present_card(0, &[0x05, 0x06, 0x07, 0x08], HOLD);
    assert_eq!(
        backend.next_read("a tap after the restart"),
        tap("front", &[0x05, 0x06, 0x07, 0x08])
    );
}

#[test]
fn error_status_words_give_a_bad_read_a_clear_log_line_and_no_tap() {
    let pcscd = Pcscd::start();
    let mut backend = Backend::spawn(vec![reader("front", "Virtual PCD 00 00", 0, false)]);
    backend.online("front");
    for (status, meaning) in [
        ([0x6A, 0x81], "status 6A 81, function not supported"),
        ([0x63, 0x00], "status 63 00, operation failed"),
        ([0x6C, 0x04], "status 6C 04"),
    ] {
        let card = pcscd.insert(0, VirtualCard::refusing(status));
        match backend.next_read("a bad read") {
            ReaderEvent::BadRead { reader, reason } => {
                assert_eq!(reader.as_str(), "front");
                assert!(reason.contains(meaning), "{reason}");
            }
            other => panic!("expected a bad read for {status:02X?}, got {other:?}"),
        }
        drop(card);
        // The next read is a good card's tap: the refused one produced no tap.
        pcscd.present_card(0, &[0x0C, 0x0D, 0x0E, 0x0F], HOLD);
        assert_eq!(
            backend.next_read("the good card"),
            tap("front", &[0x0C, 0x0D, 0x0E, 0x0F])
        );
        let text = backend.logs.text();
        let line = text
            .lines()
            .find(|line| line.contains("card gave no usable UID") && line.contains(meaning))
            .unwrap_or_else(|| panic!("no log line for {status:02X?} in:\n{text}"));
        assert!(
            line.contains("WARN") && line.contains("reader=front"),
            "{line}"
        );
    }
}

#[test]
fn a_random_uid_is_a_bad_read_never_a_tap() {
    let pcscd = Pcscd::start();
    let mut backend = Backend::spawn(vec![reader("front", "Virtual PCD 00 00", 0, false)]);
    backend.online("front");
    pcscd.present_card(0, &[0x08, 0x3F, 0x12, 0x9A], HOLD);
    assert_eq!(
        backend.next_read("the random UID"),
        ReaderEvent::BadRead {
            reader: ReaderName::new("front"),
            reason: RANDOM_UID_REASON.to_string()
        }
    );
    pcscd.present_card(0, &[0x04, 0x3F, 0x12, 0x9A], HOLD);
    assert_eq!(
        backend.next_read("a real badge"),
        tap("front", &[0x04, 0x3F, 0x12, 0x9A])
    );
}

#[test]
fn feedback_beeps_an_acr122u_through_the_card_unless_switched_off() {
    let pcscd = Pcscd::start_as("ACS ACR122U PICC Interface");
    let mut backend = Backend::spawn(vec![
        reader("acs", &pcscd.reader(0), 0, true),
        reader("quiet", &pcscd.reader(1), 0, false),
    ]);
    backend.online("acs");
    backend.online("quiet");
    let get_uid = vec![0xFF, 0xCA, 0x00, 0x00, 0x00];
    for (ok, beep) in [
        (
            true,
            vec![0xFF, 0x00, 0x40, 0xA0, 0x04, 0x01, 0x01, 0x01, 0x01],
        ),
        (
            false,
            vec![0xFF, 0x00, 0x40, 0x50, 0x04, 0x03, 0x01, 0x02, 0x01],
        ),
    ] {
        let acs = pcscd.insert(0, VirtualCard::with_uid(&[3, 3, 3, 3]));
        let quiet = pcscd.insert(1, VirtualCard::with_uid(&[2, 2, 2, 2]));
        let mut readers: Vec<String> = (0..2)
            .map(|_| match backend.next_read("two taps") {
                ReaderEvent::Tap { reader, .. } => reader.to_string(),
                other => panic!("expected a tap, got {other:?}"),
            })
            .collect();
        readers.sort();
        assert_eq!(readers, ["acs", "quiet"]);
        // Requests are served in order: once the ACR122U has beeped, the one before it
        // has been dealt with.
        backend.handle().feedback(&ReaderName::new("quiet"), ok);
        backend.handle().feedback(&ReaderName::new("acs"), ok);
        let deadline = Instant::now() + PATIENCE;
        while acs.log().commands().len() < 2 {
            assert!(
                Instant::now() < deadline,
                "the ACR122U got no feedback: {:02X?}",
                acs.log().commands()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(acs.remove().commands(), vec![get_uid.clone(), beep]);
        assert_eq!(
            quiet.remove().commands(),
            vec![get_uid.clone()],
            "feedback = false"
        );
    }
}

#[test]
fn feedback_is_off_for_reader_models_without_known_commands() {
    let pcscd = Pcscd::start();
    let mut backend = Backend::spawn(vec![reader("plain", READERS[0], 0, true)]);
    backend.online("plain");
    let card = pcscd.insert(0, VirtualCard::with_uid(&[1, 1, 1, 1]));
    assert_eq!(backend.next_read("a tap"), tap("plain", &[1, 1, 1, 1]));
    backend.handle().feedback(&ReaderName::new("plain"), true);
    let deadline = Instant::now() + PATIENCE;
    while !backend
        .logs
        .text()
        .contains("feedback requested when no read was waiting for it")
    {
        assert!(
            Instant::now() < deadline,
            "the request was not handled:\n{}",
            backend.logs.text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        card.remove().commands(),
        vec![vec![0xFF, 0xCA, 0x00, 0x00, 0x00]]
    );
}

#[test]
fn cancelling_the_token_stops_the_thread_through_the_blocked_wait() {
    let _pcscd = Pcscd::start();
    let mut backend = Backend::spawn(vec![reader("front", "Virtual PCD 00 00", 0, false)]);
    backend.online("front");
    // Let the thread settle into its blocking wait.
    std::thread::sleep(Duration::from_millis(300));
    backend.stop();
    let text = backend.logs.text();
    assert!(
        text.contains("PC/SC wait cancelled"),
        "the blocked get_status_change was not cancelled through the context:\n{text}"
    );
    assert!(text.contains("PC/SC reader loop stopped"), "{text}");
}

#[test]
fn the_thread_starts_without_pcscd_and_comes_online_when_it_appears() {
    // pcscd is started only after the backend: the thread must report the outage and
    // then connect by itself.
    let mut pcscd = Pcscd::start();
    pcscd.stop();
    let mut backend = Backend::spawn(vec![reader("front", "Virtual PCD 00 00", 0, false)]);
    let detail = backend.offline("front");
    assert!(detail.contains("pcscd is not running"), "{detail}");
    pcscd.restart();
    backend.online("front");
    pcscd.present_card(0, &[0x04, 0x05, 0x06, 0x07], HOLD);
    assert_eq!(
        backend.next_read("a tap"),
        tap("front", &[0x04, 0x05, 0x06, 0x07])
    );
}

#[test]
fn readers_are_listed_and_watch_reports_every_presentation() {
    let pcscd = Pcscd::start();
    let names = backend::list_readers().unwrap();
    for expected in READERS {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} not in {names:?}"
        );
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    let cancel = CancellationToken::new();
    let watcher = {
        let cancel = cancel.clone();
        std::thread::spawn(move || backend::watch(&[], sender, cancel))
    };
    // The watcher has no "online" event; give it time to see the readers empty first,
    // otherwise a card already there counts as "already on the reader".
    std::thread::sleep(Duration::from_millis(500));
    // No lock-out, and random UIDs are shown (the installer needs to see them).
    let seen: Vec<(usize, Vec<u8>)> = vec![
        (1, vec![0x04, 0x01, 0x02, 0x03]),
        (1, vec![0x04, 0x01, 0x02, 0x03]),
        (0, vec![0x08, 0x01, 0x02, 0x03]),
    ];
    for (slot, uid) in &seen {
        pcscd.present_card(*slot, uid, HOLD);
        let (reader, raw) = receiver.recv_timeout(PATIENCE).unwrap();
        assert_eq!(reader, READERS[*slot]);
        assert_eq!(raw, RawBadge::Uid(uid.clone()));
    }
    cancel.cancel();
    watcher.join().unwrap().unwrap();
}
