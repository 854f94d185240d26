//! `badgedock doctor`: a live check of everything outside the box, before a nurse finds
//! the first problem as "DO NOT TAKE SLOT n".
//!
//! Each check is one line of a checklist ([`Check`]: pass, warning or failure) and every
//! failure carries its fix. The checks, in order: the Workspace ONE credentials (the OAuth
//! token call, or Basic through the first API call), the tenant code, the staging user
//! (exactly one account, active, multi-user staging), the clock against Workspace ONE's
//! `Date` header, each docked phone (found, enrolled, staged by the staging user, of a
//! supported platform), the badge directory (and a test badge), the readers, and the free
//! space in the state folder.
//!
//! [`installation_test`] is `doctor --check-out SLOT --user U`: a real check-out and
//! check-in of one phone through the client directly, each confirmed by reading the
//! device back from Workspace ONE. It refuses to run beside a daemon on the same state
//! folder.
//!
//! Like `daemon`, this module is wiring: it uses several edges (mdm, directory, dock,
//! readers) and they still do not know each other.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::badges::Resolution;
use crate::checkout::MdmAction;
use crate::config::{Config, ReaderKind, UemAuth, UemConfig};
use crate::directory::Directory;
use crate::domain::{BadgeNumber, DeviceKey, SlotLabel, Username};
use crate::mdm::model::DeviceV1;
use crate::mdm::{Mdm as _, MdmError, UemClient};

/// Clock skew that earns a warning.
pub const SKEW_WARN_S: i64 = 30;
/// Clock skew that fails the check (tokens and TLS start to break).
pub const SKEW_FAIL_S: i64 = 300;
/// Free space in the state folder below which the check fails.
pub const DISK_FAIL_BYTES: u64 = 50 * 1024 * 1024;
/// Free space below which it warns.
pub const DISK_WARN_BYTES: u64 = 500 * 1024 * 1024;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// All good.
    Pass,
    /// Works, but deserves a look; does not fail the run.
    Warn,
    /// Will break check-outs; fails the run.
    Fail,
}

impl Mark {
    fn symbol(self, ascii: bool) -> &'static str {
        match (self, ascii) {
            (Mark::Pass, false) => "✓",
            (Mark::Warn, false) => "!",
            (Mark::Fail, false) => "✗",
            (Mark::Pass, true) => "[ok]  ",
            (Mark::Warn, true) => "[warn]",
            (Mark::Fail, true) => "[FAIL]",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Pass, warning or failure.
    pub mark: Mark,
    /// What was checked and what was found, one sentence.
    pub text: String,
    /// What to do, for warnings and failures.
    pub fix: Option<String>,
}

impl Check {
    fn pass(text: impl Into<String>) -> Check {
        Check {
            mark: Mark::Pass,
            text: text.into(),
            fix: None,
        }
    }

    fn warn(text: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            mark: Mark::Warn,
            text: text.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(text: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            mark: Mark::Fail,
            text: text.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The whole checklist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed (warnings allowed).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.mark != Mark::Fail)
    }

    /// The checklist as printed: one line per check, its fix indented below, and a
    /// summary line. `ascii` writes `[ok]`/`[warn]`/`[FAIL]` instead of ✓/!/✗.
    pub fn render(&self, ascii: bool) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let _ = writeln!(out, "{} {}", check.mark.symbol(ascii), check.text);
            if let Some(fix) = &check.fix {
                let indent = if ascii { "       " } else { "  " };
                let _ = writeln!(out, "{indent}fix: {fix}");
            }
        }
        let count = |mark| self.checks.iter().filter(|c| c.mark == mark).count();
        let _ = writeln!(
            out,
            "{} checks: {} passed, {} warnings, {} failed",
            self.checks.len(),
            count(Mark::Pass),
            count(Mark::Warn),
            count(Mark::Fail)
        );
        out
    }
}

/// What to check besides the standard list.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A badge number (as the reader renders it) to look up in the directory.
    pub badge: Option<String>,
}

