//! The resolved, validated configuration, and the checks that build it.
//!
//! [`load`] reads the TOML file into [`file::ConfigFile`], then [`resolve`] checks every
//! rule and reports all problems at once, each naming its key and line, so an installer
//! fixes the file in one pass. Secret files are read here (trailing newline trimmed) and
//! kept in [`Secret`]s that never print.

pub mod audit;
pub mod file;
mod fleet;
pub mod lending;
mod lenient;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use toml::Spanned;

pub use crate::config::audit::{AuditConfig, SiemConfig, SiemFormat, SiemTransport};
pub use crate::config::fleet::{FleetConfig, FleetTls};

use crate::badges::format::FormatRule;
use crate::badges::Policy;
use crate::checkout::{AssignAt, DeviceCommand, EngineConfig, WorkflowStep};
use crate::domain::{BadgeNumber, Platform, PortPath, ReaderName, Secret, SlotLabel, Username};

/// Everything the daemon needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from.
    pub path: PathBuf,
    /// `[station]`.
    pub station: StationConfig,
    /// `[uem]`; `None` only for configs that never talk to Workspace ONE (demo).
    pub uem: Option<UemConfig>,
    /// `[[reader]]`.
    pub readers: Vec<ReaderConfig>,
    /// `[dock]`.
    pub dock: DockConfig,
    /// `[directory]`.
    pub directory: DirectoryConfig,
    /// `[policy]`.
    pub policy: Policy,
    /// `[checkout]` and `[workflow]`, as the engine wants them.
    pub engine: EngineConfig,
    /// `[dashboard]`.
    pub dashboard: DashboardConfig,
    /// `[metrics] listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `[directory] max-file-bytes`: the largest badge file the file directory reads.
    pub directory_max_file_bytes: u64,
    /// What was accepted but changed or worth knowing (a lower-case badge normalised),
    /// for `check-config` to print.
    pub notes: Vec<Problem>,
    /// `[audit]`.
    pub audit: AuditConfig,
    /// `[siem]`; `None` forwards nothing.
    pub siem: Option<SiemConfig>,
    /// `[lending]`; the defaults (14 hours, "overdue" on screen) when absent. The same
    /// value is in `engine.lending`.
    pub lending: crate::checkout::LendingConfig,
    /// `[lending.smtp]`: the mail server of the ladder's e-mails.
    pub smtp: Option<lending::SmtpConfig>,
    /// `[fleet]`: publish to a PostgreSQL fleet store; `None` for a station on its own.
    pub fleet: Option<FleetConfig>,
}

/// The default of `directory.max-file-bytes`: 16 MiB, some 200,000 badges.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What the client commands (`status`, `tap`, `dashboard`, `badges`, `audit`, `backup`)
/// need: where the daemon listens and where the store is. Read by [`load_client`], which
/// reads no secret file and ignores every other key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Where the config came from.
    pub path: PathBuf,
    /// `station.state-dir`.
    pub state_dir: PathBuf,
    /// `station.control-socket`.
    pub control_socket: PathBuf,
    /// `dashboard.admin`.
    pub dashboard_admin: bool,
}

/// The default `station.state-dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/badgedock";
/// The default `station.control-socket`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/badgedock/control.sock";

/// `[station]`.
#[derive(Debug, Clone)]
pub struct StationConfig {
    /// Shown on the screen.
    pub name: String,
    /// Holds `badgedock.sqlite3`.
    pub state_dir: PathBuf,
    /// The control socket.
    pub control_socket: PathBuf,
    /// Group whose members may send state-changing commands (root always may).
    pub admin_group: Option<String>,
}

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum UemAuth {
    /// OAuth client credentials.
    OAuth {
        /// The token endpoint.
        token_url: String,
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: Secret,
    },
    /// Basic auth with an admin account.
    Basic {
        /// The account.
        username: String,
        /// Its password.
        password: Secret,
    },
}

/// `[uem]`.
#[derive(Debug, Clone)]
pub struct UemConfig {
    /// The API server, without a trailing slash.
    pub base_url: String,
    /// `aw-tenant-code`.
    pub tenant_code: Option<Secret>,
    /// The multi-user staging account.
    pub staging_user: Username,
    /// How to authenticate.
    pub auth: UemAuth,
    /// TCP connect timeout.
    pub connect_timeout_ms: u64,
    /// Whole-request timeout.
    pub request_timeout_ms: u64,
    /// Extra trust anchor (PEM) for on-premises tenants.
    pub ca_file: Option<PathBuf>,
    /// GET the device after a user change to verify it.
    pub verify_after_assign: bool,
    /// Outbox actions in flight at once.
    pub concurrency: u32,
    /// The `SecurityType` preferred when one user name has several active accounts.
    pub preferred_security_type: Option<i64>,
    /// Organization groups whose shared devices are the station's; empty means any.
    pub organization_groups: Vec<i64>,
}

/// Which backend reads a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderKind {
    /// PC/SC through pcscd.
    Pcsc,
    /// hidapi (RF IDeas SDK mode).
    Hid,
    /// evdev keyboard wedge with an exclusive grab.
    Wedge,
}

/// One `[[reader]]`.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// Its name.
    pub name: ReaderName,
    /// Its backend.
    pub kind: ReaderKind,
    /// PC/SC reader-name substring, or `vvvv:pppp` for hid and wedge.
    pub matcher: String,
    /// The site's badge-number rule.
    pub format: FormatRule,
    /// Same-card lock-out after removal.
    pub lockout_ms: u64,
    /// Beep / LED feedback.
    pub feedback: bool,
}

/// One slot of the cabinet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotConfig {
    /// The printed label.
    pub label: SlotLabel,
    /// The USB port path.
    pub port: PortPath,
}

/// `[dock]`.
#[derive(Debug, Clone)]
pub struct DockConfig {
    /// `/sys` or a test tree.
    pub sysfs_root: PathBuf,
    /// Safety-net rescan period.
    pub rescan_ms: u64,
    /// Loose-cable window.
    pub flap_ms: u64,
    /// Slots in cabinet order.
    pub slots: Vec<SlotConfig>,
}

