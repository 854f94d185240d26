//! `badgedock report`: usage figures computed from the audit log alone.
//!
//! Loans are rebuilt from the audit: a `checkout` row opens a loan of its device (user,
//! slot), the device's next `checkin` row (or its next `checkout`, when a check-in was
//! never seen) closes it; a loan still open at the end of the window counts until then.
//! Refusals because no phone was ready are the `tap-refused` rows whose detail says so
//! (the engine's words, see `NONE_READY_DETAILS`). Times are grouped in the station's
//! local time zone (the caller passes it: `chrono::Local` on the station), by whole
//! hours.
//!
//! Three tables (per phone, per hour of day, per user's loans) go to CSV; the average
//! number of phones out per hour of the week goes to an SVG chart (`chart`). Text cells
//! that a spreadsheet would run as a formula are neutralised, as in the audit export.

pub mod chart;
pub mod generate;
pub mod run;

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Datelike, TimeZone, Timelike};

use crate::checkout::AuditEntry;
use crate::domain::Platform;

/// The beginnings of the details the engine writes when a tap is refused because no
/// phone was ready; kept here so the report and the engine can be checked together.
pub const NONE_READY_DETAILS: &[&str] = &["no charged, checked-in phone is docked"];

const HOUR_MS: i64 = 3_600_000;

/// One loan rebuilt from the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loan {
    /// The phone, `platform:id`.
    pub phone: String,
    /// Who took it.
    pub username: String,
    /// Where it was taken from.
    pub slot: String,
    /// When it was taken (ms since the epoch).
    pub start: i64,
    /// When it came back; `None` while out.
    pub end: Option<i64>,
    /// An `overdue` audit row was written for it while it was out.
    pub flagged_overdue: bool,
}

/// The reporting window, `[from, to)` in ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub from: i64,
    /// Exclusive end.
    pub to: i64,
}

/// The audit rows a report needs, sorted out once.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Every loan, by start time.
    pub loans: Vec<Loan>,
    /// Times of refusals because no phone was ready.
    pub refusals_none_ready: Vec<i64>,
    /// The last audit row naming each phone: time and user (when the row had one).
    pub last_seen: BTreeMap<String, (i64, Option<String>)>,
}

fn phone_name(platform: Platform, id: &str) -> String {
    let platform = match platform {
        Platform::Apple => "apple",
        Platform::Android => "android",
    };
    format!("{platform}:{id}")
}

impl Usage {
    /// Sorts the audit rows (oldest first) into loans, refusals and sightings.
    pub fn from_audit<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> Usage {
        let mut usage = Usage::default();
        let mut open: BTreeMap<String, usize> = BTreeMap::new();
        for entry in entries {
            let at = entry.at.0;
            let phone = entry
                .device
                .as_ref()
                .map(|device| phone_name(device.platform, &device.id));
            if let Some(phone) = &phone {
                let user = entry.username.as_ref().map(|u| u.as_str().to_string());
                usage.last_seen.insert(phone.clone(), (at, user));
            }
            match (entry.kind.as_str(), phone) {
                ("checkout", Some(phone)) => {
                    if let Some(index) = open.remove(&phone) {
                        usage.loans[index].end = Some(at);
                    }
                    open.insert(phone.clone(), usage.loans.len());
                    usage.loans.push(Loan {
                        phone,
                        username: entry
                            .username
                            .as_ref()
                            .map(|u| u.as_str().to_string())
                            .unwrap_or_default(),
                        slot: entry
                            .slot
                            .as_ref()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                        start: at,
                        end: None,
                        flagged_overdue: false,
                    });
                }
                ("checkin", Some(phone)) => {
                    if let Some(index) = open.remove(&phone) {
                        usage.loans[index].end = Some(at);
                    }
                }
                ("overdue", Some(phone)) => {
                    if let Some(&index) = open.get(&phone) {
                        usage.loans[index].flagged_overdue = true;
                    }
                }
                ("tap-refused", _)
                    if NONE_READY_DETAILS
                        .iter()
                        .any(|prefix| entry.detail.starts_with(prefix)) =>
                {
                    usage.refusals_none_ready.push(at);
                }
                _ => {}
            }
        }
        usage
    }
}

