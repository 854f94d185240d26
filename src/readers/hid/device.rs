//! The real device backends: hidapi (hidraw) for `kind = "hid"` and evdev with an exclusive
//! grab for `kind = "wedge"`. Kept thin on purpose: everything that decides lives in the
//! pure decoders, which are tested; this file only finds, opens and reads devices, which
//! needs real USB hardware (not available where the test suite runs).

use std::collections::VecDeque;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use evdev::raw_stream::RawDevice;
use hidapi::{HidApi, HidDevice};

use crate::config::ReaderConfig;
use crate::readers::hid::sdk::{FeatureIo, RF_IDEAS_VENDOR_ID};
use crate::readers::hid::{
    parse_usb_id, Backend, OpenError, Opened, ReportSource, SourceError, SourceInput,
};

/// What to tell the installer when a device node cannot be opened.
const PERMISSION_HINT: &str =
    "install badgedock's udev rule so the service's group may read the reader's hidraw and input nodes, then replug it";

/// hidapi over hidraw, with a device list refreshed on every open attempt (the hot-plug
/// safety net: the runner calls `open` again every rescan period while the reader is
/// missing).
pub(super) struct HidapiBackend {
    api: Option<HidApi>,
}

impl HidapiBackend {
    pub(super) fn new() -> Self {
        HidapiBackend { api: None }
    }
}

impl Backend for HidapiBackend {
    fn open(&mut self, reader: &ReaderConfig) -> Result<Opened, OpenError> {
        let (vendor, product) = usb_id(reader)?;
        let api = match &mut self.api {
            Some(api) => api,
            empty => empty.insert(HidApi::new().map_err(|err| {
                OpenError::Failed(format!(
                    "cannot start hidapi ({err}): is libudev installed?"
                ))
            })?),
        };
        api.reset_devices()
            .and_then(|()| api.add_devices(vendor, product))
            .map_err(|err| OpenError::Failed(format!("cannot list HID devices ({err})")))?;
        let candidates: Vec<(CString, u16, u16)> = api
            .device_list()
            .filter(|info| info.vendor_id() == vendor && info.product_id() == product)
            .map(|info| (info.path().to_owned(), info.usage_page(), info.usage()))
            .collect();
        // Prefer the keyboard collection (usage page 1, usage 6) of a composite device.
        let chosen = candidates
            .iter()
            .find(|(_, page, usage)| (*page, *usage) == (1, 6))
            .or_else(|| candidates.first());
        let Some((path, _, _)) = chosen else {
            return Err(OpenError::NotFound(reader.matcher.clone()));
        };
        let device = api.open_path(path).map_err(|err| {
            OpenError::Failed(format!(
                "found {} at {} but cannot open it ({err}): {PERMISSION_HINT}",
                reader.matcher,
                path.to_string_lossy()
            ))
        })?;
        if vendor == RF_IDEAS_VENDOR_ID {
            Ok(Opened::Sdk(Box::new(HidFeatures(device))))
        } else {
            tracing::warn!(
                reader = %reader.name,
                "reading a keyboard wedge through hidraw: its keystrokes also reach the console; use kind = \"wedge\" or the reader's non-keyboard mode"
            );
            Ok(Opened::Keyboard(Box::new(HidInputReports(device))))
        }
    }
}

/// Feature reports of an RF IDeas reader.
struct HidFeatures(HidDevice);

impl FeatureIo for HidFeatures {
    fn send_feature(&mut self, data: &[u8]) -> Result<(), SourceError> {
        self.0
            .send_feature_report(data)
            .map_err(|err| SourceError(format!("feature report not accepted: {err}")))
    }

    fn get_feature(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
        self.0
            .get_feature_report(buf)
            .map_err(|err| SourceError(format!("feature report not readable: {err}")))
    }
}

/// Input reports of a keyboard-mode reader.
struct HidInputReports(HidDevice);

impl ReportSource for HidInputReports {
    fn next_input(&mut self, timeout: Duration) -> Result<Option<SourceInput>, SourceError> {
        let mut buf = [0u8; 64];
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let n_read = self
            .0
            .read_timeout(&mut buf, timeout_ms)
            .map_err(|err| SourceError(format!("input report not readable: {err}")))?;
        Ok(match n_read {
            0 => None,
            // A boot report behind a report-id byte.
            9 => Some(SourceInput::Report(buf[1..9].to_vec())),
            n => Some(SourceInput::Report(buf[..n.min(buf.len())].to_vec())),
        })
    }
}

