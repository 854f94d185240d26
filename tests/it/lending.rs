//! The pure lending policy: due times across shift boundaries and grace periods,
//! weekends and holidays, DST changes (a test time zone with the EU rule, so no tz
//! database is needed), curfews across midnight, every escalation step once; and the
//! `[lending]` config with its key-and-line problems. Table-driven checks first, then an
//! insta transcript of a week at one station.

use std::collections::BTreeSet;

use badgedock::config::{self, LoadEnv};
use badgedock::lending::{
    curfew_at, due_at, steps_due, DueRule, LendingPolicy, LoanDue, StepAction,
};
use chrono::{
    DateTime, Datelike, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime,
    TimeZone, Weekday,
};

/// Central European time with the EU DST rule: +02:00 from the last Sunday of March
/// 01:00 UTC to the last Sunday of October 01:00 UTC, +01:00 otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cet;

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let mut day = NaiveDate::from_ymd_opt(year, month + 1, 1).unwrap() - Duration::days(1);
    while day.weekday() != Weekday::Sun {
        day -= Duration::days(1);
    }
    day
}

fn hours(h: i32) -> FixedOffset {
    FixedOffset::east_opt(h * 3600).unwrap()
}

impl TimeZone for Cet {
    type Offset = FixedOffset;

    fn from_offset(_: &FixedOffset) -> Cet {
        Cet
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> LocalResult<FixedOffset> {
        self.offset_from_local_datetime(&local.and_hms_opt(12, 0, 0).unwrap())
    }

    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<FixedOffset> {
        let fits: Vec<FixedOffset> = [hours(2), hours(1)]
            .into_iter()
            .filter(|offset| {
                let utc = *local - Duration::seconds(i64::from(offset.local_minus_utc()));
                self.offset_from_utc_datetime(&utc) == *offset
            })
            .collect();
        match fits.as_slice() {
            [] => LocalResult::None,
            [one] => LocalResult::Single(*one),
            [earliest, latest, ..] => LocalResult::Ambiguous(*earliest, *latest),
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> FixedOffset {
        self.offset_from_utc_datetime(&utc.and_hms_opt(12, 0, 0).unwrap())
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> FixedOffset {
        let year = utc.year();
        let start = last_sunday(year, 3).and_hms_opt(1, 0, 0).unwrap();
        let end = last_sunday(year, 10).and_hms_opt(1, 0, 0).unwrap();
        if *utc >= start && *utc < end {
            hours(2)
        } else {
            hours(1)
        }
    }
}

fn time(text: &str) -> NaiveTime {
    NaiveTime::parse_from_str(text, "%H:%M").unwrap()
}

/// A wall-clock time at the station.
fn local(text: &str) -> DateTime<Cet> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
    Cet.from_local_datetime(&naive).earliest().unwrap()
}

fn show(at: &DateTime<Cet>) -> String {
    at.format("%a %Y-%m-%d %H:%M %:z").to_string()
}

/// 4 West: shifts change at 07:00 and 19:00 with 30 minutes' grace; ICU nurses keep a
/// phone to the end of the shift, agency staff 4 hours, everyone else 12 hours; on
/// weekends and the site's holidays, end of shift for all.
fn ward_policy() -> LendingPolicy {
    LendingPolicy {
        default_rule: DueRule::For(Duration::hours(12)),
        group_rules: vec![
            ("icu".into(), DueRule::EndOfShift),
            ("agency".into(), DueRule::For(Duration::hours(4))),
            ("day-clinic".into(), DueRule::At(time("18:00"))),
        ],
        weekend_rule: Some(DueRule::EndOfShift),
        weekend_days: vec![Weekday::Sat, Weekday::Sun],
        holidays: BTreeSet::from([NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()]),
        shifts: vec![time("07:00"), time("19:00")],
        grace: Duration::minutes(30),
        curfews: vec![
            badgedock::lending::Curfew {
                from: time("23:00"),
                until: time("05:00"),
                days: vec![Weekday::Sat],
                reason: "Saturday night: phones stay in for the audit".into(),
            },
            badgedock::lending::Curfew {
                from: time("12:00"),
                until: time("12:30"),
                days: vec![],
                reason: "Cabinet cleaning 12:00–12:30".into(),
            },
        ],
        ladder: vec![
            badgedock::lending::LadderStep {
                after: Duration::zero(),
                action: StepAction::Screen,
            },
            badgedock::lending::LadderStep {
                after: Duration::minutes(30),
                action: StepAction::Webhook,
            },
            badgedock::lending::LadderStep {
                after: Duration::minutes(30),
                action: StepAction::Email,
            },
            badgedock::lending::LadderStep {
                after: Duration::hours(4),
                action: StepAction::LostMode,
            },
        ],
    }
}

#[test]
fn due_times_table() {
    let policy = ward_policy();
    let icu = vec!["icu".to_string()];
    let agency = vec!["staff".to_string(), "agency".to_string()];
    let clinic = vec!["day-clinic".to_string()];
    let nobody: Vec<String> = vec![];
    // (groups, check-out, due) — Mon 2026-11-02 is a weekday, +01:00.
    let cases: &[(&Vec<String>, &str, &str)] = &[
        // Default: 12 hours.
        (&nobody, "2026-11-02 08:00", "2026-11-02 20:00"),
        // End of shift: the next boundary plus grace.
        (&icu, "2026-11-02 08:00", "2026-11-02 19:30"),
        (&icu, "2026-11-02 18:29", "2026-11-02 19:30"),
        // Inside the grace period before a boundary: runs to the next shift's end.
        (&icu, "2026-11-02 18:31", "2026-11-03 07:30"),
        (&icu, "2026-11-02 19:00", "2026-11-03 07:30"),
        // Night shift taken after midnight.
        (&icu, "2026-11-03 02:00", "2026-11-03 07:30"),
        // The first matching group decides.
        (&agency, "2026-11-02 22:00", "2026-11-03 02:00"),
        // A time of day: today, or tomorrow once it has passed.
        (&clinic, "2026-11-02 09:00", "2026-11-02 18:00"),
        (&clinic, "2026-11-02 18:00", "2026-11-03 18:00"),
        // Saturday: the weekend rule replaces the agency's 4 hours.
        (&agency, "2026-11-07 09:00", "2026-11-07 19:30"),
        // A holiday (Friday 25 December) likewise.
        (&nobody, "2026-12-25 10:00", "2026-12-25 19:30"),
        // Friday night is not the weekend: 12 hours into Saturday.
        (&nobody, "2026-11-06 21:00", "2026-11-07 09:00"),
    ];
    for (groups, checkout, due) in cases {
        let got = due_at(&policy, groups, &local(checkout));
        assert_eq!(show(&got), show(&local(due)), "{groups:?} at {checkout}");
    }
}

#[test]
fn dst_changes_keep_wall_clock_shifts_and_real_durations() {
    let policy = ward_policy();
    let icu = vec!["icu".to_string()];
    let nobody: Vec<String> = vec![];
    // Autumn, Sun 2026-10-25: 03:00 +02:00 becomes 02:00 +01:00 (a 25-hour day).
    // A 12-hour loan from Saturday 20:00 +02:00 ends at 07:00 +01:00 wall clock (with
    // the weekend rule off: it would make it end of shift).
    let mut plain = ward_policy();
    plain.weekend_rule = None;
    let due = due_at(&plain, &nobody, &local("2026-10-24 20:00"));
    assert_eq!(show(&due), "Sun 2026-10-25 07:00 +01:00");
    assert_eq!(due - local("2026-10-24 20:00"), Duration::hours(12));
    // The end of the night shift stays 07:30 local, 12.5 hours of real time later.
    let taken = local("2026-10-24 19:00");
    let due = due_at(&policy, &icu, &taken);
    assert_eq!(show(&due), "Sun 2026-10-25 07:30 +01:00");
    assert_eq!(due - taken, Duration::minutes(13 * 60 + 30));
    // Spring, Sun 2026-03-29: 02:00 +01:00 becomes 03:00 +02:00 (a 23-hour day).
    let taken = local("2026-03-28 19:30");
    let due = due_at(&policy, &icu, &taken);
    assert_eq!(show(&due), "Sun 2026-03-29 07:30 +02:00");
    assert_eq!(due - taken, Duration::minutes(11 * 60));
    // A boundary inside the skipped hour moves to the end of the gap.
    let mut night = ward_policy();
    night.default_rule = DueRule::At(time("02:30"));
    night.weekend_rule = None;
    let due = due_at(&night, &nobody, &local("2026-03-28 22:00"));
    assert_eq!(show(&due), "Sun 2026-03-29 03:00 +02:00");
}

#[test]
fn curfews_table() {
    let policy = ward_policy();
    let cases = [
        ("2026-11-02 12:10", Some("Cabinet cleaning 12:00–12:30")),
        ("2026-11-02 12:30", None),
        ("2026-11-02 11:59", None),
        // Saturday's night curfew, across midnight into Sunday.
        ("2026-11-07 22:59", None),
        (
            "2026-11-07 23:00",
            Some("Saturday night: phones stay in for the audit"),
        ),
        (
            "2026-11-08 04:59",
            Some("Saturday night: phones stay in for the audit"),
        ),
        ("2026-11-08 05:00", None),
        // Friday night has no curfew.
        ("2026-11-06 23:30", None),
        ("2026-11-07 01:00", None),
    ];
    for (at, expected) in cases {
        assert_eq!(curfew_at(&policy, &local(at)).as_deref(), expected, "{at}");
    }
}

#[test]
fn every_escalation_step_happens_once() {
    let policy = ward_policy();
    let mut loan = LoanDue {
        due: local("2026-11-02 19:30"),
        done: BTreeSet::new(),
    };
    let mut transcript = Vec::new();
    for now in [
        "2026-11-02 19:00",
        "2026-11-02 19:30",
        "2026-11-02 19:31",
        "2026-11-02 20:00",
        "2026-11-02 20:05",
        "2026-11-02 23:29",
        "2026-11-02 23:30",
        "2026-11-03 08:00",
    ] {
        let steps = steps_due(&policy, &loan, &local(now));
        for step in &steps {
            loan.done.insert(step.index);
        }
        transcript.push(format!(
            "{now}: {:?}",
            steps.iter().map(|s| s.action).collect::<Vec<_>>()
        ));
    }
    assert_eq!(
        transcript,
        [
            "2026-11-02 19:00: []",
            "2026-11-02 19:30: [Screen]",
            "2026-11-02 19:31: []",
            "2026-11-02 20:00: [Webhook, Email]",
            "2026-11-02 20:05: []",
            "2026-11-02 23:29: []",
            "2026-11-02 23:30: [LostMode]",
            "2026-11-03 08:00: []",
        ]
    );
    // A loan looked at for the first time long after its due time gets every step at
    // once, in ladder order.
    let late = LoanDue {
        due: local("2026-11-02 19:30"),
        done: BTreeSet::new(),
    };
    let actions: Vec<StepAction> = steps_due(&policy, &late, &local("2026-11-04 00:00"))
        .iter()
        .map(|s| s.action)
        .collect();
    assert_eq!(
        actions,
        [
            StepAction::Screen,
            StepAction::Webhook,
            StepAction::Email,
            StepAction::LostMode
        ]
    );
}

#[test]
fn a_week_at_the_ward_transcript() {
    let policy = ward_policy();
    let mut lines = Vec::new();
    let users: [(&str, Vec<String>); 4] = [
        ("alice (icu)", vec!["icu".into()]),
        ("bruno (agency)", vec!["agency".into()]),
        ("chloe (day-clinic)", vec!["day-clinic".into()]),
        ("dan (no group)", vec![]),
    ];
    let start = local("2026-10-23 06:00");
    // Every 7 hours for a week: walks the shift changes, the weekend and the DST change.
    for step in 0..24 {
        let at = start + Duration::hours(7 * step);
        let (name, groups) = &users[usize::try_from(step).unwrap() % users.len()];
        let line = match curfew_at(&policy, &at) {
            Some(reason) => format!("{}  {name:<19} refused: {reason}", show(&at)),
            None => format!(
                "{}  {name:<19} due {}",
                show(&at),
                show(&due_at(&policy, groups, &at))
            ),
        };
        lines.push(line);
    }
    insta::assert_snapshot!(lines.join("\n"));
}

fn parse(lending: &str) -> Result<config::Config, config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "s\n").unwrap();
    std::fs::write(
        dir.path().join("badges.csv"),
        "badge,username,display-name\n",
    )
    .unwrap();
    let text = format!(
        r#"[station]
name = "4 West"

[uem]
base-url = "https://as1.awmdm.com"
staging-user = "staging"
[uem.auth]
kind = "oauth"
token-url = "https://na.uemauth.vmwservices.com/connect/token"
client-id = "id"
client-secret-file = "secret"

[directory]
kind = "file"
path = "badges.csv"

{lending}
"#
    );
    config::parse(
        &dir.path().join("badgedock.toml"),
        &text,
        &LoadEnv::default(),
    )
}

#[test]
fn lending_config_parses_into_the_policy() {
    let config = parse(
        r#"[lending]
default = "12h"
time-zone = "Europe/Paris"
webhook-url = "https://hooks.example/overdue"
email-to = ["charge-4west@hospital.example"]
broken-ticket-webhook = "https://itsm.example/api/now/table/incident"
broken-double-tap-seconds = 8
lost-mode-phone = "+33 1 23 45 67 89"
shifts = ["19:00", "07:00"]
grace-minutes = 30
weekend = "end-of-shift"
holidays = ["2026-12-25"]
[[lending.group]]
name = "icu"
rule = "end-of-shift"
[[lending.group]]
name = "day-clinic"
rule = "at 18:00"
[[lending.curfew]]
from = "12:00"
until = "12:30"
reason = "Cabinet cleaning 12:00–12:30"
[[lending.escalation]]
after-minutes = 0
action = "screen"
[[lending.escalation]]
after-minutes = 30
action = "webhook"
[[lending.escalation]]
after-minutes = 240
action = "lost-mode"
[lending.smtp]
server = "mail.hospital.example"
from = "badgedock@hospital.example"
"#,
    )
    .unwrap();
    let lending = config.lending;
    assert!(lending.enabled);
    assert_eq!(lending.zone, chrono_tz::Europe::Paris);
    assert_eq!(
        lending.webhook_url.as_deref(),
        Some("https://hooks.example/overdue")
    );
    assert_eq!(lending.email_to, ["charge-4west@hospital.example"]);
    assert_eq!(lending.broken_double_tap_ms, 8_000);
    assert_eq!(lending.lost_mode_phone, "+33 1 23 45 67 89");
    assert_eq!(
        lending.lost_mode_on_path,
        badgedock::checkout::DEFAULT_LOST_MODE_ON_PATH
    );
    assert_eq!(config.engine.lending, lending);
    let smtp = config.smtp.expect("[lending.smtp]");
    assert_eq!(
        (smtp.server.as_str(), smtp.port),
        ("mail.hospital.example", 587)
    );
    let policy = lending.policy;
    assert_eq!(policy.default_rule, DueRule::For(Duration::hours(12)));
    assert_eq!(policy.shifts, vec![time("07:00"), time("19:00")]);
    assert_eq!(policy.grace, Duration::minutes(30));
    assert_eq!(policy.weekend_rule, Some(DueRule::EndOfShift));
    assert_eq!(
        policy.group_rules,
        vec![
            ("icu".to_string(), DueRule::EndOfShift),
            ("day-clinic".to_string(), DueRule::At(time("18:00")))
        ]
    );
    assert_eq!(policy.curfews.len(), 1);
    assert_eq!(
        policy.ladder.iter().map(|s| s.action).collect::<Vec<_>>(),
        [
            StepAction::Screen,
            StepAction::Webhook,
            StepAction::LostMode
        ]
    );
    // Absent: 14 hours and the screen, as before.
    let absent = parse("").unwrap().lending;
    assert_eq!(absent.policy, LendingPolicy::default());
    assert!(!absent.enabled, "no [lending]: no due times, as before");
}

#[test]
fn lending_config_problems_name_key_and_line() {
    let error = parse(
        r#"[lending]
default = "end-of-shift"
grace-minutes = 999
holidays = ["Christmas"]
[[lending.group]]
name = "icu"
rule = "forever"
[[lending.curfew]]
from = "25:00"
until = "06:00"
days = ["someday"]
reason = ""
[[lending.escalation]]
after-minutes = 60
action = "screen"
[[lending.escalation]]
after-minutes = 30
action = "carrier-pigeon"
"#,
    )
    .unwrap_err();
    let text = error.to_string();
    for expected in [
        "lending.grace-minutes (line 19): must be from 0 to 240 minutes",
        "lending.holidays (line 20): \"Christmas\" is not a date",
        "lending.group[0].rule (line 23): \"forever\" is not a rule",
        "lending.curfew[0].from (line 25): \"25:00\" is not a time of day",
        "lending.curfew[0].days (line 27): \"someday\" is not a day",
        "lending.curfew[0].reason (line 28): is empty",
        "lending.escalation[1].after-minutes (line 33): must not be less than the step before it",
        "lending.escalation[1].action (line 34): \"carrier-pigeon\" is not an action",
        "lending.shifts: is empty but a rule says \"end-of-shift\"",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
}

#[test]
fn lending_delivery_config_problems_name_key_and_line() {
    let error = parse(
        r#"[lending]
time-zone = "Mars/Olympus_Mons"
webhook-url = "hooks.example/overdue"
email-to = ["charge nurse"]
broken-double-tap-seconds = 600
lost-mode-on-path = "lostmode/enable"
[[lending.escalation]]
after-minutes = 0
action = "lost-mode"
[[lending.escalation]]
after-minutes = 10
action = "webhook"
[[lending.escalation]]
after-minutes = 20
action = "email"
[lending.smtp]
server = "mail.hospital.example"
port = 70000
from = "badgedock"
username = "badgedock"
"#,
    )
    .unwrap_err();
    let text = error.to_string();
    for expected in [
        "lending.time-zone (line 18): \"Mars/Olympus_Mons\" is not an IANA time zone",
        "lending.webhook-url (line 19): \"hooks.example/overdue\" is not a URL",
        "lending.email-to (line 20): \"charge nurse\" is not an e-mail address",
        "lending.broken-double-tap-seconds (line 21): must be from 2 to 60 seconds",
        "lending.lost-mode-on-path (line 22): \"lostmode/enable\" is not a Workspace ONE path",
        "lending.escalation[0].action (line 25): \"lost-mode\" ends the loan",
        "lending.escalation[1].action (line 28): \"webhook\" needs lending.webhook-url",
        "lending.escalation[2].action (line 31): \"email\" needs lending.email-to and a [lending.smtp] section",
        "lending.smtp.port (line 34): must be from 1 to 65535",
        "lending.smtp.from (line 35): \"badgedock\" is not an e-mail address",
        "lending.smtp.password-file (line 36): is missing",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
}

/// The example config's `[lending]` block, uncommented, is a valid config (the secret and
/// CA files it names aside, which `parse` does not read).
#[test]
fn the_example_lending_block_parses() {
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/badgedock.toml"),
    )
    .unwrap();
    let start = example.find("# [lending]\n").expect("the [lending] block");
    let block: String = example[start..]
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| line.trim_start_matches('#').trim_start())
        .filter(|line| {
            !line.starts_with("username")
                && !line.starts_with("password-file")
                && !line.starts_with("ca-file")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = parse(&block).unwrap_or_else(|err| panic!("{err}\n{block}"));
    assert!(config.lending.enabled);
    assert_eq!(config.lending.policy.ladder.len(), 5);
    assert!(config.smtp.is_some());
}
