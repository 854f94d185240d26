//! What can go wrong talking to Workspace ONE, typed by what the caller does about it.
//!
//! The outbox worker only needs [`MdmError::class`]: retry later ([`ErrorClass::Transient`],
//! honouring `Retry-After`), give up and show the reason ([`ErrorClass::Rejected`]), or
//! stop and alert an operator because the credentials are wrong
//! ([`ErrorClass::Unauthorized`]). The variants keep enough detail for the screen and the
//! audit. No variant ever holds a secret: server messages are scrubbed of the tenant code,
//! client secret, password and tokens before they are stored here (a wrong tenant code is
//! echoed back by Workspace ONE in its 403 message).

use std::fmt;
use std::time::Duration;

use crate::domain::Username;

/// What the caller should do with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later: timeouts, connection errors, 5xx, 429, unreadable answers.
    Transient {
        /// How long the server asked us to wait (`Retry-After`, or the rate-limit reset
        /// when the quota is spent), if it said.
        retry_after: Option<Duration>,
    },
    /// Workspace ONE refused this request for good (400/404, the exact-user rule):
    /// retrying the same request will not help; show the message.
    Rejected,
    /// The credentials or the tenant code are wrong (401/403): every call will fail
    /// until an operator fixes the configuration key named in the message.
    Unauthorized,
}

/// An error from the Workspace ONE client. `Display` says what happened and what to do;
/// neither `Display` nor `Debug` ever contains a secret or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MdmError {
    /// No answer within the configured timeout (`uem.request-timeout-ms`).
    #[error("Workspace ONE did not answer in time ({operation}); it will be tried again (uem.request-timeout-ms)")]
    Timeout {
        /// What was being done.
        operation: String,
    },
    /// The connection failed (DNS, refused, TLS, proxy, reset).
    #[error("cannot reach Workspace ONE ({operation}): {detail}; check uem.base-url, the network and any proxy (HTTPS_PROXY)")]
    Unreachable {
        /// What was being done.
        operation: String,
        /// The transport error, without URL or credentials.
        detail: String,
    },
    /// HTTP 5xx.
    #[error("Workspace ONE failed ({operation}): HTTP {status}{}: {message}; it will be tried again", code_suffix(.error_code))]
    ServerError {
        /// What was being done.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// `errorCode` from a JSON body, if any.
        error_code: Option<i64>,
        /// `message` from the body, or a summary of a non-JSON body.
        message: String,
    },
    /// HTTP 429, or the rate-limit quota is spent.
    #[error("Workspace ONE is rate limiting ({operation}): HTTP 429{}", retry_suffix(.retry_after))]
    RateLimited {
        /// What was being done.
        operation: String,
        /// How long to wait, when the server said.
        retry_after: Option<Duration>,
    },
    /// A success status with a body that is not what the API documents (malformed JSON,
    /// missing `Id`), or a status the client does not expect.
    #[error("Workspace ONE sent an answer badgedock cannot read ({operation}): {detail}; it will be tried again")]
    BadResponse {
        /// What was being done.
        operation: String,
        /// What was wrong with it.
        detail: String,
    },
    /// HTTP 400/404/409… with `errorCode` and `message` when the body had them.
    #[error("Workspace ONE refused {operation}: HTTP {status}{}: {message}", code_suffix(.error_code))]
    Rejected {
        /// What was being done.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// `errorCode` from a JSON body, if any.
        error_code: Option<i64>,
        /// `message` from the body, or a summary of a non-JSON body.
        message: String,
    },
    /// No device with this UDID or serial number is enrolled.
    #[error("Workspace ONE does not know device {device}: {message}; check that it is enrolled in this tenant")]
    DeviceNotFound {
        /// The UDID or serial number asked for.
        device: String,
        /// What the server said.
        message: String,
    },
    /// No active account has exactly this username (DESIGN invariant 4).
    #[error("no such user: Workspace ONE has no active account named exactly \"{username}\" (names compared without regard to case); check the badge directory or the Workspace ONE user")]
    NoSuchUser {
        /// The username asked for.
        username: Username,
    },
    /// Several active accounts have exactly this username (DESIGN invariant 4).
    #[error("ambiguous user: Workspace ONE has {matches} active accounts named exactly \"{username}\" (names compared without regard to case); refusing to guess, remove or deactivate the duplicate in Workspace ONE")]
    AmbiguousUser {
        /// The username asked for.
        username: Username,
        /// How many exact matches there were.
        matches: usize,
    },
    /// The verifying GET after an enrolment-user change shows another user.
    #[error("the enrolment user of device {device} is {} after the change, not \"{expected}\"; it will be tried again", found_text(.found))]
    VerifyFailed {
        /// The device.
        device: String,
        /// The username that was set.
        expected: Username,
        /// What Workspace ONE now reports.
        found: Option<String>,
    },
    /// HTTP 401/403: wrong credentials, tenant code, or missing API rights.
    #[error("Workspace ONE refused the credentials ({operation}): HTTP {status}{}: {message}; check {config_key}", code_suffix(.error_code))]
    Unauthorized {
        /// What was being done.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// `errorCode` from a JSON body, if any.
        error_code: Option<i64>,
        /// `message` from the body (scrubbed), or a summary.
        message: String,
        /// The configuration key(s) to check.
        config_key: &'static str,
    },
    /// The client could not be built from the configuration.
    #[error("cannot set up the Workspace ONE client: {key}: {detail}")]
    Setup {
        /// The configuration key at fault.
        key: &'static str,
        /// What is wrong and what to do.
        detail: String,
    },
}