/// `[directory]`.
#[derive(Debug, Clone)]
pub enum DirectoryConfig {
    /// A CSV file: `badge,username,display-name[,groups]`.
    File {
        /// The file.
        path: PathBuf,
    },
    /// LDAP / Active Directory.
    Ldap(LdapConfig),
    /// An identity web service: `GET url-with-{badge}` → `{"user": "…"}`.
    Http {
        /// The URL template, containing `{badge}`.
        url: String,
        /// Request timeout.
        timeout_ms: u64,
        /// Answer cache lifetime.
        cache_ttl_seconds: u64,
        /// Extra trust anchor.
        ca_file: Option<PathBuf>,
    },
}

/// `[directory] kind = "ldap"`.
#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// `ldap://` or `ldaps://`.
    pub url: String,
    /// Upgrade `ldap://` with StartTLS.
    pub starttls: bool,
    /// Extra trust anchor (PEM).
    pub ca_file: Option<PathBuf>,
    /// Answer cache lifetime; stale answers are served while the server is down.
    pub cache_ttl_seconds: u64,
    /// Request timeout.
    pub timeout_ms: u64,
    /// Service account DN.
    pub bind_dn: Option<String>,
    /// Service account password.
    pub bind_password: Option<Secret>,
    /// Search base.
    pub base_dn: String,
    /// Attribute holding the formatted badge number.
    pub badge_attribute: String,
    /// Attribute holding the Workspace ONE username.
    pub username_attribute: String,
    /// Attribute holding the display name.
    pub display_name_attribute: String,
    /// Attribute holding group memberships (`memberOf`).
    pub group_attribute: String,
    /// Group (as in `group_attribute`) whose members may approve enrolments.
    pub enroller_group: Option<String>,
}

/// `[dashboard]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DashboardConfig {
    /// Show admin actions.
    pub admin: bool,
}

/// Where secrets may come from besides their configured paths.
#[derive(Debug, Clone, Default)]
pub struct LoadEnv {
    /// systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=`): a relative secret path is
    /// looked up there first.
    pub credentials_dir: Option<PathBuf>,
}

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key, dotted (`dock.slots[2].port`).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} (line {line}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Why a config could not be loaded: every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// All problems, in file order where known.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} has {} problem{}:",
            self.path.display(),
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {}: {problem}", self.path.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates a config file: every rule of [`parse`] (secret files are read),
/// but not the rest of the machine; see [`load_for_station`].
pub fn load(path: &Path, env: &LoadEnv) -> Result<Config, ConfigError> {
    let text = read_text(path)?;
    check(path, &text, env, false)
}

/// [`load`] for `badgedock run` and `badgedock check-config` (one path, so check-config
/// accepts exactly what run accepts), plus what the station's machine must provide:
/// the `[uem]` section, the badge file (readable, within `directory.max-file-bytes`,
/// with a usable header), CA files that hold PEM certificates and an admin group that
/// exists.
pub fn load_for_station(path: &Path, env: &LoadEnv) -> Result<Config, ConfigError> {
    let text = read_text(path)?;
    check(path, &text, env, true)
}

/// Parses and validates config text (`path` is used for messages and relative paths).
/// Secret files are read; other files and the machine are not checked (see
/// [`load_for_station`]).
pub fn parse(path: &Path, text: &str, env: &LoadEnv) -> Result<Config, ConfigError> {
    check(path, text, env, false)
}

/// Reads only what the client commands need (see [`ClientConfig`]): no secret file is
/// opened and unknown or invalid keys elsewhere are ignored; a syntax error, or a wrong
/// type for one of its keys, is reported as [`load`] would.
pub fn load_client(path: &Path) -> Result<ClientConfig, ConfigError> {
    let text = read_text(path)?;
    let (raw, problems) = lenient::read::<file::ClientFile>(&text);
    let relevant: Vec<Problem> = problems
        .into_iter()
        .filter(|problem| {
            problem.key == "(syntax)"
                || problem.key == "(file)"
                || problem.key.starts_with("station.state-dir")
                || problem.key.starts_with("station.control-socket")
                || problem.key.starts_with("dashboard.admin")
        })
        .collect();
    match raw {
        Some(raw) if relevant.is_empty() => Ok(ClientConfig {
            path: path.to_path_buf(),
            state_dir: raw
                .station
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            control_socket: raw
                .station
                .control_socket
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET)),
            dashboard_admin: raw.dashboard.admin,
        }),
        _ => Err(ConfigError {
            path: path.to_path_buf(),
            problems: relevant,
        }),
    }
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|err| ConfigError {
        path: path.to_path_buf(),
        problems: vec![Problem {
            line: None,
            key: "(file)".into(),
            message: match err.kind() {
                std::io::ErrorKind::NotFound => {
                    "the config file does not exist: write it from /usr/share/doc/badgedock/examples/badgedock.toml or pass --config FILE".into()
                }
                std::io::ErrorKind::PermissionDenied => format!(
                    "the config file is unreadable by user {}: chmod 0644 (or 0640 root:badgedock) {}",
                    current_user(),
                    path.display()
                ),
                _ => format!("cannot read the config file: {err}"),
            },
        }],
    })
}

fn check(path: &Path, text: &str, env: &LoadEnv, environment: bool) -> Result<Config, ConfigError> {
    let (raw, syntax_and_types) = lenient::read::<file::ConfigFile>(text);
    let mut checker = Checker {
        text,
        env,
        environment,
        problems: syntax_and_types,
        notes: Vec::new(),
    };
    let config = raw.and_then(|raw| checker.resolve(path, raw));
    if checker.problems.is_empty() {
        if let Some(mut config) = config {
            config.notes = checker.notes;
            return Ok(config);
        }
    }
    let mut problems = checker.problems;
    problems.sort_by_key(|problem| problem.line.unwrap_or(usize::MAX));
    Err(ConfigError {
        path: path.to_path_buf(),
        problems,
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    lenient::line_of(text, offset)
}

/// The name of the user this process runs as, for "unreadable by user X".
fn current_user() -> String {
    let uid = nix::unistd::Uid::effective();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|user| user.name)
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// A badge number as the readers render it: hex written in lower case becomes upper
/// case (the `hex` format's rendering); `Some` when it was changed.
pub fn normalise_badge(badge: &str) -> Option<String> {
    let trimmed = badge.trim();
    let hex = !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_hexdigit());
    (hex && trimmed.chars().any(|c| c.is_ascii_lowercase())).then(|| trimmed.to_ascii_uppercase())
}

struct Checker<'a> {
    text: &'a str,
    env: &'a LoadEnv,
    /// Also check the machine: files, groups, the `[uem]` section ([`load_for_station`]).
    environment: bool,
    problems: Vec<Problem>,
    notes: Vec<Problem>,
}

