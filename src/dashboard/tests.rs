//! Dashboard tests: every screen state rendered on ratatui's TestBackend at the kiosk's
//! sizes and kept as insta snapshots (`snapshots/`), colour-critical cells checked on the
//! buffer (text snapshots drop colour), and the terminal loop driven with scripted keys.
#![allow(clippy::unwrap_used)]

use chrono::FixedOffset;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::Terminal;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::checkout::{
    AdminCommand, EventView, Instruction, LoanView, MdmView, ReaderView, SlotState, SlotView,
    Snapshot, SyncState, Tone,
};
use crate::dashboard::view::{render, UiState};
use crate::dashboard::{DashboardOptions, Feed, UiCommand};
use crate::domain::{DeviceKey, Platform, ReaderName, SlotLabel, Timestamp, Username};

/// Fri 14 Mar 2025, 14:03:27 UTC.
const NOW: Timestamp = Timestamp(1_741_961_007_000);

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).unwrap()
}

fn minutes_ago(minutes: i64) -> Timestamp {
    NOW.plus_seconds(-60 * minutes)
}

fn ui(options: DashboardOptions) -> UiState {
    UiState::new(&options, NOW, utc())
}

fn slot(label: &str, state: SlotState, name: Option<&str>) -> SlotView {
    let docked = state != SlotState::Empty;
    SlotView {
        label: SlotLabel::new(label),
        state,
        device: docked.then(|| {
            DeviceKey::apple_from_usb_serial(&format!("00008110000A1B2C3D4E80{label:0>2}"))
        }),
        platform: docked.then_some(Platform::Apple),
        device_name: name.map(str::to_string),
        mdm_id: docked.then_some(4100 + i64::from(label.parse::<u8>().unwrap_or(0))),
        holder: None,
        since: docked.then(|| minutes_ago(95)),
        sync: SyncState::Synced,
        note: None,
    }
}

fn loan(holder: &str, slot: &str, since: Timestamp, overdue: bool) -> LoanView {
    LoanView {
        holder: holder.to_string(),
        username: Username::new(holder.to_lowercase().replace(' ', ".")),
        device: DeviceKey::android(&format!("R58N{slot}0XYZ")),
        device_name: Some(format!("Galaxy XCover 4W-{slot:0>2}")),
        slot: SlotLabel::new(slot),
        since,
        overdue,
        due: None,
        due_text: None,
        sync: SyncState::Synced,
    }
}

fn instruction(tone: Tone, headline: &str, detail: &str, at: Timestamp) -> Instruction {
    Instruction {
        tone,
        headline: headline.to_string(),
        detail: detail.to_string(),
        at,
    }
}

fn idle() -> Snapshot {
    Snapshot {
        station: "4 West, cabinet A".to_string(),
        at: NOW,
        instruction: instruction(
            Tone::Idle,
            "Tap your badge",
            "Dock a phone to return it",
            minutes_ago(30),
        ),
        slots: vec![
            slot("1", SlotState::Available, Some("iPhone 12 4W-01")),
            slot("2", SlotState::Available, Some("iPhone 12 4W-02")),
            slot("3", SlotState::Available, Some("iPhone 13 4W-03")),
            slot("4", SlotState::Empty, None),
            slot("5", SlotState::Available, Some("iPhone SE 4W-05")),
            slot("6", SlotState::Available, Some("iPhone SE 4W-06")),
        ],
        loans: vec![],
        readers: vec![ReaderView {
            name: ReaderName::new("front"),
            online: true,
            detail: None,
        }],
        mdm: MdmView {
            reachable: Some(true),
            waiting: 0,
            last_error: None,
        },
        events: vec![
            EventView {
                at: minutes_ago(12),
                text: "Slot 4: Dana Ortiz took iPhone 12 4W-04".to_string(),
            },
            EventView {
                at: minutes_ago(13),
                text: "Badge …3F9A tapped at front: Dana Ortiz".to_string(),
            },
            EventView {
                at: minutes_ago(40),
                text: "Slot 6 checked in (iPhone SE 4W-06)".to_string(),
            },
        ],
        open_reservations: 0,
        instructions: Vec::new(),
        fleet: None,
    }
}

