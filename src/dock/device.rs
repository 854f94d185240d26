//! What is plugged into one USB port: reads `<sysfs-root>/bus/usb/devices/<port>/` and
//! decides whether it is a phone the cabinet hands out, and which one.
//!
//! The rule, as an operator would expect it:
//!
//! - No folder: nothing is plugged in.
//! - A hub (`bDeviceClass` `09`) is never a phone, even in a slot's port.
//! - Apple (`05ac`) with a serial: an iPhone or iPad, identified by its UDID
//!   ([`DeviceKey::apple_from_usb_serial`]).
//! - A vendor on [`ANDROID_VENDORS`] with a serial: an Android device, identified by its
//!   serial number ([`DeviceKey::android`]).
//! - Any other vendor with a serial counts as Android only if one of its interfaces speaks
//!   MTP, PTP or ADB, which is what an Android phone shows over USB whatever its maker. This
//!   is the config-free fallback for rugged and regional brands missing from the list.
//! - Everything else (a device without a serial, an unknown vendor that is not a phone, a
//!   USB stick in a slot) is [`PortReading::Ignored`]; the watcher logs it once per plug-in.
//!
//! Reading a folder is the only I/O here; the decision itself is [`classify`], which is pure.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::domain::{DeviceKey, PortPath};

/// Apple's USB vendor id, as sysfs spells it.
pub const APPLE_VENDOR: &str = "05ac";

/// A USB vendor id known to make Android phones or handhelds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneVendor {
    /// The vendor id as sysfs spells it: four lower-case hex digits.
    pub id: &'static str,
    /// Who that is, for log lines.
    pub name: &'static str,
}

/// Vendors whose devices with a serial number are taken as Android phones. Names follow
/// the public USB id registry (`usb.ids`); several are the historic owner of an id that a
/// current brand kept (Symbol for Zebra, Metrologic for Honeywell).
pub const ANDROID_VENDORS: &[PhoneVendor] = &[
    PhoneVendor {
        id: "18d1",
        name: "Google",
    },
    PhoneVendor {
        id: "04e8",
        name: "Samsung",
    },
    PhoneVendor {
        id: "05e0",
        name: "Zebra (Symbol)",
    },
    PhoneVendor {
        id: "0c2e",
        name: "Honeywell (Metrologic)",
    },
    PhoneVendor {
        id: "1973",
        name: "Spectralink",
    },
    PhoneVendor {
        id: "0cae",
        name: "Ascom",
    },
    PhoneVendor {
        id: "22b8",
        name: "Motorola",
    },
    PhoneVendor {
        id: "17ef",
        name: "Lenovo",
    },
    PhoneVendor {
        id: "0482",
        name: "Kyocera",
    },
    PhoneVendor {
        id: "2e04",
        name: "HMD Global (Nokia)",
    },
    PhoneVendor {
        id: "0421",
        name: "Nokia",
    },
    PhoneVendor {
        id: "0fce",
        name: "Sony",
    },
    PhoneVendor {
        id: "1004",
        name: "LG",
    },
    PhoneVendor {
        id: "0bb4",
        name: "HTC",
    },
    PhoneVendor {
        id: "12d1",
        name: "Huawei",
    },
    PhoneVendor {
        id: "2717",
        name: "Xiaomi",
    },
    PhoneVendor {
        id: "22d9",
        name: "OPPO",
    },
    PhoneVendor {
        id: "2a70",
        name: "OnePlus",
    },
    PhoneVendor {
        id: "0b05",
        name: "ASUS",
    },
    PhoneVendor {
        id: "19d2",
        name: "ZTE",
    },
    PhoneVendor {
        id: "1bbb",
        name: "TCL (Alcatel)",
    },
    PhoneVendor {
        id: "2ae5",
        name: "Fairphone",
    },
];

/// `bDeviceClass` of a USB hub.
const HUB_CLASS: &str = "09";

/// What one slot's port holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortReading {
    /// No device folder: nothing is plugged in.
    Empty,
    /// A phone the cabinet can hand out.
    Phone(DeviceKey),
    /// Something is plugged in, but it is not a phone the cabinet can hand out.
    Ignored(Ignored),
    /// The folder is there but could not be read: it is being created or removed, or
    /// the read failed. The previous observation of the slot stands.
    Unreadable {
        /// The file that could not be read.
        file: PathBuf,
        /// Why, as the OS said it.
        reason: String,
    },
}

