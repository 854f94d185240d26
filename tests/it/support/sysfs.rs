//! A temporary sysfs tree for dock tests: `bus/usb/devices/<port>` symlinks into a
//! `devices/pci…/usb1/1-1/…` hierarchy, as the kernel lays it out, with the attribute
//! files the dock reads (`idVendor`, `idProduct`, `bDeviceClass`, `serial`, and the
//! interface folders `<port>:1.<n>`).
//!
//! Plugging writes the device folder first and the bus symlink last, and unplugging
//! removes the symlink first, so a scan never sees half a device (the kernel orders its
//! sysfs work the same way around its add and remove uevents).

use std::path::{Path, PathBuf};

/// Where the PCI host controller's first root hub lives in the tree.
const ROOT_HUB_PARENT: &str = "devices/pci0000:00/0000:00:14.0";

/// A device to plug in.
#[derive(Debug, Clone)]
pub struct UsbDevice {
    /// `idVendor`.
    pub vendor: String,
    /// `idProduct`.
    pub product: String,
    /// `bDeviceClass`.
    pub class: String,
    /// `serial`; `None` writes no file.
    pub serial: Option<String>,
    /// Interfaces of configuration 1: class, subclass, protocol.
    pub interfaces: Vec<(u8, u8, u8)>,
}

impl UsbDevice {
    /// An iPhone with this USB serial (24 or 40 hex digits).
    pub fn iphone(serial: &str) -> UsbDevice {
        UsbDevice {
            vendor: "05ac".into(),
            product: "12a8".into(),
            class: "00".into(),
            serial: Some(serial.into()),
            // PTP, Apple USB multiplexor (vendor-specific fe/02).
            interfaces: vec![(0x06, 0x01, 0x01), (0xff, 0xfe, 0x02)],
        }
    }

    /// A Samsung Android phone with this serial number.
    pub fn samsung(serial: &str) -> UsbDevice {
        UsbDevice {
            vendor: "04e8".into(),
            product: "6860".into(),
            class: "00".into(),
            serial: Some(serial.into()),
            interfaces: vec![(0x06, 0x01, 0x01)],
        }
    }

    /// A Zebra handheld with this serial number.
    pub fn zebra(serial: &str) -> UsbDevice {
        UsbDevice {
            vendor: "05e0".into(),
            product: "2101".into(),
            class: "00".into(),
            serial: Some(serial.into()),
            interfaces: vec![(0x06, 0x01, 0x01), (0xff, 0x42, 0x01)],
        }
    }

    /// A USB memory stick (SanDisk), which is not a phone.
    pub fn memory_stick(serial: &str) -> UsbDevice {
        UsbDevice {
            vendor: "0781".into(),
            product: "5581".into(),
            class: "00".into(),
            serial: Some(serial.into()),
            interfaces: vec![(0x08, 0x06, 0x50)],
        }
    }

    /// A seven-port hub.
    pub fn hub() -> UsbDevice {
        UsbDevice {
            vendor: "05e3".into(),
            product: "0608".into(),
            class: "09".into(),
            serial: None,
            interfaces: vec![(0x09, 0x00, 0x00)],
        }
    }

    /// The same device without a `serial` file.
    pub fn without_serial(mut self) -> UsbDevice {
        self.serial = None;
        self
    }
}

/// A temporary `sysfs-root`, removed on drop.
#[derive(Debug)]
pub struct SysfsTree {
    dir: tempfile::TempDir,
}

impl SysfsTree {
    /// An empty tree with `bus/usb/devices` in place.
    pub fn new() -> SysfsTree {
        SysfsTree::with_dir(tempfile::tempdir().unwrap())
    }

    /// The same, under `parent` (the benchmark uses tmpfs, which is closer to sysfs).
    #[allow(dead_code, reason = "used by benches/dock.rs, which shares this file")]
    pub fn new_in(parent: &Path) -> SysfsTree {
        SysfsTree::with_dir(tempfile::tempdir_in(parent).unwrap())
    }

    fn with_dir(dir: tempfile::TempDir) -> SysfsTree {
        std::fs::create_dir_all(dir.path().join("bus/usb/devices")).unwrap();
        std::fs::create_dir_all(dir.path().join(ROOT_HUB_PARENT)).unwrap();
        SysfsTree { dir }
    }

