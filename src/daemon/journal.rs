//! The journal that reads on its own: one self-contained sentence per event, at the
//! priority it deserves, with a fixed `MESSAGE_ID` for the kinds an operator filters or
//! alerts on (`journalctl MESSAGE_ID=…`), and plain structured fields (`SLOT=1`,
//! `USERNAME=alice`, `DEVICE=…`, `BADGE=…3F9A`, `WAITING=4`).
//!
//! The engine loop calls [`audit`] once per committed audit entry (the entry's detail is
//! already a sentence and its badge already redacted) and [`mdm_health`] for every
//! Workspace ONE health report; only the changes between reachable and unreachable are
//! written. `daemon` writes the start, stop and reload lines with [`started`],
//! [`stopping`], [`reloaded`] and [`reload_refused`].
//!
//! Never a full badge number or a secret: the audit holds only redacted badges, and the
//! config lines carry no secret.

use std::sync::Mutex;
use std::time::Instant;

use crate::checkout::AuditEntry;

/// The fixed `MESSAGE_ID`s (128-bit, as `journalctl MESSAGE_ID=` wants them). They are
/// documented in the README's journal section and never change.
pub mod message_id {
    /// A check-out: a nurse took a phone.
    pub const CHECKOUT: &str = "8d59327e8d7b4bacb84763d2f9f20247";
    /// A check-in: a phone came back.
    pub const CHECKIN: &str = "8f20810c77ff4cc0936e4f07f493dc0f";
    /// A tap the station refused (unknown badge, Workspace ONE refused, no phone…).
    pub const REFUSAL: &str = "a9526d6d7ebd48588c1a647af480faf8";
    /// A Workspace ONE action that failed for good.
    pub const ACTION_FAILED: &str = "f1940944f1584fb9b804f8006262c3a5";
    /// Workspace ONE became unreachable.
    pub const MDM_DOWN: &str = "dc8844f7a18743d680d42f1db16b86ef";
    /// Workspace ONE is reachable again.
    pub const MDM_UP: &str = "3b72fc0283724184b053389b0cfe9c99";
    /// The daemon started.
    pub const STARTED: &str = "f8c2cbed1c1e408ea78b80d9e4625d0c";
    /// The daemon is stopping (with the signal).
    pub const STOPPING: &str = "c1e86cba12bb4e94b1b70c231917ea63";
    /// The configuration was reloaded.
    pub const RELOADED: &str = "7ee20bb2e54640c4b768570aa3ebb560";
    /// A reload was refused (bad config); the daemon keeps the old one.
    pub const RELOAD_REFUSED: &str = "4cc7655be8734ee99e6df93a70c87780";
    /// The store's disk refuses writes (full, read-only, failing): taps are refused.
    pub const STORE_FAULT: &str = "5d3f0b6e9a2c4f81b7e4c1a09d8e6f27";
    /// The store takes writes again: taps are recorded again.
    pub const STORE_RECOVERED: &str = "b2a7c9e41f0d4e6a8c3b5d7f9e1a2c48";
}

/// How loud a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Error,
    Warning,
    Info,
}

/// The words before the detail, the priority and the `MESSAGE_ID` of an audit kind.
fn describe(kind: &str) -> (&str, Priority, Option<&'static str>) {
    match kind {
        "checkout" => ("check-out", Priority::Info, Some(message_id::CHECKOUT)),
        "checkin" | "checkin-foreign" => ("check-in", Priority::Info, Some(message_id::CHECKIN)),
        "tap-refused" | "curfew-refused" => {
            ("refusal", Priority::Warning, Some(message_id::REFUSAL))
        }
        "overdue" => ("overdue", Priority::Warning, None),
        "escalated" => ("escalation", Priority::Warning, None),
        "broken" => ("broken phone", Priority::Warning, None),
        "action-failed" => (
            "Workspace ONE action failed",
            Priority::Error,
            Some(message_id::ACTION_FAILED),
        ),
        "unexpected-removal" => ("unexpected removal", Priority::Warning, None),
        "set-aside" => ("set aside", Priority::Warning, None),
        "checkout-reserved" => ("reservation", Priority::Info, None),
        "reservation-moved" => ("reservation", Priority::Info, None),
        "enrolled" | "enrollment-approved" => ("badge enrolment", Priority::Info, None),
        "bad-read" => ("bad read", Priority::Info, None),
        other => (other, Priority::Info, None),
    }
}

/// One committed audit entry as one journal line.
pub fn audit(entry: &AuditEntry) {
    let (label, priority, id) = if is_refused_by_workspace_one(entry.kind.as_str(), &entry.detail) {
        ("refusal", Priority::Warning, Some(message_id::REFUSAL))
    } else {
        describe(entry.kind.as_str())
    };
    let message = format!("{label}: {}", entry.detail);
    let slot = entry.slot.as_ref().map(|s| s.as_str());
    let user = entry.username.as_ref().map(|u| u.as_str());
    let device = entry.device.as_ref().map(|d| d.id.as_str());
    let reader = entry.reader.as_ref().map(|r| r.as_str());
    let badge = entry.badge.as_deref();
    let kind = entry.kind.as_str();
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                message_id = id,
                badgedock_kind = kind,
                slot,
                username = user,
                device,
                reader,
                badge,
                "{message}"
            )
        };
    }
    match priority {
        Priority::Error => emit!(error),
        Priority::Warning => emit!(warn),
        Priority::Info => emit!(info),
    }
}

