//! The raw shape of the TOML config file: serde, kebab-case, unknown keys refused.
//!
//! Nothing is validated here beyond types; [`crate::config::resolve`] checks the rules
//! and reports every problem at once. Fields whose values are checked later are wrapped
//! in `Spanned` so that an error can name the line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub station: StationFile,
    pub uem: Option<UemFile>,
    #[serde(default, rename = "reader")]
    pub readers: Vec<ReaderFile>,
    pub dock: Option<DockFile>,
    pub directory: Option<DirectoryFile>,
    #[serde(default)]
    pub policy: PolicyFile,
    #[serde(default)]
    pub checkout: CheckoutFile,
    #[serde(default)]
    pub workflow: WorkflowFile,
    #[serde(default)]
    pub dashboard: DashboardFile,
    #[serde(default)]
    pub metrics: MetricsFile,
    #[serde(default)]
    pub audit: crate::config::audit::AuditFile,
    pub siem: Option<crate::config::audit::SiemFile>,
    pub lending: Option<crate::config::lending::LendingFile>,
    pub fleet: Option<crate::config::fleet::FleetFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StationFile {
    /// Required; missing reads as empty, which the checker reports.
    #[serde(default)]
    pub name: String,
    pub state_dir: Option<PathBuf>,
    pub control_socket: Option<PathBuf>,
    /// Members of this group (and root) may send state-changing control commands.
    pub admin_group: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UemFile {
    #[serde(default = "missing")]
    pub base_url: Spanned<String>,
    pub tenant_code_file: Option<Spanned<PathBuf>>,
    #[serde(default = "missing")]
    pub staging_user: Spanned<String>,
    #[serde(default)]
    pub auth: UemAuthFile,
    pub connect_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub ca_file: Option<Spanned<PathBuf>>,
    /// GET the device after each enrolment-user change and compare `UserName`.
    #[serde(default)]
    pub verify_after_assign: bool,
    /// How many outbox actions run at once (different devices only).
    pub concurrency: Option<u32>,
    /// Allow `assign-user` / `assign-staging-user` in Android workflows (Workspace ONE
    /// documents the enrolment-user change for iOS/macOS only).
    #[serde(default)]
    pub android_enrollment_user_change: bool,
    /// When one user name has several active accounts (a Basic and a Directory one), use
    /// the one with this `SecurityType` (1 directory, 2 basic) instead of refusing.
    pub preferred_security_type: Option<i64>,
    /// Organization group ids whose shared devices this station may check in; empty: any.
    #[serde(default)]
    pub organization_groups: Vec<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UemAuthFile {
    #[serde(default = "missing")]
    pub kind: Spanned<String>,
    pub token_url: Option<Spanned<String>>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<Spanned<PathBuf>>,
    pub username: Option<String>,
    pub password_file: Option<Spanned<PathBuf>>,
}

impl Default for UemAuthFile {
    fn default() -> Self {
        UemAuthFile {
            kind: missing(),
            token_url: None,
            client_id: None,
            client_secret_file: None,
            username: None,
            password_file: None,
        }
    }
}

/// A required value that is absent: empty, at no position (the checker says "is missing").
pub fn missing() -> Spanned<String> {
    Spanned::new(0..0, String::new())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ReaderFile {
    #[serde(default = "missing")]
    pub name: Spanned<String>,
    #[serde(default = "missing")]
    pub kind: Spanned<String>,
    #[serde(rename = "match")]
    pub match_: Option<Spanned<String>>,
    #[serde(default = "default_format")]
    pub format: Spanned<String>,
    /// The same card again within this window after removal is not a new tap.
    pub lockout_ms: Option<u64>,
    /// Beep / LED on readers that support it.
    pub feedback: Option<bool>,
}

fn default_format() -> Spanned<String> {
    Spanned::new(0..0, "hex".to_string())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DockFile {
    pub sysfs_root: Option<PathBuf>,
    pub rescan_ms: Option<u64>,
    /// Undock and dock again within this window is a loose cable, not a check-in.
    pub flap_ms: Option<u64>,
    /// A phone that left and comes back within this many seconds restarted or was
    /// reseated: it keeps its place and no reservation follows it.
    pub reboot_window_seconds: Option<u32>,
    #[serde(default)]
    pub slots: Vec<Spanned<SlotFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SlotFile {
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub port: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DirectoryFile {
    #[serde(default = "missing")]
    pub kind: Spanned<String>,
    pub path: Option<Spanned<PathBuf>>,
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub starttls: bool,
    pub ca_file: Option<Spanned<PathBuf>>,
    pub cache_ttl_seconds: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<Spanned<PathBuf>>,
    pub base_dn: Option<String>,
    pub badge_attribute: Option<String>,
    pub username_attribute: Option<String>,
    pub display_name_attribute: Option<String>,
    pub group_attribute: Option<String>,
    /// Members of this directory group may approve enrolments.
    pub enroller_group: Option<String>,
    /// A badge file larger than this is refused (the last good table stays in force).
    pub max_file_bytes: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    #[serde(default)]
    pub deny_badges: Vec<Spanned<String>>,
    #[serde(default)]
    pub deny_users: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CheckoutFile {
    pub max_devices_per_user: Option<u32>,
    pub reservation_seconds: Option<u32>,
    pub assign_at: Option<Spanned<String>>,
    pub overdue_hours: Option<f64>,
    pub failure_threshold: Option<u32>,
}

/// `[workflow.checkout]` and `[workflow.checkin]`: steps per platform.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WorkflowFile {
    #[serde(default)]
    pub checkout: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    pub checkin: BTreeMap<String, Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DashboardFile {
    /// Show admin actions (retry, cancel) on the dashboard.
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MetricsFile {
    /// Prometheus endpoint, loopback only by default (`127.0.0.1:9464`).
    pub listen: Option<Spanned<String>>,
    /// Allow `listen` on an address other than loopback (the metrics carry no secrets,
    /// but station activity is visible to whoever can reach the port).
    #[serde(default)]
    pub allow_remote: bool,
}

/// The keys the client commands (`status`, `tap`, `dashboard`, `badges`, `audit`,
/// `backup`) use. Every other key is ignored, so these commands never read secrets and
/// keep working for a config the daemon's user can read but a group member can only
/// partly use.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClientFile {
    #[serde(default)]
    pub station: ClientStationFile,
    #[serde(default)]
    pub dashboard: ClientDashboardFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClientStationFile {
    pub state_dir: Option<PathBuf>,
    pub control_socket: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClientDashboardFile {
    #[serde(default)]
    pub admin: bool,
}
