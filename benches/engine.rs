//! Engine and station benchmarks, printed as figures (`cargo bench --bench engine`):
//! 1. `Engine::handle` per input on a 24-slot cabinet (tap + undock + dock + settles),
//!    and the `Engine::clone` the engine loop makes before each input;
//! 2. tap → snapshot published, in process, through the real daemon: the control-path
//!    resolver, the engine loop, the SQLite commit (WAL, synchronous=FULL) on a file in a
//!    temporary directory, and the watch channel, against the built-in simulator;
//! 3. with a `[lending]` policy (issue 14): the same inputs, and `handle(tick)` while 24
//!    overdue loans climb a six-step escalation ladder;
//! 4. the daemon's RSS and CPU while idle (run separately: see the README's benchmark
//!    section, which measures the real binary with /proc).

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use badgedock::badges::Resolution;
use badgedock::checkout::{
    ActionId, ActionOutcome, AssignAt, Effect, Engine, EngineConfig, Input, MdmDeviceInfo,
    Persisted, TapDecision,
};
use badgedock::domain::{
    BadgeNumber, DeviceKey, Platform, ReaderName, SlotLabel, Timestamp, User, Username,
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    println!(
        "{name}: n={} mean={:.2?} p50={:.2?} p99={:.2?} max={:.2?}",
        samples.len(),
        total / samples.len() as u32,
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or_default()
    );
}

/// A ward's lending policy: end of shift (07:00/19:00 + 30 min) in Europe/Paris, a
/// curfew, and a six-step ladder.
fn ward_lending() -> badgedock::checkout::LendingConfig {
    use badgedock::lending::{Curfew, DueRule, LadderStep, LendingPolicy, StepAction};
    let time = |h| chrono::NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default();
    let step = |minutes, action| LadderStep {
        after: chrono::Duration::minutes(minutes),
        action,
    };
    badgedock::checkout::LendingConfig {
        enabled: true,
        policy: LendingPolicy {
            default_rule: DueRule::EndOfShift,
            shifts: vec![time(7), time(19)],
            grace: chrono::Duration::minutes(30),
            curfews: vec![Curfew {
                from: time(2),
                until: time(3),
                days: vec![],
                reason: "stock check".into(),
            }],
            ladder: vec![
                step(0, StepAction::Screen),
                step(15, StepAction::Webhook),
                step(15, StepAction::Email),
                step(30, StepAction::Message),
                step(45, StepAction::Lock),
                step(60, StepAction::LostMode),
            ],
            ..LendingPolicy::default()
        },
        zone: chrono_tz::Europe::Paris,
        webhook_url: Some("https://hooks.example/overdue".into()),
        email_to: vec!["charge@ward.example".into()],
        ..Default::default()
    }
}

fn engine_config(n_slots: usize) -> EngineConfig {
    EngineConfig {
        station: "bench".into(),
        slots: (1..=n_slots)
            .map(|n| SlotLabel::new(n.to_string()))
            .collect(),
        staging_user: Username::new("staging"),
        max_devices_per_user: 1,
        reservation_ms: 60_000,
        assign_at: AssignAt::Tap,
        overdue_ms: 12 * 3_600_000,
        failure_threshold: 3,
        checkout_steps: badgedock::config::default_steps(true),
        checkin_steps: badgedock::config::default_steps(false),
        reboot_window_ms: EngineConfig::DEFAULT_REBOOT_WINDOW_MS,
        organization_groups: Vec::new(),
        lending: Default::default(),
    }
}

/// A 24-slot engine whose phones are all docked and identified.
fn cabinet(config: EngineConfig, now: Timestamp) -> (Engine, Vec<DeviceKey>) {
    let n_slots = config.slots.len();
    let (mut engine, _) = Engine::restore(config, Persisted::default(), now);
    let devices: Vec<DeviceKey> = (0..n_slots)
        .map(|n| DeviceKey {
            platform: Platform::Apple,
            id: format!("{n:024X}"),
        })
        .collect();
    for (n, device) in devices.iter().enumerate() {
        let slot = SlotLabel::new((n + 1).to_string());
        let request = engine
            .handle(
                now,
                Input::Docked {
                    slot,
                    device: device.clone(),
                },
            )
            .iter()
            .find_map(|effect| match effect {
                Effect::Identify { request, .. } => Some(*request),
                _ => None,
            })
            .unwrap_or_default();
        let info = MdmDeviceInfo {
            mdm_id: n as i64,
            name: format!("iPhone {n}"),
            enrollment_user: Some(Username::new("staging")),
            wipe_pending: false,
            ownership: Some("S".into()),
            group_id: None,
            enrolled: true,
        };
        engine.handle(
            now,
            Input::DeviceIdentified {
                device: device.clone(),
                request,
                result: Ok(info),
            },
        );
    }
    (engine, devices)
}

