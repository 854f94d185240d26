//! The durable store on real SQLite files in temporary directories: migrations, commit
//! and reload, the outbox queue and its bookkeeping, all-or-nothing commits, the audit
//! log and its CSV export, local badges, two processes' worth of handles on one file,
//! and kill -9 in the middle of a stream of commits.

#[path = "support/store_fixtures.rs"]
mod fixtures;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use badgedock::checkout::{
    ActionId, ActionState, AuditEntry, CheckoutId, CheckoutState, Commit, Counters, DeviceStatus,
    Persisted,
};
use badgedock::domain::{BadgeNumber, Timestamp, User, Username};
use badgedock::store::schema::SCHEMA_VERSION;
use badgedock::store::{BadgeSource, LocalBadge, Store, StoreError, StoredBadge};

use fixtures::{action, audit, checkout, checkout_commit, device, phone, TempStoreFile};

fn user_version(file: &TempStoreFile) -> i64 {
    file.raw()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn migrations_build_a_fresh_file_and_reopening_changes_nothing() {
    let file = TempStoreFile::new();
    assert!(!file.path.parent().unwrap().exists());

    let store = Store::open(&file.path).unwrap();
    assert_eq!(store.load().await.unwrap(), Persisted::default());
    assert_eq!(store.pending_count().await.unwrap(), 0);
    assert_eq!(store.next_due_at().await.unwrap(), None);
    store.close().await.unwrap();
    assert_eq!(user_version(&file), SCHEMA_VERSION);

    let schema = |file: &TempStoreFile| -> Vec<(String, String)> {
        let raw = file.raw();
        let mut statement = raw
            .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows
    };
    let first = schema(&file);
    let names: Vec<&str> = first.iter().map(|(name, _)| name.as_str()).collect();
    for table in ["audit", "badges", "checkouts", "devices", "meta", "outbox"] {
        assert!(names.contains(&table), "missing table {table} in {names:?}");
    }
    let journal_mode: String = file
        .raw()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(journal_mode, "wal");

    // Reopening twice neither fails nor applies anything again.
    for _ in 0..2 {
        let store = Store::open(&file.path).unwrap();
        assert_eq!(store.load().await.unwrap(), Persisted::default());
        store.close().await.unwrap();
        assert_eq!(user_version(&file), SCHEMA_VERSION);
        assert_eq!(schema(&file), first);
    }
}

#[tokio::test]
async fn a_file_from_a_newer_badgedock_is_refused_and_left_alone() {
    let file = TempStoreFile::new();
    Store::open(&file.path).unwrap().close().await.unwrap();
    let future = SCHEMA_VERSION + 1;
    file.raw()
        .pragma_update(None, "user_version", future)
        .unwrap();

    let error = Store::open(&file.path).unwrap_err();
    assert!(
        matches!(error, StoreError::TooNew { found, supported, .. } if found == future && supported == SCHEMA_VERSION),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&file.path.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&format!("schema version {future}")),
        "{message}"
    );
    assert!(message.contains("upgrade badgedock"), "{message}");
    assert_eq!(user_version(&file), future);
}

#[tokio::test]
async fn a_database_badgedock_did_not_write_is_refused() {
    let file = TempStoreFile::new();
    std::fs::create_dir_all(file.path.parent().unwrap()).unwrap();
    file.raw()
        .execute_batch("CREATE TABLE patients (id INTEGER PRIMARY KEY);")
        .unwrap();

    let error = Store::open(&file.path).unwrap_err();
    assert!(matches!(error, StoreError::Foreign { .. }), "{error:?}");
    assert!(
        error.to_string().contains("not a badgedock store"),
        "{error}"
    );
    assert_eq!(user_version(&file), 0);
}

