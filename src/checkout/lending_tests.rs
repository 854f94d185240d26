//! Lending scenarios (issue 14) in the transcript style of `tests.rs`: due times across
//! shift boundaries, weekends, holidays and groups; curfews; every escalation step once,
//! across a restart; Lost Mode cleared before the check-in of a found phone; broken
//! phones by the two-tap gesture and by the charge nurse.
//!
//! Script additions (in `tests.rs`): `config lending=ward`; `at YYYY-MM-DDTHH:MM` (time
//! passes to that wall-clock time in the ward's zone, Europe/Paris, then a Tick);
//! `tap USER GROUP,GROUP`; `admin broken SLOT`; `admin clear-broken SLOT`.

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Weekday};

use super::tests::check;
use super::*;
use crate::lending::{Curfew, DueRule, LadderStep, LendingPolicy, StepAction};

fn time(text: &str) -> NaiveTime {
    NaiveTime::parse_from_str(text, "%H:%M").expect("time")
}

/// The ward's lending config (`lending=ward`).
pub(super) fn lending(name: &str) -> LendingConfig {
    assert_eq!(name, "ward", "unknown lending preset");
    let step = |minutes: i64, action| LadderStep {
        after: Duration::minutes(minutes),
        action,
    };
    LendingConfig {
        enabled: true,
        policy: LendingPolicy {
            default_rule: DueRule::EndOfShift,
            group_rules: vec![
                ("day-clinic".into(), DueRule::At(time("18:00"))),
                ("agency".into(), DueRule::For(Duration::hours(4))),
            ],
            weekend_rule: Some(DueRule::For(Duration::hours(12))),
            weekend_days: vec![Weekday::Sat, Weekday::Sun],
            holidays: [NaiveDate::from_ymd_opt(2026, 12, 25).expect("date")]
                .into_iter()
                .collect(),
            shifts: vec![time("07:00"), time("19:00")],
            grace: Duration::minutes(30),
            curfews: vec![Curfew {
                from: time("02:00"),
                until: time("05:00"),
                days: vec![],
                reason: "night stock check: phones stay in the cabinet until 05:00".into(),
            }],
            ladder: vec![
                step(0, StepAction::Screen),
                step(15, StepAction::Webhook),
                step(15, StepAction::Email),
                step(30, StepAction::Message),
                step(45, StepAction::Lock),
                step(60, StepAction::LostMode),
            ],
        },
        zone: chrono_tz::Europe::Paris,
        webhook_url: Some("https://hooks.example/overdue".into()),
        email_to: vec!["charge-4west@hospital.example".into()],
        lost_mode_phone: "+33 1 23 45 67 89".into(),
        ticket_url: Some("https://itsm.example/api/now/table/incident".into()),
        broken_double_tap_ms: 10_000,
        ..LendingConfig::default()
    }
}

/// A wall-clock time in the station's zone.
pub(super) fn at(config: &EngineConfig, local: &str) -> Timestamp {
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M").expect("YYYY-MM-DDTHH:MM");
    let instant = config
        .lending
        .zone
        .from_local_datetime(&naive)
        .earliest()
        .expect("a time that exists in the zone");
    Timestamp(instant.timestamp_millis())
}

/// How a check-out line shows its due time and the steps taken.
pub(super) fn loan_suffix(checkout: &CheckoutRecord) -> String {
    let Some(due) = checkout.due_at else {
        return String::new();
    };
    let due = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(due.0)
        .unwrap_or_default()
        .with_timezone(&chrono_tz::Europe::Paris);
    let mut text = format!(" due={}", due.format("%a %d %H:%M"));
    if !checkout.escalated.is_empty() {
        let steps: Vec<String> = checkout.escalated.iter().map(u32::to_string).collect();
        text.push_str(&format!(" steps={}", steps.join(",")));
    }
    text
}

#[test]
fn lending_due_times_across_shift_boundaries() {
    check(
        "lending_due_times_across_shift_boundaries",
        "config lending=ward",
        "
        dock 4 a:P4
        identify a:P4 staging-4west name=iPhone_4
        dock 5 a:P5
        identify a:P5 staging-4west name=iPhone_5
        # Monday. Before the 07:00 change but within its grace: the day shift's end.
        at 2026-12-07T06:40
        tap alice
        undock 1 a:P1
        # Day shift: 19:00 plus 30 minutes of grace.
        at 2026-12-07T07:10
        tap bob
        undock 2 a:P2
        # Within the grace before 19:00: the night shift's end, Tuesday 07:30.
        at 2026-12-07T18:45
        tap carol
        undock 3 a:P3
        # Groups with their own rules: the day clinic returns at 18:00 (tomorrow, as
        # 18:00 has passed), agency staff after four hours.
        at 2026-12-07T18:50
        tap dora day-clinic
        undock 4 a:P4
        tap erin agency
        undock 5 a:P5
    ",
    );
}

