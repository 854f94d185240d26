//! `[lending]`: due-time rules, curfews and the escalation ladder, parsed into the pure
//! [`crate::lending::LendingPolicy`] with a key-and-line problem for each bad value.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDate, NaiveTime, Weekday};
use serde::Deserialize;
use toml::Spanned;

use crate::config::Checker;
use crate::lending::{Curfew, DueRule, LadderStep, LendingPolicy, StepAction};

/// `[lending]` as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LendingFile {
    /// `"12h"`, `"90m"`, `"end-of-shift"` or `"at 18:00"`.
    pub default: Option<Spanned<String>>,
    /// Site shift boundaries, `"07:00"`.
    #[serde(default)]
    pub shifts: Vec<Spanned<String>>,
    /// Added to a shift end.
    pub grace_minutes: Option<Spanned<i64>>,
    /// The rule on weekend days and holidays.
    pub weekend: Option<Spanned<String>>,
    /// `["sat", "sun"]` unless set.
    pub weekend_days: Option<Vec<Spanned<String>>>,
    /// `"2026-12-25"`.
    #[serde(default)]
    pub holidays: Vec<Spanned<String>>,
    /// Rules per directory group.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupFile>,
    /// Curfews.
    #[serde(default, rename = "curfew")]
    pub curfews: Vec<CurfewFile>,
    /// The escalation ladder.
    #[serde(default, rename = "escalation")]
    pub escalation: Vec<EscalationFile>,
}

/// `[[lending.group]]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GroupFile {
    /// The directory group.
    pub name: Spanned<String>,
    /// Its rule.
    pub rule: Spanned<String>,
}

/// `[[lending.curfew]]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CurfewFile {
    /// `"22:00"`.
    pub from: Spanned<String>,
    /// `"06:00"`.
    pub until: Spanned<String>,
    /// Days it starts on; every day when absent.
    #[serde(default)]
    pub days: Vec<Spanned<String>>,
    /// Shown on the screen.
    pub reason: Spanned<String>,
}

/// `[[lending.escalation]]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EscalationFile {
    /// Minutes after the due time.
    pub after_minutes: Spanned<i64>,
    /// `screen`, `webhook`, `email`, `message`, `lost-mode`, `lock`.
    pub action: Spanned<String>,
}

/// Parses `"07:00"`.
pub fn parse_time(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M").ok()
}

/// Parses a rule: `"12h"`, `"90m"`, `"end-of-shift"`, `"at 18:00"`.
pub fn parse_rule(text: &str) -> Result<DueRule, String> {
    let text = text.trim();
    let bad = || {
        format!("{text:?} is not a rule: use a duration (\"12h\", \"90m\"), \"end-of-shift\" or \"at HH:MM\"")
    };
    if text == "end-of-shift" {
        return Ok(DueRule::EndOfShift);
    }
    if let Some(time) = text.strip_prefix("at ") {
        return parse_time(time).map(DueRule::At).ok_or_else(bad);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let number: i64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        "h" => Duration::hours(number),
        "m" => Duration::minutes(number),
        _ => return Err(bad()),
    };
    if duration <= Duration::zero() || duration > Duration::days(31) {
        return Err(format!(
            "{text:?}: a loan lasts more than 0 and at most 31 days"
        ));
    }
    Ok(DueRule::For(duration))
}

fn parse_day(text: &str) -> Option<Weekday> {
    match text.trim().to_ascii_lowercase().as_str() {
        "mon" => Some(Weekday::Mon),
        "tue" => Some(Weekday::Tue),
        "wed" => Some(Weekday::Wed),
        "thu" => Some(Weekday::Thu),
        "fri" => Some(Weekday::Fri),
        "sat" => Some(Weekday::Sat),
        "sun" => Some(Weekday::Sun),
        _ => None,
    }
}

fn parse_action(text: &str) -> Option<StepAction> {
    match text.trim() {
        "screen" => Some(StepAction::Screen),
        "webhook" => Some(StepAction::Webhook),
        "email" => Some(StepAction::Email),
        "message" => Some(StepAction::Message),
        "lost-mode" => Some(StepAction::LostMode),
        "lock" => Some(StepAction::Lock),
        _ => None,
    }
}

