//! The fleet against a real PostgreSQL (a private cluster per test, `support/postgres.rs`)
//! and real daemons (`badgedock run` on the simulator process): publishing through an
//! outage, a SIGKILL mid-batch and a lost cursor, every audit line exactly once;
//! row-level security; the per-user limit across two stations; a console admin request
//! carried out by its station exactly once.

#[path = "support/postgres.rs"]
pub mod postgres;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use postgres::Postgres;

use crate::support::station::{Phone, SimProcess, StationDir};

const PHONE_A: Phone = crate::daemon::PHONES[0];
/// The third phone of the simulator's built-in seed (enrolled to staging).
const PHONE_B: Phone = Phone {
    slot: "1",
    port: "1-1.3",
    vendor: "05ac",
    serial: "000080300012345678ABCDEF",
};
const BADGES: [(&str, &str, &str); 2] = [crate::daemon::BADGES[0], crate::daemon::BADGES[2]];
const ALICE: &str = "04A1B2C3D4E5F6";
const UNKNOWN_BADGE: &str = "0DDBA11F00";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every (seq, kind, detail) of the station's SQLite audit log, by seq.
fn sqlite_audit(station: &StationDir) -> Vec<(i64, String, String)> {
    let db =
        rusqlite::Connection::open(station.dir.path().join("state/badgedock.sqlite3")).unwrap();
    let mut statement = db
        .prepare("SELECT seq, kind, detail FROM audit ORDER BY seq")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn pg_audit(client: &tokio_postgres::Client, station: &str) -> Vec<(i64, String, String)> {
    client
        .query(
            "SELECT seq, kind, detail FROM badgedock.events WHERE station_id = $1 ORDER BY seq",
            &[&station],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// Waits until PostgreSQL holds exactly the station's audit log.
fn wait_published(rt: &tokio::runtime::Runtime, pg: &Postgres, station: &StationDir, id: &str) {
    let started = Instant::now();
    let mut last = (0, 0);
    while started.elapsed() < Duration::from_secs(60) {
        let local = sqlite_audit(station);
        let remote = rt.block_on(async {
            let client = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await;
            pg_audit(&client, id).await
        });
        if !local.is_empty() && local == remote {
            return;
        }
        last = (local.len(), remote.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the fleet store never caught up: {} local lines, {} in PostgreSQL; daemon log:\n{}",
        last.0,
        last.1,
        station.log()
    );
}

fn fleet_reachable(status: &serde_json::Value) -> Option<bool> {
    status["fleet"]["reachable"].as_bool()
}

#[test]
fn publishing_survives_an_outage_a_kill_mid_batch_and_a_lost_cursor() {
    let rt = runtime();
    let mut pg = Postgres::start();
    rt.block_on(pg.set_up_fleet(&[("a", "3 West")]));
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &[PHONE_A], &BADGES, &pg.station_section("a", 200));
    let mut daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(20), "fleet reachable", |s| {
        fleet_reachable(s) == Some(true)
    });
    for _ in 0..5 {
        station.tap(UNKNOWN_BADGE);
    }
    wait_published(&rt, &pg, &station, "a");

    // The fleet store goes away for a while; the station keeps working and says so.
    pg.stop();
    for _ in 0..20 {
        assert_eq!(station.tap(UNKNOWN_BADGE).status.code(), Some(1));
    }
    let status = station.wait_status(Duration::from_secs(30), "fleet unreachable", |s| {
        fleet_reachable(s) == Some(false)
    });
    assert_eq!(status["fleet"]["reachable"], false);
    let text = station.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("fleet: UNREACHABLE"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    pg.resume();
    wait_published(&rt, &pg, &station, "a");

    // A kill in the middle of a batch: the test holds the events table locked, so the
    // daemon's insert transaction waits half-done; SIGKILL it there.
    let backlog = sqlite_audit(&station).len();
    rt.block_on(async {
        let mut holder = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await;
        let lock = holder.transaction().await.unwrap();
        lock.batch_execute("LOCK TABLE badgedock.events IN EXCLUSIVE MODE")
            .await
            .unwrap();
        for _ in 0..30 {
            station.tap(UNKNOWN_BADGE);
        }
        // Wait until the daemon's insert is blocked on the lock.
        let watcher = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await;
        let started = Instant::now();
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE usename = 'station_a' AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the daemon never blocked mid-batch"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        daemon.kill();
        lock.rollback().await.unwrap();
    });
    assert!(sqlite_audit(&station).len() >= backlog + 30);
    let mut daemon = station.start_daemon();
    wait_published(&rt, &pg, &station, "a");

    // The worst crash: PostgreSQL committed but the cursor never moved. Everything is
    // sent again and nothing changes.
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
    let before = rt.block_on(async {
        let client = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await;
        pg_audit(&client, "a").await
    });
    {
        let db =
            rusqlite::Connection::open(station.dir.path().join("state/badgedock.sqlite3")).unwrap();
        db.execute("UPDATE audit_cursors SET seq = 0 WHERE name = 'fleet'", [])
            .unwrap();
    }
    let _daemon = station.start_daemon();
    let started = Instant::now();
    loop {
        let db =
            rusqlite::Connection::open(station.dir.path().join("state/badgedock.sqlite3")).unwrap();
        let cursor: i64 = db
            .query_row(
                "SELECT seq FROM audit_cursors WHERE name = 'fleet'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if cursor >= before.last().unwrap().0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "cursor stuck at {cursor}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_published(&rt, &pg, &station, "a");
    let after = rt.block_on(async {
        let client = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await;
        pg_audit(&client, "a").await
    });
    // No gap, no duplicate: seq runs 1..=N once each, the same lines as before and as
    // the station's own log.
    let seqs: Vec<i64> = after.iter().map(|line| line.0).collect();
    assert_eq!(seqs, (1..=after.len() as i64).collect::<Vec<_>>());
    assert_eq!(&after[..before.len()], &before[..]);
    assert_eq!(after, sqlite_audit(&station));
    // Badge numbers reach PostgreSQL redacted only.
    let badges: BTreeSet<String> = rt.block_on(async {
        let client = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await;
        client
            .query(
                "SELECT DISTINCT badge FROM badgedock.events WHERE badge IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    });
    assert!(!badges.is_empty());
    for badge in &badges {
        assert!(
            !badge.contains(UNKNOWN_BADGE) && badge.starts_with('…'),
            "{badge}"
        );
    }
}

#[test]
fn row_level_security_keeps_each_station_to_its_own_rows() {
    let rt = runtime();
    let pg = Postgres::start();
    rt.block_on(async {
        pg.set_up_fleet(&[("a", "3 West"), ("b", "4 West")]).await;
        let a = pg.connect("station_a", "pw-a").await;
        let b = pg.connect("station_b", "pw-b").await;
        b.batch_execute(
            "INSERT INTO badgedock.loans (station_id, device, platform, username, holder, slot, since, overdue)
             VALUES ('b', 'SERIAL-B', 'apple', 'alice', 'Alice Martin', '1', now(), false);
             INSERT INTO badgedock.events (station_id, seq, at, kind, detail)
             VALUES ('b', 1, now(), 'checkout', 'checked out')",
        )
        .await
        .unwrap();

        // Station a writes its own rows …
        a.batch_execute(
            "INSERT INTO badgedock.events (station_id, seq, at, kind, detail)
             VALUES ('a', 1, now(), 'tap', 'a tap')",
        )
        .await
        .unwrap();
        // … but not station b's: the policy refuses the insert,
        let refused = a
            .batch_execute(
                "INSERT INTO badgedock.events (station_id, seq, at, kind, detail)
                 VALUES ('b', 2, now(), 'checkin', 'forged')",
            )
            .await
            .unwrap_err();
        let message = refused.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
        assert!(message.contains("row-level security"), "{message}");
        let refused = a
            .batch_execute(
                "INSERT INTO badgedock.loans (station_id, device, platform, username, holder, slot, since, overdue)
                 VALUES ('b', 'FORGED', 'apple', 'bob', 'Bob', '2', now(), false)",
            )
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("row-level security") || refused.as_db_error().is_some_and(|e| e.message().contains("row-level security")));
        // deleting or rewriting b's rows touches nothing,
        let deleted = a
            .execute("DELETE FROM badgedock.loans WHERE station_id = 'b'", &[])
            .await
            .unwrap();
        assert_eq!(deleted, 0);
        // and the audit is append-only for stations (no UPDATE privilege at all).
        assert!(a
            .execute("UPDATE badgedock.events SET detail = 'x' WHERE station_id = 'a'", &[])
            .await
            .is_err());
        // Station a still reads b's loans (the cross-station limit needs them).
        let loans: i64 = a
            .query_one("SELECT count(*) FROM badgedock.loans WHERE station_id = 'b'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(loans, 1);

        // The console reads everything and writes nothing but admin requests.
        let console = pg.connect("fleet_console", "pw-console").await;
        let events: i64 = console
            .query_one("SELECT count(*) FROM badgedock.events", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(events, 2);
        let denied = console
            .batch_execute("DELETE FROM badgedock.loans")
            .await
            .unwrap_err();
        assert!(denied.as_db_error().is_some_and(|e| e.message().contains("permission denied")), "{denied}");
        console
            .batch_execute(
                "INSERT INTO badgedock.admin_requests (station_id, command, requested_by)
                 VALUES ('b', '{\"command\": \"retry\", \"slot\": \"1\"}', 'admin')",
            )
            .await
            .unwrap();
        // A station acknowledges only its own requests.
        let acked = a
            .execute("UPDATE badgedock.admin_requests SET done_at = now(), outcome = 'forged'", &[])
            .await
            .unwrap();
        assert_eq!(acked, 0);
    });
}

#[test]
fn a_nurse_holding_a_phone_from_one_station_is_refused_at_another() {
    let rt = runtime();
    let mut pg = Postgres::start();
    rt.block_on(pg.set_up_fleet(&[("a", "3 West"), ("b", "4 West")]));
    let sim = SimProcess::start(&[]);
    let station_a = StationDir::new(&sim.url, &[PHONE_A], &BADGES, &pg.station_section("a", 200));
    let station_b = StationDir::new(&sim.url, &[PHONE_B], &BADGES, &pg.station_section("b", 200));
    let _daemon_a = station_a.start_daemon();
    let _daemon_b = station_b.start_daemon();
    for station in [&station_a, &station_b] {
        station.wait_status(Duration::from_secs(30), "ready and in the fleet", |s| {
            fleet_reachable(s) == Some(true)
                && s["slots"]
                    .as_array()
                    .is_some_and(|slots| slots.iter().all(|slot| slot["state"] == "available"))
        });
    }
    // Alice takes a phone at 3 West.
    assert!(station_a.tap(ALICE).status.success(), "{}", station_a.log());
    station_a.undock(&PHONE_A);
    station_a.wait_status(Duration::from_secs(20), "alice's loan", |s| {
        s["loans"].as_array().is_some_and(|loans| loans.len() == 1)
    });
    station_b.wait_status(Duration::from_secs(20), "a remote loan at 4 West", |s| {
        s["fleet"]["remote-loans"] == 1 || s["fleet"]["remote_loans"] == 1
    });
    // At 4 West she is refused, and told where her phone is from.
    let refused = station_b.tap(ALICE);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("a phone from 3 West"), "{stderr}");
    let status = station_b.status_json().unwrap();
    assert!(
        status["instruction"]["headline"]
            .as_str()
            .is_some_and(|h| h.contains("you already have a phone from 3 West")),
        "{status:#}"
    );
    // Carol is not affected.
    assert!(station_b.tap(crate::daemon::BADGES[2].0).status.success());

    // Without the fleet, 4 West falls back to its own ledger and says so.
    pg.stop();
    station_b.wait_status(
        Duration::from_secs(30),
        "fleet unreachable at 4 West",
        |s| fleet_reachable(s) == Some(false),
    );
}

/// Queues an admin request for `station` as the console role; returns its id.
async fn queue_request(pg: &Postgres, station: &str, command: &str) -> i64 {
    let console = pg.connect("fleet_console", "pw-console").await;
    console
        .query_one(
            "INSERT INTO badgedock.admin_requests (station_id, command, requested_by)
             VALUES ($1, $2::text::jsonb, 'ops.lead') RETURNING id",
            &[&station, &command],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits until request `id` is acknowledged; its outcome.
async fn wait_outcome(pg: &Postgres, id: i64) -> String {
    let client = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await;
    let started = Instant::now();
    loop {
        let row = client
            .query_one(
                "SELECT done_at IS NOT NULL, outcome FROM badgedock.admin_requests WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
        if row.get::<_, bool>(0) {
            return row.get::<_, Option<String>>(1).unwrap_or_default();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "request {id} not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn audit_count(station: &StationDir, kind: &str) -> usize {
    sqlite_audit(station)
        .iter()
        .filter(|line| line.1 == kind)
        .count()
}

#[test]
fn a_console_admin_request_is_carried_out_once_by_its_station() {
    let rt = runtime();
    let pg = Postgres::start();
    rt.block_on(pg.set_up_fleet(&[("a", "3 West"), ("b", "4 West")]));
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &[PHONE_A], &BADGES, &pg.station_section("a", 200));
    let mut daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(30), "ready", |s| {
        fleet_reachable(s) == Some(true)
            && crate::support::station::slot_state(s, "1") == "available"
    });
    // Alice takes the phone and does not bring it back here.
    assert!(station.tap(ALICE).status.success(), "{}", station.log());
    station.undock(&PHONE_A);
    station.wait_status(Duration::from_secs(20), "alice's loan", |s| {
        s["loans"].as_array().is_some_and(|loans| loans.len() == 1)
    });

    // The console closes her loan: the station does it through the same command as
    // `badgedock admin close-loan`, once.
    let close = rt.block_on(queue_request(
        &pg,
        "a",
        r#"{"command": "close-loan", "user": "alice"}"#,
    ));
    let outcome = rt.block_on(wait_outcome(&pg, close));
    assert!(outcome.contains("closed by an operator"), "{outcome}");
    station.wait_status(Duration::from_secs(10), "no loan", |s| {
        s["loans"].as_array().is_some_and(|loans| loans.is_empty())
    });
    assert_eq!(audit_count(&station, "loan-closed"), 1);
    // A request for another station is not this station's business.
    let other = rt.block_on(queue_request(
        &pg,
        "b",
        r#"{"command": "mark-lost", "user": "alice"}"#,
    ));
    // Mark-lost for someone without a loan: carried out, and it says there was nothing.
    let lost = rt.block_on(queue_request(
        &pg,
        "a",
        r#"{"command": "mark-lost", "user": "carol"}"#,
    ));
    assert_eq!(rt.block_on(wait_outcome(&pg, lost)), "no loan for carol");

    // The acknowledgements are lost (as if the station died after its commit but before
    // telling PostgreSQL): the station finds the requests in its own store and
    // acknowledges them again without acting twice.
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
    rt.block_on(async {
        let client = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await;
        client
            .execute(
                "UPDATE badgedock.admin_requests SET done_at = NULL, outcome = NULL
                 WHERE station_id = 'a'",
                &[],
            )
            .await
            .unwrap();
    });
    let _daemon = station.start_daemon();
    assert_eq!(rt.block_on(wait_outcome(&pg, close)), outcome);
    assert_eq!(rt.block_on(wait_outcome(&pg, lost)), "no loan for carol");
    assert_eq!(audit_count(&station, "loan-closed"), 1);
    assert_eq!(audit_count(&station, "lost"), 0);
    let still_open: bool = rt.block_on(async {
        let client = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await;
        client
            .query_one(
                "SELECT done_at IS NULL FROM badgedock.admin_requests WHERE id = $1",
                &[&other],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert!(
        still_open,
        "station a must not acknowledge station b's request"
    );
}
