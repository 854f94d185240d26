//! The fleet console in a real headless browser (chromium through chromedriver,
//! `support/browser.rs`) against a real PostgreSQL and a real station daemon: sign-in,
//! the overview, search, a user's history, an admin request carried out by the station;
//! screenshots at 1280×800 and at phone width under `target/fleet-console/`. Plus the
//! parts a browser does not show: CSRF refusal, proxy sign-on trusted only from the
//! configured address, and no badge number in any page.

#[path = "support/browser.rs"]
mod browser;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fleet::postgres::Postgres;
use browser::Browser;

use crate::support::station::{bin, slot_state, ChildGuard, Phone, SimProcess, StationDir};

const PHONE_A: Phone = crate::daemon::PHONES[0];
const ALICE: &str = "04A1B2C3D4E5F6";
const ADMIN_PASSWORD: &str = "correct horse battery staple";

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fleet-console")
}

/// Writes the console config and starts `badgedock fleet serve`.
fn start_console(pg: &Postgres, dir: &std::path::Path) -> (ChildGuard, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin_hash = badgedock::fleet::console::hash_password(ADMIN_PASSWORD).unwrap();
    let viewer_hash = badgedock::fleet::console::hash_password("viewer-pass").unwrap();
    std::fs::write(
        dir.join("console-users"),
        format!("# console users\nops.lead:admin:{admin_hash}\nward.clerk:viewer:{viewer_hash}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("console-password"), "pw-console\n").unwrap();
    std::fs::write(
        dir.join("console.toml"),
        format!(
            "[fleet]\nurl = \"{}\"\npassword-file = \"console-password\"\ntls = false\n\n\
             [console]\nlisten = \"127.0.0.1:{port}\"\nusers-file = \"console-users\"\n\
             proxy-header = \"X-Remote-User\"\ntrusted-proxies = [\"127.0.0.2\"]\n\
             proxy-admins = [\"sso.admin\"]\nsecure-cookies = false\n",
            pg.url("fleet_console")
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("console.log")).unwrap();
    let child = Command::new(bin())
        .args(["fleet", "serve", "--config"])
        .arg(dir.join("console.toml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let guard = ChildGuard { child };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "console did not start: {}",
            std::fs::read_to_string(dir.join("console.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, format!("http://127.0.0.1:{port}"))
}

#[test]
fn the_console_in_a_real_browser() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pg = Postgres::start();
    rt.block_on(async {
        pg.set_up_fleet(&[("a", "3 West"), ("b", "4 West")]).await;
        // 4 West, published as its own role: two phones out, one overdue, one docked.
        let b = pg.connect("station_b", "pw-b").await;
        b.batch_execute(
            "INSERT INTO badgedock.loans (station_id, device, platform, device_name, username, holder, slot, since, overdue) VALUES
               ('b', 'R58N12ABCDE', 'android', 'Galaxy 4W-2', 'carol', 'Carol Nguyen', '2', now() - interval '3 hours', false),
               ('b', 'F2LXK0QJHG7F', 'apple', 'iPhone 4W-5', 'dave', 'Dave Okafor', '5', now() - interval '60 hours', true);
             INSERT INTO badgedock.slots (station_id, label, position, state, device, platform, device_name, sync) VALUES
               ('b', '1', 0, 'available', 'C39ZK1A2N72J', 'apple', 'iPhone 4W-1', 'synced');
             INSERT INTO badgedock.events (station_id, seq, at, kind, reader, badge, username, device, slot, detail) VALUES
               ('b', 1, now() - interval '3 hours', 'checkout', 'front', '…5F6A', 'carol', 'R58N12ABCDE', '2', 'Carol Nguyen took Galaxy 4W-2'),
               ('b', 2, now() - interval '60 hours', 'checkout', 'front', '…0001', 'dave', 'F2LXK0QJHG7F', '5', 'Dave Okafor took iPhone 4W-5');
             INSERT INTO badgedock.heartbeats (station_id, at, version, health, readers_online, readers_total, mdm_reachable, actions_waiting, slots_ready, slots_total, loans, detail)
               VALUES ('b', now(), '0.1.0', 'degraded', 0, 1, true, 0, 1, 6, 2, '');",
        )
        .await
        .unwrap();
    });
    // 3 West is a real station.
    let sim = SimProcess::start(&[]);
    let station = StationDir::new(
        &sim.url,
        &[PHONE_A],
        &[crate::daemon::BADGES[0]],
        &pg.station_section("a", 200),
    );
    let _daemon = station.start_daemon();
    station.wait_status(Duration::from_secs(30), "ready in the fleet", |s| {
        s["fleet"]["reachable"] == true && slot_state(s, "1") == "available"
    });
    // Alice takes the phone: a loan at 3 West.
    assert!(station.tap(ALICE).status.success());
    station.undock(&PHONE_A);
    station.wait_status(Duration::from_secs(20), "alice's loan", |s| {
        s["loans"].as_array().is_some_and(|loans| loans.len() == 1)
    });

    let console_dir = tempfile::tempdir().unwrap();
    let (_console, base) = start_console(&pg, console_dir.path());
    let shots = screenshots();
    // This run's screenshots only: the folder is emptied first and checked at the end.
    let _ = std::fs::remove_dir_all(&shots);

    rt.block_on(async {
        let browser = Browser::start().await;
        browser.window(1280, 800).await;
        let mut pages = Vec::new();

        // Signed out: every page leads to the sign-in form.
        browser.goto(&format!("{base}/")).await;
        assert!(browser.url().await.ends_with("/login"));
        browser.screenshot(&shots.join("login-1280x800.png")).await;
        browser.type_into("#username", "ops.lead").await;
        browser.type_into("#password", "wrong").await;
        browser.click_and_load("button[type=submit]").await;
        assert!(browser
            .text()
            .await
            .contains("Unknown user or wrong password"));
        browser.goto(&format!("{base}/login")).await;
        browser.type_into("#username", "ops.lead").await;
        browser.type_into("#password", ADMIN_PASSWORD).await;
        browser.click_and_load("button[type=submit]").await;

        // The overview: every cabinet with its health, the chart.
        let started = Instant::now();
        loop {
            browser.goto(&format!("{base}/")).await;
            let text = browser.text().await;
            if text.contains("3 West") && text.contains("4 West") && text.contains("ok") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "overview: {text}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let text = browser.text().await;
        assert!(text.contains("ops.lead (admin)"), "{text}");
        assert!(text.contains("degraded"), "{text}");
        assert!(text.contains("Phones out by hour"), "{text}");
        assert!(browser.source().await.contains("<svg"));
        pages.push(browser.source().await);
        browser
            .screenshot(&shots.join("overview-1280x800.png"))
            .await;

        // Search by user, then her history.
        browser.goto(&format!("{base}/phones")).await;
        browser.type_into("#q", "carol").await;
        browser.click_and_load("form[role=search] button").await;
        let text = browser.text().await;
        assert!(
            text.contains("Galaxy 4W-2") && text.contains("4 West"),
            "{text}"
        );
        assert!(!text.contains("iPhone 4W-5"), "{text}");
        pages.push(browser.source().await);
        browser.click_and_load("a[href^='/user?name=carol']").await;
        let text = browser.text().await;
        assert!(
            text.contains("History of carol") && text.contains("Carol Nguyen took Galaxy 4W-2"),
            "{text}"
        );
        pages.push(browser.source().await);
        browser
            .screenshot(&shots.join("history-1280x800.png"))
            .await;

        // Overdue and lost.
        browser.goto(&format!("{base}/overdue")).await;
        let text = browser.text().await;
        assert!(
            text.contains("iPhone 4W-5") && !text.contains("Galaxy 4W-2"),
            "{text}"
        );
        browser.goto(&format!("{base}/lost")).await;
        assert!(browser.text().await.contains("iPhone 4W-5"));

        // An admin request: mark Alice's phone lost at 3 West from the phone list. The
        // station carries it out (the same command as `badgedock admin mark-lost`).
        let started = Instant::now();
        loop {
            browser.goto(&format!("{base}/phones?q=3+West")).await;
            if browser.source().await.contains("id=\"action-a-") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no loan at 3 West"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        pages.push(browser.source().await);
        browser
            .click("select[id^='action-a-'] option[value=mark-lost]")
            .await;
        browser
            .click_and_load("form:has(select[id^='action-a-']) button")
            .await;
        // The click submits the form; the browser lands on the answer page a moment later.
        let submitted = std::time::Instant::now();
        while !browser.url().await.contains("/admin?queued=")
            && submitted.elapsed() < Duration::from_secs(15)
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            browser.url().await.contains("/admin?queued="),
            "{}",
            browser.url().await
        );
        station.wait_status(Duration::from_secs(20), "loan ended by the console", |s| {
            s["loans"].as_array().is_some_and(|loans| loans.is_empty())
        });
        let started = Instant::now();
        loop {
            browser.goto(&format!("{base}/admin")).await;
            if browser.text().await.contains("marked lost by an operator") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        pages.push(browser.source().await);
        browser.screenshot(&shots.join("admin-1280x800.png")).await;
        // The lost list now shows the phone Alice had, as marked lost at 3 West.
        let started = Instant::now();
        loop {
            browser.goto(&format!("{base}/lost")).await;
            let text = browser.text().await;
            if text.contains("3 West") && text.contains("lost") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{text}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }

        // Phone width.
        browser.window(390, 844).await;
        browser.goto(&format!("{base}/")).await;
        browser
            .screenshot(&shots.join("overview-390x844.png"))
            .await;
        browser.goto(&format!("{base}/phones")).await;
        browser.screenshot(&shots.join("phones-390x844.png")).await;
        pages.push(browser.source().await);

        for page in &pages {
            assert!(!page.contains(ALICE), "a badge number reached a page");
            assert!(
                !page.contains("pw-console") && !page.contains("$argon2"),
                "a secret reached a page"
            );
        }
        browser.quit().await;
    });
    for (name, size) in [
        ("login-1280x800.png", (1280, 800)),
        ("overview-1280x800.png", (1280, 800)),
        ("history-1280x800.png", (1280, 800)),
        ("admin-1280x800.png", (1280, 800)),
        ("overview-390x844.png", (390, 844)),
        ("phones-390x844.png", (390, 844)),
    ] {
        let path = shots.join(name);
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
        // IHDR: width and height, big-endian, at bytes 16..24.
        let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        let height = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
        assert_eq!((width, height), size, "{name}");
    }

    // Without the session's CSRF token a form is refused; a viewer may not queue.
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = http.get(format!("{base}/login")).send().await.unwrap();
        let pre = login
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("bd_pre="))
            .and_then(|v| v.split(';').next())
            .unwrap()
            .to_string();
        let forged = http
            .post(format!("{base}/login"))
            .header("cookie", format!("bd_pre={pre}"))
            .form(&[
                ("csrf", "forged"),
                ("username", "ward.clerk"),
                ("password", "viewer-pass"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);
        let signed_in = http
            .post(format!("{base}/login"))
            .header("cookie", format!("bd_pre={pre}"))
            .form(&[
                ("csrf", pre.as_str()),
                ("username", "ward.clerk"),
                ("password", "viewer-pass"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), 303);
        let session = signed_in
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("bd_session="))
            .and_then(|v| v.split(';').next())
            .unwrap()
            .to_string();
        let no_token = http
            .post(format!("{base}/admin"))
            .header("cookie", format!("bd_session={session}"))
            .form(&[
                ("csrf", "nope"),
                ("station", "a"),
                ("slot", "1"),
                ("action", "release-slot"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(no_token.status(), 403);
        let phones = http
            .get(format!("{base}/phones"))
            .header("cookie", format!("bd_session={session}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(phones.contains("ward.clerk (viewer)") && !phones.contains("name=\"action\""));

        // Single sign-on: the header counts only from the trusted proxy address.
        let untrusted = http
            .get(format!("{base}/"))
            .header("x-remote-user", "sso.admin")
            .send()
            .await
            .unwrap();
        assert_eq!(untrusted.status(), 303);
        let from_proxy = reqwest::Client::builder()
            .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
            .get(format!("{base}/"))
            .header("x-remote-user", "sso.admin")
            .send()
            .await
            .unwrap();
        assert_eq!(from_proxy.status(), 200);
        assert!(from_proxy
            .text()
            .await
            .unwrap()
            .contains("sso.admin (admin)"));
    });
    for shot in [
        "login-1280x800.png",
        "overview-1280x800.png",
        "history-1280x800.png",
        "overview-390x844.png",
        "phones-390x844.png",
    ] {
        assert!(
            std::fs::metadata(shots.join(shot)).unwrap().len() > 1000,
            "{shot}"
        );
    }
}