fn take_slot() -> Snapshot {
    let mut snapshot = idle();
    snapshot.instruction = instruction(
        Tone::Success,
        "ALICE MARTIN — TAKE SLOT 3",
        "iPhone 13 4W-03 is reserved for you for 60 seconds",
        NOW.plus_seconds(-2),
    );
    snapshot.slots[2].state = SlotState::Reserved;
    snapshot.slots[2].holder = Some("Alice Martin".to_string());
    snapshot.slots[2].since = Some(NOW.plus_seconds(-2));
    snapshot.slots[2].sync = SyncState::Pending;
    snapshot.open_reservations = 1;
    snapshot.events.insert(
        0,
        EventView {
            at: NOW.plus_seconds(-2),
            text: "Badge …1C07 tapped at front: Alice Martin, slot 3 reserved".to_string(),
        },
    );
    snapshot
}

fn unknown_badge() -> Snapshot {
    let mut snapshot = idle();
    snapshot.instruction = instruction(
        Tone::Error,
        "Badge not recognised — see the charge nurse",
        "Badge …77E1 is not in the badge directory",
        NOW.plus_seconds(-1),
    );
    snapshot.events.insert(
        0,
        EventView {
            at: NOW.plus_seconds(-1),
            text: "Badge …77E1 tapped at front: not recognised".to_string(),
        },
    );
    snapshot
}

fn slot_returned() -> Snapshot {
    let mut snapshot = idle();
    snapshot.instruction = instruction(
        Tone::Info,
        "Slot 4 returned",
        "Thank you, Dana Ortiz. It will be ready once Workspace ONE confirms.",
        NOW.plus_seconds(-5),
    );
    snapshot.slots[3] = SlotView {
        holder: Some("Dana Ortiz".to_string()),
        sync: SyncState::Pending,
        since: Some(NOW.plus_seconds(-5)),
        ..slot("4", SlotState::CheckingIn, Some("iPhone 12 4W-04"))
    };
    snapshot
}

fn ws1_unreachable() -> Snapshot {
    let mut snapshot = slot_returned();
    snapshot.instruction.at = minutes_ago(3);
    snapshot.mdm = MdmView {
        reachable: Some(false),
        waiting: 3,
        last_error: Some("connect timeout to as1234.awmdm.com".to_string()),
    };
    snapshot.slots[3].note = Some("Workspace ONE unreachable; retrying".to_string());
    snapshot
}

fn slot_states() -> Snapshot {
    let mut snapshot = idle();
    snapshot.readers.push(ReaderView {
        name: ReaderName::new("side"),
        online: false,
        detail: Some("pcscd is not running".to_string()),
    });
    snapshot.mdm.waiting = 2;
    snapshot.slots = vec![
        SlotView {
            holder: Some("Alice Martin".to_string()),
            since: Some(NOW.plus_seconds(-20)),
            ..slot("1", SlotState::Reserved, Some("iPhone 12 4W-01"))
        },
        SlotView {
            holder: Some("Bob Chen".to_string()),
            sync: SyncState::Pending,
            since: Some(minutes_ago(1)),
            ..slot("2", SlotState::CheckingIn, Some("iPhone 12 4W-02"))
        },
        SlotView {
            sync: SyncState::Failed,
            note: Some("user staging-4west not found".to_string()),
            ..slot("3", SlotState::SetAside, Some("iPhone 13 4W-03"))
        },
        SlotView {
            sync: SyncState::Failed,
            note: Some("device 4104 not found (404)".to_string()),
            ..slot("4", SlotState::Available, Some("iPhone 12 4W-04"))
        },
        SlotView {
            since: Some(NOW.plus_seconds(-3)),
            ..slot("5", SlotState::Identifying, None)
        },
        slot("6", SlotState::Unidentified, None),
        slot("7", SlotState::Empty, None),
        slot("8", SlotState::Available, Some("iPhone SE 4W-08")),
    ];
    snapshot.loans = vec![loan("Carla Ruiz", "7", minutes_ago(200), false)];
    snapshot.open_reservations = 1;
    snapshot
}

fn overdue() -> Snapshot {
    let mut snapshot = idle();
    snapshot.slots[3] = slot("4", SlotState::Empty, None);
    snapshot.slots[4] = slot("5", SlotState::Empty, None);
    snapshot.slots[5] = slot("6", SlotState::Empty, None);
    snapshot.loans = vec![
        loan("Dana Ortiz", "4", minutes_ago(60 * 26 + 5), true),
        loan("Émile Zoë Brontë", "5", minutes_ago(60 * 13), true),
        loan("Farid Haddad", "6", minutes_ago(45), false),
    ];
    snapshot
}

