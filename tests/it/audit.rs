//! The tamper-evident audit on real SQLite files: every committed row chains onto the
//! one before; rows edited, removed or re-ordered behind the append-only triggers' back
//! (the test drops them, as an attacker with the file would) are named by
//! `Store::verify_audit` and by `badgedock audit verify` (exit 65); retention removes
//! old rows through its own path, leaves an anchor, keeps the chain verifiable and
//! never passes an audit cursor.

use std::process::Output;

use badgedock::checkout::{AuditEntry, Commit};
use badgedock::domain::{DeviceKey, ReaderName, SlotLabel, Timestamp, Username};
use badgedock::store::chain::ChainProblem;
use badgedock::store::Store;

use crate::support::station::StationDir;

fn audit(at: i64, kind: &str, detail: &str) -> AuditEntry {
    AuditEntry {
        at: Timestamp(at),
        kind: badgedock::checkout::AuditKind::from_name(kind),
        reader: Some(ReaderName::new("front")),
        badge: Some("…3F9A".to_string()),
        username: Some(Username::new("nurse1")),
        device: Some(DeviceKey::android("R58M12345")),
        slot: Some(SlotLabel::new("1")),
        detail: detail.to_string(),
    }
}

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A station directory (no Workspace ONE needed) with `n` audit rows, one per commit,
/// stamped `first_at`, `first_at + step`, …
async fn station_with_audit(extra: &str, n: usize, first_at: i64, step: i64) -> StationDir {
    let station = StationDir::new("http://127.0.0.1:9", &[], &[], extra);
    let store = Store::open(&store_path(&station)).unwrap();
    for i in 0..n {
        let at = first_at + step * i64::try_from(i).unwrap();
        store
            .commit(Commit {
                audit: vec![audit(at, "tap", &format!("row {}", i + 1))],
                ..Commit::default()
            })
            .await
            .unwrap();
    }
    store.close().await.unwrap();
    station
}

fn store_path(station: &StationDir) -> std::path::PathBuf {
    station.dir.path().join("state").join("badgedock.sqlite3")
}

/// A raw connection, with the append-only triggers dropped.
fn tamper(station: &StationDir) -> rusqlite::Connection {
    let raw = rusqlite::Connection::open(store_path(station)).unwrap();
    raw.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    raw
}

