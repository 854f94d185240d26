//! Docks: devices arriving, leaving and being identified; check-in.

use super::*;

impl Engine {
    pub(super) fn on_inventory(&mut self, turn: &mut Turn, present: Vec<(SlotLabel, DeviceKey)>) {
        // What ran out while the daemon was down ends first: a reservation that expired
        // then must not turn its phone, absent now (taken later, or restarting), into
        // its nurse's loan.
        self.on_deadlines(turn);
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
        for (slot, device) in &present {
            self.on_docked(turn, slot.clone(), device.clone());
        }
        // After a restart, ask Workspace ONE about every phone offered to nurses: one
        // assigned elsewhere while the station was down must not be handed out as it is.
        for (_, device) in present {
            let available = self
                .devices
                .get(&device)
                .is_some_and(|d| d.status == DeviceStatus::Available && d.slot.is_some());
            if available && !self.has_open_actions(&device) {
                self.ask(turn, &device);
            }
        }
    }

    pub(super) fn on_docked(&mut self, turn: &mut Turn, slot: SlotLabel, device: DeviceKey) {
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
                ours: false,
                broken: false,
                lost_mode: false,
            };
            self.devices.insert(device.clone(), record.clone());
            turn.commit.devices.push(record);
            self.ask(turn, &device);
            self.audit(
                turn,
                AuditKind::Docked,
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
            DeviceStatus::Missing if record.ours => self.check_in(turn, &device, &slot, None),
            DeviceStatus::Lost => {
                self.audit(
                    turn,
                    AuditKind::Found,
                    None,
                    None,
                    None,
                    Some(&device),
                    Some(&slot),
                    &format!(
                        "{} was marked lost and is docked again",
                        self.device_name(&device)
                    ),
                );
                self.check_in(turn, &device, &slot, None)
            }
            DeviceStatus::Missing | DeviceStatus::Away | DeviceStatus::Foreign
                if record.slot.as_ref() != Some(&slot) =>
            {
                // Not known to be ours, or back from elsewhere: Workspace ONE says what it is.
                let now = self.now;
                self.update_device(turn, &device, |d| {
                    d.slot = Some(slot.clone());
                    d.docked_since = Some(now);
                    d.status = DeviceStatus::Identifying;
                });
                self.ask(turn, &device);
                self.event(format!(
                    "Slot {slot}: {} docked, identifying",
                    self.device_name(&device)
                ));
            }
            DeviceStatus::Leaving { slot: left, .. } => {
                // Back within the reboot window (a restart, a reseated cable): nothing
                // happened, and no reservation moves.
                self.leaving.remove(&device);
                let now = self.now;
                let same_slot = left == slot;
                self.update_device(turn, &device, |d| {
                    d.slot = Some(slot.clone());
                    d.status = DeviceStatus::Available;
                    if !same_slot {
                        d.docked_since = Some(now);
                    }
                });
                self.audit(
                    turn,
                    AuditKind::DockedAgain,
                    None,
                    None,
                    None,
                    Some(&device),
                    Some(&slot),
                    &format!(
                        "{} came back (slot {left} → slot {slot}) within the reboot window; nothing changed",
                        self.device_name(&device)
                    ),
                );
                self.event(format!(
                    "Slot {slot}: {} back (restarted or reseated)",
                    self.device_name(&device)
                ));
            }
            DeviceStatus::CheckingIn { reenrol, .. } if record.slot.is_none() => {
                // Its check-in is under way (an erased phone restarts): it goes on, and
                // nothing new is sent.
                let now = self.now;
                self.update_device(turn, &device, |d| {
                    d.slot = Some(slot.clone());
                    d.docked_since = Some(now);
                });
                self.audit(
                    turn,
                    AuditKind::DockedAgain,
                    None,
                    None,
                    None,
                    Some(&device),
                    Some(&slot),
                    "docked again while its check-in is under way; nothing new is sent",
                );
                self.event(format!(
                    "Slot {slot}: {} back, check-in continues",
                    self.device_name(&device)
                ));
                if reenrol {
                    self.ask(turn, &device);
                }
                self.maybe_finish_checkin(turn, &device);
            }
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
                if self.wants_identification(&device) {
                    self.ask(turn, &device);
                }
            }
        }
    }

    pub(super) fn on_undocked(&mut self, turn: &mut Turn, slot: SlotLabel, device: DeviceKey) {
        let Some(record) = self.devices.get(&device).cloned() else {
            return;
        };
        if record.slot.is_none() {
            return;
        }
        match record.status {
            DeviceStatus::Reserved { checkout } => self.taken(turn, &device, &slot, checkout),
            DeviceStatus::Available => {
                // Maybe taken, maybe restarting: settled after the reboot window.
                let open = self.open_reservations();
                let candidate = (open.len() == 1).then(|| open[0]);
                let since = self.now;
                let left = slot.clone();
                self.update_device(turn, &device, |d| {
                    d.slot = None;
                    d.status = DeviceStatus::Leaving {
                        slot: left,
                        since,
                        candidate,
                    };
                });
                self.leaving.insert(
                    device.clone(),
                    self.mono.plus_millis(self.config.reboot_window_ms),
                );
                self.event(format!(
                    "Slot {slot}: {} removed without a badge tap",
                    self.device_name(&device)
                ));
                if open.is_empty() {
                    self.set_instruction(
                        Tone::Error,
                        format!("SLOT {slot}: PHONE REMOVED WITHOUT A TAP"),
                        "Put it back, or tap your badge first".into(),
                    );
                }
            }
            DeviceStatus::CheckingIn { reenrol, .. } => {
                // The check-in goes on while it is away; when it is confirmed and the
                // phone is still away, it is missing.
                self.update_device(turn, &device, |d| {
                    d.slot = None;
                    d.docked_since = None;
                });
                if reenrol {
                    self.event(format!(
                        "Slot {slot}: {} restarting (erase under way)",
                        self.device_name(&device)
                    ));
                } else {
                    self.audit(
                        turn,
                        AuditKind::UnexpectedRemoval,
                        None,
                        None,
                        None,
                        Some(&device),
                        Some(&slot),
                        "taken before its check-in finished",
                    );
                    self.event(format!(
                        "Slot {slot}: {} taken before its check-in finished",
                        self.device_name(&device)
                    ));
                }
            }
            DeviceStatus::Identifying | DeviceStatus::Foreign => {
                self.identify_retry.remove(&device);
                self.identify_asked.remove(&device);
                self.update_device(turn, &device, |d| {
                    d.slot = None;
                    d.docked_since = None;
                    d.status = DeviceStatus::Away;
                });
                self.event(format!(
                    "Slot {slot}: {} removed",
                    self.device_name(&device)
                ));
            }
            DeviceStatus::CheckedOut { .. }
            | DeviceStatus::Missing
            | DeviceStatus::Lost
            | DeviceStatus::Away
            | DeviceStatus::Leaving { .. } => {
                self.update_device(turn, &device, |d| d.slot = None);
            }
        }
    }

    pub(super) fn on_moved(
        &mut self,
        turn: &mut Turn,
        from: SlotLabel,
        to: SlotLabel,
        device: DeviceKey,
    ) {
        let Some(record) = self.devices.get(&device).cloned() else {
            self.on_docked(turn, to, device);
            return;
        };
        if record.slot.is_none() {
            self.on_docked(turn, to, device);
            return;
        }
        if let DeviceStatus::Reserved { checkout } = record.status {
            self.update_checkout(turn, checkout, |c| c.slot = to.clone());
            if let Some(c) = self.checkouts.get(&checkout).cloned() {
                let (headline, _) = self.take_slot_text(&c.display_name, &to, &device);
                self.set_instruction(
                    Tone::Success,
                    headline,
                    format!("Phone moved from slot {from}"),
                );
            }
        }
        self.update_device(turn, &device, |d| d.slot = Some(to.clone()));
        self.audit(
            turn,
            AuditKind::Moved,
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

    /// A phone that left while others might claim it did not come back in time.
    pub(super) fn settle_leaving(&mut self, turn: &mut Turn, device: &DeviceKey) {
        let Some(DeviceStatus::Leaving {
            slot, candidate, ..
        }) = self.devices.get(device).map(|d| d.status.clone())
        else {
            return;
        };
        let follows = candidate.filter(|id| {
            self.checkouts.get(id).is_some_and(|c| {
                c.state == CheckoutState::Reserved
                    && self.devices.get(&c.device).is_some_and(|d| {
                        d.slot.is_some() && d.status == DeviceStatus::Reserved { checkout: *id }
                    })
            })
        });
        match follows {
            Some(id) => self.follow_device_taken(turn, id, device, &slot),
            None => {
                let open = self.open_reservations().len();
                let why = if open > 1 || candidate.is_some() {
                    "taken while reservations were open: cannot tell whose it is".to_string()
                } else {
                    "taken without a badge tap".to_string()
                };
                self.flag_missing(turn, device, &slot, &why);
            }
        }
    }

    pub(super) fn on_identified(
        &mut self,
        turn: &mut Turn,
        device: DeviceKey,
        request: u64,
        result: Result<MdmDeviceInfo, String>,
    ) {
        // Only the answer to the latest question counts: an older one may predate a change
        // the station made since (an assignment, a wipe).
        if self.identify_asked.get(&device) != Some(&request) {
            return;
        }
        self.identify_asked.remove(&device);
        let Some(record) = self.devices.get(&device).cloned() else {
            return;
        };
        let info = match result {
            Err(message) => {
                if self.wants_identification(&device) {
                    self.identify_retry
                        .insert(device.clone(), self.mono.plus_millis(IDENTIFY_RETRY_MS));
                }
                if record.status == DeviceStatus::Identifying {
                    self.event(format!(
                        "Slot {}: Workspace ONE could not identify the device: {message}",
                        slot_text(&record.slot)
                    ));
                }
                return;
            }
            Ok(info) => info,
        };
        let user = info.enrollment_user.clone();
        let staged = user.as_ref() == Some(&self.config.staging_user);
        let confirmed = info.enrolled && !info.wipe_pending;
        let ours = record.ours || self.is_ours_in_mdm(&info);
        self.update_device(turn, &device, |d| {
            d.mdm = Some(info.clone());
            d.ours = ours;
        });
        let slot = record.slot.clone();
        match record.status {
            DeviceStatus::Identifying | DeviceStatus::Foreign if slot.is_some() => {
                let slot = slot.unwrap_or_else(|| SlotLabel::new("?"));
                if ours {
                    self.watched
                        .insert(device.clone(), self.mono.plus_millis(WATCH_MS));
                }
                if !ours {
                    self.update_device(turn, &device, |d| d.status = DeviceStatus::Foreign);
                    if record.status != DeviceStatus::Foreign {
                        let detail = format!(
                            "{} is not one of this station's shared phones (enrolled to {}, ownership {}); it is left alone",
                            self.device_name(&device),
                            user.as_ref().map(Username::as_str).unwrap_or("nobody"),
                            info.ownership.as_deref().unwrap_or("unknown")
                        );
                        self.audit(
                            turn,
                            AuditKind::ForeignDevice,
                            None,
                            None,
                            user.as_ref(),
                            Some(&device),
                            Some(&slot),
                            &detail,
                        );
                        self.event(format!(
                            "Slot {slot}: not a shared phone of this station — left alone"
                        ));
                        self.set_instruction(
                            Tone::Error,
                            format!("SLOT {slot}: NOT A SHARED PHONE"),
                            "This phone does not belong to the cabinet — please take it back"
                                .into(),
                        );
                    }
                } else if !confirmed {
                    // Erased or being erased: it becomes available when it is enrolled to
                    // the staging user again.
                    self.update_device(turn, &device, |d| {
                        d.status = DeviceStatus::CheckingIn {
                            checkout: None,
                            reenrol: true,
                        }
                    });
                    self.identify_retry
                        .insert(device.clone(), self.mono.plus_millis(REENROL_POLL_MS));
                    self.event(format!(
                        "Slot {slot}: {} is being erased — waiting for it to enrol again",
                        self.device_name(&device)
                    ));
                } else if staged {
                    self.update_device(turn, &device, |d| d.status = DeviceStatus::Available);
                    self.event(format!("Slot {slot}: {} ready", self.device_name(&device)));
                } else {
                    let holder = user.as_ref().map(Username::as_str).unwrap_or("nobody");
                    self.audit(
                        turn,
                        AuditKind::CheckinForeign,
                        None,
                        None,
                        user.as_ref(),
                        Some(&device),
                        Some(&slot),
                        &format!("enrolled to {holder} (checked out elsewhere); checking it in"),
                    );
                    self.check_in(turn, &device, &slot, None);
                }
            }
            DeviceStatus::CheckingIn { reenrol: true, .. } => {
                if confirmed && staged {
                    self.update_device(turn, &device, |d| {
                        if let DeviceStatus::CheckingIn { reenrol, .. } = &mut d.status {
                            *reenrol = false;
                        }
                    });
                    self.audit(
                        turn,
                        AuditKind::WipeConfirmed,
                        None,
                        None,
                        None,
                        Some(&device),
                        slot.as_ref(),
                        "Workspace ONE shows the erased phone enrolled to the staging user again",
                    );
                    self.maybe_finish_checkin(turn, &device);
                } else {
                    self.identify_retry
                        .insert(device.clone(), self.mono.plus_millis(REENROL_POLL_MS));
                }
            }
            DeviceStatus::CheckedOut { checkout } => {
                self.reconcile_loan(turn, &device, checkout, &info);
            }
            DeviceStatus::Available
                if slot.is_some() && ours && !staged && !self.has_open_actions(&device) =>
            {
                // In the cabinet, offered to nurses, but Workspace ONE has it with someone:
                // bring it back before anyone takes it.
                let slot = slot.unwrap_or_else(|| SlotLabel::new("?"));
                let holder = user.as_ref().map(Username::as_str).unwrap_or("nobody");
                self.audit(
                    turn,
                    AuditKind::Drift,
                    None,
                    None,
                    user.as_ref(),
                    Some(&device),
                    Some(&slot),
                    &format!(
                        "in the cabinet but enrolled to {holder} in Workspace ONE; checking it in"
                    ),
                );
                self.check_in(turn, &device, &slot, None);
            }
            _ => {}
        }
    }

    /// Compares a loan with Workspace ONE: a phone Workspace ONE shows with someone else
    /// (the staging user: checked in at another cabinet) is no longer on loan from here.
    fn reconcile_loan(
        &mut self,
        turn: &mut Turn,
        device: &DeviceKey,
        checkout_id: CheckoutId,
        info: &MdmDeviceInfo,
    ) {
        if !self.can_reconcile(device) {
            return;
        }
        let Some(loan) = self.checkouts.get(&checkout_id).cloned() else {
            return;
        };
        if info.enrollment_user.as_ref() == Some(&loan.username) && !info.wipe_pending {
            return;
        }
        let now_with = match info.enrollment_user.as_ref() {
            _ if info.wipe_pending => "being erased".to_string(),
            Some(user) if *user == self.config.staging_user => "back with the staging user".into(),
            Some(user) => format!("enrolled to {user}"),
            None => "enrolled to nobody".into(),
        };
        let now = self.now;
        self.update_checkout(turn, checkout_id, |c| {
            c.state = CheckoutState::Closed;
            c.closed_at = Some(now);
        });
        self.checkouts.remove(&checkout_id);
        // Its failed check-out work (the only kind left: pending work defers this) ends
        // with it, so that it holds nothing back when the phone is docked here again.
        self.cancel_loan_work(
            turn,
            checkout_id,
            "superseded: the loan closed at another cabinet",
        );
        self.update_device(turn, device, |d| {
            d.status = DeviceStatus::Away;
            d.slot = None;
        });
        let detail = format!(
            "{}'s loan of {} closed: Workspace ONE shows it {now_with} (returned at another cabinet)",
            loan.display_name,
            self.device_name(device)
        );
        self.audit(
            turn,
            AuditKind::LoanClosed,
            None,
            None,
            Some(&loan.username),
            Some(device),
            Some(&loan.slot),
            &detail,
        );
        self.event(capitalize(&detail));
    }

    pub(super) fn taken(
        &mut self,
        turn: &mut Turn,
        device: &DeviceKey,
        slot: &SlotLabel,
        checkout_id: CheckoutId,
    ) {
        let now = self.now;
        self.expiries.remove(&checkout_id);
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
            AuditKind::Checkout,
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
    pub(super) fn follow_device_taken(
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
            DeviceStatus::CheckingIn {
                checkout: None,
                reenrol: false,
            }
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
            AuditKind::ReservationMoved,
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

    pub(super) fn flag_missing(
        &mut self,
        turn: &mut Turn,
        device: &DeviceKey,
        slot: &SlotLabel,
        why: &str,
    ) {
        self.update_device(turn, device, |d| {
            d.slot = None;
            d.docked_since = None;
            d.status = DeviceStatus::Missing;
        });
        self.audit(
            turn,
            AuditKind::UnexpectedRemoval,
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

    /// Runs the check-in workflow of a docked phone that is ours. Any other phone is
    /// identified first and never sent anything before it is known to be ours.
    pub(super) fn check_in(
        &mut self,
        turn: &mut Turn,
        device: &DeviceKey,
        slot: &SlotLabel,
        checkout_id: Option<CheckoutId>,
    ) {
        let ours = self.devices.get(device).is_some_and(|d| d.ours);
        if !ours && checkout_id.is_none() {
            let now = self.now;
            self.update_device(turn, device, |d| {
                d.slot = Some(slot.clone());
                d.docked_since = Some(now);
                d.status = DeviceStatus::Identifying;
            });
            self.ask(turn, device);
            return;
        }
        let holder = checkout_id
            .and_then(|id| self.checkouts.get(&id))
            .map(|c| (c.username.clone(), c.display_name.clone()));
        self.on_returned(turn, device, slot, holder.as_ref().map(|(u, _)| u));
        if let Some(id) = checkout_id {
            let now = self.now;
            self.update_checkout(turn, id, |c| {
                c.state = CheckoutState::Returned;
                c.closed_at = Some(now);
            });
            self.checkouts.remove(&id);
            self.expiries.remove(&id);
            // Whatever of the loan's check-out work is still open is moot now: the
            // check-in work follows it in order.
            let stale: Vec<ActionId> = self
                .actions
                .values()
                .filter(|a| a.checkout == Some(id) && a.purpose == ActionPurpose::CheckOut)
                .map(|a| a.id)
                .collect();
            for action in stale {
                self.set_action_state(
                    turn,
                    action,
                    ActionState::Cancelled,
                    Some("superseded: the phone was returned".into()),
                );
            }
        }
        let platform = device.platform;
        let steps = self
            .config
            .checkin_steps
            .get(&platform)
            .cloned()
            .unwrap_or_default();
        let reenrol = steps.iter().any(
            |step| matches!(step, WorkflowStep::Command { command } if !command.is_idempotent()),
        );
        let now = self.now;
        self.update_device(turn, device, |d| {
            d.slot = Some(slot.clone());
            d.docked_since = Some(now);
            d.ours = true;
            d.status = DeviceStatus::CheckingIn {
                checkout: checkout_id,
                reenrol,
            };
        });
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
            AuditKind::Checkin,
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

    /// A check-in is done when all its work is confirmed (and an erased phone is enrolled
    /// again): the phone is available if docked, missing if it left meanwhile.
    pub(super) fn maybe_finish_checkin(&mut self, turn: &mut Turn, device: &DeviceKey) {
        let Some(record) = self.devices.get(device).cloned() else {
            return;
        };
        let DeviceStatus::CheckingIn { reenrol, .. } = record.status else {
            return;
        };
        if reenrol || self.has_open_actions(device) {
            return;
        }
        let docked = record.slot.is_some();
        self.update_device(turn, device, |d| {
            d.status = if docked {
                DeviceStatus::Available
            } else {
                DeviceStatus::Missing
            };
            d.failures = 0;
            d.set_aside = false;
        });
        let slot = record.slot.clone();
        let text = if docked {
            format!(
                "{} checked in: Workspace ONE confirmed it, it is ready",
                self.device_name(device)
            )
        } else {
            format!(
                "{} checked in, but it is no longer in the cabinet",
                self.device_name(device)
            )
        };
        self.audit(
            turn,
            AuditKind::CheckinDone,
            None,
            None,
            None,
            Some(device),
            slot.as_ref(),
            &text,
        );
        self.event(format!("Slot {}: {text}", slot_text(&slot)));
    }
}