fn busy() -> Snapshot {
    let mut snapshot = slot_states();
    snapshot.slots = (1..=24)
        .map(|n| {
            let label = n.to_string();
            let state = match n % 6 {
                0 => SlotState::Reserved,
                1 => SlotState::Available,
                2 => SlotState::CheckingIn,
                3 => SlotState::Empty,
                4 => SlotState::SetAside,
                _ => SlotState::Available,
            };
            let name = format!("iPhone 12 4W-{n:02}");
            let mut view = slot(
                &label,
                state.clone(),
                (state != SlotState::Empty).then_some(name.as_str()),
            );
            if state == SlotState::Reserved || state == SlotState::CheckingIn {
                view.holder = Some(format!("Nurse {n}"));
            }
            view
        })
        .collect();
    snapshot.loans = (0..10)
        .map(|n| {
            loan(
                &format!("Nurse {}", n + 30),
                &(n * 6 + 3).min(24).to_string(),
                minutes_ago(60 * (n + 1)),
                n % 3 == 0,
            )
        })
        .collect();
    snapshot.events = (0..20)
        .map(|n| EventView {
            at: minutes_ago(n),
            text: format!("Slot {}: event number {n}", n % 24 + 1),
        })
        .collect();
    snapshot
}

fn down() -> Feed {
    Feed::Down {
        since: minutes_ago(2),
        reason: "cannot reach the badgedock daemon at /run/badgedock/control.sock: Connection refused (os error 111) (is badgedock.service running?)".to_string(),
    }
}

fn draw(feed: &Feed, ui: &UiState, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| render(frame, feed, ui)).unwrap();
    terminal
}

fn screen_text(terminal: &Terminal<TestBackend>) -> String {
    terminal.backend().to_string()
}

/// Renders `feed` at 80×25 and 160×50 and compares both with the stored snapshots.
fn check(name: &str, feed: &Feed, ui: &UiState) {
    for (width, height) in [(80, 25), (160, 50)] {
        let terminal = draw(feed, ui, width, height);
        insta::assert_snapshot!(format!("{name}_{width}x{height}"), terminal.backend());
    }
}

// ---- snapshots ------------------------------------------------------------------------

#[test]
fn idle_screen() {
    check(
        "idle",
        &Feed::Live(idle()),
        &ui(DashboardOptions::default()),
    );
}

#[test]
fn take_slot_screen() {
    check(
        "take_slot",
        &Feed::Live(take_slot()),
        &ui(DashboardOptions::default()),
    );
}

#[test]
fn unknown_badge_screen() {
    check(
        "unknown_badge",
        &Feed::Live(unknown_badge()),
        &ui(DashboardOptions::default()),
    );
}

#[test]
fn slot_returned_screen() {
    check(
        "slot_returned",
        &Feed::Live(slot_returned()),
        &ui(DashboardOptions::default()),
    );
}

#[test]
fn workspace_one_unreachable_screen() {
    check(
        "ws1_unreachable",
        &Feed::Live(ws1_unreachable()),
        &ui(DashboardOptions::default()),
    );
}

#[test]
fn slot_states_screen() {
    check(
        "slot_states",
        &Feed::Live(slot_states()),
        &ui(DashboardOptions::default()),
    );
}

#[test]
fn overdue_screen() {
    check(
        "overdue",
        &Feed::Live(overdue()),
        &ui(DashboardOptions::default()),
    );
}

#[test]
fn daemon_down_screen() {
    check("daemon_down", &down(), &ui(DashboardOptions::default()));
    let text = screen_text(&draw(&down(), &ui(DashboardOptions::default()), 80, 25));
    assert!(text.contains("badgedock daemon is not running — retrying"));
    assert!(text.contains("Down since 14:01 (2m ago)."));
}

#[test]
fn ascii_screens() {
    let options = DashboardOptions {
        ascii: true,
        ..DashboardOptions::default()
    };
    for (name, feed) in [
        ("ascii_take_slot", Feed::Live(take_slot())),
        ("ascii_slot_states", Feed::Live(slot_states())),
        ("ascii_overdue", Feed::Live(overdue())),
        ("ascii_daemon_down", down()),
    ] {
        check(name, &feed, &ui(options));
        for (width, height) in [(80, 25), (160, 50), (240, 67)] {
            let text = screen_text(&draw(&feed, &ui(options), width, height));
            assert!(
                text.is_ascii(),
                "{name} at {width}x{height} drew non-ASCII glyphs:\n{text}"
            );
        }
    }
}

#[test]
fn admin_mode_screen() {
    let options = DashboardOptions {
        admin: true,
        demo_keys: true,
        ..DashboardOptions::default()
    };
    let mut state = ui(options);
    state.selected_slot = 2;
    state.pending = Some(AdminCommand::Retry {
        slot: SlotLabel::new("3"),
    });
    check("admin_confirm", &Feed::Live(slot_states()), &state);
    state.pending = None;
    state.notice = Some("slot 3 back in selection; retrying 1 action".to_string());
    check("admin_notice", &Feed::Live(slot_states()), &state);
}

