//! Docked devices: which phone is in which slot (issue 5).
//!
//! [`spawn`] starts a watcher thread that reads `<sysfs-root>/bus/usb/devices/<port>/`
//! for every configured slot, follows kernel USB uevents when `sysfs-root` is `/sys`,
//! rescans every `rescan-ms` as a safety net, and sends [`DockEvent`]s after the
//! loose-cable window (`flap-ms`). The pieces:
//!
//! - `device`: what one port folder holds (phone vendors, hubs, serial numbers). Pure
//!   decision, thin reading.
//! - `tracker`: the loose-cable window; dock, undock and move. Pure, time passed in.
//! - `uevent`: kernel and libudev netlink messages. Pure.
//! - `watcher`: the thread, the netlink socket and the log-once bookkeeping.

pub mod device;
pub mod tracker;
pub mod uevent;
pub mod watcher;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::DockConfig;
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

/// Starts the dock watcher on its own thread (it never blocks the tokio runtime, and
/// needs none to start). It first sends `Docked` for every device present, then follows
/// changes until `cancel` fires or `events`' receiver is dropped.
///
/// Kernel uevents are followed when `config.sysfs_root` is `/sys`; if the uevent socket
/// cannot be opened, one warning is logged and the periodic rescan carries on alone. Any
/// other root (a test tree) is rescanned every `config.rescan_ms`.
///
/// # Errors
///
/// Only when the thread cannot be started.
pub fn spawn(
    config: DockConfig,
    events: mpsc::Sender<DockEvent>,
    cancel: CancellationToken,
) -> std::io::Result<watcher::DockHandle> {
    watcher::spawn_with(config, watcher::UeventSource::Auto, events, cancel)
}

/// One synchronous look at every configured slot: the phones present now, by slot. The
/// daemon sends this to the engine as its start-up inventory, before the watcher's events,
/// so that devices which left while the daemon was down are noticed at once. `None` when
/// a port stayed unreadable (being plugged in or out) after a few tries: then no
/// inventory is taken and the watcher's events alone bring the engine up to date.
pub fn scan(config: &DockConfig) -> Option<Vec<(SlotLabel, DeviceKey)>> {
    let devices_dir = config.sysfs_root.join("bus/usb/devices");
    for _attempt in 0..5 {
        let mut present = Vec::new();
        let mut unreadable = false;
        for slot in &config.slots {
            match device::read_port(&devices_dir, &slot.port) {
                device::PortReading::Phone(key) => present.push((slot.label.clone(), key)),
                device::PortReading::Unreadable { .. } => unreadable = true,
                _ => {}
            }
        }
        if !unreadable {
            return Some(present);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}
