//! Crash safety through the real binary: a scripted stream of 240 taps, undocks and docks
//! while the daemon is SIGKILLed at pseudo-random points (some in the middle of a tap)
//! and restarted on the same state directory each time. The simulator, which outlives
//! every daemon, is the witness: no check-out or check-in is lost, no phone is assigned
//! to anyone who was not given it, and no wipe is sent twice.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::station::{bin, Phone, SimProcess, StationDir};

const PHONES: [Phone; 4] = [
    // The two phones of the daemon tests, plus one more Apple and an Android.
    crate::daemon::PHONES[0],
    crate::daemon::PHONES[1],
    Phone {
        slot: "3",
        port: "1-1.3",
        vendor: "05ac",
        serial: "000080300012345678ABCDEF",
    },
    Phone {
        slot: "4",
        port: "1-2.1",
        vendor: "04e8",
        serial: "R58N12ABCDE",
    },
];

const BADGES: [(&str, &str, &str); 5] = [
    crate::daemon::BADGES[0],
    crate::daemon::BADGES[1],
    crate::daemon::BADGES[2],
    ("04C0FFEE112233", "dave", "Dave Okafor"),
    ("04BADA55000001", "m.alice", "Marie Alice"),
];

/// A small deterministic generator, so a failing run can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Where {
    Docked,
    Out(String),
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_sends_no_wipe_twice() {
    let seed = std::env::var("BADGEDOCK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = XorShift(seed);
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(
        &sim.url,
        &PHONES,
        &BADGES,
        "[workflow.checkin]\nandroid = [\"enterprise-wipe\"]\n[checkout]\nreservation-seconds = 120\n",
    );
    let mut daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(20), "cabinet ready", |s| {
        s["slots"]
            .as_array()
            .is_some_and(|slots| slots.iter().all(|slot| slot["state"] == "available"))
    });

    let mut phones: BTreeMap<&str, Where> =
        PHONES.iter().map(|p| (p.serial, Where::Docked)).collect();
    // (serial, username) pairs the station told a nurse to take: the only assignments allowed.
    let mut given: BTreeSet<(String, String)> = BTreeSet::new();
    let mut android_checkins = 0u32;
    let mut kills = 0u32;
    let mut events = 0u32;

    while events < 240 {
        events += 1;
        let holders: BTreeSet<String> = phones
            .values()
            .filter_map(|w| match w {
                Where::Out(u) => Some(u.clone()),
                _ => None,
            })
            .collect();
        let docked: Vec<&Phone> = PHONES
            .iter()
            .filter(|p| phones[p.serial] == Where::Docked)
            .collect();
        let out: Vec<&Phone> = PHONES
            .iter()
            .filter(|p| phones[p.serial] != Where::Docked)
            .collect();
        let kill_now = rng.below(100) < 10;

        if !docked.is_empty() && (out.is_empty() || rng.below(2) == 0) {
            // A tap by someone who holds nothing.
            let free: Vec<&(&str, &str, &str)> = BADGES
                .iter()
                .filter(|(_, user, _)| !holders.contains(*user))
                .collect();
            let (badge, user, _) = *free[rng.below(free.len() as u64) as usize];
            let tap = Command::new(bin())
                .args(["tap", "--config"])
                .arg(station.config())
                .arg(badge)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            if kill_now {
                std::thread::sleep(Duration::from_millis(rng.below(25)));
                daemon.kill();
                kills += 1;
            }
            let output = tap.wait_with_output().unwrap();
            if kill_now {
                daemon = station.start_daemon();
            }
            // What did the station decide? The tap's answer, or after a crash the store.
            let slot = if output.status.success() {
                let text = String::from_utf8_lossy(&output.stdout).to_string();
                text.split("take slot ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_string)
            } else {
                let status = station.status_json().expect("status after restart");
                status["slots"].as_array().and_then(|slots| {
                    slots
                        .iter()
                        .find(|slot| {
                            slot["state"] == "reserved"
                                && slot["holder"]
                                    .as_str()
                                    .is_some_and(|h| h.to_lowercase().starts_with(&user[..3]))
                        })
                        .and_then(|slot| slot["label"].as_str().map(str::to_string))
                })
            };
            if let Some(slot) = slot {
                let phone = PHONES.iter().find(|p| p.slot == slot).expect("known slot");
                given.insert((phone.serial.to_string(), user.to_string()));
                station.undock(phone);
                phones.insert(phone.serial, Where::Out(user.to_string()));
                station.wait_status(Duration::from_secs(10), "loan recorded", |s| {
                    s["loans"]
                        .as_array()
                        .is_some_and(|loans| loans.iter().any(|l| l["username"] == user))
                });
            }
        } else if let Some(phone) = out.get(rng.below(out.len().max(1) as u64) as usize) {
            station.dock(phone);
            phones.insert(phone.serial, Where::Docked);
            if phone.vendor != "05ac" {
                android_checkins += 1;
            }
            if kill_now {
                std::thread::sleep(Duration::from_millis(rng.below(150)));
                daemon.kill();
                kills += 1;
                daemon = station.start_daemon();
            }
            let slot = phone.slot;
            station.wait_status(Duration::from_secs(20), "check-in recorded", |s| {
                s["slots"].as_array().is_some_and(|slots| {
                    slots.iter().any(|v| {
                        v["label"] == slot && v["state"] != "empty" && v["state"] != "identifying"
                    })
                })
            });
        } else if kill_now {
            daemon.kill();
            kills += 1;
            daemon = station.start_daemon();
        }
    }

    // End of the shift: every phone comes home and all the work converges.
    for phone in &PHONES {
        if phones[phone.serial] != Where::Docked {
            station.dock(phone);
            if phone.vendor != "05ac" {
                android_checkins += 1;
            }
        }
    }
    station.wait_status(
        Duration::from_secs(60),
        "all phones checked in and no work waiting",
        |s| {
            s["mdm"]["waiting"] == 0
                && s["slots"]
                    .as_array()
                    .is_some_and(|slots| slots.iter().all(|slot| slot["state"] == "available"))
        },
    );

    assert!(
        kills >= 15,
        "the script should have killed the daemon often (seed {seed}): {kills}"
    );
    let staging = badgedock::uemsim::DEMO_STAGING_USER;
    let changes = sim.enrollment_changes();
    for (serial, username) in &changes {
        if username != staging {
            assert!(
                given.contains(&(serial.clone(), username.clone())),
                "{serial} was assigned to {username}, who was never given it (seed {seed})"
            );
        }
    }
    for (serial, username) in &given {
        if PHONES
            .iter()
            .any(|p| p.serial == serial && p.vendor == "05ac")
        {
            assert!(
                changes.iter().any(|(s, u)| s == serial && u == username),
                "the check-out of {serial} to {username} never reached Workspace ONE (seed {seed})"
            );
        }
    }
    for phone in PHONES.iter().filter(|p| p.vendor == "05ac") {
        assert_eq!(
            sim.enrollment_user(phone.serial).as_deref(),
            Some(staging),
            "{} not checked back in (seed {seed})",
            phone.serial
        );
    }
    let wipes = sim
        .commands()
        .iter()
        .filter(|(serial, command)| serial == PHONES[3].serial && command == "EnterpriseWipe")
        .count() as u32;
    assert!(
        wipes <= android_checkins,
        "{wipes} wipes for {android_checkins} check-ins: a wipe was sent twice (seed {seed})"
    );
    assert!(
        wipes + 1 >= android_checkins,
        "{wipes} wipes for {android_checkins} check-ins: a check-in was lost (seed {seed})"
    );
    let _ = daemon.terminate(Duration::from_secs(5));
}