#[test]
fn busy_station_screens() {
    let feed = Feed::Live(busy());
    check("busy", &feed, &ui(DashboardOptions::default()));
    let terminal = draw(&feed, &ui(DashboardOptions::default()), 240, 67);
    insta::assert_snapshot!("busy_240x67", terminal.backend());
}

#[test]
fn instruction_returns_to_idle_after_twenty_seconds() {
    let mut snapshot = take_slot();
    snapshot.instruction.at = NOW.plus_seconds(-19);
    let fresh = screen_text(&draw(
        &Feed::Live(snapshot.clone()),
        &ui(DashboardOptions::default()),
        160,
        50,
    ));
    assert!(fresh.contains("ALICE MARTIN — TAKE SLOT 3"));
    snapshot.instruction.at = NOW.plus_seconds(-21);
    let aged = draw(
        &Feed::Live(snapshot),
        &ui(DashboardOptions::default()),
        160,
        50,
    );
    let aged_text = screen_text(&aged);
    assert!(!aged_text.contains("TAKE SLOT 3"));
    assert!(aged_text.contains(" READY "));
    insta::assert_snapshot!("aged_instruction_160x50", aged.backend());
}

#[test]
fn tiny_and_huge_terminals_do_not_panic() {
    for (width, height) in [(1, 1), (19, 5), (20, 6), (40, 10), (80, 8), (300, 100)] {
        for feed in [Feed::Live(busy()), Feed::Live(take_slot()), down()] {
            let _ = draw(&feed, &ui(DashboardOptions::default()), width, height);
        }
    }
}

// ---- colour-critical cells --------------------------------------------------------------

/// Cells of `buffer` within `rows` whose symbol is `symbol`.
fn cells_with<'a>(
    buffer: &'a Buffer,
    rows: std::ops::Range<u16>,
    symbol: &str,
) -> Vec<&'a ratatui::buffer::Cell> {
    let mut found = Vec::new();
    for y in rows {
        for x in 0..buffer.area.width {
            let cell = &buffer[(x, y)];
            if cell.symbol() == symbol {
                found.push(cell);
            }
        }
    }
    found
}

/// The style of the first cell of the first occurrence of `text` on screen.
fn style_of(buffer: &Buffer, text: &str) -> Style {
    for y in 0..buffer.area.height {
        let row: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol())
            .collect();
        if let Some(byte_offset) = row.find(text) {
            let x = u16::try_from(row[..byte_offset].chars().count()).unwrap();
            return buffer[(x, y)].style();
        }
    }
    panic!("{text:?} is not on screen");
}

/// Big-letter pixels in the instruction block (rows 3 to 20).
fn big_pixels<'a>(buffer: &'a Buffer, symbols: &[&str]) -> Vec<&'a ratatui::buffer::Cell> {
    symbols
        .iter()
        .flat_map(|symbol| cells_with(buffer, 3..20, symbol))
        .collect()
}

#[test]
fn success_headline_is_green_and_error_red() {
    let blocks = ["█", "▀", "▄"];
    for (snapshot, colour, sizes) in [
        (
            take_slot(),
            Color::Green,
            vec![(80, 25), (160, 50), (240, 67)],
        ),
        (unknown_badge(), Color::Red, vec![(160, 50), (240, 67)]),
    ] {
        for (width, height) in sizes {
            let terminal = draw(
                &Feed::Live(snapshot.clone()),
                &ui(DashboardOptions::default()),
                width,
                height,
            );
            let pixels = big_pixels(terminal.backend().buffer(), &blocks);
            assert!(!pixels.is_empty(), "no big letters at {width}x{height}");
            assert!(
                pixels.iter().all(|cell| cell.fg == colour),
                "big letters not {colour:?} at {width}x{height}"
            );
        }
    }
    // ASCII mode draws its big letters with `#`, in the same colour.
    let ascii = DashboardOptions {
        ascii: true,
        ..DashboardOptions::default()
    };
    let terminal = draw(&Feed::Live(take_slot()), &ui(ascii), 160, 50);
    let pixels = big_pixels(terminal.backend().buffer(), &["#"]);
    assert!(!pixels.is_empty());
    assert!(pixels.iter().all(|cell| cell.fg == Color::Green));
}

