//! The check-out engine: a pure state machine, `handle(now, input) -> effects`.
//!
//! It does no I/O, reads no clock, draws no random numbers and cannot fail. The daemon's
//! engine loop stamps each [`Input`] with the time ([`Now`]: wall time for what is shown
//! and stored, a monotonic clock for every duration), performs the returned [`Effect`]s in
//! order (a [`Commit`] first, durably, before anything is shown or answered) and
//! publishes [`Engine::snapshot`].
//!
//! The rules, in one place (each flow has its own file: `taps`, `docks`, `actions`,
//! `admin`, `view`):
//! - A tap by a known user under their device limit reserves the docked, confirmed,
//!   available device that has been on charge longest (set-aside devices and devices
//!   with MDM work outstanding are skipped). A second tap shows the same slot and renews
//!   the reservation's deadline.
//! - A reservation becomes a loan when its device leaves the cabinet. An available phone
//!   that leaves is followed tentatively: if it comes back within the reboot window
//!   nothing happened; if not, the one reservation open when it left follows it (the
//!   first device's check-out work is undone), or it is flagged missing.
//! - Only a phone that is ours (handed out here, or shown by Workspace ONE as staged by
//!   the staging user or a shared device of the station's groups) gets any check-in
//!   action; anything else docked is shown as foreign and left alone.
//! - A docked phone that is out on loan, missing, lost, or ours but enrolled to someone
//!   else runs the check-in workflow and becomes available only when Workspace ONE
//!   confirms it (after a wipe: enrolled to the staging user again). Docking it again
//!   while that is under way sends nothing new.
//! - Loans closed elsewhere are learnt from Workspace ONE (asked when a holder is at her
//!   limit, and periodically); an operator may close a loan or mark a phone lost.
//! - A device whose MDM work keeps failing is set aside until it checks in cleanly.

mod actions;
mod admin;
mod docks;
mod lending;
mod taps;
mod time;
mod types;
mod view;

#[cfg(test)]
mod lending_tests;
#[cfg(test)]
mod tests;

pub use lending::{
    LendingConfig, DEFAULT_LOST_MODE_OFF_PATH, DEFAULT_LOST_MODE_ON_PATH, DEFAULT_MESSAGE_PATH,
};
pub use time::{Mono, Now};
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
    /// How long a phone that left may take to come back (a restart, a reseated cable)
    /// before its leaving is settled as taken.
    pub reboot_window_ms: i64,
    /// Organization groups whose shared phones are the station's; empty means any.
    pub organization_groups: Vec<i64>,
    /// Due times, curfews, the escalation ladder and broken phones (`[lending]`).
    pub lending: LendingConfig,
}

impl EngineConfig {
    /// The default reboot window: phones restart in 3–90 s.
    pub const DEFAULT_REBOOT_WINDOW_MS: i64 = 120_000;
}

/// How long after an unknown badge a supervisor may approve its enrolment, and how long
/// the approval then waits for the username.
const ENROLLMENT_WINDOW_MS: i64 = 120_000;

/// An unknown badge waiting for a supervisor, then for its username. Kept in memory only:
/// a restart drops it, and the nurse taps again.
#[derive(Debug, Clone)]
struct PendingEnrollment {
    badge: BadgeNumber,
    since: Mono,
    approved_by: Option<crate::domain::User>,
}

/// How many recent events the snapshot keeps.
const MAX_EVENTS: usize = 30;
/// How long to wait before asking Workspace ONE again about a device it could not identify.
const IDENTIFY_RETRY_MS: i64 = 30_000;
/// How often to ask Workspace ONE whether an erased phone is enrolled again.
const REENROL_POLL_MS: i64 = 20_000;
/// How often open loans are compared with Workspace ONE (returned at another cabinet?).
const RECONCILE_MS: i64 = 600_000;
/// How long a phone that came from another cabinet is asked about at each
/// reconciliation (see `Engine::watched`).
const WATCH_MS: i64 = 3_600_000;
/// A refusal stays on the main line at least this long, whatever else happens.
const REFUSAL_HOLD_MS: i64 = 8_000;
/// How long a refusal or warning stays in the list of open instructions.
const NOTICE_ERROR_MS: i64 = 30_000;
/// How long an informative line stays in the list of open instructions.
const NOTICE_INFO_MS: i64 = 15_000;
/// How long a user Workspace ONE cannot match is refused at the tap without asking again.
const REFUSED_USER_MS: i64 = 600_000;
/// A difference between wall and monotonic time larger than this is a clock step.
const CLOCK_STEP_MS: i64 = 2_000;