/// `doctor --check-out SLOT --user U`.
#[derive(Debug, Clone)]
pub struct InstallationTest {
    /// The slot whose phone is checked out and back in.
    pub slot: SlotLabel,
    /// The Workspace ONE user it is checked out to.
    pub user: Username,
}

/// Runs every check and returns the checklist.
pub async fn run(config: &Config, options: &Options) -> Report {
    let mut report = Report::default();
    if let Some(client) = workspace_one(config, &mut report.checks).await {
        docked_phones(config, &client, &mut report.checks).await;
    }
    directory(config, options, &mut report.checks).await;
    readers(config, &mut report.checks);
    report.checks.push(disk_space(&config.station.state_dir));
    report.checks.push(store_writable(config).await);
    report
}

/// Whether the store can be written: what the running daemon says (it probes its store
/// after a fault), else a look at the state folder and the store's files.
async fn store_writable(config: &Config) -> Check {
    let socket = &config.station.control_socket;
    if daemon_running(socket).is_some() {
        if let Ok(crate::control::Response::Snapshot { snapshot }) = crate::control::request(
            socket,
            crate::control::Request::Status,
            std::time::Duration::from_secs(5),
        )
        .await
        {
            if snapshot.instruction.headline == crate::daemon::storage::HEADLINE {
                return Check::fail(
                    format!(
                        "store: the daemon cannot record taps: {}",
                        snapshot.instruction.detail
                    ),
                    "fix what it names; the daemon tries again every 5 s and resumes by itself",
                );
            }
            return Check::pass("store: the daemon records taps");
        }
    }
    let dir = &config.station.state_dir;
    if !dir.exists() {
        return Check::pass(format!(
            "store: {} does not exist yet (the daemon creates it)",
            dir.display()
        ));
    }
    let store = dir.join(crate::daemon::STORE_FILE);
    let mut files = vec![dir.clone(), store.clone()];
    files.push(dir.join(format!("{}-wal", crate::daemon::STORE_FILE)));
    for file in files.iter().filter(|file| file.exists()) {
        match nix::unistd::access(file.as_path(), nix::unistd::AccessFlags::W_OK) {
            Ok(()) => {}
            Err(nix::errno::Errno::EROFS) => {
                return Check::fail(
                    format!("store: {} is on a read-only file system", file.display()),
                    "check `dmesg` for disk errors, then remount it read-write (mount -o remount,rw) or repair it",
                )
            }
            Err(errno) => {
                return Check::fail(
                    format!(
                        "store: {} cannot be written by this user ({})",
                        file.display(),
                        errno.desc()
                    ),
                    "give the folder and its files to the badgedock user (chown -R badgedock: …, folder 0750, files 0600) and clear an immutable attribute (lsattr, chattr -i)",
                )
            }
        }
    }
    Check::pass(format!("store: {} is writable", dir.display()))
}

/// Credentials, tenant code, staging user and clock. The client when Workspace ONE
/// answered well enough for the device checks to make sense.
async fn workspace_one(config: &Config, checks: &mut Vec<Check>) -> Option<UemClient> {
    let Some(uem) = &config.uem else {
        checks.push(Check::fail(
            "Workspace ONE: the config has no [uem] section",
            "add [uem] with base-url, staging-user and [uem.auth] (see examples/badgedock.toml)",
        ));
        return None;
    };
    let client = match UemClient::new(uem) {
        Ok(client) => client,
        Err(err) => {
            checks.push(Check::fail(
                format!("Workspace ONE client: {err}"),
                "correct the key named above and run `badgedock check-config` again",
            ));
            return None;
        }
    };
    match client.check_token().await {
        Ok(true) => checks.push(Check::pass(format!(
            "Workspace ONE credentials: OAuth token issued by {}",
            token_host(uem)
        ))),
        Ok(false) => {}
        Err(err) => {
            checks.push(mdm_failure("Workspace ONE credentials", &err, uem));
            return None;
        }
    }
    let staging = client.staging_user().clone();
    let accounts = match client.accounts_named(&staging).await {
        Ok(accounts) => {
            let what = match uem.auth {
                UemAuth::OAuth { .. } => "Workspace ONE API access",
                UemAuth::Basic { .. } => "Workspace ONE credentials (Basic)",
            };
            let tenant = if uem.tenant_code.is_some() {
                "with the tenant code"
            } else {
                "without a tenant code"
            };
            checks.push(Check::pass(format!(
                "{what}: {} answered {tenant}",
                host_of(&uem.base_url)
            )));
            accounts
        }
        Err(err) => {
            checks.push(mdm_failure("Workspace ONE API access", &err, uem));
            return None;
        }
    };
    checks.push(staging_account(&staging, &accounts));
    checks.push(clock(client.server_clock_skew()));
    Some(client)
}

