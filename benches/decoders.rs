//! Decoder throughput and the HID reader threads' idle CPU, printed as figures.
//!
//! Run with `cargo bench --bench decoders` (release profile). Prints reports/s for the
//! boot-keyboard decoder, events/s for the evdev decoder, decodes/s for the Wiegand layouts,
//! formats/s for common rules, polls/s for the SDK poller, and the CPU time the reader
//! threads use over `BADGEDOCK_IDLE_SECS` (default 10) seconds while idle: with no reader
//! connected (the real hidapi/evdev rescan loop) and with a connected reader that sends
//! nothing (a simulated device whose reads block until their timeout, as hidapi's do).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use badgedock::badges::format::FormatRule;
use badgedock::badges::wiegand::{self, WiegandCard, WiegandFormat};
use badgedock::badges::RawBadge;
use badgedock::config::{ReaderConfig, ReaderKind};
use badgedock::domain::ReaderName;
use badgedock::readers::hid::keyboard::{BootKeyboardDecoder, EvdevKeyDecoder};
use badgedock::readers::hid::sdk::{CardRead, SdkConfig, SdkReader};
use badgedock::readers::hid::{
    self, Backend, HidOptions, OpenError, Opened, ReportSource, SourceError, SourceInput,
    SystemClock,
};
use badgedock::readers::ReaderEvent;
use tokio_util::sync::CancellationToken;

fn main() {
    println!("badgedock decoder benchmarks (single thread, release build)");
    keyboard_reports();
    evdev_events();
    wiegand_decodes();
    formats();
    sdk_polls();
    let idle_secs: u64 = std::env::var("BADGEDOCK_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    idle_cpu_without_devices(idle_secs);
    idle_cpu_with_a_silent_device(idle_secs);
}

/// Runs `work` (which returns how many items it handled) for about a second and prints the rate.
fn measure(label: &str, unit: &str, mut work: impl FnMut() -> u64) {
    let start = Instant::now();
    let mut n_items = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        n_items += work();
    }
    let rate = n_items as f64 / start.elapsed().as_secs_f64();
    println!("{label:<48} {:>14.0} {unit}/s", rate);
}

/// Boot reports typing `text` then Enter, with a release report after every key.
fn typed_reports(text: &str) -> Vec<[u8; 8]> {
    let mut reports = Vec::new();
    for c in text.chars() {
        let (usage, shift) = match c {
            '1'..='9' => (0x1E + (c as u8 - b'1'), false),
            '0' => (0x27, false),
            'A'..='F' => (0x04 + (c as u8 - b'A'), true),
            _ => unreachable!(),
        };
        reports.push([if shift { 0x02 } else { 0 }, 0, usage, 0, 0, 0, 0, 0]);
        reports.push([0; 8]);
    }
    reports.push([0, 0, 0x28, 0, 0, 0, 0, 0]);
    reports.push([0; 8]);
    reports
}

fn keyboard_reports() {
    let reports = typed_reports("04A1B2C3D4E5F6");
    let mut decoder = BootKeyboardDecoder::new(500);
    let mut now = 0;
    measure("boot-keyboard decoder (14-char reads)", "reports", || {
        for report in &reports {
            now += 1;
            black_box(decoder.report(black_box(report), now));
        }
        reports.len() as u64
    });
}

fn evdev_events() {
    let codes: [u16; 10] = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    let mut events = Vec::new();
    for code in codes {
        events.push((code, 1));
        events.push((code, 0));
    }
    events.push((28, 1));
    events.push((28, 0));
    let mut decoder = EvdevKeyDecoder::new(500);
    let mut now = 0;
    measure("evdev key decoder (10-digit reads)", "events", || {
        for &(code, value) in &events {
            now += 1;
            black_box(decoder.key(code, value, now));
        }
        events.len() as u64
    });
}

fn wiegand_decodes() {
    for format in WiegandFormat::ALL {
        let raws: Vec<RawBadge> = (0..256u64)
            .map(|i| {
                WiegandCard {
                    format,
                    facility: (i as u32 * 7) % (format.max_facility() + 1),
                    card: i * 211,
                }
                .to_raw_badge()
                .unwrap()
            })
            .collect();
        measure(&format!("wiegand::decode {format}"), "decodes", || {
            for raw in &raws {
                if let RawBadge::Pacs { bits, bit_len } = raw {
                    black_box(wiegand::decode(format, black_box(bits), *bit_len).unwrap());
                }
            }
            raws.len() as u64
        });
    }
    let mut card = 0u64;
    measure("wiegand::encode H10301", "encodes", || {
        for _ in 0..256 {
            card = (card + 1) & 0xFFFF;
            black_box(wiegand::encode(WiegandFormat::H10301, 1, card).unwrap());
        }
        256
    });
}

