//! The Workspace ONE model the simulator runs in process, with the semantics of
//! `src/uemsim` (the HTTP simulator) and of `UemClient`'s decisions on top of it.
//!
//! `uemsim::state` sits behind a mutex, tokio instants and HTTP handlers, so the rules
//! are restated here, synchronously: devices with their enrolment user, the staging
//! account that enrolled them, enrolment status; a wipe leaves the device
//! `EnterpriseWipePending` until it re-enrols to the staging user minutes later; users
//! with duplicates and inactive accounts; the enrolment-user PATCH refused for devices
//! not enrolled through multi-user staging and for Android. User lookups follow
//! `UemClient::user_id` today: an exact, case-sensitive `UserName` among active accounts
//! ([`Ws1::client_user_match`] is the one place to change when the client changes).
//! Answers are real [`MdmError`]s, so the outbox driver classes them as the daemon does.

use std::collections::BTreeMap;

use crate::checkout::{DeviceCommand, MdmAction, MdmDeviceInfo};
use crate::domain::{DeviceKey, Platform, Username};
use crate::mdm::MdmError;

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ws1User {
    /// `Id.Value`.
    pub id: i64,
    /// `UserName` as Workspace ONE spells it.
    pub username: String,
    /// `Status`.
    pub active: bool,
}

/// A device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ws1Device {
    /// `Id.Value`.
    pub id: i64,
    /// `DeviceFriendlyName`.
    pub name: String,
    /// The enrolment user's `UserName`.
    pub user: String,
    /// True when it was enrolled through multi-user staging by the staging account.
    pub staged: bool,
    /// `EnrollmentStatus` is `EnterpriseWipePending`.
    pub wipe_pending: bool,
    /// Wipes received, ever.
    pub wipes: u32,
}

/// What an accepted action did, for the world (a wipe reboots the phone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The enrolment user changed.
    Assigned,
    /// A wipe is now pending.
    Wiped,
    /// Anything else (sync, query, group change, webhook).
    Other,
}

/// The tenant.
#[derive(Debug, Clone)]
pub struct Ws1 {
    /// The multi-user staging account.
    pub staging: String,
    /// Accounts by id.
    pub users: BTreeMap<i64, Ws1User>,
    /// Devices by key.
    pub devices: BTreeMap<DeviceKey, Ws1Device>,
}

impl Ws1 {
    /// An empty tenant with its staging account.
    pub fn new(staging: &str) -> Ws1 {
        let mut ws1 = Ws1 {
            staging: staging.to_string(),
            users: BTreeMap::new(),
            devices: BTreeMap::new(),
        };
        ws1.add_user(staging, true);
        ws1
    }

    /// Adds an account.
    pub fn add_user(&mut self, username: &str, active: bool) {
        let id = self.users.len() as i64 + 100;
        self.users.insert(
            id,
            Ws1User {
                id,
                username: username.to_string(),
                active,
            },
        );
    }

    /// Adds a device enrolled to `user`; `staged` when through multi-user staging.
    pub fn add_device(&mut self, key: &DeviceKey, name: &str, user: &str, staged: bool) {
        let id = self.devices.len() as i64 + 5000;
        self.devices.insert(
            key.clone(),
            Ws1Device {
                id,
                name: name.to_string(),
                user: user.to_string(),
                staged,
                wipe_pending: false,
                wipes: 0,
            },
        );
    }

    /// The device, if enrolled.
    pub fn device(&self, key: &DeviceKey) -> Option<&Ws1Device> {
        self.devices.get(key)
    }

    /// True when `username` and the staging account are the same account.
    pub fn is_staging(&self, username: &str) -> bool {
        username.eq_ignore_ascii_case(&self.staging)
    }

    /// `GET /API/mdm/devices?searchby=Udid`, as `UemClient::lookup_device` reads it.
    pub fn lookup_device(&self, key: &DeviceKey) -> Result<MdmDeviceInfo, MdmError> {
        let device = self.devices.get(key).ok_or_else(|| not_found(key))?;
        Ok(MdmDeviceInfo {
            mdm_id: device.id,
            name: device.name.clone(),
            enrollment_user: Some(Username::new(device.user.clone())),
            wipe_pending: device.wipe_pending,
            // A fleet phone is a shared device enrolled through multi-user staging; a
            // personal phone is employee-owned.
            ownership: Some(if device.staged { "S" } else { "E" }.to_string()),
            group_id: Some(571),
            enrolled: !device.wipe_pending,
        })
    }

    /// `UemClient::wipe_pending`.
    pub fn wipe_pending(&self, key: &DeviceKey) -> Result<bool, MdmError> {
        Ok(self
            .devices
            .get(key)
            .ok_or_else(|| not_found(key))?
            .wipe_pending)
    }

