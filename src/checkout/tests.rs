//! Data-driven engine scenarios: a small script drives the engine, and the transcript of
//! inputs, effects and the final screen is kept as an insta snapshot.
//!
//! Script lines (one input each, `#` starts a comment):
//! - `config assign-at=undock max=2 reservation=30 threshold=2` (first line only)
//! - `dock SLOT DEVICE` · `undock SLOT DEVICE` · `move FROM TO DEVICE` where DEVICE is
//!   `a:ID` (Apple) or `g:ID` (Android)
//! - `identify DEVICE USER|- [name=TEXT] [wipe]` · `identify-fail DEVICE`
//! - `tap USER` (known; `enroller` suffix allowed) · `tap ?` (unknown badge) ·
//!   `tap !USER` (denied) · `tap ~` (directory unreachable)
//! - `ok ID` · `fail ID MESSAGE` · `retrying ID` (settle outbox action ID)
//! - `wait SECONDS` (advance time, then Tick) · `admin retry SLOT` · `admin cancel SLOT`
//! - `restart` (rebuild the engine from the commits so far, as the store would)
//! - `fleet up USER@CABINET…` · `fleet down` (loans at other stations; `_` in a cabinet
//!   name is a space) · `console ID close-loan|lost USER` · `console ID retry SLOT` (a
//!   fleet console request)

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::*;
use crate::badges::Resolution;
use crate::domain::{
    BadgeNumber, DeviceKey, Platform, ReaderName, SlotLabel, Timestamp, User, Username,
};

fn config(line: Option<&str>) -> EngineConfig {
    let mut config = EngineConfig {
        station: "4 West, cabinet A".into(),
        slots: (1..=6).map(|n| SlotLabel::new(n.to_string())).collect(),
        staging_user: Username::new("staging-4west"),
        max_devices_per_user: 1,
        reservation_ms: 60_000,
        assign_at: AssignAt::Tap,
        overdue_ms: 12 * 3_600_000,
        failure_threshold: 3,
        checkout_steps: crate::config::default_steps(true),
        checkin_steps: crate::config::default_steps(false),
        reboot_window_ms: 120_000,
        organization_groups: Vec::new(),
        lending: Default::default(),
    };
    for setting in line.unwrap_or("").split_whitespace().skip(1) {
        let (key, value) = setting.split_once('=').expect("key=value");
        match key {
            "assign-at" => {
                config.assign_at = if value == "undock" {
                    AssignAt::Undock
                } else {
                    AssignAt::Tap
                }
            }
            "max" => config.max_devices_per_user = value.parse().expect("max"),
            "reservation" => {
                config.reservation_ms = value.parse::<i64>().expect("reservation") * 1000
            }
            "threshold" => config.failure_threshold = value.parse().expect("threshold"),
            "slots" => {
                let n_slots: u32 = value.parse().expect("slots");
                config.slots = (1..=n_slots)
                    .map(|n| SlotLabel::new(n.to_string()))
                    .collect();
            }
            "checkin" if value == "wipe" => {
                config.checkin_steps.insert(
                    Platform::Apple,
                    vec![WorkflowStep::Command {
                        command: DeviceCommand::EnterpriseWipe,
                    }],
                );
            }
            "lending" => config.lending = super::lending_tests::lending(value),
            other => panic!("unknown config key {other}"),
        }
    }
    config
}

fn device(text: &str) -> DeviceKey {
    match text.split_once(':') {
        Some(("a", id)) => DeviceKey {
            platform: Platform::Apple,
            id: id.to_string(),
        },
        Some(("g", id)) => DeviceKey {
            platform: Platform::Android,
            id: id.to_string(),
        },
        _ => panic!("bad device {text}"),
    }
}

fn user(name: &str) -> User {
    let enroller = name.ends_with("+enroller");
    let name = name.trim_end_matches("+enroller");
    let mut display = name.to_string();
    if let Some(first) = display.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    User {
        username: Username::new(name),
        display_name: display,
        groups: vec![],
        enroller,
    }
}

/// The store, as far as the engine can tell: the latest version of every record.
#[derive(Default)]
struct FakeStore {
    devices: BTreeMap<DeviceKey, DeviceRecord>,
    checkouts: BTreeMap<CheckoutId, CheckoutRecord>,
    actions: BTreeMap<ActionId, ActionRecord>,
    counters: Counters,
}

