//! Report benchmark: a generated month of audit (10,000 loans over 150 phones, check-outs
//! peaking at the 07:00, 15:00 and 19:00 shift changes) committed to a real store file,
//! then `badgedock report`'s work timed end to end: the audit read, the loans rebuilt,
//! the three CSV tables and the SVG chart. Prints the median of five runs of each.
//!
//! `cargo bench --bench report`. `BADGEDOCK_BENCH_LOANS` changes the number of loans.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use badgedock::checkout::Commit;
use badgedock::report::{self, chart, generate, Usage, Window};
use badgedock::store::Store;

const START: i64 = 1_793_491_200_000; // 2026-11-01T00:00:00Z

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() {
    let n_loans = std::env::var("BADGEDOCK_BENCH_LOANS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let generated = generate::month(7, START, n_loans, 150);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("report.sqlite3")).unwrap();
    for chunk in generated.entries.chunks(500) {
        store
            .commit(Commit {
                audit: chunk.to_vec(),
                ..Commit::default()
            })
            .await
            .unwrap();
    }
    let to = generated.entries.last().unwrap().at.0 + 1;
    let window = Window { from: START, to };
    println!(
        "report: {} loans, {} refusals, {} audit rows, {:.1} days",
        generated.n_loans,
        generated.n_refusals,
        generated.entries.len(),
        (to - START) as f64 / 86_400_000.0
    );

    let tz = chrono::Utc;
    let (mut read, mut build, mut phone, mut hour, mut user, mut svg, mut total) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..5 {
        let started = Instant::now();
        let records = store
            .audit_before(badgedock::domain::Timestamp(to))
            .await
            .unwrap();
        read.push(started.elapsed());
        let t = Instant::now();
        let usage = Usage::from_audit(records.iter().map(|r| &r.entry));
        build.push(t.elapsed());
        let t = Instant::now();
        let rows = report::by_phone(&usage, window, 14 * 3_600_000);
        report::write_phone_csv(Vec::new(), &rows, &tz).unwrap();
        phone.push(t.elapsed());
        let t = Instant::now();
        let rows = report::by_hour(&usage, window, &tz);
        report::write_hour_csv(Vec::new(), &rows).unwrap();
        hour.push(t.elapsed());
        let t = Instant::now();
        let rows = report::by_user(&usage, window, None);
        report::write_user_csv(Vec::new(), &rows, &tz).unwrap();
        user.push(t.elapsed());
        let t = Instant::now();
        let week = report::by_hour_of_week(&usage, window, &tz);
        chart::phones_out_by_hour_of_week(&dir.path().join("week.svg"), "bench", &week).unwrap();
        svg.push(t.elapsed());
        total.push(started.elapsed());
    }
    for (name, samples) in [
        ("audit read from the store", read),
        ("loans rebuilt", build),
        ("per-phone CSV", phone),
        ("per-hour CSV", hour),
        ("per-user CSV", user),
        ("hour-of-week SVG", svg),
        ("total", total),
    ] {
        println!("report: {name:<26} median {:>9.2?}", median(samples));
    }
    store.close().await.unwrap();
}
