//! HID readers: byte-exact boot-keyboard reports written from the HID usage tables, evdev
//! key-event sequences, RF IDeas SDK feature-report transcripts, and the whole thread path
//! (fake device -> decoder -> `ReaderEvent` on the channel) through `spawn_with`, plus
//! `spawn` with the real backends on a machine without readers.

#[path = "support/hid.rs"]
mod fake;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use badgedock::badges::wiegand::{self, WiegandCard, WiegandFormat};
use badgedock::badges::RawBadge;
use badgedock::config::ReaderKind;
use badgedock::domain::ReaderName;
use badgedock::readers::hid::keyboard::{
    BootKeyboardDecoder, EvdevKeyDecoder, WedgeOutput, MAX_READ_CHARS,
};
use badgedock::readers::hid::sdk::{self, CardRead, SdkConfig, SdkOutput, SdkReader};
use badgedock::readers::hid::{
    self, find_event_nodes, parse_usb_id, Backend, HidOptions, SourceInput,
};
use badgedock::readers::ReaderEvent;
use fake::{
    bytes, next_event, report, typed, typed_events, Exchange, FakeBackend, FakeClock,
    ScriptedSource, Session, SimulatedPcProx, Step, TranscriptIo,
};
use proptest::prelude::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TIMEOUT_MS: u64 = 500;

/// Feeds hex-written reports 10 ms apart, starting at `start_ms`.
fn feed(decoder: &mut BootKeyboardDecoder, reports: &[&str], start_ms: u64) -> Vec<WedgeOutput> {
    reports
        .iter()
        .enumerate()
        .flat_map(|(i, hex)| decoder.report(&bytes(hex), start_ms + 10 * i as u64))
        .collect()
}

fn read(text: &str) -> WedgeOutput {
    WedgeOutput::Read(text.to_string())
}

const UP: &str = "00 00 00 00 00 00 00 00";
const ENTER: &str = "00 00 28 00 00 00 00 00";

#[test]
fn repeated_equal_digits_need_a_release_report_between() {
    let mut decoder = BootKeyboardDecoder::new(TIMEOUT_MS);
    let outputs = feed(
        &mut decoder,
        &[
            "00 00 1E 00 00 00 00 00", // '1' down
            UP,
            "00 00 1E 00 00 00 00 00", // '1' again
            "00 00 1E 00 00 00 00 00", // still held: not a new press
            UP,
            "00 00 1F 00 00 00 00 00", // '2'
            UP,
            "00 00 1F 00 00 00 00 00", // '2'
            UP,
            ENTER,
            UP,
        ],
        0,
    );
    assert_eq!(outputs, vec![read("1122")]);
}

#[test]
fn shift_gives_capital_letters_and_plain_letters_stay_lower_case() {
    let mut decoder = BootKeyboardDecoder::new(TIMEOUT_MS);
    let outputs = feed(
        &mut decoder,
        &[
            "02 00 07 00 00 00 00 00", // Left Shift + d
            UP,
            "20 00 04 00 00 00 00 00", // Right Shift + a
            UP,
            "00 00 08 00 00 00 00 00", // e
            UP,
            "02 00 00 00 00 00 00 00", // Shift alone
            "02 00 09 00 00 00 00 00", // + f
            "00 00 09 00 00 00 00 00", // Shift up, f still down: nothing new
            UP,
            "02 00 1E 00 00 00 00 00", // Shift + 1 (an AZERTY-configured reader): still '1'
            UP,
            ENTER,
            UP,
        ],
        0,
    );
    assert_eq!(outputs, vec![read("DAeF1")]);
}

#[test]
fn keypad_digits_and_keypad_enter() {
    let mut decoder = BootKeyboardDecoder::new(TIMEOUT_MS);
    let mut reports = Vec::new();
    for usage in ["59", "5A", "5B", "5C", "5D", "5E", "5F", "60", "61", "62"] {
        reports.push(format!("00 00 {usage} 00 00 00 00 00"));
        reports.push(UP.to_string());
    }
    reports.push("00 00 58 00 00 00 00 00".to_string());
    let reports: Vec<&str> = reports.iter().map(String::as_str).collect();
    assert_eq!(feed(&mut decoder, &reports, 0), vec![read("1234567890")]);
}

#[test]
fn rollover_and_error_reports_are_skipped_without_losing_held_keys() {
    let mut decoder = BootKeyboardDecoder::new(TIMEOUT_MS);
    let outputs = feed(
        &mut decoder,
        &[
            "00 00 1E 00 00 00 00 00", // '1'
            "00 00 1E 1F 00 00 00 00", // '2' while '1' is held
            "00 00 01 01 01 01 01 01", // ErrorRollOver: state unknown, skipped
            "00 00 1E 1F 20 00 00 00", // '1' and '2' still held, '3' new
            "00 00 02 02 02 02 02 02", // POSTFail
            "00 00 03 03 03 03 03 03", // ErrorUndefined
            UP,
            ENTER,
            UP,
        ],
        0,
    );
    assert_eq!(outputs, vec![read("123")]);
}

