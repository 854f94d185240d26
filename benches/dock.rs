//! Dock figures for issue 5: what a full rescan of 48 slots costs, and how long a USB
//! change takes to reach the engine's channel as a `DockEvent`.
//!
//! Run with `cargo bench --bench dock`. The trees are temporary directories on tmpfs when
//! `/dev/shm` exists (the build machines have no USB bus), so a rescan here reads tmpfs
//! files through symlinks, as on sysfs, rather than kernfs itself;
//! the uevent path goes through a real `NETLINK_KOBJECT_UEVENT` socket, with the uevent
//! sent by unicast to the watcher's socket.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

#[path = "../tests/it/support/sysfs.rs"]
#[allow(dead_code)]
mod sysfs;

use std::time::{Duration, Instant};

use badgedock::config::{DockConfig, SlotConfig};
use badgedock::dock::device::read_port;
use badgedock::dock::tracker::SlotTracker;
use badgedock::dock::watcher::{self, UeventSource};
use badgedock::dock::DockEvent;
use badgedock::domain::{PortPath, SlotLabel, Timestamp};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use sysfs::{kernel_uevent, send_uevent, SysfsTree, UsbDevice};

const N_SLOTS: usize = 48;

fn main() {
    rescan_cost();
    event_latency();
}

/// Four 12-port hubs: `1-1.1.1` … `1-1.4.12`.
fn cabinet() -> Vec<SlotConfig> {
    (0..N_SLOTS)
        .map(|index| SlotConfig {
            label: SlotLabel::new(format!("{:02}", index + 1)),
            port: PortPath::new(format!("1-1.{}.{}", index / 12 + 1, index % 12 + 1)),
        })
        .collect()
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let n_samples = samples.len();
    let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
    let mean = samples.iter().map(|sample| micros(*sample)).sum::<f64>() / n_samples as f64;
    let percentile = |fraction: f64| {
        micros(samples[((n_samples as f64 * fraction) as usize).min(n_samples - 1)])
    };
    println!(
        "{name}: n={n_samples} mean={mean:.1}µs p50={:.1}µs p99={:.1}µs max={:.1}µs",
        percentile(0.50),
        percentile(0.99),
        micros(samples[n_samples - 1]),
    );
}

/// What the watcher does on each safety-net rescan: read every slot's port, then feed
/// the batch to the loose-cable tracker.
fn rescan_cost() {
    let slots = cabinet();
    for (occupied, name) in [
        (N_SLOTS, "48 phones"),
        (0, "48 empty ports"),
        (N_SLOTS, "48 phones, mixed unknown"),
    ] {
        let tree = bench_tree();
        for hub in 1..=4 {
            tree.plug(&format!("1-1.{hub}"), &UsbDevice::hub());
        }
        for (index, slot) in slots.iter().enumerate().take(occupied) {
            let device = match (index % 3, name.ends_with("unknown")) {
                (0, true) => UsbDevice::memory_stick(&format!("STICK{index}")),
                (0, false) | (1, _) => UsbDevice::iphone(&format!("00008110{index:016X}")),
                _ => UsbDevice::samsung(&format!("R58N{index:06}")),
            };
            tree.plug(slot.port.as_str(), &device);
        }
        let devices_dir = tree.root().join("bus/usb/devices");
        let mut tracker = SlotTracker::new(slots.iter().map(|slot| slot.label.clone()), 2_000);
        let (mut samples, mut reads, mut tracking) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..3_000i64 {
            let started = Instant::now();
            let observations: Vec<_> = slots
                .iter()
                .map(|slot| {
                    let device = match read_port(&devices_dir, &slot.port) {
                        badgedock::dock::device::PortReading::Phone(device) => Some(device),
                        _ => None,
                    };
                    (slot.label.clone(), device)
                })
                .collect();
            let read = started.elapsed();
            let events = tracker.observe_all(Timestamp(round * 1_000), observations);
            let elapsed = started.elapsed();
            std::hint::black_box(events);
            if round >= 100 {
                samples.push(elapsed);
                reads.push(read);
                tracking.push(elapsed - read);
            }
        }
        summary(&format!("full rescan, {name}"), samples);
        summary("  of which reading sysfs", reads);
        summary("  of which the tracker", tracking);
    }
}

