//! Outbox work: queueing, settling, undoing and ending reservations.

use super::*;

impl Engine {
    pub(super) fn on_settled(&mut self, turn: &mut Turn, id: ActionId, outcome: ActionOutcome) {
        let Some(action) = self.actions.get(&id).cloned() else {
            return; // Already settled or cancelled: a late answer changes nothing.
        };
        if !matches!(outcome, ActionOutcome::Retrying { .. }) {
            // Whatever Workspace ONE said about this device before is older than this
            // change: an answer still on its way is stale.
            self.identify_asked.remove(&action.device);
        }
        match outcome {
            ActionOutcome::Retrying { message, .. } => {
                if let Some(a) = self.actions.get_mut(&id) {
                    a.note = Some(message);
                }
            }
            ActionOutcome::Done => {
                self.set_action_state(turn, id, ActionState::Done, Some("done".into()));
                let wiped = matches!(&action.action, MdmAction::Command { command } if !command.is_idempotent());
                let checking_in = matches!(
                    self.devices.get(&action.device).map(|d| &d.status),
                    Some(DeviceStatus::CheckingIn { .. })
                );
                if wiped && checking_in {
                    // An erased phone is checked in only once Workspace ONE shows it
                    // enrolled again, whichever way the wipe came to be sent (the
                    // workflow, or an operator's retry of one that could not be confirmed).
                    self.update_device(turn, &action.device, |d| {
                        if let DeviceStatus::CheckingIn { reenrol, .. } = &mut d.status {
                            *reenrol = true;
                        }
                    });
                    // Erased: done only when Workspace ONE shows it enrolled again.
                    self.identify_retry.insert(
                        action.device.clone(),
                        self.mono.plus_millis(REENROL_POLL_MS),
                    );
                }
                self.maybe_finish_checkin(turn, &action.device);
            }
            ActionOutcome::Failed { message, cause } => {
                self.on_failed(turn, action, message, cause)
            }
        }
    }

    fn on_failed(
        &mut self,
        turn: &mut Turn,
        action: ActionRecord,
        message: String,
        cause: FailCause,
    ) {
        self.set_action_state(turn, action.id, ActionState::Failed, Some(message.clone()));
        if !action.purpose.is_workflow() {
            // An escalation or a ticket that failed for good: said, never held against
            // the phone.
            let what = describe_action(&action.action);
            self.audit(
                turn,
                AuditKind::ActionFailed,
                None,
                None,
                None,
                Some(&action.device),
                None,
                &format!("{what} failed: {message}"),
            );
            self.event(format!(
                "{}: {what} failed: {message}",
                self.device_name(&action.device)
            ));
            return;
        }
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
            AuditKind::ActionFailed,
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
                AuditKind::SetAside,
                None,
                None,
                None,
                Some(&action.device),
                slot.as_ref(),
                "set aside after repeated Workspace ONE failures",
            );
        }
        if let (
            MdmAction::AssignUser { username },
            FailCause::UnknownUser | FailCause::AmbiguousUser,
        ) = (&action.action, cause)
        {
            let reason = if cause == FailCause::UnknownUser {
                format!("Workspace ONE has no active account named {username}")
            } else {
                format!("Workspace ONE has several active accounts named {username}")
            };
            self.refused_users.insert(
                username.clone(),
                (reason, self.mono.plus_millis(REFUSED_USER_MS)),
            );
        }
        let Some(checkout_id) = action.checkout else {
            return;
        };
        if action.purpose != ActionPurpose::CheckOut {
            return;
        }
        let Some(checkout) = self.checkouts.get(&checkout_id).cloned() else {
            return;
        };
        let reason = short_reason(&message);
        match checkout.state {
            // A reservation whose assignment was refused must not send a nurse to a phone
            // that is not hers: cancel it and say so.
            CheckoutState::Reserved => {
                self.end_reservation(
                    turn,
                    checkout_id,
                    CheckoutState::Cancelled,
                    "assignment refused by Workspace ONE",
                );
                self.set_instruction(
                    Tone::Error,
                    format!(
                        "{} — DO NOT TAKE SLOT {}",
                        checkout.display_name.to_uppercase(),
                        checkout.slot
                    ),
                    format!(
                        "Workspace ONE refused the assignment ({reason}). See the charge nurse"
                    ),
                );
            }
            // Already out: the phone is not hers in Workspace ONE; ask for it back.
            _ => {
                self.set_instruction(
                    Tone::Error,
                    format!(
                        "{} — PLEASE RETURN THE PHONE TO THE CABINET",
                        checkout.display_name.to_uppercase()
                    ),
                    format!(
                        "Workspace ONE refused the assignment ({reason}). See the charge nurse"
                    ),
                );
            }
        }
    }

    pub(super) fn end_reservation(
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
        self.expiries.remove(&id);
        self.undo_checkout_work(turn, &checkout.device, id);
        let status = if self.has_open_actions(&checkout.device) {
            DeviceStatus::CheckingIn {
                checkout: None,
                reenrol: false,
            }
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
            CheckoutState::Expired => AuditKind::Expired,
            _ => AuditKind::ReservationCancelled,
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

    /// Cancels what is left of an ended loan's check-out work and unsent escalations
    /// (pending or failed), saying why: they must neither reach anyone nor hold the phone
    /// back later.
    pub(super) fn cancel_loan_work(&mut self, turn: &mut Turn, checkout_id: CheckoutId, why: &str) {
        let stale: Vec<ActionId> = self
            .actions
            .values()
            .filter(|a| {
                a.checkout == Some(checkout_id)
                    && matches!(
                        a.purpose,
                        ActionPurpose::CheckOut | ActionPurpose::Escalation
                    )
            })
            .map(|a| a.id)
            .collect();
        for action in stale {
            self.set_action_state(turn, action, ActionState::Cancelled, Some(why.into()));
        }
    }

    /// Cancels the check-out's unsent work on `device`, and queues the undo steps when some
    /// of it may already have reached Workspace ONE.
    pub(super) fn undo_checkout_work(
        &mut self,
        turn: &mut Turn,
        device: &DeviceKey,
        checkout_id: CheckoutId,
    ) {
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

    pub(super) fn queue_checkout_work(&mut self, turn: &mut Turn, checkout: &CheckoutRecord) {
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
                AuditKind::CheckoutWorkflow,
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

    pub(super) fn action_for_step(
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

    pub(super) fn queue_action(
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

    pub(super) fn set_action_state(
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
}

/// The first clause of a worker's message, for the main line.
fn short_reason(message: &str) -> String {
    message
        .split(';')
        .next()
        .unwrap_or(message)
        .trim()
        .to_string()
}
