//! Workspace ONE UEM client: the edge the outbox worker and the device lookup call.
//!
//! [`Mdm`] is what the daemon depends on; [`UemClient`] implements it over reqwest
//! (rustls) against the REST API described in `ws1/API.md`, and tests substitute their
//! own implementations. The client keeps three caches (device id by UDID or serial, user
//! id by username, which includes the staging user) so that a warm check-out costs
//! exactly one API call, the enrolment-user PATCH, plus a verifying GET when
//! `uem.verify-after-assign` is set.
//!
//! Two rules shape the lookups:
//! - a user search is a substring search on Workspace ONE, so only an exact,
//!   case-sensitive `UserName` match among active accounts is used, and none or several
//!   refuse the action (DESIGN invariant 4);
//! - a UDID is tried as stored by Workspace ONE (`8-16` hex with a hyphen) and then
//!   without the hyphen; an Android device is looked up by serial number.
//!
//! The enrolment-user change is documented for iOS/macOS only. The config refuses it in
//! Android workflows by default; this client performs whatever action it is given.

mod client;
mod error;
mod inspect;
pub mod model;

pub use client::{ClientHealth, UemClient};
pub use error::{ApiErrorBody, BodyKind, ErrorClass, MdmError};

use std::future::Future;

use reqwest::{Method, StatusCode};

use crate::checkout::{MdmAction, MdmDeviceInfo};
use crate::domain::{DeviceKey, Platform, Username};
use client::lock;
use model::DeviceV1;

/// Page size of the user search (the API's default and cap).
const USER_PAGE_SIZE: &str = "500";
/// Stop paging a user search after this many pages; no real username matches 10 000 accounts.
const MAX_USER_PAGES: i64 = 20;

/// What the daemon needs from Workspace ONE.
///
/// Futures are `Send` so the outbox worker can run actions on spawned tasks.
pub trait Mdm: Send + Sync + 'static {
    /// Asks Workspace ONE about a device: Apple by UDID (with and without the hyphen),
    /// Android by serial number. Always asks the server (the enrolment user may have
    /// changed elsewhere) and remembers the device id.
    fn lookup_device(
        &self,
        device: &DeviceKey,
    ) -> impl Future<Output = Result<MdmDeviceInfo, MdmError>> + Send;

    /// The numeric id of the one active account named exactly `username`. None or
    /// several such accounts are refused ([`MdmError::NoSuchUser`],
    /// [`MdmError::AmbiguousUser`]). Cached.
    fn lookup_user(
        &self,
        username: &Username,
    ) -> impl Future<Output = Result<i64, MdmError>> + Send;

    /// Performs one outbox action on a device.
    fn perform(
        &self,
        device: &DeviceKey,
        action: &MdmAction,
    ) -> impl Future<Output = Result<(), MdmError>> + Send;

    /// True when a wipe is already pending (or the device is unenrolled). The worker asks
    /// this before re-sending a wipe after a crash, so a wipe is never sent twice.
    fn wipe_pending(
        &self,
        device: &DeviceKey,
    ) -> impl Future<Output = Result<bool, MdmError>> + Send;
}

impl Mdm for UemClient {
    async fn lookup_device(&self, device: &DeviceKey) -> Result<MdmDeviceInfo, MdmError> {
        let found = self.fetch_device(device).await?;
        found.to_info().ok_or_else(|| MdmError::BadResponse {
            operation: format!("look up device {device}"),
            detail: "the device has no Id".into(),
        })
    }

    async fn lookup_user(&self, username: &Username) -> Result<i64, MdmError> {
        self.user_id(username).await.map(|(id, _)| id)
    }

    async fn perform(&self, device: &DeviceKey, action: &MdmAction) -> Result<(), MdmError> {
        match action {
            MdmAction::AssignUser { username } => self.assign(device, username).await,
            MdmAction::AssignStagingUser => {
                let staging = self.inner.staging_user.clone();
                self.assign(device, &staging).await
            }
            MdmAction::Command { command } => {
                let operation = format!("send {} to device {device}", command.api_name());
                self.device_call(
                    device,
                    &operation,
                    Method::POST,
                    |id| format!("/API/mdm/devices/{id}/commands"),
                    &[("command", command.api_name())],
                    1,
                )
                .await
            }
            MdmAction::ChangeOrganizationGroup { group_id } => {
                let operation = format!("move device {device} to organization group {group_id}");
                self.device_call(
                    device,
                    &operation,
                    Method::PUT,
                    |id| {
                        format!("/API/mdm/devices/{id}/commands/changeorganizationgroup/{group_id}")
                    },
                    &[],
                    1,
                )
                .await
            }
            MdmAction::Webhook { url, body } => self.post_webhook(url, body).await,
            MdmAction::Email { .. } => Err(MdmError::BadResponse {
                operation: format!("send an e-mail about device {device}"),
                detail: "e-mail is not a Workspace ONE call: the outbox worker sends it over SMTP"
                    .into(),
            }),
            MdmAction::Message { text, path } => {
                let body = serde_json::json!({
                    "MessageBody": text,
                    "Application": "AirWatch Agent",
                    "MessageType": "Push",
                });
                self.device_request(device, "send a message to", Method::POST, path, &body)
                    .await
            }
            MdmAction::LostMode {
                enable,
                path,
                message,
                phone,
            } => {
                let body = serde_json::json!({
                    "message": message,
                    "phoneNumber": phone,
                    "footnote": "badgedock",
                });
                let what = if *enable {
                    "enable Lost Mode on"
                } else {
                    "clear Lost Mode on"
                };
                self.device_request(device, what, Method::PUT, path, &body)
                    .await
            }
        }
    }

