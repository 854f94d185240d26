//! Deployment artefacts, checked with the tools an installer's box has: the systemd units
//! (`systemd-analyze verify` and `security --offline=true`), the udev rules (`udevadm`),
//! the polkit rule (run by a JavaScript engine with polkit's rule API), the example
//! config (the real loader), and the Debian package: built by scripts/deb.sh (cargo-deb),
//! checked by lintian, its file list and maintainer scripts inspected, then installed,
//! checked and purged in a Debian 12 (bookworm) root made by debootstrap, and finally
//! installed and run under a real systemd as PID 1 (the same root booted with
//! systemd-nspawn).
//!
//! The package tests are slow (a release build, and debootstrap on the first run); the
//! package is built once and shared. The bookworm root is cached as
//! target/deploy-cache/bookworm.tar (delete it to rebuild). Needs root, `unshare`,
//! `debootstrap`, `dpkg-deb`, `lintian`, `systemd-nspawn` (systemd-container) and
//! `cargo deb` (`cargo install cargo-deb --locked`).
#![allow(clippy::print_stderr)]

#[path = "support/deploy.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use support::{have, repo, run, target_dir, Chroot, Container};

/// Units whose `systemd-analyze security` exposure must stay at or below a figure. Every
/// unit in systemd/ must be listed, so a new unit gets a deliberate limit.
const EXPOSURE_LIMITS: &[(&str, f64)] = &[
    ("badgedock.service", 1.3),
    ("badgedock-dashboard.service", 0.6),
    ("badgedock-fleet.service", 1.5),
];

/// HID badge readers (readers.md 1.8: the rows without libccid, read as HID). PC/SC
/// readers need no udev rule: pcscd owns them.
const HID_READERS: &[(&str, &str)] = &[
    ("0c27:3bfa", "RF IDeas pcProx"),
    ("09d8:0410", "Elatec TWN4 HID"),
];

fn unit_files() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> = std::fs::read_dir(repo().join("systemd"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "service"))
        .collect();
    units.sort();
    units
}

/// `systemd-analyze verify` checks that ExecStart= names an executable. The installed
/// path /usr/bin/badgedock does not exist on a build machine, so a copy of the unit
/// points at the binary cargo built for this test run; nothing else changes. (The
/// package test verifies the installed unit again inside the Debian root.)
#[test]
fn deploy_units_verify_and_are_hardened() {
    assert!(
        have("systemd-analyze"),
        "systemd-analyze is missing: apt-get install systemd"
    );
    let units = unit_files();
    assert!(
        units.iter().any(|u| u.ends_with("badgedock.service")),
        "systemd/badgedock.service is missing"
    );
    let scratch = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_badgedock");
    for unit in &units {
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(unit).unwrap();
        assert!(
            text.contains("/usr/bin/badgedock "),
            "{name}: ExecStart= should run /usr/bin/badgedock"
        );
        let copy = scratch.path().join(&name);
        std::fs::write(
            &copy,
            text.replace("/usr/bin/badgedock ", &format!("{binary} ")),
        )
        .unwrap();
        let verify = run(Command::new("systemd-analyze").arg("verify").arg(&copy));
        // verify exits 0 even for "Invalid syntax, ignoring" lines: any output is a finding.
        assert!(
            verify.output.status.success()
                && verify.stderr().trim().is_empty()
                && verify.stdout().trim().is_empty(),
            "{name}: systemd-analyze verify is not clean:\n{}",
            verify.transcript()
        );

        let security = run(Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(unit))
        .ok();
        let exposure = exposure_of(&security.stdout(), &name)
            .unwrap_or_else(|| panic!("{name}: no exposure figure in:\n{}", security.transcript()));
        let limit = EXPOSURE_LIMITS
            .iter()
            .find(|(unit, _)| *unit == name)
            .map(|(_, limit)| *limit)
            .unwrap_or_else(|| {
                panic!(
                    "{name} has no exposure limit: add it to EXPOSURE_LIMITS in tests/it/deploy.rs"
                )
            });
        eprintln!(
            "{name}: systemd-analyze security --offline=true exposure {exposure} (limit {limit})"
        );
        assert!(
            exposure <= limit,
            "{name}: exposure {exposure} > {limit}:\n{}",
            security.stdout()
        );
    }

    let daemon = std::fs::read_to_string(repo().join("systemd/badgedock.service")).unwrap();
    let settings = unit_settings(&daemon);
    for (key, value) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "78 65"),
        ("User", "badgedock"),
        ("Group", "badgedock"),
        ("StateDirectory", "badgedock"),
        ("RuntimeDirectory", "badgedock"),
        ("RuntimeDirectoryMode", "0750"),
        ("ConfigurationDirectory", "badgedock"),
        ("Environment", "RUST_LOG=info"),
        (
            "ExecStart",
            "/usr/bin/badgedock run --config /etc/badgedock/badgedock.toml",
        ),
        (
            "LoadCredential",
            "client-secret:/etc/badgedock/client-secret",
        ),
        ("LoadCredential", "tenant-code:/etc/badgedock/tenant-code"),
        (
            "LoadCredential",
            "ldap-password:/etc/badgedock/ldap-password",
        ),
        ("SetCredential", "client-secret:\\n"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        ),
        ("DeviceAllow", "char-hidraw rw"),
        ("DeviceAllow", "char-input r"),
        ("ExecReload", "/bin/sh -c 'kill -HUP \"$MAINPID\"'"),
        ("UMask", "0077"),
    ] {
        assert!(
            settings.iter().any(|(k, v)| k == key && v == value),
            "badgedock.service lacks {key}={value}"
        );
    }
    // The screen gives up instead of crash-looping on tty1, and gives tty1 back.
    let dashboard =
        std::fs::read_to_string(repo().join("systemd/badgedock-dashboard.service")).unwrap();
    let screen = unit_settings(&dashboard);
    for (key, value) in [
        ("Restart", "always"),
        ("RestartPreventExitStatus", "78"),
        ("StartLimitIntervalSec", "5min"),
        ("StartLimitBurst", "5"),
        ("Conflicts", "getty@tty1.service"),
        ("OnFailure", "getty@tty1.service"),
        ("ConditionPathExists", "/etc/badgedock/badgedock.toml"),
        ("User", "badgedock"),
        ("TTYPath", "/dev/tty1"),
        ("UMask", "0077"),
    ] {
        assert!(
            screen.iter().any(|(k, v)| k == key && v == value),
            "badgedock-dashboard.service lacks {key}={value}"
        );
    }
    // Every LoadCredential= has a fallback, or a site without that secret cannot start.
    for (_, value) in settings.iter().filter(|(k, _)| k == "LoadCredential") {
        let id = value.split(':').next().unwrap();
        assert!(
            settings
                .iter()
                .any(|(k, v)| k == "SetCredential" && v.starts_with(&format!("{id}:"))),
            "LoadCredential={value} has no SetCredential={id}: fallback"
        );
    }
    for ordering in ["Wants", "After"] {
        let value: String = settings
            .iter()
            .filter(|(k, _)| k == ordering)
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(
            value.contains("pcscd.socket"),
            "badgedock.service: {ordering}= lacks pcscd.socket"
        );
    }
}