/// The staging account: exactly one, active, with multi-user device staging.
fn staging_account(staging: &Username, accounts: &[crate::mdm::model::UserV1]) -> Check {
    match accounts {
        [] => Check::fail(
            format!("staging user: Workspace ONE has no account named exactly \"{staging}\""),
            format!(
                "create the multi-user staging account \"{staging}\" in Workspace ONE (Accounts › Users, Device Staging: multi user), or correct uem.staging-user"
            ),
        ),
        [account] if !account.is_active() => Check::fail(
            format!("staging user: the account \"{staging}\" is inactive"),
            format!("activate \"{staging}\" in Workspace ONE (Accounts › Users › Activate)"),
        ),
        [account] if account.device_staging_enabled == Some(false) => Check::fail(
            format!("staging user: \"{staging}\" exists but has Device Staging turned off"),
            format!(
                "in Workspace ONE, edit \"{staging}\" › Advanced › Device Staging: enable it, multi user; then re-enrol the phones through it"
            ),
        ),
        [account] if account.staging_mode == Some(1) => Check::warn(
            format!("staging user: \"{staging}\" exists once and is active, but stages single-user devices"),
            format!("set \"{staging}\" to multi-user Device Staging: check-out is refused for single-staged phones"),
        ),
        [_] => Check::pass(format!(
            "staging user: \"{staging}\" exists exactly once and is active (multi-user staging)"
        )),
        several => Check::fail(
            format!(
                "staging user: Workspace ONE has {} accounts named exactly \"{staging}\"",
                several.len()
            ),
            format!(
                "keep one \"{staging}\" account (the one the phones were staged with) and rename or delete the others; badgedock refuses to guess"
            ),
        ),
    }
}

/// Workspace ONE's clock against ours.
fn clock(skew: Option<i64>) -> Check {
    let fix = "turn on time synchronisation (`timedatectl set-ntp true`, systemd-timesyncd or chrony) and check the time zone is not set in place of UTC";
    match skew {
        None => Check::warn(
            "clock: Workspace ONE's answer had no Date header to compare with",
            "compare the station's clock with a trusted source by hand (`timedatectl`)",
        ),
        Some(s) if s.abs() > SKEW_FAIL_S => Check::fail(
            format!(
                "clock: this station is {} {} Workspace ONE (more than {} min)",
                duration_words(s.unsigned_abs()),
                if s > 0 { "behind" } else { "ahead of" },
                SKEW_FAIL_S / 60
            ),
            fix,
        ),
        Some(s) if s.abs() > SKEW_WARN_S => Check::warn(
            format!(
                "clock: this station is {} {} Workspace ONE",
                duration_words(s.unsigned_abs()),
                if s > 0 { "behind" } else { "ahead of" }
            ),
            fix,
        ),
        Some(s) => Check::pass(format!(
            "clock: within {} s of Workspace ONE",
            s.unsigned_abs().max(1)
        )),
    }
}

