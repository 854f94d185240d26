//! The dock watcher: a dedicated thread that scans the slots' USB ports, follows kernel
//! uevents, and sends [`DockEvent`]s after the loose-cable window.
//!
//! Why a thread: reading sysfs and waiting on a netlink socket are blocking calls, and a
//! plain thread keeps them off the tokio runtime (STYLE.md habit 4). It needs no runtime
//! to start, sends with `blocking_send` (so a slow engine applies backpressure), and
//! checks the cancellation token at least every [`CANCEL_POLL`].
//!
//! Sources of truth, in order: sysfs is the truth; a uevent only says which port to read
//! again (and that port is read once more [`SETTLE`] later, in case the folder was still
//! there, or not yet complete, when the event was read); a full rescan every `rescan_ms`
//! catches anything missed, and is the only source when `sysfs_root` is not `/sys`.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use nix::sys::time::{TimeVal, TimeValLike};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::DockConfig;
use crate::dock::device::{read_port, PortReading};
use crate::dock::tracker::SlotTracker;
use crate::dock::uevent;
use crate::dock::DockEvent;
use crate::domain::{DeviceKey, PortPath, SlotLabel, Timestamp};

/// The longest the thread goes without looking at the cancellation token.
pub const CANCEL_POLL: Duration = Duration::from_millis(100);
/// How long after a uevent its port is read a second time.
pub const SETTLE: Duration = Duration::from_millis(100);
/// The kernel's multicast group for uevents (udev's re-broadcast is group 2).
const KERNEL_UEVENT_GROUP: u32 = 1;
/// Receive buffer asked for, so a burst of events (a hub with 12 phones re-enumerating)
/// is not dropped; the kernel caps it at `net.core.rmem_max` without privilege.
const RECEIVE_BUFFER_BYTES: usize = 1 << 20;

/// Where the watcher learns about USB changes besides its periodic rescan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UeventSource {
    /// Kernel uevents when `sysfs_root` is `/sys`; rescans only otherwise. If the socket
    /// cannot be opened, one warning is logged and rescans carry on alone.
    Auto,
    /// Always open the uevent socket, whatever `sysfs_root` is, and fail if it cannot be
    /// opened. Tests and benchmarks use this to send uevents by unicast to
    /// [`DockHandle::uevent_port_id`].
    Netlink,
    /// Rescans only.
    Off,
}

/// The running watcher.
#[derive(Debug)]
pub struct DockHandle {
    /// The thread, for [`DockHandle::join`].
    thread: std::thread::JoinHandle<()>,
    /// Closed when the thread ends, for [`DockHandle::stopped`].
    done: tokio::sync::oneshot::Receiver<()>,
    /// The netlink port id of the uevent socket, when one is open.
    uevent_port_id: Option<u32>,
}

impl DockHandle {
    /// The netlink port id (`nl_pid`) the uevent socket is bound to, if one is open.
    /// Anything sent there by unicast is handled like a kernel uevent.
    pub fn uevent_port_id(&self) -> Option<u32> {
        self.uevent_port_id
    }

    /// True once the thread has ended (cancelled, or the event receiver was dropped).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits, without blocking the runtime, until the thread has ended.
    pub async fn stopped(self) {
        // The sender is never used: it is dropped when the thread ends, even by a panic.
        let _ = self.done.await;
    }

    /// Blocks until the thread has ended. `Err` if it panicked.
    pub fn join(self) -> std::thread::Result<()> {
        self.thread.join()
    }
}

/// Starts the watcher on its own thread. See [`crate::dock::spawn`].
///
/// # Errors
///
/// The thread could not be started, or `uevents` is [`UeventSource::Netlink`] and the
/// uevent socket could not be opened.
pub fn spawn_with(
    config: DockConfig,
    uevents: UeventSource,
    events: mpsc::Sender<DockEvent>,
    cancel: CancellationToken,
) -> std::io::Result<DockHandle> {
    let devices_dir = config.sysfs_root.join("bus/usb/devices");
    let socket = match uevents {
        UeventSource::Off => None,
        UeventSource::Netlink => Some(UeventSocket::open().map_err(|errno| {
            std::io::Error::new(
                std::io::Error::from(errno).kind(),
                format!(
                    "cannot open the kernel uevent socket (NETLINK_KOBJECT_UEVENT): {errno}; \
                     use UeventSource::Auto to carry on with periodic rescans"
                ),
            )
        })?),
        UeventSource::Auto if config.sysfs_root != Path::new("/sys") => None,
        UeventSource::Auto => match UeventSocket::open() {
            Ok(socket) => Some(socket),
            Err(errno) => {
                warn!(
                    cause = %errno,
                    "dock: cannot open the kernel uevent socket; USB changes are seen by the periodic rescan only"
                );
                None
            }
        },
    };
    let uevent_port_id = socket.as_ref().map(|socket| socket.port_id);
    info!(
        devices = %devices_dir.display(),
        n_slots = config.slots.len(),
        rescan_ms = config.rescan_ms,
        flap_ms = config.flap_ms,
        uevents = socket.is_some(),
        "dock: watching"
    );
    if !devices_dir.is_dir() {
        warn!(
            devices = %devices_dir.display(),
            "dock: the USB devices folder does not exist; check dock.sysfs-root (no device is seen until it exists)"
        );
    }
    let task = DockTask::new(config, devices_dir, socket, events, cancel);
    let (done_sender, done) = tokio::sync::oneshot::channel::<()>();
    // The watcher logs where the caller's logs go, also when the caller set a scoped
    // (thread-local) subscriber, as tests do.
    let dispatch = tracing::dispatcher::get_default(|dispatch| dispatch.clone());
    let thread = std::thread::Builder::new()
        .name("badgedock-dock".to_string())
        .spawn(move || {
            let _done_sender = done_sender;
            tracing::dispatcher::with_default(&dispatch, || task.run());
        })?;
    Ok(DockHandle {
        thread,
        done,
        uevent_port_id,
    })
}

