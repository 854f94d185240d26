//! `badgedock doctor` through the real binary against the simulator process over
//! loopback: a healthy station passes every check; then one fault of each kind (bad
//! secret, wrong tenant code, staging user missing or duplicated, a docked phone unknown
//! or enrolled without staging, clock skew, outage) gives its own failed line and fix.
//! The installation test checks a phone out and back in and is confirmed in the
//! simulator's own state.

use std::process::Output;

use crate::daemon::{BADGES, PHONES};
use crate::support::station::{Phone, SimProcess, StationDir};

const TENANT_CODE: &str = "SIMTENANT4WEST";

/// A station with the demo phones docked, the tenant code and the given secret.
fn station(sim: &SimProcess, phones: &[Phone], secret: &str, tenant: &str) -> StationDir {
    let station = StationDir::new(&sim.url, phones, &BADGES, "");
    let root = station.dir.path();
    std::fs::write(root.join("client-secret"), format!("{secret}\n")).unwrap();
    std::fs::write(root.join("tenant-code"), format!("{tenant}\n")).unwrap();
    edit_config(&station, |config| {
        config.replacen(
            "request-timeout-ms",
            "tenant-code-file = \"tenant-code\"\nrequest-timeout-ms",
            1,
        )
    });
    station
}

fn healthy_station(sim: &SimProcess) -> StationDir {
    station(
        sim,
        &PHONES,
        badgedock::uemsim::DEMO_CLIENT_SECRET,
        TENANT_CODE,
    )
}

fn edit_config(station: &StationDir, edit: impl Fn(String) -> String) {
    let text = std::fs::read_to_string(station.config()).unwrap();
    std::fs::write(station.config(), edit(text)).unwrap();
}

fn doctor(station: &StationDir, args: &[&str]) -> (i32, String) {
    let output: Output = std::process::Command::new(crate::support::station::bin())
        .arg("doctor")
        .arg("--config")
        .arg(station.config())
        .args(args)
        .env("LANG", "C.UTF-8")
        .env("TERM", "xterm")
        .output()
        .expect("run doctor");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (
        output.status.code().unwrap_or(-1),
        format!("{stdout}{stderr}"),
    )
}

/// The failed lines (✗) of a transcript.
fn failures(transcript: &str) -> Vec<&str> {
    transcript
        .lines()
        .filter(|line| line.starts_with('✗'))
        .collect()
}

/// Asserts exactly one failed line, containing `line`, followed by a fix containing `fix`.
fn assert_one_failure(transcript: &str, line: &str, fix: &str) {
    let failed = failures(transcript);
    assert_eq!(failed.len(), 1, "expected one ✗ line:\n{transcript}");
    assert!(failed[0].contains(line), "{line:?} not in:\n{transcript}");
    let after: Vec<&str> = transcript
        .lines()
        .skip_while(|l| !l.starts_with('✗'))
        .collect();
    assert!(
        after
            .get(1)
            .is_some_and(|l| l.trim_start().starts_with("fix:") && l.contains(fix)),
        "fix {fix:?} missing under the failure:\n{transcript}"
    );
}

#[test]
fn a_healthy_station_passes_every_check() {
    let sim = SimProcess::start(&[]);
    let station = healthy_station(&sim);
    let (code, transcript) = doctor(&station, &["--badge", "04A1B2C3D4E5F6"]);
    assert_eq!(code, 0, "{transcript}");
    assert!(failures(&transcript).is_empty(), "{transcript}");
    for expected in [
        "✓ Workspace ONE credentials: OAuth token issued by 127.0.0.1:",
        "✓ Workspace ONE API access: 127.0.0.1:",
        "answered with the tenant code",
        "✓ staging user: \"staging-4west\" exists exactly once and is active",
        "✓ clock: within",
        "✓ slot 1: 4W iPhone 01 (00008110-000A1B2C3D4E801E) enrolled, staged by staging-4west, Apple",
        "✓ slot 2: 4W iPhone 02",
        "✓ badge directory: answers for badge …E5F6: Alice Martin (alice)",
        "! readers: none configured",
        "✓ disk: ",
        "passed, 1 warnings, 0 failed",
    ] {
        assert!(transcript.contains(expected), "{expected:?} missing:\n{transcript}");
    }
    // The full badge number never appears.
    assert!(!transcript.contains("04A1B2C3D4E5F6"), "{transcript}");
    // ASCII marks on request.
    let (code, ascii) = doctor(&station, &["--ascii"]);
    assert_eq!(code, 0, "{ascii}");
    assert!(ascii.contains("[ok]   staging user"), "{ascii}");
    assert!(!ascii.contains('✓'), "{ascii}");
}