#[tokio::test]
async fn a_commit_is_there_after_reopening() {
    let file = TempStoreFile::new();
    let apple = fixtures::phone("R58M0000001");
    let other = phone("R58M0000002");
    let returned = checkout(1, &other, CheckoutState::Returned);
    let commit = Commit {
        devices: vec![
            device(
                &apple,
                "1",
                DeviceStatus::CheckedOut {
                    checkout: CheckoutId(2),
                },
            ),
            device(&other, "2", DeviceStatus::Available),
        ],
        checkouts: vec![
            returned,
            checkout(2, &apple, CheckoutState::Out),
            checkout(3, &other, CheckoutState::Reserved),
        ],
        actions: vec![
            action(1, &other, ActionState::Done, 10),
            action(2, &apple, ActionState::Pending, 20),
            action(3, &apple, ActionState::Failed, 30),
            action(4, &other, ActionState::Cancelled, 40),
        ],
        audit: vec![audit(100, "checkout", "Nurse 2 took phone R58M0000001")],
        counters: Counters {
            next_checkout: 4,
            next_action: 5,
        },
        fleet_requests: Vec::new(),
    };
    let store = Store::open(&file.path).unwrap();
    store.commit(commit.clone()).await.unwrap();
    drop(store);

    // A new store on the same file, as after a restart.
    let store = Store::open(&file.path).unwrap();
    let persisted = store.load().await.unwrap();
    let mut devices = commit.devices.clone();
    devices.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        persisted,
        Persisted {
            devices,
            open_checkouts: commit.checkouts[1..].to_vec(),
            open_actions: commit.actions[1..3].to_vec(),
            counters: commit.counters,
        }
    );
    assert_eq!(store.recent_audit(10).await.unwrap(), commit.audit);

    // A later transition replaces what it names and leaves the rest.
    let mut taken = checkout(3, &other, CheckoutState::Out);
    taken.taken_at = Some(Timestamp(200));
    let mut undone = action(2, &apple, ActionState::Done, 20);
    undone.note = Some("done".to_string());
    let later = Commit {
        devices: vec![device(
            &other,
            "2",
            DeviceStatus::CheckedOut {
                checkout: CheckoutId(3),
            },
        )],
        checkouts: vec![checkout(2, &apple, CheckoutState::Returned), taken.clone()],
        actions: vec![undone],
        audit: vec![],
        counters: Counters {
            next_checkout: 4,
            next_action: 5,
        },
        fleet_requests: Vec::new(),
    };
    store.commit(later.clone()).await.unwrap();
    store.close().await.unwrap();

    let store = Store::open(&file.path).unwrap();
    let persisted = store.load().await.unwrap();
    assert_eq!(
        persisted.devices,
        vec![commit.devices[0].clone(), later.devices[0].clone()]
    );
    assert_eq!(persisted.open_checkouts, vec![taken]);
    assert_eq!(persisted.open_actions, vec![commit.actions[2].clone()]);
}

