//! The badge directories through their public interface, against the real thing: a CSV
//! file rewritten on disk, a slapd started by the test on loopback (plain, StartTLS and
//! ldaps with a test CA), and an identity web service on 127.0.0.1:0.

#[path = "support/idserver.rs"]
mod idserver;
#[path = "support/slapd.rs"]
mod slapd;

use std::path::Path;

use badgedock::badges::Resolution;
use badgedock::config::{DirectoryConfig, LdapConfig};
use badgedock::directory::{parse_badge_csv, Directory, DirectoryError};
use badgedock::domain::{BadgeNumber, Username};

use idserver::IdServer;
use slapd::Slapd;

fn badge(value: &str) -> BadgeNumber {
    BadgeNumber::new(value)
}

/// The user's username and display name, or a panic naming what came back.
fn known(resolution: Resolution) -> (String, String) {
    match resolution {
        Resolution::Known { user } => (user.username.to_string(), user.display_name),
        other => panic!("expected a known user, got {other:?}"),
    }
}

fn unavailable(resolution: Resolution) -> String {
    match resolution {
        Resolution::Unavailable { reason } => reason,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

// ---------------------------------------------------------------- file

fn file_directory(path: &Path) -> Directory {
    Directory::open(&DirectoryConfig::File {
        path: path.to_path_buf(),
    })
    .expect("open badge file")
}

#[tokio::test]
async fn csv_hot_reload_reports_a_bad_row_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("badges.csv");
    std::fs::write(
        &path,
        "badge,username,display-name\nDEADBEEF,alice,Alice Martin\n",
    )
    .unwrap();
    let directory = file_directory(&path);
    assert_eq!(
        known(directory.lookup(&badge("DEADBEEF")).await).1,
        "Alice Martin"
    );
    assert_eq!(
        directory.lookup(&badge("04A1B2C3D4E5F6")).await,
        Resolution::Unknown
    );
    assert!(directory.problems().is_empty());

    // Edited in place while running: a new badge, a changed name, a bad row on line 4.
    std::fs::write(
        &path,
        "badge,username,display-name,groups,roles\n\
         DEADBEEF,alice,Alice Martin-Durand,nursing,\n\
         04A1B2C3D4E5F6,bob,Bob Durand,nursing,enroller\n\
         0BADC0DE,,Nobody,,\n\
         5EC0FFEE,carol,Carol Petit,,\n",
    )
    .unwrap();
    assert_eq!(
        known(directory.lookup(&badge("DEADBEEF")).await).1,
        "Alice Martin-Durand"
    );
    assert_eq!(
        known(directory.lookup(&badge(" 04A1B2C3D4E5F6 ")).await).0,
        "bob",
        "trimmed"
    );
    assert_eq!(
        known(directory.lookup(&badge("5EC0FFEE")).await).0,
        "carol",
        "rows after the bad one"
    );
    assert_eq!(
        directory.lookup(&badge("0BADC0DE")).await,
        Resolution::Unknown
    );
    assert_eq!(
        directory.lookup(&badge("deadbeef")).await,
        Resolution::Unknown,
        "compared exactly"
    );
    let problems = directory.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("line 4: the username is empty"),
        "{problems:?}"
    );
    assert!(problems[0].contains("badges.csv"), "{problems:?}");
    assert!(
        !problems[0].contains("0BADC0DE"),
        "a badge number leaked: {problems:?}"
    );
    assert!(
        directory.describe().contains("3 badges, 1 problem"),
        "{}",
        directory.describe()
    );

    let bob = directory
        .find_user(&Username::new("bob"))
        .await
        .unwrap()
        .expect("bob in the file");
    assert!(bob.enroller);
    assert_eq!(
        directory.find_user(&Username::new("dave")).await.unwrap(),
        None
    );

    // Replaced atomically (new inode), as deployment tools do.
    let staged = dir.path().join("badges.csv.new");
    std::fs::write(&staged, "badge,username,display-name\nFEEDFACE,dave,Dave\n").unwrap();
    std::fs::rename(&staged, &path).unwrap();
    assert_eq!(known(directory.lookup(&badge("FEEDFACE")).await).0, "dave");
    assert_eq!(
        directory.lookup(&badge("DEADBEEF")).await,
        Resolution::Unknown,
        "removed rows go"
    );
    assert!(
        directory.problems().is_empty(),
        "{:?}",
        directory.problems()
    );
}

