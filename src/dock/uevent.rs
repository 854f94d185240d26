//! Kernel uevents as they arrive on a `NETLINK_KOBJECT_UEVENT` socket, parsed. Pure.
//!
//! The kernel sends one datagram per event: a header `ACTION@DEVPATH`, a NUL, then
//! `KEY=VALUE` pairs each ended by a NUL (`ACTION`, `DEVPATH`, `SUBSYSTEM`, `DEVTYPE`,
//! `PRODUCT`, …, `SEQNUM`). udev re-broadcasts events on another multicast group in the
//! libudev format: the 8 bytes `libudev\0`, a binary header (magic `0xfeedcafe` in network
//! byte order, then header size, properties offset and length in host byte order), and the
//! same `KEY=VALUE\0` list. Both are parsed here.
//!
//! The watcher only uses an event to decide which port to rescan; sysfs stays the source
//! of truth, so a forged or garbled message can cost a rescan but not change a slot.

use thiserror::Error;

use crate::domain::PortPath;

/// One parsed uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// Who formatted it.
    pub origin: UeventOrigin,
    /// What happened.
    pub action: UeventAction,
    /// The device path under `/sys`, e.g. `/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2`.
    pub devpath: String,
    /// Every `KEY=VALUE` pair, in the order sent.
    pub properties: Vec<(String, String)>,
}

/// The two message formats seen on uevent netlink sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UeventOrigin {
    /// Sent by the kernel (multicast group 1).
    Kernel,
    /// Re-sent by udev after its rules ran (multicast group 2, `libudev` header).
    Libudev,
}

/// The uevent action (`kobject_action` in the kernel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UeventAction {
    /// `add`.
    Add,
    /// `remove`.
    Remove,
    /// `change`.
    Change,
    /// `move`.
    Move,
    /// `online`.
    Online,
    /// `offline`.
    Offline,
    /// `bind` (a driver attached; kernel 4.14 and later).
    Bind,
    /// `unbind`.
    Unbind,
    /// Anything newer.
    Other(String),
}

impl UeventAction {
    fn parse(text: &str) -> UeventAction {
        match text {
            "add" => UeventAction::Add,
            "remove" => UeventAction::Remove,
            "change" => UeventAction::Change,
            "move" => UeventAction::Move,
            "online" => UeventAction::Online,
            "offline" => UeventAction::Offline,
            "bind" => UeventAction::Bind,
            "unbind" => UeventAction::Unbind,
            other => UeventAction::Other(other.to_string()),
        }
    }

    /// The action as the kernel spells it.
    pub fn as_str(&self) -> &str {
        match self {
            UeventAction::Add => "add",
            UeventAction::Remove => "remove",
            UeventAction::Change => "change",
            UeventAction::Move => "move",
            UeventAction::Online => "online",
            UeventAction::Offline => "offline",
            UeventAction::Bind => "bind",
            UeventAction::Unbind => "unbind",
            UeventAction::Other(other) => other,
        }
    }
}

/// A datagram that is not a uevent in either format.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UeventError {
    /// Nothing was received.
    #[error("empty uevent message")]
    Empty,
    /// The message does not end with a NUL: it was cut short.
    #[error("uevent message is truncated (it does not end with a NUL)")]
    Truncated,
    /// A kernel message whose first field is not `ACTION@DEVPATH`.
    #[error("uevent header {header:?} is not ACTION@DEVPATH")]
    BadHeader {
        /// The first field, lossily decoded.
        header: String,
    },
    /// A `libudev` message with a wrong magic number or offsets outside the message.
    #[error("libudev message header is malformed: {reason}")]
    BadLibudevHeader {
        /// What is wrong.
        reason: &'static str,
    },
    /// A `libudev` message without `ACTION` or `DEVPATH`.
    #[error("libudev message lacks the {key} property")]
    MissingProperty {
        /// The missing key.
        key: &'static str,
    },
    /// The header and the properties disagree.
    #[error("uevent header says {header:?} but the {key} property says {property:?}")]
    Mismatch {
        /// `ACTION` or `DEVPATH`.
        key: &'static str,
        /// The header's value.
        header: String,
        /// The property's value.
        property: String,
    },
}

