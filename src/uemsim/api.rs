//! The Workspace ONE REST API as the simulator answers it: routing (paths and query
//! names case-insensitive, `Accept …;version=N`), PascalCase v1 bodies with
//! `{"Id":{"Value":n}}` ids, 204 on empty searches, substring user search, the
//! enrolment-user PATCH rules, commands, organization-group moves, and the IIS HTML page
//! for unknown routes.
//!
//! Facts and their confidence are in `ws1/API.md`; where the document marks a detail as
//! unverified ([I]) the choice made here is noted in a comment.

use serde_json::{json, Value};

use crate::uemsim::seed::{SimPlatform, Staging};
use crate::uemsim::state::{guid, mix, Sim, SimDevice, SimUser, State};

/// What the API was asked.
pub(crate) struct ApiRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    /// Query pairs with lower-cased names.
    pub(crate) query: Vec<(String, String)>,
    /// The `Accept` version (1 when none was given).
    pub(crate) version: u8,
    /// The request body (JSON for the message and Lost Mode calls).
    pub(crate) body: &'a str,
}

impl ApiRequest<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The answer, before headers.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: ReplyBody,
    /// `api-supported-versions`.
    pub(crate) supported: &'static str,
    pub(crate) device_id: Option<i64>,
    pub(crate) user_id: Option<i64>,
}

pub(crate) enum ReplyBody {
    Empty,
    Json(Value),
    Html(String),
}

impl Reply {
    fn json(status: u16, body: Value, supported: &'static str) -> Reply {
        Reply {
            status,
            body: ReplyBody::Json(body),
            supported,
            device_id: None,
            user_id: None,
        }
    }

    fn empty(status: u16, supported: &'static str) -> Reply {
        Reply {
            status,
            body: ReplyBody::Empty,
            supported,
            device_id: None,
            user_id: None,
        }
    }

    fn device(mut self, id: i64) -> Reply {
        self.device_id = Some(id);
        self
    }

    fn user(mut self, id: i64) -> Reply {
        self.user_id = Some(id);
        self
    }
}

/// `{"errorCode", "message", "activityId"}` with the given status.
pub(crate) fn error_reply(
    status: u16,
    error_code: i64,
    message: &str,
    supported: &'static str,
) -> Reply {
    Reply::json(status, error_body(error_code, message), supported)
}

pub(crate) fn error_body(error_code: i64, message: &str) -> Value {
    let activity = guid(0xac, mix(error_code.unsigned_abs() ^ message.len() as u64));
    json!({ "errorCode": error_code, "message": message, "activityId": activity })
}

/// The IIS page an unknown route gets (written for the simulator, in the shape of the
/// real one saved as `error_404_unknown_route.html`).
pub(crate) fn unknown_route_page(path: &str) -> String {
    let escaped = path
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!DOCTYPE html>\r\n<html>\r\n    <head>\r\n        <title>The resource cannot be found.</title>\r\n    </head>\r\n    <body bgcolor=\"white\">\r\n            <span><H1>Server Error in '/API' Application.<hr width=100% size=1 color=silver></H1>\r\n            <h2> <i>The resource cannot be found.</i> </h2></span>\r\n            <b> Description: </b>HTTP 404. The resource you are looking for (or one of its dependencies) could have been removed, had its name changed, or is temporarily unavailable.  Please review the following URL and make sure that it is spelled correctly.\r\n            <br><br>\r\n            <b> Requested URL: </b>{escaped}<br><br>\r\n    </body>\r\n</html>"
    )
}

/// The page a load balancer shows during an outage.
pub(crate) fn outage_page() -> String {
    "<!DOCTYPE html>\r\n<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1><p>The service is temporarily unavailable. Please try again later.</p></body></html>".to_string()
}

fn unknown_route(path: &str) -> Reply {
    Reply {
        status: 404,
        body: ReplyBody::Html(unknown_route_page(path)),
        supported: "",
        device_id: None,
        user_id: None,
    }
}

fn method_not_allowed(method: &str, supported: &'static str) -> Reply {
    // ASP.NET Web API's own answer for a known route and a wrong method.
    Reply::json(
        405,
        json!({ "Message": format!("The requested resource does not support http method '{method}'.") }),
        supported,
    )
}