fn formats() {
    let uid = RawBadge::Uid(vec![0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6]);
    let pacs = WiegandCard {
        format: WiegandFormat::H10301,
        facility: 1,
        card: 12345,
    }
    .to_raw_badge()
    .unwrap();
    let text = RawBadge::Text("  0012ab\n".into());
    for (rule, raw) in [
        ("hex", &uid),
        ("decimal-reversed|pad:20", &uid),
        ("hex|strip-prefix:04|last:8", &uid),
        ("h10301|cn|pad:8", &pacs),
        ("wiegand", &pacs),
        ("text|strip-prefix:00", &text),
    ] {
        let parsed = FormatRule::parse(rule).unwrap();
        measure(&format!("format {rule:?}"), "formats", || {
            for _ in 0..256 {
                black_box(parsed.apply(black_box(raw)).unwrap());
            }
            256
        });
    }
    measure(
        "FormatRule::parse \"decimal-reversed|pad:10\"",
        "parses",
        || {
            for _ in 0..256 {
                black_box(FormatRule::parse(black_box("decimal-reversed|pad:10")).unwrap());
            }
            256
        },
    );
}

fn sdk_polls() {
    let config = SdkConfig {
        lead_parity_bits: 1,
        trail_parity_bits: 1,
        keystrokes_halted: true,
    };
    let mut poller = SdkReader::new(config, 2_000);
    let card = CardRead::Card {
        data: [0x39, 0x30, 0x01, 0, 0, 0, 0, 0],
        bit_count: 24,
    };
    let mut now = 0;
    measure("SDK poller (card held / removed)", "polls", || {
        for i in 0..256 {
            now += 250;
            let read = if i % 8 < 4 {
                card.clone()
            } else {
                CardRead::NoCard
            };
            black_box(poller.observe(read, now));
        }
        256
    });
}

fn reader(name: &str, kind: ReaderKind, matcher: &str) -> ReaderConfig {
    ReaderConfig {
        name: ReaderName::new(name),
        kind,
        matcher: matcher.to_string(),
        format: FormatRule::parse("hex").unwrap(),
        lockout_ms: 2_000,
        feedback: false,
    }
}

/// CPU nanoseconds used so far by each live thread whose name starts with `hid-`.
fn hid_thread_cpu_ns() -> Vec<(String, u64)> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let dir = entry.path();
        let name = std::fs::read_to_string(dir.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        if !name.starts_with("hid-") {
            continue;
        }
        let schedstat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
        let ns = schedstat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        threads.push((name, ns));
    }
    threads.sort();
    threads
}

fn report_idle(label: &str, before: &[(String, u64)], after: &[(String, u64)], wall: Duration) {
    for (name, end_ns) in after {
        let start_ns = before
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ns)| *ns)
            .unwrap_or(0);
        let used = Duration::from_nanos(end_ns - start_ns);
        println!(
            "{label:<32} thread {name:<12} {:>8.3} ms CPU over {:.1} s = {:.4} % of one core",
            used.as_secs_f64() * 1e3,
            wall.as_secs_f64(),
            100.0 * used.as_secs_f64() / wall.as_secs_f64()
        );
    }
}

fn idle_cpu_without_devices(secs: u64) {
    let readers = vec![
        reader("sdk", ReaderKind::Hid, "0c27:3bfa"),
        reader("wedge", ReaderKind::Wedge, "09d8:0410"),
    ];
    let (sender, mut events) = tokio::sync::mpsc::channel(16);
    let cancel = CancellationToken::new();
    let handle = hid::spawn(readers, sender, cancel.clone()).unwrap();
    // Let both threads make their first scan (and report Offline) before measuring.
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(event) = events.try_recv() {
        if let ReaderEvent::Offline { reader, detail } = event {
            println!("no devices: {} offline: {detail}", reader.as_str());
        }
    }
    let before = hid_thread_cpu_ns();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let after = hid_thread_cpu_ns();
    report_idle(
        "idle, no device (rescan 2 s)",
        &before,
        &after,
        start.elapsed(),
    );
    cancel.cancel();
    handle.join();
}

/// A connected keyboard-mode reader that never types: every read blocks for its timeout.
struct SilentDevice;

impl ReportSource for SilentDevice {
    fn next_input(&mut self, timeout: Duration) -> Result<Option<SourceInput>, SourceError> {
        std::thread::sleep(timeout);
        Ok(None)
    }
}

struct SilentBackend;

impl Backend for SilentBackend {
    fn open(&mut self, _reader: &ReaderConfig) -> Result<Opened, OpenError> {
        Ok(Opened::Keyboard(Box::new(SilentDevice)))
    }
}

fn idle_cpu_with_a_silent_device(secs: u64) {
    let (sender, _events) = tokio::sync::mpsc::channel(16);
    let cancel = CancellationToken::new();
    let handle = hid::spawn_with(
        vec![(
            reader("silent", ReaderKind::Hid, "09d8:0410"),
            Box::new(SilentBackend) as Box<dyn Backend>,
        )],
        sender,
        cancel.clone(),
        Arc::new(SystemClock::new()),
        HidOptions::default(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before = hid_thread_cpu_ns();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let after = hid_thread_cpu_ns();
    report_idle(
        "idle, device connected, silent",
        &before,
        &after,
        start.elapsed(),
    );
    cancel.cancel();
    handle.join();
}