impl FakeStore {
    fn apply(&mut self, commit: &Commit) {
        for d in &commit.devices {
            self.devices.insert(d.key.clone(), d.clone());
        }
        for c in &commit.checkouts {
            self.checkouts.insert(c.id, c.clone());
        }
        for a in &commit.actions {
            self.actions.insert(a.id, a.clone());
        }
        self.counters = commit.counters;
    }

    fn persisted(&self) -> Persisted {
        Persisted {
            devices: self.devices.values().cloned().collect(),
            open_checkouts: self
                .checkouts
                .values()
                .filter(|c| matches!(c.state, CheckoutState::Reserved | CheckoutState::Out))
                .cloned()
                .collect(),
            open_actions: self
                .actions
                .values()
                .filter(|a| matches!(a.state, ActionState::Pending | ActionState::Failed))
                .cloned()
                .collect(),
            counters: self.counters,
        }
    }
}

/// Runs a script and returns its transcript.
pub(super) fn run(script: &str) -> String {
    let lines: Vec<&str> = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let config_line = lines.first().filter(|l| l.starts_with("config")).copied();
    let config = config(config_line);
    let mut now = Timestamp(1_700_000_000_000);
    let mut mono = Mono(5_000_000);
    let mut store = FakeStore::default();
    let (mut engine, _) = Engine::restore(
        config.clone(),
        Persisted::default(),
        Now { wall: now, mono },
    );
    let mut out = String::new();
    // The latest lookup asked per device: `identify` lines answer it.
    let mut asked: BTreeMap<String, u64> = BTreeMap::new();
    for line in lines.iter().skip(usize::from(config_line.is_some())) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let reader = ReaderName::new("front");
        let input = match words.as_slice() {
            ["restart"] => {
                // A new process: its monotonic clock starts elsewhere.
                mono = Mono(17);
                let (restored, effects) =
                    Engine::restore(config.clone(), store.persisted(), Now { wall: now, mono });
                engine = restored;
                writeln!(out, "> restart").ok();
                for effect in effects {
                    if let Effect::Identify { device, request } = &effect {
                        asked.insert(device.id.clone(), *request);
                    }
                    writeln!(out, "  {}", describe_effect(&effect)).ok();
                }
                continue;
            }
            ["wait", seconds] => {
                let seconds: i64 = seconds.parse().expect("seconds");
                now = now.plus_seconds(seconds);
                mono = mono.plus_millis(seconds * 1000);
                Input::Tick
            }
            ["at", local] => {
                // Time passes to a wall-clock time in the station's zone (lending tests).
                let to = super::lending_tests::at(&config, local);
                mono = mono.plus_millis(to.millis_since(now));
                now = to;
                Input::Tick
            }
            ["clock", seconds] => {
                // The wall clock steps; monotonic time does not.
                let seconds: i64 = seconds.parse().expect("seconds");
                now = Timestamp(now.0 + seconds * 1000);
                Input::Tick
            }
            ["dock", slot, dev] => Input::Docked {
                slot: SlotLabel::new(*slot),
                device: device(dev),
            },
            ["undock", slot, dev] => Input::Undocked {
                slot: SlotLabel::new(*slot),
                device: device(dev),
            },
            ["move", from, to, dev] => Input::Moved {
                from: SlotLabel::new(*from),
                to: SlotLabel::new(*to),
                device: device(dev),
            },
            ["inventory", rest @ ..] => Input::Inventory {
                present: rest
                    .chunks(2)
                    .map(|pair| (SlotLabel::new(pair[0]), device(pair[1])))
                    .collect(),
            },
            ["identify", dev, who, rest @ ..] => Input::DeviceIdentified {
                device: device(dev),
                request: asked.get(device(dev).id.as_str()).copied().unwrap_or(0),
                result: Ok(MdmDeviceInfo {
                    mdm_id: 100 + dev.len() as i64,
                    name: rest
                        .iter()
                        .find_map(|w| w.strip_prefix("name="))
                        .unwrap_or("")
                        .replace('_', " "),
                    enrollment_user: (*who != "-").then(|| Username::new(*who)),
                    wipe_pending: rest.contains(&"wipe"),
                    ownership: Some(if rest.contains(&"personal") { "E" } else { "S" }.into()),
                    group_id: Some(571),
                    enrolled: !rest.contains(&"wipe") && !rest.contains(&"unenrolled"),
                }),
            },
            ["identify-fail", dev] => Input::DeviceIdentified {
                device: device(dev),
                request: asked.get(device(dev).id.as_str()).copied().unwrap_or(0),
                result: Err("HTTP 503".into()),
            },
            ["tap", "?"] => Input::Tap {
                reader,
                badge: BadgeNumber::new("0000DEADBEEF"),
                resolution: Resolution::Unknown,
            },
            ["tap", "~"] => Input::Tap {
                reader,
                badge: BadgeNumber::new("0000CAFEF00D"),
                resolution: Resolution::Unavailable {
                    reason: "LDAP server unreachable".into(),
                },
            },
            ["tap", name] if name.starts_with('!') => Input::Tap {
                reader,
                badge: BadgeNumber::new("00001234ABCD"),
                resolution: Resolution::Denied {
                    user: user(&name[1..]),
                    reason: "not in an allowed group".into(),
                },
            },
            ["tap", name] => Input::Tap {
                reader,
                badge: BadgeNumber::new(format!("04A1B2{:06X}", name.len() * 4099)),
                resolution: Resolution::Known { user: user(name) },
            },
            ["tap", name, groups] => Input::Tap {
                reader,
                badge: BadgeNumber::new(format!("04A1B2{:06X}", name.len() * 4099)),
                resolution: Resolution::Known {
                    user: User {
                        groups: groups.split(',').map(str::to_string).collect(),
                        ..user(name)
                    },
                },
            },
            ["admin", "broken", slot] => Input::Admin(AdminCommand::MarkBroken {
                slot: SlotLabel::new(*slot),
            }),
            ["admin", "clear-broken", slot] => Input::Admin(AdminCommand::ClearBroken {
                slot: SlotLabel::new(*slot),
            }),
            ["ok", id] => Input::ActionSettled {
                action: ActionId(id.parse().expect("id")),
                outcome: ActionOutcome::Done,
            },
            ["retrying", id] => Input::ActionSettled {
                action: ActionId(id.parse().expect("id")),
                outcome: ActionOutcome::Retrying {
                    attempts: 1,
                    message: "HTTP 503".into(),
                },
            },
            ["fail", id, message @ ..] => Input::ActionSettled {
                action: ActionId(id.parse().expect("id")),
                outcome: ActionOutcome::Failed {
                    message: message.join(" "),
                    cause: FailCause::Other,
                },
            },
            ["fail-user", id] => Input::ActionSettled {
                action: ActionId(id.parse().expect("id")),
                outcome: ActionOutcome::Failed {
                    message:
                        "no such user: Workspace ONE has no active account named exactly \"bob\""
                            .into(),
                    cause: FailCause::UnknownUser,
                },
            },
            ["admin", "close-loan", who] => Input::Admin(AdminCommand::CloseLoan {
                user: Some(Username::new(*who)),
                device: None,
            }),
            ["admin", "lost", who] => Input::Admin(AdminCommand::MarkLost {
                user: Some(Username::new(*who)),
                device: None,
            }),
            ["admin", "retry", slot] => Input::Admin(AdminCommand::Retry {
                slot: SlotLabel::new(*slot),
            }),
            ["admin", "cancel", slot] => Input::Admin(AdminCommand::CancelReservation {
                slot: SlotLabel::new(*slot),
            }),
            ["console", id, what, target] => Input::FleetAdmin {
                request: id.parse().expect("request id"),
                requested_by: "console-admin".into(),
                command: match *what {
                    "close-loan" => AdminCommand::CloseLoan {
                        user: Some(Username::new(*target)),
                        device: None,
                    },
                    "lost" => AdminCommand::MarkLost {
                        user: Some(Username::new(*target)),
                        device: None,
                    },
                    "retry" => AdminCommand::Retry {
                        slot: SlotLabel::new(*target),
                    },
                    other => panic!("bad console command {other:?}"),
                },
            },
            ["fleet", state, loans @ ..] => Input::FleetLoans {
                reachable: *state == "up",
                loans: loans
                    .iter()
                    .map(|loan| {
                        let (who, cabinet) = loan.split_once('@').expect("USER@CABINET");
                        RemoteLoan {
                            cabinet: cabinet.replace('_', " "),
                            username: Username::new(who),
                            since: now,
                        }
                    })
                    .collect(),
            },
            other => panic!("bad script line {other:?}"),
        };
        now = now.plus_millis(10);
        mono = mono.plus_millis(10);
        writeln!(out, "> {line}").ok();
        for effect in engine.handle(Now { wall: now, mono }, input) {
            if let Effect::Commit(commit) = &effect {
                store.apply(commit);
            }
            if let Effect::Identify { device, request } = &effect {
                asked.insert(device.id.clone(), *request);
            }
            writeln!(out, "  {}", describe_effect(&effect)).ok();
        }
    }
    out.push_str("= screen\n");
    out.push_str(&describe_snapshot(&engine.snapshot()));
    out
}

