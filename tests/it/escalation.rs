//! Overdue loans and broken phones end to end through the real binary: `badgedock run`
//! with a short `[lending]` ladder against the simulator process (Workspace ONE and its
//! webhook receiver on loopback), a real SMTP server on loopback (aiosmtpd, STARTTLS
//! required) for the e-mail, a temporary sysfs tree as the dock. The daemon is killed
//! with SIGKILL between the ladder's steps; each message arrives exactly once.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{BADGES, PHONES};
use crate::support::smtp::SmtpServer;
use crate::support::station::{http_get, slot_state, SimProcess, StationDir};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The value of one series in a Prometheus scrape.
fn metric(port: u16, series: &str) -> Option<f64> {
    http_get(&format!("http://127.0.0.1:{port}/metrics"))
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn all_available(status: &Value) -> bool {
    status["slots"]
        .as_array()
        .is_some_and(|slots| slots.iter().all(|slot| slot["state"] == "available"))
        && status["mdm"]["waiting"] == 0
}

/// Bodies the simulator's webhook receiver got under `/_sim/webhook/{name}`.
fn webhooks(sim: &SimProcess, name: &str) -> Vec<Value> {
    let path = format!("/_sim/webhook/{name}");
    sim.journal()
        .iter()
        .filter(|entry| entry["method"] == "POST" && entry["path"] == path.as_str())
        .filter_map(|entry| serde_json::from_str(entry["body"].as_str()?).ok())
        .collect()
}

/// The simulator's view of the device with this USB serial (UDID without hyphen).
fn sim_device(sim: &SimProcess, usb_serial: &str) -> Value {
    let state = sim.state();
    state["devices"]
        .as_array()
        .and_then(|devices| {
            devices.iter().find(|d| {
                d["udid"]
                    .as_str()
                    .is_some_and(|u| u.replace('-', "").eq_ignore_ascii_case(usb_serial))
            })
        })
        .cloned()
        .unwrap_or(Value::Null)
}

fn wait_for(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn lending_config(sim: &SimProcess, smtp: &SmtpServer, metrics: u16) -> String {
    format!(
        r#"[metrics]
listen = "127.0.0.1:{metrics}"

[lending]
time-zone = "UTC"
default = "20s"
webhook-url = "{sim}/_sim/webhook/overdue"
email-to = ["charge-nurse@ward.example"]
lost-mode-phone = "+44 20 7946 0000"
broken-ticket-webhook = "{sim}/_sim/webhook/ticket"
[[lending.escalation]]
after-seconds = 0
action = "screen"
[[lending.escalation]]
after-seconds = 0
action = "webhook"
[[lending.escalation]]
after-seconds = 15
action = "email"
[[lending.escalation]]
after-seconds = 30
action = "lost-mode"
[lending.smtp]
server = "localhost"
port = {port}
from = "badgedock@ward.example"
ca-file = "{ca}"
"#,
        sim = sim.url,
        port = smtp.port,
        ca = smtp.ca_file().display(),
    )
}

#[test]
fn an_overdue_loan_escalates_once_per_step_across_kill_9_and_a_found_phone_checks_in() {
    let sim = SimProcess::start(&[]);
    let smtp = SmtpServer::start();
    let metrics = free_port();
    let station = StationDir::new(
        &sim.url,
        &PHONES,
        &BADGES,
        &lending_config(&sim, &smtp, metrics),
    );
    let mut daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(15), "phones available", all_available);

    let tap = station.tap("04A1B2C3D4E5F6");
    assert!(
        tap.status.success(),
        "{}",
        String::from_utf8_lossy(&tap.stderr)
    );
    sim.wait_enrollment_user(PHONES[0].serial, "alice", Duration::from_secs(10));
    station.undock(&PHONES[0]);
    let status = station.wait_status(Duration::from_secs(10), "alice's loan", |s| {
        s["loans"][0]["username"] == "alice"
    });
    let due = status["loans"][0]["due"]
        .as_i64()
        .expect("the loan has a due time");
    let since = status["loans"][0]["since"].as_i64().expect("since");
    assert!(
        (15_000..=25_000).contains(&(due - since)),
        "due 20 s after the tap: {status:#}"
    );
    let text = station.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains(", due "),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    // Due: "overdue" on the screen and the webhook; the step's row settles, then the
    // daemon is killed before the e-mail's step.
    station.wait_status(Duration::from_secs(40), "the loan overdue", |s| {
        s["loans"][0]["overdue"] == true
    });
    wait_for(Duration::from_secs(20), "the overdue webhook", || {
        !webhooks(&sim, "overdue").is_empty()
    });
    station.wait_status(Duration::from_secs(10), "the webhook settled", |s| {
        s["mdm"]["waiting"] == 0
    });
    daemon.kill();
    let mut daemon = station.start_daemon();

    // +15 s: the e-mail, over STARTTLS to the real server. Then kill -9 again.
    wait_for(Duration::from_secs(40), "the overdue e-mail", || {
        !smtp.messages().is_empty()
    });
    station.wait_status(Duration::from_secs(10), "the e-mail settled", |s| {
        s["mdm"]["waiting"] == 0
    });
    daemon.kill();
    let mut daemon = station.start_daemon();

    // +30 s: Lost Mode at Workspace ONE (the simulator's unverified route); the phone is
    // marked lost, no longer a loan.
    wait_for(
        Duration::from_secs(40),
        "Lost Mode at the simulator",
        || sim_device(&sim, PHONES[0].serial)["lost-mode"] == true,
    );
    station.wait_status(Duration::from_secs(10), "the loan ended as lost", |s| {
        s["loans"].as_array().is_some_and(Vec::is_empty) && s["mdm"]["waiting"] == 0
    });
    // This daemon (the third) took one step: Lost Mode.
    assert_eq!(
        metric(
            metrics,
            "badgedock_escalation_steps_total{step=\"lost-mode\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(metrics, "badgedock_escalation_steps_total{step=\"email\"}"),
        Some(0.0)
    );

    // Docked again: found. Lost Mode is cleared first, then the normal check-in.
    station.dock(&PHONES[0]);
    station.wait_status(Duration::from_secs(20), "the found phone checked in", |s| {
        slot_state(s, "1") == "available" && s["mdm"]["waiting"] == 0
    });
    let device = sim_device(&sim, PHONES[0].serial);
    assert_eq!(device["lost-mode"], false, "{device:#}");
    assert_eq!(
        sim.enrollment_user(PHONES[0].serial).as_deref(),
        Some(badgedock::uemsim::DEMO_STAGING_USER)
    );
    let commands: Vec<&str> = device["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let lost_mode: Vec<&&str> = commands.iter().filter(|c| c.contains("LostMode")).collect();
    assert_eq!(
        lost_mode,
        [&"EnableLostMode", &"DisableLostMode"],
        "{commands:?}"
    );
    // Cleared before the check-in's staging-user change.
    let journal = sim.journal();
    let clear_at = journal
        .iter()
        .position(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/lostmode/disable"))
        })
        .expect("the clear call");
    let staging_at = journal
        .iter()
        .rposition(|e| {
            e["method"] == "PATCH"
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("/enrollmentuser/"))
        })
        .expect("the check-in's PATCH");
    assert!(clear_at < staging_at, "Lost Mode is cleared first");

    // Exactly once each, across two kill -9.
    let hooks = webhooks(&sim, "overdue");
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert_eq!(hooks[0]["event"], "overdue");
    assert_eq!(hooks[0]["username"], "alice");
    assert_eq!(hooks[0]["due_at"].as_i64(), Some(due));
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(
        mails[0].contains("Subject: [Test ward] Overdue phone"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0].contains("To: charge-nurse@ward.example"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0].contains("Message-ID: <badgedock.action-"),
        "{}",
        mails[0]
    );
    // aiosmtpd required STARTTLS before MAIL FROM: a message arrived, so TLS was used.

    let audit = station.cli(&["audit", "export", "--csv"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    for kind in [",overdue,", ",escalated,", ",lost,", ",found,"] {
        assert!(
            audit.contains(kind),
            "{kind} missing from the audit:\n{audit}"
        );
    }
    assert_eq!(audit.matches(",overdue,").count(), 1, "{audit}");
    assert_eq!(audit.matches(",escalated,").count(), 3, "{audit}");
    assert_eq!(daemon.terminate(Duration::from_secs(5)), Some(0));
}

#[test]
fn a_phone_returned_as_broken_leaves_the_pool_and_opens_one_ticket() {
    let sim = SimProcess::start(&[]);
    let metrics = free_port();
    let extra = format!(
        "[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n[lending]\ntime-zone = \"UTC\"\nbroken-double-tap-seconds = 10\nbroken-ticket-webhook = \"{}/_sim/webhook/ticket\"\n",
        sim.url
    );
    let station = StationDir::new(&sim.url, &PHONES, &BADGES, &extra);
    let mut daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(15), "phones available", all_available);

    assert!(station.tap("04A1B2C3D4E5F6").status.success());
    station.undock(&PHONES[0]);
    station.wait_status(Duration::from_secs(10), "alice's loan", |s| {
        s["loans"][0]["username"] == "alice"
    });
    station.dock(&PHONES[0]);
    station.wait_status(Duration::from_secs(10), "the return seen", |s| {
        s["loans"].as_array().is_some_and(Vec::is_empty)
    });
    // The gesture: the holder taps twice within 10 s of docking. The first tap is an
    // ordinary tap (a replacement is reserved); the second returns the phone as broken.
    let first = station.tap("04A1B2C3D4E5F6");
    assert!(String::from_utf8_lossy(&first.stdout).contains("take slot 2"));
    let second = station.tap("04A1B2C3D4E5F6");
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("slot 1: returned as broken"),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    // Checked in (staging user back), but out of the pool.
    station.wait_status(
        Duration::from_secs(15),
        "slot 1 broken and checked in",
        |s| slot_state(s, "1") == "broken" && s["mdm"]["waiting"] == 0,
    );
    assert_eq!(
        sim.enrollment_user(PHONES[0].serial).as_deref(),
        Some(badgedock::uemsim::DEMO_STAGING_USER)
    );
    let tickets = webhooks(&sim, "ticket");
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    assert_eq!(tickets[0]["caller_id"], "alice");
    assert_eq!(tickets[0]["u_slot"], "1");
    assert!(tickets[0]["short_description"]
        .as_str()
        .is_some_and(|d| d.starts_with("Broken phone:")));

    // The charge nurse marks slot 2 broken (alice's replacement, reserved: the
    // reservation ends) from the admin commands; a second ticket.
    let marked = station.cli(&["admin", "mark-broken", "--slot", "2"]);
    assert!(
        marked.status.success(),
        "{}",
        String::from_utf8_lossy(&marked.stderr)
    );
    station.wait_status(Duration::from_secs(15), "slot 2 broken", |s| {
        slot_state(s, "2") == "broken" && s["mdm"]["waiting"] == 0
    });
    assert_eq!(webhooks(&sim, "ticket").len(), 2);
    assert_eq!(
        metric(metrics, "badgedock_phones{state=\"broken\"}"),
        Some(2.0)
    );
    let refused = station.tap("0A1B2C3D");
    assert_eq!(refused.status.code(), Some(1), "no phone in the pool");

    // Repaired: back in the pool; carol gets it.
    let cleared = station.cli(&["admin", "clear-broken", "--slot", "1"]);
    assert!(
        cleared.status.success(),
        "{}",
        String::from_utf8_lossy(&cleared.stderr)
    );
    station.wait_status(Duration::from_secs(10), "slot 1 back in the pool", |s| {
        slot_state(s, "1") == "available"
    });
    let again = station.cli(&["admin", "clear-broken", "--slot", "1"]);
    assert_eq!(again.status.code(), Some(1), "not broken any more");
    let tap = station.tap("0A1B2C3D");
    assert!(
        String::from_utf8_lossy(&tap.stdout).contains("take slot 1"),
        "{}",
        String::from_utf8_lossy(&tap.stderr)
    );
    let audit = station.cli(&["audit", "export", "--csv"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(audit.matches(",broken,").count(), 2, "{audit}");
    assert_eq!(audit.matches(",broken-cleared,").count(), 1, "{audit}");
    assert_eq!(daemon.terminate(Duration::from_secs(5)), Some(0));
}