impl Loan {
    /// The part of the loan inside the window, `(start, end)`, if any.
    fn clipped(&self, window: Window) -> Option<(i64, i64)> {
        let start = self.start.max(window.from);
        let end = self.end.unwrap_or(window.to).min(window.to);
        (end > start).then_some((start, end))
    }

    /// Out longer than `overdue_ms` (by the window's end when still out), or flagged.
    fn overdue(&self, window: Window, overdue_ms: i64) -> bool {
        self.flagged_overdue || self.end.unwrap_or(window.to) - self.start > overdue_ms
    }
}

/// One line of the per-phone report.
#[derive(Debug, Clone, PartialEq)]
pub struct PhoneRow {
    /// `platform:id`.
    pub phone: String,
    /// Loans that started in the window.
    pub loans: u32,
    /// Hours out inside the window.
    pub hours_out: f64,
    /// The user of the phone's latest loan started before the window's end.
    pub last_user: Option<String>,
    /// The last audit row naming the phone before the window's end.
    pub last_seen: Option<i64>,
    /// Loans started in the window that went overdue.
    pub overdue: u32,
}

/// Per phone, by phone name.
pub fn by_phone(usage: &Usage, window: Window, overdue_ms: i64) -> Vec<PhoneRow> {
    let mut rows: BTreeMap<&str, PhoneRow> = BTreeMap::new();
    for (phone, (at, _)) in &usage.last_seen {
        if *at < window.to {
            rows.insert(
                phone,
                PhoneRow {
                    phone: phone.clone(),
                    loans: 0,
                    hours_out: 0.0,
                    last_user: None,
                    last_seen: None,
                    overdue: 0,
                },
            );
        }
    }
    for loan in usage.loans.iter().filter(|loan| loan.start < window.to) {
        let Some(row) = rows.get_mut(loan.phone.as_str()) else {
            continue;
        };
        row.last_user = Some(loan.username.clone());
        if let Some((start, end)) = loan.clipped(window) {
            row.hours_out += (end - start) as f64 / HOUR_MS as f64;
        }
        if loan.start >= window.from {
            row.loans += 1;
            if loan.overdue(window, overdue_ms) {
                row.overdue += 1;
            }
        }
    }
    // last_seen: the latest row before the window's end; the map above holds the latest
    // of all, so look again when it lies beyond.
    for row in rows.values_mut() {
        row.last_seen = usage
            .last_seen
            .get(&row.phone)
            .map(|(at, _)| *at)
            .filter(|at| *at < window.to);
    }
    rows.into_values().collect()
}

/// One line of the per-hour-of-day report.
#[derive(Debug, Clone, PartialEq)]
pub struct HourRow {
    /// 0–23, local time.
    pub hour: u32,
    /// Average number of phones out during this hour of the day.
    pub average_out: f64,
    /// Most phones out at once during this hour on any day.
    pub peak_out: u32,
    /// Check-outs that started in this hour.
    pub checkouts: u32,
    /// Taps refused because no phone was ready.
    pub refusals_none_ready: u32,
}

/// Phones out per whole hour of the window: time out (ms) and the most at once.
struct HourBuckets {
    first: i64,
    out_ms: Vec<i64>,
    peak: Vec<u32>,
}