/// Every phone in the dock now: found in Workspace ONE, enrolled, staged by the staging
/// user, of a supported platform.
async fn docked_phones(config: &Config, client: &UemClient, checks: &mut Vec<Check>) {
    let dock = config.dock.clone();
    let scanned = tokio::task::spawn_blocking(move || crate::dock::scan(&dock))
        .await
        .ok()
        .flatten();
    let Some(phones) = scanned else {
        checks.push(Check::warn(
            "docked phones: a dock port stayed unreadable while scanning",
            "run doctor again once no phone is being plugged in or out",
        ));
        return;
    };
    if phones.is_empty() {
        checks.push(Check::warn(
            format!(
                "docked phones: none of the {} slots holds a phone",
                config.dock.slots.len()
            ),
            "dock at least one phone and run doctor again to check it in Workspace ONE",
        ));
        return;
    }
    let staging = client.staging_user();
    for (slot, key) in phones {
        let check = match client.device_details(&key).await {
            Ok(device) => phone_check(&slot, &key, &device, staging),
            Err(MdmError::DeviceNotFound { .. }) => Check::fail(
                format!("slot {slot}: phone {key} is not in Workspace ONE"),
                format!(
                    "enrol it in this tenant through multi-user staging as \"{staging}\", or check that uem.base-url is the tenant the phones are enrolled in"
                ),
            ),
            Err(err) => Check::fail(
                format!("slot {slot}: cannot look up phone {key}: {err}"),
                "run doctor again; if it persists, see the Workspace ONE checks above",
            ),
        };
        checks.push(check);
    }
}

fn phone_check(slot: &SlotLabel, key: &DeviceKey, device: &DeviceV1, staging: &Username) -> Check {
    let name = device
        .device_friendly_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| key.to_string());
    let platform = device.platform.clone().unwrap_or_default();
    let status = device.enrollment_status.clone().unwrap_or_default();
    if !status.eq_ignore_ascii_case("enrolled") {
        return Check::fail(
            format!("slot {slot}: {name} ({key}) is {status:?} in Workspace ONE, not enrolled"),
            format!("take it out of the cabinet and re-enrol it through multi-user staging as \"{staging}\""),
        );
    }
    let user = device.enrollment_user();
    if user.as_ref() != Some(staging) {
        let who = user.map_or_else(|| "nobody".to_string(), |u| u.to_string());
        return Check::fail(
            format!(
                "slot {slot}: {name} ({key}) is enrolled to {who}, not through the staging user \"{staging}\""
            ),
            format!(
                "if it is a phone on loan, let the running daemon check it in; otherwise unenrol it and enrol it again through multi-user staging as \"{staging}\""
            ),
        );
    }
    match platform.as_str() {
        "Apple" => Check::pass(format!(
            "slot {slot}: {name} ({key}) enrolled, staged by {staging}, Apple{}",
            device
                .ownership
                .as_deref()
                .map(|o| format!(", ownership {o}"))
                .unwrap_or_default()
        )),
        "Android" => Check::warn(
            format!("slot {slot}: {name} ({key}) is Android: Workspace ONE documents the enrolment-user change for iOS and macOS only"),
            "keep uem.android-enrollment-user-change off unless your tenant accepts it, and give Android a workflow without it",
        ),
        other => Check::fail(
            format!("slot {slot}: {name} ({key}) has platform {other:?}, which badgedock does not check out"),
            "dock only iPhones (or Android phones) in this cabinet",
        ),
    }
}

/// The badge directory: opens, has no problems, answers for the test badge.
async fn directory(config: &Config, options: &Options, checks: &mut Vec<Check>) {
    let directory = match Directory::open(&config.directory) {
        Ok(directory) => directory,
        Err(err) => {
            checks.push(Check::fail(
                format!("badge directory: {err}"),
                "correct [directory] and run `badgedock check-config`",
            ));
            return;
        }
    };
    let describe = directory.describe();
    let problems = {
        let directory = directory.clone();
        tokio::task::spawn_blocking(move || directory.problems())
            .await
            .unwrap_or_default()
    };
    for problem in &problems {
        checks.push(Check::fail(
            format!("badge directory: {problem}"),
            "correct the badge directory as said, then run doctor again",
        ));
    }
    let Some(badge) = options.badge.as_deref().map(str::trim) else {
        if problems.is_empty() {
            checks.push(Check::pass(format!(
                "badge directory: {describe} (give --badge B to test a lookup)"
            )));
        }
        return;
    };
    let badge = BadgeNumber::new(badge);
    match directory.lookup(&badge).await {
        Resolution::Known { user } | Resolution::Denied { user, .. } => {
            checks.push(Check::pass(format!(
                "badge directory: answers for badge {}: {} ({})",
                badge.redacted(),
                user.display_name,
                user.username
            )));
        }
        Resolution::Unknown => checks.push(Check::fail(
            format!(
                "badge directory: no user holds badge {} ({describe})",
                badge.redacted()
            ),
            "give --badge as the reader renders it (`badgedock readers --watch` shows every rendering), or add the badge to the directory",
        )),
        Resolution::Unavailable { reason } => checks.push(Check::fail(
            format!("badge directory: could not answer for badge {}: {reason}", badge.redacted()),
            "check the directory server is up and reachable from this station, and the [directory] settings",
        )),
    }
}