#[tokio::test]
async fn csv_unreadable_or_truncated_keeps_the_last_good_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("badges.csv");
    std::fs::write(
        &path,
        "badge,username,display-name\nDEADBEEF,alice,Alice Martin\n",
    )
    .unwrap();
    let directory = file_directory(&path);
    assert_eq!(known(directory.lookup(&badge("DEADBEEF")).await).0, "alice");

    // Gone (a deploy that deletes before copying).
    std::fs::remove_file(&path).unwrap();
    assert_eq!(known(directory.lookup(&badge("DEADBEEF")).await).0, "alice");
    let problems = directory.problems();
    assert!(problems[0].contains("cannot read the file"), "{problems:?}");
    assert!(
        problems[0].contains("still using the 1 badges loaded before"),
        "{problems:?}"
    );

    // Not a readable file at all.
    std::fs::create_dir(&path).unwrap();
    assert_eq!(known(directory.lookup(&badge("DEADBEEF")).await).0, "alice");
    assert!(directory.problems()[0].contains("cannot read the file"));
    std::fs::remove_dir(&path).unwrap();

    // Truncated by an editor mid-save: no header, so not applied.
    std::fs::write(&path, "").unwrap();
    assert_eq!(known(directory.lookup(&badge("DEADBEEF")).await).0, "alice");
    assert!(
        directory.problems()[0].contains("header"),
        "{:?}",
        directory.problems()
    );

    // Readable again: the new table is in force and the problem is gone.
    std::fs::write(&path, "badge,username,display-name\n5EC0FFEE,sam,Sam\n").unwrap();
    assert_eq!(known(directory.lookup(&badge("5EC0FFEE")).await).0, "sam");
    assert_eq!(
        directory.lookup(&badge("DEADBEEF")).await,
        Resolution::Unknown
    );
    assert!(
        directory.problems().is_empty(),
        "{:?}",
        directory.problems()
    );
}

#[test]
fn csv_that_cannot_be_loaded_at_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.csv");
    let err = Directory::open(&DirectoryConfig::File { path: missing }).expect_err("missing file");
    assert!(matches!(err, DirectoryError::File { .. }), "{err}");
    assert!(err.to_string().contains("absent.csv"), "{err}");

    let headerless = dir.path().join("headerless.csv");
    std::fs::write(&headerless, "DEADBEEF,alice,Alice\n").unwrap();
    let err = Directory::open(&DirectoryConfig::File { path: headerless }).expect_err("no header");
    assert!(err.to_string().contains("header"), "{err}");
}

#[tokio::test]
async fn sample_badge_file_parses_with_line_numbers() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/directory/badges.csv");
    let text = std::fs::read_to_string(&fixture).unwrap();
    let (rows, errors) = parse_badge_csv(&text);
    let good: Vec<(usize, &str)> = rows
        .iter()
        .map(|row| (row.line, row.user.username.as_str()))
        .collect();
    assert_eq!(good, vec![(3, "alice"), (4, "bob"), (8, "sam")]);
    assert_eq!(rows[2].user.display_name, "Supervisor, Sam", "quoted field");
    assert!(rows[2].user.enroller);
    let bad: Vec<usize> = errors.iter().map(|error| error.line).collect();
    assert_eq!(bad, vec![5, 6, 7], "{errors:?}");

    let directory = file_directory(&fixture);
    let problems = directory.problems();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[2].contains("line 7: this badge is already on line 3"),
        "{problems:?}"
    );
    assert_eq!(
        known(directory.lookup(&badge("DEADBEEF")).await).0,
        "alice",
        "the first row wins"
    );
}