fn describe_effect(effect: &Effect) -> String {
    match effect {
        Effect::Commit(commit) => {
            let mut parts = Vec::new();
            for d in &commit.devices {
                parts.push(format!(
                    "device {}@{}={}",
                    d.key.id,
                    d.slot.as_ref().map(|s| s.as_str()).unwrap_or("-"),
                    status_word(&d.status, d.set_aside)
                        + if d.broken { "+broken" } else { "" }
                        + if d.lost_mode { "+lost-mode" } else { "" }
                ));
            }
            for c in &commit.checkouts {
                parts.push(format!(
                    "checkout#{} {} {:?} {}{}",
                    c.id.0,
                    c.username,
                    c.state,
                    c.device.id,
                    super::lending_tests::loan_suffix(c)
                ));
            }
            for a in &commit.actions {
                parts.push(format!(
                    "action#{} {:?} {} {:?} {}",
                    a.id.0,
                    a.state,
                    a.device.id,
                    a.purpose,
                    describe_action(&a.action)
                ));
            }
            for entry in &commit.audit {
                parts.push(format!(
                    "audit {}{}: {}",
                    entry.kind,
                    entry
                        .badge
                        .as_ref()
                        .map(|b| format!(" badge={b}"))
                        .unwrap_or_default(),
                    entry.detail
                ));
            }
            for done in &commit.fleet_requests {
                parts.push(format!(
                    "console request #{} done: {}",
                    done.request, done.outcome
                ));
            }
            format!("commit [{}]", parts.join("; "))
        }
        Effect::Identify { device, .. } => format!("identify {}", device.id),
        Effect::Feedback { ok, .. } => format!("feedback {}", if *ok { "ok" } else { "error" }),
        Effect::Decision(TapDecision::TakeSlot {
            display_name,
            slot,
            device,
        }) => {
            format!("decision: {display_name} take slot {slot} ({})", device.id)
        }
        Effect::Decision(TapDecision::Refused { reason }) => format!("decision: refused: {reason}"),
        Effect::Decision(TapDecision::MarkedBroken { slot }) => {
            format!("decision: slot {slot} returned as broken")
        }
        Effect::Decision(TapDecision::EnrollmentApproved { approver }) => {
            format!("decision: enrolment approved by {approver}")
        }
        Effect::WakeOutbox => "wake outbox".into(),
    }
}

