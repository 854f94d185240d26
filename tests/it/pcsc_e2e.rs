//! End to end through a real reader stack: a virtual card on the vpcd reader of a real
//! pcscd, read by the real `badgedock run`, leads to the enrolment-user change at the
//! Workspace ONE simulator. Uses the PC/SC harness of `pcsc.rs` (one pcscd at a time).

use std::time::Duration;

use crate::daemon::{BADGES, PHONES};
use crate::pcsc::harness::Pcscd;
use crate::support::station::{SimProcess, StationDir};

#[test]
fn a_virtual_card_tap_assigns_the_phone_in_workspace_one() {
    let pcscd = Pcscd::start();
    let sim = SimProcess::start(&[]);
    let reader = format!(
        "[[reader]]\nname = \"front\"\nkind = \"pcsc\"\nmatch = \"{}\"\nformat = \"hex\"\nlockout-ms = 500\n",
        pcscd.reader(0)
    );
    let station = StationDir::new(&sim.url, &PHONES, &BADGES, &reader);
    let _daemon = station.start_daemon();
    station.wait_status(
        Duration::from_secs(20),
        "phones available and the reader online",
        |s| {
            s["readers"].as_array().is_some_and(|readers| {
                readers
                    .iter()
                    .any(|r| r["name"] == "front" && r["online"] == true)
            }) && s["slots"]
                .as_array()
                .is_some_and(|slots| slots.iter().all(|slot| slot["state"] == "available"))
        },
    );

    // Alice's badge: the 7-byte UID 04 A1 B2 C3 D4 E5 F6, rendered "04A1B2C3D4E5F6" by format = "hex".
    pcscd.present_card(
        0,
        &[0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6],
        Duration::from_millis(800),
    );
    sim.wait_enrollment_user(PHONES[0].serial, "alice", Duration::from_secs(15));
    let status = station.status_json().unwrap();
    assert_eq!(status["slots"][0]["state"], "reserved", "{status:#}");
    assert!(
        !station.log().contains("04A1B2C3D4E5F6"),
        "the full badge number reached the log"
    );
}