#[test]
fn several_keys_in_one_report_are_taken_in_slot_order() {
    let mut decoder = BootKeyboardDecoder::new(TIMEOUT_MS);
    let outputs = feed(&mut decoder, &["00 00 21 22 23 00 00 00", UP, ENTER], 0);
    assert_eq!(outputs, vec![read("456")]);
}

#[test]
fn noise_between_reads_is_ignored() {
    let mut decoder = BootKeyboardDecoder::new(TIMEOUT_MS);
    let outputs = feed(
        &mut decoder,
        &[
            UP,
            UP,
            "00 00 28 00 00 00", // a 6-byte report: not a boot report
            ENTER,               // Enter with nothing typed
            UP,
            "01 00 06 00 00 00 00 00", // Ctrl+C: a shortcut, not a character
            "00 00 06 00 00 00 00 00", // Ctrl up, 'c' still down: nothing new
            UP,
            "00 00 29 00 00 00 00 00", // Esc
            UP,
            "00 00 21 00 00 00 00 00", // '4'
            UP,
            "00 00 1F 00 00 00 00 00",    // '2'
            "00 00 1F 00 00 00 00 00 00", // 9 bytes: ignored
            UP,
            ENTER,
            UP,
            "02 00 00 00 00 00 00 00", // Shift alone
            UP,
            "00 00 21 00 00 00 00 00", // '4'
            UP,
            "00 00 20 00 00 00 00 00", // '3'
            UP,
            ENTER,
            UP,
        ],
        0,
    );
    assert_eq!(outputs, vec![read("42"), read("43")]);
}

#[test]
fn a_half_read_is_dropped_after_the_inter_key_timeout() {
    let mut decoder = BootKeyboardDecoder::new(TIMEOUT_MS);
    // '1' at 0 ms, '2' at 20 ms, then nothing.
    let outputs = feed(
        &mut decoder,
        &["00 00 1E 00 00 00 00 00", UP, "00 00 1F 00 00 00 00 00", UP],
        0,
    );
    assert!(outputs.is_empty());
    assert_eq!(decoder.tick(519), None);
    assert_eq!(
        decoder.tick(520),
        Some(WedgeOutput::HalfRead { n_chars: 2 })
    );
    assert_eq!(decoder.tick(2_000), None);
    // The next read stands alone.
    let outputs = feed(
        &mut decoder,
        &["00 00 26 00 00 00 00 00", UP, ENTER, UP],
        3_000,
    );
    assert_eq!(outputs, vec![read("9")]);

    // The timeout is also noticed when the next report arrives late.
    let outputs = feed(&mut decoder, &["00 00 1E 00 00 00 00 00", UP], 10_000);
    assert!(outputs.is_empty());
    let outputs = feed(
        &mut decoder,
        &["00 00 1F 00 00 00 00 00", UP, ENTER],
        20_000,
    );
    assert_eq!(
        outputs,
        vec![WedgeOutput::HalfRead { n_chars: 1 }, read("2")]
    );
    let reason = WedgeOutput::HalfRead { n_chars: 1 }.reason().unwrap();
    assert!(reason.contains("half a read (1 characters"), "{reason}");
}

#[test]
fn enter_keypad_enter_and_tab_each_end_a_read() {
    let mut decoder = BootKeyboardDecoder::new(TIMEOUT_MS);
    let outputs = feed(
        &mut decoder,
        &[
            "00 00 1E 00 00 00 00 00",
            UP,
            "00 00 1F 00 00 00 00 00",
            UP,
            "00 00 28 00 00 00 00 00",
            UP, // Enter
            "00 00 20 00 00 00 00 00",
            UP,
            "00 00 21 00 00 00 00 00",
            UP,
            "00 00 58 00 00 00 00 00",
            UP, // keypad Enter
            "00 00 22 00 00 00 00 00",
            UP,
            "00 00 23 00 00 00 00 00",
            UP,
            "00 00 2B 00 00 00 00 00",
            UP, // Tab
        ],
        0,
    );
    assert_eq!(outputs, vec![read("12"), read("34"), read("56")]);
}

#[test]
fn an_overlong_read_is_dropped_up_to_its_terminator() {
    let mut reports = Vec::new();
    for _ in 0..MAX_READ_CHARS + 3 {
        reports.push(report(0, &[0x24])); // '7'
        reports.push(report(0, &[]));
    }
    reports.push(report(0, &[0x28]));
    reports.push(report(0, &[]));
    reports.extend(typed("12"));
    assert_eq!(
        decode_reports(&reports),
        vec![WedgeOutput::TooLong, read("12")]
    );
}