/// The configured readers are present: PC/SC through pcscd, HID and wedge readers by
/// their USB ids under the dock's sysfs root.
fn readers(config: &Config, checks: &mut Vec<Check>) {
    if config.readers.is_empty() {
        checks.push(Check::warn(
            "readers: none configured; taps come only from `badgedock tap`",
            "add a [[reader]] for the cabinet's badge reader",
        ));
        return;
    }
    let mut pcsc_names: Option<Result<Vec<String>, String>> = None;
    for reader in &config.readers {
        let check = match reader.kind {
            ReaderKind::Pcsc => {
                let names = pcsc_names.get_or_insert_with(|| {
                    crate::readers::pcsc::list_readers().map_err(|err| err.to_string())
                });
                match names {
                    Ok(names) => match names.iter().find(|n| n.contains(&reader.matcher)) {
                        Some(found) => Check::pass(format!(
                            "reader {}: PC/SC reader {found:?} present",
                            reader.name
                        )),
                        None => Check::fail(
                            format!(
                                "reader {}: no PC/SC reader matches {:?} (pcscd lists {})",
                                reader.name,
                                reader.matcher,
                                if names.is_empty() { "none".to_string() } else { names.join(", ") }
                            ),
                            "plug the reader in (`badgedock readers` lists what pcscd sees) or correct its match",
                        ),
                    },
                    Err(err) => Check::fail(
                        format!("reader {}: cannot ask pcscd: {err}", reader.name),
                        "start pcscd (`systemctl enable --now pcscd.socket`)",
                    ),
                }
            }
            ReaderKind::Hid | ReaderKind::Wedge => {
                match usb_present(&config.dock.sysfs_root, &reader.matcher) {
                    Some(true) => Check::pass(format!(
                        "reader {}: USB device {} present",
                        reader.name, reader.matcher
                    )),
                    Some(false) => Check::fail(
                        format!("reader {}: no USB device {} is plugged in", reader.name, reader.matcher),
                        "plug the reader in, or correct its vvvv:pppp match (`lsusb` shows the ids)",
                    ),
                    None => Check::fail(
                        format!("reader {}: {:?} is not a USB id", reader.name, reader.matcher),
                        "write the match as vvvv:pppp in hex, e.g. 0c27:3bfa",
                    ),
                }
            }
        };
        checks.push(check);
    }
}

/// Whether a USB device `vvvv:pppp` is present under `sysfs_root`; `None` for a bad id.
fn usb_present(sysfs_root: &Path, matcher: &str) -> Option<bool> {
    let (vendor, product) = crate::readers::hid::parse_usb_id(matcher)?;
    let read_hex = |path: PathBuf| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| u16::from_str_radix(text.trim(), 16).ok())
    };
    let Ok(entries) = std::fs::read_dir(sysfs_root.join("bus/usb/devices")) else {
        return Some(false);
    };
    Some(entries.flatten().any(|entry| {
        read_hex(entry.path().join("idVendor")) == Some(vendor)
            && read_hex(entry.path().join("idProduct")) == Some(product)
    }))
}