#[test]
fn headline_without_room_for_big_letters_is_a_coloured_band() {
    // At 80x25 the refusal is too long for big letters: it becomes a red reversed band.
    let terminal = draw(
        &Feed::Live(unknown_badge()),
        &ui(DashboardOptions::default()),
        80,
        25,
    );
    let buffer = terminal.backend().buffer();
    let style = style_of(buffer, "Badge not recognised — see the charge nurse");
    assert_eq!(style.fg, Some(Color::Red));
    assert!(style
        .add_modifier
        .contains(Modifier::REVERSED | Modifier::BOLD));
    // The band spans the row, so it reads as a block of colour from afar.
    assert_eq!(buffer[(2, 3)].fg, Color::Red);
    assert!(buffer[(2, 3)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn slot_states_have_colour_and_words() {
    let terminal = draw(
        &Feed::Live(slot_states()),
        &ui(DashboardOptions::default()),
        160,
        50,
    );
    let buffer = terminal.backend().buffer();
    let expectations = [
        ("✗ SET ASIDE", Color::Red),
        ("✗ sync FAILED", Color::Red),
        ("… sync pending", Color::Yellow),
        ("◆ reserved for Alice Martin", Color::Yellow),
        ("↺ checking in from Bob Chen", Color::Cyan),
        ("… identifying", Color::Cyan),
        ("? unknown to Workspace ONE", Color::Yellow),
        ("✓ available", Color::Green),
        ("✗ Reader side: not working, call IT", Color::Red),
    ];
    for (text, colour) in expectations {
        assert_eq!(style_of(buffer, text).fg, Some(colour), "{text}");
    }
    assert!(style_of(buffer, "✗ SET ASIDE")
        .add_modifier
        .contains(Modifier::BOLD));

    let terminal = draw(
        &Feed::Live(overdue()),
        &ui(DashboardOptions::default()),
        80,
        25,
    );
    let buffer = terminal.backend().buffer();
    assert_eq!(
        style_of(buffer, "⚠ OVERDUE with Dana Ortiz").fg,
        Some(Color::Red)
    );
    assert_eq!(style_of(buffer, " Overdue (2) ").fg, Some(Color::Red));
}

#[test]
fn header_shows_workspace_one_unreachable_in_red_with_words() {
    let terminal = draw(
        &Feed::Live(ws1_unreachable()),
        &ui(DashboardOptions::default()),
        80,
        25,
    );
    let rendered = terminal.backend().buffer();
    let mut header = Buffer::empty(Rect::new(0, 0, 80, 2));
    for y in 0..2 {
        for x in 0..80 {
            header[(x, y)] = rendered[(x, y)].clone();
        }
    }
    let mut expected = Buffer::with_lines([
        " 4 West, cabinet A                                                 Fri 14:03:27 ",
        " ✓ Reader front: ready │ ⚠ Workspace ONE unreachable — 3 actions waiting        ",
    ]);
    let reversed = Style::new().add_modifier(Modifier::REVERSED);
    expected.set_style(Rect::new(0, 0, 80, 1), reversed);
    expected.set_style(
        Rect::new(1, 0, 17, 1),
        reversed.add_modifier(Modifier::BOLD),
    );
    expected.set_style(Rect::new(1, 1, 21, 1), Style::new().fg(Color::Green));
    expected.set_style(Rect::new(22, 1, 3, 1), Style::new().fg(Color::DarkGray));
    expected.set_style(
        Rect::new(25, 1, 47, 1),
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    );
    assert_eq!(header, expected);
}

#[test]
fn daemon_down_is_red() {
    let terminal = draw(&down(), &ui(DashboardOptions::default()), 80, 25);
    let buffer = terminal.backend().buffer();
    assert_eq!(
        style_of(buffer, "✗ badgedock daemon is not running").fg,
        Some(Color::Red)
    );
}

// ---- text helpers -----------------------------------------------------------------------

#[test]
fn ascii_transliteration() {
    use crate::dashboard::view::to_ascii;
    assert_eq!(
        to_ascii("Émile Zoë Brontë — slot 3…", false),
        "Emile Zoe Bronte - slot 3..."
    );
    assert_eq!(to_ascii("ALICE — TAKE SLOT 3", true), "ALICE — TAKE SLOT 3");
    assert_eq!(to_ascii("Łukasz Straße 日本", false), "Lukasz Strasse ??");
}

// ---- the terminal loop -------------------------------------------------------------------

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};

use crate::dashboard::{event_loop, handle_key, Host, Inputs, KeyOutcome};

fn fixed_clock() -> (Timestamp, FixedOffset) {
    (NOW, utc())
}

fn terminal_ours() -> bool {
    true
}

fn terminal_lost() -> bool {
    false
}

/// The loop's surroundings in tests: a fixed clock and a terminal that stays ours.
const TEST_HOST: Host<'static> = Host {
    clock: &fixed_clock,
    terminal_active: &terminal_ours,
};

fn press(code: KeyCode) -> std::io::Result<Event> {
    Ok(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

/// Runs the loop on a TestBackend with `keys` queued after a feed change to `next`,
/// and returns the commands it sent and the last screen.
async fn drive(
    options: DashboardOptions,
    first: Feed,
    next: Feed,
    keys: Vec<std::io::Result<Event>>,
) -> (Vec<UiCommand>, String) {
    let mut terminal = Terminal::new(TestBackend::new(160, 50)).unwrap();
    let (feed_sender, feed) = watch::channel(first);
    let (key_sender, key_receiver) = mpsc::channel(16);
    let (_notice_sender, notices) = mpsc::channel(1);
    let (commands, mut command_receiver) = mpsc::channel(16);
    let inputs = Inputs {
        feed,
        keys: key_receiver,
        notices,
        shutdown: CancellationToken::new(),
    };
    feed_sender.send(next).unwrap();
    for key in keys {
        key_sender.send(key).await.unwrap();
    }
    event_loop(&mut terminal, options, inputs, &commands, &TEST_HOST)
        .await
        .unwrap();
    drop(commands);
    let mut sent = Vec::new();
    while let Some(command) = command_receiver.recv().await {
        sent.push(command);
    }
    (sent, screen_text(&terminal))
}

#[tokio::test]
async fn loop_draws_the_feed_and_quits_on_q() {
    let (sent, screen) = drive(
        DashboardOptions::default(),
        Feed::Live(idle()),
        Feed::Live(take_slot()),
        vec![
            press(KeyCode::Char('3')),
            press(KeyCode::Char('r')),
            press(KeyCode::Char('q')),
        ],
    )
    .await;
    // Demo and admin keys are off: only the quit went out.
    assert_eq!(sent, vec![UiCommand::Quit]);
    assert!(screen.contains("ALICE MARTIN — TAKE SLOT 3"));
}

#[tokio::test]
async fn loop_sends_demo_taps_only_with_demo_keys() {
    let options = DashboardOptions {
        demo_keys: true,
        ..DashboardOptions::default()
    };
    let (sent, screen) = drive(
        options,
        Feed::Live(idle()),
        Feed::Live(idle()),
        vec![
            press(KeyCode::Char('3')),
            press(KeyCode::Char('0')),
            press(KeyCode::Char('q')),
        ],
    )
    .await;
    assert_eq!(sent, vec![UiCommand::Tap(3), UiCommand::Quit]);
    assert!(screen.contains("demo badge 3 tapped"));
}

#[tokio::test]
async fn loop_sends_admin_commands_after_confirmation() {
    let options = DashboardOptions {
        admin: true,
        ..DashboardOptions::default()
    };
    let keys = vec![
        // Slot 3 is set aside: choose it, ask to retry, confirm.
        press(KeyCode::Down),
        press(KeyCode::Down),
        press(KeyCode::Char('r')),
        press(KeyCode::Char('y')),
        // Slot 1 is reserved: ask to cancel, then change one's mind.
        press(KeyCode::Up),
        press(KeyCode::Up),
        press(KeyCode::Char('c')),
        press(KeyCode::Char('n')),
        // Then cancel it for real.
        press(KeyCode::Char('c')),
        press(KeyCode::Char('y')),
        press(KeyCode::Char('q')),
    ];
    let (sent, _) = drive(options, Feed::Live(idle()), Feed::Live(slot_states()), keys).await;
    assert_eq!(
        sent,
        vec![
            UiCommand::Admin(AdminCommand::Retry {
                slot: SlotLabel::new("3")
            }),
            UiCommand::Admin(AdminCommand::CancelReservation {
                slot: SlotLabel::new("1")
            }),
            UiCommand::Quit,
        ]
    );
}

#[tokio::test]
async fn loop_ends_when_the_feed_goes_away() {
    let mut terminal = Terminal::new(TestBackend::new(80, 25)).unwrap();
    let (feed_sender, feed) = watch::channel(Feed::Live(idle()));
    let (_key_sender, keys) = mpsc::channel(1);
    let (_notice_sender, notices) = mpsc::channel(1);
    let (commands, _command_receiver) = mpsc::channel(1);
    drop(feed_sender);
    let inputs = Inputs {
        feed,
        keys,
        notices,
        shutdown: CancellationToken::new(),
    };
    event_loop(
        &mut terminal,
        DashboardOptions::default(),
        inputs,
        &commands,
        &TEST_HOST,
    )
    .await
    .unwrap();
    assert!(screen_text(&terminal).contains("Tap your badge"));
}

#[tokio::test]
async fn loop_reports_a_broken_terminal() {
    let mut terminal = Terminal::new(TestBackend::new(80, 25)).unwrap();
    let (_feed_sender, feed) = watch::channel(Feed::Live(idle()));
    let (key_sender, keys) = mpsc::channel(1);
    let (_notice_sender, notices) = mpsc::channel(1);
    let (commands, _command_receiver) = mpsc::channel(1);
    key_sender
        .send(Err(std::io::Error::other("tty gone")))
        .await
        .unwrap();
    let inputs = Inputs {
        feed,
        keys,
        notices,
        shutdown: CancellationToken::new(),
    };
    let error = event_loop(
        &mut terminal,
        DashboardOptions::default(),
        inputs,
        &commands,
        &TEST_HOST,
    )
    .await
    .unwrap_err();
    assert_eq!(
        format!("{error:#}"),
        "cannot read keys from the terminal: tty gone"
    );
}

#[tokio::test]
async fn loop_stops_drawing_once_a_panic_gave_the_terminal_back() {
    let mut terminal = Terminal::new(TestBackend::new(80, 25)).unwrap();
    let (_feed_sender, feed) = watch::channel(Feed::Live(idle()));
    let (_key_sender, keys) = mpsc::channel(1);
    let (_notice_sender, notices) = mpsc::channel(1);
    let (commands, _command_receiver) = mpsc::channel(1);
    let inputs = Inputs {
        feed,
        keys,
        notices,
        shutdown: CancellationToken::new(),
    };
    let host = Host {
        clock: &fixed_clock,
        terminal_active: &terminal_lost,
    };
    let error = event_loop(
        &mut terminal,
        DashboardOptions::default(),
        inputs,
        &commands,
        &host,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("panicked elsewhere"), "{error}");
    // Nothing was drawn over the restored screen.
    assert!(!screen_text(&terminal).contains("Tap your badge"));
}

#[test]
fn admin_keys_do_nothing_without_admin_mode() {
    let feed = Feed::Live(slot_states());
    let options = DashboardOptions::default();
    let mut state = ui(options);
    for code in [
        KeyCode::Down,
        KeyCode::Char('r'),
        KeyCode::Char('c'),
        KeyCode::Char('y'),
    ] {
        let outcome = handle_key(
            KeyEvent::new(code, KeyModifiers::NONE),
            &mut state,
            &feed,
            &options,
        );
        assert_eq!(outcome, KeyOutcome::Nothing);
    }
    assert_eq!(state.pending, None);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(
        handle_key(ctrl_c, &mut state, &feed, &options),
        KeyOutcome::Quit
    );
}

#[test]
fn admin_refuses_commands_that_do_not_apply() {
    let feed = Feed::Live(slot_states());
    let options = DashboardOptions {
        admin: true,
        ..DashboardOptions::default()
    };
    let mut state = ui(options);
    // Slot 8 (index 7) is available: nothing to retry, no reservation.
    state.selected_slot = 7;
    handle_key(
        KeyEvent::new(KeyCode::Char('r'), KeyModifiers::NONE),
        &mut state,
        &feed,
        &options,
    );
    assert_eq!(state.pending, None);
    assert_eq!(
        state.notice.as_deref(),
        Some("slot 8: nothing failed to retry")
    );
    handle_key(
        KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE),
        &mut state,
        &feed,
        &options,
    );
    assert_eq!(
        state.notice.as_deref(),
        Some("slot 8: no reservation to cancel")
    );
    // Slot 4 has a failed sync without being set aside: retry applies.
    state.selected_slot = 3;
    handle_key(
        KeyEvent::new(KeyCode::Char('r'), KeyModifiers::NONE),
        &mut state,
        &feed,
        &options,
    );
    assert_eq!(
        state.pending,
        Some(AdminCommand::Retry {
            slot: SlotLabel::new("4")
        })
    );
}

// ---- terminal restore ---------------------------------------------------------------------

#[test]
fn restore_leaves_the_alternate_screen_and_shows_the_cursor() {
    let mut written = Vec::new();
    crate::dashboard::restore_terminal(&mut written).unwrap();
    let written = String::from_utf8(written).unwrap();
    assert!(
        written.contains("\u{1b}[?1049l"),
        "no leave-alternate-screen in {written:?}"
    );
    assert!(
        written.contains("\u{1b}[?25h"),
        "no show-cursor in {written:?}"
    );
}

#[test]
fn panic_hook_restores_before_the_previous_hook_runs() {
    use std::sync::{Arc, Mutex};
    let order = Arc::new(Mutex::new(Vec::new()));
    // The real hook stays in place for every other panic in this test binary.
    let original: Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send> =
        Arc::from(std::panic::take_hook());
    let previous_order = Arc::clone(&order);
    let previous_original = Arc::clone(&original);
    let previous = Box::new(move |info: &std::panic::PanicHookInfo<'_>| {
        if info.payload().downcast_ref::<&str>() == Some(&"dashboard test panic") {
            previous_order.lock().unwrap().push("previous hook");
        } else {
            previous_original(info);
        }
    });
    let restore_order = Arc::clone(&order);
    let hook = crate::dashboard::restoring_hook(previous, move || {
        restore_order.lock().unwrap().push("restore terminal");
    });
    std::panic::set_hook(hook);
    let result = std::thread::spawn(|| std::panic::panic_any("dashboard test panic")).join();
    let _ours = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| original(info)));
    assert!(result.is_err());
    assert_eq!(
        *order.lock().unwrap(),
        vec!["restore terminal", "previous hook"]
    );
}

