//! The daemon end to end through the real binary: `badgedock run` against the simulator
//! process over loopback, a temporary sysfs tree as the dock, taps through the control
//! socket with `badgedock tap`, and the simulator's own record of calls as the proof.

use std::time::Duration;

use crate::support::station::{bin, slot_state, Phone, SimProcess, StationDir};
use std::process::{Command, Stdio};

/// Two demo phones (they are in the simulator's built-in seed, enrolled to staging).
pub const PHONES: [Phone; 2] = [
    Phone {
        slot: "1",
        port: "1-1.1",
        vendor: "05ac",
        serial: "00008110000A1B2C3D4E801E",
    },
    Phone {
        slot: "2",
        port: "1-1.2",
        vendor: "05ac",
        serial: "00008110001C2D3E4F5A602E",
    },
];

pub const BADGES: [(&str, &str, &str); 3] = [
    ("04A1B2C3D4E5F6", "alice", "Alice Martin"),
    ("1234ABCD", "alice2", "Alice Dubois"),
    ("0A1B2C3D", "carol", "Carol Nguyen"),
];

fn all_available(status: &serde_json::Value) -> bool {
    status["slots"]
        .as_array()
        .is_some_and(|slots| slots.iter().all(|slot| slot["state"] == "available"))
        && status["mdm"]["waiting"] == 0
}

#[test]
fn tap_undock_dock_assigns_and_returns_the_phone() {
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &PHONES, &BADGES, "");
    let mut daemon = station.start_daemon();
    station.wait_status(
        Duration::from_secs(15),
        "both phones identified and available",
        all_available,
    );

    let tap = station.tap("04A1B2C3D4E5F6");
    let stdout = String::from_utf8_lossy(&tap.stdout);
    assert!(
        tap.status.success(),
        "tap failed: {}\n{}",
        String::from_utf8_lossy(&tap.stderr),
        station.log()
    );
    assert!(stdout.contains("Alice Martin: take slot 1"), "{stdout}");

    // The assignment reaches Workspace ONE while the nurse walks to the slot.
    sim.wait_enrollment_user(PHONES[0].serial, "alice", Duration::from_secs(10));

    station.undock(&PHONES[0]);
    station.wait_status(Duration::from_secs(10), "alice's loan", |s| {
        s["loans"]
            .as_array()
            .is_some_and(|loans| loans.iter().any(|l| l["username"] == "alice"))
    });
    station.dock(&PHONES[0]);
    station.wait_status(Duration::from_secs(15), "slot 1 checked in", all_available);
    assert_eq!(
        sim.enrollment_user(PHONES[0].serial).as_deref(),
        Some(badgedock::uemsim::DEMO_STAGING_USER)
    );

    // A warm check-out costs exactly one call: the PATCH (plus the workflow's sync).
    let before = sim.journal().len();
    let tap = station.tap("1234ABCD");
    assert!(
        tap.status.success(),
        "{}",
        String::from_utf8_lossy(&tap.stderr)
    );
    station.wait_status(Duration::from_secs(10), "bob's work done", |s| {
        s["mdm"]["waiting"] == 0
    });
    let calls: Vec<serde_json::Value> = sim.journal().into_iter().skip(before).collect();
    let patches = calls.iter().filter(|c| c["method"] == "PATCH").count();
    assert_eq!(patches, 1, "{calls:#?}");

    assert_eq!(
        daemon.terminate(Duration::from_secs(5)),
        Some(0),
        "SIGTERM must stop the daemon cleanly within 5 s"
    );
}

#[test]
fn refused_taps_exit_non_zero_with_the_reason() {
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &PHONES[..1], &BADGES, "");
    let _daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(15), "phone available", all_available);

    let unknown = station.tap("FEEDFACE");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Badge not recognised"));

    assert!(station.tap("04A1B2C3D4E5F6").status.success());
    let second = station.tap("1234ABCD");
    assert_eq!(
        second.status.code(),
        Some(1),
        "only one phone: bob must be refused"
    );
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("no phone ready"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // The refusals are in the audit, redacted.
    let audit = station.cli(&["audit", "export", "--csv"]);
    let csv = String::from_utf8_lossy(&audit.stdout);
    assert!(csv.contains("…FACE"), "{csv}");
    assert!(
        !csv.contains("FEEDFACE"),
        "a full badge number leaked into the audit"
    );
}