/// Free space where the store lives (or would be created).
fn disk_space(state_dir: &Path) -> Check {
    let mut probe = state_dir.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    match nix::sys::statvfs::statvfs(&probe) {
        Ok(stat) => {
            let free = stat.blocks_available().saturating_mul(stat.fragment_size());
            let text = format!(
                "disk: {} MiB free for the store in {}",
                free / (1024 * 1024),
                state_dir.display()
            );
            if free < DISK_FAIL_BYTES {
                Check::fail(
                    text,
                    "free space on that file system: the station cannot record taps without it",
                )
            } else if free < DISK_WARN_BYTES {
                Check::warn(
                    text,
                    "free space on that file system soon (old logs, `journalctl --vacuum-size=`)",
                )
            } else {
                Check::pass(text)
            }
        }
        Err(err) => Check::fail(
            format!(
                "disk: cannot read the free space of {}: {err}",
                probe.display()
            ),
            "check station.state-dir",
        ),
    }
}

/// `doctor --check-out SLOT --user U`: check the phone in SLOT out to U and back in,
/// through the client directly, confirming each step in Workspace ONE.
pub async fn installation_test(config: &Config, test: &InstallationTest) -> Report {
    let mut report = Report::default();
    let checks = &mut report.checks;
    if let Some(socket) = daemon_running(&config.station.control_socket) {
        checks.push(Check::fail(
            format!(
                "installation test: a badgedock daemon is running on {} (its control socket {} answers)",
                config.station.state_dir.display(),
                socket.display()
            ),
            "stop it first (`systemctl stop badgedock`), run the test, then start it again: both would change the same phones",
        ));
        return report;
    }
    let Some(uem) = &config.uem else {
        checks.push(Check::fail(
            "installation test: the config has no [uem] section",
            "add [uem] (see examples/badgedock.toml)",
        ));
        return report;
    };
    let client = match UemClient::new(uem) {
        Ok(client) => client,
        Err(err) => {
            checks.push(Check::fail(
                format!("installation test: {err}"),
                "run `badgedock check-config`",
            ));
            return report;
        }
    };
    let Some(slot) = config
        .dock
        .slots
        .iter()
        .find(|s| s.label.as_str() == test.slot.as_str())
    else {
        let labels: Vec<&str> = config.dock.slots.iter().map(|s| s.label.as_str()).collect();
        checks.push(Check::fail(
            format!(
                "installation test: there is no slot {} (slots: {})",
                test.slot,
                labels.join(", ")
            ),
            "give --check-out one of the labels in [dock] slots",
        ));
        return report;
    };
    let dock = config.dock.clone();
    let label = slot.label.clone();
    let phone = tokio::task::spawn_blocking(move || crate::dock::scan(&dock))
        .await
        .ok()
        .flatten()
        .and_then(|phones| {
            phones
                .into_iter()
                .find(|(s, _)| *s == label)
                .map(|(_, key)| key)
        });
    let Some(key) = phone else {
        checks.push(Check::fail(
            format!("installation test: slot {} holds no phone", test.slot),
            "dock a phone enrolled through the staging user in that slot",
        ));
        return report;
    };
    let staging = client.staging_user().clone();
    let steps = [
        (
            "check-out",
            MdmAction::AssignUser {
                username: test.user.clone(),
            },
            test.user.clone(),
        ),
        ("check-in", MdmAction::AssignStagingUser, staging.clone()),
    ];
    for (step, action, expected) in steps {
        if let Err(err) = client.perform(&key, &action).await {
            let fix = if step == "check-in" {
                format!("the phone is still assigned to {}: dock it under the running daemon, or rerun this test, to give it back to \"{staging}\"", test.user)
            } else {
                "fix what the message says (doctor without --check-out checks the staging user and the phone), then run the test again".to_string()
            };
            checks.push(Check::fail(
                format!(
                    "installation test, {step} of slot {} ({key}): {err}",
                    test.slot
                ),
                fix,
            ));
            return report;
        }
        match client.device_details(&key).await {
            Ok(device) if device.enrollment_user().as_ref() == Some(&expected) => {
                checks.push(Check::pass(format!(
                    "installation test, {step}: Workspace ONE shows {expected} as the enrolment user of slot {} ({key})",
                    test.slot
                )));
            }
            Ok(device) => {
                checks.push(Check::fail(
                    format!(
                        "installation test, {step}: Workspace ONE accepted the change but shows {} as the enrolment user of {key}, not {expected}",
                        device.user_name.unwrap_or_default()
                    ),
                    "check for a Workspace ONE workflow or another tool that changes the enrolment user, then run the test again",
                ));
                return report;
            }
            Err(err) => {
                checks.push(Check::fail(
                    format!("installation test, {step}: cannot read the device back: {err}"),
                    "run the test again; check the Workspace ONE checks of `badgedock doctor`",
                ));
                return report;
            }
        }
    }
    report
}