/// Why a plugged-in device is not taken as a phone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ignored {
    /// A USB hub.
    Hub {
        /// `idVendor`.
        vendor: String,
        /// `idProduct`.
        product: String,
    },
    /// A vendor that makes no phones we know of, and no phone-like interface.
    UnknownVendor {
        /// `idVendor`.
        vendor: String,
        /// `idProduct`.
        product: String,
    },
    /// A phone vendor, but no serial number (missing or empty `serial`), so there is no
    /// identity to give Workspace ONE.
    NoSerial {
        /// `idVendor`.
        vendor: String,
        /// `idProduct`.
        product: String,
    },
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::Hub { vendor, product } => write!(
                f,
                "USB hub {vendor}:{product} is not a phone: point the slot at a port below the hub"
            ),
            Ignored::UnknownVendor { vendor, product } => write!(
                f,
                "device {vendor}:{product} is from a vendor not known to make phones and shows no MTP, PTP or ADB interface: it is not handed out"
            ),
            Ignored::NoSerial { vendor, product } => write!(
                f,
                "device {vendor}:{product} reports no USB serial number, so it cannot be identified: it is not handed out"
            ),
        }
    }
}

/// The sysfs attributes of one USB device that the decision needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsbAttributes {
    /// `idVendor`, four lower-case hex digits.
    pub vendor: String,
    /// `idProduct`, four lower-case hex digits.
    pub product: String,
    /// `bDeviceClass`, two hex digits, when the file exists.
    pub device_class: Option<String>,
    /// `serial`, trimmed; `None` when the file is missing or empty.
    pub serial: Option<String>,
    /// The interfaces of the active configuration; only read for unknown vendors.
    pub interfaces: Vec<InterfaceClass>,
}

/// `bInterfaceClass` / `bInterfaceSubClass` / `bInterfaceProtocol` of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceClass {
    /// `bInterfaceClass`.
    pub class: u8,
    /// `bInterfaceSubClass`.
    pub subclass: u8,
    /// `bInterfaceProtocol`.
    pub protocol: u8,
}

impl InterfaceClass {
    /// MTP or PTP (still image, 06/01/01) or the Android debug bridge (ff/42/01).
    pub fn is_phone_like(self) -> bool {
        matches!(
            (self.class, self.subclass, self.protocol),
            (0x06, 0x01, 0x01) | (0xff, 0x42, 0x01)
        )
    }
}

/// The known Android vendor with this id, if any.
pub fn android_vendor(vendor: &str) -> Option<&'static PhoneVendor> {
    ANDROID_VENDORS.iter().find(|known| known.id == vendor)
}

/// Decides what a device with these attributes is. Pure.
pub fn classify(attributes: &UsbAttributes) -> PortReading {
    let vendor = attributes.vendor.clone();
    let product = attributes.product.clone();
    if attributes.device_class.as_deref() == Some(HUB_CLASS) {
        return PortReading::Ignored(Ignored::Hub { vendor, product });
    }
    let known_vendor = vendor == APPLE_VENDOR || android_vendor(&vendor).is_some();
    let phone_like = attributes
        .interfaces
        .iter()
        .any(|interface| interface.is_phone_like());
    if !known_vendor && !phone_like {
        return PortReading::Ignored(Ignored::UnknownVendor { vendor, product });
    }
    let Some(serial) = attributes.serial.as_deref() else {
        return PortReading::Ignored(Ignored::NoSerial { vendor, product });
    };
    if vendor == APPLE_VENDOR {
        PortReading::Phone(DeviceKey::apple_from_usb_serial(serial))
    } else {
        PortReading::Phone(DeviceKey::android(serial))
    }
}

/// Reads `<devices_dir>/<port>/` and classifies it. `devices_dir` is
/// `<sysfs-root>/bus/usb/devices`.
pub fn read_port(devices_dir: &Path, port: &PortPath) -> PortReading {
    let folder = devices_dir.join(port.as_str());
    match read_attributes(devices_dir, port, &folder) {
        Ok(Some(attributes)) => classify(&attributes),
        Ok(None) => PortReading::Empty,
        Err((file, error)) => PortReading::Unreadable {
            file,
            reason: error.to_string(),
        },
    }
}