/// A tree on tmpfs when there is one: closer to sysfs, which lives in memory, than a
/// disk-backed temporary folder.
fn bench_tree() -> SysfsTree {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        SysfsTree::new_in(shm)
    } else {
        SysfsTree::new()
    }
}

fn receive(runtime: &tokio::runtime::Runtime, events: &mut mpsc::Receiver<DockEvent>) -> DockEvent {
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), events.recv()).await })
        .expect("a dock event within 30 s")
        .expect("the watcher is running")
}

/// From a USB change to the `DockEvent` on the channel.
fn event_latency() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let port = "1-1.2.7";
    let slots = vec![SlotConfig {
        label: SlotLabel::new("19"),
        port: PortPath::new(port),
    }];

    // Uevent path: the folder is there, then the uevent arrives. Rescans an hour apart, a
    // zero window so that the undock is sent at once too.
    let tree = bench_tree();
    let config = DockConfig {
        sysfs_root: tree.root().to_path_buf(),
        rescan_ms: 3_600_000,
        flap_ms: 0,
        slots: slots.clone(),
    };
    let (sender, mut events) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let handle =
        watcher::spawn_with(config, UeventSource::Netlink, sender, cancel.clone()).unwrap();
    let port_id = handle.uevent_port_id().unwrap();
    let (mut docks, mut undocks) = (Vec::new(), Vec::new());
    for round in 0..100u64 {
        // Let the previous round's second reads (SETTLE after each uevent) pass, so the
        // event measured is the one the uevent caused.
        std::thread::sleep(watcher::SETTLE + Duration::from_millis(20));
        tree.plug(port, &UsbDevice::samsung("LATENCY"));
        let started = Instant::now();
        send_uevent(port_id, &kernel_uevent("add", port, round * 2));
        assert!(matches!(
            receive(&runtime, &mut events),
            DockEvent::Docked { .. }
        ));
        docks.push(started.elapsed());
        tree.unplug(port);
        let started = Instant::now();
        send_uevent(port_id, &kernel_uevent("remove", port, round * 2 + 1));
        assert!(matches!(
            receive(&runtime, &mut events),
            DockEvent::Undocked { .. }
        ));
        undocks.push(started.elapsed());
    }
    cancel.cancel();
    handle.join().unwrap();
    summary("uevent add -> Docked on the channel", docks);
    summary(
        "uevent remove -> Undocked on the channel (flap-ms 0)",
        undocks,
    );

    // Rescan-only path (any sysfs-root but /sys): the folder appears, the next rescan
    // sees it. Each round plugs right after the rescan that reported the undock, so this
    // is the worst case, about one period; a random moment averages half a period.
    let tree = bench_tree();
    let rescan_ms = 100;
    let config = DockConfig {
        sysfs_root: tree.root().to_path_buf(),
        rescan_ms,
        flap_ms: 0,
        slots,
    };
    let (sender, mut events) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let handle = watcher::spawn_with(config, UeventSource::Off, sender, cancel.clone()).unwrap();
    let mut appears = Vec::new();
    for _ in 0..40 {
        let started = Instant::now();
        tree.plug(port, &UsbDevice::samsung("LATENCY"));
        assert!(matches!(
            receive(&runtime, &mut events),
            DockEvent::Docked { .. }
        ));
        appears.push(started.elapsed());
        tree.unplug(port);
        assert!(matches!(
            receive(&runtime, &mut events),
            DockEvent::Undocked { .. }
        ));
    }
    cancel.cancel();
    handle.join().unwrap();
    summary(
        &format!("folder appears right after a rescan -> Docked, rescan only (rescan-ms {rescan_ms}, the worst case)"),
        appears,
    );
}