// ---------------------------------------------------------------- ldap

fn ldap_directory(config: &LdapConfig) -> Directory {
    Directory::open(&DirectoryConfig::Ldap(config.clone())).expect("open LDAP directory")
}

#[tokio::test]
async fn ldap_search_resolves_badges_through_the_service_account() {
    let server = Slapd::start();
    let config = server.config(server.ldap_url(), 3600);
    let directory = ldap_directory(&config);

    match directory.lookup(&badge("DEADBEEF")).await {
        Resolution::Known { user } => {
            assert_eq!(user.username.as_str(), "alice");
            assert_eq!(user.display_name, "Alice Martin");
            assert_eq!(user.groups, vec!["nursing"]);
            assert!(!user.enroller);
        }
        other => panic!("alice: {other:?}"),
    }
    match directory.lookup(&badge("04A1B2C3D4E5F6")).await {
        Resolution::Known { user } => assert!(user.enroller, "bob is in the enroller group"),
        other => panic!("bob: {other:?}"),
    }
    assert_eq!(
        directory.lookup(&badge("FEEDFACE")).await,
        Resolution::Unknown
    );
    // Filter syntax in a badge is matched literally (RFC 4515 escaping).
    assert_eq!(directory.lookup(&badge("DEAD*")).await, Resolution::Unknown);
    assert_eq!(directory.lookup(&badge("*")).await, Resolution::Unknown);
    assert_eq!(
        directory.lookup(&badge("x)(uid=alice")).await,
        Resolution::Unknown
    );
    assert_eq!(
        known(directory.lookup(&badge("77(x)*")).await),
        ("carol".to_string(), "carol".to_string()),
        "no displayName: the username is shown"
    );
    let twins = unavailable(directory.lookup(&badge("0BADC0DE")).await);
    assert_eq!(
        twins,
        "badge found on 2 directory entries: fix the directory"
    );
    let no_uid = unavailable(directory.lookup(&badge("5EE0001D")).await);
    assert!(no_uid.contains("has no uid"), "{no_uid}");

    let alice = directory
        .find_user(&Username::new("alice"))
        .await
        .unwrap()
        .expect("alice");
    assert_eq!(alice.display_name, "Alice Martin");
    assert_eq!(
        directory.find_user(&Username::new("al*")).await.unwrap(),
        None
    );
    assert_eq!(
        directory.find_user(&Username::new("nobody")).await.unwrap(),
        None
    );

    // Plain ldap:// with a password is flagged for the operator, without the password.
    let problems = directory.problems();
    assert!(
        problems.iter().any(|p| p.contains("unencrypted")),
        "{problems:?}"
    );
    assert!(!format!("{problems:?} {}", directory.describe()).contains(slapd::SERVICE_PASSWORD));

    // Without the service account the staff are not readable: alice is not found.
    let mut anonymous = config.clone();
    anonymous.bind_dn = None;
    anonymous.bind_password = None;
    let reason = unavailable(ldap_directory(&anonymous).lookup(&badge("DEADBEEF")).await);
    assert!(
        reason.contains("anonymous searches") && reason.contains("bind-dn"),
        "{reason}"
    );

    // A wrong password is a clear, secret-free reason.
    let mut wrong = config.clone();
    wrong.bind_password = Some(badgedock::domain::Secret::new("not-the-password"));
    let reason = unavailable(ldap_directory(&wrong).lookup(&badge("DEADBEEF")).await);
    assert!(reason.contains("invalid credentials"), "{reason}");
    assert!(
        !reason.contains("not-the-password") && !reason.contains("DEADBEEF"),
        "{reason}"
    );

    // A search base that does not exist says so.
    let mut bad_base = config.clone();
    bad_base.base_dn = "ou=nowhere,dc=hospital,dc=example".into();
    let reason = unavailable(ldap_directory(&bad_base).lookup(&badge("DEADBEEF")).await);
    assert!(reason.contains("base-dn"), "{reason}");
}