fn exposure_of(report: &str, unit: &str) -> Option<f64> {
    let marker = format!("Overall exposure level for {unit}:");
    let line = report.lines().find(|line| line.contains(&marker))?;
    line.split(&marker)
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `Key=value` pairs of a unit file, comments and section headers dropped.
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('['))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect()
}

#[test]
fn deploy_udev_rules_parse_and_cover_every_hid_reader() {
    let rules_path = repo().join("udev/70-badgedock.rules");
    let text = std::fs::read_to_string(&rules_path).unwrap();
    let rules = parse_udev_rules(&text)
        .unwrap_or_else(|problem| panic!("udev/70-badgedock.rules: {problem}"));

    for (id, model) in HID_READERS {
        let (vid, pid) = id.split_once(':').unwrap();
        for subsystem in ["hidraw", "input"] {
            let rule = rules
                .iter()
                .find(|rule| {
                    rule.has("SUBSYSTEM", "==", subsystem)
                        && rule.has("ATTRS{idVendor}", "==", vid)
                        && rule.has("ATTRS{idProduct}", "==", pid)
                })
                .unwrap_or_else(|| panic!("no {subsystem} rule for {model} ({id})"));
            assert!(
                rule.has("GROUP", "=", "badgedock"),
                "{model} {subsystem}: GROUP=\"badgedock\" missing"
            );
            assert!(
                rule.has("MODE", "=", "0660"),
                "{model} {subsystem}: MODE=\"0660\" missing"
            );
            if subsystem == "input" {
                assert!(
                    rule.has("KERNEL", "==", "event*"),
                    "{model}: the input rule must match event nodes only"
                );
            }
        }
    }
    assert!(
        rules.iter().any(|rule| rule
            .tokens
            .iter()
            .any(|t| t.key == "SYMLINK" && t.value.starts_with("badgedock/"))),
        "no stable SYMLINK under /dev/badgedock/"
    );
    assert!(
        !rules.iter().any(|rule| rule.has("MODE", "=", "0666")),
        "world-writable reader nodes"
    );

    // udevd's own parser. Debian 12's systemd 252 has no `udevadm verify` (253+), so
    // `udevadm test` parses the rules (see scripts/udev-rules-test.sh).
    if !have("udevadm") {
        eprintln!("SKIPPED udevadm check: udevadm is not installed (apt-get install udev); the rule parser above still ran");
        return;
    }
    let verdict = udevadm_findings(&rules_path);
    assert!(
        verdict.read,
        "udevadm did not read the rules file:\n{}",
        verdict.output
    );
    assert!(
        verdict.findings.is_empty(),
        "udevadm complained about 70-badgedock.rules:\n{}",
        verdict.findings.join("\n")
    );

    // The same check must catch a broken copy, or it proves nothing.
    let scratch = tempfile::tempdir().unwrap();
    let broken = scratch.path().join("70-badgedock.rules");
    std::fs::write(&broken, format!("{text}\nSUBSYSTEM==\"hidraw\", COLOUR=\"red\"\nSUBSYSTEM==\"hidraw\", GROUP=\"no-such-group-here\"\n")).unwrap();
    let verdict = udevadm_findings(&broken);
    assert!(
        verdict.findings.iter().any(|f| f.contains("COLOUR"))
            && verdict
                .findings
                .iter()
                .any(|f| f.contains("no-such-group-here")),
        "udevadm did not flag a broken rule; output:\n{}",
        verdict.output
    );
}

struct UdevVerdict {
    read: bool,
    findings: Vec<String>,
    output: String,
}

fn udevadm_findings(rules: &Path) -> UdevVerdict {
    let ran = run(Command::new(repo().join("scripts/udev-rules-test.sh")).arg(rules)).ok();
    let output = ran.stdout();
    let name = rules.file_name().unwrap().to_string_lossy().into_owned();
    let read = output
        .lines()
        .any(|line| line.starts_with("Reading rules file:") && line.ends_with(&name));
    // udev names every problem "<path>:<line> <message>".
    let findings = output
        .lines()
        .filter(|line| {
            line.contains(&format!("{name}:")) && !line.starts_with("Reading rules file:")
        })
        .map(str::to_string)
        .collect();
    UdevVerdict {
        read,
        findings,
        output,
    }
}

/// One `KEY{attr}<op>"value"` of a rule.
struct Token {
    key: String,
    op: String,
    value: String,
}

struct Rule {
    tokens: Vec<Token>,
}

impl Rule {
    fn has(&self, key: &str, op: &str, value: &str) -> bool {
        self.tokens
            .iter()
            .any(|t| t.key == key && t.op == op && t.value == value)
    }
}

