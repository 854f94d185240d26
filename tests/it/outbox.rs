//! The outbox against a misbehaving Workspace ONE: a 429 storm during which the worker
//! slows down and loses nothing, and a long outage during which taps are still served at
//! once and after which everything converges. In process, through the real daemon
//! (`DemoStation`: real store file, real sysfs tree, the simulator over loopback).

use std::time::{Duration, Instant};

use badgedock::checkout::{SlotState, TapDecision};
use badgedock::daemon::demo::{DemoStation, DEMO_DEVICES};
use badgedock::uemsim::{parse_fault, JournalEntry};

fn ready(snapshot: &badgedock::checkout::Snapshot) -> bool {
    snapshot
        .slots
        .iter()
        .all(|slot| slot.state == SlotState::Available)
        && snapshot.mdm.waiting == 0
}

fn assigned_to(station: &DemoStation, slot: &str) -> Option<String> {
    let device = DEMO_DEVICES.iter().find(|d| d.slot == slot)?;
    station.sim.find_device(device.serial).map(|d| d.username)
}

fn api_calls(journal: &[JournalEntry]) -> Vec<&JournalEntry> {
    journal.iter().filter(|entry| entry.is_api()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_slows_the_outbox_and_loses_nothing() {
    let station = DemoStation::start().await.unwrap();
    assert!(
        station.wait_for(Duration::from_secs(20), ready).await,
        "cabinet not ready"
    );
    station.sim.clear_journal();
    station
        .sim
        .add_fault(parse_fault("429-retry-after:1:12@/API").unwrap());

    let mut given = Vec::new();
    for badge in ["04A1B2C3D4E5F6", "0A1B2C3D", "04C0FFEE112233"] {
        match station.tap(badge).await.unwrap() {
            TapDecision::TakeSlot {
                slot, display_name, ..
            } => given.push((slot.to_string(), display_name)),
            other => panic!("tap not served during the storm: {other:?}"),
        }
    }
    assert!(
        station
            .wait_for(Duration::from_secs(60), |s| s.mdm.waiting == 0)
            .await,
        "the outbox never drained: {:#?}",
        station.daemon.snapshots.borrow().mdm
    );

    let journal = station.sim.journal();
    let calls = api_calls(&journal);
    let throttled: Vec<&&JournalEntry> = calls.iter().filter(|c| c.status == 429).collect();
    assert_eq!(throttled.len(), 12, "every 429 of the storm was met");
    // After each 429 with Retry-After: 1, the worker pauses every row: the next call is
    // either part of the same concurrent burst (rows already in flight, within 50 ms) or
    // comes a second later, never in between.
    for storm_answer in &throttled {
        for next in calls.iter().filter(|c| c.seq > storm_answer.seq) {
            let gap = next.at_ms - storm_answer.at_ms;
            assert!(
                gap <= 50 || gap >= 900,
                "call {} came {gap} ms after a 429 asking for 1 s: {calls:#?}",
                next.seq
            );
        }
    }
    let storm_span = throttled.last().unwrap().at_ms - throttled.first().unwrap().at_ms;
    assert!(
        storm_span >= 2_700,
        "12 throttled calls over 3 devices must span 3 pauses, not {storm_span} ms"
    );
    for (slot, _) in &given {
        let user = assigned_to(&station, slot).unwrap();
        assert_ne!(
            user,
            badgedock::uemsim::DEMO_STAGING_USER,
            "slot {slot}'s assignment was lost"
        );
    }
    station.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_keeps_taps_instant_and_converges_afterwards() {
    let station = DemoStation::start().await.unwrap();
    assert!(
        station.wait_for(Duration::from_secs(20), ready).await,
        "cabinet not ready"
    );
    station.sim.add_fault(parse_fault("outage:300s").unwrap());

    // Check-outs and a check-in during the outage: decided locally, at once.
    let started = Instant::now();
    let TapDecision::TakeSlot { slot, .. } = station.tap("04A1B2C3D4E5F6").await.unwrap() else {
        panic!("refused during the outage")
    };
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a tap must not wait on the network"
    );
    let device = DEMO_DEVICES
        .iter()
        .find(|d| d.slot == slot.as_str())
        .unwrap();
    station.undock(device).unwrap();
    assert!(
        station
            .wait_for(Duration::from_secs(10), |s| s.loans.len() == 1)
            .await
    );
    station.dock(device).unwrap();
    // The return is seen by the station (it must not wait on Workspace ONE either).
    assert!(
        station
            .wait_for(Duration::from_secs(10), |s| s.loans.is_empty())
            .await,
        "the return was not seen during the outage"
    );
    let TapDecision::TakeSlot {
        slot: second_slot, ..
    } = station.tap("0A1B2C3D").await.unwrap()
    else {
        panic!("refused during the outage")
    };
    assert!(
        station
            .wait_for(Duration::from_secs(20), |s| s.mdm.reachable == Some(false)
                && s.mdm.waiting > 0)
            .await,
        "the screen must say Workspace ONE is unreachable with actions waiting"
    );

    // The outage ends (cleared early rather than waiting five minutes).
    station.sim.clear_faults();
    assert!(
        station
            .wait_for(Duration::from_secs(90), |s| s.mdm.waiting == 0
                && s.mdm.reachable == Some(true))
            .await,
        "did not converge after the outage: {:#?}",
        station.daemon.snapshots.borrow().mdm
    );
    assert_eq!(
        assigned_to(&station, slot.as_str()).as_deref(),
        Some(badgedock::uemsim::DEMO_STAGING_USER),
        "the check-in was lost"
    );
    assert_eq!(
        assigned_to(&station, second_slot.as_str()).as_deref(),
        Some("carol"),
        "the check-out was lost"
    );
    station.stop().await.unwrap();
}