fn verify_cli(station: &StationDir) -> (Output, String) {
    let output = station.cli(&["audit", "verify"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

async fn problem(station: &StationDir) -> Option<ChainProblem> {
    let store = Store::open(&store_path(station)).unwrap();
    let verification = store.verify_audit().await.unwrap();
    store.close().await.unwrap();
    verification.problem
}

#[tokio::test]
async fn an_untouched_chain_verifies_through_the_cli() {
    let station = station_with_audit("", 5, 1_700_000_000_000, 1000).await;
    let (output, text) = verify_cli(&station);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("audit chain ok: 5 rows from the first row, last row 5"),
        "{text}"
    );
    // Several rows in one commit chain too.
    let store = Store::open(&store_path(&station)).unwrap();
    store
        .commit(Commit {
            audit: vec![audit(1, "a", "x"), audit(2, "b", "y"), audit(3, "c", "z")],
            ..Commit::default()
        })
        .await
        .unwrap();
    let verification = store.verify_audit().await.unwrap();
    store.close().await.unwrap();
    assert_eq!((verification.n_rows, verification.problem), (8, None));
}

#[tokio::test]
async fn an_edited_row_is_named() {
    let station = station_with_audit("", 5, 1_700_000_000_000, 1000).await;
    tamper(&station)
        .execute(
            "UPDATE audit SET username = 'someone-else' WHERE seq = 3",
            [],
        )
        .unwrap();
    assert!(matches!(
        problem(&station).await,
        Some(ChainProblem::Mismatch { seq: 3, .. })
    ));
    let (output, text) = verify_cli(&station);
    assert_eq!(output.status.code(), Some(65), "{text}");
    assert!(
        text.contains("the audit chain is broken at row 3"),
        "{text}"
    );
    assert!(text.contains("2 rows before it verified"), "{text}");
}

#[tokio::test]
async fn an_edit_with_its_hash_recomputed_still_breaks_the_next_row() {
    let station = station_with_audit("", 4, 1_700_000_000_000, 1000).await;
    let raw = tamper(&station);
    // The attacker recomputes row 2's own hash but not the rows after it.
    let (previous, row): (Vec<u8>, badgedock::store::chain::ChainRow) = {
        let previous: Vec<u8> = raw
            .query_row("SELECT hash FROM audit WHERE seq = 1", [], |r| r.get(0))
            .unwrap();
        let row = raw
            .query_row(
                "SELECT seq, at, kind, reader, badge, username, device_platform, device_id, slot
                 FROM audit WHERE seq = 2",
                [],
                |r| {
                    Ok(badgedock::store::chain::ChainRow {
                        seq: r.get(0)?,
                        at: r.get(1)?,
                        kind: r.get(2)?,
                        reader: r.get(3)?,
                        badge: r.get(4)?,
                        username: r.get(5)?,
                        device_platform: r.get(6)?,
                        device_id: r.get(7)?,
                        slot: r.get(8)?,
                        detail: "nothing happened".into(),
                    })
                },
            )
            .unwrap();
        (previous, row)
    };
    let mut previous_hash = [0u8; 32];
    previous_hash.copy_from_slice(&previous);
    let forged = badgedock::store::chain::row_hash(&previous_hash, &row);
    raw.execute(
        "UPDATE audit SET detail = 'nothing happened', hash = ?1 WHERE seq = 2",
        [forged.as_slice()],
    )
    .unwrap();
    assert!(matches!(
        problem(&station).await,
        Some(ChainProblem::Mismatch { seq: 3, .. })
    ));
}

#[tokio::test]
async fn a_removed_row_is_named_in_the_middle_and_at_the_end() {
    let station = station_with_audit("", 5, 1_700_000_000_000, 1000).await;
    tamper(&station)
        .execute("DELETE FROM audit WHERE seq = 2", [])
        .unwrap();
    assert_eq!(
        problem(&station).await,
        Some(ChainProblem::Missing { seq: 2 })
    );
    let (output, text) = verify_cli(&station);
    assert_eq!(output.status.code(), Some(65), "{text}");
    assert!(text.contains("audit row 2 is missing"), "{text}");

    let station = station_with_audit("", 5, 1_700_000_000_000, 1000).await;
    tamper(&station)
        .execute("DELETE FROM audit WHERE seq = 5", [])
        .unwrap();
    assert_eq!(
        problem(&station).await,
        Some(ChainProblem::Missing { seq: 5 })
    );

    // Removing the first rows is seen too: row 2 chains onto row 1's hash, not genesis.
    let station = station_with_audit("", 3, 1_700_000_000_000, 1000).await;
    tamper(&station)
        .execute("DELETE FROM audit WHERE seq = 1", [])
        .unwrap();
    assert_eq!(
        problem(&station).await,
        Some(ChainProblem::Missing { seq: 1 })
    );
}

#[tokio::test]
async fn re_ordered_rows_are_named() {
    let station = station_with_audit("", 5, 1_700_000_000_000, 1000).await;
    // Swap rows 2 and 4, hashes and all.
    tamper(&station)
        .execute_batch(
            "UPDATE audit SET seq = -4 WHERE seq = 4;
             UPDATE audit SET seq = 4 WHERE seq = 2;
             UPDATE audit SET seq = 2 WHERE seq = -4;",
        )
        .unwrap();
    assert!(matches!(
        problem(&station).await,
        Some(ChainProblem::Mismatch { seq: 2, .. })
    ));
    let (output, text) = verify_cli(&station);
    assert_eq!(output.status.code(), Some(65), "{text}");
    assert!(text.contains("broken at row 2"), "{text}");
}

#[tokio::test]
async fn retention_removes_old_rows_keeps_the_chain_and_stops_at_cursors() {
    let now = now_ms();
    // Ten rows a day apart, the newest today.
    let station = station_with_audit(
        "[audit]\nretention-days = 5\n",
        10,
        now - 9 * DAY_MS,
        DAY_MS,
    )
    .await;
    // The append-only triggers still refuse a plain delete.
    let raw = rusqlite::Connection::open(store_path(&station)).unwrap();
    let refused = raw
        .execute("DELETE FROM audit WHERE seq = 1", [])
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");

    // A reader that has only handled row 2 holds retention back.
    let store = Store::open(&store_path(&station)).unwrap();
    store.set_audit_cursor("siem", 2).await.unwrap();
    let pruned = store
        .prune_audit(Timestamp(now - 5 * DAY_MS + 1), Timestamp(now))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((pruned.n_removed, pruned.anchor_seq), (2, Some(2)));
    store.set_audit_cursor("siem", 10).await.unwrap();
    store.close().await.unwrap();

    let output = station.cli(&["audit", "prune"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    // Rows 1–5 are older than five days: 3, 4 and 5 go now.
    assert!(
        text.contains("removed 3 audit rows older than 5 days; the chain now starts after row 5"),
        "{text}"
    );
    let (output, text) = verify_cli(&station);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("5 rows from the retention anchor after row 5, last row 10"),
        "{text}"
    );
    // The triggers are back.
    let raw = rusqlite::Connection::open(store_path(&station)).unwrap();
    assert!(raw.execute("DELETE FROM audit WHERE seq = 6", []).is_err());
    assert!(raw
        .execute("UPDATE audit SET detail = 'x' WHERE seq = 6", [])
        .is_err());
    drop(raw);

    // After retention, a removed first row is still seen.
    tamper(&station)
        .execute("DELETE FROM audit WHERE seq = 6", [])
        .unwrap();
    assert_eq!(
        problem(&station).await,
        Some(ChainProblem::Missing { seq: 6 })
    );
    // And a broken chain is not pruned: it is evidence.
    let output = station.cli(&["audit", "prune"]);
    assert_eq!(output.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing removed"));
}

#[tokio::test]
async fn new_rows_after_retention_keep_their_numbers_and_chain() {
    let now = now_ms();
    let station = station_with_audit("", 3, now - 10 * DAY_MS, 1000).await;
    let store = Store::open(&store_path(&station)).unwrap();
    let pruned = store
        .prune_audit(Timestamp(now), Timestamp(now))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((pruned.n_removed, pruned.anchor_seq), (3, Some(3)));
    store
        .commit(Commit {
            audit: vec![audit(now, "tap", "after")],
            ..Commit::default()
        })
        .await
        .unwrap();
    let after = store.audit_after(0, 10).await.unwrap();
    assert_eq!(after.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4]);
    let verification = store.verify_audit().await.unwrap();
    store.close().await.unwrap();
    assert_eq!(
        (
            verification.n_rows,
            verification.anchor_seq,
            verification.problem
        ),
        (1, Some(3), None)
    );
}
