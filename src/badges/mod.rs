//! Badge identity in memory: what a reader read, how a site's format rule turns it into
//! a badge number, and what the directory answered. No I/O happens here.
//!
//! Readers produce a [`RawBadge`] in the order the hardware returned it; the reader's
//! [`format::FormatRule`] turns it into a [`BadgeNumber`]; a directory answers with a
//! [`Resolution`]; the station's [`Policy`] may still deny the user.

pub mod format;
pub mod wiegand;

use serde::{Deserialize, Serialize};

use crate::domain::{BadgeNumber, User};

/// A badge exactly as a reader delivered it, before any site rule is applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawBadge {
    /// A contactless UID read with PC/SC GET DATA, bytes in the order returned.
    Uid(Vec<u8>),
    /// PACS (Wiegand) bits, left-aligned in `bits`, `bit_len` of them valid.
    Pacs {
        /// The bits, first transmitted bit in the most significant bit of byte 0.
        bits: Vec<u8>,
        /// How many bits are valid.
        bit_len: u32,
    },
    /// The text a keyboard-wedge reader typed, without its terminator.
    Text(String),
}

impl RawBadge {
    /// True for UIDs that are random per activation (4-byte UID starting `08`, per NXP
    /// AN10927): such a number identifies nobody and must never be enrolled.
    pub fn is_random_uid(&self) -> bool {
        matches!(self, RawBadge::Uid(bytes) if bytes.len() == 4 && bytes[0] == 0x08)
    }
}

/// What the directory (plus the station's policy) says about a badge number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Resolution {
    /// A known user who may check out devices at this station.
    Known {
        /// The user.
        user: User,
    },
    /// Nobody has this badge.
    Unknown,
    /// The user exists but the station's policy refuses them.
    Denied {
        /// The user, for the screen's wording.
        user: User,
        /// Why ("not in an allowed group", "badge on the deny list").
        reason: String,
    },
    /// The directory could not answer (server down and nothing cached).
    Unavailable {
        /// What went wrong, already free of secrets and badge numbers.
        reason: String,
    },
}

/// The station's own rules on top of the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// When not empty, only users in at least one of these groups may check out.
    pub allowed_groups: Vec<String>,
    /// Badge numbers refused whatever the directory says (lost or stolen badges).
    pub deny_badges: Vec<BadgeNumber>,
    /// Usernames refused whatever the directory says.
    pub deny_users: Vec<String>,
}

impl Policy {
    /// Applies the policy to a directory answer.
    pub fn apply(&self, badge: &BadgeNumber, resolution: Resolution) -> Resolution {
        let Resolution::Known { user } = resolution else {
            return resolution;
        };
        if self.deny_badges.iter().any(|denied| denied == badge) {
            return Resolution::Denied {
                user,
                reason: "badge is on the station's deny list".to_string(),
            };
        }
        if self
            .deny_users
            .iter()
            .any(|denied| denied == user.username.as_str())
        {
            return Resolution::Denied {
                user,
                reason: "user is on the station's deny list".to_string(),
            };
        }
        if !self.allowed_groups.is_empty()
            && !user
                .groups
                .iter()
                .any(|group| self.allowed_groups.contains(group))
        {
            return Resolution::Denied {
                user,
                reason: "user is not in a group allowed at this station".to_string(),
            };
        }
        Resolution::Known { user }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Username;

    fn user(groups: &[&str]) -> User {
        User {
            username: Username::new("alice"),
            display_name: "Alice".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            enroller: false,
        }
    }

    #[test]
    fn random_uid_detection() {
        assert!(RawBadge::Uid(vec![0x08, 1, 2, 3]).is_random_uid());
        assert!(!RawBadge::Uid(vec![0xDE, 0xAD, 0xBE, 0xEF]).is_random_uid());
        assert!(!RawBadge::Uid(vec![0x08, 1, 2, 3, 4, 5, 6]).is_random_uid());
    }

    #[test]
    fn policy_groups_and_deny_list() {
        let badge = BadgeNumber::new("DEADBEEF");
        let policy = Policy {
            allowed_groups: vec!["nursing".into()],
            deny_badges: vec![BadgeNumber::new("0BADBADGE")],
            deny_users: vec![],
        };
        assert!(matches!(
            policy.apply(
                &badge,
                Resolution::Known {
                    user: user(&["nursing"])
                }
            ),
            Resolution::Known { .. }
        ));
        assert!(matches!(
            policy.apply(
                &badge,
                Resolution::Known {
                    user: user(&["pharmacy"])
                }
            ),
            Resolution::Denied { .. }
        ));
        assert!(matches!(
            policy.apply(
                &BadgeNumber::new("0BADBADGE"),
                Resolution::Known {
                    user: user(&["nursing"])
                }
            ),
            Resolution::Denied { .. }
        ));
        assert_eq!(
            policy.apply(&badge, Resolution::Unknown),
            Resolution::Unknown
        );
    }
}
