//! Small builders of engine records for the store tests, and a temporary store file.
//!
//! The records are plain and deterministic so that a test can build the same value
//! twice and compare what the store gave back with what went in.

use std::path::PathBuf;

use badgedock::checkout::{
    ActionId, ActionPurpose, ActionRecord, ActionState, AuditEntry, CheckoutId, CheckoutRecord,
    CheckoutState, Commit, Counters, DeviceCommand, DeviceRecord, DeviceStatus, MdmAction,
    MdmDeviceInfo,
};
use badgedock::domain::{DeviceKey, ReaderName, SlotLabel, Timestamp, Username};

/// A store file in its own temporary directory, removed when dropped.
pub struct TempStoreFile {
    /// Keeps the directory alive.
    pub _dir: tempfile::TempDir,
    /// `<dir>/state/badgedock.sqlite` (the `state` folder does not exist yet).
    pub path: PathBuf,
}

impl TempStoreFile {
    pub fn new() -> TempStoreFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("badgedock.sqlite");
        TempStoreFile { _dir: dir, path }
    }

    /// A raw connection, for checks and tamperings the store API does not offer.
    pub fn raw(&self) -> rusqlite::Connection {
        let connection = rusqlite::Connection::open(&self.path).unwrap();
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        connection
    }
}

pub fn phone(serial: &str) -> DeviceKey {
    DeviceKey::android(serial)
}

pub fn device(key: &DeviceKey, slot: &str, status: DeviceStatus) -> DeviceRecord {
    DeviceRecord {
        key: key.clone(),
        slot: Some(SlotLabel::new(slot)),
        status,
        mdm: Some(MdmDeviceInfo {
            mdm_id: 4100,
            name: format!("Phone {}", key.id),
            enrollment_user: Some(Username::new("staging-4west")),
            wipe_pending: false,
            ownership: Some("S".into()),
            group_id: Some(571),
            enrolled: true,
        }),
        docked_since: Some(Timestamp(1_700_000_000_000)),
        failures: 0,
        set_aside: false,
        ours: true,
        broken: false,
        lost_mode: false,
    }
}

pub fn checkout(id: u64, key: &DeviceKey, state: CheckoutState) -> CheckoutRecord {
    CheckoutRecord {
        id: CheckoutId(id),
        username: Username::new(format!("nurse{id}")),
        display_name: format!("Nurse {id}"),
        device: key.clone(),
        slot: SlotLabel::new("1"),
        state,
        reserved_at: Timestamp(1_700_000_000_000),
        expires_at: Timestamp(1_700_000_060_000),
        taken_at: None,
        closed_at: None,
        due_at: Some(Timestamp(1_700_043_200_000)),
        escalated: Vec::new(),
    }
}

pub fn action(id: u64, key: &DeviceKey, state: ActionState, created_at: i64) -> ActionRecord {
    ActionRecord {
        id: ActionId(id),
        device: key.clone(),
        checkout: Some(CheckoutId(1)),
        purpose: ActionPurpose::CheckOut,
        action: if id % 2 == 0 {
            MdmAction::Command {
                command: DeviceCommand::SyncDevice,
            }
        } else {
            MdmAction::AssignUser {
                username: Username::new(format!("nurse{id}")),
            }
        },
        state,
        created_at: Timestamp(created_at),
        note: None,
    }
}

pub fn audit(at: i64, kind: &str, detail: &str) -> AuditEntry {
    AuditEntry {
        at: Timestamp(at),
        kind: badgedock::checkout::AuditKind::from_name(kind),
        reader: Some(ReaderName::new("front")),
        badge: Some("…3F9A".to_string()),
        username: Some(Username::new("nurse1")),
        device: Some(phone("R58M12345")),
        slot: Some(SlotLabel::new("1")),
        detail: detail.to_string(),
    }
}

/// A typical check-out: one device reserved, its check-out, two actions, one audit line.
pub fn checkout_commit(n: u64, key: &DeviceKey) -> Commit {
    let checkout_id = n;
    let first_action = 2 * n - 1;
    Commit {
        devices: vec![device(
            key,
            "1",
            DeviceStatus::Reserved {
                checkout: CheckoutId(checkout_id),
            },
        )],
        checkouts: vec![checkout(checkout_id, key, CheckoutState::Reserved)],
        actions: vec![
            action(first_action, key, ActionState::Pending, 1_700_000_000_000),
            action(
                first_action + 1,
                key,
                ActionState::Pending,
                1_700_000_000_000,
            ),
        ],
        audit: vec![audit(
            1_700_000_000_000 + i64::try_from(n).unwrap(),
            "checkout",
            &format!("Nurse {n} checked out phone {}", key.id),
        )],
        counters: Counters {
            next_checkout: checkout_id + 1,
            next_action: first_action + 2,
        },
        fleet_requests: Vec::new(),
    }
}
