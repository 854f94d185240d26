//! Dashboard render time per frame: a busy station (24 slots, 10 loans, 20 events) drawn
//! through ratatui's TestBackend, one frame per simulated clock second, so each frame
//! includes ratatui's diff as on the real terminal. Prints p50/p99 per size and mode.
//!
//! Run with `cargo bench --bench dashboard`.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use badgedock::checkout::{
    EventView, Instruction, LoanView, MdmView, ReaderView, SlotState, SlotView, Snapshot,
    SyncState, Tone,
};
use badgedock::dashboard::view::{render, UiState};
use badgedock::dashboard::{DashboardOptions, Feed};
use badgedock::domain::{DeviceKey, Platform, ReaderName, SlotLabel, Timestamp, Username};
use chrono::FixedOffset;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const NOW: Timestamp = Timestamp(1_741_961_007_000);
const WARM_UP_FRAMES: usize = 200;
const MEASURED_FRAMES: usize = 3_000;

fn busy_station() -> Snapshot {
    let slots = (1..=24u8)
        .map(|n| {
            let state = match n % 6 {
                0 => SlotState::Reserved,
                2 => SlotState::CheckingIn,
                3 => SlotState::Empty,
                4 => SlotState::SetAside,
                _ => SlotState::Available,
            };
            let docked = state != SlotState::Empty;
            SlotView {
                label: SlotLabel::new(n.to_string()),
                device: docked.then(|| {
                    DeviceKey::apple_from_usb_serial(&format!("00008110000A1B2C3D4E80{n:02}"))
                }),
                platform: docked.then_some(Platform::Apple),
                device_name: docked.then(|| format!("iPhone 12 4W-{n:02}")),
                mdm_id: docked.then_some(4100 + i64::from(n)),
                holder: matches!(state, SlotState::Reserved | SlotState::CheckingIn)
                    .then(|| format!("Nurse {n}")),
                since: docked.then(|| NOW.plus_seconds(-5_700)),
                sync: if state == SlotState::SetAside {
                    SyncState::Failed
                } else {
                    SyncState::Synced
                },
                note: (state == SlotState::SetAside).then(|| "device not found (404)".to_string()),
                state,
            }
        })
        .collect();
    let loans = (0..10u8)
        .map(|n| LoanView {
            holder: format!("Nurse {}", n + 30),
            username: Username::new(format!("nurse{}", n + 30)),
            device: DeviceKey::android(&format!("R58N{n}0XYZ")),
            device_name: Some(format!("Galaxy XCover 4W-{:02}", n * 2 + 3)),
            slot: SlotLabel::new((n * 2 + 3).to_string()),
            since: NOW.plus_seconds(-3_600 * (i64::from(n) + 1)),
            overdue: n % 3 == 0,
            due: None,
            due_text: None,
            sync: SyncState::Synced,
        })
        .collect();
    let events = (0..20)
        .map(|n| EventView {
            at: NOW.plus_seconds(-60 * n),
            text: format!(
                "Slot {}: Nurse {n} took iPhone 12 4W-{:02}",
                n % 24 + 1,
                n % 24 + 1
            ),
        })
        .collect();
    Snapshot {
        station: "4 West, cabinet A".to_string(),
        at: NOW,
        instruction: Instruction {
            tone: Tone::Success,
            headline: "ALICE MARTIN — TAKE SLOT 3".to_string(),
            detail: "iPhone 13 4W-03 is reserved for you for 60 seconds".to_string(),
            at: NOW,
        },
        slots,
        loans,
        readers: vec![ReaderView {
            name: ReaderName::new("front"),
            online: true,
            detail: None,
        }],
        mdm: MdmView {
            reachable: Some(false),
            waiting: 3,
            last_error: Some("connect timeout".to_string()),
        },
        events,
        open_reservations: 4,
        instructions: Vec::new(),
        fleet: None,
    }
}

fn measure(width: u16, height: u16, ascii: bool) -> Vec<Duration> {
    let feed = Feed::Live(busy_station());
    let options = DashboardOptions {
        ascii,
        ..DashboardOptions::default()
    };
    let mut ui = UiState::new(&options, NOW, FixedOffset::east_opt(0).unwrap());
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let mut timings = Vec::with_capacity(MEASURED_FRAMES);
    for frame in 0..WARM_UP_FRAMES + MEASURED_FRAMES {
        // The clock advances one second per frame, as the idle tick does, cycling
        // within the instruction's 20 s so the big letters are drawn in every frame.
        ui.now = NOW.plus_seconds(i64::try_from(frame % 15).unwrap());
        let started = Instant::now();
        terminal.draw(|f| render(f, &feed, &ui)).unwrap();
        let elapsed = started.elapsed();
        if frame >= WARM_UP_FRAMES {
            timings.push(elapsed);
        }
    }
    timings.sort();
    timings
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    let index = ((last as f64) * fraction).round() as usize;
    sorted[index.min(last)]
}

fn main() {
    println!(
        "dashboard render time per frame (terminal.draw on TestBackend), {MEASURED_FRAMES} frames"
    );
    println!("busy station: 24 slots, 10 loans, 20 events, Workspace ONE unreachable");
    for (width, height, ascii) in [
        (160, 50, false),
        (160, 50, true),
        (80, 25, false),
        (240, 67, false),
    ] {
        let timings = measure(width, height, ascii);
        println!(
            "{:<7} {:7} p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}",
            format!("{width}x{height}"),
            if ascii { "ascii" } else { "unicode" },
            percentile(&timings, 0.50),
            percentile(&timings, 0.99),
            timings[timings.len() - 1],
        );
    }
}