/// A reservation Workspace ONE refused to assign ("DO NOT TAKE SLOT n"): a refusal,
/// although the tap itself was accepted.
pub fn is_refused_by_workspace_one(kind: &str, detail: &str) -> bool {
    kind == "reservation-cancelled" && detail.contains("refused by Workspace ONE")
}

/// What the journal last said about Workspace ONE.
struct MdmState {
    reachable: bool,
    down_since: Option<Instant>,
}

static MDM: Mutex<MdmState> = Mutex::new(MdmState {
    reachable: true,
    down_since: None,
});

/// A Workspace ONE health report: written only when reachability changes.
pub fn mdm_health(reachable: bool, waiting: u32) {
    let mut state = MDM.lock().unwrap_or_else(|p| p.into_inner());
    if state.reachable == reachable {
        return;
    }
    state.reachable = reachable;
    if reachable {
        let down_s = state
            .down_since
            .take()
            .map(|since| since.elapsed().as_secs())
            .unwrap_or(0);
        tracing::info!(
            message_id = message_id::MDM_UP,
            down_seconds = down_s,
            waiting,
            "Workspace ONE reachable again after {}, {} waiting",
            duration_words(down_s),
            actions(waiting)
        );
    } else {
        state.down_since = Some(Instant::now());
        tracing::warn!(
            message_id = message_id::MDM_DOWN,
            waiting,
            "Workspace ONE unreachable, {} waiting",
            actions(waiting)
        );
    }
}

/// `badgedock started: …`.
pub fn started(station: &str, slots: usize, readers: usize, workspace_one: &str) {
    tracing::info!(
        message_id = message_id::STARTED,
        station,
        slots,
        readers,
        "badgedock {} started: station {station:?}, {slots} slots, {readers} readers, Workspace ONE {workspace_one}",
        env!("CARGO_PKG_VERSION")
    );
}

/// `badgedock stopping on SIGTERM`.
pub fn stopping(signal: &str) {
    tracing::info!(
        message_id = message_id::STOPPING,
        signal,
        "badgedock stopping on {signal}"
    );
}

/// A reload took effect; `kept` lists what needs a restart to change.
pub fn reloaded(what: &str, kept: &[String]) {
    if kept.is_empty() {
        tracing::info!(
            message_id = message_id::RELOADED,
            "configuration reloaded: {what}"
        );
    } else {
        tracing::warn!(
            message_id = message_id::RELOADED,
            "configuration reloaded: {what}; not changed until a restart: {}",
            kept.join(", ")
        );
    }
}

/// A reload was refused; the daemon runs on.
pub fn reload_refused(reason: &str) {
    tracing::error!(
        message_id = message_id::RELOAD_REFUSED,
        "configuration reload refused, still running on the previous one: {reason}"
    );
}

/// The store's disk refused a write: once per episode.
pub fn store_fault(kind: &str, problem: &str, cause: &str) {
    tracing::error!(
        message_id = message_id::STORE_FAULT,
        fault = kind,
        "station cannot record taps — call IT: {problem}; taps are refused and other events wait until it is fixed, retried every {} s (the store said: {cause})",
        crate::daemon::storage::PROBE_INTERVAL.as_secs()
    );
}

/// The store takes writes again.
pub fn store_recovered(kind: &str, seconds: u64, refused: u64) {
    let what = match kind {
        "full" => "the disk was full",
        "read-only" => "the store could not be written",
        _ => "the disk failed writes",
    };
    tracing::info!(
        message_id = message_id::STORE_RECOVERED,
        fault = kind,
        down_seconds = seconds,
        refused_taps = refused,
        "station records taps again after {} ({what}); {} refused meanwhile",
        duration_words(seconds),
        match refused {
            1 => "1 tap was".to_string(),
            n => format!("{n} taps were"),
        }
    );
}

fn actions(n: u32) -> String {
    match n {
        1 => "1 action".to_string(),
        n => format!("{n} actions"),
    }
}

fn duration_words(seconds: u64) -> String {
    match seconds {
        s if s < 90 => format!("{s} s"),
        s if s < 5400 => format!("{} min", (s + 30) / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn important_kinds_have_ids_and_priorities() {
        assert_eq!(describe("checkout").2, Some(message_id::CHECKOUT));
        assert_eq!(describe("checkin-foreign").2, Some(message_id::CHECKIN));
        assert_eq!(describe("tap-refused").1, Priority::Warning);
        assert_eq!(describe("action-failed").1, Priority::Error);
        assert_eq!(describe("tap").1, Priority::Info);
        assert_eq!(duration_words(185), "3 min");
        assert_eq!(actions(4), "4 actions");
    }
}