/// The state of the watcher thread.
struct DockTask {
    /// `<sysfs-root>/bus/usb/devices`.
    devices_dir: PathBuf,
    /// Each slot's label and port, in cabinet order.
    slots: Vec<(SlotLabel, PortPath)>,
    /// Port path to slot index.
    slot_of_port: HashMap<String, usize>,
    /// The loose-cable window.
    tracker: SlotTracker,
    /// Safety-net rescan period.
    rescan: Duration,
    /// The uevent socket, when open.
    socket: Option<UeventSocket>,
    /// To the engine.
    events: mpsc::Sender<DockEvent>,
    /// Stops the thread.
    cancel: CancellationToken,
    /// What was already logged, so a rescan does not repeat it.
    notices: Notices,
    /// Slots to read again, and when (at most one entry per slot).
    rechecks: Vec<(usize, Instant)>,
    /// The origin of the tracker's timestamps (monotonic, so clock changes do not open or
    /// close loose-cable windows).
    started: Instant,
}

/// Why the thread stops.
enum Stop {
    /// The receiver is gone: the engine stopped.
    ReceiverGone,
}

impl DockTask {
    fn new(
        config: DockConfig,
        devices_dir: PathBuf,
        socket: Option<UeventSocket>,
        events: mpsc::Sender<DockEvent>,
        cancel: CancellationToken,
    ) -> DockTask {
        let slots: Vec<(SlotLabel, PortPath)> = config
            .slots
            .iter()
            .map(|slot| (slot.label.clone(), slot.port.clone()))
            .collect();
        let slot_of_port = slots
            .iter()
            .enumerate()
            .map(|(index, (_, port))| (port.as_str().to_string(), index))
            .collect();
        let tracker =
            SlotTracker::new(slots.iter().map(|(label, _)| label.clone()), config.flap_ms);
        DockTask {
            devices_dir,
            slots,
            slot_of_port,
            tracker,
            rescan: Duration::from_millis(config.rescan_ms.max(1)),
            socket,
            events,
            cancel,
            notices: Notices::default(),
            rechecks: Vec::new(),
            started: Instant::now(),
        }
    }

    fn run(mut self) {
        match self.watch() {
            Ok(()) => info!("dock: stopped"),
            Err(Stop::ReceiverGone) => info!("dock: the engine is gone; stopped"),
        }
    }

    fn watch(&mut self) -> Result<(), Stop> {
        let mut buffer = vec![0u8; 16 * 1024];
        self.full_scan()?;
        let mut next_rescan = Instant::now() + self.rescan;
        while !self.cancel.is_cancelled() {
            if self.events.is_closed() {
                // Noticed here too, not only on the next send: a quiet cabinet sends nothing.
                return Err(Stop::ReceiverGone);
            }
            let wake = self.next_wake(next_rescan);
            let wait = wake.saturating_duration_since(Instant::now());
            match &self.socket {
                Some(socket) => match socket.receive(&mut buffer, wait) {
                    Ok(Some(length)) => {
                        let message = buffer.get(..length).unwrap_or_default().to_vec();
                        self.on_uevent(&message)?;
                    }
                    Ok(None) => {}
                    Err(Errno::ENOBUFS) => {
                        debug!("dock: uevents were dropped (receive buffer full); rescanning every slot");
                        self.full_scan()?;
                        next_rescan = Instant::now() + self.rescan;
                    }
                    Err(errno) => {
                        warn!(cause = %errno, "dock: the uevent socket failed; carrying on with periodic rescans only");
                        self.socket = None;
                    }
                },
                None => std::thread::sleep(wait),
            }
            let now = Instant::now();
            if now >= next_rescan {
                self.full_scan()?;
                next_rescan = now + self.rescan;
            }
            self.due_rechecks(now)?;
            let events = self.tracker.tick(self.timestamp(now));
            self.send(events)?;
        }
        Ok(())
    }

