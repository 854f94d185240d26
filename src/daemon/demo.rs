//! `badgedock demo`: a whole station in one process on embedded defaults.
//!
//! Nothing is faked inside the station: the demo writes a real config file, a badge CSV
//! and a temporary sysfs tree, starts the built-in Workspace ONE simulator on loopback
//! and runs the real daemon on them. "Simulated readers" are reader events sent on the
//! same channel the PC/SC thread uses; "the simulated dock" is the sysfs tree, whose
//! port folders the demo adds and removes exactly as the kernel would.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};

use crate::checkout::{SlotState, Snapshot, TapDecision};
use crate::daemon::systemd::Notifier;
use crate::daemon::{start, RunningDaemon, StartOptions};
use crate::uemsim::{SimHandle, SimOptions};

/// One phone of the demo cabinet.
#[derive(Debug, Clone)]
pub struct DemoDevice {
    /// Slot label.
    pub slot: &'static str,
    /// USB port path.
    pub port: &'static str,
    /// `idVendor`.
    pub vendor: &'static str,
    /// `idProduct`.
    pub product: &'static str,
    /// USB serial (an Apple UDID without its hyphen, or an Android serial).
    pub serial: &'static str,
}

/// The demo cabinet: phones of the simulator's built-in seed (UDIDs as the USB serial
/// carries them, without the hyphen). Slot 5 holds a phone the seed has enrolled to
/// carol, as if checked out at another station: it is checked in on first sight.
pub const DEMO_DEVICES: &[DemoDevice] = &[
    DemoDevice {
        slot: "1",
        port: "1-1.1",
        vendor: "05ac",
        product: "12a8",
        serial: "00008110000A1B2C3D4E801E",
    },
    DemoDevice {
        slot: "2",
        port: "1-1.2",
        vendor: "05ac",
        product: "12a8",
        serial: "00008110001C2D3E4F5A602E",
    },
    DemoDevice {
        slot: "3",
        port: "1-1.3",
        vendor: "05ac",
        product: "12a8",
        serial: "000080300012345678ABCDEF",
    },
    DemoDevice {
        slot: "4",
        port: "1-1.4",
        vendor: "05ac",
        product: "12a8",
        serial: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
    },
    DemoDevice {
        slot: "5",
        port: "1-2.1",
        vendor: "05ac",
        product: "12a8",
        serial: "0f1e2d3c4b5a69788796a5b4c3d2e1f00a1b2c3d",
    },
    DemoDevice {
        slot: "6",
        port: "1-2.2",
        vendor: "04e8",
        product: "6860",
        serial: "R58N12ABCDE",
    },
];

/// Demo badges: (badge as the reader renders it, username, display name), keys 1–9.
/// The first five are ordinary nurses. "bob" exists twice in the seeded tenant, so his
/// assignment is refused (the station says "do not take"); "erin" is inactive there;
/// the last badge is in nobody's name.
pub const DEMO_BADGES: &[(&str, &str, &str)] = &[
    ("04A1B2C3D4E5F6", "alice", "Alice Martin"),
    ("0A1B2C3D", "carol", "Carol Nguyen"),
    ("04C0FFEE112233", "dave", "Dave Okafor"),
    ("1234ABCD", "alice2", "Alice Dubois"),
    ("04BADA55000001", "m.alice", "Marie Alice"),
    ("DEADBEEF", "bob", "Bob Smith"),
    ("CAFEF00D", "erin", "Erin Walsh"),
    ("55AA55AA", "frank", "Frank Li"),
];

/// How many of [`DEMO_BADGES`] the scripted shift uses (the ordinary nurses).
const SHIFT_BADGES: usize = 5;

/// A badge nobody has, tapped once in the scripted shift.
pub const UNKNOWN_BADGE: &str = "FEEDFACE";

