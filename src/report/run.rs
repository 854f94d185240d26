//! `badgedock report` end to end: reads the audit from the store, builds the table the
//! operator asked for, writes it as CSV (to a file or the given writer) and draws the
//! chart when asked.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, TimeZone};

use crate::domain::Timestamp;
use crate::report::{self, chart, Usage, Window};
use crate::store::{Store, StoreError};

/// Which table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// Loans, hours out, last user, last seen and overdue loans per phone.
    Phone,
    /// Phones out (average, peak), check-outs and "no phone ready" refusals per hour.
    Hour,
    /// Who had which phone when.
    User,
}

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// `--from`: a day (station time) or an RFC 3339 time.
    pub from: Option<String>,
    /// `--to`: a day (the report stops at its midnight) or an RFC 3339 time.
    pub to: Option<String>,
    /// The table.
    pub by: By,
    /// Only this user's loans.
    pub user: Option<String>,
    /// CSV file; the writer when `None`.
    pub csv: Option<PathBuf>,
    /// SVG chart file.
    pub svg: Option<PathBuf>,
    /// A loan longer than this is overdue (`checkout.overdue-hours`).
    pub overdue_ms: i64,
}

/// Why a report failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// `--from`/`--to` unreadable.
    #[error("{option} {value:?} is neither a day (2026-11-30) nor an RFC 3339 time (2026-11-30T07:00:00+01:00)")]
    BadTime {
        /// The option.
        option: &'static str,
        /// What was given.
        value: String,
    },
    /// `--from` not before `--to`.
    #[error("--from must be before --to")]
    EmptyWindow,
    /// Reading the audit.
    #[error("cannot read the audit: {0}")]
    Store(#[from] StoreError),
    /// Writing the CSV.
    #[error("cannot write the CSV to {target}: {source}; check the path and free space")]
    Csv {
        /// Where.
        target: String,
        /// Why.
        source: csv::Error,
    },
    /// Drawing the chart.
    #[error(transparent)]
    Chart(#[from] chart::ChartError),
}

impl ReportError {
    /// 64 (usage) for bad options, 70 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReportError::BadTime { .. } | ReportError::EmptyWindow => 64,
            _ => 70,
        }
    }
}

/// Parses a `--from`/`--to` value in the station's zone.
pub fn parse_time<Tz: TimeZone>(
    option: &'static str,
    value: &str,
    tz: &Tz,
) -> Result<i64, ReportError> {
    let bad = || ReportError::BadTime {
        option,
        value: value.to_string(),
    };
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.timestamp_millis());
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| bad())?;
    let midnight = day.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
    tz.from_local_datetime(&midnight)
        .earliest()
        .map(|time| time.timestamp_millis())
        .ok_or_else(bad)
}

/// Runs the report; returns a one-line summary for stderr.
pub async fn run<Tz: TimeZone, W: Write + Send + 'static>(
    store: &Store,
    request: &Request,
    tz: &Tz,
    writer: W,
) -> Result<String, ReportError>
where
    Tz::Offset: std::fmt::Display,
{
    let now = chrono::Utc::now().timestamp_millis();
    let to = match &request.to {
        Some(value) => parse_time("--to", value, tz)?,
        None => now,
    };
    let records = store.audit_before(Timestamp(to)).await?;
    let from = match &request.from {
        Some(value) => parse_time("--from", value, tz)?,
        None => records.first().map(|r| r.entry.at.0).unwrap_or(to),
    };
    if from >= to && request.from.is_some() {
        return Err(ReportError::EmptyWindow);
    }
    let window = Window {
        from,
        to: to.max(from + 1),
    };
    let usage = Usage::from_audit(records.iter().map(|record| &record.entry));
    let target = request
        .csv
        .as_ref()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| "standard output".to_string());
    let csv_error = |source| ReportError::Csv {
        target: target.clone(),
        source,
    };
    let output: Box<dyn Write> = match &request.csv {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|error| csv_error(error.into()))?,
        )),
        None => Box::new(writer),
    };
    let n_rows = match request.by {
        By::Phone => {
            let rows = report::by_phone(&usage, window, request.overdue_ms);
            finish(report::write_phone_csv(output, &rows, tz)).map_err(csv_error)?;
            rows.len()
        }
        By::Hour => {
            let rows = report::by_hour(&usage, window, tz);
            finish(report::write_hour_csv(output, &rows)).map_err(csv_error)?;
            rows.len()
        }
        By::User => {
            let rows = report::by_user(&usage, window, request.user.as_deref());
            finish(report::write_user_csv(output, &rows, tz)).map_err(csv_error)?;
            rows.len()
        }
    };
    if let Some(svg) = &request.svg {
        let week = report::by_hour_of_week(&usage, window, tz);
        chart::phones_out_by_hour_of_week(svg, "Phones out by hour of the week", &week)?;
    }
    Ok(format!(
        "{n_rows} rows from {} audit rows ({} loans) written to {target}{}",
        records.len(),
        usage.loans.len(),
        request
            .svg
            .as_ref()
            .map(|svg| format!("; chart {}", svg.display()))
            .unwrap_or_default()
    ))
}

fn finish(written: Result<Box<dyn Write>, csv::Error>) -> Result<(), csv::Error> {
    written?.flush().map_err(csv::Error::from)
}