/// A small parser for the subset of udev rule syntax: every token must be a key udev
/// knows, used with an operator that key allows, with a double-quoted value.
fn parse_udev_rules(text: &str) -> Result<Vec<Rule>, String> {
    const MATCH_ONLY: &[&str] = &[
        "ACTION",
        "DEVPATH",
        "KERNEL",
        "KERNELS",
        "SUBSYSTEM",
        "SUBSYSTEMS",
        "DRIVER",
        "DRIVERS",
        "ATTRS",
        "TAGS",
        "TEST",
        "PROGRAM",
        "RESULT",
        "CONST",
    ];
    const ASSIGN_ONLY: &[&str] = &[
        "OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "LABEL", "GOTO", "OPTIONS", "IMPORT",
    ];
    const BOTH: &[&str] = &["NAME", "SYMLINK", "ATTR", "SYSCTL", "ENV", "TAG"];
    let mut rules = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.ends_with('\\') {
            return Err(format!(
                "line {line_no}: continuation lines are not used here"
            ));
        }
        let mut tokens = Vec::new();
        let mut rest = line;
        while !rest.is_empty() {
            let op_at = rest
                .find(['=', '!', '+', '-', ':'])
                .ok_or_else(|| format!("line {line_no}: no operator in {rest:?}"))?;
            let key = rest[..op_at].trim();
            let after_key = &rest[op_at..];
            let op = ["==", "!=", "+=", "-=", ":=", "="]
                .into_iter()
                .find(|op| after_key.starts_with(op))
                .ok_or_else(|| format!("line {line_no}: bad operator after {key}"))?;
            let after_op = &after_key[op.len()..];
            let quoted = after_op
                .strip_prefix('"')
                .ok_or_else(|| format!("line {line_no}: {key} value is not quoted"))?;
            let close = quoted
                .find('"')
                .ok_or_else(|| format!("line {line_no}: unterminated value for {key}"))?;
            let value = &quoted[..close];
            let base = key.split('{').next().unwrap_or(key);
            if key.contains('{') && !key.ends_with('}') {
                return Err(format!("line {line_no}: malformed key {key}"));
            }
            let is_match = op == "==" || op == "!=";
            let allowed = if MATCH_ONLY.contains(&base) {
                is_match
            } else if ASSIGN_ONLY.contains(&base) {
                !is_match
            } else if BOTH.contains(&base) {
                true
            } else {
                return Err(format!("line {line_no}: {base} is not a udev key"));
            };
            if !allowed {
                return Err(format!("line {line_no}: {key} cannot be used with {op}"));
            }
            tokens.push(Token {
                key: key.to_string(),
                op: op.to_string(),
                value: value.to_string(),
            });
            rest = quoted[close + 1..].trim_start();
            if let Some(after_comma) = rest.strip_prefix(',') {
                rest = after_comma.trim_start();
            } else if !rest.is_empty() {
                return Err(format!("line {line_no}: expected ',' before {rest:?}"));
            }
        }
        rules.push(Rule { tokens });
    }
    Ok(rules)
}

#[test]
fn deploy_polkit_rule_allows_pcscd_for_the_service_user_only() {
    let path = repo().join("polkit/60-badgedock-pcscd.rules");
    let text = std::fs::read_to_string(&path).unwrap();
    for needle in [
        "org.debian.pcsc-lite.access_pcsc",
        "org.debian.pcsc-lite.access_card",
        "\"badgedock\"",
        "polkit.addRule",
    ] {
        assert!(text.contains(needle), "polkit rule lacks {needle}");
    }
    if !have("node") {
        eprintln!(
            "SKIPPED running the polkit rule: node is not installed; only its text was checked"
        );
        return;
    }
    // polkitd runs rules files as JavaScript with a `polkit` object; this is that API
    // (addRule, Result with NOT_HANDLED = null), and asks the questions pcscd asks.
    let harness = r#"
const fs = require('fs');
const rules = [];
const polkit = {
  Result: { NO: 'no', YES: 'yes', AUTH_SELF: 'auth_self', AUTH_SELF_KEEP: 'auth_self_keep',
            AUTH_ADMIN: 'auth_admin', AUTH_ADMIN_KEEP: 'auth_admin_keep', NOT_HANDLED: null },
  addRule: (rule) => rules.push(rule),
  addAdminRule: () => {},
  log: () => {},
  spawn: () => { throw new Error('rule must not spawn programs'); },
};
new Function('polkit', fs.readFileSync(process.argv[1], 'utf8'))(polkit);
const ask = (id, user) => {
  const action = { id, lookup: () => undefined };
  const subject = { user, pid: 1234, groups: [user], local: false, active: false, isInGroup: (g) => g === user, isInNetGroup: () => false };
  for (const rule of rules) { const r = rule(action, subject); if (r !== null && r !== undefined) return r; }
  return 'not-handled';
};
console.log(JSON.stringify({
  rules: rules.length,
  pcsc_badgedock: ask('org.debian.pcsc-lite.access_pcsc', 'badgedock'),
  card_badgedock: ask('org.debian.pcsc-lite.access_card', 'badgedock'),
  pcsc_nobody: ask('org.debian.pcsc-lite.access_pcsc', 'nobody'),
  reboot_badgedock: ask('org.freedesktop.login1.reboot', 'badgedock'),
}));
"#;
    let ran = run(Command::new("node").arg("-e").arg(harness).arg(&path)).ok();
    let answers: serde_json::Value =
        serde_json::from_str(ran.stdout().trim()).unwrap_or_else(|err| {
            panic!(
                "polkit harness printed no JSON ({err}):\n{}",
                ran.transcript()
            )
        });
    assert_eq!(
        answers,
        serde_json::json!({
            "rules": 1,
            "pcsc_badgedock": "yes",
            "card_badgedock": "yes",
            "pcsc_nobody": "not-handled",
            "reboot_badgedock": "not-handled",
        })
    );
}