fn status_word(status: &DeviceStatus, set_aside: bool) -> String {
    let word = match status {
        DeviceStatus::Identifying => "identifying".to_string(),
        DeviceStatus::Available => "available".to_string(),
        DeviceStatus::Reserved { checkout } => format!("reserved#{}", checkout.0),
        DeviceStatus::CheckedOut { checkout } => format!("out#{}", checkout.0),
        DeviceStatus::CheckingIn { reenrol: false, .. } => "checking-in".to_string(),
        DeviceStatus::CheckingIn { reenrol: true, .. } => "checking-in+reenrol".to_string(),
        DeviceStatus::Missing => "missing".to_string(),
        DeviceStatus::Leaving {
            slot, candidate, ..
        } => format!(
            "leaving(slot {slot}{})",
            candidate
                .map(|c| format!(", claims #{}", c.0))
                .unwrap_or_default()
        ),
        DeviceStatus::Foreign => "foreign".to_string(),
        DeviceStatus::Away => "away".to_string(),
        DeviceStatus::Lost => "lost".to_string(),
    };
    if set_aside {
        format!("{word}+set-aside")
    } else {
        word
    }
}

fn describe_snapshot(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "  instruction {:?}: {} | {}",
        snapshot.instruction.tone, snapshot.instruction.headline, snapshot.instruction.detail
    )
    .ok();
    for slot in &snapshot.slots {
        if slot.state == SlotState::Empty {
            continue;
        }
        writeln!(
            out,
            "  slot {} {:?} {} holder={} sync={:?}{}",
            slot.label,
            slot.state,
            slot.device.as_ref().map(|d| d.id.as_str()).unwrap_or("-"),
            slot.holder.as_deref().unwrap_or("-"),
            slot.sync,
            slot.note
                .as_ref()
                .map(|n| format!(" note={n}"))
                .unwrap_or_default(),
        )
        .ok();
    }
    for loan in &snapshot.loans {
        writeln!(
            out,
            "  loan {} {} from slot {} overdue={} sync={:?}{}",
            loan.username,
            loan.device.id,
            loan.slot,
            loan.overdue,
            loan.sync,
            loan.due_text
                .as_ref()
                .map(|due| format!(" due {due}"))
                .unwrap_or_default()
        )
        .ok();
    }
    for line in &snapshot.instructions {
        writeln!(
            out,
            "  open {:?}: {} | {}",
            line.tone, line.headline, line.detail
        )
        .ok();
    }
    writeln!(
        out,
        "  open reservations {}; actions waiting {}",
        snapshot.open_reservations, snapshot.mdm.waiting
    )
    .ok();
    if let Some(fleet) = &snapshot.fleet {
        writeln!(
            out,
            "  fleet reachable={} remote loans {}",
            fleet.reachable, fleet.remote_loans
        )
        .ok();
    }
    out
}

