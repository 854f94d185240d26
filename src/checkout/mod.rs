//! The check-out engine: a pure state machine, `handle(now, input) -> effects`.
//!
//! It does no I/O, reads no clock, draws no random numbers and cannot fail. The daemon's
//! engine loop stamps each [`Input`] with the time, performs the returned [`Effect`]s in
//! order (a [`Commit`] first, durably, before anything is shown or answered) and
//! publishes [`Engine::snapshot`].
//!
//! The rules, in one place:
//! - A tap by a known user under their device limit reserves the docked, identified,
//!   available device that has been on charge longest (set-aside devices and devices
//!   with MDM work outstanding are skipped). A user who taps again while their
//!   reservation is open is shown the same slot.
//! - A reservation becomes a loan when its device leaves the cabinet. If another
//!   available device leaves while exactly one reservation is open, the reservation
//!   follows the device actually taken and the first device's check-out work is undone;
//!   with several open reservations the removal is flagged, never guessed.
//! - A docked device that is out on loan, missing, or enrolled to someone other than the
//!   staging user runs the check-in workflow and becomes available only when that work
//!   is confirmed.
//! - A device whose MDM work keeps failing is set aside until it checks in cleanly.

mod types;

#[cfg(test)]
mod tests;

pub use types::*;

use std::collections::{BTreeMap, VecDeque};

use crate::badges::Resolution;
use crate::domain::{BadgeNumber, DeviceKey, Platform, ReaderName, SlotLabel, Timestamp, Username};

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

/// How long after an unknown badge a supervisor may approve its enrolment, and how long
/// the approval then waits for the username.
const ENROLLMENT_WINDOW_MS: i64 = 120_000;

/// An unknown badge waiting for a supervisor, then for its username. Kept in memory only:
/// a restart drops it, and the nurse taps again.
#[derive(Debug, Clone)]
struct PendingEnrollment {
    badge: BadgeNumber,
    since: Timestamp,
    approved_by: Option<crate::domain::User>,
}

/// How many recent events the snapshot keeps.
const MAX_EVENTS: usize = 30;
/// How long to wait before asking Workspace ONE again about a device it could not identify.
const IDENTIFY_RETRY_MS: i64 = 30_000;

/// The engine. Build it with [`Engine::restore`], feed it with [`Engine::handle`].
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    now: Timestamp,
    devices: BTreeMap<DeviceKey, DeviceRecord>,
    /// Check-outs in state Reserved or Out.
    checkouts: BTreeMap<CheckoutId, CheckoutRecord>,
    /// Actions in state Pending or Failed.
    actions: BTreeMap<ActionId, ActionRecord>,
    counters: Counters,
    readers: BTreeMap<ReaderName, ReaderView>,
    mdm: MdmView,
    instruction: Instruction,
    events: VecDeque<EventView>,
    /// Devices Workspace ONE could not identify, and when to ask again.
    identify_retry: BTreeMap<DeviceKey, Timestamp>,
    /// The last unknown badge, for supervised enrolment.
    enrollment: Option<PendingEnrollment>,
    /// Loans at other stations (`Input::FleetLoans`); `None` outside a fleet.
    fleet: Option<(bool, Vec<RemoteLoan>)>,
}

/// Collects what one input changes; turned into effects at the end of `handle`.
#[derive(Default)]
struct Turn {
    commit: Commit,
    effects: Vec<Effect>,
    wake_outbox: bool,
    decision: Option<TapDecision>,
}

impl Engine {
    /// Rebuilds the engine from what the store kept, returning the effects that restart
    /// unfinished work (device lookups).
    pub fn restore(
        config: EngineConfig,
        persisted: Persisted,
        now: Timestamp,
    ) -> (Engine, Vec<Effect>) {
        let mut engine = Engine {
            instruction: idle_instruction(now),
            config,
            now,
            devices: persisted
                .devices
                .into_iter()
                .map(|d| (d.key.clone(), d))
                .collect(),
            checkouts: persisted
                .open_checkouts
                .into_iter()
                .filter(|c| matches!(c.state, CheckoutState::Reserved | CheckoutState::Out))
                .map(|c| (c.id, c))
                .collect(),
            actions: persisted
                .open_actions
                .into_iter()
                .filter(|a| matches!(a.state, ActionState::Pending | ActionState::Failed))
                .map(|a| (a.id, a))
                .collect(),
            counters: persisted.counters,
            readers: BTreeMap::new(),
            mdm: MdmView {
                reachable: None,
                waiting: 0,
                last_error: None,
            },
            events: VecDeque::new(),
            identify_retry: BTreeMap::new(),
            enrollment: None,
            fleet: None,
        };
        engine.mdm.waiting = engine.pending_action_count();
        let effects = engine
            .devices
            .values()
            .filter(|d| d.status == DeviceStatus::Identifying && d.slot.is_some())
            .map(|d| Effect::Identify {
                device: d.key.clone(),
            })
            .collect();
        (engine, effects)
    }

