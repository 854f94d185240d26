//! Lending: due times, curfews, the escalation ladder of an overdue loan, Lost Mode and
//! broken phones.
//!
//! - At check-out the due time is computed by the pure policy ([`crate::lending`]) from
//!   the user's directory groups and the tap's wall time in the station's time zone, and
//!   stored on the loan ([`CheckoutRecord::due_at`]).
//! - A tap during a curfew is refused with the curfew's reason (`curfew-refused`).
//! - Each step of the ladder is taken once per loan, at `due + after` on the wall clock
//!   (a due time is a wall-clock instant: it is what the nurse is told), recorded in
//!   [`CheckoutRecord::escalated`] in the same commit as its audit line and outbox row,
//!   so a restart neither repeats nor forgets a step. `screen` audits `overdue`; the
//!   others queue an outbox row (purpose [`ActionPurpose::Escalation`]) and audit
//!   `escalated`. `lost-mode` (iOS only) also marks the phone lost: docked again it is
//!   found, Lost Mode is cleared first, then the normal check-in runs.
//! - A phone's holder returns it as broken by tapping her badge twice within
//!   `lending.broken-double-tap-seconds` of docking it; the charge nurse marks a slot
//!   broken from the admin commands. A broken phone is checked in as usual, stays out of
//!   the pool (slot "BROKEN") until `clear-broken`, and a repair ticket (ServiceNow-style
//!   JSON) goes through the outbox (purpose [`ActionPurpose::Ticket`]).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::*;
use crate::lending::{curfew_at, due_at, steps_due, LendingPolicy, LoanDue, StepAction};

/// `lending.message-path` unless set (unverified).
pub const DEFAULT_MESSAGE_PATH: &str = "/API/mdm/devices/{id}/messages/push";
/// `lending.lost-mode-on-path` unless set (unverified).
pub const DEFAULT_LOST_MODE_ON_PATH: &str = "/API/mdm/devices/{uuid}/lostmode/enable";
/// `lending.lost-mode-off-path` unless set (unverified).
pub const DEFAULT_LOST_MODE_OFF_PATH: &str = "/API/mdm/devices/{uuid}/lostmode/disable";

/// The engine's part of `[lending]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LendingConfig {
    /// True when the station has a `[lending]` section: loans get due times and the
    /// ladder runs. Without it a loan has no due time and is overdue after
    /// `checkout.overdue-hours`, as before due times existed.
    pub enabled: bool,
    /// Due-time rules, curfews and the ladder.
    pub policy: LendingPolicy,
    /// The station's time zone: shift boundaries, curfews and due times shown.
    pub zone: Tz,
    /// Where `webhook` steps POST (`lending.webhook-url`).
    pub webhook_url: Option<String>,
    /// Who `email` steps write to (`lending.email-to`).
    pub email_to: Vec<String>,
    /// The text of a `message` step (`lending.device-message`).
    pub device_message: String,
    /// The lock-screen text of a `lost-mode` step (`lending.lost-mode-message`).
    pub lost_mode_message: String,
    /// The number to call on the lock screen (`lending.lost-mode-phone`).
    pub lost_mode_phone: String,
    /// Workspace ONE paths (unverified: no public reference was found; kept
    /// configurable): the device message (POST), Lost Mode on and off (PUT).
    pub message_path: String,
    /// See `message_path`.
    pub lost_mode_on_path: String,
    /// See `message_path`.
    pub lost_mode_off_path: String,
    /// The return-as-broken gesture: the holder's second tap within this long after
    /// docking (`lending.broken-double-tap-seconds`); 0, the default, turns it off (a
    /// second tap then only shows the nurse's slot again, as without it).
    pub broken_double_tap_ms: i64,
    /// Where repair tickets are POSTed (`lending.broken-ticket-webhook`).
    pub ticket_url: Option<String>,
}

impl Default for LendingConfig {
    fn default() -> LendingConfig {
        LendingConfig {
            enabled: false,
            policy: LendingPolicy::default(),
            zone: Tz::UTC,
            webhook_url: None,
            email_to: Vec::new(),
            device_message: "This phone is overdue. Please return it to its charging cabinet."
                .into(),
            lost_mode_message: "This phone belongs to the hospital. Please return it.".into(),
            lost_mode_phone: String::new(),
            message_path: DEFAULT_MESSAGE_PATH.into(),
            lost_mode_on_path: DEFAULT_LOST_MODE_ON_PATH.into(),
            lost_mode_off_path: DEFAULT_LOST_MODE_OFF_PATH.into(),
            broken_double_tap_ms: 0,
            ticket_url: None,
        }
    }
}