/// A cabinet with three Apple phones docked and identified, oldest in slot 1.
const CABINET: &str = "
dock 1 a:P1
identify a:P1 staging-4west name=iPhone_1
dock 2 a:P2
identify a:P2 staging-4west name=iPhone_2
dock 3 a:P3
identify a:P3 staging-4west name=iPhone_3
";

pub(super) fn check(name: &str, config: &str, body: &str) {
    let script = format!("{config}\n{CABINET}\n{body}");
    insta::assert_snapshot!(name, run(&script));
}

#[test]
fn checkout_then_checkin() {
    check(
        "checkout_then_checkin",
        "config",
        "
        tap alice
        ok 0
        ok 1
        undock 1 a:P1
        wait 3600
        dock 4 a:P1
        ok 2
        ok 3
    ",
    );
}

#[test]
fn checkout_assign_at_undock() {
    check(
        "checkout_assign_at_undock",
        "config assign-at=undock",
        "
        tap alice
        undock 1 a:P1
        ok 0
        ok 1
    ",
    );
}

#[test]
fn device_limit() {
    check(
        "device_limit",
        "config",
        "
        tap alice
        undock 1 a:P1
        tap alice
    ",
    );
}

#[test]
fn fleet_loans_count_against_the_limit() {
    check(
        "fleet_loans_count_against_the_limit",
        "config",
        "
        # alice holds a phone from 3 West: refused here while the fleet is reachable
        fleet up alice@3_West bob@5_East
        tap alice
        # the fleet is unreachable: only this cabinet's ledger counts
        fleet down alice@3_West
        tap alice
    ",
    );
}

#[test]
fn second_tap_shows_same_slot() {
    check(
        "second_tap_shows_same_slot",
        "config",
        "
        tap alice
        tap alice
    ",
    );
}

#[test]
fn unknown_denied_and_unreachable_badges() {
    check(
        "unknown_denied_and_unreachable_badges",
        "config",
        "
        tap ?
        tap !mallory
        tap ~
    ",
    );
}

#[test]
fn reservation_expires() {
    check(
        "reservation_expires",
        "config reservation=30",
        "
        tap alice
        ok 0
        wait 31
        ok 2
        ok 3
        tap bob
    ",
    );
}

#[test]
fn taken_device_differs_with_one_reservation() {
    check(
        "taken_device_differs_with_one_reservation",
        "config",
        "
        tap alice
        ok 0
        undock 2 a:P2
        wait 121
    ",
    );
}

