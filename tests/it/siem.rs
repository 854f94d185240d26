//! The SIEM forwarder against a real rsyslogd on loopback: audit rows arrive in RFC 5424
//! over UDP and in CEF over TCP (octet-counted), parsed by rsyslog as RFC 5424; a
//! restarted forwarder resumes from its durable cursor without duplicates; rows written
//! while the receiver is down arrive once it is back; TLS to an `openssl s_server` with a
//! test CA; and the real daemon, with the simulator, forwarding its audit (badges
//! redacted).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use badgedock::checkout::{AuditEntry, Commit};
use badgedock::config::{self, LoadEnv};
use badgedock::domain::{ReaderName, Timestamp, Username};
use badgedock::siem::Forwarder;
use badgedock::store::Store;
use tokio_util::sync::CancellationToken;

use crate::support::rsyslog::{free_port, Rsyslog};
use crate::support::station::StationDir;

fn entry(n: usize) -> AuditEntry {
    AuditEntry {
        at: Timestamp(1_793_577_600_000 + i64::try_from(n).unwrap() * 1000),
        kind: badgedock::checkout::AuditKind::TapRefused,
        reader: Some(ReaderName::new("front")),
        badge: Some("…3F9A".into()),
        username: Some(Username::new("amartin")),
        device: None,
        slot: None,
        detail: format!("row {n}: no phone | ready = \"none\""),
    }
}

async fn append(store: &Store, range: std::ops::Range<usize>) {
    for n in range {
        store
            .commit(Commit {
                audit: vec![entry(n)],
                ..Commit::default()
            })
            .await
            .unwrap();
    }
}

struct Running {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(station: &StationDir, store: &Store) -> Running {
    let config = config::load(&station.config(), &LoadEnv::default()).unwrap();
    let forwarder = Forwarder::new(store.clone(), config.siem.unwrap(), &config.station.name);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(forwarder.run(cancel.clone()));
    Running { cancel, task }
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap();
    }
}

fn store_of(station: &StationDir) -> Store {
    Store::open(&station.dir.path().join("state/badgedock.sqlite3")).unwrap()
}

/// The `row N:` numbers of the audit lines received, in arrival order.
fn rows_received(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .filter_map(|line| {
            let at = line.find("row ")? + 4;
            line[at..].split(':').next()?.parse().ok()
        })
        .collect()
}