/// `Ok(None)` when the folder is absent.
fn read_attributes(
    devices_dir: &Path,
    port: &PortPath,
    folder: &Path,
) -> Result<Option<UsbAttributes>, (PathBuf, io::Error)> {
    let vendor_file = folder.join("idVendor");
    let vendor = match read_attribute(&vendor_file) {
        Ok(bytes) => normalize_hex(&bytes),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            // The folder itself may be missing (nothing plugged in) or be there without
            // its attributes for a moment while the kernel creates or removes it.
            return match std::fs::symlink_metadata(folder) {
                Err(missing) if missing.kind() == io::ErrorKind::NotFound => Ok(None),
                _ => Err((vendor_file, error)),
            };
        }
        Err(error) => return Err((vendor_file, error)),
    };
    let product = read_optional(&folder.join("idProduct"))?.map(|bytes| normalize_hex(&bytes));
    let device_class =
        read_optional(&folder.join("bDeviceClass"))?.map(|bytes| normalize_hex(&bytes));
    let serial = read_optional(&folder.join("serial"))?
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .filter(|serial| !serial.is_empty());
    let mut attributes = UsbAttributes {
        vendor,
        product: product.unwrap_or_default(),
        device_class,
        serial,
        interfaces: Vec::new(),
    };
    let needs_interfaces = attributes.vendor != APPLE_VENDOR
        && android_vendor(&attributes.vendor).is_none()
        && attributes.device_class.as_deref() != Some(HUB_CLASS);
    if needs_interfaces {
        attributes.interfaces = read_interfaces(devices_dir, port, folder);
    }
    Ok(Some(attributes))
}

/// The interfaces of the active configuration, found as `<port>:<config>.<n>` beside the
/// device folder, so no directory listing is needed. Unreadable ones are skipped: they
/// only matter for the unknown-vendor fallback.
fn read_interfaces(devices_dir: &Path, port: &PortPath, folder: &Path) -> Vec<InterfaceClass> {
    let read_number = |path: PathBuf| -> Option<u8> {
        let bytes = read_attribute(&path).ok()?;
        String::from_utf8_lossy(&bytes).trim().parse().ok()
    };
    let Some(configuration) = read_number(folder.join("bConfigurationValue")) else {
        return Vec::new();
    };
    let Some(n_interfaces) = read_number(folder.join("bNumInterfaces")) else {
        return Vec::new();
    };
    let read_hex = |path: PathBuf| -> Option<u8> {
        let bytes = read_attribute(&path).ok()?;
        u8::from_str_radix(String::from_utf8_lossy(&bytes).trim(), 16).ok()
    };
    (0..n_interfaces)
        .filter_map(|number| {
            let interface = devices_dir.join(format!("{}:{configuration}.{number}", port.as_str()));
            Some(InterfaceClass {
                class: read_hex(interface.join("bInterfaceClass"))?,
                subclass: read_hex(interface.join("bInterfaceSubClass"))?,
                protocol: read_hex(interface.join("bInterfaceProtocol"))?,
            })
        })
        .collect()
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, (PathBuf, io::Error)> {
    match read_attribute(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err((path.to_path_buf(), error)),
    }
}

/// Reads a sysfs attribute: at most one page, which is all sysfs ever returns. Unlike
/// `std::fs::read`, it does not ask for the file's size first (a wasted system call on
/// sysfs, where every attribute claims 4096 bytes).
fn read_attribute(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut buffer = [0u8; 4096];
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n_read) => filled += n_read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(buffer[..filled].to_vec())
}