    /// The earliest of: the next rescan, the next recheck, the next window end, and the
    /// next look at the cancellation token.
    fn next_wake(&self, next_rescan: Instant) -> Instant {
        let mut wake = next_rescan.min(Instant::now() + CANCEL_POLL);
        if let Some(deadline) = self.tracker.next_deadline() {
            let millis = u64::try_from(deadline.0).unwrap_or(0);
            wake = wake.min(self.started + Duration::from_millis(millis));
        }
        if let Some(recheck) = self.rechecks.iter().map(|(_, due)| *due).min() {
            wake = wake.min(recheck);
        }
        wake
    }

    fn on_uevent(&mut self, message: &[u8]) -> Result<(), Stop> {
        let event = match uevent::parse(message) {
            Ok(event) => event,
            Err(error) => {
                debug!(cause = %error, "dock: ignoring a message on the uevent socket");
                return Ok(());
            }
        };
        let Some(port) = event.usb_port() else {
            return Ok(());
        };
        let Some(&index) = self.slot_of_port.get(port.as_str()) else {
            return Ok(());
        };
        debug!(port = %port, action = event.action.as_str(), "dock: uevent for a slot");
        let due = Instant::now() + SETTLE;
        match self.rechecks.iter_mut().find(|(slot, _)| *slot == index) {
            Some(recheck) => recheck.1 = due,
            None => self.rechecks.push((index, due)),
        }
        self.scan_slots(&[index])
    }

    fn due_rechecks(&mut self, now: Instant) -> Result<(), Stop> {
        if self.rechecks.iter().all(|(_, due)| *due > now) {
            return Ok(());
        }
        let due: BTreeSet<usize> = self
            .rechecks
            .iter()
            .filter(|(_, due)| *due <= now)
            .map(|(index, _)| *index)
            .collect();
        self.rechecks.retain(|(_, due)| *due > now);
        self.scan_slots(&due.into_iter().collect::<Vec<_>>())
    }

    fn full_scan(&mut self) -> Result<(), Stop> {
        let all: Vec<usize> = (0..self.slots.len()).collect();
        self.scan_slots(&all)
    }

    /// Reads these slots' ports and feeds what they hold to the tracker.
    fn scan_slots(&mut self, indexes: &[usize]) -> Result<(), Stop> {
        let mut observations = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let (label, port) = &self.slots[index];
            let reading = read_port(&self.devices_dir, port);
            self.notices.log(index, label, port, &reading);
            if let Some(observation) = observation(&reading) {
                observations.push((label.clone(), observation));
            }
        }
        self.notices.log_duplicates(&observations);
        let now = self.timestamp(Instant::now());
        let events = self.tracker.observe_all(now, observations);
        self.send(events)
    }

    fn send(&self, events: Vec<DockEvent>) -> Result<(), Stop> {
        for event in events {
            debug!(event = ?event, "dock: event");
            self.events
                .blocking_send(event)
                .map_err(|_| Stop::ReceiverGone)?;
        }
        Ok(())
    }

    fn timestamp(&self, at: Instant) -> Timestamp {
        Timestamp(
            i64::try_from(at.saturating_duration_since(self.started).as_millis())
                .unwrap_or(i64::MAX),
        )
    }
}

/// What a reading tells the tracker about the slot: `None` to keep the last observation.
fn observation(reading: &PortReading) -> Option<Option<DeviceKey>> {
    match reading {
        PortReading::Empty | PortReading::Ignored(_) => Some(None),
        PortReading::Phone(device) => Some(Some(device.clone())),
        PortReading::Unreadable { .. } => None,
    }
}

/// Remembers what was logged about each slot, so that an ignored device or an unreadable
/// port is logged once per plug-in rather than once per rescan.
#[derive(Debug, Default)]
pub struct Notices {
    /// The last reading logged for each slot index, for ignored and unreadable ones.
    logged: HashMap<usize, PortReading>,
    /// Device keys already reported as seen in two slots.
    duplicates: BTreeSet<DeviceKey>,
}

impl Notices {
    /// True when this reading is worth a log line: an ignored device or an unreadable
    /// port that differs from what was last logged for the slot. Readings of nothing or
    /// of a phone reset the slot, so the next plug-in is logged again.
    pub fn is_news(&mut self, index: usize, reading: &PortReading) -> bool {
        match reading {
            PortReading::Empty | PortReading::Phone(_) => {
                self.logged.remove(&index);
                false
            }
            PortReading::Ignored(_) | PortReading::Unreadable { .. } => {
                if self.logged.get(&index) == Some(reading) {
                    false
                } else {
                    self.logged.insert(index, reading.clone());
                    true
                }
            }
        }
    }