    /// Handles one input at `now`.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Vec<Effect> {
        self.now = self.now.max(now);
        let mut turn = Turn::default();
        match input {
            Input::Tap {
                reader,
                badge,
                resolution,
            } => self.on_tap(&mut turn, reader, badge, resolution),
            Input::BadRead { reader, reason } => self.on_bad_read(&mut turn, reader, reason),
            Input::ReaderStatus {
                reader,
                online,
                detail,
            } => self.on_reader_status(reader, online, detail),
            Input::Inventory { present } => self.on_inventory(&mut turn, present),
            Input::Docked { slot, device } => self.on_docked(&mut turn, slot, device),
            Input::Undocked { slot, device } => self.on_undocked(&mut turn, slot, device),
            Input::Moved { from, to, device } => self.on_moved(&mut turn, from, to, device),
            Input::DeviceIdentified { device, result } => {
                self.on_identified(&mut turn, device, result)
            }
            Input::ActionSettled { action, outcome } => self.on_settled(&mut turn, action, outcome),
            Input::MdmHealth {
                reachable,
                waiting,
                last_error,
            } => {
                self.mdm = MdmView {
                    reachable: Some(reachable),
                    waiting,
                    last_error,
                };
            }
            Input::Admin(command) => self.on_admin(&mut turn, command),
            Input::Enrolled {
                badge,
                user,
                approved_by,
            } => self.on_enrolled(&mut turn, badge, user, approved_by),
            Input::FleetLoans { reachable, loans } => self.on_fleet_loans(reachable, loans),
            Input::Tick => {}
        }
        self.on_deadlines(&mut turn);
        self.finish(turn)
    }

    /// When the engine next wants a [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let expiries = self
            .checkouts
            .values()
            .filter(|c| c.state == CheckoutState::Reserved)
            .map(|c| c.expires_at);
        let retries = self.identify_retry.values().copied();
        let enrollment = self
            .enrollment
            .as_ref()
            .map(|e| e.since.plus_millis(ENROLLMENT_WINDOW_MS));
        expiries.chain(retries).chain(enrollment).min()
    }

    /// The current state for the screen.
    pub fn snapshot(&self) -> Snapshot {
        let slots = self
            .config
            .slots
            .iter()
            .map(|label| self.slot_view(label))
            .collect();
        let mut loans: Vec<LoanView> = self
            .checkouts
            .values()
            .filter(|c| c.state == CheckoutState::Out)
            .map(|c| {
                let since = c.taken_at.unwrap_or(c.reserved_at);
                LoanView {
                    holder: c.display_name.clone(),
                    username: c.username.clone(),
                    device: c.device.clone(),
                    device_name: self
                        .devices
                        .get(&c.device)
                        .and_then(|d| d.mdm.as_ref())
                        .map(|m| m.name.clone()),
                    slot: c.slot.clone(),
                    since,
                    overdue: self.now.millis_since(since) > self.config.overdue_ms,
                    sync: self.sync_state(&c.device),
                }
            })
            .collect();
        loans.sort_by_key(|loan| loan.since);
        Snapshot {
            station: self.config.station.clone(),
            at: self.now,
            instruction: self.instruction.clone(),
            slots,
            loans,
            readers: self.readers.values().cloned().collect(),
            // The engine knows exactly which actions are open; the worker's count can lag.
            mdm: MdmView {
                waiting: self.pending_action_count(),
                ..self.mdm.clone()
            },
            events: self.events.iter().cloned().collect(),
            open_reservations: self.open_reservations().len() as u32,
            fleet: self.fleet.as_ref().map(|(reachable, loans)| FleetView {
                reachable: *reachable,
                // Only loans that count against the limit now.
                remote_loans: if *reachable { loans.len() as u32 } else { 0 },
            }),
        }
    }

    // ----- inputs -------------------------------------------------------------------

    fn on_tap(
        &mut self,
        turn: &mut Turn,
        reader: ReaderName,
        badge: BadgeNumber,
        resolution: Resolution,
    ) {
        let decision = match resolution {
            Resolution::Known { user }
                if user.enroller && self.enrollment_waits_for_approval(&badge) =>
            {
                self.approve_enrollment(turn, &reader, &badge, user)
            }
            Resolution::Known { user } => self.check_out(turn, &reader, &badge, user),
            Resolution::Unknown => {
                self.enrollment = Some(PendingEnrollment {
                    badge: badge.clone(),
                    since: self.now,
                    approved_by: None,
                });
                self.refuse(
                    turn,
                    &reader,
                    &badge,
                    None,
                    "Badge not recognised — see the charge nurse",
                    "unknown badge",
                )
            }
            Resolution::Denied { user, reason } => {
                let headline = format!("{} — not allowed here", user.display_name.to_uppercase());
                self.refuse(
                    turn,
                    &reader,
                    &badge,
                    Some(&user.username),
                    &headline,
                    &reason,
                )
            }
            Resolution::Unavailable { reason } => self.refuse(
                turn,
                &reader,
                &badge,
                None,
                "Badge directory unreachable — try again or see the charge nurse",
                &reason,
            ),
        };
        turn.effects.push(Effect::Feedback {
            reader,
            ok: !matches!(decision, TapDecision::Refused { .. }),
        });
        turn.decision = Some(decision);
    }

    fn check_out(
        &mut self,
        turn: &mut Turn,
        reader: &ReaderName,
        badge: &BadgeNumber,
        user: crate::domain::User,
    ) -> TapDecision {
        // A second tap while a reservation is open shows the same slot again.
        if let Some(open) = self
            .checkouts
            .values()
            .find(|c| c.username == user.username && c.state == CheckoutState::Reserved)
            .cloned()
        {
            let headline = take_slot_headline(&open.display_name, &open.slot);
            self.set_instruction(
                Tone::Success,
                headline,
                "Your phone is ready: take it from the lit slot".into(),
            );
            self.audit(
                turn,
                "tap",
                Some(reader),
                Some(badge),
                Some(&user.username),
                Some(&open.device),
                Some(&open.slot),
                "tapped again; reservation still open",
            );
            return TapDecision::TakeSlot {
                display_name: open.display_name,
                slot: open.slot,
                device: open.device,
            };
        }
        let held: Vec<&CheckoutRecord> = self
            .checkouts
            .values()
            .filter(|c| c.username == user.username)
            .collect();
        // Loans at other stations count too, from the fleet's last view (never waited for).
        let remote: Vec<&RemoteLoan> = match &self.fleet {
            Some((true, loans)) => loans
                .iter()
                .filter(|l| l.username == user.username)
                .collect(),
            _ => Vec::new(),
        };
        if (held.len() + remote.len()) as u32 >= self.config.max_devices_per_user {
            let holding = held
                .iter()
                .map(|c| {
                    let name = self.device_name(&c.device);
                    format!("{name} (slot {})", c.slot)
                })
                .chain(remote.iter().map(|l| format!("a phone from {}", l.cabinet)))
                .collect::<Vec<_>>()
                .join(", ");
            let headline = match remote.first() {
                Some(loan) if held.is_empty() => format!(
                    "{} — you already have a phone from {}",
                    user.display_name.to_uppercase(),
                    loan.cabinet
                ),
                _ => format!(
                    "{} — you already have a phone",
                    user.display_name.to_uppercase()
                ),
            };
            let reason = format!("already holds {holding}; return it first");
            return self.refuse(
                turn,
                reader,
                badge,
                Some(&user.username),
                &headline,
                &reason,
            );
        }
        let Some(device) = self.select_device() else {
            let headline = format!("{} — no phone ready", user.display_name.to_uppercase());
            return self.refuse(
                turn,
                reader,
                badge,
                Some(&user.username),
                &headline,
                "no charged, checked-in phone is docked; see the charge nurse",
            );
        };
        let Some(slot) = self.devices.get(&device).and_then(|d| d.slot.clone()) else {
            return self.refuse(
                turn,
                reader,
                badge,
                Some(&user.username),
                "No phone ready — see the charge nurse",
                "selected device has no slot",
            );
        };
        let id = CheckoutId(self.counters.next_checkout);
        self.counters.next_checkout += 1;
        let checkout = CheckoutRecord {
            id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            device: device.clone(),
            slot: slot.clone(),
            state: CheckoutState::Reserved,
            reserved_at: self.now,
            expires_at: self.now.plus_millis(self.config.reservation_ms),
            taken_at: None,
            closed_at: None,
        };
        self.checkouts.insert(id, checkout.clone());
        turn.commit.checkouts.push(checkout.clone());
        self.update_device(turn, &device, |d| {
            d.status = DeviceStatus::Reserved { checkout: id }
        });
        if self.config.assign_at == AssignAt::Tap {
            self.queue_checkout_work(turn, &checkout);
        }
        self.audit(
            turn,
            "checkout-reserved",
            Some(reader),
            Some(badge),
            Some(&user.username),
            Some(&device),
            Some(&slot),
            &format!(
                "reserved {} in slot {slot} for {}",
                self.device_name(&device),
                user.display_name
            ),
        );
        self.event(format!("{} — take slot {slot}", user.display_name));
        self.set_instruction(
            Tone::Success,
            take_slot_headline(&user.display_name, &slot),
            format!("{} is ready for you", self.device_name(&device)),
        );
        TapDecision::TakeSlot {
            display_name: user.display_name,
            slot,
            device,
        }
    }

    fn enrollment_waits_for_approval(&self, enroller_badge: &BadgeNumber) -> bool {
        self.enrollment.as_ref().is_some_and(|pending| {
            pending.approved_by.is_none()
                && pending.badge != *enroller_badge
                && self.now.millis_since(pending.since) <= ENROLLMENT_WINDOW_MS
        })
    }

    fn approve_enrollment(
        &mut self,
        turn: &mut Turn,
        reader: &ReaderName,
        badge: &BadgeNumber,
        approver: crate::domain::User,
    ) -> TapDecision {
        let Some(pending) = self.enrollment.as_mut() else {
            return TapDecision::Refused {
                reason: "no badge is waiting for enrolment".into(),
            };
        };
        pending.approved_by = Some(approver.clone());
        pending.since = self.now;
        let new_badge = pending.badge.redacted();
        self.audit(
            turn,
            "enrollment-approved",
            Some(reader),
            Some(badge),
            Some(&approver.username),
            None,
            None,
            &format!(
                "{} approved the enrolment of badge {new_badge}",
                approver.display_name
            ),
        );
        self.event(format!(
            "{} approved enrolling badge {new_badge}",
            approver.display_name
        ));
        self.set_instruction(
            Tone::Info,
            format!("ENROLMENT APPROVED BY {}", approver.display_name.to_uppercase()),
            format!("Enter the username for badge {new_badge} on the dashboard or with: badgedock badges enroll USERNAME"),
        );
        TapDecision::EnrollmentApproved {
            approver: approver.display_name,
        }
    }

    /// The badge waiting for its username and who approved it, if an approval is open.
    pub fn approved_enrollment(&self) -> Option<(BadgeNumber, crate::domain::User)> {
        let pending = self.enrollment.as_ref()?;
        let approver = pending.approved_by.clone()?;
        (self.now.millis_since(pending.since) <= ENROLLMENT_WINDOW_MS)
            .then(|| (pending.badge.clone(), approver))
    }

    fn on_enrolled(
        &mut self,
        turn: &mut Turn,
        badge: BadgeNumber,
        user: crate::domain::User,
        approved_by: Username,
    ) {
        if self
            .enrollment
            .as_ref()
            .is_some_and(|pending| pending.badge == badge)
        {
            self.enrollment = None;
        }
        self.audit(
            turn,
            "enrolled",
            None,
            Some(&badge),
            Some(&user.username),
            None,
            None,
            &format!(
                "badge enrolled for {} ({}), approved by {approved_by}",
                user.display_name, user.username
            ),
        );
        self.event(format!(
            "Badge {} enrolled for {}",
            badge.redacted(),
            user.display_name
        ));
        self.set_instruction(
            Tone::Success,
            format!("BADGE ENROLLED FOR {}", user.display_name.to_uppercase()),
            "Tap the badge again to take a phone".into(),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        turn: &mut Turn,
        reader: &ReaderName,
        badge: &BadgeNumber,
        username: Option<&Username>,
        headline: &str,
        reason: &str,
    ) -> TapDecision {
        self.audit(
            turn,
            "tap-refused",
            Some(reader),
            Some(badge),
            username,
            None,
            None,
            reason,
        );
        self.event(format!("Tap refused ({}): {reason}", badge.redacted()));
        self.set_instruction(Tone::Error, headline.to_string(), capitalize(reason));
        TapDecision::Refused {
            reason: format!("{headline}: {reason}"),
        }
    }

    fn on_bad_read(&mut self, turn: &mut Turn, reader: ReaderName, reason: String) {
        self.audit(
            turn,
            "bad-read",
            Some(&reader),
            None,
            None,
            None,
            None,
            &reason,
        );
        self.event(format!("Reader {reader}: {reason}"));
        self.set_instruction(
            Tone::Error,
            "Badge not read — tap again".into(),
            capitalize(&reason),
        );
        turn.effects.push(Effect::Feedback { reader, ok: false });
    }

    fn on_reader_status(&mut self, reader: ReaderName, online: bool, detail: Option<String>) {
        let previous = self.readers.get(&reader).map(|r| r.online);
        if previous != Some(online) {
            self.event(if online {
                format!("Reader {reader} online")
            } else {
                format!("Reader {reader} offline")
            });
        }
        self.readers.insert(
            reader.clone(),
            ReaderView {
                name: reader,
                online,
                detail,
            },
        );
    }

    fn on_inventory(&mut self, turn: &mut Turn, present: Vec<(SlotLabel, DeviceKey)>) {
        // Devices we believe docked but absent now left while the daemon was down.
        let gone: Vec<(SlotLabel, DeviceKey)> = self
            .devices
            .values()
            .filter_map(|d| d.slot.clone().map(|slot| (slot, d.key.clone())))
            .filter(|(_, key)| !present.iter().any(|(_, p)| p == key))
            .collect();
        for (slot, device) in gone {
            self.on_undocked(turn, slot, device);
        }
        for (slot, device) in present {
            self.on_docked(turn, slot, device);
        }
    }

    fn on_docked(&mut self, turn: &mut Turn, slot: SlotLabel, device: DeviceKey) {
        // Another device recorded in this slot must have left unseen.
        let previous: Vec<DeviceKey> = self
            .devices
            .values()
            .filter(|d| d.slot.as_ref() == Some(&slot) && d.key != device)
            .map(|d| d.key.clone())
            .collect();
        for other in previous {
            self.on_undocked(turn, slot.clone(), other);
        }
        let Some(record) = self.devices.get(&device).cloned() else {
            let record = DeviceRecord {
                key: device.clone(),
                slot: Some(slot.clone()),
                status: DeviceStatus::Identifying,
                mdm: None,
                docked_since: Some(self.now),
                failures: 0,
                set_aside: false,
            };
            self.devices.insert(device.clone(), record.clone());
            turn.commit.devices.push(record);
            turn.effects.push(Effect::Identify {
                device: device.clone(),
            });
            self.audit(
                turn,
                "docked",
                None,
                None,
                None,
                Some(&device),
                Some(&slot),
                "new device docked; asking Workspace ONE what it is",
            );
            self.event(format!("Slot {slot}: new device, identifying"));
            return;
        };
        match record.status {
            DeviceStatus::CheckedOut { checkout } => {
                self.check_in(turn, &device, &slot, Some(checkout))
            }
            DeviceStatus::Missing => self.check_in(turn, &device, &slot, None),
            _ if record.slot.as_ref() == Some(&slot) => {}
            _ => {
                // Known device, docked again where we did not expect it: take the new slot.
                let moved_reservation = match record.status {
                    DeviceStatus::Reserved { checkout } => Some(checkout),
                    _ => None,
                };
                let now = self.now;
                self.update_device(turn, &device, |d| {
                    d.slot = Some(slot.clone());
                    d.docked_since.get_or_insert(now);
                });
                if let Some(id) = moved_reservation {
                    self.update_checkout(turn, id, |c| c.slot = slot.clone());
                }
                if record.status == DeviceStatus::Identifying && record.mdm.is_none() {
                    turn.effects.push(Effect::Identify {
                        device: device.clone(),
                    });
                }
            }
        }
    }

    fn on_undocked(&mut self, turn: &mut Turn, slot: SlotLabel, device: DeviceKey) {
        let Some(record) = self.devices.get(&device).cloned() else {
            return;
        };
        if record.slot.is_none() {
            return;
        }
        match record.status {
            DeviceStatus::Reserved { checkout } => self.taken(turn, &device, &slot, checkout),
            DeviceStatus::Available => {
                let open = self.open_reservations();
                if open.len() == 1 {
                    let id = open[0];
                    self.follow_device_taken(turn, id, &device, &slot);
                } else {
                    let why = if open.is_empty() {
                        "taken without a badge tap".to_string()
                    } else {
                        format!(
                            "taken while {} reservations were open: cannot tell whose it is",
                            open.len()
                        )
                    };
                    self.flag_missing(turn, &device, &slot, &why);
                }
            }
            DeviceStatus::CheckingIn { .. } => {
                self.flag_missing(turn, &device, &slot, "taken before its check-in finished")
            }
            DeviceStatus::Identifying => {
                self.identify_retry.remove(&device);
                self.update_device(turn, &device, |d| {
                    d.slot = None;
                    d.status = DeviceStatus::Missing;
                });
                self.event(format!("Slot {slot}: unidentified device removed"));
            }
            DeviceStatus::CheckedOut { .. } | DeviceStatus::Missing => {
                self.update_device(turn, &device, |d| d.slot = None);
            }
        }
    }

    fn on_moved(&mut self, turn: &mut Turn, from: SlotLabel, to: SlotLabel, device: DeviceKey) {
        let Some(record) = self.devices.get(&device).cloned() else {
            self.on_docked(turn, to, device);
            return;
        };
        if let DeviceStatus::Reserved { checkout } = record.status {
            self.update_checkout(turn, checkout, |c| c.slot = to.clone());
            if let Some(c) = self.checkouts.get(&checkout).cloned() {
                self.set_instruction(
                    Tone::Success,
                    take_slot_headline(&c.display_name, &to),
                    format!("Phone moved from slot {from}"),
                );
            }
        }
        self.update_device(turn, &device, |d| d.slot = Some(to.clone()));
        self.audit(
            turn,
            "moved",
            None,
            None,
            None,
            Some(&device),
            Some(&to),
            &format!("moved from slot {from} to slot {to}"),
        );
        self.event(format!(
            "{} moved from slot {from} to slot {to}",
            self.device_name(&device)
        ));
    }

    fn on_identified(
        &mut self,
        turn: &mut Turn,
        device: DeviceKey,
        result: Result<MdmDeviceInfo, String>,
    ) {
        let Some(record) = self.devices.get(&device).cloned() else {
            return;
        };
        match result {
            Err(message) => {
                self.identify_retry
                    .insert(device.clone(), self.now.plus_millis(IDENTIFY_RETRY_MS));
                if record.status == DeviceStatus::Identifying {
                    self.event(format!(
                        "Slot {}: Workspace ONE could not identify the device: {message}",
                        slot_text(&record.slot)
                    ));
                }
            }
            Ok(info) => {
                self.identify_retry.remove(&device);
                let wipe_pending = info.wipe_pending;
                let elsewhere_user = info
                    .enrollment_user
                    .clone()
                    .filter(|user| *user != self.config.staging_user);
                self.update_device(turn, &device, |d| d.mdm = Some(info));
                if record.status != DeviceStatus::Identifying {
                    return;
                }
                let slot = record.slot.clone();
                if wipe_pending {
                    self.update_device(turn, &device, |d| {
                        d.status = DeviceStatus::Available;
                        d.set_aside = true;
                    });
                    self.audit(
                        turn,
                        "set-aside",
                        None,
                        None,
                        None,
                        Some(&device),
                        slot.as_ref(),
                        "Workspace ONE has a wipe pending for this device",
                    );
                    self.event(format!(
                        "Slot {}: wipe pending in Workspace ONE — set aside",
                        slot_text(&slot)
                    ));
                } else if let (Some(user), Some(slot)) = (elsewhere_user, slot.clone()) {
                    self.audit(
                        turn,
                        "checkin-foreign",
                        None,
                        None,
                        Some(&user),
                        Some(&device),
                        Some(&slot),
                        &format!("enrolled to {user} (checked out elsewhere); checking it in"),
                    );
                    self.check_in(turn, &device, &slot, None);
                } else {
                    self.update_device(turn, &device, |d| d.status = DeviceStatus::Available);
                    self.event(format!(
                        "Slot {}: {} ready",
                        slot_text(&slot),
                        self.device_name(&device)
                    ));
                }
            }
        }
    }

    fn on_settled(&mut self, turn: &mut Turn, id: ActionId, outcome: ActionOutcome) {
        let Some(action) = self.actions.get(&id).cloned() else {
            return; // Already settled or cancelled: a late answer changes nothing.
        };
        match outcome {
            ActionOutcome::Retrying { message, .. } => {
                if let Some(a) = self.actions.get_mut(&id) {
                    a.note = Some(message);
                }
            }
            ActionOutcome::Done => {
                self.set_action_state(turn, id, ActionState::Done, Some("done".into()));
                self.maybe_finish_checkin(turn, &action.device);
            }
            ActionOutcome::Failed { message } => {
                self.set_action_state(turn, id, ActionState::Failed, Some(message.clone()));
                let threshold = self.config.failure_threshold;
                let mut newly_set_aside = false;
                self.update_device(turn, &action.device, |d| {
                    d.failures += 1;
                    if d.failures >= threshold && !d.set_aside {
                        d.set_aside = true;
                        newly_set_aside = true;
                    }
                });
                let slot = self
                    .devices
                    .get(&action.device)
                    .and_then(|d| d.slot.clone());
                let what = describe_action(&action.action);
                self.audit(
                    turn,
                    "action-failed",
                    None,
                    None,
                    None,
                    Some(&action.device),
                    slot.as_ref(),
                    &format!("{what} failed: {message}"),
                );
                self.event(format!(
                    "{}: {what} failed: {message}",
                    self.device_name(&action.device)
                ));
                if newly_set_aside {
                    self.audit(
                        turn,
                        "set-aside",
                        None,
                        None,
                        None,
                        Some(&action.device),
                        slot.as_ref(),
                        "set aside after repeated Workspace ONE failures",
                    );
                }
                // A reservation whose assignment was refused must not send a nurse to a phone
                // that is not hers: cancel it and say so.
                if let Some(checkout_id) = action.checkout {
                    let reserved = self
                        .checkouts
                        .get(&checkout_id)
                        .filter(|c| c.state == CheckoutState::Reserved)
                        .cloned();
                    if let (Some(checkout), ActionPurpose::CheckOut) = (reserved, action.purpose) {
                        self.end_reservation(
                            turn,
                            checkout_id,
                            CheckoutState::Cancelled,
                            "assignment refused by Workspace ONE",
                        );
                        self.set_instruction(
                            Tone::Error,
                            format!("{} — DO NOT TAKE SLOT {}", checkout.display_name.to_uppercase(), checkout.slot),
                            format!("Workspace ONE refused the assignment: {message}. See the charge nurse"),
                        );
                    }
                }
            }
        }
    }

    fn on_admin(&mut self, turn: &mut Turn, command: AdminCommand) {
        match command {
            AdminCommand::Retry { slot } => {
                let Some(device) = self.device_in_slot(&slot) else {
                    self.event(format!("Admin: slot {slot} is empty"));
                    return;
                };
                self.update_device(turn, &device, |d| {
                    d.set_aside = false;
                    d.failures = 0;
                });
                let failed: Vec<ActionRecord> = self
                    .actions
                    .values()
                    .filter(|a| a.device == device && a.state == ActionState::Failed)
                    .cloned()
                    .collect();
                for old in failed {
                    self.set_action_state(
                        turn,
                        old.id,
                        ActionState::Cancelled,
                        Some("retried by an operator".into()),
                    );
                    self.queue_action(turn, &device, old.checkout, old.purpose, old.action);
                }
                let status = self.devices.get(&device).map(|d| d.status.clone());
                if status == Some(DeviceStatus::Identifying) {
                    turn.effects.push(Effect::Identify {
                        device: device.clone(),
                    });
                }
                self.audit(
                    turn,
                    "admin-retry",
                    None,
                    None,
                    None,
                    Some(&device),
                    Some(&slot),
                    "operator retried failed work and returned the device to service",
                );
                self.event(format!("Admin: slot {slot} retried"));
                self.maybe_finish_checkin(turn, &device);
            }
            AdminCommand::CancelReservation { slot } => {
                let reserved = self
                    .checkouts
                    .values()
                    .find(|c| c.slot == slot && c.state == CheckoutState::Reserved)
                    .map(|c| c.id);
                match reserved {
                    Some(id) => {
                        self.end_reservation(
                            turn,
                            id,
                            CheckoutState::Cancelled,
                            "cancelled by an operator",
                        );
                        self.event(format!("Admin: reservation on slot {slot} cancelled"));
                    }
                    None => self.event(format!("Admin: no open reservation on slot {slot}")),
                }
            }
        }
    }

    fn on_deadlines(&mut self, turn: &mut Turn) {
        if self
            .enrollment
            .as_ref()
            .is_some_and(|pending| self.now.millis_since(pending.since) > ENROLLMENT_WINDOW_MS)
        {
            if self
                .enrollment
                .as_ref()
                .is_some_and(|pending| pending.approved_by.is_some())
            {
                self.event("Enrolment approval expired: no username was entered".into());
            }
            self.enrollment = None;
        }
        let expired: Vec<CheckoutId> = self
            .checkouts
            .values()
            .filter(|c| c.state == CheckoutState::Reserved && c.expires_at <= self.now)
            .map(|c| c.id)
            .collect();
        for id in expired {
            if let Some(checkout) = self.checkouts.get(&id).cloned() {
                self.end_reservation(
                    turn,
                    id,
                    CheckoutState::Expired,
                    "nobody took the phone in time",
                );
                self.event(format!(
                    "Reservation for {} expired; slot {} back in service",
                    checkout.display_name, checkout.slot
                ));
            }
        }
        let due: Vec<DeviceKey> = self
            .identify_retry
            .iter()
            .filter(|(_, at)| **at <= self.now)
            .map(|(key, _)| key.clone())
            .collect();
        for device in due {
            self.identify_retry.remove(&device);
            let docked = self.devices.get(&device).is_some_and(|d| d.slot.is_some());
            if docked {
                turn.effects.push(Effect::Identify { device });
            }
        }
    }

    // ----- transitions --------------------------------------------------------------

    fn taken(
        &mut self,
        turn: &mut Turn,
        device: &DeviceKey,
        slot: &SlotLabel,
        checkout_id: CheckoutId,
    ) {
        let now = self.now;
        self.update_checkout(turn, checkout_id, |c| {
            c.state = CheckoutState::Out;
            c.taken_at = Some(now);
        });
        self.update_device(turn, device, |d| {
            d.slot = None;
            d.docked_since = None;
            d.status = DeviceStatus::CheckedOut {
                checkout: checkout_id,
            };
        });
        let Some(checkout) = self.checkouts.get(&checkout_id).cloned() else {
            return;
        };
        if self.config.assign_at == AssignAt::Undock {
            self.queue_checkout_work(turn, &checkout);
        }
        self.audit(
            turn,
            "checkout",
            None,
            None,
            Some(&checkout.username),
            Some(device),
            Some(slot),
            &format!(
                "{} took {} from slot {slot}",
                checkout.display_name,
                self.device_name(device)
            ),
        );
        self.event(format!("{} took slot {slot}", checkout.display_name));
        self.set_instruction(
            Tone::Idle,
            "Tap your badge".into(),
            format!("{} has their phone", checkout.display_name),
        );
    }

    /// The one open reservation follows the available device that was actually taken.
    fn follow_device_taken(
        &mut self,
        turn: &mut Turn,
        checkout_id: CheckoutId,
        taken: &DeviceKey,
        slot: &SlotLabel,
    ) {
        let Some(checkout) = self.checkouts.get(&checkout_id).cloned() else {
            return;
        };
        let reserved_device = checkout.device.clone();
        // Undo whatever was queued or done for the reserved device.
        self.undo_checkout_work(turn, &reserved_device, checkout_id);
        let reserved_status = if self.has_open_actions(&reserved_device) {
            DeviceStatus::CheckingIn { checkout: None }
        } else {
            DeviceStatus::Available
        };
        self.update_device(turn, &reserved_device, |d| d.status = reserved_status);
        self.update_checkout(turn, checkout_id, |c| {
            c.device = taken.clone();
            c.slot = slot.clone();
        });
        self.update_device(turn, taken, |d| {
            d.status = DeviceStatus::Reserved {
                checkout: checkout_id,
            }
        });
        if self.config.assign_at == AssignAt::Tap {
            if let Some(moved) = self.checkouts.get(&checkout_id).cloned() {
                self.queue_checkout_work(turn, &moved);
            }
        }
        self.audit(
            turn,
            "reservation-moved",
            None,
            None,
            Some(&checkout.username),
            Some(taken),
            Some(slot),
            &format!(
                "{} took slot {slot} instead of slot {}; the check-out follows the device taken",
                checkout.display_name, checkout.slot
            ),
        );
        self.taken(turn, taken, slot, checkout_id);
        self.event(format!(
            "{} took slot {slot} instead of slot {}: assignment moved",
            checkout.display_name, checkout.slot
        ));
    }

    fn flag_missing(&mut self, turn: &mut Turn, device: &DeviceKey, slot: &SlotLabel, why: &str) {
        self.update_device(turn, device, |d| {
            d.slot = None;
            d.docked_since = None;
            d.status = DeviceStatus::Missing;
        });
        self.audit(
            turn,
            "unexpected-removal",
            None,
            None,
            None,
            Some(device),
            Some(slot),
            why,
        );
        self.event(format!("Slot {slot}: {} {why}", self.device_name(device)));
        self.set_instruction(
            Tone::Error,
            format!("SLOT {slot} REMOVED WITHOUT CHECK-OUT"),
            format!(
                "{} was {why} — see the charge nurse",
                self.device_name(device)
            ),
        );
    }

    fn check_in(
        &mut self,
        turn: &mut Turn,
        device: &DeviceKey,
        slot: &SlotLabel,
        checkout_id: Option<CheckoutId>,
    ) {
        let holder = checkout_id
            .and_then(|id| self.checkouts.get(&id))
            .map(|c| (c.username.clone(), c.display_name.clone()));
        if let Some(id) = checkout_id {
            let now = self.now;
            self.update_checkout(turn, id, |c| {
                c.state = CheckoutState::Returned;
                c.closed_at = Some(now);
            });
            self.checkouts.remove(&id);
        }
        let now = self.now;
        self.update_device(turn, device, |d| {
            d.slot = Some(slot.clone());
            d.docked_since = Some(now);
            d.status = DeviceStatus::CheckingIn {
                checkout: checkout_id,
            };
        });
        let platform = device.platform;
        let steps = self
            .config
            .checkin_steps
            .get(&platform)
            .cloned()
            .unwrap_or_default();
        for step in steps {
            if let Some(action) = self.action_for_step(
                &step,
                "checkin",
                holder.as_ref().map(|(u, _)| u),
                device,
                slot,
            ) {
                self.queue_action(turn, device, checkout_id, ActionPurpose::CheckIn, action);
            }
        }
        let who = holder.as_ref().map(|(_, name)| name.clone());
        self.audit(
            turn,
            "checkin",
            None,
            None,
            holder.as_ref().map(|(u, _)| u),
            Some(device),
            Some(slot),
            &format!(
                "{} returned to slot {slot}{}",
                self.device_name(device),
                who.as_deref()
                    .map(|w| format!(" by {w}"))
                    .unwrap_or_default()
            ),
        );
        self.event(format!(
            "Slot {slot} returned{}",
            who.as_deref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        ));
        self.set_instruction(
            Tone::Info,
            format!("Slot {slot} returned"),
            "Thank you — checking it in".into(),
        );
        self.maybe_finish_checkin(turn, device);
    }

    fn maybe_finish_checkin(&mut self, turn: &mut Turn, device: &DeviceKey) {
        let checking_in = matches!(
            self.devices.get(device).map(|d| &d.status),
            Some(DeviceStatus::CheckingIn { .. })
        );
        if !checking_in || self.has_open_actions(device) {
            return;
        }
        self.update_device(turn, device, |d| {
            d.status = DeviceStatus::Available;
            d.failures = 0;
            d.set_aside = false;
        });
        let slot = self.devices.get(device).and_then(|d| d.slot.clone());
        self.event(format!(
            "Slot {}: {} checked in, ready",
            slot_text(&slot),
            self.device_name(device)
        ));
    }

    fn end_reservation(
        &mut self,
        turn: &mut Turn,
        id: CheckoutId,
        state: CheckoutState,
        why: &str,
    ) {
        let Some(checkout) = self.checkouts.get(&id).cloned() else {
            return;
        };
        let now = self.now;
        self.update_checkout(turn, id, |c| {
            c.state = state;
            c.closed_at = Some(now);
        });
        self.checkouts.remove(&id);
        self.undo_checkout_work(turn, &checkout.device, id);
        let status = if self.has_open_actions(&checkout.device) {
            DeviceStatus::CheckingIn { checkout: None }
        } else {
            DeviceStatus::Available
        };
        let still_reserved = matches!(
            self.devices.get(&checkout.device).map(|d| &d.status),
            Some(DeviceStatus::Reserved { checkout }) if *checkout == id
        );
        if still_reserved {
            self.update_device(turn, &checkout.device, |d| d.status = status);
        }
        let kind = match state {
            CheckoutState::Expired => "expired",
            _ => "reservation-cancelled",
        };
        self.audit(
            turn,
            kind,
            None,
            None,
            Some(&checkout.username),
            Some(&checkout.device),
            Some(&checkout.slot),
            why,
        );
    }

    /// Cancels the check-out's unsent work on `device`, and queues the undo steps when some
    /// of it may already have reached Workspace ONE.
    fn undo_checkout_work(&mut self, turn: &mut Turn, device: &DeviceKey, checkout_id: CheckoutId) {
        let work: Vec<ActionRecord> = self
            .actions
            .values()
            .filter(|a| {
                a.device == *device
                    && a.checkout == Some(checkout_id)
                    && a.purpose == ActionPurpose::CheckOut
            })
            .cloned()
            .collect();
        let was_queued = !work.is_empty() || self.config.assign_at == AssignAt::Tap;
        for action in &work {
            self.set_action_state(
                turn,
                action.id,
                ActionState::Cancelled,
                Some("superseded: the reservation ended or moved".into()),
            );
        }
        if !was_queued {
            return;
        }
        // Pending work may be in flight right now, and done work must be reverted: queue the
        // reversal (staging user back, plus a sync) after it; actions of one device run in order.
        let steps = self
            .config
            .checkout_steps
            .get(&device.platform)
            .cloned()
            .unwrap_or_default();
        if steps.contains(&WorkflowStep::AssignUser) {
            self.queue_action(
                turn,
                device,
                Some(checkout_id),
                ActionPurpose::Undo,
                MdmAction::AssignStagingUser,
            );
            self.queue_action(
                turn,
                device,
                Some(checkout_id),
                ActionPurpose::Undo,
                MdmAction::Command {
                    command: DeviceCommand::SyncDevice,
                },
            );
        }
    }

    fn queue_checkout_work(&mut self, turn: &mut Turn, checkout: &CheckoutRecord) {
        let steps = self
            .config
            .checkout_steps
            .get(&checkout.device.platform)
            .cloned()
            .unwrap_or_default();
        let mut done = Vec::new();
        for step in &steps {
            if let Some(action) = self.action_for_step(
                step,
                "checkout",
                Some(&checkout.username),
                &checkout.device,
                &checkout.slot,
            ) {
                done.push(describe_action(&action));
                self.queue_action(
                    turn,
                    &checkout.device,
                    Some(checkout.id),
                    ActionPurpose::CheckOut,
                    action,
                );
            }
        }
        if !steps.contains(&WorkflowStep::AssignUser) {
            // Android (by default): Workspace ONE documents the enrolment-user change for
            // iOS/macOS only, so it is not sent; say what was done instead.
            let instead = if done.is_empty() {
                "nothing".to_string()
            } else {
                done.join(", ")
            };
            let detail = format!(
                "enrolment-user change not sent for {} devices (Workspace ONE documents it for iOS/macOS only); ran instead: {instead}",
                checkout.device.platform
            );
            self.audit(
                turn,
                "checkout-workflow",
                None,
                None,
                Some(&checkout.username),
                Some(&checkout.device),
                Some(&checkout.slot),
                &detail,
            );
            self.event(format!("{}: {detail}", self.device_name(&checkout.device)));
        }
    }

    fn action_for_step(
        &self,
        step: &WorkflowStep,
        event: &str,
        username: Option<&Username>,
        device: &DeviceKey,
        slot: &SlotLabel,
    ) -> Option<MdmAction> {
        Some(match step {
            WorkflowStep::AssignUser => MdmAction::AssignUser {
                username: username?.clone(),
            },
            WorkflowStep::AssignStagingUser => MdmAction::AssignStagingUser,
            WorkflowStep::Command { command } => MdmAction::Command { command: *command },
            WorkflowStep::ChangeOrganizationGroup { group_id } => {
                MdmAction::ChangeOrganizationGroup {
                    group_id: *group_id,
                }
            }
            WorkflowStep::Webhook { url } => MdmAction::Webhook {
                url: url.clone(),
                body: serde_json::json!({
                    "event": event,
                    "station": self.config.station,
                    "username": username.map(Username::as_str),
                    "device": device.id,
                    "platform": device.platform,
                    "slot": slot.as_str(),
                    "at": self.now.0,
                })
                .to_string(),
            },
        })
    }

    fn queue_action(
        &mut self,
        turn: &mut Turn,
        device: &DeviceKey,
        checkout: Option<CheckoutId>,
        purpose: ActionPurpose,
        action: MdmAction,
    ) {
        let id = ActionId(self.counters.next_action);
        self.counters.next_action += 1;
        let record = ActionRecord {
            id,
            device: device.clone(),
            checkout,
            purpose,
            action,
            state: ActionState::Pending,
            created_at: self.now,
            note: None,
        };
        self.actions.insert(id, record.clone());
        turn.commit.actions.push(record);
        turn.wake_outbox = true;
    }

    fn set_action_state(
        &mut self,
        turn: &mut Turn,
        id: ActionId,
        state: ActionState,
        note: Option<String>,
    ) {
        let Some(mut record) = self.actions.get(&id).cloned() else {
            return;
        };
        record.state = state.clone();
        record.note = note;
        match state {
            ActionState::Pending | ActionState::Failed => {
                self.actions.insert(id, record.clone());
            }
            ActionState::Done | ActionState::Cancelled => {
                self.actions.remove(&id);
            }
        }
        turn.commit.actions.retain(|a| a.id != id);
        turn.commit.actions.push(record);
    }

    // ----- helpers ------------------------------------------------------------------

    fn select_device(&self) -> Option<DeviceKey> {
        let slot_order = |slot: &Option<SlotLabel>| {
            slot.as_ref()
                .and_then(|s| self.config.slots.iter().position(|c| c == s))
                .unwrap_or(usize::MAX)
        };
        self.devices
            .values()
            .filter(|d| {
                d.slot.is_some()
                    && d.status == DeviceStatus::Available
                    && !d.set_aside
                    && d.mdm.is_some()
            })
            .filter(|d| !self.has_open_actions(&d.key))
            .min_by_key(|d| {
                (
                    d.docked_since.unwrap_or(Timestamp(i64::MAX)),
                    slot_order(&d.slot),
                )
            })
            .map(|d| d.key.clone())
    }

    fn open_reservations(&self) -> Vec<CheckoutId> {
        self.checkouts
            .values()
            .filter(|c| c.state == CheckoutState::Reserved)
            .map(|c| c.id)
            .collect()
    }

    fn has_open_actions(&self, device: &DeviceKey) -> bool {
        self.actions.values().any(|a| a.device == *device)
    }

    fn pending_action_count(&self) -> u32 {
        self.actions
            .values()
            .filter(|a| a.state == ActionState::Pending)
            .count() as u32
    }

    fn device_in_slot(&self, slot: &SlotLabel) -> Option<DeviceKey> {
        self.devices
            .values()
            .find(|d| d.slot.as_ref() == Some(slot))
            .map(|d| d.key.clone())
    }

    fn device_name(&self, device: &DeviceKey) -> String {
        self.devices
            .get(device)
            .and_then(|d| d.mdm.as_ref())
            .map(|m| m.name.clone())
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| short_device(device))
    }

    fn sync_state(&self, device: &DeviceKey) -> SyncState {
        let mut state = SyncState::Synced;
        for action in self.actions.values().filter(|a| a.device == *device) {
            match action.state {
                ActionState::Failed => return SyncState::Failed,
                ActionState::Pending => state = SyncState::Pending,
                _ => {}
            }
        }
        state
    }

    fn slot_view(&self, label: &SlotLabel) -> SlotView {
        let Some(device) = self
            .devices
            .values()
            .find(|d| d.slot.as_ref() == Some(label))
        else {
            return SlotView {
                label: label.clone(),
                state: SlotState::Empty,
                device: None,
                platform: None,
                device_name: None,
                mdm_id: None,
                holder: None,
                since: None,
                sync: SyncState::Synced,
                note: None,
            };
        };
        let sync = self.sync_state(&device.key);
        let (state, holder, since) = match &device.status {
            DeviceStatus::Identifying if self.identify_retry.contains_key(&device.key) => {
                (SlotState::Unidentified, None, device.docked_since)
            }
            DeviceStatus::Identifying => (SlotState::Identifying, None, device.docked_since),
            DeviceStatus::Reserved { checkout } => {
                let c = self.checkouts.get(checkout);
                (
                    SlotState::Reserved,
                    c.map(|c| c.display_name.clone()),
                    c.map(|c| c.reserved_at),
                )
            }
            _ if device.set_aside => (SlotState::SetAside, None, device.docked_since),
            DeviceStatus::CheckingIn { .. } => (SlotState::CheckingIn, None, device.docked_since),
            DeviceStatus::Available if self.has_open_actions(&device.key) => {
                (SlotState::CheckingIn, None, device.docked_since)
            }
            _ => (SlotState::Available, None, device.docked_since),
        };
        let note = self
            .actions
            .values()
            .filter(|a| a.device == device.key)
            .find_map(|a| {
                a.note
                    .clone()
                    .filter(|_| a.state == ActionState::Failed || sync == SyncState::Pending)
            });
        SlotView {
            label: label.clone(),
            state,
            device: Some(device.key.clone()),
            platform: Some(device.key.platform),
            device_name: device.mdm.as_ref().map(|m| m.name.clone()),
            mdm_id: device.mdm.as_ref().map(|m| m.mdm_id),
            holder,
            since,
            sync,
            note,
        }
    }

    fn update_device(
        &mut self,
        turn: &mut Turn,
        device: &DeviceKey,
        change: impl FnOnce(&mut DeviceRecord),
    ) {
        let Some(record) = self.devices.get_mut(device) else {
            return;
        };
        change(record);
        let record = record.clone();
        turn.commit.devices.retain(|d| d.key != record.key);
        turn.commit.devices.push(record);
    }

    fn update_checkout(
        &mut self,
        turn: &mut Turn,
        id: CheckoutId,
        change: impl FnOnce(&mut CheckoutRecord),
    ) {
        let Some(record) = self.checkouts.get_mut(&id) else {
            return;
        };
        change(record);
        let record = record.clone();
        turn.commit.checkouts.retain(|c| c.id != record.id);
        turn.commit.checkouts.push(record);
    }

    #[allow(clippy::too_many_arguments)]
    fn audit(
        &self,
        turn: &mut Turn,
        kind: &str,
        reader: Option<&ReaderName>,
        badge: Option<&BadgeNumber>,
        username: Option<&Username>,
        device: Option<&DeviceKey>,
        slot: Option<&SlotLabel>,
        detail: &str,
    ) {
        turn.commit.audit.push(AuditEntry {
            at: self.now,
            kind: kind.to_string(),
            reader: reader.cloned(),
            badge: badge.map(BadgeNumber::redacted),
            username: username.cloned(),
            device: device.cloned(),
            slot: slot.cloned(),
            detail: detail.to_string(),
        });
    }

    /// The fleet task's view of loans at other stations; a change of reachability is
    /// said on the events pane.
    fn on_fleet_loans(&mut self, reachable: bool, loans: Vec<RemoteLoan>) {
        let was = self.fleet.as_ref().map(|(reachable, _)| *reachable);
        if was != Some(reachable) {
            self.event(if reachable {
                "Fleet reachable: the per-user limit counts loans at every cabinet".into()
            } else {
                "Fleet unreachable: the per-user limit counts this cabinet's loans only".into()
            });
        }
        self.fleet = Some((reachable, loans));
    }

    fn event(&mut self, text: String) {
        self.events.push_front(EventView { at: self.now, text });
        self.events.truncate(MAX_EVENTS);
    }

    fn set_instruction(&mut self, tone: Tone, headline: String, detail: String) {
        self.instruction = Instruction {
            tone,
            headline,
            detail,
            at: self.now,
        };
    }

    fn finish(&mut self, turn: Turn) -> Vec<Effect> {
        let Turn {
            mut commit,
            effects,
            wake_outbox,
            decision,
        } = turn;
        let mut out = Vec::with_capacity(effects.len() + 3);
        if !commit.is_empty() {
            commit.counters = self.counters;
            out.push(Effect::Commit(commit));
        }
        out.extend(effects);
        if wake_outbox {
            out.push(Effect::WakeOutbox);
        }
        if let Some(decision) = decision {
            out.push(Effect::Decision(decision));
        }
        out
    }
}