#[tokio::test]
async fn due_actions_serve_each_device_in_order() {
    let file = TempStoreFile::new();
    let store = Store::open(&file.path).unwrap();
    let (a, b, c) = (phone("A1"), phone("B2"), phone("C3"));
    let now = 1_000;
    store
        .commit(Commit {
            actions: vec![
                action(1, &a, ActionState::Pending, 100),
                action(2, &a, ActionState::Pending, 100),
                action(3, &b, ActionState::Pending, 100),
                action(4, &a, ActionState::Pending, 100),
                action(5, &c, ActionState::Pending, 5_000),
                action(6, &b, ActionState::Failed, 100),
            ],
            counters: Counters {
                next_checkout: 1,
                next_action: 7,
            },
            ..Commit::default()
        })
        .await
        .unwrap();
    let due_ids = |rows: Vec<badgedock::store::OutboxRow>| -> Vec<u64> {
        rows.iter().map(|row| row.record.id.0).collect()
    };

    // One head per device, only when due, by id; C's head is not due yet.
    assert_eq!(
        due_ids(store.due_actions(Timestamp(now), 10).await.unwrap()),
        vec![1, 3]
    );
    assert_eq!(
        due_ids(store.due_actions(Timestamp(now), 1).await.unwrap()),
        vec![1]
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(Timestamp(100)));
    assert_eq!(store.pending_count().await.unwrap(), 5);

    // A's head backs off: A's later actions wait behind it, B goes on.
    store
        .record_attempt(
            ActionId(1),
            1,
            Timestamp(2_000),
            Some("HTTP 503".to_string()),
        )
        .await
        .unwrap();
    assert_eq!(
        due_ids(store.due_actions(Timestamp(now), 10).await.unwrap()),
        vec![3]
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(Timestamp(100)));

    // B's only pending row is done; the failed row 6 is never served.
    store
        .commit(Commit {
            actions: vec![action(3, &b, ActionState::Done, 100)],
            counters: Counters {
                next_checkout: 1,
                next_action: 7,
            },
            ..Commit::default()
        })
        .await
        .unwrap();
    assert_eq!(
        due_ids(store.due_actions(Timestamp(now), 10).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(Timestamp(2_000)));
    assert_eq!(
        due_ids(store.due_actions(Timestamp(2_000), 10).await.unwrap()),
        vec![1]
    );
    assert_eq!(
        due_ids(store.due_actions(Timestamp(5_000), 10).await.unwrap()),
        vec![1, 5]
    );

    // A's head done: its next action (2, not 4) comes up.
    store
        .commit(Commit {
            actions: vec![action(1, &a, ActionState::Done, 100)],
            counters: Counters {
                next_checkout: 1,
                next_action: 7,
            },
            ..Commit::default()
        })
        .await
        .unwrap();
    assert_eq!(
        due_ids(store.due_actions(Timestamp(now), 10).await.unwrap()),
        vec![2]
    );
    assert_eq!(store.pending_count().await.unwrap(), 3);
}

#[tokio::test]
async fn worker_bookkeeping_survives_reopen_and_engine_updates() {
    let file = TempStoreFile::new();
    let key = phone("R58M0000009");
    let counters = Counters {
        next_checkout: 1,
        next_action: 2,
    };
    let store = Store::open(&file.path).unwrap();
    let created = action(1, &key, ActionState::Pending, 100);
    store
        .commit(Commit {
            actions: vec![created.clone()],
            counters,
            ..Commit::default()
        })
        .await
        .unwrap();
    let fresh = store.due_actions(Timestamp(100), 10).await.unwrap();
    assert_eq!(fresh.len(), 1);
    assert_eq!(
        (
            fresh[0].attempts,
            fresh[0].next_attempt_at,
            fresh[0].sent_at,
            fresh[0].last_error.clone()
        ),
        (0, Timestamp(100), None, None)
    );

    store.mark_sent(ActionId(1), Timestamp(150)).await.unwrap();
    store
        .record_attempt(
            ActionId(1),
            3,
            Timestamp(900),
            Some("HTTP 429, retry after 30 s".to_string()),
        )
        .await
        .unwrap();
    // The engine updates the same row (a note for the screen); the bookkeeping stays.
    let mut noted = created.clone();
    noted.note = Some("Workspace ONE busy".to_string());
    store
        .commit(Commit {
            actions: vec![noted.clone()],
            counters,
            ..Commit::default()
        })
        .await
        .unwrap();
    store.close().await.unwrap();

    let store = Store::open(&file.path).unwrap();
    assert!(store
        .due_actions(Timestamp(899), 10)
        .await
        .unwrap()
        .is_empty());
    let rows = store.due_actions(Timestamp(900), 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].record, noted);
    assert_eq!(rows[0].attempts, 3);
    assert_eq!(rows[0].next_attempt_at, Timestamp(900));
    assert_eq!(rows[0].sent_at, Some(Timestamp(150)));
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("HTTP 429, retry after 30 s")
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(Timestamp(900)));

    // The worker gives up, the engine marks it failed; an operator's retry puts it back
    // to pending: attempts start again and it is due at once, but `sent_at` stays so a
    // wipe is never sent blind a second time.
    for state in [ActionState::Failed, ActionState::Pending] {
        let mut changed = created.clone();
        changed.state = state;
        store
            .commit(Commit {
                actions: vec![changed],
                counters,
                ..Commit::default()
            })
            .await
            .unwrap();
    }
    let rows = store.due_actions(Timestamp(100), 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].attempts, rows[0].next_attempt_at),
        (0, Timestamp(100))
    );
    assert_eq!(rows[0].sent_at, Some(Timestamp(150)));

    let error = store
        .record_attempt(ActionId(99), 1, Timestamp(1), None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::UnknownAction { id: 99, .. }),
        "{error:?}"
    );
    let error = store
        .mark_sent(ActionId(99), Timestamp(1))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::UnknownAction { id: 99, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_commit_that_fails_midway_writes_nothing() {
    let file = TempStoreFile::new();
    let key = phone("R58M0000003");
    let store = Store::open(&file.path).unwrap();
    let first = checkout_commit(1, &key);
    store.commit(first.clone()).await.unwrap();
    let before = store.load().await.unwrap();
    let audit_before = store.recent_audit(100).await.unwrap();

    // Everything of a check-in, with the last outbox row (written after the devices,
    // check-outs and the other outbox rows) broken: an id SQLite cannot hold fails late.
    let mut broken = Commit {
        devices: vec![device(&key, "1", DeviceStatus::Available)],
        checkouts: vec![checkout(1, &key, CheckoutState::Returned)],
        actions: vec![
            action(1, &key, ActionState::Done, 1),
            action(3, &key, ActionState::Pending, 1),
            action(u64::MAX, &key, ActionState::Pending, 1),
        ],
        audit: vec![audit(5, "checkin", "fine")],
        counters: Counters {
            next_checkout: 9,
            next_action: 9,
        },
        fleet_requests: Vec::new(),
    };
    let error = store.commit(broken.clone()).await.unwrap_err();
    assert!(matches!(error, StoreError::Sql { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&file.path.display().to_string()),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("nothing of this change was written"),
        "{error}"
    );
    assert_eq!(store.load().await.unwrap(), before);
    assert_eq!(store.recent_audit(100).await.unwrap(), audit_before);

    // The store is still usable, and nothing of the failures shows after a reopen.
    broken.actions.pop();
    store.commit(broken.clone()).await.unwrap();
    store.close().await.unwrap();
    let store = Store::open(&file.path).unwrap();
    let after = store.load().await.unwrap();
    assert_eq!(after.counters, broken.counters);
    assert_eq!(after.open_checkouts, vec![]);
    assert_eq!(
        after
            .open_actions
            .iter()
            .map(|a| a.id.0)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(store.recent_audit(100).await.unwrap().len(), 2);
}

#[tokio::test]
async fn audit_is_append_only_and_its_csv_export_is_quoted() {
    let file = TempStoreFile::new();
    let store = Store::open(&file.path).unwrap();
    let mut tricky = audit(
        1_700_000_000_123,
        "checkout",
        "Martin, Alice said \"phone 3\"\nthen left",
    );
    tricky.username = Some(Username::new("o'brien,j"));
    let mut plain = audit(1_700_000_001_000, "tap", "Unknown badge");
    plain.username = None;
    plain.device = None;
    plain.slot = None;
    // A full badge number that slipped through is redacted on the way in.
    let mut leaky = audit(1_700_000_002_000, "tap", "Badge refused");
    leaky.badge = Some("04A2B3C4D53F9A".to_string());
    for entry in [&tricky, &plain, &leaky] {
        store
            .commit(Commit {
                audit: vec![entry.clone()],
                ..Commit::default()
            })
            .await
            .unwrap();
    }

    let recent = store.recent_audit(2).await.unwrap();
    let mut redacted = leaky.clone();
    redacted.badge = Some("…3F9A".to_string());
    assert_eq!(recent, vec![redacted.clone(), plain.clone()]);

    let bytes = store.export_audit_csv(Vec::new()).await.unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(!text.contains("04A2B3C4D5"), "{text}");
    assert!(
        text.contains("\"Martin, Alice said \"\"phone 3\"\"\nthen left\""),
        "{text}"
    );
    assert!(text.contains("\"o'brien,j\""), "{text}");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        vec![
            "seq", "at", "kind", "reader", "badge", "username", "platform", "device", "slot",
            "detail"
        ]
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|record| record.unwrap().iter().map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0],
        vec![
            "1",
            "2023-11-14T22:13:20.123Z",
            "checkout",
            "front",
            "…3F9A",
            "o'brien,j",
            "android",
            "R58M12345",
            "1",
            "Martin, Alice said \"phone 3\"\nthen left",
        ]
    );
    assert_eq!(rows[1][5..9], ["", "", "", ""]);
    assert_eq!(rows[2][4], "…3F9A");

    // Append-only below the API too: SQLite itself refuses changes and deletions.
    let raw = file.raw();
    for statement in ["UPDATE audit SET detail = 'edited'", "DELETE FROM audit"] {
        let error = raw.execute(statement, []).unwrap_err();
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    assert_eq!(store.recent_audit(10).await.unwrap().len(), 3);
}

fn local_badge(number: &str, username: &str, source: BadgeSource) -> LocalBadge {
    LocalBadge {
        number: BadgeNumber::new(number),
        user: User {
            username: Username::new(username),
            display_name: format!("Display {username}"),
            groups: vec!["nurses".to_string(), "4 West, night".to_string()],
            enroller: username == "charge",
        },
        source,
        approved_by: (source == BadgeSource::Enrolled).then(|| Username::new("charge")),
        added_at: Timestamp(1_700_000_000_000),
    }
}

/// What the table gives back for a badge written: the number only redacted.
fn stored(badge: &LocalBadge) -> StoredBadge {
    StoredBadge {
        hint: badge.number.redacted(),
        user: badge.user.clone(),
        source: badge.source,
        approved_by: badge.approved_by.clone(),
        added_at: badge.added_at,
    }
}

#[tokio::test]
async fn local_badges_can_be_added_listed_found_replaced_and_removed() {
    let file = TempStoreFile::new();
    let store = Store::open(&file.path).unwrap();
    let alice = local_badge("04A2B3C4D5E6F7", "alice", BadgeSource::Import);
    let charge = local_badge("0000123456", "charge", BadgeSource::Import);
    let bob = local_badge("99887766", "bob", BadgeSource::Enrolled);
    assert_eq!(
        store
            .upsert_badges(vec![bob.clone(), alice.clone(), charge.clone()])
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store.list_badges().await.unwrap(),
        vec![stored(&alice), stored(&bob), stored(&charge)]
    );
    assert_eq!(
        store.find_badge(&bob.number).await.unwrap(),
        Some(stored(&bob))
    );
    assert_eq!(
        store.find_badge(&BadgeNumber::new("nobody")).await.unwrap(),
        None
    );
    assert!(!format!("{alice:?}").contains("04A2B3C4D5"));

    // Replacing: same number, another user.
    let mut reassigned = alice.clone();
    reassigned.user.username = Username::new("alice2");
    reassigned.user.groups.clear();
    assert_eq!(
        store.upsert_badges(vec![reassigned.clone()]).await.unwrap(),
        1
    );
    assert_eq!(
        store.find_badge(&alice.number).await.unwrap(),
        Some(stored(&reassigned))
    );

    assert!(store.remove_badge(&bob.number).await.unwrap());
    assert!(!store.remove_badge(&bob.number).await.unwrap());
    store.close().await.unwrap();

    let store = Store::open(&file.path).unwrap();
    assert_eq!(
        store.list_badges().await.unwrap(),
        vec![stored(&reassigned), stored(&charge)]
    );
    assert_eq!(store.find_badge(&bob.number).await.unwrap(), None);

    // A batch with a bad row writes none of it.
    let empty_user = local_badge("1111222233", "", BadgeSource::Import);
    let good = local_badge("4444555566", "carol", BadgeSource::Import);
    store
        .upsert_badges(vec![good.clone(), empty_user])
        .await
        .unwrap_err();
    assert_eq!(store.find_badge(&good.number).await.unwrap(), None);
}

#[test]
fn a_daemon_and_a_cli_share_the_file_without_locking_errors() {
    let file = TempStoreFile::new();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    // Created once up front so the two opens below race on a migrated file and on
    // nothing else; each thread then opens its own store, as two processes would.
    runtime().block_on(async { Store::open(&file.path).unwrap().close().await.unwrap() });
    let n_commits = 150_u64;
    let n_badges = 60_u64;

    let daemon_path = file.path.clone();
    let daemon = std::thread::spawn(move || {
        runtime().block_on(async {
            let store = Store::open(&daemon_path).unwrap();
            for n in 1..=n_commits {
                let key = phone(&format!("R58M{n:07}"));
                store.commit(checkout_commit(n, &key)).await?;
                if n % 10 == 0 {
                    store.due_actions(Timestamp(i64::MAX), 50).await?;
                }
            }
            store.close().await
        })
    });
    let cli_path = file.path.clone();
    let cli = std::thread::spawn(move || {
        runtime().block_on(async {
            let store = Store::open(&cli_path).unwrap();
            for n in 0..n_badges {
                let badge = local_badge(
                    &format!("BADGE{n:08}"),
                    &format!("user{n}"),
                    BadgeSource::Import,
                );
                store.upsert_badges(vec![badge]).await?;
                store.load().await?;
                store.export_audit_csv(Vec::new()).await?;
            }
            store.close().await
        })
    });
    let daemon_result = daemon.join().unwrap();
    let cli_result = cli.join().unwrap();
    assert!(daemon_result.is_ok(), "daemon: {daemon_result:?}");
    assert!(cli_result.is_ok(), "cli: {cli_result:?}");

    runtime().block_on(async {
        let store = Store::open(&file.path).unwrap();
        let persisted = store.load().await.unwrap();
        assert_eq!(
            persisted.open_checkouts.len(),
            usize::try_from(n_commits).unwrap()
        );
        assert_eq!(persisted.counters.next_checkout, n_commits + 1);
        assert_eq!(
            store.list_badges().await.unwrap().len(),
            usize::try_from(n_badges).unwrap()
        );
        assert_eq!(
            store.recent_audit(1000).await.unwrap().len(),
            usize::try_from(n_commits).unwrap()
        );
    });
}

#[tokio::test]
async fn closing_finishes_queued_work_and_other_handles_then_see_closed() {
    let file = TempStoreFile::new();
    let store = Store::open(&file.path).unwrap();
    let other = store.clone();
    let key = phone("R58M0000004");
    // Queued before the close: it still lands.
    let queued = tokio::spawn({
        let other = other.clone();
        let commit = checkout_commit(1, &key);
        async move { other.commit(commit).await }
    });
    tokio::task::yield_now().await;
    store.close().await.unwrap();
    queued.await.unwrap().unwrap();

    let error = other.load().await.unwrap_err();
    assert!(matches!(error, StoreError::Closed { .. }), "{error:?}");
    assert!(error.to_string().contains(&file.path.display().to_string()));
    drop(other);

    // Closing checkpointed the WAL into the main file; a reopen sees the commit.
    let store = Store::open(&file.path).unwrap();
    assert_eq!(store.load().await.unwrap().open_checkouts.len(), 1);
    tokio::task::spawn_blocking(move || store.close_blocking())
        .await
        .unwrap()
        .unwrap();
}

/// Set in the child process of the kill -9 test: the store file to write to.
const KILL_CHILD_ENV: &str = "BADGEDOCK_STORE_KILL_CHILD";
const KILL_TEST_NAME: &str = "store::kill_nine_at_any_instant_leaves_whole_transactions";

/// Commit `n` of a chain where every commit touches every table: the device's failure
/// count, check-out `n`, action `n` (and action `n - 1` done), one audit line, the
/// counters. After a crash, all of them must agree on the same `n`.
fn chain_commit(n: u64) -> Commit {
    let key = phone("R58MCHAIN");
    let mut record = device(
        &key,
        "1",
        DeviceStatus::CheckedOut {
            checkout: CheckoutId(n),
        },
    );
    record.failures = u32::try_from(n).unwrap();
    let mut actions = vec![action(n, &key, ActionState::Pending, 1)];
    if n > 1 {
        actions.insert(0, action(n - 1, &key, ActionState::Done, 1));
    }
    Commit {
        devices: vec![record],
        checkouts: vec![checkout(n, &key, CheckoutState::Out)],
        actions,
        audit: vec![audit(
            i64::try_from(n).unwrap(),
            "checkout",
            &format!("commit {n}"),
        )],
        counters: Counters {
            next_checkout: n + 1,
            next_action: n + 1,
        },
        fleet_requests: Vec::new(),
    }
}

/// The child: commits the chain as fast as it can until killed (or a minute passes).
fn write_chain_until_killed(path: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(path).unwrap();
        let mut n = store.load().await.unwrap().counters.next_checkout.max(1);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            store.commit(chain_commit(n)).await.unwrap();
            n += 1;
        }
    });
}

