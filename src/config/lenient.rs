//! Reading a TOML config so that one mistake hides no other.
//!
//! A TOML parser stops at the first syntax error and serde at the first type error. Here
//! each error is recorded (with its key, line and what was expected in plain words), the
//! offending line or key is blanked out of the text (same length, so every other line
//! and span stays where it was), and the text is read again, until it reads cleanly.
//! What is left is deserialized normally, so the rules in [`super::Checker`] still see
//! every key that was well typed.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml_edit::{ImDocument, Item, Table, Value};

use super::Problem;

/// More than this many syntax or type errors means the file is not a config at all.
const MAX_ROUNDS: usize = 50;

/// Deserializes `text` into `T`, collecting every syntax and type error as a problem.
/// Returns `None` only when the text could not be read into `T` even after removing
/// every key that was in error.
pub(crate) fn read<T: DeserializeOwned>(text: &str) -> (Option<T>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut text = text.to_string();
    for _ in 0..MAX_ROUNDS {
        let document = match ImDocument::parse(text.clone()) {
            Ok(document) => document,
            Err(err) => {
                let line = err.span().map(|span| line_of(&text, span.start));
                problems.push(Problem {
                    line,
                    key: "(syntax)".into(),
                    message: syntax_message(err.message()),
                });
                match line {
                    Some(line) => blank_line(&mut text, line),
                    None => return (None, problems),
                }
                continue;
            }
        };
        match toml_edit::de::from_document::<T>(document.clone()) {
            Ok(value) => return (Some(value), problems),
            Err(err) => {
                let located = err
                    .span()
                    .and_then(|span| locate(document.as_table(), &span));
                let Some((key, range)) = located else {
                    problems.push(Problem {
                        line: err.span().map(|span| line_of(&text, span.start)),
                        key: "(file)".into(),
                        message: err.message().trim().to_string(),
                    });
                    return (None, problems);
                };
                problems.push(Problem {
                    line: Some(line_of(&text, range.start)),
                    message: plain_message(&key, err.message()),
                    key,
                });
                blank_range(&mut text, range);
            }
        }
    }
    (None, problems)
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map(|prefix| prefix.matches('\n').count() + 1)
        .unwrap_or(1)
}

fn syntax_message(message: &str) -> String {
    let message = message.trim().trim_end_matches('.');
    format!("the file is not valid TOML here ({message}); this line was skipped, fix it")
}

/// Replaces every character of a line by a space (the newline stays).
fn blank_line(text: &mut String, line: usize) {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let end = text
        .get(start..)
        .and_then(|rest| rest.find('\n'))
        .map_or(text.len(), |at| start + at);
    blank_range(text, start..end);
}

/// Replaces `range` by spaces (newlines stay), then a comma that separated the removed
/// item from its neighbour, so arrays and inline tables stay valid.
fn blank_range(text: &mut String, range: Range<usize>) {
    let mut bytes = std::mem::take(text).into_bytes();
    let end = range.end.min(bytes.len());
    for byte in &mut bytes[range.start.min(end)..end] {
        if *byte != b'\n' {
            *byte = b' ';
        }
    }
    let after = bytes[end..]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|at| end + at);
    let before = bytes[..range.start.min(end)]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace());
    match (after, before) {
        (Some(at), _) if bytes[at] == b',' => bytes[at] = b' ',
        (_, Some(at)) if bytes[at] == b',' => bytes[at] = b' ',
        _ => {}
    }
    // Only ASCII bytes were replaced by ASCII spaces inside char boundaries or whole
    // multibyte sequences, so this is still UTF-8; fall back to a lossy copy otherwise.
    *text = String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned());
}

/// The dotted key (`dock.slots[1].port`) and the text range of the deepest key/value or
/// array element that contains `span`.
fn locate(table: &Table, span: &Range<usize>) -> Option<(String, Range<usize>)> {
    locate_in_table(table, "", span)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn covers(range: &Option<Range<usize>>, span: &Range<usize>) -> bool {
    range.as_ref().is_some_and(|range| {
        range.start <= span.start && span.start < range.end.max(range.start + 1)
    })
}

fn locate_in_table(
    table: &Table,
    prefix: &str,
    span: &Range<usize>,
) -> Option<(String, Range<usize>)> {
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        let path = join(prefix, name);
        match item {
            Item::Table(inner) => {
                if let Some(found) = locate_in_table(inner, &path, span) {
                    return Some(found);
                }
            }
            Item::ArrayOfTables(array) => {
                for (index, inner) in array.iter().enumerate() {
                    if let Some(found) = locate_in_table(inner, &format!("{path}[{index}]"), span) {
                        return Some(found);
                    }
                }
            }
            Item::Value(value) => {
                if let Some(found) = locate_in_value(value, &path, span) {
                    return Some(found);
                }
                let key_span = key.span();
                let value_span = value.span();
                if covers(&key_span, span) || covers(&value_span, span) {
                    let start = key_span.as_ref().map_or(0, |r| r.start);
                    let end = value_span.as_ref().map_or(start, |r| r.end);
                    return Some((path, start..end));
                }
            }
            Item::None => {}
        }
    }
    None
}

