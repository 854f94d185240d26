//! What the screen shows: the snapshot.

use super::*;

impl Engine {
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
                    overdue: match c.due_at {
                        Some(due) => self.now >= due,
                        None => self.now.millis_since(since) > self.config.overdue_ms,
                    },
                    due: c.due_at,
                    due_text: c.due_at.map(|due| self.due_text(due)),
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
            instructions: self.open_instructions(),
            fleet: self.fleet.as_ref().map(|(reachable, loans)| FleetView {
                reachable: *reachable,
                // Only loans that count against the limit now.
                remote_loans: if *reachable { loans.len() as u32 } else { 0 },
            }),
        }
    }

    /// Every instruction still open, newest first: one take-slot line per open
    /// reservation, then refusals and warnings while they are fresh.
    fn open_instructions(&self) -> Vec<Instruction> {
        let mut reservations: Vec<&CheckoutRecord> = self
            .checkouts
            .values()
            .filter(|c| c.state == CheckoutState::Reserved)
            .collect();
        reservations.sort_by_key(|c| std::cmp::Reverse(c.reserved_at));
        let mut lines: Vec<Instruction> = reservations
            .into_iter()
            .map(|c| {
                let (headline, detail) = self.take_slot_text(&c.display_name, &c.slot, &c.device);
                let detail = match c.due_at {
                    Some(due) => format!("{detail} — due back {}", self.due_text(due)),
                    None => detail,
                };
                Instruction {
                    tone: Tone::Success,
                    headline,
                    detail,
                    at: c.reserved_at,
                }
            })
            .collect();
        for notice in &self.notices {
            let line = &notice.instruction;
            let take_slot = line.tone == Tone::Success && line.headline.contains(" — TAKE SLOT ");
            if !take_slot && !lines.iter().any(|l| l.headline == line.headline) {
                lines.push(line.clone());
            }
        }
        lines
    }

    pub(super) fn device_name(&self, device: &DeviceKey) -> String {
        self.devices
            .get(device)
            .and_then(|d| d.mdm.as_ref())
            .map(|m| m.name.clone())
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| short_device(device))
    }

    pub(super) fn sync_state(&self, device: &DeviceKey) -> SyncState {
        let mut state = SyncState::Synced;
        for action in self
            .actions
            .values()
            .filter(|a| a.device == *device && a.purpose.is_workflow())
        {
            match action.state {
                ActionState::Failed => return SyncState::Failed,
                ActionState::Pending => state = SyncState::Pending,
                _ => {}
            }
        }
        state
    }

    pub(super) fn slot_view(&self, label: &SlotLabel) -> SlotView {
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
            DeviceStatus::Foreign => (SlotState::Foreign, None, device.docked_since),
            _ if device.broken => (SlotState::Broken, None, device.docked_since),
            _ if device.set_aside => (SlotState::SetAside, None, device.docked_since),
            // Check-in work refused for good: out of service, with the reason in the note.
            DeviceStatus::CheckingIn { .. } if sync == SyncState::Failed => {
                (SlotState::SetAside, None, device.docked_since)
            }
            DeviceStatus::CheckingIn { reenrol: true, .. }
                if !self.has_open_actions(&device.key) =>
            {
                (SlotState::Erasing, None, device.docked_since)
            }
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
}
