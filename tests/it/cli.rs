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
        "line 5: uem.base-url",
        "uem.auth.client-secret-file",
        "line 15: reader[0].kind",
        "line 19: dock.slots[1].port",
        "line 22: checkout.assign-at",
        "5 problems",
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
