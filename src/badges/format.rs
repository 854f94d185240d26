//! Per-reader format rules: a [`RawBadge`] becomes the site's [`BadgeNumber`].
//!
//! The same card yields many numbers (readers.md 3.2): bytes as read or reversed, hex or
//! decimal, Wiegand facility code and card number, padded or truncated. A site picks one
//! with the reader's `format = "…"` key; [`FormatRule::parse`] checks it when the config is
//! loaded and [`FormatRule::apply`] runs it on every tap. [`renderings`] shows an installer
//! every candidate at once (`badgedock readers --watch`).
//!
//! # Grammar
//!
//! ```text
//! rule      = base *( ("|" / "+") modifier )      spaces around tokens are ignored
//! base      = "hex" / "hex-reversed" / "decimal" / "decimal-reversed" / "text"
//!           / "wiegand"                            layout chosen by bit length (26, 35, 37)
//!           / "wiegand26" / "h10301"               26-bit H10301
//!           / "corporate1000" / "c1k35" / "wiegand35"   35-bit Corporate 1000
//!           / "h10304" / "wiegand37"               37-bit H10304
//! modifier  = "fc-cn" [ ":" SEP ]   Wiegand only (the default shape): "1:12345", SEP replaces ":"
//!           / "cn"                  Wiegand only: the card number alone, "12345"
//!           / "packed"              Wiegand only: facility and card as one decimal number,
//!                                   (FC << card bits) | CN, as printed on many fobs
//!           / "pad:" N              left-pad with zeros to N characters (never truncates)
//!           / "strip-prefix:" S     remove S once from the start when present
//!           / "last:" N             keep the last N characters
//! ```
//!
//! Examples: `hex`, `decimal-reversed|pad:10`, `h10301|cn|pad:8`, `hex|strip-prefix:00|last:8`,
//! `wiegand|fc-cn:,`. Padding, stripping and truncation run left to right after the base (and
//! the Wiegand shape). Output is upper case; `strip-prefix` compares case-insensitively.
//!
//! What each base does with each kind of read:
//! - PC/SC UID bytes: hex as read, bytes reversed, big-endian decimal of the bytes as read or
//!   reversed (u128, so up to 16 bytes). Wiegand bases refuse UIDs: a UID has no FC/CN.
//! - PACS bits (`bit_len` bits, first transmitted bit most significant): hex and decimal of
//!   the frame as one integer (hex is `ceil(bit_len / 4)` digits); reversed forms reverse the
//!   frame's bytes. Wiegand bases check parity and give FC/CN.
//! - Wedge text: `text` trims it and upper-cases it, whatever it contains; `hex` does the same
//!   but insists on hex digits; the decimal and reversed bases read the text as hex digits
//!   (PaperCut's `hex2dec`). A wedge that types decimal wants `text`.
//!
//! Error messages never contain the badge number (invariant 5).

use std::fmt;

use thiserror::Error;

use crate::badges::wiegand::{self, WiegandFormat};
use crate::badges::RawBadge;
use crate::domain::BadgeNumber;

/// The grammar in one line, appended to every parse error so the installer sees the choices.
pub const RULE_HELP: &str = "a format is a base rule (hex, hex-reversed, decimal, decimal-reversed, text, wiegand, wiegand26/h10301, corporate1000/c1k35, h10304/wiegand37) optionally followed by modifiers joined with | (pad:N, strip-prefix:S, last:N, and for Wiegand rules fc-cn[:SEP], cn or packed), e.g. \"decimal-reversed|pad:10\" or \"h10301|cn\"";

/// Longest width `pad:` and `last:` accept.
const MAX_WIDTH: usize = 64;

/// A validated format rule, parsed from the config's `format = "…"` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatRule {
    text: String,
    base: Base,
    shape: Shape,
    steps: Vec<Step>,
}