#[tokio::test]
async fn ldap_over_tls_trusts_the_configured_ca_only() {
    let server = Slapd::start();

    let mut ldaps = server.config(server.ldaps_url(), 3600);
    ldaps.ca_file = Some(server.ca_file());
    let directory = ldap_directory(&ldaps);
    assert_eq!(known(directory.lookup(&badge("DEADBEEF")).await).0, "alice");
    assert!(
        directory.problems().is_empty(),
        "{:?}",
        directory.problems()
    );
    assert!(
        directory.describe().contains("TLS, extra CA"),
        "{}",
        directory.describe()
    );

    let mut starttls = server.config(server.ldap_url(), 3600);
    starttls.starttls = true;
    starttls.ca_file = Some(server.ca_file());
    let directory = ldap_directory(&starttls);
    assert_eq!(known(directory.lookup(&badge("DEADBEEF")).await).0, "alice");
    assert!(
        directory.problems().is_empty(),
        "{:?}",
        directory.problems()
    );

    for (name, mut config) in [("ldaps", ldaps.clone()), ("starttls", starttls.clone())] {
        config.ca_file = Some(server.wrong_ca_file());
        let reason = unavailable(ldap_directory(&config).lookup(&badge("DEADBEEF")).await);
        assert!(
            reason.contains("certificate is not trusted"),
            "{name}: {reason}"
        );
        assert!(reason.contains("ca-file"), "{name}: {reason}");

        config.ca_file = None;
        let reason = unavailable(ldap_directory(&config).lookup(&badge("DEADBEEF")).await);
        assert!(
            reason.contains("certificate is not trusted"),
            "{name} with system roots only: {reason}"
        );
    }

    let mut not_pem = ldaps.clone();
    not_pem.ca_file = Some(server.ca_file().with_file_name("slapd.conf"));
    let err = Directory::open(&DirectoryConfig::Ldap(not_pem)).expect_err("not a CA file");
    assert!(matches!(err, DirectoryError::CaFile { .. }), "{err}");

    let mut both = ldaps;
    both.starttls = true;
    let err = Directory::open(&DirectoryConfig::Ldap(both)).expect_err("starttls on ldaps");
    assert!(err.to_string().contains("starttls"), "{err}");
}