    async fn wipe_pending(&self, device: &DeviceKey) -> Result<bool, MdmError> {
        Ok(self.fetch_device(device).await?.wipe_pending())
    }
}

impl UemClient {
    /// GETs the device by alternate id, trying each spelling of its identifier.
    async fn fetch_device(&self, device: &DeviceKey) -> Result<DeviceV1, MdmError> {
        let operation = format!("look up device {device}");
        let search_by = match device.platform {
            Platform::Apple => "Udid",
            Platform::Android => "Serialnumber",
        };
        let mut not_found = String::from("no device with this identifier");
        for candidate in identifier_spellings(device) {
            let response = self
                .exchange(
                    &operation,
                    Method::GET,
                    "/API/mdm/devices",
                    &[("searchby", search_by), ("id", &candidate)],
                    1,
                )
                .await?;
            let empty = response.body.iter().all(u8::is_ascii_whitespace);
            if response.status == StatusCode::NO_CONTENT || (response.status.is_success() && empty)
            {
                continue;
            }
            if response.status == StatusCode::NOT_FOUND {
                let parsed = ApiErrorBody::parse(&response.body);
                if parsed.kind != BodyKind::Html {
                    not_found = self.scrub(&parsed.message);
                    continue;
                }
            }
            if !response.status.is_success() {
                return Err(self.status_error(&operation, response.status, &response.body));
            }
            let parsed: DeviceV1 = parse_json(&operation, &response.body)?;
            let id = parsed.numeric_id().ok_or_else(|| MdmError::BadResponse {
                operation: operation.clone(),
                detail: "the device has no Id".into(),
            })?;
            lock(&self.inner.caches).devices.insert(device.clone(), id);
            return Ok(parsed);
        }
        Err(MdmError::DeviceNotFound {
            device: device.id.clone(),
            message: not_found,
        })
    }

    /// The device id, from the cache when known; the flag says whether it was cached.
    async fn device_id(&self, device: &DeviceKey) -> Result<(i64, bool), MdmError> {
        if let Some(id) = lock(&self.inner.caches).devices.get(device).copied() {
            return Ok((id, true));
        }
        let found = self.fetch_device(device).await?;
        let id = found.numeric_id().ok_or_else(|| MdmError::BadResponse {
            operation: format!("look up device {device}"),
            detail: "the device has no Id".into(),
        })?;
        Ok((id, false))
    }

    /// The user id, from the cache when known; the flag says whether it was cached.
    async fn user_id(&self, username: &Username) -> Result<(i64, bool), MdmError> {
        if let Some(id) = lock(&self.inner.caches).users.get(username).copied() {
            return Ok((id, true));
        }
        let operation = format!("look up user {username}");
        // Substring search on the server: keep only the exact (case-insensitive, as
        // Workspace ONE compares user names), active account(s).
        let mut exact_active = Vec::new();
        for user in self.accounts_named(username).await? {
            if !user.is_active() {
                continue;
            }
            let id = user
                .id
                .map(|id| id.value)
                .ok_or_else(|| MdmError::BadResponse {
                    operation: operation.clone(),
                    detail: format!("the account \"{username}\" has no Id"),
                })?;
            exact_active.push((id, user.security_type));
        }
        exact_active.dedup();
        if exact_active.len() > 1 {
            if let Some(preferred) = self.inner.preferred_security_type {
                let of_type: Vec<_> = exact_active
                    .iter()
                    .filter(|(_, security_type)| *security_type == Some(preferred))
                    .copied()
                    .collect();
                if of_type.len() == 1 {
                    exact_active = of_type;
                }
            }
        }
        let exact_active: Vec<i64> = exact_active.into_iter().map(|(id, _)| id).collect();
        match exact_active.as_slice() {
            [] => Err(MdmError::NoSuchUser {
                username: username.clone(),
            }),
            [id] => {
                lock(&self.inner.caches).users.insert(username.clone(), *id);
                Ok((*id, false))
            }
            several => Err(MdmError::AmbiguousUser {
                username: username.clone(),
                matches: several.len(),
            }),
        }
    }

