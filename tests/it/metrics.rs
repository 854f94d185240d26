//! Metrics an on-call person can alert on, checked with promtool (Debian package
//! `prometheus`): `check metrics` on a live scrape of a real daemon, every series present
//! from the start, the gauges following a check-out; and the shipped rules file with
//! `check rules` and `test rules`.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::daemon::{BADGES, PHONES};
use crate::support::station::{http_get, repo_root, SimProcess, StationDir};

fn promtool(args: &[&str], stdin: Option<&str>, dir: &std::path::Path) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt install prometheus)");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_live_scrape_passes_promtool_and_has_every_series_from_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sim = SimProcess::start(&[]);
    // Bob has two accounts in Workspace ONE: his tap is accepted, the assignment refused.
    let mut badges = BADGES.to_vec();
    badges.push(("B0B0B0B0", "bob", "Bob Twice"));
    let station = StationDir::new(
        &sim.url,
        &PHONES,
        &badges,
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let _daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(15), "phones ready", |s| {
        s["slots"][0]["state"] == "available" && s["slots"][1]["state"] == "available"
    });
    let url = format!("http://127.0.0.1:{port}/metrics");
    let scrape = http_get(&url);
    for series in [
        "badgedock_phones{state=\"ready\"}",
        "badgedock_phones{state=\"out\"}",
        "badgedock_phones{state=\"set-aside\"}",
        "badgedock_phones{state=\"checking-in\"}",
        "badgedock_overdue_loans",
        "badgedock_mdm_up",
        "badgedock_mdm_last_success_timestamp_seconds",
        "badgedock_mdm_transient_failures_total",
        "badgedock_outbox_depth",
        "badgedock_outbox_oldest_waiting_timestamp_seconds",
        "badgedock_taps_total{outcome=\"accepted\"}",
        "badgedock_taps_total{outcome=\"refused\"}",
        "badgedock_checkouts_total",
        "badgedock_checkins_total",
        "badgedock_checkouts_refused_total",
        "badgedock_store_writable",
    ] {
        assert!(
            value(&scrape, series).is_some(),
            "{series} missing:\n{scrape}"
        );
    }
    assert_eq!(
        value(&scrape, "badgedock_phones{state=\"ready\"}"),
        Some(2.0)
    );
    assert_eq!(value(&scrape, "badgedock_mdm_up"), Some(1.0));
    assert_eq!(value(&scrape, "badgedock_store_writable"), Some(1.0));
    let (ok, report) = promtool(&["check", "metrics"], Some(&scrape), station.dir.path());
    assert!(ok, "promtool check metrics:\n{report}\n{scrape}");

    // A check-out moves the gauges, and the assignment's success is timestamped.
    assert!(station.tap("04A1B2C3D4E5F6").status.success());
    station.undock(&PHONES[0]);
    sim.wait_enrollment_user(PHONES[0].serial, "alice", Duration::from_secs(10));
    station.wait_status(Duration::from_secs(10), "the loan", |s| {
        s["loans"].as_array().is_some_and(|l| l.len() == 1) && s["mdm"]["waiting"] == 0
    });
    let scrape = http_get(&url);
    assert_eq!(
        value(&scrape, "badgedock_phones{state=\"ready\"}"),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(value(&scrape, "badgedock_phones{state=\"out\"}"), Some(1.0));
    assert_eq!(
        value(&scrape, "badgedock_taps_total{outcome=\"accepted\"}"),
        Some(1.0)
    );
    assert!(
        value(&scrape, "badgedock_mdm_last_success_timestamp_seconds").is_some_and(|t| t > 1.7e9),
        "{scrape}"
    );
    let (ok, report) = promtool(&["check", "metrics"], Some(&scrape), station.dir.path());
    assert!(ok, "promtool check metrics:\n{report}");

    // A check-out Workspace ONE refuses counts as refused.
    assert!(station.tap("B0B0B0B0").status.success());
    let started = std::time::Instant::now();
    loop {
        let scrape = http_get(&url);
        if value(&scrape, "badgedock_checkouts_refused_total") == Some(1.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "refusal not counted:\n{scrape}\n{}",
            station.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_shipped_rules_pass_promtool_check_and_their_unit_tests() {
    let monitoring = repo_root().join("monitoring");
    let (ok, report) = promtool(
        &["check", "rules", "badgedock.rules.yml"],
        None,
        &monitoring,
    );
    assert!(ok, "{report}");
    assert!(report.contains("SUCCESS: 6 rules found"), "{report}");
    let (ok, report) = promtool(
        &["test", "rules", "badgedock.rules.test.yml"],
        None,
        &monitoring,
    );
    assert!(ok, "{report}");
    // The Grafana dashboard is JSON whose queries name only exported series.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring.join("grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dashboard["uid"], "badgedock");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8));
}
