//! Workspace ONE client figures, measured against the simulator on loopback:
//! API calls per check-out (cold and warm, counted from the simulator's journal), the
//! client's overhead per call against plain reqwest sending the same request (p50/p99),
//! and the throughput of warm check-outs at 300 ms latency for a few concurrency levels.
//!
//! Run with `cargo bench --bench mdm`; it prints a small report.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::Context;
use badgedock::checkout::{DeviceCommand, MdmAction};
use badgedock::config::UemAuth;
use badgedock::domain::{DeviceKey, Username};
use badgedock::mdm::{Mdm, UemClient};
use badgedock::uemsim::{self, JournalEntry, SimHandle, SimOptions};

const UDID: &str = "00008110001c2d3e4f5a602e";
const OVERHEAD_ROUNDS: usize = 3_000;
const WARM_UP: usize = 200;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot build the tokio runtime")?;
    runtime.block_on(async {
        calls_per_checkout().await?;
        overhead().await?;
        throughput().await
    })
}

fn api_calls(journal: &[JournalEntry]) -> usize {
    journal.iter().filter(|e| e.is_api()).count()
}

fn token_calls(journal: &[JournalEntry]) -> usize {
    journal.iter().filter(|e| e.is_token()).count()
}

async fn run_counted(
    sim: &SimHandle,
    client: &UemClient,
    device: &DeviceKey,
    actions: &[MdmAction],
) -> anyhow::Result<(usize, usize)> {
    sim.clear_journal();
    for action in actions {
        client.perform(device, action).await?;
    }
    let journal = sim.journal();
    Ok((api_calls(&journal), token_calls(&journal)))
}