fn normalize_hex(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::domain::Platform;

    fn attributes(vendor: &str, serial: Option<&str>) -> UsbAttributes {
        UsbAttributes {
            vendor: vendor.to_string(),
            product: "1234".to_string(),
            device_class: Some("00".to_string()),
            serial: serial.map(str::to_string),
            interfaces: Vec::new(),
        }
    }

    #[test]
    fn apple_serial_becomes_the_workspace_one_udid() {
        let reading = classify(&attributes("05ac", Some("00008110000a1b2c3d4e801e")));
        assert_eq!(
            reading,
            PortReading::Phone(DeviceKey {
                platform: Platform::Apple,
                id: "00008110-000A1B2C3D4E801E".to_string()
            })
        );
    }

    #[test]
    fn known_android_vendor_is_identified_by_serial() {
        let reading = classify(&attributes("04e8", Some("R58N12ABCDE")));
        assert_eq!(
            reading,
            PortReading::Phone(DeviceKey::android("R58N12ABCDE"))
        );
    }

    #[test]
    fn hub_is_ignored_even_from_a_phone_vendor() {
        let mut hub = attributes("05ac", Some("000000000001"));
        hub.device_class = Some("09".to_string());
        assert!(matches!(
            classify(&hub),
            PortReading::Ignored(Ignored::Hub { .. })
        ));
    }

    #[test]
    fn phone_vendor_without_serial_is_ignored() {
        assert_eq!(
            classify(&attributes("18d1", None)),
            PortReading::Ignored(Ignored::NoSerial {
                vendor: "18d1".to_string(),
                product: "1234".to_string()
            })
        );
    }

    #[test]
    fn unknown_vendor_is_ignored_unless_it_speaks_mtp_or_adb() {
        let mut stick = attributes("0781", Some("4C530001"));
        stick.interfaces = vec![InterfaceClass {
            class: 0x08,
            subclass: 0x06,
            protocol: 0x50,
        }];
        assert!(matches!(
            classify(&stick),
            PortReading::Ignored(Ignored::UnknownVendor { .. })
        ));

        let mut rugged = attributes("2d95", Some("ABC123"));
        rugged.interfaces = vec![InterfaceClass {
            class: 0x06,
            subclass: 0x01,
            protocol: 0x01,
        }];
        assert_eq!(
            classify(&rugged),
            PortReading::Phone(DeviceKey::android("ABC123"))
        );

        let mut adb = attributes("2d95", Some("ABC124"));
        adb.interfaces = vec![InterfaceClass {
            class: 0xff,
            subclass: 0x42,
            protocol: 0x01,
        }];
        assert_eq!(
            classify(&adb),
            PortReading::Phone(DeviceKey::android("ABC124"))
        );
    }

    #[test]
    fn vendor_list_is_well_formed() {
        for vendor in ANDROID_VENDORS {
            assert_eq!(vendor.id.len(), 4, "{vendor:?}");
            assert!(
                vendor
                    .id
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{vendor:?}"
            );
            assert_ne!(vendor.id, APPLE_VENDOR);
        }
        let mut ids: Vec<_> = ANDROID_VENDORS.iter().map(|vendor| vendor.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ANDROID_VENDORS.len(), "a vendor is listed twice");
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_a_port_folder_as_the_kernel_writes_it() {
        let root = tempfile::tempdir().unwrap();
        let devices = root.path();
        let port = PortPath::new("1-1.4.2");
        assert_eq!(read_port(devices, &port), PortReading::Empty);

        write(&devices.join("1-1.4.2/idVendor"), "05AC\n");
        write(&devices.join("1-1.4.2/idProduct"), "12a8\n");
        write(&devices.join("1-1.4.2/bDeviceClass"), "00\n");
        write(
            &devices.join("1-1.4.2/serial"),
            "00008110000a1b2c3d4e801e\n",
        );
        assert_eq!(
            read_port(devices, &port),
            PortReading::Phone(DeviceKey::apple_from_usb_serial(
                "00008110-000A1B2C3D4E801E"
            ))
        );

        std::fs::remove_file(devices.join("1-1.4.2/serial")).unwrap();
        assert!(matches!(
            read_port(devices, &port),
            PortReading::Ignored(Ignored::NoSerial { .. })
        ));
        write(&devices.join("1-1.4.2/serial"), "  \n");
        assert!(matches!(
            read_port(devices, &port),
            PortReading::Ignored(Ignored::NoSerial { .. })
        ));
    }

    #[test]
    fn folder_without_attributes_is_unreadable_not_empty() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("1-1.2")).unwrap();
        assert!(matches!(
            read_port(root.path(), &PortPath::new("1-1.2")),
            PortReading::Unreadable { .. }
        ));
    }

    #[test]
    fn unknown_vendor_interfaces_are_read_from_sibling_folders() {
        let root = tempfile::tempdir().unwrap();
        let devices = root.path();
        write(&devices.join("1-1.3/idVendor"), "2d95\n");
        write(&devices.join("1-1.3/idProduct"), "6003\n");
        write(&devices.join("1-1.3/serial"), "VIVO123\n");
        write(&devices.join("1-1.3/bConfigurationValue"), "1\n");
        write(&devices.join("1-1.3/bNumInterfaces"), " 2\n");
        write(&devices.join("1-1.3:1.0/bInterfaceClass"), "06\n");
        write(&devices.join("1-1.3:1.0/bInterfaceSubClass"), "01\n");
        write(&devices.join("1-1.3:1.0/bInterfaceProtocol"), "01\n");
        assert_eq!(
            read_port(devices, &PortPath::new("1-1.3")),
            PortReading::Phone(DeviceKey::android("VIVO123"))
        );
    }
}
