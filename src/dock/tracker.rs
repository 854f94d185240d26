//! The loose-cable window: turns what the scanner sees in each slot into [`DockEvent`]s.
//!
//! Pure: no clock, no I/O. The caller stamps every observation with `now` and calls
//! [`SlotTracker::tick`] at [`SlotTracker::next_deadline`].
//!
//! The tracker keeps two pictures: what it *observes* in each slot (the latest scan) and
//! what it has *announced* (the state the event stream describes). It moves the announced
//! picture toward the observed one under these rules:
//!
//! - A device seen in a slot that the stream gives to nobody is `Docked` at once (this is
//!   also how every device present at start-up is reported).
//! - A device that disappears is held for `flap_ms`. If it shows up in the same slot
//!   within that window (a loose cable), nothing is sent. If it shows up in another slot
//!   within the window, `Moved` is sent. Otherwise `Undocked` is sent when the window ends.
//! - A slot still held for a vanished device is not given to a newcomer until that
//!   device's window ends (or it shows up elsewhere): the newcomer's `Docked` waits. So the
//!   stream never names two devices in one slot, at the price of up to `flap_ms` of delay
//!   for a fast swap.
//! - The one exception: devices that swapped slots between two scans (a cycle of moves)
//!   are reported as consecutive `Moved` events, and for the moment between them the
//!   stream names two devices in one slot. Match on the device.
//! - A device seen in two slots (stale data, or two devices sharing a serial number) is
//!   taken to be where it was seen last.
//!
//! Once nothing changes for `flap_ms`, the announced picture equals the observed one.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::dock::DockEvent;
use crate::domain::{DeviceKey, SlotLabel, Timestamp};

/// Which device each slot holds, after the loose-cable window. See the module doc.
#[derive(Debug, Clone)]
pub struct SlotTracker {
    /// The loose-cable window.
    flap_ms: i64,
    /// Slot labels in cabinet order; events come out in this order.
    labels: Vec<SlotLabel>,
    /// Slot label to its index in `labels`.
    index_of: HashMap<SlotLabel, usize>,
    /// The latest observation of each slot, by index.
    observed: Vec<Option<DeviceKey>>,
    /// What the event stream says each slot holds, by index. No device appears twice.
    announced: Vec<Option<DeviceKey>>,
    /// Announced devices that are not observed anywhere, with when they vanished.
    gone_since: BTreeMap<DeviceKey, Timestamp>,
}

impl SlotTracker {
    /// A tracker for these slots (in cabinet order) with a loose-cable window of
    /// `flap_ms`. Nothing is announced yet, so the first observations are `Docked`.
    pub fn new(labels: impl IntoIterator<Item = SlotLabel>, flap_ms: u64) -> SlotTracker {
        let labels: Vec<SlotLabel> = labels.into_iter().collect();
        let index_of = labels
            .iter()
            .enumerate()
            .map(|(index, label)| (label.clone(), index))
            .collect();
        let n_slots = labels.len();
        SlotTracker {
            flap_ms: i64::try_from(flap_ms).unwrap_or(i64::MAX),
            labels,
            index_of,
            observed: vec![None; n_slots],
            announced: vec![None; n_slots],
            gone_since: BTreeMap::new(),
        }
    }

    /// Records what one slot holds now (`None`: nothing, or nothing that is a phone) and
    /// returns the events that follow. Unknown slot labels are ignored.
    pub fn observe(
        &mut self,
        now: Timestamp,
        slot: &SlotLabel,
        device: Option<DeviceKey>,
    ) -> Vec<DockEvent> {
        self.observe_all(now, [(slot.clone(), device)])
    }

