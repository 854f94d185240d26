//! `badgedock report` through the real binary on a real store: the three CSV tables of a
//! small hand-computed day checked cell by cell, the chart drawn as SVG, converted to
//! PNG by rsvg-convert (Debian librsvg2-bin) and its size checked, and a generated
//! month of 10,000 loans whose tables add up to what was generated.

use std::path::Path;
use std::process::{Command, Output};

use badgedock::checkout::{AuditEntry, Commit};
use badgedock::domain::{DeviceKey, SlotLabel, Timestamp, Username};
use badgedock::report::generate;
use badgedock::store::Store;

use crate::support::station::{bin, StationDir};

/// 2026-11-02T00:00:00Z, a Monday.
const DAY: i64 = 1_793_577_600_000;
const MINUTE: i64 = 60_000;

fn at(hour: i64, minute: i64) -> i64 {
    DAY + (hour * 60 + minute) * MINUTE
}

fn row(at: i64, kind: &str, user: &str, phone: Option<(&str, &str)>, detail: &str) -> AuditEntry {
    AuditEntry {
        at: Timestamp(at),
        kind: badgedock::checkout::AuditKind::from_name(kind),
        reader: None,
        badge: None,
        username: Some(Username::new(user)),
        device: phone.map(|(id, _)| DeviceKey::android(id)),
        slot: phone.map(|(_, slot)| SlotLabel::new(slot)),
        detail: detail.to_string(),
    }
}

/// The hand-computed day: alice has PA 06:30–07:30, bob PB 06:50–09:15, carol is
/// refused at 07:10 (none ready) and takes PA at 08:00 for good.
fn small_day() -> Vec<AuditEntry> {
    let a = Some(("PA", "1"));
    let b = Some(("PB", "2"));
    vec![
        row(at(6, 30), "checkout", "alice", a, "Alice took PA"),
        row(at(6, 50), "checkout", "bob", b, "Bob took PB"),
        row(
            at(7, 10),
            "tap-refused",
            "carol",
            None,
            "no charged, checked-in phone is docked; see the charge nurse",
        ),
        row(at(7, 30), "checkin", "alice", a, "PA returned"),
        row(at(8, 0), "checkout", "carol", a, "Carol took PA"),
        row(at(9, 15), "checkin", "bob", b, "PB returned"),
    ]
}

async fn station_with(entries: Vec<AuditEntry>) -> StationDir {
    let station = StationDir::new("http://127.0.0.1:9", &[], &[], "");
    let store = Store::open(&station.dir.path().join("state/badgedock.sqlite3")).unwrap();
    for chunk in entries.chunks(1000) {
        store
            .commit(Commit {
                audit: chunk.to_vec(),
                ..Commit::default()
            })
            .await
            .unwrap();
    }
    store.close().await.unwrap();
    station
}

fn report(station: &StationDir, args: &[&str]) -> (Output, String) {
    let output = Command::new(bin())
        .arg("report")
        .arg("--config")
        .arg(station.config())
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    (output, stdout)
}

const WINDOW: [&str; 4] = ["--from", "2026-11-02", "--to", "2026-11-03"];

#[tokio::test]
async fn per_phone_figures_of_a_hand_computed_day() {
    let station = station_with(small_day()).await;
    let (_, csv) = report(&station, &[&WINDOW[..], &["--by", "phone"]].concat());
    // PA: alice 1 h + carol 08:00–24:00 16 h (over the 14 h default: overdue).
    // PB: bob 2 h 25 min.
    assert_eq!(
        csv,
        "phone,loans,hours_out,last_user,last_seen,overdue\n\
         android:PA,2,17.00,carol,2026-11-02T08:00:00+00:00,1\n\
         android:PB,1,2.42,bob,2026-11-02T09:15:00+00:00,0\n"
    );
}

