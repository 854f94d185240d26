//! The CLI through the real binary: `check-config` on fixture files (every problem with
//! its key and line, exit 78), secrets never echoed, `--help` listing every command.

use std::path::PathBuf;
use std::process::Command;

use crate::support::station::{bin, repo_root};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(repo_root().join("tests/data/config").join(kind))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
    files.sort();
    files
}

#[test]
fn valid_configs_pass_check_config() {
    for file in fixtures("valid") {
        let output = Command::new(bin())
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains(": ok"), "{stdout}");
        for secret in ["tenant-code-value", "password-value", "client-secret-value"] {
            assert!(!stdout.contains(secret), "a secret was printed");
        }
    }
}

#[test]
fn invalid_configs_exit_78_with_every_problem() {
    for file in fixtures("invalid") {
        let output = Command::new(bin())
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(78), "{}", file.display());
    }
    let output = Command::new(bin())
        .arg("check-config")
        .arg(repo_root().join("tests/data/config/invalid/many-problems.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "uem.base-url (line 5)",
        "uem.auth.client-secret-file (line 11)",
        "reader[0].kind (line 15)",
        "dock.slots[1].port (line 19)",
        "checkout.assign-at (line 22)",
        "6 problems",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    let unknown = Command::new(bin())
        .arg("check-config")
        .arg(repo_root().join("tests/data/config/invalid/unknown-key.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("colour"),
        "{stderr}"
    );
}

#[test]
fn help_lists_every_command() {
    let output = Command::new(bin()).arg("--help").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    for command in [
        "run",
        "dashboard",
        "demo",
        "tap",
        "status",
        "check-config",
        "readers",
        "uem-sim",
        "badges",
        "audit",
    ] {
        assert!(
            stdout.contains(command),
            "--help lacks {command}:\n{stdout}"
        );
    }
}

#[test]
fn tap_without_a_daemon_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("badgedock.toml");
    std::fs::write(
        &config,
        format!(
            "[station]\nname = \"x\"\ncontrol-socket = \"{}\"\n",
            dir.path().join("nothing.sock").display()
        ),
    )
    .unwrap();
    let output = Command::new(bin())
        .args(["tap", "--config"])
        .arg(&config)
        .arg("DEADBEEF")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is badgedock.service running?"));
}

/// One fixture with a problem of every kind: syntax, type, unknown key, URLs, port,
/// listener, files, secrets. Every one is reported in the one run, in file order.
#[test]
fn check_config_reports_every_kind_of_problem_at_once() {
    let dir = repo_root().join("tests/data/config/invalid");
    let file = dir.join("every-kind.toml");
    let output = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let f = file.display();
    let d = dir.display();
    let expected = format!(
        "badgedock: {f} has 10 problems:
  {f}: station.colour (line 4): \"colour\" is not a known key here (known: name, state-dir, control-socket, admin-group): remove it or fix its spelling
  {f}: uem.base-url (line 7): \"https://\" is not a URL (empty host) (the tenant's API server, e.g. https://as1234.awmdm.com)
  {f}: uem.ca-file (line 9): {d}/not-a-ca.pem holds no PEM certificate (-----BEGIN CERTIFICATE-----): convert it with openssl x509 -inform der -in FILE -out {d}/not-a-ca.pem
  {f}: uem.auth.token-url (line 12): \"ftp://na.uemauth.workspaceone.com/connect/token\" must start with https:// (the region's token URL, e.g. https://na.uemauth.workspaceone.com/connect/token)
  {f}: uem.auth.client-secret-file (line 14): {d}/secrets/absent-secret is missing: create it (chmod 0640 root:badgedock) or pass it with LoadCredential=
  {f}: dock.rescan-ms (line 17): expected a whole number of milliseconds like 2000, found the text \"fast\"
  {f}: directory.path (line 22): {d}/absent-badges.csv is missing: create it from /usr/share/doc/badgedock/examples/badges.csv
  {f}: checkout.reservation-seconds (line 25): expected a whole number of seconds like 60, found the text \"60s\"
  {f}: metrics.listen (line 31): 0.0.0.0:9464 is reachable from other machines: use 127.0.0.1:9464 (scrape through a proxy), or set metrics.allow-remote = true to serve it on the network
  {f}: (syntax) (line 33): the file is not valid TOML here (expected `.`, `=`); this line was skipped, fix it
"
    );
    assert_eq!(stderr, expected);
}

/// Lower-case hex badge numbers are normalised to the readers' upper case, and said so;
/// a badge file too large is refused naming the key that raises the limit.
#[test]
fn check_config_normalises_lower_case_badges_and_refuses_an_oversized_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
    std::fs::write(
        dir.path().join("badges.csv"),
        "badge,username,display-name\n04a1b2c3d4e5f6,alice,Alice Martin\n",
    )
    .unwrap();
    let config = dir.path().join("badgedock.toml");
    let text = |max: &str| {
        format!(
            "[station]\nname = \"x\"\n[uem]\nbase-url = \"https://as1.awmdm.com\"\nstaging-user = \"staging\"\n[uem.auth]\nkind = \"oauth\"\ntoken-url = \"https://na.uemauth.workspaceone.com/connect/token\"\nclient-id = \"c\"\nclient-secret-file = \"secret\"\n[directory]\nkind = \"file\"\npath = \"badges.csv\"\n{max}[policy]\ndeny-badges = [\"0a1b2c3d\"]\n"
        )
    };
    std::fs::write(&config, text("")).unwrap();
    let output = Command::new(bin())
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let c = config.display();
    let b = dir.path().join("badges.csv");
    assert!(
        stdout.contains(&format!("{c}: note: directory.path (line 13): {} line 2: badge …E5F6 was written in lower case: normalised to upper case, as readers render hex badges", b.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{c}: note: policy.deny-badges[0] (line 15): …2C3D is written in lower case: normalised to upper case, as readers render hex badges")),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"));

    std::fs::write(&config, text("max-file-bytes = 10\n")).unwrap();
    let output = Command::new(bin())
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&format!(
            "directory.path (line 13): {}: the file is larger than 10 bytes: split it, or raise directory.max-file-bytes",
            b.display()
        )),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