impl HourBuckets {
    fn new(usage: &Usage, window: Window) -> HourBuckets {
        let first = window.from.div_euclid(HOUR_MS) * HOUR_MS;
        let n = usize::try_from((window.to - first + HOUR_MS - 1).div_euclid(HOUR_MS))
            .unwrap_or(0)
            .max(1);
        let index = |at: i64| {
            usize::try_from((at - first).div_euclid(HOUR_MS))
                .unwrap_or(0)
                .min(n - 1)
        };
        let mut out_ms = vec![0i64; n];
        let mut events = Vec::new();
        for (start, end) in usage.loans.iter().filter_map(|loan| loan.clipped(window)) {
            events.push((start, 1i64));
            events.push((end, -1i64));
            let mut at = start;
            while at < end {
                let bucket_end = (at.div_euclid(HOUR_MS) + 1) * HOUR_MS;
                let until = bucket_end.min(end);
                out_ms[index(at)] += until - at;
                at = until;
            }
        }
        // Returns before take-outs at the same instant: a phone handed straight back out
        // is one phone, not two.
        events.sort_unstable();
        let mut peak = vec![0u32; n];
        let mut current = 0i64;
        let mut bucket = 0usize;
        for (at, delta) in events {
            let target = index(at);
            while bucket < target {
                bucket += 1;
                peak[bucket] = peak[bucket].max(u32::try_from(current).unwrap_or(0));
            }
            current += delta;
            peak[bucket] = peak[bucket].max(u32::try_from(current).unwrap_or(0));
        }
        while bucket + 1 < n {
            bucket += 1;
            peak[bucket] = peak[bucket].max(u32::try_from(current).unwrap_or(0));
        }
        HourBuckets {
            first,
            out_ms,
            peak,
        }
    }

    fn start_of(&self, index: usize) -> i64 {
        self.first + i64::try_from(index).unwrap_or(0) * HOUR_MS
    }
}

fn local<Tz: TimeZone>(tz: &Tz, at: i64) -> Option<DateTime<Tz>> {
    DateTime::from_timestamp_millis(at).map(|utc| utc.with_timezone(tz))
}

/// Per hour of the day (local time).
pub fn by_hour<Tz: TimeZone>(usage: &Usage, window: Window, tz: &Tz) -> Vec<HourRow> {
    let buckets = HourBuckets::new(usage, window);
    let mut rows: Vec<HourRow> = (0..24)
        .map(|hour| HourRow {
            hour,
            average_out: 0.0,
            peak_out: 0,
            checkouts: 0,
            refusals_none_ready: 0,
        })
        .collect();
    let mut n_hours = [0u32; 24];
    for (index, out_ms) in buckets.out_ms.iter().enumerate() {
        let Some(start) = local(tz, buckets.start_of(index)) else {
            continue;
        };
        let hour = start.hour() as usize;
        n_hours[hour] += 1;
        rows[hour].average_out += *out_ms as f64 / HOUR_MS as f64;
        rows[hour].peak_out = rows[hour].peak_out.max(buckets.peak[index]);
    }
    for (row, n) in rows.iter_mut().zip(n_hours) {
        if n > 0 {
            row.average_out /= f64::from(n);
        }
    }
    let in_window = |at: &i64| *at >= window.from && *at < window.to;
    for start in usage.loans.iter().map(|loan| loan.start).filter(in_window) {
        if let Some(at) = local(tz, start) {
            rows[at.hour() as usize].checkouts += 1;
        }
    }
    for at in usage.refusals_none_ready.iter().copied().filter(in_window) {
        if let Some(at) = local(tz, at) {
            rows[at.hour() as usize].refusals_none_ready += 1;
        }
    }
    rows
}

/// Average phones out for each hour of the week, Monday 00:00 first (168 values).
pub fn by_hour_of_week<Tz: TimeZone>(usage: &Usage, window: Window, tz: &Tz) -> Vec<f64> {
    let buckets = HourBuckets::new(usage, window);
    let mut sums = vec![0.0; 168];
    let mut counts = vec![0u32; 168];
    for (index, out_ms) in buckets.out_ms.iter().enumerate() {
        let Some(start) = local(tz, buckets.start_of(index)) else {
            continue;
        };
        let slot = start.weekday().num_days_from_monday() as usize * 24 + start.hour() as usize;
        sums[slot] += *out_ms as f64 / HOUR_MS as f64;
        counts[slot] += 1;
    }
    sums.iter()
        .zip(counts)
        .map(|(sum, n)| if n > 0 { sum / f64::from(n) } else { 0.0 })
        .collect()
}