impl Checker<'_> {
    fn problem<T>(
        &mut self,
        at: Option<&Spanned<T>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = at
            .filter(|spanned| spanned.span().end > 0)
            .map(|spanned| line_of(self.text, spanned.span().start));
        self.problems.push(Problem {
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    fn note<T>(
        &mut self,
        at: Option<&Spanned<T>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = at
            .filter(|spanned| spanned.span().end > 0)
            .map(|spanned| line_of(self.text, spanned.span().start));
        self.notes.push(Problem {
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    /// An extra trust anchor: resolved against the config's folder; with
    /// `environment`, it must hold at least one PEM certificate.
    fn ca_file(&mut self, key: &str, spanned: &Spanned<PathBuf>, base: &Path) -> PathBuf {
        let path = if spanned.get_ref().is_relative() {
            base.join(spanned.get_ref())
        } else {
            spanned.get_ref().clone()
        };
        if self.environment {
            let shown = path.display();
            match std::fs::read(&path) {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => self.problem(
                    Some(spanned),
                    key,
                    format!(
                        "{shown} is missing: put the CA certificate (PEM) there or remove the key"
                    ),
                ),
                Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => self.problem(
                    Some(spanned),
                    key,
                    format!(
                        "{shown} is unreadable by user {}: chmod 0644 {shown}",
                        current_user()
                    ),
                ),
                Err(err) => self.problem(Some(spanned), key, format!("cannot read {shown}: {err}")),
                Ok(bytes) => {
                    let certificates = rustls_pemfile_ldap::certs(&mut bytes.as_slice());
                    if !matches!(certificates, Ok(ref certs) if !certs.is_empty()) {
                        self.problem(
                            Some(spanned),
                            key,
                            format!("{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----): convert it with openssl x509 -inform der -in FILE -out {shown}"),
                        );
                    }
                }
            }
        }
        path
    }

    /// With `environment`: the badge file exists, is readable, is within the size limit
    /// and has a usable header; rows that will be skipped, or normalised, become notes.
    fn badge_file<T>(&mut self, at: Option<&Spanned<T>>, path: &Path, max_bytes: u64) {
        if !self.environment {
            return;
        }
        let shown = path.display();
        let key = "directory.path";
        let bytes = match crate::directory::read_badge_file(path, max_bytes) {
            Ok(bytes) => bytes,
            Err(err) => {
                let message = match err.kind() {
                    std::io::ErrorKind::NotFound => format!(
                        "{shown} is missing: create it from /usr/share/doc/badgedock/examples/badges.csv"
                    ),
                    std::io::ErrorKind::PermissionDenied => format!(
                        "{shown} is unreadable by user {}: chmod 0640 root:badgedock {shown}",
                        current_user()
                    ),
                    _ => format!("{shown}: {err}"),
                };
                self.problem(at, key, message);
                return;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let (rows, row_problems) = match crate::directory::parse_badge_csv_strict(&text) {
            Ok(parsed) => parsed,
            Err(unusable) => {
                self.problem(
                    at,
                    key,
                    format!("{shown} line {}: {}", unusable.line, unusable.message),
                );
                return;
            }
        };
        for problem in row_problems {
            self.note(
                at,
                key,
                format!("{shown} line {}: {}", problem.line, problem.message),
            );
        }
        for row in rows.iter().filter(|row| row.normalised) {
            self.note(
                at,
                key,
                format!(
                    "{shown} line {}: badge {} was written in lower case: normalised to upper case, as readers render hex badges",
                    row.line, row.badge
                ),
            );
        }
    }

    fn secret(&mut self, key: &str, spanned: &Spanned<PathBuf>, base: &Path) -> Option<Secret> {
        let path = spanned.get_ref();
        let candidates = self.secret_candidates(path, base);
        let mut unreadable = None;
        for candidate in &candidates {
            match std::fs::read_to_string(candidate) {
                Ok(text) => {
                    let value = text.trim_end_matches(['\n', '\r']).to_string();
                    if value.is_empty() {
                        self.problem(
                            Some(spanned),
                            key,
                            format!("{} is empty: put the secret in it", candidate.display()),
                        );
                        return None;
                    }
                    return Some(Secret::new(value));
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                    unreadable.get_or_insert_with(|| candidate.clone());
                }
                Err(_) if candidate.is_dir() => {
                    self.problem(
                        Some(spanned),
                        key,
                        format!(
                            "{} is a directory: name the file that holds the secret",
                            candidate.display()
                        ),
                    );
                    return None;
                }
                Err(_) => {
                    unreadable.get_or_insert_with(|| candidate.clone());
                }
            }
        }
        let message = match unreadable {
            Some(file) => format!(
                "{} is unreadable by user {}: chmod 0640 root:badgedock {} (or pass it with LoadCredential=)",
                file.display(),
                current_user(),
                file.display()
            ),
            None => {
                let tried: Vec<String> =
                    candidates.iter().map(|p| p.display().to_string()).collect();
                format!(
                    "{} is missing: create it (chmod 0640 root:badgedock) or pass it with LoadCredential=",
                    tried.join(" or ")
                )
            }
        };
        self.problem(Some(spanned), key, message);
        None
    }

    fn secret_candidates(&self, path: &Path, base: &Path) -> Vec<PathBuf> {
        let mut candidates = Vec::new();
        if path.is_relative() {
            if let Some(dir) = &self.env.credentials_dir {
                candidates.push(dir.join(path));
            }
            candidates.push(base.join(path));
        } else {
            candidates.push(path.to_path_buf());
            if let (Some(dir), Some(name)) = (&self.env.credentials_dir, path.file_name()) {
                candidates.push(dir.join(name));
            }
        }
        candidates
    }

    fn resolve(&mut self, path: &Path, raw: file::ConfigFile) -> Option<Config> {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let station = StationConfig {
            name: raw.station.name.clone(),
            state_dir: raw
                .station
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            control_socket: raw
                .station
                .control_socket
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET)),
            admin_group: raw
                .station
                .admin_group
                .as_ref()
                .map(|g| g.get_ref().clone()),
        };
        if station.name.trim().is_empty() {
            self.problem::<()>(
                None,
                "station.name",
                "is missing or empty: name the station as the nurses know it",
            );
        }
        if let (true, Some(group)) = (self.environment, raw.station.admin_group.as_ref()) {
            let name = group.get_ref();
            if !matches!(nix::unistd::Group::from_name(name), Ok(Some(_))) {
                self.problem(
                    Some(group),
                    "station.admin-group",
                    format!("group {name:?} does not exist on this machine: create it (groupadd {name}) or fix the name"),
                );
            }
        }
        if self.environment && raw.uem.is_none() {
            self.problem::<()>(
                None,
                "uem",
                "the [uem] section is missing: badgedock run needs Workspace ONE (see the README's configuration section)",
            );
        }

        let android_user_change = raw
            .uem
            .as_ref()
            .map(|u| u.android_enrollment_user_change)
            .unwrap_or(false);
        let uem = raw
            .uem
            .as_ref()
            .and_then(|uem| self.resolve_uem(uem, &base));
        let staging_user = match &raw.uem {
            Some(uem) => Username::new(uem.staging_user.get_ref().trim()),
            None => Username::new("staging"),
        };

        let readers = self.resolve_readers(&raw.readers);
        let dock = self.resolve_dock(raw.dock.as_ref());
        let directory = self.resolve_directory(raw.directory.as_ref(), &base);
        let policy = Policy {
            allowed_groups: raw.policy.allowed_groups.clone(),
            deny_badges: raw
                .policy
                .deny_badges
                .iter()
                .enumerate()
                .map(|(index, badge)| {
                    let text = badge.get_ref().trim();
                    match normalise_badge(text) {
                        Some(upper) => {
                            self.note(
                                Some(badge),
                                format!("policy.deny-badges[{index}]"),
                                format!(
                                    "…{} is written in lower case: normalised to upper case, as readers render hex badges",
                                    upper.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect::<String>()
                                ),
                            );
                            BadgeNumber::new(upper)
                        }
                        None => BadgeNumber::new(text),
                    }
                })
                .collect(),
            deny_users: raw.policy.deny_users.clone(),
        };
        let engine = self.resolve_engine(&raw, &station, &dock, staging_user, android_user_change);
        let metrics_listen = raw.metrics.listen.as_ref().and_then(|listen| {
            match listen.get_ref().trim().parse::<SocketAddr>() {
                Ok(addr) if addr.port() == 0 => {
                    self.problem(
                        Some(listen),
                        "metrics.listen",
                        "port 0 is not a port: use a fixed one such as 9464",
                    );
                    None
                }
                Ok(addr) if !addr.ip().is_loopback() && !raw.metrics.allow_remote => {
                    self.problem(
                        Some(listen),
                        "metrics.listen",
                        format!("{addr} is reachable from other machines: use 127.0.0.1:{} (scrape through a proxy), or set metrics.allow-remote = true to serve it on the network", addr.port()),
                    );
                    None
                }
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.problem(
                        Some(listen),
                        "metrics.listen",
                        "is not an address:port, e.g. 127.0.0.1:9464",
                    );
                    None
                }
            }
        });
        let directory_max_file_bytes = raw
            .directory
            .as_ref()
            .and_then(|d| d.max_file_bytes.as_ref())
            .map_or(DEFAULT_MAX_FILE_BYTES, |max| *max.get_ref());
        let audit = self.resolve_audit(&raw.audit);
        let siem = raw
            .siem
            .as_ref()
            .and_then(|siem| self.resolve_siem(siem, &base));
        let (lending, smtp) = self.resolve_lending_all(raw.lending.as_ref(), &base);
        let mut engine = engine;
        engine.lending = lending.clone();
        let fleet = raw
            .fleet
            .as_ref()
            .and_then(|fleet| self.resolve_fleet(fleet, &base));
        Some(Config {
            path: path.to_path_buf(),
            station,
            uem,
            readers,
            dock,
            directory: directory?,
            policy,
            engine,
            dashboard: DashboardConfig {
                admin: raw.dashboard.admin,
            },
            metrics_listen,
            directory_max_file_bytes,
            notes: Vec::new(),
            audit,
            siem,
            lending,
            smtp,
            fleet,
        })
    }

    fn resolve_uem(&mut self, uem: &file::UemFile, base: &Path) -> Option<UemConfig> {
        let base_url = uem
            .base_url
            .get_ref()
            .trim()
            .trim_end_matches('/')
            .to_string();
        if base_url.is_empty() {
            self.problem(
                Some(&uem.base_url),
                "uem.base-url",
                "is missing: the tenant's API server, e.g. https://as1234.awmdm.com",
            );
        } else if let Err(message) = check_http_url(uem.base_url.get_ref().trim()) {
            self.problem(
                Some(&uem.base_url),
                "uem.base-url",
                format!("{message} (the tenant's API server, e.g. https://as1234.awmdm.com)"),
            );
        }
        if uem.staging_user.get_ref().trim().is_empty() {
            self.problem(
                Some(&uem.staging_user),
                "uem.staging-user",
                "is empty: name the multi-user staging account devices are enrolled to",
            );
        }
        let tenant_code = uem
            .tenant_code_file
            .as_ref()
            .and_then(|p| self.secret("uem.tenant-code-file", p, base));
        let auth = match uem.auth.kind.get_ref().as_str() {
            "oauth" => {
                let token_url = uem
                    .auth
                    .token_url
                    .as_ref()
                    .map(|u| u.get_ref().trim().to_string());
                match (&token_url, &uem.auth.token_url) {
                    (None, _) => self.problem(Some(&uem.auth.kind), "uem.auth.token-url", "is missing: the region's token URL, e.g. https://na.uemauth.workspaceone.com/connect/token"),
                    (Some(url), Some(spanned)) => {
                        if let Err(message) = check_http_url(url) {
                            self.problem(Some(spanned), "uem.auth.token-url", format!("{message} (the region's token URL, e.g. https://na.uemauth.workspaceone.com/connect/token)"));
                        }
                    }
                    (Some(_), None) => {}
                }
                if uem.auth.client_id.is_none() {
                    self.problem(
                        Some(&uem.auth.kind),
                        "uem.auth.client-id",
                        "is missing: the OAuth client id from the Workspace ONE console",
                    );
                }
                let secret = match &uem.auth.client_secret_file {
                    Some(p) => self.secret("uem.auth.client-secret-file", p, base),
                    None => {
                        self.problem(
                            Some(&uem.auth.kind),
                            "uem.auth.client-secret-file",
                            "is missing: a file holding the OAuth client secret",
                        );
                        None
                    }
                };
                match (token_url, uem.auth.client_id.clone(), secret) {
                    (Some(token_url), Some(client_id), Some(client_secret)) => {
                        Some(UemAuth::OAuth {
                            token_url,
                            client_id,
                            client_secret,
                        })
                    }
                    _ => None,
                }
            }
            "basic" => {
                if uem.auth.username.is_none() {
                    self.problem(
                        Some(&uem.auth.kind),
                        "uem.auth.username",
                        "is missing: the API admin account",
                    );
                }
                if tenant_code.is_none() && uem.tenant_code_file.is_none() {
                    self.problem(
                        Some(&uem.auth.kind),
                        "uem.tenant-code-file",
                        "is missing: basic auth needs the REST API key (aw-tenant-code)",
                    );
                }
                let password = match &uem.auth.password_file {
                    Some(p) => self.secret("uem.auth.password-file", p, base),
                    None => {
                        self.problem(
                            Some(&uem.auth.kind),
                            "uem.auth.password-file",
                            "is missing: a file holding the API account's password",
                        );
                        None
                    }
                };
                match (uem.auth.username.clone(), password) {
                    (Some(username), Some(password)) => Some(UemAuth::Basic { username, password }),
                    _ => None,
                }
            }
            "" => {
                self.problem(
                    Some(&uem.auth.kind),
                    "uem.auth.kind",
                    "is missing: add [uem.auth] with kind = \"oauth\" or \"basic\"",
                );
                None
            }
            other => {
                self.problem(
                    Some(&uem.auth.kind),
                    "uem.auth.kind",
                    format!("{other:?} is not a kind: use \"oauth\" or \"basic\""),
                );
                None
            }
        };
        let ca_file = uem
            .ca_file
            .as_ref()
            .map(|ca| self.ca_file("uem.ca-file", ca, base));
        let concurrency = uem.concurrency.unwrap_or(4);
        if concurrency == 0 {
            self.problem::<()>(None, "uem.concurrency", "must be at least 1");
        }
        Some(UemConfig {
            base_url,
            tenant_code,
            staging_user: Username::new(uem.staging_user.get_ref().trim()),
            auth: auth?,
            connect_timeout_ms: uem.connect_timeout_ms.unwrap_or(5_000),
            request_timeout_ms: uem.request_timeout_ms.unwrap_or(20_000),
            ca_file,
            verify_after_assign: uem.verify_after_assign,
            concurrency: concurrency.max(1),
            preferred_security_type: uem.preferred_security_type,
            organization_groups: uem.organization_groups.clone(),
        })
    }

    fn resolve_readers(&mut self, readers: &[file::ReaderFile]) -> Vec<ReaderConfig> {
        let mut names = BTreeSet::new();
        let mut resolved = Vec::new();
        for (index, reader) in readers.iter().enumerate() {
            let key = format!("reader[{index}]");
            let name = reader.name.get_ref().trim().to_string();
            if name.is_empty() || name == "control" {
                self.problem(
                    Some(&reader.name),
                    format!("{key}.name"),
                    "must be a non-empty name other than \"control\"",
                );
            }
            if !names.insert(name.clone()) {
                self.problem(
                    Some(&reader.name),
                    format!("{key}.name"),
                    format!("{name:?} is used by another reader: names must be unique"),
                );
            }
            let kind = match reader.kind.get_ref().as_str() {
                "pcsc" => Some(ReaderKind::Pcsc),
                "hid" => Some(ReaderKind::Hid),
                "wedge" => Some(ReaderKind::Wedge),
                other => {
                    self.problem(
                        Some(&reader.kind),
                        format!("{key}.kind"),
                        format!(
                            "{other:?} is not a reader kind: use \"pcsc\", \"hid\" or \"wedge\""
                        ),
                    );
                    None
                }
            };
            let matcher = reader
                .match_
                .as_ref()
                .map(|m| m.get_ref().trim().to_string())
                .unwrap_or_default();
            if matches!(kind, Some(ReaderKind::Hid | ReaderKind::Wedge)) && !is_vid_pid(&matcher) {
                self.problem(
                    reader.match_.as_ref().or(Some(&reader.kind)),
                    format!("{key}.match"),
                    "must be the reader's USB id as vvvv:pppp (hex), e.g. \"0c27:3bfa\"",
                );
            }
            let format = match FormatRule::parse(reader.format.get_ref()) {
                Ok(rule) => Some(rule),
                Err(err) => {
                    self.problem(
                        Some(&reader.format),
                        format!("{key}.format"),
                        err.to_string(),
                    );
                    None
                }
            };
            if let (Some(kind), Some(format)) = (kind, format) {
                resolved.push(ReaderConfig {
                    name: ReaderName::new(name),
                    kind,
                    matcher,
                    format,
                    lockout_ms: reader.lockout_ms.unwrap_or(2_000),
                    feedback: reader.feedback.unwrap_or(true),
                });
            }
        }
        resolved
    }

    fn resolve_dock(&mut self, dock: Option<&file::DockFile>) -> DockConfig {
        let Some(dock) = dock else {
            return DockConfig {
                sysfs_root: PathBuf::from("/sys"),
                rescan_ms: 1_000,
                flap_ms: 2_000,
                slots: Vec::new(),
            };
        };
        let mut labels = BTreeSet::new();
        let mut ports = BTreeSet::new();
        let mut slots = Vec::new();
        for (index, slot) in dock.slots.iter().enumerate() {
            let value = slot.get_ref();
            let key = format!("dock.slots[{index}]");
            if value.label.trim().is_empty() {
                self.problem(
                    Some(slot),
                    format!("{key}.label"),
                    "is empty: use the label printed on the cabinet",
                );
            } else if !labels.insert(value.label.trim().to_string()) {
                self.problem(
                    Some(slot),
                    format!("{key}.label"),
                    format!("{:?} names two slots: labels must be unique", value.label),
                );
            }
            if !is_port_path(value.port.trim()) {
                self.problem(Some(slot), format!("{key}.port"), format!("{:?} is not a USB port path such as \"1-1.4.2\" (see /sys/bus/usb/devices)", value.port));
            } else if !ports.insert(value.port.trim().to_string()) {
                self.problem(
                    Some(slot),
                    format!("{key}.port"),
                    format!("{:?} is given to two slots", value.port),
                );
            }
            slots.push(SlotConfig {
                label: SlotLabel::new(value.label.trim()),
                port: PortPath::new(value.port.trim()),
            });
        }
        DockConfig {
            sysfs_root: dock
                .sysfs_root
                .clone()
                .unwrap_or_else(|| PathBuf::from("/sys")),
            rescan_ms: dock.rescan_ms.unwrap_or(1_000).max(50),
            flap_ms: dock.flap_ms.unwrap_or(2_000),
            slots,
        }
    }

    fn resolve_directory(
        &mut self,
        directory: Option<&file::DirectoryFile>,
        base: &Path,
    ) -> Option<DirectoryConfig> {
        let Some(directory) = directory else {
            let path = PathBuf::from("/etc/badgedock/badges.csv");
            self.badge_file::<()>(None, &path, DEFAULT_MAX_FILE_BYTES);
            return Some(DirectoryConfig::File { path });
        };
        let relative = |p: &PathBuf| {
            if p.is_relative() {
                base.join(p)
            } else {
                p.clone()
            }
        };
        let max_bytes = directory
            .max_file_bytes
            .as_ref()
            .map_or(DEFAULT_MAX_FILE_BYTES, |max| *max.get_ref());
        if let Some(max) = &directory.max_file_bytes {
            if *max.get_ref() == 0 {
                self.problem(
                    Some(max),
                    "directory.max-file-bytes",
                    "must be more than 0 (the default is 16777216, 16 MiB)",
                );
            }
        }
        let ca_file = directory
            .ca_file
            .as_ref()
            .map(|ca| self.ca_file("directory.ca-file", ca, base));
        match directory.kind.get_ref().as_str() {
            "file" => match &directory.path {
                Some(spanned) => {
                    let path = relative(spanned.get_ref());
                    self.badge_file(Some(spanned), &path, max_bytes);
                    Some(DirectoryConfig::File { path })
                }
                None => {
                    self.problem(
                        Some(&directory.kind),
                        "directory.path",
                        "is missing: the badge CSV file (badge,username,display-name)",
                    );
                    None
                }
            },
            "http" => {
                let url = directory
                    .url
                    .as_ref()
                    .map(|u| u.get_ref().trim().to_string());
                let checked = url.as_deref().map(|url| {
                    if url.contains("{badge}") {
                        check_http_url(&url.replace("{badge}", "0"))
                    } else {
                        Err("has no {badge} placeholder".to_string())
                    }
                });
                match (url, checked) {
                    (Some(url), Some(Ok(()))) => Some(DirectoryConfig::Http {
                        url,
                        timeout_ms: directory.timeout_ms.unwrap_or(2_000),
                        cache_ttl_seconds: directory.cache_ttl_seconds.unwrap_or(3_600),
                        ca_file,
                    }),
                    (_, checked) => {
                        let why = match checked {
                            Some(Err(message)) => format!("{message}: "),
                            _ => "is missing: ".to_string(),
                        };
                        self.problem(directory.url.as_ref().or(Some(&directory.kind)), "directory.url", format!("{why}write an http(s) URL containing {{badge}}, e.g. https://idm.example/badge/{{badge}}"));
                        None
                    }
                }
            }
            "ldap" => {
                let url = directory
                    .url
                    .as_ref()
                    .map(|u| u.get_ref().trim().to_string());
                let url = match url.as_deref().map(check_ldap_url) {
                    Some(Ok(())) => url,
                    Some(Err(message)) => {
                        self.problem(
                            directory.url.as_ref(),
                            "directory.url",
                            format!("{message}: write an ldap:// or ldaps:// URL with a host, e.g. ldaps://dc1.hospital.example"),
                        );
                        None
                    }
                    None => {
                        self.problem(
                            Some(&directory.kind),
                            "directory.url",
                            "is missing: write an ldap:// or ldaps:// URL, e.g. ldaps://dc1.hospital.example",
                        );
                        None
                    }
                };
                let base_dn = directory.base_dn.clone();
                if base_dn.is_none() {
                    self.problem(
                        Some(&directory.kind),
                        "directory.base-dn",
                        "is missing: where to search, e.g. OU=Staff,DC=hospital,DC=example",
                    );
                }
                let bind_password = directory
                    .bind_password_file
                    .as_ref()
                    .and_then(|p| self.secret("directory.bind-password-file", p, base));
                if directory.bind_dn.is_some() && directory.bind_password_file.is_none() {
                    self.problem(
                        Some(&directory.kind),
                        "directory.bind-password-file",
                        "is missing: bind-dn needs a password file",
                    );
                }
                Some(DirectoryConfig::Ldap(LdapConfig {
                    url: url?,
                    starttls: directory.starttls,
                    ca_file,
                    cache_ttl_seconds: directory.cache_ttl_seconds.unwrap_or(3_600),
                    timeout_ms: directory.timeout_ms.unwrap_or(3_000),
                    bind_dn: directory.bind_dn.clone(),
                    bind_password,
                    base_dn: base_dn?,
                    badge_attribute: directory
                        .badge_attribute
                        .clone()
                        .unwrap_or_else(|| "employeeBadgeNumber".into()),
                    username_attribute: directory
                        .username_attribute
                        .clone()
                        .unwrap_or_else(|| "sAMAccountName".into()),
                    display_name_attribute: directory
                        .display_name_attribute
                        .clone()
                        .unwrap_or_else(|| "displayName".into()),
                    group_attribute: directory
                        .group_attribute
                        .clone()
                        .unwrap_or_else(|| "memberOf".into()),
                    enroller_group: directory.enroller_group.clone(),
                }))
            }
            "" => {
                self.problem(
                    Some(&directory.kind),
                    "directory.kind",
                    "is missing: use \"file\", \"ldap\" or \"http\"",
                );
                None
            }
            other => {
                self.problem(
                    Some(&directory.kind),
                    "directory.kind",
                    format!(
                        "{other:?} is not a directory kind: use \"file\", \"ldap\" or \"http\""
                    ),
                );
                None
            }
        }
    }

    fn resolve_engine(
        &mut self,
        raw: &file::ConfigFile,
        station: &StationConfig,
        dock: &DockConfig,
        staging_user: Username,
        android_user_change: bool,
    ) -> EngineConfig {
        let checkout = &raw.checkout;
        let assign_at = match checkout.assign_at.as_ref().map(|a| a.get_ref().as_str()) {
            None | Some("tap") => AssignAt::Tap,
            Some("undock") => AssignAt::Undock,
            Some(other) => {
                self.problem(
                    checkout.assign_at.as_ref(),
                    "checkout.assign-at",
                    format!("{other:?} is not a choice: use \"tap\" or \"undock\""),
                );
                AssignAt::Tap
            }
        };
        let overdue_hours = checkout.overdue_hours.unwrap_or(14.0);
        if !(overdue_hours > 0.0 && overdue_hours < 24.0 * 14.0) {
            self.problem::<()>(
                None,
                "checkout.overdue-hours",
                "must be between 0 and 336 hours",
            );
        }
        let mut checkout_steps = default_steps(true);
        let mut checkin_steps = default_steps(false);
        for (phase, table, target) in [
            ("checkout", &raw.workflow.checkout, &mut checkout_steps),
            ("checkin", &raw.workflow.checkin, &mut checkin_steps),
        ] {
            for (platform_name, steps) in table {
                let platform = match platform_name.as_str() {
                    "apple" | "ios" => Platform::Apple,
                    "android" => Platform::Android,
                    other => {
                        self.problem::<()>(
                            None,
                            format!("workflow.{phase}.{other}"),
                            "is not a platform: use \"apple\" or \"android\"",
                        );
                        continue;
                    }
                };
                let mut parsed = Vec::new();
                for step in steps {
                    match parse_step(step.get_ref()) {
                        Ok(parsed_step) => {
                            let user_change = matches!(
                                parsed_step,
                                WorkflowStep::AssignUser | WorkflowStep::AssignStagingUser
                            );
                            if platform == Platform::Android && user_change && !android_user_change
                            {
                                self.problem(
                                    Some(step),
                                    format!("workflow.{phase}.android"),
                                    format!("{:?}: Workspace ONE documents the enrolment-user change for iOS/macOS only; remove it or set uem.android-enrollment-user-change = true after testing it on your tenant", step.get_ref()),
                                );
                            }
                            parsed.push(parsed_step);
                        }
                        Err(message) => self.problem(
                            Some(step),
                            format!("workflow.{phase}.{platform_name}"),
                            message,
                        ),
                    }
                }
                target.insert(platform, parsed);
            }
        }
        let reservation_seconds = checkout.reservation_seconds.unwrap_or(60);
        if reservation_seconds < 5 {
            self.problem::<()>(
                None,
                "checkout.reservation-seconds",
                "must be at least 5: a nurse needs time to reach the slot",
            );
        }
        EngineConfig {
            station: station.name.clone(),
            slots: dock.slots.iter().map(|slot| slot.label.clone()).collect(),
            staging_user,
            max_devices_per_user: checkout.max_devices_per_user.unwrap_or(1).max(1),
            reservation_ms: i64::from(reservation_seconds) * 1000,
            assign_at,
            overdue_ms: (overdue_hours * 3_600_000.0) as i64,
            failure_threshold: checkout.failure_threshold.unwrap_or(3).max(1),
            checkout_steps,
            checkin_steps,
            reboot_window_ms: i64::from(
                raw.dock
                    .as_ref()
                    .and_then(|d| d.reboot_window_seconds)
                    .unwrap_or(120)
                    .clamp(10, 900),
            ) * 1000,
            lending: crate::checkout::LendingConfig::default(),
            organization_groups: raw
                .uem
                .as_ref()
                .map(|uem| uem.organization_groups.clone())
                .unwrap_or_default(),
        }
    }
}

/// An http(s) URL with a host, and a port when one is written.
fn check_http_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|err| format!("{text:?} is not a URL ({err})"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(format!("{text:?} must start with https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} names no host"));
    }
    if url.port() == Some(0) {
        return Err(format!("{text:?} has port 0"));
    }
    Ok(())
}

/// An ldap:// or ldaps:// URL with a host.
fn check_ldap_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|err| format!("{text:?} is not a URL ({err})"))?;
    if !matches!(url.scheme(), "ldap" | "ldaps") {
        return Err(format!("{text:?} is not ldap:// or ldaps://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} names no host"));
    }
    if url.port() == Some(0) {
        return Err(format!("{text:?} has port 0"));
    }
    Ok(())
}

/// The workflows used when the config names none: Apple devices get the enrolment-user
/// change plus a sync; Android devices only a sync (see `uem.android-enrollment-user-change`).
pub fn default_steps(checkout: bool) -> BTreeMap<Platform, Vec<WorkflowStep>> {
    let sync = WorkflowStep::Command {
        command: DeviceCommand::SyncDevice,
    };
    let apple = if checkout {
        vec![WorkflowStep::AssignUser, sync.clone()]
    } else {
        vec![WorkflowStep::AssignStagingUser, sync.clone()]
    };
    BTreeMap::from([(Platform::Apple, apple), (Platform::Android, vec![sync])])
}

/// Parses one workflow step: `assign-user`, `sync-device`, `change-organization-group:1234`,
/// `webhook:https://…`.
pub fn parse_step(text: &str) -> Result<WorkflowStep, String> {
    let (name, argument) = match text.split_once(':') {
        Some((name, argument)) if !name.starts_with("webhook") || name == "webhook" => {
            (name.trim(), Some(argument.trim()))
        }
        _ => (text.trim(), None),
    };
    let command = |command| Ok(WorkflowStep::Command { command });
    match (name, argument) {
        ("assign-user", None) => Ok(WorkflowStep::AssignUser),
        ("assign-staging-user", None) => Ok(WorkflowStep::AssignStagingUser),
        ("sync-device", None) => command(DeviceCommand::SyncDevice),
        ("device-query", None) => command(DeviceCommand::DeviceQuery),
        ("clear-passcode", None) => command(DeviceCommand::ClearPasscode),
        ("lock", None) => command(DeviceCommand::Lock),
        ("enterprise-wipe", None) => command(DeviceCommand::EnterpriseWipe),
        ("device-wipe", None) => command(DeviceCommand::DeviceWipe),
        ("change-organization-group", Some(id)) => id
            .parse()
            .map(|group_id| WorkflowStep::ChangeOrganizationGroup { group_id })
            .map_err(|_| format!("{text:?}: the organization group must be its numeric id, e.g. change-organization-group:1234")),
        ("webhook", Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(WorkflowStep::Webhook { url: url.to_string() })
        }
        ("webhook", _) => Err(format!("{text:?}: write webhook:https://host/path")),
        ("change-organization-group", None) => Err(format!("{text:?}: write change-organization-group:<numeric id>")),
        _ => Err(format!(
            "{text:?} is not a workflow step: use assign-user, assign-staging-user, sync-device, device-query, clear-passcode, lock, enterprise-wipe, device-wipe, change-organization-group:<id> or webhook:<url>"
        )),
    }
}

fn is_vid_pid(text: &str) -> bool {
    match text.split_once(':') {
        Some((vid, pid)) => {
            vid.len() == 4
                && pid.len() == 4
                && vid
                    .chars()
                    .chain(pid.chars())
                    .all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    }
}

fn is_port_path(text: &str) -> bool {
    // `<bus>-<port>[.<port>]*`, e.g. 1-1, 1-1.4.2, 3-10.
    let Some((bus, ports)) = text.split_once('-') else {
        return false;
    };
    !bus.is_empty()
        && bus.chars().all(|c| c.is_ascii_digit())
        && !ports.is_empty()
        && ports
            .split('.')
            .all(|port| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, ConfigError> {
        parse(
            Path::new("/etc/badgedock/test.toml"),
            text,
            &LoadEnv::default(),
        )
    }

    #[test]
    fn minimal_station_without_readers_is_valid() {
        let config = check("[station]\nname = \"4 West\"\n[directory]\nkind = \"file\"\npath = \"/tmp/badges.csv\"\n");
        let config = config.expect("valid");
        assert!(config.readers.is_empty());
        assert_eq!(config.engine.max_devices_per_user, 1);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "[station]\nname = \"x\"\n\n[[reader]]\nname = \"front\"\nkind = \"usb\"\nformat = \"octal\"\n\n[dock]\nslots = [ { label = \"1\", port = \"1-1.1\" }, { label = \"1\", port = \"nope\" } ]\n\n[checkout]\nassign-at = \"later\"\n";
        let err = check(text).expect_err("invalid");
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"reader[0].kind"), "{err}");
        assert!(keys.contains(&"reader[0].format"), "{err}");
        assert!(keys.contains(&"dock.slots[1].label"), "{err}");
        assert!(keys.contains(&"dock.slots[1].port"), "{err}");
        assert!(keys.contains(&"checkout.assign-at"), "{err}");
        let kind = err
            .problems
            .iter()
            .find(|p| p.key == "reader[0].kind")
            .expect("kind problem");
        assert_eq!(kind.line, Some(6));
        let assign = err
            .problems
            .iter()
            .find(|p| p.key == "checkout.assign-at")
            .expect("assign problem");
        assert_eq!(assign.line, Some(13));
    }

    #[test]
    fn unknown_key_names_its_line() {
        let err = check("[station]\nname = \"x\"\ncolour = \"red\"\n").expect_err("unknown key");
        assert_eq!(err.problems[0].line, Some(3));
        assert!(err.problems[0].message.contains("colour"), "{err}");
    }

    #[test]
    fn android_user_change_is_refused_by_default() {
        let text = "[station]\nname = \"x\"\n[workflow.checkout]\nandroid = [\"assign-user\"]\n";
        let err = check(text).expect_err("refused");
        assert!(err.to_string().contains("iOS/macOS only"), "{err}");
    }

    #[test]
    fn workflow_steps_parse() {
        assert_eq!(parse_step("assign-user"), Ok(WorkflowStep::AssignUser));
        assert_eq!(
            parse_step("change-organization-group:42"),
            Ok(WorkflowStep::ChangeOrganizationGroup { group_id: 42 })
        );
        assert_eq!(
            parse_step("webhook:https://x.example/hook"),
            Ok(WorkflowStep::Webhook {
                url: "https://x.example/hook".into()
            })
        );
        assert!(parse_step("erase-everything").is_err());
    }

    #[test]
    fn port_paths() {
        assert!(is_port_path("1-1.4.2"));
        assert!(is_port_path("3-10"));
        assert!(!is_port_path("1-"));
        assert!(!is_port_path("usb1"));
    }
}
