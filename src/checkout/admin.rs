//! Operator commands.

use super::*;

impl Engine {
    /// Carries out an operator command; returns what was done, in words (the events
    /// pane says the same).
    pub(super) fn on_admin(&mut self, turn: &mut Turn, command: AdminCommand) -> String {
        match command {
            AdminCommand::Retry { slot } => self.admin_retry(turn, slot),
            AdminCommand::CancelReservation { slot } => {
                let reserved = self
                    .checkouts
                    .values()
                    .find(|c| c.slot == slot && c.state == CheckoutState::Reserved)
                    .map(|c| c.id);
                let outcome = match reserved {
                    Some(id) => {
                        self.end_reservation(
                            turn,
                            id,
                            CheckoutState::Cancelled,
                            "cancelled by an operator",
                        );
                        format!("reservation on slot {slot} cancelled")
                    }
                    None => format!("no open reservation on slot {slot}"),
                };
                self.event(format!("Admin: {outcome}"));
                outcome
            }
            AdminCommand::CloseLoan { user, device } => {
                self.admin_end_loans(turn, user, device, CheckoutState::Closed)
            }
            AdminCommand::MarkLost { user, device } => {
                self.admin_end_loans(turn, user, device, CheckoutState::Lost)
            }
            AdminCommand::MarkBroken { slot } => self.admin_broken(turn, slot, true),
            AdminCommand::ClearBroken { slot } => self.admin_broken(turn, slot, false),
        }
    }

    /// Retries a device's failed work that still matches the ledger; work for a loan
    /// that has ended, or that would undo a newer assignment, is cancelled instead.
    fn admin_retry(&mut self, turn: &mut Turn, slot: SlotLabel) -> String {
        let Some(device) = self.device_in_slot(&slot) else {
            self.event(format!("Admin: slot {slot} is empty"));
            return format!("slot {slot} is empty");
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
        let status = self.devices.get(&device).map(|d| d.status.clone());
        let mut retried = 0;
        let mut dropped = 0;
        for old in failed {
            let still_wanted = match old.purpose {
                // A failed escalation or ticket is sent again as it was.
                ActionPurpose::Escalation | ActionPurpose::Ticket => true,
                ActionPurpose::CheckOut => old
                    .checkout
                    .is_some_and(|id| self.checkouts.get(&id).is_some_and(|c| c.device == device)),
                ActionPurpose::CheckIn => {
                    matches!(status, Some(DeviceStatus::CheckingIn { .. }))
                }
                // Putting the staging user back is right only while nobody holds or has
                // reserved the phone.
                ActionPurpose::Undo => matches!(
                    status,
                    Some(DeviceStatus::Available | DeviceStatus::CheckingIn { .. })
                ),
            };
            if still_wanted {
                self.set_action_state(
                    turn,
                    old.id,
                    ActionState::Cancelled,
                    Some("retried by an operator".into()),
                );
                self.queue_action(turn, &device, old.checkout, old.purpose, old.action);
                retried += 1;
            } else {
                self.set_action_state(
                    turn,
                    old.id,
                    ActionState::Cancelled,
                    Some("not retried: it no longer matches the station's ledger".into()),
                );
                dropped += 1;
            }
        }
        if status == Some(DeviceStatus::Identifying) {
            self.ask(turn, &device);
        }
        self.audit(
            turn,
            AuditKind::AdminRetry,
            None,
            None,
            None,
            Some(&device),
            Some(&slot),
            &format!(
                "operator retried failed work ({retried} retried, {dropped} no longer wanted) and returned the device to service"
            ),
        );
        self.event(format!("Admin: slot {slot} retried"));
        self.maybe_finish_checkin(turn, &device);
        format!(
            "slot {slot} returned to service ({retried} failed action(s) retried, {dropped} no longer wanted)"
        )
    }

    /// Ends loans without the phone coming back: closed (returned elsewhere, written
    /// off) or lost. Nothing is sent to Workspace ONE; the phone is identified (or checked
    /// in as found) when it is docked.
    fn admin_end_loans(
        &mut self,
        turn: &mut Turn,
        user: Option<Username>,
        device: Option<String>,
        state: CheckoutState,
    ) -> String {
        let matching: Vec<CheckoutRecord> = self
            .checkouts
            .values()
            .filter(|c| c.state == CheckoutState::Out)
            .filter(|c| user.as_ref().is_none_or(|u| c.username == *u))
            .filter(|c| {
                device.as_deref().is_none_or(|id| {
                    c.device.id.eq_ignore_ascii_case(id.trim())
                        || crate::domain::normalize_udid(id) == c.device.id
                })
            })
            .cloned()
            .collect();
        if matching.is_empty() || (user.is_none() && device.is_none()) {
            let outcome = format!(
                "no loan for {}",
                describe_target(user.as_ref(), device.as_deref())
            );
            self.event(format!("Admin: {outcome}"));
            return outcome;
        }
        let now = self.now;
        let mut done = Vec::new();
        for loan in matching {
            self.update_checkout(turn, loan.id, |c| {
                c.state = state;
                c.closed_at = Some(now);
            });
            self.checkouts.remove(&loan.id);
            self.cancel_loan_work(
                turn,
                loan.id,
                "superseded: the loan was ended by an operator",
            );
            let lost = state == CheckoutState::Lost;
            self.update_device(turn, &loan.device, |d| {
                d.slot = None;
                d.status = if lost {
                    DeviceStatus::Lost
                } else {
                    DeviceStatus::Away
                };
            });
            let name = self.device_name(&loan.device);
            let (kind, detail) = if lost {
                (
                    AuditKind::Lost,
                    format!(
                        "{name}, on loan to {}, marked lost by an operator",
                        loan.display_name
                    ),
                )
            } else {
                (
                    AuditKind::LoanClosed,
                    format!(
                        "{}'s loan of {name} closed by an operator",
                        loan.display_name
                    ),
                )
            };
            self.audit(
                turn,
                kind,
                None,
                None,
                Some(&loan.username),
                Some(&loan.device),
                Some(&loan.slot),
                &detail,
            );
            self.event(format!("Admin: {detail}"));
            done.push(detail);
        }
        done.join("; ")
    }

    /// A console admin request: carried out like an operator's command, and recorded
    /// (request id and outcome) in the same commit.
    pub(super) fn on_fleet_admin(
        &mut self,
        turn: &mut Turn,
        request: i64,
        requested_by: String,
        command: AdminCommand,
    ) {
        self.event(format!(
            "Fleet console request #{request} from {requested_by}"
        ));
        let outcome = self.on_admin(turn, command);
        turn.commit.fleet_requests.push(FleetRequestDone {
            request,
            outcome,
            at: self.now,
        });
    }
}

fn describe_target(user: Option<&Username>, device: Option<&str>) -> String {
    match (user, device) {
        (Some(user), Some(device)) => format!("{user} with phone {device}"),
        (Some(user), None) => user.to_string(),
        (None, Some(device)) => format!("phone {device}"),
        (None, None) => "nobody (name a user or a phone)".into(),
    }
}