impl Checker<'_> {
    fn lending_rule(&mut self, key: &str, value: &Spanned<String>) -> Option<DueRule> {
        match parse_rule(value.get_ref()) {
            Ok(rule) => Some(rule),
            Err(message) => {
                self.problem(Some(value), key, message);
                None
            }
        }
    }

    fn lending_time(&mut self, key: &str, value: &Spanned<String>) -> Option<NaiveTime> {
        let time = parse_time(value.get_ref());
        if time.is_none() {
            self.problem(
                Some(value),
                key,
                format!(
                    "{:?} is not a time of day: write \"HH:MM\"",
                    value.get_ref()
                ),
            );
        }
        time
    }

    fn lending_days(&mut self, key: &str, values: &[Spanned<String>]) -> Vec<Weekday> {
        let mut days = Vec::new();
        for value in values {
            match parse_day(value.get_ref()) {
                Some(day) => days.push(day),
                None => self.problem(
                    Some(value),
                    key,
                    format!(
                        "{:?} is not a day: use mon, tue, wed, thu, fri, sat or sun",
                        value.get_ref()
                    ),
                ),
            }
        }
        days
    }

    pub(super) fn resolve_lending(&mut self, raw: &LendingFile) -> LendingPolicy {
        let mut policy = LendingPolicy::default();
        if let Some(rule) = raw
            .default
            .as_ref()
            .and_then(|r| self.lending_rule("lending.default", r))
        {
            policy.default_rule = rule;
        }
        let mut shifts: Vec<NaiveTime> = raw
            .shifts
            .iter()
            .filter_map(|s| self.lending_time("lending.shifts", s))
            .collect();
        shifts.sort();
        shifts.dedup();
        policy.shifts = shifts;
        if let Some(grace) = &raw.grace_minutes {
            if (0..=240).contains(grace.get_ref()) {
                policy.grace = Duration::minutes(*grace.get_ref());
            } else {
                self.problem(
                    Some(grace),
                    "lending.grace-minutes",
                    "must be from 0 to 240 minutes",
                );
            }
        }
        policy.weekend_rule = raw
            .weekend
            .as_ref()
            .and_then(|r| self.lending_rule("lending.weekend", r));
        if let Some(days) = &raw.weekend_days {
            policy.weekend_days = self.lending_days("lending.weekend-days", days);
        }
        let mut holidays = BTreeSet::new();
        for holiday in &raw.holidays {
            match NaiveDate::parse_from_str(holiday.get_ref().trim(), "%Y-%m-%d") {
                Ok(day) => {
                    holidays.insert(day);
                }
                Err(_) => self.problem(
                    Some(holiday),
                    "lending.holidays",
                    format!(
                        "{:?} is not a date: write \"YYYY-MM-DD\"",
                        holiday.get_ref()
                    ),
                ),
            }
        }
        policy.holidays = holidays;
        for (index, group) in raw.groups.iter().enumerate() {
            let key = format!("lending.group[{index}].rule");
            if let Some(rule) = self.lending_rule(&key, &group.rule) {
                policy
                    .group_rules
                    .push((group.name.get_ref().clone(), rule));
            }
        }
        let uses_shifts = std::iter::once(&policy.default_rule)
            .chain(policy.weekend_rule.iter())
            .chain(policy.group_rules.iter().map(|(_, rule)| rule))
            .any(|rule| *rule == DueRule::EndOfShift);
        if uses_shifts && policy.shifts.is_empty() {
            self.problem::<()>(
                None,
                "lending.shifts",
                "is empty but a rule says \"end-of-shift\": list the site's shift changes, e.g. [\"07:00\", \"19:00\"]",
            );
        }
        for (index, curfew) in raw.curfews.iter().enumerate() {
            let from = self.lending_time(&format!("lending.curfew[{index}].from"), &curfew.from);
            let until = self.lending_time(&format!("lending.curfew[{index}].until"), &curfew.until);
            let days = self.lending_days(&format!("lending.curfew[{index}].days"), &curfew.days);
            if curfew.reason.get_ref().trim().is_empty() {
                self.problem(
                    Some(&curfew.reason),
                    format!("lending.curfew[{index}].reason"),
                    "is empty: say on the screen why phones cannot be taken now",
                );
            }
            if let (Some(from), Some(until)) = (from, until) {
                if from == until {
                    self.problem(
                        Some(&curfew.until),
                        format!("lending.curfew[{index}].until"),
                        "equals from: a curfew needs a length",
                    );
                }
                policy.curfews.push(Curfew {
                    from,
                    until,
                    days,
                    reason: curfew.reason.get_ref().trim().to_string(),
                });
            }
        }
        if !raw.escalation.is_empty() {
            policy.ladder.clear();
            let mut previous = 0;
            for (index, step) in raw.escalation.iter().enumerate() {
                let key = format!("lending.escalation[{index}]");
                let minutes = *step.after_minutes.get_ref();
                if minutes < previous || minutes > 60 * 24 * 31 {
                    self.problem(
                        Some(&step.after_minutes),
                        format!("{key}.after-minutes"),
                        "must not be less than the step before it (the ladder goes up) nor over 31 days",
                    );
                }
                previous = minutes;
                match parse_action(step.action.get_ref()) {
                    Some(action) => policy.ladder.push(LadderStep {
                        after: Duration::minutes(minutes),
                        action,
                    }),
                    None => self.problem(
                        Some(&step.action),
                        format!("{key}.action"),
                        format!("{:?} is not an action: use screen, webhook, email, message, lost-mode or lock", step.action.get_ref()),
                    ),
                }
            }
        }
        policy
    }
}
