//! Supervised enrolment through the real binary: an unknown badge, then a supervisor's
//! badge (enroller role), then `badgedock badges enroll USERNAME`. The username must be
//! in the directory and exactly once in Workspace ONE (the simulator's tenant has two
//! accounts named "bob"); the audit records who approved.

use std::time::Duration;

use crate::daemon::PHONES;
use crate::support::station::{SimProcess, StationDir};

const NEW_BADGE: &str = "FEEDFACE";
const SUPERVISOR: &str = "5A5A5A5A";

fn station(sim: &SimProcess) -> StationDir {
    let station = StationDir::new(&sim.url, &PHONES, &[], "");
    std::fs::write(
        station.dir.path().join("badges.csv"),
        "badge,username,display-name,groups,roles\n\
         04A1B2C3D4E5F6,alice,Alice Martin,nursing,\n\
         0A1B2C3D,alice2,Alice Dubois,nursing,\n\
         0B0B0B0B,bob,Bob Smith,nursing,\n\
         5A5A5A5A,sup,Sam Supervisor,charge,enroller\n",
    )
    .unwrap();
    station
}

fn enroll(station: &StationDir, username: &str) -> std::process::Output {
    station.cli(&["badges", "enroll", username])
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn an_approved_badge_is_enrolled_and_then_checks_out() {
    let sim = SimProcess::start(&[]);
    let station = station(&sim);
    let _daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(15), "available", |s| {
        s["mdm"]["waiting"] == 0 && s["slots"][0]["state"] == "available"
    });

    assert_eq!(
        station.tap(NEW_BADGE).status.code(),
        Some(1),
        "unknown before enrolment"
    );
    let approval = station.tap(SUPERVISOR);
    assert!(approval.status.success(), "{}", stderr(&approval));
    assert!(String::from_utf8_lossy(&approval.stdout).contains("approved by Sam Supervisor"));
    let enrolled = enroll(&station, "alice2");
    assert!(enrolled.status.success(), "{}", stderr(&enrolled));

    let tap = station.tap(NEW_BADGE);
    assert!(tap.status.success(), "{}", stderr(&tap));
    assert!(String::from_utf8_lossy(&tap.stdout).contains("Alice Dubois: take slot"));
    let audit =
        String::from_utf8_lossy(&station.cli(&["audit", "export", "--csv"]).stdout).to_string();
    assert!(audit.contains("approved by sup"), "{audit}");
    assert!(
        !audit.contains(NEW_BADGE),
        "the audit keeps badges redacted"
    );
    let list = String::from_utf8_lossy(&station.cli(&["badges", "list"]).stdout).to_string();
    assert!(list.contains("alice2") && list.contains("…FACE"), "{list}");
}

#[test]
fn enrolment_needs_an_approval_a_known_username_and_one_workspace_one_account() {
    let sim = SimProcess::start(&[]);
    let station = station(&sim);
    let _daemon = station.start_daemon();

    // Not approved: an unknown tap alone opens nothing.
    assert_eq!(station.tap(NEW_BADGE).status.code(), Some(1));
    let refused = enroll(&station, "alice2");
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("no enrolment is approved"),
        "{}",
        stderr(&refused)
    );

    // Approved, but the username is not in the directory.
    assert!(station.tap(SUPERVISOR).status.success());
    let unknown = enroll(&station, "nobody");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("not in the badge directory"),
        "{}",
        stderr(&unknown)
    );

    // In the directory, but twice in Workspace ONE.
    let ambiguous = enroll(&station, "bob");
    assert_eq!(ambiguous.status.code(), Some(1));
    assert!(
        stderr(&ambiguous).contains("matches 2 users in Workspace ONE"),
        "{}",
        stderr(&ambiguous)
    );

    // Nothing was enrolled by the refusals.
    assert_eq!(station.tap(NEW_BADGE).status.code(), Some(1));
}