    /// The account `UemClient::user_id` settles on for `username`: exactly one active
    /// account whose `UserName` equals it, compared as the client compares today
    /// (case-sensitively).
    pub fn client_user_match(&self, username: &str) -> Result<i64, MdmError> {
        let matches: Vec<i64> = self
            .users
            .values()
            .filter(|u| u.active && u.username.eq_ignore_ascii_case(username))
            .map(|u| u.id)
            .collect();
        match matches.as_slice() {
            [] => Err(MdmError::NoSuchUser {
                username: Username::new(username),
            }),
            [id] => Ok(*id),
            several => Err(MdmError::AmbiguousUser {
                username: Username::new(username),
                matches: several.len(),
            }),
        }
    }

    /// Performs one outbox action as `UemClient::perform` and the server would.
    pub fn perform(&mut self, key: &DeviceKey, action: &MdmAction) -> Result<Applied, MdmError> {
        match action {
            MdmAction::AssignUser { username } => self.assign(key, username.as_str()),
            MdmAction::AssignStagingUser => {
                let staging = self.staging.clone();
                self.assign(key, &staging)
            }
            MdmAction::Command { command } => {
                let device = self.devices.get_mut(key).ok_or_else(|| not_found(key))?;
                match command {
                    DeviceCommand::EnterpriseWipe | DeviceCommand::DeviceWipe => {
                        device.wipe_pending = true;
                        device.wipes += 1;
                        Ok(Applied::Wiped)
                    }
                    _ => Ok(Applied::Other),
                }
            }
            MdmAction::ChangeOrganizationGroup { .. }
            | MdmAction::Webhook { .. }
            | MdmAction::Email { .. }
            | MdmAction::Message { .. }
            | MdmAction::LostMode { .. } => {
                self.devices.get(key).ok_or_else(|| not_found(key))?;
                Ok(Applied::Other)
            }
        }
    }

    /// The device finished its wipe and enrolled again through the staging account.
    pub fn reenrol(&mut self, key: &DeviceKey) {
        let staging = self.staging.clone();
        if let Some(device) = self.devices.get_mut(key) {
            device.wipe_pending = false;
            device.user = staging;
            device.staged = true;
        }
    }

    fn assign(&mut self, key: &DeviceKey, username: &str) -> Result<Applied, MdmError> {
        let user_id = self.client_user_match(username)?;
        let user = self
            .users
            .get(&user_id)
            .map(|u| u.username.clone())
            .unwrap_or_default();
        let device = self.devices.get_mut(key).ok_or_else(|| not_found(key))?;
        let operation = format!("assign device {key} to {username}");
        if key.platform != Platform::Apple {
            return Err(rejected(
                &operation,
                "The checkout action is supported only for MacOS and iOS devices.",
            ));
        }
        if !device.staged {
            return Err(rejected(
                &operation,
                "Device is not enrolled to Multi-Staging enrollment User.",
            ));
        }
        device.user = user;
        Ok(Applied::Assigned)
    }
}

fn not_found(key: &DeviceKey) -> MdmError {
    MdmError::DeviceNotFound {
        device: key.id.clone(),
        message: "no device with this identifier".into(),
    }
}

fn rejected(operation: &str, message: &str) -> MdmError {
    MdmError::Rejected {
        operation: operation.to_string(),
        status: 400,
        error_code: Some(400),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_needs_a_staged_apple_device_and_one_exact_user() {
        let mut ws1 = Ws1::new("staging");
        ws1.add_user("alice", true);
        ws1.add_user("bob", true);
        ws1.add_user("bob", true);
        let ours = DeviceKey::apple_from_usb_serial("00008101000A11112222");
        let personal = DeviceKey::apple_from_usb_serial("00008101000A33334444");
        ws1.add_device(&ours, "iPhone 1", "staging", true);
        ws1.add_device(&personal, "Alice's", "alice", false);
        let assign = |name: &str| MdmAction::AssignUser {
            username: Username::new(name),
        };
        assert_eq!(ws1.perform(&ours, &assign("alice")), Ok(Applied::Assigned));
        assert_eq!(ws1.device(&ours).map(|d| d.user.as_str()), Some("alice"));
        assert!(matches!(
            ws1.perform(&ours, &assign("bob")),
            Err(MdmError::AmbiguousUser { matches: 2, .. })
        ));
        // User names compare without regard to case, as Workspace ONE's do.
        assert_eq!(ws1.perform(&ours, &assign("Alice")), Ok(Applied::Assigned));
        assert!(matches!(
            ws1.perform(&personal, &MdmAction::AssignStagingUser),
            Err(MdmError::Rejected { status: 400, .. })
        ));
        let wipe = MdmAction::Command {
            command: DeviceCommand::EnterpriseWipe,
        };
        assert_eq!(ws1.perform(&ours, &wipe), Ok(Applied::Wiped));
        assert_eq!(ws1.wipe_pending(&ours), Ok(true));
        ws1.reenrol(&ours);
        let info = ws1.lookup_device(&ours).expect("enrolled");
        assert!(!info.wipe_pending);
        assert_eq!(info.enrollment_user, Some(Username::new("staging")));
    }
}