#[tokio::test]
async fn ldap_outage_serves_cached_answers_and_recovers() {
    let mut server = Slapd::start();
    // Lifetime 0: every lookup asks the server, so cached answers only show in an outage.
    let directory = ldap_directory(&server.config(server.ldap_url(), 0));
    assert_eq!(known(directory.lookup(&badge("DEADBEEF")).await).0, "alice");
    assert_eq!(
        directory.lookup(&badge("FEEDFACE")).await,
        Resolution::Unknown
    );

    server.stop();
    assert_eq!(
        known(directory.lookup(&badge("DEADBEEF")).await).0,
        "alice",
        "stale answer served"
    );
    assert_eq!(
        directory.lookup(&badge("FEEDFACE")).await,
        Resolution::Unknown,
        "stale unknown served"
    );
    let reason = unavailable(directory.lookup(&badge("04A1B2C3D4E5F6")).await);
    assert!(
        reason.contains("cannot connect to ldap://127.0.0.1"),
        "{reason}"
    );
    assert!(!reason.contains("04A1B2C3D4E5F6"), "{reason}");
    assert!(
        directory
            .problems()
            .iter()
            .any(|p| p.contains("cannot connect")),
        "{:?}",
        directory.problems()
    );
    let err = directory
        .find_user(&Username::new("alice"))
        .await
        .expect_err("server down");
    assert!(matches!(err, DirectoryError::Unavailable { .. }), "{err}");

    // While it is down, a new person is added and, once it is back, a name is changed.
    server.add(
        "dn: uid=dave,ou=staff,dc=hospital,dc=example\nobjectClass: inetOrgPerson\nuid: dave\ncn: Dave\nsn: Dave\nemployeeNumber: DA7EDA7E\n",
    );
    server.restart();
    rename_alice(&server, "Alice Martin-Durand").await;

    // A badge with nothing cached always asks; its success ends the outage back-off, so
    // the cached badges are asked again too.
    assert_eq!(
        known(directory.lookup(&badge("DA7EDA7E")).await).0,
        "dave",
        "fresh answer after restart"
    );
    assert_eq!(
        known(directory.lookup(&badge("DEADBEEF")).await).1,
        "Alice Martin-Durand"
    );
    assert_eq!(
        known(directory.lookup(&badge("04A1B2C3D4E5F6")).await).0,
        "bob"
    );
    assert_eq!(
        directory.lookup(&badge("FEEDFACE")).await,
        Resolution::Unknown
    );
    let problems = directory.problems();
    assert!(
        problems.iter().all(|p| !p.contains("cannot connect")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn ldap_answers_are_cached_for_their_lifetime() {
    let server = Slapd::start();
    let directory = ldap_directory(&server.config(server.ldap_url(), 3600));
    assert_eq!(
        known(directory.lookup(&badge("DEADBEEF")).await).1,
        "Alice Martin"
    );
    rename_alice(&server, "Alice Renamed").await;
    assert_eq!(
        known(directory.lookup(&badge("DEADBEEF")).await).1,
        "Alice Martin",
        "within the lifetime the cached answer is served"
    );
    let fresh = directory
        .find_user(&Username::new("alice"))
        .await
        .unwrap()
        .expect("alice");
    assert_eq!(
        fresh.display_name, "Alice Renamed",
        "enrolment checks are never cached"
    );
    assert!(
        directory.describe().contains("1 answers"),
        "{}",
        directory.describe()
    );
}

#[tokio::test]
async fn ldap_server_that_never_answers_is_unavailable_after_the_timeout() {
    // The kernel accepts the connection into the backlog; nothing ever reads or answers.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://{}", black_hole.local_addr().unwrap());
    let mut config = LdapConfig {
        url,
        starttls: false,
        ca_file: None,
        cache_ttl_seconds: 3600,
        timeout_ms: 300,
        bind_dn: Some(slapd::SERVICE_DN.into()),
        bind_password: Some(badgedock::domain::Secret::new(slapd::SERVICE_PASSWORD)),
        base_dn: slapd::BASE_DN.into(),
        badge_attribute: "employeeNumber".into(),
        username_attribute: "uid".into(),
        display_name_attribute: "displayName".into(),
        group_attribute: "ou".into(),
        enroller_group: None,
    };
    let reason = unavailable(ldap_directory(&config).lookup(&badge("DEADBEEF")).await);
    assert!(
        reason.contains("no answer from") && reason.contains("within 300 ms"),
        "{reason}"
    );
    config.bind_dn = None;
    config.bind_password = None;
    let reason = unavailable(ldap_directory(&config).lookup(&badge("DEADBEEF")).await);
    assert!(
        reason.contains("within 300 ms"),
        "search without bind: {reason}"
    );
    drop(black_hole);
}

/// Changes alice's displayName online, as the directory administrator, with ldap3.
async fn rename_alice(server: &Slapd, display_name: &str) {
    let (connection, mut ldap) = ldap3::LdapConnAsync::new(&server.ldap_url()).await.unwrap();
    ldap3::drive!(connection);
    ldap.simple_bind(slapd::ADMIN_DN, slapd::ADMIN_PASSWORD)
        .await
        .unwrap()
        .success()
        .unwrap();
    let changes = vec![ldap3::Mod::Replace(
        "displayName",
        std::collections::HashSet::from([display_name]),
    )];
    ldap.modify("uid=alice,ou=staff,dc=hospital,dc=example", changes)
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap.unbind().await.unwrap();
}

// ---------------------------------------------------------------- http

fn http_directory(url: String, timeout_ms: u64, cache_ttl_seconds: u64) -> Directory {
    Directory::open(&DirectoryConfig::Http {
        url,
        timeout_ms,
        cache_ttl_seconds,
        ca_file: None,
    })
    .expect("open HTTP directory")
}

#[tokio::test]
async fn http_found_user_and_unknown_badge() {
    let server = IdServer::start().await;
    let directory = http_directory(server.url(), 2_000, 0);
    match directory.lookup(&badge(idserver::ALICE)).await {
        Resolution::Known { user } => {
            assert_eq!(user.username.as_str(), "alice");
            assert_eq!(user.display_name, "Alice Martin");
            assert_eq!(user.groups, vec!["nursing"]);
            assert!(!user.enroller);
        }
        other => panic!("alice: {other:?}"),
    }
    match directory.lookup(&badge(idserver::SAM_ENROLLER)).await {
        Resolution::Known { user } => {
            assert_eq!(
                user.display_name, "Sam Supervisor",
                "display_name spelling accepted"
            );
            assert!(user.enroller);
        }
        other => panic!("sam: {other:?}"),
    }
    assert_eq!(
        known(directory.lookup(&badge(idserver::WITH_SLASH)).await).0,
        "slash",
        "percent-encoded"
    );
    assert_eq!(
        directory.lookup(&badge("FEEDFACE")).await,
        Resolution::Unknown,
        "404"
    );
    assert_eq!(
        directory.lookup(&badge(idserver::NULL_USER)).await,
        Resolution::Unknown,
        "null user"
    );
    assert_eq!(server.requests(), 5);
    assert!(
        directory.problems().is_empty(),
        "{:?}",
        directory.problems()
    );
    let err = directory
        .find_user(&Username::new("alice"))
        .await
        .expect_err("not supported");
    assert_eq!(err, DirectoryError::UserLookupUnsupported);
}

#[tokio::test]
async fn http_timeout_malformed_body_and_errors_are_unavailable() {
    let server = IdServer::start().await;
    let directory = http_directory(server.url(), 300, 3600);
    let slow = unavailable(directory.lookup(&badge(idserver::SLOW)).await);
    assert!(
        slow.contains("no answer from") && slow.contains("within 300 ms"),
        "{slow}"
    );
    let malformed = unavailable(directory.lookup(&badge(idserver::MALFORMED)).await);
    assert!(malformed.contains("not JSON of the form"), "{malformed}");
    let wrong_type = unavailable(directory.lookup(&badge(idserver::NOT_AN_OBJECT)).await);
    assert!(wrong_type.contains("not JSON of the form"), "{wrong_type}");
    let failed = unavailable(directory.lookup(&badge(idserver::SERVER_ERROR)).await);
    assert!(failed.contains("HTTP 500"), "{failed}");
    for (badge_number, reason) in [
        (idserver::SLOW, &slow),
        (idserver::MALFORMED, &malformed),
        (idserver::NOT_AN_OBJECT, &wrong_type),
        (idserver::SERVER_ERROR, &failed),
    ] {
        assert!(
            !reason.contains(badge_number),
            "badge leaked into {reason:?}"
        );
    }
    assert!(directory.problems().iter().any(|p| p.contains("HTTP 500")));

    // Nothing listens: a connection failure, also without the badge.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let nowhere = http_directory(format!("http://{closed}/badge/{{badge}}"), 1_000, 3600);
    let reason = unavailable(nowhere.lookup(&badge(idserver::ALICE)).await);
    assert!(reason.contains("cannot reach http://127.0.0.1"), "{reason}");
    assert!(!reason.contains(idserver::ALICE), "{reason}");
}

#[tokio::test]
async fn http_cache_hit_avoids_a_second_request() {
    let server = IdServer::start().await;
    let directory = http_directory(server.url(), 2_000, 3600);
    assert_eq!(
        known(directory.lookup(&badge(idserver::ALICE)).await).0,
        "alice"
    );
    assert_eq!(
        known(directory.lookup(&badge(idserver::ALICE)).await).0,
        "alice"
    );
    assert_eq!(
        server.requests(),
        1,
        "the second lookup is answered from the cache"
    );
    assert_eq!(
        directory.lookup(&badge("FEEDFACE")).await,
        Resolution::Unknown
    );
    assert_eq!(
        directory.lookup(&badge("FEEDFACE")).await,
        Resolution::Unknown
    );
    assert_eq!(server.requests(), 2, "unknown answers are cached too");
}

#[tokio::test]
async fn http_outage_serves_stale_answers() {
    let server = IdServer::start().await;
    let directory = http_directory(server.url(), 2_000, 0);
    assert_eq!(
        known(directory.lookup(&badge(idserver::ALICE)).await).0,
        "alice"
    );
    server.set_down(true);
    assert_eq!(
        known(directory.lookup(&badge(idserver::ALICE)).await).0,
        "alice",
        "stale answer served"
    );
    let reason = unavailable(directory.lookup(&badge(idserver::SAM_ENROLLER)).await);
    assert!(reason.contains("HTTP 503"), "{reason}");
    assert_eq!(server.requests(), 3);
    server.set_down(false);
    assert_eq!(
        known(directory.lookup(&badge(idserver::SAM_ENROLLER)).await).0,
        "sam"
    );
    assert!(
        directory.problems().is_empty(),
        "{:?}",
        directory.problems()
    );
}

#[tokio::test]
async fn csv_too_large_or_with_an_overlong_field_is_refused_and_the_last_table_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("badges.csv");
    std::fs::write(
        &path,
        "badge,username,display-name\nDEADBEEF,alice,Alice Martin\n",
    )
    .unwrap();
    let directory = Directory::open_limited(
        &DirectoryConfig::File {
            path: path.to_path_buf(),
        },
        4_096,
    )
    .unwrap();
    assert_eq!(known(directory.lookup(&badge("DEADBEEF")).await).0, "alice");

    // Larger than directory.max-file-bytes: not read at all, the old table serves.
    let mut large = String::from("badge,username,display-name\n5EC0FFEE,sam,Sam\n");
    large.push_str(&"# padding\n".repeat(500));
    std::fs::write(&path, &large).unwrap();
    assert_eq!(known(directory.lookup(&badge("DEADBEEF")).await).0, "alice");
    assert_eq!(
        directory.lookup(&badge("5EC0FFEE")).await,
        Resolution::Unknown
    );
    let problems = directory.problems();
    assert!(
        problems[0].contains(
            "the file is larger than 4096 bytes: split it, or raise directory.max-file-bytes"
        ),
        "{problems:?}"
    );

    // A field longer than 1,024 characters: that row is refused with its line.
    let long_name = "A".repeat(1_025);
    std::fs::write(
        &path,
        format!(
            "badge,username,display-name\nDEADBEEF,alice,Alice Martin\n5EC0FFEE,sam,{long_name}\n"
        ),
    )
    .unwrap();
    assert_eq!(known(directory.lookup(&badge("DEADBEEF")).await).0, "alice");
    assert_eq!(
        directory.lookup(&badge("5EC0FFEE")).await,
        Resolution::Unknown
    );
    let problems = directory.problems();
    assert!(
        problems.iter().any(|p| p.contains(
            "line 3: the display-name field is longer than 1024 characters; the row is ignored"
        )),
        "{problems:?}"
    );
}