#[test]
fn status_names_every_slot_and_workspace_one() {
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &PHONES, &BADGES, "");
    let _daemon = station.start_daemon();
    let status = station.wait_status(Duration::from_secs(15), "available", all_available);
    assert_eq!(slot_state(&status, "1"), "available");
    assert!(
        status["slots"][0]["mdm-id"].is_number() || status["slots"][0]["mdm_id"].is_number(),
        "{status:#}"
    );
    let text = station.cli(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("2/2 phones ready"), "{text}");
    assert!(
        text.contains("00008110-000A1B2C3D4E801E"),
        "UDIDs are shown in Workspace ONE's spelling: {text}"
    );
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &PHONES[..1], &BADGES, "");
    let _daemon = station.start_daemon();
    let second = std::process::Command::new(crate::support::station::bin())
        .args(["run", "--config"])
        .arg(station.config())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("already") || stderr.contains("locked"),
        "{stderr}"
    );
}

#[test]
fn a_phone_checked_out_elsewhere_is_checked_in_on_first_sight() {
    // Device 105 of the built-in seed is enrolled to carol, as if she took it at another
    // station; docking it here must give it back to the staging user.
    let foreign = Phone {
        slot: "3",
        port: "1-1.3",
        vendor: "05ac",
        serial: "0F1E2D3C4B5A69788796A5B4C3D2E1F00A1B2C3D",
    };
    let sim = SimProcess::start(&[]);
    assert_eq!(
        sim.enrollment_user(foreign.serial).as_deref(),
        Some("carol")
    );
    let station = StationDir::new(&sim.url, &PHONES[..1], &BADGES, "");
    let _daemon = station.start_daemon_with_slots(&[&PHONES[0], &foreign]);
    station.dock(&foreign);
    station.wait_status(Duration::from_secs(15), "foreign phone checked in", |s| {
        slot_state(s, "3") == "available"
    });
    assert_eq!(
        sim.enrollment_user(foreign.serial).as_deref(),
        Some(badgedock::uemsim::DEMO_STAGING_USER)
    );
    let audit = station.cli(&["audit", "export", "--csv"]);
    assert!(String::from_utf8_lossy(&audit.stdout).contains("checked out elsewhere"));
}

#[test]
fn a_personal_phone_is_left_alone_where_check_in_erases() {
    // Issue 12, class 1, through the real binary: device 106 of the built-in seed is
    // Carol's own iPhone (employee-owned, never staged). Docked at a station whose
    // check-in erases, it must get no command and no user change: shown as not a
    // cabinet phone, never offered.
    let personal = Phone {
        slot: "3",
        port: "1-1.3",
        vendor: "05ac",
        serial: "00008101000E1F2A3B4C5D6E",
    };
    let sim = SimProcess::start(&[]);
    assert_eq!(
        sim.enrollment_user(personal.serial).as_deref(),
        Some("carol")
    );
    let station = StationDir::new(
        &sim.url,
        &PHONES[..1],
        &BADGES,
        "[workflow.checkin]\napple = [\"enterprise-wipe\"]\n",
    );
    let _daemon = station.start_daemon_with_slots(&[&PHONES[0], &personal]);
    station.wait_status(Duration::from_secs(15), "slot 1 ready", |s| {
        slot_state(s, "1") == "available"
    });
    station.dock(&personal);
    station.wait_status(
        Duration::from_secs(15),
        "the personal phone shown foreign",
        |s| slot_state(s, "3") == "foreign",
    );
    // Whatever the station would send, it would send now: give it a moment.
    std::thread::sleep(Duration::from_secs(3));
    let sent: Vec<(String, String)> = sim
        .commands()
        .into_iter()
        .filter(|(device, _)| device == personal.serial)
        .collect();
    assert!(
        sent.is_empty(),
        "commands sent to a personal phone: {sent:?}"
    );
    assert!(
        !sim.enrollment_changes()
            .iter()
            .any(|(device, _)| device == personal.serial),
        "the personal phone's user was changed"
    );
    assert_eq!(
        sim.enrollment_user(personal.serial).as_deref(),
        Some("carol")
    );
    // A tap is never sent to it: the one cabinet phone is offered instead.
    let tap = station.tap("04A1B2C3D4E5F6");
    let answer = String::from_utf8_lossy(&tap.stdout);
    assert!(answer.contains("take slot 1"), "{answer}");
    let audit = station.cli(&["audit", "export", "--csv"]);
    assert!(
        String::from_utf8_lossy(&audit.stdout).contains("foreign-device"),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}

#[test]
fn a_store_without_its_wal_is_refused_and_the_right_one_starts() {
    // Issue 12, class 13, through the real binary: after kill -9 the loan lives in the
    // WAL. Started from the .sqlite3 file alone, the daemon must refuse (it would forget
    // a phone out with a nurse); with the WAL put back, it starts and the loan is there.
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &PHONES, &BADGES, "");
    let mut daemon = station.start_daemon();
    station.wait_status(
        Duration::from_secs(15),
        "both phones available",
        all_available,
    );
    let tap = station.tap("04A1B2C3D4E5F6");
    assert!(
        tap.status.success(),
        "{}",
        String::from_utf8_lossy(&tap.stderr)
    );
    station.undock(&PHONES[0]);
    station.wait_status(Duration::from_secs(10), "alice's loan", |s| {
        s["loans"]
            .as_array()
            .is_some_and(|loans| loans.iter().any(|l| l["username"] == "alice"))
    });
    daemon.kill();

    let state = station.dir.path().join("state");
    let wal = state.join("badgedock.sqlite3-wal");
    let aside = station.dir.path().join("wal-aside");
    assert!(wal.exists(), "kill -9 leaves the WAL beside the store");
    std::fs::rename(&wal, &aside).unwrap();
    let _ = std::fs::remove_file(state.join("badgedock.sqlite3-shm"));
    let refused = Command::new(bin())
        .args(["run", "--config"])
        .arg(station.config())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "started from a store without its WAL: {stderr}"
    );
    assert!(
        // Behind its mark, or (when even the store's id was only in the WAL) another
        // store: either way refused, with the way back.
        stderr.contains("refusing to start from this store")
            && (stderr.contains("behind") || stderr.contains("not the one this station last used"))
            && stderr.contains("accept-store"),
        "the refusal says what happened and what to do: {stderr}"
    );

    // IT puts the WAL back: the station starts with Alice's loan.
    let _ = std::fs::remove_file(state.join("badgedock.sqlite3-shm"));
    std::fs::rename(&aside, &wal).unwrap();
    let _daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(10), "alice's loan kept", |s| {
        s["loans"]
            .as_array()
            .is_some_and(|loans| loans.iter().any(|l| l["username"] == "alice"))
    });
}

