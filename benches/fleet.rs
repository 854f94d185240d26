//! The fleet benchmark (`cargo bench --bench fleet [-- --stations 200 --phones 30
//! --window-s 300 --rate-per-second 50 --poll-ms 2000]`): a shift change at many cabinets
//! at once, against one PostgreSQL fleet store and one Workspace ONE simulator.
//!
//! What is real: a private PostgreSQL cluster (Debian's `postgresql`, started here,
//! stopped by PID); the Workspace ONE simulator as its own process (`badgedock uem-sim`,
//! with a tenant-wide per-second throttle and the 250,000-calls-per-day quota); and per
//! station the real daemon (`daemon::start`: its own SQLite store, engine loop, outbox
//! worker with its own Workspace ONE client, dock watcher over its own sysfs tree, fleet
//! publisher with its own PostgreSQL connection and role), all stations in this one
//! process; the console as its own process (`badgedock fleet serve`).
//! What is modelled: the badge readers (a tap is handed to the station's resolver and
//! engine as the reader thread would), the nurses (each taps at a random moment of the
//! window and takes the phone out 2 s later; after the window every phone is docked
//! again), and the phones (sysfs folders created and removed as the kernel would).
//!
//! It prints: tap → Workspace ONE assignment (the phone's check-out work confirmed by
//! Workspace ONE) p50/p99, the tap decision itself p50/p99, Workspace ONE calls per loan
//! and per day against the quota, PostgreSQL rows and bytes per loan, publishing
//! completeness, and the console's page time with every phone out.

// A benchmark prints its figures; the shared PostgreSQL harness is test code.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../tests/it/support/postgres.rs"]
mod postgres;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use badgedock::checkout::{Snapshot, SyncState, TapDecision};
use badgedock::daemon::systemd::Notifier;
use badgedock::daemon::{RunningDaemon, StartOptions};
use tokio::sync::Mutex;

struct Args {
    stations: usize,
    phones: usize,
    window_s: u64,
    rate_per_second: u32,
    poll_ms: u64,
}

fn args() -> Args {
    let mut parsed = Args {
        stations: 200,
        phones: 30,
        window_s: 300,
        rate_per_second: 50,
        poll_ms: 2000,
    };
    let argv: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(v) = value("--stations") {
        parsed.stations = v as usize;
    }
    if let Some(v) = value("--phones") {
        parsed.phones = (v as usize).clamp(1, 99);
    }
    if let Some(v) = value("--window-s") {
        parsed.window_s = v;
    }
    if let Some(v) = value("--rate-per-second") {
        parsed.rate_per_second = v as u32;
    }
    if let Some(v) = value("--poll-ms") {
        parsed.poll_ms = v;
    }
    parsed
}

fn username(station: usize, nurse: usize) -> String {
    format!("s{station:03}n{nurse:02}")
}

fn badge(station: usize, nurse: usize) -> String {
    format!(
        "04{:012X}",
        0xB000_0000u64 + (station as u64) * 100 + nurse as u64
    )
}

fn udid(station: usize, phone: usize) -> String {
    format!(
        "00008110-{:016X}",
        0xF1EE_0000_0000u64 + (station as u64) * 100 + phone as u64
    )
}

fn port(phone: usize) -> String {
    format!("1-{}.{}", phone / 10 + 1, phone % 10 + 1)
}