fn bench_handle(label: &str, config: EngineConfig) {
    // Monday 2023-11-13 09:00 UTC: outside the benchmark ward's curfew.
    let mut now = Timestamp(1_699_866_000_000);
    let (mut engine, _) = cabinet(config, now);
    let mut samples: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for round in 0..2_000u32 {
        now = now.plus_millis(1_000);
        let user = User {
            username: Username::new(format!("nurse{round}")),
            display_name: format!("Nurse {round}"),
            groups: vec![],
            enroller: false,
        };
        let tap = Input::Tap {
            reader: ReaderName::new("front"),
            badge: BadgeNumber::new(format!("{round:08X}")),
            resolution: Resolution::Known { user },
        };
        // The engine loop handles every input on a copy and keeps it once committed.
        let started = Instant::now();
        let copy = engine.clone();
        samples
            .entry("clone (per input, the daemon's copy)")
            .or_default()
            .push(started.elapsed());
        drop(copy);
        let started = Instant::now();
        let effects = engine.handle(now, tap);
        samples
            .entry("handle(tap)")
            .or_default()
            .push(started.elapsed());
        let mut actions: Vec<ActionId> = Vec::new();
        let mut taken = None;
        for effect in &effects {
            match effect {
                Effect::Commit(commit) => actions.extend(commit.actions.iter().map(|a| a.id)),
                Effect::Decision(TapDecision::TakeSlot { slot, device, .. }) => {
                    taken = Some((slot.clone(), device.clone()))
                }
                _ => {}
            }
        }
        for action in actions.drain(..) {
            let started = Instant::now();
            engine.handle(
                now,
                Input::ActionSettled {
                    action,
                    outcome: ActionOutcome::Done,
                },
            );
            samples
                .entry("handle(settled)")
                .or_default()
                .push(started.elapsed());
        }
        let Some((slot, device)) = taken else {
            continue;
        };
        let started = Instant::now();
        engine.handle(
            now,
            Input::Undocked {
                slot: slot.clone(),
                device: device.clone(),
            },
        );
        samples
            .entry("handle(undock)")
            .or_default()
            .push(started.elapsed());
        let started = Instant::now();
        let effects = engine.handle(now, Input::Docked { slot, device });
        samples
            .entry("handle(dock)")
            .or_default()
            .push(started.elapsed());
        for effect in effects {
            if let Effect::Commit(commit) = effect {
                for action in commit.actions {
                    engine.handle(
                        now,
                        Input::ActionSettled {
                            action: action.id,
                            outcome: ActionOutcome::Done,
                        },
                    );
                }
            }
        }
        let started = Instant::now();
        let _ = engine.snapshot();
        samples
            .entry("snapshot()")
            .or_default()
            .push(started.elapsed());
    }
    for (name, values) in samples {
        report(&format!("engine {name} (24 slots{label})"), values);
    }
}

/// 24 phones out, then an input every minute for five hours: every loan goes overdue at
/// 19:30 and climbs the ladder (each step once); `handle(tick)` is timed.
fn bench_ladder() {
    let mut now = Timestamp(1_699_866_000_000);
    let (mut engine, devices) = cabinet(
        EngineConfig {
            max_devices_per_user: 1,
            ..engine_config_with(24, ward_lending())
        },
        now,
    );
    for (n, device) in devices.iter().enumerate() {
        let user = User {
            username: Username::new(format!("nurse{n}")),
            display_name: format!("Nurse {n}"),
            groups: vec![],
            enroller: false,
        };
        engine.handle(
            now,
            Input::Tap {
                reader: ReaderName::new("front"),
                badge: BadgeNumber::new(format!("{n:08X}")),
                resolution: Resolution::Known { user },
            },
        );
        engine.handle(
            now,
            Input::Undocked {
                slot: SlotLabel::new((n + 1).to_string()),
                device: device.clone(),
            },
        );
    }
    let mut samples = Vec::new();
    let mut rows = 0usize;
    for _ in 0..(14 * 60) {
        now = now.plus_millis(60_000);
        let started = Instant::now();
        let effects = engine.handle(now, Input::Tick);
        samples.push(started.elapsed());
        for effect in effects {
            if let Effect::Commit(commit) = effect {
                rows += commit.actions.len();
            }
        }
    }
    report(
        &format!("engine handle(tick), 24 loans climbing the ladder ({rows} outbox rows)"),
        samples,
    );
}