/// One line of the open instructions, and until when it is shown.
#[derive(Debug, Clone)]
struct Notice {
    instruction: Instruction,
    until: Mono,
}

/// The engine. Build it with [`Engine::restore`], feed it with [`Engine::handle`].
/// `Clone`: the daemon handles an input on a copy and keeps it only once its commit is
/// durable.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    /// Wall time of the latest input: what is stored and shown.
    now: Timestamp,
    /// Monotonic time of the latest input: every duration is measured on it.
    mono: Mono,
    /// `wall - mono` at the latest input, to notice the wall clock stepping.
    wall_offset: i64,
    devices: BTreeMap<DeviceKey, DeviceRecord>,
    /// Check-outs in state Reserved or Out.
    checkouts: BTreeMap<CheckoutId, CheckoutRecord>,
    /// Actions in state Pending or Failed.
    actions: BTreeMap<ActionId, ActionRecord>,
    counters: Counters,
    readers: BTreeMap<ReaderName, ReaderView>,
    mdm: MdmView,
    instruction: Instruction,
    /// Until when the main line keeps a refusal.
    hold_until: Mono,
    notices: VecDeque<Notice>,
    events: VecDeque<EventView>,
    /// When each open reservation lapses.
    expiries: BTreeMap<CheckoutId, Mono>,
    /// Phones of ours that came into this cabinet from elsewhere (this station learnt
    /// what they are from Workspace ONE, not from its own check-out), and until when they
    /// are asked about again at each reconciliation while available: a check-out
    /// assignment another station sends late (after an outage) can still reach Workspace
    /// ONE after the phone was checked in here; it is brought back to the staging user.
    watched: BTreeMap<DeviceKey, Mono>,
    /// Devices to ask Workspace ONE about again, and when.
    identify_retry: BTreeMap<DeviceKey, Mono>,
    /// The latest lookup asked per device; answers to older ones are stale.
    identify_asked: BTreeMap<DeviceKey, u64>,
    next_request: u64,
    /// Phones that left while others may claim them, and when to settle.
    leaving: BTreeMap<DeviceKey, Mono>,
    /// Users Workspace ONE cannot match, refused at the tap until the given time.
    refused_users: BTreeMap<Username, (String, Mono)>,
    /// When open loans are next compared with Workspace ONE.
    next_reconcile: Mono,
    /// The last unknown badge, for supervised enrolment.
    enrollment: Option<PendingEnrollment>,
    /// Phones just docked by their holders (the return-as-broken gesture), by holder.
    returns: BTreeMap<Username, lending::RecentReturn>,
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
        now: impl Into<Now>,
    ) -> (Engine, Vec<Effect>) {
        let now = now.into();
        let mut engine = Engine {
            instruction: idle_instruction(now.wall),
            hold_until: now.mono,
            config,
            now: now.wall,
            mono: now.mono,
            wall_offset: now.wall.0.saturating_sub(now.mono.0),
            devices: persisted
                .devices
                .into_iter()
                .map(|mut d| {
                    // Records from before the ownership rule: a phone the station reserved,
                    // lent, checked in or confirmed passed the old checks.
                    if !d.ours {
                        d.ours = match d.status {
                            DeviceStatus::Reserved { .. }
                            | DeviceStatus::CheckedOut { .. }
                            | DeviceStatus::CheckingIn { .. }
                            | DeviceStatus::Lost
                            | DeviceStatus::Leaving { .. } => true,
                            DeviceStatus::Available | DeviceStatus::Missing => d.mdm.is_some(),
                            DeviceStatus::Identifying
                            | DeviceStatus::Foreign
                            | DeviceStatus::Away => false,
                        };
                    }
                    (d.key.clone(), d)
                })
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
            notices: VecDeque::new(),
            events: VecDeque::new(),
            expiries: BTreeMap::new(),
            watched: BTreeMap::new(),
            identify_retry: BTreeMap::new(),
            identify_asked: BTreeMap::new(),
            next_request: 1,
            leaving: BTreeMap::new(),
            refused_users: BTreeMap::new(),
            // Soon after a start: loans may have been closed elsewhere while it was down.
            next_reconcile: now.mono.plus_millis(60_000),
            enrollment: None,
            returns: BTreeMap::new(),
            fleet: None,
        };
        engine.mdm.waiting = engine.pending_action_count();
        // Durations stored as wall times continue on the monotonic clock, never longer
        // than they were configured to be (a wall clock that stepped back cannot stretch
        // them). A reservation that seems to have more time left than it was ever given
        // means the wall clock went back while the daemon was down or just before: how
        // much of it is left cannot be known, and a reservation kept too long can send a
        // phone leaving the cabinet to the wrong nurse, so it ends now (she taps again).
        let reservation_ms = engine.config.reservation_ms;
        let window = engine.config.reboot_window_ms;
        for checkout in engine.checkouts.values() {
            if checkout.state == CheckoutState::Reserved {
                let left = checkout.expires_at.0.saturating_sub(now.wall.0);
                let left = if left > reservation_ms {
                    0
                } else {
                    left.max(0)
                };
                engine
                    .expiries
                    .insert(checkout.id, now.mono.plus_millis(left));
            }
        }
        for device in engine.devices.values() {
            if let DeviceStatus::Leaving { since, .. } = &device.status {
                let left = since
                    .plus_millis(window)
                    .0
                    .saturating_sub(now.wall.0)
                    .clamp(0, window);
                engine
                    .leaving
                    .insert(device.key.clone(), now.mono.plus_millis(left));
            }
        }
        let mut turn = Turn::default();
        let ask: Vec<DeviceKey> = engine
            .devices
            .values()
            .filter(|d| match &d.status {
                DeviceStatus::Identifying => d.slot.is_some(),
                DeviceStatus::CheckingIn { reenrol, .. } => *reenrol,
                _ => false,
            })
            .map(|d| d.key.clone())
            .collect();
        for device in ask {
            engine.ask(&mut turn, &device);
        }
        (engine, turn.effects)
    }

    /// Handles one input at `now`.
    pub fn handle(&mut self, now: impl Into<Now>, input: Input) -> Vec<Effect> {
        let now = now.into();
        let mut turn = Turn::default();
        self.advance(&mut turn, now);
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
            Input::DeviceIdentified {
                device,
                request,
                result,
            } => self.on_identified(&mut turn, device, request, result),
            Input::ActionSettled { action, outcome } => self.on_settled(&mut turn, action, outcome),
            Input::MdmHealth {
                reachable,
                waiting,
                last_error,
            } => self.on_mdm_health(&mut turn, reachable, waiting, last_error),
            Input::Admin(command) => {
                self.on_admin(&mut turn, command);
            }
            Input::FleetAdmin {
                request,
                requested_by,
                command,
            } => self.on_fleet_admin(&mut turn, request, requested_by, command),
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

    /// Moves the engine's clocks to `now`, noticing a step of the wall clock.
    fn advance(&mut self, turn: &mut Turn, now: Now) {
        let offset = now.wall.0.saturating_sub(now.mono.0);
        let step = offset.saturating_sub(self.wall_offset);
        self.wall_offset = offset;
        self.mono = self.mono.max(now.mono);
        self.now = now.wall;
        if step.abs() > CLOCK_STEP_MS {
            let text = format!(
                "the wall clock stepped {} by {}; reservations and retries keep their times",
                if step > 0 { "forward" } else { "back" },
                human_duration(step.abs())
            );
            self.audit(
                turn,
                AuditKind::ClockStep,
                None,
                None,
                None,
                None,
                None,
                &text,
            );
            self.event(capitalize(&text));
        }
    }

    /// When the engine next wants a [`Input::Tick`], on the monotonic clock.
    pub fn next_deadline(&self) -> Option<Mono> {
        // A leaving phone settles at its reboot window's end or at its candidate
        // reservation's expiry, whichever comes first: both are among these.
        let expiries = self.expiries.values().copied();
        let retries = self.identify_retry.values().copied();
        let leaving = self.leaving.values().copied();
        let notices = self.notices.iter().map(|n| n.until);
        let enrollment = self
            .enrollment
            .as_ref()
            .map(|e| e.since.plus_millis(ENROLLMENT_WINDOW_MS));
        let reconcile = (self
            .checkouts
            .values()
            .any(|c| c.state == CheckoutState::Out)
            || !self.watched.is_empty())
        .then_some(self.next_reconcile);
        let returns = self.returns.values().map(|r| {
            r.at()
                .plus_millis(self.config.lending.broken_double_tap_ms + 1)
        });
        expiries
            .chain(retries)
            .chain(leaving)
            .chain(notices)
            .chain(enrollment)
            .chain(reconcile)
            .chain(returns)
            .chain(self.next_lending_deadline())
            .min()
    }

    fn on_deadlines(&mut self, turn: &mut Turn) {
        let mono = self.mono;
        if self
            .enrollment
            .as_ref()
            .is_some_and(|pending| mono.millis_since(pending.since) > ENROLLMENT_WINDOW_MS)
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
        self.notices.retain(|n| n.until > mono);
        self.refused_users.retain(|_, (_, until)| *until > mono);
        // Leaving phones first: a reservation a leaving phone may claim does not lapse
        // before that is settled. A phone settles at the end of its reboot window, or when
        // the reservation it may claim runs out, whichever is first: a reservation never
        // outlives its own deadline (its nurse might otherwise be assigned the reserved
        // phone when someone else takes it minutes later).
        let settle: Vec<DeviceKey> = self
            .leaving
            .iter()
            .filter(|(key, at)| {
                **at <= mono
                    || self.devices.get(*key).is_some_and(|d| match d.status {
                        DeviceStatus::Leaving {
                            candidate: Some(id),
                            ..
                        } => self.expiries.get(&id).is_some_and(|due| *due <= mono),
                        _ => false,
                    })
            })
            .map(|(key, _)| key.clone())
            .collect();
        for device in settle {
            self.leaving.remove(&device);
            self.settle_leaving(turn, &device);
        }
        let expired: Vec<CheckoutId> = self
            .expiries
            .iter()
            // No reservation a leaving phone may claim is due here: that phone settled
            // above, at the latest at this reservation's deadline.
            .filter(|(_, at)| **at <= mono)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.expiries.remove(&id);
            if let Some(checkout) = self.checkouts.get(&id).cloned() {
                if checkout.state != CheckoutState::Reserved {
                    continue;
                }
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
            .filter(|(_, at)| **at <= mono)
            .map(|(key, _)| key.clone())
            .collect();
        for device in due {
            self.identify_retry.remove(&device);
            if self.wants_identification(&device) {
                self.ask(turn, &device);
            }
        }
        self.escalate(turn);
        if self.next_reconcile <= mono {
            self.next_reconcile = mono.plus_millis(RECONCILE_MS);
            let out: Vec<DeviceKey> = self
                .checkouts
                .values()
                .filter(|c| c.state == CheckoutState::Out)
                .map(|c| c.device.clone())
                .collect();
            for device in out {
                if self.can_reconcile(&device) {
                    self.ask(turn, &device);
                }
            }
            self.watched.retain(|_, until| *until > mono);
            let watched: Vec<DeviceKey> =
                self.watched
                    .keys()
                    .filter(|key| {
                        self.devices.get(*key).is_some_and(|d| {
                            d.status == DeviceStatus::Available && d.slot.is_some()
                        }) && !self.has_open_actions(key)
                    })
                    .cloned()
                    .collect();
            for device in watched {
                self.ask(turn, &device);
            }
        }
    }

    fn on_mdm_health(
        &mut self,
        turn: &mut Turn,
        reachable: bool,
        waiting: u32,
        last_error: Option<String>,
    ) {
        let was_down = self.mdm.reachable == Some(false);
        self.mdm = MdmView {
            reachable: Some(reachable),
            waiting,
            last_error,
        };
        if reachable && was_down {
            // Workspace ONE answers again: ask about every device waiting for a lookup now,
            // not at its next retry.
            let waiting: Vec<DeviceKey> = self.identify_retry.keys().cloned().collect();
            for device in waiting {
                if self.wants_identification(&device) {
                    self.ask(turn, &device);
                }
            }
        }
    }

    /// Asks Workspace ONE about a device; any answer to an earlier question is stale.
    fn ask(&mut self, turn: &mut Turn, device: &DeviceKey) {
        let request = self.next_request;
        self.next_request += 1;
        self.identify_asked.insert(device.clone(), request);
        self.identify_retry.remove(device);
        turn.effects.push(Effect::Identify {
            device: device.clone(),
            request,
        });
    }

    /// True when a lookup of this device is still useful.
    fn wants_identification(&self, device: &DeviceKey) -> bool {
        self.devices.get(device).is_some_and(|d| match &d.status {
            DeviceStatus::Identifying => d.slot.is_some(),
            DeviceStatus::CheckingIn { reenrol, .. } => *reenrol,
            DeviceStatus::Foreign => d.slot.is_some(),
            _ => false,
        })
    }

    /// True when Workspace ONE's enrolment user can tell whether this loan still stands:
    /// the check-out changes the enrolment user on this platform and nothing of ours is
    /// waiting for the device.
    fn can_reconcile(&self, device: &DeviceKey) -> bool {
        // Failed work (a user Workspace ONE cannot match, a refused request) will not
        // change the device any more: only pending work makes the answer premature.
        self.changes_enrollment_user(device.platform)
            && !self.actions.values().any(|a| {
                a.device == *device && a.purpose.is_workflow() && a.state == ActionState::Pending
            })
    }

    fn changes_enrollment_user(&self, platform: Platform) -> bool {
        self.config
            .checkout_steps
            .get(&platform)
            .is_some_and(|steps| steps.contains(&WorkflowStep::AssignUser))
    }

    /// True when Workspace ONE shows this device as one of the station's: staged by the
    /// staging user, or a shared device (`Ownership` `S`) of the station's groups.
    fn is_ours_in_mdm(&self, info: &MdmDeviceInfo) -> bool {
        let staged = info
            .enrollment_user
            .as_ref()
            .is_some_and(|user| *user == self.config.staging_user);
        let in_groups = self.config.organization_groups.is_empty()
            || info
                .group_id
                .is_some_and(|group| self.config.organization_groups.contains(&group));
        (staged || info.is_shared()) && in_groups
    }

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
                    && d.ours
                    && d.status == DeviceStatus::Available
                    && !d.set_aside
                    && !d.broken
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

    /// True when check-out, check-in or undo work of the device is open (escalations and
    /// tickets never hold a phone back).
    fn has_open_actions(&self, device: &DeviceKey) -> bool {
        self.actions
            .values()
            .any(|a| a.device == *device && a.purpose.is_workflow())
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
        kind: AuditKind,
        reader: Option<&ReaderName>,
        badge: Option<&BadgeNumber>,
        username: Option<&Username>,
        device: Option<&DeviceKey>,
        slot: Option<&SlotLabel>,
        detail: &str,
    ) {
        turn.commit.audit.push(AuditEntry {
            at: self.now,
            kind,
            reader: reader.cloned(),
            badge: badge.map(BadgeNumber::redacted),
            username: username.cloned(),
            device: device.cloned(),
            slot: slot.cloned(),
            detail: detail.to_string(),
        });
    }

    fn event(&mut self, text: String) {
        self.events.push_front(EventView { at: self.now, text });
        self.events.truncate(MAX_EVENTS);
    }

    /// Shows an instruction: on the main line (unless a refusal is still being read
    /// there) and in the list of open instructions for a while.
    fn set_instruction(&mut self, tone: Tone, headline: String, detail: String) {
        let instruction = Instruction {
            tone,
            headline,
            detail,
            at: self.now,
        };
        // A refusal being read is not replaced by someone else's news; the same nurse's
        // next answer replaces it.
        let held = self.instruction.tone == Tone::Error
            && self.mono < self.hold_until
            && !same_person(&self.instruction.headline, &instruction.headline);
        if tone == Tone::Error {
            self.hold_until = self.mono.plus_millis(REFUSAL_HOLD_MS);
        }
        if tone != Tone::Idle {
            let lasts = if tone == Tone::Error {
                NOTICE_ERROR_MS
            } else {
                NOTICE_INFO_MS
            };
            // The same nurse's newer answer supersedes her older lines.
            let success = tone == Tone::Success;
            self.notices.retain(|n| {
                n.instruction.headline != instruction.headline
                    && !(success && same_person(&n.instruction.headline, &instruction.headline))
            });
            self.notices.push_front(Notice {
                instruction: instruction.clone(),
                until: self.mono.plus_millis(lasts),
            });
            self.notices.truncate(MAX_EVENTS);
        }
        if tone == Tone::Error || !held {
            self.instruction = instruction;
        }
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

/// True when two headlines speak to the same person ("ALICE MARTIN — …").
fn same_person(a: &str, b: &str) -> bool {
    match (a.split_once(" — "), b.split_once(" — ")) {
        (Some((x, _)), Some((y, _))) => !x.is_empty() && x == y,
        _ => false,
    }
}

/// A duration in words: "45 s", "10 min", "2 h".
fn human_duration(ms: i64) -> String {
    let seconds = ms / 1000;
    if seconds < 120 {
        format!("{seconds} s")
    } else if seconds < 7200 {
        format!("{} min", seconds / 60)
    } else {
        format!("{} h", seconds / 3600)
    }
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
        MdmAction::Email { to, .. } => format!("e-mail to {}", to.join(", ")),
        MdmAction::Message { .. } => "message to the device".into(),
        MdmAction::LostMode { enable: true, .. } => "enable Lost Mode".into(),
        MdmAction::LostMode { enable: false, .. } => "clear Lost Mode".into(),
    }
}
