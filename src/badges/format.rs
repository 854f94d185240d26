//! Per-reader format rules: a [`RawBadge`] becomes the site's [`BadgeNumber`].
//!
//! SKELETON: only `hex` is implemented; the badge-identity work (issue 7) completes the
//! rule set (reversed, decimal, Wiegand FC/CN, fixed width, strip prefix) and
//! [`renderings`].

use thiserror::Error;

use crate::badges::RawBadge;
use crate::domain::BadgeNumber;

/// A validated format rule, parsed from the config's `format = "…"` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatRule {
    text: String,
}

/// A format string in the config that is not a rule.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown badge format {0:?}: use hex, hex-reversed, decimal, decimal-reversed or wiegand26")]
pub struct FormatRuleError(pub String);

/// A badge that the rule cannot turn into a number (wrong kind of read, bad parity…).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct FormatError(pub String);

impl FormatRule {
    /// Parses a rule from its config text.
    pub fn parse(text: &str) -> Result<FormatRule, FormatRuleError> {
        match text {
            "hex" => Ok(FormatRule { text: text.to_string() }),
            other => Err(FormatRuleError(other.to_string())),
        }
    }

    /// The rule's config text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Applies the rule.
    pub fn apply(&self, raw: &RawBadge) -> Result<BadgeNumber, FormatError> {
        match raw {
            RawBadge::Uid(bytes) => Ok(BadgeNumber::new(hex_upper(bytes))),
            RawBadge::Text(text) => Ok(BadgeNumber::new(text.trim().to_ascii_uppercase())),
            RawBadge::Pacs { .. } => Err(FormatError("PACS bits need a wiegand rule".into())),
        }
    }
}

/// Every rendering of a read, labelled, for `badgedock readers --watch`.
pub fn renderings(raw: &RawBadge) -> Vec<(String, String)> {
    match raw {
        RawBadge::Uid(bytes) => vec![("hex".into(), hex_upper(bytes))],
        RawBadge::Text(text) => vec![("text".into(), text.clone())],
        RawBadge::Pacs { bits, .. } => vec![("bits".into(), hex_upper(bits))],
    }
}

/// Upper-case hex without separators.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