fn idle_instruction(now: Timestamp) -> Instruction {
    Instruction {
        tone: Tone::Idle,
        headline: "Tap your badge".into(),
        detail: String::new(),
        at: now,
    }
}

fn take_slot_headline(display_name: &str, slot: &SlotLabel) -> String {
    format!("{} — TAKE SLOT {slot}", display_name.to_uppercase())
}

fn slot_text(slot: &Option<SlotLabel>) -> String {
    slot.as_ref()
        .map(|s| s.to_string())
        .unwrap_or_else(|| "?".into())
}

fn short_device(device: &DeviceKey) -> String {
    let id = &device.id;
    let n_chars = id.chars().count();
    let tail: String = id.chars().skip(n_chars.saturating_sub(6)).collect();
    format!(
        "{} …{tail}",
        match device.platform {
            Platform::Apple => "iPhone",
            Platform::Android => "Android",
        }
    )
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A few words for an action, for the screen and the audit.
pub fn describe_action(action: &MdmAction) -> String {
    match action {
        MdmAction::AssignUser { username } => format!("assign to {username}"),
        MdmAction::AssignStagingUser => "assign back to the staging user".into(),
        MdmAction::Command { command } => command.api_name().to_string(),
        MdmAction::ChangeOrganizationGroup { group_id } => {
            format!("move to organization group {group_id}")
        }
        MdmAction::Webhook { .. } => "webhook".into(),
    }
}
