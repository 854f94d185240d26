//! Syslog lines: RFC 5424 with the audit row as structured data, or CEF (ArcSight
//! Common Event Format) as the message of an RFC 5424 line, with the escaping each
//! requires. Pure functions: the caller gives the host name, process id and station.

use crate::store::AuditRecord;

/// The private enterprise number in structured-data ids. 32473 is the number IANA
/// reserves for documentation (RFC 5612); a site with its own can change it here.
pub const ENTERPRISE: u32 = 32473;

/// What does not change between lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// HOSTNAME field.
    pub hostname: String,
    /// PROCID field.
    pub procid: u32,
    /// The station's name (`station.name`).
    pub station: String,
    /// badgedock's version, for CEF's header.
    pub version: String,
}

/// Facility 13 ("log audit").
const FACILITY: u8 = 13;

/// The syslog severity (and a CEF severity 0–10) of an audit kind.
pub fn severities(kind: &str) -> (u8, u8) {
    match kind {
        "action-failed" | "set-aside" | "unexpected-removal" | "overdue" | "escalated"
        | "broken" | "lost" => (4, 7),
        "curfew-refused" => (5, 5),
        "tap-refused" | "bad-read" | "checkin-foreign" => (5, 5),
        _ => (6, 3),
    }
}

/// Keeps printable ASCII without spaces, at most `max` bytes (header fields), `-` when
/// nothing is left.
fn header_field(value: &str, max: usize) -> String {
    let field: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if field.is_empty() {
        "-".to_string()
    } else {
        field
    }
}

/// RFC 5424 §6.3.3: `"`, `\` and `]` are escaped in PARAM-VALUE.
fn sd_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn timestamp(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "-".to_string())
}

fn header(origin: &Origin, severity: u8, at_ms: i64, msgid: &str) -> String {
    format!(
        "<{}>1 {} {} badgedock {} {}",
        u16::from(FACILITY) * 8 + u16::from(severity),
        timestamp(at_ms),
        header_field(&origin.hostname, 255),
        origin.procid,
        header_field(msgid, 32),
    )
}

/// One audit row as an RFC 5424 line: MSGID is the kind, `[audit@32473 …]` carries the
/// row's fields, its sequence number and chain hash, MSG the detail sentence.
pub fn rfc5424(origin: &Origin, record: &AuditRecord) -> String {
    let entry = &record.entry;
    let (severity, _) = severities(entry.kind.as_str());
    let mut sd = format!(
        "[audit@{ENTERPRISE} seq=\"{}\" hash=\"{}\" station=\"{}\"",
        record.seq,
        sd_value(&record.hash),
        sd_value(&origin.station)
    );
    let fields = [
        (
            "reader",
            entry.reader.as_ref().map(|r| r.as_str().to_string()),
        ),
        ("badge", entry.badge.clone()),
        (
            "user",
            entry.username.as_ref().map(|u| u.as_str().to_string()),
        ),
        ("device", entry.device.as_ref().map(|d| d.id.clone())),
        ("slot", entry.slot.as_ref().map(|s| s.as_str().to_string())),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            sd.push_str(&format!(" {name}=\"{}\"", sd_value(&value)));
        }
    }
    sd.push(']');
    format!(
        "{} {sd} {}",
        header(origin, severity, entry.at.0, entry.kind.as_str()),
        one_line(&entry.detail)
    )
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// CEF header fields: `\` and `|` escaped.
fn cef_header(value: &str) -> String {
    one_line(value).replace('\\', "\\\\").replace('|', "\\|")
}

/// CEF extension values: `\` and `=` escaped, line breaks as `\n` / `\r`.
fn cef_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '=' => escaped.push_str("\\="),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// One audit row as CEF inside an RFC 5424 line (no structured data).
pub fn cef(origin: &Origin, record: &AuditRecord) -> String {
    let entry = &record.entry;
    let (severity, cef_severity) = severities(entry.kind.as_str());
    let mut extension = vec![
        ("rt", entry.at.0.to_string()),
        ("dvchost", origin.hostname.clone()),
        ("cs1Label", "station".to_string()),
        ("cs1", origin.station.clone()),
        ("cn1Label", "seq".to_string()),
        ("cn1", record.seq.to_string()),
        ("cs2Label", "hash".to_string()),
        ("cs2", record.hash.clone()),
    ];
    if let Some(user) = &entry.username {
        extension.push(("suser", user.as_str().to_string()));
    }
    if let Some(device) = &entry.device {
        extension.push(("deviceExternalId", device.id.clone()));
    }
    if let Some(slot) = &entry.slot {
        extension.push(("cs3Label", "slot".to_string()));
        extension.push(("cs3", slot.as_str().to_string()));
    }
    if let Some(reader) = &entry.reader {
        extension.push(("cs4Label", "reader".to_string()));
        extension.push(("cs4", reader.as_str().to_string()));
    }
    if let Some(badge) = &entry.badge {
        extension.push(("cs5Label", "badge".to_string()));
        extension.push(("cs5", badge.clone()));
    }
    extension.push(("msg", entry.detail.clone()));
    let extension: Vec<String> = extension
        .into_iter()
        .map(|(key, value)| format!("{key}={}", cef_value(&value)))
        .collect();
    format!(
        "{} - CEF:0|badgedock|badgedock|{}|{}|{}|{cef_severity}|{}",
        header(origin, severity, entry.at.0, entry.kind.as_str()),
        cef_header(&origin.version),
        cef_header(entry.kind.as_str()),
        cef_header(&entry.detail),
        extension.join(" ")
    )
}

