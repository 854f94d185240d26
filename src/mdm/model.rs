//! The Workspace ONE v1 JSON shapes the client reads, and only the fields it needs.
//!
//! v1 bodies are PascalCase and wrap ids as `{"Id": {"Value": n}}`; any sub-field may be
//! missing or null (API.md §0), so every field here is optional and unknown fields are
//! ignored. The client turns a missing `Id` into a readable error rather than a panic.

use serde::Deserialize;

use crate::checkout::MdmDeviceInfo;
use crate::domain::Username;

/// `{"Value": n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct IdValue {
    /// The numeric id.
    #[serde(rename = "Value")]
    pub value: i64,
}

/// A reference to another entity: `{"Id": {"Value": n}, "Name": "…", "Uuid": "…"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Reference {
    /// `Id.Value`.
    pub id: Option<IdValue>,
    /// `Name`.
    pub name: Option<String>,
    /// `Uuid`.
    pub uuid: Option<String>,
}

/// A v1 `Device` (from `GET /API/mdm/devices?searchby=…`, `/devices/{id}` or a search).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceV1 {
    /// `Id.Value`: the numeric id every other call uses.
    pub id: Option<IdValue>,
    /// `Uuid`.
    pub uuid: Option<String>,
    /// `Udid` (Apple).
    pub udid: Option<String>,
    /// `SerialNumber`.
    pub serial_number: Option<String>,
    /// `DeviceFriendlyName`.
    pub device_friendly_name: Option<String>,
    /// `DeviceReportedName`.
    pub device_reported_name: Option<String>,
    /// `UserName`: the enrolment user.
    pub user_name: Option<String>,
    /// `UserId`.
    pub user_id: Option<Reference>,
    /// `UserEmailAddress`.
    pub user_email_address: Option<String>,
    /// `EnrollmentUserUuid` (may be `""` or the zero GUID).
    pub enrollment_user_uuid: Option<String>,
    /// `EnrollmentStatus`: `Enrolled`, `EnterpriseWipePending`, `DeviceWipePending`, `Unenrolled`.
    pub enrollment_status: Option<String>,
    /// `Platform`: `Apple`, `Android`, `WinRT`, …
    pub platform: Option<String>,
    /// `LocationGroupId`: the organization group.
    pub location_group_id: Option<Reference>,
    /// `LocationGroupName`.
    pub location_group_name: Option<String>,
    /// `Ownership`: `C` (corporate dedicated), `E` (employee owned), `S` (corporate
    /// shared), `Undefined`.
    pub ownership: Option<String>,
    /// `Model`.
    pub model: Option<String>,
}

impl DeviceV1 {
    /// The numeric id, if the body had one.
    pub fn numeric_id(&self) -> Option<i64> {
        self.id.map(|id| id.value)
    }

    /// The enrolment user, when there is one (`UserName` not blank).
    pub fn enrollment_user(&self) -> Option<Username> {
        self.user_name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(Username::new)
    }

    /// True when a wipe is pending or the device has left management.
    pub fn wipe_pending(&self) -> bool {
        let status = self
            .enrollment_status
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        status.contains("wipepending") || status == "unenrolled"
    }

    /// What the engine needs; `None` when the body has no `Id`.
    pub fn to_info(&self) -> Option<MdmDeviceInfo> {
        let name = self
            .device_friendly_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| self.device_reported_name.clone())
            .unwrap_or_default();
        Some(MdmDeviceInfo {
            mdm_id: self.numeric_id()?,
            name,
            enrollment_user: self.enrollment_user(),
            wipe_pending: self.wipe_pending(),
            ownership: self
                .ownership
                .as_deref()
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_string),
            group_id: self
                .location_group_id
                .as_ref()
                .and_then(|group| group.id)
                .map(|id| id.value),
            enrolled: self
                .enrollment_status
                .as_deref()
                .is_some_and(|status| status.trim().eq_ignore_ascii_case("enrolled")),
        })
    }
}

/// `GET /API/mdm/devices/search` (v1/v2): `{Devices[], Page, PageSize, Total}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceSearchV1 {
    /// The page of devices.
    pub devices: Vec<DeviceV1>,
    /// 0-based page.
    pub page: Option<i64>,
    /// Page size.
    pub page_size: Option<i64>,
    /// Total matches across pages.
    pub total: Option<i64>,
}

/// A v1 `User` from `GET /API/system/users/search`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserV1 {
    /// `Id.Value`: the enrolment user id of the PATCH.
    pub id: Option<IdValue>,
    /// `Uuid`.
    pub uuid: Option<String>,
    /// `UserName`, compared exactly.
    pub user_name: Option<String>,
    /// `Status`: true when active. Kept loose because some tenants send text.
    pub status: Option<serde_json::Value>,
    /// `SecurityType`: 2 Basic, 1 Directory (probably).
    pub security_type: Option<i64>,
    /// `Email`.
    pub email: Option<String>,
    /// `Group`: the organization group's name.
    pub group: Option<String>,
    /// `StagingMode`: 0 none; the simulator uses 1 single-user and 2 multi-user staging
    /// (the real numbers are unverified, `ws1/API.md` §3).
    pub staging_mode: Option<i64>,
    /// `DeviceStagingEnabled`.
    pub device_staging_enabled: Option<bool>,
}

impl UserV1 {
    /// False only when `Status` says inactive (`false`, `"false"`, `"Inactive"`).
    pub fn is_active(&self) -> bool {
        match &self.status {
            Some(serde_json::Value::Bool(active)) => *active,
            Some(serde_json::Value::String(text)) => !matches!(
                text.trim().to_ascii_lowercase().as_str(),
                "false" | "inactive" | "0"
            ),
            Some(serde_json::Value::Number(number)) => number.as_i64() != Some(0),
            _ => true,
        }
    }
}

/// `GET /API/system/users/search`: `{Users[], Page, PageSize, Total}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserSearchV1 {
    /// The page of users.
    pub users: Vec<UserV1>,
    /// 0-based page.
    pub page: Option<i64>,
    /// Page size.
    pub page_size: Option<i64>,
    /// Total matches across pages.
    pub total: Option<i64>,
}

/// The OAuth token endpoint's answer.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Lifetime in seconds (one hour on SaaS).
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"***")
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_fields_and_wipe_state() {
        let device: DeviceV1 = serde_json::from_str(
            r#"{"Id":{"Value":5},"UserName":" ","EnrollmentStatus":"EnterpriseWipePending","DeviceFriendlyName":null,"DeviceReportedName":"x","Extra":[1]}"#,
        )
        .expect("parses");
        let info = device.to_info().expect("has id");
        assert_eq!(info.mdm_id, 5);
        assert_eq!(info.enrollment_user, None);
        assert!(info.wipe_pending);
        assert_eq!(info.name, "x");
        assert!(DeviceV1::default().to_info().is_none());
    }

    #[test]
    fn user_status_is_loose() {
        let user: UserV1 = serde_json::from_str(r#"{"Status":"Inactive"}"#).expect("parses");
        assert!(!user.is_active());
        let user: UserV1 = serde_json::from_str(r#"{"Status":true}"#).expect("parses");
        assert!(user.is_active());
        assert!(UserV1::default().is_active());
    }
}