/// What a scripted shift did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShiftSummary {
    /// Taps made.
    pub taps: u32,
    /// Phones checked out (taken from the cabinet).
    pub checkouts: u32,
    /// Phones checked back in (work confirmed).
    pub checkins: u32,
    /// Taps refused on purpose (the unknown badge).
    pub refused_as_expected: u32,
    /// Calls the Workspace ONE simulator received.
    pub mdm_calls: u32,
    /// Enrolment-user changes the simulator applied.
    pub enrollment_changes: u32,
    /// Anything that went wrong.
    pub failures: u32,
    /// Wall time of the shift.
    pub elapsed: Duration,
}

impl fmt::Display for ShiftSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "badgedock demo — scripted shift")?;
        writeln!(f, "  taps:                 {}", self.taps)?;
        writeln!(f, "  check-outs:           {}", self.checkouts)?;
        writeln!(f, "  check-ins:            {}", self.checkins)?;
        writeln!(f, "  refused (expected):   {}", self.refused_as_expected)?;
        writeln!(f, "  Workspace ONE calls:  {}", self.mdm_calls)?;
        writeln!(f, "  enrolment changes:    {}", self.enrollment_changes)?;
        writeln!(f, "  failures:             {}", self.failures)?;
        write!(
            f,
            "  elapsed:              {:.1} s",
            self.elapsed.as_secs_f64()
        )
    }
}

/// A running demo station.
pub struct DemoStation {
    /// Temporary files (config, store, sysfs tree); removed on drop.
    pub dir: tempfile::TempDir,
    /// The simulator.
    pub sim: SimHandle,
    /// The daemon.
    pub daemon: RunningDaemon,
}

impl DemoStation {
    /// Writes the demo's files, starts the simulator and the daemon.
    pub async fn start() -> anyhow::Result<DemoStation> {
        let dir = tempfile::Builder::new()
            .prefix("badgedock-demo-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let sim = crate::uemsim::start(SimOptions::default())
            .await
            .context("cannot start the Workspace ONE simulator")?;
        let config_path = write_demo_files(dir.path(), &sim.url())?;
        let config = crate::config::load(&config_path, &crate::config::LoadEnv::default())
            .map_err(anyhow::Error::new)?;
        let daemon = start(
            config,
            StartOptions {
                notifier: Notifier::disabled(),
                hardware_readers: false,
            },
        )
        .await?;
        Ok(DemoStation { dir, sim, daemon })
    }

    fn port_dir(&self, device: &DemoDevice) -> PathBuf {
        self.dir
            .path()
            .join("sys/bus/usb/devices")
            .join(device.port)
    }

    /// Puts a phone in its slot (creates its sysfs port folder).
    pub fn dock(&self, device: &DemoDevice) -> anyhow::Result<()> {
        write_port(&self.port_dir(device), device)
    }

    /// Takes a phone out of its slot (removes its sysfs port folder).
    pub fn undock(&self, device: &DemoDevice) -> anyhow::Result<()> {
        let dir = self.port_dir(device);
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))
    }

    /// Taps a badge as a reader would, and waits for the station's decision.
    pub async fn tap(&self, badge: &str) -> anyhow::Result<TapDecision> {
        let input = self
            .daemon
            .resolver
            .resolve_text(Some("front"), badge)
            .await;
        crate::daemon::engine_loop::decide(&self.daemon.engine, input)
            .await
            .map_err(anyhow::Error::msg)
    }

    /// Waits until `done` holds for a snapshot, or `timeout` passes.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&Snapshot) -> bool) -> bool {
        let mut snapshots = self.daemon.snapshots.clone();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                if done(&snapshots.borrow_and_update()) {
                    return;
                }
                if snapshots.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        waited.is_ok() && done(&self.daemon.snapshots.borrow())
    }

    /// Docks a phone and counts its check-in once the slot is available again.
    async fn return_phone(
        &self,
        device: &DemoDevice,
        summary: &mut ShiftSummary,
    ) -> anyhow::Result<()> {
        self.dock(device)?;
        let slot = device.slot;
        let checked_in = self
            .wait_for(Duration::from_secs(20), |s| {
                s.slots
                    .iter()
                    .any(|v| v.label.as_str() == slot && v.state == SlotState::Available)
            })
            .await;
        if checked_in {
            summary.checkins += 1;
        } else {
            summary.failures += 1;
        }
        Ok(())
    }

    /// Stops the daemon and the simulator.
    pub async fn stop(self) -> anyhow::Result<()> {
        let result = self.daemon.shutdown(Duration::from_secs(4)).await;
        if let Err(err) = self.sim.shutdown().await {
            tracing::warn!(cause = %err, "the simulator did not stop cleanly");
        }
        result
    }
}