#[test]
fn a_bad_secret_is_told_as_the_credentials_with_their_keys() {
    let sim = SimProcess::start(&[]);
    let station = station(&sim, &PHONES, "not-the-secret", TENANT_CODE);
    let (code, transcript) = doctor(&station, &[]);
    assert_eq!(code, 1, "{transcript}");
    assert_one_failure(
        &transcript,
        "Workspace ONE credentials: Workspace ONE refused the credentials (HTTP 400)",
        "uem.auth.client-id and uem.auth.client-secret-file",
    );
    assert!(!transcript.contains("not-the-secret"), "{transcript}");
}

#[test]
fn a_wrong_tenant_code_is_told_as_the_tenant_code() {
    let sim = SimProcess::start(&[]);
    let station = station(
        &sim,
        &PHONES,
        badgedock::uemsim::DEMO_CLIENT_SECRET,
        "WRONGTENANT",
    );
    let (code, transcript) = doctor(&station, &[]);
    assert_eq!(code, 1, "{transcript}");
    assert_one_failure(
        &transcript,
        "refused the tenant code or the account's rights (HTTP 403, errorCode 1013)",
        "uem.tenant-code-file",
    );
    assert!(!transcript.contains("WRONGTENANT"), "{transcript}");
}

#[test]
fn a_missing_staging_user_is_named() {
    let sim = SimProcess::start(&[]);
    let station = healthy_station(&sim);
    edit_config(&station, |c| {
        c.replace("\"staging-4west\"", "\"staging-5east\"")
    });
    let (code, transcript) = doctor(&station, &[]);
    assert_eq!(code, 1, "{transcript}");
    // The phones are then enrolled to someone else than the configured staging user.
    let first = failures(&transcript)[0];
    assert!(
        first
            .contains("staging user: Workspace ONE has no account named exactly \"staging-5east\""),
        "{transcript}"
    );
    assert!(
        transcript.contains("fix: create the multi-user staging account \"staging-5east\""),
        "{transcript}"
    );
}

#[test]
fn a_duplicated_staging_user_is_refused() {
    let mut seed: serde_json::Value =
        serde_json::from_str(badgedock::uemsim::DEFAULT_SEED_JSON).unwrap();
    seed["users"].as_array_mut().unwrap().push(serde_json::json!({
        "id": 9100, "username": "staging-4west", "first-name": "Copy", "last-name": "Of staging",
        "staging": "multi", "group-id": 570
    }));
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.json");
    std::fs::write(&seed_path, seed.to_string()).unwrap();
    let sim = SimProcess::start(&["--seed", seed_path.to_str().unwrap()]);
    let station = healthy_station(&sim);
    let (code, transcript) = doctor(&station, &[]);
    assert_eq!(code, 1, "{transcript}");
    assert_one_failure(
        &transcript,
        "staging user: Workspace ONE has 2 accounts named exactly \"staging-4west\"",
        "keep one \"staging-4west\" account",
    );
}

#[test]
fn an_unknown_docked_phone_is_named_by_slot() {
    let sim = SimProcess::start(&[]);
    let stranger = Phone {
        slot: "3",
        port: "1-1.3",
        vendor: "05ac",
        serial: "00008110000FFFFFFFFFFFFF",
    };
    let station = station(
        &sim,
        &[PHONES[0], PHONES[1], stranger],
        badgedock::uemsim::DEMO_CLIENT_SECRET,
        TENANT_CODE,
    );
    let (code, transcript) = doctor(&station, &[]);
    assert_eq!(code, 1, "{transcript}");
    assert_one_failure(
        &transcript,
        "slot 3: phone 00008110-000FFFFFFFFFFFFF is not in Workspace ONE",
        "enrol it in this tenant through multi-user staging as \"staging-4west\"",
    );
}