impl MdmError {
    /// What the caller should do with this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            MdmError::Timeout { .. }
            | MdmError::Unreachable { .. }
            | MdmError::ServerError { .. }
            | MdmError::BadResponse { .. }
            | MdmError::VerifyFailed { .. } => ErrorClass::Transient { retry_after: None },
            MdmError::RateLimited { retry_after, .. } => ErrorClass::Transient {
                retry_after: *retry_after,
            },
            MdmError::Rejected { .. }
            | MdmError::DeviceNotFound { .. }
            | MdmError::NoSuchUser { .. }
            | MdmError::AmbiguousUser { .. }
            | MdmError::Setup { .. } => ErrorClass::Rejected,
            MdmError::Unauthorized { .. } => ErrorClass::Unauthorized,
        }
    }

    /// True for [`ErrorClass::Transient`].
    pub fn is_transient(&self) -> bool {
        matches!(self.class(), ErrorClass::Transient { .. })
    }
}

fn found_text(found: &Option<String>) -> String {
    match found {
        Some(name) => format!("\"{name}\""),
        None => "nobody".to_string(),
    }
}

fn code_suffix(error_code: &Option<i64>) -> String {
    match error_code {
        Some(code) => format!(" (errorCode {code})"),
        None => String::new(),
    }
}

fn retry_suffix(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(", retry after {} s", wait.as_secs_f64().ceil() as u64),
        None => ", no Retry-After given".to_string(),
    }
}

/// How an error body was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// A JSON object or value.
    Json,
    /// An HTML page (IIS error pages, proxies, load balancers).
    Html,
    /// Any other text, or bytes that are not UTF-8.
    Text,
    /// Nothing at all.
    Empty,
}

/// The useful part of an error body, whatever it was written in.
///
/// Workspace ONE answers `{"errorCode": n, "message": "…", "activityId": "…"}`, but an
/// unknown route gets an IIS HTML page, an expired token may get an empty body, and
/// ASP.NET API Versioning answers `{"error": {"code": "…", "message": "…"}}`.
/// [`ApiErrorBody::parse`] reads all of them and never fails.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiErrorBody {
    /// How the body was written.
    pub kind: BodyKind,
    /// `errorCode` (or `ErrorCode`), when the body had a numeric one.
    pub error_code: Option<i64>,
    /// The message, the HTML page's title, the start of the text, or "(empty body)".
    pub message: String,
    /// `activityId`, for support cases with Omnissa.
    pub activity_id: Option<String>,
}

impl fmt::Debug for ApiErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiErrorBody")
            .field("kind", &self.kind)
            .field("error_code", &self.error_code)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

/// Longest message kept from a body; the rest is cut with `…`.
const MAX_MESSAGE_CHARS: usize = 300;