fn unsupported_version(request: &ApiRequest<'_>, supported: &'static str) -> Reply {
    // [I] ASP.NET API Versioning's usual answer; the real one is unverified.
    Reply::json(
        400,
        json!({ "error": {
            "code": "UnsupportedApiVersion",
            "message": format!("The HTTP resource that matches the request URI '{}' does not support the API version '{}'.", request.path, request.version),
        }}),
        supported,
    )
}

fn version_ok(request: &ApiRequest<'_>, versions: &[u8]) -> bool {
    versions.contains(&request.version)
}

/// Device not found: the body saved from a real tenant (errorCode 5061).
fn device_not_found(supported: &'static str) -> Reply {
    error_reply(404, 5061, "Device not found for this request.", supported)
}

const V1: &str = "1";
const V12: &str = "1, 2";

/// Routes one API call. The caller has already authenticated it.
pub(crate) fn dispatch(sim: &Sim, request: &ApiRequest<'_>) -> Reply {
    let lower = request.path.to_ascii_lowercase();
    let segments: Vec<&str> = lower.split('/').filter(|s| !s.is_empty()).collect();
    let original: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method;
    let mut state = sim.lock();
    match segments.as_slice() {
        ["api", "mdm", "devices"] => match method {
            "GET" if version_ok(request, &[1, 2]) => get_device_by_alternate_id(&state, request),
            "GET" => unsupported_version(request, V12),
            _ => method_not_allowed(method, V12),
        },
        ["api", "mdm", "devices", "search"] => match method {
            "GET" if version_ok(request, &[1, 2]) => search_devices(&state, request),
            "GET" => unsupported_version(request, V12),
            _ => method_not_allowed(method, V12),
        },
        ["api", "mdm", "devices", "commands"] => match method {
            "POST" if version_ok(request, &[1]) => {
                let found = find_by_alternate_id(&state, request).map(|d| d.id);
                match found {
                    Some(id) => command(&mut state, id, request),
                    None => device_not_found(V1),
                }
            }
            "POST" => unsupported_version(request, V1),
            _ => method_not_allowed(method, V1),
        },
        ["api", "mdm", "devices", "udid", _] => match method {
            "GET" if version_ok(request, &[1]) => {
                let udid = original.get(4).copied().unwrap_or_default();
                let found = state.devices.values().find(|d| {
                    d.udid
                        .as_deref()
                        .is_some_and(|u| u.eq_ignore_ascii_case(udid))
                });
                match found {
                    Some(device) => {
                        Reply::json(200, device_json(&state, device, false), V1).device(device.id)
                    }
                    None => device_not_found(V1),
                }
            }
            "GET" => unsupported_version(request, V1),
            _ => method_not_allowed(method, V1),
        },
        ["api", "mdm", "devices", id] => match method {
            "GET" if version_ok(request, &[1]) => {
                match id.parse::<i64>().ok().and_then(|id| state.devices.get(&id)) {
                    Some(device) => {
                        Reply::json(200, device_json(&state, device, false), V1).device(device.id)
                    }
                    None => device_not_found(V1),
                }
            }
            "GET" => unsupported_version(request, V1),
            _ => method_not_allowed(method, V1),
        },
        ["api", "mdm", "devices", id, "enrollmentuser", user_id] => match method {
            "PATCH" if version_ok(request, &[2]) => change_enrollment_user(&mut state, id, user_id),
            "PATCH" => unsupported_version(request, "2"),
            _ => method_not_allowed(method, "2"),
        },
        ["api", "mdm", "devices", id, "commands"] => match method {
            "POST" if version_ok(request, &[1]) => match id.parse::<i64>() {
                Ok(id) if state.devices.contains_key(&id) => command(&mut state, id, request),
                _ => device_not_found(V1),
            },
            "POST" => unsupported_version(request, V1),
            _ => method_not_allowed(method, V1),
        },
        ["api", "mdm", "devices", id, "commands", "changeorganizationgroup", group] => match method
        {
            "PUT" if version_ok(request, &[1]) => change_group(&mut state, id, group),
            "PUT" => unsupported_version(request, V1),
            _ => method_not_allowed(method, V1),
        },
        // UNVERIFIED: no public reference for these two was found (ws1/API.md lists
        // neither); badgedock keeps their paths configurable (`lending.message-path`,
        // `lending.lost-mode-on-path`, `lending.lost-mode-off-path`) and the simulator
        // answers the defaults.
        ["api", "mdm", "devices", id, "messages", "push"] => match method {
            "POST" => match id.parse::<i64>() {
                Ok(id) if state.devices.contains_key(&id) => push_message(&mut state, id, request),
                _ => device_not_found(V1),
            },
            _ => method_not_allowed(method, V1),
        },
        ["api", "mdm", "devices", uuid, "lostmode", switch @ ("enable" | "disable")] => {
            match method {
                "PUT" => {
                    let found = state
                        .devices
                        .values()
                        .find(|d| d.uuid.eq_ignore_ascii_case(uuid))
                        .map(|d| d.id);
                    match found {
                        Some(id) => lost_mode(&mut state, id, *switch == "enable", request),
                        None => device_not_found(V1),
                    }
                }
                _ => method_not_allowed(method, V1),
            }
        }
        ["api", "system", "users", "search"] => match method {
            "GET" if version_ok(request, &[1, 2]) => search_users(&state, request),
            "GET" => unsupported_version(request, V12),
            _ => method_not_allowed(method, V12),
        },
        ["api", "system", "users", id] => match method {
            "GET" if version_ok(request, &[1]) => {
                match id.parse::<i64>().ok().and_then(|id| state.users.get(&id)) {
                    Some(user) => Reply::json(200, user_json(&state, user), V1).user(user.id),
                    None => error_reply(404, 404, "User not found.", V1),
                }
            }
            "GET" => unsupported_version(request, V1),
            _ => method_not_allowed(method, V1),
        },
        _ => unknown_route(request.path),
    }
}