#[test]
fn deploy_example_config_is_valid_with_secrets_from_credentials() {
    use badgedock::config::{load, DirectoryConfig, LoadEnv, UemAuth};
    let example = repo().join("examples/badgedock.toml");

    // As the service sees it: the secret files under /etc/badgedock are root-only, and
    // systemd hands them over in $CREDENTIALS_DIRECTORY under their file names.
    let credentials = tempfile::tempdir().unwrap();
    std::fs::write(credentials.path().join("client-secret"), "s3cret-value\n").unwrap();
    std::fs::write(credentials.path().join("tenant-code"), "TENANTCODE\n").unwrap();
    let env = LoadEnv {
        credentials_dir: Some(credentials.path().to_path_buf()),
    };
    let config = load(&example, &env)
        .unwrap_or_else(|err| panic!("the example config must be valid:\n{err}"));
    assert_eq!(
        config.station.control_socket,
        Path::new("/run/badgedock/control.sock")
    );
    assert_eq!(config.station.state_dir, Path::new("/var/lib/badgedock"));
    assert_eq!(
        config.metrics_listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(config.readers.len(), 1);
    assert_eq!(config.dock.slots.len(), 4);
    assert!(
        matches!(&config.directory, DirectoryConfig::File { path } if path == Path::new("/etc/badgedock/badges.csv"))
    );
    let uem = config.uem.as_ref().expect("[uem]");
    assert!(
        matches!(&uem.auth, UemAuth::OAuth { client_id, .. } if client_id == "badgedock-4west")
    );
    assert_eq!(
        uem.tenant_code
            .as_ref()
            .map(|code| code.expose().to_string())
            .as_deref(),
        Some("TENANTCODE")
    );

    // An empty credential (the unit's SetCredential= fallback) is a named problem.
    std::fs::write(credentials.path().join("client-secret"), "\n").unwrap();
    let err = load(&example, &env).expect_err("an empty client secret must be refused");
    assert!(
        err.problems
            .iter()
            .any(|p| p.key == "uem.auth.client-secret-file"),
        "{err}"
    );

    let badges = std::fs::read_to_string(repo().join("examples/badges.csv")).unwrap();
    assert_eq!(badges.lines().next(), Some("badge,username,display-name"));
    assert!(
        badges
            .lines()
            .skip(1)
            .all(|line| line.split(',').count() == 3),
        "examples/badges.csv:\n{badges}"
    );
}

/// Paths the package must install, with their mode as `dpkg-deb -c` prints it.
const PACKAGE_FILES: &[(&str, &str)] = &[
    ("./usr/bin/badgedock", "-rwxr-xr-x"),
    ("./usr/lib/systemd/system/badgedock.service", "-rw-r--r--"),
    (
        "./usr/lib/systemd/system/badgedock-fleet.service",
        "-rw-r--r--",
    ),
    (
        "./usr/share/doc/badgedock/examples/fleet-console.toml",
        "-rw-r--r--",
    ),
    ("./usr/share/doc/badgedock/fleet/roles.sql", "-rw-r--r--"),
    ("./usr/lib/udev/rules.d/70-badgedock.rules", "-rw-r--r--"),
    (
        "./usr/share/polkit-1/rules.d/60-badgedock-pcscd.rules",
        "-rw-r--r--",
    ),
    ("./usr/lib/sysusers.d/badgedock.conf", "-rw-r--r--"),
    (
        "./usr/share/doc/badgedock/examples/badgedock.toml",
        "-rw-r--r--",
    ),
    (
        "./usr/share/doc/badgedock/examples/badges.csv",
        "-rw-r--r--",
    ),
    ("./usr/share/doc/badgedock/README.md", "-rw-r--r--"),
    ("./usr/share/doc/badgedock/copyright", "-rw-r--r--"),
    (
        "./usr/share/doc/badgedock/changelog.Debian.gz",
        "-rw-r--r--",
    ),
    ("./usr/share/man/man1/badgedock.1.gz", "-rw-r--r--"),
    ("./usr/share/man/man1/badgedock-run.1.gz", "-rw-r--r--"),
    (
        "./usr/share/man/man1/badgedock-dashboard.1.gz",
        "-rw-r--r--",
    ),
    (
        "./usr/share/bash-completion/completions/badgedock",
        "-rw-r--r--",
    ),
    (
        "./usr/share/zsh/vendor-completions/_badgedock",
        "-rw-r--r--",
    ),
];

#[test]
fn deploy_debian_package_installs_in_a_bookworm_root() {
    for tool in ["dpkg-deb", "unshare", "chroot", "tar"] {
        assert!(
            have(tool),
            "{tool} is missing (apt-get install dpkg-dev util-linux coreutils tar)"
        );
    }
    let deb = package();

    // --- lintian: no error, no warning (overrides, each with its reason, are in
    // debian/badgedock.lintian-overrides).
    assert!(
        have("lintian"),
        "lintian is missing: apt-get install lintian"
    );
    let lintian_started = Instant::now();
    let lintian = run(Command::new("lintian")
        .args([
            "--display-info",
            "--show-overrides",
            "--tag-display-limit=0",
        ])
        .arg(&deb));
    eprintln!(
        "lintian ({:.0?}):\n{}{}",
        lintian_started.elapsed(),
        lintian.stdout(),
        lintian.stderr()
    );
    let findings: Vec<String> = lintian
        .stdout()
        .lines()
        .filter(|line| line.starts_with("E: ") || line.starts_with("W: "))
        .map(str::to_string)
        .collect();
    assert!(
        findings.is_empty() && lintian.code().is_some_and(|code| code == 0 || code == 2),
        "lintian reports errors or warnings:\n{}",
        lintian.transcript()
    );

    // --- the file list
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb))
        .ok()
        .stdout();
    for (path, mode) in PACKAGE_FILES {
        let line = listing
            .lines()
            .find(|line| line.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"));
        assert!(
            line.starts_with(mode),
            "{path} has mode {line:?}, want {mode}"
        );
        // cargo-deb writes numeric owners; scripts/deb.sh repacks with dpkg-deb
        // --root-owner-group, which lists them by name.
        assert!(
            line.contains(" 0/0 ") || line.contains(" root/root "),
            "{path} is not owned by root: {line}"
        );
    }
    for unit in unit_files() {
        let path = format!(
            "./usr/lib/systemd/system/{}",
            unit.file_name().unwrap().to_string_lossy()
        );
        assert!(
            listing.lines().any(|line| line.ends_with(&path)),
            "{path} (from systemd/) is not in the package"
        );
    }
    assert!(
        !listing.contains(" ./etc/"),
        "the package must not install files under /etc:\n{listing}"
    );

    // --- control fields and maintainer scripts
    let fields = run(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .args(["Package", "Depends"]))
    .ok()
    .stdout();
    assert!(fields.contains("Package: badgedock"), "{fields}");
    for dependency in ["pcscd", "libpcsclite1", "libc6"] {
        assert!(
            fields.contains(dependency),
            "Depends lacks {dependency}: {fields}"
        );
    }
    let control = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(control.path()))
    .ok();
    for (script, needles) in [
        (
            "postinst",
            &[
                "systemd-sysusers",
                "useradd --system",
                "udevadm control --reload-rules",
                "deb-systemd-helper enable",
                "check-config",
                "deb-systemd-invoke restart",
                "pcscd.socket is not enabled",
            ][..],
        ),
        ("prerm", &["deb-systemd-invoke stop"][..]),
        (
            "postrm",
            &[
                "deb-systemd-helper purge",
                "deb-systemd-helper mask",
                "/var/lib/badgedock",
            ][..],
        ),
    ] {
        let path = control.path().join(script);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("the package has no {script}"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{script} mode {mode:o}");
        assert!(
            text.starts_with("#!/bin/sh\n"),
            "{script} must be a POSIX sh script"
        );
        run(Command::new("sh").arg("-n").arg(&path)).ok();
        for needle in needles {
            assert!(text.contains(needle), "{script} lacks {needle:?}");
        }
    }
    // pcscd's units are the admin's: postinst neither enables nor starts them.
    let postinst = std::fs::read_to_string(control.path().join("postinst")).unwrap();
    // (Lines that only tell the admin what to do, `say …`, and comments do not count.)
    for line in postinst.lines().filter(|line| {
        let code = line.trim_start();
        line.contains("pcscd.socket") && !code.starts_with("say ") && !code.starts_with('#')
    }) {
        assert!(
            !line.contains(" enable") && !line.contains(" start"),
            "postinst touches pcscd's units: {line}"
        );
    }
    // md5sums covers every file, for `dpkg --verify` and debsums.
    let md5sums = std::fs::read_to_string(control.path().join("md5sums"))
        .unwrap_or_else(|_| panic!("the package has no md5sums (scripts/deb.sh adds it)"));
    for (path, _) in PACKAGE_FILES {
        let path = path.trim_start_matches("./");
        assert!(
            md5sums
                .lines()
                .any(|line| line.ends_with(&format!("  {path}"))),
            "md5sums lacks {path}:\n{md5sums}"
        );
    }

    // --- install into Debian 12
    let rootfs_started = Instant::now();
    let tarball = bookworm_rootfs();
    let chroot = Chroot::unpack(&tarball, &target_dir().join("deploy-cache"), "chroot");
    eprintln!("bookworm root ready in {:.0?}", rootfs_started.elapsed());
    let chroot_started = Instant::now();
    std::fs::copy(&deb, chroot.path("/tmp/badgedock.deb")).unwrap();

    // The admin disabled pcscd.socket (a station with HID readers only): installing
    // leaves it so and says what PC/SC readers would need.
    chroot.sh("systemctl disable pcscd.socket 2>&1").ok();
    let install = chroot.sh("dpkg -i /tmp/badgedock.deb").ok();
    let said = install.stdout();
    assert!(
        said.contains("pcscd.socket is not enabled"),
        "postinst must note a disabled pcscd.socket:\n{}",
        install.transcript()
    );
    let pcscd = chroot.sh("systemctl is-enabled pcscd.socket 2>&1 || true");
    assert_eq!(
        pcscd.stdout().trim(),
        "disabled",
        "postinst re-enabled pcscd.socket"
    );
    chroot.sh("systemctl enable pcscd.socket 2>&1").ok();
    chroot.sh("dpkg --verify badgedock").ok();
    assert!(
        chroot.path("/usr/share/man/man1/badgedock.1.gz").is_file(),
        "no manual page installed"
    );
    let man = chroot
        .sh("zcat /usr/share/man/man1/badgedock.1.gz")
        .ok()
        .stdout();
    assert!(
        man.contains(".TH badgedock 1")
            && man.contains("EXIT STATUS")
            && man.contains("check\\-config"),
        "badgedock.1 is not the generated page:\n{man}"
    );
    assert!(
        said.contains("/etc/badgedock/badgedock.toml does not exist: badgedock.service is enabled but not started"),
        "postinst must say why the daemon was not started:\n{}",
        install.transcript()
    );
    chroot
        .sh("getent passwd badgedock && getent group badgedock && test -d /etc/badgedock")
        .ok();
    let account = chroot.sh("getent passwd badgedock").ok().stdout();
    assert!(
        account.contains(":/var/lib/badgedock:/usr/sbin/nologin"),
        "service account: {account}"
    );
    let enabled = chroot
        .sh("ls -l /etc/systemd/system/multi-user.target.wants/")
        .ok()
        .stdout();
    // deb-systemd-helper links to /lib/systemd/system on a merged-/usr bookworm: same file.
    assert!(
        enabled
            .lines()
            .any(|line| line.contains("badgedock.service -> ")
                && line.ends_with("/systemd/system/badgedock.service")),
        "badgedock.service is not enabled:\n{enabled}"
    );
    assert!(chroot.path("/usr/bin/badgedock").is_file());
    chroot.sh("/usr/bin/badgedock --help >/dev/null").ok();

    // systemd's own view of the installed units, in the root where ExecStart= and
    // pcscd.socket exist.
    for unit in unit_files() {
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        let verify = chroot.sh(&format!(
            "systemd-analyze verify /usr/lib/systemd/system/{name} 2>&1"
        ));
        assert!(
            verify.output.status.success() && verify.stdout().trim().is_empty(),
            "installed {name} does not verify:\n{}",
            verify.transcript()
        );
    }

    // The operator's steps from the README: config from the example, secrets
    // root-only, check-config.
    chroot
        .sh(
            "cp /usr/share/doc/badgedock/examples/badgedock.toml /etc/badgedock/badgedock.toml && \
             cp /usr/share/doc/badgedock/examples/badges.csv /etc/badgedock/badges.csv && \
             install -m 0600 /dev/null /etc/badgedock/client-secret && echo dummy-secret > /etc/badgedock/client-secret && \
             install -m 0600 /dev/null /etc/badgedock/tenant-code && echo DUMMYTENANT > /etc/badgedock/tenant-code",
        )
        .ok();
    let check = chroot.sh("badgedock check-config /etc/badgedock/badgedock.toml");
    assert_eq!(
        check.code(),
        Some(0),
        "check-config on the example config:\n{}",
        check.transcript()
    );
    let check =
        chroot.sh("badgedock check-config /usr/share/doc/badgedock/examples/badgedock.toml");
    assert_eq!(
        check.code(),
        Some(0),
        "check-config on the shipped example:\n{}",
        check.transcript()
    );
    chroot.sh("rm /etc/badgedock/tenant-code").ok();
    let check = chroot.sh("badgedock check-config /etc/badgedock/badgedock.toml");
    assert_eq!(
        check.code(),
        Some(78),
        "check-config without the tenant code must exit 78 (EX_CONFIG):\n{}",
        check.transcript()
    );
    let check_said = format!("{}{}", check.stdout(), check.stderr());
    assert!(
        check_said.contains("tenant-code"),
        "check-config must name the missing secret:\n{}",
        check.transcript()
    );

    // Reinstall with a broken config: postinst refuses to (re)start and says so.
    let reinstall = chroot.sh("dpkg -i /tmp/badgedock.deb").ok();
    assert!(
        reinstall
            .stdout()
            .contains("has problems (listed above): badgedock.service is not (re)started"),
        "{}",
        reinstall.transcript()
    );
    // ... and with a good one it would start it (systemd does not run in the chroot).
    chroot
        .sh("echo DUMMYTENANT > /etc/badgedock/tenant-code")
        .ok();
    let reinstall = chroot.sh("dpkg -i /tmp/badgedock.deb").ok();
    assert!(
        reinstall
            .stdout()
            .contains("is valid; systemd is not running here, so nothing is started"),
        "{}",
        reinstall.transcript()
    );

    // Remove, then purge: units and links go, the state goes, the operator's files stay.
    chroot
        .sh("mkdir -p /var/lib/badgedock && touch /var/lib/badgedock/badgedock.sqlite3")
        .ok();
    chroot.sh("dpkg --remove badgedock").ok();
    assert!(!chroot.path("/usr/bin/badgedock").exists());
    assert!(!chroot
        .path("/usr/lib/udev/rules.d/70-badgedock.rules")
        .exists());
    let purge = chroot.sh("dpkg --purge badgedock").ok();
    assert!(
        !chroot.path("/var/lib/badgedock").exists(),
        "purge must delete the state directory"
    );
    assert!(!chroot
        .path("/etc/systemd/system/multi-user.target.wants/badgedock.service")
        .exists());
    assert!(
        chroot.path("/etc/badgedock/badgedock.toml").exists(),
        "purge deleted the operator's config"
    );
    assert!(
        purge.stderr().contains("/etc/badgedock is not empty"),
        "{}",
        purge.transcript()
    );
    let status = chroot
        .sh("dpkg-query -W -f='${db:Status-Abbrev}' badgedock 2>&1 || true")
        .stdout();
    assert!(
        !status.starts_with("ii"),
        "still installed after purge: {status}"
    );
    eprintln!(
        "chroot install/check/purge took {:.0?}",
        chroot_started.elapsed()
    );
}

