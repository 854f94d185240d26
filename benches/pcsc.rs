//! PC/SC reader figures against a real pcscd + vpcd + the project's virtual card
//! (`cargo bench --bench pcsc`, as root, pcscd and vsmartcard-vpcd installed, no other
//! pcscd running):
//! 1. latency the backend adds: from pcscd having the card's ATR (its last control
//!    message to the card before our GET DATA) to the `Tap` arriving on the channel,
//!    p50/p99 over 50 taps, with the split at the GET DATA; also from the card touching
//!    the reader, which includes pcscd's 400 ms polling of vpcd;
//! 2. the reader thread's CPU time and wake-ups while idle with two readers, over 20 s
//!    (`/proc/self/task/<tid>/schedstat` and `status`), and pcscd's for comparison;
//! 3. recovery after pcscd is killed and restarted (restart ready → `Online`), and the
//!    time from cancelling the token to the thread being joined.

#![allow(clippy::print_stdout)]

#[path = "../tests/it/support/pcscd.rs"]
#[allow(clippy::unwrap_used)]
mod pcscd;

use std::time::{Duration, Instant};

use badgedock::badges::format::FormatRule;
use badgedock::config::{ReaderConfig, ReaderKind};
use badgedock::domain::ReaderName;
use badgedock::readers::ReaderEvent;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use pcscd::{Pcscd, VirtualCard, READERS};

const N_TAPS: usize = 50;
const IDLE: Duration = Duration::from_secs(20);

fn main() {
    let mut pcscd = Pcscd::start();
    let readers = READERS
        .iter()
        .enumerate()
        .map(|(n, matcher)| ReaderConfig {
            name: ReaderName::new(format!("reader-{n}")),
            kind: ReaderKind::Pcsc,
            matcher: matcher.to_string(),
            format: FormatRule::parse("hex").unwrap_or_else(|err| panic!("{err}")),
            lockout_ms: 0,
            feedback: false,
        })
        .collect();
    let (sender, mut receiver) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let handle = badgedock::readers::pcsc::spawn(readers, sender, cancel.clone())
        .unwrap_or_else(|err| panic!("cannot spawn the reader thread: {err}"));
    // Stamps each event as it arrives, like the daemon's task awaiting the channel.
    let (stamped_tx, stamped) = std::sync::mpsc::channel::<(Instant, ReaderEvent)>();
    let stamper = std::thread::spawn(move || {
        while let Some(event) = receiver.blocking_recv() {
            if stamped_tx.send((Instant::now(), event)).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str, matches: &dyn Fn(&ReaderEvent) -> bool| -> Instant {
        loop {
            match stamped.recv_timeout(Duration::from_secs(30)) {
                Ok((at, event)) if matches(&event) => return at,
                Ok(_) => continue,
                Err(err) => panic!("no event while waiting for {what}: {err}"),
            }
        }
    };
    for n in 0..2 {
        let name = format!("reader-{n}");
        wait_for(
            "online",
            &|event| matches!(event, ReaderEvent::Online { reader } if reader.as_str() == name),
        );
    }

    // 1. Tap latency.
    let mut from_ready = Vec::new();
    let mut ready_to_apdu = Vec::new();
    let mut apdu_to_event = Vec::new();
    let mut from_touch = Vec::new();
    for n in 0..N_TAPS {
        let uid = [0x04, 0x10, (n >> 8) as u8, n as u8];
        let card = pcscd.insert(0, VirtualCard::with_uid(&uid));
        let arrived = wait_for("a tap", &|event| matches!(event, ReaderEvent::Tap { .. }));
        let log = card.remove();
        let (apdu_at, _) = log
            .apdus
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("tap {n}: no APDU seen"));
        let ready_at = log
            .controls
            .iter()
            .map(|(at, _)| *at)
            .filter(|at| *at <= apdu_at)
            .max()
            .unwrap_or_else(|| panic!("tap {n}: no control message before the APDU"));
        let placed_at = log
            .placed_at
            .unwrap_or_else(|| panic!("tap {n}: never placed"));
        from_ready.push(arrived - ready_at);
        ready_to_apdu.push(apdu_at - ready_at);
        apdu_to_event.push(arrived - apdu_at);
        from_touch.push(arrived - placed_at);
    }
    println!("PC/SC tap latency over {N_TAPS} taps (pcscd 1.9.9 + vpcd, virtual card):");
    report("  pcscd has the ATR -> Tap on the channel", from_ready);
    report(
        "    of which: pcscd has the ATR -> GET DATA at the card",
        ready_to_apdu,
    );
    report(
        "    of which: GET DATA at the card -> Tap on the channel",
        apdu_to_event,
    );
    report(
        "  card touches the reader -> Tap (incl. pcscd's 400 ms polling)",
        from_touch,
    );

    // 2. Idle CPU with two readers.
    let tid = reader_thread_id().unwrap_or_else(|| panic!("no thread named pcsc-readers"));
    let thread_before = thread_stats(tid);
    let pcscd_before = process_cpu_ticks(pcscd.pid());
    let started = Instant::now();
    std::thread::sleep(IDLE);
    let elapsed = started.elapsed();
    let thread_after = thread_stats(tid);
    let pcscd_after = process_cpu_ticks(pcscd.pid());
    let cpu = Duration::from_nanos(thread_after.0 - thread_before.0);
    let wakeups = thread_after.1 - thread_before.1;
    println!(
        "reader thread idle with 2 readers over {elapsed:.1?}: CPU {cpu:.2?} ({:.4} % of one core), {wakeups} wake-ups ({:.1}/s)",
        cpu.as_secs_f64() * 100.0 / elapsed.as_secs_f64(),
        wakeups as f64 / elapsed.as_secs_f64()
    );
    println!(
        "pcscd itself over the same time: {} clock ticks of CPU (1 tick = 10 ms at USER_HZ 100)",
        pcscd_after - pcscd_before
    );

    // 3. Recovery after pcscd is killed and restarted, then cancellation.
    let mut recoveries = Vec::new();
    for _ in 0..5 {
        pcscd.kill();
        wait_for("offline", &|event| {
            matches!(event, ReaderEvent::Offline { .. })
        });
        pcscd.restart();
        let ready = Instant::now();
        let online = wait_for("online", &|event| {
            matches!(event, ReaderEvent::Online { .. })
        });
        recoveries.push(online - ready);
    }
    report(
        "pcscd restarted and listing readers -> reader Online",
        recoveries,
    );
    std::thread::sleep(Duration::from_millis(500));
    let cancelled_at = Instant::now();
    cancel.cancel();
    handle.join();
    println!(
        "cancel -> reader thread joined: {:.2?}",
        cancelled_at.elapsed()
    );
    let _ = stamper.join();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    println!(
        "{name}: n={} mean={:.2?} p50={:.2?} p99={:.2?} max={:.2?}",
        samples.len(),
        total / samples.len() as u32,
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or_default()
    );
}

/// The TID of the backend's thread, found by its name.
fn reader_thread_id() -> Option<u32> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "pcsc-readers")
                .then(|| entry.file_name().to_string_lossy().parse().ok())?
        })
}

/// A thread's CPU time in ns (schedstat) and its voluntary context switches (wake-ups).
fn thread_stats(tid: u32) -> (u64, u64) {
    let schedstat =
        std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap_or_default();
    let cpu_ns = schedstat
        .split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    let status =
        std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap_or_default();
    let switches = status
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    (cpu_ns, switches)
}

/// utime + stime of a process, in clock ticks.
fn process_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}
