//! The shared vocabulary: small validated newtypes that cross module boundaries.
//!
//! Nothing here does I/O. Identifiers that would otherwise be bare `String`s get their
//! own type so that a slot label can never be passed where a username is expected, and
//! so that a badge number can only be printed through its redacting `Display`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in time, in milliseconds since the Unix epoch.
///
/// The engine never reads the clock: the daemon stamps each input with one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// This timestamp moved `millis` milliseconds later (saturating).
    pub fn plus_millis(self, millis: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(millis))
    }

    /// This timestamp moved `seconds` seconds later (saturating).
    pub fn plus_seconds(self, seconds: i64) -> Timestamp {
        self.plus_millis(seconds.saturating_mul(1000))
    }

    /// Milliseconds from `earlier` to `self`, zero when `earlier` is later.
    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0).max(0)
    }
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value; callers validate where the value comes from outside.
            pub fn new(value: impl Into<String>) -> Self {
                $name(value.into())
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_newtype!(
    /// The configured name of a badge reader (`[[reader]] name`).
    ReaderName
);
string_newtype!(
    /// The label of a dock slot as printed on the cabinet (`slots = [{ label = "3" }]`).
    SlotLabel
);
string_newtype!(
    /// A USB port path as the kernel names it under `/sys/bus/usb/devices`, e.g. `1-1.4.2`.
    PortPath
);
/// A Workspace ONE username. Workspace ONE and directories treat user names without regard
/// to case, so equality, ordering and hashing ignore case (Unicode lower case); the text is
/// kept as written for display. Matching is still exact otherwise: `alice` is not `alice2`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Wraps a value; callers validate where the value comes from outside.
    pub fn new(value: impl Into<String>) -> Self {
        Username(value.into())
    }

    /// The value as text, as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form compared: lower case.
    pub fn folded(&self) -> String {
        self.0.to_lowercase()
    }

    /// True when `other` names the same account (case-insensitive, otherwise exact).
    pub fn same_as(&self, other: &str) -> bool {
        self.0 == other || self.0.to_lowercase() == other.to_lowercase()
    }
}

impl PartialEq for Username {
    fn eq(&self, other: &Self) -> bool {
        self.same_as(&other.0)
    }
}

impl Eq for Username {}

impl PartialOrd for Username {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Username {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.folded().cmp(&other.folded())
    }
}

impl std::hash::Hash for Username {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.folded().hash(state);
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The mobile platform of a docked device, as far as the station can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    /// iPhone, iPad (USB vendor `05ac`); identified by UDID.
    Apple,
    /// Any other vendor with a USB serial number; identified by serial number.
    Android,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Platform::Apple => "apple",
            Platform::Android => "android",
        })
    }
}

/// A device as the cabinet sees it: the platform plus the identifier Workspace ONE
/// stores for it (the UDID for Apple, in Workspace ONE's spelling; the serial number
/// for Android).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceKey {
    /// Which platform the identifier belongs to.
    pub platform: Platform,
    /// The UDID or serial number.
    pub id: String,
}

impl DeviceKey {
    /// An Apple device from the serial its USB descriptor carries.
    ///
    /// Newer iPhones report 24 hex digits over USB while Workspace ONE stores the UDID
    /// as `8 hex digits - 16 hex digits`; older ones use 40 hex digits in both places.
    /// The result is always the Workspace ONE form, upper-case.
    pub fn apple_from_usb_serial(serial: &str) -> DeviceKey {
        DeviceKey {
            platform: Platform::Apple,
            id: normalize_udid(serial),
        }
    }

    /// An Android (or other non-Apple) device from its serial number, trimmed.
    pub fn android(serial: &str) -> DeviceKey {
        DeviceKey {
            platform: Platform::Android,
            id: serial.trim().to_string(),
        }
    }
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// Spells a UDID the way Workspace ONE stores it: upper-case hex, with the hyphen after
/// the eighth digit for the 24-digit form. Anything that is not a known UDID shape is
/// returned trimmed and upper-cased, unchanged otherwise.
pub fn normalize_udid(raw: &str) -> String {
    let compact: String = raw
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let all_hex = compact.chars().all(|c| c.is_ascii_hexdigit());
    if all_hex && compact.len() == 24 {
        format!("{}-{}", &compact[..8], &compact[8..])
    } else if all_hex && compact.len() == 40 {
        compact
    } else {
        raw.trim().to_ascii_uppercase()
    }
}

/// A badge number as the site writes it, after the reader's format rule.
///
/// Its `Display` and `Debug` show only a redacted tail (`…3F9A`), so it can be logged
/// and shown without leaking the credential. Use [`BadgeNumber::expose`] only where the
/// full value is the point: the directory lookup and the store.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BadgeNumber(String);

impl BadgeNumber {
    /// Wraps an already formatted badge number.
    pub fn new(value: impl Into<String>) -> Self {
        BadgeNumber(value.into())
    }

    /// The full badge number. Callers must not log or display it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The short redacted form, `…` plus the last four characters.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

/// `…` plus the last four characters of `value` (all of it redacted when shorter than 6).
pub fn redact(value: &str) -> String {
    let n_chars = value.chars().count();
    if n_chars < 6 {
        return "…".to_string();
    }
    let tail: String = value.chars().skip(n_chars - 4).collect();
    format!("…{tail}")
}

impl fmt::Display for BadgeNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for BadgeNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BadgeNumber({})", self.redacted())
    }
}

/// A person the directory knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The Workspace ONE username the device is assigned to.
    pub username: Username,
    /// What the screen calls this person ("Alice Martin").
    pub display_name: String,
    /// Directory groups, for the station's allowed-groups policy.
    #[serde(default)]
    pub groups: Vec<String>,
    /// True when this badge may approve the enrolment of an unknown badge.
    #[serde(default)]
    pub enroller: bool,
}

/// A secret read from a file. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udid_forms() {
        assert_eq!(
            normalize_udid("00008110000a1b2c3d4e801e"),
            "00008110-000A1B2C3D4E801E"
        );
        assert_eq!(
            normalize_udid("00008110-000A1B2C3D4E801E"),
            "00008110-000A1B2C3D4E801E"
        );
        let forty = "a".repeat(40);
        assert_eq!(normalize_udid(&forty), "A".repeat(40));
        assert_eq!(normalize_udid(" odd "), "ODD");
    }

    #[test]
    fn badge_redaction() {
        let badge = BadgeNumber::new("DEADBEEF3F9A");
        assert_eq!(badge.to_string(), "…3F9A");
        assert_eq!(format!("{badge:?}"), "BadgeNumber(…3F9A)");
        assert_eq!(BadgeNumber::new("1234").to_string(), "…");
    }

    #[test]
    fn secret_never_prints() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?} {secret}").contains("hunter2"));
    }
}