fn locate_in_value(
    value: &Value,
    path: &str,
    span: &Range<usize>,
) -> Option<(String, Range<usize>)> {
    match value {
        Value::Array(array) => {
            for (index, element) in array.iter().enumerate() {
                let element_path = format!("{path}[{index}]");
                if let Some(found) = locate_in_value(element, &element_path, span) {
                    return Some(found);
                }
                let element_span = element.span();
                if covers(&element_span, span) {
                    return element_span.map(|range| (element_path, range));
                }
            }
            None
        }
        Value::InlineTable(inline) => {
            for (name, _) in inline.iter() {
                let Some((key, item)) = inline.get_key_value(name) else {
                    continue;
                };
                let Item::Value(inner) = item else {
                    continue;
                };
                let inner_path = join(path, name);
                if let Some(found) = locate_in_value(inner, &inner_path, span) {
                    return Some(found);
                }
                let key_span = key.span();
                let value_span = inner.span();
                if covers(&key_span, span) || covers(&value_span, span) {
                    let start = key_span.as_ref().map_or(0, |r| r.start);
                    let end = value_span.as_ref().map_or(start, |r| r.end);
                    return Some((inner_path, start..end));
                }
            }
            None
        }
        _ => None,
    }
}

/// serde's message in plain words: what was expected (with the unit the key's name
/// implies) and what was found.
pub(crate) fn plain_message(key: &str, message: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let name = rest.split(',').next().unwrap_or(rest).trim_matches('`');
        let known: Vec<&str> = rest
            .split_once("expected one of ")
            .or_else(|| rest.split_once("expected "))
            .map(|(_, list)| {
                list.split(',')
                    .map(|k| k.trim().trim_matches('`'))
                    .filter(|k| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        return if known.is_empty() || rest.contains("there are no fields") {
            format!("{name:?} is not a known key here: remove it or check the README for its place")
        } else {
            format!(
                "{name:?} is not a known key here (known: {}): remove it or fix its spelling",
                known.join(", ")
            )
        };
    }
    let body = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    let Some((found, expected)) = body.and_then(|body| body.split_once(", expected ")) else {
        return message.to_string();
    };
    format!(
        "expected {}, found {}",
        plain_expected(key, expected.trim()),
        plain_found(found.trim())
    )
}

fn plain_expected(key: &str, expected: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    let unit = if last.ends_with("-seconds") {
        Some(("seconds", "60"))
    } else if last.ends_with("-ms") {
        Some(("milliseconds", "2000"))
    } else if last.ends_with("-hours") {
        Some(("hours", "14"))
    } else {
        None
    };
    let integer = matches!(
        expected,
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize"
    );
    if integer {
        return match unit {
            Some((unit, example)) => format!("a whole number of {unit} like {example}"),
            None => "a whole number like 3".into(),
        };
    }
    if matches!(expected, "f32" | "f64") {
        return match unit {
            Some((unit, example)) => format!("a number of {unit} like {example}"),
            None => "a number like 1.5".into(),
        };
    }
    match expected {
        "a boolean" => "true or false".into(),
        "a string" | "path string" | "a character" => "text in double quotes".into(),
        "a sequence" => "a list in square brackets, like [\"a\", \"b\"]".into(),
        other if other.starts_with("struct ") || other == "a map" => {
            "a table ([section] or { key = value })".into()
        }
        other => other.to_string(),
    }
}

fn plain_found(found: &str) -> String {
    let backticked = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .map(|rest| rest.trim().trim_matches('`').to_string())
    };
    if let Some(text) = found.strip_prefix("string ") {
        return format!("the text {}", text.trim());
    }
    if let Some(number) = backticked("integer").or_else(|| backticked("floating point")) {
        return format!("the number {number}");
    }
    if let Some(value) = backticked("boolean") {
        return value;
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a table".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_in_plain_words() {
        assert_eq!(
            plain_message(
                "checkout.reservation-seconds",
                "invalid type: string \"60s\", expected u32"
            ),
            "expected a whole number of seconds like 60, found the text \"60s\""
        );
        assert_eq!(
            plain_message(
                "station.name",
                "invalid type: integer `5`, expected a string"
            ),
            "expected text in double quotes, found the number 5"
        );
        assert_eq!(
            plain_message(
                "uem.verify-after-assign",
                "invalid type: string \"yes\", expected a boolean"
            ),
            "expected true or false, found the text \"yes\""
        );
    }

    #[test]
    fn blanking_keeps_arrays_and_inline_tables_valid() {
        let mut text = "a = [1, \"x\", 3]\nb = { c = 1, d = \"y\" }\n".to_string();
        blank_range(&mut text, 8..11);
        assert!(text.parse::<toml_edit::DocumentMut>().is_ok(), "{text}");
        let start = text.find("d =").expect("the key is there");
        blank_range(&mut text, start..start + 7);
        assert!(text.parse::<toml_edit::DocumentMut>().is_ok(), "{text}");
    }
}