fn find_by_alternate_id<'s>(state: &'s State, request: &ApiRequest<'_>) -> Option<&'s SimDevice> {
    let search_by = request.param("searchby")?.to_ascii_lowercase();
    let value = request.param("id")?.trim();
    state
        .devices
        .values()
        .find(|device| match search_by.as_str() {
            // [I] Matching ignores case but not the hyphen: a UDID must be spelled as stored.
            "udid" => device
                .udid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(value)),
            "serialnumber" => device.serial_number.eq_ignore_ascii_case(value),
            "macaddress" => device.mac_address.eq_ignore_ascii_case(value),
            "deviceid" => value.parse::<i64>().is_ok_and(|id| id == device.id),
            _ => false,
        })
}

fn get_device_by_alternate_id(state: &State, request: &ApiRequest<'_>) -> Reply {
    let search_by = request
        .param("searchby")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !matches!(
        search_by.as_str(),
        "udid" | "serialnumber" | "macaddress" | "imeinumber" | "easid" | "deviceid"
    ) {
        return error_reply(
            400,
            400,
            "Invalid searchby value. Supported values: Macaddress, Udid, Serialnumber, ImeiNumber, EasId, DeviceId.",
            V12,
        );
    }
    if request.param("id").is_none_or(|id| id.trim().is_empty()) {
        return error_reply(400, 400, "The id parameter is required.", V12);
    }
    match find_by_alternate_id(state, request) {
        Some(device) => Reply::json(200, device_json(state, device, false), V12).device(device.id),
        // [I] The v1 alternate-id 404 body is unverified; the v2 one is used.
        None => device_not_found(V12),
    }
}

