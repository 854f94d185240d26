//! `[lending]`: due-time rules, curfews and the escalation ladder, parsed into the pure
//! [`crate::lending::LendingPolicy`] with a key-and-line problem for each bad value.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate, NaiveTime, Weekday};
use serde::Deserialize;
use toml::Spanned;

use crate::checkout::LendingConfig;
use crate::config::Checker;
use crate::domain::Secret;
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
    /// The station's IANA time zone (`"Europe/Paris"`); the system's unless set.
    pub time_zone: Option<Spanned<String>>,
    /// Where `webhook` steps POST.
    pub webhook_url: Option<Spanned<String>>,
    /// Who `email` steps write to.
    #[serde(default)]
    pub email_to: Vec<Spanned<String>>,
    /// The text of a `message` step.
    pub device_message: Option<Spanned<String>>,
    /// The lock-screen text of a `lost-mode` step.
    pub lost_mode_message: Option<Spanned<String>>,
    /// The number shown on the lock screen.
    pub lost_mode_phone: Option<Spanned<String>>,
    /// Workspace ONE path of the device message (POST; unverified).
    pub message_path: Option<Spanned<String>>,
    /// Workspace ONE path that turns Lost Mode on (PUT; unverified).
    pub lost_mode_on_path: Option<Spanned<String>>,
    /// Workspace ONE path that turns Lost Mode off (PUT; unverified).
    pub lost_mode_off_path: Option<Spanned<String>>,
    /// The return-as-broken gesture's window.
    pub broken_double_tap_seconds: Option<Spanned<i64>>,
    /// Where repair tickets are POSTed.
    pub broken_ticket_webhook: Option<Spanned<String>>,
    /// The mail server of `email` steps.
    pub smtp: Option<SmtpFile>,
}

/// `[lending.smtp]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SmtpFile {
    /// Host name (also the name its certificate must carry).
    pub server: Spanned<String>,
    /// 587 unless set.
    pub port: Option<Spanned<i64>>,
    /// The sender address.
    pub from: Spanned<String>,
    /// SMTP AUTH user, when the server wants one.
    pub username: Option<Spanned<String>>,
    /// Its password, in a file.
    pub password_file: Option<Spanned<PathBuf>>,
    /// An extra CA (PEM) for the server's certificate.
    pub ca_file: Option<Spanned<PathBuf>>,
}

/// `[lending.smtp]`, resolved: mail always goes with STARTTLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// Host name.
    pub server: String,
    /// Port.
    pub port: u16,
    /// The sender.
    pub from: String,
    /// SMTP AUTH, when set.
    pub credentials: Option<(String, Secret)>,
    /// Extra CA file.
    pub ca_file: Option<PathBuf>,
}

/// The system's time zone name: `/etc/timezone` (Debian), else the target of
/// `/etc/localtime`.
fn system_zone() -> Option<String> {
    if let Ok(text) = std::fs::read_to_string("/etc/timezone") {
        let name = text.trim();
        if !name.is_empty() {
            return Some(name.to_string());
        }
    }
    let target = std::fs::read_link("/etc/localtime").ok()?;
    let text = target.to_string_lossy().to_string();
    text.split_once("zoneinfo/")
        .map(|(_, name)| name.to_string())
}