/// The package, built once per test run by scripts/deb.sh (release build, manual
/// pages, completions, `cargo deb`, md5sums); the tests that need it share it.
fn package() -> PathBuf {
    static PACKAGE: OnceLock<PathBuf> = OnceLock::new();
    PACKAGE
        .get_or_init(|| {
            // A package built already (scripts/deb.sh), to iterate on these tests
            // without the release build.
            if let Some(deb) = std::env::var_os("BADGEDOCK_TEST_DEB") {
                eprintln!(
                    "package: {} (BADGEDOCK_TEST_DEB)",
                    PathBuf::from(&deb).display()
                );
                return PathBuf::from(deb);
            }
            let started = Instant::now();
            let ran = run(Command::new(repo().join("scripts/deb.sh")).current_dir(repo())).ok();
            let path = ran
                .stdout()
                .lines()
                .next_back()
                .map(str::trim)
                .filter(|line| line.ends_with(".deb"))
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    panic!("scripts/deb.sh printed no .deb path:\n{}", ran.transcript())
                });
            assert!(path.is_file(), "{} does not exist", path.display());
            let size = std::fs::metadata(&path).unwrap().len();
            eprintln!(
                "package: {} ({size} bytes) built in {:.0?}",
                path.display(),
                started.elapsed()
            );
            path
        })
        .clone()
}