// ---- admin commands over the control socket ------------------------------------------------

#[tokio::test]
async fn admin_commands_go_to_the_daemon_and_its_answer_comes_back() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use crate::control::{encode_response, parse_request, Request, Response};

    let directory = tempfile::tempdir().unwrap();
    let socket = directory.path().join("control.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let line = BufReader::new(read)
            .lines()
            .next_line()
            .await
            .unwrap()
            .unwrap();
        let request = parse_request(&line).unwrap();
        let answer = encode_response(Response::Done {
            message: "slot 3 back in selection".to_string(),
        });
        write.write_all(answer.as_bytes()).await.unwrap();
        request
    });
    let (commands, command_receiver) = mpsc::channel(4);
    let (notice_sender, mut notices) = mpsc::channel(4);
    let cancel = CancellationToken::new();
    let forwarder = tokio::spawn(crate::dashboard::forward_commands(
        socket,
        command_receiver,
        notice_sender,
        cancel.clone(),
    ));
    commands.send(UiCommand::Tap(2)).await.unwrap();
    commands
        .send(UiCommand::Admin(AdminCommand::Retry {
            slot: SlotLabel::new("3"),
        }))
        .await
        .unwrap();
    assert_eq!(
        notices.recv().await.as_deref(),
        Some("slot 3 back in selection")
    );
    assert_eq!(
        server.await.unwrap(),
        Request::Admin {
            admin: AdminCommand::Retry {
                slot: SlotLabel::new("3")
            }
        }
    );
    cancel.cancel();
    forwarder.await.unwrap();
}

