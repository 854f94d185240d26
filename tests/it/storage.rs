//! Storage faults through the real binary: the state folder's disk fills up, or the
//! store's files stop taking writes, while `badgedock run` serves taps. The daemon must
//! stay up (same PID), refuse the tap it cannot record with the plain message, say so in
//! `status`, the journal (stderr here) and `badgedock_store_writable`, keep the dock
//! event that came meanwhile, and resume by itself once the fault is fixed, with the
//! audit chain intact.
//!
//! The full disk is a tmpfs of 4 MiB mounted on the state folder (needs root: CAP_SYS_ADMIN
//! for mount(2)); the refused writes of a running daemon are the immutable attribute
//! (chattr +i) on the store's files, on a file system that enforces it for open files
//! (ext4, xfs, btrfs; not tmpfs) — a running daemon's file system cannot be remounted
//! read-only (its open files make mount(2) answer EBUSY), and the kernel's own emergency
//! read-only remount cannot be undone without unmounting. A folder read-only at start is
//! a tmpfs remounted `ro` between two runs, then `rw` while the daemon waits. Where a
//! method is impossible the test says why on stderr and skips.
// A test that cannot run here says so on stderr (and why) instead of passing silently.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::daemon::{BADGES, PHONES};
use crate::support::station::{http_get, slot_state, StationDir};

/// A tmpfs mounted for the test, unmounted on drop (also when the test fails).
struct Mount {
    path: PathBuf,
}