    /// The directory to give as `sysfs_root`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The kernel's `DEVPATH` for a port: `/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.4/1-1.4.2`.
    pub fn devpath(port: &str) -> String {
        let (bus, hops) = port.split_once('-').unwrap();
        let mut path = format!("/{ROOT_HUB_PARENT}/usb{bus}");
        let mut prefix = format!("{bus}-");
        for (index, hop) in hops.split('.').enumerate() {
            if index > 0 {
                prefix.push('.');
            }
            prefix.push_str(hop);
            path.push('/');
            path.push_str(&prefix);
        }
        path
    }

    fn device_dir(&self, port: &str) -> PathBuf {
        self.root()
            .join(Self::devpath(port).trim_start_matches('/'))
    }

    fn bus_link(&self, name: &str) -> PathBuf {
        self.root().join("bus/usb/devices").join(name)
    }

    /// Plugs `device` into `port`: writes its folder, then makes it visible.
    pub fn plug(&self, port: &str, device: &UsbDevice) {
        let folder = self.device_dir(port);
        std::fs::create_dir_all(&folder).unwrap();
        let write = |name: &str, text: &str| {
            std::fs::write(folder.join(name), format!("{text}\n")).unwrap()
        };
        write("idVendor", &device.vendor);
        write("idProduct", &device.product);
        write("bDeviceClass", &device.class);
        write("bConfigurationValue", "1");
        // The kernel prints this one as "%2d".
        write("bNumInterfaces", &format!("{:2}", device.interfaces.len()));
        if let Some(serial) = &device.serial {
            write("serial", serial);
        }
        for (number, (class, subclass, protocol)) in device.interfaces.iter().enumerate() {
            let name = format!("{port}:1.{number}");
            let interface = folder.join(&name);
            std::fs::create_dir_all(&interface).unwrap();
            std::fs::write(interface.join("bInterfaceClass"), format!("{class:02x}\n")).unwrap();
            std::fs::write(
                interface.join("bInterfaceSubClass"),
                format!("{subclass:02x}\n"),
            )
            .unwrap();
            std::fs::write(
                interface.join("bInterfaceProtocol"),
                format!("{protocol:02x}\n"),
            )
            .unwrap();
            self.link(&name, &interface);
        }
        self.link(port, &folder);
    }

    /// Unplugs whatever is in `port`: hides it, then removes its files (the folders of
    /// devices behind it, if it is a hub, stay as they are).
    pub fn unplug(&self, port: &str) {
        std::fs::remove_file(self.bus_link(port)).unwrap();
        let folder = self.device_dir(port);
        for entry in std::fs::read_dir(&folder).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{port}:")) {
                let _ = std::fs::remove_file(self.bus_link(&name));
                std::fs::remove_dir_all(entry.path()).unwrap();
            } else if entry.file_type().unwrap().is_file() {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }

    fn link(&self, name: &str, target: &Path) {
        let relative = Path::new("../../..").join(target.strip_prefix(self.root()).unwrap());
        std::os::unix::fs::symlink(relative, self.bus_link(name)).unwrap();
    }
}

/// A kernel uevent datagram for a USB device, as `kobject_uevent_env` formats it.
pub fn kernel_uevent(action: &str, port: &str, seqnum: u64) -> Vec<u8> {
    let devpath = SysfsTree::devpath(port);
    let fields = [
        format!("{action}@{devpath}"),
        format!("ACTION={action}"),
        format!("DEVPATH={devpath}"),
        "SUBSYSTEM=usb".to_string(),
        "DEVTYPE=usb_device".to_string(),
        format!("SEQNUM={seqnum}"),
    ];
    let mut message = Vec::new();
    for field in fields {
        message.extend_from_slice(field.as_bytes());
        message.push(0);
    }
    message
}

/// Sends `message` by netlink unicast to the uevent socket bound to `port_id`, the way
/// a kernel uevent would reach it.
pub fn send_uevent(port_id: u32, message: &[u8]) {
    use nix::sys::socket::{
        self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
    };
    use std::os::fd::AsRawFd;
    let sender = socket::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )
    .unwrap();
    socket::sendto(
        sender.as_raw_fd(),
        message,
        &NetlinkAddr::new(port_id, 0),
        MsgFlags::empty(),
    )
    .unwrap();
}