/// Writes config, secrets, badge CSV and a sysfs tree with every demo phone docked;
/// returns the config's path.
pub fn write_demo_files(dir: &Path, sim_url: &str) -> anyhow::Result<PathBuf> {
    let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    };
    write(
        "client-secret",
        &format!("{}\n", crate::uemsim::DEMO_CLIENT_SECRET),
    )?;
    let mut csv = String::from("badge,username,display-name,groups\n");
    for (badge, username, display) in DEMO_BADGES {
        csv.push_str(&format!("{badge},{username},{display},nursing\n"));
    }
    write("badges.csv", &csv)?;
    for device in DEMO_DEVICES {
        write_port(&dir.join("sys/bus/usb/devices").join(device.port), device)?;
    }
    let slots: Vec<String> = DEMO_DEVICES
        .iter()
        .map(|d| format!("{{ label = \"{}\", port = \"{}\" }}", d.slot, d.port))
        .collect();
    let config = format!(
        r#"# Written by `badgedock demo`; every value here is what a real station would use.
[station]
name = "Demo ward, cabinet A"
state-dir = "{state}"
control-socket = "{socket}"

[uem]
base-url = "{sim_url}"
staging-user = "{staging}"
request-timeout-ms = 5000
[uem.auth]
kind = "oauth"
token-url = "{sim_url}/connect/token"
client-id = "{client_id}"
client-secret-file = "client-secret"

[[reader]]
name = "front"
kind = "pcsc"
match = "Demo reader"
format = "hex"

[dock]
sysfs-root = "{sysfs}"
rescan-ms = 100
flap-ms = 300
slots = [ {slots} ]

[directory]
kind = "file"
path = "badges.csv"

[checkout]
reservation-seconds = 30
"#,
        state = dir.join("state").display(),
        socket = dir.join("control.sock").display(),
        staging = crate::uemsim::DEMO_STAGING_USER,
        client_id = crate::uemsim::DEMO_CLIENT_ID,
        sysfs = dir.join("sys").display(),
        slots = slots.join(", "),
    );
    write("badgedock.toml", &config)
}

fn write_port(dir: &Path, device: &DemoDevice) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, value) in [
        ("idVendor", device.vendor),
        ("idProduct", device.product),
        ("serial", device.serial),
    ] {
        std::fs::write(dir.join(name), format!("{value}\n"))
            .with_context(|| format!("cannot write {}/{name}", dir.display()))?;
    }
    Ok(())
}

fn device_for_slot(slot: &str) -> Option<&'static DemoDevice> {
    DEMO_DEVICES.iter().find(|d| d.slot == slot)
}

fn all_ready(snapshot: &Snapshot) -> bool {
    snapshot
        .slots
        .iter()
        .all(|slot| slot.state == SlotState::Available)
        && snapshot.mdm.waiting == 0
}