#[test]
fn evdev_sequences_decode_like_the_keyboard() {
    let mut decoder = EvdevKeyDecoder::new(TIMEOUT_MS);
    let mut outputs = Vec::new();
    for (i, (code, value)) in typed_events("DEADbeef19").into_iter().enumerate() {
        outputs.extend(decoder.key(code, value, i as u64));
    }
    assert_eq!(outputs, vec![read("DEADbeef19")]);

    // Keypad digits (KP1=79 … KP9=73, KP0=82) and keypad Enter (96); autorepeat (2) is
    // ignored; Right Shift (54) works like Left Shift; Ctrl (29) chords are shortcuts.
    let events: Vec<(u16, i32)> = vec![
        (79, 1),
        (79, 0),
        (80, 1),
        (80, 2),
        (80, 2),
        (80, 0),
        (81, 1),
        (81, 0),
        (75, 1),
        (75, 0),
        (76, 1),
        (76, 0),
        (77, 1),
        (77, 0),
        (71, 1),
        (71, 0),
        (72, 1),
        (72, 0),
        (73, 1),
        (73, 0),
        (82, 1),
        (82, 0),
        (29, 1),
        (46, 1),
        (46, 0),
        (29, 0), // Ctrl+C
        (54, 1),
        (30, 1),
        (30, 0),
        (54, 0), // Right Shift + a
        (96, 1),
        (96, 0),
    ];
    let outputs: Vec<WedgeOutput> = events
        .into_iter()
        .flat_map(|(code, value)| decoder.key(code, value, 100))
        .collect();
    assert_eq!(outputs, vec![read("1234567890A")]);

    // Half read, then Tab ends the next read.
    assert!(decoder.key(2, 1, 1_000).is_empty());
    assert!(decoder.key(2, 0, 1_001).is_empty());
    assert_eq!(decoder.tick(1_499), None);
    assert_eq!(
        decoder.tick(1_500),
        Some(WedgeOutput::HalfRead { n_chars: 1 })
    );
    let outputs: Vec<WedgeOutput> = [(3, 1), (3, 0), (15, 1), (15, 0)]
        .into_iter()
        .flat_map(|(code, value)| decoder.key(code, value, 2_000))
        .collect();
    assert_eq!(outputs, vec![read("2")]);
}

fn sdk_request(command: u8) -> Exchange {
    Exchange::Send(bytes(&format!("00 {command:02X} 00 00 00 00 00 00 00")))
}

#[test]
fn sdk_config_page_gives_the_parity_bits_the_reader_strips() {
    let mut io = TranscriptIo::new(vec![
        sdk_request(0x80),
        // iFACDispLen iIDDispLen {lead|trail<<4} iIDBitCnt iTotalBitCnt iFACIDDelim iELDelim flags
        Exchange::Get(bytes("00 03 05 21 10 23 00 28 80")),
    ]);
    let config = sdk::read_config(&mut io).unwrap();
    io.assert_done();
    assert_eq!(
        config,
        SdkConfig {
            lead_parity_bits: 1,
            trail_parity_bits: 2,
            keystrokes_halted: true
        }
    );

    let mut io = TranscriptIo::new(vec![sdk_request(0x80), Exchange::Get(bytes("00 03 05"))]);
    let err = sdk::read_config(&mut io).unwrap_err();
    assert!(err.0.contains("2 of 8 bytes"), "{err}");
}

#[test]
fn sdk_26_bit_card_with_parity_stripped_is_rebuilt() {
    let mut io = TranscriptIo::new(vec![
        sdk_request(0x8F),
        Exchange::Get(bytes("00 39 30 01 00 00 00 00 00")), // CN 12345 (LE), FC 1
        sdk_request(0x8E),
        Exchange::Get(bytes("00 18 18 00 00 00 00 00 00")), // 24 bits
    ]);
    let read = sdk::read_card(&mut io).unwrap();
    io.assert_done();
    let CardRead::Card { data, bit_count } = read else {
        panic!("{read:?}")
    };
    assert_eq!(bit_count, 24);
    let config = SdkConfig {
        lead_parity_bits: 1,
        trail_parity_bits: 1,
        keystrokes_halted: true,
    };
    let raw = sdk::assemble(&data, bit_count, &config);
    // The full H10301 frame of readers.md 3.1: 0x2026073.
    assert_eq!(
        raw,
        RawBadge::Pacs {
            bits: vec![0x80, 0x98, 0x1C, 0xC0],
            bit_len: 26
        }
    );
    let rule = badgedock::badges::format::FormatRule::parse("h10301").unwrap();
    assert_eq!(rule.apply(&raw).unwrap().expose(), "1:12345");
}