/// A format string in the config that is not a rule.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{rule:?} is not a badge format: {problem}; {RULE_HELP}")]
pub struct FormatRuleError {
    /// The rule as written.
    pub rule: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A badge that the rule cannot turn into a number (wrong kind of read, bad parity…). The
/// message says what to do and never contains the badge number.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct FormatError(pub String);

impl From<wiegand::WiegandError> for FormatError {
    fn from(err: wiegand::WiegandError) -> Self {
        FormatError(err.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Hex,
    HexReversed,
    Decimal,
    DecimalReversed,
    Text,
    /// `None`: the layout is chosen by the frame's length.
    Wiegand(Option<WiegandFormat>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    FcCn(String),
    Cn,
    Packed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Pad(usize),
    StripPrefix(String),
    Last(usize),
}

impl FormatRule {
    /// Parses a rule from its config text; see the module doc for the grammar.
    pub fn parse(text: &str) -> Result<FormatRule, FormatRuleError> {
        let fail = |problem: String| FormatRuleError {
            rule: text.to_string(),
            problem,
        };
        let mut tokens = text.split(['|', '+']).map(str::trim);
        let base_token = tokens.next().unwrap_or_default();
        let base = parse_base(base_token).ok_or_else(|| {
            if base_token.is_empty() {
                "it is empty".to_string()
            } else {
                format!("{base_token:?} is not a base rule")
            }
        });
        let base = base.map_err(fail)?;
        let mut shape = None;
        let mut steps = Vec::new();
        for token in tokens {
            let (name, argument) = match token.split_once(':') {
                Some((name, argument)) => (name.trim().to_ascii_lowercase(), Some(argument)),
                None => (token.to_ascii_lowercase(), None),
            };
            let new_shape = match (name.as_str(), argument) {
                ("fc-cn", None) => Some(Shape::FcCn(":".to_string())),
                ("fc-cn", Some(separator)) if !separator.is_empty() => {
                    Some(Shape::FcCn(separator.to_string()))
                }
                ("fc-cn", Some(_)) => {
                    return Err(fail(
                        "fc-cn: needs a separator after the colon, e.g. fc-cn:/".into(),
                    ))
                }
                ("cn", None) => Some(Shape::Cn),
                ("packed", None) => Some(Shape::Packed),
                _ => None,
            };
            if let Some(new_shape) = new_shape {
                if !matches!(base, Base::Wiegand(_)) {
                    return Err(fail(format!("{token:?} only applies to Wiegand rules (wiegand, h10301, corporate1000, h10304)")));
                }
                if shape.is_some() {
                    return Err(fail("give at most one of fc-cn, cn and packed".into()));
                }
                shape = Some(new_shape);
                continue;
            }
            let step = match (name.as_str(), argument) {
                ("pad", Some(width)) => Step::Pad(
                    parse_width(width)
                        .map_err(|problem| fail(format!("pad:{width}: {problem}")))?,
                ),
                ("last", Some(width)) => Step::Last(
                    parse_width(width)
                        .map_err(|problem| fail(format!("last:{width}: {problem}")))?,
                ),
                ("strip-prefix", Some(prefix)) if !prefix.trim().is_empty() => {
                    Step::StripPrefix(prefix.trim().to_ascii_uppercase())
                }
                ("strip-prefix", _) => {
                    return Err(fail(
                        "strip-prefix needs the prefix to remove, e.g. strip-prefix:00".into(),
                    ))
                }
                ("pad" | "last", None) => {
                    return Err(fail(format!("{name} needs a width, e.g. {name}:10")))
                }
                ("", None) => {
                    return Err(fail("a modifier is missing between two separators".into()))
                }
                _ => return Err(fail(format!("{token:?} is not a modifier"))),
            };
            steps.push(step);
        }
        Ok(FormatRule {
            text: text.to_string(),
            base,
            shape: shape.unwrap_or(Shape::FcCn(":".to_string())),
            steps,
        })
    }

    /// The rule's config text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the rule decodes Wiegand PACS bits (it refuses UIDs and wedge text).
    pub fn is_wiegand(&self) -> bool {
        matches!(self.base, Base::Wiegand(_))
    }

    /// Applies the rule.
    pub fn apply(&self, raw: &RawBadge) -> Result<BadgeNumber, FormatError> {
        let mut value = match self.base {
            Base::Wiegand(layout) => self.wiegand(layout, raw)?,
            base => render_base(base, raw)?,
        };
        for step in &self.steps {
            value = match step {
                Step::Pad(width) => format!("{value:0>width$}"),
                Step::StripPrefix(prefix) => match value.get(..prefix.len()) {
                    Some(head) if head.eq_ignore_ascii_case(prefix) => {
                        value[prefix.len()..].to_string()
                    }
                    _ => value,
                },
                Step::Last(n_chars) => {
                    let n_skip = value.chars().count().saturating_sub(*n_chars);
                    value.chars().skip(n_skip).collect()
                }
            };
        }
        if value.is_empty() {
            return Err(FormatError(format!(
                "format {:?} left an empty badge number: check the rule against `badgedock readers --watch`",
                self.text
            )));
        }
        Ok(BadgeNumber::new(value))
    }

    fn wiegand(
        &self,
        layout: Option<WiegandFormat>,
        raw: &RawBadge,
    ) -> Result<String, FormatError> {
        let RawBadge::Pacs { bits, bit_len } = raw else {
            return Err(FormatError(format!(
                "format {:?} decodes Wiegand PACS bits but this reader delivered {}: use hex, decimal or text",
                self.text,
                kind_name(raw)
            )));
        };
        let card = match layout {
            Some(format) => wiegand::decode(format, bits, *bit_len)?,
            None => wiegand::decode_any(bits, *bit_len)?,
        };
        Ok(shape_card(&self.shape, card))
    }
}

impl fmt::Display for FormatRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Every rendering of a read, labelled with the rule that produces it, for
/// `badgedock readers --watch`. Renderings that do not apply are left out (a UID has no
/// FC/CN; PACS bits of an unknown length have no Wiegand line); a Wiegand layout whose
/// parity fails is shown with the error so the installer sees why.
pub fn renderings(raw: &RawBadge) -> Vec<(String, String)> {
    const PLAIN: [Base; 4] = [
        Base::Hex,
        Base::HexReversed,
        Base::Decimal,
        Base::DecimalReversed,
    ];
    let mut lines = Vec::new();
    if let RawBadge::Text(_) = raw {
        lines.extend(
            render_base(Base::Text, raw)
                .ok()
                .map(|value| ("text".to_string(), value)),
        );
    }
    if let RawBadge::Pacs { bit_len, .. } = raw {
        lines.push(("bit-length".to_string(), bit_len.to_string()));
    }
    for base in PLAIN {
        if let Ok(value) = render_base(base, raw) {
            lines.push((base_name(base).to_string(), value));
        }
    }
    if let RawBadge::Pacs { bits, bit_len } = raw {
        if let Some(format) = WiegandFormat::for_bit_len(*bit_len) {
            let name = format.rule_name();
            match wiegand::decode(format, bits, *bit_len) {
                Ok(card) => {
                    lines.push((name.to_string(), shape_card(&Shape::FcCn(":".into()), card)));
                    lines.push((format!("{name}|cn"), shape_card(&Shape::Cn, card)));
                    lines.push((format!("{name}|packed"), shape_card(&Shape::Packed, card)));
                }
                Err(err) => lines.push((name.to_string(), format!("(not valid: {err})"))),
            }
        }
    }
    lines
}

/// Upper-case hex without separators.
pub fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0F)]));
    }
    text
}