#[test]
fn lending_weekends_and_holidays() {
    check(
        "lending_weekends_and_holidays",
        "config lending=ward",
        "
        # Saturday: the weekend rule (12 hours) replaces the shift and the group rules.
        at 2026-12-12T08:00
        tap alice
        undock 1 a:P1
        tap bob day-clinic
        undock 2 a:P2
        dock 1 a:P1
        dock 2 a:P2
        ok 4
        ok 5
        ok 6
        ok 7
        # Christmas (a Friday, a site holiday): the weekend rule too.
        at 2026-12-25T08:00
        tap carol agency
        undock 3 a:P3
        dock 3 a:P3
        ok 10
        ok 11
        # Monday 28: an ordinary day again, the group's rule.
        at 2026-12-28T08:00
        tap carol agency
        undock 1 a:P1
    ",
    );
}

#[test]
fn lending_curfew_refuses_taps() {
    check(
        "lending_curfew_refuses_taps",
        "config lending=ward",
        "
        # 02:00-05:00 every night: refused with the curfew's reason, audited as such.
        at 2026-12-08T02:30
        tap alice
        at 2026-12-08T04:59
        tap bob
        # 05:00: the curfew is over.
        at 2026-12-08T05:00
        tap bob
    ",
    );
}

#[test]
fn lending_every_escalation_step_once() {
    check(
        "lending_every_escalation_step_once",
        "config lending=ward",
        "
        at 2026-12-07T10:00
        tap alice
        ok 0
        ok 1
        undock 1 a:P1
        # Due at 19:30. A minute before: nothing.
        at 2026-12-07T19:29
        # Due: the screen and the overdue metric.
        at 2026-12-07T19:30
        # +15 min: the webhook and the e-mail, through the outbox.
        at 2026-12-07T19:45
        ok 2
        ok 3
        # A restart: the steps taken are in the store; none is taken again.
        restart
        at 2026-12-07T19:50
        # +30: a Workspace ONE message; +45: a lock.
        at 2026-12-07T20:00
        ok 4
        at 2026-12-07T20:15
        ok 5
        # +60: Lost Mode; the phone is marked lost.
        at 2026-12-07T20:30
        ok 6
        at 2026-12-07T21:30
        # Docked again next morning: found; Lost Mode is cleared first, then the
        # check-in steps, in order.
        at 2026-12-08T08:00
        dock 1 a:P1
        ok 7
        ok 8
        ok 9
    ",
    );
}

#[test]
fn lending_returned_before_the_later_steps() {
    check(
        "lending_returned_before_the_later_steps",
        "config lending=ward",
        "
        at 2026-12-07T10:00
        tap alice
        ok 0
        ok 1
        undock 1 a:P1
        # The webhook and e-mail are queued but not sent yet when the phone comes back:
        # they are moot, and no later step is taken.
        at 2026-12-07T19:45
        dock 1 a:P1
        ok 4
        ok 5
        at 2026-12-07T21:00
    ",
    );
}

#[test]
fn lending_broken_phone_by_two_taps_and_by_the_charge_nurse() {
    check(
        "lending_broken_phone_by_two_taps_and_by_the_charge_nurse",
        "config lending=ward",
        "
        at 2026-12-07T10:00
        tap alice
        ok 0
        ok 1
        undock 1 a:P1
        at 2026-12-07T12:00
        dock 1 a:P1
        # Her first tap within 10 s of docking reserves a replacement as usual; the
        # second marks the phone she docked broken and opens a ticket.
        tap alice
        tap alice
        ok 2
        ok 3
        # Checked in, but out of the pool: the next nurse gets another phone.
        tap bob
        # The charge nurse marks slot 2 (alice's replacement, reserved) broken: the
        # reservation ends, the ticket goes out.
        admin broken 2
        # Repaired.
        admin clear-broken 1
        # A tap long after docking is an ordinary tap.
        wait 60
        tap carol
    ",
    );
}