/// Page and page size (0-based page, size capped at 500 like the real search).
fn paging(request: &ApiRequest<'_>) -> (usize, usize) {
    let page = request
        .param("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let page_size = request
        .param("pagesize")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|size| *size > 0)
        .unwrap_or(500)
        .min(500);
    (page, page_size)
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn search_devices(state: &State, request: &ApiRequest<'_>) -> Reply {
    let matches: Vec<&SimDevice> = state
        .devices
        .values()
        .filter(|d| {
            request
                .param("user")
                .is_none_or(|u| contains_ci(&d.username, u))
        })
        .filter(|d| {
            request
                .param("platform")
                .is_none_or(|p| d.platform.api_name().eq_ignore_ascii_case(p))
        })
        .filter(|d| {
            request
                .param("model")
                .is_none_or(|m| contains_ci(&d.model, m))
        })
        .filter(|d| {
            request
                .param("lgid")
                .is_none_or(|g| g.parse::<i64>().is_ok_and(|g| g == d.group_id))
        })
        .collect();
    if matches.is_empty() {
        // Recorded on SaaS: an empty search is 204 with no body.
        return Reply::empty(204, V12);
    }
    let (page, page_size) = paging(request);
    let devices: Vec<Value> = matches
        .iter()
        .skip(page.saturating_mul(page_size))
        .take(page_size)
        .map(|d| device_json(state, d, true))
        .collect();
    Reply::json(
        200,
        json!({ "Devices": devices, "Page": page, "PageSize": page_size, "Total": matches.len() }),
        V12,
    )
}

fn search_users(state: &State, request: &ApiRequest<'_>) -> Reply {
    // Substring, case-insensitive: the strictest reading of the real search (API.md §3).
    let matches: Vec<&SimUser> = state
        .users
        .values()
        .filter(|u| {
            request
                .param("username")
                .is_none_or(|n| contains_ci(&u.username, n))
        })
        .filter(|u| {
            request
                .param("firstname")
                .is_none_or(|n| contains_ci(&u.first_name, n))
        })
        .filter(|u| {
            request
                .param("lastname")
                .is_none_or(|n| contains_ci(&u.last_name, n))
        })
        .filter(|u| {
            request
                .param("email")
                .is_none_or(|n| contains_ci(&u.email, n))
        })
        .filter(|u| {
            request
                .param("status")
                .is_none_or(|s| match s.to_ascii_lowercase().as_str() {
                    "active" => u.active,
                    "inactive" => !u.active,
                    _ => true,
                })
        })
        .collect();
    if matches.is_empty() {
        // [I] Probably 204 like the device search.
        return Reply::empty(204, V12);
    }
    let (page, page_size) = paging(request);
    let users: Vec<Value> = matches
        .iter()
        .skip(page.saturating_mul(page_size))
        .take(page_size)
        .map(|u| user_json(state, u))
        .collect();
    Reply::json(
        200,
        json!({ "Users": users, "Page": page, "PageSize": page_size, "Total": matches.len() }),
        V12,
    )
}

fn change_enrollment_user(state: &mut State, device_id: &str, user_id: &str) -> Reply {
    let device_id = device_id.parse::<i64>().ok();
    let user_id = user_id.parse::<i64>().ok();
    let Some(device) = device_id.and_then(|id| state.devices.get(&id)) else {
        return device_not_found("2");
    };
    let device_id = device.id;
    let Some(user) = user_id.and_then(|id| state.users.get(&id)).cloned() else {
        // [I] Code and message unverified.
        return error_reply(404, 404, "Enrollment user not found.", "2").device(device_id);
    };
    if device.platform != SimPlatform::Apple {
        return error_reply(
            400,
            400,
            "The checkout action is supported only for MacOS and iOS devices.",
            "2",
        )
        .device(device_id)
        .user(user.id);
    }
    let multi_staged = device
        .staged_by
        .and_then(|staging| state.users.get(&staging))
        .is_some_and(|staging| staging.staging == Staging::Multi);
    if !multi_staged {
        return error_reply(
            400,
            400,
            "Device is not enrolled to Multi-Staging enrollment User.",
            "2",
        )
        .device(device_id)
        .user(user.id);
    }
    if let Some(device) = state.devices.get_mut(&device_id) {
        device.user_id = user.id;
        device.username = user.username.clone();
    }
    Reply::empty(200, "2").device(device_id).user(user.id)
}

/// v1 `command=` values from the published spec.
const COMMANDS: &[&str] = &[
    "Lock",
    "EnterpriseWipe",
    "DeviceWipe",
    "DeviceQuery",
    "ClearPasscode",
    "SyncDevice",
    "StopAirPlay",
    "ScheduleOsUpdate",
    "CustomMdmCommand",
    "InstallPackagedMacOSXAgent",
    "SoftReset",
    "Shutdown",
    "EnterpriseReset",
    "SyncSensors",
    "OsUpdateStatus",
    "RotateFileVaultKey",
    "RotateDEPAdminPassword",
    "ResetBiosPassword",
    "UserList",
    "SyncWorkflows",
    "InstallSeededScepProfile",
];

fn command(state: &mut State, device_id: i64, request: &ApiRequest<'_>) -> Reply {
    let asked = request.param("command").unwrap_or_default();
    let Some(name) = COMMANDS.iter().find(|c| c.eq_ignore_ascii_case(asked)) else {
        return error_reply(400, 400, &format!("Invalid command '{asked}'."), V1).device(device_id);
    };
    if let Some(device) = state.devices.get_mut(&device_id) {
        device.commands.push((*name).to_string());
        match *name {
            "EnterpriseWipe" => {
                device.enrollment_status = "EnterpriseWipePending".into();
                device.wiped_at = Some(tokio::time::Instant::now());
            }
            "DeviceWipe" => {
                device.enrollment_status = "DeviceWipePending".into();
                device.wiped_at = Some(tokio::time::Instant::now());
            }
            _ => {}
        }
    }
    // [V1] 202 with an empty body (the alternate-id form); assumed for the per-id form.
    Reply::empty(202, V1).device(device_id)
}

/// UNVERIFIED route: a message shown on the device. 202 with an empty body.
fn push_message(state: &mut State, device_id: i64, request: &ApiRequest<'_>) -> Reply {
    let body: Value = serde_json::from_str(request.body).unwrap_or(Value::Null);
    let Some(text) = body.get("MessageBody").and_then(Value::as_str) else {
        return error_reply(400, 400, "MessageBody is required.", V1).device(device_id);
    };
    if let Some(device) = state.devices.get_mut(&device_id) {
        device.messages.push(text.to_string());
    }
    Reply::empty(202, V1).device(device_id)
}

/// UNVERIFIED route: Lost Mode on or off (iOS only here: 400 for Android). 202.
fn lost_mode(state: &mut State, device_id: i64, enable: bool, request: &ApiRequest<'_>) -> Reply {
    let body: Value = serde_json::from_str(request.body).unwrap_or(Value::Null);
    let Some(device) = state.devices.get_mut(&device_id) else {
        return device_not_found(V1);
    };
    if device.platform != SimPlatform::Apple {
        return error_reply(400, 400, "Lost Mode is available for iOS devices only.", V1)
            .device(device_id);
    }
    if enable && body.get("message").and_then(Value::as_str).is_none() {
        return error_reply(400, 400, "message is required.", V1).device(device_id);
    }
    device.lost_mode = enable;
    device.commands.push(if enable {
        "EnableLostMode".into()
    } else {
        "DisableLostMode".into()
    });
    Reply::empty(202, V1).device(device_id)
}

fn change_group(state: &mut State, device_id: &str, group: &str) -> Reply {
    let Some(device_id) = device_id
        .parse::<i64>()
        .ok()
        .filter(|id| state.devices.contains_key(id))
    else {
        return device_not_found(V1);
    };
    let Some(group_id) = group
        .parse::<i64>()
        .ok()
        .filter(|id| state.groups.contains_key(id))
    else {
        // [I] Code and message unverified.
        return error_reply(404, 404, "Organization group not found.", V1).device(device_id);
    };
    if let Some(device) = state.devices.get_mut(&device_id) {
        device.group_id = group_id;
    }
    Reply::empty(200, V1).device(device_id)
}

fn id_ref(id: i64, name: &str, uuid: &str) -> Value {
    json!({ "Id": { "Value": id }, "Name": name, "Uuid": uuid })
}

/// A v1 `Device`, with every key of the saved real body (`devices_search_v1_response.json`).
fn device_json(state: &State, device: &SimDevice, in_search: bool) -> Value {
    let group = state.groups.get(&device.group_id);
    let group_name = group.map(|g| g.name.clone()).unwrap_or_default();
    let group_uuid = group.map(|g| g.uuid.clone()).unwrap_or_default();
    let user = state.users.get(&device.user_id);
    let user_display = user
        .map(|u| {
            format!("{} {}", u.first_name, u.last_name)
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let user_uuid = user.map(|u| u.uuid.clone()).unwrap_or_default();
    let user_email = user.map(|u| u.email.clone()).unwrap_or_default();
    let apple = device.platform == SimPlatform::Apple;
    let mut body = json!({
        "Udid": device.udid.clone().unwrap_or_default(),
        "SerialNumber": device.serial_number,
        "MacAddress": device.mac_address,
        "Imei": "",
        "EasId": "",
        "AssetNumber": "",
        "DeviceFriendlyName": device.name,
        "DeviceReportedName": device.name,
        "LocationGroupId": id_ref(device.group_id, &group_name, &group_uuid),
        "LocationGroupName": group_name,
        "UserId": id_ref(device.user_id, &user_display, &user_uuid),
        "UserName": device.username,
        "DataProtectionStatus": if apple { 1 } else { 0 },
        "UserEmailAddress": user_email,
        "Ownership": device.ownership,
        "PlatformId": { "Id": { "Value": device.platform.api_id() }, "Name": device.platform.api_name() },
        "Platform": device.platform.api_name(),
        "ModelId": { "Id": { "Value": mix(device.model.len() as u64) % 200 + 1 }, "Name": device.model },
        "Model": device.model,
        "OperatingSystem": device.os_version,
        "PhoneNumber": "",
        "LastSeen": "2024-05-02T07:41:12.150",
        "EnrollmentStatus": device.enrollment_status,
        "ComplianceStatus": "Compliant",
        "CompromisedStatus": false,
        "LastEnrolledOn": "2024-03-11T09:12:44.720",
        "LastComplianceCheckOn": "0001-01-01T00:00:00.000",
        "LastCompromisedCheckOn": "2024-05-02T07:41:12.210",
    });
    let rest = json!({
        "IsSupervised": apple,
        "VirtualMemory": 0,
        "OEMInfo": if apple { "Apple Inc." } else { "samsung" },
        "IsDeviceDNDEnabled": false,
        "IsDeviceLocatorEnabled": false,
        "IsCloudBackupEnabled": false,
        "IsActivationLockEnabled": false,
        "IsNetworkTethered": false,
        "BatteryLevel": "87",
        "IsRoaming": false,
        "SystemIntegrityProtectionEnabled": false,
        "ProcessorArchitecture": 0,
        "TotalPhysicalMemory": 0,
        "AvailablePhysicalMemory": 0,
        "OSBuildVersion": "",
        "EnrollmentUserUuid": user_uuid,
        "ManagedBy": 1,
        "WifiSsid": "",
        "DepTokenSource": 0,
        "Id": { "Value": device.id },
        "Uuid": device.uuid,
    });
    if let (Value::Object(map), Value::Object(rest)) = (&mut body, rest) {
        map.extend(rest);
    }
    if in_search {
        if let Value::Object(map) = &mut body {
            map.insert("EasIds".into(), json!({}));
            map.insert("TimeZone".into(), json!(""));
        }
    }
    body
}

/// A v1 `User`.
fn user_json(state: &State, user: &SimUser) -> Value {
    let group = state.groups.get(&user.group_id);
    let (staging_mode, staging_enabled) = match user.staging {
        Staging::None => (0, false),
        Staging::Single => (1, true),
        Staging::Multi => (2, true),
    };
    let enrolled = state
        .devices
        .values()
        .filter(|d| d.user_id == user.id)
        .count();
    json!({
        "UserName": user.username,
        "Password": "",
        "FirstName": user.first_name,
        "LastName": user.last_name,
        "Status": user.active,
        "Email": user.email,
        "SecurityType": user.security_type,
        "ContactNumber": "",
        "DisplayName": format!("{} {}", user.first_name, user.last_name).trim(),
        "MobileNumber": "",
        "MessageType": 0,
        "EmailUserName": user.email,
        "Group": group.map(|g| g.name.clone()).unwrap_or_default(),
        "LocationGroupId": user.group_id.to_string(),
        "OrganizationGroupUuid": group.map(|g| g.uuid.clone()).unwrap_or_default(),
        "Role": "Full Access",
        "EnrolledDevicesCount": enrolled.to_string(),
        "MessageTemplateId": 0,
        "ExternalId": "",
        "StagingMode": staging_mode,
        "DeviceStagingEnabled": staging_enabled,
        "DeviceStagingType": staging_mode,
        "Id": { "Value": user.id },
        "Uuid": user.uuid,
    })
}