/// What a health line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// When (ms since the epoch).
    pub at: i64,
    /// Outbox actions waiting for Workspace ONE.
    pub outbox_pending: u32,
    /// The newest audit sequence number.
    pub audit_head: i64,
    /// Audit rows not yet forwarded (before this line).
    pub siem_backlog: i64,
}

/// A periodic station health line, in the configured format.
pub fn health(origin: &Origin, health: &Health, cef_format: bool) -> String {
    let header = header(origin, 6, health.at, "health");
    if cef_format {
        format!(
            "{header} - CEF:0|badgedock|badgedock|{}|health|station health|1|rt={} dvchost={} cs1Label=station cs1={} cn1Label=outboxPending cn1={} cn2Label=auditHead cn2={} cn3Label=siemBacklog cn3={}",
            cef_header(&origin.version),
            health.at,
            cef_value(&origin.hostname),
            cef_value(&origin.station),
            health.outbox_pending,
            health.audit_head,
            health.siem_backlog
        )
    } else {
        format!(
            "{header} [health@{ENTERPRISE} station=\"{}\" outbox-pending=\"{}\" audit-head=\"{}\" siem-backlog=\"{}\"] station up",
            sd_value(&origin.station),
            health.outbox_pending,
            health.audit_head,
            health.siem_backlog
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkout::AuditEntry;
    use crate::domain::{DeviceKey, ReaderName, SlotLabel, Timestamp, Username};

    fn origin() -> Origin {
        Origin {
            hostname: "cab-4west".into(),
            procid: 42,
            station: "4 West|\"A\"".into(),
            version: "0.1.0".into(),
        }
    }

    fn record(detail: &str) -> AuditRecord {
        AuditRecord {
            seq: 7,
            entry: AuditEntry {
                at: Timestamp(1_700_000_000_123),
                kind: crate::checkout::AuditKind::TapRefused,
                reader: Some(ReaderName::new("front")),
                badge: Some("…3F9A".into()),
                username: Some(Username::new("amartin")),
                device: Some(DeviceKey::android("R58M1")),
                slot: Some(SlotLabel::new("3")),
                detail: detail.into(),
            },
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn rfc5424_lines_escape_structured_data_and_stay_on_one_line() {
        let line = rfc5424(&origin(), &record("no phone ]ready\\ \"now\"\nsee nurse"));
        assert_eq!(
            line,
            format!(
                "<109>1 2023-11-14T22:13:20.123Z cab-4west badgedock 42 tap-refused \
                 [audit@32473 seq=\"7\" hash=\"{}\" station=\"4 West|\\\"A\\\"\" reader=\"front\" \
                 badge=\"…3F9A\" user=\"amartin\" device=\"R58M1\" slot=\"3\"] \
                 no phone ]ready\\ \"now\" see nurse",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn cef_escapes_pipes_in_the_header_and_equals_in_extensions() {
        let line = cef(&origin(), &record("a|b=c\\d\ne"));
        assert!(
            line.starts_with(
                "<109>1 2023-11-14T22:13:20.123Z cab-4west badgedock 42 tap-refused - \
                 CEF:0|badgedock|badgedock|0.1.0|tap-refused|a\\|b=c\\\\d e|5|rt=1700000000123 "
            ),
            "{line}"
        );
        assert!(line.contains(" cs1=4 West|\"A\" "), "{line}");
        assert!(line.ends_with(" msg=a|b\\=c\\\\d\\ne"), "{line}");
        assert!(
            line.contains(" suser=amartin deviceExternalId=R58M1 cs3Label=slot cs3=3 "),
            "{line}"
        );
    }
}