/// The prefix of every libudev message.
const LIBUDEV_PREFIX: &[u8; 8] = b"libudev\0";
/// libudev's `UDEV_MONITOR_MAGIC`, sent in network byte order.
const LIBUDEV_MAGIC: u32 = 0xfeed_cafe;
/// The size of `struct udev_monitor_netlink_header`: prefix, magic, and eight `unsigned`.
const LIBUDEV_HEADER_MIN: usize = 40;

/// Parses one datagram from a uevent netlink socket.
pub fn parse(message: &[u8]) -> Result<Uevent, UeventError> {
    if message.is_empty() {
        return Err(UeventError::Empty);
    }
    if message.starts_with(LIBUDEV_PREFIX) {
        parse_libudev(message)
    } else {
        parse_kernel(message)
    }
}

fn parse_kernel(message: &[u8]) -> Result<Uevent, UeventError> {
    if message.last() != Some(&0) {
        return Err(UeventError::Truncated);
    }
    let mut fields = split_fields(message);
    let header = fields.next().unwrap_or_default();
    let Some((action, devpath)) = header.split_once('@').filter(|(action, devpath)| {
        !action.is_empty() && devpath.starts_with('/') && !action.contains('=')
    }) else {
        return Err(UeventError::BadHeader { header });
    };
    let properties: Vec<(String, String)> =
        fields.filter_map(|field| split_property(&field)).collect();
    let event = Uevent {
        origin: UeventOrigin::Kernel,
        action: UeventAction::parse(action),
        devpath: devpath.to_string(),
        properties,
    };
    for (key, header_value) in [("ACTION", action), ("DEVPATH", devpath)] {
        if let Some(property) = event.property(key) {
            if property != header_value {
                return Err(UeventError::Mismatch {
                    key,
                    header: header_value.to_string(),
                    property: property.to_string(),
                });
            }
        }
    }
    Ok(event)
}

fn parse_libudev(message: &[u8]) -> Result<Uevent, UeventError> {
    if message.len() < LIBUDEV_HEADER_MIN {
        return Err(UeventError::BadLibudevHeader {
            reason: "shorter than its header",
        });
    }
    let word = |at: usize| -> [u8; 4] {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(&message[at..at + 4]);
        bytes
    };
    if u32::from_be_bytes(word(8)) != LIBUDEV_MAGIC {
        return Err(UeventError::BadLibudevHeader {
            reason: "wrong magic number",
        });
    }
    let header_size = u32::from_ne_bytes(word(12)) as usize;
    let properties_offset = u32::from_ne_bytes(word(16)) as usize;
    let properties_length = u32::from_ne_bytes(word(20)) as usize;
    if header_size < LIBUDEV_HEADER_MIN || properties_offset < header_size {
        return Err(UeventError::BadLibudevHeader {
            reason: "properties overlap the header",
        });
    }
    let Some(properties) = properties_offset
        .checked_add(properties_length)
        .and_then(|end| message.get(properties_offset..end))
    else {
        return Err(UeventError::BadLibudevHeader {
            reason: "properties run past the end of the message",
        });
    };
    if properties.last() != Some(&0) {
        return Err(UeventError::Truncated);
    }
    let properties: Vec<(String, String)> = split_fields(properties)
        .filter_map(|field| split_property(&field))
        .collect();
    let find = |key: &'static str| {
        properties
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
            .ok_or(UeventError::MissingProperty { key })
    };
    let action = find("ACTION")?;
    let devpath = find("DEVPATH")?;
    Ok(Uevent {
        origin: UeventOrigin::Libudev,
        action: UeventAction::parse(&action),
        devpath,
        properties,
    })
}

/// NUL-separated fields, lossily decoded, empty ones skipped.
fn split_fields(bytes: &[u8]) -> impl Iterator<Item = String> + '_ {
    bytes
        .split(|byte| *byte == 0)
        .filter(|field| !field.is_empty())
        .map(|field| String::from_utf8_lossy(field).into_owned())
}

fn split_property(field: &str) -> Option<(String, String)> {
    let (key, value) = field.split_once('=')?;
    Some((key.to_string(), value.to_string()))
}