fn is_address(text: &str) -> bool {
    let text = text.trim();
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !domain.is_empty() && !text.contains(char::is_whitespace)
        }
        None => false,
    }
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
    pub after_minutes: Option<Spanned<i64>>,
    /// Seconds after the due time, added to the minutes (short ladders, tests).
    pub after_seconds: Option<Spanned<i64>>,
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
        format!("{text:?} is not a rule: use a duration (\"12h\", \"90m\", \"45s\"), \"end-of-shift\" or \"at HH:MM\"")
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
        "s" => Duration::seconds(number),
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

    fn lending_url(&mut self, key: &str, value: &Option<Spanned<String>>) -> Option<String> {
        let value = value.as_ref()?;
        let url = value.get_ref().trim();
        if url.starts_with("http://") || url.starts_with("https://") {
            Some(url.to_string())
        } else {
            self.problem(
                Some(value),
                key,
                format!("{url:?} is not a URL: write https://host/path"),
            );
            None
        }
    }

    fn lending_path(
        &mut self,
        key: &str,
        value: &Option<Spanned<String>>,
        default: &str,
    ) -> String {
        match value {
            Some(path) if path.get_ref().starts_with('/') => path.get_ref().trim().to_string(),
            Some(path) => {
                self.problem(
                    Some(path),
                    key,
                    format!(
                        "{:?} is not a Workspace ONE path: write /API/mdm/devices/{{uuid}}/…",
                        path.get_ref()
                    ),
                );
                default.to_string()
            }
            None => default.to_string(),
        }
    }

    fn resolve_smtp(&mut self, raw: &SmtpFile, base: &Path) -> Option<SmtpConfig> {
        let port = match &raw.port {
            None => 587,
            Some(port) => match u16::try_from(*port.get_ref()) {
                Ok(port) if port > 0 => port,
                _ => {
                    self.problem(Some(port), "lending.smtp.port", "must be from 1 to 65535");
                    587
                }
            },
        };
        if !is_address(raw.from.get_ref()) {
            self.problem(
                Some(&raw.from),
                "lending.smtp.from",
                format!("{:?} is not an e-mail address", raw.from.get_ref()),
            );
        }
        if raw.server.get_ref().trim().is_empty() {
            self.problem(
                Some(&raw.server),
                "lending.smtp.server",
                "is empty: name the mail server (its certificate must carry this name)",
            );
        }
        let credentials = match (&raw.username, &raw.password_file) {
            (Some(user), Some(file)) => self
                .secret("lending.smtp.password-file", file, base)
                .map(|secret| (user.get_ref().clone(), secret)),
            (None, None) => None,
            (Some(user), None) => {
                self.problem(
                    Some(user),
                    "lending.smtp.password-file",
                    "is missing: a username needs its password file",
                );
                None
            }
            (None, Some(file)) => {
                self.problem(
                    Some(file),
                    "lending.smtp.username",
                    "is missing: a password file needs its username",
                );
                None
            }
        };
        let ca_file = raw
            .ca_file
            .as_ref()
            .map(|file| self.ca_file("lending.smtp.ca-file", file, base));
        Some(SmtpConfig {
            server: raw.server.get_ref().trim().to_string(),
            port,
            from: raw.from.get_ref().trim().to_string(),
            credentials,
            ca_file,
        })
    }

    /// `[lending]` as the engine and the outbox worker want it.
    pub(super) fn resolve_lending_all(
        &mut self,
        raw: Option<&LendingFile>,
        base: &Path,
    ) -> (LendingConfig, Option<SmtpConfig>) {
        let mut config = LendingConfig::default();
        let zone_name = raw
            .and_then(|r| r.time_zone.as_ref())
            .map(|z| z.get_ref().trim().to_string())
            .or_else(system_zone);
        if let Some(name) = zone_name {
            match name.parse::<chrono_tz::Tz>() {
                Ok(zone) => config.zone = zone,
                Err(_) => self.problem(
                    raw.and_then(|r| r.time_zone.as_ref()),
                    "lending.time-zone",
                    format!("{name:?} is not an IANA time zone: write e.g. \"Europe/Paris\""),
                ),
            }
        }
        let Some(raw) = raw else {
            return (config, None);
        };
        config.enabled = true;
        config.policy = self.resolve_lending(raw);
        config.webhook_url = self.lending_url("lending.webhook-url", &raw.webhook_url);
        config.ticket_url =
            self.lending_url("lending.broken-ticket-webhook", &raw.broken_ticket_webhook);
        for to in &raw.email_to {
            if is_address(to.get_ref()) {
                config.email_to.push(to.get_ref().trim().to_string());
            } else {
                self.problem(
                    Some(to),
                    "lending.email-to",
                    format!("{:?} is not an e-mail address", to.get_ref()),
                );
            }
        }
        for (value, target) in [
            (&raw.device_message, &mut config.device_message),
            (&raw.lost_mode_message, &mut config.lost_mode_message),
            (&raw.lost_mode_phone, &mut config.lost_mode_phone),
        ] {
            if let Some(value) = value {
                *target = value.get_ref().trim().to_string();
            }
        }
        config.message_path = self.lending_path(
            "lending.message-path",
            &raw.message_path,
            crate::checkout::DEFAULT_MESSAGE_PATH,
        );
        config.lost_mode_on_path = self.lending_path(
            "lending.lost-mode-on-path",
            &raw.lost_mode_on_path,
            crate::checkout::DEFAULT_LOST_MODE_ON_PATH,
        );
        config.lost_mode_off_path = self.lending_path(
            "lending.lost-mode-off-path",
            &raw.lost_mode_off_path,
            crate::checkout::DEFAULT_LOST_MODE_OFF_PATH,
        );
        if let Some(seconds) = &raw.broken_double_tap_seconds {
            if (2..=60).contains(seconds.get_ref()) {
                config.broken_double_tap_ms = seconds.get_ref() * 1000;
            } else {
                self.problem(
                    Some(seconds),
                    "lending.broken-double-tap-seconds",
                    "must be from 2 to 60 seconds",
                );
            }
        }
        let smtp = raw
            .smtp
            .as_ref()
            .and_then(|smtp| self.resolve_smtp(smtp, base));
        // Each ladder step needs where it goes.
        for (index, step) in raw.escalation.iter().enumerate() {
            let key = format!("lending.escalation[{index}].action");
            match parse_action(step.action.get_ref()) {
                Some(StepAction::Webhook) if config.webhook_url.is_none() => self.problem(
                    Some(&step.action),
                    key,
                    "\"webhook\" needs lending.webhook-url",
                ),
                Some(StepAction::Email) if config.email_to.is_empty() || smtp.is_none() => self
                    .problem(
                        Some(&step.action),
                        key,
                        "\"email\" needs lending.email-to and a [lending.smtp] section",
                    ),
                Some(StepAction::LostMode) if index + 1 != raw.escalation.len() => self.problem(
                    Some(&step.action),
                    key,
                    "\"lost-mode\" ends the loan (the phone is marked lost): make it the last step",
                ),
                _ => {}
            }
        }
        (config, smtp)
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
                let minutes = step.after_minutes.as_ref().map_or(0, |m| *m.get_ref());
                let seconds = step.after_seconds.as_ref().map_or(0, |s| *s.get_ref());
                let after = minutes.saturating_mul(60).saturating_add(seconds);
                if after < previous || after > 60 * 60 * 24 * 31 || minutes < 0 || seconds < 0 {
                    let (at, name) = match (&step.after_minutes, &step.after_seconds) {
                        (Some(m), _) => (Some(m), "after-minutes"),
                        (None, Some(s)) => (Some(s), "after-seconds"),
                        (None, None) => (None, "after-minutes"),
                    };
                    self.problem(
                        at,
                        format!("{key}.{name}"),
                        "must not be less than the step before it (the ladder goes up) nor over 31 days",
                    );
                }
                previous = after;
                match parse_action(step.action.get_ref()) {
                    Some(action) => policy.ladder.push(LadderStep {
                        after: Duration::seconds(after),
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