#[tokio::test]
async fn per_hour_figures_of_a_hand_computed_day() {
    let station = station_with(small_day()).await;
    let out = station.dir.path().join("hours.csv");
    let (output, stdout) = report(
        &station,
        &[
            &WINDOW[..],
            &["--by", "hour", "--csv", out.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(stdout, "");
    assert!(String::from_utf8_lossy(&output.stderr).contains("24 rows from 6 audit rows (3 loans)"));
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut expected = String::from("hour,average_out,peak_out,checkouts,refusals_none_ready\n");
    for hour in 0..6 {
        expected.push_str(&format!("{hour:02}:00,0.00,0,0,0\n"));
    }
    // 06: PA 30 min + PB 10 min; 07: PA 30 min + PB 60 min, carol refused;
    // 08: both all hour (carol took PA at 08:00); 09: PA + PB 15 min; then PA alone.
    expected.push_str("06:00,0.67,2,2,0\n");
    expected.push_str("07:00,1.50,2,0,1\n");
    expected.push_str("08:00,2.00,2,1,0\n");
    expected.push_str("09:00,1.25,2,0,0\n");
    for hour in 10..24 {
        expected.push_str(&format!("{hour:02}:00,1.00,1,0,0\n"));
    }
    assert_eq!(csv, expected);
}

#[tokio::test]
async fn per_user_loans_of_a_hand_computed_day() {
    let station = station_with(small_day()).await;
    let (_, csv) = report(&station, &[&WINDOW[..], &["--user", "bob"]].concat());
    assert_eq!(
        csv,
        "username,phone,slot,out_at,back_at\n\
         bob,android:PB,2,2026-11-02T06:50:00+00:00,2026-11-02T09:15:00+00:00\n"
    );
    let (_, csv) = report(&station, &[&WINDOW[..], &["--by", "user"]].concat());
    assert_eq!(
        csv,
        "username,phone,slot,out_at,back_at\n\
         alice,android:PA,1,2026-11-02T06:30:00+00:00,2026-11-02T07:30:00+00:00\n\
         bob,android:PB,2,2026-11-02T06:50:00+00:00,2026-11-02T09:15:00+00:00\n\
         carol,android:PA,1,2026-11-02T08:00:00+00:00,\n"
    );
}

#[test]
fn a_bad_date_is_named() {
    let station = StationDir::new("http://127.0.0.1:9", &[], &[], "");
    let output = Command::new(bin())
        .args(["report", "--config"])
        .arg(station.config())
        .args(["--from", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--from \"yesterday\" is neither a day"),
        "{stderr}"
    );
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[tokio::test]
async fn a_generated_month_adds_up_and_its_chart_renders() {
    let start = 1_793_491_200_000; // 2026-11-01T00:00:00Z
    let generated = generate::month(11, start, 10_000, 150);
    assert_eq!(generated.n_loans, 10_000);
    let n_refusals = generated.n_refusals;
    let end = generated.entries.last().unwrap().at.0 + 1;
    let station = station_with(generated.entries).await;
    let to = chrono::DateTime::from_timestamp_millis(end)
        .unwrap()
        .to_rfc3339();
    let window = ["--from", "2026-11-01", "--to", to.as_str()];

    let (_, csv) = report(&station, &[&window[..], &["--by", "phone"]].concat());
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let (mut loans, mut phones) = (0u64, 0);
    for record in reader.records() {
        loans += record.unwrap()[1].parse::<u64>().unwrap();
        phones += 1;
    }
    assert_eq!((loans, phones), (10_000, 150));

    let svg = station.dir.path().join("week.svg");
    let (_, csv) = report(
        &station,
        &[
            &window[..],
            &["--by", "hour", "--svg", svg.to_str().unwrap()],
        ]
        .concat(),
    );
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let (mut checkouts, mut refusals, mut peak_at_7) = (0u64, 0u64, 0u64);
    for record in reader.records() {
        let record = record.unwrap();
        checkouts += record[3].parse::<u64>().unwrap();
        refusals += record[4].parse::<u64>().unwrap();
        if &record[0] == "07:00" {
            peak_at_7 = record[2].parse().unwrap();
        }
    }
    assert_eq!((checkouts, refusals), (10_000, n_refusals as u64));
    assert!(peak_at_7 > 0 && peak_at_7 <= 150, "{peak_at_7}");

    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
    for label in ["Mon", "Sun", "Phones out by hour of the week"] {
        assert!(text.contains(label), "the chart lacks {label:?}");
    }
    let png = station.dir.path().join("week.png");
    let status = Command::new("rsvg-convert")
        .arg("--format=png")
        .arg("--output")
        .arg(&png)
        .arg(&svg)
        .status()
        .expect("rsvg-convert (Debian package librsvg2-bin) is installed by scripts/install-deps.sh --test");
    assert!(status.success());
    assert_eq!(png_size(&png), badgedock::report::chart::SIZE);
    let bytes = std::fs::metadata(&png).unwrap().len();
    assert!(bytes > 10_000, "a near-empty PNG: {bytes} bytes");
    if let Ok(keep) = std::env::var("BADGEDOCK_KEEP_CHART") {
        std::fs::copy(&png, keep).unwrap();
    }
}