#[test]
fn taken_device_differs_with_several_reservations() {
    check(
        "taken_device_differs_with_several_reservations",
        "config",
        "
        tap alice
        tap bob
        undock 3 a:P3
    ",
    );
}

#[test]
fn shift_change_burst() {
    // Ten nurses tap within ten seconds at a twelve-slot cabinet: every one is served a
    // different phone, and the reservations stay open side by side.
    let mut script = String::from("config slots=12\n");
    for n in 1..=12 {
        script.push_str(&format!(
            "dock {n} a:D{n:02}\nidentify a:D{n:02} staging-4west\n"
        ));
    }
    for name in [
        "ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal", "ida", "joy",
    ] {
        script.push_str(&format!("tap {name}\n"));
    }
    insta::assert_snapshot!("shift_change_burst", run(&script));
}

#[test]
fn checkin_of_device_checked_out_elsewhere() {
    check(
        "checkin_of_device_checked_out_elsewhere",
        "config",
        "
        dock 5 a:ELSEWHERE
        identify a:ELSEWHERE carol name=Carols_phone
        ok 0
        ok 1
        tap alice
    ",
    );
}

#[test]
fn failures_set_device_aside_until_clean_checkin() {
    check(
        "failures_set_device_aside_until_clean_checkin",
        "config threshold=2",
        "
        tap alice
        fail 0 HTTP 400 device not staged
        fail 2 HTTP 400 device not staged
        tap bob
        admin retry 1
        ok 6
        ok 3
        tap carl
    ",
    );
}

#[test]
fn android_workflow_says_what_was_done_instead() {
    check(
        "android_workflow_says_what_was_done_instead",
        "config",
        "
        dock 6 g:R58M123
        identify g:R58M123 staging-4west name=Galaxy
        tap alice
        tap bob
        tap carl
        tap dora
    ",
    );
}

#[test]
fn wipe_checkin_and_restart() {
    check(
        "wipe_checkin_and_restart",
        "config checkin=wipe",
        "
        tap alice
        ok 0
        ok 1
        undock 1 a:P1
        dock 1 a:P1
        restart
        ok 2
        # The erased phone restarts: gone, back, and nothing is sent again.
        undock 1 a:P1
        dock 1 a:P1
        identify a:P1 - unenrolled
        wait 21
        identify a:P1 staging-4west name=iPhone_1
        tap bob
    ",
    );
}

#[test]
fn restart_reconciles_inventory() {
    check(
        "restart_reconciles_inventory",
        "config",
        "
        tap alice
        restart
        inventory 2 a:P2 3 a:P3 4 a:NEW
    ",
    );
}

#[test]
fn move_and_admin_cancel() {
    check(
        "move_and_admin_cancel",
        "config",
        "
        tap alice
        move 1 5 a:P1
        admin cancel 5
    ",
    );
}

#[test]
fn identify_failure_retries_later() {
    check(
        "identify_failure_retries_later",
        "config",
        "
        dock 6 a:NEWONE
        identify-fail a:NEWONE
        wait 31
        identify a:NEWONE staging-4west name=Spare
    ",
    );
}

#[test]
fn wipe_pending_device_is_set_aside() {
    check(
        "wipe_pending_device_is_set_aside",
        "config",
        "
        dock 6 a:WIPED
        identify a:WIPED staging-4west wipe
    ",
    );
}

#[test]
fn class01_personal_phone_is_left_alone() {
    // A user-enrolled personal iPhone docked at a station whose check-in erases: nothing
    // is sent to it, it is never offered, and it is forgotten when it leaves.
    check(
        "class01_personal_phone_is_left_alone",
        "config checkin=wipe",
        "
        dock 5 a:PERSONAL
        identify a:PERSONAL dave name=Daves_iPhone personal
        tap alice
        undock 5 a:PERSONAL
        dock 5 a:PERSONAL
    ",
    );
}

#[test]
fn class03_a_restarting_phone_does_not_steal_a_reservation() {
    // One reservation open; another phone restarts (gone 40 s). Nothing moves, and the
    // nurse takes her own phone.
    check(
        "class03_a_restarting_phone_does_not_steal_a_reservation",
        "config",
        "
        tap alice
        ok 0
        ok 1
        undock 2 a:P2
        wait 40
        dock 2 a:P2
        undock 1 a:P1
        wait 200
    ",
    );
}