#[test]
fn metrics_are_scraped_from_a_running_daemon() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(
        &sim.url,
        &PHONES,
        &BADGES,
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let _daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(15), "available", all_available);
    assert!(station.tap("04A1B2C3D4E5F6").status.success());
    assert_eq!(station.tap("FEEDFACE").status.code(), Some(1));
    station.undock(&PHONES[0]);
    station.wait_status(Duration::from_secs(10), "loan", |s| {
        s["loans"].as_array().is_some_and(|l| !l.is_empty())
    });
    let body = crate::support::station::http_get(&format!("http://127.0.0.1:{port}/metrics"));
    for expected in [
        "badgedock_taps_total{outcome=\"accepted\"} 1",
        "badgedock_taps_total{outcome=\"refused\"} 1",
        "badgedock_checkouts_total 1",
        "badgedock_outbox_depth",
        "badgedock_mdm_request_duration_seconds_bucket",
    ] {
        assert!(body.contains(expected), "missing {expected:?} in:\n{body}");
    }
    assert!(
        !body.contains("04A1B2C3D4E5F6") && !body.contains("alice"),
        "badges and names stay out of metrics"
    );
}

#[test]
fn only_root_or_the_admin_group_may_change_state() {
    use std::os::unix::fs::PermissionsExt;
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &PHONES, &BADGES, "");
    let _daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(15), "available", all_available);
    // Let an unprivileged user reach the config and the socket: the daemon itself must
    // still refuse its state-changing commands, judged by the peer's credentials.
    std::fs::set_permissions(station.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        station.dir.path().join("control.sock"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(crate::support::station::bin())
            .args(args)
            .arg("--config")
            .arg(station.config())
            .output()
            .unwrap()
    };
    let tap = as_nobody(&["tap", "04A1B2C3D4E5F6"]);
    assert_eq!(
        tap.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&tap.stderr)
    );
    assert!(String::from_utf8_lossy(&tap.stderr).contains("admin group"));
    let status = as_nobody(&["status"]);
    assert!(
        status.status.success(),
        "reading the status is open: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    // Nothing changed.
    assert!(all_available(&station.status_json().unwrap()));
}