fn parse_base(token: &str) -> Option<Base> {
    Some(match token.to_ascii_lowercase().as_str() {
        "hex" => Base::Hex,
        "hex-reversed" => Base::HexReversed,
        "decimal" => Base::Decimal,
        "decimal-reversed" => Base::DecimalReversed,
        "text" => Base::Text,
        "wiegand" => Base::Wiegand(None),
        "wiegand26" | "h10301" => Base::Wiegand(Some(WiegandFormat::H10301)),
        "corporate1000" | "c1k35" | "wiegand35" => {
            Base::Wiegand(Some(WiegandFormat::Corporate1000))
        }
        "h10304" | "wiegand37" => Base::Wiegand(Some(WiegandFormat::H10304)),
        _ => return None,
    })
}

fn base_name(base: Base) -> &'static str {
    match base {
        Base::Hex => "hex",
        Base::HexReversed => "hex-reversed",
        Base::Decimal => "decimal",
        Base::DecimalReversed => "decimal-reversed",
        Base::Text => "text",
        Base::Wiegand(None) => "wiegand",
        Base::Wiegand(Some(format)) => format.rule_name(),
    }
}

fn parse_width(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(width) if (1..=MAX_WIDTH).contains(&width) => Ok(width),
        _ => Err(format!(
            "the width must be a whole number from 1 to {MAX_WIDTH}"
        )),
    }
}

fn kind_name(raw: &RawBadge) -> &'static str {
    match raw {
        RawBadge::Uid(_) => "a card UID",
        RawBadge::Pacs { .. } => "PACS bits",
        RawBadge::Text(_) => "typed text",
    }
}

fn shape_card(shape: &Shape, card: wiegand::WiegandCard) -> String {
    match shape {
        Shape::FcCn(separator) => format!("{}{separator}{}", card.facility, card.card),
        Shape::Cn => card.card.to_string(),
        Shape::Packed => {
            (u64::from(card.facility) << card.format.card_bits() | card.card).to_string()
        }
    }
}

/// Renders one of the non-Wiegand bases.
fn render_base(base: Base, raw: &RawBadge) -> Result<String, FormatError> {
    match (base, raw) {
        (Base::Text | Base::Hex, RawBadge::Uid(bytes)) => Ok(hex_upper(bytes)),
        (Base::Text, RawBadge::Text(text)) => non_empty(text.trim().to_ascii_uppercase()),
        (Base::Hex, RawBadge::Text(text)) => non_empty(hex_text(text)?),
        (Base::Text | Base::Hex, RawBadge::Pacs { bits, bit_len }) => {
            let value = pacs_value(bits, *bit_len)?;
            let width = bit_len.div_ceil(4) as usize;
            Ok(format!("{value:0width$X}"))
        }
        (Base::HexReversed, raw) => {
            let mut bytes = number_bytes(raw)?;
            bytes.reverse();
            non_empty(hex_upper(&bytes))
        }
        (Base::Decimal, raw) => Ok(big_endian_value(&number_bytes(raw)?)?.to_string()),
        (Base::DecimalReversed, raw) => {
            let mut bytes = number_bytes(raw)?;
            bytes.reverse();
            Ok(big_endian_value(&bytes)?.to_string())
        }
        (Base::Wiegand(_), _) => Err(FormatError(
            "Wiegand rules are not a plain rendering".into(),
        )),
    }
}