#[test]
fn a_phone_enrolled_without_staging_is_named() {
    let sim = SimProcess::start(&[]);
    let personal = Phone {
        slot: "3",
        port: "1-1.3",
        vendor: "05ac",
        serial: "00008101000E1F2A3B4C5D6E",
    };
    let station = station(
        &sim,
        &[PHONES[0], personal],
        badgedock::uemsim::DEMO_CLIENT_SECRET,
        TENANT_CODE,
    );
    let (code, transcript) = doctor(&station, &[]);
    assert_eq!(code, 1, "{transcript}");
    assert_one_failure(
        &transcript,
        "slot 3: ",
        "enrol it again through multi-user staging as \"staging-4west\"",
    );
    assert!(
        transcript.contains("is enrolled to carol, not through the staging user \"staging-4west\""),
        "{transcript}"
    );
}

#[test]
fn clock_skew_fails_beyond_five_minutes() {
    let sim = SimProcess::start(&["--fault", "clock-skew:400"]);
    let station = healthy_station(&sim);
    let (code, transcript) = doctor(&station, &[]);
    assert_eq!(code, 1, "{transcript}");
    assert_one_failure(
        &transcript,
        "clock: this station is 6 min behind Workspace ONE (more than 5 min)",
        "timedatectl set-ntp true",
    );
}

#[test]
fn an_outage_is_told_as_unreachable_with_what_to_check() {
    let sim = SimProcess::start(&["--fault", "outage:300s"]);
    let station = healthy_station(&sim);
    let (code, transcript) = doctor(&station, &[]);
    assert_eq!(code, 1, "{transcript}");
    assert_one_failure(
        &transcript,
        "Workspace ONE credentials: Workspace ONE is failing (HTTP 503)",
        "the station keeps taps and retries while it is down",
    );
    // Nothing listening at all: unreachable, with the host to check.
    drop(sim);
    let (code, transcript) = doctor(&station, &[]);
    assert_eq!(code, 1, "{transcript}");
    assert_one_failure(
        &transcript,
        "Workspace ONE credentials: Workspace ONE is unreachable",
        "check that this station reaches 127.0.0.1:",
    );
}

#[test]
fn the_installation_test_checks_a_phone_out_and_back_in() {
    let sim = SimProcess::start(&[]);
    let station = healthy_station(&sim);
    let (code, transcript) = doctor(&station, &["--check-out", "1", "--user", "alice"]);
    assert_eq!(code, 0, "{transcript}");
    assert!(
        transcript.contains("✓ installation test, check-out: Workspace ONE shows alice as the enrolment user of slot 1"),
        "{transcript}"
    );
    assert!(
        transcript.contains("✓ installation test, check-in: Workspace ONE shows staging-4west"),
        "{transcript}"
    );
    // The simulator saw both changes, in order, and the phone is back with staging.
    assert_eq!(
        sim.enrollment_changes(),
        vec![
            (PHONES[0].serial.to_string(), "alice".to_string()),
            (PHONES[0].serial.to_string(), "staging-4west".to_string()),
        ]
    );

    // An ambiguous user is refused before anything changes.
    let (code, transcript) = doctor(&station, &["--check-out", "1", "--user", "bob"]);
    assert_eq!(code, 1, "{transcript}");
    assert!(transcript.contains("ambiguous user"), "{transcript}");
    assert_eq!(sim.enrollment_changes().len(), 2);

    // Beside a running daemon it refuses and says so.
    let _daemon = station.start_daemon();
    let (code, transcript) = doctor(&station, &["--check-out", "1", "--user", "alice"]);
    assert_eq!(code, 1, "{transcript}");
    assert!(
        transcript.contains("a badgedock daemon is running on"),
        "{transcript}"
    );
    assert!(
        transcript.contains("systemctl stop badgedock"),
        "{transcript}"
    );
}