/// Issue 14: a broken slot says so, an overdue loan says when it was due, and the admin
/// mode's `b` asks before marking a slot broken (and before putting it back).
#[test]
fn broken_slot_due_times_and_the_broken_key() {
    let mut snapshot = overdue();
    snapshot.slots[1] = slot("2", SlotState::Broken, Some("iPhone 12 4W-02"));
    snapshot.loans[0].due = Some(minutes_ago(60 * 14));
    snapshot.loans[0].due_text = Some("Mon 07 Dec 19:30".into());
    let feed = Feed::Live(snapshot.clone());
    let text = screen_text(&draw(&feed, &ui(DashboardOptions::default()), 160, 50));
    assert!(
        text.contains("BROKEN (out of use until repaired)"),
        "{text}"
    );
    assert!(text.contains("slot 4, due Mon 07 Dec 19:30"), "{text}");

    let options = DashboardOptions {
        admin: true,
        ..DashboardOptions::default()
    };
    let mut state = ui(options);
    state.selected_slot = 1;
    let b = KeyEvent::new(KeyCode::Char('b'), KeyModifiers::NONE);
    let outcome = handle_key(b, &mut state, &feed, &options);
    assert!(matches!(outcome, KeyOutcome::Redraw));
    assert_eq!(
        state.pending,
        Some(AdminCommand::ClearBroken {
            slot: SlotLabel::new("2")
        })
    );
    let text = screen_text(&draw(&feed, &state, 160, 50));
    assert!(
        text.contains("Slot 2: repaired: put it back in use?"),
        "{text}"
    );
    let mut state = ui(options);
    state.selected_slot = 0;
    handle_key(b, &mut state, &feed, &options);
    assert_eq!(
        state.pending,
        Some(AdminCommand::MarkBroken {
            slot: SlotLabel::new("1")
        })
    );
}
