//! The lending policy, pure: when a loan is due, when check-outs are refused (curfews),
//! and which escalation steps are due for an overdue loan. No I/O and no clock: the
//! caller passes the check-out time in the station's time zone and `now`.
//!
//! Rules: a loan is due after a fixed duration, at the end of the shift it was taken in
//! (the next site shift boundary, plus a grace period; a loan taken within the grace
//! period before a boundary runs to the following one), or at a fixed time of day. The
//! first directory group of the user with a rule of its own decides; otherwise the
//! station's default. On weekend days and holidays an optional weekend rule replaces
//! both. Durations are added in absolute time (a 12-hour loan lasts 12 hours across a
//! DST change); shift boundaries and times of day are wall-clock times in the given
//! zone (07:00 is 07:00 before and after the change).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Weekday};

/// How a loan's due time is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DueRule {
    /// This long after the check-out.
    For(Duration),
    /// The next shift boundary after the check-out (plus the grace period).
    EndOfShift,
    /// At this time of day: today if still ahead, else tomorrow.
    At(NaiveTime),
}

/// Hours of the day when check-outs are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Curfew {
    /// From (inclusive), wall-clock.
    pub from: NaiveTime,
    /// Until (exclusive); before `from` means across midnight.
    pub until: NaiveTime,
    /// The days the curfew starts on; empty is every day.
    pub days: Vec<Weekday>,
    /// Said on the screen.
    pub reason: String,
}

/// What an escalation step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StepAction {
    /// "Overdue" on the screen and the overdue metric.
    Screen,
    /// A JSON webhook through the outbox.
    Webhook,
    /// An e-mail.
    Email,
    /// A Workspace ONE message to the device.
    Message,
    /// Workspace ONE Lost Mode (iOS).
    LostMode,
    /// A Workspace ONE device lock.
    Lock,
}

/// One rung of the escalation ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderStep {
    /// After the due time.
    pub after: Duration,
    /// What to do.
    pub action: StepAction,
}

/// A station's lending policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LendingPolicy {
    /// For users in no group with a rule.
    pub default_rule: DueRule,
    /// `(group, rule)`, first match wins.
    pub group_rules: Vec<(String, DueRule)>,
    /// Replaces the rules when the check-out day is a weekend day or a holiday.
    pub weekend_rule: Option<DueRule>,
    /// The weekend days.
    pub weekend_days: Vec<Weekday>,
    /// Site holidays.
    pub holidays: BTreeSet<NaiveDate>,
    /// Shift boundaries (wall-clock), sorted.
    pub shifts: Vec<NaiveTime>,
    /// Added to a shift end.
    pub grace: Duration,
    /// When check-outs are refused.
    pub curfews: Vec<Curfew>,
    /// The escalation ladder, in order.
    pub ladder: Vec<LadderStep>,
}

impl Default for LendingPolicy {
    fn default() -> LendingPolicy {
        LendingPolicy {
            default_rule: DueRule::For(Duration::hours(14)),
            group_rules: Vec::new(),
            weekend_rule: None,
            weekend_days: vec![Weekday::Sat, Weekday::Sun],
            holidays: BTreeSet::new(),
            shifts: Vec::new(),
            grace: Duration::zero(),
            curfews: Vec::new(),
            ladder: vec![LadderStep {
                after: Duration::zero(),
                action: StepAction::Screen,
            }],
        }
    }
}

impl LendingPolicy {
    /// The rule for these groups on this day.
    pub fn rule_for(&self, groups: &[String], day: NaiveDate) -> &DueRule {
        let off_day = self.weekend_days.contains(&day.weekday()) || self.holidays.contains(&day);
        if let (true, Some(rule)) = (off_day, &self.weekend_rule) {
            return rule;
        }
        self.group_rules
            .iter()
            .find(|(group, _)| groups.iter().any(|g| g == group))
            .map(|(_, rule)| rule)
            .unwrap_or(&self.default_rule)
    }
}

/// The first instant at or after the wall-clock `date time` (a time skipped by a DST
/// change moves to the end of the gap).
fn at_wall_clock<Tz: TimeZone>(tz: &Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Tz> {
    let mut local = date.and_time(time);
    for _ in 0..4 {
        if let Some(found) = tz.from_local_datetime(&local).earliest() {
            return found;
        }
        local += Duration::minutes(30);
    }
    tz.from_utc_datetime(&date.and_time(time))
}

/// When a loan taken at `checkout` by a member of `groups` is due.
pub fn due_at<Tz: TimeZone>(
    policy: &LendingPolicy,
    groups: &[String],
    checkout: &DateTime<Tz>,
) -> DateTime<Tz> {
    let tz = checkout.timezone();
    let day = checkout.date_naive();
    match policy.rule_for(groups, day) {
        DueRule::For(duration) => checkout.clone() + *duration,
        DueRule::At(time) => {
            let today = at_wall_clock(&tz, day, *time);
            if today > *checkout {
                today
            } else {
                at_wall_clock(&tz, day + Duration::days(1), *time)
            }
        }
        DueRule::EndOfShift => {
            if policy.shifts.is_empty() {
                // No boundaries configured: the config refuses this; a day is the
                // safest reading.
                return checkout.clone() + Duration::days(1);
            }
            // Boundaries of yesterday, today and tomorrow, in order; the first one more
            // than the grace period ahead ends the shift.
            let boundaries = (-1..=1).flat_map(|offset| {
                let date = day + Duration::days(offset);
                let tz = tz.clone();
                policy
                    .shifts
                    .iter()
                    .map(move |time| at_wall_clock(&tz, date, *time))
            });
            for boundary in boundaries.chain(std::iter::once(checkout.clone() + Duration::days(2)))
            {
                if boundary.clone() - policy.grace > *checkout {
                    return boundary + policy.grace;
                }
            }
            checkout.clone() + Duration::days(1)
        }
    }
}

/// Why a check-out at `at` is refused, when a curfew covers it.
pub fn curfew_at<Tz: TimeZone>(policy: &LendingPolicy, at: &DateTime<Tz>) -> Option<String> {
    let time = at.time();
    let today = at.weekday();
    let yesterday = today.pred();
    policy
        .curfews
        .iter()
        .find(|curfew| {
            let starts_on = |day: Weekday| curfew.days.is_empty() || curfew.days.contains(&day);
            if curfew.from <= curfew.until {
                starts_on(today) && time >= curfew.from && time < curfew.until
            } else {
                (starts_on(today) && time >= curfew.from)
                    || (starts_on(yesterday) && time < curfew.until)
            }
        })
        .map(|curfew| curfew.reason.clone())
}

/// A loan as the ladder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanDue<Tz: TimeZone> {
    /// When it is due.
    pub due: DateTime<Tz>,
    /// Ladder indexes already taken (each step happens once).
    pub done: BTreeSet<usize>,
}

/// A step to take now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Its index in the ladder (record it in `done`).
    pub index: usize,
    /// What to do.
    pub action: StepAction,
}

/// The steps of the ladder due at `now` and not yet taken, in ladder order.
pub fn steps_due<Tz: TimeZone>(
    policy: &LendingPolicy,
    loan: &LoanDue<Tz>,
    now: &DateTime<Tz>,
) -> Vec<Step> {
    policy
        .ladder
        .iter()
        .enumerate()
        .filter(|(index, step)| !loan.done.contains(index) && loan.due.clone() + step.after <= *now)
        .map(|(index, step)| Step {
            index,
            action: step.action,
        })
        .collect()
}