/// One loan in the per-user report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Who.
    pub username: String,
    /// Which phone.
    pub phone: String,
    /// From which slot.
    pub slot: String,
    /// Taken.
    pub out_at: i64,
    /// Returned; `None` while still out at the window's end.
    pub back_at: Option<i64>,
}

/// Who had which phone when: the loans overlapping the window, of `user` or everyone,
/// by user then time.
pub fn by_user(usage: &Usage, window: Window, user: Option<&str>) -> Vec<UserRow> {
    let mut rows: Vec<UserRow> = usage
        .loans
        .iter()
        .filter(|loan| user.is_none_or(|user| loan.username == user))
        .filter(|loan| loan.clipped(window).is_some())
        .map(|loan| UserRow {
            username: loan.username.clone(),
            phone: loan.phone.clone(),
            slot: loan.slot.clone(),
            out_at: loan.start,
            back_at: loan.end.filter(|end| *end < window.to),
        })
        .collect();
    rows.sort_by(|a, b| (&a.username, a.out_at).cmp(&(&b.username, b.out_at)));
    rows
}

/// Text cells that a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab, CR at
/// the start) get a leading apostrophe, as in the audit export: usernames and device ids
/// come from outside.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

fn time_text<Tz: TimeZone>(tz: &Tz, at: Option<i64>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    at.and_then(|at| local(tz, at))
        .map(|at| at.format("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .unwrap_or_default()
}

/// Writes the per-phone report as CSV.
pub fn write_phone_csv<W: Write, Tz: TimeZone>(
    writer: W,
    rows: &[PhoneRow],
    tz: &Tz,
) -> Result<W, csv::Error>
where
    Tz::Offset: std::fmt::Display,
{
    let mut csv = csv::Writer::from_writer(writer);
    csv.write_record([
        "phone",
        "loans",
        "hours_out",
        "last_user",
        "last_seen",
        "overdue",
    ])?;
    for row in rows {
        csv.write_record([
            cell(&row.phone),
            row.loans.to_string(),
            format!("{:.2}", row.hours_out),
            cell(row.last_user.as_deref().unwrap_or_default()),
            time_text(tz, row.last_seen),
            row.overdue.to_string(),
        ])?;
    }
    csv.into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}

/// Writes the per-hour report as CSV.
pub fn write_hour_csv<W: Write>(writer: W, rows: &[HourRow]) -> Result<W, csv::Error> {
    let mut csv = csv::Writer::from_writer(writer);
    csv.write_record([
        "hour",
        "average_out",
        "peak_out",
        "checkouts",
        "refusals_none_ready",
    ])?;
    for row in rows {
        csv.write_record([
            format!("{:02}:00", row.hour),
            format!("{:.2}", row.average_out),
            row.peak_out.to_string(),
            row.checkouts.to_string(),
            row.refusals_none_ready.to_string(),
        ])?;
    }
    csv.into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}

/// Writes the per-user report as CSV.
pub fn write_user_csv<W: Write, Tz: TimeZone>(
    writer: W,
    rows: &[UserRow],
    tz: &Tz,
) -> Result<W, csv::Error>
where
    Tz::Offset: std::fmt::Display,
{
    let mut csv = csv::Writer::from_writer(writer);
    csv.write_record(["username", "phone", "slot", "out_at", "back_at"])?;
    for row in rows {
        csv.write_record([
            cell(&row.username),
            cell(&row.phone),
            cell(&row.slot),
            time_text(tz, Some(row.out_at)),
            time_text(tz, row.back_at),
        ])?;
    }
    csv.into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_cells_are_neutralised() {
        let rows = [UserRow {
            username: "=HYPERLINK(\"x\")".into(),
            phone: "android:-1".into(),
            slot: "@3".into(),
            out_at: 0,
            back_at: None,
        }];
        let csv = write_user_csv(Vec::new(), &rows, &chrono::Utc).expect("csv");
        assert_eq!(
            String::from_utf8(csv).expect("utf-8"),
            "username,phone,slot,out_at,back_at\n\
             \"'=HYPERLINK(\"\"x\"\")\",android:-1,'@3,1970-01-01T00:00:00+00:00,\n"
        );
    }
}