#[test]
fn sdk_35_bit_corporate_1000_card() {
    let mut io = TranscriptIo::new(vec![
        sdk_request(0x8F),
        Exchange::Get(bytes("00 52 AA 28 4D 00 00 00 00")), // CN 567890 (20 bits) then FC 1234
        sdk_request(0x8E),
        Exchange::Get(bytes("00 20 20 00 00 00 00 00 00")), // 32 bits
    ]);
    let CardRead::Card { data, bit_count } = sdk::read_card(&mut io).unwrap() else {
        panic!("no card")
    };
    io.assert_done();
    let config = SdkConfig {
        lead_parity_bits: 2,
        trail_parity_bits: 1,
        keystrokes_halted: true,
    };
    let raw = sdk::assemble(&data, bit_count, &config);
    let card = match &raw {
        RawBadge::Pacs { bits, bit_len } => {
            wiegand::decode(WiegandFormat::Corporate1000, bits, *bit_len).unwrap()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!((card.facility, card.card), (1234, 567_890));
}

#[test]
fn sdk_reader_that_strips_nothing_keeps_real_parity() {
    let config = SdkConfig::default();
    let good = sdk::assemble(&[0x73, 0x60, 0x02, 0x02, 0, 0, 0, 0], 26, &config);
    assert_eq!(
        good,
        RawBadge::Pacs {
            bits: vec![0x80, 0x98, 0x1C, 0xC0],
            bit_len: 26
        }
    );
    // The same frame with its last (odd parity) bit flipped: the rule catches it.
    let bad = sdk::assemble(&[0x72, 0x60, 0x02, 0x02, 0, 0, 0, 0], 26, &config);
    let rule = badgedock::badges::format::FormatRule::parse("h10301").unwrap();
    let err = rule.apply(&bad).unwrap_err();
    assert!(err.0.contains("parity"), "{err}");
    // An unknown total length keeps just the bits the reader gave.
    let config = SdkConfig {
        lead_parity_bits: 1,
        trail_parity_bits: 1,
        keystrokes_halted: true,
    };
    let unknown = sdk::assemble(&[0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0], 32, &config);
    assert_eq!(
        unknown,
        RawBadge::Pacs {
            bits: vec![0x11, 0x22, 0x33, 0x44],
            bit_len: 32
        }
    );
}

#[test]
fn sdk_no_card_and_short_reads() {
    let mut io = TranscriptIo::new(vec![
        sdk_request(0x8F),
        Exchange::Get(bytes("00 00 00 00 00 00 00 00 00")),
    ]);
    assert_eq!(sdk::read_card(&mut io).unwrap(), CardRead::NoCard);
    io.assert_done(); // no 8E after an empty buffer

    let mut io = TranscriptIo::new(vec![sdk_request(0x8F), Exchange::Get(bytes("00 39 30 01"))]);
    assert_eq!(
        sdk::read_card(&mut io).unwrap(),
        CardRead::Short {
            command: 0x8F,
            n_bytes: 3
        }
    );
    io.assert_done();

    let mut io = TranscriptIo::new(vec![
        sdk_request(0x8F),
        Exchange::Get(bytes("00 39 30 01 00 00 00 00 00")),
        sdk_request(0x8E),
        Exchange::Get(bytes("00")),
    ]);
    assert_eq!(
        sdk::read_card(&mut io).unwrap(),
        CardRead::Short {
            command: 0x8E,
            n_bytes: 0
        }
    );

    // A short reply is one bad read, not one per poll.
    let mut poller = SdkReader::new(SdkConfig::default(), 2_000);
    let short = CardRead::Short {
        command: 0x8F,
        n_bytes: 3,
    };
    let first = poller.observe(short.clone(), 0);
    assert!(
        matches!(&first, Some(SdkOutput::BadRead(reason)) if reason.contains("8F with 3 of 8 bytes")),
        "{first:?}"
    );
    assert_eq!(poller.observe(short.clone(), 250), None);
    assert_eq!(poller.observe(CardRead::NoCard, 500), None);
    assert!(matches!(
        poller.observe(short, 750),
        Some(SdkOutput::BadRead(_))
    ));
    let too_long = CardRead::Card {
        data: [1; 8],
        bit_count: 80,
    };
    assert!(
        matches!(poller.observe(too_long, 1_000), Some(SdkOutput::BadRead(reason)) if reason.contains("80-bit"))
    );
}

#[test]
fn sdk_held_card_is_one_tap_and_the_lockout_follows_removal() {
    let card_a = CardRead::Card {
        data: [0x39, 0x30, 0x01, 0, 0, 0, 0, 0],
        bit_count: 24,
    };
    let card_b = CardRead::Card {
        data: [0x3A, 0x30, 0x01, 0, 0, 0, 0, 0],
        bit_count: 24,
    };
    let config = SdkConfig {
        lead_parity_bits: 1,
        trail_parity_bits: 1,
        keystrokes_halted: true,
    };
    let mut poller = SdkReader::new(config, 2_000);
    let taps = |outputs: Vec<Option<SdkOutput>>| {
        outputs.into_iter().map(|o| o.is_some()).collect::<Vec<_>>()
    };
    let outputs = vec![
        poller.observe(card_a.clone(), 0),     // tap
        poller.observe(card_a.clone(), 250),   // held
        poller.observe(card_a.clone(), 500),   // held
        poller.observe(CardRead::NoCard, 750), // removed at 750
        poller.observe(card_a.clone(), 1_000), // back within 2 s: ignored
        poller.observe(CardRead::NoCard, 1_250),
        poller.observe(card_a.clone(), 3_250), // 2 s after removal: tap
        poller.observe(card_b.clone(), 3_500), // swapped without a gap: tap
        poller.observe(card_a.clone(), 3_750), // A left at 3 500: locked out
        poller.observe(CardRead::NoCard, 4_000),
        poller.observe(card_b, 4_100), // B left at 3 750: locked out
    ];
    assert_eq!(
        taps(outputs),
        vec![true, false, false, false, false, false, true, true, false, false, false]
    );
}

// ---- The whole path through the reader threads, on fake devices and fake time. ----

fn options() -> HidOptions {
    HidOptions {
        rescan: Duration::from_secs(2),
        sdk_poll: Duration::from_millis(250),
        input_wait: Duration::from_millis(100),
        key_timeout_ms: TIMEOUT_MS,
    }
}

fn keyboard_session(clock: &Arc<FakeClock>, steps: Vec<Step>) -> Session {
    Session::Keyboard(ScriptedSource {
        steps: steps.into(),
        clock: clock.clone(),
        ms_per_input: 5,
    })
}

fn reports(text: &str) -> Vec<Step> {
    typed(text)
        .into_iter()
        .map(|r| Step::Input(SourceInput::Report(r)))
        .collect()
}

fn wait_for_opens(opens: &std::sync::atomic::AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while opens.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "the reader thread stopped rescanning"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn offline(name: &str, detail: &str) -> ReaderEvent {
    ReaderEvent::Offline {
        reader: ReaderName::new(name),
        detail: detail.to_string(),
    }
}

fn online(name: &str) -> ReaderEvent {
    ReaderEvent::Online {
        reader: ReaderName::new(name),
    }
}

fn tap(name: &str, raw: RawBadge) -> ReaderEvent {
    ReaderEvent::Tap {
        reader: ReaderName::new(name),
        raw,
    }
}

#[test]
fn keyboard_reports_become_events_through_the_reader_thread() {
    let clock = Arc::new(FakeClock::default());
    let mut script = reports("DEADBEEF");
    script.extend(reports("DEADBEEF")); // the same read again at once: inside the lock-out
    script.push(Step::Input(SourceInput::Report(report(0, &[0x1E]))));
    script.push(Step::Input(SourceInput::Report(report(0, &[]))));
    script.push(Step::Input(SourceInput::Report(report(0, &[0x1F]))));
    script.push(Step::Input(SourceInput::Report(report(0, &[]))));
    script.push(Step::Idle(600)); // half read "12" dropped
    script.push(Step::Input(SourceInput::Report(report(
        0,
        &[0x01, 0x01, 0x01, 0x01, 0x01, 0x01],
    ))));
    script.extend(reports("C0FFEE"));
    script.push(Step::Fail("device unplugged".into()));
    let (backend, opens) =
        FakeBackend::new(vec![Session::Missing, keyboard_session(&clock, script)]);
    let reader = fake::reader("desk", ReaderKind::Hid, "09d8:0410", "decimal", 2_000);
    let rule = reader.format.clone();
    let (sender, mut events) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let handle = hid::spawn_with(
        vec![(reader, Box::new(backend) as Box<dyn Backend>)],
        sender,
        cancel.clone(),
        clock,
        options(),
    )
    .unwrap();
    assert_eq!(handle.len(), 1);

    assert_eq!(
        next_event(&mut events),
        offline("desk", "not connected (no USB device 09d8:0410)")
    );
    assert_eq!(next_event(&mut events), online("desk"));
    let first = next_event(&mut events);
    assert_eq!(first, tap("desk", RawBadge::Text("DEADBEEF".into())));
    let ReaderEvent::Tap { raw, .. } = &first else {
        unreachable!()
    };
    assert_eq!(rule.apply(raw).unwrap().expose(), "3735928559");
    match next_event(&mut events) {
        ReaderEvent::BadRead { reader, reason } => {
            assert_eq!(reader.as_str(), "desk");
            assert!(reason.starts_with("half a read (2 characters"), "{reason}");
        }
        other => panic!("expected the half read, got {other:?}"),
    }
    assert_eq!(
        next_event(&mut events),
        tap("desk", RawBadge::Text("C0FFEE".into()))
    );
    assert_eq!(next_event(&mut events), offline("desk", "device unplugged"));
    assert_eq!(
        next_event(&mut events),
        offline("desk", "not connected (no USB device 09d8:0410)")
    );
    // Still missing: it keeps looking, quietly.
    wait_for_opens(&opens, 6);
    cancel.cancel();
    handle.join();
    assert_eq!(
        events.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    );
}

#[test]
fn evdev_key_events_become_events_and_cancel_stops_quietly() {
    let clock = Arc::new(FakeClock::default());
    let mut script: Vec<Step> = typed_events("DEADBEEF")
        .into_iter()
        .map(|(code, value)| Step::Input(SourceInput::Key { code, value }))
        .collect();
    // Keypad digits ending with keypad Enter.
    for (code, value) in [(79, 1), (79, 0), (82, 1), (82, 0), (96, 1), (96, 0)] {
        script.push(Step::Input(SourceInput::Key { code, value }));
    }
    let (backend, _opens) = FakeBackend::new(vec![keyboard_session(&clock, script)]);
    let reader = fake::reader("door", ReaderKind::Wedge, "0c27:3bfa", "text", 2_000);
    let (sender, mut events) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let handle = hid::spawn_with(
        vec![(reader, Box::new(backend) as Box<dyn Backend>)],
        sender,
        cancel.clone(),
        clock,
        options(),
    )
    .unwrap();
    assert_eq!(next_event(&mut events), online("door"));
    assert_eq!(
        next_event(&mut events),
        tap("door", RawBadge::Text("DEADBEEF".into()))
    );
    assert_eq!(
        next_event(&mut events),
        tap("door", RawBadge::Text("10".into()))
    );
    cancel.cancel();
    handle.join();
    // Stopping is not the reader going offline.
    assert_eq!(
        events.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    );
}

#[test]
fn sdk_reader_polls_taps_once_per_presentation_and_survives_a_replug() {
    let clock = Arc::new(FakeClock::default());
    let card_a = Some(([0x39, 0x30, 0x01, 0, 0, 0, 0, 0], 24)); // H10301 FC 1 CN 12345, 1+1 stripped
    let mut polls = vec![None, card_a, card_a, card_a, None, card_a, None];
    polls.extend(std::iter::repeat_n(None, 10));
    polls.push(card_a);
    let c1k = Some(([0x52, 0xAA, 0x28, 0x4D, 0, 0, 0, 0], 32)); // C1k35 FC 1234 CN 567890, 2+1 stripped
    let (backend, _opens) = FakeBackend::new(vec![
        Session::Sdk(SimulatedPcProx::new(1, 1, polls)),
        Session::Sdk(SimulatedPcProx::new(2, 1, vec![None, c1k, c1k])),
    ]);
    let reader = fake::reader("cabinet", ReaderKind::Hid, "0c27:3bfa", "wiegand", 2_000);
    let rule = reader.format.clone();
    let (sender, mut events) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let handle = hid::spawn_with(
        vec![(reader, Box::new(backend) as Box<dyn Backend>)],
        sender,
        cancel.clone(),
        clock,
        options(),
    )
    .unwrap();

    let h10301 = WiegandCard {
        format: WiegandFormat::H10301,
        facility: 1,
        card: 12345,
    }
    .to_raw_badge()
    .unwrap();
    assert_eq!(next_event(&mut events), online("cabinet"));
    assert_eq!(next_event(&mut events), tap("cabinet", h10301.clone()));
    // Held for three polls, removed, back within the lock-out: nothing. Back after it: a tap.
    assert_eq!(next_event(&mut events), tap("cabinet", h10301.clone()));
    assert_eq!(
        next_event(&mut events),
        offline("cabinet", "device unplugged")
    );
    assert_eq!(next_event(&mut events), online("cabinet"));
    let ReaderEvent::Tap { raw, .. } = next_event(&mut events) else {
        panic!("expected a tap")
    };
    assert_eq!(rule.apply(&raw).unwrap().expose(), "1234:567890");
    assert_eq!(rule.apply(&h10301).unwrap().expose(), "1:12345");
    assert_eq!(
        next_event(&mut events),
        offline("cabinet", "device unplugged")
    );
    assert_eq!(
        next_event(&mut events),
        offline("cabinet", "not connected (no USB device 0c27:3bfa)")
    );
    cancel.cancel();
    handle.join();
    assert_eq!(
        events.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    );
}

#[test]
fn a_missing_reader_is_reported_once_and_rescanned_quietly() {
    let clock = Arc::new(FakeClock::default());
    let denied = "cannot open /dev/hidraw3 (Permission denied): install badgedock's udev rule";
    let (backend, opens) = FakeBackend::new(vec![
        Session::Denied(denied.into()),
        Session::Denied(denied.into()),
    ]);
    let reader = fake::reader("desk", ReaderKind::Hid, "09d8:0410", "hex", 2_000);
    let (sender, mut events) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let handle = hid::spawn_with(
        vec![(reader, Box::new(backend) as Box<dyn Backend>)],
        sender,
        cancel.clone(),
        clock,
        options(),
    )
    .unwrap();
    assert_eq!(next_event(&mut events), offline("desk", denied));
    assert_eq!(
        next_event(&mut events),
        offline("desk", "not connected (no USB device 09d8:0410)")
    );
    wait_for_opens(&opens, 12);
    cancel.cancel();
    handle.join();
    assert_eq!(
        events.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    );
}

#[test]
fn a_device_that_fails_the_sdk_handshake_is_offline_not_flapping() {
    let clock = Arc::new(FakeClock::default());
    let mut not_a_pcprox = SimulatedPcProx::new(1, 1, vec![]);
    not_a_pcprox.short_config = true;
    let mut again = SimulatedPcProx::new(1, 1, vec![]);
    again.short_config = true;
    let (backend, opens) = FakeBackend::new(vec![Session::Sdk(not_a_pcprox), Session::Sdk(again)]);
    let reader = fake::reader("cabinet", ReaderKind::Hid, "0c27:3bfa", "wiegand", 2_000);
    let (sender, mut events) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let handle = hid::spawn_with(
        vec![(reader, Box::new(backend) as Box<dyn Backend>)],
        sender,
        cancel.clone(),
        clock,
        options(),
    )
    .unwrap();
    assert_eq!(
        next_event(&mut events),
        offline("cabinet", "the reader answered its configuration query with 3 of 8 bytes: is it an RF IDeas pcProx?")
    );
    assert_eq!(
        next_event(&mut events),
        offline("cabinet", "not connected (no USB device 0c27:3bfa)")
    );
    wait_for_opens(&opens, 4);
    cancel.cancel();
    handle.join();
    assert_eq!(
        events.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    );
}

#[test]
fn the_thread_stops_when_the_daemon_drops_the_channel() {
    let clock = Arc::new(FakeClock::default());
    let (backend, _opens) = FakeBackend::new(vec![]);
    let reader = fake::reader("desk", ReaderKind::Hid, "09d8:0410", "hex", 2_000);
    let (sender, mut events) = mpsc::channel(16);
    let handle = hid::spawn_with(
        vec![(reader, Box::new(backend) as Box<dyn Backend>)],
        sender,
        CancellationToken::new(),
        clock,
        options(),
    )
    .unwrap();
    assert!(matches!(
        next_event(&mut events),
        ReaderEvent::Offline { .. }
    ));
    drop(events);
    handle.join(); // returns: the thread saw the closed channel
}

#[test]
fn real_backends_without_hardware_report_offline_and_stop_on_cancel() {
    let readers = vec![
        fake::reader("desk", ReaderKind::Hid, "0c27:3bfa", "wiegand", 2_000),
        fake::reader("door", ReaderKind::Wedge, "09d8:0410", "text", 2_000),
        fake::reader("front", ReaderKind::Pcsc, "ACS", "hex", 2_000),
    ];
    let (sender, mut events) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let handle = hid::spawn(readers, sender, cancel.clone()).unwrap();
    assert_eq!(handle.len(), 2, "the PC/SC reader is not ours");
    let mut details = std::collections::BTreeMap::new();
    for _ in 0..2 {
        match next_event(&mut events) {
            ReaderEvent::Offline { reader, detail } => {
                details.insert(reader.as_str().to_string(), detail);
            }
            other => panic!("expected Offline, got {other:?}"),
        }
    }
    // No /sys/class/input entry matches here, so the wedge is simply not connected. hidapi
    // finds no hidraw device either (or cannot start without udev): either way one Offline.
    assert_eq!(details["door"], "not connected (no USB device 09d8:0410)");
    assert!(
        details["desk"] == "not connected (no USB device 0c27:3bfa)"
            || details["desk"].starts_with("cannot start hidapi"),
        "{details:?}"
    );
    cancel.cancel();
    handle.join();
    assert_eq!(
        events.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    );
}

#[test]
fn evdev_nodes_are_found_by_usb_id_in_sysfs() {
    let root = tempfile::tempdir().unwrap();
    let add = |name: &str, vendor: Option<&str>, product: &str| {
        let id = root.path().join(name).join("device").join("id");
        std::fs::create_dir_all(&id).unwrap();
        if let Some(vendor) = vendor {
            std::fs::write(id.join("vendor"), vendor).unwrap();
        }
        std::fs::write(id.join("product"), product).unwrap();
    };
    add("event12", Some("0c27\n"), "3bfa\n");
    add("event3", Some("0c27\n"), "3bfa\n");
    add("event4", Some("0c27\n"), "3bfb\n");
    add("event5", None, "3bfa\n");
    add("mouse0", Some("0c27\n"), "3bfa\n");
    add("input7", Some("0c27\n"), "3bfa\n");
    assert_eq!(
        find_event_nodes(root.path(), 0x0c27, 0x3bfa),
        vec!["event3", "event12"]
    );
    assert!(find_event_nodes(&root.path().join("absent"), 0x0c27, 0x3bfa).is_empty());
    assert_eq!(parse_usb_id("0c27:3BFA"), Some((0x0c27, 0x3bfa)));
    assert_eq!(parse_usb_id("0c27"), None);
}

fn decode_reports(reports: &[Vec<u8>]) -> Vec<WedgeOutput> {
    let mut decoder = BootKeyboardDecoder::new(TIMEOUT_MS);
    reports
        .iter()
        .enumerate()
        .flat_map(|(i, r)| decoder.report(r, i as u64))
        .collect()
}

proptest! {
    #[test]
    fn arbitrary_reports_never_panic_the_keyboard_decoder(
        reports in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..64),
        gaps in proptest::collection::vec(0u64..1_000, 64),
    ) {
        let mut decoder = BootKeyboardDecoder::new(TIMEOUT_MS);
        let mut now = 0;
        for (report, gap) in reports.iter().zip(gaps.iter().cycle()) {
            now += gap;
            for output in decoder.report(report, now) {
                if let WedgeOutput::Read(text) = output {
                    prop_assert!(!text.is_empty() && text.chars().count() <= MAX_READ_CHARS);
                }
            }
            let _ = decoder.tick(now + gap);
        }
    }

    #[test]
    fn arbitrary_key_events_never_panic_the_evdev_decoder(events in proptest::collection::vec((any::<u16>(), any::<i32>(), 0u64..2_000), 0..128)) {
        let mut decoder = EvdevKeyDecoder::new(TIMEOUT_MS);
        let mut now = 0;
        for (code, value, gap) in events {
            now += gap;
            let _ = decoder.key(code, value, now);
            let _ = decoder.tick(now);
        }
    }

    #[test]
    fn typed_reads_always_decode_back(text in "[0-9a-zA-Z]{1,64}", noise in proptest::collection::vec(0usize..200, 0..6)) {
        let mut reports = typed(&text);
        // Idle and rollover reports may arrive between any two reports without changing the read.
        let mut insert_at: Vec<usize> = noise.iter().map(|n| n % reports.len()).collect();
        insert_at.sort_unstable();
        for (shift, at) in insert_at.into_iter().enumerate() {
            let filler = if shift % 2 == 0 { report(0, &[0x01; 6]) } else { reports[at + shift].clone() };
            reports.insert(at + shift, filler);
        }
        prop_assert_eq!(decode_reports(&reports), vec![WedgeOutput::Read(text.clone())]);

        let mut decoder = EvdevKeyDecoder::new(TIMEOUT_MS);
        let outputs: Vec<WedgeOutput> = typed_events(&text).into_iter().flat_map(|(code, value)| decoder.key(code, value, 0)).collect();
        prop_assert_eq!(outputs, vec![WedgeOutput::Read(text)]);
    }

    #[test]
    fn sdk_buffers_of_known_layouts_decode_to_their_card(index in 0usize..3, facility in any::<u32>(), card in any::<u64>()) {
        let format = WiegandFormat::ALL[index];
        let facility = facility % (format.max_facility() + 1);
        let card = card % (format.max_card() + 1);
        let (lead, trail) = format.parity_bits();
        let data = (u64::from(facility) << format.card_bits() | card).to_le_bytes();
        let config = SdkConfig { lead_parity_bits: lead, trail_parity_bits: trail, keystrokes_halted: true };
        let raw = sdk::assemble(&data, format.bit_len() - lead - trail, &config);
        let RawBadge::Pacs { bits, bit_len } = raw else { panic!("not PACS") };
        prop_assert_eq!(wiegand::decode(format, &bits, bit_len).unwrap(), WiegandCard { format, facility, card });
    }

    #[test]
    fn arbitrary_sdk_replies_never_panic(data in any::<[u8; 8]>(), bit_count in any::<u8>(), lead in 0u32..16, trail in 0u32..16, replies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 1..6)) {
        let config = SdkConfig { lead_parity_bits: lead, trail_parity_bits: trail, keystrokes_halted: false };
        let _ = sdk::assemble(&data, u32::from(bit_count), &config);
        let mut poller = SdkReader::new(config, 2_000);
        let _ = poller.observe(CardRead::Card { data, bit_count: u32::from(bit_count) }, 0);
        // Whatever the device answers (any length), reading the card does not panic.
        let mut io = AnyReplies { replies: replies.into() };
        let _ = sdk::read_card(&mut io);
        let _ = sdk::read_config(&mut io);
    }
}

/// A device answering GETs with arbitrary bytes (and failing when out of answers).
struct AnyReplies {
    replies: VecDeque<Vec<u8>>,
}

impl sdk::FeatureIo for AnyReplies {
    fn send_feature(&mut self, _data: &[u8]) -> Result<(), hid::SourceError> {
        Ok(())
    }

    fn get_feature(&mut self, buf: &mut [u8]) -> Result<usize, hid::SourceError> {
        let reply = self
            .replies
            .pop_front()
            .ok_or_else(|| hid::SourceError("gone".into()))?;
        let n = reply.len().min(buf.len());
        buf[..n].copy_from_slice(&reply[..n]);
        Ok(reply.len())
    }
}
