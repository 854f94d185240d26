//! Directory benchmarks: what a tap costs with the `file` directory (a stat on a blocking
//! thread, then a table lookup), and what loading a large badge file costs (the reload
//! that follows an edit). Figures are printed by criterion; nothing is asserted.

use criterion::{criterion_group, criterion_main, Criterion};

use badgedock::config::DirectoryConfig;
use badgedock::directory::{parse_badge_csv, Directory};
use badgedock::domain::BadgeNumber;

const N_ROWS: usize = 10_000;

fn badge_csv() -> String {
    let mut text = String::from("badge,username,display-name,groups\n");
    for n in 0..N_ROWS {
        text.push_str(&format!("{n:08X},user{n},User Number {n},nursing;icu\n"));
    }
    text
}

fn benches(c: &mut Criterion) {
    let text = badge_csv();
    c.bench_function("parse_badge_csv 10k rows", |b| {
        b.iter(|| {
            let (rows, errors) = parse_badge_csv(&text);
            assert_eq!((rows.len(), errors.len()), (N_ROWS, 0));
        })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("badges.csv");
    std::fs::write(&path, &text).expect("write");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let directory = Directory::open(&DirectoryConfig::File { path }).expect("open");
    let badge = BadgeNumber::new(format!("{:08X}", N_ROWS / 2));
    c.bench_function("file lookup (unchanged 10k-row file)", |b| {
        b.iter(|| runtime.block_on(directory.lookup(&badge)))
    });
}

criterion_group!(directory_benches, benches);
criterion_main!(directory_benches);
