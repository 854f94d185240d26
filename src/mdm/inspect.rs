//! Read-only questions `badgedock doctor` asks Workspace ONE: every account with a given
//! username (active or not, so that a duplicated or deactivated staging account is told
//! apart from a missing one) and a device's whole record (enrolment user, platform,
//! enrolment status, ownership). Nothing here changes the tenant or the id caches'
//! meaning; the device lookup remembers the device id like any other lookup.

use reqwest::{Method, StatusCode};

use crate::domain::{DeviceKey, Username};
use crate::mdm::model::{DeviceV1, UserSearchV1, UserV1};
use crate::mdm::{parse_json, MdmError, UemClient, MAX_USER_PAGES, USER_PAGE_SIZE};

impl UemClient {
    /// Every account whose `UserName` is `username` (compared without regard to case, as
    /// Workspace ONE does; otherwise exactly), active or not, in the order Workspace ONE
    /// lists them. The one paging loop over the user search: `user_id` and doctor use it.
    pub async fn accounts_named(&self, username: &Username) -> Result<Vec<UserV1>, MdmError> {
        let operation = format!("look up the accounts named {username}");
        let mut exact = Vec::new();
        let mut seen: i64 = 0;
        for page in 0..MAX_USER_PAGES {
            let page_text = page.to_string();
            let response = self
                .call(
                    &operation,
                    Method::GET,
                    "/API/system/users/search",
                    &[
                        ("username", username.as_str()),
                        ("page", &page_text),
                        ("pagesize", USER_PAGE_SIZE),
                    ],
                    1,
                )
                .await?;
            if response.status == StatusCode::NO_CONTENT
                || response.body.iter().all(u8::is_ascii_whitespace)
            {
                break;
            }
            let result: UserSearchV1 = parse_json(&operation, &response.body)?;
            let n_users = result.users.len();
            seen += i64::try_from(n_users).unwrap_or(i64::MAX);
            exact.extend(result.users.into_iter().filter(|user| {
                user.user_name
                    .as_deref()
                    .is_some_and(|name| username.same_as(name))
            }));
            if n_users == 0 || result.total.is_none_or(|total| seen >= total) {
                break;
            }
        }
        Ok(exact)
    }

    /// The device's whole v1 record, looked up by UDID (both spellings) or serial number.
    /// [`MdmError::DeviceNotFound`] when Workspace ONE does not know it.
    pub async fn device_details(&self, device: &DeviceKey) -> Result<DeviceV1, MdmError> {
        self.fetch_device(device).await
    }
}
