//! The journal as journald receives it. This machine has no running journald, so the
//! daemon runs in a private mount namespace (`unshare -m`, root) where
//! `/run/systemd/journal/socket` leads to a datagram socket this test binds: the daemon
//! speaks the real native journal protocol (tracing-journald) to it, and the test parses
//! the datagrams. `JOURNAL_STREAM` is set to the device:inode of the daemon's stderr, as
//! systemd does; a value that does not match stderr is not trusted.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::daemon::{BADGES, PHONES};
use crate::support::station::{bin, ChildGuard, SimProcess, StationDir};

type Entry = BTreeMap<String, String>;

/// Parses one native-protocol datagram: `KEY=value\n`, or `KEY\n` + u64 LE length + bytes + `\n`.
fn parse_datagram(mut data: &[u8]) -> Entry {
    let mut entry = Entry::new();
    while !data.is_empty() {
        let line_end = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
        let line = &data[..line_end];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            entry.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            data = data.get(line_end + 1..).unwrap_or_default();
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &data[line_end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            entry.insert(key, String::from_utf8_lossy(&rest[8..8 + len]).into_owned());
            data = rest.get(8 + len + 1..).unwrap_or_default();
        }
    }
    entry
}

struct Journal {
    entries: Arc<Mutex<Vec<Entry>>>,
    _dir: tempfile::TempDir,
    socket_path: std::path::PathBuf,
}

