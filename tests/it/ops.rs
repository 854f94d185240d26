//! The station for the people who run it, through the real binary and a real daemon:
//! client commands that read no secret (as an unprivileged group member), a closed pipe,
//! data at rest (modes whatever the umask, no badge number in the SQLite file or its
//! WAL, a v1 table migrated to keyed hashes), the online backup restored, the control
//! socket's limits, and the Workspace ONE client refusing redirects.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::station::{bin, slot_state, ChildGuard, SimProcess, StationDir};

/// `nobody`, in group `users` (the station's admin group in these tests).
const NOBODY: u32 = 65534;
const USERS_GID: u32 = 100;

fn all_available(status: &serde_json::Value) -> bool {
    status["slots"]
        .as_array()
        .is_some_and(|slots| slots.iter().all(|slot| slot["state"] == "available"))
}

/// A station whose admin group is `users`, whose folder an unprivileged user may
/// traverse, and whose secret file only root can read.
fn group_station(sim: &SimProcess) -> StationDir {
    let station = StationDir::new(&sim.url, &crate::daemon::PHONES, &crate::daemon::BADGES, "");
    let config = std::fs::read_to_string(station.config()).unwrap();
    std::fs::write(
        station.config(),
        config.replacen("[station]\n", "[station]\nadmin-group = \"users\"\n", 1),
    )
    .unwrap();
    std::fs::set_permissions(station.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(station.config(), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(
        station.dir.path().join("client-secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    station
}

fn as_nobody(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .uid(NOBODY)
        .gid(USERS_GID)
        .output()
        .unwrap()
}

#[test]
fn group_members_use_status_and_the_dashboard_without_reading_secrets() {
    let sim = SimProcess::start(&[]);
    let station = group_station(&sim);
    let _daemon = station.start_daemon();
    let secret = badgedock::uemsim::DEMO_CLIENT_SECRET;

    let status = as_nobody(&["status"], &station.config());
    assert!(
        status.status.success(),
        "status as a group member: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(String::from_utf8_lossy(&status.stdout).contains("Workspace ONE"));

    // The full loader (check-config, run) tells an unreadable secret from a missing one
    // and never prints it.
    let check = as_nobody(&["check-config"], &station.config());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(78), "{stderr}");
    let secret_file = station.dir.path().join("client-secret");
    assert!(
        stderr.contains(&format!(
            "uem.auth.client-secret-file (line 16): {} is unreadable by user nobody: chmod 0640 root:badgedock {}",
            secret_file.display(),
            secret_file.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(secret) && !String::from_utf8_lossy(&check.stdout).contains(secret));

    // The dashboard, as the same user, on a real terminal (tmux).
    let socket = format!("badgedock-ops-{}", std::process::id());
    let command = format!(
        "setpriv --reuid={NOBODY} --regid={USERS_GID} --groups={USERS_GID} '{}' dashboard --config '{}'",
        bin().display(),
        station.config().display()
    );
    let started = Command::new("tmux")
        .args([
            "-L",
            &socket,
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "160",
            "-y",
            "50",
        ])
        .arg(&command)
        .env("TERM", "xterm-256color")
        .status()
        .unwrap();
    assert!(started.success(), "tmux new-session failed");
    let deadline = Instant::now() + Duration::from_secs(15);
    let screen = loop {
        let output = Command::new("tmux")
            .args(["-L", &socket, "capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        let screen = String::from_utf8_lossy(&output.stdout).to_string();
        if screen.contains("Test ward") || Instant::now() > deadline {
            break screen;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let server = Command::new("tmux")
        .args(["-L", &socket, "display-message", "-p", "#{pid}"])
        .output()
        .unwrap();
    if let Ok(pid) = String::from_utf8_lossy(&server.stdout)
        .trim()
        .parse::<i32>()
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    assert!(
        screen.contains("Test ward"),
        "dashboard as a group member:\n{screen}"
    );
    assert!(!screen.contains(secret));
}

#[test]
fn status_into_a_closed_pipe_exits_0_and_a_down_daemon_is_said_once() {
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &crate::daemon::PHONES, &crate::daemon::BADGES, "");
    let mut daemon = station.start_daemon();
    let piped = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' status --config '{}' | head -1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
            bin().display(),
            station.config().display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&piped.stdout).trim(), "0");
    assert!(
        !String::from_utf8_lossy(&piped.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );

    daemon.kill();
    let down = station.cli(&["status"]);
    assert_eq!(down.status.code(), Some(69));
    assert_eq!(
        String::from_utf8_lossy(&down.stderr).trim(),
        format!(
            "badgedock: cannot reach the badgedock daemon at {}: the daemon is not running (is badgedock.service running? systemctl status badgedock)",
            station.dir.path().join("control.sock").display()
        )
    );
}

/// Starts `badgedock run` with umask 000, so only the modes given at creation protect
/// the files.
fn start_daemon_with_umask_0(station: &StationDir) -> ChildGuard {
    let log = std::fs::File::create(station.dir.path().join("daemon.log")).unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec '{}' run --config '{}'",
            bin().display(),
            station.config().display()
        ))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let guard = ChildGuard { child };
    let deadline = Instant::now() + Duration::from_secs(20);
    while station.status_json().is_none() {
        assert!(
            Instant::now() < deadline,
            "daemon did not come up:\n{}",
            station.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    guard
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .mode()
        & 0o777
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A badge only the station's local table knows.
const LOCAL_BADGE: &str = "5A5B5C5D5E5F";

#[test]
fn badge_numbers_are_at_rest_only_as_keyed_hashes_in_private_files() {
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &crate::daemon::PHONES, &crate::daemon::BADGES, "");
    let mut daemon = start_daemon_with_umask_0(&station);
    station.wait_status(Duration::from_secs(15), "phones available", all_available);

    let csv = station.dir.path().join("import.csv");
    std::fs::write(
        &csv,
        format!(
            "badge,username,display-name\n{},carol,Carol Nguyen\n",
            LOCAL_BADGE.to_ascii_lowercase()
        ),
    )
    .unwrap();
    let import = station.cli(&["badges", "import", csv.to_str().unwrap()]);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert!(
        String::from_utf8_lossy(&import.stderr).contains("normalised to upper case"),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let tap = station.tap(LOCAL_BADGE);
    assert!(
        String::from_utf8_lossy(&tap.stdout).contains("Carol Nguyen: take slot"),
        "{}{}",
        String::from_utf8_lossy(&tap.stdout),
        String::from_utf8_lossy(&tap.stderr)
    );
    assert!(station.tap("04A1B2C3D4E5F6").status.success());
    let list = station.cli(&["badges", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert_eq!(listed.trim(), "…5E5F\tcarol\tCarol Nguyen\timport");

    let state = station.dir.path().join("state");
    assert_eq!(mode(&state), 0o750);
    for file in [
        "badgedock.sqlite3",
        "badgedock.sqlite3-wal",
        "badgedock.sqlite3-shm",
        "badgedock.mark",
        "station.key",
    ] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    for file in ["badgedock.sqlite3", "badgedock.sqlite3-wal"] {
        let bytes = std::fs::read(state.join(file)).unwrap();
        for badge in [LOCAL_BADGE, "04A1B2C3D4E5F6"] {
            assert!(!contains(&bytes, badge), "{badge} found in {file}");
        }
    }
    daemon.terminate(Duration::from_secs(5));
}

#[test]
fn backup_of_a_live_store_restores_the_station() {
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &crate::daemon::PHONES, &crate::daemon::BADGES, "");
    let mut daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(15), "phones available", all_available);
    let csv = station.dir.path().join("import.csv");
    std::fs::write(
        &csv,
        format!("badge,username,display-name\n{LOCAL_BADGE},carol,Carol Nguyen\n"),
    )
    .unwrap();
    assert!(station
        .cli(&["badges", "import", csv.to_str().unwrap()])
        .status
        .success());
    let tap = station.tap(LOCAL_BADGE);
    assert!(
        tap.status.success(),
        "{}",
        String::from_utf8_lossy(&tap.stderr)
    );
    let before = station.status_json().unwrap();
    assert_eq!(slot_state(&before, "1"), "reserved", "{before:#}");

    let copy = station.dir.path().join("backup.sqlite3");
    let backup = station.cli(&["backup", copy.to_str().unwrap()]);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert_eq!(mode(&copy), 0o600);
    let again = station.cli(&["backup", copy.to_str().unwrap()]);
    assert_ne!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
    assert!(!contains(&std::fs::read(&copy).unwrap(), LOCAL_BADGE));
    daemon.terminate(Duration::from_secs(5));

    // Restore: the copy (and the station key) in place of the state folder.
    let state = station.dir.path().join("state");
    let key = std::fs::read(state.join("station.key")).unwrap();
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    std::fs::copy(&copy, state.join("badgedock.sqlite3")).unwrap();
    std::fs::write(state.join("station.key"), key).unwrap();
    let _daemon = station.start_daemon();
    let after = station.status_json().unwrap();
    assert_eq!(slot_state(&after, "1"), "reserved", "{after:#}");
    let list = station.cli(&["badges", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).trim(),
        "…5E5F\tcarol\tCarol Nguyen\timport"
    );
}

#[test]
fn idle_connections_do_not_lock_out_a_tap_and_long_lines_are_refused() {
    // The client side needs a descriptor per connection.
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let _ = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        hard.min(8192),
        hard,
    );
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &crate::daemon::PHONES, &crate::daemon::BADGES, "");
    let _daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(15), "phones available", all_available);
    let socket = station.dir.path().join("control.sock");

    let idle: Vec<std::os::unix::net::UnixStream> = (0..1_100)
        .map(|_| std::os::unix::net::UnixStream::connect(&socket).unwrap())
        .collect();
    // While the daemon is still taking the 1,100 from the listen backlog, the tap's own
    // connection is one more newcomer and may be evicted by those accepted after it; it
    // is then told so and connects again, as the message says.
    let mut tap = station.tap("04A1B2C3D4E5F6");
    for _ in 0..5 {
        if !String::from_utf8_lossy(&tap.stderr).contains("too many idle connections") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        tap = station.tap("04A1B2C3D4E5F6");
    }
    assert!(
        String::from_utf8_lossy(&tap.stdout).contains("Alice Martin: take slot"),
        "{}{}",
        String::from_utf8_lossy(&tap.stdout),
        String::from_utf8_lossy(&tap.stderr)
    );
    assert!(
        station.status_json().is_some(),
        "status with 1,100 idle connections"
    );
    // The oldest idle connections were told why they were closed.
    let mut first = idle.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut told = String::new();
    let _ = first.read_to_string(&mut told);
    assert!(told.contains("too many idle connections"), "{told:?}");

    let mut long = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let line = format!(
        "{{\"v\":1,\"cmd\":\"status\",\"pad\":\"{}\"}}\n",
        "x".repeat(20_000)
    );
    let _ = long.write_all(line.as_bytes());
    let mut answer = String::new();
    let _ = long.read_to_string(&mut answer);
    assert!(
        answer.contains("request line longer than 16384 bytes: refused"),
        "{answer:?}"
    );
}

/// A loopback HTTP server answering every request with `answer`, recording each
/// request's head (request line and headers) and body.
fn http_server(answer: String) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            record
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&request).to_string());
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, seen)
}

fn redirect_to(target: &str) -> String {
    format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn the_workspace_one_client_follows_no_redirect_and_sends_no_secret_twice() {
    use badgedock::config::{UemAuth, UemConfig};
    use badgedock::domain::{Secret, Username};
    use badgedock::mdm::{Mdm, UemClient};

    let (elsewhere, seen_elsewhere) = http_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".into(),
    );
    let (tenant, seen_tenant) = http_server(redirect_to(&elsewhere));
    let config = |auth| UemConfig {
        base_url: tenant.clone(),
        tenant_code: Some(Secret::new("tenant-code-value")),
        staging_user: Username::new("staging"),
        auth,
        connect_timeout_ms: 1_000,
        request_timeout_ms: 3_000,
        ca_file: None,
        verify_after_assign: false,
        concurrency: 1,
        preferred_security_type: None,
        organization_groups: Vec::new(),
    };

    let basic = UemClient::new(&config(UemAuth::Basic {
        username: "svc".into(),
        password: Secret::new("password-value"),
    }))
    .unwrap();
    let err = basic
        .lookup_user(&Username::new("alice"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!("redirect (HTTP 307) to {elsewhere}, which is not a configured host; it was not followed")),
        "{message}"
    );
    assert!(!message.contains("tenant-code-value") && !message.contains("password-value"));

    let oauth = UemClient::new(&config(UemAuth::OAuth {
        token_url: format!("{tenant}/connect/token"),
        client_id: "client".into(),
        client_secret: Secret::new("client-secret-value"),
    }))
    .unwrap();
    let err = oauth
        .lookup_user(&Username::new("alice"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a configured host"), "{err}");

    let tenant_requests = seen_tenant.lock().unwrap().clone();
    assert_eq!(tenant_requests.len(), 2, "{tenant_requests:#?}");
    assert!(tenant_requests[0]
        .to_ascii_lowercase()
        .contains("aw-tenant-code: tenant-code-value"));
    assert!(tenant_requests[1].contains("client_secret=client-secret-value"));
    assert!(
        seen_elsewhere.lock().unwrap().is_empty(),
        "the redirect target was contacted: {:#?}",
        seen_elsewhere.lock().unwrap()
    );
}

/// The v1 schema's badge table with one plain number, as an older badgedock left it.
fn v1_store(path: &Path) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE checkouts (
                 id INTEGER PRIMARY KEY,
                 state TEXT NOT NULL
                       CHECK (state IN ('reserved', 'out', 'returned', 'expired', 'cancelled')),
                 record TEXT NOT NULL
             );
             CREATE TABLE audit (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 at INTEGER NOT NULL,
                 kind TEXT NOT NULL CHECK (length(kind) > 0),
                 reader TEXT, badge TEXT, username TEXT, device_platform TEXT,
                 device_id TEXT, slot TEXT,
                 detail TEXT NOT NULL
             );
             CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
                 BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
             CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
                 BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
             CREATE TABLE badges (
                 number TEXT PRIMARY KEY CHECK (length(number) > 0),
                 username TEXT NOT NULL CHECK (length(username) > 0),
                 display_name TEXT NOT NULL,
                 groups TEXT NOT NULL DEFAULT '[]',
                 enroller INTEGER NOT NULL DEFAULT 0 CHECK (enroller IN (0, 1)),
                 source TEXT NOT NULL CHECK (source IN ('import', 'enrolled')),
                 approved_by TEXT,
                 added_at INTEGER NOT NULL
             ) WITHOUT ROWID;
             INSERT INTO badges VALUES ('5A5B5C5D5E5F', 'carol', 'Carol Nguyen', '[]', 0, 'import', NULL, 1);
             PRAGMA application_id = 1111771953;
             PRAGMA user_version = 1;",
        )
        .unwrap();
}

#[tokio::test]
async fn a_v1_badge_table_is_migrated_to_keyed_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("badgedock.sqlite3");
    // Only the tables of v1 that later migrations change are needed here.
    v1_store(&path);
    let store = badgedock::store::Store::open(&path).unwrap();
    let found = store
        .find_badge(&badgedock::domain::BadgeNumber::new(LOCAL_BADGE))
        .await
        .unwrap()
        .expect("the migrated badge is found by its number");
    assert_eq!(found.user.username.as_str(), "carol");
    assert_eq!(found.hint, "…5E5F");
    store.close().await.unwrap();
    for file in ["badgedock.sqlite3", "badgedock.sqlite3-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert!(
            !contains(&bytes, LOCAL_BADGE),
            "the plain number survived in {file}"
        );
    }
}