async fn calls_per_checkout() -> anyhow::Result<()> {
    let sim = uemsim::start(SimOptions::default()).await?;
    let config = sim
        .oauth_config()
        .context("the built-in seed has an OAuth client")?;
    let device = DeviceKey::apple_from_usb_serial(UDID);
    let assign = MdmAction::AssignUser {
        username: Username::new("alice"),
    };
    let sync = MdmAction::Command {
        command: DeviceCommand::SyncDevice,
    };
    let staging = MdmAction::AssignStagingUser;

    println!("API calls per check-out (OAuth; token requests counted apart), from the simulator's journal:");
    let client = UemClient::new(&config)?;
    let (cold, cold_tokens) =
        run_counted(&sim, &client, &device, std::slice::from_ref(&assign)).await?;
    let (cold_in, _) = run_counted(&sim, &client, &device, std::slice::from_ref(&staging)).await?;
    let (warm, warm_tokens) =
        run_counted(&sim, &client, &device, std::slice::from_ref(&assign)).await?;
    let (warm_in, _) = run_counted(&sim, &client, &device, std::slice::from_ref(&staging)).await?;
    println!("  assign-user            cold: {cold} API + {cold_tokens} token   warm: {warm} API + {warm_tokens} token");
    println!("  assign-staging-user    cold: {cold_in} API             warm: {warm_in} API");

    let client = UemClient::new(&config)?;
    let (cold_flow, _) =
        run_counted(&sim, &client, &device, &[assign.clone(), sync.clone()]).await?;
    let (cold_back, _) =
        run_counted(&sim, &client, &device, &[staging.clone(), sync.clone()]).await?;
    let (warm_flow, _) =
        run_counted(&sim, &client, &device, &[assign.clone(), sync.clone()]).await?;
    let (warm_back, _) = run_counted(&sim, &client, &device, &[staging, sync]).await?;
    println!("  default Apple check-out (assign-user, sync-device)         cold: {cold_flow}   warm: {warm_flow}");
    println!("  default Apple check-in (assign-staging-user, sync-device)  cold: {cold_back}   warm: {warm_back}");

    let mut verifying = config.clone();
    verifying.verify_after_assign = true;
    let client = UemClient::new(&verifying)?;
    let (cold_verify, _) =
        run_counted(&sim, &client, &device, std::slice::from_ref(&assign)).await?;
    let (warm_verify, _) =
        run_counted(&sim, &client, &device, std::slice::from_ref(&assign)).await?;
    println!("  assign-user with verify-after-assign  cold: {cold_verify}   warm: {warm_verify}");
    sim.shutdown().await
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

async fn overhead() -> anyhow::Result<()> {
    let sim = uemsim::start(SimOptions::default()).await?;
    let config = sim
        .basic_config()
        .context("the built-in seed has a Basic account")?;
    let UemAuth::Basic { username, password } = &config.auth else {
        anyhow::bail!("expected a Basic config");
    };
    let tenant = config
        .tenant_code
        .clone()
        .context("the built-in seed has a tenant code")?;
    let client = UemClient::new(&config)?;
    let plain = reqwest::Client::new();
    let device = DeviceKey::apple_from_usb_serial(UDID);
    let url = format!("{}/API/mdm/devices", sim.url());
    let udid = device.id.clone();

    let plain_call = || {
        plain
            .get(&url)
            .query(&[("searchby", "Udid"), ("id", udid.as_str())])
            .header("accept", "application/json;version=1")
            .header("aw-tenant-code", tenant.expose())
            .basic_auth(username, Some(password.expose()))
            .send()
    };
    for _ in 0..WARM_UP {
        client.lookup_device(&device).await?;
        plain_call().await?.bytes().await?;
    }
    let mut ours = Vec::with_capacity(OVERHEAD_ROUNDS);
    let mut theirs = Vec::with_capacity(OVERHEAD_ROUNDS);
    for _ in 0..OVERHEAD_ROUNDS {
        let started = Instant::now();
        client.lookup_device(&device).await?;
        ours.push(started.elapsed());
        let started = Instant::now();
        let body = plain_call().await?.bytes().await?;
        anyhow::ensure!(!body.is_empty(), "the plain call got an empty body");
        theirs.push(started.elapsed());
    }
    ours.sort();
    theirs.sort();
    println!();
    println!("Client overhead per call, {OVERHEAD_ROUNDS} device lookups each, interleaved (GET /API/mdm/devices?searchby=Udid, Basic auth):");
    for (label, times) in [
        ("UemClient::lookup_device", &ours),
        ("plain reqwest, same request", &theirs),
    ] {
        println!(
            "  {label:<28} p50 {:>8.1} µs   p99 {:>8.1} µs",
            micros(percentile(times, 0.50)),
            micros(percentile(times, 0.99))
        );
    }
    println!(
        "  overhead                     p50 {:>+8.1} µs   p99 {:>+8.1} µs  (auth, pacing check, rate headers, JSON parse, cache)",
        micros(percentile(&ours, 0.50)) - micros(percentile(&theirs, 0.50)),
        micros(percentile(&ours, 0.99)) - micros(percentile(&theirs, 0.99))
    );
    sim.shutdown().await
}

async fn throughput() -> anyhow::Result<()> {
    let sim = uemsim::start(SimOptions::default()).await?;
    let config = sim
        .oauth_config()
        .context("the built-in seed has an OAuth client")?;
    let client = UemClient::new(&config)?;
    let devices: Vec<DeviceKey> = [
        "00008110-000A1B2C3D4E801E",
        "00008110-001C2D3E4F5A602E",
        "00008030-0012345678ABCDEF",
        "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678",
    ]
    .iter()
    .map(|udid| DeviceKey::apple_from_usb_serial(udid))
    .collect();
    let users = ["alice", "carol", "dave", "alice2"];
    // Warm every cache first.
    for (device, user) in devices.iter().zip(users) {
        client
            .perform(
                device,
                &MdmAction::AssignUser {
                    username: Username::new(user),
                },
            )
            .await?;
    }
    sim.add_fault(uemsim::parse_fault("latency:300ms").map_err(anyhow::Error::msg)?);
    println!();
    println!("Warm check-outs (one PATCH each) against the simulator at 300 ms latency, one device per task:");
    const N_ACTIONS: usize = 16;
    for concurrency in [1usize, 4] {
        let started = Instant::now();
        let mut done = 0;
        while done < N_ACTIONS {
            let batch = concurrency.min(N_ACTIONS - done);
            let mut tasks = Vec::new();
            for slot in 0..batch {
                let client = client.clone();
                let device = devices[slot % devices.len()].clone();
                let user = Username::new(users[(done + slot) % users.len()]);
                tasks.push(tokio::spawn(async move {
                    client
                        .perform(&device, &MdmAction::AssignUser { username: user })
                        .await
                }));
            }
            for task in tasks {
                task.await??;
            }
            done += batch;
        }
        let elapsed = started.elapsed();
        println!(
            "  concurrency {concurrency}: {N_ACTIONS} actions in {:.2} s = {:.1} actions/s",
            elapsed.as_secs_f64(),
            N_ACTIONS as f64 / elapsed.as_secs_f64()
        );
    }
    sim.shutdown().await
}
