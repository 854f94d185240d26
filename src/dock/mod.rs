//! Docked devices: which phone is in which slot. SKELETON: filled in by the dock work
//! (issue 5). The contract with the daemon is [`DockEvent`].

use crate::domain::{DeviceKey, SlotLabel};

/// What the dock watcher reports, after its loose-cable window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockEvent {
    /// A device is in a slot (also sent for every device present at start-up).
    Docked {
        /// The slot.
        slot: SlotLabel,
        /// The device.
        device: DeviceKey,
    },
    /// A device left a slot and did not come back within the window.
    Undocked {
        /// The slot.
        slot: SlotLabel,
        /// The device.
        device: DeviceKey,
    },
    /// A device left one slot and appeared in another within the window.
    Moved {
        /// Where it was.
        from: SlotLabel,
        /// Where it is.
        to: SlotLabel,
        /// The device.
        device: DeviceKey,
    },
}
