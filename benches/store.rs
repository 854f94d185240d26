//! Store benchmark: latency of a typical check-out commit (one device, one check-out,
//! two outbox actions, one audit line) on a real file with `synchronous=FULL`, plus the
//! outbox worker's and the start-up's reads on the resulting file. Prints p50/p99.
//!
//! `cargo bench --bench store`. The file goes in the system temporary directory, or in
//! `BADGEDOCK_BENCH_DIR` (point it at the station's real disk: fsync cost is the figure).
//! `BADGEDOCK_BENCH_COMMITS` sets how many commits are timed (default 2000).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use badgedock::checkout::{
    ActionId, ActionPurpose, ActionRecord, ActionState, AuditEntry, AuditKind, CheckoutId,
    CheckoutRecord, CheckoutState, Commit, Counters, DeviceRecord, DeviceStatus, MdmAction,
    MdmDeviceInfo,
};
use badgedock::domain::{DeviceKey, ReaderName, SlotLabel, Timestamp, Username};
use badgedock::store::Store;

fn checkout_commit(n: u64) -> Commit {
    // Twenty phones in rotation, as in a cabinet.
    let key = DeviceKey::android(&format!("R58M{:07}", n % 20));
    let at = Timestamp(1_700_000_000_000 + i64::try_from(n).unwrap() * 1000);
    let username = Username::new(format!("nurse{}", n % 300));
    let action = |id: u64, action: MdmAction| ActionRecord {
        id: ActionId(id),
        device: key.clone(),
        checkout: Some(CheckoutId(n)),
        purpose: ActionPurpose::CheckOut,
        action,
        state: ActionState::Pending,
        created_at: at,
        note: None,
    };
    Commit {
        devices: vec![DeviceRecord {
            key: key.clone(),
            slot: Some(SlotLabel::new("3")),
            status: DeviceStatus::Reserved {
                checkout: CheckoutId(n),
            },
            mdm: Some(MdmDeviceInfo {
                mdm_id: 4100,
                name: format!("Phone {}", key.id),
                enrollment_user: Some(Username::new("staging-4west")),
                wipe_pending: false,
                ownership: Some("S".into()),
                group_id: None,
                enrolled: true,
            }),
            docked_since: Some(at),
            failures: 0,
            set_aside: false,
            ours: true,
            broken: false,
            lost_mode: false,
        }],
        checkouts: vec![CheckoutRecord {
            id: CheckoutId(n),
            username: username.clone(),
            display_name: "Alice Martin".to_string(),
            device: key.clone(),
            slot: SlotLabel::new("3"),
            state: CheckoutState::Reserved,
            reserved_at: at,
            expires_at: at.plus_seconds(60),
            taken_at: None,
            closed_at: None,
            due_at: Some(at.plus_seconds(12 * 3600)),
            escalated: Vec::new(),
        }],
        actions: vec![
            action(
                2 * n,
                MdmAction::AssignUser {
                    username: username.clone(),
                },
            ),
            action(
                2 * n + 1,
                MdmAction::Command {
                    command: badgedock::checkout::DeviceCommand::SyncDevice,
                },
            ),
        ],
        audit: vec![AuditEntry {
            at,
            kind: AuditKind::Checkout,
            reader: Some(ReaderName::new("front")),
            badge: Some("…3F9A".to_string()),
            username: Some(username),
            device: Some(key.clone()),
            slot: Some(SlotLabel::new("3")),
            detail: format!("Alice Martin reserved phone {} in slot 3", key.id),
        }],
        counters: Counters {
            next_checkout: n + 1,
            next_action: 2 * n + 2,
        },
        fleet_requests: Vec::new(),
    }
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |quantile: f64| {
        let index = ((samples.len() as f64 - 1.0) * quantile).round() as usize;
        samples[index].as_secs_f64() * 1000.0
    };
    println!(
        "{name:<44} n={:<5} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        samples.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

fn main() {
    let n_commits: u64 = std::env::var("BADGEDOCK_BENCH_COMMITS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2000);
    let parent = std::env::var_os("BADGEDOCK_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&parent).unwrap();
    let path = dir.path().join("badgedock.sqlite");
    println!("store bench on {} (synchronous=FULL, WAL)", path.display());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(&path).unwrap();
        for n in 1..=50 {
            store.commit(checkout_commit(n)).await.unwrap();
        }
        let mut samples = Vec::new();
        for n in 51..51 + n_commits {
            let commit = checkout_commit(n);
            let started = Instant::now();
            store.commit(commit).await.unwrap();
            samples.push(started.elapsed());
        }
        report(
            "commit (1 device, 1 check-out, 2 actions, 1 audit)",
            samples,
        );

        let n_pending = store.pending_count().await.unwrap();
        let mut samples = Vec::new();
        for _ in 0..500 {
            let started = Instant::now();
            store.due_actions(Timestamp(i64::MAX), 32).await.unwrap();
            samples.push(started.elapsed());
        }
        report(
            &format!("due_actions(limit 32) with {n_pending} pending"),
            samples,
        );

        let mut samples = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            store.load().await.unwrap();
            samples.push(started.elapsed());
        }
        report(
            &format!("load with {} check-outs open", 50 + n_commits),
            samples,
        );
        store.close().await.unwrap();
    });
}
