//! Reload on SIGHUP through the real binary: a good change (another badge file) takes
//! effect without a restart and says what needs one; a broken config is refused while
//! the daemon keeps running and answering taps; another stopping signal is named.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::daemon::{BADGES, PHONES};
use crate::support::station::{SimProcess, StationDir};

fn wait_log(station: &StationDir, what: &str) {
    let started = std::time::Instant::now();
    while !station.log().contains(what) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what:?} never logged:\n{}",
            station.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_a_good_config_and_refuses_a_broken_one() {
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &PHONES, &BADGES, "");
    let mut daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(15), "phones ready", |s| {
        s["slots"][0]["state"] == "available" && s["slots"][1]["state"] == "available"
    });
    let pid = Pid::from_raw(daemon.pid());

    // Dave's badge is only in a second badge file, which a reload puts in force.
    let root = station.dir.path();
    let mut csv = std::fs::read_to_string(root.join("badges.csv")).unwrap();
    csv.push_str("CAFE0001,dave,Dave Okafor\n");
    std::fs::write(root.join("badges-2.csv"), csv).unwrap();
    let refused = station.tap("CAFE0001");
    assert_eq!(refused.status.code(), Some(1), "unknown before the reload");
    let good = std::fs::read_to_string(station.config())
        .unwrap()
        .replace("path = \"badges.csv\"", "path = \"badges-2.csv\"")
        .replace(
            "{ label = \"2\", port = \"1-1.2\" }",
            "{ label = \"2\", port = \"1-1.2\" }, { label = \"3\", port = \"1-1.3\" }",
        );
    std::fs::write(station.config(), &good).unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    wait_log(&station, "configuration reloaded: badge directory file ");
    assert!(
        station
            .log()
            .contains("not changed until a restart: the dock's slots"),
        "{}",
        station.log()
    );
    let tap = station.tap("CAFE0001");
    assert!(
        tap.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&tap.stdout),
        station.log()
    );
    assert!(String::from_utf8_lossy(&tap.stdout).contains("Dave Okafor"));

    // A broken config is refused; the daemon keeps the one in force and answers taps.
    std::fs::write(station.config(), good.replace("[dock]", "[dock\n")).unwrap();
    kill(pid, Signal::SIGHUP).unwrap();
    wait_log(
        &station,
        "configuration reload refused, still running on the previous one",
    );
    assert!(daemon.child.try_wait().unwrap().is_none(), "daemon stopped");
    // `badgedock tap` itself reads the config file: put the text back (no SIGHUP) so
    // the client runs, and tap to see the daemon still answering.
    std::fs::write(station.config(), &good).unwrap();
    let tap = station.tap("0A1B2C3D");
    assert!(
        tap.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&tap.stderr),
        station.log()
    );
    assert!(String::from_utf8_lossy(&tap.stdout).contains("Carol Nguyen"));

    // Any other stopping signal is named.
    kill(pid, Signal::SIGUSR1).unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        station.log().contains("badgedock stopping on SIGUSR1"),
        "{}",
        station.log()
    );
}
