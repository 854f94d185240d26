//! The simulator's seed file: the tenant's credentials, organization groups, users and
//! devices it starts with.
//!
//! The format is JSON with kebab-case keys; unknown keys are refused so a typo is caught.
//! `src/uemsim/default_seed.json` is the built-in seed (used when no `--seed` is given)
//! and doubles as the example of the format:
//!
//! ```json
//! {
//!   "tenant-code": "SIMTENANT4WEST",                   // aw-tenant-code; optional
//!   "oauth-clients":  [{ "client-id": "…", "client-secret": "…" }],
//!   "basic-accounts": [{ "username": "api-admin", "password": "…" }],
//!   "organization-groups": [{ "id": 571, "name": "4 West" }],
//!   "users": [{ "id": 9000, "username": "staging-4west",
//!               "first-name": "", "last-name": "", "email": "",   // optional
//!               "active": true,                        // Status; default true
//!               "security-type": 2,                    // 1 directory, 2 basic; default 2
//!               "staging": "multi",                    // none | single | multi; default none
//!               "group-id": 571 }],                    // default: the first group
//!   "devices": [{ "id": 101, "platform": "apple",      // apple | android
//!                 "udid": "00008110-000A1B2C3D4E801E", // Apple only, stored exactly so
//!                 "serial-number": "F4GXK1AAPLE1",
//!                 "name": "4W iPhone 01", "model": "iPhone 13", "os-version": "17.5",
//!                 "mac-address": "…",                  // optional
//!                 "user-id": 9000,                     // the enrolment user
//!                 "staged-by": 9000,                   // the staging account that enrolled
//!                                                      // it; omit for a user-enrolled device
//!                 "enrollment-status": "Enrolled",     // default Enrolled
//!                 "group-id": 571 }]
//! }
//! ```
//!
//! Usernames may repeat (two `bob` accounts), as on a real tenant. Ids must be unique and
//! every `user-id`, `staged-by` and `group-id` must exist.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The built-in seed, as JSON text.
pub const DEFAULT_SEED_JSON: &str = include_str!("default_seed.json");

/// A whole seed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Seed {
    /// The `aw-tenant-code` Basic callers must send (and Bearer callers may send).
    #[serde(default)]
    pub tenant_code: Option<String>,
    /// OAuth clients the token endpoint accepts.
    #[serde(default)]
    pub oauth_clients: Vec<SeedClient>,
    /// Admin accounts Basic auth accepts.
    #[serde(default)]
    pub basic_accounts: Vec<SeedAccount>,
    /// Organization groups.
    #[serde(default)]
    pub organization_groups: Vec<SeedGroup>,
    /// Enrolment users (staging accounts included).
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// Enrolled devices.
    #[serde(default)]
    pub devices: Vec<SeedDevice>,
}

/// An OAuth client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SeedClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: String,
}

/// A Basic-auth admin account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SeedAccount {
    /// The account name.
    pub username: String,
    /// Its password.
    pub password: String,
}

/// An organization group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SeedGroup {
    /// Numeric id (`LocationGroupId`).
    pub id: i64,
    /// Its name.
    pub name: String,
}

/// How a user account stages devices (`StagingMode`; the numbers are an assumption).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Staging {
    /// An ordinary user (`StagingMode` 0).
    #[default]
    None,
    /// Single-user staging (`StagingMode` 1).
    Single,
    /// Multi-user staging (`StagingMode` 2): devices it enrolled can be checked out.
    Multi,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SeedUser {
    /// Numeric id (`Id.Value`), unique.
    pub id: i64,
    /// `UserName`; may repeat across accounts.
    pub username: String,
    /// `FirstName`.
    #[serde(default)]
    pub first_name: String,
    /// `LastName`.
    #[serde(default)]
    pub last_name: String,
    /// `Email`.
    #[serde(default)]
    pub email: String,
    /// `Status`.
    #[serde(default = "yes")]
    pub active: bool,
    /// `SecurityType`: 1 directory, 2 basic.
    #[serde(default = "basic_security")]
    pub security_type: i64,
    /// Staging mode.
    #[serde(default)]
    pub staging: Staging,
    /// Organization group; the first group when absent.
    #[serde(default)]
    pub group_id: Option<i64>,
}

/// A device platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SimPlatform {
    /// iOS / macOS (`Platform` "Apple", `PlatformId` 2).
    Apple,
    /// Android (`Platform` "Android", `PlatformId` 5, an assumption).
    Android,
}

impl SimPlatform {
    /// The v1 `Platform` string.
    pub fn api_name(self) -> &'static str {
        match self {
            SimPlatform::Apple => "Apple",
            SimPlatform::Android => "Android",
        }
    }

    /// The v1 `PlatformId.Id.Value`.
    pub fn api_id(self) -> i64 {
        match self {
            SimPlatform::Apple => 2,
            SimPlatform::Android => 5,
        }
    }
}

/// An enrolled device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SeedDevice {
    /// Numeric id (`Id.Value`), unique.
    pub id: i64,
    /// Platform.
    pub platform: SimPlatform,
    /// `Udid` exactly as Workspace ONE stores it (Apple).
    #[serde(default)]
    pub udid: Option<String>,
    /// `SerialNumber`.
    pub serial_number: String,
    /// `DeviceFriendlyName`.
    #[serde(default)]
    pub name: String,
    /// `Model`.
    #[serde(default)]
    pub model: String,
    /// `OperatingSystem`.
    #[serde(default)]
    pub os_version: String,
    /// `MacAddress`; made up from the id when absent.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// The enrolment user's id.
    pub user_id: i64,
    /// The staging account that enrolled it, if any.
    #[serde(default)]
    pub staged_by: Option<i64>,
    /// `EnrollmentStatus`.
    #[serde(default = "enrolled")]
    pub enrollment_status: String,
    /// Organization group; the first group when absent.
    #[serde(default)]
    pub group_id: Option<i64>,
    /// `Ownership` (`C`, `E`, `S`); shared (`S`) for a staged device, employee-owned
    /// (`E`) otherwise, when absent.
    #[serde(default)]
    pub ownership: Option<String>,
}

