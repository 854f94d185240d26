//! What a change in one reader's PC/SC state means: a new card to read, the same card
//! still held, a card taken away, or a quick tap that came and went between two waits.
//! Also the same-badge lock-out. Pure (the caller passes the time), so every sequence
//! is unit-tested without pcscd.
//!
//! pcsc-lite counts card insertions and removals per reader in the upper 16 bits of the
//! event state. Comparing that counter with the one seen last time is what catches a
//! card that was removed and put back (or a different card) between two
//! `get_status_change` calls, which the PRESENT bit alone cannot show.

use std::time::{Duration, Instant};

/// The card slot as `get_status_change` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// No card.
    Empty,
    /// A card that answered the reader's power-up.
    Present,
    /// A card is in the field but did not answer (`PRESENT | MUTE`).
    Mute,
}

/// What to do about a state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Nothing new (the same card is still there, or a bit such as INUSE changed).
    Nothing,
    /// A card was already on the reader when the reader was first seen: it is not a
    /// tap (after a restart it would otherwise check out a phone nobody asked for).
    AlreadyThere,
    /// A new presentation: read the card.
    Read,
    /// A new presentation of a card that does not answer.
    Mute,
    /// A card came and went between two waits, too fast to be read.
    Missed,
}

/// The result of one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The previous card left (call [`Presence::removed`] before handling `arrival`).
    pub removed: bool,
    /// What arrived.
    pub arrival: Arrival,
}

/// Whether a read badge counts as a tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A tap.
    Tap,
    /// The same badge again within the lock-out after it was taken away.
    LockedOut,
}

/// One physical reader's card history.
#[derive(Debug, Default)]
pub struct Presence {
    /// pcsc-lite's insert/remove counter at the last observation; `None` until the reader
    /// has been observed in the current pcscd session.
    last_count: Option<u32>,
    /// Whether a card was present at the last observation.
    present: bool,
    /// The UID read from the card now on the reader, if it was read.
    current: Option<Vec<u8>>,
    /// The UID of the card that left last, and when.
    last_removed: Option<(Vec<u8>, Instant)>,
}

impl Presence {
    /// Forgets the pcscd session: counters restart with a new pcscd, and whatever is on
    /// the reader now is unknown. The lock-out memory survives.
    pub fn new_session(&mut self) {
        self.last_count = None;
        self.present = false;
        self.current = None;
    }

    /// Takes one observation: the slot's state and pcsc-lite's event counter.
    pub fn observe(&mut self, seen: Seen, count: u32) -> Change {
        let previous = self.last_count.replace(count);
        let was_present = self.present;
        let now_present = seen != Seen::Empty;
        self.present = now_present;
        let Some(previous) = previous else {
            let arrival = if now_present {
                Arrival::AlreadyThere
            } else {
                Arrival::Nothing
            };
            return Change {
                removed: false,
                arrival,
            };
        };
        // The counter is 16 bits wide and wraps.
        let n_events = count.wrapping_sub(previous) & 0xFFFF;
        let new_card = match seen {
            Seen::Mute => Arrival::Mute,
            _ => Arrival::Read,
        };
        match (was_present, now_present) {
            (false, true) => Change {
                removed: false,
                arrival: new_card,
            },
            (true, true) if n_events >= 2 => Change {
                removed: true,
                arrival: new_card,
            },
            (true, true) => Change {
                removed: false,
                arrival: Arrival::Nothing,
            },
            (true, false) => Change {
                removed: true,
                arrival: Arrival::Nothing,
            },
            (false, false) if n_events >= 2 => Change {
                removed: false,
                arrival: Arrival::Missed,
            },
            (false, false) => Change {
                removed: false,
                arrival: Arrival::Nothing,
            },
        }
    }

    /// The card on the reader left at `now`; its UID starts the lock-out.
    pub fn removed(&mut self, now: Instant) {
        if let Some(uid) = self.current.take() {
            self.last_removed = Some((uid, now));
        }
    }