fn non_empty(text: String) -> Result<String, FormatError> {
    if text.is_empty() {
        Err(FormatError("the reader delivered an empty read".into()))
    } else {
        Ok(text)
    }
}

/// The wedge text as upper-case hex digits, or an error when it is not hex.
fn hex_text(text: &str) -> Result<String, FormatError> {
    let text = text.trim();
    if text.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(FormatError(
            "the reader typed characters that are not hex digits: use format \"text\" for this reader".into(),
        ))
    }
}

/// The bytes a reversed or decimal rendering works on.
fn number_bytes(raw: &RawBadge) -> Result<Vec<u8>, FormatError> {
    match raw {
        RawBadge::Uid(bytes) => Ok(bytes.clone()),
        RawBadge::Pacs { bits, bit_len } => {
            let value = pacs_value(bits, *bit_len)?;
            let n_bytes = bit_len.div_ceil(8) as usize;
            Ok(value.to_be_bytes()[16 - n_bytes..].to_vec())
        }
        RawBadge::Text(text) => {
            let digits = hex_text(text)?;
            if digits.is_empty() {
                return Err(FormatError("the reader delivered an empty read".into()));
            }
            let padded = if digits.len() % 2 == 1 {
                format!("0{digits}")
            } else {
                digits
            };
            Ok(padded
                .as_bytes()
                .chunks(2)
                .map(|pair| (hex_digit(pair[0]) << 4) | hex_digit(pair[1]))
                .collect())
        }
    }
}

fn hex_digit(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

fn pacs_value(bits: &[u8], bit_len: u32) -> Result<u128, FormatError> {
    if bit_len == 0 {
        return Err(FormatError(
            "the reader delivered a PACS read of 0 bits".into(),
        ));
    }
    wiegand::value_from_bits(bits, bit_len).ok_or_else(|| {
        if bit_len > 128 {
            FormatError(format!("a {bit_len}-bit PACS read is too long for this rule (128 bits at most): use a Wiegand rule"))
        } else {
            FormatError(format!("the PACS read claims {bit_len} bits but carries only {} bytes", bits.len()))
        }
    })
}

/// Big-endian value of up to 16 bytes (a 10-byte UID is 80 bits, so u64 is not enough).
fn big_endian_value(bytes: &[u8]) -> Result<u128, FormatError> {
    if bytes.is_empty() {
        return Err(FormatError("the reader delivered an empty read".into()));
    }
    if bytes.len() > 16 {
        return Err(FormatError(format!(
            "a {}-byte id is too long for a decimal rule (16 bytes at most): use hex",
            bytes.len()
        )));
    }
    Ok(bytes
        .iter()
        .fold(0u128, |value, &byte| value << 8 | u128::from(byte)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(rule: &str, raw: &RawBadge) -> String {
        let rule = FormatRule::parse(rule).expect("valid rule");
        rule.apply(raw).expect("applies").expose().to_string()
    }

    #[test]
    fn uid_bases() {
        let uid = RawBadge::Uid(vec![0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(apply("hex", &uid), "DEADBEEF");
        assert_eq!(apply("hex-reversed", &uid), "EFBEADDE");
        assert_eq!(apply("decimal", &uid), "3735928559");
        assert_eq!(apply("decimal-reversed", &uid), "4022250974");
    }

    #[test]
    fn wiegand_on_uid_is_refused_without_the_number() {
        let uid = RawBadge::Uid(vec![0xDE, 0xAD, 0xBE, 0xEF]);
        let err = FormatRule::parse("h10301")
            .expect("valid")
            .apply(&uid)
            .expect_err("refused");
        assert!(err.0.contains("card UID"), "{err}");
        assert!(!err.0.contains("DEADBEEF"), "{err}");
    }

    #[test]
    fn parse_errors_list_the_rules() {
        let err = FormatRule::parse("octal").expect_err("unknown");
        let text = err.to_string();
        assert!(
            text.contains("decimal-reversed") && text.contains("pad:N"),
            "{text}"
        );
        assert!(FormatRule::parse("hex|cn").is_err());
        assert!(FormatRule::parse("h10301|cn|packed").is_err());
        assert!(FormatRule::parse("hex|pad:0").is_err());
        assert!(FormatRule::parse("hex||pad:4").is_err());
        assert!(FormatRule::parse("").is_err());
    }
}