    /// Records a batch of observations (a full rescan) taken at `now`, in order, and
    /// returns the events that follow.
    pub fn observe_all(
        &mut self,
        now: Timestamp,
        observations: impl IntoIterator<Item = (SlotLabel, Option<DeviceKey>)>,
    ) -> Vec<DockEvent> {
        let mut events = Vec::new();
        // A late observation must not revive a device whose window has already run out.
        self.expire(now, &mut events);
        for (slot, device) in observations {
            let Some(&index) = self.index_of.get(&slot) else {
                continue;
            };
            if self.observed[index] == device {
                // The usual case on a rescan: nothing changed in this slot.
                continue;
            }
            if let Some(device) = &device {
                for (other, seen) in self.observed.iter_mut().enumerate() {
                    if other != index && seen.as_ref() == Some(device) {
                        *seen = None;
                    }
                }
            }
            self.observed[index] = device;
        }
        self.reconcile(now, &mut events);
        events
    }

    /// Ends the windows that have run out by `now` and returns the events that follow.
    pub fn tick(&mut self, now: Timestamp) -> Vec<DockEvent> {
        let mut events = Vec::new();
        self.reconcile(now, &mut events);
        events
    }

    /// When the next window runs out, if any is open: call [`SlotTracker::tick`] then.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.gone_since
            .values()
            .map(|since| since.plus_millis(self.flap_ms))
            .min()
    }

    /// What the event stream says each slot holds, in cabinet order.
    pub fn announced(&self) -> impl Iterator<Item = (&SlotLabel, &DeviceKey)> {
        self.labels
            .iter()
            .zip(&self.announced)
            .filter_map(|(label, device)| device.as_ref().map(|device| (label, device)))
    }

    /// What the latest observations say each slot holds, in cabinet order.
    pub fn observed(&self) -> impl Iterator<Item = (&SlotLabel, &DeviceKey)> {
        self.labels
            .iter()
            .zip(&self.observed)
            .filter_map(|(label, device)| device.as_ref().map(|device| (label, device)))
    }

    fn reconcile(&mut self, now: Timestamp, events: &mut Vec<DockEvent>) {
        self.update_gone(now);
        loop {
            let mut progress = self.expire(now, events);
            progress |= self.arrivals(events);
            if !progress && !self.rotate_cycle(events) {
                break;
            }
        }
        self.update_gone(now);
    }

    /// Starts a window for every announced device no longer observed, and closes the
    /// window of every one observed again.
    fn update_gone(&mut self, now: Timestamp) {
        let observed: HashSet<&DeviceKey> = self.observed.iter().flatten().collect();
        let announced: HashSet<&DeviceKey> = self.announced.iter().flatten().collect();
        self.gone_since
            .retain(|device, _| !observed.contains(device) && announced.contains(device));
        for device in announced {
            if !observed.contains(device) {
                self.gone_since.entry(device.clone()).or_insert(now);
            }
        }
    }

    /// Sends `Undocked` for every window that has run out. True if any did.
    fn expire(&mut self, now: Timestamp, events: &mut Vec<DockEvent>) -> bool {
        let mut progress = false;
        for index in 0..self.announced.len() {
            let Some(device) = &self.announced[index] else {
                continue;
            };
            let Some(since) = self.gone_since.get(device) else {
                continue;
            };
            if now.millis_since(*since) >= self.flap_ms {
                let device = device.clone();
                self.gone_since.remove(&device);
                self.announced[index] = None;
                events.push(DockEvent::Undocked {
                    slot: self.labels[index].clone(),
                    device,
                });
                progress = true;
            }
        }
        progress
    }

    /// Gives every free slot its observed device: `Moved` if the stream has it elsewhere,
    /// `Docked` otherwise. True if any slot changed.
    fn arrivals(&mut self, events: &mut Vec<DockEvent>) -> bool {
        let mut progress = false;
        for to in 0..self.observed.len() {
            let Some(device) = &self.observed[to] else {
                continue;
            };
            if self.announced[to].is_some() {
                // Either it already holds this device, or it is held for another one
                // whose window is open or which is about to move out.
                continue;
            }
            let device = device.clone();
            match self
                .announced
                .iter()
                .position(|held| held.as_ref() == Some(&device))
            {
                Some(from) => {
                    self.announced[from] = None;
                    self.gone_since.remove(&device);
                    events.push(DockEvent::Moved {
                        from: self.labels[from].clone(),
                        to: self.labels[to].clone(),
                        device: device.clone(),
                    });
                }
                None => events.push(DockEvent::Docked {
                    slot: self.labels[to].clone(),
                    device: device.clone(),
                }),
            }
            self.announced[to] = Some(device);
            progress = true;
        }
        progress
    }

    /// Finds devices that swapped slots (each slot's announced device is observed in the
    /// next slot of a cycle) and moves them all. True if a cycle was found.
    fn rotate_cycle(&mut self, events: &mut Vec<DockEvent>) -> bool {
        let slot_observing = |device: &DeviceKey| {
            self.observed
                .iter()
                .position(|seen| seen.as_ref() == Some(device))
        };
        for start in 0..self.observed.len() {
            let mut path: Vec<usize> = Vec::new();
            let mut current = start;
            loop {
                if let Some(at) = path.iter().position(|&visited| visited == current) {
                    let cycle = path[at..].to_vec();
                    self.apply_cycle(&cycle, events);
                    return true;
                }
                // `current` must be held for a device that is observed in another slot.
                let Some(held) = &self.announced[current] else {
                    break;
                };
                if self.observed[current].as_ref() == Some(held) {
                    break;
                }
                let Some(next) = slot_observing(held) else {
                    break;
                };
                path.push(current);
                current = next;
            }
        }
        false
    }

    fn apply_cycle(&mut self, cycle: &[usize], events: &mut Vec<DockEvent>) {
        let moving: Vec<Option<DeviceKey>> = cycle
            .iter()
            .map(|&slot| self.announced[slot].clone())
            .collect();
        for (position, &from) in cycle.iter().enumerate() {
            let to = cycle[(position + 1) % cycle.len()];
            if let Some(device) = &moving[position] {
                events.push(DockEvent::Moved {
                    from: self.labels[from].clone(),
                    to: self.labels[to].clone(),
                    device: device.clone(),
                });
                self.gone_since.remove(device);
            }
        }
        for (position, _) in cycle.iter().enumerate() {
            let to = cycle[(position + 1) % cycle.len()];
            self.announced[to] = moving[position].clone();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn slot(label: &str) -> SlotLabel {
        SlotLabel::new(label)
    }

    fn phone(serial: &str) -> DeviceKey {
        DeviceKey::android(serial)
    }

    fn tracker() -> SlotTracker {
        SlotTracker::new(["1", "2", "3"].map(slot), 2_000)
    }

    fn docked(label: &str, serial: &str) -> DockEvent {
        DockEvent::Docked {
            slot: slot(label),
            device: phone(serial),
        }
    }

    fn undocked(label: &str, serial: &str) -> DockEvent {
        DockEvent::Undocked {
            slot: slot(label),
            device: phone(serial),
        }
    }

    fn moved(from: &str, to: &str, serial: &str) -> DockEvent {
        DockEvent::Moved {
            from: slot(from),
            to: slot(to),
            device: phone(serial),
        }
    }

    #[test]
    fn start_up_reports_every_present_device() {
        let mut tracker = tracker();
        let events = tracker.observe_all(
            Timestamp(0),
            [
                (slot("1"), Some(phone("A"))),
                (slot("2"), None),
                (slot("3"), Some(phone("C"))),
            ],
        );
        assert_eq!(events, vec![docked("1", "A"), docked("3", "C")]);
        assert_eq!(tracker.next_deadline(), None);
    }

    #[test]
    fn undock_is_sent_when_the_window_ends() {
        let mut tracker = tracker();
        tracker.observe(Timestamp(0), &slot("1"), Some(phone("A")));
        assert_eq!(tracker.observe(Timestamp(100), &slot("1"), None), vec![]);
        assert_eq!(tracker.next_deadline(), Some(Timestamp(2_100)));
        assert_eq!(tracker.tick(Timestamp(2_099)), vec![]);
        assert_eq!(tracker.tick(Timestamp(2_100)), vec![undocked("1", "A")]);
        assert_eq!(tracker.next_deadline(), None);
        assert_eq!(tracker.tick(Timestamp(9_000)), vec![]);
    }

    #[test]
    fn loose_cable_within_the_window_sends_nothing() {
        let mut tracker = tracker();
        tracker.observe(Timestamp(0), &slot("1"), Some(phone("A")));
        assert_eq!(tracker.observe(Timestamp(100), &slot("1"), None), vec![]);
        assert_eq!(
            tracker.observe(Timestamp(2_000), &slot("1"), Some(phone("A"))),
            vec![]
        );
        assert_eq!(tracker.next_deadline(), None);
        assert_eq!(tracker.tick(Timestamp(10_000)), vec![]);
    }

    #[test]
    fn redock_after_the_window_is_undock_then_dock() {
        let mut tracker = tracker();
        tracker.observe(Timestamp(0), &slot("1"), Some(phone("A")));
        tracker.observe(Timestamp(100), &slot("1"), None);
        // No tick in between: the late observation still ends the window first.
        assert_eq!(
            tracker.observe(Timestamp(2_200), &slot("1"), Some(phone("A"))),
            vec![undocked("1", "A"), docked("1", "A")]
        );
    }

    #[test]
    fn move_within_the_window_is_one_moved_event() {
        let mut tracker = tracker();
        tracker.observe(Timestamp(0), &slot("1"), Some(phone("A")));
        tracker.observe(Timestamp(100), &slot("1"), None);
        assert_eq!(
            tracker.observe(Timestamp(1_500), &slot("3"), Some(phone("A"))),
            vec![moved("1", "3", "A")]
        );
        assert_eq!(tracker.tick(Timestamp(10_000)), vec![]);
    }

    #[test]
    fn move_seen_before_the_old_slot_is_rescanned_is_a_move() {
        let mut tracker = tracker();
        tracker.observe(Timestamp(0), &slot("1"), Some(phone("A")));
        assert_eq!(
            tracker.observe(Timestamp(10), &slot("2"), Some(phone("A"))),
            vec![moved("1", "2", "A")]
        );
        assert_eq!(tracker.observe(Timestamp(20), &slot("1"), None), vec![]);
        assert_eq!(tracker.tick(Timestamp(10_000)), vec![]);
    }

    #[test]
    fn move_after_the_window_is_undock_then_dock() {
        let mut tracker = tracker();
        tracker.observe(Timestamp(0), &slot("1"), Some(phone("A")));
        tracker.observe(Timestamp(100), &slot("1"), None);
        assert_eq!(tracker.tick(Timestamp(2_100)), vec![undocked("1", "A")]);
        assert_eq!(
            tracker.observe(Timestamp(3_000), &slot("2"), Some(phone("A"))),
            vec![docked("2", "A")]
        );
    }

    #[test]
    fn newcomer_waits_for_the_slot_to_be_released() {
        let mut tracker = tracker();
        tracker.observe(Timestamp(0), &slot("1"), Some(phone("A")));
        tracker.observe(Timestamp(100), &slot("1"), None);
        assert_eq!(
            tracker.observe(Timestamp(500), &slot("1"), Some(phone("B"))),
            vec![]
        );
        assert_eq!(
            tracker.tick(Timestamp(2_100)),
            vec![undocked("1", "A"), docked("1", "B")]
        );
    }

    #[test]
    fn newcomer_gets_the_slot_when_the_old_device_turns_up_elsewhere() {
        let mut tracker = tracker();
        tracker.observe(Timestamp(0), &slot("1"), Some(phone("A")));
        tracker.observe(Timestamp(100), &slot("1"), Some(phone("B")));
        assert_eq!(
            tracker.observe(Timestamp(300), &slot("2"), Some(phone("A"))),
            vec![moved("1", "2", "A"), docked("1", "B")]
        );
    }

    #[test]
    fn swap_between_scans_is_two_moves() {
        let mut tracker = tracker();
        tracker.observe_all(
            Timestamp(0),
            [(slot("1"), Some(phone("A"))), (slot("2"), Some(phone("B")))],
        );
        let events = tracker.observe_all(
            Timestamp(500),
            [(slot("1"), Some(phone("B"))), (slot("2"), Some(phone("A")))],
        );
        assert_eq!(events, vec![moved("1", "2", "A"), moved("2", "1", "B")]);
        assert_eq!(tracker.announced().count(), 2);
        assert_eq!(tracker.tick(Timestamp(10_000)), vec![]);
    }

    #[test]
    fn zero_window_undocks_at_once() {
        let mut tracker = SlotTracker::new([slot("1")], 0);
        tracker.observe(Timestamp(0), &slot("1"), Some(phone("A")));
        assert_eq!(
            tracker.observe(Timestamp(1), &slot("1"), None),
            vec![undocked("1", "A")]
        );
    }

    #[test]
    fn unknown_slots_are_ignored() {
        let mut tracker = tracker();
        assert_eq!(
            tracker.observe(Timestamp(0), &slot("99"), Some(phone("A"))),
            vec![]
        );
        assert_eq!(tracker.announced().count(), 0);
    }

    /// One step of a random scenario: time passes, then one slot is observed (or only a
    /// tick happens).
    #[derive(Debug, Clone)]
    struct Step {
        advance_ms: i64,
        slot: usize,
        device: Option<usize>,
        tick_only: bool,
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            0i64..1_500,
            0usize..4,
            proptest::option::of(0usize..4),
            proptest::bool::weighted(0.2),
        )
            .prop_map(|(advance_ms, slot, device, tick_only)| Step {
                advance_ms,
                slot,
                device,
                tick_only,
            })
    }

    proptest! {
        /// Replaying the stream gives a consistent picture that matches the tracker's,
        /// and once things stay still for the window, the stream matches what is seen.
        #[test]
        fn stream_is_consistent_and_settles(steps in proptest::collection::vec(step(), 0..60)) {
            let labels: Vec<SlotLabel> = (0..4).map(|index| slot(&index.to_string())).collect();
            let mut tracker = SlotTracker::new(labels.clone(), 1_000);
            let mut now = Timestamp(0);
            let mut replay: BTreeMap<DeviceKey, SlotLabel> = BTreeMap::new();
            let apply = |events: Vec<DockEvent>, replay: &mut BTreeMap<DeviceKey, SlotLabel>| {
                for event in events {
                    match event {
                        DockEvent::Docked { slot, device } => {
                            prop_assert!(!replay.contains_key(&device), "docked twice: {device:?}");
                            replay.insert(device, slot);
                        }
                        DockEvent::Undocked { slot, device } => {
                            prop_assert_eq!(replay.remove(&device), Some(slot));
                        }
                        DockEvent::Moved { from, to, device } => {
                            prop_assert_ne!(&from, &to);
                            prop_assert_eq!(replay.insert(device, to), Some(from));
                        }
                    }
                }
                Ok(())
            };
            for step in steps {
                now = now.plus_millis(step.advance_ms);
                let events = if step.tick_only {
                    tracker.tick(now)
                } else {
                    let device = step.device.map(|device| phone(&format!("P{device}")));
                    tracker.observe(now, &labels[step.slot], device)
                };
                apply(events, &mut replay)?;
                let announced: BTreeMap<DeviceKey, SlotLabel> =
                    tracker.announced().map(|(slot, device)| (device.clone(), slot.clone())).collect();
                prop_assert_eq!(&announced, &replay);
                if let Some(deadline) = tracker.next_deadline() {
                    prop_assert!(deadline > now, "a deadline in the past was not acted on");
                }
            }
            let settled = now.plus_millis(1_000);
            apply(tracker.tick(settled), &mut replay)?;
            let observed: BTreeMap<DeviceKey, SlotLabel> =
                tracker.observed().map(|(slot, device)| (device.clone(), slot.clone())).collect();
            prop_assert_eq!(&observed, &replay);
            prop_assert_eq!(tracker.next_deadline(), None);
        }
    }
}