/// The control socket, when a daemon answers on it.
fn daemon_running(socket: &Path) -> Option<PathBuf> {
    std::os::unix::net::UnixStream::connect(socket)
        .ok()
        .map(|_| socket.to_path_buf())
}

/// One failure line for a Workspace ONE error, with the fix its class calls for.
fn mdm_failure(what: &str, err: &MdmError, uem: &UemConfig) -> Check {
    match err {
        MdmError::Unauthorized {
            status: 403,
            error_code,
            ..
        } => Check::fail(
            format!(
                "{what}: Workspace ONE refused the tenant code or the account's rights (HTTP 403{})",
                error_code.map(|c| format!(", errorCode {c}")).unwrap_or_default()
            ),
            "put the organization group's REST API key (Groups & Settings › All Settings › System › Advanced › API › REST API) in uem.tenant-code-file, and give the API account or OAuth client a role with device and user management",
        ),
        MdmError::Unauthorized {
            status, config_key, ..
        } => Check::fail(
            format!("{what}: Workspace ONE refused the credentials (HTTP {status})"),
            format!(
                "check {config_key}{}",
                match uem.auth {
                    UemAuth::OAuth { .. } => "; regenerate the client secret under Groups & Settings › Configurations › OAuth Client Management if unsure",
                    UemAuth::Basic { .. } => "; the admin account must be a Basic account with API access",
                }
            ),
        ),
        MdmError::Unreachable { .. } | MdmError::Timeout { .. } => Check::fail(
            format!("{what}: Workspace ONE is unreachable: {err}"),
            format!(
                "check that this station reaches {} (DNS, firewall, HTTPS_PROXY) and that uem.base-url is the tenant's API server",
                host_of(&uem.base_url)
            ),
        ),
        MdmError::ServerError { status, .. } => Check::fail(
            format!("{what}: Workspace ONE is failing (HTTP {status}); it may be down or in maintenance"),
            "check the Workspace ONE status page and run doctor again later; the station keeps taps and retries while it is down",
        ),
        other => Check::fail(
            format!("{what}: {other}"),
            "check uem.base-url and the [uem] settings, then run doctor again",
        ),
    }
}

fn token_host(uem: &UemConfig) -> String {
    match &uem.auth {
        UemAuth::OAuth { token_url, .. } => host_of(token_url),
        UemAuth::Basic { .. } => host_of(&uem.base_url),
    }
}

/// `host[:port]` of a URL, for lines that must not carry paths or queries.
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_string();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_else(|| "the configured server".to_string())
}

/// `45 s`, `7 min`, `2 h 5 min`.
fn duration_words(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_thresholds() {
        assert_eq!(clock(Some(3)).mark, Mark::Pass);
        assert_eq!(clock(Some(-45)).mark, Mark::Warn);
        assert_eq!(clock(Some(400)).mark, Mark::Fail);
        assert!(clock(Some(400)).text.contains("6 min behind"));
        assert_eq!(clock(None).mark, Mark::Warn);
    }

    #[test]
    fn render_marks_and_summary() {
        let report = Report {
            checks: vec![Check::pass("a"), Check::fail("b", "do c")],
        };
        assert!(!report.passed());
        let text = report.render(false);
        assert!(text.contains("✓ a\n✗ b\n  fix: do c\n"), "{text}");
        assert!(text.ends_with("2 checks: 1 passed, 0 warnings, 1 failed\n"));
        assert!(report.render(true).contains("[FAIL] b"));
    }
}