/// A phone its holder just docked: her second tap within the window returns it as broken.
#[derive(Debug, Clone)]
pub(super) struct RecentReturn {
    device: DeviceKey,
    slot: SlotLabel,
    at: Mono,
    taps: u32,
}

impl RecentReturn {
    /// When the phone was docked.
    pub(super) fn at(&self) -> Mono {
        self.at
    }
}

/// A step of the ladder in words.
fn step_name(action: StepAction) -> &'static str {
    match action {
        StepAction::Screen => "screen",
        StepAction::Webhook => "webhook",
        StepAction::Email => "email",
        StepAction::Message => "message",
        StepAction::LostMode => "lost-mode",
        StepAction::Lock => "lock",
    }
}

impl Engine {
    /// A wall time in the station's zone.
    fn local(&self, at: Timestamp) -> DateTime<Tz> {
        DateTime::<Utc>::from_timestamp_millis(at.0)
            .unwrap_or_default()
            .with_timezone(&self.config.lending.zone)
    }

    /// A due time as the screen says it: "19:30" today, "Tue 19:30" otherwise.
    pub(super) fn due_text(&self, due: Timestamp) -> String {
        let due = self.local(due);
        if due.date_naive() == self.local(self.now).date_naive() {
            due.format("%H:%M").to_string()
        } else {
            due.format("%a %d %b %H:%M").to_string()
        }
    }

    /// When a loan taken now by `user` is due.
    pub(super) fn due_for(&self, user: &crate::domain::User) -> Option<Timestamp> {
        if !self.config.lending.enabled {
            return None;
        }
        let due = due_at(
            &self.config.lending.policy,
            &user.groups,
            &self.local(self.now),
        );
        Some(Timestamp(due.timestamp_millis()))
    }

    /// The refusal of a tap during a curfew, if one covers now.
    pub(super) fn curfew_refusal(
        &mut self,
        turn: &mut Turn,
        reader: &ReaderName,
        badge: &BadgeNumber,
        user: &crate::domain::User,
    ) -> Option<TapDecision> {
        if !self.config.lending.enabled {
            return None;
        }
        let reason = curfew_at(&self.config.lending.policy, &self.local(self.now))?;
        let headline = format!("{} — no check-out now", user.display_name.to_uppercase());
        self.audit(
            turn,
            AuditKind::CurfewRefused,
            Some(reader),
            Some(badge),
            Some(&user.username),
            None,
            None,
            &format!("curfew: {reason}"),
        );
        self.event(format!(
            "Tap refused ({}): curfew: {reason}",
            badge.redacted()
        ));
        self.set_instruction(Tone::Error, headline.clone(), capitalize(&reason));
        Some(TapDecision::Refused {
            reason: format!("{headline}: {reason}"),
        })
    }