/// The cached Debian 12 root (built by scripts/deploy-rootfs.sh on first use).
fn bookworm_rootfs() -> PathBuf {
    static BUILT: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let tarball = target_dir().join("deploy-cache/bookworm.tar");
    if !tarball.is_file() {
        assert!(
            have("debootstrap"),
            "debootstrap is missing: apt-get install debootstrap"
        );
        eprintln!(
            "building {} with debootstrap (first run only)",
            tarball.display()
        );
        run(Command::new(repo().join("scripts/deploy-rootfs.sh")).arg(&tarball)).ok();
    }
    tarball
}

/// Client commands read only the socket path and the state dir (`config::load_client`),
/// never the root-only secrets: the test proves a member of the group badgedock can run
/// `status` and the dashboard unit stays up.
const CLIENT_COMMANDS_NEED_NO_SECRETS: bool = true;

/// SIGHUP re-reads the config and the directory: the test proves `systemctl reload`
/// keeps the same process running.
const SIGHUP_RELOADS: bool = true;

/// The station's config inside the container: the simulator on the container's own
/// loopback, secrets root-only in /etc/badgedock (the service gets them only through
/// LoadCredential=), the dock's sysfs tree under the state directory.
const CONTAINER_CONFIG: &str = r#"[station]
name = "Deploy test"
state-dir = "/var/lib/badgedock"
control-socket = "/run/badgedock/control.sock"

[uem]
base-url = "http://127.0.0.1:8443"
tenant-code-file = "/etc/badgedock/tenant-code"
staging-user = "staging-4west"
[uem.auth]
kind = "oauth"
token-url = "http://127.0.0.1:8443/connect/token"
client-id = "badgedock-demo"
client-secret-file = "/etc/badgedock/client-secret"

[dock]
sysfs-root = "/var/lib/badgedock/sys"
rescan-ms = 200
slots = [ { label = "1", port = "1-1.1" }, { label = "2", port = "1-1.2" } ]

[directory]
kind = "file"
path = "/etc/badgedock/badges.csv"
"#;

/// Two iPhones of the simulator's built-in seed, enrolled to its staging user.
const CONTAINER_PHONES: [(&str, &str); 2] = [
    ("1-1.1", "00008110000A1B2C3D4E801E"),
    ("1-1.2", "00008110001C2D3E4F5A602E"),
];