#[test]
fn class04_loan_returned_at_another_cabinet() {
    // Alice returned her phone elsewhere: at her limit here, the station asks Workspace
    // ONE, learns the loan is over, and serves her at the next tap.
    check(
        "class04_loan_returned_at_another_cabinet",
        "config",
        "
        tap alice
        ok 0
        ok 1
        undock 1 a:P1
        tap alice
        identify a:P1 staging-4west name=iPhone_1
        tap alice
    ",
    );
}

#[test]
fn class04_operator_closes_a_loan_and_marks_one_lost() {
    check(
        "class04_operator_closes_a_loan_and_marks_one_lost",
        "config",
        "
        tap alice
        ok 0
        ok 1
        undock 1 a:P1
        tap bob
        ok 2
        ok 3
        undock 2 a:P2
        admin close-loan alice
        admin lost bob
        admin lost nobody
        tap alice
        dock 2 a:P2
    ",
    );
}

#[test]
fn console_requests_are_carried_out_and_recorded_in_the_same_commit() {
    // The fleet console's close-loan and mark-lost go through the operator's commands;
    // the request id and its outcome are written with the transition (exactly once
    // across a crash), also when there was nothing to do.
    check(
        "console_requests_are_carried_out_and_recorded_in_the_same_commit",
        "config",
        "
        tap alice
        ok 0
        ok 1
        undock 1 a:P1
        tap bob
        ok 2
        ok 3
        undock 2 a:P2
        console 7 close-loan alice
        console 8 lost bob
        console 9 close-loan carol
        console 10 retry 3
    ",
    );
}

#[test]
fn class06_retry_only_what_still_matches_the_ledger() {
    // Alice took her phone, then Workspace ONE refused its assignment; she returned it. The
    // operator's retry must not re-send her assignment for a loan that has ended.
    check(
        "class06_retry_only_what_still_matches_the_ledger",
        "config assign-at=undock",
        "
        tap alice
        undock 1 a:P1
        fail 0 HTTP 400 device not staged
        dock 1 a:P1
        ok 2
        ok 3
        admin retry 1
    ",
    );
}

#[test]
fn class07_refusals_stay_while_others_tap() {
    check(
        "class07_refusals_stay_while_others_tap",
        "config",
        "
        tap alice
        tap bob
        fail 0 HTTP 400 device not staged
        tap carl
    ",
    );
}

#[test]
fn class07_unknown_workspace_one_user_is_refused_at_the_next_tap() {
    check(
        "class07_unknown_workspace_one_user_is_refused_at_the_next_tap",
        "config",
        "
        tap bob
        fail-user 0
        tap bob
    ",
    );
}

#[test]
fn class08_user_names_ignore_case() {
    check(
        "class08_user_names_ignore_case",
        "config",
        "
        tap alice
        undock 1 a:P1
        tap Alice
    ",
    );
}

#[test]
fn class09_a_second_tap_renews_the_reservation() {
    check(
        "class09_a_second_tap_renews_the_reservation",
        "config reservation=60",
        "
        tap alice
        wait 50
        tap alice
        wait 50
        undock 1 a:P1
    ",
    );
}

#[test]
fn class10_wall_clock_steps_move_no_deadline() {
    check(
        "class10_wall_clock_steps_move_no_deadline",
        "config reservation=60",
        "
        tap alice
        clock 600
        clock -3600
        wait 30
        tap bob
        wait 31
    ",
    );
}

#[test]
fn no_badge_number_leaks_into_audit_or_screen() {
    let script = format!("config\n{CABINET}\ntap alice\ntap ?\ntap !mallory\n");
    let transcript = run(&script);
    for secret in ["0000DEADBEEF", "00001234ABCD", "04A1B2"] {
        assert!(
            !transcript.contains(secret),
            "{secret} leaked:\n{transcript}"
        );
    }
    assert!(transcript.contains("…BEEF"), "{transcript}");
}

#[test]
fn supervised_enrollment_is_approved_by_an_enroller_and_expires() {
    check(
        "supervised_enrollment_is_approved_by_an_enroller_and_expires",
        "config",
        "
        tap sup+enroller
        tap ?
        tap sup+enroller
        wait 121
        tap sup+enroller
    ",
    );
}
