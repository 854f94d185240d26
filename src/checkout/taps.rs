//! Taps: check-out, refusals, supervised enrolment, reader status.

use super::*;

impl Engine {
    /// The take-slot line for a nurse, and what she must do next: on a platform where the
    /// check-out does not change the enrolment user (Android by default) she signs in to
    /// the phone herself, and the main line says so.
    pub(super) fn take_slot_text(
        &self,
        display_name: &str,
        slot: &SlotLabel,
        device: &DeviceKey,
    ) -> (String, String) {
        let name = self.device_name(device);
        if self.changes_enrollment_user(device.platform) {
            (
                take_slot_headline(display_name, slot),
                format!("{name} is ready for you"),
            )
        } else {
            (
                format!("{} THEN SIGN IN", take_slot_headline(display_name, slot)),
                format!("{name} is ready: sign in to it with your hospital account"),
            )
        }
    }

    pub(super) fn on_tap(
        &mut self,
        turn: &mut Turn,
        reader: ReaderName,
        badge: BadgeNumber,
        resolution: Resolution,
    ) {
        let broken_return = match &resolution {
            Resolution::Known { user } => self.second_tap_after_return(&user.username),
            _ => None,
        };
        let decision = match resolution {
            Resolution::Known { user } if broken_return.is_some() => {
                let Some(ret) = broken_return else {
                    return;
                };
                turn.decision = Some(self.return_broken(turn, &reader, &badge, &user, ret));
                return;
            }
            Resolution::Known { user }
                if user.enroller && self.enrollment_waits_for_approval(&badge) =>
            {
                self.approve_enrollment(turn, &reader, &badge, user)
            }
            Resolution::Known { user } => self.check_out(turn, &reader, &badge, user),
            Resolution::Unknown => {
                self.enrollment = Some(PendingEnrollment {
                    badge: badge.clone(),
                    since: self.mono,
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

    pub(super) fn check_out(
        &mut self,
        turn: &mut Turn,
        reader: &ReaderName,
        badge: &BadgeNumber,
        user: crate::domain::User,
    ) -> TapDecision {
        // A second tap while a reservation is open shows the same slot again, and gives
        // the nurse the whole reservation time again from now.
        if let Some(open) = self
            .checkouts
            .values()
            .find(|c| c.username == user.username && c.state == CheckoutState::Reserved)
            .cloned()
        {
            let expires_at = self.now.plus_millis(self.config.reservation_ms);
            self.update_checkout(turn, open.id, |c| c.expires_at = expires_at);
            self.expiries
                .insert(open.id, self.mono.plus_millis(self.config.reservation_ms));
            let (headline, detail) =
                self.take_slot_text(&open.display_name, &open.slot, &open.device);
            self.set_instruction(Tone::Success, headline, detail);
            self.audit(
                turn,
                AuditKind::ReservationRenewed,
                Some(reader),
                Some(badge),
                Some(&user.username),
                Some(&open.device),
                Some(&open.slot),
                "tapped again; reservation still open, its time starts again",
            );
            return TapDecision::TakeSlot {
                display_name: open.display_name,
                slot: open.slot,
                device: open.device,
            };
        }
        if let Some(refused) = self.curfew_refusal(turn, reader, badge, &user) {
            return refused;
        }
        // Workspace ONE refused this user's assignment lately: refuse now, not after the
        // nurse has walked to a slot.
        if let Some((reason, _)) = self.refused_users.get(&user.username).cloned() {
            let headline = format!(
                "{} — no Workspace ONE account",
                user.display_name.to_uppercase()
            );
            return self.refuse(
                turn,
                reader,
                badge,
                Some(&user.username),
                &headline,
                &format!("{reason}; see the charge nurse"),
            );
        }
        let held: Vec<CheckoutRecord> = self
            .checkouts
            .values()
            .filter(|c| c.username == user.username)
            .cloned()
            .collect();
        // Loans at other stations count too, from the fleet's last view (never waited for).
        let remote: Vec<RemoteLoan> = match &self.fleet {
            Some((true, loans)) => loans
                .iter()
                .filter(|l| l.username == user.username)
                .cloned()
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
            // Workspace ONE is the system of record: the phone may have been returned at
            // another cabinet. Ask now; the answer closes the loan if so.
            let mut asking = false;
            for loan in &held {
                if loan.state == CheckoutState::Out
                    && self.can_reconcile(&loan.device)
                    && !self.identify_asked.contains_key(&loan.device)
                {
                    self.ask(turn, &loan.device);
                    asking = true;
                }
            }
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
            let reason = if asking {
                format!("already holds {holding}; return it first (if you returned it at another cabinet, tap again in a moment)")
            } else {
                format!("already holds {holding}; return it first")
            };
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
            due_at: self.due_for(&user),
            escalated: Vec::new(),
        };
        self.checkouts.insert(id, checkout.clone());
        self.expiries
            .insert(id, self.mono.plus_millis(self.config.reservation_ms));
        turn.commit.checkouts.push(checkout.clone());
        self.update_device(turn, &device, |d| {
            d.status = DeviceStatus::Reserved { checkout: id }
        });
        if self.config.assign_at == AssignAt::Tap {
            self.queue_checkout_work(turn, &checkout);
        }
        self.audit(
            turn,
            AuditKind::CheckoutReserved,
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
        let (headline, detail) = self.take_slot_text(&user.display_name, &slot, &device);
        let due = checkout.due_at.map(|due| self.due_text(due));
        let detail = due.map_or(detail.clone(), |due| format!("{detail} — due back {due}"));
        self.set_instruction(Tone::Success, headline, detail);
        TapDecision::TakeSlot {
            display_name: user.display_name,
            slot,
            device,
        }
    }

    pub(super) fn enrollment_waits_for_approval(&self, enroller_badge: &BadgeNumber) -> bool {
        self.enrollment.as_ref().is_some_and(|pending| {
            pending.approved_by.is_none()
                && pending.badge != *enroller_badge
                && self.mono.millis_since(pending.since) <= ENROLLMENT_WINDOW_MS
        })
    }

    pub(super) fn approve_enrollment(
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
        pending.since = self.mono;
        let new_badge = pending.badge.redacted();
        self.audit(
            turn,
            AuditKind::EnrollmentApproved,
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
        (self.mono.millis_since(pending.since) <= ENROLLMENT_WINDOW_MS)
            .then(|| (pending.badge.clone(), approver))
    }

    pub(super) fn on_enrolled(
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
            AuditKind::Enrolled,
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
    pub(super) fn refuse(
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
            AuditKind::TapRefused,
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

    pub(super) fn on_bad_read(&mut self, turn: &mut Turn, reader: ReaderName, reason: String) {
        self.audit(
            turn,
            AuditKind::BadRead,
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

    pub(super) fn on_reader_status(
        &mut self,
        reader: ReaderName,
        online: bool,
        detail: Option<String>,
    ) {
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

    /// The fleet task's view of loans at other stations; a change of reachability is
    /// said on the events pane.
    pub(super) fn on_fleet_loans(&mut self, reachable: bool, loans: Vec<RemoteLoan>) {
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
}