impl Mount {
    fn tmpfs(path: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(path).map_err(|err| err.to_string())?;
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0750"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .map_err(|err| format!("cannot run mount: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Mount {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: a process of a failed test may still hold a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Files made immutable for the test, made mutable again on drop.
struct Immutable {
    files: Vec<PathBuf>,
}

impl Immutable {
    fn set(files: Vec<PathBuf>) -> Immutable {
        let guard = Immutable { files };
        for file in &guard.files {
            let status = Command::new("chattr").arg("+i").arg(file).status();
            assert!(
                status.is_ok_and(|status| status.success()),
                "chattr +i {}",
                file.display()
            );
        }
        guard
    }

    fn clear(&mut self) {
        for file in self.files.drain(..) {
            let _ = Command::new("chattr").arg("-i").arg(&file).status();
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Whether a file in `dir` made immutable refuses a write through a descriptor opened
/// before (what the daemon's SQLite connection holds).
fn immutable_refuses_open_writers(dir: &Path) -> Result<(), String> {
    use std::io::Write as _;
    let probe = dir.join("chattr-probe");
    let mut file = std::fs::File::create(&probe).map_err(|err| err.to_string())?;
    let set = Command::new("chattr")
        .arg("+i")
        .arg(&probe)
        .output()
        .map_err(|err| format!("cannot run chattr: {err}"))?;
    if !set.status.success() {
        let _ = std::fs::remove_file(&probe);
        return Err(format!(
            "chattr +i is not supported here: {}",
            String::from_utf8_lossy(&set.stderr).trim()
        ));
    }
    let refused = file.write_all(b"x").and_then(|()| file.sync_all()).is_err();
    let _ = Command::new("chattr").arg("-i").arg(&probe).status();
    let _ = std::fs::remove_file(&probe);
    if refused {
        Ok(())
    } else {
        Err("this file system lets open files be written after chattr +i".into())
    }
}

fn metrics_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn writable_gauge(port: u16) -> String {
    let body = http_get(&format!("http://127.0.0.1:{port}/metrics"));
    body.lines()
        .find(|line| line.starts_with("badgedock_store_writable "))
        .unwrap_or("badgedock_store_writable missing")
        .to_string()
}

fn headline(status: &serde_json::Value) -> String {
    status["instruction"]["headline"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

const FAULT_HEADLINE: &str = "STATION CANNOT RECORD TAPS — CALL IT";
const FAULT_REFUSAL: &str = "station cannot record taps — call IT";

/// How the fault is made and fixed.
enum Fault {
    Full { filler: PathBuf },
    Immutable(Immutable),
}

/// The whole story for one kind of fault: a loan recorded before, a refused tap and a
/// phone docked during the fault, recovery without a restart, the audit intact.
fn station_survives(kind: &str, state: &Path, station: &StationDir, port: u16, words: &str) {
    let mut daemon = station.start_daemon();
    let pid = daemon.pid();
    let available = |s: &serde_json::Value| {
        s["slots"]
            .as_array()
            .is_some_and(|slots| slots.iter().all(|slot| slot["state"] == "available"))
            && s["mdm"]["waiting"] == 0
    };
    station.wait_status(Duration::from_secs(15), "phones available", available);
    assert_eq!(writable_gauge(port), "badgedock_store_writable 1");

    // Recorded before the fault: alice's loan.
    let tap = station.tap(BADGES[0].0);
    assert!(tap.status.success(), "{}", station.log());
    station.wait_status(Duration::from_secs(10), "alice's work sent", |s| {
        s["mdm"]["waiting"] == 0
    });
    station.undock(&PHONES[0]);
    station.wait_status(Duration::from_secs(10), "alice's loan", |s| {
        s["loans"].as_array().is_some_and(|loans| loans.len() == 1)
    });

    let mut fault = match kind {
        "full" => {
            let filler = state.join("filler");
            fill(&filler);
            Fault::Full { filler }
        }
        _ => {
            // The database and its WAL; not the -shm index, which SQLite maps into memory
            // (a refused write there is a SIGBUS, a different fault from a disk's).
            let files = vec![
                state.join("badgedock.sqlite3"),
                state.join("badgedock.sqlite3-wal"),
            ];
            Fault::Immutable(Immutable::set(files))
        }
    };

    // A tap that cannot be recorded is refused, plainly.
    let refused = station.tap(BADGES[2].0);
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{said}\n{}", station.log());
    assert!(said.contains(FAULT_REFUSAL), "{said}");
    let status = station.wait_status(Duration::from_secs(5), "the fault shown", |s| {
        headline(s) == FAULT_HEADLINE
    });
    let detail = status["instruction"]["detail"].as_str().unwrap_or("");
    assert!(detail.contains(words), "{detail}");
    let text = station.cli(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.lines()
            .next()
            .is_some_and(|line| line.contains("CANNOT RECORD TAPS")),
        "{text}"
    );
    assert_eq!(writable_gauge(port), "badgedock_store_writable 0");
    // The phone comes back while nothing can be recorded: the event waits.
    station.dock(&PHONES[0]);
    let again = station.tap(BADGES[2].0);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        slot_state(&station.status_json().expect("status"), PHONES[1].slot),
        "available",
        "the refused taps reserved nothing"
    );
    let log = station.log();
    assert_eq!(
        log.matches("station cannot record taps — call IT:").count(),
        1,
        "one journal line per episode:\n{log}"
    );
    assert!(log.contains(words), "{log}");

    // Fixed: the daemon notices by itself, applies what waited, and taps work again.
    match &mut fault {
        Fault::Full { filler } => std::fs::remove_file(filler).expect("remove the filler"),
        Fault::Immutable(files) => files.clear(),
    }
    station.wait_status(
        Duration::from_secs(30),
        "recovery: the docked phone checked in, the fault gone",
        |s| headline(s) != FAULT_HEADLINE && available(s),
    );
    assert_eq!(writable_gauge(port), "badgedock_store_writable 1");
    let tap = station.tap(BADGES[2].0);
    assert!(
        tap.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&tap.stderr),
        station.log()
    );
    assert!(station.log().contains("station records taps again after"));
    assert_eq!(daemon.pid(), pid);
    assert!(
        daemon.child.try_wait().is_ok_and(|exited| exited.is_none()),
        "the daemon kept running"
    );
    assert_eq!(daemon.terminate(Duration::from_secs(5)), Some(0));

    // Nothing lost: alice's check-out and check-in, carol's check-out, a verified chain.
    let verify = station.cli(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let csv = station.cli(&["audit", "export", "--csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    let rows = |kind: &str, user: &str| {
        csv.lines()
            .filter(|line| line.contains(&format!(",{kind},")) && line.contains(user))
            .count()
    };
    assert_eq!(rows("checkout", "alice"), 1, "{csv}");
    assert_eq!(rows("checkin", "alice"), 1, "{csv}");
    assert_eq!(rows("checkout-reserved", "carol"), 1, "{csv}");
    // The refused taps were never recorded as taps of the station.
    assert_eq!(rows("tap-refused", "carol"), 0, "{csv}");
}

/// Writes `path` until the disk is full.
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[test]
fn a_full_disk_refuses_taps_and_the_station_resumes_when_space_returns() {
    let sim = crate::support::station::SimProcess::start(&[]);
    let port = metrics_port();
    let station = StationDir::new(
        &sim.url,
        &PHONES,
        &BADGES,
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let state = station.dir.path().join("state");
    let _mount = match Mount::tmpfs(&state, "4m") {
        Ok(mount) => mount,
        Err(why) => {
            eprintln!(
                "SKIPPED a_full_disk_refuses_taps…: a small tmpfs cannot be mounted here ({why}); run as root"
            );
            return;
        }
    };
    station_survives("full", &state, &station, port, "is full");
}

#[test]
fn store_files_that_refuse_writes_refuse_taps_and_the_station_resumes() {
    let sim = crate::support::station::SimProcess::start(&[]);
    let port = metrics_port();
    let station = StationDir::new(
        &sim.url,
        &PHONES,
        &BADGES,
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let state = station.dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state folder");
    if let Err(why) = immutable_refuses_open_writers(&state) {
        eprintln!(
            "SKIPPED store_files_that_refuse_writes…: {why} ({}); run as root on ext4",
            state.display()
        );
        return;
    }
    station_survives(
        "read-only",
        &state,
        &station,
        port,
        "cannot be written by this user",
    );
}

fn remount(path: &Path, mode: &str) {
    let output = Command::new("mount")
        .args(["-o", &format!("remount,{mode}")])
        .arg(path)
        .output()
        .expect("mount");
    assert!(
        output.status.success(),
        "mount -o remount,{mode} {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_state_folder_read_only_at_start_keeps_the_station_up_until_it_is_writable() {
    let sim = crate::support::station::SimProcess::start(&[]);
    let port = metrics_port();
    let station = StationDir::new(
        &sim.url,
        &PHONES,
        &BADGES,
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let state = station.dir.path().join("state");
    let _mount = match Mount::tmpfs(&state, "16m") {
        Ok(mount) => mount,
        Err(why) => {
            eprintln!(
                "SKIPPED a_state_folder_read_only_at_start…: a tmpfs cannot be mounted here ({why}); run as root"
            );
            return;
        }
    };
    let available = |s: &serde_json::Value| {
        s["slots"]
            .as_array()
            .is_some_and(|slots| slots.iter().all(|slot| slot["state"] == "available"))
            && s["mdm"]["waiting"] == 0
    };
    // First run: alice's loan is recorded, then the daemon stops.
    {
        let mut daemon = station.start_daemon();
        station.wait_status(Duration::from_secs(15), "phones available", available);
        assert!(
            station.tap(BADGES[0].0).status.success(),
            "{}",
            station.log()
        );
        station.wait_status(Duration::from_secs(10), "alice's work sent", |s| {
            s["mdm"]["waiting"] == 0
        });
        station.undock(&PHONES[0]);
        station.wait_status(Duration::from_secs(10), "alice's loan", |s| {
            s["loans"].as_array().is_some_and(|loans| loans.len() == 1)
        });
        assert_eq!(daemon.terminate(Duration::from_secs(5)), Some(0));
    }

    // The folder comes back read-only (as after a file system error at boot).
    remount(&state, "ro");
    let mut daemon = station.start_daemon();
    let pid = daemon.pid();
    let status = station.wait_status(Duration::from_secs(10), "the fault shown", |s| {
        headline(s) == FAULT_HEADLINE
    });
    let detail = status["instruction"]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("read-only file system"), "{detail}");
    assert_eq!(
        status["loans"].as_array().map(Vec::len),
        Some(1),
        "alice's loan, read from the read-only store: {status:#}"
    );
    let refused = station.tap(BADGES[2].0);
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{said}\n{}", station.log());
    assert!(said.contains(FAULT_REFUSAL), "{said}");
    assert_eq!(writable_gauge(port), "badgedock_store_writable 0");
    station.dock(&PHONES[0]);

    // Writable again: no restart, the docked phone is checked in, taps work.
    remount(&state, "rw");
    station.wait_status(
        Duration::from_secs(30),
        "recovery: the docked phone checked in, the fault gone",
        |s| headline(s) != FAULT_HEADLINE && available(s),
    );
    assert_eq!(writable_gauge(port), "badgedock_store_writable 1");
    let tap = station.tap(BADGES[2].0);
    assert!(
        tap.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&tap.stderr),
        station.log()
    );
    assert!(station.log().contains("station records taps again after"));
    assert_eq!(daemon.pid(), pid);
    assert_eq!(daemon.terminate(Duration::from_secs(5)), Some(0));
    let verify = station.cli(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let csv = station.cli(&["audit", "export", "--csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert!(
        csv.lines()
            .any(|line| line.contains(",checkin,") && line.contains("alice")),
        "{csv}"
    );
}

#[test]
fn a_damaged_store_is_named_as_damaged_and_stops_with_65() {
    let sim = crate::support::station::SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &PHONES, &BADGES, "");
    let state = station.dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state folder");
    // Not an SQLite file at all (SQLITE_NOTADB), as after a disk or power fault.
    std::fs::write(state.join("badgedock.sqlite3"), vec![0x5a_u8; 8192]).expect("garbage");
    let output = Command::new(crate::support::station::bin())
        .args(["run", "--config"])
        .arg(station.config())
        .output()
        .expect("badgedock run");
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(65), "{said}");
    assert!(said.contains("is damaged"), "{said}");
    assert!(said.contains("badgedock backup"), "{said}");
    assert!(said.contains("admin accept-store"), "{said}");
    assert!(
        said.contains("not a permission or disk-space problem"),
        "{said}"
    );
}