    /// The enrolment-user PATCH (version 2), retried once with fresh ids when a cached id
    /// turns out stale (404), then the optional verifying GET.
    async fn assign(&self, device: &DeviceKey, username: &Username) -> Result<(), MdmError> {
        let operation = format!("assign device {device} to {username}");
        let mut device_id = 0;
        for attempt in 0..2 {
            let (found_device, device_cached) = self.device_id(device).await?;
            let (user_id, user_cached) = self.user_id(username).await?;
            device_id = found_device;
            let path = format!("/API/mdm/devices/{device_id}/enrollmentuser/{user_id}");
            match self.call(&operation, Method::PATCH, &path, &[], 2).await {
                Ok(_) => break,
                Err(err)
                    if attempt == 0 && is_not_found(&err) && (device_cached || user_cached) =>
                {
                    tracing::info!(%device, %username, "cached Workspace ONE ids are stale; looking them up again");
                    let mut caches = lock(&self.inner.caches);
                    caches.devices.remove(device);
                    caches.users.remove(username);
                }
                Err(err) => return Err(err),
            }
        }
        if self.inner.verify_after_assign {
            let verify = format!("verify the enrolment user of device {device}");
            let response = self
                .call(
                    &verify,
                    Method::GET,
                    &format!("/API/mdm/devices/{device_id}"),
                    &[],
                    1,
                )
                .await?;
            let found: DeviceV1 = parse_json(&verify, &response.body)?;
            if found.enrollment_user().as_ref() != Some(username) {
                return Err(MdmError::VerifyFailed {
                    device: device.id.clone(),
                    expected: username.clone(),
                    found: found.user_name,
                });
            }
        }
        Ok(())
    }

    /// A call on a configured path (`{id}` and `{uuid}` replaced by the device's) with a
    /// JSON body. The device is looked up first: its UUID is not cached.
    async fn device_request(
        &self,
        device: &DeviceKey,
        what: &str,
        method: Method,
        template: &str,
        body: &serde_json::Value,
    ) -> Result<(), MdmError> {
        let operation = format!("{what} device {device}");
        let found = self.fetch_device(device).await?;
        let id = found.numeric_id().ok_or_else(|| MdmError::BadResponse {
            operation: operation.clone(),
            detail: "the device has no Id".into(),
        })?;
        let uuid = found.uuid.clone().unwrap_or_default();
        if template.contains("{uuid}") && uuid.is_empty() {
            return Err(MdmError::BadResponse {
                operation,
                detail: "the device has no Uuid, which the configured path needs".into(),
            });
        }
        let path = template
            .replace("{id}", &id.to_string())
            .replace("{uuid}", &uuid);
        let body = body.to_string();
        let response = self
            .exchange_with(&operation, method, &path, &[], 1, Some(&body))
            .await?;
        if response.status.is_success() {
            Ok(())
        } else {
            Err(self.status_error(&operation, response.status, &response.body))
        }
    }

    /// A call on `/API/mdm/devices/{id}/…`, retried once with a fresh id when the cached
    /// one turns out stale (404).
    async fn device_call(
        &self,
        device: &DeviceKey,
        operation: &str,
        method: Method,
        path: impl Fn(i64) -> String + Send,
        query: &[(&str, &str)],
        version: u8,
    ) -> Result<(), MdmError> {
        for attempt in 0..2 {
            let (device_id, cached) = self.device_id(device).await?;
            match self
                .call(operation, method.clone(), &path(device_id), query, version)
                .await
            {
                Ok(_) => return Ok(()),
                Err(err) if attempt == 0 && cached && is_not_found(&err) => {
                    lock(&self.inner.caches).devices.remove(device);
                }
                Err(err) => return Err(err),
            }
        }
        Err(MdmError::DeviceNotFound {
            device: device.id.clone(),
            message: "not found after looking it up again".into(),
        })
    }
}

/// The spellings of a device identifier to try, most likely first.
fn identifier_spellings(device: &DeviceKey) -> Vec<String> {
    if device.platform == Platform::Android {
        return vec![device.id.trim().to_string()];
    }
    let normalized = crate::domain::normalize_udid(&device.id);
    let compact: String = normalized.chars().filter(|c| *c != '-').collect();
    let mut spellings = vec![normalized.clone()];
    if compact != normalized {
        spellings.push(compact);
    }
    spellings
}

fn is_not_found(err: &MdmError) -> bool {
    matches!(err, MdmError::Rejected { status: 404, .. })
}

fn parse_json<T: serde::de::DeserializeOwned>(operation: &str, body: &[u8]) -> Result<T, MdmError> {
    serde_json::from_slice(body).map_err(|err| MdmError::BadResponse {
        operation: operation.to_string(),
        detail: format!("the body is not the expected JSON ({err})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udid_spellings() {
        let modern = DeviceKey::apple_from_usb_serial("00008110000a1b2c3d4e801e");
        assert_eq!(
            identifier_spellings(&modern),
            vec![
                "00008110-000A1B2C3D4E801E".to_string(),
                "00008110000A1B2C3D4E801E".to_string()
            ]
        );
        let old = DeviceKey::apple_from_usb_serial(&"b".repeat(40));
        assert_eq!(identifier_spellings(&old), vec!["B".repeat(40)]);
        let android = DeviceKey::android(" R58N12 ");
        assert_eq!(identifier_spellings(&android), vec!["R58N12".to_string()]);
    }
}