fn yes() -> bool {
    true
}

fn basic_security() -> i64 {
    2
}

fn enrolled() -> String {
    "Enrolled".to_string()
}

impl Seed {
    /// The built-in seed.
    pub fn builtin() -> anyhow::Result<Seed> {
        Seed::parse(DEFAULT_SEED_JSON, "the built-in seed")
    }

    /// Reads and checks a seed file.
    pub fn load(path: &Path) -> anyhow::Result<Seed> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            anyhow::anyhow!("cannot read the seed file {}: {err}", path.display())
        })?;
        Seed::parse(&text, &path.display().to_string())
    }

    /// Parses and checks seed text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Seed> {
        let seed: Seed = serde_json::from_str(text).map_err(|err| {
            anyhow::anyhow!(
                "{origin} is not a valid seed (line {}, column {}): {err}",
                err.line(),
                err.column()
            )
        })?;
        let problems = seed.problems();
        if !problems.is_empty() {
            anyhow::bail!(
                "{origin} has {} problem(s):\n  {}",
                problems.len(),
                problems.join("\n  ")
            );
        }
        Ok(seed)
    }

    /// Every inconsistency, in words.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut group_ids = BTreeSet::new();
        for group in &self.organization_groups {
            if !group_ids.insert(group.id) {
                problems.push(format!("organization group id {} is used twice", group.id));
            }
        }
        if self.organization_groups.is_empty()
            && (!self.users.is_empty() || !self.devices.is_empty())
        {
            problems.push("organization-groups is empty: add at least one group".to_string());
        }
        let mut user_ids = BTreeSet::new();
        for user in &self.users {
            if !user_ids.insert(user.id) {
                problems.push(format!("user id {} is used twice", user.id));
            }
            if user.username.trim().is_empty() {
                problems.push(format!("user {} has an empty username", user.id));
            }
            if let Some(group) = user.group_id.filter(|g| !group_ids.contains(g)) {
                problems.push(format!(
                    "user {} names organization group {group}, which does not exist",
                    user.id
                ));
            }
        }
        let mut device_ids = BTreeSet::new();
        for device in &self.devices {
            if !device_ids.insert(device.id) {
                problems.push(format!("device id {} is used twice", device.id));
            }
            if device.platform == SimPlatform::Apple
                && device.udid.as_deref().is_none_or(|u| u.trim().is_empty())
            {
                problems.push(format!(
                    "device {} is an Apple device without a udid",
                    device.id
                ));
            }
            if !user_ids.contains(&device.user_id) {
                problems.push(format!(
                    "device {} has user-id {}, which is not a user",
                    device.id, device.user_id
                ));
            }
            if let Some(staged_by) = device.staged_by.filter(|u| !user_ids.contains(u)) {
                problems.push(format!(
                    "device {} has staged-by {staged_by}, which is not a user",
                    device.id
                ));
            }
            if let Some(group) = device.group_id.filter(|g| !group_ids.contains(g)) {
                problems.push(format!(
                    "device {} names organization group {group}, which does not exist",
                    device.id
                ));
            }
        }
        if self.oauth_clients.is_empty() && self.basic_accounts.is_empty() {
            problems.push(
                "no oauth-clients and no basic-accounts: nobody could call the simulator"
                    .to_string(),
            );
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_seed_is_valid_and_has_the_traps() {
        let seed = Seed::builtin().expect("built-in seed");
        let named = |name: &str| seed.users.iter().filter(|u| u.username == name).count();
        assert_eq!(named("bob"), 2);
        assert_eq!(named("alice"), 1);
        assert_eq!(named("alice2"), 1);
        assert!(seed.users.iter().any(|u| u.staging == Staging::Multi));
        let android = seed
            .devices
            .iter()
            .filter(|d| d.platform == SimPlatform::Android)
            .count();
        assert_eq!(android, 2);
        let udid_lengths: BTreeSet<usize> = seed
            .devices
            .iter()
            .filter_map(|d| d.udid.as_ref())
            .map(|u| u.len())
            .collect();
        assert!(
            udid_lengths.contains(&25) && udid_lengths.contains(&40),
            "{udid_lengths:?}"
        );
    }

    #[test]
    fn problems_are_all_reported() {
        let text = r#"{"organization-groups":[{"id":1,"name":"a"}],
            "users":[{"id":1,"username":"x"},{"id":1,"username":""}],
            "devices":[{"id":5,"platform":"apple","serial-number":"s","user-id":9,"staged-by":8,"group-id":3}]}"#;
        let err = Seed::parse(text, "test").expect_err("invalid").to_string();
        for needle in [
            "used twice",
            "empty username",
            "without a udid",
            "user-id 9",
            "staged-by 8",
            "group 3",
            "nobody",
        ] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let typo = Seed::parse(r#"{"usres": []}"#, "typo")
            .expect_err("unknown key")
            .to_string();
        assert!(typo.contains("usres"), "{typo}");
    }
}