    /// The next wall-clock instant the ladder (or a due time) needs, as a monotonic
    /// deadline.
    pub(super) fn next_lending_deadline(&self) -> Option<Mono> {
        let ladder = &self.config.lending.policy.ladder;
        self.checkouts
            .values()
            .filter(|c| c.state == CheckoutState::Out)
            .filter_map(|c| {
                let due = c.due_at?;
                let steps = ladder
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| !c.escalated.contains(&(*index as u32)))
                    .map(|(_, step)| due.plus_millis(step.after.num_milliseconds()));
                let due_itself = (due > self.now).then_some(due);
                steps.chain(due_itself).min()
            })
            .min()
            .map(|wall| self.mono.plus_millis(wall.millis_since(self.now)))
    }

    /// Forgets returns whose gesture window has passed.
    pub(super) fn expire_returns(&mut self) {
        let window = self.config.lending.broken_double_tap_ms;
        let mono = self.mono;
        self.returns
            .retain(|_, ret| mono.millis_since(ret.at) <= window);
    }

    /// Takes every escalation step now due, once per loan.
    pub(super) fn escalate(&mut self, turn: &mut Turn) {
        self.expire_returns();
        let now = self.local(self.now);
        let policy = self.config.lending.policy.clone();
        let loans: Vec<CheckoutRecord> = self
            .checkouts
            .values()
            .filter(|c| c.state == CheckoutState::Out && c.due_at.is_some())
            .cloned()
            .collect();
        for loan in loans {
            let Some(due) = loan.due_at else { continue };
            let view = LoanDue {
                due: self.local(due),
                done: loan.escalated.iter().map(|i| *i as usize).collect(),
            };
            for step in steps_due(&policy, &view, &now) {
                // The loan may have ended at an earlier step (Lost Mode).
                if !self
                    .checkouts
                    .get(&loan.id)
                    .is_some_and(|c| c.state == CheckoutState::Out)
                {
                    break;
                }
                self.update_checkout(turn, loan.id, |c| c.escalated.push(step.index as u32));
                self.take_step(turn, &loan, due, step.action);
            }
        }
    }

    fn take_step(
        &mut self,
        turn: &mut Turn,
        loan: &CheckoutRecord,
        due: Timestamp,
        action: StepAction,
    ) {
        let device = loan.device.clone();
        let phone = self.device_name(&device);
        let due_text = self.due_text(due);
        let late = human_duration(self.now.millis_since(due));
        let lending = self.config.lending.clone();
        let (audit_kind, detail, queued) = match action {
            StepAction::Screen => {
                self.set_instruction(
                    Tone::Error,
                    format!("{} — PHONE OVERDUE", loan.display_name.to_uppercase()),
                    format!("{phone} from slot {} was due back at {due_text}", loan.slot),
                );
                self.event(format!(
                    "{} overdue: {phone} was due back at {due_text}",
                    loan.display_name
                ));
                (
                    AuditKind::Overdue,
                    format!(
                        "{}'s loan of {phone} from slot {} is overdue (due {due_text}, {late} late)",
                        loan.display_name, loan.slot
                    ),
                    None,
                )
            }
            StepAction::Webhook => {
                let action = lending.webhook_url.as_ref().map(|url| MdmAction::Webhook {
                    url: url.clone(),
                    body: self.overdue_event(loan, due, "overdue").to_string(),
                });
                (
                    AuditKind::Escalated,
                    format!("overdue webhook for {}'s {phone}", loan.display_name),
                    Some(action.ok_or("no lending.webhook-url is set")),
                )
            }
            StepAction::Email => {
                let action = (!lending.email_to.is_empty()).then(|| MdmAction::Email {
                    to: lending.email_to.clone(),
                    subject: format!(
                        "[{}] Overdue phone: {phone} with {}",
                        self.config.station, loan.display_name
                    ),
                    body: format!(
                        "{} ({}) took {phone} ({}) from slot {} at {} and has not returned it.\nIt was due back at {due_text}; it is {late} late.\n\nSent by badgedock at {}.\n",
                        loan.display_name,
                        loan.username,
                        device.id,
                        loan.slot,
                        loan.taken_at
                            .map(|at| self.due_text(at))
                            .unwrap_or_else(|| "?".into()),
                        self.config.station
                    ),
                });
                (
                    AuditKind::Escalated,
                    format!(
                        "overdue e-mail to {} about {}'s {phone}",
                        lending.email_to.join(", "),
                        loan.display_name
                    ),
                    Some(action.ok_or("no lending.email-to is set")),
                )
            }
            StepAction::Message => (
                AuditKind::Escalated,
                format!("Workspace ONE message to {phone} ({})", loan.display_name),
                Some(Ok(MdmAction::Message {
                    text: lending.device_message.clone(),
                    path: lending.message_path.clone(),
                })),
            ),
            StepAction::Lock => (
                AuditKind::Escalated,
                format!("Workspace ONE lock of {phone} ({})", loan.display_name),
                Some(Ok(MdmAction::Command {
                    command: DeviceCommand::Lock,
                })),
            ),
            StepAction::LostMode if device.platform != Platform::Apple => (
                AuditKind::Escalated,
                format!("Lost Mode not asked for {phone}: Workspace ONE Lost Mode is for iOS"),
                None,
            ),
            StepAction::LostMode => (
                AuditKind::Escalated,
                format!(
                    "Workspace ONE Lost Mode for {phone} ({}); the phone is marked lost",
                    loan.display_name
                ),
                Some(Ok(MdmAction::LostMode {
                    enable: true,
                    path: lending.lost_mode_on_path.clone(),
                    message: lending.lost_mode_message.clone(),
                    phone: lending.lost_mode_phone.clone(),
                })),
            ),
        };
        let detail = match queued {
            Some(Ok(mdm_action)) => {
                self.queue_action(
                    turn,
                    &device,
                    Some(loan.id),
                    ActionPurpose::Escalation,
                    mdm_action,
                );
                detail
            }
            Some(Err(missing)) => format!("{detail} not sent: {missing}"),
            None => detail,
        };
        let detail = if audit_kind == AuditKind::Escalated {
            format!("step {}: {detail}", step_name(action))
        } else {
            detail
        };
        self.audit(
            turn,
            audit_kind,
            None,
            None,
            Some(&loan.username),
            Some(&device),
            Some(&loan.slot),
            &detail,
        );
        if action == StepAction::LostMode && device.platform == Platform::Apple {
            self.update_device(turn, &device, |d| d.lost_mode = true);
            self.mark_lost(turn, loan, "Lost Mode asked for: the phone is marked lost");
        }
    }

    /// Ends a loan as lost (the ladder's Lost Mode): docked again, the phone is found.
    fn mark_lost(&mut self, turn: &mut Turn, loan: &CheckoutRecord, why: &str) {
        let now = self.now;
        self.update_checkout(turn, loan.id, |c| {
            c.state = CheckoutState::Lost;
            c.closed_at = Some(now);
        });
        self.checkouts.remove(&loan.id);
        self.update_device(turn, &loan.device, |d| {
            d.status = DeviceStatus::Lost;
            d.slot = None;
        });
        self.audit(
            turn,
            AuditKind::Lost,
            None,
            None,
            Some(&loan.username),
            Some(&loan.device),
            Some(&loan.slot),
            why,
        );
        self.event(format!(
            "{} with {} marked lost (Lost Mode)",
            self.device_name(&loan.device),
            loan.display_name
        ));
    }

    /// The JSON of an overdue webhook.
    fn overdue_event(
        &self,
        loan: &CheckoutRecord,
        due: Timestamp,
        event: &str,
    ) -> serde_json::Value {
        serde_json::json!({
            "event": event,
            // The outbox row's id: a receiver that sees it twice (a crash between the
            // POST and its record) drops the second.
            "id": format!("{}/{}", self.config.station, self.counters.next_action),
            "station": self.config.station,
            "username": loan.username.as_str(),
            "holder": loan.display_name,
            "device": loan.device.id,
            "platform": loan.device.platform,
            "device_name": self.device_name(&loan.device),
            "slot": loan.slot.as_str(),
            "taken_at": loan.taken_at.map(|t| t.0),
            "due_at": due.0,
            "at": self.now.0,
        })
    }

    /// A phone was docked and its check-in starts: escalations still waiting are moot,
    /// Lost Mode is cleared first (queued before the check-in steps, and rows of one
    /// device run in order), and its holder may mark it broken with two taps.
    pub(super) fn on_returned(
        &mut self,
        turn: &mut Turn,
        device: &DeviceKey,
        slot: &SlotLabel,
        holder: Option<&Username>,
    ) {
        let moot: Vec<ActionId> = self
            .actions
            .values()
            .filter(|a| {
                a.device == *device
                    && a.purpose == ActionPurpose::Escalation
                    && a.state == ActionState::Pending
            })
            .map(|a| a.id)
            .collect();
        for id in moot {
            self.set_action_state(
                turn,
                id,
                ActionState::Cancelled,
                Some("moot: the phone was returned".into()),
            );
        }
        if self.devices.get(device).is_some_and(|d| d.lost_mode) {
            self.update_device(turn, device, |d| d.lost_mode = false);
            let lending = self.config.lending.clone();
            self.queue_action(
                turn,
                device,
                None,
                ActionPurpose::CheckIn,
                MdmAction::LostMode {
                    enable: false,
                    path: lending.lost_mode_off_path,
                    message: lending.lost_mode_message,
                    phone: lending.lost_mode_phone,
                },
            );
            self.event(format!(
                "Slot {slot}: {} found; clearing Lost Mode before its check-in",
                self.device_name(device)
            ));
        }
        if let (Some(user), true) = (holder, self.config.lending.broken_double_tap_ms > 0) {
            self.returns.insert(
                user.clone(),
                RecentReturn {
                    device: device.clone(),
                    slot: slot.clone(),
                    at: self.mono,
                    taps: 0,
                },
            );
        }
    }

    /// Counts a tap by a user who just docked a phone: the second within the window
    /// returns that phone as broken.
    pub(super) fn second_tap_after_return(&mut self, user: &Username) -> Option<RecentReturn> {
        self.expire_returns();
        let docked = self.returns.get(user).is_some_and(|ret| {
            self.devices
                .get(&ret.device)
                .is_some_and(|d| d.slot.as_ref() == Some(&ret.slot))
        });
        if !docked {
            // Taken out again: her taps are ordinary taps.
            self.returns.remove(user);
            return None;
        }
        let ret = self.returns.get_mut(user)?;
        ret.taps += 1;
        if ret.taps < 2 {
            return None;
        }
        self.returns.remove(user)
    }

    /// The holder's second tap after docking: the phone is broken.
    pub(super) fn return_broken(
        &mut self,
        turn: &mut Turn,
        reader: &ReaderName,
        badge: &BadgeNumber,
        user: &crate::domain::User,
        ret: RecentReturn,
    ) -> TapDecision {
        self.mark_broken(
            turn,
            &ret.device,
            &ret.slot,
            Some(&user.username),
            &format!(
                "{} returned it as broken (two taps within {} s of docking it)",
                user.display_name,
                self.config.lending.broken_double_tap_ms / 1000
            ),
        );
        self.event(format!(
            "{} returned slot {} as broken ({})",
            user.display_name,
            ret.slot,
            badge.redacted()
        ));
        turn.effects.push(Effect::Feedback {
            reader: reader.clone(),
            ok: true,
        });
        self.set_instruction(
            Tone::Info,
            format!(
                "{} — SLOT {} MARKED BROKEN",
                user.display_name.to_uppercase(),
                ret.slot
            ),
            "Thank you — it stays out of use until it is repaired".into(),
        );
        TapDecision::MarkedBroken { slot: ret.slot }
    }

    /// Takes a docked phone out of the pool as broken and sends the repair ticket.
    pub(super) fn mark_broken(
        &mut self,
        turn: &mut Turn,
        device: &DeviceKey,
        slot: &SlotLabel,
        reported_by: Option<&Username>,
        why: &str,
    ) {
        if self.devices.get(device).is_some_and(|d| d.broken) {
            self.event(format!("Slot {slot}: already marked broken"));
            return;
        }
        // An open reservation of this phone ends: nobody is sent to a broken phone.
        if let Some(DeviceStatus::Reserved { checkout }) =
            self.devices.get(device).map(|d| d.status.clone())
        {
            self.end_reservation(
                turn,
                checkout,
                CheckoutState::Cancelled,
                "the phone was marked broken",
            );
        }
        self.update_device(turn, device, |d| d.broken = true);
        let phone = self.device_name(device);
        let ticket = self.config.lending.ticket_url.clone().map(|url| {
            let body = serde_json::json!({
                "short_description": format!("Broken phone: {phone} at {} slot {slot}", self.config.station),
                "description": format!("{phone} ({}) was taken out of use at {}, slot {slot}: {why}.", device.id, self.config.station),
                "category": "hardware",
                "subcategory": "mobile phone",
                "impact": "3",
                "urgency": "3",
                "caller_id": reported_by.map(Username::as_str),
                "cmdb_ci": device.id,
                "location": self.config.station,
                "u_slot": slot.as_str(),
                "u_platform": device.platform,
                "correlation_id": format!("badgedock/{}/{}", self.config.station, self.counters.next_action),
                "correlation_display": "badgedock",
                "opened_at": self.now.0,
            });
            MdmAction::Webhook {
                url,
                body: body.to_string(),
            }
        });
        let sent = match ticket {
            Some(action) => {
                self.queue_action(turn, device, None, ActionPurpose::Ticket, action);
                "repair ticket queued"
            }
            None => "no repair ticket: lending.broken-ticket-webhook is not set",
        };
        self.audit(
            turn,
            AuditKind::Broken,
            None,
            None,
            reported_by,
            Some(device),
            Some(slot),
            &format!("{phone} taken out of use as broken: {why}; {sent}"),
        );
        self.event(format!("Slot {slot}: {phone} marked broken"));
    }

    /// The admin commands of broken phones; returns what was done, in words.
    pub(super) fn admin_broken(
        &mut self,
        turn: &mut Turn,
        slot: SlotLabel,
        broken: bool,
    ) -> String {
        let Some(device) = self.device_in_slot(&slot) else {
            let outcome = format!("slot {slot} is empty");
            self.event(format!("Admin: {outcome}"));
            return outcome;
        };
        if broken {
            let ours = self.devices.get(&device).is_some_and(|d| d.ours);
            if !ours {
                let outcome =
                    format!("slot {slot} holds a phone that is not the station's; not marked");
                self.event(format!("Admin: {outcome}"));
                return outcome;
            }
            self.mark_broken(
                turn,
                &device,
                &slot,
                None,
                "marked broken by the charge nurse",
            );
            return format!("slot {slot} marked broken");
        }
        if !self.devices.get(&device).is_some_and(|d| d.broken) {
            let outcome = format!("slot {slot} is not marked broken");
            self.event(format!("Admin: {outcome}"));
            return outcome;
        }
        self.update_device(turn, &device, |d| d.broken = false);
        let phone = self.device_name(&device);
        self.audit(
            turn,
            AuditKind::BrokenCleared,
            None,
            None,
            None,
            Some(&device),
            Some(&slot),
            &format!("{phone} repaired: back in the pool"),
        );
        self.event(format!("Slot {slot}: {phone} back in service"));
        format!("slot {slot}: {phone} back in service")
    }
}