#[test]
fn deploy_package_runs_under_systemd_as_pid_1() {
    let started = Instant::now();
    for tool in ["systemd-nspawn", "nsenter", "timeout"] {
        assert!(
            have(tool),
            "{tool} is missing (apt-get install systemd-container util-linux coreutils)"
        );
    }
    let deb = package();
    let root = Chroot::unpack(
        &bookworm_rootfs(),
        &target_dir().join("deploy-cache"),
        "systemd",
    );
    std::fs::copy(&deb, root.path("/root/badgedock.deb")).unwrap();
    let booted = Instant::now();
    let machine = Container::boot(root);
    eprintln!("container booted in {:.1?}", booted.elapsed());
    let status_of = |unit: &str| {
        machine
            .sh(&format!("systemctl is-active {unit}"))
            .stdout()
            .trim()
            .to_string()
    };

    // --- install: enabled, not started (no config yet)
    let install = machine.ok("dpkg -i /root/badgedock.deb 2>&1");
    assert!(
        install.stdout().contains(
            "/etc/badgedock/badgedock.toml does not exist: badgedock.service is enabled but not started"
        ),
        "{}",
        install.transcript()
    );
    for unit in ["badgedock.service", "badgedock-dashboard.service"] {
        assert_eq!(
            machine
                .sh(&format!("systemctl is-enabled {unit}"))
                .stdout()
                .trim(),
            "enabled",
            "{unit}"
        );
    }
    assert_eq!(status_of("badgedock"), "inactive");

    // --- the Workspace ONE simulator, inside, as a transient unit
    machine.ok("systemd-run --quiet --unit=uem-sim --property=Type=exec \
         /usr/bin/badgedock uem-sim --listen 127.0.0.1:8443");
    machine.wait_for(Duration::from_secs(20), "uem-sim listening", || {
        machine
            .sh("journalctl -u uem-sim -o cat")
            .stdout()
            .contains("listening on http://127.0.0.1:8443")
    });

    // --- the operator's steps: config, badges, root-only secrets, a docked phone
    std::fs::write(
        machine.path("/etc/badgedock/badgedock.toml"),
        CONTAINER_CONFIG,
    )
    .unwrap();
    std::fs::write(
        machine.path("/etc/badgedock/badges.csv"),
        "badge,username,display-name\n04A1B2C3D4E5F6,alice,Alice Martin\n",
    )
    .unwrap();
    machine.ok(&format!(
        "install -m 0600 /dev/null /etc/badgedock/client-secret && echo {} > /etc/badgedock/client-secret && \
         install -m 0600 /dev/null /etc/badgedock/tenant-code && echo SIMTENANT4WEST > /etc/badgedock/tenant-code",
        badgedock::uemsim::DEMO_CLIENT_SECRET
    ));
    for (port, serial) in CONTAINER_PHONES {
        machine.ok(&format!(
            "d=/var/lib/badgedock/sys/bus/usb/devices/{port} && mkdir -p $d && \
             echo 05ac > $d/idVendor && echo 12a8 > $d/idProduct && echo {serial} > $d/serial"
        ));
    }
    machine.ok("badgedock check-config /etc/badgedock/badgedock.toml");

    // --- READY: `systemctl start` of a Type=notify unit returns once READY=1 arrived
    machine.ok("systemctl start badgedock");
    assert_eq!(status_of("badgedock"), "active");
    let first_pid = machine.property("badgedock", "MainPID");
    // A phone is available only once Workspace ONE identified it: a call made with the
    // secrets the service read through LoadCredential=.
    machine.wait_for(
        Duration::from_secs(20),
        "both phones identified by Workspace ONE (needs the LoadCredential= secrets)",
        || {
            let status = machine.sh("badgedock status --json");
            let status: serde_json::Value =
                serde_json::from_str(&status.stdout()).unwrap_or_default();
            status["slots"].as_array().is_some_and(|slots| {
                slots.len() == 2 && slots.iter().all(|slot| slot["state"] == "available")
            })
        },
    );
    // STATUS= follows the station at most once a second.
    machine.wait_for(
        Duration::from_secs(5),
        "the status line with 2/2 phones ready",
        || {
            let status_text = machine.property("badgedock", "StatusText");
            status_text.contains("2/2 phones ready") && status_text.contains("Workspace ONE")
        },
    );
    assert_eq!(machine.property("badgedock", "WatchdogUSec"), "30s");
    // The service read the secrets only through its credentials (it cannot open the
    // root-only files); the credentials directory holds them for it alone.
    let credentials = machine.ok("stat -c '%U %a' /etc/badgedock/client-secret && \
         ls /run/credentials/badgedock.service/");
    assert!(
        credentials.stdout().starts_with("root 600")
            && credentials.stdout().contains("client-secret")
            && credentials.stdout().contains("tenant-code"),
        "{}",
        credentials.transcript()
    );
    assert_eq!(machine.property("badgedock", "UMask"), "0077");

    // --- a tap through the control socket, assigned in Workspace ONE
    let tap = machine.sh("badgedock tap 04A1B2C3D4E5F6");
    if !tap.output.status.success() || !tap.stdout().contains("take slot") {
        machine.fail(&format!("tap refused:\n{}", tap.transcript()));
    }
    machine.wait_for(
        Duration::from_secs(15),
        "the check-out sent to Workspace ONE",
        || {
            let status = machine.sh("badgedock status --json");
            let status: serde_json::Value =
                serde_json::from_str(&status.stdout()).unwrap_or_default();
            status["mdm"]["waiting"] == 0
                && status["slots"]
                    .as_array()
                    .is_some_and(|slots| slots.iter().any(|slot| slot["state"] != "available"))
        },
    );

    // --- `status` as a member of the group badgedock, not root
    machine.ok("useradd --create-home --groups badgedock nurse-it");
    let as_member = machine.sh("runuser -u nurse-it -- badgedock status");
    if CLIENT_COMMANDS_NEED_NO_SECRETS {
        assert!(
            as_member.output.status.success() && as_member.stdout().contains("1"),
            "status as a group member:\n{}",
            as_member.transcript()
        );
    } else {
        assert_eq!(
            as_member.code(),
            Some(78),
            "FIXME: status as a group member still reads the secrets:\n{}",
            as_member.transcript()
        );
    }

    // --- the dashboard on a pseudo terminal: the container's console (a pty that
    // systemd-nspawn reads), instead of tty1, which a container has not.
    machine.ok(
        "mkdir -p /etc/systemd/system/badgedock-dashboard.service.d && \
         printf '[Unit]\\nConflicts=console-getty.service\\nAfter=console-getty.service\\n[Service]\\nTTYPath=/dev/console\\nDeviceAllow=/dev/console rw\\n' \
           > /etc/systemd/system/badgedock-dashboard.service.d/console.conf && \
         systemctl daemon-reload",
    );
    machine.ok("systemctl start badgedock-dashboard");
    std::thread::sleep(Duration::from_secs(4));
    let restarts = machine.property("badgedock-dashboard", "NRestarts");
    if CLIENT_COMMANDS_NEED_NO_SECRETS {
        assert_eq!(status_of("badgedock-dashboard"), "active");
        assert_eq!(restarts, "0", "the dashboard restarted");
    } else {
        // FIXME: the dashboard still reads the secrets and exits 78; the unit stops at
        // once instead of crash-looping, and gives the terminal back.
        assert_eq!(status_of("badgedock-dashboard"), "failed");
        assert_eq!(
            machine.property("badgedock-dashboard", "ExecMainStatus"),
            "78"
        );
        assert_eq!(restarts, "0", "exit 78 must not be restarted");
    }
    machine.ok("systemctl stop badgedock-dashboard; systemctl reset-failed badgedock-dashboard");

    // --- kill -9: systemd restarts it (RestartSec=5) from the durable store
    machine.ok("kill -9 $(systemctl show -p MainPID --value badgedock)");
    machine.wait_for(
        Duration::from_secs(30),
        "badgedock restarted after kill -9",
        || {
            status_of("badgedock") == "active"
                && machine.property("badgedock", "MainPID") != first_pid
                && machine.property("badgedock", "NRestarts") == "1"
        },
    );

    // --- the watchdog: a stopped main loop is killed and restarted. A drop-in shortens
    // it to 3 s so the test does not wait 30.
    machine.ok("mkdir -p /etc/systemd/system/badgedock.service.d && \
         printf '[Service]\\nWatchdogSec=3\\nTimeoutAbortSec=2\\nRestartSec=1\\n' \
           > /etc/systemd/system/badgedock.service.d/watchdog.conf && \
         systemctl daemon-reload && systemctl restart badgedock");
    let pinged_pid = machine.property("badgedock", "MainPID");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        machine.property("badgedock", "MainPID"),
        pinged_pid,
        "a running daemon must keep the 3 s watchdog fed"
    );
    machine.ok(&format!("kill -STOP {pinged_pid}"));
    machine.wait_for(Duration::from_secs(30), "the watchdog restart", || {
        status_of("badgedock") == "active" && machine.property("badgedock", "MainPID") != pinged_pid
    });
    let journal = machine.ok("journalctl -u badgedock -o cat").stdout();
    assert!(
        journal.contains("Watchdog timeout"),
        "no watchdog timeout in the journal:\n{journal}"
    );
    machine.ok(
        "rm /etc/systemd/system/badgedock.service.d/watchdog.conf && systemctl daemon-reload && \
         systemctl restart badgedock",
    );

    // --- reload
    assert!(
        machine
            .property("badgedock", "ExecReload")
            .contains("kill -HUP"),
        "badgedock.service has no ExecReload="
    );
    let before_reload = machine.property("badgedock", "MainPID");
    machine.ok("systemctl reload badgedock");
    std::thread::sleep(Duration::from_secs(2));
    if SIGHUP_RELOADS {
        assert_eq!(status_of("badgedock"), "active");
        assert_eq!(machine.property("badgedock", "MainPID"), before_reload);
    } else {
        // FIXME: SIGHUP ends the daemon, and systemd counts that a clean stop.
        assert_ne!(
            status_of("badgedock"),
            "active",
            "the daemon survived SIGHUP: the reload handler has landed, set SIGHUP_RELOADS"
        );
    }

    // --- a bad config: exit 78, no restart loop (daemon and dashboard)
    std::fs::write(
        machine.path("/etc/badgedock/badgedock.toml"),
        CONTAINER_CONFIG.replace("rescan-ms = 200", "rescan-every = 200"),
    )
    .unwrap();
    machine.sh("systemctl reset-failed badgedock; systemctl restart badgedock");
    machine.sh("systemctl start badgedock-dashboard");
    // RestartSec=5: a restart loop would have shown by now.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        status_of("badgedock"),
        "failed",
        "badgedock with a bad config"
    );
    assert_eq!(machine.property("badgedock", "ExecMainStatus"), "78");
    assert_eq!(
        machine.property("badgedock", "NRestarts"),
        "0",
        "restart loop"
    );
    // The dashboard either shows the daemon down or, when it reads the config itself,
    // stops with 78; it never loops.
    assert_eq!(
        machine.property("badgedock-dashboard", "NRestarts"),
        "0",
        "the dashboard restarted"
    );
    if status_of("badgedock-dashboard") == "failed" {
        assert_eq!(
            machine.property("badgedock-dashboard", "ExecMainStatus"),
            "78"
        );
        // Its failure hands tty1 back: OnFailure= started getty@tty1 (whose condition,
        // a VT, does not hold in a container, but it was tried).
        assert_ne!(
            machine.property("getty@tty1.service", "ConditionTimestampMonotonic"),
            "0",
            "OnFailure= did not start getty@tty1"
        );
    }
    let journal = machine.ok("journalctl -u badgedock -o cat -n 20").stdout();
    assert!(
        journal.contains("rescan-every"),
        "the journal must name the bad key:\n{journal}"
    );

    // --- purge: state gone, units gone, the operator's config kept
    machine.ok("apt-get purge -y badgedock 2>&1 || dpkg --purge badgedock 2>&1");
    assert!(
        !machine.path("/var/lib/badgedock").exists(),
        "purge left /var/lib/badgedock"
    );
    assert!(!machine.path("/usr/bin/badgedock").exists());
    assert!(machine.path("/etc/badgedock/badgedock.toml").exists());
    let units = machine.sh("systemctl list-unit-files 'badgedock*' --no-legend");
    assert!(
        units.stdout().trim().is_empty(),
        "unit files left after purge:\n{}",
        units.stdout()
    );
    eprintln!("systemd deployment test took {:.0?}", started.elapsed());
}