/// evdev nodes of a wedge, grabbed exclusively the moment they are opened.
pub(super) struct EvdevBackend {
    sys_class_input: PathBuf,
    dev_input: PathBuf,
}

impl EvdevBackend {
    pub(super) fn new() -> Self {
        EvdevBackend {
            sys_class_input: PathBuf::from("/sys/class/input"),
            dev_input: PathBuf::from("/dev/input"),
        }
    }
}

impl Backend for EvdevBackend {
    fn open(&mut self, reader: &ReaderConfig) -> Result<Opened, OpenError> {
        let (vendor, product) = usb_id(reader)?;
        let nodes = find_event_nodes(&self.sys_class_input, vendor, product);
        if nodes.is_empty() {
            return Err(OpenError::NotFound(reader.matcher.clone()));
        }
        let mut devices = Vec::new();
        for node in nodes {
            let path = self.dev_input.join(&node);
            let mut device = RawDevice::open(&path).map_err(|err| {
                OpenError::Failed(format!(
                    "cannot open {} ({err}): {PERMISSION_HINT}",
                    path.display()
                ))
            })?;
            // Grab first, before anything else can read a keystroke from it.
            device.grab().map_err(|err| {
                OpenError::Failed(format!(
                    "cannot grab {} exclusively ({err}): another program holds it; stop it",
                    path.display()
                ))
            })?;
            nix::fcntl::fcntl(
                device.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )
            .map_err(|err| {
                OpenError::Failed(format!(
                    "cannot set {} non-blocking ({err})",
                    path.display()
                ))
            })?;
            tracing::info!(reader = %reader.name, node = %path.display(), "wedge grabbed");
            devices.push(device);
        }
        Ok(Opened::Keyboard(Box::new(EvdevKeys {
            devices,
            pending: VecDeque::new(),
        })))
    }
}

/// Key events from the grabbed nodes. The nodes are non-blocking and polled every
/// [`EVDEV_POLL`], which keeps cancellation simple at the cost of a few wake-ups per second.
struct EvdevKeys {
    devices: Vec<RawDevice>,
    pending: VecDeque<SourceInput>,
}

const EVDEV_POLL: Duration = Duration::from_millis(20);

impl ReportSource for EvdevKeys {
    fn next_input(&mut self, timeout: Duration) -> Result<Option<SourceInput>, SourceError> {
        let mut waited = Duration::ZERO;
        loop {
            if let Some(input) = self.pending.pop_front() {
                return Ok(Some(input));
            }
            for device in &mut self.devices {
                match device.fetch_events() {
                    Ok(events) => self.pending.extend(
                        events
                            .filter(|event| event.event_type() == evdev::EventType::KEY)
                            .map(|event| SourceInput::Key {
                                code: event.code(),
                                value: event.value(),
                            }),
                    ),
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(err) => {
                        return Err(SourceError(format!("input device not readable: {err}")))
                    }
                }
            }
            if !self.pending.is_empty() {
                continue;
            }
            if waited >= timeout {
                return Ok(None);
            }
            std::thread::sleep(EVDEV_POLL);
            waited += EVDEV_POLL;
        }
    }
}

impl Drop for EvdevKeys {
    fn drop(&mut self) {
        for device in &mut self.devices {
            // Closing the node releases the grab too; this makes it explicit.
            let _ = device.ungrab();
        }
    }
}

/// The `eventN` names under `sys_class_input` (normally `/sys/class/input`) whose input
/// device has this USB vendor and product id, in numeric order. Reading sysfs needs no
/// permission on the device nodes, so a missing udev rule shows up as "cannot open", not
/// as "not connected".
pub fn find_event_nodes(sys_class_input: &Path, vendor: u16, product: u16) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sys_class_input) else {
        return Vec::new();
    };
    let read_id = |path: PathBuf| -> Option<u16> {
        let text = std::fs::read_to_string(path).ok()?;
        u16::from_str_radix(text.trim(), 16).ok()
    };
    let mut nodes: Vec<(u32, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            let number: u32 = name.strip_prefix("event")?.parse().ok()?;
            let id_dir = entry.path().join("device").join("id");
            let matches = read_id(id_dir.join("vendor"))? == vendor
                && read_id(id_dir.join("product"))? == product;
            matches.then_some((number, name))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, name)| name).collect()
}

fn usb_id(reader: &ReaderConfig) -> Result<(u16, u16), OpenError> {
    parse_usb_id(&reader.matcher).ok_or_else(|| {
        OpenError::Failed(format!(
            "{:?} is not a USB id: write match = \"vvvv:pppp\", e.g. \"0c27:3bfa\"",
            reader.matcher
        ))
    })
}