fn bench_tap_to_snapshot() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            println!("tap→snapshot: cannot start a runtime: {err}");
            return;
        }
    };
    let result: anyhow::Result<Vec<Duration>> = runtime.block_on(async {
        let station = badgedock::daemon::demo::DemoStation::start().await?;
        let ready = station
            .wait_for(Duration::from_secs(20), |s| {
                s.slots
                    .iter()
                    .all(|slot| slot.state == badgedock::checkout::SlotState::Available)
            })
            .await;
        anyhow::ensure!(ready, "demo cabinet not ready");
        let mut samples = Vec::new();
        let badges = badgedock::daemon::demo::DEMO_BADGES;
        for round in 0..400usize {
            // Alternate a known tap (reserve) with an admin cancel so slots stay free.
            let (badge, _, _) = badges[round % badges.len()];
            let mut snapshots = station.daemon.snapshots.clone();
            snapshots.borrow_and_update();
            let input = station.daemon.resolver.resolve_text(None, badge).await;
            let started = Instant::now();
            let (reply, answer) = tokio::sync::oneshot::channel();
            station
                .daemon
                .engine
                .send(badgedock::daemon::engine_loop::EngineMsg::Ask { input, reply })
                .await?;
            // The first snapshot that shows the reservation: it is published only after
            // the SQLite commit returned.
            loop {
                snapshots.changed().await?;
                if snapshots.borrow_and_update().open_reservations == 1 {
                    break;
                }
            }
            samples.push(started.elapsed());
            let decision = answer.await?;
            if let TapDecision::TakeSlot { slot, .. } = decision {
                station
                    .daemon
                    .engine
                    .send(badgedock::daemon::engine_loop::EngineMsg::Input(
                        Input::Admin(badgedock::checkout::AdminCommand::CancelReservation { slot }),
                    ))
                    .await?;
            }
            // Let the outbox settle the reversal so the cabinet stays available.
            station
                .wait_for(Duration::from_secs(5), |s| {
                    s.open_reservations == 0 && s.mdm.waiting == 0
                })
                .await;
        }
        station.stop().await?;
        Ok(samples)
    });
    match result {
        Ok(samples) => report(
            "tap → snapshot published (in process, SQLite FULL on disk)",
            samples,
        ),
        Err(err) => println!("tap→snapshot: failed: {err:#}"),
    }
}

/// Outbox throughput against a simulator answering every call after 300 ms: six phones
/// are reserved and the reservations cancelled, which queues check-out work and its
/// reversal (four actions per phone); the figure is actions confirmed per second with the
/// demo's concurrency (`uem.concurrency`, 4 by default; rows of one device run in order).
fn bench_outbox_throughput() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            println!("outbox throughput: cannot start a runtime: {err}");
            return;
        }
    };
    let result: anyhow::Result<(usize, Duration)> = runtime.block_on(async {
        let station = badgedock::daemon::demo::DemoStation::start().await?;
        let ready = station
            .wait_for(Duration::from_secs(20), |s| {
                s.slots
                    .iter()
                    .all(|slot| slot.state == badgedock::checkout::SlotState::Available)
            })
            .await;
        anyhow::ensure!(ready, "demo cabinet not ready");
        // Actions are the PATCHes and POSTs; the cold caches add GET lookups, not counted.
        let badges = &badgedock::daemon::demo::DEMO_BADGES[..5];
        station.sim.add_fault(
            badgedock::uemsim::parse_fault("latency:300ms").map_err(anyhow::Error::msg)?,
        );
        station.sim.clear_journal();
        let started = Instant::now();
        for (badge, _, _) in badges {
            if let TapDecision::TakeSlot { slot, .. } = station.tap(badge).await? {
                station
                    .daemon
                    .engine
                    .send(badgedock::daemon::engine_loop::EngineMsg::Input(
                        Input::Admin(badgedock::checkout::AdminCommand::CancelReservation { slot }),
                    ))
                    .await?;
            }
        }
        let drained = station
            .wait_for(Duration::from_secs(120), |s| {
                s.mdm.waiting == 0 && s.open_reservations == 0
            })
            .await;
        let elapsed = started.elapsed();
        anyhow::ensure!(drained, "the outbox did not drain");
        let calls = station
            .sim
            .journal()
            .iter()
            .filter(|entry| entry.is_api() && entry.method != "GET")
            .count();
        station.stop().await?;
        Ok((calls, elapsed))
    });
    match result {
        Ok((actions, elapsed)) => println!(
            "outbox throughput at 300 ms per call: {actions} actions in {:.2?} = {:.1} actions/s (concurrency 4)",
            elapsed,
            actions as f64 / elapsed.as_secs_f64()
        ),
        Err(err) => println!("outbox throughput: failed: {err:#}"),
    }
}

fn engine_config_with(n_slots: usize, lending: badgedock::checkout::LendingConfig) -> EngineConfig {
    EngineConfig {
        lending,
        ..engine_config(n_slots)
    }
}

fn main() {
    bench_handle("", engine_config(24));
    bench_handle(", [lending]", engine_config_with(24, ward_lending()));
    bench_ladder();
    bench_tap_to_snapshot();
    bench_outbox_throughput();
}