/// Checks that the file holds exactly commits 1..=n of the chain, and returns n.
async fn check_chain(path: &Path) -> u64 {
    let store = Store::open(path).unwrap();
    let persisted = store.load().await.unwrap();
    let n = persisted.counters.next_checkout.saturating_sub(1);
    assert_eq!(
        persisted.counters.next_action,
        persisted.counters.next_checkout
    );
    if n == 0 {
        assert_eq!(persisted, Persisted::default());
    } else {
        assert_eq!(persisted.devices, chain_commit(n).devices);
        let checkout_ids: Vec<u64> = persisted.open_checkouts.iter().map(|c| c.id.0).collect();
        assert_eq!(checkout_ids, (1..=n).collect::<Vec<_>>());
        assert_eq!(
            persisted.open_actions,
            vec![action(n, &phone("R58MCHAIN"), ActionState::Pending, 1)]
        );
    }
    let audit: Vec<AuditEntry> = store.recent_audit(usize::MAX).await.unwrap();
    let details: Vec<String> = audit.into_iter().map(|entry| entry.detail).collect();
    let expected: Vec<String> = (1..=n).rev().map(|i| format!("commit {i}")).collect();
    assert_eq!(details, expected);
    store.close().await.unwrap();
    n
}

/// Kills the child when the test ends, whatever happened.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_nine_at_any_instant_leaves_whole_transactions() {
    if let Some(path) = std::env::var_os(KILL_CHILD_ENV) {
        // We are the child started below.
        write_chain_until_killed(Path::new(&path));
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let file = TempStoreFile::new();
    let mut n_committed = 0;
    for round in 0..5_u64 {
        let mut child = ChildGuard(
            Command::new(std::env::current_exe().unwrap())
                .args([KILL_TEST_NAME, "--exact", "--test-threads=1", "--quiet"])
                .env(KILL_CHILD_ENV, &file.path)
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // Let it get well into its stream of commits, a different distance each round,
        // then SIGKILL it, most likely in the middle of a transaction.
        let target = n_committed + 20 + 17 * round;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!("the writer child exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the writer child made no progress"
            );
            if file.path.exists() {
                let count: Option<u64> = file
                    .raw()
                    .query_row("SELECT max(seq) FROM audit", [], |row| row.get(0))
                    .ok()
                    .flatten();
                if count.unwrap_or(0) >= target {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();

        let n = runtime.block_on(check_chain(&file.path));
        assert!(
            n >= target,
            "round {round}: {n} commits, expected at least {target}"
        );
        n_committed = n;
    }
}

/// Migration 5: `checkouts.due_at` follows the record's due time on insert and on every
/// update (triggers), for the engine's unchanged upsert.
#[tokio::test]
async fn the_due_time_column_follows_the_loan_record() {
    let file = TempStoreFile::new();
    let key = phone("R58M0000009");
    let store = Store::open(&file.path).unwrap();
    let mut loan = checkout(7, &key, CheckoutState::Out);
    store
        .commit(Commit {
            checkouts: vec![loan.clone()],
            counters: Counters {
                next_checkout: 8,
                next_action: 1,
            },
            ..Commit::default()
        })
        .await
        .unwrap();
    loan.due_at = Some(Timestamp(1_700_050_000_000));
    loan.escalated = vec![0, 1];
    store
        .commit(Commit {
            checkouts: vec![loan.clone()],
            counters: Counters {
                next_checkout: 8,
                next_action: 1,
            },
            ..Commit::default()
        })
        .await
        .unwrap();
    let reloaded = store.load().await.unwrap();
    assert_eq!(reloaded.open_checkouts, vec![loan]);
    store.close().await.unwrap();
    let due: Option<i64> = file
        .raw()
        .query_row("SELECT due_at FROM checkouts WHERE id = 7", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(due, Some(1_700_050_000_000));
}
