//! The check-out engine: a pure state machine, `handle(now, input) -> effects`.
//!
//! It does no I/O, reads no clock, draws no random numbers and cannot fail. The daemon's
//! engine loop stamps each [`Input`] with the time, performs the returned [`Effect`]s in
//! order (a [`Commit`] first, durably, before anything is shown or answered) and
//! publishes [`Engine::snapshot`].

mod types;

pub use types::*;

use std::collections::BTreeMap;

use crate::domain::{Platform, SlotLabel, Timestamp, Username};

/// When the check-out's MDM work starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignAt {
    /// At the tap: the device is assigned while the nurse walks to the slot.
    Tap,
    /// When the device leaves the cabinet.
    Undock,
}

/// The engine's part of the configuration, resolved and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The station's name, for the screen and the audit.
    pub station: String,
    /// Slots in cabinet order.
    pub slots: Vec<SlotLabel>,
    /// The multi-user staging account devices return to.
    pub staging_user: Username,
    /// How many devices one user may hold at once.
    pub max_devices_per_user: u32,
    /// How long a reservation waits for the device to be taken.
    pub reservation_ms: i64,
    /// When check-out work starts.
    pub assign_at: AssignAt,
    /// A loan longer than this is overdue.
    pub overdue_ms: i64,
    /// Consecutive failed actions after which a device is set aside.
    pub failure_threshold: u32,
    /// Check-out steps per platform.
    pub checkout_steps: BTreeMap<Platform, Vec<WorkflowStep>>,
    /// Check-in steps per platform.
    pub checkin_steps: BTreeMap<Platform, Vec<WorkflowStep>>,
}

/// The engine. Build it with [`Engine::restore`], feed it with [`Engine::handle`].
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    now: Timestamp,
}

impl Engine {
    /// Rebuilds the engine from what the store kept, returning the effects that restart
    /// unfinished work (device lookups).
    pub fn restore(config: EngineConfig, persisted: Persisted, now: Timestamp) -> (Engine, Vec<Effect>) {
        let _ = persisted;
        (Engine { config, now }, Vec::new())
    }

    /// Handles one input at `now`.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Vec<Effect> {
        self.now = now;
        let _ = input;
        Vec::new()
    }

    /// When the engine next wants a [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Timestamp> {
        None
    }

    /// The current state for the screen.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            station: self.config.station.clone(),
            at: self.now,
            instruction: Instruction {
                tone: Tone::Idle,
                headline: "Tap your badge".into(),
                detail: String::new(),
                at: self.now,
            },
            slots: Vec::new(),
            loans: Vec::new(),
            readers: Vec::new(),
            mdm: MdmView { reachable: None, waiting: 0, last_error: None },
            events: Vec::new(),
            open_reservations: 0,
        }
    }
}