impl Journal {
    fn bind() -> Journal {
        let dir = tempfile::tempdir().unwrap();
        let socket_path = dir.path().join("journal.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let entries = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&entries);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => sink.lock().unwrap().push(parse_datagram(&buf[..n])),
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                        if Arc::strong_count(&sink) == 1 {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Journal {
            entries,
            _dir: dir,
            socket_path,
        }
    }

    fn all(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str, timeout: Duration, found: impl Fn(&Entry) -> bool) -> Entry {
        let started = Instant::now();
        loop {
            if let Some(entry) = self.all().into_iter().find(|e| found(e)) {
                return entry;
            }
            assert!(
                started.elapsed() < timeout,
                "no journal entry {what}; got:\n{:#?}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `badgedock ARGS` in a mount namespace whose journal socket is `journal`'s, stderr to
/// `stderr_file`, `JOURNAL_STREAM` as given (None: the file's own device:inode).
fn spawn_under_journal(
    journal: &Journal,
    args: &[&str],
    stderr_file: &std::path::Path,
    journal_stream: Option<&str>,
) -> ChildGuard {
    let stderr = std::fs::File::create(stderr_file).unwrap();
    let meta = stderr.metadata().unwrap();
    let stream = journal_stream
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}:{}", meta.dev(), meta.ino()));
    let script = format!(
        "mount -t tmpfs none /run && mkdir -p /run/systemd/journal && ln -s '{}' /run/systemd/journal/socket && exec \"$0\" \"$@\"",
        journal.socket_path.display()
    );
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(bin())
        .args(args)
        .env("JOURNAL_STREAM", stream)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("unshare");
    ChildGuard { child }
}

fn http(method: reqwest::Method, url: &str, body: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        reqwest::Client::new()
            .request(method, url)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
    });
}

fn field<'a>(entry: &'a Entry, key: &str) -> &'a str {
    entry.get(key).map(String::as_str).unwrap_or_default()
}

#[test]
fn the_journal_tells_the_shift_in_sentences() {
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(&sim.url, &PHONES, &BADGES, "");
    let journal = Journal::bind();
    let stderr_file = station.dir.path().join("stderr.log");
    let config = station.config();
    let mut daemon = spawn_under_journal(
        &journal,
        &["run", "--config", config.to_str().unwrap()],
        &stderr_file,
        None,
    );

    let started = journal.wait_for("started", Duration::from_secs(20), |e| {
        field(e, "MESSAGE_ID") == "f8c2cbed1c1e408ea78b80d9e4625d0c"
    });
    assert_eq!(
        field(&started, "PRIORITY"),
        "6",
        "INFO is info: {started:#?}"
    );
    assert!(field(&started, "MESSAGE").contains("started: station \"Test ward\", 2 slots"));
    station.wait_status(Duration::from_secs(15), "phones ready", |s| {
        s["slots"]
            .as_array()
            .is_some_and(|slots| slots.iter().all(|slot| slot["state"] == "available"))
    });

    // A check-out and a check-in.
    assert!(station.tap("04A1B2C3D4E5F6").status.success());
    station.undock(&PHONES[0]);
    let checkout = journal.wait_for("check-out", Duration::from_secs(10), |e| {
        field(e, "MESSAGE_ID") == "8d59327e8d7b4bacb84763d2f9f20247"
    });
    assert_eq!(
        field(&checkout, "MESSAGE"),
        "check-out: Alice Martin took 4W iPhone 01 from slot 1",
        "{checkout:#?}"
    );
    assert_eq!(field(&checkout, "PRIORITY"), "6");
    assert_eq!(field(&checkout, "SLOT"), "1");
    assert_eq!(field(&checkout, "USERNAME"), "alice");
    assert_eq!(field(&checkout, "DEVICE"), "00008110-000A1B2C3D4E801E");
    sim.wait_enrollment_user(PHONES[0].serial, "alice", Duration::from_secs(10));
    station.dock(&PHONES[0]);
    let checkin = journal.wait_for("check-in", Duration::from_secs(15), |e| {
        field(e, "MESSAGE_ID") == "8f20810c77ff4cc0936e4f07f493dc0f"
    });
    assert!(
        field(&checkin, "MESSAGE").starts_with("check-in: "),
        "{checkin:#?}"
    );

    // A refusal: a badge nobody holds.
    let _ = station.tap("DEADBEEF99");
    let refusal = journal.wait_for("refusal", Duration::from_secs(10), |e| {
        field(e, "MESSAGE_ID") == "a9526d6d7ebd48588c1a647af480faf8"
    });
    assert_eq!(field(&refusal, "PRIORITY"), "4", "{refusal:#?}");
    assert!(field(&refusal, "MESSAGE").starts_with("refusal: "));

    // An outage and its end.
    station.wait_status(Duration::from_secs(15), "phone 1 back", |s| {
        s["slots"][0]["state"] == "available"
    });
    http(
        reqwest::Method::POST,
        &format!("{}/_sim/faults", sim.url),
        r#"["outage:600s"]"#,
    );
    assert!(station.tap("0A1B2C3D").status.success());
    station.undock(&PHONES[0]);
    let down = journal.wait_for("Workspace ONE down", Duration::from_secs(20), |e| {
        field(e, "MESSAGE_ID") == "dc8844f7a18743d680d42f1db16b86ef"
    });
    assert!(
        field(&down, "MESSAGE").starts_with("Workspace ONE unreachable, "),
        "{down:#?}"
    );
    assert_eq!(field(&down, "PRIORITY"), "4");
    http(
        reqwest::Method::DELETE,
        &format!("{}/_sim/faults", sim.url),
        "",
    );
    let up = journal.wait_for("Workspace ONE up", Duration::from_secs(40), |e| {
        field(e, "MESSAGE_ID") == "3b72fc0283724184b053389b0cfe9c99"
    });
    assert!(
        field(&up, "MESSAGE").starts_with("Workspace ONE reachable again after "),
        "{up:#?}"
    );

    // Stopping names the signal.
    assert_eq!(daemon.terminate(Duration::from_secs(10)), Some(0));
    let stopping = journal.wait_for("stopping", Duration::from_secs(5), |e| {
        field(e, "MESSAGE_ID") == "c1e86cba12bb4e94b1b70c231917ea63"
    });
    assert_eq!(field(&stopping, "MESSAGE"), "badgedock stopping on SIGTERM");
    assert_eq!(field(&stopping, "SIGNAL"), "SIGTERM");

    // Never a full badge number, never Debug formatting, nothing on stderr.
    for entry in journal.all() {
        for (key, value) in &entry {
            for badge in ["04A1B2C3D4E5F6", "DEADBEEF99", "0A1B2C3D"] {
                // (Carol's badge happens to be part of phone 1's UDID.)
                assert!(key == "DEVICE" || !value.contains(badge), "{key}={value}");
            }
            assert!(
                !value.contains("Username(") && !value.contains("SlotLabel("),
                "{key}={value}"
            );
        }
    }
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    assert!(stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn journal_stream_is_trusted_only_when_it_names_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[station]\nname = 3\n").unwrap();
    let journal = Journal::bind();
    let stderr_file = dir.path().join("stderr.log");
    let args = ["check-config", bad.to_str().unwrap()];

    // Matching device:inode: the config error goes to the stream with priority err.
    let mut child = spawn_under_journal(&journal, &args, &stderr_file, None);
    let status = child.child.wait().unwrap();
    assert_eq!(status.code(), Some(78));
    let text = std::fs::read_to_string(&stderr_file).unwrap();
    assert!(text.starts_with("<3>badgedock: "), "{text}");

    // An inherited value that names another file: plain stderr, no priority prefix.
    let mut child = spawn_under_journal(&journal, &args, &stderr_file, Some("1:2"));
    let status = child.child.wait().unwrap();
    assert_eq!(status.code(), Some(78));
    let text = std::fs::read_to_string(&stderr_file).unwrap();
    assert!(text.starts_with("badgedock: "), "{text}");
}