/// The simulator's seed: one multi-user staging account, a nurse per badge, a docked
/// Apple phone per slot, all enrolled by the staging account.
fn write_seed(path: &Path, stations: usize, phones: usize) {
    let mut users = vec![serde_json::json!({
        "id": 9000, "username": badgedock::uemsim::DEMO_STAGING_USER, "first-name": "Staging",
        "last-name": "Fleet", "staging": "multi", "group-id": 571
    })];
    let mut devices = Vec::new();
    for s in 0..stations {
        for n in 0..phones {
            let id = 100_000 + (s * 100 + n) as i64;
            users.push(serde_json::json!({
                "id": id, "username": username(s, n), "first-name": "Nurse",
                "last-name": format!("{s}-{n}"), "security-type": 1, "group-id": 571
            }));
            devices.push(serde_json::json!({
                "id": id, "platform": "apple", "udid": udid(s, n),
                "serial-number": format!("F{:011X}", id), "name": format!("S{s} iPhone {n}"),
                "model": "iPhone 13", "os-version": "17.5.1", "user-id": 9000,
                "staged-by": 9000, "group-id": 571
            }));
        }
    }
    let seed = serde_json::json!({
        "tenant-code": "SIMTENANTFLEET",
        "oauth-clients": [{ "client-id": badgedock::uemsim::DEMO_CLIENT_ID,
                            "client-secret": badgedock::uemsim::DEMO_CLIENT_SECRET }],
        "organization-groups": [{ "id": 570, "name": "Hospital" }, { "id": 571, "name": "Wards" }],
        "users": users,
        "devices": devices,
    });
    std::fs::write(path, seed.to_string()).expect("write the seed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process stopped by its PID when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_port(sysfs: &Path, phone: usize, serial: &str) {
    let dir = sysfs.join("bus/usb/devices").join(port(phone));
    std::fs::create_dir_all(&dir).expect("port folder");
    std::fs::write(dir.join("idVendor"), "05ac\n").expect("idVendor");
    std::fs::write(dir.join("idProduct"), "12a8\n").expect("idProduct");
    std::fs::write(dir.join("serial"), format!("{serial}\n")).expect("serial");
}

fn station_files(dir: &Path, s: usize, phones: usize, sim_url: &str, fleet: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("station dir");
    std::fs::write(
        dir.join("client-secret"),
        badgedock::uemsim::DEMO_CLIENT_SECRET,
    )
    .expect("secret");
    let mut csv = String::from("badge,username,display-name,groups\n");
    for n in 0..phones {
        csv.push_str(&format!(
            "{},{},Nurse {s}-{n},nursing\n",
            badge(s, n),
            username(s, n)
        ));
    }
    std::fs::write(dir.join("badges.csv"), csv).expect("badges");
    let mut slots = Vec::new();
    for n in 0..phones {
        write_port(&dir.join("sys"), n, &udid(s, n).replace('-', ""));
        slots.push(format!(
            "{{ label = \"{}\", port = \"{}\" }}",
            n + 1,
            port(n)
        ));
    }
    let config = format!(
        r#"[station]
name = "Ward {s:03}"
state-dir = "{state}"
control-socket = "{socket}"

[uem]
base-url = "{sim_url}"
staging-user = "{staging}"
tenant-code-file = "tenant-code"
request-timeout-ms = 10000
[uem.auth]
kind = "oauth"
token-url = "{sim_url}/connect/token"
client-id = "{client_id}"
client-secret-file = "client-secret"

[[reader]]
name = "front"
kind = "pcsc"
match = "Bench reader"
format = "hex"

[dock]
sysfs-root = "{sysfs}"
rescan-ms = 1000
flap-ms = 300
slots = [ {slots} ]

[directory]
kind = "file"
path = "badges.csv"

[checkout]
reservation-seconds = 60

{fleet}"#,
        state = dir.join("state").display(),
        socket = dir.join("control.sock").display(),
        staging = badgedock::uemsim::DEMO_STAGING_USER,
        client_id = badgedock::uemsim::DEMO_CLIENT_ID,
        sysfs = dir.join("sys").display(),
        slots = slots.join(", "),
    );
    std::fs::write(dir.join("tenant-code"), "SIMTENANTFLEET\n").expect("tenant code");
    let path = dir.join("badgedock.toml");
    std::fs::write(&path, config).expect("config");
    path
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Every API call the simulator journalled after `since`.
async fn journal(http: &reqwest::Client, sim: &str, since: u64) -> Vec<serde_json::Value> {
    let answer: serde_json::Value = http
        .get(format!("{sim}/_sim/journal?since={since}"))
        .send()
        .await
        .expect("journal")
        .json()
        .await
        .expect("journal json");
    answer.as_array().cloned().unwrap_or_default()
}

fn all_available(snapshot: &Snapshot) -> bool {
    snapshot
        .slots
        .iter()
        .all(|s| s.state == badgedock::checkout::SlotState::Available)
}

/// The device's check-out work is confirmed by Workspace ONE: no action of it waits.
fn assigned(snapshot: &Snapshot, device_id: &str) -> bool {
    let slot = snapshot
        .slots
        .iter()
        .find(|s| s.device.as_ref().is_some_and(|d| d.id == device_id))
        .map(|s| s.sync.clone());
    let loan = snapshot
        .loans
        .iter()
        .find(|l| l.device.id == device_id)
        .map(|l| l.sync.clone());
    matches!(slot.or(loan), Some(SyncState::Synced))
}

async fn wait_until(
    daemon: &RunningDaemon,
    timeout: Duration,
    done: impl Fn(&Snapshot) -> bool,
) -> bool {
    let mut snapshots = daemon.snapshots.clone();
    tokio::time::timeout(timeout, async {
        loop {
            if done(&snapshots.borrow_and_update()) {
                return;
            }
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    })
    .await
    .is_ok()
}

async fn pg_count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .map(|row| row.get::<_, i64>(0))
        .unwrap_or(-1)
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(args));
    // The stations' store and dock threads end with the process.
    runtime.shutdown_background();
}

async fn run(args: Args) {
    let Args {
        stations,
        phones,
        window_s,
        rate_per_second,
        poll_ms,
    } = args;
    let loans_expected = stations * phones;
    println!(
        "fleet bench: {stations} stations × {phones} phones, taps spread over {window_s} s, \
         Workspace ONE throttle {rate_per_second} calls/s, fleet poll {poll_ms} ms"
    );
    let work = tempfile::Builder::new()
        .prefix("badgedock-fleet-bench-")
        .tempdir()
        .expect("tempdir");

    // PostgreSQL: one connection per station, the console and this bench.
    let max_connections = format!("max_connections={}", stations + 30);
    let pg = postgres::Postgres::start_with(&["-c", &max_connections, "-c", "fsync=on"]);
    let ids: Vec<(String, String)> = (0..stations)
        .map(|s| (format!("w{s:03}"), format!("Ward {s:03}")))
        .collect();
    let refs: Vec<(&str, &str)> = ids.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    pg.set_up_fleet(&refs).await;
    let owner = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await;

    // Workspace ONE: the simulator process.
    let seed = work.path().join("seed.json");
    write_seed(&seed, stations, phones);
    let sim_port = free_port();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_badgedock"));
    let _sim = Process(
        Command::new(&bin)
            .args(["uem-sim", "--listen", &format!("127.0.0.1:{sim_port}")])
            .arg("--seed")
            .arg(&seed)
            .args(["--reenrol-after-ms", "0"])
            .args(["--rate-per-second", &rate_per_second.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start badgedock uem-sim"),
    );
    wait_for_port(sim_port, "the simulator");
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let http = reqwest::Client::new();

    // The stations.
    let started = Instant::now();
    let mut daemons = Vec::new();
    for (s, (id, _)) in ids.iter().enumerate() {
        let dir = work.path().join(id);
        let fleet = pg.station_section(id, poll_ms);
        let path = station_files(&dir, s, phones, &sim_url, &fleet);
        let config = badgedock::config::load(&path, &badgedock::config::LoadEnv::default())
            .unwrap_or_else(|e| panic!("station {id} config: {e}"));
        let daemon = badgedock::daemon::start(
            config,
            StartOptions {
                notifier: Notifier::disabled(),
                hardware_readers: false,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("station {id}: {e:#}"));
        daemons.push((dir, Arc::new(daemon)));
    }
    let mut ready = 0;
    for (_, daemon) in &daemons {
        if wait_until(daemon, Duration::from_secs(600), all_available).await {
            ready += 1;
        }
    }
    println!(
        "start-up: {ready}/{stations} stations with every phone identified and available in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Let the first publications settle.
    tokio::time::sleep(Duration::from_millis(poll_ms * 2 + 1000)).await;

    let startup_calls = journal(&http, &sim_url, 0).await;
    let journal_start = startup_calls
        .last()
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or(0);
    // Start-up is one device lookup per phone (plus tokens): what one lookup costs.
    let startup_lookups = startup_calls
        .iter()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.to_ascii_lowercase().starts_with("/api/mdm/devices"))
                && e["fault"].is_null()
        })
        .count();
    let calls_per_lookup = startup_lookups as f64 / loans_expected.max(1) as f64;
    let events_before = pg_count(&owner, "SELECT count(*) FROM badgedock.events").await;
    let bytes_before = pg_count(
        &owner,
        "SELECT pg_total_relation_size('badgedock.events')::bigint",
    )
    .await;
    let db_before = pg_count(&owner, "SELECT pg_database_size('badgedock')::bigint").await;

    // The shift change: every nurse taps once within the window, takes the phone 2 s later.
    let assign_ms = Arc::new(Mutex::new(Vec::<f64>::new()));
    let decide_ms = Arc::new(Mutex::new(Vec::<f64>::new()));
    let refused = Arc::new(Mutex::new(Vec::<String>::new()));
    let shift = Instant::now();
    let mut tasks = Vec::new();
    let mut lcg: u64 = 0x5eed_f1ee7;
    for (s, (dir, daemon)) in daemons.iter().enumerate() {
        for n in 0..phones {
            lcg = lcg
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let offset = Duration::from_millis((lcg >> 33) % (window_s * 1000).max(1));
            let daemon = Arc::clone(daemon);
            let sysfs = dir.join("sys");
            let (assign_ms, decide_ms, refused) = (
                Arc::clone(&assign_ms),
                Arc::clone(&decide_ms),
                Arc::clone(&refused),
            );
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(tokio::time::Instant::from_std(shift + offset)).await;
                let tapped = Instant::now();
                let input = daemon
                    .resolver
                    .resolve_text(Some("front"), &badge(s, n))
                    .await;
                let decision = badgedock::daemon::engine_loop::decide(&daemon.engine, input).await;
                decide_ms
                    .lock()
                    .await
                    .push(tapped.elapsed().as_secs_f64() * 1000.0);
                let device = match decision {
                    Ok(TapDecision::TakeSlot { device, slot, .. }) => (device, slot),
                    other => {
                        refused.lock().await.push(format!("{s}/{n}: {other:?}"));
                        return;
                    }
                };
                let (device, slot) = device;
                let id = device.id.clone();
                let taker = {
                    let sysfs = sysfs.clone();
                    let phone = slot.as_str().parse::<usize>().unwrap_or(1) - 1;
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        let _ = std::fs::remove_dir_all(
                            sysfs.join("bus/usb/devices").join(port(phone)),
                        );
                    })
                };
                if wait_until(&daemon, Duration::from_secs(900), |snap| {
                    assigned(snap, &id)
                })
                .await
                {
                    assign_ms
                        .lock()
                        .await
                        .push(tapped.elapsed().as_secs_f64() * 1000.0);
                }
                let _ = taker.await;
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let shift_s = shift.elapsed().as_secs_f64();
    // Every phone out and published: the console with every phone listed.
    let mut loans_published = 0;
    let publish_wait = Instant::now();
    while publish_wait.elapsed() < Duration::from_secs(300) {
        loans_published = pg_count(&owner, "SELECT count(*) FROM badgedock.loans").await;
        if loans_published >= loans_expected as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let loans_published_after = publish_wait.elapsed().as_secs_f64();

    let console_port = free_port();
    let console_dir = work.path().join("console");
    std::fs::create_dir_all(&console_dir).expect("console dir");
    std::fs::write(console_dir.join("console-password"), "pw-console\n").expect("pw");
    std::fs::write(
        console_dir.join("console.toml"),
        format!(
            "[fleet]\nurl = \"{}\"\npassword-file = \"console-password\"\ntls = false\n\n\
             [console]\nlisten = \"127.0.0.1:{console_port}\"\nproxy-header = \"X-Remote-User\"\n\
             trusted-proxies = [\"127.0.0.1\"]\nsecure-cookies = false\n",
            pg.url("fleet_console")
        ),
    )
    .expect("console config");
    let _console = Process(
        Command::new(&bin)
            .args(["fleet", "serve", "--config"])
            .arg(console_dir.join("console.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start badgedock fleet serve"),
    );
    wait_for_port(console_port, "the console");
    let mut page_times: BTreeMap<&str, (Vec<f64>, usize)> = BTreeMap::new();
    for page in ["/", "/phones", "/overdue", "/lost"] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..10 {
            let at = Instant::now();
            let answer = http
                .get(format!("http://127.0.0.1:{console_port}{page}"))
                .header("X-Remote-User", "bench.viewer")
                .send()
                .await
                .expect("console page");
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            times.push(at.elapsed().as_secs_f64() * 1000.0);
            assert!(status.is_success(), "console {page}: {status}");
            size = body.len();
        }
        times.sort_by(f64::total_cmp);
        page_times.insert(page, (times, size));
    }
    let phones_listed = {
        let body = http
            .get(format!("http://127.0.0.1:{console_port}/phones"))
            .header("X-Remote-User", "bench.viewer")
            .send()
            .await
            .expect("phones")
            .text()
            .await
            .unwrap_or_default();
        body.matches("<tr>").count().saturating_sub(1)
    };

    // Every phone comes back: check-in.
    let back = Instant::now();
    for (s, (dir, _)) in daemons.iter().enumerate() {
        for n in 0..phones {
            write_port(&dir.join("sys"), n, &udid(s, n).replace('-', ""));
        }
    }
    let mut back_ready = 0;
    for (_, daemon) in &daemons {
        if wait_until(daemon, Duration::from_secs(900), all_available).await {
            back_ready += 1;
        }
    }
    let back_s = back.elapsed().as_secs_f64();
    // Let the fleet publishers catch up, then compare with the stores.
    let mut audit_rows = 0i64;
    for (dir, _) in &daemons {
        let db = rusqlite::Connection::open_with_flags(
            dir.join("state/badgedock.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open a station store");
        audit_rows += db
            .query_row("SELECT count(*) FROM audit", [], |r| r.get::<_, i64>(0))
            .unwrap_or(0);
    }
    let mut events_now = 0;
    let catch_up = Instant::now();
    while catch_up.elapsed() < Duration::from_secs(300) {
        events_now = pg_count(&owner, "SELECT count(*) FROM badgedock.events").await;
        if events_now >= audit_rows {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let duplicates = pg_count(
        &owner,
        "SELECT count(*) - count(DISTINCT (station_id, seq)) FROM badgedock.events",
    )
    .await;
    let bytes_after = pg_count(
        &owner,
        "SELECT pg_total_relation_size('badgedock.events')::bigint",
    )
    .await;
    let db_after = pg_count(&owner, "SELECT pg_database_size('badgedock')::bigint").await;

    // Workspace ONE calls in the shift (tap to check-in done), by kind.
    let calls = journal(&http, &sim_url, journal_start).await;
    let api: Vec<&serde_json::Value> = calls
        .iter()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.to_ascii_lowercase().starts_with("/api/"))
        })
        .collect();
    let throttled = api
        .iter()
        .filter(|e| e["fault"].as_str() == Some("throttle"))
        .count();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for entry in &api {
        let path = entry["path"].as_str().unwrap_or_default();
        let method = entry["method"].as_str().unwrap_or_default();
        let shape: String = path
            .split('/')
            .map(|part| {
                if part.chars().any(|c| c.is_ascii_digit()) && part.len() > 3 {
                    "{id}"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let shape = shape.split('?').next().unwrap_or_default().to_string();
        *by_kind.entry(format!("{method} {shape}")).or_default() += 1;
    }

    let mut assign = assign_ms.lock().await.clone();
    assign.sort_by(f64::total_cmp);
    let mut decide = decide_ms.lock().await.clone();
    decide.sort_by(f64::total_cmp);
    let refused = refused.lock().await.clone();
    let loans = assign.len().max(1);

    println!();
    println!(
        "shift change: {} taps in {shift_s:.1} s ({} refused), {} loans assigned in Workspace ONE",
        decide.len(),
        refused.len(),
        assign.len()
    );
    for line in refused.iter().take(5) {
        println!("  refused {line}");
    }
    println!(
        "tap → station decision:          p50 {:8.1} ms   p99 {:8.1} ms   max {:8.1} ms",
        percentile(&decide, 50.0),
        percentile(&decide, 99.0),
        decide.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "tap → Workspace ONE assignment:  p50 {:8.1} ms   p99 {:8.1} ms   max {:8.1} ms",
        percentile(&assign, 50.0),
        percentile(&assign, 99.0),
        assign.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "check-in of all {} phones: {back_ready}/{stations} stations all available after {back_s:.1} s",
        loans_expected
    );
    let per_loan = api.len() as f64 / loans as f64;
    let answered_per_loan = (api.len() - throttled) as f64 / loans as f64;
    println!(
        "Workspace ONE: {} API calls for {} loans (check-out and check-in): {per_loan:.2} per loan, \
         {answered_per_loan:.2} answered + {:.2} throttled (429)",
        api.len(),
        loans,
        throttled as f64 / loans as f64
    );
    for (kind, count) in &by_kind {
        println!("  {count:7}  {kind}");
    }
    // A day of three shift changes: every phone lent three times, and (phones being held
    // for the whole shift) every phone on loan nearly all day, each open loan asked about
    // every 10 minutes by its station (the engine's RECONCILE_MS), one device lookup each.
    let loans_per_day = (stations * phones * 3) as f64;
    let loan_calls_per_day = answered_per_loan * loans_per_day;
    let reconcile_per_day = (stations * phones) as f64 * 144.0 * calls_per_lookup;
    let per_day = loan_calls_per_day + reconcile_per_day;
    println!(
        "device lookup (start-up identification): {calls_per_lookup:.2} calls per phone ({startup_lookups} for {loans_expected} phones)"
    );
    println!(
        "Workspace ONE per day, 3 shift changes ({loans_per_day:.0} loans): {loan_calls_per_day:.0} calls for \
         check-outs and check-ins ({:.1}% of a 250,000 quota) + {reconcile_per_day:.0} reconciliation \
         lookups (computed: {} loans open all day, each asked about every 10 min) = {per_day:.0} calls/day, \
         {:.0}% of the quota",
        loan_calls_per_day / 250_000.0 * 100.0,
        stations * phones,
        per_day / 250_000.0 * 100.0
    );
    let events_shift = events_now - events_before;
    println!(
        "PostgreSQL: {events_shift} audit rows published for the shift = {:.2} rows per loan; \
         events table +{} bytes = {:.0} bytes per loan; database +{} bytes = {:.0} bytes per loan \
         (slots, loans and heartbeats are replaced, not appended)",
        events_shift as f64 / loans as f64,
        bytes_after - bytes_before,
        (bytes_after - bytes_before) as f64 / loans as f64,
        db_after - db_before,
        (db_after - db_before) as f64 / loans as f64,
    );
    println!(
        "publishing: {events_now} rows in PostgreSQL for {audit_rows} audit rows in the {stations} stores, \
         {duplicates} duplicates; all {loans_published} loans visible {loans_published_after:.1} s after the last tap's assignment"
    );
    println!("console with {phones_listed} phones listed (/phones), 10 requests each:");
    for (page, (times, size)) in &page_times {
        println!(
            "  GET {page:9} p50 {:7.1} ms   p99 {:7.1} ms   {:8} bytes",
            percentile(times, 50.0),
            percentile(times, 99.0),
            size
        );
    }

    for (_, daemon) in daemons {
        daemon.cancel.cancel();
    }
}