    /// A UID was read from the card now on the reader: is it a tap?
    ///
    /// The same UID is refused until `lockout` has passed since that card was last taken
    /// away; a different UID is always a tap.
    pub fn read(&mut self, uid: &[u8], now: Instant, lockout: Duration) -> Verdict {
        self.current = Some(uid.to_vec());
        match &self.last_removed {
            Some((last, removed_at))
                if last == uid && now.saturating_duration_since(*removed_at) < lockout =>
            {
                Verdict::LockedOut
            }
            _ => Verdict::Tap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKOUT: Duration = Duration::from_millis(1500);

    fn change(removed: bool, arrival: Arrival) -> Change {
        Change { removed, arrival }
    }

    #[test]
    fn a_card_already_there_at_first_sight_is_not_a_tap() {
        let mut presence = Presence::default();
        assert_eq!(
            presence.observe(Seen::Present, 5),
            change(false, Arrival::AlreadyThere)
        );
        // Its removal is just a removal.
        assert_eq!(
            presence.observe(Seen::Empty, 6),
            change(true, Arrival::Nothing)
        );
    }

    #[test]
    fn insertion_then_held_then_removal() {
        let mut presence = Presence::default();
        assert_eq!(
            presence.observe(Seen::Empty, 0),
            change(false, Arrival::Nothing)
        );
        assert_eq!(
            presence.observe(Seen::Present, 1),
            change(false, Arrival::Read)
        );
        // INUSE toggling while we are connected: same counter, nothing new.
        assert_eq!(
            presence.observe(Seen::Present, 1),
            change(false, Arrival::Nothing)
        );
        assert_eq!(
            presence.observe(Seen::Empty, 2),
            change(true, Arrival::Nothing)
        );
    }

    #[test]
    fn the_counter_reveals_a_swap_and_a_quick_tap_between_two_waits() {
        let mut presence = Presence::default();
        presence.observe(Seen::Empty, 0);
        presence.observe(Seen::Present, 1);
        // Removed and another card put down before the next wait.
        assert_eq!(
            presence.observe(Seen::Present, 3),
            change(true, Arrival::Read)
        );
        presence.observe(Seen::Empty, 4);
        // In and out again before the next wait.
        assert_eq!(
            presence.observe(Seen::Empty, 6),
            change(false, Arrival::Missed)
        );
    }

    #[test]
    fn the_counter_wraps_at_16_bits() {
        let mut presence = Presence::default();
        presence.observe(Seen::Present, 0xFFFF);
        presence.observe(Seen::Empty, 0);
        assert_eq!(
            presence.observe(Seen::Present, 1),
            change(false, Arrival::Read)
        );
        assert_eq!(
            presence.observe(Seen::Present, 3),
            change(true, Arrival::Read)
        );
    }

    #[test]
    fn a_mute_card_is_a_presentation_without_a_read() {
        let mut presence = Presence::default();
        presence.observe(Seen::Empty, 0);
        assert_eq!(
            presence.observe(Seen::Mute, 1),
            change(false, Arrival::Mute)
        );
    }

    #[test]
    fn the_same_badge_is_locked_out_after_removal_and_a_different_one_is_not() {
        let start = Instant::now();
        let mut presence = Presence::default();
        let badge = [0xDE, 0xAD, 0xBE, 0xEF];
        assert_eq!(presence.read(&badge, start, LOCKOUT), Verdict::Tap);
        presence.removed(start + Duration::from_secs(5));
        let back = start + Duration::from_millis(5500);
        assert_eq!(presence.read(&badge, back, LOCKOUT), Verdict::LockedOut);
        presence.removed(back);
        assert_eq!(presence.read(&[1, 2, 3, 4], back, LOCKOUT), Verdict::Tap);
        presence.removed(back);
        let later = back + LOCKOUT;
        assert_eq!(presence.read(&badge, later, LOCKOUT), Verdict::Tap);
    }

    #[test]
    fn a_new_session_keeps_the_lock_out() {
        let start = Instant::now();
        let mut presence = Presence::default();
        presence.observe(Seen::Present, 1);
        presence.read(&[9, 9, 9, 9], start, LOCKOUT);
        presence.removed(start);
        presence.new_session();
        assert_eq!(
            presence.read(&[9, 9, 9, 9], start, LOCKOUT),
            Verdict::LockedOut
        );
        assert_eq!(
            presence.read(&[9, 9, 9, 9], start, Duration::ZERO),
            Verdict::Tap
        );
    }
}