/// `badgedock demo --headless --taps N`: a scripted shift, then a summary.
pub async fn run_headless(n_taps: u32) -> anyhow::Result<ShiftSummary> {
    let started = std::time::Instant::now();
    let station = DemoStation::start().await?;
    let mut summary = ShiftSummary::default();
    if !station.wait_for(Duration::from_secs(20), all_ready).await {
        summary.failures += 1;
        tracing::error!("the demo cabinet did not become ready within 20 s");
    }
    let mut out: Vec<&'static DemoDevice> = Vec::new();
    for index in 0..n_taps {
        summary.taps += 1;
        // Every fifth tap is a badge nobody has: the station must refuse it.
        if index % 5 == 4 {
            match station.tap(UNKNOWN_BADGE).await? {
                TapDecision::Refused { .. } => summary.refused_as_expected += 1,
                TapDecision::TakeSlot { .. }
                | TapDecision::EnrollmentApproved { .. }
                | TapDecision::MarkedBroken { .. } => summary.failures += 1,
            }
            continue;
        }
        // Return the oldest loan when the cabinet runs low.
        if out.len() >= 3 {
            let device = out.remove(0);
            station.return_phone(device, &mut summary).await?;
        }
        let (badge, _, _) = DEMO_BADGES[index as usize % SHIFT_BADGES];
        match station.tap(badge).await? {
            TapDecision::TakeSlot { slot, .. } => {
                let Some(device) = device_for_slot(slot.as_str()) else {
                    summary.failures += 1;
                    continue;
                };
                station.undock(device)?;
                let slot_label = slot.clone();
                if station
                    .wait_for(Duration::from_secs(10), |s| {
                        s.loans.iter().any(|l| l.slot == slot_label)
                    })
                    .await
                {
                    summary.checkouts += 1;
                    out.push(device);
                } else {
                    summary.failures += 1;
                }
            }
            TapDecision::Refused { reason } => {
                tracing::warn!(reason = %reason, "demo tap refused");
                summary.failures += 1;
            }
            TapDecision::EnrollmentApproved { .. } | TapDecision::MarkedBroken { .. } => {
                summary.failures += 1
            }
        }
    }
    // End of shift: everything comes back and every check-in is confirmed.
    for device in out.drain(..) {
        station.return_phone(device, &mut summary).await?;
    }
    if !station.wait_for(Duration::from_secs(30), all_ready).await {
        summary.failures += 1;
    }
    let journal = station.sim.journal();
    summary.mdm_calls = journal.len() as u32;
    summary.enrollment_changes = journal
        .iter()
        .filter(|entry| {
            entry.method == "PATCH"
                && entry.path.to_ascii_lowercase().contains("/enrollmentuser/")
                && entry.status < 300
        })
        .count() as u32;
    station.stop().await?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// `badgedock demo`: the dashboard in this terminal; keys 1–9 tap the demo badges, a
/// phone is "taken" two seconds after its reservation and returned a minute later.
pub async fn run_interactive() -> anyhow::Result<()> {
    use crate::dashboard::{DashboardOptions, Feed, UiCommand};
    let station = Arc::new(DemoStation::start().await?);
    let (feed_tx, feed_rx) = watch::channel(Feed::Live(station.daemon.snapshots.borrow().clone()));
    let mut snapshots = station.daemon.snapshots.clone();
    let feeder = tokio::spawn(async move {
        while snapshots.changed().await.is_ok() {
            let snapshot = snapshots.borrow_and_update().clone();
            if feed_tx.send(Feed::Live(snapshot)).is_err() {
                break;
            }
        }
    });
    let (command_tx, mut command_rx) = mpsc::channel(16);
    let driver = {
        let station = Arc::clone(&station);
        tokio::spawn(async move {
            while let Some(command) = command_rx.recv().await {
                let UiCommand::Tap(key) = command else {
                    continue;
                };
                let Some((badge, _, _)) = DEMO_BADGES.get(usize::from(key).saturating_sub(1))
                else {
                    continue;
                };
                if let Ok(TapDecision::TakeSlot { slot, .. }) = station.tap(badge).await {
                    if let Some(device) = device_for_slot(slot.as_str()) {
                        let station = Arc::clone(&station);
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            let _ = station.undock(device);
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            let _ = station.dock(device);
                        });
                    }
                }
            }
        })
    };
    let ascii = std::env::var("TERM").is_ok_and(|term| term == "linux");
    let result = crate::dashboard::run(
        DashboardOptions {
            ascii,
            admin: true,
            demo_keys: true,
        },
        feed_rx,
        command_tx,
    )
    .await;
    driver.abort();
    feeder.abort();
    if let Ok(station) = Arc::try_unwrap(station) {
        station.stop().await?;
    }
    result
}