impl ApiErrorBody {
    /// Reads an error body of any shape. Never fails.
    pub fn parse(body: &[u8]) -> ApiErrorBody {
        let text = String::from_utf8_lossy(body);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return ApiErrorBody {
                kind: BodyKind::Empty,
                error_code: None,
                message: "(empty body)".to_string(),
                activity_id: None,
            };
        }
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed) {
            return ApiErrorBody::from_json(&value, trimmed);
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("<!doctype html")
            || lower.starts_with("<html")
            || lower.contains("<body")
        {
            let title = html_title(trimmed).unwrap_or_else(|| strip_tags(trimmed));
            return ApiErrorBody {
                kind: BodyKind::Html,
                error_code: None,
                message: truncate(&format!("an HTML page: {title}")),
                activity_id: None,
            };
        }
        ApiErrorBody {
            kind: BodyKind::Text,
            error_code: None,
            message: truncate(&collapse_whitespace(trimmed)),
            activity_id: None,
        }
    }

    fn from_json(value: &serde_json::Value, raw: &str) -> ApiErrorBody {
        let field = |names: &[&str]| -> Option<&serde_json::Value> {
            names
                .iter()
                .find_map(|name| value.get(*name))
                .filter(|v| !v.is_null())
        };
        let error_code =
            field(&["errorCode", "ErrorCode", "error_code"]).and_then(|code| match code {
                serde_json::Value::Number(number) => number.as_i64(),
                serde_json::Value::String(text) => text.trim().parse().ok(),
                _ => None,
            });
        let nested = value.get("error");
        let message = field(&["message", "Message", "error_description"])
            .and_then(|m| m.as_str().map(str::to_string))
            .or_else(|| match nested {
                // ASP.NET API Versioning: {"error": {"code": "...", "message": "..."}}.
                Some(serde_json::Value::Object(inner)) => {
                    let code = inner
                        .get("code")
                        .and_then(|c| c.as_str())
                        .unwrap_or_default();
                    let message = inner
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or_default();
                    Some(format!("{code} {message}").trim().to_string())
                }
                // OAuth: {"error": "invalid_client"}.
                Some(serde_json::Value::String(text)) => Some(text.clone()),
                _ => None,
            })
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| {
                format!(
                    "a JSON body without a message: {}",
                    collapse_whitespace(raw)
                )
            });
        let activity_id =
            field(&["activityId", "ActivityId"]).and_then(|a| a.as_str().map(str::to_string));
        ApiErrorBody {
            kind: BodyKind::Json,
            error_code,
            message: truncate(&collapse_whitespace(&message)),
            activity_id,
        }
    }
}

fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = lower[start..].find('>')? + start + 1;
    let close = lower[open_end..].find("</title")? + open_end;
    let title = collapse_whitespace(html.get(open_end..close)?);
    (!title.is_empty()).then_some(title)
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    collapse_whitespace(&out)
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_body() {
        let body = br#"{"errorCode": 1013, "message": "Tenant code XYZ does not identify an Organization Group.", "activityId": "d7a5"}"#;
        let parsed = ApiErrorBody::parse(body);
        assert_eq!(parsed.kind, BodyKind::Json);
        assert_eq!(parsed.error_code, Some(1013));
        assert!(parsed.message.starts_with("Tenant code"));
        assert_eq!(parsed.activity_id.as_deref(), Some("d7a5"));
    }

    #[test]
    fn versioning_and_oauth_shapes() {
        let versioning = ApiErrorBody::parse(
            br#"{"error":{"code":"UnsupportedApiVersion","message":"not v1"}}"#,
        );
        assert_eq!(versioning.message, "UnsupportedApiVersion not v1");
        let oauth = ApiErrorBody::parse(br#"{"error":"invalid_client"}"#);
        assert_eq!(oauth.message, "invalid_client");
        let other = ApiErrorBody::parse(b"[1,2]");
        assert!(other.message.contains("[1,2]"), "{other:?}");
    }

    #[test]
    fn html_empty_and_binary_bodies() {
        let html = ApiErrorBody::parse(b"<!DOCTYPE html><html><head><title>The resource cannot be found.</title></head><body>x</body></html>");
        assert_eq!(html.kind, BodyKind::Html);
        assert!(html.message.contains("The resource cannot be found."));
        assert_eq!(ApiErrorBody::parse(b"  \n").kind, BodyKind::Empty);
        let binary = ApiErrorBody::parse(&[0xff, 0xfe, 0x00, 0x41]);
        assert_eq!(binary.kind, BodyKind::Text);
        let long = ApiErrorBody::parse("x".repeat(5000).as_bytes());
        assert!(long.message.chars().count() <= MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn classes() {
        let limited = MdmError::RateLimited {
            operation: "x".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            limited.class(),
            ErrorClass::Transient {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert!(limited.to_string().contains("retry after 2 s"));
        let ambiguous = MdmError::AmbiguousUser {
            username: Username::new("bob"),
            matches: 2,
        };
        assert_eq!(ambiguous.class(), ErrorClass::Rejected);
        assert!(ambiguous.to_string().starts_with("ambiguous"));
    }
}