async fn wait_rows(rsyslog: &Rsyslog, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines: Vec<String> = rsyslog
            .raw()
            .into_iter()
            .filter(|l| l.contains(" tap-refused "))
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5424_over_udp_reaches_rsyslog_and_a_restart_resumes_from_the_cursor() {
    let rsyslog = Rsyslog::start();
    let station = StationDir::new(
        "http://127.0.0.1:9",
        &[],
        &[],
        &format!(
            "[siem]\ntarget = \"127.0.0.1:{}\"\ntransport = \"udp\"\nformat = \"rfc5424\"\nhealth-interval-seconds = 10\n",
            rsyslog.udp_port
        ),
    );
    let store = store_of(&station);
    append(&store, 1..4).await;
    let forwarder = start(&station, &store);
    let lines = wait_rows(&rsyslog, 3).await;
    assert_eq!(rows_received(&lines), vec![1, 2, 3], "{lines:?}");
    forwarder.stop().await;
    assert_eq!(store.audit_cursor("siem").await.unwrap(), Some(3));

    // Rows written while it was stopped go out after the restart; none twice.
    append(&store, 4..6).await;
    let forwarder = start(&station, &store);
    let lines = wait_rows(&rsyslog, 5).await;
    assert_eq!(rows_received(&lines), vec![1, 2, 3, 4, 5], "{lines:?}");
    // The first health line follows within five seconds of the start.
    let health = rsyslog.wait_for(1, |l| l.contains(" health "));
    forwarder.stop().await;
    store.close().await.unwrap();

    let line = &lines[0];
    assert!(
        line.starts_with("<109>1 2026-11-02T00:00:01.000Z "),
        "{line}"
    );
    assert!(
        line.contains(" badgedock ")
            && line.contains(" tap-refused [audit@32473 seq=\"1\" hash=\"")
            && line.contains(
                "station=\"Test ward\" reader=\"front\" badge=\"…3F9A\" user=\"amartin\"]"
            )
            && line.ends_with(" row 1: no phone | ready = \"none\""),
        "{line}"
    );
    // rsyslog parsed it as RFC 5424: version, app, msgid and structured data.
    let parsed = rsyslog.parsed();
    let first = parsed.iter().find(|l| l.contains("tap-refused")).unwrap();
    assert!(
        first.starts_with("1|badgedock|tap-refused|[audit@32473 seq=\"1\""),
        "{first}"
    );
    assert_eq!(health.len(), 1, "no health line: {:?}", rsyslog.raw());
    assert!(
        health[0]
            .contains("[health@32473 station=\"Test ward\" outbox-pending=\"0\" audit-head=\"5\""),
        "{}",
        health[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cef_over_tcp_survives_a_receiver_outage_without_loss_or_duplicates() {
    let rsyslog = Rsyslog::start();
    let station = StationDir::new(
        "http://127.0.0.1:9",
        &[],
        &[],
        &format!(
            "[siem]\ntarget = \"127.0.0.1:{}\"\ntransport = \"tcp\"\nformat = \"cef\"\nhealth-interval-seconds = 0\n",
            rsyslog.tcp_port
        ),
    );
    let store = store_of(&station);
    append(&store, 1..3).await;
    let forwarder = start(&station, &store);
    let lines = wait_rows(&rsyslog, 2).await;
    assert_eq!(rows_received(&lines), vec![1, 2]);

    // The receiver goes away; rows keep being written; it comes back on the same port.
    let mut rsyslog = rsyslog;
    rsyslog.stop();
    append(&store, 3..6).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rsyslog = rsyslog.restart();
    let lines = wait_rows(&rsyslog, 5).await;
    forwarder.stop().await;
    assert_eq!(store.audit_cursor("siem").await.unwrap(), Some(5));
    store.close().await.unwrap();
    let mut received = rows_received(&lines);
    received.sort_unstable();
    assert_eq!(received, vec![1, 2, 3, 4, 5], "{lines:?}");

    let line = &lines[0];
    assert!(
        line.contains(" tap-refused - CEF:0|badgedock|badgedock|0.1.0|tap-refused|row 1: no phone \\| ready = \"none\"|5|rt=1793577601000 "),
        "{line}"
    );
    assert!(
        line.contains(" cs1Label=station cs1=Test ward cn1Label=seq cn1=1 cs2Label=hash cs2="),
        "{line}"
    );
    assert!(line.contains(" suser=amartin "), "{line}");
    assert!(
        line.ends_with(" msg=row 1: no phone | ready \\= \"none\""),
        "{line}"
    );
    assert!(rsyslog
        .parsed()
        .iter()
        .any(|l| l.starts_with("1|badgedock|tap-refused|-|")));
}

/// `openssl s_server` with a certificate from a throw-away CA; what it receives goes to
/// its stdout, collected in a file.
struct TlsReceiver {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl TlsReceiver {
    fn start() -> TlsReceiver {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=badgedock test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=siem.test",
        ]);
        std::fs::write(dir.path().join("ext.cnf"), "subjectAltName=DNS:siem.test\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        let port = free_port(false);
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-cert", "server.pem", "-key", "server.key"])
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::from(
                std::fs::File::create(dir.path().join("received")).unwrap(),
            ))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsReceiver { child, dir, port }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("received")).unwrap_or_default()
    }
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_site_ca_delivers_octet_counted_frames() {
    let receiver = TlsReceiver::start();
    let station = StationDir::new(
        "http://127.0.0.1:9",
        &[],
        &[],
        &format!(
            "[siem]\ntarget = \"127.0.0.1:{}\"\ntransport = \"tls\"\nserver-name = \"siem.test\"\nca-file = \"{}\"\nhealth-interval-seconds = 0\n",
            receiver.port,
            receiver.dir.path().join("ca.pem").display()
        ),
    );
    let store = store_of(&station);
    append(&store, 1..3).await;
    let forwarder = start(&station, &store);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rows_received(&[receiver.received()]).is_empty()
        || !receiver.received().contains("row 2:")
    {
        assert!(
            Instant::now() < deadline,
            "nothing over TLS: {:?}",
            receiver.received()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    forwarder.stop().await;
    store.close().await.unwrap();
    // Two frames, each `LEN SP MSG` with LEN the message's length in bytes.
    let text = receiver.received();
    let mut rest = text.as_str();
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let (length, after) = rest.split_once(' ').unwrap();
        let length: usize = length.parse().unwrap();
        frames.push(&after[..length]);
        rest = &after[length..];
    }
    assert_eq!(frames.len(), 2, "{text:?}");
    assert!(
        frames[1].contains("seq=\"2\"")
            && frames[1].ends_with("row 2: no phone | ready = \"none\"")
    );
}

#[test]
fn siem_config_problems_name_key_and_line() {
    let station = StationDir::new(
        "http://127.0.0.1:9",
        &[],
        &[],
        "[siem]\ntarget = \"nohost\"\ntransport = \"carrier-pigeon\"\nformat = \"leef\"\nhealth-interval-seconds = 3\n\n[audit]\nretention-days = 0\n",
    );
    let output = Command::new(crate::support::station::bin())
        .arg("check-config")
        .arg(station.config())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (key, expected) in [
        ("siem.target", "\"nohost\" is not host:port"),
        (
            "audit.retention-days",
            "0 is not a number of days from 1 to 36500",
        ),
        ("siem.transport", "\"carrier-pigeon\" is not a choice"),
        ("siem.format", "\"leef\" is not a choice"),
        (
            "siem.health-interval-seconds",
            "must be 0 (no health lines) or at least 10 seconds",
        ),
    ] {
        // Each names its key and the line of the key in the file.
        let line = stderr
            .lines()
            .find(|line| line.contains(&format!("{key} (line ")) && line.contains(expected))
            .unwrap_or_else(|| panic!("{key}: {expected} not in {stderr}"));
        assert!(line.contains("(line "), "{line}");
    }
}

#[test]
fn the_daemon_forwards_its_audit_to_rsyslog_with_badges_redacted() {
    use crate::daemon::{BADGES, PHONES};
    use crate::support::station::SimProcess;

    let rsyslog = Rsyslog::start();
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(
        &sim.url,
        &PHONES,
        &BADGES,
        &format!(
            "[siem]\ntarget = \"127.0.0.1:{}\"\ntransport = \"tcp\"\nformat = \"rfc5424\"\nhealth-interval-seconds = 0\n",
            rsyslog.tcp_port
        ),
    );
    let _daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(15), "both phones available", |s| {
        s["slots"]
            .as_array()
            .is_some_and(|slots| slots.iter().all(|slot| slot["state"] == "available"))
    });
    let tap = station.tap("04A1B2C3D4E5F6");
    assert!(tap.status.success(), "{}", station.log());
    let lines = rsyslog.wait_for(1, |l| l.contains(" checkout-reserved "));
    assert_eq!(lines.len(), 1, "{:?}\n{}", rsyslog.raw(), station.log());
    assert!(lines[0].contains("user=\"alice\""), "{}", lines[0]);
    // The badge is redacted on the wire too.
    let all = rsyslog.raw().join("\n");
    assert!(!all.contains("04A1B2C3D4E5F6"), "{all}");
    // Everything before it went out too, from the first row, in order.
    assert!(all.contains(" docked [audit@32473 seq=\"1\""), "{all}");
}