impl Uevent {
    /// The first value of `key`.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// `SUBSYSTEM`.
    pub fn subsystem(&self) -> Option<&str> {
        self.property("SUBSYSTEM")
    }

    /// `DEVTYPE`.
    pub fn devtype(&self) -> Option<&str> {
        self.property("DEVTYPE")
    }

    /// The USB port this event is about: the last component of `DEVPATH` for a
    /// `usb_device` (`…/1-1/1-1.4.2` → `1-1.4.2`), or its parent device's port for a
    /// `usb_interface` (`…/1-1.4.2/1-1.4.2:1.0` → `1-1.4.2`). `None` for other
    /// subsystems and for root hubs (`usb1`).
    pub fn usb_port(&self) -> Option<PortPath> {
        if self.subsystem() != Some("usb") {
            return None;
        }
        let last = self.devpath.rsplit('/').next()?;
        let port = last.split_once(':').map_or(last, |(device, _)| device);
        is_port_path(port).then(|| PortPath::new(port))
    }
}

/// `<bus>-<port>[.<port>]*`, e.g. `1-1`, `1-1.4.2`, `3-10`.
pub fn is_port_path(text: &str) -> bool {
    let Some((bus, ports)) = text.split_once('-') else {
        return false;
    };
    let digits = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit());
    digits(bus) && ports.split('.').all(digits)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn kernel_add_of_a_usb_device() {
        let message = b"add@/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2\0SUBSYSTEM=usb\0DEVTYPE=usb_device\0SEQNUM=42\0";
        let event = parse(message).unwrap();
        assert_eq!(event.origin, UeventOrigin::Kernel);
        assert_eq!(event.action, UeventAction::Add);
        assert_eq!(
            event.devpath,
            "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2"
        );
        assert_eq!(event.devtype(), Some("usb_device"));
        assert_eq!(event.property("SEQNUM"), Some("42"));
        assert_eq!(event.usb_port(), Some(PortPath::new("1-1.2")));
    }

    #[test]
    fn interface_events_name_their_device_port() {
        let message = b"bind@/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.4/1-1.4.2/1-1.4.2:1.0\0ACTION=bind\0SUBSYSTEM=usb\0DEVTYPE=usb_interface\0";
        assert_eq!(
            parse(message).unwrap().usb_port(),
            Some(PortPath::new("1-1.4.2"))
        );
    }

    #[test]
    fn root_hubs_and_other_subsystems_have_no_port() {
        let root_hub = b"add@/devices/pci0000:00/0000:00:14.0/usb1\0ACTION=add\0SUBSYSTEM=usb\0DEVTYPE=usb_device\0";
        assert_eq!(parse(root_hub).unwrap().usb_port(), None);
        let battery = b"change@/devices/platform/battery/power_supply/BAT0\0ACTION=change\0SUBSYSTEM=power_supply\0";
        assert_eq!(parse(battery).unwrap().usb_port(), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(parse(b""), Err(UeventError::Empty));
        assert_eq!(parse(b"add@/devices/pci0000"), Err(UeventError::Truncated));
        assert!(matches!(
            parse(b"hello world\0"),
            Err(UeventError::BadHeader { .. })
        ));
        assert!(matches!(
            parse(b"KEY=VALUE@/x\0"),
            Err(UeventError::BadHeader { .. })
        ));
        assert!(matches!(
            parse(b"libudev\0short"),
            Err(UeventError::BadLibudevHeader { .. })
        ));
        assert!(matches!(
            parse(b"add@/devices/a\0ACTION=remove\0"),
            Err(UeventError::Mismatch { key: "ACTION", .. })
        ));
    }

    #[test]
    fn port_paths() {
        for good in ["1-1", "1-1.4.2", "3-10", "2-1.12.3"] {
            assert!(is_port_path(good), "{good}");
        }
        for bad in ["usb1", "1-", "-1", "1-1.", "1-1..2", "1-1:1.0", "a-1", ""] {
            assert!(!is_port_path(bad), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse(&bytes);
            let mut prefixed = LIBUDEV_PREFIX.to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = parse(&prefixed);
        }
    }
}