    fn log(&mut self, index: usize, label: &SlotLabel, port: &PortPath, reading: &PortReading) {
        if !self.is_news(index, reading) {
            return;
        }
        match reading {
            PortReading::Ignored(why) => {
                warn!(slot = %label, port = %port, "dock: ignoring a device: {why}")
            }
            PortReading::Unreadable { file, reason } => debug!(
                slot = %label,
                port = %port,
                file = %file.display(),
                cause = %reason,
                "dock: cannot read the port yet; keeping the slot as it was"
            ),
            PortReading::Empty | PortReading::Phone(_) => {}
        }
    }

    fn log_duplicates(&mut self, observations: &[(SlotLabel, Option<DeviceKey>)]) {
        let mut seen: HashMap<&DeviceKey, &SlotLabel> = HashMap::new();
        for (label, device) in observations {
            let Some(device) = device else { continue };
            if let Some(first) = seen.insert(device, label) {
                if self.duplicates.insert(device.clone()) {
                    warn!(
                        device = %device,
                        first_slot = %first,
                        second_slot = %label,
                        "dock: the same device id is in two slots (two devices share a serial number?); only the later slot is used"
                    );
                }
            }
        }
    }
}

/// A `NETLINK_KOBJECT_UEVENT` socket bound to the kernel's uevent group.
#[derive(Debug)]
struct UeventSocket {
    fd: OwnedFd,
    /// The port id the kernel gave the socket.
    port_id: u32,
}

impl UeventSocket {
    fn open() -> nix::Result<UeventSocket> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )?;
        if let Err(errno) = socket::setsockopt(&fd, socket::sockopt::RcvBuf, &RECEIVE_BUFFER_BYTES)
        {
            debug!(cause = %errno, "dock: could not enlarge the uevent receive buffer");
        }
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, KERNEL_UEVENT_GROUP))?;
        let address: NetlinkAddr = socket::getsockname(fd.as_raw_fd())?;
        Ok(UeventSocket {
            fd,
            port_id: address.pid(),
        })
    }

    /// One datagram, waiting at most `wait`. `Ok(None)` when nothing came.
    fn receive(&self, buffer: &mut [u8], wait: Duration) -> nix::Result<Option<usize>> {
        let result = if wait.is_zero() {
            socket::recv(self.fd.as_raw_fd(), buffer, MsgFlags::MSG_DONTWAIT)
        } else {
            // A zero SO_RCVTIMEO means "wait forever", hence the branch above.
            socket::setsockopt(
                &self.fd,
                socket::sockopt::ReceiveTimeout,
                &TimeVal::microseconds(i64::try_from(wait.as_micros()).unwrap_or(i64::MAX).max(1)),
            )?;
            socket::recv(self.fd.as_raw_fd(), buffer, MsgFlags::empty())
        };
        match result {
            Ok(length) => Ok(Some(length)),
            Err(Errno::EAGAIN | Errno::EINTR) => Ok(None),
            Err(errno) => Err(errno),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::dock::device::Ignored;

    #[test]
    fn an_ignored_device_is_news_once_per_plug_in() {
        let mut notices = Notices::default();
        let stick = PortReading::Ignored(Ignored::UnknownVendor {
            vendor: "0781".into(),
            product: "5581".into(),
        });
        assert!(notices.is_news(0, &stick));
        assert!(!notices.is_news(0, &stick));
        assert!(!notices.is_news(0, &stick));
        assert!(notices.is_news(1, &stick), "another slot is its own news");
        assert!(!notices.is_news(0, &PortReading::Empty));
        assert!(notices.is_news(0, &stick), "plugged in again");
        let other = PortReading::Ignored(Ignored::NoSerial {
            vendor: "18d1".into(),
            product: "4ee7".into(),
        });
        assert!(notices.is_news(0, &other), "a different device");
    }

    #[test]
    fn uevent_socket_opens_without_privilege_and_receives_unicast() {
        let socket = UeventSocket::open().unwrap();
        let sender = socket::socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .unwrap();
        let message = b"add@/devices/x/usb1/1-1/1-1.2\0ACTION=add\0SUBSYSTEM=usb\0";
        socket::sendto(
            sender.as_raw_fd(),
            message,
            &NetlinkAddr::new(socket.port_id, 0),
            MsgFlags::empty(),
        )
        .unwrap();
        let mut buffer = [0u8; 512];
        // On a machine with USB activity, real kernel uevents may arrive first.
        let mut received = false;
        for _ in 0..50 {
            if let Some(length) = socket
                .receive(&mut buffer, Duration::from_millis(100))
                .unwrap()
            {
                if buffer[..length] == message[..] {
                    received = true;
                    break;
                }
            }
        }
        assert!(received, "the unicast message did not arrive");
    }
}
